//! The shared token store against the emulator and a real Redis: one refresh per expiry across
//! "processes" (independent stores, each with its own memory, flights, HTTP client and Redis pool).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    accounts, clients, emulator, integration, prefix, redis_pool, redis_pool_on, settings, stat,
    Console,
};
use pledgesync_core::{IntegrationId, Module};
use pledgesync_zoho::{
    AccessToken, Credentials, CrmClient, CrmError, TokenError, TokenStore, ZohoClientSettings,
};
use tokio::sync::Mutex;
use zoho_emulator::EmulatorConfig;

/// One simulated worker process.
struct Process {
    tokens: TokenStore,
    crm: CrmClient,
}

fn process(
    emu: &zoho_emulator::RunningEmulator,
    settings: ZohoClientSettings,
    db: Option<u8>,
) -> Process {
    let accounts = accounts(emu, settings);
    let (tokens, crm) = clients(&accounts, redis_pool_on(db, 16));
    Process { tokens, crm }
}

/// Runs `tasks` tasks per process for `length`, each calling count on its integration every
/// 50–150 ms. Returns the failures.
async fn work(
    processes: &[Process],
    integrations: &[Credentials],
    tasks: usize,
    length: Duration,
) -> Vec<String> {
    let failures = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for (p, process) in processes.iter().enumerate() {
        for t in 0..tasks {
            let session = process
                .crm
                .session(integrations[(p * tasks + t) % integrations.len()].clone());
            let failures = failures.clone();
            let calls = calls.clone();
            handles.push(tokio::spawn(async move {
                let end = Instant::now() + length;
                while Instant::now() < end {
                    if let Err(e) = session.count(Module::Contacts).await {
                        failures.lock().await.push(e.to_string());
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50 + rand::random::<u64>() % 100))
                        .await;
                }
            }));
        }
    }
    for handle in handles {
        handle.await.expect("task");
    }
    println!("calls made: {}", calls.load(Ordering::Relaxed));
    let failures = failures.lock().await.clone();
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_refresh_once_per_expiry() {
    let emu = emulator(EmulatorConfig {
        contacts: 50,
        leads: 0,
        token_ttl_secs: 2,
        // Zoho allows 10 tokens per refresh token per 10 minutes of an hour-long token; scaled
        // to 2 s tokens a 10 s window still allows twice what one refresh per expiry needs.
        refresh_throttle_max: 10,
        refresh_throttle_window_secs: 10,
        ..Default::default()
    })
    .await;
    let console = Console::new(&emu);
    let prefix = prefix();
    let setup = accounts(&emu, settings(&prefix));
    let mut integrations = Vec::new();
    for _ in 0..10 {
        integrations.push(integration(&console, &setup).await);
    }
    let processes: Vec<Process> = (0..4)
        .map(|_| process(&emu, settings(&prefix), None))
        .collect();
    console.reset_stats().await;

    let started = Instant::now();
    let failures = work(&processes, &integrations, 25, Duration::from_secs(30)).await;
    let elapsed = started.elapsed();

    let stats = console.stats().await;
    let refreshes = stat(&stats, "token_refreshes");
    let expiries_per_integration = elapsed.as_secs_f64() / 2.0;
    let bound = 10 * (expiries_per_integration.ceil() as u64 + 1);
    let unauthorized = stats["api_calls"]["GET /crm/v8/{module}/actions/count"]["401"]
        .as_u64()
        .unwrap_or(0);
    println!(
        "elapsed {:.1}s refreshes {refreshes} (bound {bound}, {:.3} per expiry) throttled {} 401s {unauthorized} failures {}",
        elapsed.as_secs_f64(),
        refreshes as f64 / (10.0 * expiries_per_integration),
        stat(&stats, "throttled_refreshes"),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "failed requests: {:?}",
        &failures[..failures.len().min(5)]
    );
    assert!(
        refreshes <= bound,
        "{refreshes} refreshes for {bound} allowed"
    );
    assert!(
        refreshes >= 10 * (expiries_per_integration.floor() as u64),
        "tokens were refreshed as they expired: {refreshes}"
    );
    assert_eq!(stat(&stats, "throttled_refreshes"), 0);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_flush_costs_one_refresh_per_integration() {
    // Tokens outlive the test, so every refresh counted is one the flush caused (or the first).
    let emu = emulator(EmulatorConfig {
        contacts: 20,
        leads: 0,
        ..Default::default()
    })
    .await;
    let console = Console::new(&emu);
    let prefix = prefix();
    let setup = accounts(&emu, settings(&prefix));
    let mut integrations = Vec::new();
    for _ in 0..10 {
        integrations.push(integration(&console, &setup).await);
    }
    // A dedicated database, because FLUSHDB takes everything in it.
    const DB: u8 = 9;
    let before: Vec<Process> = (0..4)
        .map(|_| process(&emu, settings(&prefix), Some(DB)))
        .collect();
    console.reset_stats().await;
    let failures = work(&before, &integrations, 5, Duration::from_secs(2)).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        stat(&console.stats().await, "token_refreshes"),
        10,
        "one refresh per integration to start"
    );

    let mut conn = redis_pool_on(Some(DB), 1).get().await.expect("redis");
    let () = redis::cmd("FLUSHDB")
        .query_async(&mut conn)
        .await
        .expect("flushdb");

    // The old processes keep going, and four new ones (no memory of any token) join.
    let mut all = before;
    all.extend((0..4).map(|_| process(&emu, settings(&prefix), Some(DB))));
    let failures = work(&all, &integrations, 5, Duration::from_secs(3)).await;
    assert!(failures.is_empty(), "{failures:?}");
    let refreshes = stat(&console.stats().await, "token_refreshes");
    println!("refreshes after the flush: {}", refreshes - 10);
    assert!(
        refreshes <= 20,
        "{} refreshes after the flush for 10 integrations",
        refreshes - 10
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_refresh_token_needs_reauth_at_once() {
    let emu = emulator(EmulatorConfig {
        contacts: 20,
        leads: 0,
        ..Default::default()
    })
    .await;
    let console = Console::new(&emu);
    let prefix = prefix();
    let setup = accounts(&emu, settings(&prefix));
    let creds = integration(&console, &setup).await;
    let processes: Vec<Process> = (0..2)
        .map(|_| process(&emu, settings(&prefix), None))
        .collect();
    for p in &processes {
        p.crm
            .session(creds.clone())
            .count(Module::Contacts)
            .await
            .expect("works before revocation");
    }
    assert!(setup
        .revoke(creds.data_center, &creds.refresh_token)
        .await
        .expect("revoke"));
    console.reset_stats().await;

    let mut handles = Vec::new();
    for p in &processes {
        for _ in 0..10 {
            let session = p.crm.session(creds.clone());
            handles.push(tokio::spawn(async move {
                let started = Instant::now();
                let result = session.count(Module::Contacts).await;
                (result, started.elapsed())
            }));
        }
    }
    for handle in handles {
        let (result, took) = handle.await.expect("task");
        let err = result.expect_err("revoked");
        assert!(
            matches!(err, CrmError::Token(TokenError::NeedsReauth { .. })),
            "{err}"
        );
        assert!(!err.is_retryable() && err.needs_reauth());
        assert!(took < Duration::from_secs(2), "no backoff loop: {took:?}");
    }
    // Again later: the shared marker answers, Zoho is not asked.
    let again = processes[1]
        .tokens
        .access_token(&creds)
        .await
        .expect_err("still revoked");
    assert!(matches!(again, TokenError::NeedsReauth { .. }));
    let stats = console.stats().await;
    assert_eq!(
        stats["token_errors"]["invalid_code"].as_u64(),
        Some(1),
        "one refresh attempt in all: {stats}"
    );
    assert_eq!(stat(&stats, "token_refreshes"), 0);

    // Reconnecting (a new refresh token for the same integration) works at once.
    let fresh = integration(&console, &setup).await;
    let reconnected = Credentials {
        integration_id: creds.integration_id,
        ..fresh
    };
    processes[0]
        .crm
        .session(reconnected)
        .count(Module::Contacts)
        .await
        .expect("works after reconnecting");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_refreshes_back_off_and_recover() {
    let emu = emulator(EmulatorConfig {
        contacts: 20,
        leads: 0,
        token_ttl_secs: 1,
        refresh_throttle_max: 2,
        refresh_throttle_window_secs: 3,
        ..Default::default()
    })
    .await;
    let console = Console::new(&emu);
    let prefix = prefix();
    let tuned = ZohoClientSettings {
        refresh_cooldown_secs: 3,
        token_wait_ms: 1_000,
        ..settings(&prefix)
    };
    let setup = accounts(&emu, tuned.clone());
    let creds = integration(&console, &setup).await;
    let processes: Vec<Process> = (0..2).map(|_| process(&emu, tuned.clone(), None)).collect();
    console.reset_stats().await;

    let started = Instant::now();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for p in &processes {
        for _ in 0..5 {
            let tokens = p.tokens.clone();
            let creds = creds.clone();
            let outcomes = outcomes.clone();
            handles.push(tokio::spawn(async move {
                while started.elapsed() < Duration::from_secs(10) {
                    let result = tokens.access_token(&creds).await;
                    outcomes
                        .lock()
                        .await
                        .push((started.elapsed(), result.map(|_| ())));
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            }));
        }
    }
    for handle in handles {
        handle.await.expect("task");
    }
    let elapsed = started.elapsed();
    let stats = console.stats().await;
    let outcomes = outcomes.lock().await;
    let throttled: Vec<_> = outcomes.iter().filter(|(_, r)| r.is_err()).collect();
    // Callers see the cool-down as a retryable error that says how long is left; under a busy
    // machine a wait for another worker's refresh may also time out, retryable as well.
    let mut saw_throttle = false;
    for (_, result) in &throttled {
        match result {
            Err(TokenError::Throttled { retry_after }) => {
                saw_throttle = true;
                assert!(*retry_after <= Duration::from_secs(3))
            }
            Err(other) => assert!(other.is_retryable(), "{other}"),
            Ok(()) => {}
        }
    }
    assert!(saw_throttle);
    let last_error = throttled
        .iter()
        .map(|(at, _)| *at)
        .max()
        .expect("the throttle was hit");
    let recovered = outcomes.iter().any(|(at, r)| *at > last_error && r.is_ok());
    let zoho_throttles = stat(&stats, "throttled_refreshes");
    println!(
        "throttled answers from Zoho {zoho_throttles}, refreshes {}, failed calls {} of {}",
        stat(&stats, "token_refreshes"),
        throttled.len(),
        outcomes.len()
    );
    assert!(recovered, "tokens came back after the cool-down");
    // Every worker honours one shared cool-down: Zoho sees one throttled call per cool-down.
    assert!(zoho_throttles >= 1);
    assert!(
        zoho_throttles <= (elapsed.as_secs_f64() / 3.0).ceil() as u64,
        "{zoho_throttles} throttled calls"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn tokens_are_only_replaced_by_later_ones_and_only_the_failed_one_is_dropped() {
    let emu = emulator(EmulatorConfig {
        contacts: 5,
        leads: 0,
        ..Default::default()
    })
    .await;
    let console = Console::new(&emu);
    let prefix = prefix();
    let setup = accounts(&emu, settings(&prefix));
    let creds = integration(&console, &setup).await;
    let (store, _) = clients(&setup, redis_pool());
    let other = TokenStore::new(redis_pool(), accounts(&emu, settings(&prefix)));

    let first = store.access_token(&creds).await.expect("token");
    // An older token offered later does not replace it.
    let now_ms = chrono::Utc::now().timestamp_millis();
    other
        .offer(
            creds.integration_id,
            AccessToken::new("1000.older"),
            Duration::from_secs(600),
            now_ms,
        )
        .await
        .expect("offer");
    assert_eq!(other.access_token(&creds).await.expect("token"), first);

    // A stale 401 for some other token leaves the cached one alone.
    assert!(!other
        .invalidate_if_same(creds.integration_id, &AccessToken::new("1000.stale"))
        .await
        .expect("redis"));
    assert_eq!(other.access_token(&creds).await.expect("token"), first);

    // The token that failed is dropped; the next caller gets a new one, which every store sees.
    assert!(other
        .invalidate_if_same(creds.integration_id, &first)
        .await
        .expect("redis"));
    let second = other.access_token(&creds).await.expect("refreshed");
    assert_ne!(second, first);
    let unknown = Credentials {
        integration_id: IntegrationId::new(),
        ..creds.clone()
    };
    assert_ne!(
        store
            .access_token(&unknown)
            .await
            .expect("separate integration"),
        second
    );
    store
        .invalidate_if_same(creds.integration_id, &first)
        .await
        .expect("memory dropped");
    assert_eq!(
        store.access_token(&creds).await.expect("from redis"),
        second
    );

    store.forget(creds.integration_id).await.expect("forget");
    console.reset_stats().await;
    other.forget(creds.integration_id).await.expect("forget");
    let third = other
        .access_token(&creds)
        .await
        .expect("refreshed after forget");
    assert_ne!(third, second);
    assert_eq!(stat(&console.stats().await, "token_refreshes"), 1);
    emu.shutdown().await;
}
