//! Group commit: the batches a sink holds at once are written together.
//!
//! Each delivery is checked and mapped in its own task (in parallel), then handed to a
//! [`GroupCommitter`]. A few commit workers take whatever has queued up meanwhile — up to
//! `sink.group_max_batches` — and give it to [`Store::apply_batches`], which writes the upsert
//! batches of one run in one transaction (each keeping its own ledger row). No batch waits for
//! a group to fill: a worker takes what is there the moment it is free, so an idle sink commits
//! a lone batch at once, and a busy one commits larger groups.
//!
//! A worker leaves for later a batch whose [`Claims`] meet those of a group another worker is
//! writing: it would only wait on that group's row locks, holding up the rest of its own group.
//! Order between groups never mattered (newest wins by `Modified_Time`, and each batch has its
//! ledger row), so this changes what is written together, not what is written. A batch passed
//! over [`MAX_PASSES`] times is taken anyway, so none waits on others forever.
//!
//! A committer never acks anything: each delivery's task gets its own result back and the broker
//! acks it then, so a crash loses only unacked deliveries, which the ledger makes exact.

use std::sync::Arc;

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use pledgesync_store::{ApplyBatch, ApplyOutcome, Store, StoreError};
use tokio::sync::{oneshot, Notify};

use crate::claims::{Claims, Held};

/// How many groups may go ahead of a batch because its claims met theirs before it is taken
/// regardless (and waits on row locks, as it would have without claims).
pub const MAX_PASSES: u32 = 4;

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
    /// The rows it will lock.
    claims: Claims,
    /// Groups taken past it because its claims met held ones.
    passes: u32,
    reply: oneshot::Sender<Result<ApplyOutcome, StoreError>>,
}

/// What the handles and the workers share.
#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when a batch arrives, a group's claims are released, or the handles are gone.
    changed: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Batches not yet in a group, oldest first.
    waiting: VecDeque<Pending>,
    /// Claims of the groups being written.
    held: Held,
    /// Every handle is gone: the workers finish what is waiting, then stop.
    closed: bool,
}

impl Shared {
    /// The state; a worker that panicked while holding it left nothing half-done worth
    /// refusing (every change under the lock is a single step), so a poisoned lock is used.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The handle delivery tasks use; cheap to clone. The workers stop once every handle is gone.
#[derive(Clone, Debug)]
pub struct GroupCommitter {
    handle: Arc<Handle>,
}

/// Closes the committer when the last [`GroupCommitter`] goes.
#[derive(Debug)]
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.state().closed = true;
        self.0.changed.notify_waiters();
    }
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
        let shared = Arc::new(Shared::default());
        for _ in 0..options.workers.max(1) {
            tokio::spawn(work(
                store.clone(),
                shared.clone(),
                options.max_batches.max(1),
            ));
        }
        Self {
            handle: Arc::new(Handle(shared)),
        }
    }

    /// Applies `batch` with whatever else is waiting; the result is this batch's alone.
    pub async fn apply(&self, batch: Arc<ApplyBatch>) -> Result<ApplyOutcome, StoreError> {
        let (reply, result) = oneshot::channel();
        let shared = &self.handle.0;
        shared.state().waiting.push_back(Pending {
            claims: Claims::of(&batch),
            batch,
            passes: 0,
            reply,
        });
        shared.changed.notify_waiters();
        result.await.unwrap_or_else(|_| Err(stopped()))
    }
}

impl State {
    /// Takes the oldest waiting batches whose claims meet no held ones (or that were passed over
    /// too often), up to `max_batches`, and holds their claims. Empty when none can go now.
    fn take_group(&mut self, max_batches: usize) -> Vec<Pending> {
        let mut group = Vec::new();
        let mut left = VecDeque::with_capacity(self.waiting.len());
        let mut blocked = Vec::new();
        for pending in self.waiting.drain(..) {
            let meets = self.held.meets(&pending.claims);
            if group.len() < max_batches && (pending.passes >= MAX_PASSES || !meets) {
                group.push(pending);
            } else {
                if meets {
                    blocked.push(left.len());
                }
                left.push_back(pending);
            }
        }
        if !group.is_empty() {
            for index in blocked {
                left[index].passes += 1;
                metrics::counter!("pledgesync_sink_batches_passed_over_total").increment(1);
            }
        }
        self.waiting = left;
        for pending in &group {
            self.held.hold(&pending.claims);
        }
        group
    }
}

/// Takes what can go now (at least one batch), applies it as one group, answers each batch,
/// and releases the group's claims.
async fn work(store: Store, shared: Arc<Shared>, max_batches: usize) {
    loop {
        // Registered before the state is read, so a change made in between still wakes it.
        let changed = shared.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let group = {
            let mut state = shared.state();
            let group = state.take_group(max_batches);
            if group.is_empty() && state.closed && state.waiting.is_empty() {
                return;
            }
            group
        };
        if group.is_empty() {
            changed.await;
            continue;
        }
        metrics::histogram!("pledgesync_sink_group_batches").record(group.len() as f64);
        let mut batches = Vec::with_capacity(group.len());
        let mut replies = Vec::with_capacity(group.len());
        let mut holding = Holding {
            shared: &shared,
            claims: Vec::with_capacity(group.len()),
        };
        for pending in group {
            batches.push(pending.batch);
            replies.push(pending.reply);
            holding.claims.push(pending.claims);
        }
        let results = store.apply_batches(&batches).await;
        drop(holding);
        for (reply, result) in replies.into_iter().zip(results) {
            // The delivery's task may be gone (shutdown): its batch stays unacked and comes back.
            let _ = reply.send(result);
        }
    }
}

/// A group's claims, released when the group is written — or when its worker unwinds, so that
/// a panic cannot leave batches waiting on claims nobody will release.
struct Holding<'a> {
    shared: &'a Shared,
    claims: Vec<Claims>,
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        {
            let mut state = self.shared.state();
            for claims in &self.claims {
                state.held.release(claims);
            }
        }
        self.shared.changed.notify_waiters();
    }
}

/// What a batch gets when the committer is gone: retryable, so the broker hands it back.
fn stopped() -> StoreError {
    StoreError::unavailable("the sink's committer stopped; the batch will be delivered again")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::test_batch;
    use pledgesync_core::AudienceId;

    fn pending(records: &[(&str, &str)]) -> Pending {
        let batch = Arc::new(test_batch(AudienceId(uuid::Uuid::nil()), records));
        Pending {
            claims: Claims::of(&batch),
            batch,
            passes: 0,
            reply: oneshot::channel().0,
        }
    }

    fn emails(group: &[Pending]) -> Vec<&str> {
        group
            .iter()
            .map(|p| p.batch.members[0].email.as_str())
            .collect()
    }

    #[test]
    fn a_batch_meeting_a_group_being_written_waits_for_it_and_the_rest_go_on() {
        let mut state = State::default();
        state.waiting.push_back(pending(&[("1", "ada@x.io")]));
        let writing = state.take_group(8);
        state.waiting.push_back(pending(&[("2", "ada@x.io")]));
        state.waiting.push_back(pending(&[("3", "bob@x.io")]));
        assert_eq!(emails(&state.take_group(8)), ["bob@x.io"]);
        assert_eq!(state.waiting.len(), 1, "the batch sharing ada waits");
        assert!(state.take_group(8).is_empty(), "nothing else can go yet");
        for done in &writing {
            state.held.release(&done.claims);
        }
        assert_eq!(emails(&state.take_group(8)), ["ada@x.io"]);
    }

    #[test]
    fn a_batch_passed_over_too_often_is_taken_anyway() {
        let mut state = State::default();
        state.waiting.push_back(pending(&[("1", "ada@x.io")]));
        let _writing = state.take_group(8);
        state.waiting.push_back(pending(&[("2", "ada@x.io")]));
        for n in 0..MAX_PASSES {
            state
                .waiting
                .push_back(pending(&[(&format!("1{n}"), &format!("u{n}@x.io"))]));
            assert_eq!(state.take_group(1).len(), 1);
        }
        let forced = state.take_group(8);
        assert_eq!(
            emails(&forced),
            ["ada@x.io"],
            "it goes despite the held claim"
        );
    }

    #[test]
    fn groups_keep_arrival_order_and_their_size_limit() {
        let mut state = State::default();
        for n in 0..5 {
            state
                .waiting
                .push_back(pending(&[(&format!("{n}"), &format!("u{n}@x.io"))]));
        }
        assert_eq!(
            emails(&state.take_group(3)),
            ["u0@x.io", "u1@x.io", "u2@x.io"]
        );
        assert_eq!(emails(&state.take_group(3)), ["u3@x.io", "u4@x.io"]);
    }
}
