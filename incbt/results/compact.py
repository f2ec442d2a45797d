"""Compaction: keep the number of result files bounded as updates accumulate.

Every commit adds one ``daily`` and one ``fills`` file (a batch of level 0); a
command whose results are committed in pieces (``incbt.runs``: a big plan, and
what waits for a commit is bounded) adds a *group* of them, which counts as one
batch here. Tiered by age: when the
newest batches include ``FANOUT`` batches (groups) of level L (and nothing above
L after the oldest of them), that suffix of batches is rewritten as one batch
of level L+1, holding only their valid rows (none of a replaced or dropped
run). So the number of batches grows like FANOUT x log_FANOUT(commands), and
each row is rewritten about log_FANOUT(commands) times over its life.

The merged batch's segments replace the suffix's in one transaction (event
``compact``); the suffix's files are deleted by the next compaction, so a
query that listed them just before keeps working.
"""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from incbt.catalog import runs as rc
from incbt.results import (
    _NO_ROW,
    DAILY_SCHEMA,
    FILLS_SCHEMA,
    batch_paths,
    required,
    write_durable,
)

FANOUT = 8


def plan_compaction(
    batches: Sequence[tuple[int, ...]], fanout: int = FANOUT
) -> tuple[list[int], int] | None:
    """(batches to merge, level of the result) or None.

    ``batches``: (id, level) or (id, level, group), ascending. The batches of one
    group (one command's results, committed in pieces to bound its memory) count
    as one: a command adds one batch to its tier however many pieces it took.
    """
    rows = [(b[0], b[1], b[2] if len(b) > 2 else b[0]) for b in batches]
    for level in range(0, 64):
        suffix = []
        for b, lvl, group in reversed(rows):
            if lvl > level:
                break
            suffix.append((b, lvl, group))
        if len({g for _, lvl, g in suffix if lvl == level}) >= fanout:
            return sorted(b for b, _, _ in suffix), level + 1
        if len(suffix) == len(rows):
            return None
    return None


def _valid(table: pa.Table, cut: dict[tuple[str, str], int]) -> pa.Table:
    """Rows whose (run, instrument) valid_until (days) is after their date."""
    if not cut or table.num_rows == 0:
        return table
    keys = pa.table(
        {
            "run_id": pa.array([k[0] for k in cut], pa.string()),
            "instrument": pa.array([k[1] for k in cut], pa.string()),
            "_until": pa.array(list(cut.values()), pa.int32()),
        }
    )
    t = table.append_column("_row", pa.array(range(table.num_rows), pa.int64()))
    j = t.join(keys, ["run_id", "instrument"], join_type="left outer")
    date = pc.cast(j["date"], pa.int32())
    # Kleene OR: a pair with no cut-off (null) is kept, not dropped as "unknown"
    keep = pc.or_kleene(pc.is_null(j["_until"]), pc.less(date, j["_until"]))
    rows = pc.filter(j["_row"], keep)
    return table.take(pc.take(rows, pc.sort_indices(rows)))  # kept rows, in file order


def compact(store: Any, command: str = "compact") -> dict[str, Any] | None:
    """Merge result batches if the tiering rule says so. Call under the write lock."""
    cat, root = store.catalog, store.path
    with cat.env.read() as txn:
        recs = dict(rc.batches(cat, txn))
        chosen = plan_compaction(
            [(b, r.get("level", 0), r.get("group", b)) for b, r in sorted(recs.items())]
        )
        if chosen is None:
            return None
        group, level = chosen
        gset = set(group)
        segs = [s for s in rc.segments(cat, txn) if s.batch in gset]
        new_batch = rc.next_batch(cat, txn)
        # replaced and dropped runs: SQL shows none of their rows, no command reads them
        gone = {r.run_id for r in rc.runs(cat, txn) if r.gone}
    by_pair: dict[tuple[str, str], list[rc.Segment]] = defaultdict(list)
    for s in segs:
        by_pair[(s.run_id, s.instrument)].append(s)
    # per batch: (run, instrument) -> the first day a later segment in the group redid
    cuts: dict[int, dict[tuple[str, str], int]] = defaultdict(dict)
    merged: dict[tuple[str, str], tuple[int, int, int]] = {}
    for pair, ss in by_pair.items():
        # a replaced or dropped run: every row goes, merged files do not keep them
        cuts_here = [(s, _NO_ROW) for s in ss] if pair[0] in gone else rc.cuts_of(ss)
        for s, until in cuts_here:
            cuts[s.batch][pair] = until
        # the merged segment has seen every change its newest part had seen
        merged[pair] = (
            min(s.first_day for s in ss),
            max(s.last_day for s in ss),
            max(s.seq for s in ss),
        )
    tables: dict[str, list[pa.Table]] = {"daily": [], "fills": []}
    for b in group:
        for key in ("daily", "fills"):
            t = pq.read_table(os.path.join(root, recs[b][key]))
            tables[key].append(_valid(t, cuts.get(b, {})))
    out = {}
    for key, schema, order in (("daily", DAILY_SCHEMA, "date"), ("fills", FILLS_SCHEMA, "ts")):
        # files written before 2026-12-05 have nullable columns, later ones required ones
        t = (
            pa.concat_tables([x.cast(schema) for x in tables[key]])
            if tables[key]
            else schema.empty_table()
        )
        t = t.sort_by([("run_id", "ascending"), ("instrument", "ascending"), (order, "ascending")])
        out[key] = t.set_column(
            t.schema.get_field_index("batch"),
            "batch",
            pa.array([new_batch] * t.num_rows, pa.int64()),
        )
    rows_per_pair: dict[tuple[str, str], int] = defaultdict(int)
    for r, i in zip(
        out["daily"]["run_id"].to_pylist(), out["daily"]["instrument"].to_pylist(), strict=True
    ):
        rows_per_pair[(r, i)] += 1
    dpath, fpath = batch_paths(new_batch)
    cat.env.write(lambda txn: cat.set_pending(txn, [dpath, fpath]))
    write_durable(root, dpath, out["daily"].cast(required(DAILY_SCHEMA)))
    write_durable(root, fpath, out["fills"].cast(required(FILLS_SCHEMA)))

    def txn_fn(txn: Any) -> int:
        meta = cat.meta(txn)
        trash = meta.get("trash", [])
        for s in segs:
            txn.delete(
                rc.ri_key(s.run_id, s.instrument) + s.batch.to_bytes(8, "big"),
                db=cat.env.db(b"segments"),
            )
        for pair, (first, last, data_seq) in merged.items():
            rc.put_segment(
                cat,
                txn,
                rc.Segment(
                    pair[0], pair[1], new_batch, first, last, rows_per_pair.get(pair, 0), data_seq
                ),
            )
        seq = cat.append_event(
            txn,
            "compact",
            command,
            {
                "batches": group,
                "into": new_batch,
                "level": level,
                "daily_rows": out["daily"].num_rows,
                "fills": out["fills"].num_rows,
            },
        )
        for b in group:
            txn.delete(b.to_bytes(8, "big"), db=cat.env.db(b"batches"))
        rc.put_batch(
            cat, txn, new_batch, {"seq": seq, "daily": dpath, "fills": fpath, "level": level}
        )
        cat.put_meta(
            txn,
            "trash",
            [[seq, [p for b in group for p in (recs[b]["daily"], recs[b]["fills"])]]] + trash,
        )
        cat.set_pending(txn, [])
        return seq

    seq = cat.env.write(txn_fn)
    _empty_trash(store, seq)
    return {"seq": seq, "merged": group, "into": new_batch, "level": level}


def _empty_trash(store: Any, current: int) -> None:
    """Delete files compacted away by earlier compactions (not this one's)."""
    cat = store.catalog
    with cat.env.read() as txn:
        trash = cat.meta(txn).get("trash", [])
    old = [e for e in trash if e[0] < current]
    if not old:
        return
    for _, paths in old:
        for p in paths:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(store.path, p))
    keep = [e for e in trash if e[0] >= current]
    cat.env.write(lambda txn: cat.put_meta(txn, "trash", keep))


def compact_all(store: Any, command: str = "compact") -> list[dict[str, Any]]:
    """Compact until the tiering rule is satisfied."""
    done = []
    while (r := compact(store, command)) is not None:
        done.append(r)
    return done
