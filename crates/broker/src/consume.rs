//! The consumer runner: reads a work queue with manual acks until shutdown, surviving reconnects.
//!
//! Up to `prefetch` deliveries are handled at once, each in its own task and `tracing` span whose
//! parent is the publisher's trace context. What happens to a delivery is the handler's
//! [`Outcome`], settled by the private `settle` module. On shutdown the runner cancels its
//! subscription (RabbitMQ sends no more), lets the handlers in flight finish within the grace
//! period and settles their outcomes, then closes its channel, which hands anything prefetched
//! but not started back to the queue.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::Channel;
use pledgesync_core::messages::Message;
use pledgesync_core::shutdown::Shutdown;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::acks::Acks;
use crate::backoff::Backoff;
use crate::connection::Broker;
use crate::error::{BrokerError, ConsumeError};
use crate::settle;
use crate::topology::WorkQueue;

/// What the handler decided about a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done (or already done before): remove it from the queue.
    Ack,
    /// Could not be done now but may succeed later (Zoho throttled, database away): deliver it
    /// again after a backoff that grows with its delivery count. Once the queue's delivery limit
    /// is used up the runner dead-letters it with this reason.
    Retry {
        /// Why, for logs and, if retries run out, for the dead letter.
        reason: String,
    },
    /// Can never succeed (a forged or impossible message): move it to the dead-letter queue with
    /// this reason.
    DeadLetter {
        /// Why, written into the dead letter's `x-pledgesync-error` header.
        reason: String,
    },
}

impl Outcome {
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            reason: reason.into(),
        }
    }

    pub fn dead_letter(reason: impl Into<String>) -> Self {
        Self::DeadLetter {
            reason: reason.into(),
        }
    }
}

/// What a handler knows about a delivery besides the message itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryInfo {
    /// The queue it came from.
    pub queue: WorkQueue,
    /// The AMQP message id the publisher set.
    pub message_id: Option<String>,
    /// Earlier deliveries of this message (the quorum queue's `x-delivery-count`; 0 the first time).
    pub delivery_count: u32,
    /// RabbitMQ's flag: this message may have been delivered before.
    pub redelivered: bool,
    /// The W3C `traceparent` the publisher wrote, if any.
    pub traceparent: Option<String>,
}

/// Handles messages of type `M`. Must be idempotent: any message may arrive twice.
pub trait Handler<M>: Send + Sync + 'static {
    fn handle(&self, message: M, delivery: DeliveryInfo) -> impl Future<Output = Outcome> + Send;
}

impl<M, F, Fut> Handler<M> for F
where
    M: Send + 'static,
    F: Fn(M, DeliveryInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    fn handle(&self, message: M, delivery: DeliveryInfo) -> impl Future<Output = Outcome> + Send {
        self(message, delivery)
    }
}

/// How a consumer runs.
#[derive(Clone, Debug)]
pub struct ConsumerOptions {
    /// The queue to read.
    pub queue: WorkQueue,
    /// Deliveries held (and handled concurrently) at once: `basic_qos` prefetch.
    pub prefetch: u16,
    /// How long in-flight handlers may take to finish after shutdown is requested.
    pub grace_period: Duration,
    /// Delay before a `Retry` is handed back to the queue, by delivery count.
    pub retry_backoff: Backoff,
    /// Delay between attempts to resubscribe after the connection or channel dropped.
    pub reconnect_backoff: Backoff,
}

impl ConsumerOptions {
    pub fn new(queue: WorkQueue, prefetch: u16) -> Self {
        Self {
            queue,
            prefetch,
            // Kubernetes allows 30s between SIGTERM and SIGKILL by default.
            grace_period: Duration::from_secs(25),
            retry_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            reconnect_backoff: Backoff::default(),
        }
    }
}

/// Consumes `queue` with default options until `shutdown`; see [`run_consumer_with`].
pub async fn run_consumer<M, H>(
    broker: Broker,
    queue: WorkQueue,
    prefetch: u16,
    handler: H,
    shutdown: Shutdown,
) -> Result<(), ConsumeError>
where
    M: Message + Send + 'static,
    H: Handler<M>,
{
    run_consumer_with(
        broker,
        ConsumerOptions::new(queue, prefetch),
        handler,
        shutdown,
    )
    .await
}

/// Consumes until `shutdown`, then drains. Returns early only for a failure that retrying cannot
/// fix (the queue is gone, access refused, a topology mismatch).
pub async fn run_consumer_with<M, H>(
    broker: Broker,
    options: ConsumerOptions,
    handler: H,
    shutdown: Shutdown,
) -> Result<(), ConsumeError>
where
    M: Message + Send + 'static,
    H: Handler<M>,
{
    let prefetch = options.prefetch.max(1);
    let queue_name = broker.topology().queue(options.queue);
    let ctx = Arc::new(settle::Context {
        broker: broker.clone(),
        queue: options.queue,
        queue_name: queue_name.clone(),
        retry_backoff: options.retry_backoff,
        shutdown: shutdown.clone(),
    });
    let handler = Arc::new(handler);
    let capacity = Arc::new(Semaphore::new(usize::from(prefetch)));
    let mut tasks = JoinSet::new();
    let mut failures = 0u32;

    // The channel of the current subscription and its consumer tag, to cancel on shutdown.
    let mut current: Option<(Channel, String)> = None;
    // A failure that retrying cannot fix; the runner drains like on shutdown, then returns it.
    let mut fatal: Option<BrokerError> = None;
    'subscribe: while !shutdown.is_triggered() {
        if failures > 0 {
            let delay = options.reconnect_backoff.delay(failures - 1);
            tokio::select! {
                _ = shutdown.cancelled() => break 'subscribe,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        let subscribed = tokio::select! {
            _ = shutdown.cancelled() => break 'subscribe,
            subscribed = subscribe(&broker, &queue_name, prefetch) => subscribed,
        };
        let (channel, mut deliveries) = match subscribed {
            Ok(subscription) => subscription,
            Err(error) if error.is_retryable() => {
                failures = failures.saturating_add(1);
                tracing::warn!(queue = %queue_name, error = %error, attempt = failures, "cannot subscribe; retrying");
                continue 'subscribe;
            }
            Err(error) => {
                fatal = Some(error);
                break 'subscribe;
            }
        };
        tracing::info!(queue = %queue_name, prefetch, "consuming");
        let tag = deliveries.tag().to_string();
        current = Some((channel.clone(), tag.clone()));
        let acks = Acks::start(channel.clone());

        loop {
            while let Some(done) = tasks.try_join_next() {
                report_panic(done);
            }
            let permit = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break 'subscribe,
                permit = capacity.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break 'subscribe,
                },
            };
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break 'subscribe,
                next = deliveries.next() => next,
            };
            match next {
                Some(Ok(delivery)) => {
                    failures = 0;
                    let ctx = ctx.clone();
                    let handler = handler.clone();
                    // The task keeps the channel open: its ack must reach RabbitMQ on the channel
                    // the delivery came on, even after the runner resubscribed elsewhere.
                    let channel = channel.clone();
                    let acks = acks.clone();
                    acks.delivered(delivery.delivery_tag);
                    tasks.spawn(async move {
                        settle::process::<M, H>(&ctx, &*handler, delivery, &acks).await;
                        drop((permit, channel));
                    });
                }
                // Resubscribe after a short delay, growing while subscriptions keep dying without
                // delivering anything (the counter resets on the first delivery).
                Some(Err(error)) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(queue = %queue_name, error = %error, "lost the subscription; resubscribing");
                    continue 'subscribe;
                }
                None => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(queue = %queue_name, consumer = %tag, "RabbitMQ ended the subscription; resubscribing");
                    continue 'subscribe;
                }
            }
        }
    }

    // Shutdown: no new deliveries, finish what is in flight, then give the rest back.
    if let Some((channel, tag)) = &current {
        if channel.status().connected() {
            if let Err(error) = channel
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await
            {
                tracing::debug!(queue = %queue_name, error = %error, "could not cancel the subscription");
            }
        }
    }
    let in_flight = tasks.len();
    if in_flight > 0 {
        tracing::info!(queue = %queue_name, in_flight, "shutdown: waiting for in-flight deliveries");
    }
    let drained = tokio::time::timeout(options.grace_period, async {
        while let Some(done) = tasks.join_next().await {
            report_panic(done);
        }
    })
    .await;
    let result = match (drained, fatal) {
        (_, Some(source)) => {
            abandon(&mut tasks).await;
            Err(ConsumeError::Broker {
                queue: queue_name.clone(),
                source,
            })
        }
        (Ok(()), None) => Ok(()),
        (Err(_), None) => {
            let in_flight = tasks.len();
            abandon(&mut tasks).await;
            Err(ConsumeError::GracePeriodExceeded {
                queue: queue_name.clone(),
                in_flight,
                grace: options.grace_period,
            })
        }
    };
    if let Some((channel, _)) = current {
        let _ = channel.close(200, "OK".into()).await;
    }
    tracing::info!(queue = %queue_name, "consumer stopped");
    result
}

async fn subscribe(
    broker: &Broker,
    queue: &str,
    prefetch: u16,
) -> Result<(Channel, lapin::Consumer), BrokerError> {
    let channel = broker.channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(|source| BrokerError::amqp("basic.qos", source))?;
    let consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| {
            if crate::error::reply_code(&source) == Some(crate::error::NOT_FOUND) {
                BrokerError::QueueNotFound {
                    queue: queue.to_owned(),
                }
            } else {
                BrokerError::amqp("basic.consume", source)
            }
        })?;
    Ok((channel, consumer))
}

fn report_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(error) = done {
        if error.is_panic() {
            tracing::error!(error = %error, "a delivery task panicked outside its handler");
        }
    }
}

async fn abandon(tasks: &mut JoinSet<()>) {
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}
