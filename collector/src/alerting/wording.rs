//! What a verdict says, in words: the summary and description of an alert over the
//! `detections` table, and the figure it is about — naming the feature (or that a share of the
//! columns drifted), the test or check that failed, and its figures.

use super::rules::format_value;

/// One row of `detections`, as the words need it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub model: Option<String>,
    pub version: Option<String>,
    pub feature: Option<String>,
    pub detector: String,
    pub test: Option<String>,
    pub verdict: String,
    pub statistic: Option<f64>,
    pub threshold: Option<f64>,
    pub p_value: Option<f64>,
    pub effect_size: Option<f64>,
    pub details: serde_json::Value,
}

/// An alert's texts and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Words {
    pub summary: String,
    pub description: String,
    /// What `{{ $value }}` and the `value` annotation show: the statistic, or for a failed
    /// data-quality check the share of values that failed it.
    pub value: Option<f64>,
}

/// A figure as annotations show it; tiny ones (p-values) in scientific notation, not as 0.
fn number(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-4 {
        format!("{v:.2e}")
    } else {
        format_value(v)
    }
}

fn percent(share: f64) -> String {
    format!("{}%", format_value(share * 100.0))
}

/// The data-quality problems a verdict names (`missing,out_of_range`), each with its share.
const CHECKS: [(&str, &str, &str); 4] = [
    ("missing", "missing_share", "of values missing"),
    (
        "out_of_range",
        "out_of_range_share",
        "of values outside the baseline's range",
    ),
    (
        "new_categories",
        "new_category_share",
        "of values in categories the baseline does not have",
    ),
    (
        "type_mismatch",
        "type_mismatch_share",
        "of values of another type than the baseline's",
    ),
];

impl Row {
    fn feature(&self) -> &str {
        self.feature.as_deref().unwrap_or("")
    }

    /// `model press-vision version 4.1.0`, or what of it is known.
    fn model_version(&self) -> String {
        match (&self.model, &self.version) {
            (Some(m), Some(v)) => format!("model {m} version {v}"),
            (Some(m), None) => format!("model {m}"),
            _ => "the model".into(),
        }
    }

    /// `press-vision 4.1.0: `, the start of a model's summaries.
    fn lead(&self) -> String {
        let parts: Vec<&str> = [self.model.as_deref(), self.version.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("{}: ", parts.join(" "))
        }
    }

    fn detail(&self, key: &str) -> Option<f64> {
        self.details.get(key).and_then(serde_json::Value::as_f64)
    }

    /// The figure of each problem a data-quality verdict names, in the verdict's order.
    fn quality_problems(&self) -> Vec<(&'static str, Option<f64>, &'static str)> {
        self.verdict
            .split(',')
            .filter_map(|word| CHECKS.iter().find(|(name, ..)| *name == word.trim()))
            .map(|(name, key, what)| {
                let share = if *name == "missing" {
                    self.details
                        .get(*key)
                        .and_then(|m| m.get("current"))
                        .and_then(serde_json::Value::as_f64)
                } else {
                    self.detail(key)
                };
                (*name, share, *what)
            })
            .collect()
    }
}

/// The words for one verdict.
pub fn describe(row: &Row) -> Words {
    let test = row.test.as_deref().unwrap_or("");
    let feature = row.feature();
    let (lead, mv) = (row.lead(), row.model_version());
    let figure = |name: &str, v: Option<f64>| v.map(|v| format!("{name} {}", number(v)));
    match (row.detector.as_str(), test) {
        ("drift_share", _) => {
            let share = row.statistic;
            let counts = row
                .detail("drifted_columns")
                .zip(row.detail("columns"))
                .map(|(d, n)| format!("{} of {} columns", format_value(d), format_value(n)));
            let share_text = share.map(percent).unwrap_or_else(|| "a share".into());
            let how_many = counts.unwrap_or_else(|| format!("{share_text} of the columns"));
            Words {
                summary: format!("{lead}{how_many} drifted ({share_text})"),
                description: format!(
                    "In one window of {mv}, {how_many} tested drifted: a share of {share_text}{}.",
                    row.threshold
                        .map(|t| format!(", at or above the limit of {}", percent(t)))
                        .unwrap_or_default()
                ),
                value: share,
            }
        }
        ("drift", _) => {
            let figures: Vec<String> = [
                figure("statistic", row.statistic),
                figure("threshold", row.threshold),
                figure("p-value", row.p_value),
                figure("effect size", row.effect_size),
            ]
            .into_iter()
            .flatten()
            .collect();
            Words {
                summary: format!("{lead}{feature} drifted"),
                description: format!(
                    "The {test} test on {feature} of {mv} found drift: {}.",
                    figures.join(", ")
                ),
                value: row.statistic,
            }
        }
        ("data_quality", "schema") => {
            let how = if row.verdict == "disappeared" {
                "is in the baseline but no longer arrives"
            } else {
                "arrives but is not in the baseline"
            };
            Words {
                summary: format!("{lead}feature {feature} {}", row.verdict),
                description: format!("Feature {feature} of {mv} {how}."),
                value: row.statistic,
            }
        }
        ("data_quality", _) => {
            let problems = row.quality_problems();
            let named: Vec<String> = problems
                .iter()
                .map(|(name, share, _)| match share {
                    Some(s) => format!("{name} {}", percent(*s)),
                    None => (*name).to_string(),
                })
                .collect();
            let explained: Vec<String> = problems
                .iter()
                .map(|(name, share, what)| match share {
                    Some(s) => format!("{} {what} ({name})", percent(*s)),
                    None => format!("{name} values"),
                })
                .collect();
            let limit = row
                .threshold
                .map(|t| format!("; the limit is {}", percent(t)))
                .unwrap_or_default();
            let named = if named.is_empty() {
                row.verdict.clone()
            } else {
                named.join(", ")
            };
            Words {
                summary: format!("{lead}{feature} failed the data-quality check: {named}"),
                description: format!(
                    "Feature {feature} of {mv} failed the data-quality check in one window: {}{limit}.",
                    if explained.is_empty() {
                        row.verdict.clone()
                    } else {
                        explained.join(", ")
                    }
                ),
                value: problems
                    .iter()
                    .filter_map(|(_, share, _)| *share)
                    .reduce(f64::max)
                    .or(row.statistic),
            }
        }
        ("performance_change", _) => {
            let before = row.detail("baseline");
            let after = row.detail("window");
            let change = match (before, after) {
                (Some(b), Some(a)) => format!(
                    "went from {} in the baseline to {} in one window",
                    format_value(b),
                    format_value(a)
                ),
                _ => "got worse than in the baseline".into(),
            };
            let figures: Vec<String> = [figure("p-value", row.p_value)]
                .into_iter()
                .flatten()
                .collect();
            Words {
                summary: format!("{lead}{feature} got worse"),
                description: format!(
                    "{feature} of {mv} {change} ({test} test{}).",
                    if figures.is_empty() {
                        String::new()
                    } else {
                        format!(", {}", figures.join(", "))
                    }
                ),
                value: row.statistic,
            }
        }
        ("estimated_performance", "dle") => Words {
            summary: format!("{lead}{feature} estimated to have risen"),
            description: format!(
                "{feature} of {mv}, estimated from the features of one window before its labels arrived (DLE), is {}, above the baseline's upper threshold {}.",
                row.statistic.map(format_value).unwrap_or_default(),
                row.threshold.map(format_value).unwrap_or_default()
            ),
            value: row.statistic,
        },
        ("multivariate_drift", _) => Words {
            summary: format!("{lead}the features no longer relate as in the baseline"),
            description: format!(
                "The PCA reconstruction error of one window of {mv} is {}, outside the baseline's thresholds (upper {}): the features changed how they relate to each other, even where each one alone may look unchanged.",
                row.statistic.map(format_value).unwrap_or_default(),
                row.threshold.map(format_value).unwrap_or_default()
            ),
            value: row.statistic,
        },
        ("stream_change", _) => Words {
            summary: format!("{lead}{feature} changed ({test})"),
            description: format!(
                "The {test} stream detector found a change in {feature} of {mv} at one event, after {} observations.",
                row.statistic.map(format_value).unwrap_or_default()
            ),
            value: row.statistic,
        },
        ("estimated_performance", _) => Words {
            summary: format!("{lead}{feature} estimated to have dropped"),
            description: format!(
                "{feature} of {mv}, estimated from the scores of one window before its labels arrived (CBPE), is {}, below the baseline's lower threshold {}.",
                row.statistic.map(format_value).unwrap_or_default(),
                row.threshold.map(format_value).unwrap_or_default()
            ),
            value: row.statistic,
        },
        ("machine_health", "absence") => Words {
            summary: format!("{feature} stopped arriving"),
            description: format!(
                "No points of {feature} for {}s{}.",
                row.statistic.map(format_value).unwrap_or_default(),
                row.threshold
                    .map(|t| format!(" (the limit is {}s)", format_value(t)))
                    .unwrap_or_default()
            ),
            value: row.statistic,
        },
        ("machine_health", _) => {
            let rule = row
                .details
                .get("rule")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(test);
            Words {
                summary: format!("{feature}: {rule} ({test}) violated"),
                description: format!(
                    "Machine-health rule {rule} ({test}) on {feature} is violated: {}.",
                    [
                        figure("value", row.statistic),
                        figure("limit", row.threshold)
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", ")
                ),
                value: row.statistic,
            }
        }
        (detector, _) => Words {
            summary: format!("{lead}{detector} {test} on {feature}: {}", row.verdict),
            description: format!(
                "The {detector} detector's {test} on {feature} of {mv} says {}{}.",
                row.verdict,
                figure(" with statistic", row.statistic).unwrap_or_default()
            ),
            value: row.statistic,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(detector: &str, feature: Option<&str>, test: &str, verdict: &str) -> Row {
        Row {
            model: Some("press".into()),
            version: Some("1".into()),
            feature: feature.map(str::to_owned),
            detector: detector.into(),
            test: Some(test.into()),
            verdict: verdict.into(),
            ..Row::default()
        }
    }

    #[test]
    fn an_estimated_drop_says_it_is_an_estimate_with_its_threshold() {
        let w = describe(&Row {
            statistic: Some(0.6512),
            threshold: Some(0.7734),
            ..row("estimated_performance", Some("accuracy"), "cbpe", "dropped")
        });
        assert_eq!(w.summary, "press 1: accuracy estimated to have dropped");
        assert_eq!(
            w.description,
            "accuracy of model press version 1, estimated from the scores of one window before its labels arrived (CBPE), is 0.6512, below the baseline's lower threshold 0.7734."
        );
        assert_eq!(w.value, Some(0.6512));
    }

    #[test]
    fn the_drift_share_says_how_many_columns_drifted() {
        let w = describe(&Row {
            statistic: Some(0.6),
            threshold: Some(0.5),
            details: json!({"columns": 5, "drifted_columns": 3}),
            ..row("drift_share", None, "drift_share", "drift")
        });
        assert_eq!(w.summary, "press 1: 3 of 5 columns drifted (60%)");
        assert_eq!(
            w.description,
            "In one window of model press version 1, 3 of 5 columns tested drifted: a share of 60%, at or above the limit of 50%."
        );
        assert_eq!(w.value, Some(0.6));
        assert!(!w.summary.contains("  ") && !w.description.contains("  "));
    }

    #[test]
    fn a_drifted_feature_is_named_with_its_test_and_figures() {
        let w = describe(&Row {
            statistic: Some(0.47),
            threshold: Some(0.1),
            p_value: Some(1e-12),
            effect_size: Some(0.47),
            ..row("drift", Some("f01"), "ks", "drift")
        });
        assert_eq!(w.summary, "press 1: f01 drifted");
        assert_eq!(
            w.description,
            "The ks test on f01 of model press version 1 found drift: statistic 0.47, threshold 0.1, p-value 1.00e-12, effect size 0.47."
        );
    }

    #[test]
    fn a_failed_quality_check_names_the_check_and_its_share_not_the_missing_share() {
        let details = json!({
            "column": "f01",
            "missing_share": {"reference": 0.0, "current": 0.0},
            "out_of_range_share": 0.272,
            "new_category_share": null,
            "type_mismatch_share": 0.0,
        });
        let w = describe(&Row {
            statistic: Some(0.0),
            threshold: Some(0.1),
            details: details.clone(),
            ..row("data_quality", Some("f01"), "quality", "out_of_range")
        });
        assert_eq!(
            w.summary,
            "press 1: f01 failed the data-quality check: out_of_range 27.2%"
        );
        assert_eq!(
            w.description,
            "Feature f01 of model press version 1 failed the data-quality check in one window: 27.2% of values outside the baseline's range (out_of_range); the limit is 10%."
        );
        assert_eq!(w.value, Some(0.272));
        let mut both = details;
        both["missing_share"]["current"] = json!(0.35);
        let w = describe(&Row {
            statistic: Some(0.35),
            details: both,
            ..row(
                "data_quality",
                Some("f01"),
                "quality",
                "missing,out_of_range",
            )
        });
        assert_eq!(
            w.summary,
            "press 1: f01 failed the data-quality check: missing 35%, out_of_range 27.2%"
        );
        assert_eq!(w.value, Some(0.35));
        let w = describe(&row("data_quality", Some("f09"), "schema", "appeared"));
        assert_eq!(w.summary, "press 1: feature f09 appeared");
    }

    #[test]
    fn performance_and_machine_health_name_their_figures() {
        let w = describe(&Row {
            statistic: Some(0.23),
            p_value: Some(0.001),
            details: json!({"baseline": 0.1, "window": 0.33}),
            ..row(
                "performance_change",
                Some("error_rate"),
                "ztest",
                "degraded",
            )
        });
        assert_eq!(w.summary, "press 1: error_rate got worse");
        assert_eq!(
            w.description,
            "error_rate of model press version 1 went from 0.1 in the baseline to 0.33 in one window (ztest test, p-value 0.001)."
        );
        let health = Row {
            model: None,
            version: None,
            statistic: Some(91.5),
            threshold: Some(85.0),
            details: json!({"rule": "spindle-hot"}),
            ..row(
                "machine_health",
                Some("hw_id=spindle-1"),
                "threshold",
                "alert",
            )
        };
        let w = describe(&health);
        assert_eq!(
            w.summary,
            "hw_id=spindle-1: spindle-hot (threshold) violated"
        );
        assert_eq!(
            w.description,
            "Machine-health rule spindle-hot (threshold) on hw_id=spindle-1 is violated: value 91.5, limit 85."
        );
        let w = describe(&Row {
            test: Some("absence".into()),
            statistic: Some(31.0),
            threshold: Some(30.0),
            ..health
        });
        assert_eq!(w.summary, "hw_id=spindle-1 stopped arriving");
        assert_eq!(
            w.description,
            "No points of hw_id=spindle-1 for 31s (the limit is 30s)."
        );
    }
}
