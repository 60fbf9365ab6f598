//! The pieces every page uses, signed in or not: the document head, the bare page, notices,
//! error pages, times, empty states, breadcrumbs and numbers. The signed-in page frame, with
//! its navigation, is in [`super::shell`].

use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup, DOCTYPE};

use super::assets;
use super::html as html_response;

/// A message shown at the top of a page, in place.
#[derive(Clone)]
pub enum Notice {
    Success(String),
    Error(String),
}

pub fn notice(notice: &Notice) -> Markup {
    match notice {
        Notice::Success(text) => html! { p.notice.success role="status" { (text) } },
        Notice::Error(text) => html! { p.notice.error role="alert" { (text) } },
    }
}

pub(super) fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light dark";
            title { (title) " · keyward" }
            link rel="stylesheet" href=(assets::url("dashboard.css"));
            link rel="icon" href=(assets::url("favicon.svg")) type="image/svg+xml";
            script src=(assets::url("dashboard.js")) defer {}
        }
    }
}

/// A page without navigation (sign-in, errors before sign-in).
pub fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare { (body) }
        }
    }
}

/// An error page for when there is nothing else to show.
pub fn failure_page(status: StatusCode, message: &str) -> Response {
    let mut response = html_response(bare_page(
        "Error",
        html! {
            main.sign-in {
                h1 { (status.canonical_reason().unwrap_or("Error")) }
                (notice(&Notice::Error(message.to_string())))
                p { a href="/apis" { "Back to the dashboard" } }
            }
        },
    ));
    *response.status_mut() = status;
    response
}

/// A time (unix ms) as a `<time>` element: UTC in the markup and on hover; the script shows it
/// in the viewer's time zone.
pub fn time(ms: Option<i64>) -> Markup {
    match ms {
        Some(ms) if ms > 0 => {
            let utc = crate::http::extract::rfc3339(ms);
            let shown = utc.get(..16).unwrap_or(&utc).replace('T', " ");
            html! { time datetime=(utc) title=(format!("{utc} (UTC)")) { (shown) " UTC" } }
        }
        _ => html! { span.muted { "never" } },
    }
}

/// What an empty list says, and what to do about it.
pub fn empty(title: &str, hint: Markup) -> Markup {
    html! {
        div.empty {
            p.empty-title { (title) }
            p { (hint) }
        }
    }
}

/// A breadcrumb trail: links, then the current page.
pub fn crumbs(links: &[(&str, &str)], current: &str) -> Markup {
    html! {
        nav.crumbs aria-label="Breadcrumb" {
            @for (href, label) in links {
                a href=(href) { (label) } " / "
            }
            span aria-current="page" { (current) }
        }
    }
}

/// Pretty-printed JSON inside `<pre>`.
pub fn json_block(value: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    html! { pre.json { (text) } }
}

/// A number with thin grouping (12 345).
pub fn count(n: i64) -> Markup {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202F}');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    html! { (out) }
}
