//! Secrets at rest: AES-256-GCM with a random 96-bit nonce per encryption and a key id stored
//! beside each ciphertext, so keys can rotate without a flag day.
//!
//! A stored ciphertext is `nonce ‖ ciphertext ‖ tag`. The associated data binds it to the row and
//! column it was written for (`pledgesync/v1/integrations/<id>/<column>`), so a ciphertext copied
//! into another integration's row, or from the client-secret column into the refresh-token column,
//! fails authentication instead of decrypting into the wrong place.
//!
//! Decryption accepts the current key and every retired key of [`SecuritySettings`]; rows written
//! under a retired key are re-encrypted under the current one when their secrets are written again
//! (a reconnect) or by the scheduler's `reencrypt-secrets` pass ([`Keyring::is_current`] tells
//! whether a row is due).

use std::collections::HashMap;
use std::fmt;

use crate::ids::IntegrationId;
use crate::settings::{decode_key, SecuritySettings};
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use secrecy::{ExposeSecret, SecretString};

/// Bytes of the random nonce at the front of every ciphertext.
const NONCE_LEN: usize = 12;
/// Bytes of the GCM tag at the end of every ciphertext.
const TAG_LEN: usize = 16;

/// Which secret column a ciphertext belongs to; part of the associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretColumn {
    /// `integrations.client_secret_ciphertext`.
    ClientSecret,
    /// `integrations.refresh_token_ciphertext`.
    RefreshToken,
}

impl SecretColumn {
    fn as_str(self) -> &'static str {
        match self {
            SecretColumn::ClientSecret => "client_secret",
            SecretColumn::RefreshToken => "refresh_token",
        }
    }
}

/// Where a ciphertext lives: the associated data that binds it there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecretSlot {
    /// The integration whose row holds the ciphertext.
    pub integration: IntegrationId,
    /// The column that holds it.
    pub column: SecretColumn,
}

impl SecretSlot {
    pub fn new(integration: IntegrationId, column: SecretColumn) -> Self {
        Self {
            integration,
            column,
        }
    }

    fn associated_data(&self) -> Vec<u8> {
        format!(
            "pledgesync/v1/integrations/{}/{}",
            self.integration,
            self.column.as_str()
        )
        .into_bytes()
    }
}

/// A ciphertext and the id of the key that made it, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the key that encrypted it (`security.encryption_key_id` at the time).
    pub key_id: String,
    /// `nonce ‖ ciphertext ‖ tag`.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// A secret could not be encrypted or decrypted. None of these is retryable: the key
/// configuration or the stored row must change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// A key in the settings is not base64 of 32 bytes (validation should have caught it).
    #[error("the encryption key `{key_id}` is not base64 of 32 bytes; fix security.encryption_key or security.retired_keys")]
    BadKey { key_id: String },
    /// The row was encrypted with a key this process does not have.
    #[error("the secret was encrypted with key `{key_id}`, which is neither the current key nor a retired one; add it to security.retired_keys")]
    UnknownKey { key_id: String },
    /// The ciphertext is too short to hold a nonce and a tag.
    #[error(
        "the stored ciphertext is {len} bytes, too short to be one; the row was edited by hand"
    )]
    Truncated { len: usize },
    /// Authentication failed: wrong key bytes under that id, a modified ciphertext, or one moved
    /// from another row or column.
    #[error("the stored secret failed authentication under key `{key_id}`: it was modified, moved from another row, or the key bytes under that id changed")]
    Tampered { key_id: String },
    /// The decrypted bytes are not UTF-8 (every secret we store is text).
    #[error(
        "the decrypted secret is not UTF-8 text; the row was written by an incompatible build"
    )]
    NotText,
    /// The AEAD refused to encrypt (only possible for absurdly long input).
    #[error("the secret could not be encrypted")]
    Encrypt,
}

impl CryptoError {
    /// Never: every failure needs a configuration or data fix.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// The current key and the retired ones, by id.
#[derive(Clone)]
pub struct Keyring {
    current_id: String,
    keys: HashMap<String, Aes256Gcm>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Keyring")
            .field("current_id", &self.current_id)
            .field("key_ids", &ids)
            .finish()
    }
}

impl Keyring {
    /// The keyring described by `security`: its current key and its retired `id:base64` keys.
    pub fn from_settings(security: &SecuritySettings) -> Result<Self, CryptoError> {
        let current_id = security.encryption_key_id.clone();
        let current = security
            .encryption_key
            .as_ref()
            .and_then(|key| decode_key(key.expose_secret()))
            .ok_or_else(|| CryptoError::BadKey {
                key_id: current_id.clone(),
            })?;
        let mut retired = Vec::with_capacity(security.retired_keys.len());
        for entry in &security.retired_keys {
            let (id, key) =
                entry
                    .expose_secret()
                    .split_once(':')
                    .ok_or_else(|| CryptoError::BadKey {
                        key_id: "(retired entry without `id:`)".to_owned(),
                    })?;
            let bytes = decode_key(key).ok_or_else(|| CryptoError::BadKey {
                key_id: id.to_owned(),
            })?;
            retired.push((id.to_owned(), bytes));
        }
        Ok(Self::new(&current_id, current, retired))
    }

    /// A keyring from raw keys. The current key wins over a retired one with the same id.
    pub fn new(current_id: &str, current: [u8; 32], retired: Vec<(String, [u8; 32])>) -> Self {
        let mut keys: HashMap<String, Aes256Gcm> = retired
            .into_iter()
            .map(|(id, bytes)| (id, Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes))))
            .collect();
        keys.insert(
            current_id.to_owned(),
            Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&current)),
        );
        Self {
            current_id: current_id.to_owned(),
            keys,
        }
    }

    /// The id new ciphertexts are written under.
    pub fn current_id(&self) -> &str {
        &self.current_id
    }

    /// Whether a row written under `key_id` is already under the current key.
    pub fn is_current(&self, key_id: &str) -> bool {
        key_id == self.current_id
    }

    /// Encrypts `plaintext` for `slot` under the current key, with a fresh random nonce.
    pub fn seal(&self, plaintext: &str, slot: SecretSlot) -> Result<Sealed, CryptoError> {
        let cipher = self
            .keys
            .get(&self.current_id)
            .ok_or_else(|| CryptoError::UnknownKey {
                key_id: self.current_id.clone(),
            })?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = slot.associated_data();
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Encrypt)?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        Ok(Sealed {
            key_id: self.current_id.clone(),
            bytes,
        })
    }

    /// Decrypts a ciphertext stored for `slot` under `key_id` (current or retired).
    pub fn open(
        &self,
        key_id: &str,
        bytes: &[u8],
        slot: SecretSlot,
    ) -> Result<SecretString, CryptoError> {
        let cipher = self
            .keys
            .get(key_id)
            .ok_or_else(|| CryptoError::UnknownKey {
                key_id: key_id.to_owned(),
            })?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Truncated { len: bytes.len() });
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let aad = slot.associated_data();
        let plaintext = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Tampered {
                key_id: key_id.to_owned(),
            })?;
        String::from_utf8(plaintext)
            .map(SecretString::from)
            .map_err(|_| CryptoError::NotText)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: [u8; 32] = [7; 32];
    const K2: [u8; 32] = [9; 32];

    fn slot(column: SecretColumn) -> (IntegrationId, SecretSlot) {
        let id = IntegrationId::new();
        (id, SecretSlot::new(id, column))
    }

    #[test]
    fn round_trips_and_never_repeats_a_nonce() {
        let keys = Keyring::new("k1", K1, vec![]);
        let (_, slot) = slot(SecretColumn::RefreshToken);
        let a = keys.seal("1000.refresh.token", slot).expect("seal");
        let b = keys.seal("1000.refresh.token", slot).expect("seal");
        assert_eq!(a.key_id, "k1");
        assert_ne!(
            a.bytes, b.bytes,
            "a fresh nonce makes every ciphertext different"
        );
        assert_eq!(
            a.bytes.len(),
            NONCE_LEN + "1000.refresh.token".len() + TAG_LEN
        );
        let plain = keys.open(&a.key_id, &a.bytes, slot).expect("open");
        assert_eq!(plain.expose_secret(), "1000.refresh.token");
        assert!(
            !a.bytes.windows(7).any(|w| w == b"refresh"),
            "no plaintext in the ciphertext"
        );
    }

    #[test]
    fn rotation_reads_old_rows_and_writes_new_ones() {
        let before = Keyring::new("k1", K1, vec![]);
        let (_, slot) = slot(SecretColumn::ClientSecret);
        let old = before.seal("secret", slot).expect("seal");

        let after = Keyring::new("k2", K2, vec![("k1".to_owned(), K1)]);
        assert!(!after.is_current(&old.key_id));
        assert_eq!(
            after
                .open(&old.key_id, &old.bytes, slot)
                .expect("old key")
                .expose_secret(),
            "secret"
        );
        let new = after.seal("secret", slot).expect("seal");
        assert_eq!(new.key_id, "k2");
        assert!(after.is_current(&new.key_id));

        let retired_dropped = Keyring::new("k2", K2, vec![]);
        assert_eq!(
            retired_dropped.open(&old.key_id, &old.bytes, slot).err(),
            Some(CryptoError::UnknownKey {
                key_id: "k1".into()
            })
        );
    }

    #[test]
    fn tampering_and_moves_are_detected() {
        let keys = Keyring::new("k1", K1, vec![]);
        let (id, secret_slot) = slot(SecretColumn::ClientSecret);
        let sealed = keys.seal("secret", secret_slot).expect("seal");

        let mut flipped = sealed.bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            keys.open("k1", &flipped, secret_slot),
            Err(CryptoError::Tampered { .. })
        ));

        let other_column = SecretSlot::new(id, SecretColumn::RefreshToken);
        assert!(matches!(
            keys.open("k1", &sealed.bytes, other_column),
            Err(CryptoError::Tampered { .. })
        ));

        let other_row = SecretSlot::new(IntegrationId::new(), SecretColumn::ClientSecret);
        assert!(matches!(
            keys.open("k1", &sealed.bytes, other_row),
            Err(CryptoError::Tampered { .. })
        ));

        let same_id_other_bytes = Keyring::new("k1", K2, vec![]);
        assert!(matches!(
            same_id_other_bytes.open("k1", &sealed.bytes, secret_slot),
            Err(CryptoError::Tampered { .. })
        ));

        assert_eq!(
            keys.open("k1", &sealed.bytes[..10], secret_slot).err(),
            Some(CryptoError::Truncated { len: 10 })
        );
    }

    #[test]
    fn built_from_settings_and_debug_shows_no_key() {
        use base64::Engine as _;
        let b64 = |k: &[u8; 32]| base64::engine::general_purpose::STANDARD.encode(k);
        let settings = SecuritySettings {
            encryption_key: Some(SecretString::from(b64(&K2))),
            encryption_key_id: "k2".into(),
            retired_keys: vec![SecretString::from(format!("k1:{}", b64(&K1)))],
        };
        let keys = Keyring::from_settings(&settings).expect("valid settings");
        assert_eq!(keys.current_id(), "k2");
        let debug = format!("{keys:?}");
        assert!(debug.contains("k1") && debug.contains("k2"), "{debug}");
        assert!(
            !debug.contains(&b64(&K1)) && !debug.contains(&b64(&K2)),
            "{debug}"
        );

        let missing = SecuritySettings::default();
        assert!(matches!(
            Keyring::from_settings(&missing),
            Err(CryptoError::BadKey { .. })
        ));
    }
}
