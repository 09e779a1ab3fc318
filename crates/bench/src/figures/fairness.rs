//! Figure 5: small integrations' Sync Now while one big integration syncs, against the same
//! small runs on the idle system.

use std::time::Duration;

use futures::future::try_join_all;

use crate::binaries::Binaries;
use crate::error::{BenchError, Result};
use crate::figures::{run_seconds, run_timeout, Plan};
use crate::report::{Recorder, Unit};
use crate::stats::{percentile, ratio};
use crate::system::{System, SystemOptions};
use crate::wait;

/// The small runs' times come from their own timestamps, so polling them slowly costs no
/// precision and keeps the harness's load on the scheduler low.
const POLL: Duration = Duration::from_millis(200);
/// Batches of the big run applied before the loaded rounds start: the pipeline is full.
const BIG_WARM_BATCHES: u64 = 5;

pub(super) async fn run(plan: &Plan, binaries: &Binaries, out: &Recorder) -> Result<()> {
    let system = System::start(
        binaries,
        "fairness",
        SystemOptions::contacts(plan.fairness_big),
    )
    .await?;
    let big = system.connect("bench-big", None).await?;
    let mut smalls = Vec::new();
    for i in 0..plan.fairness_small_count {
        let org = system
            .emulator
            .create_org(plan.fairness_small_contacts, 2000 + i as u64)
            .await?;
        smalls.push(
            system
                .connect(&format!("bench-small-{i}"), Some(&org))
                .await?
                .integration,
        );
    }
    // The first sync of each fills its audience; idle and loaded rounds then do the same work.
    round(&system, &smalls, plan).await?;
    let mut idle = Vec::new();
    for _ in 0..plan.fairness_rounds {
        idle.extend(round(&system, &smalls, plan).await?);
    }

    let big_run = system.api.sync(&big.integration, "full").await?;
    wait::until(
        "the big run to fill the pipeline",
        run_timeout(plan.fairness_big),
        POLL,
        || async {
            system.check_alive()?;
            let view = system.api.run(&big_run.id).await?;
            if view.ended() {
                return Err(BenchError::unexpected(
                    "the big run",
                    format!("ended {} before the loaded rounds", view.status),
                ));
            }
            Ok((view.counters.batches_applied >= BIG_WARM_BATCHES).then_some(()))
        },
    )
    .await?;
    let mut loaded = Vec::new();
    for i in 0..plan.fairness_rounds {
        let samples = round(&system, &smalls, plan).await?;
        let view = system.api.run(&big_run.id).await?;
        if view.ended() {
            out.note(format!(
                "the big run ended ({}) during loaded round {}; that round is left out",
                view.status,
                i + 1
            ));
            break;
        }
        loaded.extend(samples);
    }
    if loaded.is_empty() {
        return Err(BenchError::unexpected(
            "the loaded rounds",
            "the big run ended before one round of small runs completed under load",
        ));
    }
    let big_view = system.api.run(&big_run.id).await?;

    out.line("fairness_idle_samples", idle.len() as f64, Unit::Count);
    out.line("fairness_loaded_samples", loaded.len() as f64, Unit::Count);
    let idle_p50 = out.maybe(
        "fairness_idle_p50_s",
        percentile(&idle, 50.0),
        Unit::Seconds,
    )?;
    let idle_p99 = out.maybe(
        "fairness_idle_p99_s",
        percentile(&idle, 99.0),
        Unit::Seconds,
    )?;
    let loaded_p50 = out.maybe(
        "fairness_loaded_p50_s",
        percentile(&loaded, 50.0),
        Unit::Seconds,
    )?;
    let loaded_p99 = out.maybe(
        "fairness_loaded_p99_s",
        percentile(&loaded, 99.0),
        Unit::Seconds,
    )?;
    out.maybe(
        "fairness_p50_vs_idle_ratio",
        ratio(loaded_p50, idle_p50),
        Unit::Ratio,
    )?;
    out.maybe(
        "fairness_p99_vs_idle_ratio",
        ratio(loaded_p99, idle_p99),
        Unit::Ratio,
    )?;
    out.line(
        "fairness_big_run_fetched",
        big_view.counters.fetched as f64,
        Unit::Count,
    );
    system.stop().await;
    Ok(())
}

/// Presses Sync Now (full) on every small integration at once and returns each run's time,
/// Sync Now to finish.
async fn round(system: &System, smalls: &[String], plan: &Plan) -> Result<Vec<f64>> {
    try_join_all(smalls.iter().map(|id| async move {
        let run = system.api.sync(id, "full").await?;
        let view = system
            .wait_for_end(&run.id, run_timeout(plan.fairness_small_contacts), POLL)
            .await?
            .succeeded()?;
        run_seconds(&view)
    }))
    .await
}

pub(super) fn method(plan: &Plan) -> String {
    let fetch_defaults = pledgesync_fetcher::settings::FetchSettings::default();
    format!(
        "A fresh system (one fetcher, one sink, production defaults: slices of {slice} pages, K = {k} batches in \
         flight per run). One integration on an org of {big} contacts and {n} integrations each on its own org \
         of {small} contacts, all reading Contacts. Each small integration is synced once (unmeasured). Idle: \
         {rounds} rounds, each pressing Sync Now (full) on all {n} small integrations at once and waiting for all \
         to end. Loaded: Sync Now (full) on the big integration, wait until {warm} of its batches are applied, \
         then the same {rounds} rounds; a round counts only if the big run was still going when it ended. A \
         sample is one small run's Sync Now (`created_at`) to `finished_at`. Percentiles are nearest-rank; \
         `fairness_p99_vs_idle_ratio` is the loaded p99 over the idle p99 (likewise p50).",
        big = plan.fairness_big,
        n = plan.fairness_small_count,
        small = plan.fairness_small_contacts,
        rounds = plan.fairness_rounds,
        warm = BIG_WARM_BATCHES,
        slice = fetch_defaults.slice_pages,
        k = fetch_defaults.max_outstanding_batches,
    )
}
