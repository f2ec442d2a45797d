"""Sweeps on Ray: determinism, fault tolerance, a two-node cluster, errors per parameter set.

SEMANTICS.md "Deterministic": results do not depend on worker count, scheduling,
batching or executor. A sweep's ``daily``, ``fills`` and ``metrics`` are compared
bit for bit (``pa.Table.equals`` of ``SELECT * ... ORDER BY``) across executors
and against the same runs made one by one with ``store.backtest``.

Fault tolerance: a Ray worker SIGKILLed while it runs a task is retried by Ray and
the sweep's results are the uninterrupted ones; a driver SIGKILLed after its first
commit leaves a sweep that ``resume=True`` completes, computing exactly the bars of
the runs and instruments not committed before the kill.

One local Ray (2 CPUs) serves the whole session (``ray_support.ray_local``); the
two-node cluster (``ray.cluster_utils.Cluster``) runs in a child process so that
its Ray session does not clash with it. The slow workloads use ``slow_mean``, a
strategy whose step loops over its last n closes, so a sweep takes a couple of
seconds on little data: long enough to kill something in the middle of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import ray_support
from conftest import assert_files_are_the_catalogs, bits
from spikes import fragile

import incbt
from incbt.bars.generate import generate
from incbt.execute.ray_exec import RayExecutor
from incbt.runs import LocalExecutor, bring_up_to_date, register, resolve
from incbt.sweep import grid_points

pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("ray")]  # one worker: one Ray
ray_local = ray_support.ray_local  # the session's Ray (see ray_support)

QUERIES = {
    "daily": "SELECT * FROM daily ORDER BY run_id, instrument, date",
    "fills": "SELECT * FROM fills ORDER BY run_id, instrument, ts, qty, price",
    "metrics": "SELECT * FROM metrics ORDER BY run_id, scope, instrument",
}
SWEEPS = "SELECT sweep, run_id, strategy, point FROM sweeps ORDER BY sweep, point"
SWEEP_COMMITS = "SELECT count(*) AS n FROM events WHERE kind = 'sweep'"

STRATEGIES = '''\
import incbt


@incbt.strategy(params={"n": incbt.Param(int, default=50, min=2)}, state=(),
                warmup=lambda p: p["n"])
def slow_mean(p, s, o, h, l, c, v, i):
    """Long above the mean of the last n closes, short below: O(n) work a bar."""
    n = int(p[0])
    if i < n:
        return 0
    m = 0.0
    for j in range(i - n, i):
        m += c[j]
    return 1 if c[i] > m / n else -1

''' + fragile(500)

# 8 instruments x 40 days x 8 parameter sets = 998,400 bar-steps, ~2 s on 2 cores
SLOW_GRID = {"n": "1000:8000:1000"}
SLOW_GEN = dict(instruments=8, days=40, start="2024-01-02", seed=3)
# 3 instruments x 60 days x 465 parameter sets: a task per instrument holds ~10.9 M
# bar-steps, so with 2 workers the planner splits each in two (split_tasks), with one
# thread it does not: the split changes, the results must not
GRID = {"fast": "2:16:1", "slow": "20:140:4"}
GRID_GEN = dict(instruments=3, days=60, start="2024-01-02", seed=5)
FEE = 1.0


def _store(path, data) -> incbt.Store:
    s = incbt.init(str(path))
    s.ingest(str(data))
    return s


def results(store) -> dict[str, pa.Table]:
    """daily, fills and metrics, each in a total order."""
    return {k: store.sql(q) for k, q in QUERIES.items()}


def batches(store) -> dict[int, dict]:
    from incbt.catalog import runs as rc

    with store.catalog.env.read() as txn:
        return dict(rc.batches(store.catalog, txn))


def results_of(tables: dict[str, pa.Table], run_ids) -> dict[str, pa.Table]:
    """The rows of ``run_ids`` only (order kept)."""
    keep = pa.array(sorted(run_ids))
    return {k: t.filter(pc.is_in(t["run_id"], value_set=keep)) for k, t in tables.items()}


def assert_same(got: dict[str, pa.Table], want: dict[str, pa.Table]) -> None:
    for k in QUERIES:
        assert want[k].num_rows > 0, k
        assert got[k].schema == want[k].schema, k
        assert got[k].num_rows == want[k].num_rows, (k, got[k].num_rows, want[k].num_rows)
        assert bits(got[k]).equals(bits(want[k])), f"{k} differs"


@pytest.fixture(scope="module")
def strategies(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("strategies") / "ray_strategies.py"
    path.write_text(STRATEGIES)
    return str(path)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """The determinism workload and its in-process sweep (the reference)."""
    root = tmp_path_factory.mktemp("grid")
    generate(str(root / "data"), fmt="parquet", split="month", **GRID_GEN)
    s = _store(root / "ref", root / "data")
    r = s.sweep("sma_cross", GRID, name="g", fee_bps=FEE)
    # a plan this big goes to worker processes where the machine has cores for them
    assert r.executor in ("in this process", "in 2 processes") and not r.report.errors
    points, _ = grid_points(resolve("sma_cross", None)[0], GRID)
    assert len(points) == len(r.run_ids) == 465
    return SimpleNamespace(
        root=root,
        data=root / "data",
        points=points,
        report=r.report,
        run_ids=r.run_ids,
        tables=results(s),
        sweeps=s.sql(SWEEPS),
    )


@pytest.fixture(scope="module")
def slow(tmp_path_factory, strategies):
    """The slow workload and its uninterrupted in-process sweep (the reference)."""
    root = tmp_path_factory.mktemp("slow")
    generate(str(root / "data"), fmt="parquet", split="month", **SLOW_GEN)
    s = _store(root / "ref", root / "data")
    r = s.sweep("slow_mean", SLOW_GRID, name="s", strategies_file=strategies)
    assert r.executor == "in this process" and not r.report.errors
    assert r.report.bars_processed == 8 * 40 * 390 * 8
    return SimpleNamespace(data=root / "data", report=r.report, tables=results(s))


# -- determinism ------------------------------------------------------------------


@pytest.mark.parametrize(
    "how",
    [
        "ray-2-workers",
        "ray-1-in-flight-many-commits",
        "in-process-1-thread",
        "in-process-2-threads",
        "one-by-one",
    ],
)
def test_sweep_results_do_not_depend_on_the_executor(tmp_path, grid, how, request):
    s = _store(tmp_path / "s", grid.data)
    want = grid.tables
    if how == "ray-2-workers":
        request.getfixturevalue("ray_local")
        r = s.sweep("sma_cross", GRID, name="g", fee_bps=FEE, workers=2)
        assert r.executor == "ray" and not r.report.errors
        assert r.report.bars_processed == grid.report.bars_processed
        assert s.sql(SWEEPS).equals(grid.sweeps)
        # the workers wrote the rows: a batch per Ray call, committed as one group
        recs = batches(s)
        assert len(recs) > 1 and r.report.commits == 1
        assert {rec.get("group", b) for b, rec in recs.items()} == {min(recs)}
        assert_files_are_the_catalogs(s)
    elif how == "ray-1-in-flight-many-commits":
        # the session's Ray has 2 CPUs: one task in flight at a time is one worker;
        # a commit after every task makes as many batches as tasks
        request.getfixturevalue("ray_local")
        records = [register(s, "sma_cross", p, exec_params={"fee_bps": FEE}) for p in grid.points]
        assert [x.run_id for x in records] == grid.run_ids
        rep = bring_up_to_date(
            s,
            records,
            command="test",
            kind="sweep",
            executor=RayExecutor(window=1),
            commit_bars=1,
        )
        assert not rep.errors and rep.bars_processed == grid.report.bars_processed
        assert rep.commits >= 3  # a commit per task: at least one per instrument
        assert len(batches(s)) == rep.commits  # a Ray call of one task, a batch each
        assert_files_are_the_catalogs(s)
    elif how.startswith("in-process"):  # the default picks its threads by the tasks' work
        records = [register(s, "sma_cross", p, exec_params={"fee_bps": FEE}) for p in grid.points]
        ex = LocalExecutor(1 if how == "in-process-1-thread" else 2)
        rep = bring_up_to_date(s, records, command="test", kind="sweep", executor=ex)
        assert not rep.errors and rep.bars_processed == grid.report.bars_processed
    else:  # a sample of the runs, each its own backtest
        sample = grid.points[::67] + grid.points[-1:]
        ids = [s.backtest("sma_cross", p, fee_bps=FEE).run_id for p in sample]
        assert set(ids) <= set(grid.run_ids) and len(set(ids)) == len(sample) == 8
        want = results_of(want, ids)
    assert_same(results(s), want)


# -- fault tolerance --------------------------------------------------------------


def test_a_worker_killed_mid_sweep_is_retried(tmp_path, slow, strategies, ray_local):
    s = _store(tmp_path / "s", slow.data)
    out: dict = {}

    def run() -> None:
        try:
            out["result"] = s.sweep(
                "slow_mean", SLOW_GRID, name="s", strategies_file=strategies, workers=2
            )
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            out["error"] = exc

    th = threading.Thread(target=run, daemon=True)
    th.start()
    victim = ray_support.kill_a_busy_worker(ray_local.temp_root, th)
    th.join(180)
    assert not th.is_alive(), "the sweep did not finish after a worker was killed"
    assert victim is not None, "no worker was seen running a task: nothing was killed"
    assert "error" not in out, out.get("error")
    assert not ray_support.alive(victim)
    r = out["result"]
    assert r.executor == "ray" and r.report.errors == []
    assert r.report.bars_processed == slow.report.bars_processed
    assert_same(results(s), slow.tables)


def test_a_task_out_of_retries_is_reported_and_the_rest_completes(
    tmp_path, slow, strategies, ray_local
):
    s = _store(tmp_path / "s", slow.data)
    points, _ = grid_points(resolve("slow_mean", strategies)[0], SLOW_GRID)
    records = [register(s, "slow_mean", p, strategies_file=strategies) for p in points]
    out: dict = {}

    def run() -> None:
        try:
            out["report"] = bring_up_to_date(
                s, records, command="test", kind="sweep", executor=RayExecutor(retries=0)
            )
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            out["error"] = exc

    th = threading.Thread(target=run, daemon=True)
    th.start()
    victim = ray_support.kill_a_busy_worker(ray_local.temp_root, th)
    th.join(180)
    assert not th.is_alive(), "the sweep did not finish after a worker was killed"
    assert victim is not None, "no worker was seen running a task: nothing was killed"
    assert "error" not in out, repr(out.get("error"))
    rep = out["report"]
    # a task is one instrument with all 8 runs (no split at this size): 8 pairs not
    # computed (no strategy failed: said apart from failures), one instrument, whose rows
    # are missing; every other instrument's rows are complete
    lost = {e.split(":", 1)[0] for e in rep.not_run}
    assert len(rep.not_run) == 8 and len(lost) == 1 and rep.errors == [], rep.not_run
    assert rep.bars_processed == slow.report.bars_processed * 7 // 8
    got = results(s)
    assert lost.isdisjoint(got["daily"]["instrument"].to_pylist())
    want = slow.tables["daily"]
    keep = pc.invert(pc.is_in(want["instrument"], value_set=pa.array(sorted(lost))))
    assert got["daily"].equals(want.filter(keep))
    # the next update computes exactly the lost instrument, to the uninterrupted results
    again = bring_up_to_date(s, records, command="test", kind="sweep")
    assert not again.errors and again.bars_processed == slow.report.bars_processed // 8
    assert_same(results(s), slow.tables)


DRIVER = r"""
import json, sys
import incbt
from incbt.sweep import sweep

store, strategies, grid = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sweep(incbt.open(store), "slow_mean", grid, name="s", strategies_file=strategies,
      commit_bars=1)  # a commit after every task
print("the sweep finished")
"""


def signal_after_first_commit(child: subprocess.Popen, s: incbt.Store, sig: int) -> None:
    """Send ``sig`` to the sweep's process once the store holds its first commit (within
    two minutes; a sweep that ends first is left to end)."""
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline:
        if s.sql(SWEEP_COMMITS)["n"][0].as_py() >= 1:
            os.kill(child.pid, sig)
            return
        time.sleep(0.01)


def test_a_driver_killed_mid_sweep_resumes_without_recomputing(tmp_path, slow, strategies):
    s = _store(tmp_path / "s", slow.data)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    child = subprocess.Popen(
        [sys.executable, "-c", DRIVER, s.path, strategies, json.dumps(SLOW_GRID)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        signal_after_first_commit(child, s, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()  # a no-op if the loop killed it already
        stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, (child.returncode, stdout, stderr[-2000:])
    commits = s.sql(SWEEP_COMMITS)["n"][0].as_py()
    assert 1 <= commits < 8, commits  # 8 tasks, a commit each: it was killed midway

    # the bar-steps committed before the kill: bars of every (run, instrument, day) in daily
    per_day = s.sql("SELECT instrument, date, count(*) AS n FROM bars GROUP BY instrument, date")
    bars = {
        (i, d): n
        for i, d, n in zip(
            *(per_day[c].to_pylist() for c in ("instrument", "date", "n")), strict=True
        )
    }
    done = s.sql("SELECT run_id, instrument, date FROM daily")
    committed = defaultdict(int)
    for rid, inst, day in zip(
        *(done[c].to_pylist() for c in ("run_id", "instrument", "date")), strict=True
    ):
        committed[(rid, inst)] += bars[(inst, day)]
    assert committed, "the first commit holds no results"
    total = slow.report.bars_processed
    assert 0 < total - sum(committed.values()) < total

    r = s.sweep("slow_mean", SLOW_GRID, name="s", strategies_file=strategies, resume=True)
    assert r.added == 0 and len(r.run_ids) == 8 and not r.report.errors
    assert r.report.bars_processed == total - sum(committed.values())
    assert_same(results(s), slow.tables)
    assert s.sql("SELECT count(*) AS n FROM sweeps WHERE sweep = 's'")["n"][0].as_py() == 8


def test_ctrl_c_of_a_ray_sweep_stops_cleanly_and_resume_finishes_it(tmp_path, slow, strategies):
    """`incbt sweep --workers 2` (a local Ray it starts) interrupted by SIGINT after a
    commit: exit 130, says how to resume, no trace of Ray's (a force-cancel of the calls
    in flight raced Ray's shutdown: its core worker aborted with a stack trace now and
    then); `--resume` computes the rest, to the uninterrupted results."""
    s = _store(tmp_path / "s", slow.data)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    args = ["--store", s.path, "sweep", "slow_mean", "-g", f"n={SLOW_GRID['n']}",
            "--name", "s", "--strategies", strategies, "--all"]
    # the CLI, with a commit after every task (the test needs commits to come before
    # the sweep's end, and a SIGINT after one of them)
    cli = ("import sys, incbt.runs, incbt.cli\n"
           "incbt.runs.DEFAULT_COMMIT_BARS = 1\n"
           "sys.argv = ['incbt', *sys.argv[1:]]\n"
           "incbt.cli.main()\n")
    child = subprocess.Popen([sys.executable, "-c", cli, *args, "--workers", "2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        signal_after_first_commit(child, s, signal.SIGINT)
        stdout, stderr = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    if child.returncode == 0:
        pytest.skip("the sweep finished before its first commit was seen")
    assert child.returncode == 130, (child.returncode, stderr[-3000:])
    assert "--resume" in stderr and "Traceback" not in stderr, (stdout, stderr[-3000:])
    assert "Check failed" not in stderr and "StackTrace" not in stderr, stderr[-3000:]
    commits = s.sql(SWEEP_COMMITS)["n"][0].as_py()
    assert 1 <= commits < 8, commits  # 8 tasks, a commit each: it stopped midway
    exe = os.path.join(os.path.dirname(sys.executable), "incbt")
    r = subprocess.run([exe, *args, "--resume"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same(results(s), slow.tables)


INTERRUPTED_IN_PYTHON = r"""
import json, os, sys, threading, time, _thread
import incbt

store, strategies, grid, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
s = incbt.open(store)
tmp = os.path.join(store, "tmp")

def written():
    try:
        return {n: os.path.getsize(os.path.join(tmp, n)) for n in os.listdir(tmp)}
    except FileNotFoundError:
        return {}

def interrupt_once_a_call_wrote():  # Ctrl-C in a notebook, while calls are in flight
    while not written():
        time.sleep(0.005)
    _thread.interrupt_main()

threading.Thread(target=interrupt_once_a_call_wrote, daemon=True).start()
try:
    s.sweep("slow_mean", grid, name="s", strategies_file=strategies, workers=2)
    said = {"finished": True}
except KeyboardInterrupt:
    before = written()
    time.sleep(3)
    said = {"finished": False, "before": before, "after": written()}
r = s.sweep("slow_mean", name="s", strategies_file=strategies, resume=True, workers=2)
said["errors"] = r.report.errors
json.dump(said, open(out, "w"))
"""


def test_ctrl_c_of_a_python_sweep_on_its_own_ray_stops_the_calls_in_flight(
    tmp_path, slow, strategies
):
    """A Python caller (a notebook) interrupted during a sweep on a local Ray the call
    started: the calls in flight are cancelled and waited for before KeyboardInterrupt
    reaches the caller, whose process and Ray go on. They went on computing and writing
    into the store's tmp/ (12 more files there in the 3 s after), under the next
    command's cleanup, and Ray printed their errors in the middle of a later call (QA
    2026-12-07). The same process then resumes the sweep to the uninterrupted results."""
    s = _store(tmp_path / "s", slow.data)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = tmp_path / "said.json"
    p = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_IN_PYTHON, s.path, strategies,
         json.dumps(SLOW_GRID), str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    said = json.loads(out.read_text())
    if said["finished"]:
        pytest.skip("the sweep finished before a call wrote its files")
    assert said["before"] == said["after"], said  # nothing still writing
    assert not said["errors"] and "Traceback" not in p.stderr, p.stderr[-3000:]
    try:
        assert_same(results(s), slow.tables)
    except AssertionError as exc:  # seen once in CI (2026-12-07), not reproduced: say
        # what the store holds, and what a fresh process reads of it
        log = s.sql("SELECT seq, kind, runs, segments, failed, bar_steps FROM events "
                    "ORDER BY seq").to_pylist()  # fmt: skip
        again = subprocess.run(
            [sys.executable, "-c", "import sys, incbt; s = incbt.open(sys.argv[1]); "
             "print(s.sql('SELECT count(*) AS n FROM daily').to_pylist(), "
             "s.status().unfinished_sweeps, len(s.status().stale))", s.path],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        raise AssertionError(
            f"{exc}\nevents: {log}\nsaid: {said}\na fresh process reads: "
            f"{again.stdout.strip()} {again.stderr[-500:]}\nstderr: {p.stderr[-2000:]}"
        ) from None


KILLED_AFTER_PUBLISHING = r"""
import json, os, signal, sys
import incbt, incbt.results
from incbt.sweep import sweep

store, strategies, grid = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
from incbt.execute.ray_exec import ensure_ray
ensure_ray(2, temp_root=sys.argv[4])  # the test watches this session's processes
real = incbt.results.PartFiles.close
calls = []

def close(self):  # the second commit's files: renamed in, listed pending, not committed
    real(self)
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)

incbt.results.PartFiles.close = close
sweep(incbt.open(store), "slow_mean", grid, name="s", strategies_file=strategies,
      workers=2, commit_bars=1)  # a commit after every task
"""


def test_a_driver_killed_between_publishing_workers_files_and_committing(
    tmp_path, slow, strategies
):
    """The workers' files of the commit in flight are in place but not committed: the
    next command removes them, and the resumed sweep ends as an uninterrupted one."""
    s = _store(tmp_path / "s", slow.data)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled")
    ray_tmp = tempfile.mkdtemp(prefix="incbt-rk-")  # short: Ray's socket paths
    try:
        p, its_ray = ray_support.run_watching_descendants(
            [sys.executable, "-c", KILLED_AFTER_PUBLISHING, s.path, strategies,
             json.dumps(SLOW_GRID), ray_tmp],  # fmt: skip
            timeout=300,
            env=env,
        )
        # its Ray leaves after it; a worker may still write its task's files to tmp/
        # meanwhile (never to their places: only a driver renames them in)
        ray_support.kill_agents(its_ray)
        assert not ray_support.wait_gone(its_ray), "the killed driver's Ray outlived it"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr[-2000:])
    assert s.sql(SWEEP_COMMITS)["n"][0].as_py() == 1
    recs = batches(s)
    with s.catalog.env.read() as txn:
        pending = s.catalog.pending(txn)
    assert len(recs) == 1 and len(pending) == 2  # one batch committed, the next published
    assert all(os.path.exists(os.path.join(s.path, f)) for f in pending)
    r = s.sweep("slow_mean", SLOW_GRID, name="s", strategies_file=strategies, resume=True)
    assert r.added == 0 and not r.report.errors
    assert r.report.bars_processed == slow.report.bars_processed * 7 // 8
    assert_same(results(s), slow.tables)
    assert_files_are_the_catalogs(s)


# -- a cluster of two nodes -------------------------------------------------------

CLUSTER = r"""
import json, os, sys
import ray
from ray.cluster_utils import Cluster
import incbt

store, strategies, grid = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
# Cluster writes <RAY_TMPDIR>/ray/ray_current_cluster (the parent sets RAY_TMPDIR)
os.makedirs(os.path.join(os.environ["RAY_TMPDIR"], "ray"), exist_ok=True)
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
try:
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    r = incbt.open(store).sweep("slow_mean", grid, name="s", strategies_file=strategies,
                                address=cluster.address)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    print(json.dumps({
        "executor": r.executor, "errors": r.report.errors, "bars": r.report.bars_processed,
        "nodes": len(nodes), "cpus": [n["Resources"].get("CPU") for n in nodes],
    }))
finally:
    ray.shutdown()
    cluster.shutdown()
"""


def test_a_sweep_on_a_two_node_cluster(tmp_path, slow, strategies):
    s = _store(tmp_path / "s", slow.data)
    ray_tmp = tempfile.mkdtemp(prefix="incbt-rc-")  # short: Ray's socket paths
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=ray_tmp, RAY_AUTH_MODE="disabled")
    try:
        p = subprocess.run(
            [sys.executable, "-c", CLUSTER, s.path, strategies, json.dumps(SLOW_GRID)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got == {
        "executor": "ray",
        "errors": [],
        "bars": slow.report.bars_processed,
        "nodes": 2,
        "cpus": [1.0, 1.0],
    }
    assert_same(results(s), slow.tables)


# -- the cluster goes away mid-sweep ------------------------------------------------

HEAD = r"""
import os, sys
from ray.cluster_utils import Cluster

os.makedirs(os.path.join(os.environ["RAY_TMPDIR"], "ray"), exist_ok=True)
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
print(cluster.address, flush=True)
sys.stdin.readline()  # the test's word: the whole cluster goes, its head first
cluster.shutdown()
"""


def _sweep_as_the_cluster_changes(tmp_path, slow, strategies, head_src, cli_setup=""):
    """`incbt sweep --address` (a commit after every task) on the cluster ``head_src``
    starts, which is told "go" (its change: it goes away, or loses a node) after the
    sweep's first commit, then "end" once the sweep has ended. Returns the store, the
    sweep's exit code and stderr, and the seconds from "go" to its end; skips where the
    sweep finished before the change; checks that it stopped midway, and that a resume
    here computes the rest, to the uninterrupted results."""
    s = _store(tmp_path / "s", slow.data)
    ray_tmp = tempfile.mkdtemp(prefix="incbt-rl-")  # short: Ray's socket paths
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=ray_tmp, RAY_AUTH_MODE="disabled")
    head = subprocess.Popen([sys.executable, "-c", head_src], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    args = ["--store", s.path, "sweep", "slow_mean", "-g", f"n={SLOW_GRID['n']}",
            "--name", "s", "--strategies", strategies, "--all"]  # fmt: skip
    cli = ("import sys, incbt.runs, incbt.cli, incbt.execute.ray_exec\n"
           "incbt.runs.DEFAULT_COMMIT_BARS = 1\n"  # a commit after every task
           f"{cli_setup}"
           "sys.argv = ['incbt', *sys.argv[1:]]\n"
           "incbt.cli.main()\n")  # fmt: skip
    try:
        address = head.stdout.readline().strip()
        assert address, "the cluster did not start"
        child = subprocess.Popen([sys.executable, "-c", cli, *args, "--address", address],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env)  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while child.poll() is None and time.monotonic() < deadline:
                if s.sql(SWEEP_COMMITS)["n"][0].as_py() >= 1:
                    break
                time.sleep(0.01)
            head.stdin.write("go\n")
            head.stdin.flush()
            gone = time.monotonic()
            _, stderr = child.communicate(timeout=120)
            waited = time.monotonic() - gone
        finally:
            if child.poll() is None:
                child.kill()
        with contextlib.suppress(OSError):  # a head that went away with its cluster
            head.stdin.write("end\n")
            head.stdin.flush()
        head.wait(timeout=120)
    finally:
        if head.poll() is None:
            head.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    if child.returncode == 0:
        pytest.skip("the sweep finished before its cluster changed")
    assert "Traceback" not in stderr, stderr[-3000:]
    commits = s.sql(SWEEP_COMMITS)["n"][0].as_py()
    assert 1 <= commits < 8, commits  # 8 tasks, a commit each: it stopped midway
    r = s.sweep("slow_mean", SLOW_GRID, name="s", strategies_file=strategies, resume=True)
    assert r.added == 0 and not r.report.errors
    assert_same(results(s), slow.tables)
    return child.returncode, stderr, waited


def test_a_cluster_that_goes_away_mid_sweep_is_said_and_resume_finishes(
    tmp_path, slow, strategies
):
    """`incbt sweep --address` whose cluster is shut down after the sweep's first commit:
    exit 1 within seconds, saying so and how to finish (Ray itself waited a minute, then
    its core worker ended the process: exit 1, nothing said); a resume, here in this
    process, computes the rest, to the uninterrupted results."""
    code, stderr, waited = _sweep_as_the_cluster_changes(tmp_path, slow, strategies, HEAD)
    assert code == 1, (code, stderr[-3000:])
    assert "stopped answering" in stderr and "--resume" in stderr, stderr[-3000:]
    assert waited < 50, waited  # Ray's own wait is 60 s, after the cluster's shutdown


# -- the cluster loses its last CPU mid-sweep ----------------------------------------

NO_CPU_HEAD = r"""
import os, sys
from ray.cluster_utils import Cluster

os.makedirs(os.path.join(os.environ["RAY_TMPDIR"], "ray"), exist_ok=True)
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
node = cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
print(cluster.address, flush=True)
sys.stdin.readline()  # the test's word: the one node with a CPU goes
cluster.remove_node(node)
sys.stdin.readline()
cluster.shutdown()
"""


def test_a_cluster_left_without_a_cpu_is_said_and_the_sweep_stops(tmp_path, slow, strategies):
    """`incbt sweep --address` on a head of 0 CPUs whose one worker node dies after the
    sweep's first commit: Ray waits for ever for a CPU (QA 2026-12-07: a silent sweep
    holding the store's write lock); the sweep says the cluster has no CPU at once, and
    stops after ``NO_CPU_SECONDS`` (exit 1, how to finish); a resume here computes the
    rest, to the uninterrupted results."""
    code, stderr, _ = _sweep_as_the_cluster_changes(
        tmp_path, slow, strategies, NO_CPU_HEAD, "incbt.execute.ray_exec.NO_CPU_SECONDS = 4.0\n"
    )
    assert code == 1, (code, stderr[-3000:])
    assert "has no CPU left" in stderr and "waiting up to 4 s" in stderr, stderr[-3000:]
    assert "has had no CPU for 4 s" in stderr and "--resume" in stderr, stderr[-3000:]



# -- a strategy that raises for one parameter set -----------------------------------


@pytest.mark.filterwarnings("ignore::incbt.StrategyFailureWarning")  # failing is the point
@pytest.mark.parametrize("executor", ["in this process", "ray"])
def test_a_parameter_set_that_raises_is_reported_and_the_rest_completes(
    tmp_path, grid, strategies, executor, request
):
    s = _store(tmp_path / "s", grid.data)
    kw = {}
    if executor == "ray":
        request.getfixturevalue("ray_local")
        kw["workers"] = 2
    r = s.sweep("fragile", {"n": [5, 6, 7, 8]}, name="f", strategies_file=strategies, **kw)
    assert r.executor == executor and len(r.run_ids) == 4
    bad = register(s, "fragile", {"n": 7}, strategies_file=strategies).run_id
    assert bad in r.run_ids
    insts = s.instruments()
    assert len(r.report.errors) == len(insts), r.report.errors
    for inst, err in zip(insts, sorted(r.report.errors), strict=True):
        assert err.startswith(f"{inst}: "), err
        assert "'fragile'" in err and "{'n': 7}" in err, err
        assert "ValueError" in err and "n = 7 breaks" in err, err
    got = results(s)
    for k, t in got.items():
        assert bad not in set(t["run_id"].to_pylist()), f"{k} holds the failed run"
    one = _store(tmp_path / "one", grid.data)
    ids = [one.backtest("fragile", {"n": n}, strategies_file=strategies).run_id for n in (5, 6, 8)]
    assert sorted(ids) == sorted(set(r.run_ids) - {bad})
    assert_same(got, results(one))


def test_the_clusters_error_messages_go_to_stderr(ray_local, capfd):
    """QA 2026-12-06: "(raylet) A worker died or was killed ..." (a worker killed mid-sweep,
    retried) was printed on stdout, among a command's csv or json rows."""
    import ray._private.worker as w

    from incbt.execute.ray_exec import ensure_ray

    ensure_ray()
    w.print_to_stdstream({"lines": ["A worker died or was killed"], "pid": "raylet",
                          "is_err": False}, False)
    out, err = capfd.readouterr()
    assert "A worker died" in err and "A worker died" not in out


def test_a_local_rays_workers_leave_their_fsyncs_to_the_driver(ray_local):
    """Workers on the driver's node write their files and the driver makes them durable
    (PartFiles); a worker on another node would fsync them itself (its machine's pages)."""
    import ray

    from incbt.execute.ray_exec import _node_id

    here = _node_id(ray)
    assert here is not None
    there = ray.get(ray.remote(lambda: _node_id(None)).remote())
    assert there == here


def test_ray_init_leaves_the_commands_sigterm_handler():
    """Ray's core installs a SIGTERM handler of its own (a crash report, exit 1): the
    command's, set before, is put back (QA 2026-12-06: `kill` of a sweep on a local Ray
    exited 1 with Ray's stack dump, not 143 and what was kept)."""
    import signal

    from incbt.execute.ray_exec import _keeping_sigterm

    def mine(signum, frame):  # the CLI's _terminate, in effect
        pass

    old = signal.signal(signal.SIGTERM, mine)
    try:
        with _keeping_sigterm():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # what ray.init does to it
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, old)


def test_a_sigterm_while_ray_starts_is_the_commands_sigterm():
    """Ray's driver handler, installed as ray.init begins, is sys.exit(signum): a SIGTERM
    while a local Ray started ended `incbt sweep --workers 2` with exit 15 and no word
    (QA 2026-12-07). It reaches the handler Ray replaced (the CLI's: exit 143, said)."""
    import signal

    from incbt.execute.ray_exec import _keeping_sigterm

    def mine(signum, frame):  # the CLI's _terminate, in effect
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, mine)
    try:
        with pytest.raises(KeyboardInterrupt), _keeping_sigterm():
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))  # Ray's
            raise SystemExit(signal.SIGTERM)  # that handler, run as the signal came
        assert signal.getsignal(signal.SIGTERM) is mine
        with pytest.raises(SystemExit), _keeping_sigterm():  # another exit: as it was
            raise SystemExit(2)
    finally:
        signal.signal(signal.SIGTERM, old)


def test_a_local_ray_that_does_not_come_up_is_said_in_a_line(monkeypatch):
    """A local Ray whose node timed out starting (a busy machine; its dashboard agent
    killed) ended `incbt sweep --workers 2` with Ray's bare Exception, exit 3, "a bug"
    (QA 2026-12-07): a SetupError, exit 1, saying what to do."""
    import ray

    from incbt.errors import SetupError
    from incbt.execute import ray_exec

    said = ("The current node timed out during startup. This could happen because some of "
            "the raylet failed to startup or the GCS has become overloaded.")

    def times_out(**kw):
        raise Exception(said)  # noqa: TRY002 (Ray's own, as it raises it)

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", times_out)
    with pytest.raises(SetupError) as e:
        ray_exec.ensure_ray(workers=2)
    assert e.value.exit_code == 1 and "a local Ray could not start" in str(e.value)
    assert said in str(e.value) and "without --workers" in str(e.value)
    monkeypatch.setattr(ray, "init", lambda **kw: (_ for _ in ()).throw(ValueError("other")))
    with pytest.raises(ValueError):  # anything else: as it was
        ray_exec.ensure_ray(workers=2)


def test_workers_start_a_local_ray_whatever_ray_address_names(tmp_path, slow, strategies):
    """`--workers 2` with RAY_ADDRESS exported (as cluster users have it): Ray took the
    local start for a connection, refused its num_cpus, and the command exited 3, "a
    bug" (QA 2026-12-07). It starts its own local Ray, as asked."""
    s = _store(tmp_path / "s", slow.data)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("INCBT_")},
           "RAY_ADDRESS": "127.0.0.1:1"}  # nothing there
    exe = os.path.join(os.path.dirname(sys.executable), "incbt")
    p = subprocess.run([exe, "--store", s.path, "sweep", "slow_mean", "-g", "n=1000,2000",
                        "--name", "s", "--strategies", strategies, "--workers", "2"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "on Ray" in p.stdout + p.stderr, (p.stdout, p.stderr[-2000:])
    assert s.verify().ok
