//! `millwatch drift` as a user runs it: the binary on the conformance data, as CSV and as
//! Parquet, with the JSON's statistics and p-values compared with scipy's figures, within the
//! tolerance the conformance cases state; columns on one side only, files with nothing in common
//! and samples below the stated minimum, in both output formats.

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

/// A folder of its own for a test's files, emptied first.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("millwatch-drift-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// A column of a generated CSV: its name, and its value in a row (`None`: empty).
type GeneratedColumn<'a> = (&'a str, &'a dyn Fn(usize) -> Option<f64>);

/// A CSV of `rows` rows of `columns`.
fn write_csv(path: &Path, rows: usize, columns: &[GeneratedColumn]) {
    let mut text = columns.iter().map(|c| c.0).collect::<Vec<_>>().join(",");
    text.push('\n');
    for i in 0..rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|(_, f)| f(i).map(|v| v.to_string()).unwrap_or_default())
            .collect();
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).expect("write csv");
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn columns_on_one_side_only_and_sparse_columns_are_listed_with_their_reason() {
    let dir = scratch("one-side");
    let (reference, current) = (dir.join("reference.csv"), dir.join("current.csv"));
    let value = |i: usize| Some((i % 17) as f64);
    let shifted = |i: usize| Some((i % 17) as f64 + 0.25);
    let sparse = |i: usize| (i < 5).then_some(i as f64);
    write_csv(
        &reference,
        200,
        &[("speed", &value), ("sparse", &value), ("gone", &value)],
    );
    write_csv(
        &current,
        100,
        &[("speed", &shifted), ("sparse", &sparse), ("added", &value)],
    );
    let args = |format: &'static str| {
        [
            "--reference",
            reference.to_str().expect("path"),
            "--current",
            current.to_str().expect("path"),
            "--format",
            format,
        ]
    };

    let out = drift(&args("json"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let report = json_of(&out);
    let tested: Vec<&str> = report["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["column"].as_str().expect("name"))
        .collect();
    assert_eq!(tested, ["speed"]);
    let untested: Vec<(&str, &str)> = report["not_tested"]
        .as_array()
        .expect("not_tested")
        .iter()
        .map(|u| {
            (
                u["column"].as_str().expect("column"),
                u["reason"].as_str().expect("reason"),
            )
        })
        .collect();
    assert_eq!(
        untested,
        [
            ("sparse", "too_few_values"),
            ("gone", "not_in_current"),
            ("added", "not_in_reference"),
        ]
    );
    assert_eq!(report["not_tested"][0]["current_values"], 5);
    assert_eq!(report["min_samples"], 30);
    assert_eq!(report["dataset"]["columns"], 1);
    assert!(report["dataset"]["drifted"].is_boolean(), "{report}");
    let err = stderr_of(&out);
    for name in ["sparse", "gone", "added"] {
        assert!(
            err.contains(&format!("warning: not tested: column '{name}'")),
            "{err}"
        );
    }

    let out = drift(&args("table"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let table = stdout_of(&out);
    for line in [
        "not tested  column 'sparse' has only 5 current values; a verdict needs at least 30 on each side",
        "not tested  column 'gone' is not in the current data",
        "not tested  column 'added' is not in the reference data",
        "of 1 columns drifted",
        "; 3 not tested",
        "A column needs at least 30 usable values in each dataset to be tested.",
    ] {
        assert!(table.contains(line), "{line:?} not in\n{table}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn files_without_a_common_column_are_an_error_not_no_drift() {
    let dir = scratch("disjoint");
    let (reference, current) = (dir.join("reference.csv"), dir.join("current.csv"));
    let value = |i: usize| Some(i as f64);
    write_csv(&reference, 100, &[("a", &value), ("b", &value)]);
    write_csv(&current, 100, &[("x", &value)]);
    for format in ["table", "json"] {
        let out = drift(&[
            "--reference",
            reference.to_str().expect("path"),
            "--current",
            current.to_str().expect("path"),
            "--format",
            format,
        ]);
        assert_eq!(out.status.code(), Some(1), "{format}: {out:?}");
        assert!(out.stdout.is_empty(), "{format}: {}", stdout_of(&out));
        assert!(
            stderr_of(&out).contains(
                "nothing to compare: no column of the reference data ('a', 'b') is in the current data ('x')"
            ),
            "{format}: {}",
            stderr_of(&out)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_one_row_file_gets_warnings_and_no_verdict() {
    let dir = scratch("one-row");
    let (reference, current) = (dir.join("reference.csv"), dir.join("current.csv"));
    let value = |i: usize| Some((i % 11) as f64);
    let far = |_: usize| Some(1000.0);
    write_csv(&reference, 300, &[("a", &value), ("b", &value)]);
    write_csv(&current, 1, &[("a", &far), ("b", &far)]);
    let run = |format: &str, extra: &[&str]| {
        let mut args = vec![
            "--reference",
            reference.to_str().expect("path"),
            "--current",
            current.to_str().expect("path"),
            "--fail-on-drift",
            "--format",
        ];
        args.push(format);
        args.extend_from_slice(extra);
        drift(&args)
    };

    let out = run("json", &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report = json_of(&out);
    assert!(report["dataset"]["drifted"].is_null(), "{report}");
    assert_eq!(report["columns"].as_array().map(Vec::len), Some(0));
    assert!(
        report["not_tested"]
            .as_array()
            .expect("not_tested")
            .iter()
            .all(|u| u["reason"] == "too_few_values" && u["current_values"] == 1),
        "{report}"
    );
    assert_eq!(report["min_samples"], 30);
    let err = stderr_of(&out);
    assert!(
        err.contains("warning: not tested: column 'a' has only 1 current value; a verdict needs at least 30 on each side"),
        "{err}"
    );
    assert!(err.contains("error: no verdict"), "{err}");

    let out = run("table", &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let table = stdout_of(&out);
    assert!(
        table.contains("no verdict: no column could be tested; 2 not tested"),
        "{table}"
    );
    assert!(!table.contains("no drift"), "{table}");
    assert!(stderr_of(&out).contains("error: no verdict"));

    // The user can take the risk, and then gets a verdict (here: drift, exit 2).
    let out = run("json", &["--min-samples", "1"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(json_of(&out)["dataset"]["drifted"], true);
    let out = run("table", &["--min-samples", "0"]);
    assert_eq!(out.status.code(), Some(1), "a minimum of 0 is refused");
    let _ = std::fs::remove_dir_all(&dir);
}
