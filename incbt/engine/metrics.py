"""Run metrics from daily rows (SEMANTICS.md, "Portfolio and metrics"). Pure NumPy.

Every sum here runs left to right over days (or, across instruments, in
instrument-name order), never pairwise, so a metric is a fixed function of
its inputs' bits whatever computed them.

- `portfolio_daily({instrument: (days, values)})` sums a daily column over
  instruments, per day, in instrument-name order; days on which only some
  instruments have bars sum those that have. Use it for pnl, fees, fills,
  turnover.
- `compute_metrics(pnl, capital, ...)` gives total_pnl, sharpe, max_drawdown,
  fills, fees, turnover. The portfolio's capital is
  notional * number of instruments in the run; its daily return is pnl / capital.
  The equity for the drawdown is the running sum of daily pnl unless given
  (for one instrument you may pass its daily equity column).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Metrics", "compute_metrics", "max_drawdown", "portfolio_daily", "sharpe"]

TRADING_DAYS = 252


def _seq_sum(x: np.ndarray) -> float:
    """Left-to-right float64 sum (np.sum is pairwise)."""
    if x.size == 0:
        return 0.0
    return float(np.add.accumulate(np.asarray(x, dtype=np.float64))[-1])


def sharpe(pnl: np.ndarray, capital: float) -> float:
    """mean(r) / std(r, ddof=1) * sqrt(252) with r = pnl / capital; 0 if std is 0 or < 2 days."""
    r = np.asarray(pnl, dtype=np.float64) / float(capital)
    n = r.size
    if n < 2:
        return 0.0
    mean = _seq_sum(r) / n
    dev = r - mean
    std = math.sqrt(_seq_sum(dev * dev) / (n - 1))
    if std == 0.0 or not math.isfinite(std):
        return 0.0
    return mean / std * math.sqrt(TRADING_DAYS)


def max_drawdown(equity: np.ndarray) -> float:
    """max over days of (running peak of equity, the peak starting at 0) - equity; >= 0."""
    eq = np.asarray(equity, dtype=np.float64)
    if eq.size == 0:
        return 0.0
    peak = np.maximum.accumulate(np.concatenate(([0.0], eq)))[1:]
    return float(np.max(peak - eq))


@dataclass(frozen=True)
class Metrics:
    """Summary of a run (or one instrument of it) over its days with bars."""

    days: int
    total_pnl: float
    sharpe: float
    max_drawdown: float
    fills: int
    fees: float
    turnover: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def compute_metrics(
    pnl: np.ndarray,
    capital: float,
    *,
    fees: np.ndarray | None = None,
    fills: np.ndarray | None = None,
    turnover: np.ndarray | None = None,
    equity: np.ndarray | None = None,
) -> Metrics:
    """Metrics of daily rows (1-D arrays over days, in day order)."""
    pnl = np.asarray(pnl, dtype=np.float64)
    if capital <= 0 or not math.isfinite(capital):
        raise ValueError(f"capital must be a positive number, got {capital!r}")
    eq = np.add.accumulate(pnl) if equity is None else np.asarray(equity, dtype=np.float64)
    zeros = np.zeros(pnl.shape)
    return Metrics(
        days=int(pnl.size),
        total_pnl=_seq_sum(pnl),
        sharpe=sharpe(pnl, capital),
        max_drawdown=max_drawdown(eq),
        fills=int(np.sum(np.asarray(fills if fills is not None else zeros, dtype=np.int64))),
        fees=_seq_sum(np.asarray(fees if fees is not None else zeros, dtype=np.float64)),
        turnover=_seq_sum(np.asarray(turnover if turnover is not None else zeros, np.float64)),
    )


def portfolio_daily(
    per_instrument: Mapping[str, tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Sum one daily column over instruments: returns (sorted union of days, sums).

    per_instrument maps instrument name -> (days, values), days unique and of
    one sortable dtype (e.g. datetime64[D] or int). Each day's sum starts at
    0.0 and adds instruments in name order.
    """
    items = sorted(per_instrument.items())
    if not items:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    all_days = np.unique(np.concatenate([np.asarray(d) for _, (d, _) in items]))
    total = np.zeros(all_days.shape, dtype=np.float64)
    for name, (days, values) in items:
        days = np.asarray(days)
        vals = np.asarray(values, dtype=np.float64)
        if days.shape != vals.shape:
            raise ValueError(f"{name}: days {days.shape} and values {vals.shape} differ")
        if np.unique(days).size != days.size:
            raise ValueError(f"{name}: a day appears twice in its daily rows")
        total[np.searchsorted(all_days, days)] += vals
    return all_days, total
