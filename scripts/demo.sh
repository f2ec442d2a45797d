#!/usr/bin/env bash
# The main job on the embedded default store (./store): generate bars, ingest
# them, correct a day, backtest a small grid, absorb a new day (`incbt update`),
# and show SQL answers and the event log. Re-runnable: a second run finds the data ingested
# and the runs computed, and computes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
# ./store, whatever the shell's INCBT_STORE names (the tour exports one: QA 2026-12-07,
# the demo then ran on the tour's store)
unset INCBT_STORE
incbt=.venv/bin/incbt
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. create the store (no-op if it exists)"
$incbt init

have=$($incbt query "SELECT count(*) AS n FROM files" --output csv | tail -1)
if [ "$have" = "0" ]; then
  say "2. generate 20 instruments x 60 trading days of 1-minute bars"
  $incbt generate demo-data/bars --instruments 20 --days 60 --start 2024-01-01 --seed 1

  say "3. ingest them (one atomic batch; a repeat is a no-op)"
  $incbt ingest demo-data/bars

  say "4. the vendor corrects 2024-02-15: ingest the corrected day"
  $incbt generate demo-data/fix --instruments 20 --days 60 --start 2024-01-01 --seed 1 \
    --from 2024-02-15 --to 2024-02-15 --revise 2024-02-15
  $incbt ingest demo-data/fix
else
  say "2-4. the store already holds bars: skipping generate/ingest/correct"
  echo "(for a fresh demo: rm -rf store/catalog store/bars store/results demo-data)"
fi

say "5. SQL: bars per instrument"
$incbt query "SELECT instrument, count(*) AS bars, count(DISTINCT date) AS days,
  min(date) AS first, max(date) AS last, round(avg(close), 2) AS avg_close
  FROM bars GROUP BY instrument ORDER BY instrument LIMIT 5"

say "6. SQL: what the correction changed (the changes table)"
$incbt query "SELECT seq, instrument, date, kind, substr(old_hash, 1, 8) AS old,
  substr(new_hash, 1, 8) AS new FROM changes WHERE kind = 'corrected' ORDER BY instrument LIMIT 5"

say "7. time travel: S0000's volume on 2024-02-15 now and as of the first ingest"
first=$($incbt query "SELECT min(seq) AS s FROM events WHERE kind = 'ingest'" --output csv | tail -1)
now=$($incbt query "SELECT sum(volume) AS v FROM bars WHERE instrument = 'S0000' AND date = '2024-02-15'" --output csv | tail -1)
then=$($incbt query "SELECT sum(volume) AS v FROM bars WHERE instrument = 'S0000' AND date = '2024-02-15'" --as-of "$first" --output csv | tail -1)
echo "volume now: $now   as of event $first: $then"

say "8. backtest: a small grid of sma_cross (quietly), then one breakout run with its metrics; fees and slippage included"
for fast in 5 15; do
  for slow in 60 120; do
    # its words only if it fails
    out=$($incbt backtest sma_cross -p fast=$fast -p slow=$slow --fee-bps 0.5 \
      --slippage-bps 1 --output csv 2>&1) || { echo "$out" >&2; exit 1; }
  done
done
$incbt backtest breakout -p lookback=90 --fee-bps 0.5 --slippage-bps 1   # its metrics: the portfolio, then each instrument

say "9. SQL: the leaderboard (portfolio metrics per run)"
$incbt query "SELECT r.strategy, r.p_fast AS fast, r.p_slow AS slow, r.p_lookback AS lookback,
  round(m.sharpe, 3) AS sharpe, round(m.total_pnl, 0) AS pnl, round(m.max_drawdown, 0) AS max_dd,
  m.fills FROM runs r JOIN metrics m USING (run_id) WHERE m.scope = 'portfolio'
  ORDER BY sharpe DESC"

say "10. a new day arrives: \`incbt update\` ingests it, and every run computes only that day"
$incbt generate demo-data/next --instruments 20 --days 61 --start 2024-01-01 --seed 1 --from 2024-03-25
$incbt update demo-data/next   # a repeat of the demo finds it ingested and every run up to date

say "11. the event log"
$incbt log --limit 10
