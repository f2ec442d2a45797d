"""Engine benchmarks: sma_cross over every instrument of a store, against peers.

    .venv/bin/python benchmarks/bench_engine.py                    # 100 x 100 days, ~1-2 min
    .venv/bin/python benchmarks/bench_engine.py --instruments 20 --days 20 --no-readme
    .venv/bin/python benchmarks/bench_engine.py --profile          # + cProfile of end to end

Side by side in one run, on the same generated bars (SEMANTICS.md sma_cross,
notional 100000, no fees, no slippage):

1. incbt end to end: ``Store.backtest`` on a fresh copy of an ingested store
   (plan, read the bars, run, commit results and snapshots); ingest and the
   copy are not timed;
2. incbt compute only: ``run_segment`` over arrays preloaded with ``Store.bars``;
3. a bare hand-written Numba loop (``peers/bare_numba.py``) over the same arrays;
4. pandas, vectorised over a wide frame (``peers/pandas_peer.py``), from
   Parquet files exported once from the store (one per instrument);
5. vectorbt ``Portfolio.from_orders`` (``peers/vbt_peer.py``, run by
   ``.venv-bench/bin/python`` in a subprocess) on the same Parquet files;
6. the I/O floor: a bare read by Arrow's Parquet reader (no pre-buffering, no
   thread pool) of the columns sma_cross needs (ts, open, close) from the
   store's own bars files, converted to NumPy, files in sequence and on a thread
   per core (each its share of the files).

Before any speed is reported, every peer's total PnL per instrument is
checked against incbt's (the committed ``total_pnl``). Also: a batch of 10
parameter sets against one, and the peak RSS of ``incbt backtest`` in a fresh
process at three universe sizes (and of the same command run again, when there is
nothing left to compute). The README section ``engine`` gets the table.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import json
import multiprocessing
import os
import pstats
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/numba-cache")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from pyarrow._parquet import ParquetReader  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (  # noqa: E402
    OUT,
    best_of,
    dataset,
    link_or_copy,
    machine,
    peak_rss,
    peak_rss_all,
    require_vbt,
    table,
    update_readme,
)
from peers import bare_numba, pandas_peer  # noqa: E402

import incbt  # noqa: E402
from incbt.engine import (  # noqa: E402
    exec_params_from_dict,
    get_strategy,
    initial_state,
    params_from_dict,
    run_segment,
)
from incbt.execute import SqlBars  # noqa: E402

ROOT = HERE.parent
VBT_PYTHON = ROOT / ".venv-bench" / "bin" / "python"  # (common.require_vbt checks it first)
ONE = (10, 50)
REF8 = [(f, s) for f in (5, 10, 20, 40) for s in (50, 100)]  # the reference 8 sets
BATCH10 = [(5 + j, 50 + 5 * j) for j in range(10)]
NOTIONAL = 100000.0
FLOOR_COLUMNS = ["ts", "open", "close"]  # what sma_cross reads: fills at open, marks at close


# ----------------------------------------------------------------------------- stores


class Stores:
    """An ingested base store, never written to after ingest, and fresh copies of it."""

    def __init__(self, data: Path, tag: str) -> None:
        self.base = OUT / f"engine-{tag}-base"
        self.work = OUT / f"engine-{tag}-work"
        shutil.rmtree(self.base, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        incbt.init(str(self.base)).ingest(str(data))
        self.n = 0

    def fresh(self) -> Path:
        """A new copy of the base store (not timed by the callers)."""
        self.n += 1
        dst = self.work / f"s{self.n}"
        shutil.copytree(self.base, dst, copy_function=link_or_copy)
        return dst

    def drop(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)


def params_list(sets: list[tuple[int, int]]) -> list[dict[str, int]]:
    return [{"fast": f, "slow": s} for f, s in sets]


def end_to_end(stores: Stores, sets: list[tuple[int, int]], repeats: int,
               between: Callable[[], object] | None = None, processes: str | None = None
               ) -> tuple[float, int, object, str]:
    """Best wall time of ``Store.backtest`` of ``sets`` on fresh store copies; the bar-steps,
    the last store and where the tasks ran (``report.executor``).

    ``between``: run (untimed here) before each repeat, to time something side by side.
    ``processes``: the ``processes`` setting (``INCBT_PROCESSES``) for these runs.
    """
    box: dict[str, object] = {}

    def setup() -> None:
        if between is not None:
            between()
        if "path" in box:
            stores.drop(box["path"])  # type: ignore[arg-type]
        box["path"] = p = stores.fresh()
        box["store"] = incbt.open(str(p))

    def fn() -> None:
        box["runs"] = box["store"].backtest("sma_cross", params_list(sets))  # type: ignore[attr-defined]

    before = os.environ.get("INCBT_PROCESSES")
    if processes is not None:
        os.environ["INCBT_PROCESSES"] = processes
    try:
        t = best_of(repeats, fn, setup)
    finally:
        if before is None:
            os.environ.pop("INCBT_PROCESSES", None)
        else:
            os.environ["INCBT_PROCESSES"] = before
    report = box["runs"][0].report  # type: ignore[index]
    return t, report.bars_processed, box["store"], report.executor


def committed_pnl(store: object, sets: list[tuple[int, int]], insts: list[str]) -> np.ndarray:
    """incbt's committed total_pnl, (n_sets, n_instruments)."""
    out = np.empty((len(sets), len(insts)))
    for k, p in enumerate(params_list(sets)):
        run = store.backtest("sma_cross", p)  # type: ignore[attr-defined]
        assert run.report.bars_processed == 0, "the run should be in the store already"
        m = run.metrics.to_pandas()
        m = m[m["scope"] == "instrument"].set_index("instrument")["total_pnl"]
        out[k] = m.loc[insts].to_numpy()
    return out


# ----------------------------------------------------------------------------- compute


def compute_and_bare(strat, bars: list, sets: list[tuple[int, int]], n: int
                     ) -> tuple[float, np.ndarray, float, np.ndarray]:
    """incbt compute only and the bare Numba loop, interleaved (best of ``n`` each).

    Compute only: ``run_segment`` per instrument over the preloaded arrays,
    all sets in one call. Bare: one call per instrument and set.
    """
    params = np.stack([params_from_dict(strat, p) for p in params_list(sets)])
    ex = np.tile(exec_params_from_dict({"notional": NOTIONAL}), (len(sets), 1))
    pnl_c = np.empty((len(sets), len(bars)))
    pnl_b = np.empty((len(sets), len(bars)))

    def comp() -> None:
        for j, b in enumerate(bars):
            r = run_segment(strat, params, ex, b.ts, b.open, b.high, b.low, b.close, b.volume,
                            0, b.day_ends, initial_state(strat, len(sets)))
            pnl_c[:, j] = r.equity[:, -1]

    def bare() -> None:
        for k, (f, s) in enumerate(sets):
            pnl_b[k] = bare_numba.run(bars, f, s, NOTIONAL)

    tc = tb = float("inf")
    for _ in range(n):  # side by side: the machine is shared, its load drifts
        tc = min(tc, best_of(1, comp))
        tb = min(tb, best_of(1, bare))
    return tc, pnl_c, tb, pnl_b


def io_floor(root: str, paths: list[str]) -> Callable[[], tuple[float, float, float]]:
    """Bare pyarrow: read ts, open, close of every bars file into NumPy arrays.

    The fastest way found, timed three ways: files one after another on one thread;
    as many threads as cores, each reading its share of the files in turn; and as many
    worker processes as cores (forked once, before any timing: their start is not
    counted, where incbt's backtest pays for its own), each reading its share.
    Arrow's Parquet reader given the path (``pyarrow._parquet.ParquetReader``, what
    ``incbt.store.read_days`` uses), no pre-buffering, no thread pool inside a read:
    ``pq.ParquetFile`` costs ~35 us a file more (a file system resolved per path, its
    Python around the reader), ``pq.read_table`` goes through the datasets layer (~1.7x
    slower per file), and the default pre-buffering or pyarrow's threads over three
    columns of a small file made the read 2-2.5x slower here. Until 2026-12-03 the
    floor was timed with pyarrow's threads, and until the evening of 2026-12-04 through
    ``pq.ParquetFile`` and with one pool task per file (a future per file: slower on 2
    threads than on 1); each made the floor slower and flattered incbt's ratio to it.
    Processes were added on 2026-12-05, when incbt's backtests began to use them.
    """
    full = [os.path.join(root, p) for p in paths]
    cores = os.cpu_count() or 1
    shares = [full[k::cores] for k in range(cores)]
    pool = ThreadPoolExecutor(max_workers=cores)
    procs = ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("fork"))
    list(procs.map(_floor_share, [[]] * cores))  # forks the workers, untimed
    best = [float("inf"), float("inf"), float("inf")]

    def measure() -> tuple[float, float, float]:
        """Time each once more; return the best times so far (sequential, threads,
        processes)."""
        best[0] = min(best[0], best_of(1, lambda: _floor_share(full)))
        best[1] = min(best[1], best_of(1, lambda: list(pool.map(_floor_share, shares))))
        best[2] = min(best[2], best_of(1, lambda: list(procs.map(_floor_share, shares))))
        return best[0], best[1], best[2]

    return measure


def _floor_one(p: str) -> None:
    r = ParquetReader()
    r.open(p, pre_buffer=False)
    t = r.read_row_groups(range(r.metadata.num_row_groups),
                          column_indices=[r.column_name_idx(c) for c in FLOOR_COLUMNS],
                          use_threads=False)
    r.close()
    for c, col in zip(FLOOR_COLUMNS, t.columns, strict=True):
        a = (col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()).to_numpy()
        if c == "ts":
            a.view(np.int64)


def _floor_share(ps: list[str]) -> int:
    for p in ps:
        _floor_one(p)
    return len(ps)


def export_parquet(bars: list, folder: Path) -> None:
    """One Parquet file per instrument (all bar columns), for pandas and vectorbt."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for b in bars:
        t = pa.table({
            "ts": pa.array(b.ts, pa.timestamp("ns", tz="UTC")), "open": b.open,
            "high": b.high, "low": b.low, "close": b.close, "volume": b.volume,
        })
        pq.write_table(t, folder / f"{b.instrument}.parquet")


def pandas_peer_times(folder: Path, insts: list[str], sets: list[tuple[int, int]]
                      ) -> tuple[float, float, np.ndarray]:
    box = {}

    def load() -> None:
        box["oc"] = pandas_peer.load(str(folder), insts)

    t_read = best_of(REPEATS, load)
    o, c = box["oc"]
    pnl = np.empty((len(sets), len(insts)))

    def fn() -> None:
        for k, (f, s) in enumerate(sets):
            pnl[k] = pandas_peer.run(o, c, f, s, NOTIONAL).to_numpy()

    return t_read, best_of(REPEATS, fn), pnl


def vbt_peer(folder: Path, insts: list[str], sets: list[tuple[int, int]]) -> dict | None:
    if not VBT_PYTHON.exists():
        print(f"vectorbt skipped: no {VBT_PYTHON}", file=sys.stderr)
        return None
    cfg = {"folder": str(folder), "instruments": insts, "sets": sets, "notional": NOTIONAL,
           "repeats": min(REPEATS, 3)}  # vectorbt is slow: best of 3 at most
    p = subprocess.run([str(VBT_PYTHON), str(HERE / "peers" / "vbt_peer.py"), json.dumps(cfg)],
                       capture_output=True, text=True, env=dict(os.environ))
    if p.returncode != 0:
        raise RuntimeError(f"vectorbt peer failed:\n{p.stderr[-3000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["pnl"] = np.asarray(out["pnl"])
    return out


def exact_ties(close: np.ndarray, fast: int, slow: int) -> int | None:
    """Bars where the fast and slow means are equal in exact arithmetic (None: unknown).

    The generated prices are on a 0.0001 grid, so sums of ticks are exact
    integers: a tie is slow * sum_fast == fast * sum_slow. At a true tie the
    sign of a float comparison is decided by rounding, which differs between
    running sums (SEMANTICS.md), pandas' compensated rolling sums and
    vectorbt's prefix-sum differences. Elsewhere the gap between the means is
    at least 0.0001 / (fast * slow), far above any of their rounding errors.
    """
    ticks = np.rint(close * 1e4)
    if not np.array_equal(ticks / 1e4, close):
        return None
    csum = np.concatenate(([0], np.cumsum(ticks.astype(np.int64))))
    i = np.arange(slow - 1, len(close)) + 1
    return int(np.count_nonzero(slow * (csum[i] - csum[i - fast])
                                == fast * (csum[i] - csum[i - slow])))


def agreement(x: np.ndarray, ref: np.ndarray, ties: np.ndarray | None) -> dict:
    """Relative PnL differences of a peer (n_sets, n_instruments) against incbt's."""
    d = np.abs(x - ref) / np.maximum(np.abs(ref), 1e-12)
    out = {"max": float(d.max()), "n": int(d.size), "differ": int(np.count_nonzero(d > 1e-6))}
    if ties is not None:
        clean = ties == 0
        out["clean_max"] = float(d[clean].max()) if clean.any() else 0.0
        out["clean_n"] = int(clean.sum())
        out["differ_at_ties"] = int(np.count_nonzero((d > 1e-6) & ~clean))
    return out


def agreement_text(name: str, a: dict) -> str:
    if a["differ"] == 0:
        return f"{name} {a['max']:.1e}"
    txt = f"{name} {a['max']:.1e} ({a['differ']} of {a['n']} differ"
    if "clean_max" in a:
        txt += (f", {a['differ_at_ties']} of them at exact ties; {a['clean_max']:.1e} on the "
                f"{a['clean_n']} without a tie")
    return txt + ")"


def agreement_ok(a: dict) -> bool:
    if a["max"] <= 1e-6:
        return True
    return "clean_max" in a and a["clean_max"] <= 1e-6 and a["differ"] == a["differ_at_ties"]


# ----------------------------------------------------------------------------- memory


def rss(stores: Stores, insts: list[str] | None, processes: str | None = None
        ) -> tuple[int, int, int, int]:
    """Peak RSS of the backtest on a fresh store copy, of its largest worker process and
    the most a worker grew by from its fork (0: it forked none), then of the same
    command again on that copy (nothing left to compute: it plans, reads the catalog and
    prints the same metrics table); their difference is what computing adds."""
    p = stores.fresh()
    args = ["--store", str(p), "backtest", "sma_cross", "-p", "fast=10", "-p", "slow=50"]
    if insts is not None:
        args += ["--instruments", ",".join(insts)]
    env = dict(os.environ)
    if processes is not None:
        env["INCBT_PROCESSES"] = processes
    b, worker, grew, _ = peak_rss_all(args, env)
    again = peak_rss(args, env)[0]
    stores.drop(p)
    return b, worker, grew, again


RSS_REPEATS = 3


def median_rss(measure: Callable[[], tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """Each of :func:`rss`'s four figures, the median of ``RSS_REPEATS`` measurements."""
    runs = [measure() for _ in range(RSS_REPEATS)]
    return tuple(sorted(col)[len(col) // 2] for col in zip(*runs, strict=True))  # type: ignore[return-value]


# ----------------------------------------------------------------------------- profile


def profile_end_to_end(stores: Stores) -> str:
    """Where one end-to-end run's time goes: phases, then cProfile of the main thread.

    Phases are timed by wrapping incbt's own functions for this one call
    (``incbt.runs.register/plan_runs/commit``, and on the main thread or the executor's
    threads ``incbt.execute.read_days`` and ``run_segment``, summed over threads); a
    function incbt no longer has is skipped.
    """
    import incbt.execute as ex_mod
    import incbt.runs as runs_mod

    spent: dict[str, float] = {}
    patched = []

    def wrap(mod: object, name: str, label: str) -> None:
        fn = getattr(mod, name, None)
        if fn is None:
            return

        def timed(*args: object, **kw: object) -> object:
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - t

        patched.append((mod, name, fn))
        setattr(mod, name, timed)

    labels = [
        (runs_mod, "register", "register (validate, resolve start)"),
        (runs_mod, "plan_runs", "plan"),
        (runs_mod, "commit", "commit (result files, snapshots, metrics)"),
        (ex_mod, "read_days", "read bars (Store.bars path), summed over threads"),
        (ex_mod, "run_segment", "run_segment, summed over threads"),
    ]
    for mod, name, label in labels:
        wrap(mod, name, label)
    p = stores.fresh()
    s = incbt.open(str(p))
    prof = cProfile.Profile()
    t = time.perf_counter()
    try:
        prof.enable()
        s.backtest("sma_cross", params_list([ONE]))
        prof.disable()
    finally:
        for mod, name, fn in patched:
            setattr(mod, name, fn)
    total = time.perf_counter() - t
    lines = [f"end to end, 1 set: {ms(total)} (profiled)"]
    order = [label for _, _, label in labels]
    lines += [f"  {k}: {ms(spent[k])}" for k in order if k in spent]
    main_thread = sum(spent.get(label, 0.0) for _, _, label in labels[:3])
    lines.append(f"  the rest (executing: reads and runs on the threads, waiting): "
                 f"{ms(total - main_thread)}")
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
    lines.append(buf.getvalue())
    stores.drop(p)
    return "\n".join(lines)


# ----------------------------------------------------------------------------- report


def mps(steps: float, t: float) -> str:
    return f"{steps / t / 1e6:,.1f} M"


def ms(t: float) -> str:
    if t < 0.01:
        return f"{t * 1e3:.2f} ms"
    return f"{t * 1e3:,.0f} ms" if t < 10 else f"{t:,.1f} s"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def main() -> None:
    global REPEATS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--instruments", type=int, default=100)
    ap.add_argument("--days", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5,
                    help="best of N for every timing (compute only and bare Numba: at least 10)")
    ap.add_argument("--small", type=int, default=25, help="the smaller universe for peak RSS")
    ap.add_argument("--procs-small", type=int, default=60,
                    help="the smaller universe for peak RSS with worker processes")
    ap.add_argument("--no-vbt", action="store_true", help="skip the vectorbt peer")
    ap.add_argument("--no-rss", action="store_true", help="skip the peak-RSS runs")
    ap.add_argument("--no-readme", action="store_true", help="print only")
    ap.add_argument("--profile", action="store_true",
                    help="also break one end-to-end run down (printed, not in the README)")
    a = ap.parse_args()
    require_vbt(a.no_vbt, not a.no_readme)
    REPEATS = a.repeats
    t_all = time.perf_counter()
    load0 = os.getloadavg()[0]
    tag = f"{a.instruments}x{a.days}"
    data = dataset(a.instruments, a.days)
    stores = Stores(data, tag)
    strat = get_strategy("sma_cross")
    base = incbt.open(str(stores.base))
    insts = base.instruments()
    files = base.sql("SELECT path, instrument, rows, bytes FROM files ORDER BY path").to_pydict()
    del base
    paths = [str(x) for x in files["path"]]
    n_bars = sum(files["rows"])
    bars_bytes = sum(files["bytes"])
    one_bytes = sum(b for i, b in zip(files["instrument"], files["bytes"], strict=True)
                    if i == insts[0])
    one_mem = sum(r for i, r in zip(files["instrument"], files["rows"], strict=True)
                  if i == insts[0]) * 48  # ts + 5 float64 columns
    print(f"data: {len(insts)} instruments, {n_bars:,} bars; best of {REPEATS}", flush=True)

    # warm up: compile or load the kernels, import DataFusion, touch the bars files
    w = stores.fresh()
    incbt.open(str(w)).backtest("sma_cross", params_list(BATCH10[:2]))
    stores.drop(w)

    # 1 + 6. end to end: 1 set, the reference 8, a batch of 10
    e2e: dict[int, float] = {}
    steps: dict[int, int] = {}
    done: dict[int, object] = {}
    floor = io_floor(str(stores.base), paths)  # the same files (hard links)
    where: dict[int, str] = {}  # the executor picked
    for sets in ([ONE], REF8, BATCH10):
        k = len(sets)
        # the floor is timed between the 1-set repeats: side by side under the same load
        e2e[k], steps[k], done[k], where[k] = end_to_end(stores, sets, REPEATS,
                                                         floor if k == 1 else None)
        print(f"end to end, {k} set(s): {mps(steps[k], e2e[k])} bar-steps/s ({ms(e2e[k])}, "
              f"{where[k]})", flush=True)
    # the same on this process's threads alone (no worker processes), for comparison
    e2e_thr: dict[int, float] = {}
    for sets in ([ONE], REF8):
        k = len(sets)
        e2e_thr[k], *_ = end_to_end(stores, sets, REPEATS, processes="1")
        print(f"end to end on threads, {k} set(s): {ms(e2e_thr[k])}", flush=True)
    ref_store = done[8]
    ref_pnl = committed_pnl(ref_store, REF8, insts)  # incbt's results: the reference
    ref_one = ref_pnl[REF8.index(ONE)][None]
    alone = committed_pnl(done[1], [ONE], insts)  # the same run computed on its own
    batch_vs_alone = float(np.max(np.abs(alone - ref_one)))

    # reads: incbt's bar sources and the floor
    box: dict[str, list] = {}
    t_direct = best_of(REPEATS, lambda: box.__setitem__(
        "bars", [ref_store.bars(i) for i in insts]))  # type: ignore[attr-defined]
    bars = box["bars"]
    sql = SqlBars(ref_store)
    first_day, last_day = int(bars[0].days[0]), int(bars[0].days[-1])
    t_sql = best_of(1, lambda: [sql.load(i, first_day, last_day) for i in insts])
    floor_seq, floor_par, floor_proc = floor()
    t_floor = min(floor_seq, floor_par, floor_proc)
    print(f"reads: Store.bars {ms(t_direct)}, SqlBars {ms(t_sql)}, floor {ms(floor_seq)} "
          f"(1 thread) / {ms(floor_par)} ({os.cpu_count()} threads) / {ms(floor_proc)} "
          f"({os.cpu_count()} processes)", flush=True)

    # 2 + 3. compute only, bare Numba
    compute_and_bare(strat, bars[:1], [ONE], 1)  # compile or load both first
    comp: dict[int, tuple[float, np.ndarray]] = {}
    bares: dict[int, tuple[float, np.ndarray]] = {}
    for sets in ([ONE], REF8, BATCH10):
        tc, pc, tb, pb = compute_and_bare(strat, bars, sets, max(REPEATS, 10))
        comp[len(sets)], bares[len(sets)] = (tc, pc), (tb, pb)
    for k in (1, 8, 10):
        print(f"{k} set(s): compute only {mps(steps[k], comp[k][0])}, bare Numba "
              f"{mps(steps[k], bares[k][0])}", flush=True)

    # 4 + 5. pandas and vectorbt, from Parquet files exported once
    folder = OUT / f"engine-{tag}-parquet"
    export_parquet(bars, folder)
    pd_read, pd1, pd_pnl1 = pandas_peer_times(folder, insts, [ONE])
    _, pd8, pd_pnl8 = pandas_peer_times(folder, insts, REF8)
    print(f"pandas: read {ms(pd_read)}, 1 set {ms(pd1)}, 8 sets {ms(pd8)}", flush=True)
    vbt1 = vbt8 = None
    if not a.no_vbt:
        vbt1 = vbt_peer(folder, insts, [ONE])
        vbt8 = vbt_peer(folder, insts, REF8)
        if vbt1 is not None and vbt8 is not None:
            print(f"vectorbt: read {ms(vbt1['read_s'])}, 1 set {ms(vbt1['compute_s'])}, "
                  f"8 sets {ms(vbt8['compute_s'])}", flush=True)

    # agreement: incbt's committed total_pnl is the reference; 1 set and the 8 sets
    ref_all = np.vstack([ref_one, ref_pnl])
    tie_rows = []
    for f, sl in [ONE, *REF8]:
        row = [exact_ties(b.close, f, sl) for b in bars]
        tie_rows.append(None if None in row else row)
    ties = None if None in tie_rows else np.array(tie_rows)
    both = {
        "incbt compute only": np.vstack([comp[1][1], comp[8][1]]),
        "bare Numba": np.vstack([bares[1][1], bares[8][1]]),
        "pandas": np.vstack([pd_pnl1, pd_pnl8]),
    }
    if vbt1 is not None and vbt8 is not None:
        both["vectorbt"] = np.vstack([vbt1["pnl"], vbt8["pnl"]])
    agree = {k: agreement(v, ref_all, ties) for k, v in both.items()}
    for k, v in agree.items():
        print(f"PnL vs incbt: {agreement_text(k, v)}", flush=True)
    n_ties = int(ties.sum()) if ties is not None else None
    tie_runs = int(np.count_nonzero(ties)) if ties is not None else None

    # 7. peak RSS of `incbt backtest` in a fresh process, three universe sizes
    mem: dict[int, int] = {}
    idle: dict[int, int] = {}  # the same command again, with nothing to compute
    pmem: dict[int, int] = {}  # with worker processes: the command's peak
    wmem: dict[int, int] = {}  # its largest worker process (0: none)
    wgrew: dict[int, int] = {}  # the most a worker grew by from its fork
    if not a.no_rss:
        # on this process's threads (INCBT_PROCESSES=1) at three sizes; then with worker
        # processes at two sizes where the plan picks them (each reads >= 2 M bars)
        # each the median of RSS_REPEATS fresh commands (one of each varied by +-0.2 MiB
        # from run to run: the growth from 25 to 100 instruments read 1.3 to 1.8 MiB)
        for n in sorted({1, min(a.small, len(insts)), len(insts)}):
            mem[n], _, _, idle[n] = median_rss(
                lambda n=n: rss(stores, None if n == len(insts) else insts[:n], "1"))
        for n in sorted({min(a.procs_small, len(insts)), len(insts)}):
            pmem[n], wmem[n], wgrew[n], _ = median_rss(
                lambda n=n: rss(stores, None if n == len(insts) else insts[:n]))
        print("peak RSS, worker processes: " + ", ".join(
            f"{n} instr. {b / 2**20:.0f} MiB, largest worker {wmem[n] / 2**20:.0f} MiB "
            f"(+{wgrew[n] / 2**20:.1f} MiB from its fork)"
            for n, b in pmem.items()), flush=True)
        print("peak RSS: " + ", ".join(f"{n} instr. {b / 2**20:.0f} MiB (nothing to compute: "
                                       f"{idle[n] / 2**20:.0f} MiB)"
                                       for n, b in mem.items()), flush=True)

    if a.profile:
        print(profile_end_to_end(stores), flush=True)
    wall = time.perf_counter() - t_all

    # ------------------------------------------------------------------ the tables
    def cell(k: int, t: float) -> str:
        return f"{mps(steps[k], t)} ({ms(t)})"

    rows = [
        ("incbt end to end: `Store.backtest` (plan, read bars, run, commit)",
         cell(1, e2e[1]), cell(8, e2e[8])),
        ("incbt compute only: `run_segment` over preloaded arrays",
         cell(1, comp[1][0]), cell(8, comp[8][0])),
        ("bare Numba loop (`peers/bare_numba.py`), preloaded arrays",
         cell(1, bares[1][0]), cell(8, bares[8][0])),
        ("pandas, vectorised: read Parquet + compute",
         cell(1, pd_read + pd1), cell(8, pd_read + pd8)),
        ("pandas, vectorised: compute only", cell(1, pd1), cell(8, pd8)),
    ]
    if vbt1 is not None and vbt8 is not None:
        v1, v8, vr = vbt1["compute_s"], vbt8["compute_s"], vbt1["read_s"]
        rows += [
            (f"vectorbt {vbt1['version']} `from_orders`: read Parquet + compute",
             cell(1, vr + v1), cell(8, vr + v8)),
            (f"vectorbt {vbt1['version']} `from_orders`: compute only", cell(1, v1), cell(8, v8)),
        ]
    rows += [
        ("incbt end to end with `INCBT_PROCESSES=1` (this process's threads only)",
         cell(1, e2e_thr[1]), cell(8, e2e_thr[8])),
        ("I/O floor: pyarrow reads ts, open, close of the store's bars files, "
         f"1 thread / {os.cpu_count()} threads / {os.cpu_count()} processes",
         f"{ms(floor_seq)} / {ms(floor_par)} / {ms(floor_proc)}", ""),
        ("incbt bars read, `Store.bars` (6 columns, every instrument, 1 thread)",
         ms(t_direct), ""),
        ("incbt bars read, `SqlBars` (DataFusion, every instrument, 1 try)", ms(t_sql), ""),
    ]
    speed = table(rows, ("bar-steps/s (wall time)", "1 set (fast 10, slow 50)",
                         "the reference 8 sets"))

    def x(num: float, den: float) -> str:
        return f"{num / den:.2f}x"

    goals = [
        ("compute only vs bare Numba (speed)",
         f"{x(bares[1][0], comp[1][0])} (8 sets: {x(bares[8][0], comp[8][0])})", ">= 0.8x",
         verdict(bares[1][0] / comp[1][0] >= 0.8)),
        ("end to end vs pandas compute only (speed)",
         f"{x(pd1, e2e[1])} (8 sets: {x(pd8, e2e[8])})", ">= 10x", verdict(pd1 / e2e[1] >= 10)),
        ("end to end vs pandas read + compute (speed)",
         f"{x(pd_read + pd1, e2e[1])} (8 sets: {x(pd_read + pd8, e2e[8])})", ">= 10x",
         verdict((pd_read + pd1) / e2e[1] >= 10)),
    ]
    if vbt1 is not None and vbt8 is not None:
        goals += [
            ("end to end vs vectorbt compute only (speed)",
             f"{x(v1, e2e[1])} (8 sets: {x(v8, e2e[8])})", ">= 20x", verdict(v1 / e2e[1] >= 20)),
            ("end to end vs vectorbt read + compute (speed)",
             f"{x(vr + v1, e2e[1])} (8 sets: {x(vr + v8, e2e[8])})", ">= 20x",
             verdict((vr + v1) / e2e[1] >= 20)),
        ]
    goals += [
        ("end to end time / I/O floor time (the faster floor)",
         f"{x(e2e[1], t_floor)} ({ms(e2e[1])} / {ms(t_floor)})", "<= 2x",
         verdict(e2e[1] / t_floor <= 2)),
        ("batch of 10 sets / 1 set, end to end (time)", x(e2e[10], e2e[1]), "< 4x",
         verdict(e2e[10] / e2e[1] < 4)),
        ("batch of 10 sets / 1 set, compute only (time; for reference, 10x the bar-steps)",
         x(comp[10][0], comp[1][0]), "", ""),
    ]
    tie_note = "" if n_ties is None else (
        f"; {n_ties} exact ties of the two means in {tie_runs} of the "
        f"{ref_all.size} instrument-runs")
    if all(v["max"] <= 1e-6 for v in agree.values()):
        agree_verdict = "met"
    elif all(agreement_ok(v) for v in agree.values()):
        agree_verdict = "met except at exact ties"
    else:
        agree_verdict = "**missed**"
    goals.append((
        f"total PnL per instrument vs incbt's, max relative difference (1 set + 8 sets, "
        f"{ref_all.size} instrument-runs{tie_note})",
        "; ".join(agreement_text(k, v) for k, v in agree.items()), "<= 1e-6",
        agree_verdict))
    if mem:
        ns = sorted(mem)
        lo, hi = ns[-2] if len(ns) > 1 else ns[0], ns[-1]
        growth = mem[hi] - mem[lo]
        goals.append((
            "peak RSS of `incbt backtest sma_cross -p fast=10 -p slow=50`, fresh process, "
            "median of 3 at each size, `INCBT_PROCESSES=1` (threads)",
            ", ".join(f"{n} instr. {mem[n] / 2**20:.0f} MiB" for n in ns)
            + f"; {lo} -> {hi} instruments: {growth / 2**20:+.1f} MiB",
            f"growth <= one instrument's bars ({one_mem / 2**20:.1f} MiB)",
            verdict(growth <= one_mem)))
        pns = sorted(pmem)
        if len(pns) > 1 and all(wmem[n] for n in pns):
            plo, phi = pns[0], pns[-1]
            g_cmd, g_wrk = pmem[phi] - pmem[plo], wgrew[phi] - wgrew[plo]
            goals.append((
                "the same with worker processes (the plan picks them from 2 M bars): the "
                "command's peak RSS; its largest worker's, and the most a worker grew by "
                "from its fork (a forked worker's RSS counts the pages it shares with the "
                "command: what it grows by is its own)",
                ", ".join(f"{n} instr. {pmem[n] / 2**20:.0f} MiB, worker {wmem[n] / 2**20:.0f}"
                          f" MiB (+{wgrew[n] / 2**20:.1f})" for n in pns)
                + f"; {plo} -> {phi} instruments: command {g_cmd / 2**20:+.1f} MiB, a worker's "
                f"own {g_wrk / 2**20:+.1f} MiB (its peak "
                f"{(wmem[phi] - wmem[plo]) / 2**20:+.1f} MiB)",
                f"growth <= one instrument's bars ({one_mem / 2**20:.1f} MiB)",
                verdict(max(g_cmd, g_wrk) <= one_mem)))
        idle_growth = idle[hi] - idle[lo]
        goals.append((
            "for reference: the same command again, nothing to compute (plan, catalog "
            "reads, print the metrics); and what computing adds (the difference)",
            ", ".join(f"{n} instr. {idle[n] / 2**20:.0f} MiB" for n in ns)
            + f"; {lo} -> {hi} instruments: {idle_growth / 2**20:+.1f} MiB; computing adds "
            + ", ".join(f"{(mem[n] - idle[n]) / 2**20:.1f}" for n in ns)
            + f" MiB: {growth / 2**20 - idle_growth / 2**20:+.1f} MiB",
            "", ""))
    goal_table = table(goals, ("goal", "measured", "target", ""))

    if agree_verdict == "met":
        tie_verdict = "No peer differs."
    elif agree_verdict.startswith("met"):
        tie_verdict = ("Every difference is on an instrument-run that passes a tie; on all "
                       "others every peer agrees within 1e-6.")
    else:
        tie_verdict = "Some differences are NOT explained by ties: a peer disagrees."
    tie_text = tie_verdict
    if ties is not None:
        tie_text = (
            "Exact ties: the prices are on a 0.0001 grid, so the fast and slow means are "
            "sometimes exactly equal; there the sign of the comparison is decided by rounding, "
            "which differs between SEMANTICS.md's running float sums (incbt, bare Numba: "
            "identical bits), pandas' compensated rolling sums and vectorbt's prefix-sum "
            f"differences (ties are found in exact integer arithmetic). {tie_verdict}")
    cmd = "NUMBA_CACHE_DIR=/tmp/numba-cache .venv/bin/python benchmarks/bench_engine.py"
    if (a.instruments, a.days) != (100, 100):
        cmd += f" --instruments {a.instruments} --days {a.days}"
    if a.repeats != 5:
        cmd += f" --repeats {a.repeats}"
    text = "\n".join([
        f"Data: {len(insts)} instruments x {a.days} days = {n_bars:,} bars, "
        f"{bars_bytes / 2**20:.0f} MiB of bars Parquet in the store (one instrument: "
        f"{one_bytes / 2**20:.2f} MiB on disk, {one_mem / 2**20:.2f} MiB as 6 columns in "
        f"memory). sma_cross, notional {NOTIONAL:,.0f}, no fees or slippage. 1 set: fast 10, "
        "slow 50; the reference 8 sets: fast {5, 10, 20, 40} x slow {50, 100}; the batch of "
        "10: (fast, slow) = (5+j, 50+5j). A bar-step is one bar for one parameter set; "
        f"best of {REPEATS} (compute only and bare Numba: of {max(REPEATS, 10)}, "
        f"interleaved; vectorbt: of {min(REPEATS, 3)}); end to end on a fresh copy of the "
        "store each time. Machine: "
        f"{machine()}; 1-minute load average {load0:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end (other work shares the machine). Run "
        f"{datetime.date.today().isoformat()}, {wall:.0f} s in all.",
        "",
        speed,
        "",
        goal_table,
        "",
        "Peers get the same bars: pandas and vectorbt from one Parquet file per instrument "
        "exported from the store (wide frames, one column per instrument, all instruments "
        "at once: each library at its fastest); vectorbt runs in `.venv-bench` "
        "(`benchmarks/requirements-bench.txt`). A batch (8 or 10 sets) is one "
        "`Store.backtest` call, one pass per instrument. End to end, incbt's executor is "
        "picked by the plan (`incbt.runs.local_executor`): "
        + "; ".join(f"{k} set{'s' if k > 1 else ''}: {where[k]}" for k in sorted(where))
        + " (39,000 bars a task; worker processes are forked by each backtest, read, run and "
        "write the result rows of chunks of tasks, and the command commits them; with "
        "`INCBT_PROCESSES=1` a thread per core reads and runs while the main thread encodes "
        "and commits the rows); compute only, bare Numba, pandas and vectorbt run on one "
        "thread. " + tie_text + " The same run computed "
        f"alone and in the batch of 8: max difference {batch_vs_alone:.1e}.",
        "",
        f"Command: `{cmd}`",
    ])
    print()
    print(text)
    if not a.no_readme:
        update_readme("engine", "## The engine: backtest speed against peers\n\n" + text)
    shutil.rmtree(stores.work, ignore_errors=True)


REPEATS = 5

if __name__ == "__main__":
    main()
