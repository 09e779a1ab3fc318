//! A throwaway database and a private RabbitMQ topology per test.

use pledgesync_broker::{Broker, DeadLetter, PublishOptions, Topology, WorkQueue};
use pledgesync_core::messages::RecordBatch;
use pledgesync_core::settings::{PostgresSettings, RabbitMqSettings};
use pledgesync_store::testing::TestDatabase;
use pledgesync_store::Store;
use secrecy::SecretString;

pub const RABBITMQ_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub fn rabbitmq_url() -> String {
    std::env::var("PLEDGESYNC__RABBITMQ__URL").unwrap_or_else(|_| RABBITMQ_URL.to_owned())
}

pub fn postgres_settings(url: &str, max_connections: u32) -> PostgresSettings {
    PostgresSettings {
        url: SecretString::from(url.to_owned()),
        max_connections,
        connect_timeout_secs: 5,
    }
}

/// A database of its own with the schema applied, dropped when the value is dropped.
pub struct TestDb {
    /// A store on it.
    pub store: Store,
    /// Its name, e.g. to find its sessions in `pg_stat_activity`.
    pub name: String,
    database: TestDatabase,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let database = TestDatabase::create()
            .await
            .expect("a test database (is PostgreSQL up? bash deploy/local/services.sh up)");
        TestDb {
            store: database.store().clone(),
            name: database.name().to_owned(),
            database,
        }
    }

    /// Another store on the same database with its own pool: a second sink process.
    pub async fn another_store(&self) -> Store {
        self.database.connect_another().await.expect("connect")
    }

    /// Its URL, for a process or a proxy that connects by itself.
    pub fn url(&self) -> String {
        self.database.url()
    }
}

pub fn rabbitmq_settings() -> RabbitMqSettings {
    RabbitMqSettings {
        url: SecretString::from(rabbitmq_url()),
        ..RabbitMqSettings::default()
    }
}

/// A topology of its own (queues named after a random prefix), deleted when dropped.
pub struct TestBroker {
    pub topology: Topology,
    pub broker: Broker,
}

impl TestBroker {
    pub async fn new() -> TestBroker {
        let topology = Topology::new(format!("test-sink-{}", uuid::Uuid::new_v4().simple()), 5);
        let broker = Broker::connect(&rabbitmq_settings(), topology.clone())
            .await
            .expect("RabbitMQ is up (else: bash deploy/local/services.sh up)");
        TestBroker { topology, broker }
    }

    /// Another connection to the same topology: a second sink process.
    pub async fn another(&self) -> Broker {
        Broker::connect(&rabbitmq_settings(), self.topology.clone())
            .await
            .expect("connect")
    }

    pub async fn publish(&self, batch: &RecordBatch) {
        let id = format!("{}/{}", batch.run_id, batch.seq);
        self.broker
            .publish(WorkQueue::Batches, batch, &PublishOptions::new(id))
            .await
            .expect("publish");
    }

    pub async fn dead_letters(&self) -> Vec<DeadLetter> {
        self.broker
            .dead_letters(WorkQueue::Batches, 100)
            .await
            .expect("list dead letters")
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let topology = self.topology.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(broker) = Broker::connect(&rabbitmq_settings(), topology.clone()).await {
                    if let Ok(channel) = broker.channel().await {
                        let _ = topology.delete(&channel).await;
                    }
                    broker.close().await;
                }
            });
        })
        .join();
    }
}
