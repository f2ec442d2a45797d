"""Workers' batches: however the tasks are cut into calls and the calls into commits,
the tables are those of the in-process run.

On Ray each call (a chunk of consecutive tasks) runs ``incbt.execute.ray_exec._work``
in a worker, which writes the chunk's result rows as a batch of its own
(:class:`incbt.results.PartFiles`); the driver commits the batches in plan order, a
commit ending only where a chunk ends. :class:`Chunked` runs that same function in
this process, so Hypothesis can draw what Ray's scheduling would decide: the chunk
sizes, where commits fall, and chunks whose worker died on every try (Ray's
``failed_result``: no rows, the runs reported as not computed). Histories: the runs
computed over the first days, the rest ingested and brought up to date (chunked
again), a failed chunk's pairs computed by a later in-process update; in the end
``daily``, ``fills`` and ``metrics`` equal bit for bit those of a fresh store that
ran everything in-process, the files on disk are the catalog's, and nothing is left
in ``tmp/``. ``tests/test_ray.py`` runs the same path on a real Ray.
"""

from __future__ import annotations

import functools
import os
import tempfile
from unittest import mock

import pyarrow as pa
import pytest
from conftest import assert_files_are_the_catalogs, bits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import incbt
import incbt.results.compact as compact_mod
from incbt.bars.generate import generate
from incbt.catalog import runs as rc
from incbt.execute import NO_DAYS, resolve_strategy, snapshot_width
from incbt.execute.ray_exec import _work, failed_result
from incbt.runs import bar_source, bring_up_to_date, register, resume_states

QUERIES = {
    "daily": "SELECT * FROM daily ORDER BY run_id, instrument, date",
    "fills": "SELECT * FROM fills ORDER BY run_id, instrument, ts, qty, price",
    "metrics": "SELECT * FROM metrics ORDER BY run_id, scope, instrument",
}
GEN = dict(instruments=3, days=8, start="2024-02-26", seed=31, fmt="parquet")
RUNS = [{"fast": f, "slow": s} for f, s in ((3, 20), (5, 30), (8, 20), (4, 45))]


class Chunked:
    """Ray's executor without Ray: chunks of consecutive tasks, each run by the workers'
    own function, in this process. ``sizes``: the chunk sizes, in turn; ``dead``: the
    chunks whose worker "died on every try" (their tasks come back as Ray's)."""

    name = "chunked"
    writes_parts = True

    def __init__(self, sizes: list[int], dead: frozenset[int] = frozenset()) -> None:
        self.sizes, self.dead = sizes, dead
        self.chunks = 0  # calls made
        self.lost: set[str] = set()  # the instruments of the dead calls' tasks
        self.ends = 0  # where a commit may fall: a live call's end, any dead call's task

    def parallelism(self) -> int:
        return 1

    def map(self, store, tasks, keep, progress_advance, known=None, parts=None):
        assert parts is not None  # writes_parts: the driver hands out the batch numbers
        source = bar_source(store, tasks)
        resumes = resume_states(store, tasks, known)
        start = k = 0
        while start < len(tasks):
            ids = range(start, min(start + self.sizes[k % len(self.sizes)], len(tasks)))
            if k in self.dead:
                self.lost |= {tasks[i].instrument for i in ids}
                self.ends += len(ids)
                out = [
                    failed_result(
                        tasks[i],
                        snapshot_width(resolve_strategy(tasks[i].strategy, tasks[i].source)),
                        "the worker died",
                    )
                    for i in ids
                ]
            else:
                self.ends += 1
                out = _work(
                    [tasks[i] for i in ids],
                    source.root,
                    [source.index.get(tasks[i].instrument, NO_DAYS) for i in ids],
                    source.paths,
                    [resumes[i] for i in ids],
                    keep,
                    (parts + k, "test-"),
                )
            for r in out:
                progress_advance(r.task.work)
                yield r
            start, k = ids.stop, k + 1
        self.chunks += k


def results(s: incbt.Store) -> dict[str, pa.Table]:
    return {k: s.sql(q) for k, q in QUERIES.items()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The data, day by day, the vendor's correction of every day (a file each), and the
    in-process results over the data with each day corrected in turn."""
    root = tmp_path_factory.mktemp("parts")
    generate(str(root / "data"), **GEN)
    days = sorted(str(root / "data" / f) for f in os.listdir(root / "data"))
    fixes, want = [], []
    for k, path in enumerate(days):
        day = os.path.basename(path)[5:15]  # bars-YYYY-MM-DD.parquet
        fix = root / f"fix{k}"
        generate(str(fix), **GEN, from_day=day, to_day=day, revise=[day])
        fixes.append(str(fix))
        ref = incbt.init(str(root / f"ref{k}"))
        ref.ingest([*days[:k], fixes[k], *days[k + 1 :]])
        for p in RUNS:
            ref.backtest("sma_cross", p, fee_bps=1.0)
        want.append(results(ref))
    return days, fixes, want


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first_days=st.integers(2, GEN["days"]),
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    later_sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    commit_bars=st.sampled_from([1, 50_000, None]),
    dead=st.frozensets(st.integers(0, 5), max_size=2),
    fixed=st.integers(0, GEN["days"] - 1),
    fanout=st.sampled_from([2, compact_mod.FANOUT]),
)
def test_any_chunking_and_commits_of_workers_batches_give_the_in_process_tables(
    world, first_days, sizes, later_sizes, commit_bars, dead, fixed, fanout
):
    """Then the rest of the days and a correction of day ``fixed`` (before the runs'
    last day or after it), brought up to date in other chunks. ``fanout`` 2: each
    command's batches are merged with the last command's by compaction as they go."""
    days, fixes, wants = world
    want = wants[fixed]
    real = compact_mod.plan_compaction
    with (
        tempfile.TemporaryDirectory() as tmp,
        mock.patch.object(compact_mod, "plan_compaction", functools.partial(real, fanout=fanout)),
    ):
        s = incbt.init(os.path.join(tmp, "s"))
        s.ingest(days[:first_days])
        records = [register(s, "sma_cross", p, exec_params={"fee_bps": 1.0}) for p in RUNS]
        ex = Chunked(sizes, dead)
        rep = bring_up_to_date(
            s, records, command="test", kind="sweep", executor=ex, commit_bars=commit_bars
        )
        # a task is one instrument with every run (no split at this size); a task that
        # never ran is no failure of the strategy: said apart (QA 2026-12-06)
        assert rep.errors == []
        assert all("not computed" in e for e in rep.not_run), rep.not_run
        assert {e.split(":", 1)[0] for e in rep.not_run} == ex.lost
        assert len(rep.not_run) == len(ex.lost) * len(RUNS)
        with s.catalog.env.read() as txn:
            recs = dict(rc.batches(s.catalog, txn))
        assert len(recs) == ex.chunks - len(dead & set(range(ex.chunks)))  # a batch a call
        if commit_bars == 1:  # a commit wherever it may fall, never inside a live call
            assert rep.commits == ex.ends
        assert len({r.get("group", b) for b, r in recs.items()}) == min(1, len(recs))
        assert all(r.get("level", 0) == 0 for r in recs.values())  # one command: no merge
        assert_files_are_the_catalogs(s)
        # the rest of the days and the correction, brought up to date in other chunks
        # (the rows from the corrected day on are superseded: SQL must cut them); then
        # in-process, what a dead worker left
        if first_days < len(days):
            s.ingest(days[first_days:])
        s.ingest(fixes[fixed])
        later = Chunked(later_sizes)
        bring_up_to_date(s, records, command="test", kind="update", executor=later)
        s.update()
        if fanout == 2 and recs:  # the two commands' batches were merged: a level-1 batch
            with s.catalog.env.read() as txn:
                levels = [r.get("level", 0) for _, r in rc.batches(s.catalog, txn)]
            assert max(levels) >= 1, levels
        got = results(s)
        for k, t in want.items():
            assert got[k].num_rows == t.num_rows > 0, k
            assert bits(got[k]).equals(bits(t)), f"{k} differs"
        assert_files_are_the_catalogs(s)
        assert s.verify().ok
