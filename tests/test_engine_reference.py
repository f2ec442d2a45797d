"""The engine equals an independent reference (tests/reference_backtest.py) on random data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_backtest import reference_backtest
from test_engine_support import make_bars, random_params, run_engine

from incbt.engine import BUILTINS

RTOL, ATOL = 1e-9, 1e-6  # ATOL for values near 0: equity is in currency, notional 1e5


def check_against_reference(name: str, seed: int, n_days: int, discrete: bool, n_sets: int) -> None:
    rng = np.random.default_rng(seed)
    exec_params = {
        "notional": float(rng.choice([1e5, 2.5e4])),
        "fee_bps": float(rng.uniform(0.1, 5.0)),
        "slippage_bps": float(rng.uniform(0.1, 5.0)),
    }
    for instrument in range(3):  # each instrument is computed on its own
        bars = make_bars(seed * 7 + instrument, n_days, discrete=discrete)
        sets = [random_params(name, rng) for _ in range(n_sets)]
        res = run_engine(name, sets, bars, exec_params)
        assert res.errors == [None] * n_sets
        assert res.bars_processed == len(bars) * n_sets
        for k, params in enumerate(sets):
            ref = reference_backtest(name, params, bars, **exec_params)
            d = ref.daily
            assert res.equity.shape[1] == len(d)
            for col in ("equity", "pnl", "pos", "fees", "turnover"):
                np.testing.assert_allclose(
                    getattr(res, col)[k], d[col].to_numpy(), rtol=RTOL, atol=ATOL, err_msg=col
                )
            np.testing.assert_array_equal(res.fills[k], d["fills"].to_numpy())
            mine = res.fill_set == k
            f = ref.fills
            assert mine.sum() == len(f)
            np.testing.assert_array_equal(res.fill_ts[mine], f["ts"].to_numpy(dtype=np.int64))
            for a, b in (("fill_qty", "qty"), ("fill_price", "price"), ("fill_fee", "fee")):
                np.testing.assert_allclose(
                    getattr(res, a)[mine],
                    f[b].to_numpy(dtype=np.float64),
                    rtol=RTOL,
                    atol=1e-9,
                    err_msg=a,
                )
            # the engine's state at the end matches the reference's
            state = res.state[k]
            pending = ref.final["pending"]
            assert state[0] == ref.final["signal"]
            assert state[3] == (0.0 if pending is None else 1.0)
            if pending is not None:
                np.testing.assert_allclose(state[4], pending, rtol=RTOL)


@pytest.mark.parametrize("name", sorted(BUILTINS))
@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_days=st.integers(1, 7),
    discrete=st.booleans(),
    n_sets=st.integers(1, 4),
)
def test_engine_equals_reference(name, seed, n_days, discrete, n_sets):
    check_against_reference(name, seed, n_days, discrete, n_sets)


@pytest.mark.parametrize("name", sorted(BUILTINS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_engine_equals_reference_seeded(name, seed):
    # longer runs: many days, windows that cross many day boundaries
    check_against_reference(name, seed, n_days=20, discrete=seed == 2, n_sets=3)


def test_reference_is_not_trivial():
    # the random data must exercise the engine: many fills, both directions
    bars = make_bars(5, 10)
    res = run_engine("sma_cross", [{"fast": 2, "slow": 5}], bars, {"fee_bps": 1.0})
    assert res.fill_qty.size > 20
    assert (res.fill_qty > 0).any() and (res.fill_qty < 0).any()


def test_breakout_s_sliding_channel_equals_a_scan_at_every_bar():
    """breakout keeps its channel's high and low as it slides, scanning again only when
    theirs leaves it (O(1) a bar on average): the same bits as the reference's scan at
    every bar, ties included (a 0.01 tick), at lookbacks from 1 to past a day's bars."""
    lookbacks = [1, 2, 3, 5, 8, 13, 40, 100, 390]
    for seed in range(6):
        for discrete in (False, True):
            bars = make_bars(seed, 3, min_bars=100, max_bars=200, discrete=discrete)
            res = run_engine("breakout", [{"lookback": n} for n in lookbacks], bars)
            for k, n in enumerate(lookbacks):
                ref = reference_backtest("breakout", {"lookback": n}, bars)
                np.testing.assert_array_equal(res.pos[k], ref.daily["pos"].to_numpy())
                np.testing.assert_array_equal(res.fills[k], ref.daily["fills"].to_numpy())
                mine = res.fill_set == k
                np.testing.assert_array_equal(
                    res.fill_ts[mine], ref.fills["ts"].to_numpy(dtype=np.int64)
                )
