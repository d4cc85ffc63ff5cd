//! Accuracy of the mergeable sketches against the exact computation (exact = sort the full
//! data), on several distributions: KLL rank error, merge-order independence, KS with its
//! error bound, and PSI / Jensen–Shannon / Hellinger on sketch histograms. Measured errors are
//! printed (`--nocapture`); the README quotes them.

use millwatch_detectors::drift::binned;
use millwatch_detectors::drift::ks::ks_statistic_sorted;
use millwatch_detectors::sketch::drift::{binned_categorical, binned_numeric_default, ks};
use millwatch_detectors::sketch::{FrequentItems, KllSketch, rank_error_for_k};
use proptest::prelude::*;

/// SplitMix64 with uniform and normal draws.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 + f64::EPSILON
    }

    fn normal(&mut self) -> f64 {
        (-2.0 * self.uniform().ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
    }
}

/// The distributions every accuracy test runs on.
const DISTRIBUTIONS: [&str; 6] = [
    "normal",
    "lognormal",
    "uniform",
    "exponential",
    "bimodal",
    "discrete",
];

fn draw(dist: &str, n: usize, seed: u64, shift: f64) -> Vec<f64> {
    let mut r = Rng(seed);
    (0..n)
        .map(|_| {
            shift
                + match dist {
                    "normal" => 10.0 + 2.0 * r.normal(),
                    "lognormal" => r.normal().exp(),
                    "uniform" => r.uniform() * 100.0,
                    "exponential" => -r.uniform().ln() * 3.0,
                    "bimodal" => {
                        if r.uniform() < 0.3 {
                            -5.0 + r.normal()
                        } else {
                            5.0 + 2.0 * r.normal()
                        }
                    }
                    // Heavy ties: 21 integer levels.
                    "discrete" => (r.normal() * 3.0 + 10.0).round().clamp(0.0, 20.0),
                    other => panic!("unknown distribution {other}"),
                }
        })
        .collect()
}

fn sketch(values: &[f64]) -> KllSketch {
    let mut s = KllSketch::default();
    values.iter().for_each(|&v| s.insert(v).unwrap());
    s
}

/// `sup_x |F_sketch(x) − F_exact(x)|`, evaluated at every data value and sketch step (where
/// both step functions change).
fn max_rank_error(s: &KllSketch, sorted: &[f64]) -> f64 {
    let view = s.sorted_view().unwrap();
    let n = sorted.len() as f64;
    let exact = |x: f64| sorted.partition_point(|&v| v <= x) as f64 / n;
    sorted
        .iter()
        .chain(view.values())
        .map(|&x| (view.cdf(x) - exact(x)).abs())
        .fold(0.0, f64::max)
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_unstable_by(f64::total_cmp);
    v
}

#[test]
fn kll_rank_error_is_within_the_stated_bound() {
    let eps = rank_error_for_k(200);
    let mut worst: f64 = 0.0;
    for dist in DISTRIBUTIONS {
        for seed in 0..5 {
            let data = draw(dist, 100_000, seed, 0.0);
            let s = sketch(&data);
            let err = max_rank_error(&s, &sorted(data));
            worst = worst.max(err);
            assert!(err <= eps, "{dist} seed {seed}: rank error {err} > {eps}");
        }
    }
    println!(
        "KLL k=200, n=100,000, 6 distributions x 5 seeds: max rank error {:.4} % (bound {:.4} %)",
        100.0 * worst,
        100.0 * eps
    );
}

#[test]
fn merge_in_any_order_stays_within_the_bound() {
    let eps = rank_error_for_k(200);
    let mut worst: f64 = 0.0;
    for dist in DISTRIBUTIONS {
        let data = draw(dist, 160_000, 42, 0.0);
        let parts: Vec<KllSketch> = data.chunks(10_000).map(sketch).collect();
        let exact = sorted(data);
        let fold = |order: &[usize]| {
            let mut acc = KllSketch::default();
            order.iter().for_each(|&i| acc.merge(&parts[i]).unwrap());
            acc
        };
        let forward: Vec<usize> = (0..16).collect();
        let backward: Vec<usize> = (0..16).rev().collect();
        let shuffled = [7, 3, 12, 0, 15, 9, 1, 4, 14, 6, 11, 2, 8, 13, 5, 10];
        // A tree of pairwise merges, as a centre combining edge summaries hour by hour would.
        let mut level = parts.clone();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|pair| {
                    let mut a = pair[0].clone();
                    a.merge(&pair[1]).unwrap();
                    a
                })
                .collect();
        }
        for (name, merged) in [
            ("forward", fold(&forward)),
            ("backward", fold(&backward)),
            ("shuffled", fold(&shuffled)),
            ("tree", level.pop().unwrap()),
        ] {
            assert_eq!(merged.count(), 160_000);
            assert_eq!(merged.min(), exact.first().copied());
            let err = max_rank_error(&merged, &exact);
            worst = worst.max(err);
            assert!(err <= eps, "{dist} {name}: {err}");
        }
    }
    println!(
        "16 merged sketches, 4 merge orders, 6 distributions: max rank error {:.4} %",
        100.0 * worst
    );
}

#[test]
fn ks_on_sketches_is_within_its_error_bound() {
    let mut worst_gap: f64 = 0.0;
    for dist in DISTRIBUTIONS {
        for (shift, seed) in [(0.0, 1), (0.1, 2), (0.5, 3), (2.0, 4)] {
            let a = draw(dist, 50_000, seed, 0.0);
            let b = draw(dist, 80_000, seed + 100, shift);
            // Build the current sketch from merged parts, as the centre would.
            let mut cur = KllSketch::default();
            b.chunks(20_000)
                .for_each(|c| cur.merge(&sketch(c)).unwrap());
            let r = ks(&sketch(&a), &cur).unwrap();
            let exact = ks_statistic_sorted(&sorted(a), &sorted(b));
            let gap = (r.statistic - exact).abs();
            worst_gap = worst_gap.max(gap);
            assert!(
                gap <= r.error_bound,
                "{dist} shift {shift}: {} vs exact {exact} ± {}",
                r.statistic,
                r.error_bound
            );
            assert!(r.p_value_low <= r.p_value && r.p_value <= r.p_value_high);
        }
    }
    println!(
        "KS on sketches: max |D_sketch − D_exact| {:.4} (bound ε_ref + ε_cur = {:.4})",
        worst_gap,
        2.0 * rank_error_for_k(200)
    );
}

/// Stated tolerance of the binned distances on k = 200 sketches with ten bins, against the
/// exact computation: `|sketch − exact| <= ABS + REL · exact`, per metric (PSI, JS,
/// Hellinger). PSI is the most sensitive to large shifts: a bin whose current share is small
/// turns a rank error of 1–2 % into a large log ratio. JS and Hellinger are square roots, so
/// near zero the bin noise shows as about 0.01. Measured worst cases: PSI 0.30 vs 0.37
/// (bimodal, shift 1), JS and Hellinger 0.017 vs 0.005 (uniform, no shift) and 0.19 vs 0.21.
const ABS: [f64; 3] = [0.01, 0.02, 0.02];
const REL: [f64; 3] = [0.2, 0.1, 0.1];

#[test]
fn psi_js_hellinger_on_sketches_match_exact_within_tolerance() {
    let mut worst = [0.0f64; 3];
    for dist in DISTRIBUTIONS {
        for (shift, seed) in [(0.0, 1), (0.2, 2), (1.0, 3)] {
            let a = draw(dist, 100_000, seed, 0.0);
            let b = draw(dist, 100_000, seed + 100, shift);
            let r = binned_numeric_default(&sketch(&a), &sketch(&b)).unwrap();
            let edges = binned::quantile_edges(&sorted(a.clone()), binned::NUMERIC_BINS);
            let p = binned::proportions(&binned::bin_counts(&edges, &a), a.len() as f64);
            let q = binned::proportions(&binned::bin_counts(&edges, &b), b.len() as f64);
            let exact = [
                binned::psi(&p, &q),
                binned::jensenshannon(&p, &q),
                binned::hellinger(&p, &q),
            ];
            let got = [r.psi, r.jensenshannon, r.hellinger];
            for i in 0..3 {
                let err = (got[i] - exact[i]).abs();
                worst[i] = worst[i].max(err);
                assert!(
                    err <= ABS[i] + REL[i] * exact[i],
                    "{dist} shift {shift} metric {i}: {} vs {}",
                    got[i],
                    exact[i]
                );
            }
        }
    }
    println!(
        "binned on sketches, max abs error: PSI {:.4}, JS {:.4}, Hellinger {:.4} (tolerance {ABS:?} + {REL:?} x exact)",
        worst[0], worst[1], worst[2]
    );
}

#[test]
fn exact_sketches_give_the_exact_results() {
    // At most k values: no compaction, so the sketch path must equal the exact path.
    let a = draw("normal", 150, 5, 0.0);
    let b = draw("normal", 180, 6, 0.7);
    let r = ks(&sketch(&a), &sketch(&b)).unwrap();
    assert_eq!(r.error_bound, 0.0);
    // Equal up to the rounding to the 1/lcm(n, m) lattice that scipy's exact method applies.
    let exact = ks_statistic_sorted(&sorted(a.clone()), &sorted(b.clone()));
    assert!(
        (r.statistic - exact).abs() < 1e-12,
        "{} vs {exact}",
        r.statistic
    );
    let binned = binned_numeric_default(&sketch(&a), &sketch(&b)).unwrap();
    let edges = binned::quantile_edges(&sorted(a.clone()), 10);
    let p = binned::proportions(&binned::bin_counts(&edges, &a), a.len() as f64);
    let q = binned::proportions(&binned::bin_counts(&edges, &b), b.len() as f64);
    assert!((binned.psi - binned::psi(&p, &q)).abs() < 1e-12);
    assert!((binned.hellinger - binned::hellinger(&p, &q)).abs() < 1e-12);
}

#[test]
fn categorical_distances_on_frequent_items() {
    let mut r = FrequentItems::default();
    let mut c = FrequentItems::default();
    for i in 0..1000 {
        r.insert(["a", "b", "c"][i % 3]);
        c.insert(["a", "b", "b", "d"][i % 4]);
    }
    let d = binned_categorical(&r, &c).unwrap();
    assert_eq!(d.bins, ["a", "b", "c", "d"]);
    let p = [334.0 / 1000.0, 333.0 / 1000.0, 333.0 / 1000.0, 0.0];
    let q = [0.25, 0.5, 0.0, 0.25];
    assert!((d.psi - binned::psi(&p, &q)).abs() < 1e-12);
    assert!((d.jensenshannon - binned::jensenshannon(&p, &q)).abs() < 1e-12);
    assert!(binned_categorical(&r, &FrequentItems::default()).is_err());
}

#[test]
fn empty_and_non_finite_input_give_errors_not_panics() {
    let empty = KllSketch::default();
    let full = sketch(&[1.0, 2.0, 3.0]);
    assert!(ks(&empty, &full).is_err());
    assert!(ks(&full, &empty).is_err());
    assert!(binned_numeric_default(&full, &empty).is_err());
    let mut s = KllSketch::default();
    assert!(s.insert(f64::NEG_INFINITY).is_err());
    assert!(s.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Merging the same parts in two orders gives the same count and extremes, and quantiles
    /// whose ranks differ by at most twice the bound.
    #[test]
    fn merge_is_order_independent_within_bounds(
        values in proptest::collection::vec(-1e6f64..1e6, 1..3000),
        cuts in proptest::collection::vec(0usize..3000, 1..6),
    ) {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % values.len()).collect();
        cuts.push(0);
        cuts.push(values.len());
        cuts.sort_unstable();
        cuts.dedup();
        let parts: Vec<KllSketch> = cuts.windows(2).map(|w| sketch(&values[w[0]..w[1]])).collect();
        let mut fwd = KllSketch::default();
        parts.iter().for_each(|p| fwd.merge(p).unwrap());
        let mut bwd = KllSketch::default();
        parts.iter().rev().for_each(|p| bwd.merge(p).unwrap());
        prop_assert_eq!(fwd.count(), values.len() as u64);
        prop_assert_eq!(fwd.count(), bwd.count());
        prop_assert_eq!(fwd.min(), bwd.min());
        prop_assert_eq!(fwd.max(), bwd.max());
        let exact = sorted(values.clone());
        let eps = rank_error_for_k(200);
        for s in [&fwd, &bwd] {
            prop_assert!(max_rank_error(s, &exact) <= eps);
        }
        for q in [0.1, 0.5, 0.9] {
            let rank = |x: f64| exact.partition_point(|&v| v <= x) as f64 / exact.len() as f64;
            let (a, b) = (fwd.quantile(q).unwrap(), bwd.quantile(q).unwrap());
            prop_assert!((rank(a) - rank(b)).abs() <= 2.0 * eps + 1.0 / exact.len() as f64);
        }
    }
}
