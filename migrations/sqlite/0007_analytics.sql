-- Analytics: what the public tables of analytics.getVerifications / getRatelimits expose.
--
-- Every time is unix milliseconds; the rollup tables hold the start of their bucket (UTC). The
-- event writer fills the raw tables and the rollups in the same batches.

-- Verification events gain the columns the public table shows. external_id is copied from the
-- key's identity when the event is written, as Unkey does.
ALTER TABLE key_verifications ADD COLUMN external_id TEXT NOT NULL DEFAULT '';
ALTER TABLE key_verifications ADD COLUMN region TEXT NOT NULL DEFAULT '';
ALTER TABLE key_verifications ADD COLUMN source TEXT NOT NULL DEFAULT 'api';

-- Queries always read one workspace's recent rows, and pruning goes workspace by workspace: one
-- index serves both (a second one would cost every insert).
DROP INDEX key_verifications_time;
CREATE INDEX key_verifications_workspace_time ON key_verifications(workspace_id, time_m);

-- Rollups: verifications counted per bucket and per everything a query may group by.
CREATE TABLE key_verifications_per_minute (
    workspace_id   TEXT NOT NULL,
    time_m         INTEGER NOT NULL,
    key_space_id   TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    identity_id    TEXT NOT NULL,
    external_id    TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    source         TEXT NOT NULL,
    tags           TEXT NOT NULL,
    total          INTEGER NOT NULL,
    spent_credits  INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, time_m, key_id, outcome, tags, key_space_id, identity_id, external_id, source)
) WITHOUT ROWID;
CREATE INDEX key_verifications_per_minute_key ON key_verifications_per_minute(key_id, time_m);

CREATE TABLE key_verifications_per_hour (
    workspace_id   TEXT NOT NULL,
    time_m         INTEGER NOT NULL,
    key_space_id   TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    identity_id    TEXT NOT NULL,
    external_id    TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    source         TEXT NOT NULL,
    tags           TEXT NOT NULL,
    total          INTEGER NOT NULL,
    spent_credits  INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, time_m, key_id, outcome, tags, key_space_id, identity_id, external_id, source)
) WITHOUT ROWID;
CREATE INDEX key_verifications_per_hour_key ON key_verifications_per_hour(key_id, time_m);

CREATE TABLE key_verifications_per_day (
    workspace_id   TEXT NOT NULL,
    time_m         INTEGER NOT NULL,
    key_space_id   TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    identity_id    TEXT NOT NULL,
    external_id    TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    source         TEXT NOT NULL,
    tags           TEXT NOT NULL,
    total          INTEGER NOT NULL,
    spent_credits  INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, time_m, key_id, outcome, tags, key_space_id, identity_id, external_id, source)
) WITHOUT ROWID;
CREATE INDEX key_verifications_per_day_key ON key_verifications_per_day(key_id, time_m);

CREATE TABLE key_verifications_per_month (
    workspace_id   TEXT NOT NULL,
    time_m         INTEGER NOT NULL,
    key_space_id   TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    identity_id    TEXT NOT NULL,
    external_id    TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    source         TEXT NOT NULL,
    tags           TEXT NOT NULL,
    total          INTEGER NOT NULL,
    spent_credits  INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, time_m, key_id, outcome, tags, key_space_id, identity_id, external_id, source)
) WITHOUT ROWID;
CREATE INDEX key_verifications_per_month_key ON key_verifications_per_month(key_id, time_m);

CREATE TABLE ratelimits_per_minute (
    workspace_id   TEXT NOT NULL,
    time_m         INTEGER NOT NULL,
    namespace_id   TEXT NOT NULL,
    identifier     TEXT NOT NULL,
    passed         INTEGER NOT NULL,
    total          INTEGER NOT NULL,
    passed_tokens  INTEGER NOT NULL,
    total_tokens   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, time_m, namespace_id, identifier)
) WITHOUT ROWID;

CREATE TABLE ratelimits_per_hour (
    workspace_id   TEXT NOT NULL,
    time_m         INTEGER NOT NULL,
    namespace_id   TEXT NOT NULL,
    identifier     TEXT NOT NULL,
    passed         INTEGER NOT NULL,
    total          INTEGER NOT NULL,
    passed_tokens  INTEGER NOT NULL,
    total_tokens   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, time_m, namespace_id, identifier)
) WITHOUT ROWID;

CREATE TABLE ratelimits_per_day (
    workspace_id   TEXT NOT NULL,
    time_m         INTEGER NOT NULL,
    namespace_id   TEXT NOT NULL,
    identifier     TEXT NOT NULL,
    passed         INTEGER NOT NULL,
    total          INTEGER NOT NULL,
    passed_tokens  INTEGER NOT NULL,
    total_tokens   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, time_m, namespace_id, identifier)
) WITHOUT ROWID;

CREATE TABLE ratelimits_per_month (
    workspace_id   TEXT NOT NULL,
    time_m         INTEGER NOT NULL,
    namespace_id   TEXT NOT NULL,
    identifier     TEXT NOT NULL,
    passed         INTEGER NOT NULL,
    total          INTEGER NOT NULL,
    passed_tokens  INTEGER NOT NULL,
    total_tokens   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, time_m, namespace_id, identifier)
) WITHOUT ROWID;

-- Rate-limit decisions of ratelimit.limit and ratelimit.multiLimit, one row each.
CREATE TABLE ratelimit_events (
    request_id     TEXT NOT NULL,
    time_m         INTEGER NOT NULL,
    workspace_id   TEXT NOT NULL,
    namespace_id   TEXT NOT NULL,
    identifier     TEXT NOT NULL,
    passed         INTEGER NOT NULL,
    latency_us     INTEGER NOT NULL,
    override_id    TEXT NOT NULL,
    limit_value    INTEGER NOT NULL,
    remaining      INTEGER NOT NULL,
    reset_at_m     INTEGER NOT NULL,
    tokens         INTEGER NOT NULL
);
CREATE INDEX ratelimit_events_workspace_time ON ratelimit_events(workspace_id, time_m);
