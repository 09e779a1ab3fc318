//! Figure 2: the full sync of figure 1 at three sizes: time per record, and each worker's peak
//! resident memory, each size on fresh processes.

use crate::binaries::Binaries;
use crate::error::Result;
use crate::figures::{full_sync, run_seconds, Plan};
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
        let run = full_sync(&system, &connected.integration, n).await?;
        // VmHWM is read before the processes stop: their peak over the whole run.
        let peaks = system.peak_rss()?;
        let seconds = run_seconds(&run)?;
        let fetched = run.counters.fetched;
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
        let fetcher = peaks.fetchers.iter().copied().max().unwrap_or(0);
        let sink = peaks.sinks.iter().copied().max().unwrap_or(0);
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
    let (first, last) = (
        per_record_us.first().copied(),
        per_record_us.last().copied(),
    );
    let growth = first.zip(last).and_then(|(a, b)| ratio(b, a));
    out.maybe("time_per_record_growth_ratio", growth, Unit::Ratio)?;
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
         {small} (1.0 = flat, below 1.0 = start-up costs amortised). `fetcher_peak_rss_mib_N` and \
         `sink_peak_rss_mib_N` are the processes' `VmHWM` from `/proc/<pid>/status`, read after the run ended \
         and before the processes were stopped, so they cover start-up and the whole run; \
         `fetcher_peak_rss_mib` and `sink_peak_rss_mib` are the largest over the three sizes."
    )
}
