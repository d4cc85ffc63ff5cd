//! The bounded tap: inference events the writer has just committed, handed to the engine in
//! memory so that it does not read them back from DuckDB. The tap never makes ingest wait: when
//! it already holds its capacity, a commit's events are left out and the engine reads that gap
//! from the store instead, by `event_id`, as it does after a restart.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::signals::InferenceRow;

/// The events of one commit: `rows[i]` was stored with `event_id = first_event_id + i`.
#[derive(Debug)]
pub struct Committed {
    pub first_event_id: u64,
    pub rows: Vec<InferenceRow>,
}

impl Committed {
    pub fn last_event_id(&self) -> Option<u64> {
        (self.rows.len() as u64)
            .checked_sub(1)
            .map(|n| self.first_event_id + n)
    }
}

/// Inference events committed but not yet taken by the engine, at most `capacity` of them.
#[derive(Debug)]
pub struct InferenceTap {
    capacity: usize,
    inner: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    commits: VecDeque<Committed>,
    events: usize,
    /// The newest event id committed, whether it was queued or left out.
    newest: Option<u64>,
    /// Events left out because the tap was full, since the start.
    left_out: u64,
}

impl InferenceTap {
    /// A tap holding at most `capacity` events.
    pub fn new(capacity: usize) -> InferenceTap {
        InferenceTap {
            capacity,
            inner: Mutex::new(Queue::default()),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A commit stored `rows` from `first_event_id` on. Queued when there is room, otherwise
    /// dropped (the engine finds the gap and reads it from the store).
    pub fn offer(&self, first_event_id: u64, rows: Vec<InferenceRow>) {
        let commit = Committed {
            first_event_id,
            rows,
        };
        let Some(last) = commit.last_event_id() else {
            return;
        };
        let mut q = self.queue();
        q.newest = Some(q.newest.map_or(last, |n| n.max(last)));
        if q.events + commit.rows.len() > self.capacity {
            q.left_out += commit.rows.len() as u64;
            return;
        }
        q.events += commit.rows.len();
        q.commits.push_back(commit);
    }

    /// Everything queued, oldest commit first, and the newest event id committed (queued or
    /// not) at that moment.
    pub fn take(&self) -> (Vec<Committed>, Option<u64>) {
        let mut q = self.queue();
        q.events = 0;
        (q.commits.drain(..).collect(), q.newest)
    }

    /// The newest event id committed so far, if any commit was offered.
    pub fn newest(&self) -> Option<u64> {
        self.queue().newest
    }

    /// Events left out because the tap was full.
    pub fn left_out(&self) -> u64 {
        self.queue().left_out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::Prediction;

    fn rows(n: usize) -> Vec<InferenceRow> {
        (0..n)
            .map(|i| InferenceRow {
                time: i as i64,
                observed_time: None,
                model: "m".into(),
                version: "1".into(),
                inference_id: None,
                prediction: Prediction::Number(0.0),
                score: None,
                duration_s: None,
                task: None,
                trace_id: None,
                span_id: None,
                attributes: None,
                resource_id: 0,
                scope_id: 0,
                features: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn a_full_tap_leaves_commits_out_but_remembers_the_newest_id() {
        let tap = InferenceTap::new(5);
        tap.offer(0, rows(3));
        tap.offer(3, rows(3)); // 6 > 5: left out
        tap.offer(6, rows(2));
        assert_eq!(tap.newest(), Some(7));
        assert_eq!(tap.left_out(), 3);
        let (taken, newest) = tap.take();
        assert_eq!(newest, Some(7));
        let firsts: Vec<u64> = taken.iter().map(|c| c.first_event_id).collect();
        assert_eq!(firsts, vec![0, 6]);
        assert!(tap.take().0.is_empty());
        // Taking made room again.
        tap.offer(8, rows(5));
        assert_eq!(tap.take().0.len(), 1);
        tap.offer(13, Vec::new());
        assert_eq!(tap.newest(), Some(12));
    }
}
