//! The sink's life: connect, serve probes, consume RecordBatches until SIGTERM, drain, exit.
//!
//! Start-up order: the probe server first (so `/healthz` answers and `/readyz` says what is
//! missing while dependencies come up), then PostgreSQL (migrations, advisory-locked so that
//! replicas starting together are safe), then RabbitMQ (topology declared), then the consumer.
//! PostgreSQL and RabbitMQ being down at start is waited out with backoff; a wrong password or a
//! topology mismatch is not, and ends the process with the reason.
//!
//! Once running, outages are survived where they happen: the broker crate re-dials RabbitMQ and
//! resubscribes; the store's pool reconnects to PostgreSQL, and a batch that failed meanwhile is
//! retried by the broker with backoff.
//!
//! On shutdown the consumer stops taking deliveries, the batches in flight finish (commit, ack)
//! within `sink.shutdown_grace_secs`, anything prefetched but unstarted goes back to the queue,
//! and the connections close.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pledgesync_broker::{
    Backoff, Broker, BrokerError, ConsumeError, ConsumerOptions, Topology, WorkQueue,
};
use pledgesync_core::probes::{self, Check, ReadinessCheck};
use pledgesync_core::shutdown::Shutdown;
use pledgesync_store::{Store, StoreError};

use crate::apply::BatchApplier;
use crate::settings::Settings;

/// Delays between attempts to reach PostgreSQL or RabbitMQ at start.
const START_BACKOFF: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));

/// Why the sink stopped other than by a clean shutdown.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot serve probes on {listen}: {source}; choose another http.listen")]
    Probes {
        listen: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("PostgreSQL cannot be used: {0}")]
    Store(#[source] StoreError),
    #[error("RabbitMQ cannot be used: {0}")]
    Broker(#[source] BrokerError),
    #[error(transparent)]
    Consume(#[from] ConsumeError),
}

/// Runs the sink until `shutdown` (or a failure no retry can fix).
pub async fn run(settings: Settings, shutdown: Shutdown) -> Result<(), RunError> {
    // Install the Prometheus recorder before the first batch: counters recorded before it
    // exists would be lost.
    let _ = pledgesync_core::telemetry::metrics_handle();
    let store = Store::connect_lazy(&settings.postgres).map_err(RunError::Store)?;
    let broker_slot: Arc<OnceLock<Broker>> = Arc::new(OnceLock::new());
    let probes = serve_probes(
        settings.http.listen,
        readiness(store.clone(), broker_slot.clone()),
        shutdown.clone(),
    )
    .await?;

    let result = work(&settings, &store, &broker_slot, &shutdown).await;

    // Whatever ended the work ends the process: stop the probe server too.
    shutdown.trigger();
    if let Some(broker) = broker_slot.get() {
        broker.close().await;
    }
    store.close().await;
    if let Err(error) = probes.await {
        tracing::debug!(%error, "probe server task ended abnormally");
    }
    result
}

async fn work(
    settings: &Settings,
    store: &Store,
    broker_slot: &OnceLock<Broker>,
    shutdown: &Shutdown,
) -> Result<(), RunError> {
    let migrated = patiently(
        "PostgreSQL",
        shutdown,
        || store.migrate(),
        StoreError::is_retryable,
    )
    .await;
    match migrated {
        None => return Ok(()),
        Some(result) => result.map_err(RunError::Store)?,
    }
    let topology = Topology::from_settings(&settings.rabbitmq);
    let connected = patiently(
        "RabbitMQ",
        shutdown,
        || Broker::connect(&settings.rabbitmq, topology.clone()),
        BrokerError::is_retryable,
    )
    .await;
    let broker = match connected {
        None => return Ok(()),
        Some(result) => result.map_err(RunError::Broker)?,
    };
    let broker = broker_slot.get_or_init(|| broker).clone();

    let mut options = ConsumerOptions::new(WorkQueue::Batches, settings.sink.prefetch);
    options.grace_period = settings.sink.shutdown_grace();
    tracing::info!(
        queue = %topology.queue(WorkQueue::Batches),
        prefetch = settings.sink.prefetch,
        group_max_batches = settings.sink.group_max_batches,
        commit_workers = settings.sink.commit_workers,
        "sink started"
    );
    pledgesync_broker::run_consumer_with(
        broker,
        options,
        BatchApplier::new(store.clone(), shutdown.clone())
            .with_patience(settings.sink.outage_patience())
            .with_group_commit(settings.sink.group_options()),
        shutdown.clone(),
    )
    .await?;
    Ok(())
}

/// Tries `attempt` until it succeeds, fails for good, or shutdown is requested (`None`).
async fn patiently<T, E, F, Fut>(
    what: &'static str,
    shutdown: &Shutdown,
    mut attempt: F,
    retryable: fn(&E) -> bool,
) -> Option<Result<T, E>>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut failures = 0u32;
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return None,
            result = attempt() => result,
        };
        match result {
            Err(error) if retryable(&error) => {
                let delay = START_BACKOFF.delay(failures);
                failures = failures.saturating_add(1);
                tracing::warn!(
                    dependency = what,
                    %error,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "not reachable yet; retrying"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            other => return Some(other),
        }
    }
}

/// Ready when PostgreSQL answers and RabbitMQ is connected.
fn readiness(store: Store, broker: Arc<OnceLock<Broker>>) -> ReadinessCheck {
    Arc::new(move || {
        let store = store.clone();
        let broker = broker.clone();
        Box::pin(async move {
            let postgres = Check {
                name: "postgres",
                error: store.ready().await.err().map(|error| error.to_string()),
            };
            let rabbitmq = match broker.get() {
                Some(broker) => broker.readiness().await,
                None => Check {
                    name: "rabbitmq",
                    error: Some("not connected yet".to_owned()),
                },
            };
            vec![postgres, rabbitmq]
        })
    })
}

/// Binds the probe port now (so a taken port fails start-up) and serves it until shutdown.
async fn serve_probes(
    listen: SocketAddr,
    readiness: ReadinessCheck,
    shutdown: Shutdown,
) -> Result<tokio::task::JoinHandle<()>, RunError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| RunError::Probes { listen, source })?;
    let address = listener
        .local_addr()
        .map_err(|source| RunError::Probes { listen, source })?;
    tracing::info!(%address, "probe server listening");
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, probes::router(readiness))
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "probe server failed");
        }
    }))
}
