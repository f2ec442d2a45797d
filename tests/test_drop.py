"""``incbt drop``: dropped runs stop being updated and leave SQL; registering one again
recomputes it from scratch, equal to a fresh store's run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cli_process import run_incbt
from conftest import tree_state

import incbt
from incbt.bars.generate import generate
from incbt.catalog import runs as rc

DAILY = "SELECT * FROM daily ORDER BY run_id, instrument, date"
FILLS = "SELECT * FROM fills ORDER BY run_id, instrument, ts"
METRICS = "SELECT * FROM metrics ORDER BY run_id, scope, instrument"
G = dict(instruments=3, days=8, start="2024-03-04", seed=17)
A = ("sma_cross", {"fast": 4, "slow": 30})
B = ("breakout", {"lookback": 40})
GRID = {"fast": [3, 5], "slow": [20]}


@pytest.fixture
def world(tmp_path):
    generate(str(tmp_path / "head"), **G, to_day="2024-03-11")
    generate(str(tmp_path / "tail"), **G, from_day="2024-03-12")
    generate(str(tmp_path / "all"), **G)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "head"))
    a = s.backtest(*A).run_id
    b = s.backtest(*B).run_id
    s.sweep("sma_cross", GRID, name="w")
    return tmp_path, s, a, b


def _fresh(root, data, runs, sweep: bool):
    """A fresh store that ingested ``data`` once and ran ``runs`` (and the grid ``w``)."""
    f = incbt.init(str(root))
    f.ingest(str(data))
    for r in runs:
        f.backtest(*r)
    if sweep:
        f.sweep("sma_cross", GRID, name="w")
    return f


def _assert_same(s, fresh):
    for q in (DAILY, FILLS, METRICS):
        assert s.sql(q).equals(fresh.sql(q)), q


def _count(s, table, run_id):
    return s.sql(f"SELECT count(*) AS n FROM {table} WHERE run_id = '{run_id}'")["n"][0].as_py()


def test_a_dropped_run_leaves_sql_is_not_updated_and_comes_back_from_scratch(world):
    tmp, s, a, b = world
    b_daily = s.sql(f"SELECT * FROM daily WHERE run_id = '{b}' ORDER BY instrument, date")
    res = s.drop([a[:8]])
    assert res.runs == [a] and res.pairs == 3 and res.snapshots > 0 and res.seq is not None
    for table in ("daily", "fills", "metrics", "runs"):
        assert _count(s, table, a) == 0, table
    assert s.sql(f"SELECT * FROM daily WHERE run_id = '{b}' ORDER BY instrument, date").equals(
        b_daily
    )
    with s.catalog.env.read() as txn:
        for inst in [*s.instruments(), ""]:
            assert rc.snapshot_days(s.catalog, txn, a, inst) == []
    log = s.log(kind="drop")
    assert log.num_rows == 1 and log["message"][0].as_py() == f"dropped run(s) {a}"
    with pytest.raises(incbt.NotFoundError, match="was dropped"):
        s.run(a)
    # dropped twice: nothing to do, no event
    again = s.drop([a])
    assert again.runs == [] and again.already == [a] and again.seq is None
    # the next day: the three other runs only (breakout and the sweep's two points)
    up = s.update(str(tmp / "tail"))
    assert up.report.bars_processed == 3 * 3 * 2 * 390
    assert not s.status().stale and s.verify().ok
    # registered again: computed from scratch, equal to a fresh store's
    back = s.backtest(*A)
    assert back.run_id == a and back.report.bars_processed == 3 * 8 * 390
    _assert_same(s, _fresh(tmp / "fresh", tmp / "all", [A, B], sweep=True))
    assert s.verify().ok


def test_verify_of_a_dropped_run_says_it_was_dropped(world):
    """``store.verify([id])`` and ``incbt verify ID`` of a run dropped since: said as
    dropped, as ``store.run`` and the queries of a run say it (QA 2026-12-08: "no run
    'ID' (... lists them)", where the id had just been printed by the notebook)."""
    tmp, s, a, b = world
    seq = s.drop([a]).seq
    for given in (a, a[:8]):
        with pytest.raises(incbt.NotFoundError, match=rf"run {a} was dropped \(event {seq}\)"):
            s.verify([given])
    r = run_incbt(["--store", str(tmp / "s"), "verify", a[:8]])
    assert r.returncode == 1 and f"run {a} was dropped (event {seq})" in r.stderr, r.stderr


def test_a_sweep_drops_whole_and_a_fork_base_not_without_its_fork(world):
    tmp, s, a, b = world
    fork = s.backtest(None, {"fast": 6}, fork_of=a, effective="2024-03-07").run_id
    before = tree_state(s.path)
    with pytest.raises(incbt.UserError, match=f"base of fork.*{fork}") as e:
        s.drop([a])
    assert e.value.exit_code == 1  # the store's state refuses it, not the usage (QA)
    with pytest.raises(incbt.NotFoundError, match="no sweep"):
        s.drop(sweep="nope")
    dry = s.drop([a, fork], sweep="w", dry_run=True)
    assert len(dry.runs) == 4 and dry.sweeps == ["w"] and dry.seq is None
    assert tree_state(s.path) == before
    points = s.sql("SELECT run_id FROM sweeps WHERE sweep = 'w'")["run_id"].to_pylist()
    res = s.drop(sweep="w")
    assert sorted(res.runs) == sorted(points) and res.sweeps == ["w"]
    assert s.sql("SELECT count(*) AS n FROM sweeps")["n"][0].as_py() == 0
    assert all(_count(s, "daily", r) == 0 for r in points)
    res = s.drop([a, fork])
    assert sorted(res.runs) == sorted([a, fork])
    assert s.sql("SELECT run_id FROM runs")["run_id"].to_pylist() == [b]
    # a dropped sweep is said dropped, not unknown (QA 2026-12-06: "no sweep 'w'")
    seq = res.seq - 1  # the sweep's drop: the event before the runs'
    with pytest.raises(incbt.NotFoundError, match=rf"sweep 'w' was dropped \(event {seq}\): "
                       r"give its grid \(-g\)"):
        s.sweep("sma_cross", name="w", resume=True)
    for call in (lambda: s.query("grid", {"sweep": "w"}), lambda: s.verify(sweep="w")):
        with pytest.raises(incbt.NotFoundError, match=rf"sweep 'w' was dropped \(event {seq}\)"):
            call()
    # dropping it again is done, as a run dropped again is (QA 2026-12-07: the same command
    # run again once done, say after a kill past its commit, was an error)
    state = tree_state(s.path)
    again = s.drop(sweep="w")
    assert again.sweep_before == ("w", seq) and again.runs == [] and again.seq is None
    assert tree_state(s.path) == state
    # the sweep run again under its name: from scratch, as in a fresh store
    sw = s.sweep("sma_cross", GRID, name="w")
    assert sw.report.bars_processed == 2 * 3 * 6 * 390
    _assert_same(s, _fresh(tmp / "fresh", tmp / "head", [B], sweep=True))


def test_a_sweep_dropped_keeps_the_runs_another_sweep_holds(world):
    """Two sweeps sharing grid points: dropping one keeps the shared runs (the other
    sweep's), says so, and drops them only when named."""
    tmp, s, a, b = world
    s.sweep("sma_cross", {"fast": [GRID["fast"][0]], "slow": [GRID["slow"][0], 45]}, name="v")
    w = set(s.sql("SELECT run_id FROM sweeps WHERE sweep = 'w'")["run_id"].to_pylist())
    v = set(s.sql("SELECT run_id FROM sweeps WHERE sweep = 'v'")["run_id"].to_pylist())
    both = sorted(w & v)
    assert len(both) == 1
    dry = s.drop(sweep="w", dry_run=True)
    assert dry.shared == {both[0]: ["v"]} and sorted(dry.runs) == sorted(w - v)
    p = run_incbt(["--store", s.path, "drop", "--sweep", "w", "--dry-run"])
    assert f"would keep 1 run(s) other sweeps hold too: {both[0]} (v)" in p.stdout, p.stdout
    res = s.drop(sweep="w")
    assert res.shared == {both[0]: ["v"]} and both[0] not in res.runs
    assert _count(s, "daily", both[0]) > 0 and s.verify(both).ok
    assert sorted(s.sql("SELECT run_id FROM sweeps")["run_id"].to_pylist()) == sorted(v)
    p = run_incbt(["--store", s.path, "drop", "--sweep", "v", "--dry-run"])
    assert p.returncode == 0 and "other sweeps hold too" not in p.stdout


def test_cli_drop(world):
    _, s, a, _ = world

    def run(*args):
        return run_incbt(["--store", s.path, "drop", *args])

    p = run(a, "--dry-run")
    assert p.returncode == 0 and "would drop 1 run(s): 3 (run, instrument) pair(s)" in p.stdout
    assert _count(s, "daily", a) > 0
    p = run("ffffffff")
    assert p.returncode == 1 and "no run 'ffffffff'" in p.stderr
    p = run()
    assert p.returncode == 2 and "--sweep" in p.stderr
    p = run(a)
    assert p.returncode == 0 and "dropped 1 run(s)" in p.stdout and "event" in p.stdout
    assert _count(s, "daily", a) == 0


def test_a_dropped_sweep_point_comes_back_with_resume(world):
    tmp, s, _, b = world
    points = s.sql("SELECT run_id FROM sweeps WHERE sweep = 'w' ORDER BY point")["run_id"]
    first = points.to_pylist()[0]
    s.drop([first])
    assert s.sql("SELECT run_id FROM sweeps")["run_id"].to_pylist() == points.to_pylist()[1:]
    # a dry run counts the point it would compute again (QA 2026-12-06: one run fewer)
    dry = s.sweep("sma_cross", GRID, name="w", resume=True, dry_run=True)
    assert dry.run_ids == points.to_pylist() and dry.again == 1
    assert dry.report.bars_processed == 3 * 6 * 390
    res = s.sweep("sma_cross", GRID, name="w", resume=True)
    assert res.run_ids == points.to_pylist() and res.again == 1
    assert res.report.bars_processed == 3 * 6 * 390  # that point only, from scratch
    fresh = _fresh(tmp / "fresh", tmp / "head", [A, B], sweep=True)
    _assert_same(s, fresh)
    q = "SELECT * FROM sweeps ORDER BY point"
    assert s.sql(q).equals(fresh.sql(q))


def test_result_files_with_nullable_columns_read_and_compact_with_required_ones(
    tmp_path, monkeypatch
):
    """Result files written before 2026-12-05 have nullable columns, later ones required
    columns (cheaper to encode). A store holding both shows the same rows as a fresh
    store, and compaction merges the two kinds into files of required columns."""
    import glob

    import pyarrow as pa
    import pyarrow.parquet as pq

    import incbt.results as res

    def nullable_columns(path: str) -> set[bool]:
        md = pq.ParquetFile(path).metadata.schema
        return {md.column(i).max_definition_level > 0 for i in range(len(md))}

    g = dict(instruments=2, days=10, start="2024-03-04", seed=29)
    generate(str(tmp_path / "all"), **g)
    days = sorted(os.listdir(tmp_path / "all"))
    s = incbt.init(str(tmp_path / "s"))
    s.ingest([str(tmp_path / "all" / d) for d in days[:2]])
    with monkeypatch.context() as m:  # the batch files as written before
        for name in ("DAILY_WRITE_SCHEMA", "FILLS_WRITE_SCHEMA"):
            old = pa.schema([f.with_nullable(True) for f in getattr(res, name)])
            m.setattr(res, name, old)
        s.backtest(*A)
        s.backtest(*B)
    files = glob.glob(os.path.join(s.path, "results", "*", "*.parquet"))
    assert files and all(nullable_columns(f) == {True} for f in files)
    s.update(str(tmp_path / "all" / days[2]))  # a batch of required columns beside them
    fresh = _fresh(tmp_path / "fresh", tmp_path / "all", [A, B], sweep=False)
    for f in glob.glob(os.path.join(fresh.path, "results", "*", "*.parquet")):
        assert nullable_columns(f) == {False}
    for d in days[3:]:  # a batch a day: eight batches of level 0 are merged
        s.update(str(tmp_path / "all" / d))
    assert s.log(kind="compact").num_rows >= 1
    with s.catalog.env.read() as txn:
        merged = [r for _, r in rc.batches(s.catalog, txn) if r.get("level", 0) > 0]
    assert merged
    for r in merged:
        for key in ("daily", "fills"):
            assert nullable_columns(os.path.join(s.path, r[key])) == {False}
    _assert_same(s, fresh)
    assert s.verify().ok


def test_compaction_removes_the_rows_of_dropped_runs(tmp_path):
    """Dropped runs' rows stay hidden in the result files until a compaction merges
    those files: the merged ones hold none of them (a replaced run's neither)."""
    import glob

    import pyarrow.parquet as pq

    g = dict(instruments=2, days=10, start="2024-03-04", seed=23)
    generate(str(tmp_path / "all"), **g)
    days = sorted(os.listdir(tmp_path / "all"))
    s = incbt.init(str(tmp_path / "s"))
    s.ingest([str(tmp_path / "all" / d) for d in days[:2]])
    a = s.backtest(*A).run_id
    s.backtest(*B)
    s.drop([a])
    for d in days[2:]:  # a batch a day: eight batches of level 0 are merged
        s.update(str(tmp_path / "all" / d))
    assert s.log(kind="compact").num_rows >= 1
    with s.catalog.env.read() as txn:
        live = {r["daily"] for _, r in rc.batches(s.catalog, txn)}
    held = set()
    for path in glob.glob(os.path.join(s.path, "results", "daily", "*.parquet")):
        if os.path.relpath(path, s.path) in live:
            held |= set(pq.read_table(path, columns=["run_id"])["run_id"].to_pylist())
    assert a not in held and held
    with s.catalog.env.read() as txn:
        merged = [r for _, r in rc.batches(s.catalog, txn) if r.get("level", 0) > 0]
    assert merged
    for r in merged:  # rows sorted by run first: run_id's min/max prune row groups there
        col = pq.ParquetFile(os.path.join(s.path, r["daily"])).metadata.row_group(0).column(0)
        assert col.path_in_schema == "run_id" and col.statistics.has_min_max
    with s.catalog.env.read() as txn:  # nothing left to hide: queries join no cut-off
        from incbt.results import cutoffs

        assert a not in cutoffs(s.catalog, txn)["run_id"].to_pylist()
    fresh = _fresh(tmp_path / "fresh", tmp_path / "all", [B], sweep=False)
    _assert_same(s, fresh)
    back = s.backtest(*A)  # registered again after the compaction: from scratch
    assert back.report.bars_processed == 2 * 10 * 390
    fresh.backtest(*A)
    _assert_same(s, fresh)
    assert s.verify().ok


def test_a_dropped_fork_comes_back_from_its_base(world):
    tmp, s, a, _ = world
    fork = s.backtest(None, {"fast": 6}, fork_of=a, effective="2024-03-07").run_id
    assert s.drop([fork]).runs == [fork]
    s.update(str(tmp / "tail"))
    back = s.backtest(None, {"fast": 6}, fork_of=a, effective="2024-03-07")
    assert back.run_id == fork and back.report.bars_processed == 3 * 5 * 390  # Mar 7 on
    fresh = _fresh(tmp / "fresh", tmp / "all", [A, B], sweep=True)
    fresh.backtest(None, {"fast": 6}, fork_of=a, effective="2024-03-07")
    _assert_same(s, fresh)
    assert s.verify().ok


def test_a_run_another_sweep_holds_under_its_old_id_is_kept(tmp_path):
    """Two sweeps share a run; the strategy's code changes and `update` replaces it. The
    sweeps' records still name the old id: dropping one sweep kept the old run (gone
    already) and dropped its replacement, which the other sweep holds too."""
    from conftest import MOM, ingested

    s = ingested(tmp_path)
    f = tmp_path / "mom.py"
    f.write_text(MOM.replace("{SHORT}", "-1"))
    s.sweep("mom", {"n": [3, 6]}, name="a", strategies_file=str(f))
    s.sweep("mom", {"n": [6, 9]}, name="b", strategies_file=str(f))
    f.write_text(MOM.replace("{SHORT}", "0"))
    s.update()
    shared = s.sweeps()["b"].run_ids[0]  # n=6, of the new code
    res = s.drop([], sweep="a")
    assert shared in res.shared and shared not in res.runs
    assert [r.run_id for r in s.runs()].count(shared) == 1
    assert s.sweeps()["b"].run_ids[0] == shared and s.verify(sweep="b").ok


def test_a_replaced_run_goes_with_the_run_that_replaced_it(tmp_path):
    """Found by QA 2026-12-05: a run replaced after a code change could be dropped alone
    (past the fork-base check), and the drop did not stick: a revert of the code brought
    it back; dropping its replacement left it listed, replaced by a run not there."""
    from conftest import MOM, ingested

    s = ingested(tmp_path)
    f = tmp_path / "mom.py"
    f.write_text(MOM.replace("{SHORT}", "-1"))
    base = s.backtest("mom", {"n": 3}, strategies_file=str(f))
    fork = s.backtest(None, {"n": 5}, fork_of=base.run_id, effective="2024-03-05")
    f.write_text(MOM.replace("{SHORT}", "0"))
    new = dict(s.update().replaced)
    with pytest.raises(
        incbt.UserError,
        match=f"run {base.run_id} was replaced by run "
        f"{new[base.run_id]} when its strategy's code changed: drop ",
    ) as e:
        s.drop([base.run_id])
    assert e.value.exit_code == 1
    p = run_incbt(["--store", s.path, "drop", "--dry-run", new[base.run_id], new[fork.run_id]])
    assert p.returncode == 0 and p.stdout.startswith(
        "would drop 2 run(s) (and 2 not shown that go with them: earlier code versions"
    ), p.stdout
    res = s.drop([new[base.run_id], new[fork.run_id]])
    assert sorted(res.runs) == sorted([*new, *new.values()])
    assert res.unseen == sorted(new)  # the earlier versions: not shown, said apart
    assert s.sql("SELECT count(*) AS n FROM runs")["n"][0].as_py() == 0
    f.write_text(MOM.replace("{SHORT}", "-1"))  # the revert brings back nothing dropped
    assert s.update().replaced == [] and s.runs() == [] and s.verify().ok


def test_an_update_waiting_for_the_lock_does_not_undo_a_drop(world):
    """Found by QA 2026-12-05: update read its runs before it took the write lock, so a
    drop committed while it waited was undone: the dropped runs were computed again
    from scratch and came back. Here this thread holds the lock, an update on another
    thread waits for it (a thread waits as another process does), and the drop commits
    before the update gets the lock."""
    import threading
    import time

    s = world[1] if isinstance(world, tuple) else world
    runs = [r.run_id for r in s.runs()]
    assert len(runs) >= 2
    got: dict[str, object] = {}
    with s.lock():
        t = threading.Thread(target=lambda: got.setdefault("res", s.update()))
        t.start()
        time.sleep(0.5)  # the update has started, and waits
        assert t.is_alive() and "res" not in got
        s.drop([runs[0]])
    t.join(timeout=60)
    assert runs[0] not in [r.run_id for r in s.runs()]
    assert runs[0] not in s.sql("SELECT DISTINCT run_id FROM daily")["run_id"].to_pylist()
    assert s.verify().ok and not s.status().stale


def test_a_catalog_a_large_delete_left_shorter_than_its_last_page_opens(tmp_path):
    """A large delete frees, before its commit, pages its own transaction took: LMDB
    counts them in the last page number and never writes them, so the data file ends
    before that page. Free, they are never read: the store opens (in a new process),
    verifies and takes more work (QA 2026-12-06: every command refused such a store
    as "cut short", after a `drop --sweep`). The delete is made here as that drop made
    it then: the snapshots of each run and instrument, one after another."""
    from incbt.catalog import runs as rc

    data = tmp_path / "d"
    generate(str(data), instruments=5, days=20, seed=1)
    path = str(tmp_path / "s")
    s = incbt.init(path)
    s.ingest(str(data))
    grid = {"fast": [5, 10, 15, 20, 25], "slow": [50, 100, 150, 200, 250]}
    sw = s.sweep("sma_cross", grid, name="grid1")
    cat = s.catalog

    def delete(txn):
        for rid in sw.run_ids:
            for inst in s.instruments():
                rc.delete_snapshots_from_many(cat, txn, [rid], inst, -(2**31))

    cat.env.write(delete)
    env = cat.env.env
    need = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    mdb = os.path.join(path, "catalog", "data.mdb")
    if os.path.getsize(mdb) >= need:  # LMDB's page use changed: the case is not made
        pytest.skip("the delete left the data file whole")
    incbt_cli = os.path.join(os.path.dirname(sys.executable), "incbt")
    env_vars = {k: v for k, v in os.environ.items() if not k.startswith("INCBT_")}
    env_vars["INCBT_STORE"] = path
    for cmd in (
        ["status"],
        ["drop", "--sweep", "grid1"],
        ["backtest", "sma_cross", "-p", "fast=5", "-p", "slow=50"],
        ["verify"],
    ):
        p = subprocess.run([incbt_cli, *cmd], capture_output=True, text=True, env=env_vars)
        assert p.returncode == 0, (cmd, p.stderr)
    assert os.path.getsize(mdb) >= need


def test_dropping_a_sweep_forgets_its_runs_in_one_pass(tmp_path):
    """Every snapshot, metric and pair of the dropped runs goes, the others' stay (the
    pass over each instrument's keys deletes those of every dropped run at once)."""
    from incbt.catalog import runs as rc

    data = tmp_path / "d"
    generate(str(data), instruments=4, days=12, seed=1)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data))
    gone = s.sweep("sma_cross", {"fast": [3, 4, 5], "slow": [8, 9]}, name="gone")
    kept = s.backtest("sma_cross", {"fast": 2, "slow": 7})
    cat = s.catalog
    with cat.env.read() as txn:
        kept_snaps = [rc.snapshot_days(cat, txn, kept.run_id, i) for i in s.instruments()]
    s.drop(sweep="gone")
    with cat.env.read() as txn:
        for rid in gone.run_ids:
            for inst in s.instruments():
                assert rc.snapshot_days(cat, txn, rid, inst) == []
                assert rc.pair_seq(cat, txn, rid, inst) is None
        assert [rc.snapshot_days(cat, txn, kept.run_id, i) for i in s.instruments()] == kept_snaps
    assert s.verify().ok


def test_a_store_on_a_read_only_file_system_says_so(tmp_path, monkeypatch):
    """LMDB cannot make its lock file there: the message says why and what to do, not
    to restore a backup (QA 2026-12-06)."""
    import lmdb

    from incbt.catalog.env import Env
    from incbt.errors import CatalogError

    def refuse(path, **kw):
        raise lmdb.Error(f"{path}: Read-only file system")

    monkeypatch.setattr(lmdb, "open", refuse)
    with pytest.raises(CatalogError) as e:
        Env(str(tmp_path), 1 << 20)
    msg = str(e.value)
    assert "Read-only file system" in msg and "write access" in msg and "backup" not in msg


def test_a_store_on_read_only_media_reads_and_refuses_writes(tmp_path):
    """A store on a read-only file system (an archive, a shared snapshot): commands that
    read work (LMDB reads it without its lock file), commands that write say why, exit 1,
    and nothing there changes. Needs a read-only bind mount (root): skipped without."""
    from test_cli import run

    src = tmp_path / "src"
    data = tmp_path / "d"
    generate(str(data), instruments=2, days=5, seed=1)
    s = incbt.init(str(src / "st"))
    s.ingest(str(data))
    run_id = s.backtest("sma_cross", {"fast": 3, "slow": 8}).run_id
    mnt = tmp_path / "ro"
    mnt.mkdir()
    ok = subprocess.run(["mount", "--bind", str(src), str(mnt)], capture_output=True)
    if ok.returncode:
        pytest.skip("no bind mount here")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(mnt)]).returncode:
            pytest.skip("no read-only remount here")
        store = mnt / "st"
        before = tree_state(str(store))
        for cmd in (
            ["status"],
            ["log"],
            ["query", "leaderboard"],
            ["verify"],
            ["report", run_id, "-o", str(tmp_path / "r.html")],
            # a dry run writes nothing (QA 2026-12-06: refused as a write)
            ["ingest", "--dry-run", str(data)],
            ["update", "--dry-run", str(data)],
            ["backtest", "sma_cross", "-p", "fast=4", "-p", "slow=8", "--dry-run"],
        ):
            p = run(*cmd, store=store, check=False)
            assert p.returncode == 0, (cmd, p.stderr)
        for cmd in (
            ["backtest", "sma_cross", "-p", "fast=4", "-p", "slow=8"],
            ["gc"],
            ["ingest", str(data)],
            ["drop", run_id],
        ):
            p = run(*cmd, store=store, check=False)
            assert p.returncode == 1 and "read-only file system" in p.stderr, (cmd, p.stderr)
            assert "Traceback" not in p.stderr
        assert tree_state(str(store)) == before
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_the_runs_sql_hides_are_found_from_the_records_bytes_as_from_the_records(tmp_path):
    """``rc.hidden_ids`` decodes only records that are not plainly standing: it names
    the same runs as ``rc.hidden`` over every decoded record, whatever the states."""
    s = incbt.init(str(tmp_path / "s"))
    cat = s.catalog

    def rec(rid, **kw):
        base = dict(
            run_id=rid,
            strategy="sma_cross",
            code_version="v",
            params={"fast": 3, "slow": 20},
            exec_params={"notional": 1e5, "fee_bps": 0.0, "slippage_bps": 0.0},
            start="2024-01-01",
            universe="all",
        )
        return rc.RunRecord(**{**base, **kw})

    weird = {"replacing": 1.0, "dropped_seq": 2.0, "superseded_by": 3.0}  # parameter names
    recs = [
        rec("00" * 8),
        rec("01" * 8, dropped_seq=5),
        rec("02" * 8, superseded_by="03" * 8),
        rec("03" * 8, replacing="02" * 8),  # complete: the run it replaces is gone
        rec("04" * 8, replacing="00" * 8),  # not complete: the run it replaces stands
        rec("05" * 8, replacing="01" * 8, dropped_seq=7),
        rec("06" * 8, params=weird),
        rec("07" * 8, params=weird, dropped_seq=9),
        rec("08" * 8, universe=['a"dropped_seq": 1', "b"]),
    ]
    cat.env.write(lambda txn: [rc.put_run(cat, txn, r) for r in recs])
    with cat.env.read() as txn:
        got = rc.hidden_ids(cat, txn)
        assert got == rc.hidden(rc.runs(cat, txn))
    assert got == {"01" * 8, "02" * 8, "04" * 8, "05" * 8, "07" * 8}
