"""A real local Ray for the tests, started once per test session.

Use it from a test module with ``ray_local = ray_support.ray_local`` (an
assignment, not ``from ... import``, so ruff sees no redefinition when a test
names the fixture as an argument). The Ray has 2 CPUs, no dashboard, token
auth off (``RAY_AUTH_MODE=disabled``; DESIGN.md: on by default in Ray 2.60)
and its own short temp folder (Ray's socket paths must stay under ~107
characters), so its processes can be told from any other Ray on the machine:
:func:`session_workers` lists only this session's worker processes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

CPUS = 2


@dataclass
class RaySession:
    ray: Any  # the ray module, initialized
    temp_root: str  # Ray's temp folder: every path of this session is under it


@pytest.fixture(scope="session")
def ray_local() -> Iterator[RaySession]:
    """A local Ray with 2 CPUs for the whole test session; shut down at its end."""
    os.environ["RAY_AUTH_MODE"] = "disabled"
    from incbt.execute import ray_exec

    root = tempfile.mkdtemp(prefix="incbt-ray-")
    try:
        ray = ray_exec.ensure_ray(workers=CPUS, temp_root=root)
        yield RaySession(ray, root)
    finally:
        ray_exec.shutdown()
        import ray as ray_mod

        if ray_mod.is_initialized():  # ensure_ray found a Ray it had not started
            ray_mod.shutdown()
        shutil.rmtree(root, ignore_errors=True)


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def raylets(temp_root: str) -> list[int]:
    """Pids of the raylets whose session lives under ``temp_root``."""
    out = []
    for pid in _pids():
        args = _cmdline(pid)
        if args and os.path.basename(args[0]) == "raylet" and any(temp_root in a for a in args):
            out.append(pid)
    return out


def session_workers(temp_root: str) -> dict[int, str]:
    """This session's worker processes (children of its raylets) and their titles.

    Ray sets a worker's title to ``ray::<function>`` while it runs a task
    (``ray::_work`` for incbt's tasks) and ``ray::IDLE`` between tasks.
    """
    parents = set(raylets(temp_root))
    out = {}
    for pid in _pids():
        if _ppid(pid) in parents:
            args = _cmdline(pid)
            if args and args[0].startswith("ray::"):
                out[pid] = args[0].strip()
    return out


def kill_a_busy_worker(temp_root: str, while_alive: Any, timeout: float = 120) -> int | None:
    """SIGKILL the first worker seen running an incbt task while ``while_alive`` (a
    thread running the sweep) runs; the worker's pid, or None if none was seen."""
    import signal
    import time

    deadline = time.monotonic() + timeout
    while while_alive.is_alive() and time.monotonic() < deadline:
        busy = [pid for pid, title in session_workers(temp_root).items() if title == "ray::_work"]
        if busy:
            os.kill(busy[0], signal.SIGKILL)
            return busy[0]
        time.sleep(0.005)
    return None


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def run_watching_descendants(args: list[str], timeout: float, **kw: Any) -> tuple[Any, set[int]]:
    """Run a command to its end; also every process it started (its Ray: raylet,
    workers, agents), seen by scanning /proc while it runs."""
    import subprocess
    import time

    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    seen = {child.pid}
    deadline = time.monotonic() + timeout
    while child.poll() is None and time.monotonic() < deadline:
        for pid in _pids():
            if pid not in seen and _ppid(pid) in seen:
                seen.add(pid)
        time.sleep(0.02)
    if child.poll() is None:
        child.kill()
    out, err = child.communicate(timeout=60)
    seen.discard(child.pid)
    return subprocess.CompletedProcess(args, child.returncode, out, err), seen


def wait_gone(pids: set[int], timeout: float = 120) -> set[int]:
    """Wait until none of ``pids`` lives (a dead driver's Ray processes leave by
    themselves, within a minute); those still alive after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    alive_now = {p for p in pids if alive(p)}
    while alive_now and time.monotonic() < deadline:
        time.sleep(0.1)
        alive_now = {p for p in alive_now if alive(p)}
    return alive_now


def kill_agents(pids: set[int]) -> None:
    """SIGKILL Ray's per-node agents among ``pids``: once their driver is gone they idle
    for about a minute before they leave (workers and the raylet go at once)."""
    import contextlib
    import signal

    for pid in pids:
        if "Agent" in " ".join(_cmdline(pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
