//! Requests under load: appended to the journal and synced, acknowledged, and held until the
//! committer stores them together.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::handle::Queued;
use super::tables::Prepared;
use super::{Ack, HELD_LIMIT_COMMITS, Writer};
use crate::signals::InferenceRow;
use crate::store::journal;
use crate::store::{Result, StoreError};

/// A journaled request: its tables as they will be appended, and its inference events for the
/// commit observer.
pub(super) struct Held {
    pub(super) seq: u64,
    pub(super) tables: journal::Tables,
    pub(super) first_event_id: u64,
    pub(super) inferences: Vec<InferenceRow>,
}
impl Writer {
    /// When the held requests are to be committed, if any are held. With none held but a commit
    /// in flight, when to learn how it ended: if it failed, its requests come back to be retried,
    /// which must not wait for the next request.
    pub(super) fn commit_due(&self) -> Option<Instant> {
        let Some(since) = self.held_since else {
            return self
                .committing
                .then(|| Instant::now() + self.options.commit_interval);
        };
        let due = since + self.options.commit_interval;
        Some(self.retry_at.map_or(due, |r| r.max(due)))
    }

    /// After a journaled group: hands the held requests to the committer once they fill a
    /// commit, have waited `commit_interval`, or the load has dropped. While the committer is
    /// busy the writer goes on journaling, up to a commit's rows; then it waits for the
    /// committer, which slows the clients down instead of refusing them.
    pub(super) fn maybe_hand_off(&mut self) {
        self.collect_done(false);
        let now = Instant::now();
        let due = self.commit_due().is_some_and(|d| d <= now);
        let retry_waits = self.retry_at.is_some_and(|r| r > now);
        let full = self.held_rows >= self.options.max_rows_per_commit;
        if !(due || (!retry_waits && (full || !self.load.busy()))) {
            return;
        }
        if self.committing {
            if !full {
                return;
            }
            self.collect_done(true);
            if self.retry_at.is_some_and(|r| r > Instant::now()) {
                return;
            }
        }
        self.hand_off();
    }
    /// Appends each request of `group` to the journal, syncs it once, and acknowledges the
    /// requests it holds; their rows wait in `held` to be handed to the committer.
    pub(super) fn journal_group(&mut self, group: Vec<(Queued, Ack)>) {
        let limit = self.options.max_rows_per_commit * HELD_LIMIT_COMMITS;
        let mut acks = Vec::with_capacity(group.len());
        for (queued, ack) in group {
            // A committer that is only slow makes the writer wait (see `maybe_hand_off`); one
            // that fails leaves the rows held, and past the limit requests are refused.
            if self.retry_at.is_some() && self.held_rows >= limit {
                let _ = ack.send(Err(StoreError::Write(format!(
                    "{} journaled rows are waiting for DuckDB, which fails to commit them",
                    self.held_rows
                ))));
                continue;
            }
            match self.journal_one(queued) {
                Ok(()) => acks.push(ack),
                Err(e) => {
                    tracing::error!(error = %e, "journaling a request failed");
                    let _ = ack.send(Err(e));
                }
            }
        }
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        let mut synced = journal.sync().map_err(|e| e.to_string());
        if let Err(e) = &synced {
            // The journal takes no more records; what it holds goes to DuckDB now, and the
            // requests are acknowledged if that commit succeeds. If it fails, they stay held
            // (and will be stored) while their clients hear of the failure: a retry may store
            // them twice.
            tracing::error!(error = %e, "syncing the journal failed; committing to DuckDB instead");
            synced = self.commit_held().map_err(|e| e.to_string());
        }
        for ack in acks {
            let _ = ack.send(synced.clone().map_err(StoreError::Write));
        }
    }

    fn journal_one(&mut self, mut queued: Queued) -> Result<()> {
        let first_event_id = self.next_event_id;
        let prepared = self.prepare(std::slice::from_ref(&queued))?;
        let Some(journal) = self.journal.as_mut() else {
            self.feature_keys.rollback();
            return Err(StoreError::Write("the journal is not open".into()));
        };
        let seq = match journal.append(&prepared.tables) {
            Ok(seq) => seq,
            Err(e) => {
                self.feature_keys.rollback();
                return Err(e);
            }
        };
        let Prepared { tables, taken } = prepared;
        self.settle(taken);
        let rows = queued.batch.rows();
        self.held_rows += rows;
        self.options
            .journal_rows
            .fetch_add(rows as u64, Ordering::Relaxed);
        self.held_since.get_or_insert_with(Instant::now);
        self.held.push(Held {
            seq,
            tables,
            first_event_id,
            inferences: std::mem::take(&mut queued.batch.inferences),
        });
        Ok(())
    }
}
