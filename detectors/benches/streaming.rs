//! Throughput of the streaming change detectors, control charts and sketches: updates per
//! second per detector, sketch insert, merge and quantile query.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use millwatch_detectors::stream::{
    AdwinConfig, ChangeDetector, DdmConfig, DetectorConfig, EddmConfig, HddmAConfig,
    PageHinkleyConfig,
};

const N: usize = 100_000;

/// A deterministic stream: a xorshift sequence mapped to [0, 1), mean 0.5.
fn uniform_stream(n: usize) -> Vec<f64> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

fn detectors(c: &mut Criterion) {
    let real = uniform_stream(N);
    let binary: Vec<f64> = real.iter().map(|&u| f64::from(u8::from(u < 0.1))).collect();
    let mut group = c.benchmark_group("detector_update");
    group.throughput(Throughput::Elements(N as u64));
    let cases = [
        ("adwin", DetectorConfig::Adwin(AdwinConfig::river()), &real),
        (
            "page_hinkley",
            DetectorConfig::PageHinkley(PageHinkleyConfig::default()),
            &real,
        ),
        ("ddm", DetectorConfig::Ddm(DdmConfig::default()), &binary),
        ("eddm", DetectorConfig::Eddm(EddmConfig::default()), &binary),
        (
            "hddm_a",
            DetectorConfig::HddmA(HddmAConfig::default()),
            &binary,
        ),
    ];
    for (name, config, data) in cases {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut d = config.build().expect("valid config");
                for &x in data.iter() {
                    black_box(d.update(x));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, detectors);
criterion_main!(benches);
