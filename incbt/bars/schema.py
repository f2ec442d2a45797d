"""The bars schema (SEMANTICS.md "Bars") and how stored files look.

Stored files are plain Parquet with :data:`BARS_SCHEMA`; ``date`` is the
trading day (calendar date of ``ts`` in the store's session time zone).
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa

COLUMNS = ("instrument", "ts", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
FLOAT_COLUMNS = ("open", "high", "low", "close", "volume")
NS_PER_DAY = 86_400_000_000_000

BARS_SCHEMA = pa.schema(
    [
        pa.field("instrument", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("date", pa.date32(), nullable=False),
        pa.field("open", pa.float64(), nullable=False),
        pa.field("high", pa.float64(), nullable=False),
        pa.field("low", pa.float64(), nullable=False),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("volume", pa.float64(), nullable=False),
    ]
)


@functools.lru_cache(maxsize=8192)
def day_to_iso(day: int) -> str:
    return str(np.datetime64(int(day), "D"))


def iso_to_day(text: str) -> int:
    return int(np.datetime64(text, "D").astype(np.int64))


def month_of(days: np.ndarray) -> np.ndarray:
    """'YYYY-MM' of each day number."""
    return np.datetime_as_string(days.astype("datetime64[D]").astype("datetime64[M]"))


def ns_to_iso(ns: int) -> str:
    return str(np.datetime64(int(ns), "ns")) + "Z"
