//! The one error shape of the API: `{"error": {"code", "message", "field"?}}`.
//!
//! `code` is stable (clients branch on it), `message` is for a person and says what to do, and
//! `field` names the request input the error is about, so a form can show it beside that input.
//! Every failure of the service or its dependencies is mapped here; nothing escapes as a bare 500.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pledgesync_store::StoreError;
use serde::Serialize;

/// An answer that is not a success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code such as `not_found` or `zoho_code_expired`.
    pub code: &'static str,
    /// What went wrong and what to do, for a person.
    pub message: String,
    /// The request input the error concerns, e.g. `client_secret` or `modules[1]`.
    pub field: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// The same error, about request input `field`.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 422: a well-formed body whose `field` breaks a rule.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).with_field(field)
    }

    /// 400: a request that cannot be read at all.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 for a thing that does not exist (or was deleted).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the request is fine but the state does not allow it.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 503: a dependency is down; the request may succeed later.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500: a fault of this service (a bug, or data it cannot read). The details go to the log,
    /// not to the caller.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "request failed inside the scheduler");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the scheduler failed to handle this request; the error was logged, try again or contact an operator",
        )
    }

    /// 401 for a missing or unknown bearer token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send `Authorization: Bearer <token>` with one of the tokens configured in api.tokens",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::NotFound { .. } => ApiError::not_found(error.to_string()),
            StoreError::Conflict { field, .. } => {
                ApiError::conflict("conflict", error.to_string()).with_field(*field)
            }
            StoreError::Rejected(message) => ApiError::conflict("rejected", message.clone()),
            _ if error.is_retryable() => {
                tracing::warn!(error = %error, "PostgreSQL unavailable while handling a request");
                ApiError::unavailable("the database is unavailable; try again in a few seconds")
            }
            _ => ApiError::internal(&error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn errors_have_the_documented_shape() {
        let (status, body) = body_of(ApiError::invalid("name", "name must not be empty")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "invalid_field", "message": "name must not be empty", "field": "name"}})
        );
        let (_, body) = body_of(ApiError::not_found("run x does not exist")).await;
        assert!(body["error"].get("field").is_none());
    }

    #[test]
    fn store_errors_map_to_statuses() {
        let conflict = ApiError::from(StoreError::Conflict {
            what: "an audience named \"A\" in this account".into(),
            field: "name",
        });
        assert_eq!(
            (conflict.status, conflict.field.as_deref()),
            (StatusCode::CONFLICT, Some("name"))
        );
        let gone = ApiError::from(StoreError::Unavailable(sqlx::Error::PoolTimedOut));
        assert_eq!(gone.status, StatusCode::SERVICE_UNAVAILABLE);
        let corrupt = ApiError::from(StoreError::Corrupt("bad".into()));
        assert_eq!(corrupt.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            !corrupt.message.contains("bad"),
            "internal details stay in the log"
        );
    }
}
