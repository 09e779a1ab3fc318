//! Paging efficiency and refreshes per expiry, against the emulator and the local Redis.
//!
//! Prints two lines:
//! - `fetch_latency_overhead_ratio <x> ratio`: with 50 ms of emulator latency per call, the time to
//!   stream 20,000 records divided by (pages × 50 ms). Pages are sequential by nature (each needs
//!   the previous one's token), so 1.0 is the floor; the target is at most 1.1.
//! - `token_refreshes_per_expiry <x> ratio`: refreshes Zoho saw divided by token expiries, with
//!   2 stores × 10 tasks sharing 4 integrations whose tokens live 2 s, for 20 s after every
//!   integration got its first token. Refreshing a proactive margin (5 %) early costs ~5 %.
//!
//! Run: `cargo bench -p pledgesync-zoho --bench paging` (Redis from `PLEDGESYNC__REDIS__URL`).

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use pledgesync_core::settings::ZohoSettings;
use pledgesync_core::{DataCenter, IntegrationId, Module};
use pledgesync_zoho::redis_pool::{self, RedisPool};
use pledgesync_zoho::{
    Accounts, ClientId, ClientSecret, Credentials, CrmClient, TokenStore, ZohoClientSettings,
};
use secrecy::SecretString;
use serde_json::{json, Value};
use url::Url;
use zoho_emulator::{EmulatorConfig, RunningEmulator};

const LATENCY_MS: u64 = 50;
const RECORDS: usize = 20_000;

fn settings(prefix: &str) -> ZohoClientSettings {
    ZohoClientSettings {
        redis_key_prefix: prefix.to_owned(),
        refresh_timeout_ms: 2_000,
        refresh_lock_ttl_ms: 4_000,
        token_wait_ms: 5_000,
        proactive_refresh_fraction: 0.05,
        safety_margin_fraction: 0.02,
        org_concurrency: 25,
        ..ZohoClientSettings::default()
    }
}

fn pool() -> RedisPool {
    let url = std::env::var("PLEDGESYNC__REDIS__URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    redis_pool::connect(&SecretString::from(url), 16).expect("redis pool")
}

fn accounts(emu: &RunningEmulator, prefix: &str) -> Accounts {
    let zoho = ZohoSettings {
        accounts_url: Some(Url::parse(&format!("{}/dc/{{dc}}", emu.base_url())).expect("url")),
        api_url: None,
    };
    Accounts::new(&zoho, settings(prefix)).expect("accounts")
}

async fn console(emu: &RunningEmulator, method: reqwest::Method, path: &str, body: Value) -> Value {
    reqwest::Client::new()
        .request(method, format!("{}{path}", emu.base_url()))
        .json(&body)
        .send()
        .await
        .expect("console")
        .json()
        .await
        .expect("json")
}

async fn integration(emu: &RunningEmulator, accounts: &Accounts) -> Credentials {
    let client = console(
        emu,
        reqwest::Method::POST,
        "/__emulator/self-clients",
        json!({}),
    )
    .await;
    let client_id = ClientId::new(client["client_id"].as_str().expect("id"));
    let secret = ClientSecret::new(client["client_secret"].as_str().expect("secret"));
    let code = console(
        emu,
        reqwest::Method::POST,
        "/__emulator/grant-codes",
        json!({"client_id": client_id.as_str(), "scope": "ZohoCRM.modules.ALL,ZohoCRM.org.READ", "duration_minutes": 10}),
    )
    .await;
    let pasted = SecretString::from(code["code"].as_str().expect("code").to_owned());
    let auth = accounts
        .authorize(&client_id, &secret, &pasted, Some(DataCenter::Us))
        .await
        .expect("authorised");
    Credentials {
        integration_id: IntegrationId::new(),
        client_id,
        client_secret: secret,
        refresh_token: auth.refresh_token,
        data_center: auth.data_center,
        api_domain: auth.api_domain,
    }
}

fn prefix() -> String {
    format!("bench:zoho:{}", uuid::Uuid::new_v4().simple())
}

async fn paging_overhead() -> f64 {
    let emu = zoho_emulator::spawn(EmulatorConfig {
        contacts: RECORDS,
        leads: 0,
        latency_ms: LATENCY_MS,
        ..Default::default()
    })
    .await
    .expect("emulator");
    let prefix = prefix();
    let accounts = accounts(&emu, &prefix);
    let creds = integration(&emu, &accounts).await;
    let tokens = TokenStore::new(pool(), accounts);
    tokens.access_token(&creds).await.expect("warm token");
    let crm = CrmClient::new(tokens).session(creds);
    let started = Instant::now();
    let mut stream = crm.pages(
        Module::Contacts,
        &["Email", "First_Name", "Last_Name", "Email_Opt_Out"],
        None,
        None,
    );
    let (mut pages, mut records) = (0u32, 0usize);
    while let Some(page) = stream.next().await {
        let page = page.expect("page");
        pages += 1;
        records += page.records.len();
    }
    let took = started.elapsed();
    assert_eq!(records, RECORDS);
    emu.shutdown().await;
    let ideal = Duration::from_millis(LATENCY_MS) * pages;
    eprintln!("{records} records, {pages} pages in {took:?} (ideal {ideal:?})");
    took.as_secs_f64() / ideal.as_secs_f64()
}

async fn refreshes_per_expiry() -> f64 {
    const TTL_SECS: u64 = 2;
    const RUN: Duration = Duration::from_secs(20);
    let emu = zoho_emulator::spawn(EmulatorConfig {
        contacts: 20,
        leads: 0,
        token_ttl_secs: TTL_SECS,
        refresh_throttle_window_secs: 10,
        ..Default::default()
    })
    .await
    .expect("emulator");
    let prefix = prefix();
    let setup = accounts(&emu, &prefix);
    let mut integrations = Vec::new();
    for _ in 0..4 {
        integrations.push(integration(&emu, &setup).await);
    }
    let stores: Vec<TokenStore> = (0..2)
        .map(|_| TokenStore::new(pool(), accounts(&emu, &prefix)))
        .collect();
    for creds in &integrations {
        stores[0].access_token(creds).await.expect("first token");
    }
    console(
        &emu,
        reqwest::Method::POST,
        "/__emulator/stats/reset",
        json!({}),
    )
    .await;
    let started = Instant::now();
    let mut handles = Vec::new();
    for store in &stores {
        let crm = CrmClient::new(store.clone());
        for t in 0..10 {
            let session = crm.session(integrations[t % integrations.len()].clone());
            handles.push(tokio::spawn(async move {
                while started.elapsed() < RUN {
                    session.count(Module::Contacts).await.expect("call");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }));
        }
    }
    for handle in handles {
        handle.await.expect("task");
    }
    let elapsed = started.elapsed();
    let stats = console(&emu, reqwest::Method::GET, "/__emulator/stats", Value::Null).await;
    emu.shutdown().await;
    let refreshes = stats["token_refreshes"].as_u64().unwrap_or(0) as f64;
    let expiries = integrations.len() as f64 * elapsed.as_secs_f64() / TTL_SECS as f64;
    eprintln!("{refreshes} refreshes for {expiries:.1} expiries in {elapsed:?}");
    refreshes / expiries
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let overhead = paging_overhead().await;
        println!("fetch_latency_overhead_ratio {overhead:.3} ratio");
        let refreshes = refreshes_per_expiry().await;
        println!("token_refreshes_per_expiry {refreshes:.3} ratio");
    });
}
