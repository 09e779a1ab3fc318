//! Group commit: the batches a sink holds at once are written together.
//!
//! Each delivery is checked and mapped in its own task (in parallel), then handed to a
//! [`GroupCommitter`]. A few commit workers take whatever has queued up meanwhile — up to
//! `sink.group_max_batches` — and give it to [`Store::apply_batches`], which writes the upsert
//! batches of one run in one transaction (each keeping its own ledger row). No batch waits for
//! a group to fill: a worker takes what is there the moment it is free, so an idle sink commits
//! a lone batch at once, and a busy one commits larger groups.
//!
//! A committer never acks anything: each delivery's task gets its own result back and the broker
//! acks it then, so a crash loses only unacked deliveries, which the ledger makes exact.

use std::sync::Arc;

use pledgesync_store::{ApplyBatch, ApplyOutcome, Store, StoreError};
use tokio::sync::{mpsc, oneshot, Mutex};

/// How a [`GroupCommitter`] groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupOptions {
    /// Most batches one transaction takes.
    pub max_batches: usize,
    /// Workers committing at once; more than one overlaps a commit with the next group's writes.
    pub workers: usize,
}

/// One batch waiting for its group, and where its result goes.
struct Pending {
    batch: Arc<ApplyBatch>,
    reply: oneshot::Sender<Result<ApplyOutcome, StoreError>>,
}

/// The handle delivery tasks use; cheap to clone. The workers stop once every handle is gone.
#[derive(Clone, Debug)]
pub struct GroupCommitter {
    queue: mpsc::UnboundedSender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("run_id", &self.batch.run_id)
            .field("seq", &self.batch.seq)
            .finish()
    }
}

impl GroupCommitter {
    /// Starts the workers on the current runtime.
    pub fn start(store: Store, options: GroupOptions) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..options.workers.max(1) {
            tokio::spawn(work(
                store.clone(),
                receiver.clone(),
                options.max_batches.max(1),
            ));
        }
        Self { queue }
    }

    /// Applies `batch` with whatever else is waiting; the result is this batch's alone.
    pub async fn apply(&self, batch: Arc<ApplyBatch>) -> Result<ApplyOutcome, StoreError> {
        let (reply, result) = oneshot::channel();
        if self.queue.send(Pending { batch, reply }).is_err() {
            return Err(stopped());
        }
        result.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// Takes what is waiting (at least one), applies it as one group, answers each batch.
async fn work(
    store: Store,
    receiver: Arc<Mutex<mpsc::UnboundedReceiver<Pending>>>,
    max_batches: usize,
) {
    loop {
        let group = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            let mut group = vec![first];
            while group.len() < max_batches {
                match receiver.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            group
        };
        metrics::histogram!("pledgesync_sink_group_batches").record(group.len() as f64);
        let (batches, replies): (Vec<Arc<ApplyBatch>>, Vec<_>) =
            group.into_iter().map(|p| (p.batch, p.reply)).unzip();
        let results = store.apply_batches(&batches).await;
        for (reply, result) in replies.into_iter().zip(results) {
            // The delivery's task may be gone (shutdown): its batch stays unacked and comes back.
            let _ = reply.send(result);
        }
    }
}

/// What a batch gets when the committer is gone: retryable, so the broker hands it back.
fn stopped() -> StoreError {
    StoreError::unavailable("the sink's committer stopped; the batch will be delivered again")
}
