//! What fails a run, what is retried and what is refused.

use super::*;

#[tokio::test]
async fn a_rejected_refresh_token_fails_the_run_for_the_creator_and_acks() {
    let fake = Arc::new(Fake::new(SyncMode::Incremental, 5, 0, 10));
    fake.lock().zoho_failure = Some(FetchError::NeedsReauth {
        detail: "invalid_code".into(),
    });
    let outcome = fetcher(&fake, config(100, 5))
        .handle_job(fake.job(), delivery(0))
        .await;
    assert_eq!(outcome, Outcome::Ack);
    let state = fake.lock();
    let (message, needs_reauth) = state.failed.clone().expect("run failed");
    assert!(needs_reauth);
    assert!(
        message.contains("generate a new grant code") && message.contains("re-authorise"),
        "{message}"
    );
    assert_eq!(state.usability, Usability::NeedsReauth);
    assert!(state.published.is_empty());
}

#[tokio::test]
async fn retryable_failures_retry_until_the_last_delivery_then_fail_the_run() {
    let fake = Arc::new(Fake::new(SyncMode::Incremental, 5, 0, 10));
    let fetcher = fetcher(&fake, config(100, 5));
    fake.lock().zoho_failure = Some(FetchError::zoho(
        "Zoho CRM answered HTTP 503; retry later",
        true,
    ));
    let outcome = fetcher.handle_job(fake.job(), delivery(0)).await;
    assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
    assert!(fake.lock().failed.is_none());

    fake.lock().zoho_failure = Some(FetchError::zoho(
        "Zoho CRM answered HTTP 503; retry later",
        true,
    ));
    let outcome = fetcher.handle_job(fake.job(), delivery(3)).await;
    assert!(matches!(outcome, Outcome::DeadLetter { .. }), "{outcome:?}");
    let (message, needs_reauth) = fake.lock().failed.clone().expect("run failed");
    assert!(!needs_reauth);
    assert!(
        message.starts_with("the sync gave up after 4 attempts: Zoho CRM answered HTTP 503"),
        "{message}"
    );
}

#[tokio::test]
async fn a_job_naming_another_integration_is_dead_lettered_without_touching_the_run() {
    let fake = Arc::new(Fake::new(SyncMode::Full, 5, 0, 10));
    let forged = SyncJob {
        integration_id: pledgesync_core::IntegrationId::new(),
        ..fake.job()
    };
    let outcome = fetcher(&fake, config(100, 5))
        .handle_job(forged, delivery(0))
        .await;
    assert!(matches!(outcome, Outcome::DeadLetter { .. }), "{outcome:?}");
    let state = fake.lock();
    assert_eq!(state.run.phase, RunPhase::Queued);
    assert!(state.published.is_empty() && state.failed.is_none());
}

#[tokio::test]
async fn ended_and_unknown_runs_are_acked_without_work() {
    let fake = Arc::new(Fake::new(SyncMode::Full, 5, 0, 10));
    fake.lock().run.phase = RunPhase::Ended;
    let fetcher = fetcher(&fake, config(100, 5));
    assert_eq!(
        fetcher.handle_job(fake.job(), delivery(0)).await,
        Outcome::Ack
    );
    let unknown = SyncJob {
        run_id: pledgesync_core::RunId::new(),
        ..fake.job()
    };
    assert_eq!(fetcher.handle_job(unknown, delivery(0)).await, Outcome::Ack);
    assert!(fake.lock().published.is_empty());
}

#[tokio::test]
async fn shutdown_hands_the_run_on_at_the_next_page() {
    let fake = Arc::new(Fake::new(SyncMode::Full, 50, 0, 10));
    let shutdown = Shutdown::new();
    shutdown.trigger();
    let fetcher = Fetcher::new(fake.clone(), config(100, 5), shutdown);
    assert_eq!(
        fetcher.handle_job(fake.job(), delivery(0)).await,
        Outcome::Ack
    );
    let state = fake.lock();
    assert_eq!(state.jobs.len(), 1, "a continuation carries the run on");
    assert!(state.published.is_empty());
    assert!(state.run.checkpoint.is_some(), "the plan is committed");
}

#[tokio::test]
async fn a_continuation_that_cannot_be_published_leaves_the_delivery_to_be_retried() {
    let fake = Arc::new(Fake::new(SyncMode::Full, 50, 0, 10));
    fake.lock().fail_job_publish = true;
    let outcome = fetcher(&fake, config(1, 5))
        .handle_job(fake.job(), delivery(0))
        .await;
    assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
    let checkpoint = fake.lock().run.checkpoint.clone().expect("checkpoint");
    let checkpoint = Checkpoint::from_json(&checkpoint).expect("readable");
    assert_eq!(checkpoint.next_seq, 1);
    assert!(matches!(
        checkpoint.stage,
        Stage::Records {
            module: 0,
            position: Some(_)
        }
    ));
}

#[tokio::test]
async fn disabled_integrations_fail_the_run_without_calling_zoho() {
    let fake = Arc::new(Fake::new(SyncMode::Full, 5, 0, 10));
    fake.lock().usability = Usability::Disabled;
    assert_eq!(
        fetcher(&fake, config(100, 5))
            .handle_job(fake.job(), delivery(0))
            .await,
        Outcome::Ack
    );
    let state = fake.lock();
    assert!(state
        .failed
        .as_ref()
        .is_some_and(|(m, reauth)| m.contains("disabled") && !reauth));
    assert!(state.listings.is_empty());
}
