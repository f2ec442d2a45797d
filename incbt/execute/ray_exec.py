"""The Ray executor: the planner's tasks on a local Ray or an existing cluster.

Workers get everything in the task payload: the segment task, the day-index
entries and file paths of the bars it reads (workers read Parquet from the
store path, so on a cluster the store must sit on storage every node sees) and
the snapshot states it resumes from. Each Ray call writes its tasks' result rows
as one batch's files in the store's ``tmp/`` (``map(parts=...)``; made durable by
the driver, or on another node than the driver's by the worker), and
returns the snapshots, metrics and each run's daily PnL (for the portfolio). They
never open the catalog; the driver alone writes it, renaming the workers' files
in and committing them in plan order as they arrive: it encodes no result row,
which on a cluster would make it the bottleneck as workers are added.

The driver compiles each strategy's kernel before submitting, so workers load
it from the shared Numba cache (``NUMBA_CACHE_DIR``, passed to them) instead of
compiling. Ray retries a task whose worker died (``max_retries``); a task that
keeps failing is reported, and the rest of the plan goes on.
"""

from __future__ import annotations

import _thread
import atexit
import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

import incbt
from incbt.catalog import DayIndex
from incbt.errors import ClusterLostError, SetupError, UsageError
from incbt.execute import (
    DirectBars,
    Latest,
    TaskResult,
    chunk_inputs,
    resolve_strategy,
    run_task,
)
from incbt.plan import SegmentTask
from incbt.settings import usable_cores

_started_here = False


_connected_to: str | None = None  # the address this process connected to (ensure_ray)

# How long a connection to a cluster may take. Ray's own waits for a port that takes
# connections and is not a head's (a web server, say) never end: a sweep given one hung
# for good, holding the store's write lock (QA 2026-12-07); its calls return to Python
# about every 35 s, where the wait is cut.
CONNECT_SECONDS = 30.0


class _TooLong(BaseException):  # not an Exception: Ray retries those
    """Raised in the main thread by :func:`_bounded`'s timer."""


@contextlib.contextmanager
def _bounded(seconds: float) -> Iterator[None]:
    """Raise :class:`_TooLong` in the main thread ``seconds`` from now, at its next
    Python instruction (where it runs elsewhere: nothing). Through a SIGUSR1 of its own
    making (``_thread.interrupt_main``), not SIGINT: the CLI takes a SIGINT for Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_it(signum: int, frame: Any) -> None:
        raise _TooLong

    before = signal.signal(signal.SIGUSR1, raise_it)
    timer = threading.Timer(seconds, _thread.interrupt_main, args=(signal.SIGUSR1,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, before)


def _same_ray(ray: Any, address: str | None) -> None:
    """Refuse a call that asks for another Ray than the one this process is connected
    to: a second sweep of a Python session ran on the first one's (QA 2026-12-07: a
    sweep given address= ran on the local Ray an earlier workers= call had started, and
    the other way round, without a word)."""
    if _started_here:
        have = "a local Ray this process started (workers=, --workers)"
    elif _connected_to is not None:
        have = f"the Ray cluster at {_connected_to!r}"
    else:  # connected by the caller's own ray.init: theirs to choose
        return
    wanted_local = address is None
    if wanted_local == _started_here and (wanted_local or address in (_connected_to, "auto")):
        return
    asked = "a local Ray (workers=)" if wanted_local else f"the cluster at {address!r}"
    raise UsageError(
        f"this process is connected to {have}, and this call asks for {asked}: one process "
        "works with one Ray. Fix: give the same, or call ray.shutdown() before this call"
    )


def ensure_ray(
    workers: int | None = None, address: str | None = None, temp_root: str | None = None
) -> Any:
    """Connect to ``address``, or start a local Ray (no dashboard, auth off locally)."""
    global _started_here, _connected_to
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    if address is not None:  # even where Ray is up already: the address given must answer
        reachable(address)
    _cluster_errors_to_stderr()
    if ray.is_initialized():
        _same_ray(ray, address)
        return ray
    env = {
        "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", ""),
        "RAY_AUTH_MODE": os.environ["RAY_AUTH_MODE"],
    }
    runtime_env = {"env_vars": {k: v for k, v in env.items() if v}}
    with _keeping_sigterm():
        if address:
            try:
                with _bounded(CONNECT_SECONDS):
                    ray.init(
                        address=address,
                        runtime_env=runtime_env,
                        logging_level=logging.ERROR,
                        log_to_driver=False,
                    )
            except ConnectionError as exc:
                raise UsageError(f"no Ray cluster at {address!r}: {exc}") from None
            except _TooLong:
                with contextlib.suppress(Exception):
                    ray.shutdown()
                raise UsageError(
                    f"no Ray cluster answers at {address!r} within {CONNECT_SECONDS:g} s: "
                    "something takes connections there that is not a Ray head (give the "
                    "head's GCS port, 6379 unless `ray start --port` said another)"
                ) from None
            _connected_to, _started_here = address, False
            return ray
        # A short temp path: Ray's socket paths must stay under ~107 characters.
        temp = temp_root or os.path.join(tempfile.gettempdir(), f"incbt-ray-{os.getuid()}")
        with _local_start_said():
            ray.init(
                # a new local Ray, whatever RAY_ADDRESS names (QA 2026-12-07: with it set,
                # Ray took this for a connection, refused num_cpus, and the command exited 3)
                address="local",
                num_cpus=workers or usable_cores(),
                include_dashboard=False,
                _temp_dir=temp,
                runtime_env=runtime_env,
                logging_level=logging.ERROR,
                log_to_driver=False,
                configure_logging=False,
            )
    _started_here, _connected_to = True, None
    atexit.register(shutdown)
    return ray


@contextlib.contextmanager
def _local_start_said() -> Iterator[None]:
    """A local Ray that does not come up (its node timed out starting: a busy machine, a
    process of it killed) is the machine's, said in a line, exit 1: it was Ray's bare
    ``Exception`` (exit 3, "a bug"; QA 2026-12-07). Nothing was computed yet."""
    try:
        yield
    except Exception as exc:
        if type(exc) is not Exception or "during startup" not in str(exc):
            raise
        raise SetupError(
            f"a local Ray could not start: {exc} Nothing was computed. Fix: run the same "
            "command again on a quieter machine, or without --workers (this process's "
            "threads and worker processes)"
        ) from None


@contextlib.contextmanager
def _keeping_sigterm() -> Iterator[None]:
    """The SIGTERM handler as it was before ``ray.init``: Ray's core installs its own (a
    crash report, exit 1), where incbt's stops the command as Ctrl-C does and exits 143
    (QA 2026-12-06: `kill` of a sweep on a local Ray exited 1 with Ray's stack dump)."""
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    except SystemExit as exc:
        # Ray's driver handler, set as ray.init begins, is sys.exit(signum): a SIGTERM while
        # Ray started ended the command with exit 15 and no word (QA 2026-12-07). Given to
        # the handler it replaced (incbt's: the command stops as at any other time, 143)
        if main and callable(before) and exc.code == signal.SIGTERM:
            before(signal.SIGTERM, None)
        raise
    finally:
        if main and callable(before):
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signal.SIGTERM, before)


def _cluster_errors_to_stderr() -> None:
    """Ray's driver prints the cluster's error messages ("(raylet) A worker died or was
    killed ...") on stdout, among a command's results (a csv or json on stdout: QA
    2026-12-06): they go to stderr. Ray's own function, wrapped where it is (a private
    name: where it is gone, nothing changes)."""
    import ray._private.worker as w

    real = getattr(w, "print_to_stdstream", None)
    if real is None or getattr(real, "incbt_wrapped", False):
        return

    def to_stderr(data: dict, ignore_prefix: bool) -> None:
        if data.get("pid") == "raylet":
            data = {**data, "is_err": True}
        real(data, ignore_prefix)

    to_stderr.incbt_wrapped = True  # type: ignore[attr-defined]
    w.print_to_stdstream = to_stderr


def check_address(address: str) -> tuple[str, int] | None:
    """The (host, port) an address names (None: ``auto`` or ``local``, which Ray
    resolves), or a UsageError naming it, with the forms Ray takes, where Ray cannot
    parse it or needs a package for it that is not installed (QA 2026-12-06: Ray's own
    ValueError, "Invalid address format", exit 3)."""
    text = address.strip()
    forms = (
        "give the head node's HOST:PORT (port 6379 unless it was started otherwise), or "
        "'auto' for the cluster `ray start` made on this machine"
    )
    if not text:
        raise UsageError(f"--address is empty: {forms}")
    if text in ("auto", "local"):
        return None
    if text.startswith("ray://"):
        import importlib.util

        if (
            importlib.util.find_spec("ray.util.client") is None
            or importlib.util.find_spec("grpc") is None
        ):
            raise UsageError(
                f"--address {address!r}: a ray:// address needs Ray's client (pip install "
                f"'ray[client]'), which is not installed here; {forms}"
            )
        text = text.removeprefix("ray://")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--address {address!r} is not an address Ray takes: {forms}")
    return host, int(port)


def reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast when a cluster address (``host:port`` or ``ray://host:port``) is not one
    Ray takes, or takes no connection: Ray itself retries an unreachable address for many
    minutes."""
    import socket

    named = check_address(address)
    if named is None:  # "auto", "local": Ray resolves them
        return
    host, port = named
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", port), timeout).close()
    except OSError as exc:
        raise UsageError(
            f"cannot reach a Ray cluster at {address!r} ({exc.strerror or exc}): give the "
            "head node's address (HOST:PORT, port 6379 unless it was started otherwise), "
            "or leave out --address to run in this process"
        ) from None


# how long the driver waits for a result before it checks that the cluster still answers
PROBE_SECONDS = 2.0


def _lost(ray: Any, address: str | None) -> ClusterLostError | None:
    """The cluster's head (its GCS) takes no connection: Ray itself would wait a minute
    (``gcs_rpc_server_reconnect_timeout_s``) and then end this process from its core
    worker, with no word of what was kept."""
    import socket

    try:  # a Ray client (ray://) may not say: then Ray's own wait it is
        gcs = str(ray.get_runtime_context().gcs_address)
        host, _, port = gcs.rpartition(":")
        head = (host.strip("[]"), int(port))
    except Exception:
        return None
    try:
        socket.create_connection(head, PROBE_SECONDS).close()
    except OSError as exc:
        where = f"at {address!r}" if address else "this command started"
        return ClusterLostError(
            f"the Ray cluster {where} stopped answering (its head, {gcs}, takes no "
            f"connection: {exc.strerror or exc}): what was committed before is kept; once "
            "the cluster is back, run the same command again to compute the rest (a sweep: "
            "with --resume)"
        )
    return None


# How long a map waits on a cluster left without a CPU (every node with CPUs gone: a
# head of 0 CPUs whose worker nodes died) before it stops. Ray waits for ever, for a
# node to join: a sweep sat silent, holding the store's write lock (QA 2026-12-07).
NO_CPU_SECONDS = 120.0


class _CpuWatch:
    """Says when the cluster has had no CPU since the map's last result: a warning at
    once (a node may be on its way: the wait goes on), a :class:`ClusterLostError` once
    that has lasted ``NO_CPU_SECONDS``."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.since: float | None = None

    def check(self, ray: Any) -> ClusterLostError | None:
        try:
            cpus = float(ray.cluster_resources().get("CPU", 0))
        except Exception:  # the head not answering is _lost's to say
            return None
        if cpus > 0:
            self.since = None
            return None
        where = f"at {self.address!r}" if self.address else "this command started"
        now = time.monotonic()
        if self.since is None:
            self.since = now
            warnings.warn(
                f"the Ray cluster {where} has no CPU left (its nodes with CPUs stopped): "
                f"waiting up to {NO_CPU_SECONDS:.0f} s for one to join",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        if now - self.since < NO_CPU_SECONDS:
            return None
        return ClusterLostError(
            f"the Ray cluster {where} has had no CPU for {NO_CPU_SECONDS:.0f} s (its "
            "nodes with CPUs stopped, and none joined): what was committed before is "
            "kept; once a node with CPUs has joined (`ray start --address=HEAD`), run the "
            "same command again to compute the rest (a sweep: with --resume)"
        )


# How long a Python caller stopped (Ctrl-C in a notebook) waits for its local Ray's
# calls in flight to end once cancelled: each is a chunk of tasks (a second or so).
STOP_WAIT_SECONDS = 30.0


def _stop_calls(ray: Any, refs: list[Any], stop: str | None) -> None:
    """Stop a stopped map's calls on the local Ray started here, and wait for them to
    end, their results taken (a process that goes on: a Python caller's). Left running,
    they went on computing and writing into the store's ``tmp/`` after the call
    returned, under the next command's cleanup, whose errors Ray then printed in the
    middle of a later call (QA 2026-12-07). ``stop``: a file whose presence each call
    checks before each of its tasks (:func:`_work`): it ends there, at most one task
    later. Not ``ray.cancel``: one racing a call's reply aborted Ray's core worker, the
    caller's process with it ("Tried to complete task that was not pending": forced,
    2026-12-05; not forced, CI 2026-12-07); only calls still running after
    ``STOP_WAIT_SECONDS`` are cancelled. The CLI's process ends with its command, and
    its local Ray with it: not needed there."""
    made = False
    if stop is not None:
        with contextlib.suppress(OSError), open(stop, "x"):
            made = True
    try:
        with contextlib.suppress(Exception):
            _, rest = ray.wait(refs, num_returns=len(refs), timeout=STOP_WAIT_SECONDS)
            for ref in rest:  # a task longer than that: told to stop at its next line
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=False)
            if rest:
                ray.wait(rest, num_returns=len(rest), timeout=STOP_WAIT_SECONDS)
        for ref in refs:
            with contextlib.suppress(Exception):
                ray.get(ref, timeout=0)
    finally:
        if made:
            with contextlib.suppress(OSError):
                os.unlink(stop)  # type: ignore[arg-type]


def shutdown() -> None:
    global _started_here
    if _started_here:
        import ray

        ray.shutdown()
        _started_here = False


_BUFFERS = threading.local()  # a worker thread's bar buffers (see _work)


def _work(
    tasks: list[SegmentTask],
    root: str,
    days: list[DayIndex],
    paths: dict,
    resumes: list[Any],
    keep: int,
    part: tuple[Any, ...] | None = None,
) -> list[TaskResult]:
    """Run a chunk of consecutive tasks (one Ray task: Ray's cost is per call).

    ``part``: (batch, tag[, node]): write the chunk's rows as that batch's files in the
    store's ``tmp/`` (names prefixed by ``tag``), and return the results without them;
    the last one carries the batch's :class:`~incbt.results.Part`. The driver makes the
    files durable (:class:`~incbt.results.PartFiles`: an fsync from any process of the
    machine flushes a file's pages), unless ``node``, the driver's Ray node, is another
    node than this worker's: on a cluster the worker does (its pages are its machine's).
    """
    import socket

    from incbt.errors import StoreError
    from incbt.results import BatchFiles, Part
    from incbt.runs import trim
    from incbt.store import is_store

    if not is_store(root):
        # a node that does not see the store: said before anything is written there (its
        # result files' folder made the store's path on the worker's own disk: a stray
        # `tmp/` under an empty store folder there, QA 2026-12-07)
        raise StoreError(
            f"{root} is not a store on this Ray worker's node ({socket.gethostname()}): on a Ray "
            "cluster the store must sit on storage every node sees, at the same path "
            "(README, Sweeps on Ray). Fix: mount it there (NFS, a shared volume), or run "
            "without --address"
        )
    # every load of this worker thread reads into the same buffers, call after call
    # (fresh memory is slow to touch; a result keeps no bar array)
    scratch = getattr(_BUFFERS, "scratch", None)
    if scratch is None:
        scratch = _BUFFERS.scratch = {}
    # a part's rows are written as each task is computed: what waits for the chunk's
    # end is slim results, not every task's rows
    files = None if part is None else BatchFiles(root, None, part[0], tag=part[1])
    stop = None if part is None else os.path.join(root, "tmp", _stop_name(part[1]))
    out = []
    for task, index, resume in zip(tasks, days, resumes, strict=True):
        if stop is not None and os.path.exists(stop):  # the caller stopped (_stop_calls)
            if files is not None:  # its files are left to the next writer's clean-up
                files.abort()
            return []
        source = DirectBars(root, {task.instrument: index})
        source.paths = paths
        source.scratch = scratch
        r = trim(run_task(task, source, resume), keep)
        if files is not None:
            files.add(r)
            r.slim().batch = files.batch
        out.append(r)
    if files is not None and part is not None:
        # made durable by the driver as it takes the part, where it runs on this machine
        # (from worker processes of this machine the part has no node: never)
        files.seal(sync=len(part) > 2 and (part[2] is None or part[2] != _node_id(None)))
        out[-1].part = Part(files.batch, files.moves(), dict(files.rows))
    return out


def _stop_name(tag: str) -> str:
    """The file in the store's ``tmp/`` that stops a command's calls (``tag``: its
    files' prefix)."""
    return f"{tag}stop"


def _node_id(ray: Any) -> str | None:
    """This process's Ray node, or None outside Ray."""
    if ray is None:
        if "ray" not in sys.modules:
            return None
        ray = sys.modules["ray"]
    try:
        return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - not known: its workers fsync, as on a cluster
        return None


def _client_mode(ray: Any) -> bool:
    """Whether this driver reaches its cluster through a Ray client (``ray://``)."""
    try:
        return bool(ray.util.client.ray.is_connected())
    except Exception:  # noqa: BLE001 - no client module: not a client
        return False


_remote: Any = None


def _remote_fn(ray: Any, retries: int) -> Any:
    global _remote
    if _remote is None:
        _remote = ray.remote(retry_exceptions=False)(_work)
    return _remote.options(max_retries=retries)


def _task_error(exc: BaseException) -> str:
    """What made a Ray call fail on every try, said: the worker's own exception where it
    raised one (QA 2026-12-07: the first line of Ray's wrapper, "ray::_work() (pid=...)",
    in terminal colours, said as workers dying), with the fix for bars a worker does not
    see; else Ray's first line (a worker process that died)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        said = f"{type(cause).__name__}: {cause}"
        if "/bars/" in str(cause) and ("is missing" in str(cause) or "No such file" in str(cause)):
            said += (
                " (on a Ray cluster the store must sit on storage every node sees, at the "
                "same path: README, Sweeps on Ray)"
            )
        return said[:1000]
    import re

    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"\x1b\[[0-9;]*m", "", first)[:300]


def failed_result(task: SegmentTask, width: int, why: str) -> TaskResult:
    """A task that could not run (its worker kept dying): every run of it is reported."""
    from incbt.execute import nothing_computed

    why = f"not computed (its task failed on every try): {why}"
    return nothing_computed(task, width, [f"run {rid} {why}" for rid in task.run_ids], not_run=True)


def _width(task: SegmentTask) -> int:
    from incbt.execute import snapshot_width

    return snapshot_width(resolve_strategy(task.strategy, task.source, task.version))


def warm_kernels(tasks: Sequence[SegmentTask]) -> None:
    """Compile every strategy the tasks use, here, so workers hit the Numba cache."""
    from incbt.engine import initial_state, params_from_dict, run_segment

    for name, source, version in sorted({(t.strategy, t.source, t.version) for t in tasks}):
        strat = resolve_strategy(name, source, version)
        z = np.zeros(2)
        run_segment(
            strat,
            params_from_dict(strat, {})[None, :],
            np.array([[100000.0, 0.0, 0.0]]),
            np.arange(2, dtype=np.int64),
            z + 1,
            z + 1,
            z + 1,
            z + 1,
            z,
            0,
            np.array([2]),
            initial_state(strat, 1),
        )


class RayExecutor:
    """Runs tasks as Ray tasks; yields results in plan order."""

    name = "ray"
    writes_parts = True  # map(parts=...): workers write the result rows (PartFiles)

    def __init__(
        self,
        workers: int | None = None,
        address: str | None = None,
        window: int | None = None,
        retries: int = 3,
    ) -> None:
        self.workers, self.address, self.retries = workers, address, retries
        self.window = window

    def parallelism(self) -> int:
        ray = ensure_ray(self.workers, self.address)
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def map(
        self,
        store: Any,
        tasks: Sequence[SegmentTask],
        keep: int,
        progress_advance: Callable[[int], None],
        known: Latest | None = None,
        parts: int | None = None,
    ) -> Iterator[TaskResult]:
        """``parts``: workers write the result rows themselves, each Ray call's as one
        batch, numbered from ``parts`` in plan order (:class:`incbt.results.PartFiles`)."""
        ray = ensure_ray(self.workers, self.address)
        warm_kernels(tasks)
        fn = _remote_fn(ray, self.retries)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        # Ray calls in flight: bounded, as results wait in memory (an explicit window
        # is in tasks: calls of one task each). Consecutive tasks go in chunks, one
        # Ray call each (a call costs the driver ~1-2 ms to submit and fetch): about 8
        # chunks per CPU of at most 8 tasks, a multiple of the CPUs in number, tapering
        # (incbt.execute.processes.chunk_ranges): 17 equal chunks of 100 tasks on 2
        # workers left one idle for a chunk's time at the end
        calls = self.window or max(4, 4 * cpus)
        if self.window:
            chunks = [[i] for i in range(len(tasks))]
        else:
            from incbt.execute.processes import chunk_ranges

            work = [t.work + t.bars + t.history_bars for t in tasks]
            chunks = [list(c) for c in chunk_ranges(work, cpus, 8, 0, 8)]
        size = max(1, min(len(c) for c in chunks)) if chunks else 1
        # submit in plan order (so the next result to yield is always in flight) and
        # yield in plan order; task sizes are balanced by the planner (split_tasks)
        tag = f"{uuid.uuid4().hex[:12]}-"  # this command's files in tmp/
        stop_file = os.path.join(store.path, "tmp", _stop_name(tag))  # see _stop_calls
        # a worker on this node leaves its files' fsyncs to the driver; through a Ray
        # client (ray://) the driver is on another machine than any node: none (QA)
        client = str(self.address or "").startswith("ray://") or _client_mode(ray)
        here = None if client else _node_id(ray)
        refs: dict[Any, list[int]] = {}
        done: dict[int, TaskResult] = {}
        nxt = 0
        submitted = 0
        lost = None
        cpu_watch = _CpuWatch(self.address)
        try:
            while nxt < len(tasks):
                while submitted < len(chunks) and len(refs) + len(done) // size < calls:
                    ids = chunks[submitted]
                    # each call's catalog reads as it is submitted (arrays: pickled in a
                    # fraction of DayEntry objects' time), not the whole plan's at once
                    days, paths, resumes = chunk_inputs(store, [tasks[i] for i in ids], known)
                    ref = fn.remote(
                        [tasks[i] for i in ids],
                        store.path,
                        days,
                        paths,
                        resumes,
                        keep,
                        None if parts is None else (parts + submitted, tag, here),
                    )
                    refs[ref] = ids
                    submitted += 1
                if nxt not in done:
                    ready, _ = ray.wait(list(refs), num_returns=1, timeout=PROBE_SECONDS)
                    if not ready:
                        lost = _lost(ray, self.address)
                        if lost is not None:
                            raise lost
                        starved = cpu_watch.check(ray)  # its calls are cancelled below
                        if starved is not None:
                            raise starved
                    for ref in ready:
                        ids = refs.pop(ref)
                        try:
                            got = ray.get(ref)
                        except ray.exceptions.RayError as exc:  # out of retries
                            lost = _lost(ray, self.address)  # or the whole cluster gone
                            if lost is not None:
                                raise lost from None
                            why = _task_error(exc)
                            got = [failed_result(tasks[i], _width(tasks[i]), why) for i in ids]
                        for i, r in zip(ids, got, strict=True):
                            done[i] = r
                            progress_advance(tasks[i].work)
                    continue
                yield done.pop(nxt)
                nxt += 1
        except ClusterLostError:
            raise
        except Exception:
            # a head killed mid-sweep surfaced as whatever Ray raised first ("Broken
            # pipe", an RPC error: QA 2026-12-06), not as the cluster gone: asked here
            found = _lost(ray, self.address)
            if found is None:
                raise
            lost = found
            raise found from None
        finally:
            # interrupted: stop what is in flight. A local Ray started here goes down
            # with this process (its shutdown ends the workers): a force-cancel just
            # before it races the calls' replies, and Ray's core worker aborted on
            # "Tried to complete task that was not pending" in about 1 of 10 Ctrl-Cs
            # (Ray 2.x, 2026-12-05), with a stack trace and exit code 1
            if not _started_here and lost is None:  # a lost cluster takes no cancel
                for ref in refs:
                    ray.cancel(ref, force=True)
            elif refs and lost is None and not incbt._ends_with_command:
                _stop_calls(ray, list(refs), None if parts is None else stop_file)
