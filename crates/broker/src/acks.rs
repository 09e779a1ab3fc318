//! The acks of one subscription's channel, sent together where RabbitMQ allows it.
//!
//! Deliveries often finish together: a sink commits several batches in one transaction, and each
//! of them then acks. Every ack of a channel goes through one task, which takes all the acks
//! waiting and sends a single `basic.ack` with `multiple` for those below the lowest delivery
//! still unsettled. The others wait, at most a few milliseconds ([`HOLD`]), for that delivery to
//! finish so that a later multiple ack covers them too; then they go one by one. RabbitMQ spends
//! CPU on every ack frame (a quorum queue settles each through its log), and a sink's batches
//! finish in groups, often out of order.
//!
//! A multiple ack acknowledges every outstanding delivery up to its tag, so it must never cover a
//! delivery that is still being handled or is being handed back with a nack. Hence: tags are
//! registered as unsettled when they arrive (in tag order, before their handler starts), and a
//! tag leaves that set only when its own ack is being sent or, for a nack, once the nack has been
//! sent ([`Acks::settled`]): the multiple ack is then queued on the channel after it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use lapin::options::BasicAckOptions;
use lapin::Channel;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant};

/// One ack waiting to be sent, and where to report how it went.
type Request = (u64, oneshot::Sender<Result<(), String>>);

/// The ack path of one channel. Cheap to clone; the sending task ends when the last clone is
/// dropped.
#[derive(Clone)]
pub(crate) struct Acks {
    /// Acks waiting for the sending task.
    requests: mpsc::UnboundedSender<Request>,
    /// Delivery tags that arrived on this channel and are neither acked nor nacked yet.
    unsettled: Arc<Mutex<BTreeSet<u64>>>,
}

impl Acks {
    /// Starts the sending task for `channel`; needs a Tokio runtime.
    pub fn start(channel: Channel) -> Self {
        let (requests, receiver) = mpsc::unbounded_channel();
        let unsettled = Arc::new(Mutex::new(BTreeSet::new()));
        tokio::spawn(send_acks(channel, receiver, unsettled.clone()));
        Self {
            requests,
            unsettled,
        }
    }

    /// Registers a delivery that just arrived; call in arrival order, before handling it.
    pub fn delivered(&self, tag: u64) {
        self.lock().insert(tag);
    }

    /// Marks a delivery settled by other means (its nack was sent, or failed to be).
    pub fn settled(&self, tag: u64) {
        self.lock().remove(&tag);
    }

    /// Acks a delivery; returns once the ack is on its way to RabbitMQ, or why it is not.
    pub async fn ack(&self, tag: u64) -> Result<(), String> {
        let (done, outcome) = oneshot::channel();
        if self.requests.send((tag, done)).is_err() {
            return Err("the channel's ack task has stopped".to_owned());
        }
        outcome
            .await
            .unwrap_or_else(|_| Err("the channel's ack task has stopped".to_owned()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        // The set stays consistent whatever panicked while holding it: inserts and removes only.
        self.unsettled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// How long an ack may wait for an earlier delivery to finish, so that one multiple ack covers
/// both; then it goes alone. Short, because RabbitMQ's prefetch counts a waiting ack's delivery
/// as unacked and sends nothing in its place. The sink's groups often commit out of order (two
/// commit workers), a few milliseconds apart.
const HOLD: Duration = Duration::from_millis(20);

/// The sending task: each round takes every ack waiting and sends as few frames as it may.
async fn send_acks(
    channel: Channel,
    mut requests: mpsc::UnboundedReceiver<Request>,
    unsettled: Arc<Mutex<BTreeSet<u64>>>,
) {
    // Acks above an unsettled delivery, and when the oldest of them must go anyway.
    let mut waiting: Vec<Request> = Vec::new();
    let mut deadline: Option<Instant> = None;
    loop {
        let next = match deadline {
            None => requests.recv().await,
            Some(at) => tokio::select! {
                next = requests.recv() => next,
                () = tokio::time::sleep_until(at) => {
                    send_alone(&channel, std::mem::take(&mut waiting)).await;
                    deadline = None;
                    continue;
                }
            },
        };
        let Some(first) = next else {
            // Every handle is gone; nothing more can arrive to join these.
            send_alone(&channel, waiting).await;
            return;
        };
        let mut round = std::mem::take(&mut waiting);
        round.push(first);
        // Deliveries that finished alongside this one are usually a step behind it: let them
        // queue their acks before the round is cut.
        tokio::task::yield_now().await;
        while let Ok(more) = requests.try_recv() {
            round.push(more);
        }
        round.sort_unstable_by_key(|(tag, _)| *tag);
        let lowest_unsettled = {
            let mut unsettled = unsettled.lock().unwrap_or_else(PoisonError::into_inner);
            for (tag, _) in &round {
                unsettled.remove(tag);
            }
            unsettled.first().copied()
        };
        let (together, alone) = split(round, lowest_unsettled);
        if let Some(&(last, _)) = together.last() {
            let sent = send(&channel, last, together.len() > 1).await;
            for (_, done) in together {
                let _ = done.send(sent.clone());
            }
        }
        if alone.is_empty() {
            deadline = None;
        } else {
            deadline.get_or_insert_with(|| Instant::now() + HOLD);
            waiting = alone;
        }
    }
}

/// Sends each ack on its own.
async fn send_alone(channel: &Channel, acks: Vec<Request>) {
    for (tag, done) in acks {
        let _ = done.send(send(channel, tag, false).await);
    }
}

/// Splits a round (sorted by tag) into the acks one multiple ack may cover (below the lowest
/// unsettled delivery) and those that must go alone.
fn split(round: Vec<Request>, lowest_unsettled: Option<u64>) -> (Vec<Request>, Vec<Request>) {
    round
        .into_iter()
        .partition(|(tag, _)| lowest_unsettled.is_none_or(|lowest| *tag < lowest))
}

async fn send(channel: &Channel, tag: u64, multiple: bool) -> Result<(), String> {
    channel
        .basic_ack(tag, BasicAckOptions { multiple })
        .await
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(tags: &[u64]) -> Vec<Request> {
        tags.iter()
            .map(|&tag| (tag, oneshot::channel().0))
            .collect()
    }

    fn tags(requests: &[Request]) -> Vec<u64> {
        requests.iter().map(|(tag, _)| *tag).collect()
    }

    #[test]
    fn a_multiple_ack_never_reaches_an_unsettled_delivery() {
        let (together, alone) = split(round(&[4, 5, 7, 9]), Some(6));
        assert_eq!(tags(&together), [4, 5]);
        assert_eq!(tags(&alone), [7, 9]);
    }

    #[test]
    fn with_nothing_unsettled_the_whole_round_goes_together() {
        let (together, alone) = split(round(&[1, 2, 3]), None);
        assert_eq!(tags(&together), [1, 2, 3]);
        assert!(alone.is_empty());
    }

    #[test]
    fn a_round_above_an_unsettled_delivery_goes_one_by_one() {
        let (together, alone) = split(round(&[8, 9]), Some(2));
        assert!(together.is_empty());
        assert_eq!(tags(&alone), [8, 9]);
    }
}
