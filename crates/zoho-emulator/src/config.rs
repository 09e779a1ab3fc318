//! Start-up configuration: the default org's data and the initial knobs.

use serde::{Deserialize, Serialize};

use crate::dc::Dc;
use crate::knobs::Knobs;
use crate::org::{OrgSpec, EDITIONS};
use crate::zones;

/// How to start an emulator. `EmulatorConfig { contacts: 50, ..Default::default() }` is the usual
/// way to get a small one in a test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmulatorConfig {
    /// Contacts in the default org.
    pub contacts: usize,
    /// Leads in the default org.
    pub leads: usize,
    /// Seed of the default org's data.
    pub seed: u64,
    /// Delay added to every accounts and CRM answer, in milliseconds.
    pub latency_ms: u64,
    /// Lifetime of new access tokens in seconds.
    pub token_ttl_secs: u64,
    /// The DC (`"US"`, `"EU"`…) of the default org's self clients and of the unprefixed
    /// `{base}/oauth/v2/token` and `{base}/crm/…` paths.
    pub data_center: String,
    /// IANA time zone of the default org; timestamps carry its offset (DST is not modelled).
    pub time_zone: String,
    /// Edition of the default org (`enterprise`, `free`, `professional`…), shown in `/org`.
    pub edition: String,
    /// See [`Knobs::refresh_throttle_max`].
    pub refresh_throttle_max: u32,
    /// See [`Knobs::refresh_throttle_window_secs`].
    pub refresh_throttle_window_secs: u64,
    /// See [`Knobs::throttle_status`].
    pub throttle_status: u16,
    /// See [`Knobs::max_active_tokens_per_refresh_token`].
    pub max_active_tokens_per_refresh_token: usize,
    /// See [`Knobs::max_refresh_tokens_per_user`].
    pub max_refresh_tokens_per_user: usize,
    /// See [`Knobs::max_grant_codes_per_10_min`].
    pub max_grant_codes_per_10_min: u32,
    /// See [`Knobs::concurrency_limit`].
    pub concurrency_limit: usize,
    /// See [`Knobs::daily_credits`].
    pub daily_credits: u64,
    /// See [`Knobs::error_rate_5xx`].
    pub error_rate_5xx: f64,
    /// See [`Knobs::drop_rate`].
    pub drop_rate: f64,
    /// See [`Knobs::faults_on_accounts`].
    pub faults_on_accounts: bool,
    /// See [`Knobs::not_modified_status`].
    pub not_modified_status: u16,
    /// See [`Knobs::legacy_expires_in`].
    pub legacy_expires_in: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        let k = Knobs::default();
        EmulatorConfig {
            contacts: 1000,
            leads: 500,
            seed: 42,
            latency_ms: k.latency_ms,
            token_ttl_secs: k.token_ttl_secs,
            data_center: "US".into(),
            time_zone: "Asia/Kolkata".into(),
            edition: "enterprise".into(),
            refresh_throttle_max: k.refresh_throttle_max,
            refresh_throttle_window_secs: k.refresh_throttle_window_secs,
            throttle_status: k.throttle_status,
            max_active_tokens_per_refresh_token: k.max_active_tokens_per_refresh_token,
            max_refresh_tokens_per_user: k.max_refresh_tokens_per_user,
            max_grant_codes_per_10_min: k.max_grant_codes_per_10_min,
            concurrency_limit: k.concurrency_limit,
            daily_credits: k.daily_credits,
            error_rate_5xx: k.error_rate_5xx,
            drop_rate: k.drop_rate,
            faults_on_accounts: k.faults_on_accounts,
            not_modified_status: k.not_modified_status,
            legacy_expires_in: k.legacy_expires_in,
        }
    }
}

impl EmulatorConfig {
    /// The knobs this configuration starts with.
    pub fn knobs(&self) -> Knobs {
        Knobs {
            latency_ms: self.latency_ms,
            token_ttl_secs: self.token_ttl_secs,
            refresh_throttle_max: self.refresh_throttle_max,
            refresh_throttle_window_secs: self.refresh_throttle_window_secs,
            throttle_status: self.throttle_status,
            max_active_tokens_per_refresh_token: self.max_active_tokens_per_refresh_token,
            max_refresh_tokens_per_user: self.max_refresh_tokens_per_user,
            max_grant_codes_per_10_min: self.max_grant_codes_per_10_min,
            concurrency_limit: self.concurrency_limit,
            daily_credits: self.daily_credits,
            error_rate_5xx: self.error_rate_5xx,
            drop_rate: self.drop_rate,
            faults_on_accounts: self.faults_on_accounts,
            not_modified_status: self.not_modified_status,
            legacy_expires_in: self.legacy_expires_in,
        }
    }

    /// Checks everything at start, so a typo fails loudly instead of emulating something else.
    pub fn validate(&self) -> Result<(Dc, OrgSpec), String> {
        self.knobs().validate()?;
        let dc = Dc::parse(&self.data_center).ok_or_else(|| {
            format!(
                "unknown data centre {:?} (one of US EU IN AU JP CN CA SA)",
                self.data_center
            )
        })?;
        let spec = OrgSpec {
            contacts: self.contacts,
            leads: self.leads,
            seed: self.seed,
            edition: self.edition.clone(),
            time_zone: self.time_zone.clone(),
            company_name: None,
            concurrency_limit: None,
            daily_credits: None,
        };
        spec.validate()?;
        if zones::offset(&self.time_zone).is_none() || !EDITIONS.contains(&self.edition.as_str()) {
            return Err("invalid time zone or edition".into());
        }
        Ok((dc, spec))
    }
}
