//! The connection pool, embedded migrations and the readiness check.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use pledgesync_core::settings::PostgresSettings;
use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::error::StoreError;
use crate::novelty::Novelty;

/// The schema, embedded in the binary: every replica carries the migrations it needs.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// A statement running longer than this is cancelled (and reported retryable): nothing the
/// system does should take that long, and a stuck query must not hold a connection forever.
const STATEMENT_TIMEOUT: &str = "60s";
/// Waiting longer than this for a row lock fails with a retryable error instead of queueing up
/// behind a stuck transaction.
const LOCK_TIMEOUT: &str = "15s";
/// A transaction left open by a crashed task is ended by the server after this.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "300s";
/// No JIT compilation: the system's statements are short, keyed and run thousands of times, and
/// PostgreSQL decides to compile from the planner's cost estimate, which is wildest exactly when
/// a table has no statistics yet (just after a first sync). There, compiling one orphan check
/// with inlining and optimisation took 150 ms of a statement that runs in a few.
const JIT: &str = "off";
/// Connections are recycled so that a PostgreSQL fail-over or config change is picked up.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// A connection that sat in the pool at least this long is pinged before it is handed out; one
/// back sooner has just answered its last statement. Pinging every checkout cost a round trip
/// (and a wake-up of its server process) per transaction: about 8 % of a sink's CPU in a full
/// sync. A connection that broke in the last seconds fails its next statement instead, with a
/// retryable error ([`StoreError::is_retryable`]), and the pool replaces it.
const PING_AFTER_IDLE: Duration = Duration::from_secs(5);

/// The handle every binary holds: a PostgreSQL pool plus the queries of the system, grouped by
/// module (`audiences`, `integrations`, `runs`, `enqueue`, `outbox`, `apply`, `members`,
/// `cursors`). Cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// The connections.
    pub(crate) pool: PgPool,
    /// Whether recent records of each integration turned out new: how a sink's next
    /// transaction finds its sources (see `novelty`). Shared by the clones, so by the commit
    /// workers of one sink.
    pub(crate) novelty: Arc<Novelty>,
}

impl fmt::Debug for Store {
    // The pool's options hold the password: show only its shape.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("connections", &self.pool.size())
            .field("idle", &self.pool.num_idle())
            .finish()
    }
}

impl Store {
    /// Opens the pool and one connection, so that a wrong URL or password fails at start.
    /// Unreachable PostgreSQL is [`StoreError::Unavailable`] (retryable), a bad password is
    /// permanent.
    pub async fn connect(settings: &PostgresSettings) -> Result<Store, StoreError> {
        // The URL carries the password: never put the parse error's input in the message.
        let options = PgConnectOptions::from_str(settings.url.expose_secret()).map_err(|_| {
            StoreError::Config("postgres.url is not a valid postgres:// URL".into())
        })?;
        let pool = pool_options(settings)
            .connect_with(session_options(options))
            .await?;
        tracing::debug!(
            max_connections = settings.max_connections,
            "connected to PostgreSQL"
        );
        Ok(Store::from_pool(pool))
    }

    /// Like [`Store::connect`], without opening a connection until the first query: for binaries
    /// that must start (and answer `/healthz`) while PostgreSQL is still coming up.
    pub fn connect_lazy(settings: &PostgresSettings) -> Result<Store, StoreError> {
        let options = PgConnectOptions::from_str(settings.url.expose_secret()).map_err(|_| {
            StoreError::Config("postgres.url is not a valid postgres:// URL".into())
        })?;
        Ok(Store::from_pool(
            pool_options(settings).connect_lazy_with(session_options(options)),
        ))
    }

    /// Wraps an existing pool (tests, tools). Its connections do not get the store's session
    /// timeouts unless the pool was built with them.
    pub fn from_pool(pool: PgPool) -> Store {
        Store {
            pool,
            novelty: Arc::default(),
        }
    }

    /// The underlying pool, for callers that need a raw query (tools, tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the embedded migrations that are not applied yet. Safe when several replicas
    /// start at once: the migrator holds a PostgreSQL advisory lock while it checks and applies,
    /// so the others wait and then find nothing to do. Runs on a dedicated connection without
    /// the statement and lock timeouts, since waiting for another replica's migration is normal.
    #[tracing::instrument(name = "store.migrate", skip(self), err)]
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let options = (*self.pool.connect_options()).clone();
        let mut conn = options.connect().await?;
        let outcome = async {
            sqlx::query("SET statement_timeout = 0")
                .execute(&mut conn)
                .await?;
            sqlx::query("SET lock_timeout = 0")
                .execute(&mut conn)
                .await?;
            MIGRATOR.run(&mut conn).await?;
            Ok::<_, StoreError>(())
        }
        .await;
        // Closing also releases the advisory lock if a migration failed half-way.
        close_quietly(conn).await;
        outcome?;
        tracing::info!(
            migrations = MIGRATOR.iter().count(),
            "database schema is up to date"
        );
        Ok(())
    }

    /// The readiness check: can a connection be had and does the server answer?
    pub async fn ready(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for checked-out connections to come back (graceful shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn pool_options(settings: &PostgresSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.connect_timeout())
        .idle_timeout(IDLE_TIMEOUT)
        .max_lifetime(MAX_LIFETIME)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

fn session_options(options: PgConnectOptions) -> PgConnectOptions {
    options.application_name("pledgesync").options([
        ("statement_timeout", STATEMENT_TIMEOUT),
        ("jit", JIT),
        ("lock_timeout", LOCK_TIMEOUT),
        (
            "idle_in_transaction_session_timeout",
            IDLE_IN_TRANSACTION_TIMEOUT,
        ),
    ])
}

async fn close_quietly(conn: PgConnection) {
    if let Err(error) = conn.close().await {
        tracing::debug!(%error, "closing the migration connection failed; the server will drop it");
    }
}
