"""HTML reports: one self-contained file per run or sweep (no network needed to view).

Charts are Plotly figures; plotly.js is embedded once, inline, so the file opens
anywhere. A run's report: its definition and metrics, the portfolio equity
curve and drawdown, monthly returns, trade statistics and a per-instrument
table. A sweep's report: the heatmap of a metric over two of its parameters,
the leaderboard, and the best run's equity curve.
"""

from __future__ import annotations

import html
import json
import os
import time
from typing import Any

import numpy as np
import pandas as pd

from incbt.bars.schema import day_to_iso
from incbt.errors import NotFoundError, UsageError
from incbt.runs import _from

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px}
.sub{color:#666;font-size:13px} table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:right} th{background:#f4f4f4}
td.l,th.l{text-align:left} .chart{width:100%;max-width:1100px}
"""


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    return html.escape(str(v))


def _table(df: pd.DataFrame, left: tuple[str, ...] = ()) -> str:
    head = "".join(
        f'<th class="{"l" if c in left else ""}">{html.escape(str(c))}</th>' for c in df.columns
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"l" if c in left else ""}">{_fmt(v)}</td>'
            for c, v in zip(df.columns, r, strict=True)
        )
        + "</tr>"
        for r in df.itertuples(index=False)
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


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
            if v is None:
                cells.append("<td></td>")
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
    stale = [r for r in store.status().stale if r.run_id == rec.run_id]
    if stale:
        why = sorted({f"{r.reason} (from {r.from_day})" for r in stale})
        out.append(
            '<p style="background:#fff3cd;padding:8px;border:1px solid #e0c060">'
            + html.escape(
                f"Not up to date: {len(stale)} of its instrument(s) would be recomputed "
                f"by `incbt update`: {'; '.join(why[:3])}"
                + (f"; and {len(why) - 3} more" if len(why) > 3 else "")
                + ". The numbers below are those stored now."
            )
            + "</p>"
        )
    return out


def run_report(store: Any, run_id: str) -> str:
    run = store.run(run_id)
    rec = run.record
    q = {"r": rec.run_id}
    daily = store.sql(
        "SELECT * FROM daily WHERE run_id = $r ORDER BY instrument, date", params=q
    ).to_pandas()
    metrics = run.metrics.to_pandas()
    fills = store.sql(
        "SELECT count(*) AS n, sum(abs(qty * price)) AS notional, "
        "sum(fee) AS fees FROM fills WHERE run_id = $r",
        params=q,
    ).to_pylist()[0]
    p = _curve(run)  # the portfolio as the metrics define it, with its capital
    n_inst = max(1, daily["instrument"].nunique()) if not daily.empty else 1
    body = _freshness(store, run, p)
    port = metrics[metrics["scope"] == "portfolio"]
    if not port.empty:
        body.append("<h2>Portfolio metrics</h2>")
        body.append(_table(port.drop(columns=["run_id", "instrument", "scope"])))
    body.append("<h2>Equity and drawdown</h2>")
    body.append(_fig_html(_equity_figure(p, f"portfolio of {n_inst} instrument(s)"), "equity"))
    body.append("<h2>Monthly returns (% of capital)</h2>")
    if not p.empty:
        body.append(_monthly_table(p.set_index("date")["ret"]))
    days = len(p)
    pos_days = int((p["pnl"] > 0).sum()) if days else 0
    stats = pd.DataFrame(
        [
            {
                "days": days,
                "positive days": f"{100 * pos_days / days:.1f}%" if days else "",
                "best day": p["pnl"].max() if days else None,
                "worst day": p["pnl"].min() if days else None,
                "average day": p["pnl"].mean() if days else None,
                "fills": fills["n"],
                "traded notional": fills["notional"],
                "fees": fills["fees"],
                "avg fill notional": (fills["notional"] / fills["n"]) if fills["n"] else None,
            }
        ]
    )
    body.append("<h2>Trade statistics</h2>" + _table(stats))
    inst = metrics[metrics["scope"] == "instrument"].drop(columns=["run_id", "scope"])
    body.append(
        "<h2>Instruments</h2>"
        + _table(inst.sort_values("total_pnl", ascending=False), left=("instrument",))
    )
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
        f"{json.dumps(rec.exec_params)} · {_from(rec.start)} · universe "
        f"{rec.universe if isinstance(rec.universe, str) else len(rec.universe)}"
        + (f" · fork of {rec.fork['base']} from {rec.fork['effective']}" if rec.fork else "")
        + f" · made {time.strftime('%Y-%m-%d %H:%M')}"
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
        f"m.turnover, {FAILED_PAIRS} FROM sweeps s JOIN runs r USING (run_id) "
        "LEFT JOIN metrics m ON m.run_id = r.run_id AND m.scope = 'portfolio' "
        f"{FAILED_JOIN} WHERE s.sweep = $s",
        params={"s": name},
    ).to_pandas()
    if metric not in ("total_pnl", "sharpe", "max_drawdown", "fills", "fees", "turnover"):
        raise UsageError(f"unknown metric {metric!r}")
    body = []
    pcols = [c for c in t.columns if c.startswith("p_") and t[c].notna().any()]
    for c in pcols:  # integer parameters read as integers
        if (t[c].dropna() % 1 == 0).all():
            t[c] = t[c].astype("Int64")
    varying = [c for c in pcols if t[c].nunique() > 1]
    if len(varying) >= 2:
        x, y = varying[0], varying[1]
        best = "min" if metric == "max_drawdown" else "max"
        piv = t.pivot_table(index=y, columns=x, values=metric, aggfunc=best)
        fig = go.Figure(
            go.Heatmap(
                z=piv.to_numpy(),
                x=[str(v) for v in piv.columns],
                y=[str(v) for v in piv.index],
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
    board = t.sort_values(
        [metric, "run_id"], ascending=[metric == "max_drawdown", True], na_position="last"
    )
    cols = ["run_id", *pcols, "sharpe", "total_pnl", "max_drawdown", "fills", "fees", "turnover"]
    cols.append("failed_pairs")
    body.append("<h2>Leaderboard</h2>" + _table(board[cols].head(30), left=("run_id",)))
    board = board[board[metric].notna()]  # the best run: one with results
    if not board.empty:
        best = board.iloc[0]["run_id"]
        curve = _curve(store.run(best))
        body.append(f"<h2>Best run {best}: equity and drawdown</h2>")
        body.append(_fig_html(_equity_figure(curve, f"run {best}"), "equity"))
    sub = (
        f"sweep {name} · {sw['spec']['strategy']} · {len(sw['runs'])} runs · grid "
        f"{json.dumps(sw['spec']['grid'])} · made {time.strftime('%Y-%m-%d %H:%M')}"
    )
    return _page(f"incbt sweep report: {name}", sub, body)


def report(store: Any, target: str, path: str, metric: str = "sharpe") -> str:
    """Write the report of a run (id or prefix) or a sweep (name) to ``path``."""
    from incbt.sweep import get_sweep

    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(folder):
        raise NotFoundError(
            f"-o {path}: "
            + (f"{path} is a folder" if os.path.isdir(path) else f"no folder {folder}")
            + ": give a file in an existing folder (e.g. -o report.html)"
        )

    if get_sweep(store, target) is not None:
        text = sweep_report(store, target, metric)
    else:
        try:
            text = run_report(store, target)
        except NotFoundError:
            raise NotFoundError(
                f'no sweep or run {target!r} (`incbt query "SELECT * FROM sweeps"` and '
                '`incbt query "SELECT run_id, strategy, params FROM runs"` list them)'
            ) from None
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path
