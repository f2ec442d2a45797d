"""``incbt gc``: delete the superseded bars files that time travel keeps.

Every ingest that appends, corrects or folds a month leaves the files it
replaced on disk, so that ``--as-of EVENT`` can show the bars as they were.
``gc`` removes the files that are not current and whose last interval ended
at or before a cutoff event (default: the last event, i.e. every non-current
file). Current bars, results, the event log and ``changes`` are untouched.

The **horizon** (catalog meta ``gc_horizon``) is the oldest event ``--as-of``
still shows exactly: the latest event at which a removed file stopped being
current (a file superseded at ``s`` is not needed by ``--as-of`` ``>= s``).
Time travel to an event before it fails with a message naming it.

Atomic like every write: under the write lock, after :func:`recover`, one LMDB
transaction appends the ``gc`` event, drops the files' records, raises the
horizon and records the paths to delete (``pending`` key ``gc``); only then are
the files deleted and the intent cleared. A crash before the commit leaves the
store as it was; after it, the next writer's ``recover`` deletes what is left
(:func:`incbt.bars.ingest.finish_gc`).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

from incbt.bars.ingest import finish_gc
from incbt.catalog import Catalog, FileRecord
from incbt.errors import NotFoundError, SetupError, UsageError

DAY_NS = 86_400 * 10**9


@dataclass
class GcSummary:
    """What a gc removed (or would remove, for a dry run)."""

    files_removed: int = 0
    bytes_freed: int = 0
    files_kept: int = 0  # superseded files kept for time travel after the cutoff
    bytes_kept: int = 0
    cutoff: int = 0  # files superseded at or before this event are removed
    horizon: int = 0  # the oldest event --as-of shows exactly afterwards (0: any)
    seq: int | None = None  # the gc event, None for a dry run or when nothing was removed
    dry_run: bool = False
    paths: list[str] = field(default_factory=list)  # every file (not in the repr)
    # the results files: their dead rows dropped (incbt.results.compact.Reclaim)
    results: Any = None
    # the catalog's file compacted (``catalog=True``: incbt.catalog.compact)
    catalog: Any = None

    def __repr__(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        r = self.results
        rewritten = (
            f"; results: {'would rewrite' if self.dry_run else 'rewrote'} {r.batches} "
            f"batch(es), about {r.dead_daily_rows:,} dead daily rows"
            if r is not None and r.batches
            else ""
        )
        return (
            f"<GcSummary: {verb} {self.files_removed:,} file(s), "
            f"{self.bytes_freed / 2**20:,.1f} MiB (.paths lists them); kept "
            f"{self.files_kept:,}"
            + (
                f" for time travel back to event {self.horizon}"
                if self.horizon
                else "; time travel reaches every event"  # as the CLI says (QA 2026-12-06)
            )
            + rewritten
            + (
                ""
                if self.catalog is None
                else f"; catalog: {self.catalog.bytes_before / 2**20:,.1f} MiB, left as it "
                "is (too little of it free)"
                if self.catalog.skipped
                else f"; catalog: {'would take' if self.dry_run else 'compacted to'} "
                f"{self.catalog.bytes_after / 2**20:,.1f} MiB of "
                f"{self.catalog.bytes_before / 2**20:,.1f} MiB"
            )
            + ">"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in ("files_removed", "bytes_freed", "files_kept", "bytes_kept", "cutoff")
        } | {"horizon": self.horizon}


def cutoff_event(
    cat: Catalog,
    txn: Any,
    before: int | None,
    keep_days: float | None,
    now_ns: int | None = None,
) -> int:
    """The event at or before which superseded files go (see :func:`gc`)."""
    last = cat.last_seq(txn)
    if before is not None and keep_days is not None:
        raise UsageError("give --before EVENT or --keep-days N, not both")
    if before is not None:
        if before < 1:  # no event can be: usage (QA 2026-12-06)
            raise UsageError(f"--before {before}: events are numbered from 1 (1..{last} here)")
        if not 1 <= before <= last:
            raise NotFoundError(  # exit 1, as `query --as-of` of no event (QA 2026-12-05)
                f"--before {before}: no such event; the log has events 1..{last}"
            )
        return before
    if keep_days is not None:
        if not 0 <= keep_days <= 365_000:  # NaN fails both
            raise UsageError(f"--keep-days {keep_days}: give a number of days from 0 to 365,000")
        since = (time.time_ns() if now_ns is None else now_ns) - int(keep_days * DAY_NS)
        # the first event newer than N days ago; none: the store is as it was then
        for e in cat.events(txn, newest_first=False):
            if e.time_ns >= since:
                return e.seq
        return last
    return last


def plan(cat: Catalog, txn: Any, cutoff: int) -> tuple[list[FileRecord], GcSummary]:
    """The files a gc with this cutoff removes, and its summary (horizon included)."""
    s = GcSummary(cutoff=cutoff, horizon=cat.gc_horizon(txn))
    doomed = []
    for r in cat.files(txn):
        if r.is_current:
            continue
        ended = max((int(i[1]) for i in r.intervals if i[1] is not None), default=0)
        if ended <= cutoff:
            doomed.append(r)
            s.files_removed += 1
            s.bytes_freed += r.bytes
            s.horizon = max(s.horizon, ended)
        else:
            s.files_kept += 1
            s.bytes_kept += r.bytes
    doomed.sort(key=lambda r: r.path)
    s.paths = [r.path for r in doomed]
    return doomed, s


def gc(
    root: str,
    cat: Catalog,
    *,
    lock: Any,
    before: int | None = None,
    keep_days: float | None = None,
    dry_run: bool = False,
    command: str = "gc",
    now_ns: int | None = None,
) -> GcSummary:
    """Remove superseded bars files (see the module docstring); returns what it did.

    ``before``: keep what ``--as-of before`` and later need; ``keep_days``: the
    same, from the first event newer than that many days ago; neither: remove
    every file that is not current. ``dry_run``: say what would go; write nothing.
    """
    if dry_run:
        with cat.env.read() as txn:
            _, s = plan(cat, txn, cutoff_event(cat, txn, before, keep_days, now_ns))
        s.dry_run = True
        return s
    with lock():  # taking it removed what a crashed writer left (Store.lock)

        def commit(txn: Any) -> GcSummary:
            doomed, s = plan(cat, txn, cutoff_event(cat, txn, before, keep_days, now_ns))
            if not doomed:
                return s
            s.seq = cat.append_event(txn, "gc", command, s.as_dict())
            for r in doomed:
                cat.drop_file(txn, bytes.fromhex(r.hash))
            cat.put_meta(txn, "gc_horizon", s.horizon)
            cat.set_gc_pending(txn, s.paths)
            return s

        try:
            summary = cat.env.write(commit)
        except SetupError:
            # the disk is full, and the catalog's commit needs room: the files the user
            # asked to remove go first (superseded ones, which no current bars read; a
            # crash before the commit leaves their records, which the next gc drops), then
            # the commit, once (QA 2026-12-06: gc, which frees space, could not run)
            with cat.env.read() as txn:
                doomed, _ = plan(cat, txn, cutoff_event(cat, txn, before, keep_days, now_ns))
            if not doomed:
                raise
            for r in doomed:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(root, r.path))
            summary = cat.env.write(commit)
        if summary.seq is not None:
            finish_gc(root, cat)
        return summary
