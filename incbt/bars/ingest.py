"""Ingest: validated input files -> new bucket files + one catalog event.

The whole call is one atomic batch:

1. read and validate every input (nothing is touched if any is bad);
2. split them into (instrument, day) pieces with a content hash each;
3. under the store's write lock, diff the pieces against the ``days`` index:
   new, corrected (the new day replaces the old one whole) or unchanged;
4. record the paths about to be written (``pending``), write every affected
   (instrument, month) bucket as a new immutable file, fsync it, rename it in;
5. one LMDB transaction appends the event, its per-day changes, the new index
   entries and file records, and clears ``pending``.

A crash before step 5 leaves the catalog as it was; the files it wrote are
listed in ``pending`` and removed by the next writer (:func:`recover`). A
call that changes nothing writes nothing and records no event.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from incbt.bars.inputs import InputBars, expand_paths, read_input, trading_days
from incbt.bars.layout import bucket_path, build_table, fsync_dir, row_groups, write_durable
from incbt.bars.schema import FLOAT_COLUMNS, day_to_iso, month_of
from incbt.catalog import (
    CHANGE_CORRECTED,
    CHANGE_NEW,
    ZERO_HASH,
    Catalog,
    Change,
    DayEntry,
    FileRecord,
)
from incbt.errors import BadInputError
from incbt.progress import NULL, Reporter

_ARRAYS = ("ts", *FLOAT_COLUMNS)


@dataclass
class Piece:
    """One (instrument, day) of input: rows [start, end) of ``src``."""

    instrument: str
    day: int
    src: Any  # InputBars or a dict of arrays read from an existing file
    start: int
    end: int
    hash: bytes

    @property
    def rows(self) -> int:
        return self.end - self.start


@dataclass
class IngestSummary:
    """What an ingest changed (or would change, for a dry run)."""

    files: int = 0
    rows_read: int = 0
    days_new: int = 0
    days_corrected: int = 0
    days_unchanged: int = 0
    instruments: int = 0
    buckets_written: int = 0
    first_day: str | None = None
    last_day: str | None = None
    corrected: list[tuple[str, str]] = field(default_factory=list)  # (instrument, day)
    seq: int | None = None  # the event recorded, None when nothing changed
    dry_run: bool = False
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per phase
    # every changed day: (instrument, day, kind, rows); what a dry run would change
    changed_days: list[tuple[str, int, int, int]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.days_new or self.days_corrected)

    def as_dict(self) -> dict[str, Any]:
        skip = ("corrected", "seconds", "changed_days")
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in skip} | {
            "corrected": [list(c) for c in self.corrected[:100]]
        }


def day_hash(src: Any, start: int, end: int) -> bytes:
    """Content hash of one day's bars: ts and OHLCV, bit for bit."""
    h = hashlib.blake2b(digest_size=16)
    for c in _ARRAYS:
        h.update(getattr(src, c)[start:end] if isinstance(src, InputBars) else src[c][start:end])
    return h.digest()


def split_days(inp: InputBars, session_tz: str) -> list[Piece]:
    days = trading_days(inp.ts, session_tz)
    brk = np.flatnonzero((inp.codes[1:] != inp.codes[:-1]) | (days[1:] != days[:-1])) + 1
    starts = np.concatenate(([0], brk)).tolist()
    ends = np.concatenate((brk, [len(inp)])).tolist()
    codes = inp.codes.tolist()
    dl = days.tolist()
    return [
        Piece(inp.names[codes[s]], dl[s], inp, s, e, day_hash(inp, s, e))
        for s, e in zip(starts, ends, strict=True)
    ]


@dataclass(frozen=True)
class _Seen:
    """What an earlier file of the same call held for one (instrument, day)."""

    hash: bytes
    source: str
    where: dict[str, int]


def collect(
    per_file: Sequence[list[Piece]], seen: dict[tuple[str, int], _Seen]
) -> dict[tuple[str, int], Piece]:
    """The pieces not seen earlier in this call; the same day twice must be identical."""
    out: dict[tuple[str, int], Piece] = {}
    for pieces in per_file:
        for p in pieces:
            key = (p.instrument, p.day)
            prev = seen.get(key)
            if prev is None:
                seen[key] = _Seen(p.hash, p.src.source, p.src.where(p.start))
                out[key] = p
            elif prev.hash != p.hash:
                a = prev.where
                raise BadInputError(
                    f"day {day_to_iso(p.day)} is also in {prev.source} "
                    f"({'line' if 'line' in a else 'row'} {next(iter(a.values()))}) "
                    "with different bars",
                    file=p.src.source,
                    instrument=p.instrument,
                    **p.src.where(p.start),
                    fix="give each (instrument, day) in one file only per ingest; a day is "
                    "replaced whole, so send the full corrected day",
                )
    return out


def chunks(files: Sequence[str], budget: int) -> list[list[str]]:
    """Consecutive groups of files of at most ``budget`` bytes (one file at least)."""
    out: list[list[str]] = []
    size = 0
    for f in files:
        n = os.path.getsize(f)
        if not out or (size + n > budget and out[-1]):
            out.append([])
            size = 0
        out[-1].append(f)
        size += n
    return out


def recover(root: str, cat: Catalog) -> int:
    """Remove files a crashed writer left behind; call under the write lock."""
    with cat.env.read() as txn:
        pending = cat.pending(txn)
        live = {p for p in pending if cat.file(txn, bytes.fromhex(_hash_of(p))) is not None}
    removed = 0
    for p in pending:
        if p not in live:
            full = os.path.join(root, p)
            try:
                os.remove(full)
                removed += 1
            except FileNotFoundError:
                pass
            with contextlib.suppress(OSError):  # folder of a never-committed instrument
                os.rmdir(os.path.dirname(full))
    if pending:
        cat.env.write(lambda txn: cat.set_pending(txn, []))
    tmp = os.path.join(root, "tmp")
    if os.path.isdir(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
    return removed


def _hash_of(path: str) -> str:
    return os.path.basename(path).split(".")[0].rsplit("-", 1)[-1]


@dataclass
class _Built:
    instrument: str
    month: str
    hash: bytes
    path: str
    rows: int
    bytes: int
    first_day: int
    last_day: int
    entries: list[DayEntry]


def _plan_bucket(
    instrument: str, month: str, pieces: list[Piece], old_days: list[DayEntry]
) -> tuple[bytes, list[DayEntry | Piece]]:
    replaced = {p.day for p in pieces}
    parts: list[DayEntry | Piece] = [e for e in old_days if e.day not in replaced]
    parts.extend(pieces)
    parts.sort(key=lambda x: x.day)
    h = hashlib.blake2b(digest_size=16)
    h.update(instrument.encode() + b"\0")
    for x in parts:
        h.update(int(x.day).to_bytes(4, "big", signed=True) + x.hash)
    return h.digest(), parts


def _write_bucket(
    root: str,
    instrument: str,
    month: str,
    fhash: bytes,
    parts: list[DayEntry | Piece],
    old_path: str | None,
    max_rows: int,
) -> _Built:
    old: dict[str, np.ndarray] | None = None
    if any(isinstance(x, DayEntry) for x in parts):
        assert old_path is not None
        t = pq.read_table(os.path.join(root, old_path), columns=list(_ARRAYS))
        old = {c: t.column(c).combine_chunks().to_numpy() for c in FLOAT_COLUMNS}
        old["ts"] = t.column("ts").combine_chunks().cast("int64").to_numpy()
    slices: dict[str, list[np.ndarray]] = {c: [] for c in _ARRAYS}
    day_rows = []
    for x in parts:
        if isinstance(x, DayEntry):
            assert old is not None
            for c in _ARRAYS:
                slices[c].append(old[c][x.offset : x.offset + x.rows])
            day_rows.append(x.rows)
        else:
            for c in _ARRAYS:
                slices[c].append(getattr(x.src, c)[x.start : x.end])
            day_rows.append(x.rows)
    arrays = {c: np.concatenate(slices[c]) for c in _ARRAYS}
    days = np.array([x.day for x in parts], dtype=np.int32)
    table = build_table(instrument, arrays["ts"], np.repeat(days, day_rows), arrays)
    groups_days = row_groups(day_rows, max_rows)
    offsets = np.concatenate(([0], np.cumsum(day_rows))).tolist()
    groups = [(offsets[s], offsets[s + k] - offsets[s]) for s, k in groups_days]
    rel = bucket_path(instrument, month, fhash.hex())
    final = os.path.join(root, rel)
    if os.path.exists(final):  # same content written before (e.g. a correction undone)
        size = os.path.getsize(final)
    else:
        tmp = os.path.join(root, "tmp", f"{fhash.hex()}.parquet.tmp")
        size = write_durable(table, groups, tmp, final)
    entries = []
    for g, (s, k) in enumerate(groups_days):
        for j in range(s, s + k):
            x = parts[j]
            ts = arrays["ts"]
            entries.append(
                DayEntry(
                    instrument,
                    int(x.day),
                    fhash,
                    g,
                    offsets[j],
                    day_rows[j],
                    x.hash,
                    int(ts[offsets[j]]),
                    int(ts[offsets[j + 1] - 1]),
                )
            )
    return _Built(
        instrument, month, fhash, rel, int(offsets[-1]), size, int(days[0]), int(days[-1]), entries
    )


def ingest(
    root: str,
    cat: Catalog,
    paths: Sequence[str],
    *,
    session_tz: str,
    row_group_rows: int,
    lock: Any,
    command: str = "ingest",
    mapping: Mapping[str, str] | None = None,
    tz: str | None = None,
    dry_run: bool = False,
    chunk_bytes: int = 64 << 20,
    progress: Reporter = NULL,
) -> IngestSummary:
    """Ingest files as one atomic batch, reading them ``chunk_bytes`` at a time.

    Memory is bounded by a chunk: each chunk's buckets are written (uncommitted)
    before the next chunk is read; a bucket a later chunk touches again merges
    with this call's earlier file, which is then deleted. One commit at the end.
    An input that fits one chunk is validated whole before anything is written.
    """
    t0 = time.perf_counter()
    files = expand_paths(paths)
    summary = IngestSummary(files=len(files), dry_run=dry_run)
    read_task = progress.task("reading", len(files))
    write_task = progress.task("writing buckets", None)
    seen: dict[tuple[str, int], _Seen] = {}
    staged: dict[tuple[str, str], _Built] = {}  # written by this call, not committed
    changes: list[tuple[str, int, int, bytes, bytes, int]] = []  # inst, day, kind, old, new, rows
    written: list[str] = []

    def read(f: str) -> tuple[InputBars, list[Piece]]:
        inp = read_input(f, mapping, tz)
        pieces = split_days(inp, session_tz)
        read_task.advance()
        return inp, pieces

    with lock():
        if not dry_run:
            recover(root, cat)
        try:
            for chunk in chunks(files, chunk_bytes):
                # Arrow parsing and hashing run without the GIL: two files at a time.
                # map() yields in file order, so the first bad file is the one reported.
                with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
                    read_out = list(pool.map(read, chunk))
                summary.rows_read += sum(len(i) for i, _ in read_out)
                pieces = collect([p for _, p in read_out], seen)
                del read_out
                plans = _classify(cat, pieces, staged, summary, changes)
                if dry_run or not plans:
                    continue
                targets = [bucket_path(i, m, h.hex()) for i, m, h, _, _ in plans]
                written.extend(targets)
                cat.env.write(lambda txn: cat.set_pending(txn, written))
                for b in _write_buckets(root, plans, row_group_rows, write_task):
                    old = staged.get((b.instrument, b.month))
                    if old is not None and old.path != b.path and not _known(cat, old.hash):
                        with contextlib.suppress(FileNotFoundError):
                            os.remove(os.path.join(root, old.path))  # never committed
                    staged[(b.instrument, b.month)] = b
            read_task.done()
            write_task.done()
            t1 = time.perf_counter()
            summary.seconds["read+write"] = t1 - t0
            _summarize(summary, changes, len(staged))
            if dry_run or not changes:
                return summary
            fsync_dir(os.path.join(root, "bars"))
            built = [staged[k] for k in sorted(staged)]
            summary.seq = cat.env.write(
                lambda txn: _commit(cat, txn, command, summary, files, changes, built)
            )
        except BaseException:
            if written and summary.seq is None:
                recover(root, cat)  # delete this call's uncommitted files
            raise
        shutil.rmtree(os.path.join(root, "tmp"), ignore_errors=True)
        summary.seconds["commit"] = time.perf_counter() - t1
        return summary


def _known(cat: Catalog, file_hash: bytes) -> bool:
    with cat.env.read() as txn:
        return cat.file(txn, file_hash) is not None


def _classify(
    cat: Catalog,
    pieces: dict[tuple[str, int], Piece],
    staged: dict[tuple[str, str], _Built],
    summary: IngestSummary,
    changes: list,
) -> list[tuple]:
    """Diff pieces against the catalog; plan the buckets they change."""
    changed: dict[tuple[str, str], list[Piece]] = defaultdict(list)
    with cat.env.read() as txn:
        keys = sorted(pieces)
        months: Any = month_of(np.array([k[1] for k in keys], dtype=np.int64)) if keys else []
        for key, month in zip(keys, months, strict=True):
            p = pieces[key]
            cur = cat.day(txn, *key)
            if cur is not None and cur.hash == p.hash:
                summary.days_unchanged += 1
                continue
            kind = CHANGE_NEW if cur is None else CHANGE_CORRECTED
            changes.append(
                (p.instrument, p.day, kind, ZERO_HASH if cur is None else cur.hash, p.hash, p.rows)
            )
            changed[(p.instrument, str(month))].append(p)
        plans = []
        for (inst, month), ps in sorted(changed.items()):
            prev = staged.get((inst, month))
            old_path: str | None
            if prev is not None:  # written by an earlier chunk of this call
                old_days, old_path = prev.entries, prev.path
            else:
                first = int(np.datetime64(month, "D").astype(np.int64))
                last = (
                    int((np.datetime64(month, "M") + 1).astype("datetime64[D]").astype(np.int64))
                    - 1
                )
                old_days = list(cat.days(txn, inst, first, last))
                old_hash = cat.bucket(txn, inst, month)
                old_rec = cat.file(txn, old_hash) if old_hash else None
                old_path = old_rec.path if old_rec else None
            fhash, parts = _plan_bucket(inst, month, ps, old_days)
            plans.append((inst, month, fhash, parts, old_path))
    return plans


def _write_buckets(root: str, plans: list[tuple], row_group_rows: int, task: Any) -> list[_Built]:
    os.makedirs(os.path.join(root, "tmp"), exist_ok=True)

    def work(plan: tuple) -> _Built:
        inst, month, fhash, parts, old_path = plan
        b = _write_bucket(root, inst, month, fhash, parts, old_path, row_group_rows)
        task.advance()
        return b

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 2)) as pool:
        built = list(pool.map(work, plans))
        dirs = {os.path.dirname(os.path.join(root, b.path)) for b in built}
        list(pool.map(fsync_dir, sorted(dirs)))
    return built


def _summarize(summary: IngestSummary, changes: list, buckets: int) -> None:
    summary.changed_days = [(c[0], c[1], c[2], c[5]) for c in changes]
    for inst, day, kind, _, _, _ in changes:
        if kind == CHANGE_NEW:
            summary.days_new += 1
        else:
            summary.days_corrected += 1
            summary.corrected.append((inst, day_to_iso(day)))
    if changes:
        ds = [c[1] for c in changes]
        summary.first_day, summary.last_day = day_to_iso(min(ds)), day_to_iso(max(ds))
        summary.instruments = len({c[0] for c in changes})
    summary.buckets_written = buckets


def _commit(
    cat: Catalog,
    txn: Any,
    command: str,
    summary: IngestSummary,
    files: list[str],
    changes: list,
    built: list[_Built],
) -> int:
    seq = cat.append_event(
        txn,
        "ingest",
        command,
        summary.as_dict()
        | {
            "sources": [os.path.basename(f) for f in files[:20]],
        },
    )
    for inst, day, kind, old, new, rows in changes:
        cat.put_change(txn, Change(seq, inst, day, kind, old, new, rows))
    for b in built:
        prev = cat.bucket(txn, b.instrument, b.month)
        if prev is not None and prev != b.hash:
            rec = cat.file(txn, prev)
            if rec is not None and rec.is_current:
                rec.intervals[-1][1] = seq
                cat.put_file(txn, rec)
        rec = cat.file(txn, b.hash) or FileRecord(
            b.hash.hex(),
            b.path,
            b.instrument,
            b.month,
            b.rows,
            b.bytes,
            b.first_day,
            b.last_day,
            [],
        )
        if not rec.is_current:
            rec.intervals.append([seq, None])
        cat.put_file(txn, rec)
        cat.set_bucket(txn, b.instrument, b.month, b.hash)
        for e in b.entries:
            cat.put_day(txn, e)
    cat.set_pending(txn, [])
    return seq
