//! Rate limits: the workspace's namespaces, with the decisions of the last 24 hours. The API has
//! no route that lists namespaces, so the list comes from the rate-limit service, behind
//! `ratelimit.*.read_namespace` (or the namespace's own); the counts come from
//! `analytics.getRatelimits`, when the key may read them. One namespace's page is
//! `namespace.rs`.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::done_notice;
use super::shared::number;
use crate::http::dashboard::client::ApiClient;
use crate::http::dashboard::layout::{self, empty, notice};
use crate::http::dashboard::session::{url_escape, Session};
use crate::http::dashboard::shell::{page, Section};
use crate::http::dashboard::{html, St};
use crate::model::Namespace;

/// Namespaces per page of the list.
const PER_PAGE: usize = 50;
const DAY_MS: i64 = 86_400_000;

/// (passed, blocked) of the last 24 hours per namespace id, when the key may read analytics.
async fn decisions_by_namespace(
    client: &ApiClient,
    session: &Session,
    now: i64,
) -> Option<HashMap<String, (i64, i64)>> {
    if !session.may_any("ratelimit", "read_analytics") {
        return None;
    }
    let query = format!(
        "SELECT namespace_id, sum(passed) AS passed, sum(total) AS total \
         FROM ratelimits_per_hour_v1 WHERE time >= fromUnixTimestamp64Milli({}) \
         GROUP BY namespace_id",
        now - DAY_MS
    );
    let data = client
        .data(
            session,
            "analytics.getRatelimits",
            json!({ "query": query }),
        )
        .await
        .ok()?;
    Some(
        data.as_array()?
            .iter()
            .filter_map(|row| {
                let passed = number(&row["passed"]);
                let total = number(&row["total"]);
                Some((
                    row["namespace_id"].as_str()?.to_string(),
                    (passed, total - passed),
                ))
            })
            .collect(),
    )
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    cursor: Option<String>,
    done: Option<String>,
}

/// `GET /ratelimits`.
pub async fn list(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Response {
    let listed = state
        .limits
        .list_namespaces(
            &session.principal.workspace_id,
            query.cursor.as_deref(),
            PER_PAGE,
        )
        .await;
    let page_of = match listed {
        Ok(found) => found,
        Err(err) => {
            tracing::error!(error = %err, "dashboard: listing namespaces");
            return layout::failure_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database did not answer. Please try again.",
            );
        }
    };
    let namespaces: Vec<&Namespace> = page_of
        .items
        .iter()
        .filter(|ns| session.may_on("ratelimit", &ns.id, "read_namespace"))
        .collect();
    let counts = decisions_by_namespace(&client, &session, state.now()).await;
    let shown = done_notice(query.done.as_deref());
    let may_read_any = session.may_any("ratelimit", "read_namespace");
    html(page(
        &session,
        Section::Ratelimits,
        "Rate limits",
        html! {
            h1 { "Rate limits" }
            p.lede { "Namespaces of standalone rate limits (" code { "ratelimit.limit" } "): each counts its identifiers separately, and overrides change the limit of chosen identifiers." }
            @if let Some(shown) = &shown { (notice(shown)) }
            @if namespaces.is_empty() {
                (empty("No namespaces yet", html! {
                    @if may_read_any {
                        "A namespace is created the first time " code { "ratelimit.limit" } " names it (with "
                        code { "ratelimit.*.create_namespace" } "). Call it from your service, then come back here for its chart and overrides."
                    } @else {
                        "This root key may read no namespace. Ask for a key with " code { "ratelimit.*.read_namespace" } "."
                    }
                }))
            } @else {
                div.table-wrap {
                    table {
                        thead { tr {
                            th scope="col" { "Name" }
                            th scope="col" { "ID" }
                            th.num scope="col" { "Passed, 24 h" }
                            th.num scope="col" { "Blocked, 24 h" }
                            th.hide-narrow scope="col" { "Created" }
                        } }
                        tbody {
                            @for ns in &namespaces {
                                @let found = counts.as_ref().map(|c| c.get(&ns.id).copied().unwrap_or((0, 0)));
                                tr {
                                    td { a href=(format!("/ratelimits/{}", ns.id)) { (ns.name) } }
                                    td.mono { (ns.id) }
                                    @match found {
                                        Some((passed, blocked)) => {
                                            td.num { (layout::count(passed)) }
                                            td.num { (layout::count(blocked)) }
                                        }
                                        None => {
                                            td.num { span.muted title="Needs ratelimit.*.read_analytics" { "—" } }
                                            td.num { span.muted title="Needs ratelimit.*.read_analytics" { "—" } }
                                        }
                                    }
                                    td.hide-narrow { (layout::time(Some(ns.created_at))) }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &page_of.next_cursor {
                nav.pager { a href=(format!("/ratelimits?cursor={}", url_escape(next))) { "Next page →" } }
            }
        },
    ))
}
