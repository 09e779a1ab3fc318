//! The probe server every binary runs: `/healthz`, `/readyz` and `/metrics`.
//!
//! `/healthz` says the process is alive (the event loop answers). `/readyz` runs the binary's own
//! readiness check (are PostgreSQL, RabbitMQ and Redis reachable?) and answers 503 with the reasons
//! when not, and sets `pledgesync_dependency_up{dependency}` to 1 or 0 for each check. `/metrics`
//! renders the process's Prometheus recorder.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::shutdown::Shutdown;
use crate::telemetry::metrics_handle;

/// The outcome of checking one dependency.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What was checked: `postgres`, `rabbitmq`, `redis`.
    pub name: &'static str,
    /// `None` when it answered; otherwise why not.
    pub error: Option<String>,
}

/// A readiness check: resolves to one [`Check`] per dependency.
pub type ReadinessCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Vec<Check>> + Send>> + Send + Sync>;

/// The probe routes, to serve alone ([`serve`]) or to merge into a larger router.
pub fn router(readiness: ReadinessCheck) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(readiness)
}

async fn readyz(State(readiness): State<ReadinessCheck>) -> impl IntoResponse {
    let checks = readiness().await;
    // The readiness answer doubles as a gauge, so a dashboard shows which dependency is away
    // without anyone calling /readyz by hand.
    for check in &checks {
        let up = if check.error.is_none() { 1.0 } else { 0.0 };
        metrics::gauge!("pledgesync_dependency_up", "dependency" => check.name).set(up);
    }
    let ready = checks.iter().all(|check| check.error.is_none());
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({ "ready": ready, "checks": checks })),
    )
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics_handle().render(),
    )
}

/// Serves the probes on `listen` until shutdown.
pub async fn serve(
    listen: SocketAddr,
    readiness: ReadinessCheck,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(address = %listener.local_addr()?, "probe server listening");
    axum::serve(listener, router(readiness))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
