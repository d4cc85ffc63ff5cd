//! Properties of the drift tests over generated samples: symmetric statistics are symmetric,
//! results do not depend on row order, identical samples are at distance zero, and empty,
//! NaN or infinite input is an error rather than a panic.

use millwatch_detectors::drift::{CategoricalPair, ColumnPair, DriftTest, NumericPair, numeric};
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
