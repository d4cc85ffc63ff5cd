//! OTLP/HTTP JSON answers: export responses (with partial success) and `google.rpc.Status`.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use serde_json::{Map, Value};

/// The JSON body of a metrics export response: `{}` on full success.
pub fn encode_metrics_response(r: &ExportMetricsServiceResponse) -> Vec<u8> {
    encode_response(r.partial_success.as_ref().map(|s| {
        (
            "rejectedDataPoints",
            s.rejected_data_points,
            s.error_message.as_str(),
        )
    }))
}

/// The JSON body of a logs export response: `{}` on full success.
pub fn encode_logs_response(r: &ExportLogsServiceResponse) -> Vec<u8> {
    encode_response(r.partial_success.as_ref().map(|s| {
        (
            "rejectedLogRecords",
            s.rejected_log_records,
            s.error_message.as_str(),
        )
    }))
}

/// The JSON body of a traces export response: `{}` on full success.
pub fn encode_traces_response(r: &ExportTraceServiceResponse) -> Vec<u8> {
    encode_response(
        r.partial_success
            .as_ref()
            .map(|s| ("rejectedSpans", s.rejected_spans, s.error_message.as_str())),
    )
}

/// A `google.rpc.Status` as JSON, the body OTLP/HTTP requires on every 4xx and 5xx answer.
pub fn encode_status(code: i32, message: &str) -> Vec<u8> {
    format!(
        r#"{{"code":{code},"message":{},"details":[]}}"#,
        Value::String(message.to_owned())
    )
    .into_bytes()
}

/// Proto3 JSON leaves out fields that hold their default value, and writes int64 as a string.
fn encode_response(partial_success: Option<(&str, i64, &str)>) -> Vec<u8> {
    let mut response = Map::new();
    if let Some((rejected_key, rejected, error_message)) = partial_success {
        let mut partial = Map::new();
        if rejected != 0 {
            partial.insert(rejected_key.to_owned(), rejected.to_string().into());
        }
        if !error_message.is_empty() {
            partial.insert("errorMessage".to_owned(), error_message.into());
        }
        response.insert("partialSuccess".to_owned(), Value::Object(partial));
    }
    Value::Object(response).to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsPartialSuccess;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
    use serde_json::json;

    use super::*;

    fn parsed(bytes: Vec<u8>) -> Value {
        serde_json::from_slice(&bytes).expect("valid JSON")
    }

    #[test]
    fn full_success_responses_are_empty_objects() {
        assert_eq!(
            parsed(encode_metrics_response(&Default::default())),
            json!({})
        );
        assert_eq!(parsed(encode_logs_response(&Default::default())), json!({}));
        assert_eq!(
            parsed(encode_traces_response(&Default::default())),
            json!({})
        );
    }

    #[test]
    fn partial_success_uses_camel_case_and_int64_strings() {
        let metrics = ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: 5,
                error_message: "5 points had no name".into(),
            }),
        };
        assert_eq!(
            parsed(encode_metrics_response(&metrics)),
            json!({"partialSuccess": {
                "rejectedDataPoints": "5",
                "errorMessage": "5 points had no name"
            }})
        );
        let logs = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: i64::MAX,
                error_message: String::new(),
            }),
        };
        assert_eq!(
            parsed(encode_logs_response(&logs)),
            json!({"partialSuccess": {"rejectedLogRecords": "9223372036854775807"}})
        );
        let traces = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 0,
                error_message: "spans older than 7 days are dropped".into(),
            }),
        };
        assert_eq!(
            parsed(encode_traces_response(&traces)),
            json!({"partialSuccess": {"errorMessage": "spans older than 7 days are dropped"}})
        );
    }

    #[test]
    fn status_is_google_rpc_status_json() {
        let bytes = encode_status(3, "resourceSpans: expected an array, got \"x\"");
        assert_eq!(
            String::from_utf8(bytes).expect("utf-8"),
            r#"{"code":3,"message":"resourceSpans: expected an array, got \"x\"","details":[]}"#
        );
    }
}
