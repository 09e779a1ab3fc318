//! Back-pressure: at most K batches of a run published but not yet applied.
//!
//! Before each publish the fetcher compares the run's `batches_published` with its ledger of
//! applied batches; at K or more it polls (a cheap indexed count) until the sink catches up, the
//! slice runs out, the run stops, or shutdown is requested. Memory and queue depth stay bounded
//! however large the CRM is. While the sink is seen applying, the fetcher keeps looking soon;
//! only looks that find no progress space out, so a drain before the deletion sweep (wait until
//! everything is applied) ends within a short pause or two of the last batch, not a long one.
//!
//! A fetcher that waits commits no checkpoint, so it refreshes the run's heartbeat every
//! [`HEARTBEAT_EVERY`] while it waits: the scheduler's stale-run watchdog must not fail a run whose
//! fetcher is alive and merely waiting for slow sinks.

use std::time::Duration;

use pledgesync_core::shutdown::Shutdown;
use pledgesync_core::RunId;
use tokio::time::Instant;

use crate::error::FetchError;
use crate::ports::Ports;
use crate::telemetry;

/// First and largest pause between two looks at the ledger.
/// A group-committing sink frees room in bursts every few tens of milliseconds, so the first
/// looks come soon, and again after every look that saw batches applied; a sink that applies
/// nothing (far behind, or stopped) is looked at less and less often.
const POLL_FIRST: Duration = Duration::from_millis(10);
const POLL_MAX: Duration = Duration::from_millis(200);
/// How often a waiting fetcher refreshes the run's heartbeat: one cheap update a minute, far
/// inside the watchdog's threshold (`schedule.stale_run_secs`, at least 15 minutes).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(60);

/// Why waiting ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Room {
    /// Fewer than the limit are in flight: publish. `applied` is the ledger's count at that look:
    /// a lower bound from then on, because the ledger only grows.
    Free { applied: u64 },
    /// The slice's time ran out first: hand the run on.
    SliceOver,
    /// Shutdown was requested: hand the run on.
    Shutdown,
    /// The run is no longer running (cancelled, failed by someone else).
    Stopped,
}

/// Waits until fewer than `limit` batches of `run` are in flight. `limit` 1 waits until every
/// published batch is applied.
pub async fn wait_for_room<P: Ports>(
    ports: &P,
    run: RunId,
    published: u64,
    limit: u64,
    deadline: Instant,
    shutdown: &Shutdown,
) -> Result<Room, FetchError> {
    let mut pause = POLL_FIRST;
    let mut applied_before: Option<u64> = None;
    let mut waited_since: Option<Instant> = None;
    let mut last_beat = Instant::now();
    loop {
        let outstanding = ports.outstanding(run).await?;
        // The caller may have published batches its last commit does not count yet.
        let in_flight = outstanding
            .published
            .max(published)
            .saturating_sub(outstanding.applied);
        if waited_since.is_none() {
            telemetry::batches_outstanding(in_flight);
        }
        if !outstanding.running {
            return Ok(finish(Room::Stopped, waited_since));
        }
        if in_flight < limit {
            return Ok(finish(
                Room::Free {
                    applied: outstanding.applied,
                },
                waited_since,
            ));
        }
        if waited_since.is_none() {
            waited_since = Some(Instant::now());
            tracing::debug!(%run, in_flight = in_flight, limit, "waiting for the sink");
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(finish(Room::SliceOver, waited_since));
        }
        if now.duration_since(last_beat) >= HEARTBEAT_EVERY {
            ports.heartbeat(run).await?;
            last_beat = now;
        }
        pause = next_pause(pause, applied_before, outstanding.applied);
        applied_before = Some(outstanding.applied);
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(finish(Room::Shutdown, waited_since)),
            _ = tokio::time::sleep(pause.min(deadline - now)) => {}
        }
    }
}

/// The pause before the next look: the first one again if the sink applied batches since the
/// previous look, twice the last one (up to [`POLL_MAX`]) if it did not.
fn next_pause(last: Duration, applied_before: Option<u64>, applied_now: u64) -> Duration {
    match applied_before {
        None => POLL_FIRST,
        Some(before) if applied_now > before => POLL_FIRST,
        Some(_) => (last * 2).min(POLL_MAX),
    }
}

/// Counts a wait that happened, however it ended.
fn finish(room: Room, waited_since: Option<Instant>) -> Room {
    if let Some(since) = waited_since {
        telemetry::backpressure_waited(since.elapsed());
    }
    room
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Fake;
    use pledgesync_core::messages::SyncMode;

    #[tokio::test(start_paused = true)]
    async fn a_long_wait_keeps_the_run_alive_with_a_heartbeat_a_minute() {
        let fake = Fake::new(SyncMode::Full, 0, 0, 10);
        let run = {
            let mut state = fake.lock();
            state.run.phase = crate::ports::RunPhase::Running;
            state.run.published = 3;
            state.run.id
        };
        // The sink applies nothing: the wait lasts the whole slice of 200 s.
        let deadline = Instant::now() + Duration::from_secs(200);
        let room = wait_for_room(&fake, run, 0, 3, deadline, &Shutdown::new())
            .await
            .expect("wait");
        assert_eq!(room, Room::SliceOver);
        assert_eq!(fake.lock().heartbeats, 3, "at 60, 120 and 180 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_ends_soon_after_the_last_batch_while_the_sink_is_moving() {
        let fake = std::sync::Arc::new(Fake::new(SyncMode::Full, 0, 0, 10));
        let run = {
            let mut state = fake.lock();
            state.run.phase = crate::ports::RunPhase::Running;
            state.run.published = 12;
            state.run.id
        };
        // The sink applies one batch every 15 ms; the last at 180 ms.
        let sink = {
            let fake = fake.clone();
            tokio::spawn(async move {
                for seq in 0..12 {
                    tokio::time::sleep(Duration::from_millis(15)).await;
                    fake.lock().applied.insert(seq);
                }
            })
        };
        let started = Instant::now();
        let deadline = started + Duration::from_secs(30);
        let room = wait_for_room(&*fake, run, 12, 1, deadline, &Shutdown::new())
            .await
            .expect("wait");
        assert_eq!(room, Room::Free { applied: 12 });
        let waited = started.elapsed();
        // Pauses doubling regardless of progress would have looked at 150 ms, then at 310; here
        // a look that finds nothing new between two batches waits two pauses at most.
        assert!(
            waited <= Duration::from_millis(180) + 2 * POLL_FIRST,
            "the drain ended {waited:?} after it began"
        );
        sink.await.expect("sink");
    }

    #[test]
    fn pauses_grow_only_while_nothing_is_applied() {
        assert_eq!(next_pause(POLL_FIRST, None, 3), POLL_FIRST);
        assert_eq!(next_pause(POLL_FIRST, Some(3), 3), POLL_FIRST * 2);
        assert_eq!(next_pause(POLL_FIRST * 8, Some(3), 4), POLL_FIRST);
        assert_eq!(next_pause(POLL_MAX, Some(3), 3), POLL_MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_wait_sends_no_heartbeat() {
        let fake = Fake::new(SyncMode::Full, 0, 0, 10);
        let run = {
            let mut state = fake.lock();
            state.run.phase = crate::ports::RunPhase::Running;
            state.run.published = 3;
            state.run.id
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let room = wait_for_room(&fake, run, 0, 3, deadline, &Shutdown::new())
            .await
            .expect("wait");
        assert_eq!(room, Room::SliceOver);
        assert_eq!(fake.lock().heartbeats, 0);
    }
}
