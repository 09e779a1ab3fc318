//! Run-time knobs: latency, lifetimes, Zoho's limits, injected faults.
//!
//! All faults are off by default so that a test sees a well-behaved Zoho unless it asks otherwise.
//! `PUT /__emulator/knobs` takes a partial object and validates the result as a whole.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The knobs in force; read once per request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// Delay added to every accounts and CRM answer, in milliseconds (0 = none).
    pub latency_ms: u64,
    /// Lifetime of new access tokens in seconds (Zoho: 3600).
    pub token_ttl_secs: u64,
    /// Access tokens one refresh token may mint per window before `Access Denied` (Zoho: 10).
    pub refresh_throttle_max: u32,
    /// The throttle window in seconds (Zoho: 600); a throttled retry restarts it.
    pub refresh_throttle_window_secs: u64,
    /// HTTP status of the throttle answer: 200 (default) or 400, as third parties report both.
    pub throttle_status: u16,
    /// Live access tokens per refresh token; minting another silently kills the oldest (Zoho: 15).
    pub max_active_tokens_per_refresh_token: usize,
    /// Refresh tokens per user; the oldest is deleted beyond it (Zoho: 20).
    pub max_refresh_tokens_per_user: usize,
    /// Grant codes one client may generate per 10 minutes in the console (Zoho: 10).
    pub max_grant_codes_per_10_min: u32,
    /// In-flight CRM calls allowed per org and client; beyond it 429 (0 = unlimited).
    pub concurrency_limit: usize,
    /// API credits per org per rolling 24 hours; beyond it 429 (0 = unlimited).
    pub daily_credits: u64,
    /// Share of calls answered `500 INTERNAL_ERROR` (0.0–1.0).
    pub error_rate_5xx: f64,
    /// Share of calls whose connection is closed without an answer (0.0–1.0).
    pub drop_rate: f64,
    /// Whether the two fault rates also hit the accounts server (default: CRM API only).
    pub faults_on_accounts: bool,
    /// Status for "nothing modified since": 304 (default) or 204.
    pub not_modified_status: u16,
    /// Answer tokens in the legacy form: `expires_in_sec` seconds and `expires_in` milliseconds.
    pub legacy_expires_in: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            latency_ms: 0,
            token_ttl_secs: 3600,
            refresh_throttle_max: 10,
            refresh_throttle_window_secs: 600,
            throttle_status: 200,
            max_active_tokens_per_refresh_token: 15,
            max_refresh_tokens_per_user: 20,
            max_grant_codes_per_10_min: 10,
            concurrency_limit: 0,
            daily_credits: 0,
            error_rate_5xx: 0.0,
            drop_rate: 0.0,
            faults_on_accounts: false,
            not_modified_status: 304,
            legacy_expires_in: false,
        }
    }
}

impl Knobs {
    /// Rejects values that would make the emulator misbehave rather than emulate.
    pub fn validate(&self) -> Result<(), String> {
        let rate_ok = |r: f64| (0.0..=1.0).contains(&r);
        if !rate_ok(self.error_rate_5xx) || !rate_ok(self.drop_rate) {
            return Err("error_rate_5xx and drop_rate must be between 0.0 and 1.0".into());
        }
        if !(200..=599).contains(&self.throttle_status) {
            return Err("throttle_status must be an HTTP status (Zoho: 200 or 400)".into());
        }
        if ![204, 304].contains(&self.not_modified_status) {
            return Err("not_modified_status must be 204 or 304".into());
        }
        if self.token_ttl_secs == 0 || self.refresh_throttle_window_secs == 0 {
            return Err("token_ttl_secs and refresh_throttle_window_secs must be positive".into());
        }
        if self.max_active_tokens_per_refresh_token == 0 || self.max_refresh_tokens_per_user == 0 {
            return Err("token caps must be at least 1".into());
        }
        if self.latency_ms > 600_000 {
            return Err("latency_ms must be at most 600000".into());
        }
        Ok(())
    }

    /// Applies a partial JSON object (`{"latency_ms": 50}`) and validates the result.
    pub fn merged(&self, patch: &Value) -> Result<Knobs, String> {
        let patch = patch.as_object().ok_or("knobs must be a JSON object")?;
        let mut current = serde_json::to_value(self).map_err(|e| e.to_string())?;
        if let Some(map) = current.as_object_mut() {
            for (k, v) in patch {
                map.insert(k.clone(), v.clone());
            }
        }
        let knobs: Knobs = serde_json::from_value(current).map_err(|e| e.to_string())?;
        knobs.validate()?;
        Ok(knobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_updates_merge_and_validate() {
        let knobs = Knobs::default();
        let changed = knobs
            .merged(&json!({"latency_ms": 25, "throttle_status": 400}))
            .expect("valid");
        assert_eq!(changed.latency_ms, 25);
        assert_eq!(changed.throttle_status, 400);
        assert_eq!(changed.token_ttl_secs, 3600);
        assert!(knobs.merged(&json!({"drop_rate": 1.5})).is_err());
        assert!(knobs.merged(&json!({"not_modified_status": 200})).is_err());
        assert!(knobs.merged(&json!({"no_such_knob": 1})).is_err());
        assert!(knobs.merged(&json!([1])).is_err());
        assert!(knobs.merged(&json!({"latency_ms": "slow"})).is_err());
    }
}
