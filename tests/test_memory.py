"""What a run holds in memory does not grow with its universe.

The engine streams: a task holds one instrument's bars, its result rows go to
the batch's files as it arrives, and what the catalog's transaction needs (the
retained snapshots and the daily pnl) waits for a commit that comes at the
latest when it reaches ``incbt.runs.commit_budget`` (so do the catalog pages
that transaction dirties, which LMDB keeps for reuse, and the rows a batch file
buffers). ``benchmarks/bench_engine.py`` measures the peak RSS of a fresh
process; these tests pin the two mechanisms without timing: the results waiting
for each commit stay under the budget, and the peak of memory traced by
``tracemalloc`` (Python objects and NumPy arrays) grows by far less per
instrument than one instrument's results, where it grows by all of them when
nothing bounds what waits (checked too, so that the test can fail).
"""

from __future__ import annotations

import os
import shutil
import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import incbt
import incbt.runs
from incbt.catalog.env import close_env
from incbt.engine import get_strategy
from incbt.execute import snapshot_width

DAYS = 60  # with the default snapshot_keep_days (60), every day's snapshot is kept
BARS_PER_DAY = 20
INSTRUMENTS = 50
DAILY = "SELECT * FROM daily ORDER BY run_id, instrument, date"
FILLS = "SELECT * FROM fills ORDER BY run_id, instrument, ts"
METRICS = "SELECT * FROM metrics ORDER BY run_id, scope, instrument"


def _bars(instruments: int, days: int, per_day: int, seed: int = 3) -> pa.Table:
    """Random-walk bars on a 0.01 grid, ``per_day`` a minute apart from 14:30 UTC."""
    rng = np.random.default_rng(seed)
    day0 = np.datetime64("2024-01-01", "D")
    dates = day0 + np.arange(days * 7 // 5 + 7)
    dates = dates[np.is_busday(dates)][:days]
    ts = (
        dates.astype("datetime64[ns]")[:, None]
        + np.timedelta64(14 * 60 + 30, "m")
        + np.arange(per_day) * np.timedelta64(1, "m")
    ).reshape(-1)
    n = len(ts)
    cols: dict[str, list] = {k: [] for k in ("instrument", "ts", "open", "high", "low", "close")}
    for i in range(instruments):
        close = np.round(100 + np.cumsum(rng.normal(0, 0.2, n)), 2)
        opn = np.round(close + rng.normal(0, 0.05, n), 2)
        cols["instrument"].append(np.full(n, f"M{i:03d}"))
        cols["ts"].append(ts)
        cols["open"].append(opn)
        cols["close"].append(close)
        cols["high"].append(np.maximum(opn, close) + 0.01)
        cols["low"].append(np.minimum(opn, close) - 0.01)
    flat = {k: np.concatenate(v) for k, v in cols.items()}
    return pa.table(
        {
            "instrument": pa.array(flat["instrument"], pa.string()),
            "ts": pa.array(flat["ts"], pa.timestamp("ns", tz="UTC")),
            **{k: pa.array(flat[k]) for k in ("open", "high", "low", "close")},
            "volume": pa.array(np.full(len(flat["ts"]), 1000.0)),
        }
    )


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A store holding the bars, and nothing computed."""
    root = tmp_path_factory.mktemp("mem")
    pq.write_table(_bars(INSTRUMENTS, DAYS, BARS_PER_DAY), root / "bars.parquet")
    s = incbt.init(str(root / "base"))
    s.ingest(str(root / "bars.parquet"))
    path = s.path
    del s
    close_env(os.path.join(path, "catalog"))
    return path


def _copy(base: str, dst) -> incbt.Store:
    shutil.copytree(base, dst)
    return incbt.open(str(dst))


def _tables(s: incbt.Store) -> list[pa.Table]:
    return [s.sql(q) for q in (DAILY, FILLS, METRICS)]


SETS = [{"fast": 3, "slow": 12}, {"fast": 5, "slow": 20}]


def test_results_waiting_for_a_commit_stay_under_the_budget(base, tmp_path, monkeypatch):
    """Each commit takes at most the budget's worth of results (plus the one that
    crossed it), and committing in pieces changes no result."""
    monkeypatch.setattr(incbt.runs, "COMMIT_FLOOR", 1 << 40)
    one = _copy(base, tmp_path / "one")
    assert one.backtest("sma_cross", SETS)[0].report.commits == 1  # nothing bounded
    expected = _tables(one)

    # a budget of 16 KiB per run (the share of one instrument's bars made negligible)
    monkeypatch.setattr(incbt.runs, "COMMIT_FLOOR", 16 << 10)
    monkeypatch.setattr(incbt.runs, "COMMIT_SHARE", 1 << 20)
    held: list[tuple[int, int]] = []  # (bytes waiting, largest result) per commit
    real = incbt.runs.commit

    def spy(store, results, *a, **k):
        sizes = [incbt.runs.held_bytes(r) for r in results]
        held.append((sum(sizes), max(sizes, default=0)))
        return real(store, results, *a, **k)

    monkeypatch.setattr(incbt.runs, "commit", spy)
    s = _copy(base, tmp_path / "pieces")
    budget = 2 * (16 << 10)  # two runs on every instrument
    runs = s.backtest("sma_cross", SETS)
    assert runs[0].report.commits == len(held) >= 8
    for waiting, largest in held:
        assert waiting < budget + largest
    for a, b in zip(expected, _tables(s), strict=True):
        assert a.equals(b)
    assert s.verify().ok


def _peak(base: str, dst, instruments: int) -> int:
    """Peak traced bytes of a backtest of ``instruments`` instruments on a copy of base."""
    s = _copy(base, dst)
    insts = s.instruments()[:instruments]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        s.backtest("sma_cross", SETS[0], instruments=insts)
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_memory_held_per_instrument_does_not_grow(base, tmp_path, monkeypatch):
    """From 10 to 50 instruments, the traced peak grows by much less than the results
    of one instrument per instrument added; with nothing bounding what waits for the
    commit, it grows by about all of them."""
    _copy(base, tmp_path / "warm").backtest("sma_cross", SETS[0])  # kernels, imports
    # what one instrument's run keeps until its commit (the rows its batch files buffer
    # wait in buffers with room for a row group from the start: traced at their full
    # size whatever the number of instruments)
    snapshot = snapshot_width(get_strategy("sma_cross")) * 8
    per_instrument = DAYS * (snapshot + 8 + 4 + 4)  # snapshots, pnl, their days

    def growth(tag: str) -> float:
        small = _peak(base, tmp_path / f"{tag}10", 10)
        large = _peak(base, tmp_path / f"{tag}50", 50)
        return (large - small) / 40

    monkeypatch.setattr(incbt.runs, "COMMIT_FLOOR", 32 << 10)  # ~3 instruments a commit
    bounded = growth("b")
    monkeypatch.setattr(incbt.runs, "COMMIT_FLOOR", 1 << 40)  # one commit at the end
    unbounded = growth("u")
    assert unbounded > per_instrument, (unbounded, per_instrument)  # the test can fail
    # what is left per instrument: its plan task and the (days, pnl) its run's portfolio
    # is folded from at the end (about 2 KB here)
    assert bounded < per_instrument / 3, (bounded, per_instrument, unbounded)

