"""The ``incbt`` command: parse options, call the Python API, render.

Every error is turned into one line and an exit code here, in :func:`main`:
1 for bad input or a store problem, 2 for bad usage, 3 for a bug.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import gc as pygc
import io
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Annotated, Any

import typer

from incbt import store as store_mod
from incbt.catalog.lock import held_by
from incbt.errors import (
    BARS_LOST_FIX,
    STDOUT,
    WRITTEN,
    DataNoteWarning,
    IncbtError,
    NotFoundError,
    QueryError,
    StrategyError,
    StrategyFailureWarning,
    UsageError,
    map_dependency_error,
)
from incbt.queries import coerce
from incbt.render import (
    RichReporter,
    err_console,
    format_of,
    metric_table,
    run_summary,
    styled,
    write_json_lines,
    write_table,
)

app = typer.Typer(
    name="incbt",
    help="incbt: an incremental, event-sourced backtest store for minute bars.\n\n"
    "Data lives in a store folder (--store, $INCBT_STORE, default ./store). "
    "Start with `incbt init`, `incbt generate`, `incbt ingest`, `incbt query`.\n\n"
    "Exit codes: 0 done; 1 bad input, something named that is not there, a store "
    "problem, or a Ray cluster that stops answering; 2 bad usage; 3 a bug; 75 the store "
    "is busy (retry); 130 Ctrl-C; 143 SIGTERM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store", envvar="INCBT_STORE", help="Store folder (default ./store).", show_default=False
    ),
]
# every kind of event the log holds (incbt.catalog's append_event callers)
OutputOpt = Annotated[str, typer.Option("--output", help="table, csv, json or parquet.")]


def _out_file(value: str | None) -> str | None:
    """``-o``: ``-`` is standard output, as ``report -o -`` has it (QA 2026-12-06: a file
    named ``-``); an empty name is refused (it printed to the screen, exit 0)."""
    if value is None:
        return None
    if not value.strip():
        raise typer.BadParameter(
            f"{value!r} names no file: give a file, - for standard output, or leave -o out"
        )
    return value


OutFileOpt = Annotated[
    str | None,
    typer.Option("-o", "--out", help="Write to FILE (-: standard output).", callback=_out_file),
]
# the commands that print a report and a table: with --output csv or json, stdout holds
# the table alone (one kind of row), and what is said about it goes to stderr
PrintOpt = Annotated[
    str,
    typer.Option(
        "--output",
        help="table, or csv / json (stdout: the rows alone; the rest goes to stderr).",
    ),
]


def _printed(output: str) -> bool:
    """Check a --output of a command that prints; True: csv or json (rows on stdout)."""
    if output not in ("table", "csv", "json"):
        raise UsageError(
            f"--output {output!r}: give table, csv or json (to write a file of rows, "
            "`incbt query ... --output parquet -o FILE`)"
        )
    return output != "table"


def _say(text: str, machine: bool) -> None:
    """A line of the report: on stdout for people, on stderr beside csv/json rows."""
    typer.echo(text, err=machine)


class _State:
    store_path: str = store_mod.DEFAULT_STORE


state = _State()


def _version(asked: bool) -> None:
    if asked:
        import incbt

        typer.echo(f"incbt {incbt.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    store: StoreOpt = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Say incbt's version and stop."
        ),
    ] = False,
) -> None:
    if store is not None and not store.strip():
        raise UsageError("--store (or INCBT_STORE) is empty: give the store's folder")
    state.store_path = os.path.expanduser(store) if store else store_mod.default_path()
    _unknown_variables()


def _unknown_variables() -> None:
    """An ``INCBT_`` variable incbt does not read is said, with the closest it reads
    (QA 2026-12-06: a misspelled one, INCBT_LOCK_TIMOUT say, was ignored without a word)."""
    from incbt.settings import unknown_variables

    for line in unknown_variables():
        err_console.print(styled(f"[yellow]note:[/yellow] {line}"), highlight=False)


class _BarsIfNeeded:
    """A reporter that starts drawing (a RichReporter) only when a task is reported."""

    def __init__(self) -> None:
        self.rich: RichReporter | None = None

    def task(self, description: str, total: int | None) -> Any:
        if self.rich is None:
            self.rich = RichReporter().__enter__()
        return self.rich.task(description, total)

    def close(self) -> None:
        if self.rich is not None:
            self.rich.__exit__(None, None, None)


def _open() -> store_mod.Store:
    bars = _BarsIfNeeded()  # the catalog's upgrade, if the store is of an older format
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always", UserWarning)
            st = store_mod.open_store(state.store_path, progress=bars)
    finally:
        bars.close()
    for w in said:  # an INCBT_ variable asking to change a setting the store fixed
        err_console.print(styled(f"[yellow]note:[/yellow] {w.message}"), highlight=False)
    return st


def _exec_options(notional: float | None, fee_bps: float | None, slippage: float | None) -> None:
    """--notional, --fee-bps, --slippage-bps out of range: bad usage (exit 2) like any
    option's (they were exit 1, as a strategy's parameter: found 2026-12-05)."""
    from incbt.engine import exec_params_from_dict

    given = {"notional": notional, "fee_bps": fee_bps, "slippage_bps": slippage}
    for k, v in given.items():
        if v is None:
            continue
        try:
            exec_params_from_dict({k: v})
        except StrategyError as exc:
            flag = "--" + k.replace("_", "-")
            raise UsageError(f"{flag} {v:g}: {str(exc).removeprefix('execution: ')}") from None


def _instrument_list(instruments: str | None) -> list[str] | None:
    """``--instruments A,B`` as names; None when the option is not given. A name holding
    a comma is quoted as in a CSV line: ``--instruments '"X,Y",Z'``."""
    if instruments is None:
        return None
    import csv

    row = next(csv.reader([instruments], skipinitialspace=True), [])
    names = [x.strip() for x in row if x.strip()]
    if not names:
        raise UsageError(
            f"--instruments {instruments!r} names no instrument: give names separated by "
            "commas, or --all"
        )
    return names


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values or []:
        if "=" not in v:
            raise UsageError(f"{what} takes NAME=VALUE, got {v!r}")
        k, _, val = (x.strip() for x in v.partition("="))
        if not k:
            raise UsageError(f"{what} takes NAME=VALUE, got {v!r} (no NAME)")
        if not val:
            raise UsageError(f"{what} takes NAME=VALUE, got {v!r} (no VALUE)")
        if k in out and out[k] != val:
            raise UsageError(f"{what} {k} is given twice ({out[k]!r} and {val!r}): give it once")
        out[k] = val
    return out


@app.command()
def init(
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz", help="Session time zone: a bar's trading day is its date there (default UTC)."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Store setting NAME=VALUE (see `incbt settings`)."),
    ] = None,
) -> None:
    """Create a store (no-op on an existing store with the same settings)."""
    values: dict[str, object] = dict(_pairs(set_, "--set"))
    if tz is not None:  # '' made a UTC store (QA 2026-12-07)
        if not tz.strip():
            raise UsageError(
                f"--tz {tz!r}: give a time zone's name (e.g. America/New_York), or leave it "
                "out for UTC"
            )
        if "session_tz" in values and values["session_tz"] != tz:  # one was dropped unsaid
            raise UsageError(  # (QA 2026-12-05)
                f"--tz {tz} and --set session_tz={values['session_tz']}: give the session "
                "time zone once"
            )
        values["session_tz"] = tz
    st = store_mod.init(state.store_path, **values)
    typer.echo(f"store ready at {st.path} (session_tz={st.settings['session_tz']})")


@app.command()
def settings(output: OutputOpt = "table", out: OutFileOpt = None) -> None:
    """Every setting: its value here, where that comes from, its default and help.

    The values are the store's; with no store there yet, those a new one would take."""
    import pyarrow as pa

    from incbt.settings import explain

    path = state.store_path
    stored = None
    if store_mod.is_store(path):
        stored = _open().settings_stored
        title = f"settings of store {os.path.abspath(path)}"
    elif os.path.lexists(path) and not os.path.isdir(path):
        _open()  # a file is no store, nor can one be made there: said as for any command
        return
    else:
        title = f"settings for a new store (no store at {path})"
        if store_mod.foreign_files(path):  # QA 2026-12-07: as if init could make one there
            title = (
                f"settings a new store would take (no store at {path}: a folder with other "
                "files in it, where `incbt init` makes none; use an empty folder)"
            )
    if (format_of(out) if out and output == "table" else output) == "json":
        # numbers as numbers (a table's column holds one type: text there); QA 2026-12-05
        write_json_lines(explain(stored, as_text=False), out)
        return
    write_table(pa.Table.from_pylist(explain(stored)), output, out, title=title)


@app.command()
def generate(
    out: Annotated[str, typer.Argument(help="Folder to write the files to.")],
    instruments: Annotated[int, typer.Option(help="Number of instruments.")] = 10,
    days: Annotated[int, typer.Option(help="Number of trading days (weekdays).")] = 20,
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")] = "2024-01-01",
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 0,
    format: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Only write days on or after this date (the walk still starts at --start).",
        ),
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Only write days on or before this date.")
    ] = None,
    revise: Annotated[
        list[str] | None,
        typer.Option(
            help="Write a corrected version of this day (repeatable), as a data vendor would."
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="One file per day, month, or one.")] = "day",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say which files it would write; write none.")
    ] = False,
) -> None:
    """Write deterministic synthetic 1-minute bars (390 a day, weekdays)."""
    from incbt.bars.generate import BARS_PER_DAY, days_written
    from incbt.bars.generate import generate as gen
    from incbt.bars.schema import is_input  # what `incbt ingest FOLDER` reads

    here = os.listdir(out) if os.path.isdir(out) else []
    before = {f for f in here if is_input(f)}
    with RichReporter() as rep:
        files = gen(
            out,
            instruments=instruments,
            days=days,
            start=start,
            seed=seed,
            fmt=format,
            from_day=from_,
            to_day=to,
            revise=revise or [],
            split=split,
            progress=rep,
            dry_run=dry_run,
        )
    if not dry_run:
        WRITTEN.extend(files)
    n, first, last = days_written(start, days, from_, to)
    span = first if n == 1 else f"{first} to {last}"
    names = os.path.basename(files[0]) + (
        "" if len(files) == 1 else f" ... {os.path.basename(files[-1])}"
    )
    typer.echo(
        f"{'would write' if dry_run else 'wrote'} {len(files)} file(s) to {out} ({names}): "
        f"{instruments} instrument(s) x {n} day(s), {span}: "
        f"{instruments * n * BARS_PER_DAY:,} bars"
    )
    mine = {os.path.basename(f) for f in files}
    replaced, others = sorted(before & mine), sorted(before - mine)
    if replaced:
        err_console.print(
            styled(
                f"[yellow]note:[/yellow] {'would replace' if dry_run else 'replaced'} "
                f"{len(replaced)} file(s) {out} held (e.g. {replaced[0]})"
            ),
            highlight=False,
        )
    if others:
        err_console.print(
            styled(
                f"[yellow]note:[/yellow] {out} also holds {len(others)} other data file(s) (e.g. "
                f"{others[0]}): `incbt ingest {out}` reads them too; give the new files, or "
                "generate into an empty folder"
            ),
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def ingest(
    paths: Annotated[
        list[str],
        typer.Argument(help="Files, folders or globs (CSV, Parquet; .txt with --header)."),
    ],
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="Bars column from another "
            "name: NAME=COLUMN, e.g. --map ts=timestamp (repeatable).",
        ),
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz",
            help="Zone of timestamps written without an offset (e.g. America/New_York); "
            "it reads the times only: trading days are dates in the store's session zone "
            "(init --tz).",
        ),
    ] = None,
    ts_unit: Annotated[
        str,
        typer.Option(
            "--ts-unit",
            help="Unit of integer timestamps since 1970-01-01 UTC: s, ms, us or ns.",
        ),
    ] = "ns",
    instrument: Annotated[
        str | None,
        typer.Option(
            "--instrument",
            help="The instrument of files without a column of names (a file per symbol): "
            "a name, or '{stem}' for each file's name without its extensions (AAPL for "
            "AAPL.csv.gz), '{folder}' for its folder's.",
        ),
    ] = None,
    ts_format: Annotated[
        str | None,
        typer.Option(
            "--ts-format",
            help="How the files write their times where not ISO 8601, in strptime codes: "
            "'%m/%d/%Y %H:%M', '%Y%m%d %H%M%S', '%d.%m.%Y %H:%M:%S.%f' (with --tz ZONE "
            "unless %z reads an offset); --map ts=Date+Time reads a date's and a time's "
            "columns together.",
        ),
    ] = None,
    header: Annotated[
        str | None,
        typer.Option(
            "--header",
            help="The fields of CSV files without a header line, in order (their first "
            "line is a bar): e.g. --header Date,Time,Open,High,Low,Close,Volume.",
        ),
    ] = None,
    decimal: Annotated[
        str | None,
        typer.Option(
            "--decimal",
            help="The decimal mark of the CSV files' numbers, . or , (judged from each "
            "file where not given; 101,250 written alone cannot be).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and say what would change; write nothing.")
    ] = False,
    join_days: Annotated[
        bool,
        typer.Option(
            "--join-days",
            help="Merge new bars into a stored day (bars at new times added, a bar at a "
            "stored bar's time replacing it, the others kept) instead of replacing the "
            "day whole: for bars sent as they come.",
        ),
    ] = False,
    rewrite: Annotated[
        bool,
        typer.Option(
            "--rewrite",
            help="Write the days given again even where their bars equal the store's "
            "(results recompute from them): repairs a bars file `verify --bars` found "
            "changed outside incbt, from the original data.",
        ),
    ] = False,
) -> None:
    """Validate and ingest bars as one atomic batch (new days, corrections, no-ops)."""
    from incbt.bars.inputs import check_reading

    # the reading options' own checks before the store is opened: bad usage is exit 2
    # whatever the store (QA 2026-12-06: exit 1, "not an incbt store", for --ts-unit
    # minutes)
    check_reading(ts_unit, instrument, ts_format, header, decimal)
    st = _open()
    with RichReporter() as rep:
        s = st.ingest(
            paths,
            columns=_pairs(map_, "--map"),
            tz=tz,
            dry_run=dry_run,
            progress=rep,
            join_days=join_days,
            rewrite=rewrite,
            ts_unit=ts_unit,
            instrument=instrument,
            ts_format=ts_format,
            header=header,
            decimal=decimal,
        )
    verb = "would add" if dry_run else "added"
    typer.echo(
        f"{s.files:,} file(s), {s.rows_read:,} row{'' if s.rows_read == 1 else 's'} read"
        + (
            f" ({s.rows_repeated:,} repeating a bar given in another file, identical: stored once)"
            if s.rows_repeated
            else ""
        )
        + ": "
        f"{verb} {s.days_new:,} new day(s) and "
        f"{s.days_corrected:,} correction(s)"
        + (f", {s.days_rewritten:,} day(s) written again as they were" if s.days_rewritten else "")
        + (f" in {s.instruments:,} instrument(s)" if s.instruments else "")
        + (
            f" ({len(s.new_instruments):,} new: "
            + ", ".join(s.new_instruments[:5])
            + (", ..." if len(s.new_instruments) > 5 else "")
            + ")"
            if s.new_instruments
            else ""
        )
        + f", {s.days_unchanged:,} day(s) unchanged, {s.buckets_written:,} bucket file(s)"
        + (f"; event {s.seq}" if s.seq else "; nothing changed, no event" if not dry_run else "")
    )
    _print_corrected(s, typer.echo)
    _print_data_notes(s)


def _print_corrected(s: Any, say: Callable[[str], None]) -> None:
    """The days an ingest corrected, the first ten, with what ``--join-days`` merged."""
    joined = {(i, d): (stored, new, kept) for i, d, stored, new, kept in s.joined_days}
    for inst, day in s.corrected[:10]:
        how = joined.get((inst, day))
        say(f"  corrected {inst} {day}" + (_merged_text(*how) if how else ""))
    if len(s.corrected) > 10:
        say(f"  ... and {len(s.corrected) - 10} more corrections")


def _merged_text(stored: int, given: int, kept: int) -> str:
    """What ``--join-days`` did to a stored day: bars given at new times are added, those
    at stored times replace those bars (or are the same again). QA 2026-12-06: "49 new
    bars merged" counted 48 bars sent again as new."""
    at_stored = stored - kept
    return (
        f" (merged: {given - at_stored:,} bar(s) at new times added, {at_stored:,} at "
        f"stored times taken, {kept:,} stored bar(s) kept: {kept + given:,} bars)"
    )


def _print_data_notes(s: Any) -> None:
    """Short or missing days an ingest accepted, said on stderr (they may be real)."""
    for line in s.notes():
        err_console.print(
            styled(f"[yellow]note:[/yellow] {line}"),
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def query(
    sql: Annotated[
        str | None, typer.Argument(help="SQL, or the NAME of a query in queries/.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("-p", "--param", help="Bind $KEY to VALUE: KEY=VALUE (repeatable)."),
    ] = None,
    output: OutputOpt = "table",
    out: OutFileOpt = None,
    as_of: Annotated[
        int | None,
        typer.Option("--as-of", help="See the store as it was right after event N (time travel)."),
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the named queries.")] = False,
    pivot: Annotated[
        bool,
        typer.Option(
            "--pivot",
            help="Pivot a (row, column, value) result "
            "into a wide table: one column per value of the second column.",
        ),
    ] = False,
) -> None:
    """SQL (DataFusion) over the store's tables (bars, runs, daily, fills, ...) or a named query."""
    from incbt.queries import find_query, is_query_name, list_queries

    if list_:
        import pyarrow as pa

        if sql:  # it ran nothing, and said nothing of it (QA 2026-12-06)
            raise UsageError(f"--list lists the named queries: give it alone, not with {sql!r}")
        given = ["-p"] * bool(param) + ["--as-of"] * (as_of is not None) + ["--pivot"] * pivot
        if given:  # ignored without a word (QA 2026-12-07)
            raise UsageError(
                f"--list lists the named queries: give it alone, not with {', '.join(given)} "
                "(--output and -o say how to write the list)"
            )
        write_table(pa.Table.from_pylist(list_queries(state.store_path)), output, out)
        return
    if not sql or not sql.strip():  # blanks too: DataFusion's words, exit 1 (QA)
        raise UsageError("give SQL or a query name (see `incbt query --list`)")
    st = _open()
    name = None
    named = find_query(sql, st.path)
    if named is not None:
        name, sql = sql, named
    elif is_query_name(sql):  # one word: meant as a name
        known = ", ".join(q["name"] for q in list_queries(st.path))
        raise NotFoundError(
            f"no query named {sql!r} (and it is not SQL); the named queries: {known} "
            "(`incbt query --list` describes them)"
        )
    raw = _pairs(param, "-p")
    params = {k: coerce(v) for k, v in raw.items()}
    names_given: dict[str, str] = {}  # identifier parameters: column names
    if name is not None:
        from incbt.queries import prepare_named

        for k in ("run", "sweep"):  # a run id prefix, a sweep's name: as typed
            if k in raw:
                params[k] = raw[k]
        sql, names_given = prepare_named(st, name, params)
        names_given = {k: raw.get(k, v) for k, v in names_given.items()}
    elif params:
        from incbt.queries import check_bound

        check_bound(sql, params, "-p {}")
    from incbt.query import run_sql_fresh

    # the values read as numbers: bound as their text where the query takes text
    texts = {k: raw[k] for k, v in params.items() if k in raw and not isinstance(v, str)}
    from incbt.queries import run_read

    runs = run_read(name, sql, params)  # incbt's query of one run: that run's files
    try:
        table = run_sql_fresh(
            lambda: st.session(as_of, only_for=sql, runs=runs),
            sql,
            params or None,
            name=name,
            typed=texts,
        )
    except QueryError as exc:  # a column name given that the tables do not have
        bad = [
            k
            for k, v in names_given.items()
            if re.search(rf"No field named (\w+\.)?(p_)?{v}\b", str(exc))
        ]
        if not bad:
            raise
        k = bad[0]
        have = [c[2:] for c in st.sql("SELECT * FROM runs LIMIT 0").column_names if c[:2] == "p_"]
        from incbt.sweep import STATS_RANKED

        stat = names_given[k] in STATS_RANKED  # a value of the stats query (QA 2026-12-07)
        raise UsageError(
            f"query {name}: -p {k}={names_given[k]!r} names no column it can read (the "
            f"strategies' parameters here: {', '.join(have) or 'none'}; the metrics: "
            "sharpe, total_pnl, max_drawdown, fills, fees, turnover)"
            + (
                f"; {names_given[k]} is a value of the stats query, over a sweep in "
                f"`incbt report SWEEP --metric {names_given[k]}` (a heatmap) or Python's "
                f"sweep.pivot(x, y, {names_given[k]!r})"
                if stat
                else ""
            )
        ) from None
    if pivot:
        from incbt.render import pivot_table

        table = pivot_table(table)
    elif name == "grid" and output == "table" and not out:
        # the parameters of other strategies (each p_ column of runs): empty here, and 28
        # columns wrapped every cell over lines (QA 2026-12-06); csv and json keep them
        keep = [
            c
            for c in table.column_names
            if not (c.startswith("p_") and table.column(c).null_count == table.num_rows)
        ]
        table = table.select(keep)
    write_table(table, output, out)
    if as_of is None:
        _note_stale_runs(st, table)
    if name is None and raw and _found_nothing(table):
        _note_run_prefixes(st, raw)


def _found_nothing(table: Any) -> bool:
    """No row, or one row of zeros and NULLs (a count or a sum of nothing)."""
    if table.num_rows == 0:
        return True
    row = table.slice(0, 1).to_pylist()[0].values() if table.num_rows == 1 else [1]
    return all(v is None or (isinstance(v, int | float) and v == 0) for v in row)


def _note_run_prefixes(st: Any, raw: dict[str, str]) -> None:
    """SQL binds a value as given: `-p run=694b` compared whole ids with "694b" and
    found nothing, without a word, where named queries take a prefix (QA 2026-12-06).
    An empty answer says which values are the start of one run's id."""
    from incbt.catalog import runs as rc

    asked = {k: v for k, v in raw.items() if re.fullmatch(r"[0-9a-f]{4,15}", v)}
    if not asked:
        return
    with st.catalog.env.read() as txn:  # the run ids, read once for every value
        ids = [r.run_id for r in rc.runs(st.catalog, txn)]
    for k, v in asked.items():
        found = [rid for rid in ids if rid.startswith(v)]
        if len(found) == 1:
            _say(
                f"note: -p {k}={v} is bound as the text {v!r}, the start of run {found[0]}: "
                f"SQL compares whole ids (named queries take a prefix). Fix: -p {k}={found[0]}",
                True,
            )


def _note_stale_runs(st: Any, table: Any, most: int = 5000, shown: str = "shown") -> None:
    """A note on stderr when runs the answer shows have stale results (a correction, a
    new day or a changed strategy since they were computed): SQL shows a run's results
    as computed, and a leaderboard read after a correction ranked runs on the old data
    without a word (QA 2026-12-06, `query grid`). Only for an answer with a ``run_id``
    column of at most ``most`` runs: their plan alone is made. ``shown``: what the answer
    did with them ("ranked": a walk-forward's, whose rows show the runs it chose)."""
    import pyarrow.compute as pc

    if "run_id" not in table.column_names or not table.num_rows:
        return
    # the first column of the name (QA 2026-12-08: two run_id columns, `a.run_id,
    # b.run_id`, failed the command after its answer was written, exit 3)
    first = table.column(table.column_names.index("run_id"))
    ids = {r for r in pc.unique(first).to_pylist() if isinstance(r, str)}
    if not ids or len(ids) > most:
        return
    from incbt.update import status_of

    stale = [r for r in status_of(st, ids).stale if r.run_id in ids]
    # a run whose strategy does not load: its rows stay as they are, no update recomputes
    # it (QA 2026-12-07: said as stale results of the data before, which an update
    # recomputes); the reason incbt.update gives it (incbt.report.BROKEN)
    broken = {r.run_id: r.reason for r in stale if r.reason.startswith("cannot recompute: ")}
    if broken:
        why = [c.split(": ", 1)[1] for c in dict.fromkeys(broken.values())]
        _say(
            f"note: {len(broken)} of the {len(ids)} run(s) {shown} cannot be recomputed "
            f"({'; '.join(why[:3])}{'; ...' if len(why) > 3 else ''}): their strategy does "
            "not load or no longer takes their parameters, so their rows stay as they are "
            "and no update brings them up to date. Fix: restore or repair the strategies "
            "file (`runs.source` names it), or drop the runs (`incbt drop RUN`)",
            True,
        )
    stale = [r for r in stale if r.run_id not in broken]
    if not stale:
        return
    runs = {r.run_id for r in stale}
    reasons = list(dict.fromkeys(r.reason for r in stale))
    said = "; ".join(reasons[:3]) + ("; ..." if len(reasons) > 3 else "")
    _say(
        f"note: {len(runs)} of the {len(ids)} run(s) {shown} have stale results ({said}): "
        "their rows are those of the data before. `incbt update` recomputes them "
        "(`incbt status` lists what and why)",
        True,
    )


@app.command()
def backtest(
    strategy: Annotated[
        str | None,
        typer.Argument(
            help="Strategy name: built-in (see `incbt "
            "strategies`) or defined in --strategies FILE (optional with "
            "--from)."
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("-p", "--param", help="Strategy parameter NAME=VALUE (repeatable)."),
    ] = None,
    instruments: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated instruments, quoted as in a CSV line where a name holds a "
            "comma: '\"X,Y\",Z' (default: all, including ones that arrive later)."
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every instrument (the default).")] = False,
    universe: Annotated[
        str | None,
        typer.Option(
            help="SQL over bars returning an `instrument` column, e.g. by average volume: "
            "run once, now; the instruments it returns are the run's for good."
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(help="First day, YYYY-MM-DD (default: each instrument's first bar)."),
    ] = None,
    notional: Annotated[
        float | None,
        typer.Option(
            help="Currency per position, more than 0 and at most 1e15 (default 100000; a "
            "fork's: its base's)."
        ),
    ] = None,
    fee_bps: Annotated[
        float | None,
        typer.Option(
            help="Fee per fill, bps of what it trades, |qty*price|, 0 to 10000 "
            "(default 0; a fork's: its base's)."
        ),
    ] = None,
    slippage_bps: Annotated[
        float | None,
        typer.Option(
            help="Fill at open*(1 +/- bps/1e4), 0 to 9999 (default 0; a fork's: its base's)."
        ),
    ] = None,
    strategies: Annotated[
        str | None,
        typer.Option(
            "--strategies", help="A Python file defining strategies with @incbt.strategy."
        ),
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Fork this run (id or prefix): "
            "the base run until --effective, then the new -p values.",
        ),
    ] = None,
    effective: Annotated[
        str | None, typer.Option(help="First day of the fork's new parameters, YYYY-MM-DD.")
    ] = None,
    output: PrintOpt = "table",
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Say what would be computed, and the run's id; write nothing."
        ),
    ] = False,
) -> None:
    """Register a run (or a fork of one) and compute what it lacks; print metrics and id."""
    machine = _printed(output)
    st = _open()
    if strategy is None and from_ is None:
        raise UsageError("give a STRATEGY, or --from RUN --effective DATE for a fork")
    if sum((instruments is not None, all_, universe is not None)) > 1:  # QA 2026-12-07:
        # --universe with --all ran the universe
        raise UsageError("give one of --instruments, --all, --universe")
    insts = _instrument_list(instruments)
    _exec_options(notional, fee_bps, slippage_bps)
    params = {k: coerce(v) for k, v in _pairs(param, "-p").items()}
    with RichReporter() as rep:
        run = st.backtest(
            strategy,
            params,
            instruments=insts,
            start=start,
            notional=notional,
            fee_bps=fee_bps,
            slippage_bps=slippage_bps,
            universe=universe,
            strategies_file=strategies,
            fork_of=from_,
            effective=effective,
            progress=rep,
            dry_run=dry_run,
        )
    assert not isinstance(run, list)  # one params dict: one run
    r = run.report
    if dry_run:
        assert r is not None
        plan = r.plan
        n_inst = len({t.instrument for t in plan.tasks}) if plan is not None else 0
        # a fork's days after its base's failed pair, computed again first (a change of a
        # day it read): only if that succeeds, as update --dry-run says it (QA 2026-12-07:
        # a fork's dry run said them as computed, and the backtest failed them)
        at_most, of_them = _on_retry(r, "the fork's")
        _say(
            f"would compute {at_most}{r.segments:,} segment(s) in "
            f"{r.tasks:,} task(s) over {n_inst} instrument(s), {r.bars_processed:,} "
            f"bar-steps{_where(r)}{of_them}"
            if r.bars_processed
            else "would register the run; nothing to compute yet"
            if _is_new(st, run, r, dry=True)
            else "already up to date: nothing to compute",
            machine,
        )
        if not r.errors:  # else they say why (a fork of a failed base's pairs)
            _print_why_empty(run, r, machine)
        _print_failures(r, dry=True)
        _say(f"run id: {run.run_id}", machine)
        return
    if r is not None and (r.bars_processed or getattr(r, "not_run", [])):
        _say(
            f"computed {_segments(r)}, {r.bars_processed:,} bar-steps in "
            f"{r.seconds:.2f} s{_where(r)}",
            machine,
        )
    else:  # a new run with no bar to compute yet is not "up to date" (QA 2026-12-06)
        new = r is not None and _is_new(st, run, r, dry=False)
        up_to_date = "already up to date: nothing computed"
        _say("registered; nothing to compute yet" if new else up_to_date, machine)
        _print_why_empty(run, r, machine)
    if r is not None:
        _print_failures(r)
    if not machine:
        shown = " ".join(f"{k}={v}" for k, v in run.record.params.items())
        run_summary(run.metrics, f"run {run.run_id}: {run.record.strategy} {shown}")
    else:
        write_table(run.metrics, output, None)
    _say(f"run id: {run.run_id}", machine)
    if r is not None:
        _exit_if_failed(r)


def _is_new(st: Any, run: Any, r: Any, dry: bool) -> bool:
    """The run was registered by this command (``dry``: would be)."""
    if dry:
        from incbt.catalog import runs as rc

        with st.catalog.env.read() as txn:
            return rc.get_run(st.catalog, txn, run.run_id) is None
    created = run.record.created_seq
    return r.since is not None and created is not None and created > r.since


def _print_why_empty(run: Any, r: Any, machine: bool = False) -> None:
    """Say why a run with nothing to compute has no results, if data can explain it."""
    if r is not None and (r.bars_processed or getattr(r, "not_run", [])):
        return
    why = run.why_empty()
    if why:
        _say(f"no results: {why}", machine)


@app.command()
def sweep(
    strategy: Annotated[str, typer.Argument(help="Strategy name (built-in or in --strategies).")],
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "-g",
            "--grid",
            help="A parameter's values: NAME=V1,V2,... or NAME=START:STOP:STEP, STOP included "
            "(fast=5:20:5 is 5,10,15,20; repeatable). "
            "With --resume, a parameter left out keeps the sweep's values; no -g at all "
            "finishes the sweep as it is.",
        ),
    ] = None,
    random: Annotated[int | None, typer.Option(help="Run N random points of the grid.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of --random.")] = 0,
    instruments: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated instruments, quoted as in a CSV line where a name holds a "
            "comma (default: all)."
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every instrument (the default).")] = False,
    start: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD.")] = None,
    notional: Annotated[
        float | None,
        typer.Option(
            help="Currency per position, more than 0 and at most 1e15 (default 100000; on "
            "--resume, the sweep's)."
        ),
    ] = None,
    fee_bps: Annotated[
        float | None,
        typer.Option(help="Fee per fill, bps, 0 to 10000 (default 0; on --resume, the sweep's)."),
    ] = None,
    slippage_bps: Annotated[
        float | None,
        typer.Option(help="Slippage, bps, 0 to 9999 (default 0; on --resume, the sweep's)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="The sweep's name (default: from its spec).")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue an existing sweep: keep "
            "completed runs, compute the rest and any new grid points.",
        ),
    ] = False,
    workers: Annotated[int | None, typer.Option(help="Run on a local Ray with N workers.")] = None,
    address: Annotated[
        str | None,
        typer.Option(
            help="Run on the Ray cluster at ADDR (the store must be on storage every node sees)."
        ),
    ] = None,
    strategies: Annotated[
        str | None, typer.Option("--strategies", help="A Python file defining strategies.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be computed.")] = False,
) -> None:
    """Run a parameter grid as a named, resumable sweep (on this machine or on Ray)."""
    global _FINISH
    # the same command again is refused (the name exists): said at a Ctrl-C anywhere in it
    # (QA 2026-12-06: one as it printed its results said "run the same command again")
    _FINISH = "continue with the same command and --resume"
    st = _open()
    if instruments and all_:
        raise UsageError("give --instruments or --all, not both")
    insts = _instrument_list(instruments)
    _exec_options(notional, fee_bps, slippage_bps)
    axes = _pairs(grid, "-g")
    try:
        with RichReporter() as rep, warnings.catch_warnings():
            # the API's warnings of what the lines below say (once, not twice: QA 2026-12-05)
            warnings.filterwarnings("ignore", "no sweep named", UserWarning)
            warnings.filterwarnings("ignore", "--random", UserWarning)
            warnings.filterwarnings("ignore", "(skipped|left out of the sample): ", UserWarning)
            res = st.sweep(
                strategy,
                axes,
                random=random,
                seed=seed,
                instruments=insts,
                start=start,
                notional=notional,
                fee_bps=fee_bps,
                slippage_bps=slippage_bps,
                name=name,
                resume=resume,
                workers=workers,
                address=address,
                strategies_file=strategies,
                dry_run=dry_run,
                progress=rep,
            )
    except KeyboardInterrupt:
        raise typer.Exit(_interrupted()) from None
    r = res.report
    assert r is not None  # a sweep always plans
    if resume and res.created:  # a new name, perhaps mistyped: say so, and which there are
        from incbt.sweep import sweeps

        others = sorted(s["name"] for s in sweeps(st) if s["name"] != res.name)
        err_console.print(
            f"note: no sweep named {res.name!r} to resume: "
            + ("it would be started" if dry_run else "started it")
            + (f" (the store's sweeps: {', '.join(others[:10])})" if others else ""),
            highlight=False,
            soft_wrap=True,
        )
    if res.kept and axes:  # said: a resume's grid left these out
        kept = " ".join(
            f"{k}={v if isinstance(v, str) else ','.join(map(str, v))}" for k, v in res.kept.items()
        )
        typer.echo(f"kept the sweep's values of the parameters not given: {kept}")
    if res.skipped:  # a sample is drawn from the points the strategy takes (QA: said as
        # skipped from the sample)
        where = "left out of the sample" if random is not None else "skipped"
        typer.echo(
            f"{where}: {len(res.skipped)} grid point(s) the strategy rejects, e.g. {res.skipped[0]}"
        )
    if res.short:  # fewer points than --random asked for, and why
        err_console.print(f"note: {res.short}", highlight=False, soft_wrap=True)
    # where, at the end as backtest says it (QA 2026-12-06: "computed (in-process)")
    ex = (
        "ray"
        if dry_run and (workers is not None or address is not None)
        else (r.executor if dry_run else res.executor)
    )
    where = " (on Ray)" if ex == "ray" else f" ({ex})" if ex and ex != "in this process" else ""
    typer.echo(
        f"sweep {res.name}: {len(res.run_ids):,} run(s), {res.added:,} new"
        + (f" ({res.reused:,} of them in the store already, reused)" if res.reused else "")
        + (
            f" (the {res.given_held:,} point(s) given are in the sweep already)"
            if res.given_held and not res.added
            else f", {res.given_held:,} of the points given in it already"
            if res.given_held
            else ""
        )
        + (f", {res.again:,} dropped before (computed again)" if res.again else "")
        + (f", {res.unfinished:,} left by an interrupted call" if res.unfinished else "")
        + f"; {'would compute' if dry_run else 'computed'} "
        + f"{_segments(r)}, {r.bars_processed:,} bar-steps"
        + ("" if dry_run else f" in {res.seconds:.2f} s")
        + where
    )
    _print_failures(r)
    if dry_run:
        return
    top = res.leaderboard("sharpe", 10)
    # runs with no portfolio row are listed (unranked, last): none with one, no results
    if not any(v is not None for v in top.column("total_pnl").to_pylist()):
        if res.run_ids:  # a sweep's runs share their start and universe
            _print_why_empty(res.runs[0], None)
        top = top.slice(0, 0)
    if top.num_rows:  # parameters as NAME=VALUE in one column, not also one each
        top = top.drop_columns([c for c in top.column_names if c.startswith("p_")])
        metric_table(top, f"sweep {res.name}: top runs by Sharpe", order=res.parameters())
    else:
        typer.echo(f"sweep {res.name}: no results yet")
    _exit_if_failed(r)


@app.command()
def report(
    target: Annotated[str, typer.Argument(help="A run id (or prefix) or a sweep name.")],
    out: Annotated[
        str, typer.Option("-o", "--out", help="The HTML file to write (-: standard output).")
    ] = "report.html",
    metric: Annotated[
        str | None,
        typer.Option(
            help="A sweep's heatmap and ranking metric: sharpe (the default), "
            "total_pnl, max_drawdown, fills, fees, turnover, a value of the stats "
            "query (sortino, calmar, total_return, max_drawdown_days, ...) or a trade "
            "statistic (win_rate_pct, expectancy, ...: incbt trades SWEEP --stats)."
        ),
    ] = None,
) -> None:
    """Write a self-contained HTML report of a run or a sweep (charts, tables)."""
    st = _open()
    if out == "-":  # standard output, as `-o -` means elsewhere (QA 2026-12-06: a file "-")
        import shutil
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            path = st.report(target, os.path.join(d, "report.html"), metric)
            with open(path, "rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer)
        sys.stdout.flush()
        err_console.print("wrote the report to standard output", highlight=False)
    else:
        path = st.report(target, out, metric)
        typer.echo(f"wrote {path}")
    _note_sweep_or_run(st, target, "report")


def _note_sweep_or_run(st: Any, target: str, what: str) -> None:
    """Say it where a sweep's name taken (``report``, ``trades``) is also the start of a
    run id (QA 2026-12-05: `verify d813` took the run, `report d813` the sweep, without
    a word)."""
    from incbt.sweep import get_sweep

    if re.fullmatch(r"[0-9a-f]{1,15}", target) and get_sweep(st, target) is not None:
        also = next((r.run_id for r in st.runs() if r.run_id.startswith(target)), None)
        if also is not None:
            err_console.print(
                f"note: {target!r} names sweep {target!r} and is the start of run {also}: "
                f"this is the sweep's {what}; for the run's, give its id ({also})",
                highlight=False,
                soft_wrap=True,
            )


@app.command()
def trades(
    target: Annotated[
        str, typer.Argument(help="A run id (or a unique prefix), or a sweep's name.")
    ],
    instrument: Annotated[
        str | None, typer.Option("--instrument", help="That instrument's trades alone.")
    ] = None,
    stats: Annotated[
        bool,
        typer.Option(
            "--stats",
            help="The trades' statistics (win rate, best and worst, profit factor, "
            "expectancy, ...) instead of the trades; a sweep's: a row per grid point.",
        ),
    ] = False,
    output: OutputOpt = "table",
    out: OutFileOpt = None,
) -> None:
    """A run's trades: its fills paired into round trips (entry, exit, PnL, return)."""
    import pyarrow as pa

    from incbt.sweep import get_sweep

    st = _open()
    if get_sweep(st, target) is not None:  # as `report` takes a sweep by its name
        if not stats or instrument is not None:
            raise UsageError(
                f"{target!r} is a sweep: `incbt trades {target} --stats` gives its runs' trade "
                "statistics, a row per grid point; a run's trades: give its id "
                f"(`incbt query grid -p sweep={target}` lists them)"
            )
        write_table(st.sweeps()[target].trade_stats(), output, out)
        _note_sweep_or_run(st, target, "trade statistics")
        return
    run = st.run(target)
    if stats:
        from incbt.results.trades import trade_stats_table

        t = trade_stats_table([run.trade_stats(instrument)])
        write_table(t.add_column(0, "run_id", pa.array([run.run_id])), output, out)
        return
    write_table(run.trades(instrument), output, out)


@app.command("walk-forward")
def walk_forward(
    sweep: Annotated[str, typer.Argument(help="A sweep's name.")],
    train: Annotated[
        int,
        typer.Option(
            "--train", min=1, help="Trading days of each train window (where a run is chosen)."
        ),
    ],
    test: Annotated[
        int,
        typer.Option(
            "--test",
            min=1,
            help="Trading days of each test window, after its train window (where the "
            "choice is judged); the next fold starts this many days later.",
        ),
    ],
    metric: Annotated[
        str,
        typer.Option(
            help="The value of the stats query the best run of a train window has: sharpe, "
            "total_pnl, sortino, calmar, max_drawdown (smallest first), ..."
        ),
    ] = "sharpe",
    anchored: Annotated[
        bool,
        typer.Option("--anchored", help="Every train window starts at the first day (it grows)."),
    ] = False,
    start: Annotated[
        str | None, typer.Option(help="The first day to fold (YYYY-MM-DD; default: the first).")
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(help="The last day to fold (default: the last; keep a holdout after it)."),
    ] = None,
    output: OutputOpt = "table",
    out: OutFileOpt = None,
) -> None:
    """Walk-forward analysis of a sweep: a row per fold, the run ranked best by --metric
    over the train days and its statistics over the test days after them (out of sample)."""
    from incbt.sweep import get_sweep, no_such_sweep

    st = _open()
    if get_sweep(st, sweep) is None:
        raise no_such_sweep(sweep, st.catalog)
    sw = st.sweeps()[sweep]
    table = sw.walk_forward(train, test, metric, anchored, start, end)
    write_table(table, output, out)
    # every run of the sweep was ranked, fold after fold: on the data before, where its
    # results are stale (QA 2026-12-08: said by `query stats`, not here)
    import pyarrow as pa

    _note_stale_runs(st, pa.table({"run_id": pa.array(sw.run_ids, pa.string())}), shown="ranked")


@app.command()
def strategies(
    given: Annotated[
        str | None,
        typer.Argument(help="A strategies file: as --strategies FILE.", show_default=False),
    ] = None,
    file: Annotated[
        str | None, typer.Option("--strategies", help="Also list the strategies in this file.")
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Also compile each strategy of the file and run it with its default "
            "parameters over days of synthetic bars, twice and resumed from a day's "
            "snapshot (as a store checks its first runs): exit 1 naming each one that "
            "fails or breaks the contract.",
        ),
    ] = False,
) -> None:
    """List the strategies with their parameters (types, defaults, ranges)."""
    from incbt.engine import BUILTINS
    from incbt.engine import strategies as listed

    if given is not None and file is not None and given != file:
        raise UsageError(f"give one strategies file: {given} or --strategies {file}")
    file = file or given  # `incbt strategies my.py` was "unexpected extra argument" (QA)
    if check and not file:  # QA 2026-12-06: it checked nothing, and said nothing
        err_console.print(
            "note: --check checks the strategies of --strategies FILE (a user's step, "
            "before any run of it); the built-ins need none",
            highlight=False,
        )
    failed = 0
    for strat in listed(file or None).values():
        typer.echo(strat.describe())
        if check and strat.name not in BUILTINS:  # a user's step, before any run of it
            why, passed = _step_check(strat)
            failed += why is not None
            typer.echo(f"  check: {why or passed}")
    if failed:
        raise typer.Exit(1)


CHECKED = "compiles, runs, and resumed from a day's snapshot gives the bits run whole gives"


def _step_check(strat: Any) -> tuple[str | None, str]:
    """Why a strategy's step fails to compile, fails with its default parameters (over two
    bars, then days of synthetic bars), or breaks the contract over those days (None: it
    does none of these), and what to say where it passes: what the check ran (a warm-up
    longer than its days was never resumed, yet said "resumed from a day's snapshot gives
    the bits": QA 2026-12-07)."""
    import warnings

    from numba.core.errors import NumbaWarning

    from incbt.contract import check_on_synthetic
    from incbt.engine import params_from_dict
    from incbt.engine.kernel import load_kernel

    # Numba's own warnings of a step that does not compile ("unsafe cast from
    # Poison<...>") are noise above the check's line (QA 2026-12-06); this command runs
    # no other thread, so the process-wide hold is its alone (a hold in the kernel's
    # loader leaked into threads and forked workers: their warnings were lost)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaWarning)
        try:
            why = load_kernel(strat, params_from_dict(strat, {}))
            if why is not None:
                return why, ""
            # then as a store's first runs of it are checked (incbt.contract): over days
            # of bars, run twice and resumed from a snapshot (QA 2026-12-07: two bars of
            # 1.0 passed a step that breaks the contract only later)
            why, over, resumed = check_on_synthetic(strat)
        except IncbtError as exc:  # it does not compile, or its defaults break its rules
            return " ".join(str(exc).split()), ""
    if why is not None:
        return f"{why} (over {over})", ""
    return None, CHECKED if resumed else f"compiles and runs ({over})"


@app.command()
def log(
    kind: Annotated[
        list[str] | None,
        typer.Option(
            help="Only events of this kind (init, ingest, backtest, sweep, update, gc, ...); "
            "repeat it for several.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Most events to show; 0: all.", min=0)] = 50,
    output: OutputOpt = "table",
    out: OutFileOpt = None,
) -> None:
    """Show the event log, newest first."""
    st = _open()
    kinds = sorted(set(kind or []))
    t = st.log(kind=kinds or None, limit=limit)  # a kind incbt never writes is refused
    if kinds and not t.num_rows:
        held = st.sql("SELECT DISTINCT kind FROM events ORDER BY kind").column("kind")
        err_console.print(
            f"no events of kind {' or '.join(map(repr, kinds))} in the log; it holds: "
            f"{', '.join(held.to_pylist())}"
        )
    # the short columns for a table on screen; a file (-o log.json: its format by its
    # suffix) and --output csv/json get them all (found by QA 2026-12-05: -o gave 5)
    shown = output == "table" and (out is None or format_of(out) == "table")
    cols = ["seq", "time", "kind", "message", "command"] if shown else t.column_names
    write_table(t.select(cols), output, out, title="events (newest first)")


def _print_lost_files(gone: list[str], bad: list[str]) -> None:
    """The store's files the catalog lists that are missing or damaged, with the fix
    (results: `incbt repair`; bars: as verify --bars says it)."""
    for what, found in (("missing", gone), ("damaged (cut short or changed)", bad)):
        if found:
            bars = any(f.startswith("bars") for f in found)  # the same fix as verify --bars
            results = [f for f in found if not f.startswith("bars")]
            err_console.print(
                styled(
                    f"[red]{len(found)} file(s) the catalog lists are {what}[/red] (e.g. "
                    f"{found[0]}): the store was changed outside incbt; "
                    + (
                        f"{len(results)} of them results: `incbt repair` computes their "
                        "rows again from the bars" + ("; bars: " if bars else "")
                        if results
                        else ""
                    )
                    + (BARS_LOST_FIX if bars else "")
                ),
                highlight=False,
            )


@app.command()
def status(output: PrintOpt = "table") -> None:
    """What the store holds, what is stale and why, and the work an update would do.

    With --output csv or json, stdout holds the stale (run, instrument) pairs alone."""
    machine = _printed(output)
    st = _open()
    with st.catalog.env.read() as txn:
        files = st.catalog.current_files(txn)
    row = st.summary(files)
    if machine:
        _say(f"store {st.path}: " + ", ".join(f"{k} {v}" for k, v in row.items()), True)
    else:  # for people: counts with separators, bytes in MiB
        import pyarrow as pa

        shown = {
            k: ("" if v is None else f"{v / 2**20:,.1f} MiB" if k == "bar_bytes" else f"{v:,}")
            if isinstance(v, int) or v is None
            else str(v)
            for k, v in row.items()
        }
        write_table(pa.Table.from_pylist([shown]), output, None, title=f"store {st.path}")
    # a store changed by hand is said here, not found by the next backtest that reads the
    # file; a bars file of another size than the catalog's, or a results file without
    # Parquet's footer, is damaged (QA 2026-12-06: a truncated one was not said)
    res = st.status_of(files)  # the files read once, for the summary and this check
    gone, bad = res.missing_files, res.damaged_files
    _print_lost_files(gone, bad)
    with st.catalog.env.read() as txn:
        pending = st.catalog.pending(txn)
        doomed = st.catalog.gc_pending(txn)
        horizon = st.catalog.gc_horizon(txn)
    left = _leftovers(os.path.join(st.path, "tmp"))
    # a write under way is named whether or not it left files yet: a sweep computing its
    # runs was called interrupted (QA 2026-12-05)
    writer = held_by(st.path)
    if writer:
        _say(
            f"a write is under way ({writer}): the numbers below may change as it commits", machine
        )
    elif pending:
        _say(
            f"{len(pending)} file(s) from an interrupted write will be removed by the next write",
            machine,
        )
    if doomed and not writer:
        _say(
            f"{len(doomed)} file(s) of an interrupted gc will be removed by the next write", machine
        )
    from incbt.results.compact import dead_rows

    with st.catalog.env.read() as txn:
        dead = dead_rows(st.catalog, txn)[1]
    if dead:  # (QA 2026-12-06: nothing said they were there, or what drops them)
        _say(
            f"results: about {dead:,} daily rows (and their fills) of dropped or replaced runs "
            "or recomputed since are still in the results files, not shown: `incbt gc` drops "
            "them",
            machine,
        )
    if res.catalog_unused_bytes:  # (2026-12-07: nothing said a drop left them there)
        _say(
            f"catalog: about {res.catalog_unused_bytes / 2**20:,.1f} MiB of its file unused "
            "(pages freed by drops, which LMDB keeps): `incbt gc --catalog` gives them back",
            machine,
        )
    if left[0] and not writer:
        _say(
            f"{left[0]:,} file(s), {left[1] / 2**20:,.1f} MiB in tmp/ from an interrupted command "
            "(a killed ingest's parts of a big file, a worker's result rows, a compaction's "
            "or gc's merge) will be removed by the next write",
            machine,
        )
    # a killed `gc --catalog`'s copy, or the old catalog it had swapped out: as big as
    # the catalog (QA 2026-12-08: not said)
    from incbt.catalog.compact import COPY_DIR, PROBE_DIR, beside

    copies = [_leftovers(os.path.join(beside(st.path), d)) for d in (COPY_DIR, PROBE_DIR)]
    if any(n for n, _ in copies) and not writer:
        _say(
            f"{sum(b for _, b in copies) / 2**20:,.1f} MiB in {COPY_DIR}/ from an interrupted "
            "`incbt gc --catalog` (its copy, or the old catalog) will be removed by the next "
            "write",
            machine,
        )
    if horizon:
        _say(f"time travel (--as-of) reaches back to event {horizon} (incbt gc)", machine)
    _print_update(res, output, dry=True, store=st)
    _print_unfinished_sweeps(res, machine, writer)
    _print_stale(res, output)
    if gone or bad or res.broken:  # a damaged store, or runs no update can maintain
        raise typer.Exit(1)


def _leftovers(tmp: str) -> tuple[int, int]:
    """Files and bytes under a store's ``tmp/``: a writer's staging area, empty between
    commands (every writer empties it when it takes the lock: ``recover``)."""
    n = size = 0
    for folder, _, names in os.walk(tmp):
        for name in names:
            with contextlib.suppress(OSError):  # removed meanwhile by a writer
                size += os.stat(os.path.join(folder, name)).st_size
                n += 1
    return n, size


def _print_stale(res: object, output: str) -> None:
    """The (run, instrument) pairs an update would recompute, why, and from which day:
    as a table, one row per cause (reason and first day), since a new day makes every
    pair stale (50,000 rows for 100 runs x 500 instruments); csv and json list each
    pair."""
    import pyarrow as pa

    stale = res.stale  # type: ignore[attr-defined]
    if output != "table":  # csv: its header even with no row (a script reads it: QA)
        from incbt.update import StaleRow

        schema = pa.schema(
            [
                (f.name, pa.int64() if f.name == "bars" else pa.string())
                for f in dataclasses.fields(StaleRow)
            ]
        )
        write_table(pa.Table.from_pylist([vars(r) for r in stale], schema=schema), output, None)
        return
    if not stale:
        return
    rows = stale_causes(stale)
    for row in rows:  # counts as the lines around the table write them (QA 2026-12-06)
        for k in ("runs", "instruments", "bar_steps"):
            row[k] = f"{row[k]:,}"
    write_table(pa.Table.from_pylist(rows), "table", None, title=_stale_title(stale))


def _stale_title(stale: list[Any]) -> str:
    """The stale table's title: pairs, and runs a whole (a run it cannot recompute, a
    portfolio to refold), counted apart (QA 2026-12-06: a broken run was "1 pair")."""
    pairs = sum(1 for r in stale if r.instrument)
    whole = len(stale) - pairs
    said = [f"{pairs:,} (run, instrument) pair(s)"] if pairs else []
    said += [f"{whole:,} run(s) as a whole"] if whole else []
    return f"stale: {' and '.join(said)} by cause (--output csv lists each)"


def stale_causes(stale: list[Any], shown: int = 3) -> list[dict[str, Any]]:
    """Stale pairs grouped by (reason, from_day), in the order causes first appear: how
    many runs and instruments, the bar-steps, and the first few of each."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for r in stale:
        groups.setdefault((r.reason, r.from_day), []).append(r)

    def some(names: list[str]) -> str:
        more = f", ... (+{len(names) - shown:,})" if len(names) > shown else ""
        return ", ".join(names[:shown]) + more

    rows = []
    for (reason, from_day), rs in groups.items():
        runs = sorted({r.run_id for r in rs})
        insts = sorted({r.instrument for r in rs if r.instrument})  # "": a run a whole
        rows.append(
            {
                "reason": reason,
                "from_day": from_day,
                "runs": len(runs),
                "instruments": len(insts),
                "bar_steps": sum(r.bars for r in rs),
                "which runs": some(runs),
                "which instruments": some(insts),
            }
        )
    return rows


def _print_capped(lines: list[str], limit: int) -> None:
    for line in lines[:limit]:
        err_console.print(styled(line), highlight=False)
    if len(lines) > limit:
        err_console.print(f"  ... and {len(lines) - limit} more", highlight=False)


def grouped_failures(errors: list[str], names: int = 6) -> list[str]:
    """Failures as lines, those with the same words after their instrument in one line
    that names the instruments (QA 2026-12-06: a step failing at its first bar said the
    same line once per instrument, 500 lines for 500 instruments)."""
    groups: dict[str, list[str]] = {}
    for e in errors:
        head, sep, rest = e.partition(": ")
        key = rest if sep else e
        groups.setdefault(key, []).append(head if sep else "")
    out = []
    for rest, heads in groups.items():
        if len(heads) == 1 or "" in heads:
            out += [f"{h}: {rest}" if h else rest for h in heads]
            continue
        shown = ", ".join(heads[:names])
        more = f" and {len(heads) - names} more" if len(heads) > names else ""
        out.append(f"{shown}{more} ({len(heads)} instruments): {rest}")
    return out


def _print_failures(r: object, dry: bool = False) -> None:
    """Pairs whose strategy failed in this command (``dry``: would fail), and pairs not
    recomputed because they failed before and nothing they read has changed."""
    errors = grouped_failures(r.errors)  # type: ignore[attr-defined]
    word = "would fail" if dry else "failed"
    _print_capped([f"[yellow]{word}:[/yellow] {e}" for e in errors], 10)
    lost = getattr(r, "not_run", [])
    _print_capped([f"[yellow]not computed:[/yellow] {e}" for e in lost], 10)
    skipped = r.skipped_failed  # type: ignore[attr-defined]
    if skipped:
        err_console.print(
            styled(
                f"[yellow]{len(skipped)} (run, instrument) pair(s) not recomputed:[/yellow] their "
                "strategy failed on these bars before, and would again (they are retried when a "
                "day they read changes, or by `incbt update --retry-failed`; `incbt drop RUN` "
                "stops a run you no longer want)"
            ),
            highlight=False,
        )
        _print_capped([f"  {e}" for e in skipped], 10)


def _exit_if_failed(r: object, known: bool = True) -> None:
    """Exit 1 when the strategy failed on some (run, instrument) pair in this command,
    or (``known``) failed before and was not retried: the runs asked for are incomplete.

    Everything else is committed; the code tells a script that the results are not
    complete (the failures are printed above, each with the step's error)."""
    lost = len(getattr(r, "not_run", []))
    if lost:  # no strategy failed there: nothing stored was lost (QA 2026-12-06)
        err_console.print(
            styled(
                f"[red]{lost} (run, instrument) pair(s) not computed[/red] (above): their "
                "tasks failed on every try (a worker died, or raised outside the strategy: "
                "the lines above say which); what was stored "
                "before is kept, and every other result is committed. Run the same command "
                "again (a sweep: with --resume; or `incbt update`) to compute them"
            ),
            highlight=False,
        )
    n = len(r.failures(known))  # type: ignore[attr-defined]
    if lost and not n:
        raise typer.Exit(1)
    if n:
        err_console.print(
            styled(
                f"[red]the strategy failed on {n} (run, instrument) pair(s)[/red] (above): their "
                "results are not stored (days stored before go too: a pair holds the "
                "results of every day or none), every other result is. Fix the strategy (an "
                "edited step makes new runs) and run the command again, or drop the runs you "
                "no longer want (`incbt drop RUN`; else they stay, retried when a day they read "
                "changes)"
            ),
            highlight=False,
        )
        raise typer.Exit(1)


def _on_retry(r: Any, whose: str, which: str = "") -> tuple[str, str]:
    """A dry run's words for its days that compute only if a failed pair, computed again
    first, succeeds (``UpdateReport.depending_on_retry``): "at most " before its counts,
    and those days apart after them (both "" where there are none; a real run has none)."""
    n_if, bars_if = r.depending_on_retry()
    if not n_if:
        return "", ""
    return "at most ", (
        f"; {n_if:,} segment(s), {bars_if:,} bar-steps of them {whose}, computed only if its "
        f"base's pair, which failed before and is computed again first, succeeds{which}"
    )


def _print_update(res: object, output: str, dry: bool, store: Any = None) -> None:
    """What an update did or would do; with ``store``, also the runs waiting for bars."""
    r = res.report  # type: ignore[attr-defined]
    machine = output != "table"
    for b in res.broken:  # type: ignore[attr-defined]
        err_console.print(styled(f"[red]cannot recompute:[/red] {b}"), highlight=False)
    for old, new in res.replaced:  # type: ignore[attr-defined]
        verb = "would be replaced" if dry else "is replaced"
        _say(f"run {old} {verb} by {new} (its strategy's code changed)", machine)
    if not r.segments:  # (UpdateResult.up_to_date: when "nothing to compute" is said)
        said = "all up to date" if res.up_to_date else "nothing to compute"  # type: ignore[attr-defined]
        _say(f"{r.runs} run(s): {said}", machine)
    if r.truncated:  # incbt remove took their last days
        verb = "would lose" if dry else "lost"
        _say(
            f"{r.truncated:,} (run, instrument) pair(s) {verb} their results after the last "
            "day of bars left (bars removed)",
            machine,
        )
    if r.segments:  # (none: said once, above; QA 2026-12-06: said twice, in two ways; and
        # not left out after pairs cut by a remove: QA 2026-12-06, the work done unsaid)
        verb = "would compute" if dry else "computed"
        bars = r.bars_processed
        # forks' days after a failed pair computed again first: only if it succeeds, which
        # no dry run can know (incbt.fork.base_failed; QA 2026-12-07: said as computed)
        at_most, of_them = _on_retry(r, "a fork's", " (.stale / --output says which)")
        _say(
            f"{r.runs} run(s): {verb} {at_most}{_segments(r)} in "
            f"{r.tasks:,} task(s), {bars:,} bar-steps"
            + ("" if dry else f" in {r.seconds:.2f} s")
            + _where(r)
            + of_them,
            machine,
        )
    _print_failures(r)
    if r.runs and store is not None:
        _print_waiting(store, machine)
    _print_broken(res)


def _print_broken(res: object) -> None:
    """The runs an update leaves as they are because their strategy cannot load (said
    above, each with why): not up to date, whatever the counts before say."""
    n = len(res.broken)  # type: ignore[attr-defined]
    if n:
        err_console.print(
            styled(
                f"[red]{n} run(s) cannot be recomputed[/red] (above): their strategy does not "
                "load or no longer takes their parameters, so their results stay as they are "
                "and no update brings them up to date. "
                "Fix: restore or repair the strategies file (`runs.source` names it), or drop "
                "the runs (`incbt drop RUN`)"
            ),
            highlight=False,
        )


def _segments(r: Any) -> str:
    """ "N segment(s)" a command computed (or would: a dry run runs no task): those whose
    task never ran (a Ray task whose workers died on every try) said apart (QA
    2026-12-06: "computed 31,200 segment(s), 0 bar-steps" when none had run)."""
    lost = len(getattr(r, "not_run", []))
    if not lost:
        return f"{r.segments:,} segment(s)"
    return f"{r.segments - lost:,} segment(s) ({lost:,} more not computed: see below)"


def _where(r: Any) -> str:
    """Where a report's tasks ran, or would run, worth saying: worker processes (the
    command's own process is the default, said by nothing)."""
    ex = getattr(r, "executor", "")
    return f" ({ex})" if ex and ex != "in this process" else ""


def _print_unfinished_sweeps(res: Any, machine: bool = False, writer: str | None = None) -> None:
    """Sweeps with runs never committed (interrupted before them: the status or update
    result's ``unfinished_sweeps``): no update computes those, a resume does (status
    said nothing of them: found 2026-12-05). ``writer``: the write under way, which may
    be computing them."""
    for name, (n, runs) in res.unfinished_sweeps.items():
        if n:
            why = (
                f"a write is under way ({writer}), which may be computing them; if it "
                "stopped, the same `incbt sweep` command with --resume computes them"
                if writer
                else "it was interrupted: the same `incbt sweep` command with --resume "
                "computes them"
            )
            _say(f"sweep {name!r}: {n:,} of its {runs:,} run(s) not computed yet ({why})", machine)


def _print_waiting(store: Any, machine: bool = False) -> None:
    """The runs with no rows yet because they start after the last day with bars."""
    from incbt.runs import FROM_FIRST_BAR, waiting_for_bars

    waiting = waiting_for_bars(store)
    if waiting:
        shown = ", ".join(
            # a run from each instrument's first bar, with no bar yet: no date to say
            f"{rid} (from {'its first bar: none yet' if start == FROM_FIRST_BAR else start})"
            for rid, start in waiting[:5]
        )
        more = f" and {len(waiting) - 5} more" if len(waiting) > 5 else ""
        _say(
            f"{len(waiting)} run(s) start after the last day with bars of their "
            f"instruments and have no rows until bars reach their start: {shown}{more}",
            machine,
        )


@app.command()
def update(
    paths: Annotated[
        list[str] | None, typer.Argument(help="Files, folders or globs to ingest first (optional).")
    ] = None,
    map_: Annotated[list[str] | None, typer.Option("--map", help="As for ingest.")] = None,
    tz: Annotated[str | None, typer.Option("--tz", help="As for ingest.")] = None,
    ts_unit: Annotated[
        str | None, typer.Option("--ts-unit", help="As for ingest (default ns).")
    ] = None,
    instrument: Annotated[str | None, typer.Option("--instrument", help="As for ingest.")] = None,
    ts_format: Annotated[str | None, typer.Option("--ts-format", help="As for ingest.")] = None,
    header: Annotated[str | None, typer.Option("--header", help="As for ingest.")] = None,
    decimal: Annotated[str | None, typer.Option("--decimal", help="As for ingest.")] = None,
    join_days: Annotated[bool, typer.Option("--join-days", help="As for ingest.")] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Say what would be ingested and computed; write nothing."),
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Compute again the (run, instrument) pairs whose strategy failed before "
            "(by default they wait for a change of a day they read), e.g. after a failure "
            "that was the machine's (memory), not the strategy's.",
        ),
    ] = False,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            help="table, or csv / json: each (run, instrument) pair computed (with "
            "--dry-run: to compute) and why, on stdout; the rest on stderr.",
        ),
    ] = "table",
) -> None:
    """Ingest new data (optional), then recompute exactly what it invalidated in every run."""
    machine = _printed(output)
    given = [
        f
        for f, on in (
            ("--join-days", join_days),
            ("--map", map_),
            ("--tz", tz),
            ("--ts-unit", ts_unit),
            ("--instrument", instrument),
            ("--ts-format", ts_format),
            ("--header", header),
            ("--decimal", decimal),
        )
        if on
    ]
    if given and not paths:  # --map and --tz were ignored without a word (QA 2026-12-06)
        raise UsageError(f"{given[0]} applies to the files update ingests: give them")
    from incbt.bars.inputs import check_reading

    check_reading(ts_unit, instrument, ts_format, header, decimal)  # as ingest does
    st = _open()
    try:
        with RichReporter() as rep:
            res = st.update(
                paths or None,
                dry_run=dry_run,
                columns=_pairs(map_, "--map") or None,
                tz=tz,
                progress=rep,
                join_days=join_days,
                ts_unit=ts_unit,
                instrument=instrument,
                ts_format=ts_format,
                header=header,
                decimal=decimal,
                retry_failed=retry_failed,
            )
    except KeyboardInterrupt as exc:  # after its ingest committed: said (QA 2026-12-06)
        notes = "; ".join(getattr(exc, "__notes__", ()))
        raise typer.Exit(
            _interrupted(f"{notes} (or run the same command again)" if notes else "")
        ) from None
    if res.ingest is not None:
        s = res.ingest
        _say(
            # a dry run says what it would add, as ingest --dry-run does (QA 2026-12-06:
            # "no event" read as "nothing changes")
            f"ingest: {'would add ' if dry_run else ''}{s.days_new:,} new day(s), "
            f"{s.days_corrected:,} correction(s), {s.days_unchanged:,} unchanged"
            + (f"; event {s.seq}" if s.seq else "" if dry_run else "; nothing changed, no event"),
            machine,
        )
        if s.joined_days:  # what --join-days merged, as ingest says it
            _print_corrected(s, lambda line: _say(line, machine))
        _print_data_notes(s)
    # a dry run's files are not in the store yet: they may bring a waiting run's bars
    _print_update(res, output, dry_run, store=None if dry_run and paths else st)
    if dry_run or machine:
        _print_stale(res, output)
    _print_unfinished_sweeps(res, machine)  # no update computes those (QA 2026-12-05)
    if not dry_run:  # pairs that failed before and were not retried are reported, not an error
        _exit_if_failed(res.report, known=False)
    if res.missing_files:  # results files gone (QA 2026-12-07: "all up to date", exit 0)
        _print_lost_files(res.missing_files, [])
        raise typer.Exit(1)
    if res.broken:  # runs it cannot bring up to date (said above)
        raise typer.Exit(1)


@app.command()
def verify(
    runs: Annotated[
        list[str] | None, typer.Argument(help="Run ids or unique prefixes (default: every run).")
    ] = None,
    sweep: Annotated[
        str | None, typer.Option(help="Every run of this sweep (with the RUNs given, if any).")
    ] = None,
    bars: Annotated[
        bool,
        typer.Option(
            "--bars",
            help="Check the bars instead (with RUNs or --sweep: as well): read every day "
            "back and compare it with what was ingested (its content hash).",
        ),
    ] = False,
) -> None:
    """Recompute runs from scratch in memory and compare with the store, bit for bit.

    Exits 1 on any difference and says where."""
    st = _open()
    if bars:
        for r in runs or ():  # named before the bars are read (QA 2026-12-07: read, then
            st.run(r)  # "no run 'nope'" under "verified the bars")
        if sweep is not None and sweep not in st.sweeps():
            st.verify(sweep=sweep)  # says it as verify does (no sweep named ...)
        bars_ok = _verify_bars(st)
        if not (runs or sweep):
            if not bars_ok:
                raise typer.Exit(1)
            return
    with RichReporter() as rep:
        rep_ = st.verify(runs or None, progress=rep, sweep=sweep)
    _print_capped([f"[yellow]failed here as in the store:[/yellow] {f}" for f in rep_.failed], 20)
    _print_capped([f"[red]cannot recompute:[/red] {b}" for b in rep_.broken], 20)
    if rep_.stale:
        shown = ", ".join(rep_.stale[:5]) + (", ..." if len(rep_.stale) > 5 else "")
        writer = held_by(st.path)  # a write under way: the likely cause (QA 2026-12-05)
        why = (
            f"a write is under way ({writer}), which may be computing them; verify once it is done"
            if writer
            else "bars were ingested or corrected since their results, or their strategy's "
            "code changed, or a sweep was interrupted (`incbt status` says which). Fix: run "
            "`incbt update` (or the sweep with --resume), then verify"
        )
        err_console.print(
            styled(
                f"[yellow]not verified:[/yellow] {len(rep_.stale)} run(s) are not up to date "
                f"({shown}): {why}"
            ),
            highlight=False,
            soft_wrap=True,
        )
    if rep_.written_during:
        writer = held_by(st.path)
        err_console.print(
            styled(
                "[yellow]not verified:[/yellow] the store was written while verify ran"
                + (f" ({writer})" if writer else " (another command committed)")
                + f": the {len(rep_.written_during)} difference(s) it saw compared a "
                "recomputation and stored results of two states of the store, which proves "
                "nothing; verify again once the write is done"
            ),
            highlight=False,
            soft_wrap=True,
        )
    if not rep_.differences and not rep_.written_during and rep_.runs:
        typer.echo(
            f"verified {rep_.runs} run(s): {rep_.rows_compared:,} rows identical to a "
            f"from-scratch run ({rep_.bars_processed:,} bar-steps, "
            f"{rep_.seconds:.2f} s)"
        )
    if rep_.ok and (not bars or bars_ok):
        return
    for d in rep_.differences:
        where = f"{d.instrument} " if d.instrument else ""
        said = (  # "row count: * stored 0" read as a cell (QA 2026-12-06)
            f"{d.stored:,} row(s) stored, {d.recomputed:,} recomputed"
            if d.where == "row count"
            else f"{d.where}: {d.column} stored {d.stored!r}, recomputed {d.recomputed!r}"
        )
        err_console.print(
            styled(f"[red]differs:[/red] run {d.run_id} {d.table} {where}{said}"),
            highlight=False,
        )
    if rep_.differences and not bars:  # the results, or the bars they were computed from
        from incbt.catalog import runs as rc

        with st.catalog.env.read() as txn:
            recs = [rc.get_run(st.catalog, txn, r) for r in {d.run_id for d in rep_.differences}]
        own = sorted(r.run_id for r in recs if r is not None and r.source != "builtin")
        err_console.print(
            "the stored results differ from a recomputation over the bars as they are now: "
            "if a bars file was changed outside incbt, `incbt verify --bars` names it"
            + (
                # QA 2026-12-06: a step using random numbers late in the bars was blamed
                # on the bars alone
                f"; or the strategy of run {own[0]}{' and others' if len(own) > 1 else ''} "
                "(a strategies file) does not give the same results twice: random numbers "
                "without a seed among its parameters, a global it changes, its bar index "
                "used as memory, or bars read further back than its warm-up (a resumed "
                "run loads no more) break the strategy contract (README); fix the step (an "
                "edited step makes new runs) and drop these"
                if own
                else ""
            ),
            highlight=False,
        )
    raise typer.Exit(1)


def _verify_bars(st: Any) -> bool:
    """``verify --bars``: every day read back against its ingested content; said."""
    with RichReporter() as rep:
        chk = st.verify_bars(progress=rep)
    shown = [
        f"[red]differs:[/red] bars of {inst} on {day} ({rel}): not the bars ingested"
        for inst, day, rel in chk.differ
    ]
    _print_capped(shown + [f"[red]unreadable:[/red] {why}" for _, why in chk.unreadable], 20)
    if chk.ok:
        typer.echo(
            f"verified the bars: {chk.days:,} day(s) of {chk.instruments:,} instrument(s), "
            f"{chk.bars:,} bars, each equal to what was ingested ({chk.seconds:.2f} s)"
        )
        return True
    files = sorted({rel for *_, rel in chk.differ} | {rel for rel, _ in chk.unreadable})
    err_console.print(
        f"{len(files)} bars file(s) changed outside incbt (a disk fault, a file replaced), "
        f"e.g. {files[0]}. Fix: {BARS_LOST_FIX} (an ingest without --rewrite takes the "
        "same bars as unchanged)",
        highlight=False,
        soft_wrap=True,
    )
    return False


@app.command()
def remove(
    instruments: Annotated[
        list[str], typer.Argument(help="Instruments whose bars to remove (every day of them).")
    ],
    from_: Annotated[
        str | None,
        typer.Option("--from", help="Only their days on or after this date, YYYY-MM-DD."),
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Only their days on or before this date.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say which days would go; write nothing.")
    ] = False,
) -> None:
    """Take bars out of the store, as one event (a mistyped symbol, days taken back).

    `incbt update` then recomputes the runs over them as if never ingested."""
    with RichReporter() as rep:
        s = _open().remove(instruments, start=from_, end=to, dry_run=dry_run, progress=rep)
    verb = "would remove" if dry_run else "removed"
    typer.echo(
        f"{verb} {s.days_removed:,} day(s), {s.rows_removed:,} bars, of "
        f"{len(s.removed)} instrument(s)" + ("" if s.seq is None else f"; event {s.seq}")
    )
    for inst, first, last, n in s.removed[:20]:
        typer.echo(f"  {inst}: {n} day(s), {first}" + ("" if first == last else f" to {last}"))
    if len(s.removed) > 20:
        typer.echo(f"  ... and {len(s.removed) - 20} more")
    if s.emptied:
        typer.echo(
            f"{len(s.emptied)} instrument(s) {'would be' if dry_run else 'are'} left with no "
            f"bar: {', '.join(s.emptied[:10])}" + (", ..." if len(s.emptied) > 10 else "")
        )
    if not dry_run:
        typer.echo(
            "at the next `incbt update` the runs over them follow: their results after the "
            "last day left are cut, and days after a removed one recomputed (`incbt status` "
            "says which); `incbt gc` deletes the old files"
        )


@app.command()
def drop(
    runs: Annotated[
        list[str] | None, typer.Argument(help="Run ids (or unique prefixes) to drop.")
    ] = None,
    sweep: Annotated[
        str | None, typer.Option("--sweep", help="Drop every run of this sweep, and the sweep.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be dropped; write nothing.")
    ] = False,
) -> None:
    """Drop runs no longer wanted: not updated any more, their results not shown."""
    s = _open().drop(runs or [], sweep=sweep, dry_run=dry_run)
    verb = "would drop" if dry_run else "dropped"
    # the runs the user sees counted; those going with them said apart (QA 2026-12-06:
    # "dropped 6 run(s)" for 3 runs shown, the rest their earlier code versions)
    along = (
        f" (and {len(s.unseen)} not shown that go with them: earlier code versions, or "
        "a replacement an update left incomplete)"
        if s.unseen
        else ""
    )
    typer.echo(
        f"{verb} {len(s.runs) - len(s.unseen):,} run(s){along}: {s.pairs:,} (run, instrument) "
        f"pair(s), {s.snapshots:,} snapshot(s)"
        + (f"; sweep(s) {', '.join(s.sweeps)}" if s.sweeps else "")
        + (f"; event {s.seq}" if s.seq else "; nothing to drop, no event" if not dry_run else "")
    )
    if s.already:
        typer.echo(f"dropped before: {', '.join(s.already)}")
    if s.sweep_before:
        typer.echo(f"sweep {s.sweep_before[0]} was dropped before (event {s.sweep_before[1]})")
    if s.shared:
        kept = [f"{rid} ({', '.join(sw)})" for rid, sw in sorted(s.shared.items())]
        typer.echo(
            f"{'would keep' if dry_run else 'kept'} {len(kept)} run(s) other sweeps hold too: "
            + ", ".join(kept[:10])
            + (", ..." if len(kept) > 10 else "")
            + " (name them to drop them as well)"
        )
    if s.runs and not dry_run:
        typer.echo("registering one again (the same backtest or sweep) computes it from scratch")


@app.command()
def gc(
    before: Annotated[
        int | None,
        typer.Option(
            "--before",
            help="Remove only files superseded at or before event N: --as-of N and "
            "later still show exactly the same bars.",
        ),
    ] = None,
    keep_days: Annotated[
        float | None,
        typer.Option(
            "--keep-days",
            help="Keep what time travel to the last N days needs (--before the first "
            "event newer than N days ago).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed; write nothing.")
    ] = False,
    catalog: Annotated[
        bool,
        typer.Option(
            "--catalog",
            help="Then compact the catalog's file (LMDB never shrinks it: after drops it "
            "keeps the pages they freed). Writes a copy of its pages in use, then swaps it "
            "in at once.",
        ),
    ] = False,
) -> None:
    """Delete superseded bars files kept for --as-of, and result rows SQL no longer shows.

    Bars: every superseded file by default (--before, --keep-days keep some).
    Results: the rows of dropped or replaced runs, and rows recomputed since.
    --catalog: the catalog's unused pages too."""
    s = _open().gc(before=before, keep_days=keep_days, dry_run=dry_run, catalog=catalog)
    verb = "would remove" if dry_run else "removed"
    r = s.results
    # "no event" only where the results write none either (QA 2026-12-07: said above
    # "results: rewrote 22 batch(es)", whose compaction is an event)
    results_work = r is not None and bool(r.batches or r.files_removed)
    typer.echo(
        f"{verb} {s.files_removed} superseded bars file(s), {s.bytes_freed:,} bytes"
        + (
            f"; event {s.seq}"
            if s.seq
            else ""
            if dry_run or results_work
            else "; nothing to remove, no event"
        )
    )
    if s.files_kept:
        typer.echo(f"kept {s.files_kept} superseded file(s), {s.bytes_kept:,} bytes, for --as-of")
    typer.echo(
        f"--as-of reaches back to event {s.horizon}" if s.horizon else "--as-of reaches every event"
    )
    if r is not None and r.batches:
        if dry_run:
            typer.echo(
                f"results: would rewrite {r.batches} batch(es) ({r.bytes_rewritten:,} bytes) "
                f"as one, without {r.dropped('daily'):,} daily rows and "
                f"{r.dropped('fills'):,} fills of dropped or replaced runs or recomputed since"
            )
        else:
            typer.echo(
                f"results: rewrote {r.batches} batch(es) as one, without "
                f"{r.dropped('daily'):,} daily rows and {r.dropped('fills'):,} fills of "
                "dropped or replaced runs or recomputed since"
            )
    if r is not None and r.files_removed:
        typer.echo(
            f"results: would remove {r.files_removed} file(s), about {r.bytes_freed:,} bytes freed"
            if dry_run
            else f"results: removed {r.files_removed} file(s), {r.bytes_freed:,} bytes freed"
        )
    c = s.catalog
    if c is not None and c.skipped:
        typer.echo(
            f"catalog: {c.bytes_before:,} bytes, about {c.bytes_freed:,} of them free: "
            f"{'would be left' if dry_run else 'left'} as it is (compacted once a tenth "
            "of it, and 64 KiB, is free)"
        )
    elif c is not None:
        typer.echo(
            f"catalog: would take about {c.bytes_after:,} of its {c.bytes_before:,} bytes "
            f"compacted ({c.bytes_freed:,} freed)"
            if dry_run
            else f"catalog: compacted from {c.bytes_before:,} to {c.bytes_after:,} bytes "
            f"({c.bytes_freed:,} freed) in {c.seconds:.2f} s"
        )


@app.command()
def repair(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be repaired; write nothing.")
    ] = False,
) -> None:
    """Repair results files missing or damaged: recompute the runs that had rows there.

    Results are derived from the bars: each results batch with a file missing or
    unreadable is forgotten, and the runs with rows in it are computed again from
    scratch. Bars files missing or damaged are said, not repaired (exit 1): restore
    them, or ingest the data again."""
    try:
        with RichReporter() as rep:
            r = _open().repair(dry_run=dry_run, progress=rep)
    except KeyboardInterrupt:
        raise typer.Exit(
            _interrupted("run `incbt repair` (or `incbt update`) again to finish")
        ) from None
    if r.blocked:
        pass  # said below, with the bars files
    elif not r.batches and not r.unfinished:
        typer.echo("no results file missing or damaged: nothing to repair")
    else:
        said = []
        if r.batches:
            verb = "would forget" if dry_run else "forgot"
            said.append(
                f"{verb} {len(r.batches)} results batch(es) ({_few(r.files)} missing or unreadable)"
            )
        if r.unfinished:  # a repair cut short after it forgot them (QA 2026-12-06)
            said.append(f"{len(r.unfinished)} run(s) an earlier repair left to compute")
        if dry_run:
            typer.echo(
                "; ".join(said) + f": would compute {len(r.runs)} run(s) again from scratch "
                f"({r.segments:,} segment(s), {r.bar_steps:,} bar-steps)"
            )
        else:
            rep_ = r.report
            done = (
                f"computed {len(r.runs)} run(s) again: {rep_.bars_processed:,} bar-steps "
                f"in {rep_.seconds:.1f} s"
                if rep_ is not None
                else "no run to compute"
            )
            typer.echo("; ".join(said) + f"; {done}" + (f"; event {r.seq}" if r.seq else ""))
    if r.bars_files:
        err_console.print(
            styled(
                f"[red]{len(r.bars_files)} bars file(s) missing or damaged[/red] "
                f"({_few(r.bars_files)}): bars are the store's data, not "
                f"derived; {BARS_LOST_FIX}"
                + (
                    f"; {len(r.batches)} results batch(es) lost wait for them (nothing was "
                    "forgotten: the runs could not be computed)"
                    if r.blocked and r.batches
                    else ""
                )
            ),
            highlight=False,
        )
        raise typer.Exit(1)
    if not dry_run and r.report is not None:
        _exit_if_failed(r.report, known=False)


def _few(items: list[str]) -> str:
    """The first three of ``items``, and how many more."""
    return ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")


def _exit(code: int) -> None:
    """Exit with ``code``. After Ctrl-C or SIGTERM (said, cleaned up on the way out)
    where the executor's threads still run (their kernels, each to its task's end:
    minutes where a task is big, QA 2026-12-06), now, not in the teardown that waits
    for them."""
    from incbt.runs import TASK_THREADS

    if (
        _SAID
        and code in (130, 143)
        and any(t.is_alive() and t.name.startswith(TASK_THREADS) for t in threading.enumerate())
    ):
        _fast_exit(code)
    sys.exit(code)


def _fast_exit(code: int = 0) -> None:
    """Skip the interpreter's teardown (~0.3 s of Numba/LLVM and Arrow destructors).

    Safe after success: every write is fsynced and committed before a command
    returns; and after Ctrl-C or SIGTERM (130, 143), once the command has cleaned up
    on its way out: there the teardown would also wait for the executor's threads,
    whose kernels run to the end of their tasks (minutes where a task is big: QA
    2026-12-06), only for their results to be dropped. Not when this process started
    a local Ray, whose shutdown must run.
    """
    ray_exec = sys.modules.get("incbt.execute.ray_exec")
    if ray_exec is not None and getattr(ray_exec, "_started_here", False):
        return
    with contextlib.suppress(OSError):
        sys.stdout.flush()
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    os._exit(code)


# A command's process is short: what survives the young collections (modules, Numba's
# kernels and types, the catalog's caches) lives until it exits, so the collections of
# the oldest generation, which traverse all of it, find nothing. Measured 2026-12-04:
# an update of 500 instruments x 100 runs ran 4 of them (128 ms, 0 objects collected)
# and a 20-point sweep 2 (57 ms, 0). A command skips them; the young generations are
# collected as usual (they do find cyclic garbage).
OLDEST_GENERATION_THRESHOLD = 1_000_000


def _only_young_collections() -> None:
    young, middle, _ = pygc.get_threshold()
    pygc.set_threshold(young, middle, OLDEST_GENERATION_THRESHOLD)


def _pyarrow_without_pandas() -> None:
    """Spare a command pyarrow's import of pandas (~0.2 s) when nothing asks for pandas.

    pyarrow looks for pandas once, at its first array, to recognise pandas inputs:
    with pandas installed that imports it whole. The CLI never hands pyarrow a pandas
    object, so pyarrow looks while ``import pandas`` fails, and then pandas imports
    as usual: code that wants it (``incbt report``, a strategies file) gets it, and
    pyarrow's conversions to pandas import it then (they retry; only the look is
    remembered).
    """
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    class NoPandas:
        @staticmethod
        def find_spec(name: str, *_: object) -> None:
            if name == "pandas":
                raise ModuleNotFoundError("not now", name="pandas")

    sys.meta_path.insert(0, NoPandas)  # type: ignore[arg-type]
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(NoPandas)  # type: ignore[arg-type]


_TERMINATED = False  # SIGTERM arrived
_SAID = False  # the interruption was said
# how to finish what an interruption stopped, where the command's own words are not the
# default's (a sweep: --resume), wherever the interruption lands in the command
_FINISH = "run the same command again to finish it"


def _terminate(signum: int, frame: Any) -> None:
    global _TERMINATED
    _TERMINATED = True
    raise KeyboardInterrupt


# Ctrl-C or SIGTERM stop a command within this time, or it stops at once (a second one:
# at once). Python runs a signal's handler in the main thread between two of its
# instructions; a strategy's step that never returns (a loop), compiled, gives it none:
# the command ran on after both (QA 2026-12-07), and only kill -9 stopped it.
STOP_GRACE_SECONDS = 10.0


def _watch_stops() -> None:
    """A thread that sees Ctrl-C and SIGTERM as they arrive (the signal module writes
    each to a pipe of ours, from its C handler, whatever the main thread is doing) and
    ends the process if the command has not stopped ``STOP_GRACE_SECONDS`` after one, or
    at a second. The kernels release the GIL (``nogil``), so this thread runs while the
    main thread is inside one. Ending so is safe for the store: every write is an LMDB
    transaction, and a killed one is as if never begun (as kill -9)."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except ValueError:  # not the main thread (a test calling main from another)
        os.close(r)
        os.close(w)
        return

    def watch() -> None:
        import select
        import time

        stops = {int(signal.SIGINT), int(signal.SIGTERM)}
        deadline: float | None = None
        last = 0
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if select.select([r], [], [], wait)[0]:
                got = [b for b in os.read(r, 64) if b in stops]
                if not got:
                    continue
                if deadline is not None:  # a second one
                    _stop_hard(got[-1], "at a second signal")
                last, deadline = got[-1], time.monotonic() + STOP_GRACE_SECONDS
            elif deadline is not None:
                _stop_hard(last, f"{STOP_GRACE_SECONDS:g} s after the signal")

    threading.Thread(target=watch, name="incbt-stop-watch", daemon=True).start()


def _stop_hard(signum: int, when: str) -> None:
    """End the process now, saying so (the command did not stop by itself)."""
    what = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
    os.write(
        2,
        (
            f"{what}: stopped at once, {when} (the command went on: a strategy's step "
            "that does not return, say); what was committed before is kept, and nothing "
            f"half-written is (the next write removes it); {_FINISH}\n"
        ).encode(),
    )
    os._exit(143 if signum == signal.SIGTERM else 130)


def _interrupted(fix: str = "") -> int:
    """Say that Ctrl-C (or SIGTERM) stopped the command; its exit code, 130 (143)."""
    global _SAID
    from incbt.catalog import lock

    what = "terminated (SIGTERM)" if _TERMINATED else "interrupted"
    _SAID = True
    if not lock.taken():  # a command that reads (status, query, ...): no "to finish" (QA)
        err_console.print(f"{what}: nothing was written", highlight=False)
    else:
        from incbt.runs import COMMITTED

        done = (  # what the computing kept (QA 2026-12-06: said of 0 pairs as of many), of
            # the pairs planned when it stopped: forks' are planned after their bases' (an
            # update stopped before them had more, QA 2026-12-07; counting them ahead would
            # plan every fork twice in every update)
            f" ({COMMITTED['pairs']:,} of the {COMMITTED['planned']:,} (run, instrument) pairs "
            "planned so far)"
            if COMMITTED["planned"]
            else ""
        )
        err_console.print(
            f"{what}: what was committed before it is kept{done}, and nothing half-written "
            "is (the next write removes it); "
            + (
                fix
                # (status: a run not committed yet is not registered, so not "stale")
                or _FINISH
            ),
            highlight=False,
        )
    return 143 if _TERMINATED else 130


def _show_warning(message: Warning | str, *_: object, **__: object) -> None:
    """A warning as a command says one (a worker process died, say): a line on stderr,
    not Python's file:line form."""
    err_console.print(
        styled(f"[yellow]warning:[/yellow] {message}"), highlight=False, soft_wrap=True
    )


@functools.cache
def _click_app() -> Any:
    """typer's click group of ``app``: built once a process (~30 ms a build; it was built
    twice a command, once to check the options given twice and again to run it).
    ``app``'s own ``__call__`` adds only its traceback hook, which :func:`main` never
    reaches: it catches every exception (and ``pretty_exceptions_enable`` is off)."""
    return typer.main.get_command(app)


def _given_twice(argv: list[str]) -> str | None:
    """The first option of the command that ``argv`` gives twice, unless it repeats by
    design (``-p``, ``-g``, ``--kind``...): click keeps the last value without a word,
    so ``incbt drop --sweep A --sweep B`` dropped B alone (found 2026-12-05). Also an
    option of incbt itself given after the command (``incbt status --store X``)."""
    group: Any = _click_app()  # typer's own click: by its attributes
    commands = getattr(group, "commands", {})
    cmd = group
    seen: dict[str, str] = {}
    args = iter(argv)
    for a in args:
        if a == "--":
            break
        if not a.startswith("-") or a == "-":
            if cmd is group and a in commands:  # the command: its options from now
                cmd, seen = commands[a], {}
            continue
        flag = a.split("=", 1)[0]
        param = next(
            (
                p
                for p in cmd.params
                if getattr(p, "param_type_name", "") == "option" and flag in p.opts
            ),
            None,
        )
        if param is None:
            if cmd is not group and any(
                flag in p.opts for p in group.params if hasattr(p, "opts")
            ):  # `incbt status --store X`: click said "No such option" (QA 2026-12-05)
                return (
                    f"{flag} is an option of incbt itself: give it before the command "
                    f"(incbt {flag} VALUE {cmd.name} ...)"
                )
            continue  # click says what is wrong with it
        if not param.is_flag and "=" not in a:
            next(args, None)  # its value, whatever it looks like
        if param.multiple or param.count:
            continue
        key = param.name or flag
        if key in seen:
            return f"{seen[key]} is given twice: give it once" + (
                "" if seen[key] == flag else f" (as {seen[key]} or {flag})"
            )
        seen[key] = flag
    return None


class _WholeWrites(io.RawIOBase):
    """Standard output's raw writer: a write goes on until every byte is written, or the
    OS says why not (raised). Python's own let a short write of a disk filling up pass:
    `incbt query ... --output csv > FILE` on a full disk exited 0 with the file cut
    short (QA 2026-12-06; `python -c "import sys; sys.stdout.write('x' * 10**6)" >
    FILE` does the same)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd
        self.failed = False  # raised once: what is written after is dropped

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def write(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if self.failed:  # the error was raised and is being said: the interpreter's last
            return len(view)  # flush must not raise it again (exit 120, a traceback)
        done = 0
        while done < len(view):
            try:
                done += os.write(self.fd, view[done:])
            except OSError as exc:  # named: the output, not a store's file
                self.failed = True
                if exc.errno == errno.EPIPE:
                    raise  # the reader went away: main says nothing (exit 0)
                raise OSError(exc.errno, exc.strerror, STDOUT) from None
        return done


def _whole_stdout() -> None:
    """Standard output through :class:`_WholeWrites` where it is a file or a pipe (a
    terminal, or a test's captured stream, keeps its own)."""
    out = sys.stdout
    try:
        fd = out.fileno()
        if os.isatty(fd):
            return
    except (AttributeError, OSError, ValueError):
        return
    out.flush()
    raw = _WholeWrites(fd)
    # unbuffered as Python makes it (python -u, PYTHONUNBUFFERED): each write goes out
    # as it is made, in order with stderr's (QA 2026-12-06)
    unbuffered = bool(getattr(out, "write_through", False))
    sys.stdout = io.TextIOWrapper(
        raw if unbuffered else io.BufferedWriter(raw, buffer_size=1 << 16),  # type: ignore[arg-type]
        encoding=out.encoding,
        errors=out.errors,
        line_buffering=bool(out.line_buffering),
        write_through=unbuffered,
    )


def main() -> None:
    """Entry point: run the app, turning errors into one line and an exit code."""
    _whole_stdout()
    import incbt

    incbt._ends_with_command = True
    os.environ.setdefault(
        "NUMBA_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "incbt-numba")
    )
    _pyarrow_without_pandas()
    _only_young_collections()
    # the commands print a strategy's failures themselves, and exit 1 (_exit_if_failed)
    warnings.filterwarnings("ignore", category=StrategyFailureWarning)
    warnings.filterwarnings("ignore", category=DataNoteWarning)  # said as notes
    warnings.showwarning = _show_warning  # type: ignore[assignment]
    # SIGTERM (kill, a scheduler's timeout) stops a command as Ctrl-C does: what is
    # committed stays, the rest is abandoned, the command says so (exit 143, not 130)
    signal.signal(signal.SIGTERM, _terminate)
    _watch_stops()
    try:  # from here a signal is said in a line (QA 2026-12-06: a traceback before this)
        twice = _given_twice(sys.argv[1:])
        if twice:
            err_console.print(styled(f"[red]error:[/red] {twice}"), highlight=False, soft_wrap=True)
            sys.exit(2)
        code = _click_app()(standalone_mode=False)  # click returns typer.Exit codes here
        if code == 130 and not _SAID:  # Ctrl-C in a command: typer's Exit(130), silent
            code = _interrupted()
        if isinstance(code, int) and code:
            _exit(code)
        _fast_exit()
    except IncbtError as exc:
        err_console.print(
            styled(f"[red]error:[/red] {_with_notes(exc, exc)}"), highlight=False, soft_wrap=True
        )
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # outside the command (typer catches it inside)
        _exit(_interrupted())
    except typer.Exit as exc:
        _exit(exc.exit_code)
    except SystemExit as exc:
        # the reader of stdout went away (`incbt query ... | head`): click exits 1 there;
        # the output was only cut short by whoever read it, as with csv and json, so 0
        ctx = exc.__context__
        if exc.code == 1 and isinstance(ctx, OSError) and ctx.errno == errno.EPIPE:
            _reader_gone()
        raise
    except BrokenPipeError:  # the reader went away, seen as the output was flushed
        _reader_gone()  # as when click sees it (above)
    except typer.Abort:  # click's words for a Ctrl-C (or SIGTERM) outside a command
        _exit(_interrupted() if not _SAID else 143 if _TERMINATED else 130)
    except typer.TyperException as exc:  # usage errors: bad option, missing argument
        # one line, as every other error (QA 2026-12-06: click's three, "Usage: ...")
        ctx = getattr(exc, "ctx", None)
        where = getattr(ctx, "command_path", "") or "incbt"
        if where == "incbt":  # an option's missing value is said in the group's context
            commands = getattr(_click_app(), "commands", {})
            named = next((a for a in sys.argv[1:] if a in commands), None)
            where = f"incbt {named}" if named else where
        text = exc.format_message().rstrip(".")  # type: ignore[attr-defined]
        if type(exc).__name__ == "NoArgsIsHelpError":  # `incbt` alone: typer printed its
            text = "Missing command"  # help, the message (QA 2026-12-07: 'error: . Fix:')
        end = "" if text.endswith(("?", "!")) else "."
        err_console.print(
            styled(f"[red]error:[/red] {text}{end} Fix: `{where} --help` lists what it takes"),
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)
    except Exception as exc:  # a dependency error that escaped its boundary
        mapped = map_dependency_error(exc, "incbt")
        err_console.print(
            styled(f"[red]error:[/red] {_with_notes(mapped, exc)}"),
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(mapped.exit_code)


def _reader_gone() -> None:
    """The reader of stdout went away: exit 0 without a word (nothing more goes out)."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)


def _with_notes(said: BaseException, raised: BaseException) -> str:
    """An error's line, with the notes added to it on its way up (``add_note``: what
    was committed before it, say)."""
    notes = [n for n in getattr(raised, "__notes__", ()) if n not in str(said)]
    return "; ".join([str(said), *notes])


if __name__ == "__main__":
    main()
