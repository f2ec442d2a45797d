"""A run's trades: its fills paired into round trips, as vectorbt's ``trades``.

Under SEMANTICS.md every fill takes a position to its order's target, and a target is
``signal * notional / close`` with the signal in {-1, 0, +1}; an order is made only
when the signal changes. So a fill opens a position (from flat), closes one (to flat),
or reverses one (long to short or short to long: the close of one trade and the open
of the next at the same price). A trade is one position from its open to its close:
one fill in, one fill out. A reversal's fee is split between the two trades in
proportion to the units each trades (the old position's and the new one's), as
vectorbt splits it.

The position is followed from the fills' quantities. The engine's own position after
a fill is its order's target, which the fills table does not hold: a position opened
from flat has the fill's quantity as its units, and one closed to flat the opposite
of the closing fill's quantity, exactly the engine's; only a position opened by a
reversal and closed by another has its units as the previous position plus the fill's
quantity, within a unit in the last place of the engine's. A fill whose position
after is within 1e-9 of its quantity from zero closes to flat (a reversal never
comes near: its new position is a full target).

A position still held after the run's last fill is an open trade, marked at the close
of the last bar of the instrument's last day in the run (the store's bars of that day
as they are now: a stale run is brought up to date by ``store.update()`` first; a day
removed since leaves it unmarked: NaN), with no exit fee. Every trade's PnL, open ones'
included, adds up to the instrument's equity at that close, as SEMANTICS.md's cash and
position give it (tests check it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# each trade: its fills (the one that closed it: -1 while open), direction, units, fees
_FIELDS = ("inst", "entry", "exit", "direction", "size", "entry_fee", "exit_fee")
FLAT = 1e-9  # a position within this share of its fill's quantity from zero is flat

TRADES_SCHEMA = pa.schema(
    [
        ("instrument", pa.string()),
        ("trade", pa.int64()),  # 1, 2, ... within the instrument, in time order
        ("direction", pa.string()),  # "long" or "short"
        ("status", pa.string()),  # "closed" or "open"
        ("size", pa.float64()),  # units, > 0
        ("entry_ts", pa.timestamp("ns", tz="UTC")),
        ("entry_price", pa.float64()),
        ("entry_fee", pa.float64()),
        ("exit_ts", pa.timestamp("ns", tz="UTC")),  # open: the mark's bar
        ("exit_price", pa.float64()),  # open: the mark (the close)
        ("exit_fee", pa.float64()),  # open: 0
        ("pnl", pa.float64()),  # after both fees; open: unrealized at the mark
        ("return", pa.float64()),  # pnl / (size x entry_price)
        ("duration", pa.duration("ns")),  # exit_ts - entry_ts
    ]
)


# trade_stats()'s values as table columns: one schema whatever the values (all None
# without a closed trade was Arrow's null type: QA 2026-12-07)
TRADE_STATS_SCHEMA = pa.schema(
    [
        ("trades", pa.int64()),
        ("closed_trades", pa.int64()),
        ("open_trades", pa.int64()),
        ("win_rate_pct", pa.float64()),
        ("best_trade_pct", pa.float64()),
        ("worst_trade_pct", pa.float64()),
        ("avg_winning_trade_pct", pa.float64()),
        ("avg_losing_trade_pct", pa.float64()),
        ("avg_winning_trade_duration", pa.duration("us")),
        ("avg_losing_trade_duration", pa.duration("us")),
        ("profit_factor", pa.float64()),
        ("expectancy", pa.float64()),
    ]
)


@functools.cache
def _pair_kernel() -> Any:
    """The pairing compiled by Numba, on first use (``import numba`` costs ~0.2 s)."""
    import numba as nb

    return nb.njit(cache=True, nogil=True)(_incbt_pair_fills)


def _incbt_pair_fills(codes, qty, fee, flat, out_i, out_f):
    """Fills sorted by (instrument, ts) into trades: ``out_i`` rows (instrument code,
    entry fill, exit fill or -1, direction) and ``out_f`` rows (units, entry fee, exit
    fee), at most two trades a fill. Returns (trades, the first fill that changes a
    position without closing it, or -1: no fill SEMANTICS.md makes)."""
    n = 0
    pos = 0.0
    cur = -1  # the open trade
    for i in range(qty.shape[0]):
        q = qty[i]
        if i == 0 or codes[i] != codes[i - 1]:
            pos = 0.0
            cur = -1
        if q == 0.0:
            continue
        after = pos + q
        if pos == 0.0:  # opens from flat: the fill's quantity is the position
            out_i[n, 0] = codes[i]
            out_i[n, 1] = i
            out_i[n, 2] = -1
            out_i[n, 3] = 1 if q > 0 else -1
            out_f[n, 0] = abs(q)
            out_f[n, 1] = fee[i]
            out_f[n, 2] = 0.0
            cur = n
            n += 1
            pos = q
        elif abs(after) <= flat * abs(q):  # closes to flat: the position was -q
            out_i[cur, 2] = i
            out_f[cur, 0] = abs(q)
            out_f[cur, 2] = fee[i]
            cur = -1
            pos = 0.0
        elif (after > 0) != (pos > 0):  # reverses: closes one, opens the next
            out_i[cur, 2] = i
            out_f[cur, 2] = fee[i] * (abs(pos) / abs(q))
            out_i[n, 0] = codes[i]
            out_i[n, 1] = i
            out_i[n, 2] = -1
            out_i[n, 3] = 1 if after > 0 else -1
            out_f[n, 0] = abs(after)
            out_f[n, 1] = fee[i] * (abs(after) / abs(q))
            out_f[n, 2] = 0.0
            cur = n
            n += 1
            pos = after
        else:
            return n, i
    return n, -1


def pair_fills(
    codes: np.ndarray, qty: np.ndarray, fee: np.ndarray
) -> tuple[dict[str, np.ndarray], int]:
    """The trades of fills sorted by (instrument code, ts): arrays of ``_FIELDS``, and
    the first fill no trade explains (-1: none)."""
    m = len(qty)
    out_i = np.empty((2 * m, 4), np.int64)
    out_f = np.empty((2 * m, 3), np.float64)
    n, bad = _pair_kernel()(
        np.ascontiguousarray(codes, np.int64),
        np.ascontiguousarray(qty, np.float64),
        np.ascontiguousarray(fee, np.float64),
        FLAT,
        out_i,
        out_f,
    )
    cols = {
        "inst": out_i[:n, 0],
        "entry": out_i[:n, 1],
        "exit": out_i[:n, 2],
        "direction": out_i[:n, 3],
        "size": out_f[:n, 0],
        "entry_fee": out_f[:n, 1],
        "exit_fee": out_f[:n, 2],
    }
    return cols, int(bad)


def trades_table(
    fills: pa.Table, marks: Callable[[list[str]], dict[str, tuple[int, float]]]
) -> pa.Table:
    """The trades of ``fills`` (instrument, ts, qty, price, fee; sorted by instrument
    and ts), a table of :data:`TRADES_SCHEMA`; a fill no trade explains (none of
    SEMANTICS.md's) is a bug, raised as one. ``marks``: given the instruments with an
    open trade, each one's (ts in ns, close) that marks it. Fills of several runs (a
    ``run_id`` column, sorted by run first): each run's trades, the table's first column
    their run_id (the runs' instruments are marked alike: a sweep's runs share their
    instruments and days)."""
    inst = fills.column("instrument").combine_chunks().dictionary_encode()
    names = inst.dictionary.to_pylist()
    codes = inst.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    runs = None
    if "run_id" in fills.column_names:  # a pair is (run, instrument): codes of both
        runs = fills.column("run_id").combine_chunks().dictionary_encode()
        codes = (
            runs.indices.to_numpy(zero_copy_only=False).astype(np.int64) * max(1, len(names))
            + codes
        )
    ts = fills.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False)
    qty, price, fee = (
        fills.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
        for c in ("qty", "price", "fee")
    )
    t, bad = pair_fills(codes, qty, fee)
    if bad >= 0:  # the engine's fills always pair (SEMANTICS.md)
        from incbt.errors import InternalError

        raise InternalError(
            f"fill {fills.slice(bad, 1).to_pylist()[0]} changes a position without closing "
            "it, which no fill of SEMANTICS.md does"
        )
    pair = t["inst"]
    t["inst"] = pair % max(1, len(names))  # the instrument's code (the run's: pair // n)
    n = len(pair)
    closed = t["exit"] >= 0
    exit_at = np.where(closed, t["exit"], 0)
    mark_ts = np.zeros(n, np.int64)
    mark_px = np.full(n, np.nan)
    held = np.flatnonzero(~closed).tolist()
    if held:
        marked = marks([names[int(t["inst"][k])] for k in held])
        for k in held:
            mark_ts[k], mark_px[k] = marked[names[int(t["inst"][k])]]
    entry_ts, entry_px = ts[t["entry"]], price[t["entry"]]
    exit_ts = np.where(closed, ts[exit_at], mark_ts)
    exit_px = np.where(closed, price[exit_at], mark_px)
    d = t["direction"].astype(np.float64)
    pnl = d * t["size"] * (exit_px - entry_px) - t["entry_fee"] - t["exit_fee"]
    # the trade's number within its pair: trades are in (run, instrument, time) order
    first = np.flatnonzero(np.concatenate(([True], pair[1:] != pair[:-1])))[:n]
    number = np.arange(n) - np.repeat(first, np.diff(np.append(first, n))) + 1
    table = pa.table(
        {
            "instrument": inst.dictionary.take(pa.array(t["inst"])),
            "trade": pa.array(number, pa.int64()),
            "direction": pc.if_else(pa.array(d > 0), "long", "short"),
            "status": pc.if_else(pa.array(closed), "closed", "open"),
            "size": pa.array(t["size"]),
            "entry_ts": pa.array(entry_ts, pa.int64()).cast(TRADES_SCHEMA.field("entry_ts").type),
            "entry_price": pa.array(entry_px),
            "entry_fee": pa.array(t["entry_fee"]),
            "exit_ts": pa.array(exit_ts, pa.int64()).cast(TRADES_SCHEMA.field("exit_ts").type),
            "exit_price": pa.array(exit_px),
            "exit_fee": pa.array(t["exit_fee"]),
            "pnl": pa.array(pnl),
            "return": pa.array(pnl / (t["size"] * entry_px)),
            "duration": pa.array(exit_ts - entry_ts, pa.int64()).cast(pa.duration("ns")),
        },
        schema=TRADES_SCHEMA,
    )
    if runs is not None:
        run_of = runs.dictionary.take(pa.array(pair // max(1, len(names))))
        table = table.add_column(0, "run_id", run_of)
    return table


# each instrument's last day in the rows of ``daily`` a query sees (WHERE: of one run)
LAST_DAYS_SQL = (
    "SELECT instrument, CAST(max(date) AS INT) AS day FROM daily {where} GROUP BY instrument"
)


def marks_of(
    store: Any, last_days: Any, instruments: Iterable[str]
) -> dict[str, tuple[int, float]]:
    """:func:`marks_at` of ``instruments``, their last days read by ``LAST_DAYS_SQL``
    (the table ``last_days``)."""
    days = last_days.to_pydict()
    last = dict(zip(days["instrument"], days["day"], strict=True))
    return marks_at(store, {i: last[i] for i in set(instruments)})


def marks_at(store: Any, last: dict[str, int]) -> dict[str, tuple[int, float]]:
    """Each instrument's (ts in ns, close) of its last bar on day ``last[instrument]``
    (a day number): what marks its open trade. A day the store no longer holds (removed
    since: a stale run) leaves it unmarked: the day's start in the store's session zone
    and NaN."""
    from incbt.errors import NotFoundError

    out = {}
    tz = store.settings["session_tz"]
    for inst, day in last.items():
        try:
            b = store.bars(inst, day, day)
        except NotFoundError:  # the instrument removed since
            b = None
        if b is None or not len(b.ts):
            out[inst] = (_day_start(int(day), tz), float("nan"))
        else:
            out[inst] = (int(b.ts[-1]), float(b.close[-1]))
    return out


def _day_start(day: int, tz: str) -> int:
    """The start (ns since the epoch, UTC) of trading day ``day`` (days since 1970): its
    midnight in the session zone ``tz`` (QA 2026-12-07: UTC midnight in a New York store,
    19:00 of the trading day before)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    if tz == "UTC":
        return day * 86_400 * 10**9
    local = dt.datetime.combine(
        dt.date(1970, 1, 1) + dt.timedelta(days=day), dt.time(0), tzinfo=ZoneInfo(tz)
    )
    return round(local.timestamp()) * 10**9


def trade_stats(trades: pa.Table) -> dict[str, Any]:
    """vectorbt's trade statistics of a trades table (:func:`trades_table`): counts, the
    win rate, best, worst and average trades, profit factor and expectancy. Rates and
    returns in percent; over closed trades, as vectorbt counts them (an open trade's PnL
    is not won yet); None where there is no trade to average."""
    status = trades.column("status").to_numpy(zero_copy_only=False)
    closed = status == "closed"
    pnl = trades.column("pnl").to_numpy(zero_copy_only=False)[closed]
    ret = trades.column("return").to_numpy(zero_copy_only=False)[closed] * 100.0
    dur = trades.column("duration").cast(pa.int64()).to_numpy(zero_copy_only=False)[closed]
    win, loss = pnl > 0, pnl < 0

    def mean(x: np.ndarray) -> float | None:
        return float(np.mean(x)) if len(x) else None

    def mean_duration(x: np.ndarray) -> Any:
        import datetime

        return None if not len(x) else datetime.timedelta(microseconds=float(np.mean(x)) / 1e3)

    gained, lost = float(np.sum(pnl[win])), float(-np.sum(pnl[loss]))
    return {
        "trades": int(len(status)),
        "closed_trades": int(closed.sum()),
        "open_trades": int((~closed).sum()),
        "win_rate_pct": float(win.mean() * 100.0) if len(pnl) else None,
        "best_trade_pct": float(ret.max()) if len(ret) else None,
        "worst_trade_pct": float(ret.min()) if len(ret) else None,
        "avg_winning_trade_pct": mean(ret[win]),
        "avg_losing_trade_pct": mean(ret[loss]),
        "avg_winning_trade_duration": mean_duration(dur[win]),
        "avg_losing_trade_duration": mean_duration(dur[loss]),
        # gross profit over gross loss: None with no loss (vectorbt's inf), or no trade
        "profit_factor": gained / lost if lost > 0 else None,
        "expectancy": mean(pnl),  # the average closed trade's PnL
    }


def trade_stats_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows of :func:`trade_stats` as a table of :data:`TRADE_STATS_SCHEMA`."""
    return pa.Table.from_pylist(rows, schema=TRADE_STATS_SCHEMA)


__all__ = [
    "TRADES_SCHEMA",
    "TRADE_STATS_SCHEMA",
    "marks_at",
    "marks_of",
    "pair_fills",
    "trade_stats",
    "trade_stats_table",
    "trades_table",
]
