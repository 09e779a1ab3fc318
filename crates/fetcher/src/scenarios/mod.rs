//! The job logic end to end against the in-memory ports, one concern per module:
//! - `progress`: pages, slices, resumes, confirms and back-pressure of a run;
//! - `changes`: incremental runs and deletions;
//! - `failures`: what fails a run, what is retried and what is refused.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use pledgesync_broker::{DeliveryInfo, Outcome, WorkQueue};
use pledgesync_core::messages::{BatchKind, SyncJob, SyncMode};
use pledgesync_core::record::RawRecord;
use pledgesync_core::shutdown::Shutdown;
use pledgesync_core::Module;

use crate::checkpoint::{Checkpoint, Cursor, Stage};
use crate::error::FetchError;
use crate::fake::{deleted_entry, Fake};
use crate::job::{Fetcher, WorkConfig};
use crate::ports::{RunPhase, UnseenSource, Usability};

fn config(slice_pages: u32, k: u32) -> WorkConfig {
    WorkConfig {
        max_outstanding_batches: k,
        slice_pages,
        slice_time: Duration::from_secs(30),
        overlap: chrono::Duration::seconds(60),
        delivery_limit: 3,
    }
}

fn delivery(count: u32) -> DeliveryInfo {
    DeliveryInfo {
        queue: WorkQueue::Jobs,
        message_id: None,
        delivery_count: count,
        redelivered: count > 0,
        traceparent: None,
    }
}

fn fetcher(fake: &Arc<Fake>, config: WorkConfig) -> Fetcher<Fake> {
    Fetcher::new(fake.clone(), config, Shutdown::new())
}

/// Delivers the job, then every continuation it publishes, until none is left.
async fn drive(fake: &Arc<Fake>, fetcher: &Fetcher<Fake>) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut next = Some(fake.job());
    while let Some(job) = next.take() {
        outcomes.push(fetcher.handle_job(job, delivery(0)).await);
        let mut state = fake.lock();
        if !state.jobs.is_empty() {
            next = Some(state.jobs.remove(0));
        }
    }
    outcomes
}

fn seqs(fake: &Fake) -> Vec<u64> {
    fake.lock().published.iter().map(|b| b.seq).collect()
}

mod changes;
mod failures;
mod progress;
