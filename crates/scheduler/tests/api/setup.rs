//! The whole setup flow of the product guide, against real PostgreSQL, RabbitMQ and the emulator:
//! self client → grant code → create integration → map audience → Sync Now → a job on the queue.

use std::time::Duration;

use pledgesync_core::messages::{SyncMode, Trigger};
use pledgesync_scheduler::crypto::{SecretColumn, SecretSlot};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::{wait_until, TestApp, SCOPE};

#[tokio::test]
async fn the_guide_from_self_client_to_a_job_on_the_queue() {
    let app = TestApp::spawn().await;

    // 1-2. In the API Console: a Self Client, then a grant code with the guide's scope.
    let (client_id, client_secret) = app.self_client().await;
    let code = app.grant_code(&client_id, SCOPE).await;

    // 3. Add Integration: the code is exchanged at once.
    let (status, integration) = app
        .call(
            Method::POST,
            "/v1/integrations",
            Some(
                json!({"account_id": "acct_1", "name": "Zoho CRM", "client_id": client_id,
                "client_secret": client_secret, "refresh_token": code}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{integration}");
    assert_eq!(integration["status"], "active");
    assert_eq!(integration["data_center"], "US");
    assert_eq!(integration["audience_id"], Value::Null);
    assert_eq!(integration["modules"], json!(["Contacts", "Leads"]));
    assert_eq!(integration["zoho_org"]["id"], app.emulator.default_org_id());
    assert!(
        integration["zoho_org"]["name"].is_string()
            && integration["zoho_org"]["time_zone"].is_string(),
        "{integration}"
    );
    assert_eq!(integration["schedule"]["interval_secs"], 3600);
    let text = integration.to_string();
    assert!(
        !text.contains(&client_secret) && !text.contains(&code),
        "a secret leaked into the answer: {text}"
    );
    let id = integration["id"].as_str().expect("id").to_owned();

    // The row holds ciphertexts only: neither the client secret nor the refresh token appears.
    let row = sqlx::query(
        "SELECT row_to_json(i)::text AS whole, client_secret_ciphertext, refresh_token_ciphertext, encryption_key_id \
         FROM integrations i WHERE id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .expect("row");
    let secret_ct: Vec<u8> = row.get("client_secret_ciphertext");
    let token_ct: Vec<u8> = row.get("refresh_token_ciphertext");
    let key_id: String = row.get("encryption_key_id");
    let integration_id = id.parse().expect("uuid");
    let refresh_token = app
        .state
        .keyring
        .open(
            &key_id,
            &token_ct,
            SecretSlot::new(integration_id, SecretColumn::RefreshToken),
        )
        .expect("the stored refresh token decrypts for its own row and column");
    let refresh_token = refresh_token.expose_secret().to_owned();
    assert!(
        refresh_token.starts_with("1000."),
        "a Zoho-shaped refresh token: {}",
        refresh_token.len()
    );
    let whole: String = row.get("whole");
    for (what, plain) in [
        ("client secret", client_secret.as_str()),
        ("refresh token", refresh_token.as_str()),
    ] {
        assert!(
            !whole.contains(plain),
            "the {what} is in the row in plaintext"
        );
        for column in [&secret_ct, &token_ct] {
            assert!(
                !column.windows(plain.len()).any(|w| w == plain.as_bytes()),
                "the {what} is in a ciphertext column"
            );
        }
        let hex: String = plain.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(!whole.contains(&hex), "the {what} is in the row as hex");
    }
    // Bound to its column: the refresh-token ciphertext does not open as the client secret.
    assert!(app
        .state
        .keyring
        .open(
            &key_id,
            &token_ct,
            SecretSlot::new(integration_id, SecretColumn::ClientSecret)
        )
        .is_err());

    // Sync Now before Map Audience says which step is missing.
    let (status, body) = app
        .call(Method::POST, &format!("/v1/integrations/{id}/syncs"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "audience_not_mapped");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("map"),
        "{body}"
    );

    // 4. Map Audience.
    let audience = app.create_audience("acct_1", "Backers from CRM").await;
    let (status, mapped) = app
        .call(
            Method::PUT,
            &format!("/v1/integrations/{id}/audience"),
            Some(json!({"audience_id": audience["id"]})),
        )
        .await;
    assert_eq!(status, 200, "{mapped}");
    assert_eq!(mapped["audience_id"], audience["id"]);

    // 5. Sync Now, inside a trace the PledgeBox app started.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = app
        .request(Method::POST, &format!("/v1/integrations/{id}/syncs"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 202);
    let run: Value = response.json().await.expect("run");
    assert_eq!(run["status"], "queued");
    assert_eq!(run["mode"], "full", "the first sync is full");
    assert_eq!(run["trigger"], "manual");
    assert_eq!(run["audience_id"], audience["id"]);
    assert_eq!(run["counters"]["fetched"], 0);
    let run_id = run["id"].as_str().expect("run id").to_owned();

    // The relay publishes the job: one SyncJob, decoded and checked, carrying the trace.
    let broker = app.broker().await;
    wait_until(
        "the job to reach the queue",
        Duration::from_secs(10),
        || async { (app.jobs_waiting(&broker).await == 1).then_some(()) },
    )
    .await;
    let jobs = app.drain_jobs(&broker).await;
    assert_eq!(jobs.len(), 1);
    let (job, traceparent) = &jobs[0];
    assert_eq!(job.run_id.to_string(), run_id);
    assert_eq!(job.integration_id.to_string(), id);
    assert_eq!(job.mode, SyncMode::Full);
    assert_eq!(job.trigger, Trigger::Manual);
    assert_eq!(job.slice, 0);
    let traceparent = traceparent
        .as_deref()
        .expect("the job carries a traceparent");
    assert!(
        traceparent.contains(trace_id),
        "the Sync Now trace continues: {traceparent}"
    );
    assert_eq!(app.unpublished().await, 0);

    // The run reads back with its counters, and the integration shows it as its last run.
    let (status, read) = app
        .call(Method::GET, &format!("/v1/runs/{run_id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(read["id"], run["id"]);
    let (_, integration) = app
        .call(Method::GET, &format!("/v1/integrations/{id}"), None)
        .await;
    assert_eq!(integration["last_run"]["id"], run["id"]);
    broker.close().await;
    app.stop().await;
}

#[tokio::test]
async fn reconnect_delete_and_listing() {
    let app = TestApp::spawn().await;
    let (integration, _) = app.mapped_integration("acct_2").await;
    let id = integration["id"].as_str().expect("id").to_owned();

    // Zoho rejected the refresh token: the integration needs re-authorisation.
    app.state
        .store
        .set_integration_status(
            id.parse().expect("uuid"),
            pledgesync_store::IntegrationStatus::NeedsReauth,
            Some("refresh token rejected"),
        )
        .await
        .expect("status");
    let (status, body) = app
        .call(Method::POST, &format!("/v1/integrations/{id}/syncs"), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("needs_reauth")),
        "{body}"
    );

    // Reconnect with a new grant code of the same client: active again, Sync Now works.
    let client_id = integration["client_id"].as_str().expect("client id");
    let code = app.grant_code(client_id, SCOPE).await;
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/v1/integrations/{id}/credentials"),
            Some(json!({"refresh_token": code})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["status"].as_str(), &body["status_reason"]),
        (Some("active"), &Value::Null)
    );
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/v1/integrations/{id}/syncs"),
            Some(json!({"mode": "incremental"})),
        )
        .await;
    assert_eq!(status, 202);

    // Schedule and modules.
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/v1/integrations/{id}"),
            Some(json!({"modules": ["Leads"], "schedule": {"interval_secs": 900}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["modules"].clone(),
            body["schedule"]["interval_secs"].clone()
        ),
        (json!(["Leads"]), json!(900))
    );
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/v1/integrations/{id}"),
            Some(json!({"schedule": {"interval_secs": 5}})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("schedule.interval_secs")),
        "{body}"
    );

    let (status, list) = app
        .call(Method::GET, "/v1/integrations?account_id=acct_2", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["integrations"].as_array().map(Vec::len), Some(1));

    // Delete revokes the refresh token at Zoho and hides the integration.
    let (status, body) = app
        .call(Method::DELETE, &format!("/v1/integrations/{id}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["zoho_token_revoked"], true, "{body}");
    let (status, _) = app
        .call(Method::GET, &format!("/v1/integrations/{id}"), None)
        .await;
    assert_eq!(status, 404);
    let (status, body) = app
        .call(Method::DELETE, &format!("/v1/integrations/{id}"), None)
        .await;
    assert_eq!(
        (status, body["deleted"].as_bool()),
        (200, Some(true)),
        "deleting twice is harmless"
    );
    app.stop().await;
}
