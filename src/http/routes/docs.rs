//! Documentation served by keyward itself: a page per error code at the `type` URL of that code,
//! an index of all codes, and the OpenAPI document. None of it needs authentication.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::openapi;
use crate::http::error::ErrorCode;
use crate::http::error_docs::doc;
use crate::http::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/docs/errors", get(index))
        .route("/docs/errors/{*path}", get(page))
        .route("/openapi.json", get(openapi_json))
}

async fn openapi_json(State(state): State<AppState>) -> Response {
    let body = openapi::document(&state.public_url);
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec_pretty(&body).unwrap_or_default(),
    )
        .into_response()
}

/// Escapes text for HTML, then renders `backticked` spans as `<code>`.
fn render_text(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let mut out = String::with_capacity(escaped.len() + 16);
    for (i, part) in escaped.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(part);
            out.push_str("</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;\
line-height:1.5;color:#1d1d1f}code,pre{font-family:ui-monospace,monospace;background:#f3f3f5;border-radius:4px}\
code{padding:0 .25em}pre{padding:1rem;overflow-x:auto}h1 code{font-size:.8em}.meta{color:#555}";

fn layout(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} · keyward</title><style>{STYLE}</style></head><body>{body}\
         <hr><p class=\"meta\"><a href=\"/docs/errors\">All error codes</a> · \
         <a href=\"/openapi.json\">OpenAPI document</a></p></body></html>",
        render_text(title)
    ))
}

async fn index() -> Html<String> {
    let mut rows = String::new();
    for code in ErrorCode::ALL {
        rows.push_str(&format!(
            "<tr><td><a href=\"/docs/errors/{path}\"><code>{urn}</code></a></td><td>{status}</td><td>{title}</td></tr>",
            path = code.doc_path(),
            urn = code.urn(),
            status = code.status().as_u16(),
            title = render_text(code.title()),
        ));
    }
    layout(
        "Error codes",
        &format!(
            "<h1>Error codes</h1><p>Every error keyward returns carries a <code>type</code> URL that \
             points at one of these pages.</p><table><thead><tr><th>Code</th><th>Status</th>\
             <th>Title</th></tr></thead><tbody>{rows}</tbody></table>"
        ),
    )
}

fn list(items: &[&str]) -> String {
    let items: String = items
        .iter()
        .map(|i| format!("<li>{}</li>", render_text(i)))
        .collect();
    format!("<ul>{items}</ul>")
}

async fn page(State(state): State<AppState>, Path(path): Path<String>) -> Response {
    let Some(code) = ErrorCode::from_doc_path(path.trim_end_matches('/')) else {
        let body = layout(
            "Unknown error code",
            "<h1>Unknown error code</h1><p>keyward has no error with this path. \
             See the list of all codes below.</p>",
        );
        return (StatusCode::NOT_FOUND, body).into_response();
    };
    let d = doc(code);
    let status = code.status().as_u16();
    let mut example = json!({
        "meta": {"requestId": "req_2x9Qd7KcLm4Rt8Vw"},
        "error": {
            "title": code.title(),
            "detail": d.example_detail,
            "status": status,
            "type": format!("{}/docs/errors/{}", state.public_url, code.doc_path()),
        }
    });
    if matches!(status, 400 | 408 | 413) {
        example["error"]["errors"] = json!([]);
    }
    let example = serde_json::to_string_pretty(&example).unwrap_or_default();
    let related: String = d
        .related
        .iter()
        .map(|r| {
            format!(
                "<li><a href=\"/docs/errors/{}\"><code>{}</code></a>: {}</li>",
                r.doc_path(),
                r.urn(),
                render_text(r.title())
            )
        })
        .collect();
    let mistakes = if d.common_mistakes.is_empty() {
        String::new()
    } else {
        format!("<h2>Common mistakes</h2>{}", list(d.common_mistakes))
    };
    let body = format!(
        "<h1>{title} <code>{urn}</code></h1>\
         <p class=\"meta\">HTTP {status} · <code>{path}</code></p>\
         <h2>What happened</h2><p>{what}</p>\
         <h2>Example response</h2><pre>{example}</pre>\
         <h2>How to fix it</h2><ol>{fix}</ol>{mistakes}\
         <h2>Related errors</h2><ul>{related}</ul>",
        title = render_text(code.title()),
        urn = code.urn(),
        path = code.doc_path(),
        what = render_text(d.what_happened),
        example = render_text(&example),
        fix = d
            .how_to_fix
            .iter()
            .map(|s| format!("<li>{}</li>", render_text(s)))
            .collect::<String>(),
    );
    layout(code.title(), &body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_backticks_become_code() {
        assert_eq!(
            render_text("run `keyward <id>` & go"),
            "run <code>keyward &lt;id&gt;</code> &amp; go"
        );
    }
}
