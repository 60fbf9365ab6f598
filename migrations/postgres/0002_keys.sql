-- Keys issue: migrations of imported keys, and the verification event log.

CREATE TABLE key_migrations (
    id            TEXT COLLATE "C" PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    algorithm     TEXT NOT NULL,
    created_at_m  BIGINT NOT NULL
);

CREATE INDEX keys_pending_migration ON keys(pending_migration_id) WHERE pending_migration_id IS NOT NULL;

-- One row per verification that reached a key of the caller's workspace; written in batches.
CREATE TABLE key_verifications (
    request_id     TEXT NOT NULL,
    time_m         BIGINT NOT NULL,
    workspace_id   TEXT NOT NULL,
    api_id         TEXT NOT NULL,
    key_space_id   TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    identity_id    TEXT,
    outcome        TEXT NOT NULL,
    tags           TEXT NOT NULL,
    spent_credits  BIGINT NOT NULL,
    latency_us     BIGINT NOT NULL
);
CREATE INDEX key_verifications_key_time ON key_verifications(key_id, time_m);
