"""Ingest: validated input files -> new bars files + one catalog event.

The whole call is one atomic batch:

1. read and validate every input (nothing is touched if any is bad);
2. split them into (instrument, day) pieces with a content hash each;
3. under the store's write lock, diff the pieces against the ``days`` index:
   new, corrected (the new day replaces the old one whole) or unchanged;
4. record the paths about to be written (``pending``), write one new immutable
   file per changed (instrument, month) bucket and rename it into ``bars/``;
   then make them all durable at once (one ``syncfs``, see
   :func:`incbt.bars.layout.sync_files`) and fsync their folders;
5. one LMDB transaction appends the event, its per-day changes, the new index
   entries and file records, each bucket's new file list, and clears ``pending``
   (it is filled while step 4's sync runs, and commits after the sync returned).

A crash before step 5 leaves the catalog as it was; the files it wrote are
listed in ``pending`` and removed by the next writer (:func:`recover`). A
call that changes nothing writes nothing and records no event.

**A month is a list of files** (catalog ``buckets``: oldest first, days
disjoint). Rewriting a month's file for each new day (the layout before) made
the daily update cost a read and a rewrite of ~20 days per instrument, and
time travel kept every one of those copies (~11x the month's bytes on disk
after a month of daily updates). Now the file an ingest writes for a bucket is:

- the pieces, merged with the files holding a corrected day and with any file
  this same call wrote (earlier chunks): a day new to a month that has files
  is written alone, as a small *append file*, and the other files stay;
- then **size tiers**: while the newest remaining file holds no more days
  than the new file, it joins it (a binary counter: daily appends to a month
  give files of 8, 4, 2, 1 days, O(log days) files, each day rewritten
  O(log days) times, and most days only the new day is written);
- a **fold** when the bucket would still have more than ``max_files`` files
  (setting ``bucket_max_files``, 8; late or corrected days in odd orders):
  every file of the month is merged into one.

Why tiers rather than "fold at N files" alone: measured with 500 instruments
over a month of daily ingests (22 days), folding all files at 8 made the fold
days cost 2.5-3.7 s, and left up to 8 files to open for a read of the last
days (0.3-0.4 s for 6 days of 500 instruments); tiers keep at most 4 files
in such a month, reads at 0.08-0.27 s, and the dearest day (16 days merged)
at ~1.2 s; the month's ingests took 13.8 s in all against 17.1 s rewriting
the month whole (with the same faster reads and syncfs) and 348 MiB of
bars on disk against 1,265 MiB. Files are content-addressed by instrument and
days, so an append file of day D and a month file holding only D are the same
file. Superseded files stay on disk for ``--as-of``; each file's record keeps
the intervals of events it was current in.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime
import errno
import functools
import gc
import hashlib
import itertools
import os
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from incbt.bars import fastcsv
from incbt.bars.inputs import (
    BLOCK_ROWS,
    NAME_COLUMNS,
    AmbiguousTime,
    InputBars,
    bars_block,
    block_columns,
    expand_paths,
    instrument_for,
    is_stacked,
    read_input,
    table_block,
    trading_days,
)
from incbt.bars.layout import (
    RECENT,
    bucket_path,
    build_table,
    fsync_dir,
    row_groups,
    sync_files,
    write_file,
)
from incbt.bars.parts import (
    GzParts,
    ParquetRowParts,
    Part,
    Stitcher,
    big_row_groups,
    first_error,
    read_part,
    whole_csv,
)
from incbt.bars.parts import split as parts_of
from incbt.bars.schema import (
    day_to_iso,
    is_csv,
    is_gz,
    is_parquet,
    is_text,
    iso_to_day,
    month_of,
    stamp,
)
from incbt.catalog import (
    ANY_FIELD,
    CHANGE_CORRECTED,
    CHANGE_NEW,
    CHANGE_REMOVED,
    FIELD_BITS,
    REMOVED_INSTRUMENTS,
    ZERO_HASH,
    Catalog,
    DayEntry,
    FileRecord,
)
from incbt.errors import (
    BadInputError,
    CatalogError,
    IncbtError,
    NotFoundError,
    StoreError,
    UsageError,
)
from incbt.progress import NULL, Reporter
from incbt.settings import usable_cores

_P = ParamSpec("_P")
_R = TypeVar("_R")


@dataclass
class Piece:
    """One (instrument, day) of input: rows [start, end) of ``src``."""

    instrument: str
    day: int
    src: Any  # InputBars or a dict of arrays read from an existing file
    start: int
    end: int
    hash: bytes
    off_minute: int = 0  # a ts of its first, second or last bar not on a minute (0: none)

    @property
    def rows(self) -> int:
        return self.end - self.start


def _column_named(name: str) -> str:
    """A column as a note names it: an unnamed one said as one (a pandas index, Excel's
    empty columns after the last named one), not as ''."""
    return repr(name) if name.strip() else "unnamed (a pandas index, or an empty column)"


@dataclass
class IngestSummary:
    """What an ingest changed (or would change, for a dry run)."""

    files: int = 0
    rows_read: int = 0
    # rows read that repeat a bar given in another file (or another piece) of this
    # call, identical in every field: one bar, stored once (a bar given twice in one
    # file, or differing, is refused). Said, not dropped silently (SEMANTICS.md)
    rows_repeated: int = 0
    days_new: int = 0
    days_corrected: int = 0
    days_unchanged: int = 0
    # days written again though their bars equal the store's (``rewrite``: a bars file
    # damaged outside incbt repaired from the original data); results recompute from them
    days_rewritten: int = 0
    instruments: int = 0  # instruments with a new or corrected day
    new_instruments: list[str] = field(default_factory=list)  # of which the store had none
    buckets_written: int = 0  # files written: one per (instrument, month) changed
    append_files: int = 0  # of which hold only days new to a month that had files
    buckets_folded: int = 0  # of which replace all of a month's files (too many)
    first_day: str | None = None
    last_day: str | None = None
    corrected: list[tuple[str, str]] = field(default_factory=list)  # (instrument, day)
    seq: int | None = None  # the event recorded, None when nothing changed
    dry_run: bool = False
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per phase
    # every changed day: (instrument, day, kind, rows); what a dry run would change
    changed_days: list[tuple[str, int, int, int]] = field(default_factory=list)
    # data quality, accepted but said (:func:`data_notes`): changed days with fewer than
    # half the bars their instrument's days usually hold, as (instrument, day, rows,
    # usual); days an instrument lacks inside the span of days this ingest gave it
    # that most other instruments have, as (instrument, day, how many have it)
    short_days: list[tuple[str, str, int, int]] = field(default_factory=list)
    # changed days with a bar not on a minute: (instrument, day, the bar's time)
    off_minute: list[tuple[str, str, str]] = field(default_factory=list)
    missing_days: list[tuple[str, str, int]] = field(default_factory=list)
    # stored days given new bars. With ``join_days``, merged into them: (instrument, day,
    # stored bars, new bars, stored bars kept); without it, replaced whole, as any
    # correction, which a note says where that left stored bars out: (instrument, day,
    # stored bars, new bars)
    joined_days: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    replaced_apart: list[tuple[str, str, int, int]] = field(default_factory=list)
    # files in the folders given that are not CSV or Parquet (not read)
    skipped_files: list[str] = field(default_factory=list)
    # columns of the files that are none of the bars columns (not read: vwap, trades...)
    ignored_columns: list[str] = field(default_factory=list)
    # the tickers of yfinance files without a bar in them, (file, ticker): nothing stored
    no_bars: list[tuple[str, str]] = field(default_factory=list)
    # how the files were read, where not the default (--map, --tz, --ts-unit): recorded in
    # the event, so the reading that decided the data is known later
    reading: dict[str, Any] = field(default_factory=dict)
    # each instrument's days in this ingest's input, and those the store has in their
    # span: what :func:`data_notes` reads (not a result)
    _seen: dict[str, set[int]] = field(default_factory=dict, repr=False)
    _span: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    # the bars of some of each instrument's days in the store before this ingest (its
    # latest, up to USUAL_SAMPLE), by day: what a day of it usually holds (not a result)
    _stored_rows: dict[str, dict[int, int]] = field(default_factory=dict, repr=False)
    _stored_last: dict[str, int | None] = field(default_factory=dict, repr=False)
    # the earliest of the instruments' last stored days before their first day here: a
    # day one lacks after it is said too (a day a daily update left out, said once the
    # next day arrives: QA 2026-12-06, only a bulk ingest said it)
    _gap_from: int | None = field(default=None, repr=False)
    # the bar fields each correction changed, where it changed some only: (instrument,
    # day) -> FIELD_BITS (recorded with the event: the planner recomputes only the runs
    # whose strategy reads one of them)
    _fields: dict[tuple[str, int], int] = field(default_factory=dict, repr=False)

    def hypothetical(self) -> list[tuple[str, int, int, int, int]]:
        """Each changed day as a dry run's plan takes it: (instrument, day, kind, rows,
        the bar fields it changed)."""
        return [
            (i, d, k, r, self._fields.get((i, d), ANY_FIELD)) for i, d, k, r in self.changed_days
        ]

    @property
    def changed(self) -> bool:
        return bool(self.days_new or self.days_corrected or self.days_rewritten)

    def __repr__(self) -> str:  # a line, not every changed day (the fields hold them)
        span = f", {self.first_day} to {self.last_day}" if self.first_day else ""
        event = f"event {self.seq}" if self.seq is not None else "no event"
        return (
            f"<IngestSummary{' (dry run)' if self.dry_run else ''}: {self.files:,} file(s), "
            f"{self.rows_read:,} rows read"
            + (f" ({self.rows_repeated:,} repeated)" if self.rows_repeated else "")
            + f"; {self.days_new:,} new day(s), "
            f"{self.days_corrected:,} corrected"
            + (f", {self.days_rewritten:,} rewritten" if self.days_rewritten else "")
            + (f" in {self.instruments:,} instrument(s)" if self.instruments else "")
            + f", {self.days_unchanged:,} unchanged{span}; {event}>"
        )

    def notes(self, shown: int = 3) -> list[str]:
        """What the data-quality fields say, as lines for people (none: nothing odd)."""

        def some(items: list[Any], fmt: str) -> str:  # the first few, and how many more
            more = f", ... (+{len(items) - shown:,})" if len(items) > shown else ""
            return ", ".join(fmt.format(*x) for x in items[:shown]) + more

        counted = "; `incbt query coverage` counts them per instrument"
        out = []
        if self.short_days:
            out.append(
                f"{len(self.short_days):,} short day(s), with fewer than half the bars "
                "their instrument's days usually hold: "
                + some(self.short_days, "{} {}: {} bars (usually {})")
                + counted
            )
        if self.off_minute:
            out.append(
                f"{len(self.off_minute):,} day(s) with bars not stamped on a minute (incbt "
                "takes 1-minute bars, each stamped with the minute it opens): "
                + some(self.off_minute, "{} {}: {}")
            )
        if self.replaced_apart:
            out.append(
                f"{len(self.replaced_apart):,} day(s) replaced whole, as a correction, by new "
                "bars that leave some of their stored bars out, which are gone: "
                + some(self.replaced_apart, "{0} {1} ({2} stored bars, {3} new)")
                + "; if the new bars only add to those days (bars sent as they come, or "
                "a session zone that cuts the files' days in two), ingest the days' "
                "files again with --join-days (Python: join_days=True), which merges "
                "new bars into a stored day"
            )
        if self.ignored_columns:
            out.append(
                # an unnamed column said as one, not as '' (QA 2026-12-07: a pandas index,
                # Excel's empty columns after the last named one)
                f"column(s) {', '.join(_column_named(c) for c in self.ignored_columns[:8])}"
                + (", ..." if len(self.ignored_columns) > 8 else "")
                + " of the files were not read: none of the bars columns, or one --map "
                "replaced (a bars column under another name: --map NAME=COLUMN)"
                + (
                    " or --instrument replaced (it names every bar)"
                    if "instrument" in [c.lower() for c in self.ignored_columns]
                    and self.reading.get("instrument")
                    else ""
                )
                + next(
                    (
                        f"; --instrument names every bar of the files: if column {c!r} "
                        "names several instruments, they are one instrument in the store: "
                        f"--map instrument={c} names each bar by it instead"
                        for c in self.ignored_columns
                        if c.strip().lower() in NAME_COLUMNS and self.reading.get("instrument")
                    ),
                    "",
                )
            )
        if self.no_bars:  # (QA 2026-12-07: a failed download's ticker went unsaid)
            files: dict[str, list[str]] = {}
            for f, t in self.no_bars:
                files.setdefault(t, []).append(os.path.basename(f))
            out.append(
                f"{len(files):,} ticker(s) have no bar in their yfinance file(s) (every "
                "field of theirs empty: yfinance's download of the ticker failed, or it "
                "has no data in the dates asked), so none of their bars come from those "
                "files: "
                + some([(t, ", ".join(fs)) for t, fs in files.items()], "{} ({})")
                + "; download them again (yf.download's messages say why it failed) and "
                "ingest that file"
            )
        if self.skipped_files:
            out.append(
                f"{len(self.skipped_files):,} file(s) in the folders given are not CSV or "
                "Parquet and were not read: "
                + some([(f,) for f in self.skipped_files], "{}")
                + " (give CSV files a .csv or .csv.gz name to ingest them; .txt files of "
                "bars without a header line are read with --header NAMES)"
            )
        if self.missing_days:
            out.append(
                f"{len(self.missing_days):,} missing day(s), days an instrument has no "
                "bars for between days it has, that most others have (a weekend too, "
                "where they trade it): "
                + some(self.missing_days, "{} {} ({} other instrument(s) have it)")
                + counted
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        skip = {
            *("corrected", "seconds", "changed_days"),
            *("_seen", "_span", "_stored_rows", "_stored_last", "_gap_from", "_fields"),
            *(
                "short_days",
                "missing_days",
                "off_minute",
                "joined_days",
                "replaced_apart",
                "skipped_files",
                "ignored_columns",
                "no_bars",
            ),
        }
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in skip} | {
            "corrected": [list(c) for c in self.corrected[:100]],
            # the first 100 of each, and how many (an event's summary stays small)
            "short_days": [list(c) for c in self.short_days[:100]],
            "n_short_days": len(self.short_days),
            "missing_days": [list(c) for c in self.missing_days[:100]],
            "n_missing_days": len(self.missing_days),
            "joined_days": [list(c) for c in self.joined_days[:100]],
            "n_joined_days": len(self.joined_days),
            "n_replaced_apart": len(self.replaced_apart),
        }


# How a day's content hash is computed: catalog meta "day_hash", fixed when the store is
# made. XXH3-128 since 2026-12-03: BLAKE2b took ~0.23 CPU-s per 4 M bars, the largest
# single cost of an ingest (XXH3 ~0.03 s; ingest wall time -16% here). A store made
# before has no "day_hash" and keeps BLAKE2b: its days' stored hashes must match.
DAY_HASH = "xxh3-128"
LEGACY_DAY_HASH = "blake2b-128"
Hasher = Callable[[], Any]  # a new hash object (update, digest)


def _blake2b() -> Any:
    return hashlib.blake2b(digest_size=16)


DAY_HASHERS: dict[str, Hasher] = {"xxh3-128": xxhash.xxh3_128, "blake2b-128": _blake2b}


def store_hasher(cat: Catalog) -> Hasher:
    """The day hash this store's catalog records its days with."""
    with cat.env.read() as txn:
        name = cat.meta(txn).get("day_hash", LEGACY_DAY_HASH)
    if name not in DAY_HASHERS:
        raise CatalogError(
            f"the store hashes days with {name!r}, which this incbt does not know. "
            "Fix: use the incbt version that made the store"
        )
    return DAY_HASHERS[name]


def day_hash(src: Any, start: int, end: int, new: Hasher) -> bytes:
    """Content hash of one day's bars: ts and OHLCV, bit for bit."""
    h = new()
    for c in BLOCK_ROWS:
        h.update(getattr(src, c)[start:end] if isinstance(src, InputBars) else src[c][start:end])
    digest: bytes = h.digest()
    return digest


def split_days(inp: InputBars, session_tz: str, new: Hasher) -> list[Piece]:
    # a volume of -0.0 (validated as >= 0) is stored as 0.0: the same bar as one of 0
    # (QA 2026-12-06: two files, 0 and -0.0, were refused as different bars); x + 0.0 is x
    # for every other volume, bit for bit
    np.add(inp.volume, 0.0, out=inp.volume)
    days = trading_days(inp.ts, session_tz)
    brk = np.flatnonzero((inp.codes[1:] != inp.codes[:-1]) | (days[1:] != days[:-1])) + 1
    first = np.concatenate(([0], brk))
    starts = first.tolist()
    ends = np.concatenate((brk, [len(inp)])).tolist()
    names = [inp.names[c] for c in inp.codes[first].tolist()]
    # bars stamped off the minute (1-second bars, shifted stamps): a day's first, second
    # and last bars looked at, not every bar (a pass over ts costs ~20-40 ms per 4M
    # rows): said as a note (found 2026-12-05: 15:30:17 was taken without a word)
    last = np.asarray(ends, dtype=np.int64) - 1
    look = np.stack([first, np.minimum(first + 1, last), last])
    stamps = inp.ts[look]
    off = np.where(stamps % MINUTE_NS != 0, stamps, 0).max(axis=0).tolist()
    return [
        Piece(name, d, inp, s, e, day_hash(inp, s, e, new), o)
        for name, d, s, e, o in zip(names, days[first].tolist(), starts, ends, off, strict=True)
    ]


MINUTE_NS = 60_000_000_000


@dataclass
class _Seen:
    """What earlier files of the same call held for one (instrument, day)."""

    hash: bytes  # of the day as it stands (its pieces joined)
    source: str  # the first file that held it
    where: dict[str, int]
    parts: set[bytes] = field(default_factory=set)  # the hash of each piece given


def collect(
    per_file: Sequence[list[Piece]],
    seen: dict[tuple[str, int], _Seen],
    held: Mapping[tuple[str, int], Piece],
    hasher: Hasher,
    repeated: list[int] | None = None,
    named: str | None = None,
) -> dict[tuple[str, int], Piece]:
    """The pieces not seen earlier in this call, where a day given in pieces by several
    files is joined: the union of their bars, in time order, where bars at the same
    time must be identical (inclusive file boundaries; a session zone that cuts the
    files' days in two: bars round the clock in UTC-day files, with
    ``session_tz=America/New_York``). A piece given twice, identical, counts once.
    ``held``: the earlier chunks' pieces still in memory (:func:`_open_buckets`).
    ``repeated``: its one item counts the bars given again, identical (kept once).
    ``named``: the ``--instrument`` that named the files' bars (said where two files
    disagree on a day: it named them alike)."""
    out: dict[tuple[str, int], Piece] = {}
    again = [0] if repeated is None else repeated
    for pieces in per_file:
        for p in pieces:
            key = (p.instrument, p.day)
            prev = seen.get(key)
            if prev is None:
                seen[key] = _Seen(p.hash, p.src.source, p.src.where(p.start), {p.hash})
                out[key] = p
                continue
            if p.hash == prev.hash or p.hash in prev.parts:
                again[0] += p.end - p.start
                continue
            earlier = out.get(key, held.get(key))
            if earlier is None:  # written already: an earlier chunk, not its latest month
                raise BadInputError(
                    f"day {day_to_iso(p.day)} is also in {prev.source} "
                    f"({_at_text(prev.where)}), whose bars are no longer in memory (an "
                    "ingest reads its files a chunk at a time, ingest_chunk_mb, and joins "
                    "the pieces of a day while they are): they cannot be compared here",
                    file=p.src.source,
                    instrument=p.instrument,
                    **p.src.where(p.start),
                    fix=_named_alike(named, p.instrument)
                    or "if the two are pieces of the day, give the files in time order "
                    "(names that sort by date) or fewer at once; if they are two versions "
                    "of the day, give one of them",
                )
            out[key] = _join(earlier, p, hasher, again, named)
            prev.hash = out[key].hash
            prev.parts.add(p.hash)
    return out


def _own(p: Piece) -> Piece:
    """``p`` in arrays of its own: a piece that waits for later chunks must not keep
    its whole file in memory."""
    src = p.src
    block, rows = src.block[:, p.start : p.end].copy(), src.rows[p.start : p.end].copy()
    codes = np.zeros(p.rows, np.int32)
    if isinstance(src, JoinedBars):
        own: InputBars = JoinedBars(
            src.source, src.kind, [p.instrument], codes, block, rows,
            files=src.files, file_of=src.file_of[p.start : p.end].copy(),
        )  # fmt: skip
    else:
        own = InputBars(src.source, src.kind, [p.instrument], codes, block, rows)
    return Piece(p.instrument, p.day, own, 0, p.rows, p.hash, p.off_minute)


@dataclass
class JoinedBars(InputBars):
    """One day joined from the pieces of several files: each bar remembers its file
    (``files[file_of[i]]``: source and kind), so that a message names its line."""

    files: list[tuple[str, str]] = field(default_factory=list)
    file_of: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    def where(self, sorted_row: int) -> dict[str, Any]:
        r = int(self.rows[sorted_row])
        kind = self.files[int(self.file_of[sorted_row])][1]
        return {"line": r + 2} if kind == "csv" else {"row": r + 1}

    def source_of(self, sorted_row: int) -> str:
        return self.files[int(self.file_of[sorted_row])][0]


def _files_of(p: Piece) -> tuple[list[tuple[str, str]], np.ndarray]:
    """The files of a piece's bars, and each bar's file among them."""
    src = p.src
    if isinstance(src, JoinedBars):
        return src.files, src.file_of[p.start : p.end]
    return [(src.source, src.kind)], np.zeros(p.rows, np.int32)


def _source_of(src: InputBars, i: int) -> str:
    return src.source_of(i) if isinstance(src, JoinedBars) else src.source


def _at_text(where: dict[str, int]) -> str:
    """A row's place as a message names it: "line 7" (CSV) or "row 6" (Parquet)."""
    kind, n = next(iter(where.items()))
    return f"{kind} {n}"


def _named_alike(spec: str | None, instrument: str) -> str | None:
    """The fix where two files disagree on a day of ``instrument`` and ``--instrument``
    (``spec``) named both files' bars alike (QA 2026-12-06: "take the wrong one out of
    its file"); None without it."""
    if spec is None:
        return None
    return (
        f"--instrument {spec} names the bars of both files {instrument!r}: give each "
        "file's bars their own name ('{stem}': the file's name, '{folder}': its "
        "folder's), or ingest the files apart"
    )


def _join(
    a: Piece, b: Piece, hasher: Hasher, repeated: list[int], named: str | None = None
) -> Piece:
    """One day from the bars of two pieces of it: their union, in time order; a bar at
    the same time in both must be the same bar (else BadInputError naming both
    lines), counted in ``repeated[0]``."""
    ta, tb = a.src.ts[a.start : a.end], b.src.ts[b.start : b.end]
    _, ia, ib = np.intersect1d(ta, tb, assume_unique=True, return_indices=True)
    if len(ia):
        x = a.src.block[:, a.start + ia].view(np.uint64)  # bit for bit (NaN-free anyway)
        y = b.src.block[:, b.start + ib].view(np.uint64)
        differ = np.flatnonzero((x != y).any(axis=0))
        if len(differ):
            i, j = a.start + int(ia[differ[0]]), b.start + int(ib[differ[0]])
            raise BadInputError(
                f"day {day_to_iso(a.day)} is also in {_source_of(a.src, i)} with a different "
                f"bar at {stamp(int(tb[ib[differ[0]]]), getattr(b.src, 'tz', None))} "
                f"({_at_text(a.src.where(i))})",
                file=_source_of(b.src, j),
                instrument=a.instrument,
                **b.src.where(j),
                fix=_named_alike(named, a.instrument)
                or "the two files disagree on that bar: take the wrong one out of its "
                "file (or leave a file out); a correction goes in an ingest of its own: "
                "the whole corrected day, or with --join-days only the bars that change",
            )
    keep_b = np.ones(len(tb), bool)
    keep_b[ib] = False  # the same bars as a's: once
    repeated[0] += len(ib)
    fa, ka = _files_of(a)
    fb, kb = _files_of(b)
    files = list(fa)
    remap = []
    for f in fb:
        if f not in files:
            files.append(f)
        remap.append(files.index(f))
    ts = np.concatenate([ta, tb[keep_b]])
    order = np.argsort(ts, kind="stable")
    block = np.concatenate(
        [a.src.block[:, a.start : a.end], b.src.block[:, b.start : b.end][:, keep_b]], axis=1
    ).take(order, axis=1)
    rows = np.concatenate([a.src.rows[a.start : a.end], b.src.rows[b.start : b.end][keep_b]])
    file_of = np.concatenate([ka, np.asarray(remap, np.int32)[kb][keep_b]]).astype(np.int32)
    n = len(order)
    src = JoinedBars(
        a.src.source, a.src.kind, [a.instrument], np.zeros(n, np.int32), block, rows[order],
        files=files, file_of=file_of[order],
    )  # fmt: skip
    return Piece(
        a.instrument, a.day, src, 0, n, day_hash(src, 0, n, hasher),
        max(a.off_minute, b.off_minute),
    )  # fmt: skip


PARTS_PER_CHUNK = 4  # a big file's parts are a quarter chunk: read on every core at once


def chunks(
    files: Sequence[str],
    budget: int,
    streams: Mapping[str, Iterable[Part]] | None = None,
    whole: Callable[[str], bool] = lambda f: False,
) -> Iterator[list[str | Part]]:
    """Consecutive groups of inputs of at most ``budget`` bytes (one at least); a file
    bigger than that is cut in parts (:mod:`incbt.bars.parts`) grouped the same way.
    ``streams``: the parts of big ``.csv.gz`` files, made as they are asked for (a
    group is yielded once its last part is made, before the next group's parts)."""
    group: list[str | Part] = []
    size = 0
    for f in files:
        units: Iterable[tuple[str | Part, int]]
        if streams and f in streams:
            units = ((p, p.size) for p in streams[f])
        else:
            n = os.path.getsize(f)
            parts = (
                parts_of(f, max(budget // PARTS_PER_CHUNK, 1))
                if n > budget and not whole(f)
                else None
            )
            units = [(f, n)] if parts is None else [(p, p.size) for p in parts]
        for u, m in units:
            if group and size + m > budget:
                yield group
                group, size = [], 0
            group.append(u)
            size += m
    if group:
        yield group


def _intact(path: str, rows: int, groups: int) -> int | None:
    """The size of the bars file at ``path`` if its footer says ``rows`` rows in
    ``groups`` row groups; None where there is no such file (or no such footer)."""
    if not os.path.exists(path):  # the usual case, said in ~2 us: Arrow's open of a
        return None  # missing file raised after ~150 us (an update's 100 append files)
    try:
        md = pq.ParquetFile(path).metadata
        if md.num_rows == rows and md.num_row_groups == groups:
            return os.path.getsize(path)
    except (OSError, pa.ArrowException):
        pass
    return None


def recover(root: str, cat: Catalog) -> int:
    """Remove files a crashed writer left behind, and finish an interrupted ``gc``;
    call under the write lock."""
    with cat.env.read() as txn:
        pending = cat.pending(txn)
        live = {p for p in pending if cat.file(txn, bytes.fromhex(_hash_of(p))) is not None}
    removed = 0
    for p in pending:
        if p not in live:
            full = os.path.join(root, p)
            if _remove_gone(full):
                removed += 1
            with contextlib.suppress(OSError):  # folder of a never-committed instrument
                os.rmdir(os.path.dirname(full))
    if pending:
        cat.env.write(lambda txn: cat.set_pending(txn, []))
    removed += finish_gc(root, cat)
    from incbt.catalog.compact import leftover

    leftover(root)  # a catalog compaction killed part-way: its copy, or the old catalog
    tmp = os.path.join(root, "tmp")
    if os.path.isdir(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
    return removed


# A path that names no file, and never could: gone already, a folder that was never
# made, or a name too long for the file system (a writer before names were checked
# for that recorded one as pending, and failed to write it)
_NO_FILE = (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG)


def _remove_gone(path: str) -> bool:
    """Remove a file a crashed writer may have left; False where there is none (and
    can be none). Any other failure (a permission, a read-only disk) is raised: a
    partial file left in place could later be taken for a complete one."""
    try:
        os.remove(path)
    except OSError as exc:
        if exc.errno in _NO_FILE:
            return False
        raise
    return True


def finish_gc(root: str, cat: Catalog) -> int:
    """Delete the files a committed ``gc`` dropped from the catalog (idempotent).

    A path is deleted only while no file record has its hash (an ingest may
    write the same content-addressed file again later); the folders are
    fsynced before the intent is cleared. Call under the write lock.
    """
    with cat.env.read() as txn:
        doomed = cat.gc_pending(txn)
        live = {p for p in doomed if cat.file(txn, bytes.fromhex(_hash_of(p))) is not None}
    if not doomed:
        return 0
    removed = 0
    folders = set()
    for p in doomed:
        if p in live:
            continue
        full = os.path.join(root, p)
        folders.add(os.path.dirname(full))
        if _remove_gone(full):
            removed += 1
    parents = set()
    for d in sorted(folders):
        with contextlib.suppress(FileNotFoundError):
            fsync_dir(d)
        # an instrument's folder left empty (its bars all removed, then gc'd: QA
        # 2026-12-06); one still holding files stays (ENOTEMPTY)
        with contextlib.suppress(OSError):
            os.rmdir(d)
            parents.add(os.path.dirname(d))
    for d in sorted(parents):
        with contextlib.suppress(FileNotFoundError):
            fsync_dir(d)
    cat.env.write(lambda txn: cat.set_gc_pending(txn, []))
    return removed


def _hash_of(path: str) -> str:
    return os.path.basename(path).split(".")[0].rsplit("-", 1)[-1]


@dataclass
class _File:
    """One file of a bucket: committed (current in the catalog) or written by this call."""

    instrument: str
    month: str
    hash: bytes
    path: str
    rows: int
    bytes: int
    first_day: int
    last_day: int
    entries: list[DayEntry]  # the days it holds, in day order
    committed: bool


@dataclass
class _Plan:
    """One file to write for a bucket, and what the bucket's file list becomes."""

    instrument: str
    month: str
    hash: bytes
    parts: list[DayEntry | Piece]  # in day order: kept days (entries) and new pieces
    sources: dict[bytes, str]  # file hash -> path, for the kept days
    keep: list[_File]  # the bucket's files that stay as they are
    merged: list[_File]  # the bucket's files the new one replaces
    fold: bool  # merged every file of the bucket because it had too many

    @property
    def path(self) -> str:
        return bucket_path(self.instrument, self.month, self.hash.hex())


def _file_hash(instrument: str, parts: Sequence[DayEntry | Piece], salt: bytes = b"") -> bytes:
    """A bars file's content address: its instrument and its days' content hashes.
    ``salt`` (a rewrite's): another name for the same content, so the repaired file is
    written beside a damaged one, and the commit repoints the days to it (a file
    renamed over the damaged one before the commit left, when killed in between,
    results computed from the damage that no command flagged: QA 2026-12-06)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(instrument.encode() + b"\0" + salt)
    for x in parts:
        h.update(int(x.day).to_bytes(4, "big", signed=True) + x.hash)
    return h.digest()


def _plan_bucket(
    instrument: str,
    month: str,
    pieces: list[Piece],
    files: list[_File],
    max_files: int,
    salt: bytes = b"",
) -> _Plan:
    """The one file this ingest writes for a bucket (see the module docstring).

    Files holding a corrected day, and files this call wrote itself (earlier
    chunks), are merged with the pieces; the other files are kept, so a day new
    to a month is written alone, as an append file. Past ``max_files`` the
    bucket folds: every file is merged.
    """
    holder = {e.day: f.hash for f in files for e in f.entries}
    touched = {holder[p.day] for p in pieces if p.day in holder}
    touched |= {f.hash for f in files if not f.committed}
    keep = [f for f in files if f.hash not in touched]
    # size tiers: the newest kept file joins while it holds no more days than the new
    # file would, so a month of daily appends has O(log days) files, each day is
    # rewritten O(log days) times, and most days only the new day is written
    size = len(
        {p.day for p in pieces} | {e.day for f in files if f.hash in touched for e in f.entries}
    )
    while keep and len(keep[-1].entries) <= size:
        size += len(keep[-1].entries)
        touched.add(keep.pop().hash)
    fold = len(keep) + 1 > max_files
    if fold:
        keep = []
    merged = [f for f in files if f.hash in touched or fold]
    replaced = {p.day for p in pieces}
    parts: list[DayEntry | Piece] = [e for f in merged for e in f.entries if e.day not in replaced]
    parts.extend(pieces)
    parts.sort(key=lambda x: x.day)
    sources = {f.hash: f.path for f in merged}
    fold = fold and len(files) > 1
    return _Plan(
        instrument,
        month,
        _file_hash(instrument, parts, salt),
        parts,
        sources,
        keep,
        merged,
        fold,
    )


def _write_bucket(root: str, plan: _Plan, max_rows: int) -> _File:
    """Write the plan's file (unless that content is on disk already); not yet durable.
    A stored file it merges that cannot be read is said, with the fix."""
    old: dict[bytes, np.ndarray] = {}
    for fh in {x.file for x in plan.parts if isinstance(x, DayEntry)}:
        # one thread, no pre-buffer: ~3x faster than read_table on these small files
        path = os.path.join(root, plan.sources[fh])
        try:
            pf = pq.ParquetFile(path, pre_buffer=False)
            old[fh] = table_block(pf.read(columns=list(BLOCK_ROWS), use_threads=False))
        except (OSError, pa.ArrowException, KeyError, ValueError) as exc:  # QA 2026-12-06
            raise StoreError(
                f"{path} cannot be read ({exc}), and this ingest merges days it holds into "
                "a new file: the store was changed outside incbt (`incbt verify --bars`). "
                "Fix: ingest the original data of every day of that file (its month) with "
                "--rewrite, or restore the store from a backup"
            ) from None
    # the month's days, each one slice of its input's block (see bars_block)
    slices = []
    day_rows = []
    for x in plan.parts:
        if isinstance(x, DayEntry):
            slices.append(old[x.file][:, x.offset : x.offset + x.rows])
        else:
            slices.append(x.src.block[:, x.start : x.end])
        day_rows.append(x.rows)
    arrays = block_columns(np.concatenate(slices, axis=1))
    days = np.array([x.day for x in plan.parts], dtype=np.int32)
    table = build_table(plan.instrument, arrays["ts"], np.repeat(days, day_rows), arrays)
    groups_days = row_groups(day_rows, max_rows)
    offsets = np.concatenate(([0], np.cumsum(day_rows))).tolist()
    groups = [(offsets[s], offsets[s + k] - offsets[s]) for s, k in groups_days]
    rel = plan.path
    final = os.path.join(root, rel)
    # same content written before (e.g. a correction undone): a file there is complete,
    # since recover() has removed every file a crashed writer may have left half-written
    # -- unless it was damaged outside incbt: one whose footer does not say these rows
    # and row groups is written again (QA 2026-12-06: a truncated file was taken as it
    # was, and the ingest recorded it)
    size = _intact(final, table.num_rows, len(groups))
    if size is None:
        size = write_file(table, groups, final)
    RECENT.remember(plan.hash, arrays)  # an update reads its new day next
    ts = arrays["ts"]
    entries = []
    for g, (s, k) in enumerate(groups_days):
        for j in range(s, s + k):
            x = plan.parts[j]
            entries.append(
                DayEntry(
                    plan.instrument,
                    int(x.day),
                    plan.hash,
                    g,
                    offsets[j],
                    day_rows[j],
                    x.hash,
                    int(ts[offsets[j]]),
                    int(ts[offsets[j + 1] - 1]),
                )
            )
    return _File(
        plan.instrument,
        plan.month,
        plan.hash,
        rel,
        int(offsets[-1]),
        size,
        int(days[0]),
        int(days[-1]),
        entries,
        committed=False,
    )


@contextlib.contextmanager
def _csv_kernel(files: Sequence[str]) -> Iterator[None]:
    """Load the fast CSV reader's kernel meanwhile, for an input large enough to pay for
    it (:data:`incbt.bars.fastcsv.MIN_BYTES`); wait for the loader before returning."""
    size = sum(os.path.getsize(f) for f in files if f.lower().endswith(".csv"))
    loader = fastcsv.prepare() if size >= fastcsv.MIN_BYTES else None
    try:
        yield
    finally:
        if loader is not None:
            loader.join()


def _gc_paused(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``fn`` without cyclic garbage collection (the objects an ingest makes are
    acyclic): with ~60k objects tracked, the collector ran ~110 times per 4M-row
    ingest and took 20-55 ms, holding the GIL the reading and writing threads share.

    Collection resumes once ``fn`` has returned, its objects freed: resumed inside it,
    the next allocation collected every object its frame still held (8 ms per 4M-row
    ingest; 89 ms for a process's first, with the modules it imported).
    """

    @functools.wraps(fn)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return paused


@_gc_paused
def ingest(
    root: str,
    cat: Catalog,
    paths: Sequence[str],
    *,
    session_tz: str,
    row_group_rows: int,
    lock: Any,
    command: str = "ingest",
    mapping: Mapping[str, str] | None = None,
    tz: str | None = None,
    dry_run: bool = False,
    chunk_bytes: int = 64 << 20,
    max_files: int = 8,
    progress: Reporter = NULL,
    join_days: bool = False,
    rewrite: bool = False,
    ts_unit: str = "ns",
    instrument: str | None = None,
    ts_format: str | None = None,
    header: Sequence[str] | None = None,
    decimal: str | None = None,
) -> IngestSummary:
    """Ingest files as one atomic batch, reading them ``chunk_bytes`` at a time.

    Memory is bounded by two chunks: each chunk's buckets are written
    (uncommitted) while the next chunk is read, except each instrument's latest
    month, which waits for the next chunk (:func:`_open_buckets`); a bucket a
    later chunk touches again merges with this call's earlier file, which is
    then deleted. One commit at the end. An input that fits one chunk is
    validated whole before anything is written. A file bigger than a chunk is
    read in parts (:mod:`incbt.bars.parts`: a CSV file as ranges of lines, a
    Parquet file as runs of row groups, a big ``.csv.gz`` cut in parts as it is
    decompressed), a quarter chunk each.
    ``max_files``: the most files a bucket may have before it is folded.
    ``join_days``: new bars are merged into a stored day (:func:`_beside_stored`);
    without it they replace the day whole, as any correction.
    ``rewrite``: a day whose bars equal the store's is written again all the same (new
    files; recorded as a change whose old and new hashes are equal, so results recompute
    from it): the repair of a bars file damaged outside incbt (``verify --bars``).
    """
    if rewrite and join_days:
        raise UsageError(
            "--rewrite (rewrite=) writes the days given as they are; --join-days "
            "(join_days=) merges them into the stored ones: give one of them"
        )
    t0 = time.perf_counter()
    skipped: list[str] = []
    files = expand_paths(
        paths,
        skipped,
        None if instrument is None else (lambda f: instrument_for(f, instrument)),
        text=header is not None,
    )
    summary = IngestSummary(files=len(files), dry_run=dry_run)

    def first_bad_line(e: BadInputError, f: str) -> BadInputError:
        """A whole file's error as its first bad line: where reading stopped at a line it
        could not read, a bar on a line before it may break a rule (parts.first_error).
        For a plain CSV file of a header line (those cut in parts when big), or of none
        (--header: a .csv or .txt file); others' as read (a .csv.gz read whole, yfinance
        files, Parquet, whose columns' types leave no line unread)."""
        if header is None:
            plain = f.lower().endswith(".csv") and not is_stacked(f)
        else:  # bars from its first line (QA 2026-12-07: the later line was named)
            plain = f.lower().endswith((".csv", ".txt"))
        part = whole_csv(f, header is None) if plain and not e.rule else None
        return e if part is None else first_error(e, part, functools.partial(first_read, None))

    def first_read(before: dict[str, int] | None, part: Part) -> InputBars:
        """A part's first lines read (:func:`incbt.bars.parts.first_error`): checked, not
        cut in days or counted as a file read."""
        return read_bars(part, True, before)

    def whole(f: str) -> bool:  # a CSV file without a header line is read whole: a part
        # of it would take its first bar for the header line its copy starts with; so is
        # one with yfinance's header of three lines, whose parts would have its first
        # (looked at only where the file is big enough to be cut: a part's size)
        if header is not None:
            return is_csv(f) or is_text(f)
        return is_csv(f) and os.path.getsize(f) > chunk_bytes // PARTS_PER_CHUNK and is_stacked(f)

    summary.skipped_files = sorted(skipped)
    summary.reading = {
        k: v
        for k, v in (
            ("map", dict(mapping or {})),
            ("tz", tz),
            ("ts_unit", ts_unit),
            ("instrument", instrument),
            ("ts_format", ts_format),
            ("header", list(header or [])),
            ("decimal", decimal),
        )
        if v and v != "ns"
    }
    seen: dict[tuple[str, int], _Seen] = {}
    repeated = [0]  # bars given again, identical (collect)
    # the file list of every bucket this call changes, as it will be committed
    staged: dict[tuple[str, str], list[_File]] = {}
    changes: list[tuple[str, int, int, bytes, bytes, int]] = []  # inst, day, kind, old, new, rows
    written: list[str] = []

    hasher = store_hasher(cat)

    def whole_day(inst: str, day: int, src: InputBars) -> Piece:
        # a day joined from the parts of a big file: its stamps looked at as split_days
        # does (QA 2026-12-06: its off-the-minute note was lost)
        n = len(src)
        stamps = src.ts[[0, min(1, n - 1), n - 1]] if n else src.ts[:0]
        off = int(np.where(stamps % MINUTE_NS != 0, stamps, 0).max()) if n else 0
        return Piece(inst, day, src, 0, n, day_hash(src, 0, n, hasher), off)

    stitcher = Stitcher(whole_day)  # across the parts of a big file

    def read(
        f: str | Part, use_threads: bool, before: dict[str, int] | None = None
    ) -> tuple[InputBars, list[Piece]]:
        inp = read_bars(f, use_threads, before)
        pieces = split_days(inp, session_tz, hasher)
        if before is None:  # (not a part read again)
            read_task.advance()
        return inp, pieces

    def read_bars(f: str | Part, use_threads: bool, before: dict[str, int] | None) -> InputBars:
        """A file's or a part's bars, read and checked (not yet cut in days)."""
        name = None
        if instrument is not None:  # a part of a .csv.gz is a file of its own: its name
            name = instrument_for(f.name or f.path if isinstance(f, Part) else f, instrument)
        if isinstance(f, Part):
            inp = read_part(
                f,
                mapping,
                tz,
                use_threads,
                streamed.dir,
                ts_unit,
                name,
                ts_format,
                decimal,
                before,
                header,
            )
        else:
            inp = read_input(
                f,
                mapping,
                tz,
                use_threads,
                ts_unit=ts_unit,
                instrument=name,
                ts_format=ts_format,
                header=header,
                decimal=decimal,
            )
        return inp

    # a dry run on a store it cannot write (a read-only file system) reads it without
    # the write lock, and cuts big compressed files in parts under a temporary folder
    # (QA 2026-12-06: refused, "this command writes to it")
    looks_only = dry_run and cat.env.readonly
    with (
        contextlib.nullcontext() if looks_only else lock(recover_first=not dry_run),
        _csv_kernel(files),
        tempfile.TemporaryDirectory(prefix="incbt-dry-") if looks_only else _no_dir(root) as base,
        _streamed(base, [f for f in files if not whole(f)], chunk_bytes) as streamed,
    ):  # taking the lock removed what a crashed writer left (Store.lock)
        # files and parts to read (how many is unknown where a .csv.gz is cut in parts
        # as it is decompressed: made as they are asked for)
        if streamed.todo:
            groups = chunks(files, chunk_bytes, streamed.streams(progress), whole)
            read_task = progress.task("reading", None)
        else:
            planned = list(chunks(files, chunk_bytes, whole=whole))
            groups = iter(planned)
            read_task = progress.task("reading", sum(len(g) for g in planned))
        write_task = progress.task("writing buckets", None)
        try:
            held: dict[tuple[str, int], Piece] = {}
            would: set[tuple[str, str]] = set()  # a dry run's buckets
            # One pool for reading and writing, a thread per core (at most 4): Arrow's
            # parsing and writing, NumPy and hashing run without the GIL. The next
            # chunk's files are read while this chunk's buckets are written, so the
            # cores stay busy across chunks (at most two chunks in memory). A chunk
            # of one file parses it with Arrow's threads too; several files go one
            # thread each (Arrow's pool on top of ours oversubscribes the cores).
            pool = ThreadPoolExecutor(max_workers=min(4, usable_cores()))

            def submit_reads(
                group: list[str | Part] | None,
            ) -> list[Future[tuple[InputBars, list[Piece]]]]:
                if group is None:
                    return []
                return [pool.submit(read, f, len(group) == 1) for f in group]

            # The next chunk's parts of a .csv.gz are made (decompressed) on a thread of
            # their own while this chunk's are read: parts of about three chunks on disk
            maker = ThreadPoolExecutor(max_workers=1)
            group = next(groups, None)
            ahead = maker.submit(next, groups, None)
            reads = submit_reads(group)
            try:
                while group is not None:
                    # in file order, so the first bad file is the one reported
                    read_out = []
                    for unit, r in zip(group, reads, strict=True):
                        if not isinstance(unit, Part):
                            try:
                                read_out.append(r.result())
                            except BadInputError as e:  # the first bad line, whatever
                                raise first_bad_line(e, unit) from None  # its rule
                            continue
                        try:  # numbered as in the whole file, now that the parts before are
                            try:
                                read_out.append(r.result())
                            except AmbiguousTime:  # starts in an autumn change's repeated
                                # hour: read again after the parts before it (QA 2026-12-07)
                                before = stitcher.before(unit)
                                if before is None:
                                    raise
                                read_out.append(read(unit, True, before))
                        except BadInputError as e:
                            raise stitcher.first_error(
                                e, unit, functools.partial(first_read, stitcher.before(unit))
                            ) from None
                        stitcher.number(unit, read_out[-1][0])
                    this, group = group, ahead.result()
                    if group is not None:
                        ahead = maker.submit(next, groups, None)
                    reads = submit_reads(group)
                    summary.rows_read += sum(len(i) for i, _ in read_out)
                    for i, _ in read_out:
                        if i.ignored:
                            summary.ignored_columns = sorted(
                                set(summary.ignored_columns) | set(i.ignored)
                            )
                        summary.no_bars.extend((i.source, t) for t in i.no_bars)
                    new = collect(
                        [
                            stitcher.feed(unit, inp, p) if isinstance(unit, Part) else p
                            for unit, (inp, p) in zip(this, read_out, strict=True)
                        ],
                        seen,
                        held,
                        hasher,
                        repeated,
                        instrument,
                    )
                    del read_out
                    pieces = held | new
                    held = _open_buckets(pieces) if group is not None else {}
                    for key, p in held.items():  # waiting a second chunk: not its file's
                        if key not in new and len(p.src) > p.rows:  # arrays, its own
                            held[key] = _own(p)
                    for key in held:
                        del pieces[key]
                    plans = _classify(
                        cat,
                        pieces,
                        staged,
                        summary,
                        changes,
                        max_files,
                        root,
                        hasher,
                        join_days,
                        rewrite,
                    )
                    if dry_run:  # the buckets it would write (one file each, in the end)
                        would.update((p.instrument, p.month) for p in plans)
                        continue
                    if not plans:
                        continue
                    written.extend(p.path for p in plans)
                    cat.env.write(lambda txn: cat.set_pending(txn, written))
                    # Small files too (a day's append files, a few hundred rows) go to
                    # every thread: since files are written in place (no rename across
                    # folders) two threads beat one there as well (an update's 100 append
                    # files: ingest median 76 -> 65 ms; 500: 436 -> 358 ms, 2026-12-05)
                    writes = [
                        pool.submit(_write_bucket, root, plan, row_group_rows) for plan in plans
                    ]
                    for plan, w in zip(plans, writes, strict=True):
                        f = w.result()
                        write_task.advance()
                        for old in plan.merged:
                            if (
                                not old.committed
                                and old.path != f.path
                                and not _known(cat, old.hash)
                            ):
                                with contextlib.suppress(FileNotFoundError):
                                    os.remove(os.path.join(root, old.path))  # never committed
                        staged[(f.instrument, f.month)] = [*plan.keep, f]
            finally:
                # nothing may still write when recover() removes this call's files
                maker.shutdown(wait=True, cancel_futures=True)
                pool.shutdown(wait=True, cancel_futures=True)
            read_task.done()
            write_task.done()
            streamed.done()
            t1 = time.perf_counter()
            summary.seconds["read+write"] = t1 - t0
            summary.rows_repeated = repeated[0]
            _summarize(summary, changes, len(would) if dry_run else len(staged), join_days)
            if changes:  # the instruments the store has no bar of yet, by name (QA
                # 2026-12-06: a wrong --instrument template passed unseen in a count)
                with cat.env.read() as txn:
                    had = set(cat.instruments(txn))
                summary.new_instruments = sorted({c[0] for c in changes} - had)
            if dry_run or not changes:
                return summary
            # Every file durable first, in one go, then the one transaction that lists
            # them: the sync runs on a thread while the transaction is filled, and the
            # transaction commits only once the sync has returned (if it raises, the
            # transaction aborts).
            new_files = [os.path.join(root, f.path) for f in _flat(staged) if not f.committed]

            def sync() -> float:
                t = time.perf_counter()
                sync_files(root, new_files)
                fsync_dir(os.path.join(root, "bars"))
                return time.perf_counter() - t

            with ThreadPoolExecutor(max_workers=1) as syncer:
                synced = syncer.submit(sync)

                def commit(txn: Any) -> int:
                    seq = _commit(cat, txn, command, summary, files, changes, staged)
                    summary.seconds["sync"] = synced.result()
                    return seq

                summary.seq = cat.env.write(commit)
        except BaseException:
            if written and summary.seq is None:
                recover(root, cat)  # delete this call's uncommitted files
            raise
        shutil.rmtree(os.path.join(root, "tmp"), ignore_errors=True)
        summary.seconds["commit"] = time.perf_counter() - t1  # the sync included
        return summary


class _Streams:
    """The inputs cut in parts as they are read: big ``.csv.gz`` files, as they are
    decompressed (each part on disk, under the store's ``tmp/inputs/``: removed once
    read, the rest when the ingest ends, whatever its end, or by the next writer after
    a crash), and Parquet files with a row group bigger than a part (in memory)."""

    def __init__(self, root: str, files: Sequence[str], budget: int) -> None:
        self.dir = os.path.join(root, "tmp", "inputs")
        self.budget = budget
        part = budget // PARTS_PER_CHUNK
        # compressed bytes above a part's size: plain, it is several parts
        self.gz = [f for f in files if is_gz(f) and os.path.getsize(f) > part]
        self.pq = [
            f
            for f in files
            if is_parquet(f) and os.path.getsize(f) > budget and big_row_groups(f, part)
        ]
        self.todo = self.gz + self.pq
        self.task: Any = None

    def done(self) -> None:
        if self.task is not None:
            self.task.done()

    def streams(self, progress: Reporter) -> dict[str, Iterable[Part]]:
        part = self.budget // PARTS_PER_CHUNK
        out: dict[str, Iterable[Part]] = {f: ParquetRowParts(f, part) for f in self.pq}
        if not self.gz:
            return out
        # in MiB of compressed input: one big file takes a while, and shows how far it is
        total = sum(os.path.getsize(f) for f in self.gz)
        task = self.task = progress.task("decompressing (MiB)", max(1, total >> 20))
        read = shown = 0

        def advance(n: int) -> None:
            nonlocal read, shown
            read += n
            if (read >> 20) > shown:
                task.advance((read >> 20) - shown)
                shown = read >> 20

        for k, f in enumerate(self.gz):
            out[f] = GzParts(f, self.dir, part, f"{k:06d}", advance)
        return out


@contextlib.contextmanager
def _no_dir(root: str) -> Iterator[str]:
    """``root`` itself, as the context :func:`_ingest` opens in its place for a temporary
    folder."""
    yield root


@contextlib.contextmanager
def _streamed(root: str, files: Sequence[str], budget: int) -> Iterator[_Streams]:
    streams = _Streams(root, files, budget)
    try:
        yield streams
    finally:
        if os.path.isdir(streams.dir):
            shutil.rmtree(streams.dir, ignore_errors=True)
            with contextlib.suppress(OSError):  # empty: a dry run leaves no folder behind
                os.rmdir(os.path.dirname(streams.dir))


def _open_buckets(pieces: dict[tuple[str, int], Piece]) -> dict[tuple[str, int], Piece]:
    """The pieces of each instrument's latest month among those not written yet (this
    chunk's new pieces and those that waited).

    A later chunk of the same call is likely to add days to that month (daily
    files in date order: the chunk ends mid-month), or the rest of a day (a session
    zone that cuts the files' days in two: :func:`collect` joins the pieces while
    both are in memory); writing the month now would write it again with those
    days, reading this file back (measured: 640 bucket files written instead of 480
    for 260 daily files in 5 chunks, ~30 % more write time). So those pieces wait,
    while they are their instrument's latest month (a chunk without newer days of it,
    such as the middle parts of a big file, leaves them waiting): in any file order,
    what waits is at most a month per instrument. The files written are the same
    either way: a bucket touched again merges with this call's earlier file.
    """
    last: dict[str, int] = {}
    for inst, day in pieces:
        last[inst] = max(day, last.get(inst, day))
    if not last:
        return {}
    months = month_of(np.array(list(last.values()), dtype=np.int64))
    span = {inst: _month_range(str(m)) for inst, m in zip(last, months, strict=True)}
    return {
        key: p
        for key, p in pieces.items()
        if key[0] in span and span[key[0]][0] <= key[1] <= span[key[0]][1]
    }


def _flat(staged: dict[tuple[str, str], list[_File]]) -> list[_File]:
    return [f for fs in staged.values() for f in fs]


def _known(cat: Catalog, file_hash: bytes) -> bool:
    with cat.env.read() as txn:
        return cat.file(txn, file_hash) is not None


def _month_of_day(day: int) -> tuple[int, int]:
    """The first and last day (day numbers) of ``day``'s month (a call a corrected day:
    no NumPy round trip)."""
    d = _EPOCH + datetime.timedelta(days=day)
    first = day - d.day + 1
    return first, first + calendar.monthrange(d.year, d.month)[1] - 1


_EPOCH = datetime.date(1970, 1, 1)


def _month_range(month: str) -> tuple[int, int]:
    first = int(np.datetime64(month, "D").astype(np.int64))
    last = int((np.datetime64(month, "M") + 1).astype("datetime64[D]").astype(np.int64)) - 1
    return first, last


def _committed_files(cat: Catalog, txn: Any, inst: str, month: str) -> list[_File]:
    """A bucket's current files, with the days each holds, from the catalog."""
    hashes = cat.bucket(txn, inst, month)
    if not hashes:
        return []
    by_file: dict[bytes, list[DayEntry]] = defaultdict(list)
    for e in cat.days(txn, inst, *_month_range(month)):
        by_file[e.file].append(e)
    out = []
    for h in hashes:
        rec = cat.file(txn, h)
        if rec is None:  # pragma: no cover - the catalog lists only recorded files
            raise CatalogError(f"bucket {inst} {month} names an unknown file {h.hex()}")
        out.append(
            _File(
                inst,
                month,
                h,
                rec.path,
                rec.rows,
                rec.bytes,
                rec.first_day,
                rec.last_day,
                by_file.get(h, []),
                committed=True,
            )
        )
    return out


def _classify(
    cat: Catalog,
    pieces: dict[tuple[str, int], Piece],
    staged: dict[tuple[str, str], list[_File]],
    summary: IngestSummary,
    changes: list,
    max_files: int,
    root: str,
    hasher: Hasher,
    join_days: bool,
    rewrite: bool = False,
) -> list[_Plan]:
    """Diff pieces against the catalog; plan the file each changed bucket gets."""
    changed: dict[tuple[str, str], list[Piece]] = defaultdict(list)
    salt = os.urandom(8) if rewrite else b""  # a rewrite's files: names of their own
    months_read: dict[tuple[str, int], dict[int, np.ndarray]] = {}  # join_days: stored days
    with cat.env.read() as txn:
        keys = sorted(pieces)
        months: Any = month_of(np.array([k[1] for k in keys], dtype=np.int64)) if keys else []
        # the store's hash of each day read: one range read per instrument, not a get a day
        stored: dict[str, dict[int, bytes]] = {}
        for inst, group in itertools.groupby(keys, key=lambda k: k[0]):
            days = [d for _, d in group]
            stored[inst] = cat.day_hashes(txn, inst, days[0], days[-1])
            seen = summary._seen.setdefault(inst, set())
            seen.update(days)
            seen.update(stored[inst])
            a, b = summary._span.get(inst, (days[0], days[-1]))
            summary._span[inst] = (min(a, days[0]), max(b, days[-1]))
            prev = cat.days_up_to(txn, inst, days[0] - 1, 1)
            if prev and (summary._gap_from is None or prev[0] < summary._gap_from):
                summary._gap_from = prev[0]
            if inst not in summary._stored_rows:
                summary._stored_rows[inst] = _stored_rows(cat, txn, inst, days[-1])
            if join_days and inst not in summary._stored_last:  # what _summarize spares
                last = cat.days_up_to(txn, inst, _AFTER_ANY_DAY, 1)
                summary._stored_last[inst] = last[0] if last else None
        # every instrument's stored days back to _gap_from, in its span: a gap of several
        # days is said whole, each day against the instruments that have it (QA
        # 2026-12-06: only the day before the gap's end was)
        if summary._gap_from is not None:
            for inst, group in itertools.groupby(keys, key=lambda k: k[0]):
                first = next(group)[1]
                early = cat.day_index(txn, inst, summary._gap_from, first - 1).days.tolist()
                if early:
                    summary._seen[inst].update(early)
                    a, b = summary._span[inst]
                    summary._span[inst] = (min(a, early[0]), b)
        for key, month in zip(keys, months, strict=True):
            p = pieces[key]
            if months_read and next(iter(months_read))[0] != p.instrument:
                months_read.clear()  # keys in instrument order: what is read is one's
            old = stored[p.instrument].get(p.day)
            if old == p.hash and not rewrite:
                summary.days_unchanged += 1
                continue
            if old is not None and old != p.hash:
                apart = len(summary.replaced_apart)
                p = _beside_stored(root, cat, txn, p, hasher, join_days, summary, months_read)
                if rewrite and len(summary.replaced_apart) > apart:
                    # a repair that cuts a day short is no repair (QA 2026-12-06: a store
                    # of another session zone, repaired from some of its UTC-day files)
                    inst, day, stored_n, new_n = summary.replaced_apart[-1]
                    raise BadInputError(
                        f"--rewrite writes days whole, and the bars given for {inst} on "
                        f"{day} ({new_n:,}) leave out some of the stored day's "
                        f"({stored_n:,})",
                        fix="give every file that holds that day's bars (a day of a "
                        "session zone other than UTC is in two UTC-day files)",
                    )
                if p.hash == old:  # merged: the same bars sent again
                    summary.days_unchanged += 1
                    continue
            kind = CHANGE_NEW if old is None else CHANGE_CORRECTED
            if old is not None:  # a correction
                bits = _fields_changed(root, cat, txn, p, old, hasher, months_read)
                if bits != ANY_FIELD:
                    summary._fields[(p.instrument, p.day)] = bits
            if p.off_minute:
                summary.off_minute.append((p.instrument, day_to_iso(p.day), stamp(p.off_minute)))
            changes.append((p.instrument, p.day, kind, old or ZERO_HASH, p.hash, p.rows))
            changed[(p.instrument, str(month))].append(p)
        plans = []
        for (inst, month), ps in sorted(changed.items()):
            cur_files = staged.get((inst, month))
            if cur_files is None:
                cur_files = _committed_files(cat, txn, inst, month)
            plan = _plan_bucket(inst, month, ps, cur_files, max_files, salt)
            summary.buckets_folded += plan.fold
            summary.append_files += bool(plan.keep) and not plan.merged
            plans.append(plan)
    return plans


def _fields_changed(
    root: str,
    cat: Catalog,
    txn: Any,
    p: Piece,
    old: bytes,
    hasher: Hasher,
    months: dict[tuple[str, int], dict[int, np.ndarray]],
) -> int:
    """The bar fields (FIELD_BITS) a correction of a stored day changes: those whose
    values differ where the bars' times are the same; ANY_FIELD where the times differ
    (bars added, taken away or moved) or the stored day cannot be read. A vendor's
    revision of the volume alone then recomputes no run whose strategy does not read
    the volume (QA 2026-12-07: every run was). Only from stored bars that are what was
    ingested (their content hash the catalog's ``old``): a rewrite (the same content
    again, ``--rewrite``) repairs a file damaged on disk, which a computation may have
    read since: any field."""
    if old == p.hash:
        return ANY_FIELD
    try:
        have = _stored_day(root, cat, txn, p.instrument, p.day, months)
    except (OSError, IncbtError, pa.ArrowException):  # damaged on disk
        return ANY_FIELD
    if day_hash(block_columns(have), 0, have.shape[1], hasher) != old:
        return ANY_FIELD  # not the bars ingested (changed on disk): nothing to go by
    new = p.src.block[:, p.start : p.end]
    if have.shape != new.shape:
        return ANY_FIELD
    # each row (ts, then the fields) differs somewhere, bit for bit: one comparison
    differs = (have.view(np.int64) != new.view(np.int64)).any(axis=1).tolist()
    if differs[0]:  # bars at other times
        return ANY_FIELD
    bits = 0
    for name, d in zip(BLOCK_ROWS[1:], differs[1:], strict=True):
        if d:
            bits |= FIELD_BITS[name]
    return bits


def _beside_stored(
    root: str,
    cat: Catalog,
    txn: Any,
    p: Piece,
    hasher: Hasher,
    join: bool,
    summary: IngestSummary,
    months: dict[tuple[str, int], dict[int, np.ndarray]] | None = None,
) -> Piece:
    """A stored day's new bars. Without ``join`` they replace the day whole (a
    correction), said in ``summary`` where that leaves stored bars out (their span does
    not cover the stored day's, or they are fewer). With ``join`` they are merged into
    the stored day: bars at new times added, bars at a stored bar's time replace it, the
    other stored bars kept (the same bars sent again change nothing). ``months``: the
    stored days read so far, by (instrument, first day of their month): a month is read
    once, whatever number of its days is merged (a read a day made a history sent again
    a read per day and instrument: review 2026-12-06)."""
    idx = cat.day_index(txn, p.instrument, p.day, p.day)
    rec = idx.records[0]
    stored_n = int(rec["rows"])
    new_ts = p.src.ts[p.start : p.end]
    if not join:
        if new_ts[0] > rec["first_ts"] or new_ts[-1] < rec["last_ts"] or p.rows < stored_n:
            summary.replaced_apart.append((p.instrument, day_to_iso(p.day), stored_n, p.rows))
        return p
    have = _stored_day(root, cat, txn, p.instrument, p.day, {} if months is None else months)
    kept = ~np.isin(have[0].view(np.int64), new_ts)
    block = np.concatenate([have[:, kept], p.src.block[:, p.start : p.end]], axis=1)
    first_row = p.src.rows[p.start]  # stored bars have no line: named by the first new one
    rows = np.concatenate(
        [np.full(int(kept.sum()), first_row, np.int64), p.src.rows[p.start : p.end]]
    )
    order = np.argsort(block[0].view(np.int64), kind="stable")
    n = block.shape[1]
    src = InputBars(
        p.src.source,
        p.src.kind,
        [p.instrument],
        np.zeros(n, np.int32),
        block.take(order, axis=1),
        rows[order],
    )
    out = Piece(p.instrument, p.day, src, 0, n, day_hash(src, 0, n, hasher), p.off_minute)
    if out.hash != bytes(rec["hash"]):
        summary.joined_days.append(
            (p.instrument, day_to_iso(p.day), stored_n, p.rows, int(kept.sum()))
        )
    return out


def _stored_day(
    root: str,
    cat: Catalog,
    txn: Any,
    inst: str,
    day: int,
    months: dict[tuple[str, int], dict[int, np.ndarray]],
) -> np.ndarray:
    """A stored day's bars as a bars block, its month read once into ``months``."""
    first, last = _month_of_day(day)
    got = months.get((inst, first))
    if got is None:
        from incbt.store import read_days  # the engine's reader of stored days

        idx = cat.day_index(txn, inst, first, last)
        paths: dict[bytes, str] = {}
        cat.paths(txn, idx, paths)
        b = read_days(root, inst, idx, paths)
        block = bars_block(len(b.ts))
        for c, col in block_columns(block).items():
            col[:] = getattr(b, c)
        ends = np.cumsum(idx.records["rows"], dtype=np.int64)
        starts = ends - idx.records["rows"]
        got = months[(inst, first)] = {
            int(d): block[:, a:e]
            for d, a, e in zip(idx.days.tolist(), starts.tolist(), ends.tolist(), strict=True)
        }
    return got[day]


USUAL_SAMPLE = 20  # stored days of an instrument read for its usual bars a day


_AFTER_ANY_DAY = iso_to_day("9999-12-31")


def _stored_rows(cat: Catalog, txn: Any, inst: str, day: int) -> dict[int, int]:
    """The bars of an instrument's stored days nearest ``day``, by day: its latest
    :data:`USUAL_SAMPLE` on or before it, and where there are fewer, those of the next
    two months after it, up to as many. Short range reads of the day index, whatever
    the history (an ingest of 500 instruments x 1 day reads at most 10,000 records)."""
    days = cat.days_up_to(txn, inst, day, USUAL_SAMPLE)
    out: dict[int, int] = {}
    if days:
        idx = cat.day_index(txn, inst, days[0], days[-1])
        out.update(zip(idx.days.tolist(), idx.records["rows"].tolist(), strict=True))
    if len(out) < USUAL_SAMPLE:
        idx = cat.day_index(txn, inst, day + 1, day + 61)
        k = USUAL_SAMPLE - len(out)
        out.update(zip(idx.days[:k].tolist(), idx.records["rows"][:k].tolist(), strict=True))
    return out


def _summarize(
    summary: IngestSummary, changes: list, buckets: int, join_days: bool = False
) -> None:
    summary.changed_days = [(c[0], c[1], c[2], c[5]) for c in changes]
    for inst, day, kind, old_hash, new_hash, _ in changes:
        if kind == CHANGE_NEW:
            summary.days_new += 1
        elif old_hash == new_hash:  # written again as it was (rewrite)
            summary.days_rewritten += 1
        else:
            summary.days_corrected += 1
            summary.corrected.append((inst, day_to_iso(day)))
    if changes:
        ds = [c[1] for c in changes]
        summary.first_day, summary.last_day = day_to_iso(min(ds)), day_to_iso(max(ds))
        summary.instruments = len({c[0] for c in changes})
    summary.buckets_written = buckets
    summary.short_days, summary.missing_days = data_notes(
        summary.changed_days, summary._seen, summary._span, summary._stored_rows
    )
    if join_days:  # bars sent as they come: each instrument's latest day in the input
        # goes on later (its latest given, changed or not: QA 2026-12-06), where the store
        # holds no later day of it (a late piece of a past day left short is said: QA
        # 2026-12-06)
        latest = {
            inst: span[1]
            for inst, span in summary._span.items()
            if (summary._stored_last.get(inst) or span[1]) <= span[1]
        }
        summary.short_days = [x for x in summary.short_days if iso_to_day(x[1]) != latest.get(x[0])]
    summary._seen, summary._span, summary._stored_rows = {}, {}, {}
    summary._stored_last, summary._gap_from = {}, None


def data_notes(
    changed: list[tuple[str, int, int, int]],
    seen: dict[str, set[int]],
    span: dict[str, tuple[int, int]],
    stored: Mapping[str, Mapping[int, int]] | None = None,
) -> tuple[list[tuple[str, str, int, int]], list[tuple[str, str, int]]]:
    """Short and missing days of an ingest: accepted (a half-day session, a halted
    instrument are real), but said, since a file cut short or a day left out look the
    same.

    Short: a changed day with fewer than half the bars its instrument's days hold at
    the median: its days in this ingest with, from ``stored``, the bars of its days in
    the store near them (:func:`_stored_rows`; a changed day counts as it is now),
    where that makes at least 5 days; else its other stored days', where it has any;
    else the median of every changed day of this ingest (a new instrument on a daily
    update: the other instruments' day). So a correction cutting one stored day short
    is said. A short session of the whole market is not: a day when most of the 2 or
    more instruments it changes are short is left out.
    Missing: a weekday inside the span of days this ingest gave an instrument (``span``)
    for which neither the input nor the store has its bars (``seen``), while more than
    half of the other instruments whose span holds it have it (a holiday is missing for
    all of them, so it is no gap).
    """
    short: list[tuple[str, str, int, int]] = []
    if changed:
        rows_of: dict[str, list[int]] = defaultdict(list)
        changed_on: dict[str, set[int]] = defaultdict(set)
        for inst, day, _, rows in changed:
            rows_of[inst].append(rows)
            changed_on[inst].add(day)
        # its other days in the store (those this ingest leaves as they are)
        kept = {
            inst: [r for d, r in by_day.items() if d not in changed_on[inst]]
            for inst, by_day in (stored or {}).items()
            if inst in rows_of
        }
        every = int(np.median([c[3] for c in changed]))

        def usual_of(inst: str) -> int:
            days = rows_of[inst] + kept.get(inst, [])
            if len(days) >= 5:  # its days, as they will be
                return int(np.median(days))
            if kept.get(inst):  # a few days in the store: what they hold
                return int(np.median(kept[inst]))
            return every  # a new instrument: the other instruments' days

        usual = {i: usual_of(i) for i in rows_of}
        low = [
            (inst, day, rows) for inst, day, _, rows in sorted(changed) if rows * 2 < usual[inst]
        ]
        # a short session of the whole market (most instruments short that day) is no news
        per_day: dict[int, int] = defaultdict(int)
        for _, day, _, _ in changed:
            per_day[day] += 1
        low_on: dict[int, int] = defaultdict(int)
        for _, day, _ in low:
            low_on[day] += 1
        short = [
            (inst, day_to_iso(day), rows, usual[inst])
            for inst, day, rows in low
            if per_day[day] < 2 or low_on[day] * 2 <= per_day[day]
        ]
    missing: list[tuple[str, str, int]] = []
    if len(span) > 1:
        have: dict[int, int] = defaultdict(int)  # day -> instruments that have it
        for inst, days in seen.items():
            a, b = span[inst]
            for d in days:
                if a <= d <= b:
                    have[d] += 1
        for inst in sorted(span):
            a, b = span[inst]
            for d in sorted(x for x in have if a < x < b and x not in seen[inst]):
                covering = sum(1 for o, (c, e) in span.items() if o != inst and c <= d <= e)
                if covering and have[d] * 2 > covering:
                    missing.append((inst, day_to_iso(d), have[d]))
    return short, missing


def _commit(
    cat: Catalog,
    txn: Any,
    command: str,
    summary: IngestSummary | None,
    files: list[str],
    changes: list,
    staged: dict[tuple[str, str], list[_File]],
    kind: str = "ingest",
    payload: dict[str, Any] | None = None,
) -> int:
    """The event, its changes and the buckets' new file lists, in one transaction. A
    change of kind CHANGE_REMOVED takes its day out of the day index (``incbt remove``:
    ``payload`` is its event's summary)."""
    if payload is None:
        assert summary is not None
        # the event's own seq and a dry run's flag say nothing in the log; the sources by
        # their whole path (a basename did not tell two folders' bars-2024-01-02.csv apart)
        payload = {k: v for k, v in summary.as_dict().items() if k not in ("seq", "dry_run")} | {
            "sources": [os.path.abspath(f) for f in files[:20]],
            "n_sources": len(files),
        }
    seq = cat.append_event(txn, kind, command, payload)
    cat.put_changes(txn, seq, changes)
    if summary is not None and summary._fields:
        cat.put_change_fields(txn, seq, [(i, d, m) for (i, d), m in summary._fields.items()])
    gone: dict[str, list[int]] = defaultdict(list)
    for c in changes:
        if c[2] == CHANGE_REMOVED:
            gone[c[0]].append(c[1])
    for inst, days in gone.items():
        cat.delete_days(txn, inst, days)
    for (inst, month), bucket in sorted(staged.items()):
        now = {f.hash for f in bucket}
        for prev in cat.bucket(txn, inst, month):
            if prev in now:
                continue
            rec = cat.file(txn, prev)
            if rec is not None and rec.is_current:
                rec.intervals[-1][1] = seq
                cat.put_file(txn, rec)
        for b in bucket:
            if b.committed:
                continue
            rec = cat.file(txn, b.hash) or FileRecord(
                b.hash.hex(),
                b.path,
                b.instrument,
                b.month,
                b.rows,
                b.bytes,
                b.first_day,
                b.last_day,
                [],
            )
            if not rec.is_current:
                rec.intervals.append([seq, None])
            cat.put_file(txn, rec)
            cat.put_days(txn, b.entries)
        cat.set_bucket(txn, inst, month, [f.hash for f in bucket])
    # instruments left without a day: the runs over every instrument held results of
    # them, which the planner cuts (incbt.runs.plan_runs)
    empty = [i for i in sorted(gone) if not cat.days_up_to(txn, i, _AFTER_ANY_DAY, 1)]
    if empty:
        was = cat.removed_instruments(txn)
        cat.put_meta(txn, REMOVED_INSTRUMENTS, sorted(set(was) | set(empty)))
    cat.set_pending(txn, [])
    return seq


@dataclass
class RemoveSummary:
    """What ``incbt remove`` did (or, ``dry_run``, would do): the days taken out of the
    store, per instrument, as one event."""

    days_removed: int = 0
    rows_removed: int = 0
    # (instrument, first day, last day, days) of each instrument with days removed
    removed: list[tuple[str, str, str, int]] = field(default_factory=list)
    emptied: list[str] = field(default_factory=list)  # instruments left with no day
    files_written: int = 0
    seq: int | None = None
    dry_run: bool = False
    seconds: float = 0.0

    def __repr__(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        insts = ", ".join(r[0] for r in self.removed[:5]) + (
            ", ..." if len(self.removed) > 5 else ""
        )
        return (
            f"<RemoveSummary: {verb} {self.days_removed} day(s), {self.rows_removed:,} bars, "
            f"of {len(self.removed)} instrument(s) ({insts})"
            + (f"; {len(self.emptied)} left with no day" if self.emptied else "")
            + ("" if self.seq is None else f"; event {self.seq}")
            + ">"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "days_removed": self.days_removed,
            "rows_removed": self.rows_removed,
            "removed": [list(r) for r in self.removed],
            "emptied": self.emptied,
            "files_written": self.files_written,
        }


@_gc_paused
def remove_days(
    root: str,
    cat: Catalog,
    ranges: Mapping[str, tuple[int, int]],
    *,
    row_group_rows: int,
    lock: Any,
    command: str = "remove",
    dry_run: bool = False,
    progress: Reporter = NULL,
) -> RemoveSummary:
    """Take the days in ``ranges`` (instrument -> (first, last) day, inclusive) out of
    the store, as one event (kind ``remove``) whose changes (kind CHANGE_REMOVED) the
    planner reads as it reads corrections: results over those instruments recompute
    from the first day removed (and, with no day after it, are cut there).

    A bucket holding a removed day gets a new file of its other days (the old file stays
    for ``--as-of`` until ``gc``); a bucket left with none is dropped. Files are written
    and made durable first, then one transaction commits them: a crash leaves the store
    as before or as after. A range holding no day of the store is a NotFoundError.
    """
    t0 = time.perf_counter()
    summary = RemoveSummary(dry_run=dry_run)
    # a dry run reads the catalog only: it never waits for a writer (as update's)
    with contextlib.nullcontext() if dry_run else lock(recover_first=True):
        changes: list[tuple[str, int, int, bytes, bytes, int]] = []
        plans: list[_Plan] = []
        staged: dict[tuple[str, str], list[_File]] = {}
        with cat.env.read() as txn:
            for inst, (lo, hi) in sorted(ranges.items()):
                idx = cat.day_index(txn, inst, lo, hi)
                days = idx.days.tolist()
                if not days:
                    continue
                rows = idx.records["rows"].tolist()
                for d, h in zip(days, idx.records["hash"].tolist(), strict=True):
                    changes.append((inst, d, CHANGE_REMOVED, bytes(h), ZERO_HASH, 0))
                summary.removed.append((inst, day_to_iso(days[0]), day_to_iso(days[-1]), len(days)))
                summary.rows_removed += sum(rows)
                by_month: dict[str, set[int]] = defaultdict(set)
                for d, m in zip(days, month_of(np.array(days, dtype=np.int64)), strict=True):
                    by_month[str(m)].add(d)
                for month, out in sorted(by_month.items()):
                    files = _committed_files(cat, txn, inst, month)
                    touched = [f for f in files if any(e.day in out for e in f.entries)]
                    keep = [f for f in files if all(e.day not in out for e in f.entries)]
                    parts: list[DayEntry | Piece] = sorted(
                        (e for f in touched for e in f.entries if e.day not in out),
                        key=lambda e: e.day,
                    )
                    if parts:  # the month's other days, in a file of their own
                        plans.append(
                            _Plan(
                                inst,
                                month,
                                _file_hash(inst, parts),
                                parts,
                                {f.hash: f.path for f in touched},
                                keep,
                                touched,
                                False,
                            )
                        )
                    else:
                        staged[(inst, month)] = keep
                if (
                    not cat.days_up_to(txn, inst, lo - 1, 1)
                    and not cat.day_index(txn, inst, hi + 1, _AFTER_ANY_DAY).days.size
                ):
                    summary.emptied.append(inst)
        # every instrument named must have days there: one without (a typo among several,
        # say) was passed over while the others' days went (QA 2026-12-07)
        hit = {c[0] for c in changes}
        none = sorted(i for i in ranges if i not in hit)
        if none:
            whole = (iso_to_day("0001-01-01"), _AFTER_ANY_DAY)
            shown = ", ".join(
                i
                if ranges[i] == whole
                else f"{i} from {day_to_iso(ranges[i][0])} to {day_to_iso(ranges[i][1])}"
                for i in none[:5]
            ) + (f" and {len(none) - 5} more" if len(none) > 5 else "")
            # (taken out before: the same command run again once done, QA 2026-12-07)
            raise NotFoundError(
                f"the store holds no bars of {shown}: nothing "
                + ("to remove" if not changes else "was removed (of the others either)")
                + ' (`incbt query "SELECT instrument, min(date), max(date) FROM bars GROUP '
                'BY instrument"` lists what it holds; taken out before? `incbt log --kind '
                "remove` lists what each remove took). Fix: leave "
                + ("them" if len(none) > 1 else "it")
                + " out, or give the days it holds"
            )
        summary.days_removed = len(changes)
        summary.files_written = len(plans)
        if dry_run:
            summary.seconds = time.perf_counter() - t0
            return summary
        written = [p.path for p in plans]
        task = progress.task("writing buckets", len(plans))
        try:
            if written:
                cat.env.write(lambda txn: cat.set_pending(txn, written))
            for plan in plans:
                f = _write_bucket(root, plan, row_group_rows)
                staged[(f.instrument, f.month)] = [*plan.keep, f]
                task.advance()
            new_files = [os.path.join(root, f.path) for f in _flat(staged) if not f.committed]
            sync_files(root, new_files)
            fsync_dir(os.path.join(root, "bars"))
            payload = summary.as_dict()
            summary.seq = cat.env.write(
                lambda txn: _commit(cat, txn, command, None, [], changes, staged, "remove", payload)
            )
        except BaseException:
            if written and summary.seq is None:
                recover(root, cat)  # delete this call's uncommitted files
            raise
        task.done()
    summary.seconds = time.perf_counter() - t0
    return summary
