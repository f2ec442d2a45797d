"""The docs keep up: every command and setting is in README.md."""

from pathlib import Path

from incbt.cli import app
from incbt.settings import SETTINGS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_command_is_documented():
    import typer.main

    group = typer.main.get_command(app)
    for name in group.commands:
        assert f"incbt {name}" in README, f"`incbt {name}` is not in README.md"


def test_every_setting_is_documented():
    for s in SETTINGS:
        assert f"`{s.name}`" in README, f"setting {s.name} is not in README.md"


def test_the_cli_reference_says_what_strategies_check_runs():
    """QA 2026-12-07: docs/cli.md said `--check` runs a step "over two bars", after it
    ran over days of synthetic bars, whole, twice and resumed from a snapshot (README)."""
    cli_md = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
    row = next(ln for ln in cli_md.splitlines() if ln.startswith("| `incbt strategies"))
    assert "two bars" not in row
    assert "synthetic bars" in row and "resumed from a day's snapshot" in row, row


def test_the_two_setup_commands_are_documented():
    assert "make demo" in README and "make test" in README


def test_the_five_minute_tour_runs_as_written(tmp_path):
    """README's tour, typed as a newcomer would (3 instruments instead of 50, and its Ray
    sweep without Ray, to be quick): every command succeeds and does what its comment
    says."""
    import os
    import subprocess
    import sys

    start = README.index("```sh\nsource .venv/bin/activate") + len("```sh\n")
    script = README[start : README.index("```", start)]
    first, script = script.split("\n", 1)  # the venv's incbt: this one's, on PATH below
    assert first.startswith("source .venv/bin/activate")
    script = script.replace("/tmp/tour", str(tmp_path / "tour"))  # tour-data too
    script = script.replace("--instruments 50", "--instruments 3")
    # its Ray sweep on this machine's executor: a local Ray's start is ~15 s of the test's
    # ~33 (2026-12-07), and the Ray tests run `incbt sweep --workers 2` themselves
    ray = "--name bo --workers 2"
    assert ray in script
    script = script.replace(ray, "--name bo")
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.setdefault("RAY_AUTH_MODE", "disabled")
    p = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    out = p.stdout
    assert p.returncode == 0, out[-3000:] + p.stderr[-3000:]
    assert "nothing changed, no event" in out  # the same files again
    assert "added 3 new day(s)" in out and "would add 0 new day(s) and 3 correction(s)" in out
    assert "already up to date: nothing computed" in out  # the same backtest again
    assert "sweep grid1: 25 run(s), 5 new" in out  # the wider grid under --resume
    assert "identical to a from-scratch run" in out  # verify
    assert "dropped 10 run(s)" in out and (tmp_path / "tour-data" / "grid1.html").exists()
    assert "win_rate_pct" in out  # the sweep's trade statistics


def test_the_python_api_block_runs_as_written(tmp_path):
    """README's Python API block, pasted into a fresh folder (3 instruments instead of
    20, and its Ray sweep on this process: the Ray tests cover that), runs without an
    error or a warning (QA 2026-12-06: it named a file defined further down, forked after
    its own data's last day and updated from a folder it never made)."""
    import os
    import subprocess
    import sys

    start = README.index("```python\n", README.index("## The Python API")) + len("```python\n")
    code = README[start : README.index("```", start)]
    for a, b in (("instruments=20", "instruments=3"), (", workers=2)", ")")):
        assert a in code
        code = code.replace(a, b)
    (tmp_path / "api.py").write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCBT_")}
    p = subprocess.run([sys.executable, "-W", "error", "api.py"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert (tmp_path / "grid1.html").exists() and (tmp_path / "store").is_dir()


def test_each_ingest_option_says_its_python_keyword():
    """QA 2026-12-08: "Input files" gave the Python keyword of --ts-unit, --instrument,
    --ts-format, --header, --decimal and --join-days but not of --map (`columns=`; a
    notebook's `map=` got Python's "unexpected keyword argument"). Each keyword named
    is one Store.ingest takes, and --map's is named."""
    import inspect
    import re

    import incbt

    section = README[README.index("### Input files") : README.index("### SQL tables")]
    named = set(re.findall(r"Python: `(\w+)=", section)) | set(
        re.findall(r"\(`(\w+)=`\)", section)
    )
    takes = set(inspect.signature(incbt.Store.ingest).parameters)
    assert "columns" in named and named <= takes, (named, takes)
