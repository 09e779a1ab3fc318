//! Figure 4: several fetchers and many integrations share access tokens that expire every few
//! seconds; refreshes counted by the emulator against the expiries in the window.

use std::time::{Duration, Instant};

use futures::future::{join_all, try_join_all};
use serde_json::Value;

use crate::binaries::Binaries;
use crate::error::{BenchError, Result};
use crate::figures::{full_sync, Plan};
use crate::report::{Recorder, Unit};
use crate::stats::ratio;
use crate::system::{System, SystemOptions};

/// Zoho's refresh throttle: 10 new access tokens per refresh token per 600 s, for 3600 s tokens.
const ZOHO_THROTTLE_MAX: u32 = 10;
const ZOHO_THROTTLE_WINDOW_SECS: u64 = 600;
const ZOHO_TOKEN_TTL_SECS: u64 = 3600;

/// The Zoho client's default share of a token's lifetime left when it is refreshed ahead of
/// expiry (the bench runs the fetchers with it).
fn proactive_fraction() -> f64 {
    pledgesync_zoho::ZohoClientSettings::default().proactive_refresh_fraction
}

/// Zoho's time windows scaled to the bench's token lifetime (at least a second).
fn scaled(secs: u64, ttl: u64) -> u64 {
    (secs * ttl).div_ceil(ZOHO_TOKEN_TTL_SECS).max(1)
}

/// How the loops of incremental runs went.
#[derive(Debug, Default)]
struct Tally {
    succeeded: u64,
    failed: u64,
    first_failure: Option<String>,
}

pub(super) async fn run(plan: &Plan, binaries: &Binaries, out: &Recorder) -> Result<()> {
    let ttl = plan.token_ttl_secs;
    let window = scaled(ZOHO_THROTTLE_WINDOW_SECS, ttl);
    let mut options = SystemOptions::contacts(10);
    options.fetchers = plan.token_fetchers;
    options.emulator.token_ttl_secs = ttl;
    options.emulator.refresh_throttle = (ZOHO_THROTTLE_MAX, window);
    options.extra_env.push((
        "PLEDGESYNC__ZOHO_CLIENT__REFRESH_COOLDOWN_SECS".to_owned(),
        window.to_string(),
    ));
    let system = System::start(binaries, "tokens", options).await?;
    let mut integrations = Vec::new();
    for i in 0..plan.token_integrations {
        let org = system
            .emulator
            .create_org(plan.token_org_contacts, 1000 + i as u64)
            .await?;
        let connected = system
            .connect(&format!("bench-tokens-{i}"), Some(&org))
            .await?;
        integrations.push(connected.integration);
    }
    try_join_all(
        integrations
            .iter()
            .map(|id| full_sync(&system, id, plan.token_org_contacts)),
    )
    .await?;

    system.emulator.reset_stats().await?;
    let started = Instant::now();
    let end = started + Duration::from_secs(plan.token_window_secs);
    let loops = join_all(integrations.iter().map(|id| press_until(&system, id, end)));
    let at_end = async {
        tokio::time::sleep_until(end.into()).await;
        system.emulator.stats().await
    };
    let (tallies, stats) = tokio::join!(loops, at_end);
    let stats = stats?;
    let mut tally = Tally::default();
    for t in tallies {
        let t = t?;
        tally.succeeded += t.succeeded;
        tally.failed += t.failed;
        tally.first_failure = tally.first_failure.or(t.first_failure);
    }

    let count = |key: &str| stats[key].as_u64().unwrap_or(0);
    let refreshes = count("token_refreshes");
    let expiries = plan.token_integrations as u64 * plan.token_window_secs.div_ceil(ttl);
    out.line("token_refreshes", refreshes as f64, Unit::Count);
    out.line("token_expiries", expiries as f64, Unit::Count);
    out.maybe(
        "token_refreshes_per_expiry",
        ratio(refreshes as f64, expiries as f64),
        Unit::Ratio,
    )?;
    out.line(
        "token_refreshes_per_integration",
        refreshes as f64 / plan.token_integrations.max(1) as f64,
        Unit::Count,
    );
    // A token in constant use is replaced once its last `proactive_refresh_fraction` of life
    // begins, so one refresh per token needed is this many in the window.
    let needed = plan.token_integrations as f64 * plan.token_window_secs as f64
        / (ttl as f64 * (1.0 - proactive_fraction()));
    out.maybe(
        "token_refreshes_per_needed_refresh",
        ratio(refreshes as f64, needed),
        Unit::Ratio,
    )?;
    out.line(
        "token_throttled_refreshes",
        count("throttled_refreshes") as f64,
        Unit::Count,
    );
    out.line("token_runs_succeeded", tally.succeeded as f64, Unit::Count);
    out.line("token_runs_failed", tally.failed as f64, Unit::Count);
    if let Some(failure) = tally.first_failure {
        out.note(format!(
            "{} incremental runs failed; the first: {failure}",
            tally.failed
        ));
    }
    if let Some(errors) = stats["token_errors"].as_object().filter(|e| !e.is_empty()) {
        out.note(format!(
            "token endpoint errors in the window: {}",
            Value::Object(errors.clone())
        ));
    }
    system.stop().await;
    Ok(())
}

/// Presses Sync Now (incremental) on the integration as soon as its previous run ends, until
/// `end`; waits for the last run it started.
async fn press_until(system: &System, integration: &str, end: Instant) -> Result<Tally> {
    let mut tally = Tally::default();
    while Instant::now() < end {
        let run = system.api.sync(integration, "incremental").await?;
        let view = system
            .wait_for_end(&run.id, Duration::from_secs(120), Duration::from_millis(50))
            .await?;
        match view.succeeded() {
            Ok(_) => tally.succeeded += 1,
            Err(BenchError::RunFailed { error, .. }) => {
                tally.failed += 1;
                tally.first_failure.get_or_insert(error);
            }
            Err(other) => return Err(other),
        }
    }
    Ok(tally)
}

pub(super) fn method(plan: &Plan) -> String {
    let ttl = plan.token_ttl_secs;
    format!(
        "A fresh system with {fetchers} fetcher processes and one sink. The emulator mints access tokens that \
         live {ttl} s, and its refresh throttle is Zoho's scaled to that lifetime: {max} tokens per refresh token \
         per {window} s (600 s × {ttl}/3600, at least 1 s); the Zoho client's throttle cool-down is scaled the \
         same way; every other Zoho-client setting is the production default. {n} integrations, each in its own \
         emulator org of {contacts} contacts, each synced in full once. Then the emulator's counters are reset \
         and for {secs} s every integration gets Sync Now (incremental) again as soon as its previous run ends. \
         `token_refreshes_per_expiry` is the emulator's `token_refreshes` counted at the end of the window over \
         the token expiries the window holds, {n} × ceil({secs} / {ttl}). The Zoho client refreshes a token \
         ahead of its expiry, once less than {pct:.1} % of its lifetime is left, so a token in constant use is \
         replaced every {every:.2} s and exactly one refresh per token needed reads as about {expected:.3} here; \
         `token_refreshes_per_needed_refresh` divides by that count instead ({n} × {secs} / {every:.2}), so \
         1.0 there means no refresh was duplicated or wasted.",
        fetchers = plan.token_fetchers,
        max = ZOHO_THROTTLE_MAX,
        window = scaled(ZOHO_THROTTLE_WINDOW_SECS, ttl),
        n = plan.token_integrations,
        contacts = plan.token_org_contacts,
        secs = plan.token_window_secs,
        pct = proactive_fraction() * 100.0,
        every = ttl as f64 * (1.0 - proactive_fraction()),
        expected = (plan.token_window_secs as f64 / (ttl as f64 * (1.0 - proactive_fraction())))
            / plan.token_window_secs.div_ceil(ttl) as f64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zohos_windows_scale_with_the_token_lifetime() {
        assert_eq!(scaled(600, 3600), 600);
        assert_eq!(scaled(600, 5), 1);
        assert_eq!(scaled(600, 60), 10);
        assert_eq!(scaled(600, 1), 1);
    }
}
