"""Incremental update benchmarks: what one new day, or one corrected day, costs.

    NUMBA_CACHE_DIR=/tmp/numba-cache .venv/bin/python benchmarks/bench_update.py
    NUMBA_CACHE_DIR=/tmp/numba-cache .venv/bin/python benchmarks/bench_update.py --quick
    NUMBA_CACHE_DIR=/tmp/numba-cache .venv/bin/python benchmarks/bench_update.py --profile

Side by side in one run (the machine is shared and noisy: read the ratios):

1. one new day appended to a store with 1 year (252 days) and with 4 years
   (1008 days) of history, same instruments (100) and runs (20 sma_cross:
   fast {5,10,15,20} x slow {50,100,150,200,250}): in-process
   ``store.update(file)`` wall time, best of ``--repeats``, each repeat on a
   fresh copy of the store; the 4y/1y ratio; the full recompute of the same
   20 runs on the 1-year data (``store.backtest`` on a fresh store holding only
   the bars) and full/update;
2. a correction of the day 21 trading days before the last, on the 1-year
   store: bar-steps processed and time against the full recompute;
3. ``incbt --store S update NEWDAY_FILE`` as a subprocess (process start
   included), best of 3 on fresh copies, at 100 instruments x 20 runs and at
   the seed scale 500 instruments x 100 runs (a shorter history: the cost of an
   update does not depend on it, which item 1 measures), and how the
   in-process time splits: ingest (read+write, commit), plan, execute (read the
   bars, run the kernels), commit (result files, snapshots, metrics, event),
   compaction, the rest;
4. snapshots and catalog (LMDB ``data.mdb``) bytes per run-instrument-year of
   the 4-year store under the default retention (``snapshot_keep_days`` 60);
5. 250 daily updates in a row (20 instruments x 2 runs from 20 days of
   history): result files in ``results/daily`` and ``results/fills`` (age-tiered
   compaction, fan-out 8) and the time of the first 10 against the last 10.

Data and stores are built under ``bench-out/update/`` and reused when the same
sizes are asked; stores are also keyed by a hash of ``incbt/``'s sources, so a
code change rebuilds them. Copies of a store hard-link its Parquet files (they
are immutable and replaced by rename, never written in place) and copy the
rest (the LMDB catalog is written in place); ``os.sync()`` runs before each
timed call so earlier writes do not land in its fsyncs.
The README section ``update`` gets the tables (not with ``--quick``).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/numba-cache")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import OUT, code_hash, link_or_copy, machine, table, update_readme  # noqa: E402

import incbt  # noqa: E402
import incbt.results.compact as compact_mod  # noqa: E402
import incbt.runs as runs_mod  # noqa: E402
from incbt.bars.generate import generate, weekdays  # noqa: E402
from incbt.bars.schema import day_to_iso, iso_to_day  # noqa: E402
from incbt.catalog import runs as rc  # noqa: E402
from incbt.catalog.env import close_env  # noqa: E402

ROOT = HERE.parent
BASE = OUT / "update"
START = "2020-01-01"
SEED = 42
GRID20 = [{"fast": f, "slow": s} for f in (5, 10, 15, 20) for s in (50, 100, 150, 200, 250)]
GRID100 = [{"fast": f, "slow": s} for f in range(5, 55, 5) for s in range(60, 260, 20)]
DAILY_RUNS = [{"fast": 10, "slow": 50}, {"fast": 20, "slow": 100}]
MB = 1024 * 1024


def log(*a: object) -> None:
    print(*a, flush=True)


# -- data ------------------------------------------------------------------

CODE = code_hash()


def _once(d: Path, make: Callable[[Path], None]) -> Path:
    """Make folder ``d`` with ``make`` unless a finished one is there."""
    done = d / ".complete"
    if not done.exists():
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        t = time.perf_counter()
        make(d)
        done.touch()
        log(f"  built {d.name} in {time.perf_counter() - t:.1f} s")
    return d


def trading_days(n: int) -> list[int]:
    return weekdays(iso_to_day(START), n).tolist()


def history(instruments: int, days: int) -> Path:
    """``days`` trading days of bars, Parquet, one file per month."""
    return _once(BASE / f"hist-{instruments}x{days}-s{SEED}", lambda d: generate(
        str(d), instruments=instruments, days=days, start=START, seed=SEED, fmt="parquet",
        split="month"))


def one_day(instruments: int, days: int, day_index: int, revise: bool = False) -> Path:
    """The file of trading day ``day_index`` (0-based) of the same walk; ``revise``:
    the vendor's corrected version of it."""
    day = day_to_iso(trading_days(days)[day_index])
    tag = "fix" if revise else "day"
    d = _once(BASE / f"{tag}-{instruments}x{days}-{day}-s{SEED}", lambda d: generate(
        str(d), instruments=instruments, days=days, start=START, seed=SEED, fmt="parquet",
        split="day", from_day=day, to_day=day, revise=[day] if revise else []))
    (f,) = sorted(d.glob("*.parquet"))
    return f


def day_files(instruments: int, days: int) -> list[Path]:
    d = _once(BASE / f"days-{instruments}x{days}-s{SEED}", lambda d: generate(
        str(d), instruments=instruments, days=days, start=START, seed=SEED, fmt="parquet",
        split="day"))
    return sorted(d.glob("*.parquet"))


# -- stores ----------------------------------------------------------------
def _prune(prefix: str) -> None:
    """Remove stores of ``prefix`` built by other code versions."""
    for p in BASE.glob(f"{prefix}-c*"):
        if p.name != f"{prefix}-c{CODE}":
            shutil.rmtree(p, ignore_errors=True)


def copy_store(src: Path, dst: Path) -> Path:
    drop(dst)
    shutil.copytree(src, dst, copy_function=link_or_copy,
                    ignore=shutil.ignore_patterns(".complete"))
    return dst


def drop(path: Path) -> None:
    close_env(str(path / "catalog"))
    shutil.rmtree(path, ignore_errors=True)


def bars_store(instruments: int, days: int) -> Path:
    """A store holding only the bars (no runs)."""
    prefix = f"bars-{instruments}x{days}"
    _prune(prefix)
    d = BASE / f"{prefix}-c{CODE}"

    def make(d: Path) -> None:
        shutil.rmtree(d)
        incbt.init(str(d)).ingest(str(history(instruments, days)))
        close_env(str(d / "catalog"))

    return _once(d, make)


def runs_store(instruments: int, days: int, grid: list[dict[str, int]]) -> Path:
    """The bars store plus the runs of ``grid``, computed."""
    prefix = f"runs-{instruments}x{days}-r{len(grid)}"
    _prune(prefix)
    d = BASE / f"{prefix}-c{CODE}"

    def make(d: Path) -> None:
        copy_store(bars_store(instruments, days), d)
        incbt.open(str(d)).backtest("sma_cross", grid)
        close_env(str(d / "catalog"))

    return _once(d, make)


# -- timing ----------------------------------------------------------------
@contextlib.contextmanager
def phases(into: dict[str, float]) -> Iterator[None]:
    """Time incbt's update phases by wrapping the functions ``incbt.runs`` calls for
    them (plan, commit, compaction; whatever else ``bring_up_to_date`` spends is the
    execution); restores them on exit. A missing function is simply not timed."""
    patched = [(runs_mod, "plan_runs", "plan"), (runs_mod, "commit", "commit"),
               (compact_mod, "compact_all", "compaction")]
    saved = []
    for mod, name, label in patched:
        fn = getattr(mod, name, None)
        if fn is None:
            continue
        saved.append((mod, name, fn))

        def wrapped(*a: Any, _fn: Callable = fn, _label: str = label, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                into[_label] = into.get(_label, 0.0) + time.perf_counter() - t

        setattr(mod, name, wrapped)
    try:
        yield
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)


SPLIT = ("ingest read+write", "ingest commit", "plan", "execute", "commit", "compaction",
         "other")


def split_of(res: Any, wall: float, ph: dict[str, float]) -> dict[str, float]:
    """Wall time of one update by phase. ``execute``: the rest of ``bring_up_to_date``
    (``report.seconds``) after plan, commit and compaction: reading bars, running
    kernels, fetching resume snapshots; ``other``: the rest of ``update`` (opening the
    runs, the write lock, the stale list)."""
    ing = dict(res.ingest.seconds) if res.ingest is not None else {}
    out = {"ingest read+write": ing.get("read+write", 0.0),
           "ingest commit": ing.get("commit", 0.0)}
    for k in ("plan", "commit", "compaction"):
        out[k] = ph.get(k, 0.0)
    out["execute"] = res.report.seconds - out["plan"] - out["commit"] - out["compaction"]
    out["other"] = wall - sum(out[k] for k in SPLIT if k != "other")
    out["total"] = wall
    return out


def update_once(src: Path, work: Path, files: list[Path]) -> dict[str, Any]:
    """``store.update(files)`` on a fresh copy of ``src``: wall time, split, result."""
    copy_store(src, work)
    st = incbt.open(str(work))
    os.sync()
    ph: dict[str, float] = {}
    with phases(ph):
        t = time.perf_counter()
        res = st.update([str(f) for f in files])
        wall = time.perf_counter() - t
    out = {"s": wall, "bars": res.report.bars_processed, "split": split_of(res, wall, ph),
           "days_new": res.ingest.days_new, "days_corrected": res.ingest.days_corrected,
           "errors": res.report.errors}
    drop(work)
    return out


def best(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return min(rows, key=lambda r: r["s"])


def full_recompute(bars: Path, work: Path, grid: list[dict[str, int]]) -> dict[str, Any]:
    """``store.backtest`` of the grid on a fresh copy of a store holding only bars."""
    copy_store(bars, work)
    st = incbt.open(str(work))
    os.sync()
    t = time.perf_counter()
    runs = st.backtest("sma_cross", grid)
    wall = time.perf_counter() - t
    with st.catalog.env.read() as txn:
        n_runs = sum(1 for _ in rc.runs(st.catalog, txn))
    out = {"s": wall, "runs": n_runs, "bars": _bars_of(runs)}
    drop(work)
    return out


def _bars_of(runs: list[Any]) -> int:
    return int(runs[0].report.bars_processed)  # one report for the whole batch


def incbt_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "incbt"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "from incbt.cli import main; main()"]


def cli_update(src: Path, work: Path, newday: Path, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        copy_store(src, work)
        close_env(str(work / "catalog"))
        os.sync()
        cmd = [*incbt_cmd(), "--store", str(work), "update", str(newday)]
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        times.append(time.perf_counter() - t)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr[-2000:]}")
        if len(times) == 1:
            log("  " + " | ".join(p.stdout.strip().splitlines()[-3:]))
        drop(work)
    return times


def import_time(repeats: int) -> float:
    """A fresh process that only imports the CLI (what every command pays first)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import incbt.cli"], check=True,
                       env=dict(os.environ))
        times.append(time.perf_counter() - t)
    return min(times)


# -- the items -------------------------------------------------------------
def snapshots_of(store_dir: Path) -> dict[str, float]:
    st = incbt.open(str(store_dir))
    cat = st.catalog
    with cat.env.read() as txn:
        n = rc.count_snapshots(cat, txn)
        s = txn.stat(cat.env.db(b"snaps"))
        snap_bytes = s["psize"] * (s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"])
        n_runs = sum(1 for _ in rc.runs(cat, txn))
        n_inst = len(cat.instruments(txn))
    size = os.path.getsize(store_dir / "catalog" / "data.mdb")
    close_env(str(store_dir / "catalog"))
    return {"snapshots": n, "snap_bytes": snap_bytes, "mdb": size, "runs": n_runs,
            "instruments": n_inst, "keep": int(st.settings["snapshot_keep_days"])}


def count_files(store_dir: Path) -> tuple[int, int]:
    def n(sub: str) -> int:
        p = store_dir / "results" / sub
        return len([f for f in os.listdir(p) if f.endswith(".parquet")]) if p.exists() else 0

    return n("daily"), n("fills")


def daily_updates(instruments: int, hist: int, updates: int) -> dict[str, Any]:
    files = day_files(instruments, hist + updates)
    work = BASE / "work-daily"
    drop(work)
    st = incbt.init(str(work))
    st.ingest([str(f) for f in files[:hist]])
    st.backtest("sma_cross", DAILY_RUNS)
    times, counts, compactions, bars = [], [], 0, []
    for f in files[hist:]:
        os.sync()
        t = time.perf_counter()
        res = st.update(str(f))
        times.append(time.perf_counter() - t)
        counts.append(count_files(work))
        compactions += getattr(res.report, "compactions", 0)
        bars.append(res.report.bars_processed)
    with st.catalog.env.read() as txn:
        n_batches = sum(1 for _ in rc.batches(st.catalog, txn))
    out = {"times": times, "counts": counts, "final": counts[-1], "compactions": compactions,
           "batches": n_batches, "bars": bars, "mdb": os.path.getsize(
               work / "catalog" / "data.mdb"), "files": len(files) - hist}
    drop(work)
    return out


def profile_update(src: Path, newday: Path, top: int = 15) -> str:
    work = BASE / "work-profile"
    copy_store(src, work)
    st = incbt.open(str(work))
    os.sync()
    pr = cProfile.Profile()
    pr.enable()
    st.update(str(newday))
    pr.disable()
    drop(work)
    buf = io.StringIO()
    ps = pstats.Stats(pr, stream=buf).sort_stats("cumulative")
    ps.print_stats(r"incbt[/\\]", top)
    return buf.getvalue()


# -- main ------------------------------------------------------------------
def fmt_s(s: float) -> str:
    return f"{s * 1e3:,.0f} ms" if s < 10 else f"{s:,.1f} s"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


LEADERBOARD = ("SELECT r.run_id, r.p_fast, r.p_slow, m.sharpe, m.total_pnl FROM runs r "
               "JOIN metrics m USING (run_id) WHERE m.scope = 'portfolio' "
               "ORDER BY m.sharpe DESC LIMIT 10")


def sql_over_results(store: Path, repeats: int) -> dict:
    """Best-of times of a leaderboard query (every run's portfolio metrics, joined with the
    runs) through ``store.sql``, and of one run's ``run.metrics``, on the store as built."""
    s = incbt.open(str(store))
    s.sql(LEADERBOARD)  # DataFusion imported and warm
    out: dict = {"rows": s.sql("SELECT count(*) AS n FROM metrics")["n"][0].as_py()}
    lead, one = [], []
    rid = s.sql(LEADERBOARD)["run_id"][0].as_py()
    for _ in range(repeats):
        t = time.perf_counter()
        s.sql(LEADERBOARD)
        lead.append(time.perf_counter() - t)
        t = time.perf_counter()
        out["run_rows"] = s.run(rid).metrics.num_rows
        one.append(time.perf_counter() - t)
    out["leaderboard"], out["run_metrics"] = min(lead), min(one)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instruments", type=int, default=100)
    ap.add_argument("--days-1y", type=int, default=252)
    ap.add_argument("--days-4y", type=int, default=1008)
    ap.add_argument("--repeats", type=int, default=3, help="in-process updates, best of")
    ap.add_argument("--full-repeats", type=int, default=2, help="full recomputes, best of")
    ap.add_argument("--cli-repeats", type=int, default=3)
    ap.add_argument("--correction-back", type=int, default=21,
                    help="trading days between the corrected day and the last day")
    ap.add_argument("--seed-instruments", type=int, default=500)
    ap.add_argument("--seed-days", type=int, default=60, help="history of the seed-scale store")
    ap.add_argument("--seed-runs", type=int, default=100, choices=(20, 100))
    ap.add_argument("--daily-instruments", type=int, default=20)
    ap.add_argument("--daily-history", type=int, default=20)
    ap.add_argument("--daily-updates", type=int, default=250)
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes for a smoke run (implies --no-readme)")
    ap.add_argument("--profile", action="store_true",
                    help="also print the cProfile top 15 (cumulative, incbt/) of an update")
    ap.add_argument("--no-readme", action="store_true", help="print only")
    a = ap.parse_args()
    if a.quick:
        a.instruments, a.days_1y, a.days_4y = 10, 30, 120
        a.repeats, a.full_repeats, a.cli_repeats, a.correction_back = 2, 1, 1, 5
        a.seed_instruments, a.seed_days, a.seed_runs = 20, 10, 20
        a.daily_instruments, a.daily_history, a.daily_updates = 4, 5, 20
        a.no_readme = True
    t_all = time.perf_counter()
    load = os.getloadavg()[0]
    state = git_state()
    BASE.mkdir(parents=True, exist_ok=True)
    n, d1, d4 = a.instruments, a.days_1y, a.days_4y
    log(f"code {CODE}; data and stores under {BASE}")

    # build (or reuse) everything first
    log("data and stores:")
    new1, new4 = one_day(n, d1 + 1, d1), one_day(n, d4 + 1, d4)
    fix_index = d1 - 1 - a.correction_back
    fix1 = one_day(n, d1, fix_index, revise=True)
    s1 = runs_store(n, d1, GRID20)
    s4 = runs_store(n, d4, GRID20)
    grid_seed = GRID100[:a.seed_runs] if a.seed_runs == 100 else GRID20
    sd = a.seed_days
    new_seed = one_day(a.seed_instruments, sd + 1, sd)
    s_seed = runs_store(a.seed_instruments, sd, grid_seed)
    bars1 = bars_store(n, d1)
    t_built = time.perf_counter() - t_all
    work = BASE / "work"

    # 1 + 2: in-process updates on fresh copies, interleaved; full recomputes
    log("warm-up update (imports, kernel cache)")
    update_once(s1, work, [new1])
    u1, u4, fx = [], [], []
    for r in range(a.repeats):
        u1.append(update_once(s1, work, [new1]))
        u4.append(update_once(s4, work, [new4]))
        fx.append(update_once(s1, work, [fix1]))
        log(f"  repeat {r + 1}: 1y {u1[-1]['s']:.3f} s, 4y {u4[-1]['s']:.3f} s, "
            f"correction {fx[-1]['s']:.3f} s")
    fulls = []
    for r in range(a.full_repeats):
        fulls.append(full_recompute(bars1, work, GRID20))
        log(f"  full recompute {r + 1}: {fulls[-1]['s']:.3f} s, {fulls[-1]['bars']:,} bar-steps")
    b1, b4, bf, full = best(u1), best(u4), best(fx), best(fulls)
    for u in (*u1, *u4):
        assert u["days_new"] == n and not u["errors"], u
    for u in fx:
        assert u["days_corrected"] == n and not u["errors"], u

    # 3: the CLI, and the split at the seed scale in-process
    log("CLI updates")
    imp = import_time(a.cli_repeats)
    cli1 = cli_update(s1, work, new1, a.cli_repeats)
    cli_s = cli_update(s_seed, work, new_seed, a.cli_repeats)
    useed = [update_once(s_seed, work, [new_seed]) for _ in range(a.repeats)]
    bseed = best(useed)
    log(f"  import {imp:.3f} s; 100x20 {min(cli1):.3f} s; seed {min(cli_s):.3f} s; "
        f"seed in-process {bseed['s']:.3f} s")

    # 4: snapshots and catalog size
    sn4, sn1 = snapshots_of(s4), snapshots_of(s1)

    # 6: SQL over the seed-scale store's results
    sq = sql_over_results(s_seed, a.repeats)
    log(f"  leaderboard {sq['leaderboard']:.4f} s; one run's metrics {sq['run_metrics']:.4f} s")

    # 5: 250 daily updates
    log(f"{a.daily_updates} daily updates")
    dly = daily_updates(a.daily_instruments, a.daily_history, a.daily_updates)
    log(f"  final files {dly['final']}, compactions {dly['compactions']}")

    prof = profile_update(s1, new1) if a.profile else ""
    total = time.perf_counter() - t_all

    # -- report -----------------------------------------------------------
    text = report(a, {
        "b1": b1, "b4": b4, "bf": bf, "full": full, "bseed": bseed, "cli1": cli1,
        "cli_s": cli_s, "sn1": sn1, "sn4": sn4, "dly": dly, "grid_seed": grid_seed,
        "fix_index": fix_index, "imp": imp, "total": total, "t_built": t_built,
        "load": load, "state": state, "sq": sq})
    log("")
    log(text)
    if prof:
        log(f"\ncProfile of store.update(new day), {n} instruments x {len(GRID20)} runs, "
            f"{d1} days:\n" + prof)
    if not a.no_readme:
        update_readme("update", "## Incremental updates: one new day, one correction\n\n"
                      + text)


def years(days: int) -> str:
    y = days / 252
    return f"{y:.3g} year" + ("" if y == 1 else "s")


def ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def month_position(days: int, index: int) -> tuple[str, int]:
    """Trading day ``index``'s date and how many trading days of its month precede it."""
    ds = [day_to_iso(x) for x in trading_days(max(days, index + 1))]
    return ds[index], sum(1 for x in ds[:index] if x[:7] == ds[index][:7])


def git_state() -> str:
    def git(*args: str) -> str:
        p = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return p.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "?"
    dirty = bool(git("status", "--porcelain", "--", "incbt"))
    return f"incbt at {head}" + (" + uncommitted changes" if dirty else "") + \
        f" (sources hash {CODE})"


def report(a: argparse.Namespace, v: dict[str, Any]) -> str:
    n, d1, d4, sd = a.instruments, a.days_1y, a.days_4y, a.seed_days
    b1, b4, bf, full, bseed = v["b1"], v["b4"], v["bf"], v["full"], v["bseed"]
    cli1, cli_s, sn1, sn4, dly = v["cli1"], v["cli_s"], v["sn1"], v["sn4"], v["dly"]
    runs_seed = len(v["grid_seed"])
    r41 = b4["s"] / b1["s"]
    ingest = ("ingest read+write", "ingest commit")
    rest1 = b1["s"] - sum(b1["split"][k] for k in ingest)
    rest4 = b4["s"] - sum(b4["split"][k] for k in ingest)
    r_full = full["s"] / b1["s"]
    fix_day, _ = month_position(d1, v["fix_index"])
    last_day, _ = month_position(d1, d1 - 1)
    new1, pos1 = month_position(d1 + 1, d1)
    new4, pos4 = month_position(d4 + 1, d4)
    per4 = sn4["runs"] * sn4["instruments"] * d4 / 252
    per1 = sn1["runs"] * sn1["instruments"] * d1 / 252
    first10 = statistics.median(dly["times"][:10])
    last10 = statistics.median(dly["times"][-10:])
    max_files = max(max(c) for c in dly["counts"])
    ok41 = r41 <= 1.2
    rows = [
        (f"1. append 1 day ({new1}) to {d1} days of history: `store.update(file)`",
         fmt_s(b1["s"]), f"{b1['bars']:,} bar-steps", ""),
        (f"1. append 1 day ({new4}) to {d4} days of history", fmt_s(b4["s"]),
         f"{b4['bars']:,} bar-steps", ""),
        (f"1. ratio {d4} / {d1} days of history (time)", f"**{r41:.2f}x**",
         f"<= 1.2 (without the ingest: {rest4 / rest1:.2f}x)", verdict(ok41)),
        (f"1. full recompute of the {len(GRID20)} runs over the {d1} days "
         "(`store.backtest` on a fresh store)", fmt_s(full["s"]),
         f"{full['bars']:,} bar-steps", ""),
        ("1. full recompute / update (time)", f"**{r_full:.1f}x**", ">= 100x",
         verdict(r_full >= 100)),
        (f"2. correction of {fix_day} ({a.correction_back} trading days before the last, "
         f"{last_day}), {d1}-day store: bar-steps", f"{bf['bars']:,}",
         f"full / correction: **{full['bars'] / bf['bars']:.1f}x** fewer", ""),
        ("2. correction: time", fmt_s(bf["s"]),
         f"full / correction: **{full['s'] / bf['s']:.1f}x**", ""),
        (f"3. CLI `incbt --store S update NEWDAY_FILE`, {n} instr. x {len(GRID20)} runs, "
         f"{d1}-day history", fmt_s(min(cli1)), "< 2 s", verdict(min(cli1) < 2)),
        (f"3. same, {a.seed_instruments} instr. x {runs_seed} runs, {sd}-day history",
         fmt_s(min(cli_s)), "< 5 s", verdict(min(cli_s) < 5)),
        (f"4. snapshots per run-instrument-year, {d4}-day store (default retention: every "
         f"day for the last {sn4['keep']} days and the rest of their oldest 16-day block, then "
         "one a month; portfolio snapshots included)",
         f"{sn4['snapshots'] / per4:.1f} ({sn4['snapshots']:,} in all)",
         f"252 without retention; {d1}-day store: {sn1['snapshots'] / per1:.1f}", ""),
        (f"4. catalog `data.mdb` bytes per run-instrument-year, {d4}-day store",
         f"{sn4['mdb'] / per4:,.0f} ({sn4['mdb'] / MB:,.1f} MiB)",
         f"of which the snapshots db {sn4['snap_bytes'] / per4:,.0f}; {d1}-day store: "
         f"{sn1['mdb'] / per1:,.0f} ({sn1['mdb'] / MB:,.1f} MiB)", ""),
        (f"5. result files after {dly['files']} daily updates "
         f"({a.daily_instruments} instr. x {len(DAILY_RUNS)} runs, from {a.daily_history} "
         "days)", f"daily {dly['final'][0]}, fills {dly['final'][1]}",
         f"most at any time {max_files}; {dly['batches']} batches live, "
         f"{dly['compactions']} compactions", ""),
        ("5. update time, first 10 / last 10 (median of each)",
         f"{fmt_s(first10)} / {fmt_s(last10)} (**{last10 / first10:.2f}x**)",
         f"median of all {fmt_s(statistics.median(dly['times']))}, slowest "
         f"{fmt_s(max(dly['times']))}", ""),
        (f"6. SQL on the {a.seed_instruments} x {runs_seed} store: the 10 best runs by "
         "portfolio Sharpe (`store.sql`: a session, the `metrics` table of "
         f"{v['sq']['rows']:,} rows, the join)", f"{v['sq']['leaderboard'] * 1e3:,.1f} ms",
         "in-process, best of the repeats", ""),
        (f"6. one run's metrics (`run.metrics`, {v['sq']['run_rows']} rows, read from the "
         "catalog)", f"{v['sq']['run_metrics'] * 1e3:,.1f} ms", "", ""),
    ]
    split_rows = []
    for label, b, cli in ((f"{n} x {len(GRID20)}, {d1} d", b1, min(cli1)),
                          (f"{n} x {len(GRID20)}, {d4} d", b4, None),
                          (f"{a.seed_instruments} x {runs_seed}, {sd} d", bseed, min(cli_s))):
        sp = b["split"]
        split_rows.append((label, *(f"{sp[c] * 1e3:,.0f}" for c in SPLIT),
                           f"{sp['total'] * 1e3:,.0f}",
                           f"{cli * 1e3:,.0f}" if cli is not None else "",
                           f"{(cli - sp['total']) * 1e3:,.0f}" if cli is not None else ""))
    return (
        f"Data: generated 1-minute bars (390 a day, seed {SEED}, weekdays from {START}), "
        f"Parquet; {n} instruments with {d1} days ({years(d1)}) and {d4} days "
        f"({years(d4)}) of history; runs: sma_cross fast {{5,10,15,20}} x slow "
        f"{{50,100,150,200,250}} ({len(GRID20)} runs over every instrument), notional "
        f"100,000, no fees. Seed scale: {a.seed_instruments} instruments x {sd} days of "
        f"history (not 5 years, to keep the build short: item 1 shows the history length "
        f"does not set the cost) x {runs_seed} runs (fast 5..50 step 5 x slow 60..240 step "
        "20). A bar-step is one bar for one run. In-process times are `store.update(file)` "
        f"wall time, best of {a.repeats} (full recomputes best of {a.full_repeats}, CLI "
        f"best of {a.cli_repeats}), each on a fresh copy of the store (Parquet files "
        "hard-linked, the catalog copied, `os.sync()` before timing), 1 and 4 years "
        f"interleaved. Machine: {machine()}, load average {v['load']:.1f} at the start; "
        f"{v['state']}. Run "
        f"{time.strftime('%Y-%m-%d')}, {v['total']:.0f} s in all ({v['t_built']:.0f} s "
        "building or finding data and stores).\n\n"
        + table(rows, ("measure", "measured", "reference / target", "goal"))
        + "\n\nWhere the time of one update goes, in ms (in-process, best repeat). "
        "Ingest: `res.ingest.seconds`; plan, commit (result files, snapshots, metrics, the "
        "event) and compaction: timed around incbt's functions; execute: the rest of "
        "`res.report.seconds` (reading bars and resume snapshots, running the kernels); "
        "other: the rest of `store.update`. CLI: `incbt --store S update NEWDAY_FILE`, "
        f"best of {a.cli_repeats}; a fresh process that only imports `incbt.cli` takes "
        f"{v['imp'] * 1e3:,.0f} ms.\n\n"
        + table(split_rows, ("store", *SPLIT, "in-process total", "CLI",
                             "CLI - in-process"))
        + f"\n\nThe new day is written as a small append file of its instrument-month (after "
        f"{d1} days it is the {ordinal(pos1 + 1)} trading day of its month, after {d4} days the "
        f"{ordinal(pos4 + 1)}; the month's earlier days, ingested in one file, are not "
        "rewritten: `incbt/bars/ingest.py` explains the size tiers that merge append files), "
        "so the ingest costs the same at any history length; \"without the ingest\" "
        "compares the rest.\n\n"
        "Command: `NUMBA_CACHE_DIR=/tmp/numba-cache .venv/bin/python "
        "benchmarks/bench_update.py` (`--quick` for a smoke run, `--profile` adds a "
        "cProfile of one update; data and stores are reused from `bench-out/update/` while "
        "sizes and incbt's sources are unchanged)"
    )


if __name__ == "__main__":
    main()
