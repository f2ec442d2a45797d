"""An independent reference backtest, written from SEMANTICS.md in plain Python.

It shares no code with incbt.engine (and must never import it): a bar-by-bar
loop over Python floats, one instrument at a time, returning the daily rows
and fills that SEMANTICS.md defines. The built-in strategies follow their
definitions in SEMANTICS.md (sma_cross, breakout) and in the docstring of
incbt/engine/strategies.py (ema_cross, bollinger, rsi). Slow on purpose: clarity
over speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

__all__ = ["REFERENCE_STRATEGIES", "reference_backtest"]


class _SmaCross:
    def __init__(self, fast: int, slow: int) -> None:
        self.fast, self.slow = fast, slow
        self.sum_fast = 0.0
        self.sum_slow = 0.0
        self.closes: list[float] = []

    def signal(self, bar: dict) -> int:
        c = bar["close"]
        seen_before = len(self.closes)
        self.sum_fast += c
        if seen_before >= self.fast:
            self.sum_fast -= self.closes[seen_before - self.fast]
        self.sum_slow += c
        if seen_before >= self.slow:
            self.sum_slow -= self.closes[seen_before - self.slow]
        self.closes.append(c)
        if len(self.closes) < self.slow:
            return 0
        fast_ma = self.sum_fast / self.fast
        slow_ma = self.sum_slow / self.slow
        return 1 if fast_ma > slow_ma else (-1 if fast_ma < slow_ma else 0)


class _Breakout:
    def __init__(self, lookback: int) -> None:
        self.lookback = lookback
        self.highs: list[float] = []
        self.lows: list[float] = []
        self.previous = 0

    def signal(self, bar: dict) -> int:
        sig = 0
        if len(self.highs) >= self.lookback:
            hi = max(self.highs[-self.lookback :])
            lo = min(self.lows[-self.lookback :])
            if bar["close"] > hi:
                sig = 1
            elif bar["close"] < lo:
                sig = -1
            else:
                sig = self.previous
        self.highs.append(bar["high"])
        self.lows.append(bar["low"])
        self.previous = sig
        return sig


class _EmaCross:
    def __init__(self, fast: int, slow: int) -> None:
        self.fast, self.slow = fast, slow
        self.seen = 0
        self.ema_fast = 0.0
        self.ema_slow = 0.0

    def signal(self, bar: dict) -> int:
        c = bar["close"]
        if self.seen == 0:
            self.ema_fast = c
            self.ema_slow = c
        else:
            self.ema_fast = self.ema_fast + 2.0 / (self.fast + 1.0) * (c - self.ema_fast)
            self.ema_slow = self.ema_slow + 2.0 / (self.slow + 1.0) * (c - self.ema_slow)
        self.seen += 1
        if self.seen < self.slow:
            return 0
        if self.ema_fast > self.ema_slow:
            return 1
        return -1 if self.ema_fast < self.ema_slow else 0


class _Bollinger:
    def __init__(self, window: int, k: float) -> None:
        self.window, self.k = window, k
        self.closes: list[float] = []
        self.previous = 0

    def signal(self, bar: dict) -> int:
        c = bar["close"]
        self.closes.append(c)
        sig = 0
        if len(self.closes) >= self.window:
            win = self.closes[-self.window :]
            total = 0.0
            for x in win:
                total += x
            mean = total / self.window
            sq = 0.0
            for x in win:
                sq += (x - mean) * (x - mean)
            std = math.sqrt(sq / self.window)
            if c < mean - self.k * std:
                sig = 1
            elif c > mean + self.k * std:
                sig = -1
            elif (self.previous == 1 and c >= mean) or (self.previous == -1 and c <= mean):
                sig = 0
            else:
                sig = self.previous
        self.previous = sig
        return sig


class _Rsi:
    def __init__(self, window: int, lower: float, upper: float) -> None:
        self.window, self.lower, self.upper = window, lower, upper
        self.closes: list[float] = []
        self.previous = 0

    def signal(self, bar: dict) -> int:
        self.closes.append(bar["close"])
        sig = 0
        if len(self.closes) > self.window:
            win = self.closes[-(self.window + 1) :]
            gains = losses = 0.0
            for a, b in zip(win, win[1:], strict=False):
                if b - a > 0:
                    gains += b - a
                elif b - a < 0:
                    losses -= b - a
            r = 50.0 if gains + losses == 0.0 else 100.0 * gains / (gains + losses)
            if r < self.lower:
                sig = 1
            elif r > self.upper:
                sig = -1
            elif (self.previous == 1 and r >= 50.0) or (self.previous == -1 and r <= 50.0):
                sig = 0
            else:
                sig = self.previous
        self.previous = sig
        return sig


REFERENCE_STRATEGIES = {
    "sma_cross": _SmaCross,
    "breakout": _Breakout,
    "ema_cross": _EmaCross,
    "bollinger": _Bollinger,
    "rsi": _Rsi,
}


@dataclass
class ReferenceResult:
    daily: pd.DataFrame  # day, equity, pnl, pos, fees, fills, turnover
    fills: pd.DataFrame  # ts, qty, price, fee, pos (the position after the fill)
    final: dict = field(default_factory=dict)  # signal, pos, cash, pending, last bar's ts, close


def reference_backtest(
    strategy: str,
    params: dict,
    bars: pd.DataFrame,
    notional: float = 100000.0,
    fee_bps: float = 0.0,
    slippage_bps: float = 0.0,
    tz: str = "UTC",
) -> ReferenceResult:
    """Run one instrument's bars (ts [int ns], open, high, low, close, volume) from its start."""
    strat = REFERENCE_STRATEGIES[strategy](**params)
    bars = bars.sort_values("ts").reset_index(drop=True)
    days = pd.to_datetime(bars["ts"], unit="ns", utc=True).dt.tz_convert(tz).dt.date
    signal, pos, cash = 0, 0.0, 0.0
    pending: float | None = None
    fills: list[dict] = []
    rows: list[dict] = []
    previous_equity = 0.0
    for day, group in bars.groupby(days, sort=True):
        fees = turnover = 0.0
        n_fills = 0
        equity = 0.0
        for bar in group.to_dict("records"):
            if pending is not None:  # 1. fill at this bar's open
                q = pending - pos
                if q > 0:
                    px = bar["open"] * (1.0 + slippage_bps / 1e4)
                else:
                    px = bar["open"] * (1.0 - slippage_bps / 1e4)
                fee = abs(q * px) * fee_bps / 1e4
                cash -= q * px + fee
                pos = pending
                pending = None
                fees += fee
                turnover += abs(q * px)
                n_fills += 1
                fills.append({"ts": bar["ts"], "qty": q, "price": px, "fee": fee, "pos": pos})
            new_signal = strat.signal(bar)  # 2. signal
            assert new_signal in (-1, 0, 1)
            if new_signal != signal:  # 3. order on a change only
                signal = new_signal
                pending = signal * notional / bar["close"]
            equity = cash + pos * bar["close"]  # 4. mark
        rows.append(
            {
                "day": day,
                "equity": equity,
                "pnl": equity - previous_equity,
                "pos": pos,
                "fees": fees,
                "fills": n_fills,
                "turnover": turnover,
            }
        )
        previous_equity = equity
    return ReferenceResult(
        daily=pd.DataFrame(
            rows, columns=["day", "equity", "pnl", "pos", "fees", "fills", "turnover"]
        ),
        fills=pd.DataFrame(fills, columns=["ts", "qty", "price", "fee", "pos"]),
        final={"signal": signal, "pos": pos, "cash": cash, "pending": pending,
               "ts": int(bars["ts"].iloc[-1]) if len(bars) else None,
               "close": float(bars["close"].iloc[-1]) if len(bars) else None},
    )
