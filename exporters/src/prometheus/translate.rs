//! Walks an OTLP `ExportMetricsServiceRequest` and hands each data point, with its Prometheus
//! family name and its final label set, to a sink: the exposition state or the remote-write
//! encoder. One walker means a series has the same name and labels whether it is scraped or
//! remote-written.

use std::borrow::Cow;
use std::ops::Deref;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, metric,
    number_data_point,
};
use serde::{Deserialize, Serialize};

use super::names::{MetricType, NameCache, PrometheusName, is_valid_label_name};

/// How OTLP resources and scopes become labels. Shared by the exposition and remote write so
/// both produce the same series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TranslationConfig {
    /// Resource attributes copied as labels onto every series of that resource (sanitised:
    /// `site.line` becomes `site_line`). All resource attributes also appear on `target_info`.
    /// `service.name`, `service.namespace` and `service.instance.id` always become `job` and
    /// `instance` as the specification says, so they need not be listed.
    pub promoted_resource_attributes: Vec<String>,
    /// Add `otel_scope_name` and `otel_scope_version` labels from the instrumentation scope
    /// (the specification's default); turn off to keep series identical across SDK upgrades.
    pub scope_labels: bool,
}

impl Default for TranslationConfig {
    fn default() -> Self {
        Self {
            promoted_resource_attributes: [
                "site.name",
                "site.line",
                "site.cell",
                "host.name",
                "deployment.environment.name",
            ]
            .map(String::from)
            .to_vec(),
            scope_labels: true,
        }
    }
}

/// A label name: borrowed from the request when already valid, else a cached translation.
#[derive(Debug, Clone)]
pub(crate) enum Name<'r> {
    Borrowed(&'r str),
    Shared(Arc<str>),
}

impl Deref for Name<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Name::Borrowed(s) => s,
            Name::Shared(s) => s,
        }
    }
}

/// A label as the sinks see it; label sets are sorted by name with unique names.
pub(crate) type Label<'r> = (Name<'r>, Cow<'r, str>);

/// Why points were not translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// Delta temporality the sink cannot accumulate (per the specification).
    DeltaTemporality,
    /// Bucket counts that do not match the bounds, or a point with no value.
    Malformed,
    /// The name is already taken by a family of another type (the specification drops the
    /// whole metric rather than expose conflicting TYPE lines).
    TypeConflict,
}

impl DropReason {
    pub(crate) const ALL: [DropReason; 3] = [
        DropReason::DeltaTemporality,
        DropReason::Malformed,
        DropReason::TypeConflict,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DropReason::DeltaTemporality => "delta_temporality",
            DropReason::Malformed => "malformed",
            DropReason::TypeConflict => "type_conflict",
        }
    }
}

/// One OTLP metric as a Prometheus family.
#[derive(Debug)]
pub(crate) struct MetricRef<'r> {
    pub name: PrometheusName,
    pub ty: MetricType,
    pub help: &'r str,
    /// Delta temporality (monotonic sums and histograms only reach the sink this way).
    pub delta: bool,
}

/// A classic histogram: `counts[i]` counts values in `(bounds[i-1], bounds[i]]`; the last
/// entry (index `bounds.len()`) counts values above the last bound.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Buckets<'r> {
    pub bounds: Cow<'r, [f64]>,
    pub counts: Cow<'r, [u64]>,
    pub sum: Option<f64>,
    pub count: u64,
}

#[derive(Debug)]
pub(crate) enum Value<'r> {
    Number(f64),
    Histogram(Buckets<'r>),
    Summary {
        quantiles: &'r [ValueAtQuantile],
        sum: f64,
        count: u64,
    },
}

#[derive(Debug)]
pub(crate) struct Point<'a, 'r> {
    pub labels: &'a [Label<'r>],
    pub time_nanos: u64,
    pub start_nanos: u64,
    /// The OTLP `NoRecordedValue` flag: the series went stale.
    pub no_value: bool,
    pub value: Value<'r>,
}

/// What a walk feeds.
pub(crate) trait Sink<'r> {
    /// A metric begins; return false to refuse its points (counted as a type conflict).
    fn metric(&mut self, metric: &MetricRef<'r>) -> bool;
    fn point(&mut self, metric: &MetricRef<'r>, point: Point<'_, 'r>);
    /// Labels of the `target_info` series of a resource (job, instance and attributes).
    fn target(&mut self, labels: &[Label<'r>], time_nanos: u64);
    fn dropped(&mut self, metric: &MetricRef<'r>, reason: DropReason, points: usize);
}

/// Translates requests with cached names.
#[derive(Debug)]
pub(crate) struct Translator {
    config: TranslationConfig,
    names: NameCache,
}

const NO_RECORDED_VALUE: u32 = 1;
const SERVICE_KEYS: [&str; 3] = ["service.name", "service.namespace", "service.instance.id"];

/// A label under construction: priority 0 for point attributes, 1 for scope, 2 for resource.
type Pending<'r> = (Name<'r>, u8, &'r str, Cow<'r, str>);

impl Translator {
    pub(crate) fn new(config: TranslationConfig) -> Self {
        Self {
            config,
            names: NameCache::new(100_000),
        }
    }

    fn label_name<'r>(&self, key: &'r str) -> Name<'r> {
        if is_valid_label_name(key) {
            Name::Borrowed(key)
        } else {
            Name::Shared(self.names.label(key))
        }
    }

    /// Walks every data point of `req` into `sink`.
    pub(crate) fn walk<'r>(&self, req: &'r ExportMetricsServiceRequest, sink: &mut impl Sink<'r>) {
        let mut pending: Vec<Pending<'r>> = Vec::new();
        let mut labels: Vec<Label<'r>> = Vec::new();
        for rm in &req.resource_metrics {
            let attrs: &'r [KeyValue] = rm.resource.as_ref().map_or(&[], |r| &r.attributes[..]);
            let find = |key: &str| {
                attrs
                    .iter()
                    .find(|kv| kv.key == key)
                    .map(|kv| any_value_string(kv.value.as_ref()))
            };
            let job = match (find("service.namespace"), find("service.name")) {
                (Some(ns), Some(name)) if !ns.is_empty() => Cow::Owned(format!("{ns}/{name}")),
                (_, Some(name)) => name,
                _ => Cow::Borrowed(""),
            };
            let instance = find("service.instance.id").unwrap_or(Cow::Borrowed(""));

            let mut resource: Vec<Pending<'r>> = vec![
                (Name::Borrowed("job"), 2, "job", job.clone()),
                (Name::Borrowed("instance"), 2, "instance", instance.clone()),
            ];
            for key in &self.config.promoted_resource_attributes {
                if let Some(kv) = attrs.iter().find(|kv| kv.key == *key) {
                    resource.push((
                        self.label_name(&kv.key),
                        2,
                        &kv.key,
                        any_value_string(kv.value.as_ref()),
                    ));
                }
            }

            let newest = rm
                .scope_metrics
                .iter()
                .flat_map(|sm| &sm.metrics)
                .filter_map(newest_time)
                .max()
                .unwrap_or(0);
            if attrs
                .iter()
                .any(|kv| !SERVICE_KEYS.contains(&kv.key.as_str()))
            {
                pending.clear();
                pending.push((Name::Borrowed("job"), 1, "job", job.clone()));
                pending.push((Name::Borrowed("instance"), 1, "instance", instance.clone()));
                for kv in attrs {
                    if !SERVICE_KEYS.contains(&kv.key.as_str()) {
                        pending.push((
                            self.label_name(&kv.key),
                            0,
                            &kv.key,
                            any_value_string(kv.value.as_ref()),
                        ));
                    }
                }
                finish_labels(&mut pending, &mut labels);
                sink.target(&labels, newest);
            }

            for sm in &rm.scope_metrics {
                let mut scope: Vec<Pending<'r>> = Vec::new();
                if self.config.scope_labels
                    && let Some(s) = &sm.scope
                {
                    scope.push((
                        Name::Borrowed("otel_scope_name"),
                        1,
                        "otel_scope_name",
                        Cow::Borrowed(&s.name),
                    ));
                    scope.push((
                        Name::Borrowed("otel_scope_version"),
                        1,
                        "otel_scope_version",
                        Cow::Borrowed(&s.version),
                    ));
                }
                let mut ctx = PointLabels {
                    translator: self,
                    resource: &resource,
                    scope: &scope,
                    pending: &mut pending,
                    labels: &mut labels,
                };
                for m in &sm.metrics {
                    self.walk_metric(m, &mut ctx, sink);
                }
            }
        }
    }

    fn walk_metric<'r>(
        &self,
        m: &'r opentelemetry_proto::tonic::metrics::v1::Metric,
        ctx: &mut PointLabels<'_, 'r>,
        sink: &mut impl Sink<'r>,
    ) {
        let Some(data) = &m.data else { return };
        let delta_t = AggregationTemporality::Delta as i32;
        let (ty, delta, count) = match data {
            metric::Data::Gauge(g) => (MetricType::Gauge, false, g.data_points.len()),
            metric::Data::Sum(s) if s.is_monotonic => (
                MetricType::Counter,
                s.aggregation_temporality == delta_t,
                s.data_points.len(),
            ),
            metric::Data::Sum(s) => (
                MetricType::Gauge,
                s.aggregation_temporality == delta_t,
                s.data_points.len(),
            ),
            metric::Data::Histogram(h) => (
                MetricType::Histogram,
                h.aggregation_temporality == delta_t,
                h.data_points.len(),
            ),
            metric::Data::ExponentialHistogram(h) => (
                MetricType::Histogram,
                h.aggregation_temporality == delta_t,
                h.data_points.len(),
            ),
            metric::Data::Summary(s) => (MetricType::Summary, false, s.data_points.len()),
        };
        let metric_ref = MetricRef {
            name: self.names.metric(&m.name, &m.unit, ty),
            ty,
            help: &m.description,
            delta,
        };
        // The specification drops delta non-monotonic sums and delta exponential histograms.
        let spec_drops = delta
            && matches!(
                data,
                metric::Data::ExponentialHistogram(_) | metric::Data::Sum(_)
            )
            && ty != MetricType::Counter;
        if spec_drops {
            sink.dropped(&metric_ref, DropReason::DeltaTemporality, count);
            return;
        }
        if !sink.metric(&metric_ref) {
            sink.dropped(&metric_ref, DropReason::TypeConflict, count);
            return;
        }
        let mut malformed = 0usize;
        match data {
            metric::Data::Gauge(_) | metric::Data::Sum(_) => {
                let points = match data {
                    metric::Data::Gauge(g) => &g.data_points,
                    metric::Data::Sum(s) => &s.data_points,
                    _ => return,
                };
                for dp in points {
                    let v = match dp.value {
                        Some(number_data_point::Value::AsDouble(v)) => v,
                        Some(number_data_point::Value::AsInt(v)) => v as f64,
                        None if dp.flags & NO_RECORDED_VALUE != 0 => f64::NAN,
                        None => {
                            malformed += 1;
                            continue;
                        }
                    };
                    let labels = ctx.build(&dp.attributes);
                    sink.point(
                        &metric_ref,
                        Point {
                            labels,
                            time_nanos: dp.time_unix_nano,
                            start_nanos: dp.start_time_unix_nano,
                            no_value: dp.flags & NO_RECORDED_VALUE != 0,
                            value: Value::Number(v),
                        },
                    );
                }
            }
            metric::Data::Histogram(h) => {
                for dp in &h.data_points {
                    let Some(buckets) = classic_buckets(dp) else {
                        malformed += 1;
                        continue;
                    };
                    let labels = ctx.build(&dp.attributes);
                    sink.point(
                        &metric_ref,
                        Point {
                            labels,
                            time_nanos: dp.time_unix_nano,
                            start_nanos: dp.start_time_unix_nano,
                            no_value: dp.flags & NO_RECORDED_VALUE != 0,
                            value: Value::Histogram(buckets),
                        },
                    );
                }
            }
            metric::Data::ExponentialHistogram(h) => {
                for dp in &h.data_points {
                    let labels = ctx.build(&dp.attributes);
                    sink.point(
                        &metric_ref,
                        Point {
                            labels,
                            time_nanos: dp.time_unix_nano,
                            start_nanos: dp.start_time_unix_nano,
                            no_value: dp.flags & NO_RECORDED_VALUE != 0,
                            value: Value::Histogram(exponential_to_classic(dp)),
                        },
                    );
                }
            }
            metric::Data::Summary(s) => {
                for dp in &s.data_points {
                    let labels = ctx.build(&dp.attributes);
                    sink.point(
                        &metric_ref,
                        Point {
                            labels,
                            time_nanos: dp.time_unix_nano,
                            start_nanos: dp.start_time_unix_nano,
                            no_value: dp.flags & NO_RECORDED_VALUE != 0,
                            value: Value::Summary {
                                quantiles: &dp.quantile_values,
                                sum: dp.sum,
                                count: dp.count,
                            },
                        },
                    );
                }
            }
        }
        if malformed > 0 {
            sink.dropped(&metric_ref, DropReason::Malformed, malformed);
        }
    }
}

/// Builds the label set of each point from its attributes plus the scope and resource labels.
struct PointLabels<'c, 'r> {
    translator: &'c Translator,
    resource: &'c [Pending<'r>],
    scope: &'c [Pending<'r>],
    pending: &'c mut Vec<Pending<'r>>,
    labels: &'c mut Vec<Label<'r>>,
}

impl<'r> PointLabels<'_, 'r> {
    fn build(&mut self, attrs: &'r [KeyValue]) -> &[Label<'r>] {
        self.pending.clear();
        for kv in attrs {
            self.pending.push((
                self.translator.label_name(&kv.key),
                0,
                &kv.key,
                any_value_string(kv.value.as_ref()),
            ));
        }
        self.pending.extend(self.scope.iter().cloned());
        self.pending.extend(self.resource.iter().cloned());
        finish_labels(self.pending, self.labels);
        self.labels
    }
}

/// Sorts pending labels by name and resolves clashes: point attributes win over scope and
/// resource labels; point attributes that sanitise to the same name are joined with `;` in
/// the order of their original keys, as the specification says. Empty values are left out
/// (Prometheus treats an empty label as an absent one).
fn finish_labels<'r>(pending: &mut [Pending<'r>], out: &mut Vec<Label<'r>>) {
    out.clear();
    pending.sort_unstable_by(|a, b| (&*a.0, a.1, a.2).cmp(&(&*b.0, b.1, b.2)));
    let mut i = 0;
    while i < pending.len() {
        let mut j = i + 1;
        while j < pending.len() && *pending[j].0 == *pending[i].0 {
            j += 1;
        }
        let prio = pending[i].1;
        let same: Vec<&Pending<'r>> = pending[i..j].iter().filter(|p| p.1 == prio).collect();
        let value = if same.len() == 1 {
            same[0].3.clone()
        } else {
            Cow::Owned(
                same.iter()
                    .map(|p| p.3.as_ref())
                    .collect::<Vec<_>>()
                    .join(";"),
            )
        };
        if !value.is_empty() {
            out.push((pending[i].0.clone(), value));
        }
        i = j;
    }
}

fn newest_time(m: &opentelemetry_proto::tonic::metrics::v1::Metric) -> Option<u64> {
    match m.data.as_ref()? {
        metric::Data::Gauge(g) => g.data_points.iter().map(|p| p.time_unix_nano).max(),
        metric::Data::Sum(s) => s.data_points.iter().map(|p| p.time_unix_nano).max(),
        metric::Data::Histogram(h) => h.data_points.iter().map(|p| p.time_unix_nano).max(),
        metric::Data::ExponentialHistogram(h) => {
            h.data_points.iter().map(|p| p.time_unix_nano).max()
        }
        metric::Data::Summary(s) => s.data_points.iter().map(|p| p.time_unix_nano).max(),
    }
}

fn classic_buckets(dp: &HistogramDataPoint) -> Option<Buckets<'_>> {
    let bounds = &dp.explicit_bounds;
    let counts: Cow<'_, [u64]> = if dp.bucket_counts.is_empty() {
        // No buckets: only the count, which lands in +Inf.
        let mut c = vec![0; bounds.len() + 1];
        c[bounds.len()] = dp.count;
        Cow::Owned(c)
    } else if dp.bucket_counts.len() == bounds.len() + 1 {
        Cow::Borrowed(&dp.bucket_counts)
    } else {
        return None;
    };
    if bounds
        .windows(2)
        .any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less))
        || bounds.iter().any(|b| b.is_nan())
    {
        return None;
    }
    Some(Buckets {
        bounds: Cow::Borrowed(bounds),
        counts,
        sum: dp.sum,
        count: dp.count,
    })
}

/// Converts an exponential histogram to classic buckets (the specification allows this where
/// native histograms are not supported): a negative bucket of index `i` gets the upper bound
/// `-base^i`, the zero bucket `zero_threshold`, a positive bucket `base^(i+1)`, with
/// `base = 2^(2^-scale)`. Bounds that round to the same `f64` are merged.
pub(crate) fn exponential_to_classic(dp: &ExponentialHistogramDataPoint) -> Buckets<'static> {
    let step = (-f64::from(dp.scale)).exp2();
    let bound = |i: i64| (i as f64 * step).exp2();
    let mut pairs: Vec<(f64, u64)> = Vec::new();
    if let Some(neg) = &dp.negative {
        // Empty negative buckets (SDKs send zero-filled ones) are left out: they hold no
        // observation, and a negative bound would hide `_sum` (see `histogram_sum_exposed`).
        for (k, c) in neg
            .bucket_counts
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, c)| **c > 0)
        {
            let i = i64::from(neg.offset) + k as i64;
            pairs.push((-bound(i), *c));
        }
    }
    pairs.push((dp.zero_threshold.max(0.0), dp.zero_count));
    if let Some(pos) = &dp.positive {
        for (k, c) in pos.bucket_counts.iter().enumerate() {
            let i = i64::from(pos.offset) + k as i64;
            pairs.push((bound(i + 1), *c));
        }
    }
    let mut bounds: Vec<f64> = Vec::with_capacity(pairs.len());
    let mut counts: Vec<u64> = Vec::with_capacity(pairs.len() + 1);
    for (b, c) in pairs {
        match bounds.last() {
            Some(last) if b <= *last || !b.is_finite() => {
                if let Some(lc) = counts.last_mut() {
                    *lc += c;
                }
            }
            _ => {
                bounds.push(b);
                counts.push(c);
            }
        }
    }
    let listed: u64 = counts.iter().sum();
    counts.push(dp.count.saturating_sub(listed));
    Buckets {
        bounds: Cow::Owned(bounds),
        counts: Cow::Owned(counts),
        sum: dp.sum,
        count: dp.count,
    }
}

/// Converts an attribute value to a label value: strings as they are, other scalars in their
/// usual text form, arrays and maps as JSON, bytes as base64 (the attribute specification).
pub(crate) fn any_value_string(v: Option<&AnyValue>) -> Cow<'_, str> {
    let Some(value) = v.and_then(|v| v.value.as_ref()) else {
        return Cow::Borrowed("");
    };
    match value {
        any_value::Value::StringValue(s) => Cow::Borrowed(s),
        any_value::Value::BoolValue(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        any_value::Value::IntValue(i) => Cow::Owned(i.to_string()),
        any_value::Value::DoubleValue(d) => Cow::Owned(super::names::float_label(*d)),
        any_value::Value::BytesValue(b) => Cow::Owned(base64(b)),
        other => Cow::Owned(json(Some(other)).to_string()),
    }
}

fn json(v: Option<&any_value::Value>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        None => J::Null,
        Some(any_value::Value::StringValue(s)) => J::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => J::Bool(*b),
        Some(any_value::Value::IntValue(i)) => J::from(*i),
        Some(any_value::Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(J::Null, J::Number)
        }
        Some(any_value::Value::BytesValue(b)) => J::String(base64(b)),
        Some(any_value::Value::ArrayValue(a)) => {
            J::Array(a.values.iter().map(|x| json(x.value.as_ref())).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|x| {
                    (
                        x.key.clone(),
                        json(x.value.as_ref().and_then(|v| v.value.as_ref())),
                    )
                })
                .collect(),
        ),
        #[allow(unreachable_patterns)]
        Some(_) => J::Null,
    }
}

pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets as ExpBuckets;

    #[test]
    fn exponential_histogram_becomes_cumulative_classic_buckets() {
        // scale 0: base 2; positive offset 0 → buckets (1,2], (2,4], (4,8].
        let dp = ExponentialHistogramDataPoint {
            scale: 0,
            count: 7,
            sum: Some(20.0),
            zero_count: 1,
            positive: Some(ExpBuckets {
                offset: 0,
                bucket_counts: vec![1, 2, 3],
            }),
            ..Default::default()
        };
        let b = exponential_to_classic(&dp);
        assert_eq!(&*b.bounds, &[0.0, 2.0, 4.0, 8.0]);
        assert_eq!(&*b.counts, &[1, 1, 2, 3, 0]);
        assert_eq!(b.count, 7);

        let dp = ExponentialHistogramDataPoint {
            scale: 1,
            count: 3,
            negative: Some(ExpBuckets {
                offset: 0,
                bucket_counts: vec![1, 1],
            }),
            positive: Some(ExpBuckets {
                offset: -1,
                bucket_counts: vec![1],
            }),
            ..Default::default()
        };
        let b = exponential_to_classic(&dp);
        let want = [-std::f64::consts::SQRT_2, -1.0, 0.0, 1.0];
        assert_eq!(b.bounds.len(), want.len());
        for (got, want) in b.bounds.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        assert_eq!(&*b.counts, &[1, 1, 0, 1, 0]);
    }

    #[test]
    fn attribute_values_become_strings() {
        let v = |x| Some(AnyValue { value: Some(x) });
        assert_eq!(
            any_value_string(v(any_value::Value::IntValue(-3)).as_ref()),
            "-3"
        );
        assert_eq!(
            any_value_string(v(any_value::Value::DoubleValue(0.25)).as_ref()),
            "0.25"
        );
        assert_eq!(
            any_value_string(v(any_value::Value::BoolValue(true)).as_ref()),
            "true"
        );
        assert_eq!(
            any_value_string(v(any_value::Value::BytesValue(b"hi!".to_vec())).as_ref()),
            "aGkh"
        );
        assert_eq!(
            any_value_string(v(any_value::Value::BytesValue(b"h".to_vec())).as_ref()),
            "aA=="
        );
    }

    #[test]
    fn clashing_label_names_are_joined_in_key_order() {
        let mut pending: Vec<Pending<'_>> = vec![
            (Name::Borrowed("a_b"), 0, "a_b", Cow::Borrowed("2")),
            (Name::Borrowed("a_b"), 0, "a.b", Cow::Borrowed("1")),
            (Name::Borrowed("job"), 2, "job", Cow::Borrowed("svc")),
            (Name::Borrowed("job"), 0, "job", Cow::Borrowed("mine")),
            (Name::Borrowed("empty"), 0, "empty", Cow::Borrowed("")),
        ];
        let mut out = Vec::new();
        finish_labels(&mut pending, &mut out);
        let got: Vec<(String, String)> = out
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![("a_b".into(), "1;2".into()), ("job".into(), "mine".into())]
        );
    }
}
