"""The LMDB environment: one per store per process, growing its map by itself.

LMDB raises ``MapFullError`` when a write transaction outgrows the map; the
transaction is then aborted cleanly (DESIGN.md), so :func:`Env.write` doubles
the map with no transaction open and runs the same transaction function again.
Transaction functions must therefore only touch the transaction they are given.
Changing the map invalidates every transaction open in the process (py-lmdb
closes them: a reader on another thread, such as an executor thread reading the
day index while a commit runs, would fail), so it waits until the read
transactions open on other threads have ended, and holds new ones back meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import lmdb

from incbt.errors import CatalogError, SetupError, StoreError, disk_full, is_full_disk

# a commit failing with an "Input/output error" on a disk with less room than this is
# taken for the full disk it is (LMDB's short write), not a failing disk
FULL_DISK_BYTES = 4 << 20

# how long a thread following a compacted catalog (Env.follow) waits for the reads other
# threads have open on the old file to end; past it, it is told the store was replaced
FOLLOW_WAIT = 30.0

T = TypeVar("T")

DBS = (
    b"meta",  # store settings and format version
    b"events",  # seq -> event JSON (the log)
    b"changes",  # seq|instrument|day -> what an event changed for one day
    b"fields",  # seq|instrument|day -> the bar fields a correction changed (absent: any)
    b"days",  # instrument|day -> where the current bars of that day are
    b"files",  # file hash -> file record JSON (path, intervals it was current)
    b"buckets",  # instrument|month -> hashes of the current files (oldest first)
    b"pending",  # intents of an unfinished write, for orphan clean-up
    b"runs",  # run id -> run record JSON
    b"snaps",  # instrument | 0 | day | run id -> engine state + metric accumulators
    b"segments",  # run id | instrument | 0 | batch -> result rows a batch holds
    b"batches",  # batch -> result files of one commit
    b"metrics",  # run id | instrument ("" = portfolio) -> metrics at the latest day
    b"pairs",  # run id | instrument -> the event seq its results have seen
    b"sweeps",  # sweep name -> sweep record JSON (spec, points, run ids)
    b"dirty",  # run id -> first day its portfolio must be refolded from (partial commits)
    b"cuts",  # run id | instrument -> b"": pairs a recomputation may have cut (see runs)
    b"failed",  # run id | instrument -> JSON {seq, through, error}: a strategy error
)

# The catalog's format. 2: a bucket is a list of files (append files); 3: snapshots by
# instrument and day; 4: as 3, with the tables and records added from 2026-12-03 to 07
# (fields, failed, cuts, ...), which the builds of those days, reading "3", misread (QA
# 2026-12-07: one said a store's forks differed, another replaced every run): a store
# this incbt opened is refused by them, as by every older build
FORMAT_VERSION = 4


def _not_ours(env: lmdb.Environment) -> bool:
    """Whether the catalog says a format this incbt does not read (newer, not a number,
    none): read before any table is created, so that the store that refuses it stays
    as it was. A new catalog (no ``meta`` table yet) is ours."""
    try:
        meta = env.open_db(b"meta", create=False)
    except lmdb.NotFoundError:  # a new catalog
        return False
    with env.begin(db=meta) as txn:
        raw = txn.get(b"format_version")
    try:
        version = json.loads(raw) if raw is not None else None
    except ValueError:
        return True
    return type(version) is not int or not 1 <= version <= FORMAT_VERSION


_ENVS: dict[str, Env] = {}
_ENVS_LOCK = threading.Lock()


def _check_size(env: lmdb.Environment, path: str) -> None:
    """Make sure no read maps a page past the end of the data file: that kills the
    process (SIGBUS), it does not raise.

    A file shorter than its last page is not always cut short: pages a transaction
    took and freed again before its commit (a large delete) count in the last page
    number but are never written, and, free, never read before they are written again
    (QA 2026-12-06: a store refused every command after a ``drop --sweep``). So a short
    file is verified offline (``lmdb.verify``: every page reachable from the committed
    roots is in the file, and the free set and the live set cover the pages exactly),
    under a read transaction that keeps its pages from being reused meanwhile; if only
    free pages are missing, they are added as zeros (the file only ever grows), else it
    is refused as cut short and left as it is. (Reading every value through LMDB did not
    tell: a value's overflow pages lost read back as zeros, without an error.)
    """
    data = os.path.join(path, "data.mdb")
    need = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    have = os.path.getsize(data)
    if have >= need:
        return
    from lmdb.verify import VerifyError, verify

    with env.begin():
        try:
            problems = verify(path)
        except (VerifyError, OSError) as exc:
            problems = [str(exc)]
    if problems:
        env.close()
        raise CatalogError(
            f"the catalog {data} is cut short ({have:,} bytes; its pages reach {need:,}; "
            f"{problems[0]}): it was truncated or copied incompletely. Fix: restore the "
            "store from a backup"
        )
    with contextlib.suppress(OSError):  # not writable: as it is (free pages are not read)
        fd = os.open(data, os.O_RDWR)
        try:
            os.posix_fallocate(fd, have, need - have)  # never shrinks the file
        finally:
            os.close(fd)


def _refuse_shared(path: str) -> None:
    """Refuse a catalog whose files are hard links of another store's (a copy made with
    ``cp -al`` or ``rsync --link-dest``): LMDB writes ``data.mdb`` in place, so a
    commit through either store would change both catalogs, each then naming result
    and bars files the other folder lacks. Parquet files may be hard-linked (incbt
    never modifies one: it writes a new file and renames it in); the catalog may not."""
    for name in ("data.mdb", "lock.mdb"):
        f = os.path.join(path, name)
        try:
            links = os.stat(f).st_nlink
        except FileNotFoundError:
            continue
        if links > 1:
            raise CatalogError(
                f"the catalog file {f} has {links} hard links: this store shares its "
                "catalog with a copy made with hard links (cp -al, rsync --link-dest), "
                "and a write through either would change both. Fix: give this store a "
                f"catalog of its own: cp -a {path} {path}.copy && rm -r {path} && "
                f"mv {path}.copy {path} (the Parquet files may stay hard-linked)"
            )


def _forget_lock(lock: str, had: bool) -> None:
    """A catalog refused on open keeps no lock file LMDB made for it: a command that
    only reads leaves what is not a store as it was."""
    if not had:
        with contextlib.suppress(OSError):
            os.remove(lock)


MAX_READERS = 512
# the lock file LMDB makes for MAX_READERS (a header of 192 bytes and 64 a reader after
# the first: 32,896 bytes, as LMDB 0.9 makes it); one made here is that size
LOCK_BYTES = (MAX_READERS - 1) * 64 + 192


def _room_for_lock(lock: str, had: bool) -> None:
    """Blocks on disk for the whole lock file before LMDB maps it: LMDB makes it (or
    finds it, copied by ``cp -a`` with holes) and writes to it through a shared map,
    where a full disk is SIGBUS, the process killed without a word (QA 2026-12-06:
    ``status`` and ``query`` died so, exit 135). Here a full disk is an OSError
    (ENOSPC), said as such. A file made here is the size LMDB makes it."""
    if had:
        st = os.stat(lock)
        if st.st_blocks * 512 >= st.st_size:
            return  # no hole
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, size if had else max(size, LOCK_BYTES))
    finally:
        os.close(fd)


def _open_lmdb(path: str, map_size: int, readonly: bool = False) -> lmdb.Environment:
    """The catalog's LMDB environment; ``readonly``: read without taking the lock file
    (read-only media)."""
    return lmdb.open(
        path,
        map_size=map_size,
        max_dbs=32,
        subdir=True,
        readahead=False,
        max_readers=MAX_READERS,
        readonly=readonly,
        create=not readonly,
    )


def _unopenable(path: str, why: str) -> CatalogError | SetupError:
    """Why LMDB could not open the catalog, and the fix."""
    if "Cannot allocate memory" in why:  # the process's limit (ulimit -v), not the store:
        return SetupError(  # QA 2026-12-07, it was told to restore from a backup
            f"cannot open the catalog at {path}: {why}: mapping it needs address space this "
            "process may not have (a limit on its memory, `ulimit -v`, or a machine out of "
            "memory). Nothing was changed. Fix: raise the limit (incbt needs a few GiB of "
            "address space: the catalog's map and Numba's compiler), or set "
            "INCBT_MAP_SIZE_MB lower"
        )
    # "Operation not permitted": a file made immutable (chattr +i), or owned by another
    # user where a permission system says so (QA 2026-12-07: "restore from a backup")
    if any(w in why for w in ("Read-only file system", "Permission denied", "not permitted")):
        return CatalogError(
            f"cannot open the catalog at {path}: {why}: incbt opens the catalog's files "
            "(data.mdb, lock.mdb) for writing even to read them. Fix: give write access to "
            "the catalog's folder and its files (chmod u+rw; chattr -i where one was made "
            "immutable), or work on a copy of the store in a writable place (cp -a)"
        )
    return CatalogError(
        f"cannot open the catalog at {path}: {why}. Fix: a store's catalog is written by "
        "incbt alone; restore the store from a backup"
    )


class Env:
    """An open LMDB environment with named databases."""

    def __init__(self, path: str, map_size: int) -> None:
        self.path = path
        lock = os.path.join(path, "lock.mdb")
        _refuse_shared(path)
        had_lock = os.path.exists(lock)
        self.readonly = False
        try:
            _room_for_lock(lock, had_lock)
        except OSError as exc:
            _forget_lock(lock, had_lock)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                err = SetupError(
                    f"the disk holding the store's catalog ({path}) is full: LMDB needs "
                    f"room for its lock file {lock} even to read. Nothing was changed. "
                    "Fix: free space on that disk, then run the command again"
                )
                # a full disk's, for a caller to say it its way (a compaction's copy)
                err.full_disk = (f" (the catalog's lock file {lock})", "")
                raise err from None
            # anything else (read-only media, no permission): LMDB's own words below
        try:
            self.env = _open_lmdb(path, map_size)
        except lmdb.Error as exc:
            _forget_lock(lock, had_lock)
            why = str(exc).rstrip(".")
            if "Read-only file system" in why:
                # a store on read-only media (an archive, a shared snapshot): LMDB reads
                # it without taking its lock file, since nothing can write there
                with contextlib.suppress(lmdb.Error):
                    self.env = _open_lmdb(path, map_size, readonly=True)
                    self.readonly = True
            if not self.readonly:
                raise _unopenable(path, why) from exc
        try:
            _check_size(self.env, path)
        except CatalogError:
            self.env.close()
            _forget_lock(lock, had_lock)
            raise
        self.identity = _identity(path)
        self._closed = False  # still_here: closed by open_env, its file moved or replaced
        self.closed_by_user = False  # closed by Store.close
        self._dbs: dict[bytes, object] = {}
        self._write_lock = threading.Lock()
        self._gate = threading.Condition()  # read transactions against map changes
        self._open = 0  # read transactions open, on every thread
        self._remapping = False
        self._mine = threading.local()  # .n: read transactions open on this thread
        try:
            # every table, created where missing (a store of an older incbt), unless the
            # catalog is of a format it does not read: the store refuses it, as it was
            # (QA 2026-12-07: the refusal of a newer format created a table)
            for name in () if _not_ours(self.env) else DBS:
                self.db(name)
        except BaseException:  # (a full disk: QA 2026-12-07) its files are not held open
            self.env.close()  # by the error's frames, which kept a tmpfs from unmounting
            _forget_lock(lock, had_lock)
            raise

    def db(self, name: bytes) -> object:
        handle = self._dbs.get(name)
        for _ in range(8):
            if handle is not None:
                break
            try:
                handle = self.env.open_db(name, create=not self.readonly)
            except lmdb.NotFoundError:  # read-only: a database a later incbt added
                raise CatalogError(
                    f"the catalog at {self.path} lacks the table {name.decode()!r}, which "
                    "incbt adds when it opens a store it can write: the store is on a "
                    "read-only file system. Fix: open it once where it can be written"
                ) from None
            except lmdb.MapFullError:
                self._grow()
            except lmdb.MapResizedError:  # another process grew the map since this one
                # opened it (open_db runs a transaction of its own): a command starting
                # while a sweep grew the catalog failed on it (QA 2026-12-05)
                self._remap(0)
        if handle is None:  # pragma: no cover - resizes again and again
            raise CatalogError(f"catalog {self.path}: map resized repeatedly, try again")
        self._dbs[name] = handle
        return handle

    def forget(self, name: bytes) -> None:
        """Drop the cached handle of a database deleted by a committed transaction."""
        self._dbs.pop(name, None)

    def _grow(self) -> None:
        self._remap(self.env.info()["map_size"] * 2)

    def _remap(self, size: int) -> None:
        """Set the map's size (0: adopt the size another process grew it to) once no
        other thread has a read transaction open."""
        with self._gate:
            while self._remapping:
                self._gate.wait()
            self._remapping = True
            try:
                own = getattr(self._mine, "n", 0)
                while self._open > own:
                    self._gate.wait()
                self.env.set_mapsize(size)
            finally:
                self._remapping = False
                self._gate.notify_all()

    def _enter(self) -> None:
        mine = getattr(self._mine, "n", 0)
        with self._gate:
            while self._remapping and not mine:  # (a nested read never waits)
                self._gate.wait()
            self._open += 1
        self._mine.n = mine + 1

    def _leave(self) -> None:
        self._mine.n -= 1
        with self._gate:
            self._open -= 1
            self._gate.notify_all()

    def still_here(self) -> None:
        """Refuse to go on with a catalog that is no longer the one at its path: the store
        was deleted (and perhaps made again), moved or replaced since this process opened
        it. Its reads showed the old store as current and its writes went to a deleted
        file, reported as committed (QA 2026-12-06, a notebook's Store held across an
        ``rm -rf`` and ``incbt init``). Every read and write checks (a stat: ~2 us; a
        sweep's command makes a few hundred transactions)."""
        if self.closed_by_user:
            store = os.path.dirname(self.path)
            raise StoreError(
                f"the store at {store} was closed (store.close()) in this process. Fix: "
                f"open it again: incbt.open({store!r})"
            )
        if self._closed or _identity(self.path) != self.identity:
            if not self._closed and self.follow():
                return
            store = os.path.dirname(self.path)
            raise StoreError(
                f"the store at {store} was deleted, moved or replaced since this process "
                "opened it: what is there now is not the store opened. Fix: open it again "
                "(incbt.open), at its new path if it moved"
            )

    def unreadable(self) -> str:
        """What a repr says of an object of a store it cannot read (:meth:`still_here`
        refused): closed by ``store.close()`` in this process, or gone. QA 2026-12-08: a
        store closed by ``with incbt.open(p) as store:`` was said to be "gone (deleted,
        moved or replaced)" by the reprs of its Store and Runs in a notebook."""
        store = os.path.dirname(self.path)
        if self.closed_by_user:
            return f"closed (store.close()) in this process: incbt.open({store!r}) opens it again"
        return "gone (deleted, moved or replaced since opened)"

    def follow(self, wait: float = FOLLOW_WAIT) -> bool:
        """Take up the catalog now at this path where it is this one compacted: ``incbt gc
        --catalog`` puts a compacted copy in its place, whose meta ``compacted_from`` names
        the files it replaced (their device and inode: a file this process holds open is
        never renumbered). False where it is not, or where this thread is in a
        transaction of the old file (the caller then says the store was replaced).

        Read transactions other threads have open on the old file are waited for (up to
        ``wait`` s; new ones are held back meanwhile, as for a map change): closing the
        old environment ends them. Refused instead, every thread's read failed while any
        other thread had one open (QA 2026-12-07: 3 threads running SQL on one Store
        failed ~3,000 times in the half second after another process compacted)."""
        inside = getattr(self._mine, "n", 0) > 0  # this thread, in a read of the old file
        if self._closed or self.readonly or inside:
            return False
        # (a thread following meanwhile holds it while it waits: this one waits too)
        if not self._write_lock.acquire(timeout=wait):
            return False
        try:
            with self._gate:
                while self._remapping:
                    self._gate.wait()
                self._remapping = True  # new reads wait (_enter), as for a map change
                try:
                    deadline = time.monotonic() + wait
                    while self._open and time.monotonic() < deadline:
                        self._gate.wait(max(deadline - time.monotonic(), 0))
                    ident = _identity(self.path)
                    if ident == self.identity:
                        return True  # another thread followed it
                    if self._open or ident is None:
                        return False
                    try:
                        new = _open_lmdb(self.path, self.env.info()["map_size"])
                    except lmdb.Error:
                        return False
                    try:
                        if list(self.identity or ()) not in compacted_from(new):
                            new.close()
                            return False
                        # every table's handle before any transaction (as when opened): one
                        # opened later is unknown to the transactions begun before it
                        dbs = {name: new.open_db(name) for name in DBS}
                    except lmdb.Error:
                        new.close()
                        return False
                    self.env.close()
                    self.env, self.identity, self._dbs = new, ident, dbs
                    return True
                finally:
                    self._remapping = False
                    self._gate.notify_all()
        finally:
            self._write_lock.release()

    @contextmanager
    def read(self) -> Iterator[lmdb.Transaction]:
        """A consistent read-only view of the latest commit (MVCC: writers never block it)."""
        self.still_here()
        resynced = False
        for _ in range(4):
            self._enter()
            try:
                txn = self.env.begin(buffers=False)
            except lmdb.MapResizedError:
                # Another process grew the map: adopt its size and retry.
                self._leave()
                self._remap(0)
                continue
            except BaseException:
                self._leave()
                raise
            if resynced or txn.id() >= self.env.info()["last_txnid"]:
                break
            # a newer commit than this view (see _resync); not counted as an open read
            # meanwhile, so a map change waiting for reads to end cannot wait for us
            txn.abort()
            self._leave()
            self._resync()
            resynced = True
        else:  # pragma: no cover - resizes again and again
            raise CatalogError(f"catalog {self.path}: map resized repeatedly, try again")
        try:
            yield txn
        finally:
            txn.abort()
            self._leave()

    def _resync(self) -> None:
        """Make readers see the newest commit after a writer died in the middle of one.

        LMDB's readers start from the transaction id in the shared lock file, which a
        writer sets only after writing its meta page: a writer killed between the two
        (during the meta page's synchronous write, a few milliseconds) leaves a commit
        that is durable, and that the next writer builds on, but that readers do not
        see until some writer commits again (found by the driver-kill sweep test: a
        reader counted one commit fewer than the resume did). LMDB repairs the id when
        the next writer takes the write mutex its dead owner held; an empty write
        transaction (aborted) does that now. A writer alive in another process that is
        between the two steps holds the mutex: this waits for it, then it has set the id.
        """
        with self._write_lock:
            try:
                self.env.begin(write=True).abort()
            except lmdb.MapResizedError:
                self._remap(0)  # the next read retries

    def write(self, fn: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``fn`` in one write transaction and commit, growing the map as needed."""
        if self.readonly:
            from incbt.catalog.lock import READ_ONLY

            raise CatalogError(READ_ONLY.format(store=os.path.dirname(self.path)))
        self.still_here()  # never a commit into a catalog deleted under this process
        with self._write_lock:
            while True:
                try:
                    with self.env.begin(write=True) as txn:
                        return fn(txn)
                except lmdb.MapFullError:
                    self._grow()
                except lmdb.MapResizedError:
                    self._remap(0)
                except lmdb.Error as exc:
                    full = self._full_disk(exc)
                    if full is None:
                        raise
                    raise full from None

    def _full_disk(self, exc: lmdb.Error) -> SetupError | None:
        """A commit that failed for want of space: LMDB says "No space left on device", or,
        where a write came up short on a disk that filled up, "Input/output error" (QA
        2026-12-06: read as a failing disk). Said as the full disk it is (the commit did
        not happen: the catalog is as it was), else None."""
        free = full_disk_free(exc, self.path)
        if free is None:
            return None
        return disk_full(f" (the store's catalog, {self.path}: {free:,} bytes free)")

    def size_bytes(self) -> int:
        return os.path.getsize(os.path.join(self.path, "data.mdb"))


def compacted_from(env: lmdb.Environment) -> list[list[int]]:
    """The catalog files (device, inode) a compacted catalog replaced, oldest first
    (meta ``compacted_from``); [] for any other."""
    try:
        meta = env.open_db(b"meta", create=False)
        with env.begin(db=meta) as txn:
            raw = txn.get(b"compacted_from")
        chain = json.loads(raw) if raw is not None else []
    except (lmdb.Error, ValueError):
        return []
    return chain if isinstance(chain, list) else []


def full_disk_free(exc: BaseException, path: str) -> int | None:
    """The bytes free on ``path``'s disk where ``exc`` is a full disk's: said so, or an
    "Input/output error" of a disk with less than ``FULL_DISK_BYTES`` free (a write come
    up short on a disk that filled up); None otherwise (an I/O error of a disk with room
    is said as it is), or where the disk cannot be asked."""
    said = is_full_disk(exc)
    if not said and "Input/output error" not in str(exc):
        return None
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    free = st.f_bavail * st.f_frsize
    return free if said or free < FULL_DISK_BYTES else None


def open_env(path: str, map_size_mb: float = 256) -> Env:
    """The process-wide environment for ``path`` (LMDB forbids opening it twice)."""
    key = os.path.realpath(path)
    with _ENVS_LOCK:
        for old_key, old in list(_ENVS.items()):  # stores deleted since: each kept its
            # files and memory map open for the process's life (QA 2026-12-07: 3
            # descriptors a store, "Too many open files" at 38 under ulimit -n 128)
            if old_key != key and _identity(old_key) is None:
                old._closed = True
                old.env.close()
                del _ENVS[old_key]
        env = _ENVS.get(key)
        if env is not None and env.identity != _identity(key) and not env.follow():
            # The folder was deleted and made again: the open env is of the old files.
            env._closed = True  # its holders are told so (still_here), not LMDB's words
            env.env.close()
            env = None
        if env is None:
            ident = _identity(key)
            for old_key, old in list(_ENVS.items()):  # the same catalog by another path
                if ident is None or old.identity != ident or old_key == key or old._closed:
                    continue
                if _identity(old_key) == ident:  # at both paths (a bind mount): one env,
                    _ENVS[key] = old  # as LMDB allows one open of a file a process
                    return old  # (QA 2026-12-06: the first path's holders were closed)
                # moved here: LMDB refuses a second open of one file (QA 2026-12-06:
                # "already open in this process", with a fix to restore a backup); the
                # old path's holders are told their store moved (still_here)
                old._closed = True
                old.env.close()
                del _ENVS[old_key]
            env = Env(key, int(map_size_mb * 1024 * 1024))
            _ENVS[key] = env
        return env


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(os.path.join(path, "data.mdb"))
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def close_env(path: str, by_user: bool = False) -> None:
    """Close the catalog at ``path`` in this process (``by_user``: ``Store.close``, said
    as such to its holders)."""
    key = os.path.realpath(path)
    with _ENVS_LOCK:
        env = _ENVS.pop(key, None)
        for k in [k for k, e in _ENVS.items() if e is env]:  # its other paths (open_env)
            del _ENVS[k]
    if env is not None:
        env._closed = True
        env.closed_by_user = by_user
        env.env.close()
