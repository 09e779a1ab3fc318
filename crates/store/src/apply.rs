//! The sink's write: one batch applied in one transaction, recorded in the run's ledger.
//!
//! Order inside the transaction, and why:
//! 1. the ledger row `(run, seq)` first — a batch already there is acked without effect
//!    (promise 1), and a concurrent duplicate waits here for the first to finish;
//! 2. the existing source rows of the batch's records, locked in id order — to tell stale and
//!    deleted records from live ones, and emails that moved — unless the records are assumed
//!    new ([`crate::novelty`]: the last transaction of the integration found none);
//! 3. the sources (one statement): new ones inserted without `ON CONFLICT`, which is what proves
//!    an assumption of new records (it fails if a source exists, and the transaction runs again
//!    with the lookup of step 2), found ones updated;
//! 4. when members may lose their last source (removal candidates), the member rows to write or
//!    to check, locked in (audience, email) byte order — one global order, so concurrent batches
//!    with overlapping emails do not deadlock (without candidates the upsert takes the same locks
//!    in the same order by itself); sources always before members, so two transactions never
//!    wait for each other crosswise;
//! 5. members (one statement), sightings, deletions, then removal of members that a sync created
//!    and that have no live source left (never members from elsewhere);
//! 6. the ledger row's counts.
//!
//! Reaching rows by key: every statement that reads or changes rows named by a batch's arrays
//! reaches each row through its primary key, one key at a time (`unnest` of the keys, then a
//! `LATERAL` subquery with `LIMIT 1`, which cannot be flattened into a join); an UPDATE then
//! takes the rows found by their `ctid`. A plain join leaves the choice to the planner, and just
//! after a large sync (before autovacuum's ANALYZE) the statistics still describe a small table:
//! the planner then read all 184,000 members once per candidate of an orphan check (5.5 s for one
//! group of 508), or all of an integration's sources to update a few hundred. One key at a time
//! costs one index descent per key whatever the statistics say. A `ctid` is only safe for a row
//! no other transaction can change before the UPDATE, and each of these rows is locked by this
//! transaction beforehand: sources by `lock_existing`, members by [`lock_members`], ledger rows by
//! their insert. Where the number of rows is known (source updates, ledger counts), a shortfall is
//! a retryable [`StoreError::Contention`] rather than an update lost in silence.
//!
//! The run's completion is checked after the commit, so the last of two concurrent final batches
//! always sees the other. A deadlock or serialization failure (possible only when deletions or
//! email changes interleave with inserts) retries the whole transaction a few times; after that
//! it is a retryable [`StoreError::Contention`].

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pledgesync_core::messages::BatchKind;
use pledgesync_core::{AudienceId, IntegrationId, Module, RunId, ZohoRecordId};
use sqlx::{PgConnection, Row};

use crate::codec::{kind_str, to_i64};
use crate::db::Store;
use crate::error::StoreError;
use crate::members::MemberUpsert;
use crate::novelty::SourceLookup;
use crate::plan::{self, Candidates};
use crate::sources::{self, ExistingSource};
use crate::upsert::{self, merge_by_email};

/// Attempts of one batch's transaction when PostgreSQL reports contention.
const MAX_ATTEMPTS: u32 = 4;

/// A Zoho record that is gone: from the deleted-records API (with its `deleted_time`), or
/// confirmed gone after a full run did not see it (no time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceDeletion {
    /// The deleted record.
    pub zoho_id: ZohoRecordId,
    /// Zoho's `deleted_time`, if known: a version of the record modified after it (restored from
    /// the recycle bin) is not deleted, and an older version arriving later does not revive it.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// One RecordBatch, mapped by the sink.
#[derive(Clone, Debug, PartialEq)]
pub struct ApplyBatch {
    /// The run that fetched it.
    pub run_id: RunId,
    /// Its sequence number in the run: (run, seq) is the idempotency key.
    pub seq: u64,
    /// The integration, checked against the run.
    pub integration_id: IntegrationId,
    /// The audience, checked against the run (the run's audience is fixed when it is enqueued).
    pub audience_id: AudienceId,
    /// The CRM module the records come from.
    pub module: Module,
    /// Upsert (members) or delete (deletions).
    pub kind: BatchKind,
    /// Mapped records; only in an upsert batch.
    pub members: Vec<MemberUpsert>,
    /// Records the sink could not map, counted by reason (e.g. `missing_email`).
    pub skipped_by_reason: BTreeMap<String, u32>,
    /// Deleted records; only in a delete batch.
    pub deletions: Vec<SourceDeletion>,
}

/// What applying a batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyCounts {
    /// Records written to the audience.
    pub applied: u32,
    /// Records not written, all reasons (the sink's and the store's).
    pub skipped: u32,
    /// Records not written, by reason; the store adds `superseded` and `invalid_email`.
    pub skipped_by_reason: BTreeMap<String, u32>,
    /// Members removed from the audience.
    pub deleted: u32,
    /// Sources marked removed (a member stays while another live source has it).
    pub sources_removed: u32,
    /// Whether this batch completed its run.
    pub run_completed: bool,
}

/// The result of [`Store::apply_batch`]; in every case the sink acks the delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Written, with its counts.
    Applied(ApplyCounts),
    /// The ledger already had (run, seq): nothing was written (a redelivery).
    AlreadyApplied {
        /// Whether the completion check this time completed the run (after a crash between a
        /// commit and its check).
        run_completed: bool,
    },
    /// The integration was deleted: nothing was written.
    Discarded {
        /// Why, for the log.
        reason: String,
    },
}

impl ApplyBatch {
    pub(crate) fn records(&self) -> u32 {
        let skipped: u32 = self.skipped_by_reason.values().sum();
        (self.members.len() + self.deletions.len()) as u32 + skipped
    }

    pub(crate) fn check_shape(&self) -> Result<(), StoreError> {
        match self.kind {
            BatchKind::Upsert if !self.deletions.is_empty() => Err(StoreError::Rejected(
                "an upsert batch cannot carry deletions".into(),
            )),
            BatchKind::Delete if !self.members.is_empty() => Err(StoreError::Rejected(
                "a delete batch cannot carry members".into(),
            )),
            _ => Ok(()),
        }
    }
}

impl Store {
    /// Applies a batch exactly once: see the module documentation for what happens in which
    /// order. A batch whose run belongs to another integration or audience is
    /// [`StoreError::Rejected`] (forged or corrupt: dead-letter it).
    #[tracing::instrument(name = "store.apply_batch", skip_all, err, fields(
        run_id = %batch.run_id, seq = batch.seq, module = %batch.module, kind = kind_str(batch.kind),
        records = batch.records()))]
    pub async fn apply_batch(&self, batch: &ApplyBatch) -> Result<ApplyOutcome, StoreError> {
        batch.check_shape()?;
        let started = Instant::now();
        let mut lookup = match batch.kind {
            BatchKind::Upsert => self.novelty.lookup(batch.integration_id, batch.module),
            BatchKind::Delete => SourceLookup::Find,
        };
        let mut attempt = 1;
        let mut outcome = loop {
            match self.apply_once(batch, lookup).await {
                Err(error)
                    if lookup == SourceLookup::AssumeNew && sources::is_existing_source(&error) =>
                {
                    lookup = self.novelty.failed(batch.integration_id, batch.module);
                }
                Err(error) if error.is_contention() && attempt < MAX_ATTEMPTS => {
                    metrics::counter!("pledgesync_store_apply_retries_total").increment(1);
                    tracing::debug!(%error, attempt, "batch transaction hit contention; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                other => break other?,
            }
        };
        match &mut outcome {
            ApplyOutcome::Applied(counts) => {
                counts.run_completed = self.try_complete_run(batch.run_id).await?;
                metrics::counter!("pledgesync_store_members_applied_total")
                    .increment(u64::from(counts.applied));
                metrics::counter!("pledgesync_store_members_removed_total")
                    .increment(u64::from(counts.deleted));
            }
            ApplyOutcome::AlreadyApplied { run_completed } => {
                *run_completed = self.try_complete_run(batch.run_id).await?;
            }
            ApplyOutcome::Discarded { .. } => {}
        }
        let label = match &outcome {
            ApplyOutcome::Applied(_) => "applied",
            ApplyOutcome::AlreadyApplied { .. } => "already_applied",
            ApplyOutcome::Discarded { .. } => "discarded",
        };
        metrics::counter!("pledgesync_store_batches_total", "outcome" => label).increment(1);
        metrics::histogram!("pledgesync_store_apply_batch_seconds")
            .record(started.elapsed().as_secs_f64());
        Ok(outcome)
    }

    async fn apply_once(
        &self,
        batch: &ApplyBatch,
        lookup: SourceLookup,
    ) -> Result<ApplyOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(reason) = check_run(&mut tx, batch).await? {
            tx.rollback().await?;
            return Ok(ApplyOutcome::Discarded { reason });
        }
        let fresh: Option<i64> = sqlx::query_scalar(
            "INSERT INTO run_batches (run_id, seq, module, kind, records) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (run_id, seq) DO NOTHING RETURNING seq",
        )
        .bind(batch.run_id.0)
        .bind(to_i64(batch.seq, "seq")?)
        .bind(batch.module.api_name())
        .bind(kind_str(batch.kind))
        .bind(batch.records() as i32)
        .fetch_optional(&mut *tx)
        .await?;
        if fresh.is_none() {
            tx.rollback().await?;
            return Ok(ApplyOutcome::AlreadyApplied {
                run_completed: false,
            });
        }

        let mut ids: Vec<&str> = batch.members.iter().map(|m| m.zoho_id.as_str()).collect();
        ids.extend(batch.deletions.iter().map(|d| d.zoho_id.as_str()));
        let existing = self.existing_sources(&mut tx, batch, ids, lookup).await?;
        let plan = plan::plan(batch, &existing);

        sources::upsert_sources(&mut tx, batch, &plan.live, |id| existing.contains_key(id)).await?;
        let merged = merge_by_email(plan.live.values().map(|(_, record)| *record));
        lock_members(&mut tx, batch.audience_id, &merged, &plan.candidates).await?;
        upsert::upsert_members(&mut tx, batch.audience_id, &merged).await?;
        sources::touch(&mut tx, batch, &plan.superseded).await?;
        let counts = ApplyCounts {
            applied: plan.live.len() as u32,
            skipped: plan.skipped_by_reason.values().sum(),
            sources_removed: sources::remove(&mut tx, batch, &plan.deletions).await?,
            deleted: remove_orphans(&mut tx, &plan.candidates).await?.len() as u32,
            skipped_by_reason: plan.skipped_by_reason,
            run_completed: false,
        };

        let reasons = serde_json::to_value(&counts.skipped_by_reason)
            .map_err(|e| StoreError::Rejected(format!("skip reasons cannot be stored: {e}")))?;
        sqlx::query(
            "UPDATE run_batches SET applied = $3, skipped = $4, skipped_by_reason = $5, deleted = $6 \
             WHERE run_id = $1 AND seq = $2",
        )
        .bind(batch.run_id.0)
        .bind(to_i64(batch.seq, "seq")?)
        .bind(counts.applied as i32)
        .bind(counts.skipped as i32)
        .bind(reasons)
        .bind(counts.deleted as i32)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if lookup == SourceLookup::AssumeNew {
            self.novelty.held();
        }
        tracing::debug!(
            applied = counts.applied,
            skipped = counts.skipped,
            deleted = counts.deleted,
            "batch applied"
        );
        Ok(ApplyOutcome::Applied(counts))
    }

    /// The source rows of `ids` (records of `batch`'s integration and module), locked in id
    /// order; none when `lookup` assumes the records new. What a lookup for upserts found tells
    /// the next transaction which way to take ([`crate::novelty`]).
    pub(crate) async fn existing_sources(
        &self,
        conn: &mut PgConnection,
        batch: &ApplyBatch,
        ids: Vec<&str>,
        lookup: SourceLookup,
    ) -> Result<HashMap<String, ExistingSource>, StoreError> {
        match lookup {
            SourceLookup::AssumeNew => Ok(HashMap::new()),
            SourceLookup::Find => {
                let found =
                    sources::lock_existing(conn, batch.integration_id, batch.module, ids).await?;
                if !batch.members.is_empty() {
                    self.novelty
                        .learn(batch.integration_id, batch.module, found.is_empty());
                }
                Ok(found)
            }
        }
    }
}

/// Checks the batch against its run; `Some(reason)` when it must be discarded.
///
/// Holds the run, its integration and its audience `FOR KEY SHARE` until the transaction ends:
/// the lock a foreign key takes, taken once here instead of per written row (migration 0003),
/// so none of them can be deleted under the sources this transaction writes.
pub(crate) async fn check_run(
    conn: &mut PgConnection,
    batch: &ApplyBatch,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query(
        "SELECT r.integration_id, r.audience_id, i.deleted_at IS NOT NULL AS deleted \
         FROM sync_runs r JOIN integrations i ON i.id = r.integration_id \
           JOIN audiences a ON a.id = r.audience_id \
         WHERE r.id = $1 FOR KEY SHARE OF r, i, a",
    )
    .bind(batch.run_id.0)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| StoreError::not_found("run", batch.run_id))?;
    let integration: uuid::Uuid = row.try_get("integration_id")?;
    let audience: uuid::Uuid = row.try_get("audience_id")?;
    if integration != batch.integration_id.0 || audience != batch.audience_id.0 {
        return Err(StoreError::Rejected(format!(
            "batch {} of run {} names integration {} and audience {}, but the run belongs to integration {} \
             and audience {}; the message is forged or corrupt",
            batch.seq, batch.run_id, batch.integration_id, batch.audience_id, integration, audience
        )));
    }
    let deleted: bool = row.try_get("deleted")?;
    Ok(deleted.then(|| "the integration was deleted".to_owned()))
}

/// Locks the member rows the batch will write or check for removal, in one global order: one
/// primary-key lookup per sorted key (see `sources::lock_existing` for why not a join). Only
/// needed when there are removal candidates: without them the upsert statement takes the locks
/// of the rows it writes itself, in the same byte order, and a separate pass (about a third of
/// the members' write time in a full sync) would only take them twice.
pub(crate) async fn lock_members(
    conn: &mut PgConnection,
    audience: AudienceId,
    written: &[std::borrow::Cow<'_, MemberUpsert>],
    candidates: &Candidates,
) -> Result<(), StoreError> {
    if candidates.by_key.is_empty() {
        return Ok(());
    }
    let mut keys: Vec<(uuid::Uuid, &str)> = written
        .iter()
        .map(|m| (audience.0, m.email.as_str()))
        .collect();
    keys.extend(candidates.keys());
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return Ok(());
    }
    let (audiences, emails): (Vec<uuid::Uuid>, Vec<&str>) = keys.into_iter().unzip();
    sqlx::query(
        "SELECT 1 FROM unnest($1::uuid[], $2::text[]) AS k(audience_id, email) CROSS JOIN LATERAL ( \
           SELECT 1 FROM audience_members m WHERE m.audience_id = k.audience_id AND m.email = k.email \
           LIMIT 1 FOR UPDATE) m",
    )
    .bind(audiences)
    .bind(emails)
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes the candidates `($1 audiences, $2 emails, $3 reasons)` that a sync created and that no
/// live source brings any more; returns their keys. The sources are reached through
/// `member_sources_by_member` on (audience, email): two equalities, so the planner probes the
/// index per candidate even on tables without statistics (a test holds it to that).
pub(crate) const ORPHANS_SQL: &str = "\
WITH target AS MATERIALIZED ( \
    SELECT x.row_id, c.reason FROM unnest($1::uuid[], $2::text[], $3::text[]) AS c(audience_id, email, reason) \
    CROSS JOIN LATERAL (SELECT m.ctid AS row_id FROM audience_members m \
        WHERE m.audience_id = c.audience_id AND m.email = c.email AND m.removed_at IS NULL AND m.origin = 'sync' \
            AND NOT EXISTS (SELECT 1 FROM member_sources s \
                WHERE s.audience_id = c.audience_id AND s.email = c.email AND s.removed_at IS NULL) \
        LIMIT 1) x) \
UPDATE audience_members m SET removed_at = now(), removed_reason = target.reason, updated_at = now() \
FROM target WHERE m.ctid = target.row_id \
RETURNING m.audience_id, m.email";

/// Removes (softly) candidate members that a sync created and that have no live source left.
/// Returns the (audience, email) keys removed. Rows are reached one key at a time (see the module
/// documentation, "Reaching rows by key").
pub(crate) async fn remove_orphans(
    conn: &mut PgConnection,
    candidates: &Candidates,
) -> Result<Vec<(uuid::Uuid, String)>, StoreError> {
    if candidates.by_key.is_empty() {
        return Ok(Vec::new());
    }
    let audiences: Vec<uuid::Uuid> = candidates.by_key.keys().map(|(a, _)| *a).collect();
    let emails: Vec<&str> = candidates.by_key.keys().map(|(_, e)| e.as_str()).collect();
    let reasons: Vec<&str> = candidates.by_key.values().copied().collect();
    let removed: Vec<(uuid::Uuid, String)> = sqlx::query_as(ORPHANS_SQL)
        .bind(audiences)
        .bind(emails)
        .bind(reasons)
        .fetch_all(conn)
        .await?;
    Ok(removed)
}

/// 10 ms, 20 ms, 40 ms... plus up to as much again of jitter, so two retrying batches part ways.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 10u64 << attempt.min(6);
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * base / 255;
    Duration::from_millis(base + jitter)
}
