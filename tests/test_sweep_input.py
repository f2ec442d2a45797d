"""A sweep's inputs are checked before anything is written: workers, cluster address,
name, the strategy of a sweep resumed, and grids too large to build."""

from __future__ import annotations

import os

import pytest
from cli_process import run_incbt
from conftest import MOM, fails_strategy, ingested, tree_state

import incbt
from incbt.bars.generate import generate
from incbt.sweep import MAX_GRID_POINTS, get_sweep, grid_points


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep-input")
    generate(str(root / "d"), instruments=2, days=3, start="2024-01-01", seed=3)
    s = incbt.init(str(root / "s"))
    s.ingest(str(root / "d"))
    s.sweep("sma_cross", {"fast": [5], "slow": [20]}, name="g1")
    return s


@pytest.mark.parametrize(("kw", "match"), [
    ({"workers": 0}, "--workers 0: give at least 1"),
    ({"workers": -1}, "--workers -1: give at least 1"),
    ({"address": "127.0.0.1:1"}, "cannot reach a Ray cluster at '127.0.0.1:1'"),
    ({"name": ""}, "name cannot be empty"),
    ({"name": "x" * 201}, "must be 1 to 200 printable characters"),
    ({"name": "a\nb"}, "must be 1 to 200 printable characters"),
    ({"name": "g1", "resume": True, "strategy": "breakout"},
     "'g1' is a sweep of 'sma_cross', not 'breakout'"),
    ({"name": "g1", "strategy": "breakout"},  # not "exists; --resume", which would fail
     "'g1' is a sweep of 'sma_cross', not 'breakout'"),
    ({"grid": {"fast": "1:200000:1", "slow": [300]}}, "the grid has 200,000 points"),
    ({"name": "g1", "resume": True, "fee_bps": 2.0}, "was made with fee_bps 0 \\(now 2\\)"),
    ({"name": "g1", "resume": True, "instruments": ["S0000"]},
     "was made with instruments all \\(now S0000\\)"),
    ({"name": "g1", "resume": True, "start": "20240101"},
     "--start \\(start=\\) '20240101' is not a date: give YYYY-MM-DD"),
    ({"name": "g1", "resume": True, "start": "2024-01-02"}, "start the first bar"),
    ({"grid": {"fast": None, "slow": [30]}}, "grid values of 'fast': give a list"),
    ({"grid": {"fast": "1:1e16:1", "slow": [300]}}, "has 10,000,000,000,000,000 values"),
    ({"grid": {"fast": "1:1e400:1", "slow": [300]}}, "has more than 10\\^21 values"),
    ({"grid": {"fast": "5,,6", "slow": [300]}}, "a value is missing between commas"),
    ({"grid": {"fast": "5,6,", "slow": [300]}}, "a value is missing between commas"),
    ({"grid": {"fast": "1.5:9:1", "slow": [300]}}, "integer START and STEP"),
    ({"grid": {"fast": "1:inf:1", "slow": [300]}}, "three numbers"),
    ({"grid": {"fast": "1:1000:1", "slow": "2:1000:1"}}, "the grid has 999,000 points"),
    ({"name": "0123456789abcdef"}, "looks like a run id"),
    ({"workers": 2, "address": "127.0.0.1:1"}, "--workers 2 and --address 127.0.0.1:1: give one"),
    ({"grid": {}}, "give the grid"),
    ({"grid": {}, "resume": True}, "give the grid"),  # and the name, to finish a sweep
    # a seed alone drew nothing and named another sweep (QA 2026-12-05)
    ({"seed": 3}, "--seed 3 \\(seed=3\\) without --random N"),
    ({"random": 0}, "--random 0 \\(random=0\\): give a positive count"),
])
def test_a_bad_sweep_is_refused_and_writes_nothing(swept, kw, match):
    kw = dict(kw)
    strategy = kw.pop("strategy", "sma_cross")
    grid = kw.pop("grid", {"fast": [4], "slow": [21]} if strategy == "sma_cross"
                  else {"lookback": [5]})
    before = tree_state(swept.path)
    with pytest.raises(incbt.UsageError, match=match):
        swept.sweep(strategy, grid, **kw)
    assert tree_state(swept.path) == before
    assert get_sweep(swept, "g1")["spec"]["strategy"] == "sma_cross"


def test_a_grid_range_whose_parts_are_not_numbers_is_bad_input(swept):
    with pytest.raises(incbt.StrategyError, match="grid range fast=1:10\\*\\*16:1: its parts"):
        swept.sweep("sma_cross", {"fast": "1:10**16:1", "slow": [300]})


@pytest.mark.parametrize("values", ["inf", "4,sNaN", "-inf", "nan"])
def test_a_grid_value_that_is_not_finite_is_bad_input(swept, values):
    """Found by review 2026-12-05: -g fast=inf ended on an OverflowError, sNaN on
    decimal's InvalidOperation (exit 3); -p fast=inf said "is not finite"."""
    bad = values.split(",")[-1]
    with pytest.raises(incbt.StrategyError, match=f"grid value fast={bad} is not finite"):
        swept.sweep("sma_cross", {"fast": values, "slow": [30]}, dry_run=True)


def test_a_large_grid_can_be_sampled():
    """--random over a grid too large to build draws points by their index: the same seed
    gives the same points, every one valid and inside the grid."""
    strat = incbt.engine.get_strategy("sma_cross")
    grid = {"fast": "1:2000:1", "slow": "2:2000:1"}
    assert MAX_GRID_POINTS < 1999 * 2000
    a, _ = grid_points(strat, grid, sample=50, seed=7)
    b, _ = grid_points(strat, grid, sample=50, seed=7)
    c, _ = grid_points(strat, grid, sample=50, seed=8)
    assert a == b != c and len(a) == 50
    assert len({(p["fast"], p["slow"]) for p in a}) == 50
    assert all(1 <= p["fast"] < p["slow"] <= 2000 for p in a)
    # one range too long to list: its values are computed by index
    d, _ = grid_points(strat, {"fast": "1:10000000000:1", "slow": [10**10 + 1]}, 20, seed=1)
    assert len(d) == 20 and all(1 <= p["fast"] <= 10**10 for p in d)
    assert all(type(p["fast"]) is int for p in d)
    f, _ = grid_points(incbt.engine.get_strategy("breakout"), {"lookback": "5:9:2"})
    assert [p["lookback"] for p in f] == [5, 7, 9]


def test_resume_says_whether_the_sweep_existed(swept):
    """resume=True of a name not in the store starts the sweep (scripts may always pass
    it), and the result says it was created: the CLI prints a note naming the sweeps
    there are, for the mistyped name."""
    import os
    import subprocess
    import sys

    mdb = os.path.join(swept.path, "catalog", "data.mdb")
    with open(mdb, "rb") as f:
        was = f.read()
    again = swept.sweep("sma_cross", {"fast": [5], "slow": [20]}, name="g1", resume=True)
    assert not again.created and again.added == 0
    with open(mdb, "rb") as f:  # a resume with nothing to do writes nothing (2026-12-07:
        assert f.read() == was  # it rewrote the sweep's record)
    incbt_cli = os.path.join(os.path.dirname(sys.executable), "incbt")
    p = subprocess.run(
        [incbt_cli, "--store", swept.path, "sweep", "sma_cross", "-g", "fast=5", "-g", "slow=20",
         "--name", "g2", "--resume"],
        capture_output=True, text=True,
    )
    assert p.returncode == 0, p.stderr
    assert "no sweep named 'g2' to resume: started it (the store's sweeps: g1)" in p.stderr
    assert get_sweep(swept, "g2") is not None


def test_api_names_pivot_and_scalar_grids(swept):
    """A string where ids or names go is one id, not its letters; pivot names what is
    wrong; a grid value may be one number."""
    dry = swept.sweep("sma_cross", {"fast": 4, "slow": [20, 25]}, name="g3", dry_run=True)
    assert repr(dry) == ("<Sweep 'g3': 2 run(s) now; this call: 2 new, would compute 4,680 "
                         "bar-steps>")
    one = swept.sweep("sma_cross", {"fast": 4, "slow": [20, 25]}, name="g3")
    assert repr(one) == ("<Sweep 'g3': 2 run(s) now; this call: 2 new, 4,680 bar-steps computed "
                         "in this process>")
    assert len(one.run_ids) == 2
    rid = one.run_ids[0]
    d = swept.drop(rid[:6], dry_run=True)
    assert d.runs == [rid]
    assert swept.verify(rid).runs == 1
    r = swept.backtest("sma_cross", {"fast": 4, "slow": 20}, instruments="S0001")
    assert r.record.universe == ["S0001"]
    with pytest.raises(incbt.UsageError, match="a run id is a string"):
        swept.run(123)
    with pytest.raises(incbt.UsageError, match="give strings, not 5"):
        swept.drop(["x", 5], dry_run=True)
    p = one.pivot("fast", "slow")
    assert p.shape == (2, 1) and p.index.tolist() == [20, 25] and p.columns.tolist() == [4]
    assert str(one.grid.schema.field("p_fast").type) == "int64"
    # its strategy's parameters alone (the runs table holds every strategy's)
    swept.backtest("breakout", {"lookback": 5}, instruments="S0001")
    assert [c for c in one.grid.column_names if c.startswith("p_")] == ["p_fast", "p_slow"]
    board = one.leaderboard()
    assert str(board.schema.field("p_slow").type) == "int64"
    assert sorted(board.column("p_slow").to_pylist()) == [20, 25]
    with pytest.raises(incbt.UsageError, match="has no parameter 'fats'; it has fast, slow"):
        one.pivot("fats", "slow")
    with pytest.raises(incbt.UsageError, match="not 'fast' twice"):
        one.pivot("fast", "fast")
    with pytest.raises(incbt.UsageError, match="unknown metric 'pnl'"):
        one.pivot("fast", "slow", "pnl")
    with pytest.raises(incbt.UsageError, match="unknown metric 'pnl'; one of sharpe, total_pnl"):
        one.leaderboard("pnl")
    with pytest.raises(incbt.UsageError, match="n: give how many runs to list"):
        one.leaderboard(n=-1)  # it said "-p n=-1", the CLI's words
    # a NumPy integer is a count like any (QA 2026-12-08: refused, "not np.int64(1)")
    import numpy as np

    assert one.leaderboard(n=np.int64(1)).to_pylist() == one.leaderboard(n=1).to_pylist()
    assert one.leaderboard("sortino", np.int32(1)).num_rows == 1
    for bad in (np.float64(1.0), True, "1"):
        with pytest.raises(incbt.UsageError, match="n: give how many runs to list"):
            one.leaderboard(n=bad)


def test_pivot_of_a_grid_of_three_parameters_needs_agg(swept, tmp_path):
    f = tmp_path / "three.py"
    f.write_text(
        "import incbt\n\n"
        "@incbt.strategy(params={'a': incbt.Param(int, default=1), 'b': incbt.Param(int, "
        "default=1), 'c': incbt.Param(int, default=1)}, state=('n',))\n"
        "def three(p, s, o, h, l, c, v, i):\n"
        "    s[0] += 1\n"
        "    return 1 if (int(s[0]) // int(p[0] + p[1] + p[2])) % 2 else -1\n"
    )
    g = swept.sweep("three", {"a": [1, 2], "b": [1, 2], "c": [3, 4]}, name="g4",
                    strategies_file=f)
    with pytest.raises(incbt.UsageError, match="2 runs of sweep 'g4' share the cell b=1, a=1"):
        g.pivot("a", "b")
    m = g.grid.to_pandas()
    best = g.pivot("a", "b", agg="max")
    assert best.loc[1, 1] == m[(m.p_a == 1) & (m.p_b == 1)].sharpe.max()
    assert g.pivot("a", "b", agg="min").loc[1, 1] == m[(m.p_a == 1) & (m.p_b == 1)].sharpe.min()


def test_a_sweep_says_which_new_runs_the_store_held_already(tmp_path):
    """Points another sweep (or a backtest) computed are new to this sweep but reused:
    the summary says so (it said '4 new' and computed nothing, which read as a bug)."""
    s = ingested(tmp_path)
    a = s.sweep("sma_cross", {"fast": [3, 5], "slow": [20, 30]}, name="a")
    assert (a.added, a.reused) == (4, 0) and a.report.bars_processed > 0
    b = s.sweep("sma_cross", {"fast": [3, 5, 8], "slow": [20, 30]}, name="b")
    assert (b.added, b.reused) == (6, 4)
    assert b.report.bars_processed == a.report.bars_processed // 2  # the 2 runs of fast=8
    assert "this call: 6 new, 4 of them reused" in repr(b)


def test_a_sweep_that_cannot_take_the_write_lock_leaves_no_record(swept, tmp_path):
    """Found 2026-12-05: the sweep's record was written before the write lock was
    taken; a sweep that timed out waiting (exit 75, "try again later") left a record
    of runs that did not exist, and trying again said the sweep exists."""
    import os
    import subprocess
    import sys

    exe = os.path.join(os.path.dirname(sys.executable), "incbt")
    env = {**os.environ, "INCBT_STORE": swept.path, "INCBT_LOCK_TIMEOUT": "1"}
    cmd = [exe, "sweep", "sma_cross", "-g", "fast=5,6", "-g", "slow=30", "--name", "late"]
    with swept.lock():  # another writer
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 75, p.stderr
    assert get_sweep(swept, "late") is None
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert len(get_sweep(swept, "late")["runs"]) == 2


def test_two_sweeps_growing_one_name_at_once_keep_both_grids(swept):
    """Two `--resume`s of one sweep at once: each reads, grows and writes the record
    under the write lock, so neither's points are lost (the last writer's alone were
    kept, found 2026-12-05)."""
    import os
    import subprocess
    import sys

    exe = os.path.join(os.path.dirname(sys.executable), "incbt")
    env = {**os.environ, "INCBT_STORE": swept.path}
    swept.sweep("sma_cross", {"fast": [1], "slow": [30]}, name="grow")
    base = [exe, "sweep", "sma_cross", "-g", "slow=30", "--name", "grow", "--resume"]
    procs = [
        subprocess.Popen([*base, "-g", grid], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for grid in ("fast=2:9:1", "fast=10:17:1")
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    fasts = swept.sql("SELECT r.p_fast AS f FROM sweeps s JOIN runs r USING (run_id) "
                      "WHERE s.sweep = 'grow'").column("f").to_pylist()
    assert sorted(fasts) == [float(f) for f in range(1, 18)], sorted(fasts)


@pytest.mark.filterwarnings("ignore::incbt.StrategyFailureWarning")  # failing is the point
def test_a_run_that_failed_everywhere_stays_in_the_sweeps_views(swept, tmp_path):
    """A run with no portfolio row (its strategy failed on every instrument) was left
    out of grid, leaderboard and the grid query (found 2026-12-05): the worst cases
    could not be seen."""
    from incbt.queries import find_query

    f = fails_strategy(tmp_path)
    g = swept.sweep("fails", {"n": [5, 7], "give_up": [0, 1]}, name="fails",
                    strategies_file=f)
    assert g.grid.num_rows == 4
    assert sorted(g.grid.column("sharpe").is_null().to_pylist()) == [False, False, True, True]
    board = g.leaderboard()
    assert board.num_rows == 4 and board.column("failed_pairs").to_pylist()[-2:] == [2, 2]
    q = swept.sql(find_query("grid", swept.path), params={"sweep": "fails"})
    assert q.num_rows == 4


def test_a_sweep_interrupted_before_its_first_commit_is_said_and_not_verified(tmp_path):
    """Its record lists runs never committed: status said all was up to date and
    verify --sweep passed having compared nothing (found 2026-12-05)."""
    import os

    from incbt.catalog import runs as rc

    generate(str(tmp_path / "d"), instruments=2, days=3, start="2024-01-01", seed=3)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    real = rc.put_run
    calls = []

    def interrupted(*a, **k):  # Ctrl-C as the first commit registers its runs
        calls.append(1)
        raise KeyboardInterrupt

    rc.put_run = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            s.sweep("sma_cross", {"fast": [4, 5], "slow": [20]}, name="cut")
    finally:
        rc.put_run = real
    assert calls and len(get_sweep(s, "cut")["runs"]) == 2
    assert s.sql("SELECT count(*) AS n FROM runs")["n"][0].as_py() == 0
    # the Python API says it too (QA 2026-12-06: status "all up to date", update nothing)
    for res in (s.status(), s.update()):
        assert res.unfinished_sweeps == {"cut": (2, 2)}
        assert "1 sweep(s) interrupted before some of their runs" in repr(res)
    done = s.sweep("sma_cross", {"fast": [4, 5], "slow": [20]}, name="cut", resume=True,
                   dry_run=True)
    assert done.unfinished == 2 and "this call: 0 new, 2 left by an interrupted call" \
        in repr(done), repr(done)
    env = {**os.environ, "INCBT_STORE": s.path}
    p = run_incbt(["status"], env=env)
    said = " ".join((p.stdout + p.stderr).split())
    assert "sweep 'cut': 2 of its 2 run(s) not computed yet (it was interrupted:" in said, said
    # update and the sweep's report say it too (QA 2026-12-05: "all up to date", and a
    # report of 0 runs without a word)
    p = run_incbt(["update"], env=env)
    said = " ".join((p.stdout + p.stderr).split())
    assert p.returncode == 0 and "sweep 'cut': 2 of its 2 run(s) not computed yet" in said, said
    from incbt.report import sweep_report

    html = sweep_report(s, "cut")
    assert "Not finished: 2 of the sweep&#x27;s 2 runs were never computed" in html or (
        "Not finished: 2 of the sweep's 2 runs were never computed" in html)
    assert "--name cut --resume" in html
    rep = s.verify(sweep="cut")
    assert not rep.ok and len(rep.stale) == 2
    s.sweep("sma_cross", {"fast": [4, 5], "slow": [20]}, name="cut", resume=True)
    assert s.verify(sweep="cut").ok


def test_a_resume_grows_the_sweeps_grid_along_the_parameters_it_gives(tmp_path):
    """Found 2026-12-05: `--resume -g fast=...` gave the parameters left out their
    defaults (points no one asked for, silently), and the record kept the latest grid
    alone. A parameter left out keeps the sweep's values; the record keeps each grid;
    no grid at all finishes the sweep as it is."""
    s = ingested(tmp_path)
    s.sweep("sma_cross", {"fast": [3, 5], "slow": [20, 30]}, name="g")
    r = s.sweep("sma_cross", {"fast": [8]}, name="g", resume=True)
    assert (r.added, r.kept) == (2, {"slow": [20, 30]})
    pts = s.sql("SELECT r.p_fast AS f, r.p_slow AS s FROM sweeps w JOIN runs r USING (run_id) "
                "WHERE w.sweep = 'g' ORDER BY w.point").to_pylist()
    assert [(p["f"], p["s"]) for p in pts] == [
        (3, 20), (3, 30), (5, 20), (5, 30), (8, 20), (8, 30)]
    rec = get_sweep(s, "g")
    assert rec["grids"] == [{"fast": [3, 5], "slow": [20, 30]}, {"slow": [20, 30], "fast": [8]}]
    assert r.grids == rec["grids"]  # the sweep object says them (QA 2026-12-06: only points)
    again = s.sweep("sma_cross", name="g", resume=True)  # no grid: the sweep as it is
    assert (again.added, again.report.bars_processed, len(again.run_ids)) == (0, 0, 6)
    assert len(get_sweep(s, "g")["grids"]) == 2
    before = tree_state(s.path)
    with pytest.raises(incbt.NotFoundError, match="no sweep 'h'"):
        s.sweep("sma_cross", name="h", resume=True)
    assert tree_state(s.path) == before


def test_the_cli_says_which_values_a_resume_kept_and_lists_parameters_as_declared(tmp_path):
    import os
    import subprocess
    import sys

    s = ingested(tmp_path)
    f = fails_strategy(tmp_path)  # declares n, then give_up
    exe = os.path.join(os.path.dirname(sys.executable), "incbt")
    env = {**os.environ, "INCBT_STORE": s.path, "COLUMNS": "200"}
    cmd = [exe, "sweep", "fails", "--strategies", f, "--name", "f", "-g", "give_up=0"]
    p = subprocess.run([*cmd, "-g", "n=4,6"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert "n=4 give_up=0" in p.stdout, p.stdout  # not alphabetical: give_up=0 n=4
    p = subprocess.run([*cmd[:-2], "-g", "n=8", "--resume"], capture_output=True, text=True,
                       env=env)
    assert p.returncode == 0, p.stderr
    assert "kept the sweep's values of the parameters not given: give_up=0" in p.stdout
    assert "3 run(s), 1 new" in p.stdout, p.stdout
    p = run_incbt(["sweep", "fails", "--strategies", f, "--name", "f", "--resume"], env=env)
    assert p.returncode == 0 and "3 run(s), 0 new" in p.stdout, p.stdout + p.stderr
    p = run_incbt(["sweep", "fails", "--strategies", f], env=env)
    assert p.returncode == 2 and "give the grid" in p.stderr, p.stderr


def test_a_sweep_follows_its_runs_replaced_after_a_code_change(tmp_path):
    """Found 2026-12-05: after the strategy's code changed and `update` replaced the
    sweep's runs, the Sweep object's run_ids and runs still named the old runs, and a
    resume listed both and counted the replacements as new runs."""
    s = ingested(tmp_path)
    f = tmp_path / "mom.py"
    f.write_text(MOM.replace("{SHORT}", "-1"))
    g = s.sweep("mom", {"n": [3, 6]}, name="m", strategies_file=str(f))
    old = g.run_ids
    f.write_text(MOM.replace("{SHORT}", "0"))  # the researcher edits the step
    res = s.update()
    new = [dict(res.replaced)[r] for r in old]
    assert g.run_ids == new != old
    assert [r.run_id for r in g.runs] == new
    assert s.sweeps()["m"].run_ids == new
    r = s.sweep("mom", {"n": [3, 6, 9]}, name="m", strategies_file=str(f), resume=True)
    assert (r.added, r.reused, r.run_ids[:2]) == (1, 0, new)
    assert get_sweep(s, "m")["runs"][:2] == new
    q = s.sql("SELECT run_id FROM sweeps WHERE sweep = 'm' ORDER BY point")
    assert q.column("run_id").to_pylist() == r.run_ids


def test_the_store_lists_its_sweeps_and_runs(tmp_path):
    s = ingested(tmp_path)
    assert s.sweeps() == {} and s.runs() == []
    a = s.sweep("sma_cross", {"fast": [3, 5], "slow": [20]}, name="a")
    b = s.sweep("breakout", {"lookback": [5]}, name="b")
    one = s.backtest("sma_cross", {"fast": 4, "slow": 25})
    listed = s.sweeps()
    assert list(listed) == ["a", "b"]
    assert listed["a"].run_ids == a.run_ids and listed["b"].run_ids == b.run_ids
    assert listed["a"].leaderboard().num_rows == 2
    assert repr(listed["a"]) == "<Sweep 'a': 2 run(s)>"
    # in the order they were registered (a sweep's runs, at once: by id)
    assert [r.run_id for r in s.runs()] == [*sorted(a.run_ids), *b.run_ids, one.run_id]
    assert [r.run_id for r in s.runs("breakout")] == b.run_ids
    s.drop([one.run_id])
    assert one.run_id not in [r.run_id for r in s.runs()]
    # a sweep dropped since: said, not empty tables or DataFusion's schema dump (QA)
    s.drop(sweep="b")
    assert repr(b) == "<Sweep 'b': dropped>"
    for read in (b.leaderboard, lambda: b.grid, lambda: b.pivot("lookback", "lookback")):
        with pytest.raises(incbt.NotFoundError, match="sweep 'b' is not in the store any more"):
            read()
    assert "p_lookback" in s.sql("SELECT * FROM runs").column_names  # the column stays
    with pytest.raises(incbt.UsageError, match="strategy: give a string"):
        s.runs(3)
    assert s.runs("ema_cross") == []  # a built-in without runs
    dry = s.backtest("ema_cross", {"fast": 3, "slow": 9}, dry_run=True)
    assert repr(dry).endswith(": not registered (a dry run: nothing was computed or written)>")
    assert s.run(a.run_ids[0][:8].upper()).run_id == a.run_ids[0]  # ids are lower-case hex
    with pytest.raises(incbt.NotFoundError, match=r"is one name: give the instruments as a "
                       r"list, \['S0000', 'S0001'\]"):
        s.backtest("sma_cross", {"fast": 4, "slow": 25}, instruments="S0000,S0001")
    with pytest.raises(incbt.StrategyError, match=r"'notional' = inf is not finite; valid: more "
                       r"than 0 and at most 1e\+15$"):  # not "[0.0, 1e+15]" (QA 2026-12-07)
        s.backtest("sma_cross", {"fast": 4, "slow": 25}, notional=float("inf"))
    with pytest.raises(incbt.StrategyError, match=r"'notional' = -5.0 must be > 0 \(and at most "
                       r"1e\+15\)$"):  # not "valid range [0.0, ...]", which holds 0 (QA)
        s.backtest("sma_cross", {"fast": 4, "slow": 25}, notional=-5)
    with pytest.raises(incbt.NotFoundError, match="no strategy 'sma_crosss'.*mean 'sma_cross'"):
        s.runs("sma_crosss")  # a typo: said, not an empty list


def test_a_resume_keeps_what_it_is_not_given(tmp_path):
    """Found by QA 2026-12-05: a parameter left out kept only the latest grid's values (not
    all the sweep's), no grid on a --random sweep sampled nothing and took the whole
    grid, and a resume without the sweep's execution parameters or instruments was
    refused. What a resume leaves out is the sweep's: its grids' values, its sample,
    its setup."""
    s = ingested(tmp_path, instruments=3)
    s.sweep("sma_cross", {"fast": "5:20:5", "slow": [50, 100]}, name="g", fee_bps=1.0,
            instruments=["S0000", "S0001"])
    s.sweep("sma_cross", {"fast": [25]}, name="g", resume=True)
    r = s.sweep("sma_cross", {"slow": [200]}, name="g", resume=True)
    assert (r.added, r.kept) == (5, {"fast": [5, 10, 15, 20, 25]})
    rows = s.sql("SELECT DISTINCT r.fee_bps AS f, r.instruments AS i FROM sweeps w "
                 "JOIN runs r USING (run_id) WHERE w.sweep = 'g'").to_pylist()
    assert rows == [{"f": 1.0, "i": 2}], rows  # 2 instruments, every run
    with pytest.raises(incbt.UsageError, match="was made with fee_bps 1 \\(now 2\\)"):
        s.sweep("sma_cross", {"slow": [300]}, name="g", resume=True, fee_bps=2.0)
    s.sweep("sma_cross", {"fast": "2:40:1", "slow": "50:100:5"}, name="r", random=3, seed=7)
    again = s.sweep("sma_cross", name="r", resume=True)
    assert (len(again.run_ids), again.added, again.report.bars_processed) == (3, 0, 0)
    assert get_sweep(s, "r")["spec"]["random"] == 3
    # grown along fast, a sample keeps its sampled slow values, not the range's 11
    # (they took the whole range, 2026-12-05); each grid's sample is recorded
    slows = sorted({s.run(rid).record.params["slow"] for rid in again.run_ids})
    grown = s.sweep("sma_cross", {"fast": [41]}, name="r", resume=True)
    assert grown.kept == {"slow": slows} and grown.added == len(slows)
    rec = get_sweep(s, "r")
    assert rec["samples"] == [[3, 7], [None, None]], rec["samples"]
    from incbt.report import _grids_line

    line = _grids_line(rec)
    assert line.startswith("grid fast=41 slow=") and "(random 3, seed 7)" in line, line


def test_a_resume_keeps_the_default_a_first_grid_gave_a_parameter(tmp_path):
    """Found by QA 2026-12-05: a sweep of fast alone (slow at its default, 50) grown along
    slow, then along fast, kept slow=100 alone: the point (20, 50) was missing."""
    s = ingested(tmp_path)
    s.sweep("sma_cross", {"fast": [5, 10]}, name="d")
    s.sweep("sma_cross", {"slow": [100]}, name="d", resume=True)
    r = s.sweep("sma_cross", {"fast": [20]}, name="d", resume=True)
    assert r.kept == {"slow": [50, 100]} and r.added == 2
    # a sampled sweep keeps it too (review 2026-12-05)
    s.sweep("sma_cross", {"fast": "5:9:1"}, name="ds", random=3, seed=1)
    s.sweep("sma_cross", {"slow": [60]}, name="ds", resume=True)
    assert s.sweep("sma_cross", {"fast": [11]}, name="ds", resume=True,
                   dry_run=True).kept == {"slow": [50, 60]}
    pts = s.sql("SELECT r.p_fast AS f, r.p_slow AS s FROM sweeps w JOIN runs r USING (run_id) "
                "WHERE w.sweep = 'd'").to_pylist()
    assert sorted((p["f"], p["s"]) for p in pts) == [
        (5, 50), (5, 100), (10, 50), (10, 100), (20, 50), (20, 100)]
    # a resume that adds no point does not grow it; the report says what the runs cover
    assert s.sweep("sma_cross", {"fast": [5]}, name="d", resume=True).added == 0
    assert len(get_sweep(s, "d")["grids"]) == 3
    from incbt.report import sweep_report

    html = sweep_report(s, "d")
    assert "6 runs over fast=5,10,20 slow=50,100 · grid fast=20 slow=50,100 (grown 2 times" in html


def test_a_resume_keeps_a_sweep_to_its_strategies_file(tmp_path):
    """Found by QA 2026-12-05: `--resume --strategies OTHER.py` was taken (one sweep held
    runs of two codes), and the sweep's file moved away ended the resume on a raw
    FileNotFoundError."""
    s = ingested(tmp_path)
    f, other = tmp_path / "mom.py", tmp_path / "other.py"
    f.write_text(MOM.replace("{SHORT}", "-1"))
    other.write_text(MOM.replace("{SHORT}", "0"))
    s.sweep("mom", {"n": [3, 6]}, name="m", strategies_file=str(f))
    before = tree_state(s.path)
    with pytest.raises(incbt.UsageError, match=f"runs strategy 'mom' of {f}, not of {other}"):
        s.sweep("mom", {"n": [9]}, name="m", strategies_file=str(other), resume=True)
    assert tree_state(s.path) == before
    # the same file, however named, is the sweep's
    rel = os.path.relpath(f)
    assert s.sweep("mom", {"n": [9]}, name="m", strategies_file=rel, resume=True).added == 1
    f.rename(tmp_path / "moved.py")
    before = tree_state(s.path)
    for given in (None, str(tmp_path / "moved.py")):
        with pytest.raises((incbt.NotFoundError, incbt.UsageError), match="mom.py"):
            s.sweep("mom", {"n": [12]}, name="m", strategies_file=given, resume=True)
    with pytest.raises(incbt.NotFoundError, match="which is not there any more: put the file"):
        s.sweep("mom", {"n": [12]}, name="m", resume=True)
    assert tree_state(s.path) == before
    (tmp_path / "moved.py").rename(f)
    # a strategy object of another file is refused as the file is (review 2026-12-05)
    from incbt.engine import load_strategies

    theirs = load_strategies(str(other))["mom"]
    with pytest.raises(incbt.UsageError, match=f"runs strategy 'mom' of {f}, not of {other}"):
        s.sweep(theirs, {"n": [12]}, name="m", resume=True)
    # a sweep of another strategy is said as such first (not as another file)
    with pytest.raises(incbt.UsageError, match="'m' is a sweep of 'mom', not 'sma_cross'"):
        s.sweep("sma_cross", {"fast": [3], "slow": [20]}, name="m", resume=True,
                strategies_file=str(other))
    assert tree_state(s.path) == before


@pytest.mark.filterwarnings("ignore:--random:UserWarning")  # said: the point here
def test_a_sample_smaller_than_asked_says_why(tmp_path):
    """Found by QA 2026-12-05: --random 20 of a grid of 8 valid points took 8, and a
    sample of a huge grid stopped drawing, both without a word; a huge grid whose draws
    were all rejected was said to have no valid point at all."""
    s = ingested(tmp_path)
    r = s.sweep("sma_cross", {"fast": [2, 3, 4, 40], "slow": [20, 30, 50]}, random=20,
                dry_run=True)
    assert len(r.run_ids) == 10 and r.short == (
        "--random 20: the grid has 10 valid point(s) (strategy 'sma_cross' rejects 2): all "
        "of them are taken")
    big = {"fast": "1:1000000:1", "slow": "2:3000:1"}  # fast < slow: 0.15% of the points
    r = s.sweep("sma_cross", big, random=100, dry_run=True)
    n = len(r.run_ids)
    assert 0 < n < 100, n
    assert r.short.startswith(f"--random 100: {n} valid point(s) found in "), r.short
    with pytest.raises(incbt.StrategyError, match=(
            r"--random 1: no valid point in 20 draws from the grid's 998,001,999 points "
            r"\(strategy 'sma_cross' rejected each, e.g. ")):
        s.sweep("sma_cross", {"fast": "1000:1000000:1", "slow": "2:1000:1"}, random=1,
                dry_run=True)
    assert s.sweep("sma_cross", {"fast": [5], "slow": [20]}, dry_run=True).short is None


def test_the_python_api_warns_what_the_cli_notes(tmp_path):
    """Found by QA 2026-12-05: resume=True of a mistyped name started a new sweep, and a
    sample fell short of random=N, both without a word in Python (the CLI says them)."""
    s = ingested(tmp_path)
    s.sweep("sma_cross", {"fast": [3], "slow": [20]}, name="grid1")
    with pytest.warns(UserWarning, match=r"no sweep named 'gird1' to resume: started it "
                      r"\(the store's sweeps: grid1\)"):
        s.sweep("sma_cross", {"fast": [4], "slow": [20]}, name="gird1", resume=True)
    with pytest.warns(UserWarning, match="--random 5: the grid has 2 valid point"):
        s.sweep("sma_cross", {"fast": [3, 4], "slow": [20]}, random=5, dry_run=True)


def test_a_refused_resume_leaves_the_sweeps_record_as_it_was(tmp_path):
    """Found by QA 2026-12-05: a resume refused because the strategy's file changed (its
    runs' code is not the file's: `incbt update` first) had grown the record already."""
    s = ingested(tmp_path)
    f = tmp_path / "mom.py"
    f.write_text(MOM.replace("{SHORT}", "-1"))
    s.sweep("mom", {"n": [3, 6]}, name="m", strategies_file=str(f))
    f.write_text(MOM.replace("{SHORT}", "0"))
    before = tree_state(s.path)
    with pytest.raises(incbt.StrategyError, match="not the code its runs were registered with"):
        s.sweep("mom", {"n": [9]}, name="m", strategies_file=str(f), resume=True)
    assert tree_state(s.path) == before


def test_numpy_values_make_a_grid(tmp_path):
    """np.arange and NumPy scalars, as a researcher writes a grid (found by QA 2026-12-05:
    a TypeError from the record's JSON after a dry run that passed), and generators."""
    import numpy as np

    s = ingested(tmp_path)
    a = s.sweep("sma_cross", {"fast": np.arange(5, 20, 5), "slow": np.int64(50)}, name="a")
    b = s.sweep("sma_cross", {"fast": (x for x in (5, 10, 15)), "slow": [50.0]}, name="b")
    assert a.run_ids == b.run_ids and len(a.run_ids) == 3
    assert get_sweep(s, "a")["grids"] == [{"fast": [5, 10, 15], "slow": [50]}]


def test_a_resume_says_which_of_its_runs_were_dropped_and_computes_them_again(tmp_path):
    """It said "0 new" while it computed the dropped points again (QA, 2026-12-05)."""
    s = ingested(tmp_path)
    g = s.sweep("sma_cross", {"fast": [3, 5], "slow": [20]}, name="g")
    s.drop([g.run_ids[0]])
    again = s.sweep("sma_cross", name="g", resume=True)
    assert (again.added, again.again) == (0, 1) and again.report.bars_processed > 0
    assert again.run_ids == g.run_ids and s.verify(sweep="g").ok


def test_a_resume_without_a_grid_still_checks_what_it_is_given(tmp_path):
    """Found by QA 2026-12-05: with no -g, a different fee, instrument list, start or
    --random was ignored without a word (the same with -g is refused)."""
    s = ingested(tmp_path, instruments=3)
    f = tmp_path / "mom.py"
    f.write_text(MOM.replace("{SHORT}", "-1"))
    s.sweep("mom", {"n": [3, 6]}, name="m", strategies_file=str(f))
    before = tree_state(s.path)
    for kw, match in (({"fee_bps": 1.0}, "was made with fee_bps 0 \\(now 1\\)"),
                      ({"instruments": ["S0001"]}, "was made with instruments all"),
                      ({"start": "2024-03-05"}, "start the first bar"),
                      ({"random": 1}, "--random 1 without -g")):
        with pytest.raises(incbt.UsageError, match=match):
            s.sweep("mom", name="m", resume=True, **kw)
    assert tree_state(s.path) == before
    # the strategies file of its runs, when none is given (as `update` takes it)
    old = s.sweeps()["m"]
    r = s.sweep("mom", {"n": [9]}, name="m", resume=True)
    assert (r.added, len(r.run_ids)) == (1, 3)
    assert old.run_ids == r.run_ids  # an object of the sweep sees it grown


def _interrupted_before_any_commit(s, name, f) -> None:
    """A sweep of mom, n in {3, 6}, stopped (Ctrl-C) as its first commit registers its
    runs: its record is written, none of its runs."""
    from incbt.catalog import runs as rc

    real = rc.put_run

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    rc.put_run = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            s.sweep("mom", {"n": [3, 6]}, name=name, strategies_file=str(f))
    finally:
        rc.put_run = real


def test_a_user_strategy_sweep_interrupted_before_any_commit_resumes_without_its_file(
        tmp_path):
    """Found by review 2026-12-05: with no run committed, nothing named the sweep's file,
    so `--resume` without --strategies said "unknown strategy" (and the report's hint did
    not give it). The record names it now."""
    s = ingested(tmp_path)
    f = tmp_path / "mom.py"
    f.write_text(MOM.replace("{SHORT}", "-1"))
    _interrupted_before_any_commit(s, "cut", f)
    assert get_sweep(s, "cut")["source"] == str(f)
    from incbt.report import sweep_report

    assert "--name cut --resume` computes them" in sweep_report(s, "cut")
    r = s.sweep("mom", name="cut", resume=True)
    assert len(r.run_ids) == 2 and r.report.bars_processed > 0
    assert s.verify(sweep="cut").ok


def test_a_resume_that_adds_nothing_leaves_the_sweeps_spec(tmp_path):
    """Found by review 2026-12-05: a resume whose point the sweep held already wrote its
    own spec (no random, no seed), and a later resume of the sample, with its --random
    and --seed, was refused as if the sweep were a whole grid."""
    s = ingested(tmp_path)
    s.sweep("sma_cross", {"fast": "2:40:1", "slow": "50:100:5"}, name="r", random=3, seed=7)
    p = s.run(get_sweep(s, "r")["runs"][0]).record.params
    assert s.sweep("sma_cross", {"fast": [p["fast"]], "slow": [p["slow"]]}, name="r",
                   resume=True).added == 0
    assert get_sweep(s, "r")["spec"]["random"] == 3
    again = s.sweep("sma_cross", name="r", resume=True, random=3, seed=7)
    assert len(again.run_ids) == 3 and again.added == 0


def test_a_large_grid_shows_progress_while_it_is_registered_and_planned(swept, monkeypatch):
    """Found by QA 2026-12-05: a sweep of 100,000 points said nothing for seconds while
    its runs were registered and planned. From COUNTED_FROM runs, both are counted."""
    import incbt.runs as runs_mod

    monkeypatch.setattr(runs_mod, "COUNTED_FROM", 10)
    seen: dict[str, list[int]] = {}

    class Task:
        def __init__(self, name, total):
            self.name, seen[name] = name, [0, total, 0]

        def advance(self, n=1):
            seen[self.name][0] += n

        def done(self):
            seen[self.name][2] += 1

    class Reporter:
        def task(self, name, total):
            return Task(name, total)

    swept.sweep("sma_cross", {"fast": "2:13:1", "slow": [30]}, dry_run=True,
                progress=Reporter())
    assert seen["registering runs"] == [12, 12, 1] and seen["planning runs"] == [12, 12, 1]
    seen.clear()
    swept.sweep("sma_cross", {"fast": [3], "slow": [30]}, dry_run=True, progress=Reporter())
    assert "registering runs" not in seen  # a small grid: no bar


def test_a_point_failed_everywhere_is_said_and_kept_in_the_pivot(tmp_path):
    """QA 2026-12-06: a run whose strategy failed on every instrument read "no results
    yet" (an update does not fill it in) and why_empty() said nothing; a partly failed
    run did not say so; the pivot dropped the failed grid point's row."""
    import warnings

    s = ingested(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sw = s.sweep("fails", {"n": [2, 3], "give_up": [0, 1]}, name="f",
                     strategies_file=fails_strategy(tmp_path))
    dead = [r for r in sw.runs if r.record.params["give_up"] == 1]
    assert len(dead) == 2
    for r in dead:
        text = repr(r)
        assert ": no results; the strategy failed on 2 instrument(s)" in text, text
        assert "gave up" in r.why_empty()
    assert all("failed" not in repr(r) for r in sw.runs if r.record.params["give_up"] == 0)
    grid = sw.pivot("n", "give_up", "sharpe")
    assert list(grid.index) == [0, 1] and grid.loc[1].isna().all()


def test_a_sweep_interrupted_before_any_commit_then_edited_resumes_with_the_new_code(
        tmp_path):
    """QA 2026-12-06: the record's runs were of the code before the edit and never
    registered; `--resume` computed nothing and failed on SQL, `-g` added the new runs
    beside them for good, and status kept saying "--resume computes them"."""
    s = ingested(tmp_path)
    f = tmp_path / "mom.py"
    f.write_text(MOM.replace("{SHORT}", "-1"))
    _interrupted_before_any_commit(s, "cut", f)
    f.write_text(MOM.replace("{SHORT}", "0"))  # the edit
    r = s.sweep("mom", name="cut", resume=True)
    fresh = s.sweep("mom", {"n": [3, 6]}, name="fresh", strategies_file=str(f))
    assert r.run_ids == fresh.run_ids and r.report.bars_processed > 0
    assert s.sql("SELECT count(*) AS n FROM sweeps s JOIN runs r USING (run_id) "
                 "WHERE s.sweep = 'cut'")["n"][0].as_py() == 2
    assert not s.status().stale and s.verify(sweep="cut").ok
    grown = s.sweep("mom", {"n": [3, 6, 9]}, name="cut", resume=True)
    assert len(grown.run_ids) == 3 and grown.added == 1


def test_a_commit_that_outgrows_the_catalogs_map_counts_its_segments_once(tmp_path,
                                                                           monkeypatch):
    """QA 2026-12-06: a transaction that outgrew the map ran again after growing it, and
    its event counted every segment twice: `sum(segments)` of the sweep's op was more
    than the command printed."""
    monkeypatch.setenv("INCBT_MAP_SIZE_MB", "1")  # outgrown by the sweep's snapshots
    generate(str(tmp_path / "d"), instruments=4, days=30, start="2024-01-01", seed=2)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    before = s.catalog.env.env.info()["map_size"]
    r = s.sweep("sma_cross", {"fast": "2:20:2", "slow": "30:60:10"}, name="g")
    assert s.catalog.env.env.info()["map_size"] > before  # it did grow
    got = s.sql("SELECT sum(segments) AS n, sum(bar_steps) AS b FROM events "
                "WHERE kind = 'sweep'").to_pylist()[0]
    assert (got["n"], got["b"]) == (r.report.segments, r.report.bars_processed)


@pytest.mark.parametrize("address, match", [
    ("garbage", "is not an address Ray takes"),
    ("localhost", "is not an address Ray takes"),
    ("", "--address is empty"),
    ("127.0.0.1:99999", "is not an address Ray takes"),
    ("127.0.0.1:1", "cannot reach a Ray cluster"),
])
def test_an_address_ray_cannot_take_is_refused_before_anything(tmp_path, address, match):
    """QA 2026-12-06: Ray's ValueError (exit 3) for 'garbage'; '' started a local Ray; a
    dry run said "would compute (ray)" for an address that takes no connection."""
    s = ingested(tmp_path)
    before = tree_state(s.path)
    for dry in (True, False):
        with pytest.raises(incbt.UsageError, match=match):
            s.sweep("sma_cross", {"fast": [5], "slow": [20]}, name="a", address=address,
                    dry_run=dry)
    assert tree_state(s.path) == before


def test_a_dict_is_no_list_of_grid_values(tmp_path):
    """QA 2026-12-06: {"a": 1} was read as its keys ("'a' is not an int")."""
    s = ingested(tmp_path)
    with pytest.raises(incbt.UsageError, match=r"give a list, .* not \{'a': 1\}"):
        s.sweep("sma_cross", {"fast": {"a": 1}, "slow": [20]}, name="x", dry_run=True)


def test_a_sweep_made_of_runs_the_store_holds_is_an_event(tmp_path):
    """QA 2026-12-06: a sweep made or grown only of runs already in the store changed the
    `sweeps` table with no trace in the event log."""
    s = ingested(tmp_path)
    s.sweep("sma_cross", {"fast": [5, 7], "slow": [20]}, name="a")
    n = s.sql("SELECT count(*) AS n FROM events")["n"][0].as_py()
    s.sweep("sma_cross", {"fast": [5, 7], "slow": [20]}, name="b")  # the same runs
    ev = s.sql("SELECT kind, message, segments FROM events ORDER BY seq DESC LIMIT 1").to_pylist()
    assert ev == [{"kind": "sweep", "segments": None,
                   "message": "sweep b: 2 run(s), 2 new to it, every one in the store "
                              "already: nothing computed"}], ev
    s.sweep("sma_cross", name="b", resume=True)  # nothing changed: no event
    assert s.sql("SELECT count(*) AS n FROM events")["n"][0].as_py() == n + 1


def test_a_sweep_named_from_its_spec_run_again_is_that_sweep(swept):
    """QA 2026-12-06: the same sweep again without --name was refused ("exists; continue
    it with --resume"); its name is its spec's, so it is that sweep: nothing computed
    again, as for a backtest run twice. Another spec is another sweep."""
    grid = {"fast": [3, 4], "slow": [20]}
    first = swept.sweep("sma_cross", grid)
    assert first.name.startswith("sweep-") and first.added == 2
    again = swept.sweep("sma_cross", grid)
    assert again.name == first.name and again.added == 0
    assert again.report.bars_processed == 0 and again.run_ids == first.run_ids
    other = swept.sweep("sma_cross", grid, fee_bps=1.0)
    assert other.name != first.name and other.added == 2


def test_a_sweep_with_nothing_to_compute_starts_no_ray(swept, monkeypatch):
    """QA 2026-12-06: a resume of a finished sweep with --workers 1 started a local Ray
    (2.6 s) to compute nothing."""
    import incbt.execute.ray_exec as ray_exec

    grid = {"fast": [3, 5], "slow": [25]}
    swept.sweep("sma_cross", grid, name="noray")

    def refused(*a, **k):
        raise AssertionError("a Ray executor was made for nothing to compute")

    monkeypatch.setattr(ray_exec, "RayExecutor", refused)
    again = swept.sweep("sma_cross", grid, name="noray", resume=True, workers=1)
    assert again.report.bars_processed == 0 and again.added == 0


def test_points_the_strategy_rejects_are_said_in_python_too(swept):
    """QA 2026-12-06: in Python they were only counted in the sweep's repr."""
    with pytest.warns(UserWarning, match=r"skipped: 1 grid point\(s\) the strategy rejects, "
                      r"e.g. \{'fast': 30, 'slow': 20\}.*\(\.skipped lists them\)"):
        res = swept.sweep("sma_cross", {"fast": [5, 30], "slow": [20]}, name="rejects")
    assert len(res.skipped) == 1


def test_a_sweep_on_ray_of_new_runs_plans_once(swept, monkeypatch):
    """A sweep asked to run on Ray with runs never computed has work for it without a
    dry run's plan (2026-12-06: that plan was serial work of the driver, 15-110 ms of a
    ~1 s sweep on 2 workers); with every run computed, the dry run decides, and no Ray
    is made for nothing (the test above)."""
    import incbt.execute.ray_exec as ray_exec
    import incbt.runs as runs

    plans, made = [], []
    plan_runs = runs.plan_runs

    def counted(*a, **k):
        plans.append(k.get("progress"))
        return plan_runs(*a, **k)

    def here(workers, address):  # this process's executor in Ray's place
        made.append(workers)
        return runs.LocalExecutor.of(swept)

    monkeypatch.setattr(runs, "plan_runs", counted)
    monkeypatch.setattr(ray_exec, "RayExecutor", here)
    grid = {"fast": [3, 5], "slow": [27]}
    r = swept.sweep("sma_cross", grid, name="once", workers=2)
    assert r.report.bars_processed > 0 and made == [2] and len(plans) == 1
    plans.clear()
    again = swept.sweep("sma_cross", grid, name="once", resume=True, workers=2)
    # the dry run that finds nothing to compute, then the call's own (no Ray made)
    assert again.report.bars_processed == 0 and made == [2] and len(plans) == 2


def test_a_stores_sweep_shows_its_parameters_in_the_strategys_order(swept):
    """bollinger declares window, then k: a sweep from store.sweeps() listed p_k first,
    the record's sorted names (QA 2026-12-07); the sweep call's own object did not."""
    made = swept.sweep("bollinger", {"window": [10, 20], "k": [1.5]}, name="order")
    again = swept.sweeps()["order"]
    for sw in (made, again):
        assert sw.parameters() == ["window", "k"]
        assert sw.leaderboard().column_names[2:4] == ["p_window", "p_k"]
        assert sw.stats().column_names[2:4] == ["p_window", "p_k"]
        # the grid's are the runs table's columns, by name there: reordered (QA 2026-12-07)
        grid = sw.grid.column_names
        assert [c for c in grid if c.startswith("p_")] == ["p_window", "p_k"]
        assert grid.index("p_window") == grid.index("slippage_bps") + 1
