-- Pruning the audit log removes an event's targets by the event's id: without this index each
-- chunk of a prune scanned every target row. Event ids begin with their creation time, so new
-- entries land at the right edge of the index.
CREATE INDEX audit_log_targets_log ON audit_log_targets(log_id);
