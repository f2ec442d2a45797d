"""The `stats` query and Run.stats(): every value against a NumPy computation of its own
from the `daily` rows, on real stores and on daily rows Hypothesis writes; edge cases."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import statistics
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from cli_process import run_incbt
from hypothesis import given, settings
from hypothesis import strategies as st

import incbt
from incbt.bars.generate import generate
from incbt.queries import BUILTIN, param_defaults
from incbt.query import run_sql
from incbt.results.metrics import finalize, fold_portfolio, portfolio_pnl

SQL = (BUILTIN / "stats.sql").read_text()
# the values the metrics table holds, bit for bit
FROM_METRICS = ("total_pnl", "sharpe", "max_drawdown", "fills", "fees", "turnover", "days")
COLUMNS = [
    "start", "end", "days", "total_pnl", "total_return", "annual_return",
    "annual_volatility", "sharpe", "sortino", "max_drawdown", "max_drawdown_pct", "calmar",
    "max_drawdown_days", "win_days_pct", "best_day", "worst_day", "avg_win_day",
    "avg_loss_day", "profit_factor", "fills", "fees", "turnover", "exposure_pct",
]  # fmt: skip


def reference(rows: list[dict], capital: float, window: tuple | None = None) -> dict:
    """The statistics of daily rows (instrument, date, pnl, pos, fills, fees, turnover),
    computed here by loops and NumPy: the definitions README.md gives, not the SQL.
    ``window`` (first, last day): of the days in it alone, the equity from 0 on its
    first day, a position held into it from the rows before it ({} with no day)."""
    if window is not None:
        lo, hi = window
        held_all = _held(rows)
        rows = [r for r in rows if lo <= r["date"] <= hi]
        if not rows:
            return {}
        out = reference(rows, capital)
        days = sorted({r["date"] for r in rows})
        out["exposure_pct"] = 100 * float(np.mean([held_all[d] for d in days]))
        return out
    days = sorted({r["date"] for r in rows})
    at = {d: i for i, d in enumerate(days)}
    n = len(days)
    pnl = np.zeros(n)
    for r in sorted(rows, key=lambda r: (r["instrument"], r["date"])):  # name order
        pnl[at[r["date"]]] += r["pnl"]
    equity = np.cumsum(pnl)
    ret = pnl / capital
    # drawdown durations, from the day of the peak (0: the start, the peak starting at 0)
    peak, peak_i, under, longest = 0.0, 0, False, 0
    for i, e in enumerate(equity, start=1):
        if e >= peak:
            if under:
                longest = max(longest, i - peak_i)
            peak, peak_i, under = e, i, False
        else:
            under = True
    if under:
        longest = max(longest, n - peak_i)
    # a position held at a day's close: each instrument's last row on or before the day
    held = np.zeros(n, bool)
    by_inst: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["date"]):
        by_inst.setdefault(r["instrument"], []).append(r)
    for inst_rows in by_inst.values():
        for a, b in zip(inst_rows, [*inst_rows[1:], None], strict=True):
            stop = n if b is None else at[b["date"]]
            if a["pos"] != 0:
                held[at[a["date"]]:stop] = True
    drawdown = float(np.max(np.maximum.accumulate(np.maximum(equity, 0.0)) - equity))
    total = float(np.sum(pnl))
    annual = total / capital / n * 252
    # exactly (statistics' fractions): np.std of equal returns is a few ulps, not the 0
    # of the engine's and SQL's running variance, and made a Sharpe of 1e17 (2026-12-07)
    std = statistics.stdev(ret.tolist()) if n >= 2 else None
    down = math.sqrt(float(np.mean(np.minimum(ret, 0.0) ** 2)))
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    with np.errstate(over="ignore"):  # a loss of 1e-300: a profit factor of inf, as SQL's
        factor = float(np.divide(wins.sum(), -losses.sum())) if len(losses) else None
    return {
        "start": days[0], "end": days[-1], "days": n,
        "total_pnl": total,
        "total_return": total / capital,
        "annual_return": annual,
        "annual_volatility": None if std is None else std * math.sqrt(252),
        # 0 where the variance is no float64 (std**2 underflows to 0: the engine's
        # running m2 is then 0, "no variation"; QA 2026-12-07: returns 0 and 1.2e-227
        # gave the exact std's Sharpe of 11.2 against the engine's 0)
        "sharpe": np.mean(ret) / std * math.sqrt(252) if std and std * std > 0 else 0.0,
        "sortino": annual / (down * math.sqrt(252)) if n >= 2 and down > 0 else None,
        "max_drawdown": drawdown,
        "max_drawdown_pct": 100 * drawdown / capital,
        "calmar": annual / (drawdown / capital) if drawdown / capital > 0 else None,
        "max_drawdown_days": longest,
        "win_days_pct": 100 * len(wins) / n,
        "best_day": float(pnl.max()), "worst_day": float(pnl.min()),
        "avg_win_day": float(wins.mean()) if len(wins) else None,
        "avg_loss_day": float(losses.mean()) if len(losses) else None,
        "profit_factor": factor,
        "fills": sum(r["fills"] for r in rows),
        "fees": sum(r["fees"] for r in rows),
        "turnover": sum(r["turnover"] for r in rows),
        "exposure_pct": 100 * float(held.mean()),
    }  # fmt: skip


def _held(rows: list[dict]) -> dict:
    """Each day of the rows: whether some instrument holds units at its close (its last
    row on or before the day has pos != 0)."""
    days = sorted({r["date"] for r in rows})
    last: dict[str, float] = {}
    by_day: dict = {}
    for r in rows:
        by_day.setdefault(r["date"], []).append(r)
    out = {}
    for d in days:
        for r in by_day[d]:
            last[r["instrument"]] = r["pos"]
        out[d] = any(p != 0 for p in last.values())
    return out


def assert_stats(got: dict, want: dict) -> None:
    assert list(got) == COLUMNS
    for k in COLUMNS:
        g, w = got[k], want[k]
        if w is None or g is None:
            assert g is None and w is None, (k, g, w)
        elif isinstance(w, float | np.floating):
            assert isinstance(g, float), (k, g)
            assert g == pytest.approx(float(w), rel=1e-9, abs=1e-9), (k, g, w)
        else:
            assert type(g) is type(w) and g == w, (k, g, w)


def _store(tmp, seed: int, days: int = 12) -> incbt.Store:
    generate(str(tmp / "d"), instruments=3, days=days, start="2024-01-15", seed=seed)
    s = incbt.init(str(tmp / "s"))
    s.ingest(str(tmp / "d"))
    return s


def _capital(run) -> float:
    n = run.record.universe
    return 100_000.0 * (len(run.store.instruments()) if n == "all" else len(n))


def _check_run(run) -> dict:
    rows = run.daily.to_pylist()
    got = run.stats()
    assert_stats(got, reference(rows, _capital(run)))
    m = run.portfolio
    assert all(got[k] == m[k] for k in FROM_METRICS)  # the metrics' own bits
    # the annualized ratio is the Sharpe (up to the last bits of SQL's float aggregates)
    if got["annual_volatility"]:
        assert got["annual_return"] / got["annual_volatility"] == pytest.approx(
            got["sharpe"], rel=1e-9)
    # each day's pnl summed in name order, as the engine does: its best day is bit for bit
    # the largest pnl of Run.equity
    assert got["best_day"] == max(run.equity["pnl"].to_pylist())
    return got


@pytest.fixture(scope="module", params=[71, 5])
def stores(request, tmp_path_factory):
    """A store of 3 instruments x 12 days, its runs: over every instrument; over two,
    with fees and slippage; warming up over two days (flat, holding nothing, until its
    slow average has 800 bars); one day of one instrument removed (its position held
    over that day)."""
    s = _store(tmp_path_factory.mktemp("stats"), request.param)
    runs = [
        s.backtest("sma_cross", {"fast": 5, "slow": 40}),
        s.backtest("sma_cross", {"fast": 10, "slow": 60}, instruments=["S0000", "S0002"],
                   fee_bps=1.0, slippage_bps=2.0),
        s.backtest("sma_cross", {"fast": 30, "slow": 800}),
        s.backtest("breakout", {"lookback": 120}, instruments=["S0001"]),
    ]
    s.remove(["S0001"], start="2024-01-23", end="2024-01-23")
    s.update()
    return s, [s.run(r.run_id) for r in runs]


def test_every_value_is_its_numpy_computation_from_the_daily_rows(stores):
    s, runs = stores
    got = [_check_run(r) for r in runs]
    assert [g["days"] for g in got] == [12, 12, 12, 11]
    warm = got[2]
    assert 0 < warm["exposure_pct"] < 100 and warm["fills"] > 0
    assert got[1]["fees"] > 0 and got[0]["fees"] == 0


def test_the_query_by_name_and_through_the_cli(stores):
    s, runs = stores
    rid = runs[1].run_id
    want = runs[1].stats()
    # the query's row: the run's full id (given a prefix), then Run.stats()'s values
    assert s.query("stats", {"run": rid[:8]}).to_pylist() == [{"run_id": rid} | want]
    p = run_incbt(["--store", s.path, "query", "stats", "-p", f"run={rid[:8]}",
                   "--output", "json"])
    assert p.returncode == 0, p.stderr
    (line,) = p.stdout.splitlines()
    shown = json.loads(line)
    assert shown == {"run_id": rid} | {k: v.isoformat() if isinstance(v, dt.date) else v
                                        for k, v in want.items()}
    p = run_incbt(["--store", s.path, "query", "stats", "-p", f"run={rid[:8]}"])
    assert p.returncode == 0, p.stderr
    assert "max_drawdown_days" in p.stdout and "exposure_pct" in p.stdout
    assert f"{want['max_drawdown_days']}" in p.stdout
    p = run_incbt(["--store", s.path, "query", "stats", "-p", "run=ZZ"])
    assert p.returncode == 1 and "no run 'ZZ'" in p.stderr  # as every query says it


def test_an_unknown_run_and_one_with_no_days_yet(stores):
    s, _ = stores
    with pytest.raises(incbt.NotFoundError, match="no run 'ffffffff'"):
        s.query("stats", {"run": "ffffffff"})
    later = s.backtest("sma_cross", {"fast": 5, "slow": 40}, start="2030-01-01")
    assert later.stats() == {}
    assert s.query("stats", {"run": later.run_id}).num_rows == 0


def test_a_run_of_one_day_and_one_that_never_trades(tmp_path):
    s = _store(tmp_path, seed=3, days=1)
    one = s.backtest("sma_cross", {"fast": 5, "slow": 40})
    got = _check_run(one)
    assert got["days"] == 1 and got["sharpe"] == 0.0  # as the metrics table holds it
    assert got["annual_volatility"] is None and got["sortino"] is None
    never = s.backtest("sma_cross", {"fast": 5, "slow": 1000})  # 390 bars: no signal
    got = _check_run(never)
    assert got["fills"] == 0 and got["exposure_pct"] == 0.0 and got["total_pnl"] == 0.0
    flat = dict.fromkeys(["sortino", "calmar", "avg_win_day", "avg_loss_day",
                          "profit_factor"])
    assert {k: got[k] for k in flat} == flat
    assert got["max_drawdown_days"] == 0 and got["win_days_pct"] == 0.0


def test_a_run_whose_every_day_is_flat(tmp_path):
    s = _store(tmp_path, seed=4, days=3)
    got = _check_run(s.backtest("sma_cross", {"fast": 5, "slow": 2000}))
    assert got["days"] == 3 and got["annual_volatility"] == 0.0 and got["sharpe"] == 0.0
    assert got["sortino"] is None and got["profit_factor"] is None and got["calmar"] is None
    assert got["best_day"] == got["worst_day"] == 0.0 and got["max_drawdown_days"] == 0


# -- the query over daily rows Hypothesis writes ------------------------------------

DAY0 = dt.date(2024, 1, 1)
# money to the cent (a float of 1e-308 made a return below the smallest normal float,
# whose variance the engine's running sums round to 0 and an exact one does not)
money = st.one_of(st.just(0.0), st.integers(-500_000, 500_000).map(lambda c: c / 100))


@st.composite
def daily_rows(draw):
    """Rows of one run: 1-4 instruments, each with some of up to 15 days (an instrument
    lacks some days: it holds its position over them), pnl often 0, pos often 0."""
    n_inst = draw(st.integers(1, 4))
    n_days = draw(st.integers(1, 15))
    rows = []
    for i in range(n_inst):
        have = draw(st.lists(st.integers(0, n_days - 1), min_size=1, unique=True))
        for d in sorted(have):
            rows.append({
                "run_id": "r", "instrument": f"I{i}", "date": DAY0 + dt.timedelta(days=d),
                "pnl": draw(money), "pos": draw(st.sampled_from([0.0, 0.0, 3.5, -2.0])),
                "fills": draw(st.integers(0, 3)), "fees": draw(st.sampled_from([0.0, 1.25])),
                "turnover": draw(st.sampled_from([0.0, 1000.5])),
            })  # fmt: skip
    return rows, n_inst, draw(st.booleans())


def _stats_of(rows, n_inst, universe_all, window=None) -> tuple[dict, float]:
    """The query over these rows, with the metrics row incbt's fold makes of them
    (``window``: the query's start and end)."""
    import datafusion

    capital = 100_000.0 * n_inst
    per = {}
    for r in rows:
        per.setdefault(r["instrument"], ([], []))
        per[r["instrument"]][0].append((r["date"] - DAY0).days)
        per[r["instrument"]][1].append(r["pnl"])
    _, pnl = portfolio_pnl([(k, np.array(d), np.array(p)) for k, (d, p) in per.items()])
    m = finalize(fold_portfolio(pnl, capital)[-1])
    ctx = datafusion.SessionContext()
    tables = {
        "daily": pa.Table.from_pylist(rows, pa.schema([
            ("run_id", pa.string()), ("instrument", pa.string()), ("date", pa.date32()),
            ("pnl", pa.float64()), ("pos", pa.float64()), ("fills", pa.int64()),
            ("fees", pa.float64()), ("turnover", pa.float64())])),
        # --all: runs.instruments NULL, the store's instruments counted in files
        "runs": pa.table({"run_id": ["r"], "notional": [100_000.0],
                          "instruments": pa.array([None if universe_all else n_inst],
                                                  pa.int64())}),
        "files": pa.table({"instrument": [f"I{i}" for i in range(n_inst)] * 2}),
        "metrics": pa.table({
            "run_id": ["r"], "scope": ["portfolio"], "total_pnl": [m[0]], "sharpe": [m[1]],
            "max_drawdown": [m[2]], "fills": [sum(r["fills"] for r in rows)],
            "fees": [sum(r["fees"] for r in rows)],
            "turnover": [sum(r["turnover"] for r in rows)]}),
    }  # fmt: skip
    for name, t in tables.items():
        ctx.register_record_batches(name, [t.to_batches()])
    params = {**param_defaults(SQL), "run": "r"}
    if window is not None:
        params.update(start=window[0].isoformat(), end=window[1].isoformat())
    got = run_sql(ctx, SQL, params).to_pylist()
    if not got:
        return {}, capital
    assert got[0].pop("run_id") == "r"  # first, the run's full id
    return got[0], capital


@settings(max_examples=150, deadline=None)
@given(daily_rows())
def test_any_daily_rows_give_their_numpy_statistics(case):
    rows, n_inst, universe_all = case
    got, capital = _stats_of(rows, n_inst, universe_all)
    assert_stats(got, reference(rows, capital))


@settings(max_examples=150, deadline=None)
@given(daily_rows(), st.integers(-2, 16), st.integers(0, 18))
def test_any_window_gives_the_numpy_statistics_of_its_days(case, first, length):
    """stats over a window of days (vectorbt's pf.loc[a:b].stats()): every value is the
    reference's over the window's days alone, positions held into it counted; a window
    of every day is the run's own values (the metrics table's, bit for bit)."""
    rows, n_inst, universe_all = case
    window = (DAY0 + dt.timedelta(days=first), DAY0 + dt.timedelta(days=first + length))
    got, capital = _stats_of(rows, n_inst, universe_all, window)
    want = reference(rows, capital, window)
    if not want:
        assert got == {}
        return
    assert_stats(got, want)
    days = {r["date"] for r in rows}
    if all(window[0] <= d <= window[1] for d in days):  # the whole run: its own bits
        whole, _ = _stats_of(rows, n_inst, universe_all)
        assert got == whole


INSTRUMENT_SQL = (BUILTIN / "instrument_stats.sql").read_text()


@settings(max_examples=100, deadline=None)
@given(daily_rows(), st.one_of(st.none(), st.tuples(st.integers(-2, 16), st.integers(0, 18))))
def test_any_daily_rows_give_each_instruments_numpy_statistics(case, span):
    """instrument_stats over rows Hypothesis writes (days missing, flat days, no loss):
    each row its instrument's NumPy statistics; the same bits from one run of the query
    to the next (its float aggregates are running ones, in date order). ``span``: over
    a window of days (each instrument's days in it; those with none have no row)."""
    import datafusion

    rows, _, _ = case
    window = None
    params = {**param_defaults(INSTRUMENT_SQL), "run": "r"}
    if span is not None:
        first, length = span
        window = (DAY0 + dt.timedelta(days=first), DAY0 + dt.timedelta(days=first + length))
        params.update(start=window[0].isoformat(), end=window[1].isoformat())
    rows = sorted(rows, key=lambda r: (r["instrument"], r["date"]))
    metrics = []
    for inst in sorted({r["instrument"] for r in rows}):
        own = [r for r in rows if r["instrument"] == inst]
        equity = np.cumsum([r["pnl"] for r in own])
        for r, e in zip(own, equity, strict=True):
            r["equity"] = float(e)
        m = finalize(fold_portfolio(np.array([r["pnl"] for r in own]), 100_000.0)[-1])
        metrics.append({
            "run_id": "r", "scope": "instrument", "instrument": inst, "total_pnl": m[0],
            "sharpe": m[1], "max_drawdown": m[2], "fills": sum(r["fills"] for r in own),
            "fees": sum(r["fees"] for r in own), "turnover": sum(r["turnover"] for r in own),
        })  # fmt: skip
    ctx = datafusion.SessionContext(datafusion.SessionConfig().with_target_partitions(4))
    # the rows in several batches and partitions, out of order
    batches = pa.Table.from_pylist(list(reversed(rows))).to_batches(max_chunksize=3)
    ctx.register_record_batches("daily", [batches[k::2] for k in range(2)])
    ctx.register_record_batches("runs", [pa.table({"run_id": ["r"],
                                                   "notional": [100_000.0]}).to_batches()])
    ctx.register_record_batches("metrics", [pa.Table.from_pylist(metrics).to_batches()])
    got = run_sql(ctx, INSTRUMENT_SQL, params).to_pylist()
    assert run_sql(ctx, INSTRUMENT_SQL, params).to_pylist() == got
    if window is None:
        assert [g["total_pnl"] for g in got] == sorted((m["total_pnl"] for m in metrics),
                                                       reverse=True)
    want = {}
    for inst in sorted({r["instrument"] for r in rows}):
        one = reference([r for r in rows if r["instrument"] == inst], 100_000.0, window)
        if one:
            want[inst] = one
    assert sorted(g["instrument"] for g in got) == sorted(want)
    assert [g["total_pnl"] for g in got] == sorted((g["total_pnl"] for g in got), reverse=True)
    for g in got:
        inst = g.pop("instrument")
        assert_stats(g, want[inst])
        own = {r["date"] for r in rows if r["instrument"] == inst}
        if window is not None and all(window[0] <= d <= window[1] for d in own):
            (whole,) = [m for m in metrics if m["instrument"] == inst]  # its own bits
            assert all(g[k] == whole[k] for k in ("total_pnl", "sharpe", "max_drawdown"))


# ----------------------------------------------------------------------------- per instrument


def test_each_instruments_values_are_its_numpy_computation(stores):
    """instrument_stats: the stats over each instrument's own days, its capital the
    run's notional; the metrics' values bit for bit; best total_pnl first."""
    s, runs = stores
    for run in runs:
        t = run.instrument_stats()
        rows = run.daily.to_pylist()
        names = sorted({r["instrument"] for r in rows})
        got = t.to_pylist()
        assert sorted(g["instrument"] for g in got) == names
        pnls = [g["total_pnl"] for g in got]
        assert pnls == sorted(pnls, reverse=True)
        metrics = {m["instrument"]: m for m in run.metrics.to_pylist()
                   if m["scope"] == "instrument"}
        for g in got:
            inst = g.pop("instrument")
            assert_stats(g, reference([r for r in rows if r["instrument"] == inst], 100_000.0))
            assert all(g[k] == metrics[inst][k] for k in FROM_METRICS), inst
            assert run.stats(instrument=inst) == g
        if len(names) == 1:  # one instrument: the portfolio's statistics, on its days
            assert got[0] | {"days": None} == run.stats() | {"days": None}
    removed = {g["instrument"]: g["days"] for g in runs[0].instrument_stats().to_pylist()}
    assert removed == {"S0000": 12, "S0001": 11, "S0002": 12}  # its own days


def test_instrument_stats_by_name_through_the_cli_and_refusals(stores):
    s, runs = stores
    run = runs[1]
    want = run.instrument_stats()
    assert s.query("instrument_stats", {"run": run.run_id[:8]}).equals(want)
    p = run_incbt(["--store", s.path, "query", "instrument_stats", "-p",
                   f"run={run.run_id[:8]}", "--output", "json"])
    assert p.returncode == 0, p.stderr
    shown = [json.loads(line) for line in p.stdout.splitlines()]
    assert [x["instrument"] for x in shown] == want.column("instrument").to_pylist()
    assert [x["sharpe"] for x in shown] == want.column("sharpe").to_pylist()
    with pytest.raises(incbt.NotFoundError, match=(
            f"run {run.run_id} has no day of instrument 'S0001'; its instruments: "
            "S0000, S0002")):
        run.stats(instrument="S0001")
    later = s.backtest("sma_cross", {"fast": 5, "slow": 40}, start="2031-01-01")
    assert later.instrument_stats().num_rows == 0
    with pytest.raises(incbt.NotFoundError, match="has no day of instrument 'S0000' \\(it "
                       "has no day yet\\)"):
        later.stats(instrument="S0000")


@settings(max_examples=100, deadline=None)
@given(daily_rows(), st.integers(1, 4))
def test_sums_of_the_named_queries_are_in_the_engines_order(case, chunk):
    """Each day's pnl summed in instrument-name order, then the days' in date order: the
    bits of the engine's portfolio pnl and total_pnl, whatever batches and partitions
    the rows come in (a GROUP BY sum differed in its last bits, QA 2026-12-07)."""
    import datafusion

    rows, n_inst, _ = case
    by_day: dict = {}
    for r in sorted(rows, key=lambda r: (r["date"], r["instrument"])):
        by_day[r["date"]] = by_day.get(r["date"], 0.0) + r["pnl"]
    ctx = datafusion.SessionContext(datafusion.SessionConfig().with_target_partitions(4))
    daily = pa.Table.from_pylist(list(reversed(rows))).to_batches(max_chunksize=chunk)
    ctx.register_record_batches("daily", [daily[k::2] for k in range(2)])
    ctx.register_record_batches("runs", [pa.table({
        "run_id": ["r"], "notional": [100_000.0],
        "instruments": pa.array([n_inst], pa.int64())}).to_batches()])
    ctx.register_record_batches("files", [pa.table({
        "instrument": [f"I{i}" for i in range(n_inst)]}).to_batches()])
    for name, key in (("pnl_by_month", lambda d: d.strftime("%Y-%m")),
                      ("pnl_by_year", lambda d: d.year)):
        want: dict = {}
        for d in sorted(by_day):
            want[key(d)] = want.get(key(d), 0.0) + by_day[d]
        got = run_sql(ctx, (BUILTIN / f"{name}.sql").read_text(), {"run": "r"}).to_pylist()
        label = "month" if name == "pnl_by_month" else "year"
        assert {g[label]: g["pnl"] for g in got} == want
        assert [g["days"] for g in got] == [
            sum(1 for d in by_day if key(d) == g[label]) for g in got]
    # the worst drawdown: the metrics' max_drawdown of the same sums, bit for bit
    mdd = finalize(fold_portfolio(np.array([by_day[d] for d in sorted(by_day)]), 1.0)[-1])[2]
    worst = run_sql(ctx, (BUILTIN / "worst_drawdowns.sql").read_text(), {"run": "r", "n": 1})
    assert worst["drawdown"].to_pylist() == ([mdd] if mdd > 0 else [])


def _drawdowns_reference(pnls: list[float]) -> list[tuple]:
    """Each drawdown of the equity from 0 (a peak, or the capital before any): the days
    from its first below the peak to the last before the equity is back at it; its
    depth and trough are its deepest day's (the first of equals)."""
    out, equity, runmax, peak_day, cur = [], 0.0, -math.inf, None, None
    for day, pnl in enumerate(pnls):
        equity += pnl
        runmax = max(runmax, equity)
        if equity >= runmax and equity > 0:
            peak_day = day
        peak = max(runmax, 0.0)
        if equity >= peak:
            cur = None
        elif cur is None or peak - equity > cur[0]:
            if cur is not None:
                out.remove(cur)
            cur = (peak - equity, peak_day, day, peak, equity)
            out.append(cur)
    return sorted(out, key=lambda r: (-r[0], r[2]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=1, max_size=40), st.integers(1, 6))
def test_worst_drawdowns_are_each_episodes_deepest_day(steps, n):
    """worst_drawdowns: one row per drawdown, from a peak until the equity is back at it.
    Small whole-number pnl makes the equity come back to a peak exactly and fall again:
    two drawdowns from one peak value were taken for one (partitioned by the peak's
    value, 2026-12-07)."""
    import datafusion

    start = dt.date(2024, 1, 1)
    rows = [{"run_id": "r", "instrument": "I0", "date": start + dt.timedelta(days=k),
             "pnl": float(v)} for k, v in enumerate(steps)]
    ctx = datafusion.SessionContext()
    ctx.register_record_batches("daily", [pa.Table.from_pylist(rows).to_batches()])
    got = run_sql(ctx, (BUILTIN / "worst_drawdowns.sql").read_text(), {"run": "r", "n": n})
    want = [(d, None if p is None else start + dt.timedelta(days=p),
             start + dt.timedelta(days=t), pk, eq)
            for d, p, t, pk, eq in _drawdowns_reference([float(v) for v in steps])[:n]]
    assert [tuple(r.values()) for r in got.to_pylist()] == want


def test_an_instrument_without_a_row_is_said_with_its_reason(tmp_path):
    """stats(instrument=): a pair whose strategy failed is said as such, with the step's
    error and the fix; a name not in the run's list or not in the store says which; a
    name that is not a string is a UsageError (QA 2026-12-07: all were "no day of")."""
    import warnings

    from spikes import SPIKE, write_spiked

    generate(str(tmp_path / "d"), instruments=3, days=4, start="2024-01-15", seed=2)
    day = sorted(p.name for p in (tmp_path / "d").iterdir())[1]
    write_spiked(str(tmp_path / "d" / day), str(tmp_path / "d" / day), "S0001", 5)
    (tmp_path / "spike.py").write_text(SPIKE)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", incbt.StrategyFailureWarning)
        run = s.backtest("spike", {"n": 10}, strategies_file=str(tmp_path / "spike.py"))
    assert run.instrument_stats().column("instrument").to_pylist() != []
    with pytest.raises(incbt.NotFoundError, match=(
            "has no day of instrument 'S0001'; its instruments: S0000, S0002; its strategy "
            "failed on 'S0001': .*volume spike.*--retry-failed")):
        run.stats(instrument="S0001")
    with pytest.raises(incbt.NotFoundError, match="the store holds no bars of 'S0009'"):
        run.stats(instrument="S0009")
    two = s.backtest("sma_cross", {"fast": 5, "slow": 40}, instruments=["S0000", "S0002"])
    with pytest.raises(incbt.NotFoundError, match="'S0001' is not in the run's list"):
        two.stats(instrument="S0001")
    later = s.backtest("sma_cross", {"fast": 5, "slow": 40}, start="2031-01-01")
    with pytest.raises(incbt.NotFoundError, match="has no bars from the run's start"):
        later.stats(instrument="S0000")
    with pytest.raises(incbt.UsageError, match="give an instrument's name, a string"):
        two.stats(instrument=["S0000"])


# ----------------------------------------------------------------------------- a sweep's


def test_a_sweeps_stats_are_each_runs_and_rank_it(tmp_path):
    """Sweep.stats(): a row per grid point, bit for bit each run's run.stats() (the same
    query over the sweep's runs); leaderboard and pivot take its values too (QA
    2026-12-07: sortino and total_return were refused), smallest first where smaller
    is better; a run with no day yet is a row of NULLs, ranked last."""
    s = _store(tmp_path, seed=9, days=10)
    sw = s.sweep("sma_cross", {"fast": [5, 10], "slow": [40, 80, 120]}, name="g",
                 fee_bps=1.0)
    t = sw.stats()
    assert t.column_names[:4] == ["point", "run_id", "p_fast", "p_slow"]
    assert t.column_names[4:] == COLUMNS
    assert t.column("point").to_pylist() == list(range(6))
    for row in t.to_pylist():
        run = s.run(row.pop("run_id"))
        assert {k: v for k, v in row.items() if k in COLUMNS} == run.stats()
        params = run.record.params
        assert (row["p_fast"], row["p_slow"]) == (params["fast"], params["slow"])
    for metric, smaller in (("sortino", False), ("max_drawdown_days", True),
                            ("annual_volatility", True), ("total_return", False)):
        board = sw.leaderboard(metric, n=4)
        values = [v for v in board.column(metric).to_pylist() if v is not None]
        assert board.num_rows == 4 and values == sorted(values, reverse=not smaller)
        assert board.column_names[:5] == ["run_id", "params", "p_fast", "p_slow", metric]
        assert board.column_names[-1] == "failed_pairs"
        ranked = sorted((r for r in t.to_pylist() if r[metric] is not None),
                        key=lambda r: (r[metric] if smaller else -r[metric], r["run_id"]))
        assert board.column("run_id").to_pylist() == [r["run_id"] for r in ranked[:4]]
    piv = sw.pivot("fast", "slow", "calmar")
    want = {(r["p_slow"], r["p_fast"]): r["calmar"] for r in t.to_pylist()}
    assert {(y, x): piv.loc[y, x] for y in piv.index for x in piv.columns} == want
    with pytest.raises(incbt.UsageError, match="unknown metric 'nope'; one of sharpe, "
                       "total_pnl, .*, total_return, .*sortino.* \\(Sweep.stats\\(\\)'s\\) or "
                       "trades, .*win_rate_pct"):
        sw.leaderboard("nope")
    later = s.sweep("sma_cross", {"fast": [5, 10], "slow": [40]}, name="later",
                    start="2031-01-01")
    rows = later.stats().to_pylist()
    assert len(rows) == 2 and all(r["sortino"] is None and r["days"] is None for r in rows)
    assert later.leaderboard("sortino").num_rows == 2


FLAKY = """
import incbt

@incbt.strategy(
    params={"n": incbt.Param(int, default=5, min=2), "cap": incbt.Param(float, default=1.0)},
    state=("seen",), warmup=lambda p: p["n"], reads=("close",),
)
def flaky(p, s, o, h, l, c, v, i):
    \"\"\"Raises where the close is above cap.\"\"\"
    if c[i] > p[1]:
        raise ValueError("above cap")
    s[0] += 1
    if s[0] <= int(p[0]):
        return 0
    return 1 if c[i] > c[i - int(p[0])] else -1
"""


def test_a_leaderboard_by_a_statistic_has_each_runs_failed_pairs(tmp_path):
    """Ranked by a value of Sweep.stats(), the leaderboard has each run's params and
    failed_pairs, as ranked by a metric (README: "each run with its failed_pairs"; QA
    2026-12-07: ranked by sortino it had neither)."""
    import warnings

    s = _store(tmp_path, seed=9, days=6)
    f = tmp_path / "flaky.py"
    f.write_text(FLAKY)
    closes = s.sql("SELECT instrument, max(close) AS c FROM bars GROUP BY 1").to_pylist()
    caps = sorted(r["c"] for r in closes)  # fails on the instruments above each cap
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sw = s.sweep("flaky", {"n": [3, 5], "cap": [caps[0] + 0.01, caps[-1] + 1.0]},
                     name="g", strategies_file=str(f))
    by_metric = {r["run_id"]: r for r in sw.leaderboard("sharpe", 10).to_pylist()}
    assert {r["failed_pairs"] for r in by_metric.values()} == {0, 2}
    for metric in ("sortino", "calmar", "total_return"):
        board = sw.leaderboard(metric, 10)
        assert board.column_names[-1] == "failed_pairs"
        for r in board.to_pylist():
            want = by_metric[r["run_id"]]
            assert (r["params"], r["failed_pairs"]) == (want["params"], want["failed_pairs"])


def test_a_sweeps_stats_read_again_when_its_runs_change_meanwhile(tmp_path, monkeypatch):
    """Its session reads the daily rows of the runs it was given: runs replaced by an
    update meanwhile read as NULL, so it reads again (QA 2026-12-07)."""
    from incbt.sweep import SweepResult

    s = _store(tmp_path, seed=4, days=6)
    sw = s.sweep("sma_cross", {"fast": [5, 10], "slow": [40]}, name="g")
    want = sw.stats()
    assert want.column("sortino").null_count == 0
    ids = sw.run_ids
    seen = []

    def run_ids(self):  # the first read, the sweep's runs before an update
        seen.append(1)
        return ids[:1] if len(seen) == 1 else ids

    monkeypatch.setattr(SweepResult, "run_ids", property(run_ids))
    assert sw.stats().equals(want) and len(seen) >= 3


# ----------------------------------------------------------------------------- a window


def test_a_window_of_a_real_runs_days_and_of_a_sweeps_runs(tmp_path):
    """run.stats(start, end), sweep.stats/leaderboard/pivot over a window, the named
    query's -p start/-p end, on a store whose results are in several files (each
    backtest commits its own); refusals name the fix."""
    s = _store(tmp_path, seed=13, days=15)
    for f in (4, 6):  # more results files before the sweep's
        s.backtest("sma_cross", {"fast": f, "slow": 30}, fee_bps=1.0)
    sw = s.sweep("sma_cross", {"fast": [5, 8], "slow": [30, 60]}, name="w", fee_bps=1.0)
    assert len(os.listdir(os.path.join(s.path, "results", "daily"))) >= 3
    run = s.run(sw.run_ids[0])
    rows = run.daily.to_pylist()
    days = sorted({r["date"] for r in rows})
    lo, hi = days[4], days[10]
    got = run.stats(start=lo, end=hi.isoformat())  # a date or its text
    assert_stats(got, reference(rows, _capital(run), (lo, hi)))
    assert got["start"] == lo and got["end"] == hi and got["days"] == 7
    assert run.stats(start=days[0]) == run.stats() == run.stats(end="2099-01-01")
    assert run.stats(start="2099-01-01") == {}
    table = sw.stats(start=lo, end=hi).to_pylist()
    for row in table:  # each run's own, bit for bit
        one = s.run(row["run_id"]).stats(start=lo, end=hi)
        assert {k: row[k] for k in one} == one
    best = sw.leaderboard("sharpe", n=4, start=lo, end=hi).column("run_id").to_pylist()
    assert best == [r["run_id"] for r in sorted(table, key=lambda r: (-r["sharpe"], r["run_id"]))]
    piv = sw.pivot("fast", "slow", "total_pnl", start=lo, end=hi)
    assert {(r["p_slow"], r["p_fast"]): r["total_pnl"] for r in table} == {
        (y, x): piv.loc[y, x] for y in piv.index for x in piv.columns}
    p = run_incbt(["--store", s.path, "query", "stats", "-p", f"run={run.run_id}", "-p",
                   f"start={lo}", "-p", f"end={hi}", "--output", "json"])
    assert json.loads(p.stdout)["sharpe"] == got["sharpe"]
    with pytest.raises(incbt.UsageError, match="ends \\(.*\\) before it starts"):
        run.stats(start=hi, end=lo)
    with pytest.raises(incbt.errors.DateError, match="start 'soon' is not a date"):
        run.stats(start="soon")
    inst = run.instrument_stats(start=lo, end=hi).to_pylist()
    assert {r["instrument"]: r["days"] for r in inst} == {"S0000": 7, "S0001": 7, "S0002": 7}
    one = run.stats(instrument="S0001", start=lo, end=hi)
    assert one == next({k: v for k, v in r.items() if k != "instrument"}
                       for r in inst if r["instrument"] == "S0001")
    assert run.stats(instrument="S0001", start="2099-01-01") == {}
    assert run.instrument_stats(start=days[0]) == run.instrument_stats()
    with pytest.raises(incbt.UsageError, match="trade statistic, which has no window"):
        sw.leaderboard("win_rate_pct", start=lo)


def test_a_windowed_stats_query_over_several_results_files_ends(tmp_path):
    """Found 2026-12-07: the windowed stats query waited for ever (every thread idle)
    over `daily` read as a pyarrow dataset of 3 files with 2 partitions; in a child with
    a deadline, so that a hang fails the test instead of stopping the suite."""
    s = _store(tmp_path, seed=14, days=8)
    for f in (3, 4, 5, 6):
        s.backtest("sma_cross", {"fast": f, "slow": 20})
    code = (
        "import sys, incbt; s = incbt.open(sys.argv[1])\n"
        "for r in s.sql('SELECT run_id FROM runs')['run_id'].to_pylist():\n"
        "    assert s.run(r).stats(start='2024-01-17')['days'] > 0\n"
        "print('ok')"
    )
    env = {**os.environ, "INCBT_THREADS": "2"}
    p = subprocess.run([sys.executable, "-c", code, s.path], capture_output=True, text=True,
                       timeout=300, env=env)  # fmt: skip
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


def test_cli_a_window_ending_before_it_starts_is_refused_as_run_stats_refuses_it(tmp_path):
    """QA 2026-12-07: `incbt query stats -p start=2024-01-10 -p end=2024-01-05` printed
    no row and exited 0, as for a run with no day in the window; run.stats() refused it.
    The same refusal, naming both values (a store's own stats.sql is not checked)."""
    s = _store(tmp_path, seed=15, days=6)
    run = s.backtest("sma_cross", {"fast": 3, "slow": 20})
    p = run_incbt(["--store", s.path, "query", "stats", "-p", f"run={run.run_id[:6]}",
                   "-p", "start=2024-01-10", "-p", "end=2024-01-05"])  # fmt: skip
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert ("the window ends (-p end=2024-01-05) before it starts (-p start=2024-01-10): "
            "give start on or before end") in p.stderr  # fmt: skip
    with pytest.raises(incbt.UsageError, match=r"ends \(params\['end'\]=2024-01-05\) before"):
        s.query("stats", params={"run": run.run_id, "start": "2024-01-10", "end": "2024-01-05"})
    day = str(run.daily["date"][0])  # a window of one day is one
    one = s.query("stats", params={"run": run.run_id, "start": day, "end": day})
    assert one.num_rows == 1 and one["days"][0].as_py() == 1
    p = run_incbt(["--store", s.path, "query", "instrument_stats", "-p", f"run={run.run_id[:6]}",
                   "-p", "start=2024-01-10", "-p", "end=2024-01-05"])  # fmt: skip
    assert p.returncode == 2 and "query instrument_stats: the window ends" in p.stderr, p.stderr


def test_a_window_of_a_runs_last_day_alone_or_its_first_day_alone(tmp_path):
    """QA 2026-12-08: a sweep's run.stats(start=<its last day>) and run.stats(end=<its
    first day>) (and `incbt query stats` with them) failed with DataFusion's
    "SanityCheckPlan ... does not satisfy order requirements" once the run's rows were
    in several results files (a sweep, then new days for half the instruments, then for
    the other half): the files' statistics made the window's date a constant to the
    planner, which dropped a sort a join then needed. Each such window gives its one
    day's values."""
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    generate(str(tmp_path / "d"), instruments=4, days=8, seed=7, split="one")
    (path,) = [str(tmp_path / "d" / f) for f in os.listdir(tmp_path / "d")]
    bars = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types={"ts": pa.string()}))  # fmt: skip
    day = pc.utf8_slice_codeunits(bars["ts"], 0, 10)
    late = pc.greater_equal(day, "2024-01-08")  # the last 3 of 8 weekdays

    def part(name, mask):
        out = str(tmp_path / f"{name}.csv")
        pacsv.write_csv(bars.filter(mask), out)
        return out

    s = incbt.init(str(tmp_path / "s"))
    s.ingest(part("history", pc.invert(late)))
    sw = s.sweep("sma_cross", {"fast": [3, 5, 10], "slow": [20, 40]}, name="e", fee_bps=0.5)
    for name, insts in (("a", ["S0000", "S0001"]), ("b", ["S0002", "S0003"])):
        s.update(part(name, pc.and_(late, pc.is_in(bars["instrument"], pa.array(insts)))))
    failures = []
    for run in sw.runs:
        rows = run.daily.to_pylist()
        first, last = min(r["date"] for r in rows), max(r["date"] for r in rows)
        for window, one in (({"start": last}, last), ({"end": first}, first)):
            try:
                got = run.stats(**window)
            except incbt.QueryError as e:
                failures.append((run.run_id, window, str(e)[:80]))
                continue
            assert_stats(got, reference(rows, _capital(run), (one, one)))
            assert got["days"] == 1 and got["start"] == got["end"] == one
    assert not failures
    run = sw.runs[0]
    p = run_incbt(["--store", s.path, "query", "stats", "-p", f"run={run.run_id[:8]}",
                   "-p", f"start={last}", "--output", "json"])  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["total_pnl"] == run.stats(start=last)["total_pnl"]
