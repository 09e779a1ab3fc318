//! Shared test helpers: a throwaway database per test, and small fixtures.
#![allow(dead_code)]

pub mod run_fixture;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use pledgesync_core::messages::{BatchKind, Message, SyncJob};
use pledgesync_core::settings::PostgresSettings;
use pledgesync_core::{
    AccountId, AudienceId, DataCenter, IntegrationId, Module, RunId, ZohoRecordId,
};
use pledgesync_store::testing::TestDatabase;
use pledgesync_store::{
    ApplyBatch, Ciphertext, Integration, MemberUpsert, NewIntegration, NewRun, OutboxMessage,
    Schedule, Store, ZohoCredentials,
};
use secrecy::{ExposeSecret, SecretString};

pub const DEFAULT_URL: &str = pledgesync_store::testing::DEFAULT_POSTGRES_URL;

/// A database of its own (see `pledgesync_store::testing`), with its store and settings at hand.
pub struct TestDb {
    pub settings: PostgresSettings,
    pub store: Store,
    database: TestDatabase,
}

impl TestDb {
    /// A new database with the schema applied.
    pub async fn new() -> TestDb {
        TestDb::wrap(
            TestDatabase::create()
                .await
                .expect("test database (is PostgreSQL up? run deploy/local/services.sh up)"),
        )
    }

    /// A new, empty database (no migrations).
    pub async fn empty() -> TestDb {
        TestDb::wrap(
            TestDatabase::create_empty()
                .await
                .expect("test database (is PostgreSQL up? run deploy/local/services.sh up)"),
        )
    }

    fn wrap(database: TestDatabase) -> TestDb {
        TestDb {
            settings: database.settings().clone(),
            store: database.store().clone(),
            database,
        }
    }

    /// Another store on the same database, with its own pool (separate connections).
    pub async fn another_store(&self) -> Store {
        self.database.connect_another().await.expect("connect")
    }
}

pub fn settings_for(url: &str, max_connections: u32) -> PostgresSettings {
    PostgresSettings {
        url: SecretString::from(url.to_owned()),
        max_connections,
        connect_timeout_secs: 10,
    }
}

pub fn url_of(settings: &PostgresSettings) -> String {
    settings.url.expose_secret().to_owned()
}

pub fn account(name: &str) -> AccountId {
    AccountId::parse(name).expect("account id")
}

pub fn credentials() -> ZohoCredentials {
    ZohoCredentials {
        data_center: DataCenter::Eu,
        api_domain: "https://www.zohoapis.eu".into(),
        client_id: "1000.CLIENTID".into(),
        client_secret: Ciphertext(vec![1, 2, 3, 4]),
        refresh_token: Ciphertext(vec![5, 6, 7, 8]),
        encryption_key_id: "k1".into(),
        scopes: vec!["ZohoCRM.modules.ALL".into(), "ZohoCRM.org.READ".into()],
    }
}

pub fn new_integration(
    account: &AccountId,
    name: &str,
    audience: Option<AudienceId>,
) -> NewIntegration {
    NewIntegration {
        account_id: account.clone(),
        name: name.into(),
        credentials: credentials(),
        zoho_org_id: "20071234".into(),
        zoho_org_name: Some("Acme".into()),
        zoho_time_zone: Some("Europe/Berlin".into()),
        audience_id: audience,
        schedule: Schedule::default(),
    }
}

/// An account, an audience and an integration feeding it.
pub async fn setup(store: &Store, account_name: &str) -> (Integration, AudienceId) {
    let account = account(account_name);
    let audience = store
        .create_audience(&account, "Backers")
        .await
        .expect("audience");
    let integration = store
        .insert_integration(&new_integration(&account, "Zoho", Some(audience.id)))
        .await
        .expect("integration");
    (integration, audience.id)
}

/// What the scheduler would put in the outbox for a new run.
pub fn job(run: &NewRun) -> OutboxMessage {
    let job = SyncJob::new(run.run_id, run.integration_id, run.mode, run.trigger);
    OutboxMessage {
        queue: "pledgesync.jobs".into(),
        payload: job.encode(),
        headers: BTreeMap::from([(
            "traceparent".to_owned(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
        )]),
    }
}

/// Minute `m` of a fixed day: Modified_Times that are easy to order.
pub fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0)
        .single()
        .expect("time")
        + chrono::Duration::minutes(i64::from(minute))
}

pub fn member(zoho_id: u64, email: &str, minute: u32) -> MemberUpsert {
    MemberUpsert {
        zoho_id: ZohoRecordId::parse(zoho_id.to_string()).expect("zoho id"),
        email: email.into(),
        first_name: Some(format!("First{zoho_id}")),
        last_name: Some(format!("Last{zoho_id}")),
        phone: None,
        country: None,
        unsubscribed: Some(false),
        attributes: Default::default(),
        modified_at: at(minute),
    }
}

pub fn upsert_batch(
    run: RunId,
    seq: u64,
    integration: IntegrationId,
    audience: AudienceId,
    module: Module,
    members: Vec<MemberUpsert>,
) -> ApplyBatch {
    ApplyBatch {
        run_id: run,
        seq,
        integration_id: integration,
        audience_id: audience,
        module,
        kind: BatchKind::Upsert,
        members,
        skipped_by_reason: BTreeMap::new(),
        deletions: Vec::new(),
    }
}

pub fn delete_batch(
    run: RunId,
    seq: u64,
    integration: IntegrationId,
    audience: AudienceId,
    module: Module,
    ids: &[u64],
) -> ApplyBatch {
    ApplyBatch {
        run_id: run,
        seq,
        integration_id: integration,
        audience_id: audience,
        module,
        kind: BatchKind::Delete,
        members: Vec::new(),
        skipped_by_reason: BTreeMap::new(),
        deletions: ids
            .iter()
            .map(|id| pledgesync_store::SourceDeletion {
                zoho_id: ZohoRecordId::parse(id.to_string()).expect("zoho id"),
                deleted_at: None,
            })
            .collect(),
    }
}

/// Enqueues a run and moves it to running, as a fetcher would.
pub async fn running_run(
    store: &Store,
    integration: IntegrationId,
    mode: pledgesync_core::messages::SyncMode,
) -> RunId {
    let outcome = store
        .enqueue_run(
            integration,
            mode,
            pledgesync_core::messages::Trigger::Manual,
            job,
        )
        .await
        .expect("enqueue");
    let run = outcome.run().id;
    match store.start_run(run, integration).await.expect("start") {
        pledgesync_store::RunStart::Proceed(_) => run,
        other => panic!("run did not start: {other:?}"),
    }
}
