//! Per-request observability: a span that continues the caller's W3C trace (so one Sync Now is one
//! trace from the PledgeBox app to the sink), request counts by route and status, and latency.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::trace::FutureExt as _;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Middleware: the request's span and metrics.
pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    // The route template, not the raw path, keeps the metric's cardinality bounded.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let parent = incoming_context(&request);
    let span = tracing::info_span!(
        "http.request",
        http.method = %method,
        http.route = %route,
        http.status = tracing::field::Empty,
    );
    // A no-op unless an OpenTelemetry layer is installed; then the span joins the caller's trace.
    let _ = span.set_parent(parent.clone());
    // Without an OpenTelemetry layer, the attached context is what gets propagated onwards. It
    // must wrap the span, not sit inside it: entering the span makes the span's context current,
    // and a context attached inside would hide it and make every child span a root.
    let response = next
        .run(request)
        .instrument(span.clone())
        .with_context(parent)
        .await;
    let status = response.status().as_u16();
    span.record("http.status", status);
    metrics::counter!(
        "pledgesync_api_requests_total",
        "route" => route.clone(),
        "method" => method,
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!("pledgesync_api_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    if status >= 500 {
        tracing::warn!(status, "request answered with a server error");
    }
    response
}

/// The trace context of the request's `traceparent`/`tracestate` headers (empty if none).
fn incoming_context(request: &Request) -> opentelemetry::Context {
    let carrier: HashMap<String, String> = ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|name| {
            let value = request.headers().get(name)?.to_str().ok()?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect();
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&carrier))
}
