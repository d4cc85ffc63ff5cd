//! Traces export requests: every span becomes one row, linked to its model when it carries
//! `ml.model.name`.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::{Context, KnownIds, Rejections, nanos, non_empty};
use crate::signals::attributes::{
    attributes_json, attributes_json_opt, hex_id, string_value, write_json_string,
};
use crate::signals::*;

/// Maps a traces export request. Spans that carry `ml.model.name` are linked to their model.
pub fn map_traces(
    req: &ExportTraceServiceRequest,
    known: &KnownIds,
    now: i64,
) -> (Batch, Rejections) {
    let mut cx = Context::new(known, now);
    for (ri, rs) in req.resource_spans.iter().enumerate() {
        let resource_id = cx.resource(rs.resource.as_ref(), &rs.schema_url);
        for (si, ss) in rs.scope_spans.iter().enumerate() {
            let scope_id = cx.scope(ss.scope.as_ref(), &ss.schema_url);
            for (pi, span) in ss.spans.iter().enumerate() {
                let at = || format!("resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]");
                let (Some(trace_id), Some(span_id)) =
                    (hex_id(&span.trace_id), hex_id(&span.span_id))
                else {
                    cx.rejections
                        .reject(at, || "span without a valid trace_id and span_id".into());
                    continue;
                };
                if span.trace_id.len() != 16 || span.span_id.len() != 8 {
                    cx.rejections.reject(at, || {
                        format!(
                            "trace_id must be 16 bytes and span_id 8 bytes (got {} and {})",
                            span.trace_id.len(),
                            span.span_id.len()
                        )
                    });
                    continue;
                }
                let attr = |key: &str| {
                    span.attributes
                        .iter()
                        .find(|kv| kv.key == key)
                        .and_then(|kv| string_value(kv.value.as_ref()))
                };
                let start = nanos(span.start_time_unix_nano).unwrap_or(now);
                let end = nanos(span.end_time_unix_nano).unwrap_or(start);
                let events = (!span.events.is_empty()).then(|| {
                    let mut s = String::from("[");
                    for (i, e) in span.events.iter().enumerate() {
                        if i > 0 {
                            s.push(',');
                        }
                        s.push_str(&format!(
                            "{{\"time_unix_nano\":{},\"name\":",
                            e.time_unix_nano
                        ));
                        write_json_string(&e.name, &mut s);
                        s.push_str(",\"attributes\":");
                        attributes_json(&e.attributes, &mut s);
                        s.push('}');
                    }
                    s.push(']');
                    s
                });
                let links = (!span.links.is_empty()).then(|| {
                    let mut s = String::from("[");
                    for (i, l) in span.links.iter().enumerate() {
                        if i > 0 {
                            s.push(',');
                        }
                        s.push_str(&format!(
                            "{{\"trace_id\":\"{}\",\"span_id\":\"{}\",\"attributes\":",
                            hex_id(&l.trace_id).unwrap_or_default(),
                            hex_id(&l.span_id).unwrap_or_default()
                        ));
                        attributes_json(&l.attributes, &mut s);
                        s.push('}');
                    }
                    s.push(']');
                    s
                });
                let status = span.status.as_ref();
                cx.batch.spans.push(SpanRow {
                    trace_id,
                    span_id,
                    parent_span_id: hex_id(&span.parent_span_id),
                    trace_state: non_empty(&span.trace_state),
                    name: span.name.clone(),
                    kind: i8::try_from(span.kind).unwrap_or(0),
                    start_time: start,
                    end_time: end,
                    duration_s: (end - start) as f64 / 1e9,
                    status_code: status
                        .map(|s| i8::try_from(s.code).unwrap_or(0))
                        .unwrap_or(0),
                    status_message: status.and_then(|s| non_empty(&s.message)),
                    model: attr("ml.model.name").map(str::to_owned),
                    version: attr("ml.model.version").map(str::to_owned),
                    attributes: attributes_json_opt(&span.attributes),
                    events,
                    links,
                    flags: span.flags,
                    resource_id,
                    scope_id,
                });
            }
        }
    }
    (cx.batch, cx.rejections)
}
