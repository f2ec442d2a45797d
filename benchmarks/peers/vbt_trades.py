"""vectorbt peer for trades: the same fills as orders, paired by vectorbt's positions.

Runs in the separate venv (``.venv-bench/bin/python``), started by ``bench_trades.py``::

    .venv-bench/bin/python benchmarks/peers/vbt_trades.py '<json config>'

config: {"close": Parquet file of the closes (a ``ts`` column, then one column per
instrument), "fills": Parquet file of a run's fills (instrument, ts, qty, price, fee),
"fee_bps", "repeats"}. Each fill is an order of its quantity (``size_type="amount"``)
at its price (slippage is in it already), with the run's fee rate. The portfolio is
simulated untimed (vectorbt's users have run their backtest already); timed, best of
``repeats`` on a fresh portfolio each time (vectorbt caches what it computed):
``pf.positions.records_readable`` and the positions' statistics (count, win rate, best
and worst return, average winning and losing return, profit factor, expectancy, per
instrument). ``pf.positions`` are incbt's trades: a position from its opening fill to
its closing one, a reversal closing one and opening the next, its fee split by units.
Prints one JSON line: simulate_s, trades_s, n_trades, pnl (per instrument, every
position's PnL summed, open ones marked at the last close), version.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/numba-cache")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import vectorbt as vbt  # noqa: E402


def main() -> None:
    cfg = json.loads(sys.argv[1])
    close = pd.read_parquet(cfg["close"]).set_index("ts")
    fills = pd.read_parquet(cfg["fills"])
    names = list(close.columns)
    size = np.full(close.shape, np.nan)
    price = np.full(close.shape, np.nan)
    row = close.index.get_indexer(pd.DatetimeIndex(fills["ts"]))
    col = pd.Index(names).get_indexer(fills["instrument"])
    assert (row >= 0).all() and (col >= 0).all(), "a fill off the bars"
    size[row, col] = fills["qty"].to_numpy()
    price[row, col] = fills["price"].to_numpy()

    def simulate() -> object:
        return vbt.Portfolio.from_orders(
            close=close, size=size, size_type="amount", price=price, direction="both",
            init_cash="auto", fees=float(cfg["fee_bps"]) / 1e4, freq="1min",
        )

    def trades(pf: object) -> tuple[pd.DataFrame, dict]:
        pos = pf.positions  # type: ignore[attr-defined]
        rec = pos.records_readable
        closed = pos.closed
        stats = {
            "count": pos.count(),
            "win_rate": closed.win_rate(),
            "best": closed.returns.max(),
            "worst": closed.returns.min(),
            "avg_win": closed.winning.returns.mean(),
            "avg_loss": closed.losing.returns.mean(),
            "profit_factor": closed.profit_factor(),
            "expectancy": closed.expectancy(),
        }
        return rec, stats

    trades(simulate())  # compile (or load from the cache) first
    sim_s = trades_s = float("inf")
    rec = None
    for _ in range(int(cfg.get("repeats", 3))):
        t = time.perf_counter()
        pf = simulate()
        sim_s = min(sim_s, time.perf_counter() - t)
        t = time.perf_counter()
        rec, _ = trades(pf)
        trades_s = min(trades_s, time.perf_counter() - t)
    assert rec is not None
    pnl = rec.groupby("Column")["PnL"].sum().reindex(names).fillna(0.0)
    print(json.dumps({"simulate_s": sim_s, "trades_s": trades_s, "n_trades": len(rec),
                      "pnl": pnl.tolist(), "version": vbt.__version__}))


if __name__ == "__main__":
    main()
