//! One identity: its meta and shared rate limits (edited with `identities.updateIdentity`), its
//! keys, its usage and deleting it (`identities.deleteIdentity`).
//!
//! Its keys are found per API with `apis.listKeys`' `externalId` filter, an indexed lookup, for
//! the first few APIs the key may list keys of; other APIs get a link to their key search.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use super::identity_form::{limit_rows, limits_of, meta_of};
use super::key_form::key_table;
use super::shared::{duration_text, status_of, usage_chart};
use super::{done_notice, failure_notice};
use crate::domain::rbac::requirement::Requirement;
use crate::http::dashboard::client::ApiClient;
use crate::http::dashboard::layout::{self, crumbs, empty, json_block, notice, Notice};
use crate::http::dashboard::session::{csrf_field, url_escape, FormData, Posted, Session};
use crate::http::dashboard::shell::{page, post_button, Section};
use crate::http::dashboard::{html, St};
use crate::http::AppState;
use crate::model::Api;

/// APIs whose keys of the identity are looked up on its page; past them, links to their search.
const LOOKUP_APIS: usize = 10;
/// Keys shown per API.
const KEYS_PER_API: usize = 20;
/// Most rate-limit rows the edit form offers.
const MAX_LIMIT_ROWS: usize = 50;

#[derive(Deserialize, Default)]
pub struct IdentityQuery {
    window: Option<String>,
    done: Option<String>,
}

/// The edit form's values, from the identity as `identities.getIdentity` answers it.
fn form_of(identity: &Value) -> FormData {
    let mut pairs = Vec::new();
    if identity["meta"].as_object().is_some_and(|m| !m.is_empty()) {
        pairs.push((
            "meta".to_string(),
            serde_json::to_string_pretty(&identity["meta"]).unwrap_or_default(),
        ));
    }
    for (i, limit) in identity["ratelimits"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let text = |v: &Value| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v.as_i64().map(|n| n.to_string()))
                .unwrap_or_default()
        };
        pairs.push((format!("rl{i}-name"), text(&limit["name"])));
        pairs.push((format!("rl{i}-limit"), text(&limit["limit"])));
        pairs.push((format!("rl{i}-duration"), text(&limit["duration"])));
        if limit["autoApply"].as_bool().unwrap_or(false) {
            pairs.push((format!("rl{i}-auto"), "on".to_string()));
        }
    }
    FormData::from_pairs(pairs)
}

/// How many rate-limit rows the edit form shows: one more than the identity has, at least 3.
fn rows_for(identity: &Value) -> usize {
    let n = identity["ratelimits"].as_array().map_or(0, Vec::len);
    (n + 1).clamp(3, MAX_LIMIT_ROWS)
}

/// The identity's keys: (API, keys found) for the APIs looked up, and the APIs only linked.
struct KeysView {
    found: Vec<(Api, Vec<Value>)>,
    linked: Vec<Api>,
}

async fn keys_of(
    state: &AppState,
    client: &ApiClient,
    session: &Session,
    external_id: &str,
) -> KeysView {
    let apis = state
        .apis
        .list(&session.principal.workspace_id, None, 100)
        .await
        .map(|page| page.items)
        .unwrap_or_default();
    let listable: Vec<Api> = apis
        .into_iter()
        .filter(|api| {
            session.may_on("api", &api.id, "read_api") && session.may_on("api", &api.id, "read_key")
        })
        .collect();
    let mut view = KeysView {
        found: Vec::new(),
        linked: Vec::new(),
    };
    for (i, api) in listable.into_iter().enumerate() {
        if i >= LOOKUP_APIS {
            view.linked.push(api);
            continue;
        }
        let body = json!({ "apiId": api.id, "externalId": external_id, "limit": KEYS_PER_API });
        match client.data(session, "apis.listKeys", body).await {
            Ok(data) => {
                let keys = data.as_array().cloned().unwrap_or_default();
                if !keys.is_empty() {
                    view.found.push((api, keys));
                }
            }
            Err(_) => view.linked.push(api),
        }
    }
    view
}

struct View {
    shown: Option<Notice>,
    edit: Option<FormData>,
    chart: Markup,
    keys: KeysView,
    now: i64,
}

fn identity_page(session: &Session, identity: &Value, view: View) -> Markup {
    let id = identity["id"].as_str().unwrap_or_default();
    let external_id = identity["externalId"].as_str().unwrap_or_default();
    let may_update = session.may(&Requirement::one("identity.*.update_identity"));
    let may_delete = session.may(&Requirement::one("identity.*.delete_identity"));
    let limits = identity["ratelimits"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let edit = view.edit.unwrap_or_else(|| form_of(identity));
    html! {
        (crumbs(&[("/identities", "Identities")], external_id))
        h1 { (external_id) }
        @if let Some(shown) = &view.shown { (notice(shown)) }
        div.cards {
            section.card {
                h2 { "Identity" }
                dl.facts {
                    dt { "ID" } dd.mono { (id) }
                    dt { "External id" } dd.mono { (external_id) }
                }
                h2 { "Meta" }
                @if identity["meta"].as_object().is_some_and(|m| !m.is_empty()) {
                    (json_block(&identity["meta"]))
                } @else {
                    p.muted { "No meta." }
                }
            }
            (view.chart)
        }
        h2 { "Shared rate limits" }
        @if limits.is_empty() {
            (empty("No shared rate limits", html! {
                @if may_update { "Add one below: every key of this identity will count against it together." }
                @else { "Every key of this identity is limited on its own." }
            }))
        } @else {
            div.table-wrap {
                table {
                    thead { tr {
                        th scope="col" { "Name" }
                        th.num scope="col" { "Limit" }
                        th scope="col" { "Window" }
                        th scope="col" { "Auto-apply" }
                    } }
                    tbody {
                        @for limit in &limits {
                            tr {
                                td.mono { (limit["name"].as_str().unwrap_or_default()) }
                                td.num { (layout::count(limit["limit"].as_i64().unwrap_or(0))) }
                                td { (duration_text(limit["duration"].as_i64().unwrap_or(0))) }
                                td { (if limit["autoApply"].as_bool().unwrap_or(false) { "yes" } else { "no" }) }
                            }
                        }
                    }
                }
            }
        }
        h2 #keys { "Keys" }
        @if view.keys.found.is_empty() && view.keys.linked.is_empty() {
            (empty("No keys", html! { "No key of an API this root key may list belongs to this identity. Give a key the owner " code { (external_id) } " to add one." }))
        }
        @for (api, keys) in &view.keys.found {
            h3 { a href=(format!("/apis/{}", api.id)) { (api.name) } }
            (key_table(keys, view.now))
        }
        @if !view.keys.linked.is_empty() {
            @if view.keys.found.is_empty() { p.muted { "No keys found in the first APIs." } }
            p { "Search for its keys in: "
                @for (i, api) in view.keys.linked.iter().enumerate() {
                    @if i > 0 { ", " }
                    a href=(format!("/apis/{}?q={}#keys", api.id, url_escape(external_id))) { (api.name) }
                }
            }
        }
        @if may_update {
            section.card {
                h2 { "Edit" }
                form method="post" action=(format!("/identities/{id}/update")) data-busy="Saving…" {
                    (csrf_field(session))
                    label for="meta" { "Meta (JSON object)" }
                    textarea #meta name="meta" placeholder="{\"plan\": \"pro\"}" { (edit.raw("meta").unwrap_or("")) }
                    (limit_rows(Some(&edit), rows_for(identity)))
                    input type="hidden" name="rows" value=(rows_for(identity));
                    button.primary type="submit" { "Save changes" }
                }
            }
        }
        @if may_delete {
            h2 { "Danger zone" }
            p.hint { "Its keys keep working, without an owner and without these shared limits." }
            (post_button(session, &format!("/identities/{id}/delete"), "Delete identity", "danger",
                Some("Delete this identity? Its shared rate limits go with it; its keys stay, without an owner."), &[]))
        }
    }
}

/// Renders the page of `identity` with its chart and keys.
async fn render(
    state: &AppState,
    client: &ApiClient,
    session: &Session,
    identity: &Value,
    shown: Option<Notice>,
    edit: Option<FormData>,
    window: &str,
) -> Response {
    let id = identity["id"].as_str().unwrap_or_default();
    let external_id = identity["externalId"].as_str().unwrap_or_default();
    let chart = usage_chart(
        client,
        session,
        ("externalId", external_id),
        window,
        state.now(),
        &format!("/identities/{id}"),
    )
    .await;
    let keys = keys_of(state, client, session, external_id).await;
    let title = external_id.to_string();
    let view = View {
        shown,
        edit,
        chart,
        keys,
        now: state.now(),
    };
    html(page(
        session,
        Section::Identities,
        &title,
        identity_page(session, identity, view),
    ))
}

/// Reads the identity through `identities.getIdentity`, or answers with the page that says why not.
async fn read_identity(client: &ApiClient, session: &Session, id: &str) -> Result<Value, Response> {
    client
        .data(session, "identities.getIdentity", json!({ "identity": id }))
        .await
        .map_err(|failure| layout::failure_page(status_of(&failure), &failure.message()))
}

/// `GET /identities/{id}`.
pub async fn show(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    session: Session,
    Path(id): Path<String>,
    Query(query): Query<IdentityQuery>,
) -> Response {
    let identity = match read_identity(&client, &session, &id).await {
        Ok(identity) => identity,
        Err(response) => return response,
    };
    render(
        &state,
        &client,
        &session,
        &identity,
        done_notice(query.done.as_deref()),
        None,
        query.window.as_deref().unwrap_or("day"),
    )
    .await
}

/// `POST /identities/{id}/update`: replaces the meta and the shared rate limits.
pub async fn update(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    Path(id): Path<String>,
    Posted { session, form }: Posted,
) -> Response {
    let rows = form
        .text("rows")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(3)
        .min(MAX_LIMIT_ROWS);
    let outcome = match (meta_of(&form), limits_of(&form, rows)) {
        (Ok(meta), Ok(limits)) => {
            client
                .data(
                    &session,
                    "identities.updateIdentity",
                    json!({ "identity": id, "meta": meta, "ratelimits": limits }),
                )
                .await
        }
        (Err(failure), _) | (_, Err(failure)) => Err(failure),
    };
    match outcome {
        Ok(_) => Redirect::to(&format!("/identities/{id}?done=identity-updated")).into_response(),
        Err(failure) => {
            let identity = match read_identity(&client, &session, &id).await {
                Ok(identity) => identity,
                Err(response) => return response,
            };
            let mut response = render(
                &state,
                &client,
                &session,
                &identity,
                Some(failure_notice(&failure)),
                Some(form),
                "day",
            )
            .await;
            *response.status_mut() = status_of(&failure);
            response
        }
    }
}

/// `POST /identities/{id}/delete`.
pub async fn delete(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    Path(id): Path<String>,
    Posted { session, .. }: Posted,
) -> Response {
    match client
        .call(
            &session,
            "identities.deleteIdentity",
            json!({ "identity": id }),
        )
        .await
    {
        Ok(_) => Redirect::to("/identities?done=identity-deleted").into_response(),
        Err(failure) => {
            let identity = match read_identity(&client, &session, &id).await {
                Ok(identity) => identity,
                Err(response) => return response,
            };
            let mut response = render(
                &state,
                &client,
                &session,
                &identity,
                Some(failure_notice(&failure)),
                None,
                "day",
            )
            .await;
            *response.status_mut() = status_of(&failure);
            response
        }
    }
}
