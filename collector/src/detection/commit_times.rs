//! When inference events became durable, so the engine can say how long after its last event
//! was committed a window's verdict was ready (`millwatch_detection_verdict_delay_seconds`).
//! The store's writer records each commit; the engine looks events up by id.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Commits remembered; older ones are forgotten (a window that old is reported without a delay).
const KEEP: usize = 8192;

/// The newest event id of each recent commit with the instant it was committed.
#[derive(Debug, Default)]
pub struct CommitTimes {
    commits: Mutex<VecDeque<(u64, Instant)>>,
    /// Commits recorded so far (any signal), so the engine can sleep until there is new data.
    sequence: Mutex<u64>,
    committed: Condvar,
}

impl CommitTimes {
    /// A commit made events up to `last_event_id` durable at `at`.
    pub fn record(&self, last_event_id: u64, at: Instant) {
        let mut c = self.commits.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() == KEEP {
            c.pop_front();
        }
        c.push_back((last_event_id, at));
        drop(c);
        self.notify();
    }

    /// A commit stored something (metrics, say): wakes the engine without an event id.
    pub fn notify(&self) {
        let mut seq = self.sequence.lock().unwrap_or_else(|e| e.into_inner());
        *seq += 1;
        self.committed.notify_all();
    }

    /// How many commits were recorded so far.
    pub fn sequence(&self) -> u64 {
        *self.sequence.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a commit after `seen` (a [`sequence`](Self::sequence)) or until `timeout`;
    /// true when there was one.
    pub fn wait_after(&self, seen: u64, timeout: Duration) -> bool {
        let seq = self.sequence.lock().unwrap_or_else(|e| e.into_inner());
        let (seq, _) = self
            .committed
            .wait_timeout_while(seq, timeout, |s| *s == seen)
            .unwrap_or_else(|e| e.into_inner());
        *seq != seen
    }

    /// When the event `event_id` was committed, if that is still remembered.
    pub fn committed_at(&self, event_id: u64) -> Option<Instant> {
        let c = self.commits.lock().unwrap_or_else(|e| e.into_inner());
        // Commits are recorded in event-id order: the first one reaching `event_id` stored it.
        let i = c.partition_point(|(last, _)| *last < event_id);
        let (first_last, _) = *c.front()?;
        // Before the oldest remembered commit's range: it may have been any earlier commit.
        if i == 0 && event_id < first_last && c.len() == KEEP {
            return None;
        }
        c.get(i).map(|(_, at)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn finds_the_commit_that_stored_an_event() {
        let t = CommitTimes::default();
        let t0 = Instant::now();
        t.record(99, t0);
        t.record(199, t0 + Duration::from_millis(10));
        assert_eq!(t.committed_at(0), Some(t0));
        assert_eq!(t.committed_at(99), Some(t0));
        assert_eq!(t.committed_at(100), Some(t0 + Duration::from_millis(10)));
        assert_eq!(t.committed_at(200), None, "not committed yet");
    }

    #[test]
    fn a_commit_wakes_a_waiter() {
        let t = std::sync::Arc::new(CommitTimes::default());
        let seen = t.sequence();
        assert!(
            !t.wait_after(seen, Duration::from_millis(5)),
            "nothing committed"
        );
        let writer = t.clone();
        let h = std::thread::spawn(move || writer.notify());
        assert!(t.wait_after(seen, Duration::from_secs(10)));
        h.join().unwrap();
        assert_eq!(t.sequence(), seen + 1);
    }

    #[test]
    fn forgets_old_commits() {
        let t = CommitTimes::default();
        let t0 = Instant::now();
        for i in 0..(KEEP as u64 + 10) {
            t.record(i * 10 + 9, t0);
        }
        assert_eq!(t.committed_at(5), None, "its commit was forgotten");
        assert!(t.committed_at((KEEP as u64 + 9) * 10).is_some());
    }
}
