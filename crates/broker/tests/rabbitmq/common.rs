//! Helpers shared by the RabbitMQ tests: a throwaway topology, fast options, waiting on
//! conditions with a deadline, and a TCP proxy that can make RabbitMQ "go away".

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pledgesync_broker::{Backoff, Broker, ConnectOptions, ConsumerOptions, Topology, WorkQueue};
use pledgesync_core::messages::{SyncJob, SyncMode, Trigger};
use pledgesync_core::settings::RabbitMqSettings;
use pledgesync_core::{IntegrationId, RunId};
use secrecy::SecretString;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

pub const DELIVERY_LIMIT: u32 = 3;
pub const WAIT: Duration = Duration::from_secs(15);

pub fn rabbitmq_url() -> String {
    std::env::var("PLEDGESYNC__RABBITMQ__URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

pub fn settings_for(url: String) -> RabbitMqSettings {
    RabbitMqSettings {
        url: SecretString::from(url),
        prefetch: 4,
        delivery_limit: DELIVERY_LIMIT,
        ..RabbitMqSettings::default()
    }
}

/// A topology no other test uses.
pub fn unique_topology() -> Topology {
    let id = uuid::Uuid::new_v4().simple().to_string();
    Topology::new(format!("test.broker.{}", &id[..12]), DELIVERY_LIMIT)
}

pub fn fast_connect_options(name: &str) -> ConnectOptions {
    ConnectOptions {
        connection_name: format!("pledgesync-broker-test:{name}"),
        backoff: Backoff::new(Duration::from_millis(50), Duration::from_millis(500)),
        give_up_after: Duration::from_secs(10),
        confirm_timeout: Duration::from_secs(5),
    }
}

pub async fn connect(name: &str) -> Broker {
    connect_to(rabbitmq_url(), unique_topology(), name).await
}

pub async fn connect_to(url: String, topology: Topology, name: &str) -> Broker {
    connect_with(url, topology, fast_connect_options(name)).await
}

pub async fn connect_with(url: String, topology: Topology, options: ConnectOptions) -> Broker {
    Broker::connect_with(&settings_for(url), topology, options)
        .await
        .expect("RabbitMQ is up (bash deploy/local/services.sh up)")
}

pub fn fast_consumer(queue: WorkQueue, prefetch: u16) -> ConsumerOptions {
    ConsumerOptions {
        grace_period: Duration::from_secs(5),
        retry_backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(40)),
        reconnect_backoff: Backoff::new(Duration::from_millis(50), Duration::from_millis(500)),
        ..ConsumerOptions::new(queue, prefetch)
    }
}

/// Deletes the test's queues and exchanges and closes the connection.
pub async fn cleanup(broker: &Broker) {
    let channel = broker.channel().await.expect("channel for cleanup");
    broker
        .topology()
        .delete(&channel)
        .await
        .expect("delete topology");
    broker.close().await;
}

pub fn job() -> SyncJob {
    SyncJob::new(
        RunId::new(),
        IntegrationId::new(),
        SyncMode::Full,
        Trigger::Manual,
    )
}

pub fn job_of(run: RunId) -> SyncJob {
    SyncJob::new(
        run,
        IntegrationId::new(),
        SyncMode::Incremental,
        Trigger::Schedule,
    )
}

/// Polls `condition` until it holds or `WAIT` passes.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `queue` holds exactly `messages` ready messages.
pub async fn wait_for_depth(broker: &Broker, queue: &str, messages: u32) {
    wait_until(&format!("{queue} to hold {messages} messages"), || async {
        broker.queue_depth(queue).await.map(|d| d.messages).ok() == Some(messages)
    })
    .await;
}

/// Receives from a test channel within `WAIT`.
pub async fn recv<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|| panic!("channel closed while waiting for {what}"))
}

/// A TCP proxy in front of RabbitMQ that can cut every connection and refuse new ones, the way
/// a restarting broker or a broken network looks to a client.
pub struct Proxy {
    pub port: u16,
    refusing: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let refusing = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (refusing2, live2) = (refusing.clone(), live.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if refusing2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                live2.lock().expect("lock").push(task.abort_handle());
            }
        })
        .abort_handle();
        Self {
            port,
            refusing,
            live,
            accept,
        }
    }

    /// Drops every proxied connection at once and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        for task in self.live.lock().expect("lock").drain(..) {
            task.abort();
        }
    }

    pub fn restore(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for task in self.live.lock().expect("lock").drain(..) {
            task.abort();
        }
    }
}

/// `host:port` of an AMQP URL, and the same URL pointed at another local port.
pub fn upstream_and_rewrite(url: &str, port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (credentials, rest) = rest.rsplit_once('@').map_or(("", rest), |(c, r)| (c, r));
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let at = if credentials.is_empty() { "" } else { "@" };
    (
        authority.to_owned(),
        format!("{scheme}://{credentials}{at}127.0.0.1:{port}/{path}"),
    )
}
