//! Helpers for Millwatch's end-to-end tests: OTLP exporters that keep a copy of what they send.
//!
//! Each recording exporter wraps an `opentelemetry-otlp` exporter. Before delegating it encodes
//! the batch with the same `opentelemetry-proto` transforms the OTLP exporter uses, so the test
//! suite learns the exact export requests (timestamps set by the SDK included) and whether each
//! was acknowledged, and can look every item up in the store.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use prost::Message;

/// One export call: the signal, the protobuf-encoded request, and whether the collector took it.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    pub signal: &'static str,
    pub request: Vec<u8>,
    pub ok: bool,
    pub error: Option<String>,
}

impl Export {
    /// One JSON line: `{"signal", "ok", "error", "request_hex"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "signal": self.signal,
            "ok": self.ok,
            "error": self.error,
            "request_hex": hex::encode(&self.request),
        })
    }
}

/// Where the recording exporters put what they sent; shared by all three signals.
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Export>>>);

impl Recorder {
    fn record(&self, signal: &'static str, request: Vec<u8>, result: &OTelSdkResult) {
        let export = Export {
            signal,
            request,
            ok: result.is_ok(),
            error: result.as_ref().err().map(|e| e.to_string()),
        };
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(export);
    }

    pub fn exports(&self) -> Vec<Export> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

pub struct RecordingLogExporter<E> {
    inner: E,
    resource: ResourceAttributesWithSchema,
    recorder: Recorder,
}

impl<E> RecordingLogExporter<E> {
    pub fn new(inner: E, recorder: Recorder) -> Self {
        RecordingLogExporter {
            inner,
            resource: ResourceAttributesWithSchema::default(),
            recorder,
        }
    }
}

impl<E> fmt::Debug for RecordingLogExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecordingLogExporter")
    }
}

impl<E: LogExporter> LogExporter for RecordingLogExporter<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let request = ExportLogsServiceRequest {
            resource_logs: group_logs_by_resource_and_scope(&batch, &self.resource),
        };
        let result = self.inner.export(batch).await;
        self.recorder
            .record("logs", request.encode_to_vec(), &result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.into();
        self.inner.set_resource(resource);
    }
}

pub struct RecordingSpanExporter<E> {
    inner: E,
    resource: ResourceAttributesWithSchema,
    recorder: Recorder,
}

impl<E> RecordingSpanExporter<E> {
    pub fn new(inner: E, recorder: Recorder) -> Self {
        RecordingSpanExporter {
            inner,
            resource: ResourceAttributesWithSchema::default(),
            recorder,
        }
    }
}

impl<E> fmt::Debug for RecordingSpanExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecordingSpanExporter")
    }
}

impl<E: SpanExporter> SpanExporter for RecordingSpanExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let request = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch.clone(), &self.resource),
        };
        let result = self.inner.export(batch).await;
        self.recorder
            .record("traces", request.encode_to_vec(), &result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.into();
        self.inner.set_resource(resource);
    }
}

pub struct RecordingMetricExporter<E> {
    inner: E,
    recorder: Recorder,
}

impl<E> RecordingMetricExporter<E> {
    pub fn new(inner: E, recorder: Recorder) -> Self {
        RecordingMetricExporter { inner, recorder }
    }
}

impl<E: PushMetricExporter> PushMetricExporter for RecordingMetricExporter<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let request = ExportMetricsServiceRequest::from(metrics);
        let result = self.inner.export(metrics).await;
        self.recorder
            .record("metrics", request.encode_to_vec(), &result);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_hex_is_lowercase_and_padded() {
        let export = |request: Vec<u8>| Export {
            signal: "logs",
            request,
            ok: true,
            error: None,
        };
        assert_eq!(
            export(vec![0x00, 0x0f, 0xa0, 0xff]).to_json()["request_hex"],
            "000fa0ff"
        );
        assert_eq!(export(Vec::new()).to_json()["request_hex"], "");
    }

    #[test]
    fn a_failed_export_is_recorded_as_failed() {
        let recorder = Recorder::default();
        recorder.record("logs", vec![1, 2], &Ok(()));
        recorder.record(
            "logs",
            vec![3],
            &Err(opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown),
        );
        let exports = recorder.exports();
        assert_eq!(exports.len(), 2);
        assert!(exports[0].ok);
        assert!(!exports[1].ok);
        assert_eq!(exports[1].to_json()["request_hex"], "03");
        assert!(exports[1].error.is_some());
    }
}
