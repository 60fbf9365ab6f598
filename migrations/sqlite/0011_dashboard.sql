-- Dashboard sign-ins. The browser holds only a random session id; this table holds its SHA-256,
-- the root key it acts as (by hash, so the cached authentication can be reused and a disabled
-- or deleted key ends the session at once), and when it was last used.
CREATE TABLE dashboard_sessions (
    id_hash        TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL,
    root_key_id    TEXT NOT NULL,
    root_key_hash  TEXT NOT NULL,
    created_at_m   INTEGER NOT NULL,
    last_seen_m    INTEGER NOT NULL
);
CREATE INDEX dashboard_sessions_last_seen ON dashboard_sessions(last_seen_m);

-- The dashboard's key search: by name or by the key's visible start, within one key space.
CREATE INDEX keys_key_space_name ON keys(key_space_id, name);
CREATE INDEX keys_key_space_start ON keys(key_space_id, start);

-- One owner's keys within a key space, in id order (apis.listKeys with externalId, the
-- dashboard's owner search): without it that listing scanned the whole key space.
CREATE INDEX keys_key_space_identity ON keys(key_space_id, identity_id, id);
