-- A sweep's metric as a pivot for heatmaps: one row per value of Y, one column per value of X (run with --pivot).
-- param: sweep   the sweep name, e.g. -p sweep=grid1
-- param: x       a parameter across, e.g. -p x=fast (an identifier: {{x}})
-- param: y       a parameter down, e.g. -p y=slow (an identifier: {{y}})
-- param: metric  sharpe, total_pnl, max_drawdown, fills, fees or turnover (an identifier: {{metric}})
SELECT r.p_{{y}} AS {{y}}, r.p_{{x}} AS {{x}}, m.{{metric}} AS {{metric}}
FROM sweeps s
JOIN runs r USING (run_id)
-- a run with no portfolio row (every pair failed) keeps its cell, NULL, as in `grid`
LEFT JOIN metrics m ON m.run_id = r.run_id AND m.scope = 'portfolio'
WHERE s.sweep = $sweep
ORDER BY 1, 2
