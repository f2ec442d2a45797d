"""A run's trades (round trips of its fills) and their statistics, against trades paired
from the independent reference's fills, whose position after each fill is exact."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_backtest import reference_backtest

import incbt
from incbt.bars.generate import generate
from incbt.results.trades import TRADES_SCHEMA, pair_fills, trades_table


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("trades")
    generate(str(out / "data"), instruments=3, days=4, start="2024-03-04", seed=5)
    s = incbt.init(str(out / "s"))
    s.ingest(str(out / "data"))
    return s


def reference_trades(fills: pd.DataFrame, last_ts: int, last_close: float) -> list[dict]:
    """Round trips of the reference's fills, from its exact position after each: a fill
    from flat opens, one to flat closes, one across zero closes and opens (its fee split
    by the units of each side); a position held at the end is marked at the last close."""
    out: list[dict] = []
    before = 0.0
    for f in fills.to_dict("records"):
        after = f["pos"]
        if before != 0.0:  # the open trade ends here
            cur = out[-1]
            share = abs(before) / (abs(before) + abs(after))
            cur.update(exit_ts=f["ts"], exit_price=f["price"], exit_fee=f["fee"] * share,
                       status="closed")
        if after != 0.0:
            share = abs(after) / (abs(before) + abs(after))
            out.append(dict(direction="long" if after > 0 else "short", size=abs(after),
                            entry_ts=f["ts"], entry_price=f["price"], entry_fee=f["fee"] * share,
                            exit_ts=last_ts, exit_price=last_close, exit_fee=0.0, status="open"))
        before = after
    for t in out:
        sign = 1.0 if t["direction"] == "long" else -1.0
        t["pnl"] = sign * t["size"] * (t["exit_price"] - t["entry_price"]) - t["entry_fee"] - t[
            "exit_fee"]
    return out


STRATS = st.one_of(
    st.builds(lambda f, d: ("sma_cross", {"fast": f, "slow": f + d}), st.integers(1, 30),
              st.integers(1, 60)),
    st.builds(lambda n: ("breakout", {"lookback": n}), st.integers(1, 80)),
    st.builds(lambda w, k: ("bollinger", {"window": w, "k": k}), st.integers(2, 60),
              st.sampled_from([0.5, 1.0, 2.0])),
    st.builds(lambda f, d: ("ema_cross", {"fast": f, "slow": f + d}), st.integers(1, 30),
              st.integers(1, 60)),
)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(strat=STRATS, fee=st.sampled_from([0.0, 1.5]), slip=st.sampled_from([0.0, 2.0]))
def test_trades_equal_the_reference_fills_paired(store, strat, fee, slip):
    name, params = strat
    run = store.backtest(name, params, fee_bps=fee, slippage_bps=slip)
    trades = run.trades()
    assert trades.schema == TRADES_SCHEMA
    got = trades.to_pandas()
    daily = run.daily.to_pandas()
    for inst in store.instruments():
        b = store.bars(inst)
        bars = pd.DataFrame({"ts": b.ts, "open": b.open, "high": b.high, "low": b.low,
                             "close": b.close, "volume": b.volume})
        ref = reference_backtest(name, params, bars, fee_bps=fee, slippage_bps=slip)
        want = reference_trades(ref.fills, ref.final["ts"], ref.final["close"])
        mine = got[got.instrument == inst]
        assert len(mine) == len(want)
        assert mine.trade.tolist() == list(range(1, len(want) + 1))
        for c in ("direction", "status"):
            assert mine[c].tolist() == [t[c] for t in want]
        for c in ("entry_ts", "exit_ts"):
            assert mine[c].astype("int64").tolist() == [t[c] for t in want]
        for c, rtol in (("entry_price", 1e-12), ("exit_price", 1e-12), ("size", 1e-9)):
            np.testing.assert_allclose(mine[c].to_numpy(), [t[c] for t in want], rtol=rtol)
        for c in ("entry_fee", "exit_fee", "pnl"):
            np.testing.assert_allclose(mine[c].to_numpy(), [t[c] for t in want], rtol=1e-9,
                                       atol=1e-6)
        np.testing.assert_allclose(mine["return"].to_numpy(),
                                   mine.pnl.to_numpy() / (mine["size"] * mine.entry_price),
                                   rtol=1e-12)
        assert (mine.duration == mine.exit_ts - mine.entry_ts).all()
        # what the trades made is the instrument's equity at its last close
        equity = daily[daily.instrument == inst].equity.iloc[-1] if len(daily) else 0.0
        assert mine.pnl.sum() == pytest.approx(equity, abs=1e-9 * 100_000 * max(1, len(mine)))
        # one instrument's trades alone are its rows of them all
        assert run.trades(inst).equals(trades.filter(pa.compute.equal(trades["instrument"], inst)))


def test_trade_stats_follow_their_definitions(store):
    run = store.backtest("breakout", {"lookback": 15}, fee_bps=1.0)
    t = run.trades().to_pandas()
    closed = t[t.status == "closed"]
    win, loss = closed[closed.pnl > 0], closed[closed.pnl < 0]
    s = run.trade_stats()
    assert s["trades"] == len(t) and s["closed_trades"] == len(closed)
    assert s["open_trades"] == (t.status == "open").sum() > 0  # the run ends in a position
    assert s["win_rate_pct"] == pytest.approx(100 * len(win) / len(closed))
    assert s["best_trade_pct"] == pytest.approx(100 * closed["return"].max())
    assert s["worst_trade_pct"] == pytest.approx(100 * closed["return"].min())
    assert s["avg_winning_trade_pct"] == pytest.approx(100 * win["return"].mean())
    assert s["avg_losing_trade_pct"] == pytest.approx(100 * loss["return"].mean())
    assert s["profit_factor"] == pytest.approx(win.pnl.sum() / -loss.pnl.sum())
    assert s["expectancy"] == pytest.approx(closed.pnl.mean())
    held = (win.exit_ts - win.entry_ts).mean()
    assert abs(s["avg_winning_trade_duration"] - held.to_pytimedelta()) < datetime.timedelta(
        microseconds=1)
    one = run.trade_stats("S0001")
    assert one["trades"] == (t.instrument == "S0001").sum()


def test_a_run_without_fills_has_no_trades(store):
    run = store.backtest("sma_cross", {"fast": 5, "slow": 10}, start="2030-01-01")
    t = run.trades()
    assert t.num_rows == 0 and t.schema == TRADES_SCHEMA
    s = run.trade_stats()
    assert s["trades"] == 0 and s["win_rate_pct"] is None and s["profit_factor"] is None


def test_a_forks_trades_run_through_its_base_days(store):
    base = store.backtest("sma_cross", {"fast": 5, "slow": 20})
    fork = store.backtest("sma_cross", {"fast": 9, "slow": 20}, fork_of=base.run_id,
                          effective="2024-03-06")
    b, f = base.trades().to_pandas(), fork.trades().to_pandas()
    cut = pd.Timestamp("2024-03-06", tz="UTC")
    early = b[b.exit_ts < cut][["instrument", "entry_ts", "exit_ts", "pnl"]]
    assert early.reset_index(drop=True).equals(
        f[f.exit_ts < cut][["instrument", "entry_ts", "exit_ts", "pnl"]].reset_index(drop=True))
    eq = fork.daily.to_pandas().groupby("instrument").equity.last()
    for inst, pnl in f.groupby("instrument").pnl.sum().items():
        assert pnl == pytest.approx(eq[inst], abs=1e-6)


def test_a_fill_that_neither_opens_nor_closes_is_refused():
    """Fills the engine never makes (a long position grown by a second buy) are not
    paired into a made-up trade: the first such fill is named."""
    codes = np.array([0, 0, 0, 1, 1])
    qty = np.array([10.0, 5.0, -15.0, -3.0, 3.0])
    _, bad = pair_fills(codes, qty, np.zeros(5))
    assert bad == 1
    fills = pa.table({"instrument": ["A", "A"], "ts": pa.array([1, 2], pa.timestamp("ns", "UTC")),
                      "qty": [10.0, 5.0], "price": [1.0, 1.0], "fee": [0.0, 0.0]})
    with pytest.raises(incbt.InternalError, match="changes a position without closing it"):
        trades_table(fills, lambda names: {})
    t, bad = pair_fills(codes[3:], qty[3:], np.zeros(2))
    assert bad == -1 and t["exit"].tolist() == [1] and t["size"].tolist() == [3.0]


def test_the_cli_prints_trades_and_their_statistics(store):
    import csv
    import io
    import json

    from cli_process import run_incbt

    run = store.backtest("bollinger", {"window": 20, "k": 1.0}, fee_bps=1.0)
    want = run.trades("S0002").to_pandas()
    p = run_incbt(["--store", store.path, "trades", run.run_id[:8], "--instrument", "S0002",
                   "--output", "csv"])
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert len(rows) == len(want)
    assert [float(r["pnl"]) for r in rows] == want.pnl.tolist()  # every digit
    assert [r["duration"] for r in rows] == [str(d.to_pytimedelta()) for d in want.duration]
    p = run_incbt(["--store", store.path, "trades", run.run_id, "--stats", "--output", "json"])
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    stats = run.trade_stats()
    assert got["run_id"] == run.run_id and got["trades"] == stats["trades"]
    assert got["profit_factor"] == stats["profit_factor"]
    for blank in ("", " "):  # no name: bad usage, not "no bars of ''"
        with pytest.raises(incbt.UsageError, match="give an instrument's name"):
            run.trades(blank)
    p = run_incbt(["--store", store.path, "trades", run.run_id, "--instrument", "NOPE"])
    assert p.returncode == 1
    assert "has no day of instrument 'NOPE'" in p.stderr and "S0000, S0001, S0002" in p.stderr


def test_a_run_report_shows_its_round_trips(store, tmp_path):
    from test_report import _tables

    run = store.backtest("breakout", {"lookback": 15}, fee_bps=1.0)
    with open(store.report(run.run_id, str(tmp_path / "r.html"))) as f:
        page = f.read()
    row = {r["statistic"]: r["value"] for r in _tables(page)["Round trips"]}  # a row each
    s = run.trade_stats()
    assert row["trades"] == str(s["trades"]) and row["open_trades"] == str(s["open_trades"])
    assert float(row["win_rate_pct"]) == pytest.approx(s["win_rate_pct"], rel=1e-3)
    held = s["avg_losing_trade_duration"]
    assert row["avg_losing_trade_duration"] == str(
        datetime.timedelta(seconds=round(held.total_seconds())))
    # and how their returns spread: a histogram of every closed trade
    closed = s["closed_trades"]
    assert f"Closed trades by return (% of the position's entry value), {closed:,} in all" in page


def test_an_open_trade_whose_last_day_was_removed_since_is_not_marked(tmp_path):
    """A stale run (its instrument's last day taken out of the store since): its open
    trade has no close to be marked at, so its exit price and PnL are NaN, not another
    day's close or an error; the update brings it back to a marked trade."""
    generate(str(tmp_path / "d"), instruments=2, days=4, start="2024-03-04", seed=5)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    run = s.backtest("sma_cross", {"fast": 5, "slow": 20})
    s.remove(["S0001"], start="2024-03-07")
    t = run.trades("S0001").to_pandas()
    last = t.iloc[-1]
    assert last.status == "open" and np.isnan(last.exit_price) and np.isnan(last.pnl)
    assert last.exit_ts == pd.Timestamp("2024-03-07", tz="UTC")
    assert not t.iloc[:-1].pnl.isna().any()
    s.update()
    t = run.trades("S0001").to_pandas()
    assert not t.pnl.isna().any()
    eq = run.daily.to_pandas().query("instrument == 'S0001'").equity.iloc[-1]
    assert t.pnl.sum() == pytest.approx(eq, abs=1e-6)


@pytest.mark.parametrize("a_read", [500_000, 1, 700])  # all at once, a run, some runs
def test_a_sweeps_trade_stats_are_each_runs(store, monkeypatch, a_read):
    import incbt.sweep

    monkeypatch.setattr(incbt.sweep, "FILLS_A_READ", a_read)  # runs read in batches
    sw = store.sweep("bollinger", {"window": [10, 30], "k": [0.5, 2.0]},
                     name=f"trips-{a_read}", fee_bps=1.0)
    t = sw.trade_stats()
    assert t.column_names[:4] == ["point", "run_id", "p_window", "p_k"]
    assert t.num_rows == 4
    for row in t.to_pylist():
        want = store.run(row["run_id"]).trade_stats()
        got = {k: row[k] for k in want}
        assert got == want  # the same pairs, the same arithmetic: the same bits
    assert t.column("open_trades").to_pylist() != [0] * 4  # marked, as run.trades() marks


def test_the_cli_gives_a_sweeps_trade_stats_and_refuses_its_trades(store):
    import json

    from cli_process import run_incbt

    sw = store.sweep("breakout", {"lookback": [10, 40]}, name="cli-trips")
    p = run_incbt(["--store", store.path, "trades", "cli-trips", "--stats", "--output", "json"])
    assert p.returncode == 0, p.stderr
    rows = [json.loads(ln) for ln in p.stdout.splitlines()]
    want = sw.trade_stats().to_pylist()
    assert [(r["point"], r["run_id"], r["p_lookback"], r["trades"], r["expectancy"])
            for r in rows] == [(w["point"], w["run_id"], w["p_lookback"], w["trades"],
                                w["expectancy"]) for w in want]
    p = run_incbt(["--store", store.path, "trades", "cli-trips"])
    assert p.returncode == 2 and "`incbt trades cli-trips --stats`" in p.stderr


def test_an_unmarked_open_trade_ends_at_its_day_start_in_the_session_zone(tmp_path):
    """The exit_ts of an open trade whose last day was removed since is that day's start
    in the store's session zone, as README says: in a New York store, 2024-03-07 starts
    at 05:00 UTC, not at UTC midnight (then 19:00 the evening before, the previous
    trading day's)."""
    generate(str(tmp_path / "d"), instruments=2, days=4, start="2024-03-04", seed=5)
    s = incbt.init(str(tmp_path / "s"), session_tz="America/New_York")
    s.ingest(str(tmp_path / "d"))
    run = s.backtest("sma_cross", {"fast": 5, "slow": 20})
    s.remove(["S0001"], start="2024-03-07")
    last = run.trades("S0001").to_pandas().iloc[-1]
    assert last.status == "open" and np.isnan(last.exit_price)
    assert last.exit_ts == pd.Timestamp("2024-03-07", tz="America/New_York")


def test_trade_stats_tables_are_typed_without_a_closed_trade(store, tmp_path):
    """A sweep's trade statistics and `incbt trades RUN --stats` have one schema whatever
    the values: a run without a closed trade (all its statistics None) gives float64 and
    duration columns of nulls, not columns of Arrow's null type that another run's file
    does not concatenate with."""
    import pyarrow.parquet as pq
    from cli_process import run_incbt

    sw = store.sweep("sma_cross", {"fast": [5], "slow": [3000, 4000]}, name="no-trips")
    t = sw.trade_stats()
    assert t.column("closed_trades").to_pylist() == [0, 0]
    assert t.schema.field("win_rate_pct").type == pa.float64()
    assert t.schema.field("avg_losing_trade_duration").type == pa.duration("us")
    full = store.sweep("sma_cross", {"fast": [5], "slow": [20]}, name="trips-too").trade_stats()
    assert pa.concat_tables([t, full]).num_rows == 3
    run = store.run(sw.run_ids[0])
    p = run_incbt(["--store", store.path, "trades", run.run_id, "--stats", "-o",
                   str(tmp_path / "st.parquet")])
    assert p.returncode == 0, p.stderr
    got = pq.read_table(tmp_path / "st.parquet")
    assert got.schema.field("expectancy").type == pa.float64()
    assert got.schema.field("avg_winning_trade_duration").type == pa.duration("us")


def test_a_sweep_ranks_and_pivots_by_a_trade_statistic(store, tmp_path):
    """leaderboard, pivot and the report's heatmap by a value of trade_stats() (the win
    rate, the expectancy, ...), as by a metric or a value of stats()."""
    sw = store.sweep("bollinger", {"window": [10, 30], "k": [0.5, 2.0]}, name="trip-rank")
    stats = {r["run_id"]: r for r in sw.trade_stats().to_pylist()}
    board = sw.leaderboard("win_rate_pct", 4).to_pylist()
    assert [r["run_id"] for r in board] == sorted(
        stats, key=lambda r: (-stats[r]["win_rate_pct"], r))
    assert list(board[0])[:5] == ["run_id", "params", "p_window", "p_k", "win_rate_pct"]
    assert board[0]["sharpe"] == store.run(board[0]["run_id"]).portfolio["sharpe"]
    grid = sw.pivot("window", "k", "expectancy")
    for r in stats.values():
        assert grid.loc[r["p_k"], r["p_window"]] == r["expectancy"]
    with pytest.raises(incbt.UsageError, match=r"or trades, closed_trades, win_rate_pct"):
        sw.leaderboard("win_rate")
    page = Path(store.report("trip-rank", str(tmp_path / "r.html"), "expectancy")).read_text()
    assert "expectancy over window x k" in page  # across and down as the strategy has them
