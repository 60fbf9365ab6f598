//! keyward's OpenAPI document, generated from the operation table and the request schemas the
//! server validates with, so it describes exactly what runs.

use serde_json::{json, Map, Value};

use super::{all, Method};
use crate::http::error::ErrorCode;

/// The component name of the error body sent with `status`.
fn error_component(status: u16) -> &'static str {
    match status {
        400 => "BadRequestErrorResponse",
        401 => "UnauthorizedErrorResponse",
        403 => "ForbiddenErrorResponse",
        404 => "NotFoundErrorResponse",
        408 => "RequestTimeoutErrorResponse",
        409 => "ConflictErrorResponse",
        410 => "GoneErrorResponse",
        412 => "PreconditionFailedErrorResponse",
        413 => "PayloadTooLargeErrorResponse",
        422 => "UnprocessableEntityErrorResponse",
        429 => "TooManyRequestsErrorResponse",
        503 => "ServiceUnavailableErrorResponse",
        _ => "InternalServerErrorResponse",
    }
}

fn components() -> Value {
    let meta = json!({
        "type": "object", "required": ["requestId"], "additionalProperties": false,
        "properties": {"requestId": {"type": "string", "description": "Id of this request (`req_…`), also sent as the `X-Request-Id` header."}}
    });
    let base_error = json!({
        "type": "object", "required": ["title", "detail", "status", "type"],
        "properties": {
            "title": {"type": "string"}, "detail": {"type": "string"}, "status": {"type": "integer"},
            "type": {"type": "string", "description": "URL of this error's documentation page on the server."},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}
        }
    });
    let validation_error = json!({
        "type": "object", "required": ["location", "message"],
        "properties": {"location": {"type": "string"}, "message": {"type": "string"}, "fix": {"type": "string"}}
    });
    let mut schemas = Map::new();
    schemas.insert("Meta".into(), meta);
    schemas.insert("BaseError".into(), base_error);
    schemas.insert("ValidationError".into(), validation_error);
    schemas.insert(
        "Pagination".into(),
        json!({"type": "object", "required": ["hasMore"], "properties": {
            "cursor": {"type": "string", "minLength": 1, "maxLength": 1024}, "hasMore": {"type": "boolean"}}}),
    );
    for status in [
        400u16, 401, 403, 404, 408, 409, 410, 412, 413, 422, 429, 500, 503,
    ] {
        schemas.insert(
            error_component(status).into(),
            json!({"type": "object", "required": ["meta", "error"], "properties": {
                "meta": {"$ref": "#/components/schemas/Meta"},
                "error": {"$ref": "#/components/schemas/BaseError"}}}),
        );
    }
    json!({
        "schemas": schemas,
        "securitySchemes": {"rootKey": {"type": "http", "scheme": "bearer",
            "description": "A root key (`unkey_…`) created with `keyward root-key create`."}}
    })
}

/// The whole document, with `server_url` as its only server.
pub fn document(server_url: &str) -> Value {
    let mut paths = Map::new();
    for (op, _) in all() {
        let mut body = Map::new();
        let mut data = Map::new();
        data.insert("meta".into(), json!({"$ref": "#/components/schemas/Meta"}));
        let mut required = vec!["meta"];
        if !super::META_ONLY.contains(&op.path) {
            data.insert("data".into(), op.response.to_openapi());
            required.push("data");
        }
        if op.paginated {
            data.insert(
                "pagination".into(),
                json!({"$ref": "#/components/schemas/Pagination"}),
            );
            required.push("pagination");
        }
        let mut responses = Map::new();
        responses.insert(
            "200".into(),
            json!({"description": "Success", "content": {"application/json": {"schema": {
                "type": "object", "required": required, "properties": data, "additionalProperties": false}}}}),
        );
        // Every route that can fail inside the server can also find its storage unavailable;
        // every authenticated route can meet a client that holds back its body (408) and the
        // workspace's own rate limit (429).
        let mut statuses = op.errors.to_vec();
        if op.errors.contains(&500) {
            statuses.push(503);
        }
        if op.authenticated() {
            statuses.extend([408, 429]);
        }
        statuses.sort_unstable();
        statuses.dedup();
        for status in &statuses {
            let codes: Vec<&str> = ErrorCode::ALL
                .iter()
                .filter(|c| c.status().as_u16() == *status)
                .map(|c| c.urn())
                .collect();
            // The body is the same under either type: `application/problem+json` when the client
            // accepts it (explicitly or by a wildcard) or the route's Unkey spec declares it,
            // `application/json` otherwise (see `ApiError::into_response`).
            let schema =
                json!({"$ref": format!("#/components/schemas/{}", error_component(*status))});
            responses.insert(
                status.to_string(),
                json!({"description": format!("Error; codes with this status: {}", codes.join(", ")),
                    "content": {
                        "application/json": {"schema": schema},
                        "application/problem+json": {"schema": schema},
                    }}),
            );
        }
        body.insert("operationId".into(), json!(op.operation_id));
        body.insert("summary".into(), json!(op.summary));
        body.insert("tags".into(), json!([op.tag]));
        body.insert(
            "description".into(),
            json!(format!("Required root-key permissions: {}", op.permissions)),
        );
        if let Some(request) = op.request {
            body.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": request.to_openapi()}}}),
            );
            body.insert("security".into(), json!([{"rootKey": []}]));
        } else {
            body.insert("security".into(), json!([]));
        }
        body.insert("responses".into(), Value::Object(responses));
        let method = match op.method {
            Method::Get => "get",
            Method::Post => "post",
        };
        paths.insert(op.path.into(), json!({ method: body }));
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "keyward", "version": env!("CARGO_PKG_VERSION"),
            "description": "Self-hosted API-key management and rate limiting, wire-compatible with Unkey's /v2 API."},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": components(),
    })
}
