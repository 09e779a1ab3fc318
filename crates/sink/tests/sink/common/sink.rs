//! An in-process sink whose every handled batch is reported on a channel, and waiting helpers.

use std::future::Future;
use std::time::{Duration, Instant};

use pledgesync_broker::{Backoff, Broker, ConsumerOptions, WorkQueue};
use pledgesync_core::messages::RecordBatch;
use pledgesync_core::shutdown::Shutdown;
use pledgesync_core::RunId;
use pledgesync_sink::apply::{outcome_of, Applied, BatchApplier};
use pledgesync_sink::commit::GroupOptions;
use pledgesync_store::Store;
use tokio::sync::mpsc;

/// One handled delivery, as the in-process sink reports it.
#[derive(Debug)]
pub struct Handled {
    pub seq: u64,
    pub run_id: RunId,
    pub result: Result<Applied, String>,
}

/// An in-process sink: the real consumer runner and the real handler, plus a report per batch.
pub struct Sink {
    pub shutdown: Shutdown,
    pub task: tokio::task::JoinHandle<Result<(), pledgesync_broker::ConsumeError>>,
}

impl Sink {
    pub fn start(
        broker: Broker,
        store: Store,
        prefetch: u16,
        events: mpsc::UnboundedSender<Handled>,
    ) -> Sink {
        Self::start_with(broker, store, prefetch, Duration::from_secs(60), events)
    }

    pub fn start_with(
        broker: Broker,
        store: Store,
        prefetch: u16,
        patience: Duration,
        events: mpsc::UnboundedSender<Handled>,
    ) -> Sink {
        let shutdown = Shutdown::new();
        // The production path: batches in flight are committed in groups.
        let applier = BatchApplier::new(store, shutdown.clone())
            .with_patience(patience)
            .with_group_commit(GroupOptions {
                max_batches: 32,
                workers: 2,
            });
        let handler = move |batch: RecordBatch, _info: pledgesync_broker::DeliveryInfo| {
            let applier = applier.clone();
            let events = events.clone();
            async move {
                let result = applier.apply(&batch).await;
                let outcome = outcome_of(&result);
                let _ = events.send(Handled {
                    seq: batch.seq,
                    run_id: batch.run_id,
                    result: result.map_err(|e| e.to_string()),
                });
                outcome
            }
        };
        let mut options = ConsumerOptions::new(WorkQueue::Batches, prefetch);
        options.grace_period = Duration::from_secs(10);
        options.retry_backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(200));
        let task = tokio::spawn(pledgesync_broker::run_consumer_with(
            broker,
            options,
            handler,
            shutdown.clone(),
        ));
        Sink { shutdown, task }
    }

    pub async fn stop(self) {
        self.shutdown.trigger();
        let stopped = tokio::time::timeout(Duration::from_secs(20), self.task).await;
        assert!(
            matches!(stopped, Ok(Ok(Ok(())))),
            "sink did not stop cleanly: {stopped:?}"
        );
    }
}

/// Receives `n` reports, failing the test after `deadline`.
pub async fn receive(
    events: &mut mpsc::UnboundedReceiver<Handled>,
    n: usize,
    deadline: Duration,
) -> Vec<Handled> {
    let mut out = Vec::with_capacity(n);
    let until = Instant::now() + deadline;
    while out.len() < n {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(handled)) => out.push(handled),
            Ok(None) => panic!(
                "the sink stopped reporting after {} of {n} batches",
                out.len()
            ),
            Err(_) => panic!(
                "only {} of {n} batches were handled within {deadline:?}: {out:?}",
                out.len()
            ),
        }
    }
    out
}

/// Polls `check` until it returns `Some`, failing the test after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
