//! The fetcher process: connect everything, serve the probes, consume jobs until shutdown.
//!
//! Start-up order: PostgreSQL (and migrations, advisory-locked so replicas may start together),
//! RabbitMQ (and the topology), Redis with the token store and the Zoho client, the keyring; then
//! `/healthz`, `/readyz` (PostgreSQL, RabbitMQ, Redis) and `/metrics` on `http.listen`, and the
//! consumer on the jobs queue with `rabbitmq.prefetch` jobs at once. On SIGTERM the consumer stops
//! taking jobs; jobs in flight reach their next checkpoint and hand their run on as a
//! continuation (or go back to the queue) within `fetch.shutdown_grace_secs`.

use std::sync::Arc;
use std::time::Duration;

use pledgesync_broker::{run_consumer_with, Broker, ConsumerOptions, Topology, WorkQueue};
use pledgesync_core::crypto::Keyring;
use pledgesync_core::messages::SyncJob;
use pledgesync_core::probes::{self, Check, ReadinessCheck};
use pledgesync_core::shutdown::Shutdown;
use pledgesync_store::Store;
use pledgesync_zoho::redis_pool::{self, RedisPool};
use pledgesync_zoho::{Accounts, CrmClient, TokenStore};

use crate::job::Fetcher;
use crate::live::Live;
use crate::settings::Settings;

/// Why the fetcher could not start or stopped early. Each message names what to check.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("PostgreSQL: {0}")]
    Store(#[from] pledgesync_store::StoreError),
    #[error("RabbitMQ: {0}")]
    Broker(Box<pledgesync_broker::BrokerError>),
    #[error("the Redis pool cannot be built from redis.url; check the URL")]
    Redis,
    #[error("the Zoho client cannot be built: {0}")]
    Zoho(String),
    #[error("the encryption keys cannot be used: {0}; check security.encryption_key and security.retired_keys")]
    Keys(String),
    #[error("the probe server cannot listen on http.listen: {0}")]
    Probes(std::io::Error),
    #[error("the job consumer stopped: {0}")]
    Consumer(Box<pledgesync_broker::ConsumeError>),
}

fn redis_pool(settings: &Settings) -> Result<RedisPool, AppError> {
    redis_pool::connect(&settings.redis.url, settings.redis.pool_size).map_err(|_| AppError::Redis)
}

fn readiness(store: Store, broker: Broker, redis: RedisPool) -> ReadinessCheck {
    Arc::new(move || {
        let (store, broker, redis) = (store.clone(), broker.clone(), redis.clone());
        Box::pin(async move {
            let postgres = async {
                Check {
                    name: "postgres",
                    error: store.ready().await.err().map(|e| e.to_string()),
                }
            };
            let redis = async {
                Check {
                    name: "redis",
                    error: redis_pool::ready(&redis).await.err(),
                }
            };
            let (postgres, rabbitmq, redis) = tokio::join!(postgres, broker.readiness(), redis);
            vec![postgres, rabbitmq, redis]
        })
    })
}

/// Runs the fetcher until `shutdown`; returns once in-flight jobs are settled.
pub async fn run(settings: Settings, shutdown: Shutdown) -> Result<(), AppError> {
    let store = Store::connect(&settings.postgres).await?;
    store.migrate().await?;
    let topology = Topology::from_settings(&settings.rabbitmq);
    let broker = Broker::connect(&settings.rabbitmq, topology)
        .await
        .map_err(|e| AppError::Broker(Box::new(e)))?;
    let redis = redis_pool(&settings)?;
    let accounts = Accounts::new(&settings.zoho, settings.zoho_client.clone())
        .map_err(|e| AppError::Zoho(e.to_string()))?;
    let crm = CrmClient::new(TokenStore::new(redis.clone(), accounts));
    let keyring =
        Keyring::from_settings(&settings.security).map_err(|e| AppError::Keys(e.to_string()))?;

    let listener = tokio::net::TcpListener::bind(settings.http.listen)
        .await
        .map_err(AppError::Probes)?;
    let probe_shutdown = shutdown.clone();
    let check = readiness(store.clone(), broker.clone(), redis.clone());
    let probes = tokio::spawn(async move {
        let address = listener.local_addr().ok();
        tracing::info!(address = ?address, "probe server listening");
        let served = axum_serve(listener, check, probe_shutdown).await;
        if let Err(error) = served {
            tracing::error!(%error, "probe server stopped");
        }
    });

    let live = Live {
        store: store.clone(),
        broker: broker.clone(),
        crm,
        keyring,
    };
    let fetcher = Fetcher::new(Arc::new(live), settings.work_config(), shutdown.clone());
    let mut options = ConsumerOptions::new(WorkQueue::Jobs, settings.rabbitmq.prefetch);
    options.grace_period = Duration::from_secs(settings.fetch.shutdown_grace_secs);
    tracing::info!(
        prefetch = settings.rabbitmq.prefetch,
        "fetcher consuming SyncJobs"
    );
    let consumed =
        run_consumer_with::<SyncJob, _>(broker.clone(), options, fetcher, shutdown.clone()).await;

    // The consumer only returns early for a failure retrying cannot fix: stop the rest too.
    shutdown.trigger();
    let _ = probes.await;
    broker.close().await;
    store.close().await;
    tracing::info!("fetcher stopped");
    consumed.map_err(|e| AppError::Consumer(Box::new(e)))
}

async fn axum_serve(
    listener: tokio::net::TcpListener,
    check: ReadinessCheck,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    axum::serve(listener, probes::router(check))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
