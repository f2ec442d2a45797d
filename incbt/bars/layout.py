"""Where bars live on disk and how a bucket file is written.

One file per (instrument, month) bucket, content-addressed and immutable:
``bars/<instrument>/<YYYY-MM>-<hash>.parquet`` (no folder per month: making
and fsyncing one was a fifth of the ingest time). DESIGN.md measured this
(instrument-month files) as the fast layout for range reads; per-day files
were the slow one. A change to any day of a month writes a new file for the
month; the old one stays for time travel (``--as-of``).

Row groups hold whole days, as many as fit in ``row_group_rows`` (16384 by
default, so a 390-bar month is one ~8k-row group: 390-row groups read slowly).
"""

from __future__ import annotations

import os
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from incbt.bars.schema import BARS_SCHEMA

COMPRESSION = "zstd"


def instrument_dir(instrument: str) -> str:
    """A file-system-safe folder name for an instrument (percent-encoded)."""
    name = quote(instrument, safe="-_.=+@^~")
    if name in (".", ".."):
        name = name.replace(".", "%2E")
    return name


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


def build_table(
    instrument: str, ts: np.ndarray, day: np.ndarray, cols: dict[str, np.ndarray]
) -> pa.Table:
    n = len(ts)
    return pa.table(
        [
            pa.repeat(instrument, n),
            pa.array(ts, type=pa.timestamp("ns", tz="UTC")),
            pa.array(day, type=pa.date32()),
            *(
                pa.array(cols[c], type=pa.float64())
                for c in ("open", "high", "low", "close", "volume")
            ),
        ],
        schema=BARS_SCHEMA,
    )


def write_durable(
    table: pa.Table, groups: list[tuple[int, int]], tmp_path: str, final_path: str
) -> int:
    """Write ``table`` with the given row groups (row ranges), fsync, rename into place.

    Returns the file size. The rename is atomic, so a file at ``final_path`` is
    always complete.
    """
    os.makedirs(os.path.dirname(final_path), exist_ok=True)
    # Dictionary-encode only the low-cardinality columns: trying it on prices costs
    # ~35 % of the write time and then falls back anyway (measured in benchmarks/).
    with pq.ParquetWriter(
        tmp_path,
        BARS_SCHEMA,
        compression=COMPRESSION,
        use_dictionary=["instrument", "date"],
        write_statistics=True,
    ) as w:
        for start, rows in groups:
            w.write_table(table.slice(start, rows), row_group_size=rows)
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp_path, final_path)
    return os.path.getsize(final_path)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
