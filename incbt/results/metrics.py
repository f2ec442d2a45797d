"""Metrics as resumable accumulators (SEMANTICS.md "Portfolio and metrics").

Metrics are folded day by day into a small float64 vector that is saved with
every snapshot, so an update that resumes from day D-1 continues the same
sequence of floating-point operations a full run makes, and the metrics are
bit-identical. Sharpe uses Welford's running mean and variance of daily
returns (pnl / capital), which is stable and sequential.

Accumulator fields (:data:`ACC_FIELDS`): days, mean, m2, peak, max_dd,
total_pnl, fills, fees, turnover, equity. :func:`finalize` turns one into
:data:`METRICS`: total_pnl, sharpe, max_drawdown, fills, fees, turnover, days.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

ACC_FIELDS = (
    "days",
    "mean",
    "m2",
    "peak",
    "max_dd",
    "total_pnl",
    "fills",
    "fees",
    "turnover",
    "equity",
)
ACC_WIDTH = len(ACC_FIELDS)
METRICS = ("total_pnl", "sharpe", "max_drawdown", "fills", "fees", "turnover", "days")
# a run's metrics as leaderboards, pivots and reports show them (Sharpe, the default
# ranking, first)
RANKED = ("sharpe", "total_pnl", "max_drawdown", "fills", "fees", "turnover")
# the metrics a ranking puts smallest first (the best run paid the least; found by QA
# 2026-12-05: ranked by fees, the costliest run came first)
SMALLER_FIRST = frozenset({"max_drawdown", "fees"})
SQRT_252 = float(np.sqrt(252.0))
# the SQL table ``metrics``: a run's instruments' rows and its portfolio's (instrument NULL)
METRICS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("instrument", pa.string()),
        ("scope", pa.string()),
        ("total_pnl", pa.float64()),
        ("sharpe", pa.float64()),
        ("max_drawdown", pa.float64()),
        ("fills", pa.int64()),
        ("fees", pa.float64()),
        ("turnover", pa.float64()),
        ("days", pa.int64()),
    ]
)


def initial_acc(n: int = 1) -> np.ndarray:
    return np.zeros((n, ACC_WIDTH), dtype=np.float64)


@functools.cache
def _fold_kernel() -> Any:
    """The fold compiled by Numba, on first use: `import numba` costs ~0.2 s."""
    import numba as nb

    return nb.njit(cache=True, nogil=True)(_incbt_metrics_fold)


def _incbt_metrics_fold(acc0, pnl, equity, fills, fees, turnover, capital, has_equity, out):
    for k in range(pnl.shape[0]):
        n = acc0[k, 0]
        mean = acc0[k, 1]
        m2 = acc0[k, 2]
        peak = acc0[k, 3]
        mdd = acc0[k, 4]
        tot = acc0[k, 5]
        nf = acc0[k, 6]
        fe = acc0[k, 7]
        to = acc0[k, 8]
        eq = acc0[k, 9]
        for d in range(pnl.shape[1]):
            p = pnl[k, d]
            eq = equity[k, d] if has_equity else eq + p
            r = p / capital[k]
            n += 1.0
            delta = r - mean
            mean += delta / n
            m2 += delta * (r - mean)
            if eq > peak:
                peak = eq
            if peak - eq > mdd:
                mdd = peak - eq
            tot += p
            nf += fills[k, d]
            fe += fees[k, d]
            to += turnover[k, d]
            out[k, d, 0] = n
            out[k, d, 1] = mean
            out[k, d, 2] = m2
            out[k, d, 3] = peak
            out[k, d, 4] = mdd
            out[k, d, 5] = tot
            out[k, d, 6] = nf
            out[k, d, 7] = fe
            out[k, d, 8] = to
            out[k, d, 9] = eq


def fold(
    acc0: np.ndarray,
    pnl: np.ndarray,
    capital: np.ndarray,
    *,
    equity: np.ndarray | None,
    fills: np.ndarray,
    fees: np.ndarray,
    turnover: np.ndarray,
) -> np.ndarray:
    """Fold (n_sets, n_days) daily rows into accumulators; returns one per day.

    ``equity=None`` derives equity as the running sum of pnl (the portfolio).
    """
    n_sets, n_days = pnl.shape
    out = np.empty((n_sets, n_days, ACC_WIDTH), dtype=np.float64)
    if n_days:
        f8 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
        _fold_kernel()(
            f8(acc0),
            f8(pnl),
            f8(pnl if equity is None else equity),
            f8(fills),
            f8(fees),
            f8(turnover),
            f8(capital),
            equity is not None,
            out,
        )
    return out


def fold_portfolio(pnl: np.ndarray, capital: float, acc0: np.ndarray | None = None) -> np.ndarray:
    """A portfolio's accumulators day by day, (n_days, ACC_WIDTH): its daily ``pnl``
    folded from ``acc0`` (None: the start) on ``capital``, equity the running sum of pnl;
    its fills, fees and turnover are its instruments' sums, folded as zeros here."""
    z = np.zeros((1, len(pnl)))
    start = initial_acc(1) if acc0 is None else acc0
    return fold(start, pnl[None, :], np.array([capital]), equity=None, fills=z, fees=z, turnover=z)[
        0
    ]


def finalize(acc: np.ndarray) -> np.ndarray:
    """Accumulators (..., ACC_WIDTH) to metrics (..., len(METRICS))."""
    acc = np.asarray(acc, dtype=np.float64)
    n = acc[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(acc[..., 2] / (n - 1.0))
        sharpe = np.where((n >= 2) & (std > 0), acc[..., 1] / std * SQRT_252, 0.0)
    return np.stack(
        [acc[..., 5], sharpe, acc[..., 4], acc[..., 6], acc[..., 7], acc[..., 8], n], axis=-1
    )


PORTFOLIO_CHUNK = 1 << 16  # rows summed per np.add.at call (~0.8 MB of arrays)


def portfolio_pnl(
    per_instrument: list[tuple[str, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Sum instruments' daily pnl per day, adding in instrument-name order.

    ``per_instrument``: (name, days, pnl). Returns (days, pnl) over the union of days.
    Each day's sum is ``((0.0 + a) + b) + ...`` over the instruments trading that day,
    in name order: the bits of one unbuffered ``np.add.at`` over every instrument's rows
    concatenated (the definition, kept in the tests), done in chunks of consecutive
    instruments of about PORTFOLIO_CHUNK rows, so that the memory it takes does not
    grow with the run (500 instruments x 5 years: ~13 MB of concatenated days, indices
    and pnl at once before; a new day's few rows of many instruments stay one chunk).
    """
    if not per_instrument:
        return np.empty(0, np.int32), np.empty(0)
    items = sorted(per_instrument, key=lambda x: x[0])
    # chunks [i, j) of items: those whose first row falls in one PORTFOLIO_CHUNK of rows
    lengths = np.fromiter((len(x[1]) for x in items), np.int64, len(items))
    chunk = (np.cumsum(lengths) - lengths) // PORTFOLIO_CHUNK
    cuts = [0, *(np.flatnonzero(chunk[1:] != chunk[:-1]) + 1).tolist(), len(items)]
    chunks = list(itertools.pairwise(cuts))

    def rows_of(i: int, j: int, k: int) -> np.ndarray:
        return np.asarray(items[i][k]) if j - i == 1 else np.concatenate([x[k] for x in items[i:j]])

    if len(chunks) == 1:  # one add.at over every row (a new day of many instruments)
        all_days = rows_of(0, len(items), 1)
        days = np.unique(all_days)
        total = np.zeros(len(days))
        np.add.at(total, np.searchsorted(days, all_days), rows_of(0, len(items), 2))
        return days.astype(np.int32), total
    days = np.empty(0, np.int64)
    for n, (i, j) in enumerate(chunks):  # the union of days (most chunks: the same days)
        u = np.unique(rows_of(i, j, 1))
        if n == 0:
            days = u
        elif len(u) != len(days) or not np.array_equal(u, days):
            days = np.union1d(days, u)
    total = np.zeros(len(days))
    for i, j in chunks:  # unbuffered, in array order: chunk after chunk, in name order
        np.add.at(total, np.searchsorted(days, rows_of(i, j, 1)), rows_of(i, j, 2))
    return days.astype(np.int32), total


def metrics_table(
    run_ids: list[str], instruments: list[str], values: np.ndarray | Sequence[np.ndarray]
) -> pa.Table:
    """The ``metrics`` table's rows: run ``run_ids[i]``, instrument ``instruments[i]`` (""
    for the portfolio), metrics ``values[i]`` (in METRICS order), column by column."""
    vals = np.asarray(values, dtype=np.float64).reshape(len(run_ids), len(METRICS))
    cols: dict[str, Any] = {
        "run_id": pa.array(run_ids, pa.string()),
        "instrument": pa.array([i or None for i in instruments], pa.string()),
        "scope": pa.array(["instrument" if i else "portfolio" for i in instruments], pa.string()),
    }
    for j, name in enumerate(METRICS):
        cols[name] = vals[:, j].astype(np.int64) if name in ("fills", "days") else vals[:, j]
    return pa.table(cols, schema=METRICS_SCHEMA)
