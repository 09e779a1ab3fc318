//! The outbox relay's cycle: claim without overlap, mark, and be woken by new jobs.

mod common;

use std::time::Duration;

use common::{job, setup, TestDb};
use pledgesync_core::messages::{SyncMode, Trigger};

#[tokio::test]
async fn two_relays_never_claim_the_same_outbox_row() {
    let db = TestDb::new().await;
    for i in 0..6 {
        let (integration, _) = setup(&db.store, &format!("acct_{i}")).await;
        db.store
            .enqueue_run(integration.id, SyncMode::Full, Trigger::Manual, job)
            .await
            .expect("enqueue");
    }
    let other = db.another_store().await;
    let mut first = db.store.fetch_unpublished(4).await.expect("relay 1");
    let mut second = other.fetch_unpublished(4).await.expect("relay 2");
    let ids1: Vec<i64> = first.messages().iter().map(|m| m.id).collect();
    let ids2: Vec<i64> = second.messages().iter().map(|m| m.id).collect();
    assert_eq!((ids1.len(), ids2.len()), (4, 2));
    assert!(ids1.iter().all(|id| !ids2.contains(id)));

    first.mark_published(&ids1).await.expect("mark");
    first.commit().await.expect("commit");
    second.mark_failed(&ids2).await.expect("mark failed");
    second.commit().await.expect("commit");

    let again = db.store.fetch_unpublished(10).await.expect("again");
    let left: Vec<(i64, u32)> = again
        .messages()
        .iter()
        .map(|m| (m.id, m.attempts))
        .collect();
    assert_eq!(left, ids2.iter().map(|id| (*id, 1)).collect::<Vec<_>>());
    again.release().await.expect("release");
    assert_eq!(
        db.store
            .fetch_unpublished(10)
            .await
            .expect("after drop")
            .messages()
            .len(),
        2
    );
    assert_eq!(
        db.store
            .purge_published(Duration::ZERO)
            .await
            .expect("purge"),
        4
    );
}

#[tokio::test]
async fn a_relay_is_woken_when_a_job_is_written() {
    let db = TestDb::new().await;
    let (integration, _) = setup(&db.store, "acct_a").await;
    let mut listener = db.store.listen_outbox().await.expect("listen");
    db.store
        .enqueue_run(integration.id, SyncMode::Full, Trigger::Manual, job)
        .await
        .expect("enqueue");
    let notification = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("notified within the deadline")
        .expect("notification");
    assert_eq!(notification.channel(), pledgesync_store::OUTBOX_CHANNEL);
}
