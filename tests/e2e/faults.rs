//! Syncs that meet trouble: crashed workers, a batch delivered twice, access tokens that keep
//! expiring, and a refresh token Zoho no longer accepts.

use std::collections::BTreeSet;
use std::time::Duration;

use pledgesync_core::messages::{BatchKind, RecordBatch};
use pledgesync_core::{IntegrationId, Module, RunId};
use pledgesync_tests::wait_until;
use serde_json::{json, Value};

use crate::harness::{text, Options, System, SCOPE};
use crate::sync::{assert_audience_matches, RUN_TIMEOUT};

/// Waits until the run is running with at least `published` batches published and `applied`
/// applied; fails if it ended first.
async fn wait_for_progress(
    system: &System,
    run: &str,
    published: u64,
    applied: u64,
) -> anyhow::Result<Value> {
    wait_until(
        "the run to get going",
        Duration::from_secs(30),
        || async move {
            let view = system.run(run).await.ok()?;
            let c = &view["counters"];
            let far = c["batches_published"].as_u64()? >= published
                && c["batches_applied"].as_u64()? >= applied;
            (view["status"] == "running" && far).then_some(view)
        },
    )
    .await
}

#[tokio::test]
async fn a_fetcher_killed_mid_run_is_replaced_and_the_run_completes() -> anyhow::Result<()> {
    let mut options = Options::new(3_000, 1_000);
    options.fetchers = 1;
    options.emulator.latency_ms = 60;
    let mut system = System::start(options).await?;
    let (integration, audience) = system.connect("acct-fetcher-crash", None).await?;
    let run = system.sync(&integration, "full").await?;
    let before = wait_for_progress(&system, &run, 3, 0).await?;
    system.fetchers[0].process.kill()?;
    let published_at_kill = before["counters"]["batches_published"]
        .as_u64()
        .unwrap_or(0);
    system.start_fetcher().await?;
    let view = system.wait_for_success(&run, RUN_TIMEOUT).await?;
    let total = view["counters"]["batches_total"].as_u64().unwrap_or(0);
    assert!(
        published_at_kill < total,
        "the kill came after the last page ({published_at_kill} of {total})"
    );
    assert_audience_matches(&system, &audience, None, &BTreeSet::new()).await?;
    let c = &view["counters"];
    assert_eq!(
        c["applied"].as_u64().unwrap_or(0) + c["skipped"].as_u64().unwrap_or(0),
        c["fetched"].as_u64().unwrap_or(1),
        "a republished page must not count twice: {view}"
    );
    system.stop().await
}

#[tokio::test]
async fn a_sink_killed_mid_batch_is_replaced_and_the_run_completes() -> anyhow::Result<()> {
    let mut options = Options::new(3_000, 1_000);
    options.sinks = 1;
    options.emulator.latency_ms = 40;
    let mut system = System::start(options).await?;
    let (integration, audience) = system.connect("acct-sink-crash", None).await?;
    let run = system.sync(&integration, "full").await?;
    wait_for_progress(&system, &run, 4, 2).await?;
    system.sinks[0].process.kill()?;
    system.start_sink().await?;
    let view = system.wait_for_success(&run, RUN_TIMEOUT).await?;
    assert_audience_matches(&system, &audience, None, &BTreeSet::new()).await?;
    let c = &view["counters"];
    assert_eq!(c["batches_applied"], c["batches_total"], "{view}");
    assert_eq!(
        c["applied"].as_u64().unwrap_or(0) + c["skipped"].as_u64().unwrap_or(0),
        c["fetched"].as_u64().unwrap_or(1),
        "{view}"
    );
    system.stop().await
}

#[tokio::test]
async fn the_same_batch_delivered_twice_has_one_effect() -> anyhow::Result<()> {
    let mut options = Options::new(3_000, 1_000);
    options.sinks = 1;
    options.emulator.latency_ms = 40;
    let system = System::start(options).await?;
    let (integration, audience) = system.connect("acct-duplicate", None).await?;
    let run = system.sync(&integration, "full").await?;
    wait_for_progress(&system, &run, 3, 2).await?;

    // Applied batches, delivered again with the same (run, seq) but newer-looking content: the
    // ledger must ignore them, so none of this content may land.
    let run_uuid: uuid::Uuid = run.parse()?;
    let applied: Vec<i64> = sqlx::query_scalar(
        "SELECT seq FROM run_batches WHERE run_id = $1 AND kind = 'upsert' ORDER BY seq LIMIT 2",
    )
    .bind(run_uuid)
    .fetch_all(&system.db)
    .await?;
    anyhow::ensure!(
        applied.len() == 2,
        "expected two applied batches, found {applied:?}"
    );
    let contacts = system.records("Contacts", None).await?;
    let broker = pledgesync_broker::Broker::connect(
        &pledgesync_core::settings::RabbitMqSettings {
            url: pledgesync_tests::Services::from_env().rabbitmq_url.into(),
            ..Default::default()
        },
        pledgesync_broker::Topology::new(system.prefix.clone(), 5),
    )
    .await?;
    let consumed_before = system
        .metric(&system.sinks, "pledgesync_messages_consumed_total")
        .await?;
    for seq in &applied {
        let records = contacts
            .iter()
            .take(50)
            .map(|r| {
                let mut map = serde_json::Map::new();
                map.insert("id".into(), r["id"].clone());
                map.insert("Email".into(), r["Email"].clone());
                map.insert("First_Name".into(), json!("Duplicate"));
                map.insert("Modified_Time".into(), json!("2099-01-01T00:00:00+00:00"));
                pledgesync_core::record::RawRecord::from_map(&map)
            })
            .collect();
        let batch = RecordBatch {
            schema_version: RecordBatch::SCHEMA_VERSION,
            run_id: RunId(run_uuid),
            integration_id: IntegrationId(integration.parse()?),
            module: Module::Contacts,
            seq: u64::try_from(*seq)?,
            kind: BatchKind::Upsert,
            records,
        };
        broker
            .publish(
                pledgesync_broker::WorkQueue::Batches,
                &batch,
                &pledgesync_broker::PublishOptions::new(format!("dup/{seq}")),
            )
            .await?;
    }
    broker.close().await;
    let view = system.wait_for_success(&run, RUN_TIMEOUT).await?;
    let borrowed = &system;
    wait_until(
        "the sink to consume the duplicates",
        Duration::from_secs(20),
        || async move {
            let consumed = borrowed
                .metric(&borrowed.sinks, "pledgesync_messages_consumed_total")
                .await
                .ok()?;
            (consumed >= consumed_before + 2.0).then_some(())
        },
    )
    .await?;
    assert_audience_matches(&system, &audience, None, &BTreeSet::new()).await?;
    let members = system.members(&audience).await?;
    assert!(
        members.iter().all(|m| m["first_name"] != "Duplicate"),
        "a duplicate batch was applied"
    );
    let again = system.run(&run).await?;
    assert_eq!(
        again["counters"], view["counters"],
        "counters moved after the run ended"
    );
    let c = &view["counters"];
    assert_eq!(
        c["applied"].as_u64().unwrap_or(0) + c["skipped"].as_u64().unwrap_or(0),
        c["fetched"].as_u64().unwrap_or(1),
        "{view}"
    );
    system.stop().await
}

#[tokio::test]
async fn access_tokens_expiring_every_few_seconds_do_not_stop_the_run() -> anyhow::Result<()> {
    let mut options = Options::new(4_000, 2_000);
    options.emulator.token_ttl_secs = 3;
    // 30 pages at 250 ms each keep the run alive for well over two token lifetimes, however
    // fast the machine is.
    options.emulator.latency_ms = 250;
    // Zoho's 10 tokens per 10 minutes for a 1-hour token, scaled to a 3-second token.
    options.emulator.refresh_throttle_max = 10;
    options.emulator.refresh_throttle_window_secs = 10;
    let system = System::start(options).await?;
    let (integration, audience) = system.connect("acct-tokens", None).await?;
    let run = system.sync(&integration, "full").await?;
    let view = system.wait_for_success(&run, RUN_TIMEOUT).await?;
    assert_audience_matches(&system, &audience, None, &BTreeSet::new()).await?;
    let stats = system.emulator_stats().await?;
    let refreshes = stats["token_refreshes"].as_u64().unwrap_or(0);
    let started = view["started_at"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    let finished = view["finished_at"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    let seconds = match (started, finished) {
        (Some(s), Some(f)) => (f - s).num_milliseconds() as f64 / 1000.0,
        _ => 0.0,
    };
    assert!(
        seconds > 6.0,
        "the run must outlive two token lifetimes, took {seconds} s"
    );
    assert!(
        refreshes >= 2,
        "tokens were refreshed only {refreshes} times: {stats}"
    );
    // One refresh per expiry, shared by both fetchers, not one per worker or call.
    assert!(
        (refreshes as f64) <= seconds / 3.0 * 2.0 + 4.0,
        "{refreshes} refreshes in {seconds} s: {stats}"
    );
    assert_eq!(stats["throttled_refreshes"].as_u64(), Some(0), "{stats}");
    system.stop().await
}

#[tokio::test]
async fn a_revoked_refresh_token_fails_the_run_once_and_asks_for_reauthorisation(
) -> anyhow::Result<()> {
    let system = System::start(Options::new(500, 200)).await?;
    let (integration, _audience) = system.connect("acct-revoked", None).await?;
    // The creator mints another refresh token for the same user with a one-token limit: Zoho
    // silently deletes the oldest, the one pledgesync holds; live access tokens die too.
    system
        .emulator(
            reqwest::Method::PUT,
            "/__emulator/knobs",
            Some(json!({"max_refresh_tokens_per_user": 1})),
        )
        .await?;
    let (_, integration_view) = system
        .api(
            reqwest::Method::GET,
            &format!("/v1/integrations/{integration}"),
            None,
        )
        .await?;
    let client_id = text(&integration_view["client_id"])?;
    revoke_by_replacement(&system, &client_id).await?;
    system
        .emulator(reqwest::Method::POST, "/__emulator/tokens/expire-all", None)
        .await?;
    system
        .emulator(reqwest::Method::POST, "/__emulator/stats/reset", None)
        .await?;

    let run = system.sync(&integration, "full").await?;
    let view = system.wait_for_end(&run, RUN_TIMEOUT).await?;
    assert_eq!(view["status"], "failed", "{view}");
    let error = view["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("Zoho rejected the stored refresh token"),
        "{error}"
    );
    assert!(
        error.contains("grant code") && error.contains("re-authorise"),
        "{error}"
    );
    let (_, integration_view) = system
        .api(
            reqwest::Method::GET,
            &format!("/v1/integrations/{integration}"),
            None,
        )
        .await?;
    assert_eq!(
        integration_view["status"], "needs_reauth",
        "{integration_view}"
    );

    // No retry storm: the job is not retried and the other fetcher does not try again. The run
    // fails before the fetcher counts and settles its job: wait for that.
    let settled = wait_until(
        "the fetcher to settle its job",
        Duration::from_secs(30),
        || async {
            let settled = system
                .metric(&system.fetchers, "pledgesync_fetcher_jobs_total")
                .await
                .ok()?;
            (settled >= 1.0).then_some(settled)
        },
    )
    .await?;
    let stats = system.emulator_stats().await?;
    let rejected = stats["token_errors"]["invalid_code"].as_u64().unwrap_or(0);
    assert!(
        rejected <= 2,
        "Zoho was asked {rejected} times with a dead refresh token: {stats}"
    );
    assert!(settled >= 1.0);
    let retried = system
        .metric(
            &system.fetchers,
            "pledgesync_fetcher_jobs_total{outcome=\"retried\"",
        )
        .await?;
    assert_eq!(retried, 0.0, "the job was retried");
    system.stop().await
}

/// Generates a grant code for `client_id` and exchanges it at the token endpoint, as a creator
/// testing their Self Client elsewhere would.
async fn revoke_by_replacement(system: &System, client_id: &str) -> anyhow::Result<()> {
    let code = system
        .emulator(
            reqwest::Method::POST,
            "/__emulator/grant-codes",
            Some(json!({"client_id": client_id, "scope": SCOPE, "duration_minutes": 3})),
        )
        .await?;
    let secret = system.client_secret(client_id)?;
    let answer: Value = system
        .http
        .post(format!(
            "{}/dc/us/oauth/v2/token",
            system.emulator.base_url()
        ))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("client_secret", secret.as_str()),
            ("code", code["code"].as_str().unwrap_or_default()),
        ])
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(
        answer["refresh_token"].is_string(),
        "the exchange failed: {answer}"
    );
    Ok(())
}

#[tokio::test]
async fn a_fetcher_stopped_with_sigterm_hands_its_run_on_and_exits_cleanly() -> anyhow::Result<()> {
    let mut options = Options::new(3_000, 1_000);
    options.fetchers = 1;
    options.emulator.latency_ms = 60;
    let mut system = System::start(options).await?;
    let (integration, audience) = system.connect("acct-sigterm", None).await?;
    let run = system.sync(&integration, "full").await?;
    wait_for_progress(&system, &run, 3, 0).await?;
    system.fetchers[0].process.terminate()?;
    let status = system.fetchers[0]
        .process
        .wait_for_exit(Duration::from_secs(30))?;
    assert!(
        status.success(),
        "the fetcher exited with {status}\n{}",
        system.tail("fetcher-0")
    );
    let handed_on = std::fs::read_to_string(system.logs.join("fetcher-0.log"))?;
    assert!(
        handed_on.contains("handed the run on to a continuation job"),
        "{}",
        system.tail("fetcher-0")
    );
    let view = system.run(&run).await?;
    assert_eq!(
        view["status"], "running",
        "the run must wait for a fetcher, not fail: {view}"
    );
    system.start_fetcher().await?;
    system.wait_for_success(&run, RUN_TIMEOUT).await?;
    assert_audience_matches(&system, &audience, None, &BTreeSet::new()).await?;
    system.stop().await
}
