-- Portfolio PnL of one run by year: sum of daily pnl, return on capital, days, fills, fees.
-- param: run  the run id, e.g. -p run=5f2c9e0a1b2c3d4e
SELECT date_part('year', d.date) AS year,
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
GROUP BY date_part('year', d.date)
ORDER BY year
