//! Prometheus remote write 1.0 exporter.
