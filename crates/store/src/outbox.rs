//! The transactional outbox: jobs written with their run, published by a relay.
//!
//! The relay calls [`Store::fetch_unpublished`], which locks a batch of unpublished rows
//! (`FOR UPDATE SKIP LOCKED`) inside a transaction the relay holds while it publishes each with a
//! broker confirm; then it marks them published and commits. Two relays therefore never publish
//! one row twice in normal operation; a relay that crashes after publishing but before committing
//! leaves the rows to be published again (at least once: the fetcher is idempotent by checkpoint).
//! The server ends a transaction left idle for 5 minutes, so a relay should claim what it can
//! publish well within that (tens to hundreds of rows).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use pledgesync_core::RunId;
use sqlx::postgres::{PgListener, PgRow};
use sqlx::{Postgres, Row, Transaction};

use crate::db::Store;
use crate::error::StoreError;

/// The channel notified (`NOTIFY`) when a job is written, so a relay can wake at once instead of
/// waiting for its next poll.
pub const OUTBOX_CHANNEL: &str = "pledgesync_outbox";

/// One unpublished message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRow {
    /// Its id; publish order follows it.
    pub id: i64,
    /// The run whose job it is, if any.
    pub run_id: Option<RunId>,
    /// The queue (routing key) to publish to.
    pub queue: String,
    /// The body to publish.
    pub payload: Vec<u8>,
    /// AMQP headers to publish with (e.g. `traceparent`).
    pub headers: BTreeMap<String, String>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Earlier publish attempts that failed.
    pub attempts: u32,
}

impl OutboxRow {
    fn from_row(row: &PgRow) -> Result<Self, StoreError> {
        let headers: serde_json::Value = row.try_get("headers")?;
        let attempts: i32 = row.try_get("attempts")?;
        Ok(OutboxRow {
            id: row.try_get("id")?,
            run_id: row.try_get::<Option<uuid::Uuid>, _>("run_id")?.map(RunId),
            queue: row.try_get("queue")?,
            payload: row.try_get("payload")?,
            headers: serde_json::from_value(headers)
                .map_err(|e| StoreError::corrupt(format!("outbox.headers: {e}")))?,
            created_at: row.try_get("created_at")?,
            attempts: u32::try_from(attempts).unwrap_or(0),
        })
    }
}

/// A batch of outbox rows locked for this relay until [`OutboxClaim::commit`] or
/// [`OutboxClaim::release`]. Dropping it also releases the rows, but only once the pool gets to
/// roll the transaction back, so prefer `release` when giving up (e.g. the broker is down).
pub struct OutboxClaim {
    tx: Transaction<'static, Postgres>,
    rows: Vec<OutboxRow>,
}

impl fmt::Debug for OutboxClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxClaim")
            .field("rows", &self.rows.len())
            .finish()
    }
}

impl OutboxClaim {
    /// The claimed messages, oldest first.
    pub fn messages(&self) -> &[OutboxRow] {
        &self.rows
    }

    /// Whether nothing was waiting.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Marks rows the broker confirmed as published (effective on commit).
    pub async fn mark_published(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET published_at = now() WHERE id = ANY($1) AND published_at IS NULL",
        )
        .bind(ids)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Counts a failed publish attempt on rows (effective on commit); they stay unpublished.
    pub async fn mark_failed(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1 WHERE id = ANY($1) AND published_at IS NULL",
        )
        .bind(ids)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Commits the marks and releases the rows.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Rolls back (discarding any marks) and releases the rows at once for the next claim.
    pub async fn release(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}

impl Store {
    /// Claims up to `limit` unpublished outbox rows, oldest first, skipping rows another relay
    /// holds. Publish them, mark them, then [`OutboxClaim::commit`].
    pub async fn fetch_unpublished(&self, limit: u32) -> Result<OutboxClaim, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT id, run_id, queue, payload, headers, created_at, attempts FROM outbox \
             WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(i64::from(limit.max(1)))
        .fetch_all(&mut *tx)
        .await?;
        let rows = rows
            .iter()
            .map(OutboxRow::from_row)
            .collect::<Result<_, _>>()?;
        Ok(OutboxClaim { tx, rows })
    }

    /// A listener subscribed to [`OUTBOX_CHANNEL`]: `recv()` returns when a job was written.
    pub async fn listen_outbox(&self) -> Result<PgListener, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(OUTBOX_CHANNEL).await?;
        Ok(listener)
    }

    /// How many messages wait to be published (for a gauge and for alerts).
    pub async fn unpublished_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Deletes rows published longer ago than `older_than`, so the table stays small.
    pub async fn purge_published(&self, older_than: Duration) -> Result<u64, StoreError> {
        let secs = older_than.as_secs_f64();
        let deleted = sqlx::query(
            "DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < now() - make_interval(secs => $1)",
        )
        .bind(secs)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(deleted)
    }
}
