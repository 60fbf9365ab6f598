//! Identities: the owners keys share rate limits and usage through. The list pages through
//! `identities.listIdentities` (its search matches part of an id or external id) and pins an
//! exact external id found with `identities.getIdentity`; creating one calls
//! `identities.createIdentity`. One identity's page is `identity.rs`.

use axum::extract::Query;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::identity_form::{kept, limit_rows, limits_of, meta_of};
use super::shared::status_of;
use super::{done_notice, failure_notice};
use crate::domain::rbac::requirement::Requirement;
use crate::http::dashboard::client::{ApiClient, Failure};
use crate::http::dashboard::html;
use crate::http::dashboard::layout::{empty, notice, Notice};
use crate::http::dashboard::session::{csrf_field, url_escape, FormData, Posted, Session};
use crate::http::dashboard::shell::{page, Section};

/// Identities per page of the list.
const PER_PAGE: usize = 50;
/// Rate-limit rows the create form offers.
const NEW_LIMIT_ROWS: usize = 3;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    q: Option<String>,
    cursor: Option<String>,
    done: Option<String>,
}

/// The identities to show: a page of the list (searched), the exact external id first.
async fn identities_for(
    client: &ApiClient,
    session: &Session,
    query: &ListQuery,
) -> Result<(Vec<Value>, Option<String>), Failure> {
    let term = query.q.as_deref().map(str::trim).unwrap_or("");
    let mut body = json!({ "limit": PER_PAGE });
    if !term.is_empty() {
        body["search"] = json!(term);
    }
    if let Some(cursor) = &query.cursor {
        body["cursor"] = json!(cursor);
    }
    let answer = client
        .call(session, "identities.listIdentities", body)
        .await?;
    let mut found = answer["data"].as_array().cloned().unwrap_or_default();
    let next = answer["pagination"]["cursor"].as_str().map(str::to_string);
    if !term.is_empty() && query.cursor.is_none() {
        if let Ok(exact) = client
            .data(
                session,
                "identities.getIdentity",
                json!({ "identity": term }),
            )
            .await
        {
            found.retain(|i| i["id"] != exact["id"]);
            found.insert(0, exact);
        }
    }
    Ok((found, next))
}

/// The link to the next page, keeping the search.
fn next_link(cursor: &str, term: &str) -> String {
    let mut link = format!("/identities?cursor={}", url_escape(cursor));
    if !term.is_empty() {
        link.push_str(&format!("&q={}", url_escape(term)));
    }
    link
}

fn list_page(
    session: &Session,
    query: &ListQuery,
    listed: Result<(Vec<Value>, Option<String>), Failure>,
    shown: Option<Notice>,
    form: Option<&FormData>,
) -> Markup {
    let may_create = session.may(&Requirement::one("identity.*.create_identity"));
    let term = query.q.as_deref().unwrap_or("");
    page(
        session,
        Section::Identities,
        "Identities",
        html! {
            h1 { "Identities" }
            p.lede { "An identity is one of your customers, named by your own id (its external id). Its keys share its rate limits and its usage." }
            @if let Some(shown) = &shown { (notice(shown)) }
            div.toolbar {
                form method="get" action="/identities" role="search" {
                    label.visually-hidden for="identity-search" { "Search identities" }
                    input #identity-search type="search" name="q" value=(term) placeholder="External id, or part of it";
                    button type="submit" { "Search" }
                    @if !term.is_empty() { a href="/identities" { "Clear" } }
                }
            }
            @match &listed {
                Err(failure) => (notice(&failure_notice(failure))),
                Ok((identities, next)) => {
                    @if identities.is_empty() {
                        @if term.is_empty() {
                            (empty("No identities yet", html! {
                                @if may_create { "Create one below, or give a key an owner (external id) when you create it: its identity is made then." }
                                @else { "Identities are made when a key is given an owner (external id)." }
                            }))
                        } @else {
                            (empty("No identity matches", html! { "Search by an external id or an identity id, whole or in part." }))
                        }
                    } @else {
                        div.table-wrap {
                            table {
                                thead { tr {
                                    th scope="col" { "External id" }
                                    th scope="col" { "ID" }
                                    th.num scope="col" { "Rate limits" }
                                    th.num.hide-narrow scope="col" { "Meta fields" }
                                } }
                                tbody {
                                    @for identity in identities {
                                        tr {
                                            td { a href=(format!("/identities/{}", identity["id"].as_str().unwrap_or_default())) { (identity["externalId"].as_str().unwrap_or_default()) } }
                                            td.mono { (identity["id"].as_str().unwrap_or_default()) }
                                            td.num { (identity["ratelimits"].as_array().map_or(0, Vec::len)) }
                                            td.num.hide-narrow { (identity["meta"].as_object().map_or(0, Map::len)) }
                                        }
                                    }
                                }
                            }
                        }
                        @if let Some(next) = next {
                            nav.pager { a href=(next_link(next, term)) { "Next page →" } }
                        }
                    }
                }
            }
            @if may_create {
                form.card #new-identity method="post" action="/identities" data-busy="Creating…" {
                    (csrf_field(session))
                    h2 { "New identity" }
                    label for="externalId" { "External id" }
                    input #externalId type="text" name="externalId" required maxlength="255" value=(kept(form, "externalId"))
                        placeholder="Your id for the customer, e.g. user_123 or an organisation id";
                    label for="meta" { "Meta (JSON object)" }
                    textarea #meta name="meta" placeholder="{\"plan\": \"pro\"}" { (kept(form, "meta")) }
                    (limit_rows(form, NEW_LIMIT_ROWS))
                    button.primary type="submit" { "Create identity" }
                }
            }
        },
    )
}

/// `GET /identities`.
pub async fn list(
    Extension(client): Extension<ApiClient>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Response {
    let listed = identities_for(&client, &session, &query).await;
    let status = listed.as_ref().err().map(status_of);
    let mut response = html(list_page(
        &session,
        &query,
        listed,
        done_notice(query.done.as_deref()),
        None,
    ));
    if let Some(status) = status {
        *response.status_mut() = status;
    }
    response
}

/// `POST /identities`: creates an identity and opens it.
pub async fn create(
    Extension(client): Extension<ApiClient>,
    Posted { session, form }: Posted,
) -> Response {
    let body = (|| {
        let mut body = json!({ "externalId": form.raw("externalId").unwrap_or("").trim() });
        let meta = meta_of(&form)?;
        if !meta.is_empty() {
            body["meta"] = Value::Object(meta);
        }
        let limits = limits_of(&form, NEW_LIMIT_ROWS)?;
        if !limits.is_empty() {
            body["ratelimits"] = Value::Array(limits);
        }
        Ok::<_, Failure>(body)
    })();
    let outcome = match body {
        Ok(body) => {
            client
                .data(&session, "identities.createIdentity", body)
                .await
        }
        Err(failure) => Err(failure),
    };
    match outcome {
        Ok(data) => {
            let id = data["identityId"].as_str().unwrap_or_default();
            Redirect::to(&format!("/identities/{id}?done=identity-created")).into_response()
        }
        Err(failure) => {
            let query = ListQuery::default();
            let listed = identities_for(&client, &session, &query).await;
            let mut response = html(list_page(
                &session,
                &query,
                listed,
                Some(failure_notice(&failure)),
                Some(&form),
            ));
            *response.status_mut() = status_of(&failure);
            response
        }
    }
}
