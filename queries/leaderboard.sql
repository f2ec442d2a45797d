-- Runs ranked by portfolio Sharpe, with PnL, drawdown, fills, fees and turnover.
-- A fork's params are its own from its effective date: said, with its base's run id.
-- param: strategy  only runs of this strategy, e.g. -p strategy=sma_cross; % is every strategy (default: %)
SELECT r.run_id, r.strategy,
       CASE WHEN r.fork_of IS NULL THEN r.params
            ELSE arrow_cast(r.params || ' from ' || arrow_cast(r.fork_effective, 'Utf8')
                 || ' (fork of ' || substr(r.fork_of, 1, 8) || ')', 'Utf8') END AS params,
       m.sharpe, m.total_pnl, m.max_drawdown, m.fills, m.fees, m.turnover, m.days
FROM runs r JOIN metrics m USING (run_id)
WHERE m.scope = 'portfolio' AND r.strategy LIKE $strategy
-- ties (a Sharpe of 0, say) in one order: by run id
ORDER BY m.sharpe DESC, r.run_id
