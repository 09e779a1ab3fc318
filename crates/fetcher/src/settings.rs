//! The fetcher's configuration: one typed struct, validated at start.

use pledgesync_core::settings::{
    HttpSettings, PostgresSettings, RabbitMqSettings, RedisSettings, SecuritySettings, SettingsError, TelemetrySettings,
    Validate, ZohoSettings,
};
use serde::Deserialize;

/// Everything `pledgesync-fetcher` reads from defaults, `--config` and `PLEDGESYNC__…`.
///
/// Sections of the other binaries are ignored, so one file can serve all three; unknown keys
/// inside a known section are refused.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub postgres: PostgresSettings,
    pub rabbitmq: RabbitMqSettings,
    pub redis: RedisSettings,
    pub zoho: ZohoSettings,
    pub telemetry: TelemetrySettings,
    pub security: SecuritySettings,
    pub http: HttpSettings,
    pub fetch: FetchSettings,
}

/// How a fetcher works a job.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchSettings {
    /// K: batches of one run published but not yet applied before the fetcher waits for the sink.
    pub max_outstanding_batches: u32,
    /// Pages one job works before it hands the run on as a continuation job.
    pub slice_pages: u32,
    /// Seconds one job works before it hands the run on, well under RabbitMQ's consumer timeout.
    pub slice_secs: u64,
    /// Seconds a SIGTERM waits for in-flight jobs to reach a checkpoint.
    pub shutdown_grace_secs: u64,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            max_outstanding_batches: 20,
            slice_pages: 500,
            slice_secs: 300,
            shutdown_grace_secs: 25,
        }
    }
}

impl Validate for Settings {
    fn validate(&self) -> Result<(), SettingsError> {
        self.postgres.validate()?;
        self.rabbitmq.validate()?;
        self.redis.validate()?;
        self.zoho.validate()?;
        self.telemetry.validate()?;
        self.security.validate()?;
        for (key, value) in [
            ("fetch.max_outstanding_batches", u64::from(self.fetch.max_outstanding_batches)),
            ("fetch.slice_pages", u64::from(self.fetch.slice_pages)),
            ("fetch.slice_secs", self.fetch.slice_secs),
        ] {
            if value == 0 {
                return Err(SettingsError::invalid(key, "a number greater than 0"));
            }
        }
        if self.fetch.slice_secs >= 1500 {
            return Err(SettingsError::invalid(
                "fetch.slice_secs",
                "less than 1500 seconds, well under RabbitMQ's 30-minute consumer timeout",
            ));
        }
        Ok(())
    }
}
