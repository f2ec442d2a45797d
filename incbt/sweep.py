"""Sweeps: named sets of runs from a parameter grid or a random sample of it.

``sweep(store, "sma_cross", {"fast": [5, 10], "slow": "50:200:50"}, name="s1")``
registers one run per valid grid point (combinations a strategy rejects, like
fast >= slow, are skipped and counted) and brings them all up to date: the
engine runs every parameter set of an instrument in one pass over its bars,
in-process or on Ray. The sweep's record (name, spec, points, runs) is in the
catalog, so ``resume=True`` continues it: completed runs are not recomputed,
interrupted ones go on from their snapshots, points added by a wider grid are
computed, and runs made stale by new data or corrections are brought up to date.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import numbers
import os
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from incbt.catalog import runs as rc
from incbt.engine import params_from_dict
from incbt.engine.strategy_api import _coerce, shown_value
from incbt.errors import (
    InternalError,
    NotFoundError,
    StoreError,
    StrategyError,
    UsageError,
    every_instrument,
    names,
)
from incbt.execute import resolve_strategy
from incbt.progress import NULL, Reporter
from incbt.results.metrics import RANKED, SMALLER_FIRST
from incbt.runs import EXEC_NAMES, UpdateReport, bring_up_to_date, register_many, resolve_in

# A sweep uses Ray only when asked (workers= or address=). Measured on 2 cores
# (benchmarks/README.md, "sweep"): the in-process executor already runs a thread
# per core, and a local Ray was 1.1-1.5x slower at every plan size from 0.3 M to
# 197 M bar-steps, plus ~2-3.5 s to start; there is no size where it pays off on
# one such machine. The ray_threshold setting (INCBT_RAY_THRESHOLD) turns it on.
RAY_THRESHOLD: int | None = None


# the numbers of Sweep.stats() a leaderboard or a pivot may rank by, and those whose
# smallest is best
STATS_RANKED = (
    *("total_pnl", "total_return", "annual_return", "annual_volatility", "sharpe"),
    *("sortino", "max_drawdown", "max_drawdown_pct", "calmar", "max_drawdown_days"),
    *("win_days_pct", "best_day", "worst_day", "avg_win_day", "avg_loss_day"),
    *("profit_factor", "fills", "fees", "turnover", "exposure_pct"),
)
STATS_SMALLER_FIRST = SMALLER_FIRST | {"max_drawdown_pct", "max_drawdown_days", "annual_volatility"}
# the numbers of Sweep.trade_stats() a leaderboard or a pivot may rank by (the largest
# first; its profit_factor, over trades, is not one: that name is the stats query's, over
# days)
TRADES_RANKED = (
    *("trades", "closed_trades", "win_rate_pct", "best_trade_pct", "worst_trade_pct"),
    *("avg_winning_trade_pct", "avg_losing_trade_pct", "expectancy"),
)


def sweep_stats_sql() -> str:
    """The built-in ``stats`` query over the runs of sweep ``$sweep`` (its CTE ``sel``),
    not over run ``$run``: :meth:`SweepResult.stats` and the walk-forward's."""
    from incbt.queries import BUILTIN, _read

    sql = _read(BUILTIN / "stats.sql")
    one = "SELECT run_id FROM runs WHERE run_id = $run"  # the query's set of runs
    if one not in sql:
        raise InternalError("the stats query's set of runs (its CTE sel) is not found")
    return sql.replace(one, "SELECT run_id FROM sweeps WHERE sweep = $sweep")


def best_first(t: Any, metric: str) -> Any:
    """The rows of ``t`` (a table of runs with ``metric`` and ``run_id``) best first by
    ``metric``: the largest, the smallest of STATS_SMALLER_FIRST; NULL (no day yet, or no
    value: a sortino without a losing day, a win rate without a closed trade) last, then
    by run id. A leaderboard's order, and a walk-forward's choice."""
    import pyarrow.compute as pc

    order = "ascending" if metric in STATS_SMALLER_FIRST else "descending"
    keys = [(metric, order, "at_end"), ("run_id", "ascending", "at_end")]
    return t.take(pc.sort_indices(t, sort_keys=keys))


def ranked_metric(metric: str, whose: str) -> None:
    """Refuse a ``metric`` that is neither a metrics column, a value of the stats query
    nor a trade statistic, naming them (``whose``: what the stats query's values are, as
    the caller says them)."""
    if metric not in METRICS and metric not in STATS_RANKED and metric not in TRADES_RANKED:
        raise UsageError(
            f"unknown metric {metric!r}; one of {', '.join(METRICS)} (the metrics "
            f"table's), {', '.join(m for m in STATS_RANKED if m not in METRICS)} ({whose}) "
            f"or {', '.join(TRADES_RANKED)} (the trade statistics: README.md, Trades)"
        )


# A leaderboard's last column: how many of a run's instruments failed (a strategy error:
# they hold no rows, and the portfolio is made of the others)
FAILED_PAIRS = "coalesce(f.failed_pairs, 0) AS failed_pairs"
FAILED_JOIN = (
    "LEFT JOIN (SELECT run_id AS f_run, count(*) AS failed_pairs FROM failed GROUP BY run_id) f "
    "ON f.f_run = r.run_id"
)


# Sweep.trade_stats reads and pairs the fills of a batch of runs of about this many
# fills at a time (~100 bytes a fill as read, a few times that while paired): QA
# 2026-12-07 measured 1.2 GB for a 20-point sweep of 2 M fills read at once
FILLS_A_READ = 500_000


@dataclass
class SweepResult:
    """A sweep in a store: its runs and their metrics are one attribute away."""

    name: str
    # the runs as the sweep's record lists them; ``run_ids`` follows each to the run
    # that replaced it (its strategy's code changed) and leaves out dropped ones
    recorded: list[str]
    added: int  # runs this call added to the sweep
    # of those, the runs the store held already (another sweep's or a backtest's: their
    # results are the sweep's as they are, nothing is recomputed for them)
    reused: int = 0
    created: bool = False  # this call created the sweep (resume=True of a name not yet there)
    skipped: list[str] = field(default_factory=list)  # grid points the strategy rejects
    report: UpdateReport | None = None
    executor: str = "in this process"
    seconds: float = 0.0
    store: Any = field(default=None, repr=False)
    # the grid points this call took from the sweep's grid (parameters a resume left out)
    kept: dict[str, Any] = field(default_factory=dict)
    declared: list[str] = field(default_factory=list)  # the strategy's parameters, in order
    again: int = 0  # of the sweep's runs before this call, those dropped since: recomputed
    # of the sweep's runs before this call, those an interrupted call left never computed
    # (in its record only): computed now ("0 new" said nothing of them: QA 2026-12-06)
    unfinished: int = 0
    # a --random sample smaller than asked: why (None: as asked, or no sample)
    short: str | None = None
    # the sweep's record's creation stamp: another sweep given its name later is not this
    # one (None: not known, a dry run of a new sweep)
    created_at: float | None = None
    # of this call's points (a resume's -g), those the sweep held already
    given_held: int = 0

    @property
    def run_ids(self) -> list[str]:
        """The sweep's runs now, as its record in the store lists them (grown by a resume
        since, say): a run replaced since (its strategy's code changed, then ``update``)
        by the run that replaced it; a dropped one left out. Runs not yet committed (an
        interrupted sweep) are listed as recorded; a dry run's, as it would make them."""
        if self.executor == "dry run":  # as it would make them: a run dropped since
            return list(self.recorded)  # included, computed again (QA 2026-12-06: 3 of 4)
        rec = get_sweep(self.store, self.name)
        if self._taken(rec):
            self._here()  # another sweep of its name: said (QA 2026-12-06)
        with self.store.catalog.env.read() as txn:
            now = rc.standing(
                self.store.catalog, txn, self.recorded if rec is None else rec["runs"]
            )
        return [rid for _, rid in now]

    def _here(self) -> None:
        """Refuse (NotFoundError) reading a sweep dropped since this object was made: its
        tables were empty, with DataFusion's schema dump for a leaderboard (QA
        2026-12-05)."""
        if self.executor == "dry run":
            return
        now = get_sweep(self.store, self.name)
        if now is None:
            raise NotFoundError(
                f"sweep {self.name!r} is not in the store any more (dropped); "
                "`store.sweeps()` lists those there are"
            )
        if self._taken(now):
            raise NotFoundError(  # QA 2026-12-06: the object read the new sweep as its own
                f"sweep {self.name!r} was dropped, and another sweep has its name now; "
                "`store.sweeps()` has it"
            )

    def _taken(self, now: dict[str, Any] | None) -> bool:
        """``now``, the record under this sweep's name, is another sweep's (this one was
        dropped and the name given again)."""
        return (
            now is not None
            and self.created_at is not None
            and now.get("created") != self.created_at
        )

    def _params(self) -> dict[str, Any]:
        """The sweep's parameters with a value of each (their types: its first run's)."""
        ids = self.run_ids
        if not ids:
            return {}
        with self.store.catalog.env.read() as txn:
            rec = rc.get_run(self.store.catalog, txn, ids[0])
        return dict(rec.params) if rec is not None else {}

    def parameters(self) -> list[str]:
        """The strategy's parameters, in the order it declares them (as a run records
        them, by name, when the strategy cannot be loaded)."""
        self._here()
        if not self.declared and self.run_ids:  # a sweep of the store (Store.sweeps): its
            # strategy's order, not the record's sorted names (QA 2026-12-07)
            with self.store.catalog.env.read() as txn:
                rec = rc.get_run(self.store.catalog, txn, self.run_ids[0])
            if rec is not None:  # (a user's file may raise anything as it loads)
                with contextlib.suppress(Exception):  # a file gone or changed: by name
                    strat = resolve_strategy(rec.strategy, rec.source, rec.code_version, False)
                    self.declared = [p.name for p in strat.params]
        return self.declared or list(self._params())

    def _typed(self, t: Any) -> Any:
        """``t`` with the p_* columns of its strategy's parameters alone, in the order it
        declares them (the ``runs`` table's are by name), integer ones as integers (the
        ``runs`` table holds every strategy's parameters: a name another strategy
        declares a float is a float column there)."""
        import pyarrow as pa

        mine = self._params()
        if mine:
            t = t.drop_columns(
                [c for c in t.column_names if c.startswith("p_") and c[2:] not in mine]
            )
        for k, v in mine.items():
            c = f"p_{k}"
            if isinstance(v, int) and c in t.column_names:
                t = t.set_column(t.column_names.index(c), c, t.column(c).cast(pa.int64()))
        names = t.column_names
        at = [i for i, c in enumerate(names) if c.startswith("p_")]
        if at:  # where the first was, as the strategy declares them (QA: `grid` by name)
            ps = [f"p_{k}" for k in self.parameters() if f"p_{k}" in names]
            ps += [c for c in names if c.startswith("p_") and c not in ps]
            rest = [c for c in names if not c.startswith("p_")]
            t = t.select([*rest[: at[0]], *ps, *rest[at[0] :]])
        return t

    @property
    def grids(self) -> list[dict[str, Any]]:
        """The grids that made and grew the sweep, oldest first, as given (each parameter's
        values, or its ``START:STOP:STEP`` range; a resume's grid with the values it kept
        filled in: ``{"fast": [150]}`` on a grid of slow 50,100 is recorded with them);
        :attr:`grid` is its points."""
        if self.executor == "dry run":
            return []
        self._here()
        rec = get_sweep(self.store, self.name)
        if rec is None:  # dropped since: refused, as _here says it
            self._here()
            return []
        return [dict(g) for g in recorded_grids(rec)]

    @property
    def grid(self) -> Any:
        """One row per grid point: run id, parameters (p_*), portfolio metrics."""
        self._here()
        return self._typed(
            self.store.sql(
                "SELECT s.point, r.*, m.sharpe, m.total_pnl, m.max_drawdown, "
                "m.fills, m.fees, m.turnover FROM sweeps s JOIN runs r USING (run_id) "
                # a run with no portfolio row (every pair failed: found 2026-12-05) stays
                "LEFT JOIN metrics m ON m.run_id = r.run_id AND m.scope = 'portfolio' "
                "WHERE s.sweep = $s ORDER BY s.point",
                params={"s": self.name},
            )
        )

    def stats(self, start: Any = None, end: Any = None) -> Any:
        """Each run's portfolio statistics, as vectorbt's ``stats()`` per column: a row
        per grid point (point, run_id, the parameters p_*, then the ``stats`` query's
        values: README.md says each), bit for bit each run's ``run.stats()``; a run with
        no day yet has its statistics NULL. ``start``, ``end``: over the days of that
        window alone (``run.stats(start=, end=)``: in-sample, out-of-sample). A pyarrow
        Table (``.to_pandas()``)."""
        from incbt.queries import param_defaults
        from incbt.query import run_sql_fresh
        from incbt.runs import stats_window

        window = stats_window(start, end)
        self._here()
        sql = sweep_stats_sql()
        ps = "".join(f'r."p_{k}", ' for k in self.parameters())
        query = (
            f"SELECT sw.point, sw.run_id, {ps}st.* EXCLUDE (run_id) "
            "FROM sweeps sw JOIN runs r ON r.run_id = sw.run_id "
            f"LEFT JOIN ({sql.rstrip().rstrip(';')}) st ON st.run_id = sw.run_id "
            "WHERE sw.sweep = $sweep ORDER BY sw.point"
        )
        # the session reads the daily rows of these runs alone: runs an update replaced
        # meanwhile (a code change) would read as NULL, so it runs again on the new ones
        # (QA 2026-12-07, read in the code)
        for _ in range(3):
            ids = self.run_ids
            t = run_sql_fresh(
                functools.partial(self.store.session, only_for=query, runs=ids),
                query,
                {**param_defaults(sql), "sweep": self.name, **window},
                name="stats",
            )
            if self.run_ids == ids:
                break
        return self._typed(t)

    def trade_stats(self) -> Any:
        """Each run's trade statistics, as :meth:`Run.trade_stats` (README.md, Trades): a
        row per grid point (point, run_id, the parameters p_*, then trades, closed_trades,
        ..., expectancy). The runs' fills are read and paired a batch of runs at a time
        (about ``FILLS_A_READ`` fills: memory does not grow with the sweep). A pyarrow
        Table (``.to_pandas()``)."""
        return self._trade_stats(self.grid)

    def _trade_stats(self, grid: Any) -> Any:
        """:meth:`trade_stats`, given :attr:`grid` (its runs, their fills counted)."""
        from incbt.query import run_sql_fresh
        from incbt.results.trades import (
            LAST_DAYS_SQL,
            marks_of,
            trade_stats,
            trade_stats_table,
            trades_table,
        )

        ids = self.run_ids

        def read(sql: str, runs: list[str]) -> Any:
            return run_sql_fresh(
                functools.partial(self.store.session, only_for=sql, runs=runs), sql, {}
            )

        @functools.cache
        def last_days() -> Any:
            # each instrument's last day in the runs: theirs alike (one universe and start)
            return read(LAST_DAYS_SQL.format(where=""), ids)

        def marks(instruments: list[str]) -> dict[str, tuple[int, float]]:
            return marks_of(self.store, last_days(), instruments)

        stats: dict[str, dict[str, Any]] = {}
        order = grid.column("run_id").to_pylist()
        counts = [n or 0 for n in grid.column("fills").to_pylist()]
        batch: list[str] = []
        held = 0
        for k, (rid, n) in enumerate(zip(order, counts, strict=True)):
            batch.append(rid)
            held += n
            if held < FILLS_A_READ and k + 1 < len(order):
                continue
            fills = read(
                "SELECT run_id, instrument, ts, qty, price, fee FROM fills "
                "ORDER BY run_id, instrument, ts",
                batch,
            )
            trades = trades_table(fills, marks)
            # each run's rows: consecutive (the fills are read in run order)
            by_run = trades.column("run_id").to_numpy(zero_copy_only=False)
            cuts = [0, *(np.flatnonzero(by_run[1:] != by_run[:-1]) + 1).tolist(), len(by_run)]
            span = {by_run[a]: (a, b) for a, b in itertools.pairwise(cuts) if b > a}
            for r in batch:
                a, b = span.get(r, (0, 0))
                stats[r] = trade_stats(trades.slice(a, b - a))
            batch, held = [], 0
        ps = [c for c in grid.column_names if c.startswith("p_")]
        out = grid.select(["point", "run_id", *ps])
        table = trade_stats_table([stats[r] for r in order])
        for f in table.schema:
            out = out.append_column(f, table.column(f.name))
        return out

    def leaderboard(
        self, metric: str = "sharpe", n: int = 10, start: Any = None, end: Any = None
    ) -> Any:
        """The best ``n`` runs by a portfolio metric (max_drawdown and fees: smallest
        first), or by a value of :meth:`stats` (sortino, calmar, total_return, ...:
        max_drawdown_pct, max_drawdown_days and annual_volatility smallest first).
        ``start``, ``end``: ranked by the values of :meth:`stats` over that window of
        days (choose in-sample, then check out of sample)."""
        import numbers

        # a NumPy integer too (QA 2026-12-08: n=np.int64(3), a notebook's count, was
        # refused as "not np.int64(3)"; every other count takes it)
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise UsageError(f"n: give how many runs to list (0 or more), not {n!r}")
        n = int(n)
        if start is not None or end is not None:
            return self._stats_leaders(metric, n, self._windowed(metric, start, end))
        if metric not in METRICS:
            return self._stats_leaders(metric, n)
        self._here()
        order = "ASC" if metric in SMALLER_FIRST else "DESC"
        cols = ", ".join(
            f"m.{c}"
            for c in dict.fromkeys([metric, "sharpe", "total_pnl", "max_drawdown", "fills"])
        )
        ps = "".join(f'r."p_{k}", ' for k in self.parameters())
        return self._typed(
            self.store.sql(
                f"SELECT r.run_id, r.params, {ps}{cols}, {FAILED_PAIRS} "
                "FROM sweeps s JOIN runs r USING (run_id) "
                "LEFT JOIN metrics m ON m.run_id = r.run_id AND m.scope = 'portfolio' "
                f"{FAILED_JOIN} "
                f"WHERE s.sweep = $s ORDER BY m.{metric} {order} NULLS LAST, r.run_id "
                "LIMIT $n",
                params={"s": self.name, "n": n},
            )
        )

    def pivot(
        self,
        x: str,
        y: str,
        metric: str = "sharpe",
        agg: str | None = None,
        start: Any = None,
        end: Any = None,
    ) -> Any:
        """A pandas table of ``metric`` with parameter ``y`` down and ``x`` across.

        A cell holds one run's value; where several runs share a cell (a grid of more
        parameters than x and y), ``agg`` says how to combine them ("max", "min",
        "mean", "median"), or the call is refused. ``start``, ``end``: the values of
        :meth:`stats` over that window of days.
        """
        if start is not None or end is not None:
            g = self._windowed(metric, start, end).to_pandas()
        else:
            g = (self.grid if metric in METRICS else self._stats_of(metric)).to_pandas()
        params = [c.removeprefix("p_") for c in g.columns if c.startswith("p_")]
        for p in (x, y):
            if p not in params:
                raise UsageError(
                    f"sweep {self.name!r} has no parameter {p!r}; it has {', '.join(params)}"
                )
        if x == y:
            raise UsageError(f"pivot two different parameters, not {x!r} twice")
        if agg not in (None, "max", "min", "mean", "median"):
            raise UsageError(f"agg {agg!r}: give max, min, mean or median")
        if agg is None:
            n = g.groupby([f"p_{y}", f"p_{x}"]).size()
            if (n > 1).any():
                (yv, xv), k = next((i, c) for i, c in n.items() if c > 1)
                raise UsageError(
                    f"{k} runs of sweep {self.name!r} share the cell {y}={yv:g}, {x}={xv:g} (other "
                    "parameters or execution settings differ): give agg='max', 'min', "
                    "'mean' or 'median', or pivot a sweep of those two parameters alone"
                )
            agg = "max"
        # dropna=False: a grid point whose runs failed everywhere is a cell of NaN, not a
        # row or column gone from the heatmap (QA 2026-12-06)
        t = g.pivot_table(
            index=f"p_{y}", columns=f"p_{x}", values=metric, aggfunc=agg, dropna=False
        )
        t.index.name, t.columns.name = y, x  # the parameters' names (QA 2026-12-06: p_fast)
        return t

    def _stats_of(self, metric: str) -> Any:
        """:meth:`stats`, where ``metric`` is one of its numbers, or :meth:`trade_stats`,
        where it is one of those (else refused, naming what may be given)."""
        ranked_metric(metric, "Sweep.stats()'s")
        return self.stats() if metric in STATS_RANKED else self.trade_stats()

    def walk_forward(
        self,
        train: int,
        test: int,
        metric: str = "sharpe",
        anchored: bool = False,
        start: Any = None,
        end: Any = None,
    ) -> Any:
        """Walk-forward analysis: a row per fold, each the run ranked best by ``metric``
        over ``train`` trading days (``leaderboard(metric, start=, end=)``'s first) and
        its statistics over the ``test`` days after them (``stats(start=, end=)``'s row,
        bit for bit); the next fold starts ``test`` days later (``anchored``: every train
        window starts at the first day), so the test windows tile the days after the
        first train window, out of sample. Also the chosen run's grid point (p_*), its
        train value (``train_<metric>``), its rank among the sweep's runs over the test
        window (``test_rank`` of ``runs_ranked``: 1 is what hindsight would have chosen)
        and the test windows' total_pnl summed so far (``test_pnl_to_date``).
        ``start``, ``end``: the days to fold (a holdout kept out). A pyarrow Table.

            >>> sw.walk_forward(train=60, test=20).to_pandas()
        """
        from incbt.walkforward import walk_forward

        return walk_forward(self, train, test, metric, anchored, start, end)

    def _windowed(self, metric: str, start: Any, end: Any) -> Any:
        """:meth:`stats` over a window, where ``metric`` is one of its values (the trade
        statistics have no window: refused)."""
        ranked_metric(metric, "Sweep.stats()'s")
        if metric not in STATS_RANKED:
            raise UsageError(
                f"{metric!r} is a trade statistic, which has no window: rank by a value of "
                f"Sweep.stats() over a window ({', '.join(STATS_RANKED)}), or by {metric!r} "
                "without start and end"
            )
        return self.stats(start, end)

    def _stats_leaders(self, metric: str, n: int, table: Any = None) -> Any:
        """leaderboard by a value of :meth:`stats` (``table``: its values already read,
        over a window): its runs in that order (NULLs last, then by run id), the value
        first after the parameters."""
        import pyarrow as pa

        ranked_metric(metric, "Sweep.stats()'s")
        if table is not None:
            t = table
        elif metric in STATS_RANKED:
            t = self.stats()
        else:  # a trade statistic, with the portfolio's metrics a leaderboard shows
            grid = self.grid
            m = grid.select(["run_id", "sharpe", "total_pnl", "max_drawdown"])
            t = self._trade_stats(grid).join(m, "run_id", join_type="left outer").sort_by("point")
        # each run's params and failed_pairs, as the metrics' leaderboard has them (QA
        # 2026-12-07: a ranking by sortino had no failed_pairs, README's "each run with
        # its failed_pairs")
        more = {
            r["run_id"]: r
            for r in self.store.sql(
                f"SELECT r.run_id, r.params, {FAILED_PAIRS} FROM sweeps s "
                f"JOIN runs r USING (run_id) {FAILED_JOIN} WHERE s.sweep = $s",
                params={"s": self.name},
            ).to_pylist()
        }
        ids = t.column("run_id").to_pylist()
        t = t.append_column(
            "params", pa.array([more.get(i, {}).get("params") for i in ids], pa.string())
        ).append_column(
            "failed_pairs",
            pa.array([more.get(i, {}).get("failed_pairs", 0) for i in ids], pa.int64()),
        )
        ps = [c for c in t.column_names if c.startswith("p_")]
        head = ["run_id", "params", *ps]
        cols = [*head, *dict.fromkeys([metric, "sharpe", "total_pnl", "max_drawdown"])]
        rest = [c for c in t.column_names if c not in cols and c not in ("point", "failed_pairs")]
        t = t.select([*cols, *rest, "failed_pairs"])
        return best_first(t, metric).slice(0, n)

    @property
    def runs(self) -> list[Any]:
        """The sweep's runs (``Run`` objects: metrics, daily, fills, ...), in the order of
        ``run_ids``; a run dropped since is left out."""
        from incbt.runs import Run

        with self.store.catalog.env.read() as txn:
            recs = [rc.get_run(self.store.catalog, txn, r) for r in self.run_ids]
        return [Run(self.store, r) for r in recs if r is not None]

    def report_html(self, path: str | os.PathLike[str], metric: str = "sharpe") -> str:
        """Write the sweep's HTML report (heatmap, leaderboard, best run)."""
        return self.store.report(self.name, path, metric)

    def __repr__(self) -> str:
        try:  # said, not raised (a notebook shows it), as a Run's repr
            self.store.catalog.env.still_here()
        except StoreError:
            why = self.store.catalog.env.unreadable()
            return f"<Sweep {self.name!r}: its store {self.store.path}: {why}>"
        now = None if self.executor == "dry run" else get_sweep(self.store, self.name)
        if self.executor != "dry run" and (now is None or self._taken(now)):
            return f"<Sweep {self.name!r}: dropped>"
        if self.report is None:  # a sweep of the store (Store.sweeps), not a call's result
            return f"<Sweep {self.name!r}: {len(self.run_ids)} run(s)>"
        work = self.report.bars_processed
        where = "on Ray" if self.executor == "ray" else self.executor
        done = (
            f"would compute {work:,} bar-steps"
            if self.executor == "dry run"
            else f"{work:,} bar-steps computed {where}"
        )
        reused = f", {self.reused} of them reused" if self.reused else ""
        skipped = f", {len(self.skipped)} grid point(s) skipped" if self.skipped else ""
        left = f", {self.unfinished} left by an interrupted call" if self.unfinished else ""
        again = f", {self.again} dropped before" if self.again else ""
        # the sweep as it is now; the call's own work as it was (a later resume grows it)
        return (
            f"<Sweep {self.name!r}: {len(self.run_ids)} run(s) now; this call: "
            f"{self.added} new{reused}{left}{again}{skipped}, {done}>"
        )


METRICS = RANKED

# The most grid points a sweep takes (a run each: its record, snapshots and rows). A grid
# of more is refused before any point is built (each a dict: a 10^8-point grid filled this
# machine's 24 GiB), unless --random samples it: then only the sample is built.
MAX_GRID_POINTS = 100_000
NAME_MAX = 200  # characters in a sweep's name, 400 bytes in UTF-8 (LMDB keys: 511 at most)


def check_name(name: str) -> str:
    """A sweep name as given: 1 to NAME_MAX printable characters."""
    if not name.strip():
        raise UsageError("a sweep's name cannot be empty: give --name NAME, or leave it out")
    if len(name) > NAME_MAX or len(name.encode()) > 2 * NAME_MAX or not name.isprintable():
        raise UsageError(
            f"sweep name {name[:40]!r}{'...' if len(name) > 40 else ''} must be 1 to "
            f"{NAME_MAX} printable characters"
        )
    if len(name) == 16 and all(c in "0123456789abcdef" for c in name):
        raise UsageError(
            f"sweep name {name!r} looks like a run id (16 hex digits), which `incbt report` "
            "and `verify` would confuse with one: give another --name"
        )
    return name


MAX_RANGE_VALUES = 10**15  # values of one START:STOP:STEP range (it is never listed)


class Steps(Sequence[Any]):
    """The values of a ``START:STOP:STEP`` range, computed when indexed: a range too long
    to list still gives --random its values by index."""

    def __init__(self, start: Decimal, step: Decimal, n: int, kind: type) -> None:
        self.start, self.step, self.n, self.kind = start, step, n, kind

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.kind(self.start + i * self.step)


def parse_values(spec: str, kind: type, name: str = "") -> Sequence[int | float]:
    """``V1,V2,...`` or ``START:STOP:STEP`` (STOP included when a step lands on it), of
    the parameter ``name``."""
    spec = spec.strip()
    try:
        if ":" in spec:
            if "_" in spec:  # Decimal reads 20_0 as 200, which no one typing it meant
                raise InvalidOperation
            parts = [Decimal(x) for x in spec.split(":")]
            if len(parts) != 3 or not all(p.is_finite() for p in parts):
                raise UsageError(f"grid range {spec!r}: use START:STOP:STEP (three numbers)")
            if parts[2] <= 0 or parts[1] < parts[0]:
                raise UsageError(
                    f"grid range {spec!r}: use START:STOP:STEP with STEP > 0 and STOP >= START"
                )
            if kind is int and any(p != p.to_integral_value() for p in (parts[0], parts[2])):
                raise UsageError(
                    f"grid range {spec!r}: an integer parameter takes integer START and STEP"
                )
            n = int((parts[1] - parts[0]) / parts[2]) + 1
            if n > MAX_RANGE_VALUES:
                many = f"{n:,}" if n < 10**21 else "more than 10^21"
                raise UsageError(
                    f"grid range {spec!r} has {many} values; a range takes at most "
                    f"{MAX_RANGE_VALUES:,}: use a larger STEP"
                )
            return Steps(parts[0], parts[2], n, kind)
    except InvalidOperation:  # as a value that is not one (exit 1, as -g fast=abc: QA
        # 2026-12-07, exit 2 here), naming the parameter
        where = f"{name}={spec}" if name else repr(spec)
        raise StrategyError(
            f"grid range {where}: its parts are not numbers: give -g {name or 'NAME'}="
            "START:STOP:STEP (fast=5:20:5) or V1,V2,..."
        ) from None
    items = spec.split(",")
    if len(items) > 1 and not all(x.strip() for x in items):
        raise UsageError(
            f"grid values {spec!r}: a value is missing between commas (or after the "
            "last): give V1,V2,..."
        )
    vals = []
    for x in (x.strip() for x in items if x.strip()):
        where = f"{name}={x}" if name else repr(x)
        try:
            if "_" in x:
                raise InvalidOperation
            d = Decimal(x)
        except InvalidOperation:  # a value, as backtest's -p says it (found by QA 2026-12-05:
            # bad usage, naming neither the parameter nor the value)
            raise StrategyError(
                f"grid value {where} is not a number: give -g {name or 'NAME'}=V1,V2,... "
                "or START:STOP:STEP"
            ) from None
        if not d.is_finite():  # inf, nan: as -p says them (an OverflowError, exit 3, before)
            raise StrategyError(f"grid value {where} is not finite: give finite numbers")
        vals.append(d)
    if not vals:
        raise UsageError("a grid needs at least one value")
    out: list[int | float] = []
    for v in vals:
        if kind is int:
            if v != v.to_integral_value():  # a parameter's value, as backtest's -p says
                raise StrategyError(
                    f"grid value {name + '=' if name else ''}{v} is not an integer: "
                    f"{'parameter ' + repr(name) if name else 'the parameter'} takes integers"
                )
            out.append(int(v))
        else:
            out.append(float(v))
    return list(dict.fromkeys(out))


def grid_points(
    strategy: Any, grid: Mapping[str, Any], sample: int | None = None, seed: int = 0
) -> tuple[list[dict[str, Any]], list[str]]:
    """Valid parameter dicts of the grid (or ``sample`` of them), and the rejected ones."""
    specs = {p.name: p for p in strategy.params}
    axes = {}
    for name, values in grid.items():
        if name not in specs:
            raise StrategyError(
                f"strategy {strategy.name!r} has no parameter {name!r}; it "
                f"has {', '.join(specs) or 'none'}"
            )
        kind = specs[name].type
        if isinstance(values, int | float) and not isinstance(values, bool):
            values = [values]  # one value
        elif not isinstance(values, str | Iterable) or isinstance(values, Mapping):
            raise UsageError(
                f"grid values of {name!r}: give a list, 'V1,V2,...' or 'START:STOP:STEP', "
                f"not {values!r}"
            )
        axes[name] = (
            parse_values(values, kind, name)
            if isinstance(values, str)
            else _listed(strategy, specs[name], values)
        )
    names = sorted(axes)
    if sample is not None and sample <= 0:
        raise UsageError(f"--random {sample} (random={sample}): give a positive count of points")
    total = math.prod(len(axes[n]) for n in names)
    if total > MAX_GRID_POINTS:
        if sample is None:
            raise UsageError(
                f"the grid has {total:,} points; a sweep takes at most {MAX_GRID_POINTS:,}: "
                "narrow the ranges, or sample it with --random N"
            )
        return _sample_large(strategy, names, axes, total, sample, seed)
    combos = (
        dict(zip(names, c, strict=True)) for c in itertools.product(*(axes[n] for n in names))
    )
    good, bad = _valid(strategy, combos)
    if sample is not None:
        good = random.Random(seed).sample(good, min(sample, len(good)))
    return good, bad


def _large(strategy: Any, grid: Mapping[str, Any], sample: int | None) -> int | None:
    """The number of points of a grid sampled by drawing (too large to build), else None.
    Called once the grid is known good (:func:`grid_points` checked it)."""
    if sample is None:
        return None
    kinds = {p.name: p.type for p in strategy.params}
    sizes = []
    for k, v in grid.items():
        if isinstance(v, str):
            sizes.append(len(parse_values(v, kinds[k], k)))
        else:
            sizes.append(len(v) if isinstance(v, list | tuple) else 1)
    total = math.prod(sizes)
    return total if total > MAX_GRID_POINTS else None


def _no_point(strategy: Any, grid: Mapping[str, Any], sample: int | None, bad: list[str]) -> str:
    """Why a grid gave no point: every point rejected, or (a sample of a grid too large
    to build) every point drawn (found by QA 2026-12-05: it said every point of a grid
    of 10^21 was rejected, having drawn 60)."""
    e_g = f"e.g. {bad[0]}" if bad else ""
    total = _large(strategy, grid, sample)
    if total is None:
        return f"the grid has no valid point: strategy {strategy.name!r} rejects all of them, {e_g}"
    return (
        f"--random {sample}: no valid point in {len(bad):,} draws from the grid's {total:,} "
        f"points (strategy {strategy.name!r} rejected each, {e_g}): narrow the ranges to "
        "where it takes points"
    )


def _short_sample(
    strategy: Any, grid: Mapping[str, Any], sample: int | None, good: list[Any], bad: list[str]
) -> str | None:
    """What a sample smaller than ``--random N`` says (None: it is N points): the grid
    holds fewer valid points, or drawing stopped (found by QA 2026-12-05: said nowhere)."""
    if sample is None or len(good) >= sample:
        return None
    if _large(strategy, grid, sample) is None:
        return (
            f"--random {sample}: the grid has {len(good):,} valid point(s) "
            f"(strategy {strategy.name!r} rejects {len(bad):,}): all of them are taken"
        )
    return (
        f"--random {sample}: {len(good):,} valid point(s) found in {len(good) + len(bad):,} "
        f"draws ({len(bad):,} rejected by strategy {strategy.name!r}, 20 draws a point "
        "asked at most): narrow the ranges to where it takes more points"
    )


def _listed(strategy: Any, spec: Any, values: Iterable[Any]) -> list[int | float]:
    """A parameter's grid values given as a list, each checked as a backtest checks a
    parameter's value (a number of the parameter's type: 5.5 is no value of an integer
    parameter); its range is checked with the whole point (``_valid``)."""
    anyrange = dataclasses.replace(spec, min=None, max=None)
    owner = f"strategy {strategy.name!r} grid"
    out = []
    for v in values:
        try:
            out.append(_coerce(owner, anyrange, v))
        except StrategyError:  # the same error, saying the parameter's range
            try:
                _coerce(owner, spec, v)
            except StrategyError as exc:
                raise StrategyError(str(exc)) from None
            raise
    if not out:
        raise UsageError(f"grid values of {spec.name!r}: give at least one value")
    return out


def _valid(
    strategy: Any, points: Iterable[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The points the strategy accepts, and the others with its reason."""
    good, bad = [], []
    for c in points:
        try:
            params_from_dict(strategy, c)
            good.append(c)
        except StrategyError as exc:  # a value's digits cut as the error cuts them (QA
            # 2026-12-07: fast=1e308 printed 309 digits here)
            shown = ", ".join(f"{k!r}: {shown_value(v)}" for k, v in c.items())
            bad.append(f"{{{shown}}}: {exc}")
    return good, bad


def _sample_large(
    strategy: Any,
    names: list[str],
    axes: Mapping[str, Sequence[Any]],
    total: int,
    sample: int,
    seed: int,
) -> tuple[list[dict[str, Any]], list[str]]:
    """``sample`` valid points of a grid too large to build, drawn by their index in
    the grid (the same seed, the same points); rejected draws are counted, and drawing
    stops after 20 draws a point wanted."""
    if sample > MAX_GRID_POINTS:
        raise UsageError(f"--random {sample:,}: a sweep takes at most {MAX_GRID_POINTS:,} points")
    rng = random.Random(seed)
    seen: set[int] = set()
    good: list[dict[str, Any]] = []
    bad: list[str] = []
    for _ in range(20 * sample):
        if len(good) == sample:
            break
        i = rng.randrange(total)
        if i in seen:
            continue
        seen.add(i)
        values = []
        for n in reversed(names):  # the index in itertools.product's order
            i, k = divmod(i, len(axes[n]))
            values.append(axes[n][k])
        ok, no = _valid(strategy, [dict(zip(names, reversed(values), strict=True))])
        good += ok
        bad += no
    return good, bad


# the execution parameters a sweep takes where none are given (the CLI's defaults)
DEFAULT_EXEC = {"notional": 100000.0, "fee_bps": 0.0, "slippage_bps": 0.0}


def _plain_grid(grid: Mapping[str, Any]) -> dict[str, Any]:
    """A grid's values as Python numbers in lists (or a 'V1,V2' / range string): NumPy
    arrays and scalars (a researcher's np.arange), tuples, generators (read once)."""
    out: dict[str, Any] = {}
    for k, v in grid.items():
        if isinstance(v, str) or v is None:
            out[k] = v
        elif isinstance(v, numbers.Number) and not isinstance(v, bool):
            out[k] = [_plain(v)]
        elif isinstance(v, Iterable) and not isinstance(v, Mapping):
            # a dict's keys are no list of values (QA 2026-12-06)
            out[k] = [_plain(x) for x in v]
        else:
            out[k] = v  # refused by grid_points, naming it
    return out


def _plain(x: Any) -> Any:
    return x.item() if hasattr(x, "item") and hasattr(x, "dtype") else x


def _source_of(store: Any, rec: Mapping[str, Any] | None) -> str | None:
    """The strategies file of the sweep's runs (None: a built-in, or no such sweep)."""
    with store.catalog.env.read() as txn:
        for rid in rec["runs"] if rec else []:
            run = rc.get_run(store.catalog, txn, rid)
            if run is not None:
                return None if run.source == "builtin" else run.source
    # no run committed yet (interrupted first): the file its record names, if any
    source = rec.get("source") if rec else None
    return None if source in (None, "builtin") else source


def _sweeps_file(store: Any, name: str, strategy: Any, given: str | None) -> str | None:
    """The strategies file a resume of sweep ``name`` takes: the sweep's. Another one
    given is refused (found by QA 2026-12-05: it was taken, and one sweep held runs of
    two codes), as is a strategy object of another file, and so is the sweep's file
    when it is gone (a moved file ended the resume on a raw FileNotFoundError). A
    sweep of another strategy is left to its own refusal (:func:`sweep`)."""
    rec = get_sweep(store, name)
    if rec is None or rec["spec"]["strategy"] != _name_of(strategy):
        return given
    was = _source_of(store, rec)
    if was is None:
        return given
    if not isinstance(strategy, str):  # an object: the file it was defined in
        from incbt.runs import resolve

        given = resolve(strategy, None)[1]
    if given is not None and not _same_file(given, was):
        raise UsageError(
            f"sweep {name!r} runs strategy {_name_of(strategy)!r} of {was}, not of "
            f"{os.path.abspath(given)}: a resume keeps a sweep to its strategy's file (leave "
            "out --strategies); give another --name for a sweep of the other file"
        )
    if not os.path.exists(was):
        raise NotFoundError(
            f"sweep {name!r} runs strategy {_name_of(strategy)!r} of {was}, which is not "
            "there any more: put the file back there to resume it (a sweep is kept to its "
            "file), or sweep the moved file under another --name"
        )
    return was


def _same_file(a: str, b: str) -> bool:
    """One file (through a link too), or the same path where either is gone."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _name_of(strategy: Any) -> str:
    return strategy if isinstance(strategy, str) else str(getattr(strategy, "name", strategy))


def _kept_values(strat: Any, old: Mapping[str, Any], grid: Mapping[str, Any]) -> dict[str, Any]:
    """The values a resume keeps of each parameter of the sweep its grid leaves out: all
    those the sweep's grids gave it (one grid's spec as it was written, a range say;
    several grids' values, merged in order)."""
    specs = {p.name: p for p in strat.params}
    out: dict[str, Any] = {}
    sampled = _was_sampled(old)
    for k in old["spec"]["grid"]:
        if k in grid or k not in specs:
            continue
        # a grid without the parameter gave it its default (found by QA 2026-12-05: it
        # was left out, and a later resume left holes in the grid)
        default = [specs[k].default]
        if sampled:  # a sample's points, not its grid's range: the values it has (a
            # point of a grid without it: its default)
            have = {p.get(k, default[0]) for p in old.get("points", [])}
            if have:
                out[k] = sorted(have)
                continue
        given = [g.get(k, default) for g in old.get("grids", [old["spec"]["grid"]])]
        if all(v == given[-1] for v in given):
            out[k] = given[-1]
            continue
        values: dict[Any, None] = {}
        for v in given:
            vs = parse_values(v, specs[k].type) if isinstance(v, str) else v
            if len(values) + len(vs) > MAX_GRID_POINTS:
                raise UsageError(
                    f"the sweep's grids give {k!r} more than {MAX_GRID_POINTS:,} values: "
                    f"give -g {k}=... with the values to keep"
                )
            values.update(dict.fromkeys(vs))
        out[k] = list(values)
    return out


def recorded_grids(sw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The grids of a sweep's record, oldest first: one a call that made or grew it
    (records from before 2026-12-05 kept the latest alone, in their ``spec``)."""
    return list(sw.get("grids") or [sw["spec"]["grid"]])


def grid_samples(sw: Mapping[str, Any]) -> list[list[int | None]]:
    """Each grid's ``[random, seed]`` (``[None, None]``: the grid whole), in the order of
    ``sw["grids"]``; records from before 2026-12-05 kept the latest call's alone, which
    the earlier grids are taken to share."""
    grids = recorded_grids(sw)
    got = list(sw.get("samples") or [])
    latest = _sample_of(sw["spec"])
    return [*got, *[latest] * (len(grids) - len(got))][: len(grids)]


def _sample_of(spec: Mapping[str, Any]) -> list[int | None]:
    """A spec's ``[random, seed]``: ``[None, None]`` for its grid whole."""
    r = spec.get("random")
    return [r, None if r is None else spec.get("seed", 0)]


def _was_sampled(sw: Mapping[str, Any]) -> bool:
    """Whether a grid of the sweep was sampled (``--random``)."""
    return any(r is not None for r, _ in grid_samples(sw))


def _same_setup(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """A resumed sweep grows its grid only: its universe, start and execution parameters
    stay those it was made with (one cell of a heatmap, one setting)."""
    from incbt.engine import exec_params_from_dict

    def universe(x: Any) -> Any:  # a name given twice is the same universe (QA 2026-12-05)
        return "all" if every_instrument(x) else sorted(set(names(x, "instruments")))

    def shown(u: Any) -> str:
        return u if u == "all" else ",".join(u[:5]) + (",..." if len(u) > 5 else "")

    def execution(x: Any) -> dict[str, float]:
        row = exec_params_from_dict(x or {}).tolist()
        return dict(zip(EXEC_NAMES, row, strict=True))

    was, now = execution(old["exec"]), execution(new["exec"])
    diff = [f"{k} {was[k]:g} (now {now[k]:g})" for k in EXEC_NAMES if was[k] != now[k]]
    was_u, now_u = universe(old["instruments"]), universe(new["instruments"])
    if was_u != now_u:
        said = f"instruments {shown(was_u)} (now {shown(now_u)})"
        joined = [] if now_u == "all" else [u for u in now_u if "," in u]
        if joined:  # instruments="A,B" in Python: one name (QA 2026-12-06)
            said += f"; {joined[0]!r} is one name: give the instruments as a list"
        diff.append(said)
    if old["start"] != new["start"]:
        diff.append(f"start {old['start'] or 'the first bar'} (now {new['start']})")
    if diff:
        raise UsageError(
            f"sweep {name!r} was made with {'; '.join(diff)}: --resume grows a sweep's grid "
            "with the same instruments, start and execution parameters; give those, or "
            "another --name"
        )


def _default_name(spec: dict[str, Any]) -> str:
    return "sweep-" + hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]


def _now(store: Any, txn: Any, run_id: str, point_now: rc.RunRecord | None = None) -> str:
    """The id of the run that stands for ``run_id`` now (``rc.follow``); when it is not
    registered (a sweep interrupted before its first commit), the run of its point
    under the strategy's code now (``point_now``), else ``run_id`` itself."""
    run = rc.follow(store.catalog, txn, run_id)
    if run is not None:
        return run.run_id
    return run_id if point_now is None else point_now.run_id


def _earlier_now(
    store: Any, old: Mapping[str, Any] | None, strategies_file: str | None
) -> list[rc.RunRecord]:
    """The runs of a sweep's earlier points under the strategy's code now, in the order
    of its points."""
    earlier = old.get("points", []) if old else []
    if not old or not earlier:
        return []
    return register_many(
        store,
        old["spec"]["strategy"],
        earlier,
        instruments=old["spec"]["instruments"],
        start=old["spec"]["start"],
        exec_params=old["spec"]["exec"],
        strategies_file=strategies_file,
    )


def dropped_at(cat: Any, name: str, txn: Any = None) -> int | None:
    """The event that dropped the sweep ``name`` (None: none did). ``txn``: a transaction
    of the caller's to read the log in."""
    with contextlib.nullcontext(txn) if txn is not None else cat.env.read() as t:
        for ev in cat.events(t):
            if ev.kind == "drop" and name in ev.summary.get("sweeps", []):
                return int(ev.seq)
    return None


def no_such_sweep(name: str, cat: Any = None, txn: Any = None, again: str = "") -> NotFoundError:
    """The error for a sweep name the store does not hold; with its catalog, one dropped
    is said so, with the event (QA 2026-12-06: "no sweep", as for a typo), and ``again``
    (how to make it again, where the caller can). ``txn``: a transaction of the
    caller's to read the log in."""
    if cat is not None:
        seq = dropped_at(cat, name, txn)
        if seq is not None:
            return NotFoundError(f"sweep {name!r} was dropped (event {seq}){again}")
    return NotFoundError(
        f'no sweep {name!r} (`incbt query "SELECT * FROM sweeps"` lists them; store.sweeps() '
        "in Python)"
    )


def never_committed(store: Any, record: Mapping[str, Any]) -> list[str]:
    """The runs of a sweep's record that no commit registered: the record is written
    before its runs are computed (so a resume knows the grid), and a sweep interrupted
    before a run's first commit leaves it there alone."""
    with store.catalog.env.read() as txn:
        return [q for q in record["runs"] if rc.get_run(store.catalog, txn, q) is None]


def unfinished(store: Any) -> dict[str, tuple[int, int]]:
    """Sweeps with runs no commit registered (interrupted before them): sweep name ->
    (runs not computed yet, runs). No update computes those; a resume does."""
    out = {}
    for sw in sweeps(store):
        n = len(never_committed(store, sw))
        if n:
            out[sw["name"]] = (n, len(sw["runs"]))
    return out


def get_sweep(store: Any, name: str) -> dict[str, Any] | None:
    if not name.strip():
        raise UsageError("give a sweep name (or a run id), not an empty one")
    if len(name.encode()) > 2 * NAME_MAX:  # longer than any name a sweep can have
        return None
    with store.catalog.env.read() as txn:
        v = txn.get(name.encode(), db=store.catalog.env.db(b"sweeps"))
    return None if v is None else json.loads(v)


def sweeps(store: Any) -> list[dict[str, Any]]:
    with store.catalog.env.read() as txn, txn.cursor(store.catalog.env.db(b"sweeps")) as cur:
        return [json.loads(v) for _, v in cur]


def sweep(
    store: Any,
    strategy: str,
    grid: Mapping[str, Any],
    *,
    sample: int | None = None,
    seed: int = 0,
    instruments: Sequence[str] | str | None = None,
    start: str | None = None,
    exec_params: Mapping[str, float] | None = None,
    name: str | None = None,
    resume: bool = False,
    workers: int | None = None,
    address: str | None = None,
    strategies_file: str | None = None,
    dry_run: bool = False,
    commit_bars: int | None = None,
    command: str = "sweep",
    progress: Reporter = NULL,
) -> SweepResult:
    """Register a sweep's runs (or grow it) and bring all of them up to date.

    On ``resume``, a parameter of the sweep's grid that ``grid`` leaves out keeps the
    sweep's values (``SweepResult.kept`` says which): ``{"fast": "40:60:5"}`` grows a
    fast x slow sweep along fast. An empty grid finishes the sweep as it is (its name
    is needed then)."""
    t0 = time.perf_counter()
    if workers is not None and workers < 1:
        raise UsageError(
            f"--workers {workers}: give at least 1 (or leave it out: on this machine, without Ray)"
        )
    if workers is not None and address is not None:
        raise UsageError(
            f"--workers {workers} and --address {address}: give one (--workers starts a "
            "local Ray of that many workers; on a cluster, its nodes say how many)"
        )
    if address is not None:  # a dry run too: "would compute (ray)" on no cluster (QA
        from incbt.execute.ray_exec import reachable  # 2026-12-06)

        reachable(address)
    if name is not None:
        check_name(name)
    if start is not None:  # compared with the sweep's as a date (QA 2026-12-05: "20240110"
        # was said to differ from the sweep's 2024-01-10, not to be no date)
        from incbt.bars.schema import day_to_iso, given_day

        start = day_to_iso(given_day(start, "--start (start=)"))
    if seed != 0 and sample is None:  # it named another sweep, of the same points (QA 2026-12-05)
        raise UsageError(
            f"--seed {seed} (seed={seed}) without --random N: a seed draws a sample of N points; "
            "give --random N too, or leave out --seed"
        )
    if not grid and not (resume and name):
        raise UsageError(
            "give the grid (-g NAME=V1,V2,... or NAME=START:STOP:STEP); to finish or bring "
            "up to date a sweep as it is, --resume and its --name"
        )
    if resume and name:  # a sweep of a strategy of a file takes it from there, as update
        strategies_file = _sweeps_file(store, name, strategy, strategies_file)
    strat, source = resolve_in(store, strategy, strategies_file)
    grid = _plain_grid(grid)
    given_exec = dict(exec_params or {})
    if not every_instrument(instruments):  # a Series or Arrow column as a list (QA)
        instruments = names(instruments, "instruments")

    def grid_spec(g: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "strategy": strat.name,
            "grid": {k: v if isinstance(v, str) else list(v) for k, v in g.items()},
            "random": sample,
            "seed": seed,
            "instruments": instruments,
            "start": start,
            "exec": {**DEFAULT_EXEC, **given_exec},
        }

    # a bad grid is said before the lock is waited for (and its points serve below,
    # unless a resume adds the sweep's values of parameters it leaves out)
    given = grid_points(strat, grid, sample, seed) if grid else None
    if name is None:  # named by its spec: the same sweep again is that sweep, as the same
        # backtest is its run (QA 2026-12-06: "exists; continue it with --resume")
        name, resume = _default_name(grid_spec(grid)), True
    # the sweep's record is read, grown and written under the write lock, with the runs'
    # commits: two sweeps growing one name at once each keep their points, and a
    # command that times out waiting for the lock leaves no record behind (found
    # 2026-12-05: the record was read and written before the lock; a dry run takes none)
    with contextlib.nullcontext() if dry_run else store.lock():
        old = get_sweep(store, name)
        # the strategy first: --resume, which the name taken suggests, would fail on it
        # (QA 2026-12-05)
        if old is not None and old["spec"]["strategy"] != strat.name:
            raise UsageError(
                f"sweep {name!r} is a sweep of {old['spec']['strategy']!r}, not {strat.name!r}: "
                "give another --name for a sweep of this strategy"
            )
        if old is not None and not resume:
            raise UsageError(
                f"sweep {name!r} exists; continue it with --resume (resume=True in Python), or "
                "choose another --name"
            )
        if old is None and not grid:
            how = ": give its grid (-g) to sweep it again (its runs not in the store "
            raise no_such_sweep(name, store.catalog, again=how + "computed from scratch)")
        if old is not None:  # what a resume leaves out is the sweep's (its setup, its grid)
            was = old["spec"]
            instruments = was["instruments"] if instruments is None else instruments
            start = was["start"] if start is None else start
            exec_params = {**DEFAULT_EXEC, **was["exec"], **given_exec}
        else:
            exec_params = {**DEFAULT_EXEC, **given_exec}
        # a resume's grid grows the sweep's: a parameter it leaves out keeps the values
        # the sweep's grids give it (found 2026-12-05: it took the parameter's default,
        # adding points no one asked for, and the record kept only the latest grid);
        # no grid: the sweep as it is, its points alone (a sample stays one)
        kept = _kept_values(strat, old, grid) if old and grid else {}
        points: list[dict[str, Any]]
        skipped: list[str]
        short: str | None = None
        if old is not None and not grid:
            if sample is not None and (sample, seed) != (was["random"], was["seed"]):
                raise UsageError(
                    f"--random {sample} --seed {seed} without -g: a resume without a grid "
                    f"finishes sweep {name!r} as it is (its sample: --random "
                    f"{was['random']} --seed {was['seed']}); give -g to grow it"
                    if was["random"] is not None
                    else f"--random {sample} without -g: a resume without a grid finishes "
                    f"sweep {name!r} as it is (all of its grid); give -g to grow it"
                )
            points, skipped = [], []
            spec = {**was, "instruments": instruments, "start": start, "exec": exec_params}
        else:
            full = {**{k: kept.get(k) for k in (old["spec"]["grid"] if old else ())}, **grid}
            full = {k: v for k, v in full.items() if v is not None}
            if given is not None and full == grid:
                points, skipped = given
            else:
                points, skipped = grid_points(strat, full, sample, seed)
            if not points:
                raise StrategyError(_no_point(strat, full, sample, skipped))
            short = _short_sample(strat, full, sample, points, skipped)
            spec = grid_spec(full)
            spec.update(instruments=instruments, start=start, exec=exec_params)
        if old is not None:
            _same_setup(name, old["spec"], spec)
        grids = [*old.get("grids", [old["spec"]["grid"]])] if old else []
        samples = grid_samples(old) if old else []
        now = _sample_of(spec)
        if not grids or grids[-1] != spec["grid"] or samples[-1] != now:
            grids.append(spec["grid"])
            samples.append(now)
        records = (
            register_many(
                store,
                strategy,
                points,
                instruments=instruments,
                start=start,
                exec_params=exec_params,
                strategies_file=strategies_file,
                progress=progress,
            )
            if points
            else []
        )
        # the sweep's earlier points as runs of the strategy's code now
        earlier_now = _earlier_now(store, old, strategies_file)
        with store.catalog.env.read() as txn:
            # the sweep's runs now: one replaced since (its strategy's code changed) by
            # the run that replaced it, which its point registers again: not a new run
            # (found 2026-12-05: a resume after a code change listed both, and counted
            # the replacements as new); one never committed, of code edited since, by
            # its point's run of the code now (QA 2026-12-06: a sweep interrupted before
            # its first commit, then edited, could not be finished)
            runs_of = old["runs"] if old else []
            # the record lists one run a point, in the points' order (where it does not,
            # an unregistered run stays as it is)
            by_point = len(earlier_now) == len(runs_of)
            prior = list(
                dict.fromkeys(
                    _now(store, txn, r, earlier_now[k] if by_point else None)
                    for k, r in enumerate(runs_of)
                )
            )
            run_ids = list(dict.fromkeys([*prior, *(r.run_id for r in records)]))
            added = len(run_ids) - len(prior)
            if old is not None and not added and len(grids) > len(old.get("grids", [1])):
                grids.pop()  # a resume that added no point did not grow the sweep (QA
                samples.pop()  # 2026-12-05: its report counted it as a growth), nor
                spec = old["spec"]  # change its spec (a later resume of its sample was
                # refused: its random and seed were this call's; review 2026-12-05)
            new_here = set(run_ids) - set(prior)
            reused = sum(rc.registered(store.catalog, txn, rid) for rid in new_here)
            # points dropped since (`incbt drop`): computed again, from scratch
            again = sum(
                (r := rc.get_run(store.catalog, txn, rid)) is not None and r.dropped_seq is not None
                for rid in prior
            )
        have = {r.run_id: r for r in records}
        if old:  # runs of the sweep's earlier grids: from the catalog (or re-derived)
            with store.catalog.env.read() as txn:
                for rid in prior:
                    if rid not in have:
                        rec = rc.get_run(store.catalog, txn, rid)
                        if rec is not None:
                            have[rid] = rec
            for rec in earlier_now:
                have.setdefault(rec.run_id, rec)
        todo = [have[r] for r in run_ids if r in have]
        declared = [p.name for p in strat.params]
        result = SweepResult(name, run_ids, added, reused, old is None, skipped, store=store)
        result.kept, result.declared, result.again = kept, declared, again
        result.short = short
        if old is not None:
            # a resume's points the sweep had ("0 new" alone: QA 2026-12-06)
            result.given_held = len({r.run_id for r in records} & set(prior))
            # in the record, never registered (a dropped one is ``again``)
            left = set(never_committed(store, old))
            result.unfinished = sum(r.run_id in left for r in todo)
        if dry_run:
            result.report = bring_up_to_date(
                store, todo, command=command, kind="sweep", dry_run=True, progress=progress
            )
            result.executor = "dry run"
            return result
        all_points = list(
            {
                json.dumps(p, sort_keys=True): p
                for p in [*(old.get("points", []) if old else []), *points]
            }.values()
        )
        record = {
            "name": name,
            "spec": spec,
            "points": all_points,
            "runs": run_ids,
            "grids": grids,  # each grid that made or grew it (spec: the latest)
            "samples": samples,  # each grid's [random, seed]: [None, None] for a whole grid
            "source": source,  # the strategy's file ("builtin"), for a resume before any run
            "created": old["created"] if old else time.time(),
        }
        result.created_at = float(record["created"])  # type: ignore[arg-type]
        # the executor first: an address that reaches no cluster (or Ray failing to start)
        # leaves no sweep record behind
        # Ray when asked for (--workers, --address), unless there is nothing to compute
        # (QA 2026-12-06: a resume of a finished sweep with --workers 1 started a local
        # Ray, 2.6 s for nothing); else when the plan reaches the ray_threshold setting
        from incbt.settings import resolve as setting

        with store.catalog.env.read() as txn:
            unmade = [r for r in todo if not rc.registered(store.catalog, txn, r.run_id)]
        asked = workers is not None or address is not None
        threshold = 0 if asked else int(setting("ray_threshold")) or RAY_THRESHOLD
        executor = None
        # asked for, with runs never computed: work for Ray, known without a plan (a dry
        # run's plan cost a Ray sweep of 20 new runs over 100 instruments 15-110 ms of
        # serial work, 2026-12-06); else the plan says whether there is any, or enough
        use_ray = bool(asked and unmade)
        if not use_ray and (asked or threshold):
            est = bring_up_to_date(store, todo, command=command, kind="sweep", dry_run=True)
            use_ray = bool(
                (asked and (est.segments or est.bars_processed))
                or (threshold and est.bars_processed >= threshold)
            )
        if use_ray:
            from incbt.execute.ray_exec import RayExecutor

            executor = RayExecutor(workers, address)
            executor.parallelism()  # connects, or starts the local Ray
        # runs of the sweep made with code its strategies file no longer holds: refused
        # now, before the record is written (found 2026-12-05: the record had grown
        # when the computation refused them), with the fix (`incbt update` first)
        for r in {(r.strategy, r.source, r.code_version): r for r in todo}.values():
            resolve_strategy(r.strategy, r.source, r.code_version)
        if unmade:  # a user strategy breaking its contract: refused before the record is written
            from incbt.contract import check_new_runs

            check_new_runs(store, unmade, store.instruments())
        if old is None or json.loads(json.dumps(record)) != old:  # a resume of what it
            # holds writes nothing (2026-12-07: each rewrote the record, the catalog's file)
            store.catalog.env.write(
                lambda txn: txn.put(
                    name.encode(), json.dumps(record).encode(), db=store.catalog.env.db(b"sweeps")
                )
            )
        result.executor = executor.name if executor else "in this process"
        result.report = bring_up_to_date(
            store,
            todo,
            command=command,
            kind="sweep",
            progress=progress,
            executor=executor,
            commit_bars=commit_bars,
        )
        if executor is None and result.report.executor:  # this machine's threads or processes
            result.executor = result.report.executor
        grown = old is None or old["runs"] != run_ids or old.get("points") != all_points
        if grown and not result.report.commits:  # made or grown of runs the store held: the
            # record changed with no commit, said by an event (QA 2026-12-06: no trace)
            summary = {"sweep": name, "recorded": len(run_ids), "added": added}
            store.catalog.env.write(
                lambda txn: store.catalog.append_event(txn, "sweep", command, summary)
            )
        result.seconds = time.perf_counter() - t0
        return result


__all__ = [
    "MAX_GRID_POINTS",
    "RAY_THRESHOLD",
    "SweepResult",
    "get_sweep",
    "grid_points",
    "parse_values",
    "sweep",
    "sweeps",
]
