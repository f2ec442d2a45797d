"""``incbt repair``: results files missing or damaged outside incbt are recomputed from
the bars, to what an untouched store holds; bars files lost are said, not repaired."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
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


def test_a_missing_results_file_is_recomputed_to_the_untouched_results(built, tmp_path):
    s = copy(built, tmp_path)
    lost = result_files(s)[0]
    os.remove(os.path.join(s.path, lost))
    assert lost in s.status().missing_files
    with pytest.raises(QueryError, match="missing.*incbt repair"):
        s.sql("SELECT count(*) FROM daily")
    assert "incbt repair" in repr(s.status())
    before = tree_state(s.path)
    plan = s.repair(dry_run=True)
    assert plan.files == [lost] and plan.runs and not plan.ok
    assert tree_state(s.path) == before  # a dry run writes nothing
    r = s.repair()
    assert r.files == [lost] and r.runs == plan.runs and r.report.bars_processed > 0
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
    import incbt.runs as runs

    s = copy(built, tmp_path)
    os.remove(os.path.join(s.path, result_files(s)[1]))

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "bring_up_to_date", killed)
    with pytest.raises(KeyboardInterrupt):
        s.repair()
    monkeypatch.undo()
    assert s.status().missing_files == [] and s.status().stale
    s.update()
    same(results(s), built[1])


def test_a_lost_bars_file_is_said_not_repaired(built, tmp_path):
    s = copy(built, tmp_path)
    with s.catalog.env.read() as txn:
        bars = s.catalog.current_files(txn)[0].path
    os.remove(os.path.join(s.path, bars))
    before = tree_state(s.path)
    r = s.repair()
    assert r.bars_files == [bars] and not r.batches and not r.ok
    assert tree_state(s.path) == before
    exe = os.path.join(os.path.dirname(sys.executable), "incbt")
    p = subprocess.run([exe, "--store", s.path, "repair"], capture_output=True, text=True)
    assert p.returncode == 1
    assert bars in p.stderr and "ingest the data" in p.stderr and "Traceback" not in p.stderr


def test_the_cli_says_what_it_repairs(built, tmp_path):
    s = copy(built, tmp_path)
    lost = result_files(s)[0]
    os.remove(os.path.join(s.path, lost))
    exe = os.path.join(os.path.dirname(sys.executable), "incbt")
    p = subprocess.run([exe, "--store", s.path, "repair", "--dry-run"], capture_output=True,
                       text=True)
    assert p.returncode == 0 and "would forget 1 results batch" in p.stdout and lost in p.stdout
    p = subprocess.run([exe, "--store", s.path, "repair"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "forgot 1 results batch" in p.stdout and "again" in p.stdout
    p = subprocess.run([exe, "--store", s.path, "repair"], capture_output=True, text=True)
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
