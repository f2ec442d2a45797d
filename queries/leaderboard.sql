-- Runs ranked by portfolio Sharpe, with PnL, drawdown, fills, fees and turnover.
-- param: strategy  only runs of this strategy, e.g. -p strategy=sma_cross; % is every strategy (default: %)
SELECT r.run_id, r.strategy, r.params, m.sharpe, m.total_pnl, m.max_drawdown, m.fills,
       m.fees, m.turnover, m.days
FROM runs r JOIN metrics m USING (run_id)
WHERE m.scope = 'portfolio' AND r.strategy LIKE $strategy
ORDER BY m.sharpe DESC
