"""The bars schema (SEMANTICS.md "Bars") and how stored files look.

Stored files are plain Parquet with :data:`BARS_SCHEMA`; ``date`` is the
trading day (calendar date of ``ts`` in the store's session time zone).
"""

from __future__ import annotations

import datetime
import functools
import re
from typing import Any

import numpy as np
import pyarrow as pa

from incbt.errors import DateError

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
def is_gz(path: str) -> bool:
    """A gzip-compressed input, by its name, in any case (``X.CSV.GZ``: found 2026-12-05,
    an upper-case name was skipped or read as compressed bytes)."""
    return path.lower().endswith(".gz")


def is_csv(path: str) -> bool:
    """A CSV input (plain or gzipped), by its name, in any case."""
    return path.lower().endswith((".csv", ".csv.gz"))


def is_parquet(path: str) -> bool:
    """A Parquet input, by its name, in any case."""
    return path.lower().endswith((".parquet", ".pq"))


def is_text(path: str) -> bool:
    """A vendor's ``.txt`` (or ``.txt.gz``) file of bars: read as CSV where ``--header``
    names its fields (Kibot, FirstRate), else not an input."""
    return path.lower().endswith((".txt", ".txt.gz"))


def is_input(path: str) -> bool:
    """A file ``incbt ingest FOLDER`` reads: CSV (plain or gzipped) or Parquet."""
    return is_csv(path) or is_parquet(path)


def day_to_iso(day: int) -> str:
    return str(np.datetime64(int(day), "D"))


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_EPOCH = datetime.date(1970, 1, 1).toordinal()
DATE_FORM = "YYYY-MM-DD, a calendar date from 0001-01-01 to 9999-12-31 (like 2024-01-05)"


def parse_date(text: str, what: str = "date") -> int:
    """A date given by a user, as a day number: exactly ``YYYY-MM-DD`` and a real
    calendar date, or :class:`DateError` naming it. (NumPy's parser, used before, read
    ``20240105`` as the year 20240105, ``2024`` as 2024-01-01, and took times.)"""
    if isinstance(text, str) and _DATE.fullmatch(text):
        try:
            day = datetime.date(int(text[:4]), int(text[5:7]), int(text[8:10]))
        except ValueError:
            pass
        else:
            return day.toordinal() - _EPOCH
    raise DateError(f"{what} {text!r} is not a date: give {DATE_FORM}")


@functools.lru_cache(maxsize=8192)
def _text_to_day(text: str) -> int:
    return parse_date(text)


def iso_to_day(text: str | Any) -> int:
    """A day number from a date: text must be exactly ``YYYY-MM-DD``
    (:func:`parse_date`); a ``datetime.date``, or a datetime or ``np.datetime64`` of a
    whole day (midnight, no time zone), is taken as it is. Text alone is remembered:
    two datetimes of one instant in two zones are equal keys, and a cache gave the
    second one the first one's day (QA 2026-12-06)."""
    if isinstance(text, str):
        return _text_to_day(text)
    if isinstance(text, bool | int | float | np.number):  # 20240105 read as a day number
        raise DateError(f"date {text!r} is not a date: give {DATE_FORM}")  # (QA 2026-12-06)
    if isinstance(text, datetime.datetime) and text != text:  # pandas' NaT
        raise DateError(f"date {text!r} is not a date: give {DATE_FORM}")
    if isinstance(text, datetime.datetime):
        # a time of day or a zone: which day it is depends on the zone it is read in (a
        # New York evening is the next day in UTC): a day is asked for, not a moment
        if text.tzinfo is not None or text.time() != datetime.time(0):
            raise DateError(
                f"date {text!r} is a moment, not a day (it has a time of day or a time "
                f"zone): give the day, {DATE_FORM}, or a datetime.date (.date() of it, for "
                "its day in its own zone)"
            )
        text = text.date()
    if isinstance(text, datetime.date):
        return text.toordinal() - _EPOCH
    if isinstance(text, np.datetime64):
        day = text.astype("datetime64[D]")
        if np.isnat(text) or day != text:
            raise DateError(
                f"date {text!r} is not a whole day: give {DATE_FORM}, or a datetime64 of "
                "a day (np.datetime64('2024-01-05'))"
            )
        return int(day.astype(np.int64))
    raise DateError(f"date {text!r} is not a date: give {DATE_FORM}")


def given_day(value: Any, what: str) -> int:
    """:func:`iso_to_day` of a day a user gives as ``what`` (an option, an argument):
    its error names it."""
    try:
        return iso_to_day(value)
    except DateError as exc:
        said = str(exc)
        raise DateError(what + said[4:] if said.startswith("date ") else said) from None


def month_of(days: np.ndarray) -> np.ndarray:
    """'YYYY-MM' of each day number."""
    return np.datetime_as_string(days.astype("datetime64[D]").astype("datetime64[M]"))


def stamp(ns: int, tz: str | None = None) -> str:
    """A bar's time as a message shows it: to the second, unless it has more; with
    ``tz`` (the zone a file of naive times was read in), also as the file wrote it."""
    unit = "s" if ns % 1_000_000_000 == 0 else "ns"
    utc = str(np.datetime64(ns, "ns").astype(f"datetime64[{unit}]")) + "Z"
    if tz is None:
        return utc
    import datetime as dt
    import zoneinfo

    try:
        local = dt.datetime.fromtimestamp(ns // 1_000_000_000, zoneinfo.ZoneInfo(tz))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OverflowError, OSError):
        return utc
    if local.utcoffset() == dt.timedelta(0) and tz.upper() in ("UTC", "ETC/UTC", "GMT"):
        return utc  # (QA 2026-12-07: "...Z, ... in UTC")
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")  # as written, to the nanosecond
    # in the hour an autumn change repeats, with its offset: which pass it was taken for
    offset = f"{local:%z}"
    shown = f"{offset[:3]}:{offset[3:]}" if repeated_hour(ns, tz) else ""
    return f"{utc}, {local:%Y-%m-%d %H:%M:%S}{'.' + frac if frac else ''}{shown} in {tz}"


def repeated_hour(ns: int, tz: str) -> tuple[str, str] | None:
    """Where the time ``ns`` (UTC) falls, in the zone ``tz``, in the hour its clocks
    repeat at an autumn change (its local time naming two instants): that local time
    with the offset of its first pass and of its second (``2024-11-03T01:30:00-04:00``,
    ``...-05:00``); else None."""
    import datetime as dt
    import zoneinfo

    try:
        z = zoneinfo.ZoneInfo(tz)
        wall = dt.datetime.fromtimestamp(ns // 1_000_000_000, z).replace(tzinfo=None)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OverflowError, OSError):
        return None
    first, second = (wall.replace(tzinfo=z, fold=f).isoformat() for f in (0, 1))
    return None if first == second else (first, second)


def ns_to_iso(ns: int) -> str:
    return str(np.datetime64(int(ns), "ns")) + "Z"
