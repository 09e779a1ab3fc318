//! Key rotation: `reencrypt-secrets` moves every readable row to the current key, leaves rows it
//! cannot read untouched, never overwrites a row changed in between, and can run again.

use pledgesync_core::crypto::{Keyring, SecretColumn, SecretSlot};
use pledgesync_core::IntegrationId;
use pledgesync_scheduler::commands::reencrypt_secrets;
use pledgesync_store::Store;
use secrecy::{ExposeSecret, SecretString};

use crate::helpers::TestApp;

/// Base64 of the bytes 32..63: the new key.
const NEW_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

/// Both plaintext secrets of an integration, opened with `keyring`.
async fn secrets(app: &TestApp, keyring: &Keyring, id: IntegrationId) -> (String, String, String) {
    let (key_id, client_secret, refresh_token) = stored_row(app, id).await;
    let open = |bytes: &[u8], column| {
        keyring
            .open(&key_id, bytes, SecretSlot::new(id, column))
            .unwrap_or_else(|e| panic!("{column:?} of {id} does not open: {e}"))
            .expose_secret()
            .to_owned()
    };
    (
        open(&client_secret, SecretColumn::ClientSecret),
        open(&refresh_token, SecretColumn::RefreshToken),
        key_id,
    )
}

/// The row's key id and both ciphertexts, as stored.
async fn stored_row(app: &TestApp, id: IntegrationId) -> (String, Vec<u8>, Vec<u8>) {
    sqlx::query_as(
        "SELECT encryption_key_id, client_secret_ciphertext, refresh_token_ciphertext FROM integrations WHERE id = $1",
    )
    .bind(id.0)
    .fetch_one(&app.pool)
    .await
    .expect("integration row")
}

fn id_of(integration: &serde_json::Value) -> IntegrationId {
    integration["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .map(IntegrationId)
        .expect("integration id")
}

#[tokio::test]
async fn rotation_reseals_readable_rows_and_leaves_the_rest_untouched() {
    let app = TestApp::spawn().await;
    let first = id_of(&app.create_integration("acct-rekey", "First org").await);
    let second = id_of(&app.create_integration("acct-rekey", "Second org").await);
    let foreign = id_of(&app.create_integration("acct-rekey", "Foreign key").await);
    let old = app.state.keyring.clone();
    let before_first = secrets(&app, &old, first).await;
    let before_second = secrets(&app, &old, second).await;
    // A row that names a key nobody configured (restored from an old backup, say).
    sqlx::query("UPDATE integrations SET encryption_key_id = 'k0' WHERE id = $1")
        .bind(foreign.0)
        .execute(&app.pool)
        .await
        .expect("mark foreign");
    let foreign_before = stored_row(&app, foreign).await;

    // Step 2 of the runbook: k2 is current, k1 retired.
    let mut rotated = app.settings.clone();
    rotated.security.encryption_key = Some(SecretString::from(NEW_KEY));
    rotated.security.encryption_key_id = "k2".to_owned();
    rotated.security.retired_keys = vec![SecretString::from(format!(
        "k1:{}",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    ))];

    let dry = reencrypt_secrets(&rotated, true).await.expect("dry run");
    assert!(dry.dry_run);
    assert_eq!((dry.readable, dry.resealed), (2, 0), "{dry:?}");
    assert_eq!(
        dry.rows_by_key.get("k1"),
        Some(&2),
        "a dry run writes nothing: {dry:?}"
    );

    let pass = reencrypt_secrets(&rotated, false).await.expect("pass");
    assert_eq!(
        (pass.readable, pass.resealed, pass.changed_meanwhile),
        (2, 2, 0),
        "{pass:?}"
    );
    assert_eq!(pass.unreadable.len(), 1, "{pass:?}");
    assert_eq!(pass.unreadable[0].integration_id, foreign);
    assert_eq!(pass.unreadable[0].key_id, "k0");
    assert!(
        pass.unreadable[0].reason.contains("security.retired_keys"),
        "{pass:?}"
    );
    assert_eq!(pass.rows_by_key.get("k2"), Some(&2), "{pass:?}");
    assert_eq!(pass.rows_by_key.get("k1"), None, "{pass:?}");
    assert!(!pass.complete(), "the k0 row still holds its key");
    let report = serde_json::to_string(&pass).expect("report json");
    for (secret, token, _) in [&before_first, &before_second] {
        assert!(
            !report.contains(secret.as_str()) && !report.contains(token.as_str()),
            "a secret in the report"
        );
    }

    // k1 can go: the new key alone opens both rows, with the same secrets as before.
    let only_new = Keyring::new("k2", std::array::from_fn(|i| 32 + i as u8), Vec::new());
    let after_first = secrets(&app, &only_new, first).await;
    let after_second = secrets(&app, &only_new, second).await;
    assert_eq!(
        (&after_first.0, &after_first.1, after_first.2.as_str()),
        (&before_first.0, &before_first.1, "k2")
    );
    assert_eq!(
        (&after_second.0, &after_second.1, after_second.2.as_str()),
        (&before_second.0, &before_second.1, "k2")
    );
    let foreign_after = stored_row(&app, foreign).await;
    assert_eq!(
        foreign_after, foreign_before,
        "an unreadable row is left as it was"
    );

    // Running again finds nothing new to do.
    let again = reencrypt_secrets(&rotated, false)
        .await
        .expect("second pass");
    assert_eq!((again.readable, again.resealed), (0, 0), "{again:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_row_changed_after_the_read_is_not_overwritten() {
    let app = TestApp::spawn().await;
    let id = id_of(&app.create_integration("acct-rekey-race", "Org").await);
    let store = Store::connect(&app.settings.postgres).await.expect("store");
    let read = store
        .secrets_not_under_key("k2", None, 10)
        .await
        .expect("read");
    assert_eq!(read.len(), 1);
    // The creator reconnects in between: the row now holds other ciphertexts.
    sqlx::query(
        "UPDATE integrations SET refresh_token_ciphertext = client_secret_ciphertext WHERE id = $1",
    )
    .bind(id.0)
    .execute(&app.pool)
    .await
    .expect("concurrent write");
    let replaced = store
        .reseal_secrets(
            &read[0],
            &read[0].client_secret,
            &read[0].refresh_token,
            "k2",
        )
        .await
        .expect("reseal");
    assert!(!replaced, "a stale read must not overwrite the newer row");
    let (key_id, _, _) = stored_row(&app, id).await;
    assert_eq!(key_id, "k1");
    store.close().await;
    app.stop().await;
}
