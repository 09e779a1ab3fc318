//! The accounts server: code exchange, refresh, throttling, token caps, revoke, console codes.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{envelope, str_of, Emu, PRODUCT_SCOPE};

/// `1000.<32 hex>.<32 hex>`.
fn zoho_token_shape(t: &str) -> bool {
    let parts: Vec<&str> = t.split('.').collect();
    parts.len() == 3
        && parts[0] == "1000"
        && parts[1..]
            .iter()
            .all(|p| p.len() == 32 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[tokio::test]
async fn code_exchange_answers_like_zoho() {
    let e = Emu::small(5).await;
    let (id, secret) = e.self_client(json!({})).await;
    let code = e.code(&id, PRODUCT_SCOPE).await;
    assert!(zoho_token_shape(&code), "{code}");
    let (status, v) = e.exchange(&id, &secret, &code).await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "access_token",
            "api_domain",
            "expires_in",
            "refresh_token",
            "scope",
            "token_type"
        ]
    );
    assert!(zoho_token_shape(&str_of(&v["access_token"])));
    assert!(zoho_token_shape(&str_of(&v["refresh_token"])));
    assert_eq!(v["scope"], "ZohoCRM.modules.ALL ZohoCRM.org.READ");
    assert_eq!(v["api_domain"], format!("{}/dc/us", e.base));
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    // Single use: the same code again is invalid_code, with HTTP 200 as Zoho answers.
    assert_eq!(
        e.exchange(&id, &secret, &code).await,
        (StatusCode::OK, json!({"error": "invalid_code"}))
    );
}

#[tokio::test]
async fn token_errors_are_http_200_bodies() {
    let e = Emu::small(5).await;
    let (id, secret) = e.self_client(json!({})).await;
    let code = e.code(&id, PRODUCT_SCOPE).await;
    let ok = |error: &str| (StatusCode::OK, json!({ "error": error }));
    assert_eq!(
        e.exchange("1000.UNKNOWN", &secret, &code).await,
        ok("invalid_client")
    );
    assert_eq!(
        e.exchange(&id, "wrong-secret", &code).await,
        ok("invalid_client_secret")
    );
    assert_eq!(
        e.exchange(&id, &secret, "1000.nope.nope").await,
        ok("invalid_code")
    );
    assert_eq!(
        e.token_call(&e.base, &[("client_id", &id)]).await,
        ok("unsupported_grant_type")
    );
    // Another client's valid code is invalid for this one and stays usable by its owner.
    let (other, other_secret) = e.self_client(json!({})).await;
    assert_eq!(
        e.exchange(&other, &other_secret, &code).await,
        ok("invalid_code")
    );
    // None of the failures above burnt the code.
    let (status, v) = e.exchange(&id, &secret, &code).await;
    assert_eq!(status, StatusCode::OK);
    assert!(v["access_token"].is_string(), "{v}");
    let stats = e.stats().await;
    assert_eq!(stats["token_errors"]["invalid_code"], 2);
    assert_eq!(stats["token_errors"]["invalid_client"], 1);
    assert_eq!(stats["codes_exchanged"], 1);
}

#[tokio::test]
async fn params_may_come_in_the_query_string_or_mixed() {
    let e = Emu::small(5).await;
    let (id, secret) = e.self_client(json!({})).await;
    let code = e.code(&id, PRODUCT_SCOPE).await;
    // All in the query string with an empty body (Airbyte's style).
    let url = format!("{}/oauth/v2/token?grant_type=authorization_code&client_id={id}&client_secret={secret}&code={code}", e.base);
    let resp = e.http.post(url).send().await.expect("call");
    let v: Value = resp.json().await.expect("json");
    let refresh = str_of(&v["refresh_token"]);
    // A mix: grant type and refresh token in the query, credentials in the form body.
    let url = format!(
        "{}/oauth/v2/token?grant_type=refresh_token&refresh_token={refresh}",
        e.base
    );
    let resp = e
        .http
        .post(url)
        .form(&[("client_id", &id), ("client_secret", &secret)])
        .send()
        .await
        .expect("call");
    let v: Value = resp.json().await.expect("json");
    assert!(v["access_token"].is_string(), "{v}");
    assert!(
        v.get("refresh_token").is_none(),
        "Zoho does not rotate refresh tokens: {v}"
    );
    assert_eq!(v["scope"], "ZohoCRM.modules.ALL ZohoCRM.org.READ");
    assert_eq!(v["api_domain"], format!("{}/dc/us", e.base));
    assert_eq!(v["expires_in"], 3600);
    assert_eq!(e.stats().await["token_refreshes"], 1);
}

#[tokio::test]
async fn codes_expire_on_the_emulator_clock() {
    let e = Emu::small(5).await;
    let (id, secret) = e.self_client(json!({})).await;
    let short = e
        .post(
            "/__emulator/grant-codes",
            json!({"client_id": id, "scope": PRODUCT_SCOPE, "duration_seconds": 60}),
        )
        .await;
    assert_eq!(short.0, StatusCode::CREATED);
    let ten = e.code(&id, PRODUCT_SCOPE).await;
    e.advance(61).await;
    assert_eq!(
        e.exchange(&id, &secret, &str_of(&short.1["code"])).await.1,
        json!({"error": "invalid_code"})
    );
    e.advance(530).await;
    assert!(
        e.exchange(&id, &secret, &ten).await.1["access_token"].is_string(),
        "still inside 10 minutes"
    );
    let late = e.code(&id, PRODUCT_SCOPE).await;
    e.advance(601).await;
    assert_eq!(
        e.exchange(&id, &secret, &late).await.1,
        json!({"error": "invalid_code"})
    );
}

#[tokio::test]
async fn refresh_throttle_locks_out_and_retries_extend_it() {
    let e = Emu::small(5).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    for i in 0..10 {
        let (status, v) = e.refresh(&t).await;
        assert_eq!(status, StatusCode::OK);
        assert!(v["access_token"].is_string(), "refresh {i}: {v}");
    }
    let denied = json!({
        "error_description": "You have made too many requests continuously. Please try again after some time.",
        "error": "Access Denied",
        "status": "failure"
    });
    assert_eq!(e.refresh(&t).await, (StatusCode::OK, denied.clone()));
    e.advance(599).await;
    assert_eq!(e.refresh(&t).await.1, denied, "still inside the window");
    e.advance(599).await;
    assert_eq!(
        e.refresh(&t).await.1,
        denied,
        "the retry extended the lock-out"
    );
    e.advance(601).await;
    assert!(
        e.refresh(&t).await.1["access_token"].is_string(),
        "recovered after a quiet window"
    );
    let stats = e.stats().await;
    assert_eq!(stats["throttled_refreshes"], 3);
    assert_eq!(stats["token_refreshes"], 11);
    // The status is a knob: some observe 400.
    e.knobs(json!({"throttle_status": 400, "refresh_throttle_max": 1}))
        .await;
    let t2 = e.tokens(PRODUCT_SCOPE).await;
    assert_eq!(e.refresh(&t2).await.0, StatusCode::OK);
    assert_eq!(e.refresh(&t2).await, (StatusCode::BAD_REQUEST, denied));
}

#[tokio::test]
async fn sixteenth_access_token_evicts_the_oldest() {
    let e = Emu::small(5).await;
    e.knobs(json!({"refresh_throttle_max": 100})).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let mut minted = vec![t.access.clone()];
    for _ in 0..15 {
        minted.push(str_of(&e.refresh(&t).await.1["access_token"]));
    }
    let path = "/crm/v8/Contacts?fields=Email";
    let invalid = envelope("INVALID_TOKEN", "invalid oauth token", json!({}));
    let (status, body) =
        crate::support::status_json(e.crm(&t.api, path, Some(&minted[0]), &[]).await).await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, invalid));
    for token in &minted[1..] {
        assert_eq!(
            e.crm(&t.api, path, Some(token), &[]).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(e.stats().await["token_tables"]["access_tokens"], 15);
}

#[tokio::test]
async fn access_tokens_expire_and_lifetime_is_a_knob() {
    let e = Emu::small(5).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let path = "/crm/v8/Contacts?fields=Email";
    assert_eq!(e.crm_json(&t, path).await.0, StatusCode::OK);
    e.advance(3600).await;
    assert_eq!(
        e.crm_json(&t, path).await,
        (
            StatusCode::UNAUTHORIZED,
            envelope("INVALID_TOKEN", "invalid oauth token", json!({}))
        )
    );
    e.knobs(json!({"token_ttl_secs": 60})).await;
    let (_, v) = e.refresh(&t).await;
    assert_eq!(v["expires_in"], 60);
    e.knobs(json!({"legacy_expires_in": true})).await;
    let (_, v) = e.refresh(&t).await;
    assert_eq!(
        (v["expires_in_sec"].clone(), v["expires_in"].clone()),
        (json!(60), json!(60_000))
    );
    // The console can kill one token at once.
    let fresh = Emu::small(5).await;
    let t = fresh.tokens(PRODUCT_SCOPE).await;
    let (status, _) = fresh
        .post(
            &format!("/__emulator/tokens/{}/expire", t.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fresh.crm_json(&t, path).await.0, StatusCode::UNAUTHORIZED);
    let (status, v) = fresh.post("/__emulator/tokens/expire-all", json!({})).await;
    assert_eq!((status, v["expired"].clone()), (StatusCode::OK, json!(1)));
}

#[tokio::test]
async fn revoke_kills_refresh_and_access_tokens() {
    let e = Emu::small(5).await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    let revoke = |token: String| {
        let http = e.http.clone();
        let url = format!("{}/oauth/v2/token/revoke?token={token}", e.base);
        async move { crate::support::status_json(http.post(url).send().await.expect("revoke")).await }
    };
    assert_eq!(
        revoke(t.refresh.clone()).await,
        (StatusCode::OK, json!({"status": "success"}))
    );
    assert_eq!(
        e.refresh(&t).await,
        (StatusCode::OK, json!({"error": "invalid_code"}))
    );
    assert_eq!(
        e.crm_json(&t, "/crm/v8/Contacts?fields=Email").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        revoke(t.refresh.clone()).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_token", "status": "failure"})
        )
    );
    assert_eq!(e.stats().await["refresh_tokens_revoked"], 1);
}

#[tokio::test]
async fn twenty_first_refresh_token_deletes_the_oldest() {
    let e = Emu::small(5).await;
    e.knobs(json!({"max_grant_codes_per_10_min": 100})).await;
    let (id, secret) = e.self_client(json!({})).await;
    let mut refresh = Vec::new();
    for _ in 0..21 {
        let code = e.code(&id, PRODUCT_SCOPE).await;
        refresh.push(str_of(
            &e.exchange(&id, &secret, &code).await.1["refresh_token"],
        ));
    }
    let with = |rt: &str| crate::support::Tokens {
        client_id: id.clone(),
        secret: secret.clone(),
        refresh: rt.to_string(),
        access: String::new(),
        api: String::new(),
    };
    assert_eq!(
        e.refresh(&with(&refresh[0])).await.1,
        json!({"error": "invalid_code"})
    );
    assert!(e.refresh(&with(&refresh[1])).await.1["access_token"].is_string());
    assert_eq!(e.stats().await["token_tables"]["refresh_tokens"], 20);
}

#[tokio::test]
async fn console_validates_grant_code_requests() {
    let e = Emu::small(5).await;
    let (id, _) = e.self_client(json!({})).await;
    let code = |body: Value| async { e.post("/__emulator/grant-codes", body).await };
    let (status, v) =
        code(json!({"client_id": id, "scope": "ZohoCRM.nothing.READ", "duration_minutes": 3}))
            .await;
    assert_eq!(
        (status, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_scope"))
    );
    let (status, v) =
        code(json!({"client_id": id, "scope": PRODUCT_SCOPE, "duration_minutes": 11})).await;
    assert_eq!(
        (status, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_duration"))
    );
    let (status, v) = code(json!({"client_id": id, "scope": PRODUCT_SCOPE, "duration_minutes": 1, "duration_seconds": 5})).await;
    assert_eq!(
        (status, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_duration"))
    );
    let (status, v) = code(json!({"client_id": "1000.NOPE", "scope": PRODUCT_SCOPE})).await;
    assert_eq!(
        (status, v["error"].clone()),
        (StatusCode::NOT_FOUND, json!("unknown_client"))
    );
    let (status, v) = code(json!({"scope": PRODUCT_SCOPE})).await;
    assert_eq!(
        (status, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_body"))
    );
    for _ in 0..10 {
        assert_eq!(
            code(json!({"client_id": id, "scope": PRODUCT_SCOPE}))
                .await
                .0,
            StatusCode::CREATED
        );
    }
    let (status, v) = code(json!({"client_id": id, "scope": PRODUCT_SCOPE})).await;
    assert_eq!(
        (status, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("access_denied"))
    );
    e.advance(600).await;
    assert_eq!(
        code(json!({"client_id": id, "scope": PRODUCT_SCOPE}))
            .await
            .0,
        StatusCode::CREATED
    );
}
