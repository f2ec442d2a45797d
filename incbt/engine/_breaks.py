"""What a step that breaks the contract raises or returns, as errors say it.

The checked bar views and slots (:mod:`incbt.engine._stack`) raise with these words, the
engine reports a signal other than -1, 0 or +1 with them, and :mod:`incbt.contract`
refuses a new run whose step does one of them over its first bars on every parameter set
given (a plain bug, not a failure of some data: nothing is registered). Kept apart from
``_stack`` so that reading them imports no Numba.
"""

from __future__ import annotations

SLOT_OUTSIDE = "a step used a"  # ... parameter/state slot outside p[0]..p[n-1]
BEFORE_FIRST = (
    "a step read a bar before the first bar loaded (an index below 0: further back than the "
    "run has seen, or than the strategy's warmup): it may read bars i - warmup <= j <= i "
    "only, once its own counter says the run has seen them"
)
LOOK_AHEAD = "a step read a bar after the current bar i (look-ahead): it may read bars j <= i only"
BAD_SIGNAL = "a signal must be -1, 0 or +1"


def breaks_contract(error: str) -> bool:
    """Whether an engine error (a parameter set's) is one of these."""
    return any(w in error for w in (BEFORE_FIRST, LOOK_AHEAD, BAD_SIGNAL)) or (
        f": {SLOT_OUTSIDE} parameter slot" in error or f": {SLOT_OUTSIDE} state slot" in error
    )
