-- The event log is append-only and read by time: index it by time (appends land at the right edge
-- of the index) instead of by key, whose index took a random page write per verification once
-- many keys were in use.
DROP INDEX key_verifications_key_time;
CREATE INDEX key_verifications_time ON key_verifications(time_m);

-- Each key's latest verification (what getKey shows as lastUsedAt), advanced by the event writer
-- in batches sorted by key id.
CREATE TABLE key_last_used (
    key_id  TEXT PRIMARY KEY,
    time_m  BIGINT NOT NULL
);
