//! The stale-run watchdog seen from the scheduler: the periodic loop fails a run whose job was
//! lost, says so on the run, counts it, and Sync Now works again. Staleness is made by backdating
//! the run in SQL, never by waiting for it.

use std::time::Duration;

use pledgesync_core::{IntegrationId, RunId};
use pledgesync_store::RunStart;
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{wait_until, Options, TestApp};

/// Sync Now on a fresh mapped integration, and the job taken off the queue as if RabbitMQ had
/// dead-lettered it without any fetcher seeing it: `(integration id, run id)`.
async fn run_with_a_lost_job(app: &TestApp, account: &str) -> (IntegrationId, RunId) {
    let (integration, _) = app.mapped_integration(account).await;
    let id = integration["id"].as_str().expect("id").to_owned();
    let (status, run) = app
        .call(Method::POST, &format!("/v1/integrations/{id}/syncs"), None)
        .await;
    assert_eq!(status, 202, "{run}");
    let broker = app.broker().await;
    wait_until(
        "the relay to publish the job",
        Duration::from_secs(10),
        || async {
            (app.unpublished().await == 0 && app.jobs_waiting(&broker).await >= 1).then_some(())
        },
    )
    .await;
    assert_eq!(app.drain_jobs(&broker).await.len(), 1);
    broker.close().await;
    (
        id.parse().expect("integration id"),
        run["id"].as_str().expect("run id").parse().expect("run id"),
    )
}

/// Moves the run's timestamps 40 minutes back: nothing has moved it for longer than the default
/// `schedule.stale_run_secs` (30 minutes).
async fn backdate(app: &TestApp, run: RunId) {
    sqlx::query(
        "UPDATE sync_runs SET created_at = created_at - interval '40 minutes', \
           started_at = started_at - interval '40 minutes', \
           heartbeat_at = heartbeat_at - interval '40 minutes' WHERE id = $1",
    )
    .bind(run.0)
    .execute(&app.pool)
    .await
    .expect("backdate run");
    sqlx::query(
        "UPDATE outbox SET published_at = published_at - interval '40 minutes' WHERE run_id = $1",
    )
    .bind(run.0)
    .execute(&app.pool)
    .await
    .expect("backdate job");
}

#[tokio::test]
async fn the_periodic_loop_fails_a_run_whose_job_was_lost_and_sync_now_works_again() {
    let app = TestApp::spawn_with(Options {
        tick_secs: 1,
        ..Options::default()
    })
    .await;
    let (integration, run) = run_with_a_lost_job(&app, "acct_stale").await;
    // A fetcher started the run, then died on every delivery until RabbitMQ gave up on the job.
    assert!(matches!(
        app.state
            .store
            .start_run(run, integration)
            .await
            .expect("start"),
        RunStart::Proceed(_)
    ));
    let (status, again) = app
        .call(
            Method::POST,
            &format!("/v1/integrations/{integration}/syncs"),
            None,
        )
        .await;
    assert_eq!(
        (status, again["id"].as_str()),
        (200, Some(run.to_string().as_str())),
        "while the run looks alive, Sync Now shows it"
    );

    backdate(&app, run).await;
    let failed = wait_until(
        "the periodic loop to fail the stale run",
        Duration::from_secs(20),
        || async {
            let (_, body) = app
                .call(Method::GET, &format!("/v1/runs/{run}"), None)
                .await;
            (body["status"] == "failed").then_some(body)
        },
    )
    .await;
    let error = failed["error"].as_str().expect("error");
    assert!(
        error.starts_with("no worker made progress on this run for 30 minutes")
            && error.contains("press Sync Now")
            && error.contains("docs/operations.md 'Stale runs'"),
        "{error}"
    );
    assert!(failed["finished_at"].is_string());

    // The counter moves just after the statement that failed the run: wait for it.
    wait_until(
        "the stale run to be counted on /metrics",
        Duration::from_secs(20),
        || async {
            let metrics = app
                .http
                .get(app.url("/metrics"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            metrics
                .lines()
                .any(|l| {
                    l.starts_with("pledgesync_scheduler_stale_runs_failed_total{was=\"running\"}")
                })
                .then_some(())
        },
    )
    .await;

    let (status, next) = app
        .call(
            Method::POST,
            &format!("/v1/integrations/{integration}/syncs"),
            None,
        )
        .await;
    assert_eq!(status, 202, "Sync Now starts a new run: {next}");
    assert_ne!(next["id"].as_str(), Some(run.to_string().as_str()));
    app.stop().await;
}

#[tokio::test]
async fn replicas_sweeping_at_once_fail_a_stale_queued_run_once_and_leave_live_ones() {
    let first = TestApp::spawn().await;
    let second = first.replica(Options::default()).await;
    let (_, lost) = run_with_a_lost_job(&first, "acct_lost").await;
    // Another integration's run is also queued, its job just published: it merely waits.
    let (_, waiting) = run_with_a_lost_job(&first, "acct_wait").await;
    backdate(&first, lost).await;

    let (a, b, c) = tokio::join!(
        first.app_periodic.fail_stale_runs(),
        second.app_periodic.fail_stale_runs(),
        first.app_periodic.fail_stale_runs(),
    );
    let failed: Vec<RunId> = [a, b, c]
        .into_iter()
        .flat_map(|sweep| sweep.expect("sweep"))
        .map(|stale| stale.run_id)
        .collect();
    assert_eq!(failed, [lost], "failed once, by one replica");

    let (_, body) = first
        .call(Method::GET, &format!("/v1/runs/{lost}"), None)
        .await;
    assert_eq!(body["status"], "failed");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("no worker picked this run up for 30 minutes")),
        "{body}"
    );
    let (_, body) = first
        .call(Method::GET, &format!("/v1/runs/{waiting}"), None)
        .await;
    assert_eq!(body["status"], "queued", "{body}");
    assert_eq!(body["error"], Value::Null);
    second.stop_app().await;
    first.stop().await;
}
