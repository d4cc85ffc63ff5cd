//! The Alertmanager notifier: `POST /api/v2/alerts` with Alertmanager's postable alerts, to
//! every configured Alertmanager (the members of one cluster), so that plants that already
//! run Alertmanager keep their routing, silences and receivers.

use std::time::{Duration, SystemTime};

use futures_util::future::{BoxFuture, join_all};
use reqwest::header::HeaderMap;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

use super::alert::{Alert, Notification, format_rfc3339};
use super::headers::{Headers, sender};
use super::outcome::DeliveryOutcome;
use super::secret::http_url;
use super::{Notifier, NotifyError, Result};
use crate::http::Sender;
use crate::remote_write::AuthConfig;

/// Defaults, in one place.
mod defaults {
    use super::*;

    pub const TIMEOUT: Duration = Duration::from_secs(10);
    /// Prometheus' `--rules.alert.resend-delay`.
    pub const RESEND_INTERVAL: Duration = Duration::from_secs(60);

    pub fn timeout() -> Duration {
        TIMEOUT
    }
    pub fn resend_interval() -> Duration {
        RESEND_INTERVAL
    }
}

/// Alertmanagers to forward alerts to.
///
/// ```yaml
/// urls: [http://alertmanager-0:9093, http://alertmanager-1:9093]
/// headers: { X-Scope-OrgID: plant-a }
/// auth: { type: basic, username: u, password: p }
/// timeout: 10s
/// resend_interval: 1m
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URLs of the Alertmanagers (`/api/v2/alerts` is appended; a path prefix such as
    /// `http://host/alertmanager` is kept). Alerts go to all of them; delivery succeeds when
    /// one accepts, as the members of a cluster share what one received.
    #[serde(deserialize_with = "base_urls", serialize_with = "url_texts")]
    #[schemars(with = "Vec<String>")]
    pub urls: Vec<reqwest::Url>,
    /// Extra request headers (`Content-Type`, `Content-Length`, `Host`, `Authorization`
    /// excepted).
    #[serde(default)]
    pub headers: Headers,
    /// Credentials sent with every request.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// TLS for `https://` URLs: a custom CA and a client certificate for mTLS.
    #[serde(default, skip_serializing_if = "crate::http::config::is_default")]
    pub tls: crate::http::TlsConfig,
    /// Timeout of one request, connection included.
    #[serde(default = "defaults::timeout", with = "crate::units::duration")]
    #[schemars(with = "crate::units::DurationText")]
    pub timeout: Duration,
    /// How often alerts still firing are posted again. Each post says the alert ends
    /// [`VALID_FOR_RESENDS`] intervals later (`endsAt`), as Prometheus does, so Alertmanager
    /// keeps it active while Millwatch keeps posting and resolves it soon after Millwatch
    /// stops.
    #[serde(default = "defaults::resend_interval", with = "crate::units::duration")]
    #[schemars(with = "crate::units::DurationText")]
    pub resend_interval: Duration,
}

/// How many resend intervals a firing alert posted to Alertmanager stays valid.
pub const VALID_FOR_RESENDS: u32 = 4;

/// Forwards the alerts of notifications to Alertmanager.
#[derive(Debug, Clone)]
pub struct AlertmanagerNotifier {
    endpoints: Vec<reqwest::Url>,
    client: Sender,
    resend_interval: Duration,
}

impl AlertmanagerNotifier {
    /// Builds the HTTP client.
    pub fn new(config: AlertmanagerConfig) -> Result<Self> {
        let endpoints = config
            .urls
            .iter()
            .map(alerts_endpoint)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let client = sender(
            config.timeout,
            &config.headers,
            config.auth.as_ref(),
            &config.tls,
        )?;
        Ok(Self {
            endpoints,
            client,
            resend_interval: config.resend_interval,
        })
    }

    /// The `/api/v2/alerts` URLs it posts to.
    pub fn endpoints(&self) -> &[reqwest::Url] {
        &self.endpoints
    }

    /// POSTs the notification's alerts to every Alertmanager at once; see
    /// [`DeliveryOutcome::any_of`] for how their answers combine.
    async fn deliver(&self, notification: &Notification) -> DeliveryOutcome {
        let valid_until = SystemTime::now() + self.resend_interval * VALID_FOR_RESENDS;
        let body = match serde_json::to_vec(&postable_alerts(notification, valid_until)) {
            Ok(b) => b,
            Err(e) => {
                return DeliveryOutcome::Permanent {
                    reason: format!("cannot encode the alerts: {e}"),
                };
            }
        };
        let sends = self.endpoints.iter().map(|url| {
            let body = body.clone();
            async move {
                let sent = self
                    .client
                    .post(url, "application/json", HeaderMap::new(), body)
                    .await;
                match DeliveryOutcome::from_answer(sent) {
                    DeliveryOutcome::Delivered => DeliveryOutcome::Delivered,
                    DeliveryOutcome::Retryable {
                        reason,
                        retry_after,
                    } => DeliveryOutcome::Retryable {
                        reason: format!("{}: {reason}", origin(url)),
                        retry_after,
                    },
                    DeliveryOutcome::Permanent { reason } => DeliveryOutcome::Permanent {
                        reason: format!("{}: {reason}", origin(url)),
                    },
                }
            }
        });
        DeliveryOutcome::any_of(join_all(sends).await)
    }
}

impl Notifier for AlertmanagerNotifier {
    fn kind(&self) -> &'static str {
        "alertmanager"
    }

    /// How often firing alerts are posted again (`resend_interval`).
    fn resend_interval(&self) -> Option<Duration> {
        Some(self.resend_interval)
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        Box::pin(self.deliver(notification))
    }
}

fn origin(url: &reqwest::Url) -> String {
    url.origin().ascii_serialization()
}

/// Alertmanager's `postableAlerts`: labels, annotations, startsAt, endsAt (when resolved; while
/// firing `valid_until`, the time Alertmanager may take it for resolved unless posted again),
/// generatorURL.
pub fn postable_alerts(n: &Notification, valid_until: SystemTime) -> Value {
    Value::Array(n.alerts.iter().map(|a| postable(a, valid_until)).collect())
}

fn postable(a: &Alert, valid_until: SystemTime) -> Value {
    let mut m = Map::new();
    m.insert("labels".into(), json!(a.labels));
    m.insert("annotations".into(), json!(a.annotations));
    m.insert("startsAt".into(), json!(format_rfc3339(a.starts_at)));
    let end = a.ends_at.unwrap_or(valid_until);
    m.insert("endsAt".into(), json!(format_rfc3339(end)));
    if !a.generator_url.is_empty() {
        m.insert("generatorURL".into(), json!(a.generator_url));
    }
    Value::Object(m)
}

fn alerts_endpoint(base: &reqwest::Url) -> Result<reqwest::Url> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base.join("api/v2/alerts").map_err(|e| NotifyError::Config {
        reason: format!("Alertmanager url `{base}`: {e}"),
    })
}

fn base_urls<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<reqwest::Url>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    if texts.is_empty() {
        return Err(serde::de::Error::custom(
            "urls: at least one Alertmanager url is needed",
        ));
    }
    texts
        .iter()
        .map(|t| http_url(t).map_err(|e| serde::de::Error::custom(format!("`{t}`: {e}"))))
        .collect()
}

fn url_texts<S: serde::Serializer>(
    urls: &[reqwest::Url],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(urls.iter().map(reqwest::Url::as_str))
}

#[cfg(test)]
mod tests {
    use super::super::alert::Labels;
    use super::*;
    use std::time::UNIX_EPOCH;

    fn config(yaml: &str) -> std::result::Result<AlertmanagerConfig, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn configs_parse_and_endpoints_keep_path_prefixes() {
        let c = config("urls: [http://am:9093, \"http://gw/alertmanager\", \"http://gw2/am/\"]\n")
            .expect("parses");
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.resend_interval, Duration::from_secs(60));
        let n = AlertmanagerNotifier::new(c).expect("client");
        let got: Vec<&str> = n.endpoints().iter().map(reqwest::Url::as_str).collect();
        assert_eq!(
            got,
            [
                "http://am:9093/api/v2/alerts",
                "http://gw/alertmanager/api/v2/alerts",
                "http://gw2/am/api/v2/alerts"
            ]
        );
    }

    #[test]
    fn bad_configs_are_refused_with_a_message() {
        for (yaml, want) in [
            ("urls: []\n", "at least one"),
            ("urls: [ftp://am]\n", "http:// or https://"),
            ("url: http://am:9093\n", "unknown field `url`"),
            ("urls: [http://am]\napi: v1\n", "unknown field `api`"),
            ("urls: [http://am]\ntimeout: fast\n", "timeout"),
        ] {
            let err = config(yaml).expect_err(yaml);
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }

    #[test]
    fn postable_alerts_end_when_resolved_or_when_no_longer_valid() {
        let t = UNIX_EPOCH + Duration::from_secs(1_714_564_800);
        let labels: Labels = [("alertname".to_string(), "Down".to_string())].into();
        let mut firing = Alert::firing(labels.clone(), Labels::new(), t);
        firing.generator_url = "http://mw/ui".into();
        let resolved =
            Alert::firing(labels, Labels::new(), t).resolved_at(t + Duration::from_secs(5));
        let n = Notification::new("am", "k", Labels::new(), vec![firing, resolved], "");
        let v = postable_alerts(&n, t + Duration::from_secs(240));
        assert_eq!(
            v,
            json!([
                {"labels": {"alertname": "Down"}, "annotations": {}, "startsAt": "2024-05-01T12:00:00Z", "endsAt": "2024-05-01T12:04:00Z", "generatorURL": "http://mw/ui"},
                {"labels": {"alertname": "Down"}, "annotations": {}, "startsAt": "2024-05-01T12:00:00Z", "endsAt": "2024-05-01T12:00:05Z"}
            ])
        );
    }
}
