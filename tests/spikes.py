"""A user strategy that fails on some bars, and the data that makes it fail.

``spike`` raises on a bar whose volume is over 1e8 (no generated bar comes near);
:func:`write_spiked` copies a day's CSV file with one bar of one instrument given
such a volume: a vendor's bad print, which a later correction can take back.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

SPIKE = '''import incbt

@incbt.strategy(params={"n": incbt.Param(int, default=10, min=2)}, state=(),
                warmup=lambda p: p["n"])
def spike(p, s, o, h, l, c, v, i):
    if v[i] > 1e8:
        raise ValueError("volume spike")
    n = int(p[0])
    if i < n:
        return 0
    return 1 if c[i] > c[i - n] else -1
'''


def fragile(after: int) -> str:
    """Source of the strategy ``fragile`` (for a strategies file that imports incbt):
    momentum over n bars, whose step raises for n = 7 from bar ``after`` on: a strategy
    that fails for one parameter set of a sweep."""
    return FRAGILE.replace("AFTER", str(after))


FRAGILE = '''
@incbt.strategy(params={"n": incbt.Param(int, default=10, min=2)}, state=(),
                warmup=lambda p: p["n"])
def fragile(p, s, o, h, l, c, v, i):
    """Momentum over n bars; the step raises for n = 7 (after some bars)."""
    n = int(p[0])
    if n == 7 and i >= AFTER:
        raise ValueError("n = 7 breaks")
    if i < n:
        return 0
    return 1 if c[i] > c[i - n] else -1
'''


def write_spiked(src: str, dst: str, instrument: str, bar: int) -> None:
    """``src``'s bars with the ``bar``-th bar of ``instrument`` given a volume of 2e8."""
    t = pcsv.read_csv(src)
    vol = t.column("volume").to_numpy().copy()
    rows = np.flatnonzero(t.column("instrument").to_numpy(zero_copy_only=False) == instrument)
    vol[rows[bar]] = 2e8
    pcsv.write_csv(t.set_column(t.schema.get_field_index("volume"), "volume", pa.array(vol)), dst)
