//! Where a run's time went, from the database's own timestamps: how long Sync Now took to reach
//! the first applied batch (the head), how long the last applied batch took to become the run's
//! end (the tail), and the rate of applied batches in between.

use sqlx::{Connection as _, PgConnection};

use crate::error::Result;

/// A run's time, split at its first and last applied batch.
#[derive(Clone, Debug)]
pub struct Timeline {
    /// Sync Now to a fetcher taking the job, in seconds.
    pub pickup: f64,
    /// Sync Now to the first applied batch, in seconds.
    pub head: f64,
    /// The last applied batch to the run's end, in seconds.
    pub tail: f64,
    /// Applied batches per tenth of a second from Sync Now on.
    pub per_decisecond: Vec<u32>,
}

/// Reads the timeline of run `run_id` in the database at `url`.
pub async fn read(url: &str, run_id: &str) -> Result<Timeline> {
    let mut connection = PgConnection::connect(url).await?;
    let (pickup, head, tail): (f64, f64, f64) = sqlx::query_as(
        "SELECT extract(epoch FROM r.started_at - r.created_at)::float8,
                extract(epoch FROM min(b.applied_at) - r.created_at)::float8,
                extract(epoch FROM r.finished_at - max(b.applied_at))::float8
         FROM sync_runs r JOIN run_batches b ON b.run_id = r.id
         WHERE r.id = $1::uuid
         GROUP BY r.id",
    )
    .bind(run_id)
    .fetch_one(&mut connection)
    .await?;
    let buckets: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT floor(extract(epoch FROM b.applied_at - r.created_at) * 10)::int4, count(*)
         FROM sync_runs r JOIN run_batches b ON b.run_id = r.id
         WHERE r.id = $1::uuid
         GROUP BY 1 ORDER BY 1",
    )
    .bind(run_id)
    .fetch_all(&mut connection)
    .await?;
    connection.close().await?;
    // Buckets are never negative (both timestamps come from PostgreSQL's clock, the batch's
    // after the run's); one that were would be left out rather than sized into the vector.
    let len = buckets
        .last()
        .and_then(|(b, _)| usize::try_from(*b).ok())
        .map_or(0, |b| b + 1);
    let mut per_decisecond = vec![0; len];
    for (bucket, count) in buckets {
        if let Some(slot) = usize::try_from(bucket)
            .ok()
            .and_then(|b| per_decisecond.get_mut(b))
        {
            *slot = u32::try_from(count).unwrap_or(u32::MAX);
        }
    }
    Ok(Timeline {
        pickup,
        head,
        tail,
        per_decisecond,
    })
}
