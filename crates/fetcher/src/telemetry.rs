//! The fetcher's metrics, in one place so their names and labels stay consistent.
//!
//! Names start with `pledgesync_fetcher_`, except the few the whole pipeline shares with the
//! sink and the store so that a dashboard can put them side by side:
//! `pledgesync_records_fetched_total` (beside the sink's `pledgesync_records_applied_total`) and
//! `pledgesync_runs_total`/`pledgesync_run_duration_seconds` (recorded through
//! [`pledgesync_core::telemetry::record_run_end`] where this process fails a run). Labels are
//! bounded (module, batch kind, job outcome, error source), never ids.

use std::time::Duration;

use pledgesync_core::messages::BatchKind;
use pledgesync_core::Module;

/// How a job ended, the `outcome` label of `pledgesync_fetcher_jobs_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// The run's last batch is published and its total recorded.
    Finished,
    /// The slice ran out (or shutdown came) and a continuation job carries the run on.
    Continued,
    /// Nothing to do: the run ended, does not exist, or another job holds it.
    Skipped,
    /// The run failed with a message for its creator.
    Failed,
    /// Handed back to the queue to be tried again.
    Retried,
    /// Moved to the dead-letter queue.
    DeadLettered,
}

impl JobOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Finished => "finished",
            JobOutcome::Continued => "continued",
            JobOutcome::Skipped => "skipped",
            JobOutcome::Failed => "failed",
            JobOutcome::Retried => "retried",
            JobOutcome::DeadLettered => "dead_lettered",
        }
    }
}

fn kind_label(kind: BatchKind) -> &'static str {
    match kind {
        BatchKind::Upsert => "upsert",
        BatchKind::Delete => "delete",
    }
}

/// One page read from Zoho.
pub fn page_read(module: Module) {
    metrics::counter!("pledgesync_fetcher_pages_total", "module" => module.api_name()).increment(1);
}

/// A batch confirmed by RabbitMQ.
pub fn batch_published(module: Module, kind: BatchKind, records: usize) {
    metrics::counter!("pledgesync_fetcher_batches_published_total", "module" => module.api_name(), "kind" => kind_label(kind))
        .increment(1);
    if kind == BatchKind::Upsert {
        metrics::counter!("pledgesync_records_fetched_total", "module" => module.api_name())
            .increment(records as u64);
    } else {
        metrics::counter!("pledgesync_fetcher_deletions_published_total", "module" => module.api_name())
            .increment(records as u64);
    }
}

/// A job ended.
pub fn job_ended(outcome: JobOutcome, took: Duration) {
    metrics::counter!("pledgesync_fetcher_jobs_total", "outcome" => outcome.as_str()).increment(1);
    metrics::histogram!("pledgesync_fetcher_job_duration_seconds", "outcome" => outcome.as_str())
        .record(took.as_secs_f64());
}

/// A continuation job was published.
pub fn continuation_published() {
    metrics::counter!("pledgesync_fetcher_continuations_total").increment(1);
}

/// The fetcher waited for the sink.
pub fn backpressure_waited(took: Duration) {
    metrics::counter!("pledgesync_fetcher_backpressure_waits_total").increment(1);
    metrics::histogram!("pledgesync_fetcher_backpressure_wait_seconds").record(took.as_secs_f64());
}

/// Batches of a run in flight (published, not yet applied), before each publish: how close the
/// run runs to its back-pressure bound. Between two looks at the ledger this is the bound the
/// fetcher knows (published since the last look, plus what was in flight then), never less than
/// the truth.
pub fn batches_outstanding(in_flight: u64) {
    metrics::histogram!("pledgesync_fetcher_batches_outstanding").record(in_flight as f64);
}

/// The run's fetching is done: from enqueue to its last batch published.
pub fn run_fetched(took: Duration) {
    metrics::histogram!("pledgesync_fetcher_run_duration_seconds").record(took.as_secs_f64());
}

/// A job failed; `source` is [`crate::error::Source::as_str`].
pub fn error(source: &'static str, retryable: bool) {
    metrics::counter!(
        "pledgesync_fetcher_errors_total",
        "source" => source,
        "retryable" => if retryable { "true" } else { "false" }
    )
    .increment(1);
}
