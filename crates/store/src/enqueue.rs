//! Starting runs: Sync Now ([`Store::enqueue_run`]) and the periodic scheduler
//! ([`Store::claim_due_integrations`]). A run and its first job are written in one transaction
//! (the job into the outbox), so a run never exists without its job nor a job without its run.
//! "One active run per integration" is checked under the integration's row lock and enforced by
//! a partial unique index.

use std::collections::BTreeMap;

use pledgesync_core::messages::{SyncMode, Trigger};
use pledgesync_core::{AudienceId, IntegrationId, RunId};
use sqlx::{PgConnection, Row};

use crate::codec::{mode_str, trigger_str};
use crate::db::Store;
use crate::error::StoreError;
use crate::outbox::OUTBOX_CHANNEL;
use crate::runs::Run;

/// The run being created, handed to the caller so it can build the run's first job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewRun {
    /// The new run's id.
    pub run_id: RunId,
    /// The integration it syncs.
    pub integration_id: IntegrationId,
    /// The audience it writes to.
    pub audience_id: AudienceId,
    /// Full or incremental.
    pub mode: SyncMode,
    /// Sync Now or schedule.
    pub trigger: Trigger,
}

/// A message for the outbox relay to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxMessage {
    /// The queue (routing key) to publish to.
    pub queue: String,
    /// The message body, as it will be published.
    pub payload: Vec<u8>,
    /// AMQP headers, e.g. `traceparent`, so the trace continues across the relay.
    pub headers: BTreeMap<String, String>,
}

/// What Sync Now did.
#[derive(Clone, Debug, PartialEq)]
pub enum EnqueueOutcome {
    /// A new run was queued with its first job.
    Enqueued(Box<Run>),
    /// A run was already queued or running: that one is returned, nothing was written.
    AlreadyActive(Box<Run>),
}

impl EnqueueOutcome {
    /// The run, new or already going.
    pub fn run(&self) -> &Run {
        match self {
            EnqueueOutcome::Enqueued(run) | EnqueueOutcome::AlreadyActive(run) => run,
        }
    }
}

impl Store {
    /// Sync Now: queues a run of the integration with its first job (built by `build_job` from
    /// the new run's ids), or returns the run already active. Refused with a message saying what
    /// to do when the integration is deleted, not active, or has no audience.
    #[tracing::instrument(name = "store.enqueue_run", skip(self, build_job), err)]
    pub async fn enqueue_run<F>(
        &self,
        integration: IntegrationId,
        mode: SyncMode,
        trigger: Trigger,
        build_job: F,
    ) -> Result<EnqueueOutcome, StoreError>
    where
        F: FnOnce(&NewRun) -> OutboxMessage,
    {
        let mut tx = self.pool.begin().await?;
        // The row lock serialises Sync Now against itself and against the periodic scheduler. NO
        // KEY: it must not wait for the key-share locks that applying sinks hold on the row.
        let row = sqlx::query(
            "SELECT status, status_reason, audience_id, deleted_at IS NOT NULL AS deleted \
             FROM integrations WHERE id = $1 FOR NO KEY UPDATE",
        )
        .bind(integration.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found("integration", integration))?;
        if let Some(active) = active_run_id(&mut tx, integration).await? {
            tx.rollback().await?;
            return Ok(EnqueueOutcome::AlreadyActive(Box::new(
                self.get_run(active).await?,
            )));
        }
        let audience = runnable_audience(&row)?;
        let new = NewRun {
            run_id: RunId::new(),
            integration_id: integration,
            audience_id: audience,
            mode,
            trigger,
        };
        let job = build_job(&new);
        let inserted = insert_runs(&mut tx, std::slice::from_ref(&new)).await?;
        if inserted.is_empty() {
            // Only reachable if the index saw a run the lock did not: report it the same way.
            tx.rollback().await?;
            return match self.active_run(integration).await? {
                Some(run) => Ok(EnqueueOutcome::AlreadyActive(Box::new(run))),
                None => Err(StoreError::Contention {
                    code: "23505".into(),
                    source: None,
                }),
            };
        }
        insert_jobs(&mut tx, &[(new.run_id, job)]).await?;
        // A manual run defers the schedule by one interval; the first one starts it (GREATEST
        // skips the NULL a new integration has).
        sqlx::query(
            "UPDATE integrations SET next_sync_at = GREATEST(next_sync_at, now() + make_interval(secs => sync_interval_secs)) \
             WHERE id = $1",
        )
        .bind(integration.0)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!("NOTIFY {OUTBOX_CHANNEL}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        count_enqueued(&new);
        Ok(EnqueueOutcome::Enqueued(Box::new(
            self.get_run(new.run_id).await?,
        )))
    }

    /// The periodic scheduler's tick: in one transaction, claims up to `limit` integrations that
    /// are due (active, mapped to an audience, no active run, `next_sync_at` passed — never an
    /// integration whose first Sync Now has not happened, whose `next_sync_at` is NULL), queues a run for each with its
    /// first job, and moves their next sync one interval from now. Integrations another scheduler
    /// is claiming are skipped, not waited for, so replicas running this at once never enqueue an
    /// integration twice. The mode is full when the last full run is older than the integration's
    /// full-sync interval (or there never was one), else incremental.
    #[tracing::instrument(name = "store.claim_due_integrations", skip(self, build_job), err)]
    pub async fn claim_due_integrations<F>(
        &self,
        limit: u32,
        mut build_job: F,
    ) -> Result<Vec<NewRun>, StoreError>
    where
        F: FnMut(&NewRun) -> OutboxMessage,
    {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT i.id, i.audience_id, \
               (i.last_full_sync_at IS NULL \
                OR i.last_full_sync_at <= now() - make_interval(secs => i.full_sync_interval_secs)) AS full \
             FROM integrations i \
             WHERE i.next_sync_at <= now() AND i.status = 'active' AND i.deleted_at IS NULL \
               AND i.audience_id IS NOT NULL \
               AND NOT EXISTS (SELECT 1 FROM sync_runs r WHERE r.integration_id = i.id AND r.status IN ('queued', 'running')) \
             ORDER BY i.next_sync_at, i.id LIMIT $1 \
             FOR NO KEY UPDATE OF i SKIP LOCKED",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
        let mut runs = Vec::with_capacity(rows.len());
        for row in &rows {
            let full: bool = row.try_get("full")?;
            runs.push(NewRun {
                run_id: RunId::new(),
                integration_id: IntegrationId(row.try_get("id")?),
                audience_id: AudienceId(row.try_get("audience_id")?),
                mode: if full {
                    SyncMode::Full
                } else {
                    SyncMode::Incremental
                },
                trigger: Trigger::Schedule,
            });
        }
        let inserted = insert_runs(&mut tx, &runs).await?;
        runs.retain(|run| inserted.contains(&run.run_id));
        let jobs: Vec<(RunId, OutboxMessage)> = runs
            .iter()
            .map(|run| (run.run_id, build_job(run)))
            .collect();
        insert_jobs(&mut tx, &jobs).await?;
        let claimed: Vec<uuid::Uuid> = rows
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<_, _>>()?;
        sqlx::query(
            "UPDATE integrations SET next_sync_at = now() + make_interval(secs => sync_interval_secs) \
             WHERE id = ANY($1)",
        )
        .bind(&claimed)
        .execute(&mut *tx)
        .await?;
        if !runs.is_empty() {
            sqlx::query(&format!("NOTIFY {OUTBOX_CHANNEL}"))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        runs.iter().for_each(count_enqueued);
        Ok(runs)
    }
}

/// The audience a run may start with, or why it may not start.
fn runnable_audience(row: &sqlx::postgres::PgRow) -> Result<AudienceId, StoreError> {
    let status: String = row.try_get("status")?;
    let reason: Option<String> = row.try_get("status_reason")?;
    let deleted: bool = row.try_get("deleted")?;
    let audience: Option<uuid::Uuid> = row.try_get("audience_id")?;
    if deleted {
        return Err(StoreError::Rejected(
            "the integration was deleted; it cannot sync".into(),
        ));
    }
    match status.as_str() {
        "active" => {}
        "needs_reauth" => {
            return Err(StoreError::Rejected(format!(
                "Zoho no longer accepts this integration's credentials ({}); reconnect it with a new grant code, then sync",
                reason.as_deref().unwrap_or("refresh token rejected")
            )))
        }
        _ => return Err(StoreError::Rejected("the integration is disabled; enable it, then sync".into())),
    }
    audience.map(AudienceId).ok_or_else(|| {
        StoreError::Rejected(
            "the integration has no audience yet; map an audience, then sync".into(),
        )
    })
}

async fn active_run_id(
    conn: &mut PgConnection,
    integration: IntegrationId,
) -> Result<Option<RunId>, StoreError> {
    let id: Option<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM sync_runs WHERE integration_id = $1 AND status IN ('queued', 'running')",
    )
    .bind(integration.0)
    .fetch_optional(conn)
    .await?;
    Ok(id.map(RunId))
}

/// Inserts queued runs; a run whose integration already has an active one is left out (the
/// partial unique index says so). Returns the ids inserted.
async fn insert_runs(conn: &mut PgConnection, runs: &[NewRun]) -> Result<Vec<RunId>, StoreError> {
    let ids: Vec<uuid::Uuid> = runs.iter().map(|r| r.run_id.0).collect();
    let integrations: Vec<uuid::Uuid> = runs.iter().map(|r| r.integration_id.0).collect();
    let audiences: Vec<uuid::Uuid> = runs.iter().map(|r| r.audience_id.0).collect();
    let modes: Vec<&str> = runs.iter().map(|r| mode_str(r.mode)).collect();
    let triggers: Vec<&str> = runs.iter().map(|r| trigger_str(r.trigger)).collect();
    let inserted: Vec<uuid::Uuid> = sqlx::query_scalar(
        "INSERT INTO sync_runs (id, integration_id, audience_id, mode, trigger) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[]) \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(&ids)
    .bind(&integrations)
    .bind(&audiences)
    .bind(&modes)
    .bind(&triggers)
    .fetch_all(conn)
    .await?;
    Ok(inserted.into_iter().map(RunId).collect())
}

/// Writes the runs' first jobs into the outbox.
async fn insert_jobs(
    conn: &mut PgConnection,
    jobs: &[(RunId, OutboxMessage)],
) -> Result<(), StoreError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let run_ids: Vec<uuid::Uuid> = jobs.iter().map(|(id, _)| id.0).collect();
    let queues: Vec<&str> = jobs.iter().map(|(_, m)| m.queue.as_str()).collect();
    let payloads: Vec<&[u8]> = jobs.iter().map(|(_, m)| m.payload.as_slice()).collect();
    let headers: Vec<serde_json::Value> = jobs
        .iter()
        .map(|(_, m)| {
            let map = m
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())));
            serde_json::Value::Object(map.collect())
        })
        .collect();
    sqlx::query(
        "INSERT INTO outbox (run_id, queue, payload, headers) \
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::jsonb[])",
    )
    .bind(&run_ids)
    .bind(&queues)
    .bind(&payloads)
    .bind(&headers)
    .execute(conn)
    .await?;
    Ok(())
}

fn count_enqueued(run: &NewRun) {
    metrics::counter!(
        "pledgesync_store_runs_enqueued_total",
        "trigger" => trigger_str(run.trigger),
        "mode" => mode_str(run.mode)
    )
    .increment(1);
    tracing::info!(run_id = %run.run_id, integration_id = %run.integration_id, mode = mode_str(run.mode),
        trigger = trigger_str(run.trigger), "run enqueued");
}
