//! The webhook notifier: one POST per notification, with Alertmanager's webhook payload
//! (default), a generic JSON, or a Slack- or Teams-compatible body; optionally signed with
//! HMAC-SHA256.

use std::time::Duration;

use futures_util::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use super::alert::{AlertStatus, Notification, format_rfc3339};
use super::headers::{Headers, sender};
use super::outcome::DeliveryOutcome;
use super::secret::{Secret, SecretUrl};
use super::summary::{AlertFacts, group_text, headline};
use super::{Notifier, NotifyError, Result};
use crate::http::Sender;
use crate::remote_write::AuthConfig;

/// Defaults, in one place.
mod defaults {
    use super::*;

    pub const TIMEOUT: Duration = Duration::from_secs(10);
    pub const SIGNATURE_HEADER: &str = "X-Millwatch-Signature";

    pub fn timeout() -> Duration {
        TIMEOUT
    }
    pub fn signature_header() -> String {
        SIGNATURE_HEADER.to_string()
    }
}

/// Alerts listed one by one in a Slack or Teams message; the rest are counted.
const CHAT_ALERTS: usize = 10;

/// A webhook receiver.
///
/// ```yaml
/// url: https://hooks.example.net/millwatch
/// format: alertmanager          # alertmanager | generic | slack | teams
/// headers: { X-Plant: north }
/// auth: { type: bearer, token: "..." }
/// signature: { secret: "...", header: X-Millwatch-Signature }
/// timeout: 10s
/// max_alerts: 0
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST, `http://` or `https://`. Treated as a secret (Slack and Teams webhook
    /// URLs are the credential): never printed beyond its host.
    pub url: SecretUrl,
    /// The body: Alertmanager's webhook payload version "4", a generic JSON, or a Slack or
    /// Teams message.
    #[serde(default)]
    pub format: WebhookFormat,
    /// Extra request headers. `Content-Type`, `Content-Length`, `Host` and `Authorization`
    /// are set by the notifier and cannot be configured.
    #[serde(default)]
    pub headers: Headers,
    /// Credentials sent with every request.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// TLS for `https://` URLs: a custom CA and a client certificate for mTLS.
    #[serde(default, skip_serializing_if = "crate::http::config::is_default")]
    pub tls: crate::http::TlsConfig,
    /// Sign the body with HMAC-SHA256 in a header, `sha256=<hex>`.
    #[serde(default)]
    pub signature: Option<SignatureConfig>,
    /// Timeout of one request, connection included.
    #[serde(default = "defaults::timeout", with = "crate::units::duration")]
    #[schemars(with = "crate::units::DurationText")]
    pub timeout: Duration,
    /// Most alerts in one body (`0`: all); the rest are counted in `truncatedAlerts`.
    #[serde(default)]
    pub max_alerts: usize,
}

/// The body of a webhook request.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// Alertmanager's webhook payload, version "4", field by field.
    #[default]
    Alertmanager,
    /// A flat, snake_case JSON documented in the crate's README.
    Generic,
    /// A Slack incoming-webhook message: `text` plus Block Kit `blocks`.
    Slack,
    /// A Microsoft Teams Workflows message carrying an Adaptive Card.
    Teams,
}

/// An HMAC-SHA256 signature of the request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignatureConfig {
    /// The shared key.
    pub secret: Secret,
    /// The header that carries `sha256=<hex of HMAC-SHA256(secret, body)>`.
    #[serde(default = "defaults::signature_header")]
    pub header: String,
}

/// Sends notifications to one webhook.
#[derive(Debug, Clone)]
pub struct WebhookNotifier {
    config: WebhookConfig,
    client: Sender,
    signature_header: Option<HeaderName>,
}

impl WebhookNotifier {
    /// Builds the HTTP client.
    pub fn new(config: WebhookConfig) -> Result<Self> {
        let signature_header = match &config.signature {
            Some(sig) => {
                let name = HeaderName::from_bytes(sig.header.as_bytes()).map_err(|e| {
                    NotifyError::Header {
                        name: sig.header.clone(),
                        reason: e.to_string(),
                    }
                })?;
                if config.headers.contains(&sig.header) {
                    return Err(NotifyError::Header {
                        name: sig.header.clone(),
                        reason: "is also the signature header".into(),
                    });
                }
                Some(name)
            }
            None => None,
        };
        let client = sender(
            config.timeout,
            &config.headers,
            config.auth.as_ref(),
            &config.tls,
        )?;
        Ok(Self {
            config,
            client,
            signature_header,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// POSTs the notification once and says what became of it.
    async fn deliver(&self, notification: &Notification) -> DeliveryOutcome {
        let body = match self.body(notification) {
            Ok(b) => b,
            Err(e) => {
                return DeliveryOutcome::Permanent {
                    reason: format!("cannot encode the body: {e}"),
                };
            }
        };
        let mut extra = HeaderMap::new();
        if let (Some(name), Some(sig)) = (&self.signature_header, &self.config.signature) {
            match HeaderValue::from_str(&sign(sig.secret.expose().as_bytes(), &body)) {
                Ok(v) => {
                    extra.insert(name.clone(), v);
                }
                Err(e) => {
                    return DeliveryOutcome::Permanent {
                        reason: format!("signature header: {e}"),
                    };
                }
            }
        }
        DeliveryOutcome::from_answer(
            self.client
                .post(self.config.url.expose(), "application/json", extra, body)
                .await,
        )
    }

    /// The request body for `notification` in the configured format.
    pub fn body(&self, notification: &Notification) -> serde_json::Result<Vec<u8>> {
        let truncated;
        let n = if self.config.max_alerts > 0 && notification.alerts.len() > self.config.max_alerts
        {
            let mut cut = notification.clone();
            cut.truncate(self.config.max_alerts);
            truncated = cut;
            &truncated
        } else {
            notification
        };
        match self.config.format {
            WebhookFormat::Alertmanager => serde_json::to_vec(n),
            WebhookFormat::Generic => serde_json::to_vec(&generic_body(n)),
            WebhookFormat::Slack => serde_json::to_vec(&slack_body(n)),
            WebhookFormat::Teams => serde_json::to_vec(&teams_body(n)),
        }
    }
}

impl Notifier for WebhookNotifier {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        Box::pin(self.deliver(notification))
    }
}

/// `sha256=<lowercase hex of HMAC-SHA256(key, body)>`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The generic body: flat, snake_case, with the facts already read out of labels.
fn generic_body(n: &Notification) -> Value {
    let alerts: Vec<Value> = n
        .alerts
        .iter()
        .map(|a| {
            let f = AlertFacts::of(a);
            json!({
                "status": a.status,
                "name": f.name,
                "severity": f.severity,
                "summary": f.summary,
                "description": f.description,
                "value": f.value,
                "threshold": f.threshold,
                "labels": a.labels,
                "annotations": a.annotations,
                "starts_at": format_rfc3339(a.starts_at),
                "ends_at": a.ends_at.map(format_rfc3339),
                "fingerprint": a.fingerprint,
                "url": a.generator_url,
            })
        })
        .collect();
    json!({
        "version": "1",
        "receiver": n.receiver,
        "status": n.status,
        "title": headline(n),
        "group_key": n.group_key,
        "group_labels": n.group_labels,
        "common_labels": n.common_labels,
        "external_url": n.external_url,
        "firing": n.alerts_with(AlertStatus::Firing).count(),
        "resolved": n.alerts_with(AlertStatus::Resolved).count(),
        "truncated": n.truncated_alerts,
        "alerts": alerts,
    })
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

fn alert_lines(n: &Notification) -> (Vec<(AlertStatus, String, String)>, usize) {
    let mut sorted: Vec<_> = n.alerts.iter().collect();
    sorted.sort_by_key(|a| a.status != AlertStatus::Firing);
    let shown: Vec<_> = sorted
        .iter()
        .take(CHAT_ALERTS)
        .map(|a| {
            let f = AlertFacts::of(a);
            let mut detail = format!("since {}", super::summary::human_time(f.since));
            if let Some(until) = f.until {
                detail.push_str(&format!(", resolved {}", super::summary::human_time(until)));
            }
            if !f.summary.is_empty() {
                detail = format!("{} — {detail}", f.summary);
            }
            (a.status, f.one_line(), detail)
        })
        .collect();
    let more = n.alerts.len() - shown.len() + n.truncated_alerts as usize;
    (shown, more)
}

fn slack_body(n: &Notification) -> Value {
    let title = headline(n);
    let (shown, more) = alert_lines(n);
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": cut(&title, 150), "emoji": true }
    })];
    for (status, line, detail) in &shown {
        let mark = match status {
            AlertStatus::Firing => ":red_circle:",
            AlertStatus::Resolved => ":large_green_circle:",
        };
        blocks.push(json!({
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": cut(&format!("{mark} *{}*\n{}", slack_escape(line), slack_escape(detail)), 3000)
            }
        }));
    }
    let mut context = Vec::new();
    if more > 0 {
        context.push(format!("and {more} more"));
    }
    if !n.external_url.is_empty() {
        context.push(format!("<{}|Open Millwatch>", n.external_url));
    }
    if !context.is_empty() {
        blocks.push(json!({
            "type": "context",
            "elements": [{ "type": "mrkdwn", "text": context.join(" · ") }]
        }));
    }
    json!({ "text": title, "blocks": blocks })
}

fn teams_body(n: &Notification) -> Value {
    let title = headline(n);
    let (shown, more) = alert_lines(n);
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": title,
        "weight": "Bolder",
        "size": "Medium",
        "wrap": true,
        "color": if n.status == AlertStatus::Firing { "Attention" } else { "Good" },
    })];
    let group = group_text(n);
    if !group.is_empty() {
        body.push(json!({ "type": "TextBlock", "text": group, "isSubtle": true, "wrap": true }));
    }
    for (status, line, detail) in &shown {
        body.push(json!({
            "type": "FactSet",
            "facts": [
                { "title": status.as_str(), "value": line },
                { "title": "", "value": detail },
            ]
        }));
    }
    if more > 0 {
        body.push(
            json!({ "type": "TextBlock", "text": format!("and {more} more"), "isSubtle": true }),
        );
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if !n.external_url.is_empty() {
        card["actions"] =
            json!([{ "type": "Action.OpenUrl", "title": "Open Millwatch", "url": n.external_url }]);
    }
    json!({
        "type": "message",
        "summary": title,
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::super::alert::{Alert, Labels};
    use super::*;
    use std::time::UNIX_EPOCH;

    fn config(yaml: &str) -> std::result::Result<WebhookConfig, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    fn notification(alerts: usize) -> Notification {
        let t = UNIX_EPOCH + Duration::from_secs(1_714_564_800);
        let alerts = (0..alerts)
            .map(|i| {
                let labels: Labels = [
                    ("alertname", "FeatureDrift".to_string()),
                    ("model", "scrap".to_string()),
                    ("feature", format!("f{i}")),
                    ("severity", "warning".to_string()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
                let mut a = Alert::firing(labels, Labels::new(), t);
                a.annotations.insert("summary".into(), "a <b> & c".into());
                if i % 2 == 1 {
                    a = a.resolved_at(t + Duration::from_secs(60));
                }
                a
            })
            .collect();
        Notification::new(
            "ops",
            "{}:{alertname=\"FeatureDrift\"}",
            [("alertname".to_string(), "FeatureDrift".to_string())].into(),
            alerts,
            "http://mw.example:9464",
        )
    }

    #[test]
    fn minimal_config_gets_the_defaults() {
        let c = config("url: http://127.0.0.1:9/hook\n").expect("parses");
        assert_eq!(c.format, WebhookFormat::Alertmanager);
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.max_alerts, 0);
        assert!(c.signature.is_none() && c.auth.is_none());
        let c = config(
            "url: https://hooks.slack.com/services/X\nformat: slack\nheaders: { X-Plant: north }\nsignature: { secret: s3cret }\ntimeout: 2s\nmax_alerts: 5\n",
        )
        .expect("parses");
        assert_eq!(c.format, WebhookFormat::Slack);
        let sig = c.signature.as_ref().expect("signature");
        assert_eq!(sig.header, "X-Millwatch-Signature");
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(!format!("{c:?}").contains("services/X"));
    }

    #[test]
    fn bad_configs_are_refused_with_a_message() {
        for (yaml, want) in [
            ("url: http://x/\nretries: 3\n", "unknown field `retries`"),
            (
                "url: http://x/\nformat: discord\n",
                "unknown variant `discord`",
            ),
            ("url: ftp://x/\n", "http:// or https://"),
            ("format: slack\n", "missing field `url`"),
            ("url: http://x/\ntimeout: 10\n", "timeout"),
            (
                "url: http://x/\nsignature: { key: k }\n",
                "unknown field `key`",
            ),
            (
                "url: http://x/\nheaders: { Content-Type: x }\n",
                "set by the notifier",
            ),
        ] {
            let err = config(yaml).expect_err(yaml);
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signature_header_may_not_also_be_a_custom_header() {
        let c = config("url: http://127.0.0.1:9/\nheaders: { X-Sig: a }\nsignature: { secret: s, header: x-sig }\n")
            .expect("parses");
        let err = WebhookNotifier::new(c).expect_err("clash").to_string();
        assert!(err.contains("signature header"), "{err}");
    }

    #[test]
    fn bodies_of_every_format() {
        let n = notification(13);
        let body = |format: &str| -> Value {
            let c =
                config(&format!("url: http://127.0.0.1:9/\nformat: {format}\n")).expect("parses");
            let w = WebhookNotifier::new(c).expect("client");
            serde_json::from_slice(&w.body(&n).expect("encodes")).expect("json")
        };
        let am = body("alertmanager");
        assert_eq!(am["version"], "4");
        assert_eq!(am["alerts"].as_array().map(Vec::len), Some(13));

        let g = body("generic");
        assert_eq!(g["firing"], 7);
        assert_eq!(g["resolved"], 6);
        assert_eq!(g["title"], "[FIRING:7] FeatureDrift");
        assert_eq!(g["alerts"][0]["name"], "FeatureDrift");
        assert_eq!(g["alerts"][0]["ends_at"], Value::Null);
        assert_eq!(g["alerts"][1]["ends_at"], "2024-05-01T12:01:00Z");

        let s = body("slack");
        assert_eq!(s["text"], "[FIRING:7] FeatureDrift");
        let blocks = s["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks.len(), 1 + CHAT_ALERTS + 1);
        let first = blocks[1]["text"]["text"].as_str().expect("text");
        assert!(first.contains("a &lt;b&gt; &amp; c"), "{first}");
        let last = blocks[CHAT_ALERTS + 1]["elements"][0]["text"]
            .as_str()
            .expect("ctx");
        assert_eq!(last, "and 3 more · <http://mw.example:9464|Open Millwatch>");

        let t = body("teams");
        assert_eq!(t["type"], "message");
        let card = &t["attachments"][0]["content"];
        assert_eq!(
            t["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["actions"][0]["url"], "http://mw.example:9464");
        assert_eq!(card["body"][0]["color"], "Attention");
    }

    #[test]
    fn max_alerts_truncates_and_counts() {
        let c = config("url: http://127.0.0.1:9/\nmax_alerts: 4\n").expect("parses");
        let w = WebhookNotifier::new(c).expect("client");
        let v: Value =
            serde_json::from_slice(&w.body(&notification(9)).expect("encodes")).expect("json");
        assert_eq!(v["alerts"].as_array().map(Vec::len), Some(4));
        assert_eq!(v["truncatedAlerts"], 5);
        assert!(
            v["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|a| a["status"] == "firing")
        );
    }
}
