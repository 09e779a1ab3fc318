//! The emulator-only console under `/__emulator/`: orgs, self clients and grant codes (what a
//! creator does in Zoho's API Console), the clock, knobs, counters and token tricks for tests.
//! Console errors are `{"error","message"}` with a 4xx status.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as Shared};
use axum::http::StatusCode;
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::accounts::CodeError;
use crate::clock::{format_ts, MS};
use crate::dc::Dc;
use crate::org::OrgSpec;
use crate::reply::{self, console_error};
use crate::scopes::Scopes;
use crate::state::{lock, State};

/// Parses a JSON body; an empty body is `{}` so that optional-only calls need none.
pub fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Response> {
    let text = if bytes.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        bytes
    };
    serde_json::from_slice(text)
        .map_err(|e| console_error(StatusCode::BAD_REQUEST, "invalid_body", &e.to_string()))
}

/// `GET /__emulator/health`.
pub async fn health() -> Response {
    reply::json(StatusCode::OK, &json!({"status": "ok"}))
}

/// `POST /__emulator/orgs`: seeds another org (off the async threads: 500,000 records take a
/// noticeable fraction of a second).
pub async fn create_org(Shared(state): Shared<Arc<State>>, bytes: Bytes) -> Response {
    let spec: OrgSpec = match body(&bytes) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let worker = state.clone();
    match tokio::task::spawn_blocking(move || worker.add_org(&spec)).await {
        Ok(Ok(org)) => reply::json(StatusCode::CREATED, &describe(&org, false)),
        Ok(Err(message)) => console_error(StatusCode::BAD_REQUEST, "invalid_org", &message),
        Err(_) => console_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "seeding_failed",
            "seeding the org failed",
        ),
    }
}

/// An org as the console lists it.
fn describe(org: &crate::org::Org, default: bool) -> Value {
    let len = |m: crate::schema::Module| org.store(m).read().map_or(0, |s| s.records().len());
    json!({
        "org_id": org.id,
        "company_name": org.company_name,
        "edition": org.edition,
        "time_zone": org.time_zone,
        "contacts": len(crate::schema::Module::Contacts),
        "leads": len(crate::schema::Module::Leads),
        "admin_user_id": org.admin().id.to_string(),
        "default": default,
    })
}

/// `GET /__emulator/orgs`.
pub async fn list_orgs(Shared(state): Shared<Arc<State>>) -> Response {
    let orgs: Vec<Value> = state
        .orgs()
        .iter()
        .enumerate()
        .map(|(i, o)| describe(o, i == 0))
        .collect();
    reply::json(StatusCode::OK, &json!({ "orgs": orgs }))
}

/// Body of `POST /__emulator/self-clients`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClient {
    /// Org whose data the client reads (default org when absent).
    org_id: Option<String>,
    /// DC the client is registered in (the configured DC when absent).
    data_center: Option<String>,
}

/// `POST /__emulator/self-clients` → 201 `{"client_id","client_secret",…}`.
pub async fn create_client(Shared(state): Shared<Arc<State>>, bytes: Bytes) -> Response {
    let req: NewClient = match body(&bytes) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let Some((index, org)) = state.org_by_id(req.org_id.as_deref()) else {
        return console_error(
            StatusCode::NOT_FOUND,
            "unknown_org",
            "no org with that org_id",
        );
    };
    let dc = match req.data_center.as_deref() {
        None => state.default_dc,
        Some(code) => match Dc::parse(code) {
            Some(dc) => dc,
            None => {
                return console_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_data_center",
                    "data_center must be one of US EU IN AU JP CN CA SA",
                )
            }
        },
    };
    let (client_id, client_secret) = lock(&state.accounts).create_client(index, org.admin().id, dc);
    reply::json(
        StatusCode::CREATED,
        &json!({
            "client_id": client_id,
            "client_secret": client_secret,
            "org_id": org.id,
            "data_center": dc.code(),
            "accounts_path": format!("/dc/{}", dc.path()),
        }),
    )
}

/// Body of `POST /__emulator/grant-codes`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCode {
    /// The self client.
    client_id: String,
    /// Comma-separated scopes.
    scope: String,
    /// 1–10 minutes (the console's drop-down; Zoho's default is 3).
    duration_minutes: Option<u64>,
    /// 1–600 seconds, for tests that need a code to die quickly.
    duration_seconds: Option<u64>,
    /// The console's "Scope Description" (free text, ignored).
    #[allow(dead_code)]
    description: Option<String>,
}

/// `POST /__emulator/grant-codes` → 201 `{"code"}`.
pub async fn create_code(Shared(state): Shared<Arc<State>>, bytes: Bytes) -> Response {
    let req: NewCode = match body(&bytes) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let secs = match (req.duration_minutes, req.duration_seconds) {
        (Some(_), Some(_)) => None,
        (Some(m), None) => (1..=10).contains(&m).then_some(m * 60),
        (None, Some(s)) => (1..=600).contains(&s).then_some(s),
        (None, None) => Some(180),
    };
    let Some(secs) = secs else {
        return console_error(
            StatusCode::BAD_REQUEST,
            "invalid_duration",
            "give duration_minutes (1-10) or duration_seconds (1-600), not both",
        );
    };
    let scopes = match Scopes::parse(&req.scope) {
        Ok(s) => s,
        Err(message) => return console_error(StatusCode::BAD_REQUEST, "invalid_scope", &message),
    };
    let knobs = state.knobs();
    let now = state.clock.now_ms();
    let result = lock(&state.accounts).create_code(
        &req.client_id,
        scopes,
        secs as i64 * MS,
        now,
        knobs.max_grant_codes_per_10_min,
    );
    match result {
        Ok(code) => {
            state.stats.with(|c| c.grant_codes_issued += 1);
            reply::json(
                StatusCode::CREATED,
                &json!({"code": code, "expires_in_secs": secs}),
            )
        }
        Err(CodeError::UnknownClient) => console_error(
            StatusCode::NOT_FOUND,
            "unknown_client",
            "no self client with that client_id",
        ),
        Err(CodeError::TooMany) => console_error(
            StatusCode::BAD_REQUEST,
            "access_denied",
            "too many grant codes for this client in 10 minutes; try again later",
        ),
    }
}

/// Largest clock step one call may take.
const MAX_ADVANCE_SECS: u64 = 10 * 365 * 86_400;

/// Body of `POST /__emulator/clock`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    /// Seconds to move the clock forward.
    advance_secs: u64,
}

/// `GET /__emulator/clock`.
pub async fn clock(Shared(state): Shared<Arc<State>>) -> Response {
    clock_answer(&state)
}

/// The clock as the console reports it (UTC and the default org's offset).
fn clock_answer(state: &State) -> Response {
    let now = state.clock.now_secs();
    let offset = state
        .org(0)
        .map_or(chrono::FixedOffset::east_opt(0), |o| Some(o.offset));
    let local = offset.map(|o| format_ts(now, o));
    reply::json(
        StatusCode::OK,
        &json!({"now_ms": state.clock.now_ms(), "now": local, "offset_secs": state.clock.offset_secs()}),
    )
}

/// `POST /__emulator/clock` `{"advance_secs": N}`.
pub async fn advance(Shared(state): Shared<Arc<State>>, bytes: Bytes) -> Response {
    let req: Advance = match body(&bytes) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    // Ten years per call is far beyond any Zoho window and keeps the clock's arithmetic finite.
    if req.advance_secs > MAX_ADVANCE_SECS {
        return console_error(
            StatusCode::BAD_REQUEST,
            "invalid_advance",
            "advance_secs must be at most 315360000 (10 years)",
        );
    }
    state.clock.advance_secs(req.advance_secs);
    clock_answer(&state)
}

/// `GET /__emulator/knobs`.
pub async fn knobs(Shared(state): Shared<Arc<State>>) -> Response {
    reply::json(StatusCode::OK, &*state.knobs())
}

/// `PUT /__emulator/knobs` with a partial object.
pub async fn set_knobs(Shared(state): Shared<Arc<State>>, bytes: Bytes) -> Response {
    let patch: Value = match body(&bytes) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    match state.knobs().merged(&patch) {
        Ok(knobs) => {
            state.set_knobs(knobs.clone());
            reply::json(StatusCode::OK, &knobs)
        }
        Err(message) => console_error(StatusCode::BAD_REQUEST, "invalid_knobs", &message),
    }
}

/// `GET /__emulator/stats`.
pub async fn stats(Shared(state): Shared<Arc<State>>) -> Response {
    let (refresh, access, codes) = lock(&state.accounts).sizes();
    let mut json = serde_json::to_value(state.stats.snapshot()).unwrap_or(Value::Null);
    if let Some(map) = json.as_object_mut() {
        map.insert(
            "token_tables".into(),
            json!({"refresh_tokens": refresh, "access_tokens": access, "grant_codes": codes}),
        );
    }
    reply::json(StatusCode::OK, &json)
}

/// `POST /__emulator/stats/reset`.
pub async fn reset_stats(Shared(state): Shared<Arc<State>>) -> Response {
    state.stats.reset();
    reply::json(StatusCode::OK, &json!({"reset": true}))
}

/// `POST /__emulator/tokens/{access_token}/expire`: the token's next use gets 401.
pub async fn expire_token(
    Shared(state): Shared<Arc<State>>,
    Path(token): Path<String>,
) -> Response {
    let now = state.clock.now_ms();
    if lock(&state.accounts).expire(&token, now) {
        reply::json(StatusCode::OK, &json!({"expired": 1}))
    } else {
        console_error(
            StatusCode::NOT_FOUND,
            "unknown_token",
            "no live access token like that",
        )
    }
}

/// `POST /__emulator/tokens/expire-all`: every access token expires now (refresh tokens live on).
pub async fn expire_all(Shared(state): Shared<Arc<State>>) -> Response {
    let now = state.clock.now_ms();
    let n = lock(&state.accounts).expire_all(now);
    reply::json(StatusCode::OK, &json!({ "expired": n }))
}
