//! What the API answers with: the JSON views of audiences, integrations and runs.
//!
//! Views are built from store rows and never carry a secret or a ciphertext: the integration view
//! has no field that could hold one, so no code path can leak one by accident.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use pledgesync_core::messages::{SyncMode, Trigger};
use pledgesync_core::{AccountId, AudienceId, DataCenter, IntegrationId, Module, RunId};
use pledgesync_store::{Audience, Integration, IntegrationStatus, Run, RunStatus};
use serde::Serialize;

/// An audience.
#[derive(Clone, Debug, Serialize)]
pub struct AudienceView {
    /// Its id.
    pub id: AudienceId,
    /// The owning PledgeBox account.
    pub account_id: AccountId,
    /// Its name, unique in the account.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<Audience> for AudienceView {
    fn from(a: Audience) -> Self {
        Self {
            id: a.id,
            account_id: a.account_id,
            name: a.name,
            created_at: a.created_at,
        }
    }
}

/// The Zoho org an integration reads.
#[derive(Clone, Debug, Serialize)]
pub struct ZohoOrgView {
    /// Zoho's org id.
    pub id: String,
    /// The company name.
    pub name: Option<String>,
    /// The org's IANA time zone.
    pub time_zone: Option<String>,
}

/// When an integration syncs.
#[derive(Clone, Debug, Serialize)]
pub struct ScheduleView {
    /// Seconds between scheduled incremental runs.
    pub interval_secs: u32,
    /// Seconds between scheduled full runs.
    pub full_sync_interval_secs: u32,
    /// When the periodic loop next enqueues a run (if active and mapped); `null` until the first
    /// Sync Now, which starts the schedule.
    pub next_sync_at: Option<DateTime<Utc>>,
    /// When the last successful full run started.
    pub last_full_sync_at: Option<DateTime<Utc>>,
}

/// An integration, without any secret.
#[derive(Clone, Debug, Serialize)]
pub struct IntegrationView {
    /// Its id.
    pub id: IntegrationId,
    /// The owning PledgeBox account.
    pub account_id: AccountId,
    /// Its name.
    pub name: String,
    /// `active`, `needs_reauth` or `disabled`.
    pub status: IntegrationStatus,
    /// Why it is not active, for the creator.
    pub status_reason: Option<String>,
    /// The Zoho org it reads.
    pub zoho_org: ZohoOrgView,
    /// The Zoho data centre.
    pub data_center: DataCenter,
    /// The Self Client's id (not a secret; shown so the creator can tell clients apart).
    pub client_id: String,
    /// The scopes Zoho granted.
    pub scopes: Vec<String>,
    /// The audience it feeds; `null` until Map Audience.
    pub audience_id: Option<AudienceId>,
    /// The CRM modules synced.
    pub modules: Vec<Module>,
    /// Intervals and the next scheduled run.
    pub schedule: ScheduleView,
    /// The newest run, if any.
    pub last_run: Option<RunView>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl IntegrationView {
    pub fn new(i: Integration, last_run: Option<Run>) -> Self {
        Self {
            id: i.id,
            account_id: i.account_id,
            name: i.name,
            status: i.status,
            status_reason: i.status_reason,
            zoho_org: ZohoOrgView {
                id: i.zoho_org_id,
                name: i.zoho_org_name,
                time_zone: i.zoho_time_zone,
            },
            data_center: i.data_center,
            client_id: i.client_id,
            scopes: i.scopes,
            audience_id: i.audience_id,
            modules: i.schedule.modules,
            schedule: ScheduleView {
                interval_secs: i.schedule.sync_interval_secs,
                full_sync_interval_secs: i.schedule.full_sync_interval_secs,
                next_sync_at: i.next_sync_at,
                last_full_sync_at: i.last_full_sync_at,
            },
            last_run: last_run.map(RunView::from),
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }
}

/// A run's progress counters.
#[derive(Clone, Debug, Serialize)]
pub struct CountersView {
    /// Records read from Zoho.
    pub fetched: u64,
    /// Records written to the audience.
    pub applied: u64,
    /// Records not written, all reasons together.
    pub skipped: u64,
    /// Records not written, by reason.
    pub skipped_by_reason: BTreeMap<String, u64>,
    /// Members removed.
    pub deleted: u64,
    /// Batches published by the fetcher.
    pub batches_published: u64,
    /// Batches applied by the sinks.
    pub batches_applied: u64,
    /// All batches of the run, once the fetcher published the last.
    pub batches_total: Option<u64>,
}

/// A run.
#[derive(Clone, Debug, Serialize)]
pub struct RunView {
    /// Its id.
    pub id: RunId,
    /// The integration it syncs.
    pub integration_id: IntegrationId,
    /// The audience it writes to.
    pub audience_id: AudienceId,
    /// `full` or `incremental`.
    pub mode: SyncMode,
    /// `manual` (Sync Now) or `schedule`.
    pub trigger: Trigger,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: RunStatus,
    /// Why it failed or was cancelled, for the creator.
    pub error: Option<String>,
    /// Progress counters.
    pub counters: CountersView,
    /// Zoho's record count for the run's modules, when known.
    pub total_estimate: Option<u64>,
    /// 0.0 to 1.0 for a progress bar; `null` while nothing is known to measure against.
    pub progress: Option<f64>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When a fetcher picked it up.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// How far a run is: finished runs are 1.0; otherwise records processed against Zoho's count,
/// or batches applied against the total once it is known. Kept below 1.0 until the run ends,
/// because the estimate is only an estimate.
pub fn progress(run: &Run) -> Option<f64> {
    if run.status == RunStatus::Succeeded {
        return Some(1.0);
    }
    let c = &run.counters;
    let fraction = match (c.batches_total, c.total_estimate) {
        (Some(total), _) if total > 0 => c.batches_applied as f64 / total as f64,
        (_, Some(estimate)) if estimate > 0 => (c.applied + c.skipped) as f64 / estimate as f64,
        _ => return None,
    };
    Some(fraction.clamp(0.0, 0.99))
}

impl From<Run> for RunView {
    fn from(run: Run) -> Self {
        let progress = progress(&run);
        let c = run.counters;
        Self {
            id: run.id,
            integration_id: run.integration_id,
            audience_id: run.audience_id,
            mode: run.mode,
            trigger: run.trigger,
            status: run.status,
            error: run.error,
            total_estimate: c.total_estimate,
            counters: CountersView {
                fetched: c.fetched,
                applied: c.applied,
                skipped: c.skipped,
                skipped_by_reason: c.skipped_by_reason,
                deleted: c.deleted,
                batches_published: c.batches_published,
                batches_applied: c.batches_applied,
                batches_total: c.batches_total,
            },
            progress,
            created_at: run.created_at,
            started_at: run.started_at,
            finished_at: run.finished_at,
        }
    }
}
