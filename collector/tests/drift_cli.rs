//! `millwatch drift` as a user runs it: the binary on the conformance data, as CSV and as
//! Parquet, with the JSON's statistics and p-values compared with scipy's figures, within the
//! tolerance the conformance cases state.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../detectors/tests/support/tolerance.rs"]
mod tolerance;
use tolerance::{p_close, p_relative_error, statistic_close};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_millwatch")
}

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../detectors/testdata/drift")
        .join(name)
}

fn drift(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("drift")
        .args(args)
        .output()
        .expect("runs millwatch")
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.code().is_some(), "killed: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn expected(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(case(name).join("expected.json")).expect("expected.json");
    let expected: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    // The figures are compared within the tolerance the file states.
    assert_eq!(
        expected["definitions"]["tolerance"],
        tolerance::DEFINITION,
        "{name}"
    );
    expected
}

/// Checks a test's statistic and p-value (`got`: a column, or one entry of its `tests`) against
/// the expected file's figures for that test (`want`).
fn check_figures(got: &serde_json::Value, want: &serde_json::Value, what: &str) {
    let stat = want["statistic"].as_f64().expect("expected statistic");
    let have = got["statistic"].as_f64().expect("statistic");
    assert!(
        statistic_close(have, stat),
        "{what}: statistic {have} vs {stat}"
    );
    match (got["p_value"].as_f64(), want["p_value"].as_f64()) {
        (Some(have), Some(p)) => assert!(
            p_close(have, p),
            "{what}: p-value {have:e} vs {p:e} (relative error {:e})",
            p_relative_error(have, p)
        ),
        (None, None) => {}
        (have, p) => panic!("{what}: p-value {have:?} vs {p:?}"),
    }
}

/// Checks every column's automatic test, its statistic, p-value and verdict, and every other
/// test the report lists, against the expected file; returns the columns checked.
fn check_auto(report: &serde_json::Value, expected: &serde_json::Value) -> usize {
    let mut checked = 0;
    for col in report["columns"].as_array().expect("columns") {
        let name = col["column"].as_str().expect("name");
        let exp = &expected["columns"][name];
        let auto = &exp["auto"];
        assert_eq!(col["test"], auto["test"], "{name}: test");
        assert_eq!(col["drifted"], auto["drifted"], "{name}: verdict");
        let test = auto["test"].as_str().expect("test name");
        check_figures(col, &exp[test], &format!("{name}/{test}"));
        for (t, figures) in col["tests"].as_object().expect("tests") {
            check_figures(figures, &exp[t.as_str()], &format!("{name}/tests/{t}"));
        }
        checked += 1;
    }
    checked
}

#[test]
fn drift_json_on_csv_matches_scipy() {
    for name in [
        "small_drift",
        "small_no_drift",
        "medium_drift",
        "medium_no_drift",
        "large_drift",
    ] {
        let dir = case(name);
        let out = drift(&[
            "--reference",
            dir.join("reference.csv").to_str().expect("path"),
            "--current",
            dir.join("current.csv").to_str().expect("path"),
            "--format",
            "json",
            "--tests",
            "all",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = json_of(&out);
        let exp = expected(name);
        let checked = check_auto(&report, &exp);
        assert_eq!(checked, exp["columns"].as_object().expect("columns").len());
        // --tests all lists every applicable test under its conformance name.
        let first = &report["columns"][0];
        assert!(
            first["tests"].as_object().is_some_and(|t| t.len() > 3),
            "{first}"
        );
    }
}

#[test]
fn parquet_input_gives_the_same_report_as_csv() {
    let dir = case("small_drift");
    let tmp = std::env::temp_dir().join(format!("millwatch-drift-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tmp");
    let conn = duckdb::Connection::open_in_memory().expect("duckdb");
    for side in ["reference", "current"] {
        let csv = dir.join(format!("{side}.csv"));
        let pq = tmp.join(format!("{side}.parquet"));
        // Same column types as the CSV reader infers: text stays text, numbers are doubles.
        conn.execute_batch(&format!(
            "COPY (SELECT vibration_rms::DOUBLE AS vibration_rms, bearing_temp_c::DOUBLE AS bearing_temp_c, \
             defect_count::DOUBLE AS defect_count, score::DOUBLE AS score, station, passed, alarm_flag::DOUBLE AS alarm_flag \
             FROM read_csv('{}', all_varchar = true)) TO '{}' (FORMAT parquet)",
            csv.display(),
            pq.display()
        ))
        .expect("write typed parquet");
    }
    let out = drift(&[
        "--reference",
        tmp.join("reference.parquet").to_str().expect("path"),
        "--current",
        tmp.join("current.parquet").to_str().expect("path"),
        "--format",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checked = check_auto(&json_of(&out), &expected("small_drift"));
    assert_eq!(checked, 7);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn fail_on_drift_exits_2_only_when_drifted() {
    let run = |name: &str| {
        let dir = case(name);
        drift(&[
            "--reference",
            dir.join("reference.csv").to_str().expect("path"),
            "--current",
            dir.join("current.csv").to_str().expect("path"),
            "--fail-on-drift",
        ])
    };
    let drifted = run("small_drift");
    assert_eq!(drifted.status.code(), Some(2));
    // The table names every column and the dataset verdict.
    let table = String::from_utf8_lossy(&drifted.stdout);
    assert!(
        table.contains("bearing_temp_c") && table.contains("station"),
        "{table}"
    );
    assert_eq!(run("small_no_drift").status.code(), Some(0));
}

#[test]
fn bad_input_exits_1_with_a_message() {
    let dir = case("small_drift");
    let out = drift(&[
        "--reference",
        "/nonexistent/ref.csv",
        "--current",
        dir.join("current.csv").to_str().expect("p"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/ref.csv"), "{err}");

    let out = drift(&[
        "--reference",
        dir.join("reference.csv").to_str().expect("p"),
        "--current",
        dir.join("current.csv").to_str().expect("p"),
        "--tests",
        "nonsense",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonsense"));
}

#[test]
fn usage_errors_exit_1_not_the_drift_code_2() {
    // Missing --current, an unknown format, a non-numeric share: usage errors, exit 1.
    let dir = case("small_drift");
    let reference = dir.join("reference.csv");
    let reference = reference.to_str().expect("p");
    for args in [
        vec!["--reference", reference],
        vec![
            "--reference",
            reference,
            "--current",
            reference,
            "--format",
            "xml",
        ],
        vec![
            "--reference",
            reference,
            "--current",
            reference,
            "--drift-share",
            "abc",
        ],
    ] {
        let out = drift(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
    }
    let help = drift(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--fail-on-drift"));
}

#[test]
fn columns_and_named_tests_select_what_runs() {
    let dir = case("small_drift");
    let exp = expected("small_drift");
    let out = drift(&[
        "--reference",
        dir.join("reference.csv").to_str().expect("p"),
        "--current",
        dir.join("current.csv").to_str().expect("p"),
        "--columns",
        "score,station",
        "--tests",
        "ks,psi",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report = json_of(&out);
    let columns = report["columns"].as_array().expect("columns");
    let names: Vec<&str> = columns
        .iter()
        .map(|c| c["column"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["score", "station"]);
    // Numeric: the first named test decides, both run. Categorical: KS does not apply.
    let score = &columns[0];
    assert_eq!(score["test"], "ks");
    let tests: Vec<&String> = score["tests"].as_object().expect("tests").keys().collect();
    assert_eq!(tests, ["ks", "psi"]);
    let station = &columns[1];
    assert_eq!(station["test"], "psi");
    let tests: Vec<&String> = station["tests"]
        .as_object()
        .expect("tests")
        .keys()
        .collect();
    assert_eq!(tests, ["psi"]);
    for (col, test) in [(score, "ks"), (score, "psi"), (station, "psi")] {
        let name = col["column"].as_str().expect("name");
        check_figures(
            &col["tests"][test],
            &exp["columns"][name][test],
            &format!("{name}/{test}"),
        );
    }
    assert_eq!(report["dataset"]["columns"], 2);
}

#[test]
fn bonferroni_correction_decides_on_p_times_the_column_count() {
    let dir = case("medium_drift");
    let run = |correction: &str| {
        json_of(&drift(&[
            "--reference",
            dir.join("reference.csv").to_str().expect("p"),
            "--current",
            dir.join("current.csv").to_str().expect("p"),
            "--tests",
            "ks,chisquare",
            "--correction",
            correction,
            "--format",
            "json",
        ]))
    };
    let plain = run("none");
    let corrected = run("bonferroni");
    let columns = plain["columns"].as_array().expect("columns");
    let m = columns.len() as f64;
    for (p, c) in columns
        .iter()
        .zip(corrected["columns"].as_array().expect("columns"))
    {
        let name = p["column"].as_str().expect("name");
        let raw = p["p_value"]
            .as_f64()
            .expect("every test here has a p-value");
        let threshold = p["threshold"].as_f64().expect("threshold");
        assert_eq!(p["drifted"], raw < threshold, "{name}: uncorrected verdict");
        assert_eq!(
            c["drifted"],
            (raw * m).min(1.0) < threshold,
            "{name}: Bonferroni verdict"
        );
        assert_eq!(
            p["statistic"], c["statistic"],
            "{name}: the statistic does not change"
        );
    }
}
