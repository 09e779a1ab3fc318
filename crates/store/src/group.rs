//! Group commit: several upsert batches of one run and module applied in one transaction, with
//! exactly the effect of applying them one after another in sequence order.
//!
//! A sink that holds many deliveries at once pays one commit, one source lookup and one
//! statement per table for all of them instead of per batch; that is where a batch's time went
//! (round trips and a synchronous commit for 200 rows). Each batch keeps its own ledger row and
//! its own counts, so a run's counters, redelivery (promise 1) and completion are as if the
//! batches had come one by one:
//! - the ledger rows are inserted first, together; a batch already there is
//!   [`ApplyOutcome::AlreadyApplied`] and takes no part, and a second copy of a batch in the same
//!   group is one too;
//! - the existing sources of every record in the group are locked once, in id order (unless the
//!   records are assumed new, [`crate::novelty`]);
//! - each batch is planned against the sources as the batches before it left them
//!   ([`crate::plan`]), which is what makes the group equal to the sequence;
//! - members, sources, sightings and orphan removals are then written with one statement each,
//!   and the ledger rows get their counts in one statement.
//!
//! Delete batches, and groups of one, take the single-batch path ([`Store::apply_batch`]). When
//! a group fails for a reason that is not PostgreSQL being away or contended (a forged batch, a
//! corrupt row), its batches are applied one by one so that only the guilty one fails.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use pledgesync_core::messages::BatchKind;
use pledgesync_core::{AudienceId, IntegrationId, Module, RunId};
use sqlx::PgConnection;

use crate::apply::{
    check_run, lock_members, remove_orphans, ApplyBatch, ApplyCounts, ApplyOutcome,
};
use crate::codec::to_i64;
use crate::db::Store;
use crate::error::StoreError;
use crate::novelty::SourceLookup;
use crate::plan::{self, Candidates};
use crate::sources::{self, ExistingSource};
use crate::upsert::{self, merge_by_email};

/// Attempts of one group's transaction when PostgreSQL reports contention.
const MAX_ATTEMPTS: u32 = 4;

/// What the batches of one group share: they are applied together only if all of it is equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    run: RunId,
    integration: IntegrationId,
    audience: AudienceId,
    module: Module,
}

impl Store {
    /// Applies `batches` (in any order, of any runs) and returns one result per batch, in the
    /// same order. Upsert batches of the same run and module share one transaction (see the
    /// module documentation); every batch is applied exactly once either way.
    pub async fn apply_batches<B: Borrow<ApplyBatch> + Sync>(
        &self,
        batches: &[B],
    ) -> Vec<Result<ApplyOutcome, StoreError>> {
        let batches: Vec<&ApplyBatch> = batches.iter().map(Borrow::borrow).collect();
        let mut results: Vec<Option<Result<ApplyOutcome, StoreError>>> =
            batches.iter().map(|_| None).collect();
        let mut groups: BTreeMap<GroupKey, Vec<usize>> = BTreeMap::new();
        for (index, batch) in batches.iter().enumerate() {
            if batch.kind == BatchKind::Upsert {
                groups.entry(key_of(batch)).or_default().push(index);
            } else {
                results[index] = Some(self.apply_batch(batch).await);
            }
        }
        for (_, mut indices) in groups {
            indices.sort_by_key(|&i| batches[i].seq);
            if let [only] = indices[..] {
                results[only] = Some(self.apply_batch(batches[only]).await);
                continue;
            }
            let group: Vec<&ApplyBatch> = indices.iter().map(|&i| batches[i]).collect();
            match self.apply_group(&group).await {
                Ok(outcomes) => {
                    for (index, outcome) in indices.iter().zip(outcomes) {
                        results[*index] = Some(Ok(outcome));
                    }
                }
                Err(error) if error.is_retryable() => {
                    for index in &indices[1..] {
                        results[*index] = error.retryable_copy().map(Err);
                    }
                    results[indices[0]] = Some(Err(error));
                }
                Err(error) => {
                    tracing::warn!(%error, batches = indices.len(),
                        "a group of batches failed for good; applying them one by one");
                    for index in indices {
                        results[index] = Some(self.apply_batch(batches[index]).await);
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| {
                    Err(StoreError::corrupt("a batch was left out of its group"))
                })
            })
            .collect()
    }

    /// One group of upsert batches sharing a [`GroupKey`], sorted by seq.
    #[tracing::instrument(name = "store.apply_group", skip_all, err, fields(
        run_id = %group[0].run_id, module = %group[0].module, batches = group.len(),
        records = group.iter().map(|b| b.records()).sum::<u32>()))]
    async fn apply_group(&self, group: &[&ApplyBatch]) -> Result<Vec<ApplyOutcome>, StoreError> {
        for batch in group {
            batch.check_shape()?;
        }
        let started = Instant::now();
        let (integration, module) = (group[0].integration_id, group[0].module);
        let mut lookup = self.novelty.lookup(integration, module);
        let mut attempt = 1;
        let mut outcomes = loop {
            match self.apply_group_once(group, lookup).await {
                Err(error)
                    if lookup == SourceLookup::AssumeNew && sources::is_existing_source(&error) =>
                {
                    lookup = self.novelty.failed(integration, module);
                }
                Err(error) if error.is_contention() && attempt < MAX_ATTEMPTS => {
                    metrics::counter!("pledgesync_store_apply_retries_total").increment(1);
                    tracing::debug!(%error, attempt, "group transaction hit contention; retrying");
                    tokio::time::sleep(crate::apply::backoff(attempt)).await;
                    attempt += 1;
                }
                other => break other?,
            }
        };
        // One completion check for the run, reported by one batch so that it is counted once.
        if !outcomes
            .iter()
            .any(|o| matches!(o, ApplyOutcome::Discarded { .. }))
        {
            let completed = self.try_complete_run(group[0].run_id).await?;
            let reporter = outcomes
                .iter()
                .position(|o| matches!(o, ApplyOutcome::Applied(_)))
                .unwrap_or(0);
            match &mut outcomes[reporter] {
                ApplyOutcome::Applied(counts) => counts.run_completed = completed,
                ApplyOutcome::AlreadyApplied { run_completed } => *run_completed = completed,
                ApplyOutcome::Discarded { .. } => {}
            }
        }
        for outcome in &outcomes {
            let label = match outcome {
                ApplyOutcome::Applied(counts) => {
                    metrics::counter!("pledgesync_store_members_applied_total")
                        .increment(u64::from(counts.applied));
                    metrics::counter!("pledgesync_store_members_removed_total")
                        .increment(u64::from(counts.deleted));
                    "applied"
                }
                ApplyOutcome::AlreadyApplied { .. } => "already_applied",
                ApplyOutcome::Discarded { .. } => "discarded",
            };
            metrics::counter!("pledgesync_store_batches_total", "outcome" => label).increment(1);
        }
        metrics::histogram!("pledgesync_store_apply_group_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("pledgesync_store_apply_group_batches").record(group.len() as f64);
        Ok(outcomes)
    }

    async fn apply_group_once(
        &self,
        group: &[&ApplyBatch],
        lookup: SourceLookup,
    ) -> Result<Vec<ApplyOutcome>, StoreError> {
        let first = group[0];
        let mut tx = self.pool.begin().await?;
        if let Some(reason) = check_run(&mut tx, first).await? {
            tx.rollback().await?;
            return Ok(group
                .iter()
                .map(|_| ApplyOutcome::Discarded {
                    reason: reason.clone(),
                })
                .collect());
        }
        let fresh = insert_ledger_rows(&mut tx, group).await?;
        let mut outcomes: Vec<ApplyOutcome> = group
            .iter()
            .map(|_| ApplyOutcome::AlreadyApplied {
                run_completed: false,
            })
            .collect();
        if fresh.is_empty() {
            tx.rollback().await?;
            return Ok(outcomes);
        }

        let ids: Vec<&str> = fresh
            .iter()
            .flat_map(|&i| group[i].members.iter().map(|m| m.zoho_id.as_str()))
            .collect();
        let mut existing = self.existing_sources(&mut tx, first, ids, lookup).await?;
        // The rows found, before planning adds the group's own earlier versions to `existing`.
        let stored: HashSet<String> = existing.keys().cloned().collect();

        // Each batch sees the sources as the batches before it left them.
        let mut live = BTreeMap::new();
        let mut superseded: Vec<&str> = Vec::new();
        let mut candidates = Candidates::default();
        let mut candidate_owner: HashMap<(uuid::Uuid, String), usize> = HashMap::new();
        let mut upserts = Vec::new();
        let mut counts: Vec<ApplyCounts> = Vec::with_capacity(fresh.len());
        for (slot, &index) in fresh.iter().enumerate() {
            let batch = group[index];
            let planned = plan::plan(batch, &existing);
            for (id, (email, record)) in &planned.live {
                let modified_at = existing
                    .get(*id)
                    .and_then(|old| old.modified_at)
                    .map_or(record.modified_at, |old| old.max(record.modified_at));
                existing.insert(
                    (*id).to_owned(),
                    ExistingSource {
                        audience_id: batch.audience_id.0,
                        email: email.clone().into_owned(),
                        modified_at: Some(modified_at),
                        removed: false,
                        zoho_deleted_at: None,
                    },
                );
            }
            for (key, reason) in &planned.candidates.by_key {
                candidate_owner.entry(key.clone()).or_insert(slot);
                candidates.by_key.entry(key.clone()).or_insert(*reason);
            }
            upserts.extend(planned.live.values().map(|(_, record)| *record));
            superseded.extend(planned.superseded.iter().copied());
            counts.push(ApplyCounts {
                applied: planned.live.len() as u32,
                skipped: planned.skipped_by_reason.values().sum(),
                skipped_by_reason: planned.skipped_by_reason,
                ..ApplyCounts::default()
            });
            live.extend(planned.live);
        }
        superseded.sort_unstable();
        superseded.dedup();

        // Sources first, members second: the order of `crate::apply`.
        sources::upsert_sources(&mut tx, first, &live, |id| stored.contains(id)).await?;
        let merged = merge_by_email(upserts);
        lock_members(&mut tx, first.audience_id, &merged, &candidates).await?;
        upsert::upsert_members(&mut tx, first.audience_id, &merged).await?;
        sources::touch(&mut tx, first, &superseded).await?;
        for removed in remove_orphans(&mut tx, &candidates).await? {
            if let Some(&slot) = candidate_owner.get(&removed) {
                counts[slot].deleted += 1;
            }
        }
        record_counts(&mut tx, first.run_id, &fresh, group, &counts).await?;
        tx.commit().await?;
        if lookup == SourceLookup::AssumeNew {
            self.novelty.held();
        }
        for (&index, counts) in fresh.iter().zip(counts) {
            outcomes[index] = ApplyOutcome::Applied(counts);
        }
        Ok(outcomes)
    }
}

fn key_of(batch: &ApplyBatch) -> GroupKey {
    GroupKey {
        run: batch.run_id,
        integration: batch.integration_id,
        audience: batch.audience_id,
        module: batch.module,
    }
}

/// Inserts the group's ledger rows; returns the positions in `group` of the batches that were
/// not there yet (a second copy of a seq in the group counts as already there).
async fn insert_ledger_rows(
    conn: &mut PgConnection,
    group: &[&ApplyBatch],
) -> Result<Vec<usize>, StoreError> {
    let mut first_of_seq: BTreeMap<u64, usize> = BTreeMap::new();
    for (index, batch) in group.iter().enumerate() {
        first_of_seq.entry(batch.seq).or_insert(index);
    }
    let seqs: Vec<i64> = first_of_seq
        .keys()
        .map(|&seq| to_i64(seq, "seq"))
        .collect::<Result<_, _>>()?;
    let records: Vec<i32> = first_of_seq
        .values()
        .map(|&i| group[i].records() as i32)
        .collect();
    let inserted: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO run_batches (run_id, seq, module, kind, records) \
         SELECT $1, b.seq, $2, 'upsert', b.records FROM unnest($3::bigint[], $4::int[]) AS b(seq, records) \
         ORDER BY b.seq ON CONFLICT (run_id, seq) DO NOTHING RETURNING seq",
    )
    .bind(group[0].run_id.0)
    .bind(group[0].module.api_name())
    .bind(seqs)
    .bind(records)
    .fetch_all(conn)
    .await?;
    let mut fresh: Vec<usize> = inserted
        .into_iter()
        .filter_map(|seq| u64::try_from(seq).ok())
        .filter_map(|seq| first_of_seq.get(&seq).copied())
        .collect();
    fresh.sort_by_key(|&i| group[i].seq);
    Ok(fresh)
}

/// Writes each fresh batch's counts into its ledger row, in one statement, reaching the rows one
/// key at a time (see [`crate::apply`], "Reaching rows by key").
async fn record_counts(
    conn: &mut PgConnection,
    run: RunId,
    fresh: &[usize],
    group: &[&ApplyBatch],
    counts: &[ApplyCounts],
) -> Result<(), StoreError> {
    let seqs: Vec<i64> = fresh
        .iter()
        .map(|&i| to_i64(group[i].seq, "seq"))
        .collect::<Result<_, _>>()?;
    let reasons: Vec<serde_json::Value> = counts
        .iter()
        .map(|c| serde_json::to_value(&c.skipped_by_reason))
        .collect::<Result<_, _>>()
        .map_err(|e| StoreError::Rejected(format!("skip reasons cannot be stored: {e}")))?;
    let expected = seqs.len() as u64;
    let written = sqlx::query(
        "WITH target AS MATERIALIZED ( \
           SELECT x.row_id, c.* FROM unnest($2::bigint[], $3::int[], $4::int[], $5::jsonb[], $6::int[]) \
             AS c(seq, applied, skipped, reasons, deleted) \
           CROSS JOIN LATERAL (SELECT b.ctid AS row_id FROM run_batches b \
             WHERE b.run_id = $1 AND b.seq = c.seq LIMIT 1) x) \
         UPDATE run_batches b SET applied = target.applied, skipped = target.skipped, \
           skipped_by_reason = target.reasons, deleted = target.deleted \
         FROM target WHERE b.ctid = target.row_id",
    )
    .bind(run.0)
    .bind(seqs)
    .bind(counts.iter().map(|c| c.applied as i32).collect::<Vec<_>>())
    .bind(counts.iter().map(|c| c.skipped as i32).collect::<Vec<_>>())
    .bind(reasons)
    .bind(counts.iter().map(|c| c.deleted as i32).collect::<Vec<_>>())
    .execute(conn)
    .await?
    .rows_affected();
    if written != expected {
        // The ledger rows were inserted by this transaction; one not found means something else
        // changed them: retry rather than leave counts unwritten.
        return Err(StoreError::Contention {
            code: crate::sources::ROW_MOVED.to_owned(),
            source: None,
        });
    }
    Ok(())
}
