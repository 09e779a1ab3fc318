//! The Add Integration step against the emulator: code exchange, pasted refresh tokens, data-centre
//! detection, and every creator-facing message word for word.

mod common;

use common::{accounts, emulator, prefix, settings, stat, Console, SCOPE};
use pledgesync_core::settings::ZohoSettings;
use pledgesync_core::DataCenter;
use pledgesync_zoho::oauth::TokenReply;
use pledgesync_zoho::{Accounts, ClientId, ClientSecret, SetupError};
use secrecy::SecretString;
use serde_json::json;
use url::Url;
use zoho_emulator::EmulatorConfig;

fn small() -> EmulatorConfig {
    EmulatorConfig {
        contacts: 20,
        leads: 10,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_grant_code_becomes_a_working_integration() {
    let emu = emulator(small()).await;
    let console = Console::new(&emu);
    let accounts = accounts(&emu, settings(&prefix()));
    let (client_id, secret) = console.self_client(None).await;
    let code = console.grant_code(&client_id, SCOPE).await;

    let auth = accounts
        .authorize(&client_id, &secret, &code, Some(DataCenter::Us))
        .await
        .expect("authorised");
    assert_eq!(auth.data_center, DataCenter::Us);
    assert!(auth.from_grant_code);
    assert_eq!(
        auth.api_domain.as_ref().map(Url::as_str),
        Some(format!("{}/dc/us", emu.base_url()).as_str())
    );
    assert!(auth.scopes.missing().is_empty(), "{}", auth.scopes);
    assert_eq!(auth.org.id, emu.default_org_id());
    assert!(!auth.org.name.is_empty());
    assert_eq!(auth.org.time_zone, "Asia/Kolkata");
    assert_eq!(auth.access_token_lifetime.as_secs(), 3600);
    assert_eq!(stat(&console.stats().await, "codes_exchanged"), 1);

    // The legacy answer (`expires_in_sec`, `expires_in` in ms) means the same lifetime.
    console.knobs(json!({"legacy_expires_in": true})).await;
    let pasted = SecretString::from(auth.refresh_token.expose().to_owned());
    let legacy = accounts
        .authorize(&client_id, &secret, &pasted, None)
        .await
        .expect("legacy");
    assert_eq!(legacy.access_token_lifetime.as_secs(), 3600);

    // The refresh token works, and nothing secret shows in Debug output.
    let reply = accounts
        .refresh(DataCenter::Us, &client_id, &secret, &auth.refresh_token)
        .await
        .expect("answer");
    assert!(matches!(reply, TokenReply::Granted(_)));
    let debug = format!("{auth:?}");
    assert!(
        !debug.contains(auth.refresh_token.expose()) && !debug.contains(auth.access_token.expose()),
        "{debug}"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn a_pasted_refresh_token_is_accepted() {
    let emu = emulator(small()).await;
    let console = Console::new(&emu);
    let accounts = accounts(&emu, settings(&prefix()));
    let (client_id, secret) = console.self_client(None).await;
    let code = console.grant_code(&client_id, SCOPE).await;
    let first = accounts
        .authorize(&client_id, &secret, &code, None)
        .await
        .expect("authorised");

    let pasted = SecretString::from(format!("  {}\n", first.refresh_token.expose()));
    let again = accounts
        .authorize(&client_id, &secret, &pasted, None)
        .await
        .expect("refresh token accepted");
    assert!(!again.from_grant_code);
    assert_eq!(again.refresh_token, first.refresh_token);
    assert_eq!(again.data_center, DataCenter::Us);
    assert!(again.scopes.missing().is_empty());
    assert_eq!(again.org, first.org);
    emu.shutdown().await;
}

#[tokio::test]
async fn the_data_centre_is_detected_and_the_code_survives_the_probes() {
    let emu = emulator(small()).await;
    let console = Console::new(&emu);
    let accounts = accounts(&emu, settings(&prefix()));
    let (client_id, secret) = console.self_client(Some("EU")).await;
    let code = console.grant_code(&client_id, SCOPE).await;

    // The creator picked the wrong data centre: a clear message, and the code is not burnt.
    let err = accounts
        .authorize(&client_id, &secret, &code, Some(DataCenter::Us))
        .await
        .expect_err("wrong DC");
    assert_eq!(
        err.to_string(),
        "The Client ID was not found in the US data centre; check the data centre or leave it on detect."
    );
    assert!(!err.is_retryable());

    let auth = accounts
        .authorize(&client_id, &secret, &code, None)
        .await
        .expect("detected");
    assert_eq!(auth.data_center, DataCenter::Eu);
    assert!(
        auth.from_grant_code,
        "the code itself still worked after the probes"
    );
    assert_eq!(
        auth.api_domain.as_ref().map(Url::as_str),
        Some(format!("{}/dc/eu", emu.base_url()).as_str())
    );
    let stats = console.stats().await;
    assert_eq!(stat(&stats, "codes_exchanged"), 1);
    assert!(
        stats["token_errors"]["invalid_client"]
            .as_u64()
            .unwrap_or(0)
            >= 2,
        "US was probed twice: {stats}"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn unknown_clients_and_wrong_secrets_are_named() {
    let emu = emulator(small()).await;
    let console = Console::new(&emu);
    let accounts = accounts(&emu, settings(&prefix()));
    let (client_id, secret) = console.self_client(None).await;
    let code = console.grant_code(&client_id, SCOPE).await;

    let err = accounts
        .authorize(&ClientId::new("1000.NOSUCHCLIENT"), &secret, &code, None)
        .await
        .expect_err("unknown client");
    assert_eq!(
        err.to_string(),
        "The Client ID was not found in any Zoho data centre: copy the Client ID of your Self Client from the Zoho API Console (Self Client → Client Secret) and try again."
    );
    let err = accounts
        .authorize(
            &ClientId::new("1000.NOSUCHCLIENT"),
            &secret,
            &code,
            Some(DataCenter::Eu),
        )
        .await
        .expect_err("unknown client in EU");
    assert_eq!(
        err.to_string(),
        "The Client ID was not found in the EU data centre; check the data centre or leave it on detect."
    );

    let err = accounts
        .authorize(
            &client_id,
            &ClientSecret::new("0123456789abcdef"),
            &code,
            None,
        )
        .await
        .expect_err("wrong secret");
    assert!(matches!(err, SetupError::WrongSecret));
    assert_eq!(
        err.to_string(),
        "The Client Secret does not match the Client ID: copy the Client Secret of the same Self Client from the Zoho API Console (Self Client → Client Secret) and try again with a new grant code."
    );
    assert!(!err.to_string().contains("0123456789abcdef"));
    emu.shutdown().await;
}

#[tokio::test]
async fn used_expired_and_unknown_codes_say_what_to_do() {
    let emu = emulator(small()).await;
    let console = Console::new(&emu);
    let accounts = accounts(&emu, settings(&prefix()));
    let (client_id, secret) = console.self_client(None).await;

    let code = console.grant_code(&client_id, SCOPE).await;
    accounts
        .authorize(&client_id, &secret, &code, None)
        .await
        .expect("first use");
    let err = accounts
        .authorize(&client_id, &secret, &code, None)
        .await
        .expect_err("second use");
    assert_eq!(
        err.to_string(),
        "The grant code was already used: a grant code works only once. To connect again, generate a new one in the Zoho API Console (Self Client → Generate Code) and paste it within 10 minutes."
    );

    // Another replica did not see the first exchange: it cannot tell used from expired.
    let other_replica = common::accounts(&emu, settings(&prefix()));
    let err = other_replica
        .authorize(&client_id, &secret, &code, None)
        .await
        .expect_err("used elsewhere");
    let expired_or_used = "The grant code has expired or was already used. Grant codes live 10 minutes and work once: generate a new one in the Zoho API Console (Self Client → Generate Code) and paste it within 10 minutes.";
    assert_eq!(err.to_string(), expired_or_used);

    let late = console.grant_code(&client_id, SCOPE).await;
    console
        .post("/__emulator/clock", json!({"advance_secs": 11 * 60}))
        .await;
    let err = accounts
        .authorize(&client_id, &secret, &late, None)
        .await
        .expect_err("expired");
    assert!(matches!(err, SetupError::CodeExpiredOrUsed));
    assert_eq!(err.to_string(), expired_or_used);

    let err = accounts
        .authorize(
            &client_id,
            &secret,
            &SecretString::from("1000.not-a-code".to_owned()),
            None,
        )
        .await
        .expect_err("garbage");
    assert_eq!(err.to_string(), expired_or_used);
    emu.shutdown().await;
}

#[tokio::test]
async fn missing_scopes_are_named_and_the_useless_token_is_revoked() {
    let emu = emulator(small()).await;
    let console = Console::new(&emu);
    let accounts = accounts(&emu, settings(&prefix()));
    let (client_id, secret) = console.self_client(None).await;

    let code = console.grant_code(&client_id, "ZohoCRM.modules.ALL").await;
    let err = accounts
        .authorize(&client_id, &secret, &code, None)
        .await
        .expect_err("no org scope");
    assert_eq!(
        err.to_string(),
        "The grant code's scope lacks ZohoCRM.org.READ; generate a new code with the scope ZohoCRM.modules.ALL,ZohoCRM.org.READ"
    );
    let code = console.grant_code(&client_id, "ZohoCRM.org.READ").await;
    let err = accounts
        .authorize(&client_id, &secret, &code, None)
        .await
        .expect_err("no modules scope");
    assert_eq!(
        err.to_string(),
        "The grant code's scope lacks ZohoCRM.modules.ALL; generate a new code with the scope ZohoCRM.modules.ALL,ZohoCRM.org.READ"
    );
    let code = console.grant_code(&client_id, "ZohoCRM.users.READ").await;
    let err = accounts
        .authorize(&client_id, &secret, &code, None)
        .await
        .expect_err("neither");
    assert_eq!(
        err.to_string(),
        "The grant code's scope lacks ZohoCRM.modules.ALL and ZohoCRM.org.READ; generate a new code with the scope ZohoCRM.modules.ALL,ZohoCRM.org.READ"
    );
    assert_eq!(stat(&console.stats().await, "refresh_tokens_revoked"), 3);
    emu.shutdown().await;
}

#[tokio::test]
async fn a_failed_org_read_gives_the_minted_token_back() {
    let emu = emulator(small()).await;
    let console = Console::new(&emu);
    let accounts = accounts(&emu, settings(&prefix()));
    let (client_id, secret) = console.self_client(None).await;
    let code = console.grant_code(&client_id, SCOPE).await;
    console.knobs(json!({"error_rate_5xx": 1.0})).await;
    let err = accounts
        .authorize(&client_id, &secret, &code, None)
        .await
        .expect_err("CRM down");
    assert!(!err.is_retryable(), "the code is spent");
    assert_eq!(
        err.to_string(),
        "Zoho accepted the grant code but reading the organisation failed (Zoho CRM answered INTERNAL_ERROR (HTTP 500) to org: Internal Server Error). Try again in a few minutes with a new grant code (Self Client → Generate Code)."
    );
    let stats = console.stats().await;
    assert_eq!(stat(&stats, "injected_5xx"), 3, "the org read was retried");
    assert_eq!(stat(&stats, "refresh_tokens_revoked"), 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn throttling_outages_and_empty_fields_have_their_messages() {
    let emu = emulator(small()).await;
    let console = Console::new(&emu);
    let accounts = accounts(&emu, settings(&prefix()));
    let (client_id, secret) = console.self_client(None).await;
    let code = console.grant_code(&client_id, SCOPE).await;
    let auth = accounts
        .authorize(&client_id, &secret, &code, None)
        .await
        .expect("authorised");

    console.knobs(json!({"refresh_throttle_max": 0})).await;
    let pasted = SecretString::from(auth.refresh_token.expose().to_owned());
    let err = accounts
        .authorize(&client_id, &secret, &pasted, None)
        .await
        .expect_err("throttled");
    assert_eq!(
        err.to_string(),
        "Zoho is refusing new tokens for this Self Client because too many were requested recently; wait 10 minutes, then generate a new grant code and try again."
    );

    let err = accounts
        .authorize(
            &client_id,
            &secret,
            &SecretString::from("  ".to_owned()),
            None,
        )
        .await
        .expect_err("empty");
    assert_eq!(err.to_string(), "The grant code is empty: copy it from your Self Client in the Zoho API Console and paste it here.");
    let err = accounts
        .authorize(&ClientId::new(" "), &secret, &pasted, None)
        .await
        .expect_err("empty");
    assert_eq!(err.to_string(), "The Client ID is empty: copy it from your Self Client in the Zoho API Console and paste it here.");
    emu.shutdown().await;

    // Nothing listens there any more.
    let closed = ZohoSettings {
        accounts_url: Some(Url::parse(&emu_closed_url()).expect("url")),
        api_url: None,
    };
    let unreachable = Accounts::new(&closed, settings(&prefix())).expect("client");
    let err = unreachable
        .authorize(&client_id, &secret, &pasted, Some(DataCenter::Us))
        .await
        .expect_err("down");
    assert!(err.is_retryable());
    let text = err.to_string();
    assert!(
        text.starts_with(
            "Zoho could not be reached (the Zoho accounts server could not be reached: "
        ),
        "{text}"
    );
    assert!(
        text.ends_with("); try again in a minute — the grant code stays valid for 10 minutes."),
        "{text}"
    );
    assert!(!text.contains(pasted_text(&pasted)), "{text}");
}

fn emu_closed_url() -> String {
    // Port 9 (discard) is never served on the test machine.
    "http://127.0.0.1:9/dc/{dc}".to_owned()
}

fn pasted_text(secret: &SecretString) -> &str {
    use secrecy::ExposeSecret as _;
    secret.expose_secret()
}
