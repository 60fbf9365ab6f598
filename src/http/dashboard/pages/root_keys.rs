//! Root keys, read-only: who may do what in this workspace. Creating, disabling and deleting
//! them stays with the operator's CLI. The list is shown to holders of
//! `audit.*.read_audit_log`, who can already see every root key's actions in the audit log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use crate::domain::rbac::requirement::Requirement;
use crate::http::dashboard::layout::{self, empty};
use crate::http::dashboard::session::Session;
use crate::http::dashboard::shell::{page, Section};
use crate::http::dashboard::{html, St};

/// `GET /root-keys`.
pub async fn list(State(state): St, session: Session) -> Response {
    if !session.may(&Requirement::one("audit.*.read_audit_log")) {
        return layout::failure_page(
            StatusCode::FORBIDDEN,
            "Listing root keys needs audit.*.read_audit_log.",
        );
    }
    let keys = match state.auth.root_keys(&session.principal.workspace_id).await {
        Ok(keys) => keys,
        Err(err) => {
            tracing::error!(error = %err, "dashboard: listing root keys");
            return layout::failure_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database did not answer. Please try again.",
            );
        }
    };
    let now = state.now();
    html(page(
        &session,
        Section::RootKeys,
        "Root keys",
        html! {
            h1 { "Root keys" }
            p.lede { "Root keys call the API (and sign in here). Create, disable and delete them with " code { "keyward root-key" } " on the server." }
            @if keys.is_empty() {
                (empty("No root keys", html! { "Create one with " code { "keyward root-key create --workspace ID" } "." }))
            } @else {
                div.table-wrap {
                    table {
                        thead { tr {
                            th scope="col" { "Name" }
                            th scope="col" { "ID" }
                            th scope="col" { "Start" }
                            th scope="col" { "Status" }
                            th.hide-narrow scope="col" { "Created" }
                            th scope="col" { "Permissions" }
                        } }
                        tbody {
                            @for key in &keys {
                                tr {
                                    td {
                                        (key.name.as_deref().unwrap_or("unnamed"))
                                        @if key.id == session.principal.root_key_id { " " span.badge { "you" } }
                                    }
                                    td.mono { (key.id) }
                                    td.mono { (key.start) "…" }
                                    td {
                                        @if !key.enabled { span.badge.off { "disabled" } }
                                        @else if key.expires.is_some_and(|at| at <= now) { span.badge.warn { "expired" } }
                                        @else { span.badge.ok { "active" } }
                                    }
                                    td.hide-narrow { (layout::time(Some(key.created_at))) }
                                    td {
                                        details {
                                            summary { (key.permissions.len()) " permissions" }
                                            ul { @for p in &key.permissions { li.mono { (p) } } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}
