"""Executors: run the planner's segment tasks through the engine.

A task's inputs are the task itself (plain data), the bars (from a
:class:`BarSource`) and the states it resumes from (read by the driver from
the catalog and passed in), so the same code runs in-process or in a Ray worker
and never touches the catalog: :func:`run_task` loads the bars and calls
:func:`compute_task` (the in-process executor makes those two steps itself, to
choose the buffers and the thread each runs on).

Bar sources, behind one interface: :class:`DirectBars` reads the row groups
the catalog's day index names (no query planning); :class:`SqlBars` runs a
DataFusion query that prunes files by instrument and date. Both return the
same arrays bit for bit (tested); ``benchmarks/bench_engine.py`` measures both.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from incbt.catalog import DAY_RECORD, DayIndex
from incbt.engine import (
    ENGINE_WIDTH,
    Strategy,
    get_strategy,
    import_strategies,
    initial_state,
    run_segment,
    state_width,
)
from incbt.engine.strategy_api import helpers_edited, helpers_generation, made_from_file_as_is
from incbt.errors import StrategyError
from incbt.plan import SegmentTask
from incbt.results.metrics import ACC_WIDTH, fold, initial_acc
from incbt.store import BarArrays, read_days

DAILY_FIELDS = ("equity", "pnl", "pos", "fees", "fills", "turnover")
_FIELDS = ("open", "high", "low", "close", "volume")


class BarSource(Protocol):
    def load(
        self,
        instrument: str,
        first_day: int,
        last_day: int,
        fields: Sequence[str] | None = None,
    ) -> BarArrays: ...


NO_DAYS = DayIndex(np.empty(0, np.int32), np.empty(0, DAY_RECORD))


class DirectBars:
    """Bars straight from the row groups named by the catalog's day index."""

    def __init__(self, root: str, index_by_instrument: dict[str, DayIndex]) -> None:
        self.root = root
        self.index = index_by_instrument  # instrument -> its days from the first wanted
        self.paths: dict[bytes, str] = {}
        # set: loads read into these buffers (see read_days), so the arrays a load returns
        # are valid only until the next load into them; a load given its own ``scratch``
        # reads into that instead
        self.scratch: dict[str, np.ndarray] | None = None
        self.catalog: object | None = None  # set: entries are read per load (see lazy)

    @classmethod
    def lazy(cls, store: object) -> DirectBars:
        """Days read from the catalog at each load, not all held from the start."""
        src = cls(store.path, {})  # type: ignore[attr-defined]
        src.catalog = store.catalog  # type: ignore[attr-defined]
        return src

    @classmethod
    def from_store(cls, store: object, instruments: list[str] | dict[str, int]) -> DirectBars:
        """The days of the instruments; with a dict, only days from its value on."""
        cat = store.catalog  # type: ignore[attr-defined]
        index: dict[str, DayIndex] = {}
        paths: dict[bytes, str] = {}
        first = instruments if isinstance(instruments, dict) else dict.fromkeys(instruments)
        with cat.env.read() as txn:
            for inst, day in first.items():
                index[inst] = cat.day_index(txn, inst, day)
                cat.paths(txn, index[inst], paths)
        src = cls(store.path, index)  # type: ignore[attr-defined]
        src.paths = paths
        return src

    def load(
        self,
        instrument: str,
        first_day: int,
        last_day: int,
        fields: Sequence[str] | None = None,
        scratch: dict[str, np.ndarray] | None = None,
    ) -> BarArrays:
        """``scratch``: buffers to read into (see :func:`incbt.store.read_days`)."""
        if self.catalog is not None:
            cat: Any = self.catalog
            with cat.env.read() as txn:
                index = cat.day_index(txn, instrument, first_day, last_day)
                cat.paths(txn, index, self.paths)
        else:
            index = self.index.get(instrument, NO_DAYS).between(first_day, last_day)
        if scratch is None:
            scratch = self.scratch
        return read_days(self.root, instrument, index, self.paths, fields, scratch)


class SqlBars:
    """Bars through DataFusion: one pruned query per load."""

    def __init__(self, store: object) -> None:
        self.ctx = store.session(only_for="bars")  # type: ignore[attr-defined]

    def load(
        self,
        instrument: str,
        first_day: int,
        last_day: int,
        fields: Sequence[str] | None = None,
    ) -> BarArrays:
        import pyarrow as pa

        want = [f for f in _FIELDS if fields is None or f in fields]
        t = self.ctx.sql(
            f"SELECT ts, {', '.join(want)}, CAST(date AS INT) AS day FROM bars "
            "WHERE instrument = $i AND date BETWEEN CAST($a AS DATE) AND CAST($b AS DATE) "
            "ORDER BY ts",
            param_values={
                "i": instrument,
                "a": str(np.datetime64(first_day, "D")),
                "b": str(np.datetime64(last_day, "D")),
            },
        ).to_arrow_table()
        cols = {c: t.column(c).combine_chunks() for c in t.column_names}
        ts = cols["ts"].cast(pa.int64()).to_numpy()
        day = cols["day"].to_numpy()
        brk = np.flatnonzero(day[1:] != day[:-1]) + 1
        days = day[np.concatenate(([0], brk))] if len(day) else np.empty(0, np.int32)
        ends = (
            np.concatenate((brk, [len(day)])).astype(np.int64)
            if len(day)
            else np.empty(0, np.int64)
        )
        o, h, lo, c, v = (cols[k].to_numpy() if k in cols else np.zeros(len(ts)) for k in _FIELDS)
        return BarArrays(instrument, ts, o, h, lo, c, v, days.astype(np.int32), ends)


_FAILED: dict[tuple[str, float, int], StrategyError] = {}


@functools.lru_cache(maxsize=64)
def _imported(path: str, mtime: float, helpers: int) -> tuple[Strategy, ...]:
    return tuple(import_strategies(path))


def _user_strategies(path: str, mtime: float) -> tuple[Strategy, ...]:
    """Every strategy the file holds, imported once per version of the file and of the
    helper modules this process imported from strategies folders (a file that fails is
    not imported again: importing may run a script). A helper edited since is imported
    again, with the file (QA 2026-12-08: a notebook went on computing with the helper
    it first imported, under that code version)."""
    helpers_edited(os.path.dirname(path))
    key = (path, mtime, helpers_generation())
    failed = _FAILED.get(key)
    if failed is not None:
        raise failed
    try:
        return _imported(*key)
    except StrategyError as exc:
        _FAILED[key] = exc
        raise


# Strategy objects given to this process's API calls, by (file, name, code version): runs
# of an object defined in a script are computed with that object, not with whatever the
# file defines under its name when imported again (a script may define a name twice, and
# importing it runs the script)
_LIVE: dict[tuple[str, str, str], Strategy] = {}


def remember(strat: Strategy, source: str) -> None:
    """Compute runs of ``strat`` (defined in the file ``source``) with this object."""
    if source != "builtin":
        _LIVE[(source, strat.name, strat.code_version)] = strat


def resolve_strategy(name: str, source: str, version: str = "", check: bool = True) -> Strategy:
    """A strategy by name: built-in, or from the user's strategies file ``source``.

    ``version``: the code version the runs were registered with: the object given to
    this process with that version if there is one, else the file's, which must have
    it (``check``; the file's as it is otherwise).
    """
    if source == "builtin":
        return get_strategy(name)
    live = _LIVE.get((source, name, version)) if version else None
    # an object given to this process stands for the file while the file is unchanged:
    # edited since (then reloaded in a notebook, or not), the file's code is the code
    # (found by QA 2026-12-06: status, update and verify in the notebook went on with
    # the object of before the edit, and said every run was up to date)
    if live is not None and made_from_file_as_is(live, source):
        return live
    every = [s for s in _user_strategies(source, os.path.getmtime(source)) if s.name == name]
    same = [s for s in every if s.code_version == version]
    if same:
        return same[0]
    if len(every) > 1:
        if not check:  # the file's code for the name is not one code: a change
            return every[-1]
        raise StrategyError(
            f"strategy file {source} defines strategy {name!r} twice, neither with the code "
            "its runs were registered with"
            if version
            else f"strategy file {source} defines strategy {name!r} twice"
        )
    strat = get_strategy(name, {s.name: s for s in every})
    if check and version and strat.code_version != version:
        raise StrategyError(
            f"strategy {name!r} in {source} is not the code its runs were registered "
            f"with (code version {version[:12]}; the file's is {strat.code_version[:12]}): "
            "`incbt update` (store.update() in Python) recomputes them as new runs with the "
            "file's code"
        )
    return strat


@dataclass
class TaskResult:
    """What one task computed, for the driver to commit."""

    task: SegmentTask
    days: np.ndarray  # (n_days,) the days computed
    daily: dict[str, np.ndarray]  # DAILY_FIELDS -> (n_runs, n_days)
    fill_run: np.ndarray  # index into task.run_ids
    fill_ts: np.ndarray
    fill_day: np.ndarray
    fill_qty: np.ndarray
    fill_price: np.ndarray
    fill_fee: np.ndarray
    states: np.ndarray  # (n_runs, n_snapshots, width + ACC_WIDTH): snapshots of snap_days
    bars_processed: int
    errors: list[str | None]
    snap_days: np.ndarray | None = None  # the days of ``states`` (None: every day)
    # set where a worker wrote the rows itself (incbt.results.PartFiles): the batch they
    # are in, and on the last result of that batch, the batch's files (a Part)
    batch: int | None = None
    part: Any = None
    # its task never ran (its workers kept dying): its errors are no strategy's; nothing
    # stored is touched, and the next command runs it again
    not_run: bool = False
    # for a run with an error, the day its step failed on (None: not known): what its
    # failure is recorded through (a change after it cannot change it)
    error_days: list[int | None] | None = None

    def __post_init__(self) -> None:
        if self.snap_days is None:
            self.snap_days = self.days

    def slim(self) -> TaskResult:
        """Drop what the batch files now hold; keep what the commit's transaction needs."""
        e = np.empty(0)
        self.daily = {"pnl": np.array(self.daily["pnl"])}  # a copy: the kernel's block
        self.fill_run = self.fill_ts = self.fill_day = e.astype(np.int64)
        self.fill_qty = self.fill_price = self.fill_fee = e
        return self


def nothing_computed(
    task: SegmentTask,
    width: int,
    errors: Sequence[str],
    through: int | None = None,
    not_run: bool = False,
) -> TaskResult:
    """A task whose runs computed nothing, each with its error. ``through``: the last day
    they failed over, which the commit records as their failure (the pairs hold nothing,
    and are retried once one of those days changes); None: a task that never ran (the
    commit records nothing, and the next command runs it again)."""
    n = len(task.run_ids)
    days = np.empty(0, np.int32) if through is None else np.array([through], np.int32)
    e = np.empty(0)
    return TaskResult(
        task,
        days,
        {f: np.zeros((n, len(days))) for f in DAILY_FIELDS},
        np.empty(0, np.int64),
        np.empty(0, np.int64),
        np.empty(0, np.int32),
        e,
        e,
        e,
        np.zeros((n, len(days), width)),
        0,
        list(errors),
        not_run=not_run,
    )


# Each (run, instrument)'s latest stored snapshot (day, state), as the plan read it
# (``Plan.latest``): executors resume from these without reading them again
Latest = Mapping[tuple[str, str], tuple[int, np.ndarray]]


class Executor(Protocol):
    """What runs a plan's tasks: :class:`incbt.runs.LocalExecutor` (this process, on
    threads), :class:`incbt.execute.processes.ProcessExecutor` (worker processes
    forked for the plan), :class:`incbt.execute.ray_exec.RayExecutor` (Ray).

    ``map`` yields one :class:`TaskResult` per task, in task order, whatever order the
    tasks finish in: the commit depends on it. ``keep``: the days of snapshots kept
    (the retention rule, applied before results travel or wait); ``progress_advance``
    is called with the bar-steps of each task done; ``known``: snapshots the plan
    already read (``Plan.latest``), spared a second read. An executor whose workers
    write the result rows themselves also has ``writes_parts = True`` and takes
    ``parts=`` (the number of the first batch it writes): the caller then commits
    their files instead of encoding rows.
    """

    name: str  # how the CLI and reports say where the tasks ran

    def parallelism(self) -> int:
        """How many tasks it runs at once."""
        ...

    def map(
        self,
        store: Any,
        tasks: Sequence[SegmentTask],
        keep: int,
        progress_advance: Callable[[int], None],
        known: Latest | None = None,
    ) -> Iterator[TaskResult]: ...


# What a chunk of tasks reads from the catalog, in task order: each task's day index,
# the paths of the files those name (by file hash), each task's resume states
Inputs = tuple[list[DayIndex], dict[bytes, str], list[Any]]


def chunk_inputs(
    store: Any,
    tasks: Sequence[SegmentTask],
    known: Latest | None = None,
) -> Inputs:
    """What a chunk of tasks reads from the catalog, read by the command's process as it
    sends the chunk to a worker (worker processes, Ray): workers never open the
    catalog, and the command holds the inputs of the chunks in flight, not the whole
    plan's (at 500 instruments x 5 years the plan's day index alone grew the command
    by ~50 MiB). ``known``: snapshots the plan read already (``Plan.latest``)."""
    from incbt.runs import bar_source, resume_states

    src = bar_source(store, tasks)
    return (
        [src.index.get(t.instrument, NO_DAYS).for_reading() for t in tasks],
        src.paths,
        resume_states(store, tasks, known),
    )


def snapshot_width(strat: Strategy) -> int:
    return state_width(strat) + ACC_WIDTH


def fresh_states(strat: Strategy, n: int) -> np.ndarray:
    return np.concatenate([initial_state(strat, n), initial_acc(n)], axis=1)


def run_task(task: SegmentTask, bars: BarSource, resume: np.ndarray | None) -> TaskResult:
    """Compute one task. ``resume``: (n_runs, snapshot width) states, or None (fresh)."""
    strat = resolve_strategy(task.strategy, task.source, task.version)
    fields = task_fields(strat)
    b = bars.load(task.instrument, task.history_day, task.last_day, fields)
    return compute_task(task, strat, b, resume)


def task_fields(strat: Strategy) -> list[str]:
    """The bar fields a task of ``strat`` reads: the engine needs open (fills) and close
    (marks); the strategy declares the rest."""
    return sorted({"open", "close", *strat.reads})


def compute_task(
    task: SegmentTask, strat: Strategy, b: BarArrays, resume: np.ndarray | None
) -> TaskResult:
    """Run one task over its bars ``b``: the days from ``task.history_day`` through
    ``task.last_day``, as :func:`run_task` loads them."""
    n_runs = len(task.run_ids)
    width = state_width(strat)
    states = fresh_states(strat, n_runs) if resume is None else np.asarray(resume, np.float64)
    start = int(np.searchsorted(b.days, task.first_day))
    start_bar = int(b.day_ends[start - 1]) if start > 0 else 0
    days = b.days[start:]
    res = run_segment(
        strat,
        np.array(task.params, dtype=np.float64),
        np.array(task.exec_params, dtype=np.float64),
        b.ts,
        b.open,
        b.high,
        b.low,
        b.close,
        b.volume,
        start_bar,
        b.day_ends[start:],
        states[:, :width],
    )
    daily = {f: getattr(res, f) for f in DAILY_FIELDS}
    capital = np.array([e[0] for e in task.exec_params], dtype=np.float64)
    acc = fold(
        states[:, width:],
        res.pnl,
        capital,
        equity=res.equity,
        fills=res.fills,
        fees=res.fees,
        turnover=res.turnover,
    )
    snaps = np.concatenate([res.snapshots, acc], axis=2)
    ends = b.day_ends[start:]
    fill_day = (
        days[np.searchsorted(ends, res.fill_bar, side="right")]
        if len(res.fill_bar)
        else np.empty(0, np.int32)
    )
    return TaskResult(
        task,
        days.astype(np.int32),
        daily,
        res.fill_set.astype(np.int64),
        res.fill_ts,
        fill_day.astype(np.int32),
        res.fill_qty,
        res.fill_price,
        res.fill_fee,
        snaps,
        int(res.bars_processed),
        [_run_error(strat, k, e, b.day_ends) for k, e in enumerate(res.errors)],
        error_days=None
        if res.error_bars is None
        else [
            None if bar is None else int(b.days[np.searchsorted(b.day_ends, bar, side="right")])
            for bar in res.error_bars
        ],
    )


_AT_BAR = re.compile(r" at bar (\d+) \(")


def _run_error(strat: Strategy, k: int, e: str | None, day_ends: np.ndarray) -> str | None:
    """A run's error without its set's position in the task's batch ("parameter set k",
    the engine's words): that depends on how a plan was split (threads, Ray workers,
    verify's chunks), and a run's report and stored failure must not. Its bar, "bar N"
    of the bars the task loaded (which depend on where it resumed: QA 2026-12-06, the
    same failure was "bar 390" after an update and "bar 5850" from scratch), is said as
    the bar of its day, counted from 0, beside its time."""
    if e is None:
        return None
    engine_words = f"strategy {strat.name!r}, parameter set {k} ("
    assert e.startswith(engine_words), e
    e = f"strategy {strat.name!r} (" + e[len(engine_words) :]

    def of_day(m: re.Match[str]) -> str:
        n = int(m.group(1))
        day = int(np.searchsorted(day_ends, n, side="right"))  # day_ends[day] > n
        first = int(day_ends[day - 1]) if day else 0
        return f" at its day's bar {n - first} ("

    return _AT_BAR.sub(of_day, e, count=1)


STOPS = {signal.SIGINT, signal.SIGTERM}  # what stops a command (incbt.cli says it)


@contextlib.contextmanager
def deferred_stops() -> Iterator[None]:
    """Ctrl-C and SIGTERM that arrive inside are handled once it ends: the Python
    handlers only record the signal meanwhile. Used where a signal must not land between
    two steps that belong together: the workers' fork (a signal sent to the process may
    reach one of its other threads, Arrow's or Numba's, whose C handler only flags it,
    and Python then ran the handler in the command's thread at its next instruction,
    perhaps one of an after-fork hook, where its KeyboardInterrupt was "ignored": once,
    in a CI run under load, 2026-12-06), and a commit with the count of what it kept
    (QA 2026-12-07: a SIGTERM landing as a commit ended said 2,400 of 4,800 pairs kept
    where all were). (From the main thread only, which alone may set handlers; elsewhere,
    as before.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    before: dict[int, Any] = {int(sig): signal.getsignal(sig) for sig in STOPS}
    for sig in STOPS:
        signal.signal(sig, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        for num, handler in before.items():
            signal.signal(num, handler)
        if got:  # handled now, as it would have been
            handler = before[got[0]]
            if callable(handler):
                handler(got[0], None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), got[0])


__all__ = [
    "STOPS",
    "deferred_stops",
    "DAILY_FIELDS",
    "ENGINE_WIDTH",
    "BarSource",
    "DirectBars",
    "Executor",
    "SqlBars",
    "Inputs",
    "Latest",
    "TaskResult",
    "chunk_inputs",
    "compute_task",
    "fresh_states",
    "resolve_strategy",
    "run_task",
    "snapshot_width",
    "task_fields",
]
