use std::collections::HashMap;
use std::time::Duration;

use pledgesync_broker::{
    run_consumer_with, ConnectOptions, DeliveryInfo, Outcome, PublishOptions, WorkQueue,
};
use pledgesync_core::messages::SyncJob;
use pledgesync_core::shutdown::Shutdown;
use tokio::sync::{mpsc, watch};

use crate::common::{
    cleanup, connect, connect_to, connect_with, fast_connect_options, fast_consumer, job,
    rabbitmq_url, recv, unique_topology, upstream_and_rewrite, wait_for_depth, wait_until, Proxy,
};

/// The connection is closed under a consumer that holds an unacked delivery: the consumer
/// resubscribes on a new connection, the held message comes back, and nothing is lost.
#[tokio::test]
async fn a_closed_connection_is_survived_and_the_held_message_redelivered() {
    let broker = connect("reconnect-close").await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (release, released) = watch::channel(false);
    let shutdown = Shutdown::new();
    let consumer = tokio::spawn(run_consumer_with(
        broker.clone(),
        fast_consumer(WorkQueue::Jobs, 2),
        move |job: SyncJob, info: DeliveryInfo| {
            let tx = tx.clone();
            let mut released = released.clone();
            async move {
                let _ = tx.send((job, info.redelivered));
                // Until released, hold every delivery: it is in flight when the connection drops.
                let _ = released.wait_for(|go| *go).await;
                Outcome::Ack
            }
        },
        shutdown.clone(),
    ));
    let held = job();
    broker
        .publish(WorkQueue::Jobs, &held, &PublishOptions::new("held"))
        .await
        .expect("confirmed");
    let (first, redelivered) = recv(&mut rx, "the held job").await;
    assert_eq!((first, redelivered), (held.clone(), false));

    broker.drop_connection().await;
    release.send(true).expect("release");
    // Its ack was on the dead connection, so RabbitMQ delivers it again to the new subscription.
    let (again, redelivered) = recv(&mut rx, "the held job again").await;
    assert_eq!((again, redelivered), (held, true));
    // Publishing goes on over the new connection, and the new subscription gets it.
    let after = job();
    broker
        .publish(WorkQueue::Jobs, &after, &PublishOptions::new("after"))
        .await
        .expect("confirmed after reconnect");
    assert_eq!(recv(&mut rx, "the job published after").await.0, after);
    assert!(broker.connections_opened() >= 2);

    shutdown.trigger();
    consumer.await.expect("join").expect("clean stop");
    wait_for_depth(&broker, &broker.topology().queue(WorkQueue::Jobs), 0).await;
    cleanup(&broker).await;
}

/// RabbitMQ vanishes at the TCP level for a while (every socket cut, new ones refused): the
/// readiness check says so, publishes fail as retryable, and once it is back the consumer
/// resubscribes and receives everything published, with nothing lost.
#[tokio::test]
async fn rabbitmq_going_away_and_coming_back_loses_nothing() {
    let url = rabbitmq_url();
    let (upstream, _) = upstream_and_rewrite(&url, 0);
    let proxy = Proxy::start(upstream).await;
    let (_, proxied) = upstream_and_rewrite(&url, proxy.port);
    // Give up dialing quickly, so that a publish during the outage fails fast.
    let options = ConnectOptions {
        give_up_after: Duration::from_millis(500),
        ..fast_connect_options("reconnect-cut")
    };
    let broker = connect_with(proxied, unique_topology(), options).await;
    assert!(broker.readiness().await.error.is_none());

    let (tx, mut rx) = mpsc::unbounded_channel();
    let shutdown = Shutdown::new();
    let consumer = tokio::spawn(run_consumer_with(
        broker.clone(),
        fast_consumer(WorkQueue::Jobs, 4),
        move |_: SyncJob, info: DeliveryInfo| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(info.message_id.unwrap_or_default());
                Outcome::Ack
            }
        },
        shutdown.clone(),
    ));
    broker
        .publish(WorkQueue::Jobs, &job(), &PublishOptions::new("before"))
        .await
        .expect("confirmed");
    assert_eq!(recv(&mut rx, "the job before the cut").await, "before");

    proxy.cut();
    wait_until("the broker handle to notice", || async {
        !broker.is_connected()
    })
    .await;
    let readiness = broker.readiness().await;
    assert!(
        readiness.error.is_some(),
        "not ready while RabbitMQ is away"
    );
    let err = broker
        .publish(
            WorkQueue::Jobs,
            &job(),
            &PublishOptions::new("lost?").with_attempts(1),
        )
        .await
        .expect_err("cannot publish while RabbitMQ is away");
    assert!(err.is_retryable(), "{err}");

    proxy.restore();
    // Publish directly (not through the proxy) while the consumer is still reconnecting.
    let direct = connect_to(
        rabbitmq_url(),
        broker.topology().clone(),
        "reconnect-direct",
    )
    .await;
    for n in 0..5 {
        direct
            .publish(
                WorkQueue::Jobs,
                &job(),
                &PublishOptions::new(format!("during-{n}")),
            )
            .await
            .expect("confirmed");
    }
    // "before" may come again: its ack may have been cut off with the connection. Every
    // message published during the outage must arrive.
    let mut seen: HashMap<String, u32> = HashMap::new();
    while (0..5).any(|n| !seen.contains_key(&format!("during-{n}"))) {
        *seen
            .entry(recv(&mut rx, "the jobs published during the outage").await)
            .or_default() += 1;
    }
    assert!(
        seen.keys()
            .all(|id| id == "before" || id.starts_with("during-")),
        "{seen:?}"
    );
    assert!(broker.readiness().await.error.is_none());
    assert!(broker.connections_opened() >= 2);

    shutdown.trigger();
    consumer.await.expect("join").expect("clean stop");
    wait_for_depth(&broker, &broker.topology().queue(WorkQueue::Jobs), 0).await;
    direct.close().await;
    cleanup(&broker).await;
}
