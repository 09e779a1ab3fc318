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

/// Measures the ceiling `attempts` times, each into a fresh, empty audience of the system's
/// database, and keeps the fastest.
pub async fn measure(system: &System, records: &[RawRecord], attempts: u32) -> Result<Ceiling> {
    let mapped = pledgesync_sink::mapping::map_upserts(Module::Contacts, records);
    let settings = PostgresSettings {
        url: SecretString::from(system.database_url.clone()),
        ..PostgresSettings::default()
    };
    let store = Store::connect(&settings).await?;
    let account = AccountId::parse("bench-ceiling")
        .map_err(|e| BenchError::unexpected("the ceiling's account id", e.to_string()))?;
    let mut best: Option<f64> = None;
    for attempt in 0..attempts.max(1) {
        let audience = store
            .create_audience(&account, &format!("Ceiling {attempt}"))
            .await?;
        let started = Instant::now();
        store
            .upsert_members_copy(audience.id, &mapped.members)
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            attempt,
            seconds,
            members = mapped.members.len(),
            "PostgreSQL ceiling"
        );
        best = Some(best.map_or(seconds, |b| b.min(seconds)));
    }
    store.close().await;
    Ok(Ceiling {
        records: records.len() as u64,
        members: mapped.members.len() as u64,
        seconds: best.unwrap_or(f64::NAN),
    })
}
