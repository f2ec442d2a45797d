"""A bare hand-written Numba sma_cross loop: SEMANTICS.md, nothing else.

One instrument at a time; no snapshots, no fill records, no strategy API,
no checks. It writes the equity at each day's close (what a backtest must
produce at the least) and returns the final equity, i.e. the total PnL.
Running float64 sums in the order SEMANTICS.md fixes, so its PnL equals
incbt's bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def sma_cross_bare(fast, slow, notional, fee_bps, slip_bps, o, c, day_ends, equity):
    """Run sma_cross(fast, slow) over one instrument; return the total PnL.

    o, c: opens and closes; day_ends: exclusive end index of each day;
    equity: (n_days,) output, the equity at each day's last bar.
    """
    sf = 0.0
    ss = 0.0
    sig = 0.0
    pos = 0.0
    cash = 0.0
    pend = False
    tgt = 0.0
    up = 1.0 + slip_bps / 1e4
    down = 1.0 - slip_bps / 1e4
    d = 0
    de = day_ends[0]
    x = 0.0
    for i in range(c.shape[0]):
        if pend:  # 1. fill at this bar's open
            q = tgt - pos
            px = o[i] * up if q > 0.0 else o[i] * down
            cash -= q * px + abs(q * px) * fee_bps / 1e4
            pos = tgt
            pend = False
        x = c[i]  # 2. signal from running sums (add the new close, drop the leaving one)
        sf += x
        if i >= fast:
            sf -= c[i - fast]
        ss += x
        if i >= slow:
            ss -= c[i - slow]
        s = 0.0
        if i + 1 >= slow:
            a = sf / fast
            b = ss / slow
            s = 1.0 if a > b else (-1.0 if a < b else 0.0)
        if s != sig:  # 3. order on a change only
            sig = s
            tgt = s * notional / x
            pend = True
        if i + 1 == de:  # 4. mark at the day's close
            equity[d] = cash + pos * x
            d += 1
            if d < day_ends.shape[0]:
                de = day_ends[d]
    return cash + pos * x


def run(bars: list, fast: int, slow: int, notional: float = 1e5, fee_bps: float = 0.0,
        slip_bps: float = 0.0) -> np.ndarray:
    """Total PnL per instrument; ``bars``: objects with .open, .close, .day_ends."""
    out = np.empty(len(bars))
    for k, b in enumerate(bars):
        eq = np.empty(len(b.day_ends))
        out[k] = sma_cross_bare(fast, slow, notional, fee_bps, slip_bps, b.open, b.close,
                                b.day_ends, eq)
    return out
