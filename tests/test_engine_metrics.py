"""Metrics and portfolio aggregation per SEMANTICS.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_support import make_bars, run_engine

from incbt.engine import compute_metrics, max_drawdown, portfolio_daily, sharpe
from incbt.results import metrics
from incbt.results.metrics import portfolio_pnl


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


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sets(st.integers(0, 30), max_size=12),
            st.lists(st.sampled_from([1.0, -1.0, 1e16, -1e16, 0.1, 3.7e-9, -0.0]), min_size=12),
        ),
        max_size=8,
    ),
    st.randoms(use_true_random=False),
    st.sampled_from([1, 3, 8, 20, 1 << 16]),
)
def test_the_portfolio_summed_in_chunks_is_one_add_at_over_all_rows(items, rnd, chunk):
    # the definition: one unbuffered np.add.at over every instrument's rows, concatenated in
    # name order; portfolio_pnl sums chunks of instruments of about ``chunk`` rows
    per = []
    for k, (days, vals) in enumerate(items):
        d = np.array(sorted(days), dtype=np.int32)
        per.append((f"i{k:02d}", d, np.array(vals[: len(d)])))
    rnd.shuffle(per)
    before = metrics.PORTFOLIO_CHUNK
    metrics.PORTFOLIO_CHUNK = chunk
    try:
        days, pnl = portfolio_pnl(per)
    finally:
        metrics.PORTFOLIO_CHUNK = before
    ordered = sorted(per, key=lambda x: x[0])
    if not ordered:
        assert days.size == 0 and pnl.size == 0
        return
    all_days = np.concatenate([d for _, d, _ in ordered])
    want_days = np.unique(all_days)
    want = np.zeros(len(want_days))
    rows = np.concatenate([p for _, _, p in ordered])
    np.add.at(want, np.searchsorted(want_days, all_days), rows)
    assert days.dtype == np.int32 and days.tolist() == want_days.tolist()
    assert pnl.tobytes() == want.tobytes()
