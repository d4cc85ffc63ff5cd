//! The false-alarm rate of the live rule on unchanged windows.

use std::collections::HashSet;

use crate::config;
use crate::detection_support::*;
use millwatch::detection::config::RuleName;
use millwatch::detection::model_drift::{self, DriftSettings};
use millwatch::signals::{FeatureValue, Prediction};
use millwatch_detectors::dataset::{Column, Dataset};

/// 20 features: 14 normal, 2 skewed, 2 categorical with 4 levels, 2 binary.
fn stable_window(rng: &mut Rng, n: usize) -> Dataset {
    let mut cols = Vec::new();
    for f in 0..14 {
        cols.push(Column::numeric(
            format!("n{f}"),
            (0..n)
                .map(|_| Some(rng.normal(f as f64, 1.0 + f as f64)))
                .collect(),
        ));
    }
    for f in 0..2 {
        cols.push(Column::numeric(
            format!("s{f}"),
            (0..n).map(|_| Some((rng.normal(0.0, 1.0)).exp())).collect(),
        ));
    }
    for f in 0..2 {
        cols.push(Column::categorical(
            format!("c{f}"),
            (0..n)
                .map(|_| Some(["a", "b", "c", "d"][(rng.uniform() * 4.0) as usize % 4].to_owned()))
                .collect(),
        ));
    }
    for f in 0..2 {
        cols.push(Column::categorical(
            format!("b{f}"),
            (0..n)
                .map(|_| Some((rng.uniform() < 0.3).to_string()))
                .collect(),
        ));
    }
    Dataset::new(cols).expect("dataset")
}

#[test]
fn false_alarm_rate_of_200_unchanged_windows() {
    // Through the engine (store, windows, live rule): no drift verdict at all.
    let ts = TestStore::open("false-alarms");
    let mut rng = Rng(2024);
    let windows = 200u64;
    let total = 1000 * (windows + 1);
    let mut i = 0u64;
    while i < total {
        let n = (total - i).min(10_000) as usize;
        let data = stable_window(&mut rng, n);
        let rows = (0..n)
            .map(|r| {
                let features = data
                    .columns()
                    .iter()
                    .map(|c| {
                        let v = match &c.values {
                            millwatch_detectors::dataset::ColumnValues::Numeric(v) => {
                                FeatureValue::Double(v[r].unwrap_or(0.0))
                            }
                            millwatch_detectors::dataset::ColumnValues::Categorical(v) => {
                                FeatureValue::String(v[r].clone().unwrap_or_default())
                            }
                        };
                        (c.name.clone(), v)
                    })
                    .collect();
                inference(
                    "stable",
                    "1",
                    i + r as u64,
                    features,
                    Prediction::Number(rng.normal(0.0, 1.0)),
                )
            })
            .collect();
        ts.store(batch_of(rows));
        i += n as u64;
    }
    let mut engine = ts.engine(config());
    assert_eq!(drain(&mut engine) as u64, windows);
    let tests = ts
        .query_u64("SELECT count(*) FROM detections WHERE detector = 'drift' AND test IS NOT NULL");
    assert_eq!(tests, windows * 21);
    let live_alarms =
        ts.query_u64("SELECT count(*) FROM detections WHERE detector = 'drift' AND drifted");
    assert_eq!(
        live_alarms, 0,
        "the live default raised drift on unchanged data"
    );
    // Multivariate drift (PCA reconstruction error, thresholds from 5 baseline chunks of 200).
    let multivariate = ts.query_u64(
        "SELECT count(*) FROM detections WHERE detector = 'multivariate_drift' AND drifted",
    );
    assert_eq!(
        ts.query_u64("SELECT count(*) FROM detections WHERE detector = 'multivariate_drift'"),
        windows
    );
    println!(
        "multivariate drift over {windows} unchanged windows x 20 features: {multivariate} alarms"
    );

    // The same kind of data under the Evidently-compatible preset, for comparison.
    let mut rng = Rng(2025);
    let baseline = stable_window(&mut rng, 1000);
    let evidently = DriftSettings {
        rule: RuleName::Evidently.rule(),
        min_samples: 30,
        ignore: HashSet::new(),
        overrides: Default::default(),
    };
    let live = DriftSettings {
        rule: RuleName::Live.rule(),
        ..evidently.clone()
    };
    let (mut ev_cols, mut ev_windows, mut live_cols) = (0, 0, 0);
    for _ in 0..windows {
        let w = stable_window(&mut rng, 1000);
        let ev = model_drift::evaluate(&baseline, &w, &evidently);
        let drifted = ev
            .iter()
            .filter(|f| f.detector == "drift" && f.drifted)
            .count();
        ev_cols += drifted;
        ev_windows += usize::from(drifted > 0);
        live_cols += model_drift::evaluate(&baseline, &w, &live)
            .iter()
            .filter(|f| f.detector == "drift" && f.drifted)
            .count();
    }
    println!(
        "false alarms over {windows} unchanged windows x 20 features: live default {live_alarms} column verdicts \
         (engine) and {live_cols} (direct); Evidently-compatible {ev_cols} column verdicts ({:.2}% of column tests) \
         in {ev_windows} windows ({:.1}% of windows)",
        100.0 * ev_cols as f64 / (windows as f64 * 20.0),
        100.0 * ev_windows as f64 / windows as f64
    );
    assert_eq!(live_cols, 0);
    assert!(
        ev_cols > 0,
        "the Evidently-compatible rule at p < 0.05 is expected to alarm now and then"
    );
}
