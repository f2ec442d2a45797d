-- A sweep's grid: every run's parameters with its portfolio metrics, one row per grid point (pivot two p_ columns for a heatmap).
-- param: sweep  the sweep name, e.g. -p sweep=grid1
SELECT s.point, r.*, m.sharpe, m.total_pnl, m.max_drawdown, m.fills, m.fees, m.turnover
FROM sweeps s
JOIN runs r USING (run_id)
JOIN metrics m USING (run_id)
WHERE s.sweep = $sweep AND m.scope = 'portfolio'
ORDER BY s.point
