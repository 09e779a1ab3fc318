//! Spawns the scheduler in-process on a random port against real services, each test isolated:
//! a throwaway PostgreSQL database, its own RabbitMQ topology prefix, its own Redis key prefix,
//! and its own in-process Zoho emulator.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicGetOptions};
use pledgesync_broker::{Broker, Topology, WorkQueue};
use pledgesync_core::messages::{Message, SyncJob};
use pledgesync_core::settings::{
    PostgresSettings, RabbitMqSettings, RedisSettings, SecuritySettings, TelemetrySettings,
    ZohoSettings,
};
use pledgesync_core::shutdown::Shutdown;
use pledgesync_scheduler::settings::{ApiSettings, ScheduleSettings, Settings};
use pledgesync_scheduler::state::AppState;
use pledgesync_scheduler::Application;
use pledgesync_zoho::ZohoClientSettings;
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;
use zoho_emulator::{EmulatorConfig, RunningEmulator};

pub use crate::services::{rabbitmq_url, redis_url, wait_until, FlakyProxy, TestDb};

pub const TOKEN: &str = "test-token-0123456789abcdef";
pub const SCOPE: &str = "ZohoCRM.modules.ALL,ZohoCRM.org.READ";
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// How a test wants its scheduler.
#[derive(Clone, Debug)]
pub struct Options {
    /// Periodic loop interval (long by default, so only Sync Now enqueues).
    pub tick_secs: u64,
    /// Overrides the RabbitMQ URL (the outage test points it at a proxy).
    pub rabbitmq_url: Option<String>,
    /// Longest backoff of the relay.
    pub relay_max_backoff_millis: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tick_secs: 3600,
            rabbitmq_url: None,
            relay_max_backoff_millis: 300,
        }
    }
}

/// One scheduler under test, with its isolated dependencies.
pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub state: AppState,
    pub db: Arc<TestDb>,
    pub pool: PgPool,
    pub topology: Topology,
    pub emulator: Arc<RunningEmulator>,
    pub settings: Settings,
    pub app_periodic: pledgesync_scheduler::periodic::Periodic,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub fn settings_for(
    db: &TestDb,
    emulator: &RunningEmulator,
    prefix: &str,
    options: &Options,
) -> Settings {
    let accounts =
        url::Url::parse(&format!("{}/dc/{{dc}}", emulator.base_url())).expect("emulator url");
    Settings {
        postgres: PostgresSettings {
            url: SecretString::from(db.url.clone()),
            max_connections: 5,
            connect_timeout_secs: 5,
        },
        rabbitmq: RabbitMqSettings {
            url: SecretString::from(options.rabbitmq_url.clone().unwrap_or_else(rabbitmq_url)),
            topology_prefix: prefix.to_owned(),
            ..RabbitMqSettings::default()
        },
        redis: RedisSettings {
            url: SecretString::from(redis_url()),
            pool_size: 4,
            key_prefix: prefix.to_owned(),
        },
        zoho: ZohoSettings {
            accounts_url: Some(accounts),
            api_url: None,
        },
        zoho_client: ZohoClientSettings {
            redis_key_prefix: format!("test:{prefix}"),
            ..ZohoClientSettings::default()
        },
        telemetry: TelemetrySettings::default(),
        security: SecuritySettings {
            encryption_key: Some(SecretString::from(KEY)),
            encryption_key_id: "k1".to_owned(),
            retired_keys: Vec::new(),
        },
        api: ApiSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tokens: vec![SecretString::from(TOKEN)],
            body_limit_bytes: 64 * 1024,
            shutdown_grace_secs: 5,
        },
        schedule: ScheduleSettings {
            tick_secs: options.tick_secs,
            relay_poll_millis: 100,
            relay_max_backoff_millis: options.relay_max_backoff_millis,
            ..ScheduleSettings::default()
        },
    }
}

pub async fn small_emulator() -> RunningEmulator {
    zoho_emulator::spawn(EmulatorConfig {
        contacts: 10,
        leads: 5,
        ..Default::default()
    })
    .await
    .expect("emulator starts")
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        let db = Arc::new(TestDb::create().await);
        let emulator = Arc::new(small_emulator().await);
        let prefix = format!("test-{}", Uuid::new_v4().simple());
        Self::spawn_on(db, emulator, &prefix, options).await
    }

    /// Another scheduler over the same database, emulator and topology (a second replica).
    pub async fn replica(&self, options: Options) -> Self {
        Self::spawn_on(
            self.db.clone(),
            self.emulator.clone(),
            self.topology.prefix(),
            options,
        )
        .await
    }

    async fn spawn_on(
        db: Arc<TestDb>,
        emulator: Arc<RunningEmulator>,
        prefix: &str,
        options: Options,
    ) -> Self {
        // `TEST_LOG=pledgesync=debug` shows the scheduler's logs while debugging a test.
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let settings = settings_for(&db, &emulator, prefix, &options);
        let topology = Topology::from_settings(&settings.rabbitmq);
        let app = Application::build(settings.clone())
            .await
            .expect("the scheduler builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let state = app.state().clone();
        let app_periodic = app.periodic();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let pool = PgPool::connect(&db.url).await.expect("test pool");
        Self {
            address,
            http: reqwest::Client::new(),
            state,
            db,
            pool,
            topology,
            emulator,
            settings,
            app_periodic,
            shutdown,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// An authenticated request.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(TOKEN)
    }

    /// Sends an authenticated JSON request; returns status and JSON body (Null if none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A self client in the emulator's default data centre (US): `(client_id, client_secret)`.
    pub async fn self_client(&self) -> (String, String) {
        let answer: Value = self
            .http
            .post(format!(
                "{}/__emulator/self-clients",
                self.emulator.base_url()
            ))
            .json(&json!({}))
            .send()
            .await
            .expect("emulator")
            .json()
            .await
            .expect("json");
        (
            answer["client_id"].as_str().expect("id").to_owned(),
            answer["client_secret"].as_str().expect("secret").to_owned(),
        )
    }

    pub async fn grant_code(&self, client_id: &str, scope: &str) -> String {
        let answer: Value = self
            .http
            .post(format!("{}/__emulator/grant-codes", self.emulator.base_url()))
            .json(&json!({"client_id": client_id, "scope": scope, "duration_minutes": 10, "description": "PledgeBox Integration"}))
            .send()
            .await
            .expect("emulator")
            .json()
            .await
            .expect("json");
        answer["code"].as_str().expect("code").to_owned()
    }

    pub async fn advance_emulator_clock(&self, secs: u64) {
        let status = self
            .http
            .post(format!("{}/__emulator/clock", self.emulator.base_url()))
            .json(&json!({"advance_secs": secs}))
            .send()
            .await
            .expect("emulator")
            .status();
        assert!(status.is_success(), "clock advance: {status}");
    }

    pub async fn create_audience(&self, account: &str, name: &str) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/v1/audiences",
                Some(json!({"account_id": account, "name": name})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Self client → grant code → `POST /v1/integrations`; the created integration.
    pub async fn create_integration(&self, account: &str, name: &str) -> Value {
        let (client_id, client_secret) = self.self_client().await;
        let code = self.grant_code(&client_id, SCOPE).await;
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/v1/integrations",
                Some(
                    json!({"account_id": account, "name": name, "client_id": client_id,
                    "client_secret": client_secret, "refresh_token": code}),
                ),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// An integration mapped to a fresh audience of the same account: `(integration, audience)`.
    pub async fn mapped_integration(&self, account: &str) -> (Value, Value) {
        let integration = self.create_integration(account, "Zoho CRM").await;
        let audience = self.create_audience(account, "CRM contacts").await;
        let path = format!(
            "/v1/integrations/{}/audience",
            integration["id"].as_str().expect("id")
        );
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                &path,
                Some(json!({"audience_id": audience["id"]})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        (body, audience)
    }

    /// A broker handle on this test's topology, for reading its queues.
    pub async fn broker(&self) -> Broker {
        Broker::connect(&self.settings_with_real_rabbit(), self.topology.clone())
            .await
            .expect("RabbitMQ is up")
    }

    fn settings_with_real_rabbit(&self) -> RabbitMqSettings {
        RabbitMqSettings {
            url: SecretString::from(rabbitmq_url()),
            ..self.settings.rabbitmq.clone()
        }
    }

    /// Takes (and acks) every message waiting in the jobs queue: decoded jobs with their
    /// `traceparent` header.
    pub async fn drain_jobs(&self, broker: &Broker) -> Vec<(SyncJob, Option<String>)> {
        let channel = broker.channel().await.expect("channel");
        let queue = self.topology.queue(WorkQueue::Jobs);
        let mut jobs = Vec::new();
        while let Some(message) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions::default())
            .await
            .expect("basic.get")
        {
            let job = SyncJob::decode(&message.delivery.data).expect("a valid SyncJob");
            let trace = pledgesync_broker::headers::string(
                message.delivery.properties.headers().as_ref(),
                "traceparent",
            );
            message
                .delivery
                .ack(BasicAckOptions::default())
                .await
                .expect("ack");
            jobs.push((job, trace));
        }
        jobs
    }

    pub async fn jobs_waiting(&self, broker: &Broker) -> u32 {
        broker
            .queue_depth(&self.topology.queue(WorkQueue::Jobs))
            .await
            .expect("queue depth")
            .messages
    }

    pub async fn unpublished(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    /// Stops the scheduler (graceful), deletes the topology, drops the database.
    pub async fn stop(self) {
        self.stop_app().await;
        if let Ok(broker) =
            Broker::connect(&self.settings_with_real_rabbit(), self.topology.clone()).await
        {
            if let Ok(channel) = broker.channel().await {
                let _ = self.topology.delete(&channel).await;
            }
            broker.close().await;
        }
        self.pool.close().await;
        self.db.drop_db().await;
    }

    /// Stops only this scheduler process (a replica), leaving shared resources.
    pub async fn stop_app(&self) {
        self.shutdown.trigger();
        let deadline = Duration::from_secs(10);
        let finished = tokio::time::timeout(deadline, async {
            while !self.task.is_finished() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            finished.is_ok(),
            "the scheduler did not stop within {deadline:?}"
        );
    }
}
