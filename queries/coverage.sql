-- Data coverage and gaps per instrument: days, bars, first and last day, short days (fewer than half the bars of its median day), weekdays missing between consecutive days (holidays count), and missing days as ingest says them (days it lacks inside its span that most other instruments whose span holds them have).
-- param: none
WITH d AS (
  -- each day's bars, as the catalog's day index counts them (not a scan of the bars)
  SELECT instrument, date, rows AS n FROM days
), m AS (
  -- a day is short with fewer than half the bars of the instrument's median day (not a
  -- fixed 390: 24-hour markets hold 1440 a day)
  SELECT instrument, median(n) AS usual FROM d GROUP BY instrument
), g AS (
  SELECT instrument, date, n, usual,
         CAST(date AS BIGINT) + 1 AS a,
         CAST(lead(date) OVER (PARTITION BY instrument ORDER BY date) AS BIGINT) AS b
  FROM d JOIN m USING (instrument)
), w AS (
  -- weekdays with no bars between two days that have them (weekends are not gaps): the
  -- weekdays of days [a, b), as W(b) - W(a) where W(e) counts the weekdays before day e
  -- (day 0, 1970-01-01, is a Thursday: 5 a week, then 0 1 2 2 2 3 4 by the day in it)
  SELECT instrument, date, n, usual, a, b,
         5 * ((b - ((b % 7 + 7) % 7)) / 7) + CASE (b % 7 + 7) % 7
           WHEN 0 THEN 0 WHEN 1 THEN 1 WHEN 2 THEN 2 WHEN 3 THEN 2 WHEN 4 THEN 2
           WHEN 5 THEN 3 ELSE 4 END
         - 5 * ((a - ((a % 7 + 7) % 7)) / 7) - CASE (a % 7 + 7) % 7
           WHEN 0 THEN 0 WHEN 1 THEN 1 WHEN 2 THEN 2 WHEN 3 THEN 2 WHEN 4 THEN 2
           WHEN 5 THEN 3 ELSE 4 END AS gap
  FROM g
), span AS (
  SELECT instrument, min(date) AS lo, max(date) AS hi FROM d GROUP BY instrument
), market AS (
  -- each day some instrument has: how many have it, and how many span it
  SELECT x.date, x.have, count(*) AS covering
  FROM (SELECT date, count(*) AS have FROM d GROUP BY date) x
  JOIN span s ON s.lo <= x.date AND x.date <= s.hi
  GROUP BY x.date, x.have
), lacks AS (
  -- days inside an instrument's span it has no bars for, that most of the others
  -- spanning them have (the others: covering - 1, as it spans them and lacks them)
  SELECT s.instrument, count(*) AS missing_days
  FROM span s JOIN market k ON s.lo < k.date AND k.date < s.hi
  LEFT JOIN d ON d.instrument = s.instrument AND d.date = k.date
  WHERE d.date IS NULL AND 2 * k.have > k.covering - 1
  GROUP BY s.instrument
), per AS (
SELECT instrument,
       count(*) AS days,
       sum(n) AS bars,
       min(date) AS first_day,
       max(date) AS last_day,
       sum(CASE WHEN 2 * n < usual THEN 1 ELSE 0 END) AS short_days,
       sum(CASE WHEN b IS NULL OR b < a THEN 0 ELSE gap END) AS missing_weekdays
FROM w
GROUP BY instrument
)
SELECT per.*, coalesce(lacks.missing_days, 0) AS missing_days
FROM per LEFT JOIN lacks USING (instrument)
ORDER BY instrument
