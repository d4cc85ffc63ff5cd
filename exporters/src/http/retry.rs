//! Whether to try a request again and how long to wait first: which HTTP statuses are worth
//! another try (each protocol's specification says), the server's `Retry-After`, and
//! exponential backoff with jitter between tries (also the outbox's, for every receiver).

use std::time::{Duration, SystemTime};

/// What a final HTTP status says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Accepted (2xx).
    Success,
    /// Send the same request again later.
    Retryable,
    /// Never send it again: the receiver refused it, or answered what no receiver should end
    /// with (1xx, 3xx).
    Permanent,
}

/// Which failed answers are worth another try, after the specification of the sender's
/// protocol. Failures before any answer (connection refused, timeout, TLS) are always worth
/// another try; both specifications say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryRule {
    /// OTLP/HTTP, opentelemetry-proto `docs/specification.md` § "OTLP/HTTP Response" ›
    /// "Failures" › "Retryable Response Codes": 429, 502, 503 and 504 SHOULD be retried, all
    /// other 4xx and 5xx MUST NOT; § "OTLP/HTTP Throttling": honour `Retry-After`.
    Otlp,
    /// Prometheus Remote-Write 1.0 specification § "Retries & Backoff": senders MUST retry
    /// 5xx, MUST NOT retry 2xx and 4xx other than 429, MAY retry 429 (Millwatch does). The
    /// webhook and Alertmanager notifiers follow the same rule.
    ServerErrors,
}

impl RetryRule {
    /// Classifies the final status of a request.
    pub fn classify(self, status: u16) -> Class {
        match (self, status) {
            (_, 200..=299) => Class::Success,
            (_, 429) => Class::Retryable,
            (RetryRule::Otlp, 502..=504) => Class::Retryable,
            (RetryRule::ServerErrors, 500..=599) => Class::Retryable,
            _ => Class::Permanent,
        }
    }
}

/// Parses a `Retry-After` value (RFC 9110 §10.2.3): delay seconds or an HTTP date, which is
/// `now` or earlier for "at once".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failure.
    pub min_backoff: Duration,
    /// Longest wait between two tries.
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Backoff {
    /// The wait before try `attempt + 1` (`attempt` counts failures, from 0): uniformly drawn
    /// from `[d/2, d]` with `d = min(min_backoff · 2^attempt, max_backoff)`, and never shorter
    /// than the server's `Retry-After` (capped at `max_retry_after`).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(30));
        let ceiling = self
            .min_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        let half = ceiling / 2;
        let jitter = half.mul_f64(fastrand::f64());
        let backoff = half + jitter;
        match retry_after {
            Some(ra) => backoff.max(ra.min(self.max_retry_after)),
            None => backoff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Class::{Permanent as P, Retryable as R, Success as S};

    /// Every status from 100 to 599 under both rules, range by range, then the statuses each
    /// specification names.
    #[test]
    fn every_status_follows_its_specification() {
        let ranges: [(std::ops::RangeInclusive<u16>, Class, Class); 9] = [
            // (statuses, OTLP, remote write and notifiers)
            (100..=199, P, P),
            (200..=299, S, S),
            (300..=399, P, P),
            (400..=428, P, P),
            (429..=429, R, R),
            (430..=499, P, P),
            (500..=501, P, R),
            (502..=504, R, R),
            (505..=599, P, R),
        ];
        let mut seen = 0;
        for (statuses, otlp, server_errors) in ranges {
            for status in statuses {
                seen += 1;
                assert_eq!(RetryRule::Otlp.classify(status), otlp, "OTLP, {status}");
                assert_eq!(
                    RetryRule::ServerErrors.classify(status),
                    server_errors,
                    "remote write, {status}"
                );
            }
        }
        assert_eq!(seen, 500, "every status from 100 to 599 once");
        // OTLP: "Retryable Response Codes" lists 429, 502, 503, 504; "Bad Data": 400 MUST NOT
        // be retried. Remote write: 5xx MUST be retried, 4xx other than 429 MUST NOT.
        let named = [
            (200, S, S),
            (204, S, S),
            (301, P, P),
            (400, P, P),
            (401, P, P),
            (403, P, P),
            (404, P, P),
            (408, P, P),
            (409, P, P),
            (413, P, P),
            (422, P, P),
            (429, R, R),
            (500, P, R),
            (502, R, R),
            (503, R, R),
            (504, R, R),
        ];
        for (status, otlp, server_errors) in named {
            assert_eq!(RetryRule::Otlp.classify(status), otlp, "OTLP, {status}");
            assert_eq!(
                RetryRule::ServerErrors.classify(status),
                server_errors,
                "remote write, {status}"
            );
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_respects_retry_after() {
        let p = Backoff {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(60),
        };
        for attempt in 0..20 {
            let ceiling = (Duration::from_millis(100) * 2u32.pow(attempt.min(20)))
                .min(Duration::from_secs(5));
            for _ in 0..50 {
                let d = p.delay(attempt, None);
                assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d:?}");
            }
        }
        assert!(p.delay(0, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn retry_after_in_seconds_or_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
