//! What a sink must know about a batch's run and integration before applying it, in one light
//! read.
//!
//! A sink asks this for every batch, so it must stay cheap however long the run: unlike
//! [`Store::get_run`], it reads no counters (those are sums over the run's whole ledger), only the
//! run row and its integration row, by primary key, without locking either.

use pledgesync_core::{AudienceId, IntegrationId, Module, RunId};
use sqlx::Row;

use crate::codec::{parse_modules, RunStatus};
use crate::db::Store;
use crate::error::StoreError;

/// A batch's run and integration as PostgreSQL has them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchTarget {
    /// The run.
    pub run_id: RunId,
    /// The integration the run belongs to (a batch naming another one is forged).
    pub integration_id: IntegrationId,
    /// The audience the run writes to, fixed when it was enqueued.
    pub run_audience_id: AudienceId,
    /// Where the run is in its life.
    pub run_status: RunStatus,
    /// The audience the integration is mapped to now; `None` when the creator unmapped it.
    pub integration_audience_id: Option<AudienceId>,
    /// Whether the integration was deleted.
    pub integration_deleted: bool,
    /// The CRM modules the integration syncs.
    pub modules: Vec<Module>,
}

impl Store {
    /// The run `run` and its integration, or `None` when the run does not exist.
    pub async fn batch_target(&self, run: RunId) -> Result<Option<BatchTarget>, StoreError> {
        let row = sqlx::query(
            "SELECT r.integration_id, r.audience_id AS run_audience_id, r.status, \
               i.audience_id AS integration_audience_id, i.deleted_at IS NOT NULL AS deleted, i.modules \
             FROM sync_runs r JOIN integrations i ON i.id = r.integration_id WHERE r.id = $1",
        )
        .bind(run.0)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let status: String = row.try_get("status")?;
        let modules: Vec<String> = row.try_get("modules")?;
        Ok(Some(BatchTarget {
            run_id: run,
            integration_id: IntegrationId(row.try_get("integration_id")?),
            run_audience_id: AudienceId(row.try_get("run_audience_id")?),
            run_status: status.parse()?,
            integration_audience_id: row
                .try_get::<Option<uuid::Uuid>, _>("integration_audience_id")?
                .map(AudienceId),
            integration_deleted: row.try_get("deleted")?,
            modules: parse_modules(&modules)?,
        }))
    }
}
