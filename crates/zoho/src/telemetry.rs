//! Metric names and the helpers that record them, in one place so dashboards have one list.
//!
//! - `pledgesync_zoho_calls_total{endpoint,status}`: every HTTP call to Zoho and how it ended.
//! - `pledgesync_zoho_call_seconds{endpoint}`: latency of those calls.
//! - `pledgesync_zoho_credits_used_total`: API credits pledgesync spent.
//! - `pledgesync_zoho_limit_waits_total{limit}`: calls that waited for a concurrency slot.
//! - `pledgesync_zoho_token_refreshes_total{outcome}`: refreshes this process asked Zoho for.
//! - `pledgesync_zoho_token_cache_hits_total{tier}`: tokens served from memory or Redis.
//! - `pledgesync_zoho_token_lock_waits_total`: rounds that found another worker refreshing.
//! - `pledgesync_zoho_token_throttles_total`: refreshes Zoho throttled, and calls held by the
//!   shared cool-down.

use std::time::Instant;

/// Records one HTTP call to Zoho.
pub(crate) fn record_call(endpoint: &'static str, status: &str, started: Instant) {
    metrics::counter!("pledgesync_zoho_calls_total", "endpoint" => endpoint, "status" => status.to_owned()).increment(1);
    metrics::histogram!("pledgesync_zoho_call_seconds", "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
}

/// Records credits spent.
pub(crate) fn credits_used(credits: u64) {
    metrics::counter!("pledgesync_zoho_credits_used_total").increment(credits);
}

/// Records a wait for a per-org limit (`concurrency` or `credits`).
pub(crate) fn limit_wait(limit: &'static str) {
    metrics::counter!("pledgesync_zoho_limit_waits_total", "limit" => limit).increment(1);
}

/// Records a refresh this process performed (`ok`, `throttled`, `rejected`, `failed`).
pub(crate) fn token_refresh(outcome: &'static str) {
    metrics::counter!("pledgesync_zoho_token_refreshes_total", "outcome" => outcome).increment(1);
}

/// Records a token served from a cache (`memory` or `redis`).
pub(crate) fn token_cache_hit(tier: &'static str) {
    metrics::counter!("pledgesync_zoho_token_cache_hits_total", "tier" => tier).increment(1);
}

/// Records a round that found the refresh lock held by someone else.
pub(crate) fn token_lock_wait() {
    metrics::counter!("pledgesync_zoho_token_lock_waits_total").increment(1);
}

/// Records a throttled refresh or a call held back by the cool-down.
pub(crate) fn token_throttle() {
    metrics::counter!("pledgesync_zoho_token_throttles_total").increment(1);
}
