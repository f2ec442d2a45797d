"""The machine's setup getting in the way: a cache folder that cannot be written, a
full disk, a "~" in a path. None is the data's or the strategy's fault: nothing is
recorded as a failure, nothing is half-written, and the message says what to change
(found by a QA pass on a hostile environment, 2026-12-06)."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import warnings

import pytest
from cli_process import run_incbt

import incbt
from incbt.bars.generate import generate
from incbt.errors import SetupError, map_dependency_error

INCBT = os.path.join(os.path.dirname(sys.executable), "incbt")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCBT_")}
    return env | extra


@pytest.fixture
def store(tmp_path):
    generate(str(tmp_path / "d"), instruments=2, days=3, seed=4)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    return s


def test_an_unwritable_numba_cache_is_no_strategy_failure(store, tmp_path):
    """NUMBA_CACHE_DIR under a file: every pair was recorded as sma_cross failing
    ("the step raised NotADirectoryError"), and not retried once the folder was fixed.
    The kernels compile into a folder of the process's own, said once."""
    (tmp_path / "a_file").write_text("")
    env = _env(INCBT_STORE=store.path, NUMBA_CACHE_DIR=str(tmp_path / "a_file" / "cache"))
    p = run_incbt(["backtest", "sma_cross", "-p", "fast=3", "-p", "slow=20"], env=env)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("NUMBA_CACHE_DIR") == 1 and "Not a directory" in p.stderr, p.stderr
    assert store.sql("SELECT count(*) AS n FROM failed")["n"][0].as_py() == 0
    assert store.sql("SELECT count(*) AS n FROM daily")["n"][0].as_py() == 2 * 3


def test_numba_disable_jit_is_refused_before_anything_is_ingested_or_computed(store, tmp_path):
    """NUMBA_DISABLE_JIT=1 made every step raise in plain Python, recorded as each strategy
    failing: an update dropped every pair's stored days for good, verify called a sound
    store corrupt (QA 2026-12-07). Now each command says the setting and changes nothing;
    a dry run still says what it would do."""
    from conftest import tree_state

    store.backtest("sma_cross", {"fast": 3, "slow": 20})
    generate(str(tmp_path / "new"), instruments=2, days=4, seed=4, from_day="2024-01-04")
    before = tree_state(store.path)
    env = _env(INCBT_STORE=store.path, NUMBA_DISABLE_JIT="1")
    for args in (["update", str(tmp_path / "new")], ["verify"],
                 ["backtest", "breakout", "-p", "lookback=5"],
                 ["sweep", "sma_cross", "-g", "fast=3,4", "-g", "slow=20"]):
        p = run_incbt(args, env=env)
        assert p.returncode == 1 and "NUMBA_DISABLE_JIT is set" in p.stderr, (args, p.stderr)
        assert "differs" not in p.stderr and "failed" not in p.stdout, (args, p.stdout)
        assert tree_state(store.path) == before, args
    p = run_incbt(["update", "--dry-run", str(tmp_path / "new")], env=env)
    assert p.returncode == 0, p.stderr
    assert tree_state(store.path) == before
    p = run_incbt(["update", str(tmp_path / "new")], env=_env(INCBT_STORE=store.path))
    assert p.returncode == 0, p.stderr
    assert store.verify().ok
    assert store.sql("SELECT count(*) AS n FROM daily")["n"][0].as_py() == 2 * 4


def test_a_damaged_numba_cache_is_compiled_anew(store, tmp_path):
    """Numba's cache files of the kernels truncated or garbled: every command exited 3
    (Numba's unpickling error); now the damaged files go and the kernels compile anew,
    nothing recorded as the strategy failing (QA 2026-12-07)."""
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(os.environ["NUMBA_CACHE_DIR"], cache, dirs_exist_ok=True)
    env = _env(INCBT_STORE=store.path, NUMBA_CACHE_DIR=str(cache))
    p = run_incbt(["backtest", "sma_cross", "-p", "fast=3", "-p", "slow=20"], env=env)
    assert p.returncode == 0, p.stderr
    damaged = 0
    for k, f in enumerate(sorted(cache.glob("incbt_kernels_*/*.nb[ic]"))):
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 2] if k % 2 else bytes(reversed(data)))
        damaged += 1
    assert damaged >= 2
    p = run_incbt(["backtest", "sma_cross", "-p", "fast=4", "-p", "slow=20"], env=env)
    assert p.returncode == 0, p.stderr
    assert store.sql("SELECT count(*) AS n FROM failed")["n"][0].as_py() == 0
    assert store.verify().ok


def test_a_catalog_that_cannot_be_mapped_for_want_of_memory_is_no_damaged_store(tmp_path):
    """Under `ulimit -v`, LMDB's "Cannot allocate memory" was said with "restore the store
    from a backup" (QA 2026-12-07): the process's limit, said as such."""

    generate(str(tmp_path / "d"), instruments=1, days=2, seed=4)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    code = (
        "import resource, sys; from incbt.catalog.env import Env;"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 28, resource.RLIM_INFINITY));"
        f"Env({str(tmp_path / 's' / 'catalog')!r}, 1 << 40)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 1, p.stderr
    assert "SetupError" in p.stderr and "ulimit -v" in p.stderr and "backup" not in p.stderr


def test_a_command_without_the_memory_to_load_its_modules_says_so(tmp_path):
    """Under a `ulimit -v` too low to load its modules, the command ended with a traceback
    ending in MemoryError (or "failed to map segment from shared object"), then crashed
    in the interpreter's exit (exit 139; QA 2026-12-07). It says so in a line: exit 1."""
    code = (  # (the check of the limit before the imports set aside: their failure here)
        "import resource, sys; import incbt._entry as e; e.MIN_ADDRESS_SPACE_MIB = 0;"
        "resource.setrlimit(resource.RLIMIT_AS, ({limit}, resource.RLIM_INFINITY));"
        "sys.argv = ['incbt', '--store', sys.argv[1], 'status']; e.main()"
    )
    said = []
    for mib in (60, 120, 200):  # where the imports fail depends on the machine
        p = subprocess.run(
            [sys.executable, "-c", code.format(limit=mib << 20), str(tmp_path / "s")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        # loaded: a word on the store (there is none), exit 1, no traceback
        if "could not start" in p.stderr or "Traceback" in p.stderr or p.returncode != 1:
            said.append(mib)
            assert p.returncode == 1, (mib, p.returncode, p.stderr[-2000:])
            assert p.stderr.startswith("error: incbt could not start: out of memory"), p.stderr
            assert "Traceback" not in p.stderr and "ulimit -v" in p.stderr
    if not said:
        pytest.skip("every limit tried let the modules load here")


def test_a_command_under_too_low_an_address_space_limit_says_so_first(tmp_path):
    """Between ~800 and ~1150 MiB of `ulimit -v`, commands failed at random points:
    Arrow's allocator flooding stderr, then an abort or a segfault (QA 2026-12-07). A
    limit below what incbt needs is said before anything is loaded: exit 1, one line."""
    from incbt._entry import MIN_ADDRESS_SPACE_MIB

    code = (
        "import resource, sys; from incbt._entry import main;"
        "resource.setrlimit(resource.RLIMIT_AS, ({limit}, resource.RLIM_INFINITY));"
        "sys.argv = ['incbt', '--store', sys.argv[1], 'status']; main()"
    )
    for mib in (900, MIN_ADDRESS_SPACE_MIB - 1):
        p = subprocess.run(
            [sys.executable, "-c", code.format(limit=mib << 20), str(tmp_path / "s")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert p.returncode == 1, (mib, p.returncode, p.stderr[-2000:])
        assert p.stderr == (
            f"error: this process may use {mib:,} MiB of address space (`ulimit -v`); incbt "
            f"needs at least {MIN_ADDRESS_SPACE_MIB:,} MiB (Numba's compiler, Arrow's and the "
            "command's threads, the catalog's map), and below that it fails at random "
            "points. Nothing was read or written. Fix: raise the limit (`ulimit -v "
            "unlimited`, or at least 2 GiB)\n"
        ), p.stderr
        assert not (tmp_path / "s").exists()


def test_sql_under_an_address_space_limit_above_the_floor_runs(tmp_path):
    """At 2 GiB of `ulimit -v`, `incbt query` aborted, hung or blamed the query ("Failed
    to launch worker thread"): glibc's malloc reserved 64 MiB of address space an arena,
    up to 8 a core, for DataFusion's and Arrow's threads (QA 2026-12-07). Under a limit
    the command keeps malloc to 2 arenas: the query runs, every time."""
    import resource

    generate(str(tmp_path / "d"), instruments=5, days=10, seed=4)  # files for many threads
    store = str(tmp_path / "s")
    incbt.init(store).ingest(str(tmp_path / "d"))

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, resource.RLIM_INFINITY))

    for _ in range(3):  # its failures came at random (3 in 3 runs here, 2026-12-07)
        p = subprocess.run(
            [INCBT, "--store", store, "query", "SELECT count(*) AS n FROM bars", "--output",
             "csv"],
            capture_output=True, text=True, timeout=120, preexec_fn=limited, env=_env(),
        )  # fmt: skip
        assert p.returncode == 0 and p.stdout.split() == ['"n"', "19500"], (
            p.returncode, p.stderr[-2000:])


def test_a_closed_stdout_or_stderr_leaves_the_command_working(tmp_path):
    """`incbt update 2>&-` (a cron job's, a daemon's): faulthandler.enable() raised "sys.stderr
    is None" before anything, and every command exited 1 having done nothing, silently;
    with stdout closed (`>&-`) it ran, then exited 3 flushing it (QA 2026-12-07)."""
    store = str(tmp_path / "s")

    def closed(fds, *args):
        # the child's fds closed before it runs Python, as the shell's `2>&-` does
        def close():
            for fd in fds:
                os.close(fd)

        out = tmp_path / "out.txt"
        with open(out, "w") as f:
            p = subprocess.run([INCBT, "--store", store, *args], stdout=f if 1 not in fds else None,
                               stderr=f if 2 not in fds else None, preexec_fn=close, timeout=120,
                               env=_env())  # fmt: skip
        return p.returncode, out.read_text()

    assert closed([2], "init")[0] == 0 and os.listdir(store)  # it did its work
    code, said = closed([2], "--version")
    assert code == 0 and said.startswith("incbt "), said
    assert closed([1], "--version") == (0, "")
    assert closed([1, 2], "--version") == (0, "")
    code, said = closed([1], "backtest", "nope")  # its error on stderr, still
    assert code == 1 and "unknown strategy 'nope'" in said, said


def _raised(exc: BaseException, during: BaseException | None = None) -> BaseException:
    """``exc`` as raised while handling ``during`` (its __context__ set by Python)."""
    try:
        try:
            if during is not None:
                raise during
        finally:
            raise exc
    except BaseException as got:  # noqa: BLE001 (the test's own)
        return got


def test_the_want_of_memory_after_the_start_is_said_as_such():
    """Under a `ulimit -v` that let the CLI start, the want of memory later came out as
    "RuntimeError: can't start new thread" (exit 3, "a bug"), llvmlite's "Could not
    find/load shared object file" over "failed to map segment" (exit 1, as if not
    installed), or Arrow's "Failed to launch worker thread" (QA 2026-12-07)."""
    mapped = "failed to map segment from shared object"
    for exc in (
        RuntimeError("can't start new thread"),
        _raised(OSError("Could not find/load shared object file 'libllvmlite.so'"),
                OSError(f"/x/libllvmlite.so: {mapped}")),
        _raised(ImportError("cannot import name 'config' from 'numba.core'"),
                MemoryError()),
        OSError(errno.ENOMEM, "Cannot allocate memory"),
        RuntimeError("Unknown error: Failed to launch worker thread: Resource temporarily "
                     "unavailable"),
    ):  # fmt: skip
        got = map_dependency_error(exc, "incbt")
        assert isinstance(got, SetupError) and got.exit_code == 1, (exc, got)
        assert str(got).startswith("incbt: out of memory") and "ulimit -v" in str(got)
    # not everything that fails to load is the want of memory
    got = map_dependency_error(OSError(errno.ENOENT, "No such file", "/x/y.so"), "incbt")
    assert "out of memory" not in str(got)


def test_numba_is_loaded_before_the_task_threads_start(tmp_path, monkeypatch):
    """Numba's import failing in one task thread (a memory limit) left a half-loaded module
    where the other threads said "cannot import name 'config' from 'numba.core'", the
    error the command then gave (exit 3; QA 2026-12-07): the caller imports it first."""
    import builtins
    import threading

    import incbt.runs as runs_mod

    generate(str(tmp_path / "d"), instruments=2, days=3)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    seen: list[str] = []
    real_import, real_pool = builtins.__import__, runs_mod.ThreadPoolExecutor

    def spy_import(name, *a, **k):
        if name == "numba" and threading.current_thread() is threading.main_thread():
            seen.append("numba")
        return real_import(name, *a, **k)

    def spy_pool(*a, **k):
        seen.append("pool")
        return real_pool(*a, **k)

    # as in the command, where nothing loads Numba ahead (incbt.store._first_compute)
    monkeypatch.setattr(incbt, "_ends_with_command", True, raising=False)
    monkeypatch.setattr(runs_mod, "threads_for", lambda tasks, most=None: 2)
    monkeypatch.setattr(runs_mod, "ThreadPoolExecutor", spy_pool)
    monkeypatch.setattr(builtins, "__import__", spy_import)
    monkeypatch.setenv("INCBT_PROCESSES", "1")
    s.backtest("sma_cross", {"fast": 3, "slow": 7})
    monkeypatch.undo()
    assert "pool" in seen and seen.index("numba") < seen.index("pool"), seen


def test_a_full_disk_is_said_with_its_fix():
    for exc in (OSError(errno.ENOSPC, "No space left on device", "/x/results/a.parquet"),
                OSError("Error writing bytes to file. Detail: [errno 28] No space left on "
                        "device")):
        got = map_dependency_error(exc, "incbt")
        assert isinstance(got, SetupError) and got.exit_code == 1, got
        assert "the disk is full" in str(got) and "run the same command again" in str(got)
    assert "writing /x/results/a.parquet" in str(map_dependency_error(
        OSError(errno.ENOSPC, "No space left on device", "/x/results/a.parquet"), "incbt"))


def test_standard_output_written_whole_or_said(monkeypatch):
    """A disk filling up under `incbt query ... > FILE`: the first write came up short,
    Python's stdout let it pass, and the command exited 0 with the file cut short."""
    from incbt.cli import _WholeWrites

    calls = []

    def short_then_full(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return 8192
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_full)
    out = io.TextIOWrapper(io.BufferedWriter(_WholeWrites(1), buffer_size=1 << 16))
    with pytest.raises(OSError) as e:
        out.write("x" * 100_000)
        out.flush()
    assert e.value.errno == errno.ENOSPC and "standard output" in str(
        map_dependency_error(e.value, "incbt"))
    assert calls[:2] == [100_000, 100_000 - 8192]


def test_an_output_file_is_written_whole_or_not_at_all(tmp_path):
    """-o FILE on a full disk left a csv cut short, an empty json, a report's .tmp."""
    from incbt.render import output_file

    target = tmp_path / "out.csv"
    with pytest.raises(OSError) as e, output_file(str(target)) as tmp:
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert os.listdir(tmp_path) == [] and e.value.filename == str(target)
    msg = str(map_dependency_error(e.value, "incbt"))
    assert f"writing the output to {target} stopped short" in msg, msg
    with output_file(str(target)) as tmp, open(tmp, "w") as f:
        f.write("whole")
    assert os.listdir(tmp_path) == ["out.csv"] and target.read_text() == "whole"


def test_a_failed_compaction_does_not_fail_the_committed_command(store, monkeypatch):
    """The 8th result batch compacts after the backtest's commit: on a full disk the
    command exited 1 and printed nothing, though its results were committed."""
    import incbt.results.compact as compact

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", "results/daily/x.parquet")

    monkeypatch.setattr(compact, "compact_all", full)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        run = store.backtest("sma_cross", {"fast": 3, "slow": 20})
    assert run.portfolio["days"] == 3
    assert any("the results are committed" in str(w.message) and "disk is full"
               in str(w.message) for w in said), [str(w.message) for w in said]


def test_gc_frees_space_on_a_full_disk(tmp_path, monkeypatch):
    """gc, which frees space, could not run on a full disk: its catalog commit needs
    room. Its files go first, then the commit."""
    import incbt.catalog.env as env_mod

    generate(str(tmp_path / "d"), instruments=1, days=3, seed=4)
    generate(str(tmp_path / "fix"), instruments=1, days=3, seed=4, from_day="2024-01-02",
             to_day="2024-01-02", revise=["2024-01-02"])
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    s.ingest(str(tmp_path / "fix"))
    doomed = s.gc(dry_run=True).paths
    assert doomed
    real = env_mod.Env.write
    tries = []

    def full_once(self, fn):
        tries.append(1)
        if len(tries) == 1:
            raise SetupError("the disk holding the store's catalog is full")
        return real(self, fn)

    monkeypatch.setattr(env_mod.Env, "write", full_once)
    got = s.gc()
    assert got.files_removed == len(doomed) and got.seq is not None
    assert not any(os.path.exists(os.path.join(s.path, p)) for p in doomed)
    monkeypatch.setattr(env_mod.Env, "write", real)
    assert s.gc(dry_run=True).files_removed == 0 and not s.status().missing_files


def test_a_tilde_in_a_path_is_the_home_folder(tmp_path):
    """A "~" the shell left (quoted, or in INCBT_STORE) made a folder named "~" here for
    --store, failed for ingest and json -o, and was the home folder for csv -o."""
    home = tmp_path / "home"
    home.mkdir()
    generate(str(home / "d"), instruments=1, days=2, seed=4)
    env = _env(HOME=str(home))
    for args in (["--store", "~/s", "init"], ["--store", "~/s", "ingest", "~/d"],
                 ["--store", "~/s", "query", "SELECT count(*) AS n FROM bars", "-o",
                  "~/n.json"]):
        p = run_incbt([*args], env=env, cwd=tmp_path)
        assert p.returncode == 0, (args, p.stderr)
    assert (home / "s" / "catalog").is_dir() and not (tmp_path / "~").exists()
    assert (home / "n.json").read_text().strip() == '{"n": 780}'


def test_an_empty_incbt_store_is_refused_as_an_empty_store_option(tmp_path, monkeypatch):
    """INCBT_STORE="" (a variable exported from one that was not set) opened ./store
    of the current folder without a word, where `--store ''` is refused (QA 2026-12-07:
    `incbt status` showed another store, one a write would have changed)."""
    generate(str(tmp_path / "d"), instruments=1, days=1, seed=4)
    incbt.init(str(tmp_path / "store")).ingest(str(tmp_path / "d"))
    for value in ("", " "):
        p = run_incbt(["status"], env=_env(INCBT_STORE=value), cwd=tmp_path)
        assert p.returncode == 2, p.stdout
        assert p.stderr.strip() == ("error: --store (or INCBT_STORE) is empty: give the "
                                    "store's folder"), p.stderr
    monkeypatch.setenv("INCBT_STORE", "")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(incbt.UsageError, match=r"INCBT_STORE\) is empty"):
        incbt.open()


def test_an_init_that_fails_leaves_nothing(tmp_path, monkeypatch):
    """init on a full disk left bars/ and a catalog without its first commit, which
    neither init ("a folder with other files") nor any command took again."""
    import incbt.catalog.env as env_mod

    real = env_mod.Env.write

    def full(self, fn):
        raise SetupError("the disk is full")

    monkeypatch.setattr(env_mod.Env, "write", full)
    with pytest.raises(SetupError):
        incbt.init(str(tmp_path / "s"))
    assert not (tmp_path / "s").exists()
    with pytest.raises(SetupError):  # the folders above it it made go too (QA)
        incbt.init(str(tmp_path / "a" / "b" / "s"))
    assert not (tmp_path / "a").exists()
    (tmp_path / "kept").mkdir()  # a folder the user made stays, empty
    with pytest.raises(SetupError):
        incbt.init(str(tmp_path / "kept"))
    assert os.listdir(tmp_path / "kept") == []
    monkeypatch.setattr(env_mod.Env, "write", real)
    assert incbt.init(str(tmp_path / "kept")).status().report.runs == 0


def test_the_lock_file_has_its_blocks_before_lmdb_maps_it(tmp_path):
    """A lock file LMDB makes (or finds with holes: cp -a) is written through a shared
    map, where a full disk killed `status` with SIGBUS: its blocks are taken first, so a
    full disk is an error said in a line."""
    from incbt.catalog.env import _room_for_lock, close_env

    s = incbt.init(str(tmp_path / "s"))
    lock = os.path.join(s.path, "catalog", "lock.mdb")
    close_env(os.path.join(s.path, "catalog"))
    os.remove(lock)
    _room_for_lock(lock, False)
    st = os.stat(lock)
    assert st.st_size == 32896 and st.st_blocks * 512 >= st.st_size  # as LMDB makes it
    with open(lock, "r+b") as f:  # a hole, as cp -a can leave
        f.truncate(0)
        f.truncate(32896)
    assert os.stat(lock).st_blocks == 0
    _room_for_lock(lock, True)
    assert os.stat(lock).st_blocks * 512 >= 32896
    assert incbt.open(s.path).status().report.runs == 0


def test_a_path_the_locale_cannot_spell_is_said():
    got = map_dependency_error(UnicodeEncodeError("ascii", "st\udcc3", 2, 3, "no"), "incbt")
    assert isinstance(got, SetupError) and "LANG=C.UTF-8" in str(got), got


def test_an_update_stopped_after_its_ingest_says_the_files_are_in(store, tmp_path,
                                                                   monkeypatch):
    """A full disk stopped an update's computing after its ingest committed: the error
    did not say the files were in the store already."""
    import incbt.update as update_mod
    from incbt.cli import _with_notes

    store.backtest("sma_cross", {"fast": 3, "slow": 20})
    generate(str(tmp_path / "next"), instruments=2, days=4, seed=4, from_day="2024-01-04")

    def full(*a, **k):
        raise SetupError("the disk is full")

    monkeypatch.setattr(update_mod, "bring_up_to_date", full)
    with pytest.raises(SetupError) as e:
        store.update(str(tmp_path / "next"))
    said = _with_notes(e.value, e.value)
    assert "the files were ingested (event" in said and "2 new day(s)" in said, said
    assert store.sql("SELECT count(DISTINCT date) AS n FROM bars")["n"][0].as_py() == 4


def test_a_store_deleted_made_again_or_moved_under_a_held_store_is_said(tmp_path):
    """A notebook's Store held across `rm -rf` and `incbt init` at the same path read
    the deleted store as current, and its writes went to the deleted catalog, reported
    as committed (QA 2026-12-06); a moved store gave raw FileNotFoundErrors."""
    import shutil

    generate(str(tmp_path / "d"), instruments=1, days=3, seed=4)
    path = str(tmp_path / "s")
    held = incbt.init(path)
    held.ingest(str(tmp_path / "d"))
    run = held.backtest("sma_cross", {"fast": 3, "slow": 20})
    shutil.rmtree(path)
    incbt.init(path)  # another store at the same path (here: this process)
    for use in (lambda: held.sql("SELECT count(*) FROM bars"), lambda: run.metrics,
                lambda: held.ingest(str(tmp_path / "d")), held.status):
        with pytest.raises(incbt.StoreError, match="deleted, moved or replaced"):
            use()
    assert "gone" in repr(held) and "gone" in repr(run)
    fresh = incbt.open(path)
    assert fresh.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py() == 0
    moved = str(tmp_path / "moved")
    os.rename(path, moved)
    with pytest.raises(incbt.StoreError, match="deleted, moved or replaced"):
        fresh.sql("SELECT count(*) FROM bars")
    assert incbt.open(moved).status().report.runs == 0


def test_an_output_file_written_beside_only_where_a_rename_keeps_it(tmp_path):
    """-o replaced whatever was at the path by a regular file (QA 2026-12-06): a
    symbolic link (to /proc/self/fd/1 even), a device, a file of several names, and a
    private file's mode. Those are written in place; a regular file keeps its mode; a
    name at the file system's limit (no room for the file beside it) is written too."""
    from incbt.render import output_file

    def write(path, text):
        with output_file(str(path)) as tmp, open(tmp, "w") as f:
            f.write(text)

    real = tmp_path / "real.csv"
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    write(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    private = tmp_path / "private.csv"
    private.write_text("old")
    private.chmod(0o600)
    write(private, "new")
    assert private.read_text() == "new" and (private.stat().st_mode & 0o777) == 0o600
    other = tmp_path / "other.csv"
    os.link(real, other)
    write(other, "both")
    assert real.read_text() == "both" and other.stat().st_nlink == 2
    long = tmp_path / ("x" * 250 + ".csv")
    write(long, "long")
    assert long.read_text() == "long"
    write(tmp_path / "dev-null", "")  # a regular file of that name: fine
    write("/dev/null", "nothing")  # a device: written into, not replaced
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".incbt-tmp")]


def test_the_output_stream_closed_early_or_full_is_said_once(tmp_path, store):
    """`| true` (the reader gone before the first flush) gave exit 120 and a traceback,
    and a small output to /dev/full the same: the buffered output's last flush raised
    again at the interpreter's exit (QA 2026-12-06)."""
    env = _env(INCBT_STORE=store.path)
    p = subprocess.run(["bash", "-o", "pipefail", "-c",
                        f"{INCBT} query 'SELECT * FROM bars' --output csv | true"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0 and not p.stderr.strip(), p.stderr
    if os.path.exists("/dev/full"):
        with open("/dev/full", "w") as full:
            p = subprocess.run([INCBT, "query", "SELECT 1 AS x"], stdout=full,
                               stderr=subprocess.PIPE, text=True, env=env)
        assert p.returncode == 1 and p.stderr.count("error:") == 1, p.stderr
        assert "Exception ignored" not in p.stderr and "disk is full" in p.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_output_after_a_command_wrote_does_not_say_nothing_changed(tmp_path, store):
    """Standard output on a full disk after the command wrote: a backtest committed, the
    files of generate or report -o written; each said "(nothing else was changed)" (QA
    2026-12-07). Said now as what is kept; a read-only command's words stay."""
    env = _env(INCBT_STORE=store.path)

    def full(*args):
        with open("/dev/full", "w") as out:
            return subprocess.run([INCBT, *args], stdout=out, stderr=subprocess.PIPE,
                                  text=True, env=env)

    p = full("backtest", "sma_cross", "-p", "fast=3", "-p", "slow=20")
    assert p.returncode == 1 and "disk is full" in p.stderr, p.stderr
    assert "nothing else was changed" not in p.stderr, p.stderr
    assert "what it committed to the store is kept" in p.stderr, p.stderr
    assert [r.record.params for r in store.runs()] == [{"fast": 3, "slow": 20}]  # it was
    for args in (["generate", str(tmp_path / "g"), "--instruments", "1", "--days", "1"],
                 ["report", store.runs()[0].run_id, "-o", str(tmp_path / "r.html")]):
        p = full(*args)
        assert p.returncode == 1 and "nothing else was changed" not in p.stderr, p.stderr
        assert "the files it wrote are kept" in p.stderr, p.stderr
    assert os.listdir(tmp_path / "g") and (tmp_path / "r.html").stat().st_size
    p = full("query", "SELECT 1 AS x")
    assert p.returncode == 1 and "(nothing else was changed)" in p.stderr, p.stderr


def test_an_update_interrupted_after_its_ingest_says_the_files_are_in(store, tmp_path,
                                                                     monkeypatch, capsys):
    """Ctrl-C (or SIGTERM) while an update computed, its ingest committed: it said only
    "run the same command again", not that the files were in (QA 2026-12-06)."""
    import incbt.update as update_mod
    from incbt import cli

    generate(str(tmp_path / "next"), instruments=2, days=4, seed=4, from_day="2024-01-04")

    def stopped(*a, **k):
        raise KeyboardInterrupt

    import signal

    monkeypatch.setattr(update_mod, "bring_up_to_date", stopped)
    monkeypatch.setattr(sys, "argv", ["incbt", "--store", store.path, "update",
                                      str(tmp_path / "next")])
    # what main sets for the process, put back for the tests after this one
    monkeypatch.setattr(warnings, "filters", list(warnings.filters))
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    monkeypatch.setattr(incbt, "_ends_with_command", False)
    term = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as e:
            cli.main()
    finally:
        signal.signal(signal.SIGTERM, term)
    err = capsys.readouterr().err.replace("\n", " ")
    assert e.value.code == 130 and "the files were ingested (event" in err, err


def test_a_held_sweep_of_a_name_given_to_another_sweep_says_so(store):
    """A Sweep object read the sweep that took its name after it was dropped as its own
    (another strategy's: a leaderboard without its parameters; QA 2026-12-06)."""
    sw = store.sweep("sma_cross", {"fast": [3, 4], "slow": [20]}, name="grid")
    assert sw.parameters() == ["fast", "slow"]
    store.drop(sweep="grid")
    store.sweep("breakout", {"lookback": [5, 6]}, name="grid")
    for read in (lambda: sw.run_ids, sw.parameters, sw.leaderboard, lambda: sw.runs):
        with pytest.raises(incbt.NotFoundError, match="another sweep has its name"):
            read()
    assert repr(sw) == "<Sweep 'grid': dropped>"
    now = store.sweeps()["grid"]
    assert now.parameters() == ["lookback"] and len(now.run_ids) == 2


def test_a_store_reached_by_two_paths_stays_open_by_both(tmp_path):
    """A bind mount shows one catalog at two paths: opening the second closed the first
    path's Store as if its store had moved (QA 2026-12-06). One environment serves both.
    (Needs `mount --bind`: skipped where it is not allowed.)"""
    generate(str(tmp_path / "d"), instruments=1, days=2, seed=4)
    a = incbt.init(str(tmp_path / "s"))
    a.ingest(str(tmp_path / "d"))
    other = tmp_path / "bind"
    other.mkdir()
    if subprocess.run(["mount", "--bind", str(tmp_path / "s"), str(other)],
                      capture_output=True).returncode != 0:
        pytest.skip("mount --bind is not allowed here")
    try:
        b = incbt.open(str(other))
        q = "SELECT count(*) AS n FROM bars"
        assert a.sql(q)["n"][0].as_py() == b.sql(q)["n"][0].as_py() == 780
        assert incbt.open(str(tmp_path / "s")).sql(q)["n"][0].as_py() == 780
        assert b.sql(q)["n"][0].as_py() == 780 and "gone" not in repr(b) + repr(a)
    finally:
        from incbt.catalog.env import close_env

        close_env(str(other / "catalog"))
        del a, b
        # lazily where something still holds a file there: a mount left behind made
        # pytest's later clean-up of old temporary folders fail ("resource busy")
        if subprocess.run(["umount", str(other)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(other)], check=False)


def test_a_call_asking_for_another_ray_than_this_process_has_is_refused(monkeypatch):
    """A second sweep of a Python session ran on the first one's Ray, whatever it asked
    (address= after workers=, and the other way round), without a word (QA 2026-12-07)."""
    from incbt.execute import ray_exec as rx

    monkeypatch.setattr(rx, "_started_here", True)
    monkeypatch.setattr(rx, "_connected_to", None)
    rx._same_ray(None, None)  # the local one again: taken
    with pytest.raises(incbt.UsageError, match=r"connected to a local Ray this process started"
                       r".* asks for the cluster at '10.0.0.1:6379'.*ray.shutdown\(\)"):
        rx._same_ray(None, "10.0.0.1:6379")
    monkeypatch.setattr(rx, "_started_here", False)
    monkeypatch.setattr(rx, "_connected_to", "10.0.0.1:6379")
    rx._same_ray(None, "10.0.0.1:6379")
    rx._same_ray(None, "auto")
    for other in (None, "10.0.0.2:6379"):
        with pytest.raises(incbt.UsageError, match="connected to the Ray cluster at '10.0.0.1"):
            rx._same_ray(None, other)
    monkeypatch.setattr(rx, "_connected_to", None)  # the caller's own ray.init: theirs
    rx._same_ray(None, "10.0.0.2:6379")


def test_a_ray_task_that_raised_is_said_with_its_error():
    """Only Ray's first line was kept, "ray::_work() (pid=...)" in terminal colours, and
    said as workers dying; a worker that could not see the store's bars said nothing of
    shared storage (QA 2026-12-07)."""
    from incbt.execute.ray_exec import _task_error

    class Wrapped(Exception):
        def __init__(self, cause):
            super().__init__("\x1b[36mray::_work()\x1b[39m (pid=5203, ip=10.0.0.1)\nTraceback...")
            self.cause = cause

    lost = incbt.StoreError("/s/bars/S0000/2024-01-abc.parquet is missing: the store was ...")
    said = _task_error(Wrapped(lost))
    assert said.startswith("StoreError: /s/bars/S0000/2024-01-abc.parquet is missing")
    assert "storage every node sees" in said
    assert _task_error(Wrapped(ValueError("x"))) == "ValueError: x"
    assert _task_error(Exception("\x1b[36mray::_work()\x1b[39m died\nmore")) == "ray::_work() died"


def test_a_connection_that_never_ends_is_cut():
    """`--address` of a port that takes connections and is no Ray head: Ray's waits never
    ended, their retries catching every Exception, and the sweep hung for good holding
    the store's write lock (QA 2026-12-07). The wait is cut (CONNECT_SECONDS) where it
    comes back to Python."""
    import time

    from incbt.execute.ray_exec import _bounded, _TooLong

    t0 = time.monotonic()
    with pytest.raises(_TooLong), _bounded(0.2):
        while True:  # as Ray's connect loop: every Exception retried
            try:
                time.sleep(0.01)
            except Exception:  # noqa: BLE001, S112
                continue
    assert time.monotonic() - t0 < 5
    with _bounded(0.2):  # done in time: nothing raised after
        pass
    time.sleep(0.4)


@pytest.mark.parametrize("kib", [40, 52, 60])  # three points LMDB fails at differently
def test_init_on_a_full_disk_says_so_and_leaves_nothing(tmp_path, kib):
    """QA 2026-12-07: init on a nearly full disk said LMDB's "mdb_txn_commit: Input/output
    error", or "restore the store from a backup"."""
    mnt = tmp_path / "m"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(mnt)],
                      capture_output=True).returncode:  # fmt: skip
        pytest.skip("no tmpfs mount here")
    try:
        with pytest.raises(SetupError) as exc:
            incbt.init(str(mnt / "s"))
        assert str(exc.value) == (
            f"the disk holding {mnt / 's'} is full: the store was not created (nothing of it "
            "is left). Fix: free space on that disk, or create the store elsewhere"
        )
        assert os.listdir(mnt) == []
        assert not [f for f in os.listdir("/proc/self/fd")  # nothing of it held open
                    if str(mnt) in os.path.realpath(f"/proc/self/fd/{f}")]  # fmt: skip
    finally:
        subprocess.run(["umount", str(mnt)])


def test_a_full_disk_naming_no_file_names_the_stores_disk(tmp_path, monkeypatch):
    """QA 2026-12-07: Arrow's writes name no file: "the disk is full", and no path."""
    from incbt import errors

    monkeypatch.setattr(errors, "STORES", {str(tmp_path): None})
    said = str(map_dependency_error(OSError("[Errno 28] Error writing bytes to file. "
                                            "Detail: [errno 28] No space left on device"),
                                    "incbt"))  # fmt: skip
    assert said.startswith(f"the disk is full (the store's disk, {tmp_path}: "), said
    assert " bytes free): what this command committed before is kept" in said, said
    monkeypatch.setattr(errors, "STORES", {"a": None, "b": None})  # which: unknown
    said = str(map_dependency_error(OSError(errno.ENOSPC, "No space left on device"), "x"))
    assert said.startswith("x: the disk is full: what"), said
    # Numba's cache on a nearly full disk: that one (it was said as the store's)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(errors, "NEARLY_FULL_BYTES", 1 << 62)
    said = str(map_dependency_error(OSError(errno.ENOSPC, "No space left on device"), "x"))
    assert said.startswith(f"x: the disk is full (Numba's cache, NUMBA_CACHE_DIR: {tmp_path}, ")


def test_gc_and_compaction_on_a_full_disk_give_their_own_fix(tmp_path, monkeypatch):
    """QA 2026-12-07: gc on a full disk was told to run gc; a compaction's warning told to
    run the command again and that the next command would merge anyway."""
    import incbt.results.compact as compact
    from incbt.errors import disk_full

    generate(str(tmp_path / "d"), instruments=2, days=3, start="2024-01-01", seed=1)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))

    def full(*a, **k):
        raise disk_full(" (writing results/daily/x.parquet)")

    monkeypatch.setattr(compact, "compact_all", full)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        s.backtest("sma_cross", {"fast": 2, "slow": 5})
    text = [str(w.message) for w in said if "compaction" in str(w.message)]
    assert text == ["the results are committed, but merging the result files (compaction) "
                    "failed: the disk is full (writing results/daily/x.parquet); the next "
                    "command that writes results merges them"], text
    monkeypatch.setattr(compact, "reclaim", full)
    with pytest.raises(SetupError) as exc:
        s.gc()
    assert "(writing results/daily/x.parquet)" in str(exc.value)
    assert "then run gc again" in str(exc.value) and "`incbt gc`" not in str(exc.value)
