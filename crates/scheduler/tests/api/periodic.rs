//! Periodic syncs with several replicas: every due integration is enqueued exactly once.

use std::time::Duration;

use pledgesync_core::messages::Trigger;
use pledgesync_core::AccountId;
use pledgesync_core::DataCenter;
use pledgesync_store::{Ciphertext, NewIntegration, Schedule, ZohoCredentials};

use crate::helpers::{wait_until, Options, TestApp};

/// Writes `n` active, mapped integrations that are due now (straight into the store: the
/// periodic loop never talks to Zoho, so their credentials need not work), as if their first
/// Sync Now had started their schedule an interval ago.
async fn due_integrations(app: &TestApp, n: usize) {
    let account = AccountId::parse("acct_p").expect("account");
    let audience = app
        .state
        .store
        .create_audience(&account, "Scheduled")
        .await
        .expect("audience");
    for i in 0..n {
        let new = NewIntegration {
            account_id: account.clone(),
            name: format!("org {i}"),
            credentials: ZohoCredentials {
                data_center: DataCenter::Us,
                api_domain: "https://www.zohoapis.com".into(),
                client_id: format!("1000.CLIENT{i}"),
                client_secret: Ciphertext(vec![1; 40]),
                refresh_token: Ciphertext(vec![2; 40]),
                encryption_key_id: "k1".into(),
                scopes: vec![],
            },
            zoho_org_id: format!("{}", 9000 + i),
            zoho_org_name: None,
            zoho_time_zone: None,
            audience_id: Some(audience.id),
            schedule: Schedule::default(),
        };
        app.state
            .store
            .insert_integration(&new)
            .await
            .expect("integration");
    }
    // A new integration waits for its first Sync Now; these are as if it happened long ago.
    sqlx::query("UPDATE integrations SET next_sync_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .expect("make due");
}

#[tokio::test]
async fn two_replicas_over_ten_due_integrations_enqueue_ten_jobs() {
    // The first replica's loop is effectively off, so the integrations can be written before
    // any loop looks at them.
    let first = TestApp::spawn_with(Options {
        tick_secs: 3600,
        ..Options::default()
    })
    .await;
    // Its first tick (at start) found nothing; now make ten integrations due.
    due_integrations(&first, 10).await;

    // A second replica starts: its loop ticks at once, while both replicas also run ticks by
    // hand concurrently, all racing for the same ten rows.
    let second = first.replica(Options::default()).await;
    let (a, b) = (first.app_periodic.clone(), second.app_periodic.clone());
    let mut racers = Vec::new();
    for _ in 0..4 {
        let (a, b) = (a.clone(), b.clone());
        racers.push(tokio::spawn(async move { a.tick().await.map(|r| r.len()) }));
        racers.push(tokio::spawn(async move { b.tick().await.map(|r| r.len()) }));
    }
    let mut claimed_by_hand = 0;
    for racer in racers {
        claimed_by_hand += racer.await.expect("tick task").expect("tick");
    }
    assert!(claimed_by_hand <= 10);

    let broker = first.broker().await;
    wait_until(
        "both relays to publish every job",
        Duration::from_secs(15),
        || async {
            (first.unpublished().await == 0 && first.jobs_waiting(&broker).await >= 10)
                .then_some(())
        },
    )
    .await;

    let runs: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT integration_id, trigger FROM sync_runs ORDER BY integration_id")
            .fetch_all(&first.pool)
            .await
            .expect("runs");
    assert_eq!(runs.len(), 10, "one run per due integration");
    let mut integrations: Vec<uuid::Uuid> = runs.iter().map(|(i, _)| *i).collect();
    integrations.dedup();
    assert_eq!(integrations.len(), 10);
    assert!(runs.iter().all(|(_, trigger)| trigger == "schedule"));
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&first.pool)
        .await
        .expect("outbox");
    assert_eq!(outbox, 10);

    // Every tick has returned and both relays are idle with an empty outbox: the queue is final.
    let jobs = first.drain_jobs(&broker).await;
    assert_eq!(jobs.len(), 10, "ten jobs, not twenty");
    assert!(jobs.iter().all(|(job, _)| job.trigger == Trigger::Schedule));
    let mut job_integrations: Vec<String> = jobs
        .iter()
        .map(|(job, _)| job.integration_id.to_string())
        .collect();
    job_integrations.sort();
    job_integrations.dedup();
    assert_eq!(job_integrations.len(), 10);

    // Claimed integrations are not due again until their interval has passed.
    assert!(a.tick().await.expect("tick").is_empty());
    broker.close().await;
    second.stop_app().await;
    first.stop().await;
}

#[tokio::test]
async fn a_mapped_integration_does_not_sync_before_its_first_sync_now() {
    let app = TestApp::spawn().await;
    let (integration, _) = app.mapped_integration("acct_p").await;
    assert_eq!(
        integration["schedule"]["next_sync_at"],
        serde_json::Value::Null,
        "{integration}"
    );
    assert!(
        app.app_periodic.tick().await.expect("tick").is_empty(),
        "nothing is due before the creator presses Sync Now"
    );
    let id = integration["id"].as_str().expect("id");
    let (status, run) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/integrations/{id}/syncs"),
            None,
        )
        .await;
    assert_eq!(
        (status, run["trigger"].as_str()),
        (202, Some("manual")),
        "{run}"
    );
    let (status, after) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/integrations/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let next: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(after["schedule"]["next_sync_at"].clone())
            .expect("the first Sync Now starts the schedule");
    assert!(next > chrono::Utc::now() + chrono::Duration::seconds(3000));
    app.stop().await;
}
