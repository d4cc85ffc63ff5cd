//! Sends one inference event to Millwatch over OTLP/gRPC with the OpenTelemetry SDK.

use opentelemetry::KeyValue;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry_otlp::{LogExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Millwatch's OTLP/gRPC address, unless OTEL_EXPORTER_OTLP_ENDPOINT names another.
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:4317".to_owned());
    let exporter = LogExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    let resource = Resource::builder()
        .with_service_name("spindle-predictor")
        .with_attributes([
            KeyValue::new("site.name", "plant-a"),
            KeyValue::new("site.line", "line-3"),
        ])
        .build();
    let provider = SdkLoggerProvider::builder()
        .with_resource(resource)
        .with_batch_exporter(exporter)
        .build();
    let logger = provider.logger("spindle.model");

    let mut record = logger.create_log_record();
    record.set_event_name("ml.inference");
    record.add_attribute("ml.model.name", "spindle-failure");
    record.add_attribute("ml.model.version", "3.2.0");
    record.add_attribute("ml.inference.id", "inf-0001");
    record.add_attribute("ml.feature.vibration_rms", 4.2);
    record.add_attribute("ml.feature.bearing_temp_c", 71.5);
    record.add_attribute("ml.feature.station", "mill");
    record.add_attribute("ml.prediction", 1.0);
    record.add_attribute("ml.prediction.score", 0.87);
    record.add_attribute("ml.inference.duration", 0.004);
    logger.emit(record);

    // The SDK exports from its own thread; shutdown waits for that export, so it runs off the
    // async workers that carry the gRPC connection.
    tokio::task::spawn_blocking(move || provider.shutdown()).await??;
    Ok(())
}
