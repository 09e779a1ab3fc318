//! The real services a benchmark uses, and the throwaway pieces it makes in them: a database per
//! system, a RabbitMQ topology prefix and a Redis key prefix, all removed afterwards.
//!
//! Every throwaway piece is registered before it is made, so that [`cleanup_leftovers`] can remove
//! what a failed or interrupted figure left behind.

use std::sync::{Mutex, OnceLock, PoisonError};

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use pledgesync_broker::topology::Topology;
use redis::AsyncCommands as _;
use sqlx::{Connection as _, Executor as _, PgConnection};

use crate::error::{BenchError, Result};

/// Connection URLs of the local services, from the variables the binaries read. Their Debug
/// output leaves the URLs (and the passwords in them) out.
#[derive(Clone)]
pub struct Services {
    /// The `pledgesync` database; throwaway databases are created next to it.
    pub postgres_url: String,
    /// RabbitMQ.
    pub rabbitmq_url: String,
    /// Redis.
    pub redis_url: String,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}

impl Services {
    /// `PLEDGESYNC__POSTGRES__URL`, `…__RABBITMQ__URL`, `…__REDIS__URL`, with the loopback
    /// defaults of `deploy/local/services.sh`.
    pub fn from_env() -> Self {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        Self {
            postgres_url: var(
                "PLEDGESYNC__POSTGRES__URL",
                "postgres://pledgesync:pledgesync@127.0.0.1:5432/pledgesync",
            ),
            rabbitmq_url: var(
                "PLEDGESYNC__RABBITMQ__URL",
                "amqp://guest:guest@127.0.0.1:5672/%2f",
            ),
            redis_url: var("PLEDGESYNC__REDIS__URL", "redis://127.0.0.1:6379/0"),
        }
    }

    /// The same PostgreSQL server with another database name.
    pub fn postgres_url_for(&self, database: &str) -> String {
        let (without_query, query) = match self.postgres_url.split_once('?') {
            Some((url, query)) => (url, Some(query)),
            None => (self.postgres_url.as_str(), None),
        };
        let server = match without_query.rsplit_once('/') {
            // `postgres://host:port` has no path: the last '/' is the scheme's.
            Some((server, _)) if !server.ends_with('/') => server,
            _ => without_query,
        };
        match query {
            Some(query) => format!("{server}/{database}?{query}"),
            None => format!("{server}/{database}"),
        }
    }
}

/// The throwaway pieces of one benchmark system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scratch {
    /// `bench_<uuid>`: the system's own database.
    pub database: String,
    /// The RabbitMQ topology prefix and the Redis key prefix.
    pub prefix: String,
}

fn leftovers() -> &'static Mutex<Vec<Scratch>> {
    static LEFTOVERS: OnceLock<Mutex<Vec<Scratch>>> = OnceLock::new();
    LEFTOVERS.get_or_init(Default::default)
}

impl Scratch {
    /// New unique names; nothing is created yet.
    pub fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            database: format!("bench_{id}"),
            prefix: format!("bench-{}", &id[..12]),
        }
    }

    /// Registers the pieces and creates the database.
    pub async fn create(&self, services: &Services) -> Result<String> {
        leftovers()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.clone());
        let mut admin = admin_connection(services).await?;
        admin
            .execute(format!("CREATE DATABASE \"{}\"", self.database).as_str())
            .await?;
        let _ = admin.close().await;
        Ok(services.postgres_url_for(&self.database))
    }

    /// Drops the database, deletes the queues and exchanges and the Redis keys, and unregisters.
    /// Call it once no process uses them any more.
    pub async fn remove(&self, services: &Services) -> Result<()> {
        let database = drop_database(services, &self.database).await;
        let broker = delete_topology(services, &self.prefix).await;
        let redis = delete_keys(services, &self.prefix).await;
        let outcome = database.and(broker).and(redis);
        // Kept registered on failure, so the final clean-up tries again.
        if outcome.is_ok() {
            leftovers()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|s| s != self);
        }
        outcome
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// Removes whatever figures that failed or were interrupted left registered; returns how many
/// could still not be removed.
pub async fn cleanup_leftovers(services: &Services) -> usize {
    let left: Vec<Scratch> = leftovers()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for scratch in left {
        if let Err(error) = scratch.remove(services).await {
            tracing::warn!(database = %scratch.database, prefix = %scratch.prefix, %error, "clean-up failed");
        }
    }
    leftovers()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len()
}

async fn drop_database(services: &Services, database: &str) -> Result<()> {
    let mut admin = admin_connection(services).await?;
    // A plain DROP ends the autovacuum workers a bulk load starts, and fails only while a client
    // is still connected (a process that has not quite exited): try it for a while. FORCE would
    // also end other clients, but refuses outright when one of the sessions is an autovacuum
    // worker (owned by the superuser), so it is only the last resort.
    let plain = format!("DROP DATABASE IF EXISTS \"{database}\"");
    let deadline = std::time::Instant::now() + DROP_PATIENCE;
    let outcome = loop {
        match admin.execute(plain.as_str()).await {
            Ok(_) => break Ok(()),
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(_) => {
                let forced = format!("{plain} WITH (FORCE)");
                break admin
                    .execute(forced.as_str())
                    .await
                    .map(|_| ())
                    .map_err(BenchError::from);
            }
        }
    };
    let _ = admin.close().await;
    outcome
}

/// How long dropping a database is retried while clients finish disconnecting.
const DROP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(15);

async fn admin_connection(services: &Services) -> Result<PgConnection> {
    PgConnection::connect(&services.postgres_url)
        .await
        .map_err(|e| BenchError::Unavailable {
            service: "PostgreSQL",
            detail: e.to_string(),
        })
}

async fn delete_topology(services: &Services, prefix: &str) -> Result<()> {
    let connection =
        Connection::connect(&services.rabbitmq_url, ConnectionProperties::default()).await?;
    let topology = Topology::new(prefix, 1);
    // A failed delete closes the channel, so each one gets its own.
    for queue in topology.queue_names() {
        let channel = connection.create_channel().await?;
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
        let _ = channel.close(200, "OK".into()).await;
    }
    for exchange in [topology.exchange(), topology.dead_exchange()] {
        let channel = connection.create_channel().await?;
        let _ = channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await;
        let _ = channel.close(200, "OK".into()).await;
    }
    let _ = connection.close(200, "OK".into()).await;
    Ok(())
}

async fn delete_keys(services: &Services, prefix: &str) -> Result<()> {
    let client = redis::Client::open(services.redis_url.as_str())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| BenchError::Unavailable {
            service: "Redis",
            detail: e.to_string(),
        })?;
    let pattern = format!("{prefix}*");
    let mut keys: Vec<String> = Vec::new();
    {
        let mut iter: redis::AsyncIter<String> = conn.scan_match(&pattern).await?;
        while let Some(key) = futures::StreamExt::next(&mut iter).await {
            keys.push(key?);
        }
    }
    for chunk in keys.chunks(500) {
        let _: () = conn.del(chunk).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services(url: &str) -> Services {
        Services {
            postgres_url: url.to_owned(),
            rabbitmq_url: String::new(),
            redis_url: String::new(),
        }
    }

    #[test]
    fn another_database_on_the_same_server() {
        let s = services("postgres://u:p@127.0.0.1:5432/pledgesync");
        assert_eq!(
            s.postgres_url_for("bench_x"),
            "postgres://u:p@127.0.0.1:5432/bench_x"
        );
        let s = services("postgres://u:p@127.0.0.1:5432/pledgesync?sslmode=disable");
        assert_eq!(
            s.postgres_url_for("bench_x"),
            "postgres://u:p@127.0.0.1:5432/bench_x?sslmode=disable"
        );
        let s = services("postgres://u:p@127.0.0.1:5432");
        assert_eq!(
            s.postgres_url_for("bench_x"),
            "postgres://u:p@127.0.0.1:5432/bench_x"
        );
    }

    #[test]
    fn debug_output_leaves_the_passwords_out() {
        let shown = format!(
            "{:?}",
            services("postgres://u:hunter2@127.0.0.1:5432/pledgesync")
        );
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn scratch_names_are_unique_and_valid_prefixes() {
        let a = Scratch::new();
        let b = Scratch::new();
        assert_ne!(a, b);
        assert!(a.database.starts_with("bench_") && a.database.len() == 38);
        assert!(
            a.prefix.len() <= 64
                && a.prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
        );
    }
}
