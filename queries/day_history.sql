-- The event history of one day: every ingest that added or replaced it, for every instrument.
-- param: day  the trading day, e.g. -p day=2024-02-15
SELECT c.seq, e.time, c.instrument, c.kind, c.old_hash, c.new_hash, c.rows, e.command
FROM changes c JOIN events e USING (seq)
WHERE c.date = CAST($day AS DATE)
ORDER BY c.instrument, c.seq
