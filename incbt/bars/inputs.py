"""Reading user files (CSV, Parquet) into validated, canonical bar arrays.

Everything that can be wrong with an input is found here, before the store is
touched, and reported as one :class:`~incbt.errors.BadInputError` naming the
file, the line (CSV, header = line 1) or row (Parquet, first row = 1), the
instrument, the value and the fix.
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import errno
import functools
import glob
import io
import itertools
import os
import re
import stat
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from incbt._lazy import LazyModule
from incbt.bars import fastcsv
from incbt.bars.layout import DIR_SAFE, MAX_DIR_BYTES, instrument_dir_bytes
from incbt.bars.schema import (
    COLUMNS,
    FLOAT_COLUMNS,
    NS_PER_DAY,
    PRICE_COLUMNS,
    is_csv,
    is_gz,
    is_input,
    is_parquet,
    is_text,
    repeated_hour,
    stamp,
)
from incbt.errors import BadInputError, NotFoundError, UsageError

if TYPE_CHECKING:
    import pyarrow.compute as pc
else:  # loaded at its first use (incbt._lazy): ~35 ms of every command's start
    pc = LazyModule("pyarrow.compute")

_INT_RE = re.compile(r"^\s*-?\d+\s*$")
MAX_INSTRUMENT_LEN = 200


BLOCK_ROWS = ("ts", *FLOAT_COLUMNS)  # the rows of a bars block, in order


def bars_block(n: int) -> np.ndarray:
    """An empty block of ``n`` bars: one float64 row per field of :data:`BLOCK_ROWS`
    (ts as its int64 bits), each row contiguous.

    One array, not six: a bucket file gathers each of its days from a different
    input, and gathering a day's six fields is then one slice, not six, and the
    month one concatenation (each a short call holding the GIL that the reading
    and writing threads share).
    """
    return np.empty((len(BLOCK_ROWS), n), dtype=np.float64)


def table_block(table: pa.Table) -> np.ndarray:
    """A bars block (:func:`bars_block`) holding a copy of a table's ts and float fields
    (ts as int64 or timestamp[ns], the others float64, none null)."""
    block = bars_block(table.num_rows)
    for k, name in enumerate(BLOCK_ROWS):
        a = column_numpy(table.column(name))
        if name == "ts":
            block[k].view(np.int64)[:] = a.view(np.int64)
        else:
            block[k] = a
    return block


def block_columns(block: np.ndarray) -> dict[str, np.ndarray]:
    """The fields of a bars block as 1-D views (ts as int64)."""
    out = {c: block[k] for k, c in enumerate(BLOCK_ROWS)}
    out["ts"] = out["ts"].view(np.int64)
    return out


@dataclass
class InputBars:
    """One validated input file, as a bars block (:func:`bars_block`) sorted by
    (instrument, ts); its fields are views of the block's rows.

    ``rows`` maps each sorted row back to its 0-based row in the file, so later
    checks (across files) can still name a line.
    """

    source: str
    kind: str  # "csv" | "parquet"
    names: list[str]  # instrument names; codes index into it
    codes: np.ndarray  # int32
    block: np.ndarray  # (6, n) float64: ts (int64 ns UTC bits), open, high, low, close, volume
    rows: np.ndarray  # int64, source row of each sorted row
    ignored: list[str] = field(default_factory=list)  # the file's other columns, not read
    no_bars: list[str] = field(default_factory=list)  # a yfinance file's tickers without a bar
    tz: str | None = None  # the zone its naive times were read in (--tz), for messages
    header_lines: int = 1  # CSV: 0 where --header names the fields of a file without one

    def __post_init__(self) -> None:
        cols = block_columns(self.block)
        self.ts: np.ndarray = cols["ts"]
        self.open: np.ndarray = cols["open"]
        self.high: np.ndarray = cols["high"]
        self.low: np.ndarray = cols["low"]
        self.close: np.ndarray = cols["close"]
        self.volume: np.ndarray = cols["volume"]

    def __len__(self) -> int:
        return len(self.ts)

    def where(self, sorted_row: int) -> dict[str, Any]:
        r = int(self.rows[sorted_row])
        return {"line": r + 1 + self.header_lines} if self.kind == "csv" else {"row": r + 1}


def _is_store(folder: str) -> bool:
    return os.path.isdir(os.path.join(folder, "catalog")) and os.path.isdir(
        os.path.join(folder, "bars")
    )


_STORE_PARTS = ("bars", "results", "catalog", "tmp")  # a store's own folders


def _store_holding(path: str) -> str | None:
    """The incbt store ``path`` is, or whose own files (``bars/``, ``results/``...) it
    is among, if any (a folder of one's files kept in a store's folder is not)."""
    p = os.path.abspath(path)
    if os.path.isdir(p) and _is_store(p):
        return p
    for _ in range(8):  # bars/<instrument>/<month file>: a few levels at most
        up = os.path.dirname(p)
        if up == p:
            return None
        if os.path.basename(p) in _STORE_PARTS and _is_store(up):
            return up
        p = up
    return None


def _unreadable_folder(exc: OSError) -> None:
    """A folder of the inputs that cannot be listed: said, not passed over (QA
    2026-12-07: its files were left out of the ingest without a word, exit 0)."""
    raise BadInputError(
        f"cannot read the folder ({exc.strerror or exc}): its files would be left out",
        file=exc.filename,
        fix="give read access to the folder (chmod u+rx), or leave it out of the paths given",
    )


def expand_paths(
    paths: Iterable[str],
    skipped: list[str] | None = None,
    named: Callable[[str], str] | None = None,
    text: bool = False,
) -> list[str]:
    """Files from files, folders (recursively) and globs, in sorted order.

    ``named``: the instrument each file's bars are named by (``--instrument '{stem}'``):
    one file reached by two names that name it differently is refused. ``text``: a
    folder's ``.txt`` files are bars too (``--header`` given: a vendor's header-less files).

    In a folder, hidden files and folders (``.name``: a Mac's ``._x.csv`` beside each
    file of a zip) and incbt stores (``incbt ingest .`` beside ``./store``) are left
    out; ``skipped`` gets the other files a folder holds that are not CSV or Parquet
    (a vendor's ``.txt``: said, not passed over in silence; QA 2026-12-06)."""
    out: list[str] = []
    for p in paths:
        p = os.path.expanduser(p)  # "~/data" quoted: the home folder's (QA 2026-12-06)
        matches = sorted(glob.glob(p, recursive=True)) if glob.has_magic(p) else [p]
        if not matches:
            raise NotFoundError(f"no file matches {p!r}: check the path or the pattern")
        for m in matches:
            store = _store_holding(m)
            if store is not None:  # its files hold days superseded or removed since
                # (QA 2026-12-06: ingested by a glob, removed bars came back)
                what = (
                    "an incbt store"
                    if store == os.path.abspath(m)
                    else f"in the incbt store {store}"
                )
                raise UsageError(
                    f"{m} is {what}, not bars to ingest: its files hold bars superseded "
                    "or removed since. Ingest the original files, or read the store with "
                    "--store (`incbt --store STORE query ... --output parquet -o FILE` "
                    "exports its bars)"
                )
            if os.path.isdir(m):
                for root, dirs, files in os.walk(m, onerror=_unreadable_folder):
                    dirs[:] = sorted(
                        d
                        for d in dirs
                        if not d.startswith(".") and not _is_store(os.path.join(root, d))
                    )
                    for f in files:
                        if f.startswith("."):
                            continue
                        if is_input(f) or (text and is_text(f)):
                            out.append(os.path.join(root, f))
                        elif skipped is not None:
                            skipped.append(os.path.join(root, f))
            elif os.path.exists(m):
                if not stat.S_ISREG(os.stat(m).st_mode):  # a named pipe read as a file hung
                    # for good, holding the store's write lock (QA 2026-12-06)
                    raise BadInputError(
                        "not a regular file (a named pipe, a device or a socket)",
                        file=m,
                        fix="write the bars to a file first, then ingest the file",
                    )
                out.append(m)
            elif os.path.islink(m):  # said as what it is (QA 2026-12-07: "no such file")
                try:
                    os.stat(m)
                    why = "cannot be followed"
                except OSError as exc:
                    why = (
                        "is part of a loop of symbolic links"
                        if exc.errno == errno.ELOOP
                        else f"points to {os.readlink(m)}, which does not exist"
                    )
                raise NotFoundError(f"{m} is a symbolic link that {why}: check the link")
            else:
                raise NotFoundError(f"no such file or folder: {m}: check the path")
    # one file given twice, by two spellings (``d`` and ``./d/``, a symbolic or hard link)
    # is read once: by path text alone, the ingest read it twice and its event counted
    # its rows and listed it twice (QA 2026-12-06)
    first: dict[tuple[int, int], str] = {}
    for m in sorted(dict.fromkeys(out)):
        st = os.stat(m)
        was = first.setdefault((st.st_dev, st.st_ino), m)
        if named is not None and was != m and named(was) != named(m):
            # read once, its bars went to the first name alone (QA 2026-12-06: a link
            # GOOG.csv -> GOOGL.csv left GOOGL without bars)
            raise BadInputError(
                f"{was} and {m} are one file (a link to it), which --instrument names "
                f"{named(was)!r} and {named(m)!r}",
                file=m,
                fix="give the file under one name, or copy it if both instruments have these bars",
            )
    out = sorted(first.values())
    if not out:
        raise NotFoundError(
            "no CSV or Parquet files found in "
            + ", ".join(map(repr, paths))
            + " (files ending .csv, .csv.gz, .parquet or .pq are read)"
        )
    return out


def _kind(path: str, header: bool = False) -> str:
    if is_parquet(path):
        return "parquet"
    if is_csv(path) or (header and is_text(path)):
        return "csv"
    if is_text(path):
        raise BadInputError(
            "unknown file type: a .txt file, read as bars only where --header names its fields",
            file=path,
            fix="give --header NAMES for a vendor's header-less .txt files (Kibot, "
            "FirstRate), or name CSV files with a header line .csv",
        )
    raise BadInputError(
        "unknown file type",
        file=path,
        fix="give CSV files a .csv (or .csv.gz) name and Parquet files a .parquet name",
    )


def valid_name(name: str) -> bool:
    """An instrument's name as the store takes it: 1 to MAX_INSTRUMENT_LEN characters,
    no spaces around it, no control or invisible character."""
    return (
        bool(name.strip())
        and len(name) <= MAX_INSTRUMENT_LEN
        and name == name.strip()
        # control characters: "A\nB" was taken, and printed as two instruments
        # (found 2026-12-05; NUL and tab were refused); invisible ones: a byte order
        # mark or a zero-width space made a second "X" (QA 2026-12-06)
        and not any(map(_invisible, name))
    )


def header_line(instrument: str | None = None) -> str:
    """The header line a file needs (without ``instrument`` where --instrument names it)."""
    return ",".join(c for c in COLUMNS if instrument is None or c != "instrument")


# names of columns of instrument names, as vendors write them (lower case)
NAME_COLUMNS = frozenset({"symbol", "ticker", "sym", "ric", "isin", "secid", "security",
                          "contract", "instrument_id", "ticker_symbol", "code"})  # fmt: skip
_NAMES_APART: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "names_apart", default=None
)


def _check_columns(
    path: str, present: list[str], mapping: Mapping[str, str], instrument: str | None = None
) -> dict[str, str]:
    """Map canonical names to the file's names; reject missing and extra columns.

    A name (a bars column's, or the one ``--map`` gives) matches a column of the same
    name in any case (``Close``, ``VOLUME``), when exactly one does. ``instrument``: the
    file's bars are all this instrument's (``--instrument``): no column is read for it
    (the result has no ``"instrument"`` key; a column of that name is not read)."""
    # a column that may hold instrument names under another name, which --instrument
    # leaves unread: an order error then says so (QA 2026-12-06: a Ticker column of two
    # instruments, named one by --instrument '{stem}', said "remove the duplicate bar")
    _NAMES_APART.set(
        None
        if instrument is None
        else next((p for p in present if p.strip().lower() in NAME_COLUMNS), None)
    )
    if instrument is not None:  # (with --map instrument: refused before, check_reading)
        named = [p for p in present if p.strip().lower() == "instrument"]
        if named:  # its names would be replaced (QA 2026-12-06: MSFT's bars stored as
            # the file's name, without a word)
            raise BadInputError(
                f"the file has a column of instrument names ({named[0]}), and --instrument "
                f"{instrument} would name every bar of it",
                file=path,
                fix="ingest files with a column of names without --instrument (apart from "
                "the files of one instrument each)",
            )
    unknown = [k for k in mapping if k not in COLUMNS]
    if unknown:
        raise UsageError(
            f"--map {unknown[0]}={mapping[unknown[0]]}: {unknown[0]!r} is not a bars column; "
            f"map one of {', '.join(COLUMNS)} to a column of your files (--map ts=timestamp)"
        )
    taken = [v for v in mapping.values() if list(mapping.values()).count(v) > 1]
    if taken:
        both = [k for k, v in mapping.items() if v == taken[0]]
        raise UsageError(
            f"--map maps {' and '.join(both)} to the same column {taken[0]!r}: map each bars "
            "column to its own column"
        )
    roles = [c for c in COLUMNS if instrument is None or c != "instrument"]
    wanted = {c: mapping.get(c, c) for c in roles}
    joined = _joined(wanted["ts"], present)
    if joined is not None and (len(joined) != 2 or not all(joined)):
        raise UsageError(
            f"--map ts={wanted['ts']}: join two columns, the date's and the time's "
            "(--map ts=Date+Time)"
        )
    for c in roles:
        # a name (mapped or not) matches a column of that name in another case, where
        # exactly one does (QA 2026-12-06: --map instrument=SYM missed a column sym)
        names = joined if c == "ts" and joined is not None else [wanted[c]]
        out = []
        for name in names:
            if name not in present:
                same = [p for p in present if p.lower() == name.lower()]
                if len(same) == 1:
                    name = same[0]
            out.append(name)
        wanted[c] = JOIN.join(out)
    sources = sources_of(wanted)
    clash = next((v for v in sources if sources.count(v) > 1), None)
    if clash is not None and JOIN in wanted.get("ts", ""):  # --map ts=Date+Open, Date+Date
        raise UsageError(
            f"--map ts={shown_ts(wanted['ts'])}: column {clash!r} would be read twice (by "
            "ts, and by ts again or by another bars column): join a date's column and a "
            "time's, each read by ts alone"
        )
    if clash is not None:  # --map ts=open: open still reads its own column (QA 2026-12-05:
        # said as an unexpected column, exit 1)
        both = [k for k, v in wanted.items() if v == clash]
        mapped = [k for k in both if k in mapping]
        plain = [k for k in both if k not in mapping]
        raise UsageError(
            f"--map {mapped[0]}={clash}: {' and '.join(both)} would both read column {clash!r} "
            f"({', '.join(plain)} reads the column of its own name unless mapped): map "
            + " ".join(f"--map {k}=COLUMN" for k in plain)
            + " too, or map another column"
        )
    if len(present) == 1:
        sep = next((x for x in (";", "\t", "|") if x in present[0]), None)
        if sep is not None:
            raise BadInputError(
                f"the header has one column, {present[0]!r}: the fields look separated by {sep!r}",
                file=path,
                line=1 if is_csv(path) else None,
                fix="save the file with commas between fields",
            )
    missing = [
        f"{src}" + (f" (for {c})" if src != c else "")
        for c, v in wanted.items()
        for src in (v.split(JOIN) if c == "ts" and joined is not None else [v])
        if src not in present
    ]
    if missing and is_csv(path) and _head() == 1:  # (a header line of its own)
        _refuse_stacked_header(path)
    if missing:
        # a first line of numbers and times is a bar, not a header (a file without one)
        data = sum(bool(re.fullmatch(r"[-+.:\d /TZe]+", p.strip())) for p in present)
        headless = is_csv(path) and data >= min(4, len(present))
        no_names = "instrument" in missing  # a file per symbol, most likely
        raise BadInputError(
            (
                "the first line looks like a bar, not a header"
                if headless
                else f"missing column(s) {', '.join(missing)}"
            )
            + (
                f"; --header names {', '.join(present)}"
                if is_csv(path) and _head() == 0
                else f"; the file has {', '.join(present)}"
            ),
            file=path,
            line=1 if is_csv(path) else None,
            fix=f"add the header line {header_line(instrument)} above the bars, or name "
            "the fields of each line with --header NAMES (in their order)"
            if headless
            else (
                f"name the columns {header_line(instrument)}, or map yours "
                "with --map NAME=COLUMN (e.g. --map ts=timestamp)"
                + (
                    "; a file of one instrument's bars, without a column of names, names "
                    "it with --instrument NAME (or --instrument '{stem}': each file's name)"
                    if no_names
                    else ""
                )
            ),
        )
    # other columns (vwap, trades, a pandas index) are not read: said by the ingest
    # (``IngestSummary.ignored_columns``; QA 2026-12-06: refused, so most vendors' files
    # needed rewriting first)
    dup = {p for p in present if present.count(p) > 1 and p in sources}
    if dup:
        raise BadInputError(
            f"duplicate column(s) {', '.join(sorted(dup))}",
            file=path,
            line=1,
            fix="rename or drop the repeated column",
        )
    return wanted


def _first_bad(values: pa.Array, to: pa.DataType) -> int:
    """Index of the first string in ``values`` that does not convert to ``to``."""
    lo, hi = 0, len(values)
    while hi - lo > 1:  # binary search on slices: O(log n) casts
        mid = (lo + hi) // 2
        try:
            pc.cast(values.slice(lo, mid - lo), to)
            lo = mid
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
    return lo


def _csv_line_problem(path: str, ncols: int) -> tuple[int, str] | None:
    """Find the first line whose field count is wrong (slow path, errors only)."""
    with _text(path) as f:
        for i, fields in enumerate(csv.reader(f, delimiter=_DIALECT.get()[0]), start=1):
            if len(fields) != ncols:
                return i, ",".join(fields)
    return None


def _open_quote(path: str) -> BadInputError | None:
    """The first line whose quote (") is never closed, said as such (None: none). Its
    field runs on to the next quote, lines later, or to the file's end: the reader's
    words were a count of fields, or a field too large, with no line (QA 2026-12-07)."""
    with _text(path, "utf-8-sig") as f:
        for i, line in enumerate(f, start=1):
            if line.count('"') % 2:
                return BadInputError(
                    'a quote (") opened on this line is not closed: the lines after it read '
                    "as one field",
                    file=path,
                    line=i,
                    value=line.rstrip("\r\n")[:80],
                    fix='close the quote ("S0001") or remove it: bars need none',
                )
    return None


def _csv_head(
    path: str,
    header: list[str],
    first: list[str] | None,
    mapping: Mapping[str, str],
    instrument: str | None = None,
) -> tuple[list[str], dict[str, str], str]:
    """The header's names (stripped), the source column of each role, and how ts reads
    ("int" or "text", from the first bar); raises on wrong columns or no bar."""
    header = [h.strip() for h in header]
    wanted = _check_columns(path, header, mapping, instrument)
    if first is None:
        raise BadInputError(
            "the file has a header but no bars",
            file=path,
            line=2,
            fix="remove the empty file from the ingest",
        )
    if JOIN in wanted["ts"]:  # a date and a time: text
        return header, wanted, "text"
    ts_text = first[header.index(wanted["ts"])] if len(first) == len(header) else ""
    return header, wanted, "int" if _INT_RE.match(ts_text) else "text"


def _roles(header: list[str], wanted: dict[str, str]) -> list[int]:
    """For each column of the file, the index of its role in COLUMNS (-1: not read)."""
    role = {src: k for k, src in enumerate(wanted[c] for c in COLUMNS)}
    return [role.get(h, -1) for h in header]


# --map ts=Date+Time: a date's column and a time's, read as "date time"; in ``wanted``
# the two names are held apart by JOIN (no column's name has it: a name may have a +)
JOIN = "\x1f"


def _joined(ts: str, present: Sequence[str]) -> list[str] | None:
    """The two columns ``--map ts=A+B`` joins (stripped), or None (one column)."""
    if "+" not in ts or ts in present:
        return None
    return [x.strip() for x in ts.split("+")]


def shown_ts(src: str) -> str:
    """A ts source as the user wrote it (``Date+Time`` for a joined one)."""
    return src.replace(JOIN, "+")


def sources_of(wanted: Mapping[str, str]) -> list[str]:
    """The file's columns the bars columns read (both of a joined ts)."""
    out = []
    for c, v in wanted.items():
        out += v.split(JOIN) if c == "ts" and JOIN in v else [v]
    return out


def ignored(present: Sequence[str], wanted: Mapping[str, str]) -> list[str]:
    """The columns of a file that are none of the bars columns (not read)."""
    used = set(sources_of(wanted))
    return [p for p in present if p not in used]


def read_csv_range(
    path: str, header_end: int, start: int, end: int, mapping: Mapping[str, str] | None = None
) -> InputBars | None:
    """The bars of lines [start, end) of a plain CSV file (its header line is bytes
    [0, header_end)), read in place by the fast reader, validated as a file of their
    own (lines numbered from ``start``'s as line 2); None where the fast reader
    declines them (the caller reads a copy of them as a file, with Arrow's words for
    any error). A part of a big file (:mod:`incbt.bars.parts`), without a copy."""
    mapping = dict(mapping or {})
    with open(path, "rb") as f:
        head = f.read(header_end)
        f.seek(start)
        line = f.readline()
    try:
        header = next(csv.reader([head.decode("utf-8-sig")]), None)
        first = next(csv.reader([line.decode("utf-8")]), None)
    except (UnicodeDecodeError, csv.Error):
        return None  # the copy's reading words it
    if not header or _separator(header) != ",":  # another separator: the copy reads it
        return None
    header, wanted, ts_kind = _csv_head(path, header, first, mapping)
    got = fastcsv.read_block(path, _roles(header, wanted), ts_kind == "int", span=(start, end))
    return None if got is None else _validated(path, "csv", got[0], got[1], None, mapping)


def _validated(
    path: str,
    kind: str,
    table: pa.Table,
    block: np.ndarray | None,
    tz: str | None,
    mapping: Mapping[str, str],
) -> InputBars:
    """:func:`validate`, its refusal of a bar's high or low said with the likely cause
    where the close is read from an adjusted close (``--map close='Adj Close'``): open,
    high and low are not adjusted, so a bar before a dividend or split whose adjusted
    close falls outside them is refused, and the generic fix (repair the bar) is not
    the user's (QA 2026-12-07)."""
    try:
        return validate(path, kind, table, block, tz)
    except BadInputError as e:
        e.rule = True  # a bar read, against a rule
        src = mapping.get("close")
        adjusted = src is not None and re.sub(r"[\s_.-]", "", src).lower() == "adjclose"
        if not adjusted or not e.problem.startswith(("high is below", "low is above")):
            raise
        said = BadInputError(
            e.problem,
            file=e.file,
            line=e.line,
            row=e.row,
            instrument=e.instrument,
            value=e.value,
            fix=f"the close is read from {src!r}, adjusted for dividends and splits, while "
            "open, high and low are not: download the bars adjusted alike (yfinance: "
            "`auto_adjust=True`), or ingest the unadjusted close (without --map close=...)",
        )
        said.rule = True
        raise said from None


# The separator and decimal point of the CSV file being read on this thread: a comma
# and a dot, or what its header and first bar show (:func:`_read_csv`), for every
# reading of it, its errors' included
_DIALECT: contextvars.ContextVar[tuple[str, str, int]] = contextvars.ContextVar(
    "incbt_csv_dialect", default=(",", ".", 1)
)


def _head() -> int:
    """The header lines of the CSV file being read: 1, 0 (``--header`` names them) or 3
    (yfinance's header: :func:`_read_stacked`)."""
    return _DIALECT.get()[2]


# The 0-based data row of the file of each row of the table being validated, where they
# differ (a yfinance file of several tickers: each ticker's bars one after another), so
# messages name the file's own line; None where table row i is the file's row i
_FILE_ROWS: contextvars.ContextVar[np.ndarray | None] = contextvars.ContextVar(
    "incbt_file_rows", default=None
)


class _Read(NamedTuple):
    """What a CSV reader gives: the file's table, "csv", the bars block its columns are
    views of where the fast reader or yfinance's read it (else None), the file's columns
    it does not read, and the tickers of a yfinance file without a bar (none stored)."""

    table: pa.Table
    kind: str
    block: np.ndarray | None
    ignored: list[str]
    no_bars: tuple[str, ...] = ()


_SEPARATORS = (";", "\t", "|")


def _text(path: str, encoding: str | None = None) -> Any:
    """A CSV file's text, plain or gzipped, opened for reading (newlines as written)."""
    if is_gz(path):
        import gzip

        return gzip.open(path, "rt", newline="", encoding=encoding)
    return open(path, newline="", encoding=encoding)  # noqa: SIM115 - the caller's `with`


def _separator(header: list[str]) -> str:
    """The separator a header (or a first bar) read with commas shows: a comma, or the
    one a line of one field holds (``instrument;ts;open;...``, a European spreadsheet's
    export)."""
    if len(header) == 1:
        for sep in _SEPARATORS:
            if sep in header[0] and len(header[0].split(sep)) >= 3:
                return sep
    return ","


def _sample(path: str) -> tuple[str, bool]:
    """The first 64 KiB of a CSV file's text (after a byte-order mark: Excel's "CSV
    UTF-8"; Arrow's reader skips it too, and the fast reader starts after the header
    line), and whether that is the whole file: what its header, first bar, separator
    and decimal mark are read from, with one read of it."""
    with _text(path, "utf-8-sig") as f:
        text = f.read(_SAMPLE)
        return text, not f.read(1)


def _bar_separator(line: str, fields: int) -> str:
    """The separator of a file without a header line whose bars have ``fields`` fields:
    the one that cuts its first ``line`` into that many (``;`` before the comma, which a
    decimal comma holds too)."""
    counts = {
        sep: len(next(csv.reader([line], delimiter=sep)))
        for sep in (*_SEPARATORS, ",")
        if sep in line
    }
    for sep, n in counts.items():
        if n == fields:
            return sep
    # none cuts it into as many fields as --header names: the one that cuts it most
    # (said then as a count of fields, in the file's own separator)
    return max(counts, key=lambda x: counts[x]) if counts else ","


def _head_lines(text: str, sep: str = ",") -> tuple[list[str] | None, list[str] | None]:
    """The header's fields and the first bar's, read with ``sep`` from a file's
    :func:`_sample`."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    return next(reader, None), next(reader, None)


_DECIMAL_COMMA = re.compile(r"\s*-?\d+,\d+\s*")
# d,ddd: a decimal comma with three decimals, or a thousands separator (33,450 points)
_THOUSANDS_LIKE = re.compile(r"\s*-?\d{1,3},\d{3}\s*")
_SAMPLE = 1 << 16  # bytes of a file its decimal mark is judged from


def _is_number(text: str, dec: str = ".") -> bool:
    """Whether a field reads as a number (with the file's decimal mark)."""
    t = text.strip()
    if dec == ",":
        t = t.replace(".", "#").replace(",", ".")
    try:
        float(t)
        return True
    except ValueError:
        return False


def _decimal_comma(path: str, sep: str, text: str, whole: bool) -> bool:
    """Whether a file separated by ``sep`` (not a comma) writes its numbers with a
    decimal comma: a field of its first 64 KiB is digits, a comma and digits (QA
    2026-12-06: judged from the first bar alone, a file, or a part of one, starting on
    whole-number prices was refused), and not only as ``d,ddd``, which may be a
    thousands separator: such a file is refused (QA 2026-12-06: 33,450 points were
    stored as 33.45). ``text``: the file's :func:`_sample` (``whole``: all of it)."""
    lines = text.splitlines()  # the last may be cut where the file goes on
    if not whole:
        lines = lines[:-1] or lines
    commas = [x for row in csv.reader(lines, delimiter=sep) for x in row if "," in x]
    decimal = [x for x in commas if _DECIMAL_COMMA.fullmatch(x)]
    if decimal and all(_THOUSANDS_LIKE.fullmatch(x) for x in decimal):
        raise BadInputError(
            f"numbers like {decimal[0].strip()!r} read as a decimal comma or as a thousands "
            "separator: incbt cannot tell which",
            file=path,
            value=decimal[0].strip(),
            fix="say the files' decimal mark: --decimal , (three decimals) or --decimal . "
            "(then write the numbers without thousands separators: 33450)",
        )
    return bool(decimal)


def _read_csv(
    path: str,
    mapping: Mapping[str, str],
    tz: str | None,
    use_threads: bool = True,
    ts_unit: str = "ns",
    instrument: str | None = None,
    ts_format: str | None = None,
    names: Sequence[str] | None = None,
    decimal: str | None = None,
) -> _Read:
    """The file's table, "csv", where the fast reader read it, the bars block its
    columns are views of (else None), and the file's columns it does not read.
    ``instrument``: every bar's (the file has no column of names). ``ts_format``: how
    its ts are written (strptime codes), where they are not ISO 8601. ``names``: the
    fields of a file without a header line (``--header``), whose first line is a bar.

    Fields separated by ``;``, a tab or ``|`` are read as such where the header (or the
    first bar) shows it (QA 2026-12-06: refused, the file to be saved again with
    commas), and with ``;`` a decimal comma where the first bar's prices have one
    (``101,25``). Sets the file's dialect for what reads it next (:func:`read_input`
    resets it)."""
    text, whole = _sample(path)
    header, first = _head_lines(text)
    if names is not None:  # no header line: its first line is the first bar
        first = header
        sep = _bar_separator(text.split("\n", 1)[0].rstrip("\r"), len(names))
    else:
        sep = _separator(header or [])
    dec = "."
    if sep != ",":
        header, first = _head_lines(text, sep)
        if names is not None:
            first = header
        if decimal is None and _decimal_comma(path, sep, text, whole):
            dec = ","
    if decimal is not None:  # --decimal: as given (d,ddd is then read as it says)
        dec = decimal
    stacked = None if names is not None or sep != "," else _stacked(header, first, text)
    if stacked is not None:  # yfinance's header of three lines: each ticker's bars
        _DIALECT.set((sep, ".", 3))
        _MARK_GIVEN.set(decimal is not None)
        return _read_stacked(
            path, stacked, mapping, tz, use_threads, ts_unit, instrument, ts_format
        )
    if names is not None:
        header = list(names)
        if first is None or first == [] or first == [""]:  # (QA 2026-12-06: "line 2: the
            # file has a header but no bars")
            raise BadInputError(
                "the file is empty" if first is None else "the first line is blank",
                file=path,
                line=None if first is None else 1,
                fix="give files of bars, one a line"
                if first is None
                else "remove the blank line(s) before the first bar",
            )
        if [x.strip().lower() for x in first] == [x.strip().lower() for x in names]:
            raise BadInputError(
                "the file's first line is the header --header gives",
                file=path,
                line=1,
                fix="drop --header for files with a header line",
            )
        numbers = sum(_is_number(x, dec) for x in first)
        if not numbers:  # a header line of other names (QA 2026-12-06: "the header line
            # again, among the bars", or a column that is not a number)
            raise BadInputError(
                "the first line looks like a header line, not a bar: no field of it is a number",
                file=path,
                line=1,
                value=(sep.join(first))[:80],
                fix="drop --header for files with a header line (map their names with --map)",
            )
        if len(first) != len(names):
            raise BadInputError(
                f"--header names {len(names)} field(s), the first bar has {len(first)}"
                + (f" (separated by {sep!r})" if sep != "," else ""),
                file=path,
                line=1,
                value=(sep.join(first))[:80],
                fix=f"give --header {len(first)} names, one for each field of a line, in "
                "order (a field left empty at the end of each line needs a name too)",
            )
    _DIALECT.set((sep, dec, 0 if names is not None else 1))
    _MARK_GIVEN.set(decimal is not None)
    return _read_csv_as(
        path, header, first, mapping, tz, use_threads, ts_unit, instrument, ts_format
    )


def _read_csv_as(
    path: str,
    header: list[str] | None,
    first: list[str] | None,
    mapping: Mapping[str, str],
    tz: str | None,
    use_threads: bool,
    ts_unit: str,
    instrument: str | None,
    ts_format: str | None,
) -> _Read:
    """:func:`_read_csv` of a file whose dialect is known (``_DIALECT``)."""
    if header is None:
        raise BadInputError(
            "the file is empty",
            file=path,
            fix=f"give a header line {header_line(instrument)} and at least one bar",
        )
    if header == []:  # a blank first line: the header must be the first
        raise BadInputError(
            "the first line is blank, where the header must be",
            file=path,
            line=1,
            fix="remove the blank line(s) before the header line " + header_line(instrument),
        )
    header, wanted, ts_kind = _csv_head(path, header, first, mapping, instrument)
    other = ignored(header, wanted)
    ts_src = wanted["ts"]
    types: dict[str, pa.DataType] = {}
    if instrument is None:
        types[wanted["instrument"]] = pa.dictionary(pa.int32(), pa.string())
    for c in FLOAT_COLUMNS:
        types[wanted[c]] = pa.float64()
    joined = ts_src.split(JOIN) if JOIN in ts_src else None
    if (
        not tz
        and (ts_kind != "int" or ts_unit == "ns")
        and instrument is None
        and joined is None
        and ts_format is None
        and _DIALECT.get() == (",", ".", 1)
    ):  # the plain layout most files
        # have, in one Numba pass where it applies (it reads integer ts as nanoseconds)
        fast = fastcsv.read_block(path, _roles(header, wanted), ts_kind == "int")
        if fast is not None:
            return _Read(fast[0], "csv", fast[1], other)
    # Let Arrow parse ts itself; on failure re-read it as text to name the line.
    types[ts_src] = (
        pa.int64()
        if ts_kind == "int"
        else (pa.timestamp("ns") if tz else pa.timestamp("ns", tz="UTC"))
    )
    if joined is not None or ts_format is not None:  # text, parsed below
        del types[ts_src]
        for c in joined or [ts_src]:
            types[c] = pa.string()
    try:
        table = _arrow_csv_or_gz(path, types, use_threads, header)
    except pa.ArrowInvalid as exc:
        msg = str(exc)
        m = re.search(r"column #(\d+)", msg)
        if m and header[int(m.group(1))] == ts_src:
            types[ts_src] = pa.string()
            table = _arrow_csv_or_explain(path, header, types)
            _parse_ts_text(
                path,
                table.column(ts_src).combine_chunks(),
                ts_kind,
                tz,
                "csv",
                _names_column(table, wanted, instrument),
                ts_unit,
            )
            raise  # pragma: no cover - the text parse above names the bad line
        _explain_csv_error(path, header, msg, types, wanted.get("instrument"))
        raise  # pragma: no cover
    cols = {c: table.column(wanted[c]) for c in wanted if c != "ts"}
    cols["instrument"] = _names_column(table, wanted, instrument)
    if joined is not None or ts_format is not None:
        text = _ts_text(table, joined or [ts_src])
        cols["ts"] = (
            _parse_ts_format(path, text, ts_format, tz, "csv", cols["instrument"])
            if ts_format is not None
            else _parse_ts_text(path, text, "text", tz, "csv", cols["instrument"], ts_unit)
        )
        return _Read(pa.table([cols[c] for c in COLUMNS], names=list(COLUMNS)), "csv", None, other)
    cols["ts"] = table.column(ts_src)
    ts = cols["ts"].combine_chunks()
    if tz:
        ts = _assume_tz(path, ts, tz, "csv", None, cols["instrument"])
    cols["ts"] = _scaled(path, ts, ts_unit, "csv") if ts_kind == "int" else pc.cast(ts, pa.int64())
    return _Read(pa.table([cols[c] for c in COLUMNS], names=list(COLUMNS)), "csv", None, other)


def _names_column(table: pa.Table, wanted: Mapping[str, str], instrument: str | None) -> Any:
    """The table's instrument names: its column's, or ``instrument`` for every row."""
    if instrument is None:
        return table.column(wanted["instrument"]).combine_chunks()
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(table.num_rows, np.int32)), pa.array([instrument], pa.string())
    )


def _ts_text(table: pa.Table, columns: Sequence[str]) -> pa.Array:
    """The ts column as text: one column's, or a date's and a time's joined by a space
    (Parquet dates and times as their ISO text)."""
    parts = []
    for c in columns:
        a = table.column(c).combine_chunks()
        if isinstance(a, pa.DictionaryArray):
            a = a.dictionary_decode()
        parts.append(a if pa.types.is_string(a.type) else pc.cast(a, pa.string()))
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, " ")


_FRACTION = re.compile(r"^(?P<base>.*)\.(?P<frac>\d{1,9})$")


def check_reading(
    ts_unit: str | None = None,
    instrument: str | None = None,
    ts_format: str | None = None,
    header: Any = None,
    decimal: str | None = None,
    mapping: Mapping[str, str] | None = None,
) -> list[str] | None:
    """The reading options' own checks (each given), for the CLI before the store is
    opened and for ``Store.ingest``/``update``; returns ``header``'s names."""
    if ts_unit is not None:
        check_ts_unit(ts_unit)
    if instrument is not None:
        check_instrument(instrument, mapping)
    if ts_format is not None:
        check_ts_format(ts_format)
        if ts_unit not in (None, "ns"):  # integer times have no format (QA 2026-12-06:
            # ignored)
            raise UsageError(
                "--ts-unit (ts_unit=) reads integer times, --ts-format (ts_format=) "
                "times written as text: give one of them"
            )
    if decimal is not None:
        check_decimal(decimal)
    return None if header is None else check_header(header)


def check_decimal(mark: Any) -> None:
    """``--decimal``: a CSV file's decimal mark, "." or ","."""
    if mark not in (".", ","):
        raise UsageError(
            f"--decimal {mark!r}: give . or , (the decimal mark of the files' numbers, where "
            "101,250 could be a thousands separator or three decimals)"
        )


def check_header(names: Any) -> list[str]:
    """``--header``: the names of a header-less file's fields, in order, each once."""
    if isinstance(names, str):
        names = names.split(",")
    if not isinstance(names, list | tuple) or not all(isinstance(x, str) for x in names):
        raise UsageError(
            "--header (header=) names the fields of a CSV file without a header line, in "
            "order: --header ts,open,high,low,close,volume"
        )
    out = [x.strip() for x in names]
    if len(out) < 2 or not all(out) or len(set(out)) != len(out):
        raise UsageError(
            f"--header {','.join(names)}: give each field a name of its own, in order "
            "(--header Date,Time,Open,High,Low,Close,Volume)"
        )
    return out


def check_ts_format(fmt: str) -> None:
    """``--ts-format``: strptime codes, at least a year's."""
    if not isinstance(fmt, str) or not re.search(r"%[Yy]", fmt):
        raise UsageError(
            f"--ts-format {fmt!r}: give how the file writes its times, with strptime codes "
            "and a year (--ts-format '%m/%d/%Y %H:%M', '%Y%m%d %H%M%S', "
            "'%d.%m.%Y %H:%M:%S.%f')"
        )
    if "%Z" in fmt:  # Arrow's strptime matches any word there and drops it (QA 2026-12-06:
        # "09:30 EST" stored as 09:30 UTC)
        raise UsageError(
            f"--ts-format {fmt!r}: %Z (a zone's name, EST) is not read: name the zone of the "
            "times with --tz (--tz America/New_York), or read offsets (-0500) with %z"
        )
    if "%f" in fmt and not fmt.endswith(".%f"):
        raise UsageError(
            f"--ts-format {fmt!r}: fractions of a second (%f) are read at the end of the "
            "time only, after a dot (...%S.%f)"
        )


def _not_there(base: pa.Array, parsed: pa.Array, fmt: str) -> np.ndarray:
    """Rows Arrow's strptime read as another time than written: a day that does not
    exist (02/29/2023 read as March 1st, 04/31 as May 1st) or a 60th second, which it
    carries over (QA 2026-12-06: stored a day or a month off, silently). Each time is
    written back in the format; where that gives other text (a day not padded, an
    offset) Python's strptime, which refuses such days, judges the row."""
    out = np.zeros(len(base), dtype=bool)
    # only where a carry can land (Arrow's strftime costs ~0.8 s per million rows): a day
    # 29-31 carried lands on days 1-3 (4 in UTC, an offset away), a 60th second is "60"
    maybe = pc.or_(pc.less_equal(pc.day(parsed), 4), pc.match_substring(base, "60"))
    cand = np.flatnonzero(pc.fill_null(maybe, False).to_numpy(zero_copy_only=False))
    if not len(cand):
        return out
    idx = pa.array(cand)
    some, seen = base.take(idx), parsed.take(idx)
    whole = pc.cast(seen, pa.timestamp("s", tz=seen.type.tz), safe=False)
    again = pc.strftime(whole, format=fmt)
    differ = pc.not_equal(pc.utf8_trim_whitespace(again), pc.utf8_trim_whitespace(some))
    rows = cand[np.flatnonzero(pc.fill_null(differ, False).to_numpy(zero_copy_only=False))]
    if not len(rows):
        return out
    import datetime as dt

    values = base.take(pa.array(rows)).to_pylist()
    for k, v in zip(rows.tolist(), values, strict=True):
        try:
            dt.datetime.strptime(v.strip(), fmt)
        except (ValueError, TypeError):
            out[k] = True
            break  # the first is named
    return out


def _format_fix(fmt: str, value: str) -> str:
    """The fix for a time the format does not read: a day-first format where that reads
    it (or month-first), else the codes."""
    import datetime as dt

    if "%d" in fmt and "%m" in fmt:
        other = fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")
        base = value.rsplit(".", 1)[0] if fmt.endswith(".%f") else value
        short = other[:-3] if other.endswith(".%f") else other
        try:  # read as the ingest reads it (Arrow's strptime, then the check of days
            # and times that do not exist): Python's alone took a time 100 as 01:00:00,
            # and the fix sent the user back and forth (QA 2026-12-06)
            text = pa.array([base.strip()])
            parsed = pc.strptime(text, format=short, unit="s", error_is_null=True)
            reads = parsed.null_count == 0 and not _not_there(text, parsed, short).any()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            try:
                dt.datetime.strptime(base.strip(), short)
                reads = True
            except ValueError:
                reads = False
        if reads:
            return f"the file's dates read the other way round: --ts-format {other!r}"
    return (
        "give the format the file writes its times in (strptime codes, e.g. "
        "'%m/%d/%Y %H:%M' for 01/02/2024 09:30), and check that the day exists and that "
        "each field the format reads without a separator has its two digits (0930, not 930)"
    )


def _parse_ts_format(
    path: str, text: pa.Array, fmt: str, tz: str | None, fkind: str, instruments: Any
) -> pa.Array:
    """Text times written as ``fmt`` (strptime; ``.%f`` at the end: up to 9 digits of a
    second) to int64 ns UTC; naive ones in ``tz``."""
    base, frac_ns = text, None
    base_fmt = fmt
    if fmt.endswith(".%f"):  # Arrow's strptime has no %f: the fraction apart
        base_fmt = fmt[:-3]
        parts = pc.extract_regex(text, _FRACTION.pattern)
        base = parts.field("base")
        frac = parts.field("frac")
        frac_ns = pc.cast(pc.utf8_rpad(frac, 9, "0"), pa.int64())
    parsed = pc.strptime(base, format=base_fmt, unit="ns", error_is_null=True)
    bad = pc.and_(pc.is_null(parsed), pc.is_valid(text)).to_numpy(zero_copy_only=False)
    if not bad.any():
        bad = _not_there(base, parsed, base_fmt)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise BadInputError(
            f"ts does not read as --ts-format {fmt}",
            file=path,
            **_at_named(fkind, i, instruments),
            value=text[i].as_py(),
            fix=_format_fix(fmt, str(text[i].as_py())),
        )
    if parsed.type.tz is None:
        if not tz:
            raise BadInputError(
                "ts has no UTC offset",
                file=path,
                **_at(fkind, 0),
                value=text[0].as_py(),
                fix="name the zone of the times with --tz ZONE (--tz UTC for UTC times), or "
                "read an offset with %z in --ts-format",
            )
        parsed = _assume_tz(path, parsed, tz, fkind, text, instruments)
    elif tz:  # two options that contradict each other: a usage error (QA 2026-12-06: 1)
        raise UsageError(
            f"--ts-format {fmt!r} reads each time's offset (%z), which --tz {tz} cannot "
            "apply to: drop --tz (or read times without offsets, without %z, with --tz)"
        )
    out = pc.cast(pc.cast(parsed, pa.timestamp("ns", tz="UTC")), pa.int64())
    return out if frac_ns is None else pc.add(out, frac_ns)


def _gz_without_trailing_blanks(path: str) -> pa.BufferReader | None:
    """A compressed CSV file's text without the blank lines after its last bar, when it
    has any (decompressed in memory: only for the rare file that needs it)."""
    if not is_gz(path):
        return None
    import gzip

    with gzip.open(path, "rb") as f:
        data = f.read()
    end = fastcsv.trailing_blanks_start(data[-fastcsv.TAIL :], len(data))
    return None if end is None else pa.BufferReader(pa.py_buffer(data)[:end])


def _arrow_csv_or_gz(
    path: str, types: dict[str, pa.DataType], use_threads: bool, names: list[str]
) -> pa.Table:
    """:func:`_arrow_csv`, and where Arrow fails on a ``.csv.gz``, or reads a row empty in
    its first field last, again without its blank lines after the last bar (what the error
    or the row may have been: a plain file's are cut before Arrow reads it). With every
    column read as text (a yfinance file's), those lines gave rows of empty fields and no
    error, and were refused as blank lines between bars (QA 2026-12-07)."""
    try:
        table = _arrow_csv(path, types, use_threads, names=names)
    except pa.ArrowInvalid:
        gz = _gz_without_trailing_blanks(path)
        if gz is None:
            raise
        return _arrow_csv(path, types, use_threads, source=gz, names=names)
    if is_gz(path) and table.num_rows:
        last = table.column(0)[-1].as_py()
        if last is None or (isinstance(last, str) and not last.strip()):
            gz = _gz_without_trailing_blanks(path)
            if gz is not None:
                return _arrow_csv(path, types, use_threads, source=gz, names=names)
    return table


def _arrow_csv(
    path: str,
    types: dict[str, pa.DataType],
    use_threads: bool = True,
    source: pa.BufferReader | None = None,
    names: list[str] | None = None,
) -> pa.Table:
    """``path`` parsed by Arrow (``source``: its text, where already in memory).
    Blank lines after the last bar are left out; blank lines between bars are not.
    ``names``: the header's names as read (stripped: ``instrument, ts, ...`` names its
    columns " ts" for Arrow, and the ingest failed with a KeyError, exit 3: found
    2026-12-05), in place of the header line."""
    if source is None and not is_gz(path):
        end = fastcsv.bars_end(path)
        if end is not None:
            source = pa.BufferReader(pa.memory_map(path).read_buffer(end))
    return pcsv.read_csv(
        _csv_input(path) if source is None else source,
        read_options=pcsv.ReadOptions(
            use_threads=use_threads,
            column_names=names,
            skip_rows=_head() if names is not None else 0,
        ),
        parse_options=pcsv.ParseOptions(ignore_empty_lines=False, delimiter=_DIALECT.get()[0]),
        convert_options=pcsv.ConvertOptions(
            column_types=types,
            include_columns=list(types),  # the bars columns: the others are not read
            decimal_point=_DIALECT.get()[1],
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _csv_input(path: str) -> Any:
    """What Arrow's CSV reader reads ``path`` from: the path, or a gzip stream of it
    (Arrow goes by the name's ending in lower case: ``X.CSV.GZ`` was read as the
    compressed bytes: found 2026-12-05)."""
    if is_gz(path):
        return pa.input_stream(path, compression="gzip")
    return path


def _arrow_csv_or_explain(path: str, header: list[str], types: dict[str, pa.DataType]) -> pa.Table:
    try:
        return _arrow_csv(path, types, names=header)
    except pa.ArrowInvalid as exc:
        _explain_csv_error(path, header, str(exc), types)
        raise  # pragma: no cover


def _explain_csv_error(
    path: str,
    header: list[str],
    msg: str,
    types: Mapping[str, pa.DataType],
    names_col: str | None = None,
) -> None:
    """Turn Arrow's CSV error (which has no line number) into a precise BadInputError.
    ``types``: the columns' types as read (the numbers' float64); ``names_col``: the
    column of instruments' names, where --map names another than ``instrument``."""
    if "invalid UTF8" in msg:
        raise _not_utf8(path, None)
    if "Expected" in msg and "columns" in msg:
        found = _csv_line_problem(path, len(header))
        if found and "\n" in found[1]:  # a quoted field that runs over lines
            quote = _open_quote(path)
            if quote is not None:
                raise quote from None
        if found:
            line, text = found
            sep = _DIALECT.get()[0]
            n = len(text.split(sep)) if text else 0
            fix = "make every line have the header's columns (no blank lines)"
            if sep == "," and n > len(header) and re.search(r"\d,\d", text):
                # decimal commas in a comma-separated file cut its numbers in two (QA
                # 2026-12-06: said as the count of fields alone)
                fix = (
                    "if the numbers have decimal commas (101,25), they cut the line into "
                    'more fields: quote them ("101,25", then read with --decimal ,) or '
                    "separate the fields with ';'; else " + fix
                )
            elif not text.strip(" \t\x1a"):  # spaces, or a DOS end-of-file byte (QA)
                fix = "remove the line of spaces (or the end-of-file byte) from the file"
            raise BadInputError(
                f"expected {len(header)} fields, found {n}",
                file=path,
                line=line,
                value=text[:80],
                fix=fix,
            ) from None
    m = re.search(r"column #(\d+)", msg)
    if m:
        # Arrow's threads name whichever bad column they met first: name the first bad
        # value in the file instead (by line, then column), the same every time
        named = header[int(m.group(1))]
        cols = [c for c in header if types.get(c) == pa.float64()] or [named]
        text = pcsv.read_csv(
            _csv_input(path),
            # the header's names as read (stripped), as _arrow_csv takes them
            read_options=pcsv.ReadOptions(column_names=header, skip_rows=_head()),
            parse_options=pcsv.ParseOptions(ignore_empty_lines=False, delimiter=_DIALECT.get()[0]),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(cols, pa.string()),
                include_columns=cols,
                null_values=[],
                strings_can_be_null=False,
            ),
        )
        firsts = []  # (first bad row, column position) of each column with a bad value
        for k, c in enumerate(cols):
            values = text.column(c).combine_chunks()
            if _DIALECT.get()[1] == ",":  # decimal commas read as Arrow read them (a
                # dot is no decimal mark there)
                values = pc.replace_substring(values, pattern=".", replacement="#")
                values = pc.replace_substring(values, pattern=",", replacement=".")
            try:
                pc.cast(values, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                firsts.append((_first_bad(values, pa.float64()), k))
        if not firsts:  # pragma: no cover - Arrow named a column that converts
            raise BadInputError(f"cannot parse the CSV: {msg}", file=path) from None
        i, k = min(firsts)
        col = cols[k]
        strings = text.column(col).combine_chunks()
        if _line_is_blank(path, i + 1 + _head()):
            raise BadInputError(
                "blank line (or a row of separators only)",
                file=path,
                line=i + 1 + _head(),
                fix="remove blank lines and empty rows between bars (after the last bar "
                "they are left out)",
            ) from None
        if (strings[i].as_py() or "").strip().lower() == col.lower():  # the header again
            raise BadInputError(
                "the header line again, among the bars (files joined one after another?)",
                file=path,
                line=i + 1 + _head(),
                fix="keep the header once, at the top (or ingest the files apart)",
            ) from None
        if i + 1 + _head() == 2:  # the second line: a second header line? (yfinance's)
            _refuse_stacked_header(path)
        raise BadInputError(
            f"column {col} is not a number",
            file=path,
            line=i + 1 + _head(),
            # the --map'ped column's (QA 2026-12-07: a mapped file's said no instrument)
            instrument=_instrument_at(path, header, i, {"instrument": names_col or "instrument"}),
            value=strings[i].as_py(),
            fix=_number_fix(strings[i].as_py() or "", _DIALECT.get()[1]),
        ) from None
    raise BadInputError(f"cannot parse the CSV: {msg}", file=path) from None


_MARK_GIVEN: contextvars.ContextVar[bool] = contextvars.ContextVar("mark_given", default=False)


def _number_fix(value: str, mark: str) -> str:
    """The fix for a price or volume that is no number where the decimal mark is ``mark``
    (QA 2026-12-06: "as the file's first bar does" of a first bar that did not, and no
    word of --decimal where the value had the other mark)."""
    v = value.strip()
    if re.fullmatch(r"-?\d{1,3}([.,])\d{3}(\1\d{3})*[.,]\d+", v) and v.count(",") and v.count("."):
        return (
            "thousands separators are not read (16.751,50 or 16,751.50): write the numbers "
            "without them"
        )
    other = "," if mark == "." else "."
    example = "101.25" if mark == "." else "101,25"
    if re.fullmatch(rf"-?\d*\{other}\d+([eE][-+]?\d+)?", v):
        if _MARK_GIVEN.get() or mark == ".":  # --decimal says otherwise, or none was seen
            return (
                f"the file writes decimal {'commas' if other == ',' else 'points'} here: give "
                f"--decimal {other} (Python: decimal={other!r})"
            )
        # decimal commas judged from the file's first bars: this one writes a point
        return f"write every number of the file with one decimal mark, like {example}"
    return f"write numbers like {example} (no thousands separators, no empty fields)"


def _refuse_stacked_header(path: str) -> None:
    """A header of three lines, as pandas writes columns of two levels, other than
    yfinance's (since 0.2.48: ``Price,Close,...`` / ``Ticker,AAPL,...`` / ``Datetime,,,,``,
    read by :func:`_read_stacked`), said as that with the fix (QA 2026-12-07: "column
    Close is not a number; value 'AAPL'")."""
    with _text(path) as f:
        lines = list(itertools.islice(csv.reader(f, delimiter=_DIALECT.get()[0]), 3))
    if len(lines) < 3 or not all(lines) or len({len(x) for x in lines}) > 1:
        return
    first, second, third = lines
    levels = _yf_levels(first[0], second[0])
    if levels and re.fullmatch(r"[-+.:\d /TZe]+", third[0].strip() or "x"):
        # yfinance's levels over a bar: the index was written without a name (its line
        # 3 left out), read as "missing column(s) instrument, ts, ..., the file has
        # Price, Close, ..." with --map for a fix (QA 2026-12-07)
        raise BadInputError(
            "a header of two lines (Price and Ticker: yfinance's columns of two levels) "
            "without the index's name on line 3, which yfinance's files have",
            file=path,
            line=3,
            value=third[0],
            fix="name the index before df.to_csv(...): df.index.name = 'Datetime' (or "
            "insert a line 'Datetime' followed by the commas as line 3: "
            f"sed -i '3i Datetime{',' * (len(third) - 1)}' FILE)",
        )
    if not (third[0].strip() and all(not x.strip() for x in third[1:])):
        return  # line 3 names the index alone
    if re.fullmatch(r"[-+.:\d /TZe]+", second[0].strip() or "0"):
        return  # line 2 is a bar
    yf = levels
    raise BadInputError(
        f"a header of three lines ({first[0]!r}, {second[0]!r}, {third[0]!r}: pandas' "
        "columns of two levels, "
        + (
            "as yfinance writes them, read only with fields separated by commas)"
            if yf
            else "not yfinance's Price and Ticker lines, which are read)"
        ),
        file=path,
        line=2,
        # yfinance's own levels with another separator: written again with commas, it is
        # read as it is (the one-line header a droplevel leaves loses the tickers of a file
        # of several, and names no ts: QA 2026-12-07)
        fix="write it again with commas: df.to_csv(path) (pandas' default separator)"
        if yf
        else f"give the file one header line: in pandas, df.columns = "
        "df.columns.droplevel(1) before df.to_csv(...); or delete lines 2 and 3 and name "
        f"the first column {third[0].strip()} (sed -i '2,3d;1s/^{first[0]}/"
        f"{third[0].strip()}/' FILE)",
    )


# yfinance's header of three lines (pandas' columns of two levels, 0.2.48 on): the level
# names as its first fields, Price's and Ticker's in either order (group_by='column' or
# 'ticker'), then the index's name alone (Datetime, Date)
_LEVELS = ("price", "ticker")


def _yf_levels(a: str, b: str) -> bool:
    """Whether two lines' first fields are yfinance's level names, in either order."""
    return sorted((a.strip().lower(), b.strip().lower())) == list(_LEVELS)


@dataclass(frozen=True)
class Stacked:
    """A yfinance file's header: the ts column's name (line 3), and the price (Close,
    High, Adj Close...) and the ticker of each column after it."""

    index: str
    prices: list[str]
    tickers: list[str]

    def column(self, k: int) -> str:
        """Column ``k`` (after the index) as messages name it: ``Close (AAPL)``."""
        return f"{self.prices[k]} ({self.tickers[k]})"


def _stacked(header: list[str] | None, first: list[str] | None, text: str) -> Stacked | None:
    """The yfinance header a CSV file's :func:`_sample` starts with, or None. Looks no
    further than the first field of the first two lines unless they are ``Price`` and
    ``Ticker`` (a plain file's reading pays nothing)."""
    if not header or not first:
        return None
    if not _yf_levels(header[0], first[0]):
        return None
    lines = list(itertools.islice(csv.reader(io.StringIO(text, newline="")), 3))
    if len(lines) < 3 or len({len(x) for x in lines}) > 1 or len(lines[0]) < 2:
        return None
    third = lines[2]
    if not third[0].strip() or any(x.strip() for x in third[1:]):
        return None  # line 3 names the index alone
    prices, tickers = (lines[0], lines[1])
    if prices[0].strip().lower() != "price":  # group_by='ticker': the lines swapped
        prices, tickers = tickers, prices
    return Stacked(
        third[0].strip(), [x.strip() for x in prices[1:]], [x.strip() for x in tickers[1:]]
    )


def is_stacked(path: str) -> bool:
    """Whether a CSV file starts with yfinance's header of three lines (read whole by
    an ingest, not in parts: a part's copy of the header is its first line)."""
    try:
        text, _ = _sample(path)
    except (OSError, UnicodeDecodeError, EOFError, zlib.error):
        return False  # its reading says what it is
    try:
        header, first = _head_lines(text)
        return _stacked(header, first, text) is not None
    except csv.Error:
        return False


_FAILED_FIX = (
    "download the tickers again (yf.download's messages say why it failed), or remove the "
    "file from the ingest"
)


def _failed(tickers: Sequence[str]) -> str:
    """The tickers of a yfinance file without a bar, as its message says them."""
    shown = ", ".join(tickers[:8]) + (f", ... ({len(tickers)} in all)" if len(tickers) > 8 else "")
    return f"yfinance's download of {shown} got nothing, or no data in the dates asked"


def _read_stacked(
    path: str,
    st: Stacked,
    mapping: Mapping[str, str],
    tz: str | None,
    use_threads: bool,
    ts_unit: str,
    instrument: str | None,
    ts_format: str | None,
) -> _Read:
    """:func:`_read_csv` of a file with yfinance's header (:class:`Stacked`): each
    ticker's bars, under its name (``instrument``, from --instrument, names a file of one
    ticker's), grouped by ticker, and the file's row of each (``_FILE_ROWS``). A ticker
    whose fields of a row are all empty has no bar there (yfinance's way of saying so);
    some empty and others not is refused; a ticker without a bar in the file (a download
    that failed: yfinance leaves its columns empty) is said (``no_bars``)."""
    tickers = list(dict.fromkeys(st.tickers))
    blank = [k for k, t in enumerate(st.tickers) if not t.strip()]
    if blank and instrument is None:  # (QA 2026-12-07: said at the first bar's line)
        raise BadInputError(
            f"the Ticker line names no ticker in field {blank[0] + 2} (under "
            f"{st.prices[blank[0]]}): yfinance's second line names each column's instrument",
            file=path,
            line=2,
            value="",
            fix="give each column its ticker on the second line (as yfinance writes it), "
            "or, for a file of one instrument's bars, name it with --instrument NAME",
        )
    if instrument is not None and len(tickers) > 1:
        raise BadInputError(
            f"the file holds the bars of {len(tickers)} tickers ({', '.join(tickers[:4])}"
            f"{', ...' if len(tickers) > 4 else ''}: yfinance's header of three lines), and "
            f"--instrument {instrument} would name them all",
            file=path,
            line=2,
            fix="ingest yfinance's files without --instrument: each ticker's bars are named "
            "by its ticker",
        )
    mapping = dict(mapping)
    by = mapping.pop("instrument", None)
    if by is not None and by.strip().lower() != "ticker":
        raise BadInputError(
            f"missing column {by} (for instrument): a file with yfinance's header of three "
            "lines names each column's ticker on its Ticker line",
            file=path,
            line=1,
            fix="drop --map instrument: the tickers name the bars (--instrument NAME names "
            "a file of one ticker's)",
        )
    mapping.setdefault("ts", st.index)
    # a price of a ticker given twice (downloads joined side by side, pd.concat(axis=1)):
    # which one to read cannot be told (QA 2026-12-07: "ticker AAPL: missing column(s)
    # open, high, ...; the file has ..., Close, High, ...")
    seen: dict[tuple[str, str], int] = {}
    read = {c.lower() for c in FLOAT_COLUMNS} | {v.strip().lower() for v in mapping.values()}
    for k, pt in enumerate(zip(st.prices, st.tickers, strict=True)):
        if pt in seen and pt[0].lower() in read:  # (one not read, Dividends: no matter)
            raise BadInputError(
                f"column {st.column(k)} is there twice (fields {seen[pt] + 2} and {k + 2} of "
                "yfinance's header: files or downloads joined side by side?)",
                file=path,
                line=1,
                instrument=instrument or pt[1],
                value=pt[0],
                fix="keep one column of each price and ticker: in pandas, "
                "df = df.loc[:, ~df.columns.duplicated()] before df.to_csv(...), or ingest "
                "the downloads as files of their own",
            )
        seen[pt] = k
    roles: list[tuple[str, list[int]]] = []  # each ticker's name and the columns of its
    # open, high, low, close and volume (1-based: after the index)
    used: set[int] = set()
    for t in tickers:
        own = [k for k, x in enumerate(st.tickers) if x == t]
        try:
            wanted = _check_columns(
                path, [st.index, *(st.prices[k] for k in own)], mapping, instrument or t
            )
        except BadInputError as e:  # said of the ticker
            raise BadInputError(
                f"ticker {t}: {e.problem}", file=path, line=1, value=e.value, fix=e.fix
            ) from None
        cols = [next(k for k in own if st.prices[k] == wanted[c]) + 1 for c in FLOAT_COLUMNS]
        roles.append((instrument or t, cols))
        used.update(cols)
    other = [p for p in dict.fromkeys(st.prices) if all(st.prices[k - 1] != p for k in used)]
    names = [st.index, *(f"\x1f{k}" for k in range(1, len(st.prices) + 1))]  # for Arrow
    types = {names[k]: pa.string() for k in (0, *sorted(used))}
    shown = [st.index, *(st.column(k) for k in range(len(st.prices)))]  # for messages
    try:
        table = _arrow_csv_or_gz(path, types, use_threads, names)
    except pa.ArrowInvalid as exc:
        _explain_csv_error(path, shown, str(exc), {})
        raise  # pragma: no cover
    if table.num_rows == 0:  # (QA 2026-12-07: "line 4", which the file has not)
        raise BadInputError(
            f"the file has yfinance's header of three lines and no bar: {_failed(tickers)}",
            file=path,
            line=_head(),
            fix=_FAILED_FIX,
        )
    # the numbers: an empty field is null (no bar), any other must read as a number
    values: dict[int, np.ndarray] = {}
    filled: dict[int, np.ndarray] = {}
    bad: list[tuple[int, int, str]] = []  # (row, column, value) of a field no number
    for k in sorted(used):
        text = table.column(names[k]).combine_chunks()
        empty = pc.equal(pc.utf8_trim_whitespace(text), "")
        some = pc.if_else(empty, pa.scalar(None, pa.string()), text)
        try:
            values[k] = pc.cast(some, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            i = _first_bad(some, pa.float64())
            bad.append((i, k, text[i].as_py()))
            continue
        filled[k] = ~empty.to_numpy(zero_copy_only=False)
    partial = []  # (row, column) of an empty field of a bar with others not empty
    for _, cols in roles:
        if any(k not in filled for k in cols):
            continue  # a field no number: said below
        got = np.vstack([filled[k] for k in cols])
        some_row = got.any(axis=0) & ~got.all(axis=0)
        if some_row.any():
            i = int(np.argmax(some_row))
            partial.append((i, cols[int(np.argmin(got[:, i]))]))
    first_bad = min(bad)[:2] if bad else None
    first_partial = min(partial) if partial else None
    if first_bad is not None and (first_partial is None or first_bad <= first_partial):
        i, k, value = min(bad)
        raise BadInputError(
            f"column {shown[k]} is not a number",
            file=path,
            line=i + 1 + _head(),
            instrument=instrument or st.tickers[k - 1],
            value=value,
            fix=_number_fix(value or "", "."),
        )
    if first_partial is not None:
        i, k = first_partial
        raise BadInputError(
            f"column {shown[k]} is empty, and other fields of the ticker's bar are not",
            file=path,
            line=i + 1 + _head(),
            instrument=instrument or st.tickers[k - 1],
            value="",
            fix="give the bar its open, high, low, close and volume, or leave all of them "
            "empty where the ticker had no bar (as yfinance writes it)",
        )
    ts = _stacked_ts(path, table.column(names[0]).combine_chunks(), tz, ts_unit, ts_format)
    rows = [np.flatnonzero(filled[cols[0]]) for _, cols in roles]
    keep = [j for j, r in enumerate(rows) if len(r)]  # a ticker without a bar: no name
    if not keep:
        raise BadInputError(
            f"the file has no bars: every ticker's fields are empty ({_failed(tickers)})",
            file=path,
            line=_head() + 1,
            fix=_FAILED_FIX,
        )
    order = np.concatenate([rows[j] for j in keep]).astype(np.int64)
    block = bars_block(len(order))
    block[0].view(np.int64)[:] = ts[order]
    for r in range(1, len(BLOCK_ROWS)):  # the floats: open, high, low, close, volume
        at = 0
        for j in keep:
            k, n = roles[j][1][r - 1], len(rows[j])
            block[r, at : at + n] = values[k][rows[j]]
            at += n
    codes = np.repeat(np.arange(len(keep), dtype=np.int32), [len(rows[j]) for j in keep])
    inst = pa.DictionaryArray.from_arrays(
        pa.array(codes), pa.array([roles[j][0] for j in keep], pa.string())
    )
    out = pa.table(
        [inst, pa.array(block[0].view(np.int64)), *(pa.array(block[k]) for k in range(1, 6))],
        names=list(COLUMNS),
    )
    _FILE_ROWS.set(order)
    no_bars = tuple(t for j, t in enumerate(tickers) if not len(rows[j]))
    return _Read(out, "csv", block, other, no_bars)


def _stacked_ts(
    path: str, text: pa.Array, tz: str | None, ts_unit: str, ts_format: str | None
) -> np.ndarray:
    """A yfinance file's ts column (text) as int64 ns UTC, one a row of the file, read as
    any CSV file's ts are (``2024-01-02 14:30:00-05:00``; a date alone, ``2024-01-02`` of
    daily bars, with --tz)."""
    blank = pc.equal(pc.utf8_trim_whitespace(text), "").to_numpy(zero_copy_only=False)
    if blank.any():
        i = int(np.argmax(blank))
        if _line_is_blank(path, i + 1 + _head()):
            raise BadInputError(
                "blank line (or a row of separators only)",
                file=path,
                line=i + 1 + _head(),
                fix="remove blank lines and empty rows between bars (after the last bar "
                "they are left out)",
            )
    if ts_format is not None:
        ts = _parse_ts_format(path, text, ts_format, tz, "csv", None)
    else:
        kind = "int" if _INT_RE.match(text[0].as_py() or "") else "text"
        if kind == "int" and tz:
            raise _tz_refused(path, "integers (UTC epoch times)", tz)
        ts = _parse_ts_text(path, text, kind, tz, "csv", None, ts_unit)
        if kind == "int":
            ts = _scaled(path, ts, ts_unit, "csv")
    return np.asarray(_one_array(ts).to_numpy(zero_copy_only=False), dtype=np.int64)


def _csv_line(path: str, line: int) -> list[str] | None:
    with _text(path) as f:
        for i, fields in enumerate(csv.reader(f, delimiter=_DIALECT.get()[0]), start=1):
            if i == line:
                return fields
    return None


def _line_is_blank(path: str, line: int) -> bool:
    fields = _csv_line(path, line)
    return fields is not None and all(not x.strip() for x in fields)


def _instrument_at(
    path: str, header: list[str], row: int, mapping: Mapping[str, str] | None = None
) -> str | None:
    """The instrument named on a CSV data row (slow path, errors only)."""
    fields = _csv_line(path, row + 1 + _head())
    name = (mapping or {}).get("instrument", "instrument")
    if fields is None or name not in header or len(fields) != len(header):
        return None
    return fields[header.index(name)] or None


def _parse_ts_text(
    path: str,
    text: pa.Array,
    kind: str,
    tz: str | None,
    fkind: str,
    instruments: Any = None,
    unit: str = "ns",
) -> pa.Array:
    """Strings (ISO-8601 with offset, or integer epoch ns) to int64 ns UTC."""

    def where(i: int) -> dict[str, Any]:
        return _at_named(fkind, i, instruments)

    if kind == "int":
        try:
            return pc.cast(text, pa.int64())
        except pa.ArrowInvalid:
            i = _first_bad(text, pa.int64())
            value = text[i].as_py()
            if re.fullmatch(r"\s*[+-]?\d+\s*", value or ""):  # digits past int64 (QA)
                raise BadInputError(
                    f"ts is an integer too large for an epoch in {_UNIT_NAMES[unit]} (past "
                    "2262-04-11)",
                    file=path,
                    **where(i),
                    value=value,
                    fix="give ts as nanoseconds since 1970-01-01 UTC, or as ISO 8601 text "
                    "with an offset (2024-01-02T14:30:00Z)",
                ) from None
            raise BadInputError(
                f"ts is not an integer epoch in {_UNIT_NAMES[unit]} like the first row's",
                file=path,
                **where(i),
                value=value,
                fix="use one ts format per file",
            ) from None
    target = pa.timestamp("ns") if tz else pa.timestamp("ns", tz="UTC")
    try:
        parsed = pc.cast(text, target)
    except pa.ArrowInvalid:
        i = _first_bad(text, target)
        value = text[i].as_py()
        if tz is None and _looks_naive(value) and _parses_naive(value):
            raise BadInputError(
                "ts has no UTC offset",
                file=path,
                **where(i),
                value=value,
                fix="write it with an offset (2024-01-02T14:30:00+00:00 or ...Z), or name the "
                "zone of naive timestamps with --tz ZONE",
            ) from None
        if tz is not None and not _looks_naive(value):
            raise BadInputError(
                f"ts has an offset, but --tz {tz} says timestamps are naive",
                file=path,
                **where(i),
                value=value,
                fix="drop --tz for timestamps with offsets",
            ) from None
        year = re.match(r"\s*(\d{4})-\d\d-\d\d", str(value))
        if year and not 1678 <= int(year.group(1)) <= 2261:
            raise BadInputError(
                f"ts is outside the times incbt stores ({NS_RANGE})",
                file=path,
                **where(i),
                value=value,
                fix="check the year of this bar",
            ) from None
        spaced = isinstance(value, str) and value != value.strip()
        if not spaced and isinstance(value, str) and re.fullmatch(r"\d{4}-.*\dz", value):
            raise BadInputError(  # RFC 3339 allows it; Arrow's reader does not (QA)
                "ts ends in a lower-case z",
                file=path,
                **where(i),
                value=value,
                fix="write UTC as an upper-case Z (2024-01-02T14:30:00Z) or +00:00",
            ) from None
        decimal_epoch = isinstance(value, str) and re.fullmatch(r"\s*-?\d+\.\d*\s*", value)
        name = _UNIT_NAMES[unit] if unit != "ns" else None  # (--ts-unit given)
        raise BadInputError(
            "ts is not an ISO-8601 timestamp"
            + (" (it has a space before or after it)" if spaced else "")
            + (" nor a whole number of epoch " + (name or "nanoseconds") if decimal_epoch else ""),
            file=path,
            **where(i),
            value=value,
            fix="write ts without spaces around it (`, ` between fields adds one)"
            if spaced
            else f"write epoch times as whole numbers of {name or 'nanoseconds'} (--ts-unit "
            "s, ms, us or ns), without a fraction (1704724200, not 1704724200.0)"
            if decimal_epoch
            else "write ts like 2024-01-02T14:30:00+00:00, or as integer epoch "
            + (f"{name} (--ts-unit {unit})" if name else "nanoseconds")
            + ", or give its format with --ts-format (e.g. '%m/%d/%Y %H:%M')",
        ) from None
    if tz:
        parsed = _assume_tz(path, parsed, tz, fkind, text, instruments)
    return pc.cast(parsed, pa.int64())


def _parses_naive(value: str) -> bool:
    try:
        pc.cast(pa.array([value]), pa.timestamp("ns"))
        return True
    except pa.ArrowInvalid:
        return False


def _looks_naive(value: str) -> bool:
    return not re.search(r"(Z|[+-]\d\d:?\d\d)\s*$", value)


def _tz_refused(path: str, what: str, tz: str) -> BadInputError:
    """``--tz`` given for a file whose ts are UTC already (``what`` they are)."""
    return BadInputError(
        f"ts holds {what}, which --tz {tz} cannot apply to",
        file=path,
        fix="drop --tz for this file (ingest it apart from files of naive local times)",
    )


# The last instant (int64 ns UTC) of each instrument in the parts of a big file before
# the part being read (:mod:`incbt.bars.parts`), after which a repeated hour's times at
# the part's start are read (:func:`resolving_after`); None: reading a whole file
_BEFORE: contextvars.ContextVar[Mapping[str, int] | None] = contextvars.ContextVar(
    "incbt_ts_before", default=None
)


class AmbiguousTime(BadInputError):
    """A part of a big file starts in an autumn change's repeated hour: the parts before
    it may show which pass its times are in (read it again after them). Raised only
    while reading a part (:func:`resolving_after`): a whole file's is a BadInputError."""


@contextlib.contextmanager
def resolving_after(before: Mapping[str, int]) -> Iterator[None]:
    """Read naive times of a repeated hour as coming after ``before``, each instrument's
    last instant (ns UTC) in the parts of a big file before this one."""
    token = _BEFORE.set(before)
    try:
        yield
    finally:
        _BEFORE.reset(token)


def _assume_tz(
    path: str,
    naive: pa.Array,
    tz: str,
    fkind: str,
    text: pa.Array | None = None,
    instruments: Any = None,
) -> pa.Array:
    """``naive`` in ``tz``; a time that is not there once, refused naming its row with
    the value as written (``text``) and its instrument (QA 2026-12-06: neither was).

    A time of the hour an autumn change repeats is read in the order the rows give it
    (QA 2026-12-07: refused, though futures and crypto files in local time have it):
    the earlier (daylight) instant, unless its instrument's row before it is past that,
    then the later one, much as pandas' ``tz_localize(ambiguous="infer")`` reads a series
    (which refuses some cases this places: a row after a gap in an instrument's rows)."""
    if pa.types.is_integer(naive.type):  # epoch times are UTC: read "not a known time
        raise _tz_refused(path, "integers (UTC epoch times)", tz)  # zone" (QA 2026-12-06)
    try:
        return pc.assume_timezone(naive, timezone=tz, ambiguous="raise", nonexistent="raise")
    except pa.ArrowInvalid:
        pass
    except (pa.ArrowNotImplementedError, KeyError) as exc:
        raise UsageError(f"--tz (tz=) {tz!r} is not a known time zone ({exc})") from None

    def refuse(
        i: int,
        reason: str,
        cls: type[BadInputError] = BadInputError,
        fix: str = "give timestamps with an explicit UTC offset around daylight-saving changes",
    ) -> None:
        raise cls(
            f"ts {reason}",
            file=path,
            **_at_named(fkind, i, instruments),
            value=str(naive[i].as_py() if text is None else text[i].as_py()),
            fix=fix,
        )

    # Only files with a change's hour come here: what is not there once is found with
    # Arrow's kernels, and only the rows of a repeated hour are looked at one by one.
    gap = None
    try:
        early = pc.assume_timezone(naive, timezone=tz, ambiguous="earliest")
    except pa.ArrowInvalid:  # a time a spring change skips: the first one
        lo, hi = 0, len(naive)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            try:
                pc.assume_timezone(naive.slice(lo, mid - lo), timezone=tz, ambiguous="earliest")
                lo = mid
            except pa.ArrowInvalid:
                hi = mid
        gap = lo
        early = pc.assume_timezone(naive, timezone=tz, ambiguous="earliest", nonexistent="earliest")
    late = pc.assume_timezone(naive, timezone=tz, ambiguous="latest", nonexistent="earliest")
    e = pc.fill_null(pc.cast(early, pa.int64()), 0).to_numpy(zero_copy_only=False)
    lt = pc.fill_null(pc.cast(late, pa.int64()), 0).to_numpy(zero_copy_only=False)
    repeated = np.flatnonzero(e != lt)
    if gap is not None:  # the first row not there once, refused (a gap's, or an unplaced
        repeated = repeated[repeated < gap]  # repeated hour's before it)
    codes, names = _instrument_codes(instruments, len(e))
    # each row's row before it of the same instrument (-1: none), in file order
    order = np.argsort(codes, kind="stable")
    pos = np.empty(len(order), np.int64)
    pos[order] = np.arange(len(order))
    prev = np.full(len(repeated), -1, np.int64)
    p = pos[repeated]
    has = p > 0
    has[has] = codes[order[p[has] - 1]] == codes[repeated[has]]
    prev[has] = order[p[has] - 1]
    out = e.copy()
    before = _BEFORE.get()
    for i, j in zip(repeated.tolist(), prev.tolist(), strict=True):
        last = out[j] if j >= 0 else (before or {}).get(names[codes[i]])
        if last is None:  # nothing before it shows which pass it is in
            refuse(
                i,
                f"is ambiguous in {tz}: that hour occurs twice there (clocks go back)",
                BadInputError if before is None else AmbiguousTime,
            )
        # the same time as its instrument's row before it: a row written twice, or the
        # hour's two passes sorted by the clock (01:00, 01:00, 01:01, ...), which no order
        # tells apart; refused saying both. Read as the second pass, it shifted the first
        # pass's rest an hour later, stored silently where the second pass was missing;
        # "duplicate ts: remove the duplicate bar" would drop a pass (QA 2026-12-07)
        if e[i] == last:
            refuse(
                i,
                f"is written twice in {tz}'s repeated hour (clocks go back there): its "
                "instrument's row before it has the same time",
                fix="remove the row if it is a duplicate; if the two are the hour's two passes "
                "(sorted by the clock), write the first pass's rows, then the second's, as "
                "they happened, or give timestamps with an explicit UTC offset",
            )
        if e[i] < last:  # its instrument went past the first pass: the second
            out[i] = lt[i]
    if gap is not None:
        refuse(gap, f"does not exist in {tz}: clocks skip it there (they go forward)")
    return pc.cast(
        pa.array(out, pa.int64(), mask=pc.is_null(naive).to_numpy(zero_copy_only=False)),
        pa.timestamp("ns", tz=tz),
    )


def _instrument_codes(instruments: Any, n: int) -> tuple[np.ndarray, list[str]]:
    """Each row's instrument as a number, and the names (as :func:`validate` reads them,
    in one Unicode form); one instrument where there is no column of them."""
    if instruments is None:
        return np.zeros(n, np.int64), [""]
    enc = pc.fill_null(pc.cast(_one_array(instruments), pa.string()), "").dictionary_encode()
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return _nfc_codes([str(x) for x in enc.dictionary.to_pylist()], codes)


def _nfc_codes(names: list[str], codes: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Instrument codes into ``names`` recoded into the names in one Unicode form (NFC), as
    names from file names have: "Cafe" and a combining accent was a second "Café" beside
    the composed one (QA 2026-12-06). The same arrays where every name is in it already."""
    nfc = [unicodedata.normalize("NFC", n) for n in names]
    if nfc == names:
        return codes, names
    index = {n: k for k, n in enumerate(dict.fromkeys(nfc))}
    return np.array([index[n] for n in nfc], codes.dtype)[codes], list(index)


def unreadable_parquet(path: str, exc: Exception) -> BadInputError:
    """The message for a Parquet file pyarrow cannot read (whole, or in batches)."""
    return BadInputError(
        f"not a readable Parquet file ({str(exc).splitlines()[0]})",
        file=path,
        fix="re-export the file as Parquet, or give a CSV file a .csv name",
    )


NS_RANGE = "nanoseconds since 1970 in 64 bits: 1677-09-21 to 2262-04-11"


def _check_ns_range(path: str, ts: pa.Array, instruments: pa.Array) -> None:
    """Refuse, naming the row, a timestamp of a coarser unit that nanoseconds cannot hold."""
    per = {"s": 10**9, "ms": 10**6, "us": 10**3}.get(ts.type.unit)
    if per is None:
        return
    raw = pc.cast(ts, pa.int64())
    out = pc.or_(pc.less(raw, -(2**63) // per + 1), pc.greater(raw, (2**63 - 1) // per))
    i = pc.index(out, True).as_py()
    if i is None or i < 0:
        return
    raise BadInputError(
        f"ts is outside the times incbt stores ({NS_RANGE})",
        file=path,
        row=i + 1,
        instrument=str(instruments[i].as_py()),
        value=str(ts[i].as_py()),
        fix="check the year of this bar",
    )


def _read_parquet(
    path: str,
    mapping: Mapping[str, str],
    tz: str | None,
    row_groups: tuple[int, int] | None = None,
    rows: pa.Table | None = None,
    ts_unit: str = "ns",
    instrument: str | None = None,
    ts_format: str | None = None,
) -> tuple[pa.Table, str, list[str]]:
    """The file's table of the bars columns, "parquet", and its columns not read.
    ``instrument``: every bar's (the file has no column of names). ``ts_format``: how
    its text ts are written (strptime codes)."""
    if rows is not None:  # rows of the file read already (a part: incbt.bars.parts)
        present = rows.schema.names
        wanted = _check_columns(path, present, mapping, instrument)
        table = rows
    else:
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise unreadable_parquet(path, exc) from None
        present = pf.schema_arrow.names
        wanted = _check_columns(path, present, mapping, instrument)
        use = list(dict.fromkeys(sources_of(wanted)))  # the others are not read
        table = (
            pf.read(columns=use)
            if row_groups is None
            else pf.read_row_groups(range(*row_groups), columns=use)
        )
    if table.num_rows == 0:
        raise BadInputError(
            "the file has no bars", file=path, fix="remove the empty file from the ingest"
        )
    cols: dict[str, pa.Array] = {}
    joined = wanted["ts"].split(JOIN) if JOIN in wanted["ts"] else None
    for c in wanted:
        if c == "ts" and joined is not None:  # a date's and a time's column, as text
            cols[c] = _ts_text(table, joined)
            continue
        a = table.column(wanted[c]).combine_chunks()
        if isinstance(a, pa.DictionaryArray):
            a = a.dictionary_decode()
        cols[c] = a
    if instrument is not None:
        cols["instrument"] = pa.array([instrument] * table.num_rows, pa.string())
    inst = cols["instrument"]
    if not (pa.types.is_string(inst.type) or pa.types.is_large_string(inst.type)):
        raise BadInputError(
            f"column instrument has type {inst.type}, expected string",
            file=path,
            fix="store instrument names as strings",
        )
    cols["instrument"] = pc.cast(inst, pa.string())
    for c in FLOAT_COLUMNS:
        a = cols[c]
        if pa.types.is_decimal(a.type):  # a database's NUMERIC, as its digits (QA)
            a = pc.cast(a, pa.string())
        elif not (pa.types.is_floating(a.type) or pa.types.is_integer(a.type)):
            raise BadInputError(
                f"column {c} has type {a.type}, expected a number",
                file=path,
                fix=f"store {c} as float64",
            )
        if pa.types.is_float32(a.type):  # widened through its shortest decimal text:
            # 1.1034 as float32 is 1.103399992 as a float64, where the same bar from a
            # CSV file is 1.1034, a correction then of every day (QA 2026-12-06)
            a = pc.cast(a, pa.string())
        # integers past 2**53 to their nearest float64, as a CSV file's digits are read
        # (a checked cast refused the file as unreadable: QA 2026-12-06)
        cols[c] = pc.cast(a, pa.float64(), safe=not pa.types.is_integer(a.type))
    ts = cols["ts"]
    if tz and (
        pa.types.is_integer(ts.type)
        or (pa.types.is_timestamp(ts.type) and ts.type.tz is not None)
        or (
            (pa.types.is_string(ts.type) or pa.types.is_large_string(ts.type))
            and _INT_RE.match(ts[0].as_py() or "")
        )
    ):  # as a CSV of them is refused (it was ignored here: QA 2026-12-06)
        zoned = pa.types.is_timestamp(ts.type)
        raise _tz_refused(path, "times with a zone" if zoned else "integers (UTC epoch times)", tz)
    if ts_format is not None and not (
        pa.types.is_string(ts.type) or pa.types.is_large_string(ts.type)
    ):
        raise BadInputError(
            f"ts holds {ts.type}, not text: --ts-format {ts_format} reads times written as text",
            file=path,
            fix="drop --ts-format for this file",
        )
    if pa.types.is_timestamp(ts.type):
        _check_ns_range(path, ts, cols["instrument"])
        if ts.type.tz is None:
            if not tz:
                raise BadInputError(
                    "column ts holds naive timestamps (no time zone)",
                    file=path,
                    fix="store ts as timestamp with tz='UTC', or name their zone with --tz ZONE",
                )
            ts = _assume_tz(
                path,
                pc.cast(ts, pa.timestamp("ns")),
                tz,
                "parquet",
                None,
                # an Array here (cast), a ChunkedArray read as it is (QA 2026-12-06: exit 3)
                _one_array(cols["instrument"]),
            )
        cols["ts"] = pc.cast(pc.cast(ts, pa.timestamp("ns", tz="UTC")), pa.int64())
    elif pa.types.is_integer(ts.type):
        cols["ts"] = _scaled(path, ts, ts_unit, "parquet")
    elif ts_format is not None and (
        pa.types.is_string(ts.type) or pa.types.is_large_string(ts.type)
    ):
        cols["ts"] = _parse_ts_format(
            path, pc.cast(ts, pa.string()), ts_format, tz, "parquet", cols["instrument"]
        )
    elif pa.types.is_string(ts.type) or pa.types.is_large_string(ts.type):
        first = ts[0].as_py() or ""
        kind = "int" if _INT_RE.match(first) else "text"
        cols["ts"] = _parse_ts_text(  # each row's instrument: its message names it, and
            path,  # a repeated hour is each instrument's (QA 2026-12-07)
            pc.cast(ts, pa.string()),
            kind,
            tz,
            "parquet",
            _one_array(cols["instrument"]),
            ts_unit,
        )
        if kind == "int":
            cols["ts"] = _scaled(path, cols["ts"], ts_unit, "parquet")
    else:
        raise BadInputError(
            f"column ts has type {ts.type}, expected a timestamp",
            file=path,
            fix="store ts as timestamp[ns, tz=UTC] or int64 epoch ns",
        )
    return (
        pa.table([cols[c] for c in COLUMNS], names=list(COLUMNS)),
        "parquet",
        ignored(present, wanted),
    )


_FIELDS = re.compile(r"\{([^{}]*)\}")


def check_instrument(spec: str, mapping: Mapping[str, str] | None = None) -> None:
    """``--instrument``: a name, or a template of ``{stem}`` (a file's name without its
    extensions) and ``{folder}`` (the name of the folder holding it)."""
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError(
            "--instrument (instrument=) names the instrument of files without a column "
            "of names: give a name, '{stem}' for each file's name or '{folder}' for its "
            "folder's"
        )
    if mapping and "instrument" in mapping:
        raise UsageError(
            f"--map instrument={mapping['instrument']} and --instrument {spec}: the first "
            "reads names from a column, the second names every bar: give one of them"
        )
    if not _FIELDS.search(spec) and not valid_name(spec):  # a name given: said as given
        raise UsageError(
            f"--instrument {shown_name(spec)!r} is no instrument name: use 1 to "
            f"{MAX_INSTRUMENT_LEN} characters, no leading/trailing spaces, no control or "
            "invisible characters"
        )
    rest = _FIELDS.sub("", spec)
    bad = [f for f in _FIELDS.findall(spec) if f not in ("stem", "folder")]
    if bad or "{" in rest or "}" in rest:
        raise UsageError(
            f"--instrument {spec}: "
            + (f"{{{bad[0]}}} is not a field" if bad else "a brace without its pair")
            + "; the fields are {stem} (a file's name without its extensions: AAPL for "
            "AAPL.csv.gz) and {folder} (the name of the folder holding it)"
        )


def instrument_for(path: str, spec: str) -> str:
    """The instrument ``--instrument`` names for the file at ``path``."""
    name = os.path.basename(path)
    for ext in (".csv.gz", ".csv", ".txt.gz", ".txt", ".parquet", ".pq"):  # its type, once
        if name.lower().endswith(ext) and len(name) > len(ext):
            name = name[: -len(ext)]
            break
    fields = {"stem": name, "folder": os.path.basename(os.path.dirname(os.path.abspath(path)))}
    # names from file names in one Unicode form: a Mac writes "Ä" as "A" and a combining
    # mark, a second instrument that looks the same (QA 2026-12-06)
    return unicodedata.normalize("NFC", _FIELDS.sub(lambda m: fields[m.group(1)], spec))


TS_UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}


def check_ts_unit(unit: str) -> None:
    if unit not in TS_UNITS:
        raise UsageError(
            f"--ts-unit {unit!r} (ts_unit=) is not a unit: give s, ms, us or ns (the unit of "
            "integer ts since 1970-01-01 UTC)"
        )


def _scaled(path: str, ts: Any, unit: str, fkind: str) -> pa.Array:
    """Integer ts in ``unit`` as int64 nanoseconds (an overflow said, with its row)."""
    ts = _one_array(ts) if isinstance(ts, pa.ChunkedArray) else ts
    try:
        ts = pc.cast(ts, pa.int64())
    except pa.ArrowInvalid:  # a uint64 past int64 (QA 2026-12-06: "cannot read the file")
        i = int(np.argmax(ts.to_numpy(zero_copy_only=False) > 2**63 - 1))
        raise BadInputError(
            "ts is past the times incbt stores (2262-04-11)",
            file=path,
            **_at(fkind, i),
            value=str(ts[i].as_py()),
            fix="check the ts column (and --ts-unit)",
        ) from None
    if unit == "ns":
        return ts
    raw = ts.to_numpy(zero_copy_only=False)
    if len(raw) and int(raw.min()) * TS_UNITS[unit] < TS_FLOOR:  # said in the unit given
        i = int(np.argmin(raw))
        v = int(raw[i])
        raise BadInputError(
            f"ts {v} in {unit} since 1970 is before 1973{_as_other_unit(v, unit)}",
            file=path,
            **_at(fkind, i),
            value=str(v),
            fix="check --ts-unit (the unit of the file's integer ts)",
        )
    try:
        return pc.multiply_checked(ts, pa.scalar(TS_UNITS[unit], pa.int64()))
    except pa.ArrowInvalid:
        i = int(np.argmax(np.abs(raw) > (2**63 - 1) // TS_UNITS[unit]))
        raise BadInputError(
            f"ts in {unit} is past the times incbt stores (2262-04-11)",
            file=path,
            **_at(fkind, i),
            value=str(ts[i].as_py()),
            fix=f"check --ts-unit (is ts in {unit}?)",
        ) from None


def _as_other_unit(v: int, unit: str) -> str:
    """What integer ts ``v`` (read in ``unit``) is as a date in the first other unit
    that makes it one from 1973 on ("" if none does)."""
    for other, scale in TS_UNITS.items():
        if other != unit and TS_FLOOR <= v * scale < 4 * 10**18:
            return f" (as {_UNIT_NAMES[other]} it is {np.datetime64(v * scale, 'ns')})"
    return ""


def _one_array(a: Any) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def read_input(
    path: str,
    mapping: Mapping[str, str] | None = None,
    tz: str | None = None,
    use_threads: bool = True,
    row_groups: tuple[int, int] | None = None,
    rows: pa.Table | None = None,
    ts_unit: str = "ns",
    instrument: str | None = None,
    ts_format: str | None = None,
    header: Sequence[str] | None = None,
    decimal: str | None = None,
) -> InputBars:
    """Read and validate one file; raise BadInputError on the first problem.

    ``ts_unit``: the unit of integer ts (s, ms, us or ns since 1970-01-01 UTC).
    ``instrument``: the name of every bar of a file without a column of names
    (``--instrument``, resolved for this file by :func:`instrument_for`).
    ``ts_format``: how text ts are written (``--ts-format``: strptime codes).
    ``header``: the names of the fields of a CSV file without a header line.
    ``decimal``: a CSV file's decimal mark, "." or "," (None: judged from the file).

    ``row_groups``: of a Parquet file, read only row groups [first, end) (a part of
    a big file: :mod:`incbt.bars.parts`; rows are numbered from the first read).
    ``rows``: of a Parquet file, rows read already, validated as the file's (a part
    of a file streamed in batches; numbered from its first).

    ``use_threads=False`` parses a CSV on the calling thread only: faster when
    the caller already reads several files at once (measured on 260 daily CSV
    files, 2 cores: 0.44 s two files at a time against 0.85 s one at a time
    with Arrow's threads).
    """
    token = _DIALECT.set((",", ".", 1))  # the file's dialect, set by _read_csv, read to
    rows_token = _FILE_ROWS.set(None)
    try:  # its validation's end
        return _read_input(
            path,
            mapping,
            tz,
            use_threads,
            row_groups,
            rows,
            ts_unit,
            instrument,
            ts_format,
            header,
            decimal,
        )
    finally:
        _FILE_ROWS.reset(rows_token)
        _DIALECT.reset(token)


def _read_input(
    path: str,
    mapping: Mapping[str, str] | None,
    tz: str | None,
    use_threads: bool,
    row_groups: tuple[int, int] | None,
    rows: pa.Table | None,
    ts_unit: str,
    instrument: str | None,
    ts_format: str | None,
    header: Sequence[str] | None,
    decimal: str | None = None,
) -> InputBars:
    mapping = dict(mapping or {})
    if tz:
        check_tz(tz)
    kind = _kind(path, header is not None)
    if header is not None and kind != "csv":
        raise BadInputError(
            "--header names the fields of a CSV file without a header line: a Parquet "
            "file names its columns",
            file=path,
            fix="ingest Parquet files without --header",
        )
    block = None
    try:
        try:
            if kind == "csv":
                table, kind, block, other, no_bars = _read_csv(
                    path, mapping, tz, use_threads, ts_unit, instrument, ts_format, header, decimal
                )
            else:
                table, kind, other = _read_parquet(
                    path, mapping, tz, row_groups, rows, ts_unit, instrument, ts_format
                )
                no_bars = ()
        except (
            UnicodeDecodeError,
            pa.ArrowInvalid,
            OSError,
            csv.Error,
            EOFError,
            zlib.error,
            BadInputError,
        ):
            # A compressed file cut short or damaged fails wherever its reading stops
            # (Python's gzip, Arrow's, or a CSV rule broken by the cut): said as that
            if is_gz(path):
                bad = gzip_damage(path)
                if bad is not None:
                    raise bad from None
            raise
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from None
    except (EOFError, zlib.error) as exc:  # pragma: no cover - a file changed as it was read
        raise BadInputError(
            f"cannot read the file ({type(exc).__name__}: {exc})", file=path, fix=GZIP_FIX
        ) from None
    except (pa.ArrowInvalid, OSError, csv.Error) as exc:
        if kind == "csv" and "invalid UTF8" in str(exc):
            raise _not_utf8(path, None) from None
        if kind == "csv" and "field larger than field limit" in str(exc):
            quote = _open_quote(path)  # Python's csv: a quote that runs to the end
            if quote is not None:
                raise quote from None
        if isinstance(exc, PermissionError) or "Permission denied" in str(exc):
            raise BadInputError(  # QA 2026-12-07: "save CSV files as UTF-8"
                "cannot read the file (permission denied)",
                file=path,
                fix="give read access to it (chmod u+r), or leave it out of the paths given",
            ) from None
        raise BadInputError(
            f"cannot read the file ({str(exc).splitlines()[0]})",
            file=path,
            fix="save CSV files as UTF-8 text with a header line"
            if kind == "csv"
            else "re-export the file as Parquet with the columns "
            "instrument, ts, open, high, low, close, volume",
        ) from None
    out = _validated(path, kind, table, block, tz, mapping)
    out.tz = tz
    out.ignored = other
    out.no_bars = list(no_bars)
    out.header_lines = _head() if kind == "csv" else 1
    return out


GZIP_FIX = (
    "download or copy the file again (it was cut short or damaged on the way), or "
    "compress the CSV file again, whole, with gzip (`gzip -t FILE` checks one)"
)


def gzip_error(path: str, exc: BaseException) -> BadInputError:
    """The error for a ``.gz`` file whose decompression failed with ``exc``."""
    why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, EOFError):  # Python's words: "Compressed file ended before the..."
        why = "it ends before its compressed data does"
    try:
        with open(path, "rb") as f:
            plain = f.read(2) != b"\x1f\x8b"  # not gzip's magic number
    except OSError:
        plain = False
    if plain:  # a plain CSV named .gz: "download it again" was no fix (QA 2026-12-06)
        return BadInputError(
            "cannot read the file: its name ends .gz but it is not gzip-compressed",
            file=path,
            fix="rename it without .gz if it is a plain CSV file, or compress it with gzip",
        )
    return BadInputError(
        f"cannot read the file: truncated or corrupt gzip file ({why})",
        file=path,
        fix=GZIP_FIX,
    )


def gzip_damage(path: str) -> BadInputError | None:
    """The error for a ``.gz`` file that does not decompress whole (cut short, damaged,
    not gzip at all), or None where it does (read once more, to the end: only when
    reading it failed)."""
    import gzip

    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        return gzip_error(path, exc)
    except OSError:  # not the compression's fault (the file cannot be opened)
        return None
    return None


_UTF8_FIX = (
    "save CSV files as UTF-8 text (iconv -f latin1 -t utf-8 FILE > NEW converts one from Latin-1)"
)


_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"PK\x03\x04", "a zip archive (or an Excel workbook)"),
    (b"PAR1", "a Parquet file"),
    (b"BZh", "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
)


_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32LE"),
    (b"\x00\x00\xfe\xff", "UTF-32BE"),
    (b"\xff\xfe", "UTF-16LE"),
    (b"\xfe\xff", "UTF-16BE"),
)


def _binary_kind(path: str) -> str | None:
    """What a file that is not text is, from its first bytes (None: it may be text); of
    a gzip-compressed file, what its content is."""
    import gzip

    try:
        with (gzip.open if is_gz(path) else open)(path, "rb") as f:
            head = f.read(4096)
    except (OSError, EOFError):
        return None
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    for bom, kind in _BOMS:  # UTF-32 first: its little-endian mark starts as UTF-16's
        if head.startswith(bom):
            return kind
    return "binary data" if b"\x00" in head else None


def _not_utf8(path: str, exc: UnicodeDecodeError | None) -> BadInputError:
    """The error for a CSV file that is not UTF-8 text, naming the first line that is
    not and its bytes (the file is read again, in blocks: only on this error)."""
    import gzip

    # a compressed or binary file under a .csv name (or compressed again inside a .gz
    # file): its bytes are no line to show (QA 2026-12-06)
    kind = _binary_kind(path)
    inside = "its gzip-compressed content is" if is_gz(path) else "the file is"
    if kind is not None and kind.startswith("UTF-"):  # Excel's "Unicode Text" (review)
        return BadInputError(
            f"{inside} {kind} text, not UTF-8",
            file=path,
            fix=f"save it as UTF-8 (iconv -f {kind.split()[0]} -t utf-8 FILE > NEW)",
        )
    if kind is not None and is_gz(path):
        return BadInputError(
            f"{inside} {kind}, not CSV text"
            + (" (compressed twice)" if kind.startswith("gzip") else ""),
            file=path,
            fix="give the file gzip-compressed once, as CSV text inside (gunzip -c FILE "
            "shows what incbt reads)",
        )
    if kind is not None:
        return BadInputError(
            f"{inside} {kind}, not CSV text",
            file=path,
            fix="name a gzip-compressed CSV file .csv.gz (incbt reads it as it is); "
            "give other files as CSV text or Parquet (.parquet)",
        )
    opener: Any = gzip.open if is_gz(path) else open
    line, carry, bad = 1, b"", None
    try:
        with opener(path, "rb") as f:
            while bad is None:
                block = f.read(1 << 20)
                data = carry + block
                if not data:
                    break
                try:
                    data.decode("utf-8")
                    carry = b""
                except UnicodeDecodeError as e:
                    if e.reason == "unexpected end of data" and block and e.end == len(data):
                        carry = data[e.start :]  # a character cut by the block's end
                        data = data[: e.start]
                    else:
                        bad = e.start
                        carry = b""
                if bad is None:
                    line += data.count(b"\n")
    except (OSError, EOFError):
        bad = None
    if bad is None:  # not found again (a file that changed): what the reader said
        why = "" if exc is None else f" ({exc.reason}, byte {exc.object[exc.start : exc.end]!r})"
        return BadInputError(
            f"the file is not UTF-8 text{why}",
            file=path,
            fix=_UTF8_FIX,
        )
    line += data.count(b"\n", 0, bad)
    start = data.rfind(b"\n", 0, bad) + 1
    end = data.find(b"\n", bad)
    text = data[start : end if end >= 0 else len(data)].rstrip(b"\r")
    return BadInputError(
        f"not UTF-8 text: byte {data[bad : bad + 1]!r} at column {bad - start + 1}",
        file=path,
        line=line,
        value=text[:200].decode("utf-8", "replace"),
        fix=_UTF8_FIX,
    )


def column_numpy(col: pa.ChunkedArray) -> np.ndarray:
    """A column without nulls as one NumPy array: a view of a single chunk;
    ``combine_chunks`` would copy even that one, into fresh memory (~0.17 s per 4 M
    floats here)."""
    if col.num_chunks == 1:
        return col.chunk(0).to_numpy()
    return col.combine_chunks().to_numpy()


def order_error(
    path: str,
    where: dict[str, int],
    prev_where: dict[str, int],
    instrument: str,
    ts: int,
    prev_ts: int,
    tz: str | None = None,
) -> BadInputError:
    """A bar whose ts is not after the previous bar of its instrument (at ``prev_where``);
    ``tz``: the zone the file's naive times were read in (its time said as written too)."""
    unit = "line" if "line" in prev_where else "row"
    dup = ts == prev_ts
    fix = (
        "remove the duplicate bar"
        if dup
        else "sort each instrument's bars by ts and remove duplicates"
    )
    apart = _NAMES_APART.get()
    if apart is not None:  # --instrument named every bar of a file with such a column
        fix = (
            f"if the file's column {apart!r} names several instruments, --instrument made them "
            f"one: name the bars by it with --map instrument={apart} instead; else {fix}"
        )
    hour = ""
    passes = None if tz is None else repeated_hour(prev_ts, tz) or repeated_hour(ts, tz)
    if tz is not None and passes is not None:
        # (QA 2026-12-07: a time going back in the first pass of the hour was taken as
        # the second pass, and the message blamed the clock change's own line after it)
        hour = (
            f", at {stamp(prev_ts, tz)}; in the hour the clocks of {tz} repeat, naive "
            "times are placed by the rows' order: the first pass, then the second from "
            "the first time that goes back, so a time going back within the first pass "
            "is taken for the second"
        )
        fix += (
            f"; in that hour, write the times with their UTC offset ({passes[0]} in the "
            f"first pass, {passes[1]} in the second)"
        )
    return BadInputError(
        ("duplicate ts" if dup else "ts is not increasing")
        + f" (previous bar of this instrument at {unit} {prev_where[unit]}{hour})",
        file=path,
        **where,
        instrument=instrument,
        value=stamp(ts, tz),
        fix=fix,
    )


def _invisible(ch: str) -> bool:
    """A character that shows as nothing, or breaks a line: control, format (zero-width
    space, byte order mark, joiners), surrogate, line and paragraph separators."""
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def shown_name(name: str, keep: int = 40) -> str:
    """An instrument name as a message shows it: a long one cut, saying how long."""
    if len(name) <= keep + 20:
        return name
    return f"{name[:keep]}... ({len(name):,} characters)"


def _at(kind: str, i: int) -> dict[str, Any]:
    """Where row ``i`` (0-based, in file order) is, as an error names it."""
    rows = _FILE_ROWS.get()
    if rows is not None and kind == "csv":  # a row of the table the file's rows made
        i = int(rows[i])
    return {"line": int(i) + 1 + _head()} if kind == "csv" else {"row": int(i) + 1}


def _at_named(kind: str, i: int, instruments: Any) -> dict[str, Any]:
    """:func:`_at`, with the row's instrument where the rows' names are given."""
    out = _at(kind, i)
    if instruments is not None:
        out["instrument"] = str(instruments[i].as_py())
    return out


def validate(
    path: str, kind: str, table: pa.Table, block: np.ndarray | None = None, tz: str | None = None
) -> InputBars:
    """Check every rule of SEMANTICS.md "Bars"; sort by (instrument, ts).

    ``block``: the bars block (:func:`bars_block`) the table's ts and float columns are
    views of, where the reader parsed into one (the fast CSV reader); else they are
    copied into one. ``tz``: the zone naive times were read in (``--tz``), for messages."""

    at = functools.partial(_at, kind)

    for c in COLUMNS:
        col = table.column(c)
        if col.null_count:
            i = int(np.flatnonzero(pc.is_null(col).to_numpy(zero_copy_only=False))[0])
            raise BadInputError(
                f"column {c} is empty", file=path, **at(i), fix=f"give every bar its {c}"
            )
    inst_col = table.column("instrument")
    if pa.types.is_dictionary(inst_col.type):
        inst_col = inst_col.unify_dictionaries()
        dictionary = (
            inst_col.chunk(0).dictionary if inst_col.num_chunks else pa.array([], pa.string())
        )
        codes = np.concatenate([c.indices.to_numpy() for c in inst_col.chunks]).astype(
            np.int32, copy=False
        )
    else:
        enc = inst_col.combine_chunks().dictionary_encode()
        dictionary, codes = enc.dictionary, enc.indices.to_numpy().astype(np.int32, copy=False)
    codes, names = _nfc_codes([str(x) for x in dictionary.to_pylist()], codes)
    for j, name in enumerate(names):
        if not valid_name(name):
            i = int(np.flatnonzero(codes == j)[0])
            raise BadInputError(
                "invalid instrument name",
                file=path,
                **at(i),
                value=shown_name(name),  # shown as repr shows it: '\ufeffX', not 'X'
                fix=f"use 1 to {MAX_INSTRUMENT_LEN} characters, no leading/trailing spaces, "
                "no control or invisible characters (newline, tab, NUL, a zero-width space, "
                "a byte order mark)",
            )
        if len(name) * 12 > MAX_DIR_BYTES and instrument_dir_bytes(name) > MAX_DIR_BYTES:
            # its bars folder (bars/<name percent-encoded>/) could not be made
            i = int(np.flatnonzero(codes == j)[0])
            raise BadInputError(
                f"instrument name too long for the store: percent-encoded as its folder "
                f"name it takes {instrument_dir_bytes(name):,} bytes, more than the "
                f"{MAX_DIR_BYTES} a file name may have",
                file=path,
                **at(i),
                value=shown_name(name),
                fix=f"use a shorter name: letters, digits and {DIR_SAFE} take 1 byte "
                "each, any other character 3 bytes for each byte of its UTF-8 (an 'é' 6)",
            )
    # copies of other readers' columns (not views, as :func:`column_numpy` gives): a
    # block's fields are rows of one array, so a bucket file gathers a day with one slice
    if block is None:
        block = table_block(table)
    arr = block_columns(block)
    _check_epoch_unit(path, kind, names, codes, arr["ts"])
    # One Numba pass where the CSV kernel is loaded (a big ingest); the NumPy checks
    # where it is not, or where a rule is broken: they find the first bad row and word it.
    if fastcsv.bars_hold(codes, *(arr[f] for f in BLOCK_ROWS)):
        order = np.arange(len(codes))  # grouped by instrument already
        sc = codes
    else:
        order, sc = _check_values_and_order(path, kind, names, codes, arr, tz)
    if sc is not codes:
        block = np.take(block, order, axis=1)  # C order: each field a contiguous row
    file_rows = _FILE_ROWS.get() if kind == "csv" else None
    if file_rows is not None:  # each bar's row of the file, not of the table
        order = file_rows[order]
    return InputBars(
        source=path,
        kind=kind,
        names=names,
        codes=np.ascontiguousarray(sc),
        block=block,
        rows=order.astype(np.int64),
    )


# Bars before this (1973-03-03 as nanoseconds since 1970) are refused: 1-minute bars
# that early are almost surely integer timestamps in seconds, milliseconds or
# microseconds read as nanoseconds (1,704,724,200 seconds is 1970-01-01 00:00:01.7).
TS_FLOOR = 10**17


def _check_epoch_unit(
    path: str, kind: str, names: list[str], codes: np.ndarray, ts: np.ndarray
) -> None:
    if not len(ts):
        return
    i = int(np.argmin(ts))
    if ts[i] >= TS_FLOOR:
        return
    v = int(ts[i])
    guess = _as_other_unit(v, "ns")
    if not guess:  # no unit makes it a date: an early date (text, say), not a unit (QA
        # 2026-12-05: 1960-01-02T14:30:00Z as text was told about integer timestamps)
        raise BadInputError(
            f"timestamp {np.datetime64(v, 'ns')} is before 1973: incbt takes minute bars "
            "from 1973-03-03 on",
            file=path,
            **_at(kind, i),
            instrument=names[codes[i]],
            value=str(np.datetime64(v, "ns")),
            fix="check the ts column's dates (integer ts are nanoseconds since 1970)",
        )
    raise BadInputError(
        f"timestamp {np.datetime64(v, 'ns')} is before 1973: integer ts are nanoseconds "
        f"since 1970{guess}",
        file=path,
        **_at(kind, i),
        instrument=names[codes[i]],
        value=v,
        fix="name the unit of integer ts with --ts-unit s|ms|us (Python: ts_unit=), give "
        "them in nanoseconds, or as ISO-8601 text with its offset",
    )


def _check_values_and_order(
    path: str,
    kind: str,
    names: list[str],
    codes: np.ndarray,
    arr: dict[str, np.ndarray],
    tz: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`validate`'s value and order rules in NumPy, raising for the first bad row in file
    order; returns the order grouping rows by instrument (stable) and the codes in that
    order."""

    at = functools.partial(_at, kind)
    # each table row's place in the file: a yfinance file's table is grouped by ticker
    # (_FILE_ROWS), so its first bad row is not the table's first
    file_rows = _FILE_ROWS.get() if kind == "csv" else None
    place = (lambda rows: rows) if file_rows is None else (lambda rows: file_rows[rows])
    found: list[tuple[int, BadInputError]] = []  # each rule's first bad row, by place

    def inst(i: int) -> str:
        return names[codes[i]]

    def reject_first(
        bad: np.ndarray, problem: str | Callable[[int], str], values: np.ndarray, fix: str
    ) -> None:
        """Note the first row (in file order) where ``bad`` holds; the first of every
        rule's is raised (QA 2026-12-07: the rules' order decided which bad row a message
        named, so a file read in parts named another than read whole)."""
        rows = np.flatnonzero(bad)
        if len(rows):
            i = int(rows[np.argmin(place(rows))])
            what = problem(i) if callable(problem) else problem
            found.append(
                (
                    int(place(np.array([i]))[0]),
                    BadInputError(
                        what,
                        file=path,
                        **at(i),
                        instrument=inst(i),
                        value=float(values[i]),
                        fix=fix,
                    ),
                )
            )

    for name in PRICE_COLUMNS:
        x = arr[name]

        def what(i: int, name: str = name, x: np.ndarray = x) -> str:
            return f"{name} is " + ("not positive" if np.isfinite(x[i]) else "not a finite number")

        reject_first(
            ~(np.isfinite(x) & (x > 0)),
            what,
            x,
            "prices must be finite and > 0; drop or repair the bar",
        )
    v = arr["volume"]
    reject_first(
        ~(np.isfinite(v) & (v >= 0)),
        "volume is negative or not finite",
        v,
        "volume must be finite and >= 0",
    )
    o, h, lo, c = arr["open"], arr["high"], arr["low"], arr["close"]
    reject_first(
        h < np.maximum(o, c),
        "high is below max(open, close)",
        h,
        "repair the bar: high >= open, close >= low",
    )
    reject_first(
        lo > np.minimum(o, c),
        "low is above min(open, close)",
        lo,
        "repair the bar: high >= open, close >= low",
    )
    # Sort by instrument, keeping file order; ts must then increase strictly.
    if len(codes) < 2 or bool(np.all(codes[1:] >= codes[:-1])):
        order = np.arange(len(codes))  # already grouped (the common case): no copies
        sc, sts = codes, arr["ts"]
    else:
        order = np.argsort(codes, kind="stable")
        sc, sts = codes[order], arr["ts"][order]
    same = sc[1:] == sc[:-1]
    step = np.diff(sts)
    bad = same & (step <= 0)
    if bad.any():
        # report the offending row that comes first in the file
        cand = np.flatnonzero(bad) + 1
        k = int(cand[np.argmin(place(order[cand]))])
        i, prev = int(order[k]), int(order[k - 1])
        found.append(
            (
                int(place(np.array([i]))[0]),
                order_error(path, at(i), at(prev), inst(i), int(sts[k]), int(sts[k - 1]), tz),
            )
        )
    if found:
        raise min(found, key=lambda f: f[0])[1]
    return order, sc


def check_tz(tz: str) -> None:
    """Raise UsageError unless ``tz`` is a known IANA time zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        m = re.fullmatch(r"(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?", tz.strip())
        hint = ""
        if m and int(m.group(2)) <= 14:  # an offset: the fixed zone of that offset (QA
            # 2026-12-06: -05:00 refused, the Etc/GMT sign being the confusing part)
            sign, hours, minutes = m.group(1), int(m.group(2)), int(m.group(3) or 0)
            shown = f"{sign}{hours:02d}:{minutes:02d}"
            hint = (
                f" (the fixed offset {shown} is Etc/GMT{'-' if sign == '+' else '+'}{hours}: "
                "POSIX's sign, the other way round; a place whose clocks change, like New "
                "York, is its own name)"
                if not minutes and hours
                else " (UTC)"
                if not minutes
                else f" (the offset {shown} has no fixed zone of its own: name the place's "
                "zone, like Asia/Kolkata for +05:30)"
            )
        else:  # a known name written in other case or with spaces (QA 2026-12-07)
            import zoneinfo

            key = tz.strip().replace(" ", "_").lower()
            near = [z for z in zoneinfo.available_timezones() if z.lower() == key]
            if near:
                hint = f" (names are case-sensitive: {near[0]})"
        raise UsageError(
            f"--tz (tz=) {tz!r} is not a known time zone; use an IANA name like America/New_York"
            + hint
        ) from None


def trading_days(ts: np.ndarray, tz: str) -> np.ndarray:
    """Trading day (days since epoch) of each ts: its calendar date in ``tz``."""
    if tz == "UTC":
        return (ts // NS_PER_DAY).astype(np.int32)
    local = pc.local_timestamp(pa.array(ts, type=pa.timestamp("ns", tz=tz)))
    return (pc.cast(local, pa.int64()).to_numpy() // NS_PER_DAY).astype(np.int32)
