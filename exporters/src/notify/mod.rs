//! Notifiers: the delivery of one notification to one receiver — an email over SMTP, a
//! webhook (Alertmanager, generic, Slack or Teams body), or Alertmanager's API — and what
//! became of it ([`DeliveryOutcome`]). Rules, routing, grouping, silences and the outbox that
//! retries live in the collector; this module only sends, once per call.

pub mod alert;
pub mod alertmanager;
pub mod chart;
pub mod email;
mod http;
pub mod outcome;
mod secret;
pub mod summary;
pub mod webhook;

use serde::{Deserialize, Serialize};

pub use alert::{Alert, AlertStatus, Labels, Notification, Point, Series, fingerprint};
pub use alertmanager::{AlertmanagerConfig, AlertmanagerNotifier};
pub use email::{EmailConfig, EmailNotifier, SmtpAuth, SmtpTls};
pub use http::Headers;
pub use outcome::DeliveryOutcome;
pub use secret::{Secret, SecretUrl};
pub use webhook::{SignatureConfig, WebhookConfig, WebhookFormat, WebhookNotifier};

/// Errors setting up a notifier. Sending never fails with an error: it returns a
/// [`DeliveryOutcome`].
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A configured header cannot be sent.
    #[error("header `{name}`: {reason}")]
    Header {
        /// The header name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The configuration cannot be used.
    #[error("{reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// TLS setup failed.
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

type Result<T> = std::result::Result<T, NotifyError>;

/// One way of delivering notifications, as a receiver lists it in the collector's config:
/// `{ type: email, ... }`, `{ type: webhook, ... }` or `{ type: alertmanager, ... }` with the
/// fields of [`EmailConfig`], [`WebhookConfig`] or [`AlertmanagerConfig`] beside `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NotifierConfig {
    /// An email over SMTP.
    Email(EmailConfig),
    /// A webhook POST.
    Webhook(WebhookConfig),
    /// Alertmanager's `POST /api/v2/alerts`.
    Alertmanager(AlertmanagerConfig),
}

/// A notifier built from a [`NotifierConfig`].
#[derive(Debug, Clone)]
pub enum Notifier {
    /// Email.
    Email(EmailNotifier),
    /// Webhook.
    Webhook(WebhookNotifier),
    /// Alertmanager.
    Alertmanager(AlertmanagerNotifier),
}

impl Notifier {
    /// Builds the notifier (HTTP client or SMTP transport); connects only when sending.
    pub fn new(config: NotifierConfig) -> Result<Self> {
        Ok(match config {
            NotifierConfig::Email(c) => Notifier::Email(EmailNotifier::new(c)?),
            NotifierConfig::Webhook(c) => Notifier::Webhook(WebhookNotifier::new(c)?),
            NotifierConfig::Alertmanager(c) => {
                Notifier::Alertmanager(AlertmanagerNotifier::new(c)?)
            }
        })
    }

    /// `email`, `webhook` or `alertmanager`, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Notifier::Email(_) => "email",
            Notifier::Webhook(_) => "webhook",
            Notifier::Alertmanager(_) => "alertmanager",
        }
    }

    /// How often a receiver wants alerts that still fire sent again whether or not they
    /// changed: Alertmanager's `resend_interval`; `None` for the others.
    pub fn resend_interval(&self) -> Option<std::time::Duration> {
        match self {
            Notifier::Alertmanager(n) => Some(n.resend_interval()),
            Notifier::Email(_) | Notifier::Webhook(_) => None,
        }
    }

    /// Makes one attempt to deliver `notification`.
    pub async fn send(&self, notification: &Notification) -> DeliveryOutcome {
        match self {
            Notifier::Email(n) => n.send(notification).await,
            Notifier::Webhook(n) => n.send(notification).await,
            Notifier::Alertmanager(n) => n.send(notification).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_lists_parse_and_refuse_unknown_kinds() {
        let list: Vec<NotifierConfig> = serde_saphyr::from_str(
            "- { type: email, host: smtp.example.net, from: mw@example.net, to: [a@example.net] }\n- { type: webhook, url: \"http://127.0.0.1:9/hook\", format: teams }\n- { type: alertmanager, urls: [\"http://127.0.0.1:9093\"] }\n",
        )
        .expect("parses");
        let kinds: Vec<&str> = list
            .into_iter()
            .map(|c| Notifier::new(c).expect("builds").kind())
            .collect();
        assert_eq!(kinds, ["email", "webhook", "alertmanager"]);
        for (yaml, want) in [
            (
                "- { type: pagerduty, key: x }\n",
                "unknown variant `pagerduty`",
            ),
            (
                "- { type: webhook, url: \"http://x/\", urls: [] }\n",
                "unknown field `urls`",
            ),
            (
                "- { type: email, host: h, from: a@b.c, to: [a@b.c], tls: ssl }\n",
                "unknown variant `ssl`",
            ),
            ("- { url: \"http://x/\" }\n", "missing field `type`"),
        ] {
            let err = serde_saphyr::from_str::<Vec<NotifierConfig>>(yaml)
                .expect_err(yaml)
                .to_string();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }
}
