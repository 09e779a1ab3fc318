//! One SyncJob delivery, from the run row to an outcome for the broker.
//!
//! The job is checked against the run row (a job naming another integration is forged and
//! dead-lettered without touching the run), the run is marked running, its first slice plans the
//! run and records Zoho's record count as the estimate, and then a [`Pass`] works the slice. What
//! the broker does with the delivery follows from how the slice ended:
//! - finished, or nothing to do: ack;
//! - slice used up or shutdown: publish the continuation job with a confirm, then ack;
//! - the creator must act (re-authorise, a missing scope or module): fail the run with a message
//!   for them and ack — no retry storm;
//! - briefly failed: retry with backoff from the checkpoint; on the last delivery the queue
//!   allows, fail the run and dead-letter the job, so no run stays "running" forever.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use pledgesync_broker::{DeliveryInfo, Handler, Outcome};
use pledgesync_core::messages::{SyncJob, SyncMode};
use pledgesync_core::shutdown::Shutdown;
use tracing::Instrument;

use crate::budget::Budget;
use crate::checkpoint::{Checkpoint, Plan};
use crate::confirms::Unconfirmed;
use crate::error::FetchError;
use crate::pass::{Pass, PassEnd};
use crate::ports::{Commit, IntegrationView, Ports, RunPhase, Usability};
use crate::telemetry::{self, JobOutcome};

/// How jobs are worked; from the `fetch` and `rabbitmq` settings.
#[derive(Clone, Debug)]
pub struct WorkConfig {
    /// K: batches of a run published but not yet applied before the fetcher waits.
    pub max_outstanding_batches: u32,
    /// Pages one job works before handing the run on.
    pub slice_pages: u32,
    /// Time one job works before handing the run on.
    pub slice_time: Duration,
    /// How far before a cursor incremental reads start.
    pub overlap: chrono::Duration,
    /// Deliveries RabbitMQ allows a job (`rabbitmq.delivery_limit`); the last one fails the run
    /// instead of retrying.
    pub delivery_limit: u32,
}

/// How a job ended, before it becomes a broker outcome.
#[derive(Debug)]
enum JobEnd {
    Finished,
    HandOn,
    Skipped(String),
    Forged(String),
}

/// The SyncJob handler.
pub struct Fetcher<P: Ports> {
    ports: Arc<P>,
    config: WorkConfig,
    shutdown: Shutdown,
}

impl<P: Ports> Fetcher<P> {
    pub fn new(ports: Arc<P>, config: WorkConfig, shutdown: Shutdown) -> Self {
        Self {
            ports,
            config,
            shutdown,
        }
    }

    /// Works one delivery of `job` and says what the broker should do with it.
    pub async fn handle_job(&self, job: SyncJob, delivery: DeliveryInfo) -> Outcome {
        let span = tracing::info_span!(
            "fetch.job",
            run_id = %job.run_id,
            integration_id = %job.integration_id,
            slice = job.slice,
            delivery_count = delivery.delivery_count,
            outcome = tracing::field::Empty,
        );
        let started = Instant::now();
        let (outcome, label) = self.settle(&job, &delivery).instrument(span.clone()).await;
        span.record("outcome", label.as_str());
        telemetry::job_ended(label, started.elapsed());
        outcome
    }

    async fn settle(&self, job: &SyncJob, delivery: &DeliveryInfo) -> (Outcome, JobOutcome) {
        match self.work(job).await {
            Ok(JobEnd::Finished) => (Outcome::Ack, JobOutcome::Finished),
            Ok(JobEnd::Skipped(reason)) => {
                tracing::info!(reason = %reason, "nothing to do for this job");
                (Outcome::Ack, JobOutcome::Skipped)
            }
            Ok(JobEnd::Forged(reason)) => {
                tracing::warn!(reason = %reason, "refusing a job that does not match its run");
                (Outcome::dead_letter(reason), JobOutcome::DeadLettered)
            }
            Ok(JobEnd::HandOn) => match self.ports.publish_job(&job.continuation()).await {
                Ok(()) => {
                    telemetry::continuation_published();
                    tracing::info!(
                        next_slice = job.slice.saturating_add(1),
                        "handed the run on to a continuation job"
                    );
                    (Outcome::Ack, JobOutcome::Continued)
                }
                Err(error) => {
                    // Not acked: the delivery itself comes back and resumes from the checkpoint.
                    tracing::warn!(error = %error, "could not publish the continuation job; the job will be redelivered");
                    (Outcome::retry(error.to_string()), JobOutcome::Retried)
                }
            },
            Err(error) => self.failed(job, delivery, error).await,
        }
    }

    async fn failed(
        &self,
        job: &SyncJob,
        delivery: &DeliveryInfo,
        error: FetchError,
    ) -> (Outcome, JobOutcome) {
        telemetry::error(error.source().as_str(), error.is_retryable());
        let last_delivery = delivery.delivery_count >= self.config.delivery_limit;
        if error.is_retryable() && !last_delivery {
            tracing::warn!(error = %error, "job failed; it will be retried from the checkpoint");
            return (Outcome::retry(error.to_string()), JobOutcome::Retried);
        }
        let message = if error.is_retryable() {
            format!(
                "the sync gave up after {} attempts: {error}",
                delivery.delivery_count.saturating_add(1)
            )
        } else {
            error.to_string()
        };
        match self
            .ports
            .fail(
                job.run_id,
                job.integration_id,
                &message,
                error.needs_reauth(),
            )
            .await
        {
            Ok(()) => {
                tracing::warn!(error = %message, needs_reauth = error.needs_reauth(), "run failed");
                if error.is_retryable() {
                    (Outcome::dead_letter(message), JobOutcome::DeadLettered)
                } else {
                    (Outcome::Ack, JobOutcome::Failed)
                }
            }
            Err(fail_error) => {
                tracing::error!(error = %message, fail_error = %fail_error, "could not record the run's failure; the job will be retried");
                (Outcome::retry(fail_error.to_string()), JobOutcome::Retried)
            }
        }
    }

    async fn work(&self, job: &SyncJob) -> Result<JobEnd, FetchError> {
        let ports = &*self.ports;
        let Some(run) = ports.load_run(job.run_id).await? else {
            return Ok(JobEnd::Skipped(
                "the run does not exist (deleted, or another environment's job)".into(),
            ));
        };
        if run.integration_id != job.integration_id {
            return Ok(JobEnd::Forged(format!(
                "the job names integration {} but run {} belongs to another integration",
                job.integration_id, run.id
            )));
        }
        if run.phase == RunPhase::Ended {
            return Ok(JobEnd::Skipped("the run already ended".into()));
        }
        if run.mode != job.mode {
            tracing::warn!(job_mode = ?job.mode, run_mode = ?run.mode, "the job's mode differs from the run row; the row wins");
        }
        let Some(integration) = ports.load_integration(run.integration_id).await? else {
            return Err(FetchError::Inactive(
                "the integration no longer exists, so the run was stopped".into(),
            ));
        };
        check_usable(&integration)?;
        if !ports.mark_running(run.id, run.integration_id).await? {
            return Ok(JobEnd::Skipped(
                "the run ended before it could start".into(),
            ));
        }
        let checkpoint = match &run.checkpoint {
            Some(json) => Checkpoint::from_json(json)?,
            None => match self.plan(&run.id, run.mode, &integration).await? {
                Some(checkpoint) => checkpoint,
                None => return Ok(JobEnd::Skipped("another job started the run".into())),
            },
        };
        let checkpoint_seq = checkpoint.next_seq;
        let pass = Pass {
            ports,
            config: &self.config,
            shutdown: &self.shutdown,
            run: run.id,
            integration: integration.id,
            access: &integration.access,
            budget: Budget::new(self.config.slice_pages, self.config.slice_time),
            checkpoint,
            drained: false,
            applied_floor: 0,
            committed_seq: checkpoint_seq,
            uncommitted_pages: 0,
            last_commit: tokio::time::Instant::now(),
            unconfirmed: Unconfirmed::default(),
        };
        Ok(match pass.run().await? {
            PassEnd::Finished => {
                let took = (Utc::now() - run.created_at).to_std().unwrap_or_default();
                telemetry::run_fetched(took);
                JobEnd::Finished
            }
            PassEnd::HandOn => JobEnd::HandOn,
            PassEnd::Lost(reason) => JobEnd::Skipped(reason.into()),
        })
    }

    /// The first slice: fixes what the run reads and records Zoho's estimate. None if another
    /// job got there first.
    async fn plan(
        &self,
        run: &pledgesync_core::RunId,
        mode: SyncMode,
        integration: &IntegrationView<P::Access>,
    ) -> Result<Option<Checkpoint>, FetchError> {
        let ports = &*self.ports;
        let cursors = match mode {
            SyncMode::Incremental => ports.cursors(integration.id).await?,
            SyncMode::Full => Default::default(),
        };
        let plan = Plan::new(
            mode,
            &integration.modules,
            &cursors,
            Utc::now(),
            self.config.overlap,
        );
        // An incremental run's count would be every record, not the changed ones, so only a
        // full run gets an estimate.
        if mode == SyncMode::Full {
            let mut total = 0u64;
            for module in &integration.modules {
                total =
                    total.saturating_add(ports.record_count(&integration.access, *module).await?);
            }
            ports.set_total_estimate(*run, total).await?;
        }
        let checkpoint = Checkpoint::start(plan);
        Ok(match ports.commit(*run, 0, &checkpoint).await? {
            Commit::Saved => Some(checkpoint),
            Commit::Lost => None,
        })
    }
}

fn check_usable<A>(integration: &IntegrationView<A>) -> Result<(), FetchError> {
    match integration.usability {
        Usability::Active => Ok(()),
        Usability::NeedsReauth => Err(FetchError::NeedsReauth {
            detail: "the integration was already marked as needing re-authorisation".into(),
        }),
        Usability::Disabled => Err(FetchError::Inactive(
            "the integration is disabled or deleted, so the run was stopped; enable it and sync again".into(),
        )),
    }
}

impl<P: Ports> Handler<SyncJob> for Fetcher<P> {
    fn handle(
        &self,
        message: SyncJob,
        delivery: DeliveryInfo,
    ) -> impl std::future::Future<Output = Outcome> + Send {
        self.handle_job(message, delivery)
    }
}
