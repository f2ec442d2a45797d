"""The folder of links SQL reads as ``bars`` (incbt/query/bars_view.py): a state of the
store after a day's ingest reuses the links of each instrument's older months, a link
pointing nowhere is made again (never read as no rows), and what no one used for a day
is removed."""

from __future__ import annotations

import os
import shutil
import time

import pytest

import incbt
from incbt.bars.generate import generate
from incbt.query import bars_view

DAYS = 25  # from 2024-01-15: January's 13 weekdays and 12 of February's


@pytest.fixture
def views(tmp_path, monkeypatch):
    """Views and leaves in a folder of this test's (not the user's temporary folder)."""
    folder = str(tmp_path / "views")
    monkeypatch.setattr(bars_view, "base", lambda: folder)
    return folder


def _store(tmp_path, days: int = DAYS) -> incbt.Store:
    generate(str(tmp_path / "d"), instruments=2, days=days, start="2024-01-15", seed=3)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    return s


def _new_day(s: incbt.Store, tmp_path, days: int) -> None:
    """Ingest the walk's day number ``days`` (the next one)."""
    out = tmp_path / f"new{days}"
    generate(str(out), instruments=2, days=days, start="2024-01-15", seed=3,
             from_day="2024-01-01", to_day="2100-01-01")  # fmt: skip
    s.ingest(str(out))


def _counts(s: incbt.Store) -> dict[str, int]:
    t = s.sql("SELECT instrument, count(*) AS n FROM bars GROUP BY 1 ORDER BY 1")
    return dict(zip(t["instrument"].to_pylist(), t["n"].to_pylist(), strict=True))


def _views(folder: str) -> list[str]:
    return [os.path.join(folder, n) for n in os.listdir(folder) if n != bars_view.LEAVES]


def _leaf_of(view: str, instrument: str, h: int) -> str:
    return os.readlink(os.path.join(view, bars_view.PARTITIONED, f"i={instrument}", f"h={h}"))


def test_a_new_day_reuses_each_instruments_older_months(tmp_path, views):
    s = _store(tmp_path)
    assert _counts(s) == {"S0000": DAYS * 390, "S0001": DAYS * 390}
    (first,) = _views(views)
    _new_day(s, tmp_path, DAYS + 1)
    assert _counts(s) == {"S0000": (DAYS + 1) * 390, "S0001": (DAYS + 1) * 390}
    (second,) = set(_views(views)) - {first}
    for inst in ("S0000", "S0001"):
        # no year before 2024: no leaf 0; January's file: the same leaf; February's
        # files, with the new day: a new one
        assert not os.path.lexists(os.path.join(second, "p", f"i={inst}", "h=0"))
        assert _leaf_of(second, inst, 1) == _leaf_of(first, inst, 1)
        assert _leaf_of(second, inst, 2) != _leaf_of(first, inst, 2)
        assert len(os.listdir(_leaf_of(second, inst, 2))) == len(
            os.listdir(_leaf_of(first, inst, 2))
        ) + 1  # the new day's append file
    # two views of two leaves an instrument, one of them shared
    assert len(os.listdir(os.path.join(views, bars_view.LEAVES))) == 6


def test_a_leaf_removed_under_a_view_is_made_again(tmp_path, views, monkeypatch):
    """A gc of another process racing with the reuse of a leaf (unused for a day) leaves
    a link pointing nowhere, which DataFusion's listing reads as no rows: the next query
    makes the view again and reads every row."""
    s = _store(tmp_path)
    want = _counts(s)
    (view,) = _views(views)
    leaf = _leaf_of(view, "S0001", 1)
    shutil.rmtree(leaf)
    assert _counts(s) == want  # this process's view, found broken
    assert os.path.isdir(leaf)
    shutil.rmtree(leaf)
    monkeypatch.setattr("incbt.query._BARS_STATES", {})  # as in a new process
    assert _counts(incbt.open(s.path)) == want


def test_a_session_whose_leaf_goes_while_it_is_open_says_so_and_runs_again(tmp_path, views):
    """A leaf removed after a session registered ``bars`` and before its query ran: the
    query's check after it finds the link pointing nowhere; the query runs again on a
    new session (run_sql_fresh), with every row."""
    from incbt.query import _files_gone

    s = _store(tmp_path)
    want = _counts(s)
    ctx = s.session(only_for="bars")
    (view,) = _views(views)
    shutil.rmtree(_leaf_of(view, "S0000", 2))
    n = ctx.sql("SELECT count(*) AS n FROM bars").to_arrow_table()["n"][0].as_py()
    assert n < sum(want.values())  # what DataFusion alone reads: rows missing
    err = _files_gone(ctx, "SQL")
    assert err is not None and "removed while it ran" in str(err)
    assert _counts(s) == want


def test_views_and_leaves_unused_for_a_day_are_removed(tmp_path, views):
    s = _store(tmp_path)
    _counts(s)
    (old,) = _views(views)
    old_leaves = {_leaf_of(old, i, h) for i in ("S0000", "S0001") for h in (1, 2)}
    # the view and its leaves last used over a day ago, and a folder left half made
    past = time.time() - bars_view.KEEP - 60
    half = os.path.join(views, "abc.123.456.tmp")
    os.mkdir(half)
    for p in (old, half, *old_leaves):
        os.utime(p, (past, past))
    _new_day(s, tmp_path, DAYS + 1)
    _counts(s)  # a new view, which removes what was unused
    (new,) = _views(views)
    assert new != old and not os.path.exists(half)
    new_leaves = {_leaf_of(new, i, h) for i in ("S0000", "S0001") for h in (1, 2)}
    # January's leaves are the new view's too: used again, so kept (touched)
    leaves = {os.path.join(views, bars_view.LEAVES, n)
              for n in os.listdir(os.path.join(views, bars_view.LEAVES))}  # fmt: skip
    assert leaves == new_leaves
    assert old_leaves - new_leaves and not any(map(os.path.exists, old_leaves - new_leaves))


def test_a_view_in_use_keeps_its_leaves_young(tmp_path, views, monkeypatch):
    """A view read again touches its leaves once their last touch is REFRESH old: a view
    used every hour for days never has a leaf old enough to be removed."""
    s = _store(tmp_path)
    _counts(s)
    (view,) = _views(views)
    leaf = _leaf_of(view, "S0000", 1)
    past = time.time() - bars_view.REFRESH - 60
    os.utime(leaf, (past, past))
    os.utime(os.path.join(view, bars_view._TOUCHED), (past, past))
    monkeypatch.setattr("incbt.query._BARS_STATES", {})  # as in a new process
    _counts(s)
    assert time.time() - os.stat(leaf).st_mtime < 60


def test_an_instruments_files_split_by_year_then_month():
    """The leaves of an instrument: the years before its newest month's, that year's
    months before it, its newest month (a file's month: its last day's)."""
    import datetime

    from incbt.catalog import FileSpan

    def span(path: str, last: str) -> FileSpan:
        d = (datetime.date.fromisoformat(last) - datetime.date(1970, 1, 1)).days
        return FileSpan(path, "X", d - 3, d)

    files = [span("a", "2022-12-30"), span("b", "2023-11-30"), span("c", "2023-12-29"),
             span("d", "2024-01-31"), span("e", "2024-02-01"), span("f", "2024-02-29")]  # fmt: skip
    assert bars_view._split(files) == [["a", "b", "c"], ["d"], ["e", "f"]]
    assert bars_view._split(files[:3]) == [["a"], ["b"], ["c"]]
    assert bars_view._split(files[4:5]) == [[], [], ["e"]]
