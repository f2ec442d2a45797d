"""Walk-forward analysis of a sweep: choose a grid point on a window of days, judge it on
the days after.

The sweep's trading days (those its runs have daily rows on) are cut into folds: a train
window of ``train`` days (from the first day on, growing, when ``anchored``), then a test
window of the ``test`` days that follow; the next fold starts ``test`` days later, so the
test windows tile the days after the first train window (the last one may be shorter).
In each fold the sweep's runs are ranked by ``metric`` over the train window, as
``sweep.leaderboard(metric, start=, end=)`` ranks them, and the best one's statistics
over the test window are the fold's row: what choosing a parameter set on the past would
have given on the days after it, fold after fold (out of sample), against how the best in
hindsight did.

The statistics are the ``stats`` query's (README.md), bit for bit ``sweep.stats(start=,
end=)``'s over each window: the query's day-level part (each run's portfolio pnl, fills,
fees, turnover and instruments held, a row per day) is read once for all folds, and only
its windowed part runs per window, over those rows.
"""

from __future__ import annotations

from typing import Any

from incbt.errors import InternalError, UsageError, flag, whole

# where the stats query's day-level part ends: what follows windows its days
_WINDOWED = "), e AS ("
# the stats columns a fold shows for its test window (its dates and days are the fold's)
_SHOWN_FROM = "total_pnl"


def folds(n: int, train: int, test: int, anchored: bool) -> list[tuple[int, int, int, int]]:
    """The folds over ``n`` days as (train first, train last, test first, test last)
    indices, inclusive: train windows of ``train`` days (from day 0 when ``anchored``),
    each followed by up to ``test`` days; none where ``n <= train``."""
    out = []
    k = 0
    while train + k * test < n:
        lo = 0 if anchored else k * test
        hi = train + k * test - 1
        out.append((lo, hi, hi + 1, min(hi + test, n - 1)))
        k += 1
    return out


def _split(sql: str) -> tuple[str, str]:
    """The stats query over a sweep's runs (``sweep_stats_sql``) as its day-level part (a
    query of its ``all_days`` rows with each run's capital) and its windowed part (a
    query over tables ``_wf_days`` and ``_wf_capital``)."""
    if sql.count(_WINDOWED) != 1 or "all_days AS (" not in sql:
        raise InternalError("the stats query's parts (its CTEs all_days and e) are not found")
    head, tail = sql.split(_WINDOWED)
    days = (
        f"{head})\nSELECT a.run_id, a.date, a.pnl, a.fills, a.fees, a.turnover, a.holding, "
        "a.run_days, c.capital FROM all_days a JOIN c ON c.run_id = a.run_id"
    )
    windowed = (
        "WITH c AS (SELECT run_id, capital FROM _wf_capital), all_days AS (SELECT run_id, "
        "date, pnl, fills, fees, turnover, holding, run_days FROM _wf_days"
        f"{_WINDOWED}{tail}"
    )
    return days, windowed


def walk_forward(
    sweep: Any,
    train: int,
    test: int,
    metric: str = "sharpe",
    anchored: bool = False,
    start: Any = None,
    end: Any = None,
) -> Any:
    """The folds of a walk-forward analysis of ``sweep`` (a ``SweepResult``), a row each:
    see the module's docstring, and :meth:`incbt.sweep.SweepResult.walk_forward`."""
    import functools

    import pyarrow as pa
    import pyarrow.compute as pc

    from incbt.queries import param_defaults
    from incbt.query import run_sql_fresh, session
    from incbt.runs import stats_window
    from incbt.sweep import STATS_RANKED, TRADES_RANKED, best_first, sweep_stats_sql

    train_days = whole(train, "train (the days of each train window)", at_least=1)
    test_days = whole(test, "test (the days of each test window)", at_least=1)
    if train_days is None or test_days is None:
        raise UsageError("give train and test: the days of each train and test window")
    flag(anchored, "anchored")
    if metric not in STATS_RANKED:
        what = "a trade statistic, which has no window" if metric in TRADES_RANKED else "unknown"
        raise UsageError(
            f"metric {metric!r} is {what}: a walk-forward ranks each train window by a value "
            f"of Sweep.stats() over it: {', '.join(STATS_RANKED)}"
        )
    window = stats_window(start, end)
    sweep._here()
    store = sweep.store
    day_sql, windowed_sql = _split(sweep_stats_sql())
    defaults = param_defaults(day_sql)
    ids = sweep.run_ids
    rows = run_sql_fresh(
        functools.partial(store._session, None, day_sql, ids),  # (a dry run's: unregistered)
        day_sql,
        {**defaults, "sweep": sweep.name},
        name="walk_forward",
    )
    lo, hi = window.get("start", defaults["start"]), window.get("end", defaults["end"])
    dates = rows.column("date")
    kept = pc.and_(
        pc.greater_equal(dates, pa.scalar(lo).cast(pa.date32())),
        pc.less_equal(dates, pa.scalar(hi).cast(pa.date32())),
    )
    days = pc.unique(dates.filter(kept)).sort().to_pylist()
    cut = folds(len(days), train_days, test_days, anchored)
    if not days:  # no train window can help (QA 2026-12-08: "give a smaller train" said)
        every = pc.unique(dates).sort().to_pylist()
        if not ids:  # (no update brings back a dropped run)
            raise UsageError(
                f"sweep {sweep.name!r} has no run left (each was dropped): nothing to fold. "
                f"Fix: `incbt sweep STRATEGY --name {sweep.name} --resume` registers them "
                f"again (computed from scratch), or drop the sweep (incbt drop --sweep "
                f"{sweep.name})"
            )
        if not every:
            fix = (
                "run the sweep without dry_run first (a dry run computes nothing)"
                if sweep.executor == "dry run"
                else "bring its runs up to date (incbt update; a run starting after the last "
                "day of bars has its first day once bars reach its start)"
            )
            raise UsageError(
                f"sweep {sweep.name!r} has no day of results yet: nothing to fold. Fix: {fix}"
            )
        given = (
            f"from {lo} to {hi}"
            if "start" in window and "end" in window
            else f"on or after {lo}"
            if "start" in window
            else f"on or before {hi}"
        )
        raise UsageError(
            f"sweep {sweep.name!r} has no day {given} (its days: {every[0]} to "
            f"{every[-1]}). Fix: give a start and an end around its days"
        )
    if not cut:
        where = " in the window given" if window else ""
        fixes = [f"give a train of at most {len(days) - 1} day(s)"] if len(days) > 1 else []
        # (over one day no train leaves a day to test: "give a smaller train" was said)
        fixes += ["give a window of more days"] if window else []
        fixes += ["bring the sweep's runs up to date (incbt update)"]
        raise UsageError(
            f"sweep {sweep.name!r} has {len(days)} day(s), {days[0]} to {days[-1]}{where}: "
            f"a train window of {train_days} leaves no day to test. Fix: {', or '.join(fixes)}"
        )
    capital = rows.select(["run_id", "capital"]).group_by(["run_id", "capital"]).aggregate([])
    # the sweep's runs alone, as the day-level part: the windowed part reads no results
    # file, yet names daily and fills in its comments (QA 2026-12-08: a session of every
    # results file of the store failed on another run's damaged one, and cost a table a
    # file of them all)
    ctx = session(
        store.path,
        store.catalog,
        only_for=windowed_sql,
        extra={"_wf_days": lambda: rows.drop_columns(["capital"]), "_wf_capital": lambda: capital},
        runs=ids,
    )

    @functools.cache
    def stats(first: int, last: int) -> pa.Table:
        """Every run's statistics over days[first..last], best first by ``metric`` (as a
        leaderboard ranks them)."""
        params = {**defaults, "start": str(days[first]), "end": str(days[last])}
        return best_first(ctx.sql(windowed_sql, param_values=params).to_arrow_table(), metric)

    grid = sweep.grid
    ps = [c for c in grid.column_names if c.startswith("p_")]
    point = {r["run_id"]: r for r in grid.select(["run_id", *ps]).to_pylist()}
    out: list[dict[str, Any]] = []
    total = 0.0
    for k, (a, b, c, d) in enumerate(cut, 1):
        ranked = stats(a, b)
        best = ranked.slice(0, 1).to_pylist()
        chosen = best[0]["run_id"] if best and best[0][metric] is not None else None
        after = stats(c, d)
        rank, mine = None, None
        if chosen is not None:
            got = after.column("run_id").to_pylist()
            if chosen in got:  # (a run with no day in the test window has no row there)
                rank = got.index(chosen) + 1
                mine = after.slice(rank - 1, 1).to_pylist()[0]
        row: dict[str, Any] = {
            "fold": k,
            "train_start": days[a],
            "train_end": days[b],
            "train_days": b - a + 1,
            "test_start": days[c],
            "test_end": days[d],
            "test_days": d - c + 1,
            "run_id": chosen,
            **{p: point.get(chosen, {}).get(p) for p in ps},
            f"train_{metric}": best[0][metric] if chosen is not None else None,
            "test_rank": rank,
            "runs_ranked": after.num_rows,
        }
        names = after.column_names
        for col in names[names.index(_SHOWN_FROM) :]:
            row[col] = None if mine is None else mine[col]
        if mine is not None and mine["total_pnl"] is not None:
            total += mine["total_pnl"]
        row["test_pnl_to_date"] = total
        out.append(row)
    schema = _schema(grid.schema, ps, metric, stats(*cut[0][2:]).schema)
    return pa.Table.from_pylist(out, schema=schema)


def _schema(grid: Any, ps: list[str], metric: str, stats: Any) -> Any:
    """The folds' columns and types: the fold, its windows, the chosen run and its grid
    point, its train value and test rank, its test statistics (the stats query's types).
    The chosen run's columns are nullable, whatever the stats query and the grid declare
    (max_drawdown_days is never NULL there): a fold with no run, or whose run has no day
    in its test window, holds NULLs in them (QA 2026-12-08: such a table failed to write
    as Parquet, "declared non-nullable but contains nulls")."""
    import pyarrow as pa

    names = stats.names
    return pa.schema(
        [
            ("fold", pa.int64()),
            ("train_start", pa.date32()),
            ("train_end", pa.date32()),
            ("train_days", pa.int64()),
            ("test_start", pa.date32()),
            ("test_end", pa.date32()),
            ("test_days", pa.int64()),
            ("run_id", pa.string()),
            *(grid.field(p).with_nullable(True) for p in ps),
            (f"train_{metric}", stats.field(metric).type),
            ("test_rank", pa.int64()),
            ("runs_ranked", pa.int64()),
            *(stats.field(c).with_nullable(True) for c in names[names.index(_SHOWN_FROM) :]),
            ("test_pnl_to_date", pa.float64()),
        ]
    )
