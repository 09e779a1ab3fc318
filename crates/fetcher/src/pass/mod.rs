//! One slice of a run: from the checkpoint, through the stages, until the run's batches are all
//! published or the slice is used up.
//!
//! Every page becomes one batch. Its publish runs as its own task ([`crate::confirms`]), so that
//! several confirms are awaited at once while the loop goes on with the next page (a
//! confirm is a quorum-queue write; waiting for each in turn held the loop). Every confirm is in
//! before the checkpoint that points past its batch is committed, so a crash republishes at most
//! the pages since the last commit, under the same sequence numbers, which the sink's ledger
//! ignores. Pages are read through the Zoho client's prefetching stream, so the next page is on
//! its way while the current one is published.

use std::ops::ControlFlow;

use futures::StreamExt;
use pledgesync_core::messages::{BatchKind, RecordBatch};
use pledgesync_core::record::RawRecord;
use pledgesync_core::shutdown::Shutdown;
use pledgesync_core::{IntegrationId, Module, RunId};
use serde_json::Value;
use tokio::time::Instant;
use tracing::Instrument;

use crate::backpressure::{wait_for_room, Room};
use crate::budget::Budget;
use crate::checkpoint::{Checkpoint, Stage};
use crate::confirms::Unconfirmed;
use crate::error::FetchError;
use crate::fields;
use crate::job::WorkConfig;
use crate::ports::{Commit, PageStream, Ports};
use crate::telemetry;

mod sweep;

/// How a slice ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PassEnd {
    /// Every batch is published and the run's total recorded.
    Finished,
    /// The slice is used up, or shutdown came: a continuation job must carry the run on.
    HandOn,
    /// The run stopped or another job moved it on; this job has nothing more to do.
    Lost(&'static str),
}

type Flow = ControlFlow<PassEnd>;

/// The state of one slice.
pub struct Pass<'a, P: Ports> {
    pub(crate) ports: &'a P,
    pub(crate) config: &'a WorkConfig,
    pub(crate) shutdown: &'a Shutdown,
    pub(crate) run: RunId,
    pub(crate) integration: IntegrationId,
    pub(crate) access: &'a P::Access,
    pub(crate) budget: Budget,
    pub(crate) checkpoint: Checkpoint,
    /// Whether this slice already waited for every published batch to be applied (the sweep
    /// needs that once: unseen means "not marked seen by an applied batch").
    pub(crate) drained: bool,
    /// Batches of the run known to be applied (the ledger's count at the last look): while
    /// fewer than K were published since, there is room without looking again.
    pub(crate) applied_floor: u64,
    /// `next_seq` of the last committed checkpoint (the run row's `batches_published`): the
    /// guard of the next commit.
    pub(crate) committed_seq: u64,
    /// Pages published since the last commit.
    pub(crate) uncommitted_pages: u32,
    /// When the checkpoint was last committed.
    pub(crate) last_commit: Instant,
    /// Publishes sent and not yet confirmed, oldest first.
    pub(crate) unconfirmed: Unconfirmed,
}

/// A checkpoint is committed at least every this many pages, every [`CHECKPOINT_EVERY`], and
/// whenever a listing ends or the slice is handed on. Each commit is a synchronous PostgreSQL
/// commit on the page loop's path; a crash between two republishes at most this many pages
/// under their own sequence numbers, which the sink's ledger makes exact (promise 1).
pub(crate) const CHECKPOINT_EVERY_PAGES: u32 = 10;
pub(crate) const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether two stages page through the same listing (same kind and module), so that moving
/// from one to the other needs no commit.
fn same_listing(a: &Stage, b: &Stage) -> bool {
    match (a, b) {
        (Stage::Records { module: x, .. }, Stage::Records { module: y, .. })
        | (Stage::Deleted { module: x, .. }, Stage::Deleted { module: y, .. }) => x == y,
        _ => false,
    }
}

impl<P: Ports> Pass<'_, P> {
    /// Works the stages until the run is fully published or the slice ends.
    pub async fn run(mut self) -> Result<PassEnd, FetchError> {
        let end = self.stages().await?;
        if matches!(end, PassEnd::HandOn) && self.uncommitted_pages > 0 {
            // The continuation starts from the committed checkpoint: bring it up to date.
            if let ControlFlow::Break(lost) = self.flush().await? {
                return Ok(lost);
            }
        }
        Ok(end)
    }

    async fn stages(&mut self) -> Result<PassEnd, FetchError> {
        loop {
            if self.shutdown.is_triggered() {
                return Ok(PassEnd::HandOn);
            }
            let flow = match self.checkpoint.stage.clone() {
                Stage::Records { module, position } => self.records(module, position).await?,
                Stage::Deleted { module, position } => self.deleted(module, position).await?,
                Stage::Sweep { module, window } => self.sweep(module, window).await?,
                Stage::Finishing => return self.finish().await,
            };
            if let ControlFlow::Break(end) = flow {
                return Ok(end);
            }
        }
    }

    fn module(&self, index: usize) -> Module {
        self.checkpoint.plan.modules[index].module
    }

    /// The record pages of one module.
    async fn records(&mut self, index: usize, position: Option<Value>) -> Result<Flow, FetchError> {
        let plan = self.checkpoint.plan.modules[index].clone();
        let stream = self.ports.pages(
            self.access,
            plan.module,
            fields::for_module(plan.module),
            plan.modified_since,
            position,
        );
        let after = self.checkpoint.plan.after_records(index);
        let at = move |pos| Stage::Records {
            module: index,
            position: Some(pos),
        };
        self.publish_all(
            stream,
            plan.module,
            BatchKind::Upsert,
            after,
            at,
            |records| records,
        )
        .await
    }

    /// The records Zoho deleted since the cursor (incremental runs): every entry is a deletion.
    async fn deleted(&mut self, index: usize, position: Option<Value>) -> Result<Flow, FetchError> {
        let plan = self.checkpoint.plan.modules[index].clone();
        let stream = self
            .ports
            .deleted(self.access, plan.module, plan.deleted_since, position);
        let after = self.checkpoint.plan.after_deleted(index);
        let at = move |pos| Stage::Deleted {
            module: index,
            position: Some(pos),
        };
        self.publish_all(
            stream,
            plan.module,
            BatchKind::Delete,
            after,
            at,
            |records| records,
        )
        .await
    }

    /// Publishes what `keep` keeps of every page of `stream`, then moves to `after`; `at` is the
    /// stage that resumes from a page position.
    async fn publish_all(
        &mut self,
        mut stream: PageStream,
        module: Module,
        kind: BatchKind,
        after: Stage,
        at: impl Fn(Value) -> Stage,
        keep: impl Fn(Vec<RawRecord>) -> Vec<RawRecord>,
    ) -> Result<Flow, FetchError> {
        loop {
            if self.budget.exhausted() {
                return Ok(ControlFlow::Break(PassEnd::HandOn));
            }
            let Some(page) = self.next_page(&mut stream).await? else {
                return Ok(ControlFlow::Break(PassEnd::HandOn));
            };
            let Some(page) = page else {
                // The listing ended without a last page (Zoho's 204 for "nothing").
                return self.save_stage(after).await;
            };
            telemetry::page_read(module);
            let last = page.next.is_none();
            let next = page.next.map_or_else(|| after.clone(), &at);
            let records = keep(page.records);
            let flow = if records.is_empty() {
                self.save_stage(next).await?
            } else {
                self.publish(module, kind, records, next).await?
            };
            if flow.is_break() {
                return Ok(flow);
            }
            self.budget.spend_page();
            if last {
                return Ok(ControlFlow::Continue(()));
            }
        }
    }

    /// The next page, `Ok(None)` when shutdown came first, `Ok(Some(None))` at the end.
    async fn next_page(
        &self,
        stream: &mut PageStream,
    ) -> Result<Option<Option<crate::ports::PageOut>>, FetchError> {
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => Ok(None),
            next = stream.next() => match next {
                None => Ok(Some(None)),
                Some(Ok(page)) => Ok(Some(Some(page))),
                Some(Err(error)) => Err(error),
            },
        }
    }

    /// Publishes one batch (after back-pressure), then commits the checkpoint past it.
    async fn publish(
        &mut self,
        module: Module,
        kind: BatchKind,
        records: Vec<RawRecord>,
        next: Stage,
    ) -> Result<Flow, FetchError> {
        let limit = u64::from(self.config.max_outstanding_batches);
        // Counting the ledger costs more the longer the run, so it is read only when the batches
        // published since the last look could have filled the room; a run that stopped meanwhile
        // is noticed by the guarded checkpoint commit after the publish.
        let published = self.checkpoint.next_seq;
        let at_most_in_flight = published.saturating_sub(self.applied_floor);
        if at_most_in_flight < limit {
            telemetry::batches_outstanding(at_most_in_flight);
        } else {
            match wait_for_room(
                self.ports,
                self.run,
                published,
                limit,
                self.budget.deadline(),
                self.shutdown,
            )
            .await?
            {
                Room::Free { applied } => self.applied_floor = applied,
                Room::SliceOver | Room::Shutdown => return Ok(ControlFlow::Break(PassEnd::HandOn)),
                Room::Stopped => return Ok(ControlFlow::Break(PassEnd::Lost("the run stopped"))),
            }
        }
        let seq = self.checkpoint.next_seq;
        let count = records.len();
        let batch = RecordBatch {
            schema_version: RecordBatch::SCHEMA_VERSION,
            run_id: self.run,
            integration_id: self.integration,
            module,
            seq,
            kind,
            records,
        };
        let span = tracing::info_span!("fetch.publish", run_id = %self.run, %module, seq, kind = ?kind, records = count);
        let confirmed = self.ports.publish_batch(batch);
        self.unconfirmed
            .send(
                async move {
                    confirmed.await?;
                    telemetry::batch_published(module, kind, count);
                    Ok(())
                }
                .instrument(span),
            )
            .await?;
        let mut next_checkpoint = self.checkpoint.clone();
        next_checkpoint.stage = next;
        next_checkpoint.next_seq = seq + 1;
        if kind == BatchKind::Upsert {
            next_checkpoint.fetched += count as u64;
        }
        let stage_changes = !same_listing(&self.checkpoint.stage, &next_checkpoint.stage);
        self.checkpoint = next_checkpoint;
        self.uncommitted_pages += 1;
        if stage_changes
            || self.uncommitted_pages >= CHECKPOINT_EVERY_PAGES
            || self.last_commit.elapsed() >= CHECKPOINT_EVERY
        {
            self.flush().await
        } else {
            Ok(ControlFlow::Continue(()))
        }
    }

    /// Moves to `stage` without publishing.
    async fn save_stage(&mut self, stage: Stage) -> Result<Flow, FetchError> {
        self.checkpoint.stage = stage;
        self.flush().await
    }

    /// Commits the checkpoint in memory, guarded by the published count of the last commit, once
    /// every batch it counts is confirmed.
    async fn flush(&mut self) -> Result<Flow, FetchError> {
        self.unconfirmed.confirm_all().await?;
        match self
            .ports
            .commit(self.run, self.committed_seq, &self.checkpoint)
            .await?
        {
            Commit::Saved => {
                self.committed_seq = self.checkpoint.next_seq;
                self.uncommitted_pages = 0;
                self.last_commit = Instant::now();
                Ok(ControlFlow::Continue(()))
            }
            Commit::Lost => Ok(ControlFlow::Break(PassEnd::Lost(
                "the run stopped or another job moved it on",
            ))),
        }
    }

    /// Stages the cursors and records the run's number of batches.
    async fn finish(&mut self) -> Result<PassEnd, FetchError> {
        self.unconfirmed.confirm_all().await?;
        let modules: Vec<Module> = self
            .checkpoint
            .plan
            .modules
            .iter()
            .map(|m| m.module)
            .collect();
        self.ports
            .stage_cursors(self.run, &modules, self.checkpoint.plan.started_at)
            .await?;
        self.ports
            .finish(self.run, self.checkpoint.next_seq)
            .await?;
        tracing::info!(run_id = %self.run, batches = self.checkpoint.next_seq, fetched = self.checkpoint.fetched, "every batch of the run is published");
        Ok(PassEnd::Finished)
    }
}
