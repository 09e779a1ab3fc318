//! PostgreSQL going away under a running sink: batches wait or are redelivered, and each is
//! applied exactly once when it is back. The outage is a TCP proxy in front of PostgreSQL that
//! the test cuts (every connection dropped, new ones refused) and restores.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pledgesync_core::Module;
use pledgesync_sink::apply::Applied;
use pledgesync_store::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::common::*;

const WAIT: Duration = Duration::from_secs(60);

/// A TCP forwarder to PostgreSQL that can be switched off and on.
struct Proxy {
    address: SocketAddr,
    up: watch::Sender<bool>,
    refused: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let (up, watcher) = watch::channel(true);
        let refused = Arc::new(AtomicU64::new(0));
        let counter = refused.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*watcher.borrow() {
                    counter.fetch_add(1, Ordering::SeqCst);
                    drop(client);
                    continue;
                }
                let mut cut = watcher.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Proxy {
            address,
            up,
            refused,
            task,
        }
    }

    fn cut(&self) {
        self.up.send_replace(false);
    }

    fn restore(&self) {
        self.up.send_replace(true);
    }

    fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `host:port` of a `postgres://user:password@host:port/db` URL.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:5432")
    }
}

/// A store reaching the test database through `proxy`.
async fn store_through(db: &TestDb, proxy: &Proxy) -> Store {
    let url = db
        .url()
        .replacen(&host_port(&db.url()), &proxy.address.to_string(), 1);
    let mut settings = postgres_settings(&url, 4);
    settings.connect_timeout_secs = 1;
    Store::connect(&settings)
        .await
        .expect("connect through the proxy")
}

#[tokio::test]
async fn a_postgresql_outage_is_waited_out_and_nothing_is_lost_or_repeated() {
    let db = TestDb::new().await;
    let mq = TestBroker::new().await;
    let f = Fixture::new(&db.store).await;
    db.store.set_batches_total(f.run, 3).await.expect("total");
    let proxy = Proxy::start(host_port(&db.url())).await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let sink = Sink::start_with(
        mq.broker.clone(),
        store_through(&db, &proxy).await,
        2,
        Duration::from_secs(45),
        tx,
    );

    mq.publish(&f.upsert(
        0,
        Module::Contacts,
        vec![contact(1, "before@example.com", "Before", 1)],
    ))
    .await;
    receive(&mut events, 1, WAIT).await;

    proxy.cut();
    mq.publish(&f.upsert(
        1,
        Module::Contacts,
        vec![contact(2, "during@example.com", "During", 1)],
    ))
    .await;
    mq.publish(&f.upsert(
        2,
        Module::Contacts,
        vec![contact(3, "after@example.com", "After", 1)],
    ))
    .await;
    // The sink has found PostgreSQL gone (and keeps knocking) before it comes back.
    eventually("the sink to knock on the cut proxy", WAIT, || async {
        (proxy.refused() >= 3).then_some(())
    })
    .await;
    proxy.restore();

    let handled = receive(&mut events, 2, WAIT).await;
    assert!(
        handled
            .iter()
            .all(|h| matches!(h.result, Ok(Applied::Written(_)))),
        "{handled:?}"
    );
    let run = run_of(&db.store, f.run).await;
    assert_eq!(run.counters.batches_applied, 3);
    assert_eq!(run.counters.applied, 3);
    assert_eq!(run.status, pledgesync_store::RunStatus::Succeeded);
    assert!(
        mq.dead_letters().await.is_empty(),
        "no batch burnt its deliveries"
    );
    sink.stop().await;
}

#[tokio::test]
async fn a_batch_handed_back_during_an_outage_is_redelivered_and_applied_once() {
    let db = TestDb::new().await;
    let mq = TestBroker::new().await;
    let f = Fixture::new(&db.store).await;
    let proxy = Proxy::start(host_port(&db.url())).await;
    let (tx, mut events) = mpsc::unbounded_channel();
    // No patience: a failed batch goes straight back to RabbitMQ.
    let sink = Sink::start_with(
        mq.broker.clone(),
        store_through(&db, &proxy).await,
        1,
        Duration::ZERO,
        tx,
    );

    proxy.cut();
    let batch = f.upsert(
        0,
        Module::Leads,
        vec![contact(1, "ada@example.com", "Ada", 1)],
    );
    mq.publish(&batch).await;
    let failed = receive(&mut events, 1, WAIT).await;
    assert!(
        failed[0]
            .result
            .as_ref()
            .is_err_and(|e| e.contains("unavailable")),
        "{failed:?}"
    );
    proxy.restore();

    // Redelivered by the broker after its backoff, then applied.
    let handled = eventually_written(&mut events).await;
    assert_eq!(handled.seq, 0);
    mq.publish(&batch).await;
    let again = receive(&mut events, 1, WAIT).await;
    assert!(
        matches!(again[0].result, Ok(Applied::AlreadyApplied)),
        "{again:?}"
    );
    let counters = run_of(&db.store, f.run).await.counters;
    assert_eq!((counters.batches_applied, counters.applied), (1, 1));
    sink.stop().await;
}

/// Skips the failed attempts that may still come while the pool reconnects.
async fn eventually_written(events: &mut mpsc::UnboundedReceiver<Handled>) -> Handled {
    for _ in 0..4 {
        let handled = receive(events, 1, WAIT).await.remove(0);
        if matches!(handled.result, Ok(Applied::Written(_))) {
            return handled;
        }
        assert!(handled.result.is_err(), "{handled:?}");
    }
    panic!("the batch was not applied after four deliveries");
}
