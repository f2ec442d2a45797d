"""Incremental equals full: any history of ingests, backtests and updates.

SEMANTICS.md, "What must always hold": for any history of ingests (appends,
late days, corrections of past days) and any order of updates, every result in
the store equals, bit for bit, a from-scratch run over the final data.

A *history* is a list of operations on one store, all over the same generated
walk (3 instruments x 8 weekdays, Feb 26 .. Mar 6 2024, so it spans a month
boundary), each day in three versions (0: original, 1: a vendor-style revision,
2: the original less its last 10 bars):

- ``("ingest", pieces, via)``: ingest files, one per piece ``(day, version,
  instrument)`` (instrument ``None``: the whole day, all instruments), with
  ``store.ingest`` or ``store.update(paths)`` (``via``). Pieces cover appends,
  several days at once, late days out of order, late days of one instrument,
  corrections (the other version of a day already in), reverting a correction
  and exact repeats.
- ``("backtest", k)``: ``store.backtest`` of run ``RUNS[k]`` (registers it the
  first time, mid-history; brings only that run up to date).
- ``("update",)``: ``store.update()``.
- ``("drop", k)``: ``store.drop`` of run ``RUNS[k]`` if it is registered (a later
  ``("backtest", k)`` registers it again: computed from scratch).
- ``("remove", i, first, last)``: ``store.remove`` of instrument ``INSTS[i]``'s days
  from ``first`` to ``last`` (a range holding none of its days is refused; an
  instrument a registered run names is not removed whole, as the fresh store could
  not register that run): the fresh store never held them.

After the history and a final ``update()``, ``daily``, ``fills`` and
``metrics`` must be ``pa.Table.equals`` to those of a fresh store that
ingested only the final data (one file per (instrument, day), one ingest) and
ran the same runs once; ``verify()`` must pass; nothing may be stale.

Work is minimal: a small model of the store (:class:`Model`) predicts for
every backtest or update exactly how many bars it must compute (bars x runs
from each (run, instrument)'s first invalid day to its last day), and the
engine's own counter (``report.bars_processed``) must say the same; so must
``status()`` and ``update(dry_run=True)`` beforehand.
"""

from __future__ import annotations

import os
import tempfile
from unittest import mock

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pytest
from conftest import bits
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import incbt
from incbt.bars.generate import BARS_PER_DAY, generate, weekdays
from incbt.bars.schema import day_to_iso, iso_to_day
from incbt.catalog import runs as rc
from incbt.engine.layout import PENDING

SEED = 12  # a walk with orders pending at the last bar of several days (see the tests)
START = "2024-02-26"
N_DAYS = 8
INSTS = ("S0000", "S0001", "S0002")
DATES = [day_to_iso(d) for d in weekdays(iso_to_day(START), N_DAYS)]  # Feb 26 .. Mar 6

# (strategy, params, backtest keywords). Every run has an explicit start: with
# start=None the start is the store's first day *at registration*, which a late
# day can move, and the run would not be the same run as in the fresh store.
RUNS = (
    ("sma_cross", {"fast": 4, "slow": 30}, {"start": DATES[0], "fee_bps": 1.0}),
    ("breakout", {"lookback": 40}, {"start": DATES[0], "slippage_bps": 2.0}),
    ("ema_cross", {"fast": 5, "slow": 25}, {"start": DATES[3]}),  # starts mid-history
    ("bollinger", {"window": 30, "k": 1.5}, {"start": DATES[0], "instruments": ["S0000", "S0002"]}),
    ("sma_cross", {"fast": 8, "slow": 30}, {"start": DATES[0], "fee_bps": 1.0}),  # shares tasks
)
SMA_4, BREAKOUT, EMA_MID, BOLL_SOME, SMA_8 = range(len(RUNS))


def reads(k: int) -> set[str]:
    """The bar fields run k computes from: open and close (the engine), and its
    strategy's ``reads``."""
    from incbt.engine.strategies import BUILTINS

    return {"open", "close", *BUILTINS[RUNS[k][0]].reads}
# bars per day, by version
ROWS = {0: BARS_PER_DAY, 1: BARS_PER_DAY, 2: BARS_PER_DAY - 10, 3: BARS_PER_DAY, 4: BARS_PER_DAY}

DAILY = "SELECT * FROM daily ORDER BY run_id, instrument, date"
FILLS = "SELECT * FROM fills ORDER BY run_id, instrument, ts"
METRICS = "SELECT * FROM metrics ORDER BY run_id, scope, instrument"


def universe(k: int) -> tuple[str, ...]:
    return tuple(RUNS[k][2].get("instruments", INSTS))


def start_index(k: int) -> int:
    return DATES.index(RUNS[k][2]["start"])


def backtest(store: incbt.Store, k: int):
    name, params, kw = RUNS[k]
    return store.backtest(name, params, **kw)


# -- the data ------------------------------------------------------------------


class Data:
    """Every version of every day: whole-day files and one file per instrument.

    Versions: 0 the original, 1 a revision (a few closes and every volume restated),
    2 the original without its last ``CUT`` bars (a correction that changes the number
    of bars, and which bar is the day's last), 3 the original with every volume doubled
    (a correction of a field that only breakout's runs do not read either: none
    recomputes), 4 the original with its highs raised (only breakout reads them).
    """

    def __init__(self, root: str) -> None:
        g = dict(instruments=len(INSTS), days=N_DAYS, start=START, seed=SEED)
        self.whole = {
            0: generate(os.path.join(root, "v0"), **g),
            1: generate(os.path.join(root, "v1"), revise=DATES, **g),
        }
        self.whole[2] = []
        for day, path in enumerate(self.whole[0]):
            t = pcsv.read_csv(path)
            ts = pc.cast(t["ts"], pa.int64())
            last = (iso_to_day(DATES[day]) * 86400 + (14 * 60 + 30 + ROWS[2]) * 60) * 10**9
            out = os.path.join(root, "v2", os.path.basename(path))
            os.makedirs(os.path.dirname(out), exist_ok=True)
            pcsv.write_csv(t.filter(pc.less(ts, last)), out)
            self.whole[2].append(out)
        for ver, col, by in ((3, "volume", 2.0), (4, "high", 1.0005)):
            self.whole[ver] = []
            for path in self.whole[0]:
                t = pcsv.read_csv(path)
                t = t.set_column(t.schema.get_field_index(col), col, pc.multiply(t[col], by))
                out = os.path.join(root, f"v{ver}", os.path.basename(path))
                os.makedirs(os.path.dirname(out), exist_ok=True)
                pcsv.write_csv(t, out)
                self.whole[ver].append(out)
        self.split: dict[tuple[int, int, str], str] = {}
        for ver, files in self.whole.items():
            assert len(files) == N_DAYS
            for day, path in enumerate(files):
                t = pcsv.read_csv(path)
                for inst in INSTS:
                    p = os.path.join(root, f"split-v{ver}", f"{DATES[day]}-{inst}.csv")
                    os.makedirs(os.path.dirname(p), exist_ok=True)
                    part = t.filter(pc.equal(t["instrument"], inst))
                    assert part.num_rows == ROWS[ver]
                    pcsv.write_csv(part, p)
                    self.split[(ver, day, inst)] = p

    def fields_changed(self, inst: str, day: int, a: int, b: int) -> set[str] | None:
        """The bar fields version ``b`` of a day changes from version ``a`` (its bits),
        None where the bars' times differ: what an update recomputes the runs that read
        them for."""
        ta, tb = (pcsv.read_csv(self.split[(v, day, inst)]) for v in (a, b))
        if ta.num_rows != tb.num_rows or not bits(ta.select(["ts"])).equals(
            bits(tb.select(["ts"]))
        ):
            return None
        return {c for c in ("open", "high", "low", "close", "volume")
                if not bits(ta.select([c])).equals(bits(tb.select([c])))}

    def files(self, pieces) -> list[str]:
        out = []
        for day, ver, inst in pieces:
            out.append(
                self.whole[ver][day] if inst is None else self.split[(ver, day, INSTS[inst])]
            )
        return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return Data(str(tmp_path_factory.mktemp("incremental-props")))


# -- the model -------------------------------------------------------------------


class Model:
    """What the store holds and, per (run, instrument), what its results cover."""

    def __init__(self, loose: bool = False, data: Data | None = None) -> None:
        # loose: snapshot_keep_days is smaller than the history, so a recomputation may
        # resume from an older (month-end) snapshot or from the start: more work, same results
        self.loose = loose
        self.source = data  # a day's versions, to say which fields a correction changes
        self.data: dict[tuple[str, int], int] = {}  # (instrument, day) -> version
        self.runs: list[int] = []  # registered runs, in order
        self.through: dict[tuple[int, str], int] = {}  # last day computed
        self.dirty: dict[tuple[int, str], int] = {}  # first changed day <= through

    def universe(self, k: int) -> tuple[str, ...]:
        """Run k's instruments now: its list, or every instrument the store knows."""
        return (
            universe(k) if "instruments" in RUNS[k][2] else tuple(sorted({x for x, _ in self.data}))
        )

    def can_register(self, k: int) -> bool:
        """An "all" run always; a list of instruments once the store knows them all."""
        return "instruments" not in RUNS[k][2] or set(universe(k)) <= {x for x, _ in self.data}

    def ingest(self, pieces) -> int:
        """Apply an ingest; returns the number of (instrument, day) changed."""
        n = 0
        for day, ver, inst in pieces:
            for x in INSTS if inst is None else (INSTS[inst],):
                was = self.data.get((x, day))
                if was == ver:
                    continue  # an exact repeat changes nothing
                self.data[(x, day)] = ver
                n += 1
                fields = (
                    None if was is None or self.source is None
                    else self.source.fields_changed(x, day, was, ver)
                )
                for k in self.runs:
                    if fields is not None and not fields & reads(k):
                        continue  # a correction of fields the run does not read
                    key = (k, x)
                    # a day before the run's start is no bar of the run: nothing to redo
                    if key in self.through and start_index(k) <= day <= self.through[key]:
                        self.dirty[key] = min(self.dirty.get(key, day), day)
        return n

    def compute(self, runs) -> tuple[int, int]:
        """Bring ``runs`` up to date; returns (minimal bars, the most the engine may do)."""
        lo = hi = 0
        for k in runs:
            if k not in self.runs:
                self.runs.append(k)
            for x in self.universe(k):
                key = (k, x)
                days = sorted(d for (i, d) in self.data if i == x and d >= start_index(k))
                if not days:  # none left (removed): nothing to compute, nothing held
                    self.through.pop(key, None)
                    self.dirty.pop(key, None)
                    continue
                if key in self.dirty:
                    first = self.dirty.pop(key)
                elif key in self.through:
                    first = self.through[key] + 1
                else:
                    first = days[0]
                rows = {d: ROWS[self.data[(x, d)]] for d in days}
                n = sum(rows[d] for d in days if d >= first)
                lo += n
                hi += sum(rows.values()) if self.loose else n
                self.through[key] = days[-1]
        return lo, hi

    def remove(self, x: str, first: int, last: int) -> int:
        """Take x's days in [first, last] out; returns how many there were."""
        gone = sorted(d for (i, d) in self.data if i == x and first <= d <= last)
        for d in gone:
            del self.data[(x, d)]
        for k in self.runs:
            key = (k, x)
            first = next((d for d in gone if d >= start_index(k)), None)  # the run's own
            if key in self.through and first is not None and first <= self.through[key]:
                self.dirty[key] = min(self.dirty.get(key, first), first)
        return len(gone)

    def drop(self, k: int) -> None:
        """A dropped run holds nothing: registered again, it is computed from scratch."""
        self.runs.remove(k)
        for key in [key for key in self.through if key[0] == k]:
            del self.through[key]
            self.dirty.pop(key, None)

    def final_pieces(self) -> list[tuple[int, int, int]]:
        return [(d, v, INSTS.index(x)) for (x, d), v in sorted(self.data.items())]


def assert_work(done: int, expected: tuple[int, int], what: str) -> None:
    lo, hi = expected
    if lo == hi:
        assert done == lo, f"{what}: computed {done} bars, the invalid segments hold {lo}"
    else:  # few snapshots kept
        assert lo <= done <= hi, f"{what}: computed {done} bars, expected {lo}..{hi}"


# -- the check -----------------------------------------------------------------


def tables(store: incbt.Store) -> dict:
    out = {q: store.sql(q) for q in (DAILY, FILLS, METRICS)}
    # a session of some runs holds their rows, every one and no other, as the whole
    # store's tables do (Store.session(runs=...): a run's tables, a fork's base, verify)
    for q in (DAILY, FILLS):
        every = out[q]
        ids = sorted(set(every["run_id"].to_pylist()))
        for some in ([ids[0]] if ids else [], ids[1::2]):
            got = store.session(only_for=q, runs=some).sql(q).to_arrow_table()
            want = every.filter(pc.is_in(every["run_id"], pa.array(some, pa.string())))
            assert got.equals(want), (q, some)
    return out


def check_history(data: Data, ops, root: str, on_op=None, compaction=True, keep=None):
    """Play ``ops`` on a new store, then compare it with a fresh store of the final data.

    Returns (incremental store, fresh store). ``on_op(i, store)`` runs after op i.
    ``compaction=False``: result batches are never merged (``compact_all`` does nothing).
    ``keep``: the incremental store's ``snapshot_keep_days`` (the fresh store's is the
    default: results do not depend on it).
    """
    if not compaction:
        with mock.patch("incbt.results.compact.compact_all", lambda store, command="": []):
            return check_history(data, ops, root, on_op, True, keep)
    s = incbt.init(os.path.join(root, "inc"), **({"snapshot_keep_days": keep} if keep else {}))
    model = Model(loose=keep is not None and keep < N_DAYS, data=data)
    for i, op in enumerate(ops):
        if op[0] == "ingest":
            _, pieces, via = op
            paths = data.files(pieces)
            n = model.ingest(pieces)
            if via == "ingest":
                summary = s.ingest(paths)
                assert summary.days_new + summary.days_corrected == n, (i, op)
            else:
                dry = s.update(paths, dry_run=True)
                res = s.update(paths)
                assert res.ingest.days_new + res.ingest.days_corrected == n, (i, op)
                assert_work(res.report.bars_processed, model.compute(model.runs), f"op {i} {op}")
                assert dry.report.bars_processed == res.report.bars_processed, (i, op)
                assert not res.report.errors
        elif op[0] == "backtest" and not model.can_register(op[1]):
            before = s.sql("SELECT count(*) AS n FROM runs")
            with pytest.raises(incbt.NotFoundError, match="unknown instrument"):
                backtest(s, op[1])  # a list of instruments the store does not have (yet)
            assert s.sql("SELECT count(*) AS n FROM runs").equals(before)
        elif op[0] == "backtest":
            run = backtest(s, op[1])
            assert_work(run.report.bars_processed, model.compute([op[1]]), f"op {i} {op}")
            assert not run.report.errors
        elif op[0] == "drop":
            if op[1] in model.runs:
                assert s.drop([backtest_id(s, op[1])]).seq is not None, (i, op)
                model.drop(op[1])
        elif op[0] == "remove":
            _, who, a, b = op
            x = INSTS[who]
            held = {d for (i, d) in model.data if i == x}
            hit = {d for d in held if a <= d <= b}
            # (registered or to be: a run naming an instrument removed whole registers,
            # which the fresh store could not)
            named = any(x in universe(k) for k in range(len(RUNS)) if "instruments" in RUNS[k][2])
            if not hit:
                before = s.sql("SELECT count(*) AS n FROM events")
                with pytest.raises(incbt.NotFoundError, match="nothing (to remove|was removed)"):
                    s.remove(x, start=DATES[a], end=DATES[b])
                assert s.sql("SELECT count(*) AS n FROM events").equals(before), (i, op)
            elif hit != held or not named:  # (a run naming x: the fresh store could not
                n = model.remove(x, a, b)  # register it, were x gone whole)
                assert s.remove(x, start=DATES[a], end=DATES[b]).days_removed == n, (i, op)
        else:
            predicted = s.status().report.bars_processed
            res = s.update()
            assert_work(res.report.bars_processed, model.compute(model.runs), f"op {i} {op}")
            assert predicted == res.report.bars_processed, (i, op)
        if on_op:
            on_op(i, s)
    res = s.update()
    assert_work(res.report.bars_processed, model.compute(model.runs), "final update")
    st_ = s.status()
    assert not st_.stale and st_.report.bars_processed == 0
    # the fresh store: only the final data, in one ingest; the same runs, once each
    f = incbt.init(os.path.join(root, "fresh"))
    if model.final_pieces():  # (every day may have been removed)
        f.ingest(data.files(model.final_pieces()))
    for k in model.runs:
        backtest(f, k)
    got, want = tables(s), tables(f)
    for q in want:
        assert bits(got[q]).equals(bits(want[q])), f"{q}\n{diff(got[q], want[q])}"
    rep = s.verify()
    assert rep.ok, rep.differences[:3]
    return s, f


def diff(a, b) -> str:
    """The first differing row of two tables, for the failure message."""
    if a.num_rows != b.num_rows:
        return f"rows: incremental {a.num_rows}, fresh {b.num_rows}"
    for c in b.column_names:
        x, y = a.column(c).to_pylist(), b.column(c).to_pylist()
        for j, (u, v) in enumerate(zip(x, y, strict=True)):
            if u != v:
                row = a.slice(j, 1).to_pylist()
                return f"row {j} column {c}: incremental {u!r}, fresh {v!r}: {row}"
    return "schemas differ"


# -- the property ----------------------------------------------------------------

DAY = st.integers(0, N_DAYS - 1)
VERSION = st.sampled_from([0, 1, 2, 3, 4])
WHO = st.sampled_from([None, None, 0, 1, 2])  # mostly whole days
PIECES = st.dictionaries(DAY, st.tuples(VERSION, WHO), min_size=1, max_size=3).map(
    lambda d: tuple((day, v, who) for day, (v, who) in sorted(d.items()))
)
OP = st.one_of(
    st.tuples(st.just("ingest"), PIECES, st.sampled_from(["ingest", "update"])),
    st.tuples(st.just("backtest"), st.integers(0, len(RUNS) - 1)),
    st.just(("update",)),
    st.tuples(st.just("drop"), st.integers(0, len(RUNS) - 1)),
    st.tuples(st.just("remove"), st.integers(0, len(INSTS) - 1), DAY, DAY).map(
        lambda op: (op[0], op[1], min(op[2:]), max(op[2:]))
    ),
)


@st.composite
def histories(draw, max_ops=8):
    # an ingest first, so that a run can be registered; it may hold some instruments only:
    # an "all" run then takes in the others as they arrive (its capital grows)
    ops = [("ingest", draw(PIECES), "ingest")]
    ops.append(("backtest", draw(st.integers(0, len(RUNS) - 1))))
    ops += draw(st.lists(OP, max_size=max_ops))
    return ops


PROPERTY = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ALL_DAYS = tuple((d, 0, None) for d in range(N_DAYS))
# corrections of the first day, of a middle day of one instrument, of the last day
CORRECTIONS = [
    ("ingest", ALL_DAYS, "ingest"),
    ("backtest", SMA_4),
    ("backtest", EMA_MID),
    ("backtest", BOLL_SOME),
    ("ingest", ((0, 1, None),), "update"),
    ("ingest", ((3, 1, 0),), "update"),  # the first day of EMA_MID, one instrument
    ("ingest", ((7, 1, None),), "ingest"),
    ("backtest", SMA_8),  # registered while the others are stale
    ("ingest", ((7, 0, None),), "update"),  # the correction reverted
]
# days taken out (incbt remove): the last ones (nothing after them to compute), the
# first day of the runs, a middle day, an instrument whole, then some of it back
REMOVALS = [
    ("ingest", ALL_DAYS, "ingest"),
    ("backtest", SMA_4),
    ("backtest", EMA_MID),
    ("backtest", BOLL_SOME),
    ("remove", 1, 6, 7),
    ("update",),
    ("remove", 2, 0, 0),
    ("remove", 0, 4, 4),
    ("backtest", BREAKOUT),
    ("remove", 1, 0, 7),
    ("update",),
    ("ingest", ((3, 1, 1), (7, 0, 1)), "update"),
]


@PROPERTY
@given(ops=histories())
@example(  # appends one day at a time, every run registered along the way
    ops=[("ingest", ((0, 0, None),), "ingest"), ("backtest", SMA_4)]
    + [("ingest", ((d, 0, None),), "update") for d in range(1, 4)]
    + [("backtest", BREAKOUT), ("backtest", EMA_MID), ("backtest", BOLL_SOME)]
    + [("ingest", ((d, 0, None),), "update") for d in range(4, 8)]
    + [("backtest", SMA_8)]
)
@example(  # late days out of order, a late day of one instrument, exact repeats
    ops=[
        ("ingest", ((0, 0, None), (1, 0, None), (4, 0, None)), "ingest"),
        ("backtest", SMA_4),
        ("backtest", EMA_MID),
        ("ingest", ((3, 0, None), (6, 0, 1)), "update"),
        ("ingest", ((2, 0, 2),), "ingest"),
        ("ingest", ((0, 0, None), (1, 0, None)), "update"),
        ("ingest", ((2, 0, None), (5, 0, None), (6, 0, None), (7, 0, None)), "ingest"),
        ("backtest", BOLL_SOME),
        ("update",),
    ]
)
@example(ops=CORRECTIONS)
@example(ops=REMOVALS)
def test_any_history_equals_a_fresh_store(data, ops):
    """The incremental logic alone: result batches are never compacted."""
    with tempfile.TemporaryDirectory() as root:
        check_history(data, ops, root, compaction=False)


@PROPERTY
@given(ops=histories(max_ops=12), keep=st.sampled_from([60, 3, 2, 1]))
@example(  # corrections of one instrument, then new runs: the 8th batch compacts
    ops=[("ingest", ALL_DAYS, "ingest"), ("backtest", SMA_4)]
    + [("ingest", ((d, 1, 0),), "update") for d in (5, 6, 7)]
    + [("backtest", k) for k in (BREAKOUT, EMA_MID, BOLL_SOME, SMA_8)],
    keep=60,
)
@example(ops=CORRECTIONS + [("backtest", BREAKOUT), ("update",)], keep=3)
def test_any_history_with_compaction_and_retention_equals_a_fresh_store(data, ops, keep):
    """The same as the store runs by default: every 8 result batches merge; and with
    snapshot_keep_days of 3, 2 or 1 (fewer days than the history: resumes from older
    snapshots)."""
    with tempfile.TemporaryDirectory() as root:
        check_history(data, ops, root, keep=keep)


@PROPERTY
@given(ops=histories(max_ops=12))
@example(  # corrections of one instrument, then new runs: the 8th batch compacts
    ops=[("ingest", ALL_DAYS, "ingest"), ("backtest", SMA_4)]
    + [("ingest", ((d, 1, 0),), "update") for d in (5, 6, 7)]
    + [("backtest", k) for k in (BREAKOUT, EMA_MID, BOLL_SOME, SMA_8)],
)
def test_any_history_with_streamed_compaction_equals_a_fresh_store(data, ops):
    """Every compaction streamed (``_merge_streaming``: the one a merge of big files
    takes, in bounded memory), its runs split into ranges of a few dozen rows."""
    import incbt.results.compact as compact_mod

    with (
        mock.patch.object(compact_mod, "STREAM_BYTES", 0),
        mock.patch.object(compact_mod, "MERGE_ROWS", 40),
        tempfile.TemporaryDirectory() as root,
    ):
        check_history(data, ops, root)


STREAMED_EXAMPLE = (
    [("ingest", ALL_DAYS, "ingest"), ("backtest", SMA_4)]
    + [("ingest", ((d, 1, 0),), "update") for d in (5, 6, 7)]
    + [("backtest", k) for k in (BREAKOUT, EMA_MID, BOLL_SOME, SMA_8)]
)


def test_a_streamed_compaction_writes_the_rows_of_one_in_memory(data, tmp_path):
    """The compaction of the example above, streamed in ranges of 40 rows, writes the
    files a merge in memory writes: the same rows in the same order."""
    import pyarrow.parquet as pq

    import incbt.results.compact as compact_mod

    real = compact_mod._merge_streaming
    calls = []

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    stores = {}
    for how, limit in (("memory", 1 << 40), ("streamed", 0)):
        with (
            mock.patch.object(compact_mod, "STREAM_BYTES", limit),
            mock.patch.object(compact_mod, "MERGE_ROWS", 40),
            mock.patch.object(compact_mod, "_merge_streaming", counted),
        ):
            stores[how] = check_history(data, STREAMED_EXAMPLE, str(tmp_path / how))[0]
        assert bool(calls) == (how == "streamed")
    def merged(store: incbt.Store) -> dict[str, str]:  # the files of the merged batch
        with store.catalog.env.read() as txn:
            (rec,) = [r for _, r in rc.batches(store.catalog, txn) if r.get("level", 0) > 0]
        return {t: os.path.join(store.path, rec[t]) for t in ("daily", "fills")}

    for table in ("daily", "fills"):
        got = [pq.read_table(merged(stores[how])[table]) for how in stores]
        assert got[0].num_rows > 40 and got[0].equals(got[1]), table


# -- the edge cases of SEMANTICS.md, one by one -------------------------------------


def pending(store: incbt.Store, k: int, inst: str) -> tuple[int, bool]:
    """The day and pending flag of the latest snapshot of (run k, inst)."""
    rid = backtest_id(store, k)
    with store.catalog.env.read() as txn:
        day, state = rc.latest_snapshot(store.catalog, txn, rid, inst)
    return day, bool(state[PENDING] == 1.0)


def backtest_id(store: incbt.Store, k: int) -> str:
    from incbt.runs import register

    name, params, kw = RUNS[k]
    kw = dict(kw)
    ex = {n: kw.pop(n, d) for n, d in (("notional", 1e5), ("fee_bps", 0.0), ("slippage_bps", 0.0))}
    return register(store, name, params, exec_params=ex, **kw).run_id


def test_an_order_pending_at_the_last_bar_fills_at_the_next_day(data, tmp_path):
    """SMA_8 on S0001 orders at the last bar of Mar 5; Mar 6 arrives later and fills it.
    SMA_4 on S0000 orders at the last bar of Mar 6, the last bar of the data."""
    seen = {}

    def on_op(i, s):
        if i == 1:  # after the backtest over Feb 26 .. Mar 5
            seen["before"] = pending(s, SMA_8, "S0001")

    ops = [
        ("ingest", ALL_DAYS[:7], "ingest"),
        ("backtest", SMA_8),
        ("backtest", SMA_4),
        ("ingest", (ALL_DAYS[7],), "update"),
    ]
    s, f = check_history(data, ops, str(tmp_path), on_op, compaction=False)
    assert seen["before"] == (iso_to_day(DATES[6]), True), "the walk no longer has the case"
    # it filled at the first bar of Mar 6, in both stores
    q = (
        "SELECT min(ts) AS ts FROM fills WHERE run_id = $r AND instrument = 'S0001' "
        "AND date = CAST($d AS DATE)"
    )
    p = {"r": backtest_id(s, SMA_8), "d": DATES[7]}
    first_bar = (iso_to_day(DATES[7]) * 86400 + 14 * 3600 + 30 * 60) * 10**9
    for store in (s, f):
        ts = store.sql(q, params=p)["ts"][0]
        assert ts.value == first_bar
        assert pending(store, SMA_8, "S0001") == (iso_to_day(DATES[7]), False)
        # and the order of the last bar of the data stays pending, in both stores
        assert pending(store, SMA_4, "S0000") == (iso_to_day(DATES[7]), True)


def test_a_correction_of_the_first_day_of_each_run(data, tmp_path):
    ops = [
        ("ingest", ALL_DAYS, "ingest"),
        *[("backtest", k) for k in range(len(RUNS))],
        ("ingest", ((0, 1, None),), "update"),
        ("ingest", ((3, 1, None),), "update"),  # EMA_MID's first day
        ("ingest", ((0, 0, 2),), "update"),  # reverted, for one instrument
    ]
    check_history(data, ops, str(tmp_path), compaction=False)


def test_a_correction_of_the_last_day_with_an_order_pending_there(data, tmp_path):
    ops = [
        ("ingest", ALL_DAYS, "ingest"),
        *[("backtest", k) for k in range(len(RUNS))],
        ("ingest", ((7, 1, None),), "update"),
        ("ingest", ((7, 0, 0),), "update"),  # back to the original for S0000 (SMA_4 pends)
    ]
    s, _ = check_history(data, ops, str(tmp_path), compaction=False)
    assert pending(s, SMA_4, "S0000") == (iso_to_day(DATES[7]), True)


def test_a_late_day_between_two_computed_days(data, tmp_path):
    ops = [
        ("ingest", ALL_DAYS[:4] + ALL_DAYS[5:], "ingest"),
        *[("backtest", k) for k in range(len(RUNS))],
        ("ingest", (ALL_DAYS[4],), "update"),
    ]
    check_history(data, ops, str(tmp_path), compaction=False)


# -- work is minimal -----------------------------------------------------------------


@pytest.mark.parametrize("day", [0, 2, 3, 5, 7])
@pytest.mark.parametrize("inst", ["S0000", "S0001"])
def test_minimal_work_after_a_correction(data, tmp_path, day, inst):
    """A correction of day D of X: exactly the bars of X from D on, once per run over X
    that has started by D (the run starting Mar 1 sees no bar of Feb 26 .. Feb 28)."""
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(data.files(ALL_DAYS))
    for k in range(len(RUNS)):
        backtest(s, k)
    s.ingest(data.files([(day, 1, INSTS.index(inst))]))
    runs_over = [k for k in range(len(RUNS)) if inst in universe(k) and start_index(k) <= day]
    expected = (N_DAYS - day) * BARS_PER_DAY * len(runs_over)
    st_ = s.status()
    assert {(r.instrument, r.from_day) for r in st_.stale} == {(inst, DATES[day])}
    res = s.update()
    assert res.report.bars_processed == expected
    assert st_.report.bars_processed == expected
    assert s.verify().ok


# -- regression tests of bugs found by the tests above ------------------------------


def test_new_instrument_joining_an_all_run(tmp_path):
    """S0002 arrives on Mar 1: the "all" run takes it in, its capital grows to 3 x notional
    for every day, so the whole portfolio is refolded (a regression test: the portfolio
    once resumed from accumulators folded with the old capital)."""
    g = dict(days=N_DAYS, start=START, seed=SEED)
    head = generate(str(tmp_path / "two"), instruments=2, **g, to_day=DATES[3])
    tail = generate(str(tmp_path / "three"), instruments=3, **g, from_day=DATES[4])
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(head)
    s.backtest("sma_cross", {"fast": 4, "slow": 30}, start=DATES[0])
    res = s.update(tail)
    assert res.report.bars_processed == 3 * 4 * BARS_PER_DAY
    f = incbt.init(str(tmp_path / "f"))
    f.ingest(head + tail)
    f.backtest("sma_cross", {"fast": 4, "slow": 30}, start=DATES[0])
    got, want = tables(s), tables(f)
    for q in want:
        assert bits(got[q]).equals(bits(want[q])), f"{q}\n{diff(got[q], want[q])}"
    assert s.verify().ok


def test_portfolio_resume_with_few_snapshots_kept(data, tmp_path):
    """snapshot_keep_days=2, S0001 lacks Mar 5; it arrives late. The instruments'
    snapshots are thinned on their own days, the portfolio's on the union: the portfolio
    has no snapshot of Mar 4 and must resume from an older one (a regression test: the
    portfolio once resumed from its initial state and dropped the days in between)."""
    late = (6, 0, 1)
    ops = [
        ("ingest", ALL_DAYS[:6] + ((6, 0, 0), (6, 0, 2), ALL_DAYS[7]), "ingest"),
        ("backtest", SMA_4),
        ("ingest", (late,), "update"),
    ]
    check_history(data, ops, str(tmp_path), compaction=False, keep=2)


def test_compaction_keeps_the_rows_of_pairs_not_recomputed(data, tmp_path):
    """A correction of S0000 recomputes (SMA_4, S0000) only; 6 more backtests make the 8th
    batch, and compaction merges all 8: (SMA_4, S0001) and (SMA_4, S0002) keep their rows
    (a regression test: compaction once dropped rows of pairs without a cut-off in a batch
    that had cut-offs for other pairs, a non-Kleene OR giving null)."""
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(data.files(ALL_DAYS))
    backtest(s, SMA_4)  # batch 1
    s.update(data.files([(5, 1, 0)]))  # batch 2: (SMA_4, S0000) from Mar 4
    before = tables(s)
    assert before[DAILY].num_rows == 3 * N_DAYS
    runs = [k for k in range(len(RUNS)) if k != SMA_4]
    reports = [backtest(s, k).report for k in runs]
    reports += [s.backtest("sma_cross", {"fast": f, "slow": 30}).report for f in (2, 3)]
    assert [r.compactions for r in reports] == [0] * 5 + [1]  # at the 8th batch
    rid = backtest_id(s, SMA_4)
    got = s.sql(DAILY.replace("ORDER", "WHERE run_id = $r ORDER"), params={"r": rid})
    want = before[DAILY]
    assert got.num_rows == want.num_rows, f"{got.num_rows} daily rows of {want.num_rows} left"
    assert bits(got).equals(bits(want))
    got = s.sql(FILLS.replace("ORDER", "WHERE run_id = $r ORDER"), params={"r": rid})
    assert got.equals(before[FILLS])
    assert s.verify().ok
