//! How the plant reports, as any instrumented service would: OTLP metrics for the machines'
//! sensors and OTLP log records (events) for the models' inferences and the labels that come
//! later, sent as protobuf over OTLP/HTTP. The attribute names follow docs/signals.md; copy this
//! file to instrument a service of your own.

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

use super::models::{Feedback, Inference, Label, Prediction};
use super::plant::{LINES, Machine, MachineState, Reading};

/// The plant's `site.name`.
pub const SITE: &str = "demo-plant";

fn kv(key: &str, value: Option<Value>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        // A value of `None` is an attribute sent without a value: a missing feature.
        value: Some(AnyValue { value }),
        ..Default::default()
    }
}

fn text(s: &str) -> Option<Value> {
    Some(Value::StringValue(s.to_owned()))
}

fn double(v: f64) -> Option<Value> {
    Some(Value::DoubleValue(v))
}

/// Where a signal comes from: `host.name`, `site.name`, `site.line` (docs/signals.md § 4).
fn resource(service: &str, host: &str, line: &str) -> Resource {
    Resource {
        attributes: vec![
            kv("service.name", text(service)),
            kv("deployment.environment.name", text("production")),
            kv("host.name", text(host)),
            kv("site.name", text(SITE)),
            kv("site.line", text(line)),
        ],
        ..Default::default()
    }
}

fn gauge(name: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(Data::Gauge(Gauge {
            data_points: points,
        })),
        ..Default::default()
    }
}

fn point(time_ns: u64, value: f64, attributes: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        time_unix_nano: time_ns,
        value: Some(number_data_point::Value::AsDouble(value)),
        attributes,
        ..Default::default()
    }
}

/// One machine's readings at `time_ns` as OTLP metrics: `hw.temperature` (with
/// `hw.sensor_location` air or process, in K converted to Cel as the convention asks),
/// `hw.status`, and `machine.*` for what no convention covers.
fn machine_metrics(m: &Machine, r: &Reading, time_ns: u64) -> Vec<Metric> {
    let id = || kv("hw.id", text(&m.id));
    let at = |location: &str| vec![id(), kv("hw.sensor_location", text(location))];
    let mut temperatures = vec![point(
        time_ns,
        r.process_temperature - 273.15,
        at("process"),
    )];
    // A silent sensor sends no point at all.
    if let Some(air) = r.air_temperature {
        temperatures.push(point(time_ns, air - 273.15, at("air")));
    }
    let status = MachineState::ALL
        .iter()
        .map(|s| {
            let attrs = vec![
                id(),
                kv("hw.type", text("machine")),
                kv("hw.state", text(s.as_str())),
            ];
            point(time_ns, f64::from(u8::from(*s == r.state)), attrs)
        })
        .collect();
    let one = |v: f64| vec![point(time_ns, v, vec![id()])];
    vec![
        gauge("hw.temperature", "Cel", temperatures),
        gauge("hw.status", "1", status),
        gauge("machine.spindle.speed", "{rpm}", one(r.rotational_speed)),
        gauge("machine.spindle.torque", "N.m", one(r.torque)),
        gauge("machine.spindle.current", "A", one(r.spindle_current)),
        gauge("machine.tool.wear", "min", one(r.tool_wear)),
        gauge("machine.vibration.rms", "mm/s", one(r.vibration)),
    ]
}

/// Every machine's readings at `time_ns`, one resource per machine.
pub fn metrics(
    machines: &[Machine],
    readings: &[Reading],
    time_ns: u64,
) -> ExportMetricsServiceRequest {
    let resource_metrics = machines
        .iter()
        .zip(readings)
        .map(|(m, r)| ResourceMetrics {
            resource: Some(resource("plant-sensors", &m.host_name(), LINES[m.line])),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "millwatch.demo.sensors".into(),
                    ..Default::default()
                }),
                metrics: machine_metrics(m, r, time_ns),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

/// An `ml.inference` event (docs/signals.md § 1).
fn inference_record(i: &Inference, time_ns: u64) -> LogRecord {
    let mut attributes = vec![
        kv("ml.model.name", text(i.model)),
        kv("ml.model.version", text(i.version)),
        kv("ml.inference.id", text(&i.id)),
        kv("ml.inference.duration", double(i.duration)),
        // Outside `ml.*`: kept with the row as JSON.
        kv("machine.id", text(&i.machine)),
    ];
    for (name, value) in &i.features {
        attributes.push(kv(
            &format!("ml.feature.{name}"),
            value.map(Value::DoubleValue),
        ));
    }
    match i.prediction {
        Prediction::Class { class, score } => {
            attributes.push(kv("ml.model.task", text("classification")));
            attributes.push(kv("ml.prediction", Some(Value::IntValue(class))));
            attributes.push(kv("ml.prediction.score", double(score)));
        }
        Prediction::Value(v) => {
            attributes.push(kv("ml.model.task", text("regression")));
            attributes.push(kv("ml.prediction", double(v)));
        }
    }
    LogRecord {
        time_unix_nano: time_ns,
        observed_time_unix_nano: time_ns,
        event_name: "ml.inference".into(),
        severity_number: 9,
        attributes,
        ..Default::default()
    }
}

/// An `ml.feedback` event: the label of an earlier inference.
fn feedback_record(f: &Feedback, time_ns: u64) -> LogRecord {
    let label = match f.label {
        Label::Class(c) => Value::IntValue(c),
        Label::Value(v) => Value::DoubleValue(v),
    };
    LogRecord {
        time_unix_nano: time_ns,
        observed_time_unix_nano: time_ns,
        event_name: "ml.feedback".into(),
        severity_number: 9,
        attributes: vec![
            kv("ml.model.name", text(f.model)),
            kv("ml.inference.id", text(&f.id)),
            kv("ml.label", Some(label)),
        ],
        ..Default::default()
    }
}

/// A line's model events at `time_ns`: the inferences of its parts and the labels that became
/// known, from the line's edge computer that runs the models.
pub fn events(
    line: usize,
    inferences: &[Inference],
    feedback: &[Feedback],
    time_ns: u64,
) -> ResourceLogs {
    let mut log_records: Vec<LogRecord> = inferences
        .iter()
        .map(|i| inference_record(i, time_ns))
        .collect();
    log_records.extend(feedback.iter().map(|f| feedback_record(f, time_ns)));
    ResourceLogs {
        resource: Some(resource(
            "maintenance-models",
            &format!("{}-edge", LINES[line]),
            LINES[line],
        )),
        scope_logs: vec![ScopeLogs {
            scope: Some(InstrumentationScope {
                name: "millwatch.demo.models".into(),
                ..Default::default()
            }),
            log_records,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The lines' events as one request.
pub fn logs(per_line: Vec<ResourceLogs>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: per_line,
    }
}
