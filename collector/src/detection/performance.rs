//! Realised performance of a window once feedback (labels) has arrived for its inference ids,
//! and whether it dropped against the baseline's: the share of wrong predictions (classification)
//! or the absolute errors (regression) of the two periods, tested under the live rule.

use duckdb::{Connection, params};
use millwatch_detectors::dataset::{Column, Dataset};
use millwatch_detectors::drift::{self, ColumnOverride, DecisionRule, DriftOptions, DriftTest};
use millwatch_detectors::performance::{classification, regression};
use serde_json::json;

use super::results::Finding;
use super::windows::ModelKey;

/// Predictions paired with their labels.
#[derive(Debug, Default, Clone)]
pub struct Labelled {
    /// (actual, predicted) class labels.
    pub classes: Vec<(String, String)>,
    /// (actual, predicted) numbers.
    pub numbers: Vec<(f64, f64)>,
}

impl Labelled {
    pub fn len(&self) -> usize {
        self.classes.len() + self.numbers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn label_text(class: Option<String>, number: Option<f64>) -> Option<String> {
    class.or_else(|| {
        number.filter(|x| x.is_finite()).map(|x| {
            if x.fract() == 0.0 && x.abs() < 1e15 {
                format!("{}", x as i64)
            } else {
                x.to_string()
            }
        })
    })
}

/// The labelled events of a model version in an event range (the newest label of an inference id wins).
pub fn labelled(
    conn: &Connection,
    key: &ModelKey,
    first: u64,
    last: u64,
) -> duckdb::Result<Labelled> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.prediction, i.prediction_label, f.label, f.label_class FROM inferences i \
         JOIN (SELECT inference_id, arg_max(label, time) AS label, arg_max(label_class, time) AS label_class \
               FROM feedback WHERE model = ? GROUP BY inference_id) f ON f.inference_id = i.inference_id \
         WHERE i.model = ? AND i.version = ? AND i.event_id BETWEEN ? AND ?",
    )?;
    let mut out = Labelled::default();
    let mut rows = stmt.query(params![key.model, key.model, key.version, first, last])?;
    while let Some(r) = rows.next()? {
        let (pred, pred_label): (Option<f64>, Option<String>) = (r.get(0)?, r.get(1)?);
        let (label, label_class): (Option<f64>, Option<String>) = (r.get(2)?, r.get(3)?);
        match (pred_label, pred) {
            (Some(p), _) => {
                if let Some(a) = label_text(label_class, label) {
                    out.classes.push((a, p));
                }
            }
            (None, Some(p)) if p.is_finite() => {
                if let Some(a) = label.filter(|x| x.is_finite()) {
                    out.numbers.push((a, p));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Performance findings of a window, with the change against the baseline when it has labels too.
pub fn evaluate(baseline: Option<&Labelled>, window: &Labelled, min_labels: usize) -> Vec<Finding> {
    let mut out = Vec::new();
    if window.classes.len() >= min_labels {
        let actual: Vec<&str> = window.classes.iter().map(|c| c.0.as_str()).collect();
        let predicted: Vec<&str> = window.classes.iter().map(|c| c.1.as_str()).collect();
        if let Ok(m) = classification(&actual, &predicted, None) {
            for (name, value) in [
                ("accuracy", m.accuracy),
                ("precision", m.precision),
                ("recall", m.recall),
                ("f1", m.f1),
            ] {
                out.push(metric(name, value, window.classes.len()));
            }
            out.push(metric("error_rate", 1.0 - m.accuracy, window.classes.len()));
        }
        if let Some(b) = baseline.filter(|b| b.classes.len() >= min_labels) {
            let wrong = |l: &Labelled| -> Vec<Option<String>> {
                l.classes
                    .iter()
                    .map(|(a, p)| Some(if a == p { "right" } else { "wrong" }.to_owned()))
                    .collect()
            };
            let rate = |l: &Labelled| {
                l.classes.iter().filter(|(a, p)| a != p).count() as f64 / l.classes.len() as f64
            };
            out.extend(change(
                "error_rate",
                Column::categorical("error_rate", wrong(b)),
                Column::categorical("error_rate", wrong(window)),
                DriftTest::ZTest,
                rate(b),
                rate(window),
            ));
        }
    }
    if window.numbers.len() >= min_labels {
        let actual: Vec<f64> = window.numbers.iter().map(|n| n.0).collect();
        let predicted: Vec<f64> = window.numbers.iter().map(|n| n.1).collect();
        if let Ok(m) = regression(&actual, &predicted) {
            for (name, value) in [
                ("mae", m.mae),
                ("rmse", m.rmse),
                ("mape", m.mape),
                ("r2", m.r2),
            ] {
                out.push(metric(name, value, window.numbers.len()));
            }
        }
        if let Some(b) = baseline.filter(|b| b.numbers.len() >= min_labels) {
            let errors = |l: &Labelled| -> Vec<Option<f64>> {
                l.numbers.iter().map(|(a, p)| Some((a - p).abs())).collect()
            };
            let mean = |l: &Labelled| {
                l.numbers.iter().map(|(a, p)| (a - p).abs()).sum::<f64>() / l.numbers.len() as f64
            };
            out.extend(change(
                "mae",
                Column::numeric("mae", errors(b)),
                Column::numeric("mae", errors(window)),
                DriftTest::Ks,
                mean(b),
                mean(window),
            ));
        }
    }
    out
}

fn metric(name: &str, value: f64, labelled: usize) -> Finding {
    Finding {
        test: "realised".into(),
        statistic: Some(value),
        verdict: "measured".into(),
        details: json!({ "labelled": labelled }),
        ..Finding::new("performance", name)
    }
}

/// Tests the baseline's per-event errors against the window's; a drop is a significant change
/// (live rule) in the worse direction.
fn change(
    name: &str,
    baseline: Column,
    window: Column,
    test: DriftTest,
    before: f64,
    after: f64,
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
        Err(e) => {
            return Some(Finding {
                verdict: "not_tested".into(),
                details: json!({ "baseline": before, "window": after, "error": e.to_string() }),
                ..Finding::new("performance_change", name)
            });
        }
    };
    let c = report.columns.first()?;
    let dropped = c.decision.drifted && after > before;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with_errors(n: usize, every: usize) -> Labelled {
        Labelled {
            classes: (0..n)
                .map(|i| {
                    (
                        "ok".to_owned(),
                        if i % every == 0 { "bad" } else { "ok" }.to_owned(),
                    )
                })
                .collect(),
            numbers: Vec::new(),
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
}
