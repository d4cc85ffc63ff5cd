//! Where verdicts go: rows of the `detections` table (written in the engine's transaction) and
//! gauges on `/metrics`.

use duckdb::Connection;
use millwatch_detectors::charts::{Chart, ChartPoint, ControlChart};
use millwatch_exporters::prometheus::{MetricsExposition, OwnFamily, OwnType};

use super::machine_health::chart_kind;
use super::prediction::{Distribution, Predictions};

/// One result of one detector.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// `drift`, `drift_share`, `data_quality`, `performance`, `performance_change`, `machine_health`.
    pub detector: &'static str,
    /// A feature, `ml.prediction`, a performance metric, or a metric series.
    pub feature: String,
    /// The test, check or rule kind.
    pub test: String,
    pub statistic: Option<f64>,
    pub p_value: Option<f64>,
    pub p_value_corrected: Option<f64>,
    pub effect_size: Option<f64>,
    pub threshold: Option<f64>,
    /// Drift found, performance dropped, or a machine-health rule firing.
    pub drifted: bool,
    /// A word for people: `drift`, `no_drift`, `ok`, `alert`, `insufficient_data`, ...
    pub verdict: String,
    /// Which comparison decided (`p_value_and_effect`, `distance`, ...).
    pub decided_by: Option<String>,
    pub details: serde_json::Value,
}

impl Finding {
    pub fn new(detector: &'static str, feature: &str) -> Finding {
        Finding {
            detector,
            feature: feature.to_owned(),
            test: String::new(),
            statistic: None,
            p_value: None,
            p_value_corrected: None,
            effect_size: None,
            threshold: None,
            drifted: false,
            verdict: String::new(),
            decided_by: None,
            details: serde_json::Value::Null,
        }
    }
}

/// What a group of findings is about.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub model: Option<String>,
    pub version: Option<String>,
    pub window_start_ns: Option<i64>,
    pub window_end_ns: Option<i64>,
    pub first_event_id: Option<u64>,
    pub last_event_id: Option<u64>,
}

/// Appends findings, each with what it is about, to `detections` through the Arrow appender
/// (an `INSERT` per finding costs a query each: seconds for the findings of 20 windows).
pub fn insert_all(
    conn: &Connection,
    now_ns: i64,
    rows: &[(&Scope, &Finding)],
) -> duckdb::Result<()> {
    use crate::store::columns::{
        Kind::*, append, arrow_error, batch, bools, f64s, strings, times, u64s,
    };
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let scope = || rows.iter().map(|(s, _)| *s);
    let finding = || rows.iter().map(|(_, f)| *f);
    let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
    fn non_empty(s: &str) -> Option<&str> {
        (!s.is_empty()).then_some(s)
    }
    let details: Vec<Option<String>> = finding()
        .map(|f| (!f.details.is_null()).then(|| f.details.to_string()))
        .collect();
    let columns = batch(
        &[
            ("time", Time),
            ("window_start", Time),
            ("window_end", Time),
            ("first_event_id", U64),
            ("last_event_id", U64),
            ("model", Str),
            ("version", Str),
            ("feature", Str),
            ("detector", Str),
            ("test", Str),
            ("statistic", F64),
            ("p_value", F64),
            ("p_value_corrected", F64),
            ("effect_size", F64),
            ("threshold", F64),
            ("drifted", Bool),
            ("verdict", Str),
            ("decided_by", Str),
            ("details", Str),
        ],
        vec![
            times(n, scope().map(|_| Some(now_ns))),
            times(n, scope().map(|s| s.window_start_ns)),
            times(n, scope().map(|s| s.window_end_ns)),
            u64s(n, scope().map(|s| s.first_event_id)),
            u64s(n, scope().map(|s| s.last_event_id)),
            strings(n, scope().map(|s| s.model.as_deref())),
            strings(n, scope().map(|s| s.version.as_deref())),
            strings(n, finding().map(|f| non_empty(&f.feature))),
            strings(n, finding().map(|f| Some(f.detector))),
            strings(n, finding().map(|f| non_empty(&f.test))),
            f64s(n, finding().map(|f| finite(f.statistic))),
            f64s(n, finding().map(|f| finite(f.p_value))),
            f64s(n, finding().map(|f| finite(f.p_value_corrected))),
            f64s(n, finding().map(|f| finite(f.effect_size))),
            f64s(n, finding().map(|f| finite(f.threshold))),
            bools(n, finding().map(|f| Some(f.drifted))),
            strings(n, finding().map(|f| Some(f.verdict.as_str()))),
            strings(n, finding().map(|f| f.decided_by.as_deref())),
            strings(n, details.iter().map(Option::as_deref)),
        ],
    )
    .map_err(arrow_error)?;
    append(conn, "detections", columns)
}

/// The engine's families on `/metrics`.
#[derive(Clone)]
pub struct Gauges {
    pub drift_statistic: OwnFamily,
    pub drift_detected: OwnFamily,
    pub drift_share: OwnFamily,
    pub missing_ratio: OwnFamily,
    pub drift_threshold: OwnFamily,
    pub quality_ratio: OwnFamily,
    pub schema_change: OwnFamily,
    pub performance: OwnFamily,
    pub performance_degraded: OwnFamily,
    pub performance_estimated: OwnFamily,
    pub performance_estimated_dropped: OwnFamily,
    pub windows: OwnFamily,
    pub chart_violation: OwnFamily,
    pub chart_statistic: OwnFamily,
    pub chart_center: OwnFamily,
    pub chart_upper: OwnFamily,
    pub chart_lower: OwnFamily,
    pub prediction: OwnFamily,
    pub prediction_class_ratio: OwnFamily,
    pub health_alert: OwnFamily,
    pub model_info: OwnFamily,
    pub lag_events: OwnFamily,
    pub lag_seconds: OwnFamily,
    pub verdict_delay: OwnFamily,
}

impl Gauges {
    pub fn register(
        exposition: &MetricsExposition,
    ) -> Result<Gauges, millwatch_exporters::prometheus::ExpositionError> {
        let g = |name: &str, help: &str| exposition.register(name, help, OwnType::Gauge);
        Ok(Gauges {
            drift_statistic: g(
                "millwatch_drift_statistic",
                "Statistic of the drift test of a feature in the last closed window.",
            )?,
            drift_detected: g(
                "millwatch_drift_detected",
                "1 when the feature drifted in the last closed window, else 0.",
            )?,
            drift_share: g(
                "millwatch_drift_share",
                "Share of a model version's tested columns that drifted in the last closed window.",
            )?,
            missing_ratio: g(
                "millwatch_data_missing_ratio",
                "Share of events in the last closed window without a value for the feature.",
            )?,
            drift_threshold: g(
                "millwatch_drift_threshold",
                "Threshold the drift statistic of the feature is compared with (a distance, or the p-value level for p-value tests).",
            )?,
            quality_ratio: g(
                "millwatch_data_quality_ratio",
                "Share of the last closed window's values failing a data-quality check (out_of_range, new_category, type_mismatch).",
            )?,
            schema_change: g(
                "millwatch_data_schema_change",
                "1 when a feature appeared (change=appeared) or disappeared (change=disappeared) against the baseline in the last closed window.",
            )?,
            performance: g(
                "millwatch_model_performance",
                "Realised performance of the newest window with enough feedback.",
            )?,
            performance_degraded: g(
                "millwatch_model_performance_degraded",
                "1 when the newest labelled window performs significantly worse than the baseline, else 0.",
            )?,
            performance_estimated: g(
                "millwatch_model_performance_estimated",
                "Performance of the last closed window estimated from its scores before labels arrive (CBPE; binary classifiers with scores).",
            )?,
            performance_estimated_dropped: g(
                "millwatch_model_performance_estimated_dropped",
                "1 when the estimated performance of the last closed window is below the baseline's lower threshold, else 0.",
            )?,
            windows: exposition.register(
                "millwatch_detection_windows_total",
                "Windows closed and decided per model version.",
                OwnType::Counter,
            )?,
            chart_violation: g(
                "millwatch_control_chart_violation",
                "1 while the newest point of the series violates the chart rule, else 0.",
            )?,
            chart_statistic: g(
                "millwatch_control_chart_statistic",
                "Newest point of a control chart: the measurement (statistic=value), the EWMA (ewma), or the CUSUM sums C+ (cusum_upper) and -C- (cusum_lower), to compare with the chart's limits.",
            )?,
            chart_center: g(
                "millwatch_control_chart_center",
                "Centre line of the chart statistic: the reference period's mean (Shewhart, EWMA), 0 for CUSUM.",
            )?,
            chart_upper: g(
                "millwatch_control_chart_upper_limit",
                "Upper control limit at the newest point: mean + 3 sigma (Shewhart), the EWMA limit, or the CUSUM decision interval h sigma.",
            )?,
            chart_lower: g(
                "millwatch_control_chart_lower_limit",
                "Lower control limit at the newest point: mean - 3 sigma (Shewhart), the EWMA limit, or -h sigma (CUSUM).",
            )?,
            prediction: exposition.register(
                "millwatch_prediction",
                "Numeric predictions of a model version in the last closed window (window=current) and in its baseline (window=baseline): quantiles, sum and count.",
                OwnType::Summary,
            )?,
            prediction_class_ratio: g(
                "millwatch_prediction_class_ratio",
                "Share of a model version's predictions of each class in the last closed window (window=current) and its baseline (window=baseline); the classes past the 10 most frequent are summed as class=\"(other)\".",
            )?,
            health_alert: g(
                "millwatch_machine_health_alert",
                "1 while the machine-health rule fires for the series, else 0.",
            )?,
            model_info: g(
                "millwatch_model_info",
                "1 for each model version and the resource (service, environment, host, site, line, cell) it was seen from; join on model and version to filter model series by site.",
            )?,
            lag_events: g(
                "millwatch_detection_lag_events",
                "Stored inference events the detection engine has not read yet.",
            )?,
            verdict_delay: exposition.register(
                "millwatch_detection_verdict_delay_seconds",
                "Time from the commit of a window's last event to its verdict being stored.",
                OwnType::Histogram,
            )?,
            lag_seconds: g(
                "millwatch_detection_lag_seconds",
                "Age of the newest stored inference event the engine has not read yet.",
            )?,
        })
    }

    /// Publishes a closed window's findings.
    pub fn publish_window(
        &self,
        model: &str,
        version: &str,
        findings: &[Finding],
        windows_closed: u64,
    ) {
        self.schema_change
            .clear_where(&[("model", model), ("version", version)]);
        for f in findings {
            let feature = f.feature.as_str();
            match f.detector {
                "drift" if !f.test.is_empty() => {
                    let labels = [
                        ("model", model),
                        ("version", version),
                        ("feature", feature),
                        ("test", f.test.as_str()),
                    ];
                    if let Some(s) = f.statistic {
                        self.drift_statistic.set(&labels, s);
                    }
                    if let Some(t) = f.threshold {
                        self.drift_threshold.set(&labels, t);
                    }
                    self.drift_detected.set(
                        &[("model", model), ("version", version), ("feature", feature)],
                        f64::from(u8::from(f.drifted)),
                    );
                }
                "drift_share" => {
                    if let Some(s) = f.statistic {
                        self.drift_share
                            .set(&[("model", model), ("version", version)], s);
                    }
                }
                "data_quality" if f.test == "quality" => {
                    if let Some(s) = f.statistic {
                        self.missing_ratio.set(
                            &[("model", model), ("version", version), ("feature", feature)],
                            s,
                        );
                    }
                    for (check, key) in [
                        ("out_of_range", "out_of_range_share"),
                        ("new_category", "new_category_share"),
                        ("type_mismatch", "type_mismatch_share"),
                    ] {
                        if let Some(share) = f.details.get(key).and_then(serde_json::Value::as_f64)
                        {
                            self.quality_ratio.set(
                                &[
                                    ("model", model),
                                    ("version", version),
                                    ("feature", feature),
                                    ("check", check),
                                ],
                                share,
                            );
                        }
                    }
                }
                "estimated_performance" => {
                    let labels = [("model", model), ("version", version), ("metric", feature)];
                    if let Some(v) = f.statistic {
                        self.performance_estimated.set(&labels, v);
                    }
                    self.performance_estimated_dropped
                        .set(&labels, f64::from(u8::from(f.drifted)));
                }
                "data_quality" if f.test == "schema" => {
                    self.schema_change.set(
                        &[
                            ("model", model),
                            ("version", version),
                            ("feature", feature),
                            ("change", f.verdict.as_str()),
                        ],
                        1.0,
                    );
                }
                _ => {}
            }
        }
        self.windows.set(
            &[("model", model), ("version", version)],
            windows_closed as f64,
        );
    }

    /// Publishes the prediction distributions of a model version's last closed window and of
    /// its baseline, replacing the previous window's (its classes may differ).
    pub fn publish_predictions(&self, model: &str, version: &str, predictions: &Predictions) {
        let key = [("model", model), ("version", version)];
        self.prediction.clear_where(&key);
        self.prediction_class_ratio.clear_where(&key);
        for (window, side) in [
            ("current", &predictions.current),
            ("baseline", &predictions.baseline),
        ] {
            match side {
                Distribution::Quantiles {
                    quantiles,
                    sum,
                    count,
                } => {
                    self.prediction.set_summary(
                        &[("model", model), ("version", version), ("window", window)],
                        quantiles,
                        *sum,
                        *count,
                    );
                }
                Distribution::Classes(cs) => {
                    for (class, share) in cs {
                        self.prediction_class_ratio.set(
                            &[
                                ("model", model),
                                ("version", version),
                                ("class", class),
                                ("window", window),
                            ],
                            *share,
                        );
                    }
                }
                Distribution::Empty => {}
            }
        }
    }

    /// Publishes a control chart's newest point: the measurement, the chart's own statistic,
    /// its centre line and its limits at that point.
    pub fn publish_chart(
        &self,
        (health_rule, metric, series): (&str, &str, &str),
        chart: &Chart,
        measurement: f64,
        point: &ChartPoint,
    ) {
        let kind = chart_kind(chart);
        let center = match chart {
            // The CUSUM sums start at 0 and are compared with ±h σ.
            Chart::Cusum(_) => 0.0,
            _ => chart.limits().center,
        };
        let labels = [
            ("health_rule", health_rule),
            ("metric", metric),
            ("series", series),
            ("chart", kind),
        ];
        self.chart_center.set(&labels, center);
        self.chart_upper.set(&labels, point.upper_limit);
        self.chart_lower.set(&labels, point.lower_limit);
        let mut statistics = vec![("value", measurement)];
        match chart {
            Chart::Shewhart(_) => {}
            Chart::Ewma(_) => statistics.push(("ewma", point.statistic)),
            Chart::Cusum(c) => {
                let (upper, lower) = c.sums();
                statistics.push(("cusum_upper", upper));
                // `0.0 - x`, not `-x`: no negative zero on /metrics while C− is 0.
                statistics.push(("cusum_lower", 0.0 - lower));
            }
        }
        for (statistic, v) in statistics {
            self.chart_statistic.set(
                &[
                    ("health_rule", health_rule),
                    ("metric", metric),
                    ("series", series),
                    ("chart", kind),
                    ("statistic", statistic),
                ],
                v,
            );
        }
    }

    /// Publishes a window's measured performance (`judgement` false) or its drop verdicts
    /// (`judgement` true) in place of the model version's previous ones of that kind: a metric
    /// this window leaves undefined (no ROC AUC with one class, say) is not left showing an
    /// older window's value. Verdicts come once per window, measurements with every label, so
    /// each kind shows its own newest window.
    pub fn publish_performance(
        &self,
        model: &str,
        version: &str,
        judgement: bool,
        findings: &[&Finding],
    ) {
        let key = [("model", model), ("version", version)];
        if judgement {
            self.performance_degraded.clear_where(&key);
        } else {
            self.performance.clear_where(&key);
        }
        for f in findings {
            match f.detector {
                "performance" => {
                    if let Some(v) = f.statistic {
                        self.performance.set(
                            &[
                                ("model", model),
                                ("version", version),
                                ("metric", &f.feature),
                            ],
                            v,
                        );
                    }
                }
                // Untested is not "as the baseline": no series.
                "performance_change" if f.verdict != "not_tested" => {
                    self.performance_degraded.set(
                        &[
                            ("model", model),
                            ("version", version),
                            ("metric", &f.feature),
                        ],
                        f64::from(u8::from(f.drifted)),
                    );
                }
                _ => {}
            }
        }
    }
}
