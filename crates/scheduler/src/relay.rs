//! The outbox relay: publishes the jobs that Sync Now and the periodic loop wrote beside their
//! runs, each with a broker confirm, then marks them published.
//!
//! Rows are claimed with `FOR UPDATE SKIP LOCKED` inside a transaction held while publishing, so
//! several replicas relay side by side without publishing a row twice; a crash between the confirm
//! and the commit publishes that row again (the fetcher is idempotent by checkpoint). While
//! RabbitMQ is down the rows simply wait (Sync Now still answers 202, its run and job are
//! committed) and the relay retries with backoff. Sync Now wakes the relay at once through a
//! [`Notify`]; otherwise it polls. Each job is published with the `traceparent` stored with its
//! row, so the trace that began with the HTTP request continues to the fetcher.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pledgesync_broker::{Backoff, Broker, PublishError, PublishOptions, WorkQueue};
use pledgesync_core::messages::{Message, RecordBatch, SyncJob};
use pledgesync_core::shutdown::Shutdown;
use pledgesync_store::{OutboxRow, Store, StoreError};
use tokio::sync::Notify;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::state::LazyBroker;

/// Why a relay pass stopped early. Every kind is retried by the loop.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("the outbox could not be read or marked: {0}")]
    Store(#[from] StoreError),
    #[error("RabbitMQ is unreachable, outbox rows wait: {0}")]
    Connect(#[from] pledgesync_broker::BrokerError),
    #[error("outbox row {id} could not be published: {source}")]
    Publish {
        id: i64,
        #[source]
        source: PublishError,
    },
}

impl RelayError {
    /// Whether waiting helps. A permanent publish failure (unroutable row) is retried too, more
    /// slowly, because an operator may fix the topology; the row's `attempts` count says so.
    pub fn is_retryable(&self) -> bool {
        match self {
            RelayError::Store(e) => e.is_retryable(),
            RelayError::Connect(e) => e.is_retryable(),
            RelayError::Publish { source, .. } => source.is_retryable(),
        }
    }
}

/// How the relay paces itself.
#[derive(Clone, Copy, Debug)]
pub struct RelayOptions {
    /// Rows claimed per pass.
    pub batch: u32,
    /// Poll interval when not woken.
    pub poll: Duration,
    /// Delays between failed passes.
    pub backoff: Backoff,
}

/// The relay loop's handle.
#[derive(Clone, Debug)]
pub struct Relay {
    store: Store,
    broker: LazyBroker,
    wake: Arc<Notify>,
    options: RelayOptions,
}

impl Relay {
    pub fn new(store: Store, broker: LazyBroker, wake: Arc<Notify>, options: RelayOptions) -> Self {
        Self {
            store,
            broker,
            wake,
            options,
        }
    }

    /// Relays until `shutdown`; the row being published when it comes is finished and marked.
    pub async fn run(self, shutdown: Shutdown) {
        tracing::info!(
            batch = self.options.batch,
            poll_ms = self.options.poll.as_millis() as u64,
            "outbox relay started"
        );
        let mut failures = 0u32;
        while !shutdown.is_triggered() {
            let wait = match self.pass(&shutdown).await {
                Ok(claimed) if claimed >= self.options.batch as usize => {
                    failures = 0;
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    self.record_backlog().await;
                    self.options.poll
                }
                Err(error) => {
                    let delay = self.options.backoff.delay(failures);
                    failures = failures.saturating_add(1);
                    metrics::counter!("pledgesync_outbox_relay_failures_total").increment(1);
                    tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "outbox relay pass failed; retrying");
                    self.record_backlog().await;
                    delay
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        tracing::info!("outbox relay stopped");
    }

    /// One pass: claims up to a batch of rows, publishes them in order until one fails, marks
    /// what was published, commits. Returns how many rows it claimed.
    pub async fn pass(&self, shutdown: &Shutdown) -> Result<usize, RelayError> {
        let mut claim = self.store.fetch_unpublished(self.options.batch).await?;
        if claim.is_empty() {
            return Ok(0);
        }
        let claimed = claim.messages().len();
        // Dropping the claim rolls back: the rows wait for the next pass, untouched.
        let broker = self.broker.get().await?;
        let mut published = Vec::with_capacity(claimed);
        let mut failed = Vec::new();
        let mut failure = None;
        for row in claim.messages() {
            if shutdown.is_triggered() {
                break;
            }
            match publish_row(&broker, row).await {
                Ok(()) => {
                    published.push(row.id);
                    let lag = (chrono::Utc::now() - row.created_at)
                        .to_std()
                        .unwrap_or_default();
                    metrics::histogram!("pledgesync_outbox_lag_seconds").record(lag.as_secs_f64());
                }
                // A row no retry can publish must not hold up the rows behind it; it stays
                // unpublished, its attempts counted, for an operator to look at.
                Err(source) if !source.is_retryable() => {
                    tracing::error!(outbox_id = row.id, error = %source, "outbox row cannot be published; skipped");
                    failed.push(row.id);
                    failure = Some(RelayError::Publish { id: row.id, source });
                }
                // RabbitMQ is going away: keep the order, try the rest in the next pass.
                Err(source) => {
                    failed.push(row.id);
                    failure = Some(RelayError::Publish { id: row.id, source });
                    break;
                }
            }
        }
        claim.mark_published(&published).await?;
        claim.mark_failed(&failed).await?;
        claim.commit().await?;
        metrics::counter!("pledgesync_outbox_published_total").increment(published.len() as u64);
        match failure {
            Some(error) => Err(error),
            None => Ok(claimed),
        }
    }

    async fn record_backlog(&self) {
        if let Ok(pending) = self.store.unpublished_count().await {
            metrics::gauge!("pledgesync_outbox_pending").set(pending as f64);
        }
    }
}

fn work_queue(name: &str) -> Option<(WorkQueue, &'static str)> {
    match name {
        "jobs" => Some((WorkQueue::Jobs, SyncJob::KIND)),
        "batches" => Some((WorkQueue::Batches, RecordBatch::KIND)),
        _ => None,
    }
}

/// Publishes one row with a confirm, in a span that continues the row's stored trace.
async fn publish_row(broker: &Broker, row: &OutboxRow) -> Result<(), PublishError> {
    let Some((queue, kind)) = work_queue(&row.queue) else {
        // Written by a newer or broken build: leave it unpublished and say so; it is counted.
        return Err(PublishError::Unroutable {
            destination: row.queue.clone(),
            reply_code: 312,
            reply_text: "the outbox row names no queue this build knows".to_owned(),
        });
    };
    let carrier: HashMap<String, String> = row
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let parent =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&carrier));
    let run = row.run_id.map(|r| r.to_string()).unwrap_or_default();
    let span = tracing::info_span!("outbox.publish", outbox_id = row.id, run_id = %run, queue = %queue, attempts = row.attempts);
    let _ = span.set_parent(parent.clone());
    let options = PublishOptions::new(format!("{run}/outbox-{}", row.id));
    use opentelemetry::trace::FutureExt as _;
    broker
        .publish_bytes(queue, kind, &row.payload, &options)
        // Outside the span, so that entering the span makes its context the current one.
        .instrument(span)
        .with_context(parent)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_name_their_queue_by_routing_key() {
        assert_eq!(work_queue("jobs"), Some((WorkQueue::Jobs, "SyncJob")));
        assert_eq!(
            work_queue("batches"),
            Some((WorkQueue::Batches, "RecordBatch"))
        );
        assert_eq!(work_queue("pledgesync.jobs"), None);
    }
}
