//! Credentials: the encrypted Zoho secrets of an integration, as the fetcher reads them and as
//! the scheduler replaces them after the creator reconnects.
//!
//! The store never sees a plaintext secret: the caller encrypts (the scheduler's crypto) and hands
//! over [`Ciphertext`] with the key id it used; the fetcher decrypts what it reads.

use std::collections::BTreeMap;
use std::fmt;

use pledgesync_core::{AccountId, DataCenter, IntegrationId, Module};
use sqlx::Row;

use crate::codec::{parse_data_center, parse_modules, IntegrationStatus};
use crate::db::Store;
use crate::error::StoreError;
use crate::integrations::{Integration, COLUMNS};

/// Encrypted bytes of a secret, as made by the caller's authenticated encryption.
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext(pub Vec<u8>);

impl fmt::Debug for Ciphertext {
    // Ciphertext is not the secret, but there is nothing to learn from its bytes in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ciphertext({} bytes)", self.0.len())
    }
}

/// The Zoho side of an integration, secrets encrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZohoCredentials {
    /// The data centre whose accounts server issued the refresh token.
    pub data_center: DataCenter,
    /// The `api_domain` Zoho returned with the token; CRM calls go there.
    pub api_domain: String,
    /// The Self Client's id (not a secret).
    pub client_id: String,
    /// The Self Client's secret, encrypted.
    pub client_secret: Ciphertext,
    /// The refresh token, encrypted.
    pub refresh_token: Ciphertext,
    /// Which key encrypted both ciphertexts, so that keys can rotate.
    pub encryption_key_id: String,
    /// The scopes Zoho granted.
    pub scopes: Vec<String>,
}

/// What a fetcher needs to call Zoho for an integration: read from PostgreSQL, never from a
/// message.
#[derive(Clone, Debug)]
pub struct IntegrationCredentials {
    /// The integration.
    pub integration_id: IntegrationId,
    /// Its owner.
    pub account_id: AccountId,
    /// Whether it may sync; a fetcher fails the run when it is not active.
    pub status: IntegrationStatus,
    /// Whether it was deleted.
    pub deleted: bool,
    /// The Zoho org (key of per-org limits in Redis).
    pub zoho_org_id: String,
    /// The modules to read.
    pub modules: Vec<Module>,
    /// Encrypted credentials and where to use them.
    pub credentials: ZohoCredentials,
}

impl Store {
    /// Replaces the credentials after the creator reconnected (a new grant code), and makes the
    /// integration active again. The new credentials must reach the same Zoho org: another org is
    /// another integration.
    #[tracing::instrument(name = "store.replace_credentials", skip_all, fields(integration_id = %id), err)]
    pub async fn replace_credentials(
        &self,
        id: IntegrationId,
        credentials: &ZohoCredentials,
        zoho_org_id: &str,
    ) -> Result<Integration, StoreError> {
        let c = credentials;
        let mut tx = self.pool.begin().await?;
        let current: Option<String> = sqlx::query_scalar(
            "SELECT zoho_org_id FROM integrations WHERE id = $1 AND deleted_at IS NULL FOR NO KEY UPDATE",
        )
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        match current {
            None => return Err(StoreError::not_found("integration", id)),
            Some(org) if org != zoho_org_id => {
                return Err(StoreError::Rejected(format!(
                    "these credentials reach Zoho org {zoho_org_id}, but the integration syncs org {org}; \
                     create a new integration for the other org"
                )))
            }
            Some(_) => {}
        }
        let sql = format!(
            "UPDATE integrations SET data_center = $2, api_domain = $3, client_id = $4, client_secret_ciphertext = $5, \
               refresh_token_ciphertext = $6, encryption_key_id = $7, scopes = $8, status = 'active', \
               status_reason = NULL, updated_at = now() \
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.0)
            .bind(c.data_center.code())
            .bind(&c.api_domain)
            .bind(&c.client_id)
            .bind(&c.client_secret.0)
            .bind(&c.refresh_token.0)
            .bind(&c.encryption_key_id)
            .bind(&c.scopes)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Integration::from_row(&row)
    }

    /// The credentials row a fetcher decrypts to call Zoho.
    pub async fn integration_credentials(
        &self,
        id: IntegrationId,
    ) -> Result<IntegrationCredentials, StoreError> {
        let row = sqlx::query(
            "SELECT id, account_id, status, deleted_at IS NOT NULL AS deleted, zoho_org_id, modules, data_center, \
               api_domain, client_id, client_secret_ciphertext, refresh_token_ciphertext, encryption_key_id, scopes \
             FROM integrations WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::not_found("integration", id))?;
        let account: String = row.try_get("account_id")?;
        let status: String = row.try_get("status")?;
        let modules: Vec<String> = row.try_get("modules")?;
        let data_center: String = row.try_get("data_center")?;
        Ok(IntegrationCredentials {
            integration_id: id,
            account_id: AccountId::parse(account)
                .map_err(|e| StoreError::corrupt(format!("integration account_id: {e}")))?,
            status: status.parse()?,
            deleted: row.try_get("deleted")?,
            zoho_org_id: row.try_get("zoho_org_id")?,
            modules: parse_modules(&modules)?,
            credentials: ZohoCredentials {
                data_center: parse_data_center(&data_center)?,
                api_domain: row.try_get("api_domain")?,
                client_id: row.try_get("client_id")?,
                client_secret: Ciphertext(row.try_get("client_secret_ciphertext")?),
                refresh_token: Ciphertext(row.try_get("refresh_token_ciphertext")?),
                encryption_key_id: row.try_get("encryption_key_id")?,
                scopes: row.try_get("scopes")?,
            },
        })
    }
}

/// An integration's secrets exactly as stored, for re-encryption under another key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSecrets {
    /// The integration (live or deleted: a deleted row keeps its ciphertexts).
    pub integration_id: IntegrationId,
    /// The key both ciphertexts were written under.
    pub encryption_key_id: String,
    /// The Self Client's secret, encrypted.
    pub client_secret: Ciphertext,
    /// The refresh token, encrypted.
    pub refresh_token: Ciphertext,
}

impl Store {
    /// Up to `limit` integrations whose secrets are under a key other than `key_id`, in id order
    /// after `after` (a keyset page). Deleted integrations are included: their rows still hold
    /// ciphertexts, and a key cannot be retired while any row needs it.
    pub async fn secrets_not_under_key(
        &self,
        key_id: &str,
        after: Option<IntegrationId>,
        limit: u32,
    ) -> Result<Vec<StoredSecrets>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, encryption_key_id, client_secret_ciphertext, refresh_token_ciphertext \
             FROM integrations WHERE encryption_key_id <> $1 AND ($2::uuid IS NULL OR id > $2) \
             ORDER BY id LIMIT $3",
        )
        .bind(key_id)
        .bind(after.map(|id| id.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredSecrets {
                    integration_id: IntegrationId(row.try_get("id")?),
                    encryption_key_id: row.try_get("encryption_key_id")?,
                    client_secret: Ciphertext(row.try_get("client_secret_ciphertext")?),
                    refresh_token: Ciphertext(row.try_get("refresh_token_ciphertext")?),
                })
            })
            .collect()
    }

    /// Replaces an integration's secrets with the same secrets sealed under `key_id`, only if the
    /// row still holds exactly `stored`: a reconnect that wrote new credentials in between wins
    /// (its secrets are already under the current key). Returns whether the row was replaced.
    /// `updated_at` is left alone: nothing the creator sees has changed.
    #[tracing::instrument(name = "store.reseal_secrets", skip_all, fields(integration_id = %stored.integration_id), err)]
    pub async fn reseal_secrets(
        &self,
        stored: &StoredSecrets,
        client_secret: &Ciphertext,
        refresh_token: &Ciphertext,
        key_id: &str,
    ) -> Result<bool, StoreError> {
        let replaced = sqlx::query(
            "UPDATE integrations SET client_secret_ciphertext = $5, refresh_token_ciphertext = $6, \
               encryption_key_id = $7 \
             WHERE id = $1 AND encryption_key_id = $2 AND client_secret_ciphertext = $3 \
               AND refresh_token_ciphertext = $4",
        )
        .bind(stored.integration_id.0)
        .bind(&stored.encryption_key_id)
        .bind(&stored.client_secret.0)
        .bind(&stored.refresh_token.0)
        .bind(&client_secret.0)
        .bind(&refresh_token.0)
        .bind(key_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(replaced == 1)
    }

    /// How many integrations (deleted ones included) hold secrets under each key id: a key can be
    /// retired once its count is zero.
    pub async fn secrets_by_key(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let rows = sqlx::query(
            "SELECT encryption_key_id, count(*) AS rows FROM integrations GROUP BY 1 ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let rows: i64 = row.try_get("rows")?;
                Ok((
                    row.try_get("encryption_key_id")?,
                    u64::try_from(rows).unwrap_or_default(),
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ciphertext_debug_shows_only_its_length() {
        assert_eq!(
            format!("{:?}", Ciphertext(vec![1, 2, 3])),
            "Ciphertext(3 bytes)"
        );
    }
}
