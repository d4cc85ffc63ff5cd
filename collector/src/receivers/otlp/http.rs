//! OTLP/HTTP on axum: `POST /v1/metrics`, `/v1/logs` and `/v1/traces` with protobuf or JSON,
//! optionally gzip'd. The response uses the request's encoding; failures carry a
//! `google.rpc.Status` body. Other paths and methods get pointers to the API and the docs.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::decode::{self, DecodeError, Encoding};
use super::{Logs, Metrics, OtlpSignal, Traces, json};
use crate::api::directory::{Directory, Listener};
use crate::pipeline::{Ingest, IngestError};
use crate::telemetry::{Protocol, Refusal};

/// `google.rpc.Status`, the error body of OTLP/HTTP (details are never filled).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// gRPC code numbers used in `google.rpc.Status` bodies.
const INVALID_ARGUMENT: i32 = 3;
const RESOURCE_EXHAUSTED: i32 = 8;
const UNAVAILABLE: i32 = 14;

pub struct HttpReceiver {
    pub ingest: Arc<Ingest>,
    pub max_body_bytes: usize,
    /// Where things are, for `GET /`, unknown paths and wrong methods.
    pub directory: Arc<Directory>,
}

pub fn router(receiver: Arc<HttpReceiver>) -> Router {
    let (unknown, wrong_method) = (receiver.directory.clone(), receiver.directory.clone());
    Router::new()
        .route(Metrics::PATH, post(export::<Metrics>))
        .route(Logs::PATH, post(export::<Logs>))
        .route(Traces::PATH, post(export::<Traces>))
        .fallback(
            move |method: Method, uri: Uri, headers: HeaderMap| async move {
                unknown.answer(Listener::OtlpHttp, &method, &uri, &headers)
            },
        )
        .method_not_allowed_fallback(
            move |method: Method, uri: Uri, headers: HeaderMap| async move {
                wrong_method.wrong_method(Listener::OtlpHttp, &method, &uri, &headers, "POST")
            },
        )
        .with_state(receiver)
}

async fn export<S: OtlpSignal>(
    State(rx): State<Arc<HttpReceiver>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let encoding = match decode::encoding(header_str(header::CONTENT_TYPE)) {
        Ok(e) => e,
        Err(e) => return refuse::<S>(&rx, Protocol::HttpProtobuf, Encoding::Protobuf, &e),
    };
    let protocol = match encoding {
        Encoding::Protobuf => Protocol::HttpProtobuf,
        Encoding::Json => Protocol::HttpJson,
    };
    let limit = rx.max_body_bytes;
    let declared = header_str(header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return refuse::<S>(&rx, protocol, encoding, &DecodeError::TooLarge { limit });
    }
    let raw = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) => {
            let too_large = std::error::Error::source(&e).is_some_and(|s| {
                s.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
            });
            if too_large {
                return refuse::<S>(&rx, protocol, encoding, &DecodeError::TooLarge { limit });
            }
            let message = format!("reading the request body failed: {e}");
            return status_response(
                StatusCode::BAD_REQUEST,
                encoding,
                INVALID_ARGUMENT,
                &message,
                None,
            );
        }
    };
    let request = decode::decompress(&raw, header_str(header::CONTENT_ENCODING), limit)
        .and_then(|body| decode::decode::<S::Request>(&body, encoding, S::decode_json));
    let request = match request {
        Ok(r) => r,
        Err(e) => return refuse::<S>(&rx, protocol, encoding, &e),
    };
    match S::ingest(&rx.ingest, &request, protocol).await {
        Ok(accepted) => {
            let response = S::response(accepted);
            let body = match encoding {
                Encoding::Protobuf => prost::Message::encode_to_vec(&response),
                Encoding::Json => S::encode_json(&response),
            };
            ([(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
        }
        Err(e) => {
            let retry = Some(rx.ingest.retry_after().as_secs().max(1));
            status_response(status_of(&e), encoding, UNAVAILABLE, &e.to_string(), retry)
        }
    }
}

/// README's "What comes back": a full queue (ours or a remote-write target's) is 429, a store
/// or forward that fails is 503; OTLP/HTTP clients retry both after `Retry-After`.
fn status_of(e: &IngestError) -> StatusCode {
    if e.is_backpressure() {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

fn refuse<S: OtlpSignal>(
    rx: &HttpReceiver,
    protocol: Protocol,
    encoding: Encoding,
    e: &DecodeError,
) -> Response {
    let status = e.status();
    let why = match status {
        StatusCode::PAYLOAD_TOO_LARGE => Refusal::TooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Refusal::UnsupportedMediaType,
        _ => Refusal::Malformed,
    };
    rx.ingest.telemetry.refused(S::SIGNAL, protocol, why);
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        RESOURCE_EXHAUSTED
    } else {
        INVALID_ARGUMENT
    };
    status_response(status, encoding, code, &e.to_string(), None)
}

fn status_response(
    status: StatusCode,
    encoding: Encoding,
    code: i32,
    message: &str,
    retry_after_secs: Option<u64>,
) -> Response {
    let body = match encoding {
        Encoding::Protobuf => prost::Message::encode_to_vec(&RpcStatus {
            code,
            message: message.to_owned(),
        }),
        Encoding::Json => json::encode_status(code, message),
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response();
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use millwatch_exporters::remote_write::{QueueError, RemoteWriteError};

    use super::*;
    use crate::store::StoreError;

    #[test]
    fn a_full_queue_is_429_a_full_forwarding_queue_and_a_failure_to_store_503() {
        let full = || QueueError::Full {
            label: "remote-write".into(),
            used: 10,
            max: 10,
            needed: 1,
        };
        let cases = [
            (
                IngestError::QueueFull {
                    queued: 1,
                    capacity: 1,
                    retry_after: Duration::from_secs(1),
                },
                StatusCode::TOO_MANY_REQUESTS,
            ),
            (
                IngestError::Forward(RemoteWriteError::Queue(full())),
                StatusCode::TOO_MANY_REQUESTS,
            ),
            (
                IngestError::Store(StoreError::Write("disk full".into())),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                IngestError::Store(StoreError::Closed),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                IngestError::Forward(RemoteWriteError::Closed),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            // An OTLP exporter's full queue: 503 with Retry-After, as issue 17 asks.
            (
                IngestError::Uplink(millwatch_exporters::otlp::OtlpError::Queue(full())),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(status_of(&error), status, "{error}");
        }
    }
}
