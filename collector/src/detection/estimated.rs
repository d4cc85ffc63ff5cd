//! Performance estimated before labels arrive: when a window of a binary classifier that sends
//! scores (`ml.prediction.score`) closes, CBPE (detectors crate, NannyML's method) estimates its
//! accuracy, precision, recall, F1, specificity and ROC AUC from the scores alone, against
//! thresholds from the labelled baseline. A finding per metric (`estimated_performance`) says
//! whether the estimate dropped below its lower threshold; the built-in rule
//! `MillwatchEstimatedPerformanceDrop` alerts on it. When the window's labels arrive later, the
//! realised `performance` findings of the same window stand beside the estimate, with the
//! estimator's own error (`estimation_error`: realised − estimated, within the band or not).
//!
//! CBPE sees what covariate shift does to performance (inputs moving to where the model is
//! less sure); it cannot see concept drift, where only P(y|x) changes: that shows only in the
//! realised performance.

use std::collections::HashMap;

use duckdb::{Connection, params};
use millwatch_detectors::estimation::ChunkValue;
use millwatch_detectors::estimation::cbpe::{
    BinaryOutputs, Calibration, Cbpe, ClassificationMetric,
};
use serde_json::json;

use super::baseline::Baseline;
use super::performance;
use super::results::Finding;
use super::state::ClosedWindow;
use super::task::{binary_class, class_name};
use super::windows::ModelKey;
use crate::signals::Prediction;

/// The reference needs at least this many of its own chunks for its thresholds.
const REFERENCE_CHUNKS: usize = 5;

/// A classifier's output as CBPE needs it: score in [0, 1] and a 0/1 predicted class.
fn binary_output(predicted: &Prediction, score: Option<f64>) -> Option<(f64, bool)> {
    let s = score.filter(|s| (0.0..=1.0).contains(s))?;
    Some((s, binary_class(&class_name(predicted))?))
}

/// The fitted estimator of each model version, once its baseline has enough labels.
#[derive(Default)]
pub struct Estimators {
    fitted: HashMap<ModelKey, Cbpe>,
}

impl Estimators {
    /// The estimated-performance findings of a closed window; none until the baseline has
    /// `min_labels` labelled events with scores and 0/1 classes, at least half of it labelled,
    /// with both classes.
    pub fn findings(
        &mut self,
        conn: &Connection,
        baseline: &Baseline,
        window: &ClosedWindow,
        min_labels: usize,
    ) -> duckdb::Result<Vec<Finding>> {
        let key = &window.key;
        // A window without enough scored 0/1 predictions has nothing to estimate: the
        // baseline's labels are not even read.
        let (scores, predicted) = window_outputs(conn, key, window)?;
        if scores.len() < min_labels {
            return Ok(Vec::new());
        }
        if !self.fitted.contains_key(key) {
            let (Some(first), Some(last)) = (baseline.first_event_id, baseline.last_event_id)
            else {
                return Ok(Vec::new());
            };
            // A baseline taken from another version's events is labelled under that version.
            let of = ModelKey {
                model: key.model.clone(),
                version: baseline.events_version(&key.version).to_owned(),
            };
            let labelled = performance::labelled(conn, &of, first, last)?;
            let rows: Vec<(f64, bool, bool)> = labelled
                .events
                .iter()
                .filter_map(|e| {
                    let (s, p) = binary_output(&e.predicted, e.score)?;
                    Some((s, p, binary_class(&class_name(&e.actual))?))
                })
                .collect();
            if rows.len() < min_labels.max(baseline.data.rows() / 2) {
                return Ok(Vec::new());
            }
            // Thresholds come from reference chunks of the window's size; a baseline too short
            // for `REFERENCE_CHUNKS` of them is cut in smaller chunks, which widens the
            // thresholds (fewer false alarms), never narrows them.
            let chunk = (window.events as usize)
                .min(rows.len() / REFERENCE_CHUNKS)
                .max(1);
            let reference_scores: Vec<f64> = rows.iter().map(|r| r.0).collect();
            let reference_predicted: Vec<bool> = rows.iter().map(|r| r.1).collect();
            let actual: Vec<bool> = rows.iter().map(|r| r.2).collect();
            let fit = Cbpe::fit(
                BinaryOutputs {
                    scores: &reference_scores,
                    predicted: &reference_predicted,
                },
                &actual,
                chunk,
                &ClassificationMetric::ALL,
                Calibration::Auto,
            );
            match fit {
                Ok(cbpe) => {
                    self.fitted.insert(key.clone(), cbpe);
                }
                Err(e) => {
                    tracing::debug!(model = %key.model, version = %key.version, error = %e,
                        "no performance estimate: the labelled baseline does not fit CBPE");
                    return Ok(Vec::new());
                }
            }
        }
        let Some(cbpe) = self.fitted.get(key) else {
            return Ok(Vec::new());
        };
        let outputs = BinaryOutputs {
            scores: &scores,
            predicted: &predicted,
        };
        let Ok(estimates) = cbpe.estimate_chunk(0, 0, outputs) else {
            return Ok(Vec::new());
        };
        Ok(estimates
            .into_iter()
            .filter_map(|(metric, e)| {
                let extra = json!({
                    "events": scores.len(),
                    "calibrated": cbpe.calibration.needs_calibration,
                    "reference_chunk": cbpe.chunk_size,
                });
                estimate_finding("cbpe", metric.name(), &e, false, extra)
            })
            .collect())
    }
}

/// The estimator's own error, once a window's labels are in: for each realised metric that was
/// also estimated for the same window, realised − estimated and whether the realised value lies
/// within the estimate's ±3 SE band (detector `estimation_error`).
pub fn estimation_errors(
    conn: &Connection,
    window: &ClosedWindow,
    realised: &[Finding],
) -> duckdb::Result<Vec<Finding>> {
    let mut stmt = conn.prepare_cached(
        "SELECT feature, statistic, CAST(details->>'lower_confidence_bound' AS DOUBLE), \
         CAST(details->>'upper_confidence_bound' AS DOUBLE) FROM detections \
         WHERE detector = 'estimated_performance' AND model = ? AND version = ? AND first_event_id = ?",
    )?;
    let mut rows = stmt.query(params![
        window.key.model,
        window.key.version,
        window.first_event_id
    ])?;
    let mut estimated: HashMap<String, (f64, Option<f64>, Option<f64>)> = HashMap::new();
    while let Some(r) = rows.next()? {
        let (feature, value): (String, Option<f64>) = (r.get(0)?, r.get(1)?);
        if let Some(v) = value {
            estimated.insert(feature, (v, r.get(2)?, r.get(3)?));
        }
    }
    Ok(realised
        .iter()
        .filter(|f| f.detector == "performance")
        .filter_map(|f| {
            let actual = f.statistic?;
            let &(estimate, low, high) = estimated.get(&f.feature)?;
            let within = low.is_some_and(|l| l <= actual) && high.is_some_and(|h| actual <= h);
            Some(Finding {
                test: "cbpe".into(),
                statistic: Some(actual - estimate),
                verdict: if within {
                    "within_band"
                } else {
                    "outside_band"
                }
                .into(),
                details: json!({
                    "estimated": estimate,
                    "realised": actual,
                    "lower_confidence_bound": low,
                    "upper_confidence_bound": high,
                }),
                ..Finding::new("estimation_error", &f.feature)
            })
        })
        .collect())
}

/// The scores and predicted classes of a window's events, from the store.
fn window_outputs(
    conn: &Connection,
    key: &ModelKey,
    window: &ClosedWindow,
) -> duckdb::Result<(Vec<f64>, Vec<bool>)> {
    let mut stmt = conn.prepare_cached(
        "SELECT prediction, prediction_label, score FROM inferences \
         WHERE model = ? AND version = ? AND event_id BETWEEN ? AND ? ORDER BY event_id",
    )?;
    let mut rows = stmt.query(params![
        key.model,
        key.version,
        window.first_event_id,
        window.last_event_id
    ])?;
    let (mut scores, mut predicted) = (Vec::new(), Vec::new());
    while let Some(r) = rows.next()? {
        let number: Option<f64> = r.get(0)?;
        let class: Option<String> = r.get(1)?;
        let value = class
            .map(Prediction::Class)
            .or_else(|| number.filter(|x| x.is_finite()).map(Prediction::Number));
        let score: Option<f64> = r.get(2)?;
        if let Some((s, p)) = value.and_then(|v| binary_output(&v, score)) {
            scores.push(s);
            predicted.push(p);
        }
    }
    Ok((scores, predicted))
}

/// An estimated metric of a window as a finding: "dropped" past the threshold on its worse side
/// (below the lower one, or above the upper one when a higher value is worse), with the
/// estimate's band and thresholds, and `extra`, in the details.
pub(super) fn estimate_finding(
    test: &str,
    metric: &str,
    e: &ChunkValue,
    higher_is_worse: bool,
    extra: serde_json::Value,
) -> Option<Finding> {
    let value = e.value?;
    let (threshold, dropped) = if higher_is_worse {
        (
            e.thresholds.upper,
            e.thresholds.upper.is_some_and(|u| value > u),
        )
    } else {
        (
            e.thresholds.lower,
            e.thresholds.lower.is_some_and(|l| value < l),
        )
    };
    let mut details = json!({
        "sampling_error": e.sampling_error,
        "lower_confidence_bound": e.lower_confidence_bound,
        "upper_confidence_bound": e.upper_confidence_bound,
        "lower_threshold": e.thresholds.lower,
        "upper_threshold": e.thresholds.upper,
    });
    if let (Some(d), serde_json::Value::Object(extra)) = (details.as_object_mut(), extra) {
        d.extend(extra);
    }
    Some(Finding {
        test: test.into(),
        statistic: Some(value),
        threshold,
        drifted: dropped,
        verdict: if dropped { "dropped" } else { "ok" }.into(),
        details,
        ..Finding::new("estimated_performance", metric)
    })
}
