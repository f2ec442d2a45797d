"""A minimal progress protocol: the library reports, the CLI draws (rich).

Library code calls ``progress.task(description, total)`` and ``advance(n)`` on
what it returns; the default reporter does nothing, so notebooks and tests
stay quiet unless they ask.
"""

from __future__ import annotations

from typing import Protocol


class Task(Protocol):
    def advance(self, n: int = 1) -> None: ...

    def done(self) -> None: ...


class Reporter(Protocol):
    def task(self, description: str, total: int | None) -> Task: ...


class _NullTask:
    def advance(self, n: int = 1) -> None:
        pass

    def done(self) -> None:
        pass


class NullReporter:
    def task(self, description: str, total: int | None) -> Task:
        return _NullTask()


NULL = NullReporter()
