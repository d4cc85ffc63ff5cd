//! `drift::compare` on whole datasets beyond the conformance cases: Bonferroni and
//! Benjamini–Hochberg correction across columns (checked against corrected p-values worked out
//! by hand from p-values scipy gives for the same counts), and per-column overrides of test and
//! threshold; columns without usable values, with too few values or on one side only set aside
//! with their reason, and no verdict when nothing could be tested.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use millwatch_detectors::dataset::{Column, Dataset};
use millwatch_detectors::drift::{
    ColumnOverride, Correction, DEFAULT_MIN_SAMPLES, DecidedBy, DriftOptions, DriftTest,
    UntestedReason, compare, render_table,
};
use millwatch_detectors::error::DetectorError;

/// A two-category column of 200 rows: `a` times "a", the rest "b".
fn two_categories(name: &str, a: usize) -> Column {
    Column::categorical(
        name,
        (0..200)
            .map(|i| Some(if i < a { "a" } else { "b" }.to_string()))
            .collect(),
    )
}

/// Four z-test columns (reference 100 "a" of 200 each; current 126, 124, 120, 110 "a") and a
/// numeric column overridden to PSI, which has no p-value and so is not one of the tests
/// corrected for.
fn datasets() -> (Dataset, Dataset) {
    let names = ["a", "b", "c", "d"];
    let counts = [126, 124, 120, 110];
    let flat: Vec<Option<f64>> = (0..200).map(|i| Some(f64::from(i % 50))).collect();
    let mut reference: Vec<Column> = names.iter().map(|n| two_categories(n, 100)).collect();
    let mut current: Vec<Column> = names
        .iter()
        .zip(counts)
        .map(|(n, k)| two_categories(n, k))
        .collect();
    reference.push(Column::numeric("e", flat.clone()));
    current.push(Column::numeric("e", flat));
    (
        Dataset::new(reference).expect("equal columns"),
        Dataset::new(current).expect("equal columns"),
    )
}

/// `scipy.stats` two-proportion pooled z-test p-values, `2 * norm.sf(|z|)`, for 100 of 200 in
/// the reference against 126, 124, 120 and 110 of 200.
const RAW_P: [f64; 4] = [
    0.008_735_070_029_347_616,
    0.015_628_869_828_028_375,
    0.044_423_184_850_006_09,
    0.316_704_823_946_918_57,
];

fn options(correction: Correction) -> DriftOptions {
    DriftOptions {
        correction,
        overrides: BTreeMap::from([(
            "e".to_string(),
            ColumnOverride {
                test: Some(DriftTest::Psi),
                threshold: None,
            },
        )]),
        ..DriftOptions::default()
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1e-12)
}

/// Runs `compare` with `correction` and checks every column's raw and corrected p-value and
/// verdict, and the dataset verdict.
fn check(correction: Correction, corrected: [f64; 4], drifted: [bool; 4], dataset_drifted: bool) {
    let (r, c) = datasets();
    let report = compare(&r, &c, &options(correction)).expect("compare");
    assert_eq!(report.columns.len(), 5);
    for (i, col) in report.columns[..4].iter().enumerate() {
        assert_eq!(col.test, DriftTest::ZTest, "{}", col.column);
        let raw = col.p_value.expect("a p-value");
        assert!(
            close(raw, RAW_P[i]),
            "{}: raw {raw} vs {}",
            col.column,
            RAW_P[i]
        );
        assert_eq!(col.decision.raw_p, col.p_value);
        let got = col.decision.corrected_p.expect("a corrected p-value");
        assert!(
            close(got, corrected[i]),
            "{} {correction:?}: corrected {got} vs {}",
            col.column,
            corrected[i]
        );
        assert_eq!(col.drifted, drifted[i], "{} {correction:?}", col.column);
        assert_eq!(col.decision.drifted, col.drifted);
        assert_eq!(
            col.decision.decided_by,
            if correction == Correction::None {
                DecidedBy::PValue
            } else {
                DecidedBy::CorrectedPValue
            }
        );
    }
    let e = &report.columns[4];
    assert_eq!(
        (e.test, e.statistic, e.p_value),
        (DriftTest::Psi, 0.0, None)
    );
    assert_eq!(e.decision.corrected_p, None);
    assert!(!e.drifted);
    let n_drifted = drifted.iter().filter(|&&d| d).count();
    assert_eq!(report.dataset.drifted_columns, n_drifted);
    assert_eq!(report.dataset.drifted, Some(dataset_drifted));
}

#[test]
fn without_correction_three_of_five_columns_drift() {
    check(Correction::None, RAW_P, [true, true, true, false], true);
}

#[test]
fn bonferroni_multiplies_by_the_four_p_value_tests() {
    // m = 4: the PSI column has no p-value and is not counted.
    let corrected = [
        4.0 * RAW_P[0],
        4.0 * RAW_P[1],
        4.0 * RAW_P[2],
        (4.0 * RAW_P[3]).min(1.0),
    ];
    assert_eq!(corrected[3], 1.0);
    // b (0.0156 -> 0.0625) and c (0.0444 -> 0.178) no longer drift.
    check(
        Correction::Bonferroni,
        corrected,
        [true, false, false, false],
        false,
    );
}

#[test]
fn benjamini_hochberg_steps_up_from_the_largest_p() {
    // Ranks 1..4 are a, b, c, d. p_(i) * m / i: a 0.03494, b 0.03126, c 0.05923, d 0.3167;
    // made monotone from the largest down, a takes b's smaller value.
    let d = RAW_P[3] * 4.0 / 4.0;
    let c = (RAW_P[2] * 4.0 / 3.0).min(d);
    let b = (RAW_P[1] * 4.0 / 2.0).min(c);
    let a = (RAW_P[0] * 4.0 / 1.0).min(b);
    assert!(a == b && a < RAW_P[0] * 4.0);
    // c (0.0444 -> 0.0592) no longer drifts; b still does, unlike under Bonferroni.
    check(
        Correction::BenjaminiHochberg,
        [a, b, c, d],
        [true, true, false, false],
        false,
    );
}

/// Reference 0..200 and current 20..220: Wasserstein exactly 20; scipy 1.17.1 gives KS
/// D = 0.1 with p = 0.27047 and Mann–Whitney p = 0.0010148.
fn shifted() -> (Dataset, Dataset) {
    let col = |name: &str, shift: f64| {
        Column::numeric(name, (0..200).map(|i| Some(f64::from(i) + shift)).collect())
    };
    let names = ["auto", "test", "threshold", "distance", "both"];
    (
        Dataset::new(names.iter().map(|n| col(n, 0.0)).collect()).expect("columns"),
        Dataset::new(names.iter().map(|n| col(n, 20.0)).collect()).expect("columns"),
    )
}

#[test]
fn column_overrides_set_the_test_and_the_threshold() {
    let (r, c) = shifted();
    let over = |test, threshold| ColumnOverride { test, threshold };
    let options = DriftOptions {
        overrides: BTreeMap::from([
            ("test".to_string(), over(Some(DriftTest::MannWhitney), None)),
            ("threshold".to_string(), over(None, Some(0.3))),
            (
                "distance".to_string(),
                over(Some(DriftTest::Wasserstein), Some(20.5)),
            ),
            (
                "both".to_string(),
                over(Some(DriftTest::Wasserstein), Some(19.5)),
            ),
        ]),
        ..DriftOptions::default()
    };
    let report = compare(&r, &c, &options).expect("compare");
    let by_name = |n: &str| {
        report
            .columns
            .iter()
            .find(|c| c.column == n)
            .expect("column reported")
    };

    // No override: KS at 0.05, p = 0.27 is no drift.
    let auto = by_name("auto");
    assert_eq!(
        (auto.test, auto.threshold, auto.drifted),
        (DriftTest::Ks, 0.05, false)
    );
    assert!((auto.statistic - 0.1).abs() < 1e-12);
    assert!((auto.p_value.expect("p") - 0.270_474_383_280_391_7).abs() < 1e-6);

    // Test only: Mann–Whitney with its default threshold, p = 0.001 is drift.
    let test = by_name("test");
    assert_eq!(
        (test.test, test.threshold, test.drifted),
        (DriftTest::MannWhitney, 0.05, true)
    );
    assert!((test.p_value.expect("p") - 0.001_014_818_894_105_729_6).abs() < 1e-9);
    assert_eq!(test.statistic, 16_200.0);

    // Threshold only: still KS, but p = 0.27 <= 0.3 is drift.
    let threshold = by_name("threshold");
    assert_eq!(
        (threshold.test, threshold.threshold, threshold.drifted),
        (DriftTest::Ks, 0.3, true)
    );
    assert_eq!(threshold.statistic, auto.statistic);

    // A distance in column units with its threshold: 20 < 20.5 is no drift, 20 >= 19.5 is.
    let distance = by_name("distance");
    assert_eq!(distance.test, DriftTest::Wasserstein);
    assert!((distance.statistic - 20.0).abs() < 1e-9);
    assert_eq!(
        (distance.p_value, distance.threshold, distance.drifted),
        (None, 20.5, false)
    );
    let both = by_name("both");
    assert_eq!(
        (both.test, both.threshold, both.drifted),
        (DriftTest::Wasserstein, 19.5, true)
    );
    assert_eq!(report.dataset.drifted_columns, 3);
    assert_eq!(report.dataset.drifted, Some(true)); // 3 of 5 >= 0.5
}

#[test]
fn overrides_that_cannot_apply_are_refused_with_the_column_named() {
    let (r, c) = datasets();
    let with = |name: &str, o: ColumnOverride| DriftOptions {
        overrides: BTreeMap::from([(name.to_string(), o)]),
        ..DriftOptions::default()
    };
    let ks_on_text = with(
        "a",
        ColumnOverride {
            test: Some(DriftTest::Ks),
            threshold: None,
        },
    );
    let e = compare(&r, &c, &ks_on_text).expect_err("KS on a categorical column");
    assert!(matches!(e, DetectorError::NotApplicable(_)), "{e:?}");
    assert!(e.to_string().contains("column 'a'"), "{e}");
    for bad in [f64::NAN, -0.1, f64::INFINITY] {
        let o = with(
            "b",
            ColumnOverride {
                test: None,
                threshold: Some(bad),
            },
        );
        let e = compare(&r, &c, &o).expect_err("bad threshold");
        assert!(matches!(e, DetectorError::InvalidParameter(_)), "{e:?}");
        assert!(e.to_string().contains("column 'b'"), "{e}");
    }
}

#[test]
fn columns_without_usable_values_are_reported_not_tested_and_the_rest_still_tested() {
    let numbers = |v: &[Option<f64>]| v.to_vec();
    let r = Dataset::new(vec![
        Column::numeric("ok", (0..8).map(|i| Some(f64::from(i))).collect()),
        Column::numeric("all_missing_now", numbers(&[Some(1.0); 8])),
        Column::numeric(
            "nan_in_reference",
            numbers(&[
                Some(f64::NAN),
                Some(1.0),
                None,
                None,
                None,
                None,
                None,
                None,
            ]),
        ),
        Column::numeric("text_now", numbers(&[Some(2.0); 8])),
        Column::numeric("mixed_now", (0..8).map(|i| Some(f64::from(i))).collect()),
        Column::categorical("no_reference", vec![None; 8]),
    ])
    .expect("columns");
    let text = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
    let c = Dataset::new(vec![
        Column::numeric("ok", (0..8).map(|i| Some(f64::from(i) + 0.5)).collect()),
        Column::numeric("all_missing_now", vec![None; 8]),
        Column::numeric("nan_in_reference", numbers(&[Some(1.0); 8])),
        Column::categorical("text_now", text(&["a", "b", "c", "d", "e", "f", "g", "h"])),
        Column::categorical("mixed_now", text(&["1", "2", "x", "3", "4", "y", "5", "6"])),
        Column::categorical("no_reference", text(&["a"; 8])),
    ])
    .expect("columns");
    // Eight rows: below the default minimum, which the next test covers.
    let options = DriftOptions {
        min_samples: NonZeroUsize::MIN,
        ..DriftOptions::default()
    };
    let report = compare(&r, &c, &options).expect("the usable columns are tested");

    let tested: Vec<&str> = report.columns.iter().map(|c| c.column.as_str()).collect();
    assert_eq!(tested, ["ok", "mixed_now"]);
    assert_eq!(report.dataset.columns, 2);
    let mixed = &report.columns[1];
    assert_eq!(mixed.type_mismatches, 2, "x and y are not numbers");

    let untested: Vec<(&str, UntestedReason)> = report
        .not_tested
        .iter()
        .map(|u| (u.column.as_str(), u.reason))
        .collect();
    assert_eq!(
        untested,
        [
            ("all_missing_now", UntestedReason::NoCurrentValues),
            ("nan_in_reference", UntestedReason::NonFiniteReference),
            ("text_now", UntestedReason::NoCurrentValues),
            ("no_reference", UntestedReason::NoReferenceValues),
        ]
    );
    assert_eq!(report.not_tested[0].missing_share.current, 1.0);
    assert_eq!(
        report.not_tested[1].message,
        "column 'nan_in_reference' (reference) holds 1 NaN or infinite value"
    );
    assert_eq!(
        report.not_tested[2].message,
        "column 'text_now' has no current values (8 were not numbers)"
    );
    assert_eq!(report.not_tested[2].type_mismatches, 8);

    // The JSON keeps every issue-3 field per tested column, adds type_mismatches, and lists the
    // untested columns apart.
    let json = serde_json::to_value(&report).expect("serialise");
    assert_eq!(json["columns"][1]["type_mismatches"], 2);
    assert_eq!(json["columns"].as_array().map(Vec::len), Some(2));
    let first = &json["not_tested"][0];
    assert_eq!(first["column"], "all_missing_now");
    assert_eq!(first["kind"], "numeric");
    assert_eq!(first["reason"], "no_current_values");
    assert_eq!(first["missing_share"]["current"], 1.0);
    assert_eq!(json["not_tested"][3]["reason"], "no_reference_values");
    let table = render_table(&report);
    assert!(
        table.contains("not tested  column 'text_now' has no current values"),
        "{table}"
    );
    assert!(table.contains("; 4 not tested"), "{table}");
}

/// `n` numbers 0, 1, 2, ... shifted by `shift`.
fn counting(name: &str, n: u32, shift: f64) -> Column {
    Column::numeric(name, (0..n).map(|i| Some(f64::from(i) + shift)).collect())
}

#[test]
fn columns_on_one_side_only_and_samples_below_the_minimum_get_no_verdict() {
    // 40 rows each; `sparse` has only 10 values in the current data, `old` is gone from the
    // current data, `new` is new in it.
    let sparse: Vec<Option<f64>> = (0..40).map(|i| (i < 10).then_some(f64::from(i))).collect();
    let r = Dataset::new(vec![
        counting("ok", 40, 0.0),
        counting("sparse", 40, 0.0),
        counting("old", 40, 0.0),
    ])
    .expect("columns");
    let c = Dataset::new(vec![
        counting("new", 40, 0.0),
        counting("ok", 40, 0.5),
        Column::numeric("sparse", sparse),
    ])
    .expect("columns");
    let report = compare(&r, &c, &DriftOptions::default()).expect("compare");
    assert_eq!(report.min_samples, DEFAULT_MIN_SAMPLES.get());
    assert_eq!(report.min_samples, 30);
    let tested: Vec<&str> = report.columns.iter().map(|c| c.column.as_str()).collect();
    assert_eq!(tested, ["ok"]);
    assert_eq!(report.dataset.columns, 1);
    assert!(report.dataset.drifted.is_some());
    let untested: Vec<(&str, UntestedReason, usize, usize)> = report
        .not_tested
        .iter()
        .map(|u| {
            (
                u.column.as_str(),
                u.reason,
                u.reference_values,
                u.current_values,
            )
        })
        .collect();
    assert_eq!(
        untested,
        [
            ("sparse", UntestedReason::TooFewValues, 40, 10),
            ("old", UntestedReason::NotInCurrent, 40, 0),
            ("new", UntestedReason::NotInReference, 0, 40),
        ]
    );
    assert_eq!(
        report.not_tested[0].message,
        "column 'sparse' has only 10 current values; a verdict needs at least 30 on each side"
    );
    assert_eq!(
        report.not_tested[1].message,
        "column 'old' is not in the current data"
    );
    assert_eq!(report.not_tested[1].missing_share.current, 1.0);
    assert_eq!(report.not_tested[2].missing_share.reference, 1.0);
    let json = serde_json::to_value(&report).expect("serialise");
    assert_eq!(json["min_samples"], 30);
    assert_eq!(json["not_tested"][0]["reason"], "too_few_values");
    assert_eq!(json["not_tested"][1]["reason"], "not_in_current");
    assert_eq!(json["not_tested"][2]["reason"], "not_in_reference");
    let table = render_table(&report);
    assert!(
        table.contains("not tested  column 'old' is not in the current data"),
        "{table}"
    );
    assert!(table.contains("; 3 not tested"), "{table}");
    assert!(table.contains("at least 30 usable values"), "{table}");

    // A lower minimum tests the sparse column.
    let options = DriftOptions {
        min_samples: NonZeroUsize::new(10).expect("non-zero"),
        ..DriftOptions::default()
    };
    let report = compare(&r, &c, &options).expect("compare");
    let tested: Vec<&str> = report.columns.iter().map(|c| c.column.as_str()).collect();
    assert_eq!(tested, ["ok", "sparse"]);
}

#[test]
fn one_row_gets_no_verdict_and_no_common_column_is_an_error() {
    let r = Dataset::new(vec![counting("a", 100, 0.0), counting("b", 100, 0.0)]).expect("r");
    let one_row = Dataset::new(vec![counting("a", 1, 0.0), counting("b", 1, 0.0)]).expect("c");
    let report = compare(&r, &one_row, &DriftOptions::default()).expect("compare");
    assert!(report.columns.is_empty());
    assert_eq!(report.dataset.drifted, None);
    assert_eq!(report.dataset.columns, 0);
    assert!(
        report
            .not_tested
            .iter()
            .all(|u| u.reason == UntestedReason::TooFewValues && u.current_values == 1),
        "{:?}",
        report.not_tested
    );
    let json = serde_json::to_value(&report).expect("serialise");
    assert_eq!(json["dataset"]["drifted"], serde_json::Value::Null);
    let table = render_table(&report);
    assert!(
        table.contains("no verdict: no column could be tested; 2 not tested"),
        "{table}"
    );
    assert!(!table.contains("no drift"), "{table}");

    let other = Dataset::new(vec![counting("x", 100, 0.0)]).expect("other");
    let e = compare(&r, &other, &DriftOptions::default()).expect_err("nothing in common");
    assert!(matches!(e, DetectorError::InvalidInput(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "invalid input: nothing to compare: no column of the reference data ('a', 'b') is in the current data ('x')"
    );
}
