//! The pages of the analytics query errors (`analytics.getVerifications`,
//! `analytics.getRatelimits`, `analytics.getUsage`).

use super::ErrorDoc;
use crate::http::error::ErrorCode;

pub const INVALID_ANALYTICS_QUERY: ErrorDoc = ErrorDoc {
    what_happened: "The analytics query could not be run as written: it is empty, longer \
            than 16 KiB, not valid SQL, more than one statement, uses a `SETTINGS` clause, is \
            too complex (over 2000 syntax nodes or 64 selected columns), uses `IN` with a \
            table, has no `FROM`, or reads a column or calls a function the tables do not \
            have. The detail says which, without repeating the query.",
    example_detail: "Unknown identifier in analytics query",
    how_to_fix: &[
        "Read the detail: it names the rule that failed.",
        "Select only the documented columns of the public tables, for example `outcome`, \
                `key_id`, `time` and `count`.",
        "Send exactly one `SELECT`; a trailing `;` is fine.",
    ],
    common_mistakes: &[
        "Sending two statements separated by `;`.",
        "Selecting a column of one table from another, such as `count` from \
                `key_verifications_v1` (the raw table has one row per verification: use \
                `count()`).",
    ],
    related: &[
        ErrorCode::InvalidAnalyticsQueryType,
        ErrorCode::InvalidAnalyticsTable,
        ErrorCode::InvalidAnalyticsFunction,
    ],
};

pub const INVALID_ANALYTICS_QUERY_TYPE: ErrorDoc = ErrorDoc {
    what_happened: "Analytics queries may only read: the statement was not a `SELECT` \
            (an `INSERT`, `DELETE`, `DROP`, `DESCRIBE` or the like).",
    example_detail: "Only SELECT queries are allowed",
    how_to_fix: &["Rewrite the statement as a `SELECT` over the public tables."],
    common_mistakes: &["Trying to delete old analytics rows: retention removes them."],
    related: &[ErrorCode::InvalidAnalyticsQuery],
};

pub const INVALID_ANALYTICS_TABLE: ErrorDoc = ErrorDoc {
    what_happened: "The query named a table it may not read. Verification queries read \
            `key_verifications_v1` and `key_verifications_per_{minute,hour,day,month}_v1`; \
            rate-limit queries read `ratelimits_v1` and `ratelimits_per_{minute,hour,day,month}_v1`; \
            both may read their own `WITH` tables. Names are case-sensitive. A `WITH` table may \
            not take the name of a public table.",
    example_detail: "Access to table 'system.tables' is not allowed",
    how_to_fix: &[
        "Use the public table names exactly as listed.",
        "Rename a `WITH` table that uses a public table's name.",
    ],
    common_mistakes: &[
        "Using a storage table name such as `key_verifications_raw_v2` or \
                `default.key_verifications_raw_v2`.",
        "Reading rate-limit tables through `analytics.getVerifications`.",
    ],
    related: &[ErrorCode::InvalidAnalyticsQuery],
};

pub const INVALID_ANALYTICS_FUNCTION: ErrorDoc = ErrorDoc {
    what_happened: "The query called a function that is not on the allowed list, or a table \
            function. Allowed are the usual aggregates (`count`, `sum`, `avg`, `min`, `max`, \
            `uniq`, `countIf`, `sumIf`, `groupArray`, `quantile`, ...), date functions \
            (`now`, `toStartOfDay`, `toDate`, `date_trunc`, `toUnixTimestamp`, ...), string, \
            JSON, math, conditional and cast functions, and `has`, `hasAny`, `hasAll`, \
            `arrayJoin` and `arrayFilter` for tags.",
    example_detail: "Function 'file' is not allowed",
    how_to_fix: &["Rewrite the query with allowed functions; the detail names the one refused."],
    common_mistakes: &["Calling ClickHouse functions that read files, URLs or other tables."],
    related: &[ErrorCode::InvalidAnalyticsQuery],
};

pub const QUERY_RANGE_EXCEEDS_RETENTION: ErrorDoc = ErrorDoc {
    what_happened: "The query's `WHERE` asks for data older than the server keeps. keyward \
            keeps analytics for `--analytics-retention-days` (90 by default), and a query may \
            reach back that far.",
    example_detail: "Cannot query data older than 90 days. Your query attempts to access data \
            from 2025-01-01, but only data from 2025-03-02 onwards is available.",
    how_to_fix: &[
        "Move the lower bound of `time` inside the retention window.",
        "If you need a longer history, ask the operator to raise `--analytics-retention-days`.",
    ],
    common_mistakes: &["Asking for a year of daily counts on a server that keeps 90 days."],
    related: &[ErrorCode::InvalidAnalyticsQuery],
};

pub const QUERY_EXECUTION_TIMEOUT: ErrorDoc = ErrorDoc {
    what_happened: "The query ran longer than allowed (10 seconds, and a second less than the \
            server's request timeout: 9 seconds by default) and was stopped.",
    example_detail: "Query execution was canceled or timed out.",
    how_to_fix: &[
        "Read a rollup table (`..._per_hour_v1`, `..._per_day_v1`) instead of the raw one.",
        "Narrow the time range, or filter by key, API or outcome.",
    ],
    common_mistakes: &["Grouping months of raw events where the day rollup has the answer."],
    related: &[
        ErrorCode::QueryMemoryLimitExceeded,
        ErrorCode::QueryRowsLimitExceeded,
    ],
};

pub const QUERY_MEMORY_LIMIT_EXCEEDED: ErrorDoc = ErrorDoc {
    what_happened: "The query's answer would be larger than 4 MiB of JSON.",
    example_detail: "Query result exceeds the maximum response size.",
    how_to_fix: &[
        "Aggregate (`GROUP BY`) instead of listing raw rows.",
        "Add a `LIMIT` and page with `OFFSET`, or select fewer columns.",
    ],
    common_mistakes: &["`SELECT *` over the raw table."],
    related: &[
        ErrorCode::QueryExecutionTimeout,
        ErrorCode::QueryRowsLimitExceeded,
    ],
};

pub const QUERY_ROWS_LIMIT_EXCEEDED: ErrorDoc = ErrorDoc {
    what_happened: "The query would return more rows than allowed. keyward applies the row \
            cap as a `LIMIT` instead, so it does not send this code today; it is listed for \
            clients written for Unkey.",
    example_detail: "Query result exceeds the maximum number of rows.",
    how_to_fix: &["Aggregate, or add a `LIMIT`."],
    common_mistakes: &["Listing raw rows where a count would do."],
    related: &[ErrorCode::QueryMemoryLimitExceeded],
};

pub const QUERY_QUOTA_EXCEEDED: ErrorDoc = ErrorDoc {
    what_happened: "The workspace has run its allowance of analytics queries for the hour \
            (`--analytics-query-quota`, 1000 by default, shared by every node of a cluster).",
    example_detail: "Query quota exceeded for the current time window. Please try again later.",
    how_to_fix: &[
        "Wait and retry: the allowance refills over the hour.",
        "Cache query answers on your side; dashboards rarely need fresher than a minute.",
        "Ask the operator to raise `--analytics-query-quota` if your normal use needs more.",
    ],
    common_mistakes: &["Polling analytics once per page view instead of caching."],
    related: &[ErrorCode::WorkspaceRateLimited],
};
