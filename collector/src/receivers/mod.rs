//! Receivers: how signals arrive. OTLP today.

pub mod otlp;
