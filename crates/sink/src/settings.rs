//! The sink's configuration: one typed struct, validated at start.

use std::time::Duration;

use pledgesync_core::settings::{
    HttpSettings, PostgresSettings, RabbitMqSettings, SettingsError, TelemetrySettings, Validate,
};
use serde::Deserialize;

use crate::commit::GroupOptions;

/// Everything `pledgesync-sink` reads from defaults, `--config` and `PLEDGESYNC__…`.
///
/// Sections of the other binaries are ignored, so one file can serve all three; unknown keys
/// inside a known section are refused.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The database the audiences live in.
    pub postgres: PostgresSettings,
    /// Where RecordBatches come from (the sink's prefetch is `sink.prefetch`).
    pub rabbitmq: RabbitMqSettings,
    /// Logs and traces.
    pub telemetry: TelemetrySettings,
    /// The probe port (`/healthz`, `/readyz`, `/metrics`).
    pub http: HttpSettings,
    /// The sink's own knobs.
    pub sink: SinkSettings,
}

/// How a sink applies batches.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkSettings {
    /// Seconds a SIGTERM waits for in-flight batches to commit and be acked.
    pub shutdown_grace_secs: u64,
    /// Seconds a batch in flight waits for PostgreSQL to come back before it is handed back to
    /// RabbitMQ (which counts a delivery against `rabbitmq.delivery_limit`); 0 hands it back at once.
    pub outage_patience_secs: u64,
    /// Batches one sink holds unacknowledged at once (its consumer's prefetch; the sink reads
    /// this, not `rabbitmq.prefetch`). They are checked and mapped in parallel and committed in
    /// groups, so this is also the largest group a sink can form.
    pub prefetch: u16,
    /// Most batches written in one transaction.
    pub group_max_batches: u16,
    /// Transactions a sink runs at once; 2 overlaps one group's commit with the next one's writes.
    pub commit_workers: u16,
}

impl Default for SinkSettings {
    fn default() -> Self {
        Self {
            shutdown_grace_secs: 25,
            outage_patience_secs: 60,
            prefetch: 48,
            group_max_batches: 32,
            commit_workers: 2,
        }
    }
}

impl SinkSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.shutdown_grace_secs == 0 || self.shutdown_grace_secs > 3600 {
            return Err(SettingsError::invalid(
                "sink.shutdown_grace_secs",
                "a number of seconds from 1 to 3600 (keep it under Kubernetes' terminationGracePeriodSeconds)",
            ));
        }
        if self.outage_patience_secs > 600 {
            return Err(SettingsError::invalid(
                "sink.outage_patience_secs",
                "a number of seconds from 0 to 600 (RabbitMQ closes a channel whose delivery stays unacked for 30 minutes)",
            ));
        }
        if !(1..=1000).contains(&self.prefetch) {
            return Err(SettingsError::invalid(
                "sink.prefetch",
                "a number of batches from 1 to 1000 (each holds up to 200 records in memory)",
            ));
        }
        if !(1..=256).contains(&self.group_max_batches) {
            return Err(SettingsError::invalid(
                "sink.group_max_batches",
                "a number of batches from 1 to 256 (1 writes each batch in its own transaction)",
            ));
        }
        if !(1..=16).contains(&self.commit_workers) {
            return Err(SettingsError::invalid(
                "sink.commit_workers",
                "a number from 1 to 16, below postgres.max_connections",
            ));
        }
        Ok(())
    }

    /// How the sink groups batches into transactions.
    pub fn group_options(&self) -> GroupOptions {
        GroupOptions {
            max_batches: usize::from(self.group_max_batches),
            workers: usize::from(self.commit_workers),
        }
    }

    pub fn outage_patience(&self) -> Duration {
        Duration::from_secs(self.outage_patience_secs)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

impl Validate for Settings {
    fn validate(&self) -> Result<(), SettingsError> {
        self.postgres.validate()?;
        self.rabbitmq.validate()?;
        self.telemetry.validate()?;
        self.sink.validate()?;
        if u32::from(self.sink.commit_workers) >= self.postgres.max_connections {
            return Err(SettingsError::invalid(
                "sink.commit_workers",
                "fewer than postgres.max_connections: each worker holds a connection for its transaction, \
                 and batches need a few more for their checks",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pledgesync_core::settings::load_from;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        load_from(
            None,
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn defaults_are_valid() {
        let settings = load(&[]).expect("defaults");
        assert_eq!(settings.sink.outage_patience(), Duration::from_secs(60));
        assert_eq!(settings.sink.shutdown_grace(), Duration::from_secs(25));
    }

    #[test]
    fn sink_keys_are_read_and_checked() {
        let settings = load(&[
            ("PLEDGESYNC__SINK__OUTAGE_PATIENCE_SECS", "0"),
            ("PLEDGESYNC__SINK__SHUTDOWN_GRACE_SECS", "3"),
        ])
        .expect("valid");
        assert_eq!(settings.sink.outage_patience(), Duration::ZERO);
        assert_eq!(settings.sink.shutdown_grace_secs, 3);
        for (key, value, named) in [
            (
                "PLEDGESYNC__SINK__SHUTDOWN_GRACE_SECS",
                "3601",
                "`sink.shutdown_grace_secs`",
            ),
            (
                "PLEDGESYNC__SINK__SHUTDOWN_GRACE_SECS",
                "0",
                "`sink.shutdown_grace_secs`",
            ),
            (
                "PLEDGESYNC__SINK__OUTAGE_PATIENCE_SECS",
                "601",
                "`sink.outage_patience_secs`",
            ),
        ] {
            let err = load(&[(key, value)]).expect_err("invalid");
            assert!(err.to_string().contains(named), "{err}");
        }
    }
}
