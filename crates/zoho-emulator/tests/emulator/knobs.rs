//! Knobs: latency, concurrency 429, credits, injected 500s, dropped connections, validation.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use zoho_emulator::EmulatorConfig;

use crate::support::{envelope, status_json, Emu, PRODUCT_SCOPE};

const PATH: &str = "/crm/v8/Contacts?fields=Email&per_page=5";

#[tokio::test]
async fn latency_applies_to_accounts_and_crm() {
    let e = Emu::start(EmulatorConfig {
        contacts: 5,
        latency_ms: 120,
        ..Default::default()
    })
    .await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let start = Instant::now();
    assert_eq!(e.crm_json(&t, PATH).await.0, StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_millis(120));
    let start = Instant::now();
    e.refresh(&t).await;
    assert!(start.elapsed() >= Duration::from_millis(120));
    e.knobs(json!({"latency_ms": 0})).await;
    let start = Instant::now();
    e.crm_json(&t, PATH).await;
    assert!(start.elapsed() < Duration::from_millis(120));
}

#[tokio::test]
async fn concurrency_limit_answers_429_per_org_and_client() {
    let e = Emu::small(5).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let other = e.tokens(PRODUCT_SCOPE).await;
    e.knobs(json!({"concurrency_limit": 2, "latency_ms": 400}))
        .await;
    let calls = (0..4).map(|_| e.crm(&t.api, PATH, Some(&t.access), &[]));
    let side = e.crm(&other.api, PATH, Some(&other.access), &[]);
    let (results, side) = tokio::join!(futures::future::join_all(calls), side);
    let mut statuses: Vec<StatusCode> = Vec::new();
    let mut rejected = None;
    for resp in results {
        let status = resp.status();
        statuses.push(status);
        if status == StatusCode::TOO_MANY_REQUESTS {
            rejected = Some(status_json(resp).await.1);
        }
    }
    statuses.sort();
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(
        rejected,
        Some(envelope(
            "TOO_MANY_REQUESTS",
            "You have reached the API limit. Please try again after some time.",
            json!({})
        ))
    );
    assert_eq!(
        side.status(),
        StatusCode::OK,
        "another client of the org has its own slots"
    );
    let stats = e.stats().await;
    assert_eq!(stats["concurrency_rejections"], 2);
    assert_eq!(stats["api_calls"]["GET /crm/v8/{module}"]["429"], 2);
    // Slots are freed: sequential calls pass.
    for _ in 0..3 {
        assert_eq!(e.crm_json(&t, PATH).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn daily_credits_roll_over_24_hours() {
    let e = Emu::start(EmulatorConfig {
        contacts: 5,
        daily_credits: 10,
        ..Default::default()
    })
    .await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    // Errors cost nothing.
    assert_eq!(
        e.crm_json(&t, "/crm/v8/Deals?fields=Email").await.0,
        StatusCode::BAD_REQUEST
    );
    for i in 1..=10u64 {
        let resp = e.crm(&t.api, PATH, Some(&t.access), &[]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let remaining = resp
            .headers()
            .get("X-API-CREDITS-REMAINING")
            .map(|v| v.to_str().unwrap_or("").to_string());
        let expected = (i >= 5).then(|| (10 - i).to_string());
        assert_eq!(remaining, expected, "call {i}");
    }
    let resp = e.crm(&t.api, PATH, Some(&t.access), &[]).await;
    assert_eq!(resp.headers()["X-API-CREDITS-REMAINING"], "0");
    assert_eq!(
        status_json(resp).await,
        (
            StatusCode::TOO_MANY_REQUESTS,
            envelope(
                "TOO_MANY_REQUESTS",
                "You have reached the API limit. Please try again after some time.",
                json!({})
            )
        )
    );
    let stats = e.stats().await;
    assert_eq!(stats["credits_used"], 10);
    assert_eq!(stats["credit_rejections"], 1);
    assert_eq!(stats["orgs"][e.emu.default_org_id()]["credits_used"], 10);
    e.advance(24 * 3600).await;
    let (_, v) = e.refresh(&t).await;
    let t = crate::support::Tokens {
        access: crate::support::str_of(&v["access_token"]),
        ..t
    };
    assert_eq!(e.crm_json(&t, PATH).await.0, StatusCode::OK);
}

#[tokio::test]
async fn injected_server_errors() {
    let e = Emu::small(5).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    e.knobs(json!({"error_rate_5xx": 1.0})).await;
    assert_eq!(
        e.crm_json(&t, PATH).await,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            envelope("INTERNAL_ERROR", "Internal Server Error", json!({}))
        )
    );
    // Off the accounts server unless asked for.
    assert!(e.refresh(&t).await.1["access_token"].is_string());
    e.knobs(json!({"error_rate_5xx": 0.5})).await;
    let mut failures = 0;
    for _ in 0..60 {
        if e.crm(&t.api, PATH, Some(&t.access), &[]).await.status()
            == StatusCode::INTERNAL_SERVER_ERROR
        {
            failures += 1;
        }
    }
    assert!((15..=45).contains(&failures), "{failures} of 60");
    assert_eq!(e.stats().await["injected_5xx"], failures + 1);
    e.knobs(json!({"error_rate_5xx": 0.0, "faults_on_accounts": true}))
        .await;
    assert_eq!(e.crm_json(&t, PATH).await.0, StatusCode::OK);
}

#[tokio::test]
async fn dropped_connections_get_no_answer() {
    let e = Emu::small(5).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    e.knobs(json!({"drop_rate": 1.0})).await;
    let result = e
        .http
        .get(format!("{}{PATH}", t.api))
        .header("Authorization", format!("Zoho-oauthtoken {}", t.access))
        .send()
        .await;
    let err = result.expect_err("the connection is closed without an answer");
    assert!(!err.is_status(), "{err}");
    // The accounts server is spared unless faults_on_accounts is set.
    assert!(e.refresh(&t).await.1["access_token"].is_string());
    e.knobs(json!({"drop_rate": 0.0})).await;
    assert_eq!(e.crm_json(&t, PATH).await.0, StatusCode::OK);
    let stats = e.stats().await;
    assert_eq!(stats["dropped_connections"], 1);
    assert_eq!(stats["api_calls"]["GET /crm/v8/{module}"]["dropped"], 1);
}

#[tokio::test]
async fn knobs_read_and_validate() {
    let e = Emu::small(5).await;
    let (status, v) = e.get("/__emulator/knobs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["token_ttl_secs"], 3600);
    assert_eq!(v["refresh_throttle_max"], 10);
    assert_eq!(v["refresh_throttle_window_secs"], 600);
    assert_eq!(v["throttle_status"], 200);
    assert_eq!(v["max_active_tokens_per_refresh_token"], 15);
    assert_eq!(v["max_refresh_tokens_per_user"], 20);
    assert_eq!(v["not_modified_status"], 304);
    for off in ["latency_ms", "concurrency_limit", "daily_credits"] {
        assert_eq!(v[off], 0, "{off}");
    }
    let resp = e
        .http
        .put(format!("{}/__emulator/knobs", e.base))
        .json(&json!({"drop_rate": 2}))
        .send()
        .await
        .expect("put");
    let (status, v) = status_json(resp).await;
    assert_eq!(
        (status, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_knobs"))
    );
    let resp = e
        .http
        .put(format!("{}/__emulator/knobs", e.base))
        .json(&json!({"typo_knob": 1}))
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}
