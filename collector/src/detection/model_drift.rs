//! What a closed window says about a model's inputs and outputs: drift per feature and of the
//! prediction (under the configured decision rule, p-values corrected across the window's
//! columns), the share of drifted columns, and data quality against the baseline. The
//! statistics are `millwatch_detectors`'; this module picks the columns and words the results.

use std::collections::{BTreeMap, HashSet};
use std::num::NonZeroUsize;

use millwatch_detectors::dataset::{ColumnValues, Dataset};
use millwatch_detectors::drift::{self, ColumnOverride, DecisionRule, DriftOptions, TestSelection};
use millwatch_detectors::quality::check_quality;
use serde_json::json;

use super::results::Finding;

/// How one model version's windows are tested.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftSettings {
    pub rule: DecisionRule,
    pub min_samples: usize,
    pub ignore: HashSet<String>,
    pub overrides: BTreeMap<String, ColumnOverride>,
}

/// A quality share at or above this flags the column (missing share: this much above the
/// baseline's). Type mismatches flag at any share.
const QUALITY_SHARE: f64 = 0.1;

fn present(values: &ColumnValues) -> usize {
    values.len() - values.missing()
}

/// Drift, drift share and data-quality findings of `window` against `baseline`.
pub fn evaluate(baseline: &Dataset, window: &Dataset, settings: &DriftSettings) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut candidates = Vec::new();
    for rc in baseline.columns() {
        if settings.ignore.contains(&rc.name) {
            continue;
        }
        let Some(cc) = window.column(&rc.name) else {
            continue;
        };
        let (n_ref, n_cur) = (present(&rc.values), present(&cc.values));
        if n_ref < settings.min_samples || n_cur < settings.min_samples {
            findings.push(Finding {
                verdict: "insufficient_data".into(),
                details: json!({ "reference_values": n_ref, "current_values": n_cur, "min_samples": settings.min_samples }),
                ..Finding::new("drift", &rc.name)
            });
            continue;
        }
        candidates.push(rc.name.clone());
    }
    let options = |columns: Vec<String>| DriftOptions {
        tests: TestSelection::Auto,
        columns: Some(columns),
        overrides: settings.overrides.clone(),
        rule: settings.rule,
        min_samples: NonZeroUsize::new(settings.min_samples).unwrap_or(NonZeroUsize::MIN),
        ..DriftOptions::default()
    };
    let report = match drift::compare(baseline, window, &options(candidates.clone())) {
        Ok(r) => Some(r),
        Err(_) => {
            // One column cannot be tested (no usable values, a test that does not apply):
            // find which on their own, report them, and test the others together.
            let mut usable = Vec::new();
            for name in candidates {
                match drift::compare(baseline, window, &options(vec![name.clone()])) {
                    Ok(_) => usable.push(name),
                    Err(e) => findings.push(Finding {
                        verdict: "not_tested".into(),
                        details: json!({ "error": e.to_string() }),
                        ..Finding::new("drift", &name)
                    }),
                }
            }
            if usable.is_empty() {
                None
            } else {
                drift::compare(baseline, window, &options(usable)).ok()
            }
        }
    };
    if let Some(report) = report {
        for u in &report.not_tested {
            findings.push(Finding {
                verdict: "not_tested".into(),
                details: json!({ "reason": u.reason, "error": u.message, "type_mismatches": u.type_mismatches }),
                ..Finding::new("drift", &u.column)
            });
        }
        for c in &report.columns {
            let d = &c.decision;
            findings.push(Finding {
                test: c.test.name().to_owned(),
                statistic: Some(c.statistic),
                p_value: d.raw_p,
                p_value_corrected: d.corrected_p,
                effect_size: Some(d.effect_size),
                threshold: Some(d.threshold),
                drifted: d.drifted,
                verdict: if d.drifted { "drift" } else { "no_drift" }.into(),
                decided_by: Some(
                    serde_json::to_value(d.decided_by)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                ),
                details: json!({
                    "kind": c.kind,
                    "type_mismatches": c.type_mismatches,
                    "missing_share": c.missing_share,
                }),
                ..Finding::new("drift", &c.column)
            });
        }
        findings.push(Finding {
            test: "drift_share".into(),
            statistic: Some(report.dataset.share),
            threshold: Some(0.5),
            // No verdict (nothing tested) is stored as before: not drifted.
            drifted: report.dataset.drifted.unwrap_or(false),
            verdict: if report.dataset.drifted == Some(true) {
                "drift"
            } else {
                "no_drift"
            }
            .into(),
            details: json!({ "columns": report.dataset.columns, "drifted_columns": report.dataset.drifted_columns }),
            ..Finding::new("drift_share", "")
        });
    }
    findings.extend(quality(baseline, window, settings));
    findings
}

fn quality(baseline: &Dataset, window: &Dataset, settings: &DriftSettings) -> Vec<Finding> {
    let report = check_quality(baseline, window);
    let mut out = Vec::new();
    for c in report
        .columns
        .iter()
        .filter(|c| !settings.ignore.contains(&c.column))
    {
        let missing_rise = c.missing_share.current - c.missing_share.reference;
        let mut issues = Vec::new();
        if missing_rise >= QUALITY_SHARE {
            issues.push("missing");
        }
        if c.out_of_range_share.is_some_and(|s| s >= QUALITY_SHARE) {
            issues.push("out_of_range");
        }
        if c.new_category_share.is_some_and(|s| s >= QUALITY_SHARE) {
            issues.push("new_categories");
        }
        if c.type_mismatch_share > 0.0 {
            issues.push("type_mismatch");
        }
        out.push(Finding {
            test: "quality".into(),
            statistic: Some(c.missing_share.current),
            threshold: Some(QUALITY_SHARE),
            drifted: !issues.is_empty(),
            verdict: if issues.is_empty() {
                "ok".into()
            } else {
                issues.join(",")
            },
            details: serde_json::to_value(c).unwrap_or_default(),
            ..Finding::new("data_quality", &c.column)
        });
    }
    for (names, what) in [
        (&report.appeared, "appeared"),
        (&report.disappeared, "disappeared"),
    ] {
        for name in names.iter().filter(|n| !settings.ignore.contains(*n)) {
            out.push(Finding {
                test: "schema".into(),
                drifted: true,
                verdict: what.into(),
                ..Finding::new("data_quality", name)
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use millwatch_detectors::dataset::Column;

    fn normal(seed: u64, n: usize, mean: f64) -> Vec<Option<f64>> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                let mut u = || {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
                };
                let (a, b) = (u(), u());
                Some(mean + (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos())
            })
            .collect()
    }

    fn settings() -> DriftSettings {
        DriftSettings {
            rule: DecisionRule::live_default(),
            min_samples: 30,
            ignore: HashSet::new(),
            overrides: BTreeMap::new(),
        }
    }

    #[test]
    fn shifted_column_drifts_and_the_other_does_not() {
        let base = Dataset::new(vec![
            Column::numeric("a", normal(1, 1000, 0.0)),
            Column::numeric("b", normal(2, 1000, 0.0)),
        ])
        .expect("base");
        let cur = Dataset::new(vec![
            Column::numeric("a", normal(3, 1000, 0.0)),
            Column::numeric("b", normal(4, 1000, 0.5)),
        ])
        .expect("cur");
        let f = evaluate(&base, &cur, &settings());
        let drift: Vec<_> = f
            .iter()
            .filter(|f| f.detector == "drift" && f.drifted)
            .map(|f| f.feature.as_str())
            .collect();
        assert_eq!(drift, ["b"]);
        let a = f
            .iter()
            .find(|f| f.detector == "drift" && f.feature == "a")
            .expect("a tested");
        assert_eq!(a.test, "ks");
        assert!(
            a.p_value_corrected.is_some() && a.decided_by.as_deref() == Some("p_value_and_effect")
        );
    }

    #[test]
    fn untestable_and_sparse_columns_are_reported_not_fatal() {
        let base = Dataset::new(vec![
            Column::numeric("a", normal(1, 100, 0.0)),
            Column::numeric("sparse", (0..100).map(|i| (i < 5).then_some(1.0)).collect()),
            Column::numeric("text_now", normal(5, 100, 0.0)),
        ])
        .expect("base");
        let cur = Dataset::new(vec![
            Column::numeric("a", normal(2, 100, 0.0)),
            Column::numeric("sparse", normal(3, 100, 0.0)),
            Column::categorical("text_now", vec![Some("x".into()); 100]),
        ])
        .expect("cur");
        let f = evaluate(&base, &cur, &settings());
        let verdict = |name: &str| {
            f.iter()
                .find(|f| f.detector == "drift" && f.feature == name)
                .map(|f| f.verdict.clone())
        };
        assert_eq!(verdict("sparse").as_deref(), Some("insufficient_data"));
        assert_eq!(verdict("text_now").as_deref(), Some("not_tested"));
        assert_eq!(verdict("a").as_deref(), Some("no_drift"));
        let q = f
            .iter()
            .find(|f| f.detector == "data_quality" && f.feature == "text_now")
            .expect("quality");
        assert!(q.verdict.contains("type_mismatch"), "{}", q.verdict);
    }
}
