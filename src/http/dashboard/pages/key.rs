//! One key: its facts and usage chart, and every change the API allows on it: edit, enable or
//! disable, credits, permissions and roles, reroll, reveal (recoverable keys) and delete.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use super::key_form::{credits_text, key_body, key_fields, local_input, status_badge};
use super::shared::{api_of_key, status_of, usage_chart};
use super::{done_notice, failure_notice};
use crate::http::dashboard::client::{ApiClient, Failure};
use crate::http::dashboard::layout::{self, crumbs, json_block, notice, Notice};
use crate::http::dashboard::session::{csrf_field, FormData, Posted, Session};
use crate::http::dashboard::shell::{page, post_button, Section};
use crate::http::dashboard::{html, St};
use crate::http::AppState;

#[derive(Deserialize, Default)]
pub struct KeyQuery {
    done: Option<String>,
    window: Option<String>,
}

/// The edit form's values, from the key as `keys.getKey` answers it.
fn form_of(key: &Value) -> FormData {
    let mut pairs = Vec::new();
    let mut put = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            pairs.push((name.to_string(), value));
        }
    };
    put("name", key["name"].as_str().map(str::to_string));
    put(
        "externalId",
        key["identity"]["externalId"].as_str().map(str::to_string),
    );
    put(
        "expires",
        key["expires"].as_i64().map(|ms| local_input(Some(ms))),
    );
    if key["enabled"].as_bool().unwrap_or(true) {
        put("enabled", Some("on".into()));
    }
    let credits = &key["credits"];
    put(
        "remaining",
        credits["remaining"].as_i64().map(|n| n.to_string()),
    );
    put(
        "refillInterval",
        credits["refill"]["interval"].as_str().map(str::to_string),
    );
    put(
        "refillAmount",
        credits["refill"]["amount"].as_i64().map(|n| n.to_string()),
    );
    put(
        "refillDay",
        credits["refill"]["refillDay"]
            .as_i64()
            .map(|n| n.to_string()),
    );
    for (i, limit) in key["ratelimits"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        put(
            &format!("rl{i}-name"),
            limit["name"].as_str().map(str::to_string),
        );
        put(
            &format!("rl{i}-limit"),
            limit["limit"].as_i64().map(|n| n.to_string()),
        );
        put(
            &format!("rl{i}-duration"),
            limit["duration"].as_i64().map(|n| n.to_string()),
        );
        if limit["autoApply"].as_bool().unwrap_or(false) {
            put(&format!("rl{i}-auto"), Some("on".into()));
        }
    }
    if key["meta"].is_object() {
        put("meta", serde_json::to_string_pretty(&key["meta"]).ok());
    }
    FormData::from_pairs(pairs)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// What a key page shows besides the key: a notice, a secret shown once, the chart.
#[derive(Default)]
struct Extras {
    shown: Option<Notice>,
    /// (label, secret): a rerolled or revealed key, shown on this answer only.
    secret: Option<(&'static str, String)>,
    chart: Option<Markup>,
    /// The edit form as submitted, when it was refused.
    edit: Option<FormData>,
}

fn key_page(session: &Session, key: &Value, extras: Extras, now: i64) -> Markup {
    let id = key["keyId"].as_str().unwrap_or_default();
    let api_id = key["apiId"].as_str().unwrap_or_default();
    let api_name = key["apiName"].as_str().unwrap_or(api_id);
    let title = key["name"].as_str().unwrap_or(id).to_string();
    let may = |action: &str| session.may_on("api", api_id, action);
    let enabled = key["enabled"].as_bool().unwrap_or(true);
    let permissions = strings(&key["permissions"]);
    let roles = strings(&key["roles"]);
    let may_rbac = session.may_any("rbac", "add_permission_to_key")
        || session.may_any("rbac", "add_role_to_key");
    let edit = extras.edit.unwrap_or_else(|| form_of(key));
    page(
        session,
        Section::Apis,
        &title,
        html! {
            (crumbs(&[("/apis", "APIs"), (&format!("/apis/{api_id}"), api_name)], &title))
            h1 { (title) " " (status_badge(key, now)) }
            @if let Some(shown) = &extras.shown { (notice(shown)) }
            @if let Some((label, secret)) = &extras.secret {
                p { (label) }
                div.secret {
                    code #secret-key { (secret) }
                    button type="button" data-copy="#secret-key" hidden { "Copy" }
                }
            }
            div.cards {
                section.card {
                    h2 { "Key" }
                    dl.facts {
                        dt { "ID" } dd.mono { (id) }
                        dt { "Start" } dd.mono { (key["start"].as_str().unwrap_or_default()) "…" }
                        dt { "Owner" } dd { (key["identity"]["externalId"].as_str().unwrap_or("none")) }
                        dt { "Created" } dd { (layout::time(key["createdAt"].as_i64())) }
                        dt { "Updated" } dd { (layout::time(key["updatedAt"].as_i64())) }
                        dt { "Last used" } dd { (layout::time(key["lastUsedAt"].as_i64())) }
                        dt { "Expires" } dd { @if key["expires"].is_i64() { (layout::time(key["expires"].as_i64())) } @else { "never" } }
                        dt { "Credits" } dd {
                            (credits_text(key))
                            @if let Some(interval) = key["credits"]["refill"]["interval"].as_str() {
                                ", refilled " (interval) " to " (key["credits"]["refill"]["amount"].as_i64().unwrap_or(0))
                            }
                        }
                        dt { "Permissions" } dd { @if permissions.is_empty() { span.muted { "none" } } @else { (permissions.join(", ")) } }
                        dt { "Roles" } dd { @if roles.is_empty() { span.muted { "none" } } @else { (roles.join(", ")) } }
                    }
                    @if key["meta"].is_object() {
                        h2 { "Meta" }
                        (json_block(&key["meta"]))
                    }
                }
                @if let Some(chart) = &extras.chart { (chart) }
            }
            @if may("update_key") {
                h2 { "Actions" }
                div.actions {
                    @if enabled {
                        (post_button(session, &format!("/keys/{id}/enabled"), "Disable", "", Some("Disable this key? Verifications answer DISABLED until you enable it."), &[("enabled", "false")]))
                    } @else {
                        (post_button(session, &format!("/keys/{id}/enabled"), "Enable", "", None, &[("enabled", "true")]))
                    }
                }
                section.card {
                    h2 { "Credits" }
                    form.actions method="post" action=(format!("/keys/{id}/credits")) {
                        (csrf_field(session))
                        label.visually-hidden for="credit-op" { "Operation" }
                        select #credit-op name="operation" {
                            option value="set" { "Set to" }
                            option value="increment" { "Add" }
                            option value="decrement" { "Subtract" }
                        }
                        label.visually-hidden for="credit-value" { "Amount" }
                        input #credit-value type="number" name="value" min="0" placeholder="empty with Set: unlimited";
                        button type="submit" { "Apply" }
                    }
                }
                section.card {
                    h2 { "Edit" }
                    form method="post" action=(format!("/keys/{id}/update")) data-busy="Saving…" {
                        (csrf_field(session))
                        (key_fields(Some(&edit), false))
                        button.primary type="submit" { "Save changes" }
                    }
                }
            }
            @if may_rbac {
                section.card {
                    h2 { "Permissions and roles" }
                    form method="post" action=(format!("/keys/{id}/access")) {
                        (csrf_field(session))
                        label for="key-permissions" { "Permissions" }
                        input #key-permissions type="text" name="permissions" value=(permissions.join(", "))
                            placeholder="Comma-separated; empty removes all";
                        label for="key-roles" { "Roles" }
                        input #key-roles type="text" name="roles" value=(roles.join(", ")) placeholder="Comma-separated role names";
                        p.hint { "The key gets exactly these; permissions that do not exist yet are created if this root key may." }
                        button type="submit" { "Set permissions and roles" }
                    }
                }
            }
            @if may("create_key") {
                section.card {
                    h2 { "Reroll" }
                    p.hint { "Issue a new key with the same settings; the old one keeps working for the grace period you choose." }
                    form.actions method="post" action=(format!("/keys/{id}/reroll")) data-confirm="Reroll this key? A new key is issued; the old one stops after the grace period." {
                        (csrf_field(session))
                        label.visually-hidden for="grace" { "Grace period" }
                        select #grace name="expiration" {
                            option value="0" { "Old key stops at once" }
                            option value="3600000" { "Old key works 1 more hour" }
                            option value="86400000" { "Old key works 1 more day" }
                            option value="604800000" { "Old key works 7 more days" }
                        }
                        button type="submit" { "Reroll" }
                    }
                }
            }
            @if may("decrypt_key") {
                section.card {
                    h2 { "Reveal" }
                    p.hint { "Shows the key itself, if it was created recoverable. Every reveal is written to the audit log." }
                    (post_button(session, &format!("/keys/{id}/reveal"), "Reveal key", "", Some("Reveal this key? The reveal is audited."), &[]))
                }
            }
            @if may("delete_key") {
                h2 { "Danger zone" }
                (post_button(session, &format!("/keys/{id}/delete"), "Delete key", "danger", Some("Delete this key? It stops verifying at once."), &[]))
            }
        },
    )
}

/// Reads the key through `keys.getKey` (which checks the caller may), with its `apiId`; or
/// answers with the page that says why not.
async fn read_key(
    state: &AppState,
    client: &ApiClient,
    session: &Session,
    key_id: &str,
    decrypt: bool,
) -> Result<Value, Response> {
    let mut body = json!({ "keyId": key_id });
    if decrypt {
        body["decrypt"] = json!(true);
    }
    let mut key = client
        .data(session, "keys.getKey", body)
        .await
        .map_err(|failure| layout::failure_page(status_of(&failure), &failure.message()))?;
    if let Some(api_id) = api_of_key(state, session, key_id).await {
        if let Ok(Some(api)) = state
            .apis
            .live(&session.principal.workspace_id, &api_id)
            .await
        {
            key["apiName"] = json!(api.name);
        }
        key["apiId"] = json!(api_id);
    }
    Ok(key)
}

async fn render(
    state: &AppState,
    client: &ApiClient,
    session: &Session,
    key: &Value,
    mut extras: Extras,
    window: &str,
) -> Response {
    let id = key["keyId"].as_str().unwrap_or_default();
    extras.chart = Some(
        usage_chart(
            client,
            session,
            ("keyId", id),
            window,
            state.now(),
            &format!("/keys/{id}"),
        )
        .await,
    );
    html(key_page(session, key, extras, state.now()))
}

/// `GET /keys/{key_id}`.
pub async fn show(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    session: Session,
    Path(key_id): Path<String>,
    Query(query): Query<KeyQuery>,
) -> Response {
    let key = match read_key(&state, &client, &session, &key_id, false).await {
        Ok(key) => key,
        Err(response) => return response,
    };
    let extras = Extras {
        shown: done_notice(query.done.as_deref()),
        ..Default::default()
    };
    render(
        &state,
        &client,
        &session,
        &key,
        extras,
        query.window.as_deref().unwrap_or("day"),
    )
    .await
}

/// After a change: back to the key with a notice, or the key page with the failure in place.
async fn after(
    state: &AppState,
    client: &ApiClient,
    session: &Session,
    key_id: &str,
    outcome: Result<Value, Failure>,
    done: &str,
    edit: Option<FormData>,
) -> Response {
    match outcome {
        Ok(_) => Redirect::to(&format!("/keys/{key_id}?done={done}")).into_response(),
        Err(failure) => {
            let key = match read_key(state, client, session, key_id, false).await {
                Ok(key) => key,
                Err(response) => return response,
            };
            let extras = Extras {
                shown: Some(failure_notice(&failure)),
                edit,
                ..Default::default()
            };
            let mut response = render(state, client, session, &key, extras, "day").await;
            *response.status_mut() = status_of(&failure);
            response
        }
    }
}

fn refused(problem: String) -> Result<Value, Failure> {
    Err(Failure {
        status: 400,
        code: "invalid_input".into(),
        detail: problem,
        fields: Vec::new(),
    })
}

/// `POST /keys/{key_id}/update`: the edit form.
pub async fn update(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    Path(key_id): Path<String>,
    Posted { session, form }: Posted,
) -> Response {
    let outcome = match key_body(&form, false) {
        Ok(mut body) => {
            body.insert("keyId".into(), json!(key_id));
            client
                .data(&session, "keys.updateKey", Value::Object(body))
                .await
        }
        Err(problem) => refused(problem),
    };
    after(
        &state,
        &client,
        &session,
        &key_id,
        outcome,
        "key-updated",
        Some(form),
    )
    .await
}

/// `POST /keys/{key_id}/enabled`.
pub async fn set_enabled(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    Path(key_id): Path<String>,
    Posted { session, form }: Posted,
) -> Response {
    let enabled = form.raw("enabled") == Some("true");
    let outcome = client
        .data(
            &session,
            "keys.updateKey",
            json!({ "keyId": key_id, "enabled": enabled }),
        )
        .await;
    let done = if enabled {
        "key-enabled"
    } else {
        "key-disabled"
    };
    after(&state, &client, &session, &key_id, outcome, done, None).await
}

/// `POST /keys/{key_id}/credits`.
pub async fn credits(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    Path(key_id): Path<String>,
    Posted { session, form }: Posted,
) -> Response {
    let operation = form.text("operation").unwrap_or_else(|| "set".into());
    let value = match form.text("value") {
        None => Ok(Value::Null),
        Some(text) => text
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("value: '{text}' is not a whole number.")),
    };
    let outcome = match value {
        Ok(value) => {
            client
                .data(
                    &session,
                    "keys.updateCredits",
                    json!({ "keyId": key_id, "operation": operation, "value": value }),
                )
                .await
        }
        Err(problem) => refused(problem),
    };
    after(
        &state,
        &client,
        &session,
        &key_id,
        outcome,
        "credits-updated",
        None,
    )
    .await
}

fn names(form: &FormData, field: &str) -> Vec<String> {
    form.raw(field)
        .unwrap_or("")
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `POST /keys/{key_id}/access`: sets the key's permissions and roles.
pub async fn access(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    Path(key_id): Path<String>,
    Posted { session, form }: Posted,
) -> Response {
    let mut outcome = client
        .data(
            &session,
            "keys.setPermissions",
            json!({ "keyId": key_id, "permissions": names(&form, "permissions") }),
        )
        .await;
    if outcome.is_ok() {
        outcome = client
            .data(
                &session,
                "keys.setRoles",
                json!({ "keyId": key_id, "roles": names(&form, "roles") }),
            )
            .await;
    }
    after(
        &state,
        &client,
        &session,
        &key_id,
        outcome,
        "access-updated",
        None,
    )
    .await
}

/// `POST /keys/{key_id}/reroll`: issues the new key and shows it once.
pub async fn reroll(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    Path(key_id): Path<String>,
    Posted { session, form }: Posted,
) -> Response {
    let expiration = form
        .text("expiration")
        .and_then(|t| t.parse::<i64>().ok())
        .unwrap_or(0);
    match client
        .data(
            &session,
            "keys.rerollKey",
            json!({ "keyId": key_id, "expiration": expiration }),
        )
        .await
    {
        Ok(data) => {
            let new_id = data["keyId"].as_str().unwrap_or_default().to_string();
            let secret = data["key"].as_str().unwrap_or_default().to_string();
            let key = match read_key(&state, &client, &session, &new_id, false).await {
                Ok(key) => key,
                Err(response) => return response,
            };
            let extras = Extras {
                shown: Some(Notice::Success("Key rerolled: this is the new key.".into())),
                secret: Some(("Copy the new key now; it will not be shown again.", secret)),
                ..Default::default()
            };
            render(&state, &client, &session, &key, extras, "day").await
        }
        Err(failure) => after(&state, &client, &session, &key_id, Err(failure), "", None).await,
    }
}

/// `POST /keys/{key_id}/reveal`: shows a recoverable key's plaintext once (audited by the API).
pub async fn reveal(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    Path(key_id): Path<String>,
    Posted { session, .. }: Posted,
) -> Response {
    match read_key(&state, &client, &session, &key_id, true).await {
        Ok(key) => {
            let extras = match key["plaintext"].as_str() {
                Some(plaintext) => Extras {
                    secret: Some(("The key, as its owner holds it:", plaintext.to_string())),
                    ..Default::default()
                },
                None => Extras {
                    shown: Some(Notice::Error(
                        "This key was not created recoverable (or its sealed copy cannot be opened), so it cannot be shown.".into(),
                    )),
                    ..Default::default()
                },
            };
            render(&state, &client, &session, &key, extras, "day").await
        }
        Err(response) => response,
    }
}

/// `POST /keys/{key_id}/delete`.
pub async fn delete(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    Path(key_id): Path<String>,
    Posted { session, .. }: Posted,
) -> Response {
    let key = match read_key(&state, &client, &session, &key_id, false).await {
        Ok(key) => key,
        Err(response) => return response,
    };
    match client
        .data(&session, "keys.deleteKey", json!({ "keyId": key_id }))
        .await
    {
        Ok(_) => {
            let api_id = key["apiId"].as_str().unwrap_or_default();
            Redirect::to(&format!("/apis/{api_id}?done=key-deleted")).into_response()
        }
        Err(failure) => {
            let extras = Extras {
                shown: Some(failure_notice(&failure)),
                ..Default::default()
            };
            let mut response = render(&state, &client, &session, &key, extras, "day").await;
            *response.status_mut() = status_of(&failure);
            response
        }
    }
}
