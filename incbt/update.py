"""Keeping every run current: ``update``, ``status`` and ``verify``.

- :func:`update` ingests the given files (same rules and atomicity as
  ``ingest``), then brings every registered run up to date by computing
  exactly the invalid segments: new days, days after a correction or a late
  day (resuming from the last snapshot before it), and runs whose strategy's
  code changed (replaced by a run of the new code, computed from the start;
  the old results stay queryable until the new ones commit).
- :func:`status` says what is stale and why, and the work an update would do.
- :func:`verify` recomputes runs from scratch in memory and compares them with
  the store bit for bit: the user's proof that incremental results are right.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from incbt.bars.ingest import IngestSummary
from incbt.bars.schema import day_to_iso
from incbt.catalog import runs as rc
from incbt.errors import NotFoundError, StrategyError, UsageError, lost_file_fix
from incbt.execute import resolve_strategy
from incbt.progress import NULL, Reporter
from incbt.results import PORTFOLIO, build_tables, sort_order
from incbt.results.metrics import (
    finalize,
    fold_portfolio,
    metrics_table,
    portfolio_pnl,
)
from incbt.runs import (
    Staleness,
    UpdateReport,
    bring_up_to_date,
    execute,
    fork_depths,
    instruments_of,
    make_run_id,
    plan_runs,
    preload_kernels,
)


@dataclass
class StaleRow:
    """One (run, instrument) an update would compute, and why; or a run's portfolio
    (instrument ""), or a run it cannot recompute (instrument "", no first day)."""

    run_id: str
    strategy: str
    instrument: str
    reason: str
    from_day: str | None
    bars: int
    # the run that replaces ``run_id`` (its strategy's code changed), computed instead
    replaced_by: str | None = None


@dataclass
class UpdateResult:
    """What ``store.update`` did, or what ``store.status()`` / ``update(dry_run=True)``
    says it would do: ``ingest`` (the files' IngestSummary, or None), ``report`` (the
    work: segments, bar-steps, commits, the strategy's failures), ``replaced`` (runs
    whose strategy's code changed, with the runs that replace them), ``broken`` (runs
    that cannot be recomputed, and why) and ``stale`` (each (run, instrument) computed,
    or to compute, and why: ``incbt status``'s rows)."""

    ingest: IngestSummary | None
    report: UpdateReport
    replaced: list[tuple[str, str]] = field(default_factory=list)  # (old run, new run)
    broken: list[str] = field(default_factory=list)  # runs that cannot be recomputed, and why
    # makes the stale rows on first use: a row per (run, instrument) computed is 0.2 s
    # at 500 instruments x 100 runs, which `incbt update` never prints
    _stale_rows: Callable[[], list[StaleRow]] = field(default=list, repr=False)
    dry_run: bool = False  # status, update --dry-run: the work it would do
    # sweeps interrupted before some of their runs' first commit: name -> (runs not
    # computed yet, runs); no update computes those, ``store.sweep(..., resume=True)`` does
    unfinished_sweeps: dict[str, tuple[int, int]] = field(default_factory=dict)
    # ``Store.status()`` only (an update's are empty, unchecked: QA 2026-12-06): files the
    # catalog lists that are missing, or damaged (Store.damaged_files)
    missing_files: list[str] = field(default_factory=list)
    damaged_files: list[str] = field(default_factory=list)
    # ``Store.status()`` only: the catalog file's bytes not in use (pages drops freed,
    # which LMDB keeps) where they are most of it (a big drop), else 0
    catalog_unused_bytes: int = 0

    @property
    def results_lost(self) -> bool:
        """A results file missing or damaged (``status`` only): its runs are not "all up to
        date" (QA 2026-12-07: said above the line naming the lost file)."""
        return any(
            f.replace(os.sep, "/").startswith("results/")
            for f in (*self.missing_files, *self.damaged_files)
        )

    @property
    def up_to_date(self) -> bool:
        """Whether "all up to date" is what to say of the runs: nothing to compute, and
        none of what makes "nothing to compute" the words (QA): replacements to mark (a
        dry run's), runs that cannot be recomputed, results a remove cut, a results
        file lost. ``__repr__`` and the CLI's lines both say it so."""
        r = self.report
        odd = (self.dry_run and self.replaced) or self.broken or r.truncated
        return not (r.segments or odd or self.results_lost)

    @functools.cached_property
    def stale(self) -> list[StaleRow]:
        """Each (run, instrument) the update computed (or would compute), and why."""
        return self._stale_rows()

    def __repr__(self) -> str:
        r = self.report
        if self.dry_run:  # not "in 0.01 s, 0 commit(s)": nothing was done (QA, 2026-12-05)
            at_most = "at most " if r.depends_on_retry else ""  # (report.depends_on_retry)
            parts = [
                f"{r.runs} run(s): would compute {at_most}{r.segments:,} segment(s), "
                f"{r.bars_processed:,} bar-steps (.stale says why)"
                if r.segments
                else f"{r.runs} run(s): all up to date"
                if self.up_to_date
                else f"{r.runs} run(s): nothing to compute"
            ]
            if r.truncated:  # a remove took their last days (QA 2026-12-06: unsaid here)
                parts.append(
                    f"{r.truncated:,} (run, instrument) pair(s) would lose their results "
                    "after the last day of bars left (bars removed)"
                )
        else:
            parts = [repr(r)]
        if self.ingest is not None:
            parts.insert(0, repr(self.ingest))
        if self.replaced:
            verb = "would be replaced" if self.dry_run else "replaced"
            parts.append(f"{len(self.replaced)} run(s) {verb} (strategy code changed)")
        if self.broken:
            parts.append(f"{len(self.broken)} run(s) cannot be recomputed: .broken says why")
        if self.unfinished_sweeps:
            parts.append(
                f"{len(self.unfinished_sweeps)} sweep(s) interrupted before some of their runs "
                "(.unfinished_sweeps): resume=True computes them"
            )
        if self.catalog_unused_bytes:
            parts.append(
                f"the catalog's file has about {self.catalog_unused_bytes / 2**20:,.1f} MiB "
                "unused (.catalog_unused_bytes): gc(catalog=True) gives them back"
            )
        for what, files in (("missing", self.missing_files), ("damaged", self.damaged_files)):
            if files:
                fixes = "; ".join(dict.fromkeys(lost_file_fix(f) for f in files))
                parts.append(
                    f"{len(files)} store file(s) {what} (.{what}_files): the store was "
                    f"changed outside incbt; {fixes}"
                )
        return f"<UpdateResult: {'; '.join(parts)}>"


def active_runs(store: Any) -> list[rc.RunRecord]:
    with store.catalog.env.read() as txn:
        return [r for r in rc.runs(store.catalog, txn) if not r.gone]


def _strategy_now(rec: rc.RunRecord) -> tuple[Any, str | None]:
    """The run's strategy as a recomputation would take it (this process's object of the
    run's code, else the file's code as it is now), or None and why it cannot load."""
    try:
        return resolve_strategy(rec.strategy, rec.source, rec.code_version, check=False), None
    except StrategyError as exc:
        return None, str(exc)
    except OSError as exc:  # "[Errno 2] No such file..." said no more (QA 2026-12-05)
        return None, f"its strategies file {rec.source} cannot be read ({exc.strerror or exc})"


def _successor(store: Any, run_id: str) -> str:
    """The run that stands for ``run_id`` now (:func:`rc.follow`), itself if unknown."""
    with store.catalog.env.read() as txn:
        run = rc.follow(store.catalog, txn, run_id)
    return run_id if run is None else run.run_id


def broken_line(rec: rc.RunRecord, why: str) -> str:
    """What ``UpdateResult.broken`` says of a run whose strategy cannot load."""
    return f"run {rec.run_id} ({rec.strategy}): {why}"


def _compile_error(strat: Any, params: dict[str, Any]) -> str | None:
    """Why a user strategy's kernel does not compile (None: it does, and is loaded now,
    for the computing that follows: Numba's cache makes that cheap after the first)."""
    from incbt.engine import params_from_dict
    from incbt.engine.kernel import load_kernel

    try:
        load_kernel(strat, params_from_dict(strat, params))
    except StrategyError as exc:
        if "does not compile" in str(exc):
            lines = str(exc).splitlines()
            cause = next((ln for ln in lines[1:] if "Error" in ln.split(":", 1)[0]), "")
            return (
                f"strategy {strat.name!r}: its step does not compile with Numba"
                + (f" ({cause.strip()})" if cause else "")
                + "; `incbt backtest` of it shows Numba's whole message"
            )
    return None


def _run_now(rec: rc.RunRecord) -> tuple[Any, str | None, dict[str, Any]]:
    """The run's strategy as a recomputation would take it (:func:`_strategy_now`), why
    it cannot recompute the run (None: it can), and the run's parameters under that code.

    A strategy whose code changed takes the parameters as the code now does: one added
    takes its default, as a backtest of the new code registers it (else two runs); one
    renamed, removed or narrowed is this run's problem, not every run's (found
    2026-12-05: status and update stopped on it, after an update's ingest)."""
    from incbt.engine import params_from_dict, params_to_dict

    strat, why = _strategy_now(rec)
    if why is not None or strat.code_version == rec.code_version:
        return strat, why, rec.params
    try:
        return strat, None, params_to_dict(strat, params_from_dict(strat, rec.params))
    except StrategyError as exc:
        return (
            strat,
            f"its parameters {rec.params} do not fit strategy {rec.strategy!r} as its code is "
            f"now ({exc}); restore the strategies file (`runs.source` names it), or drop "
            f"the run (`incbt drop {rec.run_id}`)",
            rec.params,
        )


def current_records(
    store: Any,
    broken_runs: list[tuple[rc.RunRecord, str]] | None = None,
    compiled: bool = False,
) -> tuple[list[rc.RunRecord], list[tuple[str, str]], list[str]]:
    """Active runs as they should be now: a run whose strategy's code changed is
    replaced by the same run under the new code version (a new run id). A run whose
    strategy cannot load is left out, said in the third list (and, with
    ``broken_runs``, added there with why); with ``compiled``, also one whose user
    strategy's step does not compile (an edit that breaks it stopped every run's
    update: found 2026-12-05)."""
    records: list[rc.RunRecord] = []
    replaced: list[tuple[str, str]] = []
    broken: list[str] = []
    changed: list[int] = []  # records whose strategy's code changed
    checked: dict[str, str | None] = {}
    active = active_runs(store)
    standing = {r.run_id for r in active}
    for rec in active:
        strat, why, params = _run_now(rec)
        if why is None and compiled and rec.source != "builtin":
            if strat.code_version not in checked:
                checked[strat.code_version] = _compile_error(strat, rec.params)
            why = checked[strat.code_version]
        if why is not None and rec.replacing in standing:
            continue  # a replacement not shown yet: the run it replaces is said (QA 2026-12-06)
        if why is not None:
            broken.append(broken_line(rec, why))
            if broken_runs is not None:
                broken_runs.append((rec, why))
            continue
        if strat.code_version != rec.code_version:
            changed.append(len(records))
            rec = dataclasses.replace(
                rec,
                code_version=strat.code_version,
                params=params,
                created_seq=0,
                superseded_by=None,
            )
        records.append(rec)
    if compiled and changed:
        changed = _keeping_the_contract(store, records, changed, broken, broken_runs)
    # the new ids, a fork's after its base's (that id is part of a fork's): a fork of a
    # run whose code changed follows the base's replacement (found 2026-12-05: it followed
    # the base of the old code, and every update failed on that base's code)
    depth = fork_depths(records)
    renamed: dict[str, str] = {}
    for k in sorted(changed, key=lambda k: depth[records[k].run_id]):
        r = records[k]
        fork = r.fork
        if fork is not None and fork["base"] in renamed:
            fork = {**fork, "base": renamed[fork["base"]]}
        elif fork is not None:  # its base replaced already, by an update stopped before
            # this fork's replacement (QA 2026-12-06): the base's replacement
            fork = {**fork, "base": _successor(store, fork["base"])}
        renamed[r.run_id] = make_run_id(
            r.strategy, r.code_version, r.params, r.exec_params, r.start, r.universe, fork
        )
        records[k] = dataclasses.replace(r, run_id=renamed[r.run_id], fork=fork, replacing=r.run_id)
        replaced.append((r.run_id, renamed[r.run_id]))
    # a replacement that is a run already (made with the new code before this update,
    # by a backtest): one run, the registered one (found 2026-12-05: both were planned,
    # and a new day's rows were written twice)
    one: dict[str, rc.RunRecord] = {}
    for r in records:
        if r.run_id not in one or not one[r.run_id].created_seq:
            one[r.run_id] = r
    return list(one.values()), replaced, broken


def _keeping_the_contract(
    store: Any,
    records: list[rc.RunRecord],
    changed: list[int],
    broken: list[str],
    broken_runs: list[tuple[rc.RunRecord, str]] | None,
) -> list[int]:
    """``changed`` (indices of ``records`` whose user strategy's code changed) less the
    runs of a new code that breaks the strategy contract (:mod:`incbt.contract`, as a
    backtest of it checks first): they are taken out of ``records`` and said in
    ``broken`` (found 2026-12-05: an edit that made a step keep a count outside its
    state was computed whole without a word, and diverged at the next update)."""
    from incbt.contract import check_new_runs

    by_version: dict[str, list[int]] = defaultdict(list)
    for k in changed:
        if records[k].source != "builtin":
            by_version[records[k].code_version].append(k)
    known = store.instruments()
    out = set()
    for ks in by_version.values():
        try:
            check_new_runs(store, [records[k] for k in ks], known)
        except StrategyError as exc:
            why = f"its strategy's new code breaks the contract: {exc}"
            for k in ks:
                broken.append(broken_line(records[k], why))
                if broken_runs is not None:
                    broken_runs.append((records[k], why))
            out.update(ks)
    if not out:
        return changed
    keep = [k for k in range(len(records)) if k not in out]
    where = {old: new for new, old in enumerate(keep)}
    records[:] = [records[k] for k in keep]
    return [where[k] for k in changed if k not in out]


def _live(store: Any, records: Sequence[rc.RunRecord], prefix: str) -> rc.RunRecord:
    """The maintained run of this id or prefix; a run replaced after its strategy's code
    changed is named with the run that replaced it (it said "no run"), a dropped one said
    as dropped, as ``store.run`` says it (QA 2026-12-08: "no run 'ID'")."""
    try:
        return rc.by_prefix(records, prefix)
    except NotFoundError:
        with store.catalog.env.read() as txn:
            every = list(rc.runs(store.catalog, txn))
            try:
                old = rc.by_prefix(every, prefix)
            except (NotFoundError, UsageError):
                old = None
            now = rc.follow(store.catalog, txn, old.run_id) if old is not None else None
        if old is not None and old.superseded_by and now is not None:
            raise NotFoundError(
                f"run {old.run_id} was replaced by run {now.run_id} when its strategy's "
                f"code changed: verify {now.run_id}"
            ) from None
        if old is not None and old.dropped_seq is not None:
            raise rc.dropped(old) from None
        raise


def _stale_rows(
    records: Sequence[rc.RunRecord],
    report: UpdateReport,
    stale: list[Staleness],
    replaced: list[tuple[str, str]],
    last_seq: int,
    broken: Sequence[tuple[rc.RunRecord, str]] = (),
) -> list[StaleRow]:
    why = {(s.run_id, s.instrument): s for s in stale}
    # a run its strategy's new code replaces is named by the run holding its results
    # now, the one `runs` lists (QA 2026-12-06: the new id, in no table yet, or the id a
    # revert revives, listed as superseded)
    old_of = {n: o for o, n in replaced}
    strat_of = {r.run_id: r.strategy for r in records}
    rows = []
    for t in report.plan.tasks if report.plan else []:
        for rid in t.run_ids:
            s = why.get((rid, t.instrument))
            shown = rid
            if rid in old_of:
                shown = old_of[rid]
                reason = "strategy code changed: recomputed from the start as a new run"
            elif (rid, t.instrument) in report.depends_on_retry:  # (QA 2026-12-07)
                days = "its days" if t.resume_day is None else f"its {t.days} day(s)"
                after = "" if t.resume_day is None else f" after {day_to_iso(t.resume_day)}"
                reason = (
                    f"{report.depends_on_retry[(rid, t.instrument)]}; {days}{after} are "
                    "computed only if that succeeds (else this pair fails with it)"
                )
            elif s is not None and s.retried:
                reason = f"its strategy failed at event {s.seq}: retried (--retry-failed)"
            elif s is not None and s.seq > last_seq:
                reason = f"the ingest would change {day_to_iso(s.from_day)}"
            elif s is not None:
                verb = "removed bars from" if s.removed else "changed"
                reason = f"event {s.seq} {verb} {day_to_iso(s.from_day)}"
            elif t.resume_day is None:
                reason = "not computed yet"
            else:
                reason = f"{t.days} new day(s) after {day_to_iso(t.resume_day)}"
            rows.append(
                StaleRow(
                    shown,
                    strat_of.get(rid, t.strategy),
                    t.instrument,
                    reason,
                    day_to_iso(t.first_day),
                    t.bars,
                    rid if shown != rid else None,
                )
            )
    for (rid, inst), valid in sorted((report.plan.truncate if report.plan else {}).items()):
        s = why.get((rid, inst))
        said = f"event {s.seq} removed bars from {day_to_iso(s.from_day)}" if s else "bars removed"
        rows.append(
            StaleRow(
                rid,
                strat_of.get(rid, ""),
                inst,
                f"{said}, and no day of it is left after "
                + (
                    f"{day_to_iso(valid)}: its results after that day go"
                    if valid is not None
                    else "the run's start: its results go"
                ),
                None if valid is None else day_to_iso(valid + 1),
                0,
            )
        )
    for rid in report.refolds:
        rows.append(
            StaleRow(
                rid,
                strat_of.get(rid, ""),
                "",  # the run's portfolio
                "its universe changed size: the portfolio is refolded with the new capital",
                None,
                0,
            )
        )
    for rec, cause in broken:  # not up to date for sure only once planned: said anyway
        rows.append(StaleRow(rec.run_id, rec.strategy, "", f"cannot recompute: {cause}", None, 0))
    rows.sort(key=lambda r: (r.run_id, r.instrument))
    return rows


def update(
    store: Any,
    paths: Sequence[str] | None = None,
    *,
    dry_run: bool = False,
    command: str = "update",
    progress: Reporter = NULL,
    only: Collection[str] | None = None,
    retry_failed: bool = False,
    **ingest_args: Any,
) -> UpdateResult:
    """Ingest ``paths`` (if any), then bring every run up to date (``only``: a dry run's
    runs, see :func:`status_of`; ``retry_failed``: compute again the pairs whose strategy
    failed before, :func:`incbt.runs.plan_runs`)."""
    # the runs' kernels load while the files are ingested and the plan made; without
    # files, once the plan has work (incbt.runs._phase): often there is none
    if paths and not dry_run:
        preload_kernels(active_runs(store))
    # the runs to bring up to date are read under the write lock, with the work: read
    # before it, a drop committed while this update waited was undone, its runs computed
    # again from scratch (found 2026-12-05)
    with contextlib.nullcontext() if dry_run else store.lock():
        summary = (
            store.ingest(paths, dry_run=dry_run, progress=progress, **ingest_args)
            if paths
            else None
        )
        broken_runs: list[tuple[rc.RunRecord, str]] = []
        records, replaced, broken = current_records(store, broken_runs, compiled=not dry_run)
        if only is not None:  # these runs, with the runs replacing them
            replaced = [(o, n) for o, n in replaced if o in only]
            mine = set(only) | {n for _, n in replaced}
            records = [r for r in records if r.run_id in mine]
            broken_runs = [(r, why) for r, why in broken_runs if r.run_id in only]
            broken = [broken_line(r, why) for r, why in broken_runs]
        stale: list[Staleness] = []
        try:
            report = bring_up_to_date(
                store,
                records,
                command=command,
                kind="update",
                progress=progress,
                dry_run=dry_run,
                stale_out=stale,
                replaced=replaced,
                hypothetical=summary.hypothetical() if dry_run and summary else (),
                retry_failed=retry_failed,
            )
        except BaseException as exc:
            if summary is not None and summary.seq is not None:  # said with the error
                # (QA 2026-12-06: a full disk stopped the computing, and nothing said the
                # files were in the store already)
                exc.add_note(
                    f"the files were ingested (event {summary.seq}: {summary.days_new} new "
                    f"day(s), {summary.days_corrected} correction(s)); `incbt update` "
                    "without files computes the runs"
                )
            raise
    with store.catalog.env.read() as txn:
        last_seq = store.catalog.last_seq(txn)
    return UpdateResult(
        summary,
        report,
        replaced,
        broken,
        lambda: _stale_rows(records, report, stale, replaced, last_seq, broken_runs),
        dry_run,
    )


def run_staleness(store: Any, rec: rc.RunRecord) -> list[StaleRow]:
    """Why one run's stored results are not those of the data and code now: the rows
    ``status`` has of it ([]: up to date, or a run no update maintains: dropped,
    replaced), planned for this run alone (``Run.stale``, a Run's repr)."""
    if rec.gone:
        return []

    def whole(reason: str) -> list[StaleRow]:
        return [StaleRow(rec.run_id, rec.strategy, "", reason, None, 0)]

    strat, why, _ = _run_now(rec)
    if why is None and strat.code_version != rec.code_version:
        return whole("strategy code changed: an update recomputes it from the start as a new run")
    if why is not None:
        return whole(f"cannot recompute: {why}")
    stale: list[Staleness] = []
    report = bring_up_to_date(store, [rec], command="status", dry_run=True, stale_out=stale)
    with store.catalog.env.read() as txn:
        last_seq = store.catalog.last_seq(txn)
    # a fork's plan holds its base's rows (an update brings the base first): the run's
    # own rows alone (QA 2026-12-06: a fork's .stale listed its base's beside its own)
    return [r for r in _stale_rows([rec], report, stale, [], last_seq) if r.run_id == rec.run_id]


def status(store: Any) -> UpdateResult:
    """What an update would do now, and why (nothing is written)."""
    return update(store, None, dry_run=True)


def status_of(store: Any, run_ids: Collection[str]) -> UpdateResult:
    """:func:`status` of these runs alone (a run replaced after a code change: with its
    replacement; a fork: with its base, as an update brings it up to date): what a
    report of one run needs, planned for it, not for every run of the store (QA
    2026-12-06: ``report RUN`` planned 16,000 runs for one)."""
    return update(store, None, dry_run=True, only=set(run_ids))


def _as_ints(a: pa.Array) -> pa.Array:
    """A temporal array as the integers it holds (others as they are): a value past
    datetime's range raises on its way to Python as a time."""
    if not pa.types.is_temporal(a.type):
        return a
    return a.view(pa.int64() if a.type.bit_width == 64 else pa.int32())


def _shown_cell(v: Any) -> Any:
    """A cell's value for a message; a time past datetime's range as its integer."""
    try:
        return v.as_py()
    except (ValueError, OverflowError):
        return _as_ints(pa.array([v]))[0].as_py() if pa.types.is_temporal(v.type) else repr(v)


@dataclass
class Difference:
    run_id: str
    table: str
    instrument: str | None
    where: str
    column: str
    stored: Any
    recomputed: Any


@dataclass
class VerifyReport:
    runs: int = 0
    rows_compared: int = 0
    bars_processed: int = 0
    seconds: float = 0.0
    differences: list[Difference] = field(default_factory=list)
    # (run, instrument) pairs whose computation failed, recomputed as in the store: they
    # have no rows there and none here (SEMANTICS.md), and are listed, not counted as equal
    failed: list[str] = field(default_factory=list)
    # runs not up to date (bars ingested or corrected since, or their strategy's code
    # changed): not compared, as their results are not yet those of the data
    stale: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # runs that cannot be recomputed, and why
    # differences seen while another process committed (QA 2026-12-08: verify beside an
    # ingest blamed the bars): the recomputation and the stored rows it was compared
    # with may be of two states of the store, so they prove nothing; verify again
    written_during: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.differences and not self.stale and not self.broken and not self.written_during
        )

    def __repr__(self) -> str:
        out = (
            f"<VerifyReport {'ok' if self.ok else 'NOT ok'}: {self.runs} run(s) compared, "
            f"{self.rows_compared:,} rows, {len(self.differences)} difference(s)"
        )
        if self.differences:
            d = self.differences[0]
            out += f" (first: run {d.run_id} {d.table} {d.where} {d.column})"
        if self.stale:
            out += f"; {len(self.stale)} run(s) not up to date, not compared"
        if self.broken:
            out += f"; {len(self.broken)} run(s) cannot be recomputed (.broken says why)"
        if self.failed:
            out += f"; {len(self.failed)} failed pair(s)"
        if self.written_during:
            out += (
                f"; the store was written while verify ran ({len(self.written_during)} "
                "difference(s) seen meanwhile, not conclusive): verify again"
            )
        return out + f"; {self.seconds:.2f} s>"


def _first_difference(
    run_id: str, name: str, stored: pa.Table, fresh: pa.Table, keys: tuple[str, ...]
) -> Difference | None:
    """Where two tables of one run first differ (column by column), or None."""
    if stored.num_rows != fresh.num_rows:
        return Difference(run_id, name, None, "row count", "*", stored.num_rows, fresh.num_rows)
    for col in fresh.column_names:
        a = stored.column(col).combine_chunks()
        b = fresh.column(col).combine_chunks()
        if _bits(pa.chunked_array([a])).equals(_bits(pa.chunked_array([b]))):
            continue
        # times as their integers (QA 2026-12-06: verify exited 3 on a results file
        # whose times a disk had changed)
        av, bv = _as_ints(a).to_pylist(), _as_ints(b).to_pylist()
        for i, (x, y) in enumerate(zip(av, bv, strict=True)):
            if isinstance(x, float) and isinstance(y, float):
                differ = np.float64(x).view(np.int64) != np.float64(y).view(np.int64)
            else:
                differ = x != y
            if differ:
                inst = (
                    stored.column("instrument")[i].as_py()
                    if "instrument" in stored.column_names
                    else None
                )
                where = ", ".join(
                    f"{k}={_shown_cell(stored.column(k)[i])}"
                    for k in keys
                    if k in stored.column_names
                )
                return Difference(run_id, name, inst, where, col, x, y)
    return None


def _plain(t: pa.Table) -> pa.Table:
    """Dictionary-encoded columns as plain ones, as SQL returns them."""
    cols = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in t.columns]
    return pa.Table.from_arrays(cols, names=t.column_names)


def _bits(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A float64 column as the int64 of its bits (0.0 and -0.0 differ; equal floats
    compare equal by value only); other columns as they are."""
    if not pa.types.is_float64(col.type):
        return col
    return pa.chunked_array([c.view(pa.int64()) for c in col.chunks], pa.int64())


def _same(a: pa.Table, b: pa.Table) -> bool:
    """Bit for bit: every column equal, floats by their bits."""
    return (
        a.num_rows == b.num_rows
        and a.column_names == b.column_names
        and all(_bits(x).equals(_bits(y)) for x, y in zip(a.columns, b.columns, strict=True))
    )


# Results a verify holds in memory at once: its runs are recomputed in chunks of
# instruments (in name order) of about this many bar-steps, every run over each chunk's
# instruments as one batch, so each instrument's bars are read once, whatever the number
# of runs (sma_cross leaves ~1 fill per 35 bar-steps: ~100 MB of fills rows a chunk)
VERIFY_BAR_STEPS = 50_000_000
# forks whose fresh results one comparison (a query a table) takes at most
FORKS_A_QUERY = 256


def _instrument_chunks(the_plan: Any, ids: list[str]) -> list[tuple[Any, list[str]]]:
    """The plan's tasks in chunks of about VERIFY_BAR_STEPS bar-steps, in instrument name
    order, each with the runs to compare it for.

    Chunks of whole instruments (every run over each; ``ids``, all of them, to compare),
    as many as fit; an instrument with more work than that alone is split by its runs
    (:func:`split_tasks`), each chunk compared for its own runs only, so that a sweep
    of a thousand runs does not hold a thousand runs' rows of an instrument at once.
    A run's instruments still arrive in name order (its portfolio folds them so).
    """
    from incbt.plan import Plan, split_tasks

    by_inst: dict[str, list] = {}
    for t in split_tasks(the_plan, VERIFY_BAR_STEPS).tasks:
        by_inst.setdefault(t.instrument, []).append(t)
    out: list[tuple[Any, list[str]]] = []
    tasks: list = []
    work = 0

    def emit(runs: list[str] | None = None) -> None:
        """The tasks so far as a chunk, compared for ``runs`` (None: their own runs)."""
        nonlocal tasks, work
        if tasks:
            own = sorted({r for t in tasks for r in t.run_ids}) if runs is None else runs
            out.append((Plan(tasks=tasks, latest=the_plan.latest), own))
        tasks, work = [], 0

    for inst in sorted(by_inst):
        its = by_inst[inst]
        total = sum(t.work for t in its)
        if total <= VERIFY_BAR_STEPS:  # whole, with the instruments before if they fit
            if work + total > VERIFY_BAR_STEPS:
                emit(ids)
            tasks += its
            work += total
            continue
        emit(ids)
        for t in its:  # alone, by runs
            if tasks and work + t.work > VERIFY_BAR_STEPS:
                emit()
            tasks.append(t)
            work += t.work
        emit()
    emit(ids)
    return out


def _quoted(names: Sequence[str]) -> str:
    return ", ".join("'" + n.replace("'", "''") + "'" for n in names)


@dataclass
class _StoredRows:
    """The store's rows of a comparison as the query returned them, with what sorts them
    as ``build_tables`` does (``order``: the permutation; ``names``: each name column's
    ranks and the names ranked), not yet gathered in that order."""

    table: pa.Table
    order: np.ndarray | None  # None: sorted by Arrow already (names missing somewhere)
    names: dict[str, tuple[np.ndarray, pa.Array]] = field(default_factory=dict)

    def sorted(self) -> pa.Table:
        return self.table if self.order is None else self.table.take(self.order)


def _stored(
    ctx: Any, table: str, run_ids: list[str], where: str, order: tuple[str, ...]
) -> _StoredRows:
    """The store's rows of these runs (and ``where``), and how to sort them as
    ``build_tables`` sorts them: names by their ranks among the names present (byte
    order, as Arrow and Python order them), then the time (``order``'s last column when
    it is not a name); not by DataFusion's ORDER BY (2.2 s for 1.6 M fills) nor Arrow's
    sort on the names (0.9 s for 3.2 M fills, against 0.3 s)."""
    import pyarrow.compute as pc

    from incbt.query import run_sql

    assert all(r.isalnum() for r in run_ids)  # run ids are hex digests: safe to inline
    t = run_sql(ctx, f"SELECT * FROM {table} WHERE run_id IN ({_quoted(run_ids)}){where}")
    names: dict[str, tuple[np.ndarray, pa.Array]] = {}  # in sort order
    time = None
    for c in order:
        col = t.column(c)
        if col.null_count:  # names missing (not in these queries): Arrow's sort, as it is
            return _StoredRows(
                t.take(pc.sort_indices(t, sort_keys=[(c, "ascending") for c in order])), None
            )
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            present = pc.unique(col).sort()
            names[c] = (pc.index_in(col, value_set=present).to_numpy(), present)
        else:
            assert c == order[-1]
            width = pa.int32() if pa.types.is_date32(col.type) else pa.int64()
            time = col.cast(width).to_numpy()
    keys = [(ranks, len(present)) for ranks, present in names.values()]
    return _StoredRows(t, sort_order(keys, time), names)


# Rows gathered at a time by a comparison in order (_same_in_order): small enough that
# the gathered block's memory is reused from block to block, not fresh each time
_BLOCK_ROWS = 1 << 16


def _flat(col: pa.ChunkedArray | pa.Array) -> np.ndarray | None:
    """A column of fixed-width values as one integer array of their bits (floats by
    their bits: 0.0 and -0.0 differ, NaNs by payload), or None where it is not one
    (strings, nulls): those go to the comparison of whole tables."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    typ = col.type
    if pa.types.is_float64(typ) or pa.types.is_int64(typ) or pa.types.is_timestamp(typ):
        dtype: Any = np.int64
    elif pa.types.is_int32(typ) or pa.types.is_date32(typ):
        dtype = np.int32
    else:
        return None
    parts = []
    for c in chunks:
        if not len(c):  # an empty batch of a query (its data buffer may be absent)
            continue
        if c.null_count:
            return None
        parts.append(np.frombuffer(c.buffers()[1], dtype)[c.offset : c.offset + len(c)])
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _ranks_of(col: pa.ChunkedArray, present: pa.Array) -> np.ndarray:
    """Each name's rank among ``present`` (-1: not there), dictionary-encoded or not."""
    import pyarrow.compute as pc

    out = []
    for c in col.chunks:
        if pa.types.is_dictionary(c.type):
            ranks = pc.index_in(c.dictionary, value_set=present).fill_null(-1).to_numpy()
            out.append(ranks[c.indices.fill_null(0).to_numpy(zero_copy_only=False)])
            if c.null_count:
                out[-1][c.is_null().to_numpy(zero_copy_only=False)] = -1
        else:
            out.append(pc.index_in(c, value_set=present).fill_null(-1).to_numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _same_in_order(stored: _StoredRows, fresh: pa.Table) -> bool:
    """:func:`_same` of the stored rows sorted and the fresh ones, without gathering the
    stored table in order (what cost most of a verify: every column's rows copied into
    fresh memory): fixed-width columns compared by their bits a block of rows at a time,
    names by their ranks among the stored names. False also where it cannot tell (a
    column of another type, nulls): the caller then compares the gathered tables."""
    a, o = stored.table, stored.order
    if o is None or a.num_rows != fresh.num_rows:
        return False
    for name in fresh.column_names:
        if name not in a.column_names:
            return False
        if name in stored.names:
            left, present = stored.names[name]
            right = _ranks_of(fresh.column(name), present)
        elif a.column(name).type != fresh.column(name).type:
            return False
        else:
            left, right = _flat(a.column(name)), _flat(fresh.column(name))  # type: ignore[assignment]
            if left is None or right is None:
                return False
        for i in range(0, len(o), _BLOCK_ROWS):
            if not np.array_equal(left[o[i : i + _BLOCK_ROWS]], right[i : i + _BLOCK_ROWS]):
                return False
    return True


class _Portfolios:
    """Each run's portfolio metrics, folded as its instruments' results arrive in name
    order (a chunk after another): the same additions in the same order as
    ``portfolio_pnl`` and the store's commit over all of them at once, so the same bits."""

    def __init__(self, records: Sequence[rc.RunRecord], known: Sequence[str]) -> None:
        self.records = {r.run_id: r for r in records}
        self.n = {r.run_id: len(instruments_of(r, known)) for r in records}
        self.days: dict[str, np.ndarray] = {}  # run -> days so far (ascending)
        self.pnl: dict[str, np.ndarray] = {}  # run -> their pnl summed so far
        self.totals: dict[str, np.ndarray] = {}  # run -> fills, fees, turnover so far

    def add(self, rid: str, items: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> None:
        """Instruments of a run, (name, days, pnl, metrics), after every one added before.

        The sums so far go first, as the instrument named PORTFOLIO ("", before every
        name): each day's total then starts from them exactly (0.0 + x is x) and goes on
        in name order, as one ``portfolio_pnl`` over every instrument adds."""
        items = sorted(items, key=lambda x: x[0])
        before = [(PORTFOLIO, self.days[rid], self.pnl[rid])] if rid in self.days else []
        self.days[rid], self.pnl[rid] = portfolio_pnl(before + [x[:3] for x in items])
        totals = self.totals.setdefault(rid, np.zeros(3))
        for _, _, _, vals in items:
            totals += vals[3:6]

    def table(self) -> pa.Table:
        """The portfolio rows of the runs with any instrument's metrics, by run."""
        rids, vals = [], []
        for rid in sorted(self.totals):
            rec, pnl = self.records[rid], self.pnl[rid]
            acc = fold_portfolio(pnl, rec.exec_params["notional"] * max(1, self.n[rid]))
            port = finalize(acc[-1]) if len(pnl) else finalize(np.zeros(acc.shape[-1]))
            port[3:6] = self.totals[rid]
            rids.append(rid)
            vals.append(port)
        return metrics_table(rids, [PORTFOLIO] * len(rids), vals)


def _instrument_metrics(results: list, ids: list[str], port: _Portfolios) -> pa.Table:
    """Per-instrument metrics rows of fresh results (sorted as the store sorts them), each
    run's instruments folded into its portfolio on the way; a failed pair has none."""
    from incbt.engine import state_width

    rids: list[str] = []
    insts: list[str] = []
    rows: list[np.ndarray] = []
    per_run: dict[str, list] = {rid: [] for rid in ids}
    for r in results:
        sw = state_width(resolve_strategy(r.task.strategy, r.task.source, r.task.version))
        ok = [k for k, rid in enumerate(r.task.run_ids) if rid in per_run and r.errors[k] is None]
        if not ok:
            continue
        final = finalize(r.states[:, -1, sw:])  # one call a task, as the commit makes it
        for k in ok:
            per_run[r.task.run_ids[k]].append(
                (r.task.instrument, r.days, r.daily["pnl"][k], final[k])
            )
    for rid in ids:
        items = sorted(per_run[rid], key=lambda x: x[0])
        if items:
            port.add(rid, items)
        for inst, _, _, vals in items:
            rids.append(rid)
            insts.append(inst)
            rows.append(vals)
    return metrics_table(rids, insts, rows)


def _compare(
    ctx: Any,
    ids: list[str],
    instruments: list[str] | None,
    results: list,
    port: _Portfolios,
    report: VerifyReport,
) -> None:
    """Compare freshly computed results of these runs on these instruments (None: all
    of theirs) with the store's rows of the same, one table at a time.

    Consumes ``results`` (the list is emptied once its rows are tables): what a chunk
    keeps in memory is about its rows, twice."""
    report.bars_processed += sum(r.bars_processed for r in results)
    report.failed += [
        f"run {rid}, {r.task.instrument}: {e}"
        for r in results
        for rid, e in zip(r.task.run_ids, r.errors, strict=True)
        if e is not None and rid in ids
    ]
    metrics = _instrument_metrics(results, ids, port)
    daily, fills = build_tables(results, None, set())  # no batch column: not compared
    results.clear()
    only = "" if instruments is None else f" AND instrument IN ({_quoted(instruments)})"
    tables = {"daily": daily, "fills": fills, "metrics": metrics}
    del daily, fills, metrics
    for name, where, order, keys in (
        ("daily", only, ("run_id", "instrument", "date"), ("date",)),
        ("fills", only, ("run_id", "instrument", "ts"), ("ts",)),
        ("metrics", " AND scope = 'instrument'" + only, ("run_id", "instrument"), ("scope",)),
    ):
        _compare_table(ctx, name, ids, where, order, keys, tables.pop(name), report)


def _compare_table(
    ctx: Any,
    name: str,
    ids: list[str],
    where: str,
    order: tuple[str, ...],
    keys: tuple[str, ...],
    fresh: pa.Table,
    report: VerifyReport,
) -> None:
    """One table of fresh rows against the store's; a difference of each run recorded
    once (its first, in the order rows are compared: chunks go in instrument order)."""
    import pyarrow.compute as pc

    stored = _stored(ctx, name, ids, where, order)
    report.rows_compared += fresh.num_rows
    if _same_in_order(stored, fresh):  # the whole chunk at once: the expected case
        return
    b = _plain(fresh)
    a = stored.sorted().select(b.column_names)
    del stored
    if _same(a, b):
        return
    seen = {(d.run_id, d.table) for d in report.differences}
    for rid in ids:  # find the runs that differ, and where
        if (rid, name) in seen:
            continue
        d = _first_difference(
            rid,
            name,
            a.filter(pc.equal(a["run_id"], rid)),
            b.filter(pc.equal(b["run_id"], rid)),
            keys,
        )
        if d is not None:
            report.differences.append(d)


def _not_up_to_date(store: Any, records: Sequence[rc.RunRecord]) -> tuple[set[str], dict[str, str]]:
    """The runs an update would compute (new bars or corrections since their results, or
    a strategy whose code changed), and those whose strategy cannot be loaded, and why."""
    out, broken = set(), {}
    changed = []  # the replacements of runs of a user strategy whose code changed
    for rec in records:
        strat, why, params = _run_now(rec)  # as status and update take it
        if why is not None:
            broken[rec.run_id] = broken_line(rec, why)
            continue
        if strat.code_version != rec.code_version:
            out.add(rec.run_id)
            if rec.source != "builtin":
                changed.append(
                    dataclasses.replace(rec, code_version=strat.code_version, params=params)
                )
    if changed:  # new code that breaks the contract: as update says it (review 2026-12-05:
        # verify said "not up to date, run update", which then refused them)
        lines: list[str] = []
        ids = [r.run_id for r in changed]
        _keeping_the_contract(store, changed, list(range(len(changed))), lines, None)
        left = {r.run_id for r in changed}
        for rid in (x for x in ids if x not in left):
            out.discard(rid)
            broken[rid] = next(ln for ln in lines if ln.startswith(f"run {rid} "))
    rest = [r for r in records if r.run_id not in out and r.run_id not in broken]
    if rest:
        out.update(rid for t in plan_runs(store, rest).tasks for rid in t.run_ids)
    return out, broken


class _OneComputing:
    """A reporter whose "computing" tasks are one, ``task``: verify's chunks, each an
    :func:`execute` with a task of its own, restarted the count, the bar and the clock
    of the lines said where stderr is not a terminal (QA 2026-12-07: none ever came)."""

    def __init__(self, progress: Reporter, task: Any) -> None:
        self.progress, self.computing = progress, task

    def task(self, description: str, total: int | None) -> Any:
        if description != "computing":
            return self.progress.task(description, total)
        return _Continued(self.computing)


class _Continued:
    """A chunk's view of the one task: it advances it; its end is not the task's."""

    def __init__(self, task: Any) -> None:
        self.inner = task

    def advance(self, n: int = 1) -> None:
        self.inner.advance(n)

    def done(self) -> None:
        pass


def verify(
    store: Any,
    run_ids: Sequence[str] | None = None,
    progress: Reporter = NULL,
    sweep: str | None = None,
) -> VerifyReport:
    """Recompute runs from scratch in memory; compare daily, fills and metrics bit for bit.

    The runs are planned once, then recomputed in chunks of about
    :data:`VERIFY_BAR_STEPS` bar-steps: whole instruments (every run over a chunk's
    instruments as one batch, which gives each run the bits it gets alone), or an
    instrument too big for one chunk by its runs (:func:`_instrument_chunks`); each
    table of a chunk read from the store with one query; portfolios are folded as the
    chunks go, and compared at the end.

    ``run_ids`` (ids or unique prefixes) and ``sweep`` (every run of that sweep the
    store maintains) choose the runs; neither: every run.
    """
    t0 = time.perf_counter()
    before = _generation(store)
    records = active_runs(store)
    never: set[str] = set()  # runs of the sweep never committed (interrupted first)
    if run_ids or sweep is not None:
        chosen = [_live(store, records, q) for q in run_ids or ()]
        if sweep is not None:
            from incbt.sweep import get_sweep, never_committed, no_such_sweep

            spec = get_sweep(store, sweep)
            if spec is None:
                raise no_such_sweep(sweep, store.catalog)
            # its runs now: one replaced after a code change by its replacement (found
            # 2026-12-05: those were left out, and verify passed having compared none)
            with store.catalog.env.read() as txn:
                mine = {rid for _, rid in rc.standing(store.catalog, txn, spec["runs"])}
            chosen += [r for r in records if r.run_id in mine]
            never = set(never_committed(store, spec))  # interrupted before their commit
        records = sorted({r.run_id: r for r in chosen}.values(), key=lambda r: r.run_id)
    stale, broken = _not_up_to_date(store, records)
    stale |= never  # not computed at all: verified as nothing (found 2026-12-05)
    records = [r for r in records if r.run_id not in stale and r.run_id not in broken]
    report = VerifyReport(runs=len(records), stale=sorted(stale), broken=sorted(broken.values()))
    known = store.instruments()
    # one session for every query, over the files of these runs' rows, in one partition:
    # the rows come in the files' order, which the comparison's sort (sort_order) takes
    # almost as it is, and the read leaves the cores to the recomputation beside it (a
    # 20-run sweep: 1.76 s against 2.20 s with 2 partitions, 2026-12-07)
    from incbt.query import session

    ids = [r.run_id for r in records]
    ctx = session(store.path, store.catalog, only_for="daily fills metrics", runs=ids, partitions=1)
    plain = [r for r in records if not r.fork]
    port = _Portfolios(records, known)
    if plain:
        ids = sorted(r.run_id for r in plain)
        whole = plan_runs(store, plain, from_scratch=True)
        computing = progress.task("computing", whole.bars)  # one task for the chunks
        chunks = _OneComputing(progress, computing)
        for chunk, runs in _instrument_chunks(whole, ids):
            insts = sorted({t.instrument for t in chunk.tasks})
            _compare(ctx, runs, insts, execute(store, chunk, chunks), port, report)
        computing.done()
    forks = [r for r in records if r.fork]
    if forks:
        from incbt.fork import FreshMemo, fresh_results
        from incbt.runs import _fork_levels

        # forks after their bases, each base's results kept while forks of it remain
        order = [f for level in _fork_levels(forks) for f in level]
        children: dict[str, int] = defaultdict(int)
        for f in order:
            children[(f.fork or {})["base"]] += 1
        memo = FreshMemo(dict(children))
        counted = progress.task("forks recomputed", len(order))  # (QA: 23 s, no word)
        # compared in groups: three queries a fork were most of a fork's verify (QA
        # 2026-12-07: ~35 of ~50 ms), the recomputation one fork at a time as before
        group: list[str] = []
        fresh: list = []
        steps = 0
        for k, rec in enumerate(order):
            got = fresh_results(store, rec, memo)
            group.append(rec.run_id)
            fresh += got
            steps += sum(r.bars_processed for r in got)
            counted.advance()
            if k + 1 == len(order) or steps >= VERIFY_BAR_STEPS or len(group) >= FORKS_A_QUERY:
                _compare(ctx, group, None, fresh, port, report)
                group, fresh, steps = [], [], 0
        counted.done()
    if records:  # the portfolios, folded over every chunk
        ids = sorted(r.run_id for r in records)
        where = " AND scope = 'portfolio'"
        _compare_table(ctx, "metrics", ids, where, ("run_id",), ("scope",), port.table(), report)
    report.differences.sort(key=lambda d: (d.run_id, ("daily", "fills", "metrics").index(d.table)))
    if report.differences and _generation(store) != before:  # another process committed
        report.written_during, report.differences = report.differences, []
    report.seconds = time.perf_counter() - t0
    return report


def _generation(store: Any) -> tuple[Any, int]:
    """The catalog's latest commit (and its file: `gc --catalog` swaps it): any write by
    another process since changes it. Verify writes nothing itself."""
    env = store.catalog.env
    with env.read() as txn:
        return env.identity, txn.id()


__all__ = [
    "Difference",
    "StaleRow",
    "UpdateResult",
    "VerifyReport",
    "status",
    "update",
    "verify",
]
