//! The names and shape of everything pledgesync declares in RabbitMQ.
//!
//! One direct exchange routes work to two durable quorum queues; each work queue dead-letters
//! into its own durable quorum dead-letter queue through a second direct exchange. Every name is
//! derived from one prefix, so that tests can run side by side on one broker with their own
//! topology and delete it afterwards.
//!
//! Declaring is idempotent: whichever binary starts first declares, the others re-declare the same
//! thing and RabbitMQ answers OK. A queue that already exists with *different* arguments (say, an
//! operator changed `rabbitmq.delivery_limit`) is refused with PRECONDITION_FAILED, surfaced as
//! [`BrokerError::TopologyMismatch`]: quorum queue arguments cannot be changed in place.

use std::fmt;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};

use crate::error::BrokerError;

/// The prefix of the production topology.
pub const DEFAULT_PREFIX: &str = "pledgesync";

/// One of the two work queues. Each carries one message type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkQueue {
    /// `SyncJob`s, from the scheduler (and fetchers' continuations) to fetchers.
    Jobs,
    /// `RecordBatch`es, from fetchers to sinks.
    Batches,
}

impl WorkQueue {
    /// Both queues, for declaring and for iterating in tools.
    pub const ALL: [WorkQueue; 2] = [WorkQueue::Jobs, WorkQueue::Batches];

    /// The routing key on both exchanges and the `queue` label of metrics. Fixed and short, so
    /// that metrics keep a bounded cardinality whatever the topology prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkQueue::Jobs => "jobs",
            WorkQueue::Batches => "batches",
        }
    }

    /// The `queue` label of metrics about the queue's dead letters.
    pub fn dead_label(self) -> &'static str {
        match self {
            WorkQueue::Jobs => "jobs.dead",
            WorkQueue::Batches => "batches.dead",
        }
    }
}

impl fmt::Display for WorkQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The names and arguments of pledgesync's exchanges and queues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    delivery_limit: u32,
}

impl Topology {
    /// The topology whose names all start with `prefix` (production: [`DEFAULT_PREFIX`]), whose
    /// work queues dead-letter a message after `delivery_limit` unsuccessful deliveries.
    pub fn new(prefix: impl Into<String>, delivery_limit: u32) -> Self {
        Self {
            prefix: prefix.into(),
            delivery_limit,
        }
    }

    /// The topology configured by `rabbitmq.topology_prefix` and `rabbitmq.delivery_limit`.
    pub fn from_settings(settings: &pledgesync_core::settings::RabbitMqSettings) -> Self {
        Self::new(settings.topology_prefix.clone(), settings.delivery_limit)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Deliveries of one message before RabbitMQ dead-letters it (`x-delivery-limit`).
    pub fn delivery_limit(&self) -> u32 {
        self.delivery_limit
    }

    /// The direct exchange that work is published to: `pledgesync`.
    pub fn exchange(&self) -> String {
        self.prefix.clone()
    }

    /// The direct exchange that dead letters go through: `pledgesync.dead`.
    pub fn dead_exchange(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// `pledgesync.jobs` or `pledgesync.batches`.
    pub fn queue(&self, queue: WorkQueue) -> String {
        format!("{}.{}", self.prefix, queue.as_str())
    }

    /// `pledgesync.jobs.dead` or `pledgesync.batches.dead`.
    pub fn dead_queue(&self, queue: WorkQueue) -> String {
        format!("{}.{}.dead", self.prefix, queue.as_str())
    }

    /// Every queue name of this topology, work queues first.
    pub fn queue_names(&self) -> Vec<String> {
        WorkQueue::ALL
            .iter()
            .map(|q| self.queue(*q))
            .chain(WorkQueue::ALL.iter().map(|q| self.dead_queue(*q)))
            .collect()
    }

    /// The arguments of a work queue. Dead-lettering is at-least-once, so that a message that
    /// runs out of deliveries is never dropped on its way to the dead-letter queue; RabbitMQ
    /// requires `reject-publish` overflow for that strategy.
    pub fn work_queue_arguments(&self, queue: WorkQueue) -> FieldTable {
        let mut args = quorum_arguments();
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(self.delivery_limit)),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            long_string(self.dead_exchange()),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            long_string(queue.as_str()),
        );
        args.insert(
            "x-dead-letter-strategy".into(),
            long_string("at-least-once"),
        );
        args.insert("x-overflow".into(), long_string("reject-publish"));
        args
    }

    /// The arguments of a dead-letter queue: a plain durable quorum queue, without a delivery
    /// limit, because peeking at dead letters returns them and must never drop one.
    pub fn dead_queue_arguments(&self) -> FieldTable {
        quorum_arguments()
    }

    /// Declares both exchanges, the four queues and their bindings. Idempotent.
    pub async fn declare(&self, channel: &Channel) -> Result<(), BrokerError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        for exchange in [self.exchange(), self.dead_exchange()] {
            channel
                .exchange_declare(
                    exchange.as_str().into(),
                    ExchangeKind::Direct,
                    durable,
                    FieldTable::default(),
                )
                .await
                .map_err(|source| declare_error(&exchange, source))?;
        }
        for queue in WorkQueue::ALL {
            self.declare_queue(
                channel,
                &self.queue(queue),
                self.work_queue_arguments(queue),
            )
            .await?;
            self.bind(channel, &self.queue(queue), &self.exchange(), queue)
                .await?;
            self.declare_queue(
                channel,
                &self.dead_queue(queue),
                self.dead_queue_arguments(),
            )
            .await?;
            self.bind(
                channel,
                &self.dead_queue(queue),
                &self.dead_exchange(),
                queue,
            )
            .await?;
        }
        Ok(())
    }

    /// Deletes every queue and exchange of this topology (tests clean up with it). Messages in
    /// the queues are lost, so production code never calls it.
    pub async fn delete(&self, channel: &Channel) -> Result<(), BrokerError> {
        for queue in self.queue_names() {
            channel
                .queue_delete(queue.as_str().into(), Default::default())
                .await
                .map_err(|source| BrokerError::amqp("queue.delete", source))?;
        }
        for exchange in [self.exchange(), self.dead_exchange()] {
            channel
                .exchange_delete(exchange.as_str().into(), Default::default())
                .await
                .map_err(|source| BrokerError::amqp("exchange.delete", source))?;
        }
        Ok(())
    }

    async fn declare_queue(
        &self,
        channel: &Channel,
        name: &str,
        args: FieldTable,
    ) -> Result<(), BrokerError> {
        channel
            .queue_declare(name.into(), QueueDeclareOptions::durable(), args)
            .await
            .map(|_| ())
            .map_err(|source| declare_error(name, source))
    }

    async fn bind(
        &self,
        channel: &Channel,
        queue: &str,
        exchange: &str,
        key: WorkQueue,
    ) -> Result<(), BrokerError> {
        channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|source| declare_error(queue, source))
    }
}

fn quorum_arguments() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string("quorum"));
    args
}

fn long_string(value: impl Into<String>) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.into()))
}

fn declare_error(name: &str, source: lapin::Error) -> BrokerError {
    if crate::error::reply_code(&source) == Some(crate::error::PRECONDITION_FAILED) {
        BrokerError::TopologyMismatch {
            name: name.to_owned(),
            source,
        }
    } else {
        BrokerError::amqp("declare", source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_from_the_prefix() {
        let topology = Topology::new("t1", 5);
        assert_eq!(topology.exchange(), "t1");
        assert_eq!(topology.dead_exchange(), "t1.dead");
        assert_eq!(topology.queue(WorkQueue::Jobs), "t1.jobs");
        assert_eq!(topology.queue(WorkQueue::Batches), "t1.batches");
        assert_eq!(topology.dead_queue(WorkQueue::Jobs), "t1.jobs.dead");
        assert_eq!(topology.queue_names().len(), 4);
    }

    #[test]
    fn work_queues_are_quorum_with_a_limit_and_a_dead_letter_route() {
        let args = Topology::new("t2", 7).work_queue_arguments(WorkQueue::Batches);
        let args = args.inner();
        assert_eq!(
            args.get("x-delivery-limit"),
            Some(&AMQPValue::LongLongInt(7))
        );
        assert_eq!(args.get("x-queue-type"), Some(&long_string("quorum")));
        assert_eq!(
            args.get("x-dead-letter-exchange"),
            Some(&long_string("t2.dead"))
        );
        assert_eq!(
            args.get("x-dead-letter-routing-key"),
            Some(&long_string("batches"))
        );
    }
}
