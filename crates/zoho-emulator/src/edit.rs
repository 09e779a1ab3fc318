//! Console access to the data: read every live record, and create, change, delete, mutate and
//! convert records between syncs. `?org_id=` picks an org (default org otherwise).
//!
//! Lead conversion follows Zoho: the lead stays in Leads, marked `Converted__s: true` with a
//! `Converted_Date_Time` and a new Modified_Time, and leaves the default listing
//! (`converted=false`); it is not a deleted record. A Contact with the lead's name, email, phones,
//! source, opt-out and description is created.

use std::sync::{Arc, PoisonError};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as Shared};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::clock::format_ts;
use crate::console::body;
use crate::data::mix;
use crate::org::Org;
use crate::params::{pairs, param};
use crate::query::Converted;
use crate::records::{all_fields, Ctx, Record, View, CONVERTED, NO_GEN};
use crate::reply::{self, console_error};
use crate::schema::Module;
use crate::state::State;
use crate::store::{EditError, ModuleStore};

/// The org, module and query parameters of a console call.
type Target = (Arc<Org>, Module, Vec<(String, String)>);

/// The org and module a console call addresses, or the error answer.
fn target(state: &State, module: &str, raw: Option<&str>) -> Result<Target, Response> {
    let params = pairs(raw);
    let Some(module) = Module::parse(module) else {
        return Err(console_error(
            StatusCode::NOT_FOUND,
            "unknown_module",
            "module must be Contacts or Leads",
        ));
    };
    let Some((_, org)) = state.org_by_id(param(&params, "org_id")) else {
        return Err(console_error(
            StatusCode::NOT_FOUND,
            "unknown_org",
            "no org with that org_id",
        ));
    };
    Ok((org, module, params))
}

/// Maps a store error onto a console answer.
fn edit_error(e: EditError) -> Response {
    match e {
        EditError::NotFound => console_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no live record with that id",
        ),
        EditError::Invalid(message) => {
            console_error(StatusCode::BAD_REQUEST, "invalid_record", &message)
        }
    }
}

/// A record with every field, as the console shows it.
fn full(org: &Org, store: &ModuleStore, rec: &Record) -> Value {
    let fields = all_fields(store.module(), &store.custom_fields);
    let ctx = Ctx {
        gen: &store.gen,
        users: &org.users,
        offset: org.offset,
    };
    serde_json::to_value(View {
        ctx,
        rec,
        fields: &fields,
    })
    .unwrap_or(Value::Null)
}

/// Display name and creator of a record, for its deleted entry.
fn describe(org: &Org, store: &ModuleStore, rec: &Record) -> (Option<String>, Option<usize>) {
    let ctx = Ctx {
        gen: &store.gen,
        users: &org.users,
        offset: org.offset,
    };
    let owner = if rec.gen == NO_GEN {
        0
    } else {
        store.gen.owner(rec.gen, org.users.len())
    };
    (ctx.text(rec, "Full_Name"), Some(owner))
}

/// `GET /__emulator/records/{module}` → `{"records":[…]}`, every live record with all fields
/// (`?converted=false|true` narrows Leads; default both).
pub async fn list(
    Shared(state): Shared<Arc<State>>,
    Path(module): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let (org, module, params) = match target(&state, &module, raw.as_deref()) {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let converted = match param(&params, "converted") {
        None | Some("both") => Converted::Both,
        Some("false") => Converted::Exclude,
        Some("true") => Converted::Only,
        Some(_) => {
            return console_error(
                StatusCode::BAD_REQUEST,
                "invalid_converted",
                "converted must be true, false or both",
            )
        }
    };
    let store = org
        .store(module)
        .read()
        .unwrap_or_else(PoisonError::into_inner);
    let fields = all_fields(module, &store.custom_fields);
    let ctx = Ctx {
        gen: &store.gen,
        users: &org.users,
        offset: org.offset,
    };
    let views: Vec<View<'_>> = store
        .records()
        .iter()
        .filter(|r| match converted {
            Converted::Both => true,
            Converted::Exclude => r.flags & CONVERTED == 0,
            Converted::Only => r.flags & CONVERTED != 0,
        })
        .map(|rec| View {
            ctx,
            rec,
            fields: &fields,
        })
        .collect();
    reply::json(StatusCode::OK, &json!({ "records": views }))
}

/// Body of `POST /__emulator/records/{module}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    /// Records with explicit values.
    records: Option<Vec<Map<String, Value>>>,
    /// Or: this many generated records.
    generate: Option<usize>,
}

/// `POST /__emulator/records/{module}` → 201 `{"ids":[…]}`.
pub async fn create(
    Shared(state): Shared<Arc<State>>,
    Path(module): Path<String>,
    RawQuery(raw): RawQuery,
    bytes: Bytes,
) -> Response {
    let (org, module, _) = match target(&state, &module, raw.as_deref()) {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let req: Create = match body(&bytes) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let now = state.clock.now_secs();
    let mut store = org
        .store(module)
        .write()
        .unwrap_or_else(PoisonError::into_inner);
    let ids = match (req.records, req.generate) {
        (Some(records), None) => {
            let mut ids = Vec::with_capacity(records.len());
            for values in &records {
                match store.create(values, now) {
                    Ok(id) => ids.push(id),
                    Err(e) => return edit_error(e),
                }
            }
            ids
        }
        (None, Some(n)) if n <= 1_000_000 => store.generate(n, now),
        _ => {
            return console_error(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "give either records or generate (at most 1000000)",
            )
        }
    };
    let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
    reply::json(StatusCode::CREATED, &json!({ "ids": ids }))
}

/// Parses a record id from the path.
fn record_id(text: &str) -> Result<u64, Response> {
    text.parse()
        .map_err(|_| console_error(StatusCode::NOT_FOUND, "not_found", "record ids are numbers"))
}

/// `PATCH /__emulator/records/{module}/{id}` with `{field: value}`; `?touch=false` keeps
/// Modified_Time (a formula-field change).
pub async fn update(
    Shared(state): Shared<Arc<State>>,
    Path((module, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    bytes: Bytes,
) -> Response {
    let (org, module, params) = match target(&state, &module, raw.as_deref()) {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let (id, values) = match (record_id(&id), body::<Map<String, Value>>(&bytes)) {
        (Ok(id), Ok(values)) => (id, values),
        (Err(resp), _) | (_, Err(resp)) => return resp,
    };
    let touch = param(&params, "touch") != Some("false");
    let now = state.clock.now_secs();
    let mut store = org
        .store(module)
        .write()
        .unwrap_or_else(PoisonError::into_inner);
    if let Err(e) = store.update(id, &values, now, touch) {
        return edit_error(e);
    }
    let rec = store
        .position(id)
        .map(|p| full(&org, &store, &store.records()[p]));
    reply::json(StatusCode::OK, &json!({ "record": rec }))
}

/// `DELETE /__emulator/records/{module}/{id}` (recycle bin; `?permanent=true` for permanent).
pub async fn delete(
    Shared(state): Shared<Arc<State>>,
    Path((module, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let (org, module, params) = match target(&state, &module, raw.as_deref()) {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let id = match record_id(&id) {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let permanent = param(&params, "permanent") == Some("true");
    let now = state.clock.now_secs();
    let mut store = org
        .store(module)
        .write()
        .unwrap_or_else(PoisonError::into_inner);
    let (name, creator) = match store.position(id) {
        Some(p) => describe(&org, &store, &store.records()[p]),
        None => (None, None),
    };
    match store.delete(id, permanent, now, name, creator) {
        Ok(()) => reply::json(
            StatusCode::OK,
            &json!({"id": id.to_string(), "type": if permanent { "permanent" } else { "recycle" }}),
        ),
        Err(e) => edit_error(e),
    }
}

/// Body of `POST /__emulator/records/{module}/mutate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mutate {
    /// Records to change (new Description; every third a new Email, every fifth opted out).
    #[serde(default)]
    update: usize,
    /// Records to delete into the recycle bin.
    #[serde(default)]
    delete: usize,
    /// Generated records to add.
    #[serde(default)]
    create: usize,
    /// Seed choosing which records.
    #[serde(default)]
    seed: u64,
}

/// `POST /__emulator/records/{module}/mutate` → `{"updated","deleted","created"}` id lists.
pub async fn mutate(
    Shared(state): Shared<Arc<State>>,
    Path(module): Path<String>,
    RawQuery(raw): RawQuery,
    bytes: Bytes,
) -> Response {
    let (org, module, _) = match target(&state, &module, raw.as_deref()) {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let req: Mutate = match body(&bytes) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let now = state.clock.now_secs();
    let mut store = org
        .store(module)
        .write()
        .unwrap_or_else(PoisonError::into_inner);
    let live = store.records().len();
    if req.update.saturating_add(req.delete) > live || req.create > 1_000_000 {
        return console_error(
            StatusCode::BAD_REQUEST,
            "invalid_mutation",
            "update + delete exceed the live records (or create > 1000000)",
        );
    }
    // Distinct positions by a seeded partial Fisher-Yates over an index permutation.
    let mut positions: Vec<u32> = (0..live as u32).collect();
    let picks = req.update + req.delete;
    for i in 0..picks {
        let j = i + (mix(req.seed ^ mix(i as u64)) % (live - i) as u64) as usize;
        positions.swap(i, j);
    }
    let chosen: Vec<u64> = positions[..picks]
        .iter()
        .map(|&p| store.records()[p as usize].id)
        .collect();
    let (to_update, to_delete) = chosen.split_at(req.update);
    for (k, id) in to_update.iter().enumerate() {
        let mut values = Map::new();
        values.insert(
            "Description".into(),
            json!(format!("Updated by mutate (seed {})", req.seed)),
        );
        if k % 3 == 0 {
            values.insert("Email".into(), json!(format!("updated.{id}@example.com")));
        }
        if k % 5 == 0 {
            values.insert("Email_Opt_Out".into(), json!(true));
        }
        if let Err(e) = store.update(*id, &values, now, true) {
            return edit_error(e);
        }
    }
    let described: Vec<(Option<String>, Option<usize>)> = to_delete
        .iter()
        .filter_map(|id| {
            store
                .position(*id)
                .map(|p| describe(&org, &store, &store.records()[p]))
        })
        .collect();
    let mut names = to_delete.iter().copied().zip(described).collect::<Vec<_>>();
    names.sort_unstable_by_key(|(id, _)| *id);
    store.delete_many(to_delete, now, |rec| {
        names
            .binary_search_by_key(&rec.id, |(id, _)| *id)
            .map_or((None, None), |i| names[i].1.clone())
    });
    let created = store.generate(req.create, now);
    let ids = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>();
    reply::json(
        StatusCode::OK,
        &json!({"updated": ids(to_update), "deleted": ids(to_delete), "created": ids(&created)}),
    )
}

/// Lead fields a conversion carries over to the new Contact.
const CARRIED: &[&str] = &[
    "First_Name",
    "Last_Name",
    "Email",
    "Secondary_Email",
    "Phone",
    "Mobile",
    "Lead_Source",
    "Email_Opt_Out",
    "Description",
];

/// `POST /__emulator/leads/{id}/convert` → `{"lead_id","contact_id"}`.
pub async fn convert(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let (org, _, _) = match target(&state, "Leads", raw.as_deref()) {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let id = match record_id(&id) {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let now = state.clock.now_secs();
    // Lock order Leads then Contacts, the only place holding both.
    let mut leads = org.leads.write().unwrap_or_else(PoisonError::into_inner);
    let Some(pos) = leads.position(id) else {
        return edit_error(EditError::NotFound);
    };
    let lead = full(&org, &leads, &leads.records()[pos]);
    if lead.get("Converted__s") == Some(&Value::Bool(true)) {
        return edit_error(EditError::Invalid("lead is already converted".into()));
    }
    let values: Map<String, Value> = CARRIED
        .iter()
        .filter_map(|f| lead.get(*f).map(|v| ((*f).to_string(), v.clone())))
        .collect();
    let mut contacts = org.contacts.write().unwrap_or_else(PoisonError::into_inner);
    let contact_id = match contacts.create(&values, now) {
        Ok(cid) => cid,
        Err(e) => return edit_error(e),
    };
    if let Err(e) = leads.mark_converted(id, now, format_ts(now, org.offset)) {
        return edit_error(e);
    }
    reply::json(
        StatusCode::OK,
        &json!({"lead_id": id.to_string(), "contact_id": contact_id.to_string()}),
    )
}
