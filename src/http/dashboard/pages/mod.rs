//! The dashboard's pages, one file per resource.

use axum::response::{IntoResponse, Redirect, Response};

use super::client::Failure;
use super::layout::Notice;

pub mod apis;
pub mod audit;
pub mod authorization;
pub mod fields;
pub mod identities;
pub mod identity;
pub mod identity_form;
pub mod key;
pub mod key_form;
pub mod keys;
pub mod namespace;
pub mod ratelimits;
pub mod root_keys;
pub mod shared;

/// `GET /`: the APIs are where everything starts.
pub async fn home() -> Response {
    Redirect::to("/apis").into_response()
}

/// The notice a page shows after a redirect, from its `done` query value (a fixed vocabulary:
/// nothing a link can put in the query is echoed).
pub fn done_notice(done: Option<&str>) -> Option<Notice> {
    let text = match done? {
        "api-created" => "API created.",
        "api-updated" => "Settings saved.",
        "api-deleted" => "API deleted.",
        "key-updated" => "Key updated.",
        "key-enabled" => "Key enabled.",
        "key-disabled" => "Key disabled.",
        "credits-updated" => "Credits updated.",
        "access-updated" => "Permissions and roles updated.",
        "key-deleted" => "Key deleted.",
        "override-set" => "Override saved.",
        "override-deleted" => "Override deleted.",
        "identity-created" => "Identity created.",
        "identity-updated" => "Identity updated.",
        "identity-deleted" => "Identity deleted.",
        "permission-created" => "Permission created.",
        "permission-deleted" => "Permission deleted.",
        "role-created" => "Role created.",
        "role-updated" => "Role permissions saved.",
        "role-deleted" => "Role deleted.",
        _ => return None,
    };
    Some(Notice::Success(text.to_string()))
}

/// A failed API call as a notice.
pub fn failure_notice(failure: &Failure) -> Notice {
    Notice::Error(failure.message())
}
