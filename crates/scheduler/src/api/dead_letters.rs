//! Dead letters: list what could never be processed, and send it back to work once fixed.

use axum::extract::State;
use axum::Json;
use pledgesync_broker::{BrokerError, DeadLetter, PublishError, WorkQueue};
use pledgesync_core::RunId;
use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

/// Letters listed when `limit` is not given, and the most one listing returns.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// `jobs` or `batches`, as the API and the CLI spell them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueName {
    Jobs,
    Batches,
}

impl From<QueueName> for WorkQueue {
    fn from(q: QueueName) -> Self {
        match q {
            QueueName::Jobs => WorkQueue::Jobs,
            QueueName::Batches => WorkQueue::Batches,
        }
    }
}

/// `?queue=&limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    queue: Option<QueueName>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `POST /v1/dead-letters/redrive`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    #[serde(default)]
    queue: Option<QueueName>,
    #[serde(default)]
    run_id: Option<RunId>,
}

/// Letters of one queue.
#[derive(Serialize)]
pub struct QueueLetters {
    queue: QueueName,
    dead_letters: Vec<DeadLetter>,
}

/// The listing.
#[derive(Serialize)]
pub struct DeadLetterList {
    queues: Vec<QueueLetters>,
}

/// How many letters went back to work, per queue.
#[derive(Serialize)]
pub struct Redriven {
    queue: QueueName,
    redriven: usize,
}

/// The redrive answer.
#[derive(Serialize)]
pub struct RedriveResult {
    results: Vec<Redriven>,
}

fn queues(only: Option<QueueName>) -> Vec<QueueName> {
    only.map_or_else(|| vec![QueueName::Jobs, QueueName::Batches], |q| vec![q])
}

fn broker_error(error: &BrokerError) -> ApiError {
    if error.is_retryable() {
        ApiError::unavailable(format!("RabbitMQ is unavailable: {error}"))
    } else {
        ApiError::internal(error)
    }
}

fn publish_error(error: &PublishError) -> ApiError {
    if error.is_retryable() {
        ApiError::unavailable(format!("RabbitMQ is unavailable: {error}"))
    } else {
        ApiError::internal(error)
    }
}

pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        )
        .with_field("limit"));
    }
    let broker = state.broker.get().await.map_err(|e| broker_error(&e))?;
    let mut listed = Vec::new();
    for queue in queues(query.queue) {
        let dead_letters = broker
            .dead_letters(queue.into(), limit)
            .await
            .map_err(|e| broker_error(&e))?;
        listed.push(QueueLetters {
            queue,
            dead_letters,
        });
    }
    Ok(Json(DeadLetterList { queues: listed }))
}

pub async fn redrive(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RedriveRequest>,
) -> Result<Json<RedriveResult>, ApiError> {
    let broker = state.broker.get().await.map_err(|e| broker_error(&e))?;
    let mut results = Vec::new();
    for queue in queues(body.queue) {
        let redriven = broker
            .redrive(queue.into(), body.run_id)
            .await
            .map_err(|e| publish_error(&e))?;
        tracing::info!(queue = ?queue, run_id = ?body.run_id, redriven, "dead letters redriven through the API");
        results.push(Redriven { queue, redriven });
    }
    Ok(Json(RedriveResult { results }))
}
