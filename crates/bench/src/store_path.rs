//! The sink's writes alone: what PostgreSQL must do for a sync, without the pipeline around it.
//!
//! The same records as the ceiling, cut into pages of 200 as the fetcher pages them, mapped by
//! the sink's own mapping, and applied through `Store::apply_batches`, the call a sink's commit
//! worker makes: members, sources and a ledger row per batch, in groups of [`GROUP_BATCHES`] by as
//! many concurrent tasks as a sink has commit workers. It runs in a fresh database of its own, so
//! the audience starts empty as the end-to-end run's did, and nothing else runs meanwhile: no
//! broker, fetcher, emulator or sink process. Set beside the ceiling it shows what the data model
//! costs; set beside the end-to-end run, what the pipeline around the writes costs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use pledgesync_core::messages::{BatchKind, Message, SyncJob, SyncMode, Trigger};
use pledgesync_core::record::RawRecord;
use pledgesync_core::settings::PostgresSettings;
use pledgesync_core::{AccountId, DataCenter, Module};
use pledgesync_sink::settings::SinkSettings;
use pledgesync_store::{
    ApplyBatch, ApplyOutcome, Ciphertext, NewIntegration, NewRun, OutboxMessage, RunStart,
    Schedule, Store, ZohoCredentials,
};
use secrecy::SecretString;

use crate::cpu::{Part, Snapshot};
use crate::error::{BenchError, Result};
use crate::services::{Scratch, Services};

/// Batches per transaction: what the sink formed on average during the end-to-end run
/// (`pledgesync_sink_group_batches`: 1001 batches in 242 to 288 groups at full scale with 20
/// batches in flight per run; in 183 to 195 groups with 30, 2026-12-05; the default is now 32).
pub const GROUP_BATCHES: usize = 5;
/// Records per batch: Zoho's largest page, which the fetcher asks for.
const PAGE: usize = 200;

/// How long the sink's writes took.
#[derive(Clone, Debug)]
pub struct StorePath {
    /// Zoho records given (the input both paths start from).
    pub records: u64,
    /// Records the store applied.
    pub applied: u64,
    /// Wall time from the first transaction to the last commit, in seconds.
    pub seconds: f64,
    /// CPU seconds PostgreSQL spent in that time.
    pub postgres_cpu_seconds: f64,
}

impl StorePath {
    /// Zoho records per second through the sink's writes.
    pub fn records_per_s(&self) -> Option<f64> {
        crate::stats::per_second(self.records, self.seconds)
    }
}

/// Applies `records` as a sync of Contacts would, in a throwaway database, and times it.
pub async fn measure(services: &Services, records: &[RawRecord]) -> Result<StorePath> {
    let scratch = Scratch::new();
    let url = scratch.create(services).await?;
    let measured = measure_in(&url, records).await;
    let removed = scratch.remove(services).await;
    let measured = measured?;
    removed?;
    Ok(measured)
}

async fn measure_in(url: &str, records: &[RawRecord]) -> Result<StorePath> {
    let workers = usize::from(SinkSettings::default().commit_workers).max(1);
    let settings = PostgresSettings {
        url: SecretString::from(url.to_owned()),
        max_connections: u32::try_from(workers + 1).unwrap_or(4),
        ..PostgresSettings::default()
    };
    let store = Store::connect(&settings).await?;
    // Driven in place: sqlx's migration future is not `Send` for every lifetime, which the
    // figure's own task must be. The harness's runtime is multi-threaded.
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(store.migrate()))?;
    let batches = Arc::new(batches(&store, records).await?);

    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = Snapshot::take();
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (store, batches, next) = (store.clone(), batches.clone(), next.clone());
            tokio::spawn(async move { apply_groups(&store, &batches, &next).await })
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        applied += task
            .await
            .map_err(|e| BenchError::unexpected("a store-path task", e.to_string()))??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let postgres_cpu_seconds = cpu_before.until(&Snapshot::take()).seconds(Part::Postgres);
    store.close().await;
    tracing::info!(seconds, applied, "the sink's writes alone");
    Ok(StorePath {
        records: records.len() as u64,
        applied,
        seconds,
        postgres_cpu_seconds,
    })
}

/// Takes the next [`GROUP_BATCHES`] batches until none are left, as a commit worker takes the
/// batches waiting; returns the records applied.
async fn apply_groups(store: &Store, batches: &[ApplyBatch], next: &AtomicUsize) -> Result<u64> {
    let mut applied = 0;
    loop {
        let first = next.fetch_add(GROUP_BATCHES, Ordering::Relaxed);
        if first >= batches.len() {
            return Ok(applied);
        }
        let group = &batches[first..(first + GROUP_BATCHES).min(batches.len())];
        for result in store.apply_batches(group).await {
            match result? {
                ApplyOutcome::Applied(counts) => applied += u64::from(counts.applied),
                other => {
                    return Err(BenchError::unexpected(
                        "the store path",
                        format!("a fresh batch was not applied: {other:?}"),
                    ))
                }
            }
        }
    }
}

/// The job the scheduler would publish for `run`.
fn job(run: &NewRun) -> OutboxMessage {
    OutboxMessage {
        queue: "jobs".into(),
        payload: SyncJob::new(run.run_id, run.integration_id, run.mode, run.trigger).encode(),
        headers: BTreeMap::new(),
    }
}

/// An audience, an integration feeding it and a running run, then the records as that run's
/// batches of Contacts.
async fn batches(store: &Store, records: &[RawRecord]) -> Result<Vec<ApplyBatch>> {
    let account = AccountId::parse("bench-store-path")
        .map_err(|e| BenchError::unexpected("the store path's account id", e.to_string()))?;
    let audience = store.create_audience(&account, "Store path").await?;
    let integration = store
        .insert_integration(&NewIntegration {
            account_id: account,
            name: "Store path".into(),
            // Never decrypted: nothing here calls Zoho.
            credentials: ZohoCredentials {
                data_center: DataCenter::Us,
                api_domain: "https://www.zohoapis.com".into(),
                client_id: "1000.BENCH".into(),
                client_secret: Ciphertext(vec![0; 16]),
                refresh_token: Ciphertext(vec![0; 16]),
                encryption_key_id: "bench".into(),
                scopes: vec!["ZohoCRM.modules.ALL".into(), "ZohoCRM.org.READ".into()],
            },
            zoho_org_id: "1".into(),
            zoho_org_name: None,
            zoho_time_zone: None,
            audience_id: Some(audience.id),
            schedule: Schedule::default(),
        })
        .await?;
    // The job stays in the outbox: no relay runs on this database.
    let enqueued = store
        .enqueue_run(integration.id, SyncMode::Full, Trigger::Manual, job)
        .await?;
    let run = enqueued.run().id;
    if !matches!(
        store.start_run(run, integration.id).await?,
        RunStart::Proceed(_)
    ) {
        return Err(BenchError::unexpected(
            "the store path",
            "its run did not start",
        ));
    }
    Ok(records
        .chunks(PAGE)
        .enumerate()
        .map(|(seq, page)| {
            let mapped = pledgesync_sink::mapping::map_upserts(Module::Contacts, page);
            ApplyBatch {
                run_id: run,
                seq: seq as u64,
                integration_id: integration.id,
                audience_id: audience.id,
                module: Module::Contacts,
                kind: BatchKind::Upsert,
                members: mapped.members,
                skipped_by_reason: mapped.skipped.to_ledger(),
                deletions: Vec::new(),
            }
        })
        .collect())
}
