//! DLE and multivariate drift in the live engine: a covariate shift that raises a regressor's
//! errors is estimated on the window's close from its features alone (labels of the baseline
//! only); a broken correlation that leaves every feature's own distribution unchanged shows in
//! the reconstruction error and nowhere in the per-feature drift verdicts.

use crate::config;
use crate::detection_support::*;
use millwatch::signals::{Batch, FeatureValue, FeedbackRow, InferenceRow, Prediction};
use millwatch_exporters::prometheus::{ExpositionConfig, Format, MetricsExposition};

fn statistic(ts: &TestStore, detector: &str, feature: &str, first: u64) -> Option<f64> {
    ts.store
        .read(|c| {
            c.query_row(
                "SELECT statistic FROM detections WHERE detector = ? AND feature = ? AND first_event_id = ?",
                duckdb::params![detector, feature, first],
                |r| r.get::<_, f64>(0),
            )
        })
        .ok()
}

/// A remaining-useful-life regressor: the prediction is a fixed linear model of the torque and
/// the tool wear; its error grows with the torque. From event 3000 on the torque runs higher,
/// within the range the baseline saw (trees do not extrapolate: beyond it DLE underestimates).
fn rul_events(rng: &mut Rng, from: u64, to: u64) -> (Vec<InferenceRow>, Vec<FeedbackRow>) {
    let (mut inf, mut fb) = (Vec::new(), Vec::new());
    for i in from..to {
        let torque = if i < 3000 {
            rng.normal(40.0, 6.0)
        } else {
            rng.normal(48.0, 4.0)
        };
        let wear = rng.uniform() * 200.0;
        let predicted = 300.0 - 2.0 * torque - 0.5 * wear;
        let actual = predicted + rng.normal(0.0, 0.05 * torque * torque / 10.0);
        let row = inference(
            "rul",
            "1",
            i,
            vec![
                ("torque_nm".into(), FeatureValue::Double(torque)),
                ("tool_wear_min".into(), FeatureValue::Double(wear)),
            ],
            Prediction::Number(predicted),
        );
        fb.push(feedback(
            "rul",
            row.inference_id.clone().expect("id"),
            Prediction::Number(actual),
        ));
        inf.push(row);
    }
    (inf, fb)
}

#[test]
fn dle_estimates_a_regressors_rising_error_before_labels_and_reports_its_own_error_after() {
    let ts = TestStore::open("estimated-dle");
    let mut rng = Rng(29);
    let (inf, fb) = rul_events(&mut rng, 0, 5000);
    let (baseline_fb, window_fb): (Vec<_>, Vec<_>) =
        fb.into_iter().enumerate().partition(|(i, _)| *i < 1000);
    ts.store(batch_of(inf));
    ts.store(Batch {
        feedback: baseline_fb.into_iter().map(|(_, f)| f).collect(),
        ..Default::default()
    });
    let exposition = MetricsExposition::new(ExpositionConfig::default());
    let mut engine = ts.engine_with(config(), &exposition);
    assert_eq!(drain(&mut engine), 4);
    let rose = ts.query_strings(
        "SELECT concat_ws(' ', first_event_id, feature) FROM detections \
         WHERE detector = 'estimated_performance' AND test = 'dle' AND drifted ORDER BY 1",
    );
    assert_eq!(
        rose,
        ["3000 mae", "3000 rmse", "4000 mae", "4000 rmse"],
        "estimated errors above the upper threshold"
    );
    let before = statistic(&ts, "estimated_performance", "mae", 1000).expect("mae at 1000");
    let after = statistic(&ts, "estimated_performance", "mae", 3000).expect("mae at 3000");
    assert!(after > 1.2 * before, "{before} -> {after}");
    assert_eq!(
        ts.query_u64("SELECT count(*) FROM detections WHERE detector = 'performance'"),
        0
    );
    let t = exposition.render(Format::Text, std::time::Instant::now());
    let mae = [("model", "rul"), ("version", "1"), ("metric", "mae")];
    assert_eq!(
        sample(&t, "millwatch_model_performance_estimated", &mae),
        statistic(&ts, "estimated_performance", "mae", 4000)
    );
    assert_eq!(
        sample(&t, "millwatch_model_performance_estimated_dropped", &mae),
        Some(1.0)
    );
    let upper = sample(
        &t,
        "millwatch_model_performance_estimated_threshold",
        &[mae[0], mae[1], mae[2], ("side", "upper")],
    )
    .expect("upper threshold");
    assert!(
        before < upper && upper < after,
        "{before} < {upper} < {after}"
    );

    // The labels arrive: realised MAE beside the estimate, the estimator's error reported.
    ts.store(Batch {
        feedback: window_fb.into_iter().map(|(_, f)| f).collect(),
        ..Default::default()
    });
    assert_eq!(engine.performance_pass().expect("pass"), 4);
    for first in [1000u64, 2000, 3000, 4000] {
        let realised = statistic(&ts, "performance", "mae", first).expect("realised mae");
        let estimated = statistic(&ts, "estimated_performance", "mae", first).expect("estimate");
        let error = statistic(&ts, "estimation_error", "mae", first).expect("estimation error");
        assert!((error - (realised - estimated)).abs() < 1e-9, "{error}");
        println!("window {first}: MAE estimated {estimated:.3}, realised {realised:.3}");
        assert!(
            error.abs() < 0.15 * realised,
            "window {first}: estimated {estimated}, realised {realised}"
        );
    }
}

/// Two sensors that move together (x2 = x1 + noise) and a third on its own; from event 3000 on
/// x2 no longer follows x1 but keeps its own distribution.
fn coupled_events(rng: &mut Rng, from: u64, to: u64) -> Vec<InferenceRow> {
    (from..to)
        .map(|i| {
            let x1 = rng.normal(0.0, 1.0);
            let x2 = if i < 3000 {
                0.95 * x1 + rng.normal(0.0, 0.312)
            } else {
                rng.normal(0.0, 1.0)
            };
            let x3 = rng.normal(5.0, 2.0);
            inference(
                "coupled",
                "1",
                i,
                vec![
                    ("x1".into(), FeatureValue::Double(x1)),
                    ("x2".into(), FeatureValue::Double(x2)),
                    ("x3".into(), FeatureValue::Double(x3)),
                ],
                Prediction::Number(x1 + x3),
            )
        })
        .collect()
}

#[test]
fn a_broken_correlation_shows_in_the_reconstruction_error_only() {
    let ts = TestStore::open("multivariate");
    let mut rng = Rng(31);
    ts.store(batch_of(coupled_events(&mut rng, 0, 5000)));
    let exposition = MetricsExposition::new(ExpositionConfig::default());
    let mut engine = ts.engine_with(config(), &exposition);
    assert_eq!(drain(&mut engine), 4);
    let drifted = ts.query_strings(
        "SELECT CAST(first_event_id AS VARCHAR) FROM detections \
         WHERE detector = 'multivariate_drift' AND drifted ORDER BY 1",
    );
    assert_eq!(drifted, ["3000", "4000"]);
    assert_eq!(
        ts.query_u64("SELECT count(*) FROM detections WHERE detector = 'multivariate_drift'"),
        4
    );
    assert_eq!(
        ts.query_u64(
            "SELECT count(*) FROM detections WHERE detector = 'drift' AND feature LIKE 'x%' AND drifted"
        ),
        0,
        "no single feature drifted"
    );
    let t = exposition.render(Format::Text, std::time::Instant::now());
    let key = [("model", "coupled"), ("version", "1")];
    assert_eq!(
        sample(
            &t,
            "millwatch_multivariate_drift_reconstruction_error",
            &key
        ),
        statistic(&ts, "multivariate_drift", "reconstruction_error", 4000)
    );
    assert_eq!(
        sample(&t, "millwatch_multivariate_drift_detected", &key),
        Some(1.0)
    );
}
