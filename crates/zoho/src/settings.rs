//! The client's tuning: timeouts, the retry schedule, token-store margins and the good-citizen
//! limits. Binaries embed [`ZohoClientSettings`] as their `zoho_client` configuration section.

use std::time::Duration;

use pledgesync_core::settings::SettingsError;
use serde::{Deserialize, Serialize};

/// How the Zoho client behaves. Every field has a production default; tests shrink the times.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZohoClientSettings {
    /// Prefix of every Redis key the token store and the limits write; tests use a unique one.
    pub redis_key_prefix: String,
    /// How long to wait for a TCP/TLS connection to Zoho.
    pub connect_timeout_ms: u64,
    /// Upper bound of one CRM call, connection to last byte.
    pub request_timeout_ms: u64,
    /// Upper bound of one call to the token endpoint; shorter than the refresh lock's TTL so a
    /// lock can never expire under a refresh still running.
    pub refresh_timeout_ms: u64,
    /// TTL of the Redis refresh lock; a crashed holder frees it after this.
    pub refresh_lock_ttl_ms: u64,
    /// How long a caller waits for another worker's refresh, or for a throttle cool-down to end,
    /// before giving up with a retryable error.
    pub token_wait_ms: u64,
    /// Refresh proactively once less than this share of a token's lifetime is left (0.02 = 72 s of
    /// an hour): early enough that the refresh (at most `refresh_timeout_ms`) ends before the
    /// safety margin stops the token being used, late enough that a token in constant use is
    /// replaced about once per lifetime, not more.
    pub proactive_refresh_fraction: f64,
    /// Upper bound of the proactive margin, in seconds.
    pub proactive_refresh_max_secs: u64,
    /// A token with less than this share of its lifetime left is not used at all, and Redis forgets
    /// it by then (its cache TTL is the expiry minus this margin).
    pub safety_margin_fraction: f64,
    /// Upper bound of the safety margin, in seconds.
    pub safety_margin_max_secs: u64,
    /// After Zoho throttles refreshes ("Access Denied"), how long every worker leaves the token
    /// endpoint alone for that integration (Zoho's window is 10 minutes and a retry restarts it).
    pub refresh_cooldown_secs: u64,
    /// How long Redis remembers that Zoho rejected a refresh token, so other workers fail fast.
    pub needs_reauth_memory_secs: u64,
    /// Attempts of one CRM call (the first one included) on retryable failures.
    pub retry_attempts: u32,
    /// First backoff of the exponential retry schedule; full jitter is applied.
    pub retry_base_ms: u64,
    /// Largest single backoff.
    pub retry_max_ms: u64,
    /// Smallest backoff after a 429 (Zoho sends no Retry-After).
    pub rate_limited_backoff_ms: u64,
    /// CRM calls in flight at once per org, across all workers. Zoho's Free edition allows 5; record
    /// listings sorted by `Modified_Time` also count against Zoho's sub-concurrency of 10.
    pub org_concurrency: u32,
    /// How long a call waits for a concurrency slot before failing (retryable).
    pub concurrency_wait_ms: u64,
    /// The org's API credits per rolling 24 hours, when the caller does not know better.
    pub org_daily_credits: u64,
    /// Share of the org's daily credits pledgesync may spend (the rest is the creator's).
    pub credit_share: f64,
}

impl Default for ZohoClientSettings {
    fn default() -> Self {
        Self {
            redis_key_prefix: "pledgesync:zoho".to_owned(),
            connect_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            refresh_timeout_ms: 10_000,
            refresh_lock_ttl_ms: 20_000,
            token_wait_ms: 15_000,
            proactive_refresh_fraction: 0.02,
            proactive_refresh_max_secs: 120,
            safety_margin_fraction: 0.01,
            safety_margin_max_secs: 30,
            refresh_cooldown_secs: 600,
            needs_reauth_memory_secs: 600,
            retry_attempts: 5,
            retry_base_ms: 250,
            retry_max_ms: 10_000,
            rate_limited_backoff_ms: 2_000,
            org_concurrency: 5,
            concurrency_wait_ms: 30_000,
            org_daily_credits: 50_000,
            credit_share: 0.5,
        }
    }
}

const SECTION: &str = "zoho_client";

fn key(name: &str) -> String {
    format!("{SECTION}.{name}")
}

impl ZohoClientSettings {
    /// Checks the values together; the error names the key and what it expects.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let positive = [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("refresh_timeout_ms", self.refresh_timeout_ms),
            ("refresh_lock_ttl_ms", self.refresh_lock_ttl_ms),
            ("token_wait_ms", self.token_wait_ms),
            ("refresh_cooldown_secs", self.refresh_cooldown_secs),
            ("needs_reauth_memory_secs", self.needs_reauth_memory_secs),
            ("retry_attempts", self.retry_attempts.into()),
            ("retry_base_ms", self.retry_base_ms),
            ("org_concurrency", self.org_concurrency.into()),
            ("concurrency_wait_ms", self.concurrency_wait_ms),
            ("org_daily_credits", self.org_daily_credits),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(SettingsError::invalid(key(name), "a number greater than 0"));
            }
        }
        if self.redis_key_prefix.trim().is_empty() {
            return Err(SettingsError::invalid(
                key("redis_key_prefix"),
                "a non-empty prefix such as `pledgesync:zoho`",
            ));
        }
        if self.refresh_lock_ttl_ms <= self.refresh_timeout_ms {
            return Err(SettingsError::invalid(
                key("refresh_lock_ttl_ms"),
                "more than refresh_timeout_ms, so the lock outlives the refresh it guards",
            ));
        }
        if self.retry_max_ms < self.retry_base_ms {
            return Err(SettingsError::invalid(
                key("retry_max_ms"),
                "at least retry_base_ms",
            ));
        }
        let fraction = |f: f64| f.is_finite() && f > 0.0 && f < 0.5;
        if !fraction(self.safety_margin_fraction) {
            return Err(SettingsError::invalid(
                key("safety_margin_fraction"),
                "a fraction between 0 and 0.5",
            ));
        }
        if !fraction(self.proactive_refresh_fraction)
            || self.proactive_refresh_fraction <= self.safety_margin_fraction
        {
            return Err(SettingsError::invalid(
                key("proactive_refresh_fraction"),
                "a fraction below 0.5 and above safety_margin_fraction",
            ));
        }
        if self.proactive_refresh_max_secs <= self.safety_margin_max_secs {
            return Err(SettingsError::invalid(
                key("proactive_refresh_max_secs"),
                "more than safety_margin_max_secs",
            ));
        }
        if !(self.credit_share.is_finite() && self.credit_share > 0.0 && self.credit_share <= 1.0) {
            return Err(SettingsError::invalid(
                key("credit_share"),
                "a fraction above 0 and at most 1",
            ));
        }
        Ok(())
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub(crate) fn refresh_timeout(&self) -> Duration {
        Duration::from_millis(self.refresh_timeout_ms)
    }

    pub(crate) fn token_wait(&self) -> Duration {
        Duration::from_millis(self.token_wait_ms)
    }

    /// When, before expiry, a token of this lifetime is due for a proactive refresh.
    pub(crate) fn proactive_margin(&self, lifetime: Duration) -> Duration {
        lifetime
            .mul_f64(self.proactive_refresh_fraction)
            .min(Duration::from_secs(self.proactive_refresh_max_secs))
    }

    /// When, before expiry, a token of this lifetime stops being used at all.
    pub(crate) fn safety_margin(&self, lifetime: Duration) -> Duration {
        lifetime
            .mul_f64(self.safety_margin_fraction)
            .min(Duration::from_secs(self.safety_margin_max_secs))
    }

    /// The credits per rolling 24 h pledgesync may spend out of `daily_credits`.
    pub(crate) fn credit_budget(&self, daily_credits: u64) -> u64 {
        ((daily_credits as f64) * self.credit_share)
            .floor()
            .max(1.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_margins_scale() {
        let s = ZohoClientSettings::default();
        s.validate().expect("defaults are valid");
        assert_eq!(
            s.proactive_margin(Duration::from_secs(3600)),
            Duration::from_secs(72)
        );
        assert_eq!(
            s.safety_margin(Duration::from_secs(3600)),
            Duration::from_secs(30)
        );
        let short = s.proactive_margin(Duration::from_secs(2));
        assert!(
            short > Duration::from_millis(39) && short < Duration::from_millis(41),
            "{short:?}"
        );
        assert_eq!(s.credit_budget(50_000), 25_000);
    }

    #[test]
    fn inconsistent_values_name_their_key() {
        let bad = ZohoClientSettings {
            refresh_lock_ttl_ms: 1_000,
            refresh_timeout_ms: 2_000,
            ..Default::default()
        };
        let err = bad.validate().expect_err("lock shorter than refresh");
        assert!(
            err.to_string()
                .contains("`zoho_client.refresh_lock_ttl_ms`"),
            "{err}"
        );

        let bad = ZohoClientSettings {
            credit_share: 1.5,
            ..Default::default()
        };
        assert!(bad
            .validate()
            .expect_err("share")
            .to_string()
            .contains("credit_share"));

        let bad = ZohoClientSettings {
            proactive_refresh_fraction: 0.005,
            ..Default::default()
        };
        assert!(bad
            .validate()
            .expect_err("fraction")
            .to_string()
            .contains("proactive_refresh_fraction"));
    }

    #[test]
    fn deserializes_partially() {
        let s: ZohoClientSettings =
            serde_json::from_str(r#"{"org_concurrency": 9}"#).expect("partial section");
        assert_eq!(s.org_concurrency, 9);
        assert_eq!(s.retry_attempts, 5);
        assert!(serde_json::from_str::<ZohoClientSettings>(r#"{"no_such": 1}"#).is_err());
    }
}
