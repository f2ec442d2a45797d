"""The engine's version: part of every strategy's code version.

Bump it whenever a change to the engine could change a single bit of any
result (execution, accounting, state layout), so that stored runs made by
the old engine are recognised as stale.
"""

from __future__ import annotations

# 2 (2026-12-04): a step sees the bars [0, i] only; a read of a later bar, or at a
# negative index, fails its parameter set (it read a later loaded bar before)
# 3 (2026-12-05): a step's parameters and state are checked arrays of their declared
# length: a slot past them fails its parameter set (a state slot past them was written
# over another variable of the kernel before), and a write to a parameter does not compile
ENGINE_VERSION = "incbt-engine-3"
