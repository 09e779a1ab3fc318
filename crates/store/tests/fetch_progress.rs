//! The fetcher's queries: the checkpoint a second job may not overwrite, the back-pressure read,
//! and deletion candidates with the version that was applied.

mod common;

use common::{at, member, running_run, setup, upsert_batch, TestDb};
use pledgesync_core::messages::SyncMode;
use pledgesync_core::Module;
use pledgesync_store::RunStatus;
use serde_json::json;

#[tokio::test]
async fn a_checkpoint_is_saved_only_over_the_expected_one() {
    let db = TestDb::new().await;
    let (integration, _) = setup(&db.store, "acct-checkpoint").await;
    let run = running_run(&db.store, integration.id, SyncMode::Full).await;

    let first = json!({"version": 1, "next_seq": 1});
    assert!(db
        .store
        .save_checkpoint_if(run, 0, &first, 1, 200)
        .await
        .expect("save"));
    // A duplicate job that still believes nothing was published is refused.
    let stale = json!({"version": 1, "next_seq": 1, "stale": true});
    assert!(!db
        .store
        .save_checkpoint_if(run, 0, &stale, 1, 200)
        .await
        .expect("save"));
    assert!(db
        .store
        .save_checkpoint_if(run, 1, &json!({"next_seq": 2}), 2, 400)
        .await
        .expect("save"));

    let row = db.store.get_run(run).await.expect("run");
    assert_eq!(row.checkpoint, Some(json!({"next_seq": 2})));
    assert_eq!(
        (row.counters.batches_published, row.counters.fetched),
        (2, 400)
    );

    db.store.cancel_run(run, "test").await.expect("cancel");
    assert!(
        !db.store
            .save_checkpoint_if(run, 2, &json!({}), 3, 600)
            .await
            .expect("save"),
        "a cancelled run takes no checkpoint"
    );
}

#[tokio::test]
async fn progress_counts_published_and_applied_batches() {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct-progress").await;
    let run = running_run(&db.store, integration.id, SyncMode::Full).await;
    assert!(db
        .store
        .save_checkpoint_if(run, 0, &json!({}), 3, 3)
        .await
        .expect("save"));
    let batch = upsert_batch(
        run,
        0,
        integration.id,
        audience,
        Module::Contacts,
        vec![member(11, "a@example.com", 1)],
    );
    db.store.apply_batch(&batch).await.expect("apply");

    let progress = db.store.fetch_progress(run).await.expect("progress");
    assert_eq!(progress.status, RunStatus::Running);
    assert_eq!(
        (progress.batches_published, progress.batches_applied),
        (3, 1)
    );
    assert_eq!(
        db.store
            .outstanding_batches(run)
            .await
            .expect("outstanding"),
        2
    );
    assert!(db
        .store
        .fetch_progress(pledgesync_core::RunId::new())
        .await
        .is_err());
}

#[tokio::test]
async fn unseen_sources_come_with_the_version_applied() {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct-unseen").await;
    let first = running_run(&db.store, integration.id, SyncMode::Full).await;
    let batch = upsert_batch(
        first,
        0,
        integration.id,
        audience,
        Module::Contacts,
        vec![
            member(11, "a@example.com", 1),
            member(12, "b@example.com", 5),
            member(13, "c@example.com", 9),
        ],
    );
    db.store.apply_batch(&batch).await.expect("apply");
    db.store.cancel_run(first, "next").await.expect("cancel");

    // A second full run sees only record 12.
    let second = running_run(&db.store, integration.id, SyncMode::Full).await;
    let seen = upsert_batch(
        second,
        0,
        integration.id,
        audience,
        Module::Contacts,
        vec![member(12, "b@example.com", 5)],
    );
    db.store.apply_batch(&seen).await.expect("apply");

    let unseen = db
        .store
        .unseen_sources_with_versions(integration.id, second, Module::Contacts, None, 10)
        .await
        .expect("unseen");
    let ids: Vec<(&str, _)> = unseen.iter().map(|(id, at)| (id.as_str(), *at)).collect();
    assert_eq!(ids, vec![("11", Some(at(1))), ("13", Some(at(9)))]);
    let after = unseen[0].0.clone();
    let rest = db
        .store
        .unseen_sources_with_versions(integration.id, second, Module::Contacts, Some(&after), 10)
        .await
        .expect("unseen");
    assert_eq!(rest.len(), 1);
    assert!(db
        .store
        .unseen_sources_with_versions(integration.id, second, Module::Leads, None, 10)
        .await
        .expect("unseen")
        .is_empty());
}
