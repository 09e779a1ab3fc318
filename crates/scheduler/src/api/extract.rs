//! Extractors whose every rejection is an [`ApiError`]: a malformed body, path or query gets a 4xx
//! in the API's error shape, never axum's plain-text answer, a 500 or a panic.
//!
//! JSON bodies are read with `serde_path_to_error`, so a message names the field it is about
//! (`modules[1]: unknown variant "Deals"…`) and `field` carries that path for forms.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::api::error::ApiError;

/// The configured body limit, placed in request extensions so that a 413 can say it.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// A required JSON body.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// A JSON body that may be left out entirely (an empty body means "all defaults").
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match read_json(req, state).await? {
            Some(value) => Ok(ApiJson(value)),
            None => Err(ApiError::bad_request(
                "missing_body",
                "this endpoint takes a JSON body; see /openapi.json for its fields",
            )),
        }
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_json(req, state).await.map(OptionalJson)
    }
}

async fn read_json<T: DeserializeOwned, S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<Option<T>, ApiError> {
    let limit = req.extensions().get::<BodyLimit>().copied();
    let json_content = is_json(req.headers());
    let bytes = Bytes::from_request(req, state)
        .await
        .map_err(|rejection| body_rejection(&rejection, limit))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !json_content {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ));
    }
    parse_json(&bytes).map(Some)
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn body_rejection(rejection: &BytesRejection, limit: Option<BodyLimit>) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let message = match limit {
            Some(BodyLimit(bytes)) => {
                format!("the request body is larger than the {bytes} bytes this API accepts")
            }
            None => "the request body is larger than this API accepts".to_owned(),
        };
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    } else {
        ApiError::bad_request(
            "unreadable_body",
            "the request body could not be read; send it again",
        )
    }
}

/// Parses a JSON document into `T`, refusing trailing data, with errors that name the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        json_error(&path, &inner)
    })?;
    deserializer
        .end()
        .map_err(|error| json_error(".", &error))?;
    Ok(value)
}

fn json_error(path: &str, error: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let text = error.to_string();
    match error.classify() {
        Category::Data => {
            let field = field_of(path, &text);
            let message = match &field {
                Some(field) if !text.starts_with(field.as_str()) => format!("{field}: {text}"),
                _ => text,
            };
            let error = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message);
            match field {
                Some(field) => error.with_field(field),
                None => error,
            }
        }
        Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
            "invalid_json",
            format!("the body is not valid JSON: {text}"),
        ),
    }
}

/// The input an error is about: the path, plus the key named by an unknown- or missing-field
/// error (whose path is the object that holds it).
fn field_of(path: &str, message: &str) -> Option<String> {
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next())
        .filter(|name| !name.is_empty());
    let parent = (path != "." && !path.is_empty()).then_some(path);
    // An unknown key is already the last segment of the path; a missing one is not.
    let already_in_path = parent
        .zip(named)
        .is_some_and(|(p, n)| p == n || p.ends_with(&format!(".{n}")));
    if already_in_path {
        return parent.map(str::to_owned);
    }
    match (parent, named) {
        (Some(parent), Some(name)) => Some(format!("{parent}.{name}")),
        (None, Some(name)) => Some(name.to_owned()),
        (Some(parent), None) => Some(parent.to_owned()),
        (None, None) => None,
    }
}

/// A typed id taken from the `{id}` segment of the path.
#[derive(Debug)]
pub struct IdPath<T>(pub T);

impl<T, S> FromRequestParts<S> for IdPath<T>
where
    T: FromStr + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ApiError::bad_request("invalid_id", "the id in the path could not be read")
                    .with_field("id")
            })?;
        raw.parse::<T>().map(IdPath).map_err(|_| {
            let shown: String = raw.chars().take(64).collect();
            ApiError::bad_request(
                "invalid_id",
                format!("`{shown}` in the path is not an id; ids are UUIDs"),
            )
            .with_field("id")
        })
    }
}

/// A query string deserialized into `T` (which should deny unknown fields).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection: QueryRejection| {
                let text = rejection.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                let error = ApiError::bad_request(
                    "invalid_query",
                    format!("the query string is invalid: {detail}"),
                );
                match detail.split_once(": ") {
                    Some((field, _)) if !field.contains(' ') => error.with_field(field.to_owned()),
                    _ => match field_of(".", detail) {
                        Some(field) => error.with_field(field),
                        None => error,
                    },
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Example {
        name: String,
        tags: Vec<u8>,
        nested: Option<Nested>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        depth: u8,
    }

    #[test]
    fn errors_name_the_field() {
        let err =
            parse_json::<Example>(br#"{"name": "a", "tags": [1, "x"]}"#).expect_err("bad tag");
        assert_eq!(
            (err.status, err.field.as_deref()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("tags[1]"))
        );
        assert!(
            err.message.starts_with("tags[1]: invalid type"),
            "{}",
            err.message
        );

        let err = parse_json::<Example>(br#"{"name": "a", "tags": [], "colour": 1}"#)
            .expect_err("unknown");
        assert_eq!(err.field.as_deref(), Some("colour"));
        assert!(
            err.message.contains("unknown field `colour`"),
            "{}",
            err.message
        );

        let err = parse_json::<Example>(br#"{"name": "a", "tags": [], "nested": {"deep": 1}}"#)
            .expect_err("nested");
        assert_eq!(err.field.as_deref(), Some("nested.deep"));

        let err = parse_json::<Example>(br#"{"tags": []}"#).expect_err("missing");
        assert_eq!(err.field.as_deref(), Some("name"));
        assert!(
            err.message.contains("missing field `name`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn syntax_errors_and_trailing_data_are_400() {
        for body in [
            &b"{"[..],
            b"nul",
            b"{\"name\": \"a\", \"tags\": []} {}",
            b"\xff",
        ] {
            let err = parse_json::<Example>(body).expect_err("malformed");
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{body:?}");
            assert_eq!(err.code, "invalid_json");
        }
    }

    #[test]
    fn json_content_types() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().expect("header"),
        );
        assert!(is_json(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/merge-patch+json".parse().expect("header"),
        );
        assert!(is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().expect("header"));
        assert!(!is_json(&headers));
    }
}
