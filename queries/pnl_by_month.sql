-- Portfolio PnL of one run by month: sum of daily pnl, return on capital, days, fills.
-- param: run  the run id, e.g. -p run=5f2c9e0a1b2c3d4e
SELECT to_char(date_trunc('month', d.date), '%Y-%m') AS month,
       sum(d.pnl) AS pnl,
       sum(d.pnl) / max(r.notional * i.n) AS return_on_capital,
       count(DISTINCT d.date) AS days,
       sum(d.fills) AS fills,
       sum(d.fees) AS fees
FROM daily d
JOIN runs r USING (run_id)
JOIN (SELECT run_id, count(DISTINCT instrument) AS n FROM daily GROUP BY run_id) i USING (run_id)
WHERE d.run_id = $run
GROUP BY 1
ORDER BY month
