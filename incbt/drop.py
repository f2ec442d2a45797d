"""Dropping runs (``incbt drop``): runs a researcher no longer wants maintained.

Every registered run is brought up to date by every ``incbt update``, so runs
of abandoned experiments cost time each day. A drop is one event and one
transaction: the runs stop being updated; their rows leave ``daily``, ``fills``
and ``metrics`` and the runs leave ``runs`` and ``sweeps`` (the rows stay in
the result files, hidden as a replaced run's are, until a compaction merges
those files); their snapshots, metrics
and failure records are deleted from the catalog. ``--sweep NAME`` drops every
run of a sweep and the sweep itself.

Registering a dropped run again (the same backtest, or ``sweep --resume`` of a
sweep whose point was dropped) computes it from scratch, as a new run: its
pairs are marked as cut when dropped, so the new rows supersede every old one
(``incbt.results.cutoffs``). A run that is the base of a fork cannot be dropped
alone: the fork re-reads its base's snapshot when a day before its effective
date changes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from incbt.catalog import runs as rc
from incbt.errors import UsageError, UserError
from incbt.runs import forget_results, results_held


@dataclass
class DropSummary:
    """What a drop removed (or would remove, for a dry run)."""

    runs: list[str] = field(default_factory=list)  # the runs dropped, by id
    # of those, the runs not shown (in SQL, ``store.runs()``): earlier code versions of a
    # run dropped, a replacement an update left incomplete; they go with the runs shown
    unseen: list[str] = field(default_factory=list)
    sweeps: list[str] = field(default_factory=list)  # the sweeps deleted
    pairs: int = 0  # (run, instrument) pairs whose rows and snapshots go
    snapshots: int = 0  # snapshots deleted (portfolio snapshots included)
    already: list[str] = field(default_factory=list)  # runs given that were dropped before
    # the sweep given, dropped before: (its name, the event that dropped it)
    sweep_before: tuple[str, int] | None = None
    # runs of the sweep dropped that other sweeps hold too: kept, with those sweeps
    shared: dict[str, list[str]] = field(default_factory=dict)
    seq: int | None = None  # the event recorded
    dry_run: bool = False

    def __repr__(self) -> str:  # a line, as the other results (the fields hold the ids)
        verb = "would drop" if self.dry_run else "dropped"
        shown = len(self.runs) - len(self.unseen)
        return (
            f"<DropSummary: {verb} {shown} run(s)"
            + (f" (and {len(self.unseen)} not shown: .unseen)" if self.unseen else "")
            + f", {self.pairs:,} pair(s), {self.snapshots:,} snapshot(s)"
            + (f", sweep(s) {', '.join(self.sweeps)}" if self.sweeps else "")
            + (f", {len(self.already)} dropped before" if self.already else "")
            + (f", sweep {self.sweep_before[0]} dropped before" if self.sweep_before else "")
            + (f", {len(self.shared)} kept (other sweeps hold them)" if self.shared else "")
            + ("" if self.dry_run else f"; event {self.seq}" if self.seq else "; no event")
            + ">"
        )


def _chosen(
    cat: Any, txn: Any, run_ids: list[str], sweep: str | None
) -> tuple[list[rc.RunRecord], list[str], dict[str, list[str]]]:
    """The runs named (id prefixes) and those of the sweep; the sweeps to delete; the
    sweep's runs other sweeps hold too (kept, unless named), with those sweeps."""
    import json

    every = {r.run_id: r for r in rc.runs(cat, txn)}
    chosen = {r.run_id: r for r in (rc.by_prefix(every.values(), q) for q in run_ids)}
    for r in chosen.values():
        if r.superseded_by and r.dropped_seq is None:  # found 2026-12-05: it went alone
            now = _chain(every, r.run_id)[-1].run_id
            # refused by the store's state, not the command's form: exit 1 (QA 2026-12-06)
            raise UserError(
                f"run {r.run_id} was replaced by run {now} when its strategy's code changed: "
                f"drop {now} (the runs it replaced go with it)"
            )
    named = set(chosen)
    sweeps = []
    shared: dict[str, list[str]] = {}
    if sweep is not None:
        v = txn.get(sweep.encode(), db=cat.env.db(b"sweeps")) if sweep.strip() else None
        if v is None:
            from incbt.sweep import no_such_sweep

            raise no_such_sweep(sweep, cat, txn)
        sweeps.append(sweep)
        held: dict[str, list[str]] = {}  # run -> the other sweeps that hold it
        with txn.cursor(cat.env.db(b"sweeps")) as cur:
            for k, w in cur:
                if k.decode() != sweep:
                    for rid in json.loads(w)["runs"]:
                        for run in _chain(every, rid):  # what it holds now, too
                            held.setdefault(run.run_id, []).append(k.decode())
        for rid in json.loads(v)["runs"]:
            for run in _chain(every, rid):  # and the runs replacing it
                if run.run_id in held and run.run_id not in named:
                    shared[run.run_id] = sorted(held[run.run_id])
                else:
                    chosen[run.run_id] = run
    # the runs each chosen one replaced (its strategy's code changed, maybe back and
    # forth): dropped with it, or a revert of the code would bring them back
    for r in every.values():
        if (
            r.superseded_by
            and r.dropped_seq is None
            and r.run_id not in chosen
            and _chain(every, r.run_id)[-1].run_id in chosen
        ):
            chosen[r.run_id] = r
    # a replacement an update left incomplete (hidden until complete): it goes with the
    # run it replaces (QA 2026-12-06: shown half computed once that run was dropped, and
    # the next update finished it, a dropped run back)
    for r in every.values():
        if r.replacing in chosen and not r.gone and r.run_id not in chosen:
            chosen[r.run_id] = r
    forks = sorted(
        r.run_id
        for r in every.values()
        if r.fork and r.fork["base"] in chosen and r.run_id not in chosen and not r.gone
    )
    if forks:  # the store's state refuses it, as above: exit 1
        raise UserError(
            f"run(s) {', '.join(sorted({every[f].fork['base'] for f in forks}))} are the base "  # type: ignore[index]
            f"of fork(s) {', '.join(forks)}, which re-read it when a day before their "
            "effective date changes. Fix: drop the forks too (give their ids as well)"
        )
    return sorted(chosen.values(), key=lambda r: r.run_id), sweeps, shared


def _chain(every: dict[str, rc.RunRecord], run_id: str) -> list[rc.RunRecord]:
    """A run and the runs that replaced it, one after another (code changes)."""
    out: dict[str, rc.RunRecord] = {}
    run = every.get(run_id)
    while run is not None and run.run_id not in out:
        out[run.run_id] = run
        run = every.get(run.superseded_by) if run.superseded_by else None
    return list(out.values())


def drop(
    store: Any,
    run_ids: list[str],
    sweep: str | None = None,
    *,
    dry_run: bool = False,
    command: str = "drop",
) -> DropSummary:
    """Drop runs (id prefixes) and, with ``sweep``, every run of that sweep and the sweep."""
    if not run_ids and sweep is None:
        raise UsageError("give the run ids to drop, or --sweep NAME")
    if sweep is not None and (not isinstance(sweep, str) or not sweep.strip()):
        raise UsageError(f"--sweep {sweep!r} names no sweep: give its name")  # QA 2026-12-06
    cat = store.catalog
    summary = DropSummary(dry_run=dry_run)
    with contextlib.nullcontext() if dry_run else store.lock():  # a dry run only reads
        with cat.env.read() as txn:
            if sweep is not None and txn.get(sweep.encode(), db=cat.env.db(b"sweeps")) is None:
                from incbt.sweep import dropped_at

                seq = dropped_at(cat, sweep, txn)
                if seq is not None:  # dropped before, as a run dropped before is said (QA
                    # 2026-12-07: the same command again once done exited 1, a run's 0)
                    summary.sweep_before, sweep = (sweep, seq), None
                    if not run_ids:
                        return summary
            records, sweeps, summary.shared = _chosen(cat, txn, list(run_ids), sweep)
            todo = [r for r in records if r.dropped_seq is None]
            summary.already = [r.run_id for r in records if r.dropped_seq is not None]
            summary.sweeps = sweeps
            summary.runs = [r.run_id for r in todo]
            summary.unseen = sorted(set(summary.runs) & rc.hidden_ids(cat, txn))
            for r in todo:
                insts, snaps = results_held(cat, txn, r.run_id)
                summary.pairs += len(insts)
                summary.snapshots += snaps
        if dry_run or not (todo or sweeps):
            return summary

        def txn_fn(txn: Any) -> int:
            seq_now = cat.last_seq(txn) + 1
            rc.index_cuts(cat, txn)  # once, in a store made before the cuts table
            forget_results(cat, txn, [rec.run_id for rec in todo])
            for rec in todo:
                rec.dropped_seq = seq_now
                rc.put_run(cat, txn, rec)
            for name in sweeps:
                txn.delete(name.encode(), db=cat.env.db(b"sweeps"))
            seq = cat.append_event(
                txn,
                "drop",
                command,
                {
                    "runs": summary.runs[:50],
                    "n_runs": len(summary.runs),
                    "sweeps": sweeps,
                    "pairs": summary.pairs,
                    "snapshots": summary.snapshots,
                },
            )
            assert seq == seq_now
            return seq

        summary.seq = cat.env.write(txn_fn)
    return summary
