-- Every correction: which day of which instrument was replaced, by which event, with both hashes.
-- param: none
SELECT c.seq, e.time, c.instrument, c.date, c.old_hash, c.new_hash, c.rows, e.command
FROM changes c JOIN events e USING (seq)
WHERE c.kind = 'corrected'
ORDER BY c.seq DESC, c.instrument, c.date
