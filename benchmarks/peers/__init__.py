"""Peers of the engine benchmark: the same sma_cross backtest done other ways.

- ``bare_numba``: a hand-written Numba loop (same semantics, no snapshots).
- ``pandas_peer``: a vectorised pandas backtest over a wide frame.
- ``vbt_peer``: vectorbt, run by ``.venv-bench/bin/python`` in a subprocess.

Every peer returns the total PnL per instrument, so that ``bench_engine.py``
can check it against incbt's before it reports a speed.
"""
