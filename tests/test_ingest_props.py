"""Property tests of ingest: any history of ingests ends where the final data says.

The universe is small and fixed: 3 instruments x 8 trading days (spanning two
months, so two bucket files per instrument), each (instrument, day) in an
original and a revised version (:func:`generate` with ``revise``). A history is
a list of batches; a batch picks some days, for each a version and a subset of
instruments, and writes them as CSV or Parquet, in one file or one per day. A
step may also repeat the previous batch exactly.

A model (``(instrument, day) -> version``) says what each ingest must do: which
days are new, corrected or unchanged, what the ``changes`` table records, and
what the bars are after every event; a fresh store fed only that data must
hold the same bars, bit for bit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st

import incbt
from incbt.bars.generate import generate, instrument_name
from incbt.bars.schema import NS_PER_DAY, iso_to_day
from incbt.catalog.env import close_env

N_INST = 3
N_DAYS = 8
START = "2024-01-25"  # Thu: 8 weekdays run Jan 25 .. Feb 5, two months
INSTS = [instrument_name(i) for i in range(N_INST)]
FLOATS = ("open", "high", "low", "close", "volume")
REPEAT = "repeat"  # a step: send the previous batch's files again
CORRECT = "correct"  # a step: send the previous batch's days again, in the other version

Key = tuple[str, int]  # (instrument, day index)


# -- the universe ------------------------------------------------------------


class Universe:
    """Every (instrument, day, version) piece as an Arrow table, and its day number."""

    def __init__(self, root: str) -> None:
        self.pieces: dict[tuple[str, int, int], pa.Table] = {}
        for version in (0, 1):
            out = os.path.join(root, f"v{version}")
            dates = _dates()
            files = generate(
                out,
                instruments=N_INST,
                days=N_DAYS,
                start=START,
                seed=5,
                fmt="parquet",
                revise=dates if version else (),
            )
            assert len(files) == N_DAYS
            for d, f in enumerate(files):
                t = pq.read_table(f)
                for inst in INSTS:
                    piece = t.filter(pc.equal(t.column("instrument"), inst))
                    assert piece.num_rows == 390
                    self.pieces[(inst, d, version)] = piece
        self.days = [iso_to_day(x) for x in _dates()]
        for inst in INSTS:  # a revision changes every (instrument, day)
            for d in range(N_DAYS):
                assert not self.pieces[(inst, d, 0)].equals(self.pieces[(inst, d, 1)])

    def table(self, state: dict[Key, int]) -> pa.Table:
        """The bars of a model state, in (instrument, ts) order."""
        keys = sorted(state)
        if not keys:
            return self.pieces[(INSTS[0], 0, 0)].slice(0, 0)
        return pa.concat_tables([self.pieces[(i, d, state[(i, d)])] for i, d in keys])

    def write(
        self, folder: str, batch: dict[int, tuple[int, frozenset[str]]], fmt: str, one_file: bool
    ) -> list[str]:
        """Write one batch of pieces; return the files."""
        os.makedirs(folder)
        groups: list[list[pa.Table]] = []
        for d in sorted(batch):
            version, insts = batch[d]
            tables = [self.pieces[(i, d, version)] for i in sorted(insts)]
            if one_file and groups:
                groups[0].extend(tables)
            else:
                groups.append(tables)
        paths = []
        for n, tables in enumerate(groups):
            t = pa.concat_tables(tables)
            p = os.path.join(folder, f"part-{n}.{fmt}")
            if fmt == "csv":
                pcsv.write_csv(t, p)
            else:  # row groups of 500 rows: a big file's parts are runs of them
                pq.write_table(t, p, row_group_size=500)
            paths.append(p)
        return paths


def _dates() -> list[str]:
    from incbt.bars.generate import weekdays
    from incbt.bars.schema import day_to_iso

    return [day_to_iso(d) for d in weekdays(iso_to_day(START), N_DAYS)]


@pytest.fixture(scope="module")
def universe(tmp_path_factory):
    return Universe(str(tmp_path_factory.mktemp("universe")))


# -- comparing bars ----------------------------------------------------------


def norm(t: pa.Table) -> dict[str, np.ndarray]:
    """A table of bars as NumPy arrays, floats as their bits (bit-for-bit equality)."""
    out = {
        "instrument": np.array(t.column("instrument").to_pylist(), dtype=object),
        "ts": t.column("ts").combine_chunks().cast(pa.int64()).to_numpy(),
    }
    for c in FLOATS:
        out[c] = t.column(c).combine_chunks().to_numpy().view(np.int64)
    if "date" in t.column_names:
        out["date"] = t.column("date").combine_chunks().cast(pa.int32()).to_numpy()
    else:  # the model: trading day in UTC
        out["date"] = (out["ts"] // NS_PER_DAY).astype(np.int32)
    return out


def assert_same(a: pa.Table, b: pa.Table, what: str) -> None:
    na, nb = norm(a), norm(b)
    assert len(na["ts"]) == len(nb["ts"]), f"{what}: {len(na['ts'])} vs {len(nb['ts'])} rows"
    for c in na:
        assert np.array_equal(na[c], nb[c]), f"{what}: column {c} differs"


ALL_BARS = "SELECT * FROM bars ORDER BY instrument, ts"


def sql_bars(store: incbt.Store, as_of: int | None = None) -> pa.Table:
    """``ALL_BARS`` (as of an event); a store without bars works around an incbt bug."""
    n = store.sql("SELECT count(*) AS n FROM files", as_of=as_of).column("n")[0].as_py()
    if n == 0:  # ORDER BY over no files fails: see test_order_by_on_a_store_without_bars
        return store.sql("SELECT * FROM bars", as_of=as_of)
    return store.sql(ALL_BARS, as_of=as_of)


def assert_day_index_is_the_entries(store: incbt.Store, inst: str, lo: int, hi: int) -> None:
    """The day index as arrays (what bar reads use) holds the catalog's day entries."""
    cat = store.catalog
    with cat.env.read() as txn:
        for first, last in ((None, None), (lo, hi), (lo, None), (None, hi), (hi + 1, None)):
            idx = cat.day_index(txn, inst, first, last)
            es = list(cat.days(txn, inst, first, last))
            assert idx.days.tolist() == [e.day for e in es]
            rec = idx.records
            assert [r["file"].tobytes() for r in rec] == [e.file for e in es]
            assert [bytes(r["hash"]) for r in rec] == [e.hash for e in es]
            for k in ("row_group", "offset", "rows", "first_ts", "last_ts"):
                assert rec[k].tolist() == [getattr(e, k) for e in es], k
            runs = idx.file_runs()  # consecutive days of one file, covering every day
            assert [i for _, i, _ in runs] == [0, *(j for _, _, j in runs[:-1])]
            assert [j for _, _, j in runs][-1:] == ([len(es)] if es else [])
            assert all(es[k].file == f for f, i, j in runs for k in range(i, j))


def assert_bar_arrays_equal(store: incbt.Store, other: incbt.Store, sql: pa.Table) -> None:
    """store.bars() of every instrument: equal to the other store's and to SQL."""
    assert store.instruments() == other.instruments()
    n = norm(sql)
    for inst in store.instruments():
        a, b = store.bars(inst), other.bars(inst)
        for c in ("ts", *FLOATS, "days", "day_ends"):
            assert np.array_equal(getattr(a, c), getattr(b, c)), f"bars({inst}).{c}"
        sel = n["instrument"] == inst
        assert np.array_equal(a.ts, n["ts"][sel])
        for c in FLOATS:
            assert np.array_equal(getattr(a, c).view(np.int64), n[c][sel]), f"{inst}.{c}"
        days, counts = np.unique(n["date"][sel], return_counts=True)
        assert np.array_equal(a.days, days)
        assert np.array_equal(a.day_ends, np.cumsum(counts))
        if len(days) >= 3:  # a range inside: only those days' rows, from the index
            lo, hi = int(days[1]), int(days[-2])
            assert_day_index_is_the_entries(store, inst, lo, hi)
            part = store.bars(inst, lo, hi)
            keep = sel & (n["date"] >= lo) & (n["date"] <= hi)
            assert np.array_equal(part.ts, n["ts"][keep])
            assert np.array_equal(part.close.view(np.int64), n["close"][keep])
            assert np.array_equal(part.days, days[1:-1])


@contextmanager
def temp_store(prefix: str):
    root = tempfile.mkdtemp(prefix=prefix)
    st_ = incbt.init(os.path.join(root, "store"))
    try:
        yield st_, root
    finally:
        close_env(os.path.join(st_.path, "catalog"))
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def fresh_store(universe: Universe, state: dict[Key, int]):
    """A new store that ingested only ``state``'s data, in one Parquet file."""
    with temp_store("incbt-fresh-") as (fresh, root):
        if state:
            p = os.path.join(root, "final.parquet")
            pq.write_table(universe.table(state), p)
            fresh.ingest(p)
        yield fresh


# -- the property -----------------------------------------------------------

versions = st.integers(0, 1)
inst_sets = st.frozensets(st.sampled_from(INSTS), min_size=1)
batches = st.fixed_dictionaries(
    {
        "days": st.dictionaries(
            st.integers(0, N_DAYS - 1), st.tuples(versions, inst_sets), min_size=1, max_size=4
        ),
        "fmt": st.sampled_from(["csv", "parquet"]),
        "one_file": st.booleans(),
    }
)
histories = st.lists(st.one_of(batches, st.just(REPEAT), st.just(CORRECT)), min_size=2, max_size=6)


# what the history properties share (each sets its own number of histories)
HISTORIES = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _b(days: dict[int, tuple[int, str]], fmt: str = "csv", one_file: bool = False) -> dict:
    """A batch for @example: {day: (version, "012" instrument digits)}."""
    return {
        "days": {d: (v, frozenset(INSTS[int(c)] for c in i)) for d, (v, i) in days.items()},
        "fmt": fmt,
        "one_file": one_file,
    }


def run_history(universe: Universe, store: incbt.Store, root: str, history: list) -> list:
    """Ingest every step, checking each against the model; return [(seq, state)]."""
    state: dict[Key, int] = {}
    hashes: dict[tuple[str, int, int], str] = {}  # content hash of each piece seen
    events: list[tuple[int, dict[Key, int]]] = []
    last_paths: list[str] | None = None
    last_batch = None
    seq = len(store.log())
    for n, step in enumerate(history):
        if step in (REPEAT, CORRECT) and last_batch is None:
            continue
        if step == REPEAT:
            paths, batch = last_paths, last_batch
        else:
            if step == CORRECT:
                batch = {d: (1 - v, insts) for d, (v, insts) in last_batch.items()}
                step = {"days": batch, "fmt": "csv", "one_file": n % 2 == 0}
            batch = step["days"]
            paths = universe.write(
                os.path.join(root, f"step-{n}"), batch, step["fmt"], step["one_file"]
            )
        new, corrected, unchanged = set(), set(), set()
        after = dict(state)
        for d, (version, insts) in batch.items():
            for inst in insts:
                k = (inst, d)
                if k not in state:
                    new.add(k)
                elif state[k] != version:
                    corrected.add(k)
                else:
                    unchanged.add(k)
                after[k] = version
        s = store.ingest(paths)
        note = event if currently_in_test_context() else (lambda _: None)
        if corrected:
            note("a step corrects days")
        if step == REPEAT:
            note("a step repeats the previous one")
        if step != REPEAT and step["fmt"] == "parquet":
            note("a step ingests Parquet")
        assert (s.days_new, s.days_corrected, s.days_unchanged) == (
            len(new),
            len(corrected),
            len(unchanged),
        )
        assert sorted(s.corrected) == sorted(
            (i, str(np.datetime64(universe.days[d], "D"))) for i, d in corrected
        )
        if not new and not corrected:  # a repeat, or only unchanged days: no event
            assert s.seq is None
            assert len(store.log()) == seq
        else:
            assert s.seq == seq + 1
            seq = s.seq
            got = store.sql(
                "SELECT instrument, date, kind, old_hash, new_hash FROM changes "
                "WHERE seq = $seq ORDER BY instrument, date",
                params={"seq": seq},
            )
            rows = got.to_pylist()
            day_index = {universe.days[d]: d for d in range(N_DAYS)}
            seen = set()
            for r in rows:
                d = day_index[int(np.datetime64(r["date"], "D").astype(np.int64))]
                k = (r["instrument"], d)
                seen.add(k)
                new_key = (k[0], d, after[k])
                # the same content always hashes the same, different content differently
                assert hashes.setdefault(new_key, r["new_hash"]) == r["new_hash"]
                if k in new:
                    assert r["kind"] == "new" and r["old_hash"] is None
                else:
                    assert k in corrected and r["kind"] == "corrected"
                    assert r["old_hash"] == hashes[(k[0], d, state[k])] != r["new_hash"]
            assert seen == new | corrected, "changes must list exactly the changed days"
            assert len(set(hashes.values())) == len(hashes)
            events.append((seq, after))
        state = after
        last_paths, last_batch = paths, batch
    return events, state


@settings(HISTORIES, max_examples=25)
@given(history=histories)
# appends, then a late day in the middle of a month, several days at once (one file)
@example(
    history=[
        _b({0: (0, "012")}),
        _b({1: (0, "012"), 7: (0, "01")}, "parquet"),
        _b({3: (0, "2"), 2: (0, "012"), 5: (0, "1")}, one_file=True),
    ]
)
# corrections (including one undone), exact repeats, a new instrument on an old day
@example(
    history=[
        _b({4: (0, "01"), 5: (0, "01")}, "parquet", True),
        REPEAT,
        CORRECT,
        _b({4: (0, "0"), 5: (1, "012")}),
        REPEAT,
        CORRECT,
    ]
)
def test_any_history_equals_final_data(universe, history):
    check_history(universe, history)


@settings(HISTORIES, max_examples=15)
@given(history=histories)
@example(  # daily appends: an append file, a tier merge, then a fold (3 files > 2)
    history=[
        _b({0: (0, "012"), 1: (0, "012")}),
        _b({2: (0, "012")}),
        _b({3: (0, "012")}),
        _b({4: (0, "012")}),
        _b({2: (1, "01")}),
    ]
)
def test_any_history_equals_final_data_with_folds(universe, history):
    """The same with at most 2 files a month: appends, merges and folds all happen."""
    with setting_env("INCBT_BUCKET_MAX_FILES", "2"):
        check_history(universe, history)


@settings(HISTORIES, max_examples=10)
@given(history=histories)
def test_any_history_equals_final_data_in_small_chunks(universe, history):
    """The same with a 40 KB chunk: several chunks per call, each file read in 10 KB
    parts (days cut by a part boundary joined, ts checked across parts)."""
    with setting_env("INCBT_INGEST_CHUNK_MB", str(40_000 / (1 << 20))):
        check_history(universe, history)


@contextmanager
def setting_env(name: str, value: str):
    """An environment variable set for the block (Hypothesis reruns the test function:
    no function-scoped monkeypatch)."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


def check_history(universe, history) -> None:
    with temp_store("incbt-props-") as (store, root):
        events, state = run_history(universe, store, root, history)
        bars = sql_bars(store)
        assert_same(bars, universe.table(state), "store vs model")
        with fresh_store(universe, state) as fresh:
            assert_same(bars, sql_bars(fresh), "store vs fresh store")
            assert_bar_arrays_equal(store, fresh, bars)
        # time travel: right after each event, the bars were those of the model then
        assert sql_bars(store, as_of=1).num_rows == 0  # event 1 is init
        for seq, then in events:
            past = store.sql(ALL_BARS, as_of=seq)
            assert_same(past, universe.table(then), f"as_of={seq} vs model")
            with fresh_store(universe, then) as fresh:
                assert_same(past, fresh.sql(ALL_BARS), f"as_of={seq} vs fresh store")


# -- examples worth keeping as plain tests -----------------------------------


def test_correction_undone_reuses_the_file_and_time_travels(universe, tmp_path):
    """v0, then v1 of the same day, then v0 again: three events, the first file reused."""
    with temp_store("incbt-undo-") as (store, root):
        history = [
            {"days": {3: (v, frozenset(INSTS[:1]))}, "fmt": "csv", "one_file": True}
            for v in (0, 1, 0)
        ]
        events, state = run_history(universe, store, root, history)
        assert [s for s, _ in events] == [2, 3, 4]
        files = store.sql("SELECT path FROM files").column("path").to_pylist()
        assert len(files) == 1
        first = store.sql("SELECT path FROM files", as_of=2).column("path").to_pylist()
        middle = store.sql("SELECT path FROM files", as_of=3).column("path").to_pylist()
        assert first == files != middle
        for seq, then in events:
            assert_same(store.sql(ALL_BARS, as_of=seq), universe.table(then), f"as_of={seq}")


def test_parquet_and_csv_inputs_give_identical_stores(tmp_path):
    """The same generated data as CSV per day and as Parquet per month: same bars, files."""
    kw = dict(instruments=2, days=6, start="2024-01-29", seed=3)
    csv_files = generate(str(tmp_path / "csv"), fmt="csv", split="day", **kw)
    pq_files = generate(str(tmp_path / "pq"), fmt="parquet", split="month", **kw)
    assert len(pq_files) == 2
    with temp_store("incbt-csv-") as (a, _), temp_store("incbt-pq-") as (b, _):
        sa, sb = a.ingest(csv_files), b.ingest(str(tmp_path / "pq"))
        assert sa.days_new == sb.days_new == 12
        bars = a.sql(ALL_BARS)
        assert bars.num_rows == 2 * 6 * 390
        assert_same(bars, b.sql(ALL_BARS), "csv vs parquet")
        assert_bar_arrays_equal(a, b, bars)
        # content-addressed bucket files: the same names in both stores
        q = "SELECT path, rows FROM files ORDER BY path"
        assert a.sql(q).to_pylist() == b.sql(q).to_pylist()
        # and ingesting the other format's files changes nothing
        s = a.ingest(pq_files)
        assert s.seq is None and s.days_unchanged == 12


def test_order_by_on_a_store_without_bars():
    with temp_store("incbt-empty-") as (store, _):
        assert store.sql(ALL_BARS).num_rows == 0
