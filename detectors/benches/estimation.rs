//! What performance estimation costs at a window close: CBPE on a 1000-event window of a
//! binary classifier (six metrics, ROC AUC included) and the PCA reconstruction error of a
//! 1000-event window over 30 features; the budget is 50 models x 30 features within
//! 1 s of the window closing.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use millwatch_detectors::dataset::{Column, Dataset};
use millwatch_detectors::estimation::cbpe::{
    BinaryOutputs, Calibration, Cbpe, ClassificationMetric,
};
use millwatch_detectors::estimation::reconstruction::{DEFAULT_VARIANCE, Reconstruction};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng};

/// A deterministic sequence in [0, 1).
fn uniform(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random::<f64>()).collect()
}

/// Scores, predictions and labels drawn from the scores (a calibrated model).
fn classifier(n: usize, seed: u64) -> (Vec<f64>, Vec<bool>, Vec<bool>) {
    let scores: Vec<f64> = uniform(n, seed).iter().map(|u| u * u).collect();
    let predicted = scores.iter().map(|&s| s >= 0.5).collect();
    let actual = scores
        .iter()
        .zip(uniform(n, seed ^ 0xABCD))
        .map(|(&s, u)| u < s)
        .collect();
    (scores, predicted, actual)
}

/// 30 correlated numeric features: each a mix of 5 common factors and its own noise.
fn features(n: usize, seed: u64) -> Dataset {
    let factors: Vec<Vec<f64>> = (0..5).map(|k| uniform(n, seed + k)).collect();
    let columns = (0..30)
        .map(|j| {
            let noise = uniform(n, seed + 100 + j as u64);
            let values = (0..n)
                .map(|i| Some(factors[j % 5][i] + 0.5 * factors[(j + 1) % 5][i] + 0.3 * noise[i]))
                .collect();
            Column::numeric(format!("f{j}"), values)
        })
        .collect();
    Dataset::new(columns).expect("equal columns")
}

fn estimation(c: &mut Criterion) {
    let (rs, rp, ry) = classifier(5000, 7);
    let cbpe = Cbpe::fit(
        BinaryOutputs {
            scores: &rs,
            predicted: &rp,
        },
        &ry,
        1000,
        &ClassificationMetric::ALL,
        Calibration::Auto,
    )
    .expect("fit");
    let (ws, wp, _) = classifier(1000, 11);
    let window = BinaryOutputs {
        scores: &ws,
        predicted: &wp,
    };
    c.bench_function("cbpe_window_1000_events_6_metrics", |b| {
        b.iter(|| {
            black_box(
                cbpe.estimate_chunk(0, 0, black_box(window))
                    .expect("estimate"),
            )
        })
    });

    let reference = features(5000, 1);
    let names: Vec<String> = (0..30).map(|j| format!("f{j}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let model = Reconstruction::fit(&reference, &names, 1000, DEFAULT_VARIANCE).expect("fit");
    let current = features(1000, 2);
    c.bench_function("reconstruction_window_1000_events_30_features", |b| {
        b.iter(|| black_box(model.chunks(black_box(&current)).expect("chunks")))
    });
}

criterion_group!(benches, estimation);
criterion_main!(benches);
