//! The embedded dashboard: server-rendered HTML pages at `/`, for a browser signed in with a
//! root key.
//!
//! Every change a page makes, and every read the API offers, goes through the API's own `/v2`
//! handlers, called in-process for the signed-in root key (see [`client`]): the same validation,
//! permission checks, rules and audit records as a call over the wire, with nothing re-implemented
//! here. What the API has no route for (the list of APIs, key search, rate-limit namespaces, root
//! keys) is read from the same domain services, behind the same permissions.
//!
//! Pages are plain HTML forms (post, then redirect), so the back button, bookmarks and keyboard
//! work as on any site, and they work without script. One small script of our own
//! (`assets/dashboard.js`) adds the niceties: copy buttons, local times, confirmations and busy
//! buttons. Styles and script are embedded in the binary; nothing is fetched from elsewhere.
//!
//! Security: the session cookie is `HttpOnly`, `SameSite=Strict` and, over https, `Secure`; every
//! form carries the session's anti-forgery token ([`session`]); every page is sent with a strict
//! Content-Security-Policy (no inline script or style), `X-Frame-Options: DENY`, `nosniff` and
//! `Referrer-Policy: same-origin`, and is never cached.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};

use super::AppState;

mod assets;
mod chart;
mod client;
mod layout;
mod pages;
mod session;
mod shell;

pub use client::ApiClient;

/// The Content-Security-Policy of every dashboard response: only our own script, styles and
/// images; no inline code, no framing, forms post only here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes. `api` is the `/v2` application the pages call in-process.
pub fn router(api: Router) -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route(
            "/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/sign-out", post(session::sign_out))
        .route("/assets/{file}", get(assets::serve))
        .route("/apis", get(pages::apis::list).post(pages::apis::create))
        .route("/apis/{api_id}", get(pages::apis::show))
        .route("/apis/{api_id}/delete", post(pages::apis::delete))
        .route("/apis/{api_id}/settings", post(pages::apis::settings))
        .route(
            "/apis/{api_id}/keys/new",
            get(pages::keys::new_key).post(pages::keys::create),
        )
        .route("/keys/{key_id}", get(pages::key::show))
        .route("/keys/{key_id}/update", post(pages::key::update))
        .route("/keys/{key_id}/enabled", post(pages::key::set_enabled))
        .route("/keys/{key_id}/credits", post(pages::key::credits))
        .route("/keys/{key_id}/reroll", post(pages::key::reroll))
        .route("/keys/{key_id}/delete", post(pages::key::delete))
        .route("/keys/{key_id}/reveal", post(pages::key::reveal))
        .route("/keys/{key_id}/access", post(pages::key::access))
        .route("/ratelimits", get(pages::ratelimits::list))
        .route("/ratelimits/{namespace}", get(pages::namespace::show))
        .route(
            "/ratelimits/{namespace}/overrides",
            post(pages::namespace::set_override),
        )
        .route(
            "/ratelimits/{namespace}/overrides/delete",
            post(pages::namespace::delete_override),
        )
        .route("/ratelimits/{namespace}/test", post(pages::namespace::test))
        .route(
            "/identities",
            get(pages::identities::list).post(pages::identities::create),
        )
        .route("/identities/{identity_id}", get(pages::identity::show))
        .route(
            "/identities/{identity_id}/update",
            post(pages::identity::update),
        )
        .route(
            "/identities/{identity_id}/delete",
            post(pages::identity::delete),
        )
        .route("/authorization", get(pages::authorization::show))
        .route(
            "/authorization/permissions",
            post(pages::authorization::create_permission),
        )
        .route(
            "/authorization/permissions/delete",
            post(pages::authorization::delete_permission),
        )
        .route(
            "/authorization/roles",
            post(pages::authorization::create_role),
        )
        .route(
            "/authorization/roles/delete",
            post(pages::authorization::delete_role),
        )
        .route(
            "/authorization/roles/permissions",
            post(pages::authorization::set_role_permissions),
        )
        .route("/audit", get(pages::audit::list))
        .route("/root-keys", get(pages::root_keys::list))
        .layer(Extension(ApiClient::new(api)))
        .layer(axum::middleware::from_fn(security_headers))
}

/// Sets the dashboard's security and caching headers on every response it sends.
async fn security_headers(request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !is_asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// An HTML response.
pub(crate) fn html(markup: maud::Markup) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        markup.into_string(),
    )
        .into_response()
}

/// `State` for handlers, re-exported so pages need one import.
pub(crate) type St = State<AppState>;
