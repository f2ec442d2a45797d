"""Forks: a run that follows a base run until day D-1 and new parameters from D.

SEMANTICS.md: until D-1 a fork *is* the base run; from D it carries the base's
position, cash and pending order, with the strategy state for the new
parameters rebuilt by replaying the bars before D that the strategy's warm-up
needs (``incbt.engine.warmup_replay``); metrics run over the whole history.

A fork (run, instrument) is *materialized* when it has no valid results or a
change hit a day before D: the base's rows before D are copied under the
fork's id, and its state at the last trading day L before D is built: the
base's state at L (from the base's snapshot at L, or recomputed from its last
snapshot before L), strategy slots replayed for the new parameters, metric
accumulators carried. That state is the fork's snapshot at L, from which it is
an ordinary run: new days, corrections after D, verify, all as for any run.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from incbt.bars.schema import day_to_iso, given_day, iso_to_day
from incbt.catalog import runs as rc
from incbt.engine import (
    exec_params_from_dict,
    params_from_dict,
    params_to_dict,
    state_width,
    warmup_replay,
)
from incbt.errors import UsageError
from incbt.execute import (
    DirectBars,
    TaskResult,
    nothing_computed,
    resolve_strategy,
    run_task,
    snapshot_width,
)
from incbt.plan import SegmentTask

EXEC_NAMES = ("notional", "fee_bps", "slippage_bps")


def register_fork(
    store: Any,
    base_id: str,
    effective: str,
    params: Mapping[str, Any] | None,
    exec_params: Mapping[str, float] | None = None,
) -> rc.RunRecord:
    """The record of a fork of ``base_id`` from ``effective`` with changed parameters."""
    base = store.run(base_id).record
    eff = day_to_iso(given_day(effective, "effective date"))
    first_day = _first_day(store, base)
    if iso_to_day(eff) <= first_day:
        raise UsageError(
            f"--effective {eff} must be after the base run's first day "
            f"({day_to_iso(first_day)}); before that a fork is just a new run: use "
            "`incbt backtest` with the new parameters"
        )
    given = dict(exec_params or {})
    if "notional" in given and float(given["notional"]) != float(base.exec_params["notional"]):
        # a run's capital (notional x instruments) makes its returns, Sharpe and drawdown
        # over the whole history: two sizes in one run mix two capitals (QA 2026-12-05)
        raise UsageError(
            f"a fork keeps its base run's notional ({base.exec_params['notional']:g}; "
            f"given {float(given['notional']):g}): its returns run over the base's days "
            "too; for another size backtest a new run with --notional (notional= in Python)"
        )
    strat = resolve_strategy(base.strategy, base.source, base.code_version)
    new_params = params_to_dict(strat, params_from_dict(strat, {**base.params, **(params or {})}))
    ex = exec_params_from_dict({**base.exec_params, **given})
    new_exec = {n: float(v) for n, v in zip(EXEC_NAMES, ex.tolist(), strict=True)}
    if new_params == base.params and new_exec == base.exec_params:
        same = [f"{k}={v}" for k, v in {**(params or {}), **given}.items()]
        raise UsageError(
            "a fork needs at least one changed parameter"
            + (
                f": {', '.join(same)} {'is' if len(same) == 1 else 'are'} the base run's "
                f"value{'' if len(same) == 1 else 's'} already"
                if same
                else ""
            )
        )
    _note_no_bars_on(store, base, iso_to_day(eff))
    from incbt.runs import make_run_id

    fork = {"base": base.run_id, "effective": eff}
    rid = make_run_id(
        base.strategy, base.code_version, new_params, new_exec, base.start, base.universe, fork
    )
    return dataclasses.replace(
        base,
        run_id=rid,
        params=new_params,
        exec_params=new_exec,
        created_seq=0,
        superseded_by=None,
        fork=fork,
    )


def _first_day(store: Any, base: rc.RunRecord) -> int:
    """The base run's first day: its instruments' first day with bars on or after its
    start. The store's first day, of any instrument, let a fork of a run over an
    instrument whose bars begin later (or of a run starting on a Saturday) be made from
    the run's first day or before: a new run under a fork's id (QA 2026-12-07). Where
    they have no bar from the start yet, its start."""
    from incbt.runs import instruments_of

    cat = store.catalog
    start = iso_to_day(base.start)
    firsts = []
    with cat.env.read() as txn:
        for inst in instruments_of(base, store.instruments()):
            first = next(cat.days(txn, inst, start), None)  # a cursor: one day read
            if first is not None:
                firsts.append(first.day)
    return min(firsts, default=start)


def _note_no_bars_on(store: Any, base: rc.RunRecord, eff: int) -> None:
    """Say when the effective day is no day with bars of the base's instruments (a
    weekend, a holiday) while a later day has some: the fork's first computed day is
    that one, and a fork effective then would be another run with the same results
    (QA 2026-12-06), unless bars of the day given come later."""
    from incbt.runs import instruments_of, last_bar_days
    from incbt.store import _outside

    cat = store.catalog
    nxt: int | None = None
    insts = instruments_of(base, store.instruments())
    last = max(last_bar_days(store, insts).values(), default=None)
    if last is not None and last < eff:  # QA 2026-12-06: "nothing to compute yet", no word
        warnings.warn(  # at the caller's line (QA 2026-12-07: at incbt's store.py)
            f"--effective {day_to_iso(eff)} (effective= in Python) is after the last day "
            f"with bars of the base run's instruments ({day_to_iso(last)}): the fork holds "
            "its base's results until bars of that day or later are ingested (`incbt "
            "update`, store.update(), computes it then)",
            UserWarning,
            stacklevel=_outside(),
        )
        return
    with cat.env.read() as txn:
        for inst in insts:
            days = cat.day_index(txn, inst, eff, eff + 31).days
            if len(days):
                if int(days[0]) == eff:
                    return
                nxt = int(days[0]) if nxt is None else min(nxt, int(days[0]))
    if nxt is not None:
        warnings.warn(
            f"--effective {day_to_iso(eff)} is no day with bars of the base run's "
            f"instruments: the fork computes from {day_to_iso(nxt)}, its first day with "
            f"bars after it (a fork effective {day_to_iso(nxt)} is another run with the "
            "same results until bars of the day given are ingested)",
            UserWarning,
            stacklevel=_outside(),  # the caller's line (QA 2026-12-08: incbt's store.py)
        )


def needs_materializing(
    store: Any,
    fork: rc.RunRecord,
    instruments: Sequence[str],
    hypothetical: Sequence[tuple] = (),
    *,
    retry_failed: bool = False,
) -> dict[str, int]:
    """Instrument -> L (last day before D) for the pairs that must be (re)built.

    ``hypothetical``: (instrument, day, ...) changes a dry run's ingest would make, as
    if made: a new day before D is copied from the base, not computed (a dry run
    counted it as computed: found 2026-12-05). ``retry_failed``: an update asked for
    failed pairs to be computed again (:func:`_retried`)."""
    from incbt.runs import _strategy_for, read_mask

    cat = store.catalog
    eff = iso_to_day(fork.fork["effective"])  # type: ignore[index]
    start = iso_to_day(fork.start)
    reads = read_mask(_strategy_for(fork))  # a change of no field it reads: none of its
    would: dict[str, list[int]] = defaultdict(list)
    would_after: dict[str, list[int]] = defaultdict(list)  # on or after D
    for h in hypothetical:
        if not h[4] & reads:
            continue
        if start <= h[1] < eff:
            would[h[0]].append(int(h[1]))
        elif h[1] >= eff:
            would_after[h[0]].append(int(h[1]))
    out = {}
    with cat.env.read() as txn:
        seqs: dict[str, int] = {}
        for inst in instruments:
            q = rc.pair_seq(cat, txn, fork.run_id, inst)
            if q is not None:
                seqs[inst] = q
        changed: dict[str, list[int]] = defaultdict(list)
        for c in cat.changes(txn, min(seqs.values(), default=0)):
            # a day before the run's start is read by neither the base nor the fork (its
            # warm-up history starts there too: history_start): QA 2026-12-07, a correction
            # before the start made every fork pair again, said as "new days after D-1"
            if c.seq > seqs.get(c.instrument, 0) and c.day >= start and c.fields & reads:
                changed[c.instrument].append(c.day)
        failed = rc.run_failures(cat, txn, fork.run_id)
        for inst in instruments:
            before = [d for d in cat.days_up_to(txn, inst, eff - 1, 1) if d >= start]
            if not before and not would.get(inst):
                continue  # no day before D: the fork is new parameters from its first day
            last = max(before + would.get(inst, []))
            f = failed.get(inst)
            if f is not None and not _retried(
                cat, txn, inst, f, reads, start, hypothetical, retry_failed
            ):
                # it failed (with its base's pair, through D-1; or with its own parameters,
                # on a day from D) and no day it read changed since, in a field it reads:
                # the planner skips it as it skips any failure that would fail again.
                # Every update re-made it, a new "fork" event each time (QA 2026-12-06;
                # an own failure, and a change of a field it does not read: QA 2026-12-07)
                continue
            snap = rc.latest_snapshot(cat, txn, fork.run_id, inst)
            if snap is None or inst not in seqs:
                out[inst] = last
                continue
            if any(day <= last for day in [*changed.get(inst, ()), *would.get(inst, ())]):
                out[inst] = last
                continue
            # a change on or after D resumes from the fork's latest snapshot before it;
            # where retention kept none from L on, the plan would start the pair over
            # with the fork's parameters from its first day, not its base's results
            # before D (QA 2026-12-06): it is rebuilt from the base, as when made
            later = [d for d in [*changed.get(inst, ()), *would_after.get(inst, ())] if d > last]
            if later:
                resume = rc.latest_snapshot(cat, txn, fork.run_id, inst, before=min(later))
                if resume is None or resume[0] < last:
                    out[inst] = last
    return out


def _retried(
    cat: Any,
    txn: Any,
    inst: str,
    failure: dict[str, Any],
    reads: int,
    start: int,
    hypothetical: Sequence[tuple] = (),
    retry_failed: bool = False,
) -> bool:
    """Whether a recorded failure of a pair over ``inst`` is retried: a change after it
    (a dry run's own included) of a field in ``reads``, on a day from the run's
    ``start`` up to the day it failed through (the planner's rule: incbt.runs.plan_runs),
    or an update asked for it (``retry_failed``, ``--retry-failed``: the pair is rebuilt
    from its base, as when made; the planner computed it from its start with the fork's
    parameters, QA 2026-12-07)."""
    if retry_failed:
        return True
    upto = failure["through"]
    return any(
        h[0] == inst and start <= h[1] <= upto and h[4] & reads for h in hypothetical
    ) or any(
        c.instrument == inst and start <= c.day <= upto and c.fields & reads
        for c in cat.changes(txn, failure["seq"])
    )


def base_failed(
    store: Any,
    fork: rc.RunRecord,
    need: Mapping[str, int],
    hypothetical: Sequence[tuple] = (),
    *,
    retry_failed: bool = False,
    upstream: tuple[Mapping[tuple[str, str], str], Mapping[tuple[str, str], str]] = ({}, {}),
) -> tuple[dict[str, str], dict[str, str]]:
    """Of ``need`` (:func:`needs_materializing`), as a dry run sees them, the pairs whose
    base's pair failed: instrument -> why, in two parts.

    Those :func:`materialize` would make failed ones: the base's pair is not retried first
    (no change after its failure, the dry run's own included, on or before the days it
    failed through; no ``retry_failed``). A dry run planned their days from D as
    computed, where the fork failed them with its base's (QA 2026-12-07).

    Then those whose base's pair is computed again first (``retry_failed``, or such a
    change): the fork computes its days from D only if that succeeds, else its pair fails
    with the base's, computing nothing. No dry run can know which: a failure recorded is
    the strategy's error alone, whether it comes back (the same bars raise the same way)
    or not (the machine's, a change that took the bad bar away) shows only by running
    it. The plan counts their days, as a retry that succeeds computes them, and says
    them apart (``UpdateReport.depends_on_retry``): a dry run of ``--retry-failed`` said
    the days of a fork whose base's pair then failed again as computed (QA 2026-12-07).

    ``upstream``: the dry run's two parts of the fork levels before this one, (run,
    instrument) -> why: a base that is a fork, whose pair its own making fails or makes
    hang on a retry, passes it on, as its materializing would (QA 2026-12-07: with no
    failure of that base recorded yet, the fork of a fork was counted as computed)."""
    if not need:
        return {}, {}
    from incbt.runs import _strategy_for, read_mask

    cat = store.catalog
    base_id = fork.fork["base"]  # type: ignore[index]
    reads = read_mask(_strategy_for(fork))
    start = iso_to_day(fork.start)
    fails, after = {}, {}
    with cat.env.read() as txn:
        recorded = rc.run_failures(cat, txn, base_id)
        for inst in sorted(need):
            doomed, hangs = upstream[0].get((base_id, inst)), upstream[1].get((base_id, inst))
            if doomed is not None:  # the base's pair is made a failed one first
                fails[inst] = f"its base run {base_id} failed on {inst}: {doomed}"
                continue
            if hangs is not None:  # made only if its own base's retry succeeds
                after[inst] = f"its base run {base_id} is made again on {inst}, and {hangs}"
                continue
            f = recorded.get(inst)
            if f is None:
                continue
            why = f"its base run {base_id} failed on {inst}"
            if _retried(cat, txn, inst, f, reads, start, hypothetical, retry_failed):
                after[inst] = f"{why} (event {f['seq']}): computed again first"
            else:
                fails[inst] = f"{why}: {f['error']}"
    return fails, after


def materialize(
    store: Any,
    fork: rc.RunRecord,
    todo: dict[str, int],
    memo: dict[tuple[str, str, int], np.ndarray] | None = None,
) -> list[TaskResult]:
    """TaskResults holding each pair's copied prefix and its state at L.

    Where the base's pair failed (its strategy raised there: it holds nothing), the
    fork's pair fails too, said as the base's, and the rest goes on: for a fork being
    made as for one an update brings up to date or replaces after a code change (QA
    2026-12-06: an edit that made the base fail stopped the update, and the fork was lost;
    then a fork that an update kept this way could not be made in a fresh store, refused
    over one failed instrument of its base)."""
    if not todo:
        return []
    cat = store.catalog
    base_id = fork.fork["base"]  # type: ignore[index]
    eff = iso_to_day(fork.fork["effective"])  # type: ignore[index]
    start = iso_to_day(fork.start)
    strat = resolve_strategy(fork.strategy, fork.source, fork.code_version)
    sw = state_width(strat)
    new_row = params_from_dict(strat, fork.params)
    base = store.run(base_id).record
    # one session for both reads (a session per query cost ~30 ms a fork of a chain of
    # forks that a correction recomputes: QA 2026-12-06)
    ctx = store._session(None, "daily fills", [base_id])  # (the base's files)
    bound = {"r": base_id, "d": day_to_iso(eff)}
    d = ctx.sql(
        "SELECT instrument, date, equity, pnl, pos, fees, fills, turnover FROM daily "
        "WHERE run_id = $r AND date < CAST($d AS DATE) ORDER BY instrument, date",
        param_values=bound,
    ).to_arrow_table()
    f = ctx.sql(
        "SELECT instrument, ts, date, qty, price, fee FROM fills WHERE run_id = $r "
        "AND date < CAST($d AS DATE) ORDER BY instrument, ts",
        param_values=bound,
    ).to_arrow_table()
    rows = _split(d)
    fills = _split(f)
    source = DirectBars.from_store(store, sorted(todo))
    out = []
    for inst in sorted(todo):
        last = todo[inst]
        r = rows.get(inst)
        if r is None or not len(r["date"]) or int(r["date"][-1]) != last:
            with store.catalog.env.read() as txn:
                failure = rc.failures(store.catalog, txn).get((base_id, inst))
            if failure is not None:
                why = f"its base run {base_id} failed on {inst}: {failure['error']}"
                out.append(_failed_pair(fork, strat, new_row, inst, last, why))
                continue
            raise UsageError(
                f"the base run {base_id} has no results for {inst} through "
                f"{day_to_iso(last)}; bring it up to date first (incbt update)"
            )
        state = state_at(store, base, inst, last, source, memo)
        # strategy slots for the new parameters, from the warm-up bars before D
        with cat.env.read() as txn:
            first = history_start(cat, txn, inst, last, strat.warmup(new_row), start)
        snap = _rebuilt(strat, new_row, state, source, inst, first, last, sw)[None, None, :]
        days = r["date"].astype(np.int32)
        daily = {k: r[k][None, :] for k in ("equity", "pnl", "pos", "fees", "fills", "turnover")}
        fl = fills.get(inst, {k: np.empty(0) for k in ("ts", "date", "qty", "price", "fee")})
        task = _fork_task(fork, new_row, inst, int(days[0]), last, len(days))
        out.append(
            TaskResult(
                task,
                days,
                daily,
                np.zeros(len(fl["ts"]), np.int64),
                fl["ts"].astype(np.int64),
                fl["date"].astype(np.int32),
                fl["qty"],
                fl["price"],
                fl["fee"],
                snap,
                0,
                [None],
                snap_days=np.array([last], dtype=np.int32),
            )
        )
    return out


def _fork_task(
    fork: rc.RunRecord, new_row: np.ndarray, inst: str, first: int, last: int, days: int
) -> SegmentTask:
    """The task a fork's pair stands for: its days ``first..last``, copied, not run."""
    return SegmentTask(
        fork.strategy,
        fork.source,
        inst,
        (fork.run_id,),
        (tuple(new_row.tolist()),),
        (tuple(fork.exec_params[n] for n in EXEC_NAMES),),
        first,
        last,
        None,
        first,
        days,
        0,
        version=fork.code_version,
        # its days before D are made again whole: every row it held before them goes
        # (a day removed since, before the first one copied now: incbt remove)
        cut_from=min(first, iso_to_day(fork.start)),
    )


def _failed_pair(
    fork: rc.RunRecord, strat: Any, new_row: np.ndarray, inst: str, last: int, why: str
) -> TaskResult:
    """A fork's pair that cannot be made, as a failed computation over days up to
    ``last`` (the day before its effective day): the commit records the failure, the
    pair holds nothing and is retried once one of those days changes."""

    task = _fork_task(fork, new_row, inst, last, last, 1)
    return nothing_computed(task, snapshot_width(strat), [why], through=last)


def _rebuilt(
    strat: Any,
    new_row: np.ndarray,
    state: np.ndarray,
    source: DirectBars,
    inst: str,
    first: int | None,
    last: int,
    sw: int,
) -> np.ndarray:
    """A base run's state at the close of ``last`` with its strategy slots rebuilt for
    the new parameters by replaying the warm-up bars ``first..last`` (None: no bars)."""
    b = source.load(inst, first, last) if first is not None else source.load(inst, last + 1, last)
    replayed = warmup_replay(
        strat,
        new_row[None, :],
        state[None, :sw],
        b.open,
        b.high,
        b.low,
        b.close,
        b.volume,
        len(b.ts),
        b.ts,
    )
    return np.concatenate([replayed[0], state[sw:]])


class FreshMemo:
    """The results :func:`fresh_results` computed that forks still to come are forks of,
    kept until the last of them is done (``verify`` of a chain of 40 forks of forks
    recomputed every ancestor for each of them: ~80 M bar-steps for 4.9 M needed, QA
    2026-12-06). ``children``: how many forks still to come have each run as their
    base; what is kept is one level of the chain at a time, not the chain."""

    def __init__(self, children: dict[str, int]) -> None:
        self.children = children
        self.results: dict[tuple[str, str], TaskResult | None] = {}

    def done(self, fork: rc.RunRecord) -> None:
        """``fork`` is computed: its base is needed by one fork fewer."""
        base = (fork.fork or {})["base"]
        self.children[base] = self.children.get(base, 0) - 1
        if self.children[base] <= 0:
            self.results = {k: v for k, v in self.results.items() if k[0] != base}


def fresh_results(
    store: Any, fork: rc.RunRecord, memo: FreshMemo | None = None
) -> list[TaskResult]:
    """The fork computed from scratch in memory, by its definition (for ``verify``)."""
    from incbt.runs import instruments_of

    insts = list(instruments_of(fork, store.instruments()))
    source = DirectBars.from_store(store, insts)
    out = []
    for inst in insts:
        r = _fresh(store, fork, inst, source, memo)
        if r is not None:
            out.append(r)
    if memo is not None:
        memo.done(fork)
    return out


def _fresh(
    store: Any,
    rec: rc.RunRecord,
    inst: str,
    source: DirectBars,
    memo: FreshMemo | None = None,
) -> TaskResult | None:
    """:func:`_fresh_one`, taken from ``memo`` where it has it, and kept there while a
    fork still to come is a fork of ``rec``."""
    key = (rec.run_id, inst)
    if memo is not None and key in memo.results:
        return memo.results[key]
    r = _fresh_one(store, rec, inst, source, memo)
    if memo is not None and memo.children.get(rec.run_id, 0) > 0:
        memo.results[key] = r
    return r


def _fresh_one(
    store: Any, rec: rc.RunRecord, inst: str, source: DirectBars, memo: FreshMemo | None
) -> TaskResult | None:
    """``rec``'s results on ``inst`` from scratch by its definition, with its state at
    every day's close (None: no bars): a run from its first day; a fork, its base's
    (by this same definition, a fork's base being a fork too) until D-1, then its own
    parameters from the base's state at D-1 with the strategy slots rebuilt."""
    cat = store.catalog
    start = iso_to_day(rec.start)
    strat = resolve_strategy(rec.strategy, rec.source, rec.code_version)
    row = params_from_dict(strat, rec.params)
    with cat.env.read() as txn:
        es = list(cat.days(txn, inst, start, None))
    if not es:
        return None

    def task(part: list, resume: int | None, hist: int | None) -> SegmentTask:
        return _task(rec, row, inst, part, resume, hist)

    eff = iso_to_day(rec.fork["effective"]) if rec.fork else None
    pre = [] if eff is None else [e for e in es if e.day < eff]
    if not pre:  # a run, or a fork with no day before D: its parameters from the first day
        return run_task(task(es, None, None), source, None)
    post = [e for e in es if e.day >= eff]  # type: ignore[operator]
    base_id = rec.fork["base"]  # type: ignore[index]
    base_rec = _base_of(cat, rec)
    # the work done: a base taken from the memo was counted when it was computed
    counted = not (memo is not None and (base_id, inst) in memo.results)
    base = _fresh(store, base_rec, inst, source, memo)
    assert base is not None
    if base.errors[0] is not None:  # the fork's pair fails with its base's, as stored
        why = f"its base run {base_id} failed on {inst}: {base.errors[0]}"
        return nothing_computed(task(es, None, None), snapshot_width(strat), [why])
    assert np.array_equal(base.days[: len(pre)], [e.day for e in pre])
    k, last = len(pre), pre[-1].day
    keep = base.fill_day < eff
    with cat.env.read() as txn:
        h = history_start(cat, txn, inst, last, strat.warmup(row), start)
    s0 = _rebuilt(strat, row, base.states[0, k - 1], source, inst, h, last, state_width(strat))
    parts: list[TaskResult] = []
    if post:
        parts.append(run_task(task(post, last, h), source, s0[None, :]))
    return TaskResult(
        task(pre + post, None, None),
        np.concatenate([base.days[:k], *(r.days for r in parts)]),
        {
            f: np.concatenate([base.daily[f][:, :k], *(r.daily[f] for r in parts)], axis=1)
            for f in base.daily
        },
        np.concatenate([base.fill_run[keep], *(r.fill_run for r in parts)]),
        np.concatenate([base.fill_ts[keep], *(r.fill_ts for r in parts)]),
        np.concatenate([base.fill_day[keep], *(r.fill_day for r in parts)]),
        np.concatenate([base.fill_qty[keep], *(r.fill_qty for r in parts)]),
        np.concatenate([base.fill_price[keep], *(r.fill_price for r in parts)]),
        np.concatenate([base.fill_fee[keep], *(r.fill_fee for r in parts)]),
        np.concatenate(
            [base.states[:, : k - 1], s0[None, None, :], *(r.states for r in parts)], axis=1
        ),
        base.bars_processed * counted + sum(r.bars_processed for r in parts),
        # its own parameters failing from D on: failed, as stored (verify compared the
        # rows it computed before the error with none: QA 2026-12-06)
        [parts[0].errors[0] if parts else None],
    )


def _base_of(cat: Any, fork: rc.RunRecord) -> rc.RunRecord:
    """A fork's base run's record, by its id (``Store.run`` scans every run's record)."""
    with cat.env.read() as txn:
        base = rc.get_run(cat, txn, (fork.fork or {})["base"])
    assert base is not None
    return base


def _split(t: Any) -> dict[str, dict[str, np.ndarray]]:
    import pyarrow as pa

    if t.num_rows == 0:
        return {}
    cols = {}
    for c in t.column_names:
        a = t.column(c).combine_chunks()
        if pa.types.is_timestamp(a.type) or pa.types.is_date(a.type):
            a = a.cast(pa.int64() if pa.types.is_timestamp(a.type) else pa.int32())
        cols[c] = a.to_numpy(zero_copy_only=False)
    inst = cols.pop("instrument")
    out: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    brk = np.flatnonzero(inst[1:] != inst[:-1]) + 1
    for s, e in zip(np.concatenate(([0], brk)), np.concatenate((brk, [len(inst)])), strict=True):
        out[str(inst[s])] = {c: v[s:e] for c, v in cols.items()}
    return out


def state_at(
    store: Any,
    rec: rc.RunRecord,
    inst: str,
    day: int,
    source: DirectBars,
    memo: dict[tuple[str, str, int], np.ndarray] | None = None,
) -> np.ndarray:
    """:func:`_state_at`, kept in ``memo`` (one update's forks, level after level: the
    states of a chain's links are asked again and again, QA 2026-12-06: a correction
    through a chain of 40 forks of forks called this 714 times for 120 pairs). Valid
    while the runs asked about are not computed again: an update asks only about runs
    of the levels before the one it materializes, computed already."""
    key = (rec.run_id, inst, day)
    if memo is not None and key in memo:
        return memo[key].copy()
    state = _state_at(store, rec, inst, day, source, memo)
    if memo is not None:
        memo[key] = state.copy()
    return state


def _state_at(
    store: Any,
    rec: rc.RunRecord,
    inst: str,
    day: int,
    source: DirectBars,
    memo: dict[tuple[str, str, int], np.ndarray] | None,
) -> np.ndarray:
    """Run ``rec``'s full snapshot vector on ``inst`` at the close of ``day``, by its
    definition: from its latest snapshot at or before ``day`` where it has one, run on
    with its parameters; else, for a fork, its base's state (until D-1 a fork is its
    base: a fork's snapshots begin at D-1, and retention may drop that one too) with
    the strategy slots rebuilt at D-1; else from its first day. (Until 2026-12-05 a
    base with no snapshot was recomputed as a plain run of its parameters: wrong for a
    fork of a fork.)"""
    cat = store.catalog
    start = iso_to_day(rec.start)
    strat = resolve_strategy(rec.strategy, rec.source, rec.code_version)
    row = params_from_dict(strat, rec.params)
    with cat.env.read() as txn:
        snap = rc.latest_snapshot(cat, txn, rec.run_id, inst, day + 1)
    resume: int | None = None
    state: np.ndarray | None = None
    if snap is not None:
        resume, state = snap
        if resume == day:
            return state
    elif rec.fork:
        eff = iso_to_day(rec.fork["effective"])
        with cat.env.read() as txn:
            before = cat.days_up_to(txn, inst, eff - 1, 1)
        if before and before[0] >= start:  # else: its parameters from its first day
            last = before[0]
            base = _base_of(cat, rec)
            if day <= last:
                return state_at(store, base, inst, day, source, memo)
            with cat.env.read() as txn:
                h = history_start(cat, txn, inst, last, strat.warmup(row), start)
            b = state_at(store, base, inst, last, source, memo)
            resume, state = last, _rebuilt(strat, row, b, source, inst, h, last, state_width(strat))
    with cat.env.read() as txn:
        after = list(cat.days(txn, inst, start if resume is None else resume + 1, day))
        h = (
            None
            if resume is None
            else history_start(cat, txn, inst, resume, strat.warmup(row), start)
        )
    if not after:
        assert state is not None
        return state
    r = run_task(
        _task(rec, row, inst, after, resume, h), source, None if state is None else state[None, :]
    )
    return r.states[0, -1]


def _task(
    rec: rc.RunRecord,
    row: np.ndarray,
    inst: str,
    part: list,
    resume: int | None,
    hist: int | None,
) -> SegmentTask:
    """The task computing ``rec`` (parameter row ``row``) on ``inst`` over the days
    ``part`` (the catalog's entries), from the snapshot of ``resume`` (None: its first
    day), its bars loaded from ``hist`` (None: the first day of ``part``)."""
    return SegmentTask(
        rec.strategy,
        rec.source,
        inst,
        (rec.run_id,),
        (tuple(row.tolist()),),
        (tuple(rec.exec_params[n] for n in EXEC_NAMES),),
        part[0].day,
        part[-1].day,
        resume,
        part[0].day if hist is None else hist,
        len(part),
        sum(e.rows for e in part),
        version=rec.code_version,
    )


def history_start(cat: Any, txn: Any, inst: str, through: int, need: int, start: int) -> int | None:
    """First day to load so that >= ``need`` bars up to ``through`` are loaded, never
    before ``start``; None when no bar is needed."""
    if need <= 0:
        return None
    first, got = None, 0
    for e in reversed(list(cat.days(txn, inst, start, through))):
        first = e.day
        got += e.rows
        if got >= need:
            break
    return first


__all__ = [
    "fresh_results",
    "history_start",
    "materialize",
    "needs_materializing",
    "register_fork",
    "state_at",
]
