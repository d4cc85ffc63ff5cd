//! The committer: a second thread that owns the write connection and runs the writer's
//! transactions in the order sent, so that DuckDB commits journaled requests while the writer
//! journals the next ones; and how the writer hands it work and learns how that ended.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use duckdb::Connection;

use super::journaled::Held;
use super::{CommitObserver, Writer, WriterStats};
use crate::store::faults::Faults;
use crate::store::journal;
use crate::store::{Result, StoreError};

/// The commit observer, called by the committer for held commits and by the writer for the
/// others, one at a time and in the order of the commits.
pub(super) type SharedObserver = Arc<std::sync::Mutex<CommitObserver>>;

pub(super) fn observe(observer: &SharedObserver, stats: WriterStats) {
    if let Ok(mut observe) = observer.lock() {
        observe(stats)
    }
}

/// Held requests handed to the committer, with the journal segments that hold them.
pub(super) struct HeldCommit {
    held: Vec<Held>,
    rows: usize,
    segments: Vec<PathBuf>,
}

/// Work for the committer thread, done in the order sent.
pub(super) enum Job {
    /// Stores held requests and records the newest journal record among them, deletes their
    /// segments, tells the observer; answers on the `done` channel.
    Held(HeldCommit),
    /// Runs on the connection (the caller waits for an answer it sends itself).
    Run(Box<dyn FnOnce(&Connection) + Send>),
    /// Stops: with a checkpoint after a shutdown, without one as a crash would.
    Stop { checkpoint: bool },
}

/// A held commit finished; if it failed, its requests come back to be committed later.
pub(super) type Done = std::result::Result<(), Box<(StoreError, HeldCommit)>>;

pub(super) fn committer_stopped() -> StoreError {
    StoreError::Write("the store's committer thread stopped".into())
}

/// The committer thread: owns the write connection, so that DuckDB commits of journaled requests
/// run while the writer journals the next ones.
pub(super) fn commit_loop(
    conn: Connection,
    jobs: mpsc::Receiver<Job>,
    done: mpsc::Sender<Done>,
    observer: SharedObserver,
    journal_rows: Arc<AtomicU64>,
    faults: Faults,
) {
    let mut checkpoint = true;
    for job in jobs {
        match job {
            Job::Held(commit) => {
                let rows = commit.rows as u64;
                let finished = store_held(&conn, commit, &observer, &faults);
                if finished.is_ok() {
                    journal_rows.fetch_sub(rows, Ordering::Relaxed);
                }
                let _ = done.send(finished);
            }
            Job::Run(f) => f(&conn),
            Job::Stop { checkpoint: c } => {
                checkpoint = c;
                break;
            }
        }
    }
    if checkpoint {
        if let Err(e) = conn.execute_batch("CHECKPOINT") {
            tracing::warn!(error = %e, "checkpoint on shutdown failed; the WAL will be replayed at next start");
        }
        tracing::info!("store closed");
    }
}

/// Commits held requests in one transaction that also records the newest journal record they
/// hold, then deletes their journal segments.
fn store_held(
    conn: &Connection,
    commit: HeldCommit,
    observer: &SharedObserver,
    faults: &Faults,
) -> Done {
    let Some(last) = commit.held.last().map(|h| h.seq) else {
        return Ok(());
    };
    let started = Instant::now();
    let tables = journal::by_table(commit.held.iter().map(|h| &h.tables));
    if let Err(e) = journal::commit_applied(conn, tables, last, faults) {
        return Err(Box::new((e.into(), commit)));
    }
    for segment in &commit.segments {
        if let Err(e) = journal::remove_segment(segment) {
            // Its records are at or before `applied_seq`: a replay skips them.
            tracing::warn!(error = %e, "deleting a stored journal segment failed");
        }
    }
    let first_event_id = commit.held[0].first_event_id;
    let mut stats = WriterStats {
        requests: commit.held.len(),
        rows: commit.rows,
        first_event_id,
        ..WriterStats::default()
    };
    for h in commit.held {
        stats.inferences.extend(h.inferences);
    }
    let events = stats.inferences.len() as u64;
    stats.last_event_id = (events > 0).then(|| first_event_id + events - 1);
    stats.duration = started.elapsed();
    observe(observer, stats);
    Ok(())
}
impl Writer {
    /// Stops the committer after the jobs sent before, and waits for it.
    pub(super) fn stop_committer(&mut self, checkpoint: bool) {
        let _ = self.jobs.send(Job::Stop { checkpoint });
        if let Some(t) = self.committer.take() {
            let _ = t.join();
        }
    }
    /// Hands every held request to the committer, unless it is busy with earlier ones.
    pub(super) fn hand_off(&mut self) {
        if self.held.is_empty() || self.committing {
            return;
        }
        let segments = self
            .journal
            .as_mut()
            .map(|j| j.take_segments())
            .unwrap_or_default();
        let commit = HeldCommit {
            held: std::mem::take(&mut self.held),
            rows: std::mem::take(&mut self.held_rows),
            segments,
        };
        self.held_since = None;
        match self.jobs.send(Job::Held(commit)) {
            Ok(()) => self.committing = true,
            Err(mpsc::SendError(job)) => {
                tracing::error!("the store's committer thread stopped");
                if let Job::Held(commit) = job {
                    self.take_back(commit);
                }
            }
        }
    }

    /// Held requests whose commit failed: they are older than any held now, and are tried again
    /// after a second.
    fn take_back(&mut self, commit: HeldCommit) {
        let HeldCommit {
            mut held,
            rows,
            segments,
        } = commit;
        held.append(&mut self.held);
        self.held = held;
        self.held_rows += rows;
        self.held_since.get_or_insert_with(Instant::now);
        if let Some(journal) = self.journal.as_mut() {
            journal.give_back(segments);
        }
        self.retry_at = Some(Instant::now() + Duration::from_secs(1));
    }

    /// Learns how the committer's held commit ended, waiting for it if `wait`; `None` if none
    /// is in flight (or, without waiting, it is not finished).
    pub(super) fn collect_done(&mut self, wait: bool) -> Option<Result<()>> {
        if !self.committing {
            return None;
        }
        let done = if wait {
            self.done.recv().ok()
        } else {
            match self.done.try_recv() {
                Ok(done) => Some(done),
                Err(mpsc::TryRecvError::Empty) => return None,
                Err(mpsc::TryRecvError::Disconnected) => None,
            }
        };
        self.committing = false;
        let Some(done) = done else {
            // Its requests are still in their journal segments, for the replay at next start.
            tracing::error!("the store's committer thread stopped");
            return Some(Err(committer_stopped()));
        };
        Some(match done {
            Ok(()) => {
                self.retry_at = None;
                Ok(())
            }
            Err(failed) => {
                let (e, commit) = *failed;
                tracing::error!(error = %e, rows = commit.rows, "committing journaled requests failed; retrying in 1 s");
                self.take_back(commit);
                Err(e)
            }
        })
    }

    /// Commits every held request now and waits for it (and for a commit in flight).
    pub(super) fn commit_held(&mut self) -> Result<()> {
        self.collect_done(true);
        if self.held.is_empty() {
            return Ok(());
        }
        self.hand_off();
        self.collect_done(true)
            .unwrap_or_else(|| Err(committer_stopped()))
    }

    /// Runs `f` on the write connection after every job sent before, and waits for its answer.
    pub(super) fn on_connection<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> duckdb::Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs
            .send(Job::Run(Box::new(move |conn| {
                let _ = tx.send(f(conn));
            })))
            .map_err(|_| committer_stopped())?;
        Ok(rx.recv().map_err(|_| committer_stopped())??)
    }
}
