//! Sync Now: one active run per integration, the missing step named, runs listed and cancelled.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{wait_until, TestApp};

#[tokio::test]
async fn sync_now_twice_gives_one_run_and_one_job() {
    let app = TestApp::spawn().await;
    let (integration, _) = app.mapped_integration("acct_s").await;
    let id = integration["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/integrations/{id}/syncs");

    // Pressed twice at once, then once more: one run, the later answers show it.
    let (a, b) = tokio::join!(
        app.call(Method::POST, &path, None),
        app.call(Method::POST, &path, None)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 202],
        "one press queues, the other shows that run: {a:?} {b:?}"
    );
    assert_eq!(a.1["id"], b.1["id"]);
    let (status, again) = app
        .call(Method::POST, &path, Some(json!({"mode": "full"})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["id"], a.1["id"]);

    let runs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sync_runs WHERE integration_id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(runs, 1);
    let broker = app.broker().await;
    wait_until("the outbox to drain", Duration::from_secs(10), || async {
        (app.unpublished().await == 0).then_some(())
    })
    .await;
    assert_eq!(
        app.drain_jobs(&broker).await.len(),
        1,
        "one job for one run"
    );

    // Runs list, read, cancel; a finished run cannot be cancelled again.
    let (status, list) = app
        .call(
            Method::GET,
            &format!("/v1/integrations/{id}/runs?limit=10"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["runs"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["next_before"], serde_json::Value::Null);
    let run_id = a.1["id"].as_str().expect("run id").to_owned();
    let (status, cancelled) = app
        .call(Method::POST, &format!("/v1/runs/{run_id}/cancel"), None)
        .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("cancelled")),
        "{cancelled}"
    );
    assert!(cancelled["finished_at"].is_string());
    let (status, body) = app
        .call(Method::POST, &format!("/v1/runs/{run_id}/cancel"), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("run_finished")),
        "{body}"
    );

    // With the run over, Sync Now starts a new one: incremental would need a finished full run,
    // so it is full again.
    let (status, second) = app.call(Method::POST, &path, None).await;
    assert_eq!(status, 202, "{second}");
    assert_ne!(second["id"], a.1["id"]);
    broker.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_disabled_integration_says_so_and_other_accounts_audiences_are_refused() {
    let app = TestApp::spawn().await;
    let (integration, _) = app.mapped_integration("acct_d").await;
    let id = integration["id"].as_str().expect("id").to_owned();

    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/integrations/{id}/disable"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("disabled")),
        "{body}"
    );
    let (status, body) = app
        .call(Method::POST, &format!("/v1/integrations/{id}/syncs"), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("integration_disabled")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("text")
            .contains("enable"),
        "{body}"
    );
    let (status, body) = app
        .call(Method::POST, &format!("/v1/integrations/{id}/enable"), None)
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("active")),
        "{body}"
    );

    // Map Audience: same account only.
    let foreign = app.create_audience("acct_other", "Not yours").await;
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/v1/integrations/{id}/audience"),
            Some(json!({"audience_id": foreign["id"]})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("audience_other_account")),
        "{body}"
    );
    let missing = uuid::Uuid::new_v4();
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/v1/integrations/{id}/audience"),
            Some(json!({"audience_id": missing})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (404, Some("audience_id")),
        "{body}"
    );

    // Unknown and malformed ids.
    let (status, body) = app
        .call(Method::GET, &format!("/v1/runs/{missing}"), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = app
        .call(Method::POST, "/v1/integrations/not-a-uuid/syncs", None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_id")),
        "{body}"
    );

    // Audiences list and members (empty until a sink writes some).
    let (status, list) = app
        .call(Method::GET, "/v1/audiences?account_id=acct_d", None)
        .await;
    assert_eq!(
        (status, list["audiences"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{list}"
    );
    let audience_id = list["audiences"][0]["id"].as_str().expect("id").to_owned();
    let (status, page) = app
        .call(
            Method::GET,
            &format!("/v1/audiences/{audience_id}/members?limit=10"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page, json!({"members": [], "next_cursor": null}));
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/v1/audiences/{audience_id}/members?cursor=%00%01"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("cursor")),
        "{body}"
    );
    app.stop().await;
}
