"""Runs, snapshots, result segments and metrics in the catalog.

==========  ==============================================  ===========================
db          key                                             value
==========  ==============================================  ===========================
runs        run id (8 bytes)                                run record JSON
snaps       instrument | 0 | day (u32) | run id         float64 state vector: the
                                                            engine state, then metric
                                                            accumulators (see results)
segments    run id | instrument | 0 | batch (u64)           first day, last day, rows,
                                                            data seq (every change up to
                                                            this event was taken into
                                                            account when it was computed)
batches     batch (u64)                                     JSON: seq, daily/fills paths,
                                                            level, group (compaction)
metrics     run id | instrument (portfolio: empty name)     float64 metrics vector
pairs       run id | instrument                             u64: the event seq whose
                                                            commit last computed it
dirty       run id                                          i32 day: a partial commit
                                                            changed rows from that day;
                                                            the portfolio refolds from it
==========  ==============================================  ===========================

Snapshots are keyed by instrument and day before the run (catalog format 3;
format 2 kept them by run first, in ``snapshots``, and :func:`migrate_snapshots`
moves them). A daily update adds one snapshot per (run, instrument): in this order
an instrument's new ones are side by side at the end of its keys, a few pages,
where by run they fell one on each of tens of thousands of pages (measured at 500
instruments x 100 runs: ~0.4 s of a 2.5 s update's commit). A pair's latest
snapshot before a day is found by stepping back over the instrument's snapshot
days (one seek each; the first is the one in all but unusual cases).

A *batch* is one ``daily`` and one ``fills`` file of results, made visible by a
commit (one commit may hold several: a Ray sweep's workers write one each). A
result row of batch ``b`` for (run, instrument) is valid while no later batch
of the same (run, instrument) starts on or before its day: a recomputation
from day D always runs to the end, so it supersedes every older row from D on.
"""

from __future__ import annotations

import itertools
import json
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lmdb
import numpy as np

from incbt.catalog import DAY_OFFSET, Catalog
from incbt.errors import NotFoundError, UsageError

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_SEG = struct.Struct(">iiQQ")  # first day, last day, rows, data seq (days as plain int32)


def run_key(run_id: str) -> bytes:
    return bytes.fromhex(run_id)


def ri_key(run_id: str, instrument: str) -> bytes:
    return run_key(run_id) + instrument.encode() + b"\0"


def split_ri_key(key: bytes) -> tuple[str, str]:
    """(run id, instrument) of an :func:`ri_key`."""
    return key[:8].hex(), key[8:-1].decode()


def snap_key(run_id: str, instrument: str, day: int) -> bytes:
    return _inst_prefix(instrument) + _U32.pack(day + DAY_OFFSET) + run_key(run_id)


def _inst_prefix(instrument: str) -> bytes:
    return instrument.encode() + b"\0"


def _instrument_end(prefix: bytes) -> bytes:
    """A key above every key of the instrument ``prefix`` (its name, then a byte above
    the 0 that ends it) and below the next instrument's."""
    return prefix[:-1] + b"\1"


def _next_day(day: bytes) -> bytes:
    return _U32.pack(_U32.unpack(day)[0] + 1)


@dataclass
class RunRecord:
    """What identifies a run (its id is a hash of all of it but ``created_seq``)."""

    run_id: str
    strategy: str
    code_version: str
    params: dict[str, Any]
    exec_params: dict[str, float]
    start: str  # YYYY-MM-DD
    universe: list[str] | str  # instruments, or "all"
    created_seq: int = 0
    source: str = "builtin"  # or the path of the user's strategies file
    superseded_by: str | None = None  # the run that replaced it (its strategy's code changed)
    fork: dict[str, Any] | None = None  # {"base": run id, "effective": day} for a fork
    dropped_seq: int | None = None  # the event that dropped it (``incbt drop``), if it is
    # the run this one replaces after a code change, until the commit that completes it:
    # an update committed in pieces shows the old run whole, not both (see ``hidden``)
    replacing: str | None = None

    @property
    def gone(self) -> bool:
        """Replaced or dropped: not brought up to date, its rows and metrics not shown."""
        return self.superseded_by is not None or self.dropped_seq is not None


def hidden(records: Iterable[RunRecord]) -> set[str]:
    """The runs SQL and ``store.runs()`` do not show: replaced or dropped ones, and a
    replacement not yet complete while the run it replaces stands (an update killed
    between its commits showed the old run and part of the new one side by side, found
    2026-12-06: a sum over a strategy's runs counted the first instruments twice)."""
    recs = list(records)
    standing = {r.run_id for r in recs if not r.gone}
    return {r.run_id for r in recs if r.gone or (r.replacing or "") in standing}


# A record that is neither dropped, replaced nor replacing another, as put_run writes it
# (sort_keys JSON: these keys appear once, at the top level; no parameter is null and a
# quote inside a name is escaped, so no value holds these bytes)
_PLAIN = (b'"dropped_seq": null', b'"superseded_by": null')


def gone_ids(cat: Catalog, txn: lmdb.Transaction) -> set[str]:
    """The runs replaced or dropped (``RunRecord.gone``), decoding only the records that
    are not plainly standing."""
    out: set[str] = set()
    with txn.cursor(_db(cat, "runs")) as cur:
        for _, v in cur:
            if not all(m in v for m in _PLAIN):
                r = _record(v)
                if r.gone:
                    out.add(r.run_id)
    return out


def hidden_ids(cat: Catalog, txn: lmdb.Transaction) -> set[str]:
    """:func:`hidden` of every run of the catalog, decoding only the records that are
    not plainly standing (every SQL session asks it: 16,000 JSON decodes took 0.25 s)."""
    standing: set[str] = set()
    odd: list[RunRecord] = []
    with txn.cursor(_db(cat, "runs")) as cur:
        for k, v in cur:
            if all(m in v for m in _PLAIN) and b'"replacing"' not in v:
                standing.add(bytes(k).hex())
            else:
                odd.append(_record(v))
    standing |= {r.run_id for r in odd if not r.gone}
    return {r.run_id for r in odd if r.gone or (r.replacing or "") in standing}


@dataclass(frozen=True)
class Segment:
    run_id: str
    instrument: str
    batch: int
    first_day: int
    last_day: int
    rows: int
    seq: int  # the event whose commit computed it: later changes may invalidate it


def standing_count(cat: Catalog, txn: lmdb.Transaction) -> int:
    """How many runs ``store.runs()`` lists: those not :func:`hidden_ids`."""
    return int(txn.stat(_db(cat, "runs"))["entries"]) - len(hidden_ids(cat, txn))


def _db(cat: Catalog, name: str) -> Any:
    return cat.env.db(name.encode())


def get_run(cat: Catalog, txn: lmdb.Transaction, run_id: str) -> RunRecord | None:
    v = txn.get(run_key(run_id), db=_db(cat, "runs"))
    return None if v is None else _record(v)


# Run records decoded, by their bytes: a command over a sweep of 10,000 runs read each
# record ~10 times (its registration, its standing, its plan...), ~100,000 JSON decodes
# (a no-op `sweep --resume` 1.7 s, QA 2026-12-06). The bytes are the record: a cached one
# is the same record, handed out as a copy of its own (callers set fields of it, e.g.
# dropped_seq, before putting it back).
_DECODED: dict[bytes, RunRecord] = {}
_DECODED_MOST = 20_000  # ~1 KB each


def _record(v: bytes) -> RunRecord:
    key = bytes(v)
    rec = _DECODED.get(key)
    if rec is None:
        rec = RunRecord(**json.loads(key))
        if len(_DECODED) >= _DECODED_MOST:
            _DECODED.clear()
        _DECODED[key] = rec
    out = object.__new__(RunRecord)  # copy.copy's reduce protocol cost 6 us a record
    out.__dict__.update(rec.__dict__)
    return out


def dropped(rec: RunRecord) -> NotFoundError:
    """What reading a dropped run says (``Store.run``, a ``Run`` held since)."""
    return NotFoundError(
        f"run {rec.run_id} was dropped (event {rec.dropped_seq}); registering it again "
        "(the same backtest) computes it from scratch"
    )


def follow(cat: Catalog, txn: lmdb.Transaction, run_id: str) -> RunRecord | None:
    """The run that stands for ``run_id`` now: itself, or the run that replaced it (its
    strategy's code changed), and that one's, to the last; None if it is not registered."""
    seen = set()
    run = get_run(cat, txn, run_id)
    while run is not None and run.superseded_by and run.run_id not in seen:
        seen.add(run.run_id)
        run = get_run(cat, txn, run.superseded_by)
    return run


def standing(cat: Catalog, txn: lmdb.Transaction, run_ids: Iterable[str]) -> list[tuple[int, str]]:
    """What a list of run ids (a sweep's record) stands for now, as (position, run id):
    each followed to the run that replaced it (:func:`follow`), a dropped one left out,
    one named twice by then (a code change reverted) kept at its first position, one
    not registered (a sweep interrupted before its first commit) as given."""
    out: dict[str, int] = {}
    db = _db(cat, "runs")
    for i, rid in enumerate(run_ids):
        v = txn.get(run_key(rid), db=db)
        if v is not None and all(m in v for m in _PLAIN):  # neither replaced nor dropped
            out.setdefault(rid, i)  # (a sweep's every run, each time it is read)
            continue
        run = follow(cat, txn, rid)
        if run is not None and run.dropped_seq is not None:
            continue
        out.setdefault(rid if run is None else run.run_id, i)
    return [(i, rid) for rid, i in out.items()]


def by_prefix(records: Iterable[RunRecord], prefix: str) -> RunRecord:
    """The one run whose id starts with ``prefix`` (NotFoundError if none, UsageError
    naming the candidates if several; of several, the one neither dropped nor replaced
    after a code change, if it is one)."""
    if not prefix.strip():
        raise UsageError("give a run id (or a unique prefix of it), not an empty one")
    given = prefix.strip()  # said as given (QA 2026-12-07: it was said lower-cased)
    prefix = given.lower()  # ids are lower-case hex: 5F2C9E0A is 5f2c9e0a (QA)
    # pasted from `--output csv` (which quotes text) or JSON: the id inside (QA 2026-12-06)
    if len(prefix) > 2 and prefix[0] == prefix[-1] and prefix[0] in "\"'":
        prefix = prefix[1:-1].strip()
    hit = [r for r in records if r.run_id.startswith(prefix)]
    if not hit:
        raise NotFoundError(
            f'no run {given!r} (`incbt query "SELECT run_id, strategy, params FROM runs"` '
            "lists them; store.runs() in Python)"
        )
    if len(hit) > 1:
        live = [r for r in hit if not r.gone]
        if len(live) == 1:  # the dropped and replaced ones are not what a prefix means
            return live[0]
        shown = ", ".join(
            f"{r.run_id} ({r.strategy} "
            + " ".join(f"{k}={v}" for k, v in r.params.items())
            + (", dropped" if r.dropped_seq is not None else "")
            + (", replaced" if r.superseded_by and r.dropped_seq is None else "")
            + ")"
            for r in sorted(live or hit, key=lambda r: r.run_id)[:5]
        )
        more = f" and {len(live or hit) - 5} more" if len(live or hit) > 5 else ""
        raise UsageError(
            f"run id prefix {prefix!r} is ambiguous, it starts {len(live or hit)} runs: "
            f"{shown}{more}; give more of it"
        )
    return hit[0]


def registered(cat: Catalog, txn: lmdb.Transaction, run_id: str) -> bool:
    """The run is in the catalog, neither dropped nor replaced (registering such a one
    again revives it: a replaced one, when its strategy's code is reverted)."""
    rec = get_run(cat, txn, run_id)
    return rec is not None and not rec.gone


def put_run(cat: Catalog, txn: lmdb.Transaction, rec: RunRecord) -> None:
    value = dict(vars(rec))  # the same JSON as asdict's, without its deep copy
    if value["replacing"] is None:  # as before 2026-12-06: a store any version reads
        del value["replacing"]
    txn.put(run_key(rec.run_id), json.dumps(value, sort_keys=True).encode(), db=_db(cat, "runs"))


def runs(cat: Catalog, txn: lmdb.Transaction) -> Iterator[RunRecord]:
    with txn.cursor(_db(cat, "runs")) as cur:
        for _, v in cur:
            yield _record(v)


def latest_snapshot(
    cat: Catalog, txn: lmdb.Transaction, run_id: str, instrument: str, before: int | None = None
) -> tuple[int, np.ndarray] | None:
    """The latest snapshot of (run, instrument) on a day < ``before`` (any day if None)."""
    with txn.cursor(_db(cat, "snaps")) as cur:
        return _latest(cur, _inst_prefix(instrument), run_key(run_id), before)


def _latest(
    cur: Any, prefix: bytes, run: bytes, before: int | None
) -> tuple[int, np.ndarray] | None:
    """The snapshot of run ``run`` on the instrument ``prefix`` with the latest day before
    ``before``: the instrument's snapshot days, latest first, each tried with one seek."""
    p = len(prefix)
    bound = _instrument_end(prefix) if before is None else prefix + _U32.pack(before + DAY_OFFSET)
    ok = cur.prev() if cur.set_range(bound) else cur.last()
    while ok:
        k = cur.key()
        if not k.startswith(prefix) or len(k) != p + 4 + len(run):
            return None
        day = k[p : p + 4]
        if cur.set_key(prefix + day + run):
            return _U32.unpack(day)[0] - DAY_OFFSET, np.frombuffer(cur.value(), np.float64).copy()
        # none of this run that day: the last key of the day before
        ok = cur.prev() if cur.set_range(prefix + day) else cur.last()
    return None


def pair_states(
    cat: Catalog, txn: lmdb.Transaction, run_id: str, instruments: Sequence[str]
) -> list[tuple[int | None, tuple[int, np.ndarray] | None]]:
    """Per instrument of a run: its ``pairs`` seq and latest snapshot (as
    :func:`pair_seq` and :func:`latest_snapshot`)."""
    seqs, snaps = pair_states_many(cat, txn, {run_id: instruments})
    return [(seqs[(run_id, inst)], snaps.get((run_id, inst))) for inst in instruments]


def pair_states_many(
    cat: Catalog, txn: lmdb.Transaction, wanted: Mapping[str, Sequence[str]]
) -> tuple[dict[tuple[str, str], int | None], dict[tuple[str, str], tuple[int, np.ndarray]]]:
    """:func:`pair_states` of many runs (run id -> instruments) at once, keyed by (run
    id, instrument): what the planner reads for every pair of every run. Returns the
    ``pairs`` seq of every pair, and the latest snapshot of those that have one.

    Snapshots are read instrument by instrument, each run first at the instrument's
    latest snapshot day (one seek each, on the same few pages: nearly always the
    one), then, if it has none that day, as :func:`latest_snapshot`.
    """
    seqs: dict[tuple[str, str], int | None] = {}
    snaps: dict[tuple[str, str], tuple[int, np.ndarray]] = {}
    by_inst: dict[str, list[str]] = {}
    rks = {run_id: run_key(run_id) for run_id in wanted}  # keys made once, not once a pair
    prefixes: dict[str, bytes] = {}
    unpack = _U64.unpack
    with txn.cursor(_db(cat, "pairs")) as pc:
        get = pc.get
        for run_id, insts in wanted.items():
            rk = rks[run_id]
            for inst in insts:
                prefix = prefixes.get(inst)
                if prefix is None:
                    prefix = prefixes[inst] = _inst_prefix(inst)
                v = get(rk + prefix)
                seqs[(run_id, inst)] = None if v is None else unpack(v)[0]
                # an instrument's snapshots come with its pairs entry (put_task): without
                # one there are none, and a search would step through every snapshot day
                # of the instrument to say so; a portfolio ("") has no pairs entry
                if v is not None or not inst:
                    by_inst.setdefault(inst, []).append(run_id)
    with txn.cursor(_db(cat, "snaps")) as sc:
        for inst, run_ids in by_inst.items():
            prefix = _inst_prefix(inst)
            p = len(prefix)
            ok = sc.prev() if sc.set_range(_instrument_end(prefix)) else sc.last()
            k = sc.key() if ok else b""
            if not k.startswith(prefix):
                continue  # no snapshot of the instrument at all
            day = k[p : p + 4]
            d = _U32.unpack(day)[0] - DAY_OFFSET
            at_day = prefix + day
            for run_id in run_ids:
                rk = rks[run_id]
                if sc.set_key(at_day + rk):
                    snaps[(run_id, inst)] = (d, np.frombuffer(sc.value(), np.float64).copy())
                elif (older := _latest(sc, prefix, rk, None)) is not None:
                    snaps[(run_id, inst)] = older
    return seqs, snaps


def put_snapshots(
    cat: Catalog,
    txn: lmdb.Transaction,
    run_id: str,
    instrument: str,
    days: np.ndarray,
    states: np.ndarray,
) -> None:
    """Put one state row per day (days ascending)."""
    prefix, run = _inst_prefix(instrument), run_key(run_id)
    rows = np.ascontiguousarray(states, dtype=np.float64)
    if len(rows) != len(days):
        raise ValueError(f"{len(days)} days and {len(rows)} states")
    size = rows.shape[1] * 8 if rows.ndim == 2 else 0
    flat = rows.tobytes()
    items = [
        (prefix + _U32.pack(d + DAY_OFFSET) + run, flat[j * size : (j + 1) * size])
        for j, d in enumerate(days.tolist())
    ]
    with txn.cursor(_db(cat, "snaps")) as cur:
        cur.putmulti(items)


def put_task(
    cat: Catalog,
    txn: lmdb.Transaction,
    instrument: str,
    run_ids: Sequence[str],
    snap_days: np.ndarray,
    states: np.ndarray,
    drop: Sequence[int],
    segment: tuple[int, int, int, int, int],
    metrics: np.ndarray,
) -> None:
    """What a task computed for its runs on one instrument, with a few C-level calls.

    ``states``: (runs, len(snap_days), width) snapshots; ``drop``: snapshot days
    each pair no longer keeps; ``segment``: (batch, first day, last day, rows, seq);
    ``metrics``: (runs, metrics width). Equivalent to :func:`put_snapshots`,
    :func:`delete_snapshots`, :func:`put_segment`, the ``pairs`` seq and
    :func:`put_metrics` per run.
    """
    inst = _inst_prefix(instrument)
    runs = [run_key(r) for r in run_ids]
    bases = [r + inst for r in runs]
    st = np.ascontiguousarray(states, dtype=np.float64)
    n = len(snap_days)
    if n and st.ndim == 3 and st.shape[2]:
        # keys and values built by NumPy, as bytes objects in C loops (not per item in
        # Python): every key of the task is instrument | day | run, all of one length,
        # put in key order (days ascending, then runs in key order)
        order = sorted(range(len(runs)), key=runs.__getitem__)
        rb = np.frombuffer(b"".join(runs[k] for k in order), np.uint8).reshape(len(runs), -1)
        p, w = len(inst), rb.shape[1]
        keys = np.empty((n, len(runs), p + 4 + w), dtype=np.uint8)
        keys[:, :, :p] = np.frombuffer(inst, np.uint8)
        big = (snap_days.astype(np.int64) + DAY_OFFSET).astype(">u4")
        keys[:, :, p : p + 4] = big.view(np.uint8).reshape(n, 1, 4)
        keys[:, :, p + 4 :] = rb[None]
        keys_b = keys.reshape(n * len(runs), -1).view(f"V{p + 4 + w}").reshape(-1).tolist()
        vals = np.ascontiguousarray(st[order].transpose(1, 0, 2))
        vals_b = vals.view(f"V{st.shape[2] * 8}").reshape(-1).tolist()
        with txn.cursor(_db(cat, "snaps")) as cur:
            cur.putmulti(zip(keys_b, vals_b, strict=True))
    if drop:
        db = _db(cat, "snaps")
        for d in drop:
            day = inst + _U32.pack(d + DAY_OFFSET)
            for r in runs:
                txn.delete(day + r, db=db)
    batch, first, last, rows, seq = segment
    seg_sfx = struct.pack(">Q", batch)
    seg_val = _SEG.pack(first, last, rows, seq)
    with txn.cursor(_db(cat, "segments")) as cur:
        cur.putmulti([(b + seg_sfx, seg_val) for b in bases])
    seq_val = struct.pack(">Q", seq)
    with txn.cursor(_db(cat, "pairs")) as cur:
        cur.putmulti([(b, seq_val) for b in bases])
    m = np.ascontiguousarray(metrics, dtype=np.float64)
    with txn.cursor(_db(cat, "metrics")) as cur:
        cur.putmulti([(b[:-1], m[k].tobytes()) for k, b in enumerate(bases)])


def delete_snapshots(
    cat: Catalog, txn: lmdb.Transaction, run_id: str, instrument: str, days: list[int]
) -> None:
    db = _db(cat, "snaps")
    for d in days:
        txn.delete(snap_key(run_id, instrument, d), db=db)


def _days_of(cur: Any, prefix: bytes, run: bytes, first: bytes) -> Iterator[bytes]:
    """The snapshot days (as keyed) of run ``run`` on the instrument ``prefix``, from
    ``first`` on, ascending; the cursor is on the day's key when one is yielded."""
    ok = cur.set_range(prefix + first)
    while ok:
        k = cur.key()
        if not k.startswith(prefix):
            return
        day = k[len(prefix) : len(prefix) + 4]
        if cur.set_key(prefix + day + run):
            yield day
        ok = cur.set_range(prefix + _next_day(day))


def delete_snapshots_from(
    cat: Catalog, txn: lmdb.Transaction, run_id: str, instrument: str, first_day: int
) -> int:
    """Delete the snapshots of (run, instrument) on or after ``first_day``."""
    n = 0
    with txn.cursor(_db(cat, "snaps")) as cur:
        first = _U32.pack(first_day + DAY_OFFSET)
        for _ in _days_of(cur, _inst_prefix(instrument), run_key(run_id), first):
            cur.delete()
            n += 1
    return n


# a seek costs about as much as this many steps of a cursor's sweep (py-lmdb, 2026-12-07:
# 0.3 against 0.08 us, before the Python around each)
SEEKS_OVER_STEPS = 4


ALL_SNAP_DAYS = -DAY_OFFSET  # the first day a snapshot key can hold


def delete_snapshots_from_many(
    cat: Catalog, txn: lmdb.Transaction, run_ids: Iterable[str], instrument: str, first_day: int
) -> int:
    """:func:`delete_snapshots_from` for several runs of one instrument (see
    :func:`_walk_runs` for how their keys are found)."""
    with txn.cursor(_db(cat, "snaps")) as cur:
        return sum(1 for _ in _walk_runs(cur, run_ids, instrument, first_day, delete=True))


def snapshot_days_many(
    cat: Catalog, txn: lmdb.Transaction, run_ids: Iterable[str], instrument: str
) -> dict[str, list[int]]:
    """:func:`snapshot_days` of several runs of one instrument, by run id (every run
    given, ``[]`` for one without a snapshot), in one walk (see :func:`_walk_runs`):
    a commit of a wide sweep listed each run's portfolio days with a seek a day (QA
    2026-12-07: 2.1 s of a 16,000-point sweep's commit)."""
    ids = list(run_ids)
    out: dict[bytes, list[int]] = {run_key(r): [] for r in ids}
    with txn.cursor(_db(cat, "snaps")) as cur:
        for day, run in _walk_runs(cur, ids, instrument, ALL_SNAP_DAYS, delete=False):
            out[run].append(_U32.unpack(day)[0] - DAY_OFFSET)
    return {r: out[run_key(r)] for r in ids}


def _walk_runs(
    cur: Any, run_ids: Iterable[str], instrument: str, first_day: int, *, delete: bool
) -> Iterator[tuple[bytes, bytes]]:
    """The snapshot keys of these runs on one instrument from ``first_day`` on, as
    (day, run) as keyed, day by day (runs in key order within a day); each deleted
    first if ``delete``. A day's keys (side by side, whatever the run) are stepped over
    until the steps cost more than a seek per run would; the rest of that day is then
    done by a seek per run. Stepping alone visited every run's keys (QA 2026-12-07: a
    fork's commit in a store of 800 runs walked 4.35 M keys, 60% of its time, more with
    every run the store held); seeking alone costs a seek per run and day where these
    runs are most of a day's keys (a drop of a sweep, a commit of one)."""
    runs = {run_key(r) for r in run_ids}
    if not runs:
        return
    prefix = _inst_prefix(instrument)
    p = len(prefix)
    rlen = len(next(iter(runs)))  # run ids are all of one length
    width = p + 4 + rlen
    mine = sorted(runs)
    budget = SEEKS_OVER_STEPS * len(runs)
    ok = cur.set_range(prefix + _U32.pack(first_day + DAY_OFFSET))
    while ok:
        k = cur.key()
        if not k.startswith(prefix):
            return
        at = k[: p + 4]  # this day's keys
        steps = 0
        while ok and k.startswith(at) and steps <= budget:
            if len(k) == width and (r := k[-rlen:]) in runs:
                if delete:
                    ok = cur.delete()  # the cursor moves to the next key
                    yield at[p:], r
                else:
                    yield at[p:], r
                    ok = cur.next()
            else:
                ok = cur.next()
            steps += 1
            k = cur.key() if ok else b""
        if ok and k.startswith(at):  # a day of many keys: its rest by seeks
            for r in mine:
                if at + r >= k and cur.set_key(at + r):
                    if delete:
                        cur.delete()
                    yield at[p:], r
            ok = cur.set_range(prefix + _next_day(at[p:]))


def snapshot_days(cat: Catalog, txn: lmdb.Transaction, run_id: str, instrument: str) -> list[int]:
    with txn.cursor(_db(cat, "snaps")) as cur:
        first = _U32.pack(ALL_SNAP_DAYS + DAY_OFFSET)
        days = _days_of(cur, _inst_prefix(instrument), run_key(run_id), first)
        return [_U32.unpack(d)[0] - DAY_OFFSET for d in days]


def count_snapshots(cat: Catalog, txn: lmdb.Transaction) -> int:
    return txn.stat(_db(cat, "snaps"))["entries"]


def migrate_snapshots(
    cat: Catalog,
    txn: lmdb.Transaction,
    old: Any,
    chunk: int = 1 << 17,
    advance: Callable[[int], None] | None = None,
) -> int:
    """Move format 2's snapshots (``old``: run id | instrument | 0 | day) to ``snaps``
    (instrument | 0 | day | run id) and drop ``old``; in the caller's transaction.
    ``advance``: called with the count of each chunk moved."""
    n = 0
    snaps = _db(cat, "snaps")
    with txn.cursor(old) as cur:
        it = cur.iternext()
        while True:
            part = [(k[8:-4] + k[-4:] + k[:8], v) for k, v in itertools.islice(it, chunk)]
            if not part:
                break
            part.sort()
            with txn.cursor(snaps) as out:
                out.putmulti(part)
            n += len(part)
            if advance is not None:
                advance(len(part))
    txn.drop(old, delete=True)
    return n


def put_segment(cat: Catalog, txn: lmdb.Transaction, seg: Segment) -> None:
    txn.put(
        ri_key(seg.run_id, seg.instrument) + struct.pack(">Q", seg.batch),
        _SEG.pack(seg.first_day, seg.last_day, seg.rows, seg.seq),
        db=_db(cat, "segments"),
    )


def segments(
    cat: Catalog, txn: lmdb.Transaction, run_id: str | None = None, instrument: str | None = None
) -> Iterator[Segment]:
    """Every result segment (of one run, or of one run on one instrument), by run,
    instrument, batch."""
    if run_id is None:
        prefix = b""
    elif instrument is None:
        prefix = run_key(run_id)
    else:
        prefix = ri_key(run_id, instrument)
    with txn.cursor(_db(cat, "segments")) as cur:
        if not cur.set_range(prefix):
            return
        for k, v in cur:
            if not k.startswith(prefix):
                return
            rid = k[:8].hex()
            inst = k[8:-9].decode()
            batch = struct.unpack(">Q", k[-8:])[0]
            f, last, rows, seq = _SEG.unpack(v)
            yield Segment(rid, inst, batch, f, last, rows, seq)


CUTS_INDEXED = "cuts_indexed"  # meta: the cuts table lists every pair that may be cut


def cuts_of(segs: Sequence[Segment]) -> list[tuple[Segment, int]]:
    """The segments of one pair that lose rows, each with the first day it no longer
    holds: a later segment (by batch) starts on or before its last day."""
    out = []
    first_later = 2**31
    for s in sorted(segs, key=lambda s: s.batch, reverse=True):
        if first_later <= s.last_day:
            out.append((s, first_later))
        first_later = min(first_later, s.first_day)
    return out[::-1]


def mark_cuts(cat: Catalog, txn: lmdb.Transaction, keys: Iterable[bytes]) -> None:
    """Record pairs (``ri_key``) whose new segment may supersede rows of older ones."""
    with txn.cursor(_db(cat, "cuts")) as cur:
        cur.putmulti([(k, b"") for k in keys])


def cut_pairs(cat: Catalog, txn: lmdb.Transaction) -> Iterator[tuple[str, str]]:
    with txn.cursor(_db(cat, "cuts")) as cur:
        for k in cur.iternext(keys=True, values=False):
            yield split_ri_key(k)


def index_cuts(cat: Catalog, txn: lmdb.Transaction) -> None:
    """Build the cuts table from every segment, once (stores made before it existed)."""
    if cat.meta(txn).get(CUTS_INDEXED):
        return
    by_pair = itertools.groupby(segments(cat, txn), key=lambda s: (s.run_id, s.instrument))
    keys = [ri_key(*pair) for pair, segs in by_pair if cuts_of(list(segs))]
    mark_cuts(cat, txn, keys)
    cat.put_meta(txn, CUTS_INDEXED, True)


def next_batch(cat: Catalog, txn: lmdb.Transaction) -> int:
    with txn.cursor(_db(cat, "batches")) as cur:
        if cur.last():
            return struct.unpack(">Q", cur.key())[0] + 1
    return 1


def put_batch(cat: Catalog, txn: lmdb.Transaction, batch: int, rec: dict[str, Any]) -> None:
    txn.put(
        struct.pack(">Q", batch), json.dumps(rec, sort_keys=True).encode(), db=_db(cat, "batches")
    )


def batches(cat: Catalog, txn: lmdb.Transaction) -> Iterator[tuple[int, dict[str, Any]]]:
    with txn.cursor(_db(cat, "batches")) as cur:
        for k, v in cur:
            yield struct.unpack(">Q", k)[0], json.loads(v)


def put_metrics(
    cat: Catalog, txn: lmdb.Transaction, run_id: str, instrument: str, values: np.ndarray
) -> None:
    txn.put(
        run_key(run_id) + instrument.encode(),
        values.astype(np.float64).tobytes(),
        db=_db(cat, "metrics"),
    )


MetricColumns = tuple[list[str], list[str], np.ndarray]


def _metric_columns(keys: list[bytes], values: list[bytes]) -> MetricColumns:
    """Metrics entries as columns: run ids, instruments ("" for a portfolio), one row of
    METRICS each (the values joined and viewed as floats, not decoded one by one)."""
    vals = np.frombuffer(b"".join(values), dtype=np.float64)
    vals = vals.reshape(len(keys), -1) if keys else vals.reshape(0, 0)
    return [k[:8].hex() for k in keys], [k[8:].decode() for k in keys], vals


def all_metrics(cat: Catalog, txn: lmdb.Transaction) -> MetricColumns:
    """Every stored metrics vector, in key order (by run, its portfolio first, then its
    instruments), as :func:`_metric_columns`."""
    keys: list[bytes] = []
    values: list[bytes] = []
    with txn.cursor(_db(cat, "metrics")) as cur:
        for k, v in cur.iternext():
            keys.append(k)
            values.append(v)
    return _metric_columns(keys, values)


def run_metrics(
    cat: Catalog, txn: lmdb.Transaction, run_id: str, most: int | None = None
) -> MetricColumns:
    """A run's metrics as :func:`all_metrics` gives them: its portfolio first (its key
    is the run's prefix alone), then its instruments in name order; ``most``: at most
    that many."""
    prefix = run_key(run_id)
    keys: list[bytes] = []
    values: list[bytes] = []
    with txn.cursor(_db(cat, "metrics")) as cur:
        if cur.set_range(prefix):
            for k, v in cur.iternext():
                if not k.startswith(prefix) or len(keys) == most:
                    break
                keys.append(k)
                values.append(v)
    return _metric_columns(keys, values)


def instrument_metrics(cat: Catalog, txn: lmdb.Transaction, run_id: str) -> np.ndarray:
    """The metrics vectors of a run's instruments (not its portfolio), one row each, in
    instrument name order (the keys' order: UTF-8 sorts as the names do)."""
    prefix = run_key(run_id)
    vals = []
    with txn.cursor(_db(cat, "metrics")) as cur:
        if cur.set_range(prefix + b"\0"):  # the portfolio's key is the prefix alone
            for k, v in cur:
                if not k.startswith(prefix):
                    break
                vals.append(v)
    if not vals:
        return np.zeros((0, 0))
    return np.frombuffer(b"".join(vals), dtype=np.float64).reshape(len(vals), -1)


def put_failures(
    cat: Catalog,
    txn: lmdb.Transaction,
    instrument: str,
    run_ids: Sequence[str],
    seq: int,
    through: Sequence[int],
    errors: Sequence[str],
) -> None:
    """Pairs whose computation failed at event ``seq`` over days up to ``through`` (each
    pair's: the day its step failed on).

    A strategy is deterministic (no clock, no unseeded randomness): the pair fails the
    same way until a day on or before ``through`` changes, so the planner skips it
    until then (:func:`incbt.runs.plan_runs`)."""
    db = _db(cat, "failed")
    for rid, err, day in zip(run_ids, errors, through, strict=True):
        rec = {"seq": seq, "through": day, "error": err[:2000]}
        txn.put(ri_key(rid, instrument), json.dumps(rec).encode(), db=db)


def clear_failures(
    cat: Catalog, txn: lmdb.Transaction, instrument: str, run_ids: Sequence[str]
) -> None:
    """Forget the failures of pairs that have just been computed."""
    db = _db(cat, "failed")
    if not txn.stat(db)["entries"]:  # the usual case: no failure anywhere
        return
    for rid in run_ids:
        txn.delete(ri_key(rid, instrument), db=db)


def clear_run_failures(cat: Catalog, txn: lmdb.Transaction, run_id: str) -> None:
    """Forget every failure of a run (it was superseded: the planner never reads it again)."""
    prefix = run_key(run_id)
    with txn.cursor(_db(cat, "failed")) as cur:
        ok = cur.set_range(prefix)
        while ok and cur.key().startswith(prefix):
            ok = cur.delete()


def failures(cat: Catalog, txn: lmdb.Transaction) -> dict[tuple[str, str], dict[str, Any]]:
    """Every recorded failure: (run id, instrument) -> {seq, through, error}."""
    with txn.cursor(_db(cat, "failed")) as cur:
        return {split_ri_key(k): json.loads(v) for k, v in cur}


def run_failures(cat: Catalog, txn: lmdb.Transaction, run_id: str) -> dict[str, dict[str, Any]]:
    """A run's recorded failures: instrument -> {seq, through, error} (a range read)."""
    prefix = run_key(run_id)
    out = {}
    with txn.cursor(_db(cat, "failed")) as cur:
        if cur.set_range(prefix):
            for k, v in cur:
                if not k.startswith(prefix):
                    break
                out[split_ri_key(k)[1]] = json.loads(v)
    return out


def delete_metrics(cat: Catalog, txn: lmdb.Transaction, run_id: str, instrument: str) -> None:
    txn.delete(run_key(run_id) + instrument.encode(), db=_db(cat, "metrics"))


def has_pairs(cat: Catalog, txn: lmdb.Transaction, run_id: str) -> bool:
    """The run holds a computed pair (a ``pairs`` entry): one seek."""
    with txn.cursor(_db(cat, "pairs")) as cur:
        return bool(cur.set_range(run_key(run_id))) and cur.key().startswith(run_key(run_id))


def pair_seq(cat: Catalog, txn: lmdb.Transaction, run_id: str, instrument: str) -> int | None:
    v = txn.get(ri_key(run_id, instrument), db=_db(cat, "pairs"))
    return None if v is None else struct.unpack(">Q", v)[0]


def portfolio_dirty(cat: Catalog, txn: lmdb.Transaction, run_id: str) -> int | None:
    """The first day a run's portfolio must be refolded from, after a partial commit."""
    v = txn.get(run_key(run_id), db=_db(cat, "dirty"))
    return None if v is None else struct.unpack(">i", v)[0]


def dirty_runs(cat: Catalog, txn: lmdb.Transaction) -> set[str]:
    """The runs whose portfolio a later commit must refold (:func:`portfolio_dirty`)."""
    with txn.cursor(_db(cat, "dirty")) as cur:
        return {k.hex() for k in cur.iternext(keys=True, values=False)}


def set_portfolio_dirty(cat: Catalog, txn: lmdb.Transaction, run_id: str, day: int | None) -> None:
    if day is None:
        txn.delete(run_key(run_id), db=_db(cat, "dirty"))
    else:
        txn.put(run_key(run_id), struct.pack(">i", day), db=_db(cat, "dirty"))


def portfolio_dirty_from(cat: Catalog, txn: lmdb.Transaction, run_id: str, day: int) -> None:
    """A run's portfolio must be refolded from ``day`` (or the earlier day it had)."""
    old = portfolio_dirty(cat, txn, run_id)
    set_portfolio_dirty(cat, txn, run_id, day if old is None else min(old, day))
