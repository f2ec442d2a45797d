-- Data coverage and gaps per instrument: days, bars, first and last day, short days (fewer than half the bars of its median day), and weekdays missing between consecutive days.
-- param: none
WITH d AS (
  SELECT instrument, date, count(*) AS n FROM bars GROUP BY instrument, date
), m AS (
  -- a day is short with fewer than half the bars of the instrument's median day (not a
  -- fixed 390: 24-hour markets hold 1440 a day)
  SELECT instrument, median(n) AS usual FROM d GROUP BY instrument
), g AS (
  SELECT instrument, date, n, usual,
         CAST(lead(date) OVER (PARTITION BY instrument ORDER BY date) AS BIGINT)
           - CAST(date AS BIGINT) AS step,
         date_part('dow', date) AS dow
  FROM d JOIN m USING (instrument)
)
SELECT instrument,
       count(*) AS days,
       sum(n) AS bars,
       min(date) AS first_day,
       max(date) AS last_day,
       sum(CASE WHEN 2 * n < usual THEN 1 ELSE 0 END) AS short_days,
       -- weekdays with no bars between two days that have them (weekends are not gaps)
       sum(CASE WHEN step IS NULL THEN 0
                WHEN dow = 5 THEN greatest(step - 3, 0)
                ELSE greatest(step - 1 - 2 * CAST(floor((dow - 1 + step) / 7) AS BIGINT), 0)
           END) AS missing_weekdays
FROM g
GROUP BY instrument
ORDER BY instrument
