//! Re-encryption of stored Zoho secrets under the current key, so that a retired key can be
//! removed without every creator reconnecting.
//!
//! Zoho does not rotate refresh tokens, so without this pass a row keeps the key it was first
//! written under until its creator pastes a new grant code. The pass decrypts each row written
//! under another key (with the current or a retired key), seals the same secrets under the current
//! key, and writes them back only if the row is unchanged: a reconnect in between wins. It never
//! sees a secret longer than one row's re-encryption, and reports rows, never secrets.

use std::collections::BTreeMap;

use pledgesync_core::crypto::{Keyring, SecretColumn, SecretSlot};
use pledgesync_core::IntegrationId;
use pledgesync_store::{Ciphertext, Store, StoreError, StoredSecrets};
use secrecy::ExposeSecret;
use serde::Serialize;

/// Rows read per page.
const PAGE: u32 = 200;

/// What a pass did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RekeyReport {
    /// The key the pass sealed under (`security.encryption_key_id`).
    pub current_key_id: String,
    /// Whether the pass only looked.
    pub dry_run: bool,
    /// Rows under another key that decrypt with the configured keys: re-encrypted, or in a dry run
    /// due to be.
    pub readable: u64,
    /// Rows re-encrypted under the current key.
    pub resealed: u64,
    /// Rows that changed between the read and the write (a reconnect): left to the writer.
    pub changed_meanwhile: u64,
    /// Rows the configured keys cannot decrypt, left untouched.
    pub unreadable: Vec<Unreadable>,
    /// Integrations per key id after the pass; a retired key can go once it is absent here.
    pub rows_by_key: BTreeMap<String, u64>,
}

/// A row the pass could not decrypt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// The integration.
    pub integration_id: IntegrationId,
    /// The key id its row names.
    pub key_id: String,
    /// Why, and what to do (the crypto error's text; never secret material).
    pub reason: String,
}

impl RekeyReport {
    /// Whether every row is now under the current key.
    pub fn complete(&self) -> bool {
        self.rows_by_key.keys().all(|id| *id == self.current_key_id)
    }
}

/// Re-encrypts every integration's secrets that are not under `keyring`'s current key (only counts
/// them when `dry_run`).
#[tracing::instrument(name = "rekey", skip_all, fields(current_key_id = keyring.current_id(), dry_run = dry_run))]
pub async fn reseal_all(
    store: &Store,
    keyring: &Keyring,
    dry_run: bool,
) -> Result<RekeyReport, StoreError> {
    let mut report = RekeyReport {
        current_key_id: keyring.current_id().to_owned(),
        dry_run,
        ..RekeyReport::default()
    };
    let mut after = None;
    loop {
        let page = store
            .secrets_not_under_key(keyring.current_id(), after, PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.integration_id);
        for stored in &page {
            let sealed = match reseal(keyring, stored) {
                Ok(sealed) => sealed,
                Err(error) => {
                    tracing::warn!(integration_id = %stored.integration_id, key_id = %stored.encryption_key_id,
                        error = %error, "secrets cannot be decrypted with the configured keys");
                    report.unreadable.push(Unreadable {
                        integration_id: stored.integration_id,
                        key_id: stored.encryption_key_id.clone(),
                        reason: error.to_string(),
                    });
                    continue;
                }
            };
            report.readable += 1;
            if dry_run {
                continue;
            }
            let (client_secret, refresh_token) = sealed;
            if store
                .reseal_secrets(stored, &client_secret, &refresh_token, keyring.current_id())
                .await?
            {
                report.resealed += 1;
            } else {
                report.changed_meanwhile += 1;
            }
        }
    }
    report.rows_by_key = store.secrets_by_key().await?;
    tracing::info!(
        readable = report.readable,
        resealed = report.resealed,
        changed_meanwhile = report.changed_meanwhile,
        unreadable = report.unreadable.len(),
        "re-encryption pass done"
    );
    Ok(report)
}

/// Both secrets of a row, opened under the row's key and sealed under the current one.
fn reseal(
    keyring: &Keyring,
    stored: &StoredSecrets,
) -> Result<(Ciphertext, Ciphertext), pledgesync_core::crypto::CryptoError> {
    let reseal_one = |column, stored_bytes: &Ciphertext| {
        let slot = SecretSlot::new(stored.integration_id, column);
        let plain = keyring.open(&stored.encryption_key_id, &stored_bytes.0, slot)?;
        keyring
            .seal(plain.expose_secret(), slot)
            .map(|sealed| Ciphertext(sealed.bytes))
    };
    Ok((
        reseal_one(SecretColumn::ClientSecret, &stored.client_secret)?,
        reseal_one(SecretColumn::RefreshToken, &stored.refresh_token)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(keyring: &Keyring, id: IntegrationId) -> StoredSecrets {
        let seal = |plain: &str, column| {
            Ciphertext(
                keyring
                    .seal(plain, SecretSlot::new(id, column))
                    .expect("seal")
                    .bytes,
            )
        };
        StoredSecrets {
            integration_id: id,
            encryption_key_id: keyring.current_id().to_owned(),
            client_secret: seal("client-secret-value", SecretColumn::ClientSecret),
            refresh_token: seal("1000.refresh.token", SecretColumn::RefreshToken),
        }
    }

    #[test]
    fn a_row_under_a_retired_key_opens_under_the_current_one_after_resealing() {
        let id = IntegrationId::new();
        let old = Keyring::new("k1", [1; 32], Vec::new());
        let row = stored(&old, id);
        let rotated = Keyring::new("k2", [2; 32], vec![("k1".to_owned(), [1; 32])]);
        let (client_secret, refresh_token) = reseal(&rotated, &row).expect("reseal");
        let only_new = Keyring::new("k2", [2; 32], Vec::new());
        let open = |bytes: &Ciphertext, column| {
            only_new
                .open("k2", &bytes.0, SecretSlot::new(id, column))
                .expect("opens under k2 alone")
                .expose_secret()
                .to_owned()
        };
        assert_eq!(
            open(&client_secret, SecretColumn::ClientSecret),
            "client-secret-value"
        );
        assert_eq!(
            open(&refresh_token, SecretColumn::RefreshToken),
            "1000.refresh.token"
        );
    }

    #[test]
    fn a_row_under_an_unknown_key_is_refused_with_what_to_do() {
        let row = stored(
            &Keyring::new("k0", [9; 32], Vec::new()),
            IntegrationId::new(),
        );
        let rotated = Keyring::new("k2", [2; 32], vec![("k1".to_owned(), [1; 32])]);
        let error = reseal(&rotated, &row).expect_err("k0 is not configured");
        assert!(
            error.to_string().contains("security.retired_keys"),
            "{error}"
        );
    }

    #[test]
    fn secrets_moved_between_columns_do_not_reseal() {
        let id = IntegrationId::new();
        let keyring = Keyring::new("k1", [1; 32], Vec::new());
        let mut row = stored(&keyring, id);
        std::mem::swap(&mut row.client_secret, &mut row.refresh_token);
        let rotated = Keyring::new("k2", [2; 32], vec![("k1".to_owned(), [1; 32])]);
        assert!(reseal(&rotated, &row).is_err());
    }
}
