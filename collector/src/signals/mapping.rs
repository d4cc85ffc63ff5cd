//! OTLP → Millwatch signals, as SIGNALS.md says: `ml.inference` and `ml.feedback` log records,
//! metric points of every OTLP type, spans, and other logs. Items that break the contract are
//! rejected one by one with a reason (OTLP partial success); the rest of the request goes on.

use std::collections::HashSet;
use std::sync::RwLock;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::attributes::{
    attributes_hash, attributes_json, attributes_json_opt, hex_id, string_value, type_name,
    value_json,
};
use super::*;

pub const EVENT_INFERENCE: &str = "ml.inference";
pub const EVENT_FEEDBACK: &str = "ml.feedback";
const FEATURE_PREFIX: &str = "ml.feature.";
/// At most this many rejection reasons are spelled out in a partial-success message.
const MAX_REASONS: usize = 5;

/// Ids of resources, scopes and series already stored, so a request carries their definitions
/// only the first time. The store adds ids after they are committed; a race only means a
/// definition is sent twice, which the store ignores.
#[derive(Debug, Default)]
pub struct KnownIds {
    pub resources: RwLock<HashSet<u64>>,
    pub scopes: RwLock<HashSet<u64>>,
    pub series: RwLock<HashSet<u64>>,
}

fn is_known(set: &RwLock<HashSet<u64>>, id: u64) -> bool {
    set.read().map(|s| s.contains(&id)).unwrap_or(false)
}

/// Items refused within an otherwise accepted request.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rejections {
    pub count: i64,
    reasons: Vec<String>,
}

impl Rejections {
    fn reject(&mut self, location: impl FnOnce() -> String, reason: impl FnOnce() -> String) {
        self.count += 1;
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(format!("{}: {}", location(), reason()));
        }
    }

    /// The partial-success message: the first reasons, and how many more there were.
    pub fn message(&self) -> String {
        if self.count == 0 {
            return String::new();
        }
        let mut m = format!(
            "{} item(s) rejected: {}",
            self.count,
            self.reasons.join("; ")
        );
        let more = self.count - self.reasons.len() as i64;
        if more > 0 {
            m.push_str(&format!("; and {more} more"));
        }
        m
    }
}

/// Per-request de-duplication of resource and scope definitions, and of series ids.
struct Context<'a> {
    known: &'a KnownIds,
    now: i64,
    batch: Batch,
    rejections: Rejections,
    seen: HashSet<u64>,
}

impl<'a> Context<'a> {
    fn new(known: &'a KnownIds, now: i64) -> Self {
        Context {
            known,
            now,
            batch: Batch::default(),
            rejections: Rejections::default(),
            seen: HashSet::new(),
        }
    }

    fn resource(&mut self, resource: Option<&Resource>, schema_url: &str) -> u64 {
        let empty = Vec::new();
        let attrs = resource.map(|r| &r.attributes).unwrap_or(&empty);
        let id = attributes_hash(1, attrs);
        if self.seen.insert(id) && !is_known(&self.known.resources, id) {
            let get = |key: &str| {
                attrs
                    .iter()
                    .find(|kv| kv.key == key)
                    .and_then(|kv| string_value(kv.value.as_ref()))
                    .map(str::to_owned)
            };
            let mut json = String::with_capacity(128);
            attributes_json(attrs, &mut json);
            self.batch.resources.push(ResourceRow {
                resource_id: id,
                service_name: get("service.name"),
                environment: get("deployment.environment.name")
                    .or_else(|| get("deployment.environment")),
                host_name: get("host.name"),
                site_name: get("site.name"),
                site_line: get("site.line"),
                site_cell: get("site.cell"),
                tier: get("millwatch.tier"),
                attributes: json,
                dropped_attributes_count: resource.map(|r| r.dropped_attributes_count).unwrap_or(0),
                schema_url: non_empty(schema_url),
                first_seen: self.now,
            });
        }
        id
    }

    fn scope(&mut self, scope: Option<&InstrumentationScope>, schema_url: &str) -> u64 {
        let (name, version, attrs) = match scope {
            Some(s) => (s.name.as_str(), s.version.as_str(), s.attributes.as_slice()),
            None => ("", "", &[][..]),
        };
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(name.as_bytes());
        h.update(&[0xff]);
        h.update(version.as_bytes());
        let id = attributes_hash(h.digest() ^ 2, attrs);
        if self.seen.insert(id) && !is_known(&self.known.scopes, id) {
            self.batch.scopes.push(ScopeRow {
                scope_id: id,
                name: non_empty(name),
                version: non_empty(version),
                attributes: attributes_json_opt(attrs),
                dropped_attributes_count: scope.map(|s| s.dropped_attributes_count).unwrap_or(0),
                schema_url: non_empty(schema_url),
                first_seen: self.now,
            });
        }
        id
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn nanos(t: u64) -> Option<i64> {
    (t != 0).then(|| i64::try_from(t).unwrap_or(i64::MAX))
}

/// Maps a metrics export request. Every data point becomes one row; a point without a value is
/// rejected.
pub fn map_metrics(
    req: &ExportMetricsServiceRequest,
    known: &KnownIds,
    now: i64,
) -> (Batch, Rejections) {
    let mut cx = Context::new(known, now);
    for (ri, rm) in req.resource_metrics.iter().enumerate() {
        let resource_id = cx.resource(rm.resource.as_ref(), &rm.schema_url);
        for (si, sm) in rm.scope_metrics.iter().enumerate() {
            let scope_id = cx.scope(sm.scope.as_ref(), &sm.schema_url);
            for (mi, metric) in sm.metrics.iter().enumerate() {
                let at = || {
                    format!(
                        "resourceMetrics[{ri}].scopeMetrics[{si}].metrics[{mi}] ({})",
                        metric.name
                    )
                };
                map_metric(&mut cx, metric, resource_id, scope_id, &at);
            }
        }
    }
    (cx.batch, cx.rejections)
}

fn map_metric(
    cx: &mut Context<'_>,
    metric: &Metric,
    resource_id: u64,
    scope_id: u64,
    at: &dyn Fn() -> String,
) {
    let Some(data) = metric.data.as_ref() else {
        cx.rejections.reject(at, || {
            "metric has no data (gauge, sum, histogram, exponential histogram or summary)".into()
        });
        return;
    };
    if metric.name.is_empty() {
        let points = data_point_count(data).max(1);
        for _ in 0..points {
            cx.rejections
                .reject(at, || "metric has an empty name".into());
        }
        return;
    }
    let temporality = |t: i32| match AggregationTemporality::try_from(t) {
        Ok(AggregationTemporality::Delta) => Some("delta"),
        Ok(AggregationTemporality::Cumulative) => Some("cumulative"),
        _ => None,
    };
    let (metric_type, temporality, monotonic) = match data {
        Data::Gauge(_) => (MetricType::Gauge, None, None),
        Data::Sum(s) => (
            MetricType::Sum,
            temporality(s.aggregation_temporality),
            Some(s.is_monotonic),
        ),
        Data::Histogram(h) => (
            MetricType::Histogram,
            temporality(h.aggregation_temporality),
            None,
        ),
        Data::ExponentialHistogram(h) => (
            MetricType::ExponentialHistogram,
            temporality(h.aggregation_temporality),
            None,
        ),
        Data::Summary(_) => (MetricType::Summary, None, None),
    };
    // The series identity: resource, scope, name, unit, type, then the point's attributes.
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&resource_id.to_le_bytes());
    h.update(&scope_id.to_le_bytes());
    h.update(metric.name.as_bytes());
    h.update(&[0xff]);
    h.update(metric.unit.as_bytes());
    h.update(&[metric_type as u8]);
    let metric_seed = h.digest();
    let series = |cx: &mut Context<'_>, attrs: &[KeyValue]| -> u64 {
        let id = attributes_hash(metric_seed, attrs);
        if cx.seen.insert(id) && !is_known(&cx.known.series, id) {
            let mut json = String::with_capacity(64);
            attributes_json(attrs, &mut json);
            cx.batch.series.push(SeriesRow {
                series_id: id,
                name: metric.name.clone(),
                description: non_empty(&metric.description),
                unit: non_empty(&metric.unit),
                metric_type,
                temporality,
                monotonic,
                attributes: json,
                resource_id,
                scope_id,
                first_seen: cx.now,
            });
        }
        id
    };
    match data {
        Data::Gauge(g) => {
            for p in &g.data_points {
                let series_id = series(cx, &p.attributes);
                push_number(cx, series_id, p, at);
            }
        }
        Data::Sum(s) => {
            for p in &s.data_points {
                let series_id = series(cx, &p.attributes);
                push_number(cx, series_id, p, at);
            }
        }
        Data::Histogram(hist) => {
            for p in &hist.data_points {
                if !p.bucket_counts.is_empty()
                    && p.bucket_counts.len() != p.explicit_bounds.len() + 1
                {
                    cx.rejections.reject(at, || {
                        format!(
                            "histogram point has {} bucket counts for {} bounds (expected bounds + 1)",
                            p.bucket_counts.len(),
                            p.explicit_bounds.len()
                        )
                    });
                    continue;
                }
                let series_id = series(cx, &p.attributes);
                cx.batch.distributions.push(DistributionRow {
                    series_id,
                    time: time_or(p.time_unix_nano, cx.now),
                    start_time: nanos(p.start_time_unix_nano),
                    count: p.count,
                    sum: p.sum,
                    min: p.min,
                    max: p.max,
                    bounds: Some(p.explicit_bounds.clone()),
                    bucket_counts: Some(p.bucket_counts.clone()),
                    flags: p.flags,
                    ..Default::default()
                });
            }
        }
        Data::ExponentialHistogram(hist) => {
            for p in &hist.data_points {
                let series_id = series(cx, &p.attributes);
                cx.batch.distributions.push(DistributionRow {
                    series_id,
                    time: time_or(p.time_unix_nano, cx.now),
                    start_time: nanos(p.start_time_unix_nano),
                    count: p.count,
                    sum: p.sum,
                    min: p.min,
                    max: p.max,
                    scale: Some(p.scale),
                    zero_count: Some(p.zero_count),
                    zero_threshold: Some(p.zero_threshold),
                    positive_offset: p.positive.as_ref().map(|b| b.offset),
                    positive_counts: p.positive.as_ref().map(|b| b.bucket_counts.clone()),
                    negative_offset: p.negative.as_ref().map(|b| b.offset),
                    negative_counts: p.negative.as_ref().map(|b| b.bucket_counts.clone()),
                    flags: p.flags,
                    ..Default::default()
                });
            }
        }
        Data::Summary(s) => {
            for p in &s.data_points {
                let series_id = series(cx, &p.attributes);
                cx.batch.distributions.push(DistributionRow {
                    series_id,
                    time: time_or(p.time_unix_nano, cx.now),
                    start_time: nanos(p.start_time_unix_nano),
                    count: p.count,
                    sum: Some(p.sum),
                    quantiles: Some(p.quantile_values.iter().map(|q| q.quantile).collect()),
                    quantile_values: Some(p.quantile_values.iter().map(|q| q.value).collect()),
                    flags: p.flags,
                    ..Default::default()
                });
            }
        }
    }
}

fn data_point_count(data: &Data) -> usize {
    match data {
        Data::Gauge(g) => g.data_points.len(),
        Data::Sum(s) => s.data_points.len(),
        Data::Histogram(h) => h.data_points.len(),
        Data::ExponentialHistogram(h) => h.data_points.len(),
        Data::Summary(s) => s.data_points.len(),
    }
}

fn push_number(
    cx: &mut Context<'_>,
    series_id: u64,
    p: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint,
    at: &dyn Fn() -> String,
) {
    let (value, int_value) = match p.value {
        Some(number_data_point::Value::AsDouble(d)) => (d, None),
        Some(number_data_point::Value::AsInt(i)) => (i as f64, Some(i)),
        None => {
            cx.rejections.reject(at, || {
                "number data point has no value (as_double or as_int)".into()
            });
            return;
        }
    };
    cx.batch.points.push(PointRow {
        series_id,
        time: time_or(p.time_unix_nano, cx.now),
        start_time: nanos(p.start_time_unix_nano),
        value,
        int_value,
        flags: p.flags,
    });
}

fn time_or(t: u64, now: i64) -> i64 {
    nanos(t).unwrap_or(now)
}

/// Maps a logs export request: `ml.inference` and `ml.feedback` events to their tables, every
/// other record to `logs`.
pub fn map_logs(req: &ExportLogsServiceRequest, known: &KnownIds, now: i64) -> (Batch, Rejections) {
    let mut cx = Context::new(known, now);
    for (ri, rl) in req.resource_logs.iter().enumerate() {
        let resource_id = cx.resource(rl.resource.as_ref(), &rl.schema_url);
        for (si, sl) in rl.scope_logs.iter().enumerate() {
            let scope_id = cx.scope(sl.scope.as_ref(), &sl.schema_url);
            for (li, record) in sl.log_records.iter().enumerate() {
                let at = || format!("resourceLogs[{ri}].scopeLogs[{si}].logRecords[{li}]");
                let ids = (resource_id, scope_id);
                match event_name(record) {
                    Some(EVENT_INFERENCE) => match inference(record, ids, now) {
                        Ok(row) => cx.batch.inferences.push(row),
                        Err(reason) => cx
                            .rejections
                            .reject(at, || format!("{EVENT_INFERENCE} event {reason}")),
                    },
                    Some(EVENT_FEEDBACK) => match feedback(record, ids, now) {
                        Ok(row) => cx.batch.feedback.push(row),
                        Err(reason) => cx
                            .rejections
                            .reject(at, || format!("{EVENT_FEEDBACK} event {reason}")),
                    },
                    _ => cx.batch.logs.push(log(record, ids)),
                }
            }
        }
    }
    (cx.batch, cx.rejections)
}

/// `LogRecord.event_name`, else the `event.name` attribute older SDKs set.
fn event_name(record: &LogRecord) -> Option<&str> {
    if !record.event_name.is_empty() {
        return Some(&record.event_name);
    }
    record
        .attributes
        .iter()
        .find(|kv| kv.key == "event.name")
        .and_then(|kv| string_value(kv.value.as_ref()))
}

fn event_time(record: &LogRecord, now: i64) -> i64 {
    nanos(record.time_unix_nano)
        .or_else(|| nanos(record.observed_time_unix_nano))
        .unwrap_or(now)
}

/// A required string attribute: absent and wrong-typed values are told apart in the reason.
fn required_string(value: Option<&AnyValue>, key: &str) -> Result<String, String> {
    match value {
        None => Err(format!("without {key}")),
        Some(v) => match v.value.as_ref() {
            Some(Value::StringValue(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::StringValue(_)) => Err(format!("with an empty {key}")),
            _ => Err(format!(
                "with {key} of type {} (expected string)",
                type_name(Some(v))
            )),
        },
    }
}

fn optional_string(value: Option<&AnyValue>, key: &str) -> Result<Option<String>, String> {
    match value.and_then(|v| v.value.as_ref()) {
        None => Ok(None),
        Some(Value::StringValue(s)) => Ok(non_empty(s)),
        Some(_) => Err(format!(
            "with {key} of type {} (expected string)",
            type_name(value)
        )),
    }
}

fn optional_number(value: Option<&AnyValue>, key: &str) -> Result<Option<f64>, String> {
    match value.and_then(|v| v.value.as_ref()) {
        None => Ok(None),
        Some(Value::DoubleValue(d)) if d.is_finite() => Ok(Some(*d)),
        Some(Value::IntValue(i)) => Ok(Some(*i as f64)),
        Some(Value::DoubleValue(d)) => Err(format!("with a non-finite {key} ({d})")),
        Some(_) => Err(format!(
            "with {key} of type {} (expected double)",
            type_name(value)
        )),
    }
}

/// A prediction or label: a number (double or int) or a class (string or bool).
fn prediction(value: Option<&AnyValue>, key: &str) -> Result<Prediction, String> {
    match value.and_then(|v| v.value.as_ref()) {
        None => Err(format!("without {key}")),
        Some(Value::DoubleValue(d)) if d.is_finite() => Ok(Prediction::Number(*d)),
        Some(Value::DoubleValue(d)) => Err(format!("with a non-finite {key} ({d})")),
        Some(Value::IntValue(i)) => Ok(Prediction::Number(*i as f64)),
        Some(Value::StringValue(s)) if !s.is_empty() => Ok(Prediction::Class(s.clone())),
        Some(Value::StringValue(_)) => Err(format!("with an empty {key}")),
        Some(Value::BoolValue(b)) => Ok(Prediction::Class(b.to_string())),
        Some(_) => Err(format!(
            "with {key} of type {} (expected double or string)",
            type_name(value)
        )),
    }
}

fn feature(value: Option<&AnyValue>) -> FeatureValue {
    match value.and_then(|v| v.value.as_ref()) {
        None => FeatureValue::Missing,
        Some(Value::DoubleValue(d)) if d.is_nan() => FeatureValue::Missing,
        Some(Value::DoubleValue(d)) => FeatureValue::Double(*d),
        Some(Value::IntValue(i)) => FeatureValue::Int(*i),
        Some(Value::BoolValue(b)) => FeatureValue::Bool(*b),
        Some(Value::StringValue(s)) if s.is_empty() => FeatureValue::Missing,
        Some(Value::StringValue(s)) => FeatureValue::String(s.clone()),
        Some(_) => {
            let mut json = String::new();
            value_json(value, &mut json);
            FeatureValue::Other(json)
        }
    }
}

/// Attributes outside `ml.*` (and `event.name`), kept as JSON.
fn other_attributes(record: &LogRecord) -> Option<String> {
    attributes_json_opt(
        record
            .attributes
            .iter()
            .filter(|kv| !kv.key.starts_with("ml.") && kv.key != "event.name"),
    )
}

fn inference(
    record: &LogRecord,
    (resource_id, scope_id): (u64, u64),
    now: i64,
) -> Result<InferenceRow, String> {
    let mut model = None;
    let mut version = None;
    let mut inference_id = None;
    let mut pred = None;
    let mut score = None;
    let mut duration = None;
    let mut task = None;
    let mut features = Vec::new();
    for kv in &record.attributes {
        let v = kv.value.as_ref();
        match kv.key.as_str() {
            "ml.model.name" => model = Some(v),
            "ml.model.version" => version = Some(v),
            "ml.inference.id" => inference_id = optional_string(v, "ml.inference.id")?,
            "ml.prediction" => pred = Some(v),
            "ml.prediction.score" => score = optional_number(v, "ml.prediction.score")?,
            "ml.inference.duration" => duration = optional_number(v, "ml.inference.duration")?,
            "ml.model.task" => task = optional_string(v, "ml.model.task")?,
            key => {
                if let Some(name) = key.strip_prefix(FEATURE_PREFIX) {
                    features.push((name.to_owned(), feature(v)));
                }
            }
        }
    }
    let model = required_string(model.flatten(), "ml.model.name")?;
    let version = required_string(version.flatten(), "ml.model.version")?;
    let prediction = prediction(pred.flatten(), "ml.prediction")?;
    if let Some(s) = score
        && !(0.0..=1.0).contains(&s)
    {
        return Err(format!("with ml.prediction.score {s} outside [0, 1]"));
    }
    if let Some(d) = duration
        && d < 0.0
    {
        return Err(format!("with a negative ml.inference.duration ({d})"));
    }
    let task = match task {
        None => None,
        Some(t) => Some(ModelTask::parse(&t).ok_or_else(|| {
            format!("with ml.model.task {t:?} (expected \"classification\" or \"regression\")")
        })?),
    };
    Ok(InferenceRow {
        time: event_time(record, now),
        observed_time: nanos(record.observed_time_unix_nano),
        model,
        version,
        inference_id,
        prediction,
        score,
        duration_s: duration,
        task,
        trace_id: hex_id(&record.trace_id),
        span_id: hex_id(&record.span_id),
        attributes: other_attributes(record),
        resource_id,
        scope_id,
        features,
    })
}

fn feedback(
    record: &LogRecord,
    (resource_id, scope_id): (u64, u64),
    now: i64,
) -> Result<FeedbackRow, String> {
    let get = |key: &str| {
        record
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
    };
    Ok(FeedbackRow {
        time: event_time(record, now),
        observed_time: nanos(record.observed_time_unix_nano),
        model: required_string(get("ml.model.name"), "ml.model.name")?,
        inference_id: required_string(get("ml.inference.id"), "ml.inference.id")?,
        label: prediction(get("ml.label"), "ml.label")?,
        attributes: other_attributes(record),
        resource_id,
        scope_id,
    })
}

fn log(record: &LogRecord, (resource_id, scope_id): (u64, u64)) -> LogRow {
    LogRow {
        time: nanos(record.time_unix_nano),
        observed_time: nanos(record.observed_time_unix_nano),
        severity_number: i8::try_from(record.severity_number).unwrap_or(0),
        severity_text: non_empty(&record.severity_text),
        event_name: non_empty(&record.event_name),
        body: record.body.as_ref().map(|b| {
            let mut s = String::new();
            value_json(Some(b), &mut s);
            s
        }),
        attributes: attributes_json_opt(&record.attributes),
        trace_id: hex_id(&record.trace_id),
        span_id: hex_id(&record.span_id),
        flags: record.flags,
        resource_id,
        scope_id,
    }
}

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
                        super::attributes::write_json_string(&e.name, &mut s);
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
