//! The detection engine driven pass by pass on a store in a temporary directory: zero-config
//! windows and drift verdicts, results and state in the same transaction, restart in the middle
//! of a window, performance from late feedback, and the false-alarm rate of the live rule.
//!
//! One test binary, a file per theme: `windows` (count, sliding and time windows, restarts, the
//! tap), `baselines` (per version, per model, from a time range), `estimated` (performance
//! estimated before labels arrive), `estimated_live` (DLE and multivariate drift), `performance` (late
//! feedback), `predictions` (prediction distributions on `/metrics`), `false_alarms` (the live
//! rule on unchanged windows), `streams` (streaming change detectors).

#[path = "../detection_support/mod.rs"]
mod detection_support;

mod baselines;
mod estimated;
mod estimated_live;
mod false_alarms;
mod performance;
mod predictions;
mod streams;
mod windows;

use detection_support::*;
use millwatch::detection::DetectionConfig;
use millwatch::signals::{FeatureValue, Prediction};

/// Events `from..to` of a model with numeric features `a`, `b`, `c`, a categorical `site` and a
/// numeric prediction; after `shift_at`, `b` moves by 0.5σ and `site` changes its mix.
fn events(
    rng: &mut Rng,
    model: &str,
    from: u64,
    to: u64,
    shift_at: u64,
) -> Vec<millwatch::signals::InferenceRow> {
    (from..to)
        .map(|i| {
            let shifted = i >= shift_at;
            let a = rng.normal(10.0, 2.0);
            let b = rng.normal(if shifted { 1.0 } else { 0.0 }, 2.0);
            let c = rng.normal(-5.0, 1.0);
            let u = rng.uniform();
            let site = if u < (if shifted { 0.6 } else { 0.3 }) {
                "lyon"
            } else if u < 0.8 {
                "turin"
            } else {
                "porto"
            };
            let features = vec![
                ("a".to_owned(), FeatureValue::Double(a)),
                ("b".to_owned(), FeatureValue::Double(b)),
                ("c".to_owned(), FeatureValue::Double(c)),
                ("site".to_owned(), FeatureValue::String(site.to_owned())),
            ];
            inference(
                model,
                "1.0",
                i,
                features,
                Prediction::Number(a * 0.1 + c + rng.normal(0.0, 0.1)),
            )
        })
        .collect()
}

fn config() -> DetectionConfig {
    DetectionConfig::default()
}
