//! The fields creating and editing an identity share: its meta (a JSON object) and its shared
//! rate limits, and reading them back from a posted form into what `identities.*Identity` take.

use maud::{html, Markup};
use serde_json::{json, Map, Value};

use crate::http::dashboard::client::Failure;
use crate::http::dashboard::session::FormData;

/// A field's value as submitted, to show back in the form.
pub fn kept<'a>(form: Option<&'a FormData>, name: &str) -> &'a str {
    form.and_then(|f| f.raw(name)).unwrap_or("")
}

/// `rows` rate-limit rows (`rl{i}-name`, `-limit`, `-duration`, `-auto`), filled from `form`.
pub fn limit_rows(form: Option<&FormData>, rows: usize) -> Markup {
    html! {
        fieldset {
            legend { "Shared rate limits" }
            p.hint { "Every key of this identity counts against these together. Auto-applied ones are checked on every verification; the others when a verification names them. Leave a name empty to drop a row." }
            @for i in 0..rows {
                div.row {
                    div {
                        label for=(format!("rl{i}-name")) { "Limit " (i + 1) " name" }
                        input id=(format!("rl{i}-name")) type="text" name=(format!("rl{i}-name")) minlength="3" maxlength="128"
                            value=(kept(form, &format!("rl{i}-name"))) placeholder=(if i == 0 { "requests" } else { "" });
                    }
                    div {
                        label for=(format!("rl{i}-limit")) { "Limit " (i + 1) " requests" }
                        input id=(format!("rl{i}-limit")) type="number" name=(format!("rl{i}-limit")) min="1"
                            value=(kept(form, &format!("rl{i}-limit")));
                    }
                    div {
                        label for=(format!("rl{i}-duration")) { "Limit " (i + 1) " window (ms)" }
                        input id=(format!("rl{i}-duration")) type="number" name=(format!("rl{i}-duration")) min="1000"
                            value=(kept(form, &format!("rl{i}-duration"))) placeholder="60000";
                    }
                    div {
                        label.check { input type="checkbox" name=(format!("rl{i}-auto")) checked[form.is_some_and(|f| f.checked(&format!("rl{i}-auto")))]; "Auto-apply limit " (i + 1) }
                    }
                }
            }
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

fn whole(form: &FormData, name: &str, what: &str) -> Result<i64, Failure> {
    let text = form.text(name).unwrap_or_default();
    text.parse::<i64>()
        .map_err(|_| refused(format!("{what}: '{text}' is not a whole number.")))
}

/// The rate limits of the form's filled rows, as `identities.*Identity` take them.
pub fn limits_of(form: &FormData, rows: usize) -> Result<Vec<Value>, Failure> {
    let mut limits = Vec::new();
    for i in 0..rows {
        let Some(name) = form.text(&format!("rl{i}-name")) else {
            continue;
        };
        limits.push(json!({
            "name": name,
            "limit": whole(form, &format!("rl{i}-limit"), &format!("rate limit '{name}', requests"))?,
            "duration": whole(form, &format!("rl{i}-duration"), &format!("rate limit '{name}', window"))?,
            "autoApply": form.checked(&format!("rl{i}-auto")),
        }));
    }
    Ok(limits)
}

/// The form's meta: a JSON object, or an empty one when blank.
pub fn meta_of(form: &FormData) -> Result<Map<String, Value>, Failure> {
    match form.text("meta") {
        None => Ok(Map::new()),
        Some(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(refused("meta: must be a JSON object.".into())),
            Err(e) => Err(refused(format!("meta: not valid JSON ({e})."))),
        },
    }
}
