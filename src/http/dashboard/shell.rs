//! The frame of a signed-in page: navigation by what the root key may see, who is signed in,
//! and the sign-out form; and the confirmation forms of buttons that change something.

use maud::{html, Markup, DOCTYPE};

use super::layout::head;
use super::session::{csrf_field, Session};
use crate::domain::rbac::requirement::Requirement;

/// Which section a page belongs to, for the navigation's highlight.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Apis,
    Ratelimits,
    Identities,
    Authorization,
    Audit,
    RootKeys,
}

/// A full page for a signed-in session.
pub fn page(session: &Session, section: Section, title: &str, body: Markup) -> Markup {
    let item = |target: Section, href: &str, label: &str| {
        let current = (target == section).then_some("page");
        html! { li { a href=(href) aria-current=[current] { (label) } } }
    };
    let may_audit = session.may(&Requirement::one("audit.*.read_audit_log"));
    // Each section shows when the key holds something it can use there.
    let may_ratelimits = session.may_any("ratelimit", "read_namespace");
    let may_identities = session.may_any("identity", "read_identity")
        || session.may(&Requirement::one("identity.*.create_identity"));
    let may_authorization = session.may(&Requirement::any_of([
        "rbac.*.read_permission",
        "rbac.*.read_role",
    ]));
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/apis" { "keyward" }
                    nav aria-label="Sections" {
                        ul {
                            (item(Section::Apis, "/apis", "APIs"))
                            @if may_ratelimits {
                                (item(Section::Ratelimits, "/ratelimits", "Rate limits"))
                            }
                            @if may_identities {
                                (item(Section::Identities, "/identities", "Identities"))
                            }
                            @if may_authorization {
                                (item(Section::Authorization, "/authorization", "Authorization"))
                            }
                            @if may_audit {
                                (item(Section::Audit, "/audit", "Audit log"))
                                (item(Section::RootKeys, "/root-keys", "Root keys"))
                            }
                        }
                    }
                    div.who {
                        span title=(session.principal.root_key_id) {
                            (session.principal.name.as_deref().unwrap_or("root key"))
                        }
                        form method="post" action="/sign-out" {
                            (csrf_field(session))
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    (body)
                }
            }
        }
    }
}

/// A button that posts to `action`, asking first when `confirm` is given.
pub fn post_button(
    session: &Session,
    action: &str,
    label: &str,
    class: &str,
    confirm: Option<&str>,
    hidden: &[(&str, &str)],
) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm=[confirm] {
            (csrf_field(session))
            @for (name, value) in hidden {
                input type="hidden" name=(name) value=(value);
            }
            button type="submit" class=(class) { (label) }
        }
    }
}
