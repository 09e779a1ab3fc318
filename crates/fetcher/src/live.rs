//! [`Ports`] over the real services: the store (PostgreSQL), the broker (RabbitMQ), the Zoho
//! client (with the Redis token store) and the scheduler's keyring for the secrets at rest.
//!
//! This is the only place that converts their errors into [`FetchError`], keeping each one's own
//! retryable/permanent classification.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use pledgesync_broker::{Broker, PublishError, PublishOptions, WorkQueue};
use pledgesync_core::crypto::{Keyring, SecretColumn, SecretSlot};
use pledgesync_core::messages::{RecordBatch, SyncJob};
use pledgesync_core::telemetry::RunEnd;
use pledgesync_core::{IntegrationId, Module, RunId, ZohoRecordId};
use pledgesync_store::cursors::CursorPosition;
use pledgesync_store::{IntegrationStatus, RunStatus, Store, StoreError};
use pledgesync_zoho::{
    ClientId, ClientSecret, Credentials, Crm, CrmClient, CrmError, PagePosition, RefreshToken,
    TokenError,
};
use secrecy::ExposeSecret;

use crate::checkpoint::{Checkpoint, Cursor};
use crate::error::FetchError;
use crate::ports::{
    Commit, IntegrationView, Outstanding, PageOut, PageStream, Ports, RunPhase, RunView,
    UnseenSource, Usability,
};

/// Unseen sources read per query while collecting a module's deletion candidates.
const UNSEEN_CHUNK: u32 = 5_000;

/// The fetcher's connections.
#[derive(Clone)]
pub struct Live {
    /// PostgreSQL.
    pub store: Store,
    /// RabbitMQ.
    pub broker: Broker,
    /// Zoho, with the shared token store.
    pub crm: CrmClient,
    /// Decrypts client secrets and refresh tokens.
    pub keyring: Keyring,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

fn store_error(error: StoreError) -> FetchError {
    FetchError::store(error.to_string(), error.is_retryable())
}

fn publish_error(error: PublishError) -> FetchError {
    FetchError::broker(error.to_string(), error.is_retryable())
}

/// Keeps the Zoho client's classification; a rejected refresh token gets the creator's message.
pub fn crm_error(error: CrmError) -> FetchError {
    match error {
        CrmError::Token(TokenError::NeedsReauth { reason }) => FetchError::NeedsReauth {
            detail: reason.to_string(),
        },
        other => FetchError::Zoho {
            retryable: other.is_retryable(),
            reauth: other.needs_reauth(),
            message: other.to_string(),
        },
    }
}

fn phase(status: RunStatus) -> RunPhase {
    match status {
        RunStatus::Queued => RunPhase::Queued,
        RunStatus::Running => RunPhase::Running,
        RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled => RunPhase::Ended,
    }
}

fn position(value: Option<serde_json::Value>) -> Result<Option<PagePosition>, FetchError> {
    value
        .map(|v| {
            serde_json::from_value(v)
                .map_err(|e| FetchError::Checkpoint(format!("page position: {e}")))
        })
        .transpose()
}

fn pages_of(stream: pledgesync_zoho::PageStream) -> PageStream {
    stream
        .map(|page| {
            page.map(|page| PageOut {
                records: page.records,
                next: page
                    .next
                    .map(|next| serde_json::to_value(next).unwrap_or(serde_json::Value::Null)),
            })
            .map_err(crm_error)
        })
        .boxed()
}

fn failed_stream(error: FetchError) -> PageStream {
    futures::stream::iter([Err(error)]).boxed()
}

impl Live {
    fn decrypt(
        &self,
        id: IntegrationId,
        key_id: &str,
        bytes: &[u8],
        column: SecretColumn,
    ) -> Result<String, FetchError> {
        self.keyring
            .open(key_id, bytes, SecretSlot::new(id, column))
            .map(|secret| secret.expose_secret().to_owned())
            .map_err(|e| FetchError::Secrets(e.to_string()))
    }

    /// A finished run's time from enqueue to its final status, for the run-duration histogram;
    /// `None` when it cannot be read (the count is recorded regardless).
    async fn run_age(&self, run: RunId) -> Option<Duration> {
        let view = self.store.get_run(run).await.ok()?;
        (view.finished_at? - view.created_at).to_std().ok()
    }
}

impl Ports for Live {
    type Access = Crm;

    async fn load_run(&self, run: RunId) -> Result<Option<RunView>, FetchError> {
        match self.store.get_run(run).await {
            Ok(row) => Ok(Some(RunView {
                id: row.id,
                integration_id: row.integration_id,
                mode: row.mode,
                phase: phase(row.status),
                checkpoint: row.checkpoint,
                created_at: row.created_at,
            })),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(error) => Err(store_error(error)),
        }
    }

    async fn load_integration(
        &self,
        id: IntegrationId,
    ) -> Result<Option<IntegrationView<Crm>>, FetchError> {
        let row = match self.store.integration_credentials(id).await {
            Ok(row) => row,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(store_error(error)),
        };
        let usability = match row.status {
            _ if row.deleted => Usability::Disabled,
            IntegrationStatus::Active => Usability::Active,
            IntegrationStatus::NeedsReauth => Usability::NeedsReauth,
            IntegrationStatus::Disabled => Usability::Disabled,
        };
        let c = &row.credentials;
        let client_secret = self.decrypt(
            id,
            &c.encryption_key_id,
            &c.client_secret.0,
            SecretColumn::ClientSecret,
        )?;
        let refresh_token = self.decrypt(
            id,
            &c.encryption_key_id,
            &c.refresh_token.0,
            SecretColumn::RefreshToken,
        )?;
        let credentials = Credentials {
            integration_id: id,
            client_id: ClientId::new(c.client_id.clone()),
            client_secret: ClientSecret::new(client_secret),
            refresh_token: RefreshToken::new(refresh_token),
            data_center: c.data_center,
            api_domain: url::Url::parse(&c.api_domain).ok(),
        };
        let crm = self.crm.session(credentials).with_org_id(&row.zoho_org_id);
        Ok(Some(IntegrationView {
            id,
            usability,
            modules: row.modules,
            access: crm,
        }))
    }

    async fn mark_running(
        &self,
        run: RunId,
        integration: IntegrationId,
    ) -> Result<bool, FetchError> {
        match self
            .store
            .start_run(run, integration)
            .await
            .map_err(store_error)?
        {
            pledgesync_store::runs::RunStart::Proceed(_) => Ok(true),
            pledgesync_store::runs::RunStart::Skip(_) => Ok(false),
        }
    }

    async fn set_total_estimate(&self, run: RunId, total: u64) -> Result<(), FetchError> {
        self.store
            .set_total_estimate(run, total)
            .await
            .map_err(store_error)
    }

    async fn cursors(
        &self,
        integration: IntegrationId,
    ) -> Result<HashMap<Module, Cursor>, FetchError> {
        let cursors = self
            .store
            .list_cursors(integration)
            .await
            .map_err(store_error)?;
        Ok(cursors
            .into_iter()
            .map(|c| {
                (
                    c.module,
                    Cursor {
                        modified_since: c.position.modified_since,
                        deleted_since: c.position.deleted_since,
                    },
                )
            })
            .collect())
    }

    async fn commit(
        &self,
        run: RunId,
        expected_published: u64,
        checkpoint: &Checkpoint,
    ) -> Result<Commit, FetchError> {
        let saved = self
            .store
            .save_checkpoint_if(
                run,
                expected_published,
                &checkpoint.to_json(),
                checkpoint.next_seq,
                checkpoint.fetched,
            )
            .await
            .map_err(store_error)?;
        Ok(if saved { Commit::Saved } else { Commit::Lost })
    }

    async fn outstanding(&self, run: RunId) -> Result<Outstanding, FetchError> {
        let progress = self.store.fetch_progress(run).await.map_err(store_error)?;
        Ok(Outstanding {
            published: progress.batches_published,
            applied: progress.batches_applied,
            running: progress.status == RunStatus::Running,
        })
    }

    async fn heartbeat(&self, run: RunId) -> Result<(), FetchError> {
        // A run that stopped meanwhile is noticed by the next look at `outstanding`.
        self.store
            .heartbeat_run(run)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn unseen_sources(
        &self,
        integration: IntegrationId,
        run: RunId,
        module: Module,
    ) -> Result<Vec<UnseenSource>, FetchError> {
        let mut all = Vec::new();
        let mut after: Option<ZohoRecordId> = None;
        loop {
            let chunk = self
                .store
                .unseen_sources_with_versions(
                    integration,
                    run,
                    module,
                    after.as_ref(),
                    UNSEEN_CHUNK,
                )
                .await
                .map_err(store_error)?;
            let full = chunk.len() as u32 >= UNSEEN_CHUNK;
            after = chunk.last().map(|(id, _)| id.clone());
            all.extend(chunk.into_iter().map(|(id, modified_at)| UnseenSource {
                zoho_id: id.as_str().to_owned(),
                modified_at,
            }));
            if !full {
                return Ok(all);
            }
        }
    }

    async fn stage_cursors(
        &self,
        run: RunId,
        modules: &[Module],
        at: DateTime<Utc>,
    ) -> Result<(), FetchError> {
        for module in modules {
            let position = CursorPosition {
                modified_since: Some(at),
                deleted_since: Some(at),
            };
            self.store
                .stage_cursor(run, *module, position)
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }

    async fn finish(&self, run: RunId, batches_total: u64) -> Result<(), FetchError> {
        // Whoever completes a run counts it. With every batch already applied, no sink can
        // complete it any more (its check saw no total), so a run succeeded below was completed
        // by this call; with batches in flight, the sink that applies the last one counts it.
        let settled_before = matches!(self.store.outstanding_batches(run).await, Ok(0));
        let status = self
            .store
            .set_batches_total(run, batches_total)
            .await
            .map_err(store_error)?;
        tracing::debug!(%run, %status, batches_total, "batch total recorded");
        if settled_before && status == RunStatus::Succeeded {
            let took = self.run_age(run).await;
            pledgesync_core::telemetry::record_run_end(RunEnd::Succeeded, took);
        }
        Ok(())
    }

    async fn fail(
        &self,
        run: RunId,
        _integration: IntegrationId,
        message: &str,
        needs_reauth: bool,
    ) -> Result<(), FetchError> {
        let reason = needs_reauth.then_some(message);
        let failed = self
            .store
            .fail_run(run, message, reason)
            .await
            .map_err(store_error)?;
        if failed {
            // The run's final status is known here and only here (the store changed the row):
            // count it once, with its age, which a lost read only leaves out.
            let took = self.run_age(run).await;
            pledgesync_core::telemetry::record_run_end(RunEnd::Failed, took);
        }
        Ok(())
    }

    async fn record_count(&self, access: &Crm, module: Module) -> Result<u64, FetchError> {
        access.count(module).await.map_err(crm_error)
    }

    fn pages(
        &self,
        access: &Crm,
        module: Module,
        fields: &'static [&'static str],
        since: Option<DateTime<Utc>>,
        from: Option<serde_json::Value>,
    ) -> PageStream {
        match position(from) {
            Ok(from) => pages_of(access.pages(module, fields, since, from)),
            Err(error) => failed_stream(error),
        }
    }

    fn deleted(
        &self,
        access: &Crm,
        module: Module,
        since: Option<DateTime<Utc>>,
        from: Option<serde_json::Value>,
    ) -> PageStream {
        match position(from) {
            Ok(from) => pages_of(access.deleted(module, since, from)),
            Err(error) => failed_stream(error),
        }
    }

    fn publish_batch(
        &self,
        batch: RecordBatch,
    ) -> impl Future<Output = Result<(), FetchError>> + Send + 'static {
        let broker = self.broker.clone();
        async move {
            let options = PublishOptions::new(format!("{}/{}", batch.run_id, batch.seq));
            broker
                .publish(WorkQueue::Batches, &batch, &options)
                .await
                .map_err(publish_error)
        }
    }

    async fn publish_job(&self, job: &SyncJob) -> Result<(), FetchError> {
        let options = PublishOptions::new(format!("{}/job/{}", job.run_id, job.slice));
        self.broker
            .publish(WorkQueue::Jobs, job, &options)
            .await
            .map_err(publish_error)
    }
}
