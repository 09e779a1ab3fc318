//! One RabbitMQ connection per process, re-established when it drops.
//!
//! [`Broker`] is a cheap handle (clone it freely) on a connection that it re-dials lazily: any
//! operation that finds the connection gone dials again with exponential backoff and jitter,
//! re-declares the topology (RabbitMQ may have come back empty), and goes on. Only one task dials
//! at a time; the others wait for its result. Consumers notice a dropped connection through their
//! delivery stream and come back through here; publishers get a retryable error for a publish
//! whose confirm never came, and publish it again on the new connection.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use pledgesync_core::probes::Check;
use pledgesync_core::settings::RabbitMqSettings;
use secrecy::{ExposeSecret, SecretString};

use crate::backoff::Backoff;
use crate::error::{BrokerError, ErrorClass, NOT_FOUND};
use crate::topology::Topology;

/// How a broker handle connects and reconnects.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Shown in RabbitMQ's management UI and `rabbitmqctl list_connections`, so an operator can
    /// tell which pod holds which connection.
    pub connection_name: String,
    /// Delays between dial attempts.
    pub backoff: Backoff,
    /// How long one operation keeps dialing before it gives up with a retryable error. Consumers
    /// go on trying after that; publishers hand the error to their caller.
    pub give_up_after: Duration,
    /// How long a publish waits for RabbitMQ's confirm before it counts as lost.
    pub confirm_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connection_name: default_connection_name(),
            backoff: Backoff::default(),
            give_up_after: Duration::from_secs(15),
            confirm_timeout: Duration::from_secs(10),
        }
    }
}

fn default_connection_name() -> String {
    let program = std::env::args()
        .next()
        .and_then(|path| {
            std::path::Path::new(&path)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "pledgesync".to_owned());
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    format!("{program}@{host}:{}", std::process::id())
}

/// How many messages wait in a queue and how many consumers read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueDepth {
    /// Messages ready for delivery (not those delivered and unacknowledged).
    pub messages: u32,
    /// Consumers subscribed to the queue.
    pub consumers: u32,
}

/// A handle on the process's RabbitMQ connection. Clones share the connection.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    url: SecretString,
    options: ConnectOptions,
    topology: Topology,
    current: RwLock<Option<Arc<Connection>>>,
    /// Held while dialing, so that one task dials and the others wait for its connection.
    dialing: tokio::sync::Mutex<()>,
    /// The channel that publishes, in confirm mode; replaced when it closes.
    publisher: tokio::sync::Mutex<Option<Channel>>,
    closed: AtomicBool,
    connections: AtomicU64,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL carries the password, so it is left out.
        f.debug_struct("Broker")
            .field("connection_name", &self.inner.options.connection_name)
            .field("topology", &self.inner.topology)
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Broker {
    /// Connects with default options and declares `topology`.
    pub async fn connect(
        settings: &RabbitMqSettings,
        topology: Topology,
    ) -> Result<Self, BrokerError> {
        Self::connect_with(settings, topology, ConnectOptions::default()).await
    }

    /// Connects (retrying for up to `options.give_up_after`) and declares `topology`.
    pub async fn connect_with(
        settings: &RabbitMqSettings,
        topology: Topology,
        options: ConnectOptions,
    ) -> Result<Self, BrokerError> {
        let broker = Self {
            inner: Arc::new(Inner {
                url: settings.url.clone(),
                options,
                topology,
                current: RwLock::new(None),
                dialing: tokio::sync::Mutex::new(()),
                publisher: tokio::sync::Mutex::new(None),
                closed: AtomicBool::new(false),
                connections: AtomicU64::new(0),
            }),
        };
        broker.connection().await?;
        Ok(broker)
    }

    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    pub fn options(&self) -> &ConnectOptions {
        &self.inner.options
    }

    /// Whether the connection is up right now (no I/O).
    pub fn is_connected(&self) -> bool {
        self.snapshot()
            .is_some_and(|conn| conn.status().connected())
    }

    /// How many connections this handle has opened: 1 after connecting, one more per reconnect.
    pub fn connections_opened(&self) -> u64 {
        self.inner.connections.load(Ordering::SeqCst)
    }

    /// A new channel on the current connection, reconnecting first if it dropped.
    pub async fn channel(&self) -> Result<Channel, BrokerError> {
        let conn = self.connection().await?;
        match conn.create_channel().await {
            Ok(channel) => Ok(channel),
            // The connection may have dropped between the check and the call: dial once more.
            Err(err) if crate::error::classify(&err) == ErrorClass::Retryable => {
                let conn = self.connection().await?;
                conn.create_channel()
                    .await
                    .map_err(|source| BrokerError::amqp("channel.open", source))
            }
            Err(source) => Err(BrokerError::amqp("channel.open", source)),
        }
    }

    /// The shared publishing channel (confirm mode), reopened when it closed.
    pub(crate) async fn confirm_channel(&self) -> Result<Channel, BrokerError> {
        let mut slot = self.inner.publisher.lock().await;
        if let Some(channel) = slot.as_ref() {
            if channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        let channel = self.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|source| BrokerError::amqp("confirm.select", source))?;
        *slot = Some(channel.clone());
        Ok(channel)
    }

    /// Forgets the publishing channel if it is still the one with `id`; true if it was.
    pub(crate) async fn take_confirm_channel_if(&self, id: lapin::types::ChannelId) -> bool {
        let mut slot = self.inner.publisher.lock().await;
        if slot.as_ref().is_some_and(|channel| channel.id() == id) {
            *slot = None;
            true
        } else {
            false
        }
    }

    /// Messages and consumers of `queue`, by a passive declare (which never creates it).
    pub async fn queue_depth(&self, queue: &str) -> Result<QueueDepth, BrokerError> {
        let channel = self.channel().await?;
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        // A failed passive declare closes the channel by itself; only close it on success.
        match declared {
            Ok(declared) => {
                let _ = channel.close(200, "OK".into()).await;
                Ok(QueueDepth {
                    messages: declared.message_count(),
                    consumers: declared.consumer_count(),
                })
            }
            Err(source) if crate::error::reply_code(&source) == Some(NOT_FOUND) => {
                Err(BrokerError::QueueNotFound {
                    queue: queue.to_owned(),
                })
            }
            Err(source) => Err(BrokerError::amqp("queue.declare (passive)", source)),
        }
    }

    /// Sets the `pledgesync_queue_messages{queue}` and `pledgesync_queue_consumers{queue}` gauges
    /// for the four queues of the topology (`queue` is `jobs`, `jobs.dead`, ...). Binaries call
    /// it periodically; the same numbers drive autoscaling (KEDA's RabbitMQ scaler reads the
    /// ready-message count of `pledgesync.jobs` and `pledgesync.batches`).
    pub async fn record_queue_depths(&self) -> Result<(), BrokerError> {
        for queue in crate::topology::WorkQueue::ALL {
            for (name, label) in [
                (self.topology().queue(queue), queue.as_str()),
                (self.topology().dead_queue(queue), queue.dead_label()),
            ] {
                let depth = self.queue_depth(&name).await?;
                metrics::gauge!("pledgesync_queue_messages", "queue" => label)
                    .set(f64::from(depth.messages));
                metrics::gauge!("pledgesync_queue_consumers", "queue" => label)
                    .set(f64::from(depth.consumers));
            }
        }
        Ok(())
    }

    /// The `/readyz` check: ready when connected. When not, tries one quick dial unless another
    /// task is dialing already, so that a process that only publishes now and then still
    /// recovers, and a probe never waits through a whole backoff.
    pub async fn readiness(&self) -> Check {
        let error = if self.is_connected() {
            None
        } else if self.inner.closed.load(Ordering::SeqCst) {
            Some(BrokerError::Closed.to_string())
        } else {
            match self.inner.dialing.try_lock() {
                Err(_) => Some("reconnecting to RabbitMQ".to_owned()),
                Ok(_guard) => {
                    match tokio::time::timeout(Duration::from_secs(3), self.dial_once()).await {
                        Ok(Ok(())) => None,
                        Ok(Err(err)) => Some(format!("RabbitMQ is unreachable: {err}")),
                        Err(_) => Some("RabbitMQ did not answer within 3s".to_owned()),
                    }
                }
            }
        };
        Check {
            name: "rabbitmq",
            error,
        }
    }

    /// Closes the connection. In-flight work on it fails; later operations return
    /// [`BrokerError::Closed`].
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let current = self.write_slot().take();
        if let Some(conn) = current {
            if let Err(err) = conn.close(200, "pledgesync shutting down".into()).await {
                tracing::debug!(error = %err, "RabbitMQ connection was already closed");
            }
        }
    }

    /// Closes the connection the way a network failure would look to the consumers and
    /// publishers on it (they see errors and reconnect), without marking the handle closed.
    /// For failure tests and for an operator's "reconnect now".
    pub async fn drop_connection(&self) {
        let current = self.snapshot();
        if let Some(conn) = current {
            let _ = conn
                .close(320, "pledgesync: connection dropped on purpose".into())
                .await;
        }
    }

    fn snapshot(&self) -> Option<Arc<Connection>> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn write_slot(&self) -> std::sync::RwLockWriteGuard<'_, Option<Arc<Connection>>> {
        self.inner
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    async fn connection(&self) -> Result<Arc<Connection>, BrokerError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(BrokerError::Closed);
        }
        if let Some(conn) = self.snapshot().filter(|c| c.status().connected()) {
            return Ok(conn);
        }
        let _dialing = self.inner.dialing.lock().await;
        // Whoever held the lock before us may have reconnected already.
        if let Some(conn) = self.snapshot().filter(|c| c.status().connected()) {
            return Ok(conn);
        }
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            if self.inner.closed.load(Ordering::SeqCst) {
                return Err(BrokerError::Closed);
            }
            attempts += 1;
            let err = match self.dial_once().await {
                Ok(()) => match self.snapshot() {
                    Some(conn) => return Ok(conn),
                    None => continue,
                },
                Err(err) => err,
            };
            let waited = started.elapsed();
            if !err.is_retryable() || waited >= self.inner.options.give_up_after {
                return Err(match err {
                    BrokerError::Connect { source, .. } => BrokerError::Connect {
                        attempts,
                        waited,
                        source,
                    },
                    other => other,
                });
            }
            let delay = self.inner.options.backoff.delay(attempts - 1);
            tracing::warn!(
                attempt = attempts,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %err,
                "RabbitMQ is unreachable; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One dial, topology declaration included. The caller holds `dialing`.
    async fn dial_once(&self) -> Result<(), BrokerError> {
        let properties = ConnectionProperties::default()
            .with_connection_name(self.inner.options.connection_name.clone().into());
        let connect_error = |source| BrokerError::Connect {
            attempts: 1,
            waited: Duration::ZERO,
            source,
        };
        let conn = Connection::connect(self.inner.url.expose_secret(), properties)
            .await
            .map_err(connect_error)?;
        let channel = conn.create_channel().await.map_err(connect_error)?;
        self.inner.topology.declare(&channel).await?;
        let _ = channel.close(200, "OK".into()).await;
        let opened = self.inner.connections.fetch_add(1, Ordering::SeqCst) + 1;
        metrics::counter!("pledgesync_broker_connections_opened_total").increment(1);
        if opened > 1 {
            tracing::info!(connection = %self.inner.options.connection_name, "reconnected to RabbitMQ");
        } else {
            tracing::info!(connection = %self.inner.options.connection_name, "connected to RabbitMQ");
        }
        *self.write_slot() = Some(Arc::new(conn));
        Ok(())
    }
}
