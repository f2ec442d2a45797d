"""The synthetic data generator: deterministic, valid, prefix-stable."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow.csv as pcsv

from incbt.bars.generate import generate, weekdays
from incbt.bars.inputs import read_input


def _digest(files):
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


def test_same_seed_same_bytes(tmp_path):
    a = generate(str(tmp_path / "a"), instruments=3, days=4, seed=11)
    b = generate(str(tmp_path / "b"), instruments=3, days=4, seed=11)
    c = generate(str(tmp_path / "c"), instruments=3, days=4, seed=12)
    assert _digest(a) == _digest(b) != _digest(c)
    pa_ = generate(str(tmp_path / "pa"), instruments=2, days=2, seed=1, fmt="parquet")
    pb = generate(str(tmp_path / "pb"), instruments=2, days=2, seed=1, fmt="parquet")
    assert _digest(pa_) == _digest(pb)


def test_more_days_and_instruments_keep_earlier_ones(tmp_path):
    short = generate(str(tmp_path / "s"), instruments=2, days=3, seed=5, split="one")
    long = generate(str(tmp_path / "l"), instruments=3, days=5, seed=5, split="one")
    t1 = pcsv.read_csv(short[0]).to_pandas()
    t2 = pcsv.read_csv(long[0]).to_pandas()
    t2 = t2[t2.instrument.isin(["S0000", "S0001"]) & t2.ts.isin(t1.ts)]
    np.testing.assert_array_equal(t1.close.to_numpy(), t2.close.to_numpy())
    late = generate(str(tmp_path / "f"), instruments=2, days=5, seed=5, from_day="2024-01-05")
    assert [f.rsplit("-", 3)[-3:] for f in late] == [["2024", "01", "05.csv"]]


def test_a_revised_day_does_not_depend_on_the_other_instruments(tmp_path):
    """--revise changed bars drawn over every instrument's at once: S0000's corrected day
    differed with 8 and 10 instruments (QA 2026-12-06). Revised, it differs from the day
    as first generated."""
    days = {}
    for n in (2, 3):
        for rev in ((), ("2024-01-03",)):
            f = generate(str(tmp_path / f"{n}{len(rev)}"), instruments=n, days=3, seed=5,
                         from_day="2024-01-03", to_day="2024-01-03", revise=rev)
            t = pcsv.read_csv(f[0]).to_pandas()
            days[(n, bool(rev))] = t[t.instrument == "S0000"].reset_index(drop=True)
    assert days[(2, True)].equals(days[(3, True)])
    assert days[(2, False)].equals(days[(3, False)])
    assert not days[(2, True)].equals(days[(2, False)])


def test_generated_bars_pass_validation(tmp_path):
    files = generate(str(tmp_path / "g"), instruments=5, days=3, seed=9, split="one")
    bars = read_input(files[0])
    assert len(bars) == 5 * 3 * 390
    assert (bars.high >= np.maximum(bars.open, bars.close)).all()
    assert (bars.low <= np.minimum(bars.open, bars.close)).all() and (bars.low > 0).all()


def test_weekdays_skip_weekends():
    days = weekdays(int(np.datetime64("2024-03-01", "D").astype(int)), 3)  # Fri
    assert [str(np.datetime64(int(d), "D")) for d in days] == [
        "2024-03-01", "2024-03-04", "2024-03-05"]


def test_bars_ingest_would_refuse_are_not_generated(tmp_path):
    """A start before 1973-03-03 09:46:40 UTC (ingest's floor for timestamps) is refused
    here: it wrote files that ingest then refused, blaming integer timestamps."""
    import pytest

    from incbt.errors import UsageError

    with pytest.raises(UsageError, match="--start 1900-01-01: bars before 1973-03-03 09:46:40"):
        generate(str(tmp_path / "g"), instruments=1, days=1, start="1900-01-01")
    assert not (tmp_path / "g").exists()
    generate(str(tmp_path / "ok"), instruments=1, days=1, start="1973-03-05")
    assert read_input(str(next((tmp_path / "ok").iterdir()))).block.shape == (6, 390)
    for kw, said in (({"instruments": 0}, "--instruments 0"), ({"days": -2}, "--days -2")):
        with pytest.raises(UsageError, match=f"{said}: give at least 1"):  # the value named
            generate(str(tmp_path / "none"), **{"instruments": 1, "days": 1, **kw})
    assert not (tmp_path / "none").exists()


def test_a_full_disk_leaves_every_file_whole_and_says_which(tmp_path, monkeypatch):
    """QA 2026-12-07: a full disk left the file being written cut short, over the file of
    that name that was there, and said the store's words (no path)."""
    import errno
    import os

    import pytest

    import incbt.bars.generate as g
    from incbt.errors import SetupError

    real = pcsv.CSVWriter

    class FillsUp:  # the disk fills up during the second file's second day
        made = 0

        def __init__(self, path, schema):
            FillsUp.made += 1
            self.n, self.inner = FillsUp.made, real(path, schema)

        def write_table(self, table):
            if self.n == 2 and getattr(self, "wrote", False):
                raise OSError(errno.ENOSPC, "No space left on device")
            self.wrote = True
            self.inner.write_table(table)

        def close(self):
            self.inner.close()

    out = tmp_path / "out"
    out.mkdir()
    (out / "bars-2024-02.csv").write_text("mine\n")
    monkeypatch.setattr(g.pcsv, "CSVWriter", FillsUp)
    with pytest.raises(SetupError) as exc:
        generate(str(out), instruments=2, days=30, start="2024-01-25", split="month")
    said = str(exc.value)
    assert f"the disk holding {out} is full: {out / 'bars-2024-02.csv'} could not" in said
    assert "the 1 file(s) before it are whole" in said and "Fix: free space" in said, said
    assert sorted(os.listdir(out)) == ["bars-2024-01.csv", "bars-2024-02.csv"]
    assert (out / "bars-2024-02.csv").read_text() == "mine\n"  # as it was
    assert len(read_input(str(out / "bars-2024-01.csv"))) == 2 * 5 * 390  # whole


def test_the_walk_in_memory_is_the_walk_generate_writes(tmp_path):
    """`incbt strategies --check` runs steps over :func:`walk`'s bars: the numbers of the
    files `generate` writes, over more days than one chunk of its (21)."""
    import pyarrow.parquet as pq

    from incbt.bars.generate import walk

    files = generate(str(tmp_path / "g"), instruments=2, days=30, seed=5, fmt="parquet",
                     split="one")
    t = pq.read_table(files[0]).filter(pq.read_table(files[0])["instrument"].to_numpy()
                                       == "S0001")
    w = walk(30, seed=5, i=1)
    assert np.array_equal(t["ts"].cast("int64").to_numpy(), w["ts"])
    for f in ("open", "high", "low", "close", "volume"):
        assert t[f].to_numpy().tobytes() == w[f].tobytes(), f
    assert np.array_equal(np.unique(w["ts"] // 86_400_000_000_000), w["day"])
