//! What the fetcher needs from PostgreSQL, RabbitMQ and Zoho, as one trait.
//!
//! The job logic ([`crate::job`], [`crate::pass`]) is written against [`Ports`], so it can be
//! tested without services; [`crate::live`] implements it over the store, the broker and the
//! Zoho client. Every method fails with a classified [`FetchError`].

use std::future::Future;

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use pledgesync_core::messages::{RecordBatch, SyncJob, SyncMode};
use pledgesync_core::{IntegrationId, Module, RunId};

use crate::checkpoint::{Checkpoint, Cursor};
use crate::error::FetchError;

/// A run's life, as far as the fetcher cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunPhase {
    /// Enqueued, not started.
    Queued,
    /// Started; batches may be in flight.
    Running,
    /// Succeeded, failed or cancelled: nothing more to do.
    Ended,
}

/// The run row, which says what a job may do.
#[derive(Clone, Debug)]
pub struct RunView {
    /// The run.
    pub id: RunId,
    /// Its integration: a job naming another one is forged.
    pub integration_id: IntegrationId,
    /// Full or incremental (the row wins over the message).
    pub mode: SyncMode,
    /// Where the run is in its life.
    pub phase: RunPhase,
    /// The resume position, None before the first page.
    pub checkpoint: Option<serde_json::Value>,
    /// When the run was enqueued, for the run-duration metric.
    pub created_at: DateTime<Utc>,
}

/// Whether an integration may sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Usability {
    /// It may.
    Active,
    /// Zoho rejected its credentials before; the creator must re-authorise.
    NeedsReauth,
    /// Disabled or deleted.
    Disabled,
}

/// The integration row, with its secrets already decrypted into `access`.
#[derive(Clone, Debug)]
pub struct IntegrationView<A> {
    /// The integration.
    pub id: IntegrationId,
    /// Whether it may sync.
    pub usability: Usability,
    /// The modules to read, in order.
    pub modules: Vec<Module>,
    /// What the Zoho calls need (credentials, API domain).
    pub access: A,
}

/// One page read from Zoho.
#[derive(Clone, Debug, PartialEq)]
pub struct PageOut {
    /// The records (or deleted-record entries) as Zoho wrote them.
    pub records: Vec<pledgesync_core::record::RawRecord>,
    /// Where the next page starts; None after the last page.
    pub next: Option<serde_json::Value>,
}

/// Batches of a run published and applied, for back-pressure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outstanding {
    /// `batches_published` of the run row.
    pub published: u64,
    /// Batches in the run's ledger.
    pub applied: u64,
    /// Whether the run is still running (a cancelled or failed run stops the wait).
    pub running: bool,
}

impl Outstanding {
    /// Published but not yet applied.
    pub fn in_flight(&self) -> u64 {
        self.published.saturating_sub(self.applied)
    }
}

/// A live member source of the integration that a full run did not see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnseenSource {
    /// Zoho's record id.
    pub zoho_id: String,
    /// Modified_Time of the newest version applied; the record was deleted after it.
    pub modified_at: Option<DateTime<Utc>>,
}

/// How a checkpoint commit went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    /// Saved.
    Saved,
    /// The run is no longer running, or another job moved it on: this job must stop.
    Lost,
}

/// Pages of a Zoho listing, prefetching.
pub type PageStream = BoxStream<'static, Result<PageOut, FetchError>>;

/// The fetcher's view of PostgreSQL, RabbitMQ and Zoho.
pub trait Ports: Send + Sync + 'static {
    /// What Zoho calls need for one integration.
    type Access: Clone + Send + Sync + 'static;

    /// The run row, None if it does not exist.
    fn load_run(
        &self,
        run: RunId,
    ) -> impl Future<Output = Result<Option<RunView>, FetchError>> + Send;

    /// The integration row with its secrets decrypted, None if it does not exist.
    fn load_integration(
        &self,
        integration: IntegrationId,
    ) -> impl Future<Output = Result<Option<IntegrationView<Self::Access>>, FetchError>> + Send;

    /// Marks a queued run of `integration` running (a running one stays so). False if it
    /// already ended.
    fn mark_running(
        &self,
        run: RunId,
        integration: IntegrationId,
    ) -> impl Future<Output = Result<bool, FetchError>> + Send;

    /// Records Zoho's record count as the run's progress estimate.
    fn set_total_estimate(
        &self,
        run: RunId,
        total: u64,
    ) -> impl Future<Output = Result<(), FetchError>> + Send;

    /// The integration's incremental cursors, by module.
    fn cursors(
        &self,
        integration: IntegrationId,
    ) -> impl Future<Output = Result<std::collections::HashMap<Module, Cursor>, FetchError>> + Send;

    /// Saves `checkpoint` with `batches_published = checkpoint.next_seq` and its `fetched`, if
    /// the run is running and its `batches_published` is still `expected_published`.
    fn commit(
        &self,
        run: RunId,
        expected_published: u64,
        checkpoint: &Checkpoint,
    ) -> impl Future<Output = Result<Commit, FetchError>> + Send;

    /// Published and applied batches of the run.
    fn outstanding(
        &self,
        run: RunId,
    ) -> impl Future<Output = Result<Outstanding, FetchError>> + Send;

    /// Refreshes the run's heartbeat while the fetcher waits for the sink, so the scheduler's
    /// stale-run watchdog does not take a live run for a lost one.
    fn heartbeat(&self, run: RunId) -> impl Future<Output = Result<(), FetchError>> + Send;

    /// Live member sources of `module` brought by the integration and not seen by `run`.
    fn unseen_sources(
        &self,
        integration: IntegrationId,
        run: RunId,
        module: Module,
    ) -> impl Future<Output = Result<Vec<UnseenSource>, FetchError>> + Send;

    /// Stages the cursors the run reached; they become the integration's only if it succeeds.
    fn stage_cursors(
        &self,
        run: RunId,
        modules: &[Module],
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), FetchError>> + Send;

    /// Records how many batches the run has; completes it if they are all applied already.
    fn finish(
        &self,
        run: RunId,
        batches_total: u64,
    ) -> impl Future<Output = Result<(), FetchError>> + Send;

    /// Fails the run with a message for the creator (and marks the integration when it needs
    /// re-authorisation).
    fn fail(
        &self,
        run: RunId,
        integration: IntegrationId,
        message: &str,
        needs_reauth: bool,
    ) -> impl Future<Output = Result<(), FetchError>> + Send;

    /// Zoho's record count of a module.
    fn record_count(
        &self,
        access: &Self::Access,
        module: Module,
    ) -> impl Future<Output = Result<u64, FetchError>> + Send;

    /// Record pages of a module modified since `since` (all when None), from `from`.
    fn pages(
        &self,
        access: &Self::Access,
        module: Module,
        fields: &'static [&'static str],
        since: Option<DateTime<Utc>>,
        from: Option<serde_json::Value>,
    ) -> PageStream;

    /// Pages of records deleted since `since`, from `from`.
    fn deleted(
        &self,
        access: &Self::Access,
        module: Module,
        since: Option<DateTime<Utc>>,
        from: Option<serde_json::Value>,
    ) -> PageStream;

    /// Publishes a batch; the future resolves with RabbitMQ's confirm. It owns all it needs, so
    /// the page loop can keep several confirms outstanding (see [`crate::confirms`]).
    fn publish_batch(
        &self,
        batch: RecordBatch,
    ) -> impl Future<Output = Result<(), FetchError>> + Send + 'static;

    /// Publishes a job and waits for RabbitMQ's confirm.
    fn publish_job(&self, job: &SyncJob) -> impl Future<Output = Result<(), FetchError>> + Send;
}
