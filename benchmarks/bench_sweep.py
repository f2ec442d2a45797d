"""Sweep benchmarks: a parameter grid in-process, on Ray, against vectorbt; resume; Ray costs.

    NUMBA_CACHE_DIR=/tmp/numba-cache .venv/bin/python benchmarks/bench_sweep.py
    NUMBA_CACHE_DIR=/tmp/numba-cache .venv/bin/python benchmarks/bench_sweep.py --quick
    NUMBA_CACHE_DIR=/tmp/numba-cache .venv/bin/python benchmarks/bench_sweep.py --profile

Side by side in one run (the machine is shared and noisy: read the ratios),
on generated 1-minute bars (``common.dataset``, Parquet, seed 42), default
100 instruments x 252 days (1 year of 390-bar days):

1. throughput of a 20-point sma_cross sweep (fast 5,10,15,20 x slow
   50,100,150,200,250, every instrument) in parameter-bar-steps per second:
   ``store.sweep`` in-process (the default executor at this size), on a local
   Ray with 1 worker and with 2 workers (``workers=``), and vectorbt on the
   same grid and bars (``peers/vbt_peer.py`` via ``bench_engine.vbt_peer``,
   in ``.venv-bench``). Each Ray configuration runs in its own fresh process
   (``ray.init`` is once per process): the sweep call alone is timed, Ray's
   start-up (``ray.init``, and the first small sweep, which starts and warms
   the worker processes) is reported apart. Rounds interleave the
   configurations (in-process, Ray 1, Ray 2, vectorbt); best of the rounds;
2. resume: a 20-point sweep, then the same name with ``resume=True`` and a
   25-point grid (fast 25 added): time and bar-steps against the 25-point
   sweep from scratch;
3. Ray's start-up and per-task overhead on a small sweep (10 instruments x
   20 days x 4 points, in-process against Ray 2 workers minus start-up), and
   Ray 2 workers against in-process at four plan sizes: where Ray pays off,
   compared with ``incbt.sweep.RAY_THRESHOLD``.

Every timed sweep runs on a fresh copy of a store whose bars are ingested and
which holds no runs (item 2's resume: a copy of a store holding the 20-point
sweep): ``shutil.copytree``, Parquet files hard-linked (immutable, replaced
by rename), the catalog copied; ``os.sync()`` before each timed call. Each
sweep's wall time is split into phases by timing incbt's own functions
(register, plan, commit, compaction, the executor's results) and, on Ray, the
workers' task events (``ray.timeline``). The README section ``sweep`` gets
the tables (not with ``--quick`` or ``--no-readme``).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import json
import math
import os
import pstats
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/numba-cache")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (  # noqa: E402
    OUT,
    code_hash,
    dataset,
    link_or_copy,
    machine,
    require_vbt,
    table,
    update_readme,
)

import incbt  # noqa: E402

ROOT = HERE.parent
WORK = OUT / "sweep"
FAST, SLOW = [5, 10, 15, 20], [50, 100, 150, 200, 250]
GRID20 = {"fast": FAST, "slow": SLOW}
GRID25 = {"fast": [*FAST, 25], "slow": SLOW}
GRID4 = {"fast": [5, 10], "slow": [50, 100]}
SETS20 = [(f, s) for f in FAST for s in SLOW]  # the vectorbt peer's order
NOTIONAL = 100000.0
SMALL = (10, 20)  # the small sweep's instruments x days
RAY_TEMP = f"/tmp/incbt-bsweep-{os.getuid()}"  # short: Ray's socket paths have a limit


# ----------------------------------------------------------------------------- stores


def base_store(name: str, make: Callable[[Path], None]) -> Path:
    """A store made once by ``make`` (kept while incbt's sources are unchanged)."""
    d = WORK / f"{name}-c{CODE}"
    if not (d / ".complete").exists():
        for old in WORK.glob(f"{name}-c*"):
            shutil.rmtree(old, ignore_errors=True)
        make(d)
        (d / ".complete").touch()
    return d


def ingested(data: Path) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        incbt.init(str(d)).ingest(str(data))

    return make


_n = 0


def fresh(base: Path) -> str:
    """A fresh copy of ``base`` (not timed), flushed to disk."""
    global _n
    _n += 1
    dst = WORK / "work" / f"s{_n}"
    shutil.copytree(base, dst, copy_function=link_or_copy)
    (dst / ".complete").unlink(missing_ok=True)
    os.sync()
    return str(dst)


def drop(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


# ----------------------------------------------------------------------------- timing


class Phases:
    """Time incbt's own functions during one sweep (patched for the call, then restored).

    Exclusive phases of the driver's wall time: register, plan (with the dry
    run that picks the default executor), reading the catalog for the tasks
    (bars entries, resume states), the executor's results (time inside its
    ``map`` iterator: on Ray split into waiting on the workers, ``ray.wait`` +
    ``ray.get``, and submitting), commit, compaction; other: the rest.
    """

    def __init__(self) -> None:
        self.t: dict[str, float] = {}
        self.tasks = 0
        self._undo: list[tuple[Any, str, Any]] = []

    def _add(self, k: str, dt: float) -> None:
        self.t[k] = self.t.get(k, 0.0) + dt

    def _wrap(self, mod: Any, name: str, label: str) -> None:
        fn = getattr(mod, name)

        def timed(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self._add(label, time.perf_counter() - t)

        self._undo.append((mod, name, fn))
        setattr(mod, name, timed)

    def _wrap_map(self, cls: Any) -> None:
        fn = cls.map
        ph = self

        def map_(self_: Any, store: Any, tasks: Any, *a: Any, **kw: Any) -> Iterator[Any]:
            ph.tasks += len(tasks)
            it = fn(self_, store, tasks, *a, **kw)
            while True:
                t = time.perf_counter()
                try:
                    r = next(it)
                except StopIteration:
                    ph._add("map", time.perf_counter() - t)
                    return
                ph._add("map", time.perf_counter() - t)
                yield r

        self._undo.append((cls, "map", fn))
        cls.map = map_

    def __enter__(self) -> Phases:
        import incbt.results as results_mod
        import incbt.results.compact as compact_mod
        import incbt.runs as runs_mod
        import incbt.sweep as sweep_mod
        from incbt.execute.processes import ProcessExecutor
        from incbt.execute.ray_exec import RayExecutor

        self._wrap(sweep_mod, "register_many", "register")
        self._wrap(runs_mod, "plan_runs", "plan")
        self._wrap(runs_mod, "bar_source", "catalog")
        self._wrap(runs_mod, "resume_states", "catalog")
        self._wrap(runs_mod, "commit", "commit")
        self._wrap(results_mod.BatchFiles, "add", "rows")
        self._wrap(compact_mod, "compact_all", "compaction")
        self._wrap_map(runs_mod.LocalExecutor)
        self._wrap_map(ProcessExecutor)
        self._wrap_map(RayExecutor)
        if "ray" in sys.modules:
            import ray

            self._wrap(ray, "wait", "ray_wait")
            self._wrap(ray, "get", "ray_wait")
        return self

    def __exit__(self, *exc: object) -> None:
        for obj, name, fn in reversed(self._undo):
            setattr(obj, name, fn)
        self._undo.clear()

    def split(self, wall: float) -> dict[str, float]:
        t = dict(self.t)
        m = t.pop("map", 0.0) - t.get("catalog", 0.0)  # bar_source, resume_states: in map
        w = t.pop("ray_wait", None)
        if w is None:
            t["results"] = m
        else:
            t["results"] = w
            t["submit"] = m - w
        t["other"] = wall - sum(t.values())
        return t


class StopPartWay:
    """A progress reporter that interrupts the sweep, as Ctrl-C would (KeyboardInterrupt
    on the thread that drives it), once ``at`` bar-steps are done."""

    def __init__(self, at: int) -> None:
        self.at, self.n = at, 0

    def task(self, description: str, total: int | None) -> Any:
        rep = self

        class Task:
            def advance(self, n: int = 1) -> None:
                if description == "bar-steps":
                    rep.n += n
                    if rep.n >= rep.at:
                        raise KeyboardInterrupt

            def done(self) -> None:
                pass

        return Task()


def run_job(job: dict) -> dict:
    """One timed ``store.sweep`` call on the store at ``job['path']``."""
    s = incbt.open(job["path"])
    kw: dict[str, Any] = {"name": job.get("name", "bench"), "resume": job.get("resume", False)}
    if job.get("instruments"):
        kw["instruments"] = job["instruments"]
    if job.get("workers"):
        kw["workers"] = job["workers"]
    prof = cProfile.Profile() if job.get("profile") else None
    with Phases() as ph:
        t0 = time.time()
        t = time.perf_counter()
        if prof:
            prof.enable()
        if job.get("commit_bars"):
            from incbt.sweep import sweep

            r = sweep(s, "sma_cross", job["grid"], exec_params={"notional": NOTIONAL},
                      commit_bars=job["commit_bars"], **kw)
        else:
            r = s.sweep("sma_cross", job["grid"], notional=NOTIONAL, **kw)
        wall = time.perf_counter() - t
        if prof:
            prof.disable()
        t1 = time.time()
    out = {"s": wall, "steps": r.report.bars_processed, "tasks": ph.tasks,
           "planned_tasks": r.report.tasks, "commits": r.report.commits,
           "executor": r.executor, "errors": len(r.report.errors), "phases": ph.split(wall),
           "t0": t0, "t1": t1, "runs": len(r.run_ids)}
    if prof:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(20)
        out["profile"] = buf.getvalue()
    if job.get("drop", True):
        drop(job["path"])
    return out


def timeline_sums(ray: Any, jobs: list[dict]) -> None:
    """Add the workers' task events (sums of durations) inside each job's time window."""
    time.sleep(2.0)  # task events reach the GCS in batches, about every second
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events = ray.timeline()
    for j in jobs:
        sums: dict[str, float] = {}
        lo, hi = j["t0"] * 1e6, j["t1"] * 1e6
        for e in events:
            if e.get("ph") != "X" or not (lo <= float(e["ts"]) <= hi):
                continue
            name = str(e["name"])
            key = ("task" if name.endswith("._work") else name.removeprefix("task:"))
            sums[key] = sums.get(key, 0.0) + float(e["dur"]) / 1e6
        j["workers_t"] = sums


def child(cfg: dict) -> None:
    """A fresh process: start a local Ray with ``cfg['workers']``, run the jobs, report."""
    from incbt.execute.ray_exec import ensure_ray, shutdown

    t = time.perf_counter()
    ray = ensure_ray(cfg["workers"], temp_root=RAY_TEMP)
    init_s = time.perf_counter() - t
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if cpus != cfg["workers"]:
        raise RuntimeError(f"Ray has {cpus} CPUs, not {cfg['workers']}: another cluster?")
    done = [run_job(j) for j in cfg["jobs"]]
    timeline_sums(ray, [d for d, j in zip(done, cfg["jobs"], strict=True) if j.get("workers")])
    t = time.perf_counter()
    shutdown()
    print(json.dumps({"init_s": init_s, "shutdown_s": time.perf_counter() - t, "jobs": done}))


def sweep_statistics(path: str, rounds: int) -> dict:
    """Best-of-``rounds`` times of the swept store's statistics (``sweep.stats()``, over a
    window, a walk-forward) and of the walk-forward's folds done one window at a time, as
    without it (a leaderboard and a stats query per fold): they must agree, bit for bit."""
    s = incbt.open(path)
    sw = s.sweeps()["bench"]
    days = sorted({str(d) for d in s.sql("SELECT DISTINCT date FROM daily")["date"].to_pylist()})
    out: dict[str, list[float]] = {"whole": [], "window": [], "wf": [], "naive": []}
    for _ in range(rounds):
        t = time.perf_counter()
        sw.stats()
        out["whole"].append(time.perf_counter() - t)
        t = time.perf_counter()
        sw.stats(start=days[60], end=days[122])
        out["window"].append(time.perf_counter() - t)
        t = time.perf_counter()
        wf = sw.walk_forward(60, 20).to_pylist()
        out["wf"].append(time.perf_counter() - t)
        t = time.perf_counter()
        each = []
        for f in wf:
            lead = sw.leaderboard("sharpe", 1, start=f["train_start"], end=f["train_end"])
            chosen = lead["run_id"][0].as_py()
            test = sw.stats(start=f["test_start"], end=f["test_end"]).to_pylist()
            each.append((chosen, next(r for r in test if r["run_id"] == chosen)))
        out["naive"].append(time.perf_counter() - t)
        for f, (chosen, row) in zip(wf, each, strict=True):
            cols = list(row)[list(row).index("total_pnl"):]
            if f["run_id"] != chosen or any(f[c] != row[c] for c in cols):
                raise RuntimeError(f"walk-forward fold {f['fold']} differs from its windows")
    return {k: min(v) for k, v in out.items()}


def in_child(workers: int, jobs: list[dict]) -> dict:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # a local Ray of our own, never someone's cluster
    p = subprocess.run([sys.executable, __file__, "--child",
                        json.dumps({"workers": workers, "jobs": jobs})],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"Ray child failed:\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


_SPIN = ("import time\nt = time.perf_counter()\nsum(i * i for i in range(6_000_000))\n"
         "print(time.perf_counter() - t)")


def cpu_scaling() -> float:
    """What 2 processes get from this machine now: 2 x t(1 alone) / t(2 at once).

    A pure-Python loop (no memory traffic, no I/O), each process timing itself:
    2.0 means two free cores; other tenants' load shows as less.
    """

    def spin(n: int) -> float:
        ps = [subprocess.Popen([sys.executable, "-c", _SPIN], stdout=subprocess.PIPE,
                               text=True) for _ in range(n)]
        return max(float(p.communicate()[0]) for p in ps)

    one = spin(1)
    return 2 * one / spin(2)


# ----------------------------------------------------------------------------- vectorbt


def export_for_peers(base: Path, tag: str) -> tuple[Path, list[str]]:
    """One Parquet file per instrument (bench_engine's export), made once."""
    import bench_engine

    s = incbt.open(str(base))
    insts = s.instruments()
    folder = WORK / f"parquet-{tag}"
    if not (folder / ".complete").exists():
        bench_engine.export_parquet([s.bars(i) for i in insts], folder)
        (folder / ".complete").touch()
    return folder, insts


def vbt_once(folder: Path, insts: list[str]) -> dict | None:
    """The vectorbt peer on the 20 sets, one repeat (rounds give the best of)."""
    import bench_engine

    bench_engine.REPEATS = 1
    return bench_engine.vbt_peer(folder, insts, [list(x) for x in SETS20])


def incbt_pnl(path: str, insts: list[str]) -> np.ndarray:
    """(20 sets, instruments) total PnL committed by the sweep in the store at ``path``."""
    s = incbt.open(path)
    t = s.sql("SELECT r.params, m.instrument, m.total_pnl FROM sweeps w JOIN runs r "
              "USING (run_id) JOIN metrics m USING (run_id) WHERE w.sweep = 'bench' AND "
              "m.scope = 'instrument'").to_pydict()
    col = {i: j for j, i in enumerate(insts)}
    row = {x: k for k, x in enumerate(SETS20)}
    out = np.full((len(SETS20), len(insts)), np.nan)
    for p, i, v in zip(t["params"], t["instrument"], t["total_pnl"], strict=True):
        d = json.loads(p)
        out[row[(d["fast"], d["slow"])], col[i]] = v
    return out


def vbt_agreement(folder: Path, insts: list[str], ref: np.ndarray, pnl: np.ndarray) -> str:
    import bench_engine
    from peers import pandas_peer

    _, c = pandas_peer.load(str(folder), insts)
    ties = np.array([[bench_engine.exact_ties(c[i].to_numpy(), f, s) or 0 for i in insts]
                     for f, s in SETS20])
    a = bench_engine.agreement(pnl, ref, ties)
    return bench_engine.agreement_text("vectorbt", a) + (
        "" if bench_engine.agreement_ok(a) else " — NOT explained by exact ties")


# ----------------------------------------------------------------------------- report


def ms(t: float) -> str:
    if t < 0.01:
        return f"{t * 1e3:.2f} ms"
    return f"{t * 1e3:,.0f} ms" if t < 10 else f"{t:,.1f} s"


def mps(steps: float, t: float) -> str:
    return f"{steps / t / 1e6:,.1f} M"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def best(jobs: list[dict]) -> dict:
    return min(jobs, key=lambda j: j["s"])


def crossover(points: list[tuple[int, float]]) -> float | None:
    """Plan size where t_ray / t_inproc falls through 1 (log-linear interpolation)."""
    pts = sorted(points)
    for (x0, r0), (x1, r1) in zip(pts, pts[1:], strict=False):
        if r0 > 1 >= r1:
            f = (r0 - 1) / (r0 - r1)
            return math.exp(math.log(x0) + f * (math.log(x1) - math.log(x0)))
    if pts and pts[0][1] <= 1:
        return float(pts[0][0])  # at or below the smallest size measured
    return None


def extrapolate(points: list[tuple[int, float]]) -> float | None:
    """Where a log-linear fit of the two largest sizes' ratios would reach 1 (trend only)."""
    pts = sorted(points)[-2:]
    if len(pts) < 2 or pts[1][1] >= pts[0][1]:
        return None
    (x0, r0), (x1, r1) = pts
    slope = (r1 - r0) / (math.log(x1) - math.log(x0))
    return math.exp(math.log(x1) + (1 - r1) / slope)


PHASES = [("register", "register runs"), ("plan", "plan (+ dry-run estimate)"),
          ("catalog", "read catalog for tasks"), ("submit", "Ray: submit, serialize"),
          ("results", "waiting for results (read bars + compute)"),
          ("rows", "writing result rows as they arrive (driver)"), ("commit", "commit"),
          ("compaction", "compaction"), ("other", "other")]


def phase_rows(cols: list[tuple[str, dict]]) -> list[tuple[str, ...]]:
    rows = [(label, *(ms(j["phases"][k]) if k in j["phases"] else "" for _, j in cols))
            for k, label in PHASES]
    rows.append(("**sweep wall time**", *(f"**{ms(j['s'])}**" for _, j in cols)))
    rows.append(("serial driver work (register, plan, catalog, commit, compaction), share",
                 *(f"{sum(j['phases'].get(k, 0) for k in ('register', 'plan', 'catalog', 'commit', 'compaction')) / j['s']:.0%}"  # noqa: E501
                   for _, j in cols)))
    rows.append(("tasks executed", *(str(j["tasks"]) for _, j in cols)))

    def wk(j: dict, key: str) -> str:
        w = j.get("workers_t")
        return "" if w is None else ms(w.get(key, 0.0))

    rows.append(("workers: task execution (read bars + compute), summed",
                 *(wk(j, "execute") for _, j in cols)))
    rows.append(("workers: argument deserialisation + result storing, summed",
                 *("" if j.get("workers_t") is None else
                   ms(j["workers_t"].get("deserialize_arguments", 0.0)
                      + j["workers_t"].get("store_outputs", 0.0)) for _, j in cols)))
    rows.append(("workers busy (execution / (workers x wall))",
                 *("" if j.get("workers_t") is None else
                   f"{j['workers_t'].get('execute', 0.0) / (j['workers'] * j['s']):.0%}"
                   for _, j in cols)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--instruments", type=int, default=100)
    ap.add_argument("--days", type=int, default=252)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best of)")
    ap.add_argument("--vbt-rounds", type=int, default=2,
                    help="rounds that also run vectorbt (~1 min each at the default size)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 10 instruments x 20 days, 1 round; no README")
    ap.add_argument("--no-vbt", action="store_true")
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--profile", action="store_true",
                    help="also: Ray 2 workers with commits every 1/8 of the plan, and a "
                         "cProfile of the driver (printed, not in the README)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(json.loads(a.child))
        return
    if a.quick:
        a.instruments, a.days, a.rounds, a.vbt_rounds = 10, 20, 1, 1
        a.no_readme = True
    require_vbt(a.no_vbt, not a.no_readme)
    t_all = time.perf_counter()
    load0 = os.getloadavg()
    shutil.rmtree(WORK / "work", ignore_errors=True)
    (WORK / "work").mkdir(parents=True)
    tag = f"{a.instruments}x{a.days}"
    base = base_store(f"base-{tag}", ingested(dataset(a.instruments, a.days, fmt="parquet")))
    small = base_store(f"base-{SMALL[0]}x{SMALL[1]}",
                       ingested(dataset(*SMALL, fmt="parquet")))
    have_vbt = not a.no_vbt and all(p.exists() for p in (
        ROOT / ".venv-bench" / "bin" / "python", HERE / "bench_engine.py",
        HERE / "peers" / "vbt_peer.py"))  # the engine benchmark's peer and helpers
    folder, insts = export_for_peers(base, tag) if have_vbt else (None, [])
    insts10 = incbt.open(str(base)).instruments()[:10]
    t_setup = time.perf_counter() - t_all
    print(f"data {tag}, stores ready ({t_setup:.0f} s)", flush=True)

    def small_job(workers: int | None) -> dict:
        return {"path": fresh(small), "grid": GRID4, "workers": workers}

    run_job(small_job(None))  # warm up this process: kernels from the Numba cache, imports

    # 1. throughput, interleaved rounds; the Ray children also measure start-up
    inproc: list[dict] = []
    ray: dict[int, list[dict]] = {1: [], 2: []}
    cold: dict[int, list[dict]] = {1: [], 2: []}
    inits: dict[int, list[float]] = {1: [], 2: []}
    vbt: list[dict] = []
    ref_pnl = None
    scaling: list[float] = []
    for rnd in range(a.rounds):
        keep = rnd == 0 and have_vbt  # the first in-process results: the PnL reference
        path = fresh(base)
        j = run_job({"path": path, "grid": GRID20, "drop": not keep})
        if keep:
            ref_pnl = incbt_pnl(path, insts)
            drop(path)
        inproc.append(j)
        print(f"round {rnd + 1}: in-process {ms(j['s'])}", flush=True)
        scaling.append(cpu_scaling())  # the machine's own 2-process scaling, side by side
        for w in (1, 2):
            c = in_child(w, [small_job(w), {"path": fresh(base), "grid": GRID20, "workers": w}])
            inits[w].append(c["init_s"])
            cold[w].append(c["jobs"][0])
            ray[w].append(c["jobs"][1] | {"workers": w})
            print(f"round {rnd + 1}: Ray {w} worker(s) {ms(c['jobs'][1]['s'])} "
                  f"(ray.init {ms(c['init_s'])}, first small sweep {ms(c['jobs'][0]['s'])})",
                  flush=True)
        if have_vbt and rnd < a.vbt_rounds:
            assert folder is not None
            v = vbt_once(folder, insts)
            if v is not None:
                vbt.append(v)
                print(f"round {rnd + 1}: vectorbt compute {ms(v['compute_s'])}, "
                      f"read {ms(v['read_s'])}", flush=True)

    # 2. resume: 20 points, then 25 with resume=True, against 25 from scratch
    def make20(d: Path) -> None:
        shutil.copytree(base, d, copy_function=link_or_copy)
        (d / ".complete").unlink(missing_ok=True)
        incbt.open(str(d)).sweep("sma_cross", GRID20, name="bench", notional=NOTIONAL)

    swept = base_store(f"swept20-{tag}", make20)
    resumed: list[dict] = []
    scratch: list[dict] = []
    for _ in range(a.rounds):
        resumed.append(run_job({"path": fresh(swept), "grid": GRID25, "resume": True}))
        scratch.append(run_job({"path": fresh(base), "grid": GRID25}))
    print(f"resume {ms(best(resumed)['s'])}, from scratch {ms(best(scratch)['s'])}",
          flush=True)

    # 2b. a 20-point sweep interrupted half-way (commits every tenth of it), finished with
    # resume=True: the rest should cost what it costs in an uninterrupted sweep
    def make_stopped(d: Path) -> None:
        from incbt.sweep import sweep

        shutil.copytree(base, d, copy_function=link_or_copy)
        (d / ".complete").unlink(missing_ok=True)
        total = a.instruments * a.days * 390 * len(SETS20)
        try:
            sweep(incbt.open(str(d)), "sma_cross", GRID20, name="bench",
                  exec_params={"notional": NOTIONAL}, commit_bars=max(1, total // 10),
                  progress=StopPartWay(total // 2))
        except KeyboardInterrupt:
            return
        raise RuntimeError("the sweep to interrupt finished")

    stopped = base_store(f"stopped20-{tag}", make_stopped)
    finished = [run_job({"path": fresh(stopped), "grid": GRID20, "resume": True})
                for _ in range(a.rounds)]
    print(f"finish an interrupted sweep {ms(best(finished)['s'])} "
          f"({best(finished)['steps']:,} bar-steps)", flush=True)
    # verify: the 20 runs recomputed in memory and compared with the store, once
    vpath = fresh(swept)
    t = time.perf_counter()
    vrep = incbt.open(str(vpath)).verify()
    verify_s = time.perf_counter() - t
    if not vrep.ok:
        raise RuntimeError(f"verify of the swept store failed: {vrep.differences[:3]}")
    print(f"verify {ms(verify_s)} ({vrep.rows_compared:,} rows)", flush=True)
    stat = sweep_statistics(str(vpath), a.rounds)
    print(f"walk-forward {ms(stat['wf'])}, the same per window {ms(stat['naive'])}", flush=True)

    # 3. plan sizes, in-process against Ray 2 workers, interleaved in one Ray process
    sizes = [("A", small, None, GRID4), ("B", base, insts10, GRID4), ("C", base, None, GRID4)]
    jobs: list[dict] = []
    for _ in range(a.rounds):
        for key, st, ins, grid in sizes:
            for w in (None, 2):
                jobs.append({"path": fresh(st), "grid": grid, "instruments": ins, "workers": w,
                             "size": key})
    # first: warm this process (in-process) and start the workers (Ray, cold: start-up)
    c3 = in_child(2, [small_job(None) | {"size": "warm"}, small_job(2) | {"size": "cold"},
                      *jobs])
    cold[2].append(c3["jobs"][1])
    c3["jobs"] = c3["jobs"][2:]
    for j, done in zip(jobs, c3["jobs"], strict=True):
        done["size"], done["ray"] = j["size"], bool(j["workers"])
        if j["workers"]:
            done["workers"] = 2
    inits[2].append(c3["init_s"])

    def pick(key: str, on_ray: bool) -> dict:
        return best([d for d in c3["jobs"] if d["size"] == key and d["ray"] == on_ray])

    plan = [(key, pick(key, False), pick(key, True)) for key, *_ in sizes]
    plan.append(("D", best(inproc), best(ray[2])))

    prof_out = ""
    if a.profile:
        cb = max(best(inproc)["steps"] // 8, 1)
        pj = [{"path": fresh(base), "grid": GRID20, "workers": 2, "commit_bars": cb}
              for _ in range(a.rounds)]
        pj.append({"path": fresh(base), "grid": GRID20, "workers": 2, "profile": True})
        cp = in_child(2, [small_job(2), *pj])
        bcb = best(cp["jobs"][1:-1]) | {"workers": 2}
        prof_out = (f"Ray 2 workers, commit every {cb:,} bar-steps: {ms(bcb['s'])} "
                    f"({bcb['commits']} commits)\n"
                    + table(phase_rows([("Ray 2, default", best(ray[2])),
                                        ("Ray 2, commits every 1/8", bcb)]),
                            ("phase", "default commits", "every 1/8"))
                    + "\n\ncProfile of the driver, Ray 2 workers:\n" + cp["jobs"][-1]["profile"])
    wall = time.perf_counter() - t_all
    load1 = os.getloadavg()

    # ------------------------------------------------------------------ text
    from incbt.sweep import RAY_THRESHOLD

    b_in, b_r1, b_r2 = best(inproc), best(ray[1]), best(ray[2])
    steps = b_in["steps"]
    for j in (b_r1, b_r2):
        assert j["steps"] == steps, "every configuration computes the same bar-steps"
    n_bars = steps // len(SETS20)
    agree = ""
    rows = [
        (f"incbt `store.sweep` on this machine (the default for this plan: "
         f"{b_in['executor']})",
         mps(steps, b_in["s"]), ms(b_in["s"]), ""),
        ("incbt `store.sweep(workers=1)`, local Ray", mps(steps, b_r1["s"]), ms(b_r1["s"]),
         f"start-up apart: ray.init {ms(min(inits[1]))}"),
        ("incbt `store.sweep(workers=2)`, local Ray", mps(steps, b_r2["s"]), ms(b_r2["s"]),
         f"start-up apart: ray.init {ms(min(inits[2]))}"),
    ]
    goals = []
    if vbt:
        vc = min(v["compute_s"] for v in vbt)
        vr = min(v["read_s"] for v in vbt)
        rows += [
            (f"vectorbt {vbt[0]['version']} `from_orders`, compute only (20 sets in a loop)",
             mps(steps, vc), ms(vc), ""),
            (f"vectorbt {vbt[0]['version']}, read Parquet + compute", mps(steps, vr + vc),
             ms(vr + vc), f"read {ms(vr)}"),
        ]
        goals += [
            ("incbt without Ray (the default) vs vectorbt compute only (speed)",
             f"{vc / b_in['s']:.1f}x",
             ">= 20x", verdict(vc / b_in["s"] >= 20)),
            ("incbt without Ray (the default) vs vectorbt read + compute (speed)",
             f"{(vr + vc) / b_in['s']:.1f}x", ">= 20x", verdict((vr + vc) / b_in["s"] >= 20)),
            ("incbt Ray 2 workers vs vectorbt compute only (speed)", f"{vc / b_r2['s']:.1f}x",
             ">= 20x", verdict(vc / b_r2["s"] >= 20)),
        ]
        if ref_pnl is not None:
            agree = vbt_agreement(folder, insts, ref_pnl, np.asarray(vbt[0]["pnl"]))
    r21 = b_r1["s"] / b_r2["s"]
    goals.append(("Ray 2 workers vs Ray 1 worker (speed)", f"{r21:.2f}x", ">= 1.7x",
                  verdict(r21 >= 1.7)))
    goals.append(("for reference: 2 processes vs 1 on this machine during the run, a "
                  "pure-Python loop (speed)",
                  f"{max(scaling):.2f}x best, {float(np.median(scaling)):.2f}x median of "
                  f"{len(scaling)}", "2x on 2 free cores", ""))
    goals.append(("Ray 2 workers vs without Ray (speed)", f"{b_in['s'] / b_r2['s']:.2f}x", "",
                  ""))
    br, bs = best(resumed), best(scratch)
    goals.append((
        "resume: 20-point sweep + 5 points (`resume=True`, 25-point grid) vs 25 from scratch "
        "(time)", f"{br['s'] / bs['s']:.2f}x ({ms(br['s'])} / {ms(bs['s'])})",
        f"bar-steps: {br['steps'] / bs['steps']:.2f}x ({br['steps']:,} / {bs['steps']:,})", ""))
    bf = best(finished)
    per_bf, per_in = bf["s"] / bf["steps"], b_in["s"] / b_in["steps"]
    goals.append((
        "finish a 20-point sweep interrupted half-way (KeyboardInterrupt after 50% of its "
        "bar-steps, commits every 10%; `resume=True`): time per bar-step vs the "
        "uninterrupted sweep's", f"{per_bf / per_in:.2f}x ({ms(bf['s'])} for "
        f"{bf['steps']:,} bar-steps)",
        f"the sweep: {ms(b_in['s'])} for {b_in['steps']:,}; before 2026-12-05 each run "
        "re-read every results file to refold its portfolio (at a3a01bf, the same stopped "
        "store, best of 3: 820 ms, 1.56x)", ""))
    goals.append((
        "`verify` of the 20-point sweep (every run recomputed in memory, compared bit for bit "
        "with the store) vs the sweep (time)", f"{verify_s / b_in['s']:.1f}x ({ms(verify_s)} / "
        f"{ms(b_in['s'])})", f"{vrep.rows_compared:,} rows compared; before 2026-12-05 the "
        "store's rows of each chunk were gathered in sorted order before the comparison "
        "(at b59aaf2: 1,910 ms, 2.2x the sweep)", ""))
    goals.append((
        "the sweep's statistics: `sweep.stats()` (every run's, the stats query's values), "
        "over a window of 63 days, and a walk-forward of 10 folds "
        "(`sweep.walk_forward(60, 20)`) vs the same folds by a `leaderboard(start=, end=)` "
        "and a `stats(start=, end=)` per fold (time)",
        f"{stat['naive'] / stat['wf']:.1f}x faster ({ms(stat['wf'])} / {ms(stat['naive'])})",
        f"`sweep.stats()` {ms(stat['whole'])}, over 63 days {ms(stat['window'])}; the folds' "
        "choices and test rows identical, bit for bit", ""))
    speed = table(rows, ("20-point sweep, every instrument", "bar-steps/s", "wall time",
                         "note"))
    goal_table = table(goals, ("measure", "measured", "target / reference", "goal"))

    # start-up and overhead
    sm_in, sm_ray = pick("A", False), pick("A", True)
    cold_best = min(j["s"] for j in cold[2])
    init_best = min(inits[2])
    warmup = cold_best - sm_ray["s"]
    over = sm_ray["s"] - sm_in["s"]
    per_task = over / max(sm_ray["tasks"], 1)
    startup_rows = [
        ("`ray.init` (local, 1 or 2 workers; fresh process each)",
         f"{ms(min(inits[1] + inits[2]))} best, {ms(float(np.median(inits[1] + inits[2])))} "
         f"median of {len(inits[1] + inits[2])}", ""),
        ("first small sweep after `ray.init`, 2 workers (starts and warms the workers)",
         f"{ms(cold_best)} best of {len(cold[2])} (1 worker: {ms(min(j['s'] for j in cold[1]))})",
         f"worker warm-up: {ms(warmup)} over a warm sweep"),
        (f"small sweep ({SMALL[0]} instr. x {SMALL[1]} days x 4 points, {sm_in['steps']:,} "
         "bar-steps), in-process", ms(sm_in["s"]), f"{sm_in['tasks']} tasks"),
        ("same, Ray 2 workers, warm (start-up excluded)", ms(sm_ray["s"]),
         f"{sm_ray['tasks']} tasks"),
        ("Ray overhead on the warm small sweep (Ray - in-process)",
         f"{ms(over)} ({over / sm_ray['s']:.0%} of the Ray sweep)",
         f"{ms(per_task)} per task"),
        ("start-up (`ray.init` + worker warm-up) / small sweep in a fresh process "
         "(start-up + warm sweep)",
         f"{(init_best + warmup) / (init_best + cold_best):.0%}",
         f"{ms(init_best + warmup)} of {ms(init_best + cold_best)}; in-process "
         f"{ms(sm_in['s'])}: {(init_best + cold_best) / sm_in['s']:.0f}x"),
    ]
    startup = table(startup_rows, ("Ray start-up and overhead", "measured", "note"))

    names = {"A": f"{SMALL[0]} instr. x {SMALL[1]} days x 4 points",
             "B": f"10 instr. x {a.days} days x 4 points",
             "C": f"{a.instruments} instr. x {a.days} days x 4 points",
             "D": f"{a.instruments} instr. x {a.days} days x 20 points (item 1)"}
    pts = [(j_in["steps"], j_r["s"] / j_in["s"]) for _, j_in, j_r in plan]
    size_rows = [(names[k], f"{j_in['steps']:,}", ms(j_in["s"]), ms(j_r["s"]),
                  f"{j_r['s'] / j_in['s']:.2f}x") for k, j_in, j_r in plan]
    sizes_t = table(size_rows, ("plan", "bar-steps", "in-process", "Ray 2 workers (warm)",
                                "Ray / in-process (time)"))
    x = crossover(pts)
    ext = extrapolate(pts)
    largest = max(p[0] for p in pts)
    if x is not None and x <= largest:
        cross = (f"Ray 2 workers pays off above about {x:,.0f} bar-steps (log-linear "
                 "interpolation of the ratios; warm Ray, start-up excluded: add ray.init and "
                 "the worker warm-up once per process).")
        rec = f"{float(f'{x:.1g}'):,.0f}"
    else:
        lo_x, lo_r = min(pts, key=lambda p: p[1])
        trend = (f"the trend of the two largest plans reaches 1 near {ext:,.0f} bar-steps "
                 "(an extrapolation, not a measurement)" if ext is not None else
                 f"the ratio is lowest at {lo_x:,} bar-steps ({lo_r:.2f}x) and rises again "
                 "at the largest plan, whose commit (serial, in the driver) is the larger "
                 "part")
        cross = (f"Ray 2 workers does not pay off over in-process at any measured size (up "
                 f"to {largest:,} bar-steps): without Ray a sweep already uses every core "
                 f"({os.cpu_count()}: worker processes or threads, by the plan), so on one "
                 f"machine Ray adds serialisation and a driver process and no cores; "
                 f"{trend}.")
        rec = None
    # with start-up: a default Ray is started by the sweep itself (a fresh process, the CLI)
    (_, c_in, c_r), (_, d_in, d_r) = plan[-2], plan[-1]
    dx = d_in["steps"] - c_in["steps"]
    gain = ((d_in["s"] - c_in["s"]) - (d_r["s"] - c_r["s"])) / dx if dx > 0 else 0.0
    startup_s = init_best + warmup
    if gain > 0:
        even = d_in["steps"] + (startup_s + d_r["s"] - d_in["s"]) / gain
        cross += (f" Counting the start-up ({ms(startup_s)}: `ray.init` + worker warm-up, "
                  "paid by a sweep that starts Ray itself, as the default does), the two "
                  f"largest plans' costs per bar-step ({ms(gain * 1e9)} per 1e9 bar-steps "
                  f"less on Ray) break even near {max(even, 0):,.0f} bar-steps.")
    else:
        cross += (" Per bar-step, between the two largest plans Ray 2 workers is not cheaper "
                  "than in-process, so the start-up is never won back.")
    if RAY_THRESHOLD is None:
        cmp_ = ("`incbt.sweep.RAY_THRESHOLD` is None: a sweep uses Ray only when asked "
                "(`workers=`, `address=` or the `ray_threshold` setting). ")
    else:
        cmp_ = (f"`incbt.sweep.RAY_THRESHOLD` is {RAY_THRESHOLD:,} bar-steps (a sweep at or "
                "above it uses a local Ray by default). ")
    if rec is not None:
        cmp_ += f"Measured on this machine the switch point is about {rec}" + (
            "." if RAY_THRESHOLD is None else
            "; the threshold could come down to it." if x is not None and
            x < RAY_THRESHOLD / 2 else
            "; the threshold should go up to it." if x is not None and
            x > RAY_THRESHOLD * 2 else "; the threshold is about right.")
    else:
        cmp_ += ("No measured size favours a local Ray: on a machine like this one a local "
                 "Ray never helps, so it is not a default; it pays where it adds cores "
                 "(a cluster `address`).")

    phases_t = table(phase_rows([("in-process", b_in), ("Ray 1", b_r1), ("Ray 2", b_r2),
                                 ("resume", br), ("scratch", bs)]),
                     ("where the time of the best sweep goes", "20 points, no Ray (the default)",
                      "Ray 1 worker", "Ray 2 workers", "resume +5 points (no Ray)",
                      "25 points from scratch (no Ray)"))

    cmd = "NUMBA_CACHE_DIR=/tmp/numba-cache .venv/bin/python benchmarks/bench_sweep.py"
    if (a.instruments, a.days) != (100, 252):
        cmd += f" --instruments {a.instruments} --days {a.days}"
    if a.rounds != 3:
        cmd += f" --rounds {a.rounds}"
    if a.vbt_rounds != 2:
        cmd += f" --vbt-rounds {a.vbt_rounds}"
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        if subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "incbt"],
                          capture_output=True, text=True).stdout.strip():
            head += " + uncommitted changes"
    except OSError:
        head = "?"

    # why Ray 2 workers is not 2x Ray 1: the driver's work, serial or on the same cores
    def serial(j: dict) -> float:  # before the first result and after the last
        ph = j["phases"]
        return sum(ph.get(k, 0.0) for k in ("register", "plan", "catalog", "submit", "commit",
                                             "compaction"))

    s1 = serial(b_r1)
    rows1, rows2 = b_r1["phases"].get("rows", 0.0), b_r2["phases"].get("rows", 0.0)
    bound = b_r1["s"] / (s1 + (b_r1["s"] - s1) / 2)
    need = 2 / 1.7 - 1  # serial share of Ray 1's time that still allows 1.7x
    why = (
        (f"Why Ray 2 workers is {r21:.2f}x Ray 1 and not 1.7x: " if r21 < 1.7 else
         f"Ray 2 workers is {r21:.2f}x Ray 1: ")
        + "the driver works too. Its own work (register, plan, catalog reads, submitting, "
        "and its commits: the last after the last result, the others while the workers "
        "compute, on the same two cores) is "
        f"{ms(s1)} of Ray 1's {ms(b_r1['s'])} "
        f"({s1 / b_r1['s']:.0%}): with the rest halved exactly, 2 workers could reach "
        f"{bound:.2f}x (1.7x needs a serial share of at most {need:.0%}). "
        + (f"And while the workers compute, the driver encodes their result rows into the "
           f"batch files ({ms(rows1)} with 1 worker, {ms(rows2)} with 2): with 1 worker that "
           "runs on the second core, with 2 workers three busy processes share two cores. "
           if rows1 or rows2 else
           "The workers write their result rows themselves (since 2026-12-04; before, the "
           "driver encoded them beside the workers, 310-600 ms of this sweep, and 1 worker "
           "had the second core's help: 2 workers were 1.21-1.33x 1 worker). ")
        + "The workers' summed execution time grew from "
        f"{ms(b_r1.get('workers_t', {}).get('execute', 0.0))} to "
        f"{ms(b_r2.get('workers_t', {}).get('execute', 0.0))} (a pure-Python loop scaled "
        f"{float(np.median(scaling)):.2f}x on 2 processes meanwhile). "
        f"Resume: the 5 new points are {br['steps'] / bs['steps']:.0%} of the bar-steps but "
        f"{br['s'] / bs['s']:.0%} of the time; every instrument's bars are still read (the "
        f"waiting for results is {ms(br['phases']['results'])} against "
        f"{ms(bs['phases']['results'])} from scratch), while the commit shrinks with the runs "
        f"({ms(br['phases']['commit'])} against {ms(bs['phases']['commit'])})."
    )
    text = "\n".join([
        "## Sweeps: throughput, resume, Ray",
        "",
        f"Data: generated 1-minute bars (390 a day, seed 42), {a.instruments} instruments x "
        f"{a.days} days = {n_bars:,} bars. Grid: sma_cross fast {{5,10,15,20}} x slow "
        f"{{50,100,150,200,250}} (20 points), every instrument, notional {NOTIONAL:,.0f}, no "
        f"fees: {steps:,} bar-steps (one bar for one parameter set). Each timed sweep is one "
        "`store.sweep` call on a fresh copy of a store whose bars are ingested and which "
        "holds no runs; best of "
        f"{a.rounds} rounds, each round in-process, Ray 1 worker, Ray 2 workers"
        + (f" and vectorbt (in {len(vbt)} of them)" if vbt else "")
        + ", one after another. Each Ray configuration runs in a fresh process that starts "
        "its own local Ray (`workers=`), then a small sweep (which starts the worker "
        "processes), then the timed sweep: start-up is reported apart. vectorbt: "
        "`peers/vbt_peer.py` (one `from_orders` per parameter set, all instruments as "
        "columns) in `.venv-bench`, on one Parquet file per instrument exported from the "
        f"store. Machine: {machine()}, load average {load0[0]:.1f} at the start and "
        f"{load1[0]:.1f} at the end (other jobs share it); incbt at {head} (sources hash "
        f"{CODE}). Run {datetime.date.today().isoformat()}, {wall:.0f} s in all "
        f"({t_setup:.0f} s building or finding data and stores).",
        "",
        speed,
        "",
        goal_table,
        "",
        ("Agreement (total PnL per instrument, 20 sets, vectorbt against incbt's committed "
         f"metrics; max relative difference): {agree}. Differences at exact ties of the two "
         "means are explained in the engine section." if agree else ""),
        "",
        phases_t,
        "",
        "Driver phases are timed around incbt's functions (`incbt.sweep.register_many`, "
        "`incbt.runs.plan_runs`, `bar_source` + `resume_states`, `BatchFiles.add`, `commit`, "
        "`compact_all`, the executor's `map` iterator, and on Ray `ray.wait` + `ray.get`); "
        "workers' times are Ray's task events (`ray.timeline`) inside the sweep's window. "
        "Without Ray (the columns in-process, resume and scratch) the plan picks its "
        f"executor: here {b_in['executor']}. On worker processes (a plan reading at least "
        "`incbt.runs.PROCESSES_MIN_BARS` bars) each chunk of tasks is read, computed and "
        "written as a batch of its own by a worker, as on Ray, and the command renames the "
        "files in: waiting for results is then the workers' whole work. On threads, result "
        "rows are encoded into the batch's files as each result arrives (the threads read "
        "bars and compute ahead while the main thread writes rows). On Ray each worker call "
        "writes its rows as a "
        "batch of its own, inside the workers' task execution, and the driver renames the "
        "files in. A sweep commits (files made durable and renamed in, then the catalog "
        "transaction) in pieces as results arrive, in plan order: a piece once the results "
        "waiting for a commit reach `incbt.runs.commit_budget` (an eighth of an "
        "instrument's bars per run: memory does not grow with the universe) or "
        "`DEFAULT_COMMIT_BARS` bar-steps, the last after the last result "
        f"({b_in['commits']} pieces without Ray, {b_r1['commits']} on Ray 1 worker, "
        f"{b_r2['commits']} on 2). " + why,
        "",
        startup,
        "",
        sizes_t,
        "",
        cross + " " + cmp_,
        "",
        f"Command: `{cmd}` (`--quick` for a smoke run, `--profile` adds a driver profile "
        "and Ray with smaller commits; stores are reused from `bench-out/sweep/` while sizes "
        "and incbt's sources are unchanged)",
    ])
    text = text.replace("\n\n\n", "\n\n")
    print()
    print(text)
    if prof_out:
        print()
        print(prof_out)
    if not a.no_readme:
        update_readme("sweep", text)
    shutil.rmtree(WORK / "work", ignore_errors=True)


CODE = code_hash()

if __name__ == "__main__":
    main()
