use std::time::Duration;

use pledgesync_broker::{
    run_consumer_with, ConsumeError, DeliveryInfo, Outcome, PublishOptions, WorkQueue,
};
use pledgesync_core::messages::SyncJob;
use pledgesync_core::shutdown::Shutdown;
use tokio::sync::{mpsc, watch};

use crate::common::{cleanup, connect, fast_consumer, job, recv, wait_for_depth};

#[tokio::test]
async fn shutdown_stops_taking_deliveries_and_acks_the_one_in_flight() {
    let broker = connect("shutdown").await;
    let jobs = broker.topology().queue(WorkQueue::Jobs);
    for id in ["in-flight", "left-for-later"] {
        broker
            .publish(WorkQueue::Jobs, &job(), &PublishOptions::new(id))
            .await
            .expect("confirmed");
    }

    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (release, released) = watch::channel(false);
    let shutdown = Shutdown::new();
    let consumer = tokio::spawn(run_consumer_with(
        broker.clone(),
        fast_consumer(WorkQueue::Jobs, 1),
        move |_: SyncJob, info: DeliveryInfo| {
            let started = started_tx.clone();
            let mut released = released.clone();
            async move {
                let _ = started.send(info.message_id);
                let _ = released.wait_for(|go| *go).await;
                Outcome::Ack
            }
        },
        shutdown.clone(),
    ));
    assert_eq!(
        recv(&mut started, "the first delivery").await.as_deref(),
        Some("in-flight")
    );

    shutdown.trigger();
    // The runner now waits for its in-flight handler instead of returning (a bounded negative
    // check: nothing may finish while the handler is held).
    let mut consumer = consumer;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut consumer)
            .await
            .is_err(),
        "the runner returned while a handler was still running"
    );
    // Once the handler finishes, its outcome is settled: the message is acked, not handed back.
    release.send(true).expect("release");
    consumer
        .await
        .expect("join")
        .expect("stopped within the grace period");
    // One message left: the one published second, never taken after shutdown. Had the in-flight
    // one not been acked, closing the channel would have handed it back too.
    wait_for_depth(&broker, &jobs, 1).await;
    assert!(
        started.try_recv().is_err(),
        "the second message was never taken"
    );
    cleanup(&broker).await;
}

#[tokio::test]
async fn a_handler_that_outlives_the_grace_period_is_abandoned_and_its_message_kept() {
    let broker = connect("grace").await;
    let jobs = broker.topology().queue(WorkQueue::Jobs);
    broker
        .publish(WorkQueue::Jobs, &job(), &PublishOptions::new("slow"))
        .await
        .expect("confirmed");
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let shutdown = Shutdown::new();
    let mut options = fast_consumer(WorkQueue::Jobs, 1);
    options.grace_period = Duration::from_millis(200);
    let consumer = tokio::spawn(run_consumer_with(
        broker.clone(),
        options,
        move |_: SyncJob, _: DeliveryInfo| {
            let started = started_tx.clone();
            async move {
                let _ = started.send(());
                std::future::pending::<()>().await;
                Outcome::Ack
            }
        },
        shutdown.clone(),
    ));
    recv(&mut started, "the delivery").await;
    shutdown.trigger();
    let result = consumer.await.expect("join");
    assert!(
        matches!(
            result,
            Err(ConsumeError::GracePeriodExceeded { in_flight: 1, .. })
        ),
        "{result:?}"
    );
    // Not acked, so RabbitMQ has it back.
    wait_for_depth(&broker, &jobs, 1).await;
    cleanup(&broker).await;
}
