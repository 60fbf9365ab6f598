//! What several pages use: reading an API, a key's API or a rate-limit namespace as the session
//! may, the status of a failed call, the usage chart and its window links, counts and ids in
//! analytics queries, and durations as people read them.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde_json::{json, Value};

use super::failure_notice;
use crate::http::dashboard::chart::{stacked_bars, VERIFICATIONS};
use crate::http::dashboard::client::{ApiClient, Failure};
use crate::http::dashboard::layout::{self, notice};
use crate::http::dashboard::session::Session;
use crate::http::AppState;
use crate::model::{Api, Namespace};

const DAY_MS: i64 = 86_400_000;

/// The status a page answers with when the API call behind it failed.
pub fn status_of(failure: &Failure) -> StatusCode {
    StatusCode::from_u16(failure.status).unwrap_or(StatusCode::BAD_REQUEST)
}

/// The live API, if the caller may read it; otherwise the page to answer with.
pub async fn readable_api(
    state: &AppState,
    session: &Session,
    api_id: &str,
) -> Result<Api, Response> {
    let not_found = || {
        layout::failure_page(
            StatusCode::NOT_FOUND,
            "This API does not exist, has been deleted, or this root key may not read it.",
        )
    };
    match state
        .apis
        .live(&session.principal.workspace_id, api_id)
        .await
    {
        Ok(Some(api)) if session.may_on("api", &api.id, "read_api") => Ok(api),
        Ok(_) => Err(not_found()),
        Err(err) => {
            tracing::error!(error = %err, "dashboard: reading an API");
            Err(layout::failure_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database did not answer. Please try again.",
            ))
        }
    }
}

/// The API a key of the session's workspace belongs to.
pub async fn api_of_key(state: &AppState, session: &Session, key_id: &str) -> Option<String> {
    let key = state.keys.find_by_id(key_id).await.ok()??;
    (key.workspace_id == session.principal.workspace_id).then_some(key.api_id)
}

/// Links to a chart's windows (`hour`, `day`, `month`), the current one marked.
pub fn window_links(base: &str, current: &str) -> Markup {
    html! {
        nav.windows aria-label="Chart window" {
            @for (value, label) in [("hour", "Last hour"), ("day", "24 hours"), ("month", "30 days")] {
                @let here = (value == current).then_some("page");
                a href=(format!("{base}?window={value}")) aria-current=[here] { (label) }
            }
        }
    }
}

/// The usage chart of an API, a key or an owner over a window (`hour`, `day` or `month`).
pub async fn usage_chart(
    client: &ApiClient,
    session: &Session,
    subject: (&str, &str),
    window: &str,
    now: i64,
    base: &str,
) -> Markup {
    let (span, granularity) = match window {
        "hour" => (3_600_000, "minute"),
        "month" => (30 * DAY_MS, "day"),
        _ => (DAY_MS, "hour"),
    };
    let body = json!({
        subject.0: subject.1,
        "startTime": now - span,
        "endTime": now,
        "granularity": granularity,
    });
    let chart = match client.data(session, "analytics.getUsage", body).await {
        Ok(data) => {
            let points = data["points"].as_array().cloned().unwrap_or_default();
            stacked_bars(&points, VERIFICATIONS, "Verifications")
        }
        Err(failure) if failure.status == 403 => html! {
            p.muted { "Usage needs " code { "api.*.read_analytics" } " (or the API's own)." }
        },
        Err(failure) => notice(&failure_notice(&failure)),
    };
    html! {
        section.card aria-labelledby="usage-title" {
            h2 #usage-title { "Verifications" }
            (window_links(base, window))
            (chart)
        }
    }
}

/// A duration in ms as people read it (60000 -> "1 min").
pub fn duration_text(ms: i64) -> String {
    match ms {
        ms if ms % 86_400_000 == 0 => format!("{} d", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{} h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{} min", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{} s", ms / 1000),
        ms => format!("{ms} ms"),
    }
}

/// The live namespace (by id or name), if the key may read it; otherwise the page to answer with.
pub async fn readable_namespace(
    state: &AppState,
    session: &Session,
    name_or_id: &str,
) -> Result<Arc<Namespace>, Response> {
    match state
        .limits
        .namespace(&session.principal.workspace_id, name_or_id)
        .await
    {
        Ok(Some(ns)) if !ns.deleted && session.may_on("ratelimit", &ns.id, "read_namespace") => {
            Ok(ns)
        }
        Ok(_) => Err(layout::failure_page(
            StatusCode::NOT_FOUND,
            "This namespace does not exist, has been deleted, or this root key may not read it.",
        )),
        Err(err) => {
            tracing::error!(error = %err, "dashboard: reading a namespace");
            Err(layout::failure_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database did not answer. Please try again.",
            ))
        }
    }
}

/// A count from an analytics row (an integer, or a float on some backends).
pub fn number(value: &Value) -> i64 {
    value
        .as_i64()
        .or_else(|| value.as_f64().map(|n| n as i64))
        .unwrap_or(0)
}

/// An id as a single-quoted SQL literal for an analytics query; `None` for anything but the
/// letters, digits and underscores ids are made of (so nothing needs escaping).
pub fn sql_id(id: &str) -> Option<String> {
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then(|| format!("'{id}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analytics_literals_are_quoted_and_counts_read() {
        assert_eq!(sql_id("rlns_1").as_deref(), Some("'rlns_1'"));
        assert_eq!(sql_id("a' OR 1=1 --"), None);
        assert_eq!(sql_id(""), None);
        assert_eq!(number(&json!(3)), 3);
        assert_eq!(number(&json!(3.0)), 3);
        assert_eq!(number(&Value::Null), 0);
    }
}
