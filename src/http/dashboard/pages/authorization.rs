//! Authorization: the workspace's permissions and roles (what keys are granted, and checked
//! with `keys.verifyKey`'s `permissions` query), through the `permissions.*` routes: list,
//! create and delete both, and set which permissions a role holds.

use std::collections::BTreeSet;

use axum::extract::Query;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use super::fields::kept;
use super::shared::status_of;
use super::{done_notice, failure_notice};
use crate::domain::rbac::requirement::Requirement;
use crate::http::dashboard::client::{ApiClient, Failure};
use crate::http::dashboard::html;
use crate::http::dashboard::layout::{empty, notice, Notice};
use crate::http::dashboard::session::{csrf_field, url_escape, FormData, Posted, Session};
use crate::http::dashboard::shell::{page, post_button, Section};

/// Permissions and roles per page.
const PER_PAGE: usize = 100;

#[derive(Deserialize, Default)]
pub struct AuthorizationQuery {
    /// Cursor of the permissions' page.
    permissions: Option<String>,
    /// Cursor of the roles' page.
    roles: Option<String>,
    done: Option<String>,
}

type Listed = Option<Result<(Vec<Value>, Option<String>), Failure>>;

async fn list(
    client: &ApiClient,
    session: &Session,
    operation: &str,
    cursor: Option<&str>,
) -> Result<(Vec<Value>, Option<String>), Failure> {
    let mut body = json!({ "limit": PER_PAGE });
    if let Some(cursor) = cursor {
        body["cursor"] = json!(cursor);
    }
    let answer = client.call(session, operation, body).await?;
    let items = answer["data"].as_array().cloned().unwrap_or_default();
    let next = answer["pagination"]["cursor"].as_str().map(str::to_string);
    Ok((items, next))
}

fn may(session: &Session, action: &str) -> bool {
    session.may(&Requirement::one(format!("rbac.*.{action}")))
}

fn slugs(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["slug"].as_str().map(str::to_string))
        .collect()
}

/// The form that sets a role's permissions: a box per known permission, and a field for others.
fn role_permissions_form(session: &Session, role: &Value, known: &BTreeSet<String>) -> Markup {
    let id = role["id"].as_str().unwrap_or_default();
    let held: BTreeSet<String> = slugs(&role["permissions"]).into_iter().collect();
    let choices: BTreeSet<&String> = known.iter().chain(held.iter()).collect();
    html! {
        details {
            summary { "Change permissions" }
            form method="post" action="/authorization/roles/permissions" {
                (csrf_field(session))
                input type="hidden" name="role" value=(id);
                fieldset {
                    legend { "Permissions of " (role["name"].as_str().unwrap_or_default()) }
                    @for slug in &choices {
                        label.check {
                            input type="checkbox" name="permission" value=(slug) checked[held.contains(*slug)];
                            span.mono { (slug) }
                        }
                    }
                    label for=(format!("more-{id}")) { "Other permissions" }
                    input id=(format!("more-{id}")) type="text" name="more" placeholder="Comma-separated slugs; new ones are created if this root key may";
                }
                div.actions { button type="submit" { "Save permissions" } }
            }
        }
    }
}

/// What the page shows besides the lists: a notice and the create forms as submitted.
#[derive(Default)]
struct View {
    shown: Option<Notice>,
    permission_form: Option<FormData>,
    role_form: Option<FormData>,
}

fn authorization_page(session: &Session, permissions: Listed, roles: Listed, view: View) -> Markup {
    let known: BTreeSet<String> = match &permissions {
        Some(Ok((items, _))) => items
            .iter()
            .filter_map(|p| p["slug"].as_str().map(str::to_string))
            .collect(),
        _ => BTreeSet::new(),
    };
    let may_set =
        may(session, "add_permission_to_role") && may(session, "remove_permission_from_role");
    let pform = view.permission_form.as_ref();
    let rform = view.role_form.as_ref();
    page(
        session,
        Section::Authorization,
        "Authorization",
        html! {
            h1 { "Authorization" }
            p.lede { "Permissions are what your keys may do (" code { "documents.read" } "); roles bundle permissions. Give them to keys on a key's page; check them with " code { "keys.verifyKey" } "'s " code { "permissions" } " query." }
            @if let Some(shown) = &view.shown { (notice(shown)) }
            h2 #permissions { "Permissions" }
            @match &permissions {
                None => p.muted { "Listing permissions needs " code { "rbac.*.read_permission" } "." },
                Some(Err(failure)) => (notice(&failure_notice(failure))),
                Some(Ok((items, next))) => {
                    @if items.is_empty() {
                        (empty("No permissions yet", html! {
                            @if may(session, "create_permission") { "Create one below, or name it when you create a key: missing permissions are created then." }
                            @else { "This root key cannot create permissions." }
                        }))
                    } @else {
                        div.table-wrap {
                            table {
                                thead { tr {
                                    th scope="col" { "Slug" }
                                    th scope="col" { "Name" }
                                    th.hide-narrow scope="col" { "Description" }
                                    th.hide-narrow scope="col" { "ID" }
                                    @if may(session, "delete_permission") { th scope="col" { span.visually-hidden { "Actions" } } }
                                } }
                                tbody {
                                    @for p in items {
                                        tr {
                                            td.mono { (p["slug"].as_str().unwrap_or_default()) }
                                            td { (p["name"].as_str().unwrap_or_default()) }
                                            td.hide-narrow { (p["description"].as_str().unwrap_or("")) }
                                            td.hide-narrow.mono { (p["id"].as_str().unwrap_or_default()) }
                                            @if may(session, "delete_permission") {
                                                td { (post_button(session, "/authorization/permissions/delete", "Delete", "danger",
                                                    Some("Delete this permission? Keys and roles holding it lose it at once."),
                                                    &[("permission", p["id"].as_str().unwrap_or_default())])) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        @if let Some(next) = next {
                            nav.pager { a href=(format!("/authorization?permissions={}#permissions", url_escape(next))) { "More permissions →" } }
                        }
                    }
                }
            }
            @if may(session, "create_permission") {
                form.card method="post" action="/authorization/permissions" data-busy="Creating…" {
                    (csrf_field(session))
                    h2 { "New permission" }
                    div.row {
                        div {
                            label for="permission-slug" { "Permission slug" }
                            input #permission-slug type="text" name="slug" required maxlength="128" pattern="[a-zA-Z0-9_:\\-\\.\\*]+"
                                value=(kept(pform, "slug")) placeholder="documents.read";
                        }
                        div {
                            label for="permission-name" { "Permission name" }
                            input #permission-name type="text" name="name" maxlength="512"
                                value=(kept(pform, "name")) placeholder="Read documents (the slug if empty)";
                        }
                    }
                    label for="permission-description" { "Permission description" }
                    input #permission-description type="text" name="description" maxlength="512" value=(kept(pform, "description"));
                    div.actions { button.primary type="submit" { "Create permission" } }
                }
            }
            h2 #roles { "Roles" }
            @match &roles {
                None => p.muted { "Listing roles needs " code { "rbac.*.read_role" } "." },
                Some(Err(failure)) => (notice(&failure_notice(failure))),
                Some(Ok((items, next))) => {
                    @if items.is_empty() {
                        (empty("No roles yet", html! {
                            @if may(session, "create_role") { "Create one below to give keys a set of permissions at once." }
                            @else { "This root key cannot create roles." }
                        }))
                    } @else {
                        div.table-wrap {
                            table {
                                thead { tr {
                                    th scope="col" { "Name" }
                                    th scope="col" { "Permissions" }
                                    th.hide-narrow scope="col" { "ID" }
                                    @if may(session, "delete_role") { th scope="col" { span.visually-hidden { "Actions" } } }
                                } }
                                tbody {
                                    @for role in items {
                                        @let held = slugs(&role["permissions"]);
                                        tr {
                                            td {
                                                (role["name"].as_str().unwrap_or_default())
                                                @if let Some(description) = role["description"].as_str() { br; span.muted { (description) } }
                                            }
                                            td {
                                                @if held.is_empty() { span.muted { "none" } }
                                                @else { span.mono { (held.join(", ")) } }
                                                @if may_set { (role_permissions_form(session, role, &known)) }
                                            }
                                            td.hide-narrow.mono { (role["id"].as_str().unwrap_or_default()) }
                                            @if may(session, "delete_role") {
                                                td { (post_button(session, "/authorization/roles/delete", "Delete", "danger",
                                                    Some("Delete this role? Keys holding it lose its permissions at once."),
                                                    &[("role", role["id"].as_str().unwrap_or_default())])) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        @if let Some(next) = next {
                            nav.pager { a href=(format!("/authorization?roles={}#roles", url_escape(next))) { "More roles →" } }
                        }
                    }
                }
            }
            @if may(session, "create_role") {
                form.card method="post" action="/authorization/roles" data-busy="Creating…" {
                    (csrf_field(session))
                    h2 { "New role" }
                    label for="role-name" { "Role name" }
                    input #role-name type="text" name="name" required maxlength="128" value=(kept(rform, "name")) placeholder="editor";
                    label for="role-description" { "Role description" }
                    input #role-description type="text" name="description" maxlength="512" value=(kept(rform, "description"));
                    label for="role-permissions" { "Role permissions" }
                    input #role-permissions type="text" name="permissions" value=(kept(rform, "permissions"))
                        placeholder="Comma-separated slugs, e.g. documents.read, documents.write";
                    div.actions { button.primary type="submit" { "Create role" } }
                }
            }
        },
    )
}

async fn render(
    client: &ApiClient,
    session: &Session,
    query: &AuthorizationQuery,
    view: View,
) -> Response {
    let permissions = if may(session, "read_permission") {
        Some(
            list(
                client,
                session,
                "permissions.listPermissions",
                query.permissions.as_deref(),
            )
            .await,
        )
    } else {
        None
    };
    let roles = if may(session, "read_role") {
        Some(
            list(
                client,
                session,
                "permissions.listRoles",
                query.roles.as_deref(),
            )
            .await,
        )
    } else {
        None
    };
    html(authorization_page(session, permissions, roles, view))
}

/// `GET /authorization`.
pub async fn show(
    Extension(client): Extension<ApiClient>,
    session: Session,
    Query(query): Query<AuthorizationQuery>,
) -> Response {
    let view = View {
        shown: done_notice(query.done.as_deref()),
        ..Default::default()
    };
    render(&client, &session, &query, view).await
}

/// After a change: back to the page with a notice, or the page with the failure in place.
async fn after(
    client: &ApiClient,
    session: &Session,
    outcome: Result<Value, Failure>,
    done: &str,
    view: View,
) -> Response {
    match outcome {
        Ok(_) => Redirect::to(&format!("/authorization?done={done}")).into_response(),
        Err(failure) => {
            let view = View {
                shown: Some(failure_notice(&failure)),
                ..view
            };
            let mut response = render(client, session, &AuthorizationQuery::default(), view).await;
            *response.status_mut() = status_of(&failure);
            response
        }
    }
}

/// Comma- or line-separated names of a field, trimmed, without blanks.
fn comma_list(form: &FormData, field: &str) -> Vec<String> {
    form.raw(field)
        .unwrap_or("")
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `POST /authorization/permissions`.
pub async fn create_permission(
    Extension(client): Extension<ApiClient>,
    Posted { session, form }: Posted,
) -> Response {
    let slug = form.text("slug").unwrap_or_default();
    let mut body = json!({
        "slug": slug,
        "name": form.text("name").unwrap_or_else(|| slug.clone()),
    });
    if let Some(description) = form.text("description") {
        body["description"] = json!(description);
    }
    let outcome = client
        .data(&session, "permissions.createPermission", body)
        .await;
    let view = View {
        permission_form: Some(form),
        ..Default::default()
    };
    after(&client, &session, outcome, "permission-created", view).await
}

/// `POST /authorization/permissions/delete`.
pub async fn delete_permission(
    Extension(client): Extension<ApiClient>,
    Posted { session, form }: Posted,
) -> Response {
    let outcome = client
        .data(
            &session,
            "permissions.deletePermission",
            json!({ "permission": form.raw("permission").unwrap_or("") }),
        )
        .await;
    after(
        &client,
        &session,
        outcome,
        "permission-deleted",
        View::default(),
    )
    .await
}

/// `POST /authorization/roles`.
pub async fn create_role(
    Extension(client): Extension<ApiClient>,
    Posted { session, form }: Posted,
) -> Response {
    let mut body = json!({ "name": form.text("name").unwrap_or_default() });
    if let Some(description) = form.text("description") {
        body["description"] = json!(description);
    }
    let permissions = comma_list(&form, "permissions");
    if !permissions.is_empty() {
        body["permissions"] = json!(permissions);
    }
    let outcome = client.data(&session, "permissions.createRole", body).await;
    let view = View {
        role_form: Some(form),
        ..Default::default()
    };
    after(&client, &session, outcome, "role-created", view).await
}

/// `POST /authorization/roles/delete`.
pub async fn delete_role(
    Extension(client): Extension<ApiClient>,
    Posted { session, form }: Posted,
) -> Response {
    let outcome = client
        .data(
            &session,
            "permissions.deleteRole",
            json!({ "role": form.raw("role").unwrap_or("") }),
        )
        .await;
    after(&client, &session, outcome, "role-deleted", View::default()).await
}

/// `POST /authorization/roles/permissions`: the role holds exactly the ticked permissions and
/// the others named.
pub async fn set_role_permissions(
    Extension(client): Extension<ApiClient>,
    Posted { session, form }: Posted,
) -> Response {
    let mut wanted: BTreeSet<String> = form.all("permission").map(str::to_string).collect();
    wanted.extend(comma_list(&form, "more"));
    let outcome = client
        .data(
            &session,
            "permissions.setRolePermissions",
            json!({ "role": form.raw("role").unwrap_or(""), "permissions": wanted }),
        )
        .await;
    after(&client, &session, outcome, "role-updated", View::default()).await
}
