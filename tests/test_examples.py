"""The documented research loop runs and does what it says."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "research_loop.py"


def test_research_loop(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("research_loop", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.main(str(tmp_path))
    assert out["verified"]
    assert len(out["before"]) == 3 and len(out["after"]) == 3
    # the update computed only from the corrected day (2024-05-15) on, for 9 runs x 8
    # instruments, not the whole history
    days_from_fix = 23  # 2024-05-15 .. 2024-06-14: 13 weekdays in May, 10 in June
    assert out["update"].report.bars_processed == 9 * 8 * days_from_fix * 390
    assert (tmp_path / "grid.html").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "<Sweep 'grid': 9 run(s)" in printed and "verified: True" in printed
