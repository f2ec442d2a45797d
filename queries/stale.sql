-- Stale runs and why: every (run, instrument) an update would recompute, the reason and from which day.
-- param: none
SELECT run_id, strategy, instrument, reason, from_day, bars, replaced_by FROM stale ORDER BY run_id, instrument
