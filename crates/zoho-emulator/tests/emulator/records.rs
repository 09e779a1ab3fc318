//! Get Records: fields, shapes, sorting, If-Modified-Since, 204/304, v2 (errors: errors.rs).

use reqwest::StatusCode;
use serde_json::json;
use zoho_emulator::EmulatorConfig;

use crate::support::{status_json, str_of, Emu, PRODUCT_SCOPE};

/// Whether `t` looks like `2025-03-07T10:15:00+05:30`.
fn zoho_time(t: &str) -> bool {
    t.len() == 25
        && t.as_bytes()[10] == b'T'
        && t.ends_with("+05:30")
        && chrono::DateTime::parse_from_rfc3339(t).is_ok()
}

#[tokio::test]
async fn records_hold_id_and_requested_fields_only() {
    let e = Emu::small(300).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let resp = e
        .crm(
            &t.api,
            "/crm/v8/Contacts?fields=Email,Last_Name,Modified_Time,Owner,Mailing_Country",
            Some(&t.access),
            &[],
        )
        .await;
    assert_eq!(
        resp.headers()["content-type"],
        "application/json;charset=UTF-8"
    );
    let (status, v) = status_json(resp).await;
    assert_eq!(status, StatusCode::OK);
    let data = v["data"].as_array().expect("data");
    assert_eq!(data.len(), 200);
    for r in data {
        let keys: Vec<&str> = r
            .as_object()
            .expect("record")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 6, "{r}");
        let id = str_of(&r["id"]);
        assert!(
            id.len() == 19 && id.chars().all(|c| c.is_ascii_digit()),
            "{id}"
        );
        assert!(r["Email"].is_null() || r["Email"].is_string());
        assert!(zoho_time(&str_of(&r["Modified_Time"])), "{r}");
        assert!(
            r["Owner"]["id"].is_string()
                && r["Owner"]["name"].is_string()
                && r["Owner"]["email"].is_string()
        );
    }
    assert!(
        data.iter().any(|r| r["Email"].is_null()),
        "some emails are missing"
    );
    assert!(data.iter().any(|r| r["Mailing_Country"].is_null()));
    let info = &v["info"];
    let expected_keys = [
        "call",
        "count",
        "email",
        "more_records",
        "next_page_token",
        "page",
        "page_token_expiry",
        "per_page",
        "previous_page_token",
        "sort_by",
        "sort_order",
    ];
    assert_eq!(
        info.as_object()
            .expect("info")
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        expected_keys
    );
    assert_eq!(
        (
            &info["call"],
            &info["per_page"],
            &info["count"],
            &info["page"],
            &info["sort_by"],
            &info["sort_order"],
            &info["email"]
        ),
        (
            &json!(false),
            &json!(200),
            &json!(200),
            &json!(1),
            &json!("id"),
            &json!("desc"),
            &json!(false)
        )
    );
    assert_eq!(info["more_records"], true);
    assert!(str_of(&info["next_page_token"]).len() <= 96);
    assert!(info["previous_page_token"].is_null());
    assert!(zoho_time(&str_of(&info["page_token_expiry"])));
    // Default order: id descending.
    let ids: Vec<u64> = data
        .iter()
        .map(|r| str_of(&r["id"]).parse().expect("id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]));
}

#[tokio::test]
async fn sorting_and_if_modified_since_with_inclusive_boundary() {
    let e = Emu::small(150).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let (_, v) = e.crm_json(&t, "/crm/v8/Contacts?fields=Modified_Time,Created_Time&sort_by=Modified_Time&sort_order=asc").await;
    let data = v["data"].as_array().expect("data");
    assert_eq!(v["info"]["sort_by"], "Modified_Time");
    assert_eq!(v["info"]["sort_order"], "asc");
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = data
        .iter()
        .map(|r| chrono::DateTime::parse_from_rfc3339(&str_of(&r["Modified_Time"])).expect("time"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let (_, v) = e
        .crm_json(
            &t,
            "/crm/v8/Contacts?fields=Created_Time&sort_by=Created_Time",
        )
        .await;
    let created: Vec<String> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| str_of(&r["Created_Time"]))
        .collect();
    assert!(created
        .windows(2)
        .all(|w| chrono::DateTime::parse_from_rfc3339(&w[0]).ok()
            >= chrono::DateTime::parse_from_rfc3339(&w[1]).ok()));
    // If-Modified-Since is inclusive: a record modified exactly then is included.
    let pivot = times[100];
    let path = "/crm/v8/Contacts?fields=Modified_Time&sort_by=Modified_Time&sort_order=asc";
    let at = pivot.to_rfc3339();
    let (status, v) = status_json(
        e.crm(&t.api, path, Some(&t.access), &[("If-Modified-Since", &at)])
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let first = chrono::DateTime::parse_from_rfc3339(&str_of(&v["data"][0]["Modified_Time"]))
        .expect("time");
    assert_eq!(first, pivot);
    let expected = times.iter().filter(|t| **t >= pivot).count();
    assert_eq!(v["data"].as_array().map(Vec::len), Some(expected));
    let after = (pivot + chrono::Duration::seconds(1)).to_rfc3339();
    let (_, v) = status_json(
        e.crm(
            &t.api,
            path,
            Some(&t.access),
            &[("If-Modified-Since", &after)],
        )
        .await,
    )
    .await;
    assert_eq!(
        v["data"].as_array().map(Vec::len),
        Some(times.iter().filter(|t| **t > pivot).count())
    );
    // Nothing modified since: 304 without a body; 204 by knob.
    let future = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let resp = e
        .crm(
            &t.api,
            path,
            Some(&t.access),
            &[("If-Modified-Since", &future)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert!(resp.bytes().await.expect("body").is_empty());
    e.knobs(json!({"not_modified_status": 204})).await;
    let resp = e
        .crm(
            &t.api,
            path,
            Some(&t.access),
            &[("If-Modified-Since", &future)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = e
        .crm(
            &t.api,
            path,
            Some(&t.access),
            &[("If-Modified-Since", "last tuesday")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // Edits through the console move a record past the boundary.
    let id = str_of(&e.all_records("Contacts").await[0]["id"]);
    e.advance(3 * 86_400).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let resp = e
        .http
        .patch(format!("{}/__emulator/records/Contacts/{id}", e.base))
        .json(&json!({"Phone": "+1 555 0100"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, v) = status_json(
        e.crm(
            &t.api,
            path,
            Some(&t.access),
            &[("If-Modified-Since", &future)],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["data"][0]["id"], json!(id));
}

#[tokio::test]
async fn empty_module_is_204_without_body() {
    let e = Emu::start(EmulatorConfig {
        contacts: 0,
        leads: 0,
        ..Default::default()
    })
    .await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let resp = e
        .crm(&t.api, "/crm/v8/Leads?fields=Email", Some(&t.access), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.headers().get("content-type").is_none());
    assert!(resp.bytes().await.expect("body").is_empty());
    assert_eq!(
        e.crm_json(&t, "/crm/v8/Leads/actions/count").await,
        (StatusCode::OK, json!({"count": 0}))
    );
}

#[tokio::test]
async fn v2_serves_all_fields_without_the_page_cap() {
    let e = Emu::small(2_300).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let (status, v) = e
        .crm_json(&t, "/crm/v2/Contacts?per_page=200&page=11")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v["info"],
        json!({"per_page": 200, "count": 200, "page": 11, "more_records": true})
    );
    let record = v["data"][0].as_object().expect("record");
    for field in [
        "Email",
        "First_Name",
        "Last_Name",
        "Full_Name",
        "Owner",
        "Modified_Time",
        "Email_Opt_Out",
        "Mailing_Country",
        "$approved",
    ] {
        assert!(record.contains_key(field), "{field} missing from v2 record");
    }
    let (_, v) = e
        .crm_json(&t, "/crm/v2/Contacts?fields=Email&page=12")
        .await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(100));
    assert_eq!(v["data"][0].as_object().map(|o| o.len()), Some(2));
    let console = e.all_records("Contacts").await;
    let oldest = console.first().expect("records");
    assert_eq!(v["data"][99]["id"], oldest["id"]);
    assert_eq!(v["data"][99]["Email"], oldest["Email"]);
}

#[tokio::test]
async fn data_has_the_promised_mix() {
    let e = Emu::small(2_000).await;
    let records = e.all_records("Contacts").await;
    assert_eq!(records.len(), 2_000);
    let emails: Vec<Option<&str>> = records.iter().map(|r| r["Email"].as_str()).collect();
    assert!(emails.iter().filter(|e| e.is_none()).count() > 40);
    assert!(
        emails
            .iter()
            .flatten()
            .any(|e| !e.contains('@') || e.ends_with('@')),
        "malformed emails"
    );
    assert!(
        emails
            .iter()
            .flatten()
            .any(|e| e.starts_with(' ') || e.chars().any(char::is_uppercase)),
        "sloppy variants"
    );
    let mut normalized: Vec<String> = emails
        .iter()
        .flatten()
        .map(|e| e.trim().to_lowercase())
        .collect();
    let n = normalized.len();
    normalized.sort();
    normalized.dedup();
    assert!(n - normalized.len() > 50, "duplicates across records");
    assert!(records.iter().any(|r| r["Email_Opt_Out"] == true));
    assert!(
        records.iter().any(|r| !str_of(&r["Last_Name"]).is_ascii()),
        "unicode names"
    );
    // Same seed, same data; another seed, other data.
    let again = Emu::small(2_000).await.all_records("Contacts").await;
    assert_eq!(
        records
            .iter()
            .map(|r| (&r["id"], &r["Email"], &r["Last_Name"]))
            .collect::<Vec<_>>(),
        again
            .iter()
            .map(|r| (&r["id"], &r["Email"], &r["Last_Name"]))
            .collect::<Vec<_>>()
    );
    let other = Emu::start(EmulatorConfig {
        contacts: 2_000,
        seed: 7,
        ..Default::default()
    })
    .await
    .all_records("Contacts")
    .await;
    assert_ne!(
        records.iter().map(|r| &r["Email"]).collect::<Vec<_>>(),
        other.iter().map(|r| &r["Email"]).collect::<Vec<_>>()
    );
}
