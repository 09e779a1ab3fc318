//! The fetcher's hot-path queries: a checkpoint saved only if no other job moved the run on, the
//! cheap read that back-pressure polls, the heartbeat it sends while it waits, and a full run's
//! deletion candidates with the version of each that was applied.

use chrono::{DateTime, Utc};
use pledgesync_core::{IntegrationId, Module, RunId, ZohoRecordId};
use sqlx::Row;

use crate::codec::{count, to_i64, RunStatus};
use crate::db::Store;
use crate::error::StoreError;

/// What back-pressure needs of a run: its status and how many of its batches are in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchProgress {
    /// The run's status; a fetcher stops waiting when it is no longer running.
    pub status: RunStatus,
    /// Batches the fetcher published (confirmed by RabbitMQ).
    pub batches_published: u64,
    /// Batches in the run's ledger.
    pub batches_applied: u64,
}

impl Store {
    /// Saves the fetcher's checkpoint with its counters, only if the run is running and its
    /// `batches_published` is still `expected_published`: when a job was delivered twice, the
    /// one that falls behind finds its commit refused and stops, instead of moving the checkpoint
    /// back. Returns whether it was saved.
    #[tracing::instrument(name = "store.save_checkpoint_if", skip(self, position), err)]
    pub async fn save_checkpoint_if(
        &self,
        id: RunId,
        expected_published: u64,
        position: &serde_json::Value,
        batches_published: u64,
        fetched: u64,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE sync_runs SET checkpoint = $2, batches_published = $3, fetched = $4, heartbeat_at = now() \
             WHERE id = $1 AND status = 'running' AND batches_published = $5",
        )
        .bind(id.0)
        .bind(position)
        .bind(to_i64(batches_published, "batches_published")?)
        .bind(to_i64(fetched, "fetched")?)
        .bind(to_i64(expected_published, "batches_published")?)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// The run's status, batches published and batches applied, in one indexed read.
    pub async fn fetch_progress(&self, id: RunId) -> Result<FetchProgress, StoreError> {
        let row = sqlx::query(
            "SELECT r.status, r.batches_published, \
               (SELECT count(*) FROM run_batches b WHERE b.run_id = r.id) AS batches_applied \
             FROM sync_runs r WHERE r.id = $1",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::not_found("run", id))?;
        let status: String = row.try_get("status")?;
        Ok(FetchProgress {
            status: status.parse()?,
            batches_published: count(row.try_get("batches_published")?),
            batches_applied: count(row.try_get("batches_applied")?),
        })
    }

    /// Tells the stale-run watchdog ([`crate::stale`]) that the run's fetcher is alive, e.g. while
    /// it waits for the sink. Returns whether the run is still running.
    pub async fn heartbeat_run(&self, id: RunId) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE sync_runs SET heartbeat_at = now() WHERE id = $1 AND status = 'running'",
        )
        .bind(id.0)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Like [`Store::members_unseen_by_run`], with each source's `modified_at` (Zoho's Modified_Time of
    /// the version applied): the record was deleted after it, so the oldest of them bounds how
    /// far back the deleted-records API must be read to confirm the candidates.
    pub async fn unseen_sources_with_versions(
        &self,
        integration: IntegrationId,
        run: RunId,
        module: Module,
        after: Option<&ZohoRecordId>,
        limit: u32,
    ) -> Result<Vec<(ZohoRecordId, Option<DateTime<Utc>>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT zoho_id, modified_at FROM member_sources \
             WHERE integration_id = $1 AND zoho_module = $2 AND removed_at IS NULL \
               AND last_seen_run_id IS DISTINCT FROM $3 AND ($4::text IS NULL OR zoho_id > $4) \
             ORDER BY zoho_id LIMIT $5",
        )
        .bind(integration.0)
        .bind(module.api_name())
        .bind(run.0)
        .bind(after.map(|a| a.as_str()))
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("zoho_id")?;
                let id = ZohoRecordId::parse(id)
                    .map_err(|e| StoreError::corrupt(format!("zoho_id: {e}")))?;
                Ok((id, row.try_get("modified_at")?))
            })
            .collect()
    }
}
