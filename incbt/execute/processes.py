"""The process executor: a big plan's tasks on worker processes forked for it (Linux).

Threads of one process share the GIL, and reading a task's bars holds it at many
short calls (opening files, Arrow's Python, copies) between Arrow's decoding; the
caller's work on each result (encoding its rows, commits) holds it too. On 2 cores a
backtest's threads used ~1.35 of them. Processes have a GIL each. A big plan
(:func:`incbt.runs.local_executor` picks this executor) forks its workers once the
plan is made, so they inherit it; what crosses a pipe is a chunk's number with what
its tasks read from the catalog (the bars' day index, file paths and resume states,
read by the command's process as it sends the chunk) going out, and slim results
coming back.

Each worker runs the Ray workers' function (:func:`incbt.execute.ray_exec._work`) on
a chunk of consecutive tasks: it reads and computes them, writes their result rows
as a batch of its own in the store's ``tmp/`` (the command makes them durable), and
returns the snapshots, metrics and daily PnL; the command's process renames the batches
in and commits them
in plan order (:class:`incbt.results.PartFiles`), as it does for Ray. Workers never
open the catalog (an LMDB environment must not be used across a fork). They ignore
Ctrl-C (the command's process stops them and says what is kept) and die with the
command's process (``PR_SET_PDEATHSIG``): a command killed with ``kill -9`` leaves
no worker writing into ``tmp/``, which the next writer cleans. If a worker dies (the
OOM killer, a crash inside a strategy), the chunks not yet received run in the
command's process, and the command goes on.

Not used where a fork is unsafe or impossible: other platforms (macOS forks are not
safe with its system frameworks), or a process where Ray is running.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from incbt.engine.errors import StrategyError
from incbt.execute import STOPS as _STOPS  # held while workers are forked (map)
from incbt.execute import Inputs, Latest, TaskResult, chunk_inputs, deferred_stops
from incbt.execute.ray_exec import _work, warm_kernels
from incbt.plan import SegmentTask

# What the workers inherit: each map's job, by its number, set before its pool forks
# them and read by :func:`_run` (in a worker, or here after a worker died). A registry,
# not one job: two commands may map at once on threads of one process (two stores).
_JOBS: dict[int, dict[str, Any]] = {}
_NEXT_JOB = itertools.count()

# How a plan is cut into chunks (:func:`chunk_ranges`). A chunk is a batch of result
# files (two files written and fsynced) and its results wait for the chunks before it:
# chunks of at least MIN_CHUNK_WORK bars read plus bar-steps (~20 ms of work), up to
# CHUNKS_PER_WORKER a worker so the last ones still balance, at most MOST_TASKS_A_CHUNK
# tasks each (what waits in memory is a few chunks' slim results). Tasks are balanced
# by bars already (incbt.plan.split_tasks).
CHUNKS_PER_WORKER = 3
MIN_CHUNK_WORK = 1_000_000
MOST_TASKS_A_CHUNK = 16
# The first chunk is 1 + CHUNK_TAPER times the last (sizes fall linearly): the workers'
# last chunks are the small ones, so they finish together. Measured 2026-12-05: a
# backtest of 8 sets over 100 instruments cut into 7 equal chunks left one of 2 workers
# idle for ~62 ms of its ~273 (4 chunks against 3); simulated with chunks' times off by
# 15%, a worker-multiple count of chunks tapering 2:1 wastes 2.7% of 2 workers' time
# where 7 equal chunks wasted 10%.
CHUNK_TAPER = 1.0
# Chunks a worker holds: the one it runs and the next, sent ahead, so that it goes on
# while the command commits. Measured 2026-12-06 (a 1-set backtest of 100 instruments,
# 8 chunks): sent one at a time, each worker waited 2-12 ms for its next chunk three
# times in ~100 ms, ~17 ms in all, mostly while the command committed.
AHEAD = 2


def can_fork() -> bool:
    """Whether this process may fork workers: Linux (its fork is safe for a process that
    runs no system framework; ``fork`` must be a start method), and no Ray running here
    (its threads and sockets do not survive a fork)."""
    if not sys.platform.startswith("linux") or "fork" not in mp.get_all_start_methods():
        return False
    ray = sys.modules.get("ray")
    return not (ray is not None and getattr(ray, "is_initialized", lambda: False)())


def chunk_ranges(
    work: Sequence[int],
    workers: int,
    per_worker: int | None = None,
    min_work: int | None = None,
    most_tasks: int | None = None,
) -> list[range]:
    """Consecutive tasks (``work``: each one's bars read plus bar-steps) in chunks: one a
    worker at least, ``per_worker`` a worker at most (unless ``most_tasks`` a chunk needs
    more), none under ``min_work`` unless that leaves a worker without one, none over
    ``most_tasks`` tasks. Their number is a multiple of the workers where the tasks
    allow (7 chunks on 2 workers leave one idle for a chunk's time at the end), and
    their work falls from the first to the last (``CHUNK_TAPER``), so the workers' last
    chunks are small. Depends on the plan and the workers only. The defaults are the
    worker processes' (the module's constants); Ray passes its own."""
    per_worker = CHUNKS_PER_WORKER if per_worker is None else per_worker
    min_work = MIN_CHUNK_WORK if min_work is None else min_work
    most_tasks = MOST_TASKS_A_CHUNK if most_tasks is None else most_tasks
    n = len(work)
    if not n:
        return []
    weight = [w + 1 for w in work]  # a task with nothing to do still is one
    total = sum(weight)
    want = min(per_worker * workers, max(workers, total // max(1, min_work)))
    want = max(want, -(-n // most_tasks))
    want = min(n, -(-want // workers) * workers)  # a multiple of the workers
    # where chunk j ends, as a share of the work: sizes 1 + taper down to 1 (equal when
    # each worker has one chunk: the first would be the last to finish)
    taper = CHUNK_TAPER if want > workers else 0.0
    sizes = [1 + taper * (want - 1 - j) / max(1, want - 1) for j in range(want)]
    ends = list(itertools.accumulate(sizes))
    ends = [e / ends[-1] * total for e in ends]
    out: list[range] = []
    start = acc = 0
    for i, w in enumerate(weight):
        acc += w
        full = acc >= ends[min(len(out), want - 1)] or i + 1 - start >= most_tasks
        # or as few tasks are left as chunks are still wanted: one each
        if i + 1 < n and (full or n - i - 1 <= want - len(out) - 1):
            out.append(range(start, i + 1))
            start = i + 1
    out.append(range(start, n))
    return out


_PR_SET_PDEATHSIG = 1


def _child_init(parent: int) -> None:
    """A worker's start: Ctrl-C is the command's to handle; die with the command; write
    (a warning, say) through streams of its own: the command's progress display writes
    to stderr from a thread, and a fork in the middle of such a write leaves the
    stream's lock held in the worker for ever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(ValueError):  # the command's stop watch is its own
        signal.set_wakeup_fd(-1)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)  # held by the command as it forked
    for name, fd in (("stdout", 1), ("stderr", 2)):
        with contextlib.suppress(OSError, ValueError):
            setattr(sys, name, open(os.dup(fd), "w", buffering=1, closefd=True))  # noqa: SIM115
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the command died before the line above
        os._exit(1)


def _run(job_id: int, k: int, inputs: Inputs) -> list[TaskResult]:
    """Chunk ``k`` of a job (in a worker, or in the command's process after a worker
    died), given its tasks' day indexes, file paths and resume states: its results
    without their tasks (the command's process has them)."""
    job = _JOBS[job_id]
    days, paths, resumes = inputs
    out = _work(
        [job["tasks"][i] for i in job["chunks"][k]],
        job["root"],
        days,
        paths,
        resumes,
        job["keep"],
        None if job["parts"] is None else (job["parts"] + k, job["tag"]),
    )
    for r in out:
        r.task = None  # type: ignore[assignment]
    return out


def _first_uses() -> None:
    """What a worker would otherwise do on its first chunk, each worker again: import
    the modules that write results, and let pyarrow look for pandas (at its first array
    from Python objects; with pandas installed and not imported that imports it whole,
    ~0.2 s, unless the CLI spared it: ``incbt.cli._pyarrow_without_pandas``)."""
    import pyarrow as pa

    import incbt.results  # noqa: F401

    pa.array(np.zeros(1))


def _in_worker(job_id: int, k: int, inputs: Inputs) -> list[TaskResult]:
    """What a worker is sent: a job's chunk, by numbers, with its inputs (``_run`` is
    looked up when it runs, in the worker: the module's, as the fork left it)."""
    return _run(job_id, k, inputs)


class _Worker:
    """A worker process forked for a map, with a pipe of its own: chunks go out, their
    results (or the exception one raised) come back, in the order sent. A pipe each, not
    a shared queue: a worker killed while it held a shared queue's lock, or in the middle
    of writing its results, left the command waiting for ever (``ProcessPoolExecutor``:
    its manager thread blocked reading the rest of the dead worker's message; seen 2 in
    14 kills, 2026-12-05). Here the dead worker's pipe ends, and the command sees it at
    once.

    ``first``: the chunk it runs as it starts, its inputs inherited through the fork (in
    its job's ``first``): nothing to send or wait for. Threads of the command's
    (:meth:`start_threads`) send its chunks and take each reply as it comes: a chunk's
    results (~0.2 MB) are more than a pipe holds, and a worker whose results waited for
    the command (busy with a commit) waited with them, its core idle.
    """

    def __init__(self, ctx: Any, others: list[Any], first: tuple[int, int] | None = None) -> None:
        here, there = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(
            target=_serve, args=(there, os.getpid(), [*others, here], first), daemon=True
        )
        self.proc.start()
        there.close()  # the command's copy: the pipe ends when the worker does
        self.conn = here
        self.chunks: deque[int] = deque([first[1]] if first is not None else [])  # sent, in order
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start_threads(self, inbox: queue.SimpleQueue) -> None:
        """Its two threads of the command's: one puts each reply in ``inbox`` as (worker,
        reply), then (worker, None) once the pipe ends (the worker exited, or died,
        perhaps mid-message); one sends what :meth:`send` queues. A chunk's inputs can
        be more than a pipe holds (each task's day index: ~66 bytes a day, ~1.3 MB for
        16 tasks of 5 years), and a chunk sent ahead waits for the worker to finish the
        one it runs: the command does not wait with it."""

        def take() -> None:
            while True:
                try:
                    reply = self.conn.recv()
                except (EOFError, OSError):
                    inbox.put((self, None))
                    return
                inbox.put((self, reply))

        def give() -> None:
            while True:
                msg = self._outbox.get()
                if msg is _GONE:
                    return
                try:
                    self.conn.send(msg)
                except (OSError, ValueError):  # it died: its listener says so
                    return
                if msg is None:  # its last message
                    return

        self._threads = [
            threading.Thread(target=f, name=f"incbt-worker-{f.__name__}", daemon=True)
            for f in (take, give)
        ]
        for t in self._threads:
            t.start()

    def send(self, msg: Any) -> None:
        """Queue ``msg`` for the worker (None: its last message)."""
        self._outbox.put(msg)

    def signal_stop(self, kill: bool) -> None:
        """Told to end (its last message, after what is queued), or killed; :meth:`reap`
        waits for it."""
        if kill:
            self._kill()
            self._outbox.put(_GONE)
        else:
            self._outbox.put(None)

    def _kill(self) -> None:
        """SIGKILL, unless it ended: its sentinel says so without reaping it (a child
        reaped by another thread's wait, say ``multiprocessing.active_children``, is a pid
        that may be another process's by now)."""
        if not wait([self.proc.sentinel], timeout=0):
            with contextlib.suppress(OSError, ValueError):
                self.proc.kill()

    def reap(self, kill: bool) -> None:
        if not wait([self.proc.sentinel], timeout=None if kill else 10):
            self._kill()  # told to end, it did not in 10 s: it stops now
        self.proc.join()
        self._outbox.put(_GONE)
        # the pipe ended with the worker: they end now (those started: a Ctrl-C as they
        # started left one not started, and joining it raised, exit 3: QA 2026-12-08)
        for t in self._threads:
            if t.ident is not None:
                t.join(timeout=10)
        if not any(t.is_alive() for t in self._threads):  # none is inside the pipe's calls
            self.conn.close()


_GONE = object()  # a worker's sender thread ends


def _stop_all(workers: list[_Worker], kill: bool) -> None:
    """Stop the workers together (each takes ~3 ms to exit: its address space goes).
    Killed (interrupted, or a chunk raised): waited for here, so none outlives what
    stopped it. Told to end after their last chunk: reaped on a thread, while the
    command commits; they die with the command anyway (``PR_SET_PDEATHSIG``)."""
    for w in workers:
        w.signal_stop(kill)
    if kill:
        for w in workers:
            w.reap(kill)
    elif workers:

        def reap() -> None:
            for w in workers:
                w.reap(kill)

        threading.Thread(target=reap, name="incbt-worker-reaper", daemon=True).start()


def _serve(conn: Any, parent: int, inherited: list[Any], first: tuple[int, int] | None) -> None:
    """A worker's life: its first chunk (if given), then chunks in, results out, until
    told it is done (or its pipe ends: the command went away)."""
    _child_init(parent)
    for c in inherited:  # the command's ends of the pipes forked with it
        c.close()
    msg: Any = None
    if first is not None:
        job_id, k = first
        msg = (job_id, k, _JOBS[job_id]["first"][k])
    while True:
        if msg is None:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            if msg is None:
                break
        job_id, k, inputs = msg
        msg = None
        try:
            reply: tuple[str, Any] = ("ok", _run(job_id, k, inputs))
        except BaseException as exc:  # the command raises it, as if it ran there
            reply = ("raised", exc)
        try:
            conn.send(reply)
        except (EOFError, OSError):
            break
        except Exception as exc:  # an exception that does not pickle: said as text
            conn.send(("raised", RuntimeError(f"{type(exc).__name__}: {exc}")))
    os._exit(0)  # no atexit of the command's (forked) state


@contextlib.contextmanager
def _forking() -> Iterator[None]:
    """Where workers are forked: Ctrl-C and SIGTERM wait (raised inside Python's
    after-fork hooks, their KeyboardInterrupt was "ignored" there, and the command ran
    on to exit 0: found 2026-12-05, 14 in 15 tries at that moment); they are raised
    once the workers are, and stop them. Python 3.12+ warns of a fork with threads
    alive: not said."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    try:
        with warnings.catch_warnings(), deferred_stops():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _isolated(ctx: Any, job_id: int, k: int, inputs: Inputs) -> list[TaskResult]:
    """Chunk ``k`` again, in a worker of its own: the one it ran in died. A crash in a
    strategy's step (a ctypes call, an array written past its end) kills the process
    that runs it: run in the command's own, as the rest of the plan is after a death, it
    killed the command with no word, and every later update the same way (QA
    2026-12-07). A second death is said with the pairs and the fix (nothing of them is
    recorded: the machine killing the worker, out of memory, looks the same)."""
    with _forking():
        w = _Worker(ctx, [], None)
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    w.start_threads(inbox)
    w.send((job_id, k, inputs))
    try:
        _, reply = inbox.get()
    finally:
        _stop_all([w], kill=True)
    if reply is not None:
        status, value = reply
        if status == "raised":
            raise value
        return value
    code = w.proc.exitcode
    how = f"killed by {signal.Signals(-code).name}" if code and code < 0 else f"exit {code}"
    tasks = [_JOBS[job_id]["tasks"][i] for i in _JOBS[job_id]["chunks"][k]]
    pairs = [f"run {rid}, {t.instrument}" for t in tasks for rid in t.run_ids]
    strategies = sorted({t.strategy for t in tasks})
    shown = "; ".join(pairs[:6]) + (f"; ... ({len(pairs)} in all)" if len(pairs) > 6 else "")
    raise StrategyError(
        f"a worker process died twice ({how}) computing the same {len(pairs)} (run, "
        f"instrument) pair(s) of strategy {', '.join(map(repr, strategies))}: {shown}. A "
        "crash in a strategy's step (a ctypes call, an array written past its end), or "
        "the machine killing the process (out of memory?). Nothing of them was recorded; "
        "what this command committed before is kept. Fix: fix the step (or drop its run: "
        "`incbt drop RUN`; a sweep's with `incbt drop --sweep NAME`), or give the machine "
        "memory, then run the command again"
    )


class ProcessExecutor:
    """Runs tasks on ``workers`` processes forked for the plan; yields results in plan
    order."""

    writes_parts = True  # map(parts=...): workers write the result rows (PartFiles)

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.name = f"in {workers} processes"
        self.ran_here = 0  # chunks of the last map run in this process: a worker died

    def parallelism(self) -> int:
        return self.workers

    def map(
        self,
        store: Any,
        tasks: Sequence[SegmentTask],
        keep: int,
        progress_advance: Callable[[int], None],
        known: Latest | None = None,
        parts: int | None = None,
    ) -> Iterator[TaskResult]:
        """``parts``: workers write the result rows themselves, each chunk's as one batch,
        numbered from ``parts`` in plan order; without it, results keep their rows."""

        from incbt.engine.kernel import settle

        warm_kernels(tasks)  # loaded before the fork: no worker loads or compiles one
        settle()
        _first_uses()
        chunks = chunk_ranges([t.work + t.bars + t.history_bars for t in tasks], self.workers)
        job_id = next(_NEXT_JOB)
        # what the workers inherit: the plan, and each one's first chunk with its catalog
        # reads; the next chunks' reads go with them, read as they are sent (memory holds
        # those of the chunks in flight, not the universe's)
        starts = min(self.workers, len(chunks))

        def inputs_of(k: int) -> Inputs:  # chunk k's catalog reads
            return chunk_inputs(store, [tasks[i] for i in chunks[k]], known)

        _JOBS[job_id] = job = dict(
            tasks=tasks,
            root=store.path,
            chunks=chunks,
            keep=keep,
            parts=parts,
            tag=f"{uuid.uuid4().hex[:12]}-",  # this command's files in tmp/
            first={k: inputs_of(k) for k in range(starts)},
        )
        self.ran_here = 0
        ctx = mp.get_context("fork")
        workers: list[_Worker] = []
        inbox: queue.SimpleQueue = queue.SimpleQueue()  # (worker, reply or None: it ended)
        why = ""  # why the rest runs in this process
        # chunks sent and not yet taken back, or taken and waiting for their turn: what
        # the command holds is bounded (each worker holds the chunk it runs and the next)
        window = (AHEAD + 1) * self.workers
        done: dict[int, list[TaskResult]] = {}  # received, not yet yielded
        suspects: set[int] = set()  # chunks a worker died running
        submitted = 0
        finished = False

        def send(upto: int) -> None:
            """Each worker is sent chunks until it holds ``AHEAD``, up to chunk ``upto``."""
            nonlocal submitted
            for w in workers:
                while len(w.chunks) < AHEAD and submitted < min(len(chunks), upto):
                    w.send((job_id, submitted, inputs_of(submitted)))  # (died: its listener says)
                    w.chunks.append(submitted)
                    submitted += 1

        try:
            try:
                with _forking():
                    for k in range(self.workers):
                        first = (job_id, k) if k < starts else None
                        workers.append(_Worker(ctx, [w.conn for w in workers], first))
                        submitted += first is not None
            except OSError as exc:  # no fork (out of memory, process limits)
                why = f"no worker process could start ({exc.strerror or exc})"
            finally:
                job["first"] = {}  # the workers have theirs
            for w in workers:
                w.start_threads(inbox)
            for k in range(len(chunks)):
                while k not in done and not why:
                    send(k + window)
                    if not any(w.chunks for w in workers):  # cannot be: chunk k is sent
                        raise AssertionError(f"chunk {k} of {len(chunks)}: no worker has it")
                    w, reply = inbox.get()
                    if w not in workers:  # stopped before (cannot be while it holds chunks)
                        continue
                    if reply is None:  # it died, perhaps mid-message
                        why = "a worker process died (killed, or a crash in a strategy)"
                        if w.chunks:  # the chunk it ran: again in a worker of its own
                            suspects.add(w.chunks[0])
                        break
                    status, value = reply
                    if status == "raised":
                        raise value
                    done[w.chunks.popleft()] = value
                if not why:  # the workers have their next chunks while these are used
                    send(k + 1 + window)
                got = done.pop(k, None)
                if got is None:  # what a dead worker had, and the rest, run here
                    if not self.ran_here:
                        warnings.warn(
                            f"{why}; the rest of the plan runs in this process "
                            f"({len(chunks) - k} of {len(chunks)} chunks)",
                            RuntimeWarning,
                            stacklevel=2,
                        )
                        # the others stop: what they ran is not waited for
                        _stop_all(workers, kill=True)
                        workers = []
                    self.ran_here += 1
                    if k in suspects:
                        got = _isolated(ctx, job_id, k, inputs_of(k))
                    else:
                        got = _run(job_id, k, inputs_of(k))
                for i, r in zip(chunks[k], got, strict=True):
                    r.task = tasks[i]
                    progress_advance(tasks[i].work)
                    yield r
            finished = True
        finally:
            # interrupted, or a chunk raised: the workers stop now, not after their chunks
            _stop_all(workers, kill=not finished)
            del _JOBS[job_id]


__all__ = ["ProcessExecutor", "can_fork", "chunk_ranges"]
