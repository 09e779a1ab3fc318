//! The run's resume position: what the run reads (its plan), where it is (its stage), and the
//! next sequence number.
//!
//! It is committed after every published page, in the same guarded UPDATE as the run's
//! `batches_published` and `fetched`, so a redelivered or continued job starts exactly after the
//! last page whose batch RabbitMQ confirmed — at most the one page published but not yet
//! committed is published again, and the sink's ledger makes that harmless. The plan is fixed at
//! the first slice: Zoho's page tokens are bound to the request parameters, so every slice must
//! ask with the same `since`.
//!
//! The store keeps it as opaque JSON; [`CHECKPOINT_VERSION`] guards against a build that reads it
//! differently.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use pledgesync_core::messages::SyncMode;
use pledgesync_core::Module;
use serde::{Deserialize, Serialize};

use crate::error::FetchError;

/// The version of the checkpoint layout this build writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Where an incremental run of a module starts, as the store's cursors say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Records modified since then are read (None: never synced, read everything).
    pub modified_since: Option<DateTime<Utc>>,
    /// Records deleted since then are read (None: every deletion Zoho still lists).
    pub deleted_since: Option<DateTime<Utc>>,
}

/// What one module of the run reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModulePlan {
    /// The CRM module.
    pub module: Module,
    /// `If-Modified-Since` of the record pages (None on a full run).
    pub modified_since: Option<DateTime<Utc>>,
    /// `If-Modified-Since` of the deleted-record pages (incremental runs).
    pub deleted_since: Option<DateTime<Utc>>,
}

/// What the whole run reads; fixed at its first slice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Full or incremental, from the run row.
    pub mode: SyncMode,
    /// The modules in the order they are read.
    pub modules: Vec<ModulePlan>,
    /// When the run began reading: the cursor a successful run leaves for the next incremental
    /// one (the read side subtracts the overlap, so clock skew with Zoho costs nothing).
    pub started_at: DateTime<Utc>,
}

impl Plan {
    /// The plan of a run starting `now`. Incremental reads start `overlap` before each cursor,
    /// because Zoho's `If-Modified-Since` boundary is inclusive and clocks differ; reading a few
    /// records twice is harmless (newest wins at the sink).
    pub fn new(
        mode: SyncMode,
        modules: &[Module],
        cursors: &HashMap<Module, Cursor>,
        now: DateTime<Utc>,
        overlap: Duration,
    ) -> Self {
        let modules = modules
            .iter()
            .map(|&module| {
                let cursor = match mode {
                    SyncMode::Full => Cursor::default(),
                    SyncMode::Incremental => cursors.get(&module).copied().unwrap_or_default(),
                };
                ModulePlan {
                    module,
                    modified_since: cursor.modified_since.map(|t| t - overlap),
                    deleted_since: cursor.deleted_since.map(|t| t - overlap),
                }
            })
            .collect();
        Self {
            mode,
            modules,
            started_at: now,
        }
    }

    fn first_stage(&self) -> Stage {
        if self.modules.is_empty() {
            Stage::Finishing
        } else {
            Stage::Records {
                module: 0,
                position: None,
            }
        }
    }

    /// The stage after the record pages of module `index`.
    pub fn after_records(&self, index: usize) -> Stage {
        match self.mode {
            SyncMode::Incremental => Stage::Deleted {
                module: index,
                position: None,
            },
            SyncMode::Full => self.after_module(index),
        }
    }

    /// The stage after the deleted-record pages of module `index`.
    pub fn after_deleted(&self, index: usize) -> Stage {
        self.after_module(index)
    }

    /// The stage after the deletion sweep of module `index`.
    pub fn after_sweep(&self, index: usize) -> Stage {
        if index + 1 < self.modules.len() {
            Stage::Sweep {
                module: index + 1,
                window: None,
            }
        } else {
            Stage::Finishing
        }
    }

    fn after_module(&self, index: usize) -> Stage {
        if index + 1 < self.modules.len() {
            Stage::Records {
                module: index + 1,
                position: None,
            }
        } else if self.mode == SyncMode::Full {
            Stage::Sweep {
                module: 0,
                window: None,
            }
        } else {
            Stage::Finishing
        }
    }
}

/// The deleted-records window a full run's sweep reads for one module, fixed once computed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepWindow {
    /// Deletions since then can explain the unseen members (the oldest unseen `modified_at`
    /// minus the overlap; None when one of them has no time).
    pub since: Option<DateTime<Utc>>,
    /// The next deleted-records page, None for the first.
    pub position: Option<serde_json::Value>,
}

/// Where the run is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    /// Paging the records of `plan.modules[module]`; `position` is the next page (Zoho client's
    /// resumable page position), None for the first.
    Records {
        module: usize,
        position: Option<serde_json::Value>,
    },
    /// Paging the records Zoho deleted since the cursor (incremental runs).
    Deleted {
        module: usize,
        position: Option<serde_json::Value>,
    },
    /// A full run's deletion sweep: members this integration brought that the run did not see,
    /// removed only when Zoho's deleted records confirm they are gone.
    Sweep {
        module: usize,
        window: Option<SweepWindow>,
    },
    /// Everything is published: record the number of batches.
    Finishing,
}

/// The run's resume position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// [`CHECKPOINT_VERSION`].
    pub version: u32,
    /// What the run reads.
    pub plan: Plan,
    /// Where it is.
    pub stage: Stage,
    /// The sequence number of the next batch; equals the batches published so far.
    pub next_seq: u64,
    /// Records (and deletion entries) published so far.
    pub fetched: u64,
}

impl Checkpoint {
    /// The checkpoint of a run that has published nothing yet.
    pub fn start(plan: Plan) -> Self {
        let stage = plan.first_stage();
        Self {
            version: CHECKPOINT_VERSION,
            plan,
            stage,
            next_seq: 0,
            fetched: 0,
        }
    }

    /// Reads a stored checkpoint, refusing one this build does not understand.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, FetchError> {
        let version = value.get("version").and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(CHECKPOINT_VERSION)) {
            return Err(FetchError::Checkpoint(format!(
                "version {version:?}, this build reads {CHECKPOINT_VERSION}"
            )));
        }
        let checkpoint: Checkpoint = serde_json::from_value(value.clone())
            .map_err(|e| FetchError::Checkpoint(e.to_string()))?;
        let valid = match &checkpoint.stage {
            Stage::Records { module, .. }
            | Stage::Deleted { module, .. }
            | Stage::Sweep { module, .. } => *module < checkpoint.plan.modules.len(),
            Stage::Finishing => true,
        };
        if !valid {
            return Err(FetchError::Checkpoint(
                "its stage names a module the plan does not have".into(),
            ));
        }
        Ok(checkpoint)
    }

    pub fn to_json(&self) -> serde_json::Value {
        // Plain data with string keys: serializing cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The module plan the current stage works on, if any.
    pub fn current_module(&self) -> Option<&ModulePlan> {
        match &self.stage {
            Stage::Records { module, .. }
            | Stage::Deleted { module, .. }
            | Stage::Sweep { module, .. } => self.plan.modules.get(*module),
            Stage::Finishing => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("timestamp")
    }

    #[test]
    fn a_full_run_reads_every_module_then_sweeps_each() {
        let plan = Plan::new(
            SyncMode::Full,
            &Module::ALL,
            &HashMap::new(),
            at("2026-01-01T00:00:00Z"),
            Duration::seconds(60),
        );
        let mut stage = Checkpoint::start(plan.clone()).stage;
        let mut seen = vec![stage.clone()];
        loop {
            stage = match stage {
                Stage::Records { module, .. } => plan.after_records(module),
                Stage::Deleted { module, .. } => plan.after_deleted(module),
                Stage::Sweep { module, .. } => plan.after_sweep(module),
                Stage::Finishing => break,
            };
            seen.push(stage.clone());
        }
        assert_eq!(
            seen,
            vec![
                Stage::Records {
                    module: 0,
                    position: None
                },
                Stage::Records {
                    module: 1,
                    position: None
                },
                Stage::Sweep {
                    module: 0,
                    window: None
                },
                Stage::Sweep {
                    module: 1,
                    window: None
                },
                Stage::Finishing,
            ]
        );
        assert!(plan.modules.iter().all(|m| m.modified_since.is_none()));
    }

    #[test]
    fn an_incremental_run_reads_changes_and_deletions_from_the_cursor_minus_the_overlap() {
        let cursor = Cursor {
            modified_since: Some(at("2026-01-01T10:00:00Z")),
            deleted_since: Some(at("2026-01-01T10:00:05Z")),
        };
        let cursors = HashMap::from([(Module::Contacts, cursor)]);
        let plan = Plan::new(
            SyncMode::Incremental,
            &Module::ALL,
            &cursors,
            at("2026-01-02T00:00:00Z"),
            Duration::seconds(60),
        );
        assert_eq!(
            plan.modules[0].modified_since,
            Some(at("2026-01-01T09:59:00Z"))
        );
        assert_eq!(
            plan.modules[0].deleted_since,
            Some(at("2026-01-01T09:59:05Z"))
        );
        // Leads never synced: everything.
        assert_eq!(plan.modules[1].modified_since, None);
        assert_eq!(
            plan.after_records(0),
            Stage::Deleted {
                module: 0,
                position: None
            }
        );
        assert_eq!(
            plan.after_deleted(0),
            Stage::Records {
                module: 1,
                position: None
            }
        );
        assert_eq!(plan.after_deleted(1), Stage::Finishing);
    }

    #[test]
    fn checkpoints_round_trip_and_refuse_what_they_do_not_understand() {
        let plan = Plan::new(
            SyncMode::Full,
            &[Module::Leads],
            &HashMap::new(),
            at("2026-01-01T00:00:00Z"),
            Duration::zero(),
        );
        let mut checkpoint = Checkpoint::start(plan);
        checkpoint.stage = Stage::Records {
            module: 0,
            position: Some(serde_json::json!({"page_token": "abc", "page": 2})),
        };
        checkpoint.next_seq = 7;
        let json = checkpoint.to_json();
        assert_eq!(Checkpoint::from_json(&json).ok(), Some(checkpoint.clone()));

        let mut newer = json.clone();
        newer["version"] = serde_json::json!(2);
        assert!(matches!(
            Checkpoint::from_json(&newer),
            Err(FetchError::Checkpoint(_))
        ));

        let mut broken = json;
        broken["stage"] = serde_json::json!({"stage": "records", "module": 5, "position": null});
        assert!(matches!(
            Checkpoint::from_json(&broken),
            Err(FetchError::Checkpoint(_))
        ));
        assert!(Checkpoint::from_json(&serde_json::json!("junk")).is_err());
    }

    #[test]
    fn an_integration_without_modules_finishes_at_once() {
        let plan = Plan::new(
            SyncMode::Full,
            &[],
            &HashMap::new(),
            Utc::now(),
            Duration::zero(),
        );
        assert_eq!(Checkpoint::start(plan).stage, Stage::Finishing);
    }
}
