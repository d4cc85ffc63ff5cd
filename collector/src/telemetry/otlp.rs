//! The OTLP exporters' series on `/metrics` (label `exporter`): what each queued, sent,
//! retried, lost and holds.

use millwatch_exporters::otlp::StatsHandle;
use millwatch_exporters::prometheus::{ExpositionError, MetricsExposition, OwnFamily, OwnType};

pub struct OtlpFamilies {
    items_queued: OwnFamily,
    items_sent: OwnFamily,
    items_rejected: OwnFamily,
    items_refused: OwnFamily,
    items_dropped: OwnFamily,
    requests_sent: OwnFamily,
    requests_retried: OwnFamily,
    queue_items: OwnFamily,
    queue_bytes: OwnFamily,
    queue_max_bytes: OwnFamily,
    queue_oldest_age: OwnFamily,
    queue_skipped_bytes: OwnFamily,
}

impl OtlpFamilies {
    pub fn register(exposition: &MetricsExposition) -> Result<Self, ExpositionError> {
        use OwnType::{Counter, Gauge};
        let r = |name: &str, help: &str, ty| exposition.register(name, help, ty);
        Ok(OtlpFamilies {
            items_queued: r(
                "millwatch_otlp_exporter_items_queued_total",
                "Items (data points, log records, spans) written to the OTLP exporter's disk queue.",
                Counter,
            )?,
            items_sent: r(
                "millwatch_otlp_exporter_items_sent_total",
                "Items the OTLP receiver accepted.",
                Counter,
            )?,
            items_rejected: r(
                "millwatch_otlp_exporter_items_rejected_total",
                "Items the receiver refused for good (a permanent error or partial_success); the log says why.",
                Counter,
            )?,
            items_refused: r(
                "millwatch_otlp_exporter_items_refused_queue_full_total",
                "Items not queued because the disk queue was full (policy refuse; their request was answered with a retryable status).",
                Counter,
            )?,
            items_dropped: r(
                "millwatch_otlp_exporter_items_dropped_total",
                "Queued items deleted to make room (policy drop_oldest).",
                Counter,
            )?,
            requests_sent: r(
                "millwatch_otlp_exporter_requests_sent_total",
                "Export requests the receiver accepted.",
                Counter,
            )?,
            requests_retried: r(
                "millwatch_otlp_exporter_requests_retried_total",
                "Export tries that failed with a retryable status or no answer, and were retried.",
                Counter,
            )?,
            queue_items: r(
                "millwatch_otlp_exporter_queue_items",
                "Items waiting in the OTLP exporter's disk queue.",
                Gauge,
            )?,
            queue_bytes: r(
                "millwatch_otlp_exporter_queue_bytes",
                "Bytes of records waiting in the OTLP exporter's disk queue.",
                Gauge,
            )?,
            queue_max_bytes: r(
                "millwatch_otlp_exporter_queue_max_bytes",
                "The OTLP exporter's disk queue size limit.",
                Gauge,
            )?,
            queue_oldest_age: r(
                "millwatch_otlp_exporter_queue_oldest_age_seconds",
                "Age of the oldest item waiting in the queue (0 when empty).",
                Gauge,
            )?,
            queue_skipped_bytes: r(
                "millwatch_otlp_exporter_queue_skipped_bytes_total",
                "Bytes of the disk queue skipped as damaged (torn or corrupt records, whose items are lost); the log names the segment file and offset.",
                Counter,
            )?,
        })
    }

    /// Sets each exporter's series from its counters.
    pub fn publish(&self, exporters: &[StatsHandle]) {
        for e in exporters {
            let s = e.stats();
            let labels = [("exporter", e.name())];
            self.items_queued.set(&labels, s.items_queued as f64);
            self.items_sent.set(&labels, s.items_sent as f64);
            self.items_rejected.set(&labels, s.items_rejected as f64);
            self.items_refused
                .set(&labels, s.items_refused_queue_full as f64);
            self.items_dropped.set(&labels, s.items_dropped as f64);
            self.requests_sent.set(&labels, s.requests_sent as f64);
            self.requests_retried
                .set(&labels, s.requests_retried as f64);
            self.queue_items.set(&labels, s.queue_items as f64);
            self.queue_bytes.set(&labels, s.queue_bytes as f64);
            self.queue_max_bytes.set(&labels, s.queue_max_bytes as f64);
            self.queue_oldest_age
                .set(&labels, s.queue_oldest_age_seconds);
            self.queue_skipped_bytes
                .set(&labels, s.queue_skipped_bytes as f64);
        }
    }
}
