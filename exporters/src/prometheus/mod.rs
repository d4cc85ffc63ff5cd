//! Prometheus exposition: OTLP metrics translated as the OpenTelemetry specification says,
//! held as live series, and rendered in the Prometheus text 0.0.4 and OpenMetrics 1.0 formats.
//!
//! The collector creates one [`MetricsExposition`], calls [`MetricsExposition::ingest`] on
//! every accepted OTLP metrics request, publishes its own series through
//! [`MetricsExposition::register`], and answers `GET /metrics` with
//! [`MetricsExposition::encode`].

mod exposition;
mod ingest;
pub mod names;
mod own;
pub(crate) mod render;
mod series;
pub(crate) mod translate;

pub use exposition::{ExpositionConfig, ExpositionError, MetricsExposition};
pub use own::{OwnFamily, OwnType};
pub use render::{Encoded, Format, gzip_accepted, negotiate};
pub use translate::TranslationConfig;
