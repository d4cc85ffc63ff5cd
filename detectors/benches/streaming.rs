//! Throughput of the streaming change detectors, control charts and sketches: updates per
//! second per detector, sketch insert, merge and quantile query.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use millwatch_detectors::charts::{
    ChartConfig, ControlChart, CusumConfig, EwmaConfig, Limits, ShewhartConfig,
};
use millwatch_detectors::sketch::{ColumnSummary, KllSketch};
use millwatch_detectors::stream::{
    AdwinConfig, ChangeDetector, DdmConfig, DetectorConfig, EddmConfig, HddmAConfig, KswinConfig,
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
        (
            "kswin",
            DetectorConfig::Kswin(KswinConfig::default()),
            &real,
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

fn charts(c: &mut Criterion) {
    let data = uniform_stream(N);
    let limits = Limits::new(0.5, 0.29).expect("valid limits");
    let mut group = c.benchmark_group("chart_update");
    group.throughput(Throughput::Elements(N as u64));
    for (name, config) in [
        (
            "shewhart_we",
            ChartConfig::Shewhart(ShewhartConfig::default()),
        ),
        ("ewma", ChartConfig::Ewma(EwmaConfig::default())),
        ("cusum", ChartConfig::Cusum(CusumConfig::default())),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut chart = config.build(limits).expect("valid config");
                for &x in &data {
                    black_box(chart.update(x).expect("finite"));
                }
            })
        });
    }
    group.finish();
}

fn sketch_of(values: &[f64]) -> KllSketch {
    let mut s = KllSketch::default();
    for &v in values {
        s.insert(v).expect("finite");
    }
    s
}

fn sketches(c: &mut Criterion) {
    let data = uniform_stream(1_000_000);
    let mut group = c.benchmark_group("sketch");
    group.throughput(Throughput::Elements(data.len() as u64));
    group.bench_function("kll_insert_1m", |b| b.iter(|| black_box(sketch_of(&data))));
    group.bench_function("column_summary_push_1m", |b| {
        b.iter(|| {
            let mut s = ColumnSummary::default();
            for &v in &data {
                s.push_number(v);
            }
            black_box(s)
        })
    });
    // 100 edge summaries of 10,000 values each, merged at the centre.
    let parts: Vec<KllSketch> = data.chunks(10_000).map(sketch_of).collect();
    group.throughput(Throughput::Elements(parts.len() as u64));
    group.bench_function("kll_merge_100", |b| {
        b.iter(|| {
            let mut acc = KllSketch::default();
            for p in &parts {
                acc.merge(p).expect("same k");
            }
            black_box(acc)
        })
    });
    let full = sketch_of(&data);
    group.throughput(Throughput::Elements(1));
    group.bench_function("kll_quantile", |b| {
        b.iter(|| black_box(full.quantile(black_box(0.99)).expect("non-empty")))
    });
    group.bench_function("ks_on_sketches", |b| {
        b.iter(|| black_box(millwatch_detectors::sketch::drift::ks(&parts[0], &full)))
    });
    group.finish();
}

criterion_group!(benches, detectors, charts, sketches);
criterion_main!(benches);
