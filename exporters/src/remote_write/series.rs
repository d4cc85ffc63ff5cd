//! OTLP → remote-write time series, through the same walker as the exposition so names and
//! labels match what a scrape of `/metrics` shows.

use std::collections::HashMap;

use super::proto::{Label, Sample, TimeSeries, WriteRequest};
use crate::prometheus::names::{MetricType, float_label};
use crate::prometheus::translate::{self, DropReason, MetricRef, Point, Sink, Value};

/// Prometheus' staleness marker, sent for OTLP points flagged `NoRecordedValue`.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

pub(crate) struct SeriesSink {
    pub(crate) series: Vec<TimeSeries>,
    pub(crate) samples: usize,
    pub(crate) dropped_delta: usize,
    pub(crate) dropped_other: usize,
    now_ms: i64,
}

impl SeriesSink {
    pub(crate) fn new(now_ms: i64) -> Self {
        Self {
            series: Vec::new(),
            samples: 0,
            dropped_delta: 0,
            dropped_other: 0,
            now_ms,
        }
    }

    fn push(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &[translate::Label<'_>],
        extra: Option<(&str, String)>,
        value: f64,
        ts: i64,
    ) {
        let mut out = Vec::with_capacity(labels.len() + 2);
        out.push(Label {
            name: "__name__".into(),
            value: format!("{name}{suffix}"),
        });
        out.extend(labels.iter().map(|(k, v)| Label {
            name: k.to_string(),
            value: v.to_string(),
        }));
        if let Some((k, v)) = extra {
            out.push(Label {
                name: k.into(),
                value: v,
            });
        }
        out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        self.series.push(TimeSeries {
            labels: out,
            samples: vec![Sample {
                value,
                timestamp: ts,
            }],
        });
        self.samples += 1;
    }
}

impl<'r> Sink<'r> for SeriesSink {
    fn metric(&mut self, _metric: &MetricRef<'r>) -> bool {
        true
    }

    fn point(&mut self, metric: &MetricRef<'r>, point: Point<'_, 'r>) {
        if metric.delta {
            // Accumulating deltas needs per-series state that a forwarder restarts without;
            // the specification allows dropping them.
            self.dropped_delta += 1;
            return;
        }
        let ts = if point.time_nanos == 0 {
            self.now_ms
        } else {
            (point.time_nanos / 1_000_000) as i64
        };
        let stale = f64::from_bits(STALE_NAN);
        let v = |x: f64| if point.no_value { stale } else { x };
        let name = &*metric.name.name;
        let labels = point.labels;
        match point.value {
            Value::Number(x) => self.push(name, "", labels, None, v(x), ts),
            Value::Histogram(b) => {
                let mut cumulative = 0u64;
                for (bound, c) in b.bounds.iter().zip(b.counts.iter()) {
                    cumulative += c;
                    self.push(
                        name,
                        "_bucket",
                        labels,
                        Some(("le", float_label(*bound))),
                        v(cumulative as f64),
                        ts,
                    );
                }
                self.push(
                    name,
                    "_bucket",
                    labels,
                    Some(("le", "+Inf".into())),
                    v(b.count as f64),
                    ts,
                );
                if crate::prometheus::render::histogram_sum_exposed(&b.bounds, b.sum)
                    && let Some(s) = b.sum
                {
                    self.push(name, "_sum", labels, None, v(s), ts);
                }
                self.push(name, "_count", labels, None, v(b.count as f64), ts);
            }
            Value::Summary {
                quantiles,
                sum,
                count,
            } => {
                for q in quantiles {
                    self.push(
                        name,
                        "",
                        labels,
                        Some(("quantile", float_label(q.quantile))),
                        v(q.value),
                        ts,
                    );
                }
                if sum >= 0.0 {
                    self.push(name, "_sum", labels, None, v(sum), ts);
                }
                self.push(name, "_count", labels, None, v(count as f64), ts);
            }
        }
        debug_assert!(metric.ty != MetricType::Info);
    }

    fn target(&mut self, labels: &[translate::Label<'r>], time_nanos: u64) {
        let ts = if time_nanos == 0 {
            self.now_ms
        } else {
            (time_nanos / 1_000_000) as i64
        };
        self.push("target_info", "", labels, None, 1.0, ts);
    }

    fn dropped(&mut self, _metric: &MetricRef<'r>, reason: DropReason, points: usize) {
        match reason {
            DropReason::DeltaTemporality => self.dropped_delta += points,
            _ => self.dropped_other += points,
        }
    }
}

/// Merges series with equal labels and puts each series' samples in timestamp order (one
/// sample per timestamp, the last one queued wins), as receivers require.
pub(crate) fn merge(parts: impl IntoIterator<Item = TimeSeries>) -> WriteRequest {
    let mut index: HashMap<Vec<Label>, usize> = HashMap::new();
    let mut out: Vec<TimeSeries> = Vec::new();
    for ts in parts {
        match index.get(&ts.labels) {
            Some(&i) => out[i].samples.extend(ts.samples),
            None => {
                index.insert(ts.labels.clone(), out.len());
                out.push(ts);
            }
        }
    }
    for ts in &mut out {
        // Stable: among equal timestamps the later-queued sample ends up last.
        ts.samples.sort_by_key(|s| s.timestamp);
        let mut deduped: Vec<Sample> = Vec::with_capacity(ts.samples.len());
        for s in ts.samples.drain(..) {
            match deduped.last_mut() {
                Some(last) if last.timestamp == s.timestamp => *last = s,
                _ => deduped.push(s),
            }
        }
        ts.samples = deduped;
    }
    WriteRequest { timeseries: out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(name: &str, samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: vec![Label {
                name: "__name__".into(),
                value: name.into(),
            }],
            samples: samples
                .iter()
                .map(|(t, v)| Sample {
                    value: *v,
                    timestamp: *t,
                })
                .collect(),
        }
    }

    #[test]
    fn merge_orders_samples_per_series() {
        let req = merge([
            ts("a", &[(3, 3.0)]),
            ts("b", &[(1, 1.0)]),
            ts("a", &[(1, 1.0), (2, 2.0)]),
            ts("a", &[(3, 4.0)]),
        ]);
        assert_eq!(req.timeseries.len(), 2);
        let a = &req.timeseries[0];
        assert_eq!(
            a.samples
                .iter()
                .map(|s| (s.timestamp, s.value))
                .collect::<Vec<_>>(),
            [(1, 1.0), (2, 2.0), (3, 4.0)]
        );
    }
}
