//! The fetcher's configuration: one typed struct, validated at start.

use pledgesync_core::settings::{
    HttpSettings, PostgresSettings, RabbitMqSettings, RedisSettings, SecuritySettings,
    SettingsError, TelemetrySettings, Validate, ZohoSettings,
};
use pledgesync_zoho::ZohoClientSettings;
use serde::Deserialize;

/// Everything `pledgesync-fetcher` reads from defaults, `--config` and `PLEDGESYNC__…`.
///
/// Sections of the other binaries are ignored, so one file can serve all three; unknown keys
/// inside a known section are refused.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Runs, checkpoints, credentials and the ledger of applied batches.
    pub postgres: PostgresSettings,
    /// Where jobs come from and batches go; `prefetch` is the jobs worked at once.
    pub rabbitmq: RabbitMqSettings,
    /// The shared token store and the per-org Zoho limits.
    pub redis: RedisSettings,
    /// Where Zoho is (the emulator in tests and the demo).
    pub zoho: ZohoSettings,
    /// Timeouts, retries, limits and the Redis key prefix of the Zoho client.
    pub zoho_client: ZohoClientSettings,
    /// Logs and traces.
    pub telemetry: TelemetrySettings,
    /// The keys that decrypt the integrations' secrets.
    pub security: SecuritySettings,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub http: HttpSettings,
    /// Slices, back-pressure and shutdown.
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
    /// Seconds an incremental run reads before its cursors: Zoho's `If-Modified-Since` is
    /// inclusive and clocks differ, and reading a record twice is harmless (newest wins).
    pub incremental_overlap_secs: u64,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            max_outstanding_batches: 32,
            slice_pages: 500,
            slice_secs: 300,
            shutdown_grace_secs: 25,
            incremental_overlap_secs: 60,
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
        self.zoho_client.validate()?;
        for (key, value) in [
            (
                "fetch.max_outstanding_batches",
                u64::from(self.fetch.max_outstanding_batches),
            ),
            ("fetch.slice_pages", u64::from(self.fetch.slice_pages)),
            ("fetch.slice_secs", self.fetch.slice_secs),
            ("fetch.shutdown_grace_secs", self.fetch.shutdown_grace_secs),
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

impl Settings {
    /// How jobs are worked, from these settings.
    pub fn work_config(&self) -> crate::job::WorkConfig {
        crate::job::WorkConfig {
            max_outstanding_batches: self.fetch.max_outstanding_batches,
            slice_pages: self.fetch.slice_pages,
            slice_time: std::time::Duration::from_secs(self.fetch.slice_secs),
            overlap: chrono::Duration::seconds(
                i64::try_from(self.fetch.incremental_overlap_secs).unwrap_or(i64::MAX / 2_000),
            ),
            delivery_limit: self.rabbitmq.delivery_limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let mut vars = vec![(
            "PLEDGESYNC__SECURITY__ENCRYPTION_KEY".to_owned(),
            KEY.to_owned(),
        )];
        vars.extend(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        pledgesync_core::settings::load_from(None, vars)
    }

    #[test]
    fn defaults_are_valid_and_become_the_work_config() {
        let settings = load(&[]).expect("valid");
        let work = settings.work_config();
        assert_eq!(work.max_outstanding_batches, 32);
        assert_eq!(work.slice_pages, 500);
        assert_eq!(work.overlap, chrono::Duration::seconds(60));
        assert_eq!(work.delivery_limit, 5);
    }

    #[test]
    fn the_environment_tunes_slices_and_the_zoho_client() {
        let settings = load(&[
            ("PLEDGESYNC__FETCH__SLICE_PAGES", "2"),
            ("PLEDGESYNC__ZOHO_CLIENT__REDIS_KEY_PREFIX", "test:x"),
        ])
        .expect("valid");
        assert_eq!(settings.fetch.slice_pages, 2);
        assert_eq!(settings.zoho_client.redis_key_prefix, "test:x");
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = load(&[("PLEDGESYNC__FETCH__SLICE_SECS", "3600")]).expect_err("too long");
        assert!(err.to_string().contains("`fetch.slice_secs`"), "{err}");
        let err = load(&[("PLEDGESYNC__FETCH__MAX_OUTSTANDING_BATCHES", "0")]).expect_err("zero");
        assert!(
            err.to_string().contains("`fetch.max_outstanding_batches`"),
            "{err}"
        );
        let err = load(&[("PLEDGESYNC__ZOHO_CLIENT__RETRY_ATTEMPTS", "0")]).expect_err("zero");
        assert!(
            err.to_string().contains("zoho_client.retry_attempts"),
            "{err}"
        );
    }
}
