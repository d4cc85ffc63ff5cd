//! Criterion benchmarks of the drift tests: KS, Wasserstein and PSI on 1,000,000 vs 1,000,000
//! values, and a 50-feature, 100,000-row window compared with automatic tests.

use criterion::{Criterion, criterion_group, criterion_main};
use millwatch_detectors::dataset::{Column, Dataset};
use millwatch_detectors::drift::{
    ColumnPair, DriftOptions, DriftTest, NumericPair, compare, numeric,
};
use std::hint::black_box;

/// Deterministic pseudo-random sample (xorshift, sum of uniforms), so runs compare like with like.
fn sample(n: usize, seed: u64, shift: f64) -> Vec<f64> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| (next() + next() + next() - 1.5) * 2.0 + shift)
        .collect()
}

fn bench_large(c: &mut Criterion) {
    let a = sample(1_000_000, 1, 0.0);
    let b = sample(1_000_000, 2, 0.01);
    let mut g = c.benchmark_group("1m_vs_1m");
    g.sample_size(10);
    g.bench_function("ks", |x| {
        x.iter(|| numeric::ks(black_box(&a), black_box(&b)))
    });
    g.bench_function("wasserstein", |x| {
        x.iter(|| numeric::wasserstein(black_box(&a), black_box(&b)))
    });
    g.bench_function("psi", |x| {
        x.iter(|| {
            NumericPair::new(black_box(&a), black_box(&b))
                .and_then(|p| ColumnPair::Numeric(p).run(DriftTest::Psi))
        })
    });
    g.finish();
}

fn bench_window(c: &mut Criterion) {
    let make = |seed: u64, shift: f64| {
        Dataset::new(
            (0..50)
                .map(|i| {
                    let s = if i % 5 == 0 { shift } else { 0.0 };
                    let v = sample(100_000, seed * 100 + i, s);
                    Column::numeric(format!("f{i}"), v.into_iter().map(Some).collect())
                })
                .collect(),
        )
        .expect("equal columns")
    };
    let (r, cur) = (make(1, 0.0), make(2, 0.3));
    let mut g = c.benchmark_group("window");
    g.sample_size(10);
    g.bench_function("50_features_100k_rows_auto", |x| {
        x.iter(|| compare(black_box(&r), black_box(&cur), &DriftOptions::default()))
    });
    g.finish();
}

criterion_group!(benches, bench_large, bench_window);
criterion_main!(benches);
