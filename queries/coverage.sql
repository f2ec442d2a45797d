-- Data coverage per instrument: days, bars, first and last day, and days with fewer bars than usual.
-- param: none
SELECT instrument,
       count(*) AS days,
       sum(n) AS bars,
       min(date) AS first_day,
       max(date) AS last_day,
       sum(CASE WHEN n < 390 THEN 1 ELSE 0 END) AS short_days
FROM (SELECT instrument, date, count(*) AS n FROM bars GROUP BY instrument, date) AS d
GROUP BY instrument
ORDER BY instrument
