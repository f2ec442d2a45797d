"""The layout of the engine state: one float64 vector per (run, instrument).

The vector is the snapshot: the engine fields below, then the strategy's own
slots (`Strategy.state_names`). Nothing else is needed to resume a run bit for
bit; windows are re-read from the bars (see `Strategy.warmup`).

=====  ===========  ==========================================================
index  name         meaning
=====  ===========  ==========================================================
0      signal       last signal given by the strategy (-1, 0 or +1; starts 0)
1      pos          units held (starts 0)
2      cash         cash (starts 0); equity = cash + pos * close
3      pending      1.0 if an order is pending, else 0.0
4      target       the pending order's target units (0.0 when none)
5      prev_equity  equity at the close of the last day with bars (0 before the
                    first day), so that the next day's pnl = equity - this
6      bars         number of bars this run has executed for the instrument
7...   strategy     the strategy's slots, in `state_names` order
=====  ===========  ==========================================================
"""

from __future__ import annotations

__all__ = [
    "BARS",
    "CASH",
    "ENGINE_FIELDS",
    "ENGINE_WIDTH",
    "PENDING",
    "POS",
    "PREV_EQUITY",
    "SIGNAL",
    "TARGET",
]

ENGINE_FIELDS: tuple[str, ...] = (
    "signal",
    "pos",
    "cash",
    "pending",
    "target",
    "prev_equity",
    "bars",
)
SIGNAL, POS, CASH, PENDING, TARGET, PREV_EQUITY, BARS = range(len(ENGINE_FIELDS))
ENGINE_WIDTH = len(ENGINE_FIELDS)
