"""Property: a yfinance CSV file ingests as the same bars written as a plain CSV file.

Hypothesis draws 1-4 tickers (awkward names among them: ``BRK-B``, ``^GSPC``,
``EURUSD=X``, ``7203.T``), a few days of minute bars each with random gaps (a ticker
missing minutes: empty fields in the wide file), valid random prices and volumes, and
the layout: group_by='column' or 'ticker', the prices in any order, Adj Close,
Dividends or Stock Splits beside them (not read), time in UTC or New York's offset,
gzipped or not, CRLF line ends, a byte-order mark, blank lines (or a row of separators)
after the last bar. pandas writes the wide file as ``yf.download(...).to_csv(path)`` does
(columns of two levels, Price/Ticker/Datetime) and the bars as a plain file of one
header line. Both ingest into fresh stores bit for bit the same; or, with ONE defect
injected at a random row (a half-empty bar, a field of a bar the ticker has not, a
non-number, "nan", a negative price, a bad or empty time, a duplicated row, two rows out
of order), both are refused, the yfinance one naming the file's own line of the defect
(the three header lines counted), the store as it was.
"""

from __future__ import annotations

import gzip
import os
import tempfile

import numpy as np
import pandas as pd
import pytest
from conftest import bits, tree_state
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import incbt
from incbt.catalog.env import close_env

BARS = "SELECT instrument, ts, open, high, low, close, volume FROM bars ORDER BY 1, 2"
NAMES = ["AAPL", "MSFT", "BRK-B", "^GSPC", "EURUSD=X", "7203.T", "BTC-USD", "NA"]
PRICES = ["Close", "High", "Low", "Open", "Volume"]  # yfinance's order
EXTRA = ["Adj Close", "Dividends", "Stock Splits"]  # written by yfinance, not read
FIELDS = {"Open": "open", "High": "high", "Low": "low", "Close": "close", "Volume": "volume"}
# Mondays: plain weeks, and the weeks New York's clocks change (Mar 10, Nov 3 2024)
STARTS = ["2024-01-08", "2024-03-04", "2024-10-28"]
DEFECTS = ["partial", "absent_filled", "word", "nan", "negative", "duplicate", "swap", "ts_word",
           "ts_empty"]

# a positive price: from tiny to big, plain decimals and floats of any mantissa
PRICE = st.one_of(
    st.floats(1e-6, 1e7, allow_nan=False, allow_infinity=False),
    st.integers(1, 100_000).map(lambda x: x / 100),
)


@st.composite
def bar(draw):
    """One valid bar: high >= max(open, close), 0 < low <= min(open, close)."""
    o, c = draw(PRICE), draw(PRICE)
    h = max(o, c) + draw(st.sampled_from([0.0, 0.01, 1e-9])) * max(o, c)
    lo = min(o, c) * draw(st.sampled_from([1.0, 0.999, 0.5]))
    v = draw(st.integers(0, 10**9))
    return o, h, lo, c, v


@st.composite
def universe(draw):
    """Each ticker's bars (a frame indexed by ts, UTC), some minutes missing."""
    tickers = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    start = pd.Timestamp(draw(st.sampled_from(STARTS)))
    days = draw(st.integers(1, 3))
    per_day = draw(st.integers(1, 6))
    grid = [start + pd.Timedelta(days=3 * d, hours=14, minutes=30 + m)  # Mon, Thu, Sun:
            for d in range(days) for m in range(per_day)]  # New York's change crossed
    grid = pd.DatetimeIndex(grid).tz_localize("UTC")
    out = {}
    for t in tickers:
        keep = draw(st.lists(st.booleans(), min_size=len(grid), max_size=len(grid)))
        ts = grid[np.array(keep, dtype=bool)]
        rows = [draw(bar()) for _ in ts]
        out[t] = pd.DataFrame(rows, index=ts, columns=["open", "high", "low", "close", "volume"])
    if all(b.empty for b in out.values()):  # the file holds a bar
        t = tickers[0]
        out[t] = pd.DataFrame([draw(bar())], index=grid[:1], columns=list(out[t].columns))
    return out


def wide_text(bars, prices, group_by, tz, extra_fill) -> str:
    """``bars`` as yfinance writes them: ``df.to_csv()`` of columns of two levels."""
    tickers = list(bars)
    stamps = pd.DatetimeIndex(sorted(set().union(*(b.index for b in bars.values()))))
    data = {}
    for p in prices:
        for t in tickers:
            if p in FIELDS:
                col = bars[t][FIELDS[p]].reindex(stamps)
            elif p == "Adj Close":
                col = (bars[t]["close"] * 0.99).reindex(stamps)
            else:  # Dividends, Stock Splits: 0 (where the ticker has no bar too, maybe)
                col = pd.Series(0.0, bars[t].index).reindex(stamps, fill_value=(
                    0.0 if extra_fill else np.nan))
            data[(p, t)] = col.to_numpy()
    idx = pd.DatetimeIndex(stamps, name="Datetime").tz_convert(tz)
    df = pd.DataFrame(data, index=idx)
    df.columns = pd.MultiIndex.from_tuples(list(data), names=["Price", "Ticker"])
    if group_by == "ticker":
        df = df.swaplevel(0, 1, axis=1)
        df = df[[c for t in tickers for c in df.columns if c[0] == t]]
    return df.to_csv()


def plain_text(bars) -> str:
    """The same bars as a plain CSV file of one header line, one bar a line."""
    frames = [b.rename_axis("ts").reset_index().assign(instrument=t) for t, b in bars.items()]
    long = pd.concat(frames)[["instrument", "ts", "open", "high", "low", "close", "volume"]]
    return long.to_csv(index=False)


def plain_of_wide(text: str) -> str:
    """A wide file's text as a plain file's, field by field (the defect's file): each
    ticker's rows with a field not empty, one after another."""
    lines = text.split("\n")
    a, b = lines[0].split(","), lines[1].split(",")
    prices, tickers = (a, b) if a[0] == "Price" else (b, a)
    out = ["instrument,ts,open,high,low,close,volume"]
    for t in dict.fromkeys(tickers[1:]):
        cols = [next(k for k in range(1, len(prices)) if (prices[k], tickers[k]) == (p, t))
                for p in ("Open", "High", "Low", "Close", "Volume")]
        for line in lines[3:]:
            if not line:
                continue
            f = line.split(",")
            if any(f[k] for k in cols):
                out.append(",".join([t, f[0], *(f[k] for k in cols)]))
    return "\n".join(out) + "\n"


def inject(draw, text: str, bars) -> tuple[str, int, str]:
    """ONE defect at a random row of the wide file: its text, the defect's line and kind."""
    lines = text.split("\n")
    a, b = lines[0].split(","), lines[1].split(",")
    prices, tickers = (a, b) if a[0] == "Price" else (b, a)
    rows = len(lines) - 4  # the last line is empty (the final newline)
    col = {(prices[k], tickers[k]): k for k in range(1, len(prices))}

    def present(r: int, t: str) -> bool:
        return lines[3 + r].split(",")[col[("Close", t)]] != ""

    kind = draw(st.sampled_from(DEFECTS))
    cells = [(r, t) for r in range(rows) for t in bars if present(r, t)]
    absent = [(r, t) for r in range(rows) for t in bars if not present(r, t)]
    if kind == "absent_filled" and not absent:
        kind = "partial"
    if kind == "swap":
        pairs = [r for r in range(rows - 1) if any(present(r, t) and present(r + 1, t)
                                                  for t in bars)]
        if not pairs:
            kind = "duplicate"
    if kind == "duplicate":
        r = draw(st.integers(0, rows - 1))
        lines.insert(4 + r, lines[3 + r])
        return "\n".join(lines), 5 + r, kind
    if kind == "swap":
        r = draw(st.sampled_from(pairs))
        lines[3 + r], lines[4 + r] = lines[4 + r], lines[3 + r]
        return "\n".join(lines), 5 + r, kind
    r, t = draw(st.sampled_from(absent if kind == "absent_filled" else cells))
    f = lines[3 + r].split(",")
    if kind == "partial":  # some of the bar's fields empty, not all
        gone = draw(st.lists(st.sampled_from(PRICES), min_size=1, max_size=4, unique=True))
        for p in gone:
            f[col[(p, t)]] = ""
    elif kind == "absent_filled":  # a field of a bar the ticker has not
        f[col[(draw(st.sampled_from(PRICES)), t)]] = draw(st.sampled_from(["1.5", "0", "nan"]))
    elif kind == "ts_word":
        f[0] = draw(st.sampled_from(["abc", "2024-13-01 14:30:00+00:00", "14:30"]))
    elif kind == "ts_empty":
        f[0] = ""
    else:
        p = draw(st.sampled_from(PRICES if kind != "negative" else PRICES[:4]))
        value = f[col[(p, t)]]
        f[col[(p, t)]] = {"word": "abc", "nan": "nan", "negative": "-" + value}[kind]
    lines[3 + r] = ",".join(f)
    return "\n".join(lines), 4 + r, kind


def write(path: str, text: str, style: tuple[bool, bool, str] = (False, False, "")) -> str:
    """``text`` written plain or gzipped; ``style``: CRLF line ends, a byte-order mark
    (Excel's "CSV UTF-8" of the file), and what follows the last bar (blank lines, a row
    of separators)."""
    crlf, bom, tail = style
    text += tail
    if crlf:
        text = text.replace("\n", "\r\n")
    if bom:
        text = "\ufeff" + text
    if path.endswith(".gz"):
        with gzip.open(path, "wt", newline="") as f:
            f.write(text)
    else:
        with open(path, "w", newline="") as f:
            f.write(text)
    return path


def ingested(root: str, path: str):
    s = incbt.init(root)
    try:
        s.ingest(path)
        return s.sql(BARS)
    finally:
        close_env(os.path.join(root, "catalog"))


def refused(root: str, path: str) -> str:
    s = incbt.init(root)
    try:
        before = tree_state(root)
        with pytest.raises(incbt.BadInputError) as e:
            s.ingest(path)
        assert tree_state(root) == before
        return str(e.value)
    finally:
        close_env(os.path.join(root, "catalog"))


@pytest.mark.filterwarnings("ignore::incbt.DataNoteWarning")  # Adj Close etc. not read
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bars=universe(), data=st.data())
def test_a_yfinance_file_is_read_as_the_same_bars_as_a_plain_file(bars, data):
    draw = data.draw
    extra = draw(st.lists(st.sampled_from(EXTRA), max_size=2, unique=True))
    prices = draw(st.permutations(PRICES + extra))
    group_by = draw(st.sampled_from(["column", "ticker"]))
    tz = draw(st.sampled_from(["UTC", "America/New_York"]))
    gz = draw(st.booleans())
    text = wide_text(bars, prices, group_by, tz, draw(st.booleans()))
    width = text.split("\n", 1)[0].count(",")
    style = (draw(st.booleans()), draw(st.booleans()),
             draw(st.sampled_from(["", "", "\n", "," * width + "\n"])))
    defect = draw(st.booleans())
    with tempfile.TemporaryDirectory() as root:
        yf = os.path.join(root, "yf.csv" + (".gz" if gz else ""))
        plain = os.path.join(root, "plain.csv")
        if not defect:
            write(yf, text, style)
            write(plain, plain_text(bars))
            got, want = ingested(f"{root}/a", yf), ingested(f"{root}/b", plain)
            assert got.num_rows == sum(len(b) for b in bars.values())
            assert bits(got).equals(bits(want))
            event(f"clean: {len(bars)} ticker(s), {group_by}, {tz}, gz={gz}")
            return
        text, line, kind = inject(draw, text, bars)
        event(f"defect: {kind}")
        write(yf, text, style)
        write(plain, plain_of_wide(text))
        msg = refused(f"{root}/a", yf)
        assert msg.startswith(f"{yf}, line {line}: "), (msg, text)
        refused(f"{root}/b", plain)
