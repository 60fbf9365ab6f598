-- keyward schema, PostgreSQL flavour. Times are Unix milliseconds; flags are 0/1 integers; JSON is text.

CREATE TABLE workspaces (
    id            TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT NOT NULL,
    enabled       BIGINT NOT NULL DEFAULT 1,
    created_at_m  BIGINT NOT NULL,
    updated_at_m  BIGINT
);

-- Root keys authenticate calls to the management API of one workspace. Only the hash is stored.
CREATE TABLE root_keys (
    id            TEXT COLLATE "C" PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT,
    hash          TEXT NOT NULL UNIQUE,
    start         TEXT NOT NULL,
    permissions   TEXT NOT NULL,
    enabled       BIGINT NOT NULL DEFAULT 1,
    expires_m     BIGINT,
    created_at_m  BIGINT NOT NULL,
    updated_at_m  BIGINT,
    deleted_at_m  BIGINT
);
CREATE INDEX root_keys_workspace ON root_keys(workspace_id);

CREATE TABLE key_spaces (
    id                    TEXT COLLATE "C" PRIMARY KEY,
    workspace_id          TEXT NOT NULL REFERENCES workspaces(id),
    store_encrypted_keys  BIGINT NOT NULL DEFAULT 0,
    default_prefix        TEXT,
    default_bytes         BIGINT,
    created_at_m          BIGINT NOT NULL,
    updated_at_m          BIGINT,
    deleted_at_m          BIGINT
);

CREATE TABLE apis (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    workspace_id       TEXT NOT NULL REFERENCES workspaces(id),
    name               TEXT NOT NULL,
    key_space_id       TEXT NOT NULL UNIQUE REFERENCES key_spaces(id),
    ip_whitelist       TEXT,
    delete_protection  BIGINT NOT NULL DEFAULT 0,
    created_at_m       BIGINT NOT NULL,
    updated_at_m       BIGINT,
    deleted_at_m       BIGINT
);
CREATE INDEX apis_workspace ON apis(workspace_id);

CREATE TABLE identities (
    id            TEXT COLLATE "C" PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    external_id   TEXT NOT NULL,
    meta          TEXT,
    deleted       BIGINT NOT NULL DEFAULT 0,
    created_at_m  BIGINT NOT NULL,
    updated_at_m  BIGINT
);
CREATE UNIQUE INDEX identities_live_external_id ON identities(workspace_id, external_id) WHERE deleted = 0;

CREATE TABLE keys (
    id                    TEXT COLLATE "C" PRIMARY KEY,
    key_space_id          TEXT NOT NULL REFERENCES key_spaces(id),
    workspace_id          TEXT NOT NULL REFERENCES workspaces(id),
    hash                  TEXT NOT NULL UNIQUE,
    start                 TEXT NOT NULL,
    name                  TEXT,
    identity_id           TEXT,
    meta                  TEXT,
    expires_m             BIGINT,
    enabled               BIGINT NOT NULL DEFAULT 1,
    remaining_requests    BIGINT,
    refill_day            BIGINT,
    refill_amount         BIGINT,
    last_refill_at_m      BIGINT,
    last_used_at_m        BIGINT NOT NULL DEFAULT 0,
    pending_migration_id  TEXT,
    created_at_m          BIGINT NOT NULL,
    updated_at_m          BIGINT,
    deleted_at_m          BIGINT
);
CREATE INDEX keys_key_space ON keys(key_space_id, deleted_at_m, id);
CREATE INDEX keys_identity ON keys(identity_id);

-- Every mutation writes its audit events here, in the mutation's own transaction.
CREATE TABLE audit_logs (
    id            TEXT COLLATE "C" PRIMARY KEY,
    workspace_id  TEXT NOT NULL,
    bucket        TEXT NOT NULL,
    event         TEXT NOT NULL,
    time_m        BIGINT NOT NULL,
    description   TEXT NOT NULL,
    actor_type    TEXT NOT NULL,
    actor_id      TEXT NOT NULL,
    actor_name    TEXT,
    remote_ip     TEXT,
    user_agent    TEXT,
    targets       TEXT NOT NULL,
    meta          TEXT
);
CREATE INDEX audit_logs_workspace_time ON audit_logs(workspace_id, time_m);

-- The change feed: mutations that invalidate cached state append a row in the same transaction;
-- every server process polls it to drop stale cache entries.
CREATE TABLE changes (
    seq           BIGSERIAL PRIMARY KEY,
    kind          TEXT NOT NULL,
    entity_id     TEXT NOT NULL,
    created_at_m  BIGINT NOT NULL
);
CREATE INDEX changes_created ON changes(created_at_m);
