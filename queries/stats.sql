-- Statistics of one run's portfolio, as vectorbt's stats(): returns, volatility, Sharpe, Sortino, drawdowns, win days, exposure, costs.
-- param: run  the run id, e.g. -p run=5f2c9e0a1b2c3d4e
-- param: start  the window's first day, e.g. -p start=2024-01-01 (default: 0001-01-01)
-- param: end    the window's last day, e.g. -p end=2024-06-30 (default: 9999-12-31)
--
-- One row, the run's full id first (the terminal shows a row too wide for it as
-- column/value lines), typed:
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
-- A window (start, end: vectorbt's pf.loc[start:end].stats()) keeps the days in it:
-- the equity starts at 0 on its first day (the peak too), positions held into it count
-- in exposure_pct from its first day; over fewer days than the run's, total_pnl, sharpe,
-- max_drawdown, fills, fees and turnover are the window's, computed here from its
-- daily rows (each day's summed in instrument order, then the days' in date order, as
-- the pnl; sharpe as SEMANTICS defines it).
-- Written over a set of runs (the CTE `sel`; Sweep.stats() runs it over a sweep's),
-- each window partitioned by run: every float is summed in a fixed order (running sums
-- by instrument name and date), the same bits every time and for a run alone or in a set.
WITH sel AS (
  SELECT run_id FROM runs WHERE run_id = $run
), c AS (
  -- capital: notional x the run's instruments (its universe; every instrument of the
  -- store for --all), as the portfolio's metrics and Run.equity count it
  SELECT r.run_id, r.notional * coalesce(r.instruments, a.n) AS capital
  FROM runs r JOIN sel ON sel.run_id = r.run_id
  CROSS JOIN (SELECT count(DISTINCT instrument) AS n FROM files) a
), h AS (
  -- whether the instrument holds units at the day's close (pos), and the change of it
  -- from its previous day with bars: it holds them on the days between too, with no bar
  SELECT run_id, date, instrument, pnl, fills, fees, turnover,
         held - coalesce(lag(held) OVER (PARTITION BY run_id, instrument ORDER BY date), 0)
           AS held_change
  FROM (SELECT d.run_id, d.date, d.instrument, d.pnl, d.fills, d.fees, d.turnover,
               CASE WHEN d.pos <> 0 THEN 1 ELSE 0 END AS held
        FROM daily d JOIN sel ON sel.run_id = d.run_id) x
), s AS (
  -- each day's pnl summed in instrument-name order, as the engine sums it (a GROUP BY
  -- sum adds partial sums in the order threads finish): the running sum's last row
  -- (counted ascending: with a DESC count beside it, DataFusion computed the sums from
  -- the other end, in other bits)
  SELECT run_id, date, held_change, fills,
         sum(pnl) OVER (PARTITION BY run_id, date ORDER BY instrument
                        ROWS UNBOUNDED PRECEDING) AS pnl,
         sum(fees) OVER (PARTITION BY run_id, date ORDER BY instrument
                         ROWS UNBOUNDED PRECEDING) AS fees,
         sum(turnover) OVER (PARTITION BY run_id, date ORDER BY instrument
                             ROWS UNBOUNDED PRECEDING) AS turnover,
         row_number() OVER (PARTITION BY run_id, date ORDER BY instrument) AS k,
         count(*) OVER (PARTITION BY run_id, date) AS n
  FROM h
), p AS (
  SELECT run_id, date, max(CASE WHEN k = n THEN pnl END) AS pnl,
         max(CASE WHEN k = n THEN fees END) AS fees,
         max(CASE WHEN k = n THEN turnover END) AS turnover, sum(fills) AS fills,
         sum(held_change) AS held_change
  FROM s GROUP BY run_id, date
), all_days AS (
  -- instruments holding units at the day's close, from the run's first day; the run's
  -- days (a window of them all is the whole run)
  SELECT run_id, date, pnl, fills, fees, turnover,
         sum(held_change) OVER (PARTITION BY run_id ORDER BY date
                                ROWS UNBOUNDED PRECEDING) AS holding,
         count(*) OVER (PARTITION BY run_id) AS run_days
  FROM p
), e AS (
  SELECT p.run_id, p.date, p.pnl, p.pnl / c.capital AS ret, c.capital, p.holding,
         p.run_days, p.fills, p.fees, p.turnover,
         row_number() OVER (PARTITION BY p.run_id ORDER BY p.date) AS k,
         count(*) OVER (PARTITION BY p.run_id) AS n,
         sum(p.pnl) OVER (PARTITION BY p.run_id ORDER BY p.date ROWS UNBOUNDED PRECEDING)
           AS equity
  FROM all_days p JOIN c ON c.run_id = p.run_id
  -- the window's bounds as columns, not literals (QA 2026-12-08): with literals,
  -- DataFusion read a window of a run's first or last day alone as a constant date from
  -- the results files' statistics, dropped the sort of these windows and then refused
  -- its own plan ("SanityCheckPlan ... does not satisfy order requirements")
  CROSS JOIN (SELECT CAST($start AS DATE) AS first, CAST($end AS DATE) AS last) b
  WHERE p.date BETWEEN b.first AND b.last
), w AS (
  -- the peak starts at 0, before the first day (SEMANTICS: max_drawdown's)
  SELECT run_id, date, pnl, ret, capital, k, n, equity, holding, run_days, fills, fees,
         turnover,
         greatest(max(equity) OVER (PARTITION BY run_id ORDER BY date
                                    ROWS UNBOUNDED PRECEDING), 0.0) AS peak
  FROM e
), u AS (
  -- each day under water with the day its peak was reached (0: the start)
  SELECT run_id, date, pnl, ret, capital, k, n, equity, holding, run_days, fills, fees,
         turnover, peak, equity < peak AS under,
         coalesce(max(CASE WHEN equity >= peak THEN k END)
                    OVER (PARTITION BY run_id ORDER BY date ROWS UNBOUNDED PRECEDING), 0)
           AS peak_k
  FROM w
), r AS (
  -- every aggregate as a running one in date order, taken at the window's last day
  -- (k = n): one pass over the days (a CTE read twice is computed twice, from daily)
  SELECT run_id, k, n, capital, equity, run_days,
         min(date) OVER (PARTITION BY run_id ORDER BY date ROWS UNBOUNDED PRECEDING)
           AS first_day,
         date AS last_day,
         sum(CASE WHEN pnl > 0 THEN 1 ELSE 0 END)
           OVER (PARTITION BY run_id ORDER BY date ROWS UNBOUNDED PRECEDING) AS wins,
         sum(CASE WHEN pnl < 0 THEN 1 ELSE 0 END)
           OVER (PARTITION BY run_id ORDER BY date ROWS UNBOUNDED PRECEDING) AS loss_days,
         max(pnl) OVER (PARTITION BY run_id ORDER BY date ROWS UNBOUNDED PRECEDING)
           AS best_day,
         min(pnl) OVER (PARTITION BY run_id ORDER BY date ROWS UNBOUNDED PRECEDING)
           AS worst_day,
         sum(CASE WHEN holding > 0 THEN 1 ELSE 0 END)
           OVER (PARTITION BY run_id ORDER BY date ROWS UNBOUNDED PRECEDING) AS held_days,
         -- a drawdown lasts from its peak's day to the first day back at or above the
         -- peak (its last day under water + 1), or to the last day if it never is: each
         -- day under water counts its drawdown so far, the longest is the most of them
         max(CASE WHEN under THEN CASE WHEN k = n THEN n - peak_k ELSE k + 1 - peak_k END END)
           OVER (PARTITION BY run_id ORDER BY date ROWS UNBOUNDED PRECEDING) AS longest,
         max(peak - equity) OVER (PARTITION BY run_id ORDER BY date
                                  ROWS UNBOUNDED PRECEDING) AS drawdown,
         -- a window's fills, fees and turnover: each day's summed in instrument order,
         -- then the days' in date order (as the pnl)
         sum(fills) OVER (PARTITION BY run_id ORDER BY date ROWS UNBOUNDED PRECEDING)
           AS fills,
         sum(fees) OVER (PARTITION BY run_id ORDER BY date ROWS UNBOUNDED PRECEDING)
           AS fees,
         sum(turnover) OVER (PARTITION BY run_id ORDER BY date ROWS UNBOUNDED PRECEDING)
           AS turnover,
         stddev_samp(ret) OVER (PARTITION BY run_id ORDER BY date ROWS UNBOUNDED PRECEDING)
           AS std,
         -- downside deviation: sqrt of the mean over every day of min(return, 0)^2
         sqrt(avg(least(ret, 0.0) * least(ret, 0.0))
                OVER (PARTITION BY run_id ORDER BY date ROWS UNBOUNDED PRECEDING)) AS down,
         avg(CASE WHEN pnl > 0 THEN pnl END)
           OVER (PARTITION BY run_id ORDER BY date ROWS UNBOUNDED PRECEDING) AS avg_win_day,
         avg(CASE WHEN pnl < 0 THEN pnl END)
           OVER (PARTITION BY run_id ORDER BY date ROWS UNBOUNDED PRECEDING) AS avg_loss_day,
         sum(CASE WHEN pnl > 0 THEN pnl ELSE 0.0 END)
           OVER (PARTITION BY run_id ORDER BY date ROWS UNBOUNDED PRECEDING) AS gains,
         sum(CASE WHEN pnl < 0 THEN pnl ELSE 0.0 END)
           OVER (PARTITION BY run_id ORDER BY date ROWS UNBOUNDED PRECEDING) AS losses
  FROM u
), agg AS (
  SELECT run_id, first_day, last_day, n AS days, wins, loss_days, best_day, worst_day,
         held_days, std, down, avg_win_day, avg_loss_day, gains, losses, capital, equity,
         drawdown, fills AS w_fills, fees AS w_fees, turnover AS w_turnover,
         n = run_days AS whole, longest
  FROM r WHERE k = n
), v AS (
  -- the metrics: the table's over the whole run (incbt's fold, bit for bit), the
  -- window's own over fewer days
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
  LEFT JOIN metrics m ON m.run_id = a.run_id AND m.scope = 'portfolio'
)
SELECT a.run_id, a.first_day AS start, a.last_day AS "end", a.days,
       a.total_pnl,
       a.total_pnl / a.capital AS total_return,
       a.total_pnl / a.capital / a.days * 252 AS annual_return,
       a.std * sqrt(252.0) AS annual_volatility,
       a.sharpe,
       -- NULL with fewer than 2 days (as the volatility) or no losing day (tested as
       -- such: NULLIF(x, 0.0) keeps -0.0, and x / -0.0 is NaN or -inf)
       CASE WHEN a.days >= 2 AND a.down > 0
            THEN a.total_pnl / a.capital / a.days * 252 / (a.down * sqrt(252.0)) END
         AS sortino,
       a.max_drawdown,
       100.0 * a.max_drawdown / a.capital AS max_drawdown_pct,
       -- annual_return over the worst drawdown as a fraction of capital; NULL without one
       -- (tested as a fraction: a drawdown of a few subnormal units is 0.0 of capital)
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
-- no row for a run with no days yet
ORDER BY a.run_id
