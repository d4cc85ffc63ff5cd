//! logs.v1 in OTLP/JSON: `/v1/logs` bodies and their log records (inference events included).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use serde_json::Value;

use super::Result;
use super::common::{any_value, attributes, resource, scope};
use super::path::Path;
use super::scalars::{
    UINT32, UINT64, enumeration, integer, list, object, span_id, string, trace_id,
};

/// Decodes an OTLP/HTTP JSON body sent to `/v1/logs`.
pub fn decode_logs(body: &[u8]) -> Result<ExportLogsServiceRequest> {
    let root = serde_json::from_slice(body)?;
    let path = &Path::ROOT;
    let mut request = ExportLogsServiceRequest::default();
    fields!(root, path, |v, p| {
        "resourceLogs" | "resource_logs" => request.resource_logs = list(v, p, resource_logs)?,
    });
    Ok(request)
}

fn resource_logs(value: Value, path: &Path) -> Result<ResourceLogs> {
    let mut rl = ResourceLogs::default();
    fields!(value, path, |v, p| {
        "resource" => rl.resource = Some(resource(v, p)?),
        "scopeLogs" | "scope_logs" => rl.scope_logs = list(v, p, scope_logs)?,
        "schemaUrl" | "schema_url" => rl.schema_url = string(v, p)?,
    });
    Ok(rl)
}

fn scope_logs(value: Value, path: &Path) -> Result<ScopeLogs> {
    let mut sl = ScopeLogs::default();
    fields!(value, path, |v, p| {
        "scope" => sl.scope = Some(scope(v, p)?),
        "logRecords" | "log_records" => sl.log_records = list(v, p, log_record)?,
        "schemaUrl" | "schema_url" => sl.schema_url = string(v, p)?,
    });
    Ok(sl)
}

fn log_record(value: Value, path: &Path) -> Result<LogRecord> {
    let mut record = LogRecord::default();
    fields!(value, path, |v, p| {
        "timeUnixNano" | "time_unix_nano" => record.time_unix_nano = integer(v, p, UINT64)?,
        "observedTimeUnixNano" | "observed_time_unix_nano" => {
            record.observed_time_unix_nano = integer(v, p, UINT64)?
        },
        "severityNumber" | "severity_number" => {
            record.severity_number = enumeration(
                v,
                p,
                "a severity number as an integer or a name such as SEVERITY_NUMBER_INFO",
                |name| SeverityNumber::from_str_name(name).map(|s| s as i32),
            )?
        },
        "severityText" | "severity_text" => record.severity_text = string(v, p)?,
        "body" => record.body = Some(any_value(v, p)?),
        "attributes" => record.attributes = attributes(v, p)?,
        "droppedAttributesCount" | "dropped_attributes_count" => {
            record.dropped_attributes_count = integer(v, p, UINT32)?
        },
        "flags" => record.flags = integer(v, p, UINT32)?,
        "traceId" | "trace_id" => record.trace_id = trace_id(v, p)?,
        "spanId" | "span_id" => record.span_id = span_id(v, p)?,
        "eventName" | "event_name" => record.event_name = string(v, p)?,
    });
    Ok(record)
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, KeyValue, KeyValueList, any_value,
    };

    use super::super::test_encoder::Style;
    use super::super::testing::{
        SPAN_ID, T0, T1, TRACE_ID, every_attribute_type, full_resource, full_scope, kv,
        resource_with, scope_named, text,
    };
    use super::*;

    #[test]
    fn sdk_logs_body_decodes_events_and_every_attribute_type() {
        use any_value::Value as V;
        let got = decode_logs(include_bytes!("../../../../testdata/otlp-json/logs.json"))
            .expect("fixture decodes");
        let expected = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource_with(vec![kv("service.name", text("scoring-api"))]),
                scope_logs: vec![ScopeLogs {
                    scope: scope_named("ml.events", ""),
                    log_records: vec![
                        LogRecord {
                            time_unix_nano: 1_700_000_000_123_000_000,
                            observed_time_unix_nano: 1_700_000_000_124_000_000,
                            severity_number: SeverityNumber::Info as i32,
                            severity_text: "INFO".into(),
                            event_name: "ml.inference".into(),
                            attributes: vec![
                                kv("ml.model.name", text("defect-classifier")),
                                kv("ml.feature.temperature", V::DoubleValue(71.5)),
                                kv("ml.feature.batch", V::IntValue(12)),
                                kv("ml.feature.night_shift", V::BoolValue(false)),
                                kv(
                                    "ml.feature.tags",
                                    V::ArrayValue(ArrayValue {
                                        values: vec![
                                            AnyValue {
                                                value: Some(text("a")),
                                            },
                                            AnyValue {
                                                value: Some(V::IntValue(2)),
                                            },
                                        ],
                                    }),
                                ),
                                kv(
                                    "ml.feature.shape",
                                    V::KvlistValue(KeyValueList {
                                        values: vec![kv("w", V::DoubleValue(1.5))],
                                    }),
                                ),
                                kv("ml.feature.raw", V::BytesValue(vec![0, 1, 2, 255])),
                                KeyValue {
                                    key: "ml.feature.missing".into(),
                                    value: Some(AnyValue { value: None }),
                                    ..Default::default()
                                },
                            ],
                            flags: 1,
                            trace_id: TRACE_ID.to_vec(),
                            span_id: SPAN_ID.to_vec(),
                            ..Default::default()
                        },
                        LogRecord {
                            observed_time_unix_nano: 1_700_000_001_000_000_000,
                            severity_number: SeverityNumber::Error as i32,
                            severity_text: "ERROR".into(),
                            body: Some(AnyValue {
                                value: Some(text("model file not found")),
                            }),
                            dropped_attributes_count: 2,
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(got, expected);
    }

    fn full_logs() -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: full_resource(),
                scope_logs: vec![ScopeLogs {
                    scope: full_scope(),
                    log_records: vec![
                        LogRecord {
                            time_unix_nano: T0,
                            observed_time_unix_nano: T1,
                            severity_number: SeverityNumber::Warn3 as i32,
                            severity_text: "WARN3".into(),
                            body: Some(AnyValue {
                                value: Some(any_value::Value::KvlistValue(KeyValueList {
                                    values: every_attribute_type(),
                                })),
                            }),
                            attributes: every_attribute_type(),
                            dropped_attributes_count: 3,
                            flags: 0x101,
                            trace_id: TRACE_ID.to_vec(),
                            span_id: SPAN_ID.to_vec(),
                            event_name: "ml.feedback".into(),
                        },
                        LogRecord::default(),
                    ],
                    schema_url: "https://example.com/scope-schema".into(),
                }],
                schema_url: "https://example.com/resource-schema".into(),
            }],
        }
    }

    #[test]
    fn logs_round_trip_in_every_style() {
        let request = full_logs();
        for style in Style::all() {
            let decoded = decode_logs(&style.logs(&request));
            assert_eq!(decoded.expect("decodes"), request, "{style:?}");
        }
    }
}
