//! What became of one delivery attempt, in the same three classes for every notifier: the
//! collector's outbox retries `Retryable` with backoff and never retries `Permanent`.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::http::{Answer, Class, RetryRule, parse_retry_after};

/// The result of one attempt to deliver a notification to a receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver accepted the notification (HTTP 2xx, SMTP 250 after DATA).
    Delivered,
    /// The receiver could not take it now; try again later: HTTP 5xx and 429
    /// ([`RetryRule::ServerErrors`]), SMTP 4xx replies, connection failures, timeouts, TLS
    /// handshake failures.
    Retryable {
        /// What went wrong, for the attempt log.
        reason: String,
        /// How long the receiver asked us to wait (HTTP `Retry-After`), if it said.
        retry_after: Option<Duration>,
    },
    /// The receiver refused it for good: other HTTP statuses (4xx, and 1xx/3xx, which no
    /// receiver should end with), SMTP 5xx replies, a message that cannot be built.
    Permanent {
        /// What went wrong, for the attempt log.
        reason: String,
    },
}

impl DeliveryOutcome {
    /// Classifies the final HTTP status of a request with [`RetryRule::ServerErrors`].
    /// `retry_after` is the raw `Retry-After` header value, honoured on 429 and 5xx; `body` is
    /// an excerpt of the answer for the reason.
    pub fn from_http_status(status: u16, retry_after: Option<&str>, body: &str) -> Self {
        let reason = || {
            if body.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {body}")
            }
        };
        match RetryRule::ServerErrors.classify(status) {
            Class::Success => DeliveryOutcome::Delivered,
            Class::Retryable => DeliveryOutcome::Retryable {
                reason: reason(),
                retry_after: retry_after.and_then(|v| parse_retry_after(v, SystemTime::now())),
            },
            Class::Permanent => DeliveryOutcome::Permanent { reason: reason() },
        }
    }

    /// What became of one POST: its answer classified, or no answer at all (retryable).
    pub fn from_answer(sent: Result<Answer, String>) -> Self {
        match sent {
            Ok(a) => Self::from_http_status(a.status, a.retry_after.as_deref(), &a.body),
            Err(reason) => DeliveryOutcome::unreachable(reason),
        }
    }

    /// Classifies an SMTP reply code that ended a transaction (RFC 5321 §4.2.1): 2yz
    /// delivered, 4yz transient, 5yz permanent. A 1yz or 3yz reply cannot end a transaction;
    /// it means the dialogue went wrong, which is worth another try.
    pub fn from_smtp_reply(code: u16, text: &str) -> Self {
        let reason = || format!("SMTP {code} {text}").trim_end().to_string();
        match code {
            200..=299 => DeliveryOutcome::Delivered,
            500..=599 => DeliveryOutcome::Permanent { reason: reason() },
            _ => DeliveryOutcome::Retryable {
                reason: reason(),
                retry_after: None,
            },
        }
    }

    /// A failure before any answer: connection refused or reset, DNS, timeout, TLS.
    pub fn unreachable(reason: impl Into<String>) -> Self {
        DeliveryOutcome::Retryable {
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// True for [`DeliveryOutcome::Delivered`].
    pub fn is_delivered(&self) -> bool {
        matches!(self, DeliveryOutcome::Delivered)
    }

    /// True for [`DeliveryOutcome::Retryable`].
    pub fn is_retryable(&self) -> bool {
        matches!(self, DeliveryOutcome::Retryable { .. })
    }

    /// True for [`DeliveryOutcome::Permanent`].
    pub fn is_permanent(&self) -> bool {
        matches!(self, DeliveryOutcome::Permanent { .. })
    }

    /// Combines the outcomes of sending one notification to several redundant peers (the
    /// members of an Alertmanager cluster, which share what one of them received): delivered
    /// when any peer took it; otherwise retryable when any peer may take it later, with the
    /// longest `Retry-After` any asked for; otherwise permanent.
    pub fn any_of(outcomes: Vec<DeliveryOutcome>) -> Self {
        if outcomes.iter().any(DeliveryOutcome::is_delivered) {
            return DeliveryOutcome::Delivered;
        }
        let mut reasons = Vec::new();
        let mut retryable = false;
        let mut wait: Option<Duration> = None;
        for o in outcomes {
            match o {
                DeliveryOutcome::Delivered => {}
                DeliveryOutcome::Retryable {
                    reason,
                    retry_after,
                } => {
                    retryable = true;
                    wait = wait.max(retry_after);
                    reasons.push(reason);
                }
                DeliveryOutcome::Permanent { reason } => reasons.push(reason),
            }
        }
        let reason = reasons.join("; ");
        if retryable {
            DeliveryOutcome::Retryable {
                reason,
                retry_after: wait,
            }
        } else {
            DeliveryOutcome::Permanent { reason }
        }
    }
}

impl fmt::Display for DeliveryOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryOutcome::Delivered => f.write_str("delivered"),
            DeliveryOutcome::Retryable {
                reason,
                retry_after: Some(wait),
            } => write!(f, "retryable ({reason}; retry after {}s)", wait.as_secs()),
            DeliveryOutcome::Retryable { reason, .. } => write!(f, "retryable ({reason})"),
            DeliveryOutcome::Permanent { reason } => write!(f, "permanent ({reason})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Kind {
        Delivered,
        Retryable,
        Permanent,
    }

    fn kind(o: &DeliveryOutcome) -> Kind {
        match o {
            DeliveryOutcome::Delivered => Kind::Delivered,
            DeliveryOutcome::Retryable { .. } => Kind::Retryable,
            DeliveryOutcome::Permanent { .. } => Kind::Permanent,
        }
    }

    /// The classes themselves, status by status, are the table of
    /// `crate::http::retry`'s `every_status_follows_its_specification`.
    #[test]
    fn http_statuses_follow_the_server_errors_rule() {
        for status in 100..=599 {
            let want = match RetryRule::ServerErrors.classify(status) {
                Class::Success => Kind::Delivered,
                Class::Retryable => Kind::Retryable,
                Class::Permanent => Kind::Permanent,
            };
            let got = DeliveryOutcome::from_http_status(status, None, "");
            assert_eq!(kind(&got), want, "HTTP {status}");
        }
        assert_eq!(
            DeliveryOutcome::from_answer(Err("cannot connect".into())),
            DeliveryOutcome::unreachable("cannot connect")
        );
    }

    #[test]
    fn retry_after_is_honoured_on_retryable_statuses_only() {
        let table = [
            (429, Some("7"), Some(Duration::from_secs(7))),
            (503, Some("120"), Some(Duration::from_secs(120))),
            (503, Some("soon"), None),
            (500, None, None),
        ];
        for (status, header, want) in table {
            match DeliveryOutcome::from_http_status(status, header, "busy") {
                DeliveryOutcome::Retryable {
                    retry_after,
                    reason,
                } => {
                    assert_eq!(retry_after, want, "HTTP {status} {header:?}");
                    assert_eq!(reason, format!("HTTP {status}: busy"));
                }
                other => panic!("HTTP {status}: {other:?}"),
            }
        }
        assert_eq!(
            DeliveryOutcome::from_http_status(400, Some("7"), "bad"),
            DeliveryOutcome::Permanent {
                reason: "HTTP 400: bad".into()
            }
        );
    }

    #[test]
    fn every_smtp_reply_class() {
        let table = [
            (200..=299, Kind::Delivered),
            (100..=199, Kind::Retryable),
            (300..=399, Kind::Retryable),
            (400..=499, Kind::Retryable),
            (500..=599, Kind::Permanent),
        ];
        for (range, want) in table {
            for code in range {
                let got = DeliveryOutcome::from_smtp_reply(code, "text");
                assert_eq!(kind(&got), want, "SMTP {code}");
            }
        }
        for (code, want) in [
            (250, Kind::Delivered),
            (421, Kind::Retryable),
            (450, Kind::Retryable),
            (451, Kind::Retryable),
            (452, Kind::Retryable),
            (535, Kind::Permanent),
            (550, Kind::Permanent),
            (552, Kind::Permanent),
            (554, Kind::Permanent),
        ] {
            assert_eq!(
                kind(&DeliveryOutcome::from_smtp_reply(code, "")),
                want,
                "SMTP {code}"
            );
        }
    }

    #[test]
    fn redundant_peers_combine() {
        let d = || DeliveryOutcome::Delivered;
        let r = |s: u64| DeliveryOutcome::Retryable {
            reason: format!("r{s}"),
            retry_after: Some(Duration::from_secs(s)),
        };
        let p = || DeliveryOutcome::Permanent { reason: "p".into() };
        assert_eq!(DeliveryOutcome::any_of(vec![p(), d(), r(1)]), d());
        assert_eq!(
            DeliveryOutcome::any_of(vec![r(3), p(), r(9)]),
            DeliveryOutcome::Retryable {
                reason: "r3; p; r9".into(),
                retry_after: Some(Duration::from_secs(9))
            }
        );
        assert_eq!(
            DeliveryOutcome::any_of(vec![p(), p()]),
            DeliveryOutcome::Permanent {
                reason: "p; p".into()
            }
        );
    }
}
