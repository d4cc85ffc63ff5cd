//! Times Millwatch's drift tests on the data `benches/scipy_compare.py` writes, so both run on
//! identical values: `cargo run --release --example drift_timing -- DIR`. Prints one JSON line.

use std::time::Instant;

use millwatch_detectors::dataset::{Column, Dataset};
use millwatch_detectors::drift::{
    ColumnPair, DriftOptions, DriftTest, NumericPair, compare, numeric,
};

fn read_f64(path: &std::path::Path) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

/// Best of `runs` wall-clock times in seconds.
fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or("/tmp/mw-bench".into()));
    let a = read_f64(&dir.join("a.f64"));
    let b = read_f64(&dir.join("b.f64"));
    let ks = best(5, || numeric::ks(&a, &b).expect("finite"));
    let wasserstein = best(5, || numeric::wasserstein(&a, &b).expect("finite"));
    // The library's own path, as `compare` runs a PSI column: prepare the pair, run the test.
    let psi_run = || {
        NumericPair::new(&a, &b)
            .and_then(|p| ColumnPair::Numeric(p).run(DriftTest::Psi))
            .expect("finite")
    };
    let psi_time = best(5, psi_run);
    let psi_value = psi_run().statistic;
    let features = 50;
    let wref = read_f64(&dir.join("window_ref.f64"));
    let wcur = read_f64(&dir.join("window_cur.f64"));
    let rows = wref.len() / features;
    let dataset = |data: &[f64]| {
        Dataset::new(
            data.chunks_exact(rows)
                .enumerate()
                .map(|(i, c)| {
                    Column::numeric(format!("f{i}"), c.iter().map(|&v| Some(v)).collect())
                })
                .collect(),
        )
        .expect("equal columns")
    };
    let (r, c) = (dataset(&wref), dataset(&wcur));
    let mut drifted = 0;
    let window = best(3, || {
        let report = compare(&r, &c, &DriftOptions::default()).expect("compare");
        drifted = report.dataset.drifted_columns;
    });
    println!(
        "{{\"ks\": {ks}, \"wasserstein\": {wasserstein}, \"psi\": {psi_time}, \"window_50x100k\": {window}, \"window_drifted_columns\": {drifted}, \"psi_value\": {psi_value}}}"
    );
}
