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

A batch counts at the level its size says when that is higher (``size_level``): a big
sweep's results wait for as many bytes of newer ones before they are rewritten.

The merged batch's segments replace the suffix's in one transaction (event
``compact``); the suffix's files are deleted by the next compaction, so a
query that listed them just before keeps working. A merge of more than
``STREAM_BYTES`` of files is done in bounded memory (``_merge_streaming``): the
valid rows are split by ranges of runs into files under ``tmp/``, then each range
is sorted and written in turn.
"""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from incbt._lazy import LazyModule
from incbt.catalog import day_key
from incbt.catalog import runs as rc
from incbt.results import (
    _NO_ROW,
    DAILY_SCHEMA,
    FILLS_SCHEMA,
    ROW_GROUP_ROWS,
    _parquet_options,
    batch_paths,
    finish_file,
    required,
    staging_path,
    superseded,
    write_durable,
)

if TYPE_CHECKING:
    import pyarrow.compute as pc
else:  # loaded at its first use (incbt._lazy): ~35 ms of every command's start
    pc = LazyModule("pyarrow.compute")

FANOUT = 8
# A batch (group) of more bytes than this counts at the level its size says, when that
# is above the level its merges gave it: level k from TIER_BYTES * FANOUT**k bytes. A
# big sweep's results were merged with the next 7 small updates, rewriting them all for
# a few days' rows (measured 2026-12-06: 89 MiB of results, 20 runs x 100 instruments x
# a year, rewritten by the 7th daily update: 2.45 s, peak RSS 188 -> 1,007 MiB); by
# size they wait for as many bytes of newer results (size-tiered, as LSM stores do).
TIER_BYTES = 1 << 20


def size_level(nbytes: int, fanout: int = FANOUT) -> int:
    """The level a batch's size says: 0 below ``TIER_BYTES * fanout``, then one more
    each time ``fanout`` times larger."""
    level, top = 0, TIER_BYTES * fanout
    while nbytes >= top:
        level, top = level + 1, top * fanout
    return level


def levels(root: str, recs: dict[int, dict[str, Any]]) -> list[tuple[int, int, int]]:
    """(batch, level, group) for :func:`plan_compaction`, ascending: each batch's merge
    level, raised to the level the bytes of its group's files say (a file gone counts
    nothing)."""
    size: dict[int, int] = defaultdict(int)
    for b, r in recs.items():
        for key in TABLES:
            size[r.get("group", b)] += _size(os.path.join(root, r[key]))
    return [
        (b, max(r.get("level", 0), size_level(size[r.get("group", b)])), r.get("group", b))
        for b, r in sorted(recs.items())
    ]


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


Cuts = dict[int, dict[tuple[str, str], int]]


def _group_cuts(
    cat: Any, txn: Any, gset: set[int]
) -> tuple[list[rc.Segment], Cuts, dict[tuple[str, str], tuple[int, int, int]]]:
    """The segments of the batches ``gset``; per batch, (run, instrument) -> the first
    day of its rows a merge drops (a later segment in the group redid it; every row of a
    dropped or replaced run's); and each pair's merged segment (first day, last day,
    event seq)."""
    segs = [s for s in rc.segments(cat, txn) if s.batch in gset]
    # replaced and dropped runs: SQL shows none of their rows, no command reads them
    gone = {r.run_id for r in rc.runs(cat, txn) if r.gone}
    by_pair: dict[tuple[str, str], list[rc.Segment]] = defaultdict(list)
    for s in segs:
        by_pair[(s.run_id, s.instrument)].append(s)
    cuts: Cuts = defaultdict(dict)
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
    return segs, cuts, merged


def compact(
    store: Any, command: str = "compact", chosen: tuple[list[int], int] | None = None
) -> dict[str, Any] | None:
    """Merge result batches if the tiering rule says so (or ``chosen``: these batches, a
    suffix of the store's, into one of this level). Call under the write lock."""
    cat, root = store.catalog, store.path
    with cat.env.read() as txn:
        recs = dict(rc.batches(cat, txn))
        chosen = chosen or plan_compaction(levels(root, recs))
        if chosen is None:
            return None
        group, level = chosen
        segs, cuts, merged = _group_cuts(cat, txn, set(group))
        new_batch = rc.next_batch(cat, txn)
    dpath, fpath = batch_paths(new_batch)
    cat.env.write(lambda txn: cat.set_pending(txn, [dpath, fpath]))
    files = {key: [(b, os.path.join(root, recs[b][key])) for b in group] for key in TABLES}
    nbytes = sum(_size(p) for key in TABLES for _, p in files[key])
    merge = _merge_in_memory if nbytes <= STREAM_BYTES else _merge_streaming
    rows_per_pair, counts = merge(root, files, cuts, new_batch, {"daily": dpath, "fills": fpath})

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
                "daily_rows": counts["daily"],
                "fills": counts["fills"],
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
    return {
        "seq": seq,
        "merged": group,
        "into": new_batch,
        "level": level,
        "rows": counts,
    }


@dataclass
class Reclaim:
    """What ``gc`` did (or would do) with the results files: rewrite the batches from
    the oldest holding rows SQL no longer shows (of dropped or replaced runs, or
    recomputed since) into one, and delete the files compactions left for readers."""

    batches: int = 0  # batches rewritten into one
    bytes_rewritten: int = 0  # their files' bytes
    dead_daily_rows: int = 0  # daily rows dropped (counted by a dry run too)
    # rows of the batches rewritten, by table; and of the batch written (a dry run: {})
    rows_before: dict[str, int] = field(default_factory=dict)
    rows_after: dict[str, int] = field(default_factory=dict)
    files_removed: int = 0  # result files deleted (those rewritten, compactions' leftovers)
    bytes_freed: int = 0  # a dry run: about (each table's files' share of rows dropped)

    def dropped(self, table: str) -> int:
        """Rows of ``table`` the rewrite dropped (after it)."""
        return self.rows_before.get(table, 0) - self.rows_after.get(table, 0)


def dead_rows(cat: Any, txn: Any) -> tuple[set[int], int]:
    """The batches holding rows SQL no longer shows and no command reads (of runs dropped
    or replaced, and rows a later segment recomputed), and about how many daily rows
    those are (a segment recomputed from day D loses its rows from D: counted by the
    share of its days after D; every row of a dropped or replaced run's)."""
    dirty: set[int] = set()
    dead = 0
    for seg, until in superseded(cat, txn, rc.gone_ids(cat, txn)):
        if not seg.rows or until > seg.last_day:
            continue
        dirty.add(seg.batch)
        if until <= seg.first_day:
            dead += seg.rows
            continue
        # its share of trading days from the cut (QA 2026-12-07: of calendar days, which
        # a merged segment's weekends and gaps skewed), as the days index holds them now
        after = _trading_days(cat, txn, seg.instrument, until, seg.last_day)
        every = after + _trading_days(cat, txn, seg.instrument, seg.first_day, until - 1)
        dead += round(seg.rows * after / every) if every else seg.rows
    return dirty, dead


def _trading_days(cat: Any, txn: Any, instrument: str, first: int, last: int) -> int:
    """How many days of ``instrument`` the days index holds from ``first`` to ``last``."""
    end = day_key(instrument, last)
    n = 0
    with txn.cursor(cat.db["days"]) as cur:
        if cur.set_range(day_key(instrument, first)):
            for k in cur.iternext(values=False):
                if k > end:
                    break
                n += 1
    return n


def reclaim(store: Any, command: str = "gc", dry_run: bool = False) -> Reclaim:
    """Rewrite the result batches from the oldest holding dead rows (:func:`dead_rows`)
    to the newest as one (streamed past ``STREAM_BYTES``: bounded memory), then delete
    every file compactions left for readers. Tiered compaction drops such rows only when
    it merges their batch, which for an old, big batch may be hundreds of commands later
    (QA 2026-12-06: after 120 updates and drops, 21,282 daily rows on disk for 7,650
    shown). Call under the write lock (not for a dry run)."""
    cat, root = store.catalog, store.path
    out = Reclaim()
    with cat.env.read() as txn:
        recs = dict(rc.batches(cat, txn))
        dirty, out.dead_daily_rows = dead_rows(cat, txn)
        trash = cat.meta(txn).get("trash", [])
    if dirty:
        group = [b for b in sorted(recs) if b >= min(dirty)]
        level = max(lvl for b, lvl, _ in levels(root, recs) if b in set(group))
        paths = {k: [os.path.join(root, recs[b][k]) for b in group] for k in TABLES}
        out.batches = len(group)
        out.bytes_rewritten = sum(_size(p) for ps in paths.values() for p in ps)
        out.rows_before = {k: sum(_rows(p) for p in ps) for k, ps in paths.items()}
    if dry_run:
        # the rows the rewrite keeps, counted as it would keep them (their keys read);
        # each table's files shrink by about their share of rows dropped (QA 2026-12-07:
        # rows estimated from the segments' calendar days, and bytes from the daily rows'
        # share alone, were off by 2-4.5x)
        left = [os.path.join(root, p) for _, ps in trash for p in ps]
        out.files_removed = len(left) + len(TABLES) * out.batches
        out.bytes_freed = sum(_size(p) for p in left)
        if dirty:
            with cat.env.read() as txn:
                cuts = _group_cuts(cat, txn, set(group))[1]
            for key, ps in paths.items():
                kept = sum(_kept_rows(p, cuts.get(b, {})) for b, p in zip(group, ps, strict=True))
                out.rows_after[key] = kept
                share = 1 - kept / max(1, out.rows_before[key])
                out.bytes_freed += round(sum(_size(p) for p in ps) * share)
            out.dead_daily_rows = out.dropped("daily")
        return out
    files_before, bytes_before = _results_files(root)
    if dirty:
        done = compact(store, command, chosen=(group, level))
        assert done is not None
        out.rows_after = dict(done["rows"])
    _empty_trash(store, None)
    files_after, bytes_after = _results_files(root)
    out.files_removed = files_before - files_after + (len(TABLES) if dirty else 0)
    out.bytes_freed = max(0, bytes_before - bytes_after)
    return out


def _kept_rows(path: str, cut: dict[tuple[str, str], int]) -> int:
    """Rows of a results file a merge keeps (:func:`_valid`), from its keys alone."""
    try:
        t = pq.read_table(path, columns=["run_id", "instrument", "date"])
    except (OSError, pa.ArrowException):
        return 0
    return _valid(t, cut).num_rows


def _rows(path: str) -> int:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowException):
        return 0


def _results_files(root: str) -> tuple[int, int]:
    """How many results files there are, and their bytes."""
    n = total = 0
    for key in TABLES:
        with contextlib.suppress(FileNotFoundError):
            for e in os.scandir(os.path.join(root, "results", key)):
                n += 1
                total += e.stat().st_size
    return n, total


# table -> (schema, the column its rows are ordered by within a pair)
TABLES = {"daily": (DAILY_SCHEMA, "date"), "fills": (FILLS_SCHEMA, "ts")}
STREAM_BYTES = 8 << 20  # files merged in memory up to this size (~10x in memory), else streamed
MERGE_ROWS = 500_000  # rows of a range of runs sorted at once by a streamed merge (~130 MB)

Merged = tuple[dict[tuple[str, str], int], dict[str, int]]
# a streamed merge's parts, LZ4: its scratch on disk 2.5x smaller than plain Arrow (the
# 20-run x 100-instrument x 1-year sweep's fills, 72 MiB of Parquet: 226 -> 92 MiB under
# tmp/; its daily rows 43 -> 20 MiB), for ~10% more time (3.8 -> 4.3 s, 2026-12-06)
_PART = pa.ipc.IpcWriteOptions(compression="lz4")


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _sorted(t: pa.Table, key: str, batch: int) -> pa.Table:
    """Rows by run, instrument, then date or time (a stable sort: ties keep their order),
    all of batch ``batch``, with required columns."""
    schema, order = TABLES[key]
    t = t.sort_by([("run_id", "ascending"), ("instrument", "ascending"), (order, "ascending")])
    t = t.set_column(
        t.schema.get_field_index("batch"), "batch", pa.array([batch] * t.num_rows, pa.int64())
    )
    return t.cast(required(schema))


def _count_pairs(daily: pa.Table, into: dict[tuple[str, str], int]) -> None:
    for r, i in zip(daily["run_id"].to_pylist(), daily["instrument"].to_pylist(), strict=True):
        into[(r, i)] += 1


def _merge_in_memory(
    root: str,
    files: dict[str, list[tuple[int, str]]],
    cuts: dict[int, dict[tuple[str, str], int]],
    new_batch: int,
    out: dict[str, str],
) -> Merged:
    """Every valid row of the group read at once, sorted, written (small merges)."""
    rows_per_pair: dict[tuple[str, str], int] = defaultdict(int)
    counts = {}
    for key, (schema, _) in TABLES.items():
        # files written before 2026-12-05 have nullable columns, later ones required ones
        parts = [_valid(pq.read_table(p).cast(schema), cuts.get(b, {})) for b, p in files[key]]
        t = _sorted(pa.concat_tables(parts) if parts else schema.empty_table(), key, new_batch)
        if key == "daily":
            _count_pairs(t, rows_per_pair)
        counts[key] = t.num_rows
        write_durable(root, out[key], t)
    return rows_per_pair, counts


def _merge_streaming(
    root: str,
    files: dict[str, list[tuple[int, str]]],
    cuts: dict[int, dict[tuple[str, str], int]],
    new_batch: int,
    out: dict[str, str],
    most: int | None = None,
) -> Merged:
    """:func:`_merge_in_memory`'s rows and order in bounded memory: each input file is
    read once, a row group at a time, and its valid rows are split by ranges of runs
    (of about ``most`` rows each, ``MERGE_ROWS``) into Arrow files under ``tmp/``; then each
    range is read, sorted and appended to the merged file, in the runs' order. A sweep's
    batch holds its rows by instrument, then run (a range of runs is in every row
    group), so no range could be read from the inputs without reading them whole."""
    most = MERGE_ROWS if most is None else most
    rows_per_pair: dict[tuple[str, str], int] = defaultdict(int)
    counts = {}
    for key, (schema, _) in TABLES.items():
        # the rows each run has in the inputs, from their run_id column alone
        per_run: dict[str, int] = defaultdict(int)
        for _, p in files[key]:
            for rb in pq.ParquetFile(p).iter_batches(batch_size=ROW_GROUP_ROWS, columns=["run_id"]):
                vc = pc.value_counts(rb.column(0))
                for r, n in zip(vc.field(0).to_pylist(), vc.field(1).to_pylist(), strict=True):
                    per_run[r] += n
        runs = sorted(per_run)
        starts: list[int] = []  # the index in ``runs`` of each range's first, after the first
        held = 0
        for j, r in enumerate(runs):
            if held and held + per_run[r] > most:
                starts.append(j)
                held = 0
            held += per_run[r]
        value_set = pa.array(runs, pa.string())
        first = np.array(starts, dtype=np.int64)
        tmp = staging_path(root, out[key], f"merge-{new_batch}-")
        os.makedirs(os.path.dirname(tmp), exist_ok=True)
        parts: dict[int, pa.ipc.RecordBatchFileWriter] = {}
        paths: dict[int, str] = {}
        try:
            for b, p in files[key]:
                pf = pq.ParquetFile(p)
                for g in range(pf.num_row_groups):
                    t = _valid(pf.read_row_group(g).cast(schema), cuts.get(b, {}))
                    if not t.num_rows:
                        continue
                    # each row's range: how many range starts are at or before its run
                    at = pc.index_in(t["run_id"], value_set=value_set).to_numpy()
                    rank = np.searchsorted(first, at, side="right")
                    for k in np.unique(rank).tolist():
                        if k not in parts:
                            paths[k] = f"{tmp}.{k}"  # Arrow's own format: a copy to write
                            parts[k] = pa.ipc.new_file(paths[k], schema, options=_PART)
                        parts[k].write_table(t.filter(pa.array(rank == k)))
            for w in parts.values():
                w.close()
            parts.clear()
            options = _parquet_options(required(schema), run_stats=True)
            n = 0
            with pq.ParquetWriter(tmp, required(schema), **options) as writer:
                for k in sorted(paths):
                    with pa.OSFile(paths[k]) as f:
                        t = _sorted(pa.ipc.open_file(f).read_all(), key, new_batch)
                    os.remove(paths[k])
                    if key == "daily":
                        _count_pairs(t, rows_per_pair)
                    n += t.num_rows
                    writer.write_table(t, row_group_size=ROW_GROUP_ROWS)
                if not paths:  # no row: a file of none, as a merge in memory writes
                    writer.write_table(required(schema).empty_table())
            finish_file(root, tmp, out[key])
            counts[key] = n
        finally:
            for w in parts.values():  # an error while splitting: the parts left open
                with contextlib.suppress(Exception):
                    w.close()
            for path in paths.values():
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
    return rows_per_pair, counts


def _empty_trash(store: Any, current: int | None) -> None:
    """Delete files compacted away by earlier compactions (not this one's: ``current``;
    None: every one's, as gc does)."""
    cat = store.catalog
    with cat.env.read() as txn:
        trash = cat.meta(txn).get("trash", [])
    old = [e for e in trash if current is None or e[0] < current]
    if not old:
        return
    for _, paths in old:
        for p in paths:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(store.path, p))
    keep = [e for e in trash if current is not None and e[0] >= current]
    cat.env.write(lambda txn: cat.put_meta(txn, "trash", keep))


def compact_all(store: Any, command: str = "compact") -> list[dict[str, Any]]:
    """Compact until the tiering rule is satisfied."""
    done = []
    while (r := compact(store, command)) is not None:
        done.append(r)
    return done
