//! One throwaway pledgesync: its own database, RabbitMQ topology and Redis prefix, a Zoho
//! emulator, and the real binaries (one scheduler, N fetchers, M sinks) as child processes.
//!
//! Everything runs with its production defaults except what a benchmark must pin: the periodic
//! scheduler's tick (an hour, so only Sync Now starts runs) and the names that keep runs apart.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;

use crate::api::{Api, Connected, RunView};
use crate::binaries::Binaries;
use crate::emulator::{Emulator, EmulatorOptions};
use crate::error::{BenchError, Result};
use crate::procs::{Process, Spawn};
use crate::services::{Scratch, Services};
use crate::wait;

/// How long a process gets to start answering `/readyz` (migrations included).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a process gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// How to build a system.
#[derive(Clone, Debug)]
pub struct SystemOptions {
    /// The emulator's default org and knobs.
    pub emulator: EmulatorOptions,
    /// Fetcher processes.
    pub fetchers: usize,
    /// Sink processes.
    pub sinks: usize,
    /// Extra variables for the scheduler and the fetchers (the Zoho client's tuning).
    pub extra_env: Vec<(String, String)>,
}

impl SystemOptions {
    /// One fetcher and one sink in front of an emulator with `contacts` contacts.
    pub fn contacts(contacts: u64) -> Self {
        Self {
            emulator: EmulatorOptions::contacts(contacts),
            fetchers: 1,
            sinks: 1,
            extra_env: Vec::new(),
        }
    }
}

/// A worker process and its probe port (`/readyz`, `/metrics`).
#[derive(Debug)]
pub struct Worker {
    /// The process.
    pub process: Process,
    /// Its probe port on 127.0.0.1.
    pub port: u16,
}

/// Peak resident memory of the workers, in bytes.
#[derive(Clone, Debug, Default)]
pub struct Peaks {
    /// Per fetcher.
    pub fetchers: Vec<u64>,
    /// Per sink.
    pub sinks: Vec<u64>,
}

/// A running system.
pub struct System {
    /// Where the processes' output goes; removed when the system stops cleanly.
    pub dir: PathBuf,
    /// The services' URLs.
    pub services: Services,
    /// The throwaway database and prefixes.
    pub scratch: Scratch,
    /// The throwaway database's URL.
    pub database_url: String,
    /// The Zoho emulator.
    pub emulator: Emulator,
    /// The control plane.
    pub scheduler: Process,
    /// Its API.
    pub api: Api,
    /// Fetchers.
    pub fetchers: Vec<Worker>,
    /// Sinks.
    pub sinks: Vec<Worker>,
    http: reqwest::Client,
    guard: AbandonGuard,
}

impl std::fmt::Debug for System {
    // The database URL carries a password: only the names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("dir", &self.dir)
            .field("scratch", &self.scratch)
            .field("emulator", &self.emulator.base)
            .field("api", &self.api)
            .field("fetchers", &self.fetchers.len())
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

/// Says where the logs are when a system is dropped without [`System::stop`] (an error or a
/// panic): its processes die with their handles, and the final clean-up removes the database
/// and prefixes, but the logs stay for whoever reads the error.
#[derive(Debug)]
struct AbandonGuard {
    dir: PathBuf,
    armed: bool,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if self.armed {
            tracing::warn!(logs = %self.dir.display(), "a system was abandoned; its logs are kept");
        }
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| BenchError::io("finding a free port", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| BenchError::io("finding a free port", e))
}

fn pair(key: &str, value: impl Into<String>) -> (String, String) {
    (key.to_owned(), value.into())
}

impl System {
    /// Starts the emulator, the scheduler, the sinks and the fetchers, and waits until each is
    /// ready. `label` names the log directory.
    pub async fn start(binaries: &Binaries, label: &str, options: SystemOptions) -> Result<System> {
        let services = Services::from_env();
        let scratch = Scratch::new();
        let dir = std::env::temp_dir()
            .join("pledgesync-bench")
            .join(format!("{}-{label}", scratch.prefix));
        std::fs::create_dir_all(&dir)
            .map_err(|e| BenchError::io(format!("creating {}", dir.display()), e))?;
        tracing::info!(%label, logs = %dir.display(), "starting a system");
        let database_url = scratch.create(&services).await?;
        let emulator = Emulator::start(&binaries.emulator, &options.emulator, &dir).await?;

        let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        let token = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let mut common = vec![
            pair("PLEDGESYNC__POSTGRES__URL", &database_url),
            pair("PLEDGESYNC__RABBITMQ__URL", &services.rabbitmq_url),
            pair("PLEDGESYNC__RABBITMQ__TOPOLOGY_PREFIX", &scratch.prefix),
            pair("PLEDGESYNC__REDIS__URL", &services.redis_url),
            pair("PLEDGESYNC__REDIS__KEY_PREFIX", &scratch.prefix),
            pair(
                "PLEDGESYNC__TELEMETRY__LOG_LEVEL",
                "info,lapin=warn,sqlx=warn",
            ),
            pair("PLEDGESYNC__TELEMETRY__LOG_FORMAT", "json"),
        ];
        common.extend(binaries.settings.iter().cloned());
        let mut zoho = vec![
            pair("PLEDGESYNC__ZOHO__ACCOUNTS_URL", emulator.accounts_url()),
            pair("PLEDGESYNC__SECURITY__ENCRYPTION_KEY", key),
            pair(
                "PLEDGESYNC__ZOHO_CLIENT__REDIS_KEY_PREFIX",
                format!("{}:zoho", scratch.prefix),
            ),
        ];
        zoho.extend(options.extra_env.iter().cloned());

        let api_port = free_port()?;
        let mut env = common.clone();
        env.extend(zoho.iter().cloned());
        env.extend([
            pair("PLEDGESYNC__API__LISTEN", format!("127.0.0.1:{api_port}")),
            pair("PLEDGESYNC__API__TOKENS", &token),
            // Only Sync Now starts runs: the periodic loop must not add its own.
            pair("PLEDGESYNC__SCHEDULE__TICK_SECS", "3600"),
        ]);
        let scheduler = Process::spawn(Spawn {
            name: "scheduler",
            program: &binaries.scheduler,
            args: &[],
            env: &env,
            dir: &dir,
        })?;
        let api = Api::new(format!("http://127.0.0.1:{api_port}"), token)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| BenchError::http("building the HTTP client", e))?;
        let mut system = System {
            guard: AbandonGuard {
                dir: dir.clone(),
                armed: true,
            },
            dir,
            services,
            scratch,
            database_url,
            emulator,
            scheduler,
            api,
            fetchers: Vec::new(),
            sinks: Vec::new(),
            http,
        };
        let base = system.api.base().to_owned();
        system.wait_ready(&system.scheduler, &base).await?;
        for i in 0..options.sinks {
            let worker = system
                .start_worker(&binaries.sink, &format!("sink-{i}"), &common)
                .await?;
            system.sinks.push(worker);
        }
        let mut fetcher_env = common;
        fetcher_env.extend(zoho);
        for i in 0..options.fetchers {
            let worker = system
                .start_worker(&binaries.fetcher, &format!("fetcher-{i}"), &fetcher_env)
                .await?;
            system.fetchers.push(worker);
        }
        Ok(system)
    }

    async fn start_worker(
        &self,
        program: &std::path::Path,
        name: &str,
        env: &[(String, String)],
    ) -> Result<Worker> {
        let port = free_port()?;
        let mut env = env.to_vec();
        env.push(pair(
            "PLEDGESYNC__HTTP__LISTEN",
            format!("127.0.0.1:{port}"),
        ));
        let process = Process::spawn(Spawn {
            name,
            program,
            args: &[],
            env: &env,
            dir: &self.dir,
        })?;
        self.wait_ready(&process, &format!("http://127.0.0.1:{port}"))
            .await?;
        Ok(Worker { process, port })
    }

    async fn wait_ready(&self, process: &Process, base: &str) -> Result<()> {
        let url = format!("{base}/readyz");
        wait::until(
            &format!("{} to answer {url}", process.name()),
            READY_TIMEOUT,
            Duration::from_millis(50),
            || {
                let alive = process.check_alive();
                let request = self.http.get(&url).send();
                async move {
                    alive?;
                    Ok(request
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .map(|_| ()))
                }
            },
        )
        .await
    }

    /// Connects an integration of `org` (the default org when `None`) reading Contacts only,
    /// for PledgeBox account `account`.
    pub async fn connect(&self, account: &str, org: Option<&str>) -> Result<Connected> {
        let client = self.emulator.self_client(org).await?;
        let code = self.emulator.grant_code(&client).await?;
        self.api
            .connect(account, &client, &code, &["Contacts"])
            .await
    }

    /// `Err(Exited)` if any process of the system has died.
    pub fn check_alive(&self) -> Result<()> {
        self.emulator.process.check_alive()?;
        self.scheduler.check_alive()?;
        for worker in self.fetchers.iter().chain(&self.sinks) {
            worker.process.check_alive()?;
        }
        Ok(())
    }

    /// Waits for the run to end, failing early if a process dies; `Err` unless it succeeded.
    pub async fn wait_for_success(&self, run: &str, timeout: Duration) -> Result<RunView> {
        // Figures time runs by their own timestamps, so a slower look only delays noticing the
        // end; each look is an API call and a ledger sum on the 2 CPUs being measured.
        self.wait_for_end(run, timeout, Duration::from_millis(250))
            .await?
            .succeeded()
    }

    /// Waits for the run to end (polling every `every`), failing early if a process dies.
    pub async fn wait_for_end(
        &self,
        run: &str,
        timeout: Duration,
        every: Duration,
    ) -> Result<RunView> {
        wait::until(
            &format!("run {run} to end"),
            timeout,
            every,
            || async move {
                self.check_alive()?;
                let view = self.api.run(run).await?;
                Ok(view.ended().then_some(view))
            },
        )
        .await
    }

    /// A worker's `/metrics` page.
    pub async fn metrics(&self, worker: &Worker) -> Result<String> {
        let url = format!("http://127.0.0.1:{}/metrics", worker.port);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| BenchError::http(&url, e))?;
        response.text().await.map_err(|e| BenchError::http(&url, e))
    }

    /// The workers' peak resident memory so far.
    pub fn peak_rss(&self) -> Result<Peaks> {
        Ok(Peaks {
            fetchers: self
                .fetchers
                .iter()
                .map(|w| w.process.peak_rss_bytes())
                .collect::<Result<_>>()?,
            sinks: self
                .sinks
                .iter()
                .map(|w| w.process.peak_rss_bytes())
                .collect::<Result<_>>()?,
        })
    }

    /// Stops every process (SIGTERM, then SIGKILL after a grace), removes the database, queues
    /// and keys, and the log directory. A clean-up that fails is logged and left to the final
    /// clean-up: it does not undo what was measured.
    pub async fn stop(self) {
        let System {
            fetchers,
            sinks,
            scheduler,
            emulator,
            scratch,
            services,
            dir,
            mut guard,
            ..
        } = self;
        guard.armed = false;
        // Fetchers first, so nothing new is published while the rest shut down.
        futures::future::join_all(fetchers.into_iter().map(|w| w.process.stop(STOP_GRACE))).await;
        futures::future::join_all(sinks.into_iter().map(|w| w.process.stop(STOP_GRACE))).await;
        scheduler.stop(STOP_GRACE).await;
        emulator.process.stop(STOP_GRACE).await;
        match scratch.remove(&services).await {
            Ok(()) => {
                let _ = std::fs::remove_dir_all(&dir);
            }
            Err(error) => {
                tracing::warn!(%error, database = %scratch.database, "clean-up failed; retried at the end");
            }
        }
    }
}
