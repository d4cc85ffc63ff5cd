//! Configuration of the OTLP exporter (`exporters.otlp`, a list), as the collector embeds it in
//! its YAML file.

use std::collections::BTreeMap;
use std::fmt;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::disk_queue::FullPolicy;
pub use crate::http::TlsConfig;
use crate::remote_write::RetryConfig;

mod defaults {
    use super::*;

    pub fn timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn max_items() -> NonZeroUsize {
        NonZeroUsize::new(1_000).unwrap_or(NonZeroUsize::MIN)
    }
    pub fn max_delay() -> Duration {
        Duration::from_millis(200)
    }
    pub fn queue_max_bytes() -> NonZeroU64 {
        NonZeroU64::new(1 << 30).unwrap_or(NonZeroU64::MIN)
    }
    pub fn routing_attribute() -> String {
        "ml.model.name".into()
    }
    pub fn signals() -> Vec<ForwardedSignal> {
        vec![
            ForwardedSignal::Metrics,
            ForwardedSignal::Logs,
            ForwardedSignal::Traces,
        ]
    }
}

/// An OTLP destination: a central Millwatch, an OpenTelemetry Collector, a vendor backend.
/// What the collector receives is written to this exporter's disk queue before the client is
/// acknowledged, and sent from there in order.
///
/// ```yaml
/// name: central
/// endpoint: https://central.example.net:4317
/// protocol: grpc
/// compression: gzip
/// token: { env: MILLWATCH_CENTRAL_TOKEN }
/// tls: { ca_file: /etc/millwatch/ca.pem, cert_file: /etc/millwatch/edge.pem, key_file: /etc/millwatch/edge.key }
/// queue: { dir: ./millwatch-data/otlp-central, max_bytes: 1073741824, full: refuse }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OtlpExporterConfig {
    /// Names the exporter in logs and in the `exporter` label of its `/metrics` series.
    pub name: String,
    /// `http://` or `https://` address of the receiver. For `protocol: http` the signal's path
    /// (`/v1/metrics`, `/v1/logs`, `/v1/traces`) is appended to it.
    #[serde(
        deserialize_with = "crate::http::config::url::endpoint",
        serialize_with = "crate::http::config::url::text"
    )]
    #[schemars(with = "String")]
    pub endpoint: reqwest::Url,
    /// `grpc` (OTLP/gRPC) or `http` (OTLP/HTTP with protobuf bodies).
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// `gzip` or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// Which received signals are forwarded.
    #[serde(default = "defaults::signals")]
    pub signals: Vec<ForwardedSignal>,
    /// Extra request headers (HTTP headers or gRPC metadata, e.g. a tenant). `Content-Type`,
    /// `Content-Encoding`, `User-Agent` and `Authorization` cannot be set here.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A bearer token sent as `Authorization: Bearer …`, read at start from an environment
    /// variable or a file (never from this file, never logged).
    #[serde(default)]
    pub token: Option<TokenSource>,
    /// Timeout of one export request, connecting included.
    #[serde(default = "defaults::timeout", with = "crate::units::duration")]
    #[schemars(with = "crate::units::DurationText")]
    pub timeout: Duration,
    /// How queued data is grouped into export requests.
    #[serde(default)]
    pub batch: BatchConfig,
    /// TLS for `https://` endpoints: a custom CA and a client certificate for mTLS.
    #[serde(default)]
    pub tls: TlsConfig,
    /// The persistent queue that holds data until the receiver has accepted it.
    pub queue: OtlpQueueConfig,
    /// Backoff between tries of a request the receiver could not take (retryable statuses,
    /// network). Tries never stop because an outage lasts long.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Resource attributes that say where this collector's own detection results and alerts
    /// come from (signals `detections` and `alerts`), e.g. `{ site.name: plant-a, site.line:
    /// line-3 }`. `service.name: millwatch` and `millwatch.tier: edge` are added, and
    /// `host.name` (the machine's host name) unless given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub origin: BTreeMap<String, String>,
    /// A central tier routed by model: `endpoint` and `routing.more_endpoints` each own a
    /// subset of the models, chosen by rendezvous hashing; a model whose endpoint is down goes
    /// to the next in its order until it is back. Without it everything goes to `endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<RoutingConfig>,
}

/// Routing by model across several endpoints, e.g.
/// `routing: { attribute: ml.model.name, more_endpoints: [http://central-2:4317] }`.
///
/// Each log record, data point and span goes to the endpoint with the highest rendezvous score
/// for its `attribute` (read on the item, then on its resource; items without it share one
/// endpoint): adding an endpoint to N moves 1/(N+1) of the models, all to the new one; one
/// down moves only its own models, to their runners-up, until it answers again. All
/// endpoints share the exporter's protocol, headers, token, TLS and queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// The attribute whose value picks the endpoint.
    #[serde(default = "defaults::routing_attribute")]
    pub attribute: String,
    /// The tier's other endpoints, besides `endpoint`, written like it.
    #[serde(
        deserialize_with = "crate::http::config::url::endpoints",
        serialize_with = "crate::http::config::url::texts"
    )]
    #[schemars(with = "Vec<String>")]
    pub more_endpoints: Vec<reqwest::Url>,
}

impl OtlpExporterConfig {
    /// Every endpoint of the exporter: `endpoint`, then `routing.more_endpoints`.
    pub fn endpoints(&self) -> Vec<reqwest::Url> {
        let mut all = vec![self.endpoint.clone()];
        if let Some(r) = &self.routing {
            all.extend(r.more_endpoints.iter().cloned());
        }
        all
    }
}

/// The wire protocol.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    /// OTLP/gRPC.
    #[default]
    Grpc,
    /// OTLP/HTTP, binary protobuf.
    Http,
}

/// Request compression.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// gzip.
    #[default]
    Gzip,
    /// Uncompressed.
    None,
}

/// A signal the exporter forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ForwardedSignal {
    /// Metric data points.
    Metrics,
    /// Log records, `ml.inference` and `ml.feedback` events included.
    Logs,
    /// Spans.
    Traces,
    /// Millwatch's own detection results (drift, data quality, performance, machine health),
    /// as `millwatch.detection` log records, with the `origin` resource attributes.
    Detections,
    /// Millwatch's own alerts, each state change as a `millwatch.alert` log record, with the
    /// `origin` resource attributes.
    Alerts,
}

/// Where the bearer token comes from: `{ env: NAME }` or `{ file: /path }` (trailing
/// whitespace cut), exactly one of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenSource {
    /// An environment variable of the Millwatch process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A file, e.g. a mounted secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

impl TokenSource {
    /// Reads the token; the error says where it looked, never what it found.
    pub fn read(&self) -> Result<String, String> {
        let token = match (&self.env, &self.file) {
            (Some(name), None) => std::env::var(name).map_err(|_| {
                format!("the token's environment variable `{name}` is not set (or not UTF-8)")
            })?,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("the token file `{}`: {e}", path.display()))?,
            _ => {
                return Err(
                    "token: give exactly one of `env: VARIABLE` and `file: /path/to/token`".into(),
                );
            }
        };
        let token = token.trim().to_string();
        if token.is_empty() {
            return Err(format!("the token from {self} is empty"));
        }
        Ok(token)
    }
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.env, &self.file) {
            (Some(name), _) => write!(f, "environment variable `{name}`"),
            (_, Some(path)) => write!(f, "file `{}`", path.display()),
            _ => write!(f, "nowhere"),
        }
    }
}

/// Batching: a request is sent as soon as `max_items` are queued, or when the oldest waited
/// `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most items (data points, log records, spans) in one request; a single received request
    /// larger than this is sent whole.
    pub max_items: NonZeroUsize,
    /// Longest time queued data waits for a fuller batch.
    #[serde(with = "crate::units::duration")]
    #[schemars(with = "crate::units::DurationText")]
    pub max_delay: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_items: defaults::max_items(),
            max_delay: defaults::max_delay(),
        }
    }
}

/// The exporter's disk queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OtlpQueueConfig {
    /// Directory of the queue's segment files; created if missing. One exporter per directory.
    pub dir: PathBuf,
    /// Most bytes on disk.
    #[serde(default = "defaults::queue_max_bytes")]
    pub max_bytes: NonZeroU64,
    /// When full: `refuse` new data (clients get HTTP 503 with `Retry-After` or gRPC
    /// UNAVAILABLE and retry; nothing queued is lost) or `drop_oldest` (the oldest queued data
    /// is deleted to make room, counted in `millwatch_otlp_exporter_items_dropped_total`).
    #[serde(default)]
    pub full: FullPolicy,
}

/// Headers the exporter sets itself.
pub(crate) const RESERVED_HEADERS: [&str; 5] = [
    "content-type",
    "content-encoding",
    "user-agent",
    "authorization",
    "content-length",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_the_defaults() {
        let c: OtlpExporterConfig = serde_saphyr::from_str(
            "name: central\nendpoint: http://127.0.0.1:4317\nqueue: { dir: /tmp/q }\n",
        )
        .expect("parses");
        assert_eq!(c.protocol, OtlpProtocol::Grpc);
        assert_eq!(c.compression, Compression::Gzip);
        assert_eq!(c.signals.len(), 3);
        assert_eq!(c.queue.full, FullPolicy::Refuse);
        assert_eq!(c.batch, BatchConfig::default());
    }

    #[test]
    fn full_config_parses() {
        let c: OtlpExporterConfig = serde_saphyr::from_str(
            "name: c\nendpoint: https://central:4318\nprotocol: http\ncompression: none\nsignals: [logs]\nheaders: { X-Tenant: a }\ntoken: { file: /run/secrets/t }\ntimeout: 3s\nbatch: { max_items: 50, max_delay: 1s }\ntls: { ca_file: /ca.pem, cert_file: /c.pem, key_file: /k.pem }\nqueue: { dir: /q, max_bytes: 1000000, full: drop_oldest }\nretry: { min_backoff: 10ms, max_backoff: 1s }\n",
        )
        .expect("parses");
        assert_eq!(c.protocol, OtlpProtocol::Http);
        assert_eq!(c.signals, [ForwardedSignal::Logs]);
        assert_eq!(
            c.token.and_then(|t| t.file),
            Some(PathBuf::from("/run/secrets/t"))
        );
        assert_eq!(c.queue.full, FullPolicy::DropOldest);
        assert_eq!(c.batch.max_delay, Duration::from_secs(1));
    }

    #[test]
    fn bad_configs_are_refused_with_a_message() {
        for (yaml, want) in [
            (
                "name: c\nendpoint: grpc://x:4317\nqueue: { dir: /q }\n",
                "must use http or https",
            ),
            ("name: c\nendpoint: http://x\n", "missing field `queue`"),
            (
                "name: c\nendpoint: http://x\nqueue: { dir: /q, full: drop_newest }\n",
                "drop_newest",
            ),
            (
                "name: c\nendpoint: http://x\nqueue: { dir: /q }\ntoken: { value: abc }\n",
                "value",
            ),
            (
                "name: c\nendpoint: http://x\nqueue: { dir: /q }\nprotocol: thrift\n",
                "thrift",
            ),
        ] {
            let err = serde_saphyr::from_str::<OtlpExporterConfig>(yaml)
                .expect_err(yaml)
                .to_string();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }

    #[test]
    fn a_token_is_read_from_the_environment_or_a_file_and_never_shown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").expect("write");
        let from_file = |f| TokenSource {
            file: Some(f),
            env: None,
        };
        assert_eq!(from_file(file.clone()).read().expect("read"), "s3cret");
        let err = TokenSource {
            env: Some("MILLWATCH_TEST_NO_SUCH_TOKEN".into()),
            file: None,
        }
        .read()
        .expect_err("unset");
        assert!(err.contains("MILLWATCH_TEST_NO_SUCH_TOKEN"), "{err}");
        let both = TokenSource {
            env: Some("X".into()),
            file: Some(file),
        };
        assert!(both.read().expect_err("both").contains("exactly one"));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "  \n").expect("write");
        let err = from_file(empty).read().expect_err("empty");
        assert!(err.contains("is empty") && !err.contains("s3cret"), "{err}");
    }
}
