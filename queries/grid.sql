-- A sweep's grid: every run's parameters with its portfolio metrics, one row per grid point (pivot two p_ columns for a heatmap).
-- param: sweep  the sweep name, e.g. -p sweep=grid1
-- (the runs' parameters: their p_ columns; a table leaves out those of other strategies)
SELECT s.point, r.* EXCLUDE (strategy, code_version, start, universe, instruments, notional,
       fee_bps, slippage_bps, params, source, created_seq, superseded_by, fork_of,
       fork_effective),
       m.sharpe, m.total_pnl, m.max_drawdown, m.fills, m.fees, m.turnover
FROM sweeps s
JOIN runs r USING (run_id)
-- a run with no portfolio row (every pair failed, or no bars in its range yet) is
-- listed with NULL metrics, not left out
LEFT JOIN metrics m ON m.run_id = r.run_id AND m.scope = 'portfolio'
WHERE s.sweep = $sweep
ORDER BY s.point
