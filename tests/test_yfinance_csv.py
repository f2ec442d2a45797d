"""yfinance's CSV files, ingested as they are written.

``yf.download(...).to_csv(path)`` (yfinance 0.2.48 on) writes pandas' columns of two
levels: a header of three lines, ``Price,Close,High,...`` / ``Ticker,AAPL,AAPL,...`` /
``Datetime,,,...`` (the first two swapped with ``group_by='ticker'``), and, for several
tickers, one row a minute with each ticker's fields, empty where it had no bar. Each
ticker's bars are stored under its name, bit for bit as the same bars from a plain CSV
file; bad input is refused naming the file's own line (the three header lines
counted), the column, the value and the fix, with the store as it was.
"""

from __future__ import annotations

import gzip
import os
import re

import numpy as np
import pandas as pd
import pytest
from cli_process import run_incbt, without_incbt_settings
from conftest import bits, tree_state

import incbt
from incbt.bars.ingest import PARTS_PER_CHUNK
from incbt.bars.inputs import is_stacked
from incbt.bars.parts import split as split_in
from incbt.catalog.env import close_env

BARS = "SELECT instrument, ts, open, high, low, close, volume FROM bars ORDER BY instrument, ts"
PRICES = ["Close", "High", "Low", "Open", "Volume"]  # yfinance's order


def bars_of(tickers: list[str], n: int = 30, seed: int = 1, start: str = "2024-01-02 14:30"):
    """Random valid minute bars of each ticker: one frame per ticker, indexed by ts (UTC)."""
    rng = np.random.default_rng(seed)
    out = {}
    for t in tickers:
        ts = pd.date_range(start, periods=n, freq="min", tz="UTC")
        o = 100 + np.cumsum(rng.normal(0, 0.3, n))
        c = o + rng.normal(0, 0.2, n)
        h = np.maximum(o, c) + rng.random(n) * 0.1
        lo = np.minimum(o, c) - rng.random(n) * 0.1
        v = rng.integers(100, 10_000, n).astype(float)
        out[t] = pd.DataFrame({"open": o, "high": h, "low": lo, "close": c, "volume": v}, ts)
    return out


def write_yf(path, bars, group_by="column", adj=False, index="Datetime", tz=None, dates=False):
    """``bars`` as yfinance's ``download(...).to_csv(path)`` writes them (``tz``: the
    stamps in that zone, with its offset; ``dates``: dates alone, as of daily bars)."""
    tickers = list(bars)
    stamps = sorted(set().union(*(b.index for b in bars.values())))
    prices = (["Adj Close"] if adj else []) + PRICES
    data = {}
    for p in prices:
        for t in tickers:
            col = bars[t]["close"] * 0.99 if p == "Adj Close" else bars[t][p.lower()]
            data[(p, t)] = col.reindex(stamps).to_numpy()
    idx = pd.DatetimeIndex(stamps, name=index)
    if tz is not None:
        idx = idx.tz_convert(tz)
    if dates:
        idx = pd.DatetimeIndex(idx.tz_localize(None).normalize(), name=index)
    df = pd.DataFrame(data, index=idx)
    df.columns = pd.MultiIndex.from_tuples(list(data), names=["Price", "Ticker"])
    if group_by == "ticker":
        df = df.swaplevel(0, 1, axis=1)
        df = df[[c for t in tickers for c in df.columns if c[0] == t]]
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt", newline="") as f:
            df.to_csv(f, date_format="%Y-%m-%d" if dates else None)
    else:
        df.to_csv(path, date_format="%Y-%m-%d" if dates else None)


def write_plain(path, bars):
    """The same bars as a plain CSV file of one header line."""
    frames = [b.rename_axis("ts").reset_index().assign(instrument=t) for t, b in bars.items()]
    long = pd.concat(frames)[["instrument", "ts", "open", "high", "low", "close", "volume"]]
    long.to_csv(path, index=False)


def edit(path, line: int, price: str, ticker: str, value: str) -> None:
    """Field ``price`` of ``ticker`` on ``line`` (1-based) of a yfinance file, made ``value``."""
    text = path.read_text().split("\n")
    levels = {x.split(",")[0]: x.split(",") for x in text[:2]}
    col = next(k for k, pt in enumerate(zip(levels["Price"], levels["Ticker"], strict=True))
               if pt == (price, ticker))
    fields = text[line - 1].split(",")
    fields[col] = value
    text[line - 1] = ",".join(fields)
    path.write_text("\n".join(text))


def stored(root, *files, **opts):
    """The bars a fresh store holds after ingesting ``files`` (a table), and the summary."""
    s = incbt.init(str(root))
    try:
        summary = s.ingest([str(f) for f in files], **opts)
        return s.sql(BARS), summary
    finally:
        close_env(os.path.join(str(root), "catalog"))


def refused(tmp_path, path, **opts) -> str:
    """The message of an ingest of ``path`` refused, the store unchanged."""
    s = incbt.init(str(tmp_path / "refused"))
    try:
        before = tree_state(s.path)
        with pytest.raises(incbt.BadInputError) as e:
            s.ingest(str(path), **opts)
        assert tree_state(s.path) == before
        return str(e.value)
    finally:
        close_env(os.path.join(s.path, "catalog"))


def test_one_ticker_is_read_as_the_same_bars_as_a_plain_file(tmp_path):
    bars = bars_of(["AAPL"])
    write_yf(tmp_path / "yf.csv", bars)
    write_plain(tmp_path / "plain.csv", bars)
    lines = (tmp_path / "yf.csv").read_text().splitlines()
    assert lines[:3] == ["Price,Close,High,Low,Open,Volume", "Ticker,AAPL,AAPL,AAPL,AAPL,AAPL",
                         "Datetime,,,,,"]
    assert lines[3].startswith("2024-01-02 14:30:00+00:00,")
    got, summary = stored(tmp_path / "a", tmp_path / "yf.csv")
    want, _ = stored(tmp_path / "b", tmp_path / "plain.csv")
    assert got.num_rows == 30 and summary.rows_read == 30
    assert bits(got).equals(bits(want))
    assert summary.ignored_columns == []


@pytest.mark.parametrize("group_by", ["column", "ticker"])
def test_several_tickers_each_become_an_instrument(tmp_path, group_by):
    bars = bars_of(["AAPL", "MSFT", "BRK-B"])
    write_yf(tmp_path / "yf.csv", bars, group_by=group_by)
    write_plain(tmp_path / "plain.csv", bars)
    first, second = (tmp_path / "yf.csv").read_text().splitlines()[:2]
    if group_by == "column":
        assert first.startswith("Price,Close,Close,Close,High") and second.startswith(
            "Ticker,AAPL,MSFT,BRK-B,AAPL")
    else:
        assert first.startswith("Ticker,AAPL,AAPL") and second.startswith("Price,Close,High")
    got, _ = stored(tmp_path / "a", tmp_path / "yf.csv")
    want, _ = stored(tmp_path / "b", tmp_path / "plain.csv")
    assert got.num_rows == 90
    assert sorted(set(got["instrument"].to_pylist())) == ["AAPL", "BRK-B", "MSFT"]
    assert bits(got).equals(bits(want))


@pytest.mark.parametrize("group_by", ["column", "ticker"])
def test_a_tickers_empty_fields_are_no_bar_there(tmp_path, group_by):
    """yfinance writes empty fields where a ticker had no bar that minute."""
    bars = bars_of(["AAPL", "MSFT"])
    bars["MSFT"] = bars["MSFT"].drop(bars["MSFT"].index[[0, 7, 8, 29]])  # its first, two, last
    bars["AAPL"] = bars["AAPL"].drop(bars["AAPL"].index[[3]])
    write_yf(tmp_path / "yf.csv", bars, group_by=group_by)
    assert ",," in (tmp_path / "yf.csv").read_text().splitlines()[3]  # MSFT has no first bar
    write_plain(tmp_path / "plain.csv", bars)
    got, _ = stored(tmp_path / "a", tmp_path / "yf.csv")
    want, _ = stored(tmp_path / "b", tmp_path / "plain.csv")
    assert got.num_rows == 55
    assert bits(got).equals(bits(want))


def test_a_ticker_without_any_bar_is_no_instrument(tmp_path):
    p = tmp_path / "yf.csv"
    p.write_text("Price,Close,Close,High,High,Low,Low,Open,Open,Volume,Volume\n"
                 "Ticker,AAPL,XYZ,AAPL,XYZ,AAPL,XYZ,AAPL,XYZ,AAPL,XYZ\n"
                 "Datetime,,,,,,,,,,\n"
                 "2024-01-02 14:30:00+00:00,10,,11,,9,,10,,100,\n")
    got, summary = stored(tmp_path / "a", p)
    assert got["instrument"].to_pylist() == ["AAPL"]
    # said: a failed download's ticker is not left out without a word
    assert summary.no_bars == [(str(p), "XYZ")]
    (note,) = summary.notes()
    assert note.startswith("1 ticker(s) have no bar in their yfinance file(s)") and (
        "come from those files: XYZ (yf.csv); download them again" in note
    )
    # a ticker said once, with its files; a dry run says the same
    q = p.with_name("yf2.csv")
    q.write_text(p.read_text().replace("14:30", "14:31"))
    _, summary = stored(tmp_path / "b", p, q, dry_run=True)
    assert summary.no_bars == [(str(p), "XYZ"), (str(q), "XYZ")]
    (note,) = summary.notes()
    assert note.startswith("1 ticker(s) have no bar") and "XYZ (yf.csv, yf2.csv);" in note


def test_a_bar_with_some_fields_empty_is_refused_with_its_line(tmp_path):
    p = tmp_path / "yf.csv"
    p.write_text("Price,Close,Close,High,High,Low,Low,Open,Open,Volume,Volume\n"
                 "Ticker,AAPL,MSFT,AAPL,MSFT,AAPL,MSFT,AAPL,MSFT,AAPL,MSFT\n"
                 "Datetime,,,,,,,,,,\n"
                 "2024-01-02 14:30:00+00:00,10,20,11,21,9,19,10,20,100,200\n"
                 "2024-01-02 14:31:00+00:00,10,,11,,9,,10,,100,\n"  # MSFT: no bar, fine
                 "2024-01-02 14:32:00+00:00,10,20,11,21,9,19,10,,100,200\n")  # MSFT's Open
    assert refused(tmp_path, p) == (
        f"{p}, line 6: column Open (MSFT) is empty, and other fields of the ticker's bar are "
        "not; instrument 'MSFT'; value ''. Fix: give the bar its open, high, low, close and "
        "volume, or leave all of them empty where the ticker had no bar (as yfinance writes "
        "it)")


def test_bad_values_are_said_with_the_files_line(tmp_path):
    """Lines count the three header lines; a ticker's bars are named by its own lines,
    though they are stored after the other ticker's."""
    bars = bars_of(["AAPL", "MSFT"], n=10)
    bars["MSFT"].iloc[6, 1] = bars["MSFT"].iloc[6, 2] - 1  # high below low: row 7, line 10
    write_yf(tmp_path / "yf.csv", bars)
    assert re.fullmatch(
        re.escape(f"{tmp_path / 'yf.csv'}, line 10: high is below max(open, close); instrument "
                  "'MSFT'; value ") + r"[\d.]+" + re.escape(". Fix: repair the bar: high >= "
                                                            "open, close >= low"),
        refused(tmp_path, tmp_path / "yf.csv"))
    edit(tmp_path / "yf.csv", 7, "High", "AAPL", "abc")  # before MSFT's line 10
    assert refused(tmp_path, tmp_path / "yf.csv") == (
        f"{tmp_path / 'yf.csv'}, line 7: column High (AAPL) is not a number; instrument "
        "'AAPL'; value 'abc'. Fix: write numbers like 101.25 (no thousands separators, no "
        "empty fields)")
    edit(tmp_path / "yf.csv", 7, "High", "AAPL", "NaN")
    assert refused(tmp_path, tmp_path / "yf.csv").startswith(
        f"{tmp_path / 'yf.csv'}, line 7: high is not a finite number; instrument 'AAPL'")
    edit(tmp_path / "yf.csv", 7, "High", "AAPL", "200")
    edit(tmp_path / "yf.csv", 8, "Close", "MSFT", "-1")
    assert refused(tmp_path, tmp_path / "yf.csv").startswith(
        f"{tmp_path / 'yf.csv'}, line 8: close is not positive; instrument 'MSFT'; value -1.0")


def test_duplicate_and_decreasing_times_are_said_with_both_lines(tmp_path):
    p = tmp_path / "yf.csv"
    p.write_text("Price,Close,Close,High,High,Low,Low,Open,Open,Volume,Volume\n"
                 "Ticker,AAPL,MSFT,AAPL,MSFT,AAPL,MSFT,AAPL,MSFT,AAPL,MSFT\n"
                 "Datetime,,,,,,,,,,\n"
                 "2024-01-02 14:30:00+00:00,10,20,11,21,9,19,10,20,100,200\n"
                 "2024-01-02 14:31:00+00:00,,20,,21,,19,,20,,200\n"
                 "2024-01-02 14:31:00+00:00,10,20,11,21,9,19,10,20,100,200\n")
    assert refused(tmp_path, p).startswith(
        f"{p}, line 6: duplicate ts (previous bar of this instrument at line 5); instrument "
        "'MSFT'")


def test_adj_close_is_not_read_and_said(tmp_path):
    bars = bars_of(["AAPL", "MSFT"])
    write_yf(tmp_path / "yf.csv", bars, adj=True)
    assert (tmp_path / "yf.csv").read_text().startswith("Price,Adj Close,Adj Close,Close")
    write_plain(tmp_path / "plain.csv", bars)
    with pytest.warns(incbt.DataNoteWarning, match="Adj Close"):
        got, summary = stored(tmp_path / "a", tmp_path / "yf.csv")
    assert summary.ignored_columns == ["Adj Close"]
    want, _ = stored(tmp_path / "b", tmp_path / "plain.csv")
    assert bits(got).equals(bits(want))


def test_columns_map_to_a_price_of_the_file(tmp_path):
    """``--map close='Adj Close'`` reads that price as each ticker's close."""
    bars = {t: b.assign(low=b["low"] * 0.98) for t, b in bars_of(["AAPL", "MSFT"]).items()}
    write_yf(tmp_path / "yf.csv", bars, adj=True)  # Adj Close: close * 0.99, above the low
    adjusted = {t: b.assign(close=b["close"] * 0.99) for t, b in bars.items()}
    write_plain(tmp_path / "plain.csv", adjusted)
    with pytest.warns(incbt.DataNoteWarning, match="'Close'"):
        got, summary = stored(tmp_path / "a", tmp_path / "yf.csv", columns={"close": "adj close"})
    want, _ = stored(tmp_path / "b", tmp_path / "plain.csv")
    assert bits(got).equals(bits(want))
    assert summary.ignored_columns == ["Close"]
    write_yf(tmp_path / "yf.csv", bars)
    assert refused(tmp_path, tmp_path / "yf.csv", columns={"close": "Adj Close"}) == (
        f"{tmp_path / 'yf.csv'}, line 1: ticker AAPL: missing column(s) Adj Close (for close); "
        "the file has Datetime, Close, High, Low, Open, Volume. Fix: name the columns "
        "ts,open,high,low,close,volume, or map yours with --map NAME=COLUMN (e.g. --map "
        "ts=timestamp)")


def test_an_adjusted_close_outside_the_bars_range_says_auto_adjust(tmp_path):
    """Open, high and low of yfinance's unadjusted download and its Adj Close as the close:
    a bar whose adjusted close falls below its low is refused with the cause and the
    download that avoids it, not "repair the bar" (QA 2026-12-07); the same bar read
    with its own close is not refused."""
    bars = {t: b.assign(low=b["low"] * 0.98) for t, b in bars_of(["AAPL", "MSFT"]).items()}
    write_yf(tmp_path / "yf.csv", bars, adj=True)  # Adj Close: close * 0.99, above the low
    low = bars["MSFT"]["low"].iloc[5]
    edit(tmp_path / "yf.csv", 9, "Adj Close", "MSFT", str(float(low * 0.9)))  # line 9: bar 6
    got = refused(tmp_path, tmp_path / "yf.csv", columns={"close": "Adj Close"})
    assert got.startswith(f"{tmp_path / 'yf.csv'}, line 9: low is above min(open, close); "
                          "instrument 'MSFT'; value ")
    assert got.endswith(
        "Fix: the close is read from 'Adj Close', adjusted for dividends and splits, while "
        "open, high and low are not: download the bars adjusted alike (yfinance: "
        "`auto_adjust=True`), or ingest the unadjusted close (without --map close=...)")
    with pytest.warns(incbt.DataNoteWarning, match="Adj Close"):
        stored(tmp_path / "own", tmp_path / "yf.csv")
    edit(tmp_path / "yf.csv", 9, "High", "MSFT", str(float(low * 0.5)))  # a bad bar all the same
    assert refused(tmp_path, tmp_path / "yf.csv").endswith(
        "Fix: repair the bar: high >= open, close >= low")


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata"])
def test_offsets_other_than_utc(tmp_path, zone):
    bars = bars_of(["AAPL", "MSFT"])
    write_yf(tmp_path / "yf.csv", bars, tz=zone)
    offset = "-05:00" if zone == "America/New_York" else "+05:30"
    assert (tmp_path / "yf.csv").read_text().splitlines()[3].split(",")[0].endswith(offset)
    write_plain(tmp_path / "plain.csv", bars)
    got, _ = stored(tmp_path / "a", tmp_path / "yf.csv")
    want, _ = stored(tmp_path / "b", tmp_path / "plain.csv")
    assert bits(got).equals(bits(want))


def test_daily_dates_are_read_with_tz_as_any_csv_files(tmp_path):
    """interval='1d' writes dates alone (``Date`` the index): times without an offset,
    read as a plain file's are, with --tz; refused without it, naming the line."""
    bars = {t: b.set_axis(pd.date_range("2024-01-02", periods=10, freq="D", tz="UTC"))
            for t, b in bars_of(["AAPL", "MSFT"], n=10).items()}
    write_yf(tmp_path / "yf.csv", bars, index="Date", dates=True)
    lines = (tmp_path / "yf.csv").read_text().splitlines()
    assert lines[2] == "Date,,,,,,,,,," and lines[3].startswith("2024-01-02,")
    plain = {t: b.set_axis(b.index.strftime("%Y-%m-%d")) for t, b in bars.items()}
    write_plain(tmp_path / "plain.csv", plain)
    assert (tmp_path / "plain.csv").read_text().splitlines()[1].startswith("AAPL,2024-01-02,")
    got, _ = stored(tmp_path / "a", tmp_path / "yf.csv", tz="America/New_York")
    want, _ = stored(tmp_path / "b", tmp_path / "plain.csv", tz="America/New_York")
    assert got.num_rows == 20 and bits(got).equals(bits(want))
    assert str(got["ts"][0].as_py()) == "2024-01-02 05:00:00+00:00"
    assert refused(tmp_path, tmp_path / "yf.csv").startswith(
        f"{tmp_path / 'yf.csv'}, line 4: ts has no UTC offset; value '2024-01-02'. Fix: write "
        "it with an offset")


def test_instrument_given_names_one_tickers_file_and_refuses_several(tmp_path):
    """--instrument wins over the Ticker line of a file of one ticker; a file of several
    tickers is refused with it (their bars would be one instrument's)."""
    write_yf(tmp_path / "AAPL.csv", bars_of(["AAPL"]))
    got, _ = stored(tmp_path / "a", tmp_path / "AAPL.csv", instrument="AAPL.US")
    assert set(got["instrument"].to_pylist()) == {"AAPL.US"}
    write_yf(tmp_path / "two.csv", bars_of(["AAPL", "MSFT"]))
    assert refused(tmp_path, tmp_path / "two.csv", instrument="{stem}") == (
        f"{tmp_path / 'two.csv'}, line 2: the file holds the bars of 2 tickers (AAPL, MSFT: "
        "yfinance's header of three lines), and --instrument two would name them all. Fix: "
        "ingest yfinance's files without --instrument: each ticker's bars are named by its "
        "ticker")
    got, _ = stored(tmp_path / "c", tmp_path / "two.csv", columns={"instrument": "Ticker"})
    assert set(got["instrument"].to_pylist()) == {"AAPL", "MSFT"}
    assert "missing column Symbol (for instrument)" in refused(
        tmp_path, tmp_path / "two.csv", columns={"instrument": "Symbol"})


def test_a_header_of_three_lines_not_yfinances_is_refused_with_its_fix(tmp_path):
    p = tmp_path / "x.csv"
    df = pd.DataFrame([[181.5, 182, 181, 181.2, 1000]], columns=pd.MultiIndex.from_product(
        [PRICES, ["AAPL"]], names=["Field", "Symbol"]), index=pd.DatetimeIndex(
        ["2024-01-05 14:30"], tz="UTC", name="Datetime"))
    df.to_csv(p)
    assert p.read_text().splitlines()[1].startswith("Symbol,AAPL")
    assert not is_stacked(str(p))
    assert refused(tmp_path, p, instrument="AAPL").startswith(
        f"{p}, line 2: a header of three lines ('Field', 'Symbol', 'Datetime': pandas' "
        "columns of two levels, not yfinance's Price and Ticker lines, which are read). Fix: "
        "give the file one header line: in pandas, df.columns = df.columns.droplevel(1)")


@pytest.mark.parametrize("group_by", ["column", "ticker"])
def test_an_index_without_a_name_is_refused_with_its_fix(tmp_path, group_by):
    """pandas writes no line 3 for an index without a name (df.index.name = None):
    said as that, with the fix, not "missing column(s) instrument, ts, ... Fix: --map"
    (QA 2026-12-07); the fix's sed gives a file read as yfinance's."""
    bars = bars_of(["AAPL", "MSFT"])
    p = tmp_path / "noname.csv"
    write_yf(p, bars, group_by=group_by, index=None)
    assert not p.read_text().splitlines()[2].startswith("Datetime")
    msg = refused(tmp_path, p)
    assert msg.startswith(
        f"{p}, line 3: a header of two lines (Price and Ticker: yfinance's columns of two "
        "levels) without the index's name on line 3, which yfinance's files have; value "
        "'2024-01-02 14:30:00+00:00'. Fix: name the index before df.to_csv(...): "
        "df.index.name = 'Datetime'"), msg
    lines = p.read_text().splitlines()
    p.write_text("\n".join([*lines[:2], "Datetime" + "," * 10, *lines[2:]]) + "\n")
    q = tmp_path / "named.csv"
    write_yf(q, bars, group_by=group_by)
    assert bits(stored(tmp_path / "a", p)[0]).equals(bits(stored(tmp_path / "b", q)[0]))


def test_a_tickers_prices_given_twice_are_refused_with_the_fix(tmp_path):
    """Two downloads joined side by side (pd.concat(axis=1)) give a ticker's prices
    twice: which to read cannot be told, said as that with the fix, not as "missing
    column(s) open, high, ..." of columns the file has (QA 2026-12-07)."""
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    write_yf(a, bars_of(["AAPL", "MSFT"], seed=1))
    write_yf(b, bars_of(["AAPL", "NVDA"], seed=2))
    ra = pd.read_csv(a, header=[0, 1], index_col=0)
    rb = pd.read_csv(b, header=[0, 1], index_col=0)
    p = tmp_path / "joined.csv"
    pd.concat([ra, rb], axis=1).to_csv(p)
    msg = refused(tmp_path, p)
    assert msg.startswith(
        f"{p}, line 1: column Close (AAPL) is there twice (fields 2 and 12 of yfinance's "
        "header: files or downloads joined side by side?); instrument 'AAPL'; value 'Close'. "
        "Fix: keep one column of each price and ticker: in pandas, "
        "df = df.loc[:, ~df.columns.duplicated()]"), msg
    joined = pd.concat([ra, rb], axis=1)
    joined.loc[:, ~joined.columns.duplicated()].to_csv(p)  # the fix: read
    assert stored(tmp_path / "s", p)[1].rows_read == 90


def test_a_gzipped_file_and_a_blank_line(tmp_path):
    bars = bars_of(["AAPL", "MSFT"])
    write_yf(tmp_path / "yf.csv.gz", bars, group_by="ticker")
    write_plain(tmp_path / "plain.csv", bars)
    got, _ = stored(tmp_path / "a", tmp_path / "yf.csv.gz")
    want, _ = stored(tmp_path / "b", tmp_path / "plain.csv")
    assert bits(got).equals(bits(want))
    with gzip.open(tmp_path / "yf.csv.gz", "rt") as f:
        lines = f.read().splitlines()
    p = tmp_path / "blank.csv"
    p.write_text("\n".join([*lines[:8], ",,,,,,,,,,", *lines[8:]]) + "\n\n")
    assert refused(tmp_path, p).startswith(f"{p}, line 9: blank line (or a row of separators")


@pytest.mark.parametrize("gz", [False, True])
def test_a_file_bigger_than_a_part_is_read_whole(tmp_path, gz):
    """A big file is read in parts, each with a copy of the header line: a yfinance file
    is read whole (its parts would have one line of its three): the same bars, and a bad
    bar far in the file named by its line."""
    chunk = 40_000  # bytes
    bars = bars_of(["AAPL", "MSFT", "GOOG"], n=600)
    path = tmp_path / ("yf.csv.gz" if gz else "yf.csv")
    write_yf(path, bars)
    write_yf(tmp_path / "as_plain_text.csv", bars)
    assert split_in(str(tmp_path / "as_plain_text.csv"), chunk // PARTS_PER_CHUNK) is not None
    assert os.path.getsize(path) > chunk // PARTS_PER_CHUNK  # a .gz would be streamed in parts
    write_plain(tmp_path / "plain.csv", bars)
    s = incbt.init(str(tmp_path / "a"))
    try:
        s.settings["ingest_chunk_mb"] = chunk / (1 << 20)
        s.ingest(str(path))
        got = s.sql(BARS)
    finally:
        close_env(os.path.join(s.path, "catalog"))
    want, _ = stored(tmp_path / "b", tmp_path / "plain.csv")
    assert got.num_rows == 1800 and bits(got).equals(bits(want))
    bars["GOOG"].iloc[550, 0] = -5.0  # GOOG's open, row 551: line 554
    write_yf(path, bars)
    s = incbt.init(str(tmp_path / "c"))
    try:
        s.settings["ingest_chunk_mb"] = chunk / (1 << 20)
        with pytest.raises(incbt.BadInputError, match=re.escape(
                f"{path}, line 554: open is not positive; instrument 'GOOG'; value -5.0")):
            s.ingest(str(path))
    finally:
        close_env(os.path.join(s.path, "catalog"))


def _cli(*args: str):
    return run_incbt(args, env=without_incbt_settings(COLUMNS="80"), timeout=120)


def test_update_with_a_yfinance_file_through_the_cli(tmp_path):
    bars = bars_of(["AAPL", "MSFT"], n=20)
    bars["MSFT"] = bars["MSFT"].drop(bars["MSFT"].index[[4, 5]])
    write_yf(tmp_path / "yf.csv", bars, tz="America/New_York", adj=True)
    write_plain(tmp_path / "plain.csv", bars)
    store = str(tmp_path / "s")
    incbt.init(store)
    close_env(os.path.join(store, "catalog"))
    before = tree_state(store)
    r = _cli("--store", store, "ingest", str(tmp_path / "yf.csv"), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert tree_state(store) == before  # a dry run writes nothing
    r = _cli("--store", store, "update", str(tmp_path / "yf.csv"))
    assert r.returncode == 0, r.stderr
    s = incbt.open(store)
    try:
        got = s.sql(BARS)
    finally:
        close_env(os.path.join(store, "catalog"))
    want, _ = stored(tmp_path / "b", tmp_path / "plain.csv")
    assert got.num_rows == 38 and bits(got).equals(bits(want))
    # bad input: exit 1, one line naming the file's line, the store as it was
    bad = tmp_path / "bad.csv"
    bad.write_text((tmp_path / "yf.csv").read_text())
    edit(bad, 14, "Adj Close", "AAPL", "x")  # not read: no matter
    edit(bad, 14, "Low", "MSFT", "")  # 09:40 New York: row 11
    before = tree_state(store)
    r = _cli("--store", store, "update", str(bad))
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip() == (
        f"error: {bad}, line 14: column Low (MSFT) is empty, and other fields of the "
        "ticker's bar are not; instrument 'MSFT'; value ''. Fix: give the bar its open, "
        "high, low, close and volume, or leave all of them empty where the ticker had no bar "
        "(as yfinance writes it)")
    assert tree_state(store) == before


@pytest.mark.parametrize("tail", ["\n", "\r\n\r\n", ",,,,,,,,,,\n"])
def test_a_gzipped_files_blank_lines_after_the_last_bar_are_left_out(tmp_path, tail):
    """As a plain file's and a plain .csv.gz's: a yfinance .csv.gz (its columns read as
    text, where an empty row is no error for Arrow) was refused "line 34: blank line
    (or a row of separators only)" after its last bar (QA 2026-12-07)."""
    bars = bars_of(["AAPL", "MSFT"])
    write_yf(tmp_path / "yf.csv", bars)
    text = (tmp_path / "yf.csv").read_text()
    with gzip.open(tmp_path / "yf.csv.gz", "wt", newline="") as f:
        f.write(text + tail)
    got, _ = stored(tmp_path / "a", tmp_path / "yf.csv.gz")
    want, _ = stored(tmp_path / "b", tmp_path / "yf.csv")
    assert got.num_rows == 60 and bits(got).equals(bits(want))
    lines = text.splitlines()  # between bars: refused, with its line
    with gzip.open(tmp_path / "yf.csv.gz", "wt", newline="") as f:
        f.write("\n".join([*lines[:8], ",,,,,,,,,,", *lines[8:]]) + "\n" + tail)
    assert refused(tmp_path, tmp_path / "yf.csv.gz").startswith(
        f"{tmp_path / 'yf.csv.gz'}, line 9: blank line (or a row of separators")


def test_the_first_bad_bar_in_the_file_is_named_not_the_first_tickers(tmp_path):
    """A file's bars are read ticker by ticker: the first bad bar of the first ticker
    (line 6) was named before another ticker's on an earlier line (4) (QA 2026-12-07)."""
    bars = bars_of(["AAPL", "MSFT"], n=5)
    write_yf(tmp_path / "yf.csv", bars)
    edit(tmp_path / "yf.csv", 6, "Volume", "AAPL", "-7")
    edit(tmp_path / "yf.csv", 4, "Volume", "MSFT", "-5")
    assert refused(tmp_path, tmp_path / "yf.csv").startswith(
        f"{tmp_path / 'yf.csv'}, line 4: volume is negative or not finite; instrument 'MSFT'; "
        "value -5.0")


@pytest.mark.parametrize("row", ["", "2024-01-02 14:30:00+00:00,,,,,,,,,,\n"])
def test_a_file_of_failed_downloads_is_refused_naming_its_tickers(tmp_path, row):
    """Every ticker's download failed: the three header lines alone (QA 2026-12-07: said
    at "line 4", which the file has not, without the tickers), or rows of empty fields."""
    p = tmp_path / "yf.csv"
    p.write_text("Price,Close,Close,High,High,Low,Low,Open,Open,Volume,Volume\n"
                 "Ticker,AAPL,XYZ,AAPL,XYZ,AAPL,XYZ,AAPL,XYZ,AAPL,XYZ\n"
                 "Datetime,,,,,,,,,,\n" + row)
    msg = refused(tmp_path, p)
    assert msg == (
        f"{p}, line {4 if row else 3}: "
        + ("the file has no bars: every ticker's fields are empty (" if row else
           "the file has yfinance's header of three lines and no bar: ")
        + "yfinance's download of AAPL, XYZ got nothing, or no data in the dates asked"
        + (")" if row else "")
        + ". Fix: download the tickers again (yf.download's messages say why it failed), "
        "or remove the file from the ingest"
    )


def test_a_ticker_line_naming_no_ticker_is_said_at_its_line(tmp_path):
    """QA 2026-12-07: "line 4: invalid instrument name; value ''", the first bar's line."""
    p = tmp_path / "yf.csv"
    p.write_text("Price,Close,Close,High,High,Low,Low,Open,Open,Volume,Volume\n"
                 "Ticker,AAPL,,AAPL,,AAPL,,AAPL,,AAPL,\n"
                 "Datetime,,,,,,,,,,\n"
                 "2024-01-02 14:30:00+00:00,10,10,11,11,9,9,10,10,100,100\n")
    assert refused(tmp_path, p) == (
        f"{p}, line 2: the Ticker line names no ticker in field 3 (under Close): yfinance's "
        "second line names each column's instrument; value ''. Fix: give each column its "
        "ticker on the second line (as yfinance writes it), or, for a file of one "
        "instrument's bars, name it with --instrument NAME"
    )
