"""Crashes and concurrency: kill -9 during ingest and gc, the write lock, readers during a write.

The crash tests run an ingest in a child process (``sys.executable -c``) on a
copy of a store that already holds data, and SIGKILL it: after a seeded random
delay spread over the ingest's measured duration, or at a chosen point of the
pipeline (a hook in the child kills it there). After every kill the store must
be consistent, hold exactly the bars of before or of after the ingest, be
cleaned up by ``recover``, and finish, when the ingest is run again, exactly
as an uninterrupted ingest does (same bars, events, changes and bucket files).
"""

from __future__ import annotations

import gzip
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pytest
from conftest import tree_state

import incbt
from incbt.bars.generate import generate, weekdays
from incbt.bars.schema import day_to_iso, iso_to_day
from incbt.catalog.env import close_env
from incbt.query import run_sql

START = "2024-01-25"  # 8 weekdays: Jan 25 .. Feb 5
DATES = [day_to_iso(d) for d in weekdays(iso_to_day(START), 8)]
GEN = dict(instruments=4, days=8, start=START, seed=9)
FLOATS = ("open", "high", "low", "close", "volume")
ALL_BARS = "SELECT * FROM bars ORDER BY instrument, ts"
N_RANDOM_KILLS = 15

# What both children share: die(), and kills at the n-th catalog write (before it,
# inside its transaction before the commit, or after it) and after a file removal.
HOOKS = r"""
import os, signal
from incbt.catalog.env import Env

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def kill_at(point, writes, removal):
    # writes: crash point -> (when, n), when one of before, inside, after; removal:
    # the crash point that dies right after a file is removed
    when, nth = writes.get(point, (None, 0))
    count = [0]
    real_write = Env.write
    def write(self, fn):
        count[0] += 1
        n = count[0]
        if when == "before" and n == nth:
            die()
        if when == "inside" and n == nth:
            def fn_then_die(txn, fn=fn):
                fn(txn)
                die()  # the transaction is complete but not committed
            return real_write(self, fn_then_die)
        out = real_write(self, fn)
        if when == "after" and n == nth:
            die()
        return out
    Env.write = write
    real_remove = os.remove
    def remove(path):
        real_remove(path)
        if point == removal:
            die()
    os.remove = remove
"""

# The child: open the store, say "ready", ingest, say "done <seconds>".
# argv: store, crash point ("" for none), warm-up store ("" for none), paths...
# A first ingest in a process spends most of its time loading code; the warm-up
# ingests the same files into a scratch store first, so that the timed ingest
# (and the random kills spread over it) is the ingest itself.
CHILD = (
    HOOKS
    + r"""
import sys, time
import incbt
import incbt.bars.ingest as ing

store, point, warm, paths = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
if warm:
    incbt.init(warm).ingest(paths)

kill_at(point, {"before-commit": ("before", 2), "inside-commit": ("inside", 2),
                "after-pending": ("after", 1), "after-commit": ("after", 2)}, "during-recover")

real_durable = ing.write_file
def write_file(table, groups, path):
    if point == "mid-file":  # half a file in its place (files are written in place)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"PAR1 half a file")
            f.flush()
            os.fsync(f.fileno())
        die()
    size = real_durable(table, groups, path)
    if point == "after-first-bucket":
        die()
    return size
ing.write_file = write_file

st = incbt.open(store)
print("ready", flush=True)
t = time.perf_counter()
st.ingest(paths)
print("done", time.perf_counter() - t, flush=True)
"""
)


# -- data and reference stores -------------------------------------------------


def copy_store(src: str, dst: str) -> str:
    """A copy of an idle store (without LMDB's lock file and the write lock)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("lock.mdb", "write.lock"))
    return dst


def norm(t: pa.Table) -> dict[str, np.ndarray]:
    out = {
        "instrument": np.array(t.column("instrument").to_pylist(), dtype=object),
        "ts": t.column("ts").combine_chunks().cast(pa.int64()).to_numpy(),
        "date": t.column("date").combine_chunks().cast(pa.int32()).to_numpy(),
    }
    for c in FLOATS:
        out[c] = t.column(c).combine_chunks().to_numpy().view(np.int64)
    return out


def same_bars(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return len(a["ts"]) == len(b["ts"]) and all(np.array_equal(a[c], b[c]) for c in a)


def catalog_view(st: incbt.Store) -> dict:
    """Everything the catalog says, minus event times (which differ run to run)."""
    q = {
        "events": "SELECT seq, kind, command, days_new, days_corrected, days_unchanged, rows, "
        "instruments, first_day, last_day FROM events ORDER BY seq",
        "changes": "SELECT * FROM changes ORDER BY seq, instrument, date",
        "files": "SELECT * FROM files ORDER BY path",
    }
    return {k: st.sql(v).to_pylist() for k, v in q.items()}


def bars_files(root: str) -> dict[str, bytes]:
    return tree_state(os.path.join(root, "bars"))


# The fold world: January is a 4-day base file and a 2-day append file, and the
# crash ingest's new day would be a 3rd file with at most 2 allowed: it folds.
FOLD_START = "2024-01-02"
FOLD_DATES = [day_to_iso(d) for d in weekdays(iso_to_day(FOLD_START), 7)]
FOLD_GEN = dict(instruments=4, days=7, start=FOLD_START, seed=19)
FOLD_ENV = {"INCBT_BUCKET_MAX_FILES": "2"}
# The parts world: the crash ingest's inputs as one CSV file, read in ~16 parts
PARTS_ENV = {"INCBT_INGEST_CHUNK_MB": "0.1"}


class World:
    """The template store (base days), the crash ingest's inputs, the reference after.

    ``fold``: the crash ingest folds every instrument's January (the child runs
    with ``FOLD_ENV``; in-process checks must set it too).
    """

    def __init__(
        self, root: str, fold: bool = False, one_file: bool = False, gz: bool = False
    ) -> None:
        self.root = root
        self.env = dict(os.environ) | (FOLD_ENV if fold else {}) | (PARTS_ENV if one_file else {})
        inputs = os.path.join(root, "inputs")
        if fold:
            d, g = FOLD_DATES, FOLD_GEN
            bases = [
                generate(os.path.join(root, "base1"), to_day=d[3], **g),
                generate(os.path.join(root, "base2"), from_day=d[4], to_day=d[5], **g),
            ]
            generate(inputs, from_day=d[6], **(g | {"instruments": 5}))
        else:
            bases = [generate(os.path.join(root, "base"), to_day=DATES[3], **GEN)]
            # 4 new days, with a 5th instrument that is new to the store
            generate(inputs, from_day=DATES[4], **(GEN | {"instruments": 5}))
            rev = generate(
                os.path.join(root, "rev"),
                from_day=DATES[1],
                to_day=DATES[2],
                revise=DATES[1:3],
                **GEN,
            )  # 2 corrected days (January buckets)
            for f in rev:
                shutil.copy(f, os.path.join(inputs, "rev-" + os.path.basename(f)))
        self.inputs = [inputs]
        if one_file:  # every input file in date order, as one file (a database export)
            names = sorted(os.listdir(inputs), key=lambda n: n.removeprefix("rev-"))
            one = os.path.join(root, "one.csv")
            with open(one, "w") as out:
                for k, n in enumerate(names):
                    with open(os.path.join(inputs, n)) as f:
                        head = f.readline()
                        out.write(head if k == 0 else "")
                        out.write(f.read())
            self.inputs = [one]
            if gz:  # compressed: cut in parts as it is decompressed
                with open(one, "rb") as f, gzip.open(one + ".gz", "wb") as z:
                    z.write(f.read())
                self.inputs = [one + ".gz"]
        self.input_bytes = sum(os.path.getsize(os.path.join(inputs, f)) for f in os.listdir(inputs))
        self.one_file = one_file
        self.template = os.path.join(root, "template")
        st = incbt.init(self.template)
        for base in bases:
            st.ingest(base)
        if fold:
            assert len(st.sql("SELECT path FROM files WHERE instrument = 'S0000'")) == 2
        self.before = norm(st.sql(ALL_BARS))
        self.base_seq = len(st.log())
        self.before_files = bars_files(self.template)
        close_env(os.path.join(st.path, "catalog"))
        # the reference: the same ingest, uninterrupted, in a child like the crashing ones
        self.after_path = copy_store(self.template, os.path.join(root, "after"))
        out = self.run_child(self.after_path, "", warm=True)
        assert out.returncode == 0, out.stderr
        self.duration = float(out.stdout.split()[-1])  # of a warm ingest
        ref = incbt.open(self.after_path)
        self.after = norm(ref.sql(ALL_BARS))
        self.after_catalog = catalog_view(ref)
        self.after_files = bars_files(self.after_path)
        assert not same_bars(self.before, self.after)
        self.n = 0

    def fresh(self) -> str:
        self.n += 1
        return copy_store(self.template, os.path.join(self.root, f"trial-{self.n}"))

    def child(self, store: str, point: str, warm: bool = False) -> subprocess.Popen:
        scratch = store + "-warm-up" if warm else ""
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, store, point, scratch, *self.inputs],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )

    def run_child(self, store: str, point: str, warm: bool = False) -> subprocess.CompletedProcess:
        p = self.child(store, point, warm)
        out, err = p.communicate(timeout=60)
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(str(tmp_path_factory.mktemp("crash")))
    assert w.input_bytes > 300_000  # "a few hundred KB"
    return w


@pytest.fixture(scope="module")
def parts_world(tmp_path_factory):
    w = World(str(tmp_path_factory.mktemp("crash-parts")), one_file=True)
    from incbt.bars.ingest import PARTS_PER_CHUNK
    from incbt.bars.parts import split

    budget = int(float(PARTS_ENV["INCBT_INGEST_CHUNK_MB"]) * (1 << 20)) // PARTS_PER_CHUNK
    assert len(split(w.inputs[0], budget)) > 10
    return w


@pytest.fixture(scope="module")
def gz_world(tmp_path_factory):
    w = World(str(tmp_path_factory.mktemp("crash-gz")), one_file=True, gz=True)
    from incbt.bars.ingest import PARTS_PER_CHUNK

    budget = int(float(PARTS_ENV["INCBT_INGEST_CHUNK_MB"]) * (1 << 20)) // PARTS_PER_CHUNK
    assert os.path.getsize(w.inputs[0]) > budget  # compressed, still several parts
    return w


@pytest.fixture(scope="module")
def fold_world(tmp_path_factory):
    w = World(str(tmp_path_factory.mktemp("crash-fold")), fold=True)
    ref = incbt.open(w.after_path)
    folded = ref.sql("SELECT summary FROM events ORDER BY seq DESC LIMIT 1")["summary"][0]
    assert '"buckets_folded": 4' in folded.as_py()  # the 4 old instruments' January
    return w


# -- the checks after a kill -----------------------------------------------


def check_consistent(world: World, path: str) -> tuple[str, int, int]:
    """The store at ``path`` after a crash: consistent, before or after; then recovered.

    Returns "before" or "after", the number of pending paths and of files recover removed.
    """
    st = incbt.open(path)
    cat = st.catalog
    with cat.env.read() as txn:
        current = cat.current_files(txn)
        pending = cat.pending(txn)
        seq = cat.last_seq(txn)
        entries = {i: list(cat.days(txn, i)) for i in cat.instruments(txn)}
        recorded = {r.path for r in cat.files(txn)}
    committed = {p for p in pending if p in recorded}
    # every current file exists; the days index agrees with the files and with SQL
    rows_by_file: dict[str, int] = {}
    for days in entries.values():
        for e in days:
            rows_by_file[e.file.hex()] = rows_by_file.get(e.file.hex(), 0) + e.rows
    assert rows_by_file == {f.hash: f.rows for f in current}, "days index vs current files"
    for f in current:
        assert os.path.isfile(os.path.join(path, f.path)), f"catalog lists missing {f.path}"
    sql = norm(st.sql(ALL_BARS))
    for inst, days in entries.items():
        b = st.bars(inst)
        sel = sql["instrument"] == inst
        assert np.array_equal(b.ts, sql["ts"][sel]), inst
        for c in FLOATS:
            assert np.array_equal(getattr(b, c).view(np.int64), sql[c][sel]), (inst, c)
        dates, counts = np.unique(sql["date"][sel], return_counts=True)
        assert [e.day for e in days] == dates.tolist()
        assert [e.rows for e in days] == counts.tolist()
        ends = np.cumsum(counts)
        for k, e in enumerate(days):
            assert e.first_ts == b.ts[ends[k] - counts[k]] and e.last_ts == b.ts[ends[k] - 1]
    # exactly before or exactly after, and the log says the same
    if same_bars(sql, world.before):
        state = "before"
        assert seq == world.base_seq
    else:
        assert same_bars(sql, world.after), "the store holds neither the old nor the new bars"
        state = "after"
        assert seq == world.base_seq + 1
        assert not pending, "a committed ingest left its intent record behind"
    # recover: uncommitted pending files go, nothing unreferenced stays under bars/
    removed = st.recover()
    assert not os.path.exists(os.path.join(path, "tmp")), "staged files left behind"
    with cat.env.read() as txn:
        assert cat.pending(txn) == []
        known = {r.path for r in cat.files(txn)}
    for p in pending:
        assert os.path.exists(os.path.join(path, p)) == (p in committed), p
    on_disk = set(bars_files(path))
    assert on_disk == {os.path.relpath(p, "bars") for p in known}, "unreferenced bar files"
    assert not os.path.exists(os.path.join(path, "tmp"))
    if state == "before":
        assert bars_files(path) == world.before_files
    return state, len(pending), removed


def finish_and_compare(world: World, path: str) -> None:
    """Run the ingest again to completion: the store equals the uninterrupted one."""
    st = incbt.open(path)
    st.ingest(world.inputs)
    assert same_bars(norm(st.sql(ALL_BARS)), world.after)
    assert catalog_view(st) == world.after_catalog
    assert bars_files(path) == world.after_files
    for inst in st.instruments():
        a, b = st.bars(inst), incbt.open(world.after_path).bars(inst)
        assert np.array_equal(a.ts, b.ts) and np.array_equal(a.day_ends, b.day_ends)
    close_env(os.path.join(st.path, "catalog"))


def kill_after(p: subprocess.Popen, delay: float) -> None:
    line = p.stdout.readline()
    assert line.strip() == "ready", line + p.stderr.read()
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)


# -- the tests ----------------------------------------------------------------


def test_kill_at_random_moments(world):
    states = kill_at_random_moments(world, 20240125, N_RANDOM_KILLS)
    # the first kill comes before the child has even read its inputs
    assert states[0] == "before", states
    print(f"ingest took {world.duration:.3f} s; states: {states}")


@pytest.mark.parametrize(
    "point, state",
    [
        ("after-pending", "before"),  # intent recorded, no file written yet
        ("mid-file", "before"),  # a half-written file in its place, listed as pending
        ("after-first-bucket", "before"),  # an orphan bucket file in bars/
        ("before-commit", "before"),  # every bucket written and fsynced
        ("inside-commit", "before"),  # the commit transaction built, never committed
        ("after-commit", "after"),  # committed; the staging folder not yet removed
    ],
)
def test_kill_at_each_step(world, point, state):
    path = world.fresh()
    r = world.run_child(path, point)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert "done" not in r.stdout
    assert check_consistent(world, path)[0] == state
    finish_and_compare(world, path)


def test_kill_during_recovery(world):
    """A writer dies leaving orphans; the next dies while removing them; then all is well."""
    path = world.fresh()
    assert world.run_child(path, "after-first-bucket").returncode == -signal.SIGKILL
    r = world.run_child(path, "during-recover")
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert check_consistent(world, path)[0] == "before"
    finish_and_compare(world, path)


def kill_at_random_moments(world: World, seed: int, n: int = 8) -> list:
    """``n`` ingests killed at stratified random moments, each checked, then finished;
    returns the state each kill left ("before" or "after"). The world's settings must
    be in the caller's environment too (monkeypatch), for the in-process checks."""
    rng = random.Random(seed)
    states = []

    def kill_once(delay: float) -> None:
        path = world.fresh()
        p = world.child(path, "", warm=True)
        kill_after(p, delay)
        states.append(check_consistent(world, path)[0])
        finish_and_compare(world, path)
        shutil.rmtree(path)

    for i in range(n):
        kill_once(world.duration * 1.3 * (i + rng.random()) / n)
    # a loaded machine can stretch an ingest past 1.3x its measured duration: then kill
    # later still (2x, 4x, 8x), so that a kill after the commit is always checked too
    for factor in (2, 4, 8):
        if states[-1] == "after":
            break
        kill_once(world.duration * factor)
    return states


def test_kill_during_a_fold_at_random_moments(fold_world, monkeypatch):
    for k, v in FOLD_ENV.items():
        monkeypatch.setenv(k, v)
    states = kill_at_random_moments(fold_world, 20240102)
    assert states[0] == "before", states


def test_kill_a_big_file_read_in_parts_at_random_moments(parts_world, monkeypatch):
    """One input file of ~16 parts (copies of each under the store's tmp/ while read)."""
    for k, v in PARTS_ENV.items():
        monkeypatch.setenv(k, v)
    states = kill_at_random_moments(parts_world, 20240131)
    assert states[0] == "before" and states[-1] == "after", states


def test_kill_a_big_gz_file_cut_in_parts_at_random_moments(gz_world, monkeypatch):
    """One .csv.gz cut in parts as it is decompressed (each a file under the store's
    tmp/ until read): a kill leaves them behind, and the next writer removes them."""
    for k, v in PARTS_ENV.items():
        monkeypatch.setenv(k, v)
    states = kill_at_random_moments(gz_world, 20240201)
    assert states[0] == "before" and states[-1] == "after", states


@pytest.mark.parametrize(
    "point, state",
    [
        ("mid-file", "before"),
        ("after-first-bucket", "before"),
        ("before-commit", "before"),
        ("inside-commit", "before"),
        ("after-commit", "after"),
    ],
)
def test_kill_a_fold_at_each_step(fold_world, monkeypatch, point, state):
    for k, v in FOLD_ENV.items():
        monkeypatch.setenv(k, v)
    path = fold_world.fresh()
    r = fold_world.run_child(path, point)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert check_consistent(fold_world, path)[0] == state
    finish_and_compare(fold_world, path)


# -- gc -------------------------------------------------------------------------

# The child: open the store, run gc; a hook kills it at a chosen point. On a store
# with nothing pending, gc's first write is its commit and its second clears the intent.
GC_CHILD = (
    HOOKS
    + r"""
import sys
import incbt

store, point = sys.argv[1], sys.argv[2]
# inside-commit: the transaction complete, not committed; before-clear: every file
# deleted, the intent not yet cleared; after-commit: committed, no file deleted yet
kill_at(point, {"inside-commit": ("inside", 1), "before-clear": ("before", 2),
                "after-commit": ("after", 1)}, "mid-delete")

s = incbt.open(store).gc()
print("done", s.files_removed, flush=True)
"""
)

GC_VIEW = {
    "events": "SELECT seq, kind, command, summary FROM events ORDER BY seq",
    "files": "SELECT * FROM files ORDER BY path",
}


def run_gc_child(path: str, point: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", GC_CHILD, path, point], capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def gc_world(world):
    """The crash world's "after" store (superseded files in it) and the same store
    after an uninterrupted gc."""
    ref = copy_store(world.after_path, os.path.join(world.root, "gc-ref"))
    r = run_gc_child(ref, "")
    assert r.returncode == 0 and int(r.stdout.split()[-1]) >= 2, r.stderr
    st = incbt.open(ref)
    out = {
        "view": {k: st.sql(v).to_pylist() for k, v in GC_VIEW.items()},
        "files": bars_files(ref),
        "as_of": {e: norm(st.sql(ALL_BARS, as_of=e)) for e in range(world.base_seq + 1, 4 + 1)},
        "horizon": st.gc(dry_run=True).horizon,
    }
    assert out["horizon"] == world.base_seq + 1
    assert set(out["files"]) < set(world.after_files)
    close_env(os.path.join(ref, "catalog"))
    return out


@pytest.mark.parametrize(
    "point, state",
    [
        ("inside-commit", "before"),
        ("after-commit", "after"),  # the files dropped from the catalog, all still on disk
        ("mid-delete", "after"),  # one file deleted
        ("before-clear", "after"),  # all deleted, the intent left
    ],
)
def test_kill_gc_at_each_step(world, gc_world, point, state):
    path = copy_store(world.after_path, os.path.join(world.root, f"gc-{point}"))
    r = run_gc_child(path, point)
    assert r.returncode == -signal.SIGKILL, r.stderr
    st = incbt.open(path)
    cat = st.catalog
    with cat.env.read() as txn:
        seq = cat.last_seq(txn)
        doomed = cat.gc_pending(txn)
        known = {rec.path for rec in cat.files(txn)}
        current = cat.current_files(txn)
    # the current bars never change; the log says before or after
    assert same_bars(norm(st.sql(ALL_BARS)), world.after)
    for f in current:
        assert os.path.isfile(os.path.join(path, f.path)), f.path
    assert seq == world.base_seq + (1 if state == "before" else 2)
    if state == "before":
        assert doomed == [] and bars_files(path) == world.after_files
        assert len(known) == len(world.after_files)
    else:
        assert doomed and not set(doomed) & known
        # time travel from the horizon on already works; the leftovers are invisible
        for e, t in gc_world["as_of"].items():
            assert same_bars(norm(st.sql(ALL_BARS, as_of=e)), t), e
        with pytest.raises(incbt.errors.QueryError, match="incbt gc"):
            st.sql(ALL_BARS, as_of=world.base_seq)
    # the next writer finishes it; then gc again is exactly the uninterrupted gc
    st.recover()
    with cat.env.read() as txn:
        assert cat.gc_pending(txn) == []
    assert set(bars_files(path)) == {os.path.relpath(p, "bars") for p in known}
    st.gc()
    assert {k: st.sql(v).to_pylist() for k, v in GC_VIEW.items()} == gc_world["view"]
    assert bars_files(path) == gc_world["files"]
    assert same_bars(norm(st.sql(ALL_BARS)), world.after)
    close_env(os.path.join(path, "catalog"))
    shutil.rmtree(path)


# -- the write lock -------------------------------------------------------------

HOLD_LOCK = r"""
import sys
from incbt.catalog.lock import write_lock
with write_lock(sys.argv[1], 5):
    print("locked", flush=True)
    sys.stdin.read()  # hold it until the parent closes our stdin
"""


def _hold_lock(path: str) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout.readline().strip() == "locked"
    return p


def test_second_writer_fails_naming_the_holder(world, monkeypatch):
    path = world.fresh()
    holder = _hold_lock(path)
    try:
        monkeypatch.setenv("INCBT_LOCK_TIMEOUT", "0.5")
        st = incbt.open(path)
        assert st.settings["lock_timeout"] == 0.5
        before = tree_state(path)
        t = time.monotonic()
        with pytest.raises(incbt.StoreLockedError) as info:
            st.ingest(world.inputs)
        assert time.monotonic() - t >= 0.5
        msg = str(info.value)
        assert f"pid {holder.pid} " in msg and "INCBT_LOCK_TIMEOUT" in msg, msg
        assert tree_state(path) == before
        # the CLI: exit 75 (busy: try again later), one line naming the holder
        env = dict(os.environ, INCBT_LOCK_TIMEOUT="0.3")
        r = subprocess.run(
            [
                os.path.join(os.path.dirname(sys.executable), "incbt"),
                "--store",
                path,
                "ingest",
                *world.inputs,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert r.returncode == 75, r.stderr
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
        assert f"pid {holder.pid} " in r.stderr
        assert tree_state(path) == before
    finally:
        holder.communicate(input="", timeout=30)
    assert holder.returncode == 0
    # the holder is gone: the ingest goes through
    s = incbt.open(path).ingest(world.inputs)
    assert s.seq == world.base_seq + 1


def test_readers_and_dry_runs_never_wait_for_a_writer(world):
    """status, update --dry-run and drop --dry-run read the catalog while another process
    holds the write lock; a writer waiting for it says whom it waits for."""
    path = world.fresh()
    incbt.open(path).backtest("sma_cross", {"fast": 4, "slow": 20})
    exe = os.path.join(os.path.dirname(sys.executable), "incbt")
    holder = _hold_lock(path)
    try:
        env = dict(os.environ, INCBT_LOCK_TIMEOUT="2")
        for args in (["status"], ["update", "--dry-run"], ["drop", "--dry-run", "0"]):
            t = time.monotonic()
            r = subprocess.run([exe, "--store", path, *args], capture_output=True, text=True,
                               env=env, timeout=60)
            assert time.monotonic() - t < 2 and "waiting" not in r.stderr, (args, r.stderr)
            assert r.returncode in (0, 1) and "is being written" not in r.stderr, r.stderr
        r = subprocess.run([exe, "--store", path, "update"], capture_output=True, text=True,
                           env=env, timeout=60)
        assert r.returncode == 75 and "is being written by pid" in r.stderr
        assert f"waiting for the store's write lock, held by pid {holder.pid} " in r.stderr
    finally:
        holder.communicate(input="", timeout=30)


def _ingest_once_released(holder, st, inputs):
    """``st.ingest(inputs)`` while ``holder`` lets the lock go 1 s in: (its summary,
    the seconds it took)."""
    release = threading.Timer(1.0, lambda: holder.stdin.close())
    t = time.monotonic()
    release.start()
    try:
        s = st.ingest(inputs)
    finally:
        release.join()
        holder.wait(timeout=30)
    return s, time.monotonic() - t


def test_second_writer_waits_for_the_lock(world, monkeypatch):
    path = world.fresh()
    holder = _hold_lock(path)
    monkeypatch.setenv("INCBT_LOCK_TIMEOUT", "20")
    st = incbt.open(path)
    s, took = _ingest_once_released(holder, st, world.inputs)
    assert took >= 0.9
    assert s.seq == world.base_seq + 1
    assert same_bars(norm(st.sql(ALL_BARS)), world.after)


def test_a_write_lock_file_removed_under_its_holder_still_excludes(world, monkeypatch):
    """QA 2026-12-06: `rm write.lock` while a writer held it (what one does with a lock
    file that looks stale) let a second writer in beside it, and a run lost its rows
    for good. The catalog's data file is locked too: the second waits, then writes."""
    path = world.fresh()
    holder = _hold_lock(path)
    os.remove(os.path.join(path, "write.lock"))
    from incbt.catalog.lock import held_by

    assert held_by(path) == "a writer whose write.lock was removed"
    monkeypatch.setenv("INCBT_LOCK_TIMEOUT", "0")
    with pytest.raises(incbt.StoreLockedError, match="a writer whose write.lock was removed"):
        incbt.open(path).ingest(world.inputs)
    monkeypatch.setenv("INCBT_LOCK_TIMEOUT", "20")
    s, took = _ingest_once_released(holder, incbt.open(path), world.inputs)
    assert took >= 0.9 and s.seq == world.base_seq + 1


def test_lock_timeout_raised_in_the_process_is_taken_by_an_open_store(world, monkeypatch):
    """QA 2026-12-08: a notebook's write refused ("Wait for it to finish, or raise
    INCBT_LOCK_TIMEOUT"), the variable raised in its process as said, and the store it
    had open went on waiting the old time (read once, when it was opened)."""
    path = world.fresh()
    holder = _hold_lock(path)
    monkeypatch.setenv("INCBT_LOCK_TIMEOUT", "0")
    st = incbt.open(path)
    with pytest.raises(incbt.StoreLockedError, match="raise INCBT_LOCK_TIMEOUT"):
        st.ingest(world.inputs)
    monkeypatch.setenv("INCBT_LOCK_TIMEOUT", "20")
    s, _ = _ingest_once_released(holder, st, world.inputs)
    assert s.seq == world.base_seq + 1 and st.settings["lock_timeout"] == 20


def test_a_dead_holder_leaves_no_lock(world, monkeypatch):
    """flock dies with its holder: SIGKILL the holder, the next writer gets the lock."""
    path = world.fresh()
    holder = _hold_lock(path)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    monkeypatch.setenv("INCBT_LOCK_TIMEOUT", "0.5")
    assert incbt.open(path).ingest(world.inputs).seq == world.base_seq + 1


# -- a reader during writes ---------------------------------------------------------

WRITE_DAYS = r"""
import sys
import incbt
st = incbt.open(sys.argv[1])
print("ready", flush=True)
for batch in sys.argv[2:]:
    st.ingest(batch.split(","))
"""

STATE_SQL = {
    "seq": "SELECT max(seq) AS v FROM events",
    "changes": "SELECT count(*) AS v FROM changes",
    "files": "SELECT count(*) AS v FROM files",
    "bars": "SELECT count(*) AS v FROM bars",
    "volume": "SELECT sum(volume) AS v FROM bars",  # whole numbers: an exact sum
    "days": "SELECT count(DISTINCT date) AS v FROM bars",
}


def read_state(st: incbt.Store) -> tuple:
    """Counts of one consistent view of the store (one session, one read transaction)."""
    ctx = st.session()
    return tuple(run_sql(ctx, q).column("v")[0].as_py() for q in STATE_SQL.values())


def test_reader_sees_before_or_after_never_between(world):
    inputs = sorted(os.path.join(world.inputs[0], f) for f in os.listdir(world.inputs[0]))
    batches = [[f] for f in inputs if "rev-" not in f]  # one new day per ingest
    batches.append([f for f in inputs if "rev-" in f])  # then the corrections
    # the states a reader may see: after each ingest (known from a reference run)
    ref_path = world.fresh()
    ref = incbt.open(ref_path)
    allowed = [read_state(ref)]
    lengths = [{i: len(ref.bars(i)) for i in ref.instruments()}]  # before, after each ingest
    for b in batches:
        ref.ingest(b)
        allowed.append(read_state(ref))
        lengths.append({i: len(ref.bars(i)) for i in ref.instruments()})
    insts = sorted(lengths[-1])
    allowed_lengths = {i: {0} | {n.get(i, 0) for n in lengths} for i in insts}
    by_seq = {s[0]: s for s in allowed}
    assert len(by_seq) == len(batches) + 1

    path = world.fresh()
    st = incbt.open(path)
    child = subprocess.Popen(
        [sys.executable, "-c", WRITE_DAYS, path, *[",".join(b) for b in batches]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    while True:
        running = child.poll() is None
        state = read_state(st)
        assert by_seq.get(state[0]) == state, f"a state between two commits: {state}"
        for i in insts:  # each bars() call reads one state too (one without i: unknown)
            try:
                n = len(st.bars(i))
            except incbt.NotFoundError:
                n = 0
            assert n in allowed_lengths[i], i
        seen.append(state[0])
        if not running:
            break
    _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert seen[-1] == allowed[-1][0] and seen == sorted(seen)
    print(f"{len(seen)} reads saw events {sorted(set(seen))}")


# A child that ingests, then takes LMDB's write mutex and is killed holding it.
INGEST_THEN_DIE_WRITING = r"""
import os, signal, sys
import incbt
st = incbt.open(sys.argv[1])
st.ingest(sys.argv[2])
txn = st.catalog.env.env.begin(write=True)  # LMDB's write mutex (kept: a dropped txn aborts)
os.kill(os.getpid(), signal.SIGKILL)
"""
_LOCK_MAGIC = 0xBEEFC0DE  # LMDB's lock file: magic (u32) at 0, the readers' txn id (u64) at 48


def test_readers_see_a_commit_whose_writer_died_before_publishing_it(world):
    """A writer killed after its meta page was written but before it set the readers'
    transaction id (LMDB publishes the id last, after a synchronous meta write of a few
    ms; the driver-kill sweep test hit that window once in ~35 runs): the commit is
    durable and the next writer builds on it, so readers must see it too, at once."""
    import struct

    path = world.fresh()
    st = incbt.open(path)
    env = st.catalog.env.env
    events = len(st.log())
    child = subprocess.run(
        [sys.executable, "-c", INGEST_THEN_DIE_WRITING, path, *world.inputs],
        capture_output=True,
        text=True,
        env=world.env,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    last = env.info()["last_txnid"]  # the newest meta page: the child's ingest committed
    # put the crash state back: the readers' id one behind the newest meta page, as
    # when the writer dies between writing that page and publishing its id
    lock = os.path.join(path, "catalog", "lock.mdb")
    with open(lock, "r+b") as f:
        head = f.read(56)
        magic, txnid = struct.unpack_from("<I", head, 0)[0], struct.unpack_from("<Q", head, 48)[0]
        if magic != _LOCK_MAGIC or txnid != last:
            pytest.skip("LMDB's lock file is not laid out as this test expects")
        f.seek(48)
        f.write(struct.pack("<Q", last - 1))
    with env.begin() as txn:
        assert txn.id() == last - 1  # LMDB alone would show readers the older state
    assert len(st.log()) == events + 1  # incbt's reads see the ingest
    with env.begin() as txn:
        assert txn.id() == last  # and the id is repaired for every process
    assert same_bars(norm(st.sql(ALL_BARS)), world.after)
    assert check_consistent(world, path)[0] == "after"
    again = st.ingest(world.inputs[0])  # the next writer agrees: nothing left to do
    assert again.days_new == again.days_corrected == 0 and len(st.log()) == events + 1


def test_another_thread_waits_for_the_lock_as_another_process_does(world, monkeypatch):
    """Found by QA 2026-12-05: the lock was re-entrant for every thread of the process
    that held it, so an update and a backtest on two threads of one notebook wrote at
    once (missing result files, wrong rows, bars files the catalog lists missing). Now
    it is re-entrant within its thread only."""
    from incbt.catalog.lock import write_lock

    path = world.fresh()
    st = incbt.open(path)
    monkeypatch.setenv("INCBT_LOCK_TIMEOUT", "0.3")
    seen: dict[str, object] = {}

    def other() -> None:
        try:
            st.ingest(world.inputs)
        except incbt.StoreLockedError as exc:
            seen["error"] = exc
        else:
            seen["ingested"] = True

    with write_lock(path, 5):
        with write_lock(path, 5):  # this thread: re-entered
            pass
        t = threading.Thread(target=other)
        t.start()
        t.join(timeout=30)
    assert "is being written by another thread of this process (pid" in str(seen.get("error")), seen
    monkeypatch.setenv("INCBT_LOCK_TIMEOUT", "5")
    assert st.ingest(world.inputs).seq == world.base_seq + 1  # once it is free
