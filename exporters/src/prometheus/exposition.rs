//! The live series behind `/metrics`: the latest value of every translated OTLP series, the
//! collector's own families, expiry of series that stopped arriving, and a per-metric
//! cardinality limit.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use serde::{Deserialize, Serialize};

use super::names::{MetricType, is_valid_metric_name, sanitize_label_name};
use super::translate::{
    Buckets, DropReason, Label, MetricRef, Point, Sink, TranslationConfig, Translator, Value,
};

/// Settings of the `/metrics` exposition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExpositionConfig {
    /// A translated OTLP series that receives no point for this long disappears from
    /// `/metrics` (the collector's own series never expire).
    #[serde(with = "crate::units::duration")]
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

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SeriesValue {
    Number(f64),
    /// Per-bucket (not cumulative) counts, `bounds.len() + 1` of them.
    Histogram {
        bounds: Vec<f64>,
        counts: Vec<u64>,
        sum: Option<f64>,
        count: u64,
    },
    Summary {
        quantiles: Vec<(f64, f64)>,
        sum: f64,
        count: u64,
    },
}

/// Where the label text of a series lies in its family's [`FamilyState`] texts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TextSpan {
    start: usize,
    end: usize,
}

impl TextSpan {
    fn of(self, texts: &str) -> &str {
        texts.get(self.start..self.end).unwrap_or("")
    }
}

pub(crate) type OwnedLabels = Box<[(Arc<str>, Box<str>)]>;

#[derive(Debug)]
pub(crate) struct Series {
    pub(crate) labels: OwnedLabels,
    /// The labels as rendered between the braces, escaped once at creation (rendering 100k
    /// series then copies bytes instead of formatting them, and sorts by plain byte strings),
    /// kept in the family's `texts`.
    pub(crate) text: TextSpan,
    pub(crate) value: SeriesValue,
    pub(crate) updated: Instant,
    pub(crate) time_nanos: u64,
    pub(crate) start_nanos: u64,
}

/// The slots in [`FamilyState`] of the series with one label hash: almost always one.
#[derive(Debug)]
enum Slots {
    One(u32),
    Many(Vec<u32>),
}

/// Hashes a `u64` key by itself: the keys of the series index are label hashes already.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug, Default)]
pub(crate) struct FamilyState {
    pub(crate) help: String,
    pub(crate) unit: Option<Arc<str>>,
    /// The series; `None` is a free slot, listed in `free`.
    slots: Vec<Option<Series>>,
    /// The label hash of each slot's series.
    keys: Vec<u64>,
    free: Vec<u32>,
    /// The label texts of all series one after the other, in rendering order after each
    /// full sort, so that a render reads them front to back (texts scattered over the heap
    /// cost a cache miss each). `garbage` bytes of it belong to removed series.
    texts: String,
    garbage: usize,
    /// Slots by label hash.
    index: HashMap<u64, Slots, BuildHasherDefault<IdHasher>>,
    /// Occupied slots in rendering order (by label text), kept across scrapes so that a
    /// render sorts only when series were created since the last one.
    order: Vec<u32>,
    /// Slots of series created since the last render, not yet in `order`.
    unordered: Vec<u32>,
    pub(crate) len: usize,
    /// No series was updated before this (a lower bound, exact after each sweep): expiry has
    /// nothing to look at until `oldest + ttl`, so a render does not walk every series.
    oldest: Option<Instant>,
    last_sweep: Option<Instant>,
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
    translator: Translator,
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

/// A family the collector publishes itself (detector results, self-telemetry), from
/// [`MetricsExposition::register`]. Cheap to clone; its series never expire.
#[derive(Debug, Clone)]
pub struct OwnFamily {
    inner: Arc<Inner>,
    family: Arc<Family>,
}

const SERIES_DROPPED: &str = "millwatch_prometheus_series_dropped_total";
const POINTS_DROPPED: &str = "millwatch_prometheus_points_dropped_total";
const TARGET_INFO: &str = "target_info";
const SWEEP_EVERY: Duration = Duration::from_secs(1);

fn hash_labels<'a>(labels: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = DefaultHasher::new();
    for (k, v) in labels {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

fn same_labels<'a>(
    stored: &OwnedLabels,
    mut given: impl Iterator<Item = (&'a str, &'a str)>,
) -> bool {
    stored
        .iter()
        .all(|(k, v)| given.next() == Some((&**k, &**v)))
        && given.next().is_none()
}

enum Upsert {
    Done,
    CardinalityLimit,
}

impl FamilyState {
    fn series_at(&self, slot: u32) -> Option<&Series> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    fn find<'a, I>(&self, key: u64, labels: impl Fn() -> I) -> Option<u32>
    where
        I: Iterator<Item = (&'a str, &'a str)>,
    {
        let matches = |slot: &u32| {
            self.series_at(*slot)
                .is_some_and(|s| same_labels(&s.labels, labels()))
        };
        match self.index.get(&key)? {
            Slots::One(slot) => Some(*slot).filter(matches),
            Slots::Many(slots) => slots.iter().copied().find(matches),
        }
    }

    fn unindex(&mut self, key: u64, slot: u32) {
        let Entry::Occupied(mut entry) = self.index.entry(key) else {
            return;
        };
        match entry.get_mut() {
            Slots::One(s) if *s == slot => {
                entry.remove();
            }
            Slots::One(_) => {}
            Slots::Many(slots) => {
                slots.retain(|s| *s != slot);
                if let [only] = slots[..] {
                    *entry.get_mut() = Slots::One(only);
                } else if slots.is_empty() {
                    entry.remove();
                }
            }
        }
    }

    fn insert(&mut self, key: u64, series: Series) {
        self.oldest = Some(
            self.oldest
                .map_or(series.updated, |o| o.min(series.updated)),
        );
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(series);
                self.keys[slot as usize] = key;
                slot
            }
            None => {
                self.slots.push(Some(series));
                self.keys.push(key);
                (self.slots.len() - 1) as u32
            }
        };
        self.index_slot(key, slot);
        self.unordered.push(slot);
        self.len += 1;
    }

    fn index_slot(&mut self, key: u64, slot: u32) {
        match self.index.entry(key) {
            Entry::Vacant(e) => {
                e.insert(Slots::One(slot));
            }
            Entry::Occupied(mut e) => match e.get_mut() {
                Slots::One(first) => {
                    let first = *first;
                    *e.get_mut() = Slots::Many(vec![first, slot]);
                }
                Slots::Many(slots) => slots.push(slot),
            },
        }
    }

    /// Frees a slot, leaving `order` and `unordered` to the caller.
    fn take(&mut self, slot: u32) -> Option<Series> {
        let series = self.slots.get_mut(slot as usize)?.take()?;
        self.unindex(self.keys[slot as usize], slot);
        self.garbage += series.text.end - series.text.start;
        self.free.push(slot);
        self.len -= 1;
        Some(series)
    }

    /// Drops freed slots from `order` and `unordered`, after removing many series.
    fn forget_freed(&mut self) {
        let slots = &self.slots;
        let live = |slot: &u32| slots.get(*slot as usize).is_some_and(Option::is_some);
        self.order.retain(live);
        self.unordered.retain(live);
        self.removed();
    }

    /// After removals: empties everything when no series is left, and rewrites the label
    /// texts when more than half of them are garbage.
    fn removed(&mut self) {
        if self.len == 0 {
            self.clear();
        } else if self.garbage > 4096 && self.garbage > self.texts.len() / 2 {
            self.lay_out_in_order();
        }
    }

    /// Removes one series, finding it in `order` by binary search.
    fn remove_slot(&mut self, slot: u32) {
        let Some(text) = self.series_at(slot).map(|s| s.text.of(&self.texts)) else {
            return;
        };
        let pos = self.order.binary_search_by(|other| {
            self.series_at(*other)
                .map_or("", |s| s.text.of(&self.texts))
                .cmp(text)
        });
        match pos {
            Ok(pos) if self.order[pos] == slot => {
                self.order.remove(pos);
            }
            _ => {
                let before = self.unordered.len();
                self.unordered.retain(|s| *s != slot);
                if self.unordered.len() == before {
                    // Not where its text says: look everywhere.
                    self.order.retain(|s| *s != slot);
                }
            }
        }
        self.take(slot);
        self.removed();
    }

    /// The series in rendering order (by label text), sorting the ones created since the
    /// last call into place.
    pub(crate) fn ordered(&mut self) -> impl Iterator<Item = (&Series, &str)> {
        if !self.unordered.is_empty() {
            let (slots, texts) = (&self.slots, &self.texts);
            let text = |slot: u32| {
                slots
                    .get(slot as usize)
                    .and_then(Option::as_ref)
                    .map_or("", |s| s.text.of(texts))
            };
            if self.unordered.len() * 16 <= self.order.len() {
                // A few new series: insert each where it belongs.
                for &slot in &self.unordered {
                    let t = text(slot);
                    let pos = self
                        .order
                        .binary_search_by(|other| text(*other).cmp(t))
                        .unwrap_or_else(|p| p);
                    self.order.insert(pos, slot);
                }
            } else {
                self.order.append(&mut self.unordered);
                self.order.sort_unstable_by(|a, b| text(*a).cmp(text(*b)));
                self.lay_out_in_order();
            }
            self.unordered.clear();
        }
        let (slots, texts) = (&self.slots, &self.texts);
        self.order.iter().filter_map(|slot| {
            let s = slots.get(*slot as usize).and_then(Option::as_ref)?;
            Some((s, s.text.of(texts)))
        })
    }

    /// Moves the series into their slots in rendering order (the unordered ones after the
    /// rest) and rewrites their label texts in that order without garbage, so that rendering
    /// reads memory front to back.
    fn lay_out_in_order(&mut self) {
        let mut slots = Vec::with_capacity(self.len);
        let mut keys = Vec::with_capacity(self.len);
        let mut texts = String::with_capacity(self.texts.len() - self.garbage);
        for &slot in self.order.iter().chain(&self.unordered) {
            if let Some(mut s) = self.slots.get_mut(slot as usize).and_then(Option::take) {
                let start = texts.len();
                texts.push_str(s.text.of(&self.texts));
                s.text = TextSpan {
                    start,
                    end: texts.len(),
                };
                slots.push(Some(s));
                keys.push(self.keys[slot as usize]);
            }
        }
        self.texts = texts;
        self.garbage = 0;
        self.slots = slots;
        self.keys = keys;
        self.free.clear();
        let ordered = self.order.len() as u32;
        self.order = (0..ordered).collect();
        self.unordered = (ordered..self.slots.len() as u32).collect();
        self.index.clear();
        for slot in 0..self.keys.len() {
            self.index_slot(self.keys[slot], slot as u32);
        }
    }

    /// Every series, in no particular order.
    fn iter(&self) -> impl Iterator<Item = &Series> {
        self.slots.iter().flatten()
    }

    /// Finds or creates the series with `labels` and applies `update` to it. `update` gets
    /// `None` for a new series.
    fn upsert<'a, I>(
        &mut self,
        labels: impl Fn() -> I,
        limit: Option<(usize, Duration)>,
        now: Instant,
        update: impl FnOnce(Option<&mut Series>) -> Option<Series>,
    ) -> Upsert
    where
        I: Iterator<Item = (&'a str, &'a str)>,
    {
        let key = hash_labels(labels());
        if let Some(slot) = self.find(key, &labels)
            && let Some(s) = self.slots[slot as usize].as_mut()
        {
            update(Some(s));
            let updated = s.updated;
            if self.oldest.is_none_or(|o| updated < o) {
                self.oldest = Some(updated);
            }
            return Upsert::Done;
        }
        if let Some((max, ttl)) = limit
            && self.len >= max
        {
            let due = self
                .last_sweep
                .is_none_or(|t| now.duration_since(t) >= SWEEP_EVERY);
            if due {
                self.last_sweep = Some(now);
                self.expire(now, ttl);
            }
            if self.len >= max {
                return Upsert::CardinalityLimit;
            }
        }
        if let Some(mut new) = update(None) {
            let start = self.texts.len();
            super::render::push_label_text(&mut self.texts, &new.labels);
            new.text = TextSpan {
                start,
                end: self.texts.len(),
            };
            self.insert(key, new);
        }
        Upsert::Done
    }

    fn remove<'a, I>(&mut self, labels: impl Fn() -> I) -> bool
    where
        I: Iterator<Item = (&'a str, &'a str)>,
    {
        let key = hash_labels(labels());
        match self.find(key, labels) {
            Some(slot) => {
                self.remove_slot(slot);
                true
            }
            None => false,
        }
    }

    /// Removes the series `doomed` says so of; returns how many.
    fn remove_where(&mut self, doomed: impl Fn(&Series) -> bool) -> usize {
        let slots: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|slot| self.series_at(*slot).is_some_and(&doomed))
            .collect();
        for slot in &slots {
            self.take(*slot);
        }
        if !slots.is_empty() {
            self.forget_freed();
        }
        slots.len()
    }

    fn expire(&mut self, now: Instant, ttl: Duration) {
        let Some(oldest) = self.oldest else {
            return;
        };
        if now.saturating_duration_since(oldest) < ttl {
            return;
        }
        self.remove_where(|s| now.saturating_duration_since(s.updated) >= ttl);
        self.oldest = self.iter().map(|s| s.updated).min();
    }

    fn clear(&mut self) {
        self.slots.clear();
        self.keys.clear();
        self.texts.clear();
        self.garbage = 0;
        self.free.clear();
        self.index.clear();
        self.order.clear();
        self.unordered.clear();
        self.len = 0;
        self.oldest = None;
    }
}

fn owned_labels(labels: &[Label<'_>], extra: Option<(&str, &str)>) -> OwnedLabels {
    labels
        .iter()
        .map(|(k, v)| (Arc::<str>::from(&**k), Box::<str>::from(&**v)))
        .chain(extra.map(|(k, v)| (Arc::<str>::from(k), Box::<str>::from(v))))
        .collect()
}

fn new_family(name: &str, ty: MetricType, own: bool, help: &str) -> Arc<Family> {
    Arc::new(Family {
        name: Arc::from(name),
        ty,
        own,
        state: Mutex::new(FamilyState {
            help: help.to_owned(),
            ..FamilyState::default()
        }),
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

impl Inner {
    pub(crate) fn snapshot(&self) -> Vec<Arc<Family>> {
        let families = self.families.read().unwrap_or_else(|e| e.into_inner());
        families.values().cloned().collect()
    }

    fn note_series_dropped(&self, metric: &str, n: u64) {
        tracing::debug!(metric, n, "series dropped: cardinality limit reached");
        add_to(&self.series_dropped, &[("metric", metric)], n as f64);
    }

    fn note_points_dropped(&self, reason: DropReason, n: usize) {
        add_to(
            &self.points_dropped,
            &[("reason", reason.as_str())],
            n as f64,
        );
    }

    /// The family for an OTLP metric, created on first sight; `None` when the name is held by
    /// a family of another type or by the collector.
    fn otlp_family(&self, metric: &MetricRef<'_>) -> Option<Arc<Family>> {
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
                            state: Mutex::new(FamilyState {
                                help: metric.help.to_owned(),
                                unit: metric.name.unit.clone(),
                                ..FamilyState::default()
                            }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn series(labels: &[(&str, &str)], now: Instant) -> Series {
        Series {
            text: TextSpan::default(),
            labels: labels
                .iter()
                .map(|(k, v)| (Arc::from(*k), Box::from(*v)))
                .collect(),
            value: SeriesValue::Number(0.0),
            updated: now,
            time_nanos: 0,
            start_nanos: 0,
        }
    }

    /// Inserts under a given label hash, as `upsert` does under the real one.
    fn insert(state: &mut FamilyState, key: u64, labels: &[(&str, &str)], now: Instant) {
        let mut s = series(labels, now);
        let start = state.texts.len();
        super::super::render::push_label_text(&mut state.texts, &s.labels);
        s.text = TextSpan {
            start,
            end: state.texts.len(),
        };
        state.insert(key, s);
    }

    fn texts(state: &mut FamilyState) -> Vec<String> {
        state.ordered().map(|(_, t)| t.to_owned()).collect()
    }

    #[test]
    fn colliding_label_hashes_are_kept_apart() {
        let now = Instant::now();
        let mut state = FamilyState::default();
        const A: &[(&str, &str)] = &[("id", "a")];
        const B: &[(&str, &str)] = &[("id", "b")];
        const C: &[(&str, &str)] = &[("id", "c")];
        let (a, b, c) = (A, B, C);
        let it = |l: &'static [(&'static str, &'static str)]| move || l.iter().copied();
        insert(&mut state, 7, b, now);
        insert(&mut state, 7, a, now);
        insert(&mut state, 7, c, now);
        assert_eq!(texts(&mut state), [r#"id="a""#, r#"id="b""#, r#"id="c""#]);
        assert!(state.find(7, it(a)).is_some());
        assert!(state.find(8, it(a)).is_none());
        let slot_b = state.find(7, it(b)).expect("b");
        state.remove_slot(slot_b);
        assert!(state.find(7, it(b)).is_none());
        assert!(state.find(7, it(a)).is_some() && state.find(7, it(c)).is_some());
        assert_eq!(texts(&mut state), [r#"id="a""#, r#"id="c""#]);
        let slot_a = state.find(7, it(a)).expect("a");
        state.remove_slot(slot_a);
        assert!(matches!(state.index.get(&7), Some(Slots::One(_))));
        assert_eq!(texts(&mut state), [r#"id="c""#]);
        assert_eq!(state.len, 1);
    }

    /// Random creation, updates, removal and expiry against a sorted map: rendering order,
    /// lookups and counts stay right whether new series are merged in one by one or sorted.
    #[test]
    fn order_and_index_follow_a_model() {
        let t0 = Instant::now();
        let mut rng = fastrand::Rng::with_seed(42);
        let mut state = FamilyState::default();
        let mut model: BTreeMap<String, Instant> = BTreeMap::new();
        let ttl = Duration::from_secs(50);
        const LONG: &str = "a label value long enough to make the label texts of 300 series \
                            add up to tens of kilobytes";
        let mut rewrites = 0;
        for step in 0..4000u64 {
            let texts_before = state.texts.len();
            let now = t0 + Duration::from_secs(step / 20);
            let id = rng.u32(0..300).to_string();
            // Long enough for the removed ones to add up to a rewrite of the label texts.
            let labels = [("id", id.as_str()), ("kind", LONG)];
            let mut text = String::new();
            super::super::render::push_label_text(
                &mut text,
                &labels
                    .iter()
                    .map(|(k, v)| (Arc::<str>::from(*k), Box::<str>::from(*v)))
                    .collect::<Vec<_>>(),
            );
            let iter = || labels.iter().copied();
            match rng.u32(0..100) {
                0..70 => {
                    state.upsert(iter, None, now, |s| match s {
                        Some(s) => {
                            s.updated = now;
                            None
                        }
                        None => Some(series(&labels, now)),
                    });
                    model.insert(text, now);
                }
                70..90 => {
                    assert_eq!(state.remove(iter), model.remove(&text).is_some());
                }
                90..93 => {
                    let digit = id.as_bytes()[0];
                    let n = state.remove_where(|s| s.labels[0].1.as_bytes()[0] == digit);
                    let before = model.len();
                    model.retain(|k, _| k.as_bytes()[4] != digit);
                    assert_eq!(n, before - model.len());
                }
                93..96 => {
                    state.expire(now, ttl);
                    model.retain(|_, u| now.saturating_duration_since(*u) < ttl);
                }
                _ => {
                    let want: Vec<&String> = model.keys().collect();
                    assert_eq!(texts(&mut state).iter().collect::<Vec<_>>(), want);
                }
            }
            assert_eq!(state.len, model.len());
            assert_eq!(state.iter().count(), model.len());
            rewrites += usize::from(state.texts.len() < texts_before && state.len > 0);
        }
        assert!(rewrites > 0);
        let want: Vec<&String> = model.keys().collect();
        assert_eq!(texts(&mut state).iter().collect::<Vec<_>>(), want);
        state.clear();
        assert!(texts(&mut state).is_empty());
    }
}
