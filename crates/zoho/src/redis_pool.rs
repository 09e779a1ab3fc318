//! The Redis connection pool that the token store and the rate limits share.
//!
//! deadpool-redis checks a pooled connection with `UNWATCH` + `PING` every time it hands it out:
//! a round trip (and a wake-up of Redis) per checkout, two per CRM page in a fetcher, where the
//! page's own work is two commands. Here a connection is checked only when it sat unused for
//! [`PING_AFTER_IDLE`], and one whose command failed at the connection level is never handed out
//! again. A connection that broke while it sat unchecked fails its next command once, with an
//! error its caller already treats as "Redis unavailable, try again"; the pool then replaces it.
//!
//! Nothing in pledgesync sends `WATCH` (a multiplexed connection cannot hold one safely), so no
//! connection comes back with state that `UNWATCH` would have to clear.

use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};
use secrecy::{ExposeSecret, SecretString};

/// A connection handed out less than this after its last checkout is not pinged.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(5);

/// What a pool of [`RedisConnection`]s waits at most for a free connection, a new connection
/// and a check: Redis only holds what may be lost, so a dead one must cost a call seconds, not
/// forever.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The pool every Redis user in pledgesync holds. Cheap to clone.
pub type RedisPool = managed::Pool<Manager, RedisConnection>;

/// Why a connection could not be had from a [`RedisPool`].
pub type RedisPoolError = managed::PoolError<RedisError>;

/// A `redis.url` that cannot make a pool. Says which setting, never the URL (it may hold a
/// password).
#[derive(Debug, thiserror::Error)]
#[error("redis.url could not be used to build a connection pool: {kind}")]
pub struct RedisPoolBuildError {
    /// What was wrong, without the URL.
    kind: &'static str,
}

/// Builds a pool of at most `size` connections to `url` (connections are opened on first use).
pub fn connect(url: &SecretString, size: usize) -> Result<RedisPool, RedisPoolBuildError> {
    let inner =
        deadpool_redis::Manager::new(url.expose_secret()).map_err(|_| RedisPoolBuildError {
            kind: "not a Redis URL",
        })?;
    managed::Pool::builder(Manager { inner })
        .max_size(size)
        .wait_timeout(Some(TIMEOUT))
        .create_timeout(Some(TIMEOUT))
        .recycle_timeout(Some(TIMEOUT))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|_| RedisPoolBuildError {
            kind: "the pool settings were refused",
        })
}

/// The readiness check: can a connection be had, and does Redis answer `PING` within 3 s? The
/// error says which of the two failed.
pub async fn ready(pool: &RedisPool) -> Result<(), String> {
    let ping = async {
        let mut conn = pool
            .get()
            .await
            .map_err(|e| format!("Redis is unreachable: {e}"))?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| format!("Redis did not answer PING: {e}"))
    };
    tokio::time::timeout(Duration::from_secs(3), ping)
        .await
        .unwrap_or_else(|_| Err("Redis did not answer within 3s".to_owned()))
}

/// Opens connections with deadpool-redis's manager and decides when a returning one needs its
/// check.
pub struct Manager {
    /// deadpool-redis's own manager: how connections are opened and checked.
    inner: deadpool_redis::Manager,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The inner manager's Debug prints the connection info, which may hold a password.
        f.write_str("Manager")
    }
}

/// A pooled multiplexed connection that remembers whether it failed at the connection level.
pub struct Tracked {
    /// The connection.
    connection: MultiplexedConnection,
    /// Set when a command failed in a way that needs a new connection (I/O, dropped).
    broken: bool,
}

impl Tracked {
    /// Notes a failure that the connection cannot recover from, so the pool drops it.
    fn note<T>(&mut self, result: &Result<T, RedisError>) {
        if let Err(error) = result {
            if error.is_unrecoverable_error() || error.is_io_error() {
                self.broken = true;
            }
        }
    }
}

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracked")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl managed::Manager for Manager {
    type Type = Tracked;
    type Error = RedisError;

    async fn create(&self) -> Result<Tracked, RedisError> {
        Ok(Tracked {
            connection: managed::Manager::create(&self.inner).await?,
            broken: false,
        })
    }

    async fn recycle(&self, tracked: &mut Tracked, metrics: &Metrics) -> RecycleResult<RedisError> {
        if tracked.broken {
            return Err(RecycleError::message("a command failed on this connection"));
        }
        if needs_check(metrics.last_used()) {
            managed::Manager::recycle(&self.inner, &mut tracked.connection, metrics).await?;
        }
        Ok(())
    }
}

/// Whether a connection last handed out `since` ago is checked before it goes out again.
fn needs_check(since: Duration) -> bool {
    since >= PING_AFTER_IDLE
}

/// A connection from a [`RedisPool`]; use it wherever `redis` wants a connection.
pub struct RedisConnection {
    /// The pooled connection; goes back to the pool on drop.
    object: Object<Manager>,
}

impl From<Object<Manager>> for RedisConnection {
    fn from(object: Object<Manager>) -> Self {
        Self { object }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let tracked = &mut *self.object;
        Box::pin(async move {
            let result = tracked.connection.req_packed_command(cmd).await;
            tracked.note(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let tracked = &mut *self.object;
        Box::pin(async move {
            let result = tracked
                .connection
                .req_packed_commands(pipeline, offset, count)
                .await;
            tracked.note(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.object.connection.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_in_steady_use_is_not_pinged_and_an_idle_one_is() {
        assert!(!needs_check(Duration::from_millis(3)));
        assert!(!needs_check(PING_AFTER_IDLE - Duration::from_millis(1)));
        assert!(needs_check(PING_AFTER_IDLE));
        assert!(needs_check(Duration::from_secs(600)));
    }

    #[test]
    fn a_bad_url_is_refused_without_being_echoed() {
        let url = SecretString::from("http://user:hunter2@example.com".to_owned());
        let error = connect(&url, 4).expect_err("not a redis url");
        let text = error.to_string();
        assert!(text.contains("redis.url"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
