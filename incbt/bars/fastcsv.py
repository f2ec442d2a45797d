"""A fast path for the CSV files most ingests see: one Numba pass, or no answer.

Arrow's CSV reader spent ~0.9 CPU-s per 4 M bars here (tokenising every field,
then converting it), more than the rest of an ingest's reading put together.
This reader handles the plain layout that generated and exported bar files
use, in one pass over the bytes on the calling thread (no GIL held):

- one header line, then one bar per line (``\\n`` or ``\\r\\n``), every line
  with exactly the header's fields, no blank line (blank lines after the last
  bar are left out, here and by Arrow's reader: `bars_end`);
- the instrument bare or in double quotes, printable ASCII without quotes or
  commas inside;
- numbers as ``-?digits[.digits][(e|E)[+-]digits]`` whose value is exact with
  one rounding: at most 2**53 as an integer of all its digits, and a power of
  ten within 1e-22..1e22 (Clinger's fast path: the one IEEE division or product
  of two exact doubles is the correctly rounded value, as Arrow's parser gives);
- ``ts`` as integer epoch nanoseconds, or ``YYYY-MM-DD[T ]hh:mm:ss[.f{1,9}]``
  (years 1678 to 2261) followed by ``Z`` or an offset ``[+-]hh:mm`` / ``[+-]hhmm``.

Anything else (quotes inside fields, other number or time forms, naive times,
values out of range, malformed lines, non-ASCII names) makes :func:`read`
return None, and the caller reads the file with Arrow, whose path also words
every error message: this reader never rejects a file, it only declines one.
Where it answers, the table equals Arrow's bit for bit (property-tested in
``tests/test_fastcsv.py``).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from incbt.bars.schema import COLUMNS, FLOAT_COLUMNS, is_gz

# An ingest of fewer CSV bytes than this never loads the kernel: loading it (import
# numba, then the cached machine code) costs ~0.4 s, and the reader saves ~1 CPU-ms
# per MB (0.6 s against Arrow's 0.95 s for 300 MB of bars here).
MIN_BYTES = 256 << 20

_kernel: Callable[..., Any] | None = None
_check: Callable[..., bool] | None = None  # `_csv_kernel.bars_hold`, loaded with the kernel
_loader: threading.Thread | None = None
_lock = threading.Lock()
load_error: str | None = None  # why the kernel could not be loaded, if it could not


def prepare() -> threading.Thread:
    """Load the kernel on a thread of its own; :func:`read` declines until it is loaded.

    So an ingest starts at once with Arrow and moves to this reader as soon as
    the kernel is there (compiled once per ``NUMBA_CACHE_DIR``, then loaded
    from it); the tables are the same either way. Join the thread returned
    before the process may exit.
    """
    global _loader
    with _lock:
        if _loader is None:  # kept once started: a Ctrl-C between kept one never started
            t = threading.Thread(target=_load, name="incbt-csv-kernel", daemon=True)
            t.start()
            _loader = t
        return _loader


def _load() -> None:
    global _kernel, _check, load_error
    try:
        from incbt.bars._csv_kernel import bars_hold, scan_csv_bars

        # compile, or load from the cache, the one signature read() calls (writable bytes)
        one = np.frombuffer(b"a,1,1,1,1,1,1\n", np.uint8).copy()
        roles = np.arange(7, dtype=np.int64)
        i32, i64, f64 = np.empty(2, np.int32), np.empty(2, np.int64), np.empty((5, 2))
        scan_csv_bars(one, 0, roles, False, i32, i64, f64, np.empty((2, 4), np.int64))
        bars_hold(*_read_only((i32, i64, *f64)))  # and the one bars_hold() calls
    except Exception as exc:  # an optimisation only: Arrow reads every file meanwhile
        load_error = repr(exc)
        return
    _check = bars_hold
    _kernel = scan_csv_bars


def _read_only(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    out = []
    for a in arrays:
        if a.flags.writeable:
            a = a.view()
            a.flags.writeable = False
        out.append(a)
    return out


def bars_hold(
    codes: np.ndarray,
    ts: np.ndarray,
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    v: np.ndarray,
) -> bool | None:
    """True when the bars keep every value rule and come grouped by instrument code with
    ts rising strictly within each (one Numba pass, no GIL held, where `validate` made
    ~25 NumPy calls); False where it must look; None while the kernel is not loaded, or
    for arrays other than ``codes`` int32, ``ts`` int64 and the rest float64, 1-D and
    C-contiguous (the one signature compiled)."""
    check = _check
    if check is None:
        return None
    arrays = (codes, ts, o, h, lo, c, v)
    for a, dtype in zip(arrays, _CHECK_DTYPES, strict=True):
        if a.dtype != dtype or a.ndim != 1 or not a.flags.c_contiguous:
            return None  # another signature would compile (seconds): let NumPy check
    return bool(check(*_read_only(arrays)))


_CHECK_DTYPES = tuple(map(np.dtype, (np.int32, np.int64, *[np.float64] * 5)))


def read(
    path: str,
    roles: Sequence[int],
    int_ts: bool,
    max_names: int = 1 << 15,
    span: tuple[int, int] | None = None,
) -> pa.Table | None:
    """The file as ``_read_csv`` returns it (instrument, ts as int64, the five floats),
    or None where this reader declines it (see the module docstring) or its
    kernel is not loaded yet (:func:`prepare`).

    ``roles``: for each column of the file, the index of its name in ``COLUMNS``.
    ``span``: read only the lines in bytes [start, end) (whole lines after the header:
    a part of a big file), as if they were a file of their own after the header.
    """
    got = read_block(path, roles, int_ts, max_names, span)
    return None if got is None else got[0]


def read_block(
    path: str,
    roles: Sequence[int],
    int_ts: bool,
    max_names: int = 1 << 15,
    span: tuple[int, int] | None = None,
) -> tuple[pa.Table, np.ndarray] | None:
    """:func:`read`'s table, and the bars block (:func:`incbt.bars.inputs.bars_block`)
    its ts and float columns are views of, in file order.

    The block is parsed into in place, sized by the lines of the file
    (:func:`count_lines`): no buffer for the most lines a file could hold, then a copy
    of the bars into a block of their size, which touched the bars' memory twice
    (fresh pages both times, which this machine fills at ~1 GB/s).
    """
    scan_csv_bars = _kernel
    if scan_csv_bars is None or is_gz(path) or min(roles) < 0:  # (columns it does not read:
        return None  # Arrow's reader skips them)
    buf = _mapped(path)
    if buf is None:
        return None
    if span is not None:
        buf = buf[: span[1]]
    end = trailing_blanks_start(buf[-TAIL:].tobytes(), len(buf))
    if end is not None:  # blank lines after the last bar are not bars
        buf = buf[:end]
    if span is not None:
        pos = span[0]
    else:
        head = buf[: 1 << 16]
        nl = np.flatnonzero(head == 10)
        if not len(nl) or np.count_nonzero(head[: nl[0]] == 34) % 2:
            return None  # no newline early on, or a header line quoted past its newline
        pos = int(nl[0]) + 1
    cap = count_lines(buf, pos)  # at least the bars (a line holds at most one)
    codes = np.empty(cap, np.int32)
    block = np.empty((1 + len(FLOAT_COLUMNS), cap), np.float64)  # ts bits, then the floats
    name_at = np.empty((2, max_names), np.int64)
    rows, names = scan_csv_bars(
        buf,
        pos,
        np.asarray(roles, np.int64),
        int_ts,
        codes,
        block[0].view(np.int64),
        block[1:],
        name_at,
    )
    if rows <= 0:
        return None
    if rows < cap:  # a line without a bar the kernel accepted (none known): exact size
        block, codes = np.ascontiguousarray(block[:, :rows]), codes[:rows]
    dictionary = pa.array(
        [bytes(buf[a:b]).decode("ascii") for a, b in name_at[:, :names].T.tolist()], pa.string()
    )
    inst = pa.DictionaryArray.from_arrays(pa.array(codes), dictionary)
    table = pa.table(
        [inst, pa.array(block[0].view(np.int64)), *(pa.array(block[k]) for k in range(1, 6))],
        names=list(COLUMNS),
    )
    return table, block


_COUNT_CHUNK = 1 << 18
_scratch = threading.local()


def count_lines(buf: np.ndarray, pos: int) -> int:
    """The lines of ``buf`` from ``pos``: its newlines, plus one where the last line has
    none (so at least the bars a parse from ``pos`` finds). NumPy over chunks into one
    reused buffer: ~1.3 ms for 15 MB, where a Numba loop (not vectorized here) took 6."""
    tmp = getattr(_scratch, "eq", None)
    if tmp is None:
        tmp = _scratch.eq = np.empty(_COUNT_CHUNK, bool)
    n = 0
    for a in range(pos, len(buf), _COUNT_CHUNK):
        b = min(a + _COUNT_CHUNK, len(buf))
        t = tmp[: b - a]
        np.equal(buf[a:b], 10, out=t)
        n += int(np.count_nonzero(t))
    if len(buf) > pos and buf[-1] != 10:
        n += 1
    return n


def _mapped(path: str) -> np.ndarray | None:
    """The file's bytes, mapped copy-on-write (writable, the kernel's one signature; pages
    come from the page cache, not copied into fresh memory: ~6% of a read here), or None
    for an empty file."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return None
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    return np.frombuffer(m, dtype=np.uint8)


_FILLER = b" \t,;|\r\n"  # what a row without a value holds
TAIL = 1 << 16  # the bytes looked at for empty rows after the last bar (~6,000 of them)


def is_empty_row(line: bytes) -> bool:
    """A line holding no value: blank, or separators only (what Excel writes for rows
    emptied or formatted below the data: ``;;;;;;``). Blank lines and such rows after
    the last bar are not bars; between bars, they are refused."""
    return not line.strip(_FILLER)


def trailing_blanks_start(tail: bytes, size: int) -> int | None:
    """The end of the bars of a file of ``size`` bytes ending with ``tail``, when empty
    rows (:func:`is_empty_row`) follow the last bar; else None. (QA 2026-12-07: an
    Excel file's ``;;;;;;`` rows after its last bar were refused as blank lines
    "between bars".)"""
    stripped = tail.rstrip(b"\r\n")
    while stripped:  # the empty rows at the end, one at a time
        j = stripped.rfind(b"\n") + 1
        if j == 0 or not is_empty_row(stripped[j:]):
            break
        stripped = stripped[:j].rstrip(b"\r\n")
    rest = tail[len(stripped) :]
    if not stripped or (not rest.strip(b"\r\n") and rest.count(b"\n") <= 1):
        return None
    return size - len(tail) + len(stripped)


def bars_end(path: str) -> int | None:
    """Where a plain file's bars end, when blank lines follow the last one (a file saved
    with an extra newline, say); None when they do not. Blank lines between bars are
    refused, with their line number; trailing ones are ignored, by both readers."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(max(0, size - TAIL))
        return trailing_blanks_start(f.read(), size)


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Meanwhile this reader declines every file, so Arrow reads them, and `bars_hold`
    answers None, so NumPy checks them (comparisons)."""
    global _kernel, _check
    kernel, _kernel = _kernel, None
    check, _check = _check, None
    try:
        yield
    finally:
        _kernel, _check = kernel, check
