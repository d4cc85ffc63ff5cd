//! Performance from late feedback: regression and classification metrics, and a drop flagged.

use crate::config;
use crate::detection_support::*;
use millwatch::signals::{FeatureValue, Prediction};
use millwatch_exporters::prometheus::{ExpositionConfig, MetricsExposition};

/// Classification events: the model is wrong with probability `error_rate`.
fn classified(
    rng: &mut Rng,
    from: u64,
    to: u64,
    error_rate: impl Fn(u64) -> f64,
) -> (
    Vec<millwatch::signals::InferenceRow>,
    Vec<millwatch::signals::FeedbackRow>,
) {
    let mut inf = Vec::new();
    let mut fb = Vec::new();
    for i in from..to {
        let x = rng.normal(0.0, 1.0);
        let actual = if rng.uniform() < 0.5 { "ok" } else { "scrap" };
        let wrong = rng.uniform() < error_rate(i);
        let predicted = if wrong {
            if actual == "ok" { "scrap" } else { "ok" }
        } else {
            actual
        };
        let row = inference(
            "inspector",
            "1",
            i,
            vec![("x".into(), FeatureValue::Double(x))],
            Prediction::Class(predicted.into()),
        );
        fb.push(feedback(
            "inspector",
            row.inference_id.clone().expect("id"),
            Prediction::Class(actual.into()),
        ));
        inf.push(row);
    }
    (inf, fb)
}

#[test]
fn performance_is_measured_once_feedback_arrives_and_a_drop_is_flagged() {
    let ts = TestStore::open("performance");
    let mut rng = Rng(21);
    let (inf, fb) = classified(&mut rng, 0, 5000, |i| if i < 3000 { 0.1 } else { 0.35 });
    ts.store(batch_of(inf));
    let mut engine = ts.engine(config());
    assert_eq!(drain(&mut engine), 4);
    // No feedback yet: nothing to evaluate.
    assert_eq!(engine.performance_pass().expect("pass"), 0);
    // Feedback arrives late (the pass re-evaluates past windows).
    ts.store(millwatch::signals::Batch {
        feedback: fb,
        ..Default::default()
    });
    assert_eq!(engine.performance_pass().expect("pass"), 4);
    assert_eq!(
        engine.performance_pass().expect("pass"),
        0,
        "nothing new: nothing re-decided"
    );
    let degraded = ts.query_strings(
        "SELECT CAST(first_event_id AS VARCHAR) FROM detections WHERE detector = 'performance_change' AND drifted ORDER BY first_event_id",
    );
    assert_eq!(degraded, ["3000", "4000"]);
    let acc = ts.store.read(|c| {
        c.query_row("SELECT statistic FROM detections WHERE detector = 'performance' AND feature = 'accuracy' AND first_event_id = 4000", [], |r| r.get::<_, f64>(0))
    });
    let acc = acc.expect("accuracy");
    assert!((0.6..0.7).contains(&acc), "{acc}");
}

/// Labels that trickle in: the measured values follow every label, the change against the
/// baseline is judged once per window (when its labels are complete, or have stood still for
/// `performance_settle`), never again on later passes nor after a restart. Judging at every
/// look would give an unchanged window one more chance of a false drop each time labels came.
#[test]
fn a_windows_change_is_judged_once_when_its_labels_are_complete_or_settled() {
    let ts = TestStore::open("performance-judged-once");
    let mut rng = Rng(31);
    let (inf, fb) = classified(&mut rng, 0, 3000, |_| 0.2);
    ts.store(batch_of(inf));
    let mut engine = ts.engine(config());
    assert_eq!(drain(&mut engine), 2);
    let changes = |ts: &TestStore, first: u64| {
        ts.query_u64(&format!(
            "SELECT count(*) FROM detections WHERE detector = 'performance_change' AND first_event_id = {first}"
        ))
    };
    let measured = |ts: &TestStore, first: u64| {
        ts.query_u64(&format!(
            "SELECT count(DISTINCT time) FROM detections WHERE detector = 'performance' AND first_event_id = {first}"
        ))
    };
    let mut fb = fb.into_iter();
    let mut send = |n: usize| {
        ts.store(millwatch::signals::Batch {
            feedback: fb.by_ref().take(n).collect(),
            ..Default::default()
        })
    };
    // The baseline's labels, then the first window's in ten parts: measured each time.
    send(1000);
    for part in 1..=10 {
        send(100);
        assert_eq!(engine.performance_pass().expect("pass"), 1, "part {part}");
        let judged = changes(&ts, 1000);
        assert_eq!(judged, if part < 10 { 0 } else { 1 }, "part {part}");
    }
    assert_eq!(measured(&ts, 1000), 10);
    assert_eq!(engine.performance_pass().expect("pass"), 0, "nothing new");
    // Half of the second window's labels; the rest never come.
    send(500);
    assert_eq!(engine.performance_pass().expect("pass"), 1);
    assert_eq!(changes(&ts, 2000), 0, "labels may still come");
    drop(engine);
    // After a restart with a short settle time: the second window is judged on what it has,
    // the first is not judged again.
    let cfg: millwatch::detection::DetectionConfig =
        serde_saphyr::from_str("performance_settle: 0s\n").expect("config");
    let mut engine = ts.engine(cfg);
    drain(&mut engine);
    engine.performance_pass().expect("pass");
    engine.performance_pass().expect("pass");
    assert_eq!(changes(&ts, 2000), 1);
    assert_eq!(changes(&ts, 1000), 1);
    assert_eq!(measured(&ts, 2000), 1, "no new labels: not measured again");
}

/// A new version judged against the previous version's baseline (a deployment check) is
/// compared with the labels of that version's baseline events: a worse new version is degraded
/// from its first labelled window (its own events hold none of the baseline's ids).
#[test]
fn a_new_version_is_measured_against_the_previous_versions_baseline_labels() {
    let ts = TestStore::open("performance-previous");
    let mut rng = Rng(23);
    let (mut inf, fb) = classified(&mut rng, 0, 4000, |i| if i < 2000 { 0.1 } else { 0.35 });
    for row in inf.iter_mut().skip(2000) {
        row.version = "2".into();
    }
    ts.store(batch_of(inf));
    let cfg: millwatch::detection::DetectionConfig = serde_saphyr::from_str(
        "models:\n  - name: inspector\n    compare_with_previous_version: true\n",
    )
    .expect("config");
    let mut engine = ts.engine(cfg);
    drain(&mut engine);
    ts.store(millwatch::signals::Batch {
        feedback: fb,
        ..Default::default()
    });
    engine.performance_pass().expect("pass");
    let degraded = ts.query_strings(
        "SELECT version || ':' || CAST(first_event_id AS VARCHAR) FROM detections WHERE detector = 'performance_change' AND drifted ORDER BY first_event_id",
    );
    assert_eq!(degraded, ["2:2000", "2:3000"]);
}

/// README's example shape: a failure classifier sends `ml.prediction` 1.0/0.0 with
/// `ml.prediction.score`, and its labels come back as 0/1. It is measured as a binary
/// classifier (no MAE, RMSE, R² or MAPE, whose 0 targets would make MAPE ~1e15), with the ROC
/// AUC of its scores; when the scores stop separating the classes, the AUC drop is flagged.
#[test]
fn a_scored_zero_one_classifier_is_measured_as_a_classifier() {
    let ts = TestStore::open("classifier");
    let mut rng = Rng(5);
    let (mut inf, mut fb) = (Vec::new(), Vec::new());
    for i in 0..3000u64 {
        let failing = rng.uniform() < 0.3;
        let score = if i >= 2000 {
            rng.uniform()
        } else if failing {
            0.4 + 0.6 * rng.uniform()
        } else {
            0.6 * rng.uniform()
        };
        let mut row = inference(
            "spindle-failure",
            "3.2.0",
            i,
            vec![(
                "vibration_rms".into(),
                FeatureValue::Double(rng.normal(4.0, 1.0)),
            )],
            Prediction::Number(if score >= 0.5 { 1.0 } else { 0.0 }),
        );
        row.score = Some(score);
        fb.push(feedback(
            "spindle-failure",
            row.inference_id.clone().expect("id"),
            Prediction::Number(if failing { 1.0 } else { 0.0 }),
        ));
        inf.push(row);
    }
    ts.store(batch_of(inf));
    let exposition = MetricsExposition::new(ExpositionConfig::default());
    let mut engine = ts.engine_with(config(), &exposition);
    assert_eq!(drain(&mut engine), 2);
    ts.store(millwatch::signals::Batch {
        feedback: fb,
        ..Default::default()
    });
    assert_eq!(engine.performance_pass().expect("pass"), 2);
    let measured = ts.query_strings(
        "SELECT DISTINCT feature FROM detections WHERE detector = 'performance' ORDER BY feature",
    );
    assert_eq!(
        measured,
        [
            "accuracy",
            "error_rate",
            "f1",
            "precision",
            "recall",
            "roc_auc"
        ]
    );
    let auc = |first: u64| {
        ts.store
            .read(|c| {
                c.query_row(
                    "SELECT statistic FROM detections WHERE detector = 'performance' AND feature = 'roc_auc' AND first_event_id = ?",
                    [first],
                    |r| r.get::<_, f64>(0),
                )
            })
            .expect("roc_auc")
    };
    assert!(auc(1000) > 0.9, "{}", auc(1000));
    assert!((0.4..0.6).contains(&auc(2000)), "{}", auc(2000));
    let task = ts.query_strings(
        "SELECT DISTINCT concat_ws(' ', details->>'task', details->>'task_rule') FROM detections WHERE detector = 'performance'",
    );
    assert_eq!(task, ["binary_classification score"]);
    let degraded = ts.query_strings(
        "SELECT concat_ws(' ', first_event_id, feature) FROM detections WHERE detector = 'performance_change' AND drifted ORDER BY 1",
    );
    assert_eq!(degraded, ["2000 error_rate", "2000 roc_auc"]);
    let t = exposition.render(
        millwatch_exporters::prometheus::Format::Text,
        std::time::Instant::now(),
    );
    let labels = |metric| {
        [
            ("model", "spindle-failure"),
            ("version", "3.2.0"),
            ("metric", metric),
        ]
    };
    let auc_now = sample(&t, "millwatch_model_performance", &labels("roc_auc")).expect("auc");
    assert_eq!(auc_now, auc(2000));
    assert_eq!(
        sample(
            &t,
            "millwatch_model_performance_degraded",
            &labels("roc_auc")
        ),
        Some(1.0)
    );
    for metric in ["mae", "rmse", "r2", "mape"] {
        assert!(
            !t.contains(&format!("metric=\"{metric}\"")),
            "{metric} on /metrics:\n{t}"
        );
    }
}
