//! Performance estimated before labels arrive (CBPE): a covariate shift that lowers a binary
//! classifier's accuracy is flagged from the scores alone, on the window's close, while none of
//! its labels has arrived; once they do, the realised accuracy lies within the estimate's band.

use crate::config;
use crate::detection_support::*;
use millwatch::signals::{Batch, FeatureValue, FeedbackRow, InferenceRow, Prediction};
use millwatch_exporters::prometheus::{ExpositionConfig, MetricsExposition};

/// A calibrated classifier: score = sigmoid(2.5 x), label ~ Bernoulli(score). From event 2000
/// on, x concentrates near 0, where the model is unsure: accuracy falls from about 0.8 to 0.6.
fn events(rng: &mut Rng, from: u64, to: u64) -> (Vec<InferenceRow>, Vec<FeedbackRow>) {
    let (mut inf, mut fb) = (Vec::new(), Vec::new());
    for i in from..to {
        let x = rng.normal(0.0, if i < 2000 { 1.0 } else { 0.25 });
        let score = 1.0 / (1.0 + (-2.5 * x).exp());
        let failed = rng.uniform() < score;
        let mut row = inference(
            "press-fault",
            "1",
            i,
            vec![("force_kn".into(), FeatureValue::Double(x))],
            Prediction::Number(if score >= 0.5 { 1.0 } else { 0.0 }),
        );
        row.score = Some(score);
        fb.push(feedback(
            "press-fault",
            row.inference_id.clone().expect("id"),
            Prediction::Number(if failed { 1.0 } else { 0.0 }),
        ));
        inf.push(row);
    }
    (inf, fb)
}

#[test]
fn a_covariate_shift_is_estimated_before_labels_and_the_labels_confirm_it() {
    let ts = TestStore::open("estimated");
    let mut rng = Rng(17);
    let (inf, fb) = events(&mut rng, 0, 3000);
    // Only the baseline's (first 1000 events') labels are known when the windows close.
    let (baseline_fb, window_fb): (Vec<_>, Vec<_>) =
        fb.into_iter().enumerate().partition(|(i, _)| *i < 1000);
    ts.store(batch_of(inf));
    ts.store(Batch {
        feedback: baseline_fb.into_iter().map(|(_, f)| f).collect(),
        ..Default::default()
    });
    let exposition = MetricsExposition::new(ExpositionConfig::default());
    let mut engine = ts.engine_with(config(), &exposition);
    assert_eq!(drain(&mut engine), 2);
    let estimate = |first: u64, metric: &str, field: &str| -> f64 {
        ts.store
            .read(|c| {
                c.query_row(
                    &format!("SELECT CAST({field} AS DOUBLE) FROM detections WHERE detector = 'estimated_performance' AND feature = ? AND first_event_id = ?"),
                    duckdb::params![metric, first],
                    |r| r.get::<_, f64>(0),
                )
            })
            .unwrap_or_else(|e| panic!("{metric} at {first}: {e}"))
    };
    let dropped = ts.query_strings(
        "SELECT concat_ws(' ', first_event_id, feature) FROM detections WHERE detector = 'estimated_performance' AND drifted ORDER BY 1",
    );
    assert!(
        dropped.iter().all(|d| d.starts_with("2000 ")),
        "{dropped:?}"
    );
    assert!(
        dropped.contains(&"2000 accuracy".to_string()),
        "{dropped:?}"
    );
    assert!(dropped.contains(&"2000 roc_auc".to_string()), "{dropped:?}");
    assert!(estimate(1000, "accuracy", "statistic") > 0.75);
    assert!(estimate(2000, "accuracy", "statistic") < 0.7);
    // No label of the windows has arrived: no realised performance yet.
    assert_eq!(
        ts.query_u64("SELECT count(*) FROM detections WHERE detector = 'performance'"),
        0
    );
    let t = exposition.render(
        millwatch_exporters::prometheus::Format::Text,
        std::time::Instant::now(),
    );
    let labels = [
        ("model", "press-fault"),
        ("version", "1"),
        ("metric", "accuracy"),
    ];
    assert_eq!(
        sample(&t, "millwatch_model_performance_estimated", &labels),
        Some(estimate(2000, "accuracy", "statistic"))
    );
    assert_eq!(
        sample(&t, "millwatch_model_performance_estimated_dropped", &labels),
        Some(1.0)
    );

    // The labels arrive: the realised accuracy of each window lies within the estimate's band.
    ts.store(Batch {
        feedback: window_fb.into_iter().map(|(_, f)| f).collect(),
        ..Default::default()
    });
    assert_eq!(engine.performance_pass().expect("pass"), 2);
    for first in [1000u64, 2000] {
        let realised = ts.store.read(|c| {
            c.query_row(
                "SELECT statistic FROM detections WHERE detector = 'performance' AND feature = 'accuracy' AND first_event_id = ?",
                [first],
                |r| r.get::<_, f64>(0),
            )
        });
        let realised = realised.expect("realised accuracy");
        let low = estimate(first, "accuracy", "details->>'lower_confidence_bound'");
        let high = estimate(first, "accuracy", "details->>'upper_confidence_bound'");
        assert!(
            (low..=high).contains(&realised),
            "window {first}: realised {realised} outside [{low}, {high}]"
        );
        // The estimator's own error is reported beside them.
        let error = ts.store.read(|c| {
            c.query_row(
                "SELECT statistic, verdict FROM detections WHERE detector = 'estimation_error' AND feature = 'accuracy' AND first_event_id = ?",
                [first],
                |r| Ok((r.get::<_, f64>(0)?, r.get::<_, String>(1)?)),
            )
        });
        let (error, verdict) = error.expect("estimation error");
        let estimated = estimate(first, "accuracy", "statistic");
        assert!((error - (realised - estimated)).abs() < 1e-12, "{error}");
        assert_eq!(verdict, "within_band");
    }
}

/// A new version judged against the previous version's baseline (a deployment check) is
/// estimated with the labels of that baseline, which are stored under the previous version.
#[test]
fn a_new_version_is_estimated_from_the_previous_versions_labelled_baseline() {
    let ts = TestStore::open("estimated-previous");
    let mut rng = Rng(19);
    let (mut inf, fb) = events(&mut rng, 0, 3000);
    for row in inf.iter_mut().skip(2000) {
        row.version = "2".into();
    }
    ts.store(batch_of(inf));
    ts.store(Batch {
        feedback: fb.into_iter().take(1000).collect(),
        ..Default::default()
    });
    let cfg: millwatch::detection::DetectionConfig = serde_saphyr::from_str(
        "models:\n  - name: press-fault\n    compare_with_previous_version: true\n",
    )
    .expect("config");
    let mut engine = ts.engine(cfg);
    drain(&mut engine);
    let dropped = ts.query_strings(
        "SELECT version || ' ' || feature FROM detections WHERE detector = 'estimated_performance' AND drifted AND first_event_id = 2000 ORDER BY 1",
    );
    assert!(dropped.contains(&"2 accuracy".to_string()), "{dropped:?}");
}
