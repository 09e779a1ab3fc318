//! Member sources inside a batch's transaction: which Zoho record of which integration brought
//! which member, whether an incoming version is newer than the one applied, and deletions.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use pledgesync_core::{IntegrationId, Module};
use sqlx::{PgConnection, Row};

use crate::apply::{ApplyBatch, SourceDeletion};
use crate::error::{constraint, sqlstate, StoreError};
use crate::members::{MemberUpsert, REMOVED_DELETED_IN_ZOHO};

/// A source row as it was before the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExistingSource {
    pub(crate) audience_id: uuid::Uuid,
    pub(crate) email: String,
    pub(crate) modified_at: Option<DateTime<Utc>>,
    pub(crate) removed: bool,
    pub(crate) zoho_deleted_at: Option<DateTime<Utc>>,
}

/// What an incoming version of a record may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Write it: it is new, as new as or newer than what was applied, or it came back after a
    /// deletion with a newer Modified_Time.
    Live,
    /// Leave it: a newer version (or a later deletion) was already applied. `seen` says the
    /// source is live, so the run still saw the record.
    Stale { seen: bool },
}

/// Newest wins, for existence too: a record comes back after a deletion only with a version
/// modified after it.
pub(crate) fn decide(existing: Option<&ExistingSource>, modified_at: DateTime<Utc>) -> Decision {
    match existing {
        None => Decision::Live,
        Some(old) if old.removed => match old.zoho_deleted_at.or(old.modified_at) {
            Some(gone) if modified_at <= gone => Decision::Stale { seen: false },
            _ => Decision::Live,
        },
        Some(old) => match old.modified_at {
            Some(applied) if modified_at < applied => Decision::Stale { seen: true },
            _ => Decision::Live,
        },
    }
}

/// Locks the integration's existing source rows for these records, in id order, and returns them.
///
/// One primary-key lookup per id, in the order of the sorted array: written as a join, the
/// planner may hash-join against every source of the integration (it did, before the table had
/// statistics: 134 ms per 200-record batch at 28k sources), and a join's lock order is the
/// plan's, not the ids'. The `LIMIT 1` keeps the subquery from being flattened into a join.
pub(crate) async fn lock_existing(
    conn: &mut PgConnection,
    integration: IntegrationId,
    module: Module,
    mut ids: Vec<&str>,
) -> Result<HashMap<String, ExistingSource>, StoreError> {
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(
        "SELECT s.zoho_id, s.audience_id, s.email, s.modified_at, s.removed, s.zoho_deleted_at \
         FROM unnest($3::text[]) AS k(zoho_id) CROSS JOIN LATERAL ( \
           SELECT zoho_id, audience_id, email, modified_at, removed_at IS NOT NULL AS removed, zoho_deleted_at \
           FROM member_sources WHERE integration_id = $1 AND zoho_module = $2 AND zoho_id = k.zoho_id \
           LIMIT 1 FOR UPDATE) s",
    )
    .bind(integration.0)
    .bind(module.api_name())
    .bind(ids)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("zoho_id")?,
                ExistingSource {
                    audience_id: row.try_get("audience_id")?,
                    email: row.try_get("email")?,
                    modified_at: row.try_get("modified_at")?,
                    removed: row.try_get("removed")?,
                    zoho_deleted_at: row.try_get("zoho_deleted_at")?,
                },
            ))
        })
        .collect()
}

/// Writes the live records' sources (in id order): the audience and email they now bring, the
/// version applied, and that this run saw them. A removed source comes back.
///
/// `stored` says which ids [`lock_existing`] found (none, when the transaction assumes its
/// records new: see [`crate::novelty`]): those rows are locked by this transaction and are
/// updated; the others are inserted without `ON CONFLICT`, which fails if one exists after all.
/// Besides sparing PostgreSQL an arbiter lookup per row, this is what keeps newest-wins exact
/// when two transactions bring the same new record at once (the same record on two pages of a
/// run, applied by two commit workers): an upsert would let the later commit overwrite the
/// other's version whichever is newer, whereas the plain insert waits for the other transaction
/// and then fails as contention, and the retry plans against the row the other one wrote.
pub(crate) async fn upsert_sources(
    conn: &mut PgConnection,
    batch: &ApplyBatch,
    live: &BTreeMap<&str, (Cow<'_, str>, &MemberUpsert)>,
    stored: impl Fn(&str) -> bool,
) -> Result<(), StoreError> {
    let (updates, inserts): (Vec<_>, Vec<_>) = live.iter().partition(|(id, _)| stored(id));
    if !updates.is_empty() {
        let updated = write(conn, UPDATE_SOURCES_SQL, batch, &updates).await?;
        if updated != updates.len() as u64 {
            // Each of these rows was locked by this transaction; one that moved means that lock is
            // missing: retry the transaction rather than lose the update.
            return Err(StoreError::Contention {
                code: ROW_MOVED.to_owned(),
                source: None,
            });
        }
    }
    if !inserts.is_empty() {
        write(conn, INSERT_SOURCES_SQL, batch, &inserts)
            .await
            .map_err(|error| {
                if constraint(&error) == Some(SOURCES_KEY) {
                    StoreError::Contention {
                        code: sqlstate(&error).unwrap_or_default(),
                        source: Some(error),
                    }
                } else {
                    StoreError::from(error)
                }
            })?;
    }
    Ok(())
}

/// Brings sources this transaction locked up to date; `$1`..`$7` as in [`write`]. Rows are
/// reached one key at a time (see [`crate::apply`], "Reaching rows by key").
const UPDATE_SOURCES_SQL: &str = "\
WITH target AS MATERIALIZED ( \
    SELECT x.row_id, t.email, t.modified_at \
    FROM unnest($5::text[], $6::text[], $7::timestamptz[]) AS t(zoho_id, email, modified_at) \
    CROSS JOIN LATERAL (SELECT s.ctid AS row_id FROM member_sources s \
        WHERE s.integration_id = $1 AND s.zoho_module = $2 AND s.zoho_id = t.zoho_id LIMIT 1) x) \
UPDATE member_sources s SET audience_id = $3, email = target.email, \
    modified_at = GREATEST(s.modified_at, target.modified_at), last_seen_run_id = $4, \
    removed_at = NULL, removed_reason = NULL, zoho_deleted_at = NULL \
FROM target WHERE s.ctid = target.row_id";

/// Creates sources no transaction had; `$1`..`$7` as in [`write`].
const INSERT_SOURCES_SQL: &str = "\
INSERT INTO member_sources (integration_id, zoho_module, zoho_id, audience_id, email, modified_at, \
    last_seen_run_id) \
SELECT $1, $2, t.zoho_id, $3, t.email, t.modified_at, $4 \
FROM unnest($5::text[], $6::text[], $7::timestamptz[]) AS t(zoho_id, email, modified_at) \
ORDER BY t.zoho_id COLLATE \"C\"";

/// Whether `error` is the insert of new sources meeting one that exists, or that another
/// transaction is creating: what proves a transaction's [`SourceLookup::AssumeNew`] wrong.
///
/// [`SourceLookup::AssumeNew`]: crate::novelty::SourceLookup::AssumeNew
pub(crate) fn is_existing_source(error: &StoreError) -> bool {
    matches!(error, StoreError::Contention { source: Some(e), .. } if constraint(e) == Some(SOURCES_KEY))
}

/// The code of [`StoreError::Contention`] when a row this transaction had locked was not where
/// its lock found it (see [`crate::apply`], "Reaching rows by key").
pub(crate) const ROW_MOVED: &str = "row_moved";

/// The primary key a concurrent insert of the same record violates.
const SOURCES_KEY: &str = "member_sources_pkey";

/// Runs `sql` over `rows` with the batch's integration, module, audience and run as `$1`..`$4`
/// and the rows' ids, emails and Modified_Times as the arrays `$5`..`$7`.
async fn write(
    conn: &mut PgConnection,
    sql: &'static str,
    batch: &ApplyBatch,
    rows: &[(&&str, &(Cow<'_, str>, &MemberUpsert))],
) -> Result<u64, sqlx::Error> {
    let ids: Vec<&str> = rows.iter().map(|(id, _)| **id).collect();
    let emails: Vec<&str> = rows.iter().map(|(_, (email, _))| email.as_ref()).collect();
    let modified: Vec<DateTime<Utc>> = rows.iter().map(|(_, (_, r))| r.modified_at).collect();
    sqlx::query(sql)
        .bind(batch.integration_id.0)
        .bind(batch.module.api_name())
        .bind(batch.audience_id.0)
        .bind(batch.run_id.0)
        .bind(ids)
        .bind(emails)
        .bind(modified)
        .execute(conn)
        .await
        .map(|done| done.rows_affected())
}

/// Records that this run saw records whose newer version was already applied, so a full run's
/// deletion check does not take them for missing. Rows are reached one key at a time (see
/// [`crate::apply`], "Reaching rows by key").
pub(crate) async fn touch(
    conn: &mut PgConnection,
    batch: &ApplyBatch,
    ids: &[&str],
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH target AS MATERIALIZED ( \
           SELECT x.row_id FROM unnest($4::text[]) AS k(zoho_id) \
           CROSS JOIN LATERAL (SELECT s.ctid AS row_id FROM member_sources s \
             WHERE s.integration_id = $1 AND s.zoho_module = $2 AND s.zoho_id = k.zoho_id \
               AND s.removed_at IS NULL LIMIT 1) x) \
         UPDATE member_sources s SET last_seen_run_id = $3 FROM target WHERE s.ctid = target.row_id",
    )
    .bind(batch.integration_id.0)
    .bind(batch.module.api_name())
    .bind(batch.run_id.0)
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks deleted records' sources removed. Returns how many. Rows are reached one key at a time
/// (see [`crate::apply`], "Reaching rows by key").
pub(crate) async fn remove(
    conn: &mut PgConnection,
    batch: &ApplyBatch,
    deletions: &[&SourceDeletion],
) -> Result<u32, StoreError> {
    if deletions.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = deletions.iter().map(|d| d.zoho_id.as_str()).collect();
    let times: Vec<Option<DateTime<Utc>>> = deletions.iter().map(|d| d.deleted_at).collect();
    let removed = sqlx::query(
        "WITH target AS MATERIALIZED ( \
           SELECT x.row_id, d.deleted_at FROM unnest($4::text[], $5::timestamptz[]) AS d(zoho_id, deleted_at) \
           CROSS JOIN LATERAL (SELECT s.ctid AS row_id FROM member_sources s \
             WHERE s.integration_id = $1 AND s.zoho_module = $2 AND s.zoho_id = d.zoho_id \
               AND s.removed_at IS NULL LIMIT 1) x) \
         UPDATE member_sources s SET removed_at = now(), removed_reason = $3, zoho_deleted_at = target.deleted_at \
         FROM target WHERE s.ctid = target.row_id",
    )
    .bind(batch.integration_id.0)
    .bind(batch.module.api_name())
    .bind(REMOVED_DELETED_IN_ZOHO)
    .bind(ids)
    .bind(times)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(removed as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, minute, 0)
            .single()
            .expect("time")
    }

    fn source(modified: u32, removed: bool, deleted: Option<u32>) -> ExistingSource {
        ExistingSource {
            audience_id: uuid::Uuid::nil(),
            email: "a@x.io".into(),
            modified_at: Some(at(modified)),
            removed,
            zoho_deleted_at: deleted.map(at),
        }
    }

    #[test]
    fn new_and_newer_records_are_live() {
        assert_eq!(decide(None, at(1)), Decision::Live);
        assert_eq!(decide(Some(&source(5, false, None)), at(5)), Decision::Live);
        assert_eq!(decide(Some(&source(5, false, None)), at(6)), Decision::Live);
    }

    #[test]
    fn older_records_are_stale_but_seen() {
        assert_eq!(
            decide(Some(&source(5, false, None)), at(4)),
            Decision::Stale { seen: true }
        );
    }

    #[test]
    fn deleted_records_come_back_only_when_modified_after_the_deletion() {
        assert_eq!(
            decide(Some(&source(5, true, Some(9))), at(8)),
            Decision::Stale { seen: false }
        );
        assert_eq!(
            decide(Some(&source(5, true, Some(9))), at(10)),
            Decision::Live
        );
        assert_eq!(
            decide(Some(&source(5, true, None)), at(5)),
            Decision::Stale { seen: false }
        );
        assert_eq!(decide(Some(&source(5, true, None)), at(6)), Decision::Live);
    }
}
