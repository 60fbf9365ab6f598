//! APIs: the list (with the last 24 hours of verifications), creating one, one API's page (its
//! usage, settings and key table with search) and deleting one.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use super::key_form::key_table;
use super::shared::{readable_api, status_of, usage_chart};
use super::{done_notice, failure_notice};
use crate::domain::apis::ApiSettings;
use crate::domain::rbac::requirement::Requirement;
use crate::http::dashboard::client::{ApiClient, Failure};
use crate::http::dashboard::layout::{self, crumbs, empty, notice, Notice};
use crate::http::dashboard::session::{csrf_field, url_escape, Posted, Session};
use crate::http::dashboard::shell::{page, post_button, Section};
use crate::http::dashboard::{html, St};
use crate::http::AppState;
use crate::model::Api;

/// APIs per page of the list.
const APIS_PER_PAGE: usize = 50;
/// Keys per page of an API's table.
pub const KEYS_PER_PAGE: usize = 50;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    cursor: Option<String>,
    done: Option<String>,
}

/// Verifications of the last 24 hours per key space, when the caller may read analytics.
async fn usage_by_key_space(client: &ApiClient, session: &Session) -> Option<HashMap<String, i64>> {
    if !session.may_any("api", "read_analytics") {
        return None;
    }
    let query = "SELECT key_space_id, sum(count) AS total FROM key_verifications_per_hour_v1 \
                 WHERE time >= now() - INTERVAL 1 DAY GROUP BY key_space_id";
    let data = client
        .data(
            session,
            "analytics.getVerifications",
            json!({ "query": query }),
        )
        .await
        .ok()?;
    Some(
        data.as_array()?
            .iter()
            .filter_map(|row| {
                Some((
                    row["key_space_id"].as_str()?.to_string(),
                    row["total"].as_i64().unwrap_or(0),
                ))
            })
            .collect(),
    )
}

fn list_page(
    session: &Session,
    apis: &[Api],
    next: Option<&str>,
    usage: Option<&HashMap<String, i64>>,
    shown: Option<Notice>,
    name: &str,
) -> Markup {
    let may_create = session.may(&Requirement::one("api.*.create_api"));
    page(
        session,
        Section::Apis,
        "APIs",
        html! {
            h1 { "APIs" }
            @if let Some(shown) = &shown { (notice(shown)) }
            @if may_create {
                form.card method="post" action="/apis" data-busy="Creating…" {
                    (csrf_field(session))
                    label for="api-name" { "New API" }
                    div.actions {
                        input #api-name type="text" name="name" required minlength="3" maxlength="256"
                            placeholder="A name, for people (3 to 256 characters)" value=(name);
                        button.primary type="submit" { "Create API" }
                    }
                }
            }
            @if apis.is_empty() {
                (empty("No APIs yet", html! {
                    @if may_create { "Create one above: keys are issued within an API." }
                    @else { "This root key cannot create APIs, and may read none. Ask for a key with " code { "api.*.read_api" } "." }
                }))
            } @else {
                div.table-wrap {
                    table {
                        thead { tr {
                            th scope="col" { "Name" }
                            th scope="col" { "ID" }
                            th.num scope="col" { "Verifications, 24 h" }
                            th.hide-narrow scope="col" { "Created" }
                        } }
                        tbody {
                            @for api in apis {
                                tr {
                                    td { a href=(format!("/apis/{}", api.id)) { (api.name) } }
                                    td.mono { (api.id) }
                                    td.num {
                                        @match usage {
                                            Some(usage) => (layout::count(usage.get(&api.key_space_id).copied().unwrap_or(0))),
                                            None => span.muted title="Needs api.*.read_analytics" { "—" },
                                        }
                                    }
                                    td.hide-narrow { (layout::time(Some(api.created_at))) }
                                }
                            }
                        }
                    }
                }
                @if let Some(next) = next {
                    nav.pager { a href=(format!("/apis?cursor={}", url_escape(next))) { "Next page →" } }
                }
            }
        },
    )
}

/// The caller's readable APIs on one page of the workspace's.
async fn readable_apis(
    state: &AppState,
    session: &Session,
    cursor: Option<&str>,
) -> Result<(Vec<Api>, Option<String>), Response> {
    let page = state
        .apis
        .list(&session.principal.workspace_id, cursor, APIS_PER_PAGE)
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "dashboard: listing APIs");
            layout::failure_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database did not answer. Please try again.",
            )
        })?;
    let apis = page
        .items
        .into_iter()
        .filter(|api| session.may_on("api", &api.id, "read_api"))
        .collect();
    Ok((apis, page.next_cursor))
}

/// `GET /apis`.
pub async fn list(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Response {
    let (apis, next) = match readable_apis(&state, &session, query.cursor.as_deref()).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let usage = usage_by_key_space(&client, &session).await;
    html(list_page(
        &session,
        &apis,
        next.as_deref(),
        usage.as_ref(),
        done_notice(query.done.as_deref()),
        "",
    ))
}

/// `POST /apis`: creates an API and opens it.
pub async fn create(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    Posted { session, form }: Posted,
) -> Response {
    let name = form.raw("name").unwrap_or("").trim().to_string();
    match client
        .data(&session, "apis.createApi", json!({ "name": name }))
        .await
    {
        Ok(data) => {
            let id = data["apiId"].as_str().unwrap_or_default();
            Redirect::to(&format!("/apis/{id}?done=api-created")).into_response()
        }
        Err(failure) => {
            let (apis, next) = readable_apis(&state, &session, None)
                .await
                .unwrap_or_default();
            let usage = usage_by_key_space(&client, &session).await;
            let mut response = html(list_page(
                &session,
                &apis,
                next.as_deref(),
                usage.as_ref(),
                Some(failure_notice(&failure)),
                &name,
            ));
            *response.status_mut() = status_of(&failure);
            response
        }
    }
}

#[derive(Deserialize, Default)]
pub struct ShowQuery {
    cursor: Option<String>,
    q: Option<String>,
    done: Option<String>,
}

/// The keys to show: a page of the listing, or the results of a search.
async fn keys_for(
    state: &AppState,
    client: &ApiClient,
    session: &Session,
    api: &Api,
    query: &ShowQuery,
) -> Result<(Vec<Value>, Option<String>), Failure> {
    let term = query.q.as_deref().map(str::trim).unwrap_or("");
    if term.is_empty() {
        let mut body = json!({ "apiId": api.id, "limit": KEYS_PER_PAGE });
        if let Some(cursor) = &query.cursor {
            body["cursor"] = json!(cursor);
        }
        let answer = client.call(session, "apis.listKeys", body).await?;
        let keys = answer["data"].as_array().cloned().unwrap_or_default();
        let next = answer["pagination"]["cursor"].as_str().map(str::to_string);
        return Ok((keys, next));
    }
    // A search: the caller must be allowed to list this API's keys, as for apis.listKeys.
    let may_list = Requirement::api("read_key", &api.id).and(Requirement::api("read_api", &api.id));
    if !session.may(&may_list) {
        return Err(Failure {
            status: 403,
            code: "insufficient_permissions".into(),
            detail: format!(
                "Searching keys needs api.{0}.read_key (or api.*.read_key) and api.{0}.read_api.",
                api.id
            ),
            fields: Vec::new(),
        });
    }
    let mut found: Vec<Value> = Vec::new();
    let mut push = |key: Value| {
        if !found.iter().any(|k| k["keyId"] == key["keyId"]) {
            found.push(key);
        }
    };
    // An exact key id.
    if term.starts_with("key_") {
        if let Ok(key) = client
            .data(session, "keys.getKey", json!({ "keyId": term }))
            .await
        {
            if super::shared::api_of_key(state, session, term)
                .await
                .as_deref()
                == Some(&api.id)
            {
                push(key);
            }
        }
    }
    // An owner's external id.
    if let Ok(answer) = client
        .call(
            session,
            "apis.listKeys",
            json!({ "apiId": api.id, "externalId": term, "limit": KEYS_PER_PAGE }),
        )
        .await
    {
        for key in answer["data"].as_array().cloned().unwrap_or_default() {
            push(key);
        }
    }
    // A prefix of the name or of the visible start.
    let rows = state
        .apis
        .search_keys(api, term, KEYS_PER_PAGE)
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "dashboard: searching keys");
            Failure {
                status: 503,
                code: "service_unavailable".into(),
                detail: "The search could not run: the database did not answer. Please try again."
                    .into(),
                fields: Vec::new(),
            }
        })?;
    for row in rows {
        let data = crate::http::shapes::key_data(state, row).await;
        if let Ok(value) = serde_json::to_value(data) {
            push(value);
        }
    }
    found.truncate(KEYS_PER_PAGE);
    Ok((found, None))
}

#[derive(Deserialize, Default)]
pub struct WindowQuery {
    window: Option<String>,
}

/// `GET /apis/{api_id}`.
pub async fn show(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    session: Session,
    Path(api_id): Path<String>,
    Query(query): Query<ShowQuery>,
    Query(window): Query<WindowQuery>,
) -> Response {
    let api = match readable_api(&state, &session, &api_id).await {
        Ok(api) => api,
        Err(response) => return response,
    };
    let shown = done_notice(query.done.as_deref());
    let window = window.window.unwrap_or_else(|| "day".into());
    let base = format!("/apis/{}", api.id);
    let chart = usage_chart(
        &client,
        &session,
        ("apiId", &api.id),
        &window,
        state.now(),
        &base,
    )
    .await;
    let keys = keys_for(&state, &client, &session, &api, &query).await;
    html(api_page(
        &session,
        &api,
        &query,
        ApiView {
            shown,
            chart,
            keys,
            settings_problem: None,
            now: state.now(),
        },
    ))
}

/// What an API's page shows besides the API.
struct ApiView {
    shown: Option<Notice>,
    chart: Markup,
    keys: Result<(Vec<Value>, Option<String>), Failure>,
    settings_problem: Option<Notice>,
    now: i64,
}

fn api_page(session: &Session, api: &Api, query: &ShowQuery, view: ApiView) -> Markup {
    let ApiView {
        shown,
        chart,
        keys,
        settings_problem,
        now,
    } = view;
    let may_create_key = session.may_on("api", &api.id, "create_key");
    let may_delete = session.may_on("api", &api.id, "delete_api");
    let may_update = session.may_on("api", &api.id, "update_api");
    let term = query.q.as_deref().unwrap_or("");
    page(
        session,
        Section::Apis,
        &api.name,
        html! {
            (crumbs(&[("/apis", "APIs")], &api.name))
            h1 { (api.name) }
            @if let Some(shown) = &shown { (notice(shown)) }
            div.actions {
                @if may_create_key {
                    a.button.primary href=(format!("/apis/{}/keys/new", api.id)) { "Create key" }
                }
                span.mono.muted { (api.id) }
            }
            (chart)
            h2 #keys { "Keys" }
            div.toolbar {
                form method="get" action=(format!("/apis/{}", api.id)) role="search" {
                    label.visually-hidden for="key-search" { "Search keys" }
                    input #key-search type="search" name="q" value=(term)
                        placeholder="Name, key id, start or external id";
                    button type="submit" { "Search" }
                    @if !term.is_empty() { a href=(format!("/apis/{}", api.id)) { "Clear" } }
                }
            }
            @match &keys {
                Ok((keys, next)) => {
                    @if keys.is_empty() {
                        @if term.is_empty() {
                            (empty("No keys yet", html! {
                                @if may_create_key { a href=(format!("/apis/{}/keys/new", api.id)) { "Create the first key" } " and give it to a customer." }
                                @else { "This root key cannot create keys in this API." }
                            }))
                        } @else {
                            (empty("No key matches", html! { "Search by the start of a name or key, a whole key id, or an owner's external id." }))
                        }
                    } @else {
                        (key_table(keys, now))
                        @if let Some(next) = next {
                            nav.pager { a href=(format!("/apis/{}?cursor={}#keys", api.id, url_escape(next))) { "Next page →" } }
                        }
                    }
                }
                Err(failure) => (notice(&failure_notice(failure))),
            }
            h2 { "Settings" }
            @if let Some(problem) = &settings_problem { (notice(problem)) }
            @if may_update {
                form.card method="post" action=(format!("/apis/{}/settings", api.id)) {
                    (csrf_field(session))
                    label.check { input type="checkbox" name="deleteProtection" checked[api.delete_protection]; "Delete protection: this API cannot be deleted while it is on" }
                    label.check { input type="checkbox" name="recoverable" checked[api.recoverable]; "Recoverable keys: new keys may be stored encrypted, to be shown again later (needs the vault)" }
                    label for="ip-whitelist" { "IP whitelist" }
                    textarea #ip-whitelist name="ipWhitelist" placeholder="One address per line; empty: any address" {
                        (api.ip_whitelist.as_deref().unwrap_or("").replace(',', "\n"))
                    }
                    p.hint { "Keys of this API verify only from these client addresses." }
                    button.primary type="submit" { "Save settings" }
                }
            } @else {
                dl.facts {
                    dt { "Delete protection" } dd { (if api.delete_protection { "on" } else { "off" }) }
                    dt { "Recoverable keys" } dd { (if api.recoverable { "on" } else { "off" }) }
                    dt { "IP whitelist" } dd { (api.ip_whitelist.as_deref().unwrap_or("any address")) }
                }
            }
            @if may_delete {
                h2 { "Danger zone" }
                @if api.delete_protection {
                    p.muted { "Delete protection is on: turn it off above to delete this API." }
                } @else {
                    (post_button(session, &format!("/apis/{}/delete", api.id), "Delete this API", "danger",
                        Some("Delete this API? Its keys stop verifying at once."), &[]))
                }
            }
        },
    )
}

/// `POST /apis/{api_id}/delete`.
pub async fn delete(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    Path(api_id): Path<String>,
    Posted { session, .. }: Posted,
) -> Response {
    match client
        .call(&session, "apis.deleteApi", json!({ "apiId": api_id }))
        .await
    {
        Ok(_) => Redirect::to("/apis?done=api-deleted").into_response(),
        Err(failure) => {
            let api = match readable_api(&state, &session, &api_id).await {
                Ok(api) => api,
                Err(response) => return response,
            };
            let query = ShowQuery::default();
            let keys = keys_for(&state, &client, &session, &api, &query).await;
            let mut response = html(api_page(
                &session,
                &api,
                &query,
                ApiView {
                    shown: Some(failure_notice(&failure)),
                    chart: html! {},
                    keys,
                    settings_problem: None,
                    now: state.now(),
                },
            ));
            *response.status_mut() = status_of(&failure);
            response
        }
    }
}

/// `POST /apis/{api_id}/settings`: needs `update_api` on the API.
pub async fn settings(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    Path(api_id): Path<String>,
    Posted { session, form }: Posted,
) -> Response {
    let api = match readable_api(&state, &session, &api_id).await {
        Ok(api) => api,
        Err(response) => return response,
    };
    let problem = |status: StatusCode, text: String| Some((status, Notice::Error(text)));
    let mut error = None;
    if !session.may_on("api", &api.id, "update_api") {
        error = problem(
            StatusCode::FORBIDDEN,
            format!(
                "Changing settings needs api.{}.update_api (or api.*.update_api).",
                api.id
            ),
        );
    }
    let ips: Vec<String> = form
        .raw("ipWhitelist")
        .unwrap_or("")
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|ip| !ip.is_empty())
        .map(str::to_string)
        .collect();
    if error.is_none() {
        if let Err(why) = crate::domain::apis::check_ip_whitelist(&ips) {
            error = problem(StatusCode::BAD_REQUEST, format!("ipWhitelist: {why}."));
        }
    }
    if error.is_none() {
        let settings = ApiSettings {
            delete_protection: form.checked("deleteProtection"),
            ip_whitelist: ips,
            recoverable: form.checked("recoverable"),
        };
        let actor = session.actor();
        match state
            .apis
            .update_settings(state.now(), &actor, &api, &settings)
            .await
        {
            Ok(true) => {
                return Redirect::to(&format!("/apis/{}?done=api-updated", api.id)).into_response()
            }
            Ok(false) => {
                error = problem(
                    StatusCode::NOT_FOUND,
                    "This API was deleted meanwhile.".into(),
                )
            }
            Err(err) => {
                tracing::error!(error = %err, "dashboard: saving API settings");
                error = problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The database did not answer. Please try again.".into(),
                );
            }
        }
    }
    let query = ShowQuery::default();
    let keys = keys_for(&state, &client, &session, &api, &query).await;
    let mut response = html(api_page(
        &session,
        &api,
        &query,
        ApiView {
            shown: None,
            chart: html! {},
            keys,
            settings_problem: error.as_ref().map(|(_, notice)| notice.clone()),
            now: state.now(),
        },
    ));
    *response.status_mut() = error.map_or(StatusCode::BAD_REQUEST, |(status, _)| status);
    response
}
