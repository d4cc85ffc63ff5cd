//! A collector client built on the Rust OpenTelemetry SDK and `opentelemetry-otlp`: sends a fixed
//! set of metrics (gauge, counter, up-down counter, histogram), `ml.inference` and `ml.feedback`
//! events and spans over the protocol given, then prints each export request it made as a JSON
//! line (`{"signal", "ok", "error", "request_hex"}`) and exits non-zero if any export failed.
//!
//!     otlp_rust_client --protocol grpc --endpoint http://127.0.0.1:4317 --run-id r1
//!     otlp_rust_client --protocol http-json --endpoint http://127.0.0.1:4318 --run-id r1

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use millwatch_e2e::{
    Recorder, RecordingLogExporter, RecordingMetricExporter, RecordingSpanExporter,
};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, InstrumentationScope, KeyValue, trace::Span as _};
use opentelemetry_otlp::{Protocol as OtlpProtocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Protocol {
    Grpc,
    HttpProto,
    HttpJson,
}

#[derive(Debug, Parser)]
#[command(about = "Sends a fixed set of OTLP signals with the Rust OpenTelemetry SDK")]
struct Args {
    /// gRPC: http://HOST:PORT; HTTP: the base URL, /v1/{signal} is appended.
    #[arg(long)]
    endpoint: String,
    #[arg(long, value_enum)]
    protocol: Protocol,
    /// Made part of every inference id and of the resource, so runs are told apart.
    #[arg(long)]
    run_id: String,
    /// Inference events to send (a feedback event follows every other one).
    #[arg(long, default_value_t = 24)]
    events: usize,
}

const SCOPE_NAME: &str = "millwatch.e2e.rust";

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE_NAME)
        .with_version("0.4.2")
        .build()
}

fn resource(run_id: &str) -> Resource {
    Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", "rust-scorer"),
            KeyValue::new("service.instance.id", run_id.to_owned()),
            KeyValue::new("deployment.environment.name", "production"),
            KeyValue::new("host.name", "gpu-node-3"),
            KeyValue::new("site.name", "plant-turin"),
            KeyValue::new("site.line", "line-7"),
            KeyValue::new("site.cell", "cell-a"),
        ])
        .build()
}

fn endpoint(args: &Args, signal: &str) -> String {
    match args.protocol {
        Protocol::Grpc => args.endpoint.clone(),
        Protocol::HttpProto | Protocol::HttpJson => {
            format!("{}/v1/{signal}", args.endpoint.trim_end_matches('/'))
        }
    }
}

fn http_protocol(p: Protocol) -> OtlpProtocol {
    match p {
        Protocol::HttpJson => OtlpProtocol::HttpJson,
        _ => OtlpProtocol::HttpBinary,
    }
}

const TIMEOUT: Duration = Duration::from_secs(30);

fn meter_provider(args: &Args, recorder: &Recorder) -> anyhow::Result<SdkMeterProvider> {
    let builder = opentelemetry_otlp::MetricExporter::builder();
    let exporter = match args.protocol {
        Protocol::Grpc => builder
            .with_tonic()
            .with_endpoint(endpoint(args, "metrics"))
            .with_timeout(TIMEOUT)
            .build(),
        p => builder
            .with_http()
            .with_protocol(http_protocol(p))
            .with_endpoint(endpoint(args, "metrics"))
            .with_timeout(TIMEOUT)
            .build(),
    }
    .context("building the OTLP metric exporter")?;
    // An hour-long interval: exports happen only on force_flush and shutdown.
    let reader = PeriodicReader::builder(RecordingMetricExporter::new(exporter, recorder.clone()))
        .with_interval(Duration::from_secs(3600))
        .build();
    Ok(SdkMeterProvider::builder()
        .with_resource(resource(&args.run_id))
        .with_reader(reader)
        .build())
}

fn logger_provider(args: &Args, recorder: &Recorder) -> anyhow::Result<SdkLoggerProvider> {
    let builder = opentelemetry_otlp::LogExporter::builder();
    let exporter = match args.protocol {
        Protocol::Grpc => builder
            .with_tonic()
            .with_endpoint(endpoint(args, "logs"))
            .with_timeout(TIMEOUT)
            .build(),
        p => builder
            .with_http()
            .with_protocol(http_protocol(p))
            .with_endpoint(endpoint(args, "logs"))
            .with_timeout(TIMEOUT)
            .build(),
    }
    .context("building the OTLP log exporter")?;
    Ok(SdkLoggerProvider::builder()
        .with_resource(resource(&args.run_id))
        .with_batch_exporter(RecordingLogExporter::new(exporter, recorder.clone()))
        .build())
}

fn tracer_provider(args: &Args, recorder: &Recorder) -> anyhow::Result<SdkTracerProvider> {
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let exporter = match args.protocol {
        Protocol::Grpc => builder
            .with_tonic()
            .with_endpoint(endpoint(args, "traces"))
            .with_timeout(TIMEOUT)
            .build(),
        p => builder
            .with_http()
            .with_protocol(http_protocol(p))
            .with_endpoint(endpoint(args, "traces"))
            .with_timeout(TIMEOUT)
            .build(),
    }
    .context("building the OTLP span exporter")?;
    Ok(SdkTracerProvider::builder()
        .with_resource(resource(&args.run_id))
        .with_batch_exporter(RecordingSpanExporter::new(exporter, recorder.clone()))
        .build())
}

fn send_metrics(provider: &SdkMeterProvider) -> anyhow::Result<()> {
    let meter = provider.meter_with_scope(scope());
    let temperature = meter
        .f64_gauge("hw.temperature")
        .with_unit("Cel")
        .with_description("GPU temperature")
        .build();
    let parts = meter
        .u64_counter("machine.parts.produced")
        .with_unit("{part}")
        .build();
    let queue = meter
        .i64_up_down_counter("machine.queue.length")
        .with_unit("{part}")
        .build();
    let latency = meter
        .f64_histogram("ml.inference.duration")
        .with_unit("s")
        .with_boundaries(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5])
        .build();
    for round in 0..2u32 {
        let r = f64::from(round);
        for gpu in 0..2 {
            let attrs = [
                KeyValue::new("hw.id", format!("gpu-{gpu}")),
                KeyValue::new("hw.type", "gpu"),
            ];
            temperature.record(61.25 + f64::from(gpu) + r * 0.5, &attrs);
        }
        parts.add(
            11 + u64::from(round),
            &[KeyValue::new("machine.id", "press-4")],
        );
        queue.add(9, &[KeyValue::new("machine.id", "press-4")]);
        queue.add(
            -4 - i64::from(round),
            &[KeyValue::new("machine.id", "press-4")],
        );
        for i in 0..25 {
            latency.record(
                0.0007 * f64::from(i + 1) * (r + 1.0),
                &[KeyValue::new("ml.model.name", "rul-regressor")],
            );
        }
        provider.force_flush().context("metrics force_flush")?;
    }
    Ok(())
}

/// Twelve features: 4 double, 3 int, 2 bool, 3 string.
fn features(i: usize) -> Vec<(&'static str, AnyValue)> {
    let f = i as f64;
    let n = i as i64;
    vec![
        (
            "ml.feature.bearing_temp",
            AnyValue::Double(55.5 + f * 0.125),
        ),
        ("ml.feature.load_ratio", AnyValue::Double(0.3 + f / 97.0)),
        ("ml.feature.current_a", AnyValue::Double(12.0 + f)),
        ("ml.feature.drift_um", AnyValue::Double(-1.0e-3 * f)),
        ("ml.feature.cycles", AnyValue::Int(1_000_000 + n * 3)),
        ("ml.feature.tool_id", AnyValue::Int(n % 6)),
        ("ml.feature.alarms", AnyValue::Int(-n)),
        (
            "ml.feature.lubricated",
            AnyValue::Boolean(i.is_multiple_of(2)),
        ),
        (
            "ml.feature.manual_mode",
            AnyValue::Boolean(i.is_multiple_of(5)),
        ),
        (
            "ml.feature.material",
            AnyValue::String(["steel", "brass", "pom"][i % 3].into()),
        ),
        (
            "ml.feature.supplier",
            AnyValue::String(format!("sup-{}", i % 4).into()),
        ),
        (
            "ml.feature.batch",
            AnyValue::String(format!("B{:04}", 17 * i).into()),
        ),
    ]
}

fn nanos(t: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(t)
}

fn send_events(
    provider: &SdkLoggerProvider,
    tracers: &SdkTracerProvider,
    args: &Args,
) -> anyhow::Result<()> {
    let logger = provider.logger_with_scope(scope());
    let tracer = tracers.tracer_with_scope(scope());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("clock before 1970")?
        .as_nanos() as u64;
    let base = now - 7_200_000_000_000;
    for i in 0..args.events {
        let t = base + i as u64 * 2_000_011 + 3;
        let inference_id = format!("{}-inf-{i}", args.run_id);
        // Every inference is served inside a span; the span carries the model, the event its ids.
        let mut span = tracer
            .span_builder("predict")
            .with_kind(SpanKind::Server)
            .with_start_time(nanos(t - 5_000))
            .with_attributes([
                KeyValue::new("ml.model.name", "rul-regressor"),
                KeyValue::new("ml.model.version", "2024.11.0"),
                KeyValue::new("ml.inference.id", inference_id.clone()),
            ])
            .start(&tracer);
        if i % 7 == 3 {
            span.set_status(Status::error("inference failed: NaN input"));
        } else {
            span.set_status(Status::Ok);
        }
        let sc = span.span_context().clone();
        let mut record = logger.create_log_record();
        record.set_event_name("ml.inference");
        record.set_timestamp(nanos(t));
        record.set_observed_timestamp(nanos(t + 1_234));
        record.set_severity_number(Severity::Info);
        record.set_trace_context(sc.trace_id(), sc.span_id(), Some(sc.trace_flags()));
        record.add_attribute("ml.model.name", "rul-regressor");
        record.add_attribute("ml.model.version", "2024.11.0");
        record.add_attribute("ml.inference.id", inference_id.clone());
        for (k, v) in features(i) {
            record.add_attribute(k, v);
        }
        if i % 3 == 0 {
            record.add_attribute(
                "ml.prediction",
                AnyValue::String(["healthy", "wear", "fault"][i % 3].into()),
            );
        } else {
            record.add_attribute("ml.prediction", AnyValue::Double(120.5 - i as f64));
        }
        record.add_attribute(
            "ml.prediction.score",
            AnyValue::Double(0.5 + (i % 10) as f64 / 20.0),
        );
        record.add_attribute(
            "ml.inference.duration",
            AnyValue::Double(0.004 + i as f64 * 1e-5),
        );
        record.add_attribute("request.path", "/v1/score");
        logger.emit(record);
        span.end_with_timestamp(nanos(t + 4_000_000));

        if i % 2 == 0 {
            let mut fb = logger.create_log_record();
            fb.set_event_name("ml.feedback");
            fb.set_timestamp(nanos(t + 3_600_000_000_007));
            fb.add_attribute("ml.model.name", "rul-regressor");
            fb.add_attribute("ml.inference.id", inference_id);
            fb.add_attribute("ml.label", AnyValue::Double(118.0 - i as f64));
            logger.emit(fb);
        }
    }
    // A child span with an event, under a remote parent.
    let parent = tracer
        .span_builder("batch")
        .with_start_time(nanos(base))
        .start(&tracer);
    let cx = Context::new().with_remote_span_context(parent.span_context().clone());
    let mut child = tracer
        .span_builder("load_model")
        .with_kind(SpanKind::Internal)
        .with_start_time(nanos(base + 10))
        .with_attributes([
            KeyValue::new("ml.model.name", "rul-regressor"),
            KeyValue::new("bytes", 123_456_789i64),
        ])
        .start_with_context(&tracer, &cx);
    child.add_event_with_timestamp(
        "weights.loaded",
        nanos(base + 500),
        vec![KeyValue::new("shards", 4i64)],
    );
    child.end_with_timestamp(nanos(base + 1_000_000));
    let mut parent = parent;
    parent.end_with_timestamp(nanos(base + 2_000_000));

    provider.force_flush().context("logs force_flush")?;
    tracers.force_flush().context("spans force_flush")?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // reqwest is built with `rustls-no-provider` in this workspace and refuses to build a client
    // without a process-wide provider. Err only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let recorder = Recorder::default();
    let meters = meter_provider(&args, &recorder)?;
    let loggers = logger_provider(&args, &recorder)?;
    let tracers = tracer_provider(&args, &recorder)?;

    // The SDK's processors export from their own threads; keep this runtime's workers free.
    let outcome = tokio::task::block_in_place(|| -> anyhow::Result<()> {
        send_metrics(&meters)?;
        send_events(&loggers, &tracers, &args)?;
        meters.shutdown().context("meter provider shutdown")?;
        loggers.shutdown().context("logger provider shutdown")?;
        tracers.shutdown().context("tracer provider shutdown")?;
        Ok(())
    });

    let exports = recorder.exports();
    for e in &exports {
        println!("{}", e.to_json());
    }
    outcome?;
    let failed = exports.iter().filter(|e| !e.ok).count();
    if exports.is_empty() || failed > 0 {
        bail!("{failed} of {} exports failed", exports.len());
    }
    Ok(())
}
