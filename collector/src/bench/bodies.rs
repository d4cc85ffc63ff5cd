//! Request bodies for the ingest benchmark, shaped like a plant's traffic: gauge readings from
//! machines, and inference events with numeric and categorical features.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

pub fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub fn string(s: &str) -> Value {
    Value::StringValue(s.to_owned())
}

/// A small deterministic generator (xorshift64*): bodies are the same on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Approximately normal (sum of uniforms), enough for load shaping.
    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let s: f64 = (0..12).map(|_| self.next_f64()).sum();
        mean + sd * (s - 6.0)
    }
}

/// `points` gauge points: 5 hosts x 2 gauges x 5 machines, the rest as points per series.
pub fn metrics(points: usize, base_ns: u64) -> ExportMetricsServiceRequest {
    let mut rng = Rng::new(7);
    let (hosts, gauges, machines) = (5usize, 2usize, 5usize);
    let per_series = points.div_ceil(hosts * gauges * machines).max(1);
    let mut left = points;
    let mut resource_metrics = Vec::new();
    for h in 0..hosts {
        let mut metrics = Vec::new();
        for (name, unit, mean, sd) in [
            ("machine.temperature", "Cel", 65.0, 8.0),
            ("machine.vibration.rms", "mm/s", 3.5, 1.2),
        ]
        .into_iter()
        .take(gauges)
        {
            let mut data_points = Vec::new();
            for m in 0..machines {
                for p in 0..per_series {
                    if left == 0 {
                        break;
                    }
                    left -= 1;
                    data_points.push(NumberDataPoint {
                        time_unix_nano: base_ns + p as u64 * 1_000_000_000,
                        value: Some(number_data_point::Value::AsDouble(rng.normal(mean, sd))),
                        attributes: vec![
                            kv("machine.id", string(&format!("mill-{h:02}-{m:02}"))),
                            kv("sensor", string("spindle")),
                        ],
                        ..Default::default()
                    });
                }
            }
            metrics.push(Metric {
                name: name.into(),
                unit: unit.into(),
                description: format!("{name} reading"),
                data: Some(Data::Gauge(Gauge { data_points })),
                ..Default::default()
            });
        }
        resource_metrics.push(ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", string("plant-telemetry")),
                    kv("host.name", string(&format!("edge-gw-{h:02}"))),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "plant.sensors".into(),
                    version: "1.4.0".into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    ExportMetricsServiceRequest { resource_metrics }
}

/// `events` inference events with `features` features (the last two categorical), spread
/// round-robin over `models` model names.
pub fn inferences(
    events: usize,
    features: usize,
    models: usize,
    base_ns: u64,
) -> ExportLogsServiceRequest {
    let mut rng = Rng::new(11);
    let categories = ["grinding", "milling", "turning", "drilling"];
    let mut log_records = Vec::with_capacity(events);
    for i in 0..events {
        let mut attributes = vec![
            kv(
                "ml.model.name",
                string(&if models > 1 {
                    format!("spindle-failure-{:02}", i % models)
                } else {
                    "spindle-failure".into()
                }),
            ),
            kv("ml.model.version", string("3.2.0")),
            kv("ml.inference.id", string(&format!("inf-{i:08}"))),
        ];
        for f in 0..features {
            let value = if f + 2 >= features && features > 2 {
                string(categories[(rng.next_f64() * 4.0) as usize % 4])
            } else {
                Value::DoubleValue(rng.normal(f as f64, 1.0))
            };
            attributes.push(kv(&format!("ml.feature.f{f:02}"), value));
        }
        let score = rng.next_f64();
        attributes.push(kv(
            "ml.prediction",
            Value::DoubleValue(f64::from(u8::from(score > 0.5))),
        ));
        attributes.push(kv("ml.prediction.score", Value::DoubleValue(score)));
        attributes.push(kv(
            "ml.inference.duration",
            Value::DoubleValue(0.002 + rng.next_f64() * 0.01),
        ));
        log_records.push(LogRecord {
            time_unix_nano: base_ns + i as u64 * 1_000_000,
            observed_time_unix_nano: base_ns + i as u64 * 1_000_000,
            event_name: "ml.inference".into(),
            severity_number: 9,
            attributes,
            ..Default::default()
        });
    }
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", string("spindle-predictor")),
                    kv("deployment.environment.name", string("production")),
                    kv("host.name", string("line-3-gpu")),
                    kv("site.name", string("plant-a")),
                    kv("site.line", string("line-3")),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "spindle.model".into(),
                    ..Default::default()
                }),
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
