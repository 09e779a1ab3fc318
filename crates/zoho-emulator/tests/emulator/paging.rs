//! Paging: page then page_token through everything, every paging error, offsets under change.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{envelope, str_of, Emu, Tokens, PRODUCT_SCOPE};

/// The ids of a page.
fn ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .map_or(Vec::new(), |d| d.iter().map(|r| str_of(&r["id"])).collect())
}

#[tokio::test]
async fn pages_then_tokens_reach_every_record_exactly_once() {
    let e = Emu::small(2_345).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let fields = "Email,First_Name,Last_Name,Email_Opt_Out,Modified_Time";
    let mut seen: Vec<Value> = Vec::new();
    let mut token = None;
    for page in 1..=10 {
        let (status, v) = e
            .crm_json(
                &t,
                &format!("/crm/v8/Contacts?fields={fields}&per_page=200&page={page}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["info"]["page"], page);
        assert!(
            v["info"]["next_page_token"].is_string(),
            "tokens are issued from page 1"
        );
        seen.extend(v["data"].as_array().cloned().unwrap_or_default());
        token = Some(str_of(&v["info"]["next_page_token"]));
    }
    let mut calls = 0;
    while let Some(tok) = token.take() {
        let (status, v) = e
            .crm_json(
                &t,
                &format!("/crm/v8/Contacts?fields={fields}&per_page=200&page_token={tok}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        calls += 1;
        assert_eq!(v["info"]["page"], 10 + calls);
        assert!(v["info"]["previous_page_token"].is_string());
        seen.extend(v["data"].as_array().cloned().unwrap_or_default());
        if v["info"]["more_records"] == true {
            token = Some(str_of(&v["info"]["next_page_token"]));
        } else {
            assert!(v["info"]["next_page_token"].is_null());
        }
    }
    assert_eq!(calls, 2);
    let mut console = e.all_records("Contacts").await;
    console.reverse();
    assert_eq!(seen.len(), console.len());
    for (api, all) in seen.iter().zip(&console) {
        for key in [
            "id",
            "Email",
            "First_Name",
            "Last_Name",
            "Email_Opt_Out",
            "Modified_Time",
        ] {
            assert_eq!(api[key], all[key], "{key} of {}", all["id"]);
        }
    }
}

#[tokio::test]
async fn page_limit_and_ambiguity() {
    let e = Emu::small(2_500).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let limit = envelope(
        "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
        "You can only get the first 2000 records using the page param. Use page_token to get more records",
        json!({"limit": 2000}),
    );
    assert_eq!(
        e.crm_json(&t, "/crm/v8/Contacts?fields=Email&page=11")
            .await,
        (StatusCode::BAD_REQUEST, limit.clone())
    );
    assert_eq!(
        e.crm_json(&t, "/crm/v8/Contacts?fields=Email&per_page=150&page=14")
            .await,
        (StatusCode::BAD_REQUEST, limit)
    );
    assert_eq!(
        e.crm_json(&t, "/crm/v8/Contacts?fields=Email&per_page=150&page=13")
            .await
            .0,
        StatusCode::OK
    );
    let (_, first) = e.crm_json(&t, "/crm/v8/Contacts?fields=Email").await;
    let tok = str_of(&first["info"]["next_page_token"]);
    assert_eq!(
        e.crm_json(
            &t,
            &format!("/crm/v8/Contacts?fields=Email&page=2&page_token={tok}")
        )
        .await,
        (
            StatusCode::BAD_REQUEST,
            envelope(
                "AMBIGUITY_DURING_PROCESSING",
                "ambiguity while processing the request",
                json!({"ambiguity_due_to": ["page", "page_token"]})
            )
        )
    );
}

#[tokio::test]
async fn tokens_are_bound_to_params_and_user_and_expire() {
    let e = Emu::small(500).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let (_, first) = e
        .crm_json(
            &t,
            "/crm/v8/Contacts?fields=Email,Last_Name&per_page=100&sort_order=desc",
        )
        .await;
    let tok = str_of(&first["info"]["next_page_token"]);
    let mismatch = envelope(
        "TOKEN_BOUND_DATA_MISMATCH",
        "The page_token given seems to be invalid or input param is added or altered or deleted",
        json!({"param_name": "page_token"}),
    );
    // The same parameters in another order are fine.
    let same = format!(
        "/crm/v8/Contacts?sort_order=desc&page_token={tok}&per_page=100&fields=Email,Last_Name"
    );
    let (status, v) = e.crm_json(&t, &same).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["info"]["page"], 2);
    for changed in [
        format!("/crm/v8/Contacts?fields=Email,Last_Name&per_page=50&sort_order=desc&page_token={tok}"),
        format!("/crm/v8/Contacts?fields=Email&per_page=100&sort_order=desc&page_token={tok}"),
        format!("/crm/v8/Contacts?fields=Email,Last_Name&per_page=100&page_token={tok}"),
        format!("/crm/v8/Contacts?fields=Email,Last_Name&per_page=100&sort_order=desc&sort_by=id&page_token={tok}"),
        format!("/crm/v8/Leads?fields=Email,Last_Name&per_page=100&sort_order=desc&page_token={tok}"),
    ] {
        assert_eq!(e.crm_json(&t, &changed).await, (StatusCode::BAD_REQUEST, mismatch.clone()), "{changed}");
    }
    let invalid = envelope(
        "INVALID_DATA",
        "the page_token given seems to be invalid",
        json!({"param_name": "page_token"}),
    );
    for garbage in ["c8582xx9e7c7", "00", &tok[..tok.len() - 2]] {
        let path = format!("/crm/v8/Contacts?fields=Email,Last_Name&per_page=100&sort_order=desc&page_token={garbage}");
        assert_eq!(
            e.crm_json(&t, &path).await,
            (StatusCode::BAD_REQUEST, invalid.clone())
        );
    }
    // Another org's user cannot use it.
    let (_, org) = e
        .post("/__emulator/orgs", json!({"contacts": 300, "seed": 5}))
        .await;
    let other = e
        .tokens_for(json!({"org_id": org["org_id"]}), PRODUCT_SCOPE)
        .await;
    let path = format!(
        "/crm/v8/Contacts?fields=Email,Last_Name&per_page=100&sort_order=desc&page_token={tok}"
    );
    assert_eq!(
        e.crm_json(&other, &path).await,
        (StatusCode::BAD_REQUEST, invalid)
    );
    // 24 hours later the token is dead (the user gets a new access token meanwhile).
    e.advance(24 * 3600).await;
    let (_, fresh) = e.refresh(&t).await;
    let t = Tokens {
        access: str_of(&fresh["access_token"]),
        ..t
    };
    assert_eq!(
        e.crm_json(&t, &path).await,
        (
            StatusCode::BAD_REQUEST,
            envelope(
                "EXPIRED_VALUE",
                "the page_token has expired",
                json!({"api_name": "page_token", "json_path": "$.query.page_token"})
            )
        )
    );
}

#[tokio::test]
async fn token_navigation_stops_at_100000_records() {
    let e = Emu::small(5).await;
    let (_, org) = e
        .post("/__emulator/orgs", json!({"contacts": 100_250, "seed": 1}))
        .await;
    let t = e
        .tokens_for(json!({"org_id": org["org_id"]}), PRODUCT_SCOPE)
        .await;
    let base = "/crm/v8/Contacts?fields=Last_Name&per_page=200";
    let (_, mut v) = e.crm_json(&t, base).await;
    for _ in 1..500 {
        let tok = str_of(&v["info"]["next_page_token"]);
        let (status, next) = e.crm_json(&t, &format!("{base}&page_token={tok}")).await;
        assert_eq!(status, StatusCode::OK);
        v = next;
    }
    assert_eq!(v["info"]["page"], 500);
    assert_eq!(v["info"]["more_records"], true);
    let tok = str_of(&v["info"]["next_page_token"]);
    assert_eq!(
        e.crm_json(&t, &format!("{base}&page_token={tok}")).await,
        (
            StatusCode::BAD_REQUEST,
            envelope(
                "PAGINATION_LIMIT_EXCEEDED",
                "You can only get upto 100000 records using page_token param",
                json!({"limit": 100000})
            )
        )
    );
}

#[tokio::test]
async fn offset_pages_shift_when_records_come_and_go() {
    let e = Emu::small(40).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let page = |n: usize| {
        let (e, t) = (&e, &t);
        async move {
            ids(&e
                .crm_json(
                    t,
                    &format!("/crm/v8/Contacts?fields=Email&per_page=5&page={n}"),
                )
                .await
                .1)
        }
    };
    let before1 = page(1).await;
    let before2 = page(2).await;
    // Delete the newest record: everything moves up by one.
    let resp = e
        .http
        .delete(format!(
            "{}/__emulator/records/Contacts/{}",
            e.base, before1[0]
        ))
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), StatusCode::OK);
    let after2 = page(2).await;
    assert_eq!(after2[..4], before2[1..]);
    let after1 = page(1).await;
    assert_eq!(
        after1[4], before2[0],
        "the first of page 2 slid onto page 1"
    );
    // Add two: the newest ids come first, everything moves down by two.
    let (status, v) = e
        .post("/__emulator/records/Contacts", json!({"generate": 2}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut new_ids: Vec<String> = v["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(str_of)
        .collect();
    new_ids.reverse();
    assert_eq!(page(1).await[..2], new_ids[..]);
    let shifted = page(2).await;
    assert_eq!(shifted[..2], after1[3..]);
    assert_eq!(shifted[2..], after2[..3]);
    // A page token carries an offset too, so it shifts the same way.
    let (_, v) = e
        .crm_json(&t, "/crm/v8/Contacts?fields=Email&per_page=5")
        .await;
    let tok = str_of(&v["info"]["next_page_token"]);
    let expected_next = page(2).await;
    let first = ids(&v)[0].clone();
    let resp = e
        .http
        .delete(format!("{}/__emulator/records/Contacts/{first}", e.base))
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, next) = e
        .crm_json(
            &t,
            &format!("/crm/v8/Contacts?fields=Email&per_page=5&page_token={tok}"),
        )
        .await;
    assert_eq!(ids(&next)[..4], expected_next[1..]);
}
