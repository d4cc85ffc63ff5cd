//! One export request on the wire, OTLP/HTTP (through the shared [`crate::http`] layer) or
//! OTLP/gRPC (tonic over rustls), and what its answer means: sent (perhaps with a
//! `partial_success`), retry later (only what the OTLP specification calls retryable, with the
//! server's `Retry-After` or `RetryInfo`), or rejected for good.

use std::io::Write as _;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use reqwest::header::{self, HeaderMap, HeaderValue};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_types::StatusExt;

use super::config::{Compression, OtlpExporterConfig, OtlpProtocol, RESERVED_HEADERS};
use crate::http::headers::{Reserved, header_map};
use crate::http::{Class, ClientError, ClientOptions, RetryRule, Sender};

/// One export request, several received requests of one signal merged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Request {
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
    Traces(ExportTraceServiceRequest),
}

/// What the receiver said.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    /// Accepted; `rejected` items were refused within it (`partial_success`), for `message`.
    Sent { rejected: i64, message: String },
    /// Try again after at least `retry_after`, if the server said.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Refused for good.
    Rejected { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("gRPC channel: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("{0}")]
    Setup(String),
}

#[derive(Debug, Clone)]
pub(crate) enum Transport {
    Http {
        sender: Sender,
        base: reqwest::Url,
        gzip: bool,
    },
    Grpc {
        channel: Channel,
        metadata: MetadataMap,
        gzip: bool,
        timeout: Duration,
    },
}

impl Transport {
    /// Builds the client of one of the exporter's endpoints; `token` is the bearer token
    /// already read.
    pub(crate) fn new(
        config: &OtlpExporterConfig,
        target: &reqwest::Url,
        token: Option<&str>,
    ) -> Result<Self, TransportError> {
        let reserved = Reserved {
            names: &RESERVED_HEADERS,
            setter: "the exporter",
        };
        let pairs = config.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let auth = token.map(|t| crate::remote_write::AuthConfig::Bearer { token: t.into() });
        let headers = header_map(pairs, reserved, auth.as_ref()).map_err(ClientError::from)?;
        let gzip = config.compression == Compression::Gzip;
        let tls = &config.tls;
        let client_cert = tls.client_cert()?;
        match config.protocol {
            OtlpProtocol::Http => {
                let options = tls.apply(ClientOptions::with_timeout(config.timeout))?;
                Ok(Transport::Http {
                    sender: Sender::new(&options, headers)?,
                    base: target.clone(),
                    gzip,
                })
            }
            OtlpProtocol::Grpc => {
                let mut endpoint = Endpoint::from_shared(target.to_string())?
                    .connect_timeout(config.timeout)
                    .user_agent(crate::http::USER_AGENT)?;
                if target.scheme() == "https" {
                    let mut tls_config = ClientTlsConfig::new();
                    tls_config = match &tls.ca_file {
                        Some(ca) => {
                            tls_config.ca_certificate(Certificate::from_pem(read(ca, "CA file")?))
                        }
                        None => tls_config.with_native_roots(),
                    };
                    if let Some((cert, key)) = &client_cert {
                        // Checked as the HTTP client would, for the same messages.
                        crate::http::client::client_identity(cert, key)?;
                        tls_config = tls_config.identity(Identity::from_pem(
                            read(cert, "client certificate")?,
                            read(key, "client key")?,
                        ));
                    }
                    if let Some(host) = target.host_str() {
                        tls_config = tls_config.domain_name(host);
                    }
                    endpoint = endpoint.tls_config(tls_config)?;
                }
                let mut metadata = MetadataMap::new();
                for (name, value) in &headers {
                    let key = MetadataKey::from_bytes(name.as_str().as_bytes())
                        .map_err(|e| TransportError::Setup(format!("header `{name}`: {e}")))?;
                    let mut v = MetadataValue::try_from(value.as_bytes())
                        .map_err(|e| TransportError::Setup(format!("header `{name}`: {e}")))?;
                    v.set_sensitive(value.is_sensitive());
                    metadata.insert(key, v);
                }
                Ok(Transport::Grpc {
                    channel: endpoint.connect_lazy(),
                    metadata,
                    gzip,
                    timeout: config.timeout,
                })
            }
        }
    }

    pub(crate) async fn send(&self, request: Request) -> Outcome {
        match self {
            Transport::Http { sender, base, gzip } => send_http(sender, base, *gzip, request).await,
            Transport::Grpc {
                channel,
                metadata,
                gzip,
                timeout,
            } => send_grpc(channel.clone(), metadata, *gzip, *timeout, request).await,
        }
    }
}

fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>, TransportError> {
    std::fs::read(path)
        .map_err(|e| TransportError::Setup(format!("{what} `{}`: {e}", path.display())))
}

fn signal_url(base: &reqwest::Url, path: &str) -> reqwest::Url {
    let mut url = base.clone();
    let joined = format!("{}{path}", base.path().trim_end_matches('/'));
    url.set_path(&joined);
    url
}

async fn send_http(sender: &Sender, base: &reqwest::Url, gzip: bool, request: Request) -> Outcome {
    let (path, body) = match &request {
        Request::Metrics(r) => ("/v1/metrics", r.encode_to_vec()),
        Request::Logs(r) => ("/v1/logs", r.encode_to_vec()),
        Request::Traces(r) => ("/v1/traces", r.encode_to_vec()),
    };
    let mut extra = HeaderMap::new();
    let body = if gzip {
        extra.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        match enc.write_all(&body).and_then(|()| enc.finish()) {
            Ok(b) => b,
            Err(e) => {
                return Outcome::Retry {
                    reason: format!("compressing: {e}"),
                    retry_after: None,
                };
            }
        }
    } else {
        body
    };
    let url = signal_url(base, path);
    let (answer, content) = match sender
        .post_reading(&url, "application/x-protobuf", extra, body)
        .await
    {
        Ok(a) => a,
        Err(reason) => {
            return Outcome::Retry {
                reason,
                retry_after: None,
            };
        }
    };
    match RetryRule::Otlp.classify(answer.status) {
        Class::Success => {
            let (rejected, message) = partial_success(&request, &content);
            Outcome::Sent { rejected, message }
        }
        Class::Retryable => Outcome::Retry {
            reason: format!("status {}: {}", answer.status, answer.body),
            retry_after: answer.retry_after(),
        },
        Class::Permanent => Outcome::Rejected {
            reason: format!("status {}: {}", answer.status, answer.body),
        },
    }
}

/// The `partial_success` of an answer body (protobuf), if any.
fn partial_success(request: &Request, body: &[u8]) -> (i64, String) {
    let found = match request {
        Request::Metrics(_) => ExportMetricsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_data_points, p.error_message)),
        Request::Logs(_) => ExportLogsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_log_records, p.error_message)),
        Request::Traces(_) => ExportTraceServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_spans, p.error_message)),
    };
    found.unwrap_or((0, String::new()))
}

async fn send_grpc(
    channel: Channel,
    metadata: &MetadataMap,
    gzip: bool,
    timeout: Duration,
    request: Request,
) -> Outcome {
    use tonic::codec::CompressionEncoding::Gzip;
    macro_rules! call {
        ($client:ident, $req:expr, $rejected:ident) => {{
            let mut client = $client::new(channel);
            if gzip {
                client = client.send_compressed(Gzip).accept_compressed(Gzip);
            }
            let mut req = tonic::Request::new($req);
            *req.metadata_mut() = metadata.clone();
            req.set_timeout(timeout);
            client.export(req).await.map(|r| {
                r.into_inner()
                    .partial_success
                    .map(|p| (p.$rejected, p.error_message))
                    .unwrap_or((0, String::new()))
            })
        }};
    }
    let result = match request {
        Request::Metrics(r) => call!(MetricsServiceClient, r, rejected_data_points),
        Request::Logs(r) => call!(LogsServiceClient, r, rejected_log_records),
        Request::Traces(r) => call!(TraceServiceClient, r, rejected_spans),
    };
    match result {
        Ok((rejected, message)) => Outcome::Sent { rejected, message },
        Err(status) => grpc_outcome(&status),
    }
}

/// OTLP specification § "OTLP/gRPC Response" › "Failures": CANCELLED, DEADLINE_EXCEEDED,
/// ABORTED, OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS are retryable, RESOURCE_EXHAUSTED only when
/// the server sent `RetryInfo`; every other code is not. `RetryInfo`'s delay is honoured. A
/// status tonic made from a failure before any answer (connection refused, a TLS handshake the
/// server refused, which tonic reports as UNKNOWN "transport error") is retried too: no
/// receiver has refused the data.
fn grpc_outcome(status: &tonic::Status) -> Outcome {
    use tonic::Code;
    if std::error::Error::source(status).is_some() {
        return Outcome::Retry {
            reason: crate::http::with_causes(
                format!("gRPC {:?}: {}", status.code(), status.message()),
                status,
            ),
            retry_after: None,
        };
    }
    let retry_after = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay);
    let retryable = match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => true,
        Code::ResourceExhausted => retry_after.is_some(),
        _ => false,
    };
    let reason = format!("gRPC {:?}: {}", status.code(), status.message());
    if retryable {
        Outcome::Retry {
            reason,
            retry_after,
        }
    } else {
        Outcome::Rejected { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;
    use tonic_types::ErrorDetails;

    #[test]
    fn grpc_codes_follow_the_otlp_specification() {
        for code in [
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unavailable,
            Code::DataLoss,
        ] {
            let outcome = grpc_outcome(&tonic::Status::new(code, "x"));
            assert!(matches!(outcome, Outcome::Retry { .. }), "{code:?}");
        }
        for code in [
            Code::Unknown,
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::ResourceExhausted,
            Code::FailedPrecondition,
            Code::Unimplemented,
            Code::Internal,
            Code::Unauthenticated,
        ] {
            let outcome = grpc_outcome(&tonic::Status::new(code, "x"));
            assert!(matches!(outcome, Outcome::Rejected { .. }), "{code:?}");
        }
        // No answer at all (here: an I/O error under the status), whatever code tonic gave it.
        let no_answer = tonic::Status::from_error(Box::new(std::io::Error::other("handshake")));
        assert!(matches!(grpc_outcome(&no_answer), Outcome::Retry { .. }));
        let throttled = tonic::Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(7))),
        );
        assert_eq!(
            grpc_outcome(&throttled),
            Outcome::Retry {
                reason: "gRPC ResourceExhausted: slow down".into(),
                retry_after: Some(Duration::from_secs(7)),
            }
        );
    }

    #[test]
    fn signal_paths_are_appended_to_the_endpoint() {
        let base = reqwest::Url::parse("http://c:4318").expect("url");
        assert_eq!(
            signal_url(&base, "/v1/logs").as_str(),
            "http://c:4318/v1/logs"
        );
        let prefixed = reqwest::Url::parse("https://c/otlp/").expect("url");
        assert_eq!(
            signal_url(&prefixed, "/v1/traces").as_str(),
            "https://c/otlp/v1/traces"
        );
    }
}
