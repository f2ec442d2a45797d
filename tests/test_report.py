"""Reports: self-contained HTML whose charts draw in a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import fails_strategy

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
                    "Trade statistics", "Instruments"):
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
    assert charts >= (1 if which == 0 else 2), dom[:500]
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
    page = Path(s.report(rid, str(tmp_path / "r.html"))).read_text()
    assert "Failed: 2 instrument(s)" in page and "gave up" in page
