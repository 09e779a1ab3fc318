//! The stale-run watchdog: fails active runs that nothing has moved for too long.
//!
//! A run whose job RabbitMQ dead-lettered without any fetcher seeing it (a fetcher killed on every
//! delivery, a queue purged) would otherwise stay `queued` or `running` forever, and the
//! one-active-run index would block every later Sync Now of its integration. So the scheduler asks
//! [`Store::fail_stale_runs`] every tick to fail such runs with an error that says what happened
//! and what to do.
//!
//! A run's last progress is the newest of: its enqueue (`created_at`), its start, the fetcher's
//! heartbeat (written when a job starts, at every checkpoint, and while the fetcher waits for the
//! sink), the newest batch in its ledger (`run_batches.applied_at`: a run whose fetcher waits on
//! the sink while the sink keeps applying is alive), and the publish of its first job by the
//! outbox relay. A queued run whose first job is still in the outbox is never stale: nothing was
//! lost, the relay publishes it once RabbitMQ answers. A queued run whose job was published counts
//! like a running one: the same threshold applies to the time its job waits in the jobs queue, so
//! the threshold must exceed the longest wait a backed-up queue may legitimately see.
//!
//! The sweep is one statement with `FOR UPDATE SKIP LOCKED`, so several scheduler replicas may run
//! it at once and each run is failed (and counted) by exactly one. `FOR UPDATE` (not `FOR NO KEY
//! UPDATE`) is deliberate: a sink applying a batch of the run holds a key-share lock on the run row
//! through its ledger row's foreign key, so a run with a batch being applied right now is skipped —
//! that is progress.
//!
//! After the sweep, the failed run behaves like any failed run: a redriven job of it is acked
//! without work (`Store::start_run` answers `Skip(Failed)`), a late batch is discarded by the sink
//! (`run_failed`), a fetcher still holding a job finds its next checkpoint refused and stops, and
//! the next run starts from the integration's cursors, which only a successful run moves.

use std::time::Duration;

use chrono::{DateTime, Utc};
use pledgesync_core::{IntegrationId, RunId};
use sqlx::Row;

use crate::codec::RunStatus;
use crate::db::Store;
use crate::error::StoreError;

/// A run the watchdog failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleRun {
    /// The run.
    pub run_id: RunId,
    /// Its integration, which may sync again now.
    pub integration_id: IntegrationId,
    /// Its status before it was failed: `Queued` (no fetcher ever started it) or `Running`.
    pub was: RunStatus,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When the watchdog failed it.
    pub finished_at: DateTime<Utc>,
    /// Its last sign of progress (see the module docs).
    pub last_progress_at: DateTime<Utc>,
}

impl StaleRun {
    /// Enqueue to failure, for the run-duration metric.
    pub fn duration(&self) -> Option<Duration> {
        (self.finished_at - self.created_at).to_std().ok()
    }

    /// How long nothing moved the run before it was failed.
    pub fn silent_for(&self) -> Option<Duration> {
        (self.finished_at - self.last_progress_at).to_std().ok()
    }
}

/// The error a stale run gets, in words for the creator, with a pointer for operators.
pub fn stale_run_error(was: RunStatus, threshold: Duration) -> String {
    let quiet = human_duration(threshold);
    match was {
        RunStatus::Queued => format!(
            "no worker picked this run up for {quiet} (its job was likely dead-lettered, or the jobs \
             queue is backed up); press Sync Now to start again; operators: see docs/operations.md \
             'Stale runs'"
        ),
        _ => format!(
            "no worker made progress on this run for {quiet} (its job was likely dead-lettered); \
             press Sync Now to start again; operators: see docs/operations.md 'Stale runs'"
        ),
    }
}

/// "30 minutes", "1 minute", "90 seconds".
fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        60 => "1 minute".into(),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        1 => "1 second".into(),
        s => format!("{s} seconds"),
    }
}

/// `$1` threshold in seconds, `$2` limit, `$3`/`$4` the errors of queued/running runs. The outer
/// status check re-reads the row after the lock: a run that ended in between is left alone.
const FAIL_STALE_SQL: &str = "WITH stale AS ( \
      SELECT r.id, r.status AS was, GREATEST(r.created_at, r.started_at, r.heartbeat_at, \
          (SELECT max(b.applied_at) FROM run_batches b WHERE b.run_id = r.id), \
          (SELECT max(o.published_at) FROM outbox o WHERE o.run_id = r.id)) AS last_progress_at \
      FROM sync_runs r \
      WHERE r.status IN ('queued', 'running') \
        AND r.created_at < now() - make_interval(secs => $1) \
        AND (r.heartbeat_at IS NULL OR r.heartbeat_at < now() - make_interval(secs => $1)) \
        AND GREATEST(r.created_at, r.started_at, r.heartbeat_at, \
          (SELECT max(b.applied_at) FROM run_batches b WHERE b.run_id = r.id), \
          (SELECT max(o.published_at) FROM outbox o WHERE o.run_id = r.id)) \
          < now() - make_interval(secs => $1) \
        AND NOT (r.status = 'queued' AND EXISTS ( \
          SELECT 1 FROM outbox o WHERE o.run_id = r.id AND o.published_at IS NULL)) \
      ORDER BY r.created_at, r.id \
      LIMIT $2 \
      FOR UPDATE OF r SKIP LOCKED) \
    UPDATE sync_runs r SET status = 'failed', finished_at = now(), \
      error = CASE WHEN s.was = 'queued' THEN $3 ELSE $4 END \
    FROM stale s WHERE r.id = s.id AND r.status IN ('queued', 'running') \
    RETURNING r.id, r.integration_id, s.was, r.created_at, r.finished_at, s.last_progress_at";

impl Store {
    /// Fails up to `limit` active runs without progress for longer than `threshold` (see the
    /// module docs for what counts as progress), each with an error that tells the creator to
    /// press Sync Now and operators where to look. Returns the runs this call failed; safe to
    /// run from several replicas at once.
    #[tracing::instrument(name = "store.fail_stale_runs", skip(self), err)]
    pub async fn fail_stale_runs(
        &self,
        threshold: Duration,
        limit: u32,
    ) -> Result<Vec<StaleRun>, StoreError> {
        let rows = sqlx::query(FAIL_STALE_SQL)
            .bind(threshold.as_secs_f64())
            .bind(i64::from(limit.clamp(1, 10_000)))
            .bind(stale_run_error(RunStatus::Queued, threshold))
            .bind(stale_run_error(RunStatus::Running, threshold))
            .fetch_all(&self.pool)
            .await?;
        let failed = rows
            .iter()
            .map(|row| {
                let was: String = row.try_get("was")?;
                Ok(StaleRun {
                    run_id: RunId(row.try_get("id")?),
                    integration_id: IntegrationId(row.try_get("integration_id")?),
                    was: was.parse()?,
                    created_at: row.try_get("created_at")?,
                    finished_at: row
                        .try_get::<Option<DateTime<Utc>>, _>("finished_at")?
                        .ok_or_else(|| StoreError::corrupt("a failed run without finished_at"))?,
                    last_progress_at: row.try_get("last_progress_at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        if !failed.is_empty() {
            metrics::counter!("pledgesync_store_runs_finished_total", "status" => "failed")
                .increment(failed.len() as u64);
        }
        Ok(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_happened_and_what_to_do() {
        let running = stale_run_error(RunStatus::Running, Duration::from_secs(1800));
        assert!(running.starts_with("no worker made progress on this run for 30 minutes"));
        assert!(running.contains("press Sync Now"));
        assert!(running.contains("docs/operations.md 'Stale runs'"));
        let queued = stale_run_error(RunStatus::Queued, Duration::from_secs(60));
        assert!(queued.starts_with("no worker picked this run up for 1 minute "));
        assert!(queued.contains("press Sync Now"));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(3600)), "60 minutes");
        assert_eq!(human_duration(Duration::from_secs(90)), "90 seconds");
        assert_eq!(human_duration(Duration::from_secs(1)), "1 second");
    }
}
