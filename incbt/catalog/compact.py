"""``incbt gc --catalog``: give the catalog's file back the pages it no longer uses.

LMDB reuses the pages a write frees (a dropped sweep's snapshots, superseded segments)
but never shrinks its file. Compacting writes a copy of the catalog with only its live
pages (``mdb_env_copy`` with ``MDB_CP_COMPACT``: a consistent read of the last commit),
into ``<store>/catalog.compact/``, appends the ``gc`` event there, makes it durable,
then swaps the two folders in one step (``renameat2(RENAME_EXCHANGE)``: at every
moment ``<store>/catalog`` is the old catalog or the new one, whole, with its own
``lock.mdb``), and deletes the old one. Under the store's write lock: no commit can
fall between the copy and the swap.

A kill at any point leaves the old catalog in place (before the swap) or the new one
(after it); what is left in ``catalog.compact`` is deleted by the next compaction or
the next writer (:func:`leftover`). Processes that had the store open when it was
swapped follow it by themselves (:meth:`incbt.catalog.env.Env.follow`: the new
catalog names the file it replaced); one in the middle of a transaction then is told
the store was replaced, and to open it again.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import time
from dataclasses import dataclass
from typing import Any

import lmdb

from incbt.bars.layout import fsync_dir, fsync_file
from incbt.catalog.env import Env, close_env, compacted_from
from incbt.errors import SetupError, disk_full, is_full_disk

COPY_DIR = "catalog.compact"  # the compacted copy, then the old catalog, in the store
PROBE_DIR = COPY_DIR + ".probe"  # swapped with it first: can this system swap folders?
SPARE = 4 << 20  # the room a compaction asks beyond its copy (lock file, event, commits)
CHAIN = 16  # the replaced files a catalog remembers (processes idle across compactions)
# a catalog is compacted only where that frees at least this share of its file and this
# many bytes: else it is left as it is, with no event (QA 2026-12-07: each gc --catalog
# of a compact catalog rewrote it, made every process holding it follow, and logged)
WORTH_SHARE = 0.1
WORTH_BYTES = 64 << 10


@dataclass
class CatalogCompaction:
    """What compacting the catalog did (or, for a dry run, would do)."""

    bytes_before: int = 0  # data.mdb's size before
    bytes_after: int = 0  # after (a dry run: the pages in use, what a copy would take)
    seconds: float = 0.0
    dry_run: bool = False
    # left as it was (a dry run: would be): too little of it free to be worth a rewrite
    skipped: bool = False

    @property
    def bytes_freed(self) -> int:
        return max(self.bytes_before - self.bytes_after, 0)


def worth(size: int, used: int) -> bool:
    """Whether compacting a catalog file of ``size`` bytes, ``used`` of them in use,
    frees enough to be done (``WORTH_SHARE`` of it, and ``WORTH_BYTES``)."""
    free = size - used
    return free >= WORTH_BYTES and free >= WORTH_SHARE * size


def used_bytes(env: lmdb.Environment) -> int:
    """The bytes a compacted copy of ``env`` takes: its tables' pages, the main table's
    and the two meta pages."""
    pages = 2
    with env.begin() as txn:
        names = [k for k, _ in txn.cursor()]
        st = env.stat()
        psize = st["psize"]
        pages += st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
        for name in names:
            try:
                db = env.open_db(name, txn=txn, create=False)
            except lmdb.Error:  # a key of the main table that is no table
                continue
            s = txn.stat(db)
            pages += s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"]
    return pages * psize


def sizes(env: Env) -> tuple[int, int]:
    """The catalog file's size and the bytes a compacted copy of it takes (those in
    use), following first a compaction another process made since."""
    with env.read():  # (Env.still_here follows it)
        return env.size_bytes(), used_bytes(env.env)


def beside(store_path: str) -> str:
    """The folder the catalog's folder is in: the store's, or where its ``catalog`` is a
    link to (the copy is made beside it, on its file system)."""
    return os.path.dirname(os.path.realpath(os.path.join(store_path, "catalog")))


def leftover(store_path: str) -> None:
    """Delete what a compaction killed part-way left (its copy, or the old catalog it
    had swapped out); call under the write lock."""
    for name in (COPY_DIR, PROBE_DIR):
        shutil.rmtree(os.path.join(beside(store_path), name), ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: str, b: str) -> None:
    """Swap two folders of one file system in one step (Linux ``renameat2``); OSError
    where the system or the file system cannot."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        raise OSError(errno.ENOSYS, "renameat2 is not available") from None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def compact_catalog(store: Any, command: str, dry_run: bool = False) -> CatalogCompaction:
    """Compact the catalog of ``store`` (see the module); under its write lock unless
    ``dry_run``."""
    t0 = time.perf_counter()
    env = store.catalog.env
    cat_dir = env.path
    before, need = sizes(env)
    skip = not worth(before, need)
    if dry_run or skip:
        return CatalogCompaction(before, need, dry_run=dry_run, skipped=skip)
    root = os.path.dirname(cat_dir)  # (the environment's path is its real one: beside)
    copy = os.path.join(root, COPY_DIR)
    leftover(store.path)
    _check_exchange(root)
    st = os.statvfs(root)
    if st.f_bavail * st.f_frsize < need + SPARE:
        # the margin said too: "a copy of its 1,810,432 bytes, and 5,115,904 are free"
        # read as a refusal with room to spare (QA 2026-12-07)
        raise disk_full(
            f" (the store's disk, {root}: compacting the catalog writes a copy of its "
            f"{need:,} bytes in use and needs {SPARE:,} more beside it, for the copy's "
            f"lock file and its event; {st.f_bavail * st.f_frsize:,} are free)"
        )
    os.mkdir(copy)
    try:
        with env.read():  # the live pages of the last commit (none can follow: the lock)
            env.env.copy(copy, compact=True)
        chain = [*compacted_from(env.env), list(env.identity or ())][-CHAIN:]
        after = os.path.getsize(os.path.join(copy, "data.mdb"))
        _stamp(copy, env.env.info()["map_size"], chain, command, before, after)
        fsync_file(os.path.join(copy, "data.mdb"))
        fsync_dir(copy)
        exchange(copy, cat_dir)
        fsync_dir(root)
    except (OSError, SetupError, lmdb.Error) as exc:
        # the copy deleted at once, not left on a full disk until the next writer; a full
        # disk said as the store's, not as the copy's "catalog" (the copy opened to add
        # the event, its lock file, or the event's commit: QA 2026-12-07)
        leftover(store.path)
        if is_full_disk(exc) or getattr(exc, "full_disk", None) is not None:
            raise disk_full(
                f" (the store's disk, {root}, filled while the catalog was copied)"
            ) from None
        raise
    leftover(store.path)  # the old catalog, swapped out
    # this process takes up the new catalog now, or, where another of its threads is in
    # a transaction, at its first transaction after it (Env.still_here): not waited for
    # here, under the write lock
    env.follow(wait=0)
    after = os.path.getsize(os.path.join(cat_dir, "data.mdb"))
    return CatalogCompaction(before, after, time.perf_counter() - t0)


def _stamp(copy: str, map_size: int, chain: list, command: str, before: int, after: int) -> None:
    """Record in the copy the files it replaces (for the processes that have them open)
    and the ``gc`` event that says the compaction: both are there only if the swap is."""
    from incbt.catalog import Catalog

    cat = Catalog(copy, map_size / 2**20)
    try:

        def write(txn: Any) -> None:
            cat.put_meta(txn, "compacted_from", chain)
            cat.append_event(
                txn,
                "gc",
                command,
                {"catalog_bytes_before": before, "catalog_bytes_after": after},
            )

        cat.env.write(write)
    finally:
        close_env(copy)


def _check_exchange(root: str) -> None:
    """Refuse, before any copy, a system that cannot swap two folders in one step."""
    a, b = os.path.join(root, COPY_DIR), os.path.join(root, PROBE_DIR)
    os.mkdir(a)
    try:
        os.mkdir(b)
        try:
            exchange(a, b)
        except OSError as exc:
            raise SetupError(
                f"compacting the catalog needs to swap two folders in one step (Linux's "
                f"renameat2 RENAME_EXCHANGE), which this system or the file system of "
                f"{root} cannot ({exc.strerror}). Nothing was changed. Fix: copy the store "
                "to a Linux file system such as ext4, xfs or btrfs and compact it there"
            ) from None
        finally:
            os.rmdir(b)
    finally:
        os.rmdir(a)


__all__ = ["COPY_DIR", "CatalogCompaction", "compact_catalog", "exchange", "leftover", "used_bytes"]
