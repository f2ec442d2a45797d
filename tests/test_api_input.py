"""Wrong input is refused with one incbt error naming the value and the fix: paths the
user gives (-o, generate's folder) are not blamed on the store, numeric settings are
finite and in range, grid values are checked as backtest checks parameters, and the
Store's methods refuse wrong argument types at their entry."""

from __future__ import annotations

import math
import os
import subprocess

import pytest
from cli_process import run_incbt
from test_cli import run

import incbt
import incbt.errors as E
from incbt import settings as settings_mod
from incbt.bars.generate import generate


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-input")
    generate(str(root / "d"), instruments=2, days=3, start="2024-01-01", seed=3)
    s = incbt.init(str(root / "s"))
    s.ingest(str(root / "d"))
    s.sweep("sma_cross", {"fast": [5], "slow": [20]}, name="g1")
    return s


# -- 1. paths the user gives -------------------------------------------------------


def _said(p) -> str:
    assert "Traceback" not in p.stderr, p.stderr
    return p.stderr


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_query_out_into_a_missing_folder_says_so(filled, tmp_path, fmt):
    out = tmp_path / "no" / "such" / f"x.{fmt}"
    p = run("query", "SELECT 1 AS a", "--output", fmt, "-o", str(out),
            store=filled.path, check=False)
    err = _said(p)
    assert p.returncode == 1, err
    assert f"cannot write {out}" in err and "create the folder first" in err, err
    assert "catalog" not in err and "backup" not in err, err


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_query_out_into_a_folder_says_give_a_file(filled, tmp_path, fmt):
    p = run("query", "SELECT 1 AS a", "--output", fmt, "-o", str(tmp_path),
            store=filled.path, check=False)
    err = _said(p)
    assert p.returncode == 1, err
    assert f"cannot write {tmp_path}: it is a folder" in err and "Fix: give" in err, err
    assert "backup" not in err, err


def test_other_commands_writing_outside_the_store(filled, tmp_path):
    missing = tmp_path / "nope" / "x.csv"
    for args in (["settings", "-o", str(missing)], ["log", "-o", str(missing)]):
        p = run(*args, store=filled.path, check=False)
        err = _said(p)
        assert p.returncode == 1 and "create the folder first" in err, (args, err)
        assert "backup" not in err, (args, err)
    p = run("generate", str(tmp_path / "file" / "sub"), store=filled.path, check=False)
    assert p.returncode == 0, p.stderr  # generate makes the folders it needs
    (tmp_path / "a-file").write_text("x")
    p = run("generate", str(tmp_path / "a-file" / "sub"), store=filled.path, check=False)
    err = _said(p)
    assert p.returncode == 1 and "is a file, not a folder" in err, err
    p = run("report", "g1", "-o", "", store=filled.path, check=False)
    err = _said(p)
    assert p.returncode == 2 and "give the HTML file to write" in err, err


def test_a_missing_file_inside_a_store_is_still_the_stores(filled):
    gone = os.path.join(filled.path, "bars", "X", "2024-01-abc.parquet")
    mapped = E.map_dependency_error(FileNotFoundError(2, "No such file", gone), "reading")
    assert isinstance(mapped, E.StoreError) and "restore the store from a backup" in str(mapped)
    outside = E.map_dependency_error(
        FileNotFoundError(2, "No such file or directory", "/nonexistent/x.csv"), "incbt")
    assert isinstance(outside, E.UserError) and "create the folder first" in str(outside)
    relative = E.map_dependency_error(
        FileNotFoundError(2, "No such file or directory", "no/such/x.csv"), "incbt")
    assert isinstance(relative, E.UserError) and "create the folder first" in str(relative)


# -- 2. numeric settings -----------------------------------------------------------


@pytest.mark.parametrize("name", [s.name for s in settings_mod.SETTINGS
                                  if s.type in (int, float)])
@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "1e400", "99999999999999999999", "x",
                                 "1_0"])  # 1_0: Python reads 10, `-p` refuses it
def test_numeric_settings_are_finite_and_in_range(name, raw):
    with pytest.raises(incbt.UsageError, match=rf"setting {name}=.*Fix: give a"):
        settings_mod.parse(name, raw)


@pytest.mark.parametrize(("name", "raw"), [
    ("map_size_mb", math.nan), ("map_size_mb", 2**21), ("threads", 5.5), ("threads", True),
    ("row_group_rows", "5.0"), ("lock_timeout", -1), ("progress_seconds", -1),
])
def test_numeric_settings_refuse_python_values_too(name, raw):
    with pytest.raises(incbt.UsageError, match=rf"setting {name}="):
        settings_mod.parse(name, raw)


def test_numeric_settings_in_range_are_kept():
    assert settings_mod.parse("map_size_mb", "0.25") == 0.25
    assert settings_mod.parse("progress_seconds", "1e-9") == 1e-9
    assert settings_mod.parse("threads", " 3 ") == 3
    assert settings_mod.parse("lock_timeout", 5) == 5.0
    assert settings_mod.parse("lock_timeout", 0) == 0.0  # fail at once (QA 2026-12-05)
    assert settings_mod.parse("map_size_mb", 1 << 20) == float(1 << 20)


@pytest.mark.parametrize(("var", "value", "args"), [
    ("INCBT_MAP_SIZE_MB", "nan", ["status"]),
    ("INCBT_MAP_SIZE_MB", "1e400", ["status"]),
    ("INCBT_MAP_SIZE_MB", "99999999999", ["status"]),
    ("INCBT_LOCK_TIMEOUT", "nan", ["status"]),
    ("INCBT_PROGRESS_SECONDS", "nan", ["status"]),
    ("INCBT_INGEST_CHUNK_MB", "nan", ["ingest", "--dry-run", "x.csv"]),
])
def test_a_bad_setting_variable_exits_2_naming_it(filled, var, value, args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCBT_")}
    env |= {"INCBT_STORE": filled.path, var: value}  # run() passes no INCBT_ variable
    p = run_incbt([*args], env=env)
    err = _said(p)
    assert p.returncode == 2, err
    assert f"environment variable {var}" in err and repr(value) in err and "Fix:" in err, err
    assert "backup" not in err, err


# -- 3. grid values given as lists -------------------------------------------------


@pytest.mark.parametrize(("values", "match"), [
    ([5.5, 7.9], "parameter 'fast' = 5.5 is not an integer"),
    (["a"], "parameter 'fast' = 'a' is not an int"),
    ([[1]], "parameter 'fast' = \\[1\\] has type list"),
    ([math.nan], "parameter 'fast' = nan is not finite"),
    ([2**60], "parameter 'fast' = 1152921504606846976 is too large"),
])
def test_grid_values_are_checked_as_backtest_checks_them(filled, values, match):
    with pytest.raises(incbt.StrategyError, match=match):
        filled.sweep("sma_cross", {"fast": values, "slow": [20]}, dry_run=True)
    with pytest.raises(incbt.StrategyError):  # and backtest says the same of the value
        filled.backtest("sma_cross", {"fast": values[0], "slow": 20}, dry_run=True)


def test_grid_values_of_the_right_type_still_run(filled):
    res = filled.sweep("sma_cross", {"fast": [5, "6", 7.0], "slow": [20]}, dry_run=True)
    assert len(res.run_ids) == 3
    res = filled.sweep("sma_cross", {"fast": [0, 5], "slow": [20]}, dry_run=True)
    assert len(res.run_ids) == 1 and "out of range" in res.skipped[0]  # a rejected point
    with pytest.raises(incbt.UsageError, match="give at least one value"):
        filled.sweep("sma_cross", {"fast": [], "slow": [20]}, dry_run=True)


# -- 4. argument types at the Store's methods --------------------------------------


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda s: s.backtest("sma_cross", "fast=5"), incbt.UsageError, "params: give a dict"),
    (lambda s: s.backtest("sma_cross", ["fast=5"]), incbt.UsageError, "params: give a dict"),
    (lambda s: s.backtest("sma_cross", 5), incbt.UsageError, "params: give a dict"),
    (lambda s: s.sweep("sma_cross", "fast=1,2"), incbt.UsageError, "grid: give a dict"),
    (lambda s: s.sweep("sma_cross", {"fast": [5]}, workers="2", dry_run=True),
     incbt.UsageError, "workers: give a whole number, not '2'"),
    (lambda s: s.sweep("sma_cross", {"fast": [5]}, random="2", dry_run=True),
     incbt.UsageError, "random .*: give a whole number, not '2'"),
    (lambda s: s.sweep("sma_cross", {"fast": [5]}, name=5, dry_run=True),
     incbt.UsageError, "name: give a string, not 5"),
    (lambda s: s.sweep("sma_cross", {"fast": [5]}, address=5, dry_run=True),
     incbt.UsageError, "address: give a string, not 5"),
    (lambda s: s.sql(5), incbt.UsageError, "query: give the SQL as a string, not 5"),
    (lambda s: s.sql("SELECT 1", as_of="abc"), incbt.UsageError,
     "as_of .*: give a whole number, not 'abc'"),
    (lambda s: s.sql("SELECT $a", params=[1]), incbt.UsageError, "params: give a dict"),
    (lambda s: s.session(as_of="abc"), incbt.UsageError, "as_of .*: give a whole number"),
    (lambda s: s.gc(before="x"), incbt.UsageError, "before .*: give a whole number, not 'x'"),
    (lambda s: s.gc(keep_days="x"), incbt.UsageError, "keep_days: give a number, not 'x'"),
    (lambda s: s.ingest(None), incbt.UsageError, "paths: give a file, folder or glob"),
    (lambda s: s.ingest(5), incbt.UsageError, "paths: give a file, folder or glob"),
    (lambda s: s.ingest([5]), incbt.UsageError, "paths: .*not 5"),
    (lambda s: s.ingest("x.csv", columns="ts"), incbt.UsageError, "columns: give a dict"),
    (lambda s: s.ingest("x.csv", tz=""), incbt.UsageError,
     r"--tz '' \(tz= in Python\): give a time zone's name"),
    (lambda s: s.update(None, tz=" "), incbt.UsageError,
     r"--tz ' ' \(tz= in Python\): give a time zone's name"),
    (lambda s: s.update(5), incbt.UsageError, "paths: give a file, folder or glob"),
    (lambda s: s.log(kind="nope"), incbt.NotFoundError, "no event kind 'nope'; the kinds are"),
    (lambda s: s.log(limit=-1), incbt.UsageError, "limit .*at least 0, not -1"),
    (lambda s: s.report("g1", 5), incbt.UsageError, "give the HTML file to write"),
    (lambda s: s.report("g1", ""), incbt.UsageError, "give the HTML file to write"),
    (lambda s: s.bars(5), incbt.UsageError, "instrument: give an instrument's name"),
    # found by QA 2026-12-05: a StrategyError, or taken silently
    (lambda s: s.sweep(5, {"fast": [5]}, dry_run=True), incbt.UsageError,
     "strategy: give a strategy's name or a strategy made with @incbt.strategy, not 5"),
    (lambda s: s.backtest(5, dry_run=True), incbt.UsageError, "strategy: give a strategy's"),
    (lambda s: s.sweep("sma_cross", {"fast": [5]}, resume="yes", dry_run=True),
     incbt.UsageError, "resume: give True or False, not 'yes'"),
    (lambda s: s.sweep("sma_cross", {"fast": [5]}, fee_bps="1", dry_run=True),
     incbt.UsageError, "fee_bps: give a number, not '1'"),
    (lambda s: s.backtest("sma_cross", notional="1e5", dry_run=True), incbt.UsageError,
     "notional: give a number, not '1e5'"),
    (lambda s: s.backtest("sma_cross", dry_run="no"), incbt.UsageError,
     "dry_run: give True or False, not 'no'"),
])
def test_wrong_argument_types_are_usage_errors(filled, call, error, match):
    with pytest.raises(error, match=match):
        call(filled)


def test_right_argument_types_still_work(filled, tmp_path):
    import pathlib

    assert filled.sql("SELECT $a AS a", params={"a": 1}, as_of=2).num_rows == 1
    assert filled.log(kind="fork").num_rows == 0  # a kind incbt writes (a fork's commit)
    assert filled.log(kind=["init", "ingest"], limit=0).num_rows == 2
    assert filled.ingest(pathlib.Path(filled.path).parent / "d", dry_run=True) is not None
    assert filled.gc(keep_days=1, dry_run=True) is not None
    runs = filled.backtest("sma_cross", [{"fast": 5, "slow": 20}, {}], dry_run=True)
    assert len(runs) == 2


# -- found by QA 2026-12-06 ----------------------------------------------------------


def test_an_int_past_a_floats_range_is_said_too_large(filled, tmp_path):
    with pytest.raises(E.StrategyError, match=r"parameter 'fast' = 1000.*\(401 characters\) "
                       r"is too large; valid range \[1, inf\]"):
        filled.backtest("sma_cross", {"fast": 10**400, "slow": 60})
    p = run("--store", filled.path, "backtest", "sma_cross", "-p", "fast=1" + "0" * 400,
            check=False)
    assert p.returncode == 1 and "is too large" in _said(p), p.stderr


def test_a_store_is_given_by_its_path(filled):
    with pytest.raises(E.UsageError, match="by its path .* not int 123"):
        incbt.open(123)
    with pytest.raises(E.UsageError, match="is a store already: use it as it is"):
        incbt.open(filled)
    with pytest.raises(E.UsageError, match="not float"):
        incbt.init(1.5)
    assert incbt.open(filled.path.encode()).path == filled.path


def test_a_state_slot_starts_at_a_number():
    def step(p, s, o, h, l, c, v, i):  # noqa: E741
        return 0

    with pytest.raises(E.StrategyError, match="state slot 'a' starts at 'x'; give a finite"):
        incbt.strategy(state={"a": "x"})(step)
    with pytest.raises(E.StrategyError, match="state slot 'a' starts at"):
        incbt.strategy(state={"a": 10**400})(step)


def test_a_strategy_object_and_another_strategies_file_are_refused(filled, tmp_path):
    from incbt.engine import get_strategy

    f = tmp_path / "other.py"
    f.write_text("x = 1\n")
    with pytest.raises(E.UsageError, match="is an object made from incbt, and strategies_file"):
        filled.backtest(get_strategy("sma_cross"), {"fast": 5, "slow": 20},
                        strategies_file=str(f))


def test_a_pivot_names_its_axes_by_the_parameters(filled):
    t = filled.sweeps()["g1"].pivot("fast", "slow")
    assert (t.index.name, t.columns.name) == ("slow", "fast")


@pytest.mark.parametrize("module", ["incbt", "incbt._entry"])
def test_python_dash_m_runs_the_command(module):
    import sys

    p = subprocess.run([sys.executable, "-m", module, "strategies"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and "sma_cross" in p.stdout, p.stderr


@pytest.mark.parametrize("call", [
    lambda s: s.ingest(s.path, join_days="false"),
    lambda s: s.ingest(s.path, dry_run="false"),
    lambda s: s.update(dry_run="no"),
    lambda s: s.update(s.path, join_days=1),
])
def test_yes_no_arguments_of_ingest_and_update_are_true_or_false(filled, call):
    """QA 2026-12-06: join_days="false" merged, dry_run="false" wrote nothing."""
    with pytest.raises(E.UsageError, match="give True or False"):
        call(filled)


def test_python_dash_m_records_the_command_line(tmp_path):
    """QA 2026-12-06: events written by `python -m incbt` said "python: incbt.init"."""
    import sys

    store = str(tmp_path / "s")
    p = subprocess.run([sys.executable, "-m", "incbt", "--store", store, "init"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    cmd = incbt.open(store).sql("SELECT command FROM events")["command"].to_pylist()
    assert cmd == [f"incbt --store {store} init"]


def test_as_of_names_an_event_of_the_log(filled):
    with pytest.raises(E.UsageError, match=r"--as-of 0 \(as_of=0 in Python\): events are "
                       r"numbered from 1 \(1\.\."):
        filled.sql("SELECT count(*) FROM bars", as_of=0)
    with pytest.raises(E.QueryError, match=r"--as-of 999 \(as_of=999 in Python\): no such "
                       r"event; the log has events 1.."):
        filled.sql("SELECT count(*) FROM bars", as_of=999)
    assert filled.sql("SELECT count(*) AS n FROM bars", as_of=2)["n"][0].as_py() > 0


def test_a_gc_with_nothing_kept_says_time_travel_reaches_every_event(filled):
    assert "time travel reaches every event" in repr(filled.gc(dry_run=True))


def test_a_pivot_names_a_null_column_value_null():
    import pyarrow as pa

    from incbt.render import pivot_table

    t = pivot_table(pa.table({"a": [1, 1], "b": [None, 2], "v": [3.0, 4.0]}))
    assert t.column_names == ["a", "b=2", "b=NULL"]


def test_a_pivot_s_columns_are_in_order_and_its_rows_as_the_query_gave_them():
    """QA 2026-12-06: columns came in the order they first appeared (fast=10 before
    fast=5); the rows keep the query's ORDER BY."""
    import pyarrow as pa

    from incbt.render import pivot_table

    t = pivot_table(pa.table({"slow": [60, 60, 20, 20], "fast": [10, 5, 10, 5],
                              "v": [1.0, 2.0, 3.0, 4.0]}))
    assert t.column_names == ["slow", "fast=5", "fast=10"]
    assert t.to_pydict() == {"slow": [60, 20], "fast=5": [2.0, 4.0], "fast=10": [1.0, 3.0]}
    mixed = pivot_table(pa.table({"a": [1, 1], "b": ["x", "y"], "v": [1, 2]}))
    assert mixed.column_names == ["a", "b=x", "b=y"]
    # columns of one name are kept apart by position
    same = pivot_table(pa.table([[1, 2], [3, 3], [5.0, 6.0]], names=["k", "k", "v"]))
    assert same.to_pydict() == {"k": [1, 2], "k=3": [5.0, 6.0]}


def test_columns_of_one_name_are_shown_apart_or_refused_where_a_format_cannot(filled,
                                                                             tmp_path):
    """QA 2026-12-06: `SELECT m.fees, d.fees, d.date`: the table shifted the row under
    the headers (the date under the second `fees`), JSON dropped one, and Parquet wrote
    a file Arrow then failed to read by name."""
    def part(x: float, y: float) -> str:
        return (f"(SELECT {x} AS v, DATE '2024-01-02' AS d UNION ALL "
                f"SELECT {y}, DATE '2024-01-03')")

    q = f"SELECT a.v, b.v, a.d FROM {part(1.5, 3.5)} a JOIN {part(2.5, 4.5)} b USING (d) "
    q += "ORDER BY a.d"
    shown = run("query", q, store=filled.path).stdout
    rows = [r.strip("│ ").split("│") for r in shown.splitlines() if r.startswith("│")]
    assert [[c.strip() for c in r] for r in rows] == [["1.5", "2.5", "2024-01-02"],
                                                       ["3.5", "4.5", "2024-01-03"]]
    csv = run("query", q, "--output", "csv", store=filled.path).stdout
    assert csv.splitlines()[:2] == ['"v","v","d"', "1.5,2.5,2024-01-02"]
    for how in (["--output", "json"], ["-o", str(tmp_path / "x.parquet")]):
        p = run("query", q, *how, store=filled.path, check=False)
        assert p.returncode == 1 and "2 columns named 'v'" in p.stderr and " AS " in p.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_a_row_too_wide_for_the_screen_is_shown_a_column_a_line(filled):
    """QA 2026-12-06: 300 columns printed only the table's borders (each column shrunk
    to nothing); a row too wide is shown as (column, value) lines, 20 rows at most."""
    cols = ", ".join(f"{i} AS column_{i}" for i in range(300))
    out = run("query", f"SELECT {cols} FROM bars LIMIT 25", store=filled.path).stdout
    assert "row 1 of 25" in out and "│ column_299 │ 299" in out
    assert "row 20 of 25" in out and "row 21 of 25" not in out
    # rows side by side, as many as the width takes (QA 2026-12-07: a table each, 20
    # tables of 300 lines); the pipe's 200 columns take 13, then the other 7
    lines = [x.split("│")[2:-1] for x in out.splitlines() if x.startswith("│ column_299 ")]
    assert [[c.strip() for c in x] for x in lines] == [["299"] * 13, ["299"] * 7]
    assert "... 5 more rows (use --output csv for all; --output csv for a row a line)" in out
    narrow = run("query", "SELECT 1 AS a, 2 AS b", store=filled.path).stdout
    assert "row 1" not in narrow and "│ 1 │ 2 │" in narrow


def test_a_malformed_store_setting_variable_is_ignored_on_an_existing_store(filled,
                                                                            tmp_path):
    """QA 2026-12-06: INCBT_SNAPSHOT_KEEP_DAYS=abc stopped every command on a store whose
    value is fixed (exit 2), where README says such variables are ignored; a new store
    still refuses it."""
    env = {**os.environ, "INCBT_SNAPSHOT_KEEP_DAYS": "abc"}
    p = run_incbt(["--store", filled.path, "status"], env=env)
    assert p.returncode == 0 and "INCBT_SNAPSHOT_KEEP_DAYS=abc is ignored" in p.stderr, p.stderr
    p = run_incbt(["--store", str(tmp_path / "new"), "init"], env=env)
    assert p.returncode == 2 and "INCBT_SNAPSHOT_KEEP_DAYS" in p.stderr, p.stderr


def test_a_misspelled_variable_is_said_with_the_closest_one(filled):
    """QA 2026-12-06: INCBT_* variables incbt does not read were ignored without a word."""
    env = {**os.environ, "INCBT_LOCK_TIMOUT": "3"}
    p = run_incbt(["--store", filled.path, "status"], env=env)
    assert p.returncode == 0 and "INCBT_LOCK_TIMOUT is not a variable incbt reads; did you " \
        "mean INCBT_LOCK_TIMEOUT?" in p.stderr, p.stderr


def test_instruments_as_a_notebook_holds_them(filled):
    """QA 2026-12-06: a pandas Series of names raised pandas' "truth value is
    ambiguous", an Arrow column "give strings, not <pyarrow.StringScalar ...>"."""
    col = filled.sql("SELECT DISTINCT instrument FROM bars ORDER BY 1")["instrument"]
    want = filled.backtest("sma_cross", {"fast": 4}, instruments=["S0000", "S0001"],
                           dry_run=True).run_id
    for given in (col, col.combine_chunks(), col.to_pandas(), col.to_numpy(), tuple(col)):
        assert filled.backtest("sma_cross", {"fast": 4}, instruments=given,
                               dry_run=True).run_id == want
        res = filled.sweep("sma_cross", {"fast": [4]}, instruments=given, dry_run=True)
        assert res.run_ids == [want]
    with pytest.raises(incbt.UsageError, match="universe is empty: give the instruments"):
        filled.backtest("sma_cross", {"fast": 4}, instruments=[], dry_run=True)


def test_a_fee_past_the_notional_filled_is_refused(filled):
    """QA 2026-12-06: fee_bps=1e300 was taken, and its metrics overflowed (Sharpe -0)."""
    with pytest.raises(incbt.IncbtError, match=r"fee_bps.* out of range; valid range \[0.0, "
                                               r"10000.0\]"):
        filled.backtest("sma_cross", {"fast": 4}, fee_bps=1e300, dry_run=True)
    assert filled.backtest("sma_cross", {"fast": 4}, fee_bps=10000, dry_run=True).run_id


def test_an_int_parameter_past_2_53_is_refused_not_rounded(filled):
    """QA 2026-12-06: 2**53 + 1 was taken and stored as 2**53 (the bound was checked on
    the value as a float)."""
    assert filled.backtest("sma_cross", {"fast": 1, "slow": 2**53}, dry_run=True).run_id
    with pytest.raises(incbt.IncbtError, match=r"is too large \(\|value\| must be <= 2\*\*53\)"):
        filled.backtest("sma_cross", {"fast": 1, "slow": 2**53 + 1}, dry_run=True)


def test_a_start_is_a_day_and_a_moment_in_a_zone_is_refused_whatever_came_before(filled):
    """Two datetimes of one instant in two zones are equal: a cache keyed by them gave
    the second the first one's day (QA 2026-12-06: the run depended on the calls before).
    A moment (a time of day or a zone) is refused; a whole day, in any form, is taken."""
    import datetime

    import numpy as np
    import pandas as pd

    ny = pd.Timestamp("2024-01-02 23:00", tz="America/New_York")
    utc = pd.Timestamp("2024-01-03 04:00", tz="UTC")  # the same instant
    for moment in (ny, utc, datetime.datetime(2024, 1, 2, 12), np.datetime64("2024-01-02T12")):
        with pytest.raises(E.UsageError, match="not a whole day|is a moment, not a day"):
            filled.backtest("sma_cross", {"fast": 5, "slow": 20}, start=moment, dry_run=True)
    days = {
        filled.backtest("sma_cross", {"fast": 5, "slow": 20}, start=d, dry_run=True).record.start
        for d in (
            "2024-01-03",
            datetime.date(2024, 1, 3),
            datetime.datetime(2024, 1, 3),
            pd.Timestamp("2024-01-03"),
            np.datetime64("2024-01-03"),
            utc.date(),
        )
    }
    assert days == {"2024-01-03"}


def test_a_progress_bar_counts_in_millions_past_ten_million():
    """QA 2026-12-06: the bar showed 438048000/730080000 where the plain lines say
    730.1 M; both counts in one unit."""
    from types import SimpleNamespace

    from incbt.render import CountColumn

    def shown(done, total):
        return str(CountColumn().render(SimpleNamespace(completed=done, total=total)))

    assert shown(438_048_000, 730_080_000) == "438.0 M/730.1 M"
    assert shown(5_048_000, 730_080_000) == "5.0 M/730.1 M"
    assert shown(7, 12_345) == "7/12,345" and shown(7, None) == "7/?"


def test_store_bars_takes_days_as_every_other_argument_does(filled):
    """QA 2026-12-06: store.bars refused np.datetime64 and NumPy day numbers, which
    backtest takes, and dropped a pandas Timestamp's time of day, which backtest
    refuses."""
    import datetime

    import numpy as np

    first = filled.bars("S0001").days[1]
    day = np.datetime64(int(first), "D")
    want = filled.bars("S0001", str(day)).close
    for v in (day, np.int64(first), int(first), datetime.date.fromisoformat(str(day))):
        assert np.array_equal(filled.bars("S0001", v).close, want), v
    with pytest.raises(incbt.UsageError, match="is a moment, not a day"):
        filled.bars("S0001", datetime.datetime.fromisoformat(f"{day}T15:00"))
    with pytest.raises(incbt.UsageError, match="start 2.5 is not a date"):
        filled.bars("S0001", 2.5)


def test_a_dry_run_s_run_says_why_it_has_no_rows(filled):
    """QA 2026-12-06: why_empty() was None for a dry run's Run, as for one with rows."""
    dry = filled.backtest("sma_cross", {"fast": 3, "slow": 33}, dry_run=True)
    assert dry.daily.num_rows == 0
    assert dry.why_empty().startswith("it is not registered: a dry run computes and stores")


def test_universe_with_instruments_all_and_a_removed_instrument(tmp_path):
    """QA 2026-12-07: instruments="all" with universe= ran the universe (the CLI refuses
    --all --universe); a universe naming an instrument `incbt remove` took whole was
    refused as unknown, where a list naming it is taken."""
    generate(str(tmp_path / "d"), instruments=3, days=3, start="2024-01-01", seed=1)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    q = "SELECT DISTINCT instrument FROM bars WHERE instrument < 'S0002'"
    with pytest.raises(E.UsageError, match="give one of --instruments, --all or --universe"):
        s.backtest("sma_cross", {"fast": 2, "slow": 5}, instruments="all", universe=q,
                   dry_run=True)  # fmt: skip
    s.remove(["S0002"])
    listed = s.backtest("sma_cross", {"fast": 2, "slow": 5}, instruments=["S0001", "S0002"],
                        dry_run=True)  # fmt: skip
    named = s.backtest("sma_cross", {"fast": 2, "slow": 5},
                       universe="SELECT 'S0001' AS instrument UNION SELECT 'S0002'",
                       dry_run=True)  # fmt: skip
    assert named.run_id == listed.run_id
