"""Metrics and portfolio aggregation per SEMANTICS.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_engine_support import make_bars, run_engine

from incbt.engine import compute_metrics, max_drawdown, portfolio_daily, sharpe


def test_sharpe():
    assert sharpe(np.array([1.0, 2.0, 3.0]), 100.0) == pytest.approx(2.0 * math.sqrt(252))
    assert sharpe(np.array([5.0]), 100.0) == 0.0
    assert sharpe(np.array([]), 100.0) == 0.0
    assert sharpe(np.array([2.0, 2.0, 2.0]), 100.0) == 0.0
    r = np.random.default_rng(0).normal(1.0, 3.0, 50)
    expect = np.mean(r / 1e4) / np.std(r / 1e4, ddof=1) * math.sqrt(252)
    assert sharpe(r, 1e4) == pytest.approx(expect, rel=1e-12)


def test_max_drawdown_peak_starts_at_zero():
    assert max_drawdown(np.array([-5.0, -3.0, -10.0])) == 10.0
    assert max_drawdown(np.array([5.0, 2.0, 8.0, 1.0])) == 7.0
    assert max_drawdown(np.array([1.0, 2.0, 3.0])) == 0.0
    assert max_drawdown(np.array([])) == 0.0


def test_compute_metrics_of_a_run():
    bars = make_bars(3, 8)
    res = run_engine("sma_cross", [{"fast": 2, "slow": 6}], bars, {"fee_bps": 2.0})
    m = compute_metrics(
        res.pnl[0], 1e5, fees=res.fees[0], fills=res.fills[0], turnover=res.turnover[0]
    )
    assert m.days == 8
    assert m.total_pnl == pytest.approx(res.equity[0, -1], abs=1e-6)
    assert m.fills == res.fill_qty.size
    assert m.fees == pytest.approx(res.fill_fee.sum(), rel=1e-12)
    assert m.turnover == pytest.approx(np.abs(res.fill_qty * res.fill_price).sum(), rel=1e-12)
    assert m.max_drawdown == pytest.approx(max_drawdown(res.equity[0]), abs=1e-6)
    assert m.sharpe == sharpe(res.pnl[0], 1e5)
    assert set(m.as_dict()) == {
        "days", "total_pnl", "sharpe", "max_drawdown", "fills", "fees", "turnover"
    }  # fmt: skip
    with pytest.raises(ValueError, match="capital must be a positive number"):
        compute_metrics(res.pnl[0], 0.0)


def test_portfolio_sums_in_instrument_name_order():
    # 1 + 1e16 rounds to 1e16, so the order of the sum shows in the result
    per = {
        "b": (np.array([1]), np.array([1e16])),
        "c": (np.array([1]), np.array([-1e16])),
        "a": (np.array([1]), np.array([1.0])),
    }
    days, pnl = portfolio_daily(per)
    assert days.tolist() == [1] and pnl.tolist() == [0.0]  # (1 + 1e16) - 1e16, not 1e16 - 1e16 + 1


def test_portfolio_days_where_some_instruments_have_no_bars():
    d = np.array(["2024-01-02", "2024-01-03", "2024-01-05"], dtype="datetime64[D]")
    days, pnl = portfolio_daily(
        {
            "x": (d, np.array([1.0, 2.0, 3.0])),
            "y": (d[1:2], np.array([10.0])),
            "z": (np.array(["2024-01-04"], dtype="datetime64[D]"), np.array([100.0])),
        }
    )
    assert days.astype(str).tolist() == ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
    assert pnl.tolist() == [1.0, 12.0, 100.0, 3.0]
    assert portfolio_daily({})[0].size == 0
    with pytest.raises(ValueError, match="a day appears twice"):
        portfolio_daily({"x": (np.array([1, 1]), np.array([1.0, 2.0]))})
