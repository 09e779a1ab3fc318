//! Runs: Sync Now, lifecycle and counters, cursors.

mod common;

use common::{job, member, running_run, setup, upsert_batch, TestDb};
use pledgesync_core::messages::{Message, SyncJob, SyncMode, Trigger};
use pledgesync_core::{Module, RunId};
use pledgesync_store::{
    Checkpoint, CursorPosition, EnqueueOutcome, IntegrationStatus, RunStart, RunStatus, StoreError,
};

#[tokio::test]
async fn sync_now_twice_gives_one_run_with_one_job() {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct_a").await;
    let first = db
        .store
        .enqueue_run(integration.id, SyncMode::Full, Trigger::Manual, job)
        .await
        .expect("enqueue");
    let EnqueueOutcome::Enqueued(run) = &first else {
        panic!("expected a new run: {first:?}")
    };
    assert_eq!(
        (run.status, run.mode, run.trigger, run.audience_id),
        (RunStatus::Queued, SyncMode::Full, Trigger::Manual, audience)
    );
    let second = db
        .store
        .enqueue_run(integration.id, SyncMode::Incremental, Trigger::Manual, job)
        .await
        .expect("again");
    assert!(
        matches!(&second, EnqueueOutcome::AlreadyActive(again) if again.id == run.id),
        "{second:?}"
    );

    let claim = db.store.fetch_unpublished(10).await.expect("outbox");
    assert_eq!(claim.messages().len(), 1);
    let message = &claim.messages()[0];
    assert_eq!(message.run_id, Some(run.id));
    assert_eq!(message.queue, "pledgesync.jobs");
    assert!(message.headers.contains_key("traceparent"));
    let decoded = SyncJob::decode(&message.payload).expect("job decodes");
    assert_eq!(
        (decoded.run_id, decoded.integration_id),
        (run.id, integration.id)
    );
    drop(claim);

    let after = db.store.get_integration(integration.id).await.expect("get");
    assert!(
        after
            .next_sync_at
            .is_some_and(|next| next > chrono::Utc::now() + chrono::Duration::seconds(3000)),
        "a manual run starts (or defers) the schedule"
    );
}

#[tokio::test]
async fn concurrent_sync_now_creates_exactly_one_run() {
    let db = TestDb::new().await;
    let (integration, _) = setup(&db.store, "acct_a").await;
    let other = db.another_store().await;
    for _ in 0..5 {
        let calls = (0..8).map(|i| {
            let store = if i % 2 == 0 {
                db.store.clone()
            } else {
                other.clone()
            };
            async move {
                store
                    .enqueue_run(integration.id, SyncMode::Full, Trigger::Manual, job)
                    .await
            }
        });
        let outcomes = futures::future::join_all(calls).await;
        let mut ids = std::collections::HashSet::new();
        let mut enqueued = 0;
        for outcome in outcomes {
            let outcome = outcome.expect("enqueue");
            enqueued += usize::from(matches!(outcome, EnqueueOutcome::Enqueued(_)));
            ids.insert(outcome.run().id);
        }
        assert_eq!((enqueued, ids.len()), (1, 1));
        let run = *ids.iter().next().expect("one");
        db.store
            .cancel_run(run, "test round over")
            .await
            .expect("cancel");
    }
    let jobs = db.store.unpublished_count().await.expect("count");
    assert_eq!(jobs, 5);
}

#[tokio::test]
async fn run_lifecycle_from_queued_to_succeeded() {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct_a").await;
    let outcome = db
        .store
        .enqueue_run(integration.id, SyncMode::Full, Trigger::Manual, job)
        .await
        .expect("enqueue");
    let run = outcome.run().id;

    let forged = db
        .store
        .start_run(run, pledgesync_core::IntegrationId::new())
        .await;
    assert!(matches!(forged, Err(StoreError::Rejected(_))));
    assert_eq!(
        db.store.get_run(run).await.expect("run").status,
        RunStatus::Queued,
        "a forged job changes nothing"
    );
    let RunStart::Proceed(started) = db
        .store
        .start_run(run, integration.id)
        .await
        .expect("start")
    else {
        panic!("must proceed")
    };
    assert_eq!(started.status, RunStatus::Running);
    assert!(started.started_at.is_some() && started.checkpoint.is_none());
    assert!(
        matches!(
            db.store.start_run(run, integration.id).await,
            Ok(RunStart::Proceed(_))
        ),
        "a redelivered job resumes"
    );

    db.store.set_total_estimate(run, 3).await.expect("estimate");
    let checkpoint = Checkpoint {
        position: serde_json::json!({"module": 0, "page_token": "abc", "next_seq": 2}),
        batches_published: 2,
        fetched: 3,
    };
    assert!(db
        .store
        .save_checkpoint(run, &checkpoint)
        .await
        .expect("checkpoint"));
    let RunStart::Proceed(resumed) = db
        .store
        .start_run(run, integration.id)
        .await
        .expect("start")
    else {
        panic!("proceed")
    };
    assert_eq!(resumed.checkpoint, Some(checkpoint.position.clone()));
    assert_eq!(
        db.store
            .outstanding_batches(run)
            .await
            .expect("outstanding"),
        2
    );

    let mut batch = upsert_batch(
        run,
        0,
        integration.id,
        audience,
        Module::Contacts,
        vec![member(1, "a@x.io", 1), member(2, "b@x.io", 1)],
    );
    batch.skipped_by_reason.insert("missing_email".into(), 1);
    db.store.apply_batch(&batch).await.expect("batch 0");
    assert_eq!(
        db.store
            .outstanding_batches(run)
            .await
            .expect("outstanding"),
        1
    );
    let last = upsert_batch(run, 1, integration.id, audience, Module::Leads, vec![]);
    db.store.apply_batch(&last).await.expect("batch 1");
    assert_eq!(
        db.store.get_run(run).await.expect("run").status,
        RunStatus::Running,
        "total not known yet"
    );
    assert_eq!(
        db.store.set_batches_total(run, 2).await.expect("total"),
        RunStatus::Succeeded
    );

    let done = db.store.get_run(run).await.expect("run");
    assert_eq!(done.status, RunStatus::Succeeded);
    assert!(done.finished_at.is_some());
    let c = &done.counters;
    assert_eq!(
        (c.total_estimate, c.fetched, c.applied, c.skipped, c.deleted),
        (Some(3), 3, 2, 1, 0)
    );
    assert_eq!(
        (c.batches_published, c.batches_applied, c.batches_total),
        (2, 2, Some(2))
    );
    assert_eq!(c.skipped_by_reason.get("missing_email"), Some(&1));
    assert!(
        !db.store
            .save_checkpoint(run, &checkpoint)
            .await
            .expect("checkpoint after end"),
        "a finished run takes no checkpoint"
    );
    assert!(matches!(
        db.store.start_run(run, integration.id).await,
        Ok(RunStart::Skip(RunStatus::Succeeded))
    ));
    let integration = db
        .store
        .get_integration(integration.id)
        .await
        .expect("integration");
    assert!(
        integration.last_full_sync_at.is_some(),
        "a full run's success is recorded"
    );
    assert_eq!(
        integration.due_mode(chrono::Utc::now()),
        SyncMode::Incremental
    );
}

#[tokio::test]
async fn failing_a_run_can_put_the_integration_into_needs_reauth() {
    let db = TestDb::new().await;
    let (integration, _) = setup(&db.store, "acct_a").await;
    let run = running_run(&db.store, integration.id, SyncMode::Incremental).await;
    let message =
        "Zoho rejected the refresh token; reconnect the integration with a new grant code";
    assert!(db
        .store
        .fail_run(run, message, Some("refresh token rejected by Zoho"))
        .await
        .expect("fail"));
    let failed = db.store.get_run(run).await.expect("run");
    assert_eq!(
        (failed.status, failed.error.as_deref()),
        (RunStatus::Failed, Some(message))
    );
    let integration = db
        .store
        .get_integration(integration.id)
        .await
        .expect("integration");
    assert_eq!(integration.status, IntegrationStatus::NeedsReauth);
    assert!(
        !db.store
            .fail_run(run, "again", None)
            .await
            .expect("fail twice"),
        "a finished run keeps its status"
    );
    assert!(!db
        .store
        .cancel_run(run, "late")
        .await
        .expect("cancel finished"));
    assert!(matches!(
        db.store.cancel_run(RunId::new(), "x").await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn runs_are_listed_newest_first_in_pages() {
    let db = TestDb::new().await;
    let (integration, _) = setup(&db.store, "acct_a").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let run = db
            .store
            .enqueue_run(integration.id, SyncMode::Full, Trigger::Manual, job)
            .await
            .expect("enqueue")
            .run()
            .id;
        db.store.cancel_run(run, "next").await.expect("cancel");
        ids.push(run);
    }
    ids.reverse();
    let first = db
        .store
        .list_runs(integration.id, 2, None)
        .await
        .expect("page 1");
    let second = db
        .store
        .list_runs(integration.id, 2, first.last().map(|r| r.id))
        .await
        .expect("page 2");
    let third = db
        .store
        .list_runs(integration.id, 2, second.last().map(|r| r.id))
        .await
        .expect("page 3");
    let listed: Vec<RunId> = first
        .iter()
        .chain(&second)
        .chain(&third)
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, ids);
    assert!(db
        .store
        .active_run(integration.id)
        .await
        .expect("active")
        .is_none());
}

#[tokio::test]
async fn cursors_advance_only_when_a_run_succeeds_and_only_forward() {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct_a").await;
    assert_eq!(
        db.store
            .get_cursor(integration.id, Module::Contacts)
            .await
            .expect("cursor"),
        CursorPosition::default()
    );

    let failed = running_run(&db.store, integration.id, SyncMode::Incremental).await;
    let pos = |m: u32| CursorPosition {
        modified_since: Some(common::at(m)),
        deleted_since: Some(common::at(m)),
    };
    db.store
        .stage_cursor(failed, Module::Contacts, pos(50))
        .await
        .expect("stage");
    db.store
        .fail_run(failed, "Zoho answered 500 five times", None)
        .await
        .expect("fail");
    assert_eq!(
        db.store
            .get_cursor(integration.id, Module::Contacts)
            .await
            .expect("cursor"),
        CursorPosition::default()
    );

    let run = running_run(&db.store, integration.id, SyncMode::Incremental).await;
    db.store
        .stage_cursor(run, Module::Contacts, pos(20))
        .await
        .expect("stage");
    db.store
        .stage_cursor(run, Module::Contacts, pos(10))
        .await
        .expect("stage older keeps the later");
    db.store
        .apply_batch(&upsert_batch(
            run,
            0,
            integration.id,
            audience,
            Module::Contacts,
            vec![],
        ))
        .await
        .expect("apply");
    assert_eq!(
        db.store.set_batches_total(run, 1).await.expect("total"),
        RunStatus::Succeeded
    );
    assert_eq!(
        db.store
            .get_cursor(integration.id, Module::Contacts)
            .await
            .expect("cursor"),
        pos(20)
    );
    assert_eq!(
        db.store
            .get_cursor(integration.id, Module::Leads)
            .await
            .expect("cursor"),
        CursorPosition::default()
    );

    let moved = db
        .store
        .advance_cursor(integration.id, Module::Contacts, pos(5))
        .await
        .expect("advance");
    assert_eq!(moved, pos(20), "a cursor never moves back");
    let cursors = db.store.list_cursors(integration.id).await.expect("list");
    assert_eq!(cursors.len(), 1);
    assert_eq!(cursors[0].position, pos(20));
}
