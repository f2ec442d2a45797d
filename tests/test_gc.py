"""``incbt gc``: superseded bars files go, current bars and results stay, time travel
after the horizon is unchanged and before it fails clearly."""

from __future__ import annotations

import os

import pytest
from conftest import tree_state

import incbt
from incbt.bars.gc import gc as gc_fn
from incbt.bars.generate import generate, weekdays
from incbt.bars.schema import day_to_iso, iso_to_day
from incbt.errors import QueryError, UsageError

START = "2024-01-25"  # 8 weekdays: Jan 25 .. Feb 5 (two months)
DATES = [day_to_iso(d) for d in weekdays(iso_to_day(START), 8)]
GEN = dict(instruments=2, days=8, start=START, seed=5)
ALL_BARS = "SELECT * FROM bars ORDER BY instrument, ts"


def bars_on_disk(st: incbt.Store) -> set[str]:
    root = os.path.join(st.path, "bars")
    return {os.path.relpath(os.path.join(d, f), st.path) for d, _, fs in os.walk(root) for f in fs}


def records(st: incbt.Store) -> list:
    with st.catalog.env.read() as txn:
        return list(st.catalog.files(txn))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gc-data")
    orig = generate(str(root / "orig"), **GEN)  # one file per day
    rev = generate(str(root / "rev"), from_day=DATES[1], to_day=DATES[1], revise=[DATES[1]], **GEN)
    return orig, rev


def build(path: str, inputs) -> incbt.Store:
    """Events: 1 init, 2 days 0-3, 3 day 1 corrected, 4 day 4, 5 day 5, 6 days 6-7."""
    orig, rev = inputs
    st = incbt.init(path)
    st.ingest(orig[:4])
    st.ingest(rev)
    st.ingest(orig[4])
    st.ingest(orig[5])
    st.ingest(orig[6:])
    assert len(st.log()) == 6
    return st


def time_travel(st: incbt.Store) -> dict[int, object]:
    return {e: st.sql(ALL_BARS, as_of=e) for e in range(1, len(st.log()) + 1)}


def test_gc_removes_exactly_the_superseded_files(tmp_path, inputs):
    st = build(str(tmp_path / "s"), inputs)
    recs = records(st)
    superseded = {r.path for r in recs if not r.is_current}
    current = {r.path for r in recs if r.is_current}
    assert len(superseded) >= 3 and bars_on_disk(st) == superseded | current
    before_bars = st.sql(ALL_BARS)
    past = time_travel(st)
    horizon = max(r.intervals[-1][1] for r in recs if not r.is_current)
    freed = sum(r.bytes for r in recs if not r.is_current)

    s = st.gc()
    assert (s.files_removed, s.bytes_freed, s.files_kept) == (len(superseded), freed, 0)
    assert s.seq == 7 and s.horizon == horizon and s.paths == sorted(superseded)
    assert bars_on_disk(st) == current
    assert {r.path for r in records(st)} == current
    assert st.sql(ALL_BARS).equals(before_bars)  # the current bars, bit for bit
    # time travel at or after the horizon: unchanged; before it: a clear error
    for e, t in past.items():
        if e >= horizon:
            assert st.sql(ALL_BARS, as_of=e).equals(t), e
        else:
            with pytest.raises(QueryError, match=f"reaches back to event {horizon}") as exc:
                st.sql(ALL_BARS, as_of=e)
            said = str(exc.value)
            assert "incbt gc" in said and f"--as-of {horizon} (as_of={horizon}) or" in said
            # events and changes keep the whole history: they still travel (QA 2026-12-06)
            n = st.sql("SELECT count(*) AS n FROM events", as_of=e).column("n")[0].as_py()
            assert n == e
            st.sql("SELECT * FROM changes", as_of=e)
    assert st.sql(ALL_BARS, as_of=7).equals(before_bars)
    # the log and changes keep the whole history; the gc is an event like the others
    log = st.log()
    assert log.column("kind")[0].as_py() == "gc"
    msg = log.column("message")[0].as_py()
    assert msg == (
        f"removed {len(superseded)} superseded bars file(s), {freed:,} bytes; "
        f"--as-of reaches back to event {horizon}"
    )
    assert len(st.sql("SELECT * FROM changes")) == 2 * 8 + 2
    # a second gc has nothing to do and records nothing
    again = st.gc()
    assert (again.files_removed, again.seq, again.horizon) == (0, None, horizon)
    assert len(st.log()) == 7


def test_a_query_of_days_travels_past_the_horizon_though_it_names_the_bars(tmp_path, inputs):
    # QA 2026-12-08: `incbt query coverage --as-of N` was refused after a gc ("the bars
    # as they were before event H were removed"): it reads the day index alone, which
    # the log of changes keeps whole, but names its column `bars` and the bars in a
    # comment; a query that reads bars is refused as before, a CTE of days before it too
    st = build(str(tmp_path / "s"), inputs)
    by_days = "SELECT instrument, count(*) AS days, sum(rows) AS bars FROM days GROUP BY 1"
    past = {e: (st.query("coverage", as_of=e), st.sql(by_days, as_of=e)) for e in (2, 3, 4)}
    horizon = st.gc().horizon
    assert horizon is not None and horizon > 2
    for e, (coverage, counted) in past.items():
        assert st.query("coverage", as_of=e).equals(coverage), e
        assert st.sql(by_days, as_of=e).equals(counted), e
        if e < horizon:
            for q in (
                ALL_BARS,
                "SELECT * FROM files",
                "WITH d AS (SELECT instrument, date FROM days) "
                "SELECT count(*) FROM d JOIN bars USING (instrument, date)",
            ):
                with pytest.raises(QueryError, match=f"reaches back to event {horizon}"):
                    st.sql(q, as_of=e)


def test_before_keeps_what_later_events_need(tmp_path, inputs):
    st = build(str(tmp_path / "s"), inputs)
    recs = records(st)
    past = time_travel(st)
    cut = 4
    gone = {r.path for r in recs if not r.is_current and r.intervals[-1][1] <= cut}
    kept = {r.path for r in recs if not r.is_current and r.intervals[-1][1] > cut}
    assert gone and kept
    s = st.gc(before=cut)
    assert set(s.paths) == gone and s.files_kept == len(kept)
    assert s.horizon == max(r.intervals[-1][1] for r in recs if r.path in gone) <= cut
    assert not bars_on_disk(st) & gone and kept <= bars_on_disk(st)
    for e, t in past.items():
        if e >= cut:
            assert st.sql(ALL_BARS, as_of=e).equals(t), e
    with pytest.raises(QueryError, match="incbt gc"):
        st.sql(ALL_BARS, as_of=s.horizon - 1)
    # then the rest: the horizon only moves forward
    s2 = st.gc()
    assert set(s2.paths) == kept and s2.horizon > s.horizon
    with pytest.raises(incbt.NotFoundError, match="no such event"):  # exit 1, as --as-of
        st.gc(before=99)
    with pytest.raises(UsageError, match="not both"):
        st.gc(before=2, keep_days=1)


def test_keep_days_cuts_at_the_first_event_newer_than_n_days(tmp_path, inputs):
    st = build(str(tmp_path / "s"), inputs)
    with st.catalog.env.read() as txn:
        times = {e.seq: e.time_ns for e in st.catalog.events(txn)}
    day = 86_400 * 10**9
    # "now" is one day after event 4: keep 1 day -> the cutoff is event 4
    s = gc_fn(st.path, st.catalog, lock=st.lock, keep_days=1, now_ns=times[4] + day, dry_run=True)
    assert s.cutoff == 4
    assert s.paths == st.gc(before=4, dry_run=True).paths
    # nothing newer than N days ago: the store is as it was then, every superseded file goes
    s = gc_fn(st.path, st.catalog, lock=st.lock, keep_days=1, now_ns=times[6] + 2 * day)
    assert s.cutoff == 6 and s.files_kept == 0 and s.files_removed > 0
    # a long window keeps everything: nothing was superseded by event 1
    assert st.gc(keep_days=10_000).files_removed == 0


def test_dry_run_writes_nothing(tmp_path, inputs):
    st = build(str(tmp_path / "s"), inputs)
    before = tree_state(st.path)
    s = st.gc(dry_run=True)
    assert s.dry_run and s.seq is None and s.files_removed > 0
    assert tree_state(st.path) == before, "a dry run changed the store"
    real = st.gc()
    assert (real.files_removed, real.bytes_freed, real.paths) == (
        s.files_removed,
        s.bytes_freed,
        s.paths,
    )
    # the repr is one short line, whatever the paths (it listed every one of them)
    assert repr(s).startswith(f"<GcSummary: would remove {s.files_removed:,} file(s), ")
    assert repr(real).startswith("<GcSummary: removed ") and s.paths[0] not in repr(real)


def test_results_unchanged_and_backtests_go_on(tmp_path, inputs):
    orig, _ = inputs
    st = build(str(tmp_path / "s"), inputs)
    run = st.backtest("sma_cross", {"fast": 3, "slow": 12})
    daily = st.sql("SELECT * FROM daily ORDER BY instrument, date")
    metrics = st.sql("SELECT * FROM metrics ORDER BY run_id, instrument")
    st.gc()
    assert st.sql("SELECT * FROM daily ORDER BY instrument, date").equals(daily)
    assert st.sql("SELECT * FROM metrics ORDER BY run_id, instrument").equals(metrics)
    assert st.verify().ok
    assert st.status().stale == []
    # a correction back to the original day 1 recreates a file gc removed (same content
    # address): it is written again, and the run recomputes from that day
    res = st.update(orig[1])
    assert res.ingest.days_corrected == 2
    assert {r.path for r in records(st)} <= bars_on_disk(st)
    fresh = incbt.init(str(tmp_path / "fresh"))
    fresh.ingest(orig)
    assert st.sql(ALL_BARS).equals(fresh.sql(ALL_BARS))
    assert st.verify([run.run_id]).ok


def test_an_interrupted_gc_is_finished_by_the_next_writer(tmp_path, inputs):
    """The commit made, the files not yet deleted: the next writer deletes them."""
    st = build(str(tmp_path / "s"), inputs)
    current = {r.path for r in records(st) if r.is_current}
    real_finish = incbt.bars.gc.finish_gc
    incbt.bars.gc.finish_gc = lambda root, cat: 0  # type: ignore[attr-defined]
    try:
        s = st.gc()
    finally:
        incbt.bars.gc.finish_gc = real_finish  # type: ignore[attr-defined]
    with st.catalog.env.read() as txn:
        assert st.catalog.gc_pending(txn) == s.paths
    assert bars_on_disk(st) == current | set(s.paths)
    assert st.recover() == len(s.paths)
    assert bars_on_disk(st) == current
    with st.catalog.env.read() as txn:
        assert st.catalog.gc_pending(txn) == []
    assert st.recover() == 0  # idempotent


def test_gc_drops_the_rows_sql_no_longer_shows_from_the_results_files(tmp_path):
    """QA 2026-12-06: rows of dropped runs and rows recomputed after a correction stayed
    in the results files until a compaction merged their batch (for an old batch, maybe
    hundreds of commands later), and no command dropped them: 1,060 daily rows on disk
    for 120 shown. gc rewrites the batches from the oldest holding such rows as one,
    without them; what SQL shows is unchanged, bit for bit, and verify passes."""
    import glob

    import pyarrow.parquet as pq

    g = dict(instruments=3, days=20, start="2024-01-15", seed=5)
    generate(str(tmp_path / "d"), **g)
    day = "2024-01-25"
    generate(str(tmp_path / "fix"), **g, from_day=day, to_day=day, revise=[day])
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    s.sweep("sma_cross", {"fast": [5, 10], "slow": [40, 60]}, name="sw")
    kept = s.backtest("ema_cross", {"fast": 5, "slow": 30})
    s.update(str(tmp_path / "fix"))  # the rows from the 25th recomputed: the old ones dead
    s.drop(sweep="sw")  # every row of 4 runs dead

    def on_disk(table: str) -> int:
        files = glob.glob(os.path.join(s.path, "results", table, "*.parquet"))
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)

    queries = [f"SELECT * FROM {t} ORDER BY run_id, instrument, {k}"
               for t, k in (("daily", "date"), ("fills", "ts"))]
    shown = [s.sql(q) for q in queries]
    daily_shown = shown[0].num_rows
    assert daily_shown == 3 * 20 and on_disk("daily") > 4 * daily_shown
    from test_cli import run

    said = run("status", store=s.path).stdout
    assert f"results: about {on_disk('daily') - daily_shown:,} daily rows" in said, said
    before = tree_state(s.path)
    dry = s.gc(dry_run=True).results
    assert tree_state(s.path) == before  # a dry run writes nothing
    # about: the segments' days; every dead row of the runs dropped, the share of the
    # days from the 25th of the recomputed one's
    assert dry.batches >= 2 and dry.dead_daily_rows == on_disk("daily") - daily_shown
    res = s.gc().results
    assert (on_disk("daily"), on_disk("fills")) == (daily_shown, shown[1].num_rows)
    assert res.dropped("daily") == dry.dead_daily_rows and res.rows_before == dry.rows_before
    assert res.rows_after == {"daily": daily_shown, "fills": shown[1].num_rows}
    assert dry.rows_after == res.rows_after  # counted as the rewrite keeps them
    assert 0.9 < dry.bytes_freed / res.bytes_freed < 1.1  # about
    assert res.files_removed >= 2 * dry.batches and res.bytes_freed > 0
    assert [s.sql(q) for q in queries] == shown
    assert s.verify().ok and kept.metrics.num_rows == 4
    assert "results: about" not in run("status", store=s.path).stdout
    again = s.gc()  # nothing left to drop: nothing rewritten
    assert again.results.batches == 0 and again.results.files_removed == 0


def test_dead_rows_after_daily_updates_and_a_correction_are_said_as_gc_drops_them(tmp_path):
    """After daily updates (compaction merged their batches into segments of many days)
    and a correction, `status` said about 20 daily rows where gc dropped 16, and 8 where
    it dropped 18; gc --dry-run's bytes were off by up to 4.5x (QA 2026-12-07): the
    estimate took the segments' calendar days, and the bytes the daily rows' share."""
    g = dict(instruments=4, days=40, start="2024-01-01", seed=7)
    files = generate(str(tmp_path / "all"), **g)
    day = "2024-02-08"
    generate(str(tmp_path / "fix"), **g, from_day=day, to_day=day, revise=[day])
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(files[:20])
    s.backtest("sma_cross", {"fast": 5, "slow": 30})
    dropped = s.backtest("sma_cross", {"fast": 6, "slow": 30}).run_id
    for f in files[20:]:
        s.update(f)
    s.update(str(tmp_path / "fix"))
    s.drop(dropped)
    from incbt.results.compact import dead_rows

    with s.catalog.env.read() as txn:
        estimate = dead_rows(s.catalog, txn)[1]
    dry = s.gc(dry_run=True).results
    res = s.gc().results
    assert res.dropped("daily") > 0 and res.dropped("fills") > 0
    assert dry.rows_after == res.rows_after and dry.dead_daily_rows == res.dropped("daily")
    assert estimate == res.dropped("daily")  # the days index holds the segments' days
    assert 0.9 < dry.bytes_freed / res.bytes_freed < 1.1
