"""Naive local times over an autumn change: the repeated hour read in the rows' order.

Futures and crypto minute files exported in local time (CME data in Chicago or New
York time) write the hour a fall-back repeats in order: 01:58, 01:59 (daylight), then
01:00, 01:01, ... (standard). ``--tz ZONE`` reads such a time as the earlier (daylight)
instant unless its instrument's row before it is already past that, then as the later
(standard) one; the bars stored are bit for bit the same bars written with offsets, in
every reader (Arrow's CSV parser, the text parser, ``--ts-format``, ``--map
ts=Date+Time``, Parquet, yfinance's files) and in a big file read in parts, a part
starting inside the repeated hour. A time whose rows before it do not show which pass
it is in (the file starts in the second one; one row alone) is refused as before,
naming its line; a time a spring change skips is refused as before (QA 2026-12-07).
"""

from __future__ import annotations

import gzip
import os
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_process import run_incbt, without_incbt_settings
from conftest import bits
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import incbt
from incbt.bars.ingest import PARTS_PER_CHUNK
from incbt.bars.inputs import read_input, resolving_after
from incbt.bars.parts import split as split_in
from incbt.catalog.env import close_env
from incbt.errors import BadInputError

NY = "America/New_York"
HEAD = "instrument,ts,open,high,low,close,volume"
BARS = "SELECT instrument, ts, open, high, low, close, volume FROM bars ORDER BY instrument, ts"
# the UTC instant of each zone's fall-back in 2024 (its repeated hour, or half hour, after)
FALL = {
    NY: datetime(2024, 11, 3, 6, tzinfo=UTC),
    "America/Chicago": datetime(2024, 11, 3, 7, tzinfo=UTC),
    "Europe/Berlin": datetime(2024, 10, 27, 1, tzinfo=UTC),
    "Australia/Lord_Howe": datetime(2024, 4, 6, 15, tzinfo=UTC),  # 30 minutes
}


def _bars(stamps: list[tuple[str, datetime]], seed: int = 0) -> list[tuple]:
    """(instrument, UTC instant, o, h, l, c, v) of each (instrument, instant), in order."""
    rng = np.random.default_rng(seed)
    out = []
    for inst, t in stamps:
        o = round(100 + rng.normal(), 4)
        c = round(o + rng.normal(0, 0.1), 4)
        out.append((inst, t, o, max(o, c) + 0.05, min(o, c) - 0.05, c, float(rng.integers(9))))
    return out


def _local(t: datetime, tz: str) -> datetime:
    return t.astimezone(ZoneInfo(tz))


def _write(path: str, bars: list[tuple], tz: str | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """The bars as CSV: naive local times in ``tz`` (``fmt``), or with offsets (None)."""
    with open(path, "w") as f:
        f.write(HEAD + "\n")
        for inst, t, *v in bars:
            ts = _local(t, tz).strftime(fmt) if tz else t.isoformat()
            f.write(",".join([inst, ts, *map(str, v)]) + "\n")
    return path


def _series(tz: str, n: int, start_min: int = -90, insts=("ES",), interleave=True) -> list:
    """``n`` minute bars of each instrument from ``start_min`` minutes before the change."""
    t0 = FALL[tz] + timedelta(minutes=start_min)
    stamps = [(i, t0 + timedelta(minutes=k)) for i in insts for k in range(n)]
    if interleave:
        stamps.sort(key=lambda x: (x[1], x[0]))
    return _bars(stamps)


def _same(a, b) -> None:
    assert a.names == b.names
    assert np.array_equal(a.codes, b.codes)
    assert np.array_equal(a.block.view(np.int64), b.block.view(np.int64))
    assert np.array_equal(a.rows, b.rows)


def _placed(bars: list[tuple], tz: str) -> int | None:
    """The 0-based row the rule cannot place (first of its instrument in the repeated
    hour), or -1 where it would place one wrongly (a second-pass row after a first-pass
    row earlier on the clock: a gap of an hour in the bars), else None."""
    last: dict[str, datetime] = {}
    for k, (inst, t, *_) in enumerate(bars):
        loc = _local(t, tz).replace(tzinfo=None)
        zone = ZoneInfo(tz)
        early = loc.replace(tzinfo=zone, fold=0).astimezone(UTC)
        late = loc.replace(tzinfo=zone, fold=1).astimezone(UTC)
        if early != late:
            if inst not in last:
                return k
            if t == late and early > last[inst]:
                return -1
        last[inst] = t
    return None


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    tz=st.sampled_from(sorted(FALL)),
    insts=st.integers(1, 3),
    interleave=st.booleans(),
    spans=st.lists(st.tuples(st.integers(-180, -50), st.integers(1, 260)), min_size=3, max_size=3),
    drops=st.sets(st.integers(0, 400), max_size=40),
    reader=st.sampled_from(["arrow", "ts-format", "parquet"]),
)
def test_naive_over_fall_back_as_offsets(tmp_path, tz, insts, interleave, spans, drops, reader):
    """Random minute bars of 1-3 instruments across a fall-back, interleaved or one
    instrument after another, written naive in ``tz``: read as the same bars with
    offsets, or refused naming the row nothing before places."""
    names = ["ES", "NQ", "CL"][:insts]
    stamps = []
    for j, name in enumerate(names):
        start, n = spans[j]
        t0 = FALL[tz] + timedelta(minutes=start)
        stamps += [(name, t0 + timedelta(minutes=k)) for k in range(n) if (k + 97 * j) not in drops]
    if interleave:
        stamps.sort(key=lambda x: (x[1], x[0]))
    bars = _bars(stamps)
    if not bars:
        return
    d = str(tmp_path)
    want = read_input(_write(os.path.join(d, "off.csv"), bars, None))
    fmt = "%Y-%m-%d %H:%M:%S" if reader != "ts-format" else "%d.%m.%Y %H:%M"
    path = _write(os.path.join(d, "naive.csv"), bars, tz, fmt)
    kw: dict = {"ts_format": fmt} if reader == "ts-format" else {}
    if reader == "parquet":
        df = pd.read_csv(path, parse_dates=["ts"])
        path = os.path.join(d, "naive.parquet")
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    unplaced = _placed(bars, tz)
    twice = any(_local(t, tz).fold for _, t, *_ in bars)
    event({None: "placed", -1: "an hour missing"}.get(unplaced, "refused") + f", fold {twice}")
    if unplaced == -1:  # the order cannot show it (an hour missing): not asked
        return
    if unplaced is not None:
        with pytest.raises(BadInputError, match="is ambiguous in") as e:
            read_input(path, tz=tz, **kw)
        where = (e.value.line - 2) if reader != "parquet" else (e.value.row - 1)
        assert where == unplaced, str(e.value)
        assert e.value.instrument == bars[unplaced][0]
        return
    _same(read_input(path, tz=tz, **kw), want)


@pytest.mark.parametrize("interleave", [True, False])
def test_store_bars_and_session_days(tmp_path, interleave):
    """Stored through the store: bits and days as the file with offsets gives them, in a
    store whose session days are New York's (the change is inside one day, 2024-11-03:
    25 hours of it) and in a UTC store (the repeated hour is 05:00-06:59 UTC)."""
    bars = _series(NY, 6 * 60, start_min=-5 * 60, insts=("ES", "NQ"), interleave=interleave)
    naive = _write(str(tmp_path / "naive.csv"), bars, NY)
    off = _write(str(tmp_path / "off.csv"), bars, None)
    for session in (NY, "UTC"):
        a = incbt.init(str(tmp_path / f"a-{session[:2]}"), session_tz=session)
        b = incbt.init(str(tmp_path / f"b-{session[:2]}"), session_tz=session)
        a.ingest(naive, tz=NY)
        b.ingest(off)
        assert bits(a.sql(BARS)).equals(bits(b.sql(BARS)))
        days = (
            "SELECT instrument, date, count(*) AS n FROM bars "
            "GROUP BY instrument, date ORDER BY instrument, date"
        )
        got = a.sql(days).to_pylist()
        assert got == b.sql(days).to_pylist()
        z = ZoneInfo(session)
        want: dict = {}
        for inst, t, *_ in bars:
            key = (inst, t.astimezone(z).date())
            want[key] = want.get(key, 0) + 1
        assert [(r["instrument"], r["date"], r["n"]) for r in got] == [
            (i, dt, n) for (i, dt), n in sorted(want.items())
        ]
        for s in (a, b):
            close_env(os.path.join(s.path, "catalog"))


@pytest.mark.parametrize(
    "rows, line, value",
    [
        # the file starts in the second pass: nothing before shows it
        (["ES,2024-11-03 01:10:00", "ES,2024-11-03 01:11:00"], 2, "2024-11-03 01:10:00"),
        # one row of the hour, nothing of its instrument before it
        (["ES,2024-11-03 00:59:00", "NQ,2024-11-03 01:30:00"], 3, "2024-11-03 01:30:00"),
        # an instrument first seen in the second pass, another's rows before it
        (
            [
                "ES,2024-11-03 00:59:00",
                "ES,2024-11-03 01:59:00",
                "ES,2024-11-03 01:00:00",
                "NQ,2024-11-03 01:01:00",
            ],
            5,
            "2024-11-03 01:01:00",
        ),
    ],
)
def test_unplaced_refused(tmp_path, rows, line, value):
    """Refused as before, naming the line, instrument and value: the store unchanged."""
    p = tmp_path / "bad.csv"
    p.write_text(HEAD + "\n" + "".join(r + ",1,2,0.5,1.5,3\n" for r in rows))
    s = incbt.init(str(tmp_path / "s"))
    with pytest.raises(BadInputError) as e:
        s.ingest(str(p), tz=NY)
    assert type(e.value) is BadInputError  # not the parts' AmbiguousTime
    assert e.value.line == line and e.value.value == value, str(e.value)
    assert "ts is ambiguous in America/New_York: that hour occurs twice there" in str(e.value)
    assert "Fix: give timestamps with an explicit UTC offset" in str(e.value)
    assert s.sql("SELECT count(*) AS n FROM bars").to_pylist() == [{"n": 0}]


def test_spring_gap_still_refused(tmp_path):
    """A time a spring change skips does not exist: refused as before, even after a
    resolved repeated hour, and the first bad row is the one named."""
    rows = [
        "ES,2024-03-10 01:59:00",
        "ES,2024-03-10 02:30:00",
        "ES,2024-11-03 01:59:00",
        "ES,2024-11-03 01:00:00",
    ]
    p = tmp_path / "gap.csv"
    p.write_text(HEAD + "\n" + "".join(r + ",1,2,0.5,1.5,3\n" for r in rows))
    with pytest.raises(BadInputError, match="does not exist in America/New_York") as e:
        read_input(str(p), tz=NY)
    assert e.value.line == 3
    for rows, match in (  # whichever comes first in the file is named
        (["NQ,2024-11-03 01:30:00", "ES,2024-03-10 02:30:00"], "is ambiguous"),
        (["ES,2024-03-10 02:30:00", "NQ,2024-11-03 01:30:00"], "does not exist"),
    ):
        p.write_text(HEAD + "\n" + "".join(r + ",1,2,0.5,1.5,3\n" for r in rows))
        with pytest.raises(BadInputError, match=match) as e:
            read_input(str(p), tz=NY)
        assert e.value.line == 2


@pytest.mark.parametrize("second_pass", [False, True])
def test_row_written_twice_in_the_hour_refused(tmp_path, second_pass):
    """A first-pass row written twice (a vendor's repeated line, or the two passes
    sorted by the clock) is refused at its line saying both: not read as the second
    pass's time, which shifted the first pass's rest an hour later and, the second pass
    missing, stored them silently (QA 2026-12-07); after a part's end at that time, the
    same."""
    rows = ["00:59", "01:29", "01:30", "01:30", "01:31"]
    rows += ["01:59", "01:00", "01:01", "02:00"] if second_pass else ["02:00"]
    p = tmp_path / "dup.csv"
    p.write_text(HEAD + "\n" + "".join(f"ES,2024-11-03 {r}:00,1,2,0.5,1.5,3\n" for r in rows))
    s = incbt.init(str(tmp_path / "s"))
    with pytest.raises(BadInputError, match="is written twice in America/New_York's rep") as e:
        s.ingest(str(p), tz=NY)
    assert e.value.line == 5 and e.value.value == "2024-11-03 01:30:00", str(e.value)
    assert "remove the row if it is a duplicate; if the two are the hour's two" in str(e.value)
    assert s.sql("SELECT count(*) AS n FROM bars").to_pylist() == [{"n": 0}]
    # a part starting with the time the part before it ended at: refused as well
    q = tmp_path / "part.csv"
    q.write_text(HEAD + "\nES,2024-11-03 01:30:00,1,2,0.5,1.5,3\n")
    end = int((FALL[NY] + timedelta(minutes=-30)).timestamp()) * 10**9  # 01:30 EDT
    with resolving_after({"ES": end}), pytest.raises(BadInputError, match="written twice"):
        read_input(str(q), tz=NY)
    q.write_text(HEAD + "\nES,2024-11-03 01:31:00,1,2,0.5,1.5,3\n")  # the next minute
    with resolving_after({"ES": end}):
        got = read_input(str(q), tz=NY)
    assert got.block[0].view(np.int64).tolist() == [end + 60 * 10**9]


def test_date_time_columns_and_text_parser(tmp_path):
    """``--map ts=Date+Time`` and the text parser (a fraction of a second written on one
    row sends Arrow's read of the column to it) read the hour as the offsets do."""
    bars = _series(NY, 150, insts=("ES", "NQ"))
    want = read_input(_write(str(tmp_path / "off.csv"), bars, None))
    p = tmp_path / "dt.csv"
    with open(p, "w") as f:
        f.write("instrument,Date,Time,open,high,low,close,volume\n")
        for inst, t, *v in bars:
            loc = _local(t, NY)
            f.write(
                ",".join([inst, loc.strftime("%Y-%m-%d"), loc.strftime("%H:%M:%S"), *map(str, v)])
                + "\n"
            )
    _same(read_input(str(p), {"ts": "Date+Time"}, tz=NY), want)
    text = _write(str(tmp_path / "text.csv"), bars, NY, "%Y-%m-%dT%H:%M:%S")
    _same(read_input(text, tz=NY), want)


def test_parquet_naive_column(tmp_path):
    """A Parquet file's naive timestamp column (pandas writes them so)."""
    bars = _series(NY, 200, insts=("ES", "NQ", "CL"), interleave=False)
    want = read_input(_write(str(tmp_path / "off.csv"), bars, None))
    df = pd.DataFrame(bars, columns=HEAD.split(","))
    df["ts"] = pd.DatetimeIndex(df["ts"]).tz_convert(NY).tz_localize(None)
    p = str(tmp_path / "naive.parquet")
    df.to_parquet(p, index=False)
    assert pq.read_schema(p).field("ts").type.tz is None
    _same(read_input(p, tz=NY), want)
    by_time = sorted(bars, key=lambda b: (b[1], b[0]))  # interleaved, ts as text
    want = read_input(_write(str(tmp_path / "off2.csv"), by_time, None))
    df = pd.DataFrame(by_time, columns=HEAD.split(","))
    df["ts"] = [_local(t, NY).strftime("%Y-%m-%d %H:%M:%S") for t in df["ts"]]
    df.to_parquet(p, index=False)
    _same(read_input(p, tz=NY), want)


def test_yfinance_file(tmp_path):
    """yfinance's file of several tickers, its Datetime naive (a row a minute, each
    ticker's fields in it): the rows' order is every ticker's."""
    from test_yfinance_csv import bars_of, write_yf

    bars = bars_of(["ES", "NQ"], n=150, start="2024-11-03 04:30")
    p = str(tmp_path / "yf.csv")
    write_yf(p, bars, tz=NY)
    with open(p) as f:  # the stamps without their offsets, as a local export writes them
        text = re.sub(r"(\d\d:\d\d:\d\d)[+-]\d\d:\d\d", r"\1", f.read())
    naive = tmp_path / "yf-naive.csv"
    naive.write_text(text)
    want = incbt.init(str(tmp_path / "a"))
    want.ingest(p)
    got = incbt.init(str(tmp_path / "b"))
    got.ingest(str(naive), tz=NY)
    assert bits(got.sql(BARS)).equals(bits(want.sql(BARS)))
    assert got.sql("SELECT count(*) AS n FROM bars").to_pylist() == [{"n": 300}]


def _cut_in_hour(path: str, tz: str, chunk: int) -> bool:
    """Whether a part of ``path`` read with this chunk starts inside the repeated hour's
    second pass (01:00-01:59 after a row of 01:59)."""
    parts = split_in(path, chunk // PARTS_PER_CHUNK)
    if not parts:
        return False
    with open(path, "rb") as f:
        data = f.read()
    for p in parts[1:]:
        line = data[p.start : data.index(b"\n", p.start)].decode()
        if " 01:" in line.split(",")[1] and b" 01:59:00" in data[: p.start]:
            return True
    return False


@pytest.mark.parametrize("interleave", [True, False])
@pytest.mark.parametrize("gz", [False, True])
def test_part_boundary_inside_the_hour(tmp_path, interleave, gz):
    """A big file read in parts, a part starting inside the repeated hour (second pass):
    the bars as read whole, and as the offsets give them."""
    bars = _series(NY, 600, start_min=-300, insts=("ES", "NQ", "CL"), interleave=interleave)
    path = _write(str(tmp_path / "naive.csv"), bars, NY)
    off = _write(str(tmp_path / "off.csv"), bars, None)
    size = os.path.getsize(path)
    for k in range(PARTS_PER_CHUNK + 1, 60):  # a chunk that cuts the file inside the hour
        chunk = size * PARTS_PER_CHUNK // k  # (smaller than the file: read in parts)
        if _cut_in_hour(path, NY, chunk):
            break
    else:  # pragma: no cover
        pytest.fail("no chunk cuts the file inside the repeated hour")
    if gz:
        with open(path, "rb") as f, gzip.open(path + ".gz", "wb") as g:
            g.write(f.read())
        path += ".gz"
    want = incbt.init(str(tmp_path / "want"))
    want.ingest(off)
    got = incbt.init(str(tmp_path / "got"))
    got.settings["ingest_chunk_mb"] = chunk / (1 << 20)
    got.ingest(path, tz=NY)
    assert bits(got.sql(BARS)).equals(bits(want.sql(BARS)))
    tmp = os.path.join(got.path, "tmp")  # a .csv.gz's parts, kept to be read again: gone
    assert not os.path.isdir(tmp) or not os.listdir(tmp)


def test_part_boundary_unplaced_refused(tmp_path):
    """A big file read in parts, an instrument's first rows in the second pass of the
    hour (none of its rows before, in any part): refused naming the whole file's line."""
    es = _series(NY, 300, start_min=-240, insts=("ES",))
    nq = [b for b in _series(NY, 300, start_min=-240, insts=("NQ",)) if b[1] >= FALL[NY]]
    bars = es + nq  # ES, then NQ from 01:00 standard time
    path = _write(str(tmp_path / "naive.csv"), bars, NY)
    size = os.path.getsize(path)
    chunk = size // 2  # parts of an eighth of the file
    assert len(split_in(path, chunk // PARTS_PER_CHUNK)) >= 8
    s = incbt.init(str(tmp_path / "s"))
    s.settings["ingest_chunk_mb"] = chunk / (1 << 20)
    with pytest.raises(BadInputError, match="is ambiguous in") as e:
        s.ingest(path, tz=NY)
    assert type(e.value) is BadInputError
    assert e.value.line == len(es) + 2 and e.value.instrument == "NQ", str(e.value)


def test_parquet_parts_boundary_inside_the_hour(tmp_path):
    """A Parquet file of naive times, its row groups read in parts, one starting in the
    second pass of the hour."""
    bars = _series(NY, 400, start_min=-200, insts=("ES", "NQ"))
    want = incbt.init(str(tmp_path / "want"))
    want.ingest(_write(str(tmp_path / "off.csv"), bars, None))
    df = pd.DataFrame(bars, columns=HEAD.split(","))
    df["ts"] = pd.DatetimeIndex(df["ts"]).tz_convert(NY).tz_localize(None)
    p = str(tmp_path / "naive.parquet")
    # row groups of 50 rows, a part each: rows 400 and 450 (parts' first) are 01:00 and
    # 01:25 standard time
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), p, row_group_size=50)
    assert [str(df["ts"][k]) for k in (400, 450)] == ["2024-11-03 01:00:00"] + [
        "2024-11-03 01:25:00"
    ]
    meta = pq.ParquetFile(p).metadata
    chunk = (meta.row_group(0).total_byte_size + 1) * PARTS_PER_CHUNK
    assert len(split_in(p, chunk // PARTS_PER_CHUNK)) == meta.num_row_groups == 16
    got = incbt.init(str(tmp_path / "got"))
    got.settings["ingest_chunk_mb"] = chunk / (1 << 20)
    got.ingest(p, tz=NY)
    assert bits(got.sql(BARS)).equals(bits(want.sql(BARS)))


def test_cli_refused_and_update(tmp_path):
    """``incbt ingest --tz`` of an unplaced time exits 1 with the message; ``incbt
    update FILE --tz --ts-format`` of a file in order ingests it as the offsets do."""
    store = str(tmp_path / "s")
    assert _cli("--store", store, "init").returncode == 0
    bad = tmp_path / "bad.csv"
    bad.write_text(HEAD + "\nES,2024-11-03 01:10:00,1,2,0.5,1.5,3\n")
    p = _cli("--store", store, "ingest", str(bad), "--tz", NY)
    assert p.returncode == 1, p.stderr
    assert "line 2: ts is ambiguous in America/New_York" in p.stderr, p.stderr
    assert "'2024-11-03 01:10:00'" in p.stderr and "explicit UTC offset" in p.stderr
    bars = _series(NY, 180, insts=("ES", "NQ"))
    good = _write(str(tmp_path / "good.csv"), bars, NY, "%m/%d/%Y %H:%M")
    p = _cli("--store", store, "update", good, "--tz", NY, "--ts-format", "%m/%d/%Y %H:%M")
    assert p.returncode == 0, p.stderr
    want = incbt.init(str(tmp_path / "want"))
    want.ingest(_write(str(tmp_path / "off.csv"), bars, None))
    s = incbt.open(store)
    try:
        assert bits(s.sql(BARS)).equals(bits(want.sql(BARS)))
    finally:
        close_env(os.path.join(s.path, "catalog"))


def _cli(*args: str):
    return run_incbt(args, env=without_incbt_settings(COLUMNS="200"), timeout=120)


def test_a_time_going_back_in_the_first_pass_is_said_with_the_pass_it_was_taken_for(tmp_path):
    """01:10 after 01:20 in the first pass is taken as the second pass's 01:10: the later
    clock change's own line (01:59 -> 01:00) is then the one out of order. The message
    says which pass each time was taken for, and how to write them (QA 2026-12-07: it
    blamed line 7 as plainly unsorted)."""
    rows = ["00:59", "01:20", "01:10", "01:21", "01:59", "01:00", "01:01"]
    p = tmp_path / "back.csv"
    p.write_text(HEAD + "\n" + "".join(f"ES,2024-11-03 {r}:00,1,2,0.5,1.5,3\n" for r in rows))
    s = incbt.init(str(tmp_path / "s"))
    with pytest.raises(BadInputError) as e:
        s.ingest(str(p), tz=NY)
    assert str(e.value) == (
        f"{p}, line 7: ts is not increasing (previous bar of this instrument at line 6, at "
        "2024-11-03T06:59:00Z, 2024-11-03 01:59:00-05:00 in America/New_York; in the hour "
        "the clocks of America/New_York repeat, naive times are placed by the rows' order: "
        "the first pass, then the second from the first time that goes back, so a time "
        "going back within the first pass is taken for the second); instrument 'ES'; value "
        "'2024-11-03T06:00:00Z, 2024-11-03 01:00:00-05:00 in America/New_York'. Fix: sort "
        "each instrument's bars by ts and remove duplicates; in that hour, write the times "
        "with their UTC offset (2024-11-03T01:59:00-04:00 in the first pass, "
        "2024-11-03T01:59:00-05:00 in the second)"
    )
    assert s.sql("SELECT count(*) AS n FROM bars").to_pylist() == [{"n": 0}]
