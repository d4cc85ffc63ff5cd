//! Rendering `/metrics` with 100,000 series, and ingesting a 1000-point OTLP request.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use millwatch_exporters::prometheus::{ExpositionConfig, Format, MetricsExposition};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// `metrics` gauges with `per_metric` points each, labelled like plant sensors.
fn request(metrics: usize, per_metric: usize, offset: usize) -> ExportMetricsServiceRequest {
    let ms = (0..metrics)
        .map(|m| Metric {
            name: format!("machine.sensor{m}.value"),
            unit: "Cel".into(),
            description: "A sensor reading.".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: (0..per_metric)
                    .map(|i| NumberDataPoint {
                        attributes: vec![
                            kv("hw.id", &format!("sensor-{}", i + offset)),
                            kv("hw.sensor_location", "spindle"),
                        ],
                        time_unix_nano: 1,
                        value: Some(number_data_point::Value::AsDouble(i as f64 * 0.5)),
                        ..Default::default()
                    })
                    .collect(),
            })),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "press-line"),
                    kv("service.instance.id", "edge-1"),
                    kv("site.name", "plant-a"),
                    kv("site.line", "line-3"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: ms,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn bench(c: &mut Criterion) {
    let exposition = MetricsExposition::new(ExpositionConfig::default());
    // 10 metrics × 10,000 series = 100,000 series (the default cardinality limit is 10,000).
    let now = Instant::now();
    exposition.ingest(&request(10, 10_000, 0), now);
    assert!(exposition.series_count() >= 100_000);
    c.bench_function("render_text_100k_series", |b| {
        b.iter(|| black_box(exposition.render(Format::Text, now)))
    });
    c.bench_function("render_openmetrics_100k_series", |b| {
        b.iter(|| black_box(exposition.render(Format::OpenMetrics, now)))
    });
    c.bench_function("encode_gzip_100k_series", |b| {
        b.iter(|| black_box(exposition.encode(None, Some("gzip"), now)))
    });
    let req = request(10, 100, 0);
    c.bench_function("ingest_1000_points_existing_series", |b| {
        b.iter(|| exposition.ingest(black_box(&req), now))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
