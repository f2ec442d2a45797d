"""Where bars live on disk and how a bars file is written.

Files per (instrument, month) bucket, content-addressed and immutable:
``bars/<instrument>/<YYYY-MM>-<hash>.parquet`` (no folder per month: making
and fsyncing one was a fifth of the ingest time). DESIGN.md measured
instrument-month files as the fast layout for range reads; per-day files were
the slow one. A month is a short list of files with disjoint days: a base
file and small append files of the days added later, folded by size tiers
(``incbt/bars/ingest.py`` says which file an ingest writes and why). Old files
stay for time travel (``--as-of``).

Row groups hold whole days, as many as fit in ``row_group_rows`` (16384 by
default, so a 390-bar month is one ~8k-row group: 390-row groups read slowly).

Codec and encodings (:data:`COMPRESSION`, :data:`ENCODINGS`): LZ4_RAW pages,
``ts`` DELTA_BINARY_PACKED (minute bars have a constant step: ~500 bytes for
an 8k-row group) and the float columns BYTE_STREAM_SPLIT (the sign, exponent
and high mantissa bytes of prices sit together, where a fast codec finds
them). Measured on 480 instrument-month files of 4,056,000 bars (40
instruments x 260 days, one thread, against the zstd level 1 with plain
encodings written before): write 0.25-0.28 CPU-s against 0.69-0.78, 105 MiB
against 101 MiB, reading ts/open/close of every file 84-146 ms against
163-232 ms and all six columns (``Store.bars``'s read) 87-102 ms against
219-241 ms. zstd with the same encodings was 103 MiB at 0.34-0.40 CPU-s and
reads ~1.4x slower than LZ4; no compression 159 MiB at ~0.26 CPU-s; zstd
with delta ts alone the smallest (75 MiB) at zstd's full write cost. Parquet
files name their codec and encodings, so stores with zstd files written
before read as they did, alone or mixed with new files.

Durability: files are written and renamed into place without an fsync each;
the writer then calls :func:`sync_files` once for the whole batch (one
``syncfs``) before the catalog transaction that makes them visible.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from incbt.bars.schema import BARS_SCHEMA, FLOAT_COLUMNS

COMPRESSION = "lz4_raw"
ENCODINGS = {"ts": "DELTA_BINARY_PACKED", **dict.fromkeys(FLOAT_COLUMNS, "BYTE_STREAM_SPLIT")}


# The characters an instrument's folder name keeps as they are; any other is
# percent-encoded, 3 bytes for each byte of its UTF-8 (an "é" takes 6).
DIR_SAFE = "-_.=+@^~"
# The longest name of one path component file systems allow (ext4, xfs, btrfs, APFS,
# NTFS: 255 bytes), which an instrument's folder name must fit (checked on input:
# :func:`incbt.bars.inputs.validate`).
MAX_DIR_BYTES = 255


def instrument_dir(instrument: str) -> str:
    """A file-system-safe folder name for an instrument (percent-encoded, ASCII)."""
    name = quote(instrument, safe=DIR_SAFE)
    if name in (".", ".."):
        name = name.replace(".", "%2E")
    return name


def instrument_dir_bytes(instrument: str) -> int:
    """How many bytes the instrument's folder name takes (at most :data:`MAX_DIR_BYTES`
    on a file system)."""
    return len(instrument_dir(instrument).encode())


def bucket_path(instrument: str, month: str, file_hash: str) -> str:
    """Path of a bucket file, relative to the store."""
    return os.path.join("bars", instrument_dir(instrument), f"{month}-{file_hash}.parquet")


def row_groups(day_rows: list[int], max_rows: int) -> list[tuple[int, int]]:
    """Split consecutive days into row groups of whole days: [(first_day_idx, n_days)]."""
    out = []
    start, rows = 0, 0
    for i, r in enumerate(day_rows):
        if rows and rows + r > max_rows:
            out.append((start, i - start))
            start, rows = i, 0
        rows += r
    if day_rows:
        out.append((start, len(day_rows) - start))
    return out


# How a bars file is built in memory: the instrument as a one-entry dictionary, which
# the writer encodes as it is, instead of a string per row that it would hash (a fifth
# of the write's time). The file holds plain Parquet strings all the same (no Arrow
# schema is stored), and reads back as BARS_SCHEMA.
_WRITE_SCHEMA = pa.schema(
    [
        pa.field("instrument", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        *list(BARS_SCHEMA)[1:],
    ]
)


_ZEROS = np.zeros(0, np.int32)


def _zeros(n: int) -> np.ndarray:
    """``n`` int32 zeros, a read-only view of one shared array (every bucket file's
    instrument codes: not a fresh array to touch each time)."""
    global _ZEROS
    z = _ZEROS
    if len(z) < n:
        z = np.zeros(max(n, 2 * len(z), 1 << 16), np.int32)
        z.flags.writeable = False
        _ZEROS = z
    return z[:n]


def build_table(
    instrument: str, ts: np.ndarray, day: np.ndarray, cols: dict[str, np.ndarray]
) -> pa.Table:
    n = len(ts)
    name = pa.DictionaryArray.from_arrays(pa.array(_zeros(n)), pa.array([instrument], pa.string()))
    return pa.table(
        [
            name,
            # int64 -> timestamp as a view: pa.array(ts, type=timestamp) converts each
            # value (~13 ns a row, 55 ms of a 4M-row ingest)
            pa.array(np.ascontiguousarray(ts, np.int64)).view(pa.timestamp("ns", tz="UTC")),
            pa.array(np.ascontiguousarray(day, np.int32)).view(pa.date32()),
            *(
                pa.array(cols[c], type=pa.float64())
                for c in ("open", "high", "low", "close", "volume")
            ),
        ],
        schema=_WRITE_SCHEMA,
    )


def write_file(table: pa.Table, groups: list[tuple[int, int]], path: str) -> int:
    """Write ``table`` with the given row groups (row ranges) at ``path``, its place.

    Returns the file size. Written in place, not in a staging folder then renamed: no
    reader opens a bars file the catalog does not list, and the caller lists ``path``
    as pending in the catalog before writing it, so a crash mid-write leaves a partial
    file that the next writer removes (:func:`incbt.bars.ingest.recover`) before
    anything could take it for a complete one. (The ingest of 60 days x 500
    instruments, 3,000 files: best 4.99 -> 3.82 s, median 5.58 -> 4.85 s, 6
    alternating runs each, 2026-12-04: a rename across folders cost each file ~0.3 ms
    of system time, two threads writing.) Not yet durable: the caller makes a whole
    batch durable at once with :func:`sync_files` (one ``syncfs`` instead of an fsync
    per file) before recording it anywhere.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # Dictionary-encode only the low-cardinality columns: trying it on prices costs
    # ~35 % of the write time and then falls back anyway (measured in benchmarks/).
    # Encoded in memory, then written with one call: the writer's many small writes to
    # a file cost ~0.2 ms of system time a file while another thread writes too (the
    # ingest of 480 bucket files: 0.53 -> 0.43 CPU-s in write_file, 2026-12-04); a
    # stream, not a path: pyarrow's file-system resolution costs ~50 us a file.
    sink = pa.BufferOutputStream()
    with (
        pq.ParquetWriter(
            sink,
            table.schema,
            compression=COMPRESSION,
            use_dictionary=["instrument", "date"],
            column_encoding=ENCODINGS,
            # min/max of the times only: files are pruned by their instrument, a folder
            # of incbt.query.register_bars's view, and row groups by their dates, so
            # one instrument's statistics prune nothing, and those of the prices little;
            # the instrument's (dictionary) and the prices' were 16% of the encoding
            # (200 instrument-month files: 97 -> 81 ms of CPU, best of 7, 2026-12-04)
            write_statistics=["ts", "date"],
            store_schema=False,  # read back as BARS_SCHEMA, not as the in-memory dictionary
        ) as w,
    ):
        for start, rows in groups:
            w.write_table(table.slice(start, rows), row_group_size=rows)
    data = sink.getvalue()
    with open(path, "wb") as f:
        f.write(data)
    return data.size


class RecentFiles:
    """The bars of the small bucket files this process wrote last, by content hash.

    A bars file is named by the hash of its content and never changes, so what was
    written under a hash is what a read of that file gives: an update reads the day it
    has just ingested (one small append file per instrument) from here, not from disk.
    Only files of at most ``max_file_rows`` rows are kept, at most ``max_rows`` in all,
    the oldest forgotten first.
    """

    def __init__(self, max_file_rows: int = 2048, max_rows: int = 1 << 19) -> None:
        # 1 << 19 rows: 24 MiB, a day of 1,300 instruments
        self.max_file_rows = max_file_rows
        self.max_rows = max_rows
        self._files: OrderedDict[bytes, dict[str, np.ndarray]] = OrderedDict()
        self._rows = 0
        self._lock = threading.Lock()

    def remember(self, file_hash: bytes, arrays: dict[str, np.ndarray]) -> None:
        """Keep a file's columns (ts and the five floats, in file order; not copied:
        the caller no longer writes them)."""
        n = len(arrays["ts"])
        if n > self.max_file_rows:
            return
        with self._lock:
            if file_hash in self._files:
                return
            self._files[file_hash] = arrays
            self._rows += n
            while self._rows > self.max_rows:
                _, old = self._files.popitem(last=False)
                self._rows -= len(old["ts"])

    def recall(self, file_hash: bytes) -> dict[str, np.ndarray] | None:
        with self._lock:
            return self._files.get(file_hash)

    def clear(self) -> None:
        with self._lock:
            self._files.clear()
            self._rows = 0


RECENT = RecentFiles()


def _syncfs_fn() -> Any:
    """libc's ``syncfs(2)`` (Linux), or None where it is not available."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_SYNCFS = _syncfs_fn()


def sync_files(root: str, paths: Iterable[str]) -> str:
    """Make files (and their renames) durable before they are recorded in the catalog.

    One ``syncfs(2)`` of the file system holding ``root`` flushes every file
    written so far and their directory entries (ext4/xfs commit the journal);
    measured here on 500 small bucket files: ~20-100 ms against ~170 ms of
    fsyncs one by one. Where ``syncfs`` is missing (not Linux) or fails, each
    file is fsynced instead, and then the directories of ``paths`` (the portable
    guarantee for the renames). After a ``syncfs`` the directories are not
    fsynced: their entries are metadata it flushed, and each directory fsync
    still cost ~0.2-0.7 ms here (500 of them in a daily update of 500
    instruments). Returns "syncfs" or "fsync", the method used.
    """
    paths = list(paths)
    method = "fsync"
    if _SYNCFS is not None and paths:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _SYNCFS(fd) == 0:
                method = "syncfs"
            else:
                err = ctypes.get_errno()
                if err != errno.ENOSYS:  # a write-back error: never fall back silently
                    raise OSError(err, f"syncfs of {root}: {os.strerror(err)}")
        finally:
            os.close(fd)
    if method == "fsync":
        for p in paths:
            fsync_file(p)
        for d in sorted({os.path.dirname(p) for p in paths}):
            fsync_dir(d)
    return method


def fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
