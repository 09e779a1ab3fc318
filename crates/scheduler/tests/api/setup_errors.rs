//! Every way the creator's paste can be wrong gets its own clear message, next to its field.

use pledgesync_core::DataCenter;
use pledgesync_zoho::SetupError;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{TestApp, SCOPE};

async fn create(
    app: &TestApp,
    name: &str,
    client_id: &str,
    secret: &str,
    code: &str,
    dc: Option<&str>,
) -> (u16, Value) {
    let mut body = json!({"account_id": "acct_err", "name": name, "client_id": client_id,
        "client_secret": secret, "refresh_token": code});
    if let Some(dc) = dc {
        body["data_center"] = json!(dc);
    }
    app.call(Method::POST, "/v1/integrations", Some(body)).await
}

fn assert_error(status: u16, body: &Value, code: &str, field: &str, message: &str) {
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
    assert_eq!(body["error"]["message"], message, "{body}");
}

#[tokio::test]
async fn expired_used_wrong_secret_wrong_dc_and_missing_scope_each_say_what_to_do() {
    let app = TestApp::spawn().await;
    let (client_id, secret) = app.self_client().await;

    // A code used twice: the second paste is told it was already used.
    let code = app.grant_code(&client_id, SCOPE).await;
    let (status, body) = create(&app, "first", &client_id, &secret, &code, None).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = create(&app, "second", &client_id, &secret, &code, None).await;
    assert_error(
        status,
        &body,
        "zoho_code_used",
        "refresh_token",
        "The grant code was already used: a grant code works only once. To connect again, generate a new one in the \
         Zoho API Console (Self Client → Generate Code) and paste it within 10 minutes.",
    );
    assert_eq!(
        body["error"]["message"],
        SetupError::CodeAlreadyUsed.to_string()
    );

    // An expired code: older than its 10 minutes.
    let code = app.grant_code(&client_id, SCOPE).await;
    app.advance_emulator_clock(11 * 60).await;
    let (status, body) = create(&app, "late", &client_id, &secret, &code, None).await;
    assert_error(
        status,
        &body,
        "zoho_code_expired",
        "refresh_token",
        "The grant code has expired or was already used. Grant codes live 10 minutes and work once: generate a new one \
         in the Zoho API Console (Self Client → Generate Code) and paste it within 10 minutes.",
    );

    // A wrong Client Secret.
    let code = app.grant_code(&client_id, SCOPE).await;
    let (status, body) = create(&app, "typo", &client_id, "not-the-secret", &code, None).await;
    assert_error(
        status,
        &body,
        "zoho_wrong_secret",
        "client_secret",
        &SetupError::WrongSecret.to_string(),
    );
    assert!(body["error"]["message"]
        .as_str()
        .expect("text")
        .starts_with("The Client Secret does not match the Client ID"));

    // The wrong data centre: the client lives in US, the creator picked EU.
    let code = app.grant_code(&client_id, SCOPE).await;
    let (status, body) = create(&app, "eu", &client_id, &secret, &code, Some("EU")).await;
    assert_error(
        status,
        &body,
        "zoho_wrong_data_center",
        "data_center",
        "The Client ID was not found in the EU data centre; check the data centre or leave it on detect.",
    );
    assert_eq!(
        body["error"]["message"],
        SetupError::WrongClient {
            data_center: Some(DataCenter::Eu)
        }
        .to_string()
    );

    // The same code still works in the right data centre (a refused exchange does not use it).
    let (status, body) = create(&app, "us", &client_id, &secret, &code, Some("us")).await;
    assert_eq!(status, 201, "{body}");

    // A Client ID no data centre knows.
    let code = app.grant_code(&client_id, SCOPE).await;
    let (status, body) = create(&app, "unknown", "1000.NOSUCHCLIENT", &secret, &code, None).await;
    assert_error(
        status,
        &body,
        "zoho_unknown_client",
        "client_id",
        &SetupError::WrongClient { data_center: None }.to_string(),
    );

    // A code generated without the org scope.
    let code = app.grant_code(&client_id, "ZohoCRM.modules.ALL").await;
    let (status, body) = create(&app, "narrow", &client_id, &secret, &code, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("zoho_missing_scope")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("text")
            .contains("ZohoCRM.org.READ"),
        "{body}"
    );

    // Shape errors are caught before Zoho is asked (and before the code is spent).
    let (status, body) = create(&app, "dc", &client_id, &secret, "1000.x", Some("Mars")).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("data_center")),
        "{body}"
    );
    let (status, body) = create(&app, "blank", &client_id, &secret, "   ", None).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("refresh_token")),
        "{body}"
    );
    let (status, body) = create(&app, "first", &client_id, &secret, "1000.unused", None).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (409, Some("name")),
        "the name is taken: {body}"
    );
    app.stop().await;
}
