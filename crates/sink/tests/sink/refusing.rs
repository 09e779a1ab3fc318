//! Batches that must not be applied: malformed, forged, of an unknown run, of a finished run.

use std::time::Duration;

use pledgesync_broker::{PublishOptions, WorkQueue};
use pledgesync_core::{Module, RunId};
use pledgesync_sink::apply::Applied;
use tokio::sync::mpsc;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_malformed_message_is_dead_lettered_and_the_next_batch_applied() {
    let db = TestDb::new().await;
    let mq = TestBroker::new().await;
    let f = Fixture::new(&db.store).await;
    let other = Fixture::new(&db.store).await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let sink = Sink::start(mq.broker.clone(), db.store.clone(), 1, tx);

    mq.broker
        .publish_bytes(
            WorkQueue::Batches,
            "RecordBatch",
            b"{\"schema_version\": 1, \"run_id\": ",
            &PublishOptions::new("garbage"),
        )
        .await
        .expect("publish garbage");
    // Well-formed, but it names a run of another integration: a forged message.
    let mut forged = f.upsert(
        0,
        Module::Contacts,
        vec![contact(1, "victim@example.com", "X", 1)],
    );
    forged.run_id = other.run;
    mq.publish(&forged).await;
    // Nor may a batch name a run that does not exist.
    let mut unknown = f.upsert(
        1,
        Module::Contacts,
        vec![contact(1, "victim@example.com", "X", 1)],
    );
    unknown.run_id = RunId::new();
    mq.publish(&unknown).await;
    mq.publish(&f.upsert(
        2,
        Module::Contacts,
        vec![contact(2, "good@example.com", "Good", 1)],
    ))
    .await;

    let handled = receive(&mut events, 3, WAIT).await;
    assert!(
        handled[0]
            .result
            .as_ref()
            .is_err_and(|e| e.contains("forged")),
        "{handled:?}"
    );
    assert!(
        handled[1]
            .result
            .as_ref()
            .is_err_and(|e| e.contains("does not exist")),
        "{handled:?}"
    );
    assert!(
        matches!(handled[2].result, Ok(Applied::Written(_))),
        "{handled:?}"
    );
    assert!(db
        .store
        .get_member(f.audience, "good@example.com")
        .await
        .expect("read")
        .is_some());
    assert!(db
        .store
        .get_member(other.audience, "victim@example.com")
        .await
        .expect("read")
        .is_none());
    assert!(db
        .store
        .get_member(f.audience, "victim@example.com")
        .await
        .expect("read")
        .is_none());

    let letters = eventually("three dead letters", WAIT, || async {
        let letters = mq.dead_letters().await;
        (letters.len() == 3).then_some(letters)
    })
    .await;
    let reasons: Vec<String> = letters
        .iter()
        .map(|l| l.reason.clone().unwrap_or_default())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("not valid JSON")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("forged")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("does not exist")),
        "{reasons:?}"
    );
    sink.stop().await;
}

#[tokio::test]
async fn batches_of_a_finished_run_are_acked_without_effect() {
    let db = TestDb::new().await;
    let mq = TestBroker::new().await;
    let f = Fixture::new(&db.store).await;
    assert!(db
        .store
        .cancel_run(f.run, "cancelled by the creator")
        .await
        .expect("cancel"));
    let (tx, mut events) = mpsc::unbounded_channel();
    let sink = Sink::start(mq.broker.clone(), db.store.clone(), 1, tx);

    mq.publish(&f.upsert(
        0,
        Module::Contacts,
        vec![contact(1, "late@example.com", "Late", 1)],
    ))
    .await;
    let handled = receive(&mut events, 1, WAIT).await;
    assert!(
        matches!(handled[0].result, Ok(Applied::Discarded("run_cancelled"))),
        "{handled:?}"
    );
    assert_eq!(db.store.count_members(f.audience).await.expect("count"), 0);
    assert_eq!(run_of(&db.store, f.run).await.counters.batches_applied, 0);
    assert!(mq.dead_letters().await.is_empty());
    sink.stop().await;
}

#[tokio::test]
async fn unmapping_the_audience_mid_run_stops_the_run() {
    let db = TestDb::new().await;
    let mq = TestBroker::new().await;
    let f = Fixture::new(&db.store).await;
    db.store
        .set_audience(f.integration, None)
        .await
        .expect("unmap");
    let (tx, mut events) = mpsc::unbounded_channel();
    let sink = Sink::start(mq.broker.clone(), db.store.clone(), 1, tx);

    mq.publish(&f.upsert(
        0,
        Module::Leads,
        vec![contact(1, "unwanted@example.com", "U", 1)],
    ))
    .await;
    mq.publish(&f.upsert(
        1,
        Module::Leads,
        vec![contact(2, "unwanted2@example.com", "U", 1)],
    ))
    .await;
    // Unmapping cancelled the run at once; its batches on the way are acked without effect.
    let handled = receive(&mut events, 2, WAIT).await;
    for one in &handled {
        assert!(
            matches!(one.result, Ok(Applied::Discarded("run_cancelled"))),
            "{handled:?}"
        );
    }
    let run = run_of(&db.store, f.run).await;
    assert_eq!(run.status, pledgesync_store::RunStatus::Cancelled);
    assert!(run.error.is_some_and(|e| e.contains("unmapped")));
    assert_eq!(db.store.count_members(f.audience).await.expect("count"), 0);
    sink.stop().await;
}
