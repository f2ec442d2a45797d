"""``incbt gc --catalog``: the catalog's file compacted, its contents bit for bit the same.

LMDB never shrinks its file; a drop frees pages inside it. Compacting copies the live
pages, appends the ``gc`` event to the copy and swaps the folders in one step. Checked
here: every key and value of every table is as before (plus the event and the meta
naming the file replaced); processes and Store objects holding the store follow it;
a kill -9 at each step leaves the old catalog or the new one, whole, and the next
command finishes; a dry run writes nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import lmdb
import pytest
from cli_process import run_incbt
from conftest import tree_state

import incbt
from incbt.bars.generate import generate
from incbt.catalog.compact import COPY_DIR
from incbt.catalog.env import DBS, close_env


def _dump(store: incbt.Store) -> dict[bytes, dict[bytes, bytes]]:
    """Every table's keys and values."""
    env = store.catalog.env
    out: dict[bytes, dict[bytes, bytes]] = {}
    with env.read() as txn:
        for name in DBS:
            with txn.cursor(env.db(name)) as cur:
                out[name] = {bytes(k): bytes(v) for k, v in cur}
    return out


def _without_compaction(d: dict, seqs: set[int]) -> dict:
    """``d`` less what compactions add: their events and the meta naming the files
    they replaced."""
    out = {k: dict(v) for k, v in d.items()}
    out[b"meta"].pop(b"compacted_from", None)
    for s in seqs:
        out[b"events"].pop(s.to_bytes(8, "big"), None)
    return out


def _compaction_seqs(store: incbt.Store) -> set[int]:
    return {
        int(e["seq"])
        for e in store.log().to_pylist()
        if e["kind"] == "gc" and "catalog_bytes_before" in (e["summary"] or "")
    }


@pytest.fixture(scope="module")
def dropped(tmp_path_factory):
    """A store whose big sweep was dropped: most of its catalog's pages are free."""
    base = tmp_path_factory.mktemp("compact")
    generate(str(base / "d"), instruments=4, days=30, start="2024-01-01", seed=3)
    s = incbt.init(str(base / "s"))
    s.ingest(str(base / "d"))
    s.backtest("sma_cross", {"fast": 5, "slow": 40})
    s.sweep("breakout", {"lookback": list(range(5, 45))}, name="wide")
    s.drop(sweep="wide")
    s.close()
    return base / "s"


def _copy(src, dst) -> str:
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    return str(dst)


def test_the_file_shrinks_and_every_table_is_as_it_was(dropped, tmp_path):
    path = _copy(dropped, tmp_path / "s")
    s = incbt.open(path)
    was = _dump(s)
    mdb = os.path.join(path, "catalog", "data.mdb")
    size = os.path.getsize(mdb)
    dry = s.gc(catalog=True, dry_run=True)
    assert _dump(s) == was and dry.catalog.bytes_before == size
    g = s.gc(catalog=True)
    c = g.catalog
    assert c.bytes_before == size and c.bytes_after == os.path.getsize(mdb)
    assert c.bytes_after < size / 3, (c.bytes_after, size)
    # the dry run's estimate: the copy's pages, before the event was added to it
    assert dry.catalog.bytes_after <= c.bytes_after <= dry.catalog.bytes_after + 64 * 4096
    now = _dump(s)
    seqs = _compaction_seqs(s)
    assert len(seqs) == 1
    # the bars' and results' gc wrote their own events first: the compaction is the last
    assert max(seqs) == max(int.from_bytes(k, "big") for k in now[b"events"])
    gc_seqs = {int(e["seq"]) for e in s.log().to_pylist() if e["kind"] in ("gc", "compact")}
    assert _without_compaction(now, gc_seqs) == _without_compaction(_dump(s), gc_seqs)
    assert not os.path.exists(os.path.join(path, COPY_DIR))
    # the store goes on: queries, a verify bit for bit, new work, a second compaction
    assert s.verify().ok
    s.backtest("sma_cross", {"fast": 6, "slow": 40})
    close_env(os.path.join(path, "catalog"))
    again = incbt.open(path)
    assert again.verify().ok
    before = _dump(again)
    again.gc(catalog=True)
    assert _without_compaction(_dump(again), _compaction_seqs(again)) == _without_compaction(
        before, _compaction_seqs(again)
    )
    p = run_incbt(["--store", path, "log", "--kind", "gc"])
    assert "compacted the catalog:" in p.stdout


def test_a_compaction_changes_no_table_but_the_event(dropped, tmp_path):
    """Bit for bit: the compacted catalog holds exactly the old one's keys and values,
    plus the compaction's event and meta."""
    path = _copy(dropped, tmp_path / "s")
    s = incbt.open(path)
    s.gc()  # the bars' and results' gc alone first, so the compaction is all that follows
    was = _dump(s)
    s.gc(catalog=True)
    now = _dump(s)
    (seq,) = _compaction_seqs(s)
    extra_events = set(now[b"events"]) - set(was[b"events"])
    assert extra_events == {seq.to_bytes(8, "big")}
    assert set(now[b"meta"]) - set(was[b"meta"]) <= {b"compacted_from"}
    assert _without_compaction(now, {seq}) == _without_compaction(was, {seq})


def test_dry_run_and_cli_write_nothing(dropped, tmp_path):
    path = _copy(dropped, tmp_path / "s")
    was = tree_state(path)
    p = run_incbt(["--store", path, "gc", "--catalog", "--dry-run"])
    assert "catalog: would take about" in p.stdout, p.stdout
    assert tree_state(path) == was
    p = run_incbt(["--store", path, "gc", "--catalog"])
    assert "catalog: compacted from" in p.stdout, p.stdout
    assert tree_state(path) != was


def test_holders_in_this_process_and_another_follow_it(dropped, tmp_path):
    """A Store held across a compaction (another Store object, another thread, another
    process) reads and writes the new catalog; a thread inside a transaction when it
    was swapped is told to open the store again, and once out, follows too."""
    path = _copy(dropped, tmp_path / "s")
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, incbt
            s = incbt.open({path!r})
            n = s.sql("SELECT count(*) AS n FROM daily")["n"][0].as_py()
            print("ready", flush=True)
            sys.stdin.readline()
            assert s.sql("SELECT count(*) AS n FROM daily")["n"][0].as_py() == n
            r = s.backtest("sma_cross", {{"fast": 7, "slow": 40}})
            assert r.metrics.num_rows > 0 and s.verify().ok
            print("done", flush=True)
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout.readline().strip() == "ready"
    a = incbt.open(path)
    before = a.sql("SELECT * FROM metrics ORDER BY run_id, instrument")
    run_incbt(["--store", path, "gc", "--catalog"])
    out, _ = child.communicate("go\n", timeout=120)
    assert child.returncode == 0 and out.strip() == "done"
    ids = ", ".join(f"'{r}'" for r in set(before["run_id"].to_pylist()))
    got = a.sql(f"SELECT * FROM metrics WHERE run_id IN ({ids}) ORDER BY run_id, instrument")
    assert got.equals(before)  # the runs of before, as they were
    assert (
        a.sql("SELECT count(DISTINCT run_id) AS n FROM metrics")["n"][0].as_py()
        == len(set(before["run_id"].to_pylist())) + 1
    )  # and the child's, made through the new one
    assert a.verify().ok

    # in this process: a thread inside a read when the catalog is swapped is told so if
    # it reads again inside it; another thread's read meanwhile waits for it to end, then
    # follows (it is in no transaction of the old file). Pages freed first, so that the
    # compaction is worth making (a catalog with little free is left as it is)
    a.sweep("breakout", {"lookback": list(range(5, 25))}, name="more")
    a.drop(sweep="more")
    inside, swapped, out, said = threading.Event(), threading.Event(), threading.Event(), []

    def reader() -> None:
        with a.catalog.env.read():
            inside.set()
            swapped.wait(60)
            try:
                with a.catalog.env.read():
                    pass
            except incbt.errors.StoreError as exc:
                said.append(str(exc))
            time.sleep(0.3)  # the main thread's read begins meanwhile: it waits
            out.set()

    t = threading.Thread(target=reader)
    t.start()
    inside.wait(60)
    run_incbt(["--store", path, "gc", "--catalog"])
    swapped.set()
    with a.catalog.env.read():
        assert out.is_set()
    t.join(60)
    assert said and "replaced since this process opened" in said[0], said
    assert a.verify().ok  # out of its transaction, the process follows


def test_threads_reading_through_a_compaction_all_follow_it(dropped, tmp_path):
    """Threads of one process reading one Store (a notebook's, a web app's) while another
    process compacts: a read begun after the swap waits for those still open on the old
    file, then follows. (They were refused instead whenever another thread had a read
    open: 3 threads running SQL failed ~3,000 times in the half second after a swap.)"""
    path = _copy(dropped, tmp_path / "s")
    s = incbt.open(path)
    errors: list[str] = []
    stop = threading.Event()
    done = [0, 0, 0]

    def loop(i: int) -> None:
        while not stop.is_set():
            try:
                s.sql("SELECT count(*) AS n FROM metrics")
                done[i] += 1
            except Exception as exc:  # noqa: BLE001 - each one counted and said below
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(2):
            time.sleep(0.3)
            p = run_incbt(["--store", path, "gc", "--catalog"])
            assert p.returncode == 0, p.stderr
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, (len(errors), errors[0])
    assert all(done) and s.verify().ok


# the steps of a compaction a kill lands after (the hook in the child)
POINTS = ("probe", "copied", "stamped", "swapped", "cleaned")

CHILD = """
import os, signal, sys
import lmdb

import incbt
import incbt.catalog.compact as cc

point = sys.argv[2]
def die():
    os.kill(os.getpid(), signal.SIGKILL)

real_stamp, real_exchange = cc._stamp, cc.exchange
def stamp(*a, **k):
    if point == "copied":
        die()
    real_stamp(*a, **k)
    if point == "stamped":
        die()
swapped = []
def exchange(a, b):
    if point == "probe":
        die()
    real_exchange(a, b)
    if b.endswith("catalog"):
        swapped.append(b)
        if point == "swapped":
            die()
cc._stamp, cc.exchange = stamp, exchange
real_leftover = cc.leftover
def leftover(root):
    real_leftover(root)
    if point == "cleaned" and swapped:  # the old catalog deleted, not yet followed
        die()
cc.leftover = leftover
incbt.open(sys.argv[1]).gc(catalog=True)
"""


@pytest.mark.parametrize("point", POINTS)
def test_a_kill_at_each_step_leaves_a_whole_catalog(dropped, tmp_path, point):
    path = _copy(dropped, tmp_path / "s")
    s = incbt.open(path)
    s.gc()  # the rest of gc first: what the kill may leave differs by the compaction only
    was = _dump(s)
    close_env(os.path.join(path, "catalog"))
    r = subprocess.run([sys.executable, "-c", CHILD, path, point], capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert r.returncode == -signal.SIGKILL, r.stderr
    # a reader first (it leaves what it finds), then a writer, which clears what is left
    p = run_incbt(["--store", path, "status"])
    assert p.returncode == 0, p.stderr
    s = incbt.open(path)
    seqs = _compaction_seqs(s)
    assert len(seqs) == (1 if point in ("swapped", "cleaned") else 0)
    assert _without_compaction(_dump(s), seqs) == _without_compaction(was, seqs)
    assert s.verify().ok
    s.backtest("sma_cross", {"fast": 6, "slow": 40})  # a writer: the leftover goes
    assert not os.path.exists(os.path.join(path, COPY_DIR))
    g = s.gc(catalog=True)  # and the next compaction completes
    assert g.catalog.bytes_after <= g.catalog.bytes_before and s.verify().ok


@pytest.mark.parametrize("point", ["copied", "swapped"])
def test_status_says_the_catalog_copy_a_killed_compaction_left(dropped, tmp_path, point):
    """Found by QA 2026-12-08: a `gc --catalog` killed after its copy (or after the swap,
    the old catalog then in its place: as big as the catalog, 703 MB for a big sweep's)
    left `catalog.compact/`, and `incbt status`, which says the files an interrupted
    command left in tmp/, said nothing of it."""
    path = _copy(dropped, tmp_path / "s")
    r = subprocess.run([sys.executable, "-c", CHILD, path, point], capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert r.returncode == -signal.SIGKILL, r.stderr
    left = os.path.join(path, COPY_DIR)
    size = sum(os.path.getsize(os.path.join(left, f)) for f in os.listdir(left))
    assert os.path.getsize(os.path.join(left, "data.mdb")) > 0
    p = run_incbt(["--store", path, "status"])
    said = " ".join(p.stderr.split()) + " " + " ".join(p.stdout.split())
    assert p.returncode == 0, said
    mib = f"{size / 2**20:,.1f} MiB"
    assert f"{mib} in {COPY_DIR}/ from an interrupted `incbt gc --catalog`" in said, said
    assert "will be removed by the next write" in said, said
    incbt.open(path).backtest("sma_cross", {"fast": 6, "slow": 40})  # a writer
    p = run_incbt(["--store", path, "status"])
    assert COPY_DIR not in p.stdout + p.stderr


def test_a_catalog_folder_linked_elsewhere_is_compacted_there(dropped, tmp_path):
    """A store whose ``catalog`` is a symbolic link to a folder on another disk (a fast
    one, say): the copy is made beside the real folder, the link stays a link."""
    path = _copy(dropped, tmp_path / "s")
    fast = tmp_path / "fast"
    fast.mkdir()
    os.rename(os.path.join(path, "catalog"), fast / "catalog")
    os.symlink(fast / "catalog", os.path.join(path, "catalog"))
    s = incbt.open(path)
    was = _dump(s)
    s.gc()
    before = _dump(s)
    g = s.gc(catalog=True)
    assert g.catalog.bytes_after < g.catalog.bytes_before
    assert os.path.islink(os.path.join(path, "catalog"))
    assert sorted(os.listdir(fast)) == ["catalog"]  # no copy or old catalog left beside it
    seqs = _compaction_seqs(s)
    assert _without_compaction(_dump(s), seqs) == _without_compaction(before, seqs)
    assert was[b"runs"] == before[b"runs"] and s.verify().ok


@pytest.mark.parametrize("where", ["lock file", "stamp"])
def test_a_disk_filling_as_the_copy_is_stamped_leaves_no_copy(
    dropped, tmp_path, monkeypatch, where
):
    """The disk filling after the copy was written, as it is opened to add the event (its
    lock file) or as the event is committed: said as the store's disk filling, and the
    copy is deleted at once. (The copy was left on the full disk, and the message named
    it "the store's catalog (.../catalog.compact)", a folder the user never made, with
    "Nothing was changed".)"""
    import errno

    import incbt.catalog.env as env_mod

    path = _copy(dropped, tmp_path / "s")
    s = incbt.open(path)
    s.gc()  # the rest of gc first: what follows is the compaction alone
    was = _dump(s)
    if where == "lock file":
        real = env_mod._room_for_lock

        def room(lock: str, had: bool) -> None:
            if COPY_DIR in lock:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real(lock, had)

        monkeypatch.setattr(env_mod, "_room_for_lock", room)
    else:
        import incbt.catalog as catalog_mod

        real_event = catalog_mod.Catalog.append_event

        def event(self, txn, kind, command, summary=None, *a, **k):
            if "catalog_bytes_before" in (summary or {}):  # the copy's event only
                raise lmdb.Error(f"{path}: No space left on device")
            return real_event(self, txn, kind, command, summary, *a, **k)

        monkeypatch.setattr(catalog_mod.Catalog, "append_event", event)
    with pytest.raises(incbt.errors.SetupError) as info:
        s.gc(catalog=True)
    msg = str(info.value)
    assert "filled while the catalog was copied" in msg and COPY_DIR not in msg, msg
    assert not os.path.exists(os.path.join(path, COPY_DIR))
    monkeypatch.undo()
    assert _without_compaction(_dump(s), set()) == _without_compaction(was, set())
    assert s.gc(catalog=True).catalog.bytes_after > 0 and s.verify().ok


def test_too_little_room_says_the_room_it_needs(dropped, tmp_path, monkeypatch):
    """Refused for want of room: the message says all it needs, the copy and the margin
    beside it (it said the copy's bytes alone, fewer than those it said were free)."""
    import incbt.catalog.compact as cc

    path = _copy(dropped, tmp_path / "s")
    s = incbt.open(path)
    s.gc()
    need = cc.used_bytes(s.catalog.env.env)
    real = os.statvfs

    class Full:
        f_frsize = 1
        f_bavail = need + cc.SPARE // 2  # more than the copy, less than it with the margin

    monkeypatch.setattr(cc.os, "statvfs", lambda p: Full if COPY_DIR not in p else real(p))
    with pytest.raises(incbt.errors.SetupError) as info:
        s.gc(catalog=True)
    msg = str(info.value)
    assert f"{need:,} bytes in use and needs {cc.SPARE:,} more" in msg, msg
    assert not os.path.exists(os.path.join(path, COPY_DIR))


def test_a_catalog_with_little_free_is_left_as_it_is(dropped, tmp_path):
    """A compaction frees a tenth of the file and 64 KiB, or it is not made: no copy,
    no swap, no event (QA 2026-12-07: every gc --catalog rewrote a compact catalog,
    logged it and made every process holding the store follow it)."""
    path = _copy(dropped, tmp_path / "s")
    s = incbt.open(path)
    assert not s.gc(catalog=True).catalog.skipped  # the dropped sweep's pages: freed
    mdb = os.path.join(path, "catalog", "data.mdb")
    with open(mdb, "rb") as f:
        was = f.read()
    g = s.gc(catalog=True)
    assert g.catalog.skipped and g.catalog.bytes_before == len(was)
    with open(mdb, "rb") as f:
        assert f.read() == was
    assert len(_compaction_seqs(s)) == 1
    p = run_incbt(["--store", path, "gc", "--catalog"])
    assert "left as it is (compacted once a tenth of it" in p.stdout, p.stdout
    p = run_incbt(["--store", path, "gc", "--catalog", "--dry-run"])
    assert "would be left as it is" in p.stdout, p.stdout


def test_status_says_when_the_catalog_has_room_to_give_back(dropped, tmp_path):
    """After a drop, `incbt status` (and store.status()) says the catalog's unused MiB and
    `incbt gc --catalog`; after the compaction it says nothing of it."""
    path = _copy(dropped, tmp_path / "s")
    s = incbt.open(path)
    before = s.status()
    assert before.catalog_unused_bytes > 0 and "gc(catalog=True)" in repr(before)
    p = run_incbt(["--store", path, "status"])
    said = p.stdout + p.stderr
    assert "of its file unused" in said and "`incbt gc --catalog`" in said, said
    s.gc(catalog=True)
    assert s.status().catalog_unused_bytes == 0
    p = run_incbt(["--store", path, "status"])
    assert "of its file unused" not in p.stdout + p.stderr
