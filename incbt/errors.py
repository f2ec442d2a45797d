"""The exception tree of incbt.

Every error a user can meet is an :class:`IncbtError`; the CLI turns it into
one line on stderr and an exit code in one place (``incbt.cli``)::

    IncbtError                      exit 1 unless noted
    ├── UserError                   something the user gave us is wrong
    │   ├── BadInputError           a data file: names file, line, instrument, value, fix
    │   ├── StrategyError           unknown strategy, bad parameter, broken contract
    │   ├── QueryError              SQL that does not parse, plan or run
    │   ├── NotFoundError           a run, sweep, instrument, file or query it names is not there
    │   └── UsageError              a command used wrongly (exit 2)
    │       └── DateError           a date that is not a calendar day (also a ValueError)
    ├── StoreError                  the store itself
    │   ├── NotAStoreError          the folder is not an incbt store
    │   ├── StoreExistsError        init over a different existing store
    │   ├── StoreLockedError        another process holds the write lock (exit 75: retry)
    │   └── CatalogError            the LMDB catalog failed or is inconsistent
    ├── ClusterLostError            the Ray cluster stopped answering mid-command
    ├── SetupError                  the machine's setup stops incbt (a cache folder, the
    │                               locale, a full disk): nothing is recorded as the data's
    │                               or the strategy's fault
    └── InternalError               a bug in incbt (exit 3); please report it

and two warnings: :class:`StrategyFailureWarning`, when the Python API computed a
run but its strategy failed on some (run, instrument) pairs (the CLI says so
itself and exits 1); :class:`DataNoteWarning`, when an ingest from Python accepted
short or missing days (the CLI says them as notes).

Dependency errors (lmdb, pyarrow, datafusion, ray) are mapped to these at the
boundary where they enter (see ``map_dependency_error``), so nothing else leaks
to users; ``tests/test_errors.py`` checks the mapping is complete.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import unicodedata
from collections.abc import Mapping

__all__ = [
    "BadInputError",
    "CatalogError",
    "ClusterLostError",
    "DateError",
    "IncbtError",
    "InternalError",
    "NotAStoreError",
    "NotFoundError",
    "QueryError",
    "SetupError",
    "StoreError",
    "StoreExistsError",
    "StoreLockedError",
    "StrategyError",
    "StrategyFailureWarning",
    "UsageError",
    "UserError",
    "map_dependency_error",
]


class IncbtError(Exception):
    """Base of every error incbt raises on purpose."""

    exit_code = 1


class UserError(IncbtError):
    """Input from the user is wrong; the message says how to fix it."""


class NotFoundError(UserError):
    """Something the user named (a run, a sweep, an instrument, a file, a named query)
    is not in the store or on disk; the message says where to find what there is."""


class BadInputError(UserError):
    """A data file is malformed; the message names file, line, value and the fix."""

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        line: int | None = None,
        row: int | None = None,
        instrument: str | None = None,
        value: object = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = file
        self.line = line
        self.row = row
        self.instrument = instrument
        self.value = value
        self.fix = fix
        # a bar read whole and found against a rule (SEMANTICS.md "Bars"), not a line
        # that could not be read: set by the ingest's checks (incbt.bars.parts.first_error)
        self.rule = False
        where = ""
        if file is not None:
            where = f"{file}"
            if line is not None:
                where += f", line {line}"
            elif row is not None:
                where += f", row {row}"
            where += ": "
        parts = [f"{where}{problem}"]
        if instrument is not None:
            parts.append(f"instrument {instrument!r}")
        if value is not None:
            parts.append(f"value {value!r}")
        msg = "; ".join(parts)
        if fix:
            msg += f". Fix: {fix}"
        super().__init__(msg)


class StrategyError(UserError):
    """Unknown strategy, invalid parameter, or a strategy breaking the contract."""


class StrategyFailureWarning(UserWarning):
    """The strategy failed on some (run, instrument) pairs: their results are not
    stored, every other result is; ``.report.errors`` (and ``skipped_failed``) list them.
    Also from ``update``: runs whose strategy does not load (``.broken`` lists them)."""


class RunReplacedWarning(UserWarning):
    """A run's tables were read after an update replaced it (its strategy's code changed):
    it holds no results; the warning names the run that does."""


class DataNoteWarning(UserWarning):
    """An ingest (``store.ingest``, ``store.update`` with files) accepted short or
    missing days: real (a half session, a halted instrument) or a file cut short or
    left out, which look the same. ``IngestSummary.short_days``, ``.missing_days`` and
    ``.notes()`` hold them; ``incbt query coverage`` counts them per instrument."""


class QueryError(UserError):
    """A SQL query failed to parse, plan or run."""


class UsageError(UserError):
    """A command or API call used wrongly (CLI exit code 2)."""

    exit_code = 2


class DateError(UsageError, ValueError):
    """A date given that is not a calendar date ``YYYY-MM-DD`` (or a moment where a day
    is asked for): a usage error (exit 2), and a ValueError, which callers catch to name
    the option it came from."""


class StoreError(IncbtError):
    """A problem with the store itself."""


class NotAStoreError(StoreError):
    """The folder is not an incbt store."""


class StoreExistsError(StoreError):
    """``init`` would overwrite a different existing store."""


class StoreLockedError(StoreError):
    """Another process holds the store's write lock (past ``lock_timeout``): a busy store,
    not bad input. Exit 75 (``EX_TEMPFAIL``: try again later), so a script can tell the
    two apart and retry."""

    exit_code = 75


class ClusterLostError(IncbtError):
    """The Ray cluster a command runs on stopped answering mid-command. What was
    committed before stays; the same command again, once the cluster is back (a sweep:
    with ``--resume``), computes the rest."""


class SetupError(IncbtError):
    """The machine's setup stops incbt: a folder it must write that it cannot (Numba's
    cache), a locale that cannot spell a path, a full disk. Not the data's fault nor
    the strategy's: nothing is recorded as a failure of either, and the same command
    finishes the work once the setup is fixed. The message says what to change."""

    # a full disk's: where it was said to be full (" (writing FILE)"), and what the
    # command was doing (made by :func:`disk_full`), for a caller to say it otherwise
    full_disk: tuple[str, str] | None = None


class CatalogError(StoreError):
    """The LMDB catalog failed or holds something inconsistent."""


class InternalError(IncbtError):
    """A bug in incbt."""

    exit_code = 3


# DataFusion's Python binding raises plain ValueError/Exception; its messages say
# which part of the engine failed.
_DATAFUSION_PREFIXES = (
    "SQL error",
    "Error during planning",
    "DataFusion error",
    "Execution error",
    "Schema error",
    "Optimizer rule",
    "Invalid argument",
)


def lost_file_fix(path: str) -> str:
    """The fix for a store file lost or damaged outside incbt: a results file's rows are
    derived (``incbt repair`` computes them again); a bars file is the store's data."""
    rel = path.replace(os.sep, "/")
    if rel.startswith("results/") or "/results/daily/" in rel or "/results/fills/" in rel:
        return "run `incbt repair` (results are computed again from the bars)"
    return BARS_LOST_FIX


# a bars file lost or changed outside incbt: said the same by status, verify, repair and
# read errors (repair said "ingest into a new store", status `ingest --rewrite`: QA)
BARS_LOST_FIX = (
    "restore the store from a backup, or ingest the original data of those days again "
    "with `incbt ingest --rewrite FILE...` (`incbt verify --bars` names the days); then "
    "`incbt update` recomputes the results from them"
)


EMFILE_FIX = (
    "Fix: close the stores this process no longer uses (store.close()), or raise its limit "
    "(ulimit -n)"
)


def short_of_memory(exc: BaseException) -> bool:
    """A MemoryError, or what the want of memory looks like when a module loads after the
    command started (numba's, llvmlite's library: "failed to map segment from shared
    object") or a thread starts ("can't start new thread"), or an error one caused. Under
    a `ulimit -v` these were "Could not find/load shared object file 'libllvmlite.so'"
    (exit 1), "RuntimeError: can't start new thread" (exit 3, "a bug") or numba's
    half-loaded module's AttributeError (exit 3) (QA 2026-12-07). The command's entry
    point asks it too, of an import that failed (incbt._entry)."""
    seen: BaseException | None = exc
    for _ in range(32):  # a chain, not a cycle
        if seen is None:
            return False
        text = str(seen)
        if (
            isinstance(seen, MemoryError)
            or (isinstance(seen, OSError) and seen.errno == errno.ENOMEM)
            or (isinstance(seen, (OSError, ImportError)) and "failed to map segment" in text)
            or (isinstance(seen, RuntimeError) and "can't start new thread" in text)
            or "Failed to launch worker thread" in text  # Arrow's thread pool
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def map_dependency_error(exc: BaseException, context: str) -> IncbtError:
    """Map an error raised by a dependency to the incbt tree.

    ``context`` says what incbt was doing ("reading bars/AAPL/2024-01.parquet").
    """
    if isinstance(exc, IncbtError):
        return exc
    if short_of_memory(exc):  # before the modules' own: numba's is no strategy's fault
        return SetupError(  # not the store's: the machine's, or a step's allocations
            f"{context}: out of memory (nothing was recorded as the strategy failing; what "
            "this command committed before is kept). Fix: give the process more memory (a "
            "`ulimit -v` limit?), run fewer instruments or parameter sets per call, or, where "
            "a strategy's step allocates arrays, make it allocate less"
        )
    mod = type(exc).__module__ or ""
    name = type(exc).__name__
    top = mod.split(".")[0]
    full = _disk_full(exc, context)
    if full is not None:
        return full
    if getattr(exc, "errno", None) == errno.EMFILE or "Too many open files" in str(exc):
        # QA 2026-12-07: said as a failing query's expression
        return SetupError(f"{context}: this process has too many files open ({exc}). {EMFILE_FIX}")
    if isinstance(exc, UnicodeEncodeError):  # text an encoding cannot spell (QA: exit 3)
        import codecs
        import sys

        chars = exc.object[exc.start : exc.end]
        out = getattr(sys.stdout, "encoding", None) or ""
        same = lambda a, b: codecs.lookup(a).name == codecs.lookup(b).name  # noqa: E731
        if out and same(exc.encoding, out) and not same(out, sys.getfilesystemencoding()):
            return SetupError(  # the output's encoding (PYTHONIOENCODING), not a path's
                f"{context}: the output cannot be written in its encoding ({out}): "
                f"{chars!r}. Fix: PYTHONIOENCODING=utf-8"
            )
        return SetupError(
            f"{context}: a path or name cannot be written in this locale's encoding "
            f"({exc.encoding}): {chars!r}. Fix: run with a UTF-8 locale (LANG=C.UTF-8, or "
            "PYTHONUTF8=1), or use an ASCII path"
        )
    if top == "lmdb":
        return CatalogError(f"{context}: LMDB {name}: {exc}")
    if top == "pyarrow":
        if name in ("ArrowInvalid", "ArrowTypeError"):
            return BadInputError(f"{context}: {exc}")
        return StoreError(f"{context}: Arrow {name}: {exc}")
    if top == "datafusion" or str(exc).startswith(_DATAFUSION_PREFIXES):
        return QueryError(f"{context}: {exc}")
    if top == "ray":
        return InternalError(f"{context}: Ray {name}: {exc}")
    if top == "numba":
        return StrategyError(f"{context}: the strategy failed to compile or run: {exc}")
    if isinstance(exc, OSError) or "No such file or directory" in str(exc):
        filename = _filename(exc)
        if filename is not None and _users_path(exc, filename):
            return _path_error(exc, filename, context)
    if isinstance(exc, FileNotFoundError) or "No such file or directory" in str(exc):
        strerror, filename = getattr(exc, "strerror", None), getattr(exc, "filename", None)
        if not filename and os.path.isabs(str(exc)) and not os.path.exists(str(exc)):
            filename = str(exc)  # Arrow's message is the path alone
        missing = f"{filename} is missing" if filename else f"{strerror or exc}"
        return StoreError(  # "...: /path. Fix:" said not what was wrong (QA 2026-12-06)
            f"{context}: {missing}. Fix: a file the store's catalog lists is gone: the store "
            "was changed outside incbt (`incbt status` lists every file missing or damaged); "
            + lost_file_fix(str(filename or ""))
        )
    if isinstance(exc, OSError):
        fix = _OS_FIXES.get(exc.errno or 0, "")
        where = f" ({exc.filename})" if exc.filename else ""
        if exc.filename and exc.filename2:  # a rename: the folder refusing may be either's
            # (QA 2026-12-07: a results folder made read-only was said as the temp file)
            where = f" (moving {exc.filename} into {os.path.dirname(str(exc.filename2))})"
        return StoreError(
            f"{context}: {exc.strerror or exc}{where}" + (f". Fix: {fix}" if fix else "")
        )
    return InternalError(f"{context}: {name}: {exc}")


# the fix of an I/O error on a store's file, by its errno (QA 2026-12-06: "Permission
# denied (.../write.lock)" said no more)
_NOT_WRITABLE = (
    "the store's folders and files must be writable by this user: give them back "
    "(chown -R, or chmod -R u+rwX on the store), or work on a copy (cp -a)"
)
_OS_FIXES = {
    errno.EACCES: _NOT_WRITABLE,
    errno.EPERM: _NOT_WRITABLE,
    errno.EROFS: "the store is on a read-only file system: reads work there, writes need a "
    "copy in a writable place (cp -a)",
    errno.ENAMETOOLONG: "a path in the store is too long for its file system: give the "
    "store a shorter path (move it)",
}


# what the command's output is written to: standard output (its writer's errors name
# this), and the files given with -o (registered by incbt.render as it writes them)
STDOUT = "<standard output>"
OUTPUTS: dict[str, bool] = {}
# files the command wrote whole before its output to standard output (generate's, an
# -o file's): a full disk cutting that output short leaves them (QA 2026-12-07)
WRITTEN: list[str] = []


def _kept() -> str:
    """What a command wrote before its output was cut short: kept, said as such (QA
    2026-12-07: "nothing else was changed" after a backtest had committed)."""
    from incbt.catalog import lock

    kept = ["what it committed to the store is kept"] if lock.taken() else []
    kept += ["the files it wrote are kept"] if WRITTEN else []
    return "; ".join(kept) or "nothing else was changed"


def is_full_disk(exc: BaseException) -> bool:
    """The error says the disk (or a quota) is full, whoever raised it: Python's and
    Arrow's errno, LMDB's and the kernel's words."""
    text = str(exc)
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or (
        "No space left on device" in text or "Disk quota exceeded" in text
    )


def _disk_full(exc: BaseException, context: str) -> SetupError | None:
    """A full disk (or quota), whoever said it (Python, Arrow's "[errno 28]", LMDB's
    DiskError): one line naming the file where known and the fix; before, "incbt: No
    space left on device" or Arrow's words alone (QA 2026-12-06)."""
    if not is_full_disk(exc):
        return None
    where = _filename(exc)
    at = "" if context == "incbt" else f"{context}: "
    if where == STDOUT or (where is not None and OUTPUTS.get(os.path.abspath(where))):
        return SetupError(
            f"{at}the disk is full: writing the output to "
            + ("standard output" if where == STDOUT else where)
            + f" stopped short ({_kept()}). Fix: free space on the disk "
            "it goes to, or send it elsewhere, and run the command again"
        )
    return disk_full(f" (writing {where})" if where else _stores_disk(), at)


# the stores this process opened (incbt.store.Store): a full disk that names no file
# (Arrow's writes say "[errno 28] Error writing bytes to file" alone) is said as the
# store's disk where it opened one (QA 2026-12-07: "the disk is full", no path)
STORES: dict[str, None] = {}


def _stores_disk() -> str:
    """Which disk a full-disk error that names no file is about: the store's, unless
    another folder a command writes to (Numba's cache, the temporary folder) is the one
    nearly full (QA 2026-12-07: a full NUMBA_CACHE_DIR was said as the store's disk)."""
    import tempfile

    def free(path: str) -> int | None:
        try:
            st = os.statvfs(path)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize

    others = [("Numba's cache, NUMBA_CACHE_DIR", os.environ.get("NUMBA_CACHE_DIR") or ""),
              ("the temporary folder", tempfile.gettempdir())]  # fmt: skip
    for what, path in others:
        room = free(path) if path else None
        if room is not None and room < NEARLY_FULL_BYTES:
            return f" ({what}: {path}, {room:,} bytes free)"
    if len(STORES) != 1:
        return ""
    path = next(iter(STORES))
    room = free(path)
    if room is None:
        return f" (the store's disk, {path})"
    return f" (the store's disk, {path}: {room:,} bytes free)"


# a disk with less room than this is taken for the one a full-disk error was about
NEARLY_FULL_BYTES = 16 << 20


def disk_full(where: str = "", at: str = "", gc: bool = False) -> SetupError:
    """A store's write stopped by a full disk: what is kept and the fix; ``where``
    says which file or disk, ``at`` what the command was doing; ``gc``: the command was
    the one the fix would name (QA 2026-12-07: gc told to run gc)."""
    fix = (
        "free space on that disk outside the store (or drop runs no longer needed: "
        "`incbt drop`), then run gc again"
        if gc
        else "free space on that disk (`incbt gc` deletes superseded bars files), then run "
        "the same command again (a sweep: with --resume)"
    )
    err = SetupError(
        f"{at}the disk is full{where}: what this command committed before is kept, "
        f"nothing half-written is (the next write removes it). Fix: {fix}"
    )
    err.full_disk = (where, at)
    return err


# the path in the message of an Arrow I/O error (pyarrow sets no ``filename``)
_ARROW_PATH = (
    re.compile(r"Failed to open local file '([^']+)'"),
    re.compile(r"Expected file path, but (.+) is a directory"),
    re.compile(r"Cannot create directory '?([^']+?)'?[.:]"),
)


def _filename(exc: BaseException) -> str | None:
    """The path an I/O error is about, if it names one."""
    filename = getattr(exc, "filename", None)
    if isinstance(filename, str | bytes | os.PathLike) and os.fspath(filename):
        return os.fsdecode(filename)
    text = str(exc)
    for pattern in _ARROW_PATH:
        m = pattern.search(text)
        if m:
            return m.group(1)
    return None


def _in_a_store(path: str) -> bool:
    """The path is inside an incbt store's folder (a folder above it holds a catalog)."""
    from incbt.store import is_store  # here: incbt.store imports this module

    here = os.path.dirname(os.path.abspath(path))
    while True:
        if is_store(here):
            return True
        up = os.path.dirname(here)
        if up == here:
            return False
        here = up


def _users_path(exc: BaseException, path: str) -> bool:
    """The I/O error is about a path the user gave (an output file, generate's folder),
    not a file of a store: a catalog lists only files inside its store. A relative path
    (the catalog names its files relative to the store) is the user's only when the
    error is about where it leads (its folder is missing, or it is a folder), not about
    the file alone being gone."""
    if _in_a_store(path):
        return False
    if os.path.isabs(path):
        return True
    return not isinstance(exc, FileNotFoundError) or not os.path.isdir(
        os.path.dirname(os.path.abspath(path))
    )


def _path_error(exc: BaseException, path: str, context: str) -> UserError:
    """An I/O error on a path outside every store: a path the user gave is wrong."""
    errno_ = getattr(exc, "errno", None)
    folder = os.path.dirname(os.path.abspath(path))
    # the command's own context is no context: "error: incbt: cannot ..." (QA 2026-12-06)
    at = "" if context == "incbt" else f"{context}: "
    if isinstance(exc, FileExistsError) or errno_ == errno.EEXIST:
        return UserError(
            f"{at}cannot write {path}: it exists already. Fix: give a path that does "
            "not exist yet, or remove that one"
        )
    if isinstance(exc, IsADirectoryError) or "is a directory" in str(exc):
        return UserError(
            f"{at}cannot write {path}: it is a folder. Fix: give the path of a file "
            "(in that folder, or elsewhere)"
        )
    if isinstance(exc, FileNotFoundError) or errno_ == errno.ENOENT:
        if not os.path.isdir(folder):
            return NotFoundError(
                f"{at}cannot write {path}: No such file or directory (no folder "
                f"{folder}). Fix: create the folder first, or give another path"
            )
        return NotFoundError(
            f"{at}cannot create or open {path}: No such file or directory. Fix: give another path"
        )
    if isinstance(exc, NotADirectoryError) or errno_ == errno.ENOTDIR:
        return UserError(
            f"{at}cannot write {path}: a part of the path is a file, not a folder. "
            "Fix: give another path"
        )
    if isinstance(exc, PermissionError) or errno_ in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UserError(
            f"{at}cannot write {path}: {getattr(exc, 'strerror', None) or exc}. "
            "Fix: give a path you may write to"
        )
    return UserError(
        f"{at}cannot write {path}: {getattr(exc, 'strerror', None) or exc}. "
        "Fix: give another path (or free space on its disk)"
    )


# strategy files being imported by incbt (incbt.engine.strategy_api.load_strategies),
# innermost last: a file that opens a store when imported is a script without a
# ``__main__`` guard, which importing would run again, and again
IMPORTING_STRATEGIES: list[str] = []


def refuse_store_while_importing() -> None:
    if IMPORTING_STRATEGIES:
        raise StrategyError(
            "it opens a store when imported: incbt imports a strategy's file again to "
            "compute its runs, which would run the script's commands again. Fix: put them "
            'under `if __name__ == "__main__":`, or keep strategies in a file of their own'
        )


def every_instrument(value: object) -> bool:
    """``instruments=`` asks for every instrument: None or "all" (a pandas Series or an
    Arrow column is a list of names: ``x in (None, "all")`` raised on a Series, QA)."""
    return value is None or (isinstance(value, str) and value == "all")


def names(value: object, what: str) -> list[str]:
    """Ids or names given one (a string) or several: a string is one, not its letters.
    Several: any iterable of strings, a NumPy array, a pandas Series, an Arrow array or
    column (``store.sql(...)["instrument"]``: its scalars are taken as their values)."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Mapping):  # its keys would be taken silently (QA 2026-12-06)
        raise UsageError(f"{what}: give a list of strings, not a dict ({value!r})")
    if hasattr(value, "to_pylist"):  # an Arrow array or column (QA 2026-12-06)
        value = value.to_pylist()
    try:
        out = list(value)  # type: ignore[call-overload]
    except TypeError:
        raise UsageError(f"{what}: give a string or a list of strings, not {value!r}") from None
    out = [v.as_py() if hasattr(v, "as_py") else v for v in out]  # Arrow scalars
    out = [str(v) if isinstance(v, str) else v for v in out]  # numpy.str_ as str
    bad = [v for v in out if not isinstance(v, str)]
    if bad:
        raise UsageError(f"{what}: give strings, not {bad[0]!r}")
    # in the one Unicode form the store keeps names in (a Mac's terminal may type "é" as
    # "e" and a combining accent)
    return [unicodedata.normalize("NFC", v) for v in out]


def whole(value: object, what: str, at_least: int | None = None) -> int | None:
    """A whole number argument (None: not given), or UsageError naming it: 2, not "2"
    or 2.0 or True."""
    if value is None:
        return None
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UsageError(f"{what}: give a whole number, not {value!r}")
    if at_least is not None and value < at_least:
        raise UsageError(f"{what}: give a whole number of at least {at_least}, not {value!r}")
    return int(value)


def flag(value: object, what: str) -> None:
    """Refuse (UsageError naming it) a yes/no argument that is not True or False: "yes"
    and 1 are no answer (a string is always true)."""
    if not isinstance(value, bool):
        raise UsageError(f"{what}: give True or False, not {value!r}")


def number(value: object, what: str) -> None:
    """Refuse (UsageError naming it) an argument given that is not a number."""
    import numbers

    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise UsageError(f"{what}: give a number, not {value!r}")


def mapping(value: object, what: str, example: str, names: bool = False) -> None:
    """Refuse (UsageError naming it) an argument given that is not a dict; ``names``: or
    whose keys and values are not all names (non-empty strings)."""
    from collections.abc import Mapping

    if value is not None and not isinstance(value, Mapping):
        raise UsageError(f"{what}: give a dict ({example}), not {value!r}")
    if names and value:  # QA 2026-12-07: {"ts": 5} was a TypeError of Python's
        for k, v in value.items():  # type: ignore[attr-defined]
            if not all(isinstance(x, str) and x.strip() for x in (k, v)):
                raise UsageError(
                    f"{what}: {k!r}: {v!r}: give names, each a non-empty string ({example})"
                )


def text(value: object, what: str) -> str | None:
    """A string argument (None: not given), or UsageError naming it."""
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{what}: give a string, not {value!r}")
    return value


# QA 2026-12-07: under NUMBA_DISABLE_JIT=1 every step raised in plain Python, which was
# recorded as each strategy failing: an update dropped the stored days of every pair (a
# pair holds all its days or none) and verify called a sound store corrupt
NO_JIT = (
    "NUMBA_DISABLE_JIT is set: incbt runs strategies only as compiled Numba kernels (the "
    "engine's loop with the step inlined), never as plain Python. Nothing was computed or "
    "changed. Fix: unset it (`env -u NUMBA_DISABLE_JIT incbt ...`); to debug a step, call "
    "its Python function (`strategy.py_step`) on your own arrays"
)


def refuse_without_jit() -> None:
    """Raise SetupError when Numba's JIT is off (``NUMBA_DISABLE_JIT``): called before a
    command computes or ingests anything (here: no import to interrupt), and again as a
    kernel loads (``incbt.engine.kernel``)."""
    numba = sys.modules.get("numba")
    if numba is not None:
        off = bool(numba.config.DISABLE_JIT)
    else:  # as Numba reads it, without its import (~0.2 s)
        try:
            off = bool(int(os.environ.get("NUMBA_DISABLE_JIT") or 0))
        except ValueError:
            off = False
    if off:
        raise SetupError(NO_JIT)
