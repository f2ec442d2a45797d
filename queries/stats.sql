-- Statistics of one run's portfolio, as vectorbt's stats(): returns, volatility, Sharpe, Sortino, drawdowns, win days, exposure, costs.
-- param: run  the run id, e.g. -p run=5f2c9e0a1b2c3d4e
--
-- One row (the terminal shows a row too wide for it as column/value lines), typed:
-- dates stay dates and counts integers in CSV, JSON, Parquet and run.stats(). No row
-- for a run with no daily rows yet; an unknown run id is refused, as in every query.
-- Money in the run's currency; total_return, annual_return and annual_volatility as
-- fractions of capital (0.05 is 5%); the _pct columns in percent (5.0 is 5%).
-- Capital: notional x the run's instruments, as the metrics count it. The engine's PnL
-- is on a fixed notional, never compounded, so returns annualize simply, over 252
-- trading days: annual_return = total_pnl / capital / days * 252, annual_volatility =
-- the sample (ddof=1) std of daily returns (pnl / capital) * sqrt(252), as the Sharpe.
-- total_pnl, sharpe, max_drawdown, fills, fees and turnover are the metrics table's own
-- (folded by incbt in a fixed order: SQL's float aggregates can differ in their last
-- bits between two runs of a query), so sharpe is annual_return / annual_volatility up
-- to those bits, and 0 (not NULL) with fewer than 2 days or no variation (SEMANTICS).
WITH c AS (
  -- capital: notional x the run's instruments (its universe; every instrument of the
  -- store for --all), as the portfolio's metrics and Run.equity count it
  SELECT r.notional * coalesce(r.instruments, a.n) AS capital
  FROM runs r CROSS JOIN (SELECT count(DISTINCT instrument) AS n FROM files) a
  WHERE r.run_id = $run
), h AS (
  -- whether the instrument holds units at the day's close (pos), and the change of it
  -- from its previous day with bars: it holds them on the days between too, with no bar
  SELECT date, instrument, pnl, held - coalesce(lag(held) OVER (PARTITION BY instrument
         ORDER BY date), 0) AS held_change
  FROM (SELECT date, instrument, pnl, CASE WHEN pos <> 0 THEN 1 ELSE 0 END AS held
        FROM daily WHERE run_id = $run) x
), s AS (
  -- each day's pnl summed in instrument-name order, as the engine sums it (a GROUP BY
  -- sum adds partial sums in the order threads finish): the running sum's last row
  -- (counted ascending: with a DESC count beside it, DataFusion computed the sums from
  -- the other end, in other bits)
  SELECT date, held_change,
         sum(pnl) OVER (PARTITION BY date ORDER BY instrument ROWS UNBOUNDED PRECEDING)
           AS pnl,
         row_number() OVER (PARTITION BY date ORDER BY instrument) AS k,
         count(*) OVER (PARTITION BY date) AS n
  FROM h
), p AS (
  SELECT date, max(CASE WHEN k = n THEN pnl END) AS pnl, sum(held_change) AS held_change
  FROM s GROUP BY date
), e AS (
  SELECT date, pnl,
         row_number() OVER (ORDER BY date) AS k,
         sum(pnl) OVER (ORDER BY date ROWS UNBOUNDED PRECEDING) AS equity,
         -- instruments holding units at the day's close
         sum(held_change) OVER (ORDER BY date ROWS UNBOUNDED PRECEDING) AS holding
  FROM p
), w AS (
  -- the peak starts at 0, before the first day (SEMANTICS: max_drawdown's)
  SELECT date, pnl, k, equity, holding,
         greatest(max(equity) OVER (ORDER BY date ROWS UNBOUNDED PRECEDING), 0.0) AS peak
  FROM e
), u AS (
  -- each day under water with the day its peak was reached (0: the start)
  SELECT k, equity < peak AS under,
         coalesce(max(CASE WHEN equity >= peak THEN k END)
                    OVER (ORDER BY date ROWS UNBOUNDED PRECEDING), 0) AS peak_k
  FROM w
), dd AS (
  -- a drawdown lasts from its peak's day to the first day back at or above the peak
  -- (its last day under water + 1), or to the last day if it never is
  SELECT max(CASE WHEN last_k = n THEN n - peak_k ELSE last_k + 1 - peak_k END) AS longest
  FROM (SELECT peak_k, max(k) AS last_k FROM u WHERE under GROUP BY peak_k) x
  CROSS JOIN (SELECT count(*) AS n FROM w) y
), agg AS (
  SELECT min(w.date) AS first_day, max(w.date) AS last_day, count(*) AS days,
         stddev_samp(w.pnl / c.capital) AS std,
         -- downside deviation: sqrt of the mean over every day of min(return, 0)^2
         sqrt(avg(least(w.pnl / c.capital, 0.0) * least(w.pnl / c.capital, 0.0))) AS down,
         sum(CASE WHEN w.pnl > 0 THEN 1 ELSE 0 END) AS wins,
         sum(CASE WHEN w.pnl < 0 THEN 1 ELSE 0 END) AS loss_days,
         max(w.pnl) AS best_day, min(w.pnl) AS worst_day,
         avg(CASE WHEN w.pnl > 0 THEN w.pnl END) AS avg_win_day,
         avg(CASE WHEN w.pnl < 0 THEN w.pnl END) AS avg_loss_day,
         sum(CASE WHEN w.pnl > 0 THEN w.pnl ELSE 0.0 END) AS gains,
         sum(CASE WHEN w.pnl < 0 THEN w.pnl ELSE 0.0 END) AS losses,
         sum(CASE WHEN w.holding > 0 THEN 1 ELSE 0 END) AS held_days,
         max(c.capital) AS capital
  FROM w CROSS JOIN c
)
SELECT a.first_day AS start, a.last_day AS "end", a.days,
       m.total_pnl,
       m.total_pnl / a.capital AS total_return,
       m.total_pnl / a.capital / a.days * 252 AS annual_return,
       a.std * sqrt(252.0) AS annual_volatility,
       m.sharpe,
       -- NULL with fewer than 2 days (as the volatility) or no losing day (tested as
       -- such: NULLIF(x, 0.0) keeps -0.0, and x / -0.0 is NaN or -inf)
       CASE WHEN a.days >= 2 AND a.down > 0
            THEN m.total_pnl / a.capital / a.days * 252 / (a.down * sqrt(252.0)) END
         AS sortino,
       m.max_drawdown,
       100.0 * m.max_drawdown / a.capital AS max_drawdown_pct,
       -- annual_return over the worst drawdown as a fraction of capital; NULL without one
       -- (tested as a fraction: a drawdown of a few subnormal units is 0.0 of capital)
       CASE WHEN m.max_drawdown / a.capital > 0
            THEN m.total_pnl / a.capital / a.days * 252 / (m.max_drawdown / a.capital) END
         AS calmar,
       CAST(coalesce(dd.longest, 0) AS BIGINT) AS max_drawdown_days,
       100.0 * a.wins / a.days AS win_days_pct,
       a.best_day, a.worst_day, a.avg_win_day, a.avg_loss_day,
       -- NULL with no losing day
       CASE WHEN a.loss_days > 0 THEN a.gains / -a.losses END AS profit_factor,
       m.fills, m.fees, m.turnover,
       100.0 * a.held_days / a.days AS exposure_pct
FROM agg a
CROSS JOIN dd
LEFT JOIN metrics m ON m.run_id = $run AND m.scope = 'portfolio'
-- no row for a run with no days yet (an aggregate of none is one row of NULLs)
WHERE a.days > 0
