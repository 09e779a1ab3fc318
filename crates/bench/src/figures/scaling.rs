//! Figure 2: the full sync of figure 1 at three sizes: time per record, and each worker's peak
//! resident memory, each size on fresh processes.

use crate::binaries::Binaries;
use crate::error::{BenchError, Result};
use crate::figures::{run_seconds, run_timeout, Plan, RUN_BUDGET};
use crate::report::{Recorder, Unit};
use crate::stats::{mib, per_second, ratio};
use crate::system::{System, SystemOptions};

pub(super) async fn run(plan: &Plan, binaries: &Binaries, out: &Recorder) -> Result<()> {
    let mut per_record_us: Vec<f64> = Vec::new();
    let (mut fetcher_peak, mut sink_peak) = (0u64, 0u64);
    for n in plan.scaling_sizes {
        let system = System::start(
            binaries,
            &format!("scaling-{n}"),
            SystemOptions::contacts(n),
        )
        .await?;
        let connected = system.connect("bench-scaling", None).await?;
        let run = system.api.sync(&connected.integration, "full").await?;
        let budget = run_timeout(n).min(RUN_BUDGET);
        let ended = system.wait_for_success(&run.id, budget).await;
        // VmHWM is read before the processes stop: their peak over the whole run.
        let peaks = system.peak_rss()?;
        let fetcher = peaks.fetchers.iter().copied().max().unwrap_or(0);
        let sink = peaks.sinks.iter().copied().max().unwrap_or(0);
        let view = match ended {
            Ok(view) => view,
            Err(BenchError::Timeout { .. }) => {
                // Say how far it got and what that proves, then give up on the figure.
                let view = system.api.run(&run.id).await?;
                let done = view.counters.applied + view.counters.skipped;
                out.line(
                    format!("e2e_records_fetched_at_budget_{n}"),
                    view.counters.fetched as f64,
                    Unit::Count,
                );
                out.line(
                    format!("e2e_records_applied_at_budget_{n}"),
                    done as f64,
                    Unit::Count,
                );
                out.line(
                    format!("fetcher_peak_rss_mib_{n}"),
                    mib(fetcher),
                    Unit::Mebibytes,
                );
                out.line(format!("sink_peak_rss_mib_{n}"), mib(sink), Unit::Mebibytes);
                // The run would take longer than the budget, so its time per record is at least this.
                let floor_us = budget.as_secs_f64() * 1e6 / n as f64;
                if let Some(first) = per_record_us.first() {
                    out.maybe(
                        "time_per_record_growth_ratio_lower_bound",
                        ratio(floor_us, *first),
                        Unit::Ratio,
                    )?;
                }
                system.stop().await;
                return Err(BenchError::unexpected(
                    format!("the {n}-contact full sync"),
                    format!(
                        "had not ended after {budget:?}, the figure's time budget: {} of {n} records fetched, {done} applied or skipped",
                        view.counters.fetched
                    ),
                ));
            }
            Err(other) => return Err(other),
        };
        let seconds = run_seconds(&view)?;
        let fetched = view.counters.fetched;
        out.line(format!("e2e_seconds_{n}"), seconds, Unit::Seconds);
        out.maybe(
            &format!("e2e_records_per_s_{n}"),
            per_second(fetched, seconds),
            Unit::RecordsPerSecond,
        )?;
        let us = out.maybe(
            &format!("time_per_record_us_{n}"),
            ratio(seconds * 1e6, fetched as f64),
            Unit::Microseconds,
        )?;
        per_record_us.push(us);
        out.line(
            format!("fetcher_peak_rss_mib_{n}"),
            mib(fetcher),
            Unit::Mebibytes,
        );
        out.line(format!("sink_peak_rss_mib_{n}"), mib(sink), Unit::Mebibytes);
        fetcher_peak = fetcher_peak.max(fetcher);
        sink_peak = sink_peak.max(sink);
        system.stop().await;
    }
    let growth = |from: usize, to: usize| {
        let (a, b) = (per_record_us.get(from)?, per_record_us.get(to)?);
        ratio(*b, *a)
    };
    out.maybe("time_per_record_growth_ratio", growth(0, 2), Unit::Ratio)?;
    out.maybe(
        "time_per_record_growth_ratio_last_step",
        growth(1, 2),
        Unit::Ratio,
    )?;
    out.line("fetcher_peak_rss_mib", mib(fetcher_peak), Unit::Mebibytes);
    out.line("sink_peak_rss_mib", mib(sink_peak), Unit::Mebibytes);
    Ok(())
}

pub(super) fn method(plan: &Plan) -> String {
    let [small, middle, large] = plan.scaling_sizes;
    format!(
        "Figure 1's full sync (one fetcher, one sink, latency off, Contacts only, empty audience) at {small}, \
         {middle} and {large} contacts, each size on a fresh system. `time_per_record_us_N` is the run's Sync Now \
         to finish time over records fetched; `time_per_record_growth_ratio` is that of {large} over that of \
         {small} (1.0 = flat; below 1.0 when fixed start-up costs dominate the small size), and \
         `time_per_record_growth_ratio_last_step` that of {large} over {middle}, where fixed costs no longer \
         hide growth. A run gets at most {budget} min so that the whole benchmark keeps to its time; one cut off \
         prints how far it got and `time_per_record_growth_ratio_lower_bound` (its time per record is at least \
         the budget over N). `fetcher_peak_rss_mib_N` and `sink_peak_rss_mib_N` are the processes' `VmHWM` from \
         `/proc/<pid>/status`, read after the run and before the processes were stopped, so they cover start-up \
         and the whole run; `fetcher_peak_rss_mib` and `sink_peak_rss_mib` are the largest over the sizes.",
        budget = RUN_BUDGET.as_secs() / 60,
    )
}
