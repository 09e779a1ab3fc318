//! Get Records (`GET /crm/{version}/{module}`), as reference §5 describes.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State as Shared};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::json;

use crate::clock::format_ts;
use crate::gate::{admit_module_read, empty_status};
use crate::paging::{
    params_hash, PageToken, PAGE_RECORD_LIMIT, TOKEN_RECORD_LIMIT, TOKEN_TTL_SECS,
};
use crate::params::{
    converted, if_modified_since, page, pairs, param, per_page, CrmPath, MAX_FIELDS,
};
use crate::query::{self, Filter};
use crate::records::{all_fields, Ctx, FieldRef, View};
use crate::reply;
use crate::schema::Module;
use crate::state::State;
use crate::store::{ModuleStore, SortKey};

/// A validated Get Records request.
struct ListRequest<'a> {
    /// Requested fields (all when `None`, v2 only).
    fields: Option<Vec<&'a str>>,
    /// Page size.
    per_page: usize,
    /// Offset of the first record.
    offset: usize,
    /// Sort key.
    sort: SortKey,
    /// Descending?
    desc: bool,
    /// Filter.
    filter: Filter,
}

/// `info` of a Get Records page.
#[derive(Serialize)]
struct Info {
    /// Always false (it marks Zoho's internal "call" records).
    call: bool,
    /// Page size asked for.
    per_page: usize,
    /// Records in this page.
    count: usize,
    /// Page number.
    page: usize,
    /// Sort key as named in the request.
    sort_by: &'static str,
    /// `asc`/`desc`.
    sort_order: &'static str,
    /// Always false (email-only listing).
    email: bool,
    /// Whether more records follow.
    more_records: bool,
    /// Token for the next page.
    next_page_token: Option<String>,
    /// Token for the previous page.
    previous_page_token: Option<String>,
    /// When the tokens of this answer expire.
    page_token_expiry: Option<String>,
}

/// `info` as v2 had it.
#[derive(Serialize)]
struct InfoV2 {
    /// Page size asked for.
    per_page: usize,
    /// Records in this page.
    count: usize,
    /// Page number.
    page: usize,
    /// Whether more records follow.
    more_records: bool,
}

/// `{"data":[…],"info":{…}}`.
#[derive(Serialize)]
struct Body<'a, I: Serialize> {
    /// Records.
    data: Vec<View<'a>>,
    /// Paging info.
    info: I,
}

/// `GET /crm/{version}/{module}`.
pub async fn list(
    Shared(state): Shared<Arc<State>>,
    Path(path): Path<CrmPath>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (v, caller, module) = match admit_module_read(&state, &path, &headers).await {
        Ok(admitted) => admitted,
        Err(resp) => return resp,
    };
    let resp = list_records(&state, &caller, module, v, raw.as_deref(), &headers);
    caller.finish(&state, resp)
}

/// Validates the request and renders the page.
fn list_records(
    state: &State,
    caller: &crate::gate::Caller,
    module: Module,
    v: u8,
    raw: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    let params = pairs(raw);
    let modern = v >= 3;
    let token_text = if modern {
        param(&params, "page_token")
    } else {
        None
    };
    if token_text.is_some() && param(&params, "page").is_some() {
        return reply::ambiguity(&["page", "page_token"]);
    }
    let org = &caller.org;
    let store = org
        .store(module)
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let req = match parse_list(&store, module, modern, &params, headers) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let now = state.clock.now_secs();
    let bound = params_hash(module.api_name(), &params, req.filter.since_ms);
    let user = caller.access.grant.user;
    let mut offset = req.offset;
    if let Some(text) = token_text {
        let Some(token) = state.codec.decode(text).filter(|t| t.user == user) else {
            return reply::invalid_param("page_token", "the page_token given seems to be invalid");
        };
        if i64::from(token.expires_at) <= now {
            return reply::crm_error(
                StatusCode::BAD_REQUEST,
                "EXPIRED_VALUE",
                "the page_token has expired",
                json!({"api_name": "page_token", "json_path": "$.query.page_token"}),
            );
        }
        if token.params != bound {
            return reply::crm_error(
                StatusCode::BAD_REQUEST,
                "TOKEN_BOUND_DATA_MISMATCH",
                "The page_token given seems to be invalid or input param is added or altered or deleted",
                json!({"param_name": "page_token"}),
            );
        }
        offset = token.offset as usize;
        if offset + req.per_page > TOKEN_RECORD_LIMIT {
            return reply::crm_error(
                StatusCode::BAD_REQUEST,
                "PAGINATION_LIMIT_EXCEEDED",
                "You can only get upto 100000 records using page_token param",
                json!({"limit": TOKEN_RECORD_LIMIT}),
            );
        }
    }
    let page = query::select(
        &store,
        &req.filter,
        req.sort,
        req.desc,
        offset,
        req.per_page,
    );
    if page.positions.is_empty() {
        let conditional = offset == 0 && req.filter.since_ms.is_some();
        return reply::empty(empty_status(&caller.knobs, conditional));
    }
    let fields: Vec<FieldRef<'_>> = match &req.fields {
        None => all_fields(module, &store.custom_fields),
        Some(names) => names.iter().filter_map(|n| field_ref(&store, n)).collect(),
    };
    let ctx = Ctx {
        gen: &store.gen,
        users: &org.users,
        offset: org.offset,
    };
    let data: Vec<View<'_>> = page
        .positions
        .iter()
        .map(|&p| View {
            ctx,
            rec: &store.records()[p as usize],
            fields: &fields,
        })
        .collect();
    let count = data.len();
    state.stats.with(|c| {
        c.records_served += count as u64;
        c.org(&org.id).records_served += count as u64;
    });
    let page_number = offset / req.per_page + 1;
    let bytes = if modern {
        let expires = now + TOKEN_TTL_SECS;
        let mint = |offset: usize| {
            state.codec.encode(&PageToken {
                offset: u32::try_from(offset).unwrap_or(u32::MAX),
                expires_at: u32::try_from(expires).unwrap_or(u32::MAX),
                params: bound,
                user,
            })
        };
        let next = page.more.then(|| mint(offset + req.per_page));
        let previous = (offset > 0).then(|| mint(offset.saturating_sub(req.per_page)));
        let expiry = (next.is_some() || previous.is_some()).then(|| format_ts(expires, org.offset));
        let info = Info {
            call: false,
            per_page: req.per_page,
            count,
            page: page_number,
            sort_by: match req.sort {
                SortKey::Id => "id",
                SortKey::Created => "Created_Time",
                SortKey::Modified => "Modified_Time",
            },
            sort_order: if req.desc { "desc" } else { "asc" },
            email: false,
            more_records: page.more,
            next_page_token: next,
            previous_page_token: previous,
            page_token_expiry: expiry,
        };
        serde_json::to_vec(&Body { data, info })
    } else {
        let info = InfoV2 {
            per_page: req.per_page,
            count,
            page: page_number,
            more_records: page.more,
        };
        serde_json::to_vec(&Body { data, info })
    };
    match bytes {
        Ok(b) => reply::json_bytes(StatusCode::OK, b),
        Err(_) => reply::internal_error(),
    }
}

/// A field of the module (built-in or console-created custom).
fn field_ref<'a>(store: &'a ModuleStore, name: &str) -> Option<FieldRef<'a>> {
    match store.module().field(name) {
        Some(def) => Some(FieldRef::Std(def)),
        None => store
            .custom_fields
            .iter()
            .find(|c| *c == name)
            .map(|c| FieldRef::Custom(c.as_str())),
    }
}

/// Validates everything but the page token.
fn parse_list<'a>(
    store: &ModuleStore,
    module: Module,
    modern: bool,
    params: &'a [(String, String)],
    headers: &HeaderMap,
) -> Result<ListRequest<'a>, Response> {
    let fields = match param(params, "fields")
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        None if modern => return Err(reply::missing_param("fields")),
        None => None,
        Some(list) => {
            let mut names: Vec<&str> = Vec::new();
            for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            if names.len() > MAX_FIELDS {
                return Err(reply::crm_error(
                    StatusCode::BAD_REQUEST,
                    "LIMIT_EXCEEDED",
                    "fields limit exceeded",
                    json!({"limit": MAX_FIELDS, "param_name": "fields"}),
                ));
            }
            names.retain(|n| *n != "id");
            if let Some(bad) = names.iter().find(|n| field_ref(store, n).is_none()) {
                return Err(reply::crm_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_DATA",
                    "the field name given seems to be invalid",
                    json!({"api_name": bad, "param_name": "fields"}),
                ));
            }
            Some(names)
        }
    };
    let per_page = per_page(params)?;
    let page = page(params)?;
    let sort = match param(params, "sort_by") {
        None | Some("id") => SortKey::Id,
        Some("Created_Time") => SortKey::Created,
        Some("Modified_Time") => SortKey::Modified,
        Some(_) => {
            return Err(reply::invalid_param(
                "sort_by",
                "sort_by must be id, Created_Time or Modified_Time",
            ))
        }
    };
    let desc = match param(params, "sort_order") {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => {
            return Err(reply::invalid_param(
                "sort_order",
                "sort_order must be asc or desc",
            ))
        }
    };
    let filter = Filter {
        since_ms: if_modified_since(headers)?,
        converted: converted(module, params)?,
    };
    if modern && page.saturating_mul(per_page) > PAGE_RECORD_LIMIT {
        return Err(reply::crm_error(
            StatusCode::BAD_REQUEST,
            "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
            "You can only get the first 2000 records using the page param. Use page_token to get more records",
            json!({"limit": PAGE_RECORD_LIMIT}),
        ));
    }
    Ok(ListRequest {
        fields,
        per_page,
        offset: (page - 1) * per_page,
        sort,
        desc,
        filter,
    })
}
