//! Multivariate drift, live: when a window closes, the PCA reconstruction error of its events
//! (detectors crate, NannyML's `DataReconstructionDriftCalculator`) against the model
//! version's baseline. No labels are needed. The finding (detector `multivariate_drift`, test
//! `pca_reconstruction`, feature `reconstruction_error`) says whether the window's mean error
//! left the thresholds set by the baseline's own chunks (held out from the fit); the built-in rule
//! `MillwatchMultivariateDrift` alerts on it.
//!
//! It sees changes in how the features relate to each other (a broken correlation) that no
//! single feature's drift test shows; it cannot see a change in P(y|x).

use std::collections::HashMap;

use millwatch_detectors::dataset::Dataset;
use millwatch_detectors::estimation::reconstruction::{DEFAULT_VARIANCE, Reconstruction};
use serde_json::json;

use super::baseline::Baseline;
use super::results::Finding;
use super::state::ClosedWindow;
use super::windows::{ModelKey, PREDICTION};

/// The reference needs at least this many of its own chunks for its thresholds.
const REFERENCE_CHUNKS: usize = 5;

/// The feature name under which the window's reconstruction error is reported.
pub const FEATURE: &str = "reconstruction_error";

/// The reconstruction model of each model version, fitted once on its baseline; `None` when
/// the baseline does not allow one (fewer than 2 features, all constant).
#[derive(Default)]
pub struct MultivariateDrift {
    fitted: HashMap<ModelKey, Option<Reconstruction>>,
}

impl MultivariateDrift {
    /// The reconstruction-error finding of a closed window (its events as `data`), or none
    /// when the baseline allows no reconstruction or the window lacks a baseline feature.
    pub fn findings(
        &mut self,
        baseline: &Baseline,
        window: &ClosedWindow,
        data: &Dataset,
        min_samples: usize,
    ) -> Vec<Finding> {
        let key = &window.key;
        if data.rows() < min_samples.max(2) {
            return Vec::new();
        }
        let fitted = self
            .fitted
            .entry(key.clone())
            .or_insert_with(|| fit(key, baseline, window.events as usize));
        let Some(model) = fitted else {
            return Vec::new();
        };
        let errors = match model.errors(data) {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(model = %key.model, version = %key.version, error = %e,
                    "no multivariate drift for this window");
                return Vec::new();
            }
        };
        let c = model.chunk_value(0, &(0..errors.len()), &errors);
        let Some(value) = c.value else {
            return Vec::new();
        };
        vec![Finding {
            test: "pca_reconstruction".into(),
            statistic: Some(value),
            threshold: c.thresholds.upper,
            drifted: c.alert,
            verdict: if c.alert { "drifted" } else { "ok" }.into(),
            details: json!({
                "sampling_error": c.sampling_error,
                "lower_confidence_bound": c.lower_confidence_bound,
                "upper_confidence_bound": c.upper_confidence_bound,
                "lower_threshold": c.thresholds.lower,
                "upper_threshold": c.thresholds.upper,
                "events": errors.len(),
                "columns": model.columns,
                "components": model.components.len(),
                "reference_chunk": model.chunk_size,
            }),
            ..Finding::new("multivariate_drift", FEATURE)
        }]
    }
}

/// Fits on the baseline's features (every column but the prediction with a present value),
/// thresholds from chunks of the window's size, or of a fifth of the baseline when shorter,
/// each chunk's error measured by a model fitted on the other chunks (see
/// `Reconstruction::fit_held_out`: NannyML's in-sample thresholds alarm on unchanged data when
/// the baseline is short).
fn fit(key: &ModelKey, baseline: &Baseline, window_events: usize) -> Option<Reconstruction> {
    let data = &baseline.data;
    let columns: Vec<&str> = data
        .columns()
        .iter()
        .filter(|c| c.name != PREDICTION && c.values.missing() < c.values.len())
        .map(|c| c.name.as_str())
        .collect();
    if columns.len() < 2 {
        return None;
    }
    let chunk = window_events.min(data.rows() / REFERENCE_CHUNKS).max(2);
    match Reconstruction::fit_held_out(data, &columns, chunk, DEFAULT_VARIANCE) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::debug!(model = %key.model, version = %key.version, error = %e,
                "no multivariate drift: the baseline does not fit a reconstruction");
            None
        }
    }
}
