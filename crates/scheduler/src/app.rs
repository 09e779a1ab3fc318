//! Start-up and shutdown: builds every component from [`Settings`], binds the API, and runs the
//! API, the outbox relay, the periodic loop and the queue gauges until told to stop.
//!
//! Tests build an [`Application`] on `127.0.0.1:0` against a throwaway database and read the port
//! it got; `main` does the same with the configured address and SIGTERM as the shutdown.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pledgesync_broker::{Backoff, Topology};
use pledgesync_core::shutdown::Shutdown;
use pledgesync_store::{Store, StoreError};
use pledgesync_zoho::accounts::{Accounts, ClientBuildError};
use pledgesync_zoho::redis_pool::{self, RedisPool};
use pledgesync_zoho::tokens::TokenStore;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::api::auth::Tokens;
use crate::crypto::{CryptoError, Keyring};
use crate::periodic::Periodic;
use crate::relay::{Relay, RelayOptions};
use crate::settings::Settings;
use crate::state::{AppState, LazyBroker};

/// The scheduler could not start. None of these fixes itself; the message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("the encryption keys cannot be used: {0}")]
    Keys(#[from] CryptoError),
    #[error("PostgreSQL: {0}")]
    Store(#[from] StoreError),
    #[error("the Redis pool cannot be built: {0}; check redis.url")]
    Redis(String),
    #[error(transparent)]
    Zoho(#[from] ClientBuildError),
    #[error("cannot listen on {address}: {source}; check api.listen")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl StartupError {
    /// Whether starting again later may work (PostgreSQL still coming up).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StartupError::Store(e) if e.is_retryable())
    }
}

/// The scheduler, built and bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    state: AppState,
    tokens: Tokens,
    body_limit: usize,
    relay: Relay,
    periodic: Periodic,
    grace: Duration,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Builds the scheduler: connects PostgreSQL and applies migrations, prepares Redis, Zoho and
    /// (lazily) RabbitMQ with the topology of `rabbitmq.topology_prefix`, binds `api.listen`.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let topology = Topology::from_settings(&settings.rabbitmq);
        // Trace context travels in W3C headers whether or not this process exports traces.
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let _ = pledgesync_core::telemetry::metrics_handle();

        let keyring = Keyring::from_settings(&settings.security)?;
        let store = Store::connect(&settings.postgres).await?;
        store.migrate().await?;
        let redis = redis_pool(&settings)?;
        let accounts = Accounts::new(&settings.zoho, settings.zoho_client.clone())?;
        let tokens_store = TokenStore::new(redis.clone(), accounts.clone());
        let broker = LazyBroker::new(settings.rabbitmq.clone(), topology);
        let relay_wake = Arc::new(Notify::new());
        let schedule = settings.schedule.clone();

        let listener = TcpListener::bind(settings.api.listen)
            .await
            .map_err(|source| StartupError::Bind {
                address: settings.api.listen,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| StartupError::Bind {
            address: settings.api.listen,
            source,
        })?;

        let relay = Relay::new(
            store.clone(),
            broker.clone(),
            relay_wake.clone(),
            RelayOptions {
                batch: schedule.relay_batch,
                poll: Duration::from_millis(schedule.relay_poll_millis),
                backoff: Backoff::new(
                    Duration::from_millis(100),
                    Duration::from_millis(schedule.relay_max_backoff_millis),
                ),
            },
        );
        let periodic = Periodic::new(
            store.clone(),
            relay_wake.clone(),
            Duration::from_secs(schedule.tick_secs),
            schedule.claim_batch,
            Duration::from_secs(schedule.stale_run_secs),
        );
        let state = AppState {
            store,
            keyring: Arc::new(keyring),
            accounts,
            tokens: tokens_store,
            redis,
            broker,
            relay_wake,
            schedule: Arc::new(schedule),
        };
        Ok(Self {
            listener,
            address,
            state,
            tokens: Tokens::new(&settings.api.tokens),
            body_limit: settings.api.body_limit_bytes,
            relay,
            periodic,
            grace: Duration::from_secs(settings.api.shutdown_grace_secs),
        })
    }

    /// The port the API listens on (useful with `api.listen = 127.0.0.1:0`).
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The address the API listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The shared state (tests reach the store and the keyring through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A handle on the periodic loop, to run a tick by hand (tests, tools).
    pub fn periodic(&self) -> Periodic {
        self.periodic.clone()
    }

    /// A handle on the outbox relay, to run a pass by hand (tests, tools).
    pub fn relay(&self) -> Relay {
        self.relay.clone()
    }

    /// Serves the API and runs the relay and the periodic loop until `shutdown`, then drains:
    /// requests in flight finish, the loops stop (the relay finishes the row it holds), and the
    /// connections close, all within `api.shutdown_grace_secs`.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        let Self {
            listener,
            address,
            state,
            tokens,
            body_limit,
            relay,
            periodic,
            grace,
        } = self;
        let relay_task = tokio::spawn(relay.run(shutdown.clone()));
        let periodic_task = tokio::spawn(periodic.run(shutdown.clone()));
        let depths_task = tokio::spawn(record_queue_depths(state.broker.clone(), shutdown.clone()));
        let router = crate::api::router(state.clone(), tokens, body_limit);
        tracing::info!(%address, "scheduler API listening");
        let stopping = shutdown.clone();
        let server = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stopping.cancelled().await })
            .into_future();
        // Requests in flight get the grace period, not forever (a Zoho call may hang).
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        let served = tokio::select! {
            served = server => served,
            () = deadline => {
                tracing::warn!(grace_secs = grace.as_secs(), "requests still in flight after the grace period were abandoned");
                Ok(())
            }
        };
        // The server returns once shutdown was requested (or on an accept error): stop the rest.
        shutdown.trigger();
        let drained = tokio::time::timeout(grace, async {
            let _ = relay_task.await;
            let _ = periodic_task.await;
            let _ = depths_task.await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "loops did not stop within the grace period"
            );
        }
        state.broker.close().await;
        state.store.close().await;
        tracing::info!("scheduler stopped");
        served
    }
}

/// How often the queue gauges are refreshed: about one Prometheus scrape interval.
const QUEUE_DEPTH_INTERVAL: Duration = Duration::from_secs(15);

/// Keeps `pledgesync_queue_messages{queue}` and `pledgesync_queue_consumers{queue}` current until
/// shutdown. Only the scheduler does this: it is the one binary every deployment has exactly
/// once-ish, and RabbitMQ's counts are the same whoever asks. A failed look is logged and tried
/// again at the next interval; the gauges keep their last values meanwhile.
async fn record_queue_depths(broker: LazyBroker, shutdown: Shutdown) {
    let mut ticks = tokio::time::interval(QUEUE_DEPTH_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let looked = match broker.get().await {
            Ok(broker) => broker.record_queue_depths().await,
            Err(error) => Err(error),
        };
        if let Err(error) = looked {
            tracing::debug!(%error, "queue depths not read; trying again at the next interval");
        }
    }
}

fn redis_pool(settings: &Settings) -> Result<RedisPool, StartupError> {
    // The URL may carry a password: the error names the setting and the kind of failure only.
    redis_pool::connect(&settings.redis.url, settings.redis.pool_size)
        .map_err(|e| StartupError::Redis(e.to_string()))
}
