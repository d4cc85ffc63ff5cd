//! The load on the writer: rows per second, over windows of about a second. From
//! `journal.above_rows_per_second` on, requests are journaled instead of committed one group
//! at a time.

use std::time::{Duration, Instant};

/// Rows per second reaching the writer, over windows of about a second.
pub(super) struct Load {
    window_start: Instant,
    rows: usize,
    last_rate: usize,
    threshold: usize,
}

impl Load {
    pub(super) fn new(threshold: usize) -> Load {
        Load {
            window_start: Instant::now(),
            rows: 0,
            last_rate: 0,
            threshold,
        }
    }

    pub(super) fn add(&mut self, rows: usize) {
        let elapsed = self.window_start.elapsed();
        if elapsed >= Duration::from_secs(1) {
            self.last_rate = (self.rows as f64 / elapsed.as_secs_f64()) as usize;
            self.rows = 0;
            self.window_start = Instant::now();
        }
        self.rows += rows;
    }

    pub(super) fn busy(&self) -> bool {
        self.last_rate >= self.threshold || self.rows >= self.threshold
    }
}
