"""The folder of links that DataFusion's Parquet reader reads as the table ``bars``.

DataFusion's reader takes one folder a table, and the catalog's list of current files
is not any folder of the store (superseded files stay there for ``--as-of`` until a gc):
SQL reads a *view*, a folder of symbolic links to exactly the files of one state of the
store, laid out as Hive partitions so that a filter on instrument prunes files before
any is opened (and one on date row groups, by their statistics)::

    <tmp>/incbt-bars-<uid>/
        <view>/p/i=<instrument>/h=0 -> <tmp>/incbt-bars-<uid>/l/<leaf>   years before
        <view>/p/i=<instrument>/h=1 -> ...   the newest month's year before it
        <view>/p/i=<instrument>/h=2 -> ...   the newest month
        <view>/f/<k>-<file>                                files of names too long for
                                                           a folder's name (read whole)
        l/<leaf>/<file> -> <store>/bars/...                one link a file

A view is named by a digest of the store and its files, and a leaf by a digest of the
store and its own files: the same files are the same folder, for every process (bars
files are immutable, their names content-addressed). A view is the links of its
instruments; an instrument's links point at up to three leaves (:func:`_split`), so the
next state after a day's ingest (a new day in each instrument's newest month) makes a
new leaf of each instrument's newest month and reuses the others: ~4,000 links and
folders made at 500 instruments x 5 years, against the 30,000 links of one link a file
(which took 0.7-9 s a state on these machines, 30-275 us a link as the disk was
shared; benchmarks/bench_sql_files.py); a new month makes ~6,000 more, a new year all.

Each is made apart, then renamed in (two processes may make it at once). Views and
leaves not used for a day (``KEEP``) are removed when a view is made; a view in use
touches its leaves at most once an hour (``REFRESH``), so that no leaf of a view in use
is ever that old. A leaf removed all the same (a gc of another process racing with its
reuse) leaves a link pointing nowhere, which DataFusion's listing would read as no rows:
:func:`broken` finds it before (:func:`incbt.query.register_bars`, which makes the view
again) and after a query (``incbt.query._files_gone``, which runs it again).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence

from incbt.catalog import FileRecord, FileSpan

# a view's folders: of an instrument each (``i=<name>``, its leaves in ``h=0``..``h=2``),
# and of the files of instruments whose name, encoded, is longer than a folder's name may
# be (NAME_MAX bytes: QA's longest names of 255 bytes with a "%" in each place,
# 2026-12-08), whose instrument is read from the files themselves (they hold it), pruned
# by their row groups' statistics; the leaves of every view, in LEAVES beside them
PARTITIONED, FLAT, LEAVES = "p", "f", "l"
NAME_MAX = 255
# the layout's version, in every digest: a folder of another layout is another folder
LAYOUT = "i=3"

# a view or leaf not used for this many seconds is removed by the next view made
KEEP = 86400.0
# a view in use touches its leaves when they were last touched this many seconds ago
REFRESH = 3600.0
_TOUCHED = ".touched"  # in a view: its time is when its leaves were last touched

# the characters object_store percent-encodes in a path's part (and so DataFusion in the
# folder it lists for a filter on a partition's value): the others stay as they are
_HIVE_ESCAPED = frozenset('/\\{^}%`]">[~<#|*?\x7f') | frozenset(map(chr, range(32)))


def hive_value(name: str) -> str:
    """An instrument as its folder's value, encoded as DataFusion encodes it to find the
    folder of ``instrument = 'X'`` (QA 2026-12-08: with every character but letters and
    digits encoded, ``instrument = 'a=b'`` found no folder, and no row); every value
    reads back as it was (all of ASCII, accents and CJK tested)."""
    return "".join(
        "".join(f"%{b:02X}" for b in ch.encode()) if ch in _HIVE_ESCAPED else ch for ch in name
    )


def base() -> str:
    """The folder of every view and leaf of this user."""
    return os.path.join(tempfile.gettempdir(), f"incbt-bars-{os.getuid()}")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join((LAYOUT, *parts)).encode()).hexdigest()[:24]


def _made_apart(final: str, fill: Iterable[tuple[str, str]], mark: bool = False) -> None:
    """Folder ``final`` holding the links ``fill`` gives (name, target) (and the file
    ``_TOUCHED`` with ``mark``), made under a name of its own and renamed in; another
    process's, made meanwhile, is as good."""
    tmp = f"{final}.{os.getpid()}.{threading.get_native_id()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.mkdir(tmp)
    made: set[str] = set()
    for name, target in fill:
        folder = os.path.dirname(os.path.join(tmp, name))
        if folder != tmp and folder not in made:
            os.makedirs(folder)
            made.add(folder)
        os.symlink(target, os.path.join(tmp, name))
    if mark:
        open(os.path.join(tmp, _TOUCHED), "x").close()  # noqa: SIM115 (made, not used)
    try:
        os.rename(tmp, final)
    except OSError:  # another process made it meanwhile: the same folder
        shutil.rmtree(tmp, ignore_errors=True)


def _leaf(root: str, paths: list[str]) -> str:
    """The leaf of these files (paths in the store ``root``), made if it is not there."""
    paths = sorted(paths)  # the same files, the same leaf, whatever their order
    leaf = os.path.join(base(), LEAVES, _digest(root, *paths))
    try:
        os.utime(leaf)  # there: in use again
    except FileNotFoundError:
        os.makedirs(os.path.dirname(leaf), exist_ok=True)
        _made_apart(leaf, ((os.path.basename(p), os.path.join(root, p)) for p in paths))
    return leaf


def _month(day: int) -> int:
    """A day (days since 1970-01-01) as its month's number (months since year 0)."""
    import datetime

    d = datetime.date.fromordinal(719163 + day)  # 719163: 1970-01-01's ordinal
    return d.year * 12 + d.month - 1


def _split(files: list[FileSpan | FileRecord]) -> list[list[str]]:
    """One instrument's files as its leaves (``h=0``, ``h=1``, ``h=2``), by the month of
    each file's last day against that of its newest file: the years before the newest
    month's, that year's months before it, and the newest month (any may be empty). A
    day's ingest changes the last leaf, a new month the last two, a new year all three."""
    newest = _month(max(f.last_day for f in files))
    out: list[list[str]] = [[], [], []]
    for f in files:
        m = _month(f.last_day)
        out[0 if m // 12 < newest // 12 else 1 if m < newest else 2].append(f.path)
    return out


def view(
    key: tuple[str, tuple[str, ...]], files: Sequence[FileSpan | FileRecord]
) -> tuple[str, list[str]]:
    """The view of these bars files, made where it is not there or is broken (see the
    module's docstring), and its links to leaves. ``key``: the store's absolute path and
    the files' paths in it."""
    root = key[0]
    folder = os.path.join(base(), _digest(root, *key[1]))
    if os.path.isdir(folder):
        found = links(folder)
        if broken(folder, found) is None:
            _in_use(folder, found)
            return folder, found
        shutil.rmtree(folder, ignore_errors=True)  # a leaf of it removed: made again
    os.makedirs(base(), exist_ok=True)
    by: dict[str, list[FileSpan | FileRecord]] = {}
    made: list[tuple[str, str]] = []
    for k, f in enumerate(files):
        name = "i=" + hive_value(f.instrument)
        if len(name.encode()) <= NAME_MAX:
            by.setdefault(name, []).append(f)
        else:  # a long name encoded past a folder name's most: read from the files
            made.append((os.path.join(FLAT, f"{k}-{os.path.basename(f.path)}"),
                         os.path.join(root, f.path)))  # fmt: skip
    for name, fs in by.items():
        for h, paths in enumerate(_split(fs)):
            if paths:
                made.append((os.path.join(PARTITIONED, name, f"h={h}"), _leaf(root, paths)))
    _made_apart(folder, made, mark=True)
    _remove_unused(folder)
    return folder, links(folder)


def _in_use(folder: str, view_links: list[str]) -> None:
    """A view read again: its time now, and its leaves' where they were last touched
    ``REFRESH`` seconds ago or more."""
    now = time.time()
    with contextlib.suppress(OSError):
        os.utime(folder)
        mark = os.path.join(folder, _TOUCHED)
        if now - os.stat(mark).st_mtime >= REFRESH:
            for link in view_links:
                os.utime(link)  # (follows the link: the leaf's time)
            os.utime(mark)


def links(folder: str) -> list[str]:
    """A view's links to its leaves (``p/i=<name>/h=<k>``)."""
    out: list[str] = []
    with contextlib.suppress(FileNotFoundError):
        for inst in os.scandir(os.path.join(folder, PARTITIONED)):
            out.extend(e.path for e in os.scandir(inst.path))
    return out


def broken(folder: str, view_links: list[str]) -> str | None:
    """A link of the view whose leaf is gone (or the view itself, gone), else None."""
    if not os.path.isdir(folder):
        return folder
    for link in view_links:
        if not os.path.isdir(link):  # follows the link
            return link
    return None


def _remove_unused(keep: str) -> None:
    """Remove the views and leaves (and leftovers of folders made apart) not used for
    ``KEEP`` seconds, other than view ``keep``."""
    now = time.time()
    b = base()
    leaf_dir = os.path.join(b, LEAVES)
    for folder, names in ((b, os.listdir(b)), (leaf_dir, _listdir(leaf_dir))):
        for name in names:
            old = os.path.join(folder, name)
            if old in (keep, leaf_dir):
                continue
            try:
                if now - os.lstat(old).st_mtime > KEEP:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                continue


def _listdir(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []
