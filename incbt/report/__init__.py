"""HTML reports: one self-contained file per run or sweep (no network needed to view).

Charts are Plotly figures; plotly.js is embedded once, inline, so the file opens
anywhere. A run's report: its definition and metrics, the portfolio equity
curve and drawdown, monthly returns, trade statistics and a per-instrument
table. A sweep's report: the heatmap of a metric over two of its parameters,
the leaderboard, and the best run's equity curve.

Both say, at the top, when `incbt update` would change their numbers (bars ingested or
corrected since, or the strategy's code changed: :func:`_staleness`, from
``store.status()``), and every cell says what it holds: a value missing or undefined
reads "n/a (why)", never blank (a run with no fills showed blank cells, QA 2026-12-05).
"""

from __future__ import annotations

import datetime
import html
import json
import os
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from incbt.bars.schema import day_to_iso
from incbt.errors import NotFoundError, RunReplacedWarning, UsageError
from incbt.results.metrics import RANKED
from incbt.runs import _from

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px}
.sub{color:#666;font-size:13px} table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:right} th{background:#f4f4f4}
td.l,th.l{text-align:left} .chart{width:100%;max-width:1100px}
td.na{color:#777;font-style:italic}
.warn{background:#fff3cd;padding:8px;border:1px solid #e0c060}
"""


NA = "n/a"  # a cell with no value; callers that know why give "n/a (why)"
NO_DAYS = "n/a (no days)"
SHARPE_NOTE = (
    "Sharpe 0 (why): where the daily returns do not vary (a flat equity, e.g. a run with "
    "no fills) or span fewer than 2 days, a Sharpe ratio is undefined; incbt's is 0 "
    "there (SEMANTICS.md), and ranks as 0."
)
ZERO = "0 ("  # a Sharpe of 0 by definition, and why


def _missing(v: Any) -> bool:
    return v is None or (pd.api.types.is_scalar(v) and bool(pd.isna(v)))


def _fmt(v: Any, count: bool = True) -> str:
    """A cell. ``count``: an integer is a count, with thousands separators as a float
    has them (QA 2026-12-07: fills "5644" beside "35,627" where a NULL had made the
    column float); a parameter's value is shown as it is given (``slow=5000``)."""
    if _missing(v):  # never a blank cell: blank read as a bug, or as zero (QA 2026-12-05)
        return NA
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    if count and isinstance(v, int | np.integer) and not isinstance(v, bool):
        return f"{v:,}"
    return html.escape(str(v))


def _is_na(v: Any) -> bool:
    return _missing(v) or (isinstance(v, str) and v.startswith(NA))


def _table(df: pd.DataFrame, left: tuple[str, ...] = ()) -> str:
    head = "".join(
        f'<th class="{"l" if c in left else ""}">{html.escape(str(c))}</th>' for c in df.columns
    )

    def cls(c: Any, v: Any) -> str:
        return " ".join(x for x, on in (("l", c in left), ("na", _is_na(v))) if on)

    rows = "".join(
        "<tr>"
        + "".join(
            f'<td class="{cls(c, v)}">{_fmt(v, not str(c).startswith("p_"))}</td>'
            for c, v in zip(df.columns, r, strict=True)
        )
        + "</tr>"
        for r in df.itertuples(index=False)
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def _sharpe_shown(
    sharpe: Any,
    days: Any,
    pnl: np.ndarray | None = None,
    total: Any = None,
    drawdown: Any = None,
) -> Any:
    """A stored Sharpe as a table shows it: the number, or "0 (why)" where a Sharpe
    ratio is undefined and SEMANTICS.md makes it 0 (fewer than 2 days, daily returns
    that do not vary: a bare 0 there read as a computed one), or "n/a (no days)". ``pnl``:
    the daily pnl it was computed from; without it, a portfolio's ``total`` pnl and
    max ``drawdown`` both 0 mean its equity (from 0) never moved."""
    if _missing(sharpe) or sharpe != 0:
        return sharpe
    if _missing(days) or days < 1:
        return NO_DAYS
    if days < 2:
        return "0 (1 day)"
    if pnl is not None:
        if len(pnl) and bool((pnl == pnl[0]).all()):
            return "0 (flat equity)" if pnl[0] == 0 else "0 (returns do not vary)"
        return sharpe  # a mean return of exactly 0: a Sharpe of 0
    if total == 0 and drawdown == 0:
        return "0 (flat equity)"
    return sharpe


def _with_note(table: str, df: pd.DataFrame) -> str:
    """``table``, and the note saying why a Sharpe is 0 when a cell of ``df`` says so."""
    if "sharpe" in df.columns and any(
        isinstance(v, str) and v.startswith(ZERO) for v in df["sharpe"]
    ):
        return table + f'<p class="sub">{html.escape(SHARPE_NOTE)}</p>'
    return table


def _monthly_table(returns: pd.Series) -> str:
    """Year x month table of returns (in %), colored by sign."""
    if returns.empty:
        return "<p>no days</p>"
    m = returns.groupby([returns.index.year, returns.index.month]).sum() * 100
    years = sorted({y for y, _ in m.index})
    out = [
        "<table><tr><th>year</th>" + "".join(f"<th>{x}</th>" for x in MONTHS) + "<th>year</th></tr>"
    ]
    for y in years:
        cells = []
        for mo in range(1, 13):
            v = m.get((y, mo))
            if v is None:  # no day with results that month: said, not blank
                cells.append('<td class="na" title="no day with results">–</td>')
            else:
                color = "#e6f4ea" if v >= 0 else "#fce8e6"
                cells.append(f'<td style="background:{color}">{v:.2f}%</td>')
        total = sum(m.get((y, mo), 0.0) for mo in range(1, 13))
        out.append(f"<tr><th>{y}</th>{''.join(cells)}<td><b>{total:.2f}%</b></td></tr>")
    return "".join(out) + "</table>"


def _page(title: str, subtitle: str, body: list[str]) -> str:
    from plotly.offline import get_plotlyjs

    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        f"<h1>{html.escape(title)}</h1><div class='sub'>{html.escape(subtitle)}</div>"
        + "".join(body)
        + "</body></html>"
    )


def _fig_html(fig: Any, div_id: str) -> str:
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )


def _curve(run: Any) -> pd.DataFrame:
    """A run's portfolio by date (:attr:`incbt.runs.Run.equity`: the metrics' bits)."""
    p = run.equity.to_pandas()
    p["date"] = pd.to_datetime(p["date"])
    return p


def _equity_figure(p: pd.DataFrame, title: str) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.7, 0.3],
        vertical_spacing=0.05,
        subplot_titles=(title, "drawdown"),
    )
    fig.add_trace(
        go.Scatter(
            x=p["date"], y=p["equity"], name="equity (cumulative PnL)", line={"color": "#1f77b4"}
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=p["date"],
            y=-p["drawdown"],
            name="drawdown",
            fill="tozeroy",
            line={"color": "#d62728"},
        ),
        row=2,
        col=1,
    )
    fig.update_layout(height=520, margin={"l": 50, "r": 20, "t": 40, "b": 30}, showlegend=False)
    return fig


BROKEN = "cannot recompute: "  # the reason ``store.status()`` gives a run whose strategy
# does not load (incbt.update._stale_rows)


@dataclass
class _Stale:
    """Why ``incbt update`` would change a run's numbers, from ``store.status()``."""

    instruments: set[str] = field(default_factory=set)  # the pairs it would compute
    reasons: set[str] = field(default_factory=set)
    replaced_by: str | None = None  # its strategy's code changed: the run of the new code
    broken: str | None = None  # its strategy does not load: why (no update recomputes it)

    @property
    def stale(self) -> bool:
        """An update would change it (a broken run it cannot: said apart)."""
        return bool(self.instruments or self.reasons or self.replaced_by)


def _staleness(store: Any, run_ids: Iterable[str]) -> dict[str, _Stale]:
    """The runs of ``run_ids`` that are not up to date, and why: bars ingested or
    corrected since, a universe grown, or their strategy's code changed.

    A run whose code changed is listed by ``store.status()`` under its own id (with
    ``replaced_by``, since 2026-12-06; before, under the id of the run replacing it),
    and not at all once that run is computed already: the (old, new) pairs of
    ``status().replaced`` say so (without them a run of changed code read as up to
    date: found 2026-12-05)."""
    from incbt.update import status_of

    wanted = set(run_ids)
    st = status_of(store, wanted)
    olds: dict[str, list[str]] = {}
    out: dict[str, _Stale] = {}
    for old, new in st.replaced:
        if old in wanted:
            olds.setdefault(new, []).append(old)
            out.setdefault(old, _Stale()).replaced_by = new
    for r in st.stale:
        for rid in [r.run_id] if r.run_id in wanted else olds.get(r.run_id, []):
            s = out.setdefault(rid, _Stale())
            if r.reason.startswith(BROKEN):
                s.broken = r.reason[len(BROKEN) :]
                continue
            if r.instrument:
                s.instruments.add(r.instrument)
            s.reasons.add(f"{r.reason} (from {r.from_day})" if r.from_day else r.reason)
    return out


def _warning(text: str) -> str:
    return f'<p class="warn">{html.escape(text)}</p>'


def _some(items: list[str], most: int = 3) -> str:
    """The first ``most`` of ``items``, and how many more."""
    more = f"; and {len(items) - most} more" if len(items) > most else ""
    return "; ".join(items[:most]) + more


def _freshness(store: Any, run: Any, curve: pd.DataFrame) -> list[str]:
    """What the report's numbers are as of: the last day with results (the end of the
    run's ``curve``) against the last day with bars of its instruments, and a warning
    when an update would change them (new or corrected bars, its strategy's code)."""
    from incbt.runs import instruments_of, last_bar_days

    rec = run.record
    last = last_bar_days(store, instruments_of(rec, store.instruments()))
    through = curve["date"].max().date().isoformat() if len(curve) else None
    bars_to = max(last.values()) if last else None
    line = (
        f"results through {through or 'no day yet'}; bars of its instruments through "
        f"{day_to_iso(bars_to) if bars_to is not None else 'no day yet'}"
    )
    out = [f'<p class="sub">{html.escape(line)}</p>']
    st = _staleness(store, [rec.run_id]).get(rec.run_id, _Stale())
    if st.replaced_by:
        n = len(st.instruments)
        out.append(
            _warning(
                "Not up to date: its strategy's code changed since it ran: `incbt update` "
                f"replaces it by run {st.replaced_by}, of the new code"
                + (f", computing its {n} instrument(s) from the start" if n else "")
                + ". The numbers below are those of the old code."
            )
        )
    elif st.stale:
        what = (
            f"{len(st.instruments)} of its instrument(s) would be recomputed by `incbt update`"
            if st.instruments
            else "`incbt update` would change it"  # a refold alone: no instrument computed
        )
        out.append(
            _warning(
                f"Not up to date: {what}: {_some(sorted(st.reasons))}. The numbers below are "
                "those stored now." + (f" {w}" if (w := _writing(store)) else "")
            )
        )
    if st.broken:
        out.append(
            _warning(
                "Cannot be brought up to date: its strategy does not load or no longer "
                f"takes its parameters ({st.broken}); "
                "`incbt update` cannot recompute it until it loads again. The numbers below "
                "are those stored now."
            )
        )
    return out


def _no_results(store: Any, rec: Any) -> str:
    """Why a run has no day with results (its tables are empty)."""
    from incbt.runs import waiting_for_bars

    if rec.superseded_by:
        return (
            f"no results: the run was replaced by run {rec.superseded_by} when its "
            "strategy's code changed (`incbt update`); that run's report holds its results"
        )
    if rec.run_id in dict(waiting_for_bars(store)):
        return (
            f"no results: the run starts {rec.start}, after the last day with bars of its "
            "instruments; it holds no day until bars reach its start (`incbt update` then "
            "computes them)"
        )
    return (
        "no results: no day of it is computed (the notes above or the failed pairs below say why)"
    )


def run_report(store: Any, run_id: str) -> str:
    """A run's page. A run replaced after its strategy's code changed is read without
    the warning its tables give: the page says it, with the run holding its results."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunReplacedWarning)
        return _run_report(store, run_id)


def _run_report(store: Any, run_id: str) -> str:
    run = store.run(run_id)
    rec = run.record
    q = {"r": rec.run_id}
    # the run's own tables: read from the files of its rows (run._q), not every file
    daily = run._q("SELECT * FROM daily WHERE run_id = $r ORDER BY instrument, date").to_pandas()
    metrics = run.metrics.to_pandas()
    fills = run._q(
        "SELECT count(*) AS n, sum(abs(qty * price)) AS notional, "
        "sum(fee) AS fees FROM fills WHERE run_id = $r"
    ).to_pylist()[0]
    p = _curve(run)  # the portfolio as the metrics define it, with its capital
    n_inst = max(1, daily["instrument"].nunique()) if not daily.empty else 1
    body = _freshness(store, run, p)
    empty = "<p>no day with results (above)</p>" if p.empty else ""
    body.append("<h2>Portfolio metrics</h2>")
    port = metrics[metrics["scope"] == "portfolio"].drop(columns=["run_id", "instrument", "scope"])
    if port.empty:
        why = _no_results(store, rec) if p.empty else "no portfolio row"
        body.append(f"<p>{html.escape(why)}</p>")
    else:
        port = port.astype(object)
        port["sharpe"] = [
            _sharpe_shown(v, d, p["pnl"].to_numpy())
            for v, d in zip(port["sharpe"], port["days"], strict=True)
        ]
        body.append(_with_note(_table(port), port))
    body.append("<h2>Equity and drawdown</h2>")
    if p.empty:
        body.append(empty)
    else:
        body.append(_fig_html(_equity_figure(p, f"portfolio of {n_inst} instrument(s)"), "equity"))
    body.append("<h2>Monthly returns (% of capital)</h2>")
    body.append(empty or _monthly_table(p.set_index("date")["ret"]))
    days = len(p)
    n_fills = int(fills["n"] or 0)
    stats = pd.DataFrame(
        [
            {
                "days": days,
                "positive days": f"{100 * int((p['pnl'] > 0).sum()) / days:.1f}%"
                if days
                else NO_DAYS,
                "best day": p["pnl"].max() if days else NO_DAYS,
                "worst day": p["pnl"].min() if days else NO_DAYS,
                "average day": p["pnl"].mean() if days else NO_DAYS,
                "fills": n_fills,
                # sums over no fills are NULL in SQL: nothing traded, no fee paid
                "traded notional": fills["notional"] if n_fills else 0.0,
                "fees": fills["fees"] if n_fills else 0.0,
                "avg fill notional": fills["notional"] / n_fills if n_fills else "n/a (no fills)",
            }
        ],
        dtype=object,
    )
    body.append("<h2>Trade statistics</h2>" + _table(stats))
    trades = run.trades()
    body.append("<h2>Round trips</h2>" + _table(_round_trips(trades), left=("statistic",)))
    if trades.num_rows:
        body.append(_fig_html(_returns_figure(trades), "trade-returns"))
    inst = metrics[metrics["scope"] == "instrument"].drop(columns=["run_id", "scope"])
    body.append("<h2>Instruments</h2>")
    if inst.empty:
        body.append(empty or "<p>no instrument holds results</p>")
    else:
        pnl_of = {str(i): g["pnl"].to_numpy() for i, g in daily.groupby("instrument")}
        inst = inst.sort_values("total_pnl", ascending=False).astype(object)
        inst["sharpe"] = [
            _sharpe_shown(v, d, pnl_of.get(i))
            for i, v, d in zip(inst["instrument"], inst["sharpe"], inst["days"], strict=True)
        ]
        body.append(_with_note(_table(inst, left=("instrument",)), inst))
    # pairs whose strategy failed hold no rows: said here, or the run would look whole
    # with fewer instruments (found 2026-12-05)
    failed = store.sql(
        "SELECT instrument, error FROM failed WHERE run_id = $r ORDER BY instrument", params=q
    ).to_pandas()
    if not failed.empty:
        body.append(
            f"<h2>Failed: {len(failed)} instrument(s)</h2><p>The strategy failed on these; "
            "they hold no results and the portfolio sums the others (capital counts "
            "every instrument of the run).</p>" + _table(failed, left=("instrument", "error"))
        )
    sub = (
        f"run {rec.run_id} · {rec.strategy} {json.dumps(rec.params)} · "
        f"{json.dumps(rec.exec_params)} · {_from(rec.start)} · "
        # "universe 2" read as a name (QA 2026-12-06)
        + (
            "every instrument"
            if rec.universe == "all"
            else f"{len(rec.universe)} instrument(s): {', '.join(rec.universe[:5])}"
            + (", ..." if len(rec.universe) > 5 else "")
        )
        + (f" · fork of {rec.fork['base']} from {rec.fork['effective']}" if rec.fork else "")
        + f" · report written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    return _page(f"incbt report: {rec.strategy} {rec.run_id[:8]}", sub, body)


def sweep_report(store: Any, name: str, metric: str = "sharpe") -> str:
    import plotly.graph_objects as go

    from incbt.sweep import get_sweep

    sw = get_sweep(store, name)
    if sw is None:
        raise NotFoundError(
            f'no sweep or run {name!r} (`incbt query "SELECT * FROM sweeps"` and '
            '`incbt query "SELECT run_id FROM runs"` list them)'
        )
    from incbt.sweep import FAILED_JOIN, FAILED_PAIRS

    # every run of the sweep: one that failed everywhere has no portfolio row, and is
    # listed with its failed pairs (it was left out until 2026-12-05)
    t = store.sql(
        "SELECT r.*, m.total_pnl, m.sharpe, m.max_drawdown, m.fills, m.fees, "
        f"m.turnover, m.days AS m_days, {FAILED_PAIRS} FROM sweeps s JOIN runs r USING (run_id) "
        "LEFT JOIN metrics m ON m.run_id = r.run_id AND m.scope = 'portfolio' "
        f"{FAILED_JOIN} WHERE s.sweep = $s",
        params={"s": name},
    ).to_pandas()
    from incbt.sweep import STATS_SMALLER_FIRST as smaller
    from incbt.sweep import ranked_metric

    ranked_metric(metric, "the stats query's")
    result = store.sweeps()[name]
    if metric not in RANKED:  # a statistic of each run (Sweep.stats, or its
        # trade statistics): its column
        st = result._stats_of(metric).select(["run_id", metric]).to_pandas()
        t = t.merge(st, on="run_id", how="left")
    from incbt.catalog import runs as rc

    with store.catalog.env.read() as txn:  # its runs' records: none for a run never
        # committed (incbt.sweep.never_committed); a dropped one's says so (QA 2026-12-07:
        # their cells were "a point the strategy rejects, or not sampled")
        recs = [rc.get_run(store.catalog, txn, q) for q in sw["runs"]]
    never = sum(r is None for r in recs)
    if not len(t) and not never:  # every run of it dropped (QA 2026-12-06: a report of 0
        # runs, exit 0, an empty leaderboard)
        raise NotFoundError(
            f"sweep {name!r} has no run left: its runs were dropped (`incbt drop`); a sweep "
            "of its grid again (--resume) computes them from scratch"
        )
    body = _sweep_freshness(store, t["run_id"].tolist())
    if never:  # not in the tables at all (found by QA 2026-12-05: a report of 0 runs, no word)
        body.insert(
            0,
            _warning(
                f"Not finished: {never:,} of the sweep's {len(sw['runs']):,} runs were never "
                "computed (the sweep was interrupted before their first commit) and are not "
                f"shown: `incbt sweep {sw['spec']['strategy']} --name {name} --resume"
                f"{_its_file(sw)}` computes them."
            ),
        )
    dropped = [r for r in recs if r is not None and r.dropped_seq is not None]
    if dropped:
        body.insert(
            0,
            _warning(
                f"{len(dropped):,} of the sweep's {len(sw['runs']):,} runs were dropped "
                f"(`incbt drop`) and are not shown: `incbt sweep {sw['spec']['strategy']} "
                f"--name {name} --resume{_its_file(sw)}` computes them again."
            ),
        )
    pcols = [c for c in t.columns if c.startswith("p_") and t[c].notna().any()]
    # in the order the strategy declares them (the runs table's are by name: bollinger's
    # heatmap was k across window), as Sweep.grid has them
    declared = [f"p_{k}" for k in result.parameters()]
    pcols = [c for c in declared if c in pcols] + [c for c in pcols if c not in declared]
    for c in pcols:  # integer parameters read as integers
        if (t[c].dropna() % 1 == 0).all():
            t[c] = t[c].astype("Int64")
    varying = [c for c in pcols if t[c].nunique() > 1]
    if len(varying) >= 2:
        x, y = varying[0], varying[1]
        best = "min" if metric in smaller else "max"
        # every value of both, a cell whose runs all failed included (QA 2026-12-06: its
        # column was gone); an empty cell says why on hover
        piv = t.pivot_table(index=y, columns=x, values=metric, aggfunc=best, dropna=False)
        have = set(zip(t[y].tolist(), t[x].tolist(), strict=True))
        why = _cells_why(t, x, y, metric)
        gone = {(r.params.get(y[2:]), r.params.get(x[2:])) for r in dropped}
        z = piv.to_numpy()
        words = [
            [
                f"{z[i, j]:.6g}"
                if z[i, j] == z[i, j]
                else why.get((yv, xv), NA)
                if (yv, xv) in have
                else "no run: dropped (incbt drop)"
                if (yv, xv) in gone
                else "no run (a point the strategy rejects, or not sampled)"
                for j, xv in enumerate(piv.columns)
            ]
            for i, yv in enumerate(piv.index)
        ]
        fig = go.Figure(
            go.Heatmap(
                z=z,
                x=[str(v) for v in piv.columns],
                y=[str(v) for v in piv.index],
                text=words,
                hovertemplate=f"{x[2:]}=%{{x}}, {y[2:]}=%{{y}}: %{{text}}<extra></extra>",
                colorscale="RdYlGn",
                colorbar={"title": metric},
            )
        )
        fig.update_layout(
            xaxis_title=x[2:],
            yaxis_title=y[2:],
            height=480,
            margin={"l": 60, "r": 20, "t": 30, "b": 50},
        )
        more = ", ".join(v[2:] for v in varying[2:])
        over = f" (each cell the best over {more})" if more else ""  # said, not silent
        body.append(f"<h2>{metric} over {x[2:]} x {y[2:]}{over}</h2>" + _fig_html(fig, "heatmap"))
    elif len(varying) == 1:
        x = varying[0]
        s = t.sort_values(x)
        fig = go.Figure(go.Bar(x=[str(v) for v in s[x]], y=s[metric]))
        fig.update_layout(xaxis_title=x[2:], yaxis_title=metric, height=420)
        body.append(f"<h2>{metric} by {x[2:]}</h2>" + _fig_html(fig, "heatmap"))
    # ranked as `leaderboard` ranks (a Sharpe of 0 by definition is 0: SEMANTICS.md)
    board = t.sort_values(
        [metric, "run_id"], ascending=[metric in smaller, True], na_position="last"
    )
    cols = ["run_id", *pcols, *RANKED]
    if metric not in cols:  # the statistic ranked by, beside the metrics
        cols.insert(1 + len(pcols), metric)
    cols.append("failed_pairs")
    shown = _leaderboard_cells(board.head(30), cols)
    body.append("<h2>Leaderboard</h2>" + _with_note(_table(shown, left=("run_id",)), shown))
    board = board[board[metric].notna()]  # the best run: one with results
    if not board.empty:
        best = board.iloc[0]["run_id"]
        curve = _curve(store.run(best))
        body.append(f"<h2>Best run {best}: equity and drawdown</h2>")
        body.append(_fig_html(_equity_figure(curve, f"run {best}"), "equity"))
    # what its runs cover, every grid that made or grew it together (QA 2026-12-05: the
    # latest grid alone led the line, read as the sweep's)
    covers = {c[2:]: sorted(t[c].dropna().unique().tolist()) for c in pcols}
    over = f" over {_grid_text(covers, most=8)}" if len(sw.get("grids") or ()) > 1 else ""
    sub = (
        f"sweep {name} · {sw['spec']['strategy']} · {len(t)} run{'' if len(t) == 1 else 's'}"
        f"{over} · {_grids_line(sw)} · "
        f"report written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    return _page(f"incbt sweep report: {name}", sub, body)


# why a trade statistic is None (incbt.results.trades.trade_stats)
_NO_TRADE = {
    "win_rate_pct": "no closed trade",
    "best_trade_pct": "no closed trade",
    "worst_trade_pct": "no closed trade",
    "expectancy": "no closed trade",
    "avg_winning_trade_pct": "no winning trade",
    "avg_winning_trade_duration": "no winning trade",
    "avg_losing_trade_pct": "no losing trade",
    "avg_losing_trade_duration": "no losing trade",
    "profit_factor": "no losing trade",
}


def _round_trips(trades: Any) -> pd.DataFrame:
    """A run's trade statistics (README.md, Trades), a row each (12 columns across ran
    off the page): a value that is not there says why, a duration as the CLI writes it."""
    from incbt.results.trades import trade_stats

    row = {
        k: f"{NA} ({_NO_TRADE.get(k, 'not defined')})"
        if v is None
        else str(datetime.timedelta(seconds=round(v.total_seconds())))
        if isinstance(v, datetime.timedelta)
        else v
        for k, v in trade_stats(trades).items()
    }
    return pd.DataFrame({"statistic": list(row), "value": list(row.values())}, dtype=object)


TRADE_BINS = 60  # the histogram of trade returns: its bars (the page holds counts, not
# every trade: a run of 100,000 trades would make it megabytes)


def _returns_figure(trades: Any) -> Any:
    """How the closed trades' returns are spread: a histogram of counts, the winners'
    bars green and the losers' red (vectorbt's ``trades.plot`` shows each trade)."""
    import plotly.graph_objects as go

    status = trades.column("status").to_numpy(zero_copy_only=False)
    ret = trades.column("return").to_numpy(zero_copy_only=False)[status == "closed"] * 100.0
    fig = go.Figure()
    if len(ret):
        # bins of one width with an edge at 0: a bar holds winners or losers, not both
        w = float(ret.max() - ret.min()) / TRADE_BINS or 1.0
        first = np.floor(ret.min() / w) * w
        edges = first + w * np.arange(int(np.ceil((ret.max() - first) / w)) + 2)
        counts, _ = np.histogram(ret, bins=edges)
        mid = (edges[:-1] + edges[1:]) / 2
        for name, keep, color in (("losing", mid < 0, "#c0392b"), ("winning", mid >= 0, "#27ae60")):
            fig.add_bar(
                x=mid[keep], y=counts[keep], width=w * 0.95,
                name=f"{name} trades", marker_color=color,
                hovertemplate="return %{x:.3f}%: %{y} trade(s)<extra></extra>",
            )  # fmt: skip
    fig.update_layout(
        title=f"Closed trades by return (% of the position's entry value), {len(ret):,} in all",
        xaxis_title="return (%)",
        yaxis_title="trades",
        height=360,
        bargap=0,
    )
    return fig


# why a value of the stats query is NULL for a run with results (README.md: stats)
STAT_UNDEFINED = {
    "annual_volatility": "one day",
    "sortino": "fewer than 2 days, or no losing day",
    "calmar": "no drawdown",
    "avg_win_day": "no winning day",
    "avg_loss_day": "no losing day",
    "profit_factor": "no losing day",
}


def _why_missing(r: Any, metric: str) -> str:
    """Why run ``r`` (a row with sharpe and failed_pairs) has no value of ``metric``."""
    if _missing(r["sharpe"]):  # no portfolio row: failed everywhere, or no day yet
        return "n/a (failed)" if r["failed_pairs"] else "n/a (no results yet)"
    why = STAT_UNDEFINED.get(metric) or _NO_TRADE.get(metric, "not defined")
    return f"{NA} ({why})"


def _cells_why(t: pd.DataFrame, x: str, y: str, metric: str) -> dict[tuple[Any, Any], str]:
    """A heatmap's cell of no value: why, from its runs (QA 2026-12-07: a cell of runs of
    one day, their annual_volatility undefined, or of runs with no day yet, said "every
    run failed")."""
    out = {}
    for (yv, xv), g in t.groupby([y, x], dropna=False):
        whys = {_why_missing(r, metric) for _, r in g.iterrows() if _missing(r[metric])}
        if whys == {"n/a (failed)"}:
            out[(yv, xv)] = "n/a (every run failed)"
        elif len(whys) == 1:
            out[(yv, xv)] = whys.pop()
        else:
            out[(yv, xv)] = f"{NA} ({'; '.join(sorted(w[5:-1] for w in whys))})"
    return out


def _leaderboard_cells(top: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """The leaderboard's rows as shown: a run with no portfolio row says why (it failed
    everywhere, or holds no day yet), a Sharpe that is undefined says so, and so does a
    statistic ranked by (sortino without a losing day, ...)."""
    shown = top[cols].astype(object)
    extra = [  # the statistic ranked by, if any
        c for c in cols if c not in (*RANKED, "run_id", "failed_pairs") and not c.startswith("p_")
    ]
    for idx, r in top.iterrows():
        for c in extra:
            if _missing(r[c]):
                shown.at[idx, c] = _why_missing(r, c)
        if _missing(r["sharpe"]):
            why = _why_missing(r, "sharpe")
            for c in RANKED:
                shown.at[idx, c] = why
        else:
            shown.at[idx, "sharpe"] = _sharpe_shown(
                r["sharpe"], r["m_days"], total=r["total_pnl"], drawdown=r["max_drawdown"]
            )
    return shown


def _its_file(sw: Mapping[str, Any]) -> str:
    """`` --strategies FILE`` for a sweep of a strategy of a file whose record does not
    name it (made before 2026-12-05: a resume then needs it given), else nothing."""
    from incbt.engine.strategies import BUILTINS

    if sw.get("source") or sw["spec"]["strategy"] in BUILTINS:
        return ""
    return " --strategies FILE"


def _writing(store: Any) -> str:
    """A stale warning's tail while a write is under way, which may be the update that
    brings the runs up to date (QA 2026-12-06: a report written during `incbt update`
    said to run `incbt update`, which then waited for the lock and found nothing)."""
    from incbt.catalog.lock import held_by

    writer = held_by(store.path)
    if not writer:
        return ""
    return (
        f"A write is under way ({writer}): if it is an update, it is bringing them up to "
        "date; write the report again once it ends."
    )


def _sweep_freshness(store: Any, run_ids: list[str]) -> list[str]:
    """The warning at the top of a sweep's report when `incbt update` would change the
    numbers of any of its runs (as the run report's, from the same ``store.status()``):
    how many, why, and the fix."""
    st = _staleness(store, run_ids)
    stale = [x for x in st.values() if x.stale]
    out = []
    if stale:
        why: Counter[str] = Counter()
        for x in stale:
            why.update(
                {"strategy code changed: replaced by a run of the new code"}
                if x.replaced_by
                else x.reasons
            )
        reasons = [f"{r}: {n} run(s)" for r, n in sorted(why.items(), key=lambda kv: -kv[1])]
        out.append(
            _warning(
                f"Not up to date: {len(stale)} of the sweep's {len(run_ids)} runs would be "
                f"recomputed by `incbt update` ({_some(reasons)}). The numbers below are those "
                "stored now"
                + (
                    f". {w}"
                    if (w := _writing(store))
                    else ": run `incbt update` to bring them up to date."
                )
            )
        )
    broken = sorted({x.broken for x in st.values() if x.broken})
    if broken:
        n = sum(1 for x in st.values() if x.broken)
        out.append(
            _warning(
                f"{n} of the sweep's {len(run_ids)} runs cannot be brought up to date: their "
                f"strategy does not load or take their parameters ({_some(broken, 1)}); "
                "`incbt update` cannot recompute "
                "them until it loads again."
            )
        )
    return out


def _grid_text(grid: Mapping[str, Any], most: int = 6) -> str:
    """A grid as its -g options say it, compactly: fast=5,10,20 slow=40:200:40."""

    def values(v: Any) -> str:
        if isinstance(v, str):  # a START:STOP:STEP range, as given
            return v
        v = list(v) if isinstance(v, list | tuple) else [v]
        text = [f"{x:g}" if isinstance(x, float) else str(x) for x in v]
        if len(text) > most:
            return ",".join([*text[: most - 2], "...", text[-1]]) + f" ({len(text)} values)"
        return ",".join(text)

    return " ".join(f"{k}={values(v)}" for k, v in grid.items()) or "(none)"


def _grids_line(sw: Mapping[str, Any]) -> str:
    """The sweep's grid (the latest, of ``sw["grids"]``: one a call that made or grew it;
    absent from older records, whose ``spec`` holds the latest alone), and when it grew,
    how many times, from which grids."""
    from incbt.sweep import grid_samples, recorded_grids

    grids = recorded_grids(sw)
    texts = [
        _grid_text(g) + ("" if r is None else f" (random {r}, seed {seed})")
        for g, (r, seed) in zip(grids, grid_samples(sw), strict=True)
    ]
    line = f"grid {texts[-1]}"
    earlier = texts[:-1]
    if earlier:
        if len(earlier) > 4:  # the first and the last ones
            earlier = [*earlier[:2], f"({len(earlier) - 4} more)", *earlier[-2:]]
        n = len(grids) - 1
        line += f" (grown {n} time{'s' if n > 1 else ''}; earlier: {'; '.join(earlier)})"
    return line


def report(store: Any, target: str, path: str, metric: str | None = None) -> str:
    """Write the report of a run (id or prefix) or a sweep (name) to ``path``; ``metric``:
    a sweep's heatmap and ranking metric (sharpe by default)."""
    from incbt.sweep import get_sweep

    path = os.path.expanduser(path)  # as every -o FILE (QA 2026-12-06)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(folder):
        raise NotFoundError(
            f"-o {path}: "
            + (f"{path} is a folder" if os.path.isdir(path) else f"no folder {folder}")
            + ": give a file in an existing folder (e.g. -o report.html)"
        )

    if get_sweep(store, target) is not None:
        text = sweep_report(store, target, "sharpe" if metric is None else metric)
    else:
        try:
            if metric is not None:  # QA 2026-12-06: taken, and ignored
                store.run(target)  # an unknown one is said as such first
                raise UsageError(
                    f"--metric {metric} (metric=): a metric to rank a sweep's runs by; a "
                    "run's report shows every metric. Fix: leave it out, or name a sweep"
                )
            text = run_report(store, target)
        except NotFoundError as exc:
            if "was dropped" in str(exc):  # named, and dropped: said so (QA 2026-12-06)
                raise
            from incbt.sweep import dropped_at, no_such_sweep

            if dropped_at(store.catalog, target) is not None:  # a sweep dropped: said so,
                raise no_such_sweep(target, store.catalog) from None  # as a run's (QA 12-08)
            raise NotFoundError(
                f'no sweep or run {target!r} (`incbt query "SELECT * FROM sweeps"` and '
                '`incbt query "SELECT run_id, strategy, params FROM runs"` list them)'
            ) from None
    from incbt.render import output_file

    with output_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)  # whole or not at all (a full disk left r.html.tmp: QA 2026-12-06)
    return path
