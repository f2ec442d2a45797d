"""A month as a base file plus append files: appends, tier merges, folds, corrections.

Days new to a month that already has a file are written alone (an append file);
the newest file joins the new one while it holds no more days (size tiers); past
``bucket_max_files`` the month is folded into one file; a corrected day rewrites
the file holding it. Every state must read, query, prune and time-travel like a
store that ingested the same final data at once.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest

import incbt
from incbt.bars.generate import generate, weekdays
from incbt.bars.schema import day_to_iso, iso_to_day

START = "2024-01-02"
DATES = [day_to_iso(d) for d in weekdays(iso_to_day(START), 12)]  # Jan 2 .. Jan 17
GEN = dict(instruments=2, days=12, start=START, seed=11)
ALL_BARS = "SELECT * FROM bars ORDER BY instrument, ts"


@pytest.fixture
def days(tmp_path):
    """One CSV per day (original) and the same days revised, one file per day."""
    orig = generate(str(tmp_path / "orig"), **GEN)
    rev = generate(str(tmp_path / "rev"), revise=DATES, **GEN)
    return orig, rev


def month_files(st: incbt.Store, inst: str = "S0000") -> list[dict]:
    return st.sql(
        "SELECT path, rows, first_day, last_day FROM files WHERE instrument = $i "
        "ORDER BY first_day",
        params={"i": inst},
    ).to_pylist()


def assert_like_fresh(st: incbt.Store, files: list[str], tmp_path, name: str) -> None:
    """Bars, day index and SQL equal those of a store fed the same files at once."""
    fresh = incbt.init(str(tmp_path / name))
    fresh.ingest(files)
    assert st.sql(ALL_BARS).equals(fresh.sql(ALL_BARS))
    for inst in fresh.instruments():
        a, b = st.bars(inst), fresh.bars(inst)
        for c in ("ts", "open", "high", "low", "close", "volume", "days", "day_ends"):
            assert np.array_equal(getattr(a, c), getattr(b, c)), (inst, c)
        part, whole = st.bars(inst, DATES[3], DATES[6]), fresh.bars(inst, DATES[3], DATES[6])
        assert np.array_equal(part.close, whole.close) and np.array_equal(part.days, whole.days)


def test_a_new_day_is_an_append_file_and_the_month_file_stays(store, days, tmp_path):
    orig, _ = days
    store.ingest(orig[:4])
    (base,) = month_files(store)
    s = store.ingest(orig[4])
    assert (s.days_new, s.buckets_written, s.append_files, s.buckets_folded) == (2, 2, 2, 0)
    files = month_files(store)
    assert [f["path"] for f in files][0] == base["path"]  # untouched
    app = files[1]
    assert app["rows"] == 390 and str(app["first_day"]) == str(app["last_day"]) == DATES[4]
    md = pq.ParquetFile(os.path.join(store.path, app["path"])).metadata
    assert md.num_rows == 390 and app["path"].startswith("bars/S0000/2024-01-")
    # min/max of the times only (files are pruned by their catalog entries)
    rg = md.row_group(0)
    stats = {rg.column(j).path_in_schema: rg.column(j).statistics for j in range(rg.num_columns)}
    assert {c for c, st in stats.items() if st is not None and st.has_min_max} == {"ts", "date"}
    assert str(stats["date"].min) == str(stats["date"].max) == DATES[4]
    # the day index points at the append file, row group 0, offset 0
    with store.catalog.env.read() as txn:
        e = store.catalog.day(txn, "S0000", iso_to_day(DATES[4]))
        rec = store.catalog.file(txn, e.file)
    assert rec.path == app["path"] and (e.row_group, e.offset, e.rows) == (0, 0, 390)
    assert_like_fresh(store, orig[:5], tmp_path, "fresh")
    # the same day again: nothing changes, no event, no file
    n_events = len(store.log())
    before = sorted(os.listdir(os.path.join(store.path, "bars", "S0000")))
    s = store.ingest(orig[4])
    assert s.seq is None and s.days_unchanged == 2 and len(store.log()) == n_events
    assert sorted(os.listdir(os.path.join(store.path, "bars", "S0000"))) == before


def test_size_tiers_keep_few_files(store, days, tmp_path):
    orig, _ = days
    store.ingest(orig[:4])
    base = month_files(store)[0]["path"]
    counts = []
    for f in orig[4:10]:  # Jan 8 .. Jan 15, one day at a time
        s = store.ingest(f)
        files = month_files(store)
        counts.append([f["rows"] // 390 for f in files])
        assert s.buckets_written == 2  # one file per instrument, whatever it merges
        if len(files) > 1:
            assert files[0]["path"] == base  # the oldest file is not rewritten
        base = files[0]["path"]
    # a binary counter of days: the 4-day base stays until the appends add up to 4
    assert counts == [[4, 1], [4, 2], [4, 2, 1], [8], [8, 1], [8, 2]]
    assert_like_fresh(store, orig[:10], tmp_path, "fresh")


def test_too_many_files_fold_into_one(tmp_path, days, monkeypatch):
    orig, _ = days
    monkeypatch.setenv("INCBT_BUCKET_MAX_FILES", "2")
    st = incbt.init(str(tmp_path / "s"))
    st.ingest(orig[:4])
    st.ingest(orig[4:6])  # a 2-day append file: 2 files
    assert len(month_files(st)) == 2
    s = st.ingest(orig[6])  # [1] after [2] would be a 3rd file: fold
    assert (s.buckets_folded, s.append_files, s.buckets_written) == (2, 0, 2)
    (folded,) = month_files(st)
    assert folded["rows"] == 7 * 390
    md = pq.ParquetFile(os.path.join(st.path, folded["path"])).metadata
    assert md.num_row_groups == 1  # whole days, one ~2.7k-row group
    assert_like_fresh(st, orig[:7], tmp_path, "fresh")
    # the superseded files stay on disk for time travel
    assert len(os.listdir(os.path.join(st.path, "bars", "S0000"))) == 3


def test_correcting_a_day_in_an_append_file_leaves_the_base(store, days, tmp_path):
    orig, rev = days
    store.ingest(orig[:4])
    store.ingest(orig[4:6])  # append A: Jan 8, 9
    store.ingest(orig[6])  # append B: Jan 10 (A holds more days: no merge)
    base, a, b = (f["path"] for f in month_files(store))
    s = store.ingest(rev[4])  # correct Jan 8 (in A); B holds 1 day <= 2: joins
    assert (s.days_corrected, s.days_new) == (2, 0)
    files = month_files(store)
    assert [f["path"] for f in files][0] == base
    assert len(files) == 2 and files[1]["rows"] == 3 * 390 and a != files[1]["path"] != b
    ch = store.sql(
        "SELECT kind, count(*) n FROM changes WHERE seq = (SELECT max(seq) FROM "
        "changes) GROUP BY kind"
    ).to_pylist()
    assert ch == [{"kind": "corrected", "n": 2}]
    assert_like_fresh(store, [*orig[:4], rev[4], *orig[5:7]], tmp_path, "fresh")
    # correcting a day of the base rewrites it, and the 3-day file (<= 4 days) joins
    s = store.ingest(rev[1])
    (one,) = month_files(store)
    assert one["rows"] == 7 * 390 and one["path"] not in (base, files[1]["path"])
    assert_like_fresh(store, [orig[0], rev[1], *orig[2:4], rev[4], *orig[5:7]], tmp_path, "f2")


def test_time_travel_across_appends_and_folds(tmp_path, days, monkeypatch):
    orig, rev = days
    monkeypatch.setenv("INCBT_BUCKET_MAX_FILES", "2")
    st = incbt.init(str(tmp_path / "s"))
    # days per file: [3], [3,2], fold [6], corrected [6], [6,1], [6,2], [6,4], fold [11],
    # then a correction of the first day with a new day: [12]
    steps = [
        orig[:3],
        orig[3:5],
        [orig[5]],
        [rev[3]],
        [orig[6]],
        [orig[7]],
        orig[8:10],
        [orig[10]],
        [rev[0], orig[11]],
    ]
    seen: list[list[str]] = []
    snapshots = []
    folds = 0
    for files in steps:
        s = st.ingest(files)
        folds += s.buckets_folded
        seen.append(files)
        snapshots.append((s.seq, st.sql(ALL_BARS), st.sql("SELECT path FROM files ORDER BY path")))
    assert folds == 2 * 2  # two folds of both instruments' January
    for k, (seq, bars, paths) in enumerate(snapshots):
        assert st.sql(ALL_BARS, as_of=seq).equals(bars), seq
        assert st.sql("SELECT path FROM files ORDER BY path", as_of=seq).equals(paths), seq
        fresh = incbt.init(str(tmp_path / f"fresh{k}"))
        for files in seen[: k + 1]:
            fresh.ingest(files)
        assert fresh.sql(ALL_BARS).equals(bars), seq


def test_sql_prunes_files_of_a_month_with_several_files(store, days):
    orig, _ = days
    store.ingest(orig[:4])
    store.ingest(orig[4:6])
    store.ingest(orig[6])  # each instrument: base, a 2-day and a 1-day append file
    n_files = store.sql("SELECT count(*) n FROM files")["n"][0].as_py()
    assert n_files == 2 * 3
    day = DATES[6]
    plan = store.sql(
        f"EXPLAIN SELECT avg(close) FROM bars WHERE instrument = 'S0001' AND date = '{day}'"
    )
    physical = plan["plan"].to_pylist()[-1]
    # the instrument's files alone (incbt.query.register_bars), their row groups of
    # other days skipped by their date statistics
    assert physical.count("/i=S0001/") == 3 and "S0000" not in physical, physical
    assert "pruning_predicate=" in physical, physical
    got = store.sql(f"SELECT count(*) n FROM bars WHERE instrument = 'S0001' AND date = '{day}'")
    assert got["n"][0].as_py() == 390
    plan = store.sql("EXPLAIN SELECT avg(close) FROM bars WHERE instrument = 'S0001'")
    assert plan["plan"].to_pylist()[-1].count("/i=S0001/") == 3


def codecs(st: incbt.Store) -> dict[str, set[str]]:
    """Each current bars file's codecs and encodings, by path."""
    out = {}
    for f in st.sql("SELECT path FROM files").to_pylist():
        md = pq.ParquetFile(os.path.join(st.path, f["path"])).metadata.row_group(0)
        out[f["path"]] = {md.column(i).compression for i in range(md.num_columns)} | {
            e for i in range(md.num_columns) for e in md.column(i).encodings
        }
    return out


def test_files_of_an_older_codec_read_and_merge_with_new_ones(store, days, tmp_path, monkeypatch):
    """Stores written before the codec changed (zstd, plain encodings) keep working:
    a month with an old base and a new append file reads like a fresh store, and a
    correction rewrites the old file with the current codec."""
    from incbt.bars import layout

    orig, rev = days
    with monkeypatch.context() as m:
        m.setattr(layout, "COMPRESSION", "zstd")
        m.setattr(layout, "ENCODINGS", None)
        first = store.ingest(orig[:4]).seq
    (old,) = month_files(store)
    assert codecs(store)[old["path"]] == {"ZSTD", "PLAIN", "RLE", "RLE_DICTIONARY"}
    bars_then = store.sql(ALL_BARS)
    store.ingest(orig[4])  # an append file in the current codec next to the zstd base
    files = codecs(store)
    assert len(files) == 4 and files[old["path"]] == {"ZSTD", "PLAIN", "RLE", "RLE_DICTIONARY"}
    new = [c for p, c in files.items() if p.startswith("bars/S0000/") and p != old["path"]]
    assert new == [{"LZ4", "RLE", "PLAIN", "RLE_DICTIONARY", "DELTA_BINARY_PACKED",
                    "BYTE_STREAM_SPLIT"}]  # fmt: skip
    assert_like_fresh(store, orig[:5], tmp_path, "fresh")
    store.ingest(rev[1])  # corrects a day of the zstd file: rewritten in the current codec
    assert all("ZSTD" not in c for c in codecs(store).values())
    assert_like_fresh(store, [orig[0], rev[1], *orig[2:5]], tmp_path, "fresh2")
    assert store.sql(ALL_BARS, as_of=first).equals(bars_then)  # the old file, time travel


def test_the_small_files_an_ingest_wrote_are_read_from_memory_as_from_disk(store, days, tmp_path):
    """A day's append files are remembered by content hash as they are written
    (``incbt.bars.layout.RECENT``): the update that ingested them reads them without
    opening them, and gets what the files hold."""
    from incbt.bars.layout import RECENT

    orig, _ = days
    store.ingest(orig[:4])
    RECENT.clear()
    store.ingest(orig[4])
    app = os.path.join(store.path, month_files(store)[1]["path"])
    os.rename(app, app + ".away")  # not on disk: only memory can answer
    try:
        from_memory = store.bars("S0000")
    finally:
        os.rename(app + ".away", app)
    RECENT.clear()
    from_disk = store.bars("S0000")
    assert_like_fresh(store, orig[:5], tmp_path, "fresh")
    for c in ("ts", "open", "high", "low", "close", "volume", "days", "day_ends"):
        assert np.array_equal(getattr(from_memory, c), getattr(from_disk, c)), c
    assert len(from_disk.days) == 5
    # a month file of more rows than a day's is read from disk, not kept
    big = incbt.init(str(tmp_path / "big"))
    big.ingest(generate(str(tmp_path / "d"), instruments=1, days=8, start=START, seed=2))
    with big.catalog.env.read() as txn:
        (entry, *_) = big.catalog.days(txn, "S0000")
    assert RECENT.recall(entry.file) is None


def test_an_input_s_fields_are_contiguous_rows_of_one_block_in_either_order():
    """validate() keeps the six fields in one block (a bucket gathers a day in one slice),
    each a contiguous row, sorted by instrument whether or not the file was."""
    import pyarrow as pa

    from incbt.bars.inputs import BLOCK_ROWS, validate

    # two instruments interleaved, each one's ts increasing
    ts = (np.array([0, 0, 60, 60, 120], dtype=np.int64) + 1_704_067_200) * 10**9  # 2024
    names = ["B", "A", "B", "A", "A"]
    price = np.array([10.0, 20.0, 11.0, 21.0, 22.0])
    table = pa.table(
        {
            "instrument": names,
            "ts": ts,
            **{c: price for c in ("open", "high", "low", "close")},
            "volume": np.array([1.0, 2.0, 3.0, 4.0, 5.0]),
        }
    )
    # grouped by instrument in order of first appearance, file order kept within one
    for t, want, grouped in (
        (table, [0, 2, 1, 3, 4], ["B", "B", "A", "A", "A"]),
        (table.take([1, 3, 4, 0, 2]), [0, 1, 2, 3, 4], ["A", "A", "A", "B", "B"]),
    ):
        inp = validate("in.csv", "csv", t)
        assert inp.block.shape == (len(BLOCK_ROWS), 5) and inp.block.flags.c_contiguous
        order = np.array(want)
        assert [inp.names[c] for c in inp.codes] == grouped
        assert np.array_equal(inp.rows, order)
        assert np.array_equal(inp.ts, t.column("ts").to_numpy()[order])
        assert np.array_equal(inp.volume, t.column("volume").to_numpy()[order])
        for k, name in enumerate(BLOCK_ROWS):
            col = getattr(inp, name)
            assert col.flags.c_contiguous and np.shares_memory(col, inp.block), name
            assert np.array_equal(col.view(np.float64), inp.block[k]), name


def test_no_cyclic_collection_during_an_ingest_and_again_after_it(tmp_path, days, monkeypatch):
    import gc

    import incbt.bars.ingest as ingest_mod

    seen = []
    real = ingest_mod.split_days

    def spy(*a, **k):
        seen.append(gc.isenabled())
        return real(*a, **k)

    monkeypatch.setattr(ingest_mod, "split_days", spy)
    st = incbt.init(str(tmp_path / "s"))
    assert gc.isenabled()
    st.ingest(days[0])
    assert seen and not any(seen) and gc.isenabled()
    bad = tmp_path / "bad.csv"
    bad.write_text("instrument,ts,open,high,low,close,volume\nX,2024-01-02T14:30:00Z,1,1,1,-1,1\n")
    with pytest.raises(incbt.BadInputError):
        st.ingest(str(bad))
    assert gc.isenabled()  # restored after a failed ingest as well
