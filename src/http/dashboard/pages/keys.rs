//! Keys of an API: the table, and creating a key with every option `keys.createKey` offers.
//! A new key is shown once, on the answer to the form, and never again.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};
use serde_json::{json, Value};

use super::failure_notice;
use super::key_form::{key_body, key_fields};
use super::shared::{readable_api, status_of};
use crate::http::dashboard::client::ApiClient;
use crate::http::dashboard::layout::{crumbs, notice, Notice};
use crate::http::dashboard::session::{csrf_field, FormData, Posted, Session};
use crate::http::dashboard::shell::{page, Section};
use crate::http::dashboard::{html, St};
use crate::model::Api;

fn new_key_page(
    session: &Session,
    api: &Api,
    form: Option<&FormData>,
    problem: Option<Notice>,
) -> Markup {
    page(
        session,
        Section::Apis,
        "Create key",
        html! {
            (crumbs(&[("/apis", "APIs"), (&format!("/apis/{}", api.id), &api.name)], "Create key"))
            h1 { "Create a key" }
            @if let Some(problem) = &problem { (notice(problem)) }
            form method="post" action=(format!("/apis/{}/keys/new", api.id)) data-busy="Creating…" {
                (csrf_field(session))
                (key_fields(form, true))
                div.actions {
                    button.primary type="submit" { "Create key" }
                    a href=(format!("/apis/{}", api.id)) { "Cancel" }
                }
            }
        },
    )
}

/// `GET /apis/{api_id}/keys/new`.
pub async fn new_key(State(state): St, session: Session, Path(api_id): Path<String>) -> Response {
    match readable_api(&state, &session, &api_id).await {
        Ok(api) => {
            let problem = (!session.may_on("api", &api.id, "create_key")).then(|| {
                Notice::Error(format!(
                    "This root key cannot create keys here: it needs api.{}.create_key (or api.*.create_key).",
                    api.id
                ))
            });
            html(new_key_page(&session, &api, None, problem))
        }
        Err(response) => response,
    }
}

/// `POST /apis/{api_id}/keys/new`: creates the key and shows it once.
pub async fn create(
    State(state): St,
    Extension(client): Extension<ApiClient>,
    Path(api_id): Path<String>,
    Posted { session, form }: Posted,
) -> Response {
    let api = match readable_api(&state, &session, &api_id).await {
        Ok(api) => api,
        Err(response) => return response,
    };
    let failed = |status: StatusCode, problem: Notice| {
        let mut response = html(new_key_page(&session, &api, Some(&form), Some(problem)));
        *response.status_mut() = status;
        response
    };
    let mut body = match key_body(&form, true) {
        Ok(body) => body,
        Err(problem) => return failed(StatusCode::BAD_REQUEST, Notice::Error(problem)),
    };
    body.insert("apiId".into(), json!(api.id));
    let data = match client
        .data(&session, "keys.createKey", Value::Object(body))
        .await
    {
        Ok(data) => data,
        Err(failure) => return failed(status_of(&failure), failure_notice(&failure)),
    };
    let key_id = data["keyId"].as_str().unwrap_or_default();
    let secret = data["key"].as_str().unwrap_or_default();
    html(page(
        &session,
        Section::Apis,
        "Key created",
        html! {
            (crumbs(&[("/apis", "APIs"), (&format!("/apis/{}", api.id), &api.name)], "Key created"))
            h1 { "Key created" }
            p { "Copy the key now and hand it to its owner. keyward stores only its hash: it will not be shown again"
                @if form.checked("recoverable") { " (unless you reveal it later, which is audited)" } "." }
            div.secret {
                code #new-key { (secret) }
                button type="button" data-copy="#new-key" hidden { "Copy" }
            }
            div.actions {
                a.button.primary href=(format!("/keys/{key_id}")) { "Open the key" }
                a.button href=(format!("/apis/{}/keys/new", api.id)) { "Create another" }
                a href=(format!("/apis/{}", api.id)) { "Back to the API" }
            }
        },
    ))
}
