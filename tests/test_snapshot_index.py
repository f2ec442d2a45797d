"""The catalog's snapshot table (format 3: instrument | day | run) against a model.

Snapshots are keyed by instrument and day before run, so a pair's latest snapshot
before a day is found by stepping back over the instrument's snapshot days. The
step back matters when runs of one instrument keep different days (runs started
on different days, retention applied at different times, a run that failed): this
checks every reading and deleting function against a plain dict, on random
snapshot sets of several runs, instruments and the portfolio.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import incbt
from incbt.catalog import runs as rc

RUNS = ["00000000000000a1", "00000000000000b2", "ffffffffffffff03"]
INSTS = ["", "A", "AB", "B"]  # "" is a portfolio; "A" is a prefix of "AB"
DAYS = list(range(18000, 18030))

pairs = st.tuples(st.sampled_from(RUNS), st.sampled_from(INSTS))
snapshot_sets = st.dictionaries(pairs, st.sets(st.sampled_from(DAYS), max_size=12), max_size=8)


def _value(run: str, inst: str, day: int) -> np.ndarray:
    return np.array([float(day), float(RUNS.index(run)), float(len(inst))])


def _latest(model: dict, run: str, inst: str, before: int | None) -> int | None:
    days = [d for d in model.get((run, inst), ()) if before is None or d < before]
    return max(days) if days else None


@settings(max_examples=80, deadline=None)
@given(
    snaps=snapshot_sets,
    listed=st.sets(pairs),
    cut=st.sampled_from(DAYS),
    probe=st.sampled_from([None, *DAYS]),
    seeks=st.sampled_from([0, rc.SEEKS_OVER_STEPS]),  # 0: always a seek per run and day
)
def test_snapshot_reads_and_deletes_match_a_model(
    tmp_path_factory, snaps, listed, cut, probe, seeks
):
    store = incbt.init(str(tmp_path_factory.mktemp("snaps") / "s"))
    cat = store.catalog
    model = {k: set(v) for k, v in snaps.items() if v}
    # pairs entries (put_task writes one with a pair's snapshots; here some pairs have
    # one without any snapshot, as after a recomputation from before all of them)
    listed = {p for p in listed if p[1]} | {p for p in model if p[1]}

    def put(txn):
        for (run, inst), days in model.items():
            ds = np.array(sorted(days), dtype=np.int32)
            rc.put_snapshots(cat, txn, run, inst, ds, np.stack([_value(run, inst, d) for d in ds]))
        for run, inst in listed:
            txn.put(rc.ri_key(run, inst), (7).to_bytes(8, "big"), db=cat.env.db(b"pairs"))

    cat.env.write(put)

    def check() -> None:
        with cat.env.read() as txn:
            assert rc.count_snapshots(cat, txn) == sum(len(v) for v in model.values())
            for run in RUNS:
                for inst in INSTS:
                    assert rc.snapshot_days(cat, txn, run, inst) == sorted(
                        model.get((run, inst), ())
                    )
                    for before in (None, probe, cut):
                        got = rc.latest_snapshot(cat, txn, run, inst, before)
                        want = _latest(model, run, inst, before)
                        if want is None:
                            assert got is None, (run, inst, before)
                        else:
                            assert got is not None and got[0] == want, (run, inst, before)
                            assert np.array_equal(got[1], _value(run, inst, want))
            # every run's days of an instrument in one walk, stepping and seeking
            was = rc.SEEKS_OVER_STEPS
            try:
                for rc.SEEKS_OVER_STEPS in sorted({0, seeks, was}):
                    for inst in INSTS:
                        assert rc.snapshot_days_many(cat, txn, RUNS, inst) == {
                            run: sorted(model.get((run, inst), ())) for run in RUNS
                        }
            finally:
                rc.SEEKS_OVER_STEPS = was
            # the planner's bulk read: the pairs seq, and the latest snapshot of every
            # listed pair and portfolio (an instrument pair without a pairs entry has none)
            seqs, snaps = rc.pair_states_many(cat, txn, {r: INSTS for r in RUNS})
            assert len(seqs) == len(RUNS) * len(INSTS)
            for (run, inst), seq in seqs.items():
                snap = snaps.get((run, inst))
                assert seq == (7 if (run, inst) in listed else None)
                want = _latest(model, run, inst, None)
                assert (snap is None) == (want is None), (run, inst)
                if snap is not None:
                    assert snap[0] == want and np.array_equal(snap[1], _value(run, inst, want))

    check()
    # delete from a day on, for some pairs; then some single days
    victims = sorted(model)[::2]
    probe_day = probe if probe is not None else DAYS[0]

    def delete(txn):
        for run, inst in victims:
            n = rc.delete_snapshots_from(cat, txn, run, inst, cut)
            gone = {d for d in model[(run, inst)] if d >= cut}
            assert n == len(gone)
            model[(run, inst)] -= gone
        for run, inst in sorted(model)[1::2]:
            days = sorted(model[(run, inst)])[:2]
            rc.delete_snapshots(cat, txn, run, inst, days)
            model[(run, inst)] -= set(days)
        # several runs of one instrument at once (what a commit does for a task)
        inst = INSTS[cut % len(INSTS)]
        some = RUNS[: 1 + cut % len(RUNS)]
        gone = {r: {d for d in model.get((r, inst), ()) if d >= probe_day} for r in some}
        was, rc.SEEKS_OVER_STEPS = rc.SEEKS_OVER_STEPS, seeks
        try:
            n = rc.delete_snapshots_from_many(cat, txn, some, inst, probe_day)
        finally:
            rc.SEEKS_OVER_STEPS = was
        assert n == sum(len(g) for g in gone.values())
        for r, g in gone.items():
            if (r, inst) in model:
                model[(r, inst)] -= g

    cat.env.write(delete)
    check()
