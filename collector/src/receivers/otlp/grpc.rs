//! OTLP/gRPC on tonic, with the service definitions of `opentelemetry-proto`. The services are
//! served through our own codec so that an undecodable message is INVALID_ARGUMENT, as the OTLP
//! specification asks, rather than tonic's default INTERNAL.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use prost::bytes::Buf;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::OtlpSignal;
use crate::pipeline::{Ingest, IngestError};
use crate::telemetry::{Protocol, Refusal};

/// Decodes with prost; a decode failure is the client's fault (INVALID_ARGUMENT).
struct OtlpCodec<Req, Resp>(PhantomData<(Req, Resp)>);

impl<Req, Resp> Default for OtlpCodec<Req, Resp> {
    fn default() -> Self {
        OtlpCodec(PhantomData)
    }
}

struct OtlpDecoder<Req>(PhantomData<Req>);
struct OtlpEncoder<Resp>(PhantomData<Resp>);

impl<Req: prost::Message + Default + Send + 'static, Resp: prost::Message + Send + 'static> Codec
    for OtlpCodec<Req, Resp>
{
    type Encode = Resp;
    type Decode = Req;
    type Encoder = OtlpEncoder<Resp>;
    type Decoder = OtlpDecoder<Req>;

    fn encoder(&mut self) -> Self::Encoder {
        OtlpEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        OtlpDecoder(PhantomData)
    }
}

impl<Resp: prost::Message> Encoder for OtlpEncoder<Resp> {
    type Item = Resp;
    type Error = Status;

    fn encode(&mut self, item: Resp, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(item.encoded_len());
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

impl<Req: prost::Message + Default> Decoder for OtlpDecoder<Req> {
    type Item = Req;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Req>, Status> {
        let len = src.remaining();
        Req::decode(src).map(Some).map_err(|e| {
            Status::invalid_argument(format!(
                "malformed OTLP protobuf message ({len} bytes): {e}"
            ))
        })
    }
}

/// The tower service for one signal: `/{NAME}/Export`.
pub struct OtlpGrpcService<S> {
    ingest: Arc<Ingest>,
    max_message_bytes: usize,
    _signal: PhantomData<S>,
}

impl<S> Clone for OtlpGrpcService<S> {
    fn clone(&self) -> Self {
        OtlpGrpcService {
            ingest: self.ingest.clone(),
            max_message_bytes: self.max_message_bytes,
            _signal: PhantomData,
        }
    }
}

impl<S: OtlpSignal> OtlpGrpcService<S> {
    pub fn new(ingest: Arc<Ingest>, max_message_bytes: usize) -> Self {
        OtlpGrpcService {
            ingest,
            max_message_bytes,
            _signal: PhantomData,
        }
    }
}

impl<S: OtlpSignal> NamedService for OtlpGrpcService<S> {
    const NAME: &'static str = S::NAME;
}

struct Export<S>(Arc<Ingest>, PhantomData<S>);

impl<S: OtlpSignal> UnaryService<S::Request> for Export<S> {
    type Response = S::Response;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<tonic::Response<S::Response>, Status>> + Send>,
    >;

    fn call(&mut self, request: tonic::Request<S::Request>) -> Self::Future {
        let ingest = self.0.clone();
        Box::pin(async move {
            let req = request.into_inner();
            match S::ingest(&ingest, &req, Protocol::Grpc).await {
                Ok(accepted) => Ok(tonic::Response::new(S::response(accepted))),
                Err(e) => Err(unavailable(&e, ingest.retry_after())),
            }
        })
    }
}

/// UNAVAILABLE with a `google.rpc.RetryInfo` detail: the OTLP client retries after the delay.
fn unavailable(e: &IngestError, retry_after: std::time::Duration) -> Status {
    Status::with_error_details(
        Code::Unavailable,
        e.to_string(),
        ErrorDetails::with_retry_info(Some(retry_after)),
    )
}

impl<S, B> tower::Service<http::Request<B>> for OtlpGrpcService<S>
where
    S: OtlpSignal,
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let ingest = self.ingest.clone();
        let max = self.max_message_bytes;
        let is_export = req
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(S::NAME))
            == Some("/Export");
        Box::pin(async move {
            if !is_export {
                return Ok(Status::unimplemented("unknown method").into_http());
            }
            let telemetry = ingest.telemetry.clone();
            let mut grpc = Grpc::new(OtlpCodec::<S::Request, S::Response>::default())
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max)
                .max_encoding_message_size(usize::MAX);
            let response = grpc.unary(Export::<S>(ingest, PhantomData), req).await;
            count_refusal::<S>(&telemetry, &response);
            Ok(response)
        })
    }
}

/// Counts requests that tonic refused before they reached the pipeline.
fn count_refusal<S: OtlpSignal>(
    telemetry: &crate::telemetry::Telemetry,
    response: &http::Response<tonic::body::Body>,
) {
    let code = response
        .headers()
        .get(Status::GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from);
    let why = match code {
        Some(Code::InvalidArgument) | Some(Code::Internal) => Refusal::Malformed,
        Some(Code::OutOfRange) | Some(Code::ResourceExhausted) => Refusal::TooLarge,
        Some(Code::Unimplemented) => Refusal::UnsupportedMediaType,
        _ => return,
    };
    telemetry.refused(S::SIGNAL, Protocol::Grpc, why);
}
