//! Figure 3: a full sync of one module against an emulator that waits before every answer; the
//! fetch phase's time against the time the pages alone must take.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::binaries::Binaries;
use crate::error::{BenchError, Result};
use crate::figures::{run_timeout, Plan};
use crate::prometheus;
use crate::report::{Recorder, Unit};
use crate::stats::ratio;
use crate::system::{System, SystemOptions};

/// How often the fetcher's counter is read: the span measured is seconds long, so 10 ms keeps
/// the reading error well under 1 %.
const SCRAPE_EVERY: Duration = Duration::from_millis(10);
const PUBLISHED: &str = "pledgesync_fetcher_batches_published_total";
const LABELS: [(&str, &str); 2] = [("module", "Contacts"), ("kind", "upsert")];

/// When the fetcher's published-batches counter first moved and last moved.
#[derive(Debug, Default)]
struct Span {
    first: Option<(Instant, DateTime<Utc>)>,
    last: Option<(Instant, DateTime<Utc>)>,
    count: f64,
}

pub(super) async fn run(plan: &Plan, binaries: &Binaries, out: &Recorder) -> Result<()> {
    let n = plan.latency_records;
    let mut options = SystemOptions::contacts(n);
    options.emulator.latency_ms = plan.latency_ms;
    let system = System::start(binaries, "latency", options).await?;
    let connected = system.connect("bench-latency", None).await?;
    let fetcher = system
        .fetchers
        .first()
        .ok_or_else(|| BenchError::unexpected("the latency system", "has no fetcher"))?;
    system.emulator.reset_stats().await?;
    let run = system.api.sync(&connected.integration, "full").await?;

    let deadline = Instant::now() + run_timeout(n);
    let mut span = Span::default();
    let mut polls = 0u64;
    let view = loop {
        let page = system.metrics(fetcher).await?;
        let count = prometheus::sum(&page, PUBLISHED, &LABELS).unwrap_or(0.0);
        if count > span.count {
            let now = (Instant::now(), Utc::now());
            span.first.get_or_insert(now);
            span.last = Some(now);
            span.count = count;
        }
        polls += 1;
        if polls.is_multiple_of(10) {
            system.check_alive()?;
            let view = system.api.run(&run.id).await?;
            if view.ended() {
                break view.succeeded()?;
            }
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout {
                what: format!("run {} to end", run.id),
                after: run_timeout(n),
            });
        }
        tokio::time::sleep(SCRAPE_EVERY).await;
    };
    let final_page = system.metrics(fetcher).await?;
    let pages = prometheus::sum(&final_page, PUBLISHED, &LABELS).unwrap_or(span.count);
    let (Some(first), Some(last)) = (span.first, span.last) else {
        return Err(BenchError::unexpected(
            "the fetcher's metrics",
            "no batch was seen published",
        ));
    };
    if pages < 2.0 || pages > span.count {
        return Err(BenchError::unexpected(
            "the fetcher's metrics",
            format!(
                "{pages} batches published, {} seen while polling",
                span.count
            ),
        ));
    }
    let latency = plan.latency_ms as f64 / 1000.0;
    let actual = (last.0 - first.0).as_secs_f64();
    let ideal = (pages - 1.0) * latency;
    out.line("fetch_pages", pages, Unit::Count);
    out.line("fetch_seconds", actual, Unit::Seconds);
    out.line("fetch_ideal_seconds", ideal, Unit::Seconds);
    out.maybe(
        "fetch_latency_overhead_ratio",
        ratio(actual, ideal),
        Unit::Ratio,
    )?;
    if let Some(started) = view.started_at {
        let from_start = (last.1 - started).num_microseconds().unwrap_or(0) as f64 / 1e6;
        out.maybe(
            "fetch_latency_overhead_ratio_from_start",
            ratio(from_start, pages * latency),
            Unit::Ratio,
        )?;
    }
    let stats = system.emulator.stats().await?;
    let crm_calls: u64 = stats["api_calls"]
        .as_object()
        .map(|calls| {
            calls
                .iter()
                .filter(|(route, _)| route.starts_with("GET /crm/"))
                .flat_map(|(_, statuses)| statuses.as_object().into_iter().flat_map(|s| s.values()))
                .filter_map(serde_json::Value::as_u64)
                .sum()
        })
        .unwrap_or(0);
    out.line("fetch_crm_calls", crm_calls as f64, Unit::Count);
    system.stop().await;
    Ok(())
}

pub(super) fn method(plan: &Plan) -> String {
    format!(
        "A fresh system (one fetcher, one sink) in front of an emulator seeded with {n} contacts that waits \
         {ms} ms before every answer (accounts and CRM). One integration reading Contacts only; Sync Now (full). \
         While the run goes, the harness reads the fetcher's `/metrics` every 10 ms and notes when \
         `pledgesync_fetcher_batches_published_total{{module=\"Contacts\",kind=\"upsert\"}}` first and last \
         moved: the fetch phase, first to last batch published (confirmed by RabbitMQ). That span holds \
         pages − 1 page reads, so `fetch_latency_overhead_ratio` = span / ((pages − 1) × {ms} ms); 1.0 means the \
         fetcher adds nothing to Zoho's latency. `fetch_latency_overhead_ratio_from_start` counts from the run's \
         `started_at` (job picked up: token, count call and planning included) to the last batch, over \
         pages × {ms} ms. `fetch_crm_calls` is every CRM call the emulator answered during the run.",
        n = plan.latency_records,
        ms = plan.latency_ms,
    )
}
