"""A vectorised pandas sma_cross backtest (SEMANTICS.md), all instruments at once.

The data is a wide frame (one column per instrument, one row per bar), which
is pandas at its best: every step below is one vectorised operation over all
instruments. Rolling means, signal, orders only where the signal changes
(target = signal * notional / close at the signal bar), filled at the next
bar's open, equity = cash + pos * close; the total PnL is the last equity.

Run by ``bench_engine.py`` in the main venv (pandas + pyarrow); also
imported by ``vbt_peer.py`` for loading (same files, same frames).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

COLUMNS = ("ts", "open", "close")  # what sma_cross needs (ts: to align instruments)


def load(folder: str, instruments: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(open, close) wide frames from one Parquet file per instrument, index ts.

    Reads only ts, open and close. The instruments must share their
    timestamps (the generated data does); anything else raises.
    """
    opens, closes, index = {}, {}, None
    for inst in instruments:
        t = pq.read_table(os.path.join(folder, f"{inst}.parquet"), columns=list(COLUMNS))
        ts = t.column("ts").combine_chunks().cast(pa.int64()).to_numpy()
        if index is None:
            index = ts
        elif not np.array_equal(ts, index):
            raise ValueError(f"{inst}: timestamps differ from the first instrument's")
        opens[inst] = t.column("open").combine_chunks().to_numpy()
        closes[inst] = t.column("close").combine_chunks().to_numpy()
    idx = pd.DatetimeIndex(pd.to_datetime(index, utc=True), name="ts")
    return pd.DataFrame(opens, index=idx), pd.DataFrame(closes, index=idx)


def run(o: pd.DataFrame, c: pd.DataFrame, fast: int, slow: int, notional: float = 1e5,
        fee_bps: float = 0.0, slip_bps: float = 0.0) -> pd.Series:
    """Total PnL per instrument (column) of sma_cross(fast, slow)."""
    mf = c.rolling(fast).mean()
    ms = c.rolling(slow).mean()  # NaN until `slow` closes: the comparisons below are False
    sig = (mf > ms).astype(np.float64) - (mf < ms).astype(np.float64)
    change = sig.ne(sig.shift(1, fill_value=0.0))
    target = (sig * notional / c).where(change)  # the order made at the signal bar
    pos = target.ffill().shift(1).fillna(0.0)  # filled at the next bar's open, then held
    q = pos - pos.shift(1, fill_value=0.0)
    px = o * np.where(q > 0.0, 1.0 + slip_bps / 1e4, 1.0 - slip_bps / 1e4)
    flow = q * px
    cash = -(flow + flow.abs() * (fee_bps / 1e4)).cumsum()
    equity = cash + pos * c
    return equity.iloc[-1]
