//! Shared test set-up: an emulator, a Redis pool with a unique key prefix, and creators who make a
//! Self Client and a grant code in the emulator's console.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use pledgesync_core::settings::ZohoSettings;
use pledgesync_core::{DataCenter, IntegrationId};
use pledgesync_zoho::redis_pool::{self, RedisPool};
use pledgesync_zoho::{
    Accounts, ClientId, ClientSecret, Credentials, CrmClient, TokenStore, ZohoClientSettings,
};
use secrecy::SecretString;
use serde_json::{json, Value};
use url::Url;
use zoho_emulator::{EmulatorConfig, RunningEmulator};

pub const SCOPE: &str = "ZohoCRM.modules.ALL,ZohoCRM.org.READ";

pub fn redis_url() -> String {
    std::env::var("PLEDGESYNC__REDIS__URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A pool on `db` (None: the URL's own) of a size that fits a test with many tasks.
pub fn redis_pool_on(db: Option<u8>, size: usize) -> RedisPool {
    let mut url = Url::parse(&redis_url()).expect("redis url");
    if let Some(db) = db {
        url.set_path(&format!("/{db}"));
    }
    redis_pool::connect(&SecretString::from(url.to_string()), size).expect("redis pool")
}

pub fn redis_pool() -> RedisPool {
    redis_pool_on(None, 16)
}

/// A unique key prefix, so tests share Redis without seeing each other.
pub fn prefix() -> String {
    format!("test:zoho:{}", uuid::Uuid::new_v4().simple())
}

/// Settings scaled for short-lived test tokens and quick retries.
pub fn settings(prefix: &str) -> ZohoClientSettings {
    ZohoClientSettings {
        redis_key_prefix: prefix.to_owned(),
        connect_timeout_ms: 1_000,
        request_timeout_ms: 5_000,
        refresh_timeout_ms: 2_000,
        refresh_lock_ttl_ms: 4_000,
        token_wait_ms: 5_000,
        proactive_refresh_fraction: 0.05,
        safety_margin_fraction: 0.02,
        refresh_cooldown_secs: 600,
        retry_attempts: 5,
        retry_base_ms: 20,
        retry_max_ms: 500,
        rate_limited_backoff_ms: 100,
        org_concurrency: 10,
        concurrency_wait_ms: 5_000,
        ..ZohoClientSettings::default()
    }
}

/// Zoho hosts pointing at the emulator, one path per data centre.
pub fn zoho_settings(emulator: &RunningEmulator) -> ZohoSettings {
    ZohoSettings {
        accounts_url: Some(Url::parse(&format!("{}/dc/{{dc}}", emulator.base_url())).expect("url")),
        api_url: None,
    }
}

pub async fn emulator(config: EmulatorConfig) -> RunningEmulator {
    zoho_emulator::spawn(config).await.expect("emulator starts")
}

pub fn accounts(emulator: &RunningEmulator, settings: ZohoClientSettings) -> Accounts {
    Accounts::new(&zoho_settings(emulator), settings).expect("accounts client")
}

/// The emulator's console.
#[derive(Clone)]
pub struct Console {
    base: String,
    http: reqwest::Client,
}

impl Console {
    pub fn new(emulator: &RunningEmulator) -> Self {
        Self {
            base: emulator.base_url(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("console");
        let status = response.status();
        let json: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "POST {path} → {status}: {json}");
        json
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("console");
        assert!(
            response.status().is_success(),
            "GET {path} → {}",
            response.status()
        );
        response.json().await.expect("json")
    }

    pub async fn knobs(&self, patch: Value) {
        let response = self
            .http
            .put(format!("{}/__emulator/knobs", self.base))
            .json(&patch)
            .send()
            .await
            .expect("knobs");
        assert!(
            response.status().is_success(),
            "knobs {patch}: {}",
            response.status()
        );
    }

    pub async fn stats(&self) -> Value {
        self.get("/__emulator/stats").await
    }

    pub async fn reset_stats(&self) {
        self.post("/__emulator/stats/reset", json!({})).await;
    }

    /// A Self Client in `dc` (the emulator's default DC when `None`).
    pub async fn self_client(&self, dc: Option<&str>) -> (ClientId, ClientSecret) {
        let body = match dc {
            Some(dc) => json!({"data_center": dc}),
            None => json!({}),
        };
        let client = self.post("/__emulator/self-clients", body).await;
        (
            ClientId::new(client["client_id"].as_str().expect("client_id")),
            ClientSecret::new(client["client_secret"].as_str().expect("client_secret")),
        )
    }

    pub async fn grant_code(&self, client_id: &ClientId, scope: &str) -> SecretString {
        let code = self
            .post(
                "/__emulator/grant-codes",
                json!({"client_id": client_id.as_str(), "scope": scope, "duration_minutes": 10}),
            )
            .await;
        SecretString::from(code["code"].as_str().expect("code").to_owned())
    }
}

pub fn stat(stats: &Value, key: &str) -> u64 {
    stats[key].as_u64().unwrap_or(0)
}

/// Connects a new integration through the real set-up path and returns its credentials.
pub async fn integration(console: &Console, accounts: &Accounts) -> Credentials {
    let (client_id, client_secret) = console.self_client(None).await;
    let code = console.grant_code(&client_id, SCOPE).await;
    let auth = accounts
        .authorize(&client_id, &client_secret, &code, Some(DataCenter::Us))
        .await
        .expect("authorised");
    Credentials {
        integration_id: IntegrationId::new(),
        client_id,
        client_secret,
        refresh_token: auth.refresh_token,
        data_center: auth.data_center,
        api_domain: auth.api_domain,
    }
}

/// A token store and CRM client over a fresh Redis pool.
pub fn clients(accounts: &Accounts, pool: RedisPool) -> (TokenStore, CrmClient) {
    let tokens = TokenStore::new(pool, accounts.clone());
    let crm = CrmClient::new(tokens.clone());
    (tokens, crm)
}

/// Polls `check` until it is true or `deadline` passes.
pub async fn wait_for<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
