"""``incbt remove``: bars taken out of the store, as one event. Results over them then
equal, bit for bit, a store that never held them: the runs recompute from the first
day removed, and lose their results after it where no bar is left (an instrument
removed whole leaves the runs over every instrument). A kill at any point leaves the
store as before or as after; the command run again finishes it.

(The property of tests/test_incremental_props.py draws removals among its histories.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings

import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pytest
from conftest import tree_state
from test_crash import ALL_BARS, HOOKS, copy_store, norm, same_bars

import incbt
from incbt.bars.generate import generate
from incbt.catalog.env import close_env

G = dict(instruments=3, days=8, start="2024-01-01", seed=3)  # Jan 1 .. Jan 10
QUERIES = (
    "SELECT * FROM daily ORDER BY run_id, instrument, date",
    "SELECT * FROM fills ORDER BY run_id, instrument, ts",
    "SELECT * FROM metrics ORDER BY run_id, scope, instrument",
)


def runs(s: incbt.Store) -> None:
    """An "all" run, a run of two named instruments, a fork of a third run, a sweep."""
    s.backtest("sma_cross", {"fast": 4, "slow": 30}, start="2024-01-01", fee_bps=1.0)
    s.backtest("breakout", {"lookback": 40}, start="2024-01-01", instruments=["S0000", "S0002"])
    base = s.backtest("sma_cross", {"fast": 5, "slow": 30}, start="2024-01-01")
    s.backtest("sma_cross", {"fast": 8}, fork_of=base.run_id, effective="2024-01-05")
    s.sweep("ema_cross", {"fast": [5, 8], "slow": [25]}, start="2024-01-03", name="g")


def without(src: str, dst: str, cuts) -> str:
    """The generated files less the bars of ``cuts``: (instrument, first, last) days."""
    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(src)):
        t = pcsv.read_csv(os.path.join(src, name))
        day = name[5:15]
        for inst, a, b in cuts:
            if (a is None or day >= a) and (b is None or day <= b):
                t = t.filter(pc.not_equal(t["instrument"], inst))
        if t.num_rows:
            pcsv.write_csv(t, os.path.join(dst, name))
    return dst


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("remove")
    generate(str(root / "d"), **G)
    return root


CASES = {
    "the last days": [("S0001", "2024-01-09", None)],
    "a middle day": [("S0001", "2024-01-04", "2024-01-04")],
    "the first days, before the fork's day": [("S0002", "2024-01-01", "2024-01-02")],
    "an instrument whole": [("S0001", None, None)],
    "all but the last day": [("S0002", "2024-01-01", "2024-01-09")],
    "two at once": [("S0002", "2024-01-08", None), ("S0000", "2024-01-03", "2024-01-05")],
}


@pytest.mark.parametrize("case", list(CASES))
def test_results_equal_a_store_that_never_held_the_bars(data, tmp_path, case):
    cuts = CASES[case]
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "d"))
    runs(s)
    for inst, a, b in cuts:
        said = s.remove(inst, start=a, end=b)
        assert said.seq is not None and said.days_removed > 0
    st = s.status()
    assert st.stale, "the removal made nothing stale"
    assert all("removed bars from" in r.reason for r in st.stale if r.instrument), st.stale
    predicted = st.report.bars_processed
    res = s.update()
    assert res.report.bars_processed == predicted
    assert not s.status().stale
    fresh = incbt.init(str(tmp_path / "f"))
    fresh.ingest(without(str(data / "d"), str(tmp_path / "fd"), cuts))
    runs(fresh)
    for q in QUERIES:
        assert s.sql(q).equals(fresh.sql(q)), (case, q)
    assert s.verify().ok
    # the bars are those of the fresh store; --as-of the event before shows them all
    assert s.sql(ALL_BARS).equals(fresh.sql(ALL_BARS))
    full = incbt.open(str(tmp_path / "s")).sql("SELECT count(*) AS n FROM bars", as_of=2)
    assert full["n"][0].as_py() == 8 * 3 * 390


def test_a_removed_day_ingested_again_comes_back(data, tmp_path):
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "d"))
    runs(s)
    s.remove("S0001", start="2024-01-04", end="2024-01-05")
    s.update()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = s.update(str(data / "d"))
    assert back.ingest.days_new == 2 and back.ingest.days_corrected == 0
    fresh = incbt.init(str(tmp_path / "f"))
    fresh.ingest(str(data / "d"))
    runs(fresh)
    for q in QUERIES:
        assert s.sql(q).equals(fresh.sql(q)), q
    log = s.sql("SELECT kind FROM changes WHERE instrument = 'S0001' ORDER BY seq, date")
    assert log["kind"].to_pylist()[-4:] == ["removed", "removed", "new", "new"]


def test_status_after_a_remove_that_cuts_results_is_not_up_to_date(data, tmp_path):
    """QA 2026-12-06: after removing an instrument's last days, `store.status()` said
    "all up to date" while its results still held those days (the CLI said it)."""
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "d"))
    runs(s)
    s.remove("S0001", start="2024-01-09")
    said = repr(s.status())
    assert "all up to date" not in said and "would lose their results" in said, said
    s.update()
    assert "all up to date" in repr(s.status())


def test_gc_after_an_instrument_removed_whole_leaves_no_empty_folder(data, tmp_path):
    """QA 2026-12-06: `remove S0001` then `gc` left an empty bars/S0001/; the folder goes
    with its last file, the others stay, and the instrument can be ingested again."""
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "d"))
    s.remove("S0001")
    assert (tmp_path / "s" / "bars" / "S0001").is_dir()  # kept for --as-of until a gc
    s.gc()
    assert not (tmp_path / "s" / "bars" / "S0001").exists()
    assert (tmp_path / "s" / "bars" / "S0000").is_dir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert s.ingest(str(data / "d")).days_new > 0
    assert (tmp_path / "s" / "bars" / "S0001").is_dir() and s.verify_bars().ok


def test_a_run_dropped_then_registered_again_after_its_instrument_went(data, tmp_path):
    """Its rows of the instrument removed whole are not shown again (no task computes
    that instrument now: an empty segment cuts them)."""
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "d"))
    run = s.backtest("sma_cross", {"fast": 4, "slow": 30}, start="2024-01-01")
    s.drop([run.run_id])
    s.remove("S0000")
    again = s.backtest("sma_cross", {"fast": 4, "slow": 30}, start="2024-01-01")
    assert again.run_id == run.run_id
    insts = s.sql("SELECT DISTINCT instrument FROM daily ORDER BY 1")["instrument"].to_pylist()
    assert insts == ["S0001", "S0002"] and s.verify().ok


def test_dry_run_writes_nothing_and_bad_ranges_are_refused(data, tmp_path):
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "d"))
    before = tree_state(s.path)
    dry = s.remove(["S0001", "S0002"], start="2024-01-09", dry_run=True)
    assert dry.days_removed == 4 and dry.rows_removed == 4 * 390 and dry.seq is None
    assert [r[0] for r in dry.removed] == ["S0001", "S0002"] and not dry.emptied
    assert s.remove("S0001", dry_run=True).emptied == ["S0001"]
    with pytest.raises(incbt.NotFoundError, match="no bars of 'S0009': nothing was removed"):
        s.remove(["S0001", "S0009"])  # a typo beside a real name: nothing goes (QA)
    with pytest.raises(incbt.UsageError, match="not empty"):
        s.remove("")
    with pytest.raises(incbt.NotFoundError, match="S0001 from 2025-01-01 to 9999-12-31"):
        s.remove("S0001", start="2025-01-01")
    with pytest.raises(incbt.UsageError, match="is after --to"):
        s.remove("S0001", start="2024-01-05", end="2024-01-04")
    with pytest.raises(incbt.UsageError, match="is a moment, not a day"):
        s.remove("S0001", start=__import__("datetime").datetime(2024, 1, 5, 12))
    assert tree_state(s.path) == before


def test_the_command_says_what_it_removed_and_exits_1_on_nothing(data, tmp_path):
    exe = [sys.executable, "-m", "incbt", "--store", str(tmp_path / "s")]

    def run(*a):
        return subprocess.run([*exe, *a], capture_output=True, text=True)

    assert run("init").returncode == 0 and run("ingest", str(data / "d")).returncode == 0
    assert run("backtest", "sma_cross", "-p", "fast=4", "-p", "slow=30", "--all").returncode == 0
    p = run("remove", "S0001", "--from", "2024-01-09")
    assert p.returncode == 0, p.stderr
    assert "removed 2 day(s), 780 bars, of 1 instrument(s); event 4" in p.stdout
    assert "S0001: 2 day(s), 2024-01-09 to 2024-01-10" in p.stdout
    p = run("status")
    assert "event 4 removed bars from 2024-01-09" in p.stdout.replace("\n", " "), p.stdout
    p = run("update")
    assert "lost their results after the last day of bars left" in p.stdout, p.stdout
    assert "removed 2 day(s) of 1 instrument(s): S0001 2024-01-09..2024-01-10" in run("log").stdout
    p = run("remove", "S0001", "--from", "2024-01-09")
    assert p.returncode == 1 and "nothing to remove" in p.stderr, p.stderr
    # the same command again once done (after a kill past its commit, say): where they went
    assert "taken out before? `incbt log --kind remove`" in " ".join(p.stderr.split())
    p = run("remove", "S0001", "--from", "2024-01-09", "--to", "2024-01-02")
    assert p.returncode == 2 and "is after --to" in p.stderr, p.stderr
    assert run("gc").returncode == 0 and run("verify", "--bars").returncode == 0
    # a remove that cuts a pair and makes another compute (a day of S0000 in the middle):
    # the work done is said beside the cut (QA 2026-12-06: only the cut was)
    assert run("remove", "S0000", "--from", "2024-01-05", "--to", "2024-01-05").returncode == 0
    assert run("remove", "S0001", "--from", "2024-01-08").returncode == 0
    p = run("update")
    assert "1 (run, instrument) pair(s) lost their results" in p.stdout, p.stdout
    assert re.search(r"1 run\(s\): computed 1 segment\(s\) in 1 task\(s\), [\d,]+ bar-steps",
                     p.stdout), p.stdout


def test_removing_a_whole_instrument_again_says_when_it_was_taken_out(data, tmp_path):
    """Found by QA 2026-12-08: `incbt remove S0002` killed past its commit, then run again,
    said "the store holds no bars of 'S0002'" and told to list the instruments the store
    holds, as for a typo; the ranged form says "taken out before?". It names the event."""
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "d"))
    seq = s.remove("S0002").seq
    with pytest.raises(incbt.NotFoundError) as e:
        s.remove("S0002")
    said = " ".join(str(e.value).split())
    assert f"S0002 was taken out whole by event {seq}" in said, said
    assert "`incbt log --kind remove`" in said, said
    with pytest.raises(incbt.NotFoundError) as e:  # a typo: the ranged form's hint too
        s.remove(["S0001", "S0009"])
    said = " ".join(str(e.value).split())
    assert "'S0009'" in said and "taken out whole" not in said, said
    assert "taken out before? `incbt log --kind remove`" in said, said


# -- kill -9 at any point: before or after, and finished by running it again ----------

CHILD = (
    HOOKS
    + r"""
import sys
import incbt
import incbt.bars.ingest as ing

store, point = sys.argv[1], sys.argv[2]
kill_at(point, {"after-pending": ("after", 1), "inside-commit": ("inside", 2),
                "after-commit": ("after", 2)}, "")
real = ing.write_file
def write_file(table, groups, path):
    size = real(table, groups, path)
    if point == "after-first-file":
        die()
    return size
ing.write_file = write_file
incbt.open(store).remove(["S0000", "S0001"], start="2024-01-04", end="2024-01-08")
"""
)


@pytest.mark.parametrize(
    "point", ["after-pending", "after-first-file", "inside-commit", "after-commit"]
)
def test_a_kill_leaves_the_store_before_or_after_and_the_command_finishes(
    data, tmp_path, point
):
    tpl = incbt.init(str(tmp_path / "tpl"))
    tpl.ingest(str(data / "d"))
    before = norm(tpl.sql(ALL_BARS))
    close_env(os.path.join(tpl.path, "catalog"))
    ref = incbt.open(copy_store(tpl.path, str(tmp_path / "ref")))
    ref.remove(["S0000", "S0001"], start="2024-01-04", end="2024-01-08")
    after = norm(ref.sql(ALL_BARS))
    path = copy_store(tpl.path, str(tmp_path / "s"))
    p = subprocess.run([sys.executable, "-c", CHILD, path, point], capture_output=True, text=True)
    assert p.returncode == -9, p.stderr
    s = incbt.open(path)
    now = norm(s.sql(ALL_BARS))
    assert same_bars(now, after if point == "after-commit" else before), point
    if point != "after-commit":
        s.remove(["S0000", "S0001"], start="2024-01-04", end="2024-01-08")
    assert same_bars(norm(s.sql(ALL_BARS)), after)
    assert s.verify_bars().ok
    assert set(tree_state(os.path.join(path, "bars"))) == set(
        tree_state(os.path.join(ref.path, "bars"))
    )


def test_a_failure_recorded_on_an_instrument_removed_whole_goes_with_it(data, tmp_path):
    """A fresh store has no failure of an instrument it never held: the `failed` row of
    a pair whose instrument was removed whole goes at the next update."""
    (tmp_path / "st.py").write_text(
        "import incbt\n"
        "@incbt.strategy(params={'n': incbt.Param(int, default=5, min=1)}, state=('k',))\n"
        "def picky(p, s, o, h, l, c, v, i):\n"
        "    if c[i] > 20.0:  # S0001's prices, not the others'\n"
        "        raise ValueError('too dear')\n"
        "    return 1\n"
    )
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "d"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.backtest("picky", {"n": 5}, strategies_file=str(tmp_path / "st.py"))
    assert s.sql("SELECT instrument FROM failed")["instrument"].to_pylist() == ["S0001"]
    s.remove("S0001")
    s.update()
    assert s.sql("SELECT count(*) AS n FROM failed")["n"][0].as_py() == 0
    assert s.verify().ok and not s.status().stale


def test_a_run_over_a_named_list_keeps_an_instrument_removed_whole(data, tmp_path):
    """Its sweep resumes and grows, and the same backtest runs again (QA 2026-12-06:
    "unknown instrument"); the instrument counts in its capital, with no rows."""
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "d"))
    named = ["S0001", "S0002"]
    s.sweep("sma_cross", {"fast": [3, 7], "slow": [20]}, instruments=named, name="nm")
    run = s.backtest("breakout", {"lookback": 50}, instruments=named)
    s.remove("S0001")
    s.update()
    again = s.backtest("breakout", {"lookback": 50}, instruments=named)
    assert again.run_id == run.run_id and again.report.bars_processed == 0
    grown = s.sweep("sma_cross", {"fast": [3, 7, 9], "slow": [20]}, instruments=named,
                    name="nm", resume=True)
    assert len(grown.run_ids) == 3
    rows = s.sql("SELECT DISTINCT instrument FROM daily")["instrument"].to_pylist()
    assert rows == ["S0002"] and s.verify().ok and not s.status().stale


def test_the_remove_event_is_a_kind_of_the_log(data, tmp_path):
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "d"))
    s.remove("S0001", start="2024-01-10")
    log = s.log(kind="remove")  # QA 2026-12-06: "no event kind 'remove'"
    assert log.num_rows == 1
    assert "removed 1 day(s) of 1 instrument(s): S0001 2024-01-10..2024-01-10" in str(
        log.column("message")[0]
    )
    with pytest.raises(incbt.UsageError, match="--from \\(start=\\) 'soon' is not a date"):
        s.remove("S0001", start="soon")


def test_an_ingest_writes_again_a_damaged_file_of_the_same_content(data, tmp_path):
    """QA 2026-12-06: a bars file cut short outside incbt, its instrument removed and
    ingested again from the original data: the ingest took the damaged file, whose
    name its content gives, as it was (exit 0), and verify --bars then failed."""
    import glob

    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(data / "d"))
    (path,) = glob.glob(os.path.join(s.path, "bars", "S0001", "*.parquet"))
    with open(path, "r+b") as f:
        f.truncate(1000)
    assert not s.verify_bars().ok
    s.remove("S0001")
    s.ingest(str(data / "d"))
    assert s.verify_bars().ok
    runs(s)
    assert s.verify().ok


def test_an_instrument_named_with_no_day_in_the_range_stops_the_remove(tmp_path):
    """QA 2026-12-07: `remove S0006 S0000 --from D --to D` removed S0000's day and said
    nothing of S0006, which held none there (a typo among several names passed over)."""
    generate(str(tmp_path / "d"), instruments=2, days=3, start="2024-01-01", seed=1)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    s.remove(["S0001"], start="2024-01-02", end="2024-01-02")  # S0001: none that day now
    before = tree_state(s.path)
    with pytest.raises(incbt.NotFoundError,
                       match=r"no bars of S0001 from 2024-01-02 to 2024-01-02: nothing was "
                             r"removed \(of the others either\)"):  # fmt: skip
        s.remove(["S0000", "S0001"], start="2024-01-02", end="2024-01-02")
    assert tree_state(s.path) == before
    assert s.remove(["S0000"], start="2024-01-02", end="2024-01-02").days_removed == 1
