//! Configuration of the remote-write exporter, as the collector embeds it in its YAML file.

use std::collections::BTreeMap;
use std::fmt;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http::Backoff;

/// Defaults, in one place.
mod defaults {
    use super::*;

    pub const MAX_SAMPLES_PER_SEND: usize = 2_000;
    pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
    pub const TIMEOUT: Duration = Duration::from_secs(30);
    pub const QUEUE_MAX_BYTES: u64 = 1 << 30;
    pub const MIN_BACKOFF: Duration = Duration::from_millis(30);
    pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
    pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

    pub fn max_samples_per_send() -> NonZeroUsize {
        NonZeroUsize::new(MAX_SAMPLES_PER_SEND).unwrap_or(NonZeroUsize::MIN)
    }
    pub fn flush_interval() -> Duration {
        FLUSH_INTERVAL
    }
    pub fn timeout() -> Duration {
        TIMEOUT
    }
    pub fn queue_max_bytes() -> NonZeroU64 {
        NonZeroU64::new(QUEUE_MAX_BYTES).unwrap_or(NonZeroU64::MIN)
    }
    pub fn min_backoff() -> Duration {
        MIN_BACKOFF
    }
    pub fn max_backoff() -> Duration {
        MAX_BACKOFF
    }
    pub fn max_retry_after() -> Duration {
        MAX_RETRY_AFTER
    }
}

/// A Prometheus remote write 1.0 destination (Prometheus, Mimir, Thanos, Cortex,
/// VictoriaMetrics).
///
/// ```yaml
/// url: https://mimir.example.net/api/v1/push
/// headers: { X-Scope-OrgID: plant-a }
/// auth: { type: bearer, token: "..." }
/// max_samples_per_send: 2000
/// flush_interval: 5s
/// timeout: 30s
/// queue: { dir: ./millwatch-data/remote-write, max_bytes: 1073741824 }
/// retry: { min_backoff: 30ms, max_backoff: 5s }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// The receiver's remote-write endpoint, `http://` or `https://`.
    #[serde(
        deserialize_with = "crate::http::config::url::one",
        serialize_with = "crate::http::config::url::text"
    )]
    #[schemars(with = "String")]
    pub url: reqwest::Url,
    /// Extra request headers (e.g. `X-Scope-OrgID` for Mimir tenants). The protocol headers
    /// (`Content-Type`, `Content-Encoding`, `X-Prometheus-Remote-Write-Version`,
    /// `User-Agent`, `Authorization`) cannot be overridden.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Credentials sent with every request.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// TLS for `https://` URLs: a custom CA and a client certificate for mTLS.
    #[serde(default, skip_serializing_if = "crate::http::config::is_default")]
    pub tls: crate::http::TlsConfig,
    /// Most samples in one request; a request is sent as soon as this many are queued.
    #[serde(default = "defaults::max_samples_per_send")]
    pub max_samples_per_send: NonZeroUsize,
    /// Longest time a queued sample waits for a fuller batch before it is sent.
    #[serde(default = "defaults::flush_interval", with = "crate::units::duration")]
    #[schemars(with = "crate::units::DurationText")]
    pub flush_interval: Duration,
    /// Timeout of one HTTP request, connection included.
    #[serde(default = "defaults::timeout", with = "crate::units::duration")]
    #[schemars(with = "crate::units::DurationText")]
    pub timeout: Duration,
    /// The persistent queue that holds samples until the receiver has accepted them.
    pub queue: QueueConfig,
    /// Backoff between tries of a batch the receiver could not take (5xx, 429, network).
    #[serde(default)]
    pub retry: RetryConfig,
}

/// The on-disk queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Directory of the queue's segment files; created if missing. One exporter per directory.
    pub dir: PathBuf,
    /// Most bytes on disk. When full, new data is refused with an error (the collector answers
    /// its senders with a retryable status); nothing already queued is dropped.
    #[serde(default = "defaults::queue_max_bytes")]
    pub max_bytes: NonZeroU64,
}

/// Retry backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Wait after the first failure; doubles with each further failure.
    #[serde(default = "defaults::min_backoff", with = "crate::units::duration")]
    #[schemars(with = "crate::units::DurationText")]
    pub min_backoff: Duration,
    /// Longest wait between two tries.
    #[serde(default = "defaults::max_backoff", with = "crate::units::duration")]
    #[schemars(with = "crate::units::DurationText")]
    pub max_backoff: Duration,
    /// Longest `Retry-After` answer honoured.
    #[serde(default = "defaults::max_retry_after", with = "crate::units::duration")]
    #[schemars(with = "crate::units::DurationText")]
    pub max_retry_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            min_backoff: defaults::min_backoff(),
            max_backoff: defaults::max_backoff(),
            max_retry_after: defaults::max_retry_after(),
        }
    }
}

impl From<RetryConfig> for Backoff {
    fn from(c: RetryConfig) -> Self {
        Backoff {
            min_backoff: c.min_backoff,
            max_backoff: c.max_backoff.max(c.min_backoff),
            max_retry_after: c.max_retry_after,
        }
    }
}

/// Credentials: `{ type: basic, username: u, password: p }` or `{ type: bearer, token: t }`.
#[derive(Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", deny_unknown_fields, rename_all = "snake_case")]
pub enum AuthConfig {
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
}

/// Printed configurations (`millwatch run --print-config`) never show secrets.
impl Serialize for AuthConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(3))?;
        match self {
            AuthConfig::Basic { username, .. } => {
                m.serialize_entry("type", "basic")?;
                m.serialize_entry("username", username)?;
                m.serialize_entry("password", "<redacted>")?;
            }
            AuthConfig::Bearer { .. } => {
                m.serialize_entry("type", "bearer")?;
                m.serialize_entry("token", "<redacted>")?;
            }
        }
        m.end()
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthConfig::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            AuthConfig::Bearer { .. } => f
                .debug_struct("Bearer")
                .field("token", &"<redacted>")
                .finish(),
        }
    }
}

/// Headers the exporter sets itself.
pub(crate) const RESERVED_HEADERS: [&str; 6] = [
    "content-type",
    "content-encoding",
    "x-prometheus-remote-write-version",
    "user-agent",
    "authorization",
    "content-length",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_the_defaults() {
        let c: RemoteWriteConfig = serde_saphyr::from_str(
            "url: http://127.0.0.1:9090/api/v1/write\nqueue: { dir: /tmp/q }\n",
        )
        .expect("parses");
        assert_eq!(c.max_samples_per_send.get(), 2_000);
        assert_eq!(c.flush_interval, Duration::from_secs(5));
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.queue.max_bytes.get(), 1 << 30);
        assert_eq!(c.retry, RetryConfig::default());
        assert!(c.auth.is_none());
    }

    #[test]
    fn full_config_parses() {
        let c: RemoteWriteConfig = serde_saphyr::from_str(
            "url: https://mimir.example.net/api/v1/push\nheaders: { X-Scope-OrgID: plant-a }\nauth: { type: basic, username: u, password: p }\nmax_samples_per_send: 500\nflush_interval: 250ms\ntimeout: 10s\nqueue: { dir: /var/lib/mw/rw, max_bytes: 1048576 }\nretry: { min_backoff: 100ms, max_backoff: 10s, max_retry_after: 1m }\n",
        )
        .expect("parses");
        assert_eq!(c.flush_interval, Duration::from_millis(250));
        assert_eq!(c.retry.max_retry_after, Duration::from_secs(60));
        assert_eq!(
            c.auth,
            Some(AuthConfig::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert!(!format!("{c:?}").contains("password: \"p\""));
    }

    #[test]
    fn bad_configs_are_refused_with_a_message() {
        let table = [
            (
                "url: http://x/\nqueue: { dir: /q }\nbatch: 5\n",
                "unknown field `batch`",
            ),
            (
                "url: ftp://x/\nqueue: { dir: /q }\n",
                "must use http or https",
            ),
            ("url: not a url\nqueue: { dir: /q }\n", "invalid url"),
            ("url: http://x/\n", "missing field `queue`"),
            (
                "url: http://x/\nqueue: { dir: /q, max_bytes: 0 }\n",
                "nonzero",
            ),
            (
                "url: http://x/\nqueue: { dir: /q }\nflush_interval: 5\n",
                "flush_interval",
            ),
            (
                "url: http://x/\nqueue: { dir: /q }\nauth: { type: bearer, token: t, extra: 1 }\n",
                "unknown field `extra`",
            ),
        ];
        for (yaml, want) in table {
            let err = serde_saphyr::from_str::<RemoteWriteConfig>(yaml)
                .expect_err(yaml)
                .to_string();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }
}
