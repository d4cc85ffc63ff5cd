//! One model version as the engine holds it: its baseline (its own first events, a file, a
//! time range or the previous version's), its open window, and when a window closes.

use std::time::{Duration, Instant};

use millwatch_detectors::dataset::Dataset;

use super::Engine;
use super::settings::{Settings, Shape};
use crate::detection::baseline::{Baseline, Origin};
use crate::detection::config::BaselineSource;
use crate::detection::model_drift;
use crate::detection::prediction::{self, Predictions};
use crate::detection::results::Finding;
use crate::detection::state::ClosedWindow;
use crate::detection::windows::{Event, ModelKey, Selection, Window, read_events};

pub(super) struct ModelState {
    pub(super) settings: Settings,
    pub(super) baseline: Option<Baseline>,
    pub(super) open: Window,
    pub(super) windows_closed: u64,
    pub(super) events_seen: u64,
    pub(super) last_event_id: Option<u64>,
    /// Events since the last decision (sliding count windows).
    pub(super) since_decision: usize,
    /// End of the current time window.
    pub(super) window_end_ns: Option<i64>,
    /// When the engine last took an event of this version (wall clock, not persisted).
    pub(super) last_push: Instant,
}

impl Engine {
    /// A model version seen for the first time: its settings, and its baseline when that does
    /// not come from its own first events.
    pub(super) fn new_model(&self, key: &ModelKey) -> ModelState {
        let settings = Settings::of(&self.config, key);
        let mut baseline = None;
        if let Some(BaselineSource::File(path)) = &settings.baseline_source {
            match crate::offline_drift::read_dataset(path) {
                Ok(data) => {
                    baseline = Some(Baseline {
                        origin: Origin::File(path.display().to_string()),
                        first_event_id: None,
                        last_event_id: None,
                        data,
                    })
                }
                // The version is still watched, against its own first events.
                Err(e) => {
                    tracing::error!(model = %key.model, version = %key.version, file = %path.display(), error = %format!("{e:#}"),
                    "cannot read the baseline file; using the version's first events")
                }
            }
        } else if let Some(BaselineSource::TimeRange(range)) = &settings.baseline_source {
            let nanos = |t: std::time::SystemTime| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            };
            let of = ModelKey {
                model: key.model.clone(),
                version: range.version.clone().unwrap_or_else(|| key.version.clone()),
            };
            let read = read_events(
                &self.conn,
                Selection::Time {
                    key: &of,
                    since_ns: nanos(range.since),
                    until_ns: nanos(range.until),
                },
            );
            match read {
                Ok(events) if events.len() >= settings.drift.min_samples => {
                    let window = Window {
                        events: events.into_iter().map(|(_, e)| e).collect(),
                    };
                    baseline = Some(Baseline {
                        origin: Origin::TimeRange {
                            version: of.version.clone(),
                            since: humantime::format_rfc3339(range.since).to_string(),
                            until: humantime::format_rfc3339(range.until).to_string(),
                        },
                        first_event_id: window.first_event_id(),
                        last_event_id: window.last_event_id(),
                        data: window.dataset(),
                    });
                }
                Ok(events) => {
                    tracing::error!(model = %key.model, version = %key.version, from_version = %of.version, found = events.len(),
                    "the baseline's time range holds too few stored events; using the version's first events")
                }
                Err(e) => tracing::error!(model = %key.model, version = %key.version, error = %e,
                    "cannot read the baseline's time range; using the version's first events"),
            }
        } else if settings.compare_with_previous_version {
            let previous = self
                .models
                .iter()
                .filter(|(k, m)| {
                    k.model == key.model && k.version != key.version && m.baseline.is_some()
                })
                .max_by_key(|(_, m)| m.last_event_id);
            if let Some((k, m)) = previous
                && let Some(b) = &m.baseline
            {
                baseline = Some(Baseline {
                    origin: Origin::PreviousVersion(k.version.clone()),
                    ..b.clone()
                });
            }
        }
        ModelState {
            settings,
            baseline,
            open: Window::default(),
            windows_closed: 0,
            events_seen: 0,
            last_event_id: None,
            since_decision: 0,
            window_end_ns: None,
            last_push: Instant::now(),
        }
    }
}

/// A closed window (or the completed baseline, index 0) and what was found in it.
pub(super) struct Decided {
    pub(super) window: ClosedWindow,
    pub(super) findings: Vec<Finding>,
    /// The window's and the baseline's prediction distributions; none for the baseline.
    pub(super) predictions: Option<Predictions>,
    /// Closed by the clock (a quiet time window), not by an event: no verdict delay to time.
    pub(super) by_clock: bool,
    /// The window's events as a dataset, for the estimators; none for the baseline.
    pub(super) data: Option<Dataset>,
}

impl ModelState {
    /// Adds an event; when that completes the baseline or a window, returns the closed
    /// window's record, findings and prediction distributions (a completed baseline returns
    /// window index 0 and no findings).
    pub(super) fn push(&mut self, key: &ModelKey, event: Event) -> Option<Decided> {
        self.last_push = Instant::now();
        self.events_seen += 1;
        self.last_event_id = Some(event.event_id);
        if self.baseline.is_none() {
            self.open.events.push(event);
            if self.open.len() < self.settings.baseline_events {
                return None;
            }
            let window = std::mem::take(&mut self.open);
            let record = closed(key, 0, &window);
            self.baseline = Some(Baseline {
                origin: Origin::FirstEvents,
                first_event_id: Some(record.first_event_id),
                last_event_id: Some(record.last_event_id),
                data: window.dataset(),
            });
            return Some(Decided {
                window: record,
                findings: Vec::new(),
                predictions: None,
                by_clock: false,
                data: None,
            });
        }
        match self.settings.shape {
            Shape::Count { size, slide } => {
                self.open.events.push(event);
                self.since_decision += 1;
                if self.open.len() > size {
                    let extra = self.open.len() - size;
                    self.open.events.drain(..extra);
                }
                // Decided once full, then every `slide` events (`since_decision` counts from
                // the baseline, so the first full window is due at once).
                let due = self.open.len() == size && self.since_decision >= slide;
                if !due {
                    return None;
                }
                self.since_decision = 0;
                self.windows_closed += 1;
                let baseline = self.baseline.as_ref()?;
                let out = decide(
                    key,
                    baseline,
                    &self.settings,
                    &self.open,
                    self.windows_closed,
                );
                if slide == size {
                    self.open.events.clear();
                }
                Some(out)
            }
            Shape::Time { size, slide } => {
                let t = event.time_ns;
                let end = *self.window_end_ns.get_or_insert_with(|| next_end(t, slide));
                let out = if t >= end {
                    self.close_time_window(key, end, size, next_end(t, slide))
                } else {
                    None
                };
                self.open.events.push(event);
                out
            }
        }
    }

    /// Decides the time window ending at `end` (if it holds events) and moves on to the one
    /// ending at `next_end`.
    fn close_time_window(
        &mut self,
        key: &ModelKey,
        end: i64,
        size: i64,
        next_end: i64,
    ) -> Option<Decided> {
        let start = end.saturating_sub(size);
        let window = Window {
            events: self
                .open
                .events
                .iter()
                .filter(|e| e.time_ns >= start && e.time_ns < end)
                .cloned()
                .collect(),
        };
        let mut out = None;
        if let Some(baseline) = &self.baseline
            && !window.is_empty()
        {
            self.windows_closed += 1;
            out = Some(decide(
                key,
                baseline,
                &self.settings,
                &window,
                self.windows_closed,
            ));
        }
        self.window_end_ns = Some(next_end);
        let keep_from = next_end.saturating_sub(size);
        self.open.events.retain(|e| e.time_ns >= keep_from);
        out
    }

    /// A time window whose end has passed (by the clock, `now_ns`) and whose version sent
    /// nothing for `grace` is decided without waiting for an event of the next window.
    pub(super) fn close_quiet(
        &mut self,
        key: &ModelKey,
        now_ns: i64,
        grace: Duration,
    ) -> Option<Decided> {
        let Shape::Time { size, slide } = self.settings.shape else {
            return None;
        };
        let end = self.window_end_ns?;
        let grace_ns = i64::try_from(grace.as_nanos()).unwrap_or(i64::MAX);
        if self.baseline.is_none()
            || self.last_push.elapsed() < grace
            || now_ns < end.saturating_add(grace_ns)
        {
            return None;
        }
        // The first end after the grace period; later events are late for the closed window.
        let next = next_end(now_ns.saturating_sub(grace_ns), slide).max(end.saturating_add(slide));
        let mut decided = self.close_time_window(key, end, size, next)?;
        decided.by_clock = true;
        Some(decided)
    }
}

/// The end of the time window that holds time `t`: the next multiple of `slide` after it.
fn next_end(t: i64, slide: i64) -> i64 {
    t.div_euclid(slide)
        .saturating_mul(slide)
        .saturating_add(slide)
}

/// Drift, data quality and prediction distribution of a closed window against the baseline.
fn decide(
    key: &ModelKey,
    baseline: &Baseline,
    settings: &Settings,
    window: &Window,
    index: u64,
) -> Decided {
    let data = window.dataset();
    Decided {
        window: closed(key, index, window),
        findings: model_drift::evaluate(&baseline.data, &data, &settings.drift),
        predictions: Some(prediction::summarise(&baseline.data, &data)),
        by_clock: false,
        data: Some(data),
    }
}

/// The record of a closed window (or of the baseline, index 0).
fn closed(key: &ModelKey, index: u64, window: &Window) -> ClosedWindow {
    let (start_ns, end_ns) = window.time_bounds();
    ClosedWindow {
        key: key.clone(),
        index,
        first_event_id: window.first_event_id().unwrap_or(0),
        last_event_id: window.last_event_id().unwrap_or(0),
        start_ns,
        end_ns,
        events: window.len() as u64,
        labelled: 0,
    }
}
