"""update, status, verify: exactly the invalid work, reasons, and a bit-for-bit proof."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from cli_process import run_incbt
from conftest import MOM, bits
from spikes import SPIKE, write_spiked

import incbt
from incbt.bars.generate import generate

DAILY = "SELECT * FROM daily ORDER BY run_id, instrument, date"
FILLS = "SELECT * FROM fills ORDER BY run_id, instrument, ts"
METRICS = "SELECT * FROM metrics ORDER BY run_id, scope, instrument"
STRATS = MOM


@pytest.fixture
def world(tmp_path):
    g = dict(instruments=3, days=8, start="2024-03-04", seed=31)
    generate(str(tmp_path / "head"), **g, to_day="2024-03-08")
    generate(str(tmp_path / "tail"), **g, from_day="2024-03-11")
    generate(str(tmp_path / "all"), **g)
    generate(str(tmp_path / "fix"), **g, from_day="2024-03-06", to_day="2024-03-06",
             revise=["2024-03-06"])
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "head"))
    s.backtest("sma_cross", [{"fast": 4, "slow": 30}, {"fast": 8, "slow": 30}], fee_bps=1)
    s.backtest("bollinger", {"window": 40, "k": 2.0})
    return tmp_path, s


def _fresh(tmp_path, *paths):
    f = incbt.init(str(tmp_path / "fresh"))
    for p in paths:
        f.ingest(str(p))
    f.backtest("sma_cross", [{"fast": 4, "slow": 30}, {"fast": 8, "slow": 30}], fee_bps=1)
    f.backtest("bollinger", {"window": 40, "k": 2.0})
    return f


def test_update_ingests_and_computes_only_new_days(world):
    tmp, s = world
    res = s.update(str(tmp / "tail"))
    assert res.ingest.days_new == 9
    assert res.report.bars_processed == 3 * 3 * 3 * 390  # 3 runs x 3 instruments x 3 days
    assert s.update().report.bars_processed == 0  # nothing left
    f = _fresh(tmp, tmp / "all")
    for q in (DAILY, FILLS, METRICS):
        assert bits(s.sql(q)).equals(bits(f.sql(q))), q


def test_status_says_what_is_stale_and_why(world):
    tmp, s = world
    s.ingest(str(tmp / "tail"))
    s.ingest(str(tmp / "fix"))
    st = s.status()
    assert st.report.bars_processed == 3 * 3 * 6 * 390  # 03-06 (corrected) to 03-13: 6 days
    reasons = {r.reason for r in st.stale}
    assert reasons == {"event 6 changed 2024-03-06"}
    assert {r.from_day for r in st.stale} == {"2024-03-06"}
    assert len(st.stale) == 9
    dry = s.update(dry_run=True)
    assert dry.report.bars_processed == st.report.bars_processed
    assert s.sql("SELECT count(*) n FROM events WHERE kind = 'update'")["n"][0].as_py() == 0
    s.update()
    assert not s.status().stale
    files = sorted(os.listdir(tmp / "all"))
    f = _fresh(tmp, *[tmp / "all" / x for x in files if x != "bars-2024-03-06.csv"],
               tmp / "fix")
    for q in (DAILY, FILLS, METRICS):
        assert bits(s.sql(q)).equals(bits(f.sql(q))), q


def test_verify_passes_then_catches_a_tampered_result(world):
    tmp, s = world
    s.update(str(tmp / "tail"))
    rep = s.verify()
    assert rep.ok and rep.runs == 3 and rep.rows_compared > 0
    path = s.sql("SELECT path FROM files LIMIT 1")  # any file: find the daily batch files
    del path
    daily_dir = os.path.join(s.path, "results", "daily")
    target = os.path.join(daily_dir, sorted(os.listdir(daily_dir))[-1])
    t = pq.read_table(target)
    pnl = t.column("pnl").to_numpy().copy()
    pnl[3] += 1e-9
    pq.write_table(t.set_column(t.schema.get_field_index("pnl"), "pnl",
                                __import__("pyarrow").array(pnl)), target)
    bad = s.verify()
    assert not bad.ok
    d = bad.differences[0]
    assert d.table == "daily" and d.column == "pnl"
    p = run_incbt(["--store", s.path, "verify"])
    assert p.returncode == 1 and "differs" in p.stderr and "pnl" in p.stderr


def test_verify_does_not_compare_runs_an_update_would_compute(world):
    """New bars not yet absorbed: the runs are stale, not wrong; verify says so (not ok,
    no difference) and names the fix; after the update it proves them."""
    tmp, s = world
    s.ingest(str(tmp / "tail"))
    rep = s.verify()
    assert not rep.ok and not rep.differences and len(rep.stale) == 3 and rep.runs == 0
    # reprs a notebook prints: a line each, not every task, state and changed day
    assert "3 run(s) not up to date" in repr(rep) and "\n" not in repr(rep)
    for obj in (s.status(), s.status().report, s.status().report.plan,
                s.ingest(str(tmp / "tail"), dry_run=True)):
        assert len(repr(obj)) < 400 and "\n" not in repr(obj), repr(obj)[:1000]
    p = run_incbt(["--store", s.path, "verify"])
    assert p.returncode == 1 and "differs" not in p.stderr, p.stderr
    assert "not verified: 3 run(s) are not up to date" in p.stderr
    assert "Fix: run `incbt update` (or the sweep with --resume), then verify" in p.stderr
    one = s.sql("SELECT min(run_id) r FROM runs")["r"][0].as_py()
    s.update()
    assert s.verify().ok and s.verify([one]).runs == 1


def test_verify_during_a_write_says_so_instead_of_differs(world, monkeypatch):
    """Found by QA 2026-12-08: `incbt verify` looping beside writers (an `ingest` of a
    correction, an `update`) exited 1 with "differs: run ... equity stored X, recomputed
    Y" and blamed the bars on disk: it had checked which runs were stale, then a writer
    committed, and it recomputed over the new bars and compared with results of the
    old. A store written while verify ran is said so (not ok, no difference); verify
    again once the write is done proves it."""
    from incbt import update as update_mod

    tmp, s = world
    real = update_mod._not_up_to_date

    def then_a_correction_commits(store, records):
        out = real(store, records)
        incbt.open(store.path).ingest(str(tmp / "fix"))  # another writer, right then
        return out

    monkeypatch.setattr(update_mod, "_not_up_to_date", then_a_correction_commits)
    rep = s.verify()
    assert not rep.ok and not rep.differences, rep.differences[:1]
    assert rep.written_during and "written while verify ran" in repr(rep)
    monkeypatch.setattr(update_mod, "_not_up_to_date", real)
    rep = s.verify()  # the runs are stale now, not wrong
    assert not rep.ok and not rep.differences and len(rep.stale) == 3
    s.update()
    assert s.verify().ok


def test_verify_cli_during_a_write_says_so(world):
    """The same through the CLI's words: not "differs", and not the bars blamed."""
    tmp, s = world
    child = (
        "import sys, incbt\n"
        "from incbt import update as u\n"
        "real, fix = u._not_up_to_date, sys.argv[2]\n"
        "def hook(store, records):\n"
        "    out = real(store, records)\n"
        "    incbt.open(store.path).ingest(fix)\n"
        "    return out\n"
        "u._not_up_to_date = hook\n"
        "sys.argv = ['incbt', '--store', sys.argv[1], 'verify']\n"
        "from incbt._entry import main\n"
        "main()\n"
    )
    r = subprocess.run([sys.executable, "-c", child, s.path, str(tmp / "fix")],
                       capture_output=True, text=True, timeout=300)
    said = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 1, said
    assert "differs" not in said and "verify --bars" not in said, said
    assert "the store was written while verify ran" in said, said


def _tamper_fill(s, run_id: str, column: str, which: int, change, newest: bool = False) -> None:
    """Change ``column`` of one fill of a run (its ``which``-th in the first file holding
    any, or the newest: the one a compaction wrote) in the stored result file, behind
    the catalog's back."""
    import pyarrow as pa

    fills_dir = os.path.join(s.path, "results", "fills")
    for name in sorted(os.listdir(fills_dir), reverse=newest):
        path = os.path.join(fills_dir, name)
        t = pq.read_table(path)
        rows = np.flatnonzero(t.column("run_id").to_numpy(zero_copy_only=False) == run_id)
        if len(rows):
            vals = t.column(column).to_numpy().copy()
            vals[rows[which]] = change(vals[rows[which]])
            i = t.schema.get_field_index(column)
            pq.write_table(t.set_column(i, column, pa.array(vals)), path)
            return
    pytest.fail(f"no fill of run {run_id} in any file")


@pytest.mark.parametrize("chunk", [10**12, 1])  # every run in one chunk, or one per chunk
def test_verify_names_the_run_a_tampered_fill_belongs_to(world, monkeypatch, chunk):
    from incbt import update as update_mod

    monkeypatch.setattr(update_mod, "VERIFY_BAR_STEPS", chunk)
    tmp, s = world
    s.update(str(tmp / "tail"))
    runs = s.sql("SELECT run_id FROM runs ORDER BY run_id")["run_id"].to_pylist()
    assert len(runs) == 3 and s.verify().ok
    victim = runs[1]
    _tamper_fill(s, victim, "qty", -1, lambda q: 2 * q)
    bad = s.verify()
    assert not bad.ok and bad.runs == 3
    assert [(d.run_id, d.table, d.column) for d in bad.differences] == [(victim, "fills", "qty")]
    assert bad.differences[0].stored == 2 * bad.differences[0].recomputed


def test_verify_splits_an_instrument_too_big_for_a_chunk_by_its_runs(world, monkeypatch):
    """Chunks of whole instruments while they fit, an instrument too big alone by runs:
    every (run, instrument) once, each run's instruments in name order, a split chunk
    compared for its own runs; the same verdict and rows, and a tampered fill found."""
    from incbt import update as update_mod
    from incbt.runs import plan_runs
    from incbt.update import active_runs

    tmp, s = world
    s.sweep("sma_cross", {"fast": [3, 5, 7, 9], "slow": [30, 40]}, name="grid")
    full = s.verify()
    assert full.ok and full.runs == 11
    plan = plan_runs(s, [r for r in active_runs(s) if not r.fork], from_scratch=True)
    ids = sorted({r for t in plan.tasks for r in t.run_ids})
    per_inst = {}
    for t in plan.tasks:
        per_inst[t.instrument] = per_inst.get(t.instrument, 0) + t.work
    one = max(per_inst.values())
    for limit in (1, one // 3, one - 1, one, 2 * one + 1, 10**12):
        monkeypatch.setattr(update_mod, "VERIFY_BAR_STEPS", limit)
        chunks = update_mod._instrument_chunks(plan, ids)
        pairs = [(r, t.instrument) for c, _ in chunks for t in c.tasks for r in t.run_ids]
        assert sorted(pairs) == sorted((r, t.instrument) for t in plan.tasks for r in t.run_ids)
        for rid in ids:  # a run's instruments arrive in name order
            seen = [i for r, i in pairs if r == rid]
            assert seen == sorted(seen)
        for c, runs in chunks:
            insts = {t.instrument for t in c.tasks}
            if runs != ids:  # split: one instrument, compared for exactly its runs
                assert len(insts) == 1 and runs == sorted({r for t in c.tasks for r in t.run_ids})
            if len(c.tasks) > 1:  # several tasks only when they fit together
                assert sum(t.work for t in c.tasks) <= limit
        split = sum(runs != ids for _, runs in chunks)
        assert (split > 0) == (limit < one)
        rep = s.verify()
        assert rep.ok and rep.rows_compared == full.rows_compared
        assert rep.bars_processed == full.bars_processed
    monkeypatch.setattr(update_mod, "VERIFY_BAR_STEPS", one // 3)
    victim = ids[len(ids) // 2]
    _tamper_fill(s, victim, "price", 0, lambda p: p + 0.5)
    bad = s.verify()
    assert [(d.run_id, d.table, d.column) for d in bad.differences] == [(victim, "fills", "price")]


def test_verify_compares_floats_by_their_bits(world):
    """0.0 and -0.0 are equal floats but not the same bits: a stored -0.0 where the
    recomputation gives 0.0 is a difference."""
    import pyarrow as pa

    tmp, s = world
    assert s.verify().ok
    daily_dir = os.path.join(s.path, "results", "daily")
    for name in sorted(os.listdir(daily_dir)):
        path = os.path.join(daily_dir, name)
        t = pq.read_table(path)
        fees = t.column("fees").to_numpy().copy()
        zero = np.flatnonzero(fees == 0.0)
        if len(zero):
            fees[zero[0]] = -0.0
            pq.write_table(t.set_column(t.schema.get_field_index("fees"), "fees",
                                        pa.array(fees)), path)
            break
    else:
        pytest.fail("no zero fee in any daily file")
    bad = s.verify()
    assert [(d.table, d.column) for d in bad.differences] == [("daily", "fees")]
    d = bad.differences[0]
    assert np.signbit(d.stored) and d.recomputed == 0.0 and not np.signbit(d.recomputed)


def _mom_run(tmp_path):
    """A store of 2 instruments x 4 days, a strategies file and one run of its ``mom``."""
    generate(str(tmp_path / "d"), instruments=2, days=4, start="2024-03-04", seed=5)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    f = tmp_path / "strats.py"
    f.write_text(STRATS.replace("{SHORT}", "-1"))
    return s, f, s.backtest("mom", {"n": 12}, strategies_file=str(f))


def test_a_changed_strategy_replaces_its_runs(tmp_path):
    s, f, old = _mom_run(tmp_path)
    f.write_text(STRATS.replace("{SHORT}", "0"))  # the researcher edits the step
    st = s.status()
    assert [r.reason for r in st.stale][0].startswith("strategy code changed")
    assert s.sql("SELECT count(*) n FROM daily WHERE run_id = $r",
                 params={"r": old.run_id})["n"][0].as_py() == 8  # still visible
    # stale names the run holding the results, and the run replacing it (QA 2026-12-06:
    # the new id, which no table held yet)
    (_, coming), = st.replaced
    assert {(r.run_id, r.replaced_by) for r in st.stale} == {(old.run_id, coming)}
    assert s.sql("SELECT DISTINCT s.run_id, r.superseded_by FROM stale s JOIN runs r "
                 "USING (run_id)").to_pylist() == [{"run_id": old.run_id, "superseded_by": None}]
    res = s.update()
    (old_id, new_id), = res.replaced
    assert new_id == coming
    assert old_id == old.run_id and new_id != old_id
    runs = s.sql("SELECT run_id, superseded_by FROM runs ORDER BY created_seq").to_pylist()
    assert runs == [{"run_id": old_id, "superseded_by": new_id},
                    {"run_id": new_id, "superseded_by": None}]
    assert s.sql("SELECT DISTINCT run_id FROM daily")["run_id"].to_pylist() == [new_id]
    assert s.sql("SELECT DISTINCT run_id FROM metrics")["run_id"].to_pylist() == [new_id]
    # the Run held from before says where its results are (QA 2026-12-06: None), and a
    # read of its tables warns (QA 2026-12-06: its .portfolio was {} without a word)
    for table in ("daily", "fills", "metrics", "portfolio", "equity"):
        with pytest.warns(incbt.RunReplacedWarning, match=f"store.run\\('{new_id}'\\) holds") as w:
            got = getattr(old, table)
        assert not (got.num_rows if hasattr(got, "num_rows") else got), table
        # at the user's line (QA 2026-12-06: incbt's runs.py)
        assert {x.filename for x in w} == {__file__}, (table, [x.filename for x in w])
    assert f"store.run('{new_id}')" in old.why_empty()
    assert s.run(new_id).why_empty() is None
    again = s.backtest("mom", {"n": 12}, strategies_file=str(f))
    assert again.run_id == new_id and again.report.bars_processed == 0
    assert s.verify().ok


def test_a_parameter_renamed_or_added_in_the_code(tmp_path):
    """Found by QA 2026-12-05: a parameter renamed (or removed, or its range narrowed)
    made status and update fail for the whole store, after the update's ingest; one
    added with a default gave a replacement without it, and a backtest of the new code
    with the same values made a second run. Now the run that no longer fits is said as
    one that cannot be recomputed, the others are brought up to date, and the
    replacement carries the new parameter's default."""
    s, f, old = _mom_run(tmp_path)
    other = s.backtest("sma_cross", {"fast": 3, "slow": 10})
    f.write_text(STRATS.replace("{SHORT}", "-1").replace('"n"', '"lookback"')
                 .replace('p["n"]', 'p["lookback"]'))
    st = s.status()
    assert any(old.run_id in b and "do not fit strategy 'mom'" in b and "incbt drop" in b
               for b in st.broken), st.broken
    # verify says it as status does: that run cannot be recomputed (it was said stale)
    v = s.verify()
    assert old.run_id not in v.stale and any(
        old.run_id in b and "do not fit strategy 'mom'" in b for b in v.broken), v
    generate(str(tmp_path / "new"), instruments=2, days=1, start="2024-03-08", seed=5)
    with pytest.warns(incbt.StrategyFailureWarning, match="no longer takes their parameters"):
        res = s.update(str(tmp_path / "new"))
    assert res.broken and res.report.bars_processed > 0
    assert s.run(other.run_id).daily.num_rows == 2 * 5  # brought up to date
    # a parameter added with a default: the replacement is the run a backtest makes
    f.write_text(STRATS.replace("{SHORT}", "-1").replace(
        '"n": incbt.Param(int, default=10, min=2)',
        '"n": incbt.Param(int, default=10, min=2), "thr": incbt.Param(float, default=0.0)'))
    (was, now), = s.update().replaced
    assert was == old.run_id and s.run(now).record.params == {"n": 12, "thr": 0.0}
    again = s.backtest("mom", {"n": 12}, strategies_file=str(f))
    assert again.run_id == now and again.report.bars_processed == 0
    assert s.verify().ok


def test_a_changed_strategy_whose_new_run_exists_already_is_replaced_once(tmp_path):
    """The researcher edits the step and runs the new code before any update: the update
    marks the old run superseded by that run (it said so at every update, and did not)."""
    s, f, old = _mom_run(tmp_path)
    f.write_text(STRATS.replace("{SHORT}", "0"))
    new = s.backtest("mom", {"n": 12}, strategies_file=str(f))
    assert new.run_id != old.run_id and new.report.bars_processed > 0
    res = s.update()
    assert res.replaced == [(old.run_id, new.run_id)] and res.report.bars_processed == 0
    runs = s.sql("SELECT run_id, superseded_by FROM runs ORDER BY created_seq").to_pylist()
    assert runs == [{"run_id": old.run_id, "superseded_by": new.run_id},
                    {"run_id": new.run_id, "superseded_by": None}]
    assert s.update().replaced == [] and not s.status().stale
    assert s.verify().ok
    msgs = s.log(kind="update").column("message").to_pylist()
    assert msgs[-1].endswith("1 run(s) replaced (strategy code changed)"), msgs


def _tables(s) -> dict[str, pa.Table]:
    return {q: s.sql(q) for q in (DAILY, FILLS, METRICS)}


def test_a_fork_follows_its_base_through_a_code_change_and_a_revert_brings_both_back(
    tmp_path,
):
    """Found 2026-12-05: (1) a fork of a run whose strategy's code changed followed the
    base of the old code, and every update failed on that code ("not the code its runs
    were registered with"); (2) reverting the code (A, B, then A again) made each run
    of A replaced by the run of B replaced by it: every result hidden for good, and
    status said all was up to date. Now the fork is replaced by a fork of the base's
    replacement, and a revert brings back the runs of A, computed from scratch, to the
    results they had, bit for bit."""
    s, f, base = _mom_run(tmp_path)
    fork = s.backtest(None, {"n": 20}, fork_of=base.run_id, effective="2024-03-07")
    other = s.backtest("mom", {"n": 5}, strategies_file=str(f))
    first = _tables(s)
    f.write_text(MOM.replace("{SHORT}", "0"))  # B
    res = s.update()
    new = dict(res.replaced)
    assert set(new) == {base.run_id, fork.run_id, other.run_id}
    assert s.run(new[fork.run_id]).record.fork["base"] == new[base.run_id]
    assert s.verify().ok and not s.status().stale
    assert s.run(new[fork.run_id]).portfolio != fork.portfolio  # the code of B
    f.write_text(MOM.replace("{SHORT}", "-1"))  # A again
    res = s.update()
    assert dict(res.replaced) == {n: o for o, n in new.items()}
    assert {r.run_id for r in s.runs()} == {base.run_id, fork.run_id, other.run_id}
    assert not s.status().stale and s.verify().ok
    again = _tables(s)
    for q in first:
        assert again[q].equals(first[q]), q
    # the revert met by a backtest before any update: the run of A is back at once
    f.write_text(MOM.replace("{SHORT}", "0"))
    s.update()
    f.write_text(MOM.replace("{SHORT}", "-1"))
    back = s.backtest("mom", {"n": 12}, strategies_file=str(f))
    assert back.run_id == base.run_id and back.portfolio == base.portfolio
    s.update()
    assert _tables(s)[DAILY].equals(first[DAILY]) and s.verify().ok


@pytest.mark.filterwarnings("ignore::incbt.StrategyFailureWarning")  # failing is the point
def test_a_strategy_changed_to_fail_everywhere_still_replaces_its_runs(tmp_path):
    """The researcher's edit makes the step raise on every instrument: the old run's
    results (of the old code) go, the new run holds nothing but its failures, as a
    fresh store running the new code would, and the next update computes nothing."""
    s, f, old = _mom_run(tmp_path)
    broken = STRATS.replace("    if i < n:", "    if i >= 0:\n        raise ValueError('edit')\n"
                            "    if i < n:")
    f.write_text(broken.replace("{SHORT}", "-1"))
    res = s.update()
    (old_id, new_id), = res.replaced
    assert old_id == old.run_id and len(res.report.errors) == 2
    runs = s.sql("SELECT run_id, superseded_by FROM runs ORDER BY created_seq").to_pylist()
    assert runs == [{"run_id": old_id, "superseded_by": new_id},
                    {"run_id": new_id, "superseded_by": None}]
    for table in ("daily", "fills", "metrics"):
        assert s.sql(f"SELECT count(*) AS n FROM {table}")["n"][0].as_py() == 0, table
    failed = s.sql("SELECT run_id, instrument FROM failed ORDER BY instrument").to_pylist()
    assert failed == [{"run_id": new_id, "instrument": i} for i in ("S0000", "S0001")]
    again = s.update()
    assert again.report.bars_processed == 0 and not again.replaced
    assert not s.status().stale and s.verify().ok
    fresh = incbt.init(str(tmp_path / "fresh"))
    fresh.ingest(str(tmp_path / "d"))
    assert fresh.backtest("mom", {"n": 12}, strategies_file=str(f)).run_id == new_id
    for q in (DAILY, FILLS, METRICS):
        assert bits(s.sql(q)).equals(bits(fresh.sql(q))), q


def test_status_says_what_it_would_do_not_what_it_did(world):
    """Its repr read "... in 0.01 s, 0 commit(s)" like work done (QA, 2026-12-05)."""
    tmp, s = world
    assert repr(s.status()) == "<UpdateResult: 3 run(s): all up to date>"
    st = s.update(str(tmp / "tail"), dry_run=True)
    assert "3 run(s): would compute 9 segment(s), " in repr(st) and "commit" not in repr(st)


def test_a_run_whose_strategy_no_longer_loads_is_reported_not_skipped_silently(tmp_path):
    """Its strategies file is gone: update brings the other runs up to date, says it
    cannot recompute that one and exits 1; status lists it as stale and exits 1 (they
    said "all up to date" and exited 0, found 2026-12-05). Back in place, the file's
    run catches up."""
    s, f, mom = _mom_run(tmp_path)
    sma = s.backtest("sma_cross", {"fast": 4, "slow": 30})
    generate(str(tmp_path / "new"), instruments=2, days=5, start="2024-03-04", seed=5,
             from_day="2024-03-08")
    f.rename(tmp_path / "elsewhere.py")

    def run(*a):
        return run_incbt(["--store", s.path, *a])

    p = run("update", str(tmp_path / "new"))
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert f"cannot recompute: run {mom.run_id} (mom): " in p.stderr, p.stderr
    assert "1 run(s) cannot be recomputed" in p.stderr and "runs.source" in p.stderr
    assert "Errno" not in p.stderr, p.stderr  # said in words
    last = "SELECT max(date) AS d FROM daily WHERE run_id = $r"
    assert str(s.sql(last, params={"r": sma.run_id})["d"][0]) == "2024-03-08"
    assert str(s.sql(last, params={"r": mom.run_id})["d"][0]) == "2024-03-07"
    p = run("status")
    assert p.returncode == 1 and "1 run(s) cannot be recomputed" in p.stderr, p.stderr
    assert "up to date" not in p.stdout, p.stdout  # QA 2026-12-06: "all up to date"
    p = run("update", "--dry-run")
    assert "nothing to compute" in p.stdout and "up to date" not in p.stdout, p.stdout
    stale = s.sql("SELECT run_id, instrument, reason FROM stale").to_pylist()
    assert len(stale) == 1 and stale[0]["run_id"] == mom.run_id, stale
    assert stale[0]["reason"].startswith("cannot recompute: ") and stale[0]["instrument"] == ""
    with pytest.warns(incbt.StrategyFailureWarning, match=r"1 run\(s\) cannot be recomputed"):
        res = s.update()
    assert res.broken == [f"run {mom.run_id} (mom): " + stale[0]["reason"][18:]]
    (tmp_path / "elsewhere.py").rename(f)
    p = run("update")
    assert p.returncode == 0 and "cannot" not in p.stderr, (p.stdout, p.stderr)
    assert str(s.sql(last, params={"r": mom.run_id})["d"][0]) == "2024-03-08"
    assert not s.status().stale and s.verify().ok


def test_a_strategy_edited_so_it_does_not_compile_stops_only_its_own_runs(tmp_path):
    """The researcher's edit leaves a name undefined: the step does not compile. Its
    runs cannot be recomputed (said, exit 1); every other run takes the new day (an
    update computed nothing for any run, found 2026-12-05)."""
    s, f, mom = _mom_run(tmp_path)
    sma = s.backtest("sma_cross", {"fast": 4, "slow": 30})
    generate(str(tmp_path / "new"), instruments=2, days=5, start="2024-03-04", seed=5,
             from_day="2024-03-08")
    f.write_text(STRATS.replace("{SHORT}", "undefined_name"))
    p = run_incbt(["--store", s.path, "update", str(tmp_path / "new")])
    err = " ".join(p.stderr.split())
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert (f"cannot recompute: run {mom.run_id} (mom): strategy 'mom': its step does not "
            "compile with Numba (NameError: name 'undefined_name' is not defined)") in err, err
    last = "SELECT max(date) AS d FROM daily WHERE run_id = $r"
    assert str(s.sql(last, params={"r": sma.run_id})["d"][0]) == "2024-03-08"
    assert str(s.sql(last, params={"r": mom.run_id})["d"][0]) == "2024-03-07"


def test_a_strategy_edited_so_it_breaks_the_contract_stops_only_its_own_runs(tmp_path):
    """The edit makes the step count bars with ``i`` (which restarts where a run
    resumes): a backtest of it is refused by the contract check; the update that
    replaces the runs of the old code checks it the same way, and says its runs cannot
    be recomputed (it computed them whole without a word, found 2026-12-05)."""
    s, f, mom = _mom_run(tmp_path)
    sma = s.backtest("sma_cross", {"fast": 4, "slow": 30})
    generate(str(tmp_path / "new"), instruments=2, days=5, start="2024-03-04", seed=5,
             from_day="2024-03-08")
    f.write_text(STRATS.replace("1 if c[i] > c[i - n] else {SHORT}",
                                "1 if (i // 300) % 2 == 0 else -1"))
    with pytest.warns(incbt.StrategyFailureWarning, match=r"1 run\(s\) cannot be recomputed"):
        res = s.update(str(tmp_path / "new"))
    assert res.replaced == [] and len(res.broken) == 1, res.broken
    assert res.broken[0].startswith(f"run {mom.run_id} (mom): its strategy's new code breaks "
                                    "the contract"), res.broken
    assert "gives other results than run whole" in res.broken[0]
    last = "SELECT max(date) AS d FROM daily WHERE run_id = $r"
    assert str(s.sql(last, params={"r": sma.run_id})["d"][0]) == "2024-03-08"
    assert str(s.sql(last, params={"r": mom.run_id})["d"][0]) == "2024-03-07"
    with pytest.raises(incbt.StrategyError, match="gives other results than run whole"):
        s.backtest("mom", {"n": 12}, strategies_file=str(f))
    # verify says it as update does (review 2026-12-05: "not up to date, run update")
    v = s.verify()
    assert mom.run_id not in v.stale and any(
        b.startswith(f"run {mom.run_id} (mom): its strategy's new code breaks the contract")
        for b in v.broken), v


def test_cli_update_status_verify(world):
    tmp, s = world

    def run(*a):
        return run_incbt(["--store", s.path, *a])

    before = s.sql("SELECT count(*) AS n FROM events")["n"][0].as_py()
    p = run("update", str(tmp / "tail"), "--dry-run")
    assert p.returncode == 0 and "would compute 9 segment(s)" in p.stdout, p.stdout
    # the plan by cause: why and from which day (the days are not ingested yet); csv
    # lists each (run, instrument) pair
    assert "(run, instrument) pair(s) by cause" in p.stdout, p.stdout
    assert "new day(s) after" in p.stdout, p.stdout
    pairs = run("update", str(tmp / "tail"), "--dry-run", "--output", "csv")
    rows = [ln for ln in pairs.stdout.splitlines() if "new day(s) after" in ln]
    assert len(rows) == 9 and all(ln.count(",") == 6 for ln in rows), pairs.stdout
    assert s.sql("SELECT count(*) AS n FROM events")["n"][0].as_py() == before
    p = run("update", str(tmp / "tail"))
    assert p.returncode == 0 and "computed 9 segment(s)" in p.stdout, p.stdout
    p = run("status")
    assert "all up to date" in p.stdout
    p = run("verify")
    assert p.returncode == 0 and "identical" in p.stdout


def test_snapshot_retention_across_daily_updates(tmp_path):
    from incbt.catalog import runs as rc

    g = dict(instruments=2, days=30, start="2024-01-15", seed=41)
    generate(str(tmp_path / "all"), **g)
    files = sorted(os.listdir(tmp_path / "all"))
    inc = incbt.init(str(tmp_path / "inc"), snapshot_keep_days=3)
    inc.ingest([str(tmp_path / "all" / f) for f in files[:5]])
    run = inc.backtest("sma_cross", {"fast": 5, "slow": 40})
    for f in files[5:]:  # one day at a time, as the market data arrives
        inc.update(str(tmp_path / "all" / f))
    full = incbt.init(str(tmp_path / "full"), snapshot_keep_days=3)
    full.ingest(str(tmp_path / "all"))
    full.backtest("sma_cross", {"fast": 5, "slow": 40})
    days = [int(d) for d in (np.datetime64(f[5:15], "D").astype(int) for f in files)]
    months = [str(np.datetime64(d, "D"))[:7] for d in days]
    month_ends = {d for i, d in enumerate(days) if i + 1 == len(days) or months[i + 1] !=
                  months[i]}
    # the recent window: the last 3 days and the rest of the 16-day block the oldest is in
    floor = days[-3] - days[-3] % 16
    expect = sorted({d for d in days if d >= floor} | month_ends)
    for st in (inc, full):
        with st.catalog.env.read() as txn:
            for inst in ("S0000", "S0001", ""):  # "" is the portfolio
                assert rc.snapshot_days(st.catalog, txn, run.run_id, inst) == expect, inst
    # a correction older than the window resumes from the month-end before it
    day = files[16][5:15]  # 2024-02-06: Jan 31 is the last snapshot kept before it
    generate(str(tmp_path / "fix"), **g, from_day=day, to_day=day, revise=[day])
    res = inc.update(str(tmp_path / "fix"))
    jan_end = max(d for d in month_ends if d < days[16])
    after = [d for d in days if d > jan_end]
    assert res.report.bars_processed == 2 * len(after) * 390
    full2 = incbt.init(str(tmp_path / "full2"), snapshot_keep_days=3)
    full2.ingest([str(tmp_path / "all" / f) for f in files if f != files[16]])
    full2.ingest(str(tmp_path / "fix"))
    full2.backtest("sma_cross", {"fast": 5, "slow": 40})
    for q in (DAILY, FILLS, METRICS):
        assert bits(inc.sql(q)).equals(bits(full2.sql(q))), q


def test_result_files_stay_bounded_and_equal_to_full(tmp_path):
    from incbt.results.compact import FANOUT, plan_compaction

    assert plan_compaction([(b, 0) for b in range(1, FANOUT)]) is None
    assert plan_compaction([(b, 0) for b in range(1, FANOUT + 1)]) == (
        list(range(1, FANOUT + 1)), 1)
    g = dict(instruments=2, days=40, start="2024-01-15", seed=43)
    generate(str(tmp_path / "all"), **g)
    files = sorted(os.listdir(tmp_path / "all"))
    inc = incbt.init(str(tmp_path / "inc"))
    inc.ingest([str(tmp_path / "all" / f) for f in files[:3]])
    inc.backtest("ema_cross", {"fast": 8, "slow": 50}, fee_bps=1)
    inc.backtest("breakout", {"lookback": 60})
    for i, f in enumerate(files[3:]):
        inc.update(str(tmp_path / "all" / f))
        if i == 20:  # a correction mid-way, older than most batches
            day = files[10][5:15]
            generate(str(tmp_path / "fix"), **g, from_day=day, to_day=day, revise=[day])
            inc.update(str(tmp_path / "fix"))
    n_daily = len(os.listdir(os.path.join(inc.path, "results", "daily")))
    batches = inc.sql("SELECT count(*) n FROM events WHERE kind = 'compact'")["n"][0].as_py()
    assert batches >= 4
    assert n_daily <= 2 * FANOUT + 2, n_daily  # ~40 commits, bounded by the tiers
    full = incbt.init(str(tmp_path / "full"))
    full.ingest([str(tmp_path / "all" / f) for f in files if f != files[10]])
    full.ingest(str(tmp_path / "fix"))
    full.backtest("ema_cross", {"fast": 8, "slow": 50}, fee_bps=1)
    full.backtest("breakout", {"lookback": 60})
    for q in (DAILY, FILLS, METRICS):
        assert bits(inc.sql(q)).equals(bits(full.sql(q))), q
    assert inc.verify().ok


def test_pieces_of_one_command_count_as_one_batch_to_compact():
    """A command committed in pieces adds one batch to compaction's tier, not one per
    piece: committing in smaller pieces does not make compaction rewrite rows sooner."""
    from incbt.results.compact import FANOUT, plan_compaction

    pieces = [(b, 0, 1) for b in range(1, 2 * FANOUT)]  # one command, 2 * FANOUT - 1 pieces
    assert plan_compaction(pieces) is None
    later = [(b, 0) for b in range(2 * FANOUT, 3 * FANOUT - 2)]  # FANOUT - 2 more commands
    assert plan_compaction(pieces + later) is None
    one_more = [(3 * FANOUT - 2, 0)]
    assert plan_compaction(pieces + later + one_more) == (list(range(1, 3 * FANOUT - 1)), 1)


def test_a_big_batch_waits_for_as_many_bytes_of_newer_ones(tmp_path, monkeypatch):
    """Size-tiered: a big group counts at the level its bytes say, so the next FANOUT
    small updates merge among themselves, not with it (measured 2026-12-06: a year's
    sweep of 20 runs, 89 MiB, rewritten by the 7th daily update after it: 2.45 s, 1 GiB
    of memory)."""
    import incbt.results.compact as cm
    from incbt.catalog import runs as rc

    assert [cm.size_level(n) for n in (0, 8 << 20, (64 << 20) - 1, 64 << 20)] == [0, 1, 1, 2]
    g = dict(instruments=3, days=cm.FANOUT + 12, start="2024-01-15", seed=5)
    generate(str(tmp_path / "all"), **g)
    files = sorted(os.listdir(tmp_path / "all"))
    s = incbt.init(str(tmp_path / "s"))
    s.ingest([str(tmp_path / "all" / f) for f in files[:12]])
    s.sweep("sma_cross", {"fast": [3, 5, 7, 9], "slow": [40, 60]}, name="big")
    with s.catalog.env.read() as txn:
        (big,) = [b for b, _ in rc.batches(s.catalog, txn)]
    size = sum(os.path.getsize(os.path.join(s.path, p))
               for p in (os.path.join("results", t, f"{big:010d}.parquet")
                         for t in ("daily", "fills")))
    # the big batch's bytes make level 1; a daily update's stay under a level
    monkeypatch.setattr(cm, "TIER_BYTES", size // cm.FANOUT)
    for f in files[12 : 12 + cm.FANOUT]:
        s.update(str(tmp_path / "all" / f))
    with s.catalog.env.read() as txn:
        recs = dict(rc.batches(s.catalog, txn))
    assert big in recs  # not rewritten
    merged = [b for b, r in recs.items() if r.get("level", 0) == 1]
    assert len(merged) == 1 and len(recs) == 2  # the 8 updates, merged among themselves
    assert s.verify().ok


def test_a_backtest_committed_in_pieces_is_one_group(tmp_path, monkeypatch):
    import incbt.runs
    from incbt.catalog import runs as rc

    generate(str(tmp_path / "d"), instruments=4, days=3, start="2024-01-15", seed=5)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    monkeypatch.setattr(incbt.runs, "DEFAULT_COMMIT_BARS", 1)  # a commit after every task
    n = s.backtest("sma_cross", {"fast": 4, "slow": 30}).report.commits
    with s.catalog.env.read() as txn:
        recs = dict(rc.batches(s.catalog, txn))
    assert len(recs) == n == 4
    assert [r.get("group", b) for b, r in sorted(recs.items())] == [min(recs)] * n
    s.backtest("breakout", {"lookback": 40}, instruments=["S0000"])  # a new group
    with s.catalog.env.read() as txn:
        last, rec = max(rc.batches(s.catalog, txn))
    assert rec.get("group", last) == last


def test_a_compaction_does_not_hide_a_pending_correction(tmp_path):
    from incbt.results.compact import FANOUT

    g = dict(instruments=2, days=FANOUT + 4, start="2024-01-15", seed=47)
    generate(str(tmp_path / "all"), **g)
    files = sorted(os.listdir(tmp_path / "all"))
    s = incbt.init(str(tmp_path / "s"))
    s.ingest([str(tmp_path / "all" / f) for f in files[:3]])
    a = s.backtest("sma_cross", {"fast": 4, "slow": 30})
    for f in files[3:3 + FANOUT - 2]:  # level-0 batches, one short of a compaction
        s.update(str(tmp_path / "all" / f))
    day = files[1][5:15]
    generate(str(tmp_path / "fix"), **g, from_day=day, to_day=day, revise=[day])
    s.ingest(str(tmp_path / "fix"))  # run A is now stale from `day`...
    s.backtest("breakout", {"lookback": 25})  # ...and this commit triggers a compaction
    assert s.sql("SELECT count(*) n FROM events WHERE kind = 'compact'")["n"][0].as_py() >= 1
    stale = {(r.run_id, r.from_day) for r in s.status().stale}
    assert (a.run_id, day) in stale
    s.update([str(tmp_path / "all" / f) for f in files[3 + FANOUT - 2:]])
    assert s.verify().ok


def test_a_universe_grown_by_bars_before_the_start_refolds_the_portfolio(tmp_path):
    """An "all" run's capital is notional x instruments: instruments that arrive with
    bars only before its start compute nothing, yet change the portfolio's returns.
    (Found by Hypothesis: the Sharpe ratio differed from a fresh store in its last bit.)"""
    g = dict(instruments=3, days=5, start="2024-01-01", seed=44)
    generate(str(tmp_path / "all"), **g)
    early = "2024-01-01"  # before the run's start
    generate(str(tmp_path / "early"), **g, from_day=early, to_day=early)
    inc = incbt.init(str(tmp_path / "inc"))
    one = [str(p) for p in sorted((tmp_path / "all").iterdir()) if early not in p.name]
    for p in one:  # the late days of instrument S0000 only
        t = pcsv.read_csv(p)
        pcsv.write_csv(t.filter(pc.equal(t["instrument"], "S0000")), p + ".s0.csv")
    inc.ingest([p + ".s0.csv" for p in one])
    run = inc.backtest("ema_cross", {"fast": 5, "slow": 25}, start="2024-01-02")
    portfolio_before = inc.sql("SELECT * FROM metrics WHERE scope = 'portfolio'")
    dry = inc.update(str(tmp_path / "early"), dry_run=True)  # predicted, not yet ingested
    assert [(r.run_id, r.instrument) for r in dry.stale] == [(run.run_id, "")]
    inc.ingest(str(tmp_path / "early"))  # every instrument's day before the start
    st = inc.status()
    assert [(r.run_id, r.instrument, r.bars) for r in st.stale] == [(run.run_id, "", 0)]
    assert "universe changed size" in st.stale[0].reason
    res = inc.update()
    assert res.report.bars_processed == 0 and res.report.refolds == [run.run_id]
    assert not inc.status().stale
    fresh = incbt.init(str(tmp_path / "fresh"))
    fresh.ingest([str(tmp_path / "early")] + [p + ".s0.csv" for p in one])
    fresh.backtest("ema_cross", {"fast": 5, "slow": 25}, start="2024-01-02")
    for q in (DAILY, FILLS, METRICS):
        assert bits(inc.sql(q)).equals(bits(fresh.sql(q))), q
    assert not inc.sql("SELECT * FROM metrics WHERE scope = 'portfolio'").equals(portfolio_before)
    assert inc.verify([run.run_id]).ok


def test_pair_states_reads_what_pair_seq_and_latest_snapshot_read(world):
    """The planner's bulk read of a run's pairs equals the one-pair reads, for present,
    absent and portfolio pairs, before and after an update."""
    from incbt.catalog import runs as rc

    tmp, s = world
    for step in range(2):
        cat = s.catalog
        with cat.env.read() as txn:
            for rec in rc.runs(cat, txn):
                insts = ["", "S0000", "S0001", "S0002", "NOPE", "S0000x"]
                got = rc.pair_states(cat, txn, rec.run_id, insts)
                for inst, (seq, snap) in zip(insts, got, strict=True):
                    assert seq == rc.pair_seq(cat, txn, rec.run_id, inst)
                    want = rc.latest_snapshot(cat, txn, rec.run_id, inst)
                    if want is None:
                        assert snap is None, inst
                    else:
                        assert snap[0] == want[0] and np.array_equal(snap[1], want[1])
                assert sum(q is not None for q, _ in got) == 3
        if step == 0:
            s.update(str(tmp / "tail"))


def test_only_segments_that_lose_rows_are_cut(world):
    """Daily appends supersede no row (no cutoff: SQL reads their batches unjoined); a
    correction cuts the older segments of its instrument from the corrected day."""
    from incbt.catalog import runs as rc
    from incbt.results import cutoffs

    tmp, s = world
    s.update(str(tmp / "tail"))
    with s.catalog.env.read() as txn:
        assert cutoffs(s.catalog, txn).num_rows == 0
        assert len({seg.batch for seg in rc.segments(s.catalog, txn)}) >= 2
    s.update(str(tmp / "fix"))
    with s.catalog.env.read() as txn:
        cut = cutoffs(s.catalog, txn).to_pylist()
    assert cut and {c["valid_until"].isoformat() for c in cut} == {"2024-03-06"}
    f = _fresh(tmp, tmp / "all", tmp / "fix")
    for q in (DAILY, FILLS, METRICS):
        assert bits(s.sql(q)).equals(bits(f.sql(q))), q


def test_the_cuts_table_lists_what_a_full_scan_finds_and_is_built_for_older_stores(world):
    """SQL's cutoffs read only the pairs in the cuts table; they equal a scan of every
    segment, and a store made before the table gets it built by its next commit."""
    from incbt.catalog import runs as rc
    from incbt.results import cutoffs

    tmp, s = world
    cat = s.catalog
    s.update(str(tmp / "tail"))
    s.update(str(tmp / "fix"))

    def rows():
        with cat.env.read() as txn:
            return sorted(tuple(r.values()) for r in cutoffs(cat, txn).to_pylist())

    def forget(txn):  # what a store made before the cuts table looks like
        txn.delete(rc.CUTS_INDEXED.encode(), db=cat.db["meta"])
        txn.drop(cat.env.db(b"cuts"), delete=False)

    indexed = rows()
    with cat.env.read() as txn:
        assert len(list(rc.cut_pairs(cat, txn))) == 3 * 3  # 3 runs x 3 corrected instruments
    cat.env.write(forget)
    assert rows() == indexed and indexed  # the full scan finds the same cuts
    s.backtest("sma_cross", {"fast": 3, "slow": 20})  # a commit builds the table
    with cat.env.read() as txn:
        assert cat.meta(txn).get(rc.CUTS_INDEXED)
        assert len(list(rc.cut_pairs(cat, txn))) == 3 * 3
    assert rows() == indexed


def _as_format_2(path: str) -> None:
    """Rewrite a store's catalog as format 2 wrote it: snapshots keyed by run first."""
    import lmdb

    from incbt.catalog.env import close_env

    cat_path = os.path.join(path, "catalog")
    close_env(cat_path)
    env = lmdb.open(cat_path, max_dbs=32, map_size=256 << 20)
    snaps, old, meta = (env.open_db(n) for n in (b"snaps", b"snapshots", b"meta"))
    with env.begin(write=True) as txn:
        # format 3: instrument | 0 | day (4) | run id (8); format 2: run id | instrument | 0 | day
        rows = sorted((k[-8:] + k[:-12] + k[-12:-8], v) for k, v in txn.cursor(snaps))
        assert rows
        txn.cursor(old).putmulti(rows)
        txn.drop(snaps, delete=True)
        txn.put(b"format_version", b"2", db=meta)
    env.close()


def test_a_format_2_store_is_upgraded_and_updates_as_one_never_in_format_2(world):
    """Opening a store of catalog format 2 moves its snapshots to format 3's order in one
    transaction: every pair's snapshots read as before, and an update of the upgraded
    store gives the same results, bit for bit, as the same update of the original."""
    import shutil

    from incbt.catalog import FORMAT_VERSION
    from incbt.catalog import runs as rc

    tmp, s = world
    s.update(str(tmp / "fix"))  # a correction: snapshots of some pairs deleted, then put
    with s.catalog.env.read() as txn:
        recs = list(rc.runs(s.catalog, txn))
        pairs = [(r.run_id, i) for r in recs for i in ["", *s.catalog.instruments(txn)]]
        days = {p: rc.snapshot_days(s.catalog, txn, *p) for p in pairs}
        latest = {p: rc.latest_snapshot(s.catalog, txn, *p) for p in pairs}
        before = {p: rc.latest_snapshot(s.catalog, txn, *p, d[-1]) for p, d in days.items()}
        n = rc.count_snapshots(s.catalog, txn)
    assert n == sum(len(d) for d in days.values()) and all(len(d) > 1 for d in days.values())
    old = str(tmp / "old")
    shutil.copytree(s.path, old)
    _as_format_2(old)

    up = incbt.open(old)
    cat = up.catalog
    with cat.env.read() as txn:
        assert cat.meta(txn)["format_version"] == FORMAT_VERSION == 4
        assert rc.count_snapshots(cat, txn) == n
        assert b"snapshots" not in {k for k, _ in txn.cursor()}  # the old table is gone
        for p, d in days.items():
            assert rc.snapshot_days(cat, txn, *p) == d, p
            for want, got in ((latest[p], rc.latest_snapshot(cat, txn, *p)),
                              (before[p], rc.latest_snapshot(cat, txn, *p, d[-1]))):
                assert got[0] == want[0] and np.array_equal(got[1], want[1]), p
    for st in (s, up):
        st.update(str(tmp / "tail"))
    for q in (DAILY, FILLS, METRICS):
        assert bits(up.sql(q)).equals(bits(s.sql(q))), q
    assert up.verify().ok


BOOM = '''import incbt

@incbt.strategy(params={"n": incbt.Param(int, default=10, min=2)}, state=(),
                warmup=lambda p: p["n"])
def boom(p, s, o, h, l, c, v, i):
    n = int(p[0])
    if n == 13 and c[i] > LIMIT:
        raise ValueError("boom")
    if i < n:
        return 0
    return 1 if c[i] > c[i - n] else -1
'''


@pytest.mark.filterwarnings("ignore::incbt.StrategyFailureWarning")  # failing is the point
@pytest.mark.parametrize("where", ["every instrument", "one instrument"])
def test_verify_agrees_on_pairs_whose_computation_failed(tmp_path, where):
    """A failed (run, instrument) has no rows and no metrics, in the store and recomputed:
    verify passes and lists it; a run whose every instrument failed has no portfolio row."""
    generate(str(tmp_path / "d"), instruments=2, days=4, start="2024-03-04", seed=8)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    top = s.sql("SELECT instrument, max(close) AS m FROM bars GROUP BY instrument "
                "ORDER BY m")["m"].to_pylist()
    limit = 0.0 if where == "every instrument" else (top[0] + top[1]) / 2
    f = tmp_path / "boom.py"
    f.write_text(BOOM.replace("LIMIT", repr(limit)))
    sw = s.sweep("boom", {"n": [10, 13]}, name="b", strategies_file=str(f))
    failed_run = s.sql("SELECT run_id FROM runs WHERE p_n = 13")["run_id"][0].as_py()
    board = {r["run_id"]: r["failed_pairs"] for r in sw.leaderboard().to_pylist()}
    # a run every instrument of which failed has no portfolio row: listed last, unranked
    # (it was left out until 2026-12-05), with its failed pairs
    assert board.get(failed_run) == (2 if where == "every instrument" else 1)
    assert sorted(board.values())[0] == 0
    n_metrics = s.sql(f"SELECT count(*) AS n FROM metrics WHERE run_id = '{failed_run}'")
    assert n_metrics["n"][0].as_py() == (0 if where == "every instrument" else 2)
    rep = s.verify()
    assert rep.ok, rep.differences
    assert len(rep.failed) == (2 if where == "every instrument" else 1)
    assert all(failed_run in x and "boom" in x for x in rep.failed)



@pytest.mark.filterwarnings("ignore::incbt.StrategyFailureWarning")  # failing is the point
def test_a_pair_that_fails_holds_nothing_and_is_retried_only_when_its_bars_change(tmp_path):
    """A correction makes one (run, instrument) fail: its old rows, snapshots and metrics
    go (as computed from scratch, it has none); later updates skip it, new days too,
    until a day it read changes again; then it is recomputed and equals a fresh store."""
    g = dict(instruments=2, days=6, start="2024-03-04", seed=12)
    generate(str(tmp_path / "all"), **g)
    days = sorted(os.listdir(tmp_path / "all"))
    strats = tmp_path / "spike.py"
    strats.write_text(SPIKE)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest([str(tmp_path / "all" / d) for d in days[:5]])
    bad_run = s.backtest("spike", {"n": 10}, strategies_file=str(strats)).run_id
    ok_run = s.backtest("sma_cross", {"fast": 4, "slow": 30}).run_id
    # the vendor's correction of the third day: one bar of S0000 with a huge volume
    (tmp_path / "fix").mkdir()
    write_spiked(str(tmp_path / "all" / days[2]), str(tmp_path / "fix" / days[2]), "S0000", 7)
    res = s.update(str(tmp_path / "fix"))
    assert any("volume spike" in e for e in res.report.errors)

    def count(table, run, inst):
        q = f"SELECT count(*) AS n FROM {table} WHERE run_id = '{run}' AND instrument = '{inst}'"
        return s.sql(q)["n"][0].as_py()

    assert count("daily", bad_run, "S0000") == count("fills", bad_run, "S0000") == 0
    assert count("metrics", bad_run, "S0000") == 0 and count("daily", bad_run, "S0001") == 5
    rep = s.verify()
    assert rep.ok, rep.differences
    assert len(rep.failed) == 1 and bad_run in rep.failed[0]
    failed = s.sql("SELECT run_id, instrument, through, error FROM failed").to_pylist()
    assert [(r["run_id"], r["instrument"]) for r in failed] == [(bad_run, "S0000")]
    # through the day it failed on (the spike's), not the last day computed
    assert str(failed[0]["through"]) == days[2][5:15] and "volume spike" in failed[0]["error"]
    # a correction after that day cannot change the failure: not retried (QA 2026-12-07:
    # 33,150 bar-steps of a pair sure to fail again); nor sma's runs (no volume read)
    (tmp_path / "fix3").mkdir()
    _restated(str(tmp_path / "all" / days[3]), str(tmp_path / "fix3" / days[3]), "S0000",
              "volume", 2.0)
    res = s.update(str(tmp_path / "fix3"))
    assert res.report.bars_processed == 0 and len(res.report.skipped_failed) == 1, res
    assert s.update(str(tmp_path / "all" / days[3])).report.bars_processed == 0  # taken back
    # a new day: the failed pair is not recomputed (it fails the same way at day 3)
    res = s.update(str(tmp_path / "all" / days[5]))
    assert res.report.bars_processed == 3 * 390  # spike/S0001, sma/S0000, sma/S0001
    assert len(res.report.skipped_failed) == 1 and bad_run in res.report.skipped_failed[0]
    st = s.status()
    assert not st.stale and len(st.report.skipped_failed) == 1
    assert s.verify().ok
    p = run_incbt(["--store", s.path, "backtest", "spike", "-p", "n=10", "--strategies",
                   str(strats)])
    # the run is still incomplete: exit 1, with the known failure and why it was not retried
    assert p.returncode == 1 and "1 (run, instrument) pair(s) not recomputed" in p.stderr
    assert "volume spike" in p.stderr and "Traceback" not in p.stderr
    # the vendor takes the correction back: the pair's bars changed, it is recomputed
    dry = s.update(str(tmp_path / "all" / days[2]), dry_run=True)
    why = [r.reason for r in dry.stale if (r.run_id, r.instrument) == (bad_run, "S0000")]
    assert why == [f"the ingest would change {days[2][5:15]}"], why
    s.update(str(tmp_path / "all" / days[2]))
    assert count("daily", bad_run, "S0000") == 6 and not s.status().report.skipped_failed
    assert s.sql("SELECT count(*) AS n FROM failed")["n"][0].as_py() == 0
    f = incbt.init(str(tmp_path / "fresh"))
    f.ingest(str(tmp_path / "all"))
    assert f.backtest("spike", {"n": 10}, strategies_file=str(strats)).run_id == bad_run
    assert f.backtest("sma_cross", {"fast": 4, "slow": 30}).run_id == ok_run
    for q in (DAILY, FILLS, METRICS):
        assert bits(s.sql(q)).equals(bits(f.sql(q))), q
    rep = s.verify()
    assert rep.ok and not rep.failed


@pytest.mark.filterwarnings("ignore::incbt.StrategyFailureWarning")  # failing is the point
def test_update_retry_failed_computes_failed_pairs_again(tmp_path, monkeypatch):
    """A failure that was not the strategy's (a kernel raising once, as a machine short
    of memory would make it) stayed recorded: every update skipped the pair until a day
    it read changed, and `drop` was the only way back (QA 2026-12-07). `--retry-failed`
    computes such pairs again; a pair that fails again is recorded again."""
    from incbt.engine import kernel

    s, strats, days = _store_with_a_spike(tmp_path, 3)
    spiked = s.backtest("spike", {"n": 10}, strategies_file=str(strats)).run_id
    real = kernel._resolve
    broken = _machine_fails_sma_cross(real)

    def short_of_memory(strat, which):
        def run(*a):
            raise MemoryError

        return run

    monkeypatch.setattr(kernel, "_resolve", short_of_memory)  # said, not recorded
    with pytest.raises(MemoryError):
        s.backtest("sma_cross", {"fast": 4, "slow": 30})
    assert s.sql("SELECT count(*) AS n FROM failed")["n"][0].as_py() == 1  # the spike's
    monkeypatch.setattr(kernel, "_resolve", broken)
    run = s.backtest("sma_cross", {"fast": 4, "slow": 30})
    assert len(run.report.errors) == 2 and "simulated" in run.report.errors[0]
    # a fork of it fails with its base; retried, it is made again from its base, as when
    # made (QA 2026-12-07: it was computed from its start with its own parameters)
    fork = s.backtest(None, {"fast": 6}, fork_of=run.run_id, effective="2024-03-06")
    assert len(fork.report.errors) == 2
    monkeypatch.setattr(kernel, "_resolve", real)
    res = s.update()
    assert res.report.bars_processed == 0 and len(res.report.skipped_failed) == 5
    assert s.update(dry_run=True).stale == []
    dry = s.update(dry_run=True, retry_failed=True)
    assert dry.report.bars_processed == 3 * 3 * 390 + 2 * 390  # the fork: its day from D
    assert sorted((r.run_id, r.instrument, r.reason.split(":")[1]) for r in dry.stale
                  if r.run_id != fork.run_id) == sorted(
        [(run.run_id, "S0000", " retried (--retry-failed)"),
         (run.run_id, "S0001", " retried (--retry-failed)"),
         (spiked, "S0001", " retried (--retry-failed)")])
    p = run_incbt(["--store", s.path, "update", "--retry-failed"])
    assert p.returncode == 1, p.stderr  # the spike fails again on S0001, said
    assert "volume spike" in p.stderr
    failed = s.sql("SELECT run_id, instrument FROM failed ORDER BY instrument").to_pylist()
    assert [(r["run_id"], r["instrument"]) for r in failed] == [(spiked, "S0001")]
    assert not s.update().report.bars_processed  # skipped again, as before
    f = incbt.init(str(tmp_path / "fresh"))
    f.ingest(str(tmp_path / "all"))
    f.backtest("spike", {"n": 10}, strategies_file=str(strats))
    base = f.backtest("sma_cross", {"fast": 4, "slow": 30})
    f.backtest(None, {"fast": 6}, fork_of=base.run_id, effective="2024-03-06")
    for q in (DAILY, FILLS, METRICS):
        assert bits(s.sql(q)).equals(bits(f.sql(q))), q
    assert s.verify().ok


@pytest.mark.filterwarnings("ignore::incbt.StrategyFailureWarning")  # failing is the point
def test_retry_failed_is_given_to_each_plan_not_set_around_the_update(tmp_path):
    """`retry_failed` reached the planner through a context variable that store.update
    set around everything under it: a status() asked from the update's progress
    reporter (a notebook's, say) planned the failed pairs as retried too, where a status
    never retries them (QA 2026-12-07). It is a parameter down the call chain now, False
    unless given, the module-level update's too (it ignored it)."""
    from incbt.progress import NULL
    from incbt.update import update

    s, strats, _ = _store_with_a_spike(tmp_path, 3)
    spiked = s.backtest("spike", {"n": 10}, strategies_file=str(strats)).run_id
    seen = []

    class Asking:  # a reporter that asks the store's status once, mid-update
        def task(self, description, total):
            if not seen:
                seen.append(s.status())
            return NULL.task(description, total)

    res = s.update(retry_failed=True, progress=Asking())
    assert len(res.report.errors) == 1 and "volume spike" in res.report.errors[0]
    assert seen and seen[0].stale == [] and len(seen[0].report.skipped_failed) == 1
    dry = update(s, dry_run=True, retry_failed=True)
    assert [(r.run_id, r.instrument) for r in dry.stale] == [(spiked, "S0001")]
    assert update(s, dry_run=True).stale == [] and s.status().stale == []


@pytest.mark.filterwarnings("ignore::incbt.StrategyFailureWarning")  # failing is the point
def test_a_dry_run_of_retry_failed_says_a_forks_days_hang_on_its_bases_retry(
    tmp_path, monkeypatch
):
    """A dry run of --retry-failed counted the days from D of a fork whose base's pair
    failed as computed (QA 2026-12-07), where an update computes them only if the base's
    pair, computed again first, succeeds: when it fails again (the strategy's error, the
    same bars), the fork's pair fails with it and computes nothing. No dry run can know
    which: its counts are "at most", and the pairs that hang on a retry are said apart.
    Here the spike's base fails again (its strategy raises on those bars), sma_cross's
    succeeds (its failure was the machine's): the update computes the dry run's counts
    less the spike fork's part."""
    from incbt.engine import kernel

    s, strats, days = _store_with_a_spike(tmp_path, 3)
    eff = days[2][5:15]
    spiked = s.backtest("spike", {"n": 10}, strategies_file=str(strats))
    spiked_fork = s.backtest(None, {"n": 20}, fork_of=spiked.run_id, effective=eff,
                             strategies_file=str(strats)).run_id
    real = kernel._resolve
    broken = _machine_fails_sma_cross(real)

    monkeypatch.setattr(kernel, "_resolve", broken)
    sma = s.backtest("sma_cross", {"fast": 4, "slow": 30})
    sma_fork = s.backtest(None, {"fast": 6}, fork_of=sma.run_id, effective=eff).run_id
    monkeypatch.setattr(kernel, "_resolve", real)
    assert s.sql("SELECT count(*) AS n FROM failed")["n"][0].as_py() == 6
    dry = s.update(dry_run=True, retry_failed=True)
    hangs = dry.report.depends_on_retry
    assert sorted(hangs) == [(spiked_fork, "S0001"), (sma_fork, "S0000"),
                             (sma_fork, "S0001")], hangs
    assert dry.report.depending_on_retry() == (3, 3 * 390)  # a day each (from D)
    assert "would compute at most" in repr(dry)
    rows = {(r.run_id, r.instrument): r.reason for r in dry.stale}
    assert rows[(spiked_fork, "S0001")] == (
        f"its base run {spiked.run_id} failed on S0001 (event 3): computed again first; "
        f"its 1 day(s) after {days[1][5:15]} are computed only if that succeeds (else this "
        "pair fails with it)"), rows
    p = run_incbt(["--store", s.path, "update", "--dry-run", "--retry-failed"])
    said = " ".join((p.stdout + p.stderr).split())  # the table wraps lines
    assert p.returncode == 0, said
    assert (f"would compute at most {dry.report.segments} segment(s)" in said
            and "; 3 segment(s), 1,170 bar-steps of them a fork's, computed only if its "
            "base's pair" in said), said
    res = s.update(retry_failed=True)
    # the spike's base failed again: its fork's day from D was not computed, it failed
    assert res.report.segments == dry.report.segments - 1
    assert res.report.bars_processed == dry.report.bars_processed - 390
    fails = [e for e in res.report.errors if e.startswith(f"run {spiked_fork}, S0001: ")]
    assert len(fails) == 1 and f"its base run {spiked.run_id} failed on S0001" in fails[0]
    failed = s.sql("SELECT run_id, instrument FROM failed ORDER BY 1, 2").to_pylist()
    assert {(r["run_id"], r["instrument"]) for r in failed} == {
        (spiked.run_id, "S0001"), (spiked_fork, "S0001")}
    # sma_cross's succeeded: its fork's days are computed, as the dry run's upper bound
    assert s.sql("SELECT count(*) AS n FROM daily WHERE run_id = $r",
                 params={"r": sma_fork})["n"][0].as_py() == 2 * 3
    # what is left hangs on the spike's retry again; without --retry-failed, nothing does
    again = s.update(dry_run=True, retry_failed=True).report
    assert set(again.depends_on_retry) == {(spiked_fork, "S0001")}
    assert (again.segments, again.bars_processed) == (2, 3 * 390 + 390)
    assert not s.update(dry_run=True).report.depends_on_retry
    assert s.verify().ok


@pytest.mark.filterwarnings("ignore::incbt.StrategyFailureWarning")  # failing is the point
def test_a_dry_run_says_a_fork_of_a_fork_fails_or_hangs_with_its_bases_pair(tmp_path):
    """A fork of a fork rebuilt from a base whose own rebuilding fails (its base's pair
    failed, not retried) fails with it; one rebuilt from a base that hangs on a retry
    hangs on it too. A dry run looked at the recorded failures of the fork's base alone:
    where the base's pair was being made again, it counted the fork of a fork's days as
    computed (or as "at most" with the wrong reason, or not as "at most" at all), and an
    update then failed it (QA 2026-12-07)."""
    from incbt.runs import bring_up_to_date

    s, strats, days = _store_with_a_spike(tmp_path, 6)  # S0001 fails on day 1
    kw = dict(strategies_file=str(strats))
    base = s.backtest("spike", {"n": 10}, **kw).run_id
    f1 = s.backtest(None, {"n": 20}, fork_of=base, effective=days[3][5:15], **kw).run_id
    f2 = s.backtest(None, {"n": 30}, fork_of=f1, effective=days[4][5:15], **kw).run_id
    # a correction of S0001 on day 2: after the day the base failed through (it is not
    # retried), before D of both forks (they are made again from their bases)
    t = pcsv.read_csv(tmp_path / "all" / days[2])
    m = pc.equal(t["instrument"], "S0001")
    for c in ("open", "high", "low", "close"):
        t = t.set_column(t.schema.get_field_index(c), c,
                         pc.if_else(m, pc.multiply(t[c], 1.001), t[c]))
    fixed = str(tmp_path / "fix" / days[2])
    os.makedirs(tmp_path / "fix")
    pcsv.write_csv(t, fixed)
    dry = s.update(fixed, dry_run=True)
    assert (f2, "S0001") not in {(r.run_id, r.instrument) for r in dry.stale}, dry.stale
    assert not dry.report.depends_on_retry
    res = s.update(fixed)
    assert sorted(res.report.errors) == sorted(dry.report.errors), (res.report.errors,
                                                                    dry.report.errors)
    assert any(e.startswith(f"run {f2}, S0001: its base run {f1} failed on S0001: its base "
                            f"run {base} failed on S0001: ") for e in dry.report.errors)
    assert (dry.report.segments, dry.report.bars_processed) == (
        res.report.segments, res.report.bars_processed)
    # a correction of S0000 before D1 that makes the base fail there, and an update
    # killed after its plain runs' phase: the forks' pairs are not made again yet
    spiked = str(tmp_path / "fix2" / days[2])
    os.makedirs(tmp_path / "fix2")
    write_spiked(fixed, spiked, "S0000", 7)
    s.ingest(spiked)
    bring_up_to_date(s, [s.run(base).record], command="update", kind="update")
    dry = s.update(dry_run=True)
    assert not dry.stale and (dry.report.segments, dry.report.bars_processed) == (0, 0)
    assert sorted(e.split(":")[0] for e in dry.report.errors) == sorted(
        [f"run {f1}, S0000", f"run {f2}, S0000"]), dry.report.errors
    assert any(e.startswith(f"run {f2}, S0000: its base run {f1} failed on S0000: its base "
                            f"run {base} failed on S0000: ") for e in dry.report.errors)
    # with --retry-failed every fork pair hangs on the base's retry, the fork of a
    # fork's too: the base fails again, and the update computes none of them
    retry = s.update(dry_run=True, retry_failed=True).report
    assert set(retry.depends_on_retry) == {(f, i) for f in (f1, f2) for i in ("S0000", "S0001")}
    n_if, bars_if = retry.depending_on_retry()
    res = s.update(retry_failed=True).report
    assert (res.segments, res.bars_processed) == (retry.segments - n_if,
                                                  retry.bars_processed - bars_if)
    assert s.verify().ok


@pytest.mark.filterwarnings("ignore::incbt.StrategyFailureWarning")  # failing is the point
def test_a_forks_dry_run_says_its_days_hang_on_its_bases_retry(tmp_path):
    """`incbt backtest --from BASE --dry-run` where the base's failed pair is computed
    again first (a correction of a day it read, ingested since): the fork's days from D
    on that instrument compute only if the retry succeeds. The dry run said them as
    computed, "would compute 3 segment(s)", and the backtest computed 2, the fork's pair
    failing with its base's (QA 2026-12-07); it says "at most", as update --dry-run."""
    s, strats, days = _store_with_a_spike(tmp_path, 5)  # S0001 fails on day 1
    base = s.backtest("spike", {"n": 10}, strategies_file=str(strats)).run_id
    t = pcsv.read_csv(tmp_path / "all" / days[0])
    m = pc.equal(t["instrument"], "S0001")
    for c in ("open", "high", "low", "close"):
        t = t.set_column(t.schema.get_field_index(c), c,
                         pc.if_else(m, pc.multiply(t[c], 1.001), t[c]))
    os.makedirs(tmp_path / "fix")
    pcsv.write_csv(t, tmp_path / "fix" / days[0])
    s.ingest(str(tmp_path / "fix" / days[0]))  # day 0: the base's failure is retried
    args = ["--store", s.path, "backtest", "--from", base, "-p", "n=20", "--effective",
            days[3][5:15], "--strategies", str(strats)]
    p = run_incbt([*args, "--dry-run"])
    said = " ".join(p.stdout.split())
    assert p.returncode == 0, (said, p.stderr)
    assert ("would compute at most 3 segment(s) in 3 task(s) over 2 instrument(s), 3,510 "
            "bar-steps; 1 segment(s), 780 bar-steps of them the fork's, computed only if its "
            "base's pair, which failed before and is computed again first, succeeds") in said
    p = run_incbt(args)
    said = " ".join(p.stdout.split())
    assert p.returncode == 1 and "computed 2 segment(s), 2,730 bar-steps in" in said, (
        said, p.stderr)
    assert f"its base run {base} failed on S0001" in p.stderr, p.stderr


def _machine_fails_sma_cross(real):
    """A ``kernel._resolve`` whose sma_cross kernel raises as a failing machine would (not
    a failure of the strategy's); other strategies' kernels are ``real``'s."""

    def broken(strat, which):
        if strat.name != "sma_cross":
            return real(strat, which)

        def run(*a):
            raise RuntimeError("simulated: the machine, not the strategy")

        return run

    return broken


def _store_with_a_spike(tmp_path, n_days: int):
    """A store of 2 instruments whose second day has a volume spike on S0001 (the
    ``spike`` strategy fails there), the strategy's file, and the day files' names."""
    generate(str(tmp_path / "all"), instruments=2, days=n_days, start="2024-03-04", seed=12)
    days = sorted(os.listdir(tmp_path / "all"))
    path = str(tmp_path / "all" / days[1])
    write_spiked(path, path, "S0001", 5)
    strats = tmp_path / "spike.py"
    strats.write_text(SPIKE)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "all"))
    return s, strats, days


@pytest.mark.filterwarnings("ignore::incbt.StrategyFailureWarning")  # failing is the point
def test_a_fork_of_a_base_that_failed_on_an_instrument_fails_there_too(tmp_path):
    """A fork continues its base's results: where the base failed (its strategy raised on
    S0001), the fork's pair fails too, said as the base's, and the other instruments are
    computed, as an update keeps a fork whose base came to fail. It was refused whole
    (exit 2) before, so a fresh store could not make the fork an update had kept (QA
    2026-12-06, differential testing)."""
    s, strats, days = _store_with_a_spike(tmp_path, 5)
    base = s.backtest("spike", {"n": 10}, strategies_file=str(strats))
    assert base.report.errors
    kw = dict(fork_of=base.run_id, effective=days[3][5:15], strategies_file=str(strats))
    # the dry run says it as the fork then does (QA 2026-12-07: it planned S0001's days
    # from D as computed, bar-steps the fork never ran, and said nothing of the failure)
    dry = s.backtest(None, {"n": 20}, dry_run=True, **kw).report
    fork = s.backtest(None, {"n": 20}, **kw)
    assert dry.errors == fork.report.errors and dry.bars_processed == fork.report.bars_processed
    assert dry.segments == fork.report.segments == 1
    errors = fork.report.errors
    assert len(errors) == 1 and errors[0].startswith(
        f"run {fork.run_id}, S0001: its base run {base.run_id} failed on S0001: "), errors
    assert "volume spike" in errors[0]
    failed = s.sql("SELECT run_id, instrument FROM failed ORDER BY 1, 2").to_pylist()
    assert {(r["run_id"], r["instrument"]) for r in failed} == {
        (base.run_id, "S0001"), (fork.run_id, "S0001")}
    got = s.sql("SELECT DISTINCT instrument FROM daily WHERE run_id = $r",
                params={"r": fork.run_id})["instrument"].to_pylist()
    assert got == ["S0000"]
    assert s.verify().ok and not s.status().stale


@pytest.mark.filterwarnings("ignore::incbt.StrategyFailureWarning")  # failing is the point
def test_a_superseded_run_leaves_no_failure_behind(tmp_path):
    s, strats, _ = _store_with_a_spike(tmp_path, 4)
    old = s.backtest("spike", {"n": 10}, strategies_file=str(strats)).run_id
    assert s.sql("SELECT run_id FROM failed")["run_id"].to_pylist() == [old]
    strats.write_text(SPIKE.replace("n = int(p[0])", "n = int(p[0] * 1)"))  # the same, restated
    (old_id, new_id), = s.update().replaced
    assert old_id == old
    assert s.sql("SELECT run_id FROM failed")["run_id"].to_pylist() == [new_id]


def test_the_tests_compare_results_bit_for_bit():
    """conftest.bits: what the incremental, crash and Ray properties compare with."""
    import pyarrow as pa
    from conftest import bits

    zero, negative_zero = pa.table({"x": [0.0, 1.0]}), pa.table({"x": [-0.0, 1.0]})
    assert zero.equals(negative_zero) and not bits(zero).equals(bits(negative_zero))
    nan = pa.table({"x": [float("nan")], "n": [1]})
    assert not nan.equals(nan) and bits(nan).equals(bits(nan))


def test_the_python_api_warns_when_a_strategy_fails_on_some_pairs(tmp_path):
    """A notebook sees a StrategyFailureWarning pointing at its own line: backtest and
    sweep while their runs have failed pairs (new or known), update on a new failure;
    nothing when every pair computes."""
    import warnings

    generate(str(tmp_path / "d"), instruments=2, days=3, start="2024-03-04", seed=8)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    f = tmp_path / "boom.py"
    f.write_text(BOOM.replace("LIMIT", "0.0"))  # n == 13 fails on every instrument
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none for a run that computes everywhere
        s.backtest("boom", {"n": 10}, strategies_file=str(f))
    for _ in range(2):  # computed and failed, then known and not retried
        with pytest.warns(incbt.StrategyFailureWarning, match=r"failed on 2 \(run, instrument\)"
                          r" pair\(s\).*boom") as rec:
            run = s.backtest("boom", {"n": 13}, strategies_file=str(f))
        assert rec[0].filename == __file__  # points at the caller
        assert run.metrics.num_rows == 0
    with pytest.warns(incbt.StrategyFailureWarning, match="failed on 2"):
        s.sweep("boom", {"n": [10, 13]}, name="g", strategies_file=str(f))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the known failures are no news to an update
        s.update()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.backtest("boom", {"n": 13}, strategies_file=str(f), dry_run=True)


def test_a_new_run_sums_its_portfolio_as_its_instruments_arrive(tmp_path, monkeypatch):
    """A new run's instruments are summed into its portfolio as their results arrive (in
    name order), in commits of one task each: the same bits as summing them all at the
    end, through later updates too; instruments trade different days."""
    import incbt.runs
    from incbt.catalog import runs as rc
    from incbt.results import PORTFOLIO

    g = dict(instruments=6, days=8, start="2024-03-04", seed=21)
    generate(str(tmp_path / "all"), **g)
    files = sorted(str(p) for p in (tmp_path / "all").iterdir())
    parts = []
    for k, p in enumerate(files):  # S0002 misses the first two days, S0004 the fifth
        t = pcsv.read_csv(p)
        drop = (["S0002"] if k < 2 else []) + (["S0004"] if k == 4 else [])
        keep = pc.invert(pc.is_in(t["instrument"], pa.array(drop or ["-"])))
        pcsv.write_csv(t.filter(keep), p + ".part.csv")
        parts.append(p + ".part.csv")
    seen: list[dict] = []
    real = incbt.runs.portfolio_update

    def spy(*a, **kw):
        seen.append(dict(a[-1] or {}))
        return real(*a, **kw)

    def state(s, rid):
        with s.catalog.env.read() as txn:
            days = rc.snapshot_days(s.catalog, txn, rid, PORTFOLIO)
            return [rc.latest_snapshot(s.catalog, txn, rid, PORTFOLIO, d + 1)[1].tobytes()
                    for d in days], days

    stores = {}
    for name, every in (("folded", 2), ("whole", 10**6)):
        monkeypatch.setattr(incbt.runs, "FOLD_EVERY", every)
        monkeypatch.setattr(incbt.runs, "DEFAULT_COMMIT_BARS", 1)  # a commit per task
        monkeypatch.setattr(incbt.runs, "portfolio_update", spy)
        s = stores[name] = incbt.init(str(tmp_path / name))
        s.ingest(parts[:-1])
        seen.clear()
        run = s.backtest("sma_cross", {"fast": 4, "slow": 30})
        if name == "folded":  # every instrument but the last summed before the last commit
            assert [sorted(f) for f in seen] == [[f"S000{k}" for k in range(5)]]
        else:
            assert seen == [{}]
        s.update(parts[-1])  # a new day: the run resumes from its snapshots
    a, b = stores["folded"], stores["whole"]
    for q in (DAILY, FILLS, METRICS):
        assert bits(a.sql(q)).equals(bits(b.sql(q))), q
    assert state(a, run.run_id) == state(b, run.run_id)
    assert a.verify().ok


def test_stale_pairs_are_grouped_by_cause():
    """`status` and `update --dry-run` print one row per (reason, first day): how many
    runs and instruments, the bar-steps, and the first few of each."""
    from incbt.cli import stale_causes
    from incbt.update import StaleRow

    rows = [StaleRow(r, "sma_cross", i, "event 7 changed 2024-03-01", "2024-03-01", 100)
            for r in ("b", "a") for i in ("X", "W", "Z", "Y")]
    rows += [StaleRow("a", "sma_cross", "V", "1 new day(s) after 2024-03-25", "2024-03-26", 10)]
    got = stale_causes(rows)
    assert got == [
        {"reason": "event 7 changed 2024-03-01", "from_day": "2024-03-01", "runs": 2,
         "instruments": 4, "bar_steps": 800, "which runs": "a, b",
         "which instruments": "W, X, Y, ... (+1)"},
        {"reason": "1 new day(s) after 2024-03-25", "from_day": "2024-03-26", "runs": 1,
         "instruments": 1, "bar_steps": 10, "which runs": "a", "which instruments": "V"},
    ]
    # a run as a whole (its strategy does not load) has no instrument: none counted (QA
    # 2026-12-07: "instruments 1", none named)
    whole = [StaleRow("c", "mine", "", "cannot recompute: its strategies file gone", None, 0)]
    assert stale_causes(whole) == [
        {"reason": "cannot recompute: its strategies file gone", "from_day": None, "runs": 1,
         "instruments": 0, "bar_steps": 0, "which runs": "c", "which instruments": ""},
    ]


@pytest.mark.parametrize("budget", [10**9, 1])
def test_a_commit_reads_each_results_file_once_for_the_runs_it_refolds(
    tmp_path, monkeypatch, budget
):
    """A correction of one instrument refolds the portfolio of every run over it from
    the other instruments' stored rows: each results file is read once for all those
    runs (it was once a run: a sweep finished after an interruption spent 4.2 s of 11
    there), or in chunks of runs when their rows pass the reader's budget; the same
    bits as a fresh store either way."""
    import incbt.results
    import incbt.runs

    g = dict(instruments=4, days=6, start="2024-03-04", seed=5)
    generate(str(tmp_path / "all"), **g)
    generate(str(tmp_path / "fix"), **g, from_day="2024-03-07", to_day="2024-03-07",
             revise=["2024-03-07"])
    fix = next((tmp_path / "fix").iterdir())
    t = pcsv.read_csv(fix)
    pcsv.write_csv(t.filter(pc.equal(t["instrument"], "S0001")), fix)
    grid = {"fast": [3, 4, 5], "slow": [20, 30]}
    monkeypatch.setattr(incbt.runs, "DEFAULT_COMMIT_BARS", 1)  # a results file per task
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "all"))
    s.sweep("sma_cross", grid, name="g")
    files = len(os.listdir(tmp_path / "s" / "results" / "daily"))
    assert files >= 4
    real = incbt.results.DailyRows.__init__
    reads: list[str] = []

    def small(self, *a, **kw):
        real(self, *a, **{**kw, "budget": budget})

    def spy(path, *a, **kw):
        reads.append(str(path))
        return pq_read(path, *a, **kw)

    pq_read = incbt.results.pq.read_table
    monkeypatch.setattr(incbt.results.DailyRows, "__init__", small)
    monkeypatch.setattr(incbt.results.pq, "read_table", spy)
    res = s.update(str(tmp_path / "fix"))
    monkeypatch.undo()
    assert res.report.segments == 6  # S0001 of the 6 runs
    daily = [p for p in reads if os.sep + "daily" + os.sep in p]
    if budget > 1:  # the 3 other instruments' files, each once for the 6 runs
        assert len(daily) == len(set(daily)) == 3, daily
    else:  # a run a read
        assert len(daily) == 3 * 6, daily
    f = incbt.init(str(tmp_path / "f"))
    f.ingest(str(tmp_path / "all"))
    f.ingest(str(tmp_path / "fix"))
    f.sweep("sma_cross", grid, name="g")
    for q in (DAILY, FILLS, METRICS):
        assert bits(s.sql(q)).equals(bits(f.sql(q))), q


def test_verify_takes_a_sweep(world):
    """verify --sweep NAME compares every run of the sweep (and the runs named with it),
    no other; an unknown sweep is named as such."""
    tmp, s = world
    s.update(str(tmp / "tail"))
    g = s.sweep("sma_cross", {"fast": [4, 6], "slow": [30]}, name="g", fee_bps=1)
    assert s.verify().runs == 4  # fast=4 is the world's run too
    rep = s.verify(sweep="g")
    assert rep.ok and rep.runs == 2
    boll = s.sql("SELECT run_id FROM runs WHERE strategy = 'bollinger'")["run_id"][0].as_py()
    assert s.verify([boll[:6]], sweep="g").runs == 3
    with pytest.raises(incbt.NotFoundError, match="no sweep 'nope'"):
        s.verify(sweep="nope")
    p = run_incbt(["--store", s.path, "verify", "--sweep", "g"])
    assert p.returncode == 0 and "verified 2 run(s)" in p.stdout, p.stderr
    assert sorted(g.run_ids) == sorted(set(g.run_ids))


def test_verify_follows_runs_replaced_after_a_code_change(tmp_path):
    """Found 2026-12-05: after a code change and `update`, `verify --sweep` left out the
    sweep's runs (its record names the replaced ones) and passed having compared none;
    `verify OLD_ID` said "no run". Now the sweep's runs are followed to their
    replacements, and an old id is named with the run that replaced it."""
    s, f, old = _mom_run(tmp_path)
    s.sweep("mom", {"n": [12, 6]}, name="g", strategies_file=str(f))
    f.write_text(MOM.replace("{SHORT}", "0"))
    new = dict(s.update().replaced)
    rep = s.verify(sweep="g")
    assert rep.ok and rep.runs == 2
    with pytest.raises(incbt.NotFoundError, match=f"run {old.run_id} was replaced by run "
                       f"{new[old.run_id]} when its strategy's code changed"):
        s.verify([old.run_id[:8]])


def test_the_events_of_one_command_share_its_op(tmp_path, monkeypatch):
    """An update's ingest and its commits in batches are one command: events.op links
    them; the next command's events have another; from Python the command names the
    Store method."""
    import incbt.runs

    g = dict(instruments=3, days=8, start="2024-03-04", seed=31)
    generate(str(tmp_path / "head"), **g, to_day="2024-03-08")
    generate(str(tmp_path / "tail"), **g, from_day="2024-03-11")
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "head"))
    s.backtest("sma_cross", {"fast": 4, "slow": 30})
    monkeypatch.setattr(incbt.runs, "DEFAULT_COMMIT_BARS", 1)  # a commit per task
    s.update(str(tmp_path / "tail"))
    ev = s.sql("SELECT seq, kind, command, op FROM events ORDER BY seq").to_pylist()
    assert [e["kind"] for e in ev] == ["init", "ingest", "backtest", "ingest"] + ["update"] * 3
    assert [e["command"] for e in ev[:4]] == [
        "python: incbt.init", "python: store.ingest", "python: store.backtest",
        "python: store.update"]
    ops = [e["op"] for e in ev]
    assert all(ops) and len(set(ops[3:])) == 1 and len(set(ops)) == 4, ops
    # the work of the update's batches adds up, queryable without parsing summaries
    res_steps = s.sql("SELECT op, sum(bar_steps) AS n, sum(segments) AS segs, max(runs) AS "
                      "runs FROM events GROUP BY op ORDER BY op").to_pylist()
    mine = next(r for r in res_steps if r["op"] == ops[-1])
    assert (mine["n"], mine["segs"], mine["runs"]) == (3 * 390 * 3, 3, 1)  # 3 days, 3 inst.


def test_a_run_says_when_it_is_stale(world):
    """A Run object read the stored results without a word after a correction or a code
    change (QA 2026-12-05): ``Run.stale`` is status's rows of the run, and its repr
    says STALE until an update."""
    tmp_path, s = world
    run = s.runs("bollinger")[0]
    assert run.stale == [] and "STALE" not in repr(run)
    s.ingest(str(tmp_path / "fix"))  # a correction of 2024-03-06
    rows = run.stale
    assert rows and {r.from_day for r in rows} == {"2024-03-06"}, rows
    assert all(r.reason.startswith("event ") and r.run_id == run.run_id for r in rows)
    assert "STALE (3 instrument(s) from 2024-03-06): event" in repr(run), repr(run)
    assert sorted((r.instrument, r.reason) for r in rows) == sorted(
        (r.instrument, r.reason) for r in s.status().stale if r.run_id == run.run_id)
    s.update()
    assert run.stale == [] and "STALE" not in repr(run)


def test_a_run_of_changed_code_says_so(tmp_path):
    s, f, old = _mom_run(tmp_path)
    assert old.stale == []
    f.write_text(STRATS.replace("{SHORT}", "0"))
    (row,) = old.stale
    assert row.reason.startswith("strategy code changed") and row.instrument == ""
    assert "STALE: strategy code changed" in repr(old)
    s.update()
    assert old.stale == [] and "superseded by" in repr(old)


def test_a_note_of_the_ingest_an_update_makes_names_the_callers_line(tmp_path):
    """QA 2026-12-06: the DataNoteWarning of ``store.update(files)`` named incbt's own
    update.py; it names the line that called incbt, as ``store.ingest``'s does."""
    import csv
    import warnings

    from incbt.errors import DataNoteWarning

    generate(str(tmp_path / "d"), instruments=3, days=6, start="2024-03-04", seed=2)
    files = sorted(os.listdir(tmp_path / "d"))
    s = incbt.init(str(tmp_path / "s"))
    s.ingest([str(tmp_path / "d" / f) for f in files[:-1]])
    s.backtest("sma_cross", {"fast": 3, "slow": 8})
    last = tmp_path / "d" / files[-1]
    with open(last, newline="") as f:
        rows = list(csv.reader(f))
    keep = [rows[0]] + [r for r in rows[1:] if r[0] != "S0002"] + [
        r for r in rows[1:] if r[0] == "S0002"][:50]
    with open(last, "w", newline="") as f:
        csv.writer(f).writerows(keep)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s.update(str(last))
    notes = [x for x in w if issubclass(x.category, DataNoteWarning)]
    assert notes and all(x.filename == __file__ for x in notes), [x.filename for x in notes]


def test_an_edit_that_makes_a_forks_base_fail_replaces_the_fork_with_its_failures(tmp_path):
    """QA 2026-12-06: an edit that made a fork's base fail stopped `update` (a backtest's
    advice, exit 2, a traceback in Python) after the base's replacement was committed, and
    the fork was lost. Now the fork's replacement holds the failures of its base's
    pairs, the update exits 1 as for any failure, and a revert brings both back."""
    generate(str(tmp_path / "d"), instruments=2, days=6, start="2024-01-01", seed=1)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    f = tmp_path / "strats.py"
    f.write_text(STRATS.replace("{SHORT}", "-1"))
    base = s.backtest("mom", {"n": 3}, strategies_file=str(f))
    fork = s.backtest(None, {"n": 7}, fork_of=base.run_id, effective="2024-01-04")
    before = {q: s.sql(q) for q in (DAILY, FILLS, METRICS)}
    # a step that fails on the data (a signal of 2 is refused as a breach of the contract
    # now, leaving the runs as they were: test_contract.py)
    f.write_text(STRATS.replace("{SHORT}", "(-1 // int(c[i] - c[i]))"))
    with pytest.warns(incbt.StrategyFailureWarning):
        res = s.update()
    new = dict(res.replaced)
    assert set(new) == {base.run_id, fork.run_id}
    # the fork's pairs failed in this update, with its base's: not "failed before"
    assert res.report.skipped_failed == [] and len(res.report.errors) == 4, res.report.errors
    assert sum(e.startswith(f"run {new[fork.run_id]}, ") for e in res.report.errors) == 2
    failed = s.sql("SELECT run_id, instrument, error FROM failed ORDER BY 1, 2").to_pylist()
    assert {(r["run_id"], r["instrument"]) for r in failed} == {
        (rid, i) for rid in new.values() for i in ("S0000", "S0001")}
    assert all(f"its base run {new[base.run_id]} failed on" in r["error"]
               for r in failed if r["run_id"] == new[fork.run_id])
    assert s.sql("SELECT count(*) n FROM daily")["n"][0].as_py() == 0
    events = s.sql("SELECT count(*) n FROM events")["n"][0].as_py()
    p = subprocess.run([os.path.join(os.path.dirname(sys.executable), "incbt"), "--store",
                        s.path, "update"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr  # nothing new to do
    # the fork's failed pairs are not made again (each update wrote a "fork" event)
    assert s.sql("SELECT count(*) n FROM events")["n"][0].as_py() == events
    assert f"run {new[fork.run_id]}, S0000: its base run" in p.stderr  # not recomputed
    f.write_text(STRATS.replace("{SHORT}", "-1"))  # the revert
    back = dict(s.update().replaced)
    assert set(back.values()) == {base.run_id, fork.run_id}
    assert all(s.sql(q).equals(t) for q, t in before.items())
    assert s.verify().ok


FAILS_FROM = '''import incbt

T = 1705933800 * 1_000_000_000  # 2024-01-22 14:30 UTC


@incbt.strategy(params={"n": incbt.Param(int, default=5, min=1)}, state=("seen",),
                warmup=lambda p: p["n"])
def failnew(p, s, o, h, l, c, v, i, t):
    s[0] += 1
    if t[i] >= T:
        raise ValueError("fails from 2024-01-22 on")
    return 1 if (s[0] // 97) % 2 == 0 else -1


@incbt.strategy(params={"n": incbt.Param(int, default=5, min=1)}, state=("seen",),
                warmup=lambda p: p["n"])
def picky(p, s, o, h, l, c, v, i):
    s[0] += 1
    if p[0] == 7 and s[0] > 900:
        raise RuntimeError("seven is unlucky")
    if s[0] <= p[0]:
        return 0
    return 1 if c[i] > c[i - int(p[0])] else -1
'''


def test_a_run_failing_on_every_instrument_in_an_update_has_no_portfolio_row(tmp_path):
    """QA 2026-12-06: a run whose every pair failed in an update kept a portfolio row of
    zeros (days 0) that a fresh store does not have: it topped the leaderboard, and
    verify said the store differed."""
    f = tmp_path / "s.py"
    f.write_text(FAILS_FROM)
    generate(str(tmp_path / "old"), instruments=3, days=15, seed=1)
    generate(str(tmp_path / "new"), instruments=3, days=20, seed=1, from_day="2024-01-22")
    stores = []
    for name, parts in (("inc", ["old"]), ("fresh", ["old", "new"])):
        s = incbt.init(str(tmp_path / name))
        s.ingest([str(tmp_path / p) for p in parts])
        if name == "fresh":
            with pytest.warns(incbt.StrategyFailureWarning):
                s.backtest("failnew", {"n": 5}, strategies_file=str(f))
        else:
            s.backtest("failnew", {"n": 5}, strategies_file=str(f))
        s.backtest("sma_cross", {"fast": 5, "slow": 60})
        stores.append(s)
    inc, fresh = stores
    with pytest.warns(incbt.StrategyFailureWarning):
        inc.update(str(tmp_path / "new"))
    for q in (DAILY, FILLS, METRICS):
        assert inc.sql(q).equals(fresh.sql(q)), q
    assert inc.sql("SELECT count(*) n FROM metrics WHERE scope = 'portfolio'")["n"][0].as_py() == 1
    assert inc.verify().ok
    # the failure said alike: "its day's bar 0", not the bar of what each computation
    # loaded ("bar 390" resumed, "bar 5850" from scratch)
    q = "SELECT run_id, instrument, error FROM failed ORDER BY 1, 2"
    assert inc.sql(q).equals(fresh.sql(q))
    said = inc.sql(q)["error"][0].as_py()
    assert "ValueError at its day's bar 0 (2024-01-22 14:30:00 UTC)" in said


def test_verify_of_a_fork_whose_own_parameters_fail_finds_them_failing(tmp_path):
    """QA 2026-12-06: verify recomputed a fork whose new parameters fail after D as if
    they did not (its rows before the error against none stored): NOT ok on a correct
    store."""
    f = tmp_path / "s.py"
    f.write_text(FAILS_FROM)
    generate(str(tmp_path / "d"), instruments=2, days=10, seed=1)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    base = s.backtest("picky", {"n": 5}, strategies_file=str(f))
    with pytest.warns(incbt.StrategyFailureWarning):
        fork = s.backtest(None, {"n": 7}, fork_of=base.run_id, effective="2024-01-08")
    assert len(fork.report.errors) == 2
    v = s.verify()
    assert v.ok and len(v.failed) == 2
    assert all(x.startswith(f"run {fork.run_id}, ") for x in v.failed)
    assert s.sql("SELECT count(*) n FROM metrics WHERE run_id = $r",
                 params={"r": fork.run_id})["n"][0].as_py() == 0


def _restated(src: str, out: str, inst: str, col: str, by: float) -> str:
    """``src``'s bars of ``inst`` with ``col`` multiplied by ``by`` (a vendor's revision
    of one field)."""
    t = pcsv.read_csv(src)
    t = t.filter(pc.equal(t["instrument"], inst))
    t = t.set_column(t.schema.get_field_index(col), col, pc.multiply(t[col], by))
    pcsv.write_csv(t, out)
    return out


def test_a_correction_recomputes_only_the_runs_that_read_a_field_it_changed(tmp_path):
    """A vendor's revision of the volume alone recomputed every run (QA 2026-12-07): the
    engine reads open and close, a strategy what its `reads` declares, and the others are
    not even loaded. Now the ingest records the fields a correction changed (where its
    bars' times are the stored day's), and an update recomputes the runs that read one:
    none for the volume, breakout's for the highs, every run for the opens. The results
    equal a fresh store's each time."""
    files = generate(str(tmp_path / "d"), instruments=2, days=12, start="2024-03-04", seed=9)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    sma = s.backtest("sma_cross", {"fast": 5, "slow": 20})
    brk = s.backtest("breakout", {"lookback": 30})
    day = files[6]
    bars_from = 6 * 390  # S0001's bars from the corrected day on
    for col, by, runs in (("volume", 3.0, []), ("high", 1.001, [brk]), ("open", 1.0, None)):
        f = str(tmp_path / f"{col}.csv")
        if runs is None:  # an open moved within its bar's range: every run reads it
            t = pcsv.read_csv(day)
            t = t.filter(pc.equal(t["instrument"], "S0001"))
            mid = pc.divide(pc.add(t["low"], t["high"]), 2.0)
            pcsv.write_csv(t.set_column(t.schema.get_field_index("open"), "open", mid), f)
            runs = [sma, brk]
        else:
            _restated(day, f, "S0001", col, by)
        dry = s.update(f, dry_run=True)
        res = s.update(f)
        assert res.report.bars_processed == dry.report.bars_processed == bars_from * len(runs)
        assert sorted({r.run_id for r in res.stale}) == sorted(r.run_id for r in runs), col
        assert not s.status().stale and s.verify().ok
    said = s.sql("SELECT fields FROM changes WHERE kind = 'corrected' ORDER BY seq")
    assert said["fields"].to_pylist() == ["volume", "high,volume", "open,high"]
    fresh = incbt.init(str(tmp_path / "fresh"))
    fresh.ingest(str(tmp_path / "d"))
    for f in ("volume", "high", "open"):
        fresh.ingest(str(tmp_path / f"{f}.csv"))
    fresh.backtest("sma_cross", {"fast": 5, "slow": 20})
    fresh.backtest("breakout", {"lookback": 30})
    for q in ("SELECT * FROM daily ORDER BY run_id, instrument, date",
              "SELECT * FROM fills ORDER BY run_id, instrument, ts"):
        assert bits(s.sql(q)).equals(bits(fresh.sql(q))), q


def test_verify_counts_its_chunks_as_one_task(tmp_path, monkeypatch):
    """QA 2026-12-07: verify's chunks each made a "computing" task of their own, so where
    stderr is not a terminal the clock of its lines restarted each chunk, and a verify of
    a big store never said a line."""
    import incbt.update as upd

    generate(str(tmp_path / "d"), instruments=3, days=4, start="2024-01-01", seed=2)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    s.backtest("sma_cross", [{"fast": 2, "slow": 5}, {"fast": 3, "slow": 9}])
    monkeypatch.setattr(upd, "VERIFY_BAR_STEPS", 1)  # a chunk an instrument
    made: list[list] = []

    class Task:
        def __init__(self, name, total):
            self.row = [name, total, 0, False]
            made.append(self.row)

        def advance(self, n=1):
            self.row[2] += n

        def done(self):
            self.row[3] = True

    class Reporter:
        def task(self, name, total):
            return Task(name, total)

    got = s.verify(progress=Reporter())
    assert got.ok, got
    computing = [m for m in made if m[0] == "computing"]
    assert computing == [["computing", 3 * 4 * 390 * 2, 3 * 4 * 390 * 2, True]], made
