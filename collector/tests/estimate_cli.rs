//! `millwatch estimate` and `millwatch drift --multivariate` as a user runs them: the binary on
//! the NannyML conformance cases in `detectors/testdata/perfest` (CSV and Parquet), its JSON
//! compared with NannyML's figures per analysis chunk (CBPE abs 1e-9, ROC AUC 1e-7; DLE 5 %;
//! reconstruction error 1e-7), the realised values beside the estimates, and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../detectors/testdata/perfest")
        .join(name)
}

fn file(name: &str, f: &str) -> String {
    case(name).join(f).to_str().expect("utf-8 path").to_string()
}

fn millwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_millwatch"))
        .args(args)
        .output()
        .expect("runs millwatch")
}

fn json_of(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(case(name).join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("valid JSON")
}

/// NannyML's analysis rows (the reference rows come first in expected.json).
fn analysis_rows(rows: &Value) -> Vec<&Value> {
    rows.as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["period"] == "analysis")
        .collect()
}

fn close(got: &Value, want: &Value, tolerance: f64, what: &str) {
    let (g, w) = (
        got.as_f64().unwrap_or_else(|| panic!("{what}: {got}")),
        want.as_f64().unwrap_or_else(|| panic!("{what}: {want}")),
    );
    assert!((g - w).abs() <= tolerance, "{what}: {g} vs {w}");
}

fn binary_args<'a>(reference: &'a str, analysis: &'a str) -> Vec<&'a str> {
    vec![
        "estimate",
        "--reference",
        reference,
        "--analysis",
        analysis,
        "--problem",
        "binary",
        "--target",
        "y_true",
        "--score",
        "y_pred_proba",
        "--prediction",
        "y_pred",
        "--chunk-size",
        "1000",
        "--metrics",
        "roc_auc,accuracy,f1,precision,recall",
        "--format",
        "json",
    ]
}

/// Every estimated metric of `report` against NannyML's CBPE figures, and the realised values
/// against its PerformanceCalculator's.
fn check_cbpe(report: &Value, name: &str) {
    let exp = expected(name);
    assert_eq!(report["method"], "cbpe");
    assert_eq!(
        report["calibration"]["needs_calibration"],
        exp["cbpe"]["calibration"]["needs_calibration"]
    );
    let metrics = report["metrics"].as_array().expect("metrics");
    assert_eq!(metrics.len(), 5);
    for m in metrics {
        let metric = m["metric"].as_str().expect("name");
        let tolerance = if metric == "roc_auc" { 1e-7 } else { 1e-9 };
        let want = analysis_rows(&exp["cbpe"]["metrics"][metric]["chunks"]);
        let got = m["chunks"].as_array().expect("chunks");
        assert_eq!(got.len(), want.len(), "{name}/{metric}");
        for (g, w) in got.iter().zip(want) {
            let at = format!("{name}/{metric}/chunk {}", g["chunk"]);
            close(&g["value"], &w["estimated"], tolerance, &at);
            close(&g["sampling_error"], &w["sampling_error"], 1e-9, &at);
            close(
                &g["lower_confidence_bound"],
                &w["lower_confidence_bound"],
                tolerance,
                &at,
            );
            close(
                &g["upper_confidence_bound"],
                &w["upper_confidence_bound"],
                tolerance,
                &at,
            );
            close(&g["thresholds"]["lower"], &w["lower_threshold"], 1e-9, &at);
            close(&g["thresholds"]["upper"], &w["upper_threshold"], 1e-9, &at);
            close(&g["realized"], &w["realized"], 1e-9, &at);
            if w["distance_to_nearest_threshold"]
                .as_f64()
                .is_some_and(|d| d > 1e-6)
            {
                assert_eq!(g["alert"], w["alert"], "{at}: alert");
            }
        }
    }
}

#[test]
fn estimate_binary_matches_nannyml_cbpe_per_chunk() {
    for name in ["covariate_shift", "concept_drift"] {
        let (r, a) = (file(name, "reference.csv"), file(name, "analysis.csv"));
        check_cbpe(&json_of(&millwatch(&binary_args(&r, &a))), name);
    }
}

#[test]
fn estimate_reads_parquet_like_csv() {
    let name = "covariate_shift";
    let tmp = std::env::temp_dir().join(format!("millwatch-estimate-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tmp");
    let conn = duckdb::Connection::open_in_memory().expect("duckdb");
    for side in ["reference", "analysis"] {
        conn.execute_batch(&format!(
            "COPY (SELECT * FROM read_csv('{}')) TO '{}' (FORMAT parquet)",
            file(name, &format!("{side}.csv")),
            tmp.join(format!("{side}.parquet")).display()
        ))
        .expect("write parquet");
    }
    let (r, a) = (
        tmp.join("reference.parquet")
            .to_str()
            .expect("path")
            .to_string(),
        tmp.join("analysis.parquet")
            .to_str()
            .expect("path")
            .to_string(),
    );
    check_cbpe(&json_of(&millwatch(&binary_args(&r, &a))), name);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn estimate_regression_comes_within_five_percent_of_nannyml_dle() {
    let name = "regression_rul";
    let report = json_of(&millwatch(&[
        "estimate",
        "--reference",
        &file(name, "reference.csv"),
        "--analysis",
        &file(name, "analysis.csv"),
        "--problem",
        "regression",
        "--target",
        "y_true",
        "--prediction",
        "y_pred",
        "--chunk-size",
        "1000",
        "--format",
        "json",
    ]));
    let exp = expected(name);
    assert_eq!(report["method"], "dle");
    for m in report["metrics"].as_array().expect("metrics") {
        let metric = m["metric"].as_str().expect("name");
        let want = analysis_rows(&exp["dle"]["metrics"][metric]["chunks"]);
        for (g, w) in m["chunks"].as_array().expect("chunks").iter().zip(want) {
            let at = format!("{metric}/chunk {}", g["chunk"]);
            let (est, nanny) = (
                g["value"].as_f64().expect("estimate"),
                w["estimated"].as_f64().expect("NannyML"),
            );
            assert!(
                (est - nanny).abs() / nanny <= 0.05,
                "{at}: {est} vs {nanny}"
            );
            close(&g["thresholds"]["upper"], &w["upper_threshold"], 1e-9, &at);
            close(&g["realized"], &w["realized"], 1e-9, &at);
        }
        // The shift from chunk 5 on: every shifted chunk alerts, as NannyML's.
        let alerts: Vec<bool> = m["chunks"]
            .as_array()
            .expect("chunks")
            .iter()
            .map(|c| c["alert"] == true)
            .collect();
        assert!(alerts[5..].iter().all(|a| *a), "{metric}: {alerts:?}");
    }
}

#[test]
fn table_output_shows_estimate_band_realised_and_alert() {
    let name = "covariate_shift";
    let out = millwatch(&[
        "estimate",
        "--reference",
        &file(name, "reference.csv"),
        "--analysis",
        &file(name, "analysis.csv"),
        "--problem",
        "binary",
        "--target",
        "y_true",
        "--score",
        "y_pred_proba",
        "--prediction",
        "y_pred",
        "--chunk-size",
        "1000",
        "--metrics",
        "accuracy",
        "--fail-on-alert",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "alerts with --fail-on-alert: {text}"
    );
    assert!(
        text.contains("accuracy (cbpe), thresholds [0.8081, 0.8543]"),
        "{text}"
    );
    // Chunk 5: estimated 0.7688, realised 0.7740, alert.
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("5 "))
        .expect("chunk 5 row");
    assert!(
        row.contains("0.7688") && row.contains("0.7740") && row.ends_with("ALERT"),
        "{row}"
    );
}

#[test]
fn bad_input_says_what_to_do() {
    let name = "covariate_shift";
    let (r, a) = (file(name, "reference.csv"), file(name, "analysis.csv"));
    let base = [
        "estimate",
        "--reference",
        &r,
        "--analysis",
        &a,
        "--target",
        "y_true",
        "--prediction",
        "y_pred",
        "--chunk-size",
        "1000",
    ];
    let run = |extra: &[&str]| {
        let out = millwatch(&[&base[..], extra].concat());
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(run(&["--problem", "binary"]).contains("needs --score"));
    assert!(
        run(&["--problem", "binary", "--score", "rpm"])
            .contains("must be a probability between 0 and 1")
    );
    assert!(
        run(&[
            "--problem",
            "binary",
            "--score",
            "y_pred_proba",
            "--metrics",
            "auc"
        ])
        .contains("use one of roc_auc")
    );
    assert!(run(&["--problem", "binary", "--score", "nope"]).contains("no column 'nope'"));
    assert!(
        run(&["--problem", "regression", "--score", "y_pred_proba"])
            .contains("--score applies to classifiers")
    );
}

#[test]
fn multivariate_drift_matches_nannyml_reconstruction_error() {
    for name in ["correlation_break", "covariate_shift"] {
        let out = millwatch(&[
            "drift",
            "--multivariate",
            "--chunk-size",
            "1000",
            "--reference",
            &file(name, "reference.csv"),
            "--current",
            &file(name, "analysis.csv"),
            "--columns",
            "air_temp_k,process_temp_k,rpm,torque_nm,tool_wear_min,machine_type",
            "--format",
            "json",
        ]);
        let report = json_of(&out);
        let exp = &expected(name)["data_reconstruction"];
        assert_eq!(
            report["components"],
            exp["fitted"]["pca_n_components_selected"]
        );
        let want = analysis_rows(&exp["chunks"]);
        let got = report["chunks"].as_array().expect("chunks");
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            let at = format!("{name}/chunk {}", g["chunk"]);
            close(&g["value"], &w["value"], 1e-7, &at);
            close(&g["sampling_error"], &w["sampling_error"], 1e-7, &at);
            close(
                &g["thresholds"]["upper"],
                &exp["upper_threshold"],
                1e-7,
                &at,
            );
            if w["distance_to_nearest_threshold"]
                .as_f64()
                .is_some_and(|d| d > 1e-6)
            {
                assert_eq!(g["alert"], w["alert"], "{at}: alert");
            }
        }
    }
    let missing = millwatch(&[
        "drift",
        "--multivariate",
        "--reference",
        &file("correlation_break", "reference.csv"),
        "--current",
        &file("correlation_break", "analysis.csv"),
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("needs --chunk-size"));
}

#[test]
fn estimate_multiclass_matches_nannyml_cbpe_per_chunk() {
    let name = "multiclass_tool_state";
    let (r, a) = (file(name, "reference.csv"), file(name, "analysis.csv"));
    let report = json_of(&millwatch(&[
        "estimate",
        "--reference",
        &r,
        "--analysis",
        &a,
        "--problem",
        "multiclass",
        "--target",
        "y_true",
        "--score",
        "ok=y_pred_proba_ok,worn=y_pred_proba_worn,overstrained=y_pred_proba_overstrained",
        "--prediction",
        "y_pred",
        "--chunk-size",
        "1000",
        "--format",
        "json",
    ]));
    let want = expected(name);
    let metrics = report["metrics"].as_array().expect("metrics");
    assert_eq!(metrics.len(), 6);
    for m in metrics {
        let metric = m["metric"].as_str().expect("name");
        let rows = analysis_rows(&want["cbpe"]["metrics"][metric]["chunks"]);
        let chunks = m["chunks"].as_array().expect("chunks");
        assert_eq!(chunks.len(), rows.len(), "{metric}");
        for (c, w) in chunks.iter().zip(rows) {
            let at = format!("{metric} chunk {}", c["chunk"]);
            close(&c["value"], &w["estimated"], 1e-9, &at);
            close(&c["sampling_error"], &w["sampling_error"], 1e-12, &at);
            close(&c["realized"], &w["realized"], 1e-12, &at);
            assert_eq!(c["alert"], w["alert"], "{at}");
        }
    }
    let bad = millwatch(&[
        "estimate",
        "--reference",
        &r,
        "--analysis",
        &a,
        "--problem",
        "multiclass",
        "--target",
        "y_true",
        "--score",
        "ok=y_pred_proba_ok,worn=y_pred_proba_worn",
        "--prediction",
        "y_pred",
        "--chunk-size",
        "1000",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("at least 3 classes"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
