"""Repair a store whose results files were lost or damaged outside incbt.

Results are derived data: every row of ``daily`` and ``fills`` comes from the bars and a
run's definition. A results batch (a pair of files, ``results/daily/N.parquet`` and
``results/fills/N.parquet``) whose files are missing or cannot be read is forgotten in
one transaction: its segments and record go, every run with rows in it is forgotten as a
run replaced is (snapshots, metrics, pairs; cut marks make its next computation supersede
every row it still has in other batches), and its two files are written again empty; then
those runs are computed again from scratch, as ``incbt update`` would (a crash in
between leaves them to the next ``update``, which computes them). What SQL shows after
equals a store that computed the same runs uninterrupted.

Bars are the store's data, not derived: a bars file missing or damaged is said, with the
fix (restore it, or ingest the data again), never repaired here.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from incbt.catalog import runs as rc
from incbt.progress import NULL, Reporter
from incbt.results import DAILY_SCHEMA, FILLS_SCHEMA, write_durable


@dataclass
class RepairResult:
    """What :func:`repair` found and did. ``batches``: the results batches forgotten (or
    to forget: a dry run), ``files``: their files found missing or unreadable, ``runs``:
    the runs computed again (to compute), ``bars_files``: bars files missing or damaged
    (not repaired: restore them or ingest the data again), ``report``: the computation's
    :class:`~incbt.runs.UpdateReport`, ``seq``: the repair's event."""

    batches: list[int] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    bars_files: list[str] = field(default_factory=list)
    report: Any = None
    seq: int | None = None
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        """Nothing lost is left: results repaired (or none lost), and no bars file lost."""
        return not self.bars_files and (not self.batches or not self.dry_run)

    def __repr__(self) -> str:
        if not self.batches:
            head = "no results file lost"
        else:
            verb = "would forget" if self.dry_run else "forgot"
            head = (
                f"{verb} {len(self.batches)} results batch(es) ({len(self.files)} file(s) "
                f"missing or unreadable), {'to compute' if self.dry_run else 'computed'} "
                f"{len(self.runs)} run(s) again"
            )
        if self.bars_files:
            head += f"; {len(self.bars_files)} bars file(s) missing or damaged (not repaired)"
        return f"<RepairResult: {head}>"


def _unreadable(path: str) -> bool:
    """The file is not there, or Arrow cannot read every row group of it."""
    try:
        f = pq.ParquetFile(path)
        for i in range(f.num_row_groups):  # a row group at a time: bounded memory
            f.read_row_group(i)
    except (OSError, pa.ArrowException):  # missing, truncated, bytes damaged
        return True
    return False


def lost_batches(store: Any) -> dict[int, list[str]]:
    """Each results batch with a file missing or unreadable (read whole), and those files."""
    with store.catalog.env.read() as txn:
        recs = list(rc.batches(store.catalog, txn))
    out: dict[int, list[str]] = {}
    for b, rec in recs:
        bad = [rec[k] for k in ("daily", "fills") if _unreadable(os.path.join(store.path, rec[k]))]
        if bad:
            out[b] = bad
    return out


def repair(
    store: Any, dry_run: bool = False, command: str = "repair", progress: Reporter = NULL
) -> RepairResult:
    """Find results files missing or damaged, forget their batches and compute the runs
    that had rows there again (see the module's text); say bars files missing or
    damaged. ``dry_run``: say what it would do; write nothing."""
    from incbt.runs import bring_up_to_date, forget_results

    out = RepairResult(dry_run=dry_run)
    bars_gone, bars_bad = store.damaged_files()
    out.bars_files = sorted(
        {p for p in bars_gone + bars_bad if not p.startswith("results" + os.sep)}
    )
    with contextlib.nullcontext() if dry_run else store.lock():
        lost = lost_batches(store)
        out.batches = sorted(lost)
        out.files = [p for b in out.batches for p in lost[b]]
        if not lost:
            return out
        cat = store.catalog
        with cat.env.read() as txn:
            segs = [s for s in rc.segments(cat, txn) if s.batch in lost]
            recs = {b: r for b, r in rc.batches(cat, txn) if b in lost}
            ids = sorted({s.run_id for s in segs})
            live = [rid for rid in ids if rc.registered(cat, txn, rid)]
            records = [r for rid in live if (r := rc.get_run(cat, txn, rid)) is not None]
        out.runs = live
        if dry_run:
            return out

        def txn_fn(txn: Any) -> int:
            forget_results(cat, txn, ids)  # with cut marks of every instrument they held
            seg_db = cat.env.db(b"segments")
            for s in segs:
                txn.delete(
                    rc.ri_key(s.run_id, s.instrument) + s.batch.to_bytes(8, "big"), db=seg_db
                )
            return cat.append_event(
                txn,
                "repair",
                command,
                {
                    "batches": out.batches,
                    "files": out.files,
                    "runs": live[:50],
                    "n_runs": len(live),
                },
            )

        out.seq = cat.env.write(txn_fn)
        # the batches stay, as empty files (their numbers are never given again, and a
        # compaction merges them away): the committed catalog first, so a crash between
        # leaves a file missing that the next repair finds again (empty files first would
        # have hidden the loss for good)
        for b in out.batches:
            for key, schema in (("daily", DAILY_SCHEMA), ("fills", FILLS_SCHEMA)):
                write_durable(store.path, recs[b][key], schema.empty_table())
        if records:
            out.report = bring_up_to_date(
                store, records, command=command, kind="repair", progress=progress
            )
    return out
