//! Criterion benchmarks of the drift tests on large samples.

use criterion::{Criterion, criterion_group, criterion_main};
use millwatch_detectors::drift::ks::{KsMethod, ks_pvalue, ks_statistic_sorted};
use std::hint::black_box;

/// Deterministic pseudo-random sample (xorshift), so runs compare like with like.
fn sample(n: usize, seed: u64, shift: f64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 + shift
        })
        .collect()
}

fn bench_ks(c: &mut Criterion) {
    let mut a = sample(1_000_000, 1, 0.0);
    let mut b = sample(1_000_000, 2, 0.001);
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    c.bench_function("ks_sorted_1m_vs_1m", |bench| {
        bench.iter(|| {
            let d = ks_statistic_sorted(black_box(&a), black_box(&b));
            ks_pvalue(d, a.len(), b.len(), KsMethod::Auto)
        })
    });
}

criterion_group!(benches, bench_ks);
criterion_main!(benches);
