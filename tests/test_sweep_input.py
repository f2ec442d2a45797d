"""A sweep's inputs are checked before anything is written: workers, cluster address,
name, the strategy of a sweep resumed, and grids too large to build."""

from __future__ import annotations

import pytest
from conftest import tree_state

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
    ({"grid": {"fast": "1:200000:1", "slow": [300]}}, "the grid has 200,000 points"),
    ({"grid": {"fast": "1:10**16:1", "slow": [300]}}, "are not numbers"),
    ({"grid": {"fast": "1:1e16:1", "slow": [300]}}, "has 10,000,000,000,000,000 values"),
    ({"grid": {"fast": "1.5:9:1", "slow": [300]}}, "integer START and STEP"),
    ({"grid": {"fast": "1:inf:1", "slow": [300]}}, "three numbers"),
    ({"grid": {"fast": "1:1000:1", "slow": "2:1000:1"}}, "the grid has 999,000 points"),
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

    again = swept.sweep("sma_cross", {"fast": [5], "slow": [20]}, name="g1", resume=True)
    assert not again.created and again.added == 0
    incbt_cli = os.path.join(os.path.dirname(sys.executable), "incbt")
    p = subprocess.run(
        [incbt_cli, "--store", swept.path, "sweep", "sma_cross", "-g", "fast=5", "-g", "slow=20",
         "--name", "g2", "--resume"],
        capture_output=True, text=True,
    )
    assert p.returncode == 0, p.stderr
    assert "no sweep named 'g2' to resume: started it (the store's sweeps: g1)" in p.stderr
    assert get_sweep(swept, "g2") is not None
