//! Counters that tests assert on (`GET /__emulator/stats`).
//!
//! Endpoint keys are route templates (`GET /crm/v8/{module}`), never raw paths, so the key set is
//! bounded and a test can name the key it expects.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

/// Per-org numbers.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OrgCounters {
    /// CRM API calls that reached the org (any status).
    pub api_calls: u64,
    /// Credits spent.
    pub credits_used: u64,
    /// Records returned by list calls.
    pub records_served: u64,
    /// 429 answers (concurrency or credits).
    pub rejected_429: u64,
}

/// Everything counted since start or the last reset.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    /// Successful `grant_type=refresh_token` calls.
    pub token_refreshes: u64,
    /// Successful code exchanges.
    pub codes_exchanged: u64,
    /// Access tokens minted (exchanges and refreshes).
    pub access_tokens_issued: u64,
    /// Refresh tokens minted.
    pub refresh_tokens_issued: u64,
    /// Refreshes answered with the `Access Denied` throttle.
    pub throttled_refreshes: u64,
    /// Refresh tokens revoked through the revoke endpoint.
    pub refresh_tokens_revoked: u64,
    /// Grant codes generated in the console.
    pub grant_codes_issued: u64,
    /// Token-endpoint error answers by `error` value.
    pub token_errors: BTreeMap<String, u64>,
    /// Calls by endpoint template and status (`"dropped"` for dropped connections).
    pub api_calls: BTreeMap<String, BTreeMap<String, u64>>,
    /// API credits spent, all orgs.
    pub credits_used: u64,
    /// Records returned by list calls, all orgs.
    pub records_served: u64,
    /// 429s for the concurrency limit.
    pub concurrency_rejections: u64,
    /// 429s for the credit budget.
    pub credit_rejections: u64,
    /// Injected 500s.
    pub injected_5xx: u64,
    /// Connections closed without an answer.
    pub dropped_connections: u64,
    /// Per org id.
    pub orgs: BTreeMap<String, OrgCounters>,
}

impl Counters {
    /// Counts one call of `endpoint` answered with `status`.
    pub fn call(&mut self, endpoint: &str, status: &str) {
        let by_status = match self.api_calls.get_mut(endpoint) {
            Some(s) => s,
            None => self.api_calls.entry(endpoint.to_string()).or_default(),
        };
        match by_status.get_mut(status) {
            Some(n) => *n += 1,
            None => {
                by_status.insert(status.to_string(), 1);
            }
        }
    }

    /// The counters of one org.
    pub fn org(&mut self, org_id: &str) -> &mut OrgCounters {
        if !self.orgs.contains_key(org_id) {
            self.orgs.insert(org_id.to_string(), OrgCounters::default());
        }
        self.orgs.entry(org_id.to_string()).or_default()
    }

    /// Counts a token-endpoint error.
    pub fn token_error(&mut self, error: &str) {
        *self.token_errors.entry(error.to_string()).or_default() += 1;
    }
}

/// The shared counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Guarded counters; every update is a few increments.
    inner: Mutex<Counters>,
}

impl Stats {
    /// Updates the counters.
    pub fn with<R>(&self, f: impl FnOnce(&mut Counters) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> Counters {
        self.with(|c| c.clone())
    }

    /// Zeroes everything.
    pub fn reset(&self) {
        self.with(|c| *c = Counters::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_endpoint_and_status() {
        let stats = Stats::default();
        stats.with(|c| {
            c.call("GET /crm/v8/{module}", "200");
            c.call("GET /crm/v8/{module}", "200");
            c.call("GET /crm/v8/{module}", "401");
            c.org("1").api_calls += 1;
        });
        let json = serde_json::to_value(stats.snapshot()).expect("json");
        assert_eq!(json["api_calls"]["GET /crm/v8/{module}"]["200"], 2);
        assert_eq!(json["api_calls"]["GET /crm/v8/{module}"]["401"], 1);
        assert_eq!(json["orgs"]["1"]["api_calls"], 1);
        stats.reset();
        assert!(stats.snapshot().api_calls.is_empty());
    }
}
