//! The scheduler's configuration: one typed struct, validated at start.

use std::net::SocketAddr;

use pledgesync_core::settings::{
    PostgresSettings, RabbitMqSettings, RedisSettings, SecuritySettings, SettingsError, TelemetrySettings, Validate,
    ZohoSettings,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Everything `pledgesync-scheduler` reads from defaults, `--config` and `PLEDGESYNC__…`.
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
    pub api: ApiSettings,
    pub schedule: ScheduleSettings,
}

/// The HTTP API the PledgeBox app calls.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Address the API (and its probes) listen on.
    pub listen: SocketAddr,
    /// Bearer tokens accepted on every request but the probes; compared in constant time.
    pub tokens: Vec<SecretString>,
    /// Largest request body accepted; larger ones get 413.
    pub body_limit_bytes: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            tokens: Vec::new(),
            body_limit_bytes: 64 * 1024,
        }
    }
}

/// The periodic loop that enqueues due syncs and relays the outbox.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleSettings {
    /// How often the loop looks for due integrations.
    pub tick_secs: u64,
    /// How many due integrations one tick claims at most.
    pub claim_batch: u32,
    /// Interval given to new integrations between incremental syncs.
    pub default_interval_secs: u64,
    /// Interval between full syncs, which catch formula fields and deletions incremental runs miss.
    pub full_sync_interval_secs: u64,
    /// How often the outbox relay looks for unpublished jobs when not woken.
    pub relay_poll_millis: u64,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        Self {
            tick_secs: 30,
            claim_batch: 100,
            default_interval_secs: 3600,
            full_sync_interval_secs: 7 * 24 * 3600,
            relay_poll_millis: 1000,
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
        if self.api.tokens.is_empty() {
            return Err(SettingsError::invalid(
                "api.tokens",
                "at least one bearer token (PLEDGESYNC__API__TOKENS=token1,token2)",
            ));
        }
        if self.api.tokens.iter().any(|t| t.expose_secret().len() < 16) {
            return Err(SettingsError::invalid("api.tokens", "tokens of at least 16 characters"));
        }
        if self.api.body_limit_bytes < 1024 {
            return Err(SettingsError::invalid("api.body_limit_bytes", "at least 1024"));
        }
        for (key, value) in [
            ("schedule.tick_secs", self.schedule.tick_secs),
            ("schedule.claim_batch", u64::from(self.schedule.claim_batch)),
            ("schedule.default_interval_secs", self.schedule.default_interval_secs),
            ("schedule.full_sync_interval_secs", self.schedule.full_sync_interval_secs),
            ("schedule.relay_poll_millis", self.schedule.relay_poll_millis),
        ] {
            if value == 0 {
                return Err(SettingsError::invalid(key, "a number greater than 0"));
            }
        }
        Ok(())
    }
}
