"""A module loaded at its first use, for the imports that cost every command's start
and serve only some commands: ``pyarrow.compute`` wraps its ~290 functions as it loads
(~35 ms on this project's machines, 2026-12-07), and a command that reads no input file
and compacts nothing (``status``, ``log``, a backtest of an up-to-date run) never calls
one. Type checkers see the real module (``if TYPE_CHECKING: import ... as pc``)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for module ``name``; imports it at the first attribute asked for (the
    import lock makes threads racing for it get the one module)."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, {'loaded' if self._module else 'not loaded yet'}>"
