"""verify's comparison of a chunk's rows (``incbt.update``): the stored rows, as SQL
returns them (any order, many chunks), against the fresh ones, sorted as the commit
sorts them. The comparison in order (``_same_in_order``: no copy of the stored rows
gathered in order) says "same" exactly when the gathered tables are equal bit for bit
(``_same``, floats by their bits), for any rows and any one change to them."""

from __future__ import annotations

import struct

import datafusion
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import incbt.update as up

RUNS = ["0a1b2c3d4e5f6a7b", "1f2e3d4c5b6a7980", "ffee000011112222"]
INSTS = ["AAPL", "MSFT", "S0001", "S0002", "ZZ"]
FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, float("nan"), 1e-300]),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
)
ORDER = ("run_id", "instrument", "ts")


def fills(rows: list[tuple]) -> pa.Table:
    """Rows (run, instrument, ts, date, qty, price) as the fills table's columns."""
    cols = list(zip(*rows, strict=True)) if rows else [()] * 6
    return pa.table(
        {
            "run_id": pa.array(cols[0], pa.string()),
            "instrument": pa.array(cols[1], pa.string()),
            "ts": pa.array(cols[2], pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
            "date": pa.array(cols[3], pa.int32()).cast(pa.date32()),
            "qty": pa.array(cols[4], pa.float64()),
            "price": pa.array(cols[5], pa.float64()),
        }
    )


def nudged(x: float) -> float:
    """The next float by its bits (0.0 -> the smallest subnormal, -0.0 -> a NaN's
    neighbour...): a change only a comparison of bits sees in every case."""
    (b,) = struct.unpack("<q", struct.pack("<d", x))
    return struct.unpack("<d", struct.pack("<q", b ^ 1))[0]


@st.composite
def chunks(draw):
    """Fresh rows sorted as the commit sorts them, the same rows in the order of a query
    (in several record batches), and perhaps one change to one stored value."""
    keys = draw(
        st.lists(
            st.tuples(st.sampled_from(RUNS), st.sampled_from(INSTS), st.integers(0, 50)),
            unique=True,
            max_size=60,
        )
    )
    rows = [
        (r, i, ts * 60_000_000_000, 19_800 + ts // 10, draw(FLOATS), draw(FLOATS))
        for r, i, ts in sorted(keys)
    ]
    shuffled = draw(st.permutations(rows))
    change = draw(st.sampled_from(["none", "qty", "price", "ts", "instrument", "run_id"]))
    if change != "none" and shuffled:
        k = draw(st.integers(0, len(shuffled) - 1))
        r = list(shuffled[k])
        if change in ("qty", "price"):
            j = 4 if change == "qty" else 5
            r[j] = nudged(r[j])
        elif change == "ts":
            r[2] += 1
        elif change == "instrument":
            r[1] = draw(st.sampled_from([*INSTS, "NEW"]))
        else:
            r[0] = draw(st.sampled_from(RUNS))
        shuffled[k] = tuple(r)
    cuts = sorted(draw(st.lists(st.integers(0, len(shuffled)), max_size=4)))
    dictionary = draw(st.booleans())  # names of fresh rows as the commit builds them
    return rows, shuffled, cuts, dictionary


def stored_rows(shuffled: list[tuple], cuts: list[int]) -> up._StoredRows:
    """The rows through a real query, as verify reads the store's."""
    t = fills(shuffled)
    bounds = [0, *cuts, len(shuffled)]
    batches = [
        b for a, z in zip(bounds, bounds[1:], strict=False) for b in t.slice(a, z - a).to_batches()
    ]
    ctx = datafusion.SessionContext()
    ctx.register_record_batches("fills", [batches or [pa.RecordBatch.from_pylist([], t.schema)]])
    return up._stored(ctx, "fills", RUNS, "", ORDER)


@settings(max_examples=300, deadline=None)
@given(chunks())
def test_the_comparison_in_order_says_same_exactly_when_the_sorted_tables_are(chunk):
    rows, shuffled, cuts, dictionary = chunk
    fresh = fills(rows)
    if dictionary:
        for name in ("run_id", "instrument"):
            k = fresh.column_names.index(name)
            fresh = fresh.set_column(k, name, fresh.column(name).dictionary_encode())
    stored = stored_rows(shuffled, cuts)
    want = up._same(stored.sorted().select(fresh.column_names), up._plain(fresh))
    assert up._same_in_order(stored, fresh) == want
    if shuffled == rows or sorted(shuffled, key=lambda r: r[:3]) == rows:
        assert want  # no change (or one that kept every value): the same


def test_the_comparison_in_order_leaves_other_types_to_the_whole_tables():
    """A column it cannot compare by bits (a string that is not a sort key, nulls) is
    not called the same: the caller then compares the gathered tables."""
    rows = [(RUNS[0], "AAPL", 60_000_000_000 * k, 19_800, 1.0, 2.0) for k in range(3)]
    stored = stored_rows(rows, [1])
    fresh = fills(rows)
    assert up._same_in_order(stored, fresh)
    with_note = fresh.append_column("note", pa.array(["x"] * 3))
    stored_note = up._StoredRows(
        stored.table.append_column("note", pa.array(["x"] * 3)), stored.order, stored.names
    )
    assert not up._same_in_order(stored_note, with_note)
    assert up._same(stored_note.sorted(), with_note)  # the whole tables decide
    holes = fresh.set_column(4, "qty", pa.array([1.0, None, 1.0]))
    assert not up._same_in_order(stored, holes)


@pytest.mark.parametrize("block", [1, 2, 1 << 16])
def test_blocks_of_any_size_give_the_same_answer(monkeypatch, block):
    rows = [
        (r, i, 60_000_000_000 * k, 19_800, float(k), -0.0)
        for r in RUNS
        for i in INSTS
        for k in range(4)
    ]
    shuffled = list(np.random.default_rng(5).permutation(np.array(rows, dtype=object)))
    shuffled = [tuple(x) for x in shuffled]
    monkeypatch.setattr(up, "_BLOCK_ROWS", block)
    assert up._same_in_order(stored_rows(shuffled, [7, 30]), fills(rows))
    last = list(shuffled[-1])
    last[5] = 0.0  # -0.0 stored as 0.0
    shuffled[-1] = tuple(last)
    assert not up._same_in_order(stored_rows(shuffled, [7, 30]), fills(rows))


def test_a_verify_of_a_sound_store_gathers_no_daily_or_fills_rows(tmp_path, monkeypatch):
    """The comparison in order is what a verify of a sound store goes through: the
    store's daily and fills rows are never gathered in order (metrics rows are: they
    have a name that sorts nothing, and are few)."""
    import incbt
    from incbt.bars.generate import generate

    generate(str(tmp_path / "d"), instruments=3, days=4, start="2024-03-04", seed=3)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    s.backtest("sma_cross", [{"fast": 3, "slow": 20}, {"fast": 5, "slow": 30}], fee_bps=1.0)
    gathered: list[list[str]] = []
    real = up._StoredRows.sorted

    def sorted_(self):
        gathered.append(self.table.column_names)
        return real(self)

    monkeypatch.setattr(up._StoredRows, "sorted", sorted_)
    rep = s.verify()
    assert rep.ok and rep.rows_compared > 0
    assert gathered and all("scope" in names for names in gathered), gathered
