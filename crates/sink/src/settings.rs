//! The sink's configuration: one typed struct, validated at start.

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
    pub postgres: PostgresSettings,
    pub rabbitmq: RabbitMqSettings,
    pub telemetry: TelemetrySettings,
    pub http: HttpSettings,
    pub sink: SinkSettings,
}

/// How a sink applies batches.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkSettings {
    /// Seconds a SIGTERM waits for in-flight batches to commit and be acked.
    pub shutdown_grace_secs: u64,
}

impl Default for SinkSettings {
    fn default() -> Self {
        Self { shutdown_grace_secs: 25 }
    }
}

impl Validate for Settings {
    fn validate(&self) -> Result<(), SettingsError> {
        self.postgres.validate()?;
        self.rabbitmq.validate()?;
        self.telemetry.validate()
    }
}
