//! The batch handler: one `RecordBatch` checked against PostgreSQL, mapped, and applied once.
//!
//! Nothing in a message is trusted beyond its ids. The run and its integration are read from
//! PostgreSQL; the audience is the run's (fixed when the run was enqueued), never one a message
//! names. Then the batch is mapped ([`crate::mapping`]) and handed to the group committer
//! ([`crate::commit`]: with the other batches in flight, [`Store::apply_batches`]) or to
//! [`Store::apply_batch`], which write the ledger row, the members, their sources and deletions
//! in one transaction.
//!
//! What each case becomes for the broker:
//! - applied, or already in the ledger (a redelivery), or not to be applied (the run is over, the
//!   integration was deleted, or its audience was unmapped, which also cancels the run):
//!   [`Outcome::Ack`], counted;
//! - PostgreSQL unreachable, a deadlock or serialization failure the store could not get past:
//!   first the handler waits for PostgreSQL to answer again and tries once more, for up to its
//!   patience (`sink.outage_patience_secs`), so that a restart of PostgreSQL does not burn the
//!   deliveries of every batch in flight against the queue's delivery limit; after that, or on
//!   shutdown, [`Outcome::Retry`]: the broker hands the message back after a backoff, and the
//!   ledger makes the later attempt exact;
//! - a batch that can never succeed (unknown run or integration, a run of another integration, a
//!   module the integration does not sync): [`Outcome::DeadLetter`] with the reason.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pledgesync_broker::{Backoff, DeliveryInfo, Handler, Outcome};
use pledgesync_core::messages::{BatchKind, RecordBatch};
use pledgesync_core::shutdown::Shutdown;
use pledgesync_core::telemetry::RunEnd;
use pledgesync_core::AudienceId;
use pledgesync_store::{ApplyBatch, ApplyCounts, ApplyOutcome, Store, StoreError};
use tracing::Instrument;

use crate::commit::{GroupCommitter, GroupOptions};
use crate::mapping::{map_deletions, map_upserts};
use crate::target::{self, Verdict};

/// Delays between readiness checks while PostgreSQL is away.
const OUTAGE_BACKOFF: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));

/// Applies RecordBatches to audiences; the sink's [`Handler`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct BatchApplier {
    store: Store,
    patience: Duration,
    shutdown: Shutdown,
    /// Where batches are written; `None` writes each batch in its own transaction.
    committer: Option<GroupCommitter>,
}

/// What became of one batch, beyond the broker's [`Outcome`]: for tests, logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Written now, with what the store counted.
    Written(ApplyCounts),
    /// The ledger already had the batch: a redelivery, nothing written.
    AlreadyApplied,
    /// Not applied on purpose; the label says why (`run_cancelled`, `no_audience`, ...).
    Discarded(&'static str),
}

/// Why a batch was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// PostgreSQL failed; [`StoreError::is_retryable`] says whether trying later can help.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The batch contradicts what PostgreSQL knows: forged, corrupt, or from a broken producer.
    #[error(
        "{0}; the batch was dead-lettered: inspect it, fix the producer, then redrive or drop it"
    )]
    Refused(String),
}

impl ApplyError {
    /// Whether delivering the batch again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApplyError::Store(error) => error.is_retryable(),
            ApplyError::Refused(_) => false,
        }
    }
}

impl BatchApplier {
    /// An applier that waits up to a minute for PostgreSQL before handing a batch back, and
    /// stops waiting on `shutdown`.
    pub fn new(store: Store, shutdown: Shutdown) -> Self {
        Self {
            store,
            patience: Duration::from_secs(60),
            shutdown,
            committer: None,
        }
    }

    /// Writes batches through a [`GroupCommitter`] (started here): the batches in flight at
    /// once share transactions.
    pub fn with_group_commit(mut self, options: GroupOptions) -> Self {
        self.committer = Some(GroupCommitter::start(self.store.clone(), options));
        self
    }

    /// How long one delivery waits for PostgreSQL to come back before it is handed back to the
    /// broker (zero: hand it back at once).
    pub fn with_patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// Applies `batch` and says what the broker should do with its delivery.
    pub async fn handle_batch(&self, mut batch: RecordBatch) -> Outcome {
        let span = tracing::info_span!(
            "sink.apply",
            run_id = %batch.run_id,
            integration_id = %batch.integration_id,
            seq = batch.seq,
            module = %batch.module,
            kind = kind_label(batch.kind),
            records = batch.records.len(),
            outcome = tracing::field::Empty,
        );
        async move {
            let started = Instant::now();
            let work = Work::of(&batch);
            // The decoded JSON is the largest thing a batch holds; it is not needed once mapped,
            // and the batch may wait for its group.
            batch.records = Vec::new();
            let result = self.apply_work(&batch, work).await;
            let outcome = outcome_of(&result);
            let label = match (&result, &outcome) {
                (Ok(Applied::Written(_)), _) => "applied",
                (Ok(Applied::AlreadyApplied), _) => "already_applied",
                (Ok(Applied::Discarded(_)), _) => "discarded",
                (Err(_), Outcome::Retry { .. }) => "retry",
                (Err(_), _) => "dead_letter",
            };
            tracing::Span::current().record("outcome", label);
            metrics::histogram!("pledgesync_batch_apply_duration_seconds", "outcome" => label)
                .record(started.elapsed().as_secs_f64());
            record(&batch, &result);
            if let Ok(Applied::Written(counts)) = &result {
                if counts.run_completed {
                    self.record_run_end(&batch, RunEnd::Succeeded).await;
                }
            }
            outcome
        }
        .instrument(span)
        .await
    }

    /// Checks, maps and applies `batch`, waiting out a PostgreSQL outage for up to the patience.
    /// Any number of calls with the same batch write it once.
    pub async fn apply(&self, batch: &RecordBatch) -> Result<Applied, ApplyError> {
        self.apply_work(batch, Work::of(batch)).await
    }

    /// [`BatchApplier::apply`] with the records already mapped; `batch` only lends its ids.
    async fn apply_work(&self, batch: &RecordBatch, mut work: Work) -> Result<Applied, ApplyError> {
        let started = Instant::now();
        loop {
            match self.apply_once(batch, &mut work).await {
                Err(error)
                    if error.is_retryable() && self.wait_for_store(started, &error).await =>
                {
                    metrics::counter!("pledgesync_batch_apply_attempts_retried_total").increment(1);
                }
                other => return other,
            }
        }
    }

    /// After a retryable failure: waits until PostgreSQL answers again. False when the patience
    /// ran out or shutdown was requested first: then the broker takes the batch back.
    async fn wait_for_store(&self, started: Instant, error: &ApplyError) -> bool {
        tracing::warn!(%error, "batch not applied; waiting for PostgreSQL before trying again");
        let mut attempt = 0;
        loop {
            let delay = OUTAGE_BACKOFF.delay(attempt);
            attempt += 1;
            if self.shutdown.is_triggered() || started.elapsed() + delay > self.patience {
                return false;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return false,
                _ = tokio::time::sleep(delay) => {}
            }
            if self.store.ready().await.is_ok() {
                return true;
            }
        }
    }

    /// Counts a run whose final status this sink just wrote (the store said so, so each run is
    /// counted once across replicas), with its age from enqueue; a failed read of the run only
    /// leaves the duration out.
    async fn record_run_end(&self, batch: &RecordBatch, end: RunEnd) {
        let took = match self.store.get_run(batch.run_id).await {
            Ok(run) => run
                .finished_at
                .and_then(|finished| (finished - run.created_at).to_std().ok()),
            Err(error) => {
                tracing::debug!(%error, "run not read back; its duration is not recorded");
                None
            }
        };
        pledgesync_core::telemetry::record_run_end(end, took);
    }

    async fn apply_once(
        &self,
        batch: &RecordBatch,
        work: &mut Work,
    ) -> Result<Applied, ApplyError> {
        let audience_id = match target::check(&self.store, batch).await? {
            Verdict::Apply { audience_id } => audience_id,
            Verdict::Discard(reason) => return Ok(Applied::Discarded(reason)),
            Verdict::StopRun(reason) => {
                let why = "the integration's audience was unmapped while the run was going; \
                           map an audience and sync again";
                if self.store.cancel_run(batch.run_id, why).await? {
                    tracing::warn!(run_id = %batch.run_id, "run cancelled: {why}");
                    self.record_run_end(batch, RunEnd::Cancelled).await;
                }
                return Ok(Applied::Discarded(reason));
            }
            Verdict::Refuse(reason) => return Err(ApplyError::Refused(reason)),
        };
        let apply = work.ready(audience_id);
        let written = match &self.committer {
            Some(committer) => committer.apply(apply).await,
            None => self.store.apply_batch(&apply).await,
        };
        match written {
            Ok(ApplyOutcome::Applied(counts)) => Ok(Applied::Written(counts)),
            Ok(ApplyOutcome::AlreadyApplied { .. }) => Ok(Applied::AlreadyApplied),
            Ok(ApplyOutcome::Discarded { reason }) => {
                tracing::info!(%reason, "the store discarded the batch");
                Ok(Applied::Discarded("integration_deleted"))
            }
            // The store checks the run again inside its transaction: a mismatch or a run that
            // vanished there is as permanent as it is here.
            Err(StoreError::Rejected(reason)) => Err(ApplyError::Refused(reason)),
            Err(StoreError::NotFound { what, id }) => {
                Err(ApplyError::Refused(format!("{what} {id} does not exist")))
            }
            Err(error) => Err(error.into()),
        }
    }
}

impl Handler<RecordBatch> for BatchApplier {
    fn handle(
        &self,
        message: RecordBatch,
        delivery: DeliveryInfo,
    ) -> impl Future<Output = Outcome> + Send {
        if delivery.delivery_count > 0 {
            tracing::debug!(
                delivery_count = delivery.delivery_count,
                "batch delivered again"
            );
        }
        self.handle_batch(message)
    }
}

/// A batch's records, mapped once however often the batch is tried. The audience is the run's,
/// known only after the target check; until then it is nil.
struct Work(Arc<ApplyBatch>);

impl Work {
    fn of(batch: &RecordBatch) -> Work {
        let (members, deletions, skipped_by_reason) = match batch.kind {
            BatchKind::Upsert => {
                let mapped = map_upserts(batch.module, &batch.records);
                (mapped.members, Vec::new(), mapped.skipped.to_ledger())
            }
            BatchKind::Delete => {
                let mapped = map_deletions(&batch.records);
                (Vec::new(), mapped.deletions, mapped.skipped.to_ledger())
            }
        };
        Work(Arc::new(ApplyBatch {
            run_id: batch.run_id,
            seq: batch.seq,
            integration_id: batch.integration_id,
            audience_id: AudienceId(Default::default()),
            module: batch.module,
            kind: batch.kind,
            members,
            skipped_by_reason,
            deletions,
        }))
    }

    /// The store's batch for the run's audience (fixed per run, so set once; no copy while the
    /// batch is not shared).
    fn ready(&mut self, audience_id: AudienceId) -> Arc<ApplyBatch> {
        if self.0.audience_id != audience_id {
            Arc::make_mut(&mut self.0).audience_id = audience_id;
        }
        self.0.clone()
    }
}

/// The broker's verdict on a result.
pub fn outcome_of(result: &Result<Applied, ApplyError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ack,
        Err(error) if error.is_retryable() => Outcome::retry(error.to_string()),
        Err(error) => Outcome::dead_letter(error.to_string()),
    }
}

fn record(batch: &RecordBatch, result: &Result<Applied, ApplyError>) {
    let module = batch.module.api_name();
    match result {
        Ok(Applied::Written(counts)) => {
            metrics::counter!("pledgesync_batches_applied_total", "module" => module, "kind" => kind_label(batch.kind))
                .increment(1);
            metrics::counter!("pledgesync_records_applied_total", "module" => module)
                .increment(u64::from(counts.applied));
            metrics::counter!("pledgesync_records_deleted_total", "module" => module)
                .increment(u64::from(counts.deleted));
            for (reason, n) in &counts.skipped_by_reason {
                metrics::counter!("pledgesync_records_skipped_total", "reason" => reason.clone())
                    .increment(u64::from(*n));
            }
            tracing::debug!(
                applied = counts.applied,
                skipped = counts.skipped,
                deleted = counts.deleted,
                run_completed = counts.run_completed,
                "batch applied"
            );
            if counts.run_completed {
                tracing::info!(run_id = %batch.run_id, "the run's last batch landed; run succeeded");
            }
        }
        Ok(Applied::AlreadyApplied) => {
            metrics::counter!("pledgesync_batches_already_applied_total").increment(1);
            tracing::info!("batch already in the ledger; acked without effect");
        }
        Ok(Applied::Discarded(reason)) => {
            metrics::counter!("pledgesync_batches_discarded_total", "reason" => *reason)
                .increment(1);
            tracing::info!(reason = *reason, "batch not applied; acked without effect");
        }
        Err(error) if error.is_retryable() => {
            metrics::counter!("pledgesync_batches_failed_total", "class" => "retryable")
                .increment(1);
            tracing::warn!(%error, "batch not applied; it will be retried");
        }
        Err(error) => {
            metrics::counter!("pledgesync_batches_failed_total", "class" => "permanent")
                .increment(1);
            tracing::warn!(%error, "batch can never be applied");
        }
    }
}

fn kind_label(kind: BatchKind) -> &'static str {
    match kind {
        BatchKind::Upsert => "upsert",
        BatchKind::Delete => "delete",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_retry_and_contradictions_dead_letter() {
        let outage = ApplyError::Store(StoreError::Unavailable(sqlx_timeout()));
        assert!(matches!(outcome_of(&Err(outage)), Outcome::Retry { .. }));
        let forged = ApplyError::Refused("run r belongs to integration a, not b".into());
        match outcome_of(&Err(forged)) {
            Outcome::DeadLetter { reason } => {
                assert!(reason.contains("belongs to integration a"), "{reason}")
            }
            other => panic!("expected a dead letter, got {other:?}"),
        }
        let bug = ApplyError::Store(StoreError::Corrupt("bad row".into()));
        assert!(matches!(outcome_of(&Err(bug)), Outcome::DeadLetter { .. }));
        assert_eq!(outcome_of(&Ok(Applied::AlreadyApplied)), Outcome::Ack);
        assert_eq!(
            outcome_of(&Ok(Applied::Discarded("run_cancelled"))),
            Outcome::Ack
        );
    }

    fn sqlx_timeout() -> sqlx::Error {
        sqlx::Error::PoolTimedOut
    }
}
