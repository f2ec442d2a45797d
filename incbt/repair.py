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
from incbt.errors import IncbtError, StoreError
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
    unfinished: list[str] = field(default_factory=list)  # an earlier repair's, finished here
    blocked: str | None = None  # why nothing was repaired (bars files lost)
    # a dry run: the computation it would do (QA 2026-12-07: said in runs alone)
    segments: int = 0
    bar_steps: int = 0

    @property
    def ok(self) -> bool:
        """Nothing lost is left: results repaired (or none lost), and no bars file lost."""
        return not self.bars_files and (not (self.batches or self.runs) or not self.dry_run)

    def __repr__(self) -> str:
        if self.blocked:
            head = (
                f"{len(self.batches)} results batch(es) lost, nothing repaired: "
                f"{self.blocked}; restore them first"
            )
        elif not self.batches and self.unfinished:
            verb = "would compute" if self.dry_run else "computed"
            head = f"{verb} the {len(self.unfinished)} run(s) an earlier repair left"
        elif not self.batches:
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


# catalog meta: the runs a repair forgot and has not computed again yet (a repair cut
# short after its forgetting is finished by the next repair, or by an update)
REPAIRING = "repairing"


def repair(
    store: Any, dry_run: bool = False, command: str = "repair", progress: Reporter = NULL
) -> RepairResult:
    """Find results files missing or damaged, forget their batches and compute the runs
    that had rows there again (see the module's text); finish the runs an earlier repair
    forgot and did not compute; say bars files missing or damaged (then nothing is
    forgotten: their runs could not be computed). ``dry_run``: say what it would do;
    write nothing."""
    from incbt.execute import resolve_strategy
    from incbt.runs import bring_up_to_date, forget_results

    out = RepairResult(dry_run=dry_run)
    bars_gone, bars_bad = store.damaged_files()
    out.bars_files = sorted(
        {p for p in bars_gone + bars_bad if not p.startswith("results" + os.sep)}
    )
    cat = store.catalog
    with contextlib.nullcontext() if dry_run else store.lock():
        lost = lost_batches(store)
        out.batches = sorted(lost)
        out.files = [p for b in out.batches for p in lost[b]]
        with cat.env.read() as txn:
            was = [r for r in cat.meta(txn).get(REPAIRING, []) if rc.registered(cat, txn, r)]
            segs = [s for s in rc.segments(cat, txn) if s.batch in lost]
            recs = {b: r for b, r in rc.batches(cat, txn) if b in lost}
            ids = sorted({s.run_id for s in segs})
            live = [rid for rid in ids if rc.registered(cat, txn, rid)]
            todo = sorted(set(live) | set(was))
            records = [r for rid in todo if (r := rc.get_run(cat, txn, rid)) is not None]
        out.runs, out.unfinished = todo, sorted(set(was) - set(live))
        if not lost and not was:
            return out
        if out.bars_files:  # their runs could not be computed: nothing forgotten (QA)
            out.blocked = "bars files missing or damaged"
            return out
        # a strategy file gone or edited since: said before anything is forgotten (QA
        # 2026-12-06: the results went, then the computation stopped on it)
        for r in {(r.strategy, r.source, r.code_version): r for r in records}.values():
            try:
                resolve_strategy(r.strategy, r.source, r.code_version)
            except (IncbtError, OSError) as exc:  # its file gone: Python's own error
                why = (
                    f"its strategies file {exc.filename} cannot be read ({exc.strerror}): "
                    "put it back"
                    if isinstance(exc, OSError)
                    else str(exc)
                )
                raise StoreError(
                    f"repair would compute run {r.run_id} again, and cannot: {why} (nothing "
                    "was forgotten: fix that, then repair)"
                ) from None
        if dry_run:  # what the computation would be: the runs' every pair from scratch
            from incbt.runs import plan_runs

            plan = plan_runs(store, records, from_scratch=True)
            out.segments, out.bar_steps = plan.segments, plan.bars
            return out

        def txn_fn(txn: Any) -> int:
            forget_results(cat, txn, ids)  # with cut marks of every instrument they held
            seg_db = cat.env.db(b"segments")
            for s in segs:
                txn.delete(
                    rc.ri_key(s.run_id, s.instrument) + s.batch.to_bytes(8, "big"), db=seg_db
                )
            cat.put_meta(txn, REPAIRING, todo)
            return cat.append_event(
                txn,
                "repair",
                command,
                {
                    "batches": out.batches,
                    "files": out.files,
                    "runs": todo[:50],
                    "n_runs": len(todo),
                },
            )

        if lost:
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
        cat.env.write(lambda txn: cat.put_meta(txn, REPAIRING, []))
    return out
