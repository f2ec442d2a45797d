-- The worst drawdowns of one run's portfolio: depth, the day of the peak before it and of the trough.
-- param: run  the run id, e.g. -p run=5f2c9e0a1b2c3d4e
-- param: n    how many, e.g. -p n=10 (default: 5)
WITH p AS (
  SELECT date, sum(pnl) AS pnl FROM daily WHERE run_id = $run GROUP BY date
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
), troughs AS (
  SELECT date AS trough, equity, peak, peak_day, peak - equity AS drawdown,
         row_number() OVER (PARTITION BY peak ORDER BY peak - equity DESC, date) AS k
  FROM dd WHERE peak - equity > 0
)
SELECT drawdown, peak_day, trough, peak AS peak_equity, equity AS trough_equity
FROM troughs WHERE k = 1
ORDER BY drawdown DESC, trough
LIMIT $n
