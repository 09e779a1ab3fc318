use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use pledgesync_broker::{run_consumer_with, DeliveryInfo, Outcome, PublishOptions, WorkQueue};
use pledgesync_core::messages::{RecordBatch, SyncJob};
use pledgesync_core::shutdown::Shutdown;
use tokio::sync::mpsc;

use crate::common::{cleanup, connect, fast_consumer, job, recv, wait_for_depth, DELIVERY_LIMIT};

#[tokio::test]
async fn a_confirmed_publish_is_consumed_and_acked() {
    let broker = connect("publish-consume").await;
    let sent = job();
    broker
        .publish(WorkQueue::Jobs, &sent, &PublishOptions::new("job-1"))
        .await
        .expect("confirmed");
    let jobs = broker.topology().queue(WorkQueue::Jobs);
    wait_for_depth(&broker, &jobs, 1).await;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let shutdown = Shutdown::new();
    let consumer = tokio::spawn(run_consumer_with(
        broker.clone(),
        fast_consumer(WorkQueue::Jobs, 4),
        move |job: SyncJob, info: DeliveryInfo| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((job, info));
                Outcome::Ack
            }
        },
        shutdown.clone(),
    ));
    let (got, info) = recv(&mut rx, "the job").await;
    assert_eq!(got, sent);
    assert_eq!(info.message_id.as_deref(), Some("job-1"));
    assert_eq!(info.delivery_count, 0);
    assert!(!info.redelivered);
    assert_eq!(info.queue, WorkQueue::Jobs);

    shutdown.trigger();
    consumer.await.expect("join").expect("clean stop");
    // Acked, so closing the channel gave nothing back.
    wait_for_depth(&broker, &jobs, 0).await;
    cleanup(&broker).await;
}

#[tokio::test]
async fn a_retried_message_is_redelivered_with_a_growing_count_then_dead_lettered() {
    let broker = connect("retry").await;
    broker
        .publish(WorkQueue::Jobs, &job(), &PublishOptions::new("always-busy"))
        .await
        .expect("confirmed");

    let (tx, mut rx) = mpsc::unbounded_channel();
    let shutdown = Shutdown::new();
    let consumer = tokio::spawn(run_consumer_with(
        broker.clone(),
        fast_consumer(WorkQueue::Jobs, 1),
        move |_: SyncJob, info: DeliveryInfo| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(info);
                Outcome::retry("Zoho said 429")
            }
        },
        shutdown.clone(),
    ));
    let mut counts = Vec::new();
    for n in 0..=DELIVERY_LIMIT {
        let info = recv(&mut rx, &format!("delivery {n}")).await;
        assert_eq!(info.redelivered, n > 0);
        counts.push(info.delivery_count);
    }
    assert_eq!(counts, (0..=DELIVERY_LIMIT).collect::<Vec<_>>());

    let dead = broker.topology().dead_queue(WorkQueue::Jobs);
    wait_for_depth(&broker, &dead, 1).await;
    assert!(rx.try_recv().is_err(), "no delivery after the limit");
    let letters = broker
        .dead_letters(WorkQueue::Jobs, 10)
        .await
        .expect("list");
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].reason.as_deref(),
        Some(
            format!(
                "gave up after {} deliveries: Zoho said 429",
                DELIVERY_LIMIT + 1
            )
            .as_str()
        )
    );
    assert_eq!(letters[0].message_id.as_deref(), Some("always-busy"));

    shutdown.trigger();
    consumer.await.expect("join").expect("clean stop");
    wait_for_depth(&broker, &broker.topology().queue(WorkQueue::Jobs), 0).await;
    cleanup(&broker).await;
}

#[tokio::test]
async fn a_malformed_body_is_dead_lettered_and_the_consumer_carries_on() {
    let broker = connect("malformed").await;
    let options = PublishOptions::new("garbage");
    broker
        .publish_bytes(
            WorkQueue::Batches,
            "RecordBatch",
            b"{\"schema_version\": 1, \"oops\"",
            &options,
        )
        .await
        .expect("confirmed");
    let future =
        serde_json::json!({ "schema_version": 9, "run_id": pledgesync_core::RunId::new() });
    broker
        .publish_bytes(
            WorkQueue::Batches,
            "RecordBatch",
            future.to_string().as_bytes(),
            &PublishOptions::new("v9"),
        )
        .await
        .expect("confirmed");
    let good = RecordBatch {
        schema_version: RecordBatch::SCHEMA_VERSION,
        run_id: pledgesync_core::RunId::new(),
        integration_id: pledgesync_core::IntegrationId::new(),
        module: pledgesync_core::Module::Contacts,
        seq: 0,
        kind: pledgesync_core::messages::BatchKind::Upsert,
        records: vec![],
    };
    broker
        .publish(WorkQueue::Batches, &good, &PublishOptions::new("good"))
        .await
        .expect("confirmed");

    let handled = Arc::new(AtomicU32::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let shutdown = Shutdown::new();
    let seen = handled.clone();
    let consumer = tokio::spawn(run_consumer_with(
        broker.clone(),
        fast_consumer(WorkQueue::Batches, 1),
        move |batch: RecordBatch, _: DeliveryInfo| {
            seen.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            async move {
                let _ = tx.send(batch);
                Outcome::Ack
            }
        },
        shutdown.clone(),
    ));
    assert_eq!(recv(&mut rx, "the good batch").await, good);
    let dead = broker.topology().dead_queue(WorkQueue::Batches);
    wait_for_depth(&broker, &dead, 2).await;
    assert_eq!(
        handled.load(Ordering::SeqCst),
        1,
        "bad bodies never reach the handler"
    );

    let letters = broker
        .dead_letters(WorkQueue::Batches, 10)
        .await
        .expect("list");
    let reason_of = |id: &str| {
        letters
            .iter()
            .find(|l| l.message_id.as_deref() == Some(id))
            .and_then(|l| l.reason.clone())
            .unwrap_or_default()
    };
    assert!(
        reason_of("garbage").contains("not valid JSON for RecordBatch"),
        "{}",
        reason_of("garbage")
    );
    assert!(
        reason_of("v9").contains("schema_version 9 is not supported"),
        "{}",
        reason_of("v9")
    );
    for letter in &letters {
        assert_eq!(
            letter.source_queue.as_deref(),
            Some(broker.topology().queue(WorkQueue::Batches).as_str())
        );
        assert_eq!(letter.kind.as_deref(), Some("RecordBatch"));
        assert!(letter.failed_at.is_some());
    }

    shutdown.trigger();
    consumer.await.expect("join").expect("clean stop");
    wait_for_depth(&broker, &broker.topology().queue(WorkQueue::Batches), 0).await;
    cleanup(&broker).await;
}
