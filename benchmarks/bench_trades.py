"""Trades: a run's fills paired into round trips, with their statistics, vs vectorbt.

incbt: ``run.trades()`` and ``run.trade_stats()`` from the store (the run's fills read
with SQL, paired by a Numba kernel, open trades marked at their last close), best of
N; ``sweep.trade_stats()`` for a sweep of the runs. vectorbt (``peers/vbt_trades.py``,
in ``.venv-bench``): the same fills as orders in ``Portfolio.from_orders`` (untimed:
its users' backtest has run), then ``pf.positions.records_readable`` and the
positions' statistics, timed. Both get the same runs: sma_cross 10/50 (every fill
after the first a reversal) and bollinger 20/2.0 (flat between trades), fee 1 bps,
slippage 1 bps, on the engine benchmark's data (100 instruments x 100 days). Checked
to agree: trades counted, each instrument's PnL summed.

Command: ``NUMBA_CACHE_DIR=/tmp/numba-cache .venv/bin/python benchmarks/bench_trades.py``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from common import (
    OUT,
    VBT_PYTHON,
    best_of,
    code_hash,
    dataset,
    machine,
    require_vbt,
    table,
    update_readme,
)

import incbt

HERE = Path(__file__).resolve().parent
RUNS = [("sma_cross", {"fast": 10, "slow": 50}), ("bollinger", {"window": 20, "k": 2.0})]
COSTS = {"fee_bps": 1.0, "slippage_bps": 1.0}


def store_with_runs(instruments: int, days: int) -> incbt.Store:
    """The data ingested and the runs computed once (reused while incbt's sources and
    the sizes are unchanged)."""
    root = OUT / f"trades-{instruments}x{days}"
    stamp = root / f".complete-{code_hash()}"
    if not stamp.exists():
        shutil.rmtree(root, ignore_errors=True)
        s = incbt.init(str(root))
        s.ingest(str(dataset(instruments, days)))
        for name, params in RUNS:
            s.backtest(name, params, **COSTS)
        s.sweep("bollinger", {"window": [10, 20, 40, 80], "k": [1.0, 2.0]}, name="trips",
                **COSTS)
        stamp.touch()
    return incbt.open(str(root))


def vbt_peer(store: incbt.Store, run: object, folder: Path, repeats: int) -> dict | None:
    """vectorbt on the run's fills (``peers/vbt_trades.py``), or None without its venv."""
    if not VBT_PYTHON.exists():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    insts = store.instruments()
    first = store.bars(insts[0])
    close = {"ts": pa.array(first.ts, pa.int64()).cast(pa.timestamp("ns", "UTC"))}
    for i in insts:
        b = store.bars(i)
        assert np.array_equal(b.ts, first.ts), "the instruments' bars share their times"
        close[i] = b.close
    pq.write_table(pa.table(close), folder / "close.parquet")
    fills = run.fills.select(["instrument", "ts", "qty", "price", "fee"])  # type: ignore[attr-defined]
    pq.write_table(fills, folder / "fills.parquet")
    cfg = {"close": str(folder / "close.parquet"), "fills": str(folder / "fills.parquet"),
           "fee_bps": COSTS["fee_bps"], "repeats": repeats}
    p = subprocess.run([str(VBT_PYTHON), str(HERE / "peers" / "vbt_trades.py"), json.dumps(cfg)],
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def ms(t: float) -> str:
    return f"{t * 1e3:,.0f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--instruments", type=int, default=100)
    ap.add_argument("--days", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-vbt", action="store_true", help="skip the vectorbt peer")
    ap.add_argument("--no-readme", action="store_true", help="print only")
    a = ap.parse_args()
    require_vbt(a.no_vbt, not a.no_readme)
    t_all = time.perf_counter()
    load0 = os.getloadavg()[0]
    s = store_with_runs(a.instruments, a.days)
    rows = []
    version = "vectorbt"
    for name, params in RUNS:
        run = s.backtest(name, params, **COSTS)  # registered: nothing computed
        run.trades()  # the kernel compiled or loaded, the files in the page cache
        t_trades = best_of(a.repeats, run.trades)
        t_stats = best_of(a.repeats, run.trade_stats)
        trades = run.trades().to_pandas()
        n_fills = run.portfolio["fills"]
        peer = None if a.no_vbt else vbt_peer(s, run, OUT / "trades-vbt", a.repeats)
        mine = trades.groupby("instrument").pnl.sum().reindex(s.instruments()).fillna(0.0)
        theirs = agree = speed = ""
        if peer is not None:
            diff = np.abs(mine.to_numpy() - np.array(peer["pnl"]))
            same = "=" if peer["n_trades"] == len(trades) else "!="
            agree = (f"{peer['n_trades']:,} trades ({same} incbt's); PnL per instrument: max "
                     f"difference {diff.max():.1e}")
            theirs = f"{ms(peer['trades_s'])} (simulation: {ms(peer['simulate_s'])})"
            speed = f"{peer['trades_s'] / t_stats:.1f}x"
            version = f"vectorbt {peer['version']}"
        label = f"{name} {', '.join(f'{k} {v:g}' for k, v in params.items())}"
        rows.append((f"{label}: {int(n_fills):,} fills, {len(trades):,} trades",
                     ms(t_trades), ms(t_stats), theirs, speed, agree))
        print(rows[-1], flush=True)
    sw = s.sweeps()["trips"]
    sw.trade_stats()
    t_sweep = best_of(a.repeats, sw.trade_stats)
    n_sweep = sum(x or 0 for x in sw.grid.column("fills").to_pylist())
    wall = time.perf_counter() - t_all
    text = "\n".join([
        "## Trades: fills paired into round trips, vs vectorbt's positions",
        "",
        f"Data: the engine benchmark's ({a.instruments} instruments x {a.days} days of "
        "1-minute bars); runs with fee 1 bps and slippage 1 bps. incbt: `run.trades()` and "
        "`run.trade_stats()` (which pairs the trades again) from the store, best of "
        f"{a.repeats}; {version}: the run's fills as `Portfolio.from_orders` "
        "orders (amounts at the fills' prices, the fee rate), simulated untimed, then "
        "`pf.positions.records_readable` and the closed positions' count, win rate, best, "
        "worst, average winning and losing return, profit factor and expectancy, timed "
        "(`peers/vbt_trades.py`; a position is incbt's trade). Machine: "
        f"{machine()}; load average {load0:.1f} at the start. Run "
        f"{time.strftime('%Y-%m-%d')}, {wall:.0f} s in all.",
        "",
        table(rows, ("run", "incbt `run.trades()`", "incbt `run.trade_stats()`",
                     "vectorbt positions + statistics", "vectorbt / incbt stats (time)",
                     "agreement")),
        "",
        f"A sweep's statistics (`sweep.trade_stats()`, 8 bollinger runs, {n_sweep:,} "
        f"fills, read and paired a batch of runs at a time): {ms(t_sweep)}.",
        "",
        "Command: `NUMBA_CACHE_DIR=/tmp/numba-cache .venv/bin/python benchmarks/bench_trades.py`",
    ])
    print(text)
    if not a.no_readme:
        update_readme("trades", text)


if __name__ == "__main__":
    main()
