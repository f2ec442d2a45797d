"""The engine's one exception.

`StrategyError` is raised for bad input to the engine: an unknown strategy, a
parameter of the wrong type or out of range, a broken user strategy file,
inconsistent arrays. It derives from `ValueError` so that callers that only
know the standard library still catch it; the package's own error tree wraps
it at its boundary. Messages name the strategy, the parameter, the value and
what would be valid.
"""

from __future__ import annotations

__all__ = ["StrategyError"]


class StrategyError(ValueError):
    """Bad strategy, parameters or engine input; the message says which and how to fix it."""
