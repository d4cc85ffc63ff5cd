//! The collector's own families (detector results, self-telemetry): registered by name and
//! type, set or added to by label set, never expired.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::exposition::{ExpositionError, Family, Inner, MetricsExposition, new_family};
use super::names::{MetricType, is_valid_metric_name, sanitize_label_name};
use super::series::{Series, SeriesValue, TextSpan, Upsert};

/// The type of a family the collector publishes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnType {
    /// A value that goes up and down (`set`).
    Gauge,
    /// A monotonic value (`add`); the name must end in `_total`.
    Counter,
    /// A distribution (`set_histogram`), rendered as `_bucket`, `_sum` and `_count`.
    Histogram,
    /// Quantiles of a set of observations (`set_summary`), rendered with a `quantile` label,
    /// `_sum` (when not negative, as for OTLP summaries) and `_count`.
    Summary,
}

/// A family the collector publishes itself (detector results, self-telemetry), from
/// [`MetricsExposition::register`]. Cheap to clone; its series never expire.
#[derive(Debug, Clone)]
pub struct OwnFamily {
    inner: Arc<Inner>,
    family: Arc<Family>,
}

impl MetricsExposition {
    /// Registers (or finds again) a family the collector publishes itself, e.g.
    /// `millwatch_drift_statistic` (gauge) or `millwatch_otlp_points_accepted_total` (counter).
    /// Registering the same name and type twice returns a handle to the same family.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        ty: OwnType,
    ) -> Result<OwnFamily, ExpositionError> {
        if !is_valid_metric_name(name) {
            return Err(ExpositionError::InvalidName(name.to_owned()));
        }
        let mt = match ty {
            OwnType::Gauge => MetricType::Gauge,
            OwnType::Counter => {
                if !name.ends_with("_total") {
                    return Err(ExpositionError::CounterWithoutTotal(name.to_owned()));
                }
                MetricType::Counter
            }
            OwnType::Histogram => MetricType::Histogram,
            OwnType::Summary => MetricType::Summary,
        };
        let mut families = self
            .inner
            .families
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = families.get(name) {
            if existing.own && existing.ty == mt {
                return Ok(OwnFamily {
                    inner: self.inner.clone(),
                    family: existing.clone(),
                });
            }
            return Err(ExpositionError::Conflict {
                name: name.to_owned(),
                existing: format!(
                    "{} {}",
                    if existing.own { "collector" } else { "OTLP" },
                    existing.ty.text_keyword()
                ),
            });
        }
        let family = new_family(name, mt, true, help);
        families.insert(family.name.clone(), family.clone());
        Ok(OwnFamily {
            inner: self.inner.clone(),
            family,
        })
    }
}

/// Sorted, sanitised labels of a collector series; empty values are left out.
fn own_labels<'a>(labels: &'a [(&'a str, &'a str)]) -> Vec<(std::borrow::Cow<'a, str>, &'a str)> {
    let mut out: Vec<_> = labels
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (sanitize_label_name(k), *v))
        .collect();
    out.sort_unstable();
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

impl OwnFamily {
    /// The metric name.
    pub fn name(&self) -> &str {
        &self.family.name
    }

    fn apply(&self, labels: &[(&str, &str)], f: impl Fn(f64) -> f64) {
        self.upsert_value(labels, |old| match old {
            Some(SeriesValue::Number(v)) => SeriesValue::Number(f(*v)),
            Some(other) => other.clone(),
            None => SeriesValue::Number(f(0.0)),
        });
    }

    /// Sets the series with these labels to `value` (label names are sanitised; order does
    /// not matter). Meant for gauges; on a counter it overwrites the running total.
    pub fn set(&self, labels: &[(&str, &str)], value: f64) {
        self.apply(labels, |_| value);
    }

    /// Adds `delta` to the series with these labels, starting from 0.
    pub fn add(&self, labels: &[(&str, &str)], delta: f64) {
        self.apply(labels, |v| v + delta);
    }

    /// Sets the histogram series with these labels: `counts` holds one count per bucket (not
    /// cumulative), `bounds.len() + 1` of them, the last for `+Inf`.
    pub fn set_histogram(&self, labels: &[(&str, &str)], bounds: &[f64], counts: &[u64], sum: f64) {
        debug_assert_eq!(counts.len(), bounds.len() + 1);
        let value = SeriesValue::Histogram {
            bounds: bounds.to_vec(),
            counts: counts.to_vec(),
            sum: Some(sum),
            count: counts.iter().sum(),
        };
        self.upsert_value(labels, |_| value.clone());
    }

    /// Sets the summary series with these labels: `(quantile, value)` pairs, and the sum and
    /// count of the observations.
    pub fn set_summary(
        &self,
        labels: &[(&str, &str)],
        quantiles: &[(f64, f64)],
        sum: f64,
        count: u64,
    ) {
        let value = SeriesValue::Summary {
            quantiles: quantiles.to_vec(),
            sum,
            count,
        };
        self.upsert_value(labels, |_| value.clone());
    }

    /// Finds or creates the series with these labels and gives it `value_of(its old value)`.
    fn upsert_value(
        &self,
        labels: &[(&str, &str)],
        value_of: impl Fn(Option<&SeriesValue>) -> SeriesValue,
    ) {
        let sorted = own_labels(labels);
        let iter = || sorted.iter().map(|(k, v)| (&**k, *v));
        let limit = Some((self.inner.config.max_series_per_metric.get(), Duration::MAX));
        let now = Instant::now();
        let outcome = self.family.lock().upsert(iter, limit, now, |s| match s {
            Some(s) => {
                s.value = value_of(Some(&s.value));
                None
            }
            None => Some(Series {
                text: TextSpan::default(),
                labels: sorted
                    .iter()
                    .map(|(k, v)| (Arc::from(&**k), Box::from(*v)))
                    .collect(),
                value: value_of(None),
                updated: now,
                time_nanos: 0,
                start_nanos: 0,
            }),
        });
        if let Upsert::CardinalityLimit = outcome {
            self.inner.note_series_dropped(&self.family.name, 1);
        }
    }

    /// Removes the series with these labels; true if it existed.
    pub fn remove(&self, labels: &[(&str, &str)]) -> bool {
        let sorted = own_labels(labels);
        let iter = || sorted.iter().map(|(k, v)| (&**k, *v));
        self.family.lock().remove(iter)
    }

    /// Removes every series whose labels include all of `labels` (e.g. one model version's
    /// series before its next window is published); returns how many.
    pub fn clear_where(&self, labels: &[(&str, &str)]) -> usize {
        let want = own_labels(labels);
        self.family.lock().remove_where(|s| {
            want.iter()
                .all(|(k, v)| s.labels.iter().any(|(sk, sv)| **sk == **k && **sv == **v))
        })
    }

    /// Removes every series of this family (e.g. before republishing a model's results).
    pub fn clear(&self) {
        self.family.lock().clear();
    }
}
