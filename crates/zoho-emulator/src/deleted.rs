//! Deleted records (`GET /crm/{version}/{module}/deleted`), reference §6.
//!
//! Recycle-bin entries are listed for 60 days and permanent ones for 120 days, newest deletion
//! first; permanent entries carry no names or users.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State as Shared};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::clock::format_ts;
use crate::gate::{admit_module_read, empty_status};
use crate::org::Org;
use crate::params::{if_modified_since, page, pairs, param, per_page, CrmPath};
use crate::reply;
use crate::schema::Module;
use crate::state::State;

/// Recycle-bin entries are listed for 60 days (reference §6).
pub const RECYCLE_SECS: i64 = 60 * 24 * 3600;
/// Permanently deleted entries are listed for 120 days.
pub const PERMANENT_SECS: i64 = 120 * 24 * 3600;

/// A deleted record as `/deleted` lists it.
#[derive(Clone, Debug)]
pub struct Deleted {
    /// The record's id.
    pub id: u64,
    /// Permanently deleted (no names, no users) rather than in the recycle bin.
    pub permanent: bool,
    /// When it was deleted, Unix seconds.
    pub at: i64,
    /// `Full_Name` at deletion (recycle only).
    pub display_name: Option<String>,
    /// Index of the org user who created it (recycle only).
    pub created_by: Option<usize>,
}

impl Deleted {
    /// Whether `/deleted` still lists the entry at `now` (Unix seconds).
    pub fn listed(&self, now: i64) -> bool {
        now - self.at
            < if self.permanent {
                PERMANENT_SECS
            } else {
                RECYCLE_SECS
            }
    }
}

/// Which entries a listing wants.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Type {
    /// `all` (default).
    All,
    /// `recycle`.
    Recycle,
    /// `permanent`.
    Permanent,
}

/// `GET /crm/{version}/{module}/deleted`.
pub async fn deleted(
    Shared(state): Shared<Arc<State>>,
    Path(path): Path<CrmPath>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (_, caller, module) = match admit_module_read(&state, &path, &headers).await {
        Ok(admitted) => admitted,
        Err(resp) => return resp,
    };
    let resp = list(
        &state,
        &caller.org,
        module,
        raw.as_deref(),
        &headers,
        &caller.knobs,
    );
    caller.finish(&state, resp)
}

/// Validates and renders one page of entries.
fn list(
    state: &State,
    org: &Org,
    module: Module,
    raw: Option<&str>,
    headers: &HeaderMap,
    knobs: &crate::knobs::Knobs,
) -> Response {
    let params = pairs(raw);
    let kind = match param(&params, "type") {
        None | Some("all") => Type::All,
        Some("recycle") => Type::Recycle,
        Some("permanent") => Type::Permanent,
        Some(_) => {
            return reply::crm_error(
                StatusCode::BAD_REQUEST,
                "PATTERN_NOT_MATCHED",
                "Please check whether the input values are correct",
                json!({"param_name": "type"}),
            )
        }
    };
    let (per_page, page, since) =
        match (per_page(&params), page(&params), if_modified_since(headers)) {
            (Ok(a), Ok(b), Ok(c)) => (a, b, c),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
        };
    let now = state.clock.now_secs();
    let store = org
        .store(module)
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut entries: Vec<_> = store
        .deleted
        .iter()
        .filter(|d| d.listed(now))
        .filter(|d| match kind {
            Type::All => true,
            Type::Recycle => !d.permanent,
            Type::Permanent => d.permanent,
        })
        .filter(|d| since.is_none_or(|s| d.at.saturating_mul(1000) >= s))
        .collect();
    entries.sort_by_key(|d| std::cmp::Reverse((d.at, d.id)));
    let offset = (page - 1).saturating_mul(per_page);
    let more = entries.len() > offset.saturating_add(per_page);
    let user = |index: Option<usize>| -> Value {
        index.and_then(|i| org.users.get(i)).map_or(
            Value::Null,
            |u| json!({"name": u.full_name(), "id": u.id.to_string()}),
        )
    };
    let data: Vec<Value> = entries
        .iter()
        .skip(offset)
        .take(per_page)
        .map(|d| {
            json!({
                "id": d.id.to_string(),
                "display_name": d.display_name,
                "type": if d.permanent { "permanent" } else { "recycle" },
                "deleted_time": format_ts(d.at, org.offset),
                "deleted_by": if d.permanent { Value::Null } else { user(Some(0)) },
                "created_by": user(d.created_by),
            })
        })
        .collect();
    if data.is_empty() {
        return reply::empty(empty_status(knobs, offset == 0 && since.is_some()));
    }
    let info =
        json!({"per_page": per_page, "count": data.len(), "page": page, "more_records": more});
    reply::json(StatusCode::OK, &json!({"data": data, "info": info}))
}
