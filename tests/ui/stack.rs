//! The real stack behind the pages: its own PostgreSQL database, RabbitMQ topology prefix and
//! Redis key prefix, a Zoho emulator in this process, and the real scheduler, sink and fetcher
//! binaries as processes.
//!
//! The browser talks to [`Stack::pages`]. Until the scheduler mounts `pledgesync_ui::router()`
//! itself, that is a small front in this process which serves the pages and passes every other
//! request (`/v1/…`, `/openapi.json`) to the scheduler unchanged, as one origin, the way the
//! scheduler will serve them. Once it does, flip [`UI_SERVED_BY_SCHEDULER`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use pledgesync_tests::{binary, free_port, wait_until, Running, Services};
use serde_json::{json, Value};
use sqlx::{Connection as _, Executor as _, PgConnection, PgPool};
use zoho_emulator::{EmulatorConfig, RunningEmulator};

/// THE ONE-LINE SWITCH: `true` once the scheduler merges `pledgesync_ui::router()` into its own
/// router; the browser then goes straight to the scheduler's port and this file's front is unused.
pub const UI_SERVED_BY_SCHEDULER: bool = true;

/// The bearer token the scheduler accepts (and the test signs in with).
pub const API_TOKEN: &str = "ui-test-token-0123456789abcdef";
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The scope the setup guide asks for.
pub const SCOPE: &str = "ZohoCRM.modules.ALL,ZohoCRM.org.READ";

/// A running stack; [`Stack::stop`] removes its database and queues.
pub struct Stack {
    /// The Zoho emulator, with its console under `/__emulator/`.
    pub emulator: RunningEmulator,
    /// The test's own database.
    pub db: PgPool,
    /// The scheduler's base URL.
    pub api: String,
    /// Where the browser opens the pages (the scheduler, or the front until it serves them).
    pub pages: String,
    /// Plain HTTP for the API and the emulator's console.
    pub http: reqwest::Client,
    scheduler: Running,
    workers: Vec<Running>,
    /// The processes' log names, the scheduler's first.
    names: Vec<String>,
    front: Option<tokio::task::JoinHandle<()>>,
    env: Vec<(String, String)>,
    /// The processes' logs.
    pub logs: PathBuf,
    prefix: String,
    database: String,
    services: Services,
}

impl Stack {
    /// Starts the emulator, the scheduler and a sink. Fetchers come with [`Stack::start_fetcher`],
    /// so the test can see a run waiting in the queue first.
    pub async fn start(emulator: EmulatorConfig) -> anyhow::Result<Stack> {
        let services = Services::from_env();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("ui-{}", &id[..12]);
        let database = format!("test_{id}");
        let mut admin = PgConnection::connect(&services.postgres_url)
            .await
            .context("PostgreSQL is not reachable; run deploy/local/services.sh up")?;
        admin
            .execute(format!("CREATE DATABASE \"{database}\"").as_str())
            .await?;
        let db_url = services.postgres_url_for(&database);
        let db = PgPool::connect(&db_url).await?;
        let logs = std::env::temp_dir().join(format!("pledgesync-{prefix}"));
        std::fs::create_dir_all(&logs)?;
        let emulator = zoho_emulator::spawn(emulator).await?;
        let accounts = format!("{}/dc/{{dc}}", emulator.base_url());
        let env: Vec<(String, String)> = [
            ("PLEDGESYNC__POSTGRES__URL", db_url),
            ("PLEDGESYNC__RABBITMQ__URL", services.rabbitmq_url.clone()),
            ("PLEDGESYNC__RABBITMQ__TOPOLOGY_PREFIX", prefix.clone()),
            ("PLEDGESYNC__REDIS__URL", services.redis_url.clone()),
            ("PLEDGESYNC__REDIS__KEY_PREFIX", prefix.clone()),
            ("PLEDGESYNC__ZOHO__ACCOUNTS_URL", accounts),
            (
                "PLEDGESYNC__ZOHO_CLIENT__REDIS_KEY_PREFIX",
                format!("{prefix}:zoho"),
            ),
            ("PLEDGESYNC__SECURITY__ENCRYPTION_KEY", KEY.to_owned()),
            (
                "PLEDGESYNC__TELEMETRY__LOG_LEVEL",
                "info,lapin=warn,sqlx=warn".to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let api_port = free_port()?;
        let mut scheduler_env = env.clone();
        scheduler_env.extend(
            [
                ("PLEDGESYNC__API__LISTEN", format!("127.0.0.1:{api_port}")),
                ("PLEDGESYNC__API__TOKENS", API_TOKEN.to_owned()),
                // Only Sync Now starts runs here.
                ("PLEDGESYNC__SCHEDULE__TICK_SECS", "3600".to_owned()),
                ("PLEDGESYNC__SCHEDULE__RELAY_POLL_MILLIS", "100".to_owned()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        let scheduler = spawn(
            "pledgesync-scheduler",
            &scheduler_env,
            &logs.join("scheduler.log"),
        )?;
        let api = format!("http://127.0.0.1:{api_port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()?;
        let mut stack = Stack {
            emulator,
            db,
            pages: api.clone(),
            api,
            http,
            scheduler,
            workers: Vec::new(),
            names: vec!["scheduler".to_owned()],
            front: None,
            env,
            logs,
            prefix,
            database,
            services,
        };
        stack
            .wait_ready(&format!("{}/healthz", stack.api), "scheduler")
            .await?;
        if !UI_SERVED_BY_SCHEDULER {
            let (address, task) = serve_front(stack.api.clone(), stack.http.clone()).await?;
            stack.pages = address;
            stack.front = Some(task);
        }
        stack.start_worker("pledgesync-sink").await?;
        Ok(stack)
    }

    async fn wait_ready(&self, url: &str, name: &str) -> anyhow::Result<()> {
        let http = self.http.clone();
        wait_until(
            &format!("{name} to answer {url}"),
            Duration::from_secs(30),
            || {
                let (http, url) = (http.clone(), url.to_owned());
                async move {
                    http.get(url)
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                }
            },
        )
        .await
        .map(|_| ())
        .with_context(|| self.tail(name))
    }

    async fn start_worker(&mut self, name: &str) -> anyhow::Result<()> {
        let port = free_port()?;
        let mut env = self.env.clone();
        env.push((
            "PLEDGESYNC__HTTP__LISTEN".to_owned(),
            format!("127.0.0.1:{port}"),
        ));
        let log = format!("{name}-{}", self.workers.len());
        self.workers
            .push(spawn(name, &env, &self.logs.join(format!("{log}.log")))?);
        self.names.push(log.clone());
        self.wait_ready(&format!("http://127.0.0.1:{port}/readyz"), &log)
            .await
    }

    /// Starts a fetcher: queued runs start moving.
    pub async fn start_fetcher(&mut self) -> anyhow::Result<()> {
        self.start_worker("pledgesync-fetcher").await
    }

    /// The last lines of one process's log.
    pub fn tail(&self, name: &str) -> String {
        let text =
            std::fs::read_to_string(self.logs.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "last lines of {name}.log:\n{}",
            lines[lines.len().saturating_sub(25)..].join("\n")
        )
    }

    /// Every process's log tail, for a failure message.
    pub fn all_tails(&self) -> String {
        self.names
            .iter()
            .map(|n| self.tail(n))
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// A call to the scheduler's API with the token: status and JSON.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(API_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// A call to the emulator's console; its JSON answer.
    pub async fn console(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.emulator.base_url()))
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(
            status.is_success(),
            "emulator {path} answered {status}: {value}"
        );
        Ok(value)
    }

    /// A Self Client in the emulator's API Console: (client id, client secret).
    pub async fn self_client(&self) -> anyhow::Result<(String, String)> {
        let client = self.console("/__emulator/self-clients", json!({})).await?;
        Ok((text(&client["client_id"])?, text(&client["client_secret"])?))
    }

    /// "Generate Code" in the console with the guide's scope, 10 minutes, its description.
    pub async fn grant_code(&self, client_id: &str) -> anyhow::Result<String> {
        let code = self
            .console(
                "/__emulator/grant-codes",
                json!({"client_id": client_id, "scope": SCOPE, "duration_minutes": 10, "description": "PledgeBox Integration"}),
            )
            .await?;
        text(&code["code"])
    }

    /// Moves Zoho's clock forward (grant codes expire).
    pub async fn advance_clock(&self, secs: u64) -> anyhow::Result<()> {
        self.console("/__emulator/clock", json!({"advance_secs": secs}))
            .await
            .map(|_| ())
    }

    /// Stops everything and removes the database and the RabbitMQ topology. The logs stay when
    /// `keep_logs` (a failed test) and are removed otherwise.
    pub async fn stop(self, keep_logs: bool) -> anyhow::Result<()> {
        let Stack {
            emulator,
            db,
            scheduler,
            workers,
            front,
            prefix,
            database,
            services,
            logs,
            ..
        } = self;
        drop((scheduler, workers));
        if let Some(front) = front {
            front.abort();
        }
        emulator.shutdown().await;
        db.close().await;
        let broker = pledgesync_broker::Broker::connect(
            &pledgesync_core::settings::RabbitMqSettings {
                url: services.rabbitmq_url.clone().into(),
                ..Default::default()
            },
            pledgesync_broker::Topology::new(prefix, 5),
        )
        .await?;
        let channel = broker.channel().await?;
        broker.topology().delete(&channel).await?;
        broker.close().await;
        let mut admin = PgConnection::connect(&services.postgres_url).await?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)").as_str())
            .await?;
        if !keep_logs {
            let _ = std::fs::remove_dir_all(logs);
        }
        Ok(())
    }
}

fn spawn(name: &str, env: &[(String, String)], log: &std::path::Path) -> anyhow::Result<Running> {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    binary(name)?.spawn_logged(&[], &pairs, log)
}

/// A JSON string as text.
pub fn text(value: &Value) -> anyhow::Result<String> {
    value
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("expected a string, got {value}"))
}

/// The pages (`pledgesync_ui::router()`, exactly as the scheduler will merge it) with every other
/// request passed to the scheduler; returns the front's base URL.
async fn serve_front(
    api: String,
    http: reqwest::Client,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let app = pledgesync_ui::router().fallback(move |request: Request| {
        let (api, http) = (api.clone(), http.clone());
        async move { pass_on(&api, &http, request).await }
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let address = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((address, task))
}

/// Forwards one request to the scheduler and its answer back, headers and all.
async fn pass_on(api: &str, http: &reqwest::Client, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return (StatusCode::BAD_REQUEST, "unreadable body").into_response();
    };
    let target = format!(
        "{api}{}",
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut outgoing = http.request(parts.method, target).body(bytes);
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = match outgoing.send().await {
        Ok(answer) => answer,
        Err(error) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("the scheduler did not answer: {error}"),
            )
                .into_response()
        }
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != header::TRANSFER_ENCODING
            && name != header::CONTENT_LENGTH
            && name != header::CONNECTION
        {
            response = response.header(name, value);
        }
    }
    let body = answer.bytes().await.unwrap_or_default();
    response
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}
