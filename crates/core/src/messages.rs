//! The two message contracts that cross RabbitMQ.
//!
//! Messages carry ids only, never credentials or a target audience: those are read from
//! PostgreSQL, so a forged message cannot point one creator's data at another creator's audience.
//! Bodies are JSON with a `schema_version`; a reader refuses a version it does not know with a
//! [`DecodeError`] instead of guessing, and a malformed body is an error, never a panic.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ids::{IntegrationId, Module, RunId};
use crate::record::RawRecord;

/// The content type every pledgesync message is published with.
pub const CONTENT_TYPE: &str = "application/json";

/// Whether a run reads everything or only what changed since the module's cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    Full,
    Incremental,
}

/// Who asked for a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The creator pressed Sync Now.
    Manual,
    /// The periodic schedule found the integration due.
    Schedule,
}

/// What a batch asks the sink to do with its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchKind {
    /// Records as Zoho returned them: insert or update the members they map to.
    Upsert,
    /// Entries from Zoho's deleted-records API: remove the members this integration brought.
    Delete,
}

/// Work for a fetcher: sync (a slice of) one run. Published by the scheduler (first slice) and by
/// fetchers (continuations from the run's checkpoint).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncJob {
    /// Always [`SyncJob::SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// The run this job works on; the run row says what the job may do.
    pub run_id: RunId,
    /// The integration the run belongs to; checked against the run row, never trusted alone.
    pub integration_id: IntegrationId,
    /// Full or incremental.
    pub mode: SyncMode,
    /// Sync Now or schedule.
    pub trigger: Trigger,
    /// 0 for the first job of a run, then one more for each continuation job.
    #[serde(default)]
    pub slice: u32,
}

impl SyncJob {
    pub const SCHEMA_VERSION: u32 = 1;

    /// The first job of a run.
    pub fn new(
        run_id: RunId,
        integration_id: IntegrationId,
        mode: SyncMode,
        trigger: Trigger,
    ) -> Self {
        Self {
            schema_version: Self::SCHEMA_VERSION,
            run_id,
            integration_id,
            mode,
            trigger,
            slice: 0,
        }
    }

    /// The job that carries the same run on from its checkpoint.
    pub fn continuation(&self) -> Self {
        Self {
            slice: self.slice.saturating_add(1),
            ..self.clone()
        }
    }
}

/// One page of records (at most 200) fetched for a run, on its way to the sink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordBatch {
    /// Always [`RecordBatch::SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// The run that fetched these records.
    pub run_id: RunId,
    /// The integration the run belongs to; the sink reads the audience from its row.
    pub integration_id: IntegrationId,
    /// The CRM module the records come from.
    pub module: Module,
    /// Position of this batch within the run, from 0; (run_id, seq) is the idempotency key.
    pub seq: u64,
    /// Upsert or delete.
    pub kind: BatchKind,
    /// The records as Zoho returned them for the requested fields, each the JSON text Zoho
    /// wrote (an upsert batch), or the deleted-records API's entries (a delete batch).
    pub records: Vec<RawRecord>,
}

impl RecordBatch {
    pub const SCHEMA_VERSION: u32 = 1;
    /// Zoho's largest page; a batch is never larger.
    pub const MAX_RECORDS: usize = 200;
}

/// A message that no version of this build can read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message body is not valid JSON for {kind}: {source}; it was dead-lettered, inspect it with the dead-letter listing")]
    Malformed {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{kind} schema_version {found} is not supported (this build reads {supported}); deploy a build that knows it, then redrive the dead letters")]
    UnsupportedVersion {
        kind: &'static str,
        found: u32,
        supported: u32,
    },
    #[error("RecordBatch holds {0} records, more than Zoho's page of 200; the producer is broken")]
    TooManyRecords(usize),
}

/// A message type with a versioned JSON body.
pub trait Message: Serialize + DeserializeOwned {
    /// Name used in errors and logs.
    const KIND: &'static str;
    /// The one version this build writes and reads.
    const VERSION: u32;

    /// Checks beyond the JSON shape.
    fn validate(&self) -> Result<(), DecodeError> {
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        // Serializing these plain structs to JSON cannot fail: no maps with non-string keys,
        // no custom Serialize that errors.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The `schema_version` the body carried.
    fn schema_version(&self) -> u32;

    /// Reads a body: one pass over it when it is well formed (a batch is ~100 kB, and a sink
    /// reads a thousand of them a second run); a body that does not parse is read a second time
    /// only to say whether its version or its shape is wrong.
    fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let found = match serde_json::from_slice::<Self>(body) {
            Ok(message) if message.schema_version() == Self::VERSION => {
                message.validate()?;
                return Ok(message);
            }
            Ok(message) => message.schema_version(),
            Err(source) => {
                #[derive(Deserialize)]
                struct VersionProbe {
                    schema_version: u32,
                }
                match serde_json::from_slice::<VersionProbe>(body) {
                    Ok(probe) if probe.schema_version != Self::VERSION => probe.schema_version,
                    _ => {
                        return Err(DecodeError::Malformed {
                            kind: Self::KIND,
                            source,
                        })
                    }
                }
            }
        };
        Err(DecodeError::UnsupportedVersion {
            kind: Self::KIND,
            found,
            supported: Self::VERSION,
        })
    }
}

impl Message for SyncJob {
    const KIND: &'static str = "SyncJob";
    const VERSION: u32 = SyncJob::SCHEMA_VERSION;

    fn schema_version(&self) -> u32 {
        self.schema_version
    }
}

impl Message for RecordBatch {
    const KIND: &'static str = "RecordBatch";
    const VERSION: u32 = RecordBatch::SCHEMA_VERSION;

    fn schema_version(&self) -> u32 {
        self.schema_version
    }

    fn validate(&self) -> Result<(), DecodeError> {
        if self.records.len() > Self::MAX_RECORDS {
            return Err(DecodeError::TooManyRecords(self.records.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn job() -> SyncJob {
        SyncJob::new(
            RunId::new(),
            IntegrationId::new(),
            SyncMode::Full,
            Trigger::Manual,
        )
    }

    #[test]
    fn sync_job_round_trips() {
        let job = job();
        assert_eq!(SyncJob::decode(&job.encode()).ok(), Some(job.clone()));
        let next = job.continuation();
        assert_eq!(next.slice, 1);
        assert_eq!(SyncJob::decode(&next.encode()).ok(), Some(next));
    }

    #[test]
    fn record_batch_round_trips() {
        let mut record = serde_json::Map::new();
        record.insert("id".into(), json!("4150868000000002175"));
        record.insert("Email".into(), json!("ada@example.com"));
        record.insert("Email_Opt_Out".into(), json!(false));
        let batch = RecordBatch {
            schema_version: RecordBatch::SCHEMA_VERSION,
            run_id: RunId::new(),
            integration_id: IntegrationId::new(),
            module: Module::Leads,
            seq: 7,
            kind: BatchKind::Upsert,
            records: vec![RawRecord::from_map(&record)],
        };
        assert_eq!(RecordBatch::decode(&batch.encode()).ok(), Some(batch));
    }

    #[test]
    fn the_wire_format_is_stable() {
        let body = json!({
            "schema_version": 1,
            "run_id": "0190d1c4-6b1e-7c3a-8a55-0d7f4b3e2a10",
            "integration_id": "0190d1c4-6b1e-7c3a-8a55-0d7f4b3e2a11",
            "mode": "incremental",
            "trigger": "schedule"
        });
        let job = SyncJob::decode(body.to_string().as_bytes()).expect("decodes");
        assert_eq!(job.mode, SyncMode::Incremental);
        assert_eq!(job.trigger, Trigger::Schedule);
        assert_eq!(job.slice, 0);
    }

    #[test]
    fn unknown_version_is_a_clear_error() {
        let mut body: serde_json::Value = serde_json::from_slice(&job().encode()).expect("json");
        body["schema_version"] = json!(2);
        let err = SyncJob::decode(body.to_string().as_bytes()).expect_err("must refuse");
        assert!(matches!(
            err,
            DecodeError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ));
        assert!(err
            .to_string()
            .contains("schema_version 2 is not supported"));
        // A later version may change the shape too: the version is still what is reported.
        let reshaped = json!({ "schema_version": 3, "job": { "renamed": true } });
        assert!(matches!(
            SyncJob::decode(reshaped.to_string().as_bytes()),
            Err(DecodeError::UnsupportedVersion { found: 3, .. })
        ));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for body in [
            &b""[..],
            b"{",
            b"null",
            b"[]",
            b"{\"schema_version\":1}",
            b"\xff\xfe",
        ] {
            assert!(matches!(
                SyncJob::decode(body),
                Err(DecodeError::Malformed { .. })
            ));
        }
        let mut body: serde_json::Value = serde_json::from_slice(&job().encode()).expect("json");
        body["extra"] = json!("forged audience");
        assert!(SyncJob::decode(body.to_string().as_bytes()).is_err());
    }

    #[test]
    fn oversized_batches_are_refused() {
        let batch = RecordBatch {
            schema_version: 1,
            run_id: RunId::new(),
            integration_id: IntegrationId::new(),
            module: Module::Contacts,
            seq: 0,
            kind: BatchKind::Upsert,
            records: vec![RawRecord::from_map(&serde_json::Map::new()); 201],
        };
        assert!(matches!(
            RecordBatch::decode(&batch.encode()),
            Err(DecodeError::TooManyRecords(201))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = SyncJob::decode(&body);
            let _ = RecordBatch::decode(&body);
        }
    }
}
