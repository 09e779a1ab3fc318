//! What the handlers and loops share: the store, the keyring, the Zoho clients, the broker handle
//! and the relay's wake-up signal. Cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use pledgesync_broker::{Backoff, Broker, BrokerError, ConnectOptions, Topology};
use pledgesync_core::probes::Check;
use pledgesync_core::settings::RabbitMqSettings;
use pledgesync_store::Store;
use pledgesync_zoho::accounts::Accounts;
use pledgesync_zoho::tokens::TokenStore;
use tokio::sync::{Notify, OnceCell};

use crate::crypto::Keyring;
use crate::settings::ScheduleSettings;

/// How long one attempt to reach RabbitMQ may take before the caller gets an error: short,
/// because an API request or a probe is waiting; the relay loop retries on its own schedule.
const BROKER_DIAL_BUDGET: Duration = Duration::from_secs(2);

/// A RabbitMQ handle dialed on first use, so the scheduler starts (and Sync Now answers 202)
/// while RabbitMQ is down. Once connected, [`Broker`] reconnects by itself.
#[derive(Clone)]
pub struct LazyBroker {
    settings: RabbitMqSettings,
    topology: Topology,
    cell: Arc<OnceCell<Broker>>,
}

impl std::fmt::Debug for LazyBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyBroker")
            .field("topology", &self.topology)
            .field(
                "connected",
                &self.cell.get().is_some_and(Broker::is_connected),
            )
            .finish()
    }
}

impl LazyBroker {
    pub fn new(settings: RabbitMqSettings, topology: Topology) -> Self {
        Self {
            settings,
            topology,
            cell: Arc::new(OnceCell::new()),
        }
    }

    /// The topology jobs are published to.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The connected broker, dialing it (once, for all callers) if no connection was made yet.
    pub async fn get(&self) -> Result<Broker, BrokerError> {
        self.cell
            .get_or_try_init(|| async {
                let options = ConnectOptions {
                    connection_name: format!("pledgesync-scheduler:{}", std::process::id()),
                    backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(1)),
                    give_up_after: BROKER_DIAL_BUDGET,
                    ..ConnectOptions::default()
                };
                Broker::connect_with(&self.settings, self.topology.clone(), options).await
            })
            .await
            .cloned()
    }

    /// The `/readyz` check for RabbitMQ.
    pub async fn readiness(&self) -> Check {
        match tokio::time::timeout(Duration::from_secs(3), self.get()).await {
            Ok(Ok(broker)) => broker.readiness().await,
            Ok(Err(err)) => Check {
                name: "rabbitmq",
                error: Some(format!("RabbitMQ is unreachable: {err}")),
            },
            Err(_) => Check {
                name: "rabbitmq",
                error: Some("RabbitMQ did not answer within 3s".to_owned()),
            },
        }
    }

    /// Closes the connection if one was made (shutdown).
    pub async fn close(&self) {
        if let Some(broker) = self.cell.get() {
            broker.close().await;
        }
    }
}

/// Everything a request handler needs.
#[derive(Clone, Debug)]
pub struct AppState {
    /// PostgreSQL.
    pub store: Store,
    /// Encrypts secrets before they reach the store.
    pub keyring: Arc<Keyring>,
    /// Zoho's accounts servers: code exchange and revocation.
    pub accounts: Accounts,
    /// The shared access-token cache (Redis): seeded at set-up, cleared on reconnect and delete.
    pub tokens: TokenStore,
    /// Redis, for readiness.
    pub redis: pledgesync_zoho::RedisPool,
    /// RabbitMQ, for readiness and the dead-letter endpoints.
    pub broker: LazyBroker,
    /// Wakes the outbox relay right after Sync Now committed a job.
    pub relay_wake: Arc<Notify>,
    /// Defaults for new integrations.
    pub schedule: Arc<ScheduleSettings>,
}

impl AppState {
    /// `/readyz`: PostgreSQL, RabbitMQ and Redis, checked concurrently.
    pub async fn readiness(&self) -> Vec<Check> {
        let postgres = async {
            Check {
                name: "postgres",
                error: self.store.ready().await.err().map(|e| e.to_string()),
            }
        };
        let redis = async {
            Check {
                name: "redis",
                error: pledgesync_zoho::redis_pool::ready(&self.redis).await.err(),
            }
        };
        let (postgres, rabbitmq, redis) = tokio::join!(postgres, self.broker.readiness(), redis);
        vec![postgres, rabbitmq, redis]
    }
}
