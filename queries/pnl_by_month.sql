-- Portfolio PnL of one run by month: sum of daily pnl, return on capital, days, fills.
-- param: run  the run id, e.g. -p run=5f2c9e0a1b2c3d4e
SELECT to_char(date_trunc('month', d.date), '%Y-%m') AS month,
       sum(d.pnl) AS pnl,
       sum(d.pnl) / max(r.notional * coalesce(r.instruments, a.n)) AS return_on_capital,
       count(DISTINCT d.date) AS days,
       sum(d.fills) AS fills,
       sum(d.fees) AS fees
FROM daily d
JOIN runs r USING (run_id)
-- capital: notional x the run's instruments (its universe; every instrument of the
-- store for --all), as the portfolio's metrics and Run.equity count it
CROSS JOIN (SELECT count(DISTINCT instrument) AS n FROM files) a
WHERE d.run_id = $run
GROUP BY 1
ORDER BY month
