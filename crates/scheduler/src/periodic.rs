//! The periodic loop: every tick, claim the integrations whose sync is due and queue a run for
//! each (with its first job in the outbox, in the same transaction).
//!
//! Several replicas run this loop at once. The claim locks the due rows `FOR UPDATE SKIP LOCKED`
//! and moves their next sync one interval ahead before committing, so a due sync is enqueued by
//! exactly one replica; the one-active-run index is the last line of defence. The tick also does
//! small chores that need one caller somewhere: completing runs whose last sink died between its
//! commit and its completion check, failing runs that made no progress for `stale_after` (their
//! job was dead-lettered unseen, so they would block their integration's Sync Now forever; see
//! `pledgesync_store::stale`), and purging old published outbox rows. The stale sweep uses
//! `SKIP LOCKED` too, so each stale run is failed, logged and counted by one replica.

use std::sync::Arc;
use std::time::Duration;

use pledgesync_core::shutdown::Shutdown;
use pledgesync_core::telemetry::RunEnd;
use pledgesync_store::{NewRun, StaleRun, Store, StoreError};
use tokio::sync::Notify;

use crate::api::runs::job_message;

/// Published outbox rows are kept this long (for an operator's "was it sent?"), then purged.
const OUTBOX_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Stale runs one sweep fails at most; more wait for the next tick.
const STALE_SWEEP_LIMIT: u32 = 500;

/// The periodic loop's handle.
#[derive(Clone, Debug)]
pub struct Periodic {
    store: Store,
    wake_relay: Arc<Notify>,
    tick: Duration,
    batch: u32,
    stale_after: Duration,
}

impl Periodic {
    /// `stale_after` is `schedule.stale_run_secs`: how long an active run may go without progress
    /// before the loop fails it.
    pub fn new(
        store: Store,
        wake_relay: Arc<Notify>,
        tick: Duration,
        batch: u32,
        stale_after: Duration,
    ) -> Self {
        Self {
            store,
            wake_relay,
            tick,
            batch,
            stale_after,
        }
    }

    /// Ticks until `shutdown`. A tick that claimed a full batch runs again at once: more may be due.
    pub async fn run(self, shutdown: Shutdown) {
        tracing::info!(
            tick_secs = self.tick.as_secs(),
            batch = self.batch,
            stale_run_secs = self.stale_after.as_secs(),
            "periodic scheduler started"
        );
        let mut interval = tokio::time::interval(self.tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            loop {
                match self.tick().await {
                    Ok(runs) if runs.len() >= self.batch as usize && !shutdown.is_triggered() => {
                        continue
                    }
                    Ok(_) => break,
                    Err(error) => {
                        metrics::counter!("pledgesync_scheduler_tick_failures_total").increment(1);
                        tracing::warn!(%error, "periodic scheduling failed; trying again next tick");
                        break;
                    }
                }
            }
            self.chores().await;
        }
        tracing::info!("periodic scheduler stopped");
    }

    /// One claim: queues a run for up to a batch of due integrations and wakes the relay.
    pub async fn tick(&self) -> Result<Vec<NewRun>, StoreError> {
        let runs = self
            .store
            .claim_due_integrations(self.batch, job_message)
            .await?;
        if !runs.is_empty() {
            self.wake_relay.notify_one();
            metrics::counter!("pledgesync_scheduler_runs_enqueued_total", "trigger" => "schedule")
                .increment(runs.len() as u64);
            tracing::info!(runs = runs.len(), "scheduled runs enqueued");
        }
        Ok(runs)
    }

    /// Fails active runs without progress for `stale_after`, so their integrations can sync again;
    /// each is logged, counted in `pledgesync_scheduler_stale_runs_failed_total{was}`, and recorded
    /// as a failed run end. Returns the runs this replica failed.
    pub async fn fail_stale_runs(&self) -> Result<Vec<StaleRun>, StoreError> {
        let failed = self
            .store
            .fail_stale_runs(self.stale_after, STALE_SWEEP_LIMIT)
            .await?;
        for run in &failed {
            metrics::counter!("pledgesync_scheduler_stale_runs_failed_total", "was" => run.was.as_str())
                .increment(1);
            pledgesync_core::telemetry::record_run_end(RunEnd::Failed, run.duration());
            tracing::warn!(
                run_id = %run.run_id,
                integration_id = %run.integration_id,
                was = %run.was,
                last_progress_at = %run.last_progress_at,
                silent_secs = run.silent_for().map(|d| d.as_secs()),
                "run failed as stale: no progress within schedule.stale_run_secs; its job was likely dead-lettered"
            );
        }
        Ok(failed)
    }

    async fn chores(&self) {
        match self.store.complete_finished_runs().await {
            Ok(done) if !done.is_empty() => {
                for id in &done {
                    let took = match self.store.get_run(*id).await {
                        Ok(run) => crate::api::runs::run_duration(&run),
                        Err(_) => None,
                    };
                    pledgesync_core::telemetry::record_run_end(RunEnd::Succeeded, took);
                }
                tracing::info!(
                    runs = done.len(),
                    "completed runs whose completion check was missed"
                )
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "completion sweep failed; next tick tries again"),
        }
        if let Err(error) = self.fail_stale_runs().await {
            tracing::warn!(%error, "stale-run sweep failed; next tick tries again");
        }
        if let Err(error) = self.store.purge_published(OUTBOX_RETENTION).await {
            tracing::debug!(%error, "outbox purge failed; next tick tries again");
        }
    }
}
