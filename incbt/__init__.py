"""incbt: an incremental, event-sourced backtest store for minute-bar research.

    >>> import incbt
    >>> store = incbt.open("store")          # or incbt.init("store")
    >>> store.ingest("data/")                # CSV/Parquet files, folders, globs
    >>> store.sql("SELECT count(*) FROM bars")
    >>> run = store.backtest("sma_cross", {"fast": 10, "slow": 50}, fee_bps=1)
    >>> run.metrics, run.daily, run.fills

Strategies of your own: ``@incbt.strategy`` and ``incbt.Param`` (see
``incbt.engine.strategy_api``), defined in a ``.py`` file (incbt imports it again to
compute a run later; a script's commands go under ``if __name__ == "__main__":``).
They load lazily, so ``import incbt`` stays fast.
"""

import os as _os
from typing import Any as _Any

# Arrow's allocator, chosen before pyarrow loads (ARROW_DEFAULT_MEMORY_POOL wins if
# set; a process that imported pyarrow first keeps what it has). Measured in
# benchmarks/README.md (engine): with pyarrow's default here (mimalloc) a backtest's
# resident memory grew ~13 MiB from 25 to 100 instruments, each thread's heap keeping
# the pages of the bars it had read; with jemalloc ~4 MiB, at the same speed.
_os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

# The CLI sets it: this process ends with its command (a Python caller's goes on), so
# work it stops need not be waited for (a local Ray's calls in flight: ray_exec).
_ends_with_command = False

from incbt.errors import (  # noqa: E402 - after the allocator choice
    BadInputError,
    CatalogError,
    ClusterLostError,
    DataNoteWarning,
    DateError,
    IncbtError,
    InternalError,
    NotAStoreError,
    NotFoundError,
    QueryError,
    RunReplacedWarning,
    SetupError,
    StoreError,
    StoreExistsError,
    StoreLockedError,
    StrategyError,
    StrategyFailureWarning,
    UsageError,
    UserError,
)

__version__ = "0.1.0"

# loaded on first use: `import incbt` (which the `incbt` command's entry point runs
# before it can say a Ctrl-C in a line) loads no store, Arrow or engine (QA 2026-12-06:
# Ctrl-C in the first 0.2 s of a command was a traceback)
_LAZY = {
    "BarArrays": ("incbt.store", "BarArrays"),
    "Store": ("incbt.store", "Store"),
    "init": ("incbt.store", "init"),
    "open": ("incbt.store", "open_store"),  # the public verb is incbt.open
    "strategy": ("incbt.engine", "strategy"),
    "strategies": ("incbt.engine", "strategies"),
    "Param": ("incbt.engine", "Param"),
    "Strategy": ("incbt.engine", "Strategy"),
    "Run": ("incbt.runs", "Run"),
    "generate": ("incbt.bars.generate", "generate"),  # synthetic bars, as `incbt generate`
}


# the package's modules, as attributes once loaded (incbt.store was one, imported by
# this file, before its names became lazy: QA 2026-12-06)
_MODULES = frozenset({"store", "runs", "engine", "errors", "sweep", "update", "query"})


def __getattr__(name: str) -> _Any:
    import importlib

    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name in _MODULES:
        return importlib.import_module(f"incbt.{name}")
    raise AttributeError(f"module 'incbt' has no attribute {name!r}")


def __dir__() -> list[str]:
    """What is loaded and what loads on use: ``incbt.`` completes ``strategy`` and
    ``Param`` in a notebook before they are first used (QA 2026-12-06)."""
    return sorted(set(globals()) | set(_LAZY) | set(__all__))


__all__ = [
    "BadInputError",
    "BarArrays",
    "CatalogError",
    "ClusterLostError",
    "DataNoteWarning",
    "DateError",
    "IncbtError",
    "InternalError",
    "NotAStoreError",
    "NotFoundError",
    "Param",
    "QueryError",
    "Run",
    "RunReplacedWarning",
    "SetupError",
    "Store",
    "StoreError",
    "StoreExistsError",
    "StoreLockedError",
    "Strategy",
    "StrategyError",
    "StrategyFailureWarning",
    "UsageError",
    "UserError",
    "__version__",
    "generate",
    "init",
    "open",
    "strategies",
    "strategy",
]
