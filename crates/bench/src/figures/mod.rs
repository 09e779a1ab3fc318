//! The six figures of issue 7, their sizes at each scale, and how each one is made.
//!
//! A figure builds its own throwaway system (or several), measures, prints its lines through the
//! [`Recorder`], and stops what it started. An error ends that figure only.

mod e2e;
mod fairness;
mod incremental;
mod latency;
mod scaling;
mod tokens;

use std::fmt;
use std::time::Duration;

use crate::api::RunView;
use crate::binaries::Binaries;
use crate::error::Result;
use crate::report::Recorder;
use crate::system::System;

/// One figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Figure {
    /// 1. End-to-end full sync against the PostgreSQL ceiling.
    E2e,
    /// 2. Time per record and memory at three sizes.
    Scaling,
    /// 3. A latency-bound fetch against pages × latency.
    Latency,
    /// 4. Token refreshes per token expiry.
    Tokens,
    /// 5. Small runs' completion times while a big run syncs.
    Fairness,
    /// 6. An incremental run after 1 % changed, against the full run.
    Incremental,
}

impl Figure {
    /// In the order.
    pub const ALL: [Figure; 6] = [
        Figure::E2e,
        Figure::Scaling,
        Figure::Latency,
        Figure::Tokens,
        Figure::Fairness,
        Figure::Incremental,
    ];

    /// The name `--only` takes.
    pub fn name(self) -> &'static str {
        match self {
            Figure::E2e => "e2e",
            Figure::Scaling => "scaling",
            Figure::Latency => "latency",
            Figure::Tokens => "tokens",
            Figure::Fairness => "fairness",
            Figure::Incremental => "incremental",
        }
    }

    /// Its number in the issue.
    pub fn number(self) -> usize {
        Figure::ALL
            .iter()
            .position(|f| *f == self)
            .map_or(0, |i| i + 1)
    }

    /// A title for the doc.
    pub fn title(self) -> &'static str {
        match self {
            Figure::E2e => "End-to-end full sync",
            Figure::Scaling => "Scaling with size",
            Figure::Latency => "Latency-bound fetch",
            Figure::Tokens => "Token refreshes",
            Figure::Fairness => "Fairness",
            Figure::Incremental => "Incremental sync",
        }
    }

    /// By name (`e2e`) or number (`1`).
    pub fn parse(text: &str) -> Option<Figure> {
        let text = text.trim().to_ascii_lowercase();
        Figure::ALL
            .into_iter()
            .find(|f| f.name() == text || f.number().to_string() == text)
    }

    /// Measures the figure.
    pub async fn run(self, plan: &Plan, binaries: &Binaries, out: &Recorder) -> Result<()> {
        match self {
            Figure::E2e => e2e::run(plan, binaries, out).await,
            Figure::Scaling => scaling::run(plan, binaries, out).await,
            Figure::Latency => latency::run(plan, binaries, out).await,
            Figure::Tokens => tokens::run(plan, binaries, out).await,
            Figure::Fairness => fairness::run(plan, binaries, out).await,
            Figure::Incremental => incremental::run(plan, binaries, out).await,
        }
    }

    /// How the figure is made at `plan`'s sizes, for the doc.
    pub fn method(self, plan: &Plan) -> String {
        match self {
            Figure::E2e => e2e::method(plan),
            Figure::Scaling => scaling::method(plan),
            Figure::Latency => latency::method(plan),
            Figure::Tokens => tokens::method(plan),
            Figure::Fairness => fairness::method(plan),
            Figure::Incremental => incremental::method(plan),
        }
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `--scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Every figure at a tenth of its size, in under five minutes.
    Quick,
    /// The sizes of the issue; up to thirty minutes.
    Full,
}

impl Scale {
    /// As `--scale` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Scale::Quick => "quick",
            Scale::Full => "full",
        }
    }
}

/// The sizes of every figure at one scale.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Which scale this is.
    pub scale: Scale,
    /// Figure 1: contacts of the full sync and the ceiling.
    pub e2e_records: u64,
    /// Figure 1: attempts at the full sync, and at the ceiling (the fastest of each counts, so
    /// that both sides of the ratio get the same chance against the machine's noise).
    pub e2e_attempts: u32,
    /// Figure 2: the three sizes.
    pub scaling_sizes: [u64; 3],
    /// Figure 3: contacts of the one module.
    pub latency_records: u64,
    /// Figure 3: the emulator's latency per call.
    pub latency_ms: u64,
    /// Figure 4: fetcher processes.
    pub token_fetchers: usize,
    /// Figure 4: integrations, each in its own org.
    pub token_integrations: usize,
    /// Figure 4: contacts per org.
    pub token_org_contacts: u64,
    /// Figure 4: access-token lifetime.
    pub token_ttl_secs: u64,
    /// Figure 4: length of the window of incremental syncs.
    pub token_window_secs: u64,
    /// Figure 5: contacts of the big integration.
    pub fairness_big: u64,
    /// Figure 5: small integrations.
    pub fairness_small_count: usize,
    /// Figure 5: contacts of each small integration.
    pub fairness_small_contacts: u64,
    /// Figure 5: rounds of Sync Now per phase (each round presses every small integration).
    pub fairness_rounds: usize,
    /// Figure 6: contacts.
    pub incremental_records: u64,
    /// Figure 6: share of them changed, in percent.
    pub incremental_change_percent: u64,
}

impl Plan {
    /// The sizes of `scale`: the issue's, or a tenth of them.
    pub fn new(scale: Scale) -> Plan {
        let full = Plan {
            scale,
            e2e_records: 200_000,
            e2e_attempts: 3,
            scaling_sizes: [10_000, 100_000, 1_000_000],
            latency_records: 20_000,
            latency_ms: 50,
            token_fetchers: 4,
            token_integrations: 20,
            token_org_contacts: 1_000,
            token_ttl_secs: 5,
            token_window_secs: 60,
            fairness_big: 500_000,
            fairness_small_count: 20,
            fairness_small_contacts: 500,
            fairness_rounds: 3,
            incremental_records: 200_000,
            incremental_change_percent: 1,
        };
        match scale {
            Scale::Full => full,
            Scale::Quick => Plan {
                e2e_records: full.e2e_records / 10,
                scaling_sizes: full.scaling_sizes.map(|n| n / 10),
                latency_records: full.latency_records / 10,
                token_org_contacts: full.token_org_contacts / 10,
                // A tenth of 60 s would hold one expiry; 20 s holds four.
                token_window_secs: 20,
                fairness_big: full.fairness_big / 10,
                fairness_small_contacts: full.fairness_small_contacts / 10,
                fairness_rounds: 2,
                incremental_records: full.incremental_records / 10,
                ..full
            },
        }
    }
}

/// A generous deadline for a full run of `records`: two minutes plus two milliseconds a record
/// (a safety net for a stuck run, not a measurement).
pub fn run_timeout(records: u64) -> Duration {
    Duration::from_secs(120) + Duration::from_millis(records.saturating_mul(2))
}

/// The longest any one run may take, so that `--scale full` stays within its thirty minutes even
/// when a run is far slower than it should be; a run cut off here is reported with how far it got.
pub const RUN_BUDGET: Duration = Duration::from_secs(12 * 60);

/// Sync Now (full) on the integration and wait for success; the run's final view.
pub async fn full_sync(system: &System, integration: &str, records: u64) -> Result<RunView> {
    let run = system.api.sync(integration, "full").await?;
    system.wait_for_success(&run.id, run_timeout(records)).await
}

/// Seconds the run took, Sync Now to finish, from its own timestamps.
pub fn run_seconds(run: &RunView) -> Result<f64> {
    run.seconds().ok_or_else(|| {
        crate::error::BenchError::unexpected(format!("run {}", run.id), "has no finished_at")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_parse_by_name_or_number() {
        assert_eq!(Figure::parse("e2e"), Some(Figure::E2e));
        assert_eq!(Figure::parse(" Fairness "), Some(Figure::Fairness));
        assert_eq!(Figure::parse("6"), Some(Figure::Incremental));
        assert_eq!(Figure::parse("7"), None);
        assert_eq!(Figure::Tokens.number(), 4);
    }

    #[test]
    fn quick_is_a_tenth_of_full() {
        let full = Plan::new(Scale::Full);
        let quick = Plan::new(Scale::Quick);
        assert_eq!(full.e2e_records, 200_000);
        assert_eq!(quick.e2e_records, 20_000);
        assert_eq!(quick.scaling_sizes, [1_000, 10_000, 100_000]);
        assert_eq!(quick.fairness_big, 50_000);
        assert_eq!(quick.latency_ms, full.latency_ms);
        assert_eq!(quick.token_integrations, full.token_integrations);
        assert!(run_timeout(1_000_000) > run_timeout(1_000));
    }
}
