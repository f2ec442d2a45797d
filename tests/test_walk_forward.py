"""Walk-forward analysis of a sweep (Sweep.walk_forward, `incbt walk-forward`): each fold
against a NumPy reference of its own (the stats of every run over its windows, the choice,
the rank), bit for bit against sweep.stats() and leaderboard() over the same windows; the
folds' windows by Hypothesis; refusals."""

from __future__ import annotations

import csv
import io

import pytest
from cli_process import run_incbt
from hypothesis import given, settings
from hypothesis import strategies as st
from test_stats import _capital, reference

import incbt
from incbt.bars.generate import generate
from incbt.sweep import STATS_SMALLER_FIRST
from incbt.walkforward import folds


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wf")
    generate(str(tmp / "d"), instruments=3, days=24, start="2024-03-04", seed=21)
    s = incbt.init(str(tmp / "s"))
    s.ingest(str(tmp / "d"))
    sw = s.sweep("sma_cross", {"fast": [3, 5, 8], "slow": [20, 40]}, fee_bps=1.0, name="g")
    return s, sw


def _ordered(values: dict[str, dict], metric: str) -> list[str]:
    """Run ids best first by ``metric`` (None last, then by id): the leaderboard's order."""
    sign = 1 if metric in STATS_SMALLER_FIRST else -1
    return sorted(
        values,
        key=lambda r: (values[r].get(metric) is None, sign * (values[r].get(metric) or 0), r),
    )


@pytest.mark.parametrize(
    ("train", "test", "metric", "anchored"),
    [(8, 5, "sharpe", False), (6, 4, "max_drawdown", True), (10, 3, "total_pnl", False)],
)
def test_each_fold_is_the_reference_choice_and_its_test_statistics(swept, train, test, metric,
                                                                    anchored):  # fmt: skip
    s, sw = swept
    rows = {r.run_id: r.daily.to_pylist() for r in sw.runs}
    capital = {r.run_id: _capital(r) for r in sw.runs}
    days = sorted({row["date"] for rr in rows.values() for row in rr})
    got = sw.walk_forward(train, test, metric, anchored=anchored).to_pylist()
    cut = folds(len(days), train, test, anchored)
    assert len(got) == len(cut) == -(-(len(days) - train) // test)
    total = 0.0
    for k, (row, (a, b, c, d)) in enumerate(zip(got, cut, strict=True), 1):
        assert (row["fold"], row["train_start"], row["train_end"], row["test_start"],
                row["test_end"]) == (k, days[a], days[b], days[c], days[d])  # fmt: skip
        assert (row["train_days"], row["test_days"]) == (b - a + 1, d - c + 1)
        ins = {r: reference(rr, capital[r], (days[a], days[b])) for r, rr in rows.items()}
        outs = {r: reference(rr, capital[r], (days[c], days[d])) for r, rr in rows.items()}
        best = _ordered(ins, metric)[0]
        assert row["run_id"] == best
        assert row[f"train_{metric}"] == pytest.approx(ins[best][metric], rel=1e-9, abs=1e-9)
        assert row["runs_ranked"] == len(rows)
        assert row["test_rank"] == _ordered(outs, metric).index(best) + 1
        for col in ("total_pnl", "sharpe", "max_drawdown", "max_drawdown_days", "fills",
                    "fees", "turnover", "exposure_pct", "win_days_pct"):  # fmt: skip
            assert row[col] == pytest.approx(outs[best][col], rel=1e-9, abs=1e-9), col
        rec = s.run(best).record.params
        assert (row["p_fast"], row["p_slow"]) == (rec["fast"], rec["slow"])
        total += row["total_pnl"]
        assert row["test_pnl_to_date"] == total


def test_a_fold_is_bit_for_bit_the_leaderboard_and_the_stats_over_its_windows(swept):
    _, sw = swept
    got = sw.walk_forward(7, 6, "sortino")
    assert got.column_names[:12] == [
        "fold", "train_start", "train_end", "train_days", "test_start", "test_end",
        "test_days", "run_id", "p_fast", "p_slow", "train_sortino", "test_rank",
    ]  # fmt: skip
    for row in got.to_pylist():
        lead = sw.leaderboard("sortino", n=1, start=row["train_start"], end=row["train_end"])
        assert lead["run_id"][0].as_py() == row["run_id"]
        assert lead["sortino"][0].as_py() == row["train_sortino"]
        after = {
            r["run_id"]: r
            for r in sw.stats(start=row["test_start"], end=row["test_end"]).to_pylist()
        }
        mine = after[row["run_id"]]
        cols = list(mine)[list(mine).index("total_pnl") :]
        assert {c: row[c] for c in cols} == {c: mine[c] for c in cols}  # the same bits
        assert (mine["start"], mine["end"], mine["days"]) == (
            row["test_start"], row["test_end"], row["test_days"])  # fmt: skip


def test_start_and_end_fold_the_days_between_them_alone(swept):
    _, sw = swept
    whole = sw.walk_forward(5, 4).to_pylist()
    days = sorted({r["date"] for r in sw.runs[0].daily.to_pylist()})
    part = sw.walk_forward(5, 4, start=days[2], end=days[-3]).to_pylist()
    assert part[0]["train_start"] == days[2] and part[-1]["test_end"] == days[-3]
    assert len(part) == -(-(len(days) - 4 - 5) // 4)
    assert whole[0]["train_start"] == days[0] and whole[-1]["test_end"] == days[-1]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60), st.integers(1, 20), st.integers(1, 20), st.booleans())
def test_folds_tile_the_days_after_the_first_train_window(n, train, test, anchored):
    cut = folds(n, train, test, anchored)
    if n <= train:
        assert cut == []
        return
    assert cut[0][:3] == (0, train - 1, train)
    for (a, b, c, d), nxt in zip(cut, [*cut[1:], None], strict=True):
        assert c == b + 1 and c <= d <= n - 1 and d - c + 1 <= test
        assert a == 0 if anchored else b - a + 1 == train
        if nxt is None:
            assert d == n - 1
        else:
            assert d - c + 1 == test and nxt[2] == d + 1


def test_refusals_name_the_value_and_the_fix(swept):
    s, sw = swept
    with pytest.raises(incbt.UsageError, match=r"has 24 day\(s\), .* a train window of 24 leaves"):
        sw.walk_forward(24, 5)
    with pytest.raises(incbt.UsageError, match="'win_rate_pct' is a trade statistic"):
        sw.walk_forward(5, 5, "win_rate_pct")
    with pytest.raises(incbt.UsageError, match="'bogus' is unknown: .* sharpe, sortino"):
        sw.walk_forward(5, 5, "bogus")
    with pytest.raises(incbt.UsageError, match="train .*at least 1, not 0"):
        sw.walk_forward(0, 5)
    with pytest.raises(incbt.UsageError, match="test .*whole number, not '5'"):
        sw.walk_forward(5, "5")
    with pytest.raises(incbt.UsageError, match="ends .* before it starts"):
        sw.walk_forward(5, 5, start="2024-04-01", end="2024-03-01")


def test_cli_writes_the_folds_and_refuses_as_the_api(swept):
    s, sw = swept
    p = run_incbt(["--store", s.path, "walk-forward", "g", "--train", "8", "--test", "5",
                   "--anchored", "--metric", "calmar", "--output", "csv"])  # fmt: skip
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    want = sw.walk_forward(8, 5, "calmar", anchored=True).to_pylist()
    assert [r["run_id"] for r in rows] == [w["run_id"] for w in want]
    assert [float(r["total_pnl"]) for r in rows] == [w["total_pnl"] for w in want]
    p = run_incbt(["--store", s.path, "walk-forward", "nope", "--train", "8", "--test", "5"])
    assert p.returncode == 1 and "no sweep 'nope'" in p.stderr, p.stderr
    p = run_incbt(["--store", s.path, "walk-forward", "g", "--train", "80", "--test", "5"])
    assert p.returncode == 2 and "a train window of 80 leaves no day to test" in p.stderr
    p = run_incbt(["--store", s.path, "walk-forward", "g", "--test", "5"])
    assert p.returncode == 2 and "--train" in p.stderr, p.stderr


def test_a_fold_without_a_run_is_nulls_its_schema_allows_and_parquet_writes(tmp_path):
    # QA 2026-12-08: a fold with no run (no sortino over its train window: no losing day)
    # held NULL in columns the stats query declares non-nullable (max_drawdown_days); the
    # table was invalid and `-o folds.parquet` failed: "declared non-nullable but
    # contains nulls", exit 1
    import pyarrow.parquet as pq

    generate(str(tmp_path / "d"), instruments=1, days=4, start="2024-03-04", seed=3)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    s.sweep("sma_cross", {"fast": [2, 3], "slow": [5000]}, name="flat")  # no signal: no loss
    got = s.sweeps()["flat"].walk_forward(2, 1, "sortino")
    got.validate(full=True)
    assert got["run_id"].to_pylist() == [None, None]
    assert got["max_drawdown_days"].to_pylist() == [None, None]
    p = run_incbt(["--store", s.path, "walk-forward", "flat", "--train", "2", "--test", "1",
                   "--metric", "sortino", "-o", str(tmp_path / "f.parquet")])  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert pq.read_table(tmp_path / "f.parquet").equals(got)


def test_cli_notes_runs_ranked_on_the_data_before_a_new_day(tmp_path):
    # QA 2026-12-08: after an ingest, before an update, the walk-forward ranked the runs on
    # their stale results without a word (`query stats` notes them)
    days = generate(str(tmp_path / "d"), instruments=1, days=5, start="2024-03-04", seed=4)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(days[:4])
    s.sweep("sma_cross", {"fast": [2, 3], "slow": [20]}, name="g")
    args = ["--store", s.path, "walk-forward", "g", "--train", "2", "--test", "1"]
    p = run_incbt([*args, "--output", "csv"])
    assert p.returncode == 0 and "stale" not in p.stderr, p.stderr
    s.ingest(days[4])
    p = run_incbt([*args, "--output", "csv"])
    assert p.returncode == 0, p.stderr
    assert "note: 2 of the 2 run(s) ranked have stale results" in p.stderr, p.stderr
    assert "incbt update" in p.stderr
    assert len(list(csv.DictReader(io.StringIO(p.stdout)))) == 2  # the folds, as before


def test_a_window_without_days_or_a_sweep_without_results_is_said_with_its_fix(swept, tmp_path):
    # QA 2026-12-08: a window holding none of the sweep's days, and a sweep with no day
    # yet, were "has 0 day(s) ...: a train window of 5 leaves no day to test. Fix: give
    # a smaller train"; over one day, no train (1 at least) leaves a day to test
    s, sw = swept
    days = sorted({r["date"] for r in sw.runs[0].daily.to_pylist()})
    span = f"(its days: {days[0]} to {days[-1]}). Fix: give a start and an end around"
    with pytest.raises(incbt.UsageError, match=r"has no day on or after 2025-01-01 \(its") as e:
        sw.walk_forward(5, 5, start="2025-01-01")
    assert span in str(e.value) and "smaller train" not in str(e.value)
    with pytest.raises(incbt.UsageError, match="has no day from 2023-01-01 to 2023-02-01"):
        sw.walk_forward(5, 5, start="2023-01-01", end="2023-02-01")
    with pytest.raises(incbt.UsageError, match="has no day on or before 2023-01-01"):
        sw.walk_forward(5, 5, end="2023-01-01")
    with pytest.raises(incbt.UsageError, match="1 day.*given: a train window of 1 leaves") as e:
        sw.walk_forward(1, 1, start=days[-1])
    assert "Fix: give a window of more days, or bring" in str(e.value)
    with pytest.raises(incbt.UsageError, match=f"Fix: give a train of at most {len(days) - 1}"):
        sw.walk_forward(len(days), 1)
    later = s.sweep("sma_cross", {"fast": [3], "slow": [20]}, start="2030-01-02", name="later")
    with pytest.raises(incbt.UsageError, match="'later' has no day of results yet: nothing to"):
        later.walk_forward(1, 1)
    dry = s.sweep("sma_cross", {"fast": [4], "slow": [20]}, name="dry", dry_run=True)
    with pytest.raises(incbt.UsageError, match="Fix: run the sweep without dry_run first"):
        dry.walk_forward(1, 1)
    s.drop(list(later.run_ids))  # every run, not the sweep: no update brings them back
    with pytest.raises(incbt.UsageError, match="'later' has no run left .* drop --sweep later"):
        s.sweeps()["later"].walk_forward(1, 1)


def test_another_runs_damaged_results_file_does_not_fail_the_sweeps_folds(tmp_path):
    # QA 2026-12-08: the folds' windowed part was run in a session of every results file
    # of the store (it reads none): a results file of a run outside the sweep emptied
    # failed the walk-forward ("cannot be read (it is empty, 0 bytes)"), where
    # sweep.stats(), its leaderboards and `query stats` of the sweep's runs read on
    import os

    generate(str(tmp_path / "d"), instruments=2, days=6, start="2024-03-04", seed=8)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    sw = s.sweep("sma_cross", {"fast": [2, 3], "slow": [20]}, name="g")
    want = sw.walk_forward(2, 2)
    daily = tmp_path / "s" / "results" / "daily"
    before = set(os.listdir(daily))
    s.backtest("breakout", {"lookback": 30})
    (other,) = set(os.listdir(daily)) - before
    (daily / other).write_bytes(b"")
    assert sw.stats().num_rows == 2  # the sweep's own files are whole
    assert sw.walk_forward(2, 2).equals(want)
