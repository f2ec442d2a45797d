"""Worker processes (``incbt.execute.processes``): a big plan's tasks on processes forked
for it give the results of threads bit for bit; a worker that dies hands its chunk
back to the command's process; Ctrl-C and ``kill -9`` of the command leave no worker
behind and a store the next command finishes to the uninterrupted results.

The stores here are small, so the tests lower the sizes from which the executor picks
processes (``PROCESSES_MIN_BARS``) and threads (``THREADS_MIN_*``); which plans get
processes with the real sizes is tested on its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pyarrow as pa
import pytest
from cli_process import run_incbt
from conftest import assert_files_are_the_catalogs, bits
from hypothesis import example, given
from hypothesis import strategies as st
from spikes import fragile

import incbt
import incbt.execute.processes as proc
import incbt.runs as runs_mod
from incbt.bars.generate import generate
from incbt.execute import deferred_stops

QUERIES = {
    "daily": "SELECT * FROM daily ORDER BY run_id, instrument, date",
    "fills": "SELECT * FROM fills ORDER BY run_id, instrument, ts, qty, price",
    "metrics": "SELECT * FROM metrics ORDER BY run_id, scope, instrument",
}
GEN = dict(instruments=6, days=12, start="2024-02-26", seed=17, fmt="parquet")
SETS = [{"fast": f, "slow": s} for f, s in ((3, 20), (5, 30), (8, 45))]


def results(s: incbt.Store) -> dict[str, pa.Table]:
    return {k: s.sql(q) for k, q in QUERIES.items()}


def assert_same(got: dict[str, pa.Table], want: dict[str, pa.Table]) -> None:
    for k in QUERIES:
        assert want[k].num_rows > 0, k
        assert got[k].num_rows == want[k].num_rows, (k, got[k].num_rows, want[k].num_rows)
        assert bits(got[k]).equals(bits(want[k])), f"{k} differs"


@pytest.fixture
def no_ray_here():
    """A process that runs Ray does not fork workers (``can_fork``: Ray's threads and
    sockets do not survive a fork), so the tests that fork here need a process without
    it: the suite runs them before the Ray tests (files in name order); in another
    order they skip, saying why, rather than fail."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        pytest.skip("Ray runs in this test process (started by an earlier test): no fork")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("procs")
    generate(str(root / "head"), to_day="2024-03-06", **GEN)  # 9 days
    generate(str(root / "tail"), from_day="2024-03-07", **GEN)  # 3 more
    fix = generate(str(root / "fix"), **{**GEN, "seed": 18}, from_day="2024-03-05",
                   to_day="2024-03-05")  # other prices for a past day: a correction
    assert fix
    (root / "s.py").write_text(STRATEGIES)
    return root


STRATEGIES = "import incbt\n\n" + fragile(3000)


def history(s: incbt.Store, data, check_warnings: bool = True) -> list:
    """Backtests, a sweep, a sweep of a user strategy that fails on some pairs, new days
    and a correction, each brought up to date. Checks that exactly the failing pairs are
    reported, on every executor: by the sweep, not by the new days (nothing they read
    changed, so they are not tried again), by the correction (it changed a day they
    read). ``check_warnings=False`` for histories on several threads at once: the
    warnings filters are the process's, not a thread's."""

    def failures():
        if not check_warnings:
            return contextlib.nullcontext()
        return pytest.warns(incbt.StrategyFailureWarning, match="failed on 6 .* n = 7 breaks")

    s.ingest(str(data / "head"))
    reports = [s.backtest("sma_cross", SETS, fee_bps=1.0, slippage_bps=2.0)[0].report]
    reports.append(s.backtest("breakout", {"lookback": 40}).report)
    reports.append(s.sweep("ema_cross", {"fast": [4, 6], "slow": [20, 30]}, name="e").report)
    with failures():
        f = s.sweep("fragile", {"n": [5, 7]}, name="f", strategies_file=str(data / "s.py"))
    reports.append(f.report)
    reports.append(s.update(str(data / "tail")).report)
    assert len(reports[-1].skipped_failed) == 6 and not reports[-1].errors
    with failures():
        reports.append(s.update(str(data / "fix")).report)
    for r in (reports[3], reports[-1]):
        assert len(r.errors) == 6 and all("n = 7 breaks" in e for e in r.errors)
    assert not any(r.errors for r in reports[:3])
    return reports


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The history on threads (processes never picked)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("INCBT_PROCESSES", "1")
    try:
        s = incbt.init(str(tmp_path_factory.mktemp("ref") / "s"))
        reports = history(s, data)
    finally:
        mp.undo()
    assert all("processes" not in r.executor for r in reports if r.executor)
    return results(s)


@pytest.fixture
def every_plan_on_processes(monkeypatch, no_ray_here):
    """Every plan with more than one task goes to 2 worker processes."""
    monkeypatch.setattr(runs_mod, "PROCESSES_MIN_BARS", 0)
    monkeypatch.setattr(runs_mod, "THREADS_MIN_WORK", 0)
    monkeypatch.setattr(runs_mod, "usable_cores", lambda: 2)
    monkeypatch.setenv("INCBT_PROCESSES", "2")


def test_processes_give_the_results_of_threads_bit_for_bit(
    tmp_path, data, reference, every_plan_on_processes
):
    s = incbt.init(str(tmp_path / "s"))
    reports = history(s, data)
    assert [r.executor for r in reports] == ["in 2 processes"] * len(reports)
    assert_same(results(s), reference)
    assert s.verify().ok
    assert_files_are_the_catalogs(s)


@pytest.mark.filterwarnings("ignore::incbt.StrategyFailureWarning")
def test_two_commands_at_once_on_threads_of_one_process(
    tmp_path, data, reference, every_plan_on_processes
):
    """Two stores brought up to date at the same time from two threads of a notebook:
    each command's workers and chunks are its own."""
    import threading

    stores = [incbt.init(str(tmp_path / f"s{i}")) for i in range(2)]
    errors: list[BaseException] = []

    def go(s: incbt.Store) -> None:
        try:
            history(s, data, check_warnings=False)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for s in stores:
        assert_same(results(s), reference)
        assert_files_are_the_catalogs(s)
    assert not proc._JOBS  # every job's state is dropped at its end


def test_a_worker_that_dies_hands_its_chunk_back(
    tmp_path, data, reference, every_plan_on_processes, monkeypatch
):
    """A worker SIGKILLed in its second chunk (the OOM killer, say), once a command: the
    command warns, runs that chunk again in a worker of its own and the rest itself, and
    ends with the uninterrupted results; the dead worker's half-written files are not
    left in ``tmp/``."""
    parent = os.getpid()
    real = proc._run

    def run(job: int, k: int, inputs):
        mark = tmp_path / f"killed-{job}"
        if k == 1 and os.getpid() != parent and not mark.exists():  # in a worker only
            mark.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return real(job, k, inputs)

    monkeypatch.setattr(proc, "_run", run)
    s = incbt.init(str(tmp_path / "s"))
    with pytest.warns(RuntimeWarning, match="a worker process died .* runs in this process"):
        reports = history(s, data)
    # where it ran says so (QA 2026-12-06: "in 2 processes", every chunk run here)
    assert any(r.executor.endswith(", then in this process after a worker died")
               for r in reports), [r.executor for r in reports]
    assert_same(results(s), reference)
    assert_files_are_the_catalogs(s)


def test_a_chunk_that_kills_its_worker_twice_is_said_with_its_pairs(
    tmp_path, data, reference, every_plan_on_processes, monkeypatch
):
    """A step that crashes its process (a ctypes call, an array written past its end):
    its chunk ran again in the command's own process after the worker died, and killed
    the command with no word, in every later update too (QA 2026-12-07). Run again in a
    worker of its own, a second death is said with the pairs and the fix; nothing of
    them is recorded, and once the step is fixed the next command completes."""
    parent = os.getpid()
    real = proc._run

    def run(job: int, k: int, inputs):
        if k == 1 and os.getpid() != parent:  # in every worker: a crash, not bad luck
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(job, k, inputs)

    monkeypatch.setattr(proc, "_run", run)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "head"))
    with pytest.warns(RuntimeWarning, match="a worker process died"), pytest.raises(
        incbt.StrategyError, match=r"a worker process died twice \(killed by SIGSEGV\) "
        r"computing the same \d+ \(run, instrument\) pair\(s\) of strategy 'sma_cross': run "
    ) as info:
        s.backtest("sma_cross", {"fast": 3, "slow": 20})
    assert "Fix: fix the step (or drop its run: `incbt drop RUN`" in str(info.value)
    assert s.sql("SELECT count(*) AS n FROM failed")["n"][0].as_py() == 0
    monkeypatch.setattr(proc, "_run", real)  # the step fixed
    s.update()
    assert s.verify().ok and not s.status().stale
    assert not proc._JOBS


def _backtest_by_script(tmp_path, data, script: str, **env: str):
    """The store of a backtest of the head days (``want``), and a fresh store of the same
    bars on which ``script`` (the CLI, patched) runs that backtest over every instrument:
    (want, the store, the finished process)."""
    want = incbt.init(str(tmp_path / "want"))
    want.ingest(str(data / "head"))
    want.backtest("sma_cross", {"fast": 5, "slow": 30})
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "head"))
    p = subprocess.run(
        [sys.executable, "-c", script, "--store", s.path, "backtest", "sma_cross",
         "-p", "fast=5", "-p", "slow=30", "--all"],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )  # fmt: skip
    return want, s, p


# The installed command's entry point, whose step crashes the process on the threads a
# small plan runs on (the command's own process: no worker to hand the chunk back)
CRASHES_ON_THREADS = """
import os, signal, sys
import incbt.runs, incbt._entry

def crash(*a, **k):
    os.kill(os.getpid(), signal.SIGSEGV)

incbt.runs.compute_task = crash
sys.argv = ["incbt", *sys.argv[1:]]
incbt._entry.main()
"""


def test_a_step_that_crashes_the_command_s_own_process_says_where(tmp_path, data):
    """A step that crashes the process on the threads of a small plan killed the command
    with nothing but the shell's "Segmentation fault" (QA 2026-12-07). The command says
    where each thread was (Python's fault handler), and nothing of it was committed (the
    run is not registered yet): the same command again computes it all, as it would
    have."""
    want, s, p = _backtest_by_script(tmp_path, data, CRASHES_ON_THREADS, INCBT_PROCESSES="1")
    assert p.returncode == -signal.SIGSEGV, (p.returncode, p.stderr)
    assert "Fatal Python error: Segmentation fault" in p.stderr, p.stderr
    assert "incbt/runs.py" in p.stderr and "in crash" in p.stderr, p.stderr
    again = incbt.open(s.path)
    assert again.sql("SELECT count(*) AS n FROM daily")["n"][0].as_py() == 0
    assert not again.runs()
    again.backtest("sma_cross", {"fast": 5, "slow": 30})
    assert again.verify().ok
    assert_same(results(again), results(want))


# A worker that dies in the middle of sending its results: the CLI, with every plan on
# 2 worker processes, whose worker of chunk 1 writes half of its reply's bytes to the
# pipe and is killed
DIES_MID_REPLY = """
import os, signal, sys
from multiprocessing import connection
import incbt.runs, incbt.execute.processes as proc, incbt.cli
incbt.runs.PROCESSES_MIN_BARS = 0
proc.MIN_CHUNK_WORK = 1  # a chunk a task
incbt.runs.THREADS_MIN_WORK = 0
incbt.runs.usable_cores = lambda: 2
parent, real, real_send = os.getpid(), proc._run, connection.Connection._send

def send(self, buf, *a):  # the reply (after its 4-byte length, if apart): half of it
    if len(buf) > 4:
        real_send(self, bytes(buf)[: len(buf) // 2], *a)
        os.kill(os.getpid(), signal.SIGKILL)
    real_send(self, buf, *a)

def run(job, k, inputs):
    out = real(job, k, inputs)
    mark = os.environ["MARK"]  # once: run again in a worker of its own, it answers
    if k == 1 and os.getpid() != parent and not os.path.exists(mark):
        open(mark, "w").close()
        connection.Connection._send = send
    return out

proc._run = run
sys.argv = ["incbt", *sys.argv[1:]]
incbt.cli.main()
"""


@pytest.mark.skipif(not proc.can_fork(), reason="worker processes are forked on Linux only")
def test_a_worker_killed_while_it_sends_its_results_does_not_hang_the_command(tmp_path, data):
    """Found 2026-12-05 (2 in 14 kills of a worker of `backtest --all`): a worker killed
    in the middle of writing its results left the command waiting for ever (the process
    pool's manager thread blocked reading the rest of the message). The command says
    the worker died, runs the rest itself and ends with the uninterrupted results."""
    want, s, p = _backtest_by_script(tmp_path, data, DIES_MID_REPLY, MARK=str(tmp_path / "m"))
    assert p.returncode == 0, p.stderr
    assert "a worker process died" in p.stderr and "runs in this process" in p.stderr
    assert _gone(s.path), "worker processes outlived the command"
    assert_same(results(incbt.open(s.path)), results(want))


# The CLI with every plan on 2 worker processes, which sends itself a signal from
# Python's after-fork hook in the command's process: as a Ctrl-C (or a scheduler's
# SIGTERM) landing while a worker is forked
SIGNAL_AT_FORK = """
import os, signal, sys
import incbt.runs, incbt.cli
incbt.runs.PROCESSES_MIN_BARS = 0
incbt.runs.THREADS_MIN_WORK = 0
incbt.runs.usable_cores = lambda: 2
os.register_at_fork(after_in_parent=lambda: os.kill(os.getpid(), int(os.environ["SIG"])))
sys.argv = ["incbt", *sys.argv[1:]]
incbt.cli.main()
"""


@pytest.mark.skipif(not proc.can_fork(), reason="worker processes are forked on Linux only")
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_workers_are_forked_stops_the_command(tmp_path, data, sig, code):
    """Found 2026-12-05 (14 of 15 tries): a Ctrl-C or SIGTERM landing while the command
    forked its workers raised inside Python's after-fork hook, which printed
    "Exception ignored" and went on: the command ran to its end and exited 0."""
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "head"))
    p = subprocess.run(
        [sys.executable, "-c", SIGNAL_AT_FORK, "--store", s.path, "backtest", "sma_cross",
         "-p", "fast=5", "-p", "slow=30", "--all"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "SIG": str(int(sig))},
    )  # fmt: skip
    assert p.returncode == code, (p.returncode, p.stderr)
    assert "Exception ignored" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert _gone(s.path), "worker processes outlived the command"


def test_no_fork_runs_the_plan_in_this_process(
    tmp_path, data, reference, every_plan_on_processes, monkeypatch
):
    """A fork that fails (out of memory, a process limit) is said once a plan, and the
    plan runs in the command's process."""

    def no_fork(self, *a, **k):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(proc._Worker, "__init__", no_fork)
    s = incbt.init(str(tmp_path / "s"))
    with pytest.warns(RuntimeWarning, match=r"no worker process could start \(Cannot alloc"):
        history(s, data)
    assert_same(results(s), reference)


def test_which_plans_get_worker_processes(tmp_path, data, monkeypatch, no_ray_here):
    """Processes for plans with enough to read or compute for a thread per core that
    read ``PROCESSES_MIN_BARS`` bars in all; never with ``processes=1``, on one core,
    off Linux, or in a process where Ray runs."""
    from incbt.runs import PROCESSES_MIN_BARS, THREADS_MIN_BARS, THREADS_MIN_WORK, local_executor

    s = incbt.init(str(tmp_path / "s"))
    monkeypatch.setattr(runs_mod, "usable_cores", lambda: 4)

    def tasks(n: int, bars: int, work: int = 0) -> list:
        return [SimpleNamespace(work=work, bars=bars, history_bars=0)] * n

    big = tasks(8, PROCESSES_MIN_BARS // 8)
    assert PROCESSES_MIN_BARS // 8 >= THREADS_MIN_BARS
    assert local_executor(s, big).name == "in 4 processes"
    assert local_executor(s, big[:3]).name == "in this process"  # too few bars in all
    assert local_executor(s, tasks(2, PROCESSES_MIN_BARS // 2)).name == "in 2 processes"
    # many bar-steps, few bars (a sweep over a few days): threads (kernels release the GIL)
    assert local_executor(s, tasks(8, 1000, 100 * THREADS_MIN_WORK)).name == "in this process"
    # enough bars in all, but tasks too small for more than one thread
    assert local_executor(s, tasks(1000, THREADS_MIN_BARS // 2)).name == "in this process"
    monkeypatch.setenv("INCBT_PROCESSES", "1")
    assert local_executor(incbt.open(s.path), big).name == "in this process"
    monkeypatch.setenv("INCBT_PROCESSES", "3")
    assert local_executor(incbt.open(s.path), big).name == "in 3 processes"
    monkeypatch.delenv("INCBT_PROCESSES")
    monkeypatch.setattr(runs_mod, "usable_cores", lambda: 1)
    assert local_executor(s, big).name == "in this process"
    monkeypatch.setattr(runs_mod, "usable_cores", lambda: 4)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert local_executor(s, big).name == "in this process"
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setitem(sys.modules, "ray", SimpleNamespace(is_initialized=lambda: True))
    assert local_executor(s, big).name == "in this process"


@given(
    work=st.lists(st.integers(0, 5 * proc.MIN_CHUNK_WORK), max_size=300),
    workers=st.integers(1, 8),
)
@example(work=[0, 1, 0], workers=2)
def test_chunks_cover_the_plan_in_order_and_balance_it(work, workers):
    chunks = proc.chunk_ranges(work, workers)
    assert [i for c in chunks for i in c] == list(range(len(work)))
    assert all(0 < len(c) <= proc.MOST_TASKS_A_CHUNK for c in chunks)
    if len(work) >= workers:  # every worker has a chunk
        assert len(chunks) >= workers
    cap = max(proc.CHUNKS_PER_WORKER * workers, -(-len(work) // proc.MOST_TASKS_A_CHUNK))
    assert len(chunks) <= -(-cap // workers) * workers + 1
    capped = any(len(c) == proc.MOST_TASKS_A_CHUNK for c in chunks)
    if len(chunks) < len(work) and not capped:  # a multiple of the workers: none idle
        assert len(chunks) % workers == 0, (len(chunks), workers)
    if len(chunks) > 1 and not capped:
        # cut at tapering shares of the work, each task weighing its work + 1 (as
        # chunk_ranges weighs it: the bound took the work alone, and Hypothesis found
        # work [0, 1, 0] on 2 workers over it, 2026-12-05): a chunk holds at most the
        # first (largest) share and one task; with a chunk a worker, equal shares
        n = len(chunks)
        weight = sum(w + 1 for w in work)
        first = weight * (1 + proc.CHUNK_TAPER) / (n + proc.CHUNK_TAPER * n / 2)
        share = weight / n if n <= workers else first
        assert all(sum(work[i] + 1 for i in c) <= share + max(work) + 1 for c in chunks)


CLI_FAST = """
import sys, incbt.runs, incbt.cli
incbt.runs.PROCESSES_MIN_BARS = 0
incbt.runs.THREADS_MIN_WORK = 0
incbt.runs.usable_cores = lambda: 2
sys.argv = ["incbt", *sys.argv[1:]]
incbt.cli.main()
"""


@pytest.mark.skipif(not proc.can_fork(), reason="worker processes are forked on Linux only")
def test_the_cli_says_when_a_plan_runs_or_would_run_on_worker_processes(tmp_path, data):
    """`--dry-run` says where the plan would run, the command where it ran; on the
    command's own process (the default for small plans) nothing is added."""
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "head"))

    def cli(*args: str, env: dict | None = None) -> str:
        p = subprocess.run([sys.executable, "-c", CLI_FAST, "--store", s.path, *args],
                           capture_output=True, text=True, env={**os.environ, **(env or {})})
        assert p.returncode == 0, p.stderr
        return p.stdout

    bt = ["backtest", "sma_cross", "-p", "fast=5", "-p", "slow=30"]
    assert "bar-steps (in 2 processes)" in cli(*bt, "--dry-run")
    assert "(in 2 processes)" not in cli(*bt, "--dry-run", env={"INCBT_PROCESSES": "1"})
    assert "(in 2 processes)" in cli(*bt).splitlines()[0]
    out = cli("sweep", "sma_cross", "-g", "fast=3,4", "-g", "slow=20", "--name", "g", "--dry-run")
    assert "bar-steps (in 2 processes)" in out, out
    out = cli("update", "--dry-run", str(data / "tail"))
    assert "bar-steps (in 2 processes)" in out, out


@pytest.mark.skipif(not proc.can_fork(), reason="worker processes are forked on Linux only")
def test_what_a_worker_writes_reaches_the_commands_stderr(tmp_path, data):
    """A worker writes through streams of its own (the command's, inherited mid-write
    from its progress thread, could hold a lock for ever): a warning it prints reaches
    the command's stderr, and the command ends."""
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "head"))
    code = CLI_FAST.replace(
        "sys.argv = ",
        "import os, warnings, incbt.execute.processes as proc\n"
        "parent, real = os.getpid(), proc._run\n"
        "def loud(job, k, inputs):\n"
        "    if os.getpid() != parent:\n"
        "        own = sys.stderr is not sys.__stderr__\n"
        "        warnings.warn(f'worker {k} says hello (own stream: {own})')\n"
        "    return real(job, k, inputs)\n"
        "proc._run = loud\n"
        "sys.argv = ",
    )
    p = subprocess.run(
        [sys.executable, "-c", code, "--store", s.path, "backtest", "sma_cross", "-p",
         "fast=5", "-p", "slow=30"], capture_output=True, text=True, timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert "(in 2 processes)" in p.stdout
    assert "worker 0 says hello (own stream: True)" in p.stderr, p.stderr


# -- the command interrupted ------------------------------------------------------

# The CLI with every plan on 2 worker processes, a commit after every chunk, and
# workers slowed down (0.4 s a chunk) so that a signal lands in the middle of the plan.
CLI = """
import os, sys, time
import incbt.runs, incbt.execute.processes as proc, incbt.cli
incbt.runs.PROCESSES_MIN_BARS = 0
proc.MIN_CHUNK_WORK = 1  # a chunk a task
incbt.runs.THREADS_MIN_WORK = 0
incbt.runs.DEFAULT_COMMIT_BARS = 1
incbt.runs.usable_cores = lambda: 2
parent, real = os.getpid(), proc._run
def slow(job, k, inputs):
    if os.getpid() != parent:
        time.sleep(0.4)
    return real(job, k, inputs)
proc._run = slow
sys.argv = ["incbt", *sys.argv[1:]]
incbt.cli.main()
"""
COMMITS = "SELECT count(*) AS n FROM events WHERE kind = 'backtest'"


def _processes_of(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker`` (a store's path)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read()
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmd and state != "Z":
            out.append(int(pid))
    return out


def _gone(marker: str, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _processes_of(marker):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not proc.can_fork(), reason="worker processes are forked on Linux only")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_a_command_stopped_mid_plan_leaves_no_worker_and_the_next_one_finishes(
    tmp_path, data, sig
):
    """``incbt backtest`` on worker processes, stopped after its first commit: Ctrl-C
    (exit 130, says what is kept) or ``kill -9``; its workers are gone within seconds
    either way (they ignore Ctrl-C and die with the command); the same command again
    computes the rest, to the results of an uninterrupted run."""
    want = incbt.init(str(tmp_path / "want"))
    want.ingest(str(data / "head"))
    args = ["backtest", "sma_cross", "-p", "fast=5", "-p", "slow=30", "--all"]
    want_run = want.backtest("sma_cross", {"fast": 5, "slow": 30})
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "head"))
    child = subprocess.Popen(
        [sys.executable, "-c", CLI, "--store", s.path, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while child.poll() is None and time.monotonic() < deadline:
            if s.sql(COMMITS)["n"][0].as_py() >= 1:
                assert len(_processes_of(s.path)) == 3  # the command and its 2 workers
                child.send_signal(sig)
                break
            time.sleep(0.01)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), stderr
    if sig == signal.SIGINT:
        assert "interrupted: what was committed before it is kept" in stderr, stderr
        assert "Traceback" not in stderr, stderr
    assert _gone(s.path), "worker processes outlived the command"
    commits = s.sql(COMMITS)["n"][0].as_py()
    assert 1 <= commits < 6, commits  # 6 tasks, chunks of one: it stopped midway
    r = run_incbt(["--store", s.path, *args])
    assert r.returncode == 0, r.stderr
    assert want_run.run_id in r.stdout
    s = incbt.open(s.path)
    assert_same(results(s), results(want))
    assert_files_are_the_catalogs(s)


def test_a_stop_while_forking_is_handled_once_the_workers_are():
    """A signal reaching another thread of the command while it forks ran the Python
    handler inside an after-fork hook, where its KeyboardInterrupt was "ignored" (once in
    a CI run, 2026-12-06): inside, handlers only record it; it is handled at the end."""

    def stop(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, stop)
    reached = False
    try:
        with pytest.raises(KeyboardInterrupt), deferred_stops():
            signal.raise_signal(signal.SIGTERM)
            reached = True  # not interrupted inside
        assert reached and signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, old)


def test_the_command_makes_the_workers_files_durable_before_it_publishes_them(
    tmp_path, monkeypatch, every_plan_on_processes
):
    """Workers write their parts' files without waiting for the disk; the command fsyncs
    each (on a thread, as the parts arrive) and renames nothing in before they are
    durable: a power cut after its commit finds every file it lists whole."""
    import incbt.results as res_mod

    synced: list[str] = []
    published: list[tuple[list[str], list[str]]] = []  # (moved in, synced by then)
    real_sync, real_publish = res_mod.fsync_file, res_mod.publish

    def slow_sync(path: str) -> None:
        time.sleep(0.02)  # the disk is slow: publish must wait for it
        real_sync(path)
        synced.append(os.path.basename(path))

    def watched_publish(root, moves):
        moves = list(moves)
        published.append(([os.path.basename(t) for t, _ in moves], list(synced)))
        real_publish(root, moves)

    monkeypatch.setattr(res_mod, "fsync_file", slow_sync)
    monkeypatch.setattr(res_mod, "publish", watched_publish)
    generate(str(tmp_path / "d"), instruments=4, days=6, start="2024-03-04", seed=2)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    r = s.backtest("sma_cross", {"fast": 3, "slow": 20})
    assert "processes" in r.report.executor, r.report.executor
    moved = [m for names, _ in published for m in names]
    assert moved, "no part was published"
    for names, by_then in published:
        assert set(names) <= set(by_then), (names, by_then)
    assert s.verify().ok


@pytest.mark.skipif(not proc.can_fork(), reason="worker processes are forked on Linux only")
def test_a_chunk_sent_ahead_waits_for_its_worker_not_the_command(monkeypatch):
    """A worker holds the chunk it runs and the next, sent ahead; a chunk's inputs can be
    more than a pipe holds (a 5-year day index: ~1.3 MB for 16 tasks). Sending it to a
    busy worker must not hold the command (its commits) until the worker reads it; the
    replies come back in order, whole."""
    import multiprocessing as mp
    import queue

    def slow(job, k, inputs):
        time.sleep(1.0)
        return [k, len(inputs)]

    monkeypatch.setattr(proc, "_run", slow)  # what the forked worker runs
    w = proc._Worker(mp.get_context("fork"), [], None)
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    w.start_threads(inbox)
    big = b"x" * (4 << 20)
    try:
        t = time.perf_counter()
        w.send((0, 0, big))
        w.send((0, 1, big))
        sent = time.perf_counter() - t
        replies = [inbox.get(timeout=60) for _ in range(2)]
    finally:
        proc._stop_all([w], kill=False)
    assert sent < 0.5, sent
    assert [r for _, r in replies] == [("ok", [0, len(big)]), ("ok", [1, len(big)])]
    from multiprocessing.connection import wait

    # it ends when told (reaped by a thread of the command's: not joined here as well,
    # where two waits for one child race)
    assert wait([w.proc.sentinel], timeout=30) == [w.proc.sentinel]


def test_ctrl_c_while_a_workers_threads_start_is_said_as_ctrl_c(monkeypatch):
    """Found by QA 2026-12-08 (1 of ~30 Ctrl-Cs of `incbt update FILES` computing on worker
    processes): a Ctrl-C landing as a worker's two threads started left one not started,
    and stopping the workers joined it: "RuntimeError: cannot join thread before it is
    started", exit 3 (a bug) instead of 130. Stopping a worker joins the threads it
    started."""
    import multiprocessing as mp
    import queue
    import threading

    w = proc._Worker(mp.get_context("fork"), [], None)
    real = threading.Thread.start
    calls = []

    def start(self):
        calls.append(self.name)
        if len(calls) == 2:  # the Ctrl-C, as the second thread was to start
            raise KeyboardInterrupt
        real(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(KeyboardInterrupt):
        w.start_threads(queue.SimpleQueue())
    monkeypatch.setattr(threading.Thread, "start", real)
    proc._stop_all([w], kill=True)  # as the command's finally does: no RuntimeError
    assert not w.proc.is_alive()


def test_the_fsync_thread_never_keeps_a_process_from_ending():
    """QA 2026-12-06 (2 of ~100 Ctrl-Cs): the fsync pool's thread, started as a Ctrl-C
    landed, was left out of the pool's shutdown, and the command hung at exit after
    saying it was interrupted. Its thread is a daemon: a process whose fsync is still
    waiting ends at once; results and errors reach the caller."""
    from incbt import results

    assert results._SYNCER.submit(lambda x: x + 1, 6).result(timeout=10) == 7
    assert results._SYNCER._thread is not None and results._SYNCER._thread.daemon
    with pytest.raises(ZeroDivisionError):
        results._SYNCER.submit(lambda: 1 / 0).result(timeout=10)
    code = ("import time, incbt.results as r\n"
            "r._SYNCER.submit(time.sleep, 60)\n"
            "time.sleep(0.2)\n")  # then the interpreter ends, the fsync still waiting
    t = time.monotonic()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - t < 30
