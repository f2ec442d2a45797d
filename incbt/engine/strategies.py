"""The built-in strategies, defined to the bit.

All arithmetic is float64, in the order written here. "Seen" counts the
bars the run has executed since its start (the first bar on or after the
run's start date), across day boundaries; every strategy keeps that count in
its first state slot `n`, so a segment resumed from a snapshot knows whether
its windows are full. Signals are -1, 0, +1. Their parameters rule out a zero
divisor, so their steps compile with Numba's "numpy" error model: no test of
each divisor before it is used (the same results; the kernels ~5% faster).

sma_cross(fast, slow), 1 <= fast < slow
    State: n, sum_fast, sum_slow. At bar i: sum_fast += close_i, then, if
    n >= fast (n counted before bar i), sum_fast -= close_{i-fast}; the same
    for sum_slow with slow; then n += 1. Once n >= slow: +1 if
    sum_fast/fast > sum_slow/slow, -1 if less, 0 if equal; before that 0.
    Warm-up: slow bars (the closes that leave the windows).

breakout(lookback), lookback >= 1
    State: n, last, hi, hi_age, lo, lo_age. At bar i, if n >= lookback (bars
    seen before i): hi = max(high_j), lo = min(low_j) over the lookback bars
    before i (not i); signal = +1 if close_i > hi, -1 if close_i < lo,
    otherwise `last`. Before that 0. Then n += 1, last = signal. Warm-up:
    lookback bars. hi and lo are kept as the channel slides (bar i-1 enters;
    hi_age and lo_age count the bars since their latest bar) and scanned again
    only when theirs leaves it: a maximum and a minimum are exact, so the
    values are those of a scan at every bar, in O(1) a bar on average, not
    O(lookback) (a sweep of lookbacks to 4,000 took minutes a task).
    (`last` equals the run's previous signal. In a fork it is the base run's
    signal at the close of D-1, the fork's previous signal: the replay of the
    warm-up rebuilds n, and `last` is set after it (`signal_state`), so the
    fork holds the base's side until its own channel is broken.)

ema_cross(fast, slow), 1 <= fast < slow
    State: n, ema_fast, ema_slow. alpha_x = 2.0 / (x + 1.0). At bar i: if
    n == 0, ema_fast = ema_slow = close_i (seeded with the first close);
    otherwise ema_x = ema_x + alpha_x * (close_i - ema_x). Then n += 1. Once
    n >= slow: +1 if ema_fast > ema_slow, -1 if less, 0 if equal; before that
    0. The step reads no past bar; its warm-up is slow bars only so that a
    fork replays slow bars to seed the new averages.

bollinger(window, k), window >= 2, 0 <= k <= 10: mean reversion
    State: n, last. At bar i: n += 1 (closes seen including bar i). Once
    n >= window: over the window closes c_j, j = i-window+1 .. i, summed in
    that order from 0.0: mean = sum(c_j) / window,
    var = sum((c_j - mean) * (c_j - mean)) / window (population),
    std = sqrt(var), lower = mean - k * std, upper = mean + k * std; then
    signal = +1 if close_i < lower; else -1 if close_i > upper; else 0 if
    last == +1 and close_i >= mean, or last == -1 and close_i <= mean (the
    close crossed back to the mean: exit); else last (hold). Before the
    window is full, 0. Then last = signal. Recomputed from the window each
    bar, so resuming is exact by construction. Warm-up: window - 1 bars. In a
    fork `last` is the base run's signal at the close of D-1 (`signal_state`).
    The entry tests come first: long with the close above the upper band, the
    signal is -1 (straight to short), not the exit to 0.

rsi(window, lower, upper), window >= 2, 0 <= lower < upper <= 100: mean reversion
    State: n, last. At bar i: n += 1 (closes seen including bar i). Once
    n > window (window close-to-close changes, of closes c_{i-window} .. c_i):
    over j = i-window+1 .. i in that order, from 0.0, d = c_j - c_{j-1};
    gains += d where d > 0, losses -= d where d < 0; rsi = 50.0 if
    gains + losses == 0.0, else 100.0 * gains / (gains + losses) (Cutler's
    RSI: simple means of the window's gains and losses, so that resuming is
    exact by construction; Wilder's smoothing would depend on every close since
    the start, as an EMA does). Then signal = +1 if rsi < lower (oversold);
    else -1 if rsi > upper (overbought); else 0 if last == +1 and rsi >= 50,
    or last == -1 and rsi <= 50 (back to the middle: exit); else last (hold).
    Before that 0. Then last = signal. Warm-up: window bars (c_{i-window}). In a
    fork `last` is the base run's signal at the close of D-1 (`signal_state`).
"""

from __future__ import annotations

import difflib
import math

from .errors import StrategyError
from .strategy_api import Param, Strategy, strategy

__all__ = ["BUILTINS", "breakout", "bollinger", "ema_cross", "get_strategy", "rsi", "sma_cross"]


def _fast_below_slow(p: dict) -> str | None:
    if p["fast"] < p["slow"]:
        return None
    return f"fast ({p['fast']}) must be less than slow ({p['slow']})"


@strategy(
    params={
        "fast": Param(int, 10, min=1, help="bars in the fast moving average"),
        "slow": Param(int, 50, min=2, help="bars in the slow moving average"),
    },
    state=("n", "sum_fast", "sum_slow"),
    warmup=lambda p: p["slow"],
    reads=("close",),
    error_model="numpy",  # it divides by fast and slow, both >= 1
    check=_fast_below_slow,
)
def sma_cross(p, s, o, h, l, c, v, i):  # noqa: E741
    """Long when the fast simple moving average of closes is above the slow one, short below."""
    fast = int(p[0])
    slow = int(p[1])
    n = s[0]
    x = c[i]
    if n >= slow:  # both windows full (fast < slow): one test a bar, the same arithmetic
        s[1] += x
        s[1] -= c[i - fast]
        s[2] += x
        s[2] -= c[i - slow]
        s[0] = n + 1.0
    else:
        s[1] += x
        if n >= fast:
            s[1] -= c[i - fast]
        s[2] += x
        n += 1.0
        s[0] = n
        if n < slow:
            return 0
    a = s[1] / fast
    b = s[2] / slow
    if a > b:
        return 1
    if a < b:
        return -1
    return 0


@strategy(
    params={"lookback": Param(int, 20, min=1, help="bars in the channel, before the bar")},
    state=("n", "last", "hi", "hi_age", "lo", "lo_age"),
    warmup=lambda p: p["lookback"],
    reads=("high", "low", "close"),
    error_model="numpy",  # it divides by nothing
    signal_state="last",  # in a fork, the base run's signal
)
def breakout(p, s, o, h, l, c, v, i):  # noqa: E741
    """Long on a close above the highest high of the last bars, short below the lowest low."""
    lookback = int(p[0])
    n = s[0]
    if n >= 1.0:  # bar i-1 enters the channel (the bars before i)
        if n == 1.0 or h[i - 1] >= s[2]:
            s[2] = h[i - 1]
            s[3] = 0.0
        else:
            s[3] += 1.0
        if n == 1.0 or l[i - 1] <= s[4]:
            s[4] = l[i - 1]
            s[5] = 0.0
        else:
            s[5] += 1.0
        if s[3] >= lookback:  # the highest high left the channel: scan it again (its
            at = i - lookback  # latest bar: the longest before it leaves again)
            for j in range(i - lookback + 1, i):
                if h[j] >= h[at]:
                    at = j
            s[2] = h[at]
            s[3] = float(i - 1 - at)
        if s[5] >= lookback:  # the lowest low, the same
            at = i - lookback
            for j in range(i - lookback + 1, i):
                if l[j] <= l[at]:
                    at = j
            s[4] = l[at]
            s[5] = float(i - 1 - at)
    sig = 0.0
    if n >= lookback:
        x = c[i]
        if x > s[2]:
            sig = 1.0
        elif x < s[4]:
            sig = -1.0
        else:
            sig = s[1]
    s[0] = n + 1.0
    s[1] = sig
    return sig


@strategy(
    params={
        "fast": Param(int, 12, min=1, help="span of the fast EMA, in bars"),
        "slow": Param(int, 26, min=2, help="span of the slow EMA, in bars"),
    },
    state=("n", "ema_fast", "ema_slow"),
    warmup=lambda p: p["slow"],
    reads=("close",),
    error_model="numpy",  # it divides by fast + 1 and slow + 1, both >= 2
    check=_fast_below_slow,
)
def ema_cross(p, s, o, h, l, c, v, i):  # noqa: E741
    """Long when the fast exponential moving average of closes is above the slow one."""
    fast = p[0]
    slow = p[1]
    x = c[i]
    if s[0] == 0.0:
        s[1] = x
        s[2] = x
    else:
        s[1] = s[1] + 2.0 / (fast + 1.0) * (x - s[1])
        s[2] = s[2] + 2.0 / (slow + 1.0) * (x - s[2])
    s[0] += 1.0
    if s[0] >= slow:
        if s[1] > s[2]:
            return 1
        if s[1] < s[2]:
            return -1
    return 0


@strategy(
    params={
        "window": Param(int, 20, min=2, help="closes in the rolling mean and std, incl. the bar"),
        "k": Param(float, 2.0, min=0.0, max=10.0, help="band width in standard deviations"),
    },
    state=("n", "last"),
    warmup=lambda p: p["window"] - 1,
    reads=("close",),
    error_model="numpy",  # it divides by window, >= 2
    signal_state="last",  # in a fork, the base run's signal
)
def bollinger(p, s, o, h, l, c, v, i):  # noqa: E741
    """Mean reversion: long below the lower band, short above the upper, flat back at the mean."""
    window = int(p[0])
    k = p[1]
    s[0] += 1.0
    sig = 0.0
    if s[0] >= window:
        total = 0.0
        for j in range(i - window + 1, i + 1):
            total += c[j]
        mean = total / window
        sq = 0.0
        for j in range(i - window + 1, i + 1):
            d = c[j] - mean
            sq += d * d
        std = math.sqrt(sq / window)
        x = c[i]
        last = s[1]
        if x < mean - k * std:
            sig = 1.0
        elif x > mean + k * std:
            sig = -1.0
        elif (last == 1.0 and x >= mean) or (last == -1.0 and x <= mean):
            sig = 0.0
        else:
            sig = last
    s[1] = sig
    return sig


def _lower_below_upper(p: dict) -> str | None:
    if p["lower"] < p["upper"]:
        return None
    return f"lower ({p['lower']:g}) must be less than upper ({p['upper']:g})"


@strategy(
    params={
        "window": Param(int, 14, min=2, help="close-to-close changes in the RSI"),
        "lower": Param(float, 30.0, min=0.0, max=100.0, help="RSI below it: long (oversold)"),
        "upper": Param(float, 70.0, min=0.0, max=100.0, help="RSI above it: short (overbought)"),
    },
    state=("n", "last"),
    warmup=lambda p: p["window"],
    reads=("close",),
    error_model="numpy",  # it divides by gains + losses, tested > 0 first
    check=_lower_below_upper,
    signal_state="last",  # in a fork, the base run's signal
)
def rsi(p, s, o, h, l, c, v, i):  # noqa: E741
    """Mean reversion on the RSI of closes: long oversold, short overbought, flat back at 50."""
    window = int(p[0])
    lower = p[1]
    upper = p[2]
    s[0] += 1.0
    sig = 0.0
    if s[0] > window:
        gains = 0.0
        losses = 0.0
        for j in range(i - window + 1, i + 1):
            d = c[j] - c[j - 1]
            if d > 0.0:
                gains += d
            elif d < 0.0:
                losses -= d
        total = gains + losses
        r = 50.0
        if total != 0.0:
            r = 100.0 * gains / total
        last = s[1]
        if r < lower:
            sig = 1.0
        elif r > upper:
            sig = -1.0
        elif (last == 1.0 and r >= 50.0) or (last == -1.0 and r <= 50.0):
            sig = 0.0
        else:
            sig = last
    s[1] = sig
    return sig


BUILTINS: dict[str, Strategy] = {
    s.name: s for s in (sma_cross, breakout, ema_cross, bollinger, rsi)
}


def get_strategy(name: str, extra: dict[str, Strategy] | None = None) -> Strategy:
    """A strategy by name: from `extra` (e.g. loaded user strategies) first, then the built-ins."""
    if extra and name in extra:
        return extra[name]
    if name in BUILTINS:
        return BUILTINS[name]
    known = sorted(set(BUILTINS) | set(extra or {}))
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.75)
    mean = f" (did you mean {close[0]!r}?)" if close else ""
    raise StrategyError(f"unknown strategy {name!r}{mean}; known strategies: {', '.join(known)}")
