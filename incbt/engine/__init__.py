"""incbt.engine: the pure Numba backtest engine.

NumPy arrays and a state in, NumPy arrays and a state out: no files, no
catalog, no Ray. Everything is float64 in fixed loop orders, without
fastmath, so that resuming from any day's snapshot gives the same bits as
an uninterrupted run. The contract is SEMANTICS.md.

- Strategies: `strategy`, `Param`, `Strategy` (see `incbt.engine.strategy_api`
  for how to write one), `params_from_dict`, `load_strategies`, the
  built-ins `BUILTINS` / `get_strategy` (defined in `incbt.engine.strategies`).
- Running: `run_segment` (a batch of parameter sets over one instrument's
  bars), `initial_state`, `state_width`, `warmup_replay` (forks).
- The state layout: `incbt.engine.layout`. Metrics: `incbt.engine.metrics`.
"""

from __future__ import annotations

from ._version import ENGINE_VERSION
from .errors import StrategyError
from .kernel import (
    SegmentResult,
    initial_state,
    kernel_path,
    run_segment,
    state_names,
    state_width,
    warmup_replay,
)
from .layout import ENGINE_FIELDS, ENGINE_WIDTH
from .metrics import Metrics, compute_metrics, max_drawdown, portfolio_daily, sharpe
from .strategies import BUILTINS, get_strategy
from .strategy_api import (
    EXEC_PARAMS,
    Param,
    ParamSpec,
    Strategy,
    exec_params_from_dict,
    import_strategies,
    load_strategies,
    params_from_dict,
    params_to_dict,
    strategy,
)


def strategies(file: str | None = None) -> dict[str, Strategy]:
    """The built-in strategies and, given ``file`` (a ``.py`` file), its strategies, by
    name: what ``incbt strategies [--strategies FILE]`` lists. Each has ``.describe()``
    (its parameters with types, defaults and ranges), ``.params`` and ``.doc``.

        >>> for s in incbt.strategies().values(): print(s.describe())
    """
    found = dict(BUILTINS)
    if file is not None:
        found.update(load_strategies(file))
    return _Strategies(sorted(found.items()))


class _NoSuchStrategy(StrategyError, KeyError):
    """A name ``strategies()`` does not hold: a KeyError as a dict's, said as incbt's
    (QA 2026-12-07: a bare ``KeyError: 'sma_crosss'``; store.sweeps() says its names)."""

    __str__ = StrategyError.__str__


class _Strategies(dict[str, Strategy]):
    """``strategies()``: a dict by name whose missing name is said as ``backtest`` says it
    (the close name, then the known ones)."""

    def __missing__(self, name: object) -> Strategy:
        if isinstance(name, str):
            try:
                get_strategy(name, self)
            except StrategyError as exc:
                raise _NoSuchStrategy(str(exc)) from None
        raise _NoSuchStrategy(f"unknown strategy {name!r}; known strategies: {', '.join(self)}")


__all__ = [
    "BUILTINS",
    "ENGINE_FIELDS",
    "ENGINE_VERSION",
    "ENGINE_WIDTH",
    "EXEC_PARAMS",
    "Metrics",
    "Param",
    "ParamSpec",
    "SegmentResult",
    "Strategy",
    "StrategyError",
    "compute_metrics",
    "exec_params_from_dict",
    "get_strategy",
    "initial_state",
    "kernel_path",
    "import_strategies",
    "load_strategies",
    "max_drawdown",
    "params_from_dict",
    "params_to_dict",
    "portfolio_daily",
    "run_segment",
    "sharpe",
    "state_names",
    "state_width",
    "strategies",
    "strategy",
    "warmup_replay",
]
