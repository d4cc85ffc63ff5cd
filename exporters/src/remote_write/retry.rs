//! When to retry a remote-write request and how long to wait: 5xx and 429 are retried with
//! exponential backoff and jitter (at least as long as `Retry-After` asks), other statuses are
//! never retried, as the remote write specification says.

use std::time::{Duration, SystemTime};

/// What to do with a batch after an HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Accepted (2xx).
    Success,
    /// Send the same batch again later (5xx, 429).
    Retry,
    /// Never retry: the receiver refused the data (other 4xx, and 1xx/3xx, which a
    /// remote-write receiver must not answer); drop the batch, count it and log it.
    Drop,
}

/// Classifies an HTTP status code.
pub fn classify(status: u16) -> Decision {
    match status {
        200..=299 => Decision::Success,
        429 | 500..=599 => Decision::Retry,
        _ => Decision::Drop,
    }
}

/// Exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait after the first failure.
    pub min_backoff: Duration,
    /// Longest wait between two tries.
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
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

/// Parses a `Retry-After` value: delay seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_code_has_the_specified_decision() {
        for status in 100u16..=599 {
            let want = match status {
                200..=299 => Decision::Success,
                429 => Decision::Retry,
                500..=599 => Decision::Retry,
                100..=199 | 300..=399 | 400..=428 | 430..=499 => Decision::Drop,
                _ => unreachable!(),
            };
            assert_eq!(classify(status), want, "status {status}");
        }
        let table = [
            (200, Decision::Success),
            (204, Decision::Success),
            (400, Decision::Drop),
            (401, Decision::Drop),
            (403, Decision::Drop),
            (404, Decision::Drop),
            (409, Decision::Drop),
            (413, Decision::Drop),
            (429, Decision::Retry),
            (500, Decision::Retry),
            (502, Decision::Retry),
            (503, Decision::Retry),
            (504, Decision::Retry),
        ];
        for (status, want) in table {
            assert_eq!(classify(status), want, "status {status}");
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_respects_retry_after() {
        let p = RetryPolicy {
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
