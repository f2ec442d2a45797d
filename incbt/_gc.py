"""The cyclic garbage collector, kept off the objects a command finds in place.

A full collection walks every object the process holds; with NumPy, Arrow, Numba,
DataFusion and Ray imported that is a few million objects: a pause of ~70 ms (measured
2026-12-06 in a sweep's driver, where it landed in the plan, serial work the workers
waited for). A command's own garbage is what the collector is for; the objects in place
when it starts (modules, a notebook's data) are not its business. :func:`frozen_gc`
moves them out of the collector's sight for the call (``gc.freeze``) and back after
(``gc.unfreeze``): collections during the call walk what the call made. A worker process
forked during the call inherits the frozen state (its pages of those objects stay
shared: the collector does not touch them).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def frozen_gc() -> Iterator[None]:
    """Collections inside skip the objects that exist on entry (see the module's text).
    Nested, with the collector disabled, or where something else froze objects: as is."""
    if not gc.isenabled() or gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
