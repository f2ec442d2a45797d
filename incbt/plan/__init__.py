"""The planner: what to (re)compute, as serialisable segment tasks. Pure code.

Input is plain data read from the catalog by the caller (no LMDB here): the
runs, each instrument's trading days and bar counts, and for each (run,
instrument) the day its results are valid through and the snapshots it has.
Output is a list of :class:`SegmentTask`, each one instrument and a batch of
runs of one strategy that resume from the same point: executors (in-process
or Ray) only consume these.

For a (run, instrument) whose results are valid through day V (None: never
computed), the segment is every day with bars after V and on or after the
run's start. It resumes from the snapshot at V (snapshots are kept for every
day a run computed; see the retention rule in ``incbt.results``) and re-reads
the ``warmup`` bars before its first day that the strategy's windows need.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class RunSpec:
    """The parts of a run the planner needs."""

    run_id: str
    strategy: str
    source: str  # "builtin" or a strategies file
    params: tuple[float, ...]
    exec_params: tuple[float, ...]
    start_day: int
    instruments: tuple[str, ...]
    warmup: int  # bars of history its strategy re-reads before a segment
    version: str = ""  # the strategy's code version (a file may define a name twice)


@dataclass(frozen=True)
class SegmentTask:
    """One instrument, a batch of runs of one strategy, a range of days to compute."""

    strategy: str
    source: str
    instrument: str
    run_ids: tuple[str, ...]
    params: tuple[tuple[float, ...], ...]
    exec_params: tuple[tuple[float, ...], ...]
    first_day: int  # first day to compute
    last_day: int  # last day to compute
    resume_day: int | None  # the snapshot day the runs resume from; None = fresh state
    history_day: int  # first day of bars to load (history before first_day, or first_day)
    days: int  # trading days to compute
    bars: int  # bars to compute, per run
    history_bars: int = 0
    version: str = ""  # the strategy's code version: runs of one task share it
    # days of its instrument were removed (``incbt remove``): the runs' stored results
    # and snapshots go from this day (the day after the resume point, or the runs' start),
    # not only from ``first_day`` (a removed day before it holds some); None: first_day
    cut_from: int | None = None

    @property
    def work(self) -> int:
        """Bar-steps this task will do: its bars times its runs."""
        return self.bars * len(self.run_ids)


@dataclass(frozen=True)
class InstrumentDays:
    """An instrument's trading days (ascending) and the bars of each, as int64 arrays
    (a plan over years of many instruments holds one entry per instrument-day)."""

    days: np.ndarray
    rows: np.ndarray

    @classmethod
    def of(cls, days: Sequence[int], rows: Sequence[int]) -> InstrumentDays:
        return cls(np.asarray(days, dtype=np.int64), np.asarray(rows, dtype=np.int64))


@dataclass
class Plan:
    tasks: list[SegmentTask] = field(default_factory=list)
    # each (run, instrument)'s latest stored snapshot (day, state) as the caller read it
    # while planning: spares the executor a second read of the states it resumes from,
    # and the commit a search for snapshots after a resume point that has none
    latest: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    # pairs left out because their computation failed and would fail again (the caller's
    # record of the failure, as text)
    skipped_failed: list[str] = field(default_factory=list)
    # pairs whose stored results reach past the days still there (``incbt remove`` took
    # their last days): no task computes them; their results and snapshots go after the
    # day given (None: all of them), as (run id, instrument) -> day
    truncate: dict[tuple[str, str], int | None] = field(default_factory=dict)
    # of those, the pairs whose failure the caller's own command recorded (a fork's
    # pairs failing with its base's): failures of this command, not "failed before"
    failed_now: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # the tasks and states are in the fields
        return f"<Plan: {len(self.tasks)} task(s), {self.bars:,} bar-steps>"

    @property
    def bars(self) -> int:
        return sum(t.work for t in self.tasks)

    @property
    def segments(self) -> int:
        return sum(len(t.run_ids) for t in self.tasks)

    def __bool__(self) -> bool:
        return bool(self.tasks or self.truncate)


def plan(
    runs: Sequence[RunSpec],
    days: Mapping[str, InstrumentDays],
    valid_through: Mapping[tuple[str, str], int | None],
    skip: Collection[tuple[str, str]] = (),
    cut: Collection[str] = (),
) -> Plan:
    """Segment tasks bringing every (run, instrument) up to the last day with bars.

    ``valid_through[(run_id, instrument)]`` is the day the stored results and
    snapshot of that pair are valid through (missing or None: nothing valid).
    ``skip``: pairs not to plan at all (their computation failed, and would fail
    again: nothing it read has changed). ``cut``: instruments some of whose days were
    removed: their tasks say where the runs' stored results go from (``cut_from``).
    Tasks come out in a fixed order: by instrument, strategy, resume point.
    """
    groups: dict[tuple, list[tuple[RunSpec, int]]] = defaultdict(list)
    # Runs of one strategy, code and start differ per instrument only by the day they are
    # valid through (mostly one: a sweep's points, a new day for every run) and their
    # warm-up: pairs are bucketed by that day first, and each bucket's first day and
    # history are searched once, not once a pair (500 instruments x 100 runs, one day
    # to plan: 65 -> 36 ms; tests/test_plan.py checks it against the per-pair model)
    classes: dict[tuple[str, str, str, int], list[RunSpec]] = defaultdict(list)
    for run in runs:
        classes[(run.strategy, run.source, run.version, run.start_day)].append(run)
    firsts: dict[tuple[str, int], int] = {}
    histories: dict[tuple[str, int, int, int], int] = {}
    get_valid = valid_through.get
    for (strategy, source, version, start), members in classes.items():
        by_inst: dict[str, dict[int | None, list[RunSpec]]] = {}
        for run in members:
            rid = run.run_id
            for inst in run.instruments:
                if skip and (rid, inst) in skip:
                    continue
                by_v = by_inst.get(inst)
                if by_v is None:
                    by_v = by_inst[inst] = defaultdict(list)
                by_v[get_valid((rid, inst))].append(run)
        for inst, by_v in by_inst.items():
            d = days.get(inst)
            if d is None or not len(d.days):
                continue
            for v, bucket in by_v.items():
                lo = max(start, v + 1) if v is not None else start
                i0 = firsts.get((inst, lo), -1)
                if i0 < 0:
                    i0 = firsts[(inst, lo)] = int(np.searchsorted(d.days, lo))
                if i0 >= len(d.days):
                    continue  # up to date
                # runs sharing a resume point share a task (one pass over the bars); the
                # history loaded is the longest any of them needs
                group = groups[
                    (inst, strategy, source, version, i0, (v is not None, v or 0), start)
                ]
                for run in bucket:
                    # history: the warm-up bars before the first day, never before the start
                    need = run.warmup if v is not None else 0
                    hkey = (inst, i0, need, start)
                    h = histories.get(hkey, -1)
                    if h < 0:
                        h = i0
                        got = 0
                        while got < need and h > 0 and d.days[h - 1] >= start:
                            h -= 1
                            got += int(d.rows[h])
                        histories[hkey] = h
                    group.append((run, h))
    tasks = []
    for key in sorted(groups):
        inst, strat, source, version, i0, (resumes, v_day), start = key
        v = v_day if resumes else None
        d = days[inst]
        h = min(hh for _, hh in groups[key])
        members = sorted((r for r, _ in groups[key]), key=lambda r: r.run_id)
        tasks.append(
            SegmentTask(
                strategy=strat,
                source=source,
                instrument=inst,
                run_ids=tuple(r.run_id for r in members),
                params=tuple(r.params for r in members),
                exec_params=tuple(r.exec_params for r in members),
                first_day=int(d.days[i0]),
                last_day=int(d.days[-1]),
                resume_day=v,
                history_day=int(d.days[h]),
                days=len(d.days) - i0,
                bars=int(d.rows[i0:].sum()),
                history_bars=int(d.rows[h:i0].sum()),
                version=version,
                cut_from=None if inst not in cut else (start if v is None else v + 1),
            )
        )
    return Plan(tasks)


def split_tasks(p: Plan, target_work: int) -> Plan:
    """Split tasks much bigger than ``target_work`` bar-steps by their runs.

    Balances work by bars, not by task count: a sweep of many parameter sets on
    few instruments still spreads over every worker. Each part still reads its
    instrument's bars once for its runs; results do not depend on the split.
    """
    out = []
    for t in p.tasks:
        n = len(t.run_ids)
        parts = min(n, max(1, t.work // max(1, target_work)))
        if parts <= 1:
            out.append(t)
            continue
        size = -(-n // parts)
        for i in range(0, n, size):
            out.append(
                SegmentTask(
                    t.strategy,
                    t.source,
                    t.instrument,
                    t.run_ids[i : i + size],
                    t.params[i : i + size],
                    t.exec_params[i : i + size],
                    t.first_day,
                    t.last_day,
                    t.resume_day,
                    t.history_day,
                    t.days,
                    t.bars,
                    t.history_bars,
                    t.version,
                    t.cut_from,
                )
            )
    return Plan(out, p.latest, truncate=p.truncate)
