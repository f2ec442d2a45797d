"""The engine's version: part of every strategy's code version.

Bump it whenever a change to the engine could change a single bit of any
result (execution, accounting, state layout), so that stored runs made by
the old engine are recognised as stale.
"""

from __future__ import annotations

# 2 (2026-12-04): a step sees the bars [0, i] only; a read of a later bar, or at a
# negative index, fails its parameter set (it read a later loaded bar before)
ENGINE_VERSION = "incbt-engine-2"
