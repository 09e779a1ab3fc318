//! Org, users, settings and counts, and the scopes each needs.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{envelope, str_of, Emu, PRODUCT_SCOPE};

#[tokio::test]
async fn product_scope_reads_org_and_counts_but_not_settings_or_users() {
    let e = Emu::small(37).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let (status, v) = e.crm_json(&t, "/crm/v8/org").await;
    assert_eq!(status, StatusCode::OK);
    let org = &v["org"][0];
    assert_eq!(org["id"], json!(e.emu.default_org_id()));
    assert_eq!(org["time_zone"], "Asia/Kolkata");
    assert_eq!(org["max_per_page"], 200);
    assert_eq!(org["type"], "production");
    assert_eq!(org["license_details"]["paid_type"], "enterprise");
    assert_eq!(org["license_details"]["paid"], true);
    assert!(org["company_name"].is_string() && org["primary_email"].is_string());
    assert_eq!(
        e.crm_json(&t, "/crm/v8/Contacts/actions/count").await,
        (StatusCode::OK, json!({"count": 37}))
    );
    assert_eq!(
        e.crm_json(&t, "/crm/v8/Leads/actions/count").await,
        (StatusCode::OK, json!({"count": 20}))
    );
    let mismatch = (
        StatusCode::UNAUTHORIZED,
        envelope(
            "OAUTH_SCOPE_MISMATCH",
            "invalid oauth scope to access this URL",
            json!({}),
        ),
    );
    for path in [
        "/crm/v8/settings/modules",
        "/crm/v8/settings/modules/Contacts",
        "/crm/v8/settings/fields?module=Contacts",
        "/crm/v8/users?type=CurrentUser",
    ] {
        assert_eq!(e.crm_json(&t, path).await, mismatch, "{path}");
    }
    // Without ZohoCRM.org.READ the org is out of reach.
    let records_only = e.tokens("ZohoCRM.modules.ALL").await;
    assert_eq!(e.crm_json(&records_only, "/crm/v8/org").await, mismatch);
    assert_eq!(
        e.crm_json(&records_only, "/crm/v8/Leads/deleted").await.0,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn metadata_endpoints_for_tokens_with_their_scopes() {
    let e = Emu::small(5).await;
    let t = e
        .tokens("ZohoCRM.settings.modules.READ,ZohoCRM.settings.fields.READ,ZohoCRM.users.READ,ZohoCRM.modules.contacts.READ")
        .await;
    let (status, v) = e.crm_json(&t, "/crm/v8/settings/modules").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<String> = v["modules"]
        .as_array()
        .expect("modules")
        .iter()
        .map(|m| str_of(&m["api_name"]))
        .collect();
    assert_eq!(names, ["Leads", "Contacts"]);
    assert!(v["modules"]
        .as_array()
        .expect("modules")
        .iter()
        .all(|m| m["api_supported"] == true));
    let (_, v) = e.crm_json(&t, "/crm/v8/settings/modules/Leads").await;
    assert_eq!(v["modules"][0]["singular_label"], "Lead");
    assert_eq!(
        e.crm_json(&t, "/crm/v8/settings/modules/Deals").await.0,
        StatusCode::BAD_REQUEST
    );
    let (_, v) = e
        .crm_json(&t, "/crm/v8/settings/fields?module=Contacts")
        .await;
    let fields = v["fields"].as_array().expect("fields");
    let email = fields
        .iter()
        .find(|f| f["api_name"] == "Email")
        .expect("Email field");
    assert_eq!(
        (email["data_type"].clone(), email["json_type"].clone()),
        (json!("email"), json!("string"))
    );
    let last = fields
        .iter()
        .find(|f| f["api_name"] == "Last_Name")
        .expect("Last_Name field");
    assert_eq!(last["system_mandatory"], true);
    assert!(fields
        .iter()
        .all(|f| !str_of(&f["api_name"]).starts_with('$')));
    assert_eq!(
        e.crm_json(&t, "/crm/v8/settings/fields").await,
        (
            StatusCode::BAD_REQUEST,
            envelope(
                "REQUIRED_PARAM_MISSING",
                "required param is missing",
                json!({"param_name": "module"})
            )
        )
    );
    let (_, v) = e.crm_json(&t, "/crm/v8/users?type=CurrentUser").await;
    assert_eq!(v["users"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["users"][0]["full_name"], "Patricia Boyle");
    assert_eq!(v["users"][0]["profile"]["name"], "Administrator");
    assert_eq!(v["info"]["count"], 1);
    let (_, v) = e.crm_json(&t, "/crm/v8/users").await;
    assert_eq!(v["users"].as_array().map(Vec::len), Some(3));
    // A module-specific scope reads that module only.
    assert_eq!(
        e.crm_json(&t, "/crm/v8/Contacts?fields=Email").await.0,
        StatusCode::OK
    );
    assert_eq!(
        e.crm_json(&t, "/crm/v8/Leads?fields=Email").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        e.crm_json(&t, "/crm/v8/org").await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn count_filters() {
    let e = Emu::small(200).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let records = e.all_records("Contacts").await;
    let email = records
        .iter()
        .find_map(|r| {
            r["Email"]
                .as_str()
                .filter(|e| e.contains('@') && !e.starts_with(' '))
        })
        .expect("an email");
    let wanted = email.trim().to_lowercase();
    let expected = records
        .iter()
        .filter(|r| {
            ["Email", "Secondary_Email"].iter().any(|f| {
                r[*f]
                    .as_str()
                    .is_some_and(|v| v.trim().to_lowercase() == wanted)
            })
        })
        .count();
    let (status, v) = e
        .crm_json(&t, &format!("/crm/v8/Contacts/actions/count?email={email}"))
        .await;
    assert_eq!((status, v), (StatusCode::OK, json!({ "count": expected })));
    assert_eq!(
        e.crm_json(&t, "/crm/v8/Contacts/actions/count?email=a@b.c&word=x")
            .await,
        (
            StatusCode::BAD_REQUEST,
            envelope(
                "AMBIGUITY_DURING_PROCESSING",
                "ambiguity while processing the request",
                json!({"ambiguity_due_to": ["email", "word"]})
            )
        )
    );
    assert_eq!(
        e.crm_json(&t, "/crm/v8/Nope/actions/count").await.0,
        StatusCode::BAD_REQUEST
    );
}
