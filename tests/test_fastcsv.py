"""The fast CSV reader answers exactly as Arrow does, or declines.

``incbt.bars.fastcsv`` parses the plain layout of bar files in one Numba pass;
wherever it returns a table, the Arrow path (which also words every error)
must give the same table, bit for bit. Hypothesis writes bars in the many
textual forms a CSV may hold; a fixed list covers the forms it must decline.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import incbt
from incbt.bars import fastcsv
from incbt.bars.generate import generate
from incbt.bars.inputs import _read_csv, read_input

COLS = ["instrument", "ts", "open", "high", "low", "close", "volume"]
ROLES = list(range(7))


@pytest.fixture(scope="module", autouse=True)
def kernel():
    fastcsv.prepare().join()
    assert fastcsv._kernel is not None, fastcsv.load_error


def arrow_table(path: str) -> pa.Table | None:
    with fastcsv.disabled():
        try:
            return _read_csv(path, {}, None)[0]
        except (pa.ArrowInvalid, incbt.BadInputError):
            return None


def same(a: pa.Table, b: pa.Table) -> None:
    assert a.column_names == b.column_names
    for c in a.column_names:
        x, y = a.column(c).combine_chunks(), b.column(c).combine_chunks()
        assert x.type == y.type, c
        if c == "instrument":
            assert x.to_pylist() == y.to_pylist()
            assert x.indices.to_pylist() == y.indices.to_pylist()
        else:  # bits: -0.0 and 0.0 differ
            assert np.array_equal(x.to_numpy().view(np.int64), y.to_numpy().view(np.int64)), c


# ---------------------------------------------------------------- textual forms

PLAIN_NUMBER = st.one_of(
    st.integers(0, 10**9).map(str),
    st.tuples(st.integers(0, 10**6), st.integers(1, 8)).map(
        lambda t: f"{t[0] / 10 ** t[1]:.{t[1]}f}"
    ),
    st.floats(1e-6, 1e9, allow_nan=False).map(lambda x: f"{x:.6g}"),
    st.floats(1e-6, 1e9, allow_nan=False).map(lambda x: f"{x:.4e}"),
    st.tuples(st.integers(0, 99999), st.integers(-22, 22)).map(lambda t: f"{t[0]}E{t[1]:+d}"),
    st.integers(0, 999).map(lambda n: f"000{n}.500"),
    st.just("-0.0"),
    st.integers(1, 10**6).map(lambda n: f"-{n}.25"),
)
# forms the reader may decline (Arrow reads them, or rejects the file)
OTHER_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from([".5", "5.", "+1.5", " 1.5", "1.5 ", '"2.5"', "1e400", "0x10", "", "nan"]),
    st.just("0.12345678901234567890"),
)


@st.composite
def timestamps(draw, plain: bool) -> str:
    ns = draw(st.integers(-(10**18), 4 * 10**18))
    t = np.datetime64(ns, "ns")
    date, clock = str(t).split("T")
    hms, _, frac = clock.partition(".")
    digits = draw(st.integers(0, 9))
    frac = (frac + "000000000")[:digits]
    sep = draw(st.sampled_from(["T", " "]))
    zone = draw(st.sampled_from(["Z", "+00:00", "+05:30", "-0800", "+23:59", "-11:00"]))
    text = f"{date}{sep}{hms}" + (f".{frac}" if digits else "") + zone
    if plain:
        return text
    return draw(
        st.sampled_from(
            [text, text.replace("Z", ""), text[:16] + "Z", f"{date}T25:00:00Z", text + " "]
        )
    )


@st.composite
def same_day_timestamps(draw, plain: bool, days: list[str]) -> str:
    """A time on one of a few dates (lines one after another share their date, as bar
    files' do: the reader parses a date once while it repeats)."""
    t = draw(timestamps(plain))
    cut = 10 if t[:1] != "-" else 11  # after YYYY-MM-DD
    return draw(st.sampled_from(days)) + t[cut:] if t[cut : cut + 1] in ("T", " ") else t


@st.composite
def csv_text(draw, plain: bool) -> str:
    n = draw(st.integers(1, 30))
    names = draw(
        st.one_of(
            st.lists(
                st.text(
                    st.characters(min_codepoint=32, max_codepoint=126, exclude_characters='",'),
                    min_size=1,
                    max_size=6,
                ),
                min_size=1,
                max_size=4,
                unique=True,
            ),
            # names that begin with others (the reader compares a line's name with the
            # line before's first)
            st.lists(st.sampled_from(["A", "AB", "ABC", "B", "AB C", "ABCD"]), min_size=1,
                     max_size=4, unique=True),
        )
    )
    int_ts = draw(st.booleans())
    quote = draw(st.booleans())
    # dates one character apart, and the last day of February in a leap year and not
    days = draw(st.lists(st.sampled_from(["2024-01-06", "2024-01-16", "2024-11-06", "2024-02-29",
                                          "2023-02-28", "2000-02-29"]), min_size=1, max_size=3))
    few_days = draw(st.booleans())
    lines = []
    for _ in range(n):
        name = draw(st.sampled_from(names))
        name = f'"{name}"' if quote else name
        if int_ts:
            ts = str(draw(st.integers(-2 ** 62, 2 ** 62)))
        elif few_days:
            ts = draw(same_day_timestamps(plain, days))
        else:
            ts = draw(timestamps(plain))
        num = PLAIN_NUMBER if plain else st.one_of(PLAIN_NUMBER, OTHER_NUMBER)
        lines.append(",".join([name, ts, *(draw(num) for _ in range(5))]))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    header = ",".join(f'"{c}"' if quote else c for c in COLS)
    return eol.join([header, *lines]) + (eol if draw(st.booleans()) else "")


def write(tmp_path, text: str) -> str:
    p = os.path.join(tmp_path, "bars.csv")
    with open(p, "w", newline="") as f:
        f.write(text)
    return p


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=csv_text(plain=True))
def test_plain_forms_are_read_as_arrow_reads_them(tmp_path, text):
    p = write(tmp_path, text)
    ours = fastcsv.read(p, ROLES, text.split("\n")[1].split(",")[1].lstrip("-").isdigit())
    assert ours is not None, "the fast reader declined a plain file"
    ref = arrow_table(p)
    assert ref is not None
    same(ours, ref)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=csv_text(plain=False))
def test_any_answer_equals_arrows(tmp_path, text):
    p = write(tmp_path, text)
    first_ts = text.split("\n")[1].split(",")[1]
    for int_ts in (False, True):
        ours = fastcsv.read(p, ROLES, int_ts)
        if ours is not None:
            ref = arrow_table(p)
            assert ref is not None, "the fast reader accepted a file Arrow rejects"
            if int_ts == bool(re.match(r"^\s*-?\d+\s*$", first_ts)):  # as _read_csv decides
                same(ours, ref)


@pytest.mark.parametrize(
    "line",
    [
        '"A",2024-01-02T10:00:00Z,1,1,1,1,"5"',  # a quoted number
        "A,2024-01-02T10:00:00Z,.5,1,1,1,5",
        "A,2024-01-02T10:00:00Z,5.,1,1,1,5",
        "A,2024-01-02T10:00:00Z,+1,1,1,1,5",
        "A,2024-01-02T10:00:00Z, 1,1,1,1,5",
        "A,2024-01-02T10:00:00Z,nan,1,1,1,5",
        "A,2024-01-02T10:00:00Z,inf,1,1,1,5",
        "A,2024-01-02T10:00:00Z,0.12345678901234567,1,1,1,5",  # more than 2**53
        "A,2024-01-02T10:00:00Z,1e23,1,1,1,5",  # beyond exact powers of ten
        "A,2024-01-02T10:00:00,1,1,1,1,5",  # naive
        "A,2024-01-02T10:00Z,1,1,1,1,5",  # no seconds
        "A,2024-02-30T10:00:00Z,1,1,1,1,5",
        "A,1677-01-01T00:00:00Z,1,1,1,1,5",  # before int64 nanoseconds
        "A,2024-01-02T10:00:00.1234567891Z,1,1,1,1,5",
        "A,2024-01-02T10:00:00+24:00,1,1,1,1,5",
        '"A,B",2024-01-02T10:00:00Z,1,1,1,1,5',
        '"A""B",2024-01-02T10:00:00Z,1,1,1,1,5',
        "Ä,2024-01-02T10:00:00Z,1,1,1,1,5",
        ",2024-01-02T10:00:00Z,1,1,1,1,5",
        "A,2024-01-02T10:00:00Z,1,1,1,1,5,6",
        "A,2024-01-02T10:00:00Z,1,1,1,1",
        # a blank line between bars (blank lines after the last bar are left out)
        "A,2024-01-02T10:00:00Z,1,1,1,1,5\n\nA,2024-01-02T10:01:00Z,1,1,1,1,5",
    ],
)
def test_declines_what_it_does_not_handle(tmp_path, line):
    p = write(tmp_path, ",".join(COLS) + "\nA,2024-01-02T09:59:00Z,1,1,1,1,5\n" + line + "\n")
    assert fastcsv.read(p, ROLES, False) is None


def test_int_ts_beyond_int64_is_declined(tmp_path):
    p = write(tmp_path, ",".join(COLS) + "\nA,9223372036854775808,1,1,1,1,5\n")
    assert fastcsv.read(p, ROLES, True) is None
    p = write(tmp_path, ",".join(COLS) + "\nA,9223372036854775807,1,1,1,1,5\n")
    assert fastcsv.read(p, ROLES, True).column("ts")[0].as_py() == 2**63 - 1


def test_columns_in_another_order_and_mapped_names(tmp_path):
    text = "Close,Sym,Time,Open,Hi,Lo,Vol\n101.5,X,2024-01-02T10:00:00+01:00,100,102,99.5,7\n"
    p = write(tmp_path, text)
    mapping = {
        "instrument": "Sym",
        "ts": "Time",
        "open": "Open",
        "high": "Hi",
        "low": "Lo",
        "close": "Close",
        "volume": "Vol",
    }
    fast = read_input(p, mapping)
    with fastcsv.disabled():
        slow = read_input(p, mapping)
    assert fastcsv.read(p, [5, 0, 1, 2, 3, 4, 6], False) is not None
    for c in ("codes", "ts", "open", "high", "low", "close", "volume", "rows"):
        assert np.array_equal(getattr(fast, c), getattr(slow, c)), c
    assert fast.names == slow.names == ["X"]
    assert fast.ts[0] == np.datetime64("2024-01-02T09:00:00", "ns").astype(np.int64)


def test_generated_files_take_the_fast_path_and_store_the_same_bars(tmp_path):
    files = generate(str(tmp_path / "d"), instruments=3, days=4, start="2024-03-01", seed=3)
    for f in files:
        assert fastcsv.read(f, ROLES, False) is not None
    a = incbt.init(str(tmp_path / "a"))
    a.ingest(str(tmp_path / "d"))
    b = incbt.init(str(tmp_path / "b"))
    with fastcsv.disabled():
        b.ingest(str(tmp_path / "d"))
    q = "SELECT * FROM bars ORDER BY instrument, ts"
    assert a.sql(q).num_rows == 3 * 4 * 390
    assert a.sql(q).equals(b.sql(q))
    # files are content-addressed by their days' content hashes: the same paths
    q = "SELECT path FROM files ORDER BY path"
    assert a.sql(q).equals(b.sql(q))


def test_a_bad_file_gets_the_same_message_either_way(tmp_path):
    text = ",".join(COLS) + "\nA,2024-01-02T10:00:00Z,1,1,1,1,5\nA,2024-01-02T10:00:00Z,2,2,2,2,5\n"
    p = write(tmp_path, text)
    assert fastcsv.read(p, ROLES, False) is not None  # parsed; the duplicate is validate's
    with pytest.raises(incbt.BadInputError) as fast:
        read_input(p)
    with fastcsv.disabled(), pytest.raises(incbt.BadInputError) as slow:
        read_input(p)
    assert str(fast.value) == str(slow.value)
    assert "line 3" in str(fast.value)


# ---------------------------------------------------------------- validation in one pass

T0 = 1_704_067_200 * 10**9  # 2024-01-01 in ns: bars before 1973 are refused
VALUES = st.sampled_from([0.5, 1.0, 2.0, 3.0, 0.0, -1.0, float("nan"), float("inf")])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_validate_answers_the_same_with_its_one_pass_check(data):
    """`validate` with the Numba pass (`fastcsv.bars_hold`, loaded with the kernel) and
    with NumPy alone: the same bars, or the same message, for values that often break a
    rule and instruments that are often not grouped or not in time order."""
    from incbt.bars.inputs import validate

    n = data.draw(st.integers(1, 10))
    col = st.lists(VALUES, min_size=n, max_size=n)
    codes = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    if data.draw(st.booleans()):
        codes.sort()  # grouped, as most files are
    ts = data.draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    if data.draw(st.booleans()):
        ts = list(range(n))  # rising
    table = pa.table({
        "instrument": pa.array(["A", "B", "C"]).take(pa.array(codes)).dictionary_encode(),
        "ts": pa.array([T0 + t for t in ts], pa.int64()),  # 2024: later than TS_FLOOR
        **{c: pa.array(data.draw(col), pa.float64()) for c in COLS[2:]},
    })  # fmt: skip

    def outcome() -> object:
        try:
            b = validate("f.csv", "csv", table)
        except incbt.BadInputError as e:
            return str(e)
        arrays = (b.codes, b.ts, b.open, b.high, b.low, b.close, b.volume, b.rows)
        return b.names, [a.tolist() for a in arrays]

    arr = {c: table.column(c).to_numpy() for c in COLS[1:]}
    one_pass = fastcsv.bars_hold(np.asarray(codes, np.int32), *arr.values())
    assert one_pass is not None  # the kernel is loaded: the pass is what is tested
    fast = outcome()
    with fastcsv.disabled():
        assert fastcsv.bars_hold(np.asarray(codes, np.int32), *arr.values()) is None
        slow = outcome()
    assert fast == slow
    grouped = all(a <= b for a, b in zip(codes, codes[1:], strict=False))
    assert one_pass == (grouped and not isinstance(slow, str))


def test_the_one_pass_check_is_one_signature_whatever_read_the_bars(tmp_path):
    """Bars read by this reader, by Arrow's (times in a zone) and from Parquet are checked
    with the same array types, or not by the pass at all: no second compilation."""
    import pyarrow.parquet as pq

    from incbt.bars._csv_kernel import bars_hold

    text = ",".join(COLS) + "\nA,2024-01-02T10:00:00,1,2,1,1.5,5\nA,2024-01-02T10:01:00,1,1,1,1,5\n"
    for bars in (
        read_input(write(tmp_path, text.replace(":00,", ":00Z,"))),  # this reader
        read_input(write(tmp_path, text), tz="America/New_York"),  # Arrow's
    ):
        assert bars.ts.dtype == np.int64 and len(bars) == 2
    p = os.path.join(tmp_path, "bars.parquet")
    pq.write_table(pa.table({
        "instrument": ["A", "A"], "ts": pa.array([T0 + 1, T0 + 2], pa.timestamp("ns", tz="UTC")),
        **{c: [1.0, 1.0] for c in COLS[2:]},
    }), p)  # fmt: skip
    assert len(read_input(p)) == 2
    assert len(bars_hold.signatures) == 1, bars_hold.signatures
    one = np.ones(2)
    ts = np.arange(2, dtype=np.int64)
    assert fastcsv.bars_hold(np.zeros(2, np.int32), ts, one, one, one, one, one) is True
    for odd in (ts.astype("M8[ns]"), ts.astype(np.int32), np.arange(4, dtype=np.int64)[::2]):
        assert fastcsv.bars_hold(np.zeros(2, np.int32), odd, one, one, one, one, one) is None


def test_a_ctrl_c_as_the_loader_starts_leaves_no_thread_that_cannot_be_joined(monkeypatch):
    """Found by QA 2026-12-08 beside a Ctrl-C of a worker's threads: prepare() kept its
    loader thread before starting it, so a Ctrl-C landing between the two left one that
    every later prepare() (a notebook's next ingest) returned, and joining it raised
    "cannot join thread before it is started"."""
    import threading

    monkeypatch.setattr(fastcsv, "_loader", None)
    real = threading.Thread.start

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fastcsv.prepare()
    monkeypatch.setattr(threading.Thread, "start", real)
    fastcsv.prepare().join(timeout=120)  # the next one loads it
    assert fastcsv._kernel is not None, fastcsv.load_error
