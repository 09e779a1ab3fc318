//! After one real sync through the real binaries, each binary's `/metrics` agrees with the run.

use std::time::Duration;

use pledgesync_tests::wait_until;

use crate::harness::{Options, System};
use crate::scrape::{total, Page};

const RUN_TIMEOUT: Duration = Duration::from_secs(45);
/// The emulator's page size for record listings.
const PAGE: u64 = 200;

async fn pages(system: &System, ports: impl Iterator<Item = u16>) -> anyhow::Result<Vec<Page>> {
    let mut pages = Vec::new();
    for port in ports {
        pages.push(Page::fetch(&system.http, &format!("http://127.0.0.1:{port}/metrics")).await?);
    }
    Ok(pages)
}

fn count(view: &serde_json::Value, key: &str) -> f64 {
    view["counters"][key].as_u64().unwrap_or(0) as f64
}

#[tokio::test]
async fn the_metrics_of_a_sync_add_up_to_the_run() -> anyhow::Result<()> {
    let (contacts, leads) = (700u64, 300u64);
    let mut options = Options::new(contacts as usize, leads as usize);
    options.fetchers = 1;
    options.sinks = 2;
    let system = System::start(options).await?;
    let (integration, _audience) = system.connect("acct-metrics", None).await?;
    let run = system.sync(&integration, "full").await?;
    let view = system.wait_for_success(&run, RUN_TIMEOUT).await?;
    // The run ends with the sink's commit of the last batch, and each process settles its
    // delivery after that: the fetcher acks its job once its last checkpoint is committed, a sink
    // acks a batch after the commit. Read the pages once every delivery is settled.
    let published = count(&view, "batches_published");
    wait_until(
        "the fetcher's job and every batch to be acked",
        RUN_TIMEOUT,
        || async {
            let fetchers = pages(&system, system.fetchers.iter().map(|w| w.port))
                .await
                .ok()?;
            let sinks = pages(&system, system.sinks.iter().map(|w| w.port))
                .await
                .ok()?;
            let f: Vec<&Page> = fetchers.iter().collect();
            let s: Vec<&Page> = sinks.iter().collect();
            let jobs = [("queue", "jobs")];
            let jobs_consumed = total(&f, "pledgesync_messages_consumed_total", &jobs);
            let settled = jobs_consumed >= 1.0
                && total(&f, "pledgesync_messages_acked_total", &jobs) == jobs_consumed
                && total(
                    &s,
                    "pledgesync_messages_acked_total",
                    &[("queue", "batches")],
                ) == published;
            settled.then_some(())
        },
    )
    .await?;

    let scheduler = Page::fetch(&system.http, &format!("{}/metrics", system.api)).await?;
    let fetchers = pages(&system, system.fetchers.iter().map(|w| w.port)).await?;
    let sinks = pages(&system, system.sinks.iter().map(|w| w.port)).await?;
    let f: Vec<&Page> = fetchers.iter().collect();
    let s: Vec<&Page> = sinks.iter().collect();
    let workers: Vec<&Page> = f.iter().chain(s.iter()).copied().collect();
    let context = format!("run {view}");

    // Records: fetched by the fetcher = applied + skipped by the sinks, as the run counted them.
    let fetched = total(&f, "pledgesync_records_fetched_total", &[]);
    let applied = total(&s, "pledgesync_records_applied_total", &[]);
    let skipped = total(&s, "pledgesync_records_skipped_total", &[]);
    assert_eq!(fetched, count(&view, "fetched"), "fetched; {context}");
    assert_eq!(fetched, (contacts + leads) as f64, "fetched; {context}");
    assert_eq!(applied, count(&view, "applied"), "applied; {context}");
    assert_eq!(skipped, count(&view, "skipped"), "skipped; {context}");
    assert_eq!(applied + skipped, fetched, "applied + skipped; {context}");
    if let Some(reasons) = view["counters"]["skipped_by_reason"].as_object() {
        for (reason, n) in reasons {
            let by_reason = total(
                &s,
                "pledgesync_records_skipped_total",
                &[("reason", reason)],
            );
            assert_eq!(
                Some(by_reason as u64),
                n.as_u64(),
                "skipped for {reason}; {context}"
            );
        }
    }
    assert_eq!(
        total(&s, "pledgesync_records_deleted_total", &[]),
        0.0,
        "a first full sync deletes nothing"
    );

    // Batches: every one published was consumed and acked once, none retried or dead.
    assert!(published >= 5.0, "{context}");
    assert_eq!(
        total(&f, "pledgesync_fetcher_batches_published_total", &[]),
        published
    );
    assert_eq!(
        total(
            &f,
            "pledgesync_messages_published_total",
            &[("queue", "batches")]
        ),
        published
    );
    let batches = [("queue", "batches")];
    assert_eq!(
        total(&s, "pledgesync_messages_consumed_total", &batches),
        published
    );
    assert_eq!(
        total(&s, "pledgesync_messages_acked_total", &batches),
        published
    );
    assert_eq!(
        total(&s, "pledgesync_batches_applied_total", &[]),
        published
    );
    assert_eq!(
        total(&s, "pledgesync_messages_retried_total", &batches),
        0.0
    );
    assert_eq!(
        total(&s, "pledgesync_messages_dead_lettered_total", &[]),
        0.0
    );
    assert_eq!(
        total(
            &s,
            "pledgesync_message_handler_duration_seconds_count",
            &batches
        ),
        published,
        "handler latency observed once per batch"
    );

    // Jobs: the scheduler's one job plus any continuations, each consumed and acked.
    let jobs = [("queue", "jobs")];
    let jobs_published = scheduler.sum("pledgesync_messages_published_total", &jobs)
        + total(&f, "pledgesync_messages_published_total", &jobs);
    assert!(scheduler.sum("pledgesync_messages_published_total", &jobs) >= 1.0);
    assert_eq!(
        total(&f, "pledgesync_messages_consumed_total", &jobs),
        jobs_published
    );
    assert_eq!(
        total(&f, "pledgesync_messages_acked_total", &jobs),
        jobs_published
    );
    assert_eq!(
        total(
            &f,
            "pledgesync_fetcher_jobs_total",
            &[("outcome", "finished")]
        ),
        1.0
    );

    // Zoho: at least one record-list call per page read, every one answered 200; credits spent.
    let pages_read = total(&f, "pledgesync_fetcher_pages_total", &[]);
    assert!(
        pages_read >= (contacts.div_ceil(PAGE) + leads.div_ceil(PAGE)) as f64,
        "{pages_read} pages"
    );
    let listing = total(
        &f,
        "pledgesync_zoho_calls_total",
        &[("endpoint", "records")],
    );
    assert!(
        listing >= pages_read,
        "{listing} record calls for {pages_read} pages"
    );
    assert_eq!(
        total(
            &f,
            "pledgesync_zoho_calls_total",
            &[("endpoint", "records"), ("status", "200")]
        ),
        listing,
        "every record call answered 200"
    );
    assert!(total(&f, "pledgesync_zoho_credits_used_total", &[]) >= pages_read);
    let refreshed = scheduler.sum(
        "pledgesync_zoho_token_refreshes_total",
        &[("outcome", "ok")],
    ) + total(
        &f,
        "pledgesync_zoho_token_refreshes_total",
        &[("outcome", "ok")],
    );
    let cached = total(&f, "pledgesync_zoho_token_cache_hits_total", &[]);
    // The code exchange leaves a fresh access token in Redis: the fetcher reads it from there.
    assert!(
        cached + refreshed >= 1.0,
        "{refreshed} refreshes, {cached} cache hits"
    );

    // The run: counted once, by whichever process completed it, with its duration.
    let succeeded = [("status", "succeeded")];
    assert_eq!(total(&workers, "pledgesync_runs_total", &succeeded), 1.0);
    assert_eq!(
        total(&workers, "pledgesync_runs_total", &[("status", "failed")]),
        0.0
    );
    assert_eq!(
        total(
            &workers,
            "pledgesync_run_duration_seconds_count",
            &succeeded
        ),
        1.0
    );
    assert_eq!(
        total(&workers, "pledgesync_store_runs_finished_total", &succeeded),
        1.0
    );
    assert!(
        total(
            &workers,
            "pledgesync_run_duration_seconds_bucket",
            &[("le", "+Inf")]
        ) >= 1.0
    );

    // Back-pressure saw every publish; probes and queue gauges are there.
    assert!(total(&f, "pledgesync_fetcher_batches_outstanding_count", &[]) >= published);
    for page in &workers {
        assert_eq!(
            page.sum("pledgesync_dependency_up", &[("dependency", "postgres")]),
            1.0
        );
        assert_eq!(
            page.sum("pledgesync_dependency_up", &[("dependency", "rabbitmq")]),
            1.0
        );
    }
    for queue in ["jobs", "batches", "jobs.dead", "batches.dead"] {
        assert!(
            scheduler.has("pledgesync_queue_messages", &[("queue", queue)]),
            "the scheduler reports the depth of {queue}"
        );
    }
    assert_eq!(
        scheduler.sum("pledgesync_queue_messages", &[("queue", "batches.dead")]),
        0.0
    );
    system.stop().await
}
