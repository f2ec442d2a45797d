"""Shared helpers for the engine tests: random bars and one-call engine runs (no tests here)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from incbt.engine import (
    exec_params_from_dict,
    get_strategy,
    initial_state,
    params_from_dict,
    run_segment,
)

NS_PER_DAY = 86_400_000_000_000
NS_PER_MIN = 60_000_000_000
DAY0 = 19_700  # days since the epoch (2023-12-08)


def make_bars(
    seed: int,
    n_days: int,
    min_bars: int = 5,
    max_bars: int = 40,
    discrete: bool = False,
    vol: float = 0.004,
) -> pd.DataFrame:
    """Random-walk minute bars over n_days trading days, with gaps between days.

    discrete=True rounds prices to a 0.01 tick so that equal values (ties in
    comparisons) happen often.
    """
    rng = np.random.default_rng(seed)
    ts_parts, day = [], DAY0
    for _ in range(n_days):
        day += int(rng.integers(1, 4))  # weekends and holidays
        k = int(rng.integers(min_bars, max_bars + 1))
        minutes = np.sort(rng.choice(np.arange(570, 960), size=k, replace=False))
        ts_parts.append(day * NS_PER_DAY + minutes.astype(np.int64) * NS_PER_MIN)
    ts = np.concatenate(ts_parts)
    n = ts.size
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0.0, vol / 4, n))
    if discrete:
        close = np.maximum(np.round(close, 2), 0.01)
        open_ = np.maximum(np.round(open_, 2), 0.01)
    spread = np.abs(rng.normal(0.0, vol, n)) * close
    high = np.maximum(open_, close) + (np.round(spread, 2) if discrete else spread)
    low = np.maximum(
        np.minimum(open_, close) - (np.round(spread, 2) if discrete else spread), 0.005
    )
    volume = rng.integers(0, 1000, n).astype(np.float64)
    return pd.DataFrame(
        {"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume}
    )


def day_ends(ts: np.ndarray, first: int = 0) -> np.ndarray:
    """Exclusive end index of each UTC day among bars [first, n)."""
    days = np.asarray(ts)[first:] // NS_PER_DAY
    cut = np.flatnonzero(np.diff(days)) + 1
    return np.concatenate((cut, [days.size])).astype(np.int64) + first if days.size else cut


def bar_arrays(bars: pd.DataFrame) -> tuple[np.ndarray, ...]:
    return tuple(bars[c].to_numpy() for c in ("ts", "open", "high", "low", "close", "volume"))


def run_engine(
    name: str,
    params: list[dict],
    bars: pd.DataFrame,
    exec_params: dict | None = None,
    start: int = 0,
    state: np.ndarray | None = None,
    strat=None,
):
    """run_segment over all of `bars` for a list of parameter dicts."""
    strat = strat or get_strategy(name)
    p = np.stack([params_from_dict(strat, d) for d in params])
    ex = np.tile(exec_params_from_dict(exec_params or {}), (len(params), 1))
    ts, o, h, lo, c, v = bar_arrays(bars)
    st = initial_state(strat, len(params)) if state is None else state
    return run_segment(strat, p, ex, ts, o, h, lo, c, v, start, day_ends(ts, start), st)


def random_params(name: str, rng: np.random.Generator) -> dict:
    """A random valid parameter dict for a built-in, with short windows (many signal changes)."""
    if name in ("sma_cross", "ema_cross"):
        fast = int(rng.integers(1, 8))
        return {"fast": fast, "slow": int(rng.integers(fast + 1, fast + 15))}
    if name == "breakout":
        return {"lookback": int(rng.integers(1, 15))}
    if name == "bollinger":
        return {"window": int(rng.integers(2, 15)), "k": float(rng.choice([0.0, 0.5, 1.0, 1.7]))}
    if name == "rsi":
        lower = float(rng.choice([0.0, 30.0, 45.0, 50.0]))
        return {"window": int(rng.integers(2, 12)), "lower": lower,
                "upper": float(rng.choice([50.0, 55.0, 70.0, 100.0])) if lower < 50 else 60.0}
    raise KeyError(name)
