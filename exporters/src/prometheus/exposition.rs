//! The live families behind `/metrics`: the settings, the registry of metric families (OTLP
//! and the collector's own) with its drop counters, and expiry of series that stopped arriving.
//! One family's series are kept in [`super::series`]; OTLP points reach them through
//! [`super::ingest`], the collector's own values through [`super::own`].

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::names::MetricType;
use super::series::{FamilyState, Series, SeriesValue, TextSpan};
use super::translate::{DropReason, MetricRef, TranslationConfig, Translator};

/// Settings of the `/metrics` exposition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ExpositionConfig {
    /// A translated OTLP series that receives no point for this long disappears from
    /// `/metrics` (the collector's own series never expire).
    #[serde(with = "crate::units::duration")]
    #[schemars(with = "crate::units::DurationText")]
    pub series_ttl: Duration,
    /// At most this many series per metric family; points of further series are dropped and
    /// counted in `millwatch_prometheus_series_dropped_total{metric}`.
    pub max_series_per_metric: NonZeroUsize,
    /// Expose `_created` samples (start times) for counters, histograms and summaries in the
    /// OpenMetrics format.
    pub emit_created: bool,
    /// How resources and scopes become labels (shared with remote write).
    pub translation: TranslationConfig,
}

impl Default for ExpositionConfig {
    fn default() -> Self {
        Self {
            series_ttl: Duration::from_secs(300),
            max_series_per_metric: NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
            emit_created: false,
            translation: TranslationConfig::default(),
        }
    }
}

/// Errors of the exposition API.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExpositionError {
    /// The name is not a valid Prometheus metric name.
    #[error("`{0}` is not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")]
    InvalidName(String),
    /// Counter names must end in `_total`.
    #[error("counter `{0}` must end in `_total`")]
    CounterWithoutTotal(String),
    /// A family of that name exists with another type or owner.
    #[error("metric `{name}` is already registered as a {existing}")]
    Conflict {
        /// The metric name.
        name: String,
        /// What holds the name now.
        existing: String,
    },
}

#[derive(Debug)]
pub(crate) struct Family {
    pub(crate) name: Arc<str>,
    pub(crate) ty: MetricType,
    /// Published by the collector itself: never expires, never fed from OTLP.
    pub(crate) own: bool,
    pub(crate) state: Mutex<FamilyState>,
}

impl Family {
    pub(crate) fn lock(&self) -> MutexGuard<'_, FamilyState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: ExpositionConfig,
    pub(super) translator: Translator,
    pub(crate) families: RwLock<HashMap<Arc<str>, Arc<Family>>>,
    series_dropped: Arc<Family>,
    points_dropped: Arc<Family>,
    /// Length of the last rendered body, to size the next one.
    pub(crate) last_render_len: AtomicUsize,
    /// Length of the last gzip-compressed body.
    pub(crate) last_gzip_len: AtomicUsize,
}

/// The state behind `/metrics`. Cheap to clone (an `Arc`); `Send + Sync`; ingest and render
/// may run concurrently from many tasks: families are found under a read lock and each family
/// has its own mutex.
#[derive(Debug, Clone)]
pub struct MetricsExposition {
    pub(crate) inner: Arc<Inner>,
}

const SERIES_DROPPED: &str = "millwatch_prometheus_series_dropped_total";
const POINTS_DROPPED: &str = "millwatch_prometheus_points_dropped_total";
pub(super) const TARGET_INFO: &str = "target_info";

pub(super) fn new_family(name: &str, ty: MetricType, own: bool, help: &str) -> Arc<Family> {
    Arc::new(Family {
        name: Arc::from(name),
        ty,
        own,
        state: Mutex::new(FamilyState::new(help.to_owned(), None)),
    })
}

impl Default for MetricsExposition {
    fn default() -> Self {
        Self::new(ExpositionConfig::default())
    }
}

impl MetricsExposition {
    /// An empty exposition with its own drop counters registered.
    pub fn new(config: ExpositionConfig) -> Self {
        let series_dropped = new_family(
            SERIES_DROPPED,
            MetricType::Counter,
            true,
            "Series not exposed because their metric reached the cardinality limit.",
        );
        let points_dropped = new_family(
            POINTS_DROPPED,
            MetricType::Counter,
            true,
            "OTLP points not exposed, by reason (delta_temporality, malformed, type_conflict).",
        );
        // Every reason at 0 from the start: a rate over it is 0, not "no data", on a fresh
        // collector. Series dropped are per metric, so that family starts empty.
        for reason in DropReason::ALL {
            add_to(&points_dropped, &[("reason", reason.as_str())], 0.0);
        }
        let mut families = HashMap::new();
        families.insert(series_dropped.name.clone(), series_dropped.clone());
        families.insert(points_dropped.name.clone(), points_dropped.clone());
        Self {
            inner: Arc::new(Inner {
                translator: Translator::new(config.translation.clone()),
                config,
                families: RwLock::new(families),
                series_dropped,
                points_dropped,
                last_render_len: AtomicUsize::new(0),
                last_gzip_len: AtomicUsize::new(0),
            }),
        }
    }

    /// The settings this exposition runs with.
    pub fn config(&self) -> &ExpositionConfig {
        &self.inner.config
    }

    /// Removes translated OTLP series not updated within the configured TTL. Rendering does
    /// this too; call it periodically when nobody scrapes, to bound memory.
    pub fn expire(&self, now: Instant) {
        let ttl = self.inner.config.series_ttl;
        for family in self.inner.snapshot() {
            if !family.own {
                family.lock().expire(now, ttl);
            }
        }
    }

    /// Number of series currently held (all families, including the collector's own).
    pub fn series_count(&self) -> usize {
        self.inner.snapshot().iter().map(|f| f.lock().len).sum()
    }
}

impl Inner {
    pub(crate) fn snapshot(&self) -> Vec<Arc<Family>> {
        let families = self.families.read().unwrap_or_else(|e| e.into_inner());
        families.values().cloned().collect()
    }

    pub(super) fn note_series_dropped(&self, metric: &str, n: u64) {
        tracing::debug!(metric, n, "series dropped: cardinality limit reached");
        add_to(&self.series_dropped, &[("metric", metric)], n as f64);
    }

    pub(super) fn note_points_dropped(&self, reason: DropReason, n: usize) {
        add_to(
            &self.points_dropped,
            &[("reason", reason.as_str())],
            n as f64,
        );
    }

    /// The family for an OTLP metric, created on first sight; `None` when the name is held by
    /// a family of another type or by the collector.
    pub(super) fn otlp_family(&self, metric: &MetricRef<'_>) -> Option<Arc<Family>> {
        let found = {
            let families = self.families.read().unwrap_or_else(|e| e.into_inner());
            families.get(&metric.name.name).cloned()
        };
        let family = match found {
            Some(f) => f,
            None => {
                let mut families = self.families.write().unwrap_or_else(|e| e.into_inner());
                families
                    .entry(metric.name.name.clone())
                    .or_insert_with(|| {
                        Arc::new(Family {
                            name: metric.name.name.clone(),
                            ty: metric.ty,
                            own: false,
                            state: Mutex::new(FamilyState::new(
                                metric.help.to_owned(),
                                metric.name.unit.clone(),
                            )),
                        })
                    })
                    .clone()
            }
        };
        if family.own || family.ty != metric.ty {
            tracing::warn!(
                metric = &*metric.name.name,
                "metric dropped: its name is already exposed with another type"
            );
            return None;
        }
        Some(family)
    }
}

/// Adds to a counter series of a collector family (creating it); used for the drop counters,
/// which are exempt from the cardinality limit so that counting a drop never drops.
fn add_to(family: &Family, labels: &[(&str, &str)], delta: f64) {
    let now = Instant::now();
    let iter = || labels.iter().map(|(k, v)| (*k, *v));
    family.lock().upsert(iter, None, now, |s| match s {
        Some(s) => {
            if let SeriesValue::Number(v) = &mut s.value {
                *v += delta;
            }
            None
        }
        None => Some(Series {
            text: TextSpan::default(),
            labels: labels
                .iter()
                .map(|(k, v)| (Arc::from(*k), Box::from(*v)))
                .collect(),
            value: SeriesValue::Number(delta),
            updated: now,
            time_nanos: 0,
            start_nanos: 0,
        }),
    });
}
