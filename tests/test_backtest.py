"""Backtests through the store: reference agreement, determinism, resumes, SQL tables."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pyarrow.compute as pc
import pytest
from cli_process import run_incbt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_backtest import reference_backtest

import incbt
from incbt.bars.generate import generate
from incbt.execute import DirectBars, SqlBars
from incbt.results.metrics import finalize, fold, initial_acc

PARAMS = {
    "sma_cross": {"fast": 5, "slow": 23},
    "breakout": {"lookback": 40},
    "ema_cross": {"fast": 7, "slow": 30},
    "bollinger": {"window": 30, "k": 1.5},
    "rsi": {"window": 14, "lower": 35.0, "upper": 65.0},
}
DAILY = "SELECT * FROM daily ORDER BY run_id, instrument, date"
FILLS = "SELECT * FROM fills ORDER BY run_id, instrument, ts"
METRICS = "SELECT * FROM metrics ORDER BY run_id, scope, instrument"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("bt")
    generate(str(out / "all"), instruments=3, days=6, start="2024-02-26", seed=21)
    generate(str(out / "head"), instruments=3, days=6, start="2024-02-26", seed=21,
             to_day="2024-02-28")
    generate(str(out / "tail"), instruments=3, days=6, start="2024-02-26", seed=21,
             from_day="2024-02-29")
    return out


def _store(tmp_path, name, *paths):
    s = incbt.init(str(tmp_path / name))
    for p in paths:
        s.ingest(str(p))
    return s


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_engine_through_the_store_equals_the_reference(tmp_path, data, name):
    s = _store(tmp_path, "s", data / "all")
    run = s.backtest(name, PARAMS[name], fee_bps=2.0, slippage_bps=3.0)
    daily = run.daily.to_pandas()
    fills = run.fills.to_pandas()
    for inst in s.instruments():
        b = s.bars(inst)
        import pandas as pd

        bars = pd.DataFrame({"ts": b.ts, "open": b.open, "high": b.high, "low": b.low,
                             "close": b.close, "volume": b.volume})
        ref = reference_backtest(name, PARAMS[name], bars, fee_bps=2.0, slippage_bps=3.0)
        got = daily[daily.instrument == inst]
        np.testing.assert_allclose(got.equity.to_numpy(), ref.daily.equity.to_numpy(),
                                   rtol=1e-9, atol=1e-6)
        assert got.fills.tolist() == ref.daily.fills.tolist()
        f = fills[fills.instrument == inst]
        assert len(f) == len(ref.fills)
        np.testing.assert_array_equal(f.ts.astype("int64").to_numpy(),
                                      ref.fills.ts.to_numpy())
        np.testing.assert_allclose(f.qty.to_numpy(), ref.fills.qty.to_numpy(), rtol=1e-9)
        np.testing.assert_allclose(f.price.to_numpy(), ref.fills.price.to_numpy(), rtol=1e-12)


def test_metrics_follow_the_semantics(tmp_path, data):
    s = _store(tmp_path, "s", data / "all")
    run = s.backtest("sma_cross", PARAMS["sma_cross"], fee_bps=1.0)
    d = run.daily.to_pandas()
    m = run.metrics.to_pandas()
    for inst, g in d.groupby("instrument"):
        r = g.pnl.to_numpy() / 100000.0
        row = m[m.instrument == inst].iloc[0]
        assert row.total_pnl == pytest.approx(g.pnl.sum(), rel=1e-12)
        assert row.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(252), rel=1e-9)
        eq = g.equity.to_numpy()
        assert row.max_drawdown == pytest.approx(
            np.max(np.maximum.accumulate(np.maximum(eq, 0.0)) - eq), rel=1e-12)
        assert row.fills == g.fills.sum() and row.fees == pytest.approx(g.fees.sum())
    port = m[m.scope == "portfolio"].iloc[0]
    pnl = d.groupby("date").pnl.sum().to_numpy()
    r = pnl / (100000.0 * 3)
    assert port.total_pnl == pytest.approx(pnl.sum(), rel=1e-9)
    assert port.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(252), rel=1e-9)
    assert port.fills == d.fills.sum()


def test_same_run_twice_computes_nothing(tmp_path, data):
    s = _store(tmp_path, "s", data / "all")
    a = s.backtest("breakout", {"lookback": 30})
    assert a.report.bars_processed == 3 * 6 * 390
    b = s.backtest("breakout", {"lookback": 30})
    assert b.run_id == a.run_id and b.report.bars_processed == 0
    assert s.sql("SELECT count(*) n FROM runs")["n"][0].as_py() == 1
    assert not os.path.exists(os.path.join(s.path, "tmp"))  # the staging folder is removed


def test_negative_zero_is_the_run_of_zero(tmp_path, data):
    """k=-0 was a second run, with the results of k=0 (QA 2026-12-05): one value, one run,
    its parameters stored as 0.0; an execution parameter's -0 too."""
    import math

    s = _store(tmp_path, "s", data / "all")
    a = s.backtest("bollinger", {"window": 20, "k": 0.0})
    assert a.report.bars_processed == 3 * 6 * 390
    for k, fee in ((-0.0, 0.0), ("-0", -0.0), (0.0, -0.0)):
        b = s.backtest("bollinger", {"window": 20, "k": k}, fee_bps=fee)
        assert b.run_id == a.run_id and b.report.bars_processed == 0, (k, fee)
    dry = s.sweep("bollinger", {"window": [20], "k": [-0.0]}, dry_run=True)
    assert dry.run_ids == [a.run_id]
    assert s.sql("SELECT count(*) n FROM runs")["n"][0].as_py() == 1
    assert math.copysign(1.0, s.run(a.run_id).record.params["k"]) == 1.0
    assert str(s.sql("SELECT p_k FROM runs")["p_k"][0].as_py()) == "0.0"


def test_a_dry_run_says_the_work_and_the_id_and_writes_nothing(tmp_path, data):
    from conftest import tree_state

    s = _store(tmp_path, "s", data / "head")
    base = s.backtest("sma_cross", {"fast": 4, "slow": 25})
    s.ingest(str(data / "tail"))
    before = tree_state(s.path)
    dry = s.backtest("sma_cross", [{"fast": 4, "slow": 25}, {"fast": 5, "slow": 25}],
                     dry_run=True)
    fork = s.backtest(None, {"fast": 6}, fork_of=base.run_id, effective="2024-03-01",
                      dry_run=True)
    assert tree_state(s.path) == before
    # the new days of the registered run, every day of the new one; the fork from its day
    assert dry[0].report.bars_processed == 3 * 3 * 390 + 3 * 6 * 390
    assert fork.report.bars_processed == 3 * 3 * 390 + 3 * 2 * 390  # its base first
    real = s.backtest("sma_cross", [{"fast": 4, "slow": 25}, {"fast": 5, "slow": 25}])
    assert [r.run_id for r in real] == [r.run_id for r in dry]
    assert real[0].report.bars_processed == dry[0].report.bars_processed
    p = run_incbt(["--store", s.path, "backtest", "sma_cross", "-p", "fast=7", "-p", "slow=25",
                   "--dry-run"])
    assert p.returncode == 0, p.stderr
    assert f"would compute 3 segment(s) in 3 task(s) over 3 instrument(s), {3 * 6 * 390:,}" \
        in p.stdout and "run id:" in p.stdout
    assert s.sql("SELECT count(*) n FROM runs")["n"][0].as_py() == 2


def test_deterministic_across_stores_and_input_order(tmp_path, data):
    a = _store(tmp_path, "a", data / "all")
    files = sorted(os.listdir(data / "all"), reverse=True)
    b = _store(tmp_path, "b", *[data / "all" / f for f in files])  # days in another order
    ra = a.backtest("ema_cross", PARAMS["ema_cross"], instruments=["S0002", "S0000", "S0001"])
    rb = b.backtest("ema_cross", PARAMS["ema_cross"], instruments=["S0001", "S0002", "S0000"])
    assert ra.run_id == rb.run_id
    for q in (DAILY, FILLS, METRICS):
        assert a.sql(q).equals(b.sql(q)), q


def test_new_days_resume_from_snapshots_and_equal_a_full_run(tmp_path, data):
    inc = _store(tmp_path, "inc", data / "head")
    names = sorted(PARAMS)
    for n in names:
        inc.backtest(n, PARAMS[n], fee_bps=1.0, slippage_bps=2.0)
    inc.ingest(str(data / "tail"))
    for n in names:
        r = inc.backtest(n, PARAMS[n], fee_bps=1.0, slippage_bps=2.0)
        assert r.report.bars_processed == 3 * 3 * 390  # only the 3 new days
    full = _store(tmp_path, "full", data / "all")
    for n in names:
        full.backtest(n, PARAMS[n], fee_bps=1.0, slippage_bps=2.0)
    for q in (DAILY, FILLS, METRICS):
        assert inc.sql(q).equals(full.sql(q)), q


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(1, 5), name=st.sampled_from(sorted(PARAMS)),
       fee=st.sampled_from([0.0, 1.5]))
def test_any_split_of_days_equals_full(tmp_path_factory, data, cut, name, fee):
    tmp = tmp_path_factory.mktemp("split")
    files = sorted(os.listdir(data / "all"))
    inc = _store(tmp, "inc", *[data / "all" / f for f in files[:cut]])
    inc.backtest(name, PARAMS[name], fee_bps=fee)
    inc.ingest([str(data / "all" / f) for f in files[cut:]])
    inc.backtest(name, PARAMS[name], fee_bps=fee)
    full = _store(tmp, "full", data / "all")
    full.backtest(name, PARAMS[name], fee_bps=fee)
    for q in (DAILY, FILLS, METRICS):
        assert inc.sql(q).equals(full.sql(q)), q


def test_a_batch_of_parameter_sets_equals_runs_one_by_one(tmp_path, data):
    grid = [{"fast": f, "slow": s} for f in (3, 5) for s in (20, 40)]
    a = _store(tmp_path, "a", data / "all")
    runs = a.backtest("sma_cross", grid)
    assert len({r.run_id for r in runs}) == 4
    assert runs[0].report.tasks == 3  # one pass over each instrument for all four
    b = _store(tmp_path, "b", data / "all")
    for p in grid:
        b.backtest("sma_cross", p)
    for q in (DAILY, FILLS, METRICS):
        assert a.sql(q).equals(b.sql(q)), q


def test_direct_and_sql_bar_sources_agree(tmp_path, data):
    s = _store(tmp_path, "s", data / "all")
    direct = DirectBars.from_store(s, s.instruments())
    sql = SqlBars(s)
    first, last = 19782, 19787  # 2024-02-27 .. 2024-03-04
    for inst in s.instruments():
        a, b = direct.load(inst, first, last), sql.load(inst, first, last)
        for c in ("ts", "open", "high", "low", "close", "volume", "days", "day_ends"):
            np.testing.assert_array_equal(getattr(a, c), getattr(b, c))


def test_metric_accumulators_resume_bit_for_bit():
    rng = np.random.default_rng(3)
    pnl = rng.standard_normal((2, 40))
    eq, z = np.cumsum(pnl, axis=1), np.zeros((2, 40))
    cap = np.array([1e5, 2e5])
    full = fold(initial_acc(2), pnl, cap, equity=eq, fills=z, fees=z, turnover=z)
    for k in range(1, 40):
        a = fold(initial_acc(2), pnl[:, :k], cap, equity=eq[:, :k], fills=z[:, :k],
                 fees=z[:, :k], turnover=z[:, :k])
        b = fold(a[:, -1], pnl[:, k:], cap, equity=eq[:, k:], fills=z[:, k:], fees=z[:, k:],
                 turnover=z[:, k:])
        assert np.array_equal(full[:, k:], b)
    assert finalize(full[:, -1]).shape == (2, 7)


def test_runs_table_has_queryable_parameters(tmp_path, data):
    s = _store(tmp_path, "s", data / "all")
    s.backtest("sma_cross", [{"fast": 3, "slow": 20}, {"fast": 5, "slow": 20}])
    s.backtest("breakout", {"lookback": 10}, instruments=["S0001"])
    t = s.sql("SELECT strategy, p_fast, p_slow, p_lookback, universe FROM runs "
              "ORDER BY strategy, p_fast")
    assert t.to_pylist() == [
        {"strategy": "breakout", "p_fast": None, "p_slow": None, "p_lookback": 10.0,
         "universe": "S0001"},
        {"strategy": "sma_cross", "p_fast": 3.0, "p_slow": 20.0, "p_lookback": None,
         "universe": "all"},
        {"strategy": "sma_cross", "p_fast": 5.0, "p_slow": 20.0, "p_lookback": None,
         "universe": "all"},
    ]
    lb = s.sql("SELECT r.p_fast, m.sharpe FROM runs r JOIN metrics m USING (run_id) "
               "WHERE m.scope = 'portfolio' AND r.strategy = 'sma_cross' ORDER BY m.sharpe")
    assert lb.num_rows == 2


def test_universe_sql_selects_instruments(tmp_path, data):
    s = _store(tmp_path, "s", data / "all")
    run = s.backtest("sma_cross", {"fast": 3, "slow": 20},
                     universe="SELECT instrument FROM bars GROUP BY instrument "
                              "ORDER BY avg(close) DESC LIMIT 2")
    assert len(run.record.universe) == 2
    assert run.metrics.num_rows == 3
    # what is not an instrument's name is refused, and nothing is registered (each was a
    # run of the universe ['None'], ['5'] or ['NOPE'] before 2026-12-05)
    runs = s.sql("SELECT count(*) AS n FROM runs")["n"][0].as_py()
    for sql, err, said in [
        ("SELECT NULL AS instrument", incbt.UsageError, "returned None as the instrument of row 1"),
        ("SELECT 5 AS instrument", incbt.UsageError, "returned 5 as the instrument of row 1"),
        ("SELECT 'NOPE' AS instrument UNION ALL SELECT 'S0000'", incbt.NotFoundError,
         "--universe SQL returned unknown instrument(s) 'NOPE': the store has 3 instruments"),
    ]:
        with pytest.raises(err, match=re.escape(said)):
            s.backtest("sma_cross", {"fast": 3, "slow": 20}, universe=sql)
    assert s.sql("SELECT count(*) AS n FROM runs")["n"][0].as_py() == runs


def test_user_strategy_file_and_errors(tmp_path, data):
    s = _store(tmp_path, "s", data / "all")
    f = tmp_path / "my_strats.py"
    f.write_text(
        "import incbt\n\n"
        "@incbt.strategy(params={'n': incbt.Param(int, default=10, min=2)}, state=(),"
        " warmup=lambda p: p['n'])\n"
        "def momentum(p, s, o, h, l, c, v, i):\n"
        "    n = int(p[0])\n"
        "    if i < n:\n"
        "        return 0\n"
        "    return 1 if c[i] > c[i - n] else -1\n"
    )
    run = s.backtest("momentum", {"n": 15}, strategies_file=str(f))
    assert run.record.source == str(f)
    assert run.metrics.num_rows == 4
    with pytest.raises(incbt.StrategyError, match=re.escape(
        f"unknown strategy 'momentum'; known strategies: bollinger, breakout, ema_cross, "
        f"rsi, sma_cross. This store's runs of 'momentum' came from {f}: give it with "
        f"--strategies {f} (strategies_file= in Python)"
    )):
        s.backtest("momentum", {"n": 16})  # the file forgotten
    with pytest.raises(incbt.StrategyError, match=re.escape(f"--strategies {f} (strategies_")):
        s.sweep("momentum", {"n": [16, 17]}, name="m")  # in a sweep too
    # runs of the name from two files: both said, neither given as the one to use (QA)
    g = tmp_path / "other" / "mom.py"
    g.parent.mkdir()
    g.write_text(f.read_text().replace("c[i] > c[i - n]", "c[i] < c[i - n]"))
    s.backtest("momentum", {"n": 15}, strategies_file=str(g))
    with pytest.raises(incbt.StrategyError, match=re.escape(
        f"came from 2 files, {', '.join(sorted([str(f), str(g)]))}: give the one you mean "
        "with --strategies FILE (strategies_file= in Python)"
    )):
        s.backtest("momentum", {"n": 16})
    with pytest.raises(incbt.StrategyError, match="unknown strategy 'nope'"):
        s.backtest("nope")
    with pytest.raises(incbt.StrategyError, match="fast"):
        s.backtest("sma_cross", {"fast": 50, "slow": 20})
    with pytest.raises(incbt.StrategyError, match="unknown parameter|speed"):
        s.backtest("sma_cross", {"speed": 3})


_MOM = (
    "@incbt.strategy(params={{'n': incbt.Param(int, default=10, min=2)}}, state=(),"
    " warmup=lambda p: p['n'])\n"
    "def mom(p, s, o, h, l, c, v, i):\n"
    "    n = int(p[0])\n"
    "    if i < n:\n"
    "        return 0\n"
    "    return {sign}1 if c[i] > c[i - n] else {other}1\n"
)


def test_a_script_that_defines_and_uses_a_strategy(tmp_path, data):
    """A script that passes its own strategy object from its top-level code, with no
    __main__ guard, is refused when it makes the run: incbt would import the file again
    to compute the run later, running the script again (until 2026-12-05 the run was
    made, and every later update refused to import the file). Under the guard the run is
    computed with that object, and a later process imports the file without running
    the script's commands."""
    s = _store(tmp_path, "s", data / "all")
    script = tmp_path / "research.py"
    body = (
        "r = store.backtest(mom, {'n': 15})\n"
        "print('total', r.metrics.to_pandas().query('scope == \"portfolio\"').total_pnl.iloc[0])\n"
    )
    head = "import incbt\nprint('script runs', flush=True)\n\n" + _MOM.format(sign="", other="-")
    script.write_text(head + f"\nstore = incbt.open({s.path!r})\n" + body)
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert p.returncode == 1 and p.stdout.count("script runs") == 1, (p.stdout, p.stderr)
    assert (f"StrategyError: strategy 'mom' is defined in {script}, whose top-level code "
            "makes this run (line 12)") in p.stderr, p.stderr
    assert '__name__ == "__main__"' in p.stderr
    assert s.sql("SELECT count(*) AS n FROM runs")["n"][0].as_py() == 0
    guarded = "".join("    " + line + "\n" for line in body.splitlines())
    script.write_text(head + f'\nif __name__ == "__main__":\n    store = incbt.open({s.path!r})\n'
                      + guarded)
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert p.returncode == 0 and "total" in p.stdout, p.stderr
    q = run_incbt(["--store", s.path, "update"], timeout=120)
    # the import prints (top-level code, harmless), and opens no store
    assert q.returncode == 0 and q.stdout.startswith("script runs\n1 run(s): all up to date")
    assert s.verify().ok


def test_an_object_its_file_does_not_make_at_import_or_named_as_a_built_in_is_refused(
    tmp_path, data
):
    """Objects no other process could compute the runs of are refused when the run is
    made, the store left as it was (QA 2026-12-07: both were computed, then `status` and
    `verify` in any other process said the run could not be recomputed): one made by a
    factory in its file, or under the file's `__main__` guard (importing the file makes
    no strategy of that name), and one named as a built-in (a file defining it is
    refused). A factory's strategy assigned to a module-level name is taken."""
    from incbt.engine.strategy_api import load_strategies

    s = _store(tmp_path, "s", data / "all")
    before = s.sql("SELECT count(*) AS n FROM events")["n"][0].as_py()
    body = "".join("    " + line + "\n" for line in _MOM.format(sign="", other="-").splitlines())
    f = tmp_path / "factory.py"
    f.write_text("import incbt\n\ndef make():\n" + body + "    return mom\n")
    user: dict = {}
    exec(compile(f.read_text(), str(f), "exec"), user)
    with pytest.raises(incbt.StrategyError) as e:
        s.backtest(user["make"](), {"n": 15})
    assert (f"strategy 'mom' is made in {f} by code that importing the file does not run"
            in str(e.value) and "finds no strategy of that name at its top level" in str(e.value)
            and "Fix: make it at the top level of the file" in str(e.value))
    with pytest.raises(incbt.StrategyError, match="by code that importing the file does not run"):
        s.sweep(user["make"](), {"n": [12, 15]}, name="us")
    # the same factory's strategy kept at the top level: what a later import finds
    f2 = tmp_path / "kept.py"
    f2.write_text(f.read_text() + "\nMOM = make()\n")
    kept: dict = {}
    exec(compile(f2.read_text(), str(f2), "exec"), kept)
    assert s.backtest(kept["make"](), {"n": 15}).metrics.num_rows == 4
    # a file that makes none at its top level says where one is looked for
    with pytest.raises(incbt.StrategyError, match="defines no strategy at its top level"):
        load_strategies(str(f))
    clash = tmp_path / "clash.py"
    clash.write_text(_MOM.format(sign="", other="-").replace("def mom(", "def breakout(")
                     .join(["import incbt\n\n", ""]))
    mine: dict = {}
    exec(compile(clash.read_text(), str(clash), "exec"), mine)
    with pytest.raises(incbt.StrategyError,
                       match=r"strategy 'breakout' has a built-in's name: give yours another"):
        s.backtest(mine["breakout"], {"n": 15})
    assert s.sql("SELECT count(*) AS n FROM events")["n"][0].as_py() == before + 1  # kept's
    assert s.sql("SELECT count(*) AS n FROM runs")["n"][0].as_py() == 1


def test_a_param_without_a_default_is_said_as_a_strategy_error():
    with pytest.raises(incbt.StrategyError,
                       match=r"Param\(int\) needs a default.*Param\(int, DEFAULT, min="):
        incbt.Param(int)


def test_a_strategy_redefined_in_one_file_computes_each_run_with_its_own_code(
    tmp_path, data
):
    """Two definitions of one name in one file: each run is computed with the object it
    was given (the file, imported again, holds only the last); the file alone cannot
    compute the first one's run and says so, rather than computing it with other code."""
    from incbt.execute import _LIVE, resolve_strategy

    s = _store(tmp_path, "s", data / "all")
    f = tmp_path / "two.py"
    f.write_text(
        "import incbt\n\n" + _MOM.format(sign="", other="-") + "\nV1 = mom\n\n"
        + _MOM.format(sign="-", other="")
    )
    only = tmp_path / "one.py"
    only.write_text("import incbt\n\n" + _MOM.format(sign="", other="-"))
    user = {}
    exec(compile(f.read_text(), str(f), "exec"), user)  # as a notebook or script would
    r1 = s.backtest(user["V1"], {"n": 15})
    r2 = s.backtest(user["mom"], {"n": 15})
    assert r1.run_id != r2.run_id
    t1 = r1.metrics.to_pandas().set_index("scope").total_pnl["portfolio"]
    t2 = r2.metrics.to_pandas().set_index("scope").total_pnl["portfolio"]
    assert t1 == -t2 != 0
    ref = _store(tmp_path, "ref", data / "all").backtest(
        "mom", {"n": 15}, strategies_file=str(only)
    )
    assert ref.run_id == r1.run_id  # the same code: the same run
    assert ref.metrics.to_pandas().set_index("scope").total_pnl["portfolio"] == t1
    assert s.verify([r1.run_id, r2.run_id]).ok
    over = tmp_path / "over.py"  # the first definition overwritten: only the last is kept
    over.write_text(f.read_text().replace("V1 = mom", ""))
    saved = dict(_LIVE)
    _LIVE.clear()  # another process (a Ray worker, a later update): the file alone
    try:
        for v in (r1.record.code_version, r2.record.code_version):  # both kept in two.py
            assert resolve_strategy("mom", str(f), v).code_version == v
        assert resolve_strategy("mom", str(over), r2.record.code_version)
        with pytest.raises(incbt.StrategyError, match="not the code its runs were registered"):
            resolve_strategy("mom", str(over), r1.record.code_version)
        with pytest.raises(incbt.StrategyError, match="defines strategy 'mom' twice"):
            incbt.engine.load_strategies(str(f))  # a name for the CLI: which one?
    finally:
        _LIVE.update(saved)


def test_a_run_repr_says_what_sets_it_apart(tmp_path, data):
    s = _store(tmp_path, "s", data / "all")
    a = s.backtest("sma_cross", {"fast": 4, "slow": 25}, fee_bps=2, slippage_bps=0.5)
    b = s.backtest("sma_cross", {"fast": 4, "slow": 25}, instruments=["S0001"], notional=5e4)
    assert repr(a).startswith(f"<Run {a.run_id} sma_cross(fast=4, slow=25) from the first "
                              "bar; fee 2 bps; slippage 0.5 bps; every instrument: total_pnl=")
    assert "; notional 50,000; S0001: total_pnl=" in repr(b)
    f = s.backtest(None, {"fast": 6}, fork_of=a.run_id, effective="2024-02-29")
    assert (f"fork of {a.run_id} from 2024-02-29 (fee 2 bps, slippage 0.5 bps from then; "
            "the base's before)") in repr(f)
    g = s.backtest(None, {}, fork_of=a.run_id, effective="2024-02-29", fee_bps=0)
    assert "(fee 0 bps, slippage 0.5 bps from then; the base's before)" in repr(g)
    assert "; fee " not in repr(g).split("fork of")[0]
    msg = s.log(kind="fork").column("message").to_pylist()[-1]  # newest first
    assert msg.startswith(f"fork {f.run_id}: 1 run(s) computed, "), msg


def test_cli_backtest(tmp_path, data):
    s = _store(tmp_path, "s", data / "all")
    env = {**os.environ, "INCBT_STORE": s.path}
    p = run_incbt(["backtest", "sma_cross", "-p", "fast=4", "-p", "slow=25", "--fee-bps", "1",
                   "--output", "csv"], env=env)
    assert p.returncode == 0, p.stderr
    assert "run id:" in p.stderr and "portfolio" in p.stdout and "run id" not in p.stdout
    p = run_incbt(["backtest", "sma_cross", "-p", "fast=40", "-p", "slow=25"], env=env)
    assert p.returncode == 1 and "fast" in p.stderr and "Traceback" not in p.stderr


def test_a_run_starting_after_the_data_says_why_it_is_empty_until_its_bars_arrive(
    tmp_path, data
):
    s = _store(tmp_path, "s", data / "head")  # through 2024-02-28
    run = s.backtest("sma_cross", {"fast": 4, "slow": 25}, start="2024-02-29")
    assert run.metrics.num_rows == 0
    assert run.why_empty() == (
        "it starts on 2024-02-29, after the last day with bars of its instruments "
        "(2024-02-28): `incbt update` computes it once their bars reach its start"
    )
    p = run_incbt(["--store", s.path, "backtest", "sma_cross", "-p", "fast=4", "-p", "slow=25",
                   "--start", "2024-02-29"])
    assert p.returncode == 0, p.stderr
    assert "no results: it starts on 2024-02-29" in p.stdout
    p = run_incbt(["--store", s.path, "sweep", "sma_cross", "-g", "fast=3,4", "-g", "slow=25",
                   "--start", "2024-02-29"])
    assert p.returncode == 0, p.stderr
    assert "no results: it starts on 2024-02-29" in p.stdout
    p = run_incbt(["--store", s.path, "status"])
    assert p.returncode == 0, p.stderr
    assert "2 run(s): all up to date" in p.stdout  # the backtest is a point of the sweep
    assert ("2 run(s) start after the last day with bars of their instruments and have no "
            "rows until bars reach their start: ") in " ".join(p.stdout.split())
    assert f"{run.run_id} (from 2024-02-29)" in p.stdout
    res = s.update(str(data / "tail"))
    assert res.report.bars_processed > 0
    assert run.metrics.num_rows == 4 and run.why_empty() is None  # portfolio + 3
    p = run_incbt(["--store", s.path, "status"])
    assert p.returncode == 0 and "start after the last day" not in p.stdout, p.stdout
    empty = incbt.init(str(tmp_path / "empty"))
    assert empty.backtest("sma_cross", {}).why_empty() == (
        "the store holds no bars yet: ingest some, then `incbt update`"
    )


@pytest.mark.parametrize("which", ["first", "middle", "last"])
def test_a_correction_recomputes_from_that_day_and_equals_full(tmp_path, data, which):
    day = {"first": "2024-02-26", "middle": "2024-02-28", "last": "2024-03-04"}[which]
    fix = tmp_path / "fix"
    generate(str(fix), instruments=3, days=6, start="2024-02-26", seed=21, from_day=day,
             to_day=day, revise=[day])
    inc = _store(tmp_path, "inc", data / "all")
    for n in sorted(PARAMS):
        inc.backtest(n, PARAMS[n], fee_bps=1.0)
    inc.ingest(str(fix))
    files = sorted(os.listdir(data / "all"))
    k = files.index(f"bars-{day}.csv")
    for n in sorted(PARAMS):
        r = inc.backtest(n, PARAMS[n], fee_bps=1.0)
        assert r.report.bars_processed == 3 * (6 - k) * 390  # from the corrected day on
    full = _store(tmp_path, "full", *[data / "all" / f for f in files if f != files[k]], fix)
    for n in sorted(PARAMS):
        full.backtest(n, PARAMS[n], fee_bps=1.0)
    for q in (DAILY, FILLS, METRICS):
        assert inc.sql(q).equals(full.sql(q)), q


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_stored_snapshots_are_small(tmp_path, data, name):
    """LMDB puts values over ~1.3 KB on overflow pages: built-ins stay <= 256 bytes."""
    from incbt.catalog import runs as rc

    s = _store(tmp_path, "s", data / "all")
    run = s.backtest(name, PARAMS[name])
    with s.catalog.env.read() as txn:
        for inst in [*s.instruments(), ""]:  # "" is the portfolio
            snap = rc.latest_snapshot(s.catalog, txn, run.run_id, inst)
            assert snap is not None and snap[1].nbytes <= 256, (inst, snap[1].nbytes)


def test_declared_reads_load_less_and_change_nothing(tmp_path, data):
    s = _store(tmp_path, "s", data / "all")
    f = tmp_path / "reads.py"
    body = (
        "    n = int(p[0])\n"
        "    if i < n:\n"
        "        return 0\n"
        "    return 1 if c[i] > c[i - n] else -1\n"
    )
    f.write_text(
        "import incbt\n\n"
        "@incbt.strategy(params={'n': incbt.Param(int, default=10, min=2)},"
        " warmup=lambda p: p['n'])\n"
        "def mom_all(p, s, o, h, l, c, v, i):\n" + body + "\n\n"
        "@incbt.strategy(params={'n': incbt.Param(int, default=10, min=2)},"
        " warmup=lambda p: p['n'], reads=('close',))\n"
        "def mom_close(p, s, o, h, l, c, v, i):\n" + body
    )
    a = s.backtest("mom_all", {"n": 15}, strategies_file=str(f))
    b = s.backtest("mom_close", {"n": 15}, strategies_file=str(f))
    assert a.run_id != b.run_id
    da, db = a.daily.drop_columns(["run_id"]), b.daily.drop_columns(["run_id"])
    assert da.equals(db)
    from incbt.engine import get_strategy

    assert get_strategy("sma_cross").reads == ("close",)
    assert get_strategy("breakout").reads == ("high", "low", "close")
    with pytest.raises(incbt.StrategyError, match="unknown bar fields"):
        incbt.strategy(name="bad", reads=("price",))(lambda p, s, o, h, l, c, v, i: 0)  # noqa: E741
    bars = DirectBars.from_store(s, s.instruments()).load("S0000", 0, 10**6, ["close"])
    assert not bars.high.any() and bars.close.all()


CLOCK_STRATS = '''import incbt

@incbt.strategy(params={"n": incbt.Param(int, default=10, min=2),
                        "window": incbt.Param(int, default=30, min=1)},
                state=("seen",), warmup=lambda p: p["n"])
def half_hours(p, s, o, h, l, c, v, i, t):
    """Long in every other `window` minutes of the UTC day, else with n-bar momentum."""
    s[0] += 1.0
    minute = (t[i] // 60_000_000_000) % 1440
    if (minute // int(p[1])) % 2 == 0:
        return 1
    n = int(p[0])
    if s[0] <= n:
        return 0
    return 1 if c[i] > c[i - n] else -1
'''


def test_a_timestamp_strategy_through_the_store_updates_forks_and_verifies(tmp_path, data):
    """A user step reading the bars' timestamps (9th argument): incremental update equals
    a fresh store, a fork rebuilds its state with them, and verify agrees bit for bit."""
    f = tmp_path / "clock.py"
    f.write_text(CLOCK_STRATS)
    s = _store(tmp_path, "s", data / "head")
    base = s.backtest("half_hours", {"n": 12, "window": 30}, strategies_file=str(f))
    s.update(str(data / "tail"))
    fork = s.backtest("half_hours", {"n": 5, "window": 30}, strategies_file=str(f),
                      fork_of=base.run_id, effective="2024-02-29")  # fmt: skip
    assert fork.report.bars_processed == 3 * 3 * 390  # days from D only
    fresh = _store(tmp_path, "fresh", data / "all")
    again = fresh.backtest("half_hours", {"n": 12, "window": 30}, strategies_file=str(f))
    assert again.run_id == base.run_id
    q = "SELECT * FROM {} WHERE run_id = '{}' ORDER BY instrument, {}"
    for table, order in (("daily", "date"), ("fills", "ts")):
        assert s.sql(q.format(table, base.run_id, order)).equals(
            fresh.sql(q.format(table, base.run_id, order))
        )
    assert s.sql(q.format("fills", fork.run_id, "ts")).num_rows > 0
    assert s.verify().ok


def test_the_executor_uses_every_core_only_for_tasks_with_enough_to_read_or_compute(
    monkeypatch,
):
    """Small tasks (a day's update, one set over a few weeks) run on one thread: what the
    caller does with each result takes the GIL, and a second thread only slows that.
    Tasks with many bar-steps (kernels) or many bars to read (Arrow) use every core."""
    from types import SimpleNamespace

    from incbt.runs import THREADS_MIN_BARS, THREADS_MIN_WORK, threads_for

    def task(work: int, bars: int = 0, history: int = 0) -> SimpleNamespace:
        return SimpleNamespace(work=work, bars=bars, history_bars=history)

    tasks = [task(w) for w in (THREADS_MIN_WORK - 1, THREADS_MIN_WORK)]
    assert threads_for(tasks[:1], 4) == 1
    assert threads_for(tasks, 4) == 1  # the mean is below
    assert threads_for([task(THREADS_MIN_WORK)] * 3, 4) == 3  # one per task
    assert threads_for([task(10 * THREADS_MIN_WORK)] * 9, 4) == 4  # per core
    # one set over many days: little work a task, but many bars to read
    assert threads_for([task(THREADS_MIN_BARS - 1, THREADS_MIN_BARS - 1)] * 9, 4) == 1
    assert threads_for([task(THREADS_MIN_BARS, THREADS_MIN_BARS)] * 9, 4) == 4
    assert threads_for([task(THREADS_MIN_BARS, THREADS_MIN_BARS - 100, 100)] * 9, 4) == 4
    # a day's update of many runs: the work of many sets, the bars of one day
    assert threads_for([task(100 * 390, 390)] * 9, 4) == 1
    assert threads_for([], 4) == 1
    # by default, the cores this process may run on (its affinity), not the machine's
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert threads_for([task(10 * THREADS_MIN_WORK)] * 9) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5}, raising=False)
    assert threads_for([task(10 * THREADS_MIN_WORK)] * 9) == 1


def test_the_threads_setting_caps_the_executor(tmp_path, data, monkeypatch):
    """``INCBT_THREADS=1``: tasks that would use every core run on the caller alone, with
    the same results; an invalid value is refused with the fix."""
    import threading

    import incbt.runs as runs_mod
    from incbt.errors import UsageError
    from incbt.settings import parse

    monkeypatch.setattr(runs_mod, "usable_cores", lambda: 2)
    seen: set[int] = set()
    real = runs_mod.compute_task

    def spy(*a, **k):
        seen.add(threading.get_ident())
        return real(*a, **k)

    monkeypatch.setattr(runs_mod, "compute_task", spy)
    daily = {}
    for cap in ("0", "1"):
        monkeypatch.setenv("INCBT_THREADS", cap)
        seen.clear()
        s = incbt.init(str(tmp_path / f"s{cap}"))
        s.ingest(str(data / "all"))
        assert runs_mod.LocalExecutor.of(s).most == (None if cap == "0" else 1)
        # every task reads "many" bars: without a cap they go to 2 threads
        monkeypatch.setattr(runs_mod, "THREADS_MIN_BARS", 1)
        run = s.backtest("sma_cross", {"fast": 5, "slow": 20})
        if cap == "1":
            assert seen == {threading.get_ident()}  # the caller alone
        else:
            assert seen and threading.get_ident() not in seen and len(seen) <= 2
        daily[cap] = run.daily  # ordered by instrument, date
    assert daily["0"].select(["instrument", "date", "pnl", "equity"]).equals(
        daily["1"].select(["instrument", "date", "pnl", "equity"])
    )
    assert parse("threads", "0") == 0
    with pytest.raises(UsageError, match=r"threads='-2' must be 0 \(one per core .*\) or more"):
        parse("threads", "-2")


def test_a_ray_worker_reads_every_task_into_the_same_buffers(tmp_path, data):
    """``_work`` (the body of a Ray call, run here without Ray) reads each task's bars
    into its thread's buffers, call after call, and gives the results a backtest gives."""
    from incbt.execute import ray_exec
    from incbt.runs import bar_source, plan_runs, resume_states

    s = _store(tmp_path, "s", data / "all")
    rec = s.backtest("sma_cross", {"fast": 3, "slow": 8}, dry_run=True).record
    tasks = plan_runs(s, [rec]).tasks
    assert len(tasks) == 3
    source = bar_source(s, tasks)
    resumes = resume_states(s, tasks, None)
    ray_exec._BUFFERS.__dict__.clear()
    seen, pnl = [], {}
    for t, r in zip(tasks, resumes, strict=True):
        index = source.index[t.instrument]
        paths = {f: source.paths[f] for f, _, _ in index.file_runs()}
        (res,) = ray_exec._work([t], s.path, [index], paths, [r], 60)
        assert res.errors == [None] and res.bars_processed == t.work
        seen.append(ray_exec._BUFFERS.scratch["close"])
        pnl[t.instrument] = res.daily["pnl"][0]
    assert all(b is seen[0] for b in seen)  # one buffer, reused by every call
    done = s.backtest("sma_cross", {"fast": 3, "slow": 8})
    daily = done.daily.sort_by([("instrument", "ascending"), ("date", "ascending")])
    for inst, want in pnl.items():
        got = daily.filter(pc.equal(daily["instrument"], inst))["pnl"].to_numpy()
        assert np.array_equal(got, want), inst


def test_a_ray_worker_that_does_not_see_the_store_says_so_and_writes_nothing(tmp_path, data):
    """A worker on a node without the store at its path made the store's folder and a
    `tmp/` there on its own disk (its result files' folder), then failed on the first bars
    file (QA 2026-12-07). It says so before writing anything."""
    from incbt.execute import ray_exec
    from incbt.runs import bar_source, plan_runs, resume_states

    s = _store(tmp_path, "s", data / "all")
    rec = s.backtest("sma_cross", {"fast": 3, "slow": 8}, dry_run=True).record
    tasks = plan_runs(s, [rec]).tasks[:1]
    source = bar_source(s, tasks)
    index = source.index[tasks[0].instrument]
    elsewhere = tmp_path / "other-node" / "s"
    with pytest.raises(incbt.StoreError, match=r"is not a store on this Ray worker's node .*"
                       r"storage every node sees, at the same path"):
        ray_exec._work(tasks, str(elsewhere), [index], source.paths,
                       resume_states(s, tasks, None), 60, (0, "t-"))
    assert not (tmp_path / "other-node").exists()


def test_kernels_are_preloaded_only_for_commands_with_work(tmp_path, data, monkeypatch):
    """A new run starts loading its kernel before the plan; a run made before, only once
    the plan has work: a backtest run again, or an update without files, with nothing
    to compute, loads none."""
    import incbt.runs

    calls: list[list[str]] = []
    real = incbt.runs.preload_kernels

    def spy(records):
        calls.append([r.run_id for r in records])
        real(records)

    monkeypatch.setattr(incbt.runs, "preload_kernels", spy)
    s = _store(tmp_path, "s", data / "head")
    rid = s.backtest("sma_cross", PARAMS["sma_cross"]).run_id
    assert calls and all(c == [rid] for c in calls)
    calls.clear()
    assert s.backtest("sma_cross", PARAMS["sma_cross"]).report.bars_processed == 0
    assert calls == []  # up to date: no kernel loaded for nothing
    assert s.update().report.bars_processed == 0
    assert calls == []  # an update without files, nothing stale: none either
    s.ingest(str(data / "tail"))
    assert s.backtest("sma_cross", PARAMS["sma_cross"]).report.bars_processed > 0
    assert calls == [[rid]]  # the plan has work: loaded then


def test_results_that_overflow_fail_the_pair_not_stored_as_nan(tmp_path, monkeypatch):
    """QA 2026-12-06: a notional of 1e308 (or a price near 0) made positions of inf and
    pnl of NaN, stored as results with a Sharpe of 0. Now the pair fails, as a strategy
    failure does, with the day, the values and the fix; the other pairs are stored.
    (A notional over 1e15 is refused before anything is written since: the kernel's
    guard is reached here with that bound lifted, as a price near 0 reaches it.)"""
    import dataclasses
    import warnings

    from conftest import ingested

    import incbt.engine.strategy_api as api

    s = ingested(tmp_path)
    with pytest.raises(incbt.StrategyError, match="notional.*out of range"):
        s.backtest("sma_cross", {"fast": 3, "slow": 8}, notional=1e308)
    lifted = tuple(dataclasses.replace(p, max=None) for p in api.EXEC_PARAMS)
    monkeypatch.setattr(api, "EXEC_PARAMS", lifted)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        run = s.backtest("sma_cross", {"fast": 3, "slow": 8}, notional=1e308)
    said = " ".join(str(x.message) for x in w)
    assert "not finite numbers on the day whose last bar is at 2024-03-04" in said, said
    assert "smaller notional" in said, said
    assert run.report.errors and all("not finite" in e for e in run.report.errors)
    assert s.sql("SELECT count(*) FROM daily").column(0)[0].as_py() == 0
    assert s.verify().ok
    ok = s.backtest("sma_cross", {"fast": 3, "slow": 8}, notional=1e6)
    n = s.sql(f"SELECT count(*) FROM daily WHERE run_id = '{ok.run_id}'").column(0)[0].as_py()
    assert n == 2 * 3 and not ok.report.errors


def test_a_strategy_edited_and_reloaded_in_a_notebook_replaces_its_runs(tmp_path, data):
    """Found by QA 2026-12-06: in a notebook, a strategy object from an imported module,
    then the module edited (and reloaded): status, update and verify in that process went
    on with the object of before the edit and said every run was up to date (a fresh
    process saw the change). The file is the code: the edit is seen in the same process,
    an object made before it is refused with the fix, and an edit of comments alone
    leaves the object as good."""
    import importlib

    s = _store(tmp_path, "s", data / "all")
    mod = tmp_path / "nb_strats.py"
    mod.write_text("import incbt\n\n" + _MOM.format(sign="", other="-"))
    sys.path.insert(0, str(tmp_path))
    try:
        import nb_strats

        run = s.backtest(nb_strats.mom, {"n": 15})
        mod.write_text("import incbt\n# tuned\n\n" + _MOM.format(sign="", other="-"))  # comments
        assert s.backtest(nb_strats.mom, {"n": 15}).report.bars_processed == 0
        assert not s.status().stale
        mod.write_text("import incbt\n\n" + _MOM.format(sign="-", other=""))  # the edit
        with pytest.raises(incbt.StrategyError, match=re.escape(
            "strategy 'mom' was made from " + str(mod) + " before the file was edited, and "
            "its code there is now other: reload its module (importlib.reload)"
        )):
            s.backtest(nb_strats.mom, {"n": 16})  # the object of before the edit
        importlib.reload(nb_strats)
        st = s.status()
        assert st.stale and st.replaced and st.replaced[0][0] == run.run_id
        res = s.update()
        (old, new), = res.replaced
        assert old == run.run_id
        again = s.backtest(nb_strats.mom, {"n": 15})  # the reloaded object: that run
        assert again.run_id == new and again.report.bars_processed == 0
        assert s.verify().ok
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("nb_strats", None)


def test_slow_work_commits_on_the_clock_to_the_same_results(tmp_path, data, monkeypatch):
    """A commit also comes COMMIT_SECONDS after the last one, whatever the bar-steps (a
    sweep of a slow strategy committed nothing before its end, and a Ctrl-C lost it all:
    QA 2026-12-06); the results do not depend on where the commits fall."""
    import incbt.runs as runs_mod

    sets = [{"lookback": n} for n in (5, 40, 300)]
    w = _store(tmp_path, "whole", data / "all")
    assert w.backtest("breakout", sets)[0].report.commits == 1
    monkeypatch.setattr(runs_mod, "COMMIT_SECONDS", 0.0)  # due at every result
    s = _store(tmp_path, "clock", data / "all")
    assert s.backtest("breakout", sets)[0].report.commits == 3  # a task an instrument
    for t, order in (("daily", "instrument, date"), ("fills", "instrument, ts"),
                     ("metrics", "scope, instrument")):
        q = f"SELECT * FROM {t} ORDER BY run_id, {order}"
        assert s.sql(q).num_rows and s.sql(q).equals(w.sql(q)), t
