"""The CLI end to end, as a user runs it (a process of its own: tests/cli_process.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from cli_process import INCBT, run_incbt

import incbt

INCBT_SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "incbt")


def run(*args, store=None, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCBT_")}
    if store:
        env["INCBT_STORE"] = str(store)
    p = run_incbt(args, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}: {p.stderr}")
    return p


def test_help_for_every_command():
    top = run("--help").stdout
    for cmd in ("init", "generate", "ingest", "query", "log", "status", "settings"):
        assert cmd in top
        assert "Usage:" in run(cmd, "--help").stdout
    assert run("-h").stdout == top and "Usage: incbt ingest" in run("ingest", "-h").stdout


def test_generate_ingest_query_log(tmp_path):
    s = tmp_path / "store"
    run("init", store=s)
    run("generate", str(tmp_path / "d"), "--instruments", "2", "--days", "3", store=s)
    out = run("ingest", str(tmp_path / "d"), store=s).stdout
    assert "added 6 new day(s) and 0 correction(s) in 2 instrument(s)" in out and "event 2" in out
    again = run("ingest", str(tmp_path / "d"), store=s).stdout
    assert "nothing changed, no event" in again
    assert "6 day(s) unchanged" in again and "instrument(s)" not in again  # none changed
    q = run("query", "SELECT count(*) AS n FROM bars", "--output", "json", store=s).stdout
    assert json.loads(q) == {"n": 2 * 3 * 390}
    csv = run("query", "SELECT instrument, count(*) AS n FROM bars GROUP BY instrument "
              "ORDER BY instrument", "--output", "csv", store=s).stdout
    assert csv.splitlines() == ['"instrument","n"', '"S0000",1170', '"S0001",1170']
    pq_out = tmp_path / "out.parquet"
    run("query", "SELECT * FROM bars", "--output", "parquet", "-o", str(pq_out), store=s)
    assert pq_out.stat().st_size > 0
    logj = run("log", "--output", "json", store=s).stdout.splitlines()
    assert [json.loads(x)["kind"] for x in logj] == ["ingest", "init"]
    none = run("log", "--kind", "sweep", "--output", "json", store=s)
    assert none.stdout == "" and "no events of kind 'sweep' in the log; it holds: ingest, init" \
        in none.stderr
    both = run("log", "--kind", "init", "--kind", "ingest", "--limit", "0", "--output",
               "json", store=s).stdout.splitlines()  # repeated: each kind (the last won)
    assert [json.loads(x)["kind"] for x in both] == ["ingest", "init"]
    one = run("log", "--kind", "init", "--kind", "sweep", "--output", "json", store=s)
    assert [json.loads(x)["kind"] for x in one.stdout.splitlines()] == ["init"]
    typo = run("log", "--kind", "ingst", store=s, check=False)
    assert typo.returncode == 1 and "no event kind 'ingst'; the kinds are init, ingest" \
        in typo.stderr
    asof = run("query", "SELECT count(*) AS n FROM bars", "--as-of", "1", "--output", "json",
               store=s).stdout
    assert json.loads(asof) == {"n": 0}
    # results are kept as they are now: a query of the past that reads them is refused
    r = run("query", "SELECT count(*) FROM daily", "--as-of", "1", store=s, check=False)
    assert r.returncode == 1 and "the table daily holds the results as they are now" in r.stderr
    st = run("status", store=s).stdout
    assert "instruments" in st and "2,340" in st and " MiB" in st  # bars, bytes for people


def test_global_store_option_and_not_a_store(tmp_path):
    p = run("--store", str(tmp_path / "nope"), "log", check=False)
    assert p.returncode == 1
    assert f"no store at {tmp_path / 'nope'}. Create one" in p.stderr and "init" in p.stderr
    (tmp_path / "empty").mkdir()
    p = run("--store", str(tmp_path / "empty"), "log", check=False)
    assert p.returncode == 1 and "is not an incbt store. Create one" in p.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCBT_")}
    # a newcomer's first command, where no ./store is
    p = run_incbt(["status"], env=env, cwd=tmp_path)
    assert p.returncode == 1 and "no store at store (the default: give another with " \
        "--store or INCBT_STORE)" in p.stderr, p.stderr
    f = tmp_path / "afile"
    f.write_text("x")  # a file: init refuses it too, so the message does not offer it
    p = run("--store", str(f), "status", check=False)
    assert p.returncode == 1 and "is a file, not an incbt store (a store is a folder)" in p.stderr


@pytest.mark.parametrize(("args", "code"), [
    (("query", "SELEC 1"), 1),
    (("query", "--as-of", "99", "SELECT 1"), 1),
    (("ingest",), 2),
    (("ingest", "--bogus", "x"), 2),
    (("nosuchcommand",), 2),
    (("query", "SELECT 1", "--output", "xml"), 2),
    (("query", "nosuchquery"), 1),  # one word: a query name, and no query has it
    (("verify", "0123abcd"), 1),  # no such run
    (("gc", "--keep-days", "nan", "--dry-run"), 2),
    (("log", "--limit", "-1"), 2),
    (("backtest", "sma_cross", "-p", "fast=5", "-p", "slow=20", "--instruments", ""), 2),
    (("report", ""), 2),  # an empty id
    (("sweep", "sma_cross", "-g", "fast=5", "-g", "fast=6", "-g", "slow=20"), 2),
    (("sweep", "sma_cross", "-g", "fast=5", "-g", "slow=20", "--workers", "0"), 2),
    (("sweep", "sma_cross", "-g", "fast=1:4000:1", "-g", "slow=2:4000:1"), 2),
])
def test_errors_exit_codes(tmp_path, args, code):
    s = tmp_path / "store"
    run("init", store=s)
    p = run(*args, store=s, check=False)
    assert p.returncode == code, p.stderr
    assert p.stderr.strip()
    assert "Traceback" not in p.stderr


def test_gc(tmp_path):
    s = tmp_path / "store"
    run("init", store=s)
    d = tmp_path / "d"
    run("generate", str(d), "--instruments", "2", "--days", "3", "--start", "2024-01-29", store=s)
    run("ingest", str(d), store=s)  # event 2
    run("generate", str(tmp_path / "r"), "--instruments", "2", "--days", "3", "--start",
        "2024-01-29", "--from", "2024-01-30", "--to", "2024-01-30", "--revise", "2024-01-30",
        store=s)
    run("ingest", str(tmp_path / "r"), store=s)  # event 3: both month files superseded
    bars = sorted(p.name for p in (s / "bars").rglob("*.parquet"))
    assert len(bars) == 4
    dry = run("gc", "--dry-run", store=s).stdout
    assert "would remove 2 superseded bars file(s)" in dry
    assert sorted(p.name for p in (s / "bars").rglob("*.parquet")) == bars
    out = run("gc", store=s).stdout
    assert "removed 2 superseded bars file(s)" in out and "event 4" in out
    assert "--as-of reaches back to event 3" in out
    assert len(list((s / "bars").rglob("*.parquet"))) == 2
    p = run("query", "SELECT count(*) FROM bars", "--as-of", "2", store=s, check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "incbt gc" in p.stderr and "--as-of 3 (as_of=3) or later" in p.stderr
    n = run("query", "SELECT count(*) AS n FROM bars", "--as-of", "3", "--output", "json",
            store=s).stdout
    assert json.loads(n) == {"n": 2 * 3 * 390}
    log = run("log", store=s).stdout
    assert "gc" in log and "removed 2 superseded" in log
    assert "reaches back to event 3" in run("status", store=s).stdout
    assert "nothing to remove, no event" in run("gc", store=s).stdout
    # results to compact and no bars file: no "no event" above the compaction's lines
    # (QA 2026-12-07: said after a Ctrl-C had left the results' part undone)
    rid = run("backtest", "sma_cross", "-p", "fast=3", "-p", "slow=20", "--output", "csv",
              store=s).stdout.strip().splitlines()[-1].split(",")[0].strip('"')
    run("drop", rid, store=s)
    out = run("gc", store=s).stdout
    assert out.startswith("removed 0 superseded bars file(s), 0 bytes\n"), out
    assert "no event" not in out and "results: rewrote 1 batch(es)" in out, out
    # an event not in the log: exit 1, as `query --as-of 99` (it was 2: QA 2026-12-05)
    p = run("gc", "--before", "99", store=s, check=False)
    assert p.returncode == 1 and "--before 99: no such event" in p.stderr, p.stderr
    assert run("query", "SELECT 1", "--as-of", "99", store=s, check=False).returncode == 1


def test_the_cli_spares_pyarrow_its_pandas_import_and_pandas_still_works():
    """After the CLI's start-up, pyarrow makes arrays without importing pandas (~0.2 s),
    and code that wants pandas (``incbt report``, a strategies file) still gets it."""
    code = (
        "import sys\n"
        "from incbt.cli import _pyarrow_without_pandas\n"
        "_pyarrow_without_pandas()\n"
        "import pyarrow as pa\n"
        "pa.array([1.5]); pa.table({'a': [1]})\n"
        "print('pandas' in sys.modules)\n"
        "df = pa.table({'a': [1, 2]}).to_pandas()\n"
        "import pandas as pd\n"
        "print(type(df).__name__, pa.array(pd.Series([1.5, 2.5])).to_pylist())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["False", "DataFrame [1.5, 2.5]"]


def test_a_query_showing_stale_runs_says_so_on_stderr(tmp_path):
    """SQL shows a run's rows as computed: after a correction, a query whose answer has
    runs it made stale says so (on stderr: csv on stdout stays as it was), only for
    those runs, and not once the update has recomputed them."""
    s = tmp_path / "store"
    run("generate", str(tmp_path / "d"), "--instruments", "2", "--days", "8", store=s)
    run("generate", str(tmp_path / "fix"), "--instruments", "1", "--days", "8",
        "--from", "2024-01-04", "--to", "2024-01-04", "--revise", "2024-01-04", store=s)
    run("init", store=s)
    run("ingest", str(tmp_path / "d"), store=s)
    run("sweep", "sma_cross", "-g", "fast=2,4", "-g", "slow=12", "--all", "--name", "g",
        store=s)
    other = run("backtest", "ema_cross", "-p", "fast=3", "-p", "slow=9",
                "--instruments", "S0001", store=s).stdout
    other_id = re.search(r"run id: (\w+)", other).group(1)
    before = run("query", "grid", "-p", "sweep=g", "--output", "csv", store=s)
    assert "stale" not in before.stderr
    run("ingest", str(tmp_path / "fix"), store=s)  # S0000: the sweep's runs, not ema's
    after = run("query", "grid", "-p", "sweep=g", "--output", "csv", store=s)
    assert after.stdout == before.stdout
    assert "note: 2 of the 2 run(s) shown have stale results" in after.stderr
    assert "2024-01-04" in after.stderr and "incbt update" in after.stderr
    alone = run("query", f"SELECT run_id FROM runs WHERE run_id = '{other_id}'", store=s)
    assert "stale" not in alone.stderr and other_id in alone.stdout
    run("update", store=s)
    done = run("query", "grid", "-p", "sweep=g", "--output", "csv", store=s)
    assert "stale" not in done.stderr and done.stdout != before.stdout


MOMENTUM = """
import incbt


@incbt.strategy(params={"n": incbt.Param(int, default=5, min=1)}, state=("seen",),
                warmup=lambda p: p["n"], reads=("close",))
def momentum(p, s, o, h, l, c, v, i):
    n = int(p[0])
    s[0] += 1
    if s[0] <= n:
        return 0
    return 1 if c[i] > c[i - n] else -1
"""


def test_a_query_showing_runs_whose_strategy_does_not_load_says_no_update_recomputes_them(
        tmp_path):
    """QA 2026-12-07: a run whose strategies file is gone was said in a query's note as
    having stale results "of the data before" that `incbt update` recomputes: it has the
    results of the data now, and no update can recompute it."""
    s = tmp_path / "store"
    run("generate", str(tmp_path / "d"), "--instruments", "2", "--days", "3", store=s)
    run("init", store=s)
    run("ingest", str(tmp_path / "d"), store=s)
    f = tmp_path / "mine.py"
    f.write_text(MOMENTUM)
    out = run("backtest", "momentum", "--strategies", str(f), store=s).stdout
    rid = re.search(r"run id: (\w+)", out).group(1)
    f.unlink()
    q = run("query", f"SELECT run_id FROM runs WHERE run_id = '{rid}'", "--output", "csv",
            store=s)
    assert rid in q.stdout
    assert "stale results" not in q.stderr and "recomputes them" not in q.stderr, q.stderr
    assert "note: 1 of the 1 run(s) shown cannot be recomputed (its strategies file" \
        in q.stderr and "no update brings them up to date" in q.stderr, q.stderr


def test_sql_finding_nothing_for_a_run_id_prefix_says_to_give_the_whole_id(small_store):
    """QA 2026-12-06: `-p run=694b` in SQL found 0 rows without a word (named queries
    take a prefix; SQL compares the text)."""
    rid = run("query", "SELECT run_id FROM runs LIMIT 1", "--output", "csv",
              store=small_store).stdout.splitlines()[1].strip('"')
    q = "SELECT count(*) AS n FROM daily WHERE run_id = $run"
    p = run("query", q, "-p", f"run={rid[:6]}", "--output", "csv", store=small_store)
    assert p.stdout.splitlines()[1] == "0"
    assert f"-p run={rid[:6]} is bound as the text '{rid[:6]}', the start of run {rid}" in p.stderr
    assert f"Fix: -p run={rid}" in p.stderr
    whole = run("query", q, "-p", f"run={rid}", "--output", "csv", store=small_store)
    assert int(whole.stdout.splitlines()[1]) > 0 and "note" not in whole.stderr


def test_status_summarizes_the_current_files_as_sql_does(tmp_path):
    """status reads the store's summary from the catalog (no SQL engine): the same
    numbers SQL over ``files`` gives, empty or not, after a correction superseded files."""
    s = tmp_path / "store"
    run("init", store=s)
    summary = (
        "SELECT count(DISTINCT instrument) AS instruments, count(*) AS files, sum(rows) AS "
        "bars, min(first_day) AS first_day, max(last_day) AS last_day, sum(bytes) AS "
        "bar_bytes FROM files"
    )

    def both() -> tuple[dict, dict]:
        from incbt import Store

        st = Store(str(s))
        got = st.summary()
        want = st.sql(summary).to_pylist()[0]
        counts = (("runs", "count(*) FROM runs"), ("sweeps", "count(DISTINCT sweep) FROM sweeps"))
        for k, q in counts:
            want[k] = st.sql(f"SELECT {q}").column(0)[0].as_py()
        # and the line status prints beside csv/json rows says the same numbers
        said = run("status", "--output", "json", store=s).stderr.splitlines()[0]
        assert said == f"store {s}: " + ", ".join(f"{k} {v}" for k, v in got.items())
        return got, want

    got, want = both()
    assert got == want and got["files"] == 0 and got["bars"] is None
    run("generate", str(tmp_path / "d"), "--instruments", "3", "--days", "25", store=s)
    run("generate", str(tmp_path / "fix"), "--instruments", "3", "--days", "25",
        "--from", "2024-01-10", "--to", "2024-01-10", "--revise", "2024-01-10", store=s)
    run("ingest", str(tmp_path / "d"), store=s)
    run("ingest", str(tmp_path / "fix"), store=s)
    got, want = both()
    assert got == want and got["instruments"] == 3 and got["bars"] == 3 * 25 * 390
    # runs and sweeps as SQL shows them: a dropped run is not counted
    run("backtest", "sma_cross", "-p", "fast=3", "-p", "slow=9", "--all", store=s)
    run("sweep", "sma_cross", "-g", "fast=2,4", "-g", "slow=12", "--all", "--name", "g",
        store=s)
    run("drop", incbt.open(str(s)).runs()[0].run_id, store=s)
    got, want = both()
    assert got == want and (got["runs"], got["sweeps"]) == (2, 1)


def test_status_loads_neither_numba_nor_datafusion(tmp_path):
    """`incbt status` compiles nothing and runs no SQL: it does not pay their imports
    (~0.2 s each in a fresh process)."""
    s = tmp_path / "store"
    run("init", store=s)
    run("generate", str(tmp_path / "d"), "--instruments", "2", "--days", "3", store=s)
    run("ingest", str(tmp_path / "d"), store=s)
    run("backtest", "sma_cross", "-p", "fast=5", "-p", "slow=20", store=s)
    code = (
        "import sys\n"
        "from incbt.cli import app\n"
        "try:\n"
        "    app(['--store', sys.argv[1], 'status'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(sorted(m for m in ('numba', 'datafusion') if m in sys.modules))\n"
    )
    p = subprocess.run([sys.executable, "-c", code, str(s)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]", p.stdout


def flat(text: str) -> str:
    """Text without the line breaks a terminal-width wrap put in."""
    return " ".join(text.split())


FLAKY = '''import incbt

@incbt.strategy(params={"n": incbt.Param(int, default=10, min=2)}, state=("seen",),
                warmup=lambda p: p["n"])
def flaky(p, s, o, h, l, c, v, i):
    """Raises for n == 13 once the close passes LIMIT; else a momentum signal."""
    n = int(p[0])
    s[0] += 1.0
    if n == 13 and c[i] > LIMIT:
        raise ValueError("flaky gave up")
    if s[0] <= n:
        return 0
    return 1 if c[i] > c[i - n] else -1
'''


def test_a_strategy_failing_on_some_pairs_exits_1_and_keeps_the_rest(tmp_path):
    """backtest and sweep exit 1 while their runs have failed pairs (new or known);
    update exits 1 only on a pair that fails in it. Everything else is committed."""
    s = tmp_path / "store"
    run("init", store=s)
    run("generate", str(tmp_path / "d"), "--instruments", "2", "--days", "3",
        "--start", "2024-03-04", store=s)
    run("ingest", str(tmp_path / "d"), store=s)
    f = tmp_path / "flaky.py"
    f.write_text(FLAKY.replace("LIMIT", "0.0"))  # n == 13 fails on every instrument
    ok = run("backtest", "flaky", "-p", "n=10", "--all", "--strategies", str(f), store=s)
    assert "failed" not in ok.stderr
    for _ in range(2):  # computed and failed, then known failed and not retried
        p = run("backtest", "flaky", "-p", "n=13", "--all", "--strategies", str(f), store=s,
                check=False)
        assert p.returncode == 1, p.stderr
        assert "flaky gave up" in flat(p.stderr)
        assert "the strategy failed on 2 (run, instrument) pair(s)" in flat(p.stderr)
        assert "run id:" in flat(p.stdout) and "Traceback" not in flat(p.stderr)
    p = run("sweep", "flaky", "-g", "n=10,13,15", "--strategies", str(f), "--name", "g",
            store=s, check=False)
    assert p.returncode == 1 and "failed on 2 (run, instrument) pair(s)" in flat(p.stderr)
    assert "top runs by Sharpe" in flat(p.stdout)  # the others are there
    n = json.loads(run("query", "SELECT count(DISTINCT run_id) AS n FROM metrics",
                       "--output", "json", store=s).stdout)["n"]
    assert n == 2  # n = 10 and n = 15
    # a new day: the known failures are reported, not an error; nothing new fails
    run("generate", str(tmp_path / "d2"), "--instruments", "2", "--days", "1",
        "--start", "2024-03-07", store=s)
    p = run("update", str(tmp_path / "d2"), store=s, check=False)
    assert p.returncode == 0, p.stderr
    assert "not recomputed" in flat(p.stderr)
    # an edit of the strategy that fails on the new day only (its 1171st bar on): the
    # update recomputes the runs (their code changed), the failure is new: exit 1
    f.write_text(FLAKY.replace("LIMIT", "0.0").replace("n == 13", "n == 15 and s[0] > 1170"))
    p = run("update", store=s, check=False)
    assert p.returncode == 1, p.stderr
    assert "flaky gave up" in flat(p.stderr) and "is replaced by" in flat(p.stdout)


def test_a_command_collects_only_the_young_generations(tmp_path):
    """A command's process never runs a full collection (it would traverse every module
    and kernel for nothing); the young generations keep their thresholds."""
    import gc

    from incbt.cli import OLDEST_GENERATION_THRESHOLD

    code = (
        "import gc, os, sys\n"
        "real = os._exit\n"
        "def ex(c):\n"
        "    sys.stdout.write('T %d %d %d\\n' % gc.get_threshold())\n"
        "    sys.stdout.flush()\n"
        "    real(c)\n"
        "os._exit = ex\n"
        "from incbt.cli import main\n"
        f"sys.argv = ['incbt', '--store', {str(tmp_path / 's')!r}, 'init']\n"
        "main()\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    line = next(x for x in p.stdout.splitlines() if x.startswith("T "))
    young, middle, oldest = map(int, line.split()[1:])
    assert (young, middle) == gc.get_threshold()[:2]
    assert oldest == OLDEST_GENERATION_THRESHOLD > gc.get_threshold()[2]


def test_backtest_prints_the_portfolio_then_the_best_and_worst_instruments(tmp_path):
    """Past 20 instruments the table shows the portfolio, the 10 best and 10 worst by
    total pnl, how many are left out and the query that lists them all; --output csv
    gives every row."""
    s = tmp_path / "store"
    run("init", store=s)
    run("generate", str(tmp_path / "d"), "--instruments", "23", "--days", "2", store=s)
    run("ingest", str(tmp_path / "d"), store=s)
    args = ("backtest", "sma_cross", "-p", "fast=5", "-p", "slow=20")
    out = run(*args, store=s).stdout
    rows = [json.loads(ln) for ln in run(*args, "--output", "json", store=s).stdout.splitlines()
            if ln.startswith("{")]
    insts = [r for r in rows if r["scope"] == "instrument"]
    assert len(insts) == 23 and sum(r["scope"] == "portfolio" for r in rows) == 1
    by_pnl = [r["instrument"] for r in sorted(insts, key=lambda r: (-r["total_pnl"],
                                                                    r["instrument"]))]
    lines = out.splitlines()

    def row_of(name):
        return next(i for i, ln in enumerate(lines) if f" {name} " in ln)

    shown = by_pnl[:10] + by_pnl[-10:]
    positions = [row_of(n) for n in shown]
    assert positions == sorted(positions)  # best first, worst last
    assert row_of("portfolio") < positions[0] < row_of("... 3 more") < positions[10]
    assert not any(f" {n} " in out for n in by_pnl[10:13])
    run_id = rows[0]["run_id"]
    assert f"SELECT * FROM metrics WHERE run_id = '{run_id}'" in out
    assert f"run id: {run_id}" in out
    # a universe that fits is printed whole, by name, with no note
    few = run(*args, "--instruments", "S0002,S0001", store=s).stdout
    assert row_of("portfolio") >= 0 and few.index(" S0001 ") < few.index(" S0002 ")
    assert "more" not in few and "SELECT" not in few


@pytest.mark.parametrize(("args", "message"), [
    (("--days", "100000000"), "at most 100,000 instruments and 80,000 days"),
    (("--days", "70000"), "end in 2262"),
    (("--days", "2", "--seed", "-1"), "--seed -1"),
    (("--days", "5", "--from", "2030-01-01"), "no day to write"),
    (("--days", "5", "--from", "2024-01-05", "--to", "2024-01-02"),
     "--from 2024-01-05 is after --to 2024-01-02: give the first day, then the last"),
    (("--days", "5", "--revise", "2025-01-01"), "--revise 2025-01-01 is not a trading day"),
])
def test_generate_checks_its_arguments_before_writing(tmp_path, args, message):
    out = tmp_path / "g"
    p = run("generate", str(out), "--instruments", "2", "--start", "2024-01-01", *args,
            check=False)
    assert p.returncode == 2 and message in p.stderr, p.stderr
    assert not out.exists()
    # a weekend start is reported as the Monday the bars start on
    ok = run("generate", str(out), "--instruments", "1", "--days", "1", "--start", "2024-01-06")
    assert "1 instrument(s) x 1 day(s), 2024-01-08: 390 bars" in ok.stdout
    # --dry-run names the files (--from/--to counted) and writes none
    dry = tmp_path / "dry"
    p = run("generate", str(dry), "--instruments", "2", "--days", "10", "--from", "2024-01-03",
            "--to", "2024-01-04", "--dry-run")
    assert p.stdout.startswith("would write 2 file(s) to "), p.stdout
    assert "(bars-2024-01-03.csv ... " in p.stdout
    assert "bars-2024-01-04.csv): 2 instrument(s) x 2 day(s), 2024-01-03 to 2024-01-04: " \
        "1,560 bars" in p.stdout, p.stdout
    assert not dry.exists()
    p = run("generate", str(dry), "--instruments", "2", "--days", "10", "--from", "2024-01-03",
            "--to", "2024-01-04")
    assert sorted(f.name for f in dry.iterdir()) == ["bars-2024-01-03.csv", "bars-2024-01-04.csv"]


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-small")
    s = root / "store"
    run("init", store=s)
    run("generate", str(root / "d"), "--instruments", "2", "--days", "2", store=s)
    run("ingest", str(root / "d"), store=s)
    run("backtest", "sma_cross", "-p", "fast=5", "-p", "slow=20", store=s)
    return s


@pytest.mark.parametrize(("args", "code", "message"), [
    (("query", "COPY (SELECT 1) TO '/tmp/incbt-copy-test.csv'"), 1,
     "queries only read (SELECT, EXPLAIN, SHOW)"),
    (("query", "CREATE TABLE t AS SELECT 1"), 1, "queries only read"),
    (("query", "SELEC 1"), 1, "Fix: check the SQL"),
    (("query", "SELECT 1 AS x", "-p", "y=2"), 2, "the SQL has no $y"),
    (("query", "SELECT 'a' AS r, 'b' AS c, 1 AS v UNION ALL SELECT 'a', 'b', 2", "--pivot"), 2,
     "has more than one v ("),
    # a date key shown as ISO text, not datetime.date(2024, 1, 1) (QA 2026-12-06)
    (("query", "SELECT 'a' AS r, DATE '2024-01-01' AS c, 1 AS v UNION ALL "
      "SELECT 'a', DATE '2024-01-01', 2", "--pivot"), 2, "r='a', c=2024-01-01 has more than"),
    (("sweep", "sma_cross", "-g", "fast=50", "-g", "slow=20"), 1, "the grid has no valid point"),
    (("report", "nosuchrun"), 1, "no sweep or run 'nosuchrun'"),
    (("init", "--set", "lock_timeout=5"), 2, "environment variable INCBT_LOCK_TIMEOUT"),
    (("init", "--tz", "UTC", "--set", "session_tz=Europe/Paris"), 2,
     "--tz UTC and --set session_tz=Europe/Paris: give the session time zone once"),
])
def test_more_bad_usage_is_one_clear_line(small_store, args, code, message):
    p = run(*args, store=small_store, check=False)
    assert p.returncode == code and message in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert not os.path.exists("/tmp/incbt-copy-test.csv")


def test_report_to_a_missing_folder_and_settings_named_by_their_variable(small_store,
                                                                         tmp_path):
    run_id = run("query", "SELECT run_id FROM runs", "--output", "csv",
                 store=small_store).stdout.splitlines()[1].strip('"')
    p = run("report", run_id, "-o", str(tmp_path / "nodir" / "r.html"), store=small_store,
            check=False)
    assert p.returncode == 1 and "no folder" in p.stderr and ".tmp" not in p.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCBT_")}
    env |= {"INCBT_STORE": str(small_store), "INCBT_THREADS": "abc"}
    q = run_incbt(["status"], env=env)
    assert q.returncode == 2 and "environment variable INCBT_THREADS" in q.stderr, q.stderr
    e = run("--store", "", "status", check=False)
    assert e.returncode == 2 and "--store (or INCBT_STORE) is empty" in e.stderr


def test_a_damaged_store_says_so(small_store, tmp_path):
    """A catalog cut short is refused on open (reading past its end would kill the
    process); a bars file gone says the store was changed outside incbt."""
    import shutil

    cut = tmp_path / "cut"
    shutil.copytree(small_store, cut)
    data = cut / "catalog" / "data.mdb"
    with open(data, "r+b") as f:
        f.truncate(8192)
    p = run("status", store=cut, check=False)
    assert p.returncode == 1 and "is cut short" in p.stderr, p.stderr
    assert data.stat().st_size == 8192  # left as it was found
    # its last pages lost (live ones: a copy cut short), not the free tail a large delete
    # leaves, which opens (test_drop): refused, as they cannot be read back as zeros
    tail = tmp_path / "tail"
    shutil.copytree(small_store, tail)
    data = tail / "catalog" / "data.mdb"
    size = data.stat().st_size
    with open(data, "r+b") as f:
        f.truncate(size - 3 * 4096)
    p = run("status", store=tail, check=False)
    assert p.returncode == 1 and "is cut short" in p.stderr, p.stderr
    assert data.stat().st_size == size - 3 * 4096
    junk = tmp_path / "junk"  # a catalog that is no LMDB file: commands that read add none
    shutil.copytree(small_store, junk)
    (junk / "catalog" / "lock.mdb").unlink()
    (junk / "catalog" / "data.mdb").write_bytes(bytes(range(256)) * 64)
    files = sorted(str(f.relative_to(junk)) for f in junk.rglob("*"))
    for cmd in (["status"], ["log"], ["query", "select 1"], ["verify"], ["update", "--dry-run"]):
        p = run(*cmd, store=junk, check=False)
        assert p.returncode == 1 and "not an LMDB file" in p.stderr, (cmd, p.stderr)
        assert sorted(str(f.relative_to(junk)) for f in junk.rglob("*")) == files, cmd
    gone = tmp_path / "gone"
    shutil.copytree(small_store, gone)
    next((gone / "bars").rglob("*.parquet")).unlink()
    st = run("status", store=gone, check=False)
    assert st.returncode == 1 and "1 file(s) the catalog lists are missing" in st.stderr
    p = run("backtest", "sma_cross", "-p", "fast=4", "-p", "slow=20", store=gone, check=False)
    assert p.returncode == 1 and ".parquet is missing: the store was changed outside incbt" \
        in p.stderr and "restore the store from a backup" in p.stderr, p.stderr


def test_damaged_store_files_are_named_with_the_fix(small_store, tmp_path):
    """QA 2026-12-06: a truncated bars file, results files removed or truncated went
    unsaid by `status` (exit 0), and reads failed in Arrow's words without a file or a
    fix; a catalog removed sent the user to `init` (which refuses the folder), an empty
    one was "a store of catalog format None"."""
    import shutil

    def damaged(name, hurt):
        d = tmp_path / name
        shutil.copytree(small_store, d)
        hurt(d)
        return d

    def cut(f, n=100):
        os.truncate(f, n)

    bars = damaged("bars", lambda d: cut(next((d / "bars").rglob("*.parquet")), 500))
    st = run("status", store=bars, check=False)
    assert st.returncode == 1 and "1 file(s) the catalog lists are damaged" in st.stderr
    res = incbt.open(str(bars)).status()  # the Python API says it too
    assert res.missing_files == [] and len(res.damaged_files) == 1, res
    assert "1 store file(s) damaged (.damaged_files)" in repr(res)
    assert incbt.open(str(small_store)).status().damaged_files == []
    p = run("backtest", "sma_cross", "-p", "fast=4", "-p", "slow=20", store=bars, check=False)
    assert p.returncode == 1 and ".parquet cannot be read (" in p.stderr \
        and "Fix: restore the store from a backup" in p.stderr, p.stderr
    fills = damaged("fills", lambda d: [cut(f) for f in (d / "results" / "fills").iterdir()])
    st = run("status", store=fills, check=False)
    assert st.returncode == 1 and "are damaged (cut short or changed) (e.g. results/fills/" \
        in st.stderr, st.stderr
    p = run("query", "SELECT count(*) FROM fills", store=fills, check=False)
    assert p.returncode == 1 and "results/fills/" in p.stderr and "cannot be read" in p.stderr
    daily = damaged("daily", lambda d: [f.unlink() for f in (d / "results" / "daily").iterdir()])
    st = run("status", store=daily, check=False)
    assert st.returncode == 1 and "are missing (e.g. results/daily/" in st.stderr, st.stderr
    p = run("verify", store=daily, check=False)
    assert p.returncode == 1 and ".parquet is missing. Fix:" in p.stderr, p.stderr
    for name, hurt, said in (
        ("nocat", lambda d: (d / "catalog" / "data.mdb").unlink(), "data.mdb is missing"),
        ("empty", lambda d: cut(d / "catalog" / "data.mdb", 0), "data.mdb is empty"),
    ):
        d = damaged(name, hurt)
        p = run("status", store=d, check=False)
        assert p.returncode == 1 and said in p.stderr and "restore the store from a backup" \
            in p.stderr and "init" not in p.stderr, p.stderr
    assert os.path.getsize(tmp_path / "empty" / "catalog" / "data.mdb") == 0  # left as it was


def test_a_store_copied_with_hard_links_is_refused_until_it_has_its_own_catalog(
        small_store, tmp_path):
    """``cp -al`` shares the catalog's files with the copy: LMDB writes them in place, so
    a commit through the copy would change the original. Both are refused, each left as
    it was, until the copy's catalog is a file of its own; Parquet files may stay links."""
    import shutil

    orig, linked = tmp_path / "orig", tmp_path / "linked"
    shutil.copytree(small_store, orig)
    shutil.copytree(orig, linked, copy_function=os.link)
    before = {f: f.read_bytes() for f in (orig / "catalog").iterdir()}
    for store in (orig, linked):
        p = run("backtest", "sma_cross", "-p", "fast=4", "-p", "slow=21", store=store,
                check=False)
        assert p.returncode == 1 and "has 2 hard links" in p.stderr, p.stderr
        assert "cp -a" in p.stderr and "Traceback" not in p.stderr
    assert {f: f.read_bytes() for f in (orig / "catalog").iterdir()} == before
    cat = linked / "catalog"
    shutil.copytree(cat, tmp_path / "own")
    shutil.rmtree(cat)
    shutil.move(tmp_path / "own", cat)
    run("backtest", "sma_cross", "-p", "fast=4", "-p", "slow=21", store=linked)
    assert {f: f.read_bytes() for f in (orig / "catalog").iterdir()} == before
    count = "SELECT count(*) AS n FROM runs"
    assert run("query", count, store=linked).stdout != run("query", count, store=orig).stdout


def test_a_sweep_prints_its_leaderboard_formatted(small_store):
    """The top runs by Sharpe: parameters as NAME=VALUE, metrics rounded with separators,
    in descending Sharpe."""
    out = run("sweep", "sma_cross", "-g", "fast=3,5", "-g", "slow=20,30", "--name", "fmt",
              store=small_store).stdout
    rows = [ln for ln in out.splitlines() if "fast=" in ln and "slow=" in ln]
    assert len(rows) == 4, out
    sharpes = [float(ln.split("│")[3]) for ln in rows]
    assert sharpes == sorted(sharpes, reverse=True)
    assert all(len(ln.split("│")[3].strip().split(".")[1]) == 3 for ln in rows)
    assert "{" not in out


def test_log_knows_every_kind_of_event_incbt_writes():
    """`log --kind` refuses kinds incbt never writes: its list must hold every kind the
    code appends (append_event's literal kinds, and the commit kinds of runs)."""
    import pathlib
    import re

    from incbt.store import EVENT_KINDS

    src = "".join(p.read_text() for p in pathlib.Path(INCBT_SRC).rglob("*.py"))
    written = set(re.findall(r'append_event\(\s*txn,\s*"([a-z_]+)"', src))
    # argsort's kind, and a big file's part's (incbt.bars.parts.Part: read as a CSV range)
    written |= set(re.findall(r'kind="([a-z_]+)"', src)) - {"stable", "csv"}
    # commit(store, results, new_runs, command, KIND): its kind given by position
    written |= set(re.findall(r'\bcommit\([^()]*?, "([a-z_]+)"\)', src))
    assert "fork" in written  # the pattern above finds what it must
    written |= {"backtest"}  # bring_up_to_date's default
    assert written and written <= set(EVENT_KINDS), written - set(EVENT_KINDS)


def test_csv_and_json_output_hold_rows_alone(tmp_path):
    """status, backtest and update with --output json or csv: stdout is rows of one kind
    that parse; what is said about them goes to stderr."""
    import csv as csvmod
    import io

    s = tmp_path / "s"
    run("init", store=s)
    run("generate", str(tmp_path / "d"), "--instruments", "2", "--days", "3", "--to",
        "2024-01-02", store=s)
    run("generate", str(tmp_path / "n"), "--instruments", "2", "--days", "3", "--from",
        "2024-01-03", store=s)
    run("ingest", str(tmp_path / "d"), store=s)
    b = run("backtest", "sma_cross", "-p", "fast=5", "-p", "slow=20", "--output", "json",
            store=s)
    rows = [json.loads(x) for x in b.stdout.splitlines()]
    assert {r["scope"] for r in rows} == {"portfolio", "instrument"} and len(rows) == 3
    assert "run id: " in b.stderr and "computed" in b.stderr
    run("ingest", str(tmp_path / "n"), store=s)
    st = run("status", "--output", "json", store=s)
    pairs = [json.loads(x) for x in st.stdout.splitlines()]
    assert len(pairs) == 2 and {p["reason"] for p in pairs} == {"1 new day(s) after 2024-01-02"}
    assert "store " in st.stderr and "would compute" in st.stderr
    c = run("status", "--output", "csv", store=s)
    table = list(csvmod.DictReader(io.StringIO(c.stdout)))
    assert len(table) == 2 and set(table[0]) == set(pairs[0])
    u = run("update", "--output", "json", store=s)
    done = [json.loads(x) for x in u.stdout.splitlines()]
    assert [(p["run_id"], p["instrument"]) for p in done] == [
        (p["run_id"], p["instrument"]) for p in pairs]
    assert "computed 2 segment(s)" in u.stderr
    p = run("status", "--output", "parquet", store=s, check=False)
    assert p.returncode == 2 and "give table, csv or json" in p.stderr


def test_settings_say_their_values_and_sources_and_a_fixed_one_is_not_overridden(tmp_path):
    """`incbt settings` shows each value in effect and where it comes from; an
    INCBT_ variable for a setting the store fixed at init is ignored, and opening the
    store says so (it was ignored silently: dates computed in a zone the user did not
    ask for)."""
    s = tmp_path / "s"
    run("init", "--set", "snapshot_keep_days=30", store=s)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCBT_")}
    env |= {"INCBT_STORE": str(s), "INCBT_SESSION_TZ": "America/New_York",
            "INCBT_THREADS": "1"}

    def rows(*args):
        p = run_incbt(args, env=env)
        assert p.returncode == 0, p.stderr
        return {r["name"]: r for r in map(json.loads, p.stdout.splitlines())}, p.stderr

    got, said = rows("settings", "--output", "json")
    assert (got["snapshot_keep_days"]["value"], got["snapshot_keep_days"]["from"]) == (
        30, "store")  # numbers as numbers in JSON (they were text)
    assert got["ingest_chunk_mb"]["default"] == 64.0
    assert got["session_tz"]["value"] == "UTC"
    assert "INCBT_SESSION_TZ ignored" in got["session_tz"]["from"]
    assert (got["threads"]["value"], got["threads"]["from"]) == (1, "env INCBT_THREADS")
    assert got["lock_timeout"]["from"] == "default"
    assert "INCBT_SESSION_TZ=America/New_York is ignored" in said
    p = run_incbt(["status"], env=env)
    assert p.returncode == 0 and "INCBT_SESSION_TZ=America/New_York is ignored" in p.stderr
    # with no store there yet: what a new store would take, the variable included
    env["INCBT_STORE"] = str(tmp_path / "new")
    got, _ = rows("settings", "--output", "json")
    assert (got["session_tz"]["value"], got["session_tz"]["from"]) == (
        "America/New_York", "env INCBT_SESSION_TZ")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_mid_update_says_so_and_the_next_update_finishes(tmp_path, sig):
    """A signal after the update's first commit: exit 130 (Ctrl-C) or 143 (SIGTERM) with
    a line saying what is kept and how to finish (it exited 130 silently, and SIGTERM
    without a word); the next `incbt update` finishes, to a fresh store's results."""
    s, f = tmp_path / "s", tmp_path / "f"
    run("generate", str(tmp_path / "head"), "--instruments", "4", "--days", "8",
        "--to", "2024-01-08")
    run("generate", str(tmp_path / "tail"), "--instruments", "4", "--days", "8",
        "--from", "2024-01-09")
    for store, parts in ((s, ["head"]), (f, ["head", "tail"])):
        run("init", store=store)
        for part in parts:
            run("ingest", str(tmp_path / part), store=store)
        run("backtest", "sma_cross", "-p", "fast=5", "-p", "slow=20", "--all", store=store)
    driver = (
        "import os, signal, sys, incbt.runs, incbt.cli\n"
        "incbt.runs.DEFAULT_COMMIT_BARS = 1  # a commit per task\n"
        "real = incbt.runs.commit\n"
        "def commit(*a, **kw):\n"
        "    out = real(*a, **kw)\n"
        f"    os.kill(os.getpid(), signal.{sig})\n"
        "    return out\n"
        "incbt.runs.commit = commit\n"
        "sys.argv = ['incbt', *sys.argv[1:]]\n"
        "incbt.cli.main()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCBT_")}
    p = subprocess.run([sys.executable, "-c", driver, "--store", str(s), "update",
                        str(tmp_path / "tail")], capture_output=True, text=True, env=env)
    assert p.returncode == (143 if sig == "SIGTERM" else 130), p.stderr
    said = p.stderr.replace("\n", " ")
    assert ("terminated (SIGTERM)" if sig == "SIGTERM" else "interrupted:") in said, said
    assert "run the same command again" in said and "Traceback" not in said, said
    st = run("status", store=s).stdout
    assert "would compute" in st, st  # it stopped part-way
    run("update", store=s)
    q = "SELECT * FROM daily ORDER BY run_id, instrument, date"
    a = run("query", q, "--output", "csv", store=s).stdout
    assert a == run("query", q, "--output", "csv", store=f).stdout


def _ingested(tmp_path, instruments: int, days: int) -> dict[str, str]:
    """A store under tmp_path/s with generated bars ingested; the environment naming it
    (and no other INCBT_ variable) for a command run directly."""
    s = tmp_path / "s"
    run("init", store=s)
    run("generate", str(tmp_path / "d"), "--instruments", str(instruments), "--days",
        str(days), store=s)
    run("ingest", str(tmp_path / "d"), store=s)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCBT_")}
    return env | {"INCBT_STORE": str(s)}


def test_a_progress_line_says_done_and_total_in_one_unit():
    """QA 2026-12-07: "7,862,400 of 78.6 M"; the bars said both in millions already."""
    from incbt.render import LineTask

    t = LineTask("bar-steps", 78_624_000, 1.0)
    t.n = 7_862_400
    line = t._line(t.t0 + 2.0)
    assert line.startswith("bar-steps: 7.9 M of 78.6 M (10%), 3,931,200/s, 2.0 s, ETA 18 s"), line
    small = LineTask("bar-steps", 202_800, 1.0)
    small.n = 101_400
    assert small._line(small.t0 + 1.0).startswith("bar-steps: 101,400 of 202,800 (50%)")


def test_a_progress_line_says_100_percent_only_at_its_total():
    """QA 2026-12-07: `incbt generate` said "generating days: 249 of 250 (100%)" (99.6%
    rounded), as though done; a percent short of the total is rounded down."""
    from incbt.render import LineTask

    t = LineTask("generating days", 250, 1.0)
    t.n = 249
    assert t._line(t.t0 + 10.0).startswith("generating days: 249 of 250 (99%)"), t._line(t.t0 + 10)
    t.n = 250
    assert t._line(t.t0 + 10.0).startswith("generating days: 250 of 250 (100%)")


def test_a_progress_line_at_its_total_is_said_once_while_the_command_goes_on(capsys):
    """QA 2026-12-07: a wide sweep's bar-steps reached their total before their first
    line was due, then its one commit took seconds: only "0 pairs committed" was said."""
    from incbt.render import LineTask

    t = LineTask("bar-steps", 1_000, 10.0)
    t.n = 1_000  # done before its first line was due
    t.tick()
    assert capsys.readouterr().err == ""  # a command shorter than the interval: no line
    t.t0 -= 11  # the command goes on past it
    t.tick()
    t.tick()
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 1 and said[0].startswith("bar-steps: 1,000 of 1,000 (100%)"), said
    t.done()
    assert capsys.readouterr().err.rstrip().endswith(", done")


def test_long_work_prints_progress_lines_where_stderr_is_not_a_terminal(tmp_path):
    """Under CI or nohup there are no progress bars: a line every progress_seconds with
    counts, rate and ETA, and a last one saying done; 0 turns them off."""
    env = _ingested(tmp_path, instruments=3, days=5)
    args = [INCBT, "sweep", "sma_cross", "-g", "fast=5,10", "-g", "slow=20", "--all"]
    p = subprocess.run([*args, "--name", "a"], capture_output=True, text=True,
                       env={**env, "INCBT_PROGRESS_SECONDS": "1e-9"})
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("bar-steps: ")]
    total = 3 * 5 * 390 * 2
    assert lines and lines[-1].startswith(f"bar-steps: {total:,} of {total:,} (100%)")
    assert lines[-1].endswith(", done") and "/s, " in lines[0]
    q = subprocess.run([*args[:4], "fast=6", *args[5:], "--name", "b"], capture_output=True,
                       text=True,
                       env={**env, "INCBT_PROGRESS_SECONDS": "0"})
    assert q.returncode == 0 and "bar-steps: " not in q.stderr, q.stderr


@pytest.mark.parametrize("output", ["table", "csv", "json"])
def test_a_reader_that_stops_early_is_no_error(tmp_path, output):
    """`incbt query ... | head`: the reader closes the pipe; the command exits 0 without
    a word, whatever the output (a table exited 1, as click does)."""
    env = _ingested(tmp_path, instruments=2, days=3)
    p = subprocess.Popen([INCBT, "query", "SELECT * FROM bars", "--output", output],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert p.stdout is not None and p.stdout.readline()
    p.stdout.close()  # as head does after its lines
    err = p.stderr.read().decode() if p.stderr else ""
    assert p.wait(timeout=60) == 0 and not err.strip(), err


def test_generate_says_what_else_the_folder_holds(tmp_path):
    """generate into a folder with other data files: says which it replaced and which
    others `incbt ingest FOLDER` would read too (it mixed them silently)."""
    out = tmp_path / "g"
    out.mkdir()
    (out / "notes.txt").write_text("not data")
    first = run("generate", str(out), "--instruments", "2", "--days", "2")
    assert "note:" not in first.stderr, first.stderr
    again = run("generate", str(out), "--instruments", "2", "--days", "3", "--start",
                "2024-01-02")
    said = again.stderr.replace("\n", " ")
    assert "replaced 1 file(s)" in said and "bars-2024-01-02.csv" in said, said
    assert "also holds 1 other data file(s) (e.g. bars-2024-01-01.csv)" in said, said


def test_table_times_carry_their_zone():
    """A table shows a time with its zone when it has one (events and bars: UTC); one
    without a zone stays bare (log and query tables showed UTC times as if local)."""
    import datetime as dt

    from incbt.render import _cell

    t = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC)
    assert _cell(t) == "2024-01-02 14:30:00 UTC"
    assert _cell(t.replace(tzinfo=None)) == "2024-01-02 14:30:00"


def test_status_says_what_an_interrupted_command_left_in_tmp(tmp_path):
    """A killed command's staging files (a big file's parts, a worker's result rows) are
    said by ``status``, with their size, until the next write removes them."""
    s = tmp_path / "s"
    run("init", store=s)
    run("generate", str(tmp_path / "d"), "--instruments", "2", "--days", "2", store=s)
    run("ingest", str(tmp_path / "d"), store=s)
    assert "in tmp/" not in run("status", store=s).stdout
    (s / "tmp" / "parts").mkdir(parents=True)
    (s / "tmp" / "parts" / "part-000.csv").write_bytes(b"x" * 3 * 2**20)
    (s / "tmp" / "ab12-daily.parquet").write_bytes(b"y" * 2**19)
    said = run("status", store=s).stdout
    assert "2 file(s), 3.5 MiB in tmp/ from an interrupted command" in said, said
    assert "removed by the next write" in said
    run("ingest", str(tmp_path / "d"), store=s)  # nothing changed, but a write all the same
    assert not (s / "tmp").exists()
    assert "in tmp/" not in run("status", store=s).stdout


def test_a_warning_is_said_in_one_line_not_in_pythons_form(capsys):
    """What a command warns of (a worker process died, say) is a line on stderr, not
    Python's "file:line: RuntimeWarning: ..." with the source line under it."""
    import warnings

    from incbt import cli

    with warnings.catch_warnings():
        warnings.showwarning = cli._show_warning  # as cli.main installs it
        warnings.simplefilter("always")
        warnings.warn("a worker process died (killed); the rest runs here", RuntimeWarning,
                      stacklevel=1)
    assert capsys.readouterr().err == (
        "warning: a worker process died (killed); the rest runs here\n"
    )


def test_a_name_value_option_without_its_value_is_a_usage_error(tmp_path):
    """--map ts= (and -p fast=, --set NAME=) said something garbled with exit 1."""
    s = tmp_path / "s"
    run("init", store=s)
    run("generate", str(tmp_path / "d"), "--instruments", "1", "--days", "1", store=s)
    for args in (("ingest", str(tmp_path / "d"), "--map", "ts="),
                 ("backtest", "sma_cross", "-p", "fast=")):
        p = run(*args, store=s, check=False)
        assert p.returncode == 2, (args, p.stderr)
        assert f"takes NAME=VALUE, got '{args[-1]}' (no VALUE)" in p.stderr, p.stderr


def test_a_named_query_of_a_sweep_that_is_not_there_says_so(tmp_path):
    """`incbt query grid -p sweep=nosuch` printed an empty table, exit 0 (found
    2026-12-05); a run that is not there was already said."""
    s = tmp_path / "s"
    run("init", store=s)
    p = run("query", "grid", "-p", "sweep=nosuch", store=s, check=False)
    assert p.returncode == 1 and "no sweep 'nosuch'" in p.stderr, (p.returncode, p.stderr)


@pytest.mark.parametrize("args", [
    ["drop", "--sweep", "a", "--sweep", "b", "--dry-run"],
    ["log", "--limit", "1", "--limit=2"],
    ["report", "x", "-o", "a.html", "--out", "b.html"],
    ["backtest", "sma_cross", "-p", "fast=5", "--fee-bps", "1", "--fee-bps", "2"],
    ["--store", "a", "--store", "b", "status"],
])
def test_an_option_given_twice_is_bad_usage(tmp_path, args):
    """README: exit 2 for an option given twice. click kept the last value without a
    word, so `incbt drop --sweep A --sweep B` dropped B alone (QA, 2026-12-05)."""
    p = run_incbt(args, cwd=tmp_path)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "is given twice: give it once" in p.stderr, p.stderr
    assert not os.listdir(tmp_path)  # nothing written, not even a store folder


def test_options_that_repeat_by_design_still_do(tmp_path):
    run("init", store=tmp_path / "s")
    p = run("log", "--kind", "init", "--kind", "ingest", "--output", "csv",
            store=tmp_path / "s")
    assert p.stdout.count("init") >= 1
    p = run("query", "SELECT $a AS a, $b AS b", "-p", "a=1", "-p", "b=--store",
            "--output", "csv", store=tmp_path / "s")
    assert p.stdout.splitlines()[1] == '"1","--store"', p.stdout  # untyped: text


def test_ctrl_c_while_the_command_starts_is_a_line_not_a_traceback():
    """Ctrl-C during the CLI's imports (~0.2 s before any command runs) printed Python's
    KeyboardInterrupt traceback (found 2026-12-05); the entry point says it in a line,
    exit 130. The interrupt is raised by the import of incbt.cli itself here (a signal's
    timing would make the test flaky)."""
    code = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def imp(name, *a, **k):\n"
        "    if name == 'incbt.cli':\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = imp\n"
        "from incbt._entry import main\n"
        "main()\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 130, p.stderr
    assert p.stderr == "interrupted while starting: nothing was read or written\n", p.stderr
    # and the installed command goes through it
    with open(INCBT) as f:
        assert "incbt._entry" in f.read()


def test_a_message_with_brackets_is_printed_as_written(tmp_path):
    """A strategy's error text was read as rich markup (QA 2026-12-05): "[bold]x[/bold]"
    lost its brackets, and "[/data/cal.csv]" ended the command, and every later status,
    update and verify (the failure is stored), in a MarkupError traceback."""
    s = tmp_path / "store"
    run("init", store=s)
    run("generate", str(tmp_path / "d"), "--instruments", "1", "--days", "2", store=s)
    run("ingest", str(tmp_path / "d"), store=s)
    f = tmp_path / "flaky.py"
    message = "calendar missing [/data/cal.csv], c[i] below [bold]x[/bold]"
    f.write_text(FLAKY.replace("LIMIT", "0.0").replace("flaky gave up", message))
    for args in (("backtest", "flaky", "-p", "n=13", "--strategies", str(f)), ("status",),
                 ("update",), ("verify",)):
        p = run(*args, store=s, check=False)
        assert "Traceback" not in p.stderr and "MarkupError" not in p.stderr, (args, p.stderr)
        assert message in flat(p.stderr), (args, p.stderr)


def test_an_execution_option_out_of_range_is_bad_usage_and_a_parameter_value_bad_input(
    tmp_path,
):
    """README: an option out of range is exit 2; a strategy parameter's value is bad
    input, exit 1, from -p and -g alike (QA 2026-12-05: --fee-bps -1 was 1, -g fast=2.5
    was 2 where -p fast=2.5 is 1)."""
    s = tmp_path / "store"
    run("init", store=s)
    run("generate", str(tmp_path / "d"), "--instruments", "1", "--days", "2", store=s)
    run("ingest", str(tmp_path / "d"), store=s)
    for args, code, said in (
        (["backtest", "sma_cross", "--fee-bps", "-1"], 2, "--fee-bps -1: parameter 'fee_bps'"),
        (["backtest", "sma_cross", "--notional", "0"], 2, "--notional 0: parameter 'notional'"),
        (["sweep", "sma_cross", "-g", "fast=3", "--slippage-bps", "-2"], 2, "--slippage-bps -2"),
        (["backtest", "sma_cross", "-p", "fast=2.5"], 1, "'fast' = 2.5 is not an integer"),
        (["sweep", "sma_cross", "-g", "fast=2.5"], 1,
         "grid value fast=2.5 is not an integer: parameter 'fast' takes integers"),
    ):
        p = run(*args, store=s, check=False)
        assert p.returncode == code and said in flat(p.stderr), (args, p.returncode, p.stderr)


def test_status_as_csv_has_its_header_with_nothing_stale(tmp_path):
    """A script reading `incbt status --output csv` got nothing at all when nothing was
    stale (QA 2026-12-05): the header line is there, with no row."""
    s = tmp_path / "store"
    run("init", store=s)
    run("generate", str(tmp_path / "d"), "--instruments", "1", "--days", "2", store=s)
    run("ingest", str(tmp_path / "d"), store=s)
    run("backtest", "sma_cross", store=s)
    for args in (("status",), ("update",), ("update", "--dry-run")):
        out = run(*args, "--output", "csv", store=s).stdout
        assert out.splitlines() == [
            '"run_id","strategy","instrument","reason","from_day","bars","replaced_by"'
        ]


def test_a_value_with_an_underscore_is_not_a_number(tmp_path):
    """Python reads int("20_0") as 200: -p fast=20_0 ran fast=200 (QA 2026-12-05)."""
    s = tmp_path / "store"
    run("init", store=s)
    for args, code, said in (
        (["backtest", "sma_cross", "-p", "fast=2_0", "--dry-run"], 1,
         "parameter 'fast' = '2_0' is not an int"),
        (["sweep", "sma_cross", "-g", "fast=2_0", "--dry-run"], 1,
         "grid value fast=2_0 is not a number"),
        # a value that is no number is bad input, named, as -p says it (QA 2026-12-05: exit 2,
        # "grid values 'abc,5' are not numbers"), a range's parts too (QA 2026-12-07: exit
        # 2); a range's form is usage
        (["sweep", "sma_cross", "-g", "fast=abc,5", "-g", "slow=50", "--dry-run"], 1,
         "grid value fast=abc is not a number: give -g fast=V1,V2,... or START:STOP:STEP"),
        (["sweep", "sma_cross", "-g", "fast=1:2_0:1", "--dry-run"], 1,
         "grid range fast=1:2_0:1: its parts are not numbers"),
        (["sweep", "sma_cross", "-g", "fast=5:1:1", "--dry-run"], 2, "STEP > 0 and STOP >= START"),
    ):
        p = run(*args, store=s, check=False)
        assert p.returncode == code and said in flat(p.stderr), (args, p.stderr)


def test_outputs_found_by_qa_2026_12_05(tmp_path):
    """-o m.parquet without --output wrote a text table; a bar at .123456789 ended
    `query --output json` and the table output (exit 3: Python's datetime stops at
    microseconds); JSON wrote NaN, which strict parsers refuse; `incbt status --store X`
    said "No such option"."""
    import pyarrow.parquet as pq

    s = tmp_path / "store"
    run("init", store=s)
    f = tmp_path / "ns.csv"
    f.write_text("instrument,ts,open,high,low,close,volume\n"
                 "X,2024-01-08T14:30:00.123456789Z,1,1,1,1,1\n"
                 "X,2024-01-08T14:31:00Z,1,1,1,1,1\n")
    run("ingest", str(f), store=s)
    q = "SELECT ts, CAST('NaN' AS DOUBLE) AS x FROM bars ORDER BY ts"
    rows = [json.loads(x) for x in run("query", q, "--output", "json", store=s).stdout.split("\n")
            if x]
    assert rows == [{"ts": "2024-01-08T14:30:00.123456789Z", "x": None},
                    {"ts": "2024-01-08T14:31:00Z", "x": None}]
    table = run("query", q, store=s).stdout
    assert "2024-01-08T14:30:00.123456789Z" in table and "nan" in table
    run("query", q, "-o", str(tmp_path / "m.parquet"), store=s)
    assert pq.read_table(str(tmp_path / "m.parquet")).num_rows == 2
    for name, lines in (("m.csv", 3), ("m.json", 2)):  # csv: its header too
        run("query", q, "-o", str(tmp_path / name), store=s)
        assert len((tmp_path / name).read_text().splitlines()) == lines, name
    p = run("status", "--store", str(s), check=False)
    assert p.returncode == 2 and "--store is an option of incbt itself" in p.stderr, p.stderr


def test_status_and_verify_name_a_write_under_way(tmp_path):
    """During a sweep, status called the sweep's runs not computed yet "interrupted"
    and verify told to run `incbt update` (QA 2026-12-05): both name the write under
    way, which status only did once it had left files."""
    from incbt.catalog.lock import write_lock

    s = tmp_path / "store"
    run("init", store=s)
    run("generate", str(tmp_path / "d"), "--instruments", "1", "--days", "2", store=s,
        check=False)
    run("ingest", str(tmp_path / "d"), store=s)
    run("backtest", "sma_cross", store=s)
    run("generate", str(tmp_path / "e"), "--instruments", "1", "--days", "1",
        "--start", "2024-03-04", store=s, check=False)
    run("ingest", str(tmp_path / "e"), store=s)  # the run is stale now
    with write_lock(str(s), 5):
        st = run("status", store=s)
        assert "a write is under way (pid " in flat(st.stdout + st.stderr), st
        v = run("verify", store=s, check=False)
        said = flat(v.stderr)
        assert "not verified:" in said and "a write is under way (pid " in said, said
        assert "run `incbt update`" not in said


def test_log_to_a_file_has_every_column_and_fees_rank_smallest_first(small_store, tmp_path):
    """Found by QA 2026-12-05: `incbt log -o log.json` wrote the 5 columns of the table
    on screen (--output json: all of them); ranked by fees, the costliest run came
    first (only max_drawdown ranked smallest first)."""
    import json

    from conftest import ingested

    run("log", "-o", str(tmp_path / "log.json"), store=small_store)
    row = json.loads((tmp_path / "log.json").read_text().splitlines()[0])
    shown = json.loads(run("log", "--output", "json", store=small_store).stdout.splitlines()[0])
    assert set(row) == set(shown) and "summary" in row and len(row) > 5, row
    s = ingested(tmp_path)
    sw = s.sweep("sma_cross", {"fast": [3, 5], "slow": [20]}, name="fee-rank", fee_bps=1.0)
    fees = sw.leaderboard("fees")["fees"].to_pylist()
    assert fees == sorted(fees) and fees[0] < fees[-1], fees


def test_a_report_of_a_sweep_named_like_a_run_id_says_so(tmp_path):
    """Found by QA 2026-12-05: a sweep named like the start of a run id took that name in
    `incbt report`, while `verify` took the run, and nothing said which it was."""
    from conftest import ingested

    s = ingested(tmp_path)
    rid = s.backtest("sma_cross", {"fast": 3, "slow": 20}).run_id
    s.sweep("sma_cross", {"fast": [4], "slow": [20]}, name=rid[:4])
    p = run("report", rid[:4], "-o", str(tmp_path / "r.html"), store=s.path)
    assert (f"note: {rid[:4]!r} names sweep {rid[:4]!r} and is the start of run {rid}: this "
            "is the sweep's report") in flat(p.stderr), p.stderr
    p = run("report", rid, "-o", str(tmp_path / "r.html"), store=s.path)
    assert "note:" not in p.stderr
    p = run("trades", rid[:4], "--stats", store=s.path)  # so in `incbt trades` (QA)
    assert (f"note: {rid[:4]!r} names sweep {rid[:4]!r} and is the start of run {rid}: this "
            "is the sweep's trade statistics") in flat(p.stderr), p.stderr


def test_a_sweeps_notes_are_said_once(tmp_path):
    """Found by review 2026-12-05: the CLI printed the API's warning and its own note of
    the same thing (a resume of a name not there; a sample short of --random N)."""
    from conftest import ingested

    s = ingested(tmp_path)
    p = run("sweep", "sma_cross", "-g", "fast=5,10", "-g", "slow=30", "--name", "nope",
            "--resume", store=s.path)
    assert flat(p.stderr).count("no sweep named 'nope'") == 1, p.stderr
    p = run("sweep", "sma_cross", "-g", "fast=5:40:5", "-g", "slow=30", "--random", "50",
            "--dry-run", store=s.path)
    assert flat(p.stderr).count("--random 50: the grid has") == 1, p.stderr


CHECKED = '''import incbt

@incbt.strategy(params={"n": incbt.Param(int, default=3, min=1)}, warmup=lambda p: p["n"])
def good(p, s, o, h, l, c, v, i):
    n = int(p[0])
    if i < n:
        return 0
    return 1 if c[i] > c[i - n] else -1

@incbt.strategy(params={"n": incbt.Param(int, default=3, min=1)})
def broken(p, s, o, h, l, c, v, i):
    return undefined_name

@incbt.strategy(params={"n": incbt.Param(int, default=3, min=1)}, reads=("close",))
def peeks(p, s, o, h, l, c, v, i):
    return 1 if c[i + 1] > c[i] else -1

@incbt.strategy(params={"n": incbt.Param(int, default=3, min=1)}, reads=("close",),
                warmup=lambda p: 1)
def forgets(p, s, o, h, l, c, v, i):
    n = int(p[0]) * 100  # reads 300 bars back, declares 1: fine over two bars
    if i < n:
        return 0
    return 1 if c[i] > c[i - n] else -1
'''


def test_strategies_check_compiles_and_runs_each_step_of_the_file(tmp_path):
    """`incbt strategies --strategies FILE` listed a step that does not compile without a
    word, until a backtest of it: --check compiles and runs each, then over days of
    synthetic bars twice and resumed from a day's snapshot, as a store checks its first
    runs of it (QA 2026-12-07: a step that breaks the contract only past two bars
    passed)."""
    f = tmp_path / "mine.py"
    f.write_text(CHECKED)
    p = run("strategies", "--strategies", str(f), store=tmp_path / "s")
    assert p.returncode == 0 and "check:" not in p.stdout
    # the file as an argument: the same (QA 2026-12-06: "unexpected extra argument")
    assert run("strategies", str(f), store=tmp_path / "s").stdout == p.stdout
    two = run("strategies", str(f), "--strategies", "x.py", store=tmp_path / "s", check=False)
    assert two.returncode == 2 and "give one strategies file" in two.stderr
    p = run("strategies", "--strategies", str(f), "--check", store=tmp_path / "s", check=False)
    out = flat(p.stdout)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert re.search(r"good: n \(int, default 3, \[1, inf\]\) state: \(none\) reads: .*? "
                     r"code version: [0-9a-f]{16} check: compiles, runs, and resumed from a "
                     r"day's snapshot gives the bits run whole gives", out), out
    assert "check: strategy 'broken': its step does not compile with Numba" in out
    assert "undefined_name" in out
    # it fails over the check's bars: which bound it read past, and no made-up time (QA
    # 2026-12-06: "at bar 0 (1970-01-01 00:00:00 UTC)")
    assert ("check: strategy 'peeks', parameter set 0 ({'n': 3}): the step raised IndexError "
            "at bar 0 (of the check's two bars of 1.0, no real time): a step read a bar after "
            "the current bar i (look-ahead)") in out, out
    assert re.search(r"forgets: .*? check: resumed on synthetic bars \d{4}-\d\d-\d\d from the "
                     r"previous day's snapshot, with its warm-up of 1 bar\(s\) loaded before, "
                     r"the step gives other results than run whole: .*? \(over 3 day\(s\) of "
                     r"synthetic bars, resumed on day 2 from its snapshot\)", out), out


def test_tables_print_text_as_stored_not_emoji_codes(small_store):
    """QA 2026-12-06: a sweep's grid fast=5:100:5 showed in `incbt log` as fast=5💯5
    (rich read ":100:" as an emoji code)."""
    p = run("query", "SELECT ':100: :smile:' AS b, 'fast=5:100:5' AS grid", store=small_store)
    assert ":100: :smile:" in p.stdout and "fast=5:100:5" in p.stdout, p.stdout


def test_options_of_the_files_update_ingests_need_files(small_store):
    """QA 2026-12-06: `update --map bogus=x --tz Not/AZone` without files ignored both
    and said "all up to date"; --join-days without files was refused."""
    for opt in (["--map", "instrument=sym"], ["--tz", "Not/AZone"], ["--join-days"]):
        p = run("update", *opt, store=small_store, check=False)
        assert p.returncode == 2 and f"{opt[0]} applies to the files update ingests: give " \
            "them" in p.stderr, (opt, p.stderr)


def test_init_refusing_a_variable_says_it_alone(tmp_path):
    """QA 2026-12-06: `INCBT_SESSION_TZ=UTC incbt init` on a Paris store said the
    variable "is ignored", then refused the init because of it."""
    s = tmp_path / "s"
    run("init", "--tz", "Europe/Paris", store=s)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCBT_")}
    env |= {"INCBT_STORE": str(s), "INCBT_SESSION_TZ": "UTC"}
    p = run_incbt(["init"], env=env)
    assert p.returncode == 1 and "is ignored" not in p.stderr, p.stderr
    assert "session_tz='Europe/Paris' (asked 'UTC' by INCBT_SESSION_TZ)" in p.stderr


def test_a_new_run_with_nothing_to_compute_yet_is_not_up_to_date(tmp_path):
    """QA 2026-12-06: a backtest starting after the last bar said "already up to date"
    for a run it had just registered (or, dry, would); a run from the first bar, with no
    bar yet, was said to start "from 0001-01-01"."""
    s = tmp_path / "s"
    run("init", store=s)
    run("backtest", "breakout", store=s)
    assert "(from its first bar: none yet)" in flat(run("status", store=s).stdout)
    run("generate", str(tmp_path / "d"), "--instruments", "2", "--days", "2", store=s)
    run("ingest", str(tmp_path / "d"), store=s)
    args = ("backtest", "sma_cross", "-p", "fast=3", "--start", "2031-01-02")
    p = run(*args, "--dry-run", store=s)
    assert p.stdout.startswith("would register the run; nothing to compute yet\n"), p.stdout
    p = run(*args, store=s)
    assert p.stdout.startswith("registered; nothing to compute yet\n"), p.stdout
    p = run(*args, store=s)
    assert p.stdout.startswith("already up to date: nothing computed\n"), p.stdout
    assert "(from 2031-01-02)" in flat(run("status", store=s).stdout)


def test_verify_bars_finds_a_file_changed_on_disk_and_rewrite_repairs_it(tmp_path):
    """QA 2026-12-06: a bit flipped in a bars file (same size) passed `status`, changed
    what SQL and backtests read, and ingesting the original data again was a no-op (its
    hash is the catalog's). `verify --bars` names the day and file; `ingest --rewrite`
    of the original data writes it again; then the store is whole."""
    s = tmp_path / "s"
    run("init", store=s)
    run("generate", str(tmp_path / "d"), "--instruments", "2", "--days", "3", "--format",
        "parquet", store=s)
    run("ingest", str(tmp_path / "d"), store=s)
    run("backtest", "sma_cross", "-p", "fast=3", "-p", "slow=20", store=s)
    assert "each equal to what was ingested" in run("verify", "--bars", store=s).stdout
    f = sorted((s / "bars").rglob("*.parquet"))[0]
    data = bytearray(f.read_bytes())
    for k in range(len(data) // 3, len(data) // 3 + 64):  # values of the first day's bars
        data[k] ^= 0x55
    f.write_bytes(bytes(data))
    assert run("status", store=s, check=False).returncode == 0  # the same size
    p = run("verify", "--bars", store=s, check=False)
    assert p.returncode == 1 and f"({f.relative_to(s)}): not the bars ingested" in p.stderr
    assert "incbt ingest --rewrite" in flat(p.stderr)
    p = run("ingest", str(tmp_path / "d"), store=s)
    assert "nothing changed" in p.stdout  # the same bars: a no-op, as before
    p = run("ingest", "--rewrite", str(tmp_path / "d"), store=s)
    assert "6 day(s) written again as they were" in p.stdout, p.stdout
    assert run("verify", "--bars", store=s).returncode == 0
    assert "computed 2 segment(s)" in run("update", store=s).stdout  # from the days rewritten
    assert run("verify", store=s).returncode == 0
    assert not (s / "tmp").exists() or not any((s / "tmp").iterdir())
    p = run("ingest", "--rewrite", "--join-days", str(tmp_path / "d"), store=s, check=False)
    assert p.returncode == 2 and "give one of them" in p.stderr


def test_small_cli_words(small_store, tmp_path):
    """QA 2026-12-06: no --version; `query SQL --list` ran nothing without a word;
    `query '   '` was DataFusion's error (exit 1) where `query ''` is bad usage; an empty
    store was "0 instruments ()"; generate onto a file said "incbt: ... File exists ...
    (or free space on its disk)"."""
    import incbt as pkg

    assert run("--version").stdout == f"incbt {pkg.__version__}\n"
    p = run("query", "select 1", "--list", store=small_store, check=False)
    assert p.returncode == 2 and "--list lists the named queries: give it alone" in p.stderr
    for given in (["-p", "x=1"], ["--as-of", "1"], ["--pivot"]):  # ignored (QA 2026-12-07)
        p = run("query", "--list", *given, store=small_store, check=False)
        assert p.returncode == 2 and "--list lists the named queries: give it alone" \
            in p.stderr and given[0] in p.stderr, p.stderr
    p = run("query", "   ", store=small_store, check=False)
    assert p.returncode == 2 and "give SQL or a query name" in p.stderr
    run("init", store=tmp_path / "empty")
    p = run("backtest", "sma_cross", "--instruments", "X", store=tmp_path / "empty", check=False)
    assert p.returncode == 1 and "the store holds no bars yet: ingest some first" in p.stderr
    (tmp_path / "afile").write_text("x")
    p = run("generate", str(tmp_path / "afile"), check=False)
    assert p.returncode == 1 and p.stderr.startswith(f"error: {tmp_path / 'afile'} is a file, "
                                                     "not a folder: give a folder"), p.stderr


def test_a_folder_inside_a_store_and_a_plain_file_named_gz(small_store, tmp_path):
    """QA 2026-12-06: `--store STORE/bars` sent the user to `init` there (refused: the
    folder is not empty), a new folder inside a store took a store of its own, and a
    plain CSV named .csv.gz was "truncated or corrupt gzip: download it again"."""
    p = run("status", store=small_store / "bars", check=False)
    assert p.returncode == 1 and f"is a folder inside the store {small_store}, not a store" \
        in flat(p.stderr), p.stderr
    p = run("init", store=small_store / "sub", check=False)
    assert p.returncode == 1 and "create the new store outside it" in p.stderr
    assert not (small_store / "sub").exists()
    f = tmp_path / "plain.csv.gz"
    f.write_text("instrument,ts,open,high,low,close,volume\nA,2024-01-02T14:30:00Z,1,1,1,1,1\n")
    p = run("ingest", str(f), "--dry-run", store=small_store, check=False)
    assert p.returncode == 1 and "its name ends .gz but it is not gzip-compressed" in p.stderr


def test_a_mapped_column_matches_in_another_case(tmp_path):
    """QA 2026-12-06: --map instrument=SYM did not find a column named sym (names not
    mapped matched in any case already); one row said "1 rows read"."""
    f = tmp_path / "m.csv"
    f.write_text("SYM,TIME,open,high,low,close,volume\nA,2024-01-02T14:30:00Z,1,1,1,1,1\n")
    run("init", store=tmp_path / "s")
    p = run("ingest", str(f), "--map", "instrument=sym", "--map", "ts=time", store=tmp_path / "s")
    assert p.stdout.startswith("1 file(s), 1 row read: added 1 new day(s)"), p.stdout


STARTING = r"""
import importlib.abc, os, signal, sys

how = sys.argv[1]


class Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "incbt.render":  # one of the CLI's imports, after the entry point's
            if how == "SIGTERM":
                os.kill(os.getpid(), signal.SIGTERM)
            elif how == "SIGINT":
                raise KeyboardInterrupt
            else:  # what Python makes of a Ctrl-C in a class body's __set_name__
                try:
                    raise KeyboardInterrupt
                except KeyboardInterrupt as exc:
                    raise RuntimeError("Error calling __set_name__") from exc
        return None

sys.meta_path.insert(0, Hook())
sys.argv[1:] = ["status"]
from incbt._entry import main
main()
"""


@pytest.mark.parametrize(("how", "code", "said"), [
    ("SIGINT", 130, "interrupted while starting: nothing was read or written"),
    ("wrapped", 130, "interrupted while starting: nothing was read or written"),
    ("SIGTERM", 143, "terminated (SIGTERM) while starting: nothing was read or written"),
])
def test_a_signal_while_the_command_starts_is_said_in_a_line(small_store, how, code, said):
    """QA 2026-12-06: Ctrl-C in the first ~0.2 s (the package's imports, before the
    entry point's guard) was a KeyboardInterrupt traceback, once a RuntimeError from a
    class body (exit 1); SIGTERM there ended the command without a word. The package
    now loads nothing heavy before the guard, which says each in a line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCBT_")}
    env["INCBT_STORE"] = str(small_store)
    p = subprocess.run([sys.executable, "-c", STARTING, how], capture_output=True, text=True,
                       env=env, timeout=60)
    assert p.returncode == code and p.stderr == said + "\n", (p.returncode, p.stderr)


def test_importing_the_package_loads_no_store():
    """What runs before the entry point's guard: `import incbt` loads no store, Arrow
    or engine (they load on first use)."""
    p = subprocess.run([sys.executable, "-c", "import sys, incbt; print(sorted(m for m in "
                        "('incbt.store', 'pyarrow', 'numba', 'incbt.cli') if m in sys.modules))"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stdout + p.stderr


def test_verify_says_a_missing_row_as_counts(tmp_path):
    """QA 2026-12-06: a row count difference read "row count: * stored 14, recomputed
    15", as a cell; the hint names `verify --bars` for bars changed outside incbt."""
    import pyarrow.parquet as pq

    s = tmp_path / "s"
    run("init", store=s)
    run("generate", str(tmp_path / "d"), "--instruments", "2", "--days", "3", store=s)
    run("ingest", str(tmp_path / "d"), store=s)
    run("backtest", "sma_cross", "-p", "fast=3", "-p", "slow=20", store=s)
    for f in (s / "results" / "daily").iterdir():
        t = pq.read_table(f)
        pq.write_table(t.slice(0, t.num_rows - 1), f)
    p = run("verify", store=s, check=False)
    assert p.returncode == 1 and " daily 5 row(s) stored, 6 recomputed" in p.stderr, p.stderr
    assert "`incbt verify --bars` names it" in flat(p.stderr)


def test_the_stale_title_counts_pairs_and_whole_runs_apart():
    """QA 2026-12-06: a run whose strategy file is gone (a row for the run as a whole)
    was counted as "1 (run, instrument) pair"."""
    from incbt.cli import _stale_title
    from incbt.update import StaleRow

    rows = [StaleRow("r1", "s", "A", "new day(s)", "2024-01-02", 10),
            StaleRow("r2", "s", "", "cannot recompute: gone", None, 0)]
    assert _stale_title(rows) == ("stale: 1 (run, instrument) pair(s) and 1 run(s) as a "
                                  "whole by cause (--output csv lists each)")
    assert _stale_title(rows[:1]).startswith("stale: 1 (run, instrument) pair(s) by cause")


def test_pairs_not_computed_are_no_strategy_failure(capsys):
    """QA 2026-12-06: pairs whose Ray tasks died on every try were said as the strategy
    failing ("results are not stored ... fix the strategy"). They are said apart: nothing
    stored was lost, and the same command again computes them; exit 1."""
    import typer

    from incbt.cli import _exit_if_failed, _print_failures
    from incbt.runs import UpdateReport

    r = UpdateReport(not_run=["S0001: run abc not computed (its task failed on every try)"])
    _print_failures(r)
    with pytest.raises(typer.Exit) as info:
        _exit_if_failed(r)
    assert info.value.exit_code == 1
    said = flat(capsys.readouterr().err)
    assert "not computed: S0001: run abc" in said and "Fix the strategy" not in said
    assert ("1 (run, instrument) pair(s) not computed (above): their tasks failed on every "
            "try") in said
    # the summary line counts them apart (QA 2026-12-06: "computed 31,200 segment(s), 0
    # bar-steps" when no task had run)
    from incbt.cli import _segments

    r.segments = 4
    assert _segments(r) == "3 segment(s) (1 more not computed: see below)"
    assert _segments(UpdateReport(segments=4)) == "4 segment(s)"


def test_points_a_sample_leaves_out_are_said_as_such(small_store):
    """QA 2026-12-06: --random N said every rejected point of the whole grid "skipped",
    as if the sample had drawn them."""
    p = run("sweep", "sma_cross", "-g", "fast=10,60", "-g", "slow=50", "--random", "1",
            "--dry-run", store=small_store)
    assert "left out of the sample: 1 grid point(s) the strategy rejects" in p.stdout, p.stdout
    p = run("sweep", "sma_cross", "-g", "fast=10,60", "-g", "slow=50", "--dry-run",
            store=small_store)
    assert "skipped: 1 grid point(s) the strategy rejects" in p.stdout, p.stdout


def test_verify_bars_reads_every_column_from_disk_and_rewrite_is_safe(tmp_path):
    """QA 2026-12-06, of verify --bars and ingest --rewrite: a flipped `date` (what SQL
    filters on) passed; a file replaced by another valid one was an internal error
    (exit 3); a small file this process wrote was checked from its copy in memory; a
    rewrite killed before its commit left repaired files under damaged results (now it
    writes files of its own, the commit repoints the days); a rewrite that cut a day
    short of the stored one went through."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from incbt.bars.generate import generate

    generate(str(tmp_path / "d"), instruments=2, days=4, start="2024-01-01", seed=2)
    generate(str(tmp_path / "e"), instruments=2, days=5, start="2024-01-01", seed=2,
             from_day="2024-01-05")
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    s.ingest(str(tmp_path / "e"))  # small append files, remembered by this process
    assert s.verify_bars().ok
    small = sorted((tmp_path / "s" / "bars").rglob("*.parquet"), key=os.path.getsize)[0]
    t = pq.read_table(small)
    t = t.set_column(t.column_names.index("close"), "close",
                     pa.array(t["close"].to_numpy() * 1.5))
    pq.write_table(t, small)
    chk = s.verify_bars()  # from disk, not this process's copy
    assert len(chk.differ) == 1 and chk.differ[0][1] == "2024-01-05", chk
    big = sorted((tmp_path / "s" / "bars").rglob("*.parquet"), key=os.path.getsize)[-1]
    t = pq.read_table(big)
    dates = t["date"].combine_chunks().to_numpy(zero_copy_only=False).astype("datetime64[D]")
    t = t.set_column(t.column_names.index("date"), "date",
                     pa.array(dates + np.timedelta64(1, "D")))
    pq.write_table(t, big)
    assert len(s.verify_bars().differ) == 1 + 4  # every day of the file: its date column
    shutil.copyfile(small, big)  # a valid bars file, of other rows
    chk = s.verify_bars()
    assert [r for r, _ in chk.unreadable] == [str(big.relative_to(tmp_path / "s"))], chk
    p = run("verify", "--bars", store=tmp_path / "s", check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr and "unreadable:" in p.stderr
    res = s.ingest([str(tmp_path / "d"), str(tmp_path / "e")], rewrite=True)
    assert res.days_rewritten == 10 and s.verify_bars().ok
    assert os.path.exists(big)  # the damaged file stays, superseded (gc removes it)
    # a rewrite giving part of a stored day is refused, the store as it was
    part = tmp_path / "part.csv"
    rows = sorted((tmp_path / "d").iterdir())[0].read_text().splitlines()
    part.write_text("\n".join(rows[:100]) + "\n")
    with pytest.raises(incbt.BadInputError, match="--rewrite writes days whole"):
        s.ingest(str(part), rewrite=True)
    assert s.verify_bars().ok


def test_csv_writes_times_as_json_does(tmp_path):
    """`--output csv` wrote Arrow's form of a time ("2024-02-01 14:30:00.000000000Z")
    where JSON and the table write ISO 8601 ("2024-02-01T14:30:00Z"); a script mixing
    the outputs had two forms to parse (QA 2026-12-06). NaN stays NaN in CSV."""
    env = _ingested(tmp_path, instruments=1, days=1)
    q = "SELECT ts, CAST('NaN' AS DOUBLE) AS x FROM bars ORDER BY ts LIMIT 1"
    csv_rows = run_incbt(["query", q, "--output", "csv"], env=env).stdout.splitlines()
    js = run_incbt(["query", q, "--output", "json"], env=env).stdout
    ts = json.loads(js)["ts"]
    assert ts.endswith("Z") and "T" in ts, ts
    assert csv_rows[1].split(",")[0].strip('"') == ts, csv_rows
    assert csv_rows[1].split(",")[1].lower() == "nan", csv_rows


def test_failures_with_the_same_words_are_one_line_naming_the_instruments():
    from incbt.cli import grouped_failures

    err = "strategy 'x' ({'n': 5}): the step raised IndexError at its day's bar 0"
    errors = [f"S{k:04d}: {err}" for k in range(8)] + ["S0009: another error: here"]
    assert grouped_failures(errors) == [
        f"S0000, S0001, S0002, S0003, S0004, S0005 and 2 more (8 instruments): {err}",
        "S0009: another error: here",
    ]
    assert grouped_failures(errors[:2], names=6) == [f"S0000, S0001 (2 instruments): {err}"]
    assert grouped_failures(["no colon here"]) == ["no colon here"]


def test_a_usage_error_points_at_its_commands_help(tmp_path):
    """An option given without its value is said in the group's context: the fix names
    the command's help all the same (QA 2026-12-06: `incbt --help`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCBT_")}
    incbt_bin = os.path.join(os.path.dirname(sys.executable), "incbt")
    r = subprocess.run([incbt_bin, "--store", str(tmp_path / "s"), "update", "--ts-unit"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: Option '--ts-unit' requires an argument. Fix: "
                                "`incbt update --help` lists what it takes")
    r = subprocess.run([incbt_bin, "ingset"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "'init'? Fix: `incbt --help`" in r.stderr, r.stderr


def test_incbt_alone_shows_its_help_and_says_a_command_is_missing():
    """QA 2026-12-07: `incbt` alone printed its help, then 'error: . Fix: ...' (click's
    message for it is the help, which typer prints itself and returns empty)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCBT_")}
    incbt_bin = os.path.join(os.path.dirname(sys.executable), "incbt")
    r = subprocess.run([incbt_bin], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "Usage: incbt" in r.stdout
    assert r.stderr.strip() == ("error: Missing command. Fix: `incbt --help` lists what it "
                                "takes"), r.stderr


LATE_CTRL_C = """
import sys
import incbt.sweep, incbt.cli

def stop(*a, **k):  # a Ctrl-C as the sweep's results are printed: every run is committed
    raise KeyboardInterrupt

incbt.sweep.SweepResult.leaderboard = stop
sys.argv = ["incbt", *sys.argv[1:]]
incbt.cli.main()
"""


def test_a_ctrl_c_anywhere_in_a_sweep_says_to_resume_it(small_store):
    """QA 2026-12-06: a Ctrl-C landing as a sweep printed its results said "run the same
    command again to finish it", which is refused (the name exists); it says --resume,
    as one during the computing does, and --resume then finds the sweep whole."""
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("INCBT_")}
    env["INCBT_STORE"] = str(small_store)
    args = ["sweep", "sma_cross", "-g", "fast=3,4", "-g", "slow=15", "--name", "late"]
    p = subprocess.run([sys.executable, "-c", LATE_CTRL_C, *args], capture_output=True,
                       text=True, env=env)
    assert p.returncode == 130, p.stderr
    assert "continue with the same command and --resume" in p.stderr, p.stderr
    assert "run the same command again" not in p.stderr, p.stderr
    again = run(*args, "--resume", store=small_store)
    assert "2 run(s), 0 new (the 2 point(s) given are in the sweep already); computed 0 " \
        "segment(s)" in flat(again.stdout), again.stdout
    # a narrower grid: its points said as held (it said "0 new" alone: QA 2026-12-06)
    one = run("sweep", "sma_cross", "-g", "fast=3", "--name", "late", "--resume",
              store=small_store)
    assert "2 run(s), 0 new (the 1 point(s) given are in the sweep already)" in flat(one.stdout)


def test_the_event_log_records_a_command_a_shell_takes_back(tmp_path):
    """QA 2026-12-06: `--map ts='Gmt time'` was recorded as --map ts=Gmt time, which
    does not run again as it was: the recorded command is quoted as a shell takes it."""
    import shlex

    s = tmp_path / "s"
    run("init", store=s)
    run("generate", str(tmp_path / "my data"), "--instruments", "1", "--days", "1", store=s)
    run("ingest", str(tmp_path / "my data"), store=s)
    p = run("query", "SELECT command FROM events WHERE kind = 'ingest'", "--output", "csv",
            store=s)
    recorded = p.stdout.strip().splitlines()[-1].strip('"')
    assert shlex.split(recorded) == ["incbt", "ingest", str(tmp_path / "my data")], recorded


def test_an_instrument_name_holding_a_comma_is_quoted_in_instruments(tmp_path):
    """``--instruments`` is one CSV line: a name with a comma is quoted; split unquoted,
    the error says how to quote it (QA 2026-12-06: no way to name it at all)."""
    s = tmp_path / "s"
    run("init", store=s)
    rows = "".join(f'"X,Y",2024-01-02T14:{m:02d}:00Z,10,13,9,{10 + m % 3},1\n' for m in range(30))
    rows += "".join(f"Z,2024-01-02T14:{m:02d}:00Z,10,11,9,{10 + m % 2},1\n" for m in range(30))
    (tmp_path / "c.csv").write_text("instrument,ts,open,high,low,close,volume\n" + rows)
    run("ingest", str(tmp_path / "c.csv"), store=s)
    bad = run("backtest", "sma_cross", "-p", "fast=2", "-p", "slow=5", "--instruments", "X,Y",
              store=s, check=False)
    assert bad.returncode == 1 and "unknown instrument(s) 'X', 'Y'" in bad.stderr
    assert "the store has an instrument 'X,Y': quote it in --instruments" in bad.stderr
    ok = run("backtest", "sma_cross", "-p", "fast=2", "-p", "slow=5", "--instruments",
             '"X,Y", Z', "--output", "csv", store=s).stdout
    assert '"X,Y"' in ok and '"Z"' in ok


SPINNER = '''
import incbt


@incbt.strategy(params={"spin_at": incbt.Param(int, 1, min=1)}, state=("n", "x"))
def spinner(p, s, o, h, l, c, v, i):
    """At its bar number spin_at, a loop of hours (a strategy far slower than its data)."""
    s[0] += 1.0
    if s[0] == p[0]:
        x = s[1]
        for _ in range(10**13):
            x = x * 0.5 + c[i]
        s[1] = x
    return 1 if c[i] > s[1] else -1
'''


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_stops_a_command_whose_task_computes_for_hours(tmp_path, sig):
    """The executor's threads ran a kernel to its task's end before the command could
    exit: a sweep of breakout lookbacks to 4,000 took 94 s to stop, and its progress
    lines waited for a task to end (QA 2026-12-06). Now a line comes every second while
    a task computes, and the signal ends the command at once (exit 130 / 143)."""
    import signal as sg

    env = _ingested(tmp_path, instruments=2, days=260)  # 101,400 bars a task: 2 threads
    (tmp_path / "spin.py").write_text(SPINNER)
    p = subprocess.Popen(
        [INCBT, "backtest", "spinner", "--strategies", str(tmp_path / "spin.py"), "-p",
         "spin_at=60000"],  # past the days the contract check runs the step over
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**env, "INCBT_PROGRESS_SECONDS": "1", "INCBT_PROCESSES": "1"},
    )
    try:
        assert p.stderr is not None
        line = p.stderr.readline()  # a progress line, while both threads spin
        assert line.startswith("bar-steps: 0 of 202,800 (0%)"), line
        p.send_signal(getattr(sg, sig))
        p.wait(timeout=60)  # hours without the fix
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = line + p.stderr.read()
    assert p.returncode == (143 if sig == "SIGTERM" else 130), err
    assert ("terminated (SIGTERM)" if sig == "SIGTERM" else "interrupted:") in err, err
    assert "Traceback" not in err, err


STUCK = (
    "import sys, incbt.cli as cli, incbt.contract as contract\n"
    "from incbt.engine import params_from_dict\n"
    "from incbt.engine.kernel import load_kernel\n"
    "cli.STOP_GRACE_SECONDS = 1.0\n"
    "real = contract.check_new_runs\n"
    "def check(store, records, known):\n"
    "    r = records[0]\n"  # its kernel compiled (or loaded) first: then the check spins
    "    st = contract.resolve_strategy(r.strategy, r.source, r.code_version)\n"
    "    load_kernel(st, params_from_dict(st, {'spin_at': 10**9}))\n"
    "    sys.stderr.write('checking\\n'); sys.stderr.flush()\n"
    "    return real(store, records, known)\n"
    "contract.check_new_runs = check\n"
    "sys.argv = ['incbt', *sys.argv[1:]]\n"
    "cli.main()\n"
)


@pytest.mark.parametrize(("sig", "twice"), [("SIGINT", False), ("SIGTERM", True)])
def test_a_signal_stops_a_command_whose_step_never_returns_in_its_main_thread(
    tmp_path, sig, twice
):
    """A step that never returns, in the contract check the command runs in its own main
    thread: Python's handler of the signal never ran, and Ctrl-C and SIGTERM left the
    command running for good (QA 2026-12-07; only kill -9 stopped it). Now a thread that
    sees the signal arrive ends it STOP_GRACE_SECONDS later (1 s here), or at a second."""
    import signal as sg
    import time

    env = _ingested(tmp_path, instruments=2, days=3)
    (tmp_path / "spin.py").write_text(SPINNER)
    p = subprocess.Popen(
        [sys.executable, "-c", STUCK, "backtest", "spinner", "--strategies",
         str(tmp_path / "spin.py"), "-p", "spin_at=5"],  # in the days the check runs
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=lambda: sg.signal(sg.SIGINT, sg.SIG_DFL),
    )
    try:
        assert p.stderr is not None
        assert p.stderr.readline() == "checking\n"
        time.sleep(1.0)  # its step spins from the 5th bar
        p.send_signal(getattr(sg, sig))
        if twice:  # apart: two at once may arrive as one
            time.sleep(0.3)
            p.send_signal(getattr(sg, sig))
        p.wait(timeout=60)  # for good without the fix
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = p.stderr.read()
    assert p.returncode == (143 if sig == "SIGTERM" else 130), err
    when = "at a second signal" if twice else "1 s after the signal"
    assert f"stopped at once, {when}" in err and "Traceback" not in err, err
    assert run_incbt(["status"], env=env).returncode == 0  # the store as it was


def test_a_signal_landing_as_a_commit_ends_counts_what_it_kept(tmp_path):
    """A SIGTERM that landed as a commit ended was raised before the commit was counted:
    "2,400 of its 4,800 (run, instrument) pairs" were said kept where all were (QA
    2026-12-07). Here the signal is sent from inside the commit, after its transaction:
    the command says every pair the store holds."""
    env = _ingested(tmp_path, instruments=3, days=3)
    code = (
        "import os, signal, sys\n"
        "import incbt.runs as r\n"
        "real = r.commit\n"
        "def commit(store, results, *a, **k):\n"
        "    out = real(store, results, *a, **k)\n"
        "    if results:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return out\n"
        "r.commit = commit\n"
        "sys.argv = ['incbt', 'sweep', 'sma_cross', '-g', 'fast=5,10', '-g', 'slow=50,60',"
        " '--name', 'g']\n"
        "from incbt._entry import main\n"
        "main()\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 143 and "terminated (SIGTERM)" in p.stderr, p.stderr
    kept = incbt.open(env["INCBT_STORE"]).sql(
        "SELECT count(*) AS n FROM metrics WHERE scope <> 'portfolio'")["n"][0].as_py()
    said = f"({kept:,} of the 12 (run, instrument) pairs planned so far)"
    assert kept > 0 and said in p.stderr, (
        kept, p.stderr)


def test_empty_or_impossible_option_values_are_usage_and_dash_is_stdout(tmp_path):
    """QA 2026-12-06: `generate ''` was "a file the store's catalog lists is gone", `-o ''`
    printed to the screen, `query/log -o -` wrote a file named '-' (report's -o - is
    standard output), event numbers below 1, an empty --kind or --sweep were exit 1, and
    `--store FILE settings` listed a new store's settings."""
    s = tmp_path / "s"
    run("init", store=s)
    for args, said in [
        (("generate", "", "--days", "1", "--instruments", "1"), "OUT '' names no folder"),
        (("generate", " ", "--days", "1", "--instruments", "1"), "OUT ' ' names no folder"),
        (("query", "SELECT 1 AS x", "-o", ""), "'' names no file"),
        (("log", "-o", ""), "'' names no file"),
        (("gc", "--before", "0", "--dry-run"), "events are numbered from 1"),
        (("query", "SELECT 1 AS x", "--as-of", "-1"), "events are numbered from 1"),
        (("log", "--kind", ""), "kind '' names no kind"),
        (("drop", "--sweep", ""), "--sweep '' names no sweep"),
    ]:
        p = run(*args, store=s, check=False)
        assert p.returncode == 2 and said in p.stderr, (args, p.stderr)
    assert not (tmp_path / " ").exists()
    p = subprocess.run([INCBT, "query", "SELECT 1 AS x", "-o", "-", "--output", "parquet"],
                       capture_output=True, env={**os.environ, "INCBT_STORE": str(s)},
                       cwd=tmp_path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert p.returncode == 0 and pq.read_table(pa.BufferReader(p.stdout))["x"].to_pylist() == [1]
    out = run("log", "-o", "-", "--output", "json", store=s).stdout
    assert json.loads(out.splitlines()[0])["kind"] == "init"
    assert not (tmp_path / "-").exists() and not os.path.exists("-")
    (tmp_path / "afile").write_text("x")
    p = run("--store", str(tmp_path / "afile"), "settings", check=False)
    assert p.returncode == 1 and "is a file, not an incbt store" in p.stderr, p.stderr
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bars.csv").write_text("x")  # a folder init refuses: said so
    p = run("--store", str(tmp_path / "data"), "settings", "-o", "-", check=False)
    assert p.returncode == 0 and "where `incbt init` makes none" in p.stdout, p.stdout


def test_a_text_table_into_a_file_is_whole(small_store, tmp_path):
    """QA 2026-12-07: `query ... -o big.txt` wrote the screen's first 200 rows, floats cut
    to 10 digits, and "... N more rows" into the file, exit 0."""
    q = "SELECT * FROM bars ORDER BY instrument, ts"
    want = incbt.open(str(small_store)).sql(q)
    assert want.num_rows > 200
    run("query", q, "-o", str(tmp_path / "big.txt"), store=small_store)
    lines = (tmp_path / "big.txt").read_text().splitlines()
    assert len(lines) == want.num_rows + 2 and "more rows" not in lines[-1], lines[-1]
    names = [c.strip() for c in lines[0].split("|")]
    assert names == want.column_names
    assert set(lines[1]) <= {"-", "+"}
    closes = [float(ln.split("|")[names.index("close")]) for ln in lines[2:]]
    assert closes == want["close"].to_pylist()  # every digit


NESTED = ("SELECT array_agg(instrument ORDER BY instrument) AS a, interval '1 day 2 hours' AS i,"
          " X'00ff' AS b, named_struct('x', 1, 'y', 'z') AS st"
          " FROM (SELECT DISTINCT instrument FROM metrics WHERE instrument IS NOT NULL)")


def test_lists_structs_bytes_and_intervals_in_every_output(small_store, tmp_path):
    """QA 2026-12-07: --output csv failed on array_agg's list ("Unsupported Type") and on
    bytes ("Invalid UTF8 payload"); JSON wrote bytes as Python's repr and an interval as
    [0, 1, 7200000000000]."""
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(run("query", NESTED, "--output", "csv",
                                               store=small_store).stdout)))
    assert rows == [{"a": '["S0000", "S0001"]', "i": "P1DT7200S", "b": "00ff",
                     "st": '{"x": 1, "y": "z"}'}]
    got = json.loads(run("query", NESTED, "--output", "json", store=small_store).stdout)
    assert got == {"a": ["S0000", "S0001"], "i": "P1DT7200S", "b": "00ff",
                   "st": {"x": 1, "y": "z"}}
    screen = run("query", NESTED, store=small_store).stdout
    assert '["S0000", "S0001"]' in screen and "00ff" in screen and "P1DT7200S" in screen


def test_strategies_check_does_not_claim_a_resume_it_did_not_run(tmp_path):
    """A warm-up longer than the check's synthetic days leaves no day to resume on: the
    check said "resumed from a day's snapshot gives the bits run whole gives" all the same,
    for a step that uses ``i`` as a count (QA 2026-12-07)."""
    f = tmp_path / "long.py"
    f.write_text(
        "import incbt\n\n"
        "@incbt.strategy(params={}, warmup=lambda p: 390 * 300, reads=('close',))\n"
        "def huge(p, s, o, h, l, c, v, i):\n"
        "    if i < 390 * 300:\n"
        "        return 0\n"
        "    return 1 if c[i] > c[i - 390 * 300] else -1\n"
    )
    p = run("strategies", str(f), "--check", store=tmp_path / "s")
    out = flat(p.stdout)
    assert "resumed from a day's snapshot gives the bits" not in out, out
    assert ("check: compiles and runs (260 day(s) of synthetic bars: its warm-up of 117,000 "
            "bars leaves too few of them to resume after, so not resumed") in out, out


def test_csv_of_text_views(small_store):
    """QA 2026-12-08: `--output csv` of CAST(x AS VARCHAR) (DataFusion's Utf8View) failed
    with "error: incbt: Unsupported Type:string_view", exit 1."""
    q = "SELECT CAST(run_id AS VARCHAR) AS v, arrow_cast(X'00ff', 'BinaryView') AS b FROM runs"
    p = run("query", q + " LIMIT 1", "--output", "csv", store=small_store, check=False)
    assert p.returncode == 0, p.stderr
    head, row = p.stdout.splitlines()
    assert head == '"v","b"' and row.endswith(',"00ff"') and len(row.split(",")[0]) == 18


def test_an_answer_with_two_run_id_columns(small_store):
    """QA 2026-12-08: an answer with two columns named run_id was written, then the
    command failed, exit 3 ("KeyError: 'Field "run_id" exists 2 times in schema'", from
    the note on stale runs)."""
    two = "SELECT a.run_id, b.run_id FROM runs a JOIN runs b USING (run_id)"
    for output in ("csv", "table"):
        p = run("query", two, "--output", output, store=small_store, check=False)
        assert p.returncode == 0 and "Error" not in p.stderr, (output, p.stderr)
