//! Notifiers: the delivery of one notification to one receiver — an email over SMTP, a
//! webhook (Alertmanager, generic, Slack or Teams body), or Alertmanager's API — and what
//! became of it ([`DeliveryOutcome`]). Rules, routing, grouping, silences and the outbox that
//! retries live in the collector; this module only sends, once per call.
//!
//! Every channel is a [`Notifier`]; the collector's outbox holds them by receiver name as
//! `Box<dyn Notifier>` and knows nothing of their kinds. HTTP channels send through the
//! shared [`crate::http`] layer (client, TLS, headers, retry classification).
//!
//! # Adding a channel
//!
//! A PagerDuty or Opsgenie channel is one new file here, `pagerduty.rs`:
//!
//! 1. a configuration struct (`#[serde(deny_unknown_fields)]`, defaults in a `defaults`
//!    module, secrets as [`Secret`] or [`SecretUrl`]);
//! 2. a notifier built from it — for HTTP, a [`crate::http::Sender`] made with the receiver's
//!    timeout, [`Headers`] and credentials;
//! 3. `impl Notifier` for it: [`Notifier::kind`], and [`Notifier::send`] turning one
//!    [`Notification`] into one attempt and its [`DeliveryOutcome`]
//!    ([`DeliveryOutcome::from_answer`] classifies an HTTP answer);
//!
//! then one variant in [`NotifierConfig`] and one arm in [`NotifierConfig::build`], so that
//! `type: pagerduty` is read (and an unknown `type` refused with the list of known ones).
//! Tests beside the others in `exporters/tests/notify_<kind>.rs` against a real peer.

pub mod alert;
pub mod alertmanager;
pub mod chart;
pub mod email;
mod headers;
pub mod outcome;
mod secret;
pub mod summary;
pub mod webhook;

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use alert::{Alert, AlertStatus, Attachment, Labels, Notification, Point, Series, fingerprint};
pub use alertmanager::{AlertmanagerConfig, AlertmanagerNotifier};
pub use email::{EmailConfig, EmailNotifier, SmtpAuth, SmtpTls};
pub use headers::Headers;
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
    /// The HTTP client could not be built (headers, TLS).
    #[error(transparent)]
    Client(#[from] crate::http::ClientError),
}

type Result<T> = std::result::Result<T, NotifyError>;

/// One channel that delivers notifications to one receiver.
pub trait Notifier: fmt::Debug + Send + Sync {
    /// The receiver's `type` (`email`, `webhook`, `alertmanager`), for logs and metrics.
    fn kind(&self) -> &'static str;

    /// How often the receiver wants alerts that still fire sent again whether or not they
    /// changed (Alertmanager's `resend_interval`); `None` by default.
    fn resend_interval(&self) -> Option<Duration> {
        None
    }

    /// True when the channel shows the history of its alerts ([`Notification`]'s `series`,
    /// drawn as charts), which the outbox then reads before sending; false by default.
    fn shows_history(&self) -> bool {
        false
    }

    /// Makes one attempt to deliver `notification`.
    fn send<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, DeliveryOutcome>;
}

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

impl NotifierConfig {
    /// Builds the notifier (HTTP client or SMTP transport); connects only when sending.
    pub fn build(self) -> Result<Box<dyn Notifier>> {
        Ok(match self {
            NotifierConfig::Email(c) => Box::new(EmailNotifier::new(c)?),
            NotifierConfig::Webhook(c) => Box::new(WebhookNotifier::new(c)?),
            NotifierConfig::Alertmanager(c) => Box::new(AlertmanagerNotifier::new(c)?),
        })
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
            .map(|c| c.build().expect("builds").kind())
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
