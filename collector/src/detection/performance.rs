//! Realised performance of a window once feedback (labels) has arrived for its inference ids,
//! measured as the model's task asks (see `task`), and whether it dropped against the
//! baseline's: the share of wrong predictions (classification), the ROC AUC (binary
//! classification with scores) or the absolute errors (regression) of the two periods, tested
//! under the live rule. A metric the window's data leaves undefined is not reported.

use duckdb::{Connection, params};
use millwatch_detectors::dataset::{Column, Dataset};
use millwatch_detectors::drift::{
    self, ColumnOverride, DecidedBy, DecisionRule, DriftOptions, DriftTest,
};
use millwatch_detectors::performance::{
    RocAuc, classification, compare_roc_auc, regression, roc_auc_with_variance,
};
use serde_json::json;

use super::results::Finding;
use super::task::{self, Decided, Task, binary_class, class_name};
use super::windows::ModelKey;
use crate::signals::{ModelTask, Prediction};

/// One prediction with its label.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledEvent {
    pub actual: Prediction,
    pub predicted: Prediction,
    /// `ml.prediction.score`: for a binary classifier, the probability of class 1.
    pub score: Option<f64>,
    /// `ml.model.task`, when the event said.
    pub task: Option<ModelTask>,
}

/// The labelled events of a period, oldest first.
#[derive(Debug, Default, Clone)]
pub struct Labelled {
    pub events: Vec<LabelledEvent>,
}

impl Labelled {
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

fn value(number: Option<f64>, class: Option<String>) -> Option<Prediction> {
    class
        .map(Prediction::Class)
        .or_else(|| number.filter(|x| x.is_finite()).map(Prediction::Number))
}

/// The labelled events of a model version in an event range (the newest label of an inference id wins).
pub fn labelled(
    conn: &Connection,
    key: &ModelKey,
    first: u64,
    last: u64,
) -> duckdb::Result<Labelled> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.prediction, i.prediction_label, i.score, i.task, f.label, f.label_class FROM inferences i \
         JOIN (SELECT inference_id, arg_max(label, time) AS label, arg_max(label_class, time) AS label_class \
               FROM feedback WHERE model = ? GROUP BY inference_id) f ON f.inference_id = i.inference_id \
         WHERE i.model = ? AND i.version = ? AND i.event_id BETWEEN ? AND ? ORDER BY i.event_id",
    )?;
    let mut out = Labelled::default();
    let mut rows = stmt.query(params![key.model, key.model, key.version, first, last])?;
    while let Some(r) = rows.next()? {
        let predicted = value(r.get(0)?, r.get(1)?);
        let actual = value(r.get(4)?, r.get(5)?);
        let task: Option<String> = r.get(3)?;
        if let (Some(actual), Some(predicted)) = (actual, predicted) {
            out.events.push(LabelledEvent {
                actual,
                predicted,
                score: r.get::<_, Option<f64>>(2)?.filter(|s| s.is_finite()),
                task: task.as_deref().and_then(ModelTask::parse),
            });
        }
    }
    Ok(out)
}

/// Performance findings of a window, with the change against the baseline when it has labels too.
pub fn evaluate(baseline: Option<&Labelled>, window: &Labelled, min_labels: usize) -> Vec<Finding> {
    let decided = task::decide(window, baseline);
    let baseline = baseline.filter(|b| b.len() >= min_labels);
    match decided.task {
        Task::Regression => regression_findings(baseline, window, min_labels, decided),
        Task::BinaryClassification | Task::MulticlassClassification => {
            classification_findings(baseline, window, min_labels, decided)
        }
    }
}

/// `(actual, predicted)` class names; a binary classifier's as "1" and "0".
fn classes(l: &Labelled, binary: bool) -> Vec<(String, String)> {
    let name = |v: &Prediction| {
        let c = class_name(v);
        match binary_class(&c) {
            Some(positive) if binary => if positive { "1" } else { "0" }.to_owned(),
            _ => c,
        }
    };
    l.events
        .iter()
        .map(|e| (name(&e.actual), name(&e.predicted)))
        .collect()
}

/// The ROC AUC of a binary classifier's events that carry a score, when at least `min_labels`
/// do and both classes occur among them (otherwise it is undefined or too uncertain to report).
fn roc_auc(l: &Labelled, min_labels: usize) -> Option<RocAuc> {
    let (actual, scores): (Vec<bool>, Vec<f64>) = l
        .events
        .iter()
        .filter_map(|e| Some((binary_class(&class_name(&e.actual))?, e.score?)))
        .unzip();
    if actual.len() < min_labels {
        return None;
    }
    roc_auc_with_variance(&actual, &scores).ok()
}

fn classification_findings(
    baseline: Option<&Labelled>,
    window: &Labelled,
    min_labels: usize,
    decided: Decided,
) -> Vec<Finding> {
    let binary = decided.task == Task::BinaryClassification;
    let pairs = classes(window, binary);
    if pairs.len() < min_labels {
        return Vec::new();
    }
    let mut out = Vec::new();
    let actual: Vec<&str> = pairs.iter().map(|c| c.0.as_str()).collect();
    let predicted: Vec<&str> = pairs.iter().map(|c| c.1.as_str()).collect();
    if let Ok(m) = classification(&actual, &predicted, binary.then_some("1")) {
        out.push(metric("accuracy", m.accuracy, pairs.len(), decided));
        for (name, value) in [
            ("precision", m.precision),
            ("recall", m.recall),
            ("f1", m.f1),
        ] {
            if let Some(v) = value {
                out.push(metric(name, v, pairs.len(), decided));
            }
        }
        out.push(metric("error_rate", 1.0 - m.accuracy, pairs.len(), decided));
    }
    let auc = binary.then(|| roc_auc(window, min_labels)).flatten();
    if let Some(a) = &auc {
        out.push(metric("roc_auc", a.auc, a.positives + a.negatives, decided));
    }
    let Some(b) = baseline else {
        return out;
    };
    let base_pairs = classes(b, binary);
    let wrong = |pairs: &[(String, String)]| -> Vec<Option<String>> {
        pairs
            .iter()
            .map(|(a, p)| Some(if a == p { "right" } else { "wrong" }.to_owned()))
            .collect()
    };
    let rate = |pairs: &[(String, String)]| {
        pairs.iter().filter(|(a, p)| a != p).count() as f64 / pairs.len() as f64
    };
    out.extend(change(
        "error_rate",
        Column::categorical("error_rate", wrong(&base_pairs)),
        Column::categorical("error_rate", wrong(&pairs)),
        DriftTest::ZTest,
        (rate(&base_pairs), rate(&pairs)),
        Worse::Higher,
    ));
    if let (Some(before), Some(after)) = (binary.then(|| roc_auc(b, min_labels)).flatten(), auc) {
        out.push(auc_change(&before, &after));
    }
    out
}

fn regression_findings(
    baseline: Option<&Labelled>,
    window: &Labelled,
    min_labels: usize,
    decided: Decided,
) -> Vec<Finding> {
    // A regression's events whose prediction or label is a class have no error to measure.
    let numbers = |l: &Labelled| -> Vec<(f64, f64)> {
        l.events
            .iter()
            .filter_map(|e| match (&e.actual, &e.predicted) {
                (Prediction::Number(a), Prediction::Number(p)) => Some((*a, *p)),
                _ => None,
            })
            .collect()
    };
    let pairs = numbers(window);
    if pairs.len() < min_labels {
        return Vec::new();
    }
    let mut out = Vec::new();
    let actual: Vec<f64> = pairs.iter().map(|n| n.0).collect();
    let predicted: Vec<f64> = pairs.iter().map(|n| n.1).collect();
    if let Ok(m) = regression(&actual, &predicted) {
        for (name, value) in [
            ("mae", Some(m.mae)),
            ("rmse", Some(m.rmse)),
            ("mape", m.mape),
            ("r2", m.r2),
        ] {
            if let Some(v) = value {
                out.push(metric(name, v, pairs.len(), decided));
            }
        }
    }
    let base_pairs = baseline.map(numbers).unwrap_or_default();
    if base_pairs.len() >= min_labels {
        let errors = |pairs: &[(f64, f64)]| -> Vec<Option<f64>> {
            pairs.iter().map(|(a, p)| Some((a - p).abs())).collect()
        };
        let mean = |pairs: &[(f64, f64)]| {
            pairs.iter().map(|(a, p)| (a - p).abs()).sum::<f64>() / pairs.len() as f64
        };
        out.extend(change(
            "mae",
            Column::numeric("mae", errors(&base_pairs)),
            Column::numeric("mae", errors(&pairs)),
            DriftTest::Ks,
            (mean(&base_pairs), mean(&pairs)),
            Worse::Higher,
        ));
    }
    out
}

fn metric(name: &str, value: f64, labelled: usize, decided: Decided) -> Finding {
    Finding {
        test: "realised".into(),
        statistic: Some(value),
        verdict: "measured".into(),
        details: json!({ "labelled": labelled, "task": decided.task, "task_rule": decided.rule }),
        ..Finding::new("performance", name)
    }
}

/// Which direction of a metric is a drop in performance.
#[derive(Clone, Copy, PartialEq)]
enum Worse {
    /// Errors: a higher value is worse.
    Higher,
    /// Accuracy-like scores (ROC AUC): a lower value is worse.
    Lower,
}

impl Worse {
    fn dropped(self, before: f64, after: f64) -> bool {
        match self {
            Worse::Higher => after > before,
            Worse::Lower => after < before,
        }
    }
}

/// Tests the baseline's per-event errors against the window's; a drop is a significant change
/// (live rule) in the worse direction.
fn change(
    name: &str,
    baseline: Column,
    window: Column,
    test: DriftTest,
    (before, after): (f64, f64),
    worse: Worse,
) -> Option<Finding> {
    let options = DriftOptions {
        overrides: [(
            name.to_owned(),
            ColumnOverride {
                test: Some(test),
                threshold: None,
            },
        )]
        .into(),
        rule: DecisionRule::live_default(),
        // The pass needs `performance_min_labels` labelled events before it gets here.
        min_samples: std::num::NonZeroUsize::MIN,
        ..DriftOptions::default()
    };
    let reference = Dataset::new(vec![baseline]).ok()?;
    let current = Dataset::new(vec![window]).ok()?;
    let details = json!({ "baseline": before, "window": after });
    let report = match drift::compare(&reference, &current, &options) {
        Ok(r) => r,
        Err(e) => return Some(not_tested(name, before, after, &e.to_string())),
    };
    let c = report.columns.first()?;
    let dropped = c.decision.drifted && worse.dropped(before, after);
    Some(Finding {
        test: c.test.name().to_owned(),
        statistic: Some(after - before),
        p_value: c.decision.raw_p,
        p_value_corrected: c.decision.corrected_p,
        effect_size: Some(c.decision.effect_size),
        threshold: Some(c.decision.threshold),
        drifted: dropped,
        verdict: if dropped { "degraded" } else { "ok" }.into(),
        decided_by: serde_json::to_value(c.decision.decided_by)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned)),
        details,
        ..Finding::new("performance_change", name)
    })
}

fn not_tested(name: &str, before: f64, after: f64, error: &str) -> Finding {
    Finding {
        verdict: "not_tested".into(),
        details: json!({ "baseline": before, "window": after, "error": error }),
        ..Finding::new("performance_change", name)
    }
}

/// The smallest drop in ROC AUC that counts, whatever the p-value: 0.05 is a rank-biserial
/// correlation (2·AUC − 1) of 0.1, the live rule's floor for Mann–Whitney.
const AUC_FLOOR: f64 = 0.05;

/// DeLong's test of the window's ROC AUC against the baseline's (independent samples), decided
/// as the live rule decides: p below q and a drop of at least [`AUC_FLOOR`].
fn auc_change(before: &RocAuc, after: &RocAuc) -> Finding {
    let c = match compare_roc_auc(before, after) {
        Ok(c) => c,
        Err(e) => return not_tested("roc_auc", before.auc, after.auc, &e.to_string()),
    };
    let q = match DecisionRule::live_default() {
        DecisionRule::LiveDefault { q, .. } => q,
        DecisionRule::EvidentlyCompatible => 0.05,
    };
    let dropped = c.p_value < q
        && c.difference.abs() >= AUC_FLOOR
        && Worse::Lower.dropped(before.auc, after.auc);
    Finding {
        test: "delong".into(),
        statistic: Some(c.difference),
        // One test: nothing to correct for.
        p_value: Some(c.p_value),
        p_value_corrected: Some(c.p_value),
        effect_size: Some(c.difference.abs()),
        threshold: Some(q),
        drifted: dropped,
        verdict: if dropped { "degraded" } else { "ok" }.into(),
        decided_by: serde_json::to_value(DecidedBy::PValueAndEffect)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned)),
        details: json!({ "baseline": before.auc, "window": after.auc, "z": c.z }),
        ..Finding::new("performance_change", "roc_auc")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_errors(n: usize, every: usize) -> Labelled {
        Labelled {
            events: (0..n)
                .map(|i| LabelledEvent {
                    actual: Prediction::Class("ok".into()),
                    predicted: Prediction::Class(if i % every == 0 { "bad" } else { "ok" }.into()),
                    score: None,
                    task: None,
                })
                .collect(),
        }
    }

    #[test]
    fn error_rate_jump_is_a_drop_and_equal_rates_are_not() {
        let base = with_errors(500, 10);
        let f = evaluate(Some(&base), &with_errors(500, 3), 30);
        let change = f
            .iter()
            .find(|f| f.detector == "performance_change")
            .expect("change");
        assert!(change.drifted, "{change:?}");
        let acc = f
            .iter()
            .find(|f| f.feature == "accuracy")
            .expect("accuracy");
        assert!((acc.statistic.expect("value") - (1.0 - 167.0 / 500.0)).abs() < 1e-9);
        let same = evaluate(Some(&base), &with_errors(500, 10), 30);
        assert!(!same.iter().any(|f| f.drifted));
        // Too few labels: nothing reported yet.
        assert!(evaluate(Some(&base), &with_errors(10, 3), 30).is_empty());
    }

    /// A binary classifier's events as README's example sends them: prediction 1.0/0.0 with a
    /// score, labels 0/1. Event i is positive when i % 2 == 0; `overlap` in [0, 1] pushes the
    /// two classes' scores together (0: separated, 1: the same).
    fn binary(n: usize, overlap: f64) -> Labelled {
        Labelled {
            events: (0..n)
                .map(|i| {
                    let positive = i % 2 == 0;
                    let spread = (i % 10) as f64 / 20.0; // 0 .. 0.45
                    let score = if positive {
                        0.5 + spread - overlap * 0.45
                    } else {
                        spread
                    }
                    .clamp(0.0, 1.0);
                    LabelledEvent {
                        actual: Prediction::Number(f64::from(u8::from(positive))),
                        predicted: Prediction::Number(f64::from(u8::from(score >= 0.5))),
                        score: Some(score),
                        task: None,
                    }
                })
                .collect(),
        }
    }

    fn names(f: &[Finding], detector: &str) -> Vec<String> {
        let mut v: Vec<String> = f
            .iter()
            .filter(|f| f.detector == detector)
            .map(|f| f.feature.clone())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_scored_zero_one_classifier_gets_classification_metrics_and_roc_auc() {
        let f = evaluate(None, &binary(200, 0.0), 30);
        assert_eq!(
            names(&f, "performance"),
            [
                "accuracy",
                "error_rate",
                "f1",
                "precision",
                "recall",
                "roc_auc"
            ]
        );
        let auc = f.iter().find(|f| f.feature == "roc_auc").expect("auc");
        assert_eq!(auc.statistic, Some(1.0));
        assert_eq!(auc.details["task"], "binary_classification");
        assert_eq!(auc.details["task_rule"], "score");
        // Without scores: the same metrics but the AUC.
        let mut unscored = binary(200, 0.0);
        unscored.events.iter_mut().for_each(|e| e.score = None);
        let f = evaluate(None, &unscored, 30);
        assert_eq!(
            names(&f, "performance"),
            ["accuracy", "error_rate", "f1", "precision", "recall"]
        );
        assert_eq!(f[0].details["task_rule"], "zero_one");
    }

    #[test]
    fn a_window_of_one_class_reports_no_auc_and_no_undefined_precision() {
        // Every label 0 and every prediction 0: precision, recall, F1 and the AUC are undefined.
        let mut negatives = binary(200, 0.0);
        negatives
            .events
            .retain(|e| e.actual == Prediction::Number(0.0));
        let f = evaluate(Some(&binary(200, 0.0)), &negatives, 30);
        assert_eq!(names(&f, "performance"), ["accuracy", "error_rate"]);
        assert_eq!(names(&f, "performance_change"), ["error_rate"]);
    }

    #[test]
    fn an_auc_drop_is_degraded_and_an_equal_auc_is_not() {
        let base = binary(400, 0.0);
        let f = evaluate(Some(&base), &binary(400, 0.8), 30);
        let auc = f
            .iter()
            .find(|f| f.detector == "performance_change" && f.feature == "roc_auc")
            .expect("auc change");
        assert!(auc.drifted, "{auc:?}");
        assert!(auc.statistic.expect("difference") < -AUC_FLOOR);
        assert_eq!(auc.test, "delong");
        // The other way round the AUC rose: not a drop, however significant.
        let f = evaluate(Some(&binary(400, 0.8)), &base, 30);
        let auc = f
            .iter()
            .find(|f| f.detector == "performance_change" && f.feature == "roc_auc")
            .expect("auc change");
        assert!(!auc.drifted && auc.p_value.expect("p") < 0.05, "{auc:?}");
        let f = evaluate(Some(&binary(400, 0.3)), &binary(400, 0.3), 30);
        assert!(!f.iter().any(|f| f.drifted), "{f:?}");
    }

    #[test]
    fn regression_with_zero_targets_reports_no_mape() {
        let events = |shift: f64| Labelled {
            events: (0..100)
                .map(|i| LabelledEvent {
                    actual: Prediction::Number((i % 7) as f64),
                    predicted: Prediction::Number((i % 7) as f64 + 0.5 + shift),
                    score: None,
                    task: None,
                })
                .collect(),
        };
        let f = evaluate(Some(&events(0.0)), &events(1.0), 30);
        assert_eq!(names(&f, "performance"), ["mae", "r2", "rmse"]);
        let change = f
            .iter()
            .find(|f| f.detector == "performance_change")
            .expect("mae change");
        assert_eq!(change.feature, "mae");
        assert!(change.drifted, "{change:?}");
        // No zero target: MAPE is reported.
        let mut positive = events(0.0);
        for e in &mut positive.events {
            if let Prediction::Number(a) = &mut e.actual {
                *a += 1.0;
            }
        }
        assert_eq!(
            names(&evaluate(None, &positive, 30), "performance"),
            ["mae", "mape", "r2", "rmse"]
        );
    }
}
