//! Logs, traces and the metrics recorder, set up once per process.
//!
//! Logs are JSON (human-readable on a terminal); the level comes from `RUST_LOG` or the config.
//! Traces go to an OTLP/HTTP collector only when `telemetry.otlp_endpoint` is set. The W3C trace
//! context propagator is always installed so that `traceparent` headers join the three binaries
//! into one trace even when this process exports nothing.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::settings::{LogFormat, TelemetrySettings};

/// Telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("the OTLP exporter could not be built for {endpoint}: {message}; check telemetry.otlp_endpoint")]
    Exporter { endpoint: String, message: String },
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Flushes pending spans when dropped; keep it alive until `main` returns.
#[must_use = "dropping the guard flushes and stops the trace exporter"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(err) = provider.shutdown() {
                eprintln!("trace exporter did not shut down cleanly: {err}");
            }
        }
    }
}

/// Installs logging and, if configured, trace export for the binary `service_name`.
pub fn init(
    service_name: &'static str,
    settings: &TelemetrySettings,
) -> Result<TelemetryGuard, TelemetryError> {
    let provider = match &settings.otlp_endpoint {
        Some(endpoint) => Some(otlp_provider(service_name, endpoint.as_str())?),
        None => None,
    };
    install(service_name, settings, provider)
}

/// [`init`] with a tracer provider built by the caller instead of the OTLP exporter: tests that
/// run several components in one process give an in-memory exporter here and read the spans
/// back. The provider becomes the global one; the guard shuts it down when dropped.
pub fn init_with_provider(
    service_name: &'static str,
    settings: &TelemetrySettings,
    provider: SdkTracerProvider,
) -> Result<TelemetryGuard, TelemetryError> {
    install(service_name, settings, Some(provider))
}

fn install(
    service_name: &'static str,
    settings: &TelemetrySettings,
    provider: Option<SdkTracerProvider>,
) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match settings.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let fmt_layer = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed()
    };

    let otel_layer = provider.as_ref().map(|provider| {
        opentelemetry::global::set_tracer_provider(provider.clone());
        tracing_opentelemetry::layer().with_tracer(provider.tracer(service_name))
    });

    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(TelemetryGuard { provider })
}

fn otlp_provider(
    service_name: &'static str,
    endpoint: &str,
) -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::WithExportConfig;
    let traces_endpoint = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces_endpoint)
        .build()
        .map_err(|err| TelemetryError::Exporter {
            endpoint: endpoint.to_owned(),
            message: err.to_string(),
        })?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The process-wide Prometheus recorder; installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = prometheus_builder()
                .unwrap_or_else(|error| {
                    eprintln!(
                        "histogram buckets rejected ({error}); histograms render as summaries"
                    );
                    PrometheusBuilder::new()
                })
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests starting several components in one
            // process); then this handle renders an empty page instead of failing start-up.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Latencies of calls and handlers, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Durations of runs and jobs, in seconds: minutes to hours.
const RUN_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0,
];
/// Counts of batches in flight.
const COUNT_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// Histograms as Prometheus histograms (`_bucket` series the dashboards aggregate across pods),
/// not the exporter's default summaries, which cannot be aggregated.
fn prometheus_builder() -> Result<PrometheusBuilder, metrics_exporter_prometheus::BuildError> {
    use metrics_exporter_prometheus::Matcher;
    PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Suffix("run_duration_seconds".to_owned()),
            RUN_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Suffix("job_duration_seconds".to_owned()),
            RUN_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("pledgesync_fetcher_batches_outstanding".to_owned()),
            COUNT_BUCKETS,
        )
}

/// How a run ended, the `status` label of `pledgesync_runs_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// Every batch landed.
    Succeeded,
    /// Failed with a message for its creator.
    Failed,
    /// Cancelled by the creator or because its audience went away.
    Cancelled,
}

impl RunEnd {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RunEnd::Succeeded => "succeeded",
            RunEnd::Failed => "failed",
            RunEnd::Cancelled => "cancelled",
        }
    }
}

/// Counts a run that reached its final status (`pledgesync_runs_total{status}`) and, when known,
/// how long it took from enqueue to that status (`pledgesync_run_duration_seconds`). Call it only
/// where this process made the transition (the store said the row changed), so that a run is
/// counted once across all replicas.
pub fn record_run_end(end: RunEnd, took: Option<std::time::Duration>) {
    metrics::counter!("pledgesync_runs_total", "status" => end.as_str()).increment(1);
    if let Some(took) = took {
        metrics::histogram!("pledgesync_run_duration_seconds", "status" => end.as_str())
            .record(took.as_secs_f64());
    }
}
