//! Runs: their lifecycle (queued → running → succeeded | failed | cancelled), the fetcher's
//! checkpoint, and the read model with counters derived from the batch ledger.
//!
//! Only the fetcher writes a running run's row (checkpoint, batches published, fetched); sinks
//! only insert ledger rows, so concurrent sinks never contend on the run row. A run completes when
//! its ledger holds `batches_total` rows: [`Store::try_complete_run`] checks that in one statement
//! and is called after both events (the fetcher setting the total, a sink committing a batch), each
//! after its own commit, so whichever comes last sees the other.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use pledgesync_core::messages::{SyncMode, Trigger};
use pledgesync_core::{AudienceId, IntegrationId, RunId};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::codec::{count, parse_mode, parse_trigger, to_i64, RunStatus};
use crate::db::Store;
use crate::error::StoreError;

/// What a run shows: its state and its progress counters.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Its id.
    pub id: RunId,
    /// The integration it syncs.
    pub integration_id: IntegrationId,
    /// The audience it writes to, fixed when it was enqueued.
    pub audience_id: AudienceId,
    /// Full or incremental.
    pub mode: SyncMode,
    /// Sync Now or schedule.
    pub trigger: Trigger,
    /// Where it is in its life.
    pub status: RunStatus,
    /// Why it failed or was cancelled, in words for the creator.
    pub error: Option<String>,
    /// The fetcher's resume position; opaque to the store.
    pub checkpoint: Option<serde_json::Value>,
    /// Progress counters.
    pub counters: RunCounters,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When a fetcher first picked it up.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a final status.
    pub finished_at: Option<DateTime<Utc>>,
    /// When its fetcher last reported (start or checkpoint).
    pub heartbeat_at: Option<DateTime<Utc>>,
}

/// A run's progress. Applied, skipped, deleted and batches applied are sums over the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunCounters {
    /// Zoho's record count for the run's modules, for a progress bar; `None` until known.
    pub total_estimate: Option<u64>,
    /// Records the fetcher read from Zoho.
    pub fetched: u64,
    /// Records written to the audience.
    pub applied: u64,
    /// Records not written, all reasons together.
    pub skipped: u64,
    /// Records not written, by reason (e.g. `missing_email`, `superseded`).
    pub skipped_by_reason: BTreeMap<String, u64>,
    /// Members removed from the audience.
    pub deleted: u64,
    /// Batches the fetcher published (confirmed by the broker).
    pub batches_published: u64,
    /// Batches the sinks applied.
    pub batches_applied: u64,
    /// How many batches the run has in all; `None` until the fetcher published the last one.
    pub batches_total: Option<u64>,
}

/// Whether a fetcher should work a job of this run.
#[derive(Clone, Debug, PartialEq)]
pub enum RunStart {
    /// The run is running (now or already): work from its checkpoint.
    Proceed(Box<Run>),
    /// The run is finished or cancelled: ack the job without work.
    Skip(RunStatus),
}

/// What a fetcher records after its pages are confirmed by the broker.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Its resume position (module index, page token, next seq...), opaque to the store.
    pub position: serde_json::Value,
    /// Batches published so far, confirmed.
    pub batches_published: u64,
    /// Records fetched so far.
    pub fetched: u64,
}

const RUN_SELECT: &str = "SELECT r.id, r.integration_id, r.audience_id, r.mode, r.trigger, r.status, r.error, \
    r.total_estimate, r.checkpoint, r.batches_published, r.batches_total, r.fetched, r.created_at, r.started_at, \
    r.finished_at, r.heartbeat_at, l.batches_applied, l.applied, l.skipped, l.deleted, l.skipped_by_reason \
    FROM sync_runs r CROSS JOIN LATERAL ( \
      SELECT count(*) AS batches_applied, COALESCE(sum(b.applied), 0)::bigint AS applied, \
        COALESCE(sum(b.skipped), 0)::bigint AS skipped, COALESCE(sum(b.deleted), 0)::bigint AS deleted, \
        (SELECT COALESCE(jsonb_object_agg(s.reason, s.n), '{}'::jsonb) FROM ( \
           SELECT e.key AS reason, sum(e.value::bigint) AS n \
           FROM run_batches b2 CROSS JOIN LATERAL jsonb_each_text(b2.skipped_by_reason) e \
           WHERE b2.run_id = r.id GROUP BY e.key) s) AS skipped_by_reason \
      FROM run_batches b WHERE b.run_id = r.id) l";

/// Marks a run succeeded when its ledger is complete, and in the same statement promotes the
/// cursors it staged (only forward) and records a full run's start as the last full sync.
/// `$1` is an array of run ids.
const COMPLETE_SQL: &str = "WITH done AS ( \
      UPDATE sync_runs r SET status = 'succeeded', finished_at = now(), heartbeat_at = now() \
      WHERE r.id = ANY($1) AND r.status = 'running' AND r.batches_total IS NOT NULL \
        AND r.batches_total = (SELECT count(*) FROM run_batches b WHERE b.run_id = r.id) \
      RETURNING r.id, r.integration_id, r.mode, COALESCE(r.started_at, r.created_at) AS started_at), \
    cursors AS ( \
      INSERT INTO sync_cursors (integration_id, module, modified_since, deleted_since, updated_at) \
      SELECT d.integration_id, c.module, c.modified_since, c.deleted_since, now() \
      FROM done d JOIN run_cursors c ON c.run_id = d.id \
      ON CONFLICT (integration_id, module) DO UPDATE SET \
        modified_since = GREATEST(sync_cursors.modified_since, EXCLUDED.modified_since), \
        deleted_since = GREATEST(sync_cursors.deleted_since, EXCLUDED.deleted_since), \
        updated_at = now()), \
    full_sync AS ( \
      UPDATE integrations i SET last_full_sync_at = GREATEST(i.last_full_sync_at, d.started_at), updated_at = now() \
      FROM done d WHERE i.id = d.integration_id AND d.mode = 'full') \
    SELECT id FROM done";

impl Run {
    pub(crate) fn from_row(row: &PgRow) -> Result<Self, StoreError> {
        let mode: String = row.try_get("mode")?;
        let trigger: String = row.try_get("trigger")?;
        let status: String = row.try_get("status")?;
        let reasons: serde_json::Value = row.try_get("skipped_by_reason")?;
        let skipped_by_reason = serde_json::from_value(reasons)
            .map_err(|e| StoreError::corrupt(format!("run_batches.skipped_by_reason: {e}")))?;
        Ok(Run {
            id: RunId(row.try_get("id")?),
            integration_id: IntegrationId(row.try_get("integration_id")?),
            audience_id: AudienceId(row.try_get("audience_id")?),
            mode: parse_mode(&mode)?,
            trigger: parse_trigger(&trigger)?,
            status: status.parse()?,
            error: row.try_get("error")?,
            checkpoint: row.try_get("checkpoint")?,
            counters: RunCounters {
                total_estimate: row.try_get::<Option<i64>, _>("total_estimate")?.map(count),
                fetched: count(row.try_get("fetched")?),
                applied: count(row.try_get("applied")?),
                skipped: count(row.try_get("skipped")?),
                skipped_by_reason,
                deleted: count(row.try_get("deleted")?),
                batches_published: count(row.try_get("batches_published")?),
                batches_applied: count(row.try_get("batches_applied")?),
                batches_total: row.try_get::<Option<i64>, _>("batches_total")?.map(count),
            },
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            heartbeat_at: row.try_get("heartbeat_at")?,
        })
    }
}

impl Store {
    /// One run with its counters, or [`StoreError::NotFound`].
    pub async fn get_run(&self, id: RunId) -> Result<Run, StoreError> {
        let row = sqlx::query(&format!("{RUN_SELECT} WHERE r.id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("run", id))?;
        Run::from_row(&row)
    }

    /// The integration's queued or running run, if any.
    pub async fn active_run(&self, integration: IntegrationId) -> Result<Option<Run>, StoreError> {
        let row = sqlx::query(&format!(
            "{RUN_SELECT} WHERE r.integration_id = $1 AND r.status IN ('queued', 'running')"
        ))
        .bind(integration.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Run::from_row).transpose()
    }

    /// The integration's runs, newest first, `limit` at a time; pass the last run of a page as
    /// `before` for the next one.
    pub async fn list_runs(
        &self,
        integration: IntegrationId,
        limit: u32,
        before: Option<RunId>,
    ) -> Result<Vec<Run>, StoreError> {
        let rows = sqlx::query(&format!(
            "{RUN_SELECT} WHERE r.integration_id = $1 AND ($2::uuid IS NULL OR (r.created_at, r.id) < \
               (SELECT p.created_at, p.id FROM sync_runs p WHERE p.id = $2)) \
             ORDER BY r.created_at DESC, r.id DESC LIMIT $3"
        ))
        .bind(integration.0)
        .bind(before.map(|b| b.0))
        .bind(i64::from(limit.clamp(1, 500)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Run::from_row).collect()
    }

    /// Called by a fetcher when it receives a job: moves a queued run to running and says whether
    /// to work. A finished or cancelled run answers [`RunStart::Skip`]. A job whose integration id
    /// does not match the run's is [`StoreError::Rejected`] (a forged or corrupt message).
    #[tracing::instrument(name = "store.start_run", skip(self), err)]
    pub async fn start_run(
        &self,
        id: RunId,
        integration: IntegrationId,
    ) -> Result<RunStart, StoreError> {
        let run = self.get_run(id).await?;
        if run.integration_id != integration {
            return Err(StoreError::Rejected(format!(
                "run {id} belongs to integration {}, not {integration}; the message is forged or corrupt",
                run.integration_id
            )));
        }
        if !run.status.is_active() {
            return Ok(RunStart::Skip(run.status));
        }
        let started = sqlx::query(
            "UPDATE sync_runs SET status = 'running', started_at = COALESCE(started_at, now()), heartbeat_at = now() \
             WHERE id = $1 AND status IN ('queued', 'running')",
        )
        .bind(id.0)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        // Re-read either way: the run may have been cancelled between the two statements.
        let run = self.get_run(id).await?;
        match run.status {
            RunStatus::Running if started => Ok(RunStart::Proceed(Box::new(run))),
            status => Ok(RunStart::Skip(status)),
        }
    }

    /// Records Zoho's record count for the progress bar.
    pub async fn set_total_estimate(&self, id: RunId, estimate: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sync_runs SET total_estimate = $2 WHERE id = $1 AND status IN ('queued', 'running')")
            .bind(id.0)
            .bind(to_i64(estimate, "total_estimate")?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Saves the fetcher's checkpoint with its counters in one statement. Returns `false` when the
    /// run is no longer running (cancelled or failed meanwhile): the fetcher should stop.
    #[tracing::instrument(name = "store.save_checkpoint", skip(self, checkpoint), err)]
    pub async fn save_checkpoint(
        &self,
        id: RunId,
        checkpoint: &Checkpoint,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE sync_runs SET checkpoint = $2, batches_published = $3, fetched = $4, heartbeat_at = now() \
             WHERE id = $1 AND status = 'running'",
        )
        .bind(id.0)
        .bind(&checkpoint.position)
        .bind(to_i64(checkpoint.batches_published, "batches_published")?)
        .bind(to_i64(checkpoint.fetched, "fetched")?)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Records that the fetcher published the run's last batch, then completes the run if every
    /// batch is already applied. Returns the run's status afterwards.
    #[tracing::instrument(name = "store.set_batches_total", skip(self), err)]
    pub async fn set_batches_total(&self, id: RunId, total: u64) -> Result<RunStatus, StoreError> {
        let total = to_i64(total, "batches_total")?;
        sqlx::query(
            "UPDATE sync_runs SET batches_total = $2, batches_published = GREATEST(batches_published, $2), \
               heartbeat_at = now() WHERE id = $1 AND status = 'running'",
        )
        .bind(id.0)
        .bind(total)
        .execute(&self.pool)
        .await?;
        self.try_complete_run(id).await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM sync_runs WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?;
        status
            .ok_or_else(|| StoreError::not_found("run", id))?
            .parse()
    }

    /// Marks the run succeeded if its total is known and its ledger is complete (promoting its
    /// staged cursors). Idempotent and race-free; returns whether this call completed it.
    pub async fn try_complete_run(&self, id: RunId) -> Result<bool, StoreError> {
        let done = self.complete_runs(&[id]).await?;
        Ok(!done.is_empty())
    }

    /// Completes every running run whose ledger is complete: a sweep for the rare run whose last
    /// sink crashed between its commit and its completion check. Returns the runs completed.
    pub async fn complete_finished_runs(&self) -> Result<Vec<RunId>, StoreError> {
        let candidates: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT id FROM sync_runs WHERE status = 'running' AND batches_total IS NOT NULL LIMIT 1000",
        )
        .fetch_all(&self.pool)
        .await?;
        let ids: Vec<RunId> = candidates.into_iter().map(RunId).collect();
        self.complete_runs(&ids).await
    }

    async fn complete_runs(&self, ids: &[RunId]) -> Result<Vec<RunId>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let raw: Vec<uuid::Uuid> = ids.iter().map(|id| id.0).collect();
        let done: Vec<uuid::Uuid> = sqlx::query_scalar(COMPLETE_SQL)
            .bind(raw)
            .fetch_all(&self.pool)
            .await?;
        for id in &done {
            metrics::counter!("pledgesync_store_runs_finished_total", "status" => "succeeded")
                .increment(1);
            tracing::info!(run_id = %id, "run succeeded");
        }
        Ok(done.into_iter().map(RunId).collect())
    }

    /// Fails the run with an error a person can read. With `needs_reauth`, the integration is put
    /// into needs-reauth with that reason in the same transaction (Zoho rejected the refresh
    /// token). Returns whether the run was active (a finished run keeps its status).
    #[tracing::instrument(name = "store.fail_run", skip(self), err)]
    pub async fn fail_run(
        &self,
        id: RunId,
        error: &str,
        needs_reauth: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let integration: Option<uuid::Uuid> =
            sqlx::query_scalar("SELECT integration_id FROM sync_runs WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
        let integration = integration.ok_or_else(|| StoreError::not_found("run", id))?;
        let failed = sqlx::query(
            "UPDATE sync_runs SET status = 'failed', error = $2, finished_at = now() \
             WHERE id = $1 AND status IN ('queued', 'running')",
        )
        .bind(id.0)
        .bind(error)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if let Some(reason) = needs_reauth {
            sqlx::query(
                "UPDATE integrations SET status = 'needs_reauth', status_reason = $2, updated_at = now() \
                 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(integration)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if failed {
            metrics::counter!("pledgesync_store_runs_finished_total", "status" => "failed")
                .increment(1);
        }
        Ok(failed)
    }

    /// Cancels the run if it is active; its queued jobs are then acked without work and its
    /// in-flight batches are discarded by the sink (`run_cancelled`). Returns whether it was
    /// active.
    #[tracing::instrument(name = "store.cancel_run", skip(self), err)]
    pub async fn cancel_run(&self, id: RunId, reason: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "UPDATE sync_runs SET status = 'cancelled', error = $2, finished_at = now() \
             WHERE id = $1 AND status IN ('queued', 'running') RETURNING id",
        )
        .bind(id.0)
        .bind(reason)
        .fetch_optional(&self.pool)
        .await?;
        if row.is_none() {
            self.get_run(id).await?;
            return Ok(false);
        }
        metrics::counter!("pledgesync_store_runs_finished_total", "status" => "cancelled")
            .increment(1);
        Ok(true)
    }

    /// Batches published but not yet applied: the fetcher waits while this is at its bound
    /// (promise 6).
    pub async fn outstanding_batches(&self, id: RunId) -> Result<u64, StoreError> {
        let outstanding: Option<i64> = sqlx::query_scalar(
            "SELECT r.batches_published - (SELECT count(*) FROM run_batches b WHERE b.run_id = r.id) \
             FROM sync_runs r WHERE r.id = $1",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        outstanding
            .map(count)
            .ok_or_else(|| StoreError::not_found("run", id))
    }
}

/// Cancels the integration's queued or running run, if any, inside the caller's transaction.
/// Returns how many were cancelled; the caller counts them with [`count_cancelled`] once its
/// transaction committed.
pub(crate) async fn cancel_active_runs(
    tx: &mut sqlx::PgConnection,
    id: IntegrationId,
    why: &str,
) -> Result<u64, StoreError> {
    let cancelled = sqlx::query(
        "UPDATE sync_runs SET status = 'cancelled', error = $2, finished_at = now() \
         WHERE integration_id = $1 AND status IN ('queued', 'running')",
    )
    .bind(id.0)
    .bind(why)
    .execute(tx)
    .await?
    .rows_affected();
    Ok(cancelled)
}

/// Counts runs [`cancel_active_runs`] cancelled in a transaction that has committed.
pub(crate) fn count_cancelled(cancelled: u64) {
    if cancelled > 0 {
        metrics::counter!("pledgesync_store_runs_finished_total", "status" => "cancelled")
            .increment(cancelled);
    }
}
