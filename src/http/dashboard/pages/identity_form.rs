//! What creating and editing an identity share: the fieldset of its shared rate limits, and the
//! form's meta and limits as `identities.*Identity` take them (refusals as a [`Failure`] the page
//! shows in place).

use maud::{html, Markup};
use serde_json::{Map, Value};

use super::fields;
use crate::http::dashboard::client::Failure;
use crate::http::dashboard::session::FormData;

pub use super::fields::kept;

/// The shared rate limits' fieldset, `rows` rows filled from `form`.
pub fn limit_rows(form: Option<&FormData>, rows: usize) -> Markup {
    html! {
        fieldset {
            legend { "Shared rate limits" }
            p.hint { "Every key of this identity counts against these together. Auto-applied ones are checked on every verification; the others when a verification names them. Leave a name empty to drop a row." }
            (fields::limit_rows(form, rows))
        }
    }
}

fn refused(detail: String) -> Failure {
    Failure {
        status: 400,
        code: "invalid_input".into(),
        detail,
        fields: Vec::new(),
    }
}

/// The rate limits of the form's filled rows.
pub fn limits_of(form: &FormData, rows: usize) -> Result<Vec<Value>, Failure> {
    fields::limits_of(form, rows).map_err(refused)
}

/// The form's meta: a JSON object, or an empty one when blank.
pub fn meta_of(form: &FormData) -> Result<Map<String, Value>, Failure> {
    fields::meta_of(form)
        .map(Option::unwrap_or_default)
        .map_err(refused)
}
