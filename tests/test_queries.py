"""Named queries: found by name, parameters bound (never pasted), listed with descriptions."""

from __future__ import annotations

import os

import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pytest
from cli_process import run_incbt
from conftest import fails_strategy, ingested
from hypothesis import given, settings
from hypothesis import strategies as st

import incbt
from incbt.bars.generate import generate
from incbt.queries import BUILTIN, find_query, list_queries
from incbt.query import run_sql
from incbt.results.metrics import METRICS


@pytest.fixture
def corrected(tmp_path):
    s = incbt.init(str(tmp_path / "s"))
    generate(str(tmp_path / "a"), instruments=2, days=3, start="2024-03-04", seed=1)
    generate(str(tmp_path / "f"), instruments=2, days=3, start="2024-03-04", seed=1,
             from_day="2024-03-05", to_day="2024-03-05", revise=["2024-03-05"])
    s.ingest(str(tmp_path / "a"))
    s.ingest(str(tmp_path / "f"))
    return s


def test_every_builtin_query_is_listed_with_a_description():
    names = {q["name"]: q for q in list_queries(None)}
    files = {p.stem for p in BUILTIN.glob("*.sql")}
    assert files and set(names) >= files
    assert all(names[n]["description"] for n in files)


def test_day_history_binds_its_parameter(corrected):
    sql = find_query("day_history", corrected.path)
    t = run_sql(corrected.session(only_for=sql), sql, {"day": "2024-03-05"})
    assert t.column("kind").to_pylist() == ["new", "corrected", "new", "corrected"]
    # a hostile value is a value, not SQL: it fails to cast to a date (a usage error)
    with pytest.raises(incbt.UsageError, match=r"uses \$day as a date"):
        run_sql(corrected.session(only_for=sql), sql, {"day": "x'; DROP TABLE bars; --"})


def test_coverage_and_corrections(corrected):
    for name, rows in (("coverage", 2), ("corrections", 2)):
        sql = find_query(name, corrected.path)
        assert run_sql(corrected.session(only_for=sql), sql).num_rows == rows


def test_user_queries_in_the_store_folder_win(corrected, tmp_path):
    qdir = tmp_path / "s" / "queries"
    qdir.mkdir()
    (qdir / "coverage.sql").write_text("-- Mine.\nSELECT 42 AS answer\n")
    assert find_query("coverage", corrected.path).startswith("-- Mine.")
    assert find_query("not a name; SELECT", corrected.path) is None


def test_a_query_file_not_utf8_or_a_folder_is_said_not_a_bug(corrected, tmp_path):
    """QA 2026-12-06: a query file in another encoding exited 3 ("a bug") without its
    name, and made --list fail; a folder named x.sql failed --list too."""
    from incbt.queries import list_queries

    qdir = tmp_path / "s" / "queries"
    qdir.mkdir()
    (qdir / "latin.sql").write_bytes(b"-- Caf\xe9.\nSELECT 1\n")
    (qdir / "dir.sql").mkdir()
    with pytest.raises(incbt.BadInputError, match=r"latin.sql: the query file is not UTF-8 "
                       r"text \(byte 0xe9 at offset 6\).*save it as UTF-8"):
        find_query("latin", corrected.path)
    listed = {q["name"]: q for q in list_queries(corrected.path)}
    assert "cannot be read" in listed["latin"]["description"]
    assert "dir" not in listed and "coverage" in listed


def test_sql_errors_name_the_query(corrected):
    with pytest.raises(incbt.QueryError, match="query broken failed"):
        run_sql(corrected.session(), "SELEC 1", name="broken")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("q")
    generate(str(tmp / "d"), instruments=3, days=45, start="2024-01-15", seed=71)
    s = incbt.init(str(tmp / "s"))
    s.ingest(str(tmp / "d"))
    s.sweep("sma_cross", {"fast": [5, 10], "slow": [40, 80]}, name="g")
    run = s.sql("SELECT run_id FROM sweeps WHERE sweep = 'g' ORDER BY point LIMIT 1")
    return s, run["run_id"][0].as_py()


def _named(s, name, **params):
    sql = find_query(name, s.path)
    return s.sql(sql, params=params or None)


def test_pnl_by_month_and_year_add_up(results):
    s, rid = results
    total = s.sql("SELECT total_pnl FROM metrics WHERE run_id = $r AND scope = 'portfolio'",
                  params={"r": rid})["total_pnl"][0].as_py()
    months = _named(s, "pnl_by_month", run=rid)
    assert months.num_rows == 3  # January to March 2024
    assert sum(months["pnl"].to_pylist()) == pytest.approx(total, rel=1e-9)
    years = _named(s, "pnl_by_year", run=rid)
    # summed in a fixed order, the engine's: a run of one year's pnl is its total_pnl, bit
    # for bit, and each month's the sum of its days' portfolio pnl in order (a GROUP BY
    # sum changed its last bits from one run of the query to the next, QA 2026-12-07)
    assert years["pnl"].to_pylist() == [total]
    equity = s.run(rid).equity
    want: dict[str, float] = {}
    for d, p in zip(equity["date"].to_pylist(), equity["pnl"].to_pylist(), strict=True):
        want[d.strftime("%Y-%m")] = want.get(d.strftime("%Y-%m"), 0.0) + p
    assert months["pnl"].to_pylist() == [want[m] for m in months["month"].to_pylist()]
    for name in ("pnl_by_month", "pnl_by_year"):
        assert all(_named(s, name, run=rid).equals(_named(s, name, run=rid)) for _ in range(3))
    assert months["days"].to_pylist() == [13, 21, 11]
    # on the portfolio's capital: notional x the run's instruments (3, --all)
    assert months["return_on_capital"].to_pylist() == pytest.approx(
        [p / (100_000 * 3) for p in months["pnl"].to_pylist()], rel=1e-12
    )


def test_worst_drawdown_is_the_metric(results):
    s, rid = results
    dd = _named(s, "worst_drawdowns", run=rid, n=3).to_pylist()
    metric = s.sql("SELECT max_drawdown FROM metrics WHERE run_id = $r AND scope = "
                   "'portfolio'", params={"r": rid})["max_drawdown"][0].as_py()
    assert dd[0]["drawdown"] == metric  # summed in the engine's order: its bits
    assert all(a["drawdown"] >= b["drawdown"] for a, b in zip(dd, dd[1:], strict=False))
    assert dd[0]["peak_day"] is None or dd[0]["peak_day"] <= dd[0]["trough"]


def test_contribution_and_grid(results):
    s, rid = results
    c = _named(s, "contribution", run=rid)
    assert c.num_rows == 3
    assert sum(c["share_of_total"].to_pylist()) == pytest.approx(1.0, rel=1e-9)
    g = _named(s, "grid", sweep="g")
    assert g.num_rows == 4
    assert sorted(zip(g["p_fast"].to_pylist(), g["p_slow"].to_pylist(), strict=True)) == [
        (5, 40), (5, 80), (10, 40), (10, 80)]


def test_runs_parameters_are_integers_where_every_value_and_declaration_is(tmp_path):
    """p_fast is 5, not 5.0 (the runs table held every parameter as a float, a sweep's
    grid as an integer); a float parameter stays a float column."""
    s = ingested(tmp_path)
    s.backtest("sma_cross", {"fast": 5, "slow": 40})
    s.backtest("bollinger", {"window": 20, "k": 2})
    t = s.sql("SELECT p_fast, p_slow, p_window, p_k FROM runs")
    assert [str(f.type) for f in t.schema] == ["int64", "int64", "int64", "double"]
    assert sorted(v for v in t["p_k"].to_pylist() if v is not None) == [2.0]


def test_stale_lists_what_an_update_would_do(results, tmp_path):
    s, _ = results
    assert _named(s, "stale").num_rows == 0
    generate(str(tmp_path / "n"), instruments=3, days=46, start="2024-01-15", seed=71,
             from_day="2024-03-18")
    s.ingest(str(tmp_path / "n"))
    t = _named(s, "stale")
    assert t.num_rows == 4 * 3 and set(t["reason"].to_pylist()) == {
        "1 new day(s) after 2024-03-15"}
    # the table's columns, all of them (QA 2026-12-07: replaced_by was left out)
    assert t.column_names == s.sql("SELECT * FROM stale LIMIT 0").column_names
    s.update()
    assert _named(s, "stale").num_rows == 0


def test_grid_pivot_takes_identifiers_not_values(results):
    from incbt.queries import fill_identifiers
    from incbt.render import pivot_table

    s, _ = results
    sql = find_query("grid_pivot", s.path)
    params = {"sweep": "g", "x": "fast", "y": "slow", "metric": "sharpe"}
    filled = fill_identifiers(sql, params, "grid_pivot")
    assert params == {"sweep": "g"} and "{{" not in filled
    wide = pivot_table(s.sql(filled, params=params))
    assert wide.column_names == ["slow", "fast=5", "fast=10"]
    assert wide["slow"].to_pylist() == [40.0, 80.0]
    grid = s.sql(find_query("grid", s.path), params={"sweep": "g"}).to_pylist()
    by = {(r["p_slow"], r["p_fast"]): r["sharpe"] for r in grid}
    assert wide["fast=10"].to_pylist() == [by[(40.0, 10.0)], by[(80.0, 10.0)]]
    for bad in ("fast; DROP TABLE runs", "p_fast)", "1x", ""):
        with pytest.raises(incbt.UsageError, match="plain name"):
            fill_identifiers(sql, {"sweep": "g", "x": bad, "y": "slow", "metric": "sharpe"},
                             "grid_pivot")
    with pytest.raises(incbt.UsageError, match="needs -p metric"):
        fill_identifiers(sql, {"sweep": "g", "x": "fast", "y": "slow"}, "grid_pivot")


def test_grid_pivot_keeps_a_point_whose_runs_all_failed(tmp_path):
    """QA 2026-12-07: its inner join with metrics dropped the row of a parameter value
    whose every run failed (no portfolio row), where `grid`, the Python pivot and the
    report keep the point with no value."""
    import warnings

    from incbt.queries import fill_identifiers
    from incbt.render import pivot_table

    s = ingested(tmp_path, instruments=2, days=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the failures are the point
        s.sweep("fails", {"n": [2, 3], "give_up": [0, 1]}, name="f",
                strategies_file=fails_strategy(tmp_path))
    params = {"sweep": "f", "x": "n", "y": "give_up", "metric": "total_pnl"}
    sql = fill_identifiers(find_query("grid_pivot", s.path), params, "grid_pivot")
    wide = pivot_table(s.sql(sql, params=params))
    assert wide["give_up"].to_pylist() == [0, 1]
    assert wide["n=2"][0].as_py() is not None and wide["n=2"][1].as_py() is None
    assert s.sweeps()["f"].pivot("n", "give_up", "total_pnl").shape[0] == 2


def test_coverage_counts_missing_weekdays_not_weekends(tmp_path):
    generate(str(tmp_path / "d"), instruments=2, days=10, start="2024-03-04", seed=3)
    s = incbt.init(str(tmp_path / "s"))
    files = sorted(os.listdir(tmp_path / "d"))
    # drop Wednesday 03-06 and Friday 03-08: two missing weekdays, the weekend is no gap
    s.ingest([str(tmp_path / "d" / f) for f in files
              if f not in ("bars-2024-03-06.csv", "bars-2024-03-08.csv")])
    t = s.sql(find_query("coverage", s.path))
    assert t["days"].to_pylist() == [8, 8]
    assert t["missing_weekdays"].to_pylist() == [2, 2]
    # as ingest says them: days no instrument has are holidays, not missing (QA 2026-12-06)
    assert t["missing_days"].to_pylist() == [0, 0]


def test_coverage_counts_missing_days_as_ingest_says_them(tmp_path):
    files = generate(str(tmp_path / "d"), instruments=3, days=6, start="2024-03-04", seed=3)
    t = pcsv.read_csv(files[2])  # S0001 lacks 03-06, which the two others have
    pcsv.write_csv(t.filter(pc.not_equal(t["instrument"], "S0001")), files[2])
    s = incbt.init(str(tmp_path / "s"))
    with pytest.warns(incbt.DataNoteWarning, match="S0001 2024-03-06"):
        said = s.ingest(str(tmp_path / "d")).missing_days
    t = s.sql(find_query("coverage", s.path))
    assert t["missing_days"].to_pylist() == [0, 1, 0] and said == [("S0001", "2024-03-06", 2)]


def test_coverage_counts_short_days_against_the_instruments_own_day(tmp_path):
    """Short: fewer than half the bars of the instrument's median day; a fixed 390
    missed every short day of a 24-hour market (QA 2026-12-06)."""
    import warnings

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    day = np.datetime64("2024-03-04T00:00", "ns").astype(np.int64)
    minute = 60_000_000_000
    ts = [int(day) + k * 86_400_000_000_000 + m * minute for k in range(4) for m in range(1440)]
    ts = ts[: 3 * 1440 + 600]  # the 4th day: 600 bars of 1440
    n = len(ts)
    t = pa.table({"instrument": ["BTC"] * n,
                  "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),
                  **{c: pa.array(np.full(n, 10.0)) for c in ("open", "high", "low", "close")},
                  "volume": pa.array(np.ones(n))})
    pq.write_table(t, str(tmp_path / "b.parquet"))
    s = incbt.init(str(tmp_path / "s"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.ingest(str(tmp_path / "b.parquet"))
    got = s.sql(find_query("coverage", s.path))
    assert got["short_days"].to_pylist() == [1] and got["bars"].to_pylist() == [n]


def test_an_unknown_table_gets_the_closest_name_and_the_list(corrected):
    with pytest.raises(incbt.QueryError, match=r"did you mean 'daily'\?.*bars, events") as exc:
        corrected.sql("SELECT count(*) FROM dailyy")
    assert "dailyy" in str(exc.value)
    with pytest.raises(incbt.QueryError) as exc:
        corrected.sql("SELECT count(*) FROM trades")
    assert "did you mean" not in str(exc.value) and "the store's tables are" in str(exc.value)
    # every listed table exists: a query naming it runs
    from incbt.query import TABLES

    for name in TABLES:
        corrected.sql(f"SELECT * FROM {name} LIMIT 0")


@pytest.mark.parametrize(
    "sql, fix",
    [
        ("SELECT 1 / 0", "x / NULLIF(y, 0)"),
        ("SELECT CAST('x' AS INT)", "TRY_CAST(x AS type)"),
        ("SELECT count(*) FROM bars WHERE ts > 'yesterday'", "TIMESTAMP '2024-01-05 09:30:00'"),
        ("SELECT nope FROM daily", "DESCRIBE <table> lists a table's columns"),
        ("SELECT sqrt(-1.0)", "guard it (CASE WHEN"),
        ("SELECT 1 UNION SELECT 1, 2", "check the SQL (DataFusion's dialect"),
    ],
)
def test_a_query_failing_on_its_own_terms_gets_a_fix(corrected, sql, fix):
    """QA 2026-12-07: a division by zero, a cast, an unknown column said DataFusion's
    words alone, without a fix."""
    with pytest.raises(incbt.QueryError) as exc:
        corrected.sql(sql)
    said = str(exc.value)
    assert ". Fix: " in said and fix in said, said
    assert said.count("Fix:") == 1, said


def test_a_named_query_says_which_parameters_it_needs():
    from incbt.errors import UsageError
    from incbt.queries import check_params, value_params

    sql = find_query("worst_drawdowns", None)
    assert value_params(sql) == {"run", "n"}
    with pytest.raises(UsageError, match=r"needs -p run=VALUE \(its parameters: run"):
        check_params(sql, {}, "worst_drawdowns")
    # a parameter documented with "(default: VALUE)" takes it when left out, as -p would
    given: dict[str, object] = {"run": "x"}
    check_params(sql, given, "worst_drawdowns")
    assert given == {"run": "x", "n": 5}
    given = {"run": "x", "n": 2}
    check_params(sql, given, "worst_drawdowns")
    assert given == {"run": "x", "n": 2}
    board: dict[str, object] = {}
    check_params(find_query("leaderboard", None), board, "leaderboard")
    assert board == {"strategy": "%"}
    with pytest.raises(UsageError, match=r"no parameter 'rnu'; its parameters: "):
        check_params(sql, {"run": "x", "n": 3, "rnu": 1}, "worst_drawdowns")
    check_params(sql, {"run": "x", "n": 3}, "worst_drawdowns")
    # $names in comments and string literals are not parameters
    assert value_params("-- $a\nSELECT '$b', 'it''s $c' AS x WHERE y = $d") == {"d"}
    assert value_params("SELECT $1, $2 + $x") == {"1", "2", "x"}  # positional ones too
    # every built-in query documents each parameter it binds
    for q in list_queries(None):
        text = find_query(q["name"], None)
        documented = {ln.split(":", 1)[1].split()[0] for ln in text.splitlines()
                      if ln.startswith("-- param:")}
        assert value_params(text) <= documented, q["name"]


def test_incbt_queries_naming_no_folder_is_said(corrected, tmp_path):
    """QA 2026-12-07: INCBT_QUERIES naming no folder (a typo) was left out without a word:
    its queries were "no query named ...", and --list showed the built-ins alone."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "mine.sql").write_text("-- Mine.\nSELECT 1 AS x\n")
    env = {**os.environ, "INCBT_QUERIES": str(mine)}
    p = run_incbt(["--store", corrected.path, "query", "mine", "--output", "csv"], env=env)
    assert p.returncode == 0 and p.stdout.splitlines() == ['"x"', "1"], p.stderr
    for where in (tmp_path / "mnie", mine / "mine.sql"):
        env = {**os.environ, "INCBT_QUERIES": str(where)}
        for args in (["query", "mine"], ["query", "--list"]):
            p = run_incbt(["--store", corrected.path, *args], env=env)
            assert p.returncode == 1, p.stdout
            assert p.stderr.startswith(f"error: INCBT_QUERIES={where}: "), p.stderr
            assert "unset INCBT_QUERIES" in p.stderr, p.stderr
    # SQL is no named query: it runs whatever the variable says
    p = run_incbt(["--store", corrected.path, "query", "SELECT 2 AS y", "--output", "csv"],
                  env=env)
    assert p.returncode == 0 and p.stdout.splitlines() == ['"y"', "2"], p.stderr


def test_cli_query_without_its_parameter_is_a_usage_error(corrected):

    p = run_incbt(["--store", corrected.path, "query", "day_history"])
    assert p.returncode == 2 and "needs -p day=VALUE" in p.stderr, p.stderr
    p = run_incbt(["--store", corrected.path, "query", "day_history", "-p", "day=2024-03-05"])
    assert p.returncode == 0 and "corrected" in p.stdout, p.stderr


def test_a_query_reads_the_bars_files_records_only_if_it_names_bars_or_files(results):
    """A record per instrument-month or more (30,000 at the seed's scale): a query of results
    or of the log does not read them; one of bars or files does, now or as of an event."""
    from unittest import mock

    from incbt.catalog import Catalog

    s, rid = results
    calls = []
    real_now, real_as_of = Catalog.current_files, Catalog.files_as_of
    real_spans = Catalog.current_spans

    def now(cat, txn):
        calls.append("now")
        return real_now(cat, txn)

    def spans(cat, txn):  # what bars needs of them, each decoded once per process
        calls.append("spans")
        return real_spans(cat, txn)

    def as_of(cat, txn, seq):
        calls.append("as_of")
        return real_as_of(cat, txn, seq)

    with mock.patch.object(Catalog, "current_files", now), \
            mock.patch.object(Catalog, "current_spans", spans), \
            mock.patch.object(Catalog, "files_as_of", as_of):  # fmt: skip
        for sql in ("SELECT * FROM metrics WHERE run_id = $r",
                    "SELECT count(*) FROM daily WHERE run_id = $r",
                    "SELECT * FROM runs r JOIN sweeps s USING (run_id) WHERE r.run_id = $r",
                    "SELECT count(*) FROM events WHERE $r = $r"):  # fmt: skip
            assert s.sql(sql, params={"r": rid}).num_rows >= 1
        assert calls == []
        assert s.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() >= 3 * 45 * 390
        assert s.sql("SELECT count(*) AS n FROM files")["n"][0].as_py() >= 3
        # the fixture's ingest (event 2; other tests of the module ingest more days)
        assert s.sql("SELECT count(*) AS n FROM bars", as_of=2)["n"][0].as_py() == 3 * 45 * 390
        assert calls == ["spans", "now", "as_of"]


def test_a_runs_metrics_read_from_the_catalog_equal_the_sql_rows(corrected, tmp_path):
    """``Run.metrics`` and ``Run.portfolio`` read one run's keys from the catalog (SQL
    builds every run's rows first): the same rows, in the same order, as the SQL; a
    dropped run has none, and a run not computed yet has no portfolio."""
    s = corrected
    runs = s.backtest("sma_cross", [{"fast": 2, "slow": 9}, {"fast": 3, "slow": 12}])
    s.backtest("breakout", {"lookback": 20}, instruments=["S0001"])
    sql = "SELECT * FROM metrics WHERE run_id = $r ORDER BY scope DESC, instrument"
    every = s.sql("SELECT run_id FROM runs")["run_id"].to_pylist()
    assert len(every) == 3
    for rid in every:
        run = s.run(rid)
        want = s.sql(sql, params={"r": rid})
        assert want.num_rows >= 2 and run.metrics.equals(want), rid
        assert run.metrics.column("scope")[0].as_py() == "portfolio"
        assert run.portfolio == {m: want.column(m)[0].as_py() for m in METRICS}
    s.drop([runs[0].run_id])
    gone = incbt.runs.Run(s, runs[0].record)
    assert s.sql(sql, params={"r": runs[0].run_id}).num_rows == 0
    # a held Run of a dropped run says so, as store.run does (it read as an empty run
    # that is up to date: QA 2026-12-06)
    for read in (lambda: gone.metrics, lambda: gone.portfolio, lambda: gone.daily,
                 lambda: gone.stale, gone.why_empty):
        with pytest.raises(incbt.NotFoundError, match="was dropped"):
            read()
    planned = s.backtest("sma_cross", {"fast": 4, "slow": 15}, dry_run=True)
    assert planned.metrics.num_rows == 0 and planned.portfolio == {}


def test_pnl_by_month_names_months_and_takes_a_run_prefix(results):
    """Months read 2024-01 (not a midnight timestamp); the CLI resolves `-p run=PREFIX`
    as every command does (a prefix matched no row: an empty table, silently)."""
    import json

    s, rid = results
    months = _named(s, "pnl_by_month", run=rid)
    assert months["month"].to_pylist() == ["2024-01", "2024-02", "2024-03"]
    p = run_incbt(["--store", s.path, "query", "pnl_by_month", "-p", f"run={rid[:10]}",
                   "--output", "json"])
    assert p.returncode == 0, p.stderr
    assert [json.loads(x)["pnl"] for x in p.stdout.splitlines()] == months["pnl"].to_pylist()
    p = run_incbt(["--store", s.path, "query", "pnl_by_month", "-p", "run=ZZ"])
    assert p.returncode == 1 and "no run 'ZZ'" in p.stderr  # as given, not lower-cased


def test_an_ambiguous_run_prefix_names_its_runs_and_a_dropped_one_gives_way():
    from incbt.catalog.runs import RunRecord, by_prefix
    from incbt.errors import NotFoundError, UsageError

    def rec(rid, fast, dropped=None):
        return RunRecord(rid, "sma_cross", "v", {"fast": fast, "slow": 50}, {}, "2024-01-01",
                         "all", dropped_seq=dropped)

    a, b, c = rec("ab12", 5), rec("ab34", 10), rec("ab56", 20, dropped=7)
    with pytest.raises(UsageError) as e:
        by_prefix([a, b, c], "ab")
    msg = str(e.value)
    assert "it starts 2 runs" in msg and "ab12 (sma_cross fast=5 slow=50)" in msg
    assert "ab34 (sma_cross fast=10 slow=50)" in msg and "ab56" not in msg
    assert by_prefix([a, c], "ab") is a  # the dropped run is not what the prefix meant
    assert by_prefix([a, c], "ab56") is c  # but it is found by its own id
    d = rec("ab78", 30)
    d.superseded_by = "ff00"  # replaced after a code change (QA, 2026-12-05): the same
    assert by_prefix([a, d], "ab") is a
    assert by_prefix([a, d], "ab7") is d
    with pytest.raises(NotFoundError):
        by_prefix([a, b], "ff")
    # pasted from --output csv (quoted) or JSON: the id inside (QA 2026-12-06)
    assert by_prefix([a, b], '"ab12"') is a and by_prefix([a, b], "'ab3'") is b


def test_a_runs_equity_curve_agrees_with_its_metrics_bit_for_bit(results):
    """Run.equity: the portfolio day by day; its last equity is total_pnl, its largest
    drawdown max_drawdown (the metrics' own bits), its days the days with bars, its
    pnl the SQL sum per day, its drawdown the named query's worst."""
    s, rid = results
    run = s.run(rid)
    e = run.equity
    m = run.portfolio
    assert e.num_rows == m["days"] and e.column_names == ["date", "pnl", "equity", "ret",
                                                          "drawdown"]
    assert e["equity"][-1].as_py() == m["total_pnl"]
    assert max(e["drawdown"].to_pylist()) == m["max_drawdown"]
    by_day = s.sql("SELECT date, sum(pnl) AS pnl FROM daily WHERE run_id = $r GROUP BY date "
                   "ORDER BY date", params={"r": rid})
    assert e["date"].to_pylist() == by_day["date"].to_pylist()
    assert e["pnl"].to_pylist() == pytest.approx(by_day["pnl"].to_pylist(), rel=1e-12)
    capital = 100000.0 * 3
    assert e["ret"].to_pylist() == [p / capital for p in e["pnl"].to_pylist()]
    worst = _named(s, "worst_drawdowns", run=rid, n=1)["drawdown"][0].as_py()
    assert max(e["drawdown"].to_pylist()) == pytest.approx(worst, rel=1e-9)


def test_json_get_reads_a_field_of_an_events_summary(corrected):
    """SQL's json_get(text, key): a field of events.summary as text (a string bare,
    anything else as JSON; NULL where the key is absent)."""
    import json

    t = corrected.sql(
        "SELECT seq, json_get(summary, 'days_new') AS n, json_get(summary, 'first_day') AS d, "
        "json_get(summary, 'sources') AS src, json_get(summary, 'nope') AS x FROM events "
        "WHERE kind = 'ingest' ORDER BY seq"
    ).to_pylist()
    assert [(r["n"], r["d"], r["x"]) for r in t] == [("6", "2024-03-04", None),
                                                     ("0", "2024-03-05", None)]
    assert [os.path.basename(p) for p in json.loads(t[0]["src"])] == [
        "bars-2024-03-04.csv", "bars-2024-03-05.csv", "bars-2024-03-06.csv"]


def test_the_schema_is_queryable(results):
    """SHOW TABLES, SHOW COLUMNS FROM t and information_schema list every table and
    column (a query naming no table used to build none of them)."""
    from incbt.query import TABLES

    s, _ = results
    shown = set(s.sql("SHOW TABLES").column("table_name").to_pylist())
    assert set(TABLES) <= shown, set(TABLES) - shown
    cols = s.sql("SHOW COLUMNS FROM runs").column("column_name").to_pylist()
    assert {"run_id", "strategy", "p_fast", "p_slow", "params"} <= set(cols), cols
    t = s.sql("SELECT column_name, data_type FROM information_schema.columns "
              "WHERE table_name = 'metrics' ORDER BY ordinal_position")
    assert t.column("column_name").to_pylist()[:3] == ["run_id", "instrument", "scope"]


def test_a_value_the_query_cannot_take_is_a_usage_error_naming_it(corrected):
    """A value bound to $NAME that the query cannot use as what it needs (text for a
    LIMIT, a date, a number) is a UsageError naming the parameter, the value and the
    type wanted, not DataFusion's cast error; a legitimate value of each still runs, and
    an error of the SQL itself is still a QueryError."""
    from incbt.errors import QueryError, UsageError

    s = corrected
    cases = [
        ("SELECT * FROM changes WHERE date = $d", {"d": "notadate"},
         r"-p d='notadate' \(params=\{'d': 'notadate'\} in Python\): the query uses \$d as "
         r"a date \(Date32\); give a date as YYYY-MM-DD"),
        ("SELECT * FROM changes WHERE date >= $d", {"d": "2024-13-45"}, r"\$d as a date"),
        ("SELECT * FROM changes LIMIT $n", {"n": "abc"},
         r"-p n='abc' .*: the query uses \$n as a number of rows \(LIMIT\); give a whole "
         r"number, 0 or more"),
        ("SELECT * FROM changes LIMIT $n", {"n": 1.5}, r"-p n=1\.5 .*\(LIMIT\)"),
        ("SELECT * FROM changes LIMIT 1 OFFSET $n", {"n": -1}, r"-p n=-1 .*\(OFFSET\)"),
        ("SELECT * FROM events WHERE seq > $s", {"s": "abc"},
         r"-p s='abc' .*: the query uses \$s as a number \(Int64\); give an integer"),
        ("SELECT * FROM changes WHERE rows = $r + 1", {"r": "x"}, r"\$r as a number"),
        ("SELECT * FROM events WHERE time > $t", {"t": "yesterday"},
         r"\$t as a time \(Timestamp\); give a date or an ISO-8601 time"),
        ("SELECT * FROM events WHERE kind LIKE $k", {"k": 5},
         r"-p k=5 .*: the query uses \$k as text \(Utf8\).*CAST\(\$k AS VARCHAR\)"),
        ("SELECT * FROM events WHERE seq > $s", {"s": 2**70}, r"\$s as a number.*at most"),
        # an integer for a date: DataFusion takes it as days since 1970, and matched nothing
        ("SELECT * FROM changes WHERE date = $d", {"d": 20240305},
         r"-p d=20240305 .*: the query uses \$d as a date \(Date32\); give a date as YYYY-MM-DD"),
        ("SELECT * FROM changes WHERE date > $d AND rows > $r", {"d": 5, "r": 1}, r"-p d=5 "),
        # the parameter at fault is named, not the first one nor a good one
        ("SELECT * FROM changes WHERE instrument = $i AND date = $d LIMIT $n",
         {"i": "S0001", "d": "2024-03-05", "n": "ten"}, r"-p n='ten' .*\(LIMIT\)"),
    ]
    for sql, params, message in cases:
        with pytest.raises(UsageError, match=message):
            s.sql(sql, params=params)
    # a $NAME without a value: said as such, not DataFusion's "Placeholder" error (QA)
    with pytest.raises(UsageError, match=r"uses \$s and no value was given.*-p s=VALUE"):
        s.sql("SELECT * FROM runs WHERE strategy = $s")
    # a named query's error names it (run_sql as the CLI calls it)
    sql = find_query("day_history", s.path)
    with pytest.raises(UsageError, match=r"^query day_history: -p day='notadate' "):
        run_sql(s.session(only_for=sql), sql, {"day": "notadate"}, name="day_history")
    # legitimate values: text, numbers, dates compared with date columns, a NULL
    assert s.sql("SELECT * FROM changes WHERE date = $d", params={"d": "2024-03-05"}
                 ).num_rows == 4
    import datetime

    assert s.sql("SELECT * FROM changes WHERE date >= $d AND instrument = $i",
                 params={"d": datetime.date(2024, 3, 5), "i": "S0001"}).num_rows == 3
    assert s.sql("SELECT * FROM changes LIMIT $n", params={"n": 3}).num_rows == 3
    assert s.sql("SELECT * FROM events WHERE seq > $s AND time > $t",
                 params={"s": 1, "t": "2020-01-01T00:00:00Z"}).num_rows == 2
    assert s.sql("SELECT * FROM changes WHERE rows > $r", params={"r": 0.5}).num_rows == 8
    assert s.sql("SELECT * FROM changes WHERE rows > $r", params={"r": 0}).num_rows == 8
    assert s.sql("SELECT $x + 1 AS y", params={"x": 1}).column("y").to_pylist() == [2]
    assert s.sql("SELECT * FROM changes WHERE date = $d", params={"d": None}).num_rows == 0
    # an error of the SQL itself, with values given, maps as before
    for sql, message in (
        ("SELECT * FROM changes WHERE nosuch = $n", "No field named nosuch"),
        ("SELECT * FROM changez WHERE date = $n", r"did you mean 'changes'\?"),
        ("SELEC * FROM changes WHERE date = $n", "check the SQL"),
        ("COPY (SELECT $n) TO '/tmp/x.csv'", "queries only read"),
    ):
        with pytest.raises(QueryError, match=message) as exc:
            s.sql(sql, params={"n": "abc"})
        assert not isinstance(exc.value, UsageError), sql
    # a statement that writes is refused as such, whatever else is wrong with it (QA
    # 2026-12-06: DataFusion's planning error came first, or a fix that led to a refusal)
    for sql in ("INSERT INTO runs VALUES (1)", "COPY runs TO '/tmp/x'",
                "-- a comment\n /* and another */ (insert into daily values (1))",
                "create table t (a int)"):
        with pytest.raises(QueryError, match=r"(INSERT|COPY|CREATE) is not run here\. Fix: "
                           r"queries only read"):
            s.sql(sql)
    # a literal of the SQL that fails to cast is not blamed on the value given
    with pytest.raises(QueryError, match="'notadate'") as exc:
        s.sql("SELECT * FROM changes WHERE date = $n OR date = 'notadate'",
              params={"n": "2024-03-05"})
    assert not isinstance(exc.value, UsageError)


def test_cli_a_value_the_query_cannot_take_exits_2_naming_it(results):
    """`incbt query NAME|SQL -p KEY=VALUE` with a value the query cannot take: exit 2 and
    one line naming the parameter, the value and what to give; a genuine SQL error with a
    value given still exits 1."""

    s, rid = results

    def query(*args):
        return run_incbt(["--store", s.path, "query", *args])

    p = query("worst_drawdowns", "-p", f"run={rid[:10]}", "-p", "n=abc")
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [
        "error: query worst_drawdowns: -p n='abc' (params={'n': 'abc'} in Python): the query "
        "uses $n as a number of rows (LIMIT); give a whole number, 0 or more"], p.stderr
    p = query("SELECT * FROM runs LIMIT $n", "-p", "n=abc")
    assert p.returncode == 2 and "-p n='abc'" in p.stderr and "(LIMIT)" in p.stderr, p.stderr
    assert "DataFusion" not in p.stderr and "Cast error" not in p.stderr, p.stderr
    p = query("SELECT count(*) AS n FROM bars WHERE date >= $d", "-p", "d=notadate")
    assert p.returncode == 2, p.stderr
    assert "-p d='notadate'" in p.stderr and "$d as a date (Date32)" in p.stderr, p.stderr
    assert "give a date as YYYY-MM-DD" in p.stderr, p.stderr
    p = query("SELECT count(*) AS n FROM bars WHERE date = $d", "-p", "d=20240305")
    assert p.returncode == 2, p.stderr  # was: 0 rows (as text, a date in year 20240305)
    assert "-p d=20240305 " in p.stderr and "$d as a date (Date32)" in p.stderr, p.stderr
    p = query("SELECT * FROM runs LIMIT $n", "-p", "n=1e0")
    assert p.returncode == 2 and "-p n=1e0 " in p.stderr, p.stderr  # as typed, not 1.0
    p = query("SELECT count(*) AS n FROM runs WHERE notional > $x", "-p", "x=lots")
    assert p.returncode == 2 and "$x as a number (Float64); give a number" in p.stderr
    # legitimate values run; an error of the SQL itself is exit 1, as before
    p = query("SELECT count(*) AS n FROM daily WHERE date >= $d AND notional > $x", "-p",
              "d=2024-02-01", "-p", "x=5")
    assert p.returncode == 1 and "No field named notional" in p.stderr, p.stderr
    p = query("SELECT count(*) AS n FROM daily WHERE date >= $d AND pnl > $x", "-p",
              "d=2024-02-01", "-p", "x=-1e9", "--output", "csv")
    assert p.returncode == 0 and int(p.stdout.splitlines()[1]) > 0, p.stderr
    # a positional $1 is bound by -p 1=VALUE, as its missing value's message says (QA
    # 2026-12-07: then "-p 1: the SQL has no $1 to bind it to")
    p = query("SELECT $1 + 1 AS a", "--output", "csv")
    assert p.returncode == 2 and "give -p 1=VALUE" in p.stderr, p.stderr
    p = query("SELECT $1 + 1 AS a", "-p", "1=5", "--output", "csv")
    assert p.returncode == 0 and p.stdout.splitlines() == ['"a"', "6"], p.stderr


def test_cli_a_value_that_reads_as_a_number_is_text_where_the_query_needs_text(tmp_path):
    """`-p sweep=2024` for a sweep named 2024: the value was bound as the number 2024,
    DataFusion cast the sweep column to numbers, and the query failed (exit 1); `-p s=7`
    matched the sweeps named 7 and 007 (QA, 2026-12-05). A value is bound as its text
    where the query plans with it so; a number where one is wanted stays one."""

    s = ingested(tmp_path)
    s.sweep("sma_cross", {"fast": [3, 5], "slow": [20]}, name="2024")

    def query(*args):
        return run_incbt(["--store", s.path, "query", *args, "--output", "csv"])

    p = query("grid", "-p", "sweep=2024")
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.strip().splitlines()) == 3, p.stdout  # a header, 2 runs
    p = query("SELECT count(*) AS n FROM sweeps WHERE sweep = $s", "-p", "s=2024")
    assert p.returncode == 0 and p.stdout.splitlines()[1] == "2", p.stdout + p.stderr
    p = query("SELECT count(*) AS n FROM runs WHERE p_fast = $f", "-p", "f=3")
    assert p.returncode == 0 and p.stdout.splitlines()[1] == "1", p.stdout + p.stderr
    p = query("SELECT run_id FROM runs LIMIT $n", "-p", "n=abc")
    assert p.returncode == 2 and "-p n='abc'" in p.stderr, p.stderr
    p = query("SELECT run_id FROM runs LIMIT $n", "-p", "n=1")
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 2, p.stdout + p.stderr
    # names that read as one number: text to a text column (as numbers, 7 matched 007)
    s.sweep("sma_cross", {"fast": [3], "slow": [20]}, name="007")
    s.sweep("sma_cross", {"fast": [4], "slow": [20]}, name="7")
    for name in ("007", "7"):
        p = query("SELECT sweep FROM sweeps WHERE sweep = $s", "-p", f"s={name}")
        assert p.returncode == 0 and p.stdout.split() == ['"sweep"', f'"{name}"'], p.stdout
        p = query("grid", "-p", f"sweep={name}")
        assert p.returncode == 0 and len(p.stdout.strip().splitlines()) == 2, p.stdout


def test_cli_a_column_name_the_query_cannot_read_is_bad_usage(results):
    """`grid_pivot -p x=nope` exited 1 with DataFusion's schema dump; `-p metric=2024`
    said "letters, digits, _" of a name of digits (QA, 2026-12-05)."""

    s, _ = results

    def query(*args):
        return run_incbt(["--store", s.path, "query", "grid_pivot", "-p", "sweep=g", *args])

    p = query("-p", "x=nope", "-p", "y=slow", "-p", "metric=sharpe")
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip() == (
        "error: query grid_pivot: -p x='nope' names no column it can read (the strategies' "
        "parameters here: fast, k, lookback, lower, slow, upper, window; the metrics: sharpe, "
        "total_pnl, max_drawdown, fills, fees, turnover)"), p.stderr
    p = query("-p", "x=fast", "-p", "y=slow", "-p", "metric=sortino")  # a statistic
    assert p.returncode == 2 and p.stderr.strip().endswith(
        "; sortino is a value of the stats query, over a sweep in `incbt report SWEEP "
        "--metric sortino` (a heatmap) or Python's sweep.pivot(x, y, 'sortino')"), p.stderr
    p = query("-p", "x=fast", "-p", "y=slow", "-p", "metric=2024")
    assert p.returncode == 2 and "not starting with a digit" in p.stderr, p.stderr
    p = query("-p", "x=fast", "-p", "y=slow", "-p", "metric=sharpe", "--pivot")
    assert p.returncode == 0, p.stderr


def test_grid_pivot_with_x_equal_to_y_is_bad_usage(results):
    """`grid_pivot -p x=slow -p y=slow` exited 1 with DataFusion's "Projections require
    unique expression names" (QA 2026-12-05): said in a line, by the CLI and store.query."""

    s, _ = results
    for y in ("slow", "SLOW"):  # unquoted names are one name whatever their case
        p = run_incbt(["--store", s.path, "query", "grid_pivot", "-p", "sweep=g", "-p", "x=slow",
                       "-p", f"y={y}", "-p", "metric=sharpe", "--pivot"])
        assert p.returncode == 2, p.stderr
        assert p.stderr.strip() == (
            f"error: query grid_pivot: -p x='slow' and -p y='{y}' must be two different "
            "names (each names a column of the result)"), p.stderr
    with pytest.raises(incbt.UsageError) as e:
        s.query("grid_pivot", {"sweep": "g", "x": "slow", "y": "slow", "metric": "sharpe"})
    assert str(e.value) == ("query grid_pivot: -p x='slow' and -p y='slow' must be two "
                            "different names (each names a column of the result)")


def test_store_query_runs_a_named_query_as_the_cli_does(results):
    """Named queries were out of reach from Python, and store.sql("leaderboard") was a
    parser error (QA 2026-12-05)."""
    from incbt.errors import NotFoundError, UsageError

    s, rid = results
    board = s.query("leaderboard")  # its default: every strategy
    assert board.num_rows == 4 and board.column_names[:2] == ["run_id", "strategy"]
    worst = s.query("worst_drawdowns", {"run": rid[:8], "n": 2})  # a prefix resolved
    assert worst.num_rows == 2
    pivot = s.query("grid_pivot", {"sweep": "g", "x": "fast", "y": "slow", "metric": "sharpe"})
    assert pivot.num_rows == 4
    with pytest.raises(UsageError, match=r"'leaderboard' is a named query, not SQL.*store.query"):
        s.sql("leaderboard")
    with pytest.raises(NotFoundError, match="no query named 'leaderbord'"):
        s.query("leaderbord")
    # in Python, as Python gives it (QA 2026-12-06: "-p run=VALUE", the CLI's words)
    with pytest.raises(UsageError, match=r"query worst_drawdowns needs params\['run'\]=VALUE"):
        s.query("worst_drawdowns")
    with pytest.raises(UsageError, match=r"query grid_pivot needs params\['metric'\]=NAME"):
        s.query("grid_pivot", {"sweep": "g", "x": "fast", "y": "slow"})


def test_a_file_removed_while_a_query_runs_is_said_so(tmp_path):
    """An --as-of query racing `incbt gc` failed with DataFusion's FileNotFoundError
    (QA 2026-12-05): said in a line, with what to do."""
    from incbt.errors import QueryError

    generate(str(tmp_path / "d"), instruments=2, days=3, start="2024-03-04", seed=3)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    sql = "SELECT sum(close) AS c FROM bars"
    ctx = s.session(only_for=sql)
    path = s.sql("SELECT path FROM files LIMIT 1")["path"][0].as_py()
    os.remove(os.path.join(s.path, path))
    with pytest.raises(QueryError, match="a file it was reading was removed while it ran"):
        run_sql(ctx, sql)
    # through the store, run again on a new session: still missing, the file was not
    # removed by incbt (QA 2026-12-05: "run it again" failed the same way)
    with pytest.raises(QueryError, match=f"the store's file .*{os.path.basename(path)} is "
                       "missing, though its catalog lists it: the store was changed outside"):
        s.sql(sql)
    from incbt.query import run_sql_fresh

    made = []

    def make():  # a gc removed the file under the first session; the second reads past it
        made.append(1)
        return ctx if len(made) == 1 else incbt.open(str(tmp_path / "t")).session(only_for=sql)

    generate(str(tmp_path / "e"), instruments=1, days=2, start="2024-03-04", seed=3)
    incbt.init(str(tmp_path / "t")).ingest(str(tmp_path / "e"))
    assert run_sql_fresh(make, sql).num_rows == 1 and len(made) == 2
    # removed before the session opened it (a gc between the catalog's listing and the
    # dataset's): the same (QA 2026-12-06: said as a store changed outside incbt,
    # "restore it from a backup"); missing again: that message
    gone = os.path.join(s.path, "results", "daily", "0000000009.parquet")
    opened = []

    def make_after_gc():
        opened.append(1)
        if len(opened) == 1:
            raise FileNotFoundError(gone)
        return incbt.open(str(tmp_path / "t")).session(only_for=sql)

    assert run_sql_fresh(make_after_gc, sql).num_rows == 1 and len(opened) == 2

    def never():
        raise FileNotFoundError(gone)

    with pytest.raises(QueryError, match=f"the store's file {gone} is missing, though its "
                       "catalog lists it"):
        run_sql_fresh(never, sql)


def test_a_scan_stopped_early_does_not_abort_the_process_at_exit(tmp_path):
    """Found by QA 2026-12-05: a script whose last query stopped a scan of bars or daily
    early (``LIMIT 1``) aborted at exit ("FATAL: exception not rethrown", exit 134), and
    so did commands ending on an error after such a scan: DataFusion's threads freed the
    scan's pyarrow iterators while the interpreter tore down."""
    import subprocess
    import sys

    s = ingested(tmp_path, instruments=3, days=3)
    s.backtest("sma_cross", {"fast": 3, "slow": 20})
    script = (
        "import sys, incbt\n"
        "s = incbt.open(sys.argv[1])\n"
        "assert s.sql('SELECT * FROM daily LIMIT 1').num_rows == 1\n"
        "assert s.sql('SELECT * FROM bars LIMIT 1').num_rows == 1\n"
    )
    for _ in range(3):  # it aborted every time
        p = subprocess.run([sys.executable, "-c", script, s.path], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-2000:]
    for args, code in (
        (["SELECT * FROM bars LIMIT 1", "-o", str(tmp_path / "no" / "x.csv")], 1),
        (["SELECT instrument, date FROM bars LIMIT 1", "--pivot"], 2),
    ):
        p = run_incbt(["--store", s.path, "query", *args])
        assert p.returncode == code and "FATAL" not in p.stderr, (args, p.returncode, p.stderr)


def test_a_number_compared_with_text_names_the_parameter(corrected):
    """QA 2026-12-06: params={"i": 5} against the text column instrument failed with
    DataFusion's cast error on a stored value, as if the data were bad: a hint says
    what to do (a hint only: the cast may be the SQL's own, review 2026-12-06)."""
    with pytest.raises(incbt.QueryError, match=r"if the query compares a parameter given as "
                       r"a number \(\$i = 5\) with text, give it as text: params=\{'i': '5'\}"):
        corrected.sql("SELECT count(*) FROM bars WHERE instrument = $i", params={"i": 5})
    with pytest.raises(incbt.QueryError, match=r"Cannot cast string 'abc'"):
        corrected.sql("SELECT CAST(s AS BIGINT) AS x FROM (VALUES ('abc'), ('1')) t(s) "
                      "LIMIT $n", params={"n": 5})


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-400, 400), min_size=1, max_size=40, unique=True),
       st.integers(-5, 20_000))
def test_coverage_counts_the_weekdays_missing_between_days_of_any_weekday(offsets, base):
    """Against a count day by day, for days of any weekday (24-hour markets trade on
    Saturdays) and dates before 1970 too. Found by QA 2026-12-06: a gap after a Saturday
    was counted one weekday short."""
    import datetime as dt

    import datafusion
    import pyarrow as pa

    days = sorted(base + o for o in offsets)
    epoch = dt.date(1970, 1, 1)
    want = sum(
        (epoch + dt.timedelta(days=e)).weekday() < 5
        for a, b in zip(days, days[1:], strict=False)
        for e in range(a + 1, b)
    )
    ctx = datafusion.SessionContext()
    ctx.register_record_batches("days", [[pa.record_batch({
        "instrument": pa.array(["X"] * len(days)),
        "date": pa.array(days, pa.int32()).cast(pa.date32()),
        "rows": pa.array([390] * len(days), pa.int64()),
    })]])
    got = ctx.sql(find_query("coverage", None)).to_arrow_table()
    assert got["missing_weekdays"].to_pylist() == [want]
    assert got["days"].to_pylist() == [len(days)]


def test_a_typed_literal_of_a_parameter_says_how_to_cast_it(results):
    """QA 2026-12-06: `DATE $a` failed in DataFusion's words alone."""
    s, _ = results
    with pytest.raises(incbt.QueryError, match=r"for a parameter, write CAST\(\$name AS DATE\)"):
        s.sql("SELECT count(*) FROM daily WHERE date >= DATE $a", params={"a": "2024-01-05"})
    n = s.sql("SELECT count(*) AS n FROM daily WHERE date >= CAST($a AS DATE)",
              params={"a": "2024-01-05"})["n"][0].as_py()
    assert n > 0


def test_time_travel_refuses_results_tables_read_not_words(results):
    """QA 2026-12-06: `--as-of` refused any query with the word runs, failed, daily...
    anywhere: the events table's own columns runs and failed, an alias, a comment."""
    s, _ = results
    got = s.sql("SELECT seq, kind, runs, failed FROM events WHERE kind = 'sweep'", as_of=3)
    assert got.num_rows == 1 and got["runs"][0].as_py() == 4
    assert s.sql("SELECT count(*) AS runs FROM bars -- no daily here", as_of=2).num_rows == 1
    for q, table in (("SELECT * FROM runs", "runs"),
                     ("SELECT e.seq FROM events e JOIN metrics m ON true", "metrics")):
        with pytest.raises(incbt.QueryError, match=f"the table {table} holds the results"):
            s.sql(q, as_of=2)


def test_a_query_too_wide_to_plan_is_refused_not_a_crash(results):
    """QA 2026-12-06: 3,000 `(a AND b)` terms joined by OR killed the process (SIGSEGV in
    DataFusion's planner); refused with the fix."""
    s, _ = results
    q = "SELECT count(*) FROM events WHERE " + " OR ".join(
        f"(kind = 'k{i}' AND seq > {i})" for i in range(3000))
    with pytest.raises(incbt.QueryError, match=r"5,999 AND/OR terms, more than the SQL engine"):
        s.sql(q)
    q = "SELECT count(*) AS n FROM events WHERE " + " OR ".join(
        f"(kind = 'k{i}' AND seq > {i})" for i in range(1000))
    assert s.sql(q)["n"][0].as_py() == 0


def test_a_sorted_query_of_bars_no_file_holds_gives_no_rows(corrected, tmp_path):
    """QA 2026-12-06: a filter that pruned every bars file left DataFusion a scan of no
    fragments, which its plan check refused under a sort ("SanityCheckPlan ...
    UnknownPartitioning(0)"); such a query gives no rows, as it does unsorted, and the
    rest is unchanged. A read-only store too: the empty file is not the store's."""
    s = corrected
    for sql in ("SELECT * FROM bars WHERE instrument = 'X' ORDER BY ts LIMIT 5",
                "SELECT * FROM bars WHERE date = '1999-01-01' ORDER BY ts",
                "SELECT ts, close FROM bars WHERE instrument = 'S0001' AND date = '2030-01-02' "
                "ORDER BY ts DESC"):
        t = s.sql(sql)
        assert t.num_rows == 0 and "ts" in t.column_names, sql
    got = s.sql("SELECT instrument, count(*) AS n FROM bars GROUP BY 1 ORDER BY 1").to_pylist()
    assert got == [{"instrument": "S0000", "n": 3 * 390}, {"instrument": "S0001", "n": 3 * 390}]
    assert s.sql("SELECT count(*) AS n FROM bars WHERE instrument = 'X'")["n"][0].as_py() == 0
    paths = s.sql("SELECT path FROM files")["path"].to_pylist()
    assert paths and not any("no-bars" in p for p in paths)  # the store's files alone


def test_the_leaderboard_marks_forks_and_runs_count_an_all_universe(tmp_path):
    """QA 2026-12-06: a fork ranked as a plain run of its new parameters (its history
    ran the base's), and runs.instruments was NULL for every --all run (its capital's
    count unread)."""
    s = ingested(tmp_path, instruments=3, days=6)
    base = s.backtest("sma_cross", {"fast": 3, "slow": 12})
    s.backtest("sma_cross", {"fast": 3, "slow": 12}, instruments=["S0000"])
    fork = s.backtest("sma_cross", {"fast": 4}, fork_of=base.run_id, effective="2024-03-08")
    lb = {r["run_id"]: r["params"] for r in s.query("leaderboard").to_pylist()}
    assert lb[base.run_id] == '{"fast": 3, "slow": 12}'
    assert lb[fork.run_id] == (
        f'{{"fast": 4, "slow": 12}} from 2024-03-08 (fork of {base.run_id[:8]})'
    )
    n = {r["universe"]: r["instruments"] for r in s.sql("SELECT * FROM runs").to_pylist()}
    assert n == {"all": 3, "S0000": 1}


def test_a_session_of_some_runs(results):
    """Store.session(runs=...): daily and fills of those runs alone (a run's tables, a
    fork's base and verify read only the files of their rows); no run, no row; a name
    that is no run id is refused."""
    s, rid = results
    q = "SELECT * FROM daily ORDER BY run_id, instrument, date"
    got = s.session(only_for=q, runs=[rid]).sql(q).to_arrow_table()
    want = s.sql(q.replace("ORDER", "WHERE run_id = $r ORDER"), params={"r": rid})
    assert got.num_rows and got.equals(want)
    assert s.session(only_for=q, runs=[]).sql(q).to_arrow_table().num_rows == 0
    for bad in ("x; DROP", "zzzz", "é1", ""):
        with pytest.raises(incbt.UsageError, match="is not a run id"):
            s.session(runs=[bad])
    # a prefix, or capitals, as store.run takes them (they gave empty tables)
    for named in (rid[:8], rid.upper()):
        assert s.session(only_for=q, runs=[named]).sql(q).to_arrow_table().equals(want)


def test_a_session_of_a_run_not_there_is_refused(tmp_path):
    """QA 2026-12-08: ``store.session(runs=[ID])`` with the whole id of no run, or of a
    run dropped since, gave empty tables without a word (its prefix was refused); a dry
    run's Run, not registered, still reads its tables as empty."""
    generate(str(tmp_path / "d"), instruments=2, days=2, start="2024-01-15", seed=7)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    rid = s.backtest("sma_cross", {"fast": 3, "slow": 20}).run_id
    with pytest.raises(incbt.NotFoundError, match="no run '0000000000000000'"):
        s.session(runs=[rid, "0" * 16])
    dry = s.backtest("sma_cross", {"fast": 4, "slow": 20}, dry_run=True)
    assert dry.daily.num_rows == 0 and dry.fills.num_rows == 0
    seq = s.drop([rid]).seq
    with pytest.raises(incbt.NotFoundError, match=rf"run {rid} was dropped \(event {seq}\)"):
        s.session(runs=[rid])


def test_sql_in_a_process_forked_after_sql_is_refused_not_hung(results):
    """QA 2026-12-07: a query in a child forked (multiprocessing's default on Linux) after
    the parent ran SQL waited for ever: DataFusion's threads do not survive a fork. It is
    refused, with the start methods that work; the parent goes on querying."""
    import multiprocessing as mp

    s, _ = results
    s.sql("SELECT count(*) FROM bars")
    ctx = mp.get_context("fork")
    got = ctx.Queue()

    def child():
        try:
            incbt.open(s.path).sql("SELECT count(*) FROM bars")
            got.put("ran")
        except incbt.UsageError as exc:
            got.put(str(exc))

    p = ctx.Process(target=child)
    p.start()
    p.join(60)
    if p.is_alive():
        p.kill()
        raise AssertionError("the forked child's query hung")
    said = got.get(timeout=5)
    assert "which cannot run in this process: it was forked from process" in said, said
    assert "'spawn'" in said, said
    assert s.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() > 0


def test_a_run_parameter_that_is_not_text_is_refused(results):
    """QA 2026-12-07: {"run": 3} was taken as the prefix "3"; None as "no run 'None'"."""
    s, _ = results
    for bad in (3, None, 3.5):
        with pytest.raises(incbt.UsageError, match=(
                f"params\\['run'\\]: give a run id \\(or a unique prefix of one\\), a "
                f"string, not {bad}")):
            s.query("pnl_by_year", {"run": bad})


def _results_store(tmp_path) -> tuple[incbt.Store, list[str]]:
    """A store of 3 backtests, a results file each (their paths, oldest first)."""
    s = ingested(tmp_path, instruments=3, days=4)
    for f in (3, 4, 5):
        s.backtest("sma_cross", {"fast": f, "slow": 20})
    folder = os.path.join(s.path, "results", "daily")
    paths = [os.path.join(folder, n) for n in sorted(os.listdir(folder))]
    assert len(paths) == 3
    return s, paths


def test_an_empty_results_file_is_said_damaged_not_read_as_no_rows(tmp_path):
    """QA 2026-12-07: DataFusion's listing skips a file of 0 bytes, so a daily file
    emptied outside incbt gave the other files' rows alone (count(*) a third short,
    run.stats() {} for its run, exit 0), where the pyarrow dataset had refused it."""
    s, paths = _results_store(tmp_path)
    open(paths[0], "wb").close()
    said = f"{paths[0]} cannot be read \\(it is empty, 0 bytes\\).*run `incbt repair`"
    with pytest.raises(incbt.StoreError, match=said):
        s.sql("SELECT count(*) FROM daily")
    run = s.backtest("sma_cross", {"fast": 3, "slow": 20})  # the emptied file's run
    with pytest.raises(incbt.StoreError, match=said):
        run.stats()
    with pytest.raises(incbt.StoreError, match=said):
        run.daily  # noqa: B018
    p = run_incbt(["--store", s.path, "query", "SELECT count(*) FROM daily"])
    assert p.returncode == 1 and "it is empty, 0 bytes" in p.stderr, p.stderr


def test_a_results_file_damaged_inside_a_page_is_named_with_its_fix(tmp_path):
    """QA 2026-12-07: a byte flipped in a data page of a daily file (its footer whole)
    failed a query with DataFusion's "LZ4RawCodec uncompress_size is not the expected
    one" and the fix of a damaged bars file (`incbt verify --bars`), naming no file.
    Every flip of a page's bytes here either reads or is said as that file's damage."""
    import pyarrow.parquet as pq

    s, paths = _results_store(tmp_path)
    path = paths[1]
    with open(path, "rb") as f:
        good = f.read()
    col = pq.read_metadata(path).row_group(0).column(
        pq.read_schema(path).get_field_index("pnl"))  # fmt: skip
    first = col.dictionary_page_offset or col.data_page_offset
    named = 0
    for at in range(first, first + min(col.total_compressed_size, 120), 3):
        bad = bytearray(good)
        bad[at] ^= 0xFF
        with open(path, "wb") as f:
            f.write(bad)
        try:
            s.sql("SELECT sum(pnl) FROM daily")
        except incbt.IncbtError as exc:
            assert f"{path} cannot be read" in str(exc) and "incbt repair" in str(exc), exc
            named += 1
    assert named, "no flip failed the read: the test damaged nothing"


def test_a_session_made_before_a_gc_is_not_read_as_empty(tmp_path):
    """QA 2026-12-07: a listing table that finds no file reads no row, without an error:
    a session made before `incbt gc` (in another process) deleted the files a compaction
    had left for readers gave count(*) 0 of daily. Said as a file removed while the
    query ran (run_sql_fresh runs it again on a new session)."""
    from incbt.errors import QueryError

    s, paths = _results_store(tmp_path)
    sql = "SELECT count(*) AS n FROM daily"
    ctx = s.session(only_for=sql)
    rows = run_sql(ctx, sql)["n"][0].as_py()
    assert rows > 0
    path = paths[0]
    os.rename(path, path + ".away")  # as a gc deletes it
    with pytest.raises(QueryError, match="a file it was reading was removed while it ran") as e:
        run_sql(ctx, sql)
    assert e.value.missing == path  # type: ignore[attr-defined]
    os.rename(path + ".away", path)
    assert run_sql(ctx, sql)["n"][0].as_py() == rows


def test_days_is_the_bars_of_each_day_now_and_as_of_every_event(tmp_path):
    """The `days` table (the catalog's day index, and the log of changes for --as-of):
    each day's bar count is what a scan of the bars counts, at every event of a history
    of new days, a correction, a removal and a late day; its hash and seq are the last
    change's (coverage reads it instead of scanning the bars: 5.5 s -> 0.45 s at 100
    instruments x 252 days)."""
    s = incbt.init(str(tmp_path / "s"))
    generate(str(tmp_path / "a"), instruments=3, days=6, start="2024-03-04", seed=4)
    generate(str(tmp_path / "f"), instruments=3, days=6, start="2024-03-04", seed=4,
             from_day="2024-03-06", to_day="2024-03-06", revise=["2024-03-06"])  # fmt: skip
    files = sorted(os.listdir(tmp_path / "a"))
    s.ingest([str(tmp_path / "a" / f) for f in files if "03-07" not in f])
    s.ingest(str(tmp_path / "f"))
    s.remove(["S0001"], start="2024-03-11")
    s.ingest(str(tmp_path / "a" / next(f for f in files if "03-07" in f)))  # a late day
    count = "SELECT instrument, date, count(*) AS rows FROM bars GROUP BY 1, 2 ORDER BY 1, 2"
    mine = "SELECT instrument, date, rows FROM days ORDER BY 1, 2"
    seqs = s.sql("SELECT seq FROM events ORDER BY seq")["seq"].to_pylist()
    for seq in [*seqs, None]:
        assert s.sql(mine, as_of=seq).to_pylist() == s.sql(count, as_of=seq).to_pylist(), seq
    now = s.sql(
        "SELECT d.*, c.new_hash FROM days d JOIN changes c "
        "ON c.instrument = d.instrument AND c.date = d.date AND c.seq = d.seq"
    ).to_pylist()
    assert len(now) == s.sql("SELECT count(*) AS n FROM days")["n"][0].as_py() == 3 * 6 - 1
    assert all(r["hash"] == r["new_hash"] for r in now)
    corrected = {r["instrument"]: r["seq"] for r in now if str(r["date"]) == "2024-03-06"}
    assert set(corrected.values()) == {seqs[2]}  # the correction's event
    assert s.sql(mine, as_of=seqs[1]).num_rows == 3 * 5  # before the correction, the late day
