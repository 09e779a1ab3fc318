//! Integrations: a creator's connection of one Zoho org, the audience it feeds, its schedule and
//! its status. Its encrypted secrets are in [`crate::credentials`].

use chrono::{DateTime, Utc};
use pledgesync_core::messages::SyncMode;
use pledgesync_core::{AccountId, AudienceId, DataCenter, IntegrationId, Module};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::codec::{module_strs, parse_data_center, parse_modules, secs, IntegrationStatus};
use crate::credentials::ZohoCredentials;
use crate::db::Store;
use crate::error::{constraint, StoreError};
use crate::runs::{cancel_active_runs, count_cancelled};

/// What to sync and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The CRM modules read, at least one.
    pub modules: Vec<Module>,
    /// Seconds between scheduled incremental runs (at least 60).
    pub sync_interval_secs: u32,
    /// Seconds between full runs, which catch formula fields and deletions incremental runs miss
    /// (at least 3600; a week by default).
    pub full_sync_interval_secs: u32,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            modules: Module::ALL.to_vec(),
            sync_interval_secs: 3600,
            full_sync_interval_secs: 604_800,
        }
    }
}

impl Schedule {
    /// Checks the rules the database also enforces, with a message a person can act on.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.modules.is_empty() {
            return Err(StoreError::Rejected(
                "choose at least one module to sync: Contacts or Leads".into(),
            ));
        }
        if self.sync_interval_secs < 60 || self.sync_interval_secs > i32::MAX as u32 {
            return Err(StoreError::Rejected(
                "sync_interval_secs must be at least 60".into(),
            ));
        }
        if self.full_sync_interval_secs < 3600 || self.full_sync_interval_secs > i32::MAX as u32 {
            return Err(StoreError::Rejected(
                "full_sync_interval_secs must be at least 3600".into(),
            ));
        }
        Ok(())
    }

    fn modules_sorted(&self) -> Vec<String> {
        let mut modules = self.modules.clone();
        modules.sort();
        modules.dedup();
        module_strs(&modules)
    }
}

/// An integration to create.
#[derive(Clone, Debug)]
pub struct NewIntegration {
    /// The PledgeBox account that owns it.
    pub account_id: AccountId,
    /// A name unique among the account's live integrations.
    pub name: String,
    /// Zoho credentials from the code exchange.
    pub credentials: ZohoCredentials,
    /// The Zoho org the credentials reach (from `GET /org`).
    pub zoho_org_id: String,
    /// The org's name, for display.
    pub zoho_org_name: Option<String>,
    /// The org's time zone (Zoho's timestamps carry it).
    pub zoho_time_zone: Option<String>,
    /// The audience to feed, if already chosen; it must belong to the same account.
    pub audience_id: Option<AudienceId>,
    /// Modules and intervals.
    pub schedule: Schedule,
}

/// An integration as the API and the scheduler see it (no ciphertexts).
#[derive(Clone, Debug, PartialEq)]
pub struct Integration {
    /// Its id.
    pub id: IntegrationId,
    /// The owning PledgeBox account.
    pub account_id: AccountId,
    /// Its name, unique among the account's live integrations.
    pub name: String,
    /// The Zoho data centre.
    pub data_center: DataCenter,
    /// Zoho's API domain for this org.
    pub api_domain: String,
    /// The Self Client id.
    pub client_id: String,
    /// Which key encrypted its secrets.
    pub encryption_key_id: String,
    /// Scopes Zoho granted.
    pub scopes: Vec<String>,
    /// The Zoho org id (the unit of Zoho's rate limits).
    pub zoho_org_id: String,
    /// The Zoho org's name.
    pub zoho_org_name: Option<String>,
    /// The Zoho org's time zone.
    pub zoho_time_zone: Option<String>,
    /// The audience it feeds; `None` until the creator maps one (no run can start before).
    pub audience_id: Option<AudienceId>,
    /// Whether it may sync.
    pub status: IntegrationStatus,
    /// Why it is not active, in words for the creator.
    pub status_reason: Option<String>,
    /// Modules and intervals.
    pub schedule: Schedule,
    /// When the periodic scheduler next enqueues a run; `None` until the first run is enqueued:
    /// the schedule starts with the creator's first Sync Now, never on its own.
    pub next_sync_at: Option<DateTime<Utc>>,
    /// When the last successful full run started; `None` if there never was one.
    pub last_full_sync_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was deleted; a deleted integration never syncs again.
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Integration {
    /// The mode the schedule would choose now: full when no full run ever succeeded or the last
    /// one is older than the full-sync interval, else incremental. `claim_due_integrations`
    /// applies the same rule in SQL.
    pub fn due_mode(&self, now: DateTime<Utc>) -> SyncMode {
        let interval = chrono::Duration::seconds(i64::from(self.schedule.full_sync_interval_secs));
        match self.last_full_sync_at {
            Some(last) if last > now - interval => SyncMode::Incremental,
            _ => SyncMode::Full,
        }
    }

    pub(crate) fn from_row(row: &PgRow) -> Result<Self, StoreError> {
        let account: String = row.try_get("account_id")?;
        let data_center: String = row.try_get("data_center")?;
        let status: String = row.try_get("status")?;
        let modules: Vec<String> = row.try_get("modules")?;
        Ok(Integration {
            id: IntegrationId(row.try_get("id")?),
            account_id: AccountId::parse(account)
                .map_err(|e| StoreError::corrupt(format!("integration account_id: {e}")))?,
            name: row.try_get("name")?,
            data_center: parse_data_center(&data_center)?,
            api_domain: row.try_get("api_domain")?,
            client_id: row.try_get("client_id")?,
            encryption_key_id: row.try_get("encryption_key_id")?,
            scopes: row.try_get("scopes")?,
            zoho_org_id: row.try_get("zoho_org_id")?,
            zoho_org_name: row.try_get("zoho_org_name")?,
            zoho_time_zone: row.try_get("zoho_time_zone")?,
            audience_id: row
                .try_get::<Option<uuid::Uuid>, _>("audience_id")?
                .map(AudienceId),
            status: status.parse()?,
            status_reason: row.try_get("status_reason")?,
            schedule: Schedule {
                modules: parse_modules(&modules)?,
                sync_interval_secs: secs(row.try_get("sync_interval_secs")?, "sync_interval_secs")?,
                full_sync_interval_secs: secs(
                    row.try_get("full_sync_interval_secs")?,
                    "full_sync_interval_secs",
                )?,
            },
            next_sync_at: row.try_get("next_sync_at")?,
            last_full_sync_at: row.try_get("last_full_sync_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            deleted_at: row.try_get("deleted_at")?,
        })
    }
}

pub(crate) const COLUMNS: &str = "id, account_id, name, data_center, api_domain, client_id, encryption_key_id, scopes, \
    zoho_org_id, zoho_org_name, zoho_time_zone, audience_id, status, status_reason, modules, sync_interval_secs, \
    full_sync_interval_secs, next_sync_at, last_full_sync_at, created_at, updated_at, deleted_at";

/// The error of a run cancelled because its integration's audience was unmapped.
const AUDIENCE_UNMAPPED: &str =
    "the integration's audience was unmapped, so the run was cancelled; map an audience and press Sync Now to sync again";

fn audience_rejected() -> StoreError {
    StoreError::Rejected("the audience does not exist in this integration's account; pick one of the account's audiences".into())
}

/// Maps the integration's constraint violations to errors a person can act on.
fn map_write_error(error: sqlx::Error, name: &str) -> StoreError {
    match constraint(&error) {
        Some("integrations_account_name_live_key") => StoreError::Conflict {
            what: format!("an integration named {name:?} in this account"),
            field: "name",
        },
        Some("integrations_audience_same_account_fkey") => audience_rejected(),
        _ => error.into(),
    }
}

impl Store {
    /// Creates an integration (status active, no schedule yet: `next_sync_at` stays NULL until the
    /// first run is enqueued, so it never syncs before the creator's first Sync Now).
    #[tracing::instrument(name = "store.insert_integration", skip_all, fields(account_id = %new.account_id), err)]
    pub async fn insert_integration(
        &self,
        new: &NewIntegration,
    ) -> Result<Integration, StoreError> {
        new.schedule.validate()?;
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(StoreError::Rejected(
                "an integration name must be 1 to 200 characters".into(),
            ));
        }
        let c = &new.credentials;
        let sql = format!(
            "INSERT INTO integrations (id, account_id, name, data_center, api_domain, client_id, \
               client_secret_ciphertext, refresh_token_ciphertext, encryption_key_id, scopes, zoho_org_id, \
               zoho_org_name, zoho_time_zone, audience_id, modules, sync_interval_secs, full_sync_interval_secs) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(IntegrationId::new().0)
            .bind(new.account_id.as_str())
            .bind(name)
            .bind(c.data_center.code())
            .bind(&c.api_domain)
            .bind(&c.client_id)
            .bind(&c.client_secret.0)
            .bind(&c.refresh_token.0)
            .bind(&c.encryption_key_id)
            .bind(&c.scopes)
            .bind(&new.zoho_org_id)
            .bind(&new.zoho_org_name)
            .bind(&new.zoho_time_zone)
            .bind(new.audience_id.map(|a| a.0))
            .bind(new.schedule.modules_sorted())
            .bind(new.schedule.sync_interval_secs as i32)
            .bind(new.schedule.full_sync_interval_secs as i32)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| map_write_error(e, name))?;
        Integration::from_row(&row)
    }

    /// One integration (deleted ones too: see `deleted_at`), or [`StoreError::NotFound`].
    pub async fn get_integration(&self, id: IntegrationId) -> Result<Integration, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM integrations WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("integration", id))?;
        Integration::from_row(&row)
    }

    /// The account's live integrations, oldest first.
    pub async fn list_integrations(
        &self,
        account: &AccountId,
    ) -> Result<Vec<Integration>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM integrations WHERE account_id = $1 AND deleted_at IS NULL ORDER BY created_at, id"
        ))
        .bind(account.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Integration::from_row).collect()
    }

    /// Maps (or unmaps, with `None`) the audience the integration feeds. The audience must belong
    /// to the integration's account (the database enforces it too). A run already going keeps
    /// the audience it started with when the integration is remapped; unmapping cancels it in the
    /// same transaction (the creator no longer wants records in that audience, and its late
    /// batches are discarded by the sink).
    #[tracing::instrument(name = "store.set_audience", skip(self), err)]
    pub async fn set_audience(
        &self,
        id: IntegrationId,
        audience: Option<AudienceId>,
    ) -> Result<Integration, StoreError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "UPDATE integrations SET audience_id = $2, updated_at = now() \
             WHERE id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.0)
            .bind(audience.map(|a| a.0))
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| map_write_error(e, ""))?
            .ok_or_else(|| StoreError::not_found("integration", id))?;
        let cancelled = match audience {
            Some(_) => 0,
            None => cancel_active_runs(&mut tx, id, AUDIENCE_UNMAPPED).await?,
        };
        tx.commit().await?;
        count_cancelled(cancelled);
        Integration::from_row(&row)
    }

    /// Changes modules and intervals. A shorter interval brings the next scheduled run forward; an
    /// integration that never ran keeps no schedule until its first Sync Now.
    pub async fn update_schedule(
        &self,
        id: IntegrationId,
        schedule: &Schedule,
    ) -> Result<Integration, StoreError> {
        schedule.validate()?;
        let sql = format!(
            "UPDATE integrations SET modules = $2, sync_interval_secs = $3, full_sync_interval_secs = $4, \
               next_sync_at = CASE WHEN next_sync_at IS NULL THEN NULL \
                 ELSE LEAST(next_sync_at, now() + make_interval(secs => $3)) END, updated_at = now() \
             WHERE id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.0)
            .bind(schedule.modules_sorted())
            .bind(schedule.sync_interval_secs as i32)
            .bind(schedule.full_sync_interval_secs as i32)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("integration", id))?;
        Integration::from_row(&row)
    }

    /// Sets the status. `Active` clears the reason; `Disabled` also cancels the active run, so
    /// its queued jobs are acked without work.
    #[tracing::instrument(name = "store.set_integration_status", skip(self, reason), err)]
    pub async fn set_integration_status(
        &self,
        id: IntegrationId,
        status: IntegrationStatus,
        reason: Option<&str>,
    ) -> Result<Integration, StoreError> {
        let reason = if status == IntegrationStatus::Active {
            None
        } else {
            reason
        };
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "UPDATE integrations SET status = $2, status_reason = $3, updated_at = now() \
             WHERE id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.0)
            .bind(status.as_str())
            .bind(reason)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::not_found("integration", id))?;
        let cancelled = if status == IntegrationStatus::Disabled {
            cancel_active_runs(&mut tx, id, "the integration was disabled").await?
        } else {
            0
        };
        tx.commit().await?;
        count_cancelled(cancelled);
        Integration::from_row(&row)
    }

    /// Deletes an integration softly: it never syncs again, its active run is cancelled, and its
    /// member sources are marked removed. The members it brought stay in the audience (deleting a
    /// connection does not empty a list). Deleting twice is a no-op.
    #[tracing::instrument(name = "store.delete_integration", skip(self), err)]
    pub async fn delete_integration(&self, id: IntegrationId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query(
            "UPDATE integrations SET deleted_at = now(), status = 'disabled', status_reason = 'deleted', \
               updated_at = now() WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if deleted == 0 {
            let exists: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM integrations WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await?;
            return match exists {
                Some(_) => Ok(()),
                None => Err(StoreError::not_found("integration", id)),
            };
        }
        let cancelled = cancel_active_runs(&mut tx, id, "the integration was deleted").await?;
        sqlx::query(
            "UPDATE member_sources SET removed_at = now(), removed_reason = 'integration_deleted' \
             WHERE integration_id = $1 AND removed_at IS NULL",
        )
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        count_cancelled(cancelled);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_validated() {
        assert!(Schedule::default().validate().is_ok());
        let empty = Schedule {
            modules: vec![],
            ..Schedule::default()
        };
        assert!(empty.validate().is_err());
        let eager = Schedule {
            sync_interval_secs: 5,
            ..Schedule::default()
        };
        assert!(eager.validate().is_err());
    }
}
