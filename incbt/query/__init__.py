"""The SQL layer: a DataFusion session over one consistent view of the store.

Tables are registered with explicit schemas (DESIGN.md: without them
DataFusion reads every footer). ``bars`` is read by DataFusion's Parquet reader
over a view of links to the catalog's list of current files (never a listing of
the store's folders, so SQL never sees a file the catalog does not list), a
folder per instrument: a filter on instrument prunes files before any is
opened, one on date row groups by their statistics (``register_bars``). The
other tables are built from the same LMDB read transaction, so a query sees one
state even while a writer commits.
"""

from __future__ import annotations

import datetime
import difflib
import json
import os
import re
import weakref
from collections.abc import Callable, Collection, Sequence
from typing import Any

import datafusion
import numpy as np
import pyarrow as pa

from incbt.bars.schema import BARS_SCHEMA
from incbt.catalog import (
    CHANGE_KINDS,
    CHANGE_REMOVED,
    DAY_VALUE,
    Catalog,
    FileRecord,
    FileSpan,
    split_day_key,
)
from incbt.errors import EMFILE_FIX, IncbtError, QueryError, UsageError, lost_file_fix
from incbt.query import bars_view
from incbt.results.metrics import metrics_table
from incbt.settings import usable_cores

EVENTS_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("kind", pa.string()),
        ("command", pa.string()),
        ("op", pa.string()),
        ("days_new", pa.int64()),
        ("days_corrected", pa.int64()),
        ("days_unchanged", pa.int64()),
        ("rows", pa.int64()),
        ("instruments", pa.int64()),
        ("first_day", pa.date32()),
        ("last_day", pa.date32()),
        ("runs", pa.int64()),
        ("segments", pa.int64()),
        ("failed", pa.int64()),
        ("bar_steps", pa.int64()),
        ("message", pa.string()),
        ("summary", pa.string()),
    ]
)


def _failed(s: dict[str, Any]) -> int | None:
    """A computing event's failed pairs (a strategy error); None for other events. Events
    before 2026-12-05 have no count, only their errors, listed up to 20."""
    return s.get("failed", len(s["errors"]) if "errors" in s else None)


def event_message(kind: str, s: dict[str, Any]) -> str:
    """One line saying what an event did."""
    if kind == "ingest":
        msg = (
            f"{s.get('days_new', 0):,} new day(s), {s.get('days_corrected', 0):,} "
            f"correction(s) over {s.get('instruments', 0):,} instrument(s)"
        )
        if s.get("days_rewritten"):  # ingest --rewrite: the days written again
            msg += f", {s['days_rewritten']:,} written again"
        return msg + (f", {s['first_day']}..{s['last_day']}" if s.get("first_day") else "")
    if kind == "remove":
        gone = s.get("removed", [])
        shown = ", ".join(f"{r[0]} {r[1]}..{r[2]}" for r in gone[:3])
        more = f", ... ({len(gone)})" if len(gone) > 3 else ""
        return (
            f"removed {s.get('days_removed', 0)} day(s) of {len(gone)} instrument(s): {shown}{more}"
        )
    if kind == "compact":
        return (
            f"merged {len(s.get('batches', []))} result batches into batch {s.get('into')} "
            f"(level {s.get('level')}), {s.get('daily_rows', 0):,} daily rows"
        )
    if kind == "sweep" and "recorded" in s:
        return (
            f"sweep {s.get('sweep')}: {s['recorded']} run(s), {s.get('added', 0)} new to it, "
            "every one in the store already: nothing computed"
        )
    if kind == "repair" and "files" in s:  # the forgetting; its computation follows
        b = s.get("batches", [])
        return (
            f"forgot results batch(es) {', '.join(map(str, b))} ({len(s['files'])} file(s) "
            f"missing or unreadable): {s.get('n_runs', 0)} run(s) to compute again"
        )
    if kind in ("backtest", "update", "sweep", "fork", "repair"):
        msg = (  # the runs this commit computed a pair of (a call's runs that were up to
            # date already, or failed, are not: QA 2026-12-05 read "25" against "26")
            f"{s.get('n_runs', 0)} run(s) computed, {s.get('segments', 0):,} segment(s), "
            f"{s.get('bars_processed', 0):,} bar-steps"
        )
        if kind == "fork" and s.get("runs"):
            msg = f"fork {', '.join(s['runs'])}: " + msg
        if s.get("replaced"):
            n = s.get("n_replaced", len(s["replaced"]))
            msg += f", {n} run(s) replaced (strategy code changed)"
        if s.get("truncated"):
            msg += f", {s['truncated']} pair(s) cut after the days removed"
        failed = _failed(s)
        return msg + (f", {failed} failed" if failed else "")
    if kind == "gc" and "catalog_bytes_before" in s:
        return (
            f"compacted the catalog: {s['catalog_bytes_before']:,} -> "
            f"{s.get('catalog_bytes_after', 0):,} bytes (then this event)"
        )
    if kind == "gc":
        return (
            f"removed {s.get('files_removed', 0)} superseded bars file(s), "
            f"{s.get('bytes_freed', 0):,} bytes; --as-of reaches back to event "
            f"{s.get('horizon', 0)}"
        )
    if kind == "init":
        return ", ".join(f"{k}={v}" for k, v in sorted(s.get("settings", {}).items()))
    if kind == "drop":
        runs = s.get("runs", [])
        more = f", ... ({s.get('n_runs', len(runs))})" if s.get("n_runs", 0) > len(runs) else ""
        sweeps = f"; sweep(s) {', '.join(s['sweeps'])}" if s.get("sweeps") else ""
        return f"dropped run(s) {', '.join(runs)}{more}{sweeps}"
    return ""


CHANGES_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("instrument", pa.string()),
        ("date", pa.date32()),
        ("kind", pa.string()),
        ("old_hash", pa.string()),
        ("new_hash", pa.string()),
        ("rows", pa.int64()),
        ("fields", pa.string()),
    ]
)
DAYS_SCHEMA = pa.schema(
    [
        pa.field("instrument", pa.string(), nullable=False),
        pa.field("date", pa.date32(), nullable=False),
        pa.field("rows", pa.int64(), nullable=False),
        pa.field("hash", pa.string(), nullable=False),
        ("seq", pa.int64()),  # null: a day of a store older than its log of changes
    ]
)
FILES_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("instrument", pa.string()),
        ("month", pa.string()),
        ("rows", pa.int64()),
        ("bytes", pa.int64()),
        ("first_day", pa.date32()),
        ("last_day", pa.date32()),
    ]
)


# the bars files of this process's last few states of a store, by (store, file paths): the
# view of them and its links to leaves (incbt.query.bars_view), and the files by folder in
# the store (_bars_folders), made once per state (register_bars)
BarsState = tuple[str, list[str], dict[str, tuple[int | None, list[str]]]]
_BARS_STATES: dict[tuple[str, tuple[str, ...]], BarsState] = {}


def register_bars(
    ctx: datafusion.SessionContext, root: str, files: Sequence[FileSpan | FileRecord]
) -> None:
    """Table ``bars``: these bars files, read by DataFusion's own Parquet reader over a
    view of links to them (:mod:`incbt.query.bars_view`; the catalog's list of files,
    never a listing of the store's folders, so SQL never sees a file the catalog does
    not list).

    Not a pyarrow dataset (``ctx.register_dataset``), whose scans DataFusion drives
    through Python iterators: some plans over it waited for ever, every thread idle, with one
    partition or two (QA 2026-12-08: the stats query's windows over days aggregated
    from bars, one instrument and one day; as ``daily`` did, register_files), and a
    join ``ON true`` failed in pyarrow ("Cannot convert BooleanScalar to Expression")."""
    key = (os.path.abspath(root), tuple(f.path for f in files))
    state = _BARS_STATES.get(key)
    if state is None or bars_view.broken(state[0], state[1]) is not None:
        # (a view unused for a day removed, or a leaf of it)
        folders = _bars_folders(key[0], files) if state is None else state[2]
        state = (*bars_view.view(key, files), folders)
        while len(_BARS_STATES) >= 4:
            _BARS_STATES.pop(next(iter(_BARS_STATES)))
        _BARS_STATES[key] = state
    view = state[0]
    parts = []
    if os.path.isdir(os.path.join(view, bars_view.PARTITIONED)):
        ctx.register_listing_table(
            "_bars_files",
            os.path.join(view, bars_view.PARTITIONED) + os.sep,
            # short names (a folder's is 255 bytes); h: the instrument's leaf (not shown)
            table_partition_cols=[("i", pa.string()), ("h", pa.string())],
            schema=BARS_SCHEMA.remove(BARS_SCHEMA.get_field_index("instrument")),
        )
        cols = ", ".join(
            "i AS instrument" if f.name == "instrument" else f.name for f in BARS_SCHEMA
        )
        parts.append(f"SELECT {cols} FROM _bars_files")
    if os.path.isdir(os.path.join(view, bars_view.FLAT)):
        ctx.register_listing_table(
            "_bars_long_names", os.path.join(view, bars_view.FLAT) + os.sep, schema=BARS_SCHEMA
        )
        parts.append(f"SELECT {', '.join(BARS_SCHEMA.names)} FROM _bars_long_names")
    ctx.register_view("bars", ctx.sql(" UNION ALL ".join(parts)))
    _BARS.setdefault(ctx, []).append(state)


# the bars views each session reads, with their links and their files by folder
# (register_bars), to say a file gone
_BARS: weakref.WeakKeyDictionary[datafusion.SessionContext, list[BarsState]] = (
    weakref.WeakKeyDictionary()
)
# a folder whose time is this recent may yet change within the same tick of the file
# system's coarse clock: its files are checked one by one
CLOCK_TICK_NS = 2_000_000_000


def _mtime_ns(folder: str) -> int | None:
    """A folder's modification time, or None where it cannot be read (gone)."""
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return None


def _bars_folders(
    root: str, files: Sequence[FileSpan | FileRecord]
) -> dict[str, tuple[int | None, list[str]]]:
    """The bars files by their folder in the store, with the folder's modification time
    when every file of it was there (None where one was not). A file removed since
    changes its folder's time: a query checks the folders' times (one stat each), not
    each file (29,000 stats, ~50 ms at the seed's scale). Once per process and state
    (register_bars)."""
    by: dict[str, list[str]] = {}
    for f in files:
        path = os.path.join(root, f.path)
        by.setdefault(os.path.dirname(path), []).append(path)
    import time

    out = {}
    recent = time.time_ns() - CLOCK_TICK_NS
    for folder, paths in by.items():
        mtime = _mtime_ns(folder)
        if mtime is not None and mtime > recent:  # a file system's clock ticks coarsely:
            mtime = None  # a removal in the same tick keeps the time (its files checked)
        if mtime is not None and not all(os.path.exists(p) for p in paths):
            mtime = None
        out[folder] = (mtime, paths)
    return out


def _bars_gone(folders: dict[str, tuple[int | None, list[str]]]) -> str | None:
    """A bars file of these folders that is not there now, else None (a folder whose
    files are all there, and whose time is old enough, is recorded so)."""
    import time

    recent = time.time_ns() - CLOCK_TICK_NS
    for folder, (mtime, paths) in folders.items():
        now = _mtime_ns(folder)
        if mtime is not None and now == mtime:
            continue
        for path in paths:
            if not os.path.exists(path):
                return path
        if now is not None and now <= recent:  # (stat before the files: a removal since
            folders[folder] = (now, paths)  # changed the time again)
    return None


def _events_table(cat: Catalog, txn: Any, as_of: int | None) -> pa.Table:
    import json

    rows: dict[str, list] = {f.name: [] for f in EVENTS_SCHEMA}
    for e in cat.events(txn, newest_first=False):
        if as_of is not None and e.seq > as_of:
            break
        s = e.summary
        rows["seq"].append(e.seq)
        rows["time"].append(e.time_ns // 1000)
        rows["kind"].append(e.kind)
        rows["command"].append(e.command)
        rows["op"].append(e.op)
        for k in ("days_new", "days_corrected", "days_unchanged", "instruments"):
            rows[k].append(s.get(k))
        rows["rows"].append(s.get("rows_read"))
        for k in ("first_day", "last_day"):
            v = s.get(k)
            rows[k].append(None if v is None else int(np.datetime64(v, "D").astype(np.int64)))
        # a computing event's work, queryable without parsing the summary (an update's
        # commits in batches add up: GROUP BY op)
        rows["runs"].append(s.get("n_runs"))
        rows["segments"].append(s.get("segments"))
        rows["failed"].append(_failed(s))
        rows["bar_steps"].append(s.get("bars_processed"))
        rows["message"].append(event_message(e.kind, s))
        rows["summary"].append(json.dumps(s, sort_keys=True))
    return pa.table(rows, schema=EVENTS_SCHEMA)


def _changes_table(cat: Catalog, txn: Any, as_of: int | None) -> pa.Table:
    rows: dict[str, list] = {f.name: [] for f in CHANGES_SCHEMA}
    for c in cat.changes(txn):
        if as_of is not None and c.seq > as_of:
            break
        rows["seq"].append(c.seq)
        rows["instrument"].append(c.instrument)
        rows["date"].append(c.day)
        rows["kind"].append(CHANGE_KINDS[c.kind])
        rows["old_hash"].append(None if not any(c.old_hash) else c.old_hash.hex())
        rows["new_hash"].append(c.new_hash.hex())
        rows["rows"].append(c.rows)
        rows["fields"].append(_fields_said(c.fields))
    return pa.table(rows, schema=CHANGES_SCHEMA)


def _days_table(cat: Catalog, txn: Any, as_of: int | None) -> pa.Table:
    """Each day of bars the store holds (as of event ``as_of``): its instrument, date,
    bars, content hash and the event that made them the day's. Now: the day index, with
    each day's last change; as of an event: its days from the log of changes up to it
    (the last change of each, but a removal)."""
    last: dict[tuple[str, int], Any] = {}
    for c in cat.changes(txn):
        if as_of is not None and c.seq > as_of:
            break
        last[(c.instrument, c.day)] = c
    rows: dict[str, list] = {f.name: [] for f in DAYS_SCHEMA}
    if as_of is None:
        with txn.cursor(cat.db["days"]) as cur:
            for k, v in cur.iternext():  # a C loop; the instrument and day from each key
                inst, day = split_day_key(k)
                made = last.get((inst, day))
                rows["instrument"].append(inst)
                rows["date"].append(day)
                value = DAY_VALUE.unpack(v)
                rows["rows"].append(value[3])
                rows["hash"].append(value[4].hex())
                rows["seq"].append(None if made is None else made.seq)
    else:
        for (inst, day), c in sorted(last.items()):
            if c.kind == CHANGE_REMOVED:
                continue
            rows["instrument"].append(inst)
            rows["date"].append(day)
            rows["rows"].append(c.rows)
            rows["hash"].append(c.new_hash.hex())
            rows["seq"].append(c.seq)
    return pa.table(rows, schema=DAYS_SCHEMA)


def _fields_said(bits: int) -> str | None:
    """The bar fields a correction changed, as ``'high,volume'`` ('' for none: the same
    bars written again); None where it may have changed any (a new or removed day, bars
    added or taken away)."""
    from incbt.catalog import ANY_FIELD, FIELD_BITS

    if bits == ANY_FIELD:
        return None
    return ",".join(f for f, b in FIELD_BITS.items() if bits & b)


def _files_table(files: list[FileRecord]) -> pa.Table:
    return pa.table(
        {
            "path": [f.path for f in files],
            "instrument": [f.instrument for f in files],
            "month": [f.month for f in files],
            "rows": [f.rows for f in files],
            "bytes": [f.bytes for f in files],
            "first_day": [f.first_day for f in files],
            "last_day": [f.last_day for f in files],
        },
        schema=FILES_SCHEMA,
    )


def _json_get(text: pa.Array, key: pa.Array) -> pa.Array:
    """``json_get(summary, 'key')``: the value at a key of a JSON object, as text (a
    string as it is, anything else as JSON; NULL where the key or the text is absent)."""
    out = []
    for t, k in zip(text.to_pylist(), key.to_pylist(), strict=True):
        v = None if t is None or k is None else json.loads(t).get(k)
        out.append(None if v is None else v if isinstance(v, str) else json.dumps(v))
    return pa.array(out, pa.string())


JSON_GET = datafusion.udf(
    _json_get, [pa.string(), pa.string()], pa.string(), "immutable", name="json_get"
)


# the process whose DataFusion runtime this one's is: DataFusion runs queries on a
# runtime of threads (tokio) made at its first use, which a fork does not copy; a
# query in a child forked after that waits for ever (QA 2026-12-07: multiprocessing's
# "fork" workers and os.fork children hung in any query of the store's files)
_RUNTIME_PID: int | None = None


def _context(config: datafusion.SessionConfig | None = None) -> datafusion.SessionContext:
    """A DataFusion session, refused in a process forked after DataFusion ran (there its
    query would never end)."""
    global _RUNTIME_PID
    if _RUNTIME_PID is not None and os.getpid() != _RUNTIME_PID:
        raise UsageError(
            "this call reads the store with DataFusion (SQL, the log, a run's tables, "
            "verify, a fork's base), which cannot run in this process: it was forked from "
            f"process {_RUNTIME_PID} after that one used DataFusion, whose threads do not "
            "survive a fork (the read would wait for ever). Fix: start worker processes "
            "with the 'spawn' or 'forkserver' method (multiprocessing.get_context('spawn'), "
            "or ProcessPoolExecutor(mp_context=...)), or fork them before any such read"
        )
    ctx = datafusion.SessionContext(config) if config is not None else datafusion.SessionContext()
    _RUNTIME_PID = os.getpid()
    return ctx


def session(
    root: str,
    cat: Catalog,
    as_of: int | None = None,
    only_for: str | None = None,
    extra: dict[str, Any] | None = None,
    runs: Collection[str] | None = None,
    partitions: int | None = None,
) -> datafusion.SessionContext:
    """A DataFusion session over one consistent state (now, or right after ``as_of``).
    ``partitions``: DataFusion's target partitions (default: the cores this process may
    use).

    With ``only_for`` (the SQL about to run), tables the query does not name are
    not built: the log tables grow with history, a bars query should not pay. With
    ``runs`` (run ids), ``daily`` and ``fills`` hold those runs' rows alone, read from
    the results files that hold them (a run's tables, a fork's base, a verify of some
    runs: they cost what those runs' rows do, not what the store's results do).
    """
    config = (
        datafusion.SessionConfig()
        .with_target_partitions(partitions or usable_cores())
        .with_information_schema(True)  # SHOW TABLES, SHOW COLUMNS FROM t, information_schema
    )
    ctx = _context(config)
    if only_for is not None and re.search(r"\binformation_schema\b|^\s*show\b", only_for, re.I):
        only_for = None  # the schema of every table: every table
    ctx.register_udf(JSON_GET)  # events.summary's fields: json_get(summary, 'sources')
    with cat.env.read() as txn:
        last = cat.last_seq(txn)
        if as_of is not None and as_of < 1:  # no event can be: usage (QA 2026-12-06)
            raise UsageError(
                f"--as-of {as_of} (as_of={as_of} in Python): events are numbered from 1 "
                f"(1..{last} here)"
            )
        if as_of is not None and not 1 <= as_of <= last:  # QA 2026-12-06: 0 was taken
            raise QueryError(
                f"--as-of {as_of} (as_of={as_of} in Python): no such event; the log has "
                f"events 1..{last}"
            )
        now_only = (
            [t for t in CURRENT_ONLY if _names(only_for, t)]
            if as_of is not None and only_for is not None
            else []
        )
        if now_only and only_for is not None:  # named: as a table, a column, an alias,
            now_only = _tables_missing(only_for, now_only)  # a word of a comment
        if now_only:
            raise QueryError(
                f"--as-of {as_of} (as_of={as_of} in Python): the "
                + (
                    f"tables {', '.join(now_only)} hold"
                    if len(now_only) > 1
                    else f"table {now_only[0]} holds"
                )
                + " the results as they are now, not as they were "
                "after an event; time travel reaches bars, files, events, changes and days. Fix: "
                "query those with --as-of, the results without it"
            )
        horizon = cat.gc_horizon(txn)
        # only a query of bars or files reads what gc removed: events, changes and days
        # keep the whole history (QA 2026-12-06: refused for them too, in words of the bars)
        reads = {t: _names(only_for, t) for t in ("bars", "files")}
        if as_of is not None and as_of < horizon and only_for is not None and any(reads.values()):
            # a word is not a read (QA 2026-12-08: `query coverage --as-of N` was refused
            # after a gc: it reads days alone, but names its column `bars` and the bars in
            # a comment); a table it does not read is not built either
            read = _tables_missing(only_for, [t for t, named in reads.items() if named])
            reads = {t: t in read for t in reads}
        if as_of is not None and as_of < horizon and any(reads.values()):
            raise QueryError(
                f"--as-of {as_of} (as_of={as_of} in Python): the bars as they were before "
                f"event {horizon} were removed by `incbt gc`; time travel reaches back to "
                f"event {horizon}. Fix: use --as-of {horizon} (as_of={horizon}) or later (the "
                "events, changes and days tables keep the whole history, --as-of any event)"
            )
        # the bars files: one or a few per instrument-month, read only for a query of bars
        # or files; ~8 us each to read and decode (29,000 at the seed's scale: ~240 ms),
        # for bars once per process (Catalog.current_spans), for files every time
        files: list[FileRecord] = []
        if reads["files"]:
            files = cat.current_files(txn) if as_of is None else cat.files_as_of(txn, as_of)
        spans: Sequence[FileSpan | FileRecord] = files
        if reads["bars"] and not files:
            spans = cat.current_spans(txn) if as_of is None else cat.files_as_of(txn, as_of)
        builders = {
            "events": lambda: _events_table(cat, txn, as_of),
            "changes": lambda: _changes_table(cat, txn, as_of),
            "days": lambda: _days_table(cat, txn, as_of),
            "files": lambda: _files_table(files),
            "runs": lambda: _runs_table(cat, txn),
            "sweeps": lambda: _sweeps_table(cat, txn),
            "metrics": lambda: _metrics_table(cat, txn),
            "failed": lambda: _failed_table(cat, txn),
        }
        current = as_of is None  # results as they are now: not in a session of the past
        results = [t for t in ("daily", "fills") if _names(only_for, t)]
        if current and results:
            _register_results(ctx, root, cat, txn, runs, results)
        if _names(only_for, "bars"):
            if spans:
                register_bars(ctx, root, spans)
            else:  # a store of no bars: a view of no file would be no table
                ctx.register_record_batches("bars", [[pa.RecordBatch.from_pylist([], BARS_SCHEMA)]])
        for name, build in builders.items():
            if not _names(only_for, name) or (not current and name in CURRENT_ONLY):
                continue
            table = build()
            batches = table.to_batches() or [pa.RecordBatch.from_pylist([], table.schema)]
            ctx.register_record_batches(name, [batches])
    for name, build in (extra or {}).items():  # tables computed by the caller
        if _names(only_for, name) and (as_of is None or name not in CURRENT_ONLY):
            table = build()
            ctx.register_record_batches(
                name, [table.to_batches() or [pa.RecordBatch.from_pylist([], table.schema)]]
            )
    return ctx


def _runs_table(cat: Catalog, txn: Any) -> pa.Table:
    import json

    from incbt.catalog import runs as rc
    from incbt.engine.strategies import BUILTINS

    every = list(rc.runs(cat, txn))
    # dropped, or a replacement not complete yet: not shown (a replaced run is, with
    # the run that replaced it)
    shown_replaced = {r.run_id for r in every if r.superseded_by and r.dropped_seq is None}
    unseen = rc.hidden(every) - shown_replaced
    recs = [r for r in every if r.run_id not in unseen]
    # a column for each parameter of the built-ins and of every run ever registered: a
    # saved query's p_fast does not fail once no run shown has it (found 2026-12-05)
    pnames = sorted(
        {k for r in every for k in r.params}
        | {p.name for strat in BUILTINS.values() for p in strat.params}
    )
    n_all = len(cat.instruments(txn)) if any(r.universe == "all" for r in recs) else 0
    cols: dict[str, list] = {
        "run_id": [r.run_id for r in recs],
        "strategy": [r.strategy for r in recs],
        "code_version": [r.code_version for r in recs],
        # a run with no start date (from each instrument's first bar) shows NULL
        "start": [
            None if r.start == "0001-01-01" else int(np.datetime64(r.start, "D").astype(np.int64))
            for r in recs
        ],
        "universe": [
            r.universe if isinstance(r.universe, str) else ",".join(r.universe) for r in recs
        ],
        # an "all" run's: every instrument the store holds (its capital's count, which
        # NULL left unread: QA 2026-12-06)
        "instruments": [
            n_all
            if r.universe == "all"
            else None
            if isinstance(r.universe, str)
            else len(r.universe)
            for r in recs
        ],
        "notional": [r.exec_params["notional"] for r in recs],
        "fee_bps": [r.exec_params["fee_bps"] for r in recs],
        "slippage_bps": [r.exec_params["slippage_bps"] for r in recs],
    }
    # a parameter whose every value (any run's, shown or not) and every built-in's
    # declaration is whole is an integer column: p_fast 5, not 5.0 (a sweep's grid and
    # the runs table disagreed); else floats
    whole = {
        n
        for n in pnames
        if all(isinstance(r.params[n], int) for r in every if n in r.params)
        and all(p.type is int for b in BUILTINS.values() for p in b.params if p.name == n)
    }
    for n in pnames:
        cast = int if n in whole else float
        cols[f"p_{n}"] = [None if n not in r.params else cast(r.params[n]) for r in recs]
    cols["params"] = [json.dumps(r.params, sort_keys=True) for r in recs]
    cols["source"] = [r.source for r in recs]
    cols["created_seq"] = [r.created_seq for r in recs]
    cols["superseded_by"] = [r.superseded_by for r in recs]
    cols["fork_of"] = [r.fork["base"] if r.fork else None for r in recs]
    cols["fork_effective"] = [
        int(np.datetime64(r.fork["effective"], "D").astype(np.int64)) if r.fork else None
        for r in recs
    ]
    schema = pa.schema(
        [
            ("run_id", pa.string()),
            ("strategy", pa.string()),
            ("code_version", pa.string()),
            ("start", pa.date32()),
            ("universe", pa.string()),
            ("instruments", pa.int64()),
            ("notional", pa.float64()),
            ("fee_bps", pa.float64()),
            ("slippage_bps", pa.float64()),
            *((f"p_{n}", pa.int64() if n in whole else pa.float64()) for n in pnames),
            ("params", pa.string()),
            ("source", pa.string()),
            ("created_seq", pa.int64()),
            ("superseded_by", pa.string()),
            ("fork_of", pa.string()),
            ("fork_effective", pa.date32()),
        ]
    )
    return pa.table(cols, schema=schema)


SWEEPS_SCHEMA = pa.schema(
    [
        ("sweep", pa.string()),
        ("run_id", pa.string()),
        ("strategy", pa.string()),
        ("point", pa.int64()),
    ]
)


FAILED_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("instrument", pa.string()),
        ("seq", pa.int64()),
        ("through", pa.date32()),
        ("error", pa.string()),
    ]
)


def _failed_table(cat: Catalog, txn: Any) -> pa.Table:
    """The (run, instrument) pairs whose strategy failed: the event of the commit that
    found it, the last day then computed, the error (see ``incbt.catalog.runs``)."""
    from incbt.catalog import runs as rc

    rows = sorted(rc.failures(cat, txn).items())
    return pa.table(
        {
            "run_id": [k[0] for k, _ in rows],
            "instrument": [k[1] for k, _ in rows],
            "seq": [f["seq"] for _, f in rows],
            "through": pa.array([f["through"] for _, f in rows], pa.int32()).cast(pa.date32()),
            "error": [f["error"] for _, f in rows],
        },
        schema=FAILED_SCHEMA,
    )


def _sweeps_table(cat: Catalog, txn: Any) -> pa.Table:
    """One row per (sweep, run); a replaced run is followed to the run that replaced it."""
    import json

    from incbt.catalog import runs as rc

    rows: dict[str, list] = {f.name: [] for f in SWEEPS_SCHEMA}
    with txn.cursor(cat.env.db(b"sweeps")) as cur:
        for _, v in cur:
            rec = json.loads(v)
            # a dropped point is left out: computed again by `sweep --resume`
            for i, rid in rc.standing(cat, txn, rec["runs"]):
                rows["sweep"].append(rec["name"])
                rows["run_id"].append(rid)
                rows["strategy"].append(rec["spec"]["strategy"])
                rows["point"].append(i)
    return pa.table(rows, schema=SWEEPS_SCHEMA)


def _metrics_table(cat: Catalog, txn: Any) -> pa.Table:
    """Every live run's metric rows, built column by column from the catalog's values."""
    from incbt.catalog import runs as rc

    gone = rc.hidden_ids(cat, txn)
    rids, insts, values = rc.all_metrics(cat, txn)
    if gone:
        keep = [k for k, rid in enumerate(rids) if rid not in gone]
        rids, insts, values = [rids[k] for k in keep], [insts[k] for k in keep], values[keep]
    return metrics_table(rids, insts, values)


def _register_results(
    ctx: datafusion.SessionContext,
    root: str,
    cat: Catalog,
    txn: Any,
    runs: Collection[str] | None = None,
    tables: Collection[str] = ("daily", "fills"),
) -> None:
    """``daily`` and ``fills`` (those of ``tables``: a query of fills alone reads no daily
    file, and a daily file lost does not fail it): the committed batch files, superseded
    rows filtered out (``runs``: those runs' rows alone, from the batches holding them)."""
    from incbt.catalog import runs as rc
    from incbt.results import DAILY_SCHEMA, FILLS_SCHEMA, cutoffs

    batches = list(rc.batches(cat, txn))
    only = ""
    if runs is not None:
        assert all(r.isalnum() for r in runs)  # run ids are hex digests: safe to inline
        held = {seg.batch for r in set(runs) for seg in rc.segments(cat, txn, r)}
        batches = [(b, rec) for b, rec in batches if b in held]
        only = f"r.run_id IN ({', '.join(repr(r) for r in sorted(set(runs))) or 'NULL'})"
    cut = cutoffs(cat, txn, runs)
    ctx.register_record_batches(
        "_cutoffs", [cut.to_batches() or [pa.RecordBatch.from_pylist([], cut.schema)]]
    )
    # Only batches with a superseded (run, instrument) need the join with the cutoffs;
    # the rows of the others (every fresh batch) are all valid and are read as they are
    dirty = set(cut.column("batch").to_pylist())
    for name, schema, key in (("daily", DAILY_SCHEMA, "daily"), ("fills", FILLS_SCHEMA, "fills")):
        if name not in tables:
            continue
        parts = []
        for part, which in (("clean", False), ("dirty", True)):
            paths = [os.path.join(root, rec[key]) for b, rec in batches if (b in dirty) is which]
            if not paths:
                continue
            raw = f"_{name}_{part}"
            register_files(ctx, raw, paths, schema)
            cols = ", ".join(f"r.{f.name}" for f in schema if f.name != "batch")
            if which:
                parts.append(
                    f"SELECT {cols} FROM {raw} r LEFT JOIN _cutoffs c ON r.run_id = c.run_id "
                    "AND r.instrument = c.instrument AND r.batch = c.batch "
                    "WHERE (c.valid_until IS NULL OR r.date < c.valid_until)"
                    + (f" AND {only}" if only else "")
                )
            else:
                parts.append(f"SELECT {cols} FROM {raw} r" + (f" WHERE {only}" if only else ""))
        if not parts:
            empty = schema.remove(schema.get_field_index("batch"))
            ctx.register_record_batches(name, [[pa.RecordBatch.from_pylist([], empty)]])
            continue
        ctx.register_view(name, ctx.sql(" UNION ALL ".join(parts)))


def register_files(
    ctx: datafusion.SessionContext, name: str, paths: Sequence[str], schema: pa.Schema
) -> None:
    """Table ``name``: the rows of these Parquet files, read by DataFusion's own Parquet
    reader (a table a file, then UNION ALL: its Python binding takes one path a table).

    Not a pyarrow dataset (``ctx.register_dataset``), whose scans DataFusion drives
    through Python iterators: with 2 or more partitions, some plans over such a table waited for
    ever, every thread idle (found 2026-12-07: a stats query windowed by date over
    ``daily`` of 3 result files; the same query over native Parquet tables, or with one
    partition, or over the same rows in memory, ran). DataFusion's reader also prunes
    files and row groups by their statistics (``run_id``, ``date``)."""
    parts = []
    files = _FILES.setdefault(ctx, [])
    for k, path in enumerate(paths):
        # a file gone is an error (a table of a path that is not there is empty: the
        # file's rows would be missing from the results without a word), and so is a
        # file of 0 bytes, which DataFusion's listing skips as a table of no rows (QA
        # 2026-12-07: a daily file emptied outside incbt gave a third of the rows, and
        # run.stats() {} for its runs, exit 0; pyarrow had said "size is 0 bytes")
        if os.stat(path).st_size == 0:
            raise _empty(path)
        ctx.register_listing_table(f"{name}_{k}", path, schema=schema)
        files.append(path)
        parts.append(f"SELECT * FROM {name}_{k}")
    ctx.register_view(name, ctx.sql(" UNION ALL ".join(parts)))


# the Parquet files each session's tables read (register_files), to name a damaged one
_FILES: weakref.WeakKeyDictionary[datafusion.SessionContext, list[str]] = (
    weakref.WeakKeyDictionary()
)


def _damaged_file(ctx: datafusion.SessionContext) -> tuple[str, Exception] | None:
    """The first file of ``ctx``'s tables that cannot be read, with why (a query failed
    with a Parquet error, which DataFusion's reader says without the file): its footer,
    else its pages, each file read whole by DataFusion's reader alone (QA 2026-12-07: a
    byte flipped in a daily file's page failed the stats query with "LZ4RawCodec
    uncompress_size is not the expected one", said as a damaged bars file to fix with
    `incbt verify --bars`; its footer read, and pyarrow read some such pages that
    DataFusion refuses, "Invalid page header"). Only where a query failed so: the read
    costs what the files hold, batch by batch. None if every file reads."""
    import pyarrow.parquet as pq

    paths = _FILES.get(ctx, [])
    # and the bars files' footers (QA 2026-12-08: read by DataFusion's reader, a bars
    # file cut short was said without its name, where the pyarrow dataset had named it)
    bars = [p for *_, folders in _BARS.get(ctx, []) for _, ps in folders.values() for p in ps]
    for path in [*paths, *bars]:
        try:
            pq.read_metadata(path)
        except (OSError, pa.ArrowException) as exc:
            return path, exc
    for path in paths:
        one = datafusion.SessionContext()
        try:
            one.register_listing_table("f", path)
            for _ in one.sql("SELECT * FROM f").execute_stream():
                pass
        except Exception as exc:  # datafusion raises plain Exception subclasses
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            return path, Exception(lines[-1] if lines else type(exc).__name__)
    return None


def _files_gone(ctx: datafusion.SessionContext, label: str) -> IncbtError | None:
    """The error for a file of ``ctx``'s tables that is gone or empty now, else None.

    A listing table finds its file when a query is planned, and finding none (a file
    removed since the session was made: a `incbt gc` in another process deleting the
    files a compaction left for readers) it reads no row, without an error (QA
    2026-12-07: a session made before a gc gave ``count(*)`` 0 of ``daily``; through
    pyarrow datasets, the read had failed). A file there when the query ended was there
    when it was planned (results files are never written again under their name), so
    the result read every row of it."""
    for path in _FILES.get(ctx, []):
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            return _removed(label, path)
        if size == 0:
            return _empty(path)
    # bars: a link whose file is gone is skipped by DataFusion's listing, as a table of
    # no rows; a view removed (unused for a day) lists nothing, a leaf removed nothing of
    # its instrument
    for view, view_links, folders in _BARS.get(ctx, []):
        gone = bars_view.broken(view, view_links)
        if gone is not None:
            return _removed(label, gone)
        gone = _bars_gone(folders)
        if gone is not None:
            return _removed(label, gone)
    return None


def _removed(label: str, path: str) -> QueryError:
    """The error for a query that read a file removed while it ran (``.missing``: its
    path, for run_sql_fresh to run it again on a new session)."""
    err = QueryError(
        f"{label} failed: a file it was reading was removed while it ran (by `incbt gc`, "
        "or a compaction of results); run it again (`incbt status` says how far back "
        "--as-of reaches now)"
    )
    err.missing = path  # type: ignore[attr-defined]
    return err


def _empty(path: str) -> IncbtError:
    """The error for a results file of 0 bytes (DataFusion's listing reads it as a table
    of no rows)."""
    from incbt.store import damaged_store_file

    return damaged_store_file(path, Exception("it is empty, 0 bytes"))


def _names(sql: str | None, table: str) -> bool:
    return sql is None or re.search(rf"\b{table}\b", sql, re.I) is not None


def _tables_missing(sql: str, names: Sequence[str]) -> list[str]:
    """Of ``names`` (tables a session of the past does not hold, or bars and files gc
    removed), those the query reads as tables: planned in a session without them, the
    query says which it misses (QA 2026-12-06: a word match refused `SELECT runs, failed
    FROM events --as-of 8`, the events table's own columns). The tables a session of the
    past holds are there, empty, with their own columns: a query of their columns plans
    on to a table it misses (with a column of any name, DataFusion said the first missing
    column of a CTE before a table read after it). A query that does not plan for
    another reason (a placeholder, an error of its own): the names as matched, refused as
    before; an error in its columns, none (its own error is said when it runs)."""
    ctx = _context()
    ctx.register_udf(JSON_GET)
    past = {
        "bars": BARS_SCHEMA,
        "files": FILES_SCHEMA,
        "events": EVENTS_SCHEMA,
        "changes": CHANGES_SCHEMA,
        "days": DAYS_SCHEMA,
    }
    for t, schema in past.items():
        if t not in names:
            ctx.register_record_batches(t, [[pa.RecordBatch.from_pylist([], schema)]])
    try:
        ctx.sql(sql)
    except Exception as exc:  # noqa: BLE001 - DataFusion's errors are plain Exceptions
        m = re.search(r"table '(?:[\w.]*\.)?(\w+)' not found", str(exc))
        if m:
            return [m.group(1)] if m.group(1) in names else []
        return list(names) if "Schema error" not in str(exc) else []
    return []


def run_sql_fresh(
    make_ctx: Callable[[], datafusion.SessionContext], query: str, *args: Any, **kw: Any
) -> pa.Table:
    """:func:`run_sql` on a session ``make_ctx()`` makes; a file removed under it (a gc
    or a compaction that committed meanwhile) is read past by running it once more, on
    a new session. The same file missing again was not removed by incbt: the store was
    changed outside it, said so (found by QA 2026-12-05: "run it again", which failed
    the same way)."""

    def once() -> pa.Table:
        try:
            ctx = make_ctx()
        except FileNotFoundError as exc:  # removed between the catalog's listing and the
            # session's opening of it (QA 2026-12-06: said as the store changed outside
            # incbt, "restore it from a backup", where a gc had just committed)
            err = QueryError(f"a file was removed while the query began: {exc}")
            err.missing = exc.filename or str(exc)  # type: ignore[attr-defined]
            raise err from None
        return run_sql(ctx, query, *args, **kw)

    try:
        return once()
    except QueryError as exc:
        path = getattr(exc, "missing", None)
        if path is None:
            raise
    try:
        return once()
    except QueryError as again:
        if path and getattr(again, "missing", None) == path:
            label = f"query {kw['name']}" if kw.get("name") else "SQL"
            raise QueryError(
                f"{label} failed: the store's file {path} is missing, though its catalog "
                "lists it: the store was changed outside incbt. `incbt status` checks its "
                f"files; {lost_file_fix(path)}"
            ) from None
        raise


# AND/OR terms of a query DataFusion 55 plans: a chain of 6,000 overflowed its stack
# (a SIGSEGV); 5,000 planned (measured 2026-12-06)
MAX_BOOLEAN_TERMS = 3000
_BOOLEAN = re.compile(r"\b(?:and|or)\b", re.I)


def run_sql(
    ctx: datafusion.SessionContext,
    query: str,
    params: dict[str, Any] | None = None,
    name: str | None = None,
    typed: dict[str, str] | None = None,
) -> pa.Table:
    """Run one SQL statement and return its result as an Arrow table.

    A value of ``params`` the query cannot take (``-p n=abc`` where ``LIMIT $n`` needs
    an integer, ``-p day=notadate`` where ``$day`` is compared with a date) is a
    UsageError naming the parameter, the value and the type wanted; any other failure
    a QueryError.

    ``typed``: the text of values read as numbers from text (``-p sweep=2024``): a value
    is bound as its text where the query plans with it so, else as the number
    (``LIMIT $n``, ``$x + 1``). Text compared with a number column is taken as a number
    by DataFusion, so only text columns see the text: found 2026-12-05, bound as
    numbers, ``sweep = $s`` cast the names to numbers and ``-p s=7`` matched the
    sweeps named 7 and 007.
    """
    label = f"query {name}" if name else "SQL"
    terms = len(_BOOLEAN.findall(query))
    if terms > MAX_BOOLEAN_TERMS:  # DataFusion's planner recursed past its stack, and the
        # process died of SIGSEGV without a word (QA 2026-12-06: 6,000 terms)
        raise QueryError(
            f"{label}: {terms:,} AND/OR terms, more than the SQL engine can plan (at most "
            f"{MAX_BOOLEAN_TERMS:,}). Fix: put the values in IN (...) lists, or in a VALUES "
            "table joined to the query"
        )
    # read-only: no COPY ... TO a file, no CREATE, INSERT or SET (the store's files and
    # catalog are written by incbt's commands alone)
    options = (
        datafusion.SQLOptions()
        .with_allow_ddl(False)
        .with_allow_dml(False)
        .with_allow_statements(False)
    )
    if params:  # before text is tried: '20240305' cast to a date is a year far away
        _no_number_for_a_date(ctx, query, options, params, name, typed or {})
    if typed and params:
        params = _as_text_where_it_plans(ctx, query, options, params, typed)
    df = None
    try:
        df = ctx.sql_with_options(query, options, param_values=params or None)
        out = df.to_arrow_table()
    except Exception as exc:  # datafusion raises plain Exception subclasses
        bad = _bad_value(ctx, query, options, params, df, name, typed) if params else None
        if bad is not None:
            raise bad from None
        # DataFusion's own words were its whole message (QA 2026-12-05); in a LIMIT, its
        # plan's internals (QA 2026-12-07)
        m = re.search(r"Placeholder '\$(\w+)' was not provided", str(exc)) or re.search(
            r'Placeholder\(Placeholder \{ id: "\$(\w+)"', str(exc)
        )
        if m and m.group(1) not in (params or {}):
            k = m.group(1)
            where = f"query {name}: " if name else ""
            raise UsageError(
                f"{where}the SQL uses ${k} and no value was given for it: give -p {k}=VALUE "
                f"(params={{{k!r}: ...}} in Python)"
            ) from None
        if "No such file or directory" in str(exc):  # raced a gc or a compaction (QA
            # 2026-12-05: DataFusion's FileNotFoundError, as a query failure)
            m = re.search(r"open local file '([^']+)'", str(exc))
            raise _removed(label, m.group(1) if m else "") from None
        m = re.search(r"Could not open Parquet input source '([^']+)': (.+?)(\.|$)", str(exc))
        if m:  # a store file damaged (QA 2026-12-06: DataFusion's words, no fix)
            from incbt.store import damaged_store_file

            raise damaged_store_file(m.group(1), Exception(m.group(2))) from None
        if _PARQUET_DAMAGE.search(str(exc)):  # DataFusion's own reader names no file (QA
            # 2026-12-07: nor was a damaged page header, "Parquet argument error: EOF:
            # Invalid page header", looked for: it was said as a damaged bars file)
            found = _damaged_file(ctx)
            if found is not None:
                from incbt.store import damaged_store_file

                raise damaged_store_file(*found) from None
        m = re.search(r"Cannot cast string '[^']*' to value of (U?Int|Float)\d+ type", str(exc))
        numbers = [k for k, v in (params or {}).items() if isinstance(v, int | float)]
        hint = ""
        if m and numbers and params:  # perhaps a number compared with a text column: the
            # data is cast to the value's type, and fails on it (QA 2026-12-06: it read as
            # bad data); a hint, since the cast may be the SQL's own (review 2026-12-06)
            k = numbers[0]
            hint = (
                f"; if the query compares a parameter given as a number (${k} = "
                f"{params[k]!r}) with text, give it as text: params={{{k!r}: "
                f"{str(params[k])!r}}}"
            )
        if _PARQUET_DAMAGE.search(str(exc)):  # a file damaged inside (a flipped bit keeps
            # its size): DataFusion names no file (QA 2026-12-06: its words alone, no fix)
            hint = (
                ". Fix: a store file is damaged; `incbt verify --bars` names a damaged bars "
                "file and how to repair it (`incbt ingest --rewrite` from the original data)"
            )
        if "Typed literal requires a string payload" in str(exc):  # DATE $a (QA 2026-12-06)
            hint = (
                "; a typed literal takes quoted text (DATE '2024-01-05'): for a "
                "parameter, write CAST($name AS DATE)"
            )
        verb = _writing_verb(query)
        if verb:  # refused whatever else is wrong with it (QA 2026-12-06: a malformed
            # INSERT said "Inconsistent data length", a COPY without a format "use STORED
            # AS", which would then be refused)
            raise QueryError(
                f"{label}: {verb} is not run here. Fix: queries only read (SELECT, EXPLAIN, "
                "SHOW); write a result to a file with --output csv|json|parquet -o FILE"
            ) from None
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        text = lines[0] if lines else type(exc).__name__
        if len(lines) > 1:  # DataFusion puts the cause last
            text += f" ({lines[-1]})"
        fix = _table_hint(text) or hint or _sql_fix(text)
        raise QueryError(f"{label} failed: {text}{fix}") from None
    gone = _files_gone(ctx, label)
    if gone is not None:  # (run_sql_fresh runs it again on a new session)
        raise gone
    return out


# what DataFusion's and pyarrow's readers say of a Parquet file damaged inside
_PARQUET_DAMAGE = re.compile(
    r"Parquet error|Parquet argument error|Page was smaller|Unexpected end of stream|"
    r"deserialize thrift|Corrupt|invalid page|decompress",
    re.I,
)


def _sql_fix(error: str) -> str:
    """The fix for a query that failed on its own terms (QA 2026-12-07: a division by
    zero, a cast or an unknown column said DataFusion's words alone, no fix)."""
    if "Too many open files" in error:  # the process's, not the query's (QA 2026-12-07)
        return f". {EMFILE_FIX}"
    if "Divide by zero" in error:
        return ". Fix: guard the divisor: x / NULLIF(y, 0) is NULL where y is 0"
    if "Error parsing timestamp" in error:
        return (
            ". Fix: write a time as TIMESTAMP '2024-01-05 09:30:00' (UTC) and a day as "
            "DATE '2024-01-05'"
        )
    if re.search(r"Cast error|Cannot cast", error):
        return ". Fix: TRY_CAST(x AS type) is NULL where a value cannot be cast"
    if "No field named" in error:
        return ". Fix: DESCRIBE <table> lists a table's columns (README.md, SQL tables)"
    if "Unsupported" not in error and re.search(
        r"Execution error|Compute error|out of range|Arrow error", error
    ):
        return (
            ". Fix: an expression of the query failed on a value it met: guard it (CASE "
            "WHEN ... THEN ... END, NULLIF, TRY_CAST)"
        )
    return (
        ". Fix: check the SQL (DataFusion's dialect, much like PostgreSQL's; README.md, SQL tables)"
    )


# statements that write (a file, a table, a setting): a query is refused them
_WRITING = ("INSERT", "UPDATE", "DELETE", "COPY", "CREATE", "DROP", "ALTER", "SET", "TRUNCATE",
            "MERGE", "REPLACE", "RESET", "DEALLOCATE", "PREPARE", "EXECUTE")  # fmt: skip
_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.S)


def _writing_verb(query: str) -> str:
    """The statement's first word where it is one that writes (INSERT, COPY, ...), after
    comments and parentheses; else ''."""
    m = re.match(r"[A-Za-z]+", query[_LEADING.match(query).end() :])  # type: ignore[union-attr]
    word = m.group(0).upper() if m else ""
    return word if word in _WRITING else ""


def _as_text_where_it_plans(
    ctx: datafusion.SessionContext,
    query: str,
    options: datafusion.SQLOptions,
    params: dict[str, Any],
    typed: dict[str, str],
) -> dict[str, Any]:
    """``params`` with each value read from text as a number (``typed``: the text) bound
    as the text where the query plans with it so, the other values NULL (planning only:
    no data is read)."""
    out = dict(params)
    nulls: dict[str, Any] = dict.fromkeys(params)
    for k, text in typed.items():
        # where it does not plan with the text: the number (or the SQL fails whatever
        # the value)
        if k in params and params[k] != text and _plans(ctx, query, options, {**nulls, k: text}):
            out[k] = text
    return out


def _plan_error(
    ctx: datafusion.SessionContext,
    query: str,
    options: datafusion.SQLOptions,
    values: dict[str, Any],
) -> str | None:
    """Why the query does not plan with these values (None: it does). Planning only: no
    data is read."""
    try:
        ctx.sql_with_options(query, options, param_values=values).execution_plan()
    except Exception as exc:
        return str(exc)
    return None


def _plans(
    ctx: datafusion.SessionContext,
    query: str,
    options: datafusion.SQLOptions,
    values: dict[str, Any],
) -> bool:
    """Whether the query plans with these values."""
    return _plan_error(ctx, query, options, values) is None


def _no_number_for_a_date(
    ctx: datafusion.SessionContext,
    query: str,
    options: datafusion.SQLOptions,
    params: dict[str, Any],
    name: str | None,
    typed: dict[str, str],
) -> None:
    """An integer where the query uses the parameter as a date is bad usage: DataFusion
    takes it as days since 1970-01-01, so ``-p day=20240305`` against ``date = $day``
    matched nothing, without a word (found 2026-12-05). Told apart by planning: a
    parameter used as a date plans with a date and not with a fraction (an integer
    column or ``$x + 1`` takes both, ``LIMIT`` neither)."""
    ints = [
        k
        for k, v in params.items()
        if isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)
    ]
    if not ints:
        return
    nulls: dict[str, Any] = dict.fromkeys(params)
    if not _plans(ctx, query, options, nulls):
        return  # the SQL fails whatever the values: its own error says why
    for k in ints:
        if _plans(ctx, query, options, {**nulls, k: datetime.date(2000, 1, 3)}) and not _plans(
            ctx, query, options, {**nulls, k: 0.5}
        ):
            what, fix = _type_words("Date32", k)
            raise _usage(k, params[k], name, what, fix, typed.get(k))


def _bad_value(
    ctx: datafusion.SessionContext,
    query: str,
    options: datafusion.SQLOptions,
    params: dict[str, Any],
    df: datafusion.DataFrame | None,
    name: str | None,
    typed: dict[str, str] | None = None,
) -> UsageError | None:
    """After the query failed: the parameter whose value it cannot take, as a UsageError
    naming it, the value and the type the query uses it as; None when the failure is not
    about a value given (the SQL is wrong whatever the values, or it failed on the data).

    A query with every value NULL (which fits anything) plans; the first parameter (in
    the order of the SQL) that makes it fail alone, the others NULL, is the one. Planning
    only (no data is read), and only once the query failed."""
    from incbt.queries import value_params_in_order

    shown = typed or {}
    for k, v in params.items():
        try:
            pa.scalar(v)
        except OverflowError:  # DataFusion binds 64-bit integers
            most = f"give an integer of at most {2**63 - 1:,}"
            return _usage(k, v, name, "a number (Int64)", most, shown.get(k))
        except (pa.ArrowException, TypeError, ValueError):
            pass  # not a value Arrow takes: DataFusion's error says so

    if df is not None:
        try:
            df.execution_plan()
            return None  # it planned with these values, and failed running: not a value
        except Exception:
            pass
    nulls: dict[str, Any] = dict.fromkeys(params)
    if not _plans(ctx, query, options, nulls):
        return None  # the SQL fails whatever the values
    order = [k for k in value_params_in_order(query) if k in params]
    for k in order + [k for k in params if k not in order]:
        if params[k] is None:
            continue
        error = _plan_error(ctx, query, options, {**nulls, k: params[k]})
        said = "Cannot cast string '"
        if error and said in error and f"{said}{params[k]}'" not in error:
            # a stored value cast to the value's type (bars' instrument is, as its files
            # are pruned, at planning): the data's error, said with a hint (QA 2026-12-08)
            continue
        if error is not None:
            return _usage(k, params[k], name, *_wanted(error, params[k], k), shown.get(k))
    return None


def _usage(
    k: str, v: Any, name: str | None, what: str, fix: str, text: str | None = None
) -> UsageError:
    """``text``: the value as typed on the command line (``1e0``, bound as 1.0)."""
    if text is not None:
        given = f"-p {k}={text}"
    else:
        given = f"-p {k}={v!r}" if isinstance(v, str) else f"-p {k}={v}"
    where = f"query {name}: " if name else ""
    return UsageError(
        f"{where}{given} (params={{{k!r}: {v!r}}} in Python): the query uses ${k} as {what}; {fix}"
    )


# a DataFusion type in its messages: Int64, Date32, Timestamp(ns, "UTC"), Decimal128(38, 10)
_DF_TYPE = re.compile(
    r"Timestamp\([^)]*\)|Decimal\d*\([^)]*\)|Date\d+|U?Int\d+|Float\d+|Boolean|(?:Large)?Utf8(?:View)?"
)


def _wanted(error: str, value: Any, k: str) -> tuple[str, str]:
    """What the query uses a parameter as, and the fix, from DataFusion's error about its
    value (alone in the query, the other parameters NULL)."""
    m = re.search(r"\b(LIMIT|OFFSET) must be >= ?0|Expected (LIMIT|OFFSET) to be an integer", error)
    if m:
        return f"a number of rows ({m.group(1) or m.group(2)})", "give a whole number, 0 or more"
    m = re.search(r"Cannot cast string .* to value of (\w+) type", error)
    m = m or re.search(r"Unsupported CAST from \w+ to (\w+)", error)
    m = m or re.search(r"requires (\w+), but received", error)
    if m:
        return _type_words(m.group(1), k)
    if "Error parsing timestamp" in error:
        return _type_words("Timestamp", k)
    # "comparison operation Date32 = Float64", "arithmetic expression Utf8 + Int64", "coerce
    # Utf8 and Int64 in LIKE expression": the type that is not the value's own
    m = re.search(r"(?:comparison|arithmetic|coerce) .*", error)
    if m:
        own = {bool: "Boolean", int: "Int64", float: "Float64", str: "Utf8"}.get(type(value))
        others = [t for t in _DF_TYPE.findall(m.group(0)) if t != own]
        if others and own is not None:
            return _type_words(others[0], k)
    if "expects Numeric" in error or "arithmetic" in error:
        return "a number", "give a number"
    lines = [ln.strip() for ln in error.strip().splitlines() if ln.strip()]
    cause = next((ln for ln in lines if ln.startswith(_CAUSES)), lines[-1] if lines else error)
    return (
        f"a value of another type (DataFusion: {cause[:300]})",
        f"give a value of the type the SQL uses ${k} as",
    )


# the lines of DataFusion's errors that say what went wrong (the others say where)
_CAUSES = ("Error during planning", "Arrow error", "This feature is not implemented")


def _type_words(t: str, k: str) -> tuple[str, str]:
    """A DataFusion type as a user says it, and how to give a value of it."""
    if re.match(r"U?Int", t):
        return f"a number ({t})", "give an integer"
    if t.startswith(("Float", "Decimal")):
        return f"a number ({t})", "give a number"
    if t.startswith("Date"):
        return f"a date ({t})", "give a date as YYYY-MM-DD, e.g. 2024-03-05"
    if t.startswith("Timestamp"):
        return (
            "a time (Timestamp)",
            "give a date or an ISO-8601 time, e.g. 2024-03-05 or 2024-03-05T14:30:00Z",
        )
    if t == "Boolean":
        return "true or false (Boolean)", "give true or false"
    if "Utf8" in t:
        return (
            f"text ({t})",
            "give text (a -p value that reads as a number is bound as a number: write "
            f"CAST(${k} AS VARCHAR) in the SQL to take it as text)",
        )
    return t, f"give a value of type {t}"


TABLES = ("bars", "events", "changes", "days", "files", "runs", "sweeps", "daily", "fills",
          "metrics", "stale", "failed")  # fmt: skip
# tables of the results, which are kept as they are now (no time travel)
CURRENT_ONLY = ("runs", "sweeps", "daily", "fills", "metrics", "stale", "failed")


def _table_hint(error: str) -> str:
    """For an unknown table: the closest table name, and the list of them all; for a
    statement that writes, that queries are read-only; for a parse error, where the
    statements are explained."""
    if re.search(r"(DDL|DML|Statement) not supported", error):
        return (
            ". Fix: queries only read (SELECT, EXPLAIN, SHOW); write a result to a file with "
            "--output csv|json|parquet -o FILE"
        )
    if "ParserError" in error or "SQL error" in error:
        return (
            ". Fix: check the SQL (DataFusion's dialect, much like PostgreSQL's); the "
            "store's tables are " + ", ".join(TABLES) + " (README.md, SQL tables)"
        )
    m = re.search(r"table '(?:[^'.]+\.)*([^'.]+)' not found", error)
    if m is None:
        return ""
    close = difflib.get_close_matches(m.group(1).lower(), TABLES, n=1)
    maybe = f"did you mean {close[0]!r}? " if close else ""
    return (
        f". Fix: {maybe}the store's tables are {', '.join(TABLES)} (README.md, SQL tables); "
        "`incbt query --list` shows the named queries"
    )
