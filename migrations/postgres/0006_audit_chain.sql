-- The audit log as a per-workspace chain: each event gets its position in the workspace's log
-- (`seq`, assigned under the workspace's head row, so in commit order and without gaps) and a hash
-- over its content and the previous event's hash. Events written before this migration are
-- numbered in time order and stay outside the chain (no hash).
ALTER TABLE audit_logs ADD COLUMN seq BIGINT;
ALTER TABLE audit_logs ADD COLUMN correlation_id TEXT;
ALTER TABLE audit_logs ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_logs ADD COLUMN hash TEXT;
UPDATE audit_logs SET seq = numbered.n
FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY workspace_id ORDER BY time_m, id) AS n
      FROM audit_logs) AS numbered
WHERE audit_logs.id = numbered.id;
CREATE UNIQUE INDEX audit_logs_workspace_seq ON audit_logs(workspace_id, seq);

-- The end of each workspace's chain.
CREATE TABLE audit_heads (
    workspace_id  TEXT PRIMARY KEY,
    seq           BIGINT NOT NULL,
    hash          TEXT NOT NULL
);
INSERT INTO audit_heads (workspace_id, seq, hash)
SELECT workspace_id, MAX(seq), '' FROM audit_logs GROUP BY workspace_id;

-- What each event touched, for filtering by target.
CREATE TABLE audit_log_targets (
    log_id        TEXT NOT NULL,
    workspace_id  TEXT NOT NULL,
    type          TEXT NOT NULL,
    target_id     TEXT NOT NULL
);
CREATE INDEX audit_log_targets_lookup ON audit_log_targets(workspace_id, target_id);
INSERT INTO audit_log_targets (log_id, workspace_id, type, target_id)
SELECT a.id, a.workspace_id, t->>'type', t->>'id'
FROM audit_logs a, json_array_elements(a.targets::json) t;
