"""Store creation, ingest semantics, the index, SQL and time travel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

import incbt
from incbt.bars.generate import generate
from incbt.catalog.env import open_env
from incbt.queries import BUILTIN


def test_init_is_idempotent_and_refuses_other_settings(tmp_path):
    p = str(tmp_path / "s")
    a = incbt.init(p)
    b = incbt.init(p)
    assert a.path == b.path
    with pytest.raises(incbt.StoreError, match="different settings: session_tz"):
        incbt.init(p, session_tz="America/New_York")
    # settings left out are the store's as they are: a plain init on a store made with
    # other settings opens it (make demo runs `incbt init` on whatever ./store is)
    ny = str(tmp_path / "ny")
    incbt.init(ny, session_tz="America/New_York", snapshot_keep_days=30)
    again = incbt.init(ny)
    assert again.settings["session_tz"] == "America/New_York"
    assert again.settings["snapshot_keep_days"] == 30
    assert incbt.init(ny, session_tz="America/New_York").path == again.path
    with pytest.raises(incbt.StoreError, match=r"snapshot_keep_days=30 \(asked 10\)"):
        incbt.init(ny, snapshot_keep_days=10)


def test_init_refuses_a_folder_with_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(incbt.StoreError, match="other files"):
        incbt.init(str(tmp_path))


def test_open_non_store_says_how_to_create(tmp_path):
    with pytest.raises(incbt.NotAStoreError, match="incbt --store .* init"):
        incbt.open(str(tmp_path))


def test_ingest_new_identical_and_correction(store, tmp_path):
    generate(str(tmp_path / "a"), instruments=2, days=4, start="2024-03-04", seed=1)
    s1 = store.ingest(str(tmp_path / "a"))
    assert (s1.days_new, s1.days_corrected, s1.days_unchanged) == (8, 0, 0)
    assert s1.seq == 2
    s2 = store.ingest(str(tmp_path / "a"))
    assert not s2.changed and s2.seq is None and s2.days_unchanged == 8
    assert store.log().num_rows == 2  # init + one ingest: the repeat added no event
    generate(str(tmp_path / "fix"), instruments=2, days=4, start="2024-03-04", seed=1,
             from_day="2024-03-05", to_day="2024-03-05", revise=["2024-03-05"])
    s3 = store.ingest(str(tmp_path / "fix"))
    assert (s3.days_new, s3.days_corrected) == (0, 2)
    assert sorted(s3.corrected) == [("S0000", "2024-03-05"), ("S0001", "2024-03-05")]
    ch = store.sql("SELECT instrument, kind, old_hash, new_hash FROM changes WHERE seq = 3")
    assert ch.num_rows == 2
    assert all(o != n and o is not None for o, n in
               zip(ch["old_hash"].to_pylist(), ch["new_hash"].to_pylist(), strict=True))
    # the corrected day replaced the old one whole; other days untouched
    vol = store.sql("SELECT date, sum(volume) v FROM bars WHERE instrument='S0000' "
                    "GROUP BY date ORDER BY date")["v"].to_pylist()
    before = store.sql("SELECT date, sum(volume) v FROM bars WHERE instrument='S0000' "
                       "GROUP BY date ORDER BY date", as_of=2)["v"].to_pylist()
    assert vol[0] == before[0] and vol[2:] == before[2:] and vol[1] != before[1]


def test_a_file_given_twice_by_two_spellings_or_a_link_is_read_once(store, tmp_path):
    """QA 2026-12-06: ``d`` and ``./d/`` (or a link) were read twice: the event counted
    the rows twice and listed each file twice."""
    generate(str(tmp_path / "d"), instruments=2, days=3, start="2024-03-04", seed=1)
    first = sorted(os.listdir(tmp_path / "d"))[0]
    os.link(tmp_path / "d" / first, tmp_path / "linked.csv")
    res = store.ingest([str(tmp_path / "d"), str(tmp_path / "d") + "/./",
                        str(tmp_path / "linked.csv")])
    assert res.days_new == 6 and res.rows_read == 6 * 390, res
    ev = store.sql("SELECT rows, summary FROM events WHERE kind = 'ingest'").to_pylist()[0]
    assert ev["rows"] == 6 * 390 and ev["summary"].count(first) == 1


def test_late_days_arrive_out_of_order(store, tmp_path):
    generate(str(tmp_path / "late"), instruments=1, days=6, start="2024-03-04", seed=2,
             from_day="2024-03-08")
    generate(str(tmp_path / "early"), instruments=1, days=6, start="2024-03-04", seed=2,
             to_day="2024-03-07")
    generate(str(tmp_path / "all"), instruments=1, days=6, start="2024-03-04", seed=2)
    store.ingest(str(tmp_path / "late"))
    store.ingest(str(tmp_path / "early"))
    other = incbt.init(str(tmp_path / "other"))
    other.ingest(str(tmp_path / "all"))
    a, b = store.bars("S0000"), other.bars("S0000")
    for c in ("ts", "open", "high", "low", "close", "volume", "days", "day_ends"):
        np.testing.assert_array_equal(getattr(a, c), getattr(b, c))
    assert np.all(np.diff(a.ts) > 0)


def test_bars_reads_only_the_wanted_days_and_matches_sql(store, small_data):
    out, _ = small_data
    store.ingest(str(out))
    b = store.bars("S0001", "2024-01-30", "2024-02-01")
    assert len(b.days) == 3 and len(b) == 3 * 390
    assert b.day_ends.tolist() == [390, 780, 1170]
    t = store.sql("SELECT ts, close FROM bars WHERE instrument = 'S0001' AND date BETWEEN "
                  "'2024-01-30' AND '2024-02-01' ORDER BY ts")
    np.testing.assert_array_equal(b.close, t["close"].to_numpy())
    np.testing.assert_array_equal(b.ts, t["ts"].cast("int64").to_numpy())
    for c in ("ts", "open", "close"):
        assert getattr(b, c).flags.c_contiguous
    import datetime

    d = store.bars("S0001", datetime.date(2024, 1, 30), datetime.date(2024, 2, 1))
    np.testing.assert_array_equal(d.close, b.close)
    with pytest.raises(incbt.NotFoundError, match="unknown instrument 'NOPE'"):
        store.bars("NOPE")
    with pytest.raises(incbt.UsageError, match="start '2024-02-30' is not a date"):
        store.bars("S0001", "2024-02-30")
    with pytest.raises(incbt.UsageError, match="is after end"):
        store.bars("S0001", "2024-02-01", "2024-01-30")
    with pytest.raises(incbt.UsageError, match="params 'unused': the SQL has no \\$unused"):
        store.sql("SELECT count(*) FROM bars WHERE instrument = $i", params={"i": "S0001",
                                                                          "unused": 1})


def test_files_are_instrument_month_buckets_with_whole_day_row_groups(store, tmp_path):
    generate(str(tmp_path / "d"), instruments=2, days=30, start="2024-01-01", seed=3)
    store.ingest(str(tmp_path / "d"))
    files = store.sql("SELECT path, instrument, month, rows FROM files ORDER BY path")
    assert files.num_rows == 2 * 2  # 2 instruments x (January, February)
    for path, rows in zip(files["path"].to_pylist(), files["rows"].to_pylist(), strict=True):
        md = pq.ParquetFile(os.path.join(store.path, path)).metadata
        assert md.num_rows == rows
        assert all(md.row_group(i).num_rows % 390 == 0 for i in range(md.num_row_groups))
        assert md.num_row_groups == 1  # a 390-bar month fits one ~8k-row group
        assert path.startswith("bars/S000") and path.endswith(".parquet")


def test_row_groups_hold_whole_days_when_a_month_is_large(tmp_path):
    st = incbt.init(str(tmp_path / "s"), row_group_rows=1000)
    generate(str(tmp_path / "d"), instruments=1, days=10, start="2024-01-01", seed=3)
    st.ingest(str(tmp_path / "d"))
    path = st.sql("SELECT path FROM files")["path"][0].as_py()
    md = pq.ParquetFile(os.path.join(st.path, path)).metadata
    assert [md.row_group(i).num_rows for i in range(md.num_row_groups)] == [780] * 5
    b = st.bars("S0000", "2024-01-03", "2024-01-05")
    t = st.sql("SELECT close FROM bars WHERE date BETWEEN '2024-01-03' AND '2024-01-05' "
               "ORDER BY ts")
    np.testing.assert_array_equal(b.close, t["close"].to_numpy())


def test_explain_shows_file_pruning(store, tmp_path):
    generate(str(tmp_path / "d"), instruments=4, days=45, start="2024-01-01", seed=4)
    store.ingest(str(tmp_path / "d"))
    n_files = store.sql("SELECT count(*) n FROM files")["n"][0].as_py()
    assert n_files == 4 * 3
    plan = store.sql("EXPLAIN SELECT avg(close) FROM bars WHERE instrument = 'S0002' "
                     "AND date BETWEEN '2024-02-01' AND '2024-02-29'")
    physical = plan["plan"].to_pylist()[-1]
    # the instrument's files alone, by their folder in the view (before any is opened),
    # and the month's row groups by their date statistics (incbt.query.register_bars)
    assert physical.count(".parquet") == 3, physical
    assert physical.count("/i=S0002/") == 3, physical
    assert "pruning_predicate=" in physical and "date_max" in physical, physical


def test_session_timezone_defines_trading_day(tmp_path):
    st = incbt.init(str(tmp_path / "s"), session_tz="Asia/Tokyo")
    # 14:30-20:59 UTC is 23:30-05:59 in Tokyo: each UTC session spans two Tokyo dates
    generate(str(tmp_path / "d"), instruments=1, days=1, start="2024-03-04", seed=5)
    st.ingest(str(tmp_path / "d"))
    days = st.sql("SELECT date, count(*) n FROM bars GROUP BY date ORDER BY date")
    assert [str(d) for d in days["date"].to_pylist()] == ["2024-03-04", "2024-03-05"]
    assert days["n"].to_pylist() == [30, 360]


def test_catalog_grows_its_map_by_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("INCBT_MAP_SIZE_MB", "0.25")
    st = incbt.init(str(tmp_path / "s"))
    generate(str(tmp_path / "d"), instruments=30, days=40, start="2024-01-01", seed=6)
    st.ingest(str(tmp_path / "d"))  # far more than 256 KiB of index and events
    env = open_env(os.path.join(st.path, "catalog"))
    assert env.env.info()["map_size"] > 256 * 1024
    assert st.sql("SELECT count(*) n FROM bars")["n"][0].as_py() == 30 * 40 * 390


def test_the_map_grows_while_other_threads_read(tmp_path):
    """Growing the map closes every open transaction (py-lmdb): it waits for the
    read transactions of other threads (an executor's, while a commit runs)."""
    import threading
    import time

    from incbt.catalog.env import Env

    env = Env(str(tmp_path / "cat"), 64 * 1024)
    db = env.db(b"meta")
    env.write(lambda txn: txn.put(b"k", b"v", db=db))
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                with env.read() as txn:
                    for _ in range(20):
                        assert txn.get(b"k", db=db) == b"v"
                        time.sleep(0.00005)
            except BaseException as e:  # reported below
                errors.append(e)
                return
            time.sleep(0.0002)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    def put(i: int):
        def fn(txn) -> None:
            for j in range(40):  # 80 KB a transaction: the map doubles 8 times meanwhile
                txn.put(b"%d-%d" % (i, j), bytes(2000), db=db)

        return fn

    try:
        for i in range(60):
            env.write(put(i))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert env.env.info()["map_size"] >= 8 << 20
    env.env.close()
    assert not errors, errors[:3]


def test_dry_run_writes_nothing(store, small_data):
    from conftest import tree_state

    out, _ = small_data
    before = tree_state(store.path)
    s = store.ingest(str(out), dry_run=True)
    assert s.days_new == 15 and s.seq is None
    assert tree_state(store.path) == before
    real = store.ingest(str(out))  # the dry run said the files it would write, too
    assert (s.days_new, s.buckets_written) == (real.days_new, real.buckets_written) == (15, 6)


def test_column_mapping_and_epoch_ns(store, tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("symbol,time,o,high,low,close,volume\n"
                 "AAA,1709562600000000000,10,11,9,10.5,100\n"
                 "AAA,1709562660000000000,10.5,11,10,10.7,50\n")
    s = store.ingest(str(p), columns={"instrument": "symbol", "ts": "time", "open": "o"})
    assert s.days_new == 1
    t = store.sql("SELECT instrument, ts, open FROM bars")
    assert t["instrument"].to_pylist() == ["AAA", "AAA"]
    assert t["open"].to_pylist() == [10.0, 10.5]
    assert str(t["ts"][0]) == "2024-03-04 14:30:00+00:00"


@pytest.mark.parametrize("reader", ["fast", "arrow"])
@pytest.mark.parametrize("variant", ["excel", "trailing blank lines", "capitalized header"])
def test_common_csv_variants_ingest_as_the_plain_file(tmp_path, reader, variant):
    """Excel's "CSV UTF-8" (a byte-order mark, CRLF line ends), blank lines after the
    last bar, and a header in another case (``Close``) give the plain file's bars, with
    the fast reader and with Arrow's (which reads compressed files)."""
    import gzip

    src = generate(str(tmp_path / "d"), instruments=2, days=1, start="2024-01-29", seed=7)[0]
    with open(src, encoding="ascii") as f:
        text = f.read()
    if variant == "excel":
        text = "\ufeff" + text.replace("\n", "\r\n")
    elif variant == "trailing blank lines":
        text += "\n\r\n\n"
    else:
        head, rest = text.split("\n", 1)
        text = head.replace('"', "").title().replace("Ts", "TS") + "\n" + rest
    data = text.encode("utf-8")
    path = tmp_path / ("x.csv" if reader == "fast" else "x.csv.gz")
    path.write_bytes(data if reader == "fast" else gzip.compress(data))
    plain, odd = incbt.init(str(tmp_path / "a")), incbt.init(str(tmp_path / "b"))
    plain.ingest(src)
    assert odd.ingest(str(path)).days_new == 2
    q = "SELECT * FROM bars ORDER BY instrument, ts"
    assert odd.sql(q).equals(plain.sql(q))


def test_chunked_ingest_equals_one_chunk_and_stays_atomic(tmp_path, monkeypatch):
    from conftest import tree_state

    generate(str(tmp_path / "d"), instruments=3, days=25, start="2024-01-22", seed=8)
    one = incbt.init(str(tmp_path / "one"))
    one.ingest(str(tmp_path / "d"))
    monkeypatch.setenv("INCBT_INGEST_CHUNK_MB", "0.1")  # ~one daily file per chunk
    many = incbt.init(str(tmp_path / "many"))
    from incbt.bars import ingest as ingest_mod

    writes = []
    real_write = ingest_mod.write_file
    monkeypatch.setattr(
        ingest_mod, "write_file", lambda t, *a: writes.append(t.num_rows) or real_write(t, *a)
    )
    s = many.ingest(str(tmp_path / "d"))
    assert (s.days_new, s.buckets_written) == (75, 6)  # January and February buckets
    # a month waits for the next chunk while it may grow: each bucket is written once
    assert sorted(writes) == [8 * 390] * 3 + [17 * 390] * 3
    q = "SELECT * FROM bars ORDER BY instrument, ts"
    assert one.sql(q).equals(many.sql(q))
    assert sorted(os.listdir(os.path.join(many.path, "bars", "S0000"))) == sorted(
        os.listdir(os.path.join(one.path, "bars", "S0000")))  # no staged leftovers
    # a bad file in a later chunk: nothing of the earlier chunks remains
    third = incbt.init(str(tmp_path / "third"))
    before = tree_state(os.path.join(third.path, "bars"))
    bad = tmp_path / "d" / "bars-2024-02-23.csv"
    bad.write_text(bad.read_text().replace(",", ";", 3))
    with pytest.raises(incbt.BadInputError):
        third.ingest(str(tmp_path / "d"))
    assert tree_state(os.path.join(third.path, "bars")) == before
    assert third.sql("SELECT count(*) n FROM bars")["n"][0].as_py() == 0


def test_a_failed_sync_commits_nothing(tmp_path, monkeypatch):
    """The sync of the new files runs beside the catalog transaction; the transaction
    commits only after it returned, so a failed sync leaves the store as it was."""
    from conftest import tree_state

    from incbt.bars import ingest as ingest_mod

    generate(str(tmp_path / "d"), instruments=2, days=3, start="2024-01-02", seed=5)
    st = incbt.init(str(tmp_path / "s"))
    before = tree_state(os.path.join(st.path, "bars"))

    def fail(root, paths):
        raise OSError(5, "syncfs: Input/output error")

    monkeypatch.setattr(ingest_mod, "sync_files", fail)
    with pytest.raises(OSError, match="Input/output error"):
        st.ingest(str(tmp_path / "d"))
    assert tree_state(os.path.join(st.path, "bars")) == before
    assert len(st.log()) == 1 and st.instruments() == []  # only the init event
    monkeypatch.undo()
    assert st.ingest(str(tmp_path / "d")).days_new == 6


def test_a_format_1_store_is_upgraded_and_another_format_refused(tmp_path):
    """Format 1 (one file per month) reads as format 2 (a list of files) unchanged, and is
    upgraded to the current format (3: snapshots by instrument and day first)."""
    import subprocess
    import sys

    generate(str(tmp_path / "d"), instruments=2, days=3, start="2024-01-02", seed=5)
    generate(str(tmp_path / "new"), instruments=2, days=4, start="2024-01-02", seed=5,
             from_day="2024-01-05", to_day="2024-01-05")  # fmt: skip
    path = str(tmp_path / "s")
    s = incbt.init(path)
    s.ingest(str(tmp_path / "d"))
    before = s.sql("SELECT * FROM bars ORDER BY instrument, ts")
    s.catalog.env.write(lambda txn: s.catalog.put_meta(txn, "format_version", 1))
    s2 = incbt.open(path)
    with s2.catalog.env.read() as txn:
        assert s2.catalog.meta(txn)["format_version"] == 4
    assert s2.sql("SELECT * FROM bars ORDER BY instrument, ts").equals(before)
    res = s2.ingest(str(tmp_path / "new"))  # a new day: an append file to the old month file
    assert res.days_new == 2 and res.append_files == 2
    assert s2.sql("SELECT count(*) AS n FROM bars").column("n")[0].as_py() == 4 * 2 * 390

    # a newer format, whose tables may differ (one dropped here): refused, the catalog
    # left as it was (QA 2026-12-07: the refusal created the tables this incbt knows)
    def newer(txn):
        s2.catalog.put_meta(txn, "format_version", 99)
        txn.drop(s2.catalog.env.db(b"dirty"), delete=True)

    s2.catalog.env.write(newer)
    s2.close()
    mdb = os.path.join(path, "catalog", "data.mdb")
    with open(mdb, "rb") as f:
        was = f.read()
    with pytest.raises(incbt.errors.NotAStoreError, match="catalog format 99"):
        incbt.open(path)
    p = subprocess.run([sys.executable, "-m", "incbt.cli", "--store", path, "status"],
                       capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 1 and "catalog format 99" in p.stderr and "Fix:" in p.stderr
    with open(mdb, "rb") as f:
        assert f.read() == was
    for odd in ('"5"', "5.0", "null"):  # no format this incbt reads: refused the same way
        put = ("import lmdb, sys; env = lmdb.open(sys.argv[1], max_dbs=32)\n"
               "with env.begin(write=True) as t:\n"
               "    meta = env.open_db(b'meta', txn=t)\n"
               "    t.put(b'format_version', sys.argv[2].encode(), db=meta)\n"
               "    t.drop(env.open_db(b'cuts', txn=t), delete=True)")  # may differ in one
        subprocess.run([sys.executable, "-c", put, os.path.join(path, "catalog"), odd],
                       check=True)  # fmt: skip
        with open(mdb, "rb") as f:
            was = f.read()
        p = subprocess.run([sys.executable, "-m", "incbt.cli", "--store", path, "status"],
                           capture_output=True, text=True)  # fmt: skip
        assert p.returncode == 1 and "catalog" in p.stderr and "Fix:" in p.stderr, p.stderr
        with open(mdb, "rb") as f:
            assert f.read() == was, odd


def test_a_store_of_format_3_is_said_format_4_as_it_opens(tmp_path):
    """Format 4 is format 3 said anew, so that the builds of 2026-12-03 to 07 (which read
    "3" but misread the records added since: QA 2026-12-07) refuse a store this incbt
    opened; this incbt reads a format-3 store as it is."""
    generate(str(tmp_path / "d"), instruments=2, days=3, start="2024-01-02", seed=5)
    path = str(tmp_path / "s")
    s = incbt.init(path)
    s.ingest(str(tmp_path / "d"))
    run = s.backtest("sma_cross", {"fast": 3, "slow": 20})
    daily = s.sql("SELECT * FROM daily ORDER BY instrument, date")
    with s.catalog.env.read() as txn:
        assert s.catalog.meta(txn)["format_version"] == 4
    s.catalog.env.write(lambda txn: s.catalog.put_meta(txn, "format_version", 3))
    s.close()
    s2 = incbt.open(path)
    with s2.catalog.env.read() as txn:
        assert s2.catalog.meta(txn)["format_version"] == 4
    assert s2.sql("SELECT * FROM daily ORDER BY instrument, date").equals(daily)
    assert s2.verify([run.run_id]).ok and not s2.status().stale


def _day_digest(t, new) -> str:
    """A day's hash computed here, from its bars read back: ts and OHLCV, bit for bit."""
    h = new()
    h.update(t.column("ts").cast("int64").to_numpy())
    for c in ("open", "high", "low", "close", "volume"):
        h.update(t.column(c).to_numpy())
    return h.hexdigest()


def test_days_are_hashed_with_xxh3_and_a_store_made_before_keeps_blake2b(tmp_path):
    """A new store records XXH3-128 day hashes; one made before the switch (no day_hash
    in its meta) keeps BLAKE2b, so the same file again changes nothing there, and both
    hold the same bars. An unknown hash is refused with a fix."""
    import hashlib

    import xxhash

    (f,) = generate(str(tmp_path / "d"), instruments=1, days=1, start="2024-01-02", seed=5)
    new, old = incbt.init(str(tmp_path / "new")), incbt.init(str(tmp_path / "old"))
    old.catalog.env.write(lambda txn: txn.delete(b"day_hash", db=old.catalog.db["meta"]))
    q = "SELECT new_hash FROM changes"
    bars_q = "SELECT * FROM bars ORDER BY instrument, ts"
    for st, h in ((new, xxhash.xxh3_128), (old, lambda: hashlib.blake2b(digest_size=16))):
        assert st.ingest(f).days_new == 1
        bars = st.sql(bars_q)
        assert st.sql(q).column(0).to_pylist() == [_day_digest(bars, h)]
        assert st.ingest(f).seq is None  # the same day again: unchanged, no event
    assert new.sql(bars_q).equals(old.sql(bars_q))
    old.catalog.env.write(lambda txn: old.catalog.put_meta(txn, "day_hash", "md4"))
    with pytest.raises(incbt.errors.CatalogError, match="'md4'.*Fix: use the incbt version"):
        incbt.open(str(tmp_path / "old")).ingest(f)


def test_day_rows_is_the_planners_view_of_the_day_index(store, small_data):
    """``day_rows`` (what the planner reads) agrees with the full day entries: the days
    from a first day on, after the latest earlier days holding enough bars."""
    out, _ = small_data
    store.ingest(str(out))
    cat = store.catalog
    with cat.env.read() as txn:
        for inst in ("S0000", "S0002"):
            every = list(cat.days(txn, inst))
            for first in [every[0].day - 3] + [e.day for e in every] + [every[-1].day + 9]:
                for need in (0, 1, 390, 391, 780, 10**6):
                    earlier = [e for e in every if e.day < first]
                    taken, got = [], 0
                    for e in reversed(earlier):
                        if got >= need:
                            break
                        taken.insert(0, e)
                        got += e.rows
                    want = taken + [e for e in every if e.day >= first]
                    days, rows = cat.day_rows(txn, inst, first, need)
                    assert days.dtype == rows.dtype == np.int64
                    assert days.tolist() == [e.day for e in want]
                    assert rows.tolist() == [e.rows for e in want]
        days, rows = cat.day_rows(txn, "NOPE", 0, 10)
        assert days.size == rows.size == 0


def test_the_spans_sql_reads_bars_by_are_the_current_files(store, small_data, tmp_path):
    """``current_spans`` (what a SQL session registers as ``bars``, each file's record
    decoded once per process) lists the current files, before and after a correction
    replaces some, and SQL over bars sees the corrected day."""
    from incbt.catalog import FileSpan

    out, _ = small_data
    store.ingest(str(out))
    cat = store.catalog

    def both():
        with cat.env.read() as txn:
            want = [FileSpan(f.path, f.instrument, f.first_day, f.last_day)
                    for f in cat.current_files(txn)]
            return want, cat.current_spans(txn)

    want, got = both()
    assert got == want and len(got) > 1
    day = store.sql("SELECT CAST(min(date) AS VARCHAR) AS d FROM bars")["d"][0].as_py()
    generate(str(tmp_path / "fix"), instruments=2, days=3, start=day, seed=99,
             from_day=day, to_day=day, revise=[day])
    assert store.ingest(str(tmp_path / "fix")).days_corrected
    want2, got2 = both()
    assert got2 == want2 and got2 != got
    q = "SELECT sum(close) AS s FROM bars WHERE date = CAST($d AS DATE)"
    fixed = store.sql(q, params={"d": day})["s"][0].as_py()
    assert fixed == pytest.approx(float(np.sum(np.concatenate(
        [store.bars(i, day, day).close for i in store.instruments()]))))


def test_every_writer_first_removes_what_a_crashed_writer_left(tmp_path, small_data):
    """A pending file the catalog never committed and a staged file in tmp/ (a writer
    killed mid-write) are removed by the next command that takes the write lock, even
    one with nothing to write (an update up to date, a drop); a dry run leaves them."""
    d, _ = small_data
    st = incbt.init(str(tmp_path / "s"))
    st.ingest(str(d))
    st.backtest("sma_cross", {"fast": 3, "slow": 9})

    def crash_leftovers():
        rel = "results/daily/0000000099.parquet"
        st.catalog.env.write(lambda txn: st.catalog.set_pending(txn, [rel]))
        (tmp_path / "s" / rel).write_bytes(b"half a file")
        (tmp_path / "s" / "tmp").mkdir(exist_ok=True)
        (tmp_path / "s" / "tmp" / "results-daily-0000000099.parquet.tmp").write_bytes(b"x")
        return tmp_path / "s" / rel

    left = crash_leftovers()
    st.update(dry_run=True)
    assert left.exists() and (tmp_path / "s" / "tmp").exists()
    assert st.update().report.bars_processed == 0  # nothing to compute
    assert not left.exists() and not (tmp_path / "s" / "tmp").exists()
    with st.catalog.env.read() as txn:
        assert st.catalog.pending(txn) == []
    left = crash_leftovers()
    with pytest.raises(incbt.NotFoundError):
        st.drop(["ffffffff"])  # refused, but it took the lock: the leftovers are gone
    assert not left.exists() and not (tmp_path / "s" / "tmp").exists()


GROW = """
import sys
from incbt.catalog.env import Env
env = Env(sys.argv[1], 64 * 1024)
db = env.db(b"meta")
for i in range(40):  # ~2 MB: the map doubles several times
    env.write(lambda txn, i=i: [txn.put(b"g%d-%d" % (i, j), bytes(2000), db=db) for j in range(25)])
"""


def test_a_database_opened_after_another_process_grew_the_map(tmp_path):
    """open_db runs a transaction of its own: after another process grew the map it
    raised MDB_MAP_RESIZED, and a command starting while a sweep grew the catalog
    failed with it (QA 2026-12-05). It adopts the new size and retries."""
    import subprocess
    import sys

    from incbt.catalog.env import Env

    path = str(tmp_path / "cat")
    env = Env(path, 64 * 1024)
    subprocess.run([sys.executable, "-c", GROW, path], check=True, timeout=120)
    db = env.db(b"opened_late")  # a handle not opened yet: open_db's own transaction
    env.write(lambda txn: txn.put(b"k", b"v", db=db))
    with env.read() as txn:
        assert txn.get(b"k", db=db) == b"v"


def test_a_variable_overridden_at_init_is_said_as_such(tmp_path, monkeypatch):
    """Found by QA 2026-12-05: INCBT_SESSION_TZ set while `init --tz UTC` created a store
    was said to be ignored as "fixed when it was created", while it was being created."""
    import warnings

    monkeypatch.setenv("INCBT_SESSION_TZ", "Asia/Tokyo")
    with pytest.warns(UserWarning, match="INCBT_SESSION_TZ=Asia/Tokyo is ignored: "
                      "session_tz='UTC' was given for this store"):
        s = incbt.init(str(tmp_path / "s"), session_tz="UTC")
    assert s.settings["session_tz"] == "UTC"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert incbt.init(str(tmp_path / "t")).settings["session_tz"] == "Asia/Tokyo"
    with pytest.warns(UserWarning, match="fixed when it was created"):
        incbt.open(str(tmp_path / "s"))


def test_a_days_index_for_reading_keeps_what_reads_use_in_half_the_bytes(store, small_data):
    """Workers get the day index as :meth:`DayIndex.for_reading`: the fields reads use,
    the same values, 32 of 64 bytes a day (a chunk of 8 instruments' year stays under
    the 100 KB past which Ray puts an argument in its object store)."""
    import pickle

    from incbt.execute import DirectBars

    store.ingest(str(small_data[0]))
    full = DirectBars.from_store(store, ["S0001"]).index["S0001"]
    slim = full.for_reading()
    np.testing.assert_array_equal(slim.days, full.days)
    for f in ("file", "row_group", "offset", "rows"):
        np.testing.assert_array_equal(slim.records[f], full.records[f])
    assert slim.records.itemsize + slim.days.itemsize == 32 < full.records.itemsize
    assert slim.file_runs() == full.file_runs()
    src = DirectBars(store.path, {"S0001": pickle.loads(pickle.dumps(slim))})
    src.paths = DirectBars.from_store(store, ["S0001"]).paths
    b = src.load("S0001", int(full.days[0]), int(full.days[-1]))
    np.testing.assert_array_equal(b.close, store.bars("S0001").close)



FIRST_CALL_INTERRUPTED = r"""
import _thread, sys, threading, time, traceback
import incbt
s = incbt.open(sys.argv[1])
threading.Timer(0.02, _thread.interrupt_main).start()  # amid the first call's imports
try:
    s.backtest("sma_cross", {"fast": 2, "slow": 5})
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted in", traceback.extract_tb(sys.exc_info()[2])[-1].name)
import pandas
pandas.DataFrame({"a": [1]})  # whole, not half imported
print(s.backtest("sma_cross", {"fast": 2, "slow": 5}).report.errors == [])
"""


def test_ctrl_c_amid_the_first_computations_imports_leaves_the_process_usable(tmp_path):
    """QA 2026-12-07: Ctrl-C in a process's first backtest, while Numba and pandas were
    being imported (in the main thread and the kernels' preload thread), left the import
    locks held (the next call hung for ever) or pandas half imported. The first
    computing call makes them at once, holding a Ctrl-C until they are done."""
    generate(str(tmp_path / "d"), instruments=2, days=3, start="2024-01-01", seed=1)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    p = subprocess.run([sys.executable, "-c", FIRST_CALL_INTERRUPTED, s.path],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.split("\n")
    assert lines[0] == "interrupted in _first_compute", p.stdout  # held, then said
    assert lines[1] == "True", p.stdout


def test_a_store_closes_and_deleted_stores_do_not_hold_files(tmp_path):
    """QA 2026-12-07: a store could not be closed, and each one a process opened held 3
    file descriptors and a memory map for the process's life, deleted or not: "Too many
    open files" at 38 stores under ulimit -n 128, said as a query's expression."""
    from incbt.errors import SetupError, map_dependency_error

    generate(str(tmp_path / "d"), instruments=1, days=2, start="2024-01-01", seed=1)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))

    def held() -> int:
        return sum(str(tmp_path) in os.path.realpath(f"/proc/self/fd/{f}")
                   for f in os.listdir("/proc/self/fd"))  # fmt: skip

    with incbt.open(s.path) as t:
        assert t.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() == 780
    assert held() == 0
    with pytest.raises(incbt.StoreError, match=r"was closed \(store.close\(\)\) in this process"):
        s.sql("SELECT count(*) FROM bars")
    assert incbt.open(s.path).sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() == 780
    for i in range(5):  # stores deleted: their files go at the next open
        p = tmp_path / f"c{i}"
        shutil.copytree(s.path, p)
        incbt.open(str(p)).sql("SELECT count(*) FROM bars")
        shutil.rmtree(p)
    incbt.open(s.path)
    assert held() == 3  # the open store's alone
    said = map_dependency_error(OSError(24, "Too many open files"), "reading x")
    assert isinstance(said, SetupError) and "close the stores" in str(said), said


def test_a_store_and_a_run_go_to_a_spawned_worker(tmp_path):
    """QA 2026-12-07: Store and Run objects did not pickle ("cannot pickle 'Environment'
    object"): ProcessPoolExecutor.submit(f, store) failed in Python's words."""
    import multiprocessing as mp
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    generate(str(tmp_path / "d"), instruments=2, days=3, start="2024-01-01", seed=1)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    run = s.backtest("sma_cross", {"fast": 2, "slow": 5})
    again = pickle.loads(pickle.dumps(run))
    assert again.run_id == run.run_id and again.store.path == s.path
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as ex:
        got = ex.submit(_daily_rows, s, run).result(timeout=120)
    assert got == run.daily.num_rows > 0


def _daily_rows(store, run) -> int:
    assert store.run(run.run_id).run_id == run.run_id
    return run.daily.num_rows


def test_a_writer_waiting_on_a_thread_of_its_own_process_says_so(tmp_path, monkeypatch):
    """QA 2026-12-07: a thread waiting for the write lock another thread of its process
    held was told a process held it (its own pid and script)."""
    import threading

    s = incbt.init(str(tmp_path / "s"))
    monkeypatch.setenv("INCBT_LOCK_TIMEOUT", "0")
    said: list[str] = []

    def other() -> None:
        try:
            with s.lock():
                pass
        except incbt.StoreLockedError as exc:
            said.append(str(exc))

    with s.lock():
        t = threading.Thread(target=other)
        t.start()
        t.join(60)
    assert len(said) == 1 and "being written by another thread of this process (pid" in said[0]


def test_a_misspelled_variable_is_said_in_python_too(tmp_path, monkeypatch):
    """QA 2026-12-07: the CLI said a misspelled INCBT_ variable, Python nothing (the
    default taken without a word)."""
    s = incbt.init(str(tmp_path / "s"))
    monkeypatch.setenv("INCBT_THREAD", "2")
    with pytest.warns(UserWarning, match=r"INCBT_THREAD is not a variable incbt reads; did "
                                         r"you mean INCBT_THREADS\?"):  # fmt: skip
        incbt.open(s.path)


# the stats query's windows, over days made from the bars (QA 2026-12-08)
_STATS_OVER_BARS = (
    "import sys, incbt\n"
    "s = incbt.open(sys.argv[1])\n"
    "q = open(sys.argv[2]).read().replace(\n"
    "    'FROM daily d JOIN sel ON sel.run_id = d.run_id) x',\n"
    "    'FROM (SELECT CAST($run AS VARCHAR) AS run_id, date, instrument, '\n"
    "    'sum(close - open) AS pnl, 1 AS pos, 0 AS fills, 0.0 AS fees, 0.0 AS turnover '\n"
    "    'FROM bars GROUP BY date, instrument) d JOIN sel ON sel.run_id = d.run_id) x')\n"
    "assert 'FROM bars' in q\n"
    "rid = s.sql('SELECT run_id FROM runs')['run_id'][0].as_py()\n"
    "t = s.sql(q, params={'run': rid, 'start': '0001-01-01', 'end': '9999-12-31'})\n"
    "print(t.num_rows, t['days'][0].as_py())\n"
)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_windowed_query_over_bars_ends(tmp_path, threads):
    """QA 2026-12-08: the stats query's plan (windows partitioned by run and date, a
    join of two aggregates of one CTE) over days aggregated from `bars` waited for ever,
    every thread idle, with one partition or two, over one instrument and two days: bars
    was a pyarrow dataset (DataFusion's DatasetExec), as daily was when it hung the same
    way. In a child with a deadline, so that a hang fails the test."""
    generate(str(tmp_path / "d"), instruments=1, days=2, start="2024-01-01", seed=3)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    s.backtest("sma_cross", {"fast": 3, "slow": 5})
    env = {**os.environ, "INCBT_THREADS": threads}
    p = subprocess.run([sys.executable, "-c", _STATS_OVER_BARS, s.path, str(BUILTIN / "stats.sql")],
                       capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert p.returncode == 0 and p.stdout.split() == ["1", "2"], p.stderr


def test_bars_of_instruments_with_any_characters_are_found_by_name(tmp_path):
    """QA 2026-12-08: bars read through a folder per instrument: each name reads back as
    it was, and a filter on it finds its folder (DataFusion encodes a value to find it:
    with other characters encoded, `instrument = 'a=b'` found no row)."""
    import pandas as pd
    import pyarrow as pa

    names = ["BRK/B", "a=b", "i=Q", "x y+z", ".", "..", "é%41", "日本", "a\\b", "{~}#?*<|>"]
    ts = pd.date_range("2024-01-02 14:30", periods=5, freq="min", tz="UTC")
    cols = ["instrument", "ts", "open", "high", "low", "close", "volume"]
    rows = [(n, t, 1.0, 9.0, 0.5, 1.5 + i, 10.0) for n in names for i, t in enumerate(ts)]
    df = pd.DataFrame(rows, columns=cols)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "in.parquet")
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "in.parquet"))
    got = s.sql("SELECT instrument, count(*) n FROM bars GROUP BY 1")
    assert dict(zip(*got.to_pydict().values(), strict=True)) == dict.fromkeys(names, 5)
    for n in names:
        q = "SELECT count(*) n, min(instrument) i FROM bars WHERE instrument = $i"
        assert s.sql(q, params={"i": n}).to_pylist() == [{"n": 5, "i": n}], n


def test_a_query_over_a_bars_file_cut_short_names_it(tmp_path):
    """Bars read by DataFusion's reader: a file cut short is named, with the fix, as it
    was when pyarrow read it (its error names no file)."""
    generate(str(tmp_path / "d"), instruments=2, days=3, start="2024-01-01", seed=3)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    rel = s.sql("SELECT path FROM files WHERE instrument = 'S0001'")[0][0].as_py()
    path = os.path.join(s.path, rel)
    os.truncate(path, 3000)
    with pytest.raises(incbt.StoreError, match=rf"{path} cannot be read \(.*Fix: restore"):
        s.sql("SELECT avg(close) FROM bars")
    assert s.sql("SELECT count(*) n FROM bars WHERE instrument = 'S0000'")["n"][0].as_py() == 1170


def test_a_bars_file_gone_under_a_session_is_said_not_read_as_no_rows(tmp_path):
    """DataFusion's listing skips a link whose file is gone, as no rows: a query of a
    session made before the file went says so (the folders' times, then their files)."""
    from incbt.query import run_sql

    generate(str(tmp_path / "d"), instruments=2, days=3, start="2024-01-01", seed=3)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    ctx = s.session()
    q = "SELECT count(*) n FROM bars"
    assert run_sql(ctx, q)["n"][0].as_py() == 2340
    rel = s.sql("SELECT path FROM files WHERE instrument = 'S0001'")[0][0].as_py()
    os.rename(os.path.join(s.path, rel), tmp_path / "away")
    with pytest.raises(incbt.QueryError, match="was removed while it ran"):
        run_sql(ctx, q)
    os.rename(tmp_path / "away", os.path.join(s.path, rel))
    assert run_sql(ctx, q)["n"][0].as_py() == 2340


def test_the_reprs_of_a_closed_store_s_objects_say_it_was_closed(tmp_path):
    """QA 2026-12-08: after ``store.close()`` (a ``with incbt.open(p) as store:`` block),
    a notebook showing the store or a run read "gone (deleted, moved or replaced)" of a
    store still there, and showing a sweep raised. Each says it was closed, and how to
    open it again; a store deleted since is still said gone."""
    generate(str(tmp_path / "d"), instruments=2, days=2, start="2024-01-02", seed=5)
    path = str(tmp_path / "s")
    with incbt.init(path) as s:
        s.ingest(str(tmp_path / "d"))
        run = s.backtest("sma_cross", {"fast": 3, "slow": 20})
        sweep = s.sweep("sma_cross", {"fast": [3, 4], "slow": [20]}, name="g")
    again = f"closed (store.close()) in this process: incbt.open({path!r}) opens it again"
    assert repr(s) == f"<incbt.Store {path!r}: {again}>"
    assert repr(run) == f"<Run {run.run_id}: its store {path}: {again}>"
    assert repr(sweep) == f"<Sweep 'g': its store {path}: {again}>"
    with pytest.raises(incbt.StoreError, match="was closed"):
        _ = run.portfolio
    s2 = incbt.open(path)
    run2, sweep2 = s2.run(run.run_id), s2.sweeps()["g"]
    assert "total_pnl=" in repr(run2) and repr(sweep2) == "<Sweep 'g': 2 run(s)>"
    shutil.rmtree(path)
    gone = "gone (deleted, moved or replaced since opened)"
    assert repr(s2) == f"<incbt.Store {path!r}: {gone}>"
    assert repr(run2) == f"<Run {run.run_id}: its store {path}: {gone}>"
    assert repr(sweep2) == f"<Sweep 'g': its store {path}: {gone}>"
