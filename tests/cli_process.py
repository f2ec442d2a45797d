"""``incbt`` commands for tests, each in a process of its own, without paying for the
interpreter's start and the CLI's imports every time.

A command run by ``subprocess`` spends ~0.3 s (more on a loaded machine) starting Python
and importing the CLI (typer, rich, NumPy, pyarrow and incbt's modules) before it reads
an argument; the suite runs several hundred. Here a *zygote* process imports the CLI
once, and each command is a fork of it: a process of its own, with its own file
descriptors 0-2 (files, read back as ``subprocess.run(..., capture_output=True,
text=True)`` returns them), environment, working directory and ``sys.argv``, that runs
the entry point (``incbt._entry.main``) and exits through the interpreter's normal exit
(atexit handlers and all), as the installed ``incbt`` script would. What it does not
repeat is what happens before ``main``: the interpreter's start and the imports.

What is read while importing is fixed in the zygote: the environment (rich's console
reads ``COLUMNS`` as ``incbt.render`` is imported, NumPy and Arrow read theirs). So a
zygote serves the commands whose environment equals the one it was started with, except
``INCBT_*`` variables (read when a command runs); one is started per such environment.
``TESTS_SPAWN_CLI=1`` runs every command with ``subprocess`` instead.
Commands that must start as a fresh process (signals while starting, what a start
imports) keep calling ``subprocess`` themselves.
"""

from __future__ import annotations

import atexit
import json
import locale
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence

INCBT = os.path.join(os.path.dirname(sys.executable), "incbt")

# The zygote: imports what the entry point imports, then forks a command per request.
# Requests and replies are JSON lines on two pipes of its own (fds given in argv).
_ZYGOTE = r"""
import json, os, sys
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as incbt._entry.main sets it
import incbt._entry
import incbt.cli  # noqa: F401  (what main imports first)
requests = os.fdopen(int(sys.argv[1]), "r")
replies = os.fdopen(int(sys.argv[2]), "w", buffering=1)
replies.write("ready\n")
for line in requests:
    req = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        requests.close()
        replies.close()
        for fd, path, flags in ((0, req["stdin"], os.O_RDONLY),
                                (1, req["stdout"], os.O_WRONLY | os.O_TRUNC),
                                (2, req["stderr"], os.O_WRONLY | os.O_TRUNC)):
            f = os.open(path, flags)
            os.dup2(f, fd)
            os.close(f)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        sys.argv = req["argv"]
        incbt._entry.main()  # raises SystemExit with the command's code, or returns
        sys.exit(0)
    replies.write(f"{pid}\n")
    _, status = os.waitpid(pid, 0)
    replies.write(f"{os.waitstatus_to_exitcode(status)}\n")
"""


def _import_env(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """What of ``env`` the imports may read: all but ``INCBT_*``."""
    return tuple(sorted((k, v) for k, v in env.items() if not k.startswith("INCBT_")))


class _Zygote:
    def __init__(self, env: Mapping[str, str]) -> None:
        req_r, self._req_w = os.pipe()
        self._rep_r, rep_w = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE, str(req_r), str(rep_w)],
            pass_fds=(req_r, rep_w),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(req_r)
        os.close(rep_w)
        self._replies = os.fdopen(self._rep_r, "r")
        if self._line(120) != "ready":
            raise RuntimeError("the CLI's zygote process did not start")

    def _line(self, timeout: float | None) -> str | None:
        """The next reply line, or None at ``timeout`` seconds (or the zygote's end)."""
        if timeout is not None:  # poll: select() refuses a descriptor past 1023
            p = select.poll()
            p.register(self._replies, select.POLLIN)
            if not p.poll(timeout * 1000):
                return None
        line = self._replies.readline()
        return line.strip() if line else None

    def run(self, argv: list[str], env: Mapping[str, str], cwd: str, stdin: str,
            out: str, err: str, timeout: float | None) -> int:
        req = {"argv": argv, "env": dict(env), "cwd": cwd, "stdin": stdin,
               "stdout": out, "stderr": err}
        os.write(self._req_w, (json.dumps(req) + "\n").encode())
        pid = int(self._line(60) or "0")
        if not pid:
            raise RuntimeError("the CLI's zygote process did not fork the command")
        code = self._line(timeout)
        if code is None:  # as subprocess.run: killed, then TimeoutExpired
            os.kill(pid, signal.SIGKILL)
            self._line(None)
            raise subprocess.TimeoutExpired(argv, timeout or 0)
        return int(code)

    def close(self) -> None:
        os.close(self._req_w)  # its loop ends
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._replies.close()


_zygotes: dict[tuple[tuple[str, str], ...], _Zygote] = {}
MOST_ZYGOTES = 3  # each holds ~100 MB; the suite uses two environments (COLUMNS=80 or not)
_lock = threading.Lock()


@atexit.register
def _close_all() -> None:
    for z in _zygotes.values():
        z.close()
    _zygotes.clear()


def _text(path: str) -> str:
    """A file as ``text=True`` reads a pipe: the locale's encoding, universal newlines."""
    with open(path, encoding=locale.getpreferredencoding(False)) as f:
        return f.read()


def without_incbt_settings(**extra: str) -> dict[str, str]:
    """This process's environment without ``INCBT_*`` settings (a command then takes the
    store's own), with ``extra`` set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCBT_")}
    env.update(extra)
    return env


def run_incbt(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    input: str | None = None,  # noqa: A002  (subprocess.run's name)
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    """``incbt ARGS`` as ``subprocess.run([INCBT, *args], capture_output=True, text=True,
    env=env, cwd=cwd, input=input, timeout=timeout)`` returns it."""
    env = dict(os.environ if env is None else env)
    argv = [INCBT, *map(str, args)]
    if os.environ.get("TESTS_SPAWN_CLI") == "1":
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd,
                              input=input, timeout=timeout)
    key = _import_env(env)
    with _lock, tempfile.TemporaryDirectory(prefix="incbt-cli-") as tmp:
        z = _zygotes.pop(key, None)
        if z is None or z.proc.poll() is not None:
            while len(_zygotes) >= MOST_ZYGOTES:  # the least recently used goes
                _zygotes.pop(next(iter(_zygotes))).close()
            z = _Zygote(env)
        _zygotes[key] = z  # the most recently used last
        paths = [os.path.join(tmp, n) for n in ("stdin", "stdout", "stderr")]
        for p, text in zip(paths, (input or "", "", ""), strict=True):
            with open(p, "w") as f:
                f.write(text)
        code = z.run(argv, env, os.path.abspath(cwd or os.getcwd()), *paths, timeout)
        out, err = (_text(p) for p in paths[1:])
    return subprocess.CompletedProcess(argv, code, out, err)
