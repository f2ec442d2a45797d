"""The planner against a model of it: one pair at a time, as it was written first.

``incbt.plan.plan`` buckets a run class's pairs by the day they are valid through and
searches each bucket's first day and history once; the model searches them for each
(run, instrument) pair. Both must give the same tasks, in the same order, for any
runs, days, validity and skipped pairs.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from incbt.plan import InstrumentDays, Plan, RunSpec, SegmentTask, plan


def model_plan(runs, days, valid_through, skip=()) -> Plan:
    """Each pair on its own: its first day, its history, its group."""
    groups: dict[tuple, list[tuple[RunSpec, int]]] = defaultdict(list)
    for run in runs:
        for inst in run.instruments:
            if (run.run_id, inst) in skip:
                continue
            d = days.get(inst)
            if d is None or not len(d.days):
                continue
            v = valid_through.get((run.run_id, inst))
            lo = max(run.start_day, v + 1) if v is not None else run.start_day
            i0 = int(np.searchsorted(d.days, lo))
            if i0 >= len(d.days):
                continue
            need = run.warmup if v is not None else 0
            h, got = i0, 0
            while got < need and h > 0 and d.days[h - 1] >= run.start_day:
                h -= 1
                got += int(d.rows[h])
            key = (inst, run.strategy, run.source, run.version, i0,
                   (v is not None, v or 0), run.start_day)  # fmt: skip
            groups[key].append((run, h))
    tasks = []
    for key in sorted(groups):
        inst, strat, source, version, i0, (resumes, v_day), _ = key
        d = days[inst]
        h = min(hh for _, hh in groups[key])
        members = sorted((r for r, _ in groups[key]), key=lambda r: r.run_id)
        tasks.append(SegmentTask(
            strat, source, inst, tuple(r.run_id for r in members),
            tuple(r.params for r in members), tuple(r.exec_params for r in members),
            int(d.days[i0]), int(d.days[-1]), v_day if resumes else None, int(d.days[h]),
            len(d.days) - i0, int(d.rows[i0:].sum()), int(d.rows[h:i0].sum()), version,
        ))  # fmt: skip
    return Plan(tasks)


INSTS = ["A", "B", "C", "D"]


@st.composite
def cases(draw):
    """Runs of one or two classes (strategy, code, start) over a few instruments, most
    pairs of an instrument valid through the same day (as after a sweep, or a new day
    for every run), some through another, never computed, or skipped."""
    days = {}
    for inst in draw(st.lists(st.sampled_from(INSTS), unique=True, max_size=4)):
        ds = sorted(draw(st.sets(st.integers(0, 30), max_size=12)))
        rows = [draw(st.integers(1, 5)) for _ in ds]
        days[inst] = InstrumentDays.of(ds, rows)
    kinds = draw(st.lists(
        st.tuples(st.sampled_from(["sma_cross", "breakout"]), st.sampled_from(["v1", "v2"]),
                  st.sampled_from([0, 5, 12])),
        min_size=1, max_size=2))  # fmt: skip
    common = {inst: draw(st.sampled_from([None, 3, 10, 20, 31])) for inst in INSTS}
    runs = []
    for k in range(draw(st.integers(0, 8))):
        strategy, version, start = draw(st.sampled_from(kinds))
        runs.append(RunSpec(
            run_id=f"r{draw(st.integers(0, 99)):02d}-{k}",  # ids not in list order
            strategy=strategy,
            source="builtin",
            params=(float(k),),
            exec_params=(1e5, 0.0, 0.0),
            start_day=start,
            instruments=tuple(draw(st.lists(st.sampled_from(INSTS), unique=True, min_size=1))),
            warmup=draw(st.sampled_from([0, 1, 3, 7, 40])),
            version=version,
        ))  # fmt: skip
    valid = {}
    skip = set()
    for r in runs:
        for inst in r.instruments:
            choice = draw(st.sampled_from(["common", "common", "common", "none", "missing",
                                           "day", "skip"]))  # fmt: skip
            if choice == "common":
                valid[(r.run_id, inst)] = common[inst]
            elif choice == "none":
                valid[(r.run_id, inst)] = None
            elif choice == "day":
                valid[(r.run_id, inst)] = draw(st.sampled_from([0, 3, 10, 20, 29, 30, 31]))
            elif choice == "skip":
                skip.add((r.run_id, inst))
    return runs, days, valid, skip


@settings(max_examples=400, deadline=None)
@given(cases())
def test_the_planner_equals_the_per_pair_model(case):
    runs, days, valid, skip = case
    got = plan(runs, days, valid, skip)
    assert got.tasks == model_plan(runs, days, valid, skip).tasks
