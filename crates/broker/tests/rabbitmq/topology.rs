use lapin::options::{BasicGetOptions, BasicNackOptions};
use pledgesync_broker::{Broker, BrokerError, PublishError, PublishOptions, Topology, WorkQueue};

use crate::common::{
    cleanup, connect, fast_connect_options, job, rabbitmq_url, settings_for, wait_until,
    DELIVERY_LIMIT,
};

#[tokio::test]
async fn declaring_twice_is_harmless_and_a_changed_limit_is_refused() {
    let broker = connect("topology").await;
    let topology = broker.topology().clone();

    // connect() declared once; a second binary (or a reconnect) declares again.
    let channel = broker.channel().await.expect("channel");
    topology
        .declare(&channel)
        .await
        .expect("second declare is idempotent");
    for queue in topology.queue_names() {
        let depth = broker.queue_depth(&queue).await.expect("queue exists");
        assert_eq!((depth.messages, depth.consumers), (0, 0), "{queue}");
    }
    broker.record_queue_depths().await.expect("gauges");

    // The same names with another delivery limit cannot be declared over the existing queues.
    let changed = Topology::new(topology.prefix(), topology.delivery_limit() + 1);
    let err = Broker::connect_with(
        &settings_for(rabbitmq_url()),
        changed,
        fast_connect_options("topology-changed"),
    )
    .await
    .expect_err("a different x-delivery-limit must be refused");
    assert!(matches!(err, BrokerError::TopologyMismatch { .. }), "{err}");
    assert!(!err.is_retryable());

    // An unknown queue is an error for depth, not a silent zero.
    let missing = broker
        .queue_depth("test.broker.no-such-queue")
        .await
        .expect_err("missing");
    assert!(
        matches!(missing, BrokerError::QueueNotFound { .. }),
        "{missing}"
    );

    // A publish that no queue takes is an error, not a loss.
    let channel = broker.channel().await.expect("channel");
    channel
        .queue_delete(
            topology.queue(WorkQueue::Jobs).as_str().into(),
            Default::default(),
        )
        .await
        .expect("delete jobs queue");
    let err = broker
        .publish(WorkQueue::Jobs, &job(), &PublishOptions::new("unroutable"))
        .await
        .expect_err("nothing is bound to the jobs key any more");
    assert!(
        matches!(
            err,
            PublishError::Unroutable {
                reply_code: 312,
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_retryable());

    cleanup(&broker).await;
}

/// RabbitMQ's own delivery limit is the backstop for consumers that never settle a message
/// (they crash, or nack without the runner): the queue dead-letters it by itself, and the
/// listing reads why from `x-death`.
#[tokio::test]
async fn the_queue_dead_letters_by_itself_once_the_delivery_limit_is_exceeded() {
    let broker = connect("delivery-limit").await;
    let jobs = broker.topology().queue(WorkQueue::Jobs);
    broker
        .publish(
            WorkQueue::Jobs,
            &job(),
            &PublishOptions::new("nacked-forever"),
        )
        .await
        .expect("confirmed");
    let channel = broker.channel().await.expect("channel");
    let mut deliveries = 0;
    let requeue = BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    };
    // Take and hand back the message until the queue gives up on it.
    while let Some(message) = channel
        .basic_get(jobs.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .expect("basic.get")
    {
        message.delivery.nack(requeue).await.expect("nack");
        deliveries += 1;
        assert!(
            deliveries <= DELIVERY_LIMIT + 1,
            "RabbitMQ never dead-lettered the message"
        );
        // A requeued message is back after the queue's log applied the nack.
        wait_until("the nacked message to be ready or dead", || async {
            let ready = broker.queue_depth(&jobs).await.map(|d| d.messages).ok();
            let dead = broker
                .queue_depth(&broker.topology().dead_queue(WorkQueue::Jobs))
                .await
                .map(|d| d.messages)
                .ok();
            ready == Some(1) || dead == Some(1)
        })
        .await;
    }
    assert_eq!(
        deliveries,
        DELIVERY_LIMIT + 1,
        "the limit counts failed deliveries after the first"
    );
    let letters = broker
        .dead_letters(WorkQueue::Jobs, 10)
        .await
        .expect("list");
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].reason.as_deref(),
        Some("RabbitMQ: delivery_limit")
    );
    assert_eq!(letters[0].source_queue.as_deref(), Some(jobs.as_str()));
    cleanup(&broker).await;
}
