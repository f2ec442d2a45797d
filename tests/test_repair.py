"""``incbt repair``: results files missing or damaged outside incbt are recomputed from
the bars, to what an untouched store holds; bars files lost are said, not repaired."""

from __future__ import annotations

import os
import re
import shutil

import pytest
from cli_process import run_incbt
from conftest import tree_state
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import incbt
from incbt.bars.generate import generate
from incbt.catalog import runs as rc
from incbt.errors import QueryError

TABLES = {
    "daily": "run_id, instrument, date",
    "fills": "run_id, instrument, ts, qty, price",
    "metrics": "run_id, instrument",
}
GEN = dict(instruments=3, days=6, start="2024-03-04", seed=11)


def results(s: incbt.Store) -> dict:
    return {t: s.sql(f"SELECT * FROM {t} ORDER BY {o}") for t, o in TABLES.items()}


def result_files(s: incbt.Store) -> list[str]:
    with s.catalog.env.read() as txn:
        return [r[k] for _, r in rc.batches(s.catalog, txn) for k in ("daily", "fills")]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("repair-data")
    return generate(str(root / "d"), **GEN)  # a file a day


def history(path: str, days: list[str]) -> incbt.Store:
    """Batches of several kinds: a backtest, a sweep, daily updates (with compactions)."""
    s = incbt.init(path)
    s.ingest(days[:3])
    s.backtest("sma_cross", [{"fast": 3, "slow": 12}])
    s.sweep("sma_cross", {"fast": [2, 4], "slow": [10, 15]}, name="g")
    for d in days[3:]:
        s.update([d])
    s.backtest("sma_cross", [{"fast": 5, "slow": 20}], fee_bps=2.0)
    return s


@pytest.fixture(scope="module")
def built(tmp_path_factory, data):
    """A store and its results (made once; each test works on a copy)."""
    path = str(tmp_path_factory.mktemp("repair-store") / "s")
    s = history(path, data)
    return path, results(s)


def copy(built, tmp_path) -> incbt.Store:
    dst = str(tmp_path / "s")
    shutil.copytree(built[0], dst)
    return incbt.open(dst)


def same(a: dict, b: dict) -> None:
    for t in TABLES:
        assert a[t].num_rows and a[t].equals(b[t]), t


def killed_after_forgetting(s: incbt.Store, monkeypatch) -> None:
    """A repair stopped (as Ctrl-C) once it committed its forgetting, before computing."""
    import incbt.runs as runs

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "bring_up_to_date", killed)
    with pytest.raises(KeyboardInterrupt):
        s.repair()
    monkeypatch.undo()


def test_a_missing_results_file_is_recomputed_to_the_untouched_results(built, tmp_path):
    s = copy(built, tmp_path)
    lost = result_files(s)[0]
    os.remove(os.path.join(s.path, lost))
    assert lost in s.status().missing_files
    with pytest.raises(QueryError, match="missing.*incbt repair"):
        s.sql("SELECT count(*) FROM daily")
    # a query of fills alone reads no daily file: it fails only where a fills file is lost
    want = built[1]["fills"]
    if "daily" in lost:
        assert s.sql(f"SELECT * FROM fills ORDER BY {TABLES['fills']}").equals(want)
    said = repr(s.status())
    assert "incbt repair" in said and "all up to date" not in said  # QA 2026-12-07
    assert "run(s): nothing to compute" in said
    before = tree_state(s.path)
    plan = s.repair(dry_run=True)
    assert plan.files == [lost] and plan.runs and not plan.ok
    assert tree_state(s.path) == before  # a dry run writes nothing
    r = s.repair()
    assert r.files == [lost] and r.runs == plan.runs and r.report.bars_processed > 0
    # the dry run says the computation too (QA 2026-12-07: in runs alone)
    assert (plan.segments, plan.bar_steps) == (r.report.segments, r.report.bars_processed)
    same(results(s), built[1])
    assert s.status().missing_files == [] and not s.status().stale
    assert s.verify().ok
    # the forgetting, then the computation's commit(s): events of kind repair
    seqs = s.log(kind="repair")["seq"].to_pylist()
    assert min(seqs) == r.seq and len(seqs) >= 2
    again = s.repair()
    assert not again.batches and again.ok and again.seq is None


@pytest.mark.parametrize("damage", ["truncated", "garbage", "footer kept"])
def test_a_damaged_results_file_is_recomputed(built, tmp_path, damage):
    s = copy(built, tmp_path)
    lost = [f for f in result_files(s) if "fills" in f][-1]
    p = os.path.join(s.path, lost)
    with open(p, "rb") as f:
        raw = f.read()
    if damage == "truncated":
        raw = raw[: len(raw) // 2]
    elif damage == "garbage":
        raw = b"\0" * len(raw)
    else:  # the middle overwritten, the footer (and its magic bytes) intact
        raw = raw[:4] + b"\xff" * (len(raw) // 2) + raw[4 + len(raw) // 2 :]
    with open(p, "wb") as f:
        f.write(raw)
    r = s.repair()
    assert r.files == [lost] and r.runs
    same(results(s), built[1])


def test_a_repair_killed_after_its_commit_is_finished_by_update(built, tmp_path, monkeypatch):
    """The batch forgotten and committed, the runs not computed yet: ``update`` computes
    them (and ``status`` says they are stale meanwhile)."""
    s = copy(built, tmp_path)
    os.remove(os.path.join(s.path, result_files(s)[1]))

    killed_after_forgetting(s, monkeypatch)
    assert s.status().missing_files == [] and s.status().stale
    s.update()
    same(results(s), built[1])


def test_a_lost_bars_file_is_said_not_repaired(built, data, tmp_path):
    """Nothing is forgotten; the advice given (the same as ``status``'s and ``verify
    --bars``'s) mends the store: the original data ingested with --rewrite, an update."""
    s = copy(built, tmp_path)
    with s.catalog.env.read() as txn:
        bars = s.catalog.current_files(txn)[0].path
    os.remove(os.path.join(s.path, bars))
    before = tree_state(s.path)
    r = s.repair()
    assert r.bars_files == [bars] and not r.batches and not r.ok
    assert tree_state(s.path) == before
    p = run_incbt(["--store", s.path, "repair"])
    assert p.returncode == 1
    assert bars in p.stderr and "Traceback" not in p.stderr
    assert "`incbt ingest --rewrite FILE...`" in p.stderr and "incbt update" in p.stderr
    s.ingest(data, rewrite=True)
    s.update()
    assert s.verify_bars().ok and not s.status().missing_files
    same(results(s), built[1])


def test_the_cli_says_what_it_repairs(built, tmp_path):
    s = copy(built, tmp_path)
    lost = result_files(s)[0]
    os.remove(os.path.join(s.path, lost))
    p = run_incbt(["--store", s.path, "status"])
    assert p.returncode == 1 and "all up to date" not in p.stdout + p.stderr  # QA 2026-12-07
    assert "run(s): nothing to compute" in p.stdout, p.stdout
    for dry in (["--dry-run"], []):  # as status says it (QA 2026-12-07: "all up to date")
        p = run_incbt(["--store", s.path, "update", *dry])
        assert p.returncode == 1 and "nothing to compute" in p.stdout, (p.stdout, p.stderr)
        assert f"missing (e.g. {lost})" in p.stderr and "incbt repair" in p.stderr, p.stderr
    assert s.update().missing_files == [lost]
    p = run_incbt(["--store", s.path, "repair", "--dry-run"])
    assert p.returncode == 0 and "would forget 1 results batch" in p.stdout and lost in p.stdout
    assert re.search(r"again from scratch \([\d,]+ segment\(s\), [\d,]+ bar-steps\)", p.stdout)
    p = run_incbt(["--store", s.path, "repair"])
    assert p.returncode == 0, p.stderr
    assert "forgot 1 results batch" in p.stdout and "again" in p.stdout
    p = run_incbt(["--store", s.path, "repair"])
    assert p.returncode == 0 and "nothing to repair" in p.stdout


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(picks=st.lists(st.integers(0, 1000), min_size=1, max_size=4, unique=True))
def test_any_results_files_lost_are_recomputed(built, tmp_path_factory, picks):
    """Whichever results files go (several batches, both files of one), a repair gives
    the untouched store's results."""
    s = copy(built, tmp_path_factory.mktemp("any"))
    files = result_files(s)
    for k in picks:
        with_path = os.path.join(s.path, files[k % len(files)])
        if os.path.exists(with_path):
            os.remove(with_path)
    s.repair()
    same(results(s), built[1])
    assert s.repair().batches == []


def test_a_repair_cut_short_is_finished_by_the_next_repair(built, tmp_path, monkeypatch):
    """QA 2026-12-06: killed after its forgetting, the next repair said "nothing to
    repair" (the lost batch no longer named its runs) and the results stayed short."""
    s = copy(built, tmp_path)
    os.remove(os.path.join(s.path, result_files(s)[0]))
    first = s.repair(dry_run=True).runs

    killed_after_forgetting(s, monkeypatch)
    plan = s.repair(dry_run=True)
    assert not plan.batches and plan.unfinished == first and not plan.ok
    assert "earlier repair" in repr(plan)
    r = s.repair()
    assert r.unfinished == first and r.report.bars_processed > 0
    same(results(s), built[1])
    assert s.repair().runs == []  # finished: nothing left
    msgs = list(s.log(kind="repair")["message"].to_pylist())
    assert msgs and all(msgs) and any("forgot results batch" in m for m in msgs)


def test_a_repair_that_could_not_compute_forgets_nothing(built, tmp_path):
    """QA 2026-12-06: with a bars file lost too, or a run's strategy file gone, the
    results were forgotten, then the computation stopped: the store was worse off."""
    s = copy(built, tmp_path)
    os.remove(os.path.join(s.path, result_files(s)[0]))
    with s.catalog.env.read() as txn:
        bars = s.catalog.current_files(txn)[0].path
    kept = tmp_path / "kept.parquet"
    shutil.move(os.path.join(s.path, bars), kept)
    before = tree_state(s.path)
    r = s.repair()
    assert r.blocked and r.batches and r.bars_files == [bars] and not r.ok
    assert "nothing repaired" in repr(r)
    assert tree_state(s.path) == before
    shutil.move(kept, os.path.join(s.path, bars))  # restored: now it repairs
    s.repair()
    same(results(s), built[1])


def test_a_repair_whose_strategy_file_is_gone_forgets_nothing(tmp_path, data):
    f = tmp_path / "mine.py"
    f.write_text(
        "import incbt\n\n"
        "@incbt.strategy(params={'n': incbt.Param(int, default=3, min=1)}, state=('seen',),\n"
        "                warmup=lambda p: p['n'], reads=('close',))\n"
        "def mom(p, s, o, h, l, c, v, i):\n"
        "    n = int(p[0])\n"
        "    s[0] += 1\n"
        "    if s[0] <= n:\n"
        "        return 0\n"
        "    return 1 if c[i] > c[i - n] else -1\n"
    )
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(data[:3])
    s.backtest("mom", {"n": 3}, strategies_file=str(f))
    os.remove(os.path.join(s.path, result_files(s)[0]))
    f.rename(tmp_path / "elsewhere.py")
    before = tree_state(s.path)
    said = "repair would compute run .*put it back.*nothing was forgotten"
    with pytest.raises(incbt.StoreError, match=said):
        s.repair()
    assert tree_state(s.path) == before


def test_status_finds_a_results_footer_damaged_under_its_magic_bytes(built, tmp_path):
    s = copy(built, tmp_path)
    rel = result_files(s)[0]
    p = os.path.join(s.path, rel)
    size = os.path.getsize(p)
    with open(p, "r+b") as fh:  # the footer's bytes zeroed, its last 4 ("PAR1") kept
        fh.seek(size - 200)
        fh.write(b"\0" * 100)
    assert rel in s.status().damaged_files


def test_verify_says_a_time_changed_past_datetimes_range(built, tmp_path):
    """QA 2026-12-06: `incbt verify` exited 3 (ValueError) on a fills file whose ts a
    disk had changed, still readable by Arrow."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    s = copy(built, tmp_path)
    rel = [f for f in result_files(s) if "fills" in f][0]
    p = os.path.join(s.path, rel)
    t = pq.read_table(p)
    k = t.schema.get_field_index("ts")
    ts = t.column("ts").combine_chunks().view(pa.int64()).to_pylist()
    ts[0] = 2**62
    t = t.set_column(k, "ts", pa.array(ts, pa.int64()).view(t.schema.field("ts").type))
    pq.write_table(t, p)
    rep = s.verify()
    assert not rep.ok and rep.differences
    r = run_incbt(["--store", s.path, "verify"])
    assert r.returncode == 1 and "differs:" in r.stderr and "Traceback" not in r.stderr, r.stderr
