"""Result rows: exactly the rows of the tasks, whatever the tasks.

``build_tables`` (verify's in-memory tables) and the streamed ``BatchFiles`` are
checked against an independent row-by-row reference, for random tasks given in
random order, split by runs or by days, with failed pairs and with fills that a
kernel did not emit in set order; and the snapshot retention rule, kept commit by
commit, against the rule applied to the whole history.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
from hypothesis import given, settings
from hypothesis import strategies as st

from incbt.execute import DAILY_FIELDS, TaskResult
from incbt.plan import SegmentTask
from incbt.results import DAILY_SCHEMA, FILLS_SCHEMA, build_tables, required, sort_order

RUNS = [f"{i:016x}" for i in (0x3A, 0x07, 0xFF00, 0x1234)]
# min/max of a batch file's columns: those its rows are selected by, except run_id (a
# batch's rows come by instrument, then run: run_id's would not prune its row groups),
# unless its first row group holds one run (a backtest of one run)
STATS_COLUMNS = {"instrument", "ts", "date", "batch"}
RAW_COLUMNS = {"ts", "equity", "pnl", "turnover"}  # LZ4 would not shorten them
INSTS = ["S0002", "AAPL", "S0001"]


def _task(inst: str, runs: list[str], first: int, last: int) -> SegmentTask:
    n = len(runs)
    return SegmentTask(
        "sma_cross", "builtin", inst, tuple(runs), ((5.0, 50.0),) * n, ((1e5, 0.0, 0.0),) * n,
        first, last, None, first, last - first + 1, 390 * (last - first + 1),
    )  # fmt: skip


@st.composite
def task_results(draw: st.DrawFn) -> tuple[list[TaskResult], set[tuple[str, str]]]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    out = []
    for inst in draw(st.lists(st.sampled_from(INSTS), min_size=1, max_size=3, unique=True)):
        runs = draw(st.lists(st.sampled_from(RUNS), min_size=1, max_size=4, unique=True))
        # the pair's days, cut in one or two segments (two tasks, disjoint days), and the
        # runs split in one or two tasks
        n_days = draw(st.integers(1, 6))
        cut = draw(st.integers(1, n_days))
        spans = [(19000, 19000 + cut - 1)] + ([(19000 + cut, 19000 + n_days - 1)]
                                               if cut < n_days else [])  # fmt: skip
        k = draw(st.integers(1, len(runs)))
        for lo, hi in spans:
            for group in (runs[:k], runs[k:]):
                if not group:
                    continue
                days = np.arange(lo, hi + 1, dtype=np.int32)
                nr, nd = len(group), len(days)
                daily = {f: rng.normal(size=(nr, nd)) for f in DAILY_FIELDS}
                daily["fills"] = rng.integers(0, 5, size=(nr, nd))
                per = rng.integers(0, 4, size=nr)
                fill_run = np.repeat(np.arange(nr), per)
                ts = np.concatenate(
                    [np.sort(rng.choice(np.arange(nd * 390), size=m, replace=False)) for m in per]
                ).astype(np.int64) + int(days[0]) * 86_400 * 10**9
                fday = (ts // (86_400 * 10**9)).astype(np.int32)
                qty, px, fee = rng.normal(size=(3, len(ts)))
                if draw(st.booleans()) and len(ts) > 1:
                    # in time order across sets, not in set order: the fallback path
                    o = np.argsort(ts, kind="stable")
                    fill_run, ts, fday, qty, px, fee = (
                        a[o] for a in (fill_run, ts, fday, qty, px, fee)
                    )
                out.append(
                    TaskResult(
                        _task(inst, group, lo, hi), days, daily, fill_run, ts, fday, qty, px,
                        fee, np.zeros((nr, nd, 2)), 390 * nd * nr, [None] * nr,
                    )
                )  # fmt: skip
    order = draw(st.permutations(range(len(out))))
    results = [out[i] for i in order]
    pairs = sorted({(rid, r.task.instrument) for r in results for rid in r.task.run_ids})
    failed = set(draw(st.lists(st.sampled_from(pairs), max_size=2)))
    return results, failed


def _reference(results: list[TaskResult], failed: set[tuple[str, str]]) -> tuple[pa.Table, ...]:
    """Every row, then one plain sort by (run, instrument, time)."""
    d = {c: [] for c in DAILY_SCHEMA.names}
    f = {c: [] for c in FILLS_SCHEMA.names}
    for r in results:
        t = r.task
        for k, rid in enumerate(t.run_ids):
            if (rid, t.instrument) in failed:
                continue
            for j, day in enumerate(r.days.tolist()):
                d["run_id"].append(rid)
                d["instrument"].append(t.instrument)
                d["date"].append(day)
                for name in DAILY_FIELDS:
                    d[name].append(r.daily[name][k, j].item())
                d["batch"].append(7)
        for i in range(len(r.fill_run)):
            rid = t.run_ids[int(r.fill_run[i])]
            if (rid, t.instrument) in failed:
                continue
            f["run_id"].append(rid)
            f["instrument"].append(t.instrument)
            f["ts"].append(int(r.fill_ts[i]))
            f["date"].append(int(r.fill_day[i]))
            f["qty"].append(float(r.fill_qty[i]))
            f["price"].append(float(r.fill_price[i]))
            f["fee"].append(float(r.fill_fee[i]))
            f["batch"].append(7)
    daily = pa.table(d, schema=DAILY_SCHEMA).sort_by(
        [("run_id", "ascending"), ("instrument", "ascending"), ("date", "ascending")]
    )
    fills = pa.table(f, schema=FILLS_SCHEMA).sort_by(
        [("run_id", "ascending"), ("instrument", "ascending"), ("ts", "ascending")]
    )
    return daily, fills


@settings(max_examples=150, deadline=None)
@given(task_results())
def test_tables_equal_a_plain_row_sort(case):
    results, failed = case
    daily, fills = build_tables(results, 7, failed)
    want_daily, want_fills = _reference(results, failed)
    assert daily.cast(DAILY_SCHEMA).equals(want_daily)
    assert fills.cast(FILLS_SCHEMA).equals(want_fills)


def test_names_are_dictionary_encoded_and_files_read_back_as_strings(tmp_path):
    import pyarrow.parquet as pq

    from incbt.results import write_durable

    days = np.array([19000, 19001], dtype=np.int32)
    daily = {f: np.ones((1, 2)) for f in DAILY_FIELDS}
    daily["fills"] = np.ones((1, 2), dtype=np.int64)
    e = np.empty(0)
    r = TaskResult(_task("AAPL", [RUNS[0]], 19000, 19001), days, daily,
                   e.astype(np.int64), e.astype(np.int64), e.astype(np.int32), e, e, e,
                   np.zeros((1, 2, 2)), 780, [None])  # fmt: skip
    d, _ = build_tables([r], 1, set())
    assert pa.types.is_dictionary(d.schema.field("run_id").type)
    write_durable(str(tmp_path), "results/daily/x.parquet", d)
    back = pq.read_table(tmp_path / "results/daily/x.parquet")
    assert back.schema == required(DAILY_SCHEMA)  # plain strings; no column nullable
    assert back.column("instrument").to_pylist() == ["AAPL", "AAPL"]


class _Cat:
    """The one catalog call BatchFiles makes (recording its paths as pending)."""

    class env:  # noqa: N801 - mirrors Catalog.env
        @staticmethod
        def write(fn):
            return fn(None)

    @staticmethod
    def set_pending(txn, paths):
        _Cat.pending = list(paths)


@settings(max_examples=60, deadline=None)
@given(task_results(), st.integers(1, 40))
def test_streamed_batch_files_hold_the_same_rows(tmp_path_factory, case, row_group):
    """The files written as results arrive (plan order, small row groups) hold exactly
    the rows of the reference, and read back with plain string columns."""
    import pyarrow.parquet as pq

    import incbt.results as res

    results, failed = case
    root = str(tmp_path_factory.mktemp("batch"))
    old = res.ROW_GROUP_ROWS
    res.ROW_GROUP_ROWS = row_group
    try:
        files = res.BatchFiles(root, _Cat, 7)
        for r in results:
            files.add(r, failed)
        files.close()
    finally:
        res.ROW_GROUP_ROWS = old
    assert _Cat.pending == [files.paths["daily"], files.paths["fills"]]
    want_daily, want_fills = _reference(results, failed)
    for key, want, order in (("daily", want_daily, "date"), ("fills", want_fills, "ts")):
        got = pq.read_table(os.path.join(root, files.paths[key]))
        assert got.schema == required(want.schema)  # plain strings; no column nullable
        assert got.num_rows == files.rows[key]
        meta = pq.ParquetFile(os.path.join(root, files.paths[key])).metadata
        assert all(meta.row_group(i).num_rows <= row_group for i in range(meta.num_row_groups))
        # min/max, which prune row groups, for the columns rows are selected by only;
        # run_id's too when the first row group holds one run (a backtest of one run)
        head = meta.row_group(0).num_rows if meta.num_row_groups else 0
        first = set(got.slice(0, head)["run_id"].to_pylist())
        stats = STATS_COLUMNS | ({"run_id"} if len(first) == 1 else set())
        at = 0
        for i in range(meta.num_row_groups):
            rg = meta.row_group(i)
            part = got.slice(at, rg.num_rows)
            at += rg.num_rows
            for j in range(rg.num_columns):
                col = rg.column(j)
                has = col.statistics is not None and col.statistics.has_min_max
                assert has == (col.path_in_schema in stats), (key, col.path_in_schema)
                raw = col.path_in_schema in RAW_COLUMNS
                assert col.compression == ("UNCOMPRESSED" if raw else "LZ4"), col.path_in_schema
                if has and col.path_in_schema in (order, "run_id"):
                    lo, hi = pa.compute.min_max(part.column(col.path_in_schema)).values()
                    assert (col.statistics.min, col.statistics.max) == (lo.as_py(), hi.as_py())
        got = got.sort_by([("run_id", "ascending"), ("instrument", "ascending"),
                           (order, "ascending")])  # fmt: skip
        assert got.equals(want.cast(required(want.schema))), key


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 5), min_size=1, max_size=120),  # gaps between trading days
    st.lists(st.integers(1, 30), min_size=1, max_size=20),  # sizes of successive updates
    st.integers(1, 40),
)
def test_retention_kept_incrementally_equals_retention_of_the_whole(gaps, chunks, keep):
    """Snapshots kept by a first run and then commit after commit (adding what
    ``retained`` keeps of each segment, deleting what ``fallen_out`` names) are
    exactly those ``retained`` keeps of the whole history at once."""
    from incbt.results import RECENT_BLOCK, fallen_out, retained

    days = (19000 + np.cumsum(gaps)).astype(np.int32)
    kept: set[int] = set()
    done = 0
    for size in chunks + [len(days)]:
        seg = days[done : done + size]
        if not len(seg):
            break
        before = days[:done][-(keep + RECENT_BLOCK) :].tolist()
        for d in fallen_out(before, seg, keep):
            assert d in kept, "deletes only what it kept"
            kept.discard(d)
        kept |= set(seg[retained(seg, keep)].tolist())
        done += len(seg)
    assert sorted(kept) == sorted(days[retained(days, keep)].tolist())


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.lists(st.integers(1, 50), min_size=1, max_size=12),
    st.lists(st.integers(1, 50), min_size=1, max_size=12),
    st.integers(1, 40),
)
def test_batch_file_bytes_do_not_depend_on_how_rows_arrive(
    tmp_path_factory, seed, sizes_a, sizes_b, row_group
):
    """The same rows pushed in parts of other sizes (tasks split otherwise, as on another
    executor) give the same file bytes: a row group is gathered the same way whatever
    the parts."""
    import incbt.results as res

    rng = np.random.default_rng(seed)
    n = sum(sizes_a)
    rows = {
        "run_id": rng.integers(0, len(RUNS), n).astype(np.int32),
        "instrument": rng.integers(0, len(INSTS), n).astype(np.int32),
        "date": rng.integers(19000, 19100, n).astype(np.int32),
        **{f: rng.normal(size=n) for f in ("equity", "pnl", "pos", "fees", "turnover")},
        "fills": rng.integers(0, 9, n),
    }
    cuts_b = np.cumsum(sizes_b)
    cuts_b = [0, *[int(c) for c in cuts_b if c < n], n]
    cuts_a = [0, *np.cumsum(sizes_a).tolist()]
    out = []
    old = res.ROW_GROUP_ROWS
    res.ROW_GROUP_ROWS = row_group
    try:
        for cuts in (cuts_a, cuts_b):
            root = str(tmp_path_factory.mktemp("bytes"))
            files = res.BatchFiles(root, _Cat, 3)
            for name in RUNS + INSTS:
                files._code(name)
            for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
                room = files._bufs["daily"].take(hi - lo)  # what add_task_rows does
                for c, a in rows.items():
                    room[c][:] = a[lo:hi]
                files._emit("daily", final=False)
            files.close()
            with open(os.path.join(root, files.paths["daily"]), "rb") as fh:
                out.append(fh.read())
    finally:
        res.ROW_GROUP_ROWS = old
    assert out[0] == out[1]


@settings(max_examples=400, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(-4, 4)), max_size=80),
    in_time_order=st.booleans(),
    layout=st.sampled_from(["any", "runs", "split runs"]),
    order=st.permutations(range(12)),
    cut=st.integers(0, 80),
)
def test_sort_order_sorts_by_ranks_then_time_as_a_lexsort_does(
    rows, in_time_order, layout, order, cut
):
    """What verify sorts fresh and stored rows with: equal to NumPy's (stable) lexsort,
    whether the rows come with each group's times in order (the fast path) or not, and
    in runs of one (run, instrument) in any order (as tasks emit them; a pair's rows
    split in two runs when its days were cut in two tasks) or not."""
    if in_time_order:  # as tasks emit them: each (run, instrument)'s rows in time order
        rows = sorted(rows, key=lambda x: x[2])
    if layout != "any":  # runs of one pair, the pairs in an order of their own (stable)
        rows = sorted(rows, key=lambda x: order[x[0] * 3 + x[1]])
    if layout == "split runs":  # the rows after a cut come again after the rest
        rows = rows[:cut] + rows[cut:][::2] + rows[cut:][1::2]
    if layout != "any":  # long runs, as a task's (each row 16 times: ties keep their order)
        rows = [x for x in rows for _ in range(16)]
    run, inst, time = (np.array([x[k] for x in rows], dtype=np.int64) for k in range(3))
    assert np.array_equal(sort_order([(run, 4), (inst, 3)], time), np.lexsort((time, inst, run)))
    assert np.array_equal(sort_order([(run, 4), (inst, 3)], None), np.lexsort((inst, run)))
    assert np.array_equal(sort_order([(run, 4)], None), np.argsort(run, kind="stable"))


def test_a_run_s_rows_are_found_by_statistics_among_one_run_backtests(tmp_path):
    """The batches of one-run backtests carry run_id's min/max, so a query of one run
    reads only its own batches' row groups; a sweep's batch (every run in every row
    group, where they would prune nothing) carries none."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    import incbt
    from incbt.bars.generate import generate
    from incbt.catalog import runs as rc

    generate(str(tmp_path / "d"), instruments=3, days=4, start="2024-03-04", seed=5)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    runs = [s.backtest("sma_cross", {"fast": f, "slow": 30}).run_id for f in (3, 5, 8)]
    sweep = s.sweep("sma_cross", {"fast": [4, 6], "slow": [20, 40]}, name="g")

    def files(key: str, run_ids: list[str]) -> list[str]:
        with s.catalog.env.read() as txn:
            segs = {g.batch for g in rc.segments(s.catalog, txn) if g.run_id in run_ids}
            return [os.path.join(s.path, r[key]) for b, r in rc.batches(s.catalog, txn)
                    if b in segs]  # fmt: skip

    for key in ("daily", "fills"):
        ones, swept = files(key, runs), files(key, sweep.run_ids)
        assert ones and swept and not set(ones) & set(swept)
        for f in ones:
            col = pq.ParquetFile(f).metadata.row_group(0).column(0)
            assert col.path_in_schema == "run_id" and col.statistics.has_min_max
        for f in swept:
            col = pq.ParquetFile(f).metadata.row_group(0).column(0)
            assert col.path_in_schema == "run_id" and col.statistics is None
        # what a scan keeps of each file for one run, by the footers alone
        data = ds.dataset(ones + swept, format="parquet")
        for rid in runs:
            kept = [
                frag.path
                for frag in data.get_fragments()
                if frag.split_by_row_group(ds.field("run_id") == rid)
            ]
            assert set(kept) == set(files(key, [rid])) | set(swept), (key, rid)
