"""Resuming from any day's snapshot gives an uninterrupted run's bits; so do batches and reruns."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_support import bar_arrays, day_ends, make_bars, random_params, run_engine

from incbt.engine import (
    BUILTINS,
    exec_params_from_dict,
    get_strategy,
    initial_state,
    params_from_dict,
    run_segment,
)
from incbt.engine.layout import PENDING

DAILY = ("equity", "pnl", "pos", "fees", "fills", "turnover")
FILLS = ("fill_set", "fill_ts", "fill_qty", "fill_price", "fill_fee")
EXEC = {"notional": 50000.0, "fee_bps": 1.5, "slippage_bps": 2.5}


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def resume(name, sets, bars, full, d, extra_history):
    """Run from the snapshot at the close of day d, with warm-up (+ extra) bars of history."""
    strat = get_strategy(name)
    ts = bars["ts"].to_numpy()
    b = int(day_ends(ts)[d])  # first bar after day d
    warm = max(strat.warmup(p) for p in sets)
    h0 = max(0, b - warm - extra_history)
    seg = bars.iloc[h0:].reset_index(drop=True)
    return run_engine(name, sets, seg, EXEC, start=b - h0, state=full.snapshots[:, d, :].copy()), b


def assert_resume_identical(name, sets, bars, extra_history):
    full = run_engine(name, sets, bars, EXEC)
    assert full.ok
    ts = bars["ts"].to_numpy()
    for d in range(full.n_days):
        part, b = resume(name, sets, bars, full, d, extra_history)
        assert part.ok
        for col in DAILY:
            assert same_bits(getattr(part, col), getattr(full, col)[:, d + 1 :]), (col, d)
        assert same_bits(part.snapshots, full.snapshots[:, d + 1 :, :]), d
        assert same_bits(part.state, full.state), d
        later = full.fill_ts >= (ts[b] if b < len(ts) else ts[-1] + 1)
        for col in FILLS:
            assert same_bits(getattr(part, col), getattr(full, col)[later]), (col, d)
        assert part.bars_processed == (len(bars) - b) * len(sets)


@pytest.mark.parametrize("name", sorted(BUILTINS))
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_days=st.integers(2, 8),
    discrete=st.booleans(),
    extra_history=st.sampled_from([0, 0, 3, 1000]),
)
def test_resume_from_every_day_is_bit_identical(name, seed, n_days, discrete, extra_history):
    rng = np.random.default_rng(seed)
    bars = make_bars(seed, n_days, min_bars=1, max_bars=25, discrete=discrete)
    sets = [random_params(name, rng) for _ in range(3)]
    assert_resume_identical(name, sets, bars, extra_history)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_resume_with_long_windows(name):
    # windows longer than a day: the warm-up spans several earlier days
    bars = make_bars(11, 12, min_bars=3, max_bars=12)
    strat = get_strategy(name)
    big = {
        "sma_cross": {"fast": 9, "slow": 40},
        "ema_cross": {"fast": 9, "slow": 40},
        "breakout": {"lookback": 30},
        "bollinger": {"window": 35, "k": 0.5},
        "rsi": {"window": 30, "lower": 40.0, "upper": 60.0},
    }[name]
    assert strat.warmup(big) > 12
    assert_resume_identical(name, [big, strat.defaults()], bars, 0)


def test_pending_order_survives_the_end_of_data():
    # an order made at the last bar of a segment fills at the next segment's first bar
    found = 0
    for seed in range(6):
        bars = make_bars(seed, 8, min_bars=2, max_bars=10)
        sets = [{"lookback": 1}, {"lookback": 2}]
        full = run_engine("breakout", sets, bars, EXEC)
        ts = bars["ts"].to_numpy()
        ends = day_ends(ts)
        for d in range(full.n_days - 1):
            first = ts[ends[d]]
            for k in range(len(sets)):
                if not np.any((full.fill_ts == first) & (full.fill_set == k)):
                    continue
                found += 1
                # the end-of-day snapshot holds the pending order ...
                assert full.snapshots[k, d, PENDING] == 1.0
                head = run_engine("breakout", sets, bars.iloc[: ends[d]], EXEC)
                assert head.state[k, PENDING] == 1.0
                assert same_bits(head.state, full.snapshots[:, d, :])
                # ... and the next segment fills it at its first bar
                part, _ = resume("breakout", sets, bars, full, d, 0)
                mine = part.fill_set == k
                assert part.fill_ts[mine][0] == first
                assert same_bits(part.fill_price[mine], full.fill_price[full.fill_set == k][
                    full.fill_ts[full.fill_set == k] >= first])  # fmt: skip
    assert found >= 5


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_batch_equals_single_runs(name):
    rng = np.random.default_rng(3)
    bars = make_bars(3, 6)
    sets = [random_params(name, rng) for _ in range(5)]
    batch = run_engine(name, sets, bars, EXEC)
    for k, params in enumerate(sets):
        one = run_engine(name, [params], bars, EXEC)
        for col in DAILY:
            assert same_bits(getattr(one, col)[0], getattr(batch, col)[k]), col
        assert same_bits(one.snapshots[0], batch.snapshots[k])
        assert same_bits(one.state[0], batch.state[k])
        mine = batch.fill_set == k
        for col in ("fill_ts", "fill_qty", "fill_price", "fill_fee", "fill_bar"):
            assert same_bits(getattr(one, col), getattr(batch, col)[mine]), col


def test_fills_are_ordered_by_set_then_bar():
    bars = make_bars(4, 5)
    res = run_engine("sma_cross", [{"fast": 2, "slow": 4}, {"fast": 1, "slow": 3}], bars, EXEC)
    key = res.fill_set * (len(bars) + 1) + res.fill_bar
    assert np.all(np.diff(key) > 0)
    assert np.array_equal(res.fill_ts, bars["ts"].to_numpy()[res.fill_bar])


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_same_input_twice_gives_same_bytes(name):
    rng = np.random.default_rng(9)
    bars = make_bars(9, 5, discrete=True)
    sets = [random_params(name, rng) for _ in range(3)]
    a = run_engine(name, sets, bars, EXEC)
    b = run_engine(name, sets, bars, EXEC)
    for col in (*DAILY, *FILLS, "snapshots", "state", "fill_bar"):
        assert same_bits(getattr(a, col), getattr(b, col)), col


def test_inputs_are_not_modified():
    strat = get_strategy("sma_cross")
    bars = make_bars(1, 3)
    ts, o, h, lo, c, v = bar_arrays(bars)
    state = initial_state(strat, 1)
    params = params_from_dict(strat, {"fast": 2, "slow": 5})[None]
    ex = exec_params_from_dict({})[None]
    copies = [x.copy() for x in (state, params, ex, o, c)]
    run_segment(strat, params, ex, ts, o, h, lo, c, v, 0, day_ends(ts), state)
    for before, after in zip(copies, (state, params, ex, o, c), strict=True):
        assert same_bits(before, after)


def test_fill_buffer_overflow_is_retried():
    # a strategy that flips every bar fills on every bar: more than the first guess of room
    bars = make_bars(2, 30, min_bars=40, max_bars=40, discrete=True)
    res = run_engine("breakout", [{"lookback": 1}] * 3, bars, EXEC)
    singles = run_engine("breakout", [{"lookback": 1}], bars, EXEC)
    assert res.fill_qty.size == 3 * singles.fill_qty.size
    assert res.fill_qty.size > len(bars) // 8 * 3 / 2


def test_empty_segment_keeps_the_state():
    strat = get_strategy("ema_cross")
    bars = make_bars(1, 2)
    full = run_engine("ema_cross", [strat.defaults()], bars, EXEC)
    ts, o, h, lo, c, v = bar_arrays(bars)
    p = params_from_dict(strat, {})[None]
    ex = exec_params_from_dict(EXEC)[None]
    res = run_segment(strat, p, ex, ts, o, h, lo, c, v, len(ts), np.empty(0, np.int64), full.state)
    assert res.n_days == 0 and res.bars_processed == 0 and res.fill_ts.size == 0
    assert same_bits(res.state, full.state)
