//! Metrics export requests: every data point of every OTLP metric type becomes one row.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, metric::Data, number_data_point,
};

use opentelemetry_proto::tonic::common::v1::KeyValue;

use super::{Context, KnownIds, Rejections, is_known, nanos, non_empty, time_or};
use crate::signals::attributes::{attributes_hash, attributes_json};
use crate::signals::*;

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
