//! Streaming change detectors in the live engine (`detection.streams`): per model version, one
//! value per event fed to a detector of the detectors crate, a change found within events
//! rather than at a window's close.
//!
//! - `correctness`: 1 for a wrong prediction, 0 for a right one, fed as the labels arrive (in
//!   the order they are stored) to DDM, EDDM or HDDM-A. Regressors' labels are not fed.
//! - `prediction` or `{feature: NAME}`: a numeric prediction or feature, fed as the events are
//!   taken, to ADWIN, Page-Hinkley or KSWIN (an alternative to a window's drift test or a
//!   control chart).
//!
//! A change is a finding `stream_change` (test: the detector's kind, feature: the stream) about
//! the event at which it was signalled; the built-in rule `MillwatchStreamChange` (enabled in
//! `alerting.builtin.stream_change`) alerts on it.
//! The detectors start afresh after each change and at every start of the collector (their
//! state is not persisted; labels stored before the start are not fed). Nothing is watched
//! unless configured; with the detectors' default parameters a stable stream raises no alarm
//! (measured in `detectors/README.md` and in the engine test `streams`).

use std::collections::HashMap;

use duckdb::{Connection, params};
use millwatch_detectors::stream::{ChangeDetector, DetectorConfig, Signal, StreamDetector};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::results::{Finding, Scope};
use super::task::{binary_class, class_name};
use super::windows::{Event, ModelKey, Value};
use crate::signals::Prediction;

/// One streaming detector on one model's per-event stream (each version gets its own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// The model watched.
    pub model: String,
    /// What is fed, one value per event: `correctness` (1 for a wrong prediction, 0 for a right
    /// one, as labels arrive), `prediction` (a numeric prediction) or `{feature: NAME}` (a
    /// numeric feature).
    pub stream: StreamSource,
    /// The detector, with its parameters: `{kind: hddm_a}`, `{kind: ddm}`, `{kind: eddm}` for
    /// `correctness`; `{kind: adwin}`, `{kind: page_hinkley}`, `{kind: kswin}` for numeric
    /// streams. Parameters left out take Millwatch's defaults (no alarm on stable streams).
    pub detector: DetectorConfig,
}

/// What a stream detector is fed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StreamSource {
    /// 1 for a wrong prediction, 0 for a right one, as labels arrive.
    Correctness,
    /// The event's numeric prediction.
    Prediction,
    /// The event's numeric feature of this name.
    Feature(String),
}

impl StreamSource {
    fn name(&self) -> &str {
        match self {
            StreamSource::Correctness => "correctness",
            StreamSource::Prediction => "ml.prediction",
            StreamSource::Feature(f) => f,
        }
    }
}

fn kind(d: &DetectorConfig) -> &'static str {
    match d {
        DetectorConfig::Adwin(_) => "adwin",
        DetectorConfig::PageHinkley(_) => "page_hinkley",
        DetectorConfig::Ddm(_) => "ddm",
        DetectorConfig::Eddm(_) => "eddm",
        DetectorConfig::HddmA(_) => "hddm_a",
        DetectorConfig::Kswin(_) => "kswin",
    }
}

impl StreamConfig {
    /// Refuses a detector that cannot read the stream, or parameters outside their domain.
    pub fn check(&self) -> Result<(), String> {
        let binary = matches!(
            self.detector,
            DetectorConfig::Ddm(_) | DetectorConfig::Eddm(_) | DetectorConfig::HddmA(_)
        );
        let correctness = self.stream == StreamSource::Correctness;
        if binary != correctness {
            return Err(format!(
                "streams: model {}: {} reads {}; use {} for the stream {}",
                self.model,
                kind(&self.detector),
                if binary {
                    "0/1 errors (stream: correctness)"
                } else {
                    "numbers (stream: prediction or {feature: NAME})"
                },
                if correctness {
                    "ddm, eddm or hddm_a"
                } else {
                    "adwin, page_hinkley or kswin"
                },
                self.stream.name()
            ));
        }
        self.detector
            .build()
            .map(|_| ())
            .map_err(|e| format!("streams: model {}: {e}", self.model))
    }
}

/// The `streams:` list, each entry checked.
pub fn checked<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<StreamConfig>, D::Error> {
    let streams = Vec::<StreamConfig>::deserialize(d)?;
    for s in &streams {
        s.check().map_err(serde::de::Error::custom)?;
    }
    Ok(streams)
}

/// One running detector and how many values it took since its last change.
struct Running {
    detector: StreamDetector,
    fed: u64,
}

/// The configured stream detectors, one per (entry, model version), built on first use.
pub struct Streams {
    configs: Vec<StreamConfig>,
    running: HashMap<(usize, ModelKey), Running>,
    /// The last `feedback` row (by rowid) whose correctness was fed.
    feedback_cursor: Option<i64>,
}

impl Streams {
    /// The detectors of `configs`; labels already stored are not fed.
    pub fn open(conn: &Connection, configs: Vec<StreamConfig>) -> duckdb::Result<Streams> {
        let feedback_cursor = if configs
            .iter()
            .any(|c| c.stream == StreamSource::Correctness)
        {
            conn.query_row("SELECT max(rowid) FROM feedback", [], |r| r.get(0))?
        } else {
            None
        };
        Ok(Streams {
            configs,
            running: HashMap::new(),
            feedback_cursor,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }

    /// Feeds `x` to entry `index`'s detector of `key`; a finding when it signals a change.
    fn feed(
        &mut self,
        index: usize,
        key: &ModelKey,
        x: f64,
        at: (u64, i64),
    ) -> Option<(Scope, Finding)> {
        let config = &self.configs[index];
        let running = match self.running.entry((index, key.clone())) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(Running {
                // Checked when the configuration was read.
                detector: config.detector.build().ok()?,
                fed: 0,
            }),
        };
        if !running.detector.accepts(x) {
            return None;
        }
        running.fed += 1;
        if running.detector.update(x) != Signal::Drift {
            return None;
        }
        let fed = std::mem::take(&mut running.fed);
        let (event_id, time_ns) = at;
        let scope = Scope {
            model: Some(key.model.clone()),
            version: Some(key.version.clone()),
            window_start_ns: Some(time_ns),
            window_end_ns: Some(time_ns),
            first_event_id: Some(event_id),
            last_event_id: Some(event_id),
        };
        let finding = Finding {
            test: kind(&config.detector).into(),
            statistic: Some(fed as f64),
            drifted: true,
            verdict: "changed".into(),
            details: json!({
                "stream": config.stream.name(),
                "observations_since_start": fed,
                "value": x,
                "detector": config.detector,
            }),
            ..Finding::new("stream_change", config.stream.name())
        };
        Some((scope, finding))
    }

    /// Feeds an event taken by the engine to the numeric streams of its model.
    pub fn event(&mut self, key: &ModelKey, event: &Event) -> Vec<(Scope, Finding)> {
        let mut out = Vec::new();
        for index in 0..self.configs.len() {
            let c = &self.configs[index];
            if c.model != key.model {
                continue;
            }
            let value = match &c.stream {
                StreamSource::Correctness => continue,
                StreamSource::Prediction => Some(&event.prediction),
                StreamSource::Feature(name) => event
                    .names
                    .iter()
                    .position(|n| n.as_ref() == name.as_str())
                    .and_then(|i| event.values.get(i)),
            };
            if let Some(Value::Number(x)) = value
                && let Some(found) = self.feed(index, key, *x, (event.event_id, event.time_ns))
            {
                out.push(found);
            }
        }
        out
    }

    /// Feeds the correctness of the labels stored since the last call, in the order stored.
    pub fn labels(&mut self, conn: &Connection) -> duckdb::Result<Vec<(Scope, Finding)>> {
        let watched: Vec<usize> = (0..self.configs.len())
            .filter(|&i| self.configs[i].stream == StreamSource::Correctness)
            .collect();
        if watched.is_empty() {
            return Ok(Vec::new());
        }
        let mut stmt = conn.prepare_cached(
            "SELECT f.rowid, i.model, i.version, i.event_id, epoch_ns(i.time), i.prediction, \
             i.prediction_label, f.label, f.label_class FROM feedback f \
             JOIN inferences i ON i.inference_id = f.inference_id AND i.model = f.model \
             WHERE f.rowid > ? ORDER BY f.rowid LIMIT 50000",
        )?;
        let mut rows = stmt.query(params![self.feedback_cursor.unwrap_or(-1)])?;
        let mut fed: Vec<(ModelKey, u64, i64, f64)> = Vec::new();
        while let Some(r) = rows.next()? {
            self.feedback_cursor = Some(r.get(0)?);
            let key = ModelKey {
                model: r.get(1)?,
                version: r.get(2)?,
            };
            let predicted = prediction(r.get(5)?, r.get(6)?);
            let actual = prediction(r.get(7)?, r.get(8)?);
            if let (Some(p), Some(a)) = (predicted, actual)
                && let Some(wrong) = wrong(&p, &a)
            {
                fed.push((key, r.get(3)?, r.get(4)?, if wrong { 1.0 } else { 0.0 }));
            }
        }
        let mut out = Vec::new();
        for (key, event_id, time_ns, error) in fed {
            for &index in &watched {
                if self.configs[index].model == key.model
                    && let Some(found) = self.feed(index, &key, error, (event_id, time_ns))
                {
                    out.push(found);
                }
            }
        }
        Ok(out)
    }
}

fn prediction(number: Option<f64>, class: Option<String>) -> Option<Prediction> {
    class
        .map(Prediction::Class)
        .or_else(|| number.filter(|x| x.is_finite()).map(Prediction::Number))
}

/// Whether a classifier's prediction was wrong; none for a regressor's numbers.
fn wrong(predicted: &Prediction, actual: &Prediction) -> Option<bool> {
    let (p, a) = (class_name(predicted), class_name(actual));
    match (binary_class(&p), binary_class(&a)) {
        (Some(p), Some(a)) => Some(p != a),
        _ if matches!(
            (predicted, actual),
            (Prediction::Number(_), Prediction::Number(_))
        ) =>
        {
            None
        }
        _ => Some(p != a),
    }
}
