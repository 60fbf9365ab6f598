//! Keys as the pages show and edit them: the key table, status and credits, and the key form
//! shared by creating and editing, turned into the body of `keys.createKey` or `keys.updateKey`.

use maud::{html, Markup};
use serde_json::{json, Map, Value};

use super::fields::{self, kept};
use crate::http::dashboard::layout;
use crate::http::dashboard::session::FormData;

/// How many rate-limit rows the form offers.
const LIMIT_ROWS: usize = 3;

/// The status badge of a key, from its JSON.
pub fn status_badge(key: &Value, now: i64) -> Markup {
    let expired = key["expires"].as_i64().is_some_and(|at| at <= now);
    if !key["enabled"].as_bool().unwrap_or(true) {
        html! { span.badge.off { "disabled" } }
    } else if expired {
        html! { span.badge.warn { "expired" } }
    } else {
        html! { span.badge.ok { "active" } }
    }
}

/// Remaining credits, or "unlimited".
pub fn credits_text(key: &Value) -> Markup {
    match key["credits"]["remaining"].as_i64() {
        Some(n) => layout::count(n),
        None => html! { span.muted { "unlimited" } },
    }
}

/// The table of keys (JSON as `apis.listKeys` answers them).
pub fn key_table(keys: &[Value], now: i64) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr {
                    th scope="col" { "Name" }
                    th scope="col" { "Start" }
                    th scope="col" { "Owner" }
                    th.hide-narrow scope="col" { "Created" }
                    th.hide-narrow scope="col" { "Last used" }
                    th.num scope="col" { "Credits" }
                    th scope="col" { "Status" }
                } }
                tbody {
                    @for key in keys {
                        @let id = key["keyId"].as_str().unwrap_or_default();
                        tr {
                            td {
                                a href=(format!("/keys/{id}")) {
                                    @match key["name"].as_str() {
                                        Some(name) => (name),
                                        None => span.mono { (id) },
                                    }
                                }
                            }
                            td.mono { (key["start"].as_str().unwrap_or_default()) "…" }
                            td { (key["identity"]["externalId"].as_str().unwrap_or("")) }
                            td.hide-narrow { (layout::time(key["createdAt"].as_i64())) }
                            td.hide-narrow { (layout::time(key["lastUsedAt"].as_i64())) }
                            td.num { (credits_text(key)) }
                            td { (status_badge(key, now)) }
                        }
                    }
                }
            }
        }
    }
}

/// The fields of a key that both creating and editing set.
pub fn key_fields(form: Option<&FormData>, creating: bool) -> Markup {
    let checked = |name: &str, default: bool| form.map_or(default, |f| f.checked(name));
    html! {
        div.row {
            div {
                label for="name" { "Name" }
                input #name type="text" name="name" maxlength="255" value=(kept(form, "name"))
                    placeholder="For people, e.g. the customer's name";
            }
            div {
                label for="externalId" { "Owner (external id)" }
                input #externalId type="text" name="externalId" maxlength="255" value=(kept(form, "externalId"))
                    placeholder="Your id for the customer; shared limits follow it";
            }
            div {
                label for="expires" { "Expires (UTC)" }
                input #expires type="datetime-local" name="expires" value=(kept(form, "expires"));
            }
        }
        @if creating {
            div.row {
                div {
                    label for="prefix" { "Prefix" }
                    input #prefix type="text" name="prefix" maxlength="16" pattern="[a-zA-Z0-9_]+"
                        value=(kept(form, "prefix")) placeholder="e.g. sk_live";
                }
                div {
                    label for="byteLength" { "Length in bytes" }
                    input #byteLength type="number" name="byteLength" min="16" max="255"
                        value=(if kept(form, "byteLength").is_empty() { "16" } else { kept(form, "byteLength") });
                }
            }
        }
        label.check { input type="checkbox" name="enabled" checked[checked("enabled", true)]; "Enabled" }
        @if creating {
            label.check { input type="checkbox" name="recoverable" checked[checked("recoverable", false)]; "Recoverable: store it encrypted so it can be shown again (the API must allow it)" }
        }
        fieldset {
            legend { "Credits" }
            p.hint { "Leave empty for unlimited verifications." }
            div.row {
                div {
                    label for="remaining" { "Remaining" }
                    input #remaining type="number" name="remaining" min="0" value=(kept(form, "remaining"));
                }
                div {
                    label for="refillInterval" { "Refill" }
                    select #refillInterval name="refillInterval" {
                        @for (value, label) in [("", "never"), ("daily", "daily"), ("monthly", "monthly")] {
                            option value=(value) selected[kept(form, "refillInterval") == value] { (label) }
                        }
                    }
                }
                div {
                    label for="refillAmount" { "Refill to" }
                    input #refillAmount type="number" name="refillAmount" min="1" value=(kept(form, "refillAmount"));
                }
                div {
                    label for="refillDay" { "Day of month (monthly)" }
                    input #refillDay type="number" name="refillDay" min="1" max="31" value=(kept(form, "refillDay"));
                }
            }
        }
        fieldset {
            legend { "Rate limits" }
            p.hint { "Named limits; auto-applied ones are checked on every verification." }
            (fields::limit_rows(form, LIMIT_ROWS))
        }
        @if creating {
            fieldset {
                legend { "Permissions and roles" }
                label for="permissions" { "Permissions" }
                input #permissions type="text" name="permissions" value=(kept(form, "permissions"))
                    placeholder="Comma-separated, e.g. documents.read, documents.write";
                label for="roles" { "Roles" }
                input #roles type="text" name="roles" value=(kept(form, "roles")) placeholder="Comma-separated role names";
                p.hint { "Missing permissions need rbac.*.create_permission to be created on the fly." }
            }
        }
        label for="meta" { "Meta (JSON object)" }
        textarea #meta name="meta" placeholder="{\"plan\": \"pro\"}" { (kept(form, "meta")) }
    }
}

fn number(form: &FormData, name: &str) -> Result<Option<i64>, String> {
    match form.text(name) {
        None => Ok(None),
        Some(text) => text
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("{name}: '{text}' is not a whole number.")),
    }
}

/// `2025-01-02T03:04` (a `datetime-local` value, read as UTC) as unix milliseconds.
pub fn utc_millis(text: &str) -> Option<i64> {
    let with_seconds = if text.len() == 16 {
        format!("{text}:00Z")
    } else {
        format!("{text}Z")
    };
    let at = humantime::parse_rfc3339(&with_seconds).ok()?;
    let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    i64::try_from(ms).ok()
}

/// A unix-ms time as a `datetime-local` value (UTC).
pub fn local_input(ms: Option<i64>) -> String {
    ms.map(|ms| {
        let text = crate::http::extract::rfc3339(ms);
        text.get(..16).unwrap_or(&text).to_string()
    })
    .unwrap_or_default()
}

fn comma_list(form: &FormData, name: &str) -> Vec<Value> {
    form.raw(name)
        .unwrap_or("")
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| json!(s))
        .collect()
}

/// The request body of `keys.createKey` (or, `creating` false, `keys.updateKey`'s fields) from
/// the form. Errors name the field; everything else is left to the API's own validation.
pub fn key_body(form: &FormData, creating: bool) -> Result<Map<String, Value>, String> {
    let mut body = Map::new();
    let text = |name: &str| form.text(name).map(Value::from);
    match text("name") {
        Some(v) => {
            body.insert("name".into(), v);
        }
        None if !creating => {
            body.insert("name".into(), Value::Null);
        }
        None => {}
    }
    match text("externalId") {
        Some(v) => {
            body.insert("externalId".into(), v);
        }
        None if !creating => {
            body.insert("externalId".into(), Value::Null);
        }
        None => {}
    }
    match form.text("expires") {
        Some(at) => {
            let ms = utc_millis(&at)
                .ok_or_else(|| format!("expires: '{at}' is not a date and time."))?;
            body.insert("expires".into(), json!(ms));
        }
        None if !creating => {
            body.insert("expires".into(), Value::Null);
        }
        None => {}
    }
    body.insert("enabled".into(), json!(form.checked("enabled")));
    if creating {
        if let Some(prefix) = text("prefix") {
            body.insert("prefix".into(), prefix);
        }
        if let Some(n) = number(form, "byteLength")? {
            body.insert("byteLength".into(), json!(n));
        }
        if form.checked("recoverable") {
            body.insert("recoverable".into(), json!(true));
        }
        let permissions = comma_list(form, "permissions");
        if !permissions.is_empty() {
            body.insert("permissions".into(), Value::Array(permissions));
        }
        let roles = comma_list(form, "roles");
        if !roles.is_empty() {
            body.insert("roles".into(), Value::Array(roles));
        }
    }
    let remaining = number(form, "remaining")?;
    let refill = match form.text("refillInterval") {
        Some(interval) => {
            let amount =
                number(form, "refillAmount")?.ok_or("refillAmount: a refill needs an amount.")?;
            let mut refill = json!({ "interval": interval, "amount": amount });
            if let Some(day) = number(form, "refillDay")? {
                refill["refillDay"] = json!(day);
            }
            Some(refill)
        }
        None => None,
    };
    match (remaining, refill) {
        (None, None) if creating => {}
        (None, None) => {
            body.insert("credits".into(), Value::Null);
        }
        (remaining, refill) => {
            let mut credits = json!({ "remaining": remaining });
            if let Some(refill) = refill {
                credits["refill"] = refill;
            }
            body.insert("credits".into(), credits);
        }
    }
    let limits = fields::limits_of(form, LIMIT_ROWS)?;
    if !limits.is_empty() || !creating {
        body.insert("ratelimits".into(), Value::Array(limits));
    }
    match fields::meta_of(form)? {
        Some(meta) => {
            body.insert("meta".into(), Value::Object(meta));
        }
        None if !creating => {
            body.insert("meta".into(), Value::Null);
        }
        None => {}
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_local_values_read_as_utc() {
        assert_eq!(utc_millis("2024-03-01T00:00"), Some(1_709_251_200_000));
        assert_eq!(utc_millis("2024-03-01T00:00:05"), Some(1_709_251_205_000));
        assert_eq!(utc_millis("tomorrow"), None);
        assert_eq!(local_input(Some(1_709_251_200_000)), "2024-03-01T00:00");
    }
}
