//! Data centres: one accounts host per DC, probing, api_domain, DC-bound tokens.

use reqwest::StatusCode;
use serde_json::json;
use zoho_emulator::EmulatorConfig;

use crate::support::{envelope, str_of, Emu, PRODUCT_SCOPE};

#[tokio::test]
async fn probing_dcs_in_turn_finds_the_clients_dc_without_burning_the_code() {
    let e = Emu::small(5).await;
    let (id, secret) = e.self_client(json!({"data_center": "EU"})).await;
    let code = e.code(&id, PRODUCT_SCOPE).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("code", code.as_str()),
    ];
    // The unprefixed accounts server is the configured DC (US): it does not know the client.
    assert_eq!(
        e.token_call(&e.base, &form).await,
        (StatusCode::OK, json!({"error": "invalid_client"}))
    );
    let mut found = None;
    for dc in ["us", "in", "au", "jp", "cn", "ca", "sa", "eu"] {
        // `accounts_url = {base}/dc/{dc}` as a template, the way the client probes.
        let (status, v) = e.token_call(&format!("{}/dc/{dc}", e.base), &form).await;
        assert_eq!(status, StatusCode::OK);
        if v.get("error").is_some() {
            assert_eq!(v, json!({"error": "invalid_client"}), "{dc}");
        } else {
            found = Some((dc, v));
            break;
        }
    }
    let (dc, v) = found.expect("EU accepts the code");
    assert_eq!(dc, "eu");
    assert_eq!(v["api_domain"], format!("{}/dc/eu", e.base));
    // Tokens belong to their DC: the EU API serves them, other DCs' APIs do not know them.
    let access = str_of(&v["access_token"]);
    let path = "/crm/v8/Contacts?fields=Email";
    assert_eq!(
        e.crm(&format!("{}/dc/eu", e.base), path, Some(&access), &[])
            .await
            .status(),
        StatusCode::OK
    );
    let invalid = envelope("INVALID_TOKEN", "invalid oauth token", json!({}));
    for api in [
        e.base.clone(),
        format!("{}/dc/us", e.base),
        format!("{}/dc/in", e.base),
    ] {
        let resp = e.crm(&api, path, Some(&access), &[]).await;
        assert_eq!(
            crate::support::status_json(resp).await,
            (StatusCode::UNAUTHORIZED, invalid.clone()),
            "{api}"
        );
    }
    // Refreshing at another DC is invalid_client too.
    let refresh = str_of(&v["refresh_token"]);
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("refresh_token", refresh.as_str()),
    ];
    assert_eq!(
        e.token_call(&format!("{}/dc/jp", e.base), &form).await.1,
        json!({"error": "invalid_client"})
    );
    assert!(
        e.token_call(&format!("{}/dc/EU", e.base), &form).await.1["access_token"].is_string(),
        "DC codes are case-insensitive"
    );
}

#[tokio::test]
async fn configured_dc_owns_the_unprefixed_paths() {
    let e = Emu::start(EmulatorConfig {
        contacts: 5,
        leads: 0,
        data_center: "IN".into(),
        ..Default::default()
    })
    .await;
    let t = e.tokens(PRODUCT_SCOPE).await;
    assert_eq!(t.api, format!("{}/dc/in", e.base));
    let path = "/crm/v8/Contacts?fields=Email";
    assert_eq!(
        e.crm(&e.base, path, Some(&t.access), &[]).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        e.crm(&t.api, path, Some(&t.access), &[]).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        e.crm(&format!("{}/dc/us", e.base), path, Some(&t.access), &[])
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // An unknown DC is no host at all.
    let resp = e
        .http
        .post(format!("{}/dc/xx/oauth/v2/token", e.base))
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = e
        .crm(&format!("{}/dc/xx", e.base), path, Some(&t.access), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let (status, v) = e
        .post("/__emulator/self-clients", json!({"data_center": "UK"}))
        .await;
    assert_eq!(
        (status, v["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_data_center"))
    );
    assert!(zoho_emulator::spawn(EmulatorConfig {
        data_center: "MARS".into(),
        ..Default::default()
    })
    .await
    .is_err());
}
