"""Turning results into text for people: tables, summaries, progress bars (rich)."""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from incbt.errors import QueryError, UsageError

OUTPUTS = ("table", "csv", "json", "parquet")
# No console markup: what is printed is text as written. A strategy's message, a path or
# an instrument name with brackets ("[/data/cal.csv]") was read as markup: stripped, or
# a MarkupError traceback on every later status (found 2026-12-05); styles go through
# :func:`styled`. No emoji codes either: ":100:" in a grid (fast=5:100:5) printed as an
# emoji (QA 2026-12-06). soft_wrap: a line stays one line in a log (80 columns when not
# a terminal cut a failure's line in two: QA 2026-12-05)
err_console = Console(stderr=True, markup=False, emoji=False, soft_wrap=True)


def styled(text: str) -> Text:
    """``text`` with its leading label styled: ``"[red]error:[/red] rest"`` gives "error:"
    in red and the rest exactly as written (never read as markup)."""
    m = re.match(r"\[(\w+)\](.*?)\[/\1\]", text, re.S)
    if m is None:
        return Text(text)
    return Text.assemble((m.group(2), m.group(1)), text[m.end() :])


class RateColumn(ProgressColumn):
    """Items per second (bar-steps/s, files/s), once rich has measured a speed."""

    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        if not speed:
            return Text("", style="progress.data.speed")
        if speed >= 1e6:
            return Text(f"{speed / 1e6:,.1f} M/s", style="progress.data.speed")
        return Text(f"{speed:,.0f}/s", style="progress.data.speed")


class CountColumn(ProgressColumn):
    """ "done/total" in the line's units: millions past ten million (``438.0 M/730.1 M``,
    as the plain lines say it: QA 2026-12-06, the bar showed ``438048000/730080000``)."""

    def render(self, task: Any) -> Text:
        big = max(task.total or 0, task.completed) >= 1e7  # both in one unit
        shown = ["?" if n is None else _amount(n, big) for n in (task.completed, task.total)]
        return Text("/".join(shown), style="progress.download")


class RichTask:
    def __init__(self, progress: Progress, task_id: Any) -> None:
        self.progress, self.task_id = progress, task_id

    def advance(self, n: int = 1) -> None:
        self.progress.advance(self.task_id, n)

    def done(self) -> None:
        self.progress.update(self.task_id, visible=True)


def _amount(n: float, millions: bool | None = None) -> str:
    """A count as lines and bars say it: in millions past ten million (or as told)."""
    if millions is None:
        millions = n >= 1e7
    return f"{n / 1e6:,.1f} M" if millions else f"{n:,.0f}"


def _seconds(t: float) -> str:
    """A time as a progress line says it: a tenth of a second under 10 s (QA: "1 s" at
    0.5 s, an ETA of "0 s")."""
    return f"{t:.1f} s" if t < 10 else f"{t:,.0f} s"


class LineTask:
    """Progress where stderr is not a terminal (a log file, CI, nohup): a plain line every
    ``every`` seconds while the work lasts (counts, percent, rate, ETA), and one when it
    ends if any was printed; a short command prints none."""

    def __init__(self, description: str, total: int | None, every: float) -> None:
        self.description, self.total, self.every = description, total, every
        self.n = 0
        self.t0 = self.last = time.monotonic()
        self.said = False
        self.ended = False
        self.full = False  # its line at its total said (the command going on after it)
        self.lock = threading.Lock()

    def _line(self, now: float) -> str:
        took = now - self.t0
        rate = self.n / took if took > 0 else 0.0
        big = max(self.total or 0, self.n) >= 1e7  # done and total in one unit (QA
        # 2026-12-07: "7,862,400 of 78.6 M"), as the bars say them (CountColumn)
        text = f"{self.description}: {_amount(self.n, big)}"
        if self.total:
            # rounded down: 100% is said at the total alone (QA 2026-12-07: 249 of 250)
            text += f" of {_amount(self.total, big)} ({100 * self.n // self.total}%)"
        text += f", {_amount(rate)}/s, {_seconds(took)}"
        if self.total and rate > 0 and self.n < self.total:
            text += f", ETA {_seconds((self.total - self.n) / rate)}"
        return text

    def advance(self, n: int = 1) -> None:
        with self.lock:
            self.n += n
            self._due()

    def tick(self) -> None:
        """The line, if one is due: called by the reporter's clock, so a line comes every
        ``every`` seconds while one task of the work takes minutes (QA 2026-12-06: the
        first line of a sweep of big tasks came after 70 s with a setting of 1 s)."""
        with self.lock:
            if self.ended:
                return
            if self.total is None or self.n < self.total:
                self._due()
            elif not self.full and time.monotonic() - self.t0 >= self.every:
                # at its total, the command going on past a line's interval (a wide
                # sweep's one commit: QA 2026-12-07, "0 pairs committed" alone for
                # seconds, the bar-steps done before their first line was due): said once
                self.full = True
                self.last = time.monotonic() - self.every
                self._due()

    def _due(self) -> None:
        now = time.monotonic()
        if self.every and now - self.last >= self.every:
            self.last = now
            self.said = True
            err_console.print(self._line(now), highlight=False, soft_wrap=True)

    def done(self) -> None:
        with self.lock:
            self.ended = True
            if self.said:
                err_console.print(
                    self._line(time.monotonic()) + ", done", highlight=False, soft_wrap=True
                )
                self.said = False


class RichReporter:
    """Progress bars on stderr with counts and ETA; where stderr is not a terminal, a
    line every ``progress_seconds`` (a setting) while work lasts (:class:`LineTask`)."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            CountColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err_console,
            disable=not err_console.is_terminal,
        )
        self.lines: list[LineTask] = []
        self._stop = threading.Event()
        self._clock: threading.Thread | None = None

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def _tick(self, every: float) -> None:
        while not self._stop.wait(every):
            for line in list(self.lines):
                line.tick()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.progress.stop()
        if exc[0] is None:  # the work ended: its last line (if it said any)
            for line in self.lines:
                line.done()
        else:  # said by the command (interrupted, failed): no line after it
            for line in self.lines:
                line.ended = True

    def task(self, description: str, total: int | None) -> RichTask | LineTask:
        if self.progress.disable:
            from incbt.settings import resolve

            line = LineTask(description, total, float(resolve("progress_seconds")))
            self.lines.append(line)
            if line.every and self._clock is None:  # the lines' clock, while work lasts
                self._clock = threading.Thread(
                    target=self._tick, args=(min(max(line.every, 0.1), 1.0),), daemon=True
                )
                self._clock.start()
            return line
        return RichTask(self.progress, self.progress.add_task(description, total=total))


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.10g}"
    if isinstance(v, datetime.datetime):  # with its zone when it has one (events: UTC)
        zone = v.tzname() if v.tzinfo is not None else None
        return v.strftime("%Y-%m-%d %H:%M:%S") + (f" {zone}" if zone else "")
    if isinstance(v, bytes | pa.MonthDayNano):  # hex, ISO 8601: as JSON writes them
        return _json_value(v)  # type: ignore[no-any-return]
    if isinstance(v, list | dict):  # a list (array_agg), a struct, a map: JSON text
        return json.dumps(v, default=_json_value)
    return str(v)


def pivot_table(table: pa.Table) -> pa.Table:
    """(row key, column key, value) rows to a wide table: one column per column key."""
    if table.num_columns != 3:
        raise UsageError(
            f"--pivot needs 3 columns (row, column, value), got "
            f"{table.num_columns}: {', '.join(table.column_names)}"
        )
    rk, ck, vk = table.column_names
    # by position: two columns of one name were one key of a row's dict (QA 2026-12-06)
    rows = list(zip(*(c.to_pylist() for c in table.columns), strict=True))
    rkeys = list(dict.fromkeys(r[0] for r in rows))
    # the columns in order (fast=5 before fast=10), NULL last; as they come if they mix
    # kinds that do not compare (QA 2026-12-06: in the order they first appeared)
    ckeys = list(dict.fromkeys(r[1] for r in rows))
    with contextlib.suppress(TypeError):
        ckeys = sorted(ckeys, key=lambda v: (v is None, 0 if v is None else v))
    cell: dict[tuple[Any, Any], Any] = {}
    for r in rows:
        key = (r[0], r[1])
        if key in cell:
            raise UsageError(
                f"--pivot: {rk}={_shown(key[0])}, {ck}={_shown(key[1])} has more than one {vk} "
                f"({cell[key]!r} and {r[2]!r}): make each (row, column) one row, e.g. with "
                "GROUP BY and an aggregate"
            )
        cell[key] = r[2]

    def label(v: Any) -> str:
        if v is None:  # SQL's word (QA 2026-12-06: "b=None")
            return f"{ck}=NULL"
        return f"{ck}={int(v) if isinstance(v, float) and v.is_integer() else v}"

    cols = {rk: rkeys} | {label(c): [cell.get((r, c)) for r in rkeys] for c in ckeys}
    return pa.table(cols)


def _shown(v: Any) -> str:
    """A key as a message shows it: text quoted, a date or a time as ISO text (QA
    2026-12-06: ``date=datetime.date(2024, 1, 1)``)."""
    return repr(v) if isinstance(v, str) else str(v.isoformat() if hasattr(v, "isoformat") else v)


def format_of(path: str) -> str:
    """The output format a file's name says (``x.csv``: csv), else ``table``."""
    return _BY_SUFFIX.get(os.path.splitext(path)[1].lower(), "table")


def write_table(
    table: pa.Table, output: str, path: str | None, title: str | None = None, max_rows: int = 200
) -> None:
    """Write an Arrow table as a rich table, CSV, JSON lines or Parquet.

    ``-o FILE`` with the default table output takes the format the file's name says
    (``.csv``, ``.json``/``.jsonl``, ``.parquet``/``.pq``): ``-o m.parquet`` wrote a
    text table (QA 2026-12-05)."""
    if output not in OUTPUTS:
        raise UsageError(f"--output must be one of {', '.join(OUTPUTS)}, not {output!r}")
    piped = path == "-"  # -o -: standard output (report -o - has it so)
    if piped:
        path = None
    if path and output == "table":
        output = format_of(path)
    if output in ("parquet", "json"):
        _names_apart(table, output)
    if output == "parquet":
        if piped:  # its bytes, for a pipe (`... | python -c 'pq.read_table(stdin)'`)
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            sys.stdout.flush()
            sys.stdout.buffer.write(sink.getvalue().to_pybytes())
            return
        if not path:
            raise UsageError("--output parquet needs -o FILE (- for standard output)")
        with output_file(path) as tmp:
            pq.write_table(table, tmp)
        return
    if output == "csv":  # times as JSON and the table write them (Arrow's own form
        # was "2024-02-01 14:30:00.000000000Z": QA 2026-12-06); NaN stays NaN
        table = _as_text_where_csv_cannot(_for_people(table, nan_as_null=False))
        for k, field in enumerate(table.schema):  # DataFusion's text views (CAST(x AS
            # VARCHAR)), which CSV cannot write (QA 2026-12-08: "Unsupported Type")
            if pa.types.is_string_view(field.type):
                table = table.set_column(k, field.name, table.column(k).cast(pa.string()))
        if path:
            with output_file(path) as tmp:
                pcsv.write_csv(table, tmp)
        else:
            sink = pa.BufferOutputStream()
            pcsv.write_csv(table, sink)
            sys.stdout.write(sink.getvalue().to_pybytes().decode())
        return
    table = _intervals_as_text(_for_people(table, nan_as_null=output == "json"))
    if output == "json":
        write_json_lines(table.to_pylist(), path)
        return
    if path:  # a file asked for: every row, every digit (QA 2026-12-07: the screen's
        # first 200 rows and 10 digits were written, exit 0), as aligned plain text
        with output_file(path) as tmp, open(tmp, "w") as f:
            write_text_table(table, f, title)
        return
    screen = _stdout()
    if not _fits(table.slice(0, max_rows), screen.width):
        # a column each, too many for the width: rich shrank every one to nothing, and
        # 300 columns printed only borders (QA 2026-12-06); a record a column instead,
        # as many side by side as the width takes (QA 2026-12-07: a table each, 29 lines
        # a row of instrument_stats, 580 for its first 20)
        max_rows = min(max_rows, RECORDS_SHOWN)
        part = table.slice(0, max_rows)
        cells = [[_cell(v) for v in col.to_pylist()] for col in part.columns]
        names = part.column_names
        groups = _side_by_side(names, cells, table.num_rows, screen.width)
        tables = [_records(names, cells, ks, table.num_rows, title) for ks in groups]
        hint = "; --output csv for a row a line"
    else:
        t = Table(title=title, show_lines=False)
        for name in table.column_names:
            t.add_column(name, overflow="fold")
        # by position: two columns of one name were one key of a row's dict, and the
        # row's cells shifted under the headers (QA 2026-12-06: `m.fees, d.fees`)
        part = table.slice(0, max_rows)
        for row in zip(*(c.to_pylist() for c in part.columns), strict=True):
            t.add_row(*(_cell(v) for v in row))
        tables, hint = [t], ""
    more = table.num_rows - max_rows

    def show(console: Console) -> None:
        for t in tables:
            console.print(t)
        _print_more(console, more, hint)

    show(screen)


def _text_cell(v: Any) -> str:
    """A cell as a file's text table writes it: a float with every digit (its shortest
    form that reads back the same), the rest as the screen shows them."""
    return repr(v) if isinstance(v, float) else _cell(v)


def write_text_table(table: pa.Table, f: Any, title: str | None = None) -> None:
    """Every row of ``table`` as aligned plain text (a header, a rule, a line a row;
    numbers right-aligned), in slices: rich's tables took 8 s for 20,000 rows."""
    names = table.column_names
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) for t in table.schema.types]
    widths = [len(n) for n in names]
    step = 65536
    for lo in range(0, table.num_rows, step):  # the widths first: a pass over the cells
        for k, col in enumerate(table.slice(lo, step).columns):
            widths[k] = max(widths[k], max((len(_text_cell(v)) for v in col.to_pylist()),
                                           default=0))  # fmt: skip

    def line(cells: Sequence[str]) -> str:
        return " | ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    if title:
        f.write(title + "\n")
    f.write(line(names) + "\n")
    f.write("-+-".join("-" * w for w in widths) + "\n")
    for lo in range(0, table.num_rows, step):
        part = table.slice(lo, step)
        cols = [[_text_cell(v) for v in c.to_pylist()] for c in part.columns]
        f.writelines(line(row) + "\n" for row in zip(*cols, strict=True))


RECORDS_SHOWN = 20  # rows shown one table each when a row does not fit the width


def _fits(table: pa.Table, width: int) -> bool:
    """Whether ``table`` fits ``width`` characters with each column as wide as its
    longest word (its name's or a value's, up to 12) and 3 for its border."""

    def longest(texts: Iterator[str]) -> int:
        return max((len(w) for t in texts for w in t.split()), default=1)

    need = 1
    for name, col in zip(table.column_names, table.columns, strict=True):
        cells = (_cell(v) for v in col.to_pylist())
        need += min(12, max(longest(iter([name])), longest(cells))) + 3
    return need <= width


def _records(
    names: list[str], cells: list[list[str]], rows: list[int], total: int, title: str | None
) -> Table:
    """Rows ``rows`` of a table (its columns' ``names`` and their ``cells`` as shown)
    side by side, a column each ("row K of TOTAL"), the names down the left."""
    t = Table(title=title)
    t.add_column("column", overflow="fold")
    for k in rows:
        t.add_column(f"row {k + 1} of {total}", overflow="fold")
    for name, col in zip(names, cells, strict=True):
        t.add_row(name, *(col[k] for k in rows))
    return t


def _side_by_side(
    names: list[str], cells: list[list[str]], total: int, width: int
) -> list[list[int]]:
    """The rows of a table in groups that fit ``width`` as :func:`_records` shows them
    (a row at least in each; a cell of more than 40 characters folds)."""
    label = max((len(n) for n in names), default=6) + 4
    groups: list[list[int]] = []
    used = label
    for k in range(len(cells[0]) if cells else 0):
        need = min(40, max([len(f"row {k + 1} of {total}"), *(len(c[k]) for c in cells)]))
        if groups and used + need + 3 <= width:
            groups[-1].append(k)
        else:
            groups.append([k])
            used = label
        used += need + 3
    return groups


def _names_apart(table: pa.Table, output: str) -> None:
    """JSON objects and Parquet files need each column's name once: two columns of one
    name lost one in JSON (the later overwrote it) and gave a Parquet file Arrow then
    failed to read by name (QA 2026-12-06: `SELECT m.fees, d.fees ...`)."""
    seen: set[str] = set()
    for name in table.column_names:
        if name in seen:
            n = table.column_names.count(name)
            raise QueryError(
                f"the answer has {n} columns named {name!r}, which --output {output} cannot "
                f"keep apart. Fix: name them apart in the SELECT with AS (e.g. "
                f"`d.{name} AS {name}_2`), or use --output csv or the table"
            )
        seen.add(name)


def _json_value(v: Any) -> Any:
    """What JSON cannot hold as it is: bytes as hex text, an interval as ISO 8601 text
    (QA 2026-12-07: "b'\\x00\\xff'" and [0, 1, 0]), anything else as its text."""
    if isinstance(v, bytes | bytearray):
        return v.hex()
    if isinstance(v, pa.MonthDayNano):
        return _iso_interval(v)
    return str(v)


def _iso_interval(v: Any) -> str:
    """An interval (months, days, nanoseconds) as ISO 8601 text: ``P1M2DT3.5S``."""
    months, days, ns = v
    secs = f"{ns / 1e9:.9f}".rstrip("0").rstrip(".") if ns else ""
    out = "P" + (f"{months}M" if months else "") + (f"{days}D" if days else "")
    out += f"T{secs}S" if secs else ""
    return out if out != "P" else "PT0S"


# Arrow types CSV cannot write (a list from array_agg, a struct, a map, an interval),
# written as their JSON text instead (QA 2026-12-07: "Unsupported Type:list<...>")
def _csv_cannot(t: pa.DataType) -> bool:
    return (
        pa.types.is_nested(t)
        or pa.types.is_interval(t)
        or pa.types.is_duration(t)  # as the screen and JSON write it (0:14:00), not in ns
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    )


def _intervals_as_text(table: pa.Table) -> pa.Table:
    """Interval columns as ISO 8601 text (JSON took each for a list of 3 numbers)."""
    return _as_text_where_csv_cannot(table, pa.types.is_interval)


def _as_text_where_csv_cannot(table: pa.Table, which: Any = _csv_cannot) -> pa.Table:
    for k, field in enumerate(table.schema):
        if which(field.type):
            col = table.column(k)
            text = [None if v is None else _cell(v) for v in col.to_pylist()]
            table = table.set_column(k, field.name, pa.array(text, pa.string()))
    return table


def write_json_lines(rows: list[dict[str, Any]], path: str | None) -> None:
    """Rows as JSON Lines (an object a line), to the file ``path`` or stdout."""
    text = "".join(json.dumps(r, default=_json_value) + "\n" for r in rows)
    if path and path != "-":
        with output_file(path) as tmp, open(tmp, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


@contextlib.contextmanager
def output_file(path: str) -> Iterator[str]:
    """Write the output file ``path`` whole or not at all, where that can be done: a new
    file, or a regular file of one name, gets its content in a file beside it (its mode
    kept), renamed over it once written (a full disk left a csv cut short, an empty json,
    QA 2026-12-06); an error removes that file and names ``path``. Anything else is
    written in place, as the user's path says: a symbolic link's target, a device or a
    pipe (``-o /dev/stdout``), a file of several names, and where no file can be made
    beside it (a read-only folder, a name at the file system's limit)."""
    from incbt.errors import OUTPUTS, WRITTEN

    full = os.path.abspath(os.path.expanduser(path))
    OUTPUTS[full] = True
    try:
        st: os.stat_result | None = os.lstat(full)
    except OSError:
        st = None
    tmp = None
    if st is None or (stat.S_ISREG(st.st_mode) and st.st_nlink == 1):
        beside = os.path.join(os.path.dirname(full), f".{os.path.basename(full)}.incbt-tmp")
        try:
            with contextlib.suppress(FileNotFoundError):
                os.remove(beside)  # one an interrupted write left
            os.close(os.open(beside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            tmp = beside
            if st is not None:
                os.chmod(beside, stat.S_IMODE(st.st_mode))  # a private file stays private
        except OSError as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.remove(tmp)
                tmp = None
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                exc.filename = full
                raise
    target = tmp or full
    OUTPUTS[target] = True
    try:
        yield target
        if tmp is not None:
            os.replace(tmp, full)
        WRITTEN.append(full)
    except BaseException as exc:
        if tmp is not None or st is None:  # the file beside it, or a new one cut short
            with contextlib.suppress(OSError):
                os.remove(target)
        if isinstance(exc, OSError) and getattr(exc, "filename", None) in (tmp, None):
            if exc.errno is not None:
                exc.filename = full  # its name, not the file beside it
            elif "No space left on device" in str(exc):  # Arrow's words, no errno
                raise OSError(errno.ENOSPC, "No space left on device", full) from None
        raise


_BY_SUFFIX = {
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def _for_people(table: pa.Table, nan_as_null: bool) -> pa.Table:
    """The table as JSON and the table output take it: times as ISO 8601 text to the
    nanosecond (``2024-01-01T14:30:00.123456789Z``, whole seconds without a fraction:
    Python's datetime stops at microseconds, and a bar at .123456789 ended the command,
    exit 3), and (``nan_as_null``: JSON, which has no NaN, and strict parsers refused
    the line) NaN or infinite numbers as null. Found by QA 2026-12-05."""
    if not any(
        pa.types.is_timestamp(f.type) or (nan_as_null and pa.types.is_floating(f.type))
        for f in table.schema
    ):  # nothing to do: pyarrow.compute is not loaded for it (~35 ms; incbt._lazy)
        return table
    import pyarrow.compute as pc

    for k, field in enumerate(table.schema):
        col = table.column(k)
        if pa.types.is_timestamp(field.type):
            utc = field.type.tz in ("UTC", "Etc/UTC", "+00:00")
            zone = "" if field.type.tz is None or utc else "%z"
            text = pc.strftime(col, "%Y-%m-%dT%H:%M:%S" + zone)
            text = pc.replace_substring_regex(text, r"\.0+($|[+-])", r"\1")  # RE2: no lookahead
            if utc:
                text = pc.binary_join_element_wise(text, pa.scalar("Z"), "")
            table = table.set_column(k, field.name, text)
        elif nan_as_null and pa.types.is_floating(field.type):
            finite = pc.is_finite(col)
            if not pc.all(finite, skip_nulls=True).as_py():
                table = table.set_column(
                    k, field.name, pc.if_else(finite, col, pa.scalar(None, field.type))
                )
    return table


_MONEY = ("total_pnl", "max_drawdown", "fees", "turnover")
_SUMMARY_COLUMNS = ("total_pnl", "sharpe", "max_drawdown", "fills", "fees", "turnover", "days")


def _number(name: str, v: Any) -> str:
    if v is None:
        return ""
    if name in _MONEY:
        return f"{v:,.2f}"
    if name == "sharpe":
        return f"{v:.3f}"
    return f"{v:,}"


def metric_table(table: pa.Table, title: str, order: Sequence[str] = ()) -> None:
    """A small table of runs for people (a sweep's leaderboard): metric columns
    formatted as in :func:`run_summary`, numbers right-aligned, params as NAME=VALUE
    (those in ``order`` first, in that order: the strategy's)."""
    rank = {k: i for i, k in enumerate(order)}
    t = Table(title=title, show_lines=False)
    numeric = {
        f.name for f in table.schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
    }
    for name in table.column_names:
        t.add_column(name, justify="right" if name in numeric else "left")
    for row in table.to_pylist():
        cells = []
        for name, v in row.items():
            if name == "params" and isinstance(v, str) and v.startswith("{"):
                given = json.loads(v)
                keys = sorted(given, key=lambda k: (rank.get(k, len(rank)), k))
                v = " ".join(f"{k}={given[k]}" for k in keys)
            cells.append(_number(name, v) if name in numeric else _cell(v))
        t.add_row(*cells)
    _stdout().print(t)


def run_summary(metrics: pa.Table, title: str, most: int = 20) -> None:
    """A run's metrics for people: the portfolio, then its instruments (by name), at
    most ``most`` of them: past that, the ``most // 2`` best and worst by total pnl.

    The full table is a query away (the last line says which); printing every
    instrument of a large universe would bury the portfolio, and its rows would cost
    memory that grows with the universe (rich keeps ~25 KB of objects a row).
    """
    rows = metrics.to_pylist()
    run_id = rows[0]["run_id"] if rows else ""
    insts = [r for r in rows if r["scope"] == "instrument"]
    hidden = 0
    if len(insts) > most:
        by_pnl = sorted(insts, key=lambda r: (-r["total_pnl"], r["instrument"]))
        half = most // 2
        hidden = len(insts) - 2 * half
        shown = by_pnl[:half] + [None] + by_pnl[-half:]
    else:
        shown = list(insts)
    t = Table(title=title, show_lines=False)
    t.add_column("instrument")
    for c in _SUMMARY_COLUMNS:
        t.add_column(c, justify="right")
    for r in rows:
        if r["scope"] == "portfolio":
            t.add_row("portfolio", *(_number(c, r[c]) for c in _SUMMARY_COLUMNS), style="bold")
            t.add_section()
    for r in shown:
        if r is None:
            t.add_row(f"... {hidden:,} more", *("" for _ in _SUMMARY_COLUMNS), style="dim")
        else:
            t.add_row(r["instrument"], *(_number(c, r[c]) for c in _SUMMARY_COLUMNS))
    console = _stdout()
    console.print(t)
    if hidden:
        console.print(
            f"{len(insts):,} instruments: the {most // 2} best and worst by total_pnl shown; "
            f"all of them: incbt query \"SELECT * FROM metrics WHERE run_id = '{run_id}'\" "
            "(or --output csv)",
            highlight=False,
            soft_wrap=True,
        )


def _stdout() -> Console:
    """Standard output's console: the terminal's width, or 200 columns into a pipe."""
    return Console(width=None if sys.stdout.isatty() else 200, markup=False, emoji=False)


def _print_more(console: Console, more: int, hint: str = "") -> None:
    if more > 0:
        console.print(f"... {more} more rows (use --output csv for all{hint})")
