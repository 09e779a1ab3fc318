//! The scheduler's configuration: one typed struct, validated at start.

use std::net::SocketAddr;

use pledgesync_core::settings::{
    PostgresSettings, RabbitMqSettings, RedisSettings, SecuritySettings, SettingsError,
    TelemetrySettings, Validate, ZohoSettings,
};
use pledgesync_zoho::settings::ZohoClientSettings;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Everything `pledgesync-scheduler` reads from defaults, `--config` and `PLEDGESYNC__…`.
///
/// Sections of the other binaries are ignored, so one file can serve all three; unknown keys
/// inside a known section are refused.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The system of record: integrations, runs, the outbox.
    pub postgres: PostgresSettings,
    /// Where Sync Now's jobs go (through the outbox relay).
    pub rabbitmq: RabbitMqSettings,
    /// The shared token store: the access token minted at set-up is cached there.
    pub redis: RedisSettings,
    /// Where Zoho's accounts servers are (the emulator in tests).
    pub zoho: ZohoSettings,
    /// Timeouts and the Redis key prefix of the Zoho client.
    pub zoho_client: ZohoClientSettings,
    /// Logs and traces.
    pub telemetry: TelemetrySettings,
    /// The keys that encrypt secrets at rest.
    pub security: SecuritySettings,
    /// The HTTP API.
    pub api: ApiSettings,
    /// The periodic loop and the outbox relay.
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
    /// Seconds SIGTERM waits for requests in flight and for the loops to stop.
    pub shutdown_grace_secs: u64,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            tokens: Vec::new(),
            body_limit_bytes: 64 * 1024,
            shutdown_grace_secs: 20,
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
    /// Outbox rows the relay takes (and locks) at a time.
    pub relay_batch: u32,
    /// Longest pause between relay attempts while RabbitMQ is unreachable (backoff ceiling).
    pub relay_max_backoff_millis: u64,
    /// Seconds without any progress after which the periodic loop fails an active run (its job was
    /// most likely dead-lettered unseen), so its integration can sync again. It must exceed the
    /// longest quiet spell of a healthy run: a fetcher slice (`fetch.slice_secs`, up to 1499)
    /// plus the time a job may wait in the jobs queue; hence at least [`MIN_STALE_RUN_SECS`].
    pub stale_run_secs: u64,
}

/// The smallest `schedule.stale_run_secs` accepted: three default fetcher slices (300 s each). A
/// live run reports when a job starts, at every page and every minute while it waits for the sink,
/// but one slow step (Zoho retries, a per-org limit) may hold a slice quiet for most of its length,
/// and a continuation job then waits in the jobs queue before the next slice reports.
pub const MIN_STALE_RUN_SECS: u64 = 900;

impl Default for ScheduleSettings {
    fn default() -> Self {
        Self {
            tick_secs: 30,
            claim_batch: 100,
            default_interval_secs: 3600,
            full_sync_interval_secs: 7 * 24 * 3600,
            relay_poll_millis: 1000,
            relay_batch: 100,
            relay_max_backoff_millis: 30_000,
            stale_run_secs: 1800,
        }
    }
}

impl Validate for Settings {
    fn validate(&self) -> Result<(), SettingsError> {
        self.postgres.validate()?;
        self.rabbitmq.validate()?;
        self.redis.validate()?;
        self.zoho.validate()?;
        self.zoho_client.validate()?;
        self.telemetry.validate()?;
        self.security.validate()?;
        if self.api.tokens.is_empty() {
            return Err(SettingsError::invalid(
                "api.tokens",
                "at least one bearer token (PLEDGESYNC__API__TOKENS=token1,token2)",
            ));
        }
        if self.api.tokens.iter().any(|t| t.expose_secret().len() < 16) {
            return Err(SettingsError::invalid(
                "api.tokens",
                "tokens of at least 16 characters",
            ));
        }
        if self.api.body_limit_bytes < 1024 {
            return Err(SettingsError::invalid(
                "api.body_limit_bytes",
                "at least 1024",
            ));
        }
        for (key, value) in [
            ("schedule.tick_secs", self.schedule.tick_secs),
            ("schedule.claim_batch", u64::from(self.schedule.claim_batch)),
            (
                "schedule.default_interval_secs",
                self.schedule.default_interval_secs,
            ),
            (
                "schedule.full_sync_interval_secs",
                self.schedule.full_sync_interval_secs,
            ),
            (
                "schedule.relay_poll_millis",
                self.schedule.relay_poll_millis,
            ),
            ("schedule.relay_batch", u64::from(self.schedule.relay_batch)),
            (
                "schedule.relay_max_backoff_millis",
                self.schedule.relay_max_backoff_millis,
            ),
            ("api.shutdown_grace_secs", self.api.shutdown_grace_secs),
        ] {
            if value == 0 {
                return Err(SettingsError::invalid(key, "a number greater than 0"));
            }
        }
        // The database stores intervals as `integer` with these lower bounds.
        let max = i32::MAX as u64;
        if !(60..=max).contains(&self.schedule.default_interval_secs) {
            return Err(SettingsError::invalid(
                "schedule.default_interval_secs",
                "between 60 and 2147483647 seconds",
            ));
        }
        if !(3600..=max).contains(&self.schedule.full_sync_interval_secs) {
            return Err(SettingsError::invalid(
                "schedule.full_sync_interval_secs",
                "between 3600 and 2147483647 seconds",
            ));
        }
        if !(MIN_STALE_RUN_SECS..=max).contains(&self.schedule.stale_run_secs) {
            return Err(SettingsError::invalid(
                "schedule.stale_run_secs",
                "between 900 and 2147483647 seconds: at least three fetcher slices (fetch.slice_secs, \
                 300 by default) plus the longest wait expected in the jobs queue, or healthy runs \
                 are failed as stale",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let mut vars = vec![
            (
                "PLEDGESYNC__SECURITY__ENCRYPTION_KEY".to_owned(),
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_owned(),
            ),
            (
                "PLEDGESYNC__API__TOKENS".to_owned(),
                "test-token-0123456789abcdef".to_owned(),
            ),
        ];
        vars.extend(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        pledgesync_core::settings::load_from(None, vars)
    }

    #[test]
    fn stale_runs_are_failed_after_half_an_hour_by_default() {
        let settings = load(&[]).expect("defaults are valid");
        assert_eq!(settings.schedule.stale_run_secs, 1800);
        let settings =
            load(&[("PLEDGESYNC__SCHEDULE__STALE_RUN_SECS", "7200")]).expect("longer is fine");
        assert_eq!(settings.schedule.stale_run_secs, 7200);
    }

    #[test]
    fn a_stale_threshold_within_a_few_fetcher_slices_is_refused() {
        for value in ["0", "300", "899"] {
            let err =
                load(&[("PLEDGESYNC__SCHEDULE__STALE_RUN_SECS", value)]).expect_err("too short");
            let text = err.to_string();
            assert!(text.contains("`schedule.stale_run_secs`"), "{text}");
            assert!(text.contains("fetch.slice_secs"), "{text}");
        }
        assert!(load(&[("PLEDGESYNC__SCHEDULE__STALE_RUN_SECS", "900")]).is_ok());
    }
}
