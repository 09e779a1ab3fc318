//! The RabbitMQ layer of pledgesync: every binary talks to the broker through this crate.
//!
//! RabbitMQ holds the work in flight. This crate declares where it lives (a direct exchange,
//! durable quorum queues with a delivery limit, and a dead-letter queue each), publishes with
//! confirms so that a publish that returned is stored, runs consumers with manual acks so that a
//! message is removed only once its work is done, and keeps one trace across the three services
//! through the W3C `traceparent` header. It survives RabbitMQ going away: connections are
//! re-dialed with backoff and jitter, consumers resubscribe, unconfirmed publishes are retried.
//!
//! This crate must never know what a message means (no Zoho, no PostgreSQL, no business rules:
//! handlers bring those), never lose a message silently (unroutable, nacked or unconfirmed
//! publishes are errors; dead letters are acked only after their copy is confirmed), and never
//! log the broker URL, which carries a password.
//!
//! Modules:
//! - [`topology`]: names of exchanges and queues, their arguments, idempotent declaration.
//! - [`connection`]: [`Broker`], the reconnecting connection handle, readiness and queue depth.
//! - [`publish`]: the confirmed publisher.
//! - [`consume`]: the consumer runner, [`Handler`] and [`Outcome`].
//! - `settle` (private): one delivery from decode to ack, nack or dead letter.
//! - `acks` (private): a channel's acks, coalesced into multiple acks where that is safe.
//! - [`dead`]: listing and redriving dead letters.
//! - [`headers`]: trace context propagation and the headers the runner reads and writes.
//! - [`backoff`]: exponential backoff with jitter.
//! - [`error`]: errors, each retryable or permanent.

mod acks;
pub mod backoff;
pub mod connection;
pub mod consume;
pub mod dead;
pub mod error;
pub mod headers;
pub mod publish;
mod settle;
pub mod topology;

pub use backoff::Backoff;
pub use connection::{Broker, ConnectOptions, QueueDepth};
pub use consume::{
    run_consumer, run_consumer_with, ConsumerOptions, DeliveryInfo, Handler, Outcome,
};
pub use dead::DeadLetter;
pub use error::{BrokerError, ConsumeError, ErrorClass, PublishError};
pub use publish::PublishOptions;
pub use topology::{Topology, WorkQueue, DEFAULT_PREFIX};
