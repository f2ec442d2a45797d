"""The store's write lock: one writer at a time, across processes.

An ``flock`` on ``<store>/write.lock``; the kernel releases it when its holder
dies (even by SIGKILL), so a crash never leaves a stale lock. The holder
writes its pid and command line into the file so a waiting writer can say who
holds it. A second ``flock``, on the catalog's ``data.mdb``, is what excludes:
``write.lock`` removed by hand while a writer held it (a habit with lock files,
though this one is never stale) let a second writer in beside the first, and a run
lost its rows for good (QA 2026-12-06). LMDB takes no ``flock`` on its data file
(its own locks are in ``lock.mdb``), and the two kinds of lock do not meet on Linux.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from incbt.errors import CatalogError, StoreLockedError

# what a command that writes says on a store on read-only media
READ_ONLY = (
    "the store at {store} is on a read-only file system: this command writes to it "
    "(commands that only read, such as status, query, log and report, work there). Fix: "
    "copy the store to a writable place (cp -a) and run it there"
)

_held: dict[str, int] = {}  # lock file -> times entered by its owner thread
_owner: dict[str, int] = {}  # lock file -> the thread of this process that holds it
_held_lock = threading.Lock()


def taken() -> bool:
    """This process took a store's write lock (it may have written)."""
    with _held_lock:
        return bool(_held)


def _holder(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            said = f.read().strip() or "an unknown process"
    except OSError:
        return "an unknown process"
    # this process's own, said as another process's before (QA 2026-12-07)
    if said.startswith(f"pid {os.getpid()} on {socket.gethostname()} "):
        return f"another thread of this process ({said})"
    return said


def _catalog_file(store_path: str) -> str:
    return os.path.join(store_path, "catalog", "data.mdb")


def _busy(path: str) -> bool | None:
    """Someone holds an exclusive ``flock`` on the file (None: no such file)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def held_by(store_path: str) -> str | None:
    """Who holds the store's write lock now (its pid and command), or None."""
    path = os.path.join(store_path, "write.lock")
    if _busy(path):
        return _holder(path)
    if _busy(_catalog_file(store_path)):
        return "a writer whose write.lock was removed"
    return None


def _lock_catalog(store_path: str) -> int | None:
    """The catalog's data file, locked (its fd); None: busy (or, with no catalog yet,
    -1: a store being made)."""
    try:
        cfd = os.open(_catalog_file(store_path), os.O_RDONLY)
    except FileNotFoundError:
        return -1
    try:
        fcntl.flock(cfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(cfd)
        return None
    return cfd


@contextmanager
def write_lock(
    store_path: str, timeout: float, on_acquire: Callable[[], object] | None = None
) -> Iterator[None]:
    """Hold the store's write lock; wait up to ``timeout`` s, then raise StoreLockedError.

    Re-entrant within one thread: another thread of this process waits for it as
    another process does (found 2026-12-05: re-entered by any thread, an update and a
    backtest on two threads of one notebook wrote at once, and damaged the store).
    ``on_acquire``: called once the lock is taken, not when it is re-entered (no write
    of this process is under way then).
    """
    path = os.path.join(store_path, "write.lock")
    key = os.path.realpath(path)
    me = threading.get_ident()
    with _held_lock:
        if _held.get(key) and _owner.get(key) == me:
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_lock:
                _held[key] -= 1
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno == errno.EROFS:
            raise CatalogError(READ_ONLY.format(store=os.path.dirname(path))) from None
        raise
    try:
        deadline = time.monotonic() + timeout
        said = False
        cfd: int | None = None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                cfd = _lock_catalog(store_path)
                if cfd is None:  # write.lock was removed under its holder, who writes on
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    raise BlockingIOError
                break
            except BlockingIOError:
                if not said and timeout > 1 and time.monotonic() > deadline - timeout + 1:
                    said = True  # a second: say whom it waits for (up to the timeout)
                    print(
                        f"waiting for the store's write lock, held by "
                        f"{held_by(store_path) or 'an unknown process'} "
                        f"(up to {timeout:g} s: INCBT_LOCK_TIMEOUT)",
                        file=sys.stderr,
                        flush=True,
                    )
                if time.monotonic() >= deadline:
                    raise StoreLockedError(
                        f"store {store_path} is being written by "
                        f"{held_by(store_path) or 'an unknown process'}; "
                        f"waited {timeout:g} s. Wait for it to finish, or raise "
                        "INCBT_LOCK_TIMEOUT"
                    ) from None
                time.sleep(0.05)
        prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
        if prog == "__main__.py":  # `python -m incbt ...`
            prog = f"python -m {os.path.basename(os.path.dirname(sys.argv[0]))}"
        info = (
            f"pid {os.getpid()} on {socket.gethostname()} "
            f"({shlex.join([prog, *sys.argv[1:]])}) "
            f"since {time.strftime('%Y-%m-%d %H:%M:%S')}"
        )
        os.ftruncate(fd, 0)
        # who holds it, for others' messages only: a full disk (ENOSPC) must not stop the
        # write, least of all `incbt gc`, which frees space (QA 2026-12-06)
        with contextlib.suppress(OSError):
            os.pwrite(fd, info.encode(), 0)
        with _held_lock:
            _held[key] = 1
            _owner[key] = me
        try:
            if on_acquire is not None:
                on_acquire()
            yield
        finally:
            with _held_lock:
                _held[key] = 0
            # the staging folder, if the write left it empty (a command that finished a
            # crashed one's work can take a path that does not remove it itself)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(store_path, "tmp"))
            os.ftruncate(fd, 0)
            if cfd is not None and cfd >= 0:
                fcntl.flock(cfd, fcntl.LOCK_UN)
                os.close(cfd)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
