//! A queued record: `kind: u8 | enqueued: i64 LE (Unix ms) | the request's protobuf`.

use super::*;

pub(super) const HEAD: usize = 9;

pub(super) fn encode(export: Export<'_>, enqueued_ms: i64) -> Vec<u8> {
    let (kind, body) = match export {
        Export::Metrics(r) => (1u8, r.encode_to_vec()),
        Export::Logs(r) | Export::Detections(r) | Export::Alerts(r) => (2, r.encode_to_vec()),
        Export::Traces(r) => (3, r.encode_to_vec()),
    };
    let mut out = Vec::with_capacity(HEAD + body.len());
    out.push(kind);
    out.extend_from_slice(&enqueued_ms.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

pub(super) fn enqueued_ms(r: &Record) -> Option<i64> {
    let b = r.payload.get(1..HEAD)?;
    Some(i64::from_le_bytes(b.try_into().ok()?))
}

pub(super) fn kind(r: &Record) -> Option<u8> {
    r.payload.first().copied()
}

/// Records of one kind merged into one request; `Err` for a record that does not decode
/// (its checksum matched, so a bug of ours; logged and skipped by the caller).
pub(super) fn merge(records: &[&Record]) -> Result<Request, prost::DecodeError> {
    let body = |r: &Record| r.payload.get(HEAD..).unwrap_or_default().to_vec();
    match records.first().and_then(|r| kind(r)) {
        Some(1) => {
            let mut out = ExportMetricsServiceRequest::default();
            for r in records {
                let one = ExportMetricsServiceRequest::decode(&body(r)[..])?;
                out.resource_metrics.extend(one.resource_metrics);
            }
            Ok(Request::Metrics(out))
        }
        Some(2) => {
            let mut out = ExportLogsServiceRequest::default();
            for r in records {
                let one = ExportLogsServiceRequest::decode(&body(r)[..])?;
                out.resource_logs.extend(one.resource_logs);
            }
            Ok(Request::Logs(out))
        }
        _ => {
            let mut out = ExportTraceServiceRequest::default();
            for r in records {
                let one = ExportTraceServiceRequest::decode(&body(r)[..])?;
                out.resource_spans.extend(one.resource_spans);
            }
            Ok(Request::Traces(out))
        }
    }
}
