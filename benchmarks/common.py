"""Shared helpers for the benchmarks: data sets, timing, peak RSS, README tables."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "bench-out"
README = HERE / "README.md"


def compile_sources() -> None:
    """Cache incbt's bytecode, as an installed incbt has it, for the ``incbt`` processes
    the benchmarks time. pip compiles a package's bytecode when it installs it; an
    editable install writes it at the first import, unless ``PYTHONDONTWRITEBYTECODE``
    is set (as on these machines), and then every command compiled incbt's sources
    again: 40-100 ms of each CLI call (2026-12-04). Up-to-date files are skipped."""
    import compileall

    compileall.compile_dir(str(HERE.parent / "incbt"), quiet=1)


compile_sources()


def code_hash() -> str:
    """A hash of incbt's sources: cached stores are rebuilt when the code changes."""
    root = HERE.parent
    h = hashlib.sha1()
    for f in sorted((root / "incbt").rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:10]


def link_or_copy(src: str, dst: str) -> object:
    """``shutil.copytree``'s copy function for stores: Parquet files (immutable, replaced
    by rename) are hard-linked where the file system allows it, the rest copied."""
    if src.endswith(".parquet"):
        try:
            os.link(src, dst)
            return dst
        except OSError:
            pass
    return shutil.copy2(src, dst)


def dataset(instruments: int, days: int, fmt: str = "csv", seed: int = 42) -> Path:
    """Generated bars, made once and reused (same arguments, same bytes)."""
    from incbt.bars.generate import generate

    d = OUT / f"data-{instruments}x{days}-{fmt}-s{seed}"
    done = d / ".complete"
    if not done.exists():
        generate(str(d), instruments=instruments, days=days, start="2020-01-01", seed=seed,
                 fmt=fmt)
        done.touch()
    return d


def best_of(n: int, fn: Callable[[], object], setup: Callable[[], object] | None = None
            ) -> float:
    """Best wall time of ``n`` runs (noisy shared machines: the minimum is the signal)."""
    times = []
    for _ in range(n):
        if setup:
            setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


_HWM = (
    "import atexit, sys\n"
    "import os\n"
    "_main = os.getpid()\n"
    "_forked = [0]  # a worker's VmRSS when it was forked, KiB\n"
    "def _status(key):\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith(key):\n"
    "            return int(line.split()[1])\n"
    "    return 0\n"
    "def _at_fork():\n"
    "    _forked[0] = _status('VmRSS:')\n"
    "os.register_at_fork(after_in_child=_at_fork)\n"
    "def _hwm():\n"
    "    who = 'main' if os.getpid() == _main else 'worker'\n"
    "    sys.stderr.write(f'VMHWM {who} {_status(\"VmHWM:\")} {_forked[0]}\\n')\n"
    "    sys.stderr.flush()\n"
    "atexit.register(_hwm)\n"
    "_real_exit = os._exit\n"
    "def _exit(code):\n"
    "    _hwm()\n"
    "    _real_exit(code)\n"
    "os._exit = _exit  # the CLI skips interpreter teardown with os._exit; workers exit so\n"
    "from incbt.cli import main\n"
    "sys.argv = ['incbt'] + sys.argv[1:]\n"
    "main()\n"
)


def peak_rss(args: list[str], env: dict[str, str] | None = None) -> tuple[int, float]:
    """Run ``incbt ARGS`` in a fresh process; return (its peak RSS in bytes, wall s).

    The child reads its own VmHWM at exit: a child's ru_maxrss on Linux starts
    from the parent's high-water mark, which would hide the child's own peak.
    Worker processes the command forks (``incbt.execute.processes``) report theirs too:
    :func:`peak_rss_all`.
    """
    main, _, _, wall = peak_rss_all(args, env)
    return main, wall


def peak_rss_all(args: list[str], env: dict[str, str] | None = None
                 ) -> tuple[int, int, int, float]:
    """(the command's peak RSS, its largest worker process's, the most a worker's peak
    exceeds its RSS at its fork, wall s); 0 where the command forked no worker. A forked
    worker's RSS counts the pages it shares with the command as they were at the fork
    (the Python heap, the modules): its peak and the command's do not add up, while what
    it grew by from its fork is its own."""
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", _HWM, *args], env=env, capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise RuntimeError(f"incbt {args} failed: {p.stderr}")
    main = worker = grew = 0
    for ln in p.stderr.splitlines():
        if ln.startswith("VMHWM "):
            _, who, hwm, forked = ln.split()
            if who == "main":
                main = int(hwm) * 1024
            else:
                worker = max(worker, int(hwm) * 1024)
                grew = max(grew, (int(hwm) - int(forked)) * 1024)
    if not main:
        raise RuntimeError(f"incbt {args}: no peak RSS reported: {p.stderr[-2000:]}")
    return main, worker, grew, time.perf_counter() - t


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def machine() -> str:
    import platform

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


VBT_PYTHON = Path(__file__).resolve().parent.parent / ".venv-bench" / "bin" / "python"


def require_vbt(skip: bool, readme: bool) -> None:
    """Stop before a run whose README table would lose its vectorbt rows without a word:
    the peer's venv is missing, and neither --no-vbt nor --no-readme says that is meant
    (a run on 2026-12-05 published tables without them so)."""
    if readme and not skip and not VBT_PYTHON.exists():
        sys.exit(
            f"vectorbt's environment is missing ({VBT_PYTHON}): `make bench` builds it "
            "(or pass --no-vbt to publish the tables without the peer, --no-readme to print "
            "only)"
        )


def update_readme(section: str, text: str) -> None:
    """Replace the text between <!-- section:begin --> and <!-- section:end -->."""
    body = README.read_text() if README.exists() else "# Benchmarks\n"
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in body:
        body = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, body,
                      flags=re.S)
    else:
        body = body.rstrip() + "\n\n" + block + "\n"
    README.write_text(body)


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
