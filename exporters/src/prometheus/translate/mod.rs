//! Walks an OTLP `ExportMetricsServiceRequest` and hands each data point, with its Prometheus
//! family name and its final label set, to a sink: the exposition state or the remote-write
//! encoder. One walker means a series has the same name and labels whether it is scraped or
//! remote-written.
//!
//! Layout: this file holds the types a walk hands over, the resource and scope labels, and the
//! walk itself; `points` (one metric's data points), `labels` (a point's final label set),
//! `values` (attribute values as label values).

mod labels;
mod points;
mod values;

pub(crate) use values::any_value_string;

use std::borrow::Cow;
use std::ops::Deref;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile;
use serde::{Deserialize, Serialize};

use super::names::{MetricType, NameCache, PrometheusName, is_valid_label_name};
use labels::{PointLabels, finish_labels};
use points::newest_time;

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
}
