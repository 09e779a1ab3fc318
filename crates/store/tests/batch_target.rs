//! The sink's per-batch read of a run and its integration.

mod common;

use common::{running_run, setup, TestDb};
use pledgesync_core::messages::SyncMode;
use pledgesync_core::{Module, RunId};
use pledgesync_store::{RunStatus, Schedule};

#[tokio::test]
async fn a_batch_target_is_the_run_and_its_integration_now() {
    let db = TestDb::new().await;
    let (integration, audience) = setup(&db.store, "acct_target").await;
    let run = running_run(&db.store, integration.id, SyncMode::Full).await;

    let target = db
        .store
        .batch_target(run)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(target.run_id, run);
    assert_eq!(target.integration_id, integration.id);
    assert_eq!(target.run_audience_id, audience);
    assert_eq!(target.run_status, RunStatus::Running);
    assert_eq!(target.integration_audience_id, Some(audience));
    assert!(!target.integration_deleted);
    assert_eq!(target.modules, vec![Module::Contacts, Module::Leads]);

    // The creator narrows the modules and unmaps the audience: the run keeps its audience, the
    // integration's current state shows.
    let schedule = Schedule {
        modules: vec![Module::Leads],
        ..Schedule::default()
    };
    db.store
        .update_schedule(integration.id, &schedule)
        .await
        .expect("schedule");
    db.store
        .set_audience(integration.id, None)
        .await
        .expect("unmap");
    let target = db
        .store
        .batch_target(run)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(target.run_audience_id, audience);
    assert_eq!(target.integration_audience_id, None);
    assert_eq!(target.modules, vec![Module::Leads]);

    db.store
        .delete_integration(integration.id)
        .await
        .expect("delete");
    let target = db
        .store
        .batch_target(run)
        .await
        .expect("read")
        .expect("exists");
    assert!(target.integration_deleted);
    assert_eq!(
        target.run_status,
        RunStatus::Cancelled,
        "deleting cancels the run"
    );

    assert_eq!(
        db.store.batch_target(RunId::new()).await.expect("read"),
        None
    );
}
