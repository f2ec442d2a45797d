-- The worst drawdowns of one run's portfolio: depth, the day of the peak before it and of the trough.
-- param: run  the run id, e.g. -p run=5f2c9e0a1b2c3d4e
-- param: n    how many, e.g. -p n=10 (default: 5)
WITH s AS (
  -- each day's pnl summed in instrument-name order, as the engine sums it, then the
  -- days' in date order (the same bits every time; the worst drawdown is the metrics'
  -- max_drawdown, bit for bit): see pnl_by_year
  SELECT date,
         sum(pnl) OVER (PARTITION BY date ORDER BY instrument ROWS UNBOUNDED PRECEDING)
           AS pnl,
         row_number() OVER (PARTITION BY date ORDER BY instrument) AS k,
         count(*) OVER (PARTITION BY date) AS n
  FROM daily WHERE run_id = $run
), p AS (
  SELECT date, max(CASE WHEN k = n THEN pnl END) AS pnl FROM s GROUP BY date
), e AS (
  SELECT date, sum(pnl) OVER (ORDER BY date ROWS UNBOUNDED PRECEDING) AS equity FROM p
), m AS (
  SELECT date, equity, max(equity) OVER (ORDER BY date ROWS UNBOUNDED PRECEDING) AS runmax
  FROM e
), dd AS (
  SELECT date, equity, greatest(runmax, 0.0) AS peak,
         max(CASE WHEN equity >= runmax AND equity > 0 THEN date END)
           OVER (ORDER BY date ROWS UNBOUNDED PRECEDING) AS peak_day
  FROM m
), ep AS (
  -- a drawdown lasts from a peak until the equity is back at it: its days share the
  -- count of days at a peak before them (two drawdowns from the same peak value, one
  -- after the other, are two; the days below 0 before any peak are the first)
  SELECT *, sum(CASE WHEN equity >= peak THEN 1 ELSE 0 END)
              OVER (ORDER BY date ROWS UNBOUNDED PRECEDING) AS episode
  FROM dd
), troughs AS (
  SELECT date AS trough, equity, peak, peak_day, peak - equity AS drawdown,
         row_number() OVER (PARTITION BY episode ORDER BY peak - equity DESC, date) AS k
  FROM ep WHERE peak - equity > 0
)
SELECT drawdown, peak_day, trough, peak AS peak_equity, equity AS trough_equity
FROM troughs WHERE k = 1
ORDER BY drawdown DESC, trough
LIMIT $n
