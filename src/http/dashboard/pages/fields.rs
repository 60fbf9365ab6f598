//! Form fields keys and identities share: a value kept after a refused submit, the rows of named
//! rate limits, and a JSON-object field (meta).

use maud::{html, Markup};
use serde_json::{json, Map, Value};

use crate::http::dashboard::session::FormData;

/// A field's value as submitted, to show back in the form.
pub fn kept<'a>(form: Option<&'a FormData>, name: &str) -> &'a str {
    form.and_then(|f| f.raw(name)).unwrap_or("")
}

/// `rows` rows of a named rate limit (`rl{i}-name`, `-limit`, `-duration`, `-auto`), filled
/// from `form`; each control labelled with its row number.
pub fn limit_rows(form: Option<&FormData>, rows: usize) -> Markup {
    html! {
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

fn whole(form: &FormData, name: &str, what: &str) -> Result<i64, String> {
    let text = form.text(name).unwrap_or_default();
    if text.is_empty() {
        return Err(format!("{what}: give a whole number."));
    }
    text.parse::<i64>()
        .map_err(|_| format!("{what}: '{text}' is not a whole number."))
}

/// The rate limits of the rows with a name, as the API takes them; an error names the field.
pub fn limits_of(form: &FormData, rows: usize) -> Result<Vec<Value>, String> {
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

/// The `meta` field: a JSON object, or `None` when blank.
pub fn meta_of(form: &FormData) -> Result<Option<Map<String, Value>>, String> {
    match form.text("meta") {
        None => Ok(None),
        Some(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => Ok(Some(map)),
            Ok(_) => Err("meta: must be a JSON object.".into()),
            Err(e) => Err(format!("meta: not valid JSON ({e}).")),
        },
    }
}
