//! Record counts: `GET /crm/{version}/{module}/actions/count` (reference §6).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State as Shared};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use crate::gate::admit_module_read;
use crate::params::{converted, pairs, param, CrmPath};
use crate::query::{self, Filter};
use crate::records::Ctx;
use crate::reply;
use crate::schema::Module;
use crate::state::State;

/// `GET /crm/{version}/{module}/actions/count`.
pub async fn count(
    Shared(state): Shared<Arc<State>>,
    Path(path): Path<CrmPath>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (_, caller, module) = match admit_module_read(&state, &path, &headers).await {
        Ok(admitted) => admitted,
        Err(resp) => return resp,
    };
    let resp = count_records(&caller.org, module, &pairs(raw.as_deref()));
    caller.finish(&state, resp)
}

/// Counts with the optional `email`/`phone`/`word` filter (one at a time, as Zoho requires).
fn count_records(org: &crate::org::Org, module: Module, params: &[(String, String)]) -> Response {
    let filters: Vec<&str> = ["cvid", "criteria", "email", "phone", "word"]
        .into_iter()
        .filter(|k| param(params, k).is_some())
        .collect();
    if filters.len() > 1 {
        return reply::ambiguity(&filters);
    }
    let converted = match converted(module, params) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let store = org
        .store(module)
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let filter = Filter {
        since_ms: None,
        converted,
    };
    let ctx = Ctx {
        gen: &store.gen,
        users: &org.users,
        offset: org.offset,
    };
    let n = match filters.first().copied() {
        None => query::count(&store, &filter),
        Some(key @ ("cvid" | "criteria")) => {
            return reply::invalid_param(
                key,
                "the emulator has no custom views and does not evaluate criteria",
            )
        }
        Some(key) => {
            let wanted = param(params, key).unwrap_or("").trim().to_lowercase();
            let fields: &[&str] = match key {
                "email" => &["Email", "Secondary_Email"],
                "phone" => &["Phone", "Mobile"],
                _ => &["First_Name", "Last_Name", "Email", "Company"],
            };
            store
                .records()
                .iter()
                .filter(|r| filter.matches(r))
                .filter(|r| {
                    fields.iter().any(|f| {
                        ctx.text(r, f).is_some_and(|v| {
                            let v = v.trim().to_lowercase();
                            if key == "word" {
                                v.contains(&wanted)
                            } else {
                                v == wanted
                            }
                        })
                    })
                })
                .count()
        }
    };
    reply::json(StatusCode::OK, &json!({"count": n}))
}
