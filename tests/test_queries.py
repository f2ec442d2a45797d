"""Named queries: found by name, parameters bound (never pasted), listed with descriptions."""

from __future__ import annotations

import pytest

import incbt
from incbt.bars.generate import generate
from incbt.queries import BUILTIN, find_query, list_queries
from incbt.query import run_sql


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
    # a hostile value is a value, not SQL: it fails to cast to a date
    with pytest.raises(incbt.QueryError):
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


def test_sql_errors_name_the_query(corrected):
    with pytest.raises(incbt.QueryError, match="query broken failed"):
        run_sql(corrected.session(), "SELEC 1", name="broken")
