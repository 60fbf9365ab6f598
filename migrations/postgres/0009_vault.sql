-- Recoverable keys. Each workspace has data keys, each sealed (AES-256-GCM) under the operator's
-- master key, which is never stored; the newest seals new keys. A recoverable key's plaintext is
-- sealed under one of them, bound to its workspace and key id. Without the master key neither
-- table reveals anything.
CREATE TABLE vault_data_keys (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces(id),
    master_key_id  TEXT NOT NULL,
    wrapped        TEXT NOT NULL,
    created_at_m   BIGINT NOT NULL
);
CREATE INDEX vault_data_keys_workspace ON vault_data_keys(workspace_id, created_at_m);

CREATE TABLE encrypted_keys (
    key_id         TEXT PRIMARY KEY REFERENCES keys(id),
    workspace_id   TEXT NOT NULL,
    data_key_id    TEXT NOT NULL REFERENCES vault_data_keys(id),
    sealed         TEXT NOT NULL,
    created_at_m   BIGINT NOT NULL,
    updated_at_m   BIGINT
);
CREATE INDEX encrypted_keys_data_key ON encrypted_keys(data_key_id);
CREATE INDEX encrypted_keys_workspace ON encrypted_keys(workspace_id, key_id);
