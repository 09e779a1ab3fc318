//! Accounts, audiences, integrations, running runs, and Zoho records to put in batches.

use std::collections::BTreeMap;

use pledgesync_core::messages::{BatchKind, Message, RecordBatch, SyncJob, SyncMode, Trigger};
use pledgesync_core::{AccountId, AudienceId, DataCenter, IntegrationId, Module, RunId};
use pledgesync_store::{
    Ciphertext, Integration, NewIntegration, NewRun, OutboxMessage, Run, RunStart, Schedule, Store,
    ZohoCredentials,
};
use serde_json::{json, Map, Value};

fn credentials() -> ZohoCredentials {
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

pub fn account() -> AccountId {
    AccountId::parse(format!("acct_{}", uuid::Uuid::new_v4().simple())).expect("account id")
}

pub async fn create_audience(store: &Store, account: &AccountId, name: &str) -> AudienceId {
    store
        .create_audience(account, name)
        .await
        .expect("audience")
        .id
}

pub async fn create_integration(
    store: &Store,
    account: &AccountId,
    name: &str,
    audience: AudienceId,
) -> Integration {
    let new = NewIntegration {
        account_id: account.clone(),
        name: name.into(),
        credentials: credentials(),
        zoho_org_id: "20071234".into(),
        zoho_org_name: Some("Acme".into()),
        zoho_time_zone: Some("Europe/Berlin".into()),
        audience_id: Some(audience),
        schedule: Schedule::default(),
    };
    store.insert_integration(&new).await.expect("integration")
}

/// An account with an audience and an integration feeding it, and a running run.
pub struct Fixture {
    pub account: AccountId,
    pub audience: AudienceId,
    pub integration: IntegrationId,
    pub run: RunId,
}

impl Fixture {
    pub async fn new(store: &Store) -> Fixture {
        let account = account();
        let audience = create_audience(store, &account, "Backers").await;
        let integration = create_integration(store, &account, "Zoho", audience)
            .await
            .id;
        let run = running_run(store, integration).await;
        Fixture {
            account,
            audience,
            integration,
            run,
        }
    }

    pub fn upsert(
        &self,
        seq: u64,
        module: Module,
        records: Vec<Map<String, Value>>,
    ) -> RecordBatch {
        batch(
            self.run,
            self.integration,
            seq,
            module,
            BatchKind::Upsert,
            records,
        )
    }

    pub fn delete(&self, seq: u64, module: Module, ids: &[&str]) -> RecordBatch {
        let entries = ids
            .iter()
            .map(|id| object(json!({"id": id, "type": "recycle", "deleted_time": "2024-06-01T12:00:00+00:00"})))
            .collect();
        batch(
            self.run,
            self.integration,
            seq,
            module,
            BatchKind::Delete,
            entries,
        )
    }
}

pub fn batch(
    run: RunId,
    integration: IntegrationId,
    seq: u64,
    module: Module,
    kind: BatchKind,
    records: Vec<Map<String, Value>>,
) -> RecordBatch {
    RecordBatch {
        schema_version: RecordBatch::SCHEMA_VERSION,
        run_id: run,
        integration_id: integration,
        module,
        seq,
        kind,
        records: records
            .iter()
            .map(pledgesync_core::record::RawRecord::from_map)
            .collect(),
    }
}

/// Enqueues a run and moves it to running, as the scheduler and a fetcher would.
pub async fn running_run(store: &Store, integration: IntegrationId) -> RunId {
    let job = |run: &NewRun| OutboxMessage {
        queue: "jobs".into(),
        payload: SyncJob::new(run.run_id, run.integration_id, run.mode, run.trigger).encode(),
        headers: BTreeMap::new(),
    };
    let outcome = store
        .enqueue_run(integration, SyncMode::Full, Trigger::Manual, job)
        .await
        .expect("enqueue");
    let run = outcome.run().id;
    match store.start_run(run, integration).await.expect("start") {
        RunStart::Proceed(_) => run,
        other => panic!("run did not start: {other:?}"),
    }
}

pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// A Zoho contact as the fetcher would pass it on; `minute` orders versions.
pub fn contact(id: u64, email: &str, first: &str, minute: u32) -> Map<String, Value> {
    object(json!({
        "id": id.to_string(),
        "Email": email,
        "First_Name": first,
        "Last_Name": "Lovelace",
        "Phone": format!("+44 20 {id}"),
        "Mailing_Country": "United Kingdom",
        "Email_Opt_Out": false,
        "Modified_Time": modified(minute),
        "Owner": {"name": "Patricia Boyle", "id": "410888000000086001"},
    }))
}

/// Minute `m` after 2024-05-01T10:00 in Zoho's format, with an offset.
pub fn modified(minute: u32) -> String {
    let hours = 10 + minute / 60;
    format!(
        "2024-05-{:02}T{:02}:{:02}:00+02:00",
        1 + hours / 24,
        hours % 24,
        minute % 60
    )
}

pub async fn run_of(store: &Store, run: RunId) -> Run {
    store.get_run(run).await.expect("run")
}
