//! The OTLP receivers: gRPC ([`grpc`]) and HTTP with protobuf or JSON ([`http`]). Both decode
//! into `opentelemetry-proto`'s types and hand requests to the [`Ingest`] pipeline.

pub mod decode;
pub mod grpc;
pub mod http;
pub mod json;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use crate::pipeline::{Accepted, Ingest, IngestError};
use crate::telemetry::{Protocol, Signal};

/// What differs between the three OTLP signals, for receivers of any protocol.
pub trait OtlpSignal: Send + Sync + 'static {
    /// The gRPC service name.
    const NAME: &'static str;
    /// The OTLP/HTTP path.
    const PATH: &'static str;
    const SIGNAL: Signal;
    type Request: prost::Message + Default + Send + Sync + 'static;
    type Response: prost::Message + Send + 'static;
    fn ingest(
        ingest: &Ingest,
        req: &Self::Request,
        protocol: Protocol,
    ) -> impl std::future::Future<Output = Result<Accepted, IngestError>> + Send;
    fn response(accepted: Accepted) -> Self::Response;
    fn decode_json(body: &[u8]) -> Result<Self::Request, json::JsonError>;
    fn encode_json(response: &Self::Response) -> Vec<u8>;
}

pub struct Metrics;
pub struct Logs;
pub struct Traces;

impl OtlpSignal for Metrics {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const PATH: &'static str = "/v1/metrics";
    const SIGNAL: Signal = Signal::Metrics;
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;
    async fn ingest(
        ingest: &Ingest,
        req: &Self::Request,
        protocol: Protocol,
    ) -> Result<Accepted, IngestError> {
        ingest.metrics(req, protocol).await
    }
    fn response(a: Accepted) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: (a.rejected > 0).then_some(ExportMetricsPartialSuccess {
                rejected_data_points: a.rejected,
                error_message: a.message,
            }),
        }
    }
    fn decode_json(body: &[u8]) -> Result<Self::Request, json::JsonError> {
        json::decode_metrics(body)
    }
    fn encode_json(response: &Self::Response) -> Vec<u8> {
        json::encode_metrics_response(response)
    }
}

impl OtlpSignal for Logs {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const PATH: &'static str = "/v1/logs";
    const SIGNAL: Signal = Signal::Logs;
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;
    async fn ingest(
        ingest: &Ingest,
        req: &Self::Request,
        protocol: Protocol,
    ) -> Result<Accepted, IngestError> {
        ingest.logs(req, protocol).await
    }
    fn response(a: Accepted) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: (a.rejected > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: a.rejected,
                error_message: a.message,
            }),
        }
    }
    fn decode_json(body: &[u8]) -> Result<Self::Request, json::JsonError> {
        json::decode_logs(body)
    }
    fn encode_json(response: &Self::Response) -> Vec<u8> {
        json::encode_logs_response(response)
    }
}

impl OtlpSignal for Traces {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const PATH: &'static str = "/v1/traces";
    const SIGNAL: Signal = Signal::Traces;
    type Request = ExportTraceServiceRequest;
    type Response = ExportTraceServiceResponse;
    async fn ingest(
        ingest: &Ingest,
        req: &Self::Request,
        protocol: Protocol,
    ) -> Result<Accepted, IngestError> {
        ingest.traces(req, protocol).await
    }
    fn response(a: Accepted) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: (a.rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: a.rejected,
                error_message: a.message,
            }),
        }
    }
    fn decode_json(body: &[u8]) -> Result<Self::Request, json::JsonError> {
        json::decode_traces(body)
    }
    fn encode_json(response: &Self::Response) -> Vec<u8> {
        json::encode_traces_response(response)
    }
}
