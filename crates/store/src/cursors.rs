//! Per-module incremental cursors: where the next incremental run starts reading modified and
//! deleted records.
//!
//! A fetcher never moves a cursor itself: it stages the position its run reached
//! ([`Store::stage_cursor`]), and the statement that marks the run succeeded promotes it — so a
//! failed or cancelled run never advances a cursor, and a cursor never moves backwards.

use chrono::{DateTime, Utc};
use pledgesync_core::{IntegrationId, Module, RunId};
use sqlx::Row;

use crate::codec::parse_module;
use crate::db::Store;
use crate::error::StoreError;

/// A position in Zoho's change history for one module.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CursorPosition {
    /// Records modified at or after this instant are read (`If-Modified-Since`); `None` reads all.
    pub modified_since: Option<DateTime<Utc>>,
    /// Records deleted at or after this instant are read from the deleted-records API.
    pub deleted_since: Option<DateTime<Utc>>,
}

/// A module's cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The module.
    pub module: Module,
    /// Where it stands.
    pub position: CursorPosition,
    /// When it last moved.
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// The cursor of one module; the default (read everything) when no run has succeeded yet.
    pub async fn get_cursor(
        &self,
        integration: IntegrationId,
        module: Module,
    ) -> Result<CursorPosition, StoreError> {
        let row = sqlx::query(
            "SELECT modified_since, deleted_since FROM sync_cursors WHERE integration_id = $1 AND module = $2",
        )
        .bind(integration.0)
        .bind(module.api_name())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(CursorPosition::default()),
            Some(row) => Ok(CursorPosition {
                modified_since: row.try_get("modified_since")?,
                deleted_since: row.try_get("deleted_since")?,
            }),
        }
    }

    /// Every cursor of the integration.
    pub async fn list_cursors(
        &self,
        integration: IntegrationId,
    ) -> Result<Vec<Cursor>, StoreError> {
        let rows = sqlx::query(
            "SELECT module, modified_since, deleted_since, updated_at FROM sync_cursors \
             WHERE integration_id = $1 ORDER BY module",
        )
        .bind(integration.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let module: String = row.try_get("module")?;
                Ok(Cursor {
                    module: parse_module(&module)?,
                    position: CursorPosition {
                        modified_since: row.try_get("modified_since")?,
                        deleted_since: row.try_get("deleted_since")?,
                    },
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Stages the position a run reached in a module; promoted into the module's cursor when
    /// (and only if) the run succeeds. Staging again keeps the later of the two positions.
    pub async fn stage_cursor(
        &self,
        run: RunId,
        module: Module,
        position: CursorPosition,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO run_cursors (run_id, module, modified_since, deleted_since) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (run_id, module) DO UPDATE SET \
               modified_since = GREATEST(run_cursors.modified_since, EXCLUDED.modified_since), \
               deleted_since = GREATEST(run_cursors.deleted_since, EXCLUDED.deleted_since)",
        )
        .bind(run.0)
        .bind(module.api_name())
        .bind(position.modified_since)
        .bind(position.deleted_since)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Moves a module's cursor forward (never back), outside of run completion: for operators
    /// and tools. Runs advance cursors through [`Store::stage_cursor`].
    pub async fn advance_cursor(
        &self,
        integration: IntegrationId,
        module: Module,
        position: CursorPosition,
    ) -> Result<CursorPosition, StoreError> {
        let row = sqlx::query(
            "INSERT INTO sync_cursors (integration_id, module, modified_since, deleted_since) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (integration_id, module) DO UPDATE SET \
               modified_since = GREATEST(sync_cursors.modified_since, EXCLUDED.modified_since), \
               deleted_since = GREATEST(sync_cursors.deleted_since, EXCLUDED.deleted_since), \
               updated_at = now() \
             RETURNING modified_since, deleted_since",
        )
        .bind(integration.0)
        .bind(module.api_name())
        .bind(position.modified_since)
        .bind(position.deleted_since)
        .fetch_one(&self.pool)
        .await?;
        Ok(CursorPosition {
            modified_since: row.try_get("modified_since")?,
            deleted_since: row.try_get("deleted_since")?,
        })
    }
}
