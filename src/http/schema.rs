//! A small JSON-schema vocabulary, used twice: to validate request bodies (with errors that name the
//! failing field the way Unkey's validator does) and to generate keyward's OpenAPI document. Because
//! both come from the same value, the document cannot drift from what the server enforces.

use serde_json::{json, Map, Value};

/// A request schema built once per process: `cached_schema!(object(...))` in a
/// `RequestBody::schema` body.
macro_rules! cached_schema {
    ($build:expr) => {{
        static SCHEMA: std::sync::OnceLock<$crate::http::schema::Schema> =
            std::sync::OnceLock::new();
        SCHEMA.get_or_init(|| $build)
    }};
}
pub(crate) use cached_schema;

/// `^[a-zA-Z0-9_.-]+$`: external ids of identities.
pub const EXTERNAL_ID_PATTERN: Pattern = Pattern {
    source: "^[a-zA-Z0-9_.-]+$",
    matches: |s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    },
};

use super::error::FieldError;

/// A string pattern: its regex source (for the document) and a matcher (for validation).
#[derive(Clone, Copy)]
pub struct Pattern {
    pub source: &'static str,
    pub matches: fn(&str) -> bool,
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.source)
    }
}

/// `^[a-zA-Z0-9_]+$`: ids.
pub const ID_PATTERN: Pattern = Pattern {
    source: "^[a-zA-Z0-9_]+$",
    matches: |s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
};

/// The shape of a JSON value.
#[derive(Debug, Clone)]
pub enum Kind {
    String {
        min_len: Option<usize>,
        max_len: Option<usize>,
        pattern: Option<Pattern>,
        one_of: Option<&'static [&'static str]>,
    },
    Integer {
        minimum: Option<i64>,
        maximum: Option<i64>,
        default: Option<i64>,
    },
    Boolean {
        default: Option<bool>,
    },
    Array {
        items: Box<Schema>,
        min_items: Option<usize>,
        max_items: Option<usize>,
    },
    Object {
        properties: Vec<(&'static str, Schema)>,
        required: Vec<&'static str>,
        /// Whether unknown properties are allowed (free-form objects such as `meta`).
        open: bool,
        max_properties: Option<usize>,
    },
}

/// A schema: a kind plus documentation.
#[derive(Debug, Clone)]
pub struct Schema {
    pub kind: Kind,
    pub description: Option<&'static str>,
    pub nullable: bool,
}

impl Schema {
    fn of(kind: Kind) -> Self {
        Schema {
            kind,
            description: None,
            nullable: false,
        }
    }

    pub fn describe(mut self, text: &'static str) -> Self {
        self.description = Some(text);
        self
    }

    pub fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }

    pub fn min_len(mut self, n: usize) -> Self {
        if let Kind::String { min_len, .. } = &mut self.kind {
            *min_len = Some(n);
        }
        self
    }

    pub fn max_len(mut self, n: usize) -> Self {
        if let Kind::String { max_len, .. } = &mut self.kind {
            *max_len = Some(n);
        }
        self
    }

    pub fn pattern(mut self, p: Pattern) -> Self {
        if let Kind::String { pattern, .. } = &mut self.kind {
            *pattern = Some(p);
        }
        self
    }

    /// Restricts a string to one of `values`.
    pub fn one_of(mut self, values: &'static [&'static str]) -> Self {
        if let Kind::String { one_of, .. } = &mut self.kind {
            *one_of = Some(values);
        }
        self
    }

    pub fn max_properties(mut self, n: usize) -> Self {
        if let Kind::Object { max_properties, .. } = &mut self.kind {
            *max_properties = Some(n);
        }
        self
    }

    pub fn minimum(mut self, n: i64) -> Self {
        if let Kind::Integer { minimum, .. } = &mut self.kind {
            *minimum = Some(n);
        }
        self
    }

    pub fn maximum(mut self, n: i64) -> Self {
        if let Kind::Integer { maximum, .. } = &mut self.kind {
            *maximum = Some(n);
        }
        self
    }

    pub fn default_int(mut self, n: i64) -> Self {
        if let Kind::Integer { default, .. } = &mut self.kind {
            *default = Some(n);
        }
        self
    }

    pub fn default_bool(mut self, b: bool) -> Self {
        if let Kind::Boolean { default } = &mut self.kind {
            *default = Some(b);
        }
        self
    }

    pub fn min_items(mut self, n: usize) -> Self {
        if let Kind::Array { min_items, .. } = &mut self.kind {
            *min_items = Some(n);
        }
        self
    }

    pub fn max_items(mut self, n: usize) -> Self {
        if let Kind::Array { max_items, .. } = &mut self.kind {
            *max_items = Some(n);
        }
        self
    }
}

pub fn string() -> Schema {
    Schema::of(Kind::String {
        min_len: None,
        max_len: None,
        pattern: None,
        one_of: None,
    })
}

pub fn integer() -> Schema {
    Schema::of(Kind::Integer {
        minimum: None,
        maximum: None,
        default: None,
    })
}

pub fn boolean() -> Schema {
    Schema::of(Kind::Boolean { default: None })
}

pub fn array(items: Schema) -> Schema {
    Schema::of(Kind::Array {
        items: Box::new(items),
        min_items: None,
        max_items: None,
    })
}

/// One property of an object schema.
pub struct Field {
    name: &'static str,
    schema: Schema,
    required: bool,
}

pub fn required(name: &'static str, schema: Schema) -> Field {
    Field {
        name,
        schema,
        required: true,
    }
}

pub fn optional(name: &'static str, schema: Schema) -> Field {
    Field {
        name,
        schema,
        required: false,
    }
}

/// A closed object: properties not listed are rejected.
pub fn object(fields: Vec<Field>) -> Schema {
    let required = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    let properties = fields.into_iter().map(|f| (f.name, f.schema)).collect();
    Schema::of(Kind::Object {
        properties,
        required,
        open: false,
        max_properties: None,
    })
}

/// A free-form object (any properties).
pub fn free_object() -> Schema {
    Schema::of(Kind::Object {
        properties: Vec::new(),
        required: Vec::new(),
        open: true,
        max_properties: None,
    })
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Where in the body a value sits: a chain of stack frames, rendered into the two strings an error
/// names (the keyword location and the field) only when something fails, so that a valid body costs
/// no string building at all.
#[derive(Clone, Copy)]
enum Path<'a> {
    Body,
    Property(&'a Path<'a>, &'a str),
    Item(&'a Path<'a>, usize),
}

impl Path<'_> {
    /// The JSON-schema keyword location so far: `/properties/ratelimits/items/properties/name`.
    fn keyword(&self, out: &mut String) {
        match self {
            Path::Body => {}
            Path::Property(parent, name) => {
                parent.keyword(out);
                out.push_str("/properties/");
                out.push_str(name);
            }
            Path::Item(parent, _) => {
                parent.keyword(out);
                out.push_str("/items");
            }
        }
    }

    /// The field as a user writes it: `ratelimits[0].name`; empty for the body itself.
    fn field(&self) -> String {
        match self {
            Path::Body => String::new(),
            Path::Property(parent, name) => join_field(&parent.field(), name),
            Path::Item(parent, i) => format!("{}[{i}]", parent.shown()),
        }
    }

    /// The field, or "the body" for the body itself.
    fn shown(&self) -> String {
        match self {
            Path::Body => "the body".to_string(),
            _ => self.field(),
        }
    }
}

/// Validation of one value against one schema, collecting every failure.
struct Validator {
    errors: Vec<FieldError>,
    /// Whether an integer was written as a float with no fraction (`5.0`).
    integral_floats: bool,
}

/// The value of a JSON number that JSON Schema counts as an integer: any number without a
/// fractional part, `5.0` included. Floats beyond i128 saturate, which puts them out of bounds.
fn integral(n: &serde_json::Number) -> Option<i128> {
    if let Some(v) = n.as_i64() {
        return Some(i128::from(v));
    }
    if let Some(v) = n.as_u64() {
        return Some(i128::from(v));
    }
    let f = n.as_f64()?;
    (f.is_finite() && f.fract() == 0.0).then_some(f as i128)
}

impl Validator {
    /// Records a failure of `keyword` at `at`; `message` and `fix` are given the field as shown.
    fn fail(
        &mut self,
        at: &Path<'_>,
        keyword: &str,
        message: String,
        fix: impl FnOnce(&str) -> String,
    ) {
        let mut location = String::new();
        at.keyword(&mut location);
        location.push('/');
        location.push_str(keyword);
        self.errors.push(FieldError {
            location,
            message,
            fix: Some(fix(&at.shown())),
        });
    }

    fn check(&mut self, schema: &Schema, value: &Value, at: &Path<'_>) {
        if value.is_null() && schema.nullable {
            return;
        }
        match (&schema.kind, value) {
            (
                Kind::String {
                    min_len,
                    max_len,
                    pattern,
                    one_of,
                },
                Value::String(s),
            ) => {
                if let Some(values) = one_of {
                    if !values.contains(&s.as_str()) {
                        self.fail(
                            at,
                            "enum",
                            format!("value must be one of '{}'", values.join("', '")),
                            |shown| format!("Send '{shown}' as one of: {}.", values.join(", ")),
                        );
                    }
                }
                // Counting characters only matters when a bound could be near.
                let len = if min_len.is_some() || max_len.is_some() {
                    s.chars().count()
                } else {
                    0
                };
                if let Some(min) = *min_len {
                    if len < min {
                        self.fail(
                            at,
                            "minLength",
                            format!("minLength: got {len}, want {min}"),
                            |shown| format!("Send '{shown}' with at least {min} characters."),
                        );
                    }
                }
                if let Some(max) = *max_len {
                    if len > max {
                        self.fail(
                            at,
                            "maxLength",
                            format!("maxLength: got {len}, want {max}"),
                            |shown| format!("Send '{shown}' with at most {max} characters."),
                        );
                    }
                }
                if let Some(p) = pattern {
                    if !(p.matches)(s) {
                        self.fail(
                            at,
                            "pattern",
                            format!("'{s}' does not match pattern '{}'", p.source),
                            |shown| format!("Send '{shown}' matching {}.", p.source),
                        );
                    }
                }
            }
            (
                Kind::Integer {
                    minimum, maximum, ..
                },
                Value::Number(n),
            ) if integral(n).is_some() => {
                let v = integral(n).unwrap_or_default();
                if n.is_f64() {
                    self.integral_floats = true;
                }
                // Every integer is an i64: the bounds not declared are i64's own.
                let min = minimum.unwrap_or(i64::MIN);
                if v < i128::from(min) {
                    self.fail(
                        at,
                        "minimum",
                        format!("minimum: got {n}, want {min}"),
                        |shown| format!("Send '{shown}' of at least {min}."),
                    );
                }
                let max = maximum.unwrap_or(i64::MAX);
                if v > i128::from(max) {
                    self.fail(
                        at,
                        "maximum",
                        format!("maximum: got {n}, want {max}"),
                        |shown| format!("Send '{shown}' of at most {max}."),
                    );
                }
            }
            (Kind::Boolean { .. }, Value::Bool(_)) => {}
            (
                Kind::Array {
                    items,
                    min_items,
                    max_items,
                },
                Value::Array(values),
            ) => {
                if let Some(min) = *min_items {
                    if values.len() < min {
                        self.fail(
                            at,
                            "minItems",
                            format!("minItems: got {}, want {min}", values.len()),
                            |shown| format!("Send at least {min} items in '{shown}'."),
                        );
                    }
                }
                if let Some(max) = *max_items {
                    if values.len() > max {
                        self.fail(
                            at,
                            "maxItems",
                            format!("maxItems: got {}, want {max}", values.len()),
                            |shown| format!("Send at most {max} items in '{shown}'."),
                        );
                    }
                }
                for (i, item) in values.iter().enumerate() {
                    self.check(items, item, &Path::Item(at, i));
                }
            }
            (
                Kind::Object {
                    properties,
                    required,
                    open,
                    max_properties,
                },
                Value::Object(map),
            ) => {
                if let Some(max) = *max_properties {
                    if map.len() > max {
                        self.fail(
                            at,
                            "maxProperties",
                            format!("maxProperties: got {}, want {max}", map.len()),
                            |shown| format!("Send at most {max} properties in '{shown}'."),
                        );
                    }
                }
                for name in required {
                    if !map.contains_key(*name) {
                        let full = join_field(&at.field(), name);
                        self.fail(at, "required", format!("missing property '{name}'"), |_| {
                            format!("Add the required field '{full}'.")
                        });
                    }
                }
                for (name, item) in map {
                    match properties.iter().find(|(p, _)| p == name) {
                        Some((_, child)) => self.check(child, item, &Path::Property(at, name)),
                        None if *open => {}
                        None => {
                            let full = join_field(&at.field(), name);
                            self.fail(
                                at,
                                "additionalProperties",
                                format!("additionalProperties '{name}' not allowed"),
                                |_| format!("Remove the unknown field '{full}'."),
                            )
                        }
                    }
                }
            }
            (kind, other) => {
                let want = match kind {
                    Kind::String { .. } => "string",
                    Kind::Integer { .. } => "integer",
                    Kind::Boolean { .. } => "boolean",
                    Kind::Array { .. } => "array",
                    Kind::Object { .. } => "object",
                };
                self.fail(
                    at,
                    "type",
                    format!("got {}, want {want}", type_name(other)),
                    |shown| format!("Send '{shown}' as {want}."),
                );
            }
        }
    }
}

fn join_field(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

impl Schema {
    /// Every way `value` fails this schema; empty when it conforms.
    pub fn validate(&self, value: &Value) -> Vec<FieldError> {
        let mut v = Validator {
            errors: Vec::new(),
            integral_floats: false,
        };
        v.check(self, value, &Path::Body);
        v.errors
    }

    /// Validates a request body, and once it conforms rewrites every integer sent as a float
    /// without a fraction (`5.0`, an integer to JSON Schema) as the integer itself, so that it
    /// deserializes into an integer field.
    pub fn validate_request(&self, value: &mut Value) -> Vec<FieldError> {
        let mut v = Validator {
            errors: Vec::new(),
            integral_floats: false,
        };
        v.check(self, value, &Path::Body);
        if v.errors.is_empty() && v.integral_floats {
            self.integers_from_floats(value);
        }
        v.errors
    }

    /// Replaces integral floats in integer fields of a conforming value by integers.
    fn integers_from_floats(&self, value: &mut Value) {
        match (&self.kind, value) {
            (Kind::Integer { .. }, value) => {
                if let (true, Some(f)) = (value.is_f64(), value.as_f64()) {
                    // Conforming, so within i64's bounds.
                    *value = Value::from(f as i64);
                }
            }
            (Kind::Array { items, .. }, Value::Array(values)) => {
                for item in values {
                    items.integers_from_floats(item);
                }
            }
            (Kind::Object { properties, .. }, Value::Object(map)) => {
                for (name, item) in map.iter_mut() {
                    if let Some((_, child)) = properties.iter().find(|(p, _)| p == name) {
                        child.integers_from_floats(item);
                    }
                }
            }
            _ => {}
        }
    }

    /// The schema as an OpenAPI 3.1 schema object.
    pub fn to_openapi(&self) -> Value {
        let mut out = Map::new();
        let type_name = match &self.kind {
            Kind::String {
                min_len,
                max_len,
                pattern,
                one_of,
            } => {
                if let Some(values) = one_of {
                    out.insert("enum".into(), json!(values));
                }
                if let Some(n) = min_len {
                    out.insert("minLength".into(), json!(n));
                }
                if let Some(n) = max_len {
                    out.insert("maxLength".into(), json!(n));
                }
                if let Some(p) = pattern {
                    out.insert("pattern".into(), json!(p.source));
                }
                "string"
            }
            Kind::Integer {
                minimum,
                maximum,
                default,
            } => {
                // The bounds not declared are i64's own, which the server enforces too.
                out.insert("format".into(), json!("int64"));
                out.insert("minimum".into(), json!(minimum.unwrap_or(i64::MIN)));
                out.insert("maximum".into(), json!(maximum.unwrap_or(i64::MAX)));
                if let Some(n) = default {
                    out.insert("default".into(), json!(n));
                }
                "integer"
            }
            Kind::Boolean { default } => {
                if let Some(b) = default {
                    out.insert("default".into(), json!(b));
                }
                "boolean"
            }
            Kind::Array {
                items,
                min_items,
                max_items,
            } => {
                out.insert("items".into(), items.to_openapi());
                if let Some(n) = min_items {
                    out.insert("minItems".into(), json!(n));
                }
                if let Some(n) = max_items {
                    out.insert("maxItems".into(), json!(n));
                }
                "array"
            }
            Kind::Object {
                properties,
                required,
                open,
                max_properties,
            } => {
                if let Some(n) = max_properties {
                    out.insert("maxProperties".into(), json!(n));
                }
                let props: Map<String, Value> = properties
                    .iter()
                    .map(|(name, s)| (name.to_string(), s.to_openapi()))
                    .collect();
                out.insert("properties".into(), Value::Object(props));
                if !required.is_empty() {
                    out.insert("required".into(), json!(required));
                }
                out.insert("additionalProperties".into(), json!(*open));
                "object"
            }
        };
        if self.nullable {
            out.insert("type".into(), json!([type_name, "null"]));
        } else {
            out.insert("type".into(), json!(type_name));
        }
        if let Some(d) = self.description {
            out.insert("description".into(), json!(d));
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_schema() -> Schema {
        object(vec![
            required("name", string().min_len(3).max_len(10)),
            optional("apiId", string().pattern(ID_PATTERN)),
            optional("limit", integer().minimum(1).maximum(100)),
            optional("tags", array(string().min_len(1)).max_items(2)),
            optional("meta", free_object()),
            optional("expires", integer().nullable()),
        ])
    }

    fn locations(value: Value) -> Vec<String> {
        body_schema()
            .validate(&value)
            .into_iter()
            .map(|e| e.location)
            .collect()
    }

    #[test]
    fn a_conforming_body_has_no_errors() {
        let ok = json!({"name": "abcd", "apiId": "api_1", "limit": 5, "tags": ["a"], "meta": {"x": 1}, "expires": null});
        assert!(body_schema().validate(&ok).is_empty());
    }

    #[test]
    fn string_bounds_and_patterns_name_their_keyword() {
        let errors = body_schema().validate(&json!({"name": "ab"}));
        assert_eq!(errors[0].location, "/properties/name/minLength");
        assert_eq!(errors[0].message, "minLength: got 2, want 3");
        assert_eq!(
            locations(json!({"name": "abcdefghijk"})),
            ["/properties/name/maxLength"]
        );
        assert_eq!(
            locations(json!({"name": "abc", "apiId": "a-b"})),
            ["/properties/apiId/pattern"]
        );
    }

    #[test]
    fn missing_unknown_and_mistyped_fields_are_reported() {
        assert_eq!(locations(json!({})), ["/required"]);
        assert_eq!(
            locations(json!({"name": "abc", "x": 1})),
            ["/additionalProperties"]
        );
        assert_eq!(locations(json!({"name": 5})), ["/properties/name/type"]);
        assert_eq!(
            locations(json!({"name": "abc", "limit": 1.5})),
            ["/properties/limit/type"]
        );
        assert_eq!(locations(json!([1])), ["/type"]);
        assert_eq!(locations(json!(null)), ["/type"]);
    }

    #[test]
    fn integers_may_be_written_with_a_zero_fraction() {
        assert!(locations(json!({"name": "abc", "limit": 5.0})).is_empty());
        let mut body = json!({"name": "abc", "limit": 5.0, "meta": {"x": 1.0}});
        assert!(body_schema().validate_request(&mut body).is_empty());
        assert!(body["limit"].is_i64(), "{body}");
        // Only integer fields change.
        assert!(body["meta"]["x"].is_f64(), "{body}");
        assert_eq!(
            locations(json!({"name": "abc", "limit": 500.0})),
            ["/properties/limit/maximum"]
        );
        assert_eq!(
            locations(json!({"name": "abc", "expires": 1e300})),
            ["/properties/expires/maximum"]
        );
        assert_eq!(
            locations(json!({"name": "abc", "expires": 9223372036854775808u64})),
            ["/properties/expires/maximum"]
        );
    }

    #[test]
    fn numbers_and_arrays_respect_their_bounds() {
        assert_eq!(
            locations(json!({"name": "abc", "limit": 0})),
            ["/properties/limit/minimum"]
        );
        assert_eq!(
            locations(json!({"name": "abc", "limit": 18446744073709551615u64})),
            ["/properties/limit/maximum"]
        );
        assert_eq!(
            locations(json!({"name": "abc", "tags": ["a", "b", "c"]})),
            ["/properties/tags/maxItems"]
        );
        assert_eq!(
            locations(json!({"name": "abc", "tags": [""]})),
            ["/properties/tags/items/minLength"]
        );
    }

    #[test]
    fn openapi_output_carries_bounds_and_closedness() {
        let doc = body_schema().to_openapi();
        assert_eq!(doc["additionalProperties"], json!(false));
        assert_eq!(doc["required"], json!(["name"]));
        assert_eq!(doc["properties"]["name"]["minLength"], json!(3));
        assert_eq!(
            doc["properties"]["apiId"]["pattern"],
            json!("^[a-zA-Z0-9_]+$")
        );
        assert_eq!(
            doc["properties"]["expires"]["type"],
            json!(["integer", "null"])
        );
    }
}
