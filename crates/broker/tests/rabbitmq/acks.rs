//! Acks sent together: deliveries that finish at once are acked with few `basic.ack` frames, and
//! a multiple ack never swallows a delivery that is still in work or being handed back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use pledgesync_broker::{run_consumer_with, DeliveryInfo, Outcome, PublishOptions, WorkQueue};
use pledgesync_core::messages::SyncJob;
use pledgesync_core::shutdown::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::common::{
    cleanup, connect, connect_to, fast_consumer, job, rabbitmq_url, recv, unique_topology,
    upstream_and_rewrite, wait_for_depth,
};

const MESSAGES: usize = 48;
/// Deliveries the test holds, then releases together in reverse order.
const GROUP: usize = 8;

/// Which messages are retried on their first delivery.
type Retried = fn(usize) -> bool;

fn every_seventh(i: usize) -> bool {
    i % 7 == 3
}

fn none(_: usize) -> bool {
    false
}

/// A delivery the handler holds until the test says how it ends.
struct Held {
    index: usize,
    delivery_count: u32,
    release: oneshot::Sender<Outcome>,
}

async fn publish_all(broker: &pledgesync_broker::Broker) {
    for i in 0..MESSAGES {
        broker
            .publish(
                WorkQueue::Jobs,
                &job(),
                &PublishOptions::new(format!("m{i}")),
            )
            .await
            .expect("confirmed");
    }
}

/// Runs a consumer that hands every delivery to the test, and releases them in reversed groups
/// (retrying those `retried` picks on their first delivery) until each message was acked once;
/// returns how many times each was handled.
async fn consume_in_reversed_groups(
    broker: pledgesync_broker::Broker,
    retried: Retried,
) -> HashMap<usize, u32> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Held>();
    let shutdown = Shutdown::new();
    let consumer = tokio::spawn(run_consumer_with(
        broker.clone(),
        fast_consumer(WorkQueue::Jobs, 16),
        move |_: SyncJob, info: DeliveryInfo| {
            let tx = tx.clone();
            async move {
                let index = info
                    .message_id
                    .as_deref()
                    .and_then(|id| id.strip_prefix('m'))
                    .and_then(|n| n.parse().ok())
                    .expect("a test message id");
                let (release, outcome) = oneshot::channel();
                let held = Held {
                    index,
                    delivery_count: info.delivery_count,
                    release,
                };
                if tx.send(held).is_err() {
                    return Outcome::retry("the test stopped");
                }
                outcome
                    .await
                    .unwrap_or_else(|_| Outcome::retry("the test stopped"))
            }
        },
        shutdown.clone(),
    ));
    let mut handled: HashMap<usize, u32> = HashMap::new();
    let mut acked = 0;
    while acked < MESSAGES {
        // Every message not yet acked is on its way (again), so a group this size will come.
        let size = GROUP.min(MESSAGES - acked);
        let mut group = Vec::with_capacity(size);
        while group.len() < size {
            group.push(recv(&mut rx, "a delivery").await);
        }
        for held in group.into_iter().rev() {
            *handled.entry(held.index).or_default() += 1;
            let outcome = if retried(held.index) && held.delivery_count == 0 {
                Outcome::retry("busy the first time")
            } else {
                acked += 1;
                Outcome::Ack
            };
            let _ = held.release.send(outcome);
        }
    }
    shutdown.trigger();
    consumer.await.expect("join").expect("clean stop");
    handled
}

fn assert_each_handled_as_expected(handled: &HashMap<usize, u32>, retried: Retried) {
    for i in 0..MESSAGES {
        let expected = if retried(i) { 2 } else { 1 };
        assert_eq!(
            handled.get(&i).copied(),
            Some(expected),
            "message m{i}: a retried message comes back once, an acked one never"
        );
    }
}

#[tokio::test]
async fn acks_of_deliveries_finishing_together_lose_nothing_and_swallow_no_retry() {
    let broker = connect("acks-together").await;
    publish_all(&broker).await;
    let handled = consume_in_reversed_groups(broker.clone(), every_seventh).await;
    assert_each_handled_as_expected(&handled, every_seventh);
    // Closing the channel would have handed back anything left unacked.
    wait_for_depth(&broker, &broker.topology().queue(WorkQueue::Jobs), 0).await;
    cleanup(&broker).await;
}

#[tokio::test]
async fn deliveries_finishing_together_share_ack_frames() {
    let counter = AckCounter::start(rabbitmq_url()).await;
    let broker = connect_to(counter.url.clone(), unique_topology(), "acks-frames").await;
    publish_all(&broker).await;
    // No retries here: a delivery waiting to be handed back keeps later acks apart (the test
    // above), as it must.
    let handled = consume_in_reversed_groups(broker.clone(), none).await;
    assert_each_handled_as_expected(&handled, none);
    wait_for_depth(&broker, &broker.topology().queue(WorkQueue::Jobs), 0).await;
    let frames = counter.acks.load(Ordering::SeqCst) as usize;
    let multiple = counter.multiple.load(Ordering::SeqCst);
    assert!(
        multiple > 0,
        "no multiple ack was sent ({frames} ack frames)"
    );
    assert!(
        frames <= MESSAGES / 2,
        "{frames} ack frames for {MESSAGES} acked deliveries released in groups of {GROUP}"
    );
    cleanup(&broker).await;
}

/// A TCP proxy in front of RabbitMQ that counts the `basic.ack` frames clients send.
struct AckCounter {
    url: String,
    acks: Arc<AtomicU32>,
    multiple: Arc<AtomicU32>,
}

impl AckCounter {
    async fn start(url: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (upstream, url) = upstream_and_rewrite(&url, port);
        let acks = Arc::new(AtomicU32::new(0));
        let multiple = Arc::new(AtomicU32::new(0));
        let (acks2, multiple2) = (acks.clone(), multiple.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (acks, multiple) = (acks2.clone(), multiple2.clone());
                tokio::spawn(relay(client, server, acks, multiple));
            }
        });
        Self {
            url,
            acks,
            multiple,
        }
    }
}

/// Copies both ways, reading the client's frames to count acks (AMQP 0-9-1: after the 8-byte
/// protocol header, frames of type, channel, size, payload and an end octet; a method frame's
/// payload starts with class and method ids, 60/80 for basic.ack, then the delivery tag and the
/// `multiple` bit).
async fn relay(
    client: TcpStream,
    server: TcpStream,
    acks: Arc<AtomicU32>,
    multiple: Arc<AtomicU32>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    let mut header = [0u8; 8];
    if client_read.read_exact(&mut header).await.is_err()
        || server_write.write_all(&header).await.is_err()
    {
        return;
    }
    loop {
        let mut head = [0u8; 7];
        if client_read.read_exact(&mut head).await.is_err() {
            return;
        }
        let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
        let mut rest = vec![0u8; size + 1];
        if client_read.read_exact(&mut rest).await.is_err() {
            return;
        }
        if head[0] == 1 && size >= 13 && rest[0..4] == [0, 60, 0, 80] {
            acks.fetch_add(1, Ordering::SeqCst);
            if rest[12] & 1 == 1 {
                multiple.fetch_add(1, Ordering::SeqCst);
            }
        }
        if server_write.write_all(&head).await.is_err()
            || server_write.write_all(&rest).await.is_err()
        {
            return;
        }
    }
}
