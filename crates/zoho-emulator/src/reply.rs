//! Building answers: Zoho's JSON content type, the CRM error envelope, bodiless statuses, and the
//! marker that makes the server close a connection without answering.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::{json, Value};

/// Zoho's content type for JSON answers.
pub const JSON: &str = "application/json;charset=UTF-8";

/// Response extension: close the connection instead of sending this answer (drop_rate knob).
#[derive(Clone, Copy, Debug)]
pub struct DropConnection;

/// A JSON answer from already-serialized bytes.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    resp
}

/// A JSON answer.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => json_bytes(status, bytes),
        // Serializing our own types cannot fail; answer like Zoho's own failure if it ever does.
        Err(_) => internal_error(),
    }
}

/// A bodiless answer (204, 304).
pub fn empty(status: StatusCode) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

/// An answer that the server will not send: the connection is closed instead.
pub fn dropped() -> Response {
    let mut resp = empty(StatusCode::INTERNAL_SERVER_ERROR);
    resp.extensions_mut().insert(DropConnection);
    resp
}

/// The CRM error envelope: all four keys, always (reference §4).
pub fn crm_error(status: StatusCode, code: &str, message: &str, details: Value) -> Response {
    json(
        status,
        &json!({"code": code, "details": details, "message": message, "status": "error"}),
    )
}

/// 401 `INVALID_TOKEN`: expired, revoked, evicted, unknown or other-DC token.
pub fn invalid_token() -> Response {
    crm_error(
        StatusCode::UNAUTHORIZED,
        "INVALID_TOKEN",
        "invalid oauth token",
        json!({}),
    )
}

/// 401 `AUTHENTICATION_FAILURE`: no or garbled `Authorization` header.
pub fn authentication_failure() -> Response {
    crm_error(
        StatusCode::UNAUTHORIZED,
        "AUTHENTICATION_FAILURE",
        "Authentication failed",
        json!({}),
    )
}

/// 401 `OAUTH_SCOPE_MISMATCH`.
pub fn scope_mismatch() -> Response {
    crm_error(
        StatusCode::UNAUTHORIZED,
        "OAUTH_SCOPE_MISMATCH",
        "invalid oauth scope to access this URL",
        json!({}),
    )
}

/// 404 `INVALID_URL_PATTERN`.
pub fn invalid_url() -> Response {
    crm_error(
        StatusCode::NOT_FOUND,
        "INVALID_URL_PATTERN",
        "Please check if the URL trying to access is a correct one",
        json!({}),
    )
}

/// 400 `INVALID_MODULE`.
pub fn invalid_module() -> Response {
    crm_error(
        StatusCode::BAD_REQUEST,
        "INVALID_MODULE",
        "the module name given seems to be invalid",
        json!({"resource_path_index": 0}),
    )
}

/// 400 `INVALID_DATA` for a query parameter.
pub fn invalid_param(param: &str, message: &str) -> Response {
    crm_error(
        StatusCode::BAD_REQUEST,
        "INVALID_DATA",
        message,
        json!({"param_name": param}),
    )
}

/// 400 `REQUIRED_PARAM_MISSING`.
pub fn missing_param(param: &str) -> Response {
    crm_error(
        StatusCode::BAD_REQUEST,
        "REQUIRED_PARAM_MISSING",
        "required param is missing",
        json!({"param_name": param}),
    )
}

/// 400 `AMBIGUITY_DURING_PROCESSING`.
pub fn ambiguity(params: &[&str]) -> Response {
    crm_error(
        StatusCode::BAD_REQUEST,
        "AMBIGUITY_DURING_PROCESSING",
        "ambiguity while processing the request",
        json!({"ambiguity_due_to": params}),
    )
}

/// 500 `INTERNAL_ERROR`.
pub fn internal_error() -> Response {
    crm_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        "Internal Server Error",
        json!({}),
    )
}

/// 429 `TOO_MANY_REQUESTS`; the same body for concurrency and credits, as Zoho does not say which.
pub fn too_many_requests() -> Response {
    crm_error(
        StatusCode::TOO_MANY_REQUESTS,
        "TOO_MANY_REQUESTS",
        "You have reached the API limit. Please try again after some time.",
        json!({}),
    )
}

/// 400 `INVALID_REQUEST_METHOD`: the emulator's CRM API is read-only.
pub fn invalid_method() -> Response {
    crm_error(
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST_METHOD",
        "The http request method type is not a valid one",
        json!({}),
    )
}

/// A console error `{"error","message"}`.
pub fn console_error(status: StatusCode, error: &str, message: &str) -> Response {
    json(status, &json!({"error": error, "message": message}))
}
