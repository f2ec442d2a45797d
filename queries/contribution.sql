-- Per-instrument contribution to a run's portfolio: PnL, its share of the total (NULL when the total is 0), Sharpe, fills.
-- param: run  the run id, e.g. -p run=5f2c9e0a1b2c3d4e
SELECT m.instrument, m.total_pnl,
       m.total_pnl / NULLIF((SELECT total_pnl FROM metrics
                             WHERE run_id = $run AND scope = 'portfolio'), 0)
         AS share_of_total,
       m.sharpe, m.max_drawdown, m.fills, m.fees
FROM metrics m
WHERE m.run_id = $run AND m.scope = 'instrument'
ORDER BY m.total_pnl DESC, m.instrument
