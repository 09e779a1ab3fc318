//! The binary's one-shot subcommands: apply migrations, list or redrive dead letters, and
//! re-encrypt stored secrets under the current key.

use std::time::Duration;

use pledgesync_broker::{Broker, BrokerError, DeadLetter, PublishError, Topology, WorkQueue};
use pledgesync_core::crypto::{CryptoError, Keyring};
use pledgesync_core::RunId;
use pledgesync_store::{Store, StoreError};

use crate::rekey::{self, RekeyReport};
use crate::settings::Settings;

/// Connects to PostgreSQL and applies the embedded migrations (safe beside running replicas).
pub async fn migrate(settings: &Settings) -> Result<(), StoreError> {
    let store = Store::connect(&settings.postgres).await?;
    let outcome = store.migrate().await;
    store.close().await;
    outcome
}

async fn broker(settings: &Settings) -> Result<Broker, BrokerError> {
    let options = pledgesync_broker::ConnectOptions {
        connection_name: format!("pledgesync-scheduler-cli:{}", std::process::id()),
        give_up_after: Duration::from_secs(10),
        ..Default::default()
    };
    Broker::connect_with(
        &settings.rabbitmq,
        Topology::from_settings(&settings.rabbitmq),
        options,
    )
    .await
}

/// Up to `limit` dead letters of each queue in `queues`, left in place.
pub async fn list_dead_letters(
    settings: &Settings,
    queues: &[WorkQueue],
    limit: usize,
) -> Result<Vec<(WorkQueue, Vec<DeadLetter>)>, BrokerError> {
    let broker = broker(settings).await?;
    let mut listed = Vec::new();
    for queue in queues {
        let letters = broker.dead_letters(*queue, limit).await;
        match letters {
            Ok(letters) => listed.push((*queue, letters)),
            Err(error) => {
                broker.close().await;
                return Err(error);
            }
        }
    }
    broker.close().await;
    Ok(listed)
}

/// Moves dead letters of `queues` (all, or those of `run`) back to work; how many per queue.
pub async fn redrive_dead_letters(
    settings: &Settings,
    queues: &[WorkQueue],
    run: Option<RunId>,
) -> Result<Vec<(WorkQueue, usize)>, PublishError> {
    let broker = broker(settings).await?;
    let mut moved = Vec::new();
    for queue in queues {
        match broker.redrive(*queue, run).await {
            Ok(n) => moved.push((*queue, n)),
            Err(error) => {
                broker.close().await;
                return Err(error);
            }
        }
    }
    broker.close().await;
    Ok(moved)
}

/// Why a re-encryption pass could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReencryptError {
    /// The configured keys are unusable.
    #[error(transparent)]
    Keys(#[from] CryptoError),
    /// PostgreSQL failed; the pass can be run again (rows already re-encrypted stay so).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Re-encrypts every integration's secrets that are not under the current key (`dry_run`: only
/// counts them), with the keys of `security`.
pub async fn reencrypt_secrets(
    settings: &Settings,
    dry_run: bool,
) -> Result<RekeyReport, ReencryptError> {
    let keyring = Keyring::from_settings(&settings.security)?;
    let store = Store::connect(&settings.postgres).await?;
    let report = rekey::reseal_all(&store, &keyring, dry_run).await;
    store.close().await;
    Ok(report?)
}
