//! The real services a test talks to, isolated per test: where they are (environment variables
//! with the local defaults), a throwaway database, a flaky proxy in front of RabbitMQ, and waiting
//! for a condition with a deadline instead of sleeping.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use tokio::net::TcpListener;
use uuid::Uuid;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

pub fn postgres_url() -> String {
    env_or(
        "PLEDGESYNC__POSTGRES__URL",
        "postgres://pledgesync:pledgesync@127.0.0.1:5432/pledgesync",
    )
}

pub fn rabbitmq_url() -> String {
    env_or(
        "PLEDGESYNC__RABBITMQ__URL",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
    )
}

pub fn redis_url() -> String {
    env_or("PLEDGESYNC__REDIS__URL", "redis://127.0.0.1:6379")
}

/// Polls `condition` every 50 ms until it yields `Some`, panicking after `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A throwaway database, created through the `pledgesync` database (the role has CREATEDB).
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let admin = postgres_url();
        let name = format!("test_{}", Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL is up (deploy/local/services.sh up)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create database");
        conn.close().await.ok();
        let mut url = url::Url::parse(&admin).expect("postgres url");
        url.set_path(&name);
        Self {
            name,
            url: url.to_string(),
        }
    }

    pub async fn drop_db(&self) {
        if let Ok(mut conn) = PgConnection::connect(&postgres_url()).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await;
            conn.close().await.ok();
        }
    }
}

/// A TCP proxy in front of RabbitMQ that can play dead: while down it accepts and drops every
/// connection (and cuts the ones it carries), as a stopped RabbitMQ would look; while up it
/// forwards bytes both ways. The shared RabbitMQ server itself is never touched.
pub struct FlakyProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl FlakyProxy {
    pub async fn start(up: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let target = {
            let url = url::Url::parse(&rabbitmq_url()).expect("rabbitmq url");
            format!(
                "{}:{}",
                url.host_str().unwrap_or("127.0.0.1"),
                url.port().unwrap_or(5672)
            )
        };
        let flag = Arc::new(AtomicBool::new(up));
        let (cut_tx, cut_rx) = tokio::sync::watch::channel(0u64);
        let accept_flag = flag.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accept_flag.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let mut cut = cut_rx.clone();
                // Only cuts after this connection was accepted concern it.
                cut.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            up: flag,
            cut: cut_tx,
        }
    }

    pub fn url(&self) -> String {
        let mut url = url::Url::parse(&rabbitmq_url()).expect("rabbitmq url");
        url.set_port(Some(self.port)).expect("port");
        url.to_string()
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            self.cut.send_modify(|g| *g += 1);
        }
    }
}
