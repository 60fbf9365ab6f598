-- Permissions and roles: what keys may do, checked by permission queries in keys.verifyKey.
-- Slugs and role names are unique per workspace regardless of case.

CREATE TABLE permissions (
    id            TEXT COLLATE "C" PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    slug          TEXT NOT NULL,
    description   TEXT,
    created_at_m  BIGINT NOT NULL,
    updated_at_m  BIGINT
);
CREATE UNIQUE INDEX permissions_workspace_slug ON permissions(workspace_id, lower(slug));

CREATE TABLE roles (
    id            TEXT COLLATE "C" PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    description   TEXT,
    created_at_m  BIGINT NOT NULL,
    updated_at_m  BIGINT
);
CREATE UNIQUE INDEX roles_workspace_name ON roles(workspace_id, lower(name));

CREATE TABLE keys_permissions (
    key_id         TEXT NOT NULL,
    permission_id  TEXT NOT NULL REFERENCES permissions(id) ON DELETE CASCADE,
    workspace_id   TEXT NOT NULL,
    created_at_m   BIGINT NOT NULL,
    PRIMARY KEY (key_id, permission_id)
);
CREATE INDEX keys_permissions_permission ON keys_permissions(permission_id);

CREATE TABLE keys_roles (
    key_id        TEXT NOT NULL,
    role_id       TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    workspace_id  TEXT NOT NULL,
    created_at_m  BIGINT NOT NULL,
    PRIMARY KEY (key_id, role_id)
);
CREATE INDEX keys_roles_role ON keys_roles(role_id);

CREATE TABLE roles_permissions (
    role_id        TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    permission_id  TEXT NOT NULL REFERENCES permissions(id) ON DELETE CASCADE,
    workspace_id   TEXT NOT NULL,
    created_at_m   BIGINT NOT NULL,
    PRIMARY KEY (role_id, permission_id)
);
CREATE INDEX roles_permissions_permission ON roles_permissions(permission_id);
