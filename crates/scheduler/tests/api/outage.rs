//! RabbitMQ unavailable during Sync Now, then available: the job is delivered, once.
//!
//! The outage is simulated by a TCP proxy between the scheduler and RabbitMQ that refuses every
//! connection while "down" (the scheduler sees exactly what a stopped RabbitMQ looks like: a
//! dropped connection), so the shared RabbitMQ server other tests use is never stopped.

use std::time::Duration;

use reqwest::Method;

use crate::helpers::{wait_until, FlakyProxy, Options, TestApp};

#[tokio::test]
async fn sync_now_during_an_outage_is_delivered_once_when_rabbitmq_returns() {
    let proxy = FlakyProxy::start(false).await;
    let app = TestApp::spawn_with(Options {
        rabbitmq_url: Some(proxy.url()),
        ..Options::default()
    })
    .await;
    let (integration, _) = app.mapped_integration("acct_o").await;
    let id = integration["id"].as_str().expect("id").to_owned();

    // RabbitMQ is down: readiness says so, and Sync Now still answers 202 with a queued run,
    // because the run and its job are committed together in PostgreSQL.
    let (status, ready) = app.call(Method::GET, "/readyz", None).await;
    assert_eq!(status, 503, "{ready}");
    let rabbit = ready["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "rabbitmq")
        .cloned();
    assert!(rabbit.is_some_and(|c| c["error"].is_string()), "{ready}");
    let (status, run) = app
        .call(Method::POST, &format!("/v1/integrations/{id}/syncs"), None)
        .await;
    assert_eq!(status, 202, "{run}");
    assert_eq!(run["status"], "queued");

    // The relay keeps trying (woken by Sync Now, then with backoff); the job waits in the outbox.
    let broker = app.broker().await;
    let (status, _) = app
        .call(Method::POST, &format!("/v1/integrations/{id}/syncs"), None)
        .await;
    assert_eq!(
        status, 200,
        "a second press during the outage shows the same run"
    );
    assert_eq!(app.unpublished().await, 1);
    assert_eq!(app.jobs_waiting(&broker).await, 0);

    // RabbitMQ comes back: the relay's next attempt connects, publishes with a confirm, marks.
    proxy.set_up(true);
    wait_until(
        "the outbox row to be published",
        Duration::from_secs(15),
        || async { (app.unpublished().await == 0).then_some(()) },
    )
    .await;
    let jobs = app.drain_jobs(&broker).await;
    assert_eq!(jobs.len(), 1, "delivered exactly once");
    assert_eq!(
        jobs[0].0.run_id.to_string(),
        run["id"].as_str().expect("run id")
    );
    let (status, ready) = app.call(Method::GET, "/readyz", None).await;
    assert_eq!(status, 200, "{ready}");

    // A second outage, this time with a live connection cut mid-way: still nothing lost or doubled.
    proxy.set_up(false);
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/v1/runs/{}/cancel", run["id"].as_str().expect("id")),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, second) = app
        .call(Method::POST, &format!("/v1/integrations/{id}/syncs"), None)
        .await;
    assert_eq!(status, 202, "{second}");
    proxy.set_up(true);
    wait_until(
        "the second job to be published",
        Duration::from_secs(20),
        || async { (app.unpublished().await == 0).then_some(()) },
    )
    .await;
    let jobs = app.drain_jobs(&broker).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(
        jobs[0].0.run_id.to_string(),
        second["id"].as_str().expect("run id")
    );
    broker.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_row_no_retry_can_publish_does_not_hold_up_the_others() {
    let app = TestApp::spawn().await;
    let (integration, _) = app.mapped_integration("acct_poison").await;
    // A row written by a newer build, naming a queue this build does not know.
    sqlx::query("INSERT INTO outbox (queue, payload) VALUES ('nonsense', '\\x7b7d'::bytea)")
        .execute(&app.pool)
        .await
        .expect("poison row");
    let id = integration["id"].as_str().expect("id");
    let (status, run) = app
        .call(Method::POST, &format!("/v1/integrations/{id}/syncs"), None)
        .await;
    assert_eq!(status, 202, "{run}");

    let broker = app.broker().await;
    wait_until(
        "the good job to be published past the poison row",
        Duration::from_secs(10),
        || async { (app.jobs_waiting(&broker).await == 1).then_some(()) },
    )
    .await;
    let jobs = app.drain_jobs(&broker).await;
    assert_eq!(
        jobs[0].0.run_id.to_string(),
        run["id"].as_str().expect("run id")
    );
    // The relay publishes a claim's rows, then records the failed ones and commits: the good
    // job can be in RabbitMQ a moment before the poison row's attempt is committed.
    let published = wait_until(
        "the poison row's failed attempt to be counted",
        Duration::from_secs(10),
        || async {
            let (published, attempts): (Option<chrono::DateTime<chrono::Utc>>, i32) =
                sqlx::query_as(
                    "SELECT published_at, attempts FROM outbox WHERE queue = 'nonsense'",
                )
                .fetch_one(&app.pool)
                .await
                .expect("poison row");
            (attempts >= 1).then_some(published)
        },
    )
    .await;
    assert!(
        published.is_none(),
        "the poison row is left for an operator"
    );
    broker.close().await;
    app.stop().await;
}
