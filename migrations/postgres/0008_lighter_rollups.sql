-- The minute and hour rollups are the largest and the most often written (every group of every
-- key, every flush of the event writer); their key index doubled the cost of each upsert. They
-- are read by time (the primary key leads with workspace and time), and a key's own series over
-- long windows is read from the day and month rollups, which keep theirs.
DROP INDEX key_verifications_per_minute_key;
DROP INDEX key_verifications_per_hour_key;
