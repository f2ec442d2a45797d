"""Deterministic synthetic 1-minute bars: same arguments, same bytes.

Each instrument is a geometric random walk with its own start price (10-500),
annual volatility (15-60 %) and volume level; intraday volatility and volume
follow a U shape over the 390 bars of a session (14:30-20:59 UTC, i.e. the New
York session in winter), there is an overnight gap, and each bar's high/low
reach past its open/close by a random wick. Weekdays only, no holidays.

Instrument ``i`` draws from its own random streams, day after day in order, so
generating more days or more instruments never changes the ones already made,
and ``from_day``/``to_day`` only hide days (the walk still starts at ``start``):
this is how the demo and the tests make "a new day arrives". ``revise`` makes
a vendor-style correction of a day: a few bars nudged, volumes restated.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from incbt.bars.schema import NS_PER_DAY, day_to_iso, iso_to_day
from incbt.errors import SetupError, UsageError, UserError, is_full_disk, text, whole
from incbt.progress import NULL, Reporter

BARS_PER_DAY = 390
SESSION_OPEN_NS = (14 * 60 + 30) * 60 * 1_000_000_000
MINUTE_NS = 60 * 1_000_000_000
_CHUNK_DAYS = 21
MAX_INSTRUMENTS = 100_000
MAX_DAYS = 80_000  # weekdays: 1970 to 2262 holds ~76,000
LAST_DAY = 106_651  # 2262-01-01: bars' timestamps are int64 nanoseconds since 1970
_SCHEMA = pa.schema(
    [
        ("instrument", pa.string()),
        ("ts", pa.timestamp("ns", tz="UTC")),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.float64()),
    ]
)


def instrument_name(i: int) -> str:
    return f"S{i:04d}"


def weekdays(start: int, n: int) -> np.ndarray:
    """The first ``n`` weekdays on or after day ``start`` (days since epoch)."""
    cand = np.arange(start, start + n * 7 // 5 + 7, dtype=np.int64)
    wd = (cand + 3) % 7  # 1970-01-01 was a Thursday: 0 = Monday
    return cand[wd < 5][:n]


class _Walk:
    """One instrument's random walk, generated chunk by chunk of days."""

    def __init__(self, seed: int, i: int) -> None:
        meta = np.random.default_rng([seed, i, 0])
        self.rng = np.random.default_rng([seed, i, 1])
        self.price = float(np.exp(meta.uniform(np.log(10), np.log(500))))
        vol = meta.uniform(0.15, 0.60)
        self.sigma = vol / np.sqrt(252 * BARS_PER_DAY)
        self.gap_sigma = 0.5 * vol / np.sqrt(252)
        self.volume = meta.uniform(200, 20000)

    def days(self, n: int) -> dict[str, np.ndarray]:
        z = self.rng.standard_normal((n, 4, BARS_PER_DAY))
        t = (np.arange(BARS_PER_DAY) - (BARS_PER_DAY - 1) / 2) / ((BARS_PER_DAY - 1) / 2)
        shape = 0.6 + 0.8 * t**2  # U-shaped intraday activity
        r = z[:, 0, :] * self.sigma * shape
        r[:, 0] += z[:, 1, 0] * self.gap_sigma  # overnight gap into the first bar
        logp = np.log(self.price) + np.cumsum(r.ravel()).reshape(n, BARS_PER_DAY)
        close = np.exp(logp)
        opens = np.empty_like(close)
        opens.ravel()[1:] = close.ravel()[:-1]
        opens.ravel()[0] = self.price
        opens[:, 0] = close[:, 0] / np.exp(z[:, 0, 0] * self.sigma * shape[0])
        self.price = float(close[-1, -1])
        wick = np.abs(z[:, 2:4, :]) * self.sigma * 0.7
        high = np.maximum(opens, close) * np.exp(wick[:, 0])
        low = np.minimum(opens, close) * np.exp(-wick[:, 1])
        vol = np.round(self.volume * shape * np.exp(0.5 * z[:, 1, :]))
        o, h, lo_, c = (np.round(x, 4) for x in (opens, high, low, close))
        h = np.maximum(h, np.maximum(o, c))
        lo_ = np.maximum(np.minimum(lo_, np.minimum(o, c)), 0.0001)
        return {"open": o, "high": h, "low": lo_, "close": c, "volume": vol}


def walk(days: int, start: str = "2024-01-01", seed: int = 0, i: int = 0) -> dict[str, np.ndarray]:
    """Instrument ``i``'s first ``days`` trading days of :func:`generate`'s walk, in memory:
    ``day`` (each trading day, days since 1970), ``ts`` (int64 ns UTC) and the bar fields,
    one value a bar, days one after another (the same numbers as a file ``generate``
    writes, without the file)."""
    dates = weekdays(iso_to_day(start), days)
    fields = _Walk(seed, i).days(days)
    intraday = np.arange(BARS_PER_DAY, dtype=np.int64) * MINUTE_NS + SESSION_OPEN_NS
    ts = (dates.astype(np.int64)[:, None] * NS_PER_DAY + intraday[None, :]).ravel()
    return {"day": dates, "ts": ts, **{k: v.ravel() for k, v in fields.items()}}


def _key(day: int, split: str) -> str:
    """The part of a file's name that says which days it holds."""
    iso = day_to_iso(day)
    return {"day": iso, "month": iso[:7], "one": "all"}[split]


def days_written(
    start: str, days: int, from_day: str | None = None, to_day: str | None = None
) -> tuple[int, str, str]:
    """How many of the ``days`` trading days from ``start`` --from/--to keep, the first
    and the last (arguments :func:`generate` accepted)."""
    d = weekdays(iso_to_day(start), days)
    if from_day:
        d = d[d >= iso_to_day(from_day)]
    if to_day:
        d = d[d <= iso_to_day(to_day)]
    return len(d), day_to_iso(int(d[0])), day_to_iso(int(d[-1]))


def generate(
    out: str,
    *,
    instruments: int,
    days: int,
    start: str = "2024-01-01",
    seed: int = 0,
    fmt: str = "csv",
    from_day: str | None = None,
    to_day: str | None = None,
    revise: Sequence[str] = (),
    split: str = "day",
    progress: Reporter = NULL,
    dry_run: bool = False,
) -> list[str]:
    """Write bars to folder ``out``; return the files written, in order.

    ``instruments`` (S0000, S0001, ...) x ``days`` trading days (weekdays from
    ``start``, 390 one-minute bars a day from 14:30 UTC), a seeded random walk:
    the same ``seed`` gives the same bars. ``fmt``: ``csv`` or ``parquet``.
    ``from_day``/``to_day``: write only the days in that range (of the same walk: a
    later day's file for an update). ``revise``: days written as a vendor's
    corrected version of them (other prices: a correction when ingested again).
    ``split``: one file per trading ``day`` (``bars-YYYY-MM-DD.csv``), per
    ``month``, or ``one`` file. ``dry_run``: check the arguments and return the files
    it would write; write nothing.

    >>> incbt.generate("data/", instruments=20, days=60, seed=1)
    """
    if not isinstance(out, str | os.PathLike) or not str(out).strip():  # QA 2026-12-06:
        # '' was "a file the store's catalog lists is gone", ' ' a folder named a space
        raise UsageError(f"OUT {str(out)!r} names no folder: give the folder to write to")
    # whole numbers (QA 2026-12-06: days=3.0 failed as "slice indices must be integers")
    instruments = whole(instruments, "instruments (--instruments)") or 0
    days = whole(days, "days (--days)") or 0
    seed = whole(seed, "seed (--seed)") or 0
    if instruments <= 0 or days <= 0:  # QA 2026-12-07: the value was not named
        name, bad = ("instruments", instruments) if instruments <= 0 else ("days", days)
        raise UsageError(f"--{name} {bad}: give at least 1 (--instruments and --days count)")
    if instruments > MAX_INSTRUMENTS or days > MAX_DAYS:
        raise UsageError(
            f"--instruments {instruments:,} --days {days:,}: at most {MAX_INSTRUMENTS:,} "
            f"instruments and {MAX_DAYS:,} days (bars' timestamps end in 2262)"
        )
    if not 0 <= seed < 2**63:
        raise UsageError(f"--seed {seed}: give a whole number from 0 to 2^63 - 1")
    if fmt not in ("csv", "parquet"):
        raise UsageError(f"--format must be csv or parquet, not {fmt!r}")
    if split not in ("day", "month", "one"):
        raise UsageError(f"--split must be day, month or one, not {split!r}")
    try:
        dates = weekdays(iso_to_day(start), days)
        skip = iso_to_day(from_day) if from_day else None
        stop = iso_to_day(to_day) if to_day else None
        revised = {iso_to_day(d) for d in revise}
    except ValueError as exc:
        raise UsageError(f"dates are YYYY-MM-DD: {exc}") from None
    first, last = int(dates[0]), int(dates[-1])
    from incbt.bars.inputs import TS_FLOOR

    if first * NS_PER_DAY < TS_FLOOR:  # the first day from its midnight
        floor = str(np.datetime64(TS_FLOOR, "ns"))[:19].replace("T", " ")
        raise UsageError(
            f"--start {start}: bars before {floor} UTC are "
            "refused by ingest (timestamps that early are almost surely seconds or "
            "milliseconds read as nanoseconds); give a later --start"
        )
    if last >= LAST_DAY:
        raise UsageError(
            f"--days {days:,} from {start} ends on {day_to_iso(last)}: bars' timestamps "
            "(nanoseconds since 1970) end in 2262; give fewer days or an earlier --start"
        )
    if skip is not None and stop is not None and skip > stop:  # as remove says it (QA)
        raise UsageError(
            f"--from {day_to_iso(skip)} is after --to {day_to_iso(stop)}: give the first "
            "day, then the last"
        )
    lo = max(first, skip) if skip is not None else first
    hi = min(last, stop) if stop is not None else last
    if lo > hi:
        raise UsageError(
            f"no day to write: the {days:,} trading days from {start} run "
            f"{day_to_iso(first)} to {day_to_iso(last)}, and --from/--to keep none of them"
        )
    wanted = set(dates.tolist())
    outside = sorted(d for d in revised if d not in wanted or not lo <= d <= hi)
    if outside:
        raise UsageError(
            f"--revise {day_to_iso(outside[0])} is not a trading day written here "
            f"({day_to_iso(lo)} to {day_to_iso(hi)}, weekdays)"
        )
    from incbt.bars.inputs import _store_holding

    out = text(os.fspath(out) if isinstance(out, os.PathLike) else out, "out (a folder)") or ""
    store = _store_holding(out)
    if store is not None:  # its files beside the store's own (QA 2026-12-06: written)
        where = "is an incbt store" if store == os.path.abspath(out) else f"is in the store {store}"
        raise UserError(f"{out} {where}: write the generated bars to a folder of their own")
    if os.path.exists(out) and not os.path.isdir(out):  # Python's FileExistsError (QA)
        raise UserError(f"{out} is a file, not a folder: give a folder to write the bars in")
    if dry_run:
        keys = dict.fromkeys(_key(d, split) for d in dates.tolist() if lo <= d <= hi)
        return [os.path.join(out, f"bars-{k}.{fmt}") for k in keys]
    os.makedirs(out, exist_ok=True)
    walks = [_Walk(seed, i) for i in range(instruments)]
    names = [instrument_name(i) for i in range(instruments)]
    intraday = np.arange(BARS_PER_DAY, dtype=np.int64) * MINUTE_NS + SESSION_OPEN_NS
    written: list[str] = []
    writer = None
    current_key = None
    path = tmp = ""
    task = progress.task("generating days", days)

    # Each file is written beside its name and renamed over it once whole: a full disk
    # left a file cut short where the one before had been (QA 2026-12-07), which a cut
    # at a line's end would have let ingest take as a short day
    def flush_writer() -> None:
        nonlocal writer
        if writer is not None:
            writer.close()
            writer = None
            os.replace(tmp, path)

    try:
        for c0 in range(0, days, _CHUNK_DAYS):
            chunk = dates[c0 : c0 + _CHUNK_DAYS]
            data = [w.days(len(chunk)) for w in walks]
            for k, day in enumerate(chunk.tolist()):
                task.advance()
                if (skip is not None and day < skip) or (stop is not None and day > stop):
                    continue
                cols = {c: np.concatenate([d[c][k] for d in data]) for c in data[0]}
                if day in revised:
                    # each instrument's own bars changed, by its own draw: the revision of one
                    # instrument's day does not depend on how many others are generated (QA
                    # 2026-12-06: it drew over every instrument's bars at once)
                    picks = [
                        i * BARS_PER_DAY
                        + np.random.default_rng([seed, day, i, 7]).choice(
                            BARS_PER_DAY, size=max(1, BARS_PER_DAY // 50), replace=False
                        )
                        for i in range(instruments)
                    ]
                    idx = np.concatenate(picks)
                    cols["close"][idx] = np.round((cols["close"][idx] + cols["high"][idx]) / 2, 4)
                    cols["volume"] = np.round(cols["volume"] * 1.1)
                ts = np.tile(day * NS_PER_DAY + intraday, instruments)
                table = pa.table(
                    [
                        pa.array(
                            np.repeat(np.array(names, dtype=object), BARS_PER_DAY), pa.string()
                        ),
                        pa.array(ts).view(pa.timestamp("ns", tz="UTC")),  # a view, no conversion
                        *(pa.array(cols[c]) for c in ("open", "high", "low", "close", "volume")),
                    ],
                    schema=_SCHEMA,
                )
                key = _key(day, split)
                if key != current_key:
                    flush_writer()
                    current_key = key
                    path = os.path.join(out, f"bars-{key}.{fmt}")
                    tmp = os.path.join(out, f".bars-{key}.{fmt}.incbt-tmp")
                    written.append(path)
                    writer = (
                        pcsv.CSVWriter(tmp, _SCHEMA)
                        if fmt == "csv"
                        else pq.ParquetWriter(tmp, _SCHEMA, compression="zstd")
                    )
                assert writer is not None
                writer.write_table(table)
        flush_writer()
    except BaseException as exc:
        if writer is not None:  # the file being written goes; those before are whole
            with contextlib.suppress(Exception):
                writer.close()
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(exc, OSError) and is_full_disk(exc):
            raise SetupError(
                f"the disk holding {out} is full: {path} could not be written (the "
                f"{len(written) - 1} file(s) before it are whole). Fix: free space on that "
                "disk, or give another folder, then run the same command again"
            ) from None
        raise
    task.done()
    return written
