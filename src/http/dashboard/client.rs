//! Calls to the API's own `/v2` routes, made in-process for a signed-in session.
//!
//! The request is the one a client would send, minus the `Authorization` header: it carries the
//! session's already authenticated root key as an [`ActingAs`] extension instead, and the
//! browser's address and user agent, so audit records name the real client. The answer is the
//! API's JSON, or its error envelope turned into a [`Failure`] a page can show.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request};
use axum::Router;
use serde_json::Value;
use tower_service::Service;

use super::session::Session;
use crate::http::extract::ActingAs;

/// The `/v2` application, as the dashboard calls it.
#[derive(Clone)]
pub struct ApiClient {
    router: Router,
}

/// An API call that was refused or failed: what to tell the user.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: u16,
    /// The error code's last part (`insufficient_permissions`, `not_found`, …).
    pub code: String,
    pub detail: String,
    /// Field-level problems: (location, message).
    pub fields: Vec<(String, String)>,
}

impl Failure {
    /// One sentence for the page: the detail, then the fields it names.
    pub fn message(&self) -> String {
        let mut text = self.detail.clone();
        for (location, message) in self.fields.iter().take(5) {
            text.push_str(&format!(" {location}: {message}."));
        }
        text
    }

    fn internal(detail: impl Into<String>) -> Self {
        Failure {
            status: 500,
            code: "internal_server_error".into(),
            detail: detail.into(),
            fields: Vec::new(),
        }
    }
}

impl ApiClient {
    pub fn new(router: Router) -> Self {
        ApiClient { router }
    }

    /// Calls `POST /v2/<operation>` with `body` as `session`'s root key; returns the whole JSON
    /// answer (`meta`, `data`, `pagination`).
    pub async fn call(
        &self,
        session: &Session,
        operation: &str,
        body: Value,
    ) -> Result<Value, Failure> {
        let bytes = serde_json::to_vec(&body).map_err(|e| Failure::internal(e.to_string()))?;
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(format!("/v2/{operation}"))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(agent) = &session.client.user_agent {
            request = request.header(header::USER_AGENT, agent.clone());
        }
        if let Some(forwarded) = &session.client.forwarded_for {
            request = request.header("x-forwarded-for", forwarded.clone());
        }
        let mut request = request
            .body(Body::from(bytes))
            .map_err(|e| Failure::internal(e.to_string()))?;
        request
            .extensions_mut()
            .insert(ActingAs(session.principal.clone()));
        if let Some(peer) = session.client.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let mut router = self.router.clone();
        let response = match router.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024)
            .await
            .map_err(|e| Failure::internal(format!("reading the answer: {e}")))?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Failure::internal(format!("the answer is not JSON: {e}")))?;
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let error = &value["error"];
        let code = error["type"]
            .as_str()
            .and_then(|t| t.rsplit('/').next())
            .unwrap_or("error")
            .to_string();
        let fields = error["errors"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|item| {
                        (
                            item["location"].as_str().unwrap_or("").to_string(),
                            item["message"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Err(Failure {
            status,
            code,
            detail: error["detail"]
                .as_str()
                .unwrap_or("The request failed.")
                .to_string(),
            fields,
        })
    }

    /// [`Self::call`], answering only `data`.
    pub async fn data(
        &self,
        session: &Session,
        operation: &str,
        body: Value,
    ) -> Result<Value, Failure> {
        self.call(session, operation, body)
            .await
            .map(|mut answer| answer["data"].take())
    }
}
