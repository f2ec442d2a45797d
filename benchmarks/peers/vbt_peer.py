"""vectorbt peer: sma_cross (SEMANTICS.md) with ``vbt.Portfolio.from_orders``.

Runs in the separate venv (``.venv-bench/bin/python``, vectorbt + pandas +
pyarrow + numba; pinned in ``benchmarks/requirements-bench.txt``), started by
``bench_engine.py`` as a subprocess::

    .venv-bench/bin/python benchmarks/peers/vbt_peer.py '<json config>'

config: {"folder": Parquet folder (one file per instrument), "instruments":
[...], "sets": [[fast, slow], ...], "notional", "fee_bps", "slip_bps",
"repeats"}. Prints one JSON line: read_s (best read of ts, open, close into
wide frames), compute_s (best time of all sets), pnl (per set, per instrument),
version.

Orders: the signal bar's target units (signal * notional / close) become a
``targetamount`` order at the next bar, priced at that bar's open; no order
where the signal is unchanged (NaN size). ``init_cash="auto"``: infinite cash
in the simulation, so that no order is cut; the total PnL is
``Portfolio.total_profit()`` (cash flows plus the final position at the last
close). Means: ``DataFrame.vbt.rolling_mean`` (vectorbt's Numba rolling mean).
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pandas_peer import load  # noqa: E402


def run(o: pd.DataFrame, c: pd.DataFrame, fast: int, slow: int, notional: float,
        fee_bps: float, slip_bps: float) -> np.ndarray:
    """Total PnL per instrument (column) of sma_cross(fast, slow)."""
    mf = c.vbt.rolling_mean(fast).to_numpy()
    ms = c.vbt.rolling_mean(slow).to_numpy()
    sig = (mf > ms).astype(np.float64) - (mf < ms).astype(np.float64)
    prev = np.vstack([np.zeros((1, sig.shape[1])), sig[:-1]])
    target = np.where(sig != prev, sig * notional / c.to_numpy(), np.nan)
    size = np.vstack([np.full((1, sig.shape[1]), np.nan), target[:-1]])  # at the next bar
    pf = vbt.Portfolio.from_orders(
        close=c, size=size, size_type="targetamount", price=o, direction="both",
        init_cash="auto", fees=fee_bps / 1e4, slippage=slip_bps / 1e4, freq="1min",
    )
    return np.asarray(pf.total_profit(), dtype=np.float64)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    sets = [tuple(s) for s in cfg["sets"]]
    ex = (float(cfg.get("notional", 1e5)), float(cfg.get("fee_bps", 0.0)),
          float(cfg.get("slip_bps", 0.0)))
    reps = int(cfg.get("repeats", 3))
    read_s = compute_s = float("inf")
    o = c = None
    for _ in range(reps):
        t = time.perf_counter()
        o, c = load(cfg["folder"], cfg["instruments"])
        read_s = min(read_s, time.perf_counter() - t)
    assert o is not None and c is not None
    run(o.iloc[:500], c.iloc[:500], *sets[0], *ex)  # compile (or load from the cache) first
    pnl: list[list[float]] = []
    for _ in range(reps):
        t = time.perf_counter()
        pnl = [run(o, c, f, s, *ex).tolist() for f, s in sets]
        compute_s = min(compute_s, time.perf_counter() - t)
    print(json.dumps({"read_s": read_s, "compute_s": compute_s, "pnl": pnl,
                      "version": vbt.__version__}))


if __name__ == "__main__":
    main()
