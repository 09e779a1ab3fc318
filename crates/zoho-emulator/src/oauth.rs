//! The accounts server's HTTP face: `POST /oauth/v2/token` and `POST /oauth/v2/token/revoke`,
//! under `{base}` (default DC) and `{base}/dc/{xx}`.
//!
//! Zoho reports token errors with HTTP 200 and an `error` field, and takes parameters from the
//! query string, a form body, or both; the emulator does the same so that a client which only
//! checks the status, or only sends a body, fails here as it would against Zoho.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as Shared};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};

use crate::accounts::{Minted, TokenError};
use crate::dc::Dc;
use crate::gate::{delay, resolve_dc};
use crate::knobs::Knobs;
use crate::reply;
use crate::state::{lock, State};

/// Zoho's throttle text (reference §2).
pub const THROTTLE_DESCRIPTION: &str =
    "You have made too many requests continuously. Please try again after some time.";

/// Form body values first, then query-string values for keys the body lacks.
fn merged_params(raw_query: Option<&str>, body: &[u8]) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for (k, v) in url::form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
        if !params.iter().any(|(pk, _)| *pk == k) {
            params.push((k.into_owned(), v.into_owned()));
        }
    }
    params
}

/// A parameter value, or "" when absent (every absence maps onto one of Zoho's errors).
fn get<'a>(params: &'a [(String, String)], key: &str) -> &'a str {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.trim())
}

/// `POST {base}/oauth/v2/token` (default DC).
pub async fn token_default(
    state: Shared<Arc<State>>,
    query: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    token(state, None, query, headers, body).await
}

/// `POST {base}/dc/{dc}/oauth/v2/token`.
pub async fn token_dc(
    state: Shared<Arc<State>>,
    Path(dc): Path<String>,
    query: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    token(state, Some(dc), query, headers, body).await
}

/// Faults and latency shared by the accounts endpoints; `Some` answer short-circuits.
async fn accounts_faults(state: &State, knobs: &Knobs) -> Option<Response> {
    if knobs.faults_on_accounts && state.roll(knobs.drop_rate) {
        delay(knobs).await;
        return Some(reply::dropped());
    }
    delay(knobs).await;
    if knobs.faults_on_accounts && state.roll(knobs.error_rate_5xx) {
        state.stats.with(|c| c.injected_5xx += 1);
        return Some(reply::json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": "server_error"}),
        ));
    }
    None
}

/// The token endpoint.
async fn token(
    Shared(state): Shared<Arc<State>>,
    dc: Option<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(dc) = resolve_dc(&state, dc.as_deref()) else {
        return reply::console_error(
            StatusCode::NOT_FOUND,
            "unknown_data_centre",
            "no such Zoho data centre",
        );
    };
    let knobs = state.knobs();
    if let Some(resp) = accounts_faults(&state, &knobs).await {
        return resp;
    }
    let params = merged_params(raw.as_deref(), &body);
    let (client_id, secret) = (get(&params, "client_id"), get(&params, "client_secret"));
    let now = state.clock.now_ms();
    let grant_type = get(&params, "grant_type");
    let result = match grant_type {
        "authorization_code" => {
            lock(&state.accounts).exchange(dc, client_id, secret, get(&params, "code"), now, &knobs)
        }
        "refresh_token" => lock(&state.accounts).refresh(
            dc,
            client_id,
            secret,
            get(&params, "refresh_token"),
            now,
            &knobs,
        ),
        _ => Err(TokenError::UnsupportedGrantType),
    };
    match result {
        Ok(minted) => {
            state.stats.with(|c| {
                c.access_tokens_issued += 1;
                if minted.refresh_token.is_some() {
                    c.codes_exchanged += 1;
                    c.refresh_tokens_issued += 1;
                } else {
                    c.token_refreshes += 1;
                }
            });
            reply::json(
                StatusCode::OK,
                &success(&minted, &api_base(&headers), &knobs),
            )
        }
        Err(TokenError::Throttled) => {
            state.stats.with(|c| c.throttled_refreshes += 1);
            let status = StatusCode::from_u16(knobs.throttle_status).unwrap_or(StatusCode::OK);
            reply::json(
                status,
                &json!({"error_description": THROTTLE_DESCRIPTION, "error": "Access Denied", "status": "failure"}),
            )
        }
        Err(e) => {
            let error = match e {
                TokenError::InvalidClient => "invalid_client",
                TokenError::InvalidClientSecret => "invalid_client_secret",
                TokenError::InvalidCode => "invalid_code",
                TokenError::UnsupportedGrantType | TokenError::Throttled => {
                    "unsupported_grant_type"
                }
            };
            state.stats.with(|c| c.token_error(error));
            reply::json(StatusCode::OK, &json!({ "error": error }))
        }
    }
}

/// `http://{Host}`: the emulator as the client reached it, so `api_domain` points back at it
/// whatever address or name the client used.
fn api_base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// The success body (modern or legacy `expires_in` form).
fn success(minted: &Minted, base: &str, knobs: &Knobs) -> Value {
    let mut body = Map::new();
    body.insert("access_token".into(), json!(minted.access_token));
    if let Some(rt) = &minted.refresh_token {
        body.insert("refresh_token".into(), json!(rt));
    }
    body.insert("scope".into(), json!(minted.scope));
    body.insert(
        "api_domain".into(),
        json!(format!("{base}/dc/{}", minted.dc.path())),
    );
    body.insert("token_type".into(), json!("Bearer"));
    if knobs.legacy_expires_in {
        body.insert("expires_in_sec".into(), json!(knobs.token_ttl_secs));
        body.insert(
            "expires_in".into(),
            json!(knobs.token_ttl_secs.saturating_mul(1000)),
        );
    } else {
        body.insert("expires_in".into(), json!(knobs.token_ttl_secs));
    }
    Value::Object(body)
}

/// `POST {base}/oauth/v2/token/revoke?token=…` (default DC).
pub async fn revoke_default(state: Shared<Arc<State>>, query: RawQuery, body: Bytes) -> Response {
    revoke(state, None, query, body).await
}

/// `POST {base}/dc/{dc}/oauth/v2/token/revoke?token=…`.
pub async fn revoke_dc(
    state: Shared<Arc<State>>,
    Path(dc): Path<String>,
    query: RawQuery,
    body: Bytes,
) -> Response {
    revoke(state, Some(dc), query, body).await
}

/// Revokes a refresh token and every access token it minted.
async fn revoke(
    Shared(state): Shared<Arc<State>>,
    dc: Option<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let Some(dc): Option<Dc> = resolve_dc(&state, dc.as_deref()) else {
        return reply::console_error(
            StatusCode::NOT_FOUND,
            "unknown_data_centre",
            "no such Zoho data centre",
        );
    };
    let knobs = state.knobs();
    if let Some(resp) = accounts_faults(&state, &knobs).await {
        return resp;
    }
    let params = merged_params(raw.as_deref(), &body);
    if lock(&state.accounts).revoke(dc, get(&params, "token")) {
        state.stats.with(|c| c.refresh_tokens_revoked += 1);
        reply::json(StatusCode::OK, &json!({"status": "success"}))
    } else {
        reply::json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_token", "status": "failure"}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_wins_and_query_fills_gaps() {
        let params = merged_params(
            Some("code=q&client_id=fromquery&grant_type=x"),
            b"client_id=body&client_secret=s%2Bt",
        );
        assert_eq!(get(&params, "client_id"), "body");
        assert_eq!(get(&params, "client_secret"), "s+t");
        assert_eq!(get(&params, "code"), "q");
        assert_eq!(get(&params, "missing"), "");
        // A JSON body is not a form: it yields junk keys, never a panic.
        let junk = merged_params(None, b"{\"client_id\":1}");
        assert_eq!(get(&junk, "client_id"), "");
    }
}
