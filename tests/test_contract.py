"""A user strategy that breaks its contract is refused when its runs are made, not
found out at its first update (or by verify)."""

from __future__ import annotations

import textwrap

import pytest

import incbt
from incbt.bars.generate import generate

STRATS = textwrap.dedent('''
    import numpy as np
    import incbt

    P = {"n": incbt.Param(int, default=5, min=1)}
    KEEP = [0.0]

    @incbt.strategy(params=P, state=("k",), warmup=lambda p: 2)
    def short(p, s, o, h, l, c, v, i):
        """Reads n bars back; declares a warm-up of 2."""
        s[0] += 1
        if s[0] <= p[0]:
            return 0
        return 1 if c[i] > c[i - int(p[0])] else -1

    @incbt.strategy(params=P, state=("k",), warmup=lambda p: p["n"])
    def by_index(p, s, o, h, l, c, v, i):
        """Trades by the bar index i, which counts from the first bar loaded."""
        if i % 100 == 0:
            return 1
        return 0 if i % 50 else -1

    @incbt.strategy(params=P, state=("k",), warmup=lambda p: p["n"])
    def unseeded(p, s, o, h, l, c, v, i):
        return 1 if np.random.random() > 0.5 else -1

    @incbt.strategy(params=P, state=("k",), warmup=lambda p: p["n"])
    def momentum(p, s, o, h, l, c, v, i):
        s[0] += 1
        if s[0] <= p[0]:
            return 0
        return 1 if c[i] > c[i - int(p[0])] else -1

    @incbt.strategy(params=P, state=("k",), warmup=lambda p: p["n"])
    def late_dice(p, s, o, h, l, c, v, i):
        """Unseeded randomness late in the bars, past what the check before a run reads."""
        s[0] += 1
        if s[0] < 1500:
            return 1
        return 1 if np.random.random() > 0.5 else -1

    @incbt.strategy(params=P, state=("k",), warmup=lambda p: p["n"], reads=("close",))
    def peeks(p, s, o, h, l, c, v, i):
        """Reads the next close (look-ahead) for n < 7; keeps its contract for n >= 7."""
        if p[0] < 7:
            return 1 if c[i + 1] > c[i] else -1
        return 1

    @incbt.strategy(params=P, state=("k",), warmup=lambda p: p["n"])
    def shouts(p, s, o, h, l, c, v, i):
        """Returns a signal the contract has not."""
        return 2

    @incbt.strategy(params=P, state=("k",), warmup=lambda p: p["n"])
    def gives_up(p, s, o, h, l, c, v, i):
        """Fails by itself on every instrument: said as a failure, not a breach."""
        s[0] += 1
        if s[0] > 3:
            raise ValueError("no")
        return 1
''')


@pytest.fixture
def store(tmp_path):
    generate(str(tmp_path / "d"), instruments=2, days=5, start="2024-01-01", seed=3)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    (tmp_path / "strats.py").write_text(STRATS)
    return s, str(tmp_path / "strats.py")


@pytest.mark.parametrize(("name", "said"), [
    ("short", "resumed on S0000 2024-01-02 from the previous day's snapshot, with its "
              "warm-up of 2 bar(s) loaded before, the step failed: the step raised "
              "IndexError at bar 2"),
    ("by_index", "the step gives other results than run whole: it keeps something outside "
                 "its declared state"),
    ("unseeded", "two runs of its step over the same bars (S0000, from 2024-01-01) differ"),
])
def test_a_step_that_breaks_its_contract_is_refused_and_nothing_is_written(store, name, said):
    s, f = store
    with pytest.raises(incbt.StrategyError, match=f"strategy '{name}' \\({{'n': 5}}\\), run "):
        s.backtest(name, {"n": 5}, strategies_file=f)
    try:
        s.sweep(name, {"n": [5, 6]}, strategies_file=f, name="g")
    except incbt.StrategyError as exc:
        assert said in str(exc), str(exc)
    else:
        raise AssertionError("the sweep was not refused")
    assert s.sql("SELECT count(*) AS n FROM runs")["n"][0].as_py() == 0
    assert s.sql("SELECT count(*) AS n FROM sweeps")["n"][0].as_py() == 0  # no record either
    assert s.sql("SELECT count(*) AS n FROM events WHERE kind <> 'ingest' "
                 "AND kind <> 'init'")["n"][0].as_py() == 0


@pytest.mark.parametrize(("name", "said"), [
    ("peeks", "a step read a bar after the current bar i (look-ahead)"),
    ("shouts", "the step returned signal 2.0 at bar 0"),
])
def test_a_step_breaking_the_contract_on_its_first_bars_is_refused(store, name, said):
    """QA 2026-12-06: a step reading the next bar (or returning 2) failed on every bar,
    and its run was registered holding nothing, its failures said by every later command
    until dropped. A plain bug: refused before anything is written, with the error and
    the fix; where only some of a sweep's sets break it, they are reported, the rest run."""
    s, f = store
    with pytest.raises(incbt.StrategyError) as exc:
        s.backtest(name, {"n": 5}, strategies_file=f)
    text = str(exc.value)
    assert said in text and "(over S0000's bars from 2024-01-01). Nothing is registered: the " \
        "step breaks the contract for run " in text and "--check" in text, text
    with pytest.raises(incbt.StrategyError, match="breaks the contract for every one of the 2"):
        s.sweep(name, {"n": [5, 6]}, strategies_file=f, name="g")
    assert s.sql("SELECT count(*) AS n FROM runs")["n"][0].as_py() == 0
    assert s.sql("SELECT count(*) AS n FROM sweeps")["n"][0].as_py() == 0
    if name == "peeks":  # n = 7 keeps it: the sweep runs, n = 5 reported as failing
        with pytest.warns(incbt.StrategyFailureWarning):
            r = s.sweep(name, {"n": [5, 7]}, strategies_file=f, name="g")
        assert len(r.run_ids) == 2 and len(r.report.errors) == 2, r.report.errors
        assert all("look-ahead" in e for e in r.report.errors)


@pytest.mark.filterwarnings("ignore::incbt.StrategyFailureWarning")  # gives_up fails: the point
def test_a_step_that_keeps_its_contract_or_fails_by_itself_is_not_refused(store):
    s, f = store
    run = s.backtest("momentum", {"n": 5}, strategies_file=f)
    assert run.report.bars_processed > 0 and s.verify().ok
    failed = s.backtest("gives_up", {"n": 5}, strategies_file=f)
    assert len(failed.report.errors) == 2  # its two instruments, as failures


def test_verify_names_a_user_strategy_that_is_not_deterministic_as_a_cause(store):
    """A difference verify finds is blamed on the bars, or, for a strategies file's run,
    on a step that does not give the same results twice (QA 2026-12-06: bars alone)."""
    import subprocess
    import sys

    s, f = store
    run = s.backtest("late_dice", {"n": 5}, strategies_file=f)
    exe = [sys.executable, "-m", "incbt", "--store", s.path, "verify"]
    p = subprocess.run(exe, capture_output=True, text=True)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert f"or the strategy of run {run.run_id} (a strategies file) does not give" in p.stderr
    momentum = s.backtest("momentum", {"n": 5}, strategies_file=f)
    p = subprocess.run([*exe, momentum.run_id], capture_output=True, text=True)
    assert p.returncode == 0 and "strategy" not in p.stderr, (p.stdout, p.stderr)
