//! The CRM reader against the emulator: paging (page → page_token), resuming, incremental reads,
//! deleted records, count, org, a 401 mid-stream, faults, and the per-org limits.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::{
    accounts, clients, emulator, integration, prefix, redis_pool, settings, stat, Console,
};
use futures::StreamExt as _;
use pledgesync_core::Module;
use pledgesync_zoho::{Accounts, Crm, CrmError, Page, PagePosition, ZohoClientSettings};
use serde_json::{json, Map, Value};
use zoho_emulator::{EmulatorConfig, RunningEmulator};

const FIELDS: [&str; 4] = ["Email", "First_Name", "Last_Name", "Email_Opt_Out"];

async fn setup(
    config: EmulatorConfig,
    tuned: impl FnOnce(ZohoClientSettings) -> ZohoClientSettings,
) -> (RunningEmulator, Console, Crm) {
    let (emu, console, crm, _) = setup_with_accounts(config, tuned).await;
    (emu, console, crm)
}

async fn setup_with_accounts(
    config: EmulatorConfig,
    tuned: impl FnOnce(ZohoClientSettings) -> ZohoClientSettings,
) -> (RunningEmulator, Console, Crm, Accounts) {
    let emu = emulator(config).await;
    let console = Console::new(&emu);
    let accounts = accounts(&emu, tuned(settings(&prefix())));
    let creds = integration(&console, &accounts).await;
    let (_, crm) = clients(&accounts, redis_pool());
    (emu, console, crm.session(creds), accounts)
}

/// Reads a whole stream; panics on an error.
async fn read_all(mut stream: pledgesync_zoho::PageStream) -> Vec<Page> {
    let mut pages = Vec::new();
    while let Some(page) = stream.next().await {
        pages.push(page.expect("page"));
    }
    pages
}

/// A record as a tree, to compare with the emulator's.
fn tree(record: &pledgesync_core::record::RawRecord) -> Map<String, Value> {
    record.to_map().expect("a record is an object")
}

fn by_id(pages: &[Page]) -> BTreeMap<String, Map<String, Value>> {
    let mut records = BTreeMap::new();
    for record in pages.iter().flat_map(|p| p.records.iter()).map(tree) {
        let id = record["id"].as_str().expect("id").to_owned();
        assert!(
            records.insert(id.clone(), record).is_none(),
            "record {id} returned twice"
        );
    }
    records
}

/// What the console says is in the module: id → the requested fields.
async fn truth(
    console: &Console,
    module: &str,
    query: &str,
) -> BTreeMap<String, Map<String, Value>> {
    let all = console
        .get(&format!("/__emulator/records/{module}{query}"))
        .await;
    all["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            let mut fields = Map::new();
            for f in FIELDS.iter().chain(["id", "Modified_Time"].iter()) {
                fields.insert((*f).to_owned(), r[*f].clone());
            }
            (r["id"].as_str().expect("id").to_owned(), fields)
        })
        .collect()
}

async fn emulator_now(console: &Console) -> DateTime<Utc> {
    let clock = console.get("/__emulator/clock").await;
    DateTime::from_timestamp_millis(clock["now_ms"].as_i64().expect("now_ms")).expect("time")
}

#[tokio::test]
async fn paging_past_2000_records_matches_the_module_exactly() {
    let (emu, console, crm) = setup(
        EmulatorConfig {
            contacts: 4_321,
            leads: 0,
            ..Default::default()
        },
        |s| s,
    )
    .await;
    let pages = read_all(crm.pages(Module::Contacts, &FIELDS, None, None)).await;
    assert_eq!(pages.len(), 22);
    assert!(pages.iter().all(|p| p.records.len() <= 200));
    // The position after page 10 pages by token (page numbers stop at 2,000 records).
    let after_ten = serde_json::to_value(pages[9].next.as_ref().expect("more")).expect("json");
    assert_eq!(after_ten["step"]["kind"], "token", "{after_ten}");
    assert!(pages.last().and_then(|p| p.next.as_ref()).is_none());
    let read = by_id(&pages);
    assert_eq!(read, truth(&console, "Contacts", "").await);
    // Oldest modification first.
    let times: Vec<DateTime<chrono::FixedOffset>> = pages
        .iter()
        .flat_map(|p| &p.records)
        .map(tree)
        .map(|r| {
            DateTime::parse_from_rfc3339(r["Modified_Time"].as_str().expect("time"))
                .expect("rfc3339")
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    emu.shutdown().await;
}

#[tokio::test]
async fn a_read_resumes_from_a_stored_position() {
    let (emu, console, crm) = setup(
        EmulatorConfig {
            contacts: 3_000,
            leads: 0,
            ..Default::default()
        },
        |s| s,
    )
    .await;
    let mut first = Vec::new();
    let mut stream = crm.pages(Module::Contacts, &FIELDS, None, None);
    // Stop after 12 pages (past the switch to page_token), as a fetcher's slice would.
    for _ in 0..12 {
        first.push(stream.next().await.expect("page").expect("ok"));
    }
    drop(stream);
    let checkpoint =
        serde_json::to_string(first.last().and_then(|p| p.next.as_ref()).expect("more"))
            .expect("json");
    let resumed: PagePosition = serde_json::from_str(&checkpoint).expect("position");
    let rest = read_all(crm.pages(Module::Contacts, &FIELDS, None, Some(resumed))).await;
    first.extend(rest);
    assert_eq!(by_id(&first), truth(&console, "Contacts", "").await);
    emu.shutdown().await;
}

#[tokio::test]
async fn incremental_reads_and_deleted_records_since_a_time() {
    let (emu, console, crm) = setup(
        EmulatorConfig {
            contacts: 1_500,
            leads: 300,
            ..Default::default()
        },
        |s| s,
    )
    .await;
    console
        .post("/__emulator/clock", json!({"advance_secs": 60}))
        .await;
    let since = emulator_now(&console).await;
    let changed = console
        .post(
            "/__emulator/records/Contacts/mutate",
            json!({"update": 250, "delete": 30, "create": 20, "seed": 7}),
        )
        .await;
    let ids = |key: &str| -> BTreeSet<String> {
        changed[key]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_str().expect("id").to_owned())
            .collect()
    };

    let pages = read_all(crm.pages(Module::Contacts, &FIELDS, Some(since), None)).await;
    let read: BTreeSet<String> = by_id(&pages).into_keys().collect();
    let expected: BTreeSet<String> = ids("updated").union(&ids("created")).cloned().collect();
    assert_eq!(read, expected);
    let truth = truth(&console, "Contacts", "").await;
    for (id, record) in by_id(&pages) {
        assert_eq!(
            record, truth[&id],
            "incremental read returns current values"
        );
    }

    let deleted = read_all(crm.deleted(Module::Contacts, Some(since), None)).await;
    let gone: BTreeSet<String> = deleted
        .iter()
        .flat_map(|p| &p.records)
        .map(tree)
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(gone, ids("deleted"));
    assert!(deleted
        .iter()
        .flat_map(|p| &p.records)
        .map(tree)
        .all(|r| r["type"] == "recycle"));

    // Nothing changed since now: an empty read, not an error.
    console
        .post("/__emulator/clock", json!({"advance_secs": 60}))
        .await;
    let later = emulator_now(&console).await;
    let none = read_all(crm.pages(Module::Leads, &FIELDS, Some(later), None)).await;
    assert!(none.iter().all(|p| p.records.is_empty()));
    assert!(read_all(crm.deleted(Module::Leads, Some(later), None))
        .await
        .iter()
        .all(|p| p.records.is_empty()));
    emu.shutdown().await;
}

#[tokio::test]
async fn deleted_records_page_through_recycle_and_permanent_entries() {
    let (emu, console, crm) = setup(
        EmulatorConfig {
            contacts: 1_000,
            leads: 0,
            ..Default::default()
        },
        |s| s,
    )
    .await;
    let changed = console
        .post(
            "/__emulator/records/Contacts/mutate",
            json!({"delete": 450, "seed": 3}),
        )
        .await;
    let survivor = truth(&console, "Contacts", "")
        .await
        .into_keys()
        .next()
        .expect("a live record");
    let response = reqwest::Client::new()
        .delete(format!(
            "{}/__emulator/records/Contacts/{survivor}?permanent=true",
            emu.base_url()
        ))
        .send()
        .await
        .expect("delete");
    assert!(response.status().is_success());
    let pages = read_all(crm.deleted(Module::Contacts, None, None)).await;
    assert_eq!(pages.len(), 3);
    let entries: Vec<Map<String, Value>> =
        pages.iter().flat_map(|p| &p.records).map(tree).collect();
    assert_eq!(entries.len(), 451);
    assert_eq!(
        entries.iter().filter(|e| e["type"] == "permanent").count(),
        1
    );
    let recycled: BTreeSet<&str> = entries
        .iter()
        .filter(|e| e["type"] == "recycle")
        .filter_map(|e| e["id"].as_str())
        .collect();
    let expected: BTreeSet<&str> = changed["deleted"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(recycled, expected);
    emu.shutdown().await;
}

#[tokio::test]
async fn count_and_org() {
    let (emu, _console, crm) = setup(
        EmulatorConfig {
            contacts: 777,
            leads: 55,
            ..Default::default()
        },
        |s| s,
    )
    .await;
    assert_eq!(crm.count(Module::Contacts).await.expect("count"), 777);
    assert_eq!(crm.count(Module::Leads).await.expect("count"), 55);
    let org = crm.org().await.expect("org");
    assert_eq!(org.id, emu.default_org_id());
    assert_eq!(org.time_zone, "Asia/Kolkata");
    emu.shutdown().await;
}

#[tokio::test]
async fn a_401_mid_stream_is_recovered() {
    let (emu, console, crm) = setup(
        EmulatorConfig {
            contacts: 2_500,
            leads: 0,
            ..Default::default()
        },
        |s| s,
    )
    .await;
    let mut stream = crm.pages(Module::Contacts, &FIELDS, None, None);
    let mut pages = vec![stream.next().await.expect("page").expect("ok")];
    console.reset_stats().await;
    // Every live token dies now; the next page (and the one prefetched) must get a fresh one.
    console
        .post("/__emulator/tokens/expire-all", json!({}))
        .await;
    while let Some(page) = stream.next().await {
        pages.push(page.expect("recovered"));
    }
    assert_eq!(by_id(&pages), truth(&console, "Contacts", "").await);
    let stats = console.stats().await;
    let unauthorized = stats["api_calls"]["GET /crm/v8/{module}"]["401"]
        .as_u64()
        .unwrap_or(0);
    assert!((1..=2).contains(&unauthorized), "{stats}");
    assert_eq!(
        stat(&stats, "token_refreshes"),
        1,
        "one refresh for the dead token"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_retried() {
    let (emu, console, crm) = setup(
        EmulatorConfig {
            contacts: 3_000,
            leads: 0,
            ..Default::default()
        },
        |s| ZohoClientSettings {
            retry_attempts: 8,
            ..s
        },
    )
    .await;
    console
        .knobs(json!({"error_rate_5xx": 0.15, "drop_rate": 0.1}))
        .await;
    let pages = read_all(crm.pages(Module::Contacts, &FIELDS, None, None)).await;
    console
        .knobs(json!({"error_rate_5xx": 0.0, "drop_rate": 0.0}))
        .await;
    assert_eq!(by_id(&pages), truth(&console, "Contacts", "").await);
    let stats = console.stats().await;
    println!(
        "injected 5xx {}, dropped {}",
        stat(&stats, "injected_5xx"),
        stat(&stats, "dropped_connections")
    );
    assert!(stat(&stats, "injected_5xx") + stat(&stats, "dropped_connections") > 0);
    emu.shutdown().await;
}

#[tokio::test]
async fn the_credit_share_is_never_exceeded() {
    let (emu, console, crm, accounts) = setup_with_accounts(
        EmulatorConfig {
            contacts: 10,
            leads: 0,
            ..Default::default()
        },
        |s| ZohoClientSettings {
            org_daily_credits: 20,
            credit_share: 0.5,
            ..s
        },
    )
    .await;
    console.reset_stats().await;
    for _ in 0..10 {
        crm.count(Module::Contacts).await.expect("within the share");
    }
    let err = crm.count(Module::Contacts).await.expect_err("share spent");
    match &err {
        CrmError::CreditsExhausted { retry_after } => {
            assert!(*retry_after > Duration::from_secs(3600))
        }
        other => panic!("expected CreditsExhausted, got {other:?}"),
    }
    assert!(err.is_retryable());
    assert_eq!(
        stat(&console.stats().await, "credits_used"),
        10,
        "Zoho saw only the share"
    );
    // Another worker (its own pool and client) counts against the same budget, through Redis.
    let other_worker = clients(&accounts, redis_pool())
        .1
        .session(crm.credentials().clone());
    assert!(matches!(
        other_worker.count(Module::Contacts).await,
        Err(CrmError::CreditsExhausted { .. })
    ));
    assert_eq!(stat(&console.stats().await, "credits_used"), 10);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_org_concurrency_limit_is_shared_by_workers() {
    let emu = emulator(EmulatorConfig {
        contacts: 10,
        leads: 0,
        latency_ms: 40,
        concurrency_limit: 3,
        ..Default::default()
    })
    .await;
    let console = Console::new(&emu);
    let prefix = prefix();
    let limited = |p: &str| ZohoClientSettings {
        org_concurrency: 3,
        ..settings(p)
    };
    let creds = integration(&console, &accounts(&emu, limited(&prefix))).await;
    // Two workers, each with its own Redis pool and HTTP client, on the same org.
    let workers: Vec<Crm> = (0..2)
        .map(|_| {
            clients(&accounts(&emu, limited(&prefix)), redis_pool())
                .1
                .session(creds.clone())
                .with_org_id("shared-org")
        })
        .collect();
    console.reset_stats().await;
    let started = Instant::now();
    let mut handles = Vec::new();
    for i in 0..24 {
        let crm = workers[i % 2].clone();
        handles.push(tokio::spawn(
            async move { crm.count(Module::Contacts).await },
        ));
    }
    for handle in handles {
        handle.await.expect("task").expect("no call fails");
    }
    let stats = console.stats().await;
    assert_eq!(
        stat(&stats, "concurrency_rejections"),
        0,
        "Zoho never saw more than 3 at once: {stats}"
    );
    // 24 calls of 40 ms, 3 at a time: at least 8 rounds.
    assert!(
        started.elapsed() >= Duration::from_millis(8 * 40),
        "{:?}",
        started.elapsed()
    );
    emu.shutdown().await;
}
