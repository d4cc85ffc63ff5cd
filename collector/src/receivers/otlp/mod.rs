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

/// Implements [`OtlpSignal`] for a signal from the parts that differ: its names, request and
/// response types, pipeline entry point, partial-success type and the field that counts what
/// was rejected, and its JSON codec.
macro_rules! otlp_signal {
    (
        $signal:ident {
            service: $name:literal,
            path: $path:literal,
            request: $request:ty,
            response: $response:ident,
            ingest: $ingest:ident,
            partial: $partial:ident { $rejected:ident },
            json: $decode:path, $encode:path $(,)?
        }
    ) => {
        pub struct $signal;

        impl OtlpSignal for $signal {
            const NAME: &'static str = $name;
            const PATH: &'static str = $path;
            const SIGNAL: Signal = Signal::$signal;
            type Request = $request;
            type Response = $response;
            async fn ingest(
                ingest: &Ingest,
                req: &Self::Request,
                protocol: Protocol,
            ) -> Result<Accepted, IngestError> {
                ingest.$ingest(req, protocol).await
            }
            fn response(a: Accepted) -> Self::Response {
                $response {
                    partial_success: (a.rejected > 0).then_some($partial {
                        $rejected: a.rejected,
                        error_message: a.message,
                    }),
                }
            }
            fn decode_json(body: &[u8]) -> Result<Self::Request, json::JsonError> {
                $decode(body)
            }
            fn encode_json(response: &Self::Response) -> Vec<u8> {
                $encode(response)
            }
        }
    };
}

otlp_signal!(Metrics {
    service: "opentelemetry.proto.collector.metrics.v1.MetricsService",
    path: "/v1/metrics",
    request: ExportMetricsServiceRequest,
    response: ExportMetricsServiceResponse,
    ingest: metrics,
    partial: ExportMetricsPartialSuccess { rejected_data_points },
    json: json::decode_metrics, json::encode_metrics_response,
});

otlp_signal!(Logs {
    service: "opentelemetry.proto.collector.logs.v1.LogsService",
    path: "/v1/logs",
    request: ExportLogsServiceRequest,
    response: ExportLogsServiceResponse,
    ingest: logs,
    partial: ExportLogsPartialSuccess { rejected_log_records },
    json: json::decode_logs, json::encode_logs_response,
});

otlp_signal!(Traces {
    service: "opentelemetry.proto.collector.trace.v1.TraceService",
    path: "/v1/traces",
    request: ExportTraceServiceRequest,
    response: ExportTraceServiceResponse,
    ingest: traces,
    partial: ExportTracePartialSuccess { rejected_spans },
    json: json::decode_traces, json::encode_traces_response,
});
