//! One throwaway pledgesync: its own database, RabbitMQ topology and Redis prefix, a Zoho emulator
//! in this process, and the real binaries (one scheduler, N fetchers, M sinks) as processes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use pledgesync_tests::{binary, free_port, wait_until, Running, Services};
use serde_json::Value;
use sqlx::{Connection as _, Executor as _, PgConnection, PgPool};
use zoho_emulator::{EmulatorConfig, RunningEmulator};

/// The bearer token the scheduler accepts in these tests.
pub const API_TOKEN: &str = "e2e-token-0123456789abcdef";
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The scope the product's setup guide asks creators for.
pub const SCOPE: &str = "ZohoCRM.modules.ALL,ZohoCRM.org.READ";

/// How to build a system.
pub struct Options {
    /// The emulator's default org and knobs.
    pub emulator: EmulatorConfig,
    /// Fetcher processes.
    pub fetchers: usize,
    /// Sink processes.
    pub sinks: usize,
    /// Extra `PLEDGESYNC__…` variables for the fetchers (e.g. slices).
    pub fetcher_env: Vec<(&'static str, String)>,
}

impl Options {
    pub fn new(contacts: usize, leads: usize) -> Self {
        Self {
            emulator: EmulatorConfig {
                contacts,
                leads,
                ..EmulatorConfig::default()
            },
            fetchers: 2,
            sinks: 2,
            fetcher_env: Vec::new(),
        }
    }
}

/// A worker process and the port of its probes.
pub struct Worker {
    pub process: Running,
    /// `/metrics`, `/readyz`.
    pub port: u16,
}

/// A running system; everything is stopped and dropped with it.
pub struct System {
    pub emulator: RunningEmulator,
    /// The test's own database.
    pub db: PgPool,
    /// The scheduler's base URL.
    pub api: String,
    pub http: reqwest::Client,
    pub scheduler: Running,
    pub fetchers: Vec<Worker>,
    pub sinks: Vec<Worker>,
    /// Environment shared by every binary.
    env: Vec<(String, String)>,
    fetcher_env: Vec<(String, String)>,
    /// Where the processes' logs go.
    pub logs: PathBuf,
    pub prefix: String,
    database: String,
    services: Services,
    /// Self Clients made by [`System::connect`]: client id → secret.
    pub(crate) clients: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

async fn create_database(services: &Services, name: &str) -> anyhow::Result<String> {
    let mut admin = PgConnection::connect(&services.postgres_url)
        .await
        .context("PostgreSQL is not reachable; run deploy/local/services.sh up")?;
    admin
        .execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await?;
    Ok(services.postgres_url_for(name))
}

impl System {
    /// Starts the emulator and the binaries and waits until each answers.
    pub async fn start(options: Options) -> anyhow::Result<System> {
        let services = Services::from_env();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("e2e-{}", &id[..12]);
        let database = format!("test_{id}");
        let db_url = create_database(&services, &database).await?;
        let db = PgPool::connect(&db_url).await?;
        let logs = std::env::temp_dir().join(format!("pledgesync-{prefix}"));
        std::fs::create_dir_all(&logs)?;
        let emulator = zoho_emulator::spawn(options.emulator).await?;
        let accounts = format!("{}/dc/{{dc}}", emulator.base_url());
        let env: Vec<(String, String)> = [
            ("PLEDGESYNC__POSTGRES__URL", db_url.clone()),
            ("PLEDGESYNC__RABBITMQ__URL", services.rabbitmq_url.clone()),
            ("PLEDGESYNC__RABBITMQ__TOPOLOGY_PREFIX", prefix.clone()),
            ("PLEDGESYNC__REDIS__URL", services.redis_url.clone()),
            ("PLEDGESYNC__REDIS__KEY_PREFIX", prefix.clone()),
            (
                "PLEDGESYNC__TELEMETRY__LOG_LEVEL",
                "info,lapin=warn,sqlx=warn".to_owned(),
            ),
            ("PLEDGESYNC__TELEMETRY__LOG_FORMAT", "json".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let api_port = free_port()?;
        let mut system = System {
            api: format!("http://127.0.0.1:{api_port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()?,
            scheduler: Self::spawn_scheduler(&env, &accounts, &prefix, api_port, &logs)?,
            emulator,
            db,
            fetchers: Vec::new(),
            sinks: Vec::new(),
            env,
            fetcher_env: options
                .fetcher_env
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .chain([
                    (
                        "PLEDGESYNC__ZOHO__ACCOUNTS_URL".to_owned(),
                        accounts.clone(),
                    ),
                    (
                        "PLEDGESYNC__SECURITY__ENCRYPTION_KEY".to_owned(),
                        KEY.to_owned(),
                    ),
                    (
                        "PLEDGESYNC__ZOHO_CLIENT__REDIS_KEY_PREFIX".to_owned(),
                        format!("{prefix}:zoho"),
                    ),
                ])
                .collect(),
            logs,
            prefix,
            database,
            services,
            clients: Default::default(),
        };
        let api = system.api.clone();
        let http = system.http.clone();
        wait_until(
            "the scheduler to answer /healthz",
            Duration::from_secs(30),
            || {
                let (api, http) = (api.clone(), http.clone());
                async move {
                    http.get(format!("{api}/healthz"))
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                }
            },
        )
        .await
        .with_context(|| system.tail("scheduler"))?;
        for _ in 0..options.sinks {
            system.start_sink().await?;
        }
        for _ in 0..options.fetchers {
            system.start_fetcher().await?;
        }
        Ok(system)
    }

    fn spawn_scheduler(
        env: &[(String, String)],
        accounts: &str,
        prefix: &str,
        port: u16,
        logs: &std::path::Path,
    ) -> anyhow::Result<Running> {
        let mut all: Vec<(String, String)> = env.to_vec();
        all.extend(
            [
                ("PLEDGESYNC__API__LISTEN", format!("127.0.0.1:{port}")),
                ("PLEDGESYNC__API__TOKENS", API_TOKEN.to_owned()),
                ("PLEDGESYNC__SECURITY__ENCRYPTION_KEY", KEY.to_owned()),
                ("PLEDGESYNC__ZOHO__ACCOUNTS_URL", accounts.to_owned()),
                (
                    "PLEDGESYNC__ZOHO_CLIENT__REDIS_KEY_PREFIX",
                    format!("{prefix}:zoho"),
                ),
                // Only Sync Now starts runs here: the periodic loop must not add its own.
                ("PLEDGESYNC__SCHEDULE__TICK_SECS", "3600".to_owned()),
                ("PLEDGESYNC__SCHEDULE__RELAY_POLL_MILLIS", "100".to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
        );
        let pairs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        binary("pledgesync-scheduler")?.spawn_logged(&[], &pairs, &logs.join("scheduler.log"))
    }

    async fn start_worker(
        &self,
        name: &str,
        extra: &[(String, String)],
        log: &str,
    ) -> anyhow::Result<Worker> {
        let port = free_port()?;
        let mut all: Vec<(String, String)> = self.env.clone();
        all.extend(extra.iter().cloned());
        all.push((
            "PLEDGESYNC__HTTP__LISTEN".to_owned(),
            format!("127.0.0.1:{port}"),
        ));
        let pairs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let process = binary(name)?.spawn_logged(&[], &pairs, &self.logs.join(log))?;
        let http = self.http.clone();
        wait_until(
            &format!("{name} to be ready"),
            Duration::from_secs(30),
            || {
                let http = http.clone();
                async move {
                    http.get(format!("http://127.0.0.1:{port}/readyz"))
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                }
            },
        )
        .await
        .with_context(|| self.tail(log.trim_end_matches(".log")))?;
        Ok(Worker { process, port })
    }

    /// Starts one more fetcher (or a replacement after a kill).
    pub async fn start_fetcher(&mut self) -> anyhow::Result<()> {
        let log = format!("fetcher-{}.log", self.fetchers.len());
        let worker = self
            .start_worker("pledgesync-fetcher", &self.fetcher_env.clone(), &log)
            .await?;
        self.fetchers.push(worker);
        Ok(())
    }

    /// Starts one more sink (or a replacement after a kill).
    pub async fn start_sink(&mut self) -> anyhow::Result<()> {
        let log = format!("sink-{}.log", self.sinks.len());
        let worker = self.start_worker("pledgesync-sink", &[], &log).await?;
        self.sinks.push(worker);
        Ok(())
    }

    /// The last lines of a process's log, for failure messages.
    pub fn tail(&self, name: &str) -> String {
        let text =
            std::fs::read_to_string(self.logs.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(30);
        format!("last lines of {name}.log:\n{}", lines[start..].join("\n"))
    }

    /// Every process's log tail.
    pub fn all_tails(&self) -> String {
        let mut names = vec!["scheduler".to_owned()];
        names.extend((0..self.fetchers.len()).map(|i| format!("fetcher-{i}")));
        names.extend((0..self.sinks.len()).map(|i| format!("sink-{i}")));
        names
            .iter()
            .map(|n| self.tail(n))
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// Stops the processes and removes the database and the RabbitMQ topology.
    pub async fn stop(self) -> anyhow::Result<()> {
        let System {
            emulator,
            db,
            scheduler,
            fetchers,
            sinks,
            prefix,
            database,
            services,
            logs,
            ..
        } = self;
        drop((scheduler, fetchers, sinks));
        emulator.shutdown().await;
        db.close().await;
        let broker = pledgesync_broker::Broker::connect(
            &pledgesync_core::settings::RabbitMqSettings {
                url: services.rabbitmq_url.clone().into(),
                ..Default::default()
            },
            pledgesync_broker::Topology::new(prefix.clone(), 5),
        )
        .await?;
        let channel = broker.channel().await?;
        broker.topology().delete(&channel).await?;
        broker.close().await;
        // The killed processes' connections go away on their own; an autovacuum worker may still
        // be in the database for a moment, and ending it needs more than the test role has.
        let mut admin = PgConnection::connect(&services.postgres_url).await?;
        let drop = format!("DROP DATABASE IF EXISTS \"{database}\"");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            match admin.execute(drop.as_str()).await {
                Ok(_) => break,
                Err(error) if std::time::Instant::now() >= deadline => {
                    eprintln!("e2e: could not drop {database} ({error}); drop it by hand");
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        // The logs are kept only when a test fails (it returns before reaching here).
        let _ = std::fs::remove_dir_all(logs);
        Ok(())
    }
}

/// A JSON string field as text.
pub fn text(value: &Value) -> anyhow::Result<String> {
    value
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("expected a string, got {value}"))
}
