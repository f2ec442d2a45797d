"""The engine's version: part of every strategy's code version.

Bump it whenever a change to the engine could change a single bit of any
result (execution, accounting, state layout), so that stored runs made by
the old engine are recognised as stale.
"""

from __future__ import annotations

ENGINE_VERSION = "incbt-engine-1"
