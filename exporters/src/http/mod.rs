//! The one outbound HTTP layer: every sender — the webhook and Alertmanager notifiers,
//! Prometheus remote write, the `millwatch alerts` command line, and the exporters to come —
//! builds its client here and judges the answers here, so that TLS, timeouts, the user agent,
//! header checks and the retry decision are the same everywhere.
//!
//! - [`client`]: a reqwest client over rustls with the `ring` provider, trusting the
//!   platform's store or the CA certificates of one PEM file; a [`Sender`] that POSTs with its
//!   fixed headers and returns the [`Answer`] (or why there was none).
//! - [`headers`]: configured headers and credentials, checked once when a sender starts.
//! - [`retry`]: which answers are worth another try ([`RetryRule`], after the OTLP and the
//!   remote-write specifications), `Retry-After`, and exponential backoff with jitter.
//!
//! A new sender builds a [`Sender`] from [`ClientOptions`] and a header map made with
//! [`headers::checked`] and [`headers::authorization`], POSTs, and turns each [`Answer`] into
//! its own outcome with the [`RetryRule`] of its protocol.

pub mod client;
pub mod config;
pub mod headers;
pub mod retry;

pub use client::{
    Answer, ClientError, ClientOptions, Sender, USER_AGENT, build, describe, excerpt, with_causes,
};
pub use config::{TlsConfig, parse_http_url};
pub use headers::{HeaderProblem, Reserved};
pub use retry::{Backoff, Class, RetryRule, parse_retry_after};
