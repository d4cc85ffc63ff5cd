//! The two models the plant runs on every part, and the truth that arrives later: a failure
//! classifier (probability and class of a machine failure, AI4I's target) and a remaining
//! useful life (RUL) regressor for the tool. Version 2.0.0 of the classifier, rolled out on one
//! line by the script, ranks failures worse than 1.0.0.

use fastrand::Rng;

use super::plant::{Reading, TOOL_LIFE_MIN, normal};

pub const CLASSIFIER: &str = "failure-classifier";
pub const REGRESSOR: &str = "rul-regressor";
pub const CLASSIFIER_V1: &str = "1.0.0";
pub const CLASSIFIER_V2: &str = "2.0.0";
pub const REGRESSOR_VERSION: &str = "1.4.0";

/// What a model predicted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Prediction {
    /// A class (0: no failure, 1: failure) and the probability of class 1.
    Class { class: i64, score: f64 },
    /// A number (minutes of tool life left).
    Value(f64),
}

/// One `ml.inference` event.
#[derive(Debug, Clone, PartialEq)]
pub struct Inference {
    pub model: &'static str,
    pub version: &'static str,
    pub id: String,
    pub machine: String,
    /// `ml.feature.<name>` values; `None` is a feature sent without a value (missing).
    pub features: Vec<(&'static str, Option<f64>)>,
    pub prediction: Prediction,
    /// Seconds the model took.
    pub duration: f64,
}

/// One `ml.feedback` event: the truth about an inference, known later.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    pub model: &'static str,
    pub id: String,
    /// 0 or 1 for the classifier, minutes for the regressor.
    pub label: Label,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Label {
    Class(i64),
    Value(f64),
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// The log-odds of a failure on this part, after AI4I's failure modes: overstrain (high torque
/// on a worn tool), tool wear failure (a tool near the end of its life) and power failure
/// (slow and loaded).
fn failure_logit(r: &Reading) -> f64 {
    -2.3 + 0.15 * (r.torque - 40.0)
        + 4.0 * ((r.tool_wear - 190.0) / 50.0).max(0.0)
        + 0.006 * (1540.0 - r.rotational_speed).max(0.0)
}

/// Minutes the tool has left: its life minus its wear, shortened under high torque.
fn true_rul(r: &Reading) -> f64 {
    let load = (1.0 - 0.01 * (r.torque - 40.0)).clamp(0.6, 1.3);
    ((TOOL_LIFE_MIN - r.tool_wear) * load).max(0.0)
}

/// The classifier of `version` on a part: its inference and the truth about it.
pub fn classify(
    rng: &mut Rng,
    version: &'static str,
    id: String,
    machine: &str,
    r: &Reading,
) -> (Inference, Feedback) {
    let z = failure_logit(r);
    let failed = rng.f64() < sigmoid(z);
    let score = if version == CLASSIFIER_V2 {
        // The new version lost the tool-wear signal in a feature pipeline change and is
        // poorly calibrated: it misses worn-tool failures and raises false alarms.
        sigmoid(0.15 * (r.torque - 40.0) - 0.6 + normal(rng, 0.0, 1.2))
    } else {
        sigmoid(z + normal(rng, 0.0, 0.3))
    };
    let features = vec![
        ("air_temperature", r.air_temperature),
        ("process_temperature", Some(r.process_temperature)),
        ("rotational_speed", Some(r.rotational_speed)),
        ("torque", Some(r.torque)),
        ("tool_wear", Some(r.tool_wear)),
        ("vibration", Some(r.vibration)),
        ("spindle_current", Some(r.spindle_current)),
    ];
    let duration = 0.004 + rng.f64() * 0.004;
    (
        Inference {
            model: CLASSIFIER,
            version,
            id: id.clone(),
            machine: machine.to_owned(),
            features,
            prediction: Prediction::Class {
                class: i64::from(score >= 0.5),
                score,
            },
            duration,
        },
        Feedback {
            model: CLASSIFIER,
            id,
            label: Label::Class(i64::from(failed)),
        },
    )
}

/// The RUL regressor on a part: its inference and the truth about it.
pub fn remaining_life(
    rng: &mut Rng,
    id: String,
    machine: &str,
    r: &Reading,
) -> (Inference, Feedback) {
    let truth = true_rul(r);
    let predicted = (truth + normal(rng, 0.0, 8.0)).max(0.0);
    let features = vec![
        ("air_temperature", r.air_temperature),
        ("rotational_speed", Some(r.rotational_speed)),
        ("torque", Some(r.torque)),
        ("tool_wear", Some(r.tool_wear)),
    ];
    let duration = 0.002 + rng.f64() * 0.002;
    (
        Inference {
            model: REGRESSOR,
            version: REGRESSOR_VERSION,
            id: id.clone(),
            machine: machine.to_owned(),
            features,
            prediction: Prediction::Value(predicted),
            duration,
        },
        Feedback {
            model: REGRESSOR,
            id,
            label: Label::Value(truth),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::plant::Plant;

    /// Share of wrong classes of `version` over many parts.
    fn error_rate(version: &'static str) -> f64 {
        let mut plant = Plant::new(5);
        let mut rng = Rng::with_seed(9);
        let (mut wrong, mut all) = (0, 0);
        for _ in 0..200 {
            for (i, r) in plant.step().iter().enumerate() {
                let (inf, fb) = classify(&mut rng, version, format!("{i}"), "m", r);
                let (Prediction::Class { class, .. }, Label::Class(label)) =
                    (inf.prediction, fb.label)
                else {
                    panic!("a classifier")
                };
                wrong += usize::from(class != label);
                all += 1;
            }
        }
        wrong as f64 / all as f64
    }

    #[test]
    fn the_new_classifier_is_worse() {
        let (v1, v2) = (error_rate(CLASSIFIER_V1), error_rate(CLASSIFIER_V2));
        // Labels are drawn from the true failure probability: even a perfect model errs.
        assert!(v1 < 0.25, "v1 errs {v1}");
        assert!(v2 > v1 + 0.05, "v2 errs {v2}, v1 {v1}");
    }
}
