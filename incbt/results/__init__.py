"""Results: per-batch Parquet files, committed with their snapshots in one transaction.

A *batch* is one commit (a ``backtest``, an ``update``, a piece of either): it
writes ``results/daily/<batch>.parquet`` and ``results/fills/<batch>.parquet``
with the rows of every (run, instrument) segment it computed, in the plan's
order (by instrument, then run, then time), then one LMDB transaction records
the batch, its segments, the snapshots and the metrics. On Ray, each worker
call writes its tasks' rows as a batch of its own (:class:`PartFiles`), and one
commit records several batches. Until that transaction commits the files are
invisible (SQL reads the catalog's list) and a crash leaves them as orphans for
the next writer to delete.

A row of batch b for (run, instrument) stays valid until a later batch of the
same pair starts on or before its day (a recomputation from D always runs to
the end). SQL's ``daily`` and ``fills`` apply that rule (see
:func:`cutoffs`), so superseded rows are never mixed with valid ones.

Snapshot retention (store setting ``snapshot_keep_days``, N): the snapshot of
every one of a pair's last N days (and of the rest of the 16-day block the oldest
of them falls in: :func:`retained`), and before that the last day of each month.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import os
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from incbt.bars.layout import fsync_dir, fsync_file
from incbt.catalog import Catalog
from incbt.catalog import runs as rc
from incbt.results.metrics import (
    ACC_WIDTH,
    finalize,
    fold_portfolio,
    initial_acc,
    portfolio_pnl,
)

DAILY_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("instrument", pa.string()),
        ("date", pa.date32()),
        ("equity", pa.float64()),
        ("pnl", pa.float64()),
        ("pos", pa.float64()),
        ("fees", pa.float64()),
        ("fills", pa.int64()),
        ("turnover", pa.float64()),
        ("batch", pa.int64()),
    ]
)
FILLS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("instrument", pa.string()),
        ("ts", pa.timestamp("ns", tz="UTC")),
        ("date", pa.date32()),
        ("qty", pa.float64()),
        ("price", pa.float64()),
        ("fee", pa.float64()),
        ("batch", pa.int64()),
    ]
)


def required(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every column required (not nullable), as results files are written
    since 2026-12-05: a result has no null, and a nullable column's definition levels
    took ~38% of a fills row group's encoding (113,849 fills: 6.5 -> 4.0 ms). Files
    written before keep nullable columns; every reader reads both (SQL by the nullable
    schemas above, compaction casts each file to them)."""
    return pa.schema([f.with_nullable(False) for f in schema])


def _dictionary_strings(schema: pa.Schema) -> pa.Schema:
    """The schema a batch file is built with: run_id and instrument dictionary-encoded,
    every column required."""
    d = pa.dictionary(pa.int32(), pa.string())
    return required(
        pa.schema(
            [pa.field(f.name, d) if f.name in ("run_id", "instrument") else f for f in schema]
        )
    )


DAILY_WRITE_SCHEMA = _dictionary_strings(DAILY_SCHEMA)
FILLS_WRITE_SCHEMA = _dictionary_strings(FILLS_SCHEMA)
PORTFOLIO = ""  # the instrument name under which a run's portfolio state is kept


def batch_paths(batch: int) -> tuple[str, str]:
    name = f"{batch:010d}.parquet"
    return os.path.join("results", "daily", name), os.path.join("results", "fills", name)


RECENT_BLOCK = 16  # calendar days: the recent window moves by whole blocks (see retained)


def _recent_floor(seq: np.ndarray, keep: int) -> int:
    """First day of the recent window: the start of the block holding the keep-th last day."""
    if len(seq) == 0:
        return 2**31
    d = int(seq[max(0, len(seq) - keep)])
    return d - d % RECENT_BLOCK


def retained(days: np.ndarray, keep: int) -> np.ndarray:
    """Mask of the days whose snapshot is kept: the recent window, and each month's last.

    The recent window holds the last ``keep`` days and the rest of the
    ``RECENT_BLOCK``-day calendar block the oldest of them falls in, so it moves
    by whole blocks: a daily update deletes old snapshots about once every 11
    trading days, all of a pair's at once (one page), instead of one day each
    time (a second page written per pair and day). At most ~11 days more are kept.
    """
    n = len(days)
    mask = np.zeros(n, dtype=bool)
    if n:
        mask |= days.astype(np.int64) >= _recent_floor(days, keep)
        months = days.astype("datetime64[D]").astype("datetime64[M]")
        mask[:-1] |= months[1:] != months[:-1]
        mask[-1] = True
    return mask


def fallen_out(before: list[int], computed: np.ndarray, keep: int) -> list[int]:
    """Days whose snapshot the retention rule no longer keeps after a commit.

    ``before``: the last ``keep + RECENT_BLOCK`` trading days up to the day a
    segment resumed from (every day of the recent window then is among them);
    ``computed``: the segment's days. A day that leaves the recent window keeps its
    snapshot only if it is the last trading day of its month.
    """
    if not before:
        return []
    old = np.asarray(before, dtype=np.int64)
    seq = np.concatenate([old, computed.astype(np.int64)])
    lo, hi = _recent_floor(old, keep), _recent_floor(seq, keep)
    if hi <= lo:
        return []  # the window did not move to a new block: nothing to delete
    months = seq.astype("datetime64[D]").astype("datetime64[M]")
    out = []
    for i, d in enumerate(before):
        if not lo <= d < hi:
            continue  # kept, or already deleted when the window passed it
        month_end = i + 1 >= len(seq) or months[i + 1] != months[i]
        if not month_end:
            out.append(int(d))
    return out


@dataclass
class CommitSummary:
    batch: int = 0
    seq: int = 0
    runs: int = 0
    segments: int = 0
    days: int = 0
    bars_processed: int = 0
    daily_rows: int = 0
    fills: int = 0
    errors: list[str] = field(default_factory=list)
    # pairs whose task never ran (its workers kept dying): no strategy failed there
    not_run: list[str] = field(default_factory=list)
    truncated: int = 0  # pairs cut after their last day left (``Plan.truncate``)


Rows = dict[str, np.ndarray]

# the columns a task's rows are built in (names as codes; batch is added when written)
_DAILY_F = ("equity", "pnl", "pos", "fees", "fills", "turnover")
_ROW_DTYPES: dict[str, dict[str, type]] = {
    "daily": {"run_id": np.int32, "instrument": np.int32, "date": np.int32}
    | {f: (np.int64 if f == "fills" else np.float64) for f in _DAILY_F},
    "fills": {"run_id": np.int32, "instrument": np.int32, "ts": np.int64, "date": np.int32}
    | dict.fromkeys(("qty", "price", "fee"), np.float64),
}


class RowBuffer:
    """Growable column buffers that tasks' rows are appended to, in place.

    Rows are copied once, from the engine's arrays into these (reused) buffers:
    no per-task arrays, no concatenation into fresh memory (first touches of
    fresh memory are slow here; copies into reused memory fast: DESIGN.md).
    """

    def __init__(self, table: str, capacity: int = 1 << 12) -> None:
        self.dtypes = _ROW_DTYPES[table]
        self.cols: Rows = {c: np.empty(capacity, dt) for c, dt in self.dtypes.items()}
        self.n = 0

    def take(self, m: int) -> Rows:
        """Room for ``m`` more rows: views the caller fills."""
        cap = len(self.cols["run_id"])
        if self.n + m > cap:
            size = max(self.n + m, 2 * cap)
            for c, a in self.cols.items():
                grown = np.empty(size, a.dtype)
                grown[: self.n] = a[: self.n]
                self.cols[c] = grown
        out = {c: a[self.n : self.n + m] for c, a in self.cols.items()}
        self.n += m
        return out

    def rows(self, start: int = 0, stop: int | None = None) -> Rows:
        """Views of rows [start, stop) (all by default)."""
        end = self.n if stop is None else stop
        return {c: a[start:end] for c, a in self.cols.items()}

    def drop_front(self, m: int) -> None:
        """Forget the first ``m`` rows; the rest move to the front."""
        rest = self.n - m
        for a in self.cols.values():
            a[:rest] = a[m : self.n]
        self.n = rest


def add_task_rows(
    r: Any,
    code: Callable[[str], int],
    daily: RowBuffer,
    fills: RowBuffer,
    failed: set[tuple[str, str]] = frozenset(),  # type: ignore[assignment]
) -> None:
    """Append one task's daily and fills rows, its runs in order and each in time order.

    ``run_id`` and ``instrument`` are given as ``code(name)``. Runs whose computation
    failed (``r.errors``), or listed in ``failed``, have no rows.
    """
    t = r.task
    inst = code(t.instrument)
    runs = np.array([code(rid) for rid in t.run_ids], dtype=np.int32)
    ok = np.array(
        [
            e is None and (rid, t.instrument) not in failed
            for rid, e in zip(t.run_ids, r.errors, strict=True)
        ],
        dtype=bool,
    )
    n = len(r.days)
    if n and ok.any():
        every = bool(ok.all())
        keep = np.flatnonzero(ok)
        k = len(keep)
        a = daily.take(k * n)
        a["run_id"].reshape(k, n)[:] = runs[keep][:, None]
        a["instrument"][:] = inst
        a["date"].reshape(k, n)[:] = r.days
        for f in _DAILY_F:
            a[f].reshape(k, n)[:] = r.daily[f] if every else r.daily[f][keep]
    fr = r.fill_run
    o = None
    if len(fr) > 1 and bool((fr[1:] < fr[:-1]).any()):  # the kernel emits set order
        o = np.argsort(fr, kind="stable")
        fr = fr[o]
    sel = ok[fr] if len(fr) else np.zeros(0, dtype=bool)
    if not sel.all():
        o = np.flatnonzero(sel) if o is None else o[sel]
        fr = fr[sel]
    if len(fr):
        a = fills.take(len(fr))
        np.take(runs, fr, out=a["run_id"])
        a["instrument"][:] = inst
        for name, src in (
            ("ts", r.fill_ts),
            ("date", r.fill_day),
            ("qty", r.fill_qty),
            ("price", r.fill_price),
            ("fee", r.fill_fee),
        ):
            if o is None:
                a[name][:] = src
            else:
                np.take(src, o, out=a[name])


def sort_order(keys: list[tuple[np.ndarray, int]], time: np.ndarray | None) -> np.ndarray:
    """The permutation that sorts rows by integer ranks (``keys``: each (ranks, how many
    there are), most significant first), then by ``time``, ties in their order.

    One stable sort of a composite key: rows come grouped and, within a (run,
    instrument), mostly in time order already (a task emits each run's rows so), so
    the time is sorted only if some group is not (a full ``lexsort`` then). For 3.2 M
    fills: ~0.1 s against ~0.4-0.9 s for a lexsort or Arrow's ``sort_indices`` on names.
    Rows that come in runs of one key (a task's rows of one run) are sorted as runs:
    the runs by key, stably, then each run's rows as they are, which is the same
    permutation as the stable sort of every row; their time order is then checked
    within runs and where runs of one key meet, without gathering every row (the
    20-point sweep's verify: ~0.42 s of sorting for its 3.7 M rows).
    """
    n = len(keys[0][0]) if keys else (0 if time is None else len(time))
    key = np.zeros(n, np.int64)
    for ranks, count in keys:
        key = key * count + ranks
    cut = np.flatnonzero(key[1:] != key[:-1]) + 1 if n > 1 else np.zeros(0, np.int64)
    if len(cut) >= n // 8:  # no long runs of one key: sort the rows
        o = np.argsort(key, kind="stable")
        if time is None or n < 2:
            return o
        k, t = key[o], time[o]
        same = k[1:] == k[:-1]
        if bool((t[1:][same] < t[:-1][same]).any()):
            return np.lexsort((time, key))
        return o
    starts = np.concatenate(([0], cut)).astype(np.int64)
    lengths = np.diff(np.append(starts, n))
    by_key = np.argsort(key[starts], kind="stable")
    s, m = starts[by_key], lengths[by_key]
    o = np.arange(n, dtype=np.int64) + np.repeat(s - (np.cumsum(m) - m), m)
    if time is None or n < 2:
        return o
    back = time[1:] < time[:-1]  # within a run (not across the cuts between runs)
    back[cut - 1] = False
    ks = key[s]
    meet = ks[1:] == ks[:-1]  # runs of one key, one after the other once sorted
    if bool(back.any()) or bool((time[s[1:]][meet] < time[(s + m - 1)[:-1]][meet]).any()):
        return np.lexsort((time, key))
    return o


def build_tables(
    results: Iterable[Any], batch: int | None, failed: set[tuple[str, str]]
) -> tuple[pa.Table, pa.Table]:
    """The daily and fills tables of these results in memory, rows sorted by (run,
    instrument, time) (``verify`` compares them with the store; commits stream their
    rows to files instead: :class:`BatchFiles`). ``batch`` None: no batch column."""
    names: dict[str, int] = {}

    def code(name: str) -> int:
        return names.setdefault(name, len(names))

    results = list(results)
    # room for every row at once (at most): the buffers never grow
    bufs = {
        "daily": RowBuffer("daily", sum(len(r.days) * len(r.task.run_ids) for r in results)),
        "fills": RowBuffer("fills", sum(len(r.fill_run) for r in results)),
    }
    for r in results:
        add_task_rows(r, code, bufs["daily"], bufs["fills"], failed)
    rank = np.empty(len(names), dtype=np.int64)
    rank[np.argsort(np.array(list(names), dtype=object))] = np.arange(len(names))
    out = []
    for key, schema, time_col in (
        ("daily", DAILY_WRITE_SCHEMA, "date"),
        ("fills", FILLS_WRITE_SCHEMA, "ts"),
    ):
        if batch is None:
            schema = schema.remove(schema.get_field_index("batch"))
        cols = bufs[key].rows()
        if not len(cols["run_id"]):
            out.append(schema.empty_table())
            continue
        nn = len(names)
        o = sort_order([(rank[cols["run_id"]], nn), (rank[cols["instrument"]], nn)], cols[time_col])
        sorted_cols = {c: a[o] for c, a in cols.items()}
        out.append(_rows_table(schema, sorted_cols, list(names), 0 if batch is None else batch))
    return out[0], out[1]


def _rows_table(
    schema: pa.Schema,
    cols: Rows,
    names: list[str] | pa.Array,
    batch: int | pa.Array,
) -> pa.Table:
    """Rows from :func:`add_task_rows` as a table of ``schema``: names by their codes, the
    batch number in every row (``batch``: the number, or a column of it long enough)."""
    dictionary = names if isinstance(names, pa.Array) else pa.array(names, pa.string())
    n = len(cols["run_id"])
    arrays = []
    for f in schema:
        if f.name in ("run_id", "instrument"):
            arrays.append(
                # the codes index the dictionary by construction: no check of each
                pa.DictionaryArray.from_arrays(
                    pa.array(cols[f.name], pa.int32()), dictionary, safe=False
                )
            )
        elif f.name == "batch":
            if isinstance(batch, pa.Array):
                arrays.append(batch.slice(0, n))
            else:
                arrays.append(pa.array(np.full(n, batch, dtype=np.int64)))
        elif pa.types.is_timestamp(f.type):  # a view: a conversion costs ~9 ms per 1M rows
            arrays.append(pa.array(np.ascontiguousarray(cols[f.name], np.int64)).view(f.type))
        else:
            arrays.append(pa.array(cols[f.name], f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


ROW_GROUP_ROWS = 1 << 15  # rows per row group of a batch file (about 2 MiB of fills)


class BatchFiles:
    """A batch's daily and fills files, written while its tasks' results arrive.

    Rows go in the order results are added (the plan's order: by instrument, then
    run, then time) and row groups are cut every ``ROW_GROUP_ROWS`` rows, so the
    bytes depend on the plan, not on how tasks were split or where they ran; only
    about one row group per table waits in memory (:class:`RowBuffer`), not the
    whole batch. Run and instrument names are dictionary-encoded with one
    dictionary per batch (names in order of first appearance). Files are written
    under ``tmp/`` and listed in the catalog's ``pending`` record first;
    :meth:`close` makes them durable and renames them in, and only the commit's
    transaction makes them visible.
    """

    def __init__(
        self, root: str, cat: Catalog | None, batch: int, listed: bool = False, tag: str = ""
    ) -> None:
        """``listed``: the catalog's ``pending`` record will name the files before
        :meth:`close` renames them in (the transaction of the commit before does).
        ``cat`` None: a worker's files (:meth:`seal`, then the driver publishes them:
        :class:`PartFiles`); ``tag`` then prefixes their names in ``tmp/``, which
        differ from one command to the next."""
        self.root = root
        self.batch = batch
        self.tag = tag
        self.paths = dict(zip(("daily", "fills"), batch_paths(batch), strict=True))
        if cat is not None and not listed:
            cat.env.write(lambda txn: cat.set_pending(txn, list(self.paths.values())))
        self.names: dict[str, int] = {}
        self.rows = {"daily": 0, "fills": 0}
        # room for a row group from the start: pages no row reaches are never touched,
        # and the buffers do not grow (old and new copies at once) on the way there
        self._bufs = {key: RowBuffer(key, ROW_GROUP_ROWS) for key in ("daily", "fills")}
        self._batch_col = pa.array(np.full(ROW_GROUP_ROWS, batch, dtype=np.int64))
        self._writers: dict[str, pq.ParquetWriter] = {}
        os.makedirs(os.path.join(root, "tmp"), exist_ok=True)

    def _code(self, name: str) -> int:
        c = self.names.get(name)
        if c is None:
            c = self.names[name] = len(self.names)
        return c

    def add(self, r: Any, failed: set[tuple[str, str]] = frozenset()) -> None:  # type: ignore[assignment]
        """Append one task's rows (its runs in order, each in time order).

        Runs whose computation failed (``r.errors``), or listed in ``failed``, add none.
        """
        add_task_rows(r, self._code, self._bufs["daily"], self._bufs["fills"], failed)
        for key in ("daily", "fills"):
            self._emit(key, final=False)

    def _emit(self, key: str, final: bool) -> None:
        """Write the buffered rows in whole row groups (all of them if ``final``).

        Each row group is written from the buffer's contiguous columns: Arrow's
        per-array costs come once a row group, not once a task (often a few hundred
        rows). The rows a row group boundary cuts stay buffered. The bytes depend on
        the rows only, not on the tasks they came in (tested).
        """
        buf = self._bufs[key]
        done = 0  # every whole row group first, then the rest moves to the front once
        while buf.n - done >= ROW_GROUP_ROWS or (final and buf.n > done):
            m = min(ROW_GROUP_ROWS, buf.n - done)
            self._write(key, buf.rows(done, done + m))
            done += m
        if done:
            buf.drop_front(done)

    def _write(self, key: str, rows: Rows) -> None:
        schema = DAILY_WRITE_SCHEMA if key == "daily" else FILLS_WRITE_SCHEMA
        names = pa.array(list(self.names), pa.string())
        table = _rows_table(schema, rows, names, self._batch_col)
        w = self._writers.get(key)
        if w is None:  # run_id statistics where they prune: a file of one run's rows
            runs = rows["run_id"]
            one = len(runs) > 0 and runs.min() == runs.max()
            w = self._writers[key] = pq.ParquetWriter(
                self._tmp(key), schema, **_parquet_options(schema, run_stats=bool(one))
            )
        w.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.rows[key] += table.num_rows

    def _tmp(self, key: str) -> str:
        return staging_path(self.root, self.paths[key], self.tag)

    def seal(self, sync: bool = True) -> None:
        """Write what is buffered and make both files durable where they are, in ``tmp/``
        (``sync=False``: written, not yet durable; whoever commits them makes them so:
        :class:`PartFiles`)."""
        for key in ("daily", "fills"):
            self._emit(key, final=True)
            w = self._writers.pop(key, None)
            if w is None:  # no row at all: an empty file, for the catalog to list
                schema = DAILY_WRITE_SCHEMA if key == "daily" else FILLS_WRITE_SCHEMA
                w = pq.ParquetWriter(self._tmp(key), schema, **_parquet_options(schema))
            w.close()
            if sync:
                fsync_file(self._tmp(key))

    def moves(self) -> list[tuple[str, str]]:
        """(file in ``tmp/``, its place), both under the store's root."""
        return [
            (os.path.relpath(self._tmp(k), self.root), self.paths[k]) for k in ("daily", "fills")
        ]

    def records(self) -> list[tuple[int, str, str]]:
        """The batch with its daily and fills files, as the catalog lists them."""
        return [(self.batch, self.paths["daily"], self.paths["fills"])]

    def close(self) -> None:
        """Write what is buffered, make both files durable and rename them in, one file
        after the other (a crash may fall between them: tests/test_update_crash.py)."""
        self.seal()
        for move in self.moves():
            publish(self.root, [move])

    def abort(self) -> None:
        for w in self._writers.values():
            with contextlib.suppress(Exception):
                w.close()
        self._writers.clear()


@dataclass
class Part:
    """A batch whose files a worker wrote in ``tmp/`` (paths relative to the store's
    root), for the driver to make durable, publish and commit (:class:`PartFiles`)."""

    batch: int
    moves: list[tuple[str, str]]
    rows: dict[str, int]


class PartFiles:
    """The batches a command's workers wrote (one :class:`Part` per Ray call), published
    and committed together: the driver encodes no row. Each part is a batch of its own
    (its two files, its segments); the parts of one command are one compaction group.
    """

    def __init__(self, root: str, cat: Catalog) -> None:
        self.root, self.cat = root, cat
        self.parts: list[Part] = []
        # The workers write a part's files and do not wait for them to reach the disk:
        # here a thread makes them durable as their parts arrive, before they are renamed
        # in (close). A worker waiting on its fsyncs left its core idle: with as many
        # workers as cores, each chunk's two fsyncs (~2-5 ms) were the whole machine's
        # (measured 2026-12-06: ~17 ms of each worker's ~92 ms in a 1-set backtest).
        self._syncs: list[Any] = []

    def add(self, r: Any) -> None:
        """A result taken from the executor: the last of a part brings the part."""
        if r.part is not None:
            self.parts.append(r.part)
            self._syncs += [
                _SYNCER.submit(fsync_file, os.path.join(self.root, tmp)) for tmp, _ in r.part.moves
            ]
        elif r.batch is None and (len(r.days) or len(r.fill_run)):
            raise AssertionError(f"{r.task.instrument}: rows outside a part")

    @property
    def batch(self) -> int:
        return self.parts[0].batch if self.parts else 0

    @property
    def rows(self) -> dict[str, int]:
        return {k: sum(p.rows[k] for p in self.parts) for k in ("daily", "fills")}

    def records(self) -> list[tuple[int, str, str]]:
        return [(p.batch, *batch_paths(p.batch)) for p in self.parts]

    def close(self) -> None:
        """Once the parts' files are durable, list their places as pending, then rename
        them in."""
        for f in self._syncs:
            f.result()  # raises what an fsync raised (a full disk, an I/O error)
        self._syncs = []
        moves = [m for p in self.parts for m in p.moves]
        if moves:
            self.cat.env.write(lambda txn: self.cat.set_pending(txn, [m[1] for m in moves]))
            publish(self.root, moves)

    def abort(self) -> None:  # the next writer removes what is in tmp/ or listed pending
        pass


class _Syncer:
    """One thread for every PartFiles of the process (fsyncs wait on the disk, not the
    CPU), started at its first call: a daemon, which never keeps the process from ending.
    A ThreadPoolExecutor's thread is none: a Ctrl-C landing as the pool started it left
    it out of the pool's shutdown, and the interpreter waited for it at exit for ever,
    after the command had said it was interrupted (QA 2026-12-06: 2 of ~100 Ctrl-Cs).
    An fsync cut short by the end of the process leaves a file in ``tmp/``, unlisted:
    the next writer removes it."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        done: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((done, fn, args))
        with self._lock:
            if self._thread is None:
                t = threading.Thread(target=self._serve, name="incbt-fsync", daemon=True)
                t.start()
                self._thread = t
        return done

    def _serve(self) -> None:
        while True:
            done, fn, args = self._queue.get()
            if not done.set_running_or_notify_cancel():
                continue
            try:
                done.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - the caller's result() raises it
                done.set_exception(exc)


_SYNCER = _Syncer()


def _new_syncer() -> None:  # a forked child has none of its parent's threads: one of its own
    global _SYNCER
    _SYNCER = _Syncer()


os.register_at_fork(after_in_child=_new_syncer)


def publish(root: str, moves: Iterable[tuple[str, str]]) -> None:
    """Rename durable files to their places (paths under ``root``), then fsync each
    folder they went to, once."""
    folders = set()
    for tmp, rel in moves:
        final = os.path.join(root, rel)
        folders.add(os.path.dirname(final))
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(os.path.join(root, tmp), final)
    for d in sorted(folders):
        fsync_dir(d)


def staging_path(root: str, rel: str, tag: str = "") -> str:
    """Where the file ``rel`` (a path under ``root``) is written before it is renamed in:
    in the store's ``tmp/``, its name flattened, after ``tag`` (a command's own prefix)."""
    return os.path.join(root, "tmp", tag + rel.replace(os.sep, "-") + ".tmp")


def finish_file(root: str, tmp: str, rel: str) -> None:
    """fsync a written file, rename it to its place, fsync the folder."""
    fsync_file(tmp)
    publish(root, [(os.path.relpath(tmp, root), rel)])


_PARQUET_OPTIONS: dict[str, Any] = {
    # the names, as they are (dictionary arrays); date and batch compress as well plain
    # (their dictionaries cost a hash a row: ~8% of a fills row group's encoding)
    "use_dictionary": ["run_id", "instrument"],
    "store_schema": False,  # plain strings for every reader, whatever the in-memory encoding
}
# columns LZ4 does not shorten (nanosecond times, running float sums: every value
# differs) are written as they are: LZ4 spent ~10% of a fills row group's encoding
# on them for no byte saved
_RAW = frozenset(("ts", "equity", "pnl", "turnover"))


def _parquet_options(schema: pa.Schema, run_stats: bool = False) -> dict[str, Any]:
    """How a results file of ``schema`` is written: LZ4 where it pays (results are
    written on the critical path: encode speed first).

    Min/max statistics only of the columns queries select rows by, which prune row
    groups; those of values (pnl, qty, ...) would prune little and cost ~15% of a fills
    row group's encoding (the 20-point sweep of benchmarks/: best 891 -> 873 ms,
    2026-12-04). ``run_stats``: run_id's min/max too, for files where they prune: rows
    sorted by run first (compaction's files), or a batch whose first row group holds
    one run (a backtest of one run, where a query of that run then skips the row groups
    of other backtests' batches: ``Run.fills`` among 7 such backtests, 100 instruments
    x 100 days, best 54 -> 26 ms, median 65 -> 43; ``Run.daily`` 19 -> 14 ms). A
    sweep's batch has its rows by instrument, then run (the plan's order), so each row
    group holds every run and those statistics would prune nothing: on 20 runs they
    cost ~22% of a fills row group's encoding (0.45 ms of 2.1), on one run ~8%
    (2026-12-04).

    Fill prices sit on the bars' price grid, where LZ4 finds many short matches and is
    slow (~0.65 ms a row group of 32,768 against ~0.2 ms split by byte stream, for 7%
    more bytes). With the plain date and batch: the 20-point sweep of benchmarks/ 867
    -> 832 ms (best of 6 and 5, interleaved, 2026-12-04)."""
    keys = (
        ("run_id", "instrument", "ts", "date", "batch")
        if run_stats
        else ("instrument", "ts", "date", "batch")
    )
    opts = _PARQUET_OPTIONS | {
        "compression": {f.name: "none" if f.name in _RAW else "lz4" for f in schema},
        "write_statistics": [k for k in keys if k in schema.names],
    }
    if "price" in schema.names:
        opts["column_encoding"] = {"price": "BYTE_STREAM_SPLIT"}
    return opts


def write_durable(root: str, rel: str, table: pa.Table) -> None:
    """Write a whole table, its rows sorted by run first, as the file ``rel`` (via
    ``tmp/``), durably."""
    tmp = staging_path(root, rel)
    os.makedirs(os.path.dirname(tmp), exist_ok=True)
    options = _parquet_options(table.schema, run_stats=True)
    pq.write_table(table, tmp, row_group_size=ROW_GROUP_ROWS, **options)
    finish_file(root, tmp, rel)


class DailyRows:
    """Stored daily rows (instrument, date, pnl) of the runs one commit refolds, each
    batch file read once for many of them.

    A run's rows of a batch sit among every other run's of that batch (a sweep's batch
    holds them by instrument, then run: no row group can be skipped), so reading them
    run by run reads the whole file once a run: a sweep finished after an interruption
    refolds the portfolio of each of its 100 runs over the 3 batches committed before
    it, 300 reads of 14 ms (4.2 s of its 11; 2026-12-05). A read here takes the runs
    asking next, in ``order``, up to ``budget`` rows (the segments' row counts say how
    many each holds): memory stays bounded at any store size.
    """

    def __init__(
        self, root: str, cat: Catalog, txn: Any, order: Iterable[str], budget: int = 4_000_000
    ) -> None:
        self.root, self.cat, self.txn, self.budget = root, cat, txn, budget
        self.order = list(order)
        self.rank = {rid: i for i, rid in enumerate(self.order)}
        self.segs: dict[str, list[rc.Segment]] = {}
        self.rows: dict[str, dict[int, int]] = {}  # run -> batch -> its rows there
        self.held: dict[tuple[int, str], tuple[dict[str, int], Any, Any, Any]] = {}
        self.held_in: dict[str, set[int]] = defaultdict(set)  # run -> batches held of it
        self.forgotten = 0  # the runs of ``order`` before this have had their turn
        self.strays: set[str] = set()  # runs asked for outside ``order``

    def segments(self, run_id: str) -> list[rc.Segment]:
        """The run's segments (read once: the budget looks ahead at runs to come)."""
        segs = self.segs.get(run_id)
        if segs is None:
            segs = self.segs[run_id] = list(rc.segments(self.cat, self.txn, run_id))
            if run_id not in self.rank:
                self.strays.add(run_id)
            per: dict[int, int] = defaultdict(int)
            for s in segs:
                per[s.batch] += s.rows
            self.rows[run_id] = dict(per)
        return segs

    def _in(self, run_id: str, batch: int) -> int:
        if run_id not in self.rows:
            self.segments(run_id)
        return self.rows[run_id].get(batch, 0)

    def get(
        self, batch: int, run_id: str
    ) -> tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray]:
        """The run's rows in the batch, in file order: (instrument -> code, each row's
        instrument code, dates, pnl)."""
        # runs before this one in the order have had their turn: what they left goes
        # (each once, as the turns go by: scanning every entry held at each call made
        # finishing an interrupted sweep of 3,000 runs quadratic, 83 of its 88 s;
        # found 2026-12-05)
        i = self.rank.get(run_id, len(self.order))
        for rid in self.strays:
            self.segs.pop(rid, None)
        self.strays.clear()
        while self.forgotten < i:
            rid = self.order[self.forgotten]
            for b in self.held_in.pop(rid, ()):
                self.held.pop((b, rid), None)
            self.segs.pop(rid, None)
            self.forgotten += 1
        got = self.held.pop((batch, run_id), None)
        if got is not None:
            return got
        chunk, total = [run_id], self._in(run_id, batch)
        for rid in self.order[i + 1 :]:
            n = self._in(rid, batch)
            if n and total + n > self.budget:
                break
            if n:
                chunk.append(rid)
                total += n
        t = pq.read_table(
            os.path.join(self.root, batch_paths(batch)[0]),
            columns=["run_id", "instrument", "date", "pnl"],
            filters=[("run_id", "in", chunk)] if len(chunk) > 1 else [("run_id", "=", run_id)],
        )
        enc = t.column("run_id").combine_chunks().dictionary_encode()
        codes = enc.indices.to_numpy(zero_copy_only=False)
        names = enc.dictionary.to_pylist()
        inst = t.column("instrument").combine_chunks().dictionary_encode()
        insts = inst.indices.to_numpy(zero_copy_only=False)
        code = {name: c for c, name in enumerate(inst.dictionary.to_pylist())}
        dates = t.column("date").cast(pa.int32()).to_numpy()
        pnl = t.column("pnl").to_numpy()
        order = np.argsort(codes, kind="stable")  # each run's rows in file order
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        empty = (code, insts[:0], dates[:0], pnl[:0])
        for rid in chunk:
            self.held[(batch, rid)] = empty
            self.held_in[rid].add(batch)
        for c, rid in enumerate(names):
            sel = order[bounds[c] : bounds[c + 1]]
            self.held[(batch, rid)] = (code, insts[sel], dates[sel], pnl[sel])
        return self.held.pop((batch, run_id))


def read_valid_daily(
    root: str,
    cat: Catalog,
    txn: Any,
    run_id: str,
    from_day: int,
    until: dict[str, int] | None = None,
    reader: DailyRows | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Stored valid (days, pnl) per instrument of a run, for days >= from_day.

    ``until``: instrument -> first day not wanted (rows this batch recomputed).
    ``reader``: the commit's reader, shared by the runs it refolds (one read of a batch
    file for many runs).
    """
    until = until or {}
    reader = reader if reader is not None else DailyRows(root, cat, txn, [run_id])
    # every segment of a pair stops the older ones from its first day, those ending
    # before from_day too (an empty one that cut the pair's last days: incbt remove)
    segs = [
        s
        for s in reader.segments(run_id)
        if s.instrument != PORTFOLIO and until.get(s.instrument, 2**31) > from_day
    ]
    by_pair: dict[str, list[rc.Segment]] = defaultdict(list)
    for s in segs:
        by_pair[s.instrument].append(s)
    wanted: dict[int, list[tuple[str, int, int]]] = defaultdict(list)  # batch -> (inst, lo, hi)
    for inst, ss in by_pair.items():
        ss.sort(key=lambda s: s.batch)
        for i, s in enumerate(ss):
            if s.last_day < from_day:
                continue
            stop = min((t.first_day for t in ss[i + 1 :]), default=2**31)
            stop = min(stop, until.get(inst, 2**31))
            lo, hi = max(s.first_day, from_day), min(s.last_day, stop - 1)
            if lo <= hi:
                wanted[s.batch].append((inst, lo, hi))
    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for b, items in sorted(wanted.items()):
        code, insts, dates, pnl = reader.get(b, run_id)
        for inst, lo, hi in items:
            m = (insts == code.get(inst, -1)) & (dates >= lo) & (dates <= hi)
            if m.any():  # (a window holding no row: an instrument with none)
                out[inst].append((dates[m], pnl[m]))
    res = {}
    for inst, parts in out.items():
        d = np.concatenate([p[0] for p in parts])
        p = np.concatenate([p[1] for p in parts])
        o = np.argsort(d, kind="stable")
        res[inst] = (d[o], p[o])
    return res


def cutoffs(cat: Catalog, txn: Any, runs: Collection[str] | None = None) -> pa.Table:
    """(run_id, instrument, batch, valid_until) for segments a later batch supersedes.

    Rows of a listed (run, instrument, batch) are valid only with date < valid_until.
    Every segment of a run SQL does not show (replaced, dropped, or a replacement not
    complete yet: ``rc.hidden``) is listed as wholly invalid.
    A segment whose later ones all start after its last day (daily appends) loses no
    row, so it is not listed: SQL joins only batches that hold superseded rows.
    ``runs``: those runs' segments alone.
    """
    cut = superseded(cat, txn, rc.hidden_ids(cat, txn), runs)
    return pa.table(
        {
            "run_id": pa.array([s.run_id for s, _ in cut], pa.string()),
            "instrument": pa.array([s.instrument for s, _ in cut], pa.string()),
            "batch": pa.array([s.batch for s, _ in cut], pa.int64()),
            "valid_until": pa.array([d for _, d in cut], pa.int32()).cast(pa.date32()),
        }
    )


_NO_ROW = -719162  # 0001-01-01, before every date: a replaced run's rows are all invalid


def superseded(
    cat: Catalog, txn: Any, gone: set[str], runs: Collection[str] | None = None
) -> list[tuple[rc.Segment, int]]:
    """Each segment holding rows no longer valid, with the first day it no longer holds:
    every segment with rows of a run in ``gone`` (``_NO_ROW``: all of them), and a
    segment a later one of its pair recomputed from a day on or before its last.
    ``runs``: of those runs alone (a store of thousands of forks listed every one's
    segments for a query of one run: QA 2026-12-07)."""
    cut: list[tuple[rc.Segment, int]] = []
    mine = None if runs is None else set(runs)
    if mine is not None:
        gone = gone & mine
    if cat.meta(txn).get(rc.CUTS_INDEXED):
        # only pairs a recomputation touched can have rows cut: no scan of every segment
        for rid in sorted(gone):  # (a segment compaction emptied hides nothing)
            cut += [(s, _NO_ROW) for s in rc.segments(cat, txn, rid) if s.rows]
        for rid, inst in rc.cut_pairs(cat, txn):
            if rid not in gone and (mine is None or rid in mine):
                cut += rc.cuts_of(list(rc.segments(cat, txn, rid, inst)))
    else:  # a store no commit has indexed yet: every segment (of those runs)
        segments = (
            rc.segments(cat, txn)
            if mine is None
            else (s for rid in sorted(mine) for s in rc.segments(cat, txn, rid))
        )
        by_pair = itertools.groupby(segments, key=lambda s: (s.run_id, s.instrument))
        for (rid, _), segs in by_pair:
            group = list(segs)
            cut += [(s, _NO_ROW) for s in group if s.rows] if rid in gone else rc.cuts_of(group)
    return cut


def portfolio_update(
    root: str,
    cat: Catalog,
    txn: Any,
    run_id: str,
    capital: float,
    first_recomputed: int,
    fresh: dict[str, tuple[np.ndarray, np.ndarray]],
    instruments: Iterable[str] | None = None,
    before: dict[tuple[str, int], int | None] | None = None,
    folded: Mapping[str, int] | None = None,
    reader: DailyRows | None = None,
) -> tuple[int, np.ndarray, np.ndarray]:
    """Recompute a run's portfolio accumulators after a batch recomputed instruments.

    The portfolio resumes from its latest snapshot before ``first_recomputed``
    (retention may have thinned the days before it) and folds every day after
    that snapshot: this batch's rows (``fresh``: instrument -> (days, pnl)) and the
    stored rows this batch did not recompute; from the start when the capital
    (notional x instruments) differs from the one the snapshot was folded with.
    ``instruments``: the run's instruments, if known: when this batch recomputed
    each of them from ``from_day`` or earlier, no stored row is read.
    ``before``: a memo of each (instrument, day)'s previous trading day, shared by the
    runs of one commit.
    ``folded``: instruments whose rows ``fresh`` holds already summed, as the instrument
    PORTFOLIO ("", first in name order), with the first day of each one's rows: they
    came first in name order, from a run with no stored rows and no portfolio snapshot
    (a new run, computed whole in this command), so the sum goes first exactly as their
    rows would have (``0.0 + s`` is ``s``).
    ``reader``: the stored rows' reader the runs of one commit share (:class:`DailyRows`).
    Returns (first day folded, days, accumulators + capital per day).
    """
    snap = rc.latest_snapshot(cat, txn, run_id, PORTFOLIO, min(first_recomputed, 2**31 - 1))
    if snap is not None and snap[1][ACC_WIDTH] != capital:
        snap = None  # the universe changed size: returns on the new capital, from the start
    from_day = -(2**31) if snap is None else snap[0] + 1
    acc0 = initial_acc(1) if snap is None else snap[1][None, :ACC_WIDTH]
    # stored rows are needed only where this batch did not recompute from from_day
    cut = {i: int(d[0]) for i, (d, _) in fresh.items() if len(d) and i != PORTFOLIO}
    if folded:
        if snap is not None:
            raise AssertionError(f"run {run_id}: folded rows, but a portfolio snapshot")
        if any(i != PORTFOLIO and i <= max(folded) for i in fresh):
            raise AssertionError(f"run {run_id}: rows before the folded ones in name order")
        cut.update(folded)
    # the usual new day: every instrument recomputed from its first trading day after the
    # snapshot (after a weekend or a holiday too): then no stored row is needed
    memo = {} if before is None else before

    def previous(inst: str, day: int) -> int | None:
        key = (inst, day)
        if key not in memo:
            found = cat.days_up_to(txn, inst, day - 1, 1)
            memo[key] = found[0] if found else None
        return memo[key]

    def new_since_snapshot(inst: str) -> bool:  # no trading day between it and the cut
        prev = previous(inst, cut[inst])
        return cut[inst] <= from_day or prev is None or prev < from_day

    covered = instruments is not None and all(
        i in cut and new_since_snapshot(i) for i in instruments
    )
    stored = {} if covered else read_valid_daily(root, cat, txn, run_id, from_day, cut, reader)
    if folded and stored.keys() & folded.keys():
        raise AssertionError(f"run {run_id}: stored rows of instruments folded as new")
    per = []
    for inst in sorted(stored.keys() | fresh.keys()):
        old, new = stored.get(inst), fresh.get(inst)
        if old is not None and new is not None:
            d, p = np.concatenate((old[0], new[0])), np.concatenate((old[1], new[1]))
        else:  # the usual case, with no copy (500 x 100 pairs a day)
            d, p = old or new  # type: ignore[misc]
        if len(d) and d[0] < from_day:  # days ascending (stored rows sorted, then fresh)
            keep = d >= from_day
            d, p = d[keep], p[keep]
        per.append((inst, d, p))
    days, pnl = portfolio_pnl(per)
    acc = fold_portfolio(pnl, capital, acc0)
    # a portfolio snapshot is its accumulators and the capital they were folded with
    return from_day, days, np.concatenate([acc, np.full((len(days), 1), capital)], axis=1)


__all__ = [
    "ACC_WIDTH",
    "DAILY_SCHEMA",
    "FILLS_SCHEMA",
    "PORTFOLIO",
    "RECENT_BLOCK",
    "BatchFiles",
    "CommitSummary",
    "DailyRows",
    "Part",
    "PartFiles",
    "batch_paths",
    "sort_order",
    "build_tables",
    "cutoffs",
    "fallen_out",
    "finish_file",
    "finalize",
    "portfolio_update",
    "read_valid_daily",
    "retained",
    "required",
    "write_durable",
]
