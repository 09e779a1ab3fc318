//! One delivery from arrival to ack: decode, trace, handle, and settle the outcome.
//!
//! Settling never loses a message: an ack that fails leaves it to be delivered again; a dead
//! letter is acked only after RabbitMQ confirmed its copy in the dead-letter queue, and if that
//! copy cannot be stored the original is handed back to the queue instead.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::FutureExt;
use lapin::message::Delivery;
use lapin::options::BasicNackOptions;
use lapin::types::{AMQPValue, LongString};
use opentelemetry::context::FutureExt as _;
use pledgesync_core::messages::{DecodeError, Message};
use pledgesync_core::shutdown::Shutdown;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::acks::Acks;
use crate::backoff::Backoff;
use crate::connection::Broker;
use crate::consume::{DeliveryInfo, Handler, Outcome};
use crate::error::PublishError;
use crate::headers;
use crate::publish::{PublishOptions, Route};
use crate::topology::WorkQueue;

/// What every delivery task of one consumer shares.
pub(crate) struct Context {
    pub broker: Broker,
    pub queue: WorkQueue,
    pub queue_name: String,
    pub retry_backoff: Backoff,
    pub shutdown: Shutdown,
}

/// The runner's decision, with the label under which a dead letter is counted.
enum Verdict {
    Ack,
    Retry(String),
    DeadLetter { reason: String, kind: &'static str },
}

/// Handles one delivery and settles it; acks go through the channel's `acks`.
pub(crate) async fn process<M, H>(ctx: &Context, handler: &H, delivery: Delivery, acks: &Acks)
where
    M: Message + Send + 'static,
    H: Handler<M>,
{
    let headers = delivery.properties.headers().as_ref();
    let info = DeliveryInfo {
        queue: ctx.queue,
        message_id: delivery
            .properties
            .message_id()
            .as_ref()
            .map(ToString::to_string),
        delivery_count: headers::delivery_count(headers),
        redelivered: delivery.redelivered,
        traceparent: headers::string(headers, headers::TRACEPARENT),
    };
    let parent = headers::extract_context(headers);
    let span = tracing::info_span!(
        "consume",
        otel.kind = "consumer",
        queue = %ctx.queue,
        message.kind = M::KIND,
        message.id = info.message_id.as_deref().unwrap_or(""),
        delivery_count = info.delivery_count,
        redelivered = info.redelivered,
        outcome = tracing::field::Empty,
    );
    // Fails only when no OpenTelemetry layer is installed; then the context attached below still
    // carries the trace on to whatever this handler publishes.
    let _ = span.set_parent(parent.clone());
    handle_and_settle(ctx, handler, delivery, info, acks)
        .instrument(span)
        .with_context(parent)
        .await;
}

async fn handle_and_settle<M, H>(
    ctx: &Context,
    handler: &H,
    delivery: Delivery,
    info: DeliveryInfo,
    acks: &Acks,
) where
    M: Message + Send + 'static,
    H: Handler<M>,
{
    let label = ctx.queue.as_str();
    metrics::counter!("pledgesync_messages_consumed_total", "queue" => label).increment(1);
    let verdict = match M::decode(&delivery.data) {
        Err(error) => Verdict::DeadLetter {
            reason: error.to_string(),
            kind: decode_kind(&error),
        },
        Ok(message) => {
            let started = Instant::now();
            let outcome = AssertUnwindSafe(handler.handle(message, info.clone()))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    Outcome::retry(format!("the handler panicked: {}", panic_text(&*panic)))
                });
            metrics::histogram!(
                "pledgesync_message_handler_duration_seconds",
                "queue" => label,
                "outcome" => outcome_label(&outcome)
            )
            .record(started.elapsed().as_secs_f64());
            judge(
                outcome,
                info.delivery_count,
                ctx.broker.topology().delivery_limit(),
            )
        }
    };
    settle(ctx, &delivery, &info, verdict, acks).await;
}

/// Turns the handler's outcome into what the runner does. A retry on the last delivery the queue
/// allows becomes a dead letter here, so that the dead letter says why; RabbitMQ's own limit stays
/// the backstop for a consumer that dies without settling.
fn judge(outcome: Outcome, delivery_count: u32, delivery_limit: u32) -> Verdict {
    match outcome {
        Outcome::Ack => Verdict::Ack,
        Outcome::Retry { reason } if delivery_count >= delivery_limit => Verdict::DeadLetter {
            reason: format!(
                "gave up after {} deliveries: {reason}",
                delivery_count.saturating_add(1)
            ),
            kind: "retries_exhausted",
        },
        Outcome::Retry { reason } => Verdict::Retry(reason),
        Outcome::DeadLetter { reason } => Verdict::DeadLetter {
            reason,
            kind: "handler",
        },
    }
}

async fn settle(
    ctx: &Context,
    delivery: &Delivery,
    info: &DeliveryInfo,
    verdict: Verdict,
    acks: &Acks,
) {
    let label = ctx.queue.as_str();
    let span = tracing::Span::current();
    match verdict {
        Verdict::Ack => {
            span.record("outcome", "ack");
            ack(acks, delivery).await;
            metrics::counter!("pledgesync_messages_acked_total", "queue" => label).increment(1);
        }
        Verdict::Retry(reason) => {
            span.record("outcome", "retry");
            let delay = ctx.retry_backoff.delay(info.delivery_count);
            tracing::info!(
                reason = %reason,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "delivery will be retried"
            );
            requeue_after(ctx, delivery, delay, acks).await;
            metrics::counter!("pledgesync_messages_retried_total", "queue" => label).increment(1);
        }
        Verdict::DeadLetter { reason, kind } => {
            span.record("outcome", "dead_letter");
            match dead_letter(ctx, delivery, &reason).await {
                Ok(()) => {
                    tracing::warn!(reason = %reason, reason_kind = kind, "message dead-lettered");
                    ack(acks, delivery).await;
                    metrics::counter!(
                        "pledgesync_messages_dead_lettered_total",
                        "queue" => label,
                        "reason_kind" => kind
                    )
                    .increment(1);
                }
                Err(error) => {
                    tracing::error!(
                        reason = %reason,
                        error = %error,
                        "could not store the dead letter; handing the message back to the queue"
                    );
                    requeue_after(
                        ctx,
                        delivery,
                        ctx.retry_backoff.delay(info.delivery_count),
                        acks,
                    )
                    .await;
                    metrics::counter!("pledgesync_messages_retried_total", "queue" => label)
                        .increment(1);
                }
            }
        }
    }
}

/// Copies the delivery, with why it failed, into the queue's dead-letter queue and waits for the
/// confirm. The original headers (trace context included) stay, so the dead letter can be
/// redriven as it was.
async fn dead_letter(ctx: &Context, delivery: &Delivery, reason: &str) -> Result<(), PublishError> {
    let mut table = headers::without(delivery.properties.headers().as_ref(), |key| {
        matches!(
            key,
            headers::ERROR | headers::SOURCE_QUEUE | headers::FAILED_AT
        )
    });
    let text = |value: String| AMQPValue::LongString(LongString::from(value));
    table.insert(headers::ERROR.into(), text(reason.to_owned()));
    table.insert(headers::SOURCE_QUEUE.into(), text(ctx.queue_name.clone()));
    table.insert(
        headers::FAILED_AT.into(),
        text(chrono::Utc::now().to_rfc3339()),
    );
    let properties = delivery
        .properties
        .clone()
        .with_delivery_mode(2)
        .with_headers(table);
    let topology = ctx.broker.topology();
    let (exchange, destination) = (topology.dead_exchange(), topology.dead_queue(ctx.queue));
    let route = Route {
        exchange: &exchange,
        routing_key: ctx.queue.as_str(),
        destination: &destination,
        label: ctx.queue.dead_label(),
    };
    let message_id = info_id(delivery);
    ctx.broker
        .publish_confirmed(
            &route,
            &delivery.data,
            properties,
            &PublishOptions::new(message_id),
        )
        .await
}

fn info_id(delivery: &Delivery) -> String {
    delivery
        .properties
        .message_id()
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default()
}

async fn ack(acks: &Acks, delivery: &Delivery) {
    if let Err(error) = acks.ack(delivery.delivery_tag).await {
        tracing::warn!(error = %error, "ack did not reach RabbitMQ; the message will be delivered again");
    }
}

/// Waits `delay` (cut short by shutdown) and hands the delivery back to its queue. RabbitMQ
/// counts the delivery, which is what ends a hopeless message's retries.
async fn requeue_after(
    ctx: &Context,
    delivery: &Delivery,
    delay: std::time::Duration,
    acks: &Acks,
) {
    tokio::select! {
        _ = ctx.shutdown.cancelled() => {}
        _ = tokio::time::sleep(delay) => {}
    }
    let requeue = BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    };
    if let Err(error) = delivery.nack(requeue).await {
        tracing::warn!(error = %error, "nack did not reach RabbitMQ; the message will be delivered again anyway");
    }
    // Only now may a multiple ack of a later delivery cover this one's tag.
    acks.settled(delivery.delivery_tag);
}

fn decode_kind(error: &DecodeError) -> &'static str {
    match error {
        DecodeError::Malformed { .. } => "malformed",
        DecodeError::UnsupportedVersion { .. } => "unsupported_version",
        DecodeError::TooManyRecords(_) => "invalid",
    }
}

fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Ack => "ack",
        Outcome::Retry { .. } => "retry",
        Outcome::DeadLetter { .. } => "dead_letter",
    }
}

fn panic_text(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_become_dead_letters_on_the_last_allowed_delivery() {
        assert!(matches!(
            judge(Outcome::retry("busy"), 0, 3),
            Verdict::Retry(_)
        ));
        assert!(matches!(
            judge(Outcome::retry("busy"), 2, 3),
            Verdict::Retry(_)
        ));
        match judge(Outcome::retry("busy"), 3, 3) {
            Verdict::DeadLetter { reason, kind } => {
                assert_eq!(kind, "retries_exhausted");
                assert_eq!(reason, "gave up after 4 deliveries: busy");
            }
            _ => panic!("expected a dead letter"),
        }
        assert!(matches!(judge(Outcome::Ack, 9, 3), Verdict::Ack));
        assert!(matches!(
            judge(Outcome::dead_letter("forged"), 0, 3),
            Verdict::DeadLetter {
                kind: "handler",
                ..
            }
        ));
    }

    #[test]
    fn panics_are_described() {
        let panic: Box<dyn Any + Send> = Box::new("boom");
        assert_eq!(panic_text(&*panic), "boom");
        let panic: Box<dyn Any + Send> = Box::new(String::from("bang"));
        assert_eq!(panic_text(&*panic), "bang");
        let panic: Box<dyn Any + Send> = Box::new(7u8);
        assert_eq!(panic_text(&*panic), "(no message)");
    }
}
