//! The OTLP ingest path: translated points become the latest value of their series, delta
//! sums and histograms accumulated into cumulative ones, `target_info` from resources.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

use super::exposition::{Family, Inner, MetricsExposition, TARGET_INFO, new_family};
use super::names::MetricType;
use super::series::{OwnedLabels, Series, SeriesValue, TextSpan, Upsert};
use super::translate::{Buckets, DropReason, Label, MetricRef, Point, Sink, Value};

impl MetricsExposition {
    /// Keeps the latest value of every series in `req`, translated as the OpenTelemetry
    /// specification says. `now` stamps the series for expiry. Delta monotonic sums and delta
    /// histograms are accumulated into cumulative values from the first point seen; delta
    /// non-monotonic sums and delta exponential histograms are dropped (both per the
    /// specification) and counted in `millwatch_prometheus_points_dropped_total{reason}`.
    pub fn ingest(&self, req: &ExportMetricsServiceRequest, now: Instant) {
        let mut sink = IngestSink {
            inner: &self.inner,
            now,
            family: None,
            dropped_series: Vec::new(),
        };
        self.inner.translator.walk(req, &mut sink);
        let dropped = std::mem::take(&mut sink.dropped_series);
        for (name, n) in dropped {
            self.inner.note_series_dropped(&name, n);
        }
    }
}

fn owned_labels(labels: &[Label<'_>], extra: Option<(&str, &str)>) -> OwnedLabels {
    labels
        .iter()
        .map(|(k, v)| (Arc::<str>::from(&**k), Box::<str>::from(&**v)))
        .chain(extra.map(|(k, v)| (Arc::<str>::from(k), Box::<str>::from(v))))
        .collect()
}

struct IngestSink<'e> {
    inner: &'e Inner,
    now: Instant,
    family: Option<Arc<Family>>,
    dropped_series: Vec<(Arc<str>, u64)>,
}

impl IngestSink<'_> {
    fn limit(&self) -> Option<(usize, Duration)> {
        Some((
            self.inner.config.max_series_per_metric.get(),
            self.inner.config.series_ttl,
        ))
    }

    fn count_dropped(&mut self, name: &Arc<str>) {
        match self.dropped_series.last_mut() {
            Some((n, c)) if Arc::ptr_eq(n, name) => *c += 1,
            _ => self.dropped_series.push((name.clone(), 1)),
        }
    }
}

fn histogram_value(b: &Buckets<'_>) -> SeriesValue {
    SeriesValue::Histogram {
        bounds: b.bounds.to_vec(),
        counts: b.counts.to_vec(),
        sum: b.sum,
        count: b.count,
    }
}

impl<'r> Sink<'r> for IngestSink<'_> {
    fn metric(&mut self, metric: &MetricRef<'r>) -> bool {
        self.family = self.inner.otlp_family(metric);
        self.family.is_some()
    }

    fn point(&mut self, metric: &MetricRef<'r>, point: Point<'_, 'r>) {
        let Some(family) = self.family.clone() else {
            return;
        };
        let labels = point.labels;
        let iter = || labels.iter().map(|(k, v)| (&**k, &**v));
        let mut state = family.lock();
        if point.no_value {
            // The series went stale at the source.
            state.remove(iter);
            return;
        }
        if state.help.is_empty() && !metric.help.is_empty() {
            state.help = metric.help.to_owned();
        }
        let now = self.now;
        let delta = metric.delta;
        let limit = self.limit();
        let outcome = state.upsert(iter, limit, now, |existing| {
            let new_value = |prev: Option<&SeriesValue>| -> SeriesValue {
                match (&point.value, prev) {
                    (Value::Number(v), Some(SeriesValue::Number(old))) if delta => {
                        SeriesValue::Number(old + v)
                    }
                    (Value::Number(v), _) => SeriesValue::Number(*v),
                    (
                        Value::Histogram(b),
                        Some(SeriesValue::Histogram {
                            bounds,
                            counts,
                            sum,
                            count,
                        }),
                    ) if delta && *bounds == *b.bounds => SeriesValue::Histogram {
                        bounds: bounds.clone(),
                        counts: counts
                            .iter()
                            .zip(b.counts.iter())
                            .map(|(a, b)| a + b)
                            .collect(),
                        sum: match (sum, b.sum) {
                            (Some(a), Some(b)) => Some(a + b),
                            _ => None,
                        },
                        count: count + b.count,
                    },
                    (Value::Histogram(b), _) => histogram_value(b),
                    (
                        Value::Summary {
                            quantiles,
                            sum,
                            count,
                        },
                        _,
                    ) => SeriesValue::Summary {
                        quantiles: quantiles.iter().map(|q| (q.quantile, q.value)).collect(),
                        sum: *sum,
                        count: *count,
                    },
                }
            };
            match existing {
                Some(s) => {
                    // Keep the latest cumulative value; late points are ignored.
                    if !delta && point.time_nanos < s.time_nanos {
                        return None;
                    }
                    s.value = new_value(Some(&s.value));
                    s.updated = now;
                    s.time_nanos = s.time_nanos.max(point.time_nanos);
                    if !delta || s.start_nanos == 0 {
                        s.start_nanos = point.start_nanos;
                    }
                    None
                }
                None => Some(Series {
                    text: TextSpan::default(),
                    labels: owned_labels(labels, None),
                    value: new_value(None),
                    updated: now,
                    time_nanos: point.time_nanos,
                    start_nanos: point.start_nanos,
                }),
            }
        });
        drop(state);
        if let Upsert::CardinalityLimit = outcome {
            self.count_dropped(&family.name);
        }
    }

    fn target(&mut self, labels: &[Label<'r>], time_nanos: u64) {
        let family = {
            let families = self
                .inner
                .families
                .read()
                .unwrap_or_else(|e| e.into_inner());
            families.get(TARGET_INFO).cloned()
        };
        let family = match family {
            Some(f) => f,
            None => {
                let mut families = self
                    .inner
                    .families
                    .write()
                    .unwrap_or_else(|e| e.into_inner());
                families
                    .entry(Arc::from(TARGET_INFO))
                    .or_insert_with(|| {
                        new_family(TARGET_INFO, MetricType::Info, false, "Target metadata")
                    })
                    .clone()
            }
        };
        if family.ty != MetricType::Info {
            return;
        }
        let now = self.now;
        let limit = self.limit();
        let iter = || labels.iter().map(|(k, v)| (&**k, &**v));
        let outcome = family
            .lock()
            .upsert(iter, limit, now, |existing| match existing {
                Some(s) => {
                    s.updated = now;
                    s.time_nanos = s.time_nanos.max(time_nanos);
                    None
                }
                None => Some(Series {
                    text: TextSpan::default(),
                    labels: owned_labels(labels, None),
                    value: SeriesValue::Number(1.0),
                    updated: now,
                    time_nanos,
                    start_nanos: 0,
                }),
            });
        if let Upsert::CardinalityLimit = outcome {
            self.count_dropped(&family.name);
        }
    }

    fn dropped(&mut self, _metric: &MetricRef<'r>, reason: DropReason, points: usize) {
        self.inner.note_points_dropped(reason, points);
    }
}
