//! How one model version is watched: the `detection:` defaults with its `models:` entry over
//! them.

use std::collections::HashSet;

use millwatch_detectors::drift::ColumnOverride;

use crate::detection::config::{BaselineSource, DetectionConfig};
use crate::detection::model_drift::DriftSettings;
use crate::detection::windows::ModelKey;

/// How one model version is watched, from the defaults and its `models:` entry.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) baseline_events: usize,
    pub(super) shape: Shape,
    pub(super) baseline_source: Option<BaselineSource>,
    pub(super) compare_with_previous_version: bool,
    pub(super) drift: DriftSettings,
}

/// How windows are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// The newest `size` events, decided every `slide` events (tumbling when equal).
    Count { size: usize, slide: usize },
    /// Events whose time is in `[end - size, end)`, with an end every `slide` ns (tumbling
    /// when equal); decided when the first event at or past `end` arrives.
    Time { size: i64, slide: i64 },
}

impl Settings {
    /// The settings of the model version `key`: its `models:` entry over the defaults.
    pub(super) fn of(c: &DetectionConfig, key: &ModelKey) -> Settings {
        // A version-specific entry wins over one for every version.
        let entry = c
            .models
            .iter()
            .filter(|m| m.name == key.model && m.version.as_ref().is_none_or(|v| *v == key.version))
            .max_by_key(|m| m.version.is_some());
        let (baseline_events, baseline_source) = match entry.and_then(|m| m.baseline.as_ref()) {
            Some(BaselineSource::FirstEvents(n)) => (n.get(), None),
            Some(other) => (c.baseline_events.get(), Some(other.clone())),
            None => (c.baseline_events.get(), None),
        };
        let shape = match entry.and_then(|m| m.window_duration) {
            Some(d) => {
                let size = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
                let slide = entry
                    .and_then(|m| m.slide_duration)
                    .map_or(size, |s| i64::try_from(s.as_nanos()).unwrap_or(size));
                Shape::Time { size, slide }
            }
            None => {
                let size = entry
                    .and_then(|m| m.window_events)
                    .unwrap_or(c.window_events)
                    .get();
                let slide = entry
                    .and_then(|m| m.slide_events)
                    .map_or(size, |s| s.get().min(size));
                Shape::Count { size, slide }
            }
        };
        Settings {
            baseline_events,
            shape,
            baseline_source,
            compare_with_previous_version: entry.is_some_and(|m| m.compare_with_previous_version),
            drift: DriftSettings {
                rule: c.rule.rule(),
                min_samples: entry
                    .and_then(|m| m.min_samples)
                    .unwrap_or(c.min_samples)
                    .get(),
                ignore: entry
                    .map(|m| m.ignore_features.iter().cloned().collect())
                    .unwrap_or_else(HashSet::new),
                overrides: entry
                    .map(|m| {
                        m.features
                            .iter()
                            .map(|(name, f)| {
                                (
                                    name.clone(),
                                    ColumnOverride {
                                        test: f.test.map(|t| t.0),
                                        threshold: f.threshold,
                                    },
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            },
        }
    }
}
