"""Big input files, read in parts: an ingest's memory is bounded by its chunk, not a file.

A CSV file bigger than the ingest's chunk (setting ``ingest_chunk_mb``) is read
as consecutive byte ranges of whole lines: in place by the fast CSV reader
(:func:`incbt.bars.inputs.read_csv_range`), or, where it declines them, as a
copy of the header line and the range in a file under the store's ``tmp/``,
read like any CSV file by Arrow's reader; a Parquet file as consecutive runs of
its row groups, or, where a row group is bigger than a part (:class:`ParquetRowParts`),
as a stream of record batches cut in parts. Parts are a quarter chunk
(``incbt.bars.ingest.PARTS_PER_CHUNK``), so a chunk's parts are read on every
core at once (one 297 MiB file, 64 MiB chunks: peak RSS 497 MiB and 2.0 s,
against 1,000 MiB and 2.4 s read whole). Each part is validated on its own, and its
rows and lines are numbered as in the whole file, so messages name the file's
real line or row. What spans parts is checked here (:class:`Stitcher`): each
instrument's ts still increase strictly from one part to the next, and a day
cut by a part boundary is joined into one piece before it is compared with the
store. The bars ingested are the same as the whole file's (tested).

A big compressed CSV file (``.csv.gz``) is cut in parts as it is decompressed
(:class:`GzParts`): each part is written as a CSV file of its own (the header
line and about a quarter chunk of whole lines, cut by the same rule as a plain
file's) under the store's ``tmp/``, read, and removed; the next chunk's parts
are made, on a thread of their own, while this chunk's are read. So a big
``.gz`` needs about three chunks of disk, not its whole decompressed size, and
its messages name the compressed file and its real lines.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import os
import re
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from incbt.bars.fastcsv import is_empty_row
from incbt.bars.inputs import (
    AmbiguousTime,
    InputBars,
    gzip_error,
    order_error,
    read_csv_range,
    read_input,
    resolving_after,
    unreadable_parquet,
)
from incbt.bars.schema import is_parquet
from incbt.errors import BadInputError

_WINDOW = 1 << 16  # bytes looked at for the header, and for blank lines at the end


@dataclass(frozen=True)
class Part:
    """Part ``index`` of ``count`` of a file: CSV bytes or Parquet row groups [start, end)."""

    path: str
    # "csv" | "parquet"; made as they are read: "csv-file" (a file of its own under
    # tmp/), "parquet-rows" (the rows in memory, a table)
    kind: str
    index: int
    count: int
    start: int
    end: int
    size: int  # bytes: of the CSV range; of the row groups, uncompressed
    header_end: int = 0  # CSV: the header line is bytes [0, header_end)
    name: str = ""  # the file as messages name it, if not ``path`` (a .csv.gz's part)
    # a part of a .csv.gz made as it is decompressed (kind "csv-file": ``path`` is a
    # whole CSV file of its own): how many there are is known only at the last one
    final: bool | None = None
    # kind "parquet-rows": [the table], emptied once read (the part itself is kept
    # until its chunk is written: its rows need not be)
    rows: list[Any] = dataclasses.field(default_factory=list, compare=False, repr=False)

    @property
    def last(self) -> bool:
        return self.final if self.final is not None else self.index + 1 == self.count

    @property
    def shown(self) -> str:
        return self.name or self.path


def split(path: str, budget: int, name: str = "") -> list[Part] | None:
    """The parts of a file bigger than ``budget`` bytes; None to read it whole.
    ``name``: the file messages name (``path`` is a plain copy of a ``.csv.gz``)."""
    if os.path.getsize(path) <= budget:
        return None
    if is_parquet(path):
        parts = _parquet_parts(path, budget)
    elif path.lower().endswith(".csv"):
        parts = _csv_parts(path, budget)
    else:
        return None
    return None if parts is None else [dataclasses.replace(p, name=name) for p in parts]


class GzParts:
    """The parts of a big ``.csv.gz`` file, made as it is decompressed (a stream).

    Iterating writes each part under ``scratch`` (the header line, then whole lines:
    cut after the first line that is not blank past ``budget`` bytes, unless only
    blank lines follow, as :func:`split` cuts a plain file) and yields it once the
    next is known to exist or not (``Part.final``). The reader removes a part once
    read (:func:`read_part`), so what is on disk is the parts not read yet.
    ``advance``: told the compressed bytes read, as they are (a progress bar).
    """

    BLOCK = 1 << 20  # bytes decompressed at a time

    def __init__(
        self,
        path: str,
        scratch: str,
        budget: int,
        tag: str,
        advance: Callable[[int], None] | None = None,
    ) -> None:
        self.path, self.scratch, self.budget, self.tag = path, scratch, max(1, budget), tag
        self.advance = advance

    def __iter__(self) -> Iterator[Part]:
        os.makedirs(self.scratch, exist_ok=True)
        with open(self.path, "rb") as raw, gzip.GzipFile(fileobj=raw) as src:
            done = 0

            def more() -> bytes:
                nonlocal done
                try:  # only reading is the input's fault: a full disk is not (raised as is)
                    block = src.read(self.BLOCK)
                except (OSError, EOFError, zlib.error) as exc:
                    raise gzip_error(self.path, exc) from None
                if self.advance is not None:
                    now = raw.tell()
                    self.advance(now - done)
                    done = now
                return block

            buf = bytearray()
            eof = False
            while not eof and len(buf) < _WINDOW:
                block = more()
                eof = not block
                buf += block
            nl = buf.find(b"\n", 0, _WINDOW)
            if nl < 0 or buf[:nl].count(b'"') % 2:
                header = b""  # no header line in reach (or quoted past it): one part, whole
            else:
                header = bytes(buf[: nl + 1])
                del buf[: nl + 1]
            index = 0
            while True:
                part = os.path.join(self.scratch, f"{self.tag}-{index:06d}.csv")
                with open(part, "wb") as out:
                    out.write(header)
                    written = 0  # of this part's lines: what lies before its budget goes
                    cut: int | None = None  # out at once, so memory holds about a block
                    while header:
                        found = _cut_in(buf, self.budget - written, eof)
                        if found != -1:
                            cut = found
                            break
                        n = min(len(buf), max(0, self.budget - written))
                        if n:
                            out.write(buf[:n])
                            del buf[:n]
                            written += n
                        block = more()
                        eof = not block
                        buf += block
                    if cut is not None:
                        out.write(buf[:cut])
                        del buf[:cut]
                    else:  # the last part: the rest, as it comes
                        out.write(buf)
                        buf.clear()
                        while not eof:
                            block = more()
                            eof = not block
                            out.write(block)
                size = os.path.getsize(part)
                yield Part(
                    part, "csv-file", index, 0, len(header), size, size, len(header),
                    self.path, final=cut is None,
                )  # fmt: skip
                if cut is None:
                    return
                index += 1


class ParquetRowParts:
    """The parts of a Parquet file with a row group bigger than a part, made as it is
    read (a stream of record batches: a row group is decoded a page at a time, so a
    file written as one huge row group is not read whole).

    Iterating yields each part (about ``budget`` bytes of rows, in file order, every
    column as it is, in memory: no copy on disk) once the next is known to exist or
    not; the rows of a chunk's parts are what the chunk holds, as for other parts.
    """

    def __init__(self, path: str, budget: int) -> None:
        self.path, self.budget = path, max(1, budget)

    def __iter__(self) -> Iterator[Part]:
        try:
            # buffered reads: a column chunk is read as its pages are decoded, not whole
            pf = pq.ParquetFile(self.path, buffer_size=1 << 20, pre_buffer=False)
            meta = pf.metadata
            nbytes = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
            rows = max(1, self.budget * meta.num_rows // max(1, nbytes))
            batches = pf.iter_batches(batch_size=min(rows, 1 << 16), use_threads=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise unreadable_parquet(self.path, exc) from None
        held: list[pa.RecordBatch] = []
        n = 0
        index = 0
        pending: pa.Table | None = None  # a part made, yielded once the next is known
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowInvalid, OSError) as exc:
                raise unreadable_parquet(self.path, exc) from None
            if batch is not None:
                held.append(batch)
                n += batch.num_rows
            if (batch is None or n >= rows) and (held or pending is None):
                if pending is not None:
                    yield self._part(pending, index - 1, final=False)
                pending = pa.Table.from_batches(held, schema=pf.schema_arrow)
                held, n = [], 0
                index += 1
            if batch is None:
                assert pending is not None
                yield self._part(pending, index - 1, final=True)
                return

    def _part(self, table: pa.Table, index: int, final: bool) -> Part:
        return Part(
            self.path, "parquet-rows", index, 0, 0, 1, table.nbytes, final=final, rows=[table]
        )


def big_row_groups(path: str, budget: int) -> bool:
    """Whether a Parquet file has a row group bigger than ``budget`` bytes (read in
    parts, it is streamed: :class:`ParquetRowParts`); False for a file it cannot read
    (read whole, its reader words the error)."""
    try:
        meta = pq.ParquetFile(path).metadata
    except Exception:  # noqa: BLE001
        return False
    return any(meta.row_group(g).total_byte_size > budget for g in range(meta.num_row_groups))


def _cut_in(buf: bytearray, budget: int, eof: bool) -> int | None:
    """Where a CSV part is cut (a plain file's by :func:`_cut_at`, a ``.csv.gz``'s as it
    is decompressed by :class:`GzParts`): after the first line that is not blank and
    ends past its budget, unless only blank lines follow. ``buf``: the rest of a part's
    lines, of which ``budget`` bytes remain before its budget. Returns an offset in
    them; None for no cut (the rest is one part); -1: more bytes needed."""
    if len(buf) <= budget:
        return None if eof else -1
    j = buf.find(b"\n", budget)  # the rest of the line the budget falls in
    if j < 0:
        return None if eof else -1
    pos = j + 1
    while True:
        if pos >= len(buf):
            return None if eof else -1
        k = buf.find(b"\n", pos)
        if k < 0:
            return None if eof else -1  # at the end: an unterminated last line, no cut
        line = buf[pos : k + 1]
        pos = k + 1
        if not is_empty_row(bytes(line)):  # (as the readers tell rows after the last bar)
            break
    if len(buf) < pos + _WINDOW and not eof:
        return -1
    if all(is_empty_row(x) for x in bytes(buf[pos : pos + _WINDOW]).split(b"\n")):
        return None  # only empty rows after it: they end the file, and stay in its part
    return pos


def _parts(
    path: str, kind: str, cuts: list[int], sizes: list[int], header_end: int = 0
) -> list[Part] | None:
    n = len(cuts) - 1
    if n < 2:
        return None
    return [Part(path, kind, k, n, cuts[k], cuts[k + 1], sizes[k], header_end) for k in range(n)]


def _csv_parts(path: str, budget: int) -> list[Part] | None:
    """Cut after a line that is not blank, so blank lines are never at a part's end
    (where they would pass for blank lines after the last bar: they start the next
    part instead, and are refused there with their line)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        start = _header_end(f.read(_WINDOW))
        if start is None:
            return None
        cuts = [start]
        while size - cuts[-1] > budget:
            cut = _cut_at(f, cuts[-1] + budget)
            if cut is None:
                break
            cuts.append(cut)
    cuts.append(size)
    return _parts(
        path, "csv", cuts, [b - a for a, b in zip(cuts[:-1], cuts[1:], strict=True)], cuts[0]
    )


def _cut_at(f: Any, target: int) -> int | None:
    """Where a plain file's part whose budget ends at ``target`` is cut (:func:`_cut_in`
    over the file's bytes from there, read a window at a time), or None: no more cuts."""
    f.seek(target)
    window = bytearray()
    eof = False
    while True:
        found = _cut_in(window, 0, eof)
        if found != -1:
            return None if found is None else target + found
        block = f.read(_WINDOW)
        eof = not block
        window += block


def _parquet_parts(path: str, budget: int) -> list[Part] | None:
    try:
        meta = pq.ParquetFile(path).metadata
    except Exception:  # noqa: BLE001 - read whole: its reader words the error
        return None
    cuts, sizes, size = [0], [], 0
    for g in range(meta.num_row_groups):
        b = meta.row_group(g).total_byte_size
        if size and size + b > budget:
            cuts.append(g)
            sizes.append(size)
            size = 0
        size += b
    cuts.append(meta.num_row_groups)
    sizes.append(size)
    return _parts(path, "parquet", cuts, sizes)


def read_part(
    part: Part,
    mapping: Any,
    tz: str | None,
    use_threads: bool,
    scratch: str,
    ts_unit: str = "ns",
    instrument: str | None = None,
    ts_format: str | None = None,
    decimal: str | None = None,
    before: dict[str, int] | None = None,
    header: Any = None,
) -> InputBars:
    """One part, validated as a file of its own (rows and lines numbered from its first
    bar: :meth:`Stitcher.number` renumbers them, and :meth:`Stitcher.renumbered` its
    errors, once the parts before it are read). ``scratch``: the folder for a CSV
    part's copy (under the store's ``tmp/``, which the next writer empties after a
    crash).

    A part whose naive times start in the hour an autumn change repeats raises
    :class:`AmbiguousTime` read alone (``before`` None: parts are read at once, so the
    parts before it may not be read yet), and is read again once they are, with
    ``before``, each instrument's last instant in them (:meth:`Stitcher.before`): the
    bars are the whole file's (QA 2026-12-07). Its rows are kept for that reading.
    ``header``: the fields of a file without a header line (--header; such a file is not
    cut in parts, only its first lines read again: :func:`first_error`)."""

    def read(path: str, **where: Any) -> InputBars:
        with resolving_after(before or {}):
            return read_input(
                path,
                mapping,
                tz,
                use_threads,
                ts_unit=ts_unit,
                instrument=instrument,
                ts_format=ts_format,
                decimal=decimal,
                header=header,
                **where,
            )

    if part.kind == "parquet":
        return read(part.path, row_groups=(part.start, part.end))
    if part.kind == "parquet-rows":
        rows = part.rows.pop()
        try:
            return read(part.path, rows=rows)
        except AmbiguousTime:
            if before is None:  # read again after the parts before it
                part.rows.append(rows)
            raise
        except BadInputError:  # its bars before the bad one are read again (first_error)
            part.rows.append(rows)
            raise
    if part.kind == "csv-file":  # a part of a .csv.gz, a file of its own: gone once read
        again = False  # (or kept to be read again after the parts before it, or its
        # lines before a bad one: Stitcher.first_error; the ingest's end removes it)
        try:
            return read(part.path)
        except AmbiguousTime:
            again = before is None
            raise
        except BadInputError:
            again = True
            raise
        finally:
            if not again:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(part.path)
    plain = ts_format is None and header is None and "+" not in dict(mapping or {}).get("ts", "")
    if not tz and ts_unit == "ns" and instrument is None and plain:  # in place, where the
        # fast reader takes the lines
        inp = read_csv_range(part.path, part.header_end, part.start, part.end, mapping)
        if inp is not None:
            return inp
    with _csv_copy(part, scratch) as tmp:
        return read(tmp)


@contextlib.contextmanager
def _csv_copy(part: Part, scratch: str) -> Any:
    """The header line and the part's lines, as a temporary CSV file."""
    os.makedirs(scratch, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="part-", suffix=".csv", dir=scratch)
    try:
        with os.fdopen(fd, "wb") as out, open(part.path, "rb") as src:
            out.write(src.read(part.header_end))
            out.flush()
            _copy_range(src.fileno(), out.fileno(), part.start, part.end - part.start)
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def _copy_range(src: int, dst: int, offset: int, count: int) -> None:
    """Bytes [offset, offset + count) of ``src`` appended to ``dst``, in the kernel
    where it can (no copy through this process's memory)."""
    while count > 0:
        try:
            n = os.copy_file_range(src, dst, min(count, 1 << 30), offset)
        except OSError:
            n = 0
        if n <= 0:  # not supported here (or across these file systems): through a buffer
            os.lseek(src, offset, os.SEEK_SET)
            while count > 0:
                block = os.read(src, min(count, 1 << 24))
                if not block:
                    return
                os.write(dst, block)
                count -= len(block)
            return
        offset += n
        count -= n


def whole_csv(path: str, header: bool = True) -> Part | None:
    """A plain CSV file (a header line, then bars; ``header`` False: bars from its first
    line, --header) as one part: what :func:`first_error` reads the first lines of
    (None: not one, say its header line is not in reach)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            start = _header_end(f.read(_WINDOW)) if header else 0
    except OSError:  # (its reading said why it cannot be read)
        return None
    return None if start is None else Part(path, "csv", 0, 1, start, size, size - start, start)


def _header_end(head: bytes) -> int | None:
    """Where a CSV file's header line ends, given its first bytes (None: no header line
    in reach, or one quoted past its newline)."""
    nl = head.find(b"\n")
    return None if nl < 0 or head[:nl].count(b'"') % 2 else nl + 1


def prefix(part: Part, bars: int) -> Part | None:
    """The first ``bars`` bars of a part, as a part of their own (None: none, or not as
    many): its first lines of a CSV file (a ``.csv.gz``'s part too: a file of its own,
    its header line first), its first rows of a Parquet file's."""
    if bars <= 0:
        return None
    if part.kind in ("csv", "csv-file"):
        try:
            with open(part.path, "rb") as f:
                f.seek(part.start)
                data = f.read(part.end - part.start)
        except OSError:  # (its reading said why it cannot be read)
            return None
        ends = np.flatnonzero(np.frombuffer(data, np.uint8) == ord("\n"))  # (a Python
        if len(ends) < bars:  # loop of find() took ~0.4 s for 1.4 M lines: QA 2026-12-07)
            return None
        return dataclasses.replace(
            part, kind="csv", end=part.start + int(ends[bars - 1]) + 1, rows=[]
        )
    if part.kind == "parquet":
        try:
            table = pq.ParquetFile(part.path).read_row_groups(range(part.start, part.end))
        except (pa.ArrowInvalid, OSError):
            return None
    elif part.rows:
        table = part.rows.pop()  # let go: the part is read (first_error)
    else:
        return None
    if table.num_rows < bars:
        return None
    return dataclasses.replace(part, kind="parquet-rows", rows=[table.slice(0, bars)])


def first_error(
    e: BadInputError,
    part: Part,
    read: Callable[[Part], InputBars],
    row_base: int = 0,
    check: Callable[[InputBars], None] | None = None,
) -> BadInputError:
    """The first bad bar of ``part`` (a whole file's too, as one part), given ``e``, the
    error reading it raised (numbered in the part), in the file's numbering.

    Reading stops at a line it cannot read (a field that is not a number, a line cut
    short) before any bar is checked against the rules (SEMANTICS.md "Bars"), so a bar
    that breaks one on an earlier line was not the one named (QA 2026-12-07). So the
    bars before ``e``'s are read again (``read``), until they read clean: the error of
    the last that did not is the first. ``check``: raises what the clean bars before it
    break beyond the part (a big file's parts before it), an error already numbered as
    the file's. A bar that breaks a rule is the first of its part's rules already (the
    rules are checked over every bar), so only ``check`` is left to look at for it."""
    csv = not part.kind.startswith("parquet")
    try:
        while not isinstance(e, AmbiguousTime):
            at = e.line if csv else e.row
            if at is None or (e.rule and check is None):
                break
            sub = prefix(part, at - (1 + (part.header_end > 0) if csv else 1))  # (a line
            # 1 that is a bar where the file has no header line: --header)
            if sub is None:
                break
            try:
                inp = read(sub)
            except BadInputError as earlier:  # on a line before e's, or e's reading alone
                now = earlier.line if csv else earlier.row  # (which is no error: as it is)
                if now is None or now >= at:
                    break
                e = earlier
                continue
            if check is not None:
                try:
                    check(inp)
                except BadInputError as earlier:
                    return earlier
            break
        return _renumbered(e, part, row_base)
    finally:
        part.rows.clear()  # a streamed part's rows, kept for this: let go


def _renumbered(e: BadInputError, part: Part, row_base: int) -> BadInputError:
    """The error a part's reading raised, naming the whole file's line or row."""
    csv = not part.kind.startswith("parquet")
    unit = "line" if csv else "row"
    first = 2 if csv else 1  # the first bar's number in a file of its own

    def shift(n: int | None) -> int | None:
        return n + row_base if n is not None and n >= first else n

    problem = re.sub(rf"\b{unit} (\d+)", lambda m: f"{unit} {shift(int(m.group(1)))}", e.problem)
    out = BadInputError(
        problem,
        file=part.shown,
        line=shift(e.line),
        row=shift(e.row),
        instrument=e.instrument,
        value=e.value,
        fix=e.fix,
    )
    out.rule = e.rule
    return out


class Stitcher:
    """What spans the parts of a file: ts order per instrument, and days cut in two."""

    def __init__(self, piece: Callable[[str, int, InputBars], Any]) -> None:
        # (instrument, day, bars of that day alone) -> a Piece hashed with the store's
        # day hash (a day joined or held is made anew: incbt.bars.ingest)
        self.piece = piece
        self.rows: dict[str, int] = {}  # file -> rows read in its earlier parts
        self.last: dict[str, dict[str, tuple[int, dict[str, int]]]] = {}  # ts, where
        self.held: dict[str, dict[str, Any]] = {}  # file -> instrument -> its last day's piece
        # file -> instrument -> its last ts in the parts numbered (read, in file order),
        # and where that bar is (its line or row in the file): as ``last`` has them
        self.ends: dict[str, dict[str, tuple[int, dict[str, int]]]] = {}

    def number(self, part: Part, inp: InputBars) -> None:
        """Number a part's rows as in the whole file (the parts before it are numbered)."""
        base = self.rows.get(part.shown, 0)
        inp.source = part.shown
        inp.rows += base
        self.rows[part.shown] = base + len(inp)
        ends = self.ends.setdefault(part.shown, {})
        if len(inp):  # sorted by (instrument, ts): each instrument's last bar
            last = np.flatnonzero(np.append(inp.codes[1:] != inp.codes[:-1], True))
            ends.update(
                (inp.names[inp.codes[i]], (int(inp.ts[i]), inp.where(i))) for i in last.tolist()
            )
        if part.last:
            del self.ends[part.shown]

    def before(self, part: Part) -> dict[str, int] | None:
        """Each instrument's last ts in the parts before ``part`` (numbered already);
        None for a file's first part (whose repeated hour nothing before can place)."""
        if not self.rows.get(part.shown):
            return None
        return {name: ts for name, (ts, _) in self.ends.get(part.shown, {}).items()}

    def renumbered(self, e: BadInputError, part: Part) -> BadInputError:
        """A part's error, naming the line or row of the whole file."""
        return _renumbered(e, part, self.rows.get(part.shown, 0))

    def first_error(
        self, e: BadInputError, part: Part, read: Callable[[Part], InputBars]
    ) -> BadInputError:
        """The file's first bad bar, given ``e``, the first that reading ``part`` alone
        found: :func:`first_error`, and the part's bars before it compared with the parts
        before (an instrument's first bar here going back against them is not one the
        part alone can see: QA 2026-12-07, read whole that line was named, in parts the
        later one)."""
        base = self.rows.get(part.shown, 0)

        def before_it(inp: InputBars) -> None:
            if not base:  # a file's first part: nothing before it
                return
            inp.source, inp.rows = part.shown, inp.rows + base
            self._check_order(part, inp, self.ends.get(part.shown, {}))

        return first_error(e, part, read, base, before_it)

    def feed(self, part: Part, inp: InputBars, pieces: list[Any]) -> list[Any]:
        """The pieces of this part that are whole days, with days joined across parts."""
        last = self.last.setdefault(part.shown, {})
        held = self.held.setdefault(part.shown, {})
        self._check_order(part, inp, last)
        out: list[Any] = []
        by_inst: dict[str, list[Any]] = {}
        for p in pieces:
            by_inst.setdefault(p.instrument, []).append(p)
        for inst, ps in by_inst.items():
            prev = held.pop(inst, None)
            if prev is not None:
                if prev.day == ps[0].day:
                    ps[0] = self.piece(inst, ps[0].day, _joined(prev, ps[0]))
                else:
                    out.append(prev)
            out.extend(ps[:-1])
            if part.last:
                out.append(ps[-1])
            else:  # its last day may go on in the next part: a copy waits (not the part)
                held[inst] = self.piece(inst, ps[-1].day, _joined(None, ps[-1]))
            end = ps[-1].end - 1
            last[inst] = (int(ps[-1].src.ts[end]), ps[-1].src.where(end))
        if part.last:
            out.extend(held.values())
            held.clear()
            del self.last[part.shown]
        return out

    def _check_order(self, part: Part, inp: InputBars, last: dict[str, Any]) -> None:
        """Each instrument's first bar here comes after its last bar in the parts before."""
        if not last or not len(inp):
            return
        firsts = np.flatnonzero(np.concatenate(([True], inp.codes[1:] != inp.codes[:-1])))
        bad = []
        for i in firsts.tolist():
            name = inp.names[inp.codes[i]]
            if name in last and inp.ts[i] <= last[name][0]:
                bad.append((int(inp.rows[i]), i, name))
        if not bad:
            return
        _, i, name = min(bad)
        prev_ts, prev_where = last[name]
        raise order_error(
            part.shown, inp.where(i), prev_where, name, int(inp.ts[i]), prev_ts, inp.tz
        )


def _joined(a: Any, b: Any) -> InputBars:
    """The bars of one day from two pieces (``a`` first; None: ``b`` alone), in arrays
    of their own (not views that would keep a whole part)."""
    parts = [x for x in (a, b) if x is not None]
    n = sum(x.end - x.start for x in parts)
    return InputBars(
        source=b.src.source,
        kind=b.src.kind,
        names=[b.instrument],
        codes=np.zeros(n, np.int32),
        block=np.concatenate([x.src.block[:, x.start : x.end] for x in parts], axis=1),
        rows=np.concatenate([x.src.rows[x.start : x.end] for x in parts]),
    )
