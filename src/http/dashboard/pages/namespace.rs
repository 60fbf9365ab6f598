//! One rate-limit namespace: its passed and blocked decisions over time, its overrides (listed,
//! set and deleted through `ratelimit.*` routes) and a box that tries an identifier with
//! `ratelimit.limit`, showing the API's answer.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use super::shared::{duration_text, number, readable_namespace, sql_id, status_of, window_links};
use super::{done_notice, failure_notice};
use crate::http::dashboard::chart::{stacked_bars, RATELIMITS};
use crate::http::dashboard::client::{ApiClient, Failure};
use crate::http::dashboard::layout::{self, crumbs, empty, notice, Notice};
use crate::http::dashboard::session::{csrf_field, url_escape, FormData, Posted, Session};
use crate::http::dashboard::shell::{page, post_button, Section};
use crate::http::dashboard::{html, St};
use crate::http::AppState;
use crate::model::Namespace;

/// Overrides per page.
const OVERRIDES_PER_PAGE: usize = 100;

#[derive(Deserialize, Default)]
pub struct NamespaceQuery {
    window: Option<String>,
    cursor: Option<String>,
    done: Option<String>,
}

/// Points of the chart: (rollup table, bucket length, buckets) per window.
fn window_spec(window: &str) -> (&'static str, i64, i64) {
    match window {
        "hour" => ("ratelimits_per_minute_v1", 60_000, 60),
        "month" => ("ratelimits_per_day_v1", 86_400_000, 30),
        _ => ("ratelimits_per_hour_v1", 3_600_000, 24),
    }
}

/// Every bucket of the window from `first`, `step` apart, with the counts found (others zero).
pub fn zero_filled(found: &HashMap<i64, (i64, i64)>, first: i64, step: i64, n: i64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let at = first + i * step;
            let (passed, blocked) = found.get(&at).copied().unwrap_or((0, 0));
            json!({ "time": at, "passed": passed, "blocked": blocked })
        })
        .collect()
}

/// The passed/blocked chart of a namespace over a window (`hour`, `day` or `month`).
async fn decisions_chart(
    client: &ApiClient,
    session: &Session,
    ns: &Namespace,
    window: &str,
    now: i64,
) -> Markup {
    let (table, step, n) = window_spec(window);
    let first = (now.div_euclid(step) - (n - 1)) * step;
    let chart = if !session.may_on("ratelimit", &ns.id, "read_analytics") {
        html! { p.muted { "The chart needs " code { "ratelimit.*.read_analytics" } " (or this namespace's own)." } }
    } else if let Some(id) = sql_id(&ns.id) {
        let query = format!(
            "SELECT toUnixTimestamp(time) AS t, sum(passed) AS passed, sum(total) AS total \
             FROM {table} WHERE namespace_id = {id} AND time >= fromUnixTimestamp64Milli({first}) \
             GROUP BY time ORDER BY time"
        );
        match client
            .data(
                session,
                "analytics.getRatelimits",
                json!({ "query": query }),
            )
            .await
        {
            Ok(rows) => {
                let found: HashMap<i64, (i64, i64)> = rows
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|row| {
                        let passed = number(&row["passed"]);
                        let total = number(&row["total"]);
                        // Buckets are aligned to the epoch, as the rollups are.
                        let at = number(&row["t"]) * 1000;
                        (at - at.rem_euclid(step), (passed, total - passed))
                    })
                    .collect();
                let points = zero_filled(&found, first, step, n);
                stacked_bars(&points, RATELIMITS, "Decisions")
            }
            Err(failure) => notice(&failure_notice(&failure)),
        }
    } else {
        html! {}
    };
    html! {
        section.card aria-labelledby="decisions-title" {
            h2 #decisions-title { "Decisions" }
            (window_links(&format!("/ratelimits/{}", ns.id), window))
            (chart)
        }
    }
}

/// A page of overrides and the next page's cursor, or why they could not be read; `None` when
/// the key may not read them.
type Overrides = Option<Result<(Vec<Value>, Option<String>), Failure>>;

/// What the namespace page shows besides the namespace.
#[derive(Default)]
struct View {
    shown: Option<Notice>,
    chart: Option<Markup>,
    overrides: Overrides,
    /// The override form as submitted, when it was refused.
    override_form: Option<FormData>,
    /// The test form as submitted, and the API's answer to it.
    test_form: Option<FormData>,
    test_answer: Option<Value>,
}

fn kept<'a>(form: Option<&'a FormData>, name: &str) -> &'a str {
    form.and_then(|f| f.raw(name)).unwrap_or("")
}

fn overrides_table(session: &Session, ns: &Namespace, overrides: &[Value]) -> Markup {
    let may_delete = session.may_on("ratelimit", &ns.id, "delete_override");
    html! {
        div.table-wrap {
            table {
                thead { tr {
                    th scope="col" { "Identifier" }
                    th.num scope="col" { "Limit" }
                    th scope="col" { "Window" }
                    th.hide-narrow scope="col" { "ID" }
                    @if may_delete { th scope="col" { span.visually-hidden { "Actions" } } }
                } }
                tbody {
                    @for o in overrides {
                        @let identifier = o["identifier"].as_str().unwrap_or_default();
                        tr {
                            td.mono { (identifier) }
                            td.num { (layout::count(number(&o["limit"]))) }
                            td { (duration_text(number(&o["duration"]))) }
                            td.hide-narrow.mono { (o["overrideId"].as_str().unwrap_or_default()) }
                            @if may_delete {
                                td {
                                    (post_button(session, &format!("/ratelimits/{}/overrides/delete", ns.id), "Delete", "danger",
                                        Some("Delete this override? The identifier falls back to the limit its callers ask for."),
                                        &[("identifier", identifier)]))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn test_answer(answer: &Value) -> Markup {
    let success = answer["success"].as_bool().unwrap_or(false);
    html! {
        div.card #test-answer role="status" {
            p {
                @if success { span.badge.ok { "passed" } } @else { span.badge.off { "blocked" } }
            }
            dl.facts {
                dt { "success" } dd.mono { (success) }
                dt { "limit" } dd.mono { (number(&answer["limit"])) }
                dt { "remaining" } dd.mono { (number(&answer["remaining"])) }
                dt { "reset" } dd { (layout::time(answer["reset"].as_i64())) }
                dt { "overrideId" } dd.mono { (answer["overrideId"].as_str().unwrap_or("none")) }
            }
        }
    }
}

fn namespace_page(session: &Session, ns: &Namespace, view: View) -> Markup {
    let may = |action: &str| session.may_on("ratelimit", &ns.id, action);
    let override_form = view.override_form.as_ref();
    let test_form = view.test_form.as_ref();
    page(
        session,
        Section::Ratelimits,
        &ns.name,
        html! {
            (crumbs(&[("/ratelimits", "Rate limits")], &ns.name))
            h1 { (ns.name) }
            @if let Some(shown) = &view.shown { (notice(shown)) }
            p.muted { span.mono { (ns.id) } " · created " (layout::time(Some(ns.created_at))) }
            @if let Some(chart) = &view.chart { (chart) }
            h2 #overrides { "Overrides" }
            p.hint { "An override replaces the limit and window callers ask for, for one identifier or for every identifier matching a pattern (" code { "*" } " matches any run of characters; an exact identifier wins over patterns)." }
            @match &view.overrides {
                None => p.muted { "Listing overrides needs " code { "ratelimit.*.read_override" } " (or this namespace's own)." },
                Some(Err(failure)) => (notice(&failure_notice(failure))),
                Some(Ok((overrides, next))) => {
                    @if overrides.is_empty() {
                        (empty("No overrides", html! {
                            @if may("set_override") { "Every identifier gets the limit its caller asks for. Add an override below to give one customer more, or less." }
                            @else { "Every identifier gets the limit its caller asks for." }
                        }))
                    } @else {
                        (overrides_table(session, ns, overrides))
                        @if let Some(next) = next {
                            nav.pager { a href=(format!("/ratelimits/{}?cursor={}#overrides", ns.id, url_escape(next))) { "Next page →" } }
                        }
                    }
                }
            }
            @if may("set_override") {
                form.card method="post" action=(format!("/ratelimits/{}/overrides", ns.id)) data-busy="Saving…" {
                    (csrf_field(session))
                    h2 { "Set an override" }
                    div.row {
                        div {
                            label for="override-identifier" { "Identifier or pattern" }
                            input #override-identifier type="text" name="identifier" required maxlength="512"
                                value=(kept(override_form, "identifier")) placeholder="e.g. customer_42 or *@acme.com";
                        }
                        div {
                            label for="override-limit" { "Limit" }
                            input #override-limit type="number" name="limit" required min="0"
                                value=(kept(override_form, "limit")) placeholder="0 blocks it";
                        }
                        div {
                            label for="override-duration" { "Window (ms)" }
                            input #override-duration type="number" name="duration" required min="1000"
                                value=(kept(override_form, "duration")) placeholder="60000";
                        }
                    }
                    p.hint { "Setting an identifier that already has an override replaces it." }
                    button.primary type="submit" { "Save override" }
                }
            }
            @if may("limit") {
                form.card #test method="post" action=(format!("/ratelimits/{}/test", ns.id)) data-busy="Asking…" {
                    (csrf_field(session))
                    h2 { "Test an identifier" }
                    p.hint { "Asks " code { "ratelimit.limit" } " exactly as your service would. It is a real request: it counts against the identifier and shows in the chart." }
                    div.row {
                        div {
                            label for="test-identifier" { "Identifier" }
                            input #test-identifier type="text" name="identifier" required maxlength="512"
                                value=(kept(test_form, "identifier")) placeholder="e.g. customer_42";
                        }
                        div {
                            label for="test-limit" { "Limit" }
                            input #test-limit type="number" name="limit" required min="1"
                                value=(if kept(test_form, "limit").is_empty() { "10" } else { kept(test_form, "limit") });
                        }
                        div {
                            label for="test-duration" { "Window (ms)" }
                            input #test-duration type="number" name="duration" required min="1000"
                                value=(if kept(test_form, "duration").is_empty() { "60000" } else { kept(test_form, "duration") });
                        }
                    }
                    div.actions { button type="submit" { "Test" } }
                    @if let Some(answer) = &view.test_answer { (test_answer(answer)) }
                }
            }
        },
    )
}

async fn overrides_of(
    client: &ApiClient,
    session: &Session,
    ns: &Namespace,
    cursor: Option<&str>,
) -> Overrides {
    if !session.may_on("ratelimit", &ns.id, "read_override") {
        return None;
    }
    let mut body = json!({ "namespace": ns.id, "limit": OVERRIDES_PER_PAGE });
    if let Some(cursor) = cursor {
        body["cursor"] = json!(cursor);
    }
    Some(
        client
            .call(session, "ratelimit.listOverrides", body)
            .await
            .map(|answer| {
                let items = answer["data"].as_array().cloned().unwrap_or_default();
                let next = answer["pagination"]["cursor"].as_str().map(str::to_string);
                (items, next)
            }),
    )
}

/// Renders the page with everything it reads, and `view`'s notice and forms.
async fn render(
    state: &AppState,
    client: &ApiClient,
    session: &Session,
    ns: &Namespace,
    mut view: View,
    query: &NamespaceQuery,
) -> Response {
    let window = query.window.as_deref().unwrap_or("day");
    view.chart = Some(decisions_chart(client, session, ns, window, state.now()).await);
    view.overrides = overrides_of(client, session, ns, query.cursor.as_deref()).await;
    html(namespace_page(session, ns, view))
}

/// `GET /ratelimits/{namespace}`.
pub async fn show(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    session: Session,
    Path(namespace): Path<String>,
    Query(query): Query<NamespaceQuery>,
) -> Response {
    let ns = match readable_namespace(&state, &session, &namespace).await {
        Ok(ns) => ns,
        Err(response) => return response,
    };
    let view = View {
        shown: done_notice(query.done.as_deref()),
        ..Default::default()
    };
    render(&state, &client, &session, &ns, view, &query).await
}

fn whole(form: &FormData, name: &str) -> Result<i64, Failure> {
    let text = form.text(name).unwrap_or_default();
    text.parse::<i64>().map_err(|_| Failure {
        status: 400,
        code: "invalid_input".into(),
        detail: format!("{name}: '{text}' is not a whole number."),
        fields: Vec::new(),
    })
}

/// The page again with a failure in place, answered with the API's status.
async fn failed(
    state: &AppState,
    client: &ApiClient,
    session: &Session,
    ns: &Namespace,
    failure: &Failure,
    view: View,
) -> Response {
    let view = View {
        shown: Some(failure_notice(failure)),
        ..view
    };
    let mut response = render(state, client, session, ns, view, &NamespaceQuery::default()).await;
    *response.status_mut() = status_of(failure);
    response
}

/// `POST /ratelimits/{namespace}/overrides`: sets (or replaces) an override.
pub async fn set_override(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    Path(namespace): Path<String>,
    Posted { session, form }: Posted,
) -> Response {
    let ns = match readable_namespace(&state, &session, &namespace).await {
        Ok(ns) => ns,
        Err(response) => return response,
    };
    let outcome = match (whole(&form, "limit"), whole(&form, "duration")) {
        (Ok(limit), Ok(duration)) => {
            client
                .data(
                    &session,
                    "ratelimit.setOverride",
                    json!({
                        "namespace": ns.id,
                        "identifier": form.raw("identifier").unwrap_or("").trim(),
                        "limit": limit,
                        "duration": duration,
                    }),
                )
                .await
        }
        (Err(failure), _) | (_, Err(failure)) => Err(failure),
    };
    match outcome {
        Ok(_) => Redirect::to(&format!(
            "/ratelimits/{}?done=override-set#overrides",
            ns.id
        ))
        .into_response(),
        Err(failure) => {
            let view = View {
                override_form: Some(form),
                ..Default::default()
            };
            failed(&state, &client, &session, &ns, &failure, view).await
        }
    }
}

/// `POST /ratelimits/{namespace}/overrides/delete`.
pub async fn delete_override(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    Path(namespace): Path<String>,
    Posted { session, form }: Posted,
) -> Response {
    let ns = match readable_namespace(&state, &session, &namespace).await {
        Ok(ns) => ns,
        Err(response) => return response,
    };
    let identifier = form.raw("identifier").unwrap_or("");
    match client
        .data(
            &session,
            "ratelimit.deleteOverride",
            json!({ "namespace": ns.id, "identifier": identifier }),
        )
        .await
    {
        Ok(_) => Redirect::to(&format!(
            "/ratelimits/{}?done=override-deleted#overrides",
            ns.id
        ))
        .into_response(),
        Err(failure) => failed(&state, &client, &session, &ns, &failure, View::default()).await,
    }
}

/// `POST /ratelimits/{namespace}/test`: one `ratelimit.limit` call, its answer shown in place.
pub async fn test(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    Path(namespace): Path<String>,
    Posted { session, form }: Posted,
) -> Response {
    let ns = match readable_namespace(&state, &session, &namespace).await {
        Ok(ns) => ns,
        Err(response) => return response,
    };
    let outcome = match (whole(&form, "limit"), whole(&form, "duration")) {
        (Ok(limit), Ok(duration)) => {
            client
                .data(
                    &session,
                    "ratelimit.limit",
                    json!({
                        "namespace": ns.name,
                        "identifier": form.raw("identifier").unwrap_or("").trim(),
                        "limit": limit,
                        "duration": duration,
                    }),
                )
                .await
        }
        (Err(failure), _) | (_, Err(failure)) => Err(failure),
    };
    match outcome {
        Ok(answer) => {
            let view = View {
                test_form: Some(form),
                test_answer: Some(answer),
                ..Default::default()
            };
            render(
                &state,
                &client,
                &session,
                &ns,
                view,
                &NamespaceQuery::default(),
            )
            .await
        }
        Err(failure) => {
            let view = View {
                test_form: Some(form),
                ..Default::default()
            };
            failed(&state, &client, &session, &ns, &failure, view).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_zero_filled_and_durations_read_as_people_say_them() {
        let mut found = HashMap::new();
        found.insert(7_200_000, (3, 1));
        let points = zero_filled(&found, 3_600_000, 3_600_000, 3);
        assert_eq!(points.len(), 3);
        assert_eq!(points[0]["passed"], 0);
        assert_eq!(points[1]["passed"], 3);
        assert_eq!(points[1]["blocked"], 1);
        assert_eq!(points[2]["time"], 10_800_000);
        assert_eq!(duration_text(60_000), "1 min");
        assert_eq!(duration_text(86_400_000), "1 d");
        assert_eq!(duration_text(1_500), "1500 ms");
    }
}
