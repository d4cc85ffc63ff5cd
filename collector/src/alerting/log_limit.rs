//! At most one log line per kind of event and receiver in an interval: a storm of
//! notifications (a receiver down, a flapping model) must not flood the log. The lines held
//! back are counted, and the next line that is written says how many there were.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often a line of one kind for one receiver may be written.
pub const EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct LogLimit {
    every: Duration,
    /// Per key: when its last line was written, and the lines held back since.
    last: HashMap<String, (Instant, u64)>,
}

impl LogLimit {
    pub fn new(every: Duration) -> LogLimit {
        LogLimit {
            every,
            last: HashMap::new(),
        }
    }

    /// Whether a line for `key` may be written at `now`: `Some(n)` with the `n` lines held
    /// back since the last one, or `None` (counted, to be reported with the next line).
    pub fn admit(&mut self, key: &str, now: Instant) -> Option<u64> {
        match self.last.get_mut(key) {
            Some((at, held)) if now.saturating_duration_since(*at) < self.every => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                *at = now;
                Some(std::mem::take(held))
            }
            None => {
                self.last.insert(key.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_key_and_interval_then_the_count_held_back() {
        let mut limit = LogLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(limit.admit("hook delivered", at(0)), Some(0));
        assert_eq!(limit.admit("hook delivered", at(1)), None);
        assert_eq!(limit.admit("hook delivered", at(9)), None);
        // Another receiver or kind has its own allowance.
        assert_eq!(limit.admit("mail delivered", at(2)), Some(0));
        assert_eq!(limit.admit("hook given up", at(2)), Some(0));
        assert_eq!(limit.admit("hook delivered", at(10)), Some(2));
        assert_eq!(limit.admit("hook delivered", at(25)), Some(0));
    }
}
