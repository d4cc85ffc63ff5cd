//! Conformance with NannyML 0.13.1 on the cases copied from `shared/conformance/perfest` into
//! `testdata/perfest`: CBPE estimates, sampling errors, bands, thresholds and alerts per chunk
//! (abs 1e-9, ROC AUC 1e-7), the realised metrics (abs 1e-9), and the PCA reconstruction error
//! (abs 1e-7, the same number of components); alerts equal wherever NannyML's value is more
//! than 1e-6 from a threshold. The analysis labels are read only for the realised metrics.

use std::collections::BTreeMap;
use std::path::PathBuf;

use millwatch_detectors::dataset::{ColumnValues, Dataset};
use millwatch_detectors::estimation::ChunkValue;
use millwatch_detectors::estimation::cbpe::{
    BinaryOutputs, Calibration, Cbpe, ClassificationMetric, MetricChunks,
};
use millwatch_detectors::estimation::dle::{Dle, NannySettings, RegressionMetric};
use millwatch_detectors::estimation::reconstruction::{DEFAULT_VARIANCE, Reconstruction};
use serde_json::Value;

const CLASSIFICATION: [&str; 3] = ["covariate_shift", "concept_drift", "correlation_break"];
const ALL: [&str; 4] = [
    "covariate_shift",
    "concept_drift",
    "correlation_break",
    "regression_rul",
];
const FEATURES: [&str; 6] = [
    "air_temp_k",
    "process_temp_k",
    "rpm",
    "torque_nm",
    "tool_wear_min",
    "machine_type",
];

fn case_file(case: &str, file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/perfest")
        .join(case)
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dataset(case: &str, file: &str) -> Dataset {
    Dataset::from_csv_str(&case_file(case, file)).expect("csv parses")
}

fn expected(case: &str) -> Value {
    serde_json::from_str(&case_file(case, "expected.json")).expect("json")
}

fn numbers(data: &Dataset, name: &str) -> Vec<f64> {
    match &data.column(name).expect("column").values {
        ColumnValues::Numeric(v) => v.iter().map(|x| x.expect("present")).collect(),
        ColumnValues::Categorical(_) => panic!("{name} is not numeric"),
    }
}

fn flags(data: &Dataset, name: &str) -> Vec<bool> {
    numbers(data, name).into_iter().map(|v| v == 1.0).collect()
}

fn opt(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// The largest absolute difference per figure, and every mismatch.
#[derive(Default)]
struct Tally {
    worst: BTreeMap<String, f64>,
    failures: Vec<String>,
}

impl Tally {
    fn close(&mut self, what: &str, got: Option<f64>, want: Option<f64>, tolerance: f64) {
        self.close_at(what, what, got, want, tolerance);
    }

    /// As `close`, with `place` (case, chunk) named in a failure.
    fn close_at(
        &mut self,
        what: &str,
        place: &str,
        got: Option<f64>,
        want: Option<f64>,
        tolerance: f64,
    ) {
        match (got, want) {
            (Some(g), Some(w)) => {
                let d = (g - w).abs();
                let e = self.worst.entry(what.to_string()).or_default();
                *e = e.max(d);
                if d.is_nan() || d > tolerance {
                    self.failures
                        .push(format!("{what}: {g} vs {w} (|diff| {d:e})"));
                }
            }
            (None, None) => {}
            (g, w) => self.failures.push(format!("{place}: {g:?} vs {w:?}")),
        }
    }

    /// A chunk row against NannyML's: value, sampling error, bounds, thresholds, alert.
    fn row(
        &mut self,
        what: &str,
        place: &str,
        got: &ChunkValue,
        want: &Value,
        value_key: &str,
        tolerance: f64,
    ) {
        for (key, g, w) in [
            ("value", got.value, &want[value_key]),
            (
                "sampling_error",
                Some(got.sampling_error),
                &want["sampling_error"],
            ),
            (
                "lower_confidence_bound",
                got.lower_confidence_bound,
                &want["lower_confidence_bound"],
            ),
            (
                "upper_confidence_bound",
                got.upper_confidence_bound,
                &want["upper_confidence_bound"],
            ),
            (
                "lower_threshold",
                got.thresholds.lower,
                &want["lower_threshold"],
            ),
            (
                "upper_threshold",
                got.thresholds.upper,
                &want["upper_threshold"],
            ),
        ] {
            // Realised rows carry no confidence bounds.
            if want.get(key).is_some() || key == "value" {
                let (what, place) = (format!("{what}.{key}"), format!("{place}.{key}"));
                self.close_at(&what, &place, g, opt(w), tolerance);
            }
        }
        let distance = opt(&want["distance_to_nearest_threshold"]).unwrap_or(f64::INFINITY);
        if distance > 1e-6 && Some(got.alert) != want["alert"].as_bool() {
            self.failures
                .push(format!("{place}.alert: {} vs {}", got.alert, want["alert"]));
        }
    }

    fn finish(self, name: &str) {
        for (what, d) in &self.worst {
            println!("{name}: max |diff| {d:.2e}  {what}");
        }
        assert!(
            self.failures.is_empty(),
            "{name}: {} mismatches:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

/// Rows of a metric: reference chunks then analysis chunks.
fn both_periods(reference: &MetricChunks, analysis: &MetricChunks) -> Vec<(String, ChunkValue)> {
    reference
        .chunks
        .iter()
        .map(|c| (format!("reference[{}]", c.chunk), c.clone()))
        .chain(
            analysis
                .chunks
                .iter()
                .map(|c| (format!("analysis[{}]", c.chunk), c.clone())),
        )
        .collect()
}

/// A metric's name with the case, for the tally (folds the per-metric maxima).
fn key(metric: ClassificationMetric, what: &str) -> String {
    format!("{}.{what}", metric.name())
}

#[test]
fn cbpe_matches_nannyml_on_every_classification_case() {
    let mut tally = Tally::default();
    let metrics: Vec<ClassificationMetric> = ["roc_auc", "accuracy", "f1", "precision", "recall"]
        .iter()
        .map(|m| ClassificationMetric::parse(m).expect("metric"))
        .collect();
    for case in CLASSIFICATION {
        let exp = expected(case);
        let (reference, analysis) = (
            dataset(case, "reference.csv"),
            dataset(case, "analysis.csv"),
        );
        let (rs, rp, ry) = (
            numbers(&reference, "y_pred_proba"),
            flags(&reference, "y_pred"),
            flags(&reference, "y_true"),
        );
        let (scores, predicted) = (
            numbers(&analysis, "y_pred_proba"),
            flags(&analysis, "y_pred"),
        );
        let ref_outputs = BinaryOutputs {
            scores: &rs,
            predicted: &rp,
        };
        let outputs = BinaryOutputs {
            scores: &scores,
            predicted: &predicted,
        };
        let cbpe = Cbpe::fit(ref_outputs, &ry, 1000, &metrics, Calibration::Auto).expect("fit");

        // The calibration decision and the isotonic breakpoints.
        let cal = &exp["cbpe"]["calibration"];
        assert_eq!(
            Some(cbpe.calibration.needs_calibration),
            cal["needs_calibration"].as_bool(),
            "{case}: calibration decision (ours: ECE {:?} -> {:?})",
            cbpe.calibration.ece_before,
            cbpe.calibration.ece_after
        );
        if let Some(iso) = &cbpe.calibrator {
            let xs = cal["isotonic_X_thresholds"].as_array().expect("X");
            let ys = cal["isotonic_y_thresholds"].as_array().expect("y");
            assert_eq!(iso.x.len(), xs.len(), "{case}: isotonic breakpoints");
            for (i, (x, y)) in xs.iter().zip(ys).enumerate() {
                tally.close("isotonic.x", Some(iso.x[i]), opt(x), 0.0);
                tally.close("isotonic.y", Some(iso.y[i]), opt(y), 1e-12);
            }
        }
        for f in &cbpe.metrics {
            let comp = &exp["cbpe"]["sampling_error_components"][f.metric.name()];
            tally.close(
                &key(f.metric, "se_std"),
                Some(f.sampling_error.std),
                opt(&comp[0]),
                1e-9,
            );
            if f.metric != ClassificationMetric::Accuracy {
                tally.close(
                    &key(f.metric, "se_fraction"),
                    Some(f.sampling_error.fraction),
                    opt(&comp[1]),
                    1e-12,
                );
            }
        }

        // Estimates: reference chunks, then analysis chunks without labels.
        let on_reference = cbpe.estimate(ref_outputs).expect("estimate reference");
        let on_analysis = cbpe.estimate(outputs).expect("estimate analysis");
        // Realised: NannyML's PerformanceCalculator with the analysis labels.
        let actual = flags(&analysis, "y_true");
        let real_ref = cbpe.realized(ref_outputs, &ry).expect("realised reference");
        let real_ana = cbpe.realized(outputs, &actual).expect("realised analysis");
        for (i, metric) in metrics.iter().enumerate() {
            let tolerance = if *metric == ClassificationMetric::RocAuc {
                1e-7
            } else {
                1e-9
            };
            let want = exp["cbpe"]["metrics"][metric.name()]["chunks"]
                .as_array()
                .expect("chunks");
            let got = both_periods(&on_reference[i], &on_analysis[i]);
            assert_eq!(
                got.len(),
                want.len(),
                "{case}/{}: chunk count",
                metric.name()
            );
            for ((at, g), w) in got.iter().zip(want) {
                let place = format!("{case}/{}/estimated/{at}", metric.name());
                tally.row(
                    &key(*metric, "estimated"),
                    &place,
                    g,
                    w,
                    "estimated",
                    tolerance,
                );
            }
            let want_real = exp["realized_performance"]["metrics"][metric.name()]
                .as_array()
                .expect("realised rows");
            let got_real = both_periods(&real_ref[i], &real_ana[i]);
            assert_eq!(got_real.len(), want_real.len());
            for ((at, g), w) in got_real.iter().zip(want_real) {
                let place = format!("{case}/{}/realized/{at}", metric.name());
                tally.row(&key(*metric, "realized"), &place, g, w, "value", 1e-9);
            }
        }
    }
    tally.finish("cbpe");
}

#[test]
fn reconstruction_error_matches_nannyml_on_every_case() {
    let mut tally = Tally::default();
    for case in ALL {
        let exp = &expected(case)["data_reconstruction"];
        let (reference, analysis) = (
            dataset(case, "reference.csv"),
            dataset(case, "analysis.csv"),
        );
        let model =
            Reconstruction::fit(&reference, &FEATURES, 1000, DEFAULT_VARIANCE).expect("fit");
        assert_eq!(
            Some(model.components.len() as u64),
            exp["fitted"]["pca_n_components_selected"].as_u64(),
            "{case}: components kept"
        );
        for (i, r) in exp["fitted"]["pca_explained_variance_ratio_kept"]
            .as_array()
            .expect("ratios")
            .iter()
            .enumerate()
        {
            tally.close(
                "explained_variance_ratio",
                Some(model.explained_variance_ratio[i]),
                opt(r),
                1e-7,
            );
        }
        tally.close(
            "lower_threshold",
            model.thresholds.lower,
            opt(&exp["lower_threshold"]),
            1e-7,
        );
        tally.close(
            "upper_threshold",
            model.thresholds.upper,
            opt(&exp["upper_threshold"]),
            1e-7,
        );
        let got: Vec<ChunkValue> = model
            .chunks(&reference)
            .expect("reference chunks")
            .into_iter()
            .chain(model.chunks(&analysis).expect("analysis chunks"))
            .collect();
        let want = exp["chunks"].as_array().expect("chunks");
        assert_eq!(got.len(), want.len(), "{case}: chunk count");
        for (g, w) in got.iter().zip(want) {
            let place = format!("{case}/{}/chunk {}", w["period"], g.chunk);
            tally.row("reconstruction", &place, g, w, "value", 1e-7);
        }
    }
    tally.finish("reconstruction");
}

/// Whether any analysis chunk from row 5000 on (where the cases drift) alerts, per metric.
fn shifted_alerts(per_metric: &[MetricChunks]) -> Vec<(ClassificationMetric, bool)> {
    per_metric
        .iter()
        .map(|m| (m.metric, m.chunks[5..].iter().all(|c| c.alert)))
        .collect()
}

/// CBPE sees what covariate shift does to performance, but not concept drift (only P(y|x)
/// changes; the scores keep their distribution): there the estimate stays quiet while the
/// realised ROC AUC and accuracy, once labels arrive, alert on every drifted chunk.
#[test]
fn concept_drift_is_invisible_to_cbpe_and_visible_to_realised_performance() {
    let metrics = [ClassificationMetric::RocAuc, ClassificationMetric::Accuracy];
    for (case, cbpe_sees_it) in [("covariate_shift", true), ("concept_drift", false)] {
        let (reference, analysis) = (
            dataset(case, "reference.csv"),
            dataset(case, "analysis.csv"),
        );
        let (rs, rp) = (
            numbers(&reference, "y_pred_proba"),
            flags(&reference, "y_pred"),
        );
        let (scores, predicted) = (
            numbers(&analysis, "y_pred_proba"),
            flags(&analysis, "y_pred"),
        );
        let reference_outputs = BinaryOutputs {
            scores: &rs,
            predicted: &rp,
        };
        let outputs = BinaryOutputs {
            scores: &scores,
            predicted: &predicted,
        };
        let cbpe = Cbpe::fit(
            reference_outputs,
            &flags(&reference, "y_true"),
            1000,
            &metrics,
            Calibration::Auto,
        )
        .expect("fit");
        let estimated = cbpe.estimate(outputs).expect("estimate");
        for (metric, all_alert) in shifted_alerts(&estimated) {
            assert_eq!(
                all_alert,
                cbpe_sees_it,
                "{case}: estimated {}",
                metric.name()
            );
        }
        let none_alert = estimated
            .iter()
            .all(|m| m.chunks[5..].iter().all(|c| !c.alert));
        assert_eq!(none_alert, !cbpe_sees_it, "{case}: estimated alerts");
        let realised = cbpe
            .realized(outputs, &flags(&analysis, "y_true"))
            .expect("realised");
        for (metric, all_alert) in shifted_alerts(&realised) {
            assert!(
                all_alert,
                "{case}: realised {} alerts on every drifted chunk",
                metric.name()
            );
        }
    }
}

/// DLE on `regression_rul`: thresholds, sampling errors and realised values as NannyML's
/// (abs 1e-9); the estimates, which depend on the gradient-boosting library, within 5 % per
/// chunk, moving the same way between the unshifted (0-4) and shifted (5-9) halves, and alerting
/// as NannyML's wherever its estimate is more than 5 % of the threshold away from it.
#[test]
fn dle_comes_within_the_stated_tolerance_of_nannyml() {
    let case = "regression_rul";
    let exp = expected(case);
    let (reference, analysis) = (
        dataset(case, "reference.csv"),
        dataset(case, "analysis.csv"),
    );
    let dle = Dle::fit(
        &reference,
        &FEATURES,
        &numbers(&reference, "y_pred"),
        &numbers(&reference, "y_true"),
        1000,
        &RegressionMetric::ALL,
        NannySettings::default(),
    )
    .expect("fit");
    let predicted = numbers(&analysis, "y_pred");
    let on_reference = dle
        .estimate(&reference, &numbers(&reference, "y_pred"))
        .expect("estimate reference");
    let on_analysis = dle
        .estimate(&analysis, &predicted)
        .expect("estimate analysis");
    let realised = dle
        .realized(&predicted, &numbers(&analysis, "y_true"))
        .expect("realised");
    let mut tally = Tally::default();
    for (i, metric) in RegressionMetric::ALL.iter().enumerate() {
        let name = metric.name();
        let want = exp["dle"]["metrics"][name]["chunks"]
            .as_array()
            .expect("chunks");
        let rows: Vec<&ChunkValue> = on_reference[i]
            .chunks
            .iter()
            .chain(&on_analysis[i].chunks)
            .collect();
        assert_eq!(rows.len(), want.len());
        let mut worst_relative: f64 = 0.0;
        for (k, (g, w)) in rows.iter().zip(want).enumerate() {
            let place = format!("{name}/{}[{}]", w["period"], g.chunk);
            for (key, got) in [
                ("sampling_error", Some(g.sampling_error)),
                ("lower_threshold", g.thresholds.lower),
                ("upper_threshold", g.thresholds.upper),
            ] {
                let (what, at) = (format!("{name}.{key}"), format!("{place}.{key}"));
                tally.close_at(&what, &at, got, opt(&w[key]), 1e-9);
            }
            let estimate = g.value.expect("estimate");
            let nanny = opt(&w["estimated"]).expect("NannyML estimate");
            let relative = (estimate - nanny).abs() / nanny;
            worst_relative = worst_relative.max(relative);
            if relative > 0.05 {
                tally
                    .failures
                    .push(format!("{place}: {estimate} vs {nanny} ({relative:.3})"));
            }
            let thresholds = [g.thresholds.lower, g.thresholds.upper];
            let far = thresholds
                .iter()
                .flatten()
                .all(|t| (nanny - t).abs() > 0.05 * t.abs());
            if far && Some(g.alert) != w["alert"].as_bool() {
                tally
                    .failures
                    .push(format!("{place}.alert: {} vs {}", g.alert, w["alert"]));
            }
            if k >= 5 {
                let realised_row = &realised[i].chunks[k - 5];
                let at = format!("{place}.realized");
                tally.close_at(
                    &format!("{name}.realized"),
                    &at,
                    realised_row.value,
                    opt(&w["realized"]),
                    1e-9,
                );
            }
        }
        let half = |rows: &[&ChunkValue], from: usize| {
            rows[from..from + 5]
                .iter()
                .map(|c| c.value.expect("value"))
                .sum::<f64>()
                / 5.0
        };
        let theirs = |from: usize| {
            want[from..from + 5]
                .iter()
                .map(|w| opt(&w["estimated"]).expect("estimate"))
                .sum::<f64>()
                / 5.0
        };
        // Analysis chunks 0-4 are rows 5..10, chunks 5-9 rows 10..15.
        assert_eq!(
            half(&rows, 10) > half(&rows, 5),
            theirs(10) > theirs(5),
            "{name}: direction of change"
        );
        println!("dle: {name} worst relative difference of the estimate {worst_relative:.4}");
    }
    tally.finish("dle");
}
