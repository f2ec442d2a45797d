"""A session day given in pieces by several files of one ingest is joined.

The case: bars round the clock (crypto, FX) in files of UTC days, in a store
whose session zone cuts each file's day in two (``America/New_York``: a session
day runs 04:00-04:00 UTC, 05:00 in winter); the days span a month's end and the
end of daylight saving time. Each session day then comes in two
files. The property: cut the same bars in files anywhere, give them in any
order, in chunks of any size, and the store ends with the bars of one file
holding them all, bit for bit; bars of one day given twice with different
values at the same times are refused, and the store stays as it was.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import incbt
from incbt.catalog.env import close_env
from incbt.errors import BadInputError, DataNoteWarning

TZ = "America/New_York"
STEP_MIN = 30  # a bar every 30 minutes: 48 a UTC day, small files
DAYS = 4
INSTS = ["BTCUSD", "ETHUSD"]
T0 = np.datetime64("2024-10-31T00:00", "ns").astype(np.int64)  # to Nov 3: DST ends


def _bars() -> pa.Table:
    n = DAYS * 24 * 60 // STEP_MIN
    ts = T0 + np.arange(n, dtype=np.int64) * STEP_MIN * 60_000_000_000
    rng = np.random.default_rng(7)
    cols: dict[str, list] = {
        k: [] for k in ("instrument", "ts", "open", "high", "low", "close", "volume")
    }
    for k, inst in enumerate(INSTS):
        close = 100.0 * (k + 1) + np.cumsum(rng.normal(0, 0.5, n)).round(2)
        open_ = close + rng.normal(0, 0.1, n).round(2)
        cols["instrument"] += [inst] * n
        cols["ts"] += ts.tolist()
        cols["open"] += open_.tolist()
        cols["close"] += close.tolist()
        cols["high"] += (np.maximum(open_, close) + 0.05).tolist()
        cols["low"] += (np.minimum(open_, close) - 0.05).tolist()
        cols["volume"] += rng.integers(1, 100, n).astype(float).tolist()
    return pa.table(
        {
            "instrument": pa.array(cols["instrument"]),
            "ts": pa.array(cols["ts"], pa.timestamp("ns", tz="UTC")),
            **{
                c: pa.array(cols[c], pa.float64())
                for c in ("open", "high", "low", "close", "volume")
            },
        }
    )


BARS = _bars()


def _store_bars(path: str) -> pa.Table:
    s = incbt.open(path)
    try:
        return s.sql(
            "SELECT instrument, ts, open, high, low, close, volume, date FROM bars "
            "ORDER BY instrument, ts"
        )
    finally:
        close_env(path)


def _write(d: str, cuts: list[int], order: list[int]) -> list[str]:
    """The bars cut at row ``cuts`` of each instrument (the same times for both), as
    files named so that they sort in ``order``."""
    n = BARS.num_rows // len(INSTS)
    bounds = [0, *sorted(set(cuts)), n]
    pieces = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        if a == b:
            continue
        rows = np.concatenate([np.arange(a, b) + k * n for k in range(len(INSTS))])
        pieces.append(BARS.take(pa.array(rows)))
    paths = []
    for rank, k in enumerate(k for k in order if k < len(pieces)):
        p = os.path.join(d, f"part-{rank:03d}.parquet")
        pq.write_table(pieces[k], p)
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> pa.Table:
    root = tmp_path_factory.mktemp("whole")
    f = str(root / "all.parquet")
    pq.write_table(BARS, f)
    path = str(root / "store")
    incbt.init(path, session_tz=TZ).ingest(f)
    close_env(path)
    out = _store_bars(path)
    assert out.num_rows == BARS.num_rows
    # the session days: the UTC days cut at 04:00 (EDT) / 05:00 (EST, from Nov 3)
    assert len(set(out.column("date").to_pylist())) == DAYS + 1
    return out


N_PER = DAYS * 24 * 60 // STEP_MIN


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cuts=st.lists(st.integers(0, N_PER), max_size=6),
    order=st.permutations(list(range(7))),
    chunk_kb=st.sampled_from([0, 4, 16]),
)
@example(cuts=[48, 96, 144], order=[0, 1, 2, 3, 4, 5, 6], chunk_kb=0)  # UTC days, in order
@example(cuts=[48, 96, 144], order=[3, 2, 1, 0, 4, 5, 6], chunk_kb=0)  # UTC days, backwards
@example(cuts=[48, 96, 144], order=[0, 1, 2, 3, 4, 5, 6], chunk_kb=4)  # a file a chunk
def test_days_cut_across_files_are_joined(whole, cuts, order, chunk_kb):
    with tempfile.TemporaryDirectory() as d:
        files = _write(d, cuts, order)
        path = os.path.join(d, "store")
        s = incbt.init(path, session_tz=TZ)
        if chunk_kb:
            s.settings["ingest_chunk_mb"] = chunk_kb / 1024
        try:
            r = s.ingest(files)
        except BadInputError as e:
            # only in chunks, files out of time order: the earlier piece was written
            assert chunk_kb and "are no longer in memory" in str(e), str(e)
            assert "give the files in time order" in str(e)
            close_env(path)
            assert _store_bars(path).num_rows == 0
            return
        assert r.days_new == (DAYS + 1) * len(INSTS)
        assert r.days_corrected == 0
        close_env(path)
        assert _store_bars(path).equals(whole)


def test_in_time_order_any_chunk_size_joins(whole, tmp_path):
    """Files of UTC days in date order, a file a chunk: the days cut in two join
    (the earlier chunk's last month waits for the next chunk)."""
    files = _write(str(tmp_path), [48, 96, 144], list(range(4)))
    path = str(tmp_path / "store")
    s = incbt.init(path, session_tz=TZ)
    s.settings["ingest_chunk_mb"] = 1 / 1024
    s.ingest(files)
    close_env(path)
    assert _store_bars(path).equals(whole)


def test_same_hours_different_bars_refused(tmp_path):
    """Two files with the same day's bars at the same times, one value apart: the
    second is not a piece of the day but another version of it."""
    a = tmp_path / "a.parquet"
    pq.write_table(BARS.slice(0, 60), str(a))
    t = BARS.slice(40, 20)
    vol = t.column("volume").to_numpy().copy()
    vol[3] += 1
    b = tmp_path / "b.parquet"
    pq.write_table(
        t.set_column(t.schema.get_field_index("volume"), "volume", pa.array(vol)), str(b)
    )
    path = str(tmp_path / "store")
    s = incbt.init(path, session_tz=TZ)
    with pytest.raises(BadInputError) as e:
        s.ingest([str(a), str(b)])
    msg = str(e.value)
    assert "is also in" in msg and "a.parquet" in msg and "b.parquet" in msg, msg
    # the bar that differs, by its time and both lines (rows here)
    assert "with a different bar at " in msg and "(row 44)" in msg and "row 4:" in msg, msg
    close_env(path)
    assert _store_bars(path).num_rows == 0


def test_a_piece_given_twice_counts_once(whole, tmp_path):
    """Pieces of a day joined, then one of them again, identical: nothing to refuse."""
    files = _write(str(tmp_path), [48, 96, 144], list(range(4)))
    again = tmp_path / "zz-again.parquet"
    shutil.copyfile(files[0], again)
    path = str(tmp_path / "store")
    incbt.init(path, session_tz=TZ).ingest([*files, str(again)])
    close_env(path)
    assert _store_bars(path).equals(whole)


def test_out_of_order_in_chunks_refused(tmp_path):
    """UTC-day files backwards, a file a chunk, across a month's end: October's
    pieces are written when November's are the latest, so the rest of Oct 31 (in
    the file of Oct 31, read after that of Nov 1) cannot be joined: refused, with
    the fix; nothing is written."""
    files = _write(str(tmp_path), [48, 96, 144], [3, 2, 1, 0])
    path = str(tmp_path / "store")
    s = incbt.init(path, session_tz=TZ)
    s.settings["ingest_chunk_mb"] = 1 / 1024
    with pytest.raises(BadInputError) as e:
        s.ingest(files)
    assert "are no longer in memory" in str(e.value), str(e.value)
    close_env(path)
    assert _store_bars(path).num_rows == 0
    assert sorted(os.listdir(os.path.join(path, "bars"))) == []


# -- across ingests: --join-days ---------------------------------------------------


def _ingest_in_turn(d: str, cuts: list[int], backwards: bool, join: bool) -> tuple[str, list]:
    """The bars cut at ``cuts``, each piece ingested alone, in time order or backwards."""
    files = _write(d, cuts, list(range(8)))
    if backwards:
        files.reverse()
    path = os.path.join(d, "store")
    s = incbt.init(path, session_tz=TZ)
    with warnings.catch_warnings():  # the note of a continuation replacing a day
        warnings.simplefilter("ignore", DataNoteWarning)
        out = [s.ingest(f, join_days=join) for f in files]
    close_env(path)
    return path, out


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(1, N_PER - 1), min_size=1, max_size=5), backwards=st.booleans())
@example(cuts=[24], backwards=False)  # a day cut mid-file
@example(cuts=[48, 96, 144], backwards=True)  # UTC days, the latest first
def test_join_days_across_ingests(whole, cuts, backwards):
    """Pieces in time order (or backwards), one ingest each, with join_days: the
    store holds every bar, as one ingest of them all; each day cut between two
    ingests is a correction the second time, joined, said in ``joined_days``."""
    with tempfile.TemporaryDirectory() as d:
        path, sums = _ingest_in_turn(d, cuts, backwards, join=True)
        assert _store_bars(path).equals(whole)
        for r in sums:
            assert not r.replaced_apart
            assert {(i, d) for i, d, *_ in r.joined_days} == set(r.corrected)
            # each joined day kept every stored bar: nothing was sent twice
            assert all(kept == stored for _, _, stored, _, kept in r.joined_days)


def test_without_join_days_a_continuation_replaces_and_is_said(whole, tmp_path):
    """The second half of the bars without join_days: each day cut in two is replaced
    by its second part (a correction), and the note says so, with the fix."""
    path, (a, b) = _ingest_in_turn(str(tmp_path), [100], False, join=False)
    assert a.days_new == 3 * len(INSTS) and not a.replaced_apart
    assert b.days_corrected == len(INSTS) and len(b.replaced_apart) == len(INSTS)
    inst, day, stored, new = b.replaced_apart[0]
    assert stored > 0 and new > 0
    note = " ".join(b.notes())
    assert "replaced whole" in note and "--join-days" in note, note
    got = _store_bars(path)
    assert got.num_rows == whole.num_rows - len(INSTS) * stored


def test_join_days_merges_new_bars_into_the_stored_day(tmp_path):
    """With join_days the new bars are merged into the stored day: a bar at a stored
    bar's time replaces it, the other stored bars stay; the same bars sent again change
    nothing (QA 2026-12-06: a file given twice cut a joined day short, silently).
    Without it, the same correction replaces the day whole and says the bars it left
    out."""
    a = tmp_path / "a.parquet"
    pq.write_table(BARS.slice(0, 60), str(a))
    b = tmp_path / "b.parquet"
    t = BARS.slice(40, 10)
    vol = t.column("volume").to_numpy() + 1
    pq.write_table(
        t.set_column(t.schema.get_field_index("volume"), "volume", pa.array(vol)), str(b)
    )
    path = str(tmp_path / "store")
    s = incbt.init(path, session_tz=TZ)
    s.ingest(str(a))
    q = "SELECT date, volume FROM bars ORDER BY instrument, ts"
    before = s.sql(q)
    d40 = before.column(0)[40]
    n_day = sum(1 for d in before.column(0).to_pylist() if d == d40.as_py())
    r = s.ingest(str(b), join_days=True)
    assert r.days_corrected == 1 and not r.replaced_apart
    ((inst, day, stored, new, kept),) = r.joined_days
    assert (stored, new, kept) == (n_day, 10, n_day - 10)
    after = s.sql(q)
    assert after.num_rows == before.num_rows  # no bar lost
    assert after.column(1).to_pylist()[40:50] == vol.tolist()  # the ten replaced
    assert after.column(1).to_pylist()[:40] == before.column(1).to_pylist()[:40]
    again = s.ingest(str(b), join_days=True)  # the same bars again: nothing changes
    assert again.seq is None and again.days_unchanged == 1 and not again.changed
    again = s.ingest(str(a), join_days=True)  # the first file again: its bars return
    assert again.days_corrected == 1 and s.sql(q).equals(before)
    r = s.ingest(str(b))  # whole: the day is the ten bars, said
    assert r.days_corrected == 1 and r.replaced_apart == [(inst, day, n_day, 10)]
    close_env(path)
    got = _store_bars(path)
    assert got.filter(pc.equal(got.column("date"), d40)).num_rows == 10


def test_pieces_whose_shared_bars_are_the_same_join_in_any_order(whole, tmp_path):
    """Inclusive boundaries (the last bar of a file again first in the next) and a
    piece filling another's gap join, whatever the files' order (QA 2026-12-06: both
    were refused as "different bars", the second in one order only)."""
    n = N_PER
    rows = [np.arange(0, 60), np.arange(59, 130), np.arange(120, n)]  # shared bars
    gap = [np.concatenate([np.arange(0, 20), np.arange(40, n)]), np.arange(15, 45)]
    for k, cut in enumerate([rows, gap, gap[::-1]]):
        d = tmp_path / str(k)
        d.mkdir()
        files = []
        for j, r in enumerate(cut):
            f = d / f"p{j}.parquet"
            idx = np.concatenate([r + m * n for m in range(len(INSTS))])
            pq.write_table(BARS.take(pa.array(idx)), str(f))
            files.append(str(f))
        path = str(d / "store")
        got = incbt.init(path, session_tz=TZ).ingest(files)
        # the bars given twice are said, not dropped silently (QA 2026-12-06)
        assert got.rows_repeated == got.rows_read - whole.num_rows > 0, (k, got)
        assert f"({got.rows_repeated:,} repeated)" in repr(got)
        close_env(path)
        assert _store_bars(path).equals(whole), k


def test_join_days_notes_no_short_day_for_a_day_that_goes_on(tmp_path):
    """Bars sent as they come: each instrument's latest day is incomplete by design;
    with join_days it is not said short (QA 2026-12-06: every daily update said so)."""
    n = N_PER
    first = BARS.take(pa.array(np.concatenate([np.arange(0, 144), np.arange(n, n + 144)])))
    # BTCUSD's new day has 8 bars so far, ETHUSD's all of its bars
    then = BARS.take(pa.array(np.concatenate([np.arange(144, 160), np.arange(n + 144, 2 * n)])))
    pq.write_table(first, str(tmp_path / "a.parquet"))
    pq.write_table(then, str(tmp_path / "b.parquet"))
    said = {}
    for join in (False, True):
        path = str(tmp_path / f"store-{join}")
        s = incbt.init(path, session_tz=TZ)
        s.ingest(str(tmp_path / "a.parquet"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataNoteWarning)
            said[join] = s.ingest(str(tmp_path / "b.parquet"), join_days=join).short_days
    assert said[False]  # replaced by their ends, the days of 11-02 are short
    assert said[True] == []  # merged; BTCUSD's 11-03 goes on in the next file


def test_join_days_update_equals_full(whole, tmp_path):
    """A backtest over the first half, then `update --join-days` with the rest: the
    results equal a backtest of a store that ingested every bar at once."""
    files = _write(str(tmp_path), [100], [0, 1])
    path = str(tmp_path / "inc")
    s = incbt.init(path, session_tz=TZ)
    s.ingest(files[0])
    s.backtest("sma_cross", {"fast": 3, "slow": 8})
    r = s.update(files[1], join_days=True)
    assert r.ingest.joined_days
    full = str(tmp_path / "full")
    f = incbt.init(full, session_tz=TZ)
    f.ingest(files)
    f.backtest("sma_cross", {"fast": 3, "slow": 8})
    q = "SELECT instrument, date, equity, pnl, pos, fees, fills FROM daily ORDER BY 1, 2"
    assert s.sql(q).equals(f.sql(q))
    q = "SELECT instrument, ts, qty, price, fee FROM fills ORDER BY 1, 2"
    assert s.sql(q).equals(f.sql(q))
    close_env(path)
    close_env(full)


def test_join_days_cli(whole, tmp_path):
    """`incbt ingest --join-days` says each day joined; `update --join-days` without
    files is bad usage (exit 2)."""
    from test_cli import run

    files = _write(str(tmp_path), [100], [0, 1])
    store = str(tmp_path / "store")
    run("init", "--tz", TZ, store=store)
    r = run("ingest", files[0], store=store)
    r = run("ingest", files[1], store=store, check=False)
    assert r.returncode == 0 and "replaced whole" in r.stderr and "--join-days" in r.stderr
    # the fix the note gives: the days' other bars again, joined before the new ones
    r = run("ingest", "--join-days", files[0], store=store)
    assert re.search(r"merged: [\d,]+ bar\(s\) at new times added, [\d,]+ at stored times "
                     r"taken, [\d,]+ stored bar\(s\) kept: [\d,]+ bars", r.stdout), r.stdout
    assert _store_bars(store).equals(whole)
    shutil.rmtree(store)
    run("init", "--tz", TZ, store=store)
    run("ingest", files[0], store=store)
    r = run("ingest", "--join-days", files[1], store=store)
    assert "at new times added" in r.stdout, r.stdout
    r = run("update", "--join-days", store=store, check=False)
    assert r.returncode == 2 and "give them" in r.stderr, r.stderr
    # update says what it merged as ingest does (QA 2026-12-06: counts only)
    shutil.rmtree(store)
    run("init", "--tz", TZ, store=store)
    run("ingest", files[0], store=store)
    r = run("update", "--join-days", files[1], store=store)
    assert re.search(r"  corrected \S+ \S+ \(merged: ", r.stdout), r.stdout


def test_the_merge_is_said_by_what_it_did():
    """QA 2026-12-06: "49 new bars merged into its 144 stored bars" for 1 new bar and 48
    sent again."""
    from incbt.cli import _merged_text

    assert _merged_text(144, 49, 96) == (
        " (merged: 1 bar(s) at new times added, 48 at stored times taken, 96 stored bar(s) "
        "kept: 145 bars)"
    )


def test_a_volume_of_minus_zero_is_zero(tmp_path):
    """-0.0 passes "volume >= 0": it is stored as 0.0, the same bar as one of 0 (QA
    2026-12-06: two files, 0 and -0.0 at the same time, were refused as different)."""
    head = "instrument,ts,open,high,low,close,volume\n"
    (tmp_path / "a.csv").write_text(head + "X,2024-10-30T00:00:00Z,10,11,9,10,0\n")
    (tmp_path / "b.csv").write_text(
        head + "X,2024-10-30T00:00:00Z,10,11,9,10,-0.0\nX,2024-10-30T00:01:00Z,10,11,9,10,-0.0\n"
    )
    path = str(tmp_path / "store")
    s = incbt.init(path)
    s.ingest([str(tmp_path / "a.csv"), str(tmp_path / "b.csv")])
    vol = s.sql("SELECT volume FROM bars ORDER BY ts").column(0).to_numpy()
    assert vol.tolist() == [0.0, 0.0] and not np.signbit(vol).any()


def test_join_days_says_an_earlier_short_day(tmp_path):
    """Only each instrument's latest day given (changed or not) is spared the short-day
    note: a gap filled short before it is said (QA 2026-12-06)."""
    n = N_PER
    days = [np.arange(0, 48), np.arange(96, 192)]  # UTC days 1, 3, 4 (no day 2)
    first = BARS.take(pa.array(np.concatenate([d + k * n for d in days for k in (0, 1)])))
    # day 2 for both, BTCUSD's cut to 5 bars; day 4 again, unchanged
    late = np.concatenate([np.arange(48, 53), n + np.arange(48, 96), np.arange(144, 192)])
    pq.write_table(first, str(tmp_path / "a.parquet"))
    pq.write_table(BARS.take(pa.array(late)), str(tmp_path / "b.parquet"))
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "a.parquet"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataNoteWarning)
        r = s.ingest(str(tmp_path / "b.parquet"), join_days=True)
    assert [(i, d) for i, d, *_ in r.short_days] == [("BTCUSD", "2024-11-01")], r.short_days


def test_a_late_piece_of_a_past_day_left_short_is_said(tmp_path):
    """--join-days spares the instrument's latest day (it goes on in the next file) the
    short-day note, but not a past day a late piece left short: the store holds later
    days of it (QA 2026-12-06: 54 bars of 144, eight days back, without a note)."""
    def write(path, cuts):
        lines = ["instrument,ts,open,high,low,close,volume"]
        for day, (first, last) in cuts.items():
            for k in range(first, last):
                t = np.datetime64(f"2024-03-{day:02d}T00:00") + np.timedelta64(10 * k, "m")
                lines.append(f"X,{t}Z,10,11,9,10,1")
        path.write_text("\n".join(lines) + "\n")

    days = [4, 5, 6, 7, 8, 11, 12, 13]
    write(tmp_path / "a.csv", {d: (0, 30 if d == 5 else 144) for d in days})
    write(tmp_path / "late.csv", {5: (30, 54)})  # more of Mar 5, still short
    write(tmp_path / "last.csv", {14: (0, 40)})  # the start of the latest day
    s = incbt.init(str(tmp_path / "s"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.ingest(str(tmp_path / "a.csv"))
        r = s.ingest(str(tmp_path / "late.csv"), join_days=True)
        assert [(i, d, n) for i, d, n, _ in r.short_days] == [("X", "2024-03-05", 54)]
        r = s.ingest(str(tmp_path / "last.csv"), join_days=True)
        assert r.days_new == 1 and not r.short_days
