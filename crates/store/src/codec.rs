//! How typed values are spelled in the database's text columns, and the two status enums the
//! store owns. Each spelling matches a CHECK constraint in the migrations.

use std::fmt;
use std::str::FromStr;

use pledgesync_core::messages::{BatchKind, SyncMode, Trigger};
use pledgesync_core::{DataCenter, Module};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Where a run is in its life. `Queued` and `Running` are the active states: at most one run per
/// integration is in one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Written with its first job; no fetcher has picked it up yet.
    Queued,
    /// A fetcher started it; batches may be in flight.
    Running,
    /// Every published batch was applied.
    Succeeded,
    /// Stopped by an error a person must read (see the run's `error`).
    Failed,
    /// Stopped on request; jobs still in the queue are acked without work.
    Cancelled,
}

impl RunStatus {
    /// Whether the run still counts as the integration's one active run.
    pub fn is_active(self) -> bool {
        matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            other => return Err(StoreError::corrupt(format!("unknown run status {other:?}"))),
        })
    }
}

/// Whether an integration may sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationStatus {
    /// Syncs on schedule and on Sync Now.
    Active,
    /// Zoho rejected the refresh token: the creator must paste a new grant code.
    NeedsReauth,
    /// Switched off by the creator or an operator (or deleted).
    Disabled,
}

impl IntegrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrationStatus::Active => "active",
            IntegrationStatus::NeedsReauth => "needs_reauth",
            IntegrationStatus::Disabled => "disabled",
        }
    }
}

impl fmt::Display for IntegrationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IntegrationStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "active" => IntegrationStatus::Active,
            "needs_reauth" => IntegrationStatus::NeedsReauth,
            "disabled" => IntegrationStatus::Disabled,
            other => {
                return Err(StoreError::corrupt(format!(
                    "unknown integration status {other:?}"
                )))
            }
        })
    }
}

pub(crate) fn mode_str(mode: SyncMode) -> &'static str {
    match mode {
        SyncMode::Full => "full",
        SyncMode::Incremental => "incremental",
    }
}

pub(crate) fn parse_mode(s: &str) -> Result<SyncMode, StoreError> {
    match s {
        "full" => Ok(SyncMode::Full),
        "incremental" => Ok(SyncMode::Incremental),
        other => Err(StoreError::corrupt(format!("unknown sync mode {other:?}"))),
    }
}

pub(crate) fn trigger_str(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Manual => "manual",
        Trigger::Schedule => "schedule",
    }
}

pub(crate) fn parse_trigger(s: &str) -> Result<Trigger, StoreError> {
    match s {
        "manual" => Ok(Trigger::Manual),
        "schedule" => Ok(Trigger::Schedule),
        other => Err(StoreError::corrupt(format!("unknown trigger {other:?}"))),
    }
}

pub(crate) fn kind_str(kind: BatchKind) -> &'static str {
    match kind {
        BatchKind::Upsert => "upsert",
        BatchKind::Delete => "delete",
    }
}

pub(crate) fn parse_module(s: &str) -> Result<Module, StoreError> {
    s.parse().map_err(|e| StoreError::corrupt(format!("{e}")))
}

pub(crate) fn parse_modules(values: &[String]) -> Result<Vec<Module>, StoreError> {
    values.iter().map(|s| parse_module(s)).collect()
}

pub(crate) fn module_strs(modules: &[Module]) -> Vec<String> {
    modules.iter().map(|m| m.api_name().to_owned()).collect()
}

pub(crate) fn parse_data_center(s: &str) -> Result<DataCenter, StoreError> {
    s.parse().map_err(|e| StoreError::corrupt(format!("{e}")))
}

/// Seconds stored as `integer` come back as `i32`; a negative one can only be a hand edit.
pub(crate) fn secs(value: i32, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::corrupt(format!("{what} is negative ({value})")))
}

/// Counters stored as `bigint`; negative ones are refused by CHECK constraints.
pub(crate) fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A count or position from the caller, as PostgreSQL's `bigint`.
pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Rejected(format!("{what} {value} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for status in [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ] {
            assert_eq!(status.as_str().parse::<RunStatus>().ok(), Some(status));
        }
        for status in [
            IntegrationStatus::Active,
            IntegrationStatus::NeedsReauth,
            IntegrationStatus::Disabled,
        ] {
            assert_eq!(
                status.as_str().parse::<IntegrationStatus>().ok(),
                Some(status)
            );
        }
        assert!("paused".parse::<RunStatus>().is_err());
    }

    #[test]
    fn enums_round_trip() {
        for mode in [SyncMode::Full, SyncMode::Incremental] {
            assert_eq!(parse_mode(mode_str(mode)).ok(), Some(mode));
        }
        for trigger in [Trigger::Manual, Trigger::Schedule] {
            assert_eq!(parse_trigger(trigger_str(trigger)).ok(), Some(trigger));
        }
        assert_eq!(
            parse_modules(&module_strs(&Module::ALL)).ok(),
            Some(Module::ALL.to_vec())
        );
        assert!(secs(-1, "interval").is_err());
    }
}
