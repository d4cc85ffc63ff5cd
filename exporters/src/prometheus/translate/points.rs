//! One metric's data points as the sink sees them: its Prometheus family and type, the points
//! the specification drops, and histograms as classic buckets.

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, Metric, metric,
    number_data_point,
};

use super::labels::PointLabels;
use super::{Buckets, DropReason, MetricRef, NO_RECORDED_VALUE, Point, Sink, Translator, Value};
use crate::prometheus::names::MetricType;

impl Translator {
    pub(super) fn walk_metric<'r>(
        &self,
        m: &'r Metric,
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
        let mut emit =
            |attrs: &'r [KeyValue], time_nanos: u64, start_nanos: u64, flags: u32, value| {
                let labels = ctx.build(attrs);
                sink.point(
                    &metric_ref,
                    Point {
                        labels,
                        time_nanos,
                        start_nanos,
                        no_value: flags & NO_RECORDED_VALUE != 0,
                        value,
                    },
                );
            };
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
                    emit(
                        &dp.attributes,
                        dp.time_unix_nano,
                        dp.start_time_unix_nano,
                        dp.flags,
                        Value::Number(v),
                    );
                }
            }
            metric::Data::Histogram(h) => {
                for dp in &h.data_points {
                    let Some(buckets) = classic_buckets(dp) else {
                        malformed += 1;
                        continue;
                    };
                    emit(
                        &dp.attributes,
                        dp.time_unix_nano,
                        dp.start_time_unix_nano,
                        dp.flags,
                        Value::Histogram(buckets),
                    );
                }
            }
            metric::Data::ExponentialHistogram(h) => {
                for dp in &h.data_points {
                    emit(
                        &dp.attributes,
                        dp.time_unix_nano,
                        dp.start_time_unix_nano,
                        dp.flags,
                        Value::Histogram(exponential_to_classic(dp)),
                    );
                }
            }
            metric::Data::Summary(s) => {
                for dp in &s.data_points {
                    emit(
                        &dp.attributes,
                        dp.time_unix_nano,
                        dp.start_time_unix_nano,
                        dp.flags,
                        Value::Summary {
                            quantiles: &dp.quantile_values,
                            sum: dp.sum,
                            count: dp.count,
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

pub(super) fn newest_time(m: &Metric) -> Option<u64> {
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
}
