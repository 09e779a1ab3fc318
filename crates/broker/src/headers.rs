//! Message headers: W3C trace context in and out, and reading the few headers we act on.
//!
//! The trace context travels as `traceparent`/`tracestate` string headers, written and read by
//! the process's global text-map propagator (W3C, installed by `pledgesync_core::telemetry`), so
//! that one Sync Now is one trace across the scheduler, the fetchers and the sinks.

use std::collections::BTreeMap;

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The quorum queue's count of earlier deliveries of a message.
pub const DELIVERY_COUNT: &str = "x-delivery-count";
/// Why a dead letter is dead (written by the consumer runner).
pub const ERROR: &str = "x-pledgesync-error";
/// The work queue a dead letter came from.
pub const SOURCE_QUEUE: &str = "x-pledgesync-source-queue";
/// When the consumer runner dead-lettered the message (RFC 3339).
pub const FAILED_AT: &str = "x-pledgesync-failed-at";
/// How many times a message was moved back from a dead-letter queue.
pub const REDRIVEN: &str = "x-pledgesync-redriven";
/// Which redrive pass last moved a message back to work, so that the pass can recognise a
/// message that died again while it runs.
pub const REDRIVE_PASS: &str = "x-pledgesync-redrive-pass";
/// The W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";

/// The OpenTelemetry context to propagate from here: the current `tracing` span's, or when this
/// process has no OpenTelemetry layer (no exporter configured), the context that the consumer
/// runner attached from the incoming message, so a trace is not broken by a process that
/// exports nothing.
pub fn current_context() -> Context {
    let span_cx = tracing::Span::current().context();
    if span_cx.span().span_context().is_valid() {
        span_cx
    } else {
        Context::current()
    }
}

/// Writes `traceparent` (and `tracestate`) for `cx` into `headers`.
pub fn inject_context(cx: &Context, headers: &mut FieldTable) {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(cx, &mut HeaderInjector(headers));
    });
}

/// Reads the trace context of an incoming message; an empty context when there is none.
pub fn extract_context(headers: Option<&FieldTable>) -> Context {
    let empty = FieldTable::default();
    let headers = headers.unwrap_or(&empty);
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    })
}

struct HeaderInjector<'a>(&'a mut FieldTable);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(
            ShortString::from(key),
            AMQPValue::LongString(LongString::from(value)),
        );
    }
}

struct HeaderExtractor<'a>(&'a FieldTable);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.inner().get(key).and_then(value_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.inner().keys().map(ShortString::as_str).collect()
    }
}

fn value_str(value: &AMQPValue) -> Option<&str> {
    match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// A string header, if present and UTF-8.
pub fn string(headers: Option<&FieldTable>, key: &str) -> Option<String> {
    headers?
        .inner()
        .get(key)
        .and_then(value_str)
        .map(str::to_owned)
}

/// An integer header of any AMQP integer width, if present and not negative.
pub fn unsigned(headers: Option<&FieldTable>, key: &str) -> Option<u64> {
    let value = headers?.inner().get(key)?;
    let number: i128 = match value {
        AMQPValue::ShortShortInt(v) => (*v).into(),
        AMQPValue::ShortShortUInt(v) => (*v).into(),
        AMQPValue::ShortInt(v) => (*v).into(),
        AMQPValue::ShortUInt(v) => (*v).into(),
        AMQPValue::LongInt(v) => (*v).into(),
        AMQPValue::LongUInt(v) => (*v).into(),
        AMQPValue::LongLongInt(v) => (*v).into(),
        AMQPValue::Timestamp(v) => (*v).into(),
        _ => return None,
    };
    u64::try_from(number).ok()
}

/// How many times the message was delivered before this delivery (0 on the first).
pub fn delivery_count(headers: Option<&FieldTable>) -> u32 {
    unsigned(headers, DELIVERY_COUNT)
        .map(|count| u32::try_from(count).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// `headers` without the keys for which `drop` says yes.
pub fn without(headers: Option<&FieldTable>, drop: impl Fn(&str) -> bool) -> FieldTable {
    let kept: BTreeMap<ShortString, AMQPValue> = headers
        .map(|h| {
            h.inner()
                .iter()
                .filter(|(key, _)| !drop(key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        })
        .unwrap_or_default();
    FieldTable::from(kept)
}

/// A header value as JSON, for listings a person reads. Byte strings that are not UTF-8 are
/// shown as arrays of numbers rather than dropped.
pub fn to_json(value: &AMQPValue) -> serde_json::Value {
    use serde_json::Value;
    match value {
        AMQPValue::Boolean(v) => Value::Bool(*v),
        AMQPValue::ShortShortInt(v) => (*v).into(),
        AMQPValue::ShortShortUInt(v) => (*v).into(),
        AMQPValue::ShortInt(v) => (*v).into(),
        AMQPValue::ShortUInt(v) => (*v).into(),
        AMQPValue::LongInt(v) => (*v).into(),
        AMQPValue::LongUInt(v) => (*v).into(),
        AMQPValue::LongLongInt(v) => (*v).into(),
        AMQPValue::Timestamp(v) => (*v).into(),
        AMQPValue::Float(v) => (*v).into(),
        AMQPValue::Double(v) => (*v).into(),
        AMQPValue::DecimalValue(v) => {
            let scaled = f64::from(v.value) / 10f64.powi(i32::from(v.scale));
            scaled.into()
        }
        AMQPValue::ShortString(v) => Value::String(v.as_str().to_owned()),
        AMQPValue::LongString(v) => match std::str::from_utf8(v.as_bytes()) {
            Ok(s) => Value::String(s.to_owned()),
            Err(_) => v.as_bytes().iter().copied().map(Value::from).collect(),
        },
        AMQPValue::ByteArray(v) => v.as_slice().iter().copied().map(Value::from).collect(),
        AMQPValue::FieldArray(v) => v.as_slice().iter().map(to_json).collect(),
        AMQPValue::FieldTable(v) => table_to_json(v).into(),
        AMQPValue::Void => Value::Null,
    }
}

/// A header table as a JSON object.
pub fn table_to_json(table: &FieldTable) -> serde_json::Map<String, serde_json::Value> {
    table
        .inner()
        .iter()
        .map(|(key, value)| (key.as_str().to_owned(), to_json(value)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_sdk::propagation::TraceContextPropagator;

    #[test]
    fn trace_context_round_trips_through_headers() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let span = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
            SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let cx = Context::new().with_remote_span_context(span.clone());
        let mut headers = FieldTable::default();
        inject_context(&cx, &mut headers);
        assert_eq!(
            string(Some(&headers), TRACEPARENT).as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        let back = extract_context(Some(&headers));
        assert_eq!(back.span().span_context().trace_id(), span.trace_id());
        assert_eq!(back.span().span_context().span_id(), span.span_id());
        assert!(!extract_context(None).span().span_context().is_valid());
    }

    #[test]
    fn delivery_counts_read_any_integer_width() {
        let mut headers = FieldTable::default();
        assert_eq!(delivery_count(Some(&headers)), 0);
        headers.insert(DELIVERY_COUNT.into(), AMQPValue::LongLongInt(3));
        assert_eq!(delivery_count(Some(&headers)), 3);
        headers.insert(DELIVERY_COUNT.into(), AMQPValue::LongInt(-1));
        assert_eq!(delivery_count(Some(&headers)), 0);
        headers.insert(DELIVERY_COUNT.into(), AMQPValue::ShortShortUInt(2));
        assert_eq!(delivery_count(Some(&headers)), 2);
        assert_eq!(delivery_count(None), 0);
    }

    #[test]
    fn without_drops_only_the_named_keys() {
        let mut headers = FieldTable::default();
        headers.insert(ERROR.into(), AMQPValue::LongString("boom".into()));
        headers.insert(TRACEPARENT.into(), AMQPValue::LongString("tp".into()));
        let kept = without(Some(&headers), |key| key.starts_with("x-pledgesync-"));
        assert!(!kept.contains_key(ERROR));
        assert!(kept.contains_key(TRACEPARENT));
        let json = table_to_json(&headers);
        assert_eq!(json.get(ERROR), Some(&serde_json::json!("boom")));
    }
}
