"""The ``incbt`` command's entry point: the CLI's imports (typer, rich and incbt's
modules, ~0.2 s) happen here, where Ctrl-C during them is said in a line (exit 130)
like Ctrl-C during a command, not as a KeyboardInterrupt traceback (found 2026-12-05).
Nothing has been read or written yet at that point."""

import faulthandler
import os
import signal
import sys

# loaded with the package already (incbt/__init__.py), before anything can fail
from incbt.errors import short_of_memory

_STARTING = "while starting: nothing was read or written\n"


def _terminated(signum: int, frame: object) -> None:  # until the CLI sets its own
    sys.stderr.write(f"terminated (SIGTERM) {_STARTING}")
    os._exit(143)


def _by_ctrl_c(exc: BaseException) -> bool:
    """Ctrl-C, or an error a Ctrl-C caused (raised in a class body's ``__set_name__``,
    Python wraps it in a RuntimeError: QA 2026-12-06, exit 1)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _to_devnull_if_closed() -> None:
    """Give a closed stdout or stderr (None in Python) /dev/null, at its own fd."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is None:
            new = os.open(os.devnull, os.O_WRONLY)  # the lowest free fd: this one, or 1
            if new != fd:
                os.dup2(new, fd)
                os.close(new)
            setattr(sys, name, open(fd, "w", closefd=False))  # noqa: SIM115 (the process's)


# The least address space (`ulimit -v`) a command is started with. Below ~1.2 GiB
# commands failed at random points as threads and libraries could not be mapped: Arrow's
# allocator flooding stderr ("background thread creation failed"), then an abort, a
# segfault or "cannot allocate memory for thread-local data" (exit 127, 134, 139), a
# different one from run to run (QA 2026-12-07, ulimit -v 800-1150 MiB).
MIN_ADDRESS_SPACE_MIB = 1536


def _too_little_address_space() -> int | None:
    """This process's address-space limit in MiB where it is below what incbt needs.
    Under any limit, glibc's malloc keeps to 2 arenas: it reserves 64 MiB of address space
    for each of up to 8 a core, which the threads of DataFusion, Arrow and the command
    took; `incbt query` aborted or hung under 2 GiB (QA 2026-12-07; as MALLOC_ARENA_MAX=2
    does, which made it pass at 1.5 GiB)."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    _two_arenas()
    return soft >> 20 if soft < MIN_ADDRESS_SPACE_MIB << 20 else None


def _two_arenas() -> None:
    """glibc's ``mallopt(M_ARENA_MAX, 2)``, before any thread starts (elsewhere: nothing)."""
    import contextlib
    import ctypes

    # no glibc (musl, macOS): its own allocator, left as it is
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(-8, 2)  # M_ARENA_MAX (malloc.h)


def main() -> None:
    signal.signal(signal.SIGTERM, _terminated)  # died without a word (QA 2026-12-06)
    limit = _too_little_address_space()
    if limit is not None:  # said before anything is loaded, read or written
        sys.stderr.write(
            f"error: this process may use {limit:,} MiB of address space (`ulimit -v`); "
            f"incbt needs at least {MIN_ADDRESS_SPACE_MIB:,} MiB (Numba's compiler, Arrow's "
            "and the command's threads, the catalog's map), and below that it fails at "
            "random points. Nothing was read or written. Fix: raise the limit (`ulimit -v "
            "unlimited`, or at least 2 GiB)\n"
        )
        sys.exit(1)
    # A crash of the process (a strategy's step calling C through ctypes, or writing
    # past an array's end, on the threads a small plan runs on) said with where each
    # thread was in Python (the kernel's call: incbt/engine/kernel.py's _run_raw; compiled
    # code has no Python frame), not only as the shell's "Segmentation fault" (QA
    # 2026-12-07). Worker processes report theirs: incbt.execute.processes.
    # fd 2 closed (`incbt update 2>&-`, a daemon's): Python's sys.stderr is None, where
    # faulthandler.enable() raised "sys.stderr is None" and every command exited 1 having
    # done nothing, without a word; fd 1 closed (`>&-`): the command ran, then exited 3
    # ("a bug") flushing None (QA 2026-12-07). Their words go nowhere, as asked
    _to_devnull_if_closed()
    faulthandler.enable()
    # NumPy's OpenBLAS starts a thread a core as NumPy loads: `import numpy` took 134 ->
    # 112 ms (median of 20) on a quiet 2-core machine, 259 -> 194 ms under load (a test
    # suite's, say; measured 2026-12-07). incbt does no linear algebra, and a command's
    # own threads and worker processes use the cores. The command's only (`import
    # incbt` leaves it as it is).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        from incbt.cli import main as run
    except BaseException as exc:
        if short_of_memory(exc):  # QA 2026-12-07: a traceback ending in MemoryError
            sys.stderr.write(
                "error: incbt could not start: out of memory while loading its modules "
                f"({_STARTING.strip()}). Fix: raise this process's memory limit (`ulimit "
                "-v`: incbt needs a few GiB of address space) or free memory\n"
            )
            sys.stderr.flush()
            # not through the interpreter's exit: finalizing half-loaded extension modules
            # crashed there (exit 139, after the message); nothing is open to close
            os._exit(1)
        if not _by_ctrl_c(exc):
            raise
        sys.stderr.write(f"interrupted {_STARTING}")
        sys.exit(130)
    run()


if __name__ == "__main__":  # python -m incbt._entry (and python -m incbt: __main__.py)
    main()
