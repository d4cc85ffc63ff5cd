//! What the estimators add to `/metrics` beside `millwatch_model_performance_estimated`: the
//! estimate's confidence band and the baseline's thresholds (so a dashboard can draw them with
//! the realised value), and the multivariate drift of the last closed window.

use millwatch_exporters::prometheus::{MetricsExposition, OwnFamily, OwnType};

use super::results::Finding;

#[derive(Clone)]
pub struct EstimationGauges {
    estimated_bound: OwnFamily,
    estimated_threshold: OwnFamily,
    reconstruction_error: OwnFamily,
    reconstruction_threshold: OwnFamily,
    multivariate_detected: OwnFamily,
}

impl EstimationGauges {
    pub fn register(
        exposition: &MetricsExposition,
    ) -> Result<EstimationGauges, millwatch_exporters::prometheus::ExpositionError> {
        let g = |name: &str, help: &str| exposition.register(name, help, OwnType::Gauge);
        Ok(EstimationGauges {
            estimated_bound: g(
                "millwatch_model_performance_estimated_bound",
                "Confidence band of the estimated performance of the last closed window: the estimate minus (bound=lower) or plus (bound=upper) 3 sampling errors.",
            )?,
            estimated_threshold: g(
                "millwatch_model_performance_estimated_threshold",
                "Thresholds of the estimated performance from the baseline's own chunks (mean -/+ 3 standard deviations, side=lower|upper); a classifier's metric alerts below the lower one, a regressor's error above the upper one.",
            )?,
            reconstruction_error: g(
                "millwatch_multivariate_drift_reconstruction_error",
                "Mean PCA reconstruction error of the last closed window's features (standardised units) against the baseline's components.",
            )?,
            reconstruction_threshold: g(
                "millwatch_multivariate_drift_threshold",
                "Thresholds of the reconstruction error from the baseline's own chunks (side=lower|upper).",
            )?,
            multivariate_detected: g(
                "millwatch_multivariate_drift_detected",
                "1 when the reconstruction error of the last closed window left its thresholds, else 0.",
            )?,
        })
    }

    /// Publishes the estimation findings of a closed window.
    pub fn publish_window(&self, model: &str, version: &str, findings: &[Finding]) {
        for f in findings {
            let number = |key: &str| f.details.get(key).and_then(serde_json::Value::as_f64);
            match f.detector {
                "estimated_performance" => {
                    let metric = f.feature.as_str();
                    let labels = |k: &'static str, v: &'static str| {
                        [
                            ("model", model),
                            ("version", version),
                            ("metric", metric),
                            (k, v),
                        ]
                    };
                    for (side, key) in [
                        ("lower", "lower_confidence_bound"),
                        ("upper", "upper_confidence_bound"),
                    ] {
                        set_or_clear(&self.estimated_bound, &labels("bound", side), number(key));
                    }
                    for (side, key) in [("lower", "lower_threshold"), ("upper", "upper_threshold")]
                    {
                        set_or_clear(
                            &self.estimated_threshold,
                            &labels("side", side),
                            number(key),
                        );
                    }
                }
                "multivariate_drift" => {
                    let key = [("model", model), ("version", version)];
                    if let Some(v) = f.statistic {
                        self.reconstruction_error.set(&key, v);
                    }
                    self.multivariate_detected
                        .set(&key, f64::from(u8::from(f.drifted)));
                    for (side, name) in [("lower", "lower_threshold"), ("upper", "upper_threshold")]
                    {
                        set_or_clear(
                            &self.reconstruction_threshold,
                            &[("model", model), ("version", version), ("side", side)],
                            number(name),
                        );
                    }
                }
                _ => {}
            }
        }
    }
}

/// A threshold or bound the metric lacks (e.g. no lower threshold) is taken off, not left stale.
fn set_or_clear(family: &OwnFamily, labels: &[(&str, &str)], value: Option<f64>) {
    match value {
        Some(v) => family.set(labels, v),
        None => {
            family.clear_where(labels);
        }
    }
}
