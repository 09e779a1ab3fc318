//! The sink's configuration: one typed struct, validated at start.

use std::time::Duration;

use pledgesync_core::settings::{
    HttpSettings, PostgresSettings, RabbitMqSettings, SettingsError, TelemetrySettings, Validate,
};
use serde::Deserialize;

/// Everything `pledgesync-sink` reads from defaults, `--config` and `PLEDGESYNC__…`.
///
/// Sections of the other binaries are ignored, so one file can serve all three; unknown keys
/// inside a known section are refused.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The database the audiences live in.
    pub postgres: PostgresSettings,
    /// Where RecordBatches come from; `prefetch` is how many batches one sink applies at once.
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
}

impl Default for SinkSettings {
    fn default() -> Self {
        Self {
            shutdown_grace_secs: 25,
            outage_patience_secs: 60,
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
        Ok(())
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
        self.sink.validate()
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
