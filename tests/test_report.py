"""Reports: self-contained HTML whose charts draw in a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from cli_process import run_incbt
from conftest import MOM, fails_strategy

import incbt
from incbt.bars.generate import generate


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rep")
    generate(str(tmp / "d"), instruments=3, days=30, start="2024-01-15", seed=61)
    s = incbt.init(str(tmp / "s"))
    s.ingest(str(tmp / "d"))
    run = s.backtest("sma_cross", {"fast": 5, "slow": 40}, fee_bps=1)
    s.sweep("sma_cross", {"fast": [5, 10, 20], "slow": [40, 80]}, name="g")
    return s.report(run.run_id[:8], str(tmp / "run.html")), s.report("g", str(tmp / "sw.html"))


class _Tags(HTMLParser):
    """The document's real tags (script bodies are data to the parser, not tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.external: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for k, v in attrs:
            if k in ("src", "href") and v and not v.startswith(("#", "data:")):
                self.external.append((tag, v))


def test_reports_are_self_contained(reports):
    for path in reports:
        text = Path(path).read_text(encoding="utf-8")
        tags = _Tags()
        tags.feed(text)
        assert tags.external == []  # nothing to fetch: opens without a network
        assert "Plotly.newPlot" in text
    run_html, sweep_html = (Path(p).read_text(encoding="utf-8") for p in reports)
    for section in ("Portfolio metrics", "Equity and drawdown", "Monthly returns",
                    "Trade statistics", "Round trips", "Instruments"):
        assert section in run_html
    for section in ("sharpe over fast x slow", "Leaderboard", "Best run"):
        assert section in sweep_html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None,
                    reason="no Chromium here (make test installs Debian's chromium)")
@pytest.mark.parametrize("which", [0, 1], ids=["run", "sweep"])
def test_charts_draw_in_headless_chromium(reports, tmp_path, which):
    path = reports[which]
    dom = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=10000", "--dump-dom", f"file://{os.path.abspath(path)}"],
        capture_output=True, text=True, timeout=120,
    ).stdout
    # Plotly draws each chart as SVG inside a .plot-container once its JS has run
    charts = len(re.findall(r'class="plot-container', dom))
    assert charts >= 2, dom[:500]  # a run's equity and its trades' returns; a sweep's heatmap
    # and its best run's equity
    assert "main-svg" in dom
    assert re.search(r'class="(scatterlayer|heatmaplayer|barlayer)', dom) or "trace" in dom


def test_a_run_report_says_how_fresh_its_numbers_are(tmp_path):
    """A run's report says the last day with results and the last day with bars, and
    warns when an update would recompute the run (new bars here), naming why."""
    g = dict(instruments=2, days=12, start="2024-01-15", seed=5)
    generate(str(tmp_path / "a"), **g, to_day="2024-01-25")
    generate(str(tmp_path / "b"), **g, from_day="2024-01-26")
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "a"))
    run = s.backtest("sma_cross", {"fast": 5, "slow": 40})
    fresh = Path(s.report(run.run_id, str(tmp_path / "r1.html"))).read_text(encoding="utf-8")
    assert ("results through 2024-01-25; bars of its instruments through 2024-01-25"
            in fresh) and "Not up to date" not in fresh
    s.ingest(str(tmp_path / "b"))
    stale = Path(s.report(run.run_id, str(tmp_path / "r2.html"))).read_text(encoding="utf-8")
    assert "results through 2024-01-25; bars of its instruments through 2024-01-30" in stale
    assert "Not up to date: 2 of its instrument(s)" in stale and "new day(s)" in stale


@pytest.mark.filterwarnings("ignore::incbt.StrategyFailureWarning")  # failing is the point
def test_reports_say_what_failed(tmp_path):
    """A run's failed instruments are listed with their errors, and a sweep's runs that
    failed everywhere stay in its leaderboard with their failed pairs (both were
    silent, found 2026-12-05)."""
    generate(str(tmp_path / "d"), instruments=2, days=5, start="2024-01-15", seed=61)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    f = fails_strategy(tmp_path)
    s.sweep("fails", {"n": [5, 7], "give_up": [0, 1]}, name="f", strategies_file=f)
    sw = Path(s.report("f", str(tmp_path / "f.html"))).read_text()
    assert sw.count("gave up") == 0 and "<th class=\"\">failed_pairs</th>" in sw
    failed_run = s.sql("SELECT run_id FROM runs WHERE p_give_up = 1 AND p_n = 5")
    rid = failed_run["run_id"][0].as_py()
    assert rid in sw  # listed, though it has no results
    row = next(r for r in _tables(sw)["Leaderboard"] if r["run_id"] == rid)
    assert row["sharpe"] == row["fills"] == "n/a (failed)" and row["failed_pairs"] == "2"
    # the heatmap keeps a value whose runs all failed, and says so (QA 2026-12-06: gone)
    assert "n\\u002fa (every run failed)" in sw  # as Plotly escapes the JSON
    page = Path(s.report(rid, str(tmp_path / "r.html"))).read_text()
    assert "Failed: 2 instrument(s)" in page and "gave up" in page


def _text(cell: str) -> str:
    return re.sub(r"<[^>]+>", "", cell).strip()


def _tables(page: str) -> dict[str, list[dict[str, str]]]:
    """Each table of a report by the heading before it: its rows as {column: cell text}
    (the month-by-year calendar of returns left out: a month without days is blank)."""
    out = {}
    for m in re.finditer(r"<h2>([^<]*)</h2>(?:<p[^>]*>.*?</p>)*(<table>.*?</table>)", page):
        rows = re.findall(r"<tr>(.*?)</tr>", m.group(2))
        head = [_text(c) for c in re.findall(r"<th[^>]*>.*?</th>", rows[0])]
        if head[:2] == ["year", "Jan"]:
            continue
        out[m.group(1)] = [
            dict(zip(head, (_text(c) for c in re.findall(r"<td[^>]*>.*?</td>", r)), strict=True))
            for r in rows[1:]
        ]
    return out


def _blank(tables: dict[str, list[dict[str, str]]]) -> list[tuple[str, str]]:
    return [(name, k) for name, rows in tables.items() for r in rows for k, v in r.items()
            if v == ""]


def test_a_run_without_fills_shows_no_blank_cell(tmp_path):
    """A run that never trades (slow longer than the data: no cross) has a flat equity:
    its sums of fills are 0, its average fill and its Sharpe are n/a, saying why; none
    of its metric cells is blank (traded notional, fees and average fill were, QA
    2026-12-05). So for a run of one day (Sharpe needs 2) and one that starts after the
    last bar (no day at all)."""
    generate(str(tmp_path / "d"), instruments=2, days=6, start="2024-01-15", seed=5)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    run = s.backtest("sma_cross", {"fast": 5, "slow": 5000})
    assert s.sql("SELECT count(*) n FROM fills")["n"][0].as_py() == 0
    page = Path(s.report(run.run_id, str(tmp_path / "flat.html"))).read_text()
    t = _tables(page)
    assert set(t) == {"Portfolio metrics", "Trade statistics", "Round trips", "Instruments"}
    assert _blank(t) == []
    trips = {r["statistic"]: r["value"] for r in t["Round trips"]}  # no trade: each
    # average says why it is not there
    assert (trips["trades"], trips["win_rate_pct"]) == ("0", "n/a (no closed trade)")
    assert trips["profit_factor"] == "n/a (no losing trade)"
    # nor the monthly returns' months without a day (QA 2026-12-05): 11 of them here
    assert not re.search(r"<td[^>]*>\s*</td>", page)
    assert page.count('title="no day with results">–</td>') == 11
    assert t["Portfolio metrics"][0]["sharpe"] == "0 (flat equity)"
    assert [r["sharpe"] for r in t["Instruments"]] == ["0 (flat equity)"] * 2
    assert "Sharpe 0 (why): where the daily returns do not vary" in page
    stats = t["Trade statistics"][0]
    assert (stats["fills"], stats["traded notional"], stats["fees"]) == ("0", "0", "0")
    assert stats["avg fill notional"] == "n/a (no fills)" and stats["days"] == "6"

    one = s.backtest("sma_cross", {"fast": 5, "slow": 40}, start="2024-01-22")
    t = _tables(Path(s.report(one.run_id, str(tmp_path / "one.html"))).read_text())
    assert _blank(t) == [] and t["Portfolio metrics"][0]["days"] == "1"
    assert t["Portfolio metrics"][0]["sharpe"] == "0 (1 day)"

    later = s.backtest("sma_cross", {"fast": 5, "slow": 40}, start="2024-03-01")
    page = Path(s.report(later.run_id, str(tmp_path / "later.html"))).read_text()
    t = _tables(page)
    assert _blank(t) == [] and set(t) == {"Trade statistics", "Round trips"}
    assert t["Trade statistics"][0]["best day"] == "n/a (no days)"
    assert "no results: the run starts 2024-03-01, after the last day with bars" in page


def test_a_sweep_report_says_why_a_flat_runs_sharpe_is_0(tmp_path):
    """In a sweep's leaderboard a run that never traded shows Sharpe "0 (flat equity)":
    0 by SEMANTICS.md's definition, ranked as 0 (as `leaderboard` ranks it), and said,
    not a bare 0 that reads as computed."""
    generate(str(tmp_path / "d"), instruments=2, days=6, start="2024-01-15", seed=5)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    s.sweep("sma_cross", {"fast": [5], "slow": [30, 40, 5000]}, name="g")
    page = Path(s.report("g", str(tmp_path / "g.html"))).read_text()
    board = _tables(page)["Leaderboard"]
    assert _blank({"Leaderboard": board}) == []
    flat = [r for r in board if r["p_slow"] == "5000"]
    assert len(flat) == 1 and flat[0]["sharpe"] == "0 (flat equity)"
    assert "Sharpe 0 (why)" in page
    lb = s.sweeps()["g"].leaderboard()
    assert [r["run_id"] for r in board] == lb.column("run_id").to_pylist()
    assert f"Best run {board[0]['run_id']}" in page


def _warning_at_top(page: str) -> str:
    """The warning the report shows before its first section ("" if none)."""
    top = page[page.index("<body>"):page.index("<h2>")]
    m = re.search(r'<p class="warn">(.*?)</p>', top)
    return m.group(1).replace("&#x27;", "'") if m else ""


def test_a_sweep_report_warns_when_its_runs_are_not_up_to_date(tmp_path):
    """As a run's report does, a sweep's says at its top how many of its runs an update
    would recompute (new bars here), why, and the fix; once updated, it says nothing
    (the sweep report never warned)."""
    g = dict(instruments=2, days=12, start="2024-01-15", seed=5)
    generate(str(tmp_path / "a"), **g, to_day="2024-01-25")
    generate(str(tmp_path / "b"), **g, from_day="2024-01-26")
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "a"))
    s.sweep("sma_cross", {"fast": [5, 10], "slow": [40, 80]}, name="g")
    s.backtest("sma_cross", {"fast": 3, "slow": 40})  # stale too, not the sweep's
    fresh = Path(s.report("g", str(tmp_path / "1.html"))).read_text()
    assert _warning_at_top(fresh) == "" and "Not up to date" not in fresh
    s.ingest(str(tmp_path / "b"))
    warn = _warning_at_top(Path(s.report("g", str(tmp_path / "2.html"))).read_text())
    assert warn.startswith("Not up to date: 4 of the sweep's 4 runs would be recomputed "
                           "by `incbt update` (3 new day(s) after 2024-01-25"), warn
    assert "run `incbt update` to bring them up to date" in warn
    # written during a write (an update, say): no "run `incbt update`" (QA 2026-12-06)
    with s.lock():
        busy = _warning_at_top(Path(s.report("g", str(tmp_path / "w.html"))).read_text())
        run = _warning_at_top(Path(s.report(s.runs()[0].run_id, str(tmp_path / "r.html")))
                              .read_text())
    for w in (busy, run):
        assert "Not up to date" in w and "run `incbt update`" not in w, w
        assert (f"A write is under way (another thread of this process (pid {os.getpid()}"
                in w and "again once it ends" in w), w
    s.update()
    assert _warning_at_top(Path(s.report("g", str(tmp_path / "3.html"))).read_text()) == ""


def test_reports_warn_when_the_strategys_code_changed(tmp_path):
    """A run whose strategy's code changed since it ran is not up to date (`incbt update`
    replaces it by a run of the new code): its report says so, and its sweep's (the run
    report said nothing: ``status()`` lists the run of the new code, not this one)."""
    generate(str(tmp_path / "d"), instruments=2, days=4, start="2024-03-04", seed=5)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    f = tmp_path / "strats.py"
    f.write_text(MOM.replace("{SHORT}", "-1"))
    s.sweep("mom", {"n": [5, 12]}, name="m", strategies_file=str(f))
    run = s.backtest("mom", {"n": 12}, strategies_file=str(f))  # a run of the sweep
    assert _warning_at_top(Path(s.report(run.run_id, str(tmp_path / "r0.html"))).read_text()) == ""
    f.write_text(MOM.replace("{SHORT}", "0"))  # the researcher edits the step
    new_id = dict(s.status().replaced)[run.run_id]
    warn = _warning_at_top(Path(s.report(run.run_id, str(tmp_path / "r1.html"))).read_text())
    assert warn.startswith("Not up to date: its strategy's code changed since it ran: "
                           f"`incbt update` replaces it by run {new_id}"), warn
    warn = _warning_at_top(Path(s.report("m", str(tmp_path / "m1.html"))).read_text())
    assert warn.startswith("Not up to date: 2 of the sweep's 2 runs would be recomputed by "
                           "`incbt update` (strategy code changed"), warn
    s.update()
    assert _warning_at_top(Path(s.report("m", str(tmp_path / "m2.html"))).read_text()) == ""
    # the replaced run's own report says which run holds its results now
    page = Path(s.report(run.run_id, str(tmp_path / "r2.html"))).read_text()
    assert f"the run was replaced by run {new_id} when its strategy&#x27;s code changed" in page


def _header(page: str) -> str:
    return re.search(r"<div class='sub'>(.*?)</div>", page).group(1)


def test_the_sweep_report_shows_its_latest_grid_and_how_it_grew(tmp_path, monkeypatch):
    """The header says the sweep's grid as -g says it: the latest of the record's
    ``grids`` (one a call that made or grew it), and how many times it grew from which;
    a record without ``grids`` (older ones) says its grid alone."""
    generate(str(tmp_path / "d"), instruments=1, days=3, start="2024-01-15", seed=5)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    s.sweep("sma_cross", {"fast": [5, 10], "slow": [40]}, name="g")
    one = _header(Path(s.report("g", str(tmp_path / "1.html"))).read_text())
    assert " · 2 runs · grid fast=5,10 slow=40 · report written " in one
    s.sweep("sma_cross", {"fast": [5, 10, 20], "slow": [40]}, name="g", resume=True)
    two = _header(Path(s.report("g", str(tmp_path / "2.html"))).read_text())
    assert (" · 3 runs over fast=5,10,20 slow=40 · grid fast=5,10,20 slow=40 (grown 1 time; "
            "earlier: fast=5,10 slow=40) · report written ") in two, two

    import incbt.sweep as sweep_mod

    real = sweep_mod.get_sweep

    def record(edit):
        def get(store, name):
            rec = real(store, name)
            return None if rec is None else edit(dict(rec))
        monkeypatch.setattr(sweep_mod, "get_sweep", get)
        return _header(Path(s.report("g", str(tmp_path / "x.html"))).read_text())

    old = record(lambda r: {k: v for k, v in r.items() if k != "grids"})  # an older record
    assert " · grid fast=5,10,20 slow=40 · report written " in old, old
    grids = [{"fast": list(range(1, 3 + k)), "slow": "40:80:20"} for k in range(7)]
    many = record(lambda r: {**r, "grids": grids})
    assert ("grid fast=1,2,3,4,...,8 (8 values) slow=40:80:20 (grown 6 times; earlier: "
            "fast=1,2 slow=40:80:20; fast=1,2,3 slow=40:80:20; (2 more); "
            "fast=1,2,3,4,5,6 slow=40:80:20; fast=1,2,3,4,...,7 (7 values) slow=40:80:20)"
            " · report written ") in many, many


def test_a_metric_is_for_a_sweeps_report(tmp_path):
    """QA 2026-12-06: `incbt report RUN --metric total_pnl` was taken and ignored."""
    generate(str(tmp_path / "d"), instruments=2, days=3, start="2024-01-15", seed=61)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    run = s.backtest("sma_cross", {"fast": 3, "slow": 20})
    with pytest.raises(incbt.UsageError, match="a run's report shows every metric"):
        s.report(run.run_id, str(tmp_path / "r.html"), "total_pnl")
    with pytest.raises(incbt.NotFoundError, match="no sweep or run 'nosuch'"):
        s.report("nosuch", str(tmp_path / "r.html"), "total_pnl")
    assert s.report(run.run_id, str(tmp_path / "r.html"))


def test_a_run_reports_header_names_its_instruments_and_a_dropped_run_is_said(tmp_path):
    """QA 2026-12-06: the header said "universe 2" for two named instruments; a report of
    a dropped run said "no sweep or run" (SQL's queries said it was dropped)."""
    generate(str(tmp_path / "d"), instruments=3, days=3, start="2024-01-01", seed=1)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    run = s.backtest("sma_cross", {"fast": 3, "slow": 20}, instruments=["S0000", "S0002"])
    path = s.report(run.run_id, str(tmp_path / "r.html"))
    assert "2 instrument(s): S0000, S0002" in Path(path).read_text(encoding="utf-8")
    s.drop([run.run_id])
    with pytest.raises(incbt.NotFoundError, match=f"run {run.run_id} was dropped"):
        s.report(run.run_id, str(tmp_path / "r2.html"))
    # a dropped sweep too (QA 2026-12-08: "no sweep or run 'g'", as for a typo)
    s.sweep("sma_cross", {"fast": [3, 4], "slow": [20]}, name="g")
    seq = s.drop([], sweep="g").seq
    with pytest.raises(incbt.NotFoundError, match=rf"sweep 'g' was dropped \(event {seq}\)"):
        s.report("g", str(tmp_path / "g.html"))


def test_a_sweep_whose_runs_were_all_dropped_is_no_report(tmp_path):
    """QA 2026-12-06: its report was written, exit 0: 0 runs, an empty leaderboard."""
    generate(str(tmp_path / "d"), instruments=2, days=5, start="2024-01-15", seed=5)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    sw = s.sweep("sma_cross", {"fast": [3], "slow": [20]}, name="one")
    s.drop(sw.run_ids)
    with pytest.raises(incbt.NotFoundError, match="sweep 'one' has no run left: its runs "
                       "were dropped"):
        s.report("one", str(tmp_path / "one.html"))
    assert not (tmp_path / "one.html").exists()


def test_a_sweep_with_some_runs_dropped_says_so_and_names_their_cells(tmp_path):
    """QA 2026-12-07: the page said nothing of them, and their cells said "a point the
    strategy rejects, or not sampled"."""
    generate(str(tmp_path / "d"), instruments=2, days=5, start="2024-01-15", seed=5)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    sw = s.sweep("sma_cross", {"fast": [3, 5], "slow": [20, 30]}, name="g")
    gone = s.sql("SELECT run_id FROM runs WHERE p_fast = 5 AND p_slow = 20")["run_id"][0]
    s.drop([gone.as_py()])
    page = Path(s.report("g", str(tmp_path / "g.html"))).read_text(encoding="utf-8")
    assert ("1 of the sweep&#x27;s 4 runs were dropped (`incbt drop`) and are not shown: "
            "`incbt sweep sma_cross --name g --resume` computes them again.") in page
    assert page.count("no run: dropped (incbt drop)") == 1
    assert "not sampled" not in page and len(sw.run_ids) == 3  # of the 4 it made


def test_a_reports_integers_have_thousands_separators_as_its_floats_do():
    """QA 2026-12-07: fills "5644" in one sweep's leaderboard, "35,627" in another's (a
    NULL had made that column float)."""
    import numpy as np

    from incbt.report import _fmt

    assert _fmt(np.int64(5644)) == _fmt(5644) == _fmt(5644.0) == "5,644"
    assert _fmt(12) == "12" and _fmt("run 1234") == "run 1234"


def test_a_report_to_standard_output(tmp_path):
    """QA 2026-12-06: `-o -` wrote a file named "-"; it is standard output, as
    elsewhere; a sweep of one run says "1 run"."""


    generate(str(tmp_path / "d"), instruments=2, days=5, start="2024-01-15", seed=5)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    s.sweep("sma_cross", {"fast": [3], "slow": [20]}, name="one")
    p = run_incbt(["--store", s.path, "report", "one", "-o", "-"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("<!DOCTYPE html>") and "· 1 run ·" in p.stdout
    assert "standard output" in p.stderr and not (tmp_path / "-").exists()


def test_a_sweeps_report_ranks_by_a_statistic(tmp_path):
    """--metric takes the stats query's values too (sortino, calmar, ...): the heatmap of
    it, and the leaderboard ranked by it, with its column; the best run is the
    leaderboard's first (QA 2026-12-07: refused)."""
    generate(str(tmp_path / "d"), instruments=3, days=8, start="2024-01-15", seed=62)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    sw = s.sweep("sma_cross", {"fast": [5, 10], "slow": [40, 80]}, name="g")
    for metric in ("sortino", "max_drawdown_days"):
        html = Path(sw.report_html(tmp_path / f"{metric}.html", metric)).read_text("utf-8")
        assert f"<h2>{metric} over fast x slow</h2>" in html
        best = sw.leaderboard(metric, 1).column("run_id")[0].as_py()
        assert f"<h2>Best run {best}: equity and drawdown</h2>" in html
    with pytest.raises(incbt.UsageError, match="unknown metric 'nope'; .*sortino"):
        sw.report_html(tmp_path / "x.html", "nope")


def test_a_heatmap_cell_of_no_value_says_why_not_every_run_failed(tmp_path):
    """A statistic undefined for its runs (annual_volatility of one day) or runs with no
    day yet: the heatmap's cell and the leaderboard say so (QA 2026-12-07: "n/a (every
    run failed)" on the heatmap, a bare "n/a" in the leaderboard, no run having failed)."""
    generate(str(tmp_path / "d"), instruments=2, days=3, start="2024-01-15", seed=62)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    sw = s.sweep("sma_cross", {"fast": [2, 3], "slow": [5, 6]}, name="g", start="2024-01-17")
    html = Path(sw.report_html(tmp_path / "v.html", "annual_volatility")).read_text("utf-8")
    assert "every run failed" not in html
    assert html.count("n\\u002fa (one day)") == 4  # the heatmap's cells (JSON-escaped)
    assert html.count(">n/a (one day)</td>") == 4  # the leaderboard's
    later = s.sweep("sma_cross", {"fast": [2, 3], "slow": [5, 6]}, name="later",
                    start="2031-01-01")
    html = Path(later.report_html(tmp_path / "l.html", "sortino")).read_text("utf-8")
    assert "every run failed" not in html
    assert html.count("n\\u002fa (no results yet)") == 4
