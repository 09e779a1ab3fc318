//! Throwaway databases for tests of any crate that talks to PostgreSQL through the store
//! (feature `testing`; enable it in `[dev-dependencies]` only).
//!
//! Each [`TestDatabase`] is a fresh database named `test_<uuid>` on the server named by
//! `PLEDGESYNC__POSTGRES__URL` (default: the local development server), migrated, and dropped
//! (with `FORCE`) when the value is dropped — also when the test panics — so tests run in
//! parallel without seeing each other's rows.

use pledgesync_core::settings::PostgresSettings;
use secrecy::{ExposeSecret, SecretString};

use crate::db::Store;
use crate::error::StoreError;

/// The variable tests read the server's URL from.
pub const POSTGRES_URL_ENV: &str = "PLEDGESYNC__POSTGRES__URL";
/// The local development server (`deploy/local/services.sh up`).
pub const DEFAULT_POSTGRES_URL: &str = "postgres://pledgesync:pledgesync@127.0.0.1:5432/pledgesync";

/// The statement that removes members left without a live source (`$1` audiences, `$2` emails,
/// `$3` reasons), for tests that hold its plan to reaching sources by index.
pub const ORPHAN_CHECK_SQL: &str = crate::apply::ORPHANS_SQL;

/// A database of its own for one test.
pub struct TestDatabase {
    name: String,
    settings: PostgresSettings,
    store: Store,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("name", &self.name)
            .finish()
    }
}

fn server_url() -> String {
    std::env::var(POSTGRES_URL_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

fn settings(url: String, max_connections: u32) -> PostgresSettings {
    PostgresSettings {
        url: SecretString::from(url),
        max_connections,
        connect_timeout_secs: 10,
    }
}

impl TestDatabase {
    /// A new database with the schema applied.
    pub async fn create() -> Result<TestDatabase, StoreError> {
        let db = TestDatabase::create_empty().await?;
        db.store.migrate().await?;
        Ok(db)
    }

    /// A new database without the schema (to test migrations themselves).
    pub async fn create_empty() -> Result<TestDatabase, StoreError> {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let server = server_url();
        let admin = Store::connect(&settings(server.clone(), 1)).await?;
        let created = sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(admin.pool())
            .await;
        admin.close().await;
        created?;
        let mut url = url::Url::parse(&server).map_err(|_| {
            StoreError::Config(format!("{POSTGRES_URL_ENV} is not a valid postgres:// URL"))
        })?;
        url.set_path(&name);
        let settings = settings(url.into(), 10);
        let store = Store::connect(&settings).await?;
        Ok(TestDatabase {
            name,
            settings,
            store,
        })
    }

    /// The store on this database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Settings that reach this database, for code under test that connects by itself.
    pub fn settings(&self) -> &PostgresSettings {
        &self.settings
    }

    /// The database's URL (it carries the development password; tests only).
    pub fn url(&self) -> String {
        self.settings.url.expose_secret().to_owned()
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Another store with its own pool, as a second replica would have.
    pub async fn connect_another(&self) -> Result<Store, StoreError> {
        Store::connect(&self.settings).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        // Drop cannot await, and may run inside or outside a runtime: a helper thread with its own
        // runtime drops the database, and is joined so the database is gone when the test ends.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(admin) = Store::connect(&settings(server_url(), 1)).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    if let Err(error) = sqlx::query(&sql).execute(admin.pool()).await {
                        tracing::warn!(%error, database = %name, "could not drop the test database");
                    }
                    admin.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}
