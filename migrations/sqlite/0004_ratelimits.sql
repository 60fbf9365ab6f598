-- Rate limits: limits attached to keys and identities (checked in keys.verifyKey), and the
-- namespaces and overrides of standalone rate limiting (ratelimit.*).

CREATE TABLE ratelimits (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    key_id        TEXT,
    identity_id   TEXT,
    limit_value   INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL,
    auto_apply    INTEGER NOT NULL DEFAULT 0,
    created_at_m  INTEGER NOT NULL,
    updated_at_m  INTEGER
);
CREATE UNIQUE INDEX ratelimits_key_name ON ratelimits(key_id, name) WHERE key_id IS NOT NULL;
CREATE UNIQUE INDEX ratelimits_identity_name ON ratelimits(identity_id, name) WHERE identity_id IS NOT NULL;

CREATE TABLE ratelimit_namespaces (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    created_at_m  INTEGER NOT NULL,
    updated_at_m  INTEGER,
    deleted_at_m  INTEGER
);
CREATE UNIQUE INDEX ratelimit_namespaces_workspace_name ON ratelimit_namespaces(workspace_id, name);

CREATE TABLE ratelimit_overrides (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    namespace_id  TEXT NOT NULL REFERENCES ratelimit_namespaces(id),
    identifier    TEXT NOT NULL,
    limit_value   INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL,
    created_at_m  INTEGER NOT NULL,
    updated_at_m  INTEGER,
    deleted_at_m  INTEGER
);
CREATE UNIQUE INDEX ratelimit_overrides_namespace_identifier ON ratelimit_overrides(namespace_id, identifier);
