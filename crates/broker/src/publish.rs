//! The confirmed publisher: a publish returns only once RabbitMQ has stored the message.
//!
//! Every message is persistent (delivery mode 2), JSON (`application/json`), typed (`type` is the
//! message kind), carries a message id and a timestamp, and the trace context of the span that
//! published it. Publishes are `mandatory`, so a message that no queue would take comes back as
//! [`PublishError::Unroutable`] instead of vanishing. A nack, a missing confirm or a dropped
//! connection is a retryable error: the publisher tries again on a fresh channel a bounded number
//! of times, then hands the error to its caller, who still holds the message.

use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};
use pledgesync_core::messages::{Message, CONTENT_TYPE};
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::connection::Broker;
use crate::error::PublishError;
use crate::headers;
use crate::topology::WorkQueue;

/// AMQP delivery mode of messages that survive a broker restart.
const PERSISTENT: u8 = 2;

/// Per-message publishing choices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishOptions {
    /// The AMQP message id (at most 255 bytes), e.g. `"<run_id>/<seq>"`; logged by consumers
    /// and shown in dead-letter listings.
    pub message_id: String,
    /// Publish attempts before a retryable failure is returned to the caller (at least 1).
    pub attempts: u32,
    /// Delays between attempts.
    pub backoff: Backoff,
}

impl PublishOptions {
    pub fn new(message_id: impl Into<String>) -> Self {
        Self {
            message_id: message_id.into(),
            attempts: 3,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
        }
    }

    /// The same options with a different number of attempts.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }
}

/// Where a publish goes: for logs, errors and the `queue` label of metrics.
pub(crate) struct Route<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    /// The queue the message should land in, named in errors.
    pub destination: &'a str,
    /// The `queue` label of metrics: `jobs`, `jobs.dead`, ... whatever the prefix.
    pub label: &'a str,
}

impl Broker {
    /// Publishes `message` to `queue` and waits for RabbitMQ's confirm.
    pub async fn publish<M: Message>(
        &self,
        queue: WorkQueue,
        message: &M,
        options: &PublishOptions,
    ) -> Result<(), PublishError> {
        self.publish_bytes(queue, M::KIND, &message.encode(), options)
            .await
    }

    /// Publishes an already encoded body of message kind `kind` to `queue`, with the same
    /// properties and confirm as [`Broker::publish`]. For forwarding tools, and for tests that
    /// need a body no decoder accepts.
    pub async fn publish_bytes(
        &self,
        queue: WorkQueue,
        kind: &str,
        body: &[u8],
        options: &PublishOptions,
    ) -> Result<(), PublishError> {
        let destination = self.topology().queue(queue);
        let mut trace = FieldTable::default();
        headers::inject_context(&headers::current_context(), &mut trace);
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type(CONTENT_TYPE.into())
            .with_type(short("type", kind)?)
            .with_message_id(short("message_id", &options.message_id)?)
            .with_timestamp(unix_now())
            .with_headers(trace);
        let exchange = self.topology().exchange();
        let route = Route {
            exchange: &exchange,
            routing_key: queue.as_str(),
            destination: &destination,
            label: queue.as_str(),
        };
        let span = tracing::debug_span!(
            "publish",
            queue = %queue,
            message.kind = kind,
            message.id = %options.message_id,
        );
        self.publish_confirmed(&route, body, properties, options)
            .instrument(span)
            .await
    }

    /// Publishes with `mandatory`, waits for the confirm, and retries retryable failures.
    pub(crate) async fn publish_confirmed(
        &self,
        route: &Route<'_>,
        body: &[u8],
        properties: BasicProperties,
        options: &PublishOptions,
    ) -> Result<(), PublishError> {
        let attempts = options.attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.publish_once(route, body, properties.clone()).await {
                Ok(()) => {
                    metrics::counter!("pledgesync_messages_published_total", "queue" => route.label.to_owned())
                        .increment(1);
                    return Ok(());
                }
                Err(error) => error,
            };
            metrics::counter!(
                "pledgesync_publish_failures_total",
                "queue" => route.label.to_owned(),
                "kind" => error.kind()
            )
            .increment(1);
            if !error.is_retryable() || attempt >= attempts {
                return Err(error);
            }
            let delay = options.backoff.delay(attempt - 1);
            tracing::warn!(
                attempt,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %error,
                "publish not confirmed; publishing again"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn publish_once(
        &self,
        route: &Route<'_>,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let channel = self.confirm_channel().await?;
        let amqp = |source| PublishError::Amqp {
            destination: route.destination.to_owned(),
            source,
        };
        let pending = channel
            .basic_publish(
                route.exchange.into(),
                route.routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await
            .map_err(amqp)?;
        let timeout = self.options().confirm_timeout;
        let confirmation = match tokio::time::timeout(timeout, pending).await {
            Ok(confirmation) => confirmation.map_err(amqp)?,
            Err(_) => {
                // A channel that lost a confirm cannot be trusted with the next one.
                self.discard_confirm_channel(&channel).await;
                return Err(PublishError::ConfirmTimeout {
                    destination: route.destination.to_owned(),
                    timeout,
                });
            }
        };
        match confirmation {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                Err(PublishError::Unroutable {
                    destination: route.destination.to_owned(),
                    reply_code: returned.reply_code,
                    reply_text: returned.reply_text.to_string(),
                })
            }
            Confirmation::Nack(None) => Err(PublishError::Nacked {
                destination: route.destination.to_owned(),
            }),
        }
    }

    async fn discard_confirm_channel(&self, channel: &Channel) {
        if self.take_confirm_channel_if(channel.id()).await {
            let _ = channel.close(200, "OK".into()).await;
        }
    }
}

fn short(what: &'static str, value: &str) -> Result<ShortString, PublishError> {
    ShortString::try_new(value).map_err(|_| PublishError::PropertyTooLong {
        property: what,
        length: value.len(),
    })
}

fn unix_now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0)
}
