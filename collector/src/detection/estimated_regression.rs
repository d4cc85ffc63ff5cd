//! Performance of a regressor estimated before labels arrive: when a window of a regressor
//! closes, DLE (detectors crate, NannyML's direct loss estimation) estimates its MAE and RMSE
//! from the features and predictions alone, with nanny models fitted on the labelled baseline's
//! absolute and squared errors. A finding per metric (`estimated_performance`, test `dle`) says
//! whether the estimated error rose above the baseline's upper threshold; the built-in rule
//! `MillwatchEstimatedPerformanceDrop` alerts on it. When the window's labels arrive, the
//! estimator's own error is reported beside the realised MAE and RMSE (`estimation_error`,
//! as for CBPE).
//!
//! Like CBPE, DLE sees what covariate shift does to the errors (inputs moving to where the
//! model erred more in the baseline), not concept drift.

use std::collections::{HashMap, HashSet};

use duckdb::{Connection, params};
use millwatch_detectors::dataset::{ColumnValues, Dataset};
use millwatch_detectors::estimation::ChunkValue;
use millwatch_detectors::estimation::dle::{Dle, NannySettings, RegressionMetric};
use serde_json::json;

use super::baseline::Baseline;
use super::performance;
use super::results::Finding;
use super::state::ClosedWindow;
use super::task::{self, Task};
use super::windows::{ModelKey, PREDICTION, Selection, Value, Window, read_events};

/// The reference needs at least this many of its own chunks for its thresholds.
const REFERENCE_CHUNKS: usize = 5;

/// The fitted nanny models of each regressor version, once its baseline has enough labels.
#[derive(Default)]
pub struct RegressionEstimators {
    fitted: HashMap<ModelKey, Dle>,
    /// Versions whose labelled baseline shows a classifier: nothing to estimate with DLE.
    not_regressors: HashSet<ModelKey>,
}

impl RegressionEstimators {
    /// The estimated MAE and RMSE of a closed window (its events as `data`); none until the
    /// baseline has `min_labels` labelled events with numeric predictions and labels, at least
    /// half of it labelled.
    pub fn findings(
        &mut self,
        conn: &Connection,
        baseline: &Baseline,
        window: &ClosedWindow,
        data: &Dataset,
        min_labels: usize,
    ) -> duckdb::Result<Vec<Finding>> {
        let key = &window.key;
        if self.not_regressors.contains(key) {
            return Ok(Vec::new());
        }
        let (rows, predicted) = numeric_predictions(data);
        if rows.len() < min_labels {
            return Ok(Vec::new());
        }
        if !self.fitted.contains_key(key) {
            match self.fit(conn, key, baseline, window, min_labels)? {
                Fit::Fitted(dle) => {
                    self.fitted.insert(key.clone(), dle);
                }
                Fit::NotRegressor => {
                    self.not_regressors.insert(key.clone());
                    return Ok(Vec::new());
                }
                Fit::NotYet => return Ok(Vec::new()),
            }
        }
        let Some(dle) = self.fitted.get(key) else {
            return Ok(Vec::new());
        };
        let window_data = data.select_rows(&rows);
        let Ok(metrics) = dle.estimate_chunk(&window_data, &predicted) else {
            return Ok(Vec::new());
        };
        Ok(metrics
            .into_iter()
            .filter_map(|(metric, e)| finding(metric, &e, dle.chunk_size))
            .collect())
    }

    /// Fits the nanny models on the labelled events of the baseline.
    fn fit(
        &self,
        conn: &Connection,
        key: &ModelKey,
        baseline: &Baseline,
        window: &ClosedWindow,
        min_labels: usize,
    ) -> duckdb::Result<Fit> {
        let (Some(first), Some(last)) = (baseline.first_event_id, baseline.last_event_id) else {
            return Ok(Fit::NotYet);
        };
        let of = ModelKey {
            model: key.model.clone(),
            version: baseline.events_version(&key.version).to_owned(),
        };
        let labelled = performance::labelled(conn, &of, first, last)?;
        if labelled.len() < min_labels.max(baseline.data.rows() / 2) {
            return Ok(Fit::NotYet);
        }
        if task::decide(&labelled, None).task != Task::Regression {
            return Ok(Fit::NotRegressor);
        }
        let labels = numeric_labels(conn, &of, first, last)?;
        let events: Vec<_> = read_events(
            conn,
            Selection::Range {
                key: &of,
                first,
                last,
            },
        )?
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| {
            labels.contains_key(&e.event_id)
                && matches!(e.prediction, Value::Number(p) if p.is_finite())
        })
        .collect();
        let actual: Vec<f64> = events.iter().map(|e| labels[&e.event_id]).collect();
        let reference = Window { events }.dataset();
        let (_, predicted) = numeric_predictions(&reference);
        if predicted.len() < min_labels {
            return Ok(Fit::NotYet);
        }
        let features: Vec<&str> = reference
            .columns()
            .iter()
            .map(|c| c.name.as_str())
            .filter(|n| *n != PREDICTION)
            .collect();
        // Thresholds come from reference chunks of the window's size; a baseline too short for
        // `REFERENCE_CHUNKS` of them is cut in smaller chunks (wider thresholds).
        let chunk = (window.events as usize)
            .min(predicted.len() / REFERENCE_CHUNKS)
            .max(1);
        match Dle::fit(
            &reference,
            &features,
            &predicted,
            &actual,
            chunk,
            &RegressionMetric::ALL,
            NannySettings::default(),
        ) {
            Ok(dle) => Ok(Fit::Fitted(dle)),
            Err(e) => {
                tracing::debug!(model = %key.model, version = %key.version, error = %e,
                    "no performance estimate: the labelled baseline does not fit DLE");
                Ok(Fit::NotYet)
            }
        }
    }
}

enum Fit {
    Fitted(Dle),
    NotRegressor,
    NotYet,
}

/// An estimated error metric as a finding: "dropped" when it rose above the upper threshold.
fn finding(metric: RegressionMetric, e: &ChunkValue, reference_chunk: usize) -> Option<Finding> {
    let extra = json!({
        "events": e.rows,
        "reference_chunk": reference_chunk,
        "higher_is_worse": true,
    });
    super::estimated::estimate_finding("dle", metric.name(), e, true, extra)
}

/// The rows of `data` whose prediction is a finite number, and those predictions.
fn numeric_predictions(data: &Dataset) -> (Vec<usize>, Vec<f64>) {
    match data.column(PREDICTION).map(|c| &c.values) {
        Some(ColumnValues::Numeric(v)) => v
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.filter(|p| p.is_finite()).map(|p| (i, p)))
            .unzip(),
        _ => (Vec::new(), Vec::new()),
    }
}

/// The newest numeric label of each labelled event of a version in an event range.
fn numeric_labels(
    conn: &Connection,
    key: &ModelKey,
    first: u64,
    last: u64,
) -> duckdb::Result<HashMap<u64, f64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.event_id, f.label FROM inferences i \
         JOIN (SELECT inference_id, arg_max(label, time) AS label FROM feedback WHERE model = ? \
               GROUP BY inference_id) f ON f.inference_id = i.inference_id \
         WHERE i.model = ? AND i.version = ? AND i.event_id BETWEEN ? AND ? AND f.label IS NOT NULL",
    )?;
    let mut rows = stmt.query(params![key.model, key.model, key.version, first, last])?;
    let mut out = HashMap::new();
    while let Some(r) = rows.next()? {
        let (id, label): (u64, f64) = (r.get(0)?, r.get(1)?);
        if label.is_finite() {
            out.insert(id, label);
        }
    }
    Ok(out)
}
