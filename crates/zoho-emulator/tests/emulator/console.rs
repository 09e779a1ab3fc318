//! The console: orgs, record edits, mutation, lead conversion, stats.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{status_json, str_of, Emu, PRODUCT_SCOPE};

#[tokio::test]
async fn orgs_have_their_own_data_and_clients() {
    let e = Emu::small(10).await;
    let (status, small) = e.post("/__emulator/orgs", json!({"contacts": 25, "leads": 3, "seed": 9, "edition": "free", "time_zone": "America/Los_Angeles"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let org_id = str_of(&small["org_id"]);
    assert_ne!(org_id, e.emu.default_org_id());
    let t = e.tokens_for(json!({"org_id": org_id}), PRODUCT_SCOPE).await;
    assert_eq!(
        e.crm_json(&t, "/crm/v8/Contacts/actions/count").await.1,
        json!({"count": 25})
    );
    let (_, v) = e.crm_json(&t, "/crm/v8/org").await;
    assert_eq!(v["org"][0]["id"], json!(org_id));
    assert_eq!(v["org"][0]["license_details"]["paid"], false);
    let (_, v) = e
        .crm_json(&t, "/crm/v8/Contacts?fields=Modified_Time&per_page=1")
        .await;
    assert!(str_of(&v["data"][0]["Modified_Time"]).ends_with("-08:00"));
    let (_, list) = e.get("/__emulator/orgs").await;
    assert_eq!(list["orgs"].as_array().map(Vec::len), Some(2));
    let (_, records) = e
        .get(&format!("/__emulator/records/Contacts?org_id={org_id}"))
        .await;
    assert_eq!(records["records"].as_array().map(Vec::len), Some(25));
    for bad in [
        json!({"edition": "platinum"}),
        json!({"time_zone": "Mars/Base"}),
        json!({"contacts": "many"}),
        json!({"colour": 1}),
    ] {
        let (status, v) = e.post("/__emulator/orgs", bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {v}");
    }
    let (status, _) = e
        .post("/__emulator/self-clients", json!({"org_id": "404"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn console_edits_show_up_in_the_api() {
    let e = Emu::small(10).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let (status, v) = e
        .post("/__emulator/records/Contacts", json!({"records": [{"Last_Name": "Ng", "Email": "ng@example.com", "Pledge_Tier__c": "gold"}]}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = str_of(&v["ids"][0]);
    let (_, page) = e
        .crm_json(
            &t,
            "/crm/v8/Contacts?fields=Email,Pledge_Tier__c,First_Name&per_page=1",
        )
        .await;
    assert_eq!(
        page["data"][0],
        json!({"id": id, "Email": "ng@example.com", "Pledge_Tier__c": "gold", "First_Name": null})
    );
    let (_, fields) = e.get("/__emulator/records/Contacts").await;
    assert_eq!(fields["records"].as_array().map(Vec::len), Some(11));
    // PATCH bumps Modified_Time to the emulator clock; ?touch=false leaves it (a formula field).
    e.advance(3600).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let patch = |query: &'static str, body: Value| {
        let (http, url) = (
            e.http.clone(),
            format!("{}/__emulator/records/Contacts/{id}{query}", e.base),
        );
        async move { status_json(http.patch(url).json(&body).send().await.expect("patch")).await }
    };
    let (status, v) = patch("", json!({"Email": "NG@example.com"})).await;
    assert_eq!(status, StatusCode::OK);
    let touched = str_of(&v["record"]["Modified_Time"]);
    let (_, v) = patch("?touch=false", json!({"Pledge_Tier__c": "silver"})).await;
    assert_eq!(v["record"]["Modified_Time"], json!(touched));
    assert_eq!(v["record"]["Pledge_Tier__c"], "silver");
    let (status, v) = patch("", json!({"Full_Name": "x"})).await;
    assert_eq!(
        (status, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_record"))
    );
    let (status, _) = patch("", json!({"Bad Field": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let resp = e
        .http
        .patch(format!("{}/__emulator/records/Contacts/42", e.base))
        .json(&json!({"Email": "x"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let (status, _) = e
        .post(
            "/__emulator/records/Contacts",
            json!({"records": [{"Email": "no-last-name@example.com"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "Last_Name is mandatory");
    let (status, _) = e
        .post("/__emulator/records/Deals", json!({"generate": 1}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, page) = e
        .crm_json(&t, "/crm/v8/Contacts?fields=Email,Modified_Time&per_page=1")
        .await;
    assert_eq!(page["data"][0]["Email"], "NG@example.com");
    assert_eq!(page["data"][0]["Modified_Time"], json!(touched));
}

#[tokio::test]
async fn mutate_changes_a_share_at_once() {
    let e = Emu::small(100).await;
    let before = e.all_records("Contacts").await;
    e.advance(60).await;
    let (status, v) = e
        .post(
            "/__emulator/records/Contacts/mutate",
            json!({"update": 6, "delete": 4, "create": 5, "seed": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let after = e.all_records("Contacts").await;
    assert_eq!(after.len(), 101);
    let find = |id: &Value| after.iter().find(|r| r["id"] == *id).cloned();
    let updated = v["updated"].as_array().expect("updated");
    assert_eq!(updated.len(), 6);
    for id in updated {
        let old = before.iter().find(|r| r["id"] == *id).expect("existed");
        let new = find(id).expect("still there");
        assert_ne!(old["Modified_Time"], new["Modified_Time"]);
        assert_eq!(new["Description"], "Updated by mutate (seed 3)");
    }
    for id in v["deleted"].as_array().expect("deleted") {
        assert!(find(id).is_none());
    }
    assert_eq!(v["created"].as_array().map(Vec::len), Some(5));
    let t = e.tokens(PRODUCT_SCOPE).await;
    let (_, deleted) = e.crm_json(&t, "/crm/v8/Contacts/deleted").await;
    assert_eq!(deleted["data"].as_array().map(Vec::len), Some(4));
    // The same seed on the same data picks the same records.
    let twin = Emu::small(100).await;
    let (_, w) = twin
        .post(
            "/__emulator/records/Contacts/mutate",
            json!({"update": 6, "delete": 4, "seed": 3}),
        )
        .await;
    assert_eq!(
        (&w["updated"], &w["deleted"]),
        (&v["updated"], &v["deleted"])
    );
    let (status, _) = e
        .post(
            "/__emulator/records/Contacts/mutate",
            json!({"delete": 1000}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn converting_a_lead_marks_it_and_creates_a_contact() {
    let e = Emu::small(10).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let lead = e
        .all_records("Leads")
        .await
        .into_iter()
        .find(|l| l["Email"].is_string())
        .expect("a lead with email");
    let id = str_of(&lead["id"]);
    let (status, v) = e
        .post(&format!("/__emulator/leads/{id}/convert"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let contact_id = v["contact_id"].clone();
    let (status, v) = e
        .post(&format!("/__emulator/leads/{id}/convert"), json!({}))
        .await;
    assert_eq!(
        (status, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_record"))
    );
    let contacts = e.all_records("Contacts").await;
    let contact = contacts
        .iter()
        .find(|c| c["id"] == contact_id)
        .expect("contact");
    assert_eq!(contact["Email"], lead["Email"]);
    assert_eq!(contact["Last_Name"], lead["Last_Name"]);
    // The lead leaves the default listing and the default count, but is not a deleted record.
    let (_, page) = e
        .crm_json(&t, "/crm/v8/Leads?fields=Email,Converted__s")
        .await;
    assert!(page["data"]
        .as_array()
        .expect("data")
        .iter()
        .all(|l| l["id"] != json!(id)));
    assert_eq!(
        e.crm_json(&t, "/crm/v8/Leads/actions/count").await.1,
        json!({"count": 19})
    );
    let (_, page) = e
        .crm_json(
            &t,
            "/crm/v8/Leads?fields=Email,Converted__s,Converted_Date_Time&converted=true",
        )
        .await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["data"][0]["Converted__s"], true);
    assert!(page["data"][0]["Converted_Date_Time"].is_string());
    assert_eq!(
        e.crm_json(&t, "/crm/v8/Leads?fields=Email&converted=both")
            .await
            .1["info"]["count"],
        20
    );
    assert_eq!(
        e.crm(&t.api, "/crm/v8/Leads/deleted", Some(&t.access), &[])
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let (_, v) = e.get("/__emulator/records/Leads?converted=false").await;
    assert_eq!(v["records"].as_array().map(Vec::len), Some(19));
}

#[tokio::test]
async fn stats_count_tokens_calls_and_credits() {
    let e = Emu::small(10).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    e.refresh(&t).await;
    e.refresh(&t).await;
    e.crm_json(&t, "/crm/v8/Contacts?fields=Email").await;
    e.crm_json(&t, "/crm/v8/Contacts?fields=Email&per_page=3")
        .await;
    e.crm_json(&t, "/crm/v8/Contacts").await;
    e.crm(&t.api, "/crm/v8/Contacts?fields=Email", None, &[])
        .await;
    e.crm_json(&t, "/crm/v8/Contacts/actions/count").await;
    e.crm_json(&t, "/crm/v8/org").await;
    let s = e.stats().await;
    assert_eq!(s["codes_exchanged"], 1);
    assert_eq!(s["token_refreshes"], 2);
    assert_eq!(s["access_tokens_issued"], 3);
    assert_eq!(s["refresh_tokens_issued"], 1);
    assert_eq!(s["grant_codes_issued"], 1);
    assert_eq!(
        s["api_calls"]["GET /crm/v8/{module}"],
        json!({"200": 2, "400": 1, "401": 1})
    );
    assert_eq!(
        s["api_calls"]["GET /crm/v8/{module}/actions/count"],
        json!({"200": 1})
    );
    assert_eq!(s["api_calls"]["GET /crm/v8/org"], json!({"200": 1}));
    assert_eq!(s["api_calls"]["POST /oauth/v2/token"], json!({"200": 3}));
    assert_eq!(s["credits_used"], 4);
    assert_eq!(s["records_served"], 13);
    let org = &s["orgs"][e.emu.default_org_id()];
    assert_eq!(
        (org["api_calls"].clone(), org["credits_used"].clone()),
        (json!(5), json!(4))
    );
    assert!(s["api_calls"]
        .as_object()
        .expect("map")
        .keys()
        .all(|k| !k.contains("__emulator")));
    let (status, _) = e.post("/__emulator/stats/reset", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let s = e.stats().await;
    assert_eq!(
        (s["token_refreshes"].clone(), s["api_calls"].clone()),
        (json!(0), json!({}))
    );
    let (status, v) = e.get("/__emulator/nothing-here").await;
    assert_eq!(
        (status, v["error"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
}
