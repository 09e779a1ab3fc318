//! Sync Now and runs: start a run (or get the one already going), list, read, cancel.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use pledgesync_broker::WorkQueue;
use pledgesync_core::messages::{Message, SyncJob, SyncMode, Trigger};
use pledgesync_core::telemetry::RunEnd;
use pledgesync_core::{IntegrationId, RunId};
use pledgesync_store::{EnqueueOutcome, IntegrationStatus, NewRun, OutboxMessage, StoreError};
use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::extract::{ApiQuery, IdPath, OptionalJson};
use crate::api::views::RunView;
use crate::state::AppState;

/// `POST /v1/integrations/{id}/syncs`; the body may be left out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartSync {
    #[serde(default)]
    mode: Option<SyncMode>,
}

/// `?limit=&before=` of the runs list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    before: Option<RunId>,
}

/// A page of runs, newest first.
#[derive(Serialize)]
pub struct RunList {
    runs: Vec<RunView>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    next_before: Option<RunId>,
}

/// The first job of a run as an outbox row: JSON body, `traceparent` of the current span, so
/// the trace that started with the HTTP request continues through the relay to the fetcher.
pub fn job_message(run: &NewRun) -> OutboxMessage {
    let job = SyncJob::new(run.run_id, run.integration_id, run.mode, run.trigger);
    let mut carrier: HashMap<String, String> = HashMap::new();
    let context = pledgesync_broker::headers::current_context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut carrier)
    });
    OutboxMessage {
        // The routing key, not the queue name: the row must not depend on the topology prefix.
        queue: WorkQueue::Jobs.as_str().to_owned(),
        payload: job.encode(),
        headers: carrier.into_iter().collect::<BTreeMap<_, _>>(),
    }
}

fn not_runnable(status: IntegrationStatus, reason: Option<&str>) -> Option<ApiError> {
    match status {
        IntegrationStatus::Active => None,
        IntegrationStatus::NeedsReauth => Some(ApiError::conflict(
            "needs_reauth",
            format!(
                "Zoho no longer accepts this integration's credentials ({}): reconnect it with a new grant code \
                 (PUT /v1/integrations/{{id}}/credentials), then press Sync Now again",
                reason.unwrap_or("the refresh token was rejected")
            ),
        )),
        IntegrationStatus::Disabled => Some(ApiError::conflict(
            "integration_disabled",
            "the integration is disabled: enable it (POST /v1/integrations/{id}/enable), then press Sync Now again",
        )),
    }
}

/// Sync Now. Its span (`api.sync_now`, under the request's) names the integration and the run, and
/// its context is what the run's first job carries to the fetcher.
#[tracing::instrument(name = "api.sync_now", skip_all, fields(integration_id = %id, run_id = tracing::field::Empty))]
pub async fn start(
    State(state): State<AppState>,
    IdPath(id): IdPath<IntegrationId>,
    OptionalJson(body): OptionalJson<StartSync>,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    let body = body.unwrap_or_default();
    let integration = state.live_integration(id).await?;
    // One active run per integration wins over every other answer: pressing Sync Now twice
    // shows the run already going.
    if let Some(run) = state.store.active_run(id).await? {
        tracing::Span::current().record("run_id", tracing::field::display(run.id));
        metrics::counter!("pledgesync_api_sync_now_total", "outcome" => "already_active")
            .increment(1);
        return Ok((StatusCode::OK, Json(run.into())));
    }
    if let Some(error) = not_runnable(integration.status, integration.status_reason.as_deref()) {
        metrics::counter!("pledgesync_api_sync_now_total", "outcome" => error.code).increment(1);
        return Err(error);
    }
    if integration.audience_id.is_none() {
        metrics::counter!("pledgesync_api_sync_now_total", "outcome" => "audience_not_mapped")
            .increment(1);
        return Err(ApiError::conflict(
            "audience_not_mapped",
            "the integration has no audience yet: map one (PUT /v1/integrations/{id}/audience), then press Sync Now again",
        ));
    }
    // Full on the first sync (and when the weekly full sync is due), incremental after.
    let mode = body
        .mode
        .unwrap_or_else(|| integration.due_mode(chrono::Utc::now()));
    let outcome = state
        .store
        .enqueue_run(id, mode, Trigger::Manual, job_message)
        .await
        .map_err(|error| match error {
            StoreError::Rejected(message) => ApiError::conflict("not_runnable", message),
            other => other.into(),
        })?;
    match outcome {
        EnqueueOutcome::Enqueued(run) => {
            tracing::Span::current().record("run_id", tracing::field::display(run.id));
            state.relay_wake.notify_one();
            metrics::counter!("pledgesync_api_sync_now_total", "outcome" => "enqueued")
                .increment(1);
            metrics::counter!("pledgesync_scheduler_runs_enqueued_total", "trigger" => "manual")
                .increment(1);
            tracing::info!(integration_id = %id, run_id = %run.id, mode = ?run.mode, "Sync Now enqueued a run");
            Ok((StatusCode::ACCEPTED, Json((*run).into())))
        }
        EnqueueOutcome::AlreadyActive(run) => {
            metrics::counter!("pledgesync_api_sync_now_total", "outcome" => "already_active")
                .increment(1);
            Ok((StatusCode::OK, Json((*run).into())))
        }
    }
}

pub async fn list(
    State(state): State<AppState>,
    IdPath(id): IdPath<IntegrationId>,
    ApiQuery(query): ApiQuery<RunsQuery>,
) -> Result<Json<RunList>, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(
            ApiError::bad_request("invalid_query", "limit must be between 1 and 100")
                .with_field("limit"),
        );
    }
    state.store.get_integration(id).await?;
    let runs = state.store.list_runs(id, limit, query.before).await?;
    let next_before = (runs.len() == limit as usize)
        .then(|| runs.last().map(|r| r.id))
        .flatten();
    Ok(Json(RunList {
        runs: runs.into_iter().map(RunView::from).collect(),
        next_before,
    }))
}

pub async fn get(
    State(state): State<AppState>,
    IdPath(id): IdPath<RunId>,
) -> Result<Json<RunView>, ApiError> {
    Ok(Json(state.store.get_run(id).await?.into()))
}

/// Enqueue to final status, when the run has both.
pub fn run_duration(run: &pledgesync_store::Run) -> Option<std::time::Duration> {
    (run.finished_at? - run.created_at).to_std().ok()
}

pub async fn cancel(
    State(state): State<AppState>,
    IdPath(id): IdPath<RunId>,
) -> Result<Json<RunView>, ApiError> {
    let cancelled = state
        .store
        .cancel_run(id, "cancelled by the creator")
        .await?;
    let run = state.store.get_run(id).await?;
    if !cancelled {
        return Err(ApiError::conflict(
            "run_finished",
            format!(
                "run {id} already ended ({}); only a queued or running run can be cancelled",
                run.status
            ),
        ));
    }
    pledgesync_core::telemetry::record_run_end(RunEnd::Cancelled, run_duration(&run));
    tracing::info!(run_id = %id, "run cancelled");
    Ok(Json(run.into()))
}
