-- Statistics of each instrument of one run, as vectorbt's stats() per column: the stats query's values over each instrument's own days, best total_pnl first.
-- param: run  the run id, e.g. -p run=5f2c9e0a1b2c3d4e
-- param: start  the window's first day, e.g. -p start=2024-01-01 (default: 0001-01-01)
-- param: end    the window's last day, e.g. -p end=2024-06-30 (default: 9999-12-31)
--
-- A row per instrument with daily rows (none before the run has a day), typed as the
-- stats query's, which says what each value means; here the capital is the run's
-- notional (what each instrument trades), the days are the instrument's own (those it
-- has bars on), and total_pnl, sharpe, max_drawdown, fills, fees and turnover are the
-- metrics table's row of the instrument (bit for bit). An unknown run id is refused, as
-- in every query. `incbt query instrument_stats -p run=ID`; run.instrument_stats() in
-- Python. A window (start, end), as the stats query's: each instrument's days in it
-- alone, its equity from 0 on the first; over fewer of its days than it has, total_pnl,
-- sharpe, max_drawdown, fills, fees and turnover are the window's (running sums of its
-- daily rows in date order).
WITH c AS (
  SELECT notional AS capital FROM runs WHERE run_id = $run
), a AS (
  SELECT instrument, date, pnl, pos, equity, fills, fees, turnover,
         count(*) OVER (PARTITION BY instrument) AS all_days
  FROM daily WHERE run_id = $run
), x0 AS (
  SELECT instrument, date, pnl, pos, fills, fees, turnover, equity, all_days,
         row_number() OVER (PARTITION BY instrument ORDER BY date) AS k,
         count(*) OVER (PARTITION BY instrument) AS days,
         sum(pnl) OVER (PARTITION BY instrument ORDER BY date ROWS UNBOUNDED PRECEDING)
           AS from_start
  FROM a WHERE date BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
), x AS (
  -- the engine's own equity (cumulative PnL) over every day of the instrument; over a
  -- window, its pnl summed from the window's first day
  SELECT instrument, date, pnl, pos, fills, fees, turnover, k, days AS n,
         days = all_days AS whole,
         CASE WHEN days = all_days THEN equity ELSE from_start END AS equity
  FROM x0
), w AS (
  -- the peak starts at 0, before the first day
  SELECT instrument, date, pnl, pos, fills, fees, turnover, k, n, whole, equity,
         greatest(max(equity) OVER (PARTITION BY instrument ORDER BY date
                                    ROWS UNBOUNDED PRECEDING), 0.0) AS peak
  FROM x
), u AS (
  -- each day under water with the day its peak was reached (0: the start)
  SELECT instrument, date, pnl, pos, fills, fees, turnover, k, n, whole, equity, peak,
         equity < peak AS under,
         coalesce(max(CASE WHEN equity >= peak THEN k END)
                    OVER (PARTITION BY instrument ORDER BY date ROWS UNBOUNDED PRECEDING),
                  0) AS peak_k
  FROM w
), r AS (
  -- every aggregate as a running one in date order, taken at each instrument's last day
  -- (k = n): one pass over the days (a CTE read twice is computed twice, from daily),
  -- and the same bits every time (a GROUP BY sums in the order rows reach its threads,
  -- which differs in the last bits from one run of the query to the next)
  SELECT u.instrument, u.k, u.n, u.whole, u.equity,
         min(u.date) OVER (PARTITION BY u.instrument ORDER BY u.date
                           ROWS UNBOUNDED PRECEDING) AS first_day,
         u.date AS last_day,
         sum(CASE WHEN u.pnl > 0 THEN 1 ELSE 0 END)
           OVER (PARTITION BY u.instrument ORDER BY u.date ROWS UNBOUNDED PRECEDING) AS wins,
         sum(CASE WHEN u.pnl < 0 THEN 1 ELSE 0 END)
           OVER (PARTITION BY u.instrument ORDER BY u.date ROWS UNBOUNDED PRECEDING)
           AS loss_days,
         max(u.pnl) OVER (PARTITION BY u.instrument ORDER BY u.date ROWS UNBOUNDED PRECEDING)
           AS best_day,
         min(u.pnl) OVER (PARTITION BY u.instrument ORDER BY u.date ROWS UNBOUNDED PRECEDING)
           AS worst_day,
         sum(CASE WHEN u.pos <> 0 THEN 1 ELSE 0 END)
           OVER (PARTITION BY u.instrument ORDER BY u.date ROWS UNBOUNDED PRECEDING)
           AS held_days,
         -- a drawdown lasts from its peak's day to the first day back at or above the
         -- peak (its last day under water + 1), or to the instrument's last day if it
         -- never is: each day under water counts its drawdown so far, the longest is the
         -- most of them
         max(CASE WHEN u.under
                  THEN CASE WHEN u.k = u.n THEN u.n - u.peak_k ELSE u.k + 1 - u.peak_k END
             END)
           OVER (PARTITION BY u.instrument ORDER BY u.date ROWS UNBOUNDED PRECEDING)
           AS longest,
         max(u.peak - u.equity) OVER (PARTITION BY u.instrument ORDER BY u.date
                                      ROWS UNBOUNDED PRECEDING) AS drawdown,
         sum(u.fills) OVER (PARTITION BY u.instrument ORDER BY u.date
                            ROWS UNBOUNDED PRECEDING) AS fills,
         sum(u.fees) OVER (PARTITION BY u.instrument ORDER BY u.date
                           ROWS UNBOUNDED PRECEDING) AS fees,
         sum(u.turnover) OVER (PARTITION BY u.instrument ORDER BY u.date
                               ROWS UNBOUNDED PRECEDING) AS turnover,
         stddev_samp(u.pnl / c.capital) OVER (PARTITION BY u.instrument ORDER BY u.date
                                               ROWS UNBOUNDED PRECEDING) AS std,
         -- downside deviation: sqrt of the mean over every day of min(return, 0)^2
         sqrt(avg(least(u.pnl / c.capital, 0.0) * least(u.pnl / c.capital, 0.0))
                OVER (PARTITION BY u.instrument ORDER BY u.date ROWS UNBOUNDED PRECEDING))
           AS down,
         avg(CASE WHEN u.pnl > 0 THEN u.pnl END)
           OVER (PARTITION BY u.instrument ORDER BY u.date ROWS UNBOUNDED PRECEDING)
           AS avg_win_day,
         avg(CASE WHEN u.pnl < 0 THEN u.pnl END)
           OVER (PARTITION BY u.instrument ORDER BY u.date ROWS UNBOUNDED PRECEDING)
           AS avg_loss_day,
         sum(CASE WHEN u.pnl > 0 THEN u.pnl ELSE 0.0 END)
           OVER (PARTITION BY u.instrument ORDER BY u.date ROWS UNBOUNDED PRECEDING) AS gains,
         sum(CASE WHEN u.pnl < 0 THEN u.pnl ELSE 0.0 END)
           OVER (PARTITION BY u.instrument ORDER BY u.date ROWS UNBOUNDED PRECEDING)
           AS losses,
         c.capital
  FROM u CROSS JOIN c
), agg AS (
  SELECT instrument, first_day, last_day, n AS days, wins, loss_days, best_day,
         worst_day, held_days, std, down, avg_win_day, avg_loss_day, gains, losses,
         capital, whole, equity, drawdown, fills AS w_fills, fees AS w_fees,
         turnover AS w_turnover, longest
  FROM r WHERE k = n
), v AS (
  -- the metrics: the table's row over every day of the instrument (bit for bit), the
  -- window's own over fewer
  SELECT a.*,
         CASE WHEN a.whole THEN m.total_pnl ELSE a.equity END AS total_pnl,
         CASE WHEN a.whole THEN m.sharpe
              WHEN a.days >= 2 AND a.std * a.std > 0
              THEN a.equity / a.capital / a.days / a.std * sqrt(252.0)
              ELSE 0.0 END AS sharpe,
         CASE WHEN a.whole THEN m.max_drawdown ELSE a.drawdown END AS max_drawdown,
         CASE WHEN a.whole THEN m.fills ELSE a.w_fills END AS fills,
         CASE WHEN a.whole THEN m.fees ELSE a.w_fees END AS fees,
         CASE WHEN a.whole THEN m.turnover ELSE a.w_turnover END AS turnover
  FROM agg a
  LEFT JOIN metrics m
    ON m.run_id = $run AND m.scope = 'instrument' AND m.instrument = a.instrument
)
SELECT a.instrument, a.first_day AS start, a.last_day AS "end", a.days,
       a.total_pnl,
       a.total_pnl / a.capital AS total_return,
       a.total_pnl / a.capital / a.days * 252 AS annual_return,
       a.std * sqrt(252.0) AS annual_volatility,
       a.sharpe,
       -- NULL with fewer than 2 days (as the volatility) or no losing day
       CASE WHEN a.days >= 2 AND a.down > 0
            THEN a.total_pnl / a.capital / a.days * 252 / (a.down * sqrt(252.0)) END
         AS sortino,
       a.max_drawdown,
       100.0 * a.max_drawdown / a.capital AS max_drawdown_pct,
       -- annual_return over the worst drawdown as a fraction of capital; NULL without one
       CASE WHEN a.max_drawdown / a.capital > 0
            THEN a.total_pnl / a.capital / a.days * 252 / (a.max_drawdown / a.capital) END
         AS calmar,
       CAST(coalesce(a.longest, 0) AS BIGINT) AS max_drawdown_days,
       100.0 * a.wins / a.days AS win_days_pct,
       a.best_day, a.worst_day, a.avg_win_day, a.avg_loss_day,
       -- NULL with no losing day
       CASE WHEN a.loss_days > 0 THEN a.gains / -a.losses END AS profit_factor,
       a.fills, a.fees, a.turnover,
       100.0 * a.held_days / a.days AS exposure_pct
FROM v a
ORDER BY a.total_pnl DESC, a.instrument
