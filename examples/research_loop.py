"""A research loop with incbt, as a notebook would run it (tested: tests/test_examples.py).

    .venv/bin/python examples/research_loop.py [WORKDIR]

Ingest half a year of bars (8 instruments), sweep a grid, look at the leaderboard and a pivot, then
a new day arrives and a past day is corrected: `update` recomputes only what
they invalidated, the leaderboard moves, and `verify` proves the results equal
a from-scratch run.
"""

from __future__ import annotations

import os
import sys
import tempfile

import incbt


def main(work: str) -> dict:
    data = dict(instruments=8, days=120, start="2024-01-01", seed=11)
    incbt.generate(os.path.join(work, "history"), **data, to_day="2024-06-13")

    store = incbt.init(os.path.join(work, "store"))
    print(store.ingest(os.path.join(work, "history")))

    sweep = store.sweep("sma_cross", {"fast": [5, 10, 20], "slow": "60:180:60"}, name="grid",
                        fee_bps=0.5)
    print(sweep)
    before = sweep.leaderboard("sharpe", n=3).to_pandas()
    print(before)
    print(sweep.pivot("fast", "slow", "sharpe"))

    best = store.run(before.run_id[0])
    print(best)
    print(best.daily.to_pandas().tail(3))

    # a new day arrives, and the vendor corrects a day a month back
    incbt.generate(os.path.join(work, "new"), **data, from_day="2024-06-14", to_day="2024-06-14")
    incbt.generate(os.path.join(work, "fix"), **data, from_day="2024-05-15",
                   to_day="2024-05-15", revise=["2024-05-15"])
    store.ingest(os.path.join(work, "fix"))
    print(store.status().stale[:2])
    res = store.update(os.path.join(work, "new"))
    print(f"update: {res.report.bars_processed:,} bar-steps in {res.report.seconds:.2f} s")
    after = sweep.leaderboard("sharpe", n=3).to_pandas()
    print(after)

    check = store.verify()
    print("verified:", check.ok, f"({check.rows_compared:,} rows)")
    store.report("grid", os.path.join(work, "grid.html"))
    return {"before": before, "after": after, "verified": check.ok, "update": res}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="incbt-loop-"))
