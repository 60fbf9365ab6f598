//! The audit log: every change in the workspace, filtered by event, actor and time, a page at a
//! time, read through `audit.getLogs` (so it needs `audit.*.read_audit_log`).

use axum::extract::{Query, State};
use axum::response::Response;
use axum::Extension;
use maud::html;
use serde::Deserialize;
use serde_json::{json, Value};

use super::failure_notice;
use super::key_form::{local_input, utc_millis};
use super::shared::status_of;
use crate::http::dashboard::client::ApiClient;
use crate::http::dashboard::layout::{self, empty, notice, Notice};
use crate::http::dashboard::session::{url_escape, Session};
use crate::http::dashboard::shell::{page, Section};
use crate::http::dashboard::{html, St};

/// Events per page.
const PER_PAGE: usize = 50;
/// How far back the log reads when no start is given.
const DEFAULT_SPAN_MS: i64 = 7 * 86_400_000;

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    event: Option<String>,
    actor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

fn blank(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// `GET /audit`.
pub async fn list(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    session: Session,
    Query(query): Query<AuditQuery>,
) -> Response {
    let now = state.now();
    let mut problem = None;
    let mut time = |field: &Option<String>, name: &str| match blank(field) {
        None => None,
        Some(text) => {
            let parsed = utc_millis(text);
            if parsed.is_none() {
                problem = Some(Notice::Error(format!(
                    "{name}: '{text}' is not a date and time."
                )));
            }
            parsed
        }
    };
    let since = time(&query.since, "since").unwrap_or(now - DEFAULT_SPAN_MS);
    let until = time(&query.until, "until");
    let mut body = json!({ "limit": PER_PAGE, "startTime": since });
    if let Some(until) = until {
        body["endTime"] = json!(until);
    }
    if let Some(event) = blank(&query.event) {
        body["events"] = json!([event]);
    }
    if let Some(actor) = blank(&query.actor) {
        body["actorIds"] = json!([actor]);
    }
    if let Some(cursor) = blank(&query.cursor) {
        body["cursor"] = json!(cursor);
    }
    let answer = match problem {
        Some(_) => Ok(Value::Null),
        None => client.call(&session, "audit.getLogs", body).await,
    };
    let status = answer.as_ref().err().map(status_of);
    let events = answer
        .as_ref()
        .ok()
        .and_then(|a| a["data"].as_array().cloned())
        .unwrap_or_default();
    let next = answer.as_ref().ok().and_then(|a| {
        a["pagination"]["hasMore"]
            .as_bool()
            .unwrap_or(false)
            .then(|| a["pagination"]["cursor"].as_str().map(str::to_string))
            .flatten()
    });
    let filters = |cursor: &str| {
        let mut link = format!("/audit?cursor={}", url_escape(cursor));
        for (name, value) in [
            ("event", &query.event),
            ("actor", &query.actor),
            ("since", &query.since),
            ("until", &query.until),
        ] {
            if let Some(value) = blank(value) {
                link.push_str(&format!("&{name}={}", url_escape(value)));
            }
        }
        link
    };
    let mut response = html(page(
        &session,
        Section::Audit,
        "Audit log",
        html! {
            h1 { "Audit log" }
            p.lede { "Every change in this workspace, oldest first within the window." }
            form.card method="get" action="/audit" role="search" {
                div.row {
                    div {
                        label for="event" { "Event" }
                        input #event type="text" name="event" value=(blank(&query.event).unwrap_or("")) placeholder="e.g. key.create";
                    }
                    div {
                        label for="actor" { "Actor id" }
                        input #actor type="text" name="actor" value=(blank(&query.actor).unwrap_or("")) placeholder="a root key's id";
                    }
                    div {
                        label for="since" { "From (UTC)" }
                        input #since type="datetime-local" name="since" value=(blank(&query.since).map_or_else(|| local_input(Some(since)), str::to_string));
                    }
                    div {
                        label for="until" { "To (UTC)" }
                        input #until type="datetime-local" name="until" value=(blank(&query.until).unwrap_or(""));
                    }
                }
                div.actions {
                    button.primary type="submit" { "Filter" }
                    a href="/audit" { "Reset" }
                }
            }
            @if let Some(problem) = &problem { (notice(problem)) }
            @if let Err(failure) = &answer { (notice(&failure_notice(failure))) }
            @if answer.is_ok() && problem.is_none() {
                @if events.is_empty() {
                    (empty("No events", html! { "Nothing was recorded in this window with these filters. Widen the window or clear a filter." }))
                } @else {
                    div.table-wrap {
                        table {
                            thead { tr {
                                th scope="col" { "Time" }
                                th scope="col" { "Event" }
                                th scope="col" { "Description" }
                                th scope="col" { "Actor" }
                                th.hide-narrow scope="col" { "Targets" }
                                th.hide-narrow scope="col" { "Address" }
                            } }
                            tbody {
                                @for event in &events {
                                    tr {
                                        td { (layout::time(event["time"].as_i64())) }
                                        td.mono { (event["event"].as_str().unwrap_or_default()) }
                                        td { (event["description"].as_str().unwrap_or_default()) }
                                        td {
                                            (event["actor"]["name"].as_str().unwrap_or_default())
                                            br;
                                            span.mono.muted { (event["actor"]["type"].as_str().unwrap_or_default()) " " (event["actor"]["id"].as_str().unwrap_or_default()) }
                                        }
                                        td.hide-narrow {
                                            @for target in event["targets"].as_array().into_iter().flatten() {
                                                div.mono { (target["type"].as_str().unwrap_or_default()) " " (target["id"].as_str().unwrap_or_default()) }
                                            }
                                        }
                                        td.hide-narrow.mono { (event["remoteIp"].as_str().unwrap_or("")) }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(next) = &next {
                        nav.pager { a href=(filters(next)) { "Next page →" } }
                    }
                }
            }
        },
    ));
    if let Some(status) = status {
        *response.status_mut() = status;
    } else if problem.is_some() {
        *response.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    }
    response
}
