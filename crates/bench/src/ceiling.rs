//! The PostgreSQL ceiling: the same records, mapped by the sink's own mapping, upserted straight
//! into the same `audience_members` table by the fastest path the store has (COPY into a
//! temporary table, then the sink's upsert statement), with no broker, no ledger and no sources.
//!
//! The records are read from the emulator's console and cut down to the fields the fetcher
//! requests, so the members (attributes included) are the ones the sink would have written.

use std::time::Instant;

use pledgesync_core::record::RawRecord;
use pledgesync_core::settings::PostgresSettings;
use pledgesync_core::{AccountId, Module};
use pledgesync_store::Store;
use secrecy::SecretString;

use crate::error::{BenchError, Result};
use crate::system::System;

/// How long the ceiling took.
#[derive(Clone, Debug)]
pub struct Ceiling {
    /// Zoho records read (the input both paths start from).
    pub records: u64,
    /// Members they mapped into (before merging duplicates by email).
    pub members: u64,
    /// The best time over the attempts, in seconds: load and upsert only.
    pub seconds: f64,
}

impl Ceiling {
    /// Zoho records per second through the ceiling.
    pub fn records_per_s(&self) -> Option<f64> {
        crate::stats::per_second(self.records, self.seconds)
    }
}

/// The emulator's contacts as the fetcher would carry them: cut to the fields it requests.
pub async fn contacts(system: &System) -> Result<Vec<RawRecord>> {
    let records = system
        .emulator
        .contacts(pledgesync_fetcher::fields::CONTACT_FIELDS)
        .await?;
    Ok(records.iter().map(RawRecord::from_map).collect())
}

/// The ceiling, ready to be measured attempt by attempt: the records mapped once and a store
/// connected to the system's database. The e2e figure takes one attempt right after each sync,
/// so that both sides of its ratio meet the machine in the same state.
pub struct Bench {
    store: Store,
    members: Vec<pledgesync_store::MemberUpsert>,
    account: AccountId,
    records: u64,
    best: Option<f64>,
}

impl Bench {
    /// Maps `records` as the sink would and connects to the system's database.
    pub async fn prepare(system: &System, records: &[RawRecord]) -> Result<Self> {
        let mapped = pledgesync_sink::mapping::map_upserts(Module::Contacts, records);
        let settings = PostgresSettings {
            url: SecretString::from(system.database_url.clone()),
            ..PostgresSettings::default()
        };
        let store = Store::connect(&settings).await?;
        let account = AccountId::parse("bench-ceiling")
            .map_err(|e| BenchError::unexpected("the ceiling's account id", e.to_string()))?;
        Ok(Self {
            store,
            members: mapped.members,
            account,
            records: records.len() as u64,
            best: None,
        })
    }

    /// One attempt into a fresh, empty audience; returns its seconds (load and upsert only).
    pub async fn attempt(&mut self, attempt: u32) -> Result<f64> {
        let audience = self
            .store
            .create_audience(&self.account, &format!("Ceiling {attempt}"))
            .await?;
        let started = Instant::now();
        self.store
            .upsert_members_copy(audience.id, &self.members)
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            attempt,
            seconds,
            members = self.members.len(),
            "PostgreSQL ceiling"
        );
        self.best = Some(self.best.map_or(seconds, |b| b.min(seconds)));
        Ok(seconds)
    }

    /// The fastest attempt.
    pub async fn finish(self) -> Ceiling {
        self.store.close().await;
        Ceiling {
            records: self.records,
            members: self.members.len() as u64,
            seconds: self.best.unwrap_or(f64::NAN),
        }
    }
}
