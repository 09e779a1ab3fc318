//! The trace context crosses RabbitMQ: a consumer's span continues the publisher's trace.
//!
//! Alone in its own test binary: it installs a thread-local `tracing` subscriber, and tests
//! running beside it in one process would race with it over the callsites' cached interest.

use opentelemetry::trace::{TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use pledgesync_broker::{run_consumer_with, DeliveryInfo, Outcome, PublishOptions, WorkQueue};
use pledgesync_core::messages::SyncJob;
use pledgesync_core::shutdown::Shutdown;
use tokio::sync::mpsc;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

#[path = "rabbitmq/common.rs"]
#[allow(dead_code)] // Shared with the main RabbitMQ test binary; this one uses a few helpers.
mod common;

use common::{cleanup, connect, fast_consumer, job, recv};

// A current-thread runtime keeps every task on this thread, under the thread's default
// subscriber installed below.
#[tokio::test(flavor = "current_thread")]
async fn the_consumer_span_continues_the_publishers_trace() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("broker-test")));
    let _default = tracing::subscriber::set_default(subscriber);

    let broker = connect("trace").await;
    let sync_now = tracing::info_span!("sync_now");
    let publisher = sync_now.context().span().span_context().clone();
    assert!(
        publisher.is_valid(),
        "the test subscriber records OpenTelemetry contexts"
    );
    broker
        .publish(WorkQueue::Jobs, &job(), &PublishOptions::new("traced"))
        .instrument(sync_now)
        .await
        .expect("confirmed");

    let (tx, mut rx) = mpsc::unbounded_channel();
    let shutdown = Shutdown::new();
    let consumer = tokio::spawn(run_consumer_with(
        broker.clone(),
        fast_consumer(WorkQueue::Jobs, 1),
        move |_: SyncJob, info: DeliveryInfo| {
            let tx = tx.clone();
            async move {
                let handler_trace = tracing::Span::current()
                    .context()
                    .span()
                    .span_context()
                    .trace_id();
                let _ = tx.send((info.traceparent, handler_trace));
                Outcome::Ack
            }
        },
        shutdown.clone(),
    ));
    let (traceparent, handler_trace): (Option<String>, TraceId) =
        recv(&mut rx, "the traced job").await;
    assert_eq!(
        traceparent.as_deref(),
        Some(format!("00-{}-{}-01", publisher.trace_id(), publisher.span_id()).as_str()),
        "the header names the publishing span"
    );
    assert_eq!(
        handler_trace,
        publisher.trace_id(),
        "the consumer span is in the publisher's trace"
    );

    shutdown.trigger();
    consumer.await.expect("join").expect("clean stop");
    cleanup(&broker).await;
}
