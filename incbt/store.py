"""The Store: one folder holding bars, results and the LMDB catalog.

Layout (``store/README.md`` documents it for users)::

    <store>/
      catalog/            LMDB: event log, indexes, settings (data.mdb, lock.mdb)
      bars/<instrument>/<YYYY-MM>-<hash>.parquet   immutable, content-addressed;
                          a month: a base file + append files; superseded files
                          stay for time travel until ``gc`` removes them
      tmp/                a writer's staging area (removed after each write)
      write.lock          the write lock, naming its holder

Readers never lock; writers take ``write.lock`` for the whole write.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
import shlex
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pyarrow as pa
from pyarrow._parquet import ParquetReader  # see read_days

from incbt import settings as settings_mod
from incbt.bars.ingest import DAY_HASH, IngestSummary, RemoveSummary, recover, remove_days
from incbt.bars.ingest import ingest as _ingest
from incbt.bars.inputs import check_reading
from incbt.bars.layout import RECENT
from incbt.bars.schema import FLOAT_COLUMNS, day_to_iso, given_day
from incbt.catalog import FORMAT_VERSION, Catalog, DayIndex, operation
from incbt.catalog.lock import write_lock
from incbt.errors import (
    STORES,
    DataNoteWarning,
    DateError,
    NotAStoreError,
    NotFoundError,
    SetupError,
    StoreError,
    StoreExistsError,
    StrategyFailureWarning,
    UsageError,
    disk_full,
    flag,
    is_full_disk,
    lost_file_fix,
    mapping,
    names,
    number,
    refuse_store_while_importing,
    refuse_without_jit,
    text,
    whole,
)
from incbt.progress import NULL, Reporter

__all__ = ["BarArrays", "Store", "init", "open_store"]

DEFAULT_STORE = "store"

# every kind of event the log holds (the kinds incbt's writers give append_event)
EVENT_KINDS = (
    "init",
    "ingest",
    "remove",
    "backtest",
    "sweep",
    "update",
    "fork",
    "compact",
    "drop",
    "gc",
    "repair",
)


def default_path() -> str:
    # a "~" the shell left (quoted, or in the variable) is the home folder, as Arrow
    # takes it in -o FILE: a folder named "~" was made here (QA 2026-12-06)
    given = os.environ.get("INCBT_STORE")
    if given is not None and not given.strip():  # set but empty (exported from an unset
        # variable): refused as --store '' is, not ./store of here (QA 2026-12-07)
        raise UsageError("--store (or INCBT_STORE) is empty: give the store's folder")
    return os.path.expanduser(given or DEFAULT_STORE)


@dataclass
class BarsCheck:
    """What ``Store.verify_bars`` found: every current day of every instrument read back
    and hashed, against the content hash recorded when it was ingested."""

    instruments: int = 0
    days: int = 0
    bars: int = 0
    seconds: float = 0.0
    # (instrument, day as YYYY-MM-DD, file): days whose bars differ from those ingested
    differ: list[tuple[str, str, str]] = field(default_factory=list)
    # (file, why): files that could not be read at all (their days not checked)
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differ and not self.unreadable

    def __repr__(self) -> str:
        said = (
            "every day equal to what was ingested"
            if self.ok
            else f"{len(self.differ)} day(s) differ, {len(self.unreadable)} file(s) unreadable"
        )
        return (
            f"<BarsCheck: {self.days:,} day(s) of {self.instruments:,} instrument(s), "
            f"{self.bars:,} bars: {said}>"
        )


@dataclass(frozen=True)
class BarArrays:
    """One instrument's bars over a day range, as contiguous NumPy arrays.

    ``days[k]`` is the k-th trading day (days since 1970-01-01) and
    ``day_ends[k]`` the index one past its last bar.
    """

    instrument: str
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    days: np.ndarray
    day_ends: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def __repr__(self) -> str:
        span = ""
        if len(self.days):
            span = f", {day_to_iso(self.days[0])}..{day_to_iso(self.days[-1])}"
        return f"BarArrays({self.instrument!r}, {len(self)} bars, {len(self.days)} days{span})"


def is_store(path: str) -> bool:
    """The folder holds an incbt store (its catalog)."""
    return os.path.isfile(os.path.join(path, "catalog", "data.mdb"))


def _store_around(path: str) -> str | None:
    """The store a folder lies inside (in one of its folders, at any depth), if any."""
    here = os.path.abspath(path)
    while os.path.dirname(here) != here:
        here = os.path.dirname(here)
        if is_store(here):
            return here
    return None


def _not_a_store(path: str) -> NotAStoreError:
    if os.path.exists(path) and not os.path.isdir(path):  # init would refuse it too (QA)
        return NotAStoreError(
            f"{path} is a file, not an incbt store (a store is a folder): give the store's "
            "folder with --store (or INCBT_STORE), or a new folder's path to `incbt init`"
        )
    left = [d for d in ("bars", "results", "catalog") if os.path.isdir(os.path.join(path, d))]
    if left:  # a store whose catalog is gone: init would refuse the folder (QA 2026-12-06)
        return NotAStoreError(
            f"{path} holds a store's folders ({', '.join(left)}), but its catalog "
            f"{os.path.join(path, 'catalog', 'data.mdb')} is missing: nothing can be read "
            "without it. Fix: restore the store from a backup"
        )
    inside = _store_around(path)
    if inside is not None:  # a folder of a store, not one (QA 2026-12-06: "init" there)
        return NotAStoreError(
            f"{path} is a folder inside the store {inside}, not a store: give the store's "
            f"folder (--store {inside}, or INCBT_STORE)"
        )
    if not os.path.exists(path):  # where a newcomer starts: say what the path is (QA)
        default = (
            " (the default: give another with --store or INCBT_STORE)" if (path == "store") else ""
        )
        return NotAStoreError(
            f"no store at {path}{default}. Create one with `incbt --store {path} init` "
            "(or incbt.init(path) in Python)"
        )
    return NotAStoreError(
        f"{path} is not an incbt store. Create one with `incbt --store {path} init` "
        "(or incbt.init(path) in Python)"
    )


def _no_catalog_in(mdb: str, what: str) -> str:
    return (
        f"the store's catalog {mdb} {what} (damaged, or replaced): nothing in the store can "
        "be read without it. Fix: restore the store from a backup"
    )


def _paths(value: Any, what: str = "paths") -> list[str]:
    """Files, folders or globs given one (a string or a path) or several."""
    if isinstance(value, str | os.PathLike):
        return [os.fspath(value)]
    if hasattr(value, "columns") or isinstance(value, pa.Table | pa.RecordBatch):
        # a DataFrame's iteration gave its column names, read as paths (QA 2026-12-06)
        raise UsageError(
            f"{what}: give files, folders or globs, not a {type(value).__name__}: write the "
            "bars to a Parquet file first (df.to_parquet('bars.parquet'), or "
            "pyarrow.parquet.write_table) and ingest that"
        )
    if isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        out = list(value)
        bad = [p for p in out if not isinstance(p, str | os.PathLike)]
        if not out:  # "no files found in  " said nothing (QA 2026-12-05)
            raise UsageError(f"{what}: give at least one file, folder or glob, not an empty list")
        if not bad:
            return [os.fspath(p) for p in out]
        value = bad[0]
    raise UsageError(
        f"{what}: give a file, folder or glob (a string or a path), or a list of them, "
        f"not {value!r}"
    )


def _zone(tz: Any) -> None:
    """``tz`` of ingest and update: None, or a zone's name (an empty one was ignored)."""
    if text(tz, "tz") is not None and not tz.strip():
        raise UsageError(
            f"--tz {tz!r} (tz= in Python): give a time zone's name (e.g. America/New_York), "
            "or leave it out for "
            "timestamps written with their UTC offset"
        )


if TYPE_CHECKING:  # the types the methods return (their modules load on first use)
    from incbt.bars.gc import GcSummary
    from incbt.drop import DropSummary
    from incbt.runs import Run
    from incbt.sweep import SweepResult
    from incbt.update import UpdateResult, VerifyReport


_CALL: ContextVar[str | None] = ContextVar("incbt_call", default=None)


def _command() -> str:
    """What the event log records as the command: the CLI's arguments, or the Store
    method called from Python."""
    argv = sys.argv
    here = os.path.dirname(os.path.abspath(__file__))
    # the incbt script, or python -m incbt (QA 2026-12-06: recorded as "python: ...")
    if argv and (
        os.path.basename(argv[0]) == "incbt"
        or os.path.abspath(argv[0]) in {os.path.join(here, f) for f in ("__main__.py", "_entry.py")}
    ):
        # quoted as a shell takes it back (QA 2026-12-06: --map ts=Gmt time, unquoted)
        return shlex.join(["incbt", *argv[1:]])[:500]
    call = _CALL.get()
    return f"python: {call}" if call else "python"


F = TypeVar("F", bound=Callable[..., Any])


_WARMED = False  # the first computing call of this process made its imports


def _first_compute() -> None:
    """The imports a process's first computation makes (Numba, pandas through
    pyarrow's look for it, DataFusion, the result writers), made at once, with a Ctrl-C
    meanwhile held until they are done. Made lazily, in the main thread and beside it
    (the kernels' preload thread), a Ctrl-C in the middle of one left the interpreter's
    import locks held or pandas half imported: the next call hung for ever, or failed
    in pandas' words (QA 2026-12-07, 4 of 6 tries at 0.05 s). The CLI (which spares
    pandas, and ends with its command) does not need it."""
    global _WARMED
    if (
        _WARMED
        or incbt_ends_with_command()
        or threading.current_thread() is not threading.main_thread()
    ):
        return
    _WARMED = True
    held: list[Any] = []
    before = signal.getsignal(signal.SIGINT)
    if before is None:  # a handler not set from Python (an embedding): left as it is
        return
    try:
        signal.signal(signal.SIGINT, lambda *sig: held.append(sig))
    except ValueError:  # not where signals are handled
        return
    try:
        import datafusion  # noqa: F401
        import numpy.ma  # noqa: F401  (Numba's, as a kernel loads)
        from numba.core.registry import cpu_target

        import incbt.engine._stack  # noqa: F401
        import incbt.results  # noqa: F401
        import incbt.runs  # noqa: F401

        # Numba's typing and lowering registries, which a kernel's first call imports
        # (numba.np, numba.cpython: ~90 modules) on the kernels' preload thread
        cpu_target.typing_context.refresh()
        cpu_target.target_context.refresh()
        pa.array(np.zeros(1))  # pyarrow looks for pandas at its first array: imports it
    finally:
        signal.signal(signal.SIGINT, before)
    if held:  # the Ctrl-C, now: as the handler it was meant for takes it
        if callable(before):
            before(*held[0])
        elif before == signal.SIG_DFL:
            os.kill(os.getpid(), signal.SIGINT)  # (SIG_IGN: ignored, as meant)


def incbt_ends_with_command() -> bool:
    import incbt

    return bool(getattr(incbt, "_ends_with_command", False))


def _writes(name: str, computes: bool = False) -> Callable[[F], F]:
    """A method (or function) that writes events: the events one call writes share its
    operation id (``events.op``), and name it as their command from Python.
    ``computes``: it runs strategies (:func:`_first_compute` first)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*a: Any, **kw: Any) -> Any:
            if computes:
                if not kw.get("dry_run"):  # before anything is ingested or computed
                    refuse_without_jit()
                _first_compute()
            token = _CALL.set(_CALL.get() or name)
            try:
                with operation():
                    return fn(*a, **kw)
            finally:
                _CALL.reset(token)

        return inner  # type: ignore[return-value]

    return wrap


@_writes("incbt.init")
def init(path: str | None = None, **store_settings: Any) -> Store:
    """Create a store at ``path`` (default ``./store``) and return it.

    Re-running ``init`` on an existing store is a no-op when every setting asked for
    (given here or by its ``INCBT_<NAME>`` variable) is the store's; settings not asked
    for are the store's as they are. A setting asked for that differs raises
    StoreExistsError.
    """
    refuse_store_while_importing()
    path = _store_path(path) if path is not None else default_path()
    wanted = {}
    asked = set()
    explicit_given: set[str] = set()
    for s in settings_mod.SETTINGS:
        if not s.store:
            continue
        explicit = store_settings.pop(s.name, None)
        if explicit is not None:
            explicit_given.add(s.name)
        wanted[s.name] = settings_mod.resolve(s.name, None, explicit)
        if explicit is not None or settings_mod.from_env(s.name) is not None:
            asked.add(s.name)
    if store_settings:
        per_process = [k for k in store_settings if k in settings_mod.BY_NAME]
        if per_process:
            k = per_process[0]
            raise UsageError(
                f"{k} is not kept in the store: it is set for each process, with the "
                f"environment variable INCBT_{k.upper()} (`incbt settings` lists them all)"
            )
        raise UsageError(
            f"unknown store setting(s) {', '.join(store_settings)}; store settings are "
            + ", ".join(s.name for s in settings_mod.SETTINGS if s.store)
        )
    if is_store(path):
        # opening says a variable is ignored; here it was asked for, and a refusal says
        # so alone (QA 2026-12-06: "INCBT_SESSION_TZ=UTC is ignored", then refused for it)
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            store = Store(path)
        have = {k: store.settings.get(k) for k in wanted}
        differ = [k for k in wanted if k in asked and have[k] != wanted[k]]
        if differ:
            diff = ", ".join(
                f"{k}={have[k]!r} (asked {wanted[k]!r}"
                + (f" by INCBT_{k.upper()}" if k not in explicit_given else "")
                + ")"
                for k in differ
            )
            raise StoreExistsError(
                f"{path} is already a store with different settings: {diff}. Use another "
                "folder, or open the existing store as it is"
            )
        for w in said:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return store
    if os.path.exists(path) and not os.path.isdir(path):
        raise StoreExistsError(f"{path} exists and is not a folder")
    outer = _store_around(path)
    if outer is not None:  # its files would sit among another store's
        raise StoreExistsError(
            f"{path} is inside the store {outer}: create the new store outside it"
        )
    foreign = foreign_files(path)
    if foreign:
        raise StoreExistsError(
            f"{path} is a folder with other files in it ({', '.join(sorted(foreign)[:5])}); "
            "create the store in an empty folder"
        )
    _create(path, wanted)
    # a variable the settings given here overrode: said as such, not as "fixed when the
    # store was created" (QA 2026-12-05: said while it was being created)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        store = Store(path)
    for w in said:
        name = next((k for k in wanted if f"INCBT_{k.upper()}=" in str(w.message)), None)
        env = settings_mod.from_env(name) if name else None
        if name is not None and env is not None and env != wanted[name]:
            warnings.warn(
                f"INCBT_{name.upper()}={os.environ[f'INCBT_{name.upper()}']} is ignored: "
                f"{name}={wanted[name]!r} was given for this store",
                UserWarning,
                stacklevel=2,
            )
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return store


def foreign_files(path: str) -> list[str]:
    """The names in folder ``path`` that keep ``init`` from making a store there (what
    an init cut short left is none of them)."""
    return [
        n
        for n in (os.listdir(path) if os.path.isdir(path) else [])
        if n not in ("README.md", ".gitignore", "catalog", "write.lock", "tmp")
        and not (n == "bars" and _empty_dir(os.path.join(path, n)))  # an init cut short
    ]


def _empty_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.listdir(path)


def _create(path: str, wanted: dict[str, Any]) -> None:
    """Make the store's folders and catalog, whole or not at all: a failure (a full
    disk, a locale that cannot spell the path) removes what this call made. QA
    2026-12-06: it left ``bars/`` and a catalog without its first commit, a store that
    neither ``init`` (a folder with other files) nor any command (restore it from a
    backup) would take."""
    from incbt.catalog.env import close_env

    catalog = os.path.join(path, "catalog")
    parents = []  # the folders above it that are not there yet (init of a/b/st)
    up = os.path.dirname(os.path.abspath(path))
    while up and not os.path.exists(up) and up != os.path.dirname(up):
        parents.append(up)
        up = os.path.dirname(up)
    made = parents[::-1] + [
        p for p in (path, catalog, os.path.join(path, "bars")) if not os.path.exists(p)
    ]
    files = [os.path.join(catalog, f) for f in ("data.mdb", "lock.mdb")]
    new_files = [f for f in files if not os.path.exists(f)]
    try:
        os.makedirs(catalog, exist_ok=True)
        os.makedirs(os.path.join(path, "bars"), exist_ok=True)
        cat = Catalog(catalog, settings_mod.resolve("map_size_mb"))

        def setup(txn: Any) -> None:
            cat.put_meta(txn, "format_version", FORMAT_VERSION)
            cat.put_meta(txn, "day_hash", DAY_HASH)
            for k, v in wanted.items():
                cat.put_meta(txn, k, v)
            cat.append_event(txn, "init", _command(), {"settings": wanted})

        cat.env.write(setup)
    except BaseException as exc:
        close_env(catalog)
        for f in new_files:
            with contextlib.suppress(OSError):
                os.remove(f)
        for d in reversed(made):  # innermost first; only folders this call made
            with contextlib.suppress(OSError):
                os.rmdir(d)
        if isinstance(exc, Exception) and _full(exc, path if os.path.isdir(path) else up):
            # QA 2026-12-07: LMDB's "Input/output error", or "restore from a backup"
            raise SetupError(
                f"the disk holding {path} is full: the store was not created (nothing of "
                "it is left). Fix: free space on that disk, or create the store elsewhere"
            ) from None
        raise


def _full(exc: Exception, where: str) -> bool:
    """The error is a full disk's, whoever said it: ENOSPC, LMDB's words for it, an I/O
    error of a disk with (almost) no room left (``where``'s), or incbt's own."""
    from incbt.catalog.env import full_disk_free

    return (
        is_full_disk(exc)
        or getattr(exc, "full_disk", None) is not None
        or full_disk_free(exc, where) is not None
    )


def _hex(text: str) -> bool:
    """Lowercase hex digits only: a run id, or its prefix."""
    return all(c in "0123456789abcdef" for c in text)


def _store_path(path: Any) -> str:
    """A store's path as text, or a UsageError naming what was given instead (QA
    2026-12-06: ``incbt.open(123)`` and ``incbt.open(store)`` were TypeErrors)."""
    if isinstance(path, Store):
        raise UsageError(f"{path!r} is a store already: use it as it is, or give its path")
    if isinstance(path, bytes):
        return os.path.expanduser(os.fsdecode(path))
    if not isinstance(path, str | os.PathLike):
        raise UsageError(
            f"a store is given by its path (a str or pathlib.Path), not {type(path).__name__} "
            f"{path!r}"
        )
    if not str(os.fspath(path)).strip():  # QA 2026-12-07: "no store at ." and "--store  init"
        raise UsageError(
            f"the store's path {os.fspath(path)!r} is empty: give a store's folder (or None "
            "for $INCBT_STORE, else ./store)"
        )
    return os.path.expanduser(os.fspath(path))  # "~/s": the home folder's (see above)


def open_store(path: str | None = None, progress: Reporter = NULL) -> Store:
    """Open an existing store (default ``$INCBT_STORE`` or ``./store``).

    ``progress``: reports the catalog's upgrade, when a store of an older format is
    opened for the first time (a write, once)."""
    return Store(_store_path(path) if path is not None else default_path(), progress)


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _outside() -> int:
    """The ``stacklevel`` that makes a warning raised by the function calling this name
    the user's line: the first frame outside incbt, however deep the call (QA
    2026-12-06: a note of an ingest made by ``store.update`` named incbt's update.py)."""
    f = sys._getframe(2)
    level = 2
    while f is not None and f.f_code.co_filename.startswith(_PACKAGE):
        f = f.f_back  # type: ignore[assignment]
        level += 1
    return level


def warn_failures(report: Any, known: bool = True) -> None:
    """Warn (:class:`StrategyFailureWarning`) when the strategy failed on some (run,
    instrument) pair in this call, or (``known``) failed before and was not retried:
    in a notebook a run's missing rows would otherwise pass unseen. The warning points
    at the caller of the Store method."""
    lost = getattr(report, "not_run", [])
    if lost:  # no strategy failed: the tasks did not run (QA 2026-12-06)
        warnings.warn(
            StrategyFailureWarning(
                f"{len(lost)} (run, instrument) pair(s) not computed: their tasks could not "
                f"run (their workers died on every try). First: {lost[0]} (all of them: "
                ".report.not_run). What was stored is kept: call again to compute them"
            ),
            stacklevel=_outside(),
        )
    errors = report.failures(known)
    if errors:
        warnings.warn(
            StrategyFailureWarning(
                f"the strategy failed on {len(errors)} (run, instrument) pair(s): their "
                f"results are not stored, every other result is. First: {errors[0]} "
                "(all of them: .report.errors and .report.skipped_failed)"
            ),
            stacklevel=_outside(),
        )


class _NoSuchSweep(NotFoundError, KeyError):
    """A name ``store.sweeps()`` does not hold: a KeyError as a dict's, said as
    incbt's (QA 2026-12-07: a bare ``KeyError: 'nosuch'``)."""

    __str__ = NotFoundError.__str__


class _Sweeps(dict):
    """``store.sweeps()``: a dict by name whose missing name is said with the names."""

    def __missing__(self, name: object) -> Any:
        known = ", ".join(map(repr, self)) or "none yet"
        raise _NoSuchSweep(
            f"no sweep {name!r} in the store (its sweeps: {known}; "
            "store.sweep(..., name=...) makes one)"
        )


class Store:
    """An incbt store: ingest bars, query with SQL, read bars for the engine."""

    def __init__(self, path: str, progress: Reporter = NULL) -> None:
        refuse_store_while_importing()
        path = _store_path(path)
        if not is_store(path):
            raise _not_a_store(path)
        mdb = os.path.join(path, "catalog", "data.mdb")
        if os.path.getsize(mdb) == 0:  # LMDB would make it a new, empty catalog
            raise NotAStoreError(_no_catalog_in(mdb, "is empty"))
        self.path = os.path.abspath(path)
        self.catalog = Catalog(
            os.path.join(self.path, "catalog"), settings_mod.resolve("map_size_mb")
        )
        STORES[self.path] = None
        try:
            with self.catalog.env.read() as txn:
                meta = self.catalog.meta(txn)
        except ValueError:  # not JSON: exit 3, "a bug", in Python's words (QA 2026-12-07)
            raise NotAStoreError(_no_catalog_in(mdb, "holds settings incbt cannot read")) from None
        version = meta.get("format_version")
        if version is None:  # QA 2026-12-06: "a store of catalog format None"
            raise NotAStoreError(_no_catalog_in(mdb, "holds no incbt catalog"))
        if version in (1, 2):
            self._upgrade(progress)
            meta["format_version"] = version = FORMAT_VERSION
        elif version == 3:  # format 4 is 3 said anew: older builds refuse it (see env)
            if not self.catalog.env.readonly:
                self.catalog.env.write(self._said_current)
            meta["format_version"] = version = FORMAT_VERSION
        if version != FORMAT_VERSION:
            raise NotAStoreError(
                f"{path} is an incbt store of catalog format {version!r}; this incbt reads "
                f"formats 1 to {FORMAT_VERSION}. Fix: use the incbt version that wrote it, "
                "or create a new store and ingest the bars again"
            )
        self.settings = {s.name: settings_mod.resolve(s.name, meta) for s in settings_mod.SETTINGS}
        # the values the store keeps (set at init), before the environment's
        self.settings_stored = {k: meta[k] for k in settings_mod.BY_NAME if k in meta}
        for line in settings_mod.ignored_env(self.settings_stored):
            warnings.warn(line, UserWarning, stacklevel=3)
        if not incbt_ends_with_command():  # the CLI says them as notes, once
            for line in settings_mod.unknown_variables():
                warnings.warn(line, UserWarning, stacklevel=3)

    def close(self) -> None:
        """Close the store in this process: its catalog's files and memory map, which
        stay open until then (a process opening many stores, a web app or a job runner,
        keeps 3 file descriptors a store). Every Store object of this path in the
        process is closed with it; ``incbt.open`` opens it again. ``with incbt.open(p)
        as store:`` closes it at the end of the block."""
        from incbt.catalog.env import close_env

        close_env(self.catalog.env.path, by_user=True)
        STORES.pop(self.path, None)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _said_current(self, txn: Any) -> None:
        """Format 3 to 4 (the same tables; see ``incbt.catalog.env.FORMAT_VERSION``)."""
        if self.catalog.meta(txn).get("format_version") == 3:  # not done by another process
            self.catalog.put_meta(txn, "format_version", FORMAT_VERSION)

    def _upgrade(self, progress: Reporter) -> None:
        """Formats 1 and 2 to 4, in one transaction (a crash leaves the old format).

        Format 1 kept one file per bucket, a list of one in format 2's encoding;
        format 2 kept snapshots keyed by run first (``snapshots``), format 3 by
        instrument and day first (``snaps``, see :mod:`incbt.catalog.runs`).
        """
        from incbt.catalog import runs as rc

        cat = self.catalog
        old = cat.env.db(b"snapshots")  # opened outside the write transaction

        def up(txn: Any) -> None:
            if cat.meta(txn).get("format_version") in (1, 2):  # not done by another process
                n = txn.stat(old)["entries"]
                if n >= 100_000:  # ~0.5 s a 100,000: say why this open takes long
                    print(
                        f"incbt: upgrading the catalog of {self.path} to format "
                        f"{FORMAT_VERSION} (moving {n:,} snapshots; once)",
                        file=sys.stderr,
                        flush=True,
                    )
                bar = progress.task("upgrading the catalog: snapshots moved", n)
                rc.migrate_snapshots(cat, txn, old, advance=bar.advance)
                bar.done()
                cat.put_meta(txn, "format_version", FORMAT_VERSION)

        cat.env.write(up)
        cat.env.forget(b"snapshots")

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        """Pickled as its path, opened again where it is unpickled (a worker process's
        argument: QA 2026-12-07, "cannot pickle 'Environment' object")."""
        return (open_store, (self.path,))

    def __repr__(self) -> str:
        try:
            with self.catalog.env.read() as txn:
                n_inst = len(self.catalog.instruments(txn))
                seq = self.catalog.last_seq(txn)
        except StoreError:  # a repr says so, it does not raise (a notebook shows it)
            return f"<incbt.Store {self.path!r}: {self.catalog.env.unreadable()}>"
        return f"<incbt.Store {self.path!r}: {n_inst} instruments, {seq} events>"

    # -- writing -----------------------------------------------------------
    def _lock_timeout(self) -> float:
        """The ``lock_timeout`` setting as the environment says it now (it is no store
        setting): a refused write says "raise INCBT_LOCK_TIMEOUT", which a notebook does
        in its own process, and the store it holds open went on waiting the time read
        when it was opened (QA 2026-12-08). ``settings`` shows the value taken."""
        value = settings_mod.resolve("lock_timeout", self.settings_stored)
        self.settings["lock_timeout"] = value
        return float(value)

    def lock(self, recover_first: bool = True) -> AbstractContextManager[None]:
        """The store's write lock (waits up to the ``lock_timeout`` setting). Whoever
        takes it first removes what a crashed writer left (``recover``): every writing
        command does, not only those with something to write (``recover_first`` False:
        a dry run, which writes nothing)."""
        self.catalog.env.still_here()  # a store moved or deleted: said, not a raw error
        return write_lock(
            self.path,
            self._lock_timeout(),
            on_acquire=(lambda: recover(self.path, self.catalog)) if recover_first else None,
        )

    @_writes("store.ingest")
    def ingest(
        self,
        paths: str | Sequence[str],
        *,
        columns: Mapping[str, str] | None = None,
        tz: str | None = None,
        dry_run: bool = False,
        progress: Reporter = NULL,
        join_days: bool = False,
        rewrite: bool = False,
        ts_unit: str = "ns",
        instrument: str | None = None,
        ts_format: str | None = None,
        header: str | Sequence[str] | None = None,
        decimal: str | None = None,
    ) -> IngestSummary:
        """Ingest CSV/Parquet files, folders or globs as one atomic batch.

        ``columns`` maps bars columns to the file's names (``{"ts": "time"}``);
        ``tz`` names the zone of timestamps written without a UTC offset;
        ``ts_unit`` the unit of integer timestamps since 1970-01-01 UTC (s, ms, us, ns).
        ``instrument``: the instrument of every bar of files without a column of names
        (a vendor's file per symbol): a name, or ``"{stem}"`` (each file's name without
        its extensions: ``AAPL`` for ``AAPL.csv.gz``) or ``"{folder}"`` (its folder's).
        ``ts_format``: how text times are written where not ISO 8601 (strptime codes:
        ``"%m/%d/%Y %H:%M"``; ``.%f`` at the end for fractions of a second); with
        ``columns={"ts": "Date+Time"}`` a date's and a time's columns are read together.
        ``header``: the names of the fields of CSV files without a header line, in order
        (``"Date,Time,Open,High,Low,Close,Volume"``): their first line is a bar (read
        whole, not in parts). ``decimal``: the CSV files' decimal mark, ``"."`` or
        ``","`` (where not given, judged from each file's first 64 KiB).
        ``join_days``: new bars are merged into a stored day (bars at new times added,
        a bar at a stored bar's time replacing it, the others kept: bars sent as they
        come); without it they replace the day whole, as any correction.
        ``rewrite``: days whose bars equal the store's are written again all the same,
        and results recompute from them: the repair of a bars file that
        :meth:`verify_bars` found changed outside incbt, from the original data.
        """
        paths = _paths(paths)
        mapping(columns, "columns", '{"ts": "time"}', names=True)
        _zone(tz)
        flag(dry_run, "dry_run")  # "false" is true (QA 2026-12-06: merged, or not written)
        flag(join_days, "join_days")
        flag(rewrite, "rewrite")
        names_given = check_reading(ts_unit, instrument, ts_format, header, decimal, columns)
        summary = _ingest(
            self.path,
            self.catalog,
            paths,
            session_tz=self.settings["session_tz"],
            row_group_rows=int(self.settings["row_group_rows"]),
            lock=self.lock,
            command=_command(),
            mapping=columns,
            tz=tz,
            dry_run=dry_run,
            progress=progress,
            chunk_bytes=int(float(self.settings["ingest_chunk_mb"]) * (1 << 20)),
            max_files=int(self.settings["bucket_max_files"]),
            join_days=join_days,
            rewrite=rewrite,
            ts_unit=ts_unit,
            instrument=instrument,
            ts_format=ts_format,
            header=names_given,
            decimal=decimal,
        )
        notes = summary.notes()
        if notes:  # said, as the CLI says them (a notebook showed nothing: QA 2026-12-05)
            warnings.warn(
                DataNoteWarning(
                    "; ".join(notes) + " (IngestSummary.short_days, .missing_days, "
                    ".off_minute, .replaced_apart, .skipped_files, .ignored_columns and "
                    ".no_bars list them)"
                ),
                stacklevel=_outside(),
            )
        return summary

    def _removed_whole_by(self, instruments: Sequence[str]) -> dict[str, int]:
        """Of these instruments with no bar, those a remove left with none, and its event
        (the newest such)."""
        cat = self.catalog
        out: dict[str, int] = {}
        with cat.env.read() as txn:
            want = set(instruments) & set(cat.removed_instruments(txn))
            if not want:
                return out
            for ev in cat.events(txn):
                if ev.kind == "remove":
                    for i in ev.summary.get("emptied", ()):
                        if i in want and i not in out:
                            out[i] = ev.seq
                if len(out) == len(want):
                    break
        return {i: out[i] for i in instruments if i in out}

    @_writes("store.remove")
    def remove(
        self,
        instruments: str | Sequence[str],
        *,
        start: Any = None,
        end: Any = None,
        dry_run: bool = False,
        progress: Reporter = NULL,
    ) -> RemoveSummary:
        """Take bars out of the store, as one event: every day of these instruments,
        or only their days from ``start`` to ``end`` (dates, inclusive; either may be
        left out). For bars that should never have been ingested (a symbol mistyped,
        days a vendor took back, bars stamped on the wrong day): the days removed are
        changes, as corrections are, so the runs over those instruments recompute from
        the first of them at the next ``update`` (and lose their results after it
        where no bar is left), equal to a store that never held them. The files they
        were in stay for ``--as-of`` until ``gc``. Returns a RemoveSummary; a range
        with no bar of the store is a NotFoundError."""
        insts = names(instruments, "instruments")
        if not insts or not all(i.strip() for i in insts):
            raise UsageError("give the instruments whose bars to remove (names, not empty)")
        flag(dry_run, "dry_run")
        held = set(self.instruments())
        unknown = [i for i in dict.fromkeys(insts) if i not in held]
        if unknown:  # a typo beside a real name: nothing removed (QA 2026-12-06: ignored)
            shown = ", ".join(map(repr, unknown[:5]))
            # or taken out whole before: the same command run again once done (after a
            # kill past its commit, say), said as a typo (QA 2026-12-08)
            gone = self._removed_whole_by(unknown)
            said = "; ".join(f"{i} was taken out whole by event {seq}" for i, seq in gone.items())
            raise NotFoundError(
                f"the store holds no bars of {shown}: nothing was removed"
                + (
                    f" ({said}: `incbt log --kind remove` lists what each remove took)"
                    if len(gone) == len(unknown)
                    else ' (`incbt query "SELECT DISTINCT instrument FROM bars"` lists the '
                    "instruments it holds; "
                    + (f"{said}; " if said else "taken out before? ")
                    + "`incbt log --kind remove` lists what each remove took)"
                )
            )
        lo = given_day("0001-01-01" if start is None else start, "--from (start=)")
        hi = given_day("9999-12-31" if end is None else end, "--to (end=)")
        if lo > hi:
            raise UsageError(
                f"--from (start=) {day_to_iso(lo)} is after --to (end=) {day_to_iso(hi)}: "
                "give the first day, then the last"
            )
        return remove_days(
            self.path,
            self.catalog,
            dict.fromkeys(dict.fromkeys(insts), (lo, hi)),
            row_group_rows=int(self.settings["row_group_rows"]),
            lock=self.lock,
            command=_command(),
            dry_run=dry_run,
            progress=progress,
        )

    @_writes("store.recover")
    def recover(self) -> int:
        """Remove what a crashed writer left behind; returns files removed."""
        with write_lock(self.path, self._lock_timeout()):
            return recover(self.path, self.catalog)

    @_writes("store.drop")
    def drop(
        self, run_ids: Sequence[str] = (), *, sweep: str | None = None, dry_run: bool = False
    ) -> DropSummary:
        """Drop runs (ids or unique prefixes), or with ``sweep`` every run of a sweep and
        the sweep: no longer updated, their rows, metrics and snapshots gone from the
        catalog and SQL. Registering one again computes it from scratch. A base of a
        fork cannot be dropped without the fork. Returns a DropSummary (``incbt.drop``)."""
        from incbt.drop import drop

        return drop(self, names(run_ids, "run ids"), sweep, dry_run=dry_run, command=_command())

    @_writes("store.gc")
    def gc(
        self,
        before: int | None = None,
        keep_days: float | None = None,
        dry_run: bool = False,
        catalog: bool = False,
    ) -> GcSummary:
        """Delete superseded bars files kept for time travel, and the results' dead rows;
        returns a GcSummary.

        Neither option: every bars file that is not current goes (``--as-of``
        then reaches back only to the latest event that superseded one).
        ``before=EVENT``: only files superseded at or before EVENT, so time travel
        to EVENT and later is unchanged; ``keep_days=N``: EVENT is the first event
        newer than N days ago. ``dry_run``: say what would go, write nothing.
        Results: the batches from the oldest holding rows SQL no longer shows (of
        dropped or replaced runs, or recomputed since) are rewritten as one without
        them (``.results``: a Reclaim). Current bars, the results SQL shows, the
        event log and ``changes`` are unchanged. ``catalog``: then compact the
        catalog's file, which never shrinks by itself (``.catalog``: a
        CatalogCompaction; a dry run says what a copy of its pages in use would take).
        """
        from incbt.bars.gc import gc
        from incbt.catalog.compact import compact_catalog
        from incbt.results.compact import reclaim

        whole(before, "before (an event seq)")
        number(keep_days, "keep_days")
        kw: dict[str, Any] = dict(before=before, keep_days=keep_days, command=_command())
        if not isinstance(catalog, bool):
            raise UsageError(f"catalog={catalog!r}: give True or False")
        if dry_run:
            s = gc(self.path, self.catalog, lock=self.lock, dry_run=True, **kw)
            s.results = reclaim(self, dry_run=True)
            if catalog:
                s.catalog = compact_catalog(self, "", dry_run=True)
            return s
        with self.lock():  # one write: the bars' gc, then the results', then the catalog
            try:
                s = gc(self.path, self.catalog, lock=contextlib.nullcontext, **kw)
                s.results = reclaim(self, _command())
                if catalog:
                    s.catalog = compact_catalog(self, _command())
            except SetupError as exc:  # its fix is not "run gc" (QA 2026-12-07)
                if exc.full_disk is None:
                    raise
                raise disk_full(*exc.full_disk, gc=True) from None
        return s

    @_writes("store.repair", computes=True)
    def repair(self, dry_run: bool = False, progress: Reporter = NULL) -> Any:
        """Repair results files lost or damaged outside incbt: each results batch with a
        file missing or unreadable is forgotten and the runs that had rows in it are
        computed again from scratch (results are derived from the bars); bars files
        missing or damaged are said (``.bars_files``), not repaired. Returns a
        :class:`~incbt.repair.RepairResult`; ``dry_run``: say what, write nothing.

            >>> store.repair(dry_run=True).runs
        """
        from incbt.repair import repair

        return repair(self, dry_run=dry_run, command=_command(), progress=progress)

    # -- backtests ---------------------------------------------------------
    @_writes("store.backtest", computes=True)
    def backtest(
        self,
        strategy: Any,
        params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        *,
        instruments: Sequence[str] | str | None = None,
        start: str | None = None,
        notional: float | None = None,
        fee_bps: float | None = None,
        slippage_bps: float | None = None,
        universe: str | None = None,
        strategies_file: str | None = None,
        fork_of: str | None = None,
        effective: str | None = None,
        progress: Reporter = NULL,
        dry_run: bool = False,
    ) -> Run | list[Run]:
        """Register a run (or one per params dict in a list) and compute what it lacks.

        ``strategy``: a built-in name, a name in ``strategies_file``, or a
        Strategy made with ``@incbt.strategy`` in a ``.py`` file (not a notebook cell:
        a later update imports the file again to recompute the run; this process
        computes with the object given). ``instruments``: names, or
        None/"all" for every instrument (including ones that arrive later);
        ``universe``: SQL over ``bars`` returning an ``instrument`` column.
        The same inputs give the same run id: a second call computes nothing.
        ``start``: the run's first day, a date ``"YYYY-MM-DD"`` (default: each
        instrument's first bar). ``notional`` (currency per position, default
        100,000), ``fee_bps`` (fee per fill in basis points of the fill's |notional|,
        default 0) and ``slippage_bps`` (fills at open x (1 +/- bps/1e4), default 0):
        the execution parameters.

            >>> run = store.backtest("sma_cross", {"fast": 10, "slow": 50}, fee_bps=1.0)
            >>> runs = store.backtest("breakout", [{"lookback": n} for n in (30, 60)])
        ``fork_of`` (a run id) and ``effective`` (a date D) make a fork: the base
        run until D-1, then these parameters (SEMANTICS.md); ``strategy`` may be
        None then, and execution parameters not given are the base's (one given, 0
        included, applies from D: the days before are the base's).
        Returns a Run (or a list of Runs, one per params dict).
        ``dry_run``: validate and plan only; each Run's ``report`` says what would be
        computed, and nothing is written (a new run is not registered).
        """
        from incbt import fork as fork_mod
        from incbt import runs as runs_mod

        if (
            params is not None
            and not isinstance(params, Mapping)
            and (
                isinstance(params, str)
                or not isinstance(params, Sequence)
                or not all(isinstance(p, Mapping) for p in params)
            )
        ):
            none_at = (
                next((k for k, p in enumerate(params) if p is None), None)
                if isinstance(params, list | tuple)
                else None
            )
            if none_at is not None:  # it meant the defaults, run and stored (QA 2026-12-06)
                raise UsageError(
                    f"params[{none_at}] is None: give {{}} for the strategy's defaults, or leave "
                    "the set out"
                )
            raise UsageError(
                "params: give a dict of parameter values ({'fast': 5, 'slow': 20}), or a "
                f"list of dicts, not {params!r}"
            )
        many = isinstance(params, Sequence) and not isinstance(params, Mapping)
        sets: list[Any] = list(params) if many else [params]  # type: ignore[arg-type]
        if not sets:  # QA 2026-12-07: [] ran nothing and returned [] without a word
            raise UsageError(
                "params: an empty list is no parameter set: give a dict ({} for the strategy's "
                "defaults) or a list of them"
            )
        asked = {"notional": notional, "fee_bps": fee_bps, "slippage_bps": slippage_bps}
        given: dict[str, float] = {k: v for k, v in asked.items() if v is not None}
        for k, v in given.items():
            number(v, k)
        ex = {"notional": 100000.0, "fee_bps": 0.0, "slippage_bps": 0.0, **given}
        flag(dry_run, "dry_run")
        text(universe, "universe")
        if fork_of is not None or effective is not None:
            if fork_of is None or effective is None:
                raise UsageError("a fork needs both fork_of (--from) and effective (--effective)")
            if instruments is not None or start is not None or universe is not None:
                raise UsageError("a fork keeps its base run's instruments and start")
            base = self.run(fork_of).record
            if strategy is not None and strategy != base.strategy:
                raise UsageError(f"run {base.run_id} is a {base.strategy} run, not {strategy}")
            if strategies_file is not None:  # was ignored, a path not there too (QA)
                from incbt.sweep import _same_file

                was = None if base.source == "builtin" else base.source
                if was is None or not _same_file(os.fspath(strategies_file), was):
                    raise UsageError(
                        f"run {base.run_id} runs {base.strategy!r} "
                        + ("(a built-in)" if was is None else f"of {was}")
                        + f", not of {os.path.abspath(os.fspath(strategies_file))}: a fork "
                        "keeps its base run's strategy (leave out --strategies)"
                    )
            # what is given, a 0 included: found 2026-12-05, fee_bps=0 on a fork of a
            # run with fees was taken as "not given" and the fork kept the base's fee
            records = [fork_mod.register_fork(self, fork_of, effective, p, given) for p in sets]
        else:
            records = [
                runs_mod.register(
                    self,
                    strategy,
                    p,
                    instruments=instruments,
                    start=start,
                    exec_params=ex,
                    universe_sql=universe,
                    strategies_file=strategies_file,
                )
                for p in sets
            ]
        unique = list({r.run_id: r for r in records}.values())
        report = runs_mod.bring_up_to_date(
            self, unique, command=_command(), progress=progress, dry_run=dry_run
        )
        if not dry_run:
            warn_failures(report)
        out = [runs_mod.Run(self, r, report) for r in records]
        return out if many else out[0]

    @_writes("store.sweep", computes=True)
    def sweep(
        self,
        strategy: str,
        grid: Mapping[str, Any] | None = None,
        *,
        random: int | None = None,
        seed: int = 0,
        instruments: Sequence[str] | str | None = None,
        start: str | None = None,
        notional: float | None = None,
        fee_bps: float | None = None,
        slippage_bps: float | None = None,
        name: str | None = None,
        resume: bool = False,
        workers: int | None = None,
        address: str | None = None,
        strategies_file: str | None = None,
        dry_run: bool = False,
        progress: Reporter = NULL,
    ) -> SweepResult:
        """Run a parameter grid (``{"fast": [5, 10], "slow": "50:200:50"}``) as a named sweep.

        ``random=N`` samples N grid points (``seed``). An existing name needs
        ``resume=True``: completed runs are kept, the rest computed, and a parameter
        the grid leaves out keeps the sweep's values (no grid: the sweep as it is), as
        do instruments, start and execution parameters not given.
        ``workers`` or ``address`` put it on Ray (a local Ray with that many workers, or
        a cluster). ``store.sweeps()`` lists the store's sweeps without computing.

            >>> sw = store.sweep("sma_cross", {"fast": [5, 10], "slow": "50:200:50"}, name="g")
            >>> sw.leaderboard(n=5), sw.pivot("fast", "slow")
            >>> store.sweep("sma_cross", {"fast": [20]}, name="g", resume=True)  # grows it
        """
        from incbt.sweep import sweep

        if grid is None:
            grid = {}
        if not isinstance(grid, Mapping):
            raise UsageError(
                "grid: give a dict of each parameter's values ({'fast': [5, 10], "
                f"'slow': '50:200:50'}}), not {grid!r}"
            )
        # as ints: a NumPy int was taken, then failed as JSON or as a seed (QA 2026-12-06)
        random = whole(random, "random (a number of grid points)")
        seed = whole(seed, "seed (--seed)", at_least=0) or 0  # -1 drew as 1 does (QA 2026-12-07)
        for k, v in (("notional", notional), ("fee_bps", fee_bps), ("slippage_bps", slippage_bps)):
            number(v, k)
        flag(resume, "resume")
        flag(dry_run, "dry_run")
        whole(workers, "workers")
        text(name, "name")
        text(address, "address")
        # not given: the defaults (100000, 0, 0), or on resume the sweep's own
        ex = {
            k: v
            for k, v in (
                ("notional", notional),
                ("fee_bps", fee_bps),
                ("slippage_bps", slippage_bps),
            )
            if v is not None
        }
        res = sweep(
            self,
            strategy,
            grid,
            sample=random,
            seed=seed,
            instruments=instruments,
            start=start,
            exec_params=ex,
            name=name,
            resume=resume,
            workers=workers,
            address=address,
            strategies_file=strategies_file,
            dry_run=dry_run,
            command=_command(),
            progress=progress,
        )
        if not dry_run:
            warn_failures(res.report)
        # said as the CLI says them (found by QA 2026-12-05: silent in Python)
        if resume and res.created:  # a new name, perhaps mistyped
            from incbt.sweep import sweeps

            others = sorted(x["name"] for x in sweeps(self) if x["name"] != res.name)
            warnings.warn(
                f"no sweep named {res.name!r} to resume: "
                + ("it would be started" if dry_run else "started it")
                + (f" (the store's sweeps: {', '.join(others[:10])})" if others else ""),
                UserWarning,
                stacklevel=_outside(),
            )
        if res.skipped and not res.short:  # (QA 2026-12-06: only counted in the repr)
            where = "left out of the sample" if random is not None else "skipped"
            warnings.warn(
                f"{where}: {len(res.skipped)} grid point(s) the strategy rejects, e.g. "
                f"{res.skipped[0]} (.skipped lists them)",
                UserWarning,
                stacklevel=_outside(),
            )
        if res.short:
            warnings.warn(res.short, UserWarning, stacklevel=_outside())
        return res

    def report(self, target: str, path: str | os.PathLike[str], metric: str | None = None) -> str:
        """Write a self-contained HTML report of a run (id or prefix) or a sweep (name);
        ``metric``: a sweep's heatmap and ranking metric (sharpe by default)."""
        from incbt.report import report

        if not isinstance(target, str):
            raise UsageError(f"target: give a run id or a sweep's name, not {target!r}")
        if not isinstance(path, str | os.PathLike) or not os.fspath(path):
            raise UsageError(
                f"path (-o): give the HTML file to write (e.g. report.html), not {path!r}"
            )
        if metric is not None:
            text(metric, "metric")
        return report(self, target, os.fspath(path), metric)  # a Path too (QA 2026-12-06)

    @_writes("store.update", computes=True)
    def update(
        self,
        paths: str | Sequence[str] | None = None,
        *,
        dry_run: bool = False,
        columns: Mapping[str, str] | None = None,
        tz: str | None = None,
        progress: Reporter = NULL,
        join_days: bool = False,
        ts_unit: str | None = None,
        instrument: str | None = None,
        ts_format: str | None = None,
        header: str | Sequence[str] | None = None,
        decimal: str | None = None,
        retry_failed: bool = False,
    ) -> UpdateResult:
        """Ingest ``paths`` (if any), then bring every registered run up to date.
        ``columns``, ``tz``, ``join_days``, ``ts_unit``, ``instrument``, ``ts_format``,
        ``header``, ``decimal``: as for :meth:`ingest`. ``retry_failed``: compute again
        the (run, instrument) pairs whose strategy failed before, as if new (by default
        they wait for a change of a day they read: the same bars fail the same way).

        Computes exactly the invalid segments (new days, days from a correction or
        a late day on, runs whose strategy code changed). Returns an UpdateResult.

            >>> store.update("data/2024-06-04.csv")      # a new day: every run resumes
            >>> store.update("data/", dry_run=True).stale  # what it would compute, and why
        """
        from incbt.update import update

        if paths is not None:
            paths = _paths(paths)
        mapping(columns, "columns", '{"ts": "time"}', names=True)
        _zone(tz)
        flag(dry_run, "dry_run")
        flag(join_days, "join_days")
        flag(retry_failed, "retry_failed")
        extra: dict[str, Any] = {
            k: v
            for k, v in (
                ("columns", columns),
                ("tz", tz),
                ("ts_unit", ts_unit),
                ("instrument", instrument),
                ("ts_format", ts_format),
                ("header", header),
                ("decimal", decimal),
            )
            if v is not None
        }
        check_reading(ts_unit, instrument, ts_format, header, decimal, columns)
        if paths is None and extra:  # as the CLI refuses them (QA 2026-12-06: ignored)
            name = next(iter(extra))
            raise UsageError(f"{name}= applies to the files update ingests: give them")
        if join_days:
            if paths is None:
                raise UsageError("join_days applies to the files update ingests: give them")
            extra["join_days"] = True
        res = update(
            self,
            paths,
            dry_run=dry_run,
            command=_command(),
            progress=progress,
            retry_failed=retry_failed,
            **extra,
        )
        from incbt.sweep import unfinished

        # said as `incbt update` says it (the API said nothing: QA 2026-12-06)
        res.unfinished_sweeps = unfinished(self)
        # results files gone: not "all up to date" (QA 2026-12-07: status said them, and
        # update said all was; a stat each, a few dozen files: compaction keeps them few)
        from incbt.catalog import runs as rc

        with self.catalog.env.read() as txn:
            results = [r[k] for _, r in rc.batches(self.catalog, txn) for k in ("daily", "fills")]
        res.missing_files = [f for f in results if not os.path.exists(os.path.join(self.path, f))]
        if not dry_run:  # pairs that failed before and were not retried: not news here
            warn_failures(res.report, known=False)
        if res.broken and not dry_run:
            warnings.warn(
                StrategyFailureWarning(
                    f"{len(res.broken)} run(s) cannot be recomputed: their strategy does not "
                    "load or no longer takes their parameters, so their results stay as "
                    "they are, not up to date. First: "
                    f"{res.broken[0]} (all of them: .broken). Fix: restore or repair the "
                    "strategies file (runs.source names it), or drop the runs"
                ),
                stacklevel=_outside(),
            )
        return res

    def status(self) -> UpdateResult:
        """What is stale and why, and the work an update would do (writes nothing); and
        the store's files the catalog lists that are missing or damaged
        (``.missing_files``, ``.damaged_files``: the store was changed outside incbt).

        >>> st = store.status()
        >>> [(r.run_id, r.instrument, r.reason, r.from_day) for r in st.stale]
        """
        return self.status_of(None)

    def status_of(self, files: list[Any] | None) -> UpdateResult:
        """:meth:`status`, given the store's current bars files (``files``: a caller that
        read them already, as ``incbt status`` does for its summary; None: read here)."""
        from incbt.catalog.compact import sizes, worth
        from incbt.sweep import unfinished
        from incbt.update import status

        res = status(self)
        res.missing_files, res.damaged_files = self.damaged_files(files)
        res.unfinished_sweeps = unfinished(self)
        size, used = sizes(self.catalog.env)
        # said where most of the file is unused (a big drop), not for the free pages of
        # every day's churn, which LMDB reuses
        res.catalog_unused_bytes = size - used if worth(size, used) and used < size / 2 else 0
        return res

    def damaged_files(self, files: list[Any] | None = None) -> tuple[list[str], list[str]]:
        """The store's files the catalog lists (``files``: its current bars files, read
        here if not given) that are missing, and those damaged: bars files of another
        size than recorded; results files (a few dozen: compacted) whose Parquet footer
        does not read. A stat a bars file (~1 us; 29,000 files at the seed's scale)."""
        from incbt.catalog import runs as rc

        gone: list[str] = []
        bad: list[str] = []
        with self.catalog.env.read() as txn:
            if files is None:
                files = self.catalog.current_files(txn)
            results = [r[k] for _, r in rc.batches(self.catalog, txn) for k in ("daily", "fills")]
        for f in files:
            try:
                size = os.stat(os.path.join(self.path, f.path)).st_size
            except FileNotFoundError:
                gone.append(f.path)
                continue
            if size != f.bytes:
                bad.append(f.path)
        import pyarrow.parquet as pq

        for rel in results:
            try:  # its footer read (a file cut short, or changed under its magic bytes)
                pq.read_metadata(os.path.join(self.path, rel))
            except FileNotFoundError:
                gone.append(rel)
            except (OSError, pa.ArrowException):
                bad.append(rel)
        return gone, bad

    def verify_bars(self, progress: Reporter = NULL) -> BarsCheck:
        """Read every current bars file back whole, from disk, and compare each of its
        days with the content hash recorded when it was ingested, and its ``date`` and
        ``instrument`` columns with the day and instrument they hold (what SQL filters
        and groups on): a bars file changed outside incbt (a bit flipped on disk, a
        file replaced) is found even where its size is the same (``status`` compares
        sizes only). A file that cannot be read whole, or is not a bars file of the
        rows the catalog has there, is unreadable; its days are not checked. One
        instrument at a time.

            >>> store.verify_bars().ok
        """
        import pyarrow.parquet as pq

        from incbt.bars.ingest import BLOCK_ROWS, day_hash, store_hasher
        from incbt.bars.schema import day_to_iso

        t0 = time.perf_counter()
        new = store_hasher(self.catalog)
        out = BarsCheck()
        insts = self.instruments()
        bar = progress.task("instruments", len(insts))
        for inst in insts:
            with self.catalog.env.read() as txn:
                index = self.catalog.day_index(txn, inst, 0)
                paths: dict[bytes, str] = {}
                self.catalog.paths(txn, index, paths)
            out.instruments += 1
            rec = index.records
            by_file: dict[bytes, list[int]] = {}
            for k in range(len(index.days)):
                by_file.setdefault(rec["file"][k].tobytes(), []).append(k)
            for f, ks in by_file.items():
                rel = paths[f]
                try:  # from disk, whole (not the copy a writer of this process keeps)
                    t = pq.read_table(os.path.join(self.path, rel), use_threads=False)
                    cols = {
                        c: t.column(c).combine_chunks().to_numpy(zero_copy_only=False)
                        for c in BLOCK_ROWS
                    }
                    cols["ts"] = cols["ts"].view(np.int64)
                    dates = t.column("date").combine_chunks().to_numpy(zero_copy_only=False)
                    dates = dates.astype("datetime64[D]").astype(np.int64)
                    names = t.column("instrument").to_pylist()
                except Exception as exc:  # noqa: BLE001 - any failure: the file is bad
                    why = " ".join(str(exc).split())[:200] or type(exc).__name__
                    out.unreadable.append((rel, f"{rel} cannot be read ({why})"))
                    continue
                n = len(cols["ts"])
                for k in ks:
                    lo, rows = int(rec["offset"][k]), int(rec["rows"][k])
                    day = int(index.days[k])
                    hi = lo + rows
                    if hi > n:
                        out.unreadable.append(
                            (rel, f"{rel} holds {n:,} rows, not the {hi:,} the catalog lists")
                        )
                        break
                    same = (
                        day_hash(cols, lo, hi, new) == rec["hash"][k].tobytes()
                        and bool((dates[lo:hi] == day).all())
                        and all(x == inst for x in names[lo:hi])
                    )
                    if not same:
                        out.differ.append((inst, day_to_iso(day), rel))
                    out.days += 1
                    out.bars += rows
            bar.advance()
        bar.done()
        out.seconds = time.perf_counter() - t0
        return out

    def verify(
        self,
        run_ids: Sequence[str] | None = None,
        progress: Reporter = NULL,
        *,
        sweep: str | None = None,
    ) -> VerifyReport:
        """Recompute runs from scratch in memory and compare with the store bit for bit:
        ``run_ids`` (ids or unique prefixes), every run of ``sweep``, or (neither)
        every run.

            >>> store.verify().ok   # True: every result equals a from-scratch run
        """
        from incbt.update import verify

        refuse_without_jit()  # not "differs": the store is not at fault (QA 2026-12-07)
        _first_compute()
        if sweep is not None and not isinstance(sweep, str):
            raise UsageError(f"sweep: give a sweep's name, not {sweep!r}")
        ids = None if run_ids is None else names(run_ids, "run ids")
        if ids is not None and not ids:  # a filter that kept nothing is not "every run"
            raise UsageError(  # (QA 2026-12-06: [] verified every run)
                "run_ids is empty: give the run ids to verify, or None for every run"
            )
        return verify(self, ids, progress, sweep=sweep)

    def sweeps(self) -> dict[str, SweepResult]:
        """The store's sweeps by name, oldest first: each one's runs (``run_ids``,
        ``runs``), ``grid``, ``leaderboard`` and ``pivot``, as ``sweep`` returns them
        (without a report: nothing is computed)."""
        from incbt.sweep import SweepResult, sweeps

        found = sorted(sweeps(self), key=lambda r: (r["created"], r["name"]))
        out = _Sweeps()
        for r in found:
            out[r["name"]] = SweepResult(r["name"], r["runs"], 0, store=self)
            out[r["name"]].created_at = r["created"]
        return out

    def runs(self, strategy: str | None = None) -> list[Run]:
        """The store's runs (those ``update`` maintains: not dropped, not replaced after
        a code change, and shown in SQL: a replacement is once complete), in the order
        they were registered; of one strategy if given."""
        from incbt import runs as runs_mod
        from incbt.catalog import runs as rc

        text(strategy, "strategy")
        with self.catalog.env.read() as txn:
            every = list(rc.runs(self.catalog, txn))
        unseen = rc.hidden(every)
        recs = [r for r in every if r.run_id not in unseen and strategy in (None, r.strategy)]
        if strategy is not None and not recs:  # none: a built-in or a strategy run once, or
            from incbt.engine.strategies import BUILTINS  # a name that is neither (a typo)

            known = sorted(set(BUILTINS) | {r.strategy for r in every})
            if strategy not in known:
                close = difflib.get_close_matches(strategy, known, n=1)
                raise NotFoundError(
                    f"no strategy {strategy!r} among the built-ins and the store's runs"
                    + (f"; did you mean {close[0]!r}?" if close else "")
                    + f" (known: {', '.join(known)})"
                )
        recs.sort(key=lambda r: (r.created_seq, r.run_id))
        return [runs_mod.Run(self, r) for r in recs]

    def run(self, run_id: str) -> Run:
        """A registered run by id (a unique prefix is enough)."""
        from incbt import runs as runs_mod
        from incbt.catalog import runs as rc

        if not isinstance(run_id, str):
            raise UsageError(f"a run id is a string (or its prefix), not {run_id!r}")
        with self.catalog.env.read() as txn:
            # a whole id is one read; a prefix reads every record (16,000 runs: ~0.15 s)
            key = run_id.strip().lower()
            whole = rc.get_run(self.catalog, txn, key) if len(key) == 16 and _hex(key) else None
            found = whole or rc.by_prefix(rc.runs(self.catalog, txn), run_id)
        if found.dropped_seq is not None:  # named, but not there any more
            raise rc.dropped(found)
        return runs_mod.Run(self, found)

    # -- reading -----------------------------------------------------------
    def sql(
        self, query: str, *, params: dict[str, Any] | None = None, as_of: int | None = None
    ) -> pa.Table:
        """Run read-only SQL (DataFusion) over the store and return a pyarrow Table.

        Tables: bars, events, changes, days, files, runs, sweeps, daily, fills, metrics,
        stale, failed (README.md, SQL tables). ``params``: values for ``$name``
        placeholders; ``as_of``: an event seq, the store as it was after it.

            >>> store.sql("SELECT run_id, sharpe FROM metrics WHERE scope = 'portfolio' "
            ...           "AND sharpe > $s ORDER BY sharpe DESC", params={"s": 1.0})
        """
        from incbt.query import run_sql_fresh, session  # datafusion loads only when SQL runs

        if not isinstance(query, str):
            raise UsageError(f"query: give the SQL as a string, not {query!r}")
        from incbt.queries import find_query, is_query_name

        if is_query_name(query) and find_query(query, self.path) is not None:
            raise UsageError(  # a parser error said nothing of it (QA 2026-12-05)
                f"{query!r} is a named query, not SQL: run it with store.query({query!r}, params)"
            )
        mapping(params, "params", "{'name': value} for $name")
        whole(as_of, "as_of (an event seq)")
        if params:
            from incbt.queries import check_bound

            check_bound(query, params, "params {!r}")
        return run_sql_fresh(
            lambda: session(self.path, self.catalog, as_of, only_for=query, extra=self._extra()),
            query,
            params,
        )

    def query(
        self, name: str, params: Mapping[str, Any] | None = None, *, as_of: int | None = None
    ) -> pa.Table:
        """A named query (``queries/NAME.sql``, the store's or incbt's: ``incbt query
        --list``) with its parameters, as ``incbt query NAME -p KEY=VALUE`` runs it:
        defaults filled in, a run id prefix resolved, column-name parameters put in
        their slots; returns a pyarrow Table.

            >>> store.query("leaderboard", {"strategy": "sma_cross"})
        """
        from incbt.queries import prepare_named, run_read
        from incbt.query import run_sql_fresh, session

        if text(name, "name") is None:  # an AttributeError before (QA 2026-12-06)
            raise UsageError("name: give a query's name (`incbt query --list` lists them)")
        mapping(params, "params", "{'name': value}")
        whole(as_of, "as_of (an event seq)")
        values = dict(params or {})
        # the parameters as given here: "needs -p run=VALUE" was the CLI's spelling (QA)
        sql, _ = prepare_named(self, name, values, how="params['{}']")
        runs = run_read(name, sql, values)  # incbt's query of one run: that run's files
        return run_sql_fresh(
            lambda: session(
                self.path, self.catalog, as_of, only_for=sql, extra=self._extra(), runs=runs
            ),
            sql,
            values,
            name=name,
        )

    def session(
        self,
        as_of: int | None = None,
        only_for: str | None = None,
        runs: Sequence[str] | None = None,
    ) -> Any:
        """A DataFusion SessionContext over one consistent state of the store.

        ``only_for``: the SQL to be run, so tables it does not name are skipped.
        ``runs``: run ids whose rows alone ``daily`` and ``fills`` hold, read from the
        results files holding them (the other tables are whole): a query of a few runs
        in a store of many reads what those runs' rows take. Each must be a run of the
        store, as ``store.run`` takes it (QA 2026-12-08: a whole id not registered, or a
        run dropped, gave empty tables without a word, where its prefix was refused).

        Its ``daily`` and ``fills`` are the results files of that state: run queries on
        it soon, or through ``store.sql()``. A query on it after a compaction and a
        ``gc`` deleted one of them reads none of that file's rows, without an error
        (DataFusion's listing finds no file); ``store.sql()`` and the queries of runs
        and sweeps check their files after each query and run it again on a new
        session (QA 2026-12-07).
        """
        whole(as_of, "as_of (an event seq)")
        text(only_for, "only_for")
        ids = None
        if runs is not None:  # whole ids, or prefixes as store.run takes them (QA
            ids = []  # 2026-12-07: a prefix gave empty tables, "zzzz" Python's ValueError)
            for r in names(runs, "runs"):
                key = r.strip().lower()
                if not key or len(key) > 16 or not _hex(key):
                    raise UsageError(
                        f"runs: {r!r} is not a run id (`incbt query 'SELECT run_id FROM "
                        "runs'` lists them)"
                    )
                ids.append(self.run(key).run_id)  # a whole id: one read
        return self._session(as_of, only_for, ids)

    def _session(self, as_of: int | None, only_for: str | None, runs: list[str] | None) -> Any:
        """:meth:`session` of whole run ids, as given (a Run's own reads: a dry run's
        is not registered, and has empty tables)."""
        from incbt.query import session

        return session(self.path, self.catalog, as_of, only_for, self._extra(), runs)

    def _extra(self) -> dict[str, Any]:
        """Tables computed from the store, not read from the catalog: ``stale``."""

        def stale() -> pa.Table:
            rows = [vars(r) for r in self.status().stale]
            schema = pa.schema(
                [
                    ("run_id", pa.string()),
                    ("strategy", pa.string()),
                    ("instrument", pa.string()),
                    ("reason", pa.string()),
                    ("from_day", pa.string()),
                    ("bars", pa.int64()),
                    ("replaced_by", pa.string()),
                ]
            )
            t = pa.Table.from_pylist(rows, schema=schema)
            return t.set_column(4, "from_day", t.column("from_day").cast(pa.date32()))

        return {"stale": stale}

    def summary(self, files: list[Any] | None = None) -> dict[str, Any]:
        """What the store holds: instruments, bars files, bars, the first and last day
        (``datetime.date``; None in an empty store), the bars files' bytes, and the
        runs and sweeps registered (what ``incbt status`` heads with). Read from the
        catalog's records (``files``: its current bars files, if read already): no
        SQL engine is loaded.

        >>> store.summary()["bars"]
        """
        import datetime

        from incbt.catalog import runs as rc
        from incbt.sweep import sweeps

        with self.catalog.env.read() as txn:
            if files is None:
                files = self.catalog.current_files(txn)
            runs = rc.standing_count(self.catalog, txn)
        first = min((f.first_day for f in files), default=None)
        last = max((f.last_day for f in files), default=None)

        def date(day: int | None) -> datetime.date | None:
            return None if day is None else datetime.date.fromisoformat(day_to_iso(day))

        return {
            "instruments": len({f.instrument for f in files}),
            "files": len(files),
            "bars": sum(f.rows for f in files) if files else None,
            "first_day": date(first),
            "last_day": date(last),
            "bar_bytes": sum(f.bytes for f in files) if files else None,
            "runs": runs,
            "sweeps": len(sweeps(self)),  # the records alone, no SweepResult each
        }

    def instruments(self) -> list[str]:
        """The instruments the store holds bars of, sorted."""
        with self.catalog.env.read() as txn:
            return self.catalog.instruments(txn)

    def log(self, *, kind: str | Sequence[str] | None = None, limit: int | None = None) -> pa.Table:
        """The event log, newest first: of one kind or several (``kind``), the ``limit``
        newest (None or 0: all)."""
        kinds = [] if kind is None else names(kind, "kind")
        for k in kinds:
            if not k.strip():  # QA 2026-12-06: said as a kind not there (exit 1)
                raise UsageError(
                    f"kind {k!r} names no kind; the kinds are {', '.join(EVENT_KINDS)}"
                )
            if k not in EVENT_KINDS:
                raise NotFoundError(f"no event kind {k!r}; the kinds are {', '.join(EVENT_KINDS)}")
        q = "SELECT * FROM events"
        if kinds:
            q += " WHERE kind IN (" + ", ".join(f"$k{i}" for i in range(len(kinds))) + ")"
        q += " ORDER BY seq DESC"
        whole(limit, "limit (a number of events; 0: all)", at_least=0)
        if limit:
            q += f" LIMIT {int(limit)}"
        return self.sql(q, params={f"k{i}": k for i, k in enumerate(kinds)} or None)

    def bars(
        self, instrument: str, start: str | int | None = None, end: str | int | None = None
    ) -> BarArrays:
        """One instrument's bars for days in [start, end], straight from the index.

        Reads only the row groups holding those days (no scan) and returns
        contiguous arrays the engine can use directly. ``start``/``end``: dates
        (``"2024-01-02"``, ``datetime.date``, ``np.datetime64`` of a day) or day numbers
        (days since 1970).
        """
        if not isinstance(instrument, str):
            raise UsageError(f"instrument: give an instrument's name, not {instrument!r}")
        (instrument,) = names(instrument, "instrument")  # in the store's Unicode form
        first, last = _day_arg(start, "start"), _day_arg(end, "end")
        if first is not None and last is not None and first > last:
            raise UsageError(f"start {start} is after end {end}")
        with self.catalog.env.read() as txn:  # one state of the store
            index = self.catalog.day_index(txn, instrument, first, last)
            if not len(index.records):
                known = self.catalog.instruments(txn)
                if instrument not in known:
                    raise NotFoundError(
                        f"unknown instrument {instrument!r}: the store has {len(known)} "
                        f"({', '.join(known[:5])}{', ...' if len(known) > 5 else ''})"
                        if known
                        else f"unknown instrument {instrument!r}: the store holds no bars "
                        "yet: ingest some first (incbt ingest FILES)"
                    )
            paths = self.catalog.paths(txn, index)
        return read_days(self.path, instrument, index, paths)


_DAY_NUMBERS = (given_day("0001-01-01", "a date"), given_day("9999-12-31", "a date"))


def _day_arg(value: Any, what: str) -> int | None:
    """A day given as a date (``"2024-01-02"``, ``datetime.date``, a datetime or
    ``np.datetime64`` of a whole day) or a day number (days since 1970, a NumPy int too),
    as a day number: the dates as every other argument takes them (QA 2026-12-06: a
    datetime64 was refused here and a pandas Timestamp's time of day dropped)."""
    import numbers

    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        # a day number of a calendar date (QA 2026-12-06: 20240101, read as a day of
        # the year 57,000, gave no bar and no word)
        lo, hi = _DAY_NUMBERS
        if not lo <= int(value) <= hi:
            raise DateError(
                f"{what} {value}: a day number counts days since 1970-01-01 ({lo:,} to "
                f"{hi:,}); give a date as YYYY-MM-DD (like 2024-01-05)"
            )
        return int(value)
    return given_day(value, what)


def damaged_store_file(path: str, exc: BaseException) -> StoreError:
    """The error for a store file (bars or results) that cannot be read: its path, what
    is wrong, and the fix."""
    what = "is missing" if isinstance(exc, FileNotFoundError) else f"cannot be read ({exc})"
    return StoreError(
        f"{path} {what}: the store was changed outside incbt (`incbt status` lists every "
        f"file missing or damaged). Fix: {lost_file_fix(path)}"
    )


def read_days(
    root: str,
    instrument: str,
    index: DayIndex,
    paths: dict[bytes, str],
    fields: Sequence[str] | None = None,
    scratch: dict[str, np.ndarray] | None = None,
) -> BarArrays:
    """Read the rows of the days of ``index`` (in day order) into contiguous arrays.

    ``paths``: each file's path under ``root``, by file hash. ``fields``: the bar
    fields to read (ts always); the others are zeros, which cost nothing until
    touched (the engine does not touch what a strategy does not read).
    ``scratch``: buffers to read into, grown as needed and reused by the next call
    (fresh memory is slow to touch, and a heap of freed bar arrays between small
    long-lived ones only grows); the arrays returned are then views valid until the
    next call with the same ``scratch``.
    """
    rec = index.records
    ends = np.cumsum(rec["rows"], dtype=np.int64)
    n = int(ends[-1]) if len(ends) else 0
    cols = ["ts", *(c for c in FLOAT_COLUMNS if fields is None or c in fields)]
    if scratch is None:
        out = {c: np.empty(n, dtype=np.int64 if c == "ts" else np.float64) for c in cols}
    else:
        out = {}
        for c in (*cols, "zeros"):
            buf = scratch.get(c)
            if buf is None or len(buf) < n:
                buf = scratch[c] = np.zeros(
                    max(n, int(1.25 * len(buf)) if buf is not None else n),
                    dtype=np.int64 if c == "ts" else np.float64,
                )
            out[c] = buf[:n]
    for c in FLOAT_COLUMNS:
        if c not in out:
            out[c] = np.zeros(n) if scratch is None else out["zeros"]
    dest = [out[c] for c in cols]
    row_group, offset, rows = (rec[k].tolist() for k in ("row_group", "offset", "rows"))
    pos = 0
    for f, i, j in index.file_runs():
        rg0, rg1 = row_group[i], row_group[j - 1]
        # days of a file are contiguous by construction (a day replaced in between
        # comes from another file, which ends the run)
        if any(offset[k + 1] != offset[k] + rows[k] for k in range(i, j - 1)):
            raise AssertionError(f"{paths[f]}: the days of {instrument} are not contiguous")
        recent = RECENT.recall(f)  # a small file this process wrote (a new day's)
        if recent is not None:
            lo, arrays = offset[i], [recent[c] for c in cols]
        else:
            # One thread and no pre-buffering: reads here are one instrument's few row
            # groups, where the thread pool and the coalesced pre-read cost more than they
            # save (~290 -> ~160 us for a one-month file, ~130 -> ~90 us for a one-day
            # append file; measured with 500 instruments). A month's new days sit in small
            # append files (incbt/bars/ingest.py), so this keeps "history + new day" as
            # fast as one file was.
            # Arrow's Parquet reader itself, given the path (``pyarrow._parquet``: the
            # class ``pq.ParquetFile`` wraps; private, so every read test goes through it):
            # ``pq.ParquetFile`` resolves a file system for a path (~25 us a call), and
            # around an open ``pa.OSFile`` its Python (schema paths, column names to
            # indices) and the OSFile's own still cost ~15-35 us a file (3 columns of
            # 500 one-month files, every instrument's 100 days: 111 -> 104 ms).
            # The columns' arrays as they are (ts viewed as int64, no cast call).
            reader = ParquetReader()
            path = os.path.join(root, paths[f])
            try:
                reader.open(path, pre_buffer=False)
                table = reader.read_row_groups(
                    range(rg0, rg1 + 1),
                    column_indices=[reader.column_name_idx(c) for c in cols],
                    use_threads=False,
                )
                base = 0  # the rows before the first group read (its metadata: ~4 us)
                if rg0:
                    md = reader.metadata
                    for g in range(rg0):
                        base += md.row_group(g).num_rows
            except (OSError, pa.ArrowException) as exc:  # Arrow's words named no file (QA)
                raise damaged_store_file(path, exc) from None
            finally:
                reader.close()
            lo = offset[i] - base  # rows of the wanted days, relative to the first group
            arrays = [
                (col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()).to_numpy()
                for col in table.columns
            ]
        m = offset[j - 1] + rows[j - 1] - offset[i]
        for d, arr in zip(dest, arrays, strict=True):
            d[pos : pos + m] = arr[lo : lo + m].view(d.dtype)
        pos += m
    return BarArrays(
        instrument,
        out["ts"],
        out["open"],
        out["high"],
        out["low"],
        out["close"],
        out["volume"],
        index.days,
        ends,
    )
