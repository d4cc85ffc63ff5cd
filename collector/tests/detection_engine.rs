//! The detection engine driven pass by pass on a store in a temporary directory: zero-config
//! windows and drift verdicts, results and state in the same transaction, restart in the middle
//! of a window, performance from late feedback, and the false-alarm rate of the live rule.

mod detection_support;

use std::collections::HashSet;

use detection_support::*;
use millwatch::detection::DetectionConfig;
use millwatch::detection::config::RuleName;
use millwatch::detection::model_drift::{self, DriftSettings};
use millwatch::signals::{FeatureValue, Prediction};
use millwatch_detectors::dataset::{Column, Dataset};
use millwatch_exporters::prometheus::{ExpositionConfig, MetricsExposition};

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

#[test]
fn zero_config_windows_flag_only_the_shifted_features_after_the_shift() {
    let ts = TestStore::open("zero-config");
    let mut rng = Rng(7);
    // 1000 baseline events, 5 windows unchanged, 3 windows shifted.
    for chunk in (0..9000u64).step_by(1500) {
        ts.store(batch_of(events(
            &mut rng,
            "press",
            chunk,
            chunk + 1500,
            6000,
        )));
    }
    let exposition = MetricsExposition::new(ExpositionConfig::default());
    let mut engine = ts.engine_with(config(), &exposition);
    assert_eq!(drain(&mut engine), 8);
    assert_eq!(ts.query_u64("SELECT count(*) FROM detection_windows"), 8);
    assert_eq!(ts.query_u64("SELECT count(*) FROM detection_baselines WHERE first_event_id = 0 AND last_event_id = 999"), 1);
    // Every window tested all four features and the prediction.
    assert_eq!(
        ts.query_u64(
            "SELECT count(*) FROM detections WHERE detector = 'drift' AND test IS NOT NULL"
        ),
        8 * 5
    );
    let drifted = ts.query_strings(
        "SELECT DISTINCT feature FROM detections WHERE detector = 'drift' AND drifted ORDER BY feature",
    );
    assert_eq!(drifted, ["b", "site"]);
    // Nothing before the shift (event 6000 opens window 6).
    assert_eq!(ts.query_u64("SELECT count(*) FROM detections WHERE drifted AND detector = 'drift' AND first_event_id < 6000"), 0);
    // Every window after the shift flags both.
    assert_eq!(ts.query_u64("SELECT count(*) FROM detections WHERE drifted AND detector = 'drift' AND first_event_id >= 6000"), 6);
    // Each verdict records raw and corrected p, effect size and the rule that decided.
    assert_eq!(
        ts.query_u64(
            "SELECT count(*) FROM detections WHERE detector = 'drift' AND test IS NOT NULL \
             AND (p_value IS NULL OR p_value_corrected IS NULL OR effect_size IS NULL OR decided_by <> 'p_value_and_effect')"
        ),
        0
    );
    let text = exposition.render(
        millwatch_exporters::prometheus::Format::Text,
        std::time::Instant::now(),
    );
    assert!(
        text.contains(r#"millwatch_drift_detected{feature="b",model="press",version="1.0"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"millwatch_drift_detected{feature="a",model="press",version="1.0"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"millwatch_drift_statistic{feature="b",model="press",test="ks",version="1.0"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"millwatch_detection_windows_total{model="press",version="1.0"} 8"#),
        "{text}"
    );
    assert!(
        text.contains(r#"millwatch_data_missing_ratio{feature="a",model="press",version="1.0"} 0"#),
        "{text}"
    );
    assert!(
        text.contains("millwatch_drift_share{model=\"press\",version=\"1.0\"}"),
        "{text}"
    );

    // Nothing new: another pass decides nothing again, even after a restart of the engine.
    drop(engine);
    let mut engine = ts.engine(config());
    assert_eq!(drain(&mut engine), 0);
    assert_eq!(ts.query_u64("SELECT count(*) FROM detection_windows"), 8);
}

#[test]
fn restart_in_the_middle_of_a_window_completes_it_with_all_its_events() {
    let ts = TestStore::open("restart");
    let mut rng = Rng(11);
    ts.store(batch_of(events(&mut rng, "press", 0, 1600, u64::MAX)));
    let mut engine = ts.engine(config());
    assert_eq!(drain(&mut engine), 0);
    drop(engine);
    // The collector stops with 600 events in the open window, and starts again.
    let ts = ts.reopen();
    ts.store(batch_of(events(&mut rng, "press", 1600, 2500, u64::MAX)));
    let mut engine = ts.engine(config());
    assert_eq!(drain(&mut engine), 1);
    let rows = ts.store.read(|c| {
        c.query_row(
            "SELECT first_event_id, last_event_id, events FROM detection_windows",
            [],
            |r| {
                Ok((
                    r.get::<_, u64>(0)?,
                    r.get::<_, u64>(1)?,
                    r.get::<_, u64>(2)?,
                ))
            },
        )
    });
    assert_eq!(rows.expect("one window"), (1000, 1999, 1000));
    // The window's drift rows cover the same range, decided once.
    assert_eq!(
        ts.query_u64(
            "SELECT count(*) FROM detections WHERE detector = 'drift' AND first_event_id = 1000"
        ),
        5
    );
    // And the next window is open at 2000 with 500 events: one more restart, 500 more, closed.
    drop(engine);
    ts.store(batch_of(events(&mut rng, "press", 2500, 3000, u64::MAX)));
    let mut engine = ts.engine(config());
    assert_eq!(drain(&mut engine), 1);
    assert_eq!(ts.query_u64("SELECT count(*) FROM detection_windows WHERE first_event_id = 2000 AND last_event_id = 2999 AND events = 1000"), 1);
}

#[test]
fn versions_have_their_own_baselines_unless_compared_with_the_previous_one() {
    let ts = TestStore::open("versions");
    let mut rng = Rng(5);
    let mut v1 = events(&mut rng, "press", 0, 2000, u64::MAX);
    // Version 2 is shifted from its first event: against its own baseline nothing drifts,
    // against version 1's the deployment check sees it.
    let mut v2 = events(&mut rng, "press", 2000, 4000, 0);
    for e in &mut v2 {
        e.version = "2.0".into();
    }
    v1.append(&mut v2);
    ts.store(batch_of(v1));
    let mut engine = ts.engine(config());
    drain(&mut engine);
    assert_eq!(
        ts.query_u64("SELECT count(*) FROM detections WHERE drifted AND detector = 'drift'"),
        0
    );

    let ts2 = TestStore::open("versions-deploy");
    let mut rows = Vec::new();
    let mut rng = Rng(5);
    rows.extend(events(&mut rng, "press", 0, 2000, u64::MAX));
    let mut v2 = events(&mut rng, "press", 2000, 4000, 0);
    for e in &mut v2 {
        e.version = "2.0".into();
    }
    rows.extend(v2);
    ts2.store(batch_of(rows));
    let cfg: DetectionConfig = serde_saphyr::from_str(
        "models:\n  - name: press\n    compare_with_previous_version: true\n",
    )
    .expect("config");
    let mut engine = ts2.engine(cfg);
    drain(&mut engine);
    let drifted = ts2.query_strings("SELECT DISTINCT feature FROM detections WHERE drifted AND detector = 'drift' AND version = '2.0' ORDER BY 1");
    assert_eq!(drifted, ["b", "site"]);
    assert_eq!(
        ts2.query_u64("SELECT count(*) FROM detection_windows WHERE version = '2.0'"),
        2
    );
    assert_eq!(ts2.query_u64("SELECT count(*) FROM detection_baselines WHERE version = '2.0' AND origin::VARCHAR LIKE '%previous_version%'"), 1);
}

#[test]
fn per_model_settings_apply_and_ignored_features_are_not_tested() {
    let ts = TestStore::open("per-model");
    let mut rng = Rng(3);
    ts.store(batch_of(events(&mut rng, "press", 0, 1500, 700)));
    let cfg: DetectionConfig = serde_saphyr::from_str(
        "models:\n  - name: press\n    baseline: {first_events: 500}\n    window_events: 500\n    ignore_features: [site]\n    features:\n      a: {test: psi, threshold: 0.5}\n",
    )
    .expect("config");
    let mut engine = ts.engine(cfg);
    assert_eq!(drain(&mut engine), 2);
    assert_eq!(
        ts.query_u64("SELECT count(*) FROM detections WHERE feature = 'site'"),
        0
    );
    assert_eq!(
        ts.query_strings(
            "SELECT DISTINCT test FROM detections WHERE feature = 'a' AND detector = 'drift'"
        ),
        ["psi"]
    );
    assert_eq!(
        ts.query_strings(
            "SELECT DISTINCT feature FROM detections WHERE drifted AND detector = 'drift'"
        ),
        ["b"]
    );
}

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

#[test]
fn sliding_count_windows_decide_every_slide_events() {
    let ts = TestStore::open("sliding-count");
    let mut rng = Rng(31);
    // Baseline 0..1000, then 2000 events: windows of 1000 decided every 250 events.
    ts.store(batch_of(events(&mut rng, "press", 0, 3000, u64::MAX)));
    let cfg: DetectionConfig = serde_saphyr::from_str(
        "models:\n  - name: press\n    window_events: 1000\n    slide_events: 250\n",
    )
    .expect("config");
    let mut engine = ts.engine(cfg);
    // Full at event 1999, then at 2249, 2499, 2749, 2999.
    assert_eq!(drain(&mut engine), 5);
    let ranges = ts.query_strings(
        "SELECT first_event_id || '-' || last_event_id || '/' || events FROM detection_windows ORDER BY window_index",
    );
    assert_eq!(
        ranges,
        [
            "1000-1999/1000",
            "1250-2249/1000",
            "1500-2499/1000",
            "1750-2749/1000",
            "2000-2999/1000"
        ]
    );
}

#[test]
fn sliding_windows_survive_a_restart_between_decisions() {
    let ts = TestStore::open("sliding-restart");
    let mut rng = Rng(32);
    let cfg = || -> DetectionConfig {
        serde_saphyr::from_str(
            "models:\n  - name: press\n    window_events: 1000\n    slide_events: 250\n",
        )
        .expect("config")
    };
    ts.store(batch_of(events(&mut rng, "press", 0, 2100, u64::MAX)));
    let mut engine = ts.engine(cfg());
    assert_eq!(drain(&mut engine), 1);
    drop(engine);
    let ts = ts.reopen();
    ts.store(batch_of(events(&mut rng, "press", 2100, 2500, u64::MAX)));
    let mut engine = ts.engine(cfg());
    assert_eq!(
        drain(&mut engine),
        2,
        "decided at 2249 and 2499, as without the restart"
    );
    assert_eq!(
        ts.query_u64("SELECT max(last_event_id) FROM detection_windows"),
        2499
    );
}

#[test]
fn time_windows_hold_the_events_of_their_period() {
    let ts = TestStore::open("time-windows");
    let mut rng = Rng(33);
    // Events are 1 ms apart (detection_support::inference): 1000 baseline events, then
    // windows of 400 ms (400 events each), the last one still open.
    ts.store(batch_of(events(&mut rng, "press", 0, 2300, u64::MAX)));
    let cfg: DetectionConfig =
        serde_saphyr::from_str("models:\n  - name: press\n    window_duration: 400ms\n")
            .expect("config");
    let mut engine = ts.engine(cfg);
    let closed = drain(&mut engine);
    let sizes = ts.query_strings("SELECT CAST(events AS VARCHAR) FROM detection_windows WHERE window_index > 0 ORDER BY window_index");
    assert_eq!(closed, sizes.len());
    // Windows are aligned to multiples of 400 ms; the base time (1.7e18 ns) is a multiple of
    // 400 ms, so event 1000 starts at 1000 ms = 2.5 windows in: the first window is partial.
    assert_eq!(sizes.first().map(String::as_str), Some("200"));
    assert!(sizes[1..].iter().all(|s| s == "400"), "{sizes:?}");
    // No window spans more than 400 ms of event time.
    assert_eq!(
        ts.query_u64("SELECT count(*) FROM detection_windows WHERE window_index > 0 AND epoch_ns(window_end) - epoch_ns(window_start) >= 400000000"),
        0
    );
}

#[test]
fn a_baseline_from_a_time_range_of_stored_events_of_another_version() {
    let ts = TestStore::open("time-range-baseline");
    let mut rng = Rng(34);
    // Version 1.0: events 0..2000 (times base + i ms). Version 2.0 arrives later, shifted.
    ts.store(batch_of(events(&mut rng, "press", 0, 2000, u64::MAX)));
    let mut v2 = events(&mut rng, "press", 2000, 3000, 0);
    for e in &mut v2 {
        e.version = "2.0".into();
    }
    ts.store(batch_of(v2));
    let base_s = 1_700_000_000u64;
    let since =
        humantime::format_rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(base_s));
    let until = humantime::format_rfc3339(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(base_s * 1000 + 800),
    );
    let cfg: DetectionConfig = serde_saphyr::from_str(&format!(
        "models:\n  - name: press\n    version: '2.0'\n    baseline: {{time_range: {{since: '{since}', until: '{until}', version: '1.0'}}}}\n"
    ))
    .expect("config");
    let mut engine = ts.engine(cfg);
    drain(&mut engine);
    // The 2.0 baseline is events 0..800 of version 1.0; its one window (2000..3000) drifts.
    assert_eq!(
        ts.query_u64("SELECT count(*) FROM detection_baselines WHERE version = '2.0' AND first_event_id = 0 AND last_event_id = 799 AND origin::VARCHAR LIKE '%time_range%'"),
        1
    );
    let drifted = ts.query_strings("SELECT DISTINCT feature FROM detections WHERE drifted AND detector = 'drift' AND version = '2.0' ORDER BY 1");
    assert_eq!(drifted, ["b", "site"]);
}

/// Numeric predictions show as quantiles, class predictions as class shares, both for the last
/// window and the baseline; a later window replaces the classes of the one before.
#[test]
fn prediction_distributions_of_the_window_and_its_baseline_are_on_metrics() {
    let ts = TestStore::open("predictions");
    let row = |model: &str, i: u64, p: Prediction| {
        inference(
            model,
            "1.0",
            i,
            vec![("x".to_owned(), FeatureValue::Double(i as f64))],
            p,
        )
    };
    // reg: baseline predictions 0..=9, then a window of 100..=109.
    let mut rows: Vec<_> = (0..20u64)
        .map(|i| {
            let p = if i < 10 { i as f64 } else { 90.0 + i as f64 };
            row("reg", i, Prediction::Number(p))
        })
        .collect();
    // cls: baseline ok×6, scratch×3, dent×1; window ok×2, scratch×8.
    let classes = ["ok"; 6]
        .into_iter()
        .chain(["scratch"; 3])
        .chain(["dent"])
        .chain(["ok"; 2])
        .chain(["scratch"; 8]);
    rows.extend(
        classes
            .enumerate()
            .map(|(i, c)| row("cls", i as u64, Prediction::Class(c.into()))),
    );
    ts.store(batch_of(rows));
    let cfg: DetectionConfig =
        serde_saphyr::from_str("baseline_events: 10\nwindow_events: 10\n").expect("config");
    let exposition = MetricsExposition::new(ExpositionConfig::default());
    let mut engine = ts.engine_with(cfg, &exposition);
    assert_eq!(drain(&mut engine), 2);
    let text = || {
        exposition.render(
            millwatch_exporters::prometheus::Format::Text,
            std::time::Instant::now(),
        )
    };
    let t = text();
    let quantile = |t: &str, window: &str, q: &str| {
        sample(
            t,
            "millwatch_prediction",
            &[
                ("model", "reg"),
                ("version", "1.0"),
                ("quantile", q),
                ("window", window),
            ],
        )
        .unwrap_or_else(|| panic!("{window} q{q} in\n{t}"))
    };
    // numpy.quantile(range(10), q) = 9q.
    for (q, want) in [("0.05", 0.45), ("0.25", 2.25), ("0.5", 4.5), ("0.95", 8.55)] {
        assert!((quantile(&t, "baseline", q) - want).abs() < 1e-9, "{q}");
        assert!(
            (quantile(&t, "current", q) - (100.0 + want)).abs() < 1e-9,
            "{q}"
        );
    }
    let ratio = |t: &str, window: &str, class: &str| {
        sample(
            t,
            "millwatch_prediction_class_ratio",
            &[
                ("model", "cls"),
                ("version", "1.0"),
                ("class", class),
                ("window", window),
            ],
        )
    };
    assert_eq!(ratio(&t, "current", "ok"), Some(0.2));
    assert_eq!(ratio(&t, "current", "scratch"), Some(0.8));
    assert_eq!(ratio(&t, "current", "dent"), Some(0.0));
    assert_eq!(ratio(&t, "baseline", "ok"), Some(0.6));
    assert_eq!(ratio(&t, "baseline", "dent"), Some(0.1));
    assert_eq!(ratio(&t, "current", "(other)"), None);
    assert!(!t.contains(r#"millwatch_prediction{model="cls""#));
    // Sum and count: 0 + 1 + ... + 9 = 45 in the baseline, 1045 in the window.
    let reg = |suffix: &str, window: &str| {
        sample(
            &t,
            &format!("millwatch_prediction{suffix}"),
            &[("model", "reg"), ("version", "1.0"), ("window", window)],
        )
    };
    assert_eq!(reg("_sum", "baseline"), Some(45.0));
    assert_eq!(reg("_count", "baseline"), Some(10.0));
    assert_eq!(reg("_sum", "current"), Some(1045.0));

    // A window of ten classes seen once each: 13 classes in all, so the ten most frequent over
    // both sides (ok 6, scratch 3, then dent, k0..k6 by name) are named and k7..k9 are (other).
    let next: Vec<_> = (0..10u64)
        .map(|i| row("cls", 20 + i, Prediction::Class(format!("k{i}"))))
        .collect();
    ts.store(batch_of(next));
    assert_eq!(drain(&mut engine), 1);
    let t = text();
    assert_eq!(ratio(&t, "current", "k0"), Some(0.1));
    assert_eq!(ratio(&t, "current", "k6"), Some(0.1));
    assert_eq!(ratio(&t, "current", "k7"), None);
    assert!((ratio(&t, "current", "(other)").unwrap() - 0.3).abs() < 1e-12);
    assert_eq!(ratio(&t, "current", "scratch"), Some(0.0));
    assert_eq!(ratio(&t, "baseline", "(other)"), Some(0.0));
    assert_eq!(ratio(&t, "baseline", "scratch"), Some(0.3));
    let cls_series = t
        .lines()
        .filter(|l| {
            l.starts_with(r#"millwatch_prediction_class_ratio{class="#)
                && l.contains(r#"model="cls""#)
        })
        .count();
    assert_eq!(cls_series, 2 * 11, "{t}");
}

/// Windows and verdicts of a store, for comparing two engines (the decision time aside).
fn decisions(ts: &TestStore) -> Vec<String> {
    let mut rows = ts.query_strings(
        "SELECT concat_ws(' ', window_index, first_event_id, last_event_id, events) FROM detection_windows ORDER BY window_index",
    );
    rows.extend(ts.query_strings(
        "SELECT concat_ws(' ', first_event_id, feature, detector, test, statistic, p_value, drifted, verdict) FROM detections \
         ORDER BY first_event_id, detector, feature",
    ));
    rows
}

#[test]
fn events_from_the_tap_give_the_verdicts_of_the_store_even_across_a_gap() {
    use millwatch::detection::InferenceTap;
    use std::sync::Arc;
    let plain = TestStore::open("tap-plain");
    let tapped = TestStore::open("tap-tapped");
    let tap = Arc::new(InferenceTap::new(1000));
    let mut from_store = plain.engine(config());
    let mut from_tap = tapped.engine(config()).with_tap(tap.clone());
    let mut rng = Rng(41);
    for (i, chunk) in (0..9000u64).step_by(500).enumerate() {
        let rows = events(&mut rng, "press", chunk, chunk + 500, 6000);
        plain.store(batch_of(rows.clone()));
        tapped.store(batch_of(rows.clone()));
        tap.offer(chunk, rows);
        // Mostly a pass per commit; twice, three commits queue up and the third does not fit
        // in the tap: the engine has to read it from the store.
        if i % 6 != 1 && i % 6 != 2 {
            from_store.step().expect("pass");
            let pass = from_tap.step().expect("pass");
            assert!(pass.events > 0);
        }
    }
    assert!(tap.left_out() >= 1000, "left out {}", tap.left_out());
    drain(&mut from_store);
    drain(&mut from_tap);
    let expected = decisions(&plain);
    // 1000 baseline events, then 8 windows.
    assert_eq!(plain.query_u64("SELECT count(*) FROM detection_windows"), 8);
    assert_eq!(decisions(&tapped), expected);
    assert_eq!(from_tap.cursor(), Some(8999));
}

#[test]
fn a_time_window_past_its_end_is_decided_once_its_model_goes_quiet() {
    let ts = TestStore::open("quiet-time-window");
    let mut rng = Rng(33);
    // As in time_windows_hold_the_events_of_their_period: the last window (events 2000..2300)
    // is still open when the events stop; its end is long past on the clock.
    ts.store(batch_of(events(&mut rng, "press", 0, 2300, u64::MAX)));
    let yaml = "time_window_grace: 0s\nmodels:\n  - name: press\n    window_duration: 400ms\n";
    let cfg: DetectionConfig = serde_saphyr::from_str(yaml).expect("config");
    let mut engine = ts.engine(cfg);
    drain(&mut engine);
    let sizes = ts.query_strings("SELECT CAST(events AS VARCHAR) FROM detection_windows WHERE window_index > 0 ORDER BY window_index");
    assert_eq!(sizes, ["200", "400", "400", "300"]);
    // Nothing more to close: the next pass decides nothing.
    assert_eq!(engine.step().expect("pass").windows_closed, 0);
}
