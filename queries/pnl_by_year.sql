-- Portfolio PnL of one run by year: sum of daily pnl, return on capital, days, fills, fees.
-- param: run  the run id, e.g. -p run=5f2c9e0a1b2c3d4e
--
-- Sums in a fixed order (each day's in instrument-name order, then the days'), the same
-- bits every time: the pnl of a run within one year is its metrics' total_pnl, bit for
-- bit.
WITH c AS (
  -- capital: notional x the run's instruments (its universe; every instrument of the
  -- store for --all), as the portfolio's metrics and Run.equity count it
  SELECT r.notional * coalesce(r.instruments, a.n) AS capital
  FROM runs r CROSS JOIN (SELECT count(DISTINCT instrument) AS n FROM files) a
  WHERE r.run_id = $run
), s AS (
  -- each day's pnl and fees summed in instrument-name order, as the engine sums the
  -- portfolio's pnl (a GROUP BY sum adds in the order rows reach its threads: other
  -- last bits from one run of the query to the next); the day's last row holds them
  -- (counted ascending: with a DESC count beside it, DataFusion computed the sums from
  -- the other end, in other bits)
  SELECT date, fills,
         sum(pnl) OVER (PARTITION BY date ORDER BY instrument ROWS UNBOUNDED PRECEDING)
           AS pnl,
         sum(fees) OVER (PARTITION BY date ORDER BY instrument ROWS UNBOUNDED PRECEDING)
           AS fees,
         row_number() OVER (PARTITION BY date ORDER BY instrument) AS k,
         count(*) OVER (PARTITION BY date) AS n
  FROM daily WHERE run_id = $run
), p AS (
  SELECT date, max(CASE WHEN k = n THEN pnl END) AS pnl,
         max(CASE WHEN k = n THEN fees END) AS fees, sum(fills) AS fills
  FROM s GROUP BY date
), m AS (
  -- then the days' in date order, as the metrics fold them: a whole run's is total_pnl
  SELECT period, fills,
         sum(pnl) OVER (PARTITION BY period ORDER BY date ROWS UNBOUNDED PRECEDING) AS pnl,
         sum(fees) OVER (PARTITION BY period ORDER BY date ROWS UNBOUNDED PRECEDING) AS fees,
         row_number() OVER (PARTITION BY period ORDER BY date) AS k,
         count(*) OVER (PARTITION BY period) AS n
  FROM (SELECT p.*, date_part('year', date) AS period FROM p) x
)
SELECT m.period AS year,
       max(CASE WHEN m.k = m.n THEN m.pnl END) AS pnl,
       max(CASE WHEN m.k = m.n THEN m.pnl END) / max(c.capital) AS return_on_capital,
       count(*) AS days,
       sum(m.fills) AS fills,
       max(CASE WHEN m.k = m.n THEN m.fees END) AS fees
FROM m CROSS JOIN c
GROUP BY m.period
ORDER BY year
