//! An in-memory [`Ports`] for the job logic's unit tests: one run, records per module, and a
//! ledger that applies batches at once or when told.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use pledgesync_core::messages::{RecordBatch, SyncJob, SyncMode};
use pledgesync_core::record::RawRecord;
use pledgesync_core::{IntegrationId, Module, RunId};
use serde_json::{json, Map, Value};

use crate::checkpoint::{Checkpoint, Cursor};
use crate::error::FetchError;
use crate::ports::{
    Commit, IntegrationView, Outstanding, PageOut, PageStream, Ports, RunPhase, RunView,
    UnseenSource, Usability,
};

/// The run row of the fake.
#[derive(Clone, Debug)]
pub struct FakeRun {
    pub id: RunId,
    pub integration_id: IntegrationId,
    pub mode: SyncMode,
    pub phase: RunPhase,
    pub checkpoint: Option<Value>,
    pub published: u64,
    pub fetched: u64,
}

/// Everything the fake holds; tests read and poke it.
#[derive(Debug)]
pub struct State {
    pub run: FakeRun,
    pub usability: Usability,
    pub modules: Vec<Module>,
    pub records: HashMap<Module, Vec<Map<String, Value>>>,
    pub deleted: HashMap<Module, Vec<Map<String, Value>>>,
    pub unseen: HashMap<Module, Vec<UnseenSource>>,
    pub cursors: HashMap<Module, Cursor>,
    /// Every publish RabbitMQ confirmed, duplicates included.
    pub published: Vec<RecordBatch>,
    pub jobs: Vec<SyncJob>,
    /// Sequence numbers in the sink's ledger.
    pub applied: BTreeSet<u64>,
    /// Apply every batch as soon as it is published.
    pub auto_apply: bool,
    /// The most batches ever published and not applied.
    pub max_in_flight: u64,
    /// Heartbeats sent while waiting for the sink.
    pub heartbeats: u32,
    /// Looks at the ledger (`Ports::outstanding`).
    pub ledger_reads: u32,
    /// Checkpoint commits asked for (`Ports::commit`).
    pub commits: u32,
    /// The next Zoho call fails with this error (once).
    pub zoho_failure: Option<FetchError>,
    /// The next commit fails (after the publish went through), once.
    pub fail_next_commit: bool,
    /// Continuation jobs cannot be published.
    pub fail_job_publish: bool,
    /// The batch whose publish RabbitMQ nacks, once.
    pub nack_batch: Option<u64>,
    pub failed: Option<(String, bool)>,
    pub staged: Option<(Vec<Module>, DateTime<Utc>)>,
    pub batches_total: Option<u64>,
    pub total_estimate: Option<u64>,
    /// `since` of every listing opened, by kind.
    pub listings: Vec<(&'static str, Module, Option<DateTime<Utc>>)>,
}

/// The fake ports.
pub struct Fake {
    pub state: Mutex<State>,
    pub page_size: usize,
}

pub fn record(id: u64) -> Map<String, Value> {
    let value = json!({"id": id.to_string(), "Email": format!("r{id}@example.com"), "Modified_Time": "2026-01-01T00:00:00+00:00"});
    value.as_object().cloned().unwrap_or_default()
}

pub fn deleted_entry(id: u64) -> Map<String, Value> {
    let value = json!({"id": id.to_string(), "type": "recycle", "deleted_time": "2026-01-02T00:00:00+00:00"});
    value.as_object().cloned().unwrap_or_default()
}

impl Fake {
    /// A queued run of `mode` with `contacts` and `leads` records, pages of `page_size`.
    pub fn new(mode: SyncMode, contacts: u64, leads: u64, page_size: usize) -> Self {
        let integration_id = IntegrationId::new();
        let records = HashMap::from([
            (Module::Contacts, (1..=contacts).map(record).collect()),
            (
                Module::Leads,
                (1_000_001..=1_000_000 + leads).map(record).collect(),
            ),
        ]);
        Self {
            page_size,
            state: Mutex::new(State {
                run: FakeRun {
                    id: RunId::new(),
                    integration_id,
                    mode,
                    phase: RunPhase::Queued,
                    checkpoint: None,
                    published: 0,
                    fetched: 0,
                },
                usability: Usability::Active,
                modules: Module::ALL.to_vec(),
                records,
                deleted: HashMap::new(),
                unseen: HashMap::new(),
                cursors: HashMap::new(),
                published: Vec::new(),
                jobs: Vec::new(),
                applied: BTreeSet::new(),
                auto_apply: true,
                max_in_flight: 0,
                ledger_reads: 0,
                commits: 0,
                heartbeats: 0,
                zoho_failure: None,
                fail_next_commit: false,
                fail_job_publish: false,
                nack_batch: None,
                failed: None,
                staged: None,
                batches_total: None,
                total_estimate: None,
                listings: Vec::new(),
            }),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The job the scheduler would publish for the run.
    pub fn job(&self) -> SyncJob {
        let state = self.lock();
        SyncJob::new(
            state.run.id,
            state.run.integration_id,
            state.run.mode,
            pledgesync_core::messages::Trigger::Manual,
        )
    }

    /// Applies every published batch (the sink catching up).
    pub fn apply_all(&self) {
        let mut state = self.lock();
        let seqs: Vec<u64> = state.published.iter().map(|b| b.seq).collect();
        state.applied.extend(seqs);
        Self::maybe_complete(&mut state);
    }

    fn maybe_complete(state: &mut State) {
        if let Some(total) = state.batches_total {
            if state.applied.len() as u64 >= total && state.run.phase == RunPhase::Running {
                state.run.phase = RunPhase::Ended;
            }
        }
    }

    fn listing(
        &self,
        kind: &'static str,
        module: Module,
        since: Option<DateTime<Utc>>,
        source: Vec<Map<String, Value>>,
        from: Option<Value>,
    ) -> PageStream {
        let failure = {
            let mut state = self.lock();
            state.listings.push((kind, module, since));
            state.zoho_failure.take()
        };
        if let Some(error) = failure {
            return Box::pin(futures::stream::iter(vec![Err(error)]));
        }
        let start = from.and_then(|v| v.as_u64()).unwrap_or(0) as usize;
        let mut pages = Vec::new();
        let mut offset = start;
        while offset < source.len() {
            let end = (offset + self.page_size).min(source.len());
            let next = (end < source.len()).then(|| json!(end));
            pages.push(Ok(PageOut {
                records: source[offset..end]
                    .iter()
                    .map(RawRecord::from_map)
                    .collect(),
                next,
            }));
            offset = end;
        }
        Box::pin(futures::stream::iter(pages))
    }
}

impl Ports for Fake {
    type Access = ();

    async fn load_run(&self, run: RunId) -> Result<Option<RunView>, FetchError> {
        let state = self.lock();
        Ok((state.run.id == run).then(|| RunView {
            id: state.run.id,
            integration_id: state.run.integration_id,
            mode: state.run.mode,
            phase: state.run.phase,
            checkpoint: state.run.checkpoint.clone(),
            created_at: Utc::now(),
        }))
    }

    async fn load_integration(
        &self,
        integration: IntegrationId,
    ) -> Result<Option<IntegrationView<()>>, FetchError> {
        let state = self.lock();
        Ok(
            (state.run.integration_id == integration).then(|| IntegrationView {
                id: integration,
                usability: state.usability.clone(),
                modules: state.modules.clone(),
                access: (),
            }),
        )
    }

    async fn mark_running(
        &self,
        _run: RunId,
        _integration: IntegrationId,
    ) -> Result<bool, FetchError> {
        let mut state = self.lock();
        match state.run.phase {
            RunPhase::Ended => Ok(false),
            _ => {
                state.run.phase = RunPhase::Running;
                Ok(true)
            }
        }
    }

    async fn set_total_estimate(&self, _run: RunId, total: u64) -> Result<(), FetchError> {
        self.lock().total_estimate = Some(total);
        Ok(())
    }

    async fn cursors(
        &self,
        _integration: IntegrationId,
    ) -> Result<HashMap<Module, Cursor>, FetchError> {
        Ok(self.lock().cursors.clone())
    }

    async fn commit(
        &self,
        _run: RunId,
        expected_published: u64,
        checkpoint: &Checkpoint,
    ) -> Result<Commit, FetchError> {
        let mut state = self.lock();
        state.commits += 1;
        if std::mem::take(&mut state.fail_next_commit) {
            return Err(FetchError::store("connection reset", true));
        }
        if state.run.phase != RunPhase::Running || state.run.published != expected_published {
            return Ok(Commit::Lost);
        }
        state.run.checkpoint = Some(checkpoint.to_json());
        state.run.published = checkpoint.next_seq;
        state.run.fetched = checkpoint.fetched;
        Ok(Commit::Saved)
    }

    async fn outstanding(&self, _run: RunId) -> Result<Outstanding, FetchError> {
        let mut state = self.lock();
        state.ledger_reads += 1;
        Ok(Outstanding {
            published: state.run.published,
            applied: state.applied.len() as u64,
            running: state.run.phase == RunPhase::Running,
        })
    }

    async fn heartbeat(&self, _run: RunId) -> Result<(), FetchError> {
        self.lock().heartbeats += 1;
        Ok(())
    }

    async fn unseen_sources(
        &self,
        _integration: IntegrationId,
        _run: RunId,
        module: Module,
    ) -> Result<Vec<UnseenSource>, FetchError> {
        Ok(self.lock().unseen.get(&module).cloned().unwrap_or_default())
    }

    async fn stage_cursors(
        &self,
        _run: RunId,
        modules: &[Module],
        at: DateTime<Utc>,
    ) -> Result<(), FetchError> {
        self.lock().staged = Some((modules.to_vec(), at));
        Ok(())
    }

    async fn finish(&self, _run: RunId, batches_total: u64) -> Result<(), FetchError> {
        let mut state = self.lock();
        state.batches_total = Some(batches_total);
        Self::maybe_complete(&mut state);
        Ok(())
    }

    async fn fail(
        &self,
        _run: RunId,
        _integration: IntegrationId,
        message: &str,
        needs_reauth: bool,
    ) -> Result<(), FetchError> {
        let mut state = self.lock();
        state.failed = Some((message.to_owned(), needs_reauth));
        state.run.phase = RunPhase::Ended;
        if needs_reauth {
            state.usability = Usability::NeedsReauth;
        }
        Ok(())
    }

    async fn record_count(&self, _access: &(), module: Module) -> Result<u64, FetchError> {
        Ok(self
            .lock()
            .records
            .get(&module)
            .map_or(0, |r| r.len() as u64))
    }

    fn pages(
        &self,
        _access: &(),
        module: Module,
        _fields: &'static [&'static str],
        since: Option<DateTime<Utc>>,
        from: Option<Value>,
    ) -> PageStream {
        let source = self
            .lock()
            .records
            .get(&module)
            .cloned()
            .unwrap_or_default();
        self.listing("records", module, since, source, from)
    }

    fn deleted(
        &self,
        _access: &(),
        module: Module,
        since: Option<DateTime<Utc>>,
        from: Option<Value>,
    ) -> PageStream {
        let source = self
            .lock()
            .deleted
            .get(&module)
            .cloned()
            .unwrap_or_default();
        self.listing("deleted", module, since, source, from)
    }

    fn publish_batch(
        &self,
        batch: RecordBatch,
    ) -> impl Future<Output = Result<(), FetchError>> + Send + 'static {
        let mut state = self.lock();
        if state.nack_batch == Some(batch.seq) {
            state.nack_batch = None;
            return std::future::ready(Err(FetchError::broker("nacked", true)));
        }
        if state.auto_apply {
            state.applied.insert(batch.seq);
        }
        let in_flight = (batch.seq + 1).saturating_sub(state.applied.len() as u64);
        state.max_in_flight = state.max_in_flight.max(in_flight);
        state.published.push(batch);
        std::future::ready(Ok(()))
    }

    async fn publish_job(&self, job: &SyncJob) -> Result<(), FetchError> {
        let mut state = self.lock();
        if state.fail_job_publish {
            return Err(FetchError::broker("no confirm", true));
        }
        state.jobs.push(job.clone());
        Ok(())
    }
}
