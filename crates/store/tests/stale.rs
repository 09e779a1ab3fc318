//! The stale-run watchdog: runs without progress are failed with an error a person can act on,
//! runs that still move are left alone, and replicas sweeping at once fail each run once.
//!
//! Staleness is made by backdating timestamps in SQL, never by waiting.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{account, job, member, new_integration, running_run, setup, upsert_batch, TestDb};
use pledgesync_core::messages::{SyncMode, Trigger};
use pledgesync_core::{Module, RunId};
use pledgesync_store::{EnqueueOutcome, RunStart, RunStatus, Store};

const THRESHOLD: Duration = Duration::from_secs(1800);

/// One watchdog sweep at the test threshold.
async fn sweep(store: &pledgesync_store::Store) -> Vec<pledgesync_store::StaleRun> {
    store.fail_stale_runs(THRESHOLD, 100).await.expect("sweep")
}

/// Moves every timestamp the watchdog reads `minutes` into the past.
async fn age_run(store: &Store, run: RunId, minutes: i32) {
    sqlx::query(
        "UPDATE sync_runs SET created_at = created_at - make_interval(mins => $2), \
           started_at = started_at - make_interval(mins => $2), \
           heartbeat_at = heartbeat_at - make_interval(mins => $2) WHERE id = $1",
    )
    .bind(run.0)
    .bind(minutes)
    .execute(store.pool())
    .await
    .expect("age run");
    sqlx::query(
        "UPDATE run_batches SET applied_at = applied_at - make_interval(mins => $2) WHERE run_id = $1",
    )
    .bind(run.0)
    .bind(minutes)
    .execute(store.pool())
    .await
    .expect("age ledger");
    sqlx::query(
        "UPDATE outbox SET created_at = created_at - make_interval(mins => $2), \
           published_at = published_at - make_interval(mins => $2) WHERE run_id = $1",
    )
    .bind(run.0)
    .bind(minutes)
    .execute(store.pool())
    .await
    .expect("age outbox");
}

/// Marks the run's first job published, as the relay would.
async fn publish_job(store: &Store, run: RunId) {
    sqlx::query("UPDATE outbox SET published_at = now() WHERE run_id = $1")
        .bind(run.0)
        .execute(store.pool())
        .await
        .expect("publish");
}

#[tokio::test]
async fn a_silent_running_run_is_failed_and_its_late_messages_are_moot() {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct_a").await;
    let run = running_run(&db.store, integration.id, SyncMode::Full).await;
    assert!(
        sweep(&db.store).await.is_empty(),
        "a fresh run is not stale"
    );

    age_run(&db.store, run, 31).await;
    let failed = sweep(&db.store).await;
    assert_eq!(failed.len(), 1);
    let stale = &failed[0];
    assert_eq!(
        (stale.run_id, stale.integration_id, stale.was),
        (run, integration.id, RunStatus::Running)
    );
    assert!(stale.silent_for().expect("silence") >= Duration::from_secs(31 * 60));
    assert!(stale.duration().expect("duration") >= Duration::from_secs(31 * 60));

    let row = db.store.get_run(run).await.expect("run");
    assert_eq!(row.status, RunStatus::Failed);
    assert_eq!(row.finished_at, Some(stale.finished_at));
    let error = row.error.expect("error");
    assert!(
        error.starts_with("no worker made progress on this run for 30 minutes")
            && error.contains("press Sync Now")
            && error.contains("'Stale runs'"),
        "{error}"
    );
    assert!(
        db.store
            .fail_stale_runs(THRESHOLD, 100)
            .await
            .expect("again")
            .is_empty(),
        "a run is failed once"
    );

    // A redriven job of the run is acked without work; its fetcher's writes are refused; a late
    // batch finds the run over (the sink discards it as `run_failed`).
    assert!(matches!(
        db.store.start_run(run, integration.id).await,
        Ok(RunStart::Skip(RunStatus::Failed))
    ));
    assert!(!db.store.heartbeat_run(run).await.expect("heartbeat"));
    assert!(!db
        .store
        .save_checkpoint_if(run, 0, &serde_json::json!({"stage": 1}), 1, 1)
        .await
        .expect("checkpoint"));
    let target = db
        .store
        .batch_target(run)
        .await
        .expect("target")
        .expect("exists");
    assert_eq!(target.run_status, RunStatus::Failed);
    assert_eq!(
        db.store
            .set_batches_total(run, 0)
            .await
            .expect("late total"),
        RunStatus::Failed,
        "a late batch total does not complete a failed run"
    );

    // Sync Now works again.
    let again = db
        .store
        .enqueue_run(integration.id, SyncMode::Full, Trigger::Manual, job)
        .await
        .expect("sync now");
    assert!(matches!(again, EnqueueOutcome::Enqueued(_)), "{again:?}");
    assert_ne!(again.run().id, run);
    assert_eq!(again.run().audience_id, audience);
}

#[tokio::test]
async fn batches_applied_or_a_heartbeat_keep_a_run_alive() {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct_a").await;
    let run = running_run(&db.store, integration.id, SyncMode::Full).await;
    db.store
        .apply_batch(&upsert_batch(
            run,
            0,
            integration.id,
            audience,
            Module::Contacts,
            vec![member(1, "a@x.io", 1)],
        ))
        .await
        .expect("apply");
    age_run(&db.store, run, 60).await;
    // The fetcher has been quiet for an hour (waiting on the sink), but the sink applied a batch
    // of the run a minute ago: the run moves.
    sqlx::query(
        "UPDATE run_batches SET applied_at = now() - interval '1 minute' WHERE run_id = $1",
    )
    .bind(run.0)
    .execute(db.store.pool())
    .await
    .expect("recent batch");
    assert!(sweep(&db.store).await.is_empty());

    // Ledger quiet too, but the fetcher's heartbeat (sent while it waits) is fresh.
    age_run(&db.store, run, 60).await;
    assert!(db.store.heartbeat_run(run).await.expect("heartbeat"));
    assert!(sweep(&db.store).await.is_empty());
    assert_eq!(
        db.store.get_run(run).await.expect("run").status,
        RunStatus::Running
    );

    // Everything quiet: failed, with the newest sign of life reported.
    age_run(&db.store, run, 40).await;
    let failed = sweep(&db.store).await;
    assert_eq!(failed.len(), 1);
    let silent = failed[0].silent_for().expect("silence");
    assert!(
        silent >= Duration::from_secs(40 * 60) && silent < Duration::from_secs(45 * 60),
        "{silent:?}"
    );
}

#[tokio::test]
async fn queued_runs_count_from_the_publish_of_their_job() {
    let db = TestDb::new().await;
    let (integration, _) = setup(&db.store, "acct_a").await;
    let run = db
        .store
        .enqueue_run(integration.id, SyncMode::Full, Trigger::Manual, job)
        .await
        .expect("enqueue")
        .run()
        .id;

    // Its job is still in the outbox (RabbitMQ was down for an hour): nothing was lost, the relay
    // will publish it, so the run waits.
    age_run(&db.store, run, 60).await;
    assert!(sweep(&db.store).await.is_empty());

    // Published a minute ago: it may wait in the jobs queue for up to the threshold.
    publish_job(&db.store, run).await;
    assert!(sweep(&db.store).await.is_empty());

    // Published 31 minutes ago and no fetcher ever started it: failed, saying so.
    age_run(&db.store, run, 31).await;
    let failed = sweep(&db.store).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].was, RunStatus::Queued);
    let row = db.store.get_run(run).await.expect("run");
    assert_eq!(row.status, RunStatus::Failed);
    let error = row.error.expect("error");
    assert!(
        error.starts_with("no worker picked this run up for 30 minutes")
            && error.contains("press Sync Now"),
        "{error}"
    );
    assert!(matches!(
        db.store.start_run(run, integration.id).await,
        Ok(RunStart::Skip(RunStatus::Failed))
    ));
}

#[tokio::test]
async fn finished_runs_are_never_touched() {
    let db = TestDb::new().await;
    let (integration, _) = setup(&db.store, "acct_a").await;
    let run = running_run(&db.store, integration.id, SyncMode::Full).await;
    db.store.cancel_run(run, "by hand").await.expect("cancel");
    age_run(&db.store, run, 120).await;
    assert!(sweep(&db.store).await.is_empty());
    let row = db.store.get_run(run).await.expect("run");
    assert_eq!(
        (row.status, row.error.as_deref()),
        (RunStatus::Cancelled, Some("by hand"))
    );
}

#[tokio::test]
async fn replicas_sweeping_at_once_fail_each_stale_run_once() {
    let db = TestDb::new().await;
    let a = account("acct_a");
    let audience = db
        .store
        .create_audience(&a, "Backers")
        .await
        .expect("audience");
    let mut stale = HashSet::new();
    for i in 0..24 {
        let integration = db
            .store
            .insert_integration(&new_integration(&a, &format!("org{i}"), Some(audience.id)))
            .await
            .expect("integration");
        let run = running_run(&db.store, integration.id, SyncMode::Incremental).await;
        // Every third run is still moving.
        if i % 3 != 0 {
            age_run(&db.store, run, 45).await;
            stale.insert(run);
        }
    }
    let replicas = [
        db.another_store().await,
        db.another_store().await,
        db.another_store().await,
        db.another_store().await,
    ];
    // Small limits, so the replicas take turns over several sweeps each.
    let sweeps = replicas.iter().map(|store| async move {
        let mut mine = Vec::new();
        for _ in 0..4 {
            mine.extend(store.fail_stale_runs(THRESHOLD, 3).await.expect("sweep"));
        }
        mine
    });
    let mut failed: Vec<RunId> = futures::future::join_all(sweeps)
        .await
        .into_iter()
        .flatten()
        .map(|s| s.run_id)
        .collect();
    failed.extend(
        db.store
            .fail_stale_runs(THRESHOLD, 100)
            .await
            .expect("rest")
            .into_iter()
            .map(|s| s.run_id),
    );
    let unique: HashSet<RunId> = failed.iter().copied().collect();
    assert_eq!(failed.len(), unique.len(), "no run failed twice");
    assert_eq!(unique, stale);
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM sync_runs GROUP BY status ORDER BY status")
            .fetch_all(db.store.pool())
            .await
            .expect("statuses");
    assert_eq!(
        statuses,
        [("failed".to_owned(), 16), ("running".to_owned(), 8)]
    );
}

#[tokio::test]
async fn a_run_whose_batch_is_being_applied_right_now_is_skipped() {
    let db = TestDb::new().await;
    let (integration, _) = setup(&db.store, "acct_a").await;
    let run = running_run(&db.store, integration.id, SyncMode::Full).await;
    age_run(&db.store, run, 45).await;
    // A sink's transaction has written the run's next ledger row and not committed yet: its
    // foreign key holds a key-share lock on the run row.
    let mut sink = db.store.pool().begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO run_batches (run_id, seq, module, kind, records) VALUES ($1, 0, 'Contacts', 'upsert', 1)",
    )
    .bind(run.0)
    .execute(&mut *sink)
    .await
    .expect("ledger row");
    assert!(
        sweep(&db.store).await.is_empty(),
        "skipped while the batch is in flight, not waited for"
    );
    // The sink's transaction rolls back (it crashed): nothing moved after all.
    sink.rollback().await.expect("rollback");
    assert_eq!(sweep(&db.store).await.len(), 1);
}
