"""incbt: an incremental, event-sourced backtest store for minute-bar research.

    >>> import incbt
    >>> store = incbt.open("store")          # or incbt.init("store")
    >>> store.ingest("data/")                # CSV/Parquet files, folders, globs
    >>> store.sql("SELECT count(*) FROM bars")
"""

from incbt.errors import (
    BadInputError,
    IncbtError,
    NotAStoreError,
    QueryError,
    StoreError,
    StoreLockedError,
    StrategyError,
    UsageError,
    UserError,
)
from incbt.store import BarArrays, Store, init
from incbt.store import open_store as open  # noqa: A001 - the public verb is incbt.open

__version__ = "0.1.0"

__all__ = [
    "BadInputError",
    "BarArrays",
    "IncbtError",
    "NotAStoreError",
    "QueryError",
    "Store",
    "StoreError",
    "StoreLockedError",
    "StrategyError",
    "UsageError",
    "UserError",
    "__version__",
    "init",
    "open",
]
