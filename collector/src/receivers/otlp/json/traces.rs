//! trace.v1 in OTLP/JSON: `/v1/traces` bodies, spans with their events, links and status.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use serde_json::Value;

use super::Result;
use super::common::{attributes, resource, scope};
use super::path::Path;
use super::scalars::{
    UINT32, UINT64, enumeration, integer, list, object, span_id, string, trace_id,
};

/// Decodes an OTLP/HTTP JSON body sent to `/v1/traces`.
pub fn decode_traces(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    let root = serde_json::from_slice(body)?;
    let path = &Path::ROOT;
    let mut request = ExportTraceServiceRequest::default();
    fields!(root, path, |v, p| {
        "resourceSpans" | "resource_spans" => request.resource_spans = list(v, p, resource_spans)?,
    });
    Ok(request)
}

fn resource_spans(value: Value, path: &Path) -> Result<ResourceSpans> {
    let mut rs = ResourceSpans::default();
    fields!(value, path, |v, p| {
        "resource" => rs.resource = Some(resource(v, p)?),
        "scopeSpans" | "scope_spans" => rs.scope_spans = list(v, p, scope_spans)?,
        "schemaUrl" | "schema_url" => rs.schema_url = string(v, p)?,
    });
    Ok(rs)
}

fn scope_spans(value: Value, path: &Path) -> Result<ScopeSpans> {
    let mut ss = ScopeSpans::default();
    fields!(value, path, |v, p| {
        "scope" => ss.scope = Some(scope(v, p)?),
        "spans" => ss.spans = list(v, p, span)?,
        "schemaUrl" | "schema_url" => ss.schema_url = string(v, p)?,
    });
    Ok(ss)
}

fn span(value: Value, path: &Path) -> Result<Span> {
    let mut s = Span::default();
    fields!(value, path, |v, p| {
        "traceId" | "trace_id" => s.trace_id = trace_id(v, p)?,
        "spanId" | "span_id" => s.span_id = span_id(v, p)?,
        "traceState" | "trace_state" => s.trace_state = string(v, p)?,
        "parentSpanId" | "parent_span_id" => s.parent_span_id = span_id(v, p)?,
        "flags" => s.flags = integer(v, p, UINT32)?,
        "name" => s.name = string(v, p)?,
        "kind" => {
            s.kind = enumeration(
                v,
                p,
                "a span kind as an integer or a name such as SPAN_KIND_SERVER",
                |name| span::SpanKind::from_str_name(name).map(|k| k as i32),
            )?
        },
        "startTimeUnixNano" | "start_time_unix_nano" => {
            s.start_time_unix_nano = integer(v, p, UINT64)?
        },
        "endTimeUnixNano" | "end_time_unix_nano" => s.end_time_unix_nano = integer(v, p, UINT64)?,
        "attributes" => s.attributes = attributes(v, p)?,
        "droppedAttributesCount" | "dropped_attributes_count" => {
            s.dropped_attributes_count = integer(v, p, UINT32)?
        },
        "events" => s.events = list(v, p, event)?,
        "droppedEventsCount" | "dropped_events_count" => {
            s.dropped_events_count = integer(v, p, UINT32)?
        },
        "links" => s.links = list(v, p, link)?,
        "droppedLinksCount" | "dropped_links_count" => {
            s.dropped_links_count = integer(v, p, UINT32)?
        },
        "status" => s.status = Some(span_status(v, p)?),
    });
    Ok(s)
}

fn event(value: Value, path: &Path) -> Result<span::Event> {
    let mut event = span::Event::default();
    fields!(value, path, |v, p| {
        "timeUnixNano" | "time_unix_nano" => event.time_unix_nano = integer(v, p, UINT64)?,
        "name" => event.name = string(v, p)?,
        "attributes" => event.attributes = attributes(v, p)?,
        "droppedAttributesCount" | "dropped_attributes_count" => {
            event.dropped_attributes_count = integer(v, p, UINT32)?
        },
    });
    Ok(event)
}

fn link(value: Value, path: &Path) -> Result<span::Link> {
    let mut link = span::Link::default();
    fields!(value, path, |v, p| {
        "traceId" | "trace_id" => link.trace_id = trace_id(v, p)?,
        "spanId" | "span_id" => link.span_id = span_id(v, p)?,
        "traceState" | "trace_state" => link.trace_state = string(v, p)?,
        "attributes" => link.attributes = attributes(v, p)?,
        "droppedAttributesCount" | "dropped_attributes_count" => {
            link.dropped_attributes_count = integer(v, p, UINT32)?
        },
        "flags" => link.flags = integer(v, p, UINT32)?,
    });
    Ok(link)
}

fn span_status(value: Value, path: &Path) -> Result<Status> {
    let mut st = Status::default();
    fields!(value, path, |v, p| {
        "message" => st.message = string(v, p)?,
        "code" => {
            st.code = enumeration(
                v,
                p,
                "a status code as an integer or a name such as STATUS_CODE_ERROR",
                |name| status::StatusCode::from_str_name(name).map(|c| c as i32),
            )?
        },
    });
    Ok(st)
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::any_value;

    use super::super::test_encoder::Style;
    use super::super::testing::{
        SPAN_ID, T0, T1, TRACE_ID, every_attribute_type, full_resource, full_scope, kv,
        resource_with, scope_named, text,
    };
    use super::*;

    #[test]
    fn sdk_traces_body_decodes_hex_ids_events_links_and_status() {
        let got = decode_traces(include_bytes!("../../../../testdata/otlp-json/traces.json"))
            .expect("fixture decodes");
        let mut child_id = SPAN_ID;
        child_id[7] = 0x75;
        let expected = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: resource_with(vec![kv("service.name", text("scoring-api"))]),
                scope_spans: vec![ScopeSpans {
                    scope: scope_named("@opentelemetry/instrumentation-http", "0.52.0"),
                    spans: vec![
                        Span {
                            trace_id: TRACE_ID.to_vec(),
                            span_id: SPAN_ID.to_vec(),
                            trace_state: "vendor=x".into(),
                            flags: 257,
                            name: "POST /predict".into(),
                            kind: span::SpanKind::Server as i32,
                            start_time_unix_nano: T0,
                            end_time_unix_nano: 1_700_000_000_250_000_000,
                            attributes: vec![
                                kv("ml.model.name", text("defect-classifier")),
                                kv("http.response.status_code", any_value::Value::IntValue(500)),
                            ],
                            events: vec![span::Event {
                                time_unix_nano: 1_700_000_000_200_000_000,
                                name: "exception".into(),
                                attributes: vec![kv("exception.type", text("IOError"))],
                                dropped_attributes_count: 0,
                            }],
                            links: vec![span::Link {
                                trace_id: vec![
                                    0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48,
                                    0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c,
                                ],
                                span_id: vec![0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31],
                                flags: 256,
                                ..Default::default()
                            }],
                            status: Some(Status {
                                message: "model file not found".into(),
                                code: status::StatusCode::Error as i32,
                            }),
                            ..Default::default()
                        },
                        Span {
                            trace_id: TRACE_ID.to_vec(),
                            span_id: child_id.to_vec(),
                            parent_span_id: SPAN_ID.to_vec(),
                            name: "load model".into(),
                            kind: span::SpanKind::Internal as i32,
                            start_time_unix_nano: 1_700_000_000_010_000_000,
                            end_time_unix_nano: 1_700_000_000_190_000_000,
                            status: Some(Status::default()),
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

    fn full_traces() -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: full_resource(),
                scope_spans: vec![ScopeSpans {
                    scope: full_scope(),
                    spans: vec![
                        Span {
                            trace_id: TRACE_ID.to_vec(),
                            span_id: SPAN_ID.to_vec(),
                            trace_state: "a=b,c=d".into(),
                            parent_span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
                            flags: 0x301,
                            name: "span".into(),
                            kind: span::SpanKind::Consumer as i32,
                            start_time_unix_nano: T0,
                            end_time_unix_nano: T1,
                            attributes: every_attribute_type(),
                            dropped_attributes_count: 1,
                            events: vec![span::Event {
                                time_unix_nano: T1,
                                name: "event".into(),
                                attributes: vec![kv("e", text("f"))],
                                dropped_attributes_count: 2,
                            }],
                            dropped_events_count: 3,
                            links: vec![span::Link {
                                trace_id: TRACE_ID.to_vec(),
                                span_id: SPAN_ID.to_vec(),
                                trace_state: "x=y".into(),
                                attributes: vec![kv("l", text("m"))],
                                dropped_attributes_count: 4,
                                flags: 0x100,
                            }],
                            dropped_links_count: 5,
                            status: Some(Status {
                                message: "failed".into(),
                                code: status::StatusCode::Error as i32,
                            }),
                        },
                        Span::default(),
                    ],
                    schema_url: "https://example.com/scope-schema".into(),
                }],
                schema_url: "https://example.com/resource-schema".into(),
            }],
        }
    }

    #[test]
    fn traces_round_trip_in_every_style() {
        let request = full_traces();
        for style in Style::all() {
            let decoded = decode_traces(&style.traces(&request));
            assert_eq!(decoded.expect("decodes"), request, "{style:?}");
        }
    }
}
