//! Back-pressure: at most K batches of a run published but not yet applied.
//!
//! Before each publish the fetcher compares the run's `batches_published` with its ledger of
//! applied batches; at K or more it polls (a cheap indexed count) until the sink catches up, the
//! slice runs out, the run stops, or shutdown is requested. Memory and queue depth stay bounded
//! however large the CRM is.

use std::time::Duration;

use pledgesync_core::shutdown::Shutdown;
use pledgesync_core::RunId;
use tokio::time::Instant;

use crate::error::FetchError;
use crate::ports::Ports;
use crate::telemetry;

/// First and largest pause between two looks at the ledger.
const POLL_FIRST: Duration = Duration::from_millis(50);
const POLL_MAX: Duration = Duration::from_millis(500);

/// Why waiting ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Room {
    /// Fewer than the limit are in flight: publish.
    Free,
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
    limit: u64,
    deadline: Instant,
    shutdown: &Shutdown,
) -> Result<Room, FetchError> {
    let mut pause = POLL_FIRST;
    let mut waited_since: Option<Instant> = None;
    loop {
        let outstanding = ports.outstanding(run).await?;
        if waited_since.is_none() {
            telemetry::batches_outstanding(outstanding.in_flight());
        }
        if !outstanding.running {
            return Ok(finish(Room::Stopped, waited_since));
        }
        if outstanding.in_flight() < limit {
            return Ok(finish(Room::Free, waited_since));
        }
        if waited_since.is_none() {
            waited_since = Some(Instant::now());
            tracing::debug!(%run, in_flight = outstanding.in_flight(), limit, "waiting for the sink");
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(finish(Room::SliceOver, waited_since));
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(finish(Room::Shutdown, waited_since)),
            _ = tokio::time::sleep(pause.min(deadline - now)) => {}
        }
        pause = (pause * 2).min(POLL_MAX);
    }
}

/// Counts a wait that happened, however it ended.
fn finish(room: Room, waited_since: Option<Instant>) -> Room {
    if let Some(since) = waited_since {
        telemetry::backpressure_waited(since.elapsed());
    }
    room
}
