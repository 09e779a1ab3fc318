//! Deleted records: recycle and permanent entries, types, paging, If-Modified-Since, retention.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{envelope, status_json, str_of, Emu, Tokens, PRODUCT_SCOPE};

#[tokio::test]
async fn deleted_records_are_listed_as_zoho_shows_them() {
    let e = Emu::small(30).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let resp = e
        .crm(&t.api, "/crm/v8/Contacts/deleted", Some(&t.access), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT, "nothing deleted yet");
    let records = e.all_records("Contacts").await;
    let (a, b) = (&records[3], &records[4]);
    let del = |id: String, query: &'static str| {
        let http = e.http.clone();
        let url = format!("{}/__emulator/records/Contacts/{id}{query}", e.base);
        async move { http.delete(url).send().await.expect("delete").status() }
    };
    assert_eq!(del(str_of(&a["id"]), "").await, StatusCode::OK);
    e.advance(5).await;
    assert_eq!(
        del(str_of(&b["id"]), "?permanent=true").await,
        StatusCode::OK
    );
    assert_eq!(del("123".into(), "").await, StatusCode::NOT_FOUND);
    let t = refreshed(&e, &t).await;
    let (status, v) = e.crm_json(&t, "/crm/v8/Contacts/deleted").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v["info"],
        json!({"per_page": 200, "count": 2, "page": 1, "more_records": false})
    );
    let data = v["data"].as_array().expect("data");
    // Newest deletion first; permanent entries carry no names or users.
    assert_eq!(data[0]["id"], b["id"]);
    assert_eq!(data[0]["type"], "permanent");
    assert!(
        data[0]["display_name"].is_null()
            && data[0]["deleted_by"].is_null()
            && data[0]["created_by"].is_null()
    );
    assert_eq!(data[1]["id"], a["id"]);
    assert_eq!(data[1]["type"], "recycle");
    assert_eq!(data[1]["display_name"], a["Full_Name"]);
    assert_eq!(
        data[1]["created_by"],
        json!({"name": a["Owner"]["name"], "id": a["Owner"]["id"]})
    );
    assert_eq!(data[1]["deleted_by"]["name"], "Patricia Boyle");
    assert!(str_of(&data[1]["deleted_time"]).ends_with("+05:30"));
    let keys: Vec<&str> = data[1]
        .as_object()
        .expect("entry")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "created_by",
            "deleted_by",
            "deleted_time",
            "display_name",
            "id",
            "type"
        ]
    );
    let (_, v) = e
        .crm_json(&t, "/crm/v8/Contacts/deleted?type=recycle")
        .await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(1));
    let (_, v) = e
        .crm_json(&t, "/crm/v8/Contacts/deleted?type=permanent&per_page=1")
        .await;
    assert_eq!(v["data"][0]["id"], b["id"]);
    assert_eq!(
        e.crm_json(&t, "/crm/v8/Contacts/deleted?type=everything")
            .await,
        (
            StatusCode::BAD_REQUEST,
            envelope(
                "PATTERN_NOT_MATCHED",
                "Please check whether the input values are correct",
                json!({"param_name": "type"})
            )
        )
    );
    let (_, v) = e
        .crm_json(&t, "/crm/v8/Contacts/deleted?per_page=1&page=2")
        .await;
    assert_eq!(
        v["info"],
        json!({"per_page": 1, "count": 1, "page": 2, "more_records": false})
    );
    // If-Modified-Since: only deletions at or after it.
    let since = str_of(&data[0]["deleted_time"]);
    let (_, v) = status_json(
        e.crm(
            &t.api,
            "/crm/v8/Contacts/deleted",
            Some(&t.access),
            &[("If-Modified-Since", &since)],
        )
        .await,
    )
    .await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(1));
    let later = (chrono::DateTime::parse_from_rfc3339(&since).expect("time")
        + chrono::Duration::seconds(1))
    .to_rfc3339();
    let resp = e
        .crm(
            &t.api,
            "/crm/v8/Contacts/deleted",
            Some(&t.access),
            &[("If-Modified-Since", &later)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    // Deleted records leave the listing and the count.
    assert_eq!(
        e.crm_json(&t, "/crm/v8/Contacts/actions/count").await.1,
        json!({"count": 28})
    );
    // Recycle entries are listed 60 days, permanent ones 120.
    e.advance(61 * 86_400).await;
    let t = refreshed(&e, &t).await;
    let (_, v) = e.crm_json(&t, "/crm/v8/Contacts/deleted").await;
    assert_eq!(
        v["data"]
            .as_array()
            .map(|d| d.iter().map(|x| x["type"].clone()).collect::<Vec<_>>()),
        Some(vec![json!("permanent")])
    );
    e.advance(60 * 86_400).await;
    let t = refreshed(&e, &t).await;
    assert_eq!(
        e.crm(&t.api, "/crm/v8/Contacts/deleted", Some(&t.access), &[])
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

/// A new access token for the same refresh token (after the clock moved past the old one).
async fn refreshed(e: &Emu, t: &Tokens) -> Tokens {
    let (_, v) = e.refresh(t).await;
    Tokens {
        access: str_of(&v["access_token"]),
        ..t.clone()
    }
}
