//! A test-only OTLP/JSON encoder that writes a request in every spelling a sender may use
//! (snake_case keys, integers as strings, enum names, upper-case hex, explicit nulls): each
//! spelling must decode to the same request.

use base64::Engine as _;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, Metric, NumberDataPoint, exemplar,
    exponential_histogram_data_point, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, span, status};
use serde_json::{Map, Value};

/// How the test encoder spells things; every combination must decode to the same request.
#[derive(Clone, Copy, Debug)]
pub(super) struct Style {
    snake_case: bool,
    ints_as_strings: bool,
    enum_names: bool,
    upper_hex: bool,
    nulls_for_unset: bool,
}

impl Style {
    pub(super) fn all() -> impl Iterator<Item = Style> {
        (0..32u8).map(|bits| Style {
            snake_case: bits & 1 != 0,
            ints_as_strings: bits & 2 != 0,
            enum_names: bits & 4 != 0,
            upper_hex: bits & 8 != 0,
            nulls_for_unset: bits & 16 != 0,
        })
    }

    fn obj(self, members: Vec<(&str, Value)>) -> Value {
        let mut map = Map::new();
        for (camel, value) in members {
            if value.is_null() && !self.nulls_for_unset {
                continue;
            }
            let key = if self.snake_case {
                camel.chars().fold(String::new(), |mut key, c| {
                    if c.is_ascii_uppercase() {
                        key.push('_');
                    }
                    key.push(c.to_ascii_lowercase());
                    key
                })
            } else {
                camel.to_owned()
            };
            map.insert(key, value);
        }
        Value::Object(map)
    }

    fn int(self, n: impl Into<i128>) -> Value {
        let n = n.into();
        if self.ints_as_strings {
            n.to_string().into()
        } else if let Ok(unsigned) = u64::try_from(n) {
            unsigned.into()
        } else {
            i64::try_from(n).expect("test values fit in 64 bits").into()
        }
    }

    fn double(self, f: f64) -> Value {
        if f.is_nan() {
            "NaN".into()
        } else if f.is_infinite() {
            if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
        } else if self.ints_as_strings {
            f.to_string().into()
        } else {
            f.into()
        }
    }

    fn opt_double(self, f: Option<f64>) -> Value {
        f.map_or(Value::Null, |f| self.double(f))
    }

    fn enumeration(self, n: i32, name: Option<&str>) -> Value {
        match name {
            Some(name) if self.enum_names => name.into(),
            _ => n.into(),
        }
    }

    fn hex(self, bytes: &[u8]) -> Value {
        if self.upper_hex {
            hex::encode_upper(bytes).into()
        } else {
            hex::encode(bytes).into()
        }
    }

    fn list<T>(self, items: &[T], f: impl Fn(Style, &T) -> Value) -> Value {
        Value::Array(items.iter().map(|item| f(self, item)).collect())
    }

    fn any(self, any: &AnyValue) -> Value {
        use any_value::Value as V;
        let member = match &any.value {
            None => return self.obj(vec![]),
            Some(V::StringValue(s)) => ("stringValue", s.clone().into()),
            Some(V::BoolValue(b)) => ("boolValue", (*b).into()),
            Some(V::IntValue(i)) => ("intValue", self.int(*i)),
            Some(V::DoubleValue(f)) => ("doubleValue", self.double(*f)),
            Some(V::ArrayValue(a)) => (
                "arrayValue",
                self.obj(vec![("values", self.list(&a.values, Style::any))]),
            ),
            Some(V::KvlistValue(l)) => (
                "kvlistValue",
                self.obj(vec![("values", self.list(&l.values, Style::kv))]),
            ),
            Some(V::BytesValue(b)) => (
                "bytesValue",
                base64::engine::general_purpose::STANDARD.encode(b).into(),
            ),
            Some(V::StringValueStrindex(i)) => ("stringValueStrindex", self.int(*i)),
        };
        self.obj(vec![member])
    }

    fn kv(self, kv: &KeyValue) -> Value {
        self.obj(vec![
            ("key", kv.key.clone().into()),
            (
                "value",
                kv.value.as_ref().map_or(Value::Null, |v| self.any(v)),
            ),
            ("keyStrindex", self.int(kv.key_strindex)),
        ])
    }

    fn resource(self, r: &Option<Resource>) -> Value {
        let Some(r) = r else { return Value::Null };
        self.obj(vec![
            ("attributes", self.list(&r.attributes, Style::kv)),
            (
                "droppedAttributesCount",
                self.int(r.dropped_attributes_count),
            ),
            (
                "entityRefs",
                self.list(&r.entity_refs, |s, e| {
                    s.obj(vec![
                        ("schemaUrl", e.schema_url.clone().into()),
                        ("type", e.r#type.clone().into()),
                        ("idKeys", e.id_keys.clone().into()),
                        ("descriptionKeys", e.description_keys.clone().into()),
                    ])
                }),
            ),
        ])
    }

    fn scope(self, s: &Option<InstrumentationScope>) -> Value {
        let Some(s) = s else { return Value::Null };
        self.obj(vec![
            ("name", s.name.clone().into()),
            ("version", s.version.clone().into()),
            ("attributes", self.list(&s.attributes, Style::kv)),
            (
                "droppedAttributesCount",
                self.int(s.dropped_attributes_count),
            ),
        ])
    }

    fn temporality(self, t: i32) -> Value {
        let name = AggregationTemporality::try_from(t)
            .ok()
            .map(|t| t.as_str_name());
        self.enumeration(t, name)
    }

    fn exemplar(self, e: &Exemplar) -> Value {
        let value = match e.value {
            Some(exemplar::Value::AsDouble(f)) => ("asDouble", self.double(f)),
            Some(exemplar::Value::AsInt(i)) => ("asInt", self.int(i)),
            None => ("asInt", Value::Null),
        };
        self.obj(vec![
            (
                "filteredAttributes",
                self.list(&e.filtered_attributes, Style::kv),
            ),
            ("timeUnixNano", self.int(e.time_unix_nano)),
            value,
            ("spanId", self.hex(&e.span_id)),
            ("traceId", self.hex(&e.trace_id)),
        ])
    }

    fn number_point(self, p: &NumberDataPoint) -> Value {
        let value = match p.value {
            Some(number_data_point::Value::AsDouble(f)) => ("asDouble", self.double(f)),
            Some(number_data_point::Value::AsInt(i)) => ("asInt", self.int(i)),
            None => ("asDouble", Value::Null),
        };
        self.obj(vec![
            ("attributes", self.list(&p.attributes, Style::kv)),
            ("startTimeUnixNano", self.int(p.start_time_unix_nano)),
            ("timeUnixNano", self.int(p.time_unix_nano)),
            value,
            ("exemplars", self.list(&p.exemplars, Style::exemplar)),
            ("flags", self.int(p.flags)),
        ])
    }

    fn buckets(self, b: &Option<exponential_histogram_data_point::Buckets>) -> Value {
        let Some(b) = b else { return Value::Null };
        self.obj(vec![
            ("offset", self.int(b.offset)),
            (
                "bucketCounts",
                self.list(&b.bucket_counts, |s, c| s.int(*c)),
            ),
        ])
    }

    fn metric(self, m: &Metric) -> Value {
        let data = match &m.data {
            None => ("gauge", Value::Null),
            Some(Data::Gauge(g)) => (
                "gauge",
                self.obj(vec![(
                    "dataPoints",
                    self.list(&g.data_points, Style::number_point),
                )]),
            ),
            Some(Data::Sum(s)) => (
                "sum",
                self.obj(vec![
                    ("dataPoints", self.list(&s.data_points, Style::number_point)),
                    (
                        "aggregationTemporality",
                        self.temporality(s.aggregation_temporality),
                    ),
                    ("isMonotonic", s.is_monotonic.into()),
                ]),
            ),
            Some(Data::Histogram(h)) => (
                "histogram",
                self.obj(vec![
                    (
                        "dataPoints",
                        self.list(&h.data_points, |s, p| {
                            s.obj(vec![
                                ("attributes", s.list(&p.attributes, Style::kv)),
                                ("startTimeUnixNano", s.int(p.start_time_unix_nano)),
                                ("timeUnixNano", s.int(p.time_unix_nano)),
                                ("count", s.int(p.count)),
                                ("sum", s.opt_double(p.sum)),
                                ("bucketCounts", s.list(&p.bucket_counts, |s, c| s.int(*c))),
                                (
                                    "explicitBounds",
                                    s.list(&p.explicit_bounds, |s, b| s.double(*b)),
                                ),
                                ("exemplars", s.list(&p.exemplars, Style::exemplar)),
                                ("flags", s.int(p.flags)),
                                ("min", s.opt_double(p.min)),
                                ("max", s.opt_double(p.max)),
                            ])
                        }),
                    ),
                    (
                        "aggregationTemporality",
                        self.temporality(h.aggregation_temporality),
                    ),
                ]),
            ),
            Some(Data::ExponentialHistogram(h)) => (
                "exponentialHistogram",
                self.obj(vec![
                    (
                        "dataPoints",
                        self.list(&h.data_points, |s, p| {
                            s.obj(vec![
                                ("attributes", s.list(&p.attributes, Style::kv)),
                                ("startTimeUnixNano", s.int(p.start_time_unix_nano)),
                                ("timeUnixNano", s.int(p.time_unix_nano)),
                                ("count", s.int(p.count)),
                                ("sum", s.opt_double(p.sum)),
                                ("scale", s.int(p.scale)),
                                ("zeroCount", s.int(p.zero_count)),
                                ("positive", s.buckets(&p.positive)),
                                ("negative", s.buckets(&p.negative)),
                                ("flags", s.int(p.flags)),
                                ("exemplars", s.list(&p.exemplars, Style::exemplar)),
                                ("min", s.opt_double(p.min)),
                                ("max", s.opt_double(p.max)),
                                ("zeroThreshold", s.double(p.zero_threshold)),
                            ])
                        }),
                    ),
                    (
                        "aggregationTemporality",
                        self.temporality(h.aggregation_temporality),
                    ),
                ]),
            ),
            Some(Data::Summary(sm)) => (
                "summary",
                self.obj(vec![(
                    "dataPoints",
                    self.list(&sm.data_points, |s, p| {
                        s.obj(vec![
                            ("attributes", s.list(&p.attributes, Style::kv)),
                            ("startTimeUnixNano", s.int(p.start_time_unix_nano)),
                            ("timeUnixNano", s.int(p.time_unix_nano)),
                            ("count", s.int(p.count)),
                            ("sum", s.double(p.sum)),
                            (
                                "quantileValues",
                                s.list(&p.quantile_values, |s, q| {
                                    s.obj(vec![
                                        ("quantile", s.double(q.quantile)),
                                        ("value", s.double(q.value)),
                                    ])
                                }),
                            ),
                            ("flags", s.int(p.flags)),
                        ])
                    }),
                )]),
            ),
        };
        self.obj(vec![
            ("name", m.name.clone().into()),
            ("description", m.description.clone().into()),
            ("unit", m.unit.clone().into()),
            ("metadata", self.list(&m.metadata, Style::kv)),
            data,
        ])
    }

    pub(super) fn metrics(self, r: &ExportMetricsServiceRequest) -> Vec<u8> {
        let body = self.obj(vec![(
            "resourceMetrics",
            self.list(&r.resource_metrics, |s, rm| {
                s.obj(vec![
                    ("resource", s.resource(&rm.resource)),
                    (
                        "scopeMetrics",
                        s.list(&rm.scope_metrics, |s, sm| {
                            s.obj(vec![
                                ("scope", s.scope(&sm.scope)),
                                ("metrics", s.list(&sm.metrics, Style::metric)),
                                ("schemaUrl", sm.schema_url.clone().into()),
                            ])
                        }),
                    ),
                    ("schemaUrl", rm.schema_url.clone().into()),
                ])
            }),
        )]);
        body.to_string().into_bytes()
    }

    fn log_record(self, l: &LogRecord) -> Value {
        let severity = SeverityNumber::try_from(l.severity_number)
            .ok()
            .map(|s| s.as_str_name());
        self.obj(vec![
            ("timeUnixNano", self.int(l.time_unix_nano)),
            ("observedTimeUnixNano", self.int(l.observed_time_unix_nano)),
            (
                "severityNumber",
                self.enumeration(l.severity_number, severity),
            ),
            ("severityText", l.severity_text.clone().into()),
            ("body", l.body.as_ref().map_or(Value::Null, |b| self.any(b))),
            ("attributes", self.list(&l.attributes, Style::kv)),
            (
                "droppedAttributesCount",
                self.int(l.dropped_attributes_count),
            ),
            ("flags", self.int(l.flags)),
            ("traceId", self.hex(&l.trace_id)),
            ("spanId", self.hex(&l.span_id)),
            ("eventName", l.event_name.clone().into()),
        ])
    }

    pub(super) fn logs(self, r: &ExportLogsServiceRequest) -> Vec<u8> {
        let body = self.obj(vec![(
            "resourceLogs",
            self.list(&r.resource_logs, |s, rl| {
                s.obj(vec![
                    ("resource", s.resource(&rl.resource)),
                    (
                        "scopeLogs",
                        s.list(&rl.scope_logs, |s, sl| {
                            s.obj(vec![
                                ("scope", s.scope(&sl.scope)),
                                ("logRecords", s.list(&sl.log_records, Style::log_record)),
                                ("schemaUrl", sl.schema_url.clone().into()),
                            ])
                        }),
                    ),
                    ("schemaUrl", rl.schema_url.clone().into()),
                ])
            }),
        )]);
        body.to_string().into_bytes()
    }

    fn span(self, sp: &Span) -> Value {
        let kind = span::SpanKind::try_from(sp.kind)
            .ok()
            .map(|k| k.as_str_name());
        let status = sp.status.as_ref().map_or(Value::Null, |st| {
            let code = status::StatusCode::try_from(st.code)
                .ok()
                .map(|c| c.as_str_name());
            self.obj(vec![
                ("message", st.message.clone().into()),
                ("code", self.enumeration(st.code, code)),
            ])
        });
        self.obj(vec![
            ("traceId", self.hex(&sp.trace_id)),
            ("spanId", self.hex(&sp.span_id)),
            ("traceState", sp.trace_state.clone().into()),
            ("parentSpanId", self.hex(&sp.parent_span_id)),
            ("flags", self.int(sp.flags)),
            ("name", sp.name.clone().into()),
            ("kind", self.enumeration(sp.kind, kind)),
            ("startTimeUnixNano", self.int(sp.start_time_unix_nano)),
            ("endTimeUnixNano", self.int(sp.end_time_unix_nano)),
            ("attributes", self.list(&sp.attributes, Style::kv)),
            (
                "droppedAttributesCount",
                self.int(sp.dropped_attributes_count),
            ),
            (
                "events",
                self.list(&sp.events, |s, e| {
                    s.obj(vec![
                        ("timeUnixNano", s.int(e.time_unix_nano)),
                        ("name", e.name.clone().into()),
                        ("attributes", s.list(&e.attributes, Style::kv)),
                        ("droppedAttributesCount", s.int(e.dropped_attributes_count)),
                    ])
                }),
            ),
            ("droppedEventsCount", self.int(sp.dropped_events_count)),
            (
                "links",
                self.list(&sp.links, |s, l| {
                    s.obj(vec![
                        ("traceId", s.hex(&l.trace_id)),
                        ("spanId", s.hex(&l.span_id)),
                        ("traceState", l.trace_state.clone().into()),
                        ("attributes", s.list(&l.attributes, Style::kv)),
                        ("droppedAttributesCount", s.int(l.dropped_attributes_count)),
                        ("flags", s.int(l.flags)),
                    ])
                }),
            ),
            ("droppedLinksCount", self.int(sp.dropped_links_count)),
            ("status", status),
        ])
    }

    pub(super) fn traces(self, r: &ExportTraceServiceRequest) -> Vec<u8> {
        let body = self.obj(vec![(
            "resourceSpans",
            self.list(&r.resource_spans, |s, rs| {
                s.obj(vec![
                    ("resource", s.resource(&rs.resource)),
                    (
                        "scopeSpans",
                        s.list(&rs.scope_spans, |s, ss| {
                            s.obj(vec![
                                ("scope", s.scope(&ss.scope)),
                                ("spans", s.list(&ss.spans, Style::span)),
                                ("schemaUrl", ss.schema_url.clone().into()),
                            ])
                        }),
                    ),
                    ("schemaUrl", rs.schema_url.clone().into()),
                ])
            }),
        )]);
        body.to_string().into_bytes()
    }
}
