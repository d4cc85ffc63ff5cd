//! Every way data leaves Millwatch. Depends on nothing in the collector: it defines its own input types.
//!
//! [`http`] is the one outbound HTTP layer (client, TLS, headers, retry rules) every sender
//! uses; [`notify`] holds the notifiers, and says how to add a channel; [`prometheus`] the
//! exposition; [`remote_write`] the Prometheus remote-write exporter; [`disk_queue`] the persistent queue
//! both forwarding exporters (remote write, [`otlp`]) keep.

pub mod disk_queue;
pub mod http;
pub mod notify;
pub mod otlp;
pub mod prometheus;
pub mod remote_write;
pub mod units;
