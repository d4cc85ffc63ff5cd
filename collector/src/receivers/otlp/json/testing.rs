//! Shared test helpers: well-known ids and times, attribute and resource builders, requests
//! that hold every field, and shortcuts to decode one log record or data point.

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::NumberDataPoint;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::{Value, json};

use super::{JsonError, Result, decode_logs, decode_metrics};

pub(super) const TRACE_ID: [u8; 16] = [
    0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c,
];
pub(super) const SPAN_ID: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74];
pub(super) const T0: u64 = 1_700_000_000_000_000_000;
pub(super) const T1: u64 = 1_700_000_060_000_000_000;

pub(super) fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub(super) fn text(s: &str) -> any_value::Value {
    any_value::Value::StringValue(s.to_owned())
}

pub(super) fn scope_named(name: &str, version: &str) -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: name.to_owned(),
        version: version.to_owned(),
        ..Default::default()
    })
}

pub(super) fn resource_with(attributes: Vec<KeyValue>) -> Option<Resource> {
    Some(Resource {
        attributes,
        ..Default::default()
    })
}

pub(super) fn invalid(result: Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(e @ JsonError::Invalid { .. }) => e.to_string(),
        other => panic!("expected a schema error, got {other:?}"),
    }
}

pub(super) fn syntax(result: Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(e @ JsonError::Syntax(_)) => e.to_string(),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

/// Attributes holding every AnyValue variant, nested ones included.
pub(super) fn every_attribute_type() -> Vec<KeyValue> {
    use any_value::Value as V;
    vec![
        kv("s", text("é \"quoted\" \n")),
        kv("b", V::BoolValue(true)),
        kv("i", V::IntValue(i64::MIN)),
        kv("big", V::IntValue(i64::MAX)),
        kv("d", V::DoubleValue(-2.5e-300)),
        kv("inf", V::DoubleValue(f64::NEG_INFINITY)),
        kv(
            "arr",
            V::ArrayValue(ArrayValue {
                values: vec![
                    AnyValue {
                        value: Some(V::IntValue(1)),
                    },
                    AnyValue { value: None },
                    AnyValue {
                        value: Some(V::ArrayValue(ArrayValue::default())),
                    },
                ],
            }),
        ),
        kv(
            "map",
            V::KvlistValue(KeyValueList {
                values: vec![kv("inner", V::BytesValue(vec![0xfb, 0xff, 0x00]))],
            }),
        ),
        kv("bytes", V::BytesValue((0..=255).collect())),
        kv("strindex", V::StringValueStrindex(-3)),
        KeyValue {
            key: String::new(),
            value: None,
            key_strindex: 9,
        },
    ]
}

pub(super) fn full_resource() -> Option<Resource> {
    Some(Resource {
        attributes: every_attribute_type(),
        dropped_attributes_count: u32::MAX,
        entity_refs: vec![EntityRef {
            schema_url: "https://example.com/s".into(),
            r#type: "host".into(),
            id_keys: vec!["host.id".into()],
            description_keys: vec!["host.name".into(), "host.arch".into()],
        }],
    })
}

pub(super) fn full_scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "scope".into(),
        version: "9.9".into(),
        attributes: vec![kv("k", text("v"))],
        dropped_attributes_count: 4,
    })
}

pub(super) fn first_log(body: Value) -> LogRecord {
    let mut request = decode_logs(body.to_string().as_bytes()).expect("decodes");
    request
        .resource_logs
        .remove(0)
        .scope_logs
        .remove(0)
        .log_records
        .remove(0)
}

pub(super) fn log_body(record: Value) -> Value {
    json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]})
}

pub(super) fn first_point(point: Value) -> NumberDataPoint {
    let body = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"gauge": {"dataPoints": [point]}}
    ]}]}]});
    let mut request = decode_metrics(body.to_string().as_bytes()).expect("decodes");
    match request
        .resource_metrics
        .remove(0)
        .scope_metrics
        .remove(0)
        .metrics
        .remove(0)
        .data
    {
        Some(Data::Gauge(mut g)) => g.data_points.remove(0),
        other => panic!("expected a gauge, got {other:?}"),
    }
}
