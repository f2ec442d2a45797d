"""Forks: the base run until D-1, new parameters from D, by SEMANTICS.md's rule."""

from __future__ import annotations

import numpy as np
import pytest

import incbt
from incbt.bars.generate import generate
from incbt.engine import (
    get_strategy,
    initial_state,
    params_from_dict,
    run_segment,
    state_width,
    warmup_replay,
)

DAILY = "SELECT * FROM daily WHERE run_id = $r ORDER BY instrument, date"
FILLS = "SELECT * FROM fills WHERE run_id = $r ORDER BY instrument, ts"
METRICS = "SELECT * FROM metrics WHERE run_id = $r ORDER BY scope, instrument"
G = dict(instruments=2, days=8, start="2024-03-04", seed=53)


@pytest.fixture
def data(tmp_path):
    generate(str(tmp_path / "all"), **G)
    generate(str(tmp_path / "head"), **G, to_day="2024-03-11")
    generate(str(tmp_path / "tail"), **G, from_day="2024-03-12")
    return tmp_path


def _by_hand(store, base_p, new_p, eff_day, inst):
    """The fork of one instrument with the engine alone: base to D-1, replay, new from D."""
    strat = get_strategy("sma_cross")
    b = store.bars(inst)
    cut = int(np.searchsorted(b.days, np.datetime64(eff_day, "D").astype(int)))
    end = int(b.day_ends[cut - 1])
    ex = np.array([[100000.0, 1.0, 0.0]])
    base = run_segment(strat, params_from_dict(strat, base_p)[None, :], ex, b.ts[:end],
                       b.open[:end], b.high[:end], b.low[:end], b.close[:end], b.volume[:end],
                       0, b.day_ends[:cut], initial_state(strat, 1))
    new = params_from_dict(strat, new_p)[None, :]
    st = warmup_replay(strat, new, base.state, b.open, b.high, b.low, b.close, b.volume, end)
    fork = run_segment(strat, new, ex, b.ts, b.open, b.high, b.low, b.close, b.volume, end,
                       b.day_ends[cut:], st)
    return np.concatenate([base.equity[0], fork.equity[0]]), base.state, st


def test_fork_follows_its_base_then_its_own_parameters(tmp_path, data):
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "all"))
    base = s.backtest("sma_cross", {"fast": 5, "slow": 30}, fee_bps=1)
    fork = s.backtest(None, {"fast": 12}, fork_of=base.run_id[:6], effective="2024-03-08")
    assert fork.record.fork == {"base": base.run_id, "effective": "2024-03-08"}
    assert fork.record.params == {"fast": 12, "slow": 30}
    assert fork.record.exec_params["fee_bps"] == 1.0  # the base's, unless changed
    # only the days from D were computed: 2 instruments x 4 days (03-08 .. 03-13)
    assert fork.report.bars_processed == 2 * 4 * 390
    d_base = s.sql(DAILY, params={"r": base.run_id}).to_pandas()
    d_fork = s.sql(DAILY, params={"r": fork.run_id}).to_pandas()
    pre = d_fork.date < np.datetime64("2024-03-08").astype(object)
    cols = ["instrument", "date", "equity", "pnl", "pos", "fees", "fills", "turnover"]
    assert d_fork[pre][cols].reset_index(drop=True).equals(
        d_base[d_base.date < np.datetime64("2024-03-08").astype(object)][cols]
        .reset_index(drop=True))
    for inst in ("S0000", "S0001"):
        eq, base_state, fork_state = _by_hand(s, {"fast": 5, "slow": 30},
                                              {"fast": 12, "slow": 30}, "2024-03-08", inst)
        got = d_fork[d_fork.instrument == inst].equity.to_numpy()
        assert np.array_equal(got, eq)
        sw = state_width(get_strategy("sma_cross"))
        assert np.array_equal(fork_state[0, :7], base_state[0, :7])  # pos, cash, pending...
        assert fork_state.shape[1] == sw
    assert s.verify().ok


def test_fork_is_incremental_like_any_run(tmp_path, data):
    inc = incbt.init(str(tmp_path / "inc"))
    inc.ingest(str(data / "head"))
    base = inc.backtest("sma_cross", {"fast": 5, "slow": 30}, fee_bps=1)
    fork = inc.backtest(None, {"fast": 12}, fork_of=base.run_id, effective="2024-03-08")
    res = inc.update(str(data / "tail"))
    assert res.report.bars_processed == 2 * 2 * 2 * 390  # 2 runs x 2 instruments x 2 days
    full = incbt.init(str(tmp_path / "full"))
    full.ingest(str(data / "all"))
    b2 = full.backtest("sma_cross", {"fast": 5, "slow": 30}, fee_bps=1)
    f2 = full.backtest(None, {"fast": 12}, fork_of=b2.run_id, effective="2024-03-08")
    assert (b2.run_id, f2.run_id) == (base.run_id, fork.run_id)
    for q in (DAILY, FILLS, METRICS):
        assert inc.sql(q, params={"r": fork.run_id}).equals(
            full.sql(q, params={"r": fork.run_id})), q
    # a correction before D rebuilds the fork's copied part; after D, it resumes
    for day in ("2024-03-05", "2024-03-12"):
        fix = tmp_path / f"fix{day}"
        generate(str(fix), **G, from_day=day, to_day=day, revise=[day])
        inc.ingest(str(fix))
        # each run's .stale is its own rows of status (QA 2026-12-06: a fork's listed its
        # base's beside them)
        rows = {(r.run_id, r.instrument) for r in inc.status().stale}
        for run in (base, fork):
            mine = {(r.run_id, r.instrument) for r in inc.run(run.run_id).stale}
            assert mine == {x for x in rows if x[0] == run.run_id} and mine, (day, run.run_id)
        inc.update()
        assert inc.verify().ok, day
    assert not inc.status().stale


def test_fork_errors(tmp_path, data):
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "all"))
    base = s.backtest("sma_cross", {"fast": 5, "slow": 30})
    with pytest.raises(incbt.UsageError, match="changed parameter: fast=5 is the base run's "
                       "value already"):
        s.backtest(None, {"fast": 5}, fork_of=base.run_id, effective="2024-03-08")
    with pytest.raises(incbt.UsageError, match="after the base run's first day"):
        s.backtest(None, {"fast": 9}, fork_of=base.run_id, effective="2024-01-01")
    with pytest.raises(incbt.NotFoundError, match="no run"):
        s.backtest(None, {"fast": 9}, fork_of="ffffffff", effective="2024-03-08")
    with pytest.raises(incbt.UsageError, match="breakout run|not breakout"):
        s.backtest("breakout", {"fast": 9}, fork_of=base.run_id, effective="2024-03-08")
    with pytest.raises(incbt.StrategyError):
        s.backtest(None, {"fast": 40}, fork_of=base.run_id, effective="2024-03-08")
    with pytest.raises(incbt.UsageError, match="keeps its base run's notional"):
        s.backtest(None, {"fast": 9}, fork_of=base.run_id, effective="2024-03-08", notional=5e4)
    # a strategies file given to a fork was ignored, even one not there (QA 2026-12-06)
    mine = tmp_path / "mine.py"
    mine.write_text("import incbt\n\n@incbt.strategy(params={'n': incbt.Param(int, 2)})\n"
                    "def hold(p, s, o, h, l, c, v, i):\n    return 1\n")
    for f in (tmp_path / "nope.py", mine):
        with pytest.raises(incbt.UsageError, match=r"\(a built-in\), not of .*keeps its base"):
            s.backtest(None, {"fast": 9}, fork_of=base.run_id, effective="2024-03-08",
                       strategies_file=str(f))
    own = s.backtest("hold", {"n": 2}, strategies_file=str(mine))
    fork = s.backtest(None, {"n": 3}, fork_of=own.run_id, effective="2024-03-08",
                      strategies_file=str(mine))  # its own file: taken
    assert fork.record.fork is not None and fork.record.fork["base"] == own.run_id
    other = tmp_path / "other"
    other.mkdir()
    (other / "mine.py").write_text(mine.read_text())
    with pytest.raises(incbt.UsageError, match=f"of {mine}, not of {other / 'mine.py'}"):
        s.backtest(None, {"n": 4}, fork_of=own.run_id, effective="2024-03-08",
                   strategies_file=str(other / "mine.py"))


def test_a_fork_takes_the_execution_parameters_given_zero_included(tmp_path, data):
    """fee_bps=0 on a fork of a run with fees was taken as "not given" and the fork kept
    the base's fee (QA 2026-12-05); what is not given is the base's."""
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "all"))
    base = s.backtest("sma_cross", {"fast": 5, "slow": 30}, fee_bps=1.0, slippage_bps=2.0)
    free = s.backtest(None, {"fast": 9}, fork_of=base.run_id, effective="2024-03-08",
                      fee_bps=0.0)
    kept = s.backtest(None, {"fast": 9}, fork_of=base.run_id, effective="2024-03-08")
    assert free.record.exec_params["fee_bps"] == 0.0
    assert free.record.exec_params["slippage_bps"] == 2.0
    assert kept.record.exec_params["fee_bps"] == 1.0 and kept.run_id != free.run_id
    # the same notional as the base's is no change
    same = s.backtest(None, {"fast": 9}, fork_of=base.run_id, effective="2024-03-08",
                      notional=100000.0)
    assert same.run_id == kept.run_id
    fees = s.sql("SELECT sum(fees) AS f FROM daily WHERE run_id = $r AND date >= '2024-03-08'",
                 params={"r": free.run_id}).column("f")[0].as_py()
    assert fees == 0.0


def _chain(s):
    """B; F, a fork of B from 02-01; G, a fork of F from 02-12; G2, a fork of F from
    01-15, before F's own effective day; H, the fork of B G2 must equal."""
    b = s.backtest("sma_cross", {"fast": 10, "slow": 60}, fee_bps=1)
    f = s.backtest(None, {"fast": 20}, fork_of=b.run_id, effective="2024-02-01")
    g = s.backtest(None, {"slow": 40}, fork_of=f.run_id, effective="2024-02-12")
    g2 = s.backtest(None, {"slow": 40}, fork_of=f.run_id, effective="2024-01-15")
    h = s.backtest(None, {"fast": 20, "slow": 40}, fork_of=b.run_id, effective="2024-01-15")
    return b, f, g, g2, h


# keep 1: the forks' own snapshots at D-1 pruned; a fix on 01-10 is before every
# effective day, on 02-20 after every one
@pytest.mark.parametrize(
    "keep, fix", [(60, "2024-01-10"), (1, "2024-01-10"), (1, "2024-02-20"), (60, "2024-02-20")]
)
def test_a_fork_of_a_fork_follows_the_rule_through_corrections(tmp_path, keep, fix):
    """Found 2026-12-05: a fork of a fork was built from a plain run of its base's
    parameters where the base had no snapshot before the day (an effective day before
    the base's own, or the base's snapshots pruned); verify recomputed every fork of a
    fork that way; and a correction before a fork's effective day, with a fork of it
    present, turned the fork into a plain run for good. QA 2026-12-06: a correction
    after the effective day, with no snapshot of the fork kept from D-1 to the day
    before it, recomputed the fork from its first day with its own parameters."""
    from conftest import bits

    g6 = dict(instruments=3, days=40, start="2024-01-01", seed=3)
    generate(str(tmp_path / "d"), **g6)
    generate(str(tmp_path / "fix"), **g6, from_day=fix, to_day=fix, revise=[fix])
    s = incbt.init(str(tmp_path / "s"), snapshot_keep_days=keep)
    s.ingest(str(tmp_path / "d"))
    b, f, g, g2, h = _chain(s)
    # G2 follows F until 01-12, which is B there: G2 is the fork of B with its parameters
    for q in (DAILY, FILLS):
        x, y = s.sql(q, params={"r": g2.run_id}), s.sql(q, params={"r": h.run_id})
        assert bits(x.drop_columns(["run_id"])).equals(bits(y.drop_columns(["run_id"])))
    assert s.verify().ok
    s.ingest(str(tmp_path / "fix"))
    s.update()
    assert s.verify().ok and not s.status().stale
    fresh = incbt.init(str(tmp_path / "fresh"), snapshot_keep_days=keep)
    fresh.ingest(str(tmp_path / "d"))
    fresh.ingest(str(tmp_path / "fix"))
    again = _chain(fresh)
    assert [r.run_id for r in again] == [r.run_id for r in (b, f, g, g2, h)]
    for r in (b, f, g, g2, h):
        for q in (DAILY, FILLS, METRICS):
            x, y = s.sql(q, params={"r": r.run_id}), fresh.sql(q, params={"r": r.run_id})
            assert bits(x).equals(bits(y)), (r.run_id, q)


@pytest.mark.parametrize("effective", ["2024-03-13", "2030-01-02"])
def test_a_dry_run_update_counts_the_work_the_update_does(tmp_path, data, effective):
    """A fork's new days before its effective day are copied from its base, not computed:
    a dry run of an update with files counted them as computed (QA 2026-12-05: "would
    compute 10 segments", and the update computed 5)."""
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "head"))
    base = s.backtest("sma_cross", {"fast": 5, "slow": 30})
    s.backtest(None, {"fast": 9}, fork_of=base.run_id, effective=effective)
    dry = s.update(str(data / "tail"), dry_run=True).report
    real = s.update(str(data / "tail")).report
    assert (dry.segments, dry.bars_processed) == (real.segments, real.bars_processed)
    assert real.bars_processed > 0 and s.verify().ok


def test_a_dry_run_counts_a_new_instruments_fork_days_as_copied(tmp_path):
    """The files bring a new instrument: a fork over every instrument copies its days
    before D from its base, and a dry run counted them as computed (QA 2026-12-05: 4,680
    bar-steps said, 3,510 computed)."""
    import pyarrow.compute as pcc
    import pyarrow.csv as pcsv

    generate(str(tmp_path / "d"), instruments=2, days=6, start="2024-03-04", seed=3)
    generate(str(tmp_path / "n"), instruments=3, days=6, start="2024-03-04", seed=3)
    (tmp_path / "new").mkdir()
    for f in sorted((tmp_path / "n").iterdir()):  # the third instrument alone
        t = pcsv.read_csv(str(f))
        pcsv.write_csv(t.filter(pcc.equal(t["instrument"], "S0002")),
                       str(tmp_path / "new" / f.name))
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    base = s.backtest("sma_cross", {"fast": 3, "slow": 20})
    s.backtest(None, {"fast": 5}, fork_of=base.run_id, effective="2024-03-07")
    dry = s.update(str(tmp_path / "new"), dry_run=True).report
    real = s.update(str(tmp_path / "new")).report
    assert (dry.segments, dry.bars_processed) == (real.segments, real.bars_processed) == (
        2, 3 * 390 * 3)
    assert s.verify().ok


def test_an_update_says_why_a_fork_computes_as_its_dry_run_did(tmp_path, data):
    """A correction of a day before a fork's D: status and the dry run said "event N
    changed DAY" for the fork's pairs, the update itself "5 new day(s) after ..." (its
    rows up to D-1 are made again first, and then looked new; QA 2026-12-06)."""
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "all"))
    base = s.backtest("sma_cross", {"fast": 3, "slow": 20})
    fork = s.backtest(None, {"fast": 5}, fork_of=base.run_id, effective="2024-03-11")
    generate(str(tmp_path / "fix"), **G, from_day="2024-03-06", to_day="2024-03-06",
             revise=["2024-03-06"])
    s.ingest(str(tmp_path / "fix"))
    status = [(r.run_id, r.instrument, r.reason, r.from_day, r.bars) for r in s.status().stale]
    dry = [(r.run_id, r.instrument, r.reason, r.from_day, r.bars)
           for r in s.update(dry_run=True).stale]
    real = [(r.run_id, r.instrument, r.reason, r.from_day, r.bars) for r in s.update().stale]
    assert real == dry == status, (real, dry)
    said = {r[2] for r in real if r[0] == fork.run_id}
    assert len(said) == 1 and said.pop().endswith("changed 2024-03-06"), real


def test_verify_of_a_chain_of_forks_computes_each_link_once(tmp_path, data):
    """verify recomputed every ancestor of a fork for each fork of a chain (forks of
    forks): quadratic in its length (depth 40: 80 M bar-steps for 4.9 M, QA 2026-12-06).
    Each base is kept while forks of it remain: the work is the chain's, once."""
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "all"))
    base = s.backtest("sma_cross", {"fast": 3, "slow": 20})
    days = [str(d) for d in s.bars("S0000").days.astype("datetime64[D]")]
    cur, depth = base.run_id, 6
    for k in range(depth):
        cur = s.backtest(None, {"fast": 3 + (k % 2) + 1}, fork_of=cur,
                         effective=days[1 + k]).run_id
    whole = s.verify()
    assert whole.ok and whole.runs == depth + 1
    per_day = 2 * 390  # two instruments
    n = len(days)
    # the base (as a run, then as the chain's root) and each fork from its D on, once
    want = 2 * n * per_day + sum((n - 1 - k) * per_day for k in range(depth))
    assert whole.bars_processed == want, (whole.bars_processed, want)  # was 4x that
    assert s.verify([cur]).ok


@pytest.mark.parametrize("per_query", [1, 2, 256])
def test_verify_of_forks_in_groups_names_the_fork_a_tampered_fill_belongs_to(
        tmp_path, data, monkeypatch, per_query):
    """Forks' fresh results are compared a group at a time (one query a table for up to
    FORKS_A_QUERY forks: three a fork were most of a fork's verify); a difference is
    still the tampered fork's alone, whatever the group it falls in."""
    from test_update import _tamper_fill

    from incbt import update as update_mod

    monkeypatch.setattr(update_mod, "FORKS_A_QUERY", per_query)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "all"))
    base = s.backtest("sma_cross", {"fast": 3, "slow": 20})
    forks = [s.backtest(None, {"fast": 4 + k}, fork_of=base.run_id, effective="2024-03-07")
             for k in range(4)]
    chained = s.backtest(None, {"fast": 2}, fork_of=forks[1].run_id, effective="2024-03-11")
    assert s.verify().ok
    victim = forks[2].run_id
    _tamper_fill(s, victim, "qty", -1, lambda q: 2 * q, newest=True)  # the live file
    bad = s.verify()
    assert not bad.ok and bad.runs == 6
    assert [(d.run_id, d.table, d.column) for d in bad.differences] == [(victim, "fills", "qty")]
    assert s.verify([chained.run_id, forks[3].run_id]).ok


def test_a_fork_effective_on_a_day_without_bars_says_its_first_day(tmp_path, data):
    """2024-03-09 is a Saturday: the fork computes from Monday, and says so (a fork
    effective Monday is another run with the same results: QA 2026-12-06)."""
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "all"))
    base = s.backtest("sma_cross", {"fast": 5, "slow": 30})
    with pytest.warns(UserWarning, match="--effective 2024-03-09 is no day with bars of the base "
                      "run's instruments: the fork computes from 2024-03-11") as said:
        sat = s.backtest(None, {"fast": 9}, fork_of=base.run_id, effective="2024-03-09")
    assert said[0].filename == __file__  # the caller's line, not incbt's (QA 2026-12-08)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a day with bars: nothing said
        mon = s.backtest(None, {"fast": 9}, fork_of=base.run_id, effective="2024-03-11")
    q = "SELECT date, pnl, equity FROM daily WHERE run_id = $r ORDER BY instrument, date"
    assert s.sql(q, params={"r": sat.run_id}).to_pylist() == s.sql(
        q, params={"r": mon.run_id}).to_pylist()


def test_a_fork_effective_after_the_last_day_with_bars_says_it_holds_its_base(tmp_path, data):
    """QA 2026-12-06: a fork effective in 2030 printed "nothing to compute yet" and was
    its base's results, without a word; it says so, and an update computes it once bars
    of the day come (here: the store's tail, from 2024-03-12 on)."""
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "head"))  # to 2024-03-11
    base = s.backtest("sma_cross", {"fast": 5, "slow": 30})
    with pytest.warns(UserWarning, match=r"--effective 2024-03-13 \(effective= in Python\) is "
                      r"after the last day with bars of the base run's instruments "
                      r"\(2024-03-11\): the fork holds its base's results until bars of that "
                      "day or later are ingested"):
        fork = s.backtest(None, {"fast": 9}, fork_of=base.run_id, effective="2024-03-13")
    q = "SELECT instrument, date, pnl FROM daily WHERE run_id = $r ORDER BY instrument, date"
    assert s.sql(q, params={"r": fork.run_id}).equals(s.sql(q, params={"r": base.run_id}))
    s.update(str(data / "tail"))
    assert s.verify().ok and not s.status().stale


BO_BARS = """instrument,ts,open,high,low,close,volume
X,2024-02-01T14:30:00Z,10,10,10,10,1
X,2024-02-01T14:31:00Z,10,11,10,11,1
X,2024-02-01T14:32:00Z,11,12,11,12,1
X,2024-02-01T14:33:00Z,12,13,12,13,1
X,2024-02-01T14:34:00Z,13,14,13,14,1
X,2024-02-02T14:30:00Z,14,14.5,13.5,14,1
X,2024-02-02T14:31:00Z,14,14.5,13.5,14,1
X,2024-02-02T14:32:00Z,14,14.5,13.5,14,1
"""


def test_a_breakout_fork_holds_its_base_s_side_until_its_own_channel_breaks(tmp_path):
    """SEMANTICS.md: breakout's signal is "otherwise the previous signal", and a fork is
    its base until D-1, so at D its previous signal is the base's. The warm-up replay
    starts flat and, too short to signal, left `last` at 0: the fork sold on D's first
    bar, a trade neither parameter set makes (QA 2026-12-06)."""
    (tmp_path / "bo.csv").write_text(BO_BARS)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "bo.csv"))
    base = s.backtest("breakout", {"lookback": 2}, notional=1000.0)
    fork = s.backtest(None, {"lookback": 3}, fork_of=base.run_id, effective="2024-02-02")
    full = s.backtest("breakout", {"lookback": 3}, notional=1000.0)
    rows = {
        r.run_id: s.sql(DAILY, params={"r": r.run_id}).to_pydict() for r in (base, fork, full)
    }
    assert rows[base.run_id]["pos"] == [1000.0 / 12] * 2  # long from day 1's breakout
    assert rows[fork.run_id]["fills"] == [1, 0]  # held through D: no breakout of 3 bars
    assert rows[fork.run_id]["pos"] == [1000.0 / 12] * 2  # the base's position, held
    assert rows[full.run_id]["pos"][1] > 0  # as breakout(3) from the start is long too
    assert s.verify().ok


@pytest.mark.parametrize(
    ("name", "base_p", "new_p"),
    [("breakout", {"lookback": 3}, {"lookback": 25}),
     ("bollinger", {"window": 5, "k": 0.5}, {"window": 30, "k": 1.0}),
     ("rsi", {"window": 3, "lower": 45.0, "upper": 55.0},
      {"window": 25, "lower": 30.0, "upper": 70.0})],  # fmt: skip
)
def test_a_fork_s_previous_signal_is_its_base_s(name, base_p, new_p):
    """After the replay, the slot a strategy keeps its previous signal in
    (``signal_state``) holds the base run's signal at D-1, whatever the replay gave; the
    other slots are the replay's."""
    from incbt.engine.layout import ENGINE_WIDTH, SIGNAL

    strat = get_strategy(name)
    assert strat.signal_state == "last"
    rng = np.random.default_rng(7)
    close = 100 + np.cumsum(rng.normal(0, 1, 400))
    ts = np.arange(400, dtype=np.int64) * 60_000_000_000
    o, h, lo = close, close + 0.5, close - 0.5
    v = np.ones(400)
    ends = np.array([200, 400])
    ex = np.array([[100000.0, 0.0, 0.0]])
    base = run_segment(strat, params_from_dict(strat, base_p)[None], ex, ts[:200], o[:200],
                       h[:200], lo[:200], close[:200], v[:200], 0, ends[:1],
                       initial_state(strat, 1))
    sig = base.state[0, SIGNAL]
    assert sig != 0.0  # the base holds a side at D-1
    new = params_from_dict(strat, new_p)[None]
    got = warmup_replay(strat, new, base.state, o, h, lo, close, v, 200)
    assert got[0, ENGINE_WIDTH + strat.state_names.index("last")] == sig
    plain = warmup_replay(get_strategy(name).__class__(**{  # the same without the slot
        **{f: getattr(strat, f) for f in strat.__dataclass_fields__}, "signal_state": None
    }), new, base.state, o, h, lo, close, v, 200)
    assert plain[0, ENGINE_WIDTH + strat.state_names.index("last")] == 0.0  # replay: flat
    last = ENGINE_WIDTH + 1
    assert np.array_equal(np.delete(plain, last, 1), np.delete(got, last, 1))


@pytest.mark.parametrize("change", ["correct", "remove"])
def test_a_change_before_the_runs_start_leaves_a_fork_as_it_is(tmp_path, change):
    """A day before the base run's start is read by neither the base nor its fork (whose
    warm-up history starts there too): a correction or a removal of one made every fork
    pair again and recomputed it from D, said as "N new day(s) after D-1" (QA 2026-12-07)."""
    generate(str(tmp_path / "data"), instruments=3, days=40, seed=3)
    day = "2024-01-10"
    generate(str(tmp_path / "fix"), instruments=3, days=40, seed=3, from_day=day, to_day=day,
             revise=[day])
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "data"))
    base = s.backtest("bollinger", {"window": 40, "k": 1.5}, start="2024-01-22")
    fork = s.backtest(None, {"k": 0.5}, fork_of=base.run_id, effective="2024-02-05")
    seq = len(s.log())
    if change == "correct":
        assert s.ingest(str(tmp_path / "fix")).days_corrected == 3
    else:
        s.remove(["S0001"], start=day, end=day)
    assert not s.status().stale
    res = s.update()
    assert res.report.bars_processed == 0 and res.report.segments == 0, res
    assert [k for k in s.log()["kind"].to_pylist()[: len(s.log()) - seq]] == [
        "ingest" if change == "correct" else "remove"]  # no "fork" event: nothing made again
    assert s.verify([base.run_id, fork.run_id]).ok


FAILS_AFTER = '''import incbt

@incbt.strategy(params={"n": incbt.Param(int, default=3, min=1),
                        "lim": incbt.Param(float, default=1e9)},
                state=("seen",), warmup=lambda p: p["n"], reads=("close",))
def fails_after(p, s, o, h, l, c, v, i):
    """Momentum; raises once it has seen more than lim bars."""
    n = int(p[0])
    s[0] += 1
    if s[0] > p[1]:
        raise ValueError("too many bars")
    if s[0] <= n:
        return 0
    return 1 if c[i] > c[i - n] else -1
'''


@pytest.mark.filterwarnings("ignore::incbt.StrategyFailureWarning")  # failing is the point
def test_a_forks_failed_pairs_are_not_made_again_while_nothing_they_read_changes(tmp_path):
    """A fork whose own parameters fail from D was made again and recomputed by every
    update, nothing changed (its failed pair holds no snapshot); one that failed with its
    base's pair was made again by a correction of a field its strategy does not read,
    where its base was not: exit 1, a new "fork" event each time (QA 2026-12-07)."""
    from incbt.bars.generate import generate

    generate(str(tmp_path / "d"), instruments=2, days=8, seed=1)
    (tmp_path / "f.py").write_text(FAILS_AFTER)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    base = s.backtest("fails_after", {"n": 3}, strategies_file=str(tmp_path / "f.py"))
    fork = s.backtest(None, {"n": 4, "lim": 600}, fork_of=base.run_id, effective="2024-01-05")
    assert len(fork.report.errors) == 2  # its own parameters fail, from D
    events = len(s.log())
    for _ in range(2):
        dry = s.update(dry_run=True)
        res = s.update()
        assert res.report.bars_processed == dry.report.bars_processed == 0, res
        assert not res.report.errors and len(res.report.skipped_failed) == 2
    assert len(s.log()) == events  # nothing made again
    # a correction of the volume, which it does not read: still nothing
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    day = sorted((tmp_path / "d").iterdir())[2]
    t = pcsv.read_csv(day)
    t = t.set_column(t.schema.get_field_index("volume"), "volume", pc.multiply(t["volume"], 2.0))
    pcsv.write_csv(t, tmp_path / "vol.csv")
    assert s.update(str(tmp_path / "vol.csv"), dry_run=True).report.bars_processed == 0
    res = s.update(str(tmp_path / "vol.csv"))
    assert res.report.bars_processed == 0 and not res.report.errors
    assert s.log()["kind"].to_pylist()[: len(s.log()) - events] == ["ingest"]  # no "fork"
    assert s.verify().ok


def test_a_fork_from_the_base_runs_own_first_day_or_before_is_refused(tmp_path, data):
    """QA 2026-12-07: the base run's first day was taken as its start or the store's first
    day, of any instrument: a fork of a run over an instrument whose bars begin later, or
    of a run starting on a Saturday, from its first day or before was made (a new run
    under a fork's id), and the refusal named a day the run has no bar of."""
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "all"))
    s.remove(["S0001"], end="2024-03-11")  # its bars begin on 2024-03-12 now
    late = s.backtest("sma_cross", {"fast": 5, "slow": 30}, instruments=["S0001"])
    for eff in ("2024-03-08", "2024-03-12"):
        with pytest.raises(incbt.UsageError, match=r"after the base run's first day "
                           r"\(2024-03-12\)"):
            s.backtest(None, {"fast": 9}, fork_of=late.run_id, effective=eff)
    s.backtest(None, {"fast": 9}, fork_of=late.run_id, effective="2024-03-13")
    sat = s.backtest("sma_cross", {"fast": 5, "slow": 30}, start="2024-03-09")
    with pytest.raises(incbt.UsageError, match=r"first day \(2024-03-11\)"):
        s.backtest(None, {"fast": 9}, fork_of=sat.run_id, effective="2024-03-11")
    # every instrument counts: the store's first day is the run's over all of them
    every = s.backtest("sma_cross", {"fast": 5, "slow": 30})
    s.backtest(None, {"fast": 9}, fork_of=every.run_id, effective="2024-03-05")
