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

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from incbt.bars.ingest import IngestSummary
from incbt.bars.schema import day_to_iso
from incbt.catalog import runs as rc
from incbt.errors import StrategyError
from incbt.execute import resolve_strategy
from incbt.progress import NULL, Reporter
from incbt.results import PORTFOLIO, build_tables
from incbt.results.metrics import METRICS, finalize, fold, initial_acc, portfolio_pnl
from incbt.runs import (
    Staleness,
    UpdateReport,
    bring_up_to_date,
    execute,
    instruments_of,
    make_run_id,
    plan_runs,
)


@dataclass
class StaleRow:
    """One (run, instrument) an update would compute, and why."""

    run_id: str
    strategy: str
    instrument: str
    reason: str
    from_day: str
    bars: int


@dataclass
class UpdateResult:
    ingest: IngestSummary | None
    report: UpdateReport
    replaced: list[tuple[str, str]] = field(default_factory=list)  # (old run, new run)
    broken: list[str] = field(default_factory=list)  # runs that cannot be recomputed, and why
    # makes the stale rows on first use: a row per (run, instrument) computed is 0.2 s
    # at 500 instruments x 100 runs, which `incbt update` never prints
    stale_rows: Callable[[], list[StaleRow]] = field(default=list, repr=False)

    @functools.cached_property
    def stale(self) -> list[StaleRow]:
        """Each (run, instrument) the update computed (or would compute), and why."""
        return self.stale_rows()


def active_runs(store: Any) -> list[rc.RunRecord]:
    with store.catalog.env.read() as txn:
        return [r for r in rc.runs(store.catalog, txn) if not r.gone]


def current_records(store: Any) -> tuple[list[rc.RunRecord], list[tuple[str, str]], list[str]]:
    """Active runs as they should be now: a run whose strategy's code changed is
    replaced by the same run under the new code version (a new run id)."""
    records, replaced, broken = [], [], []
    for rec in active_runs(store):
        try:
            strat = resolve_strategy(rec.strategy, rec.source)
        except (StrategyError, OSError) as exc:
            broken.append(f"run {rec.run_id} ({rec.strategy}): {exc}")
            continue
        if strat.code_version != rec.code_version:
            new = dataclasses.replace(
                rec,
                code_version=strat.code_version,
                created_seq=0,
                superseded_by=None,
                run_id=make_run_id(
                    rec.strategy,
                    strat.code_version,
                    rec.params,
                    rec.exec_params,
                    rec.start,
                    rec.universe,
                ),
            )
            records.append(new)
            replaced.append((rec.run_id, new.run_id))
        else:
            records.append(rec)
    return records, replaced, broken


def _stale_rows(
    records: Sequence[rc.RunRecord],
    report: UpdateReport,
    stale: list[Staleness],
    replaced: list[tuple[str, str]],
    last_seq: int,
) -> list[StaleRow]:
    why = {(s.run_id, s.instrument): s for s in stale}
    new_ids = {n for _, n in replaced}
    strat_of = {r.run_id: r.strategy for r in records}
    rows = []
    for t in report.plan.tasks if report.plan else []:
        for rid in t.run_ids:
            s = why.get((rid, t.instrument))
            if rid in new_ids:
                reason = "strategy code changed: recomputed from the start as a new run"
            elif s is not None and s.seq > last_seq:
                reason = f"the ingest would change {day_to_iso(s.from_day)}"
            elif s is not None:
                reason = f"event {s.seq} changed {day_to_iso(s.from_day)}"
            elif t.resume_day is None:
                reason = "not computed yet"
            else:
                reason = f"{t.days} new day(s) after {day_to_iso(t.resume_day)}"
            rows.append(
                StaleRow(
                    rid,
                    strat_of.get(rid, t.strategy),
                    t.instrument,
                    reason,
                    day_to_iso(t.first_day),
                    t.bars,
                )
            )
    for rid in report.refolds:
        rows.append(
            StaleRow(
                rid,
                strat_of.get(rid, ""),
                "",  # the run's portfolio
                "its universe changed size: the portfolio is refolded with the new capital",
                "",
                0,
            )
        )
    rows.sort(key=lambda r: (r.run_id, r.instrument))
    return rows


def update(
    store: Any,
    paths: Sequence[str] | None = None,
    *,
    dry_run: bool = False,
    command: str = "update",
    progress: Reporter = NULL,
    **ingest_args: Any,
) -> UpdateResult:
    """Ingest ``paths`` (if any), then bring every run up to date."""
    summary = (
        store.ingest(paths, dry_run=dry_run, progress=progress, **ingest_args) if paths else None
    )
    records, replaced, broken = current_records(store)
    stale: list[Staleness] = []
    report = bring_up_to_date(
        store,
        records,
        command=command,
        kind="update",
        progress=progress,
        dry_run=dry_run,
        stale_out=stale,
        replaced=replaced,
        hypothetical=summary.changed_days if dry_run and summary else (),
    )
    with store.catalog.env.read() as txn:
        last_seq = store.catalog.last_seq(txn)
    return UpdateResult(
        summary,
        report,
        replaced,
        broken,
        lambda: _stale_rows(records, report, stale, replaced, last_seq),
    )


def status(store: Any) -> UpdateResult:
    """What an update would do now, and why (nothing is written)."""
    return update(store, None, dry_run=True)


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

    @property
    def ok(self) -> bool:
        return not self.differences


def _first_difference(
    run_id: str, name: str, stored: pa.Table, fresh: pa.Table, keys: tuple[str, ...]
) -> Difference | None:
    """Where two tables of one run first differ (column by column), or None."""
    if stored.num_rows != fresh.num_rows:
        return Difference(run_id, name, None, "row count", "*", stored.num_rows, fresh.num_rows)
    for col in fresh.column_names:
        a = stored.column(col).combine_chunks()
        b = fresh.column(col).combine_chunks()
        if a.equals(b):
            continue
        av, bv = a.to_pylist(), b.to_pylist()
        for i, (x, y) in enumerate(zip(av, bv, strict=True)):
            if x != y and not (
                isinstance(x, float) and isinstance(y, float) and np.isnan(x) and np.isnan(y)
            ):
                inst = (
                    stored.column("instrument")[i].as_py()
                    if "instrument" in stored.column_names
                    else None
                )
                where = ", ".join(
                    f"{k}={stored.column(k)[i].as_py()}" for k in keys if k in stored.column_names
                )
                return Difference(run_id, name, inst, where, col, x, y)
    return None


def _plain(t: pa.Table) -> pa.Table:
    """Dictionary-encoded columns as plain ones, as SQL returns them."""
    cols = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in t.columns]
    return pa.Table.from_arrays(cols, names=t.column_names)


def _same(a: pa.Table, b: pa.Table) -> bool:
    """Bit for bit: every column equal (floats compared by value, NaN never present)."""
    return (
        a.num_rows == b.num_rows
        and a.column_names == b.column_names
        and all(x.equals(y) for x, y in zip(a.columns, b.columns, strict=True))
    )


# Results a verify holds in memory at once: its runs are recomputed in chunks of about
# this many bar-steps (one pass over each instrument's bars per chunk, all of the chunk's
# runs as one batch; sma_cross leaves ~1 fill per 35 bar-steps: ~100 MB of fills rows)
VERIFY_BAR_STEPS = 50_000_000


def _chunks(store: Any, records: list[rc.RunRecord]) -> list[list[rc.RunRecord]]:
    """Runs in chunks of about VERIFY_BAR_STEPS bar-steps, runs of a strategy together."""
    if not records:
        return []
    records = sorted(records, key=lambda r: (r.strategy, r.source or "", r.run_id))
    total = plan_runs(store, records, from_scratch=True).bars
    n = max(1, min(len(records), -(-total // VERIFY_BAR_STEPS)))
    size = -(-len(records) // n)
    return [records[i : i + size] for i in range(0, len(records), size)]


def _stored(store: Any, table: str, run_ids: list[str], order: tuple[str, ...]) -> pa.Table:
    """The store's rows of these runs, sorted as ``build_tables`` sorts them (by Arrow:
    DataFusion's ORDER BY took 2.2 s for 1.6 M fills, against 0.5 s)."""
    import pyarrow.compute as pc

    assert all(r.isalnum() for r in run_ids)  # run ids are hex digests: safe to inline
    ids = ", ".join(f"'{r}'" for r in run_ids)
    t = store.sql(f"SELECT * FROM {table} WHERE run_id IN ({ids})")
    return t.take(pc.sort_indices(t, sort_keys=[(c, "ascending") for c in order]))


def _compare(
    store: Any,
    records: list[rc.RunRecord],
    results: list,
    known: list[str],
    report: VerifyReport,
) -> None:
    """Compare freshly computed results of these runs with the store's tables.

    Consumes ``results`` (the list is emptied once its rows are tables), and holds one
    stored table at a time: what a chunk keeps in memory is about its rows, twice."""
    import pyarrow.compute as pc

    ids = sorted(r.run_id for r in records)
    report.bars_processed += sum(r.bars_processed for r in results)
    by_id = {r.run_id: r for r in records}
    metrics = pa.concat_tables(
        [
            _metrics(
                by_id[rid],
                [r for r in results if rid in r.task.run_ids],
                len(instruments_of(by_id[rid], known)),
            )
            for rid in ids
        ]
    )
    report.failed += [
        f"run {rid}, {r.task.instrument}: {e}"
        for r in results
        for rid, e in zip(r.task.run_ids, r.errors, strict=True)
        if e is not None and rid in by_id
    ]
    daily, fills = build_tables(results, None, set())  # no batch column: not compared
    results.clear()
    tables = {"daily": daily, "fills": fills, "metrics": metrics}
    del daily, fills, metrics
    for name, order, where in (
        ("daily", ("run_id", "instrument", "date"), ("date",)),
        ("fills", ("run_id", "instrument", "ts"), ("ts",)),
        ("metrics", ("run_id", "scope", "instrument"), ("scope",)),
    ):
        b = _plain(tables.pop(name))  # one table of each side at a time
        a = _stored(store, name, ids, order).select(b.column_names)
        report.rows_compared += b.num_rows
        if _same(a, b):  # the whole chunk at once: the expected case
            continue
        for rid in ids:  # find the runs that differ, and where
            d = _first_difference(
                rid,
                name,
                a.filter(pc.equal(a["run_id"], rid)),
                b.filter(pc.equal(b["run_id"], rid)),
                where,
            )
            if d is not None:
                report.differences.append(d)
    report.differences.sort(key=lambda d: (d.run_id, ("daily", "fills", "metrics").index(d.table)))


def verify(
    store: Any, run_ids: Sequence[str] | None = None, progress: Reporter = NULL
) -> VerifyReport:
    """Recompute runs from scratch in memory; compare daily, fills and metrics bit for bit.

    Runs are recomputed together, in chunks of about :data:`VERIFY_BAR_STEPS`
    bar-steps (the engine's batches give each run the bits it gets alone), and each
    table of a chunk is read from the store with one query.
    """
    t0 = time.perf_counter()
    records = active_runs(store)
    if run_ids:
        chosen = [rc.by_prefix(records, q) for q in run_ids]
        records = list({r.run_id: r for r in chosen}.values())
    report = VerifyReport(runs=len(records))
    known = store.instruments()
    for chunk in _chunks(store, [r for r in records if not r.fork]):
        results = execute(store, plan_runs(store, chunk, from_scratch=True), progress)
        _compare(store, chunk, results, known, report)
    for rec in (r for r in records if r.fork):
        from incbt.fork import fresh_results

        _compare(store, [rec], fresh_results(store, rec), known, report)
    report.seconds = time.perf_counter() - t0
    return report


def _metrics(rec: rc.RunRecord, results: list, n_instruments: int) -> pa.Table:
    """Metrics of freshly computed results, as the store defines them."""
    from incbt.engine import state_width
    from incbt.query import METRICS_SCHEMA

    per_inst = []
    rows: dict[str, list] = {f.name: [] for f in METRICS_SCHEMA}
    if not results:  # a run with no bars yet has no metrics, as in the store
        return pa.table(rows, schema=METRICS_SCHEMA)
    inst_vals = {}
    for r in results:
        sw = state_width(resolve_strategy(r.task.strategy, r.task.source))
        k = r.task.run_ids.index(rec.run_id)
        if r.errors[k] is not None:  # a failed pair has no metrics, as in the store
            continue
        inst_vals[r.task.instrument] = finalize(r.states[k, -1, sw:])
        per_inst.append((r.task.instrument, r.days, r.daily["pnl"][k]))
    if not inst_vals:  # every instrument failed: no portfolio either, as in the store
        return pa.table(rows, schema=METRICS_SCHEMA)
    days, pnl = portfolio_pnl(per_inst)
    cap = np.array([rec.exec_params["notional"] * max(1, n_instruments)])
    z = np.zeros((1, len(days)))
    acc = fold(initial_acc(1), pnl[None, :], cap, equity=None, fills=z, fees=z, turnover=z)
    port = finalize(acc[0, -1]) if len(days) else finalize(np.zeros(acc.shape[-1]))
    totals = np.zeros(3)
    for inst in sorted(inst_vals):
        totals += inst_vals[inst][3:6]
    port[3:6] = totals
    for inst, vals in [(PORTFOLIO, port)] + sorted(inst_vals.items()):
        rows["run_id"].append(rec.run_id)
        rows["instrument"].append(inst or None)
        rows["scope"].append("portfolio" if not inst else "instrument")
        for i, name in enumerate(METRICS):
            rows[name].append(int(vals[i]) if name in ("fills", "days") else float(vals[i]))
    t = pa.table(rows, schema=METRICS_SCHEMA)
    return t.sort_by([("scope", "ascending"), ("instrument", "ascending")])


__all__ = [
    "Difference",
    "StaleRow",
    "UpdateResult",
    "VerifyReport",
    "status",
    "update",
    "verify",
]
