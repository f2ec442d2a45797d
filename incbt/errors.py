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
    ├── StoreError                  the store itself
    │   ├── NotAStoreError          the folder is not an incbt store
    │   ├── StoreExistsError        init over a different existing store
    │   ├── StoreLockedError        another process holds the write lock (exit 75: retry)
    │   └── CatalogError            the LMDB catalog failed or is inconsistent
    └── InternalError               a bug in incbt (exit 3); please report it

and one warning: :class:`StrategyFailureWarning`, when the Python API computed a
run but its strategy failed on some (run, instrument) pairs (the CLI says so
itself and exits 1).

Dependency errors (lmdb, pyarrow, datafusion, ray) are mapped to these at the
boundary where they enter (see ``map_dependency_error``), so nothing else leaks
to users; ``tests/test_errors.py`` checks the mapping is complete.
"""

from __future__ import annotations

__all__ = [
    "BadInputError",
    "CatalogError",
    "IncbtError",
    "InternalError",
    "NotAStoreError",
    "NotFoundError",
    "QueryError",
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
    stored, every other result is; ``.report.errors`` (and ``skipped_failed``) list them."""


class QueryError(UserError):
    """A SQL query failed to parse, plan or run."""


class UsageError(UserError):
    """A command or API call used wrongly (CLI exit code 2)."""

    exit_code = 2


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


def map_dependency_error(exc: BaseException, context: str) -> IncbtError:
    """Map an error raised by a dependency to the incbt tree.

    ``context`` says what incbt was doing ("reading bars/AAPL/2024-01.parquet").
    """
    if isinstance(exc, IncbtError):
        return exc
    mod = type(exc).__module__ or ""
    name = type(exc).__name__
    top = mod.split(".")[0]
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
    if isinstance(exc, MemoryError):
        return StoreError(f"{context}: out of memory; use fewer instruments per call")
    if isinstance(exc, FileNotFoundError) or "No such file or directory" in str(exc):
        strerror, filename = getattr(exc, "strerror", None), getattr(exc, "filename", None)
        return StoreError(
            f"{context}: {strerror or exc}"
            + (f" ({filename})" if filename else "")
            + ". Fix: a file the store's catalog lists is gone: the store was changed "
            "outside incbt; restore it from a backup (or ingest the data into a new store)"
        )
    if isinstance(exc, OSError):
        return StoreError(
            f"{context}: {exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
        )
    return InternalError(f"{context}: {name}: {exc}")


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


def names(value: object, what: str) -> list[str]:
    """Ids or names given one (a string) or several: a string is one, not its letters."""
    if isinstance(value, str):
        return [value]
    try:
        out = list(value)  # type: ignore[call-overload]
    except TypeError:
        raise UsageError(f"{what}: give a string or a list of strings, not {value!r}") from None
    bad = [v for v in out if not isinstance(v, str)]
    if bad:
        raise UsageError(f"{what}: give strings, not {bad[0]!r}")
    return out
