"""The engine's one exception.

`StrategyError` is raised for bad input to the engine: an unknown strategy, a
parameter of the wrong type or out of range, a broken user strategy file,
inconsistent arrays. It is the package's `incbt.errors.StrategyError` (a
`UserError`, so the CLI prints it as one line and exits 1) and also a
`ValueError`, for callers that only know the standard library. Messages name
the strategy, the parameter, the value and what would be valid.
"""

from __future__ import annotations

from incbt.errors import StrategyError as _PackageStrategyError

__all__ = ["StrategyError"]


class StrategyError(_PackageStrategyError, ValueError):
    """Bad strategy, parameters or engine input; the message says which and how to fix it."""
