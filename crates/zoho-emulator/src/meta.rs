//! What clients read before records: `/org`, `/users`, `/settings/modules`, `/settings/fields`.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State as Shared};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::clock::format_ts;
use crate::gate::{admit, Caller};
use crate::org::Org;
use crate::params::{pairs, param, version, CrmPath};
use crate::reply;
use crate::schema::Module;
use crate::scopes::Need;
use crate::state::State;

/// Runs a metadata handler behind the gate.
async fn guarded(
    state: Arc<State>,
    path: &CrmPath,
    headers: &HeaderMap,
    need: Need,
    f: impl FnOnce(&Caller) -> Response,
) -> Response {
    if version(&path.version).is_none() {
        return reply::invalid_url();
    }
    match admit(&state, path.dc.as_deref(), headers, Some(need)).await {
        Ok(caller) => {
            let resp = f(&caller);
            caller.finish(&state, resp)
        }
        Err(resp) => resp,
    }
}

/// `GET /crm/{version}/org` (scope `ZohoCRM.org.READ`).
pub async fn org(
    Shared(state): Shared<Arc<State>>,
    Path(path): Path<CrmPath>,
    headers: HeaderMap,
) -> Response {
    let now = state.clock.now_secs();
    guarded(state, &path, &headers, Need::OrgRead, |c| {
        reply::json(StatusCode::OK, &json!({"org": [describe_org(&c.org, now)]}))
    })
    .await
}

/// The org object with the keys clients read (edition via `license_details`).
fn describe_org(org: &Org, now: i64) -> Value {
    let admin = org.admin();
    let paid = org.edition != "free";
    json!({
        "id": org.id,
        "company_name": org.company_name,
        "alias": null,
        "domain_name": format!("org{}", org.id),
        "primary_email": admin.email,
        "primary_zuid": admin.zuid.to_string(),
        "zgid": org.id,
        "time_zone": org.time_zone,
        "currency": "US Dollar",
        "currency_locale": "en_US",
        "currency_symbol": "$",
        "iso_code": "USD",
        "country_code": "US",
        "country": "United States",
        "type": "production",
        "max_per_page": 200,
        "mc_status": false,
        "gapps_enabled": false,
        "privacy_settings": false,
        "hipaa_compliance_enabled": false,
        "phone": null,
        "mobile": null,
        "fax": null,
        "website": null,
        "employee_count": null,
        "description": null,
        "street": null,
        "city": null,
        "state": null,
        "zip": null,
        "photo_id": null,
        "zia_portal_id": null,
        "license_details": {
            "paid": paid,
            "paid_type": org.edition,
            "paid_expiry": if paid { Value::String(format_ts(now + 365 * 86_400, org.offset)) } else { Value::Null },
            "trial_type": null,
            "trial_expiry": null,
            "trial_action": null,
            "users_license_purchased": org.users.len(),
        },
    })
}

/// `GET /crm/{version}/users?type=CurrentUser|AllUsers|ActiveUsers` (scope `ZohoCRM.users.READ`).
pub async fn users(
    Shared(state): Shared<Arc<State>>,
    Path(path): Path<CrmPath>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = pairs(raw.as_deref());
    guarded(state, &path, &headers, Need::UsersRead, |c| {
        let org = &c.org;
        let chosen: Vec<usize> = match param(&params, "type") {
            Some("CurrentUser") => org
                .users
                .iter()
                .position(|u| u.id == c.access.grant.user)
                .into_iter()
                .collect(),
            None | Some("AllUsers" | "ActiveUsers") => (0..org.users.len()).collect(),
            Some(_) => {
                return reply::invalid_param("type", "type must be AllUsers, ActiveUsers or CurrentUser")
            }
        };
        let users: Vec<Value> = chosen
            .into_iter()
            .filter_map(|i| org.users.get(i).map(|u| (i, u)))
            .map(|(i, u)| {
                let (role, profile) = if i == 0 { ("CEO", "Administrator") } else { ("Manager", "Standard") };
                json!({
                    "id": u.id.to_string(),
                    "full_name": u.full_name(),
                    "first_name": u.first_name,
                    "last_name": u.last_name,
                    "email": u.email,
                    "zuid": u.zuid.to_string(),
                    "status": "active",
                    "confirm": true,
                    "role": {"name": role, "id": (org.prefix * 1_000_000_000_000 + 2_300 + i as u64).to_string()},
                    "profile": {"name": profile, "id": (org.prefix * 1_000_000_000_000 + 2_400 + i as u64).to_string()},
                    "time_zone": org.time_zone,
                    "locale": "en_US",
                })
            })
            .collect();
        let count = users.len();
        reply::json(
            StatusCode::OK,
            &json!({"users": users, "info": {"per_page": 200, "count": count, "page": 1, "more_records": false}}),
        )
    })
    .await
}

/// A `/settings/modules` entry.
fn describe_module(org: &Org, module: Module) -> Value {
    let index = Module::ALL.iter().position(|m| *m == module).unwrap_or(0) as u64;
    json!({
        "id": (org.prefix * 1_000_000_000_000 + 2_500 + index).to_string(),
        "api_name": module.api_name(),
        "module_name": module.api_name(),
        "plural_label": module.api_name(),
        "singular_label": module.singular(),
        "api_supported": true,
        "generated_type": "default",
        "creatable": true,
        "editable": true,
        "deletable": true,
        "viewable": true,
        "convertable": module == Module::Leads,
        "visible": true,
        "sequence_number": index + 1,
        "modified_time": null,
    })
}

/// `GET /crm/{version}/settings/modules` (scope `ZohoCRM.settings.modules.READ`).
pub async fn modules(
    Shared(state): Shared<Arc<State>>,
    Path(path): Path<CrmPath>,
    headers: HeaderMap,
) -> Response {
    guarded(state, &path, &headers, Need::SettingsModulesRead, |c| {
        let list: Vec<Value> = Module::ALL
            .iter()
            .map(|m| describe_module(&c.org, *m))
            .collect();
        reply::json(StatusCode::OK, &json!({"modules": list}))
    })
    .await
}

/// `GET /crm/{version}/settings/modules/{api_name}`.
pub async fn module(
    Shared(state): Shared<Arc<State>>,
    Path(path): Path<CrmPath>,
    headers: HeaderMap,
) -> Response {
    let module = path.api_name.as_deref().and_then(Module::parse);
    guarded(
        state,
        &path,
        &headers,
        Need::SettingsModulesRead,
        |c| match module {
            Some(m) => reply::json(
                StatusCode::OK,
                &json!({"modules": [describe_module(&c.org, m)]}),
            ),
            None => reply::invalid_module(),
        },
    )
    .await
}

/// `GET /crm/{version}/settings/fields?module=X` (scope `ZohoCRM.settings.fields.READ`).
pub async fn fields(
    Shared(state): Shared<Arc<State>>,
    Path(path): Path<CrmPath>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = pairs(raw.as_deref());
    guarded(state, &path, &headers, Need::SettingsFieldsRead, |c| {
        let Some(name) = param(&params, "module") else {
            return reply::missing_param("module");
        };
        let Some(module) = Module::parse(name) else {
            return reply::crm_error(
                StatusCode::BAD_REQUEST,
                "INVALID_MODULE",
                "the module name given seems to be invalid",
                json!({"param_name": "module"}),
            );
        };
        let store = c.org.store(module).read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut list: Vec<Value> = module
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.is_system())
            .map(|(i, f)| f.describe(module, i))
            .collect();
        let base = module.fields().len();
        for (i, name) in store.custom_fields.iter().enumerate() {
            list.push(json!({
                "id": (5_725_767_000_000_002_000u64 + module.tag() * 100 + (base + i) as u64).to_string(),
                "api_name": name,
                "field_label": name.trim_end_matches("__c").replace('_', " "),
                "display_label": name.trim_end_matches("__c").replace('_', " "),
                "data_type": "text",
                "json_type": "string",
                "length": 255,
                "read_only": false,
                "system_mandatory": false,
                "custom_field": true,
                "visible": true,
                "lookup": {},
                "pick_list_values": [],
            }));
        }
        reply::json(StatusCode::OK, &json!({"fields": list}))
    })
    .await
}
