"""The catalog: the event log and the indexes derived from it, in one LMDB.

Named databases (keys are big-endian so byte order is numeric order):

==========  ==========================================  ===============================
db          key                                         value
==========  ==========================================  ===============================
meta        setting name                                JSON value
events      seq (u64)                                   event JSON: seq, time, kind, ...
changes     seq (u64) | instrument | 0 | day (u32)      kind, old hash, new hash, rows
days        instrument | 0 | day (u32)                  file, row group, offset, rows,
                                                        content hash, first/last ts
files       file hash (16 bytes)                        file record JSON
buckets     instrument | 0 | month "YYYY-MM"            current file hashes, 16 bytes
                                                        each, oldest first; the files
                                                        of a month hold disjoint days
pending     b"files"                                    JSON list of paths being written
pending     b"gc"                                       JSON list of bars files a
                                                        committed ``gc`` dropped from
                                                        ``files``, still to delete
==========  ==========================================  ===============================

Meta ``gc_horizon`` (absent: 0) is the oldest event ``--as-of`` can show
exactly: ``incbt gc`` removed bars files that were current only before it.

``day`` is days since 1970-01-01 of the trading day, stored as ``day + 2**31``.
Every change to the indexes is made in the same transaction as the event that
causes it, so the indexes are always the fold of the log.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import lmdb
import numpy as np

from incbt.catalog.env import FORMAT_VERSION as FORMAT_VERSION
from incbt.catalog.env import Env, open_env
from incbt.errors import CatalogError

DAY_OFFSET = 2**31

DAY_VALUE = struct.Struct(">16sIII16sqq")  # file, rg, offset, rows, hash, first, last
_CHANGE_VALUE = struct.Struct(">B16s16sI")  # kind, old hash, new hash, rows
# The bar fields a correction changed, as bits (``fields``): a correction of the same
# bars' times whose other fields differ in some only. Any other change (a new day, a
# removed one, bars added or taken away, or a correction recorded before 2026-12-07)
# may change every field: ANY_FIELD.
FIELD_BITS = {"open": 1, "high": 2, "low": 4, "close": 8, "volume": 16}
ANY_FIELD = 0xFF


def field_mask(fields: Iterable[str]) -> int:
    """The bits of these bar fields (:data:`FIELD_BITS`)."""
    out = 0
    for f in fields:
        out |= FIELD_BITS[f]
    return out


_ROWS_AT = 24  # where a day value's row count sits (after file, row group, offset)
_U32 = struct.Struct(">I")

CHANGE_NEW = 1
CHANGE_CORRECTED = 2
CHANGE_REMOVED = 3  # ``incbt remove``: the day's bars are gone (new hash zero, rows 0)
CHANGE_KINDS = {CHANGE_NEW: "new", CHANGE_CORRECTED: "corrected", CHANGE_REMOVED: "removed"}
# meta: instruments ``incbt remove`` left with no day (the runs over *all* instruments
# held results for them: the planner cuts those, though the store no longer lists them)
REMOVED_INSTRUMENTS = "removed_instruments"
ZERO_HASH = b"\0" * 16


def seq_key(seq: int) -> bytes:
    return struct.pack(">Q", seq)


def day_key(instrument: str, day: int) -> bytes:
    return instrument.encode() + b"\0" + struct.pack(">I", day + DAY_OFFSET)


def split_day_key(key: bytes) -> tuple[str, int]:
    return key[:-5].decode(), struct.unpack(">I", key[-4:])[0] - DAY_OFFSET


# A day value as a NumPy record (the same bytes as DAY_VALUE): the executors' bar
# reads take a range of an instrument's days as arrays (:meth:`Catalog.day_index`),
# not one DayEntry each (~2.2 us an entry, ~0.3 us a day as arrays)
DAY_RECORD = np.dtype(
    [
        ("file", ">u8", (2,)),
        ("row_group", ">u4"),
        ("offset", ">u4"),
        ("rows", ">u4"),
        ("hash", "V16"),
        ("first_ts", ">i8"),
        ("last_ts", ">i8"),
    ]
)
assert DAY_RECORD.itemsize == DAY_VALUE.size
# what reading a day's bars takes (DayIndex.for_reading)
READ_RECORD = np.dtype([(f, DAY_RECORD[f]) for f in ("file", "row_group", "offset", "rows")])


class DayIndex(NamedTuple):
    """A range of one instrument's current days as arrays, in day order."""

    days: np.ndarray  # int32, days since 1970-01-01
    records: np.ndarray  # DAY_RECORD

    def between(self, first: int, last: int) -> DayIndex:
        """The days in [first, last]."""
        lo, hi = np.searchsorted(self.days, (first, last + 1))
        return DayIndex(self.days[lo:hi], self.records[lo:hi])

    def for_reading(self) -> DayIndex:
        """The same days with only what reading their bars takes (file, row group,
        offset, rows: 32 of 64 bytes a day), for a worker: a chunk of 8 instruments' year
        is 65 KB, under the 100 KB past which Ray puts an argument in its object store
        (a call cost the command ~1.5-2 ms to submit then, ~0.5 ms inline: 2026-12-06)."""
        out = np.empty(len(self.records), READ_RECORD)
        for f in READ_RECORD.names or ():
            out[f] = self.records[f]
        return DayIndex(self.days, out)

    def file_runs(self) -> list[tuple[bytes, int, int]]:
        """(file hash, start, stop) of each run of consecutive days in one file."""
        f = self.records["file"]
        n = len(f)
        if not n:
            return []
        cut = (np.flatnonzero((f[1:] != f[:-1]).any(axis=1)) + 1).tolist()
        starts, stops = [0, *cut], [*cut, n]
        return [(f[a].tobytes(), a, b) for a, b in zip(starts, stops, strict=True)]


class DayEntry(NamedTuple):
    """Where the current bars of one (instrument, day) are, and their content hash.

    A named tuple, not a dataclass: the planner and executors read tens of
    thousands at a time (construction ~0.2 us against ~0.7 us)."""

    instrument: str
    day: int
    file: bytes
    row_group: int
    offset: int
    rows: int
    hash: bytes
    first_ts: int
    last_ts: int

    def pack(self) -> bytes:
        return DAY_VALUE.pack(
            self.file,
            self.row_group,
            self.offset,
            self.rows,
            self.hash,
            self.first_ts,
            self.last_ts,
        )

    @classmethod
    def unpack(cls, key: bytes, value: bytes) -> DayEntry:
        inst, day = split_day_key(key)
        return cls(inst, day, *DAY_VALUE.unpack(value))


@dataclass(frozen=True)
class Change:
    """What one event did to one (instrument, day)."""

    seq: int
    instrument: str
    day: int
    kind: int
    old_hash: bytes
    new_hash: bytes
    rows: int
    fields: int = ANY_FIELD  # the bar fields it changed (FIELD_BITS)


@dataclass
class FileRecord:
    """An immutable, content-addressed bars file and when it was current."""

    hash: str
    path: str  # relative to the store
    instrument: str
    month: str
    rows: int
    bytes: int
    first_day: int
    last_day: int
    intervals: list[list[int | None]] = field(default_factory=list)  # [created, superseded]

    def current_at(self, seq: int) -> bool:
        return any(c is not None and c <= seq and (s is None or s > seq) for c, s in self.intervals)

    @property
    def is_current(self) -> bool:
        return bool(self.intervals) and self.intervals[-1][1] is None


class FileSpan(NamedTuple):
    """What never changes in a bars file's record: a file is named by its content (its
    instrument, its days, its bars), so these are the same for its hash in any store."""

    path: str
    instrument: str
    first_day: int
    last_day: int


# spans of the files this process has read, by file hash (immutable: see FileSpan). A
# SQL session over bars lists every current file: 29,000 at the seed's scale, ~8 us each
# to read and decode its record; a notebook's next queries then cost a lookup each
_SPANS: dict[bytes, FileSpan] = {}


@dataclass(frozen=True)
class Event:
    seq: int
    time_ns: int
    kind: str
    command: str
    summary: dict[str, Any]
    op: str | None = None  # the command that wrote it (:func:`operation`); None: before 12-2026


# The command (a CLI command, a Store method call) writing events now: each event it
# writes carries its id, so the events of one command (an ingest, then an update's
# commits in batches) are linked (``events.op``). A call made inside another joins it.
_OPERATION: ContextVar[str | None] = ContextVar("incbt_operation", default=None)


@contextlib.contextmanager
def operation() -> Iterator[str]:
    """Give the events written inside one id (the enclosing operation's, if any)."""
    now = _OPERATION.get()
    if now is not None:
        yield now
        return
    token = _OPERATION.set(f"{time.time_ns():x}-{os.getpid():x}")
    try:
        yield _OPERATION.get() or ""
    finally:
        _OPERATION.reset(token)


class _Handles:
    """The catalog's tables by name (``cat.db["meta"]``), asked of the environment each
    time: those of the file open now (a compacted catalog is followed by a new LMDB
    environment: :meth:`Env.follow`)."""

    def __init__(self, env: Env) -> None:
        self.env = env

    def __getitem__(self, name: str) -> object:
        return self.env.db(name.encode())


class Catalog:
    """Typed access to the catalog's databases. Methods take an open transaction."""

    def __init__(self, path: str, map_size_mb: float = 256) -> None:
        self.path = path
        self.env: Env = open_env(path, map_size_mb)
        self.db = _Handles(self.env)

    # -- meta ------------------------------------------------------------
    def meta(self, txn: lmdb.Transaction) -> dict[str, Any]:
        out = {}
        with txn.cursor(self.db["meta"]) as cur:
            for k, v in cur:
                out[k.decode()] = json.loads(v)
        return out

    def put_meta(self, txn: lmdb.Transaction, name: str, value: Any) -> None:
        txn.put(name.encode(), json.dumps(value).encode(), db=self.db["meta"])

    # -- events ----------------------------------------------------------
    def last_seq(self, txn: lmdb.Transaction) -> int:
        with txn.cursor(self.db["events"]) as cur:
            if cur.last():
                return struct.unpack(">Q", cur.key())[0]
        return 0

    def append_event(
        self, txn: lmdb.Transaction, kind: str, command: str, summary: dict[str, Any]
    ) -> int:
        seq = self.last_seq(txn) + 1
        rec = {
            "seq": seq,
            "time_ns": time.time_ns(),
            "kind": kind,
            "command": command,
            "summary": summary,
        }
        op = _OPERATION.get()
        if op is not None:
            rec["op"] = op
        txn.put(seq_key(seq), json.dumps(rec, sort_keys=True).encode(), db=self.db["events"])
        return seq

    def events(self, txn: lmdb.Transaction, newest_first: bool = True) -> Iterator[Event]:
        with txn.cursor(self.db["events"]) as cur:
            it = cur.iterprev() if newest_first else cur.iternext()
            if newest_first:
                cur.last()
            else:
                cur.first()
            for _, v in it:
                r = json.loads(v)
                yield Event(
                    r["seq"], r["time_ns"], r["kind"], r["command"], r["summary"], r.get("op")
                )

    def event(self, txn: lmdb.Transaction, seq: int) -> Event | None:
        v = txn.get(seq_key(seq), db=self.db["events"])
        if v is None:
            return None
        r = json.loads(v)
        return Event(r["seq"], r["time_ns"], r["kind"], r["command"], r["summary"], r.get("op"))

    # -- changes ---------------------------------------------------------
    def put_changes(
        self,
        txn: lmdb.Transaction,
        seq: int,
        changes: Iterable[tuple[str, int, int, bytes, bytes, int]],
    ) -> None:
        """Record what event ``seq`` did to each (instrument, day): changes are (instrument,
        day, kind, old hash, new hash, rows); written in one C loop (an ingest records a
        change a day)."""
        prefix = seq_key(seq)
        pack = _CHANGE_VALUE.pack
        with txn.cursor(self.db["changes"]) as cur:
            cur.putmulti(
                (prefix + day_key(inst, day), pack(kind, old, new, rows))
                for inst, day, kind, old, new, rows in changes
            )

    def put_change_fields(
        self, txn: lmdb.Transaction, seq: int, fields: Iterable[tuple[str, int, int]]
    ) -> None:
        """The bar fields each correction of event ``seq`` changed: (instrument, day,
        bits), those that changed some fields only (the others: any field)."""
        prefix = seq_key(seq)
        with txn.cursor(self.db["fields"]) as cur:
            cur.putmulti((prefix + day_key(inst, day), bytes([m])) for inst, day, m in fields)

    def changes(self, txn: lmdb.Transaction, after_seq: int = 0) -> Iterator[Change]:
        """Every day changed by an event with seq > after_seq, in log order."""
        fields_db = self.db["fields"]
        with txn.cursor(self.db["changes"]) as cur:
            if not cur.set_range(seq_key(after_seq + 1)):
                return
            for k, v in cur:
                seq = struct.unpack(">Q", k[:8])[0]
                inst, day = split_day_key(k[8:])
                kind, old, new, rows = _CHANGE_VALUE.unpack(v)
                m = txn.get(k, db=fields_db) if kind == CHANGE_CORRECTED else None
                yield Change(seq, inst, day, kind, old, new, rows, ANY_FIELD if m is None else m[0])

    # -- days ------------------------------------------------------------
    def day(self, txn: lmdb.Transaction, instrument: str, day: int) -> DayEntry | None:
        k = day_key(instrument, day)
        v = txn.get(k, db=self.db["days"])
        return None if v is None else DayEntry.unpack(k, v)

    def days(
        self,
        txn: lmdb.Transaction,
        instrument: str,
        first: int | None = None,
        last: int | None = None,
    ) -> Iterator[DayEntry]:
        """The current days of one instrument in [first, last], in day order."""
        prefix = instrument.encode() + b"\0"
        klen = len(prefix) + 4
        stop = 2**31 if last is None else last
        start = day_key(instrument, first) if first is not None else prefix
        u32, value = _U32.unpack_from, DAY_VALUE.unpack
        with txn.cursor(self.db["days"]) as cur:
            if not cur.set_range(start):
                return
            for k, v in cur:
                if len(k) != klen or not k.startswith(prefix):
                    return
                day = u32(k, klen - 4)[0] - DAY_OFFSET
                if day > stop:
                    return
                yield DayEntry(instrument, day, *value(v))

    def day_index(
        self,
        txn: lmdb.Transaction,
        instrument: str,
        first: int | None = None,
        last: int | None = None,
    ) -> DayIndex:
        """The current days of one instrument in [first, last] as arrays (see DayIndex)."""
        prefix = instrument.encode() + b"\0"
        start = day_key(instrument, first) if first is not None else prefix
        # past the last wanted key: the next day's key, or the end of the prefix
        end = day_key(instrument, last + 1) if last is not None else prefix[:-1] + b"\1"
        keys: list[bytes] = []
        values: list[bytes] = []
        with txn.cursor(self.db["days"]) as cur:
            if cur.set_range(start):
                add_key, add_value = keys.append, values.append
                for k, v in cur.iternext():  # a C loop; keys of longer names sort after end
                    if k >= end:
                        break
                    add_key(k)
                    add_value(v)
        # each key is the prefix then the day: the days are read as one array, not sliced
        kd = np.dtype([("p", f"S{len(prefix)}"), ("day", ">u4")])
        days = np.frombuffer(b"".join(keys), dtype=kd)["day"].astype(np.int64) - DAY_OFFSET
        return DayIndex(days.astype(np.int32), np.frombuffer(b"".join(values), DAY_RECORD))

    def days_up_to(self, txn: lmdb.Transaction, instrument: str, day: int, n: int) -> list[int]:
        """The last ``n`` trading days of an instrument on or before ``day``, ascending."""
        prefix = instrument.encode() + b"\0"
        klen = len(prefix) + 4
        u32 = _U32.unpack_from
        out: list[int] = []
        if n <= 0:
            return out
        with txn.cursor(self.db["days"]) as cur:
            found = cur.set_range(day_key(instrument, day + 1))
            if not (cur.prev() if found else cur.last()):
                return out
            for k in cur.iterprev(values=False):  # a C loop over the keys, newest first
                if len(k) != klen or not k.startswith(prefix):
                    break
                out.append(u32(k, klen - 4)[0] - DAY_OFFSET)
                if len(out) == n:
                    break
        return out[::-1]

    def day_rows(
        self, txn: lmdb.Transaction, instrument: str, first: int, before_rows: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(days, row counts) of an instrument from ``first`` on, preceded by the latest
        earlier days holding at least ``before_rows`` bars: what the planner needs (it
        reads every day a plan covers: 630,000 for the whole history of 500 instruments
        x 5 years), as int64 arrays; the days from ``first`` are :meth:`day_index`'s."""
        prefix = instrument.encode() + b"\0"
        klen = len(prefix) + 4
        u32 = _U32.unpack_from
        back_days: list[int] = []
        back_rows: list[int] = []
        with txn.cursor(self.db["days"]) as cur:
            got = 0
            ok = cur.prev() if cur.set_range(day_key(instrument, first)) else cur.last()
            while ok and got < before_rows:
                k = cur.key()
                if len(k) != klen or not k.startswith(prefix):
                    break
                back_days.append(u32(k, klen - 4)[0] - DAY_OFFSET)
                back_rows.append(u32(cur.value(), _ROWS_AT)[0])
                got += back_rows[-1]
                ok = cur.prev()
        index = self.day_index(txn, instrument, first)
        days = np.array(back_days[::-1], np.int64)
        rows = np.array(back_rows[::-1], np.int64)
        return (
            np.concatenate((days, index.days.astype(np.int64))),
            np.concatenate((rows, index.records["rows"].astype(np.int64))),
        )

    def put_days(self, txn: lmdb.Transaction, entries: Iterable[DayEntry]) -> None:
        """Make these the current entries of their (instrument, day), in one C loop."""
        with txn.cursor(self.db["days"]) as cur:
            cur.putmulti((day_key(e.instrument, e.day), e.pack()) for e in entries)

    def delete_days(self, txn: lmdb.Transaction, instrument: str, days: Iterable[int]) -> None:
        """Remove these days of an instrument from the day index (``incbt remove``)."""
        db = self.db["days"]
        for d in days:
            txn.delete(day_key(instrument, d), db=db)

    def removed_instruments(self, txn: lmdb.Transaction) -> list[str]:
        """Instruments ``incbt remove`` left with no day (some may have days again)."""
        return list(self.meta(txn).get(REMOVED_INSTRUMENTS, []))

    def day_hashes(
        self, txn: lmdb.Transaction, instrument: str, first: int, last: int
    ) -> dict[int, bytes]:
        """The content hash of each current day of an instrument in [first, last]: one
        range read (an ingest compares every day it reads with the store's)."""
        idx = self.day_index(txn, instrument, first, last)
        return dict(zip(idx.days.tolist(), idx.records["hash"].tolist(), strict=True))

    def instruments(self, txn: lmdb.Transaction) -> list[str]:
        """Instruments with at least one day, in name order (one seek per instrument)."""
        out = []
        with txn.cursor(self.db["days"]) as cur:
            ok = cur.first()
            while ok:
                inst, _ = split_day_key(cur.key())
                out.append(inst)
                ok = cur.set_range(inst.encode() + b"\x01")
        return out

    # -- files and buckets ----------------------------------------------
    def file(self, txn: lmdb.Transaction, file_hash: bytes) -> FileRecord | None:
        v = txn.get(file_hash, db=self.db["files"])
        return None if v is None else FileRecord(**json.loads(v))

    def paths(
        self, txn: lmdb.Transaction, index: DayIndex, known: dict[bytes, str] | None = None
    ) -> dict[bytes, str]:
        """The path of each file the days of ``index`` are in, added to ``known`` (which
        is returned; a new dict if None): files already there are not looked up."""
        out = {} if known is None else known
        for f, _, _ in index.file_runs():
            if f not in out:
                rec = self.file(txn, f)
                if rec is None:
                    raise CatalogError(f"the day index names a file the catalog lacks: {f.hex()}")
                out[f] = rec.path
        return out

    def put_file(self, txn: lmdb.Transaction, rec: FileRecord) -> None:
        # vars, not asdict: the same JSON (fields in order, plain values) without asdict's
        # deep copy (~35 us a file: 100 files a day's ingest of 100 instruments)
        txn.put(bytes.fromhex(rec.hash), json.dumps(vars(rec)).encode(), db=self.db["files"])

    def files(self, txn: lmdb.Transaction) -> Iterator[FileRecord]:
        with txn.cursor(self.db["files"]) as cur:
            for _, v in cur:
                yield FileRecord(**json.loads(v))

    def bucket(self, txn: lmdb.Transaction, instrument: str, month: str) -> list[bytes]:
        """The current files of an (instrument, month), oldest first (days disjoint)."""
        v = txn.get(f"{instrument}\0{month}".encode(), db=self.db["buckets"])
        return [] if v is None else [bytes(v[i : i + 16]) for i in range(0, len(v), 16)]

    def set_bucket(
        self, txn: lmdb.Transaction, instrument: str, month: str, file_hashes: list[bytes]
    ) -> None:
        key = f"{instrument}\0{month}".encode()
        if not file_hashes:
            txn.delete(key, db=self.db["buckets"])
        else:
            txn.put(key, b"".join(file_hashes), db=self.db["buckets"])

    def _current_hashes(self, txn: lmdb.Transaction) -> Iterator[bytes]:
        """The hashes of the files SQL sees now, in (instrument, month) order."""
        with txn.cursor(self.db["buckets"]) as cur:
            for _, hashes in cur:
                for i in range(0, len(hashes), 16):
                    yield bytes(hashes[i : i + 16])

    def current_files(self, txn: lmdb.Transaction) -> list[FileRecord]:
        """The files SQL sees now, in (instrument, month) order."""
        recs = (self.file(txn, h) for h in self._current_hashes(txn))
        return [rec for rec in recs if rec is not None]

    def current_spans(self, txn: lmdb.Transaction) -> list[FileSpan]:
        """:meth:`current_files`, only what a read of the bars needs (each file's record
        decoded once per process)."""
        out = []
        spans = _SPANS
        for h in self._current_hashes(txn):
            span = spans.get(h)
            if span is None:
                rec = self.file(txn, h)
                if rec is None:
                    continue
                span = FileSpan(rec.path, rec.instrument, rec.first_day, rec.last_day)
                if len(spans) >= 1 << 20:  # ~200 MB: a bound, not a working size
                    spans.clear()
                spans[h] = span
            out.append(span)
        return out

    def files_as_of(self, txn: lmdb.Transaction, seq: int) -> list[FileRecord]:
        """The files that were current right after event ``seq`` (time travel)."""
        recs = [r for r in self.files(txn) if r.current_at(seq)]
        recs.sort(key=lambda r: (r.instrument, r.month, r.first_day, r.hash))
        return recs

    def drop_file(self, txn: lmdb.Transaction, file_hash: bytes) -> None:
        txn.delete(file_hash, db=self.db["files"])

    def gc_horizon(self, txn: lmdb.Transaction) -> int:
        """The oldest event whose bars time travel still shows exactly (0: all)."""
        v = txn.get(b"gc_horizon", db=self.db["meta"])
        return 0 if v is None else int(json.loads(v))

    # -- write intents ---------------------------------------------------
    def _intent(self, txn: lmdb.Transaction, key: bytes) -> list[str]:
        v = txn.get(key, db=self.db["pending"])
        return [] if v is None else json.loads(v)

    def _set_intent(self, txn: lmdb.Transaction, key: bytes, paths: list[str]) -> None:
        if paths:
            txn.put(key, json.dumps(paths).encode(), db=self.db["pending"])
        else:
            txn.delete(key, db=self.db["pending"])

    def pending(self, txn: lmdb.Transaction) -> list[str]:
        """Files an unfinished write was creating."""
        return self._intent(txn, b"files")

    def set_pending(self, txn: lmdb.Transaction, paths: list[str]) -> None:
        self._set_intent(txn, b"files", paths)

    def gc_pending(self, txn: lmdb.Transaction) -> list[str]:
        """Bars files a committed gc dropped from ``files`` and has yet to delete."""
        return self._intent(txn, b"gc")

    def set_gc_pending(self, txn: lmdb.Transaction, paths: list[str]) -> None:
        self._set_intent(txn, b"gc", paths)
