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
import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from incbt.bars.schema import day_to_iso, iso_to_day
from incbt.catalog import runs as rc
from incbt.engine import (
    exec_params_from_dict,
    params_from_dict,
    params_to_dict,
    state_width,
    warmup_replay,
)
from incbt.errors import UsageError
from incbt.execute import DirectBars, TaskResult, resolve_strategy, run_task
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
    try:
        eff = day_to_iso(iso_to_day(effective))
    except ValueError:
        raise UsageError(f"effective date {effective!r} is not a date YYYY-MM-DD") from None
    first = store.sql("SELECT min(first_day) AS d FROM files")["d"][0].as_py()
    first_day = max(iso_to_day(base.start), iso_to_day(str(first)) if first else -(2**31))
    if iso_to_day(eff) <= first_day:
        raise UsageError(
            f"--effective {eff} must be after the base run's first day "
            f"({day_to_iso(first_day)}); before that a fork is just a new run: use "
            "`incbt backtest` with the new parameters"
        )
    strat = resolve_strategy(base.strategy, base.source, base.code_version)
    new_params = params_to_dict(strat, params_from_dict(strat, {**base.params, **(params or {})}))
    ex = exec_params_from_dict({**base.exec_params, **(exec_params or {})})
    new_exec = {n: float(v) for n, v in zip(EXEC_NAMES, ex.tolist(), strict=True)}
    if new_params == base.params and new_exec == base.exec_params:
        raise UsageError("a fork needs at least one changed parameter")
    fork = {"base": base.run_id, "effective": eff}
    ident = json.dumps(
        {
            "strategy": base.strategy,
            "code_version": base.code_version,
            "params": new_params,
            "exec": new_exec,
            "start": base.start,
            "universe": base.universe,
            "fork": fork,
        },
        sort_keys=True,
    )
    rid = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return dataclasses.replace(
        base,
        run_id=rid,
        params=new_params,
        exec_params=new_exec,
        created_seq=0,
        superseded_by=None,
        fork=fork,
    )


def needs_materializing(
    store: Any, fork: rc.RunRecord, instruments: Sequence[str]
) -> dict[str, int]:
    """Instrument -> L (last day before D) for the pairs that must be (re)built."""
    cat = store.catalog
    eff = iso_to_day(fork.fork["effective"])  # type: ignore[index]
    out = {}
    with cat.env.read() as txn:
        seqs: dict[str, int] = {}
        for inst in instruments:
            q = rc.pair_seq(cat, txn, fork.run_id, inst)
            if q is not None:
                seqs[inst] = q
        changed: dict[str, list[int]] = defaultdict(list)
        for c in cat.changes(txn, min(seqs.values(), default=0)):
            if c.seq > seqs.get(c.instrument, 0):
                changed[c.instrument].append(c.day)
        for inst in instruments:
            before = cat.days_up_to(txn, inst, eff - 1, 1)
            if not before or before[0] < iso_to_day(fork.start):
                continue  # no day before D: the fork is new parameters from its first day
            last = before[0]
            snap = rc.latest_snapshot(cat, txn, fork.run_id, inst)
            if snap is None or inst not in seqs:
                out[inst] = last
                continue
            if any(day <= last for day in changed.get(inst, ())):
                out[inst] = last
    return out


def materialize(store: Any, fork: rc.RunRecord, todo: dict[str, int]) -> list[TaskResult]:
    """TaskResults holding each pair's copied prefix and its state at L."""
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
    base_row = params_from_dict(strat, base.params)
    base_exec = tuple(base.exec_params[n] for n in EXEC_NAMES)
    d = store.sql(
        "SELECT instrument, date, equity, pnl, pos, fees, fills, turnover FROM daily "
        "WHERE run_id = $r AND date < CAST($d AS DATE) ORDER BY instrument, date",
        params={"r": base_id, "d": day_to_iso(eff)},
    )
    f = store.sql(
        "SELECT instrument, ts, date, qty, price, fee FROM fills WHERE run_id = $r "
        "AND date < CAST($d AS DATE) ORDER BY instrument, ts",
        params={"r": base_id, "d": day_to_iso(eff)},
    )
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
                raise UsageError(
                    f"the base run {base_id} has no results for {inst}: its strategy failed "
                    f"there ({failure['error']}). A fork continues its base's results, so "
                    f"fork a run that computed {inst}, or start a new run with these "
                    "parameters (incbt backtest without --from)"
                )
            raise UsageError(
                f"the base run {base_id} has no results for {inst} through "
                f"{day_to_iso(last)}; bring it up to date first (incbt update)"
            )
        state = _base_state(
            store, base_id, base.source, strat, base_row, base_exec, inst, last, start, source
        )
        # strategy slots for the new parameters, from the warm-up bars before D
        with cat.env.read() as txn:
            first = history_start(cat, txn, inst, last, strat.warmup(new_row), start)
        snap = _rebuilt(strat, new_row, state, source, inst, first, last, sw)[None, None, :]
        days = r["date"].astype(np.int32)
        daily = {k: r[k][None, :] for k in ("equity", "pnl", "pos", "fees", "fills", "turnover")}
        fl = fills.get(inst, {k: np.empty(0) for k in ("ts", "date", "qty", "price", "fee")})
        task = SegmentTask(
            fork.strategy,
            fork.source,
            inst,
            (fork.run_id,),
            (tuple(new_row.tolist()),),
            (tuple(fork.exec_params[n] for n in EXEC_NAMES),),
            int(days[0]),
            last,
            None,
            int(days[0]),
            len(days),
            0,
            version=fork.code_version,
        )
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


def fresh_results(store: Any, fork: rc.RunRecord) -> list[TaskResult]:
    """The fork computed from scratch in memory, by its definition (for ``verify``)."""
    from incbt.runs import instruments_of

    cat = store.catalog
    base = store.run(fork.fork["base"]).record  # type: ignore[index]
    eff = iso_to_day(fork.fork["effective"])  # type: ignore[index]
    start = iso_to_day(fork.start)
    strat = resolve_strategy(fork.strategy, fork.source, fork.code_version)
    sw = state_width(strat)
    base_row = params_from_dict(strat, base.params)
    new_row = params_from_dict(strat, fork.params)
    bex = tuple(base.exec_params[n] for n in EXEC_NAMES)
    fex = tuple(fork.exec_params[n] for n in EXEC_NAMES)
    insts = list(instruments_of(fork, store.instruments()))
    source = DirectBars.from_store(store, insts)
    out = []
    for inst in insts:
        with cat.env.read() as txn:
            es = list(cat.days(txn, inst, start, None))
            if not es:
                continue
            pre = [e for e in es if e.day < eff]
            post = [e for e in es if e.day >= eff]
            h = (
                history_start(cat, txn, inst, pre[-1].day, strat.warmup(new_row), start)
                if pre
                else None
            )

        def task(
            row: np.ndarray,
            ex: tuple,
            part: list,
            resume: int | None,
            hist: int | None,
            inst: str = inst,
        ) -> SegmentTask:
            return SegmentTask(
                fork.strategy,
                fork.source,
                inst,
                (fork.run_id,),
                (tuple(row.tolist()),),
                (ex,),
                part[0].day,
                part[-1].day,
                resume,
                part[0].day if hist is None else hist,
                len(part),
                sum(e.rows for e in part),
                version=fork.code_version,
            )

        if not pre:  # no day before D: the new parameters from the first day
            out.append(run_task(task(new_row, fex, post, None, None), source, None))
            continue
        r1 = run_task(task(base_row, bex, pre, None, None), source, None)
        last = pre[-1].day
        s0 = _rebuilt(strat, new_row, r1.states[0, -1], source, inst, h, last, sw)[None, :]
        if not post:
            r1.states = s0[:, None, :]
            r1.snap_days = r1.days[-1:]
            out.append(r1)
            continue
        r2 = run_task(task(new_row, fex, post, last, h), source, s0)
        out.append(
            TaskResult(
                task(new_row, fex, pre + post, None, None),
                np.concatenate([r1.days, r2.days]),
                {k: np.concatenate([r1.daily[k], r2.daily[k]], axis=1) for k in r1.daily},
                np.concatenate([r1.fill_run, r2.fill_run]),
                np.concatenate([r1.fill_ts, r2.fill_ts]),
                np.concatenate([r1.fill_day, r2.fill_day]),
                np.concatenate([r1.fill_qty, r2.fill_qty]),
                np.concatenate([r1.fill_price, r2.fill_price]),
                np.concatenate([r1.fill_fee, r2.fill_fee]),
                r2.states,
                r1.bars_processed + r2.bars_processed,
                [None],
            )
        )
    return out


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


def _base_state(
    store: Any,
    base_id: str,
    base_source: str,
    strat: Any,
    base_row: np.ndarray,
    base_exec: tuple[float, ...],
    inst: str,
    last: int,
    start: int,
    source: DirectBars,
) -> np.ndarray:
    """The base run's full snapshot vector at day ``last`` (recomputed if not kept)."""
    cat = store.catalog
    with cat.env.read() as txn:
        snap = rc.latest_snapshot(cat, txn, base_id, inst, last + 1)
        resume = None if snap is None else snap[0]
        if resume == last:
            return snap[1]  # type: ignore[index]
        after = list(cat.days(txn, inst, (resume + 1) if resume is not None else start, last))
        h = (
            None
            if resume is None
            else history_start(cat, txn, inst, resume, strat.warmup(base_row), start)
        )
    h_first = after[0].day if h is None else h
    task = SegmentTask(
        strat.name,
        base_source,
        inst,
        (base_id,),
        (tuple(base_row.tolist()),),
        (base_exec,),
        after[0].day,
        last,
        resume,
        h_first,
        len(after),
        sum(e.rows for e in after),
        version=strat.code_version,
    )
    r = run_task(task, source, None if snap is None else snap[1][None, :])
    return r.states[0, -1]


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


__all__ = ["fresh_results", "history_start", "materialize", "needs_materializing", "register_fork"]
