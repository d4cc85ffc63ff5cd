//! Properties over generated input: symmetric statistics are symmetric, results do not depend
//! on row order, identical samples are at distance zero (p = 1), constant samples give defined
//! results (the 0.001 std floor), and bad input — empty, NaN or infinite, or too few values, on
//! either side — is an error or is skipped as documented, never a panic: for the sample tests,
//! `compare` on datasets, the sketches, the stream detectors and the control charts.

use millwatch_detectors::DetectorError;
use millwatch_detectors::charts::{
    ChartConfig, ControlChart, CusumConfig, EwmaConfig, Limits, ShewhartConfig, SigmaEstimator,
};
use millwatch_detectors::dataset::{Column, ColumnValues, Dataset};
use millwatch_detectors::drift::{
    CategoricalPair, ColumnPair, DriftOptions, DriftTest, NumericPair, TestSelection,
    UntestedReason, compare, numeric, render_table,
};
use millwatch_detectors::sketch::{ColumnSummary, FrequentItems, KllSketch, drift as sketch_drift};
use millwatch_detectors::stream::{
    AdwinConfig, ChangeDetector, DdmConfig, DetectorConfig, EddmConfig, HddmAConfig, KswinConfig,
    PageHinkleyConfig, Signal,
};
use proptest::prelude::*;

fn sample() -> impl Strategy<Value = Vec<f64>> {
    // Rounded values make ties common, which is where rank and ECDF code goes wrong.
    prop::collection::vec((-50i32..50).prop_map(|v| v as f64 / 4.0), 1..120)
}

fn categories() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(String::from),
        1..80,
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs())) || (a.is_nan() && b.is_nan())
}

fn numeric_pair(a: &[f64], b: &[f64]) -> ColumnPair {
    ColumnPair::Numeric(NumericPair::new(a, b).expect("finite, non-empty"))
}

fn categorical_pair(a: &[String], b: &[String]) -> ColumnPair {
    ColumnPair::Categorical(
        CategoricalPair::new(a.iter().map(String::as_str), b.iter().map(String::as_str))
            .expect("non-empty"),
    )
}

/// Tests whose statistic is unchanged when reference and current swap. PSI, KL and the binned
/// distances of numeric columns bin on reference quantiles, so they are not.
fn symmetric_numeric() -> [DriftTest; 4] {
    [
        DriftTest::Ks,
        DriftTest::Wasserstein,
        DriftTest::Energy,
        DriftTest::MannWhitney,
    ]
}

proptest! {
    #[test]
    fn symmetric_statistics_are_symmetric(a in sample(), b in sample()) {
        let (ab, ba) = (numeric_pair(&a, &b), numeric_pair(&b, &a));
        for t in symmetric_numeric() {
            let (x, y) = (ab.run(t).expect("applies"), ba.run(t).expect("applies"));
            if t == DriftTest::MannWhitney {
                // U of the reference becomes n*m - U; the p-value is unchanged.
                prop_assert!(close(x.statistic, (a.len() * b.len()) as f64 - y.statistic));
            } else {
                prop_assert!(close(x.statistic, y.statistic), "{t}: {} vs {}", x.statistic, y.statistic);
            }
            prop_assert!(close(x.p_value.unwrap_or(0.0), y.p_value.unwrap_or(0.0)), "{t} p");
        }
    }

    #[test]
    fn categorical_symmetric_statistics_are_symmetric(a in categories(), b in categories()) {
        let (ab, ba) = (categorical_pair(&a, &b), categorical_pair(&b, &a));
        for t in [DriftTest::JensenShannon, DriftTest::Hellinger, DriftTest::Psi, DriftTest::ChiSquare] {
            let (x, y) = (ab.run(t).expect("applies"), ba.run(t).expect("applies"));
            prop_assert!(close(x.statistic, y.statistic), "{t}: {} vs {}", x.statistic, y.statistic);
        }
        let (x, y) = (ab.run(DriftTest::ZTest).expect("applies"), ba.run(DriftTest::ZTest).expect("applies"));
        prop_assert!(close(x.statistic, -y.statistic));
    }

    #[test]
    fn row_order_does_not_matter(a in sample(), b in sample(), seed in any::<u64>()) {
        let shuffle = |v: &[f64]| {
            let mut v = v.to_vec();
            let mut s = seed | 1;
            for i in (1..v.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                v.swap(i, (s % (i as u64 + 1)) as usize);
            }
            v
        };
        let (p, q) = (numeric_pair(&a, &b), numeric_pair(&shuffle(&a), &shuffle(&b)));
        for t in p.applicable_tests() {
            let (x, y) = (p.run(t).expect("applies"), q.run(t).expect("applies"));
            prop_assert_eq!(x, y, "{}", t);
        }
    }

    #[test]
    fn identical_samples_are_at_distance_zero(a in sample()) {
        let p = numeric_pair(&a, &a);
        for t in p.applicable_tests() {
            let o = p.run(t).expect("applies");
            if t.has_p_value() {
                if t != DriftTest::MannWhitney {
                    prop_assert!(o.statistic.abs() < 1e-12, "{t}: {}", o.statistic);
                }
                prop_assert!(o.p_value.unwrap_or(0.0) > 0.99, "{t}: p {:?}", o.p_value);
            } else {
                prop_assert!(o.statistic.abs() < 1e-12, "{t}: {}", o.statistic);
            }
        }
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic(
        a in prop::collection::vec(prop_oneof![
            Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), -1e3f64..1e3
        ], 0..20),
        b in prop::collection::vec(-1e3f64..1e3, 0..20),
    ) {
        let bad = a.is_empty() || b.is_empty() || a.iter().any(|v| !v.is_finite());
        let results = [
            numeric::ks(&a, &b),
            numeric::mannwhitney(&a, &b),
            numeric::wasserstein(&a, &b),
            numeric::wasserstein_norm(&a, &b),
            numeric::energy(&a, &b),
        ];
        for r in results {
            prop_assert_eq!(r.is_err(), bad);
        }
        prop_assert_eq!(NumericPair::new(&a, &b).is_err(), bad);
    }

    #[test]
    fn constant_samples_give_defined_results(v in -1e3f64..1e3, n in 1usize..50, m in 1usize..50) {
        let p = numeric_pair(&vec![v; n], &vec![v; m]);
        for t in p.applicable_tests() {
            let o = p.run(t).expect("applies");
            prop_assert!(o.statistic.is_finite(), "{t}");
            prop_assert!(o.p_value.is_none_or(|p| p == 1.0), "{t}: {:?}", o.p_value);
        }
    }
}

/// Numbers, with NaN and both infinities mixed in.
fn with_non_finite() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(
        prop_oneof![
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
            1 => Just(f64::NEG_INFINITY),
            6 => (-50i32..50).prop_map(|v| f64::from(v) / 4.0),
        ],
        0..40,
    )
}

fn shuffled<T: Clone>(v: &[T], seed: u64) -> Vec<T> {
    let mut v = v.to_vec();
    let mut s = seed | 1;
    for i in (1..v.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
    v
}

proptest! {
    #[test]
    fn non_finite_values_on_either_side_are_an_error(a in with_non_finite(), b in with_non_finite()) {
        let bad = |v: &[f64]| v.is_empty() || v.iter().any(|x| !x.is_finite());
        let expect_err = bad(&a) || bad(&b);
        for r in [
            numeric::ks(&a, &b),
            numeric::mannwhitney(&a, &b),
            numeric::wasserstein(&a, &b),
            numeric::wasserstein_norm(&a, &b),
            numeric::energy(&a, &b),
        ] {
            prop_assert_eq!(r.is_err(), expect_err);
            if let Err(e) = r {
                prop_assert!(matches!(e, DetectorError::Empty(_) | DetectorError::NonFinite(_)), "{e:?}");
            }
        }
        match NumericPair::new(&a, &b) {
            Ok(_) => prop_assert!(!expect_err),
            Err(e) => {
                prop_assert!(expect_err);
                // The message names the side that holds the bad value.
                let side = if bad(&a) { "reference" } else { "current" };
                prop_assert!(e.to_string().contains(side), "{e}");
            }
        }
    }

    #[test]
    fn categorical_results_do_not_depend_on_row_order(a in categories(), b in categories(), seed in any::<u64>()) {
        let (p, q) = (categorical_pair(&a, &b), categorical_pair(&shuffled(&a, seed), &shuffled(&b, seed ^ 7)));
        for t in p.applicable_tests() {
            prop_assert_eq!(p.run(t).expect("applies"), q.run(t).expect("applies"), "{}", t);
        }
    }

    #[test]
    fn identical_categorical_samples_are_at_distance_zero_with_p_one(a in categories(), seed in any::<u64>()) {
        let p = categorical_pair(&a, &shuffled(&a, seed));
        for t in p.applicable_tests() {
            let o = p.run(t).expect("applies");
            prop_assert!(o.statistic.abs() < 1e-12, "{t}: {}", o.statistic);
            if t.has_p_value() {
                prop_assert!(o.p_value.is_some_and(|p| p > 1.0 - 1e-12), "{t}: p {:?}", o.p_value);
            }
        }
    }

    #[test]
    fn constant_samples_use_the_std_floor(v in -1e3f64..1e3, w in -1e3f64..1e3, n in 1usize..50, m in 1usize..50) {
        // std(ref) = 0 is floored at MIN_STD = 0.001, as the conformance definition of
        // wasserstein_norm says: the distance is |v - w| / 0.001, finite, and 0 when equal.
        let o = numeric::wasserstein_norm(&vec![v; n], &vec![w; m]).expect("finite");
        let want = (v - w).abs() / numeric::MIN_STD;
        prop_assert!((o.statistic - want).abs() <= 1e-9 * want.max(1.0), "{} vs {want}", o.statistic);
        let p = numeric_pair(&vec![v; n], &vec![w; m]);
        for t in p.applicable_tests() {
            let o = p.run(t).expect("applies");
            prop_assert!(o.statistic.is_finite(), "{t}: {}", o.statistic);
            prop_assert!(o.p_value.is_none_or(|p| (0.0..=1.0).contains(&p)), "{t}: {:?}", o.p_value);
        }
    }
}

/// A dataset of `cols` numeric columns (NaN, infinities and missing values mixed in) and one
/// categorical column, all `rows` long.
fn dataset() -> impl Strategy<Value = Dataset> {
    let cell = prop_oneof![
        1 => Just(None),
        1 => Just(Some(f64::NAN)),
        1 => Just(Some(f64::INFINITY)),
        12 => (-20i32..20).prop_map(|v| Some(f64::from(v) / 2.0)),
    ];
    (1usize..12).prop_flat_map(move |rows| {
        (
            prop::collection::vec(prop::collection::vec(cell.clone(), rows), 3),
            prop::collection::vec(
                prop::option::weighted(0.8, prop::sample::select(vec!["x", "y", "z"])),
                rows,
            ),
        )
            .prop_map(|(numeric, text)| {
                let mut cols: Vec<Column> = numeric
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| Column::numeric(format!("n{i}"), v))
                    .collect();
                cols.push(Column::categorical(
                    "c",
                    text.into_iter().map(|t| t.map(String::from)).collect(),
                ));
                Dataset::new(cols).expect("equal lengths, distinct names")
            })
    })
}

/// Why a column of `reference` / `current` cannot be tested, if it cannot: the reference is
/// looked at first, then the current data, then the counts against `min_samples`.
fn untestable(reference: &Column, current: &Column, min_samples: usize) -> Option<UntestedReason> {
    let values = |c: &Column| match &c.values {
        ColumnValues::Numeric(v) => v.iter().flatten().copied().collect::<Vec<f64>>(),
        ColumnValues::Categorical(v) => v.iter().flatten().map(|_| 0.0).collect(),
    };
    let (r, c) = (values(reference), values(current));
    let non_finite = |v: &[f64]| v.iter().any(|x| !x.is_finite());
    if r.is_empty() {
        Some(UntestedReason::NoReferenceValues)
    } else if non_finite(&r) {
        Some(UntestedReason::NonFiniteReference)
    } else if c.is_empty() {
        Some(UntestedReason::NoCurrentValues)
    } else if non_finite(&c) {
        Some(UntestedReason::NonFiniteCurrent)
    } else if r.len() < min_samples || c.len() < min_samples {
        Some(UntestedReason::TooFewValues)
    } else {
        None
    }
}

proptest! {
    #[test]
    fn compare_sets_aside_bad_columns_with_the_reason_and_never_panics(r in dataset(), c in dataset(), min_samples in 1usize..8) {
        let bad: Vec<(&str, UntestedReason)> = r
            .columns()
            .iter()
            .zip(c.columns())
            .filter_map(|(rc, cc)| untestable(rc, cc, min_samples).map(|why| (rc.name.as_str(), why)))
            .collect();
        let options = DriftOptions {
            tests: TestSelection::All,
            min_samples: std::num::NonZeroUsize::new(min_samples).expect("from 1"),
            ..DriftOptions::default()
        };
        let report = compare(&r, &c, &options).expect("only unusable columns, which are set aside");
        let set_aside: Vec<(&str, UntestedReason)> =
            report.not_tested.iter().map(|u| (u.column.as_str(), u.reason)).collect();
        prop_assert_eq!(&set_aside, &bad);
        for u in &report.not_tested {
            prop_assert!(u.message.contains(&format!("'{}'", u.column)), "{}", u.message);
        }
        // Every other column is tested, and only those count in the verdict.
        prop_assert_eq!(report.columns.len() + bad.len(), 4);
        prop_assert_eq!(report.dataset.columns, report.columns.len());
        prop_assert!(report.columns.iter().all(|col| bad.iter().all(|(n, _)| *n != col.column)));
        prop_assert!(serde_json::to_string(&report).is_ok());
        prop_assert_eq!(render_table(&report).contains("not tested"), !bad.is_empty());
        // A verdict exactly when some column was tested.
        prop_assert_eq!(report.dataset.drifted.is_some(), !report.columns.is_empty());
    }

    #[test]
    fn kll_refuses_non_finite_values_and_stays_consistent(v in with_non_finite(), q in 0.0f64..=1.0) {
        let mut s = KllSketch::default();
        for &x in &v {
            let before = (s.count(), s.min(), s.max());
            let r = s.insert(x);
            prop_assert_eq!(r.is_err(), !x.is_finite());
            if r.is_err() {
                prop_assert_eq!((s.count(), s.min(), s.max()), before);
            }
        }
        let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        prop_assert_eq!(s.count(), finite.len() as u64);
        prop_assert!(s.quantile(f64::NAN).is_err());
        prop_assert!(s.quantile(1.5).is_err());
        prop_assert!(s.cdf(f64::NAN).is_err());
        if finite.is_empty() {
            prop_assert!(s.quantile(q).is_err() && s.cdf(0.0).is_err());
            prop_assert!(sketch_drift::ks(&s, &s).is_err());
        } else {
            let (lo, hi) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
            prop_assert_eq!((s.min(), s.max()), (Some(lo), Some(hi)));
            let x = s.quantile(q).expect("non-empty");
            prop_assert!((lo..=hi).contains(&x));
            prop_assert_eq!(s.cdf(f64::INFINITY).ok(), Some(1.0));
            prop_assert_eq!(s.cdf(f64::NEG_INFINITY).ok(), Some(0.0));
            prop_assert!(sketch_drift::binned_numeric(&s, &s, 1).is_err());
            let b = sketch_drift::binned_numeric_default(&s, &s).expect("non-empty");
            prop_assert!(b.psi.abs() < 1e-12 && b.hellinger.abs() < 1e-12);
        }
    }

    #[test]
    fn column_summaries_count_nan_as_missing_and_infinities_apart(v in with_non_finite()) {
        let mut s = ColumnSummary::default();
        v.iter().for_each(|&x| s.push_number(x));
        let count = |f: fn(&f64) -> bool| v.iter().filter(|x| f(x)).count() as u64;
        prop_assert_eq!(s.rows(), v.len() as u64);
        prop_assert_eq!(s.missing(), count(|x| x.is_nan()));
        prop_assert_eq!(s.infinite(), count(|x| x.is_infinite()));
        prop_assert_eq!(s.numeric_count(), count(|x| x.is_finite()));
        prop_assert!(s.mean().is_none_or(f64::is_finite));
    }

    #[test]
    fn frequent_items_take_any_text_and_keep_their_bound(
        items in prop::collection::vec(prop_oneof![Just(String::new()), "\\PC{0,3}", "[a-e]"], 0..200),
        capacity in 1usize..6,
    ) {
        prop_assert!(FrequentItems::new(0).is_err());
        let mut f = FrequentItems::new(capacity).expect("capacity >= 1");
        items.iter().for_each(|i| f.insert(i));
        prop_assert_eq!(f.count(), items.len() as u64);
        prop_assert!(f.items().len() <= capacity);
        for item in &items {
            let truth = items.iter().filter(|i| *i == item).count() as u64;
            let est = f.estimate(item);
            prop_assert!(est <= truth && truth <= est + f.error_bound(), "{item:?}: {est} vs {truth}");
        }
        let mut other = FrequentItems::new(capacity + 1).expect("capacity >= 1");
        prop_assert!(other.merge(&f).is_err());
        let empty = FrequentItems::default();
        prop_assert!(sketch_drift::binned_categorical(&empty, &f).is_err());
    }
}

fn stream_detectors() -> Vec<DetectorConfig> {
    vec![
        DetectorConfig::Adwin(AdwinConfig::default()),
        DetectorConfig::PageHinkley(PageHinkleyConfig::default()),
        DetectorConfig::PageHinkley(PageHinkleyConfig::river()),
        DetectorConfig::Kswin(KswinConfig::river()),
        DetectorConfig::Ddm(DdmConfig::river()),
        DetectorConfig::Eddm(EddmConfig::river()),
        DetectorConfig::HddmA(HddmAConfig::river()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Unusable values (NaN, ±infinity; for the binary detectors anything but 0 and 1) are
    /// skipped and counted by `update`, refused by `try_update`, and leave no trace: the
    /// signals on the usable values are those of a detector that never saw the others.
    #[test]
    fn stream_detectors_skip_unusable_values_without_a_trace(
        stream in prop::collection::vec(prop_oneof![
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
            1 => Just(f64::NEG_INFINITY),
            1 => Just(0.5),
            8 => Just(0.0),
            4 => Just(1.0),
            8 => (-30i32..30).prop_map(|v| f64::from(v) / 3.0),
        ], 0..400),
    ) {
        for config in stream_detectors() {
            let mut all = config.build().expect("valid config");
            let mut usable_only = config.build().expect("valid config");
            let mut strict = config.build().expect("valid config");
            let mut skipped = 0;
            for &x in &stream {
                let signal = all.update(x);
                let strict_result = strict.try_update(x);
                if all.accepts(x) {
                    let expect = usable_only.update(x);
                    prop_assert_eq!(signal, expect, "{:?} at {}", config, x);
                    prop_assert_eq!(strict_result.ok(), Some(expect));
                } else {
                    skipped += 1;
                    prop_assert_eq!(signal, Signal::None);
                    prop_assert!(strict_result.is_err(), "{:?} took {}", config, x);
                    if !x.is_finite() {
                        prop_assert!(matches!(strict_result, Err(DetectorError::NonFinite(_))));
                    }
                }
            }
            prop_assert_eq!(all.skipped(), skipped);
            prop_assert_eq!(usable_only.skipped(), 0);
            prop_assert_eq!(strict.skipped(), 0);
        }
    }

    /// Charts refuse a non-finite measurement with an error and are unchanged by it.
    #[test]
    fn charts_refuse_non_finite_measurements_and_are_unchanged(
        stream in prop::collection::vec(prop_oneof![
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
            1 => Just(f64::NEG_INFINITY),
            8 => (-40i32..40).prop_map(|v| f64::from(v) / 10.0),
        ], 0..200),
        reference in with_non_finite(),
    ) {
        let limits = Limits::new(0.0, 1.0).expect("valid limits");
        for config in [
            ChartConfig::Shewhart(ShewhartConfig::default()),
            ChartConfig::Ewma(EwmaConfig::default()),
            ChartConfig::Cusum(CusumConfig::default()),
        ] {
            let mut all = config.build(limits).expect("valid config");
            let mut finite_only = config.build(limits).expect("valid config");
            for &x in &stream {
                match all.update(x) {
                    Ok(point) => {
                        prop_assert!(x.is_finite());
                        prop_assert_eq!(point, finite_only.update(x).expect("finite"));
                    }
                    Err(e) => {
                        prop_assert!(!x.is_finite());
                        prop_assert!(matches!(e, DetectorError::NonFinite(_)), "{e:?}");
                    }
                }
            }
        }
        // Limits from a reference: non-finite, too short or constant references are errors.
        for estimator in [SigmaEstimator::MovingRange, SigmaEstimator::SampleStd] {
            match Limits::from_reference(&reference, estimator) {
                Ok(l) => {
                    prop_assert!(reference.iter().all(|x| x.is_finite()) && reference.len() >= 2);
                    prop_assert!(l.sigma > 0.0 && l.sigma.is_finite() && l.center.is_finite());
                }
                Err(e) => prop_assert!(
                    reference.len() < 2
                        || reference.iter().any(|x| !x.is_finite())
                        || matches!(e, DetectorError::Constant(_)),
                    "{e:?}"
                ),
            }
        }
    }
}
