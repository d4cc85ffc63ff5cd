//! The single writer: one thread takes batches from a channel and stores whatever has queued up
//! as one transaction (group commit), then acknowledges every request in it. When idle, a
//! request waits for one commit only. The write connection belongs to a second thread, the
//! committer, which runs the writer's transactions in the order sent.
//!
//! Under load (more rows per second than `journal.above_rows_per_second`), a group is appended
//! to the [journal](super::journal) and synced, acknowledged, and held; the held requests are
//! handed to the committer together once they reach `max_rows_per_commit` rows or have waited
//! `commit_interval`, and the writer goes on journaling while DuckDB commits them. A DuckDB
//! commit costs about as much for 2,000 rows as for 100,000, and from a row group's worth it
//! writes compressed blocks directly.
//!
//! Layout: this file holds the writer thread and its options; `handle` (what senders hold),
//! `load` (rows per second, which decides between committing and journaling), `journaled`
//! (requests journaled, acknowledged and held), `committer` (the thread that owns the write
//! connection), `tables` (a request's rows as the Arrow tables that store them).

mod committer;
mod handle;
mod journaled;
mod load;
mod tables;

pub use handle::{CommitObserver, StoreHandle, spawn, spawn_observed};

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use duckdb::Connection;
use tokio::sync::oneshot;

use super::faults::Faults;
use super::feature_keys::FeatureKeys;
use super::journal::{self, Journal};
use super::{Result, StoreError, columns};
use crate::signals::InferenceRow;
use crate::signals::mapping::KnownIds;

use committer::{Done, Job, SharedObserver, commit_loop, observe};
use handle::{Message, Queued};
use journaled::Held;
use load::Load;
use tables::Prepared;

/// How the writer groups commits.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// A group closes once it holds this many rows (across all tables).
    pub max_rows_per_commit: usize,
    /// DuckDB's `checkpoint_threshold`, in bytes of write-ahead log. DuckDB's own default
    /// (16 MiB) checkpoints every ~1,300 inference events of 12 features: the checkpoint runs
    /// inside a commit, stalls the writer for 0.1-0.5 s and took a quarter of its time.
    pub checkpoint_threshold: usize,
    /// The longest journaled rows wait for their DuckDB commit.
    pub commit_interval: Duration,
    /// Under load, acknowledge once journaled; `None` commits every group before acknowledging.
    pub journal: Option<JournalOptions>,
    /// Set to the rows journaled and not yet committed, for `/metrics`.
    pub journal_rows: Arc<std::sync::atomic::AtomicU64>,
    /// Failures to inject, for tests of the failure paths.
    pub faults: Faults,
}

/// Where the journal is and from what load on it is used.
#[derive(Debug, Clone)]
pub struct JournalOptions {
    pub path: PathBuf,
    /// Below this many rows per second every group is committed to DuckDB before it is
    /// acknowledged; from it on groups are journaled. 0 journals everything.
    pub above_rows_per_second: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            max_rows_per_commit: 200_000,
            checkpoint_threshold: 256 * 1024 * 1024,
            commit_interval: Duration::from_millis(250),
            journal: None,
            journal_rows: Arc::default(),
            faults: Faults::default(),
        }
    }
}

/// What one commit did, reported to the pipeline's telemetry.
#[derive(Debug, Default, Clone)]
pub struct WriterStats {
    pub requests: usize,
    pub rows: usize,
    pub duration: Duration,
    /// The newest inference `event_id` the commit made durable, if it stored inferences.
    pub last_event_id: Option<u64>,
    /// The inference events the commit stored, `event_id` from `first_event_id` on, handed over
    /// so the detection engine need not read them back.
    pub first_event_id: u64,
    pub inferences: Vec<InferenceRow>,
}
struct Writer {
    known: Arc<KnownIds>,
    options: WriterOptions,
    observer: SharedObserver,
    next_event_id: u64,
    feature_keys: FeatureKeys,
    resources: HashSet<u64>,
    scopes: HashSet<u64>,
    series: HashSet<u64>,
    journal: Option<Journal>,
    load: Load,
    /// Journaled and acknowledged, waiting to be handed to the committer, oldest first.
    held: Vec<Held>,
    held_rows: usize,
    held_since: Option<Instant>,
    /// The committer is storing held requests handed to it.
    committing: bool,
    /// After a failed commit of held requests, the next try waits until then.
    retry_at: Option<Instant>,
    jobs: mpsc::Sender<Job>,
    done: mpsc::Receiver<Done>,
    committer: Option<std::thread::JoinHandle<()>>,
}
/// Held requests past this many times `max_rows_per_commit` (DuckDB keeps failing to commit)
/// make the writer refuse new requests.
pub const HELD_LIMIT_COMMITS: usize = 4;

type Ack = oneshot::Sender<Result<()>>;

/// Event ids continue after the newest stored event, and after the newest the detection engine
/// has accounted for: retention may have deleted every stored event, and ids given again would
/// be skipped by the engine's cursor.
const NEXT_EVENT_ID: &str = "SELECT greatest(
    (SELECT coalesce(max(event_id) + 1, 0) FROM inferences),
    (SELECT coalesce(max(CAST(json_extract(value, '$.cursor') AS UBIGINT)) + 1, 0)
     FROM detection_state WHERE key = 'engine'))";
fn retain(conn: &Connection, cutoff_ns: i64) -> duckdb::Result<u64> {
    const BY_TIME: &[(&str, &str)] = &[
        ("inference_feature_values", "time"),
        ("inferences", "time"),
        ("feedback", "time"),
        ("metric_points", "time"),
        ("metric_distributions", "time"),
        ("spans", "end_time"),
        ("logs", "coalesce(time, observed_time)"),
    ];
    let mut deleted = 0u64;
    for (table, column) in BY_TIME {
        let sql = format!("DELETE FROM {table} WHERE {column} < make_timestamp_ns(?)");
        deleted += conn.execute(&sql, [cutoff_ns])? as u64;
    }
    Ok(deleted)
}

impl Writer {
    fn new(
        conn: Connection,
        known: Arc<KnownIds>,
        options: WriterOptions,
        observer: CommitObserver,
    ) -> Result<Self> {
        // A database-wide setting; the writer is the only connection that commits much.
        conn.execute_batch(&format!(
            "SET checkpoint_threshold = '{}B'",
            options.checkpoint_threshold
        ))?;
        let next_event_id = conn.query_row(NEXT_EVENT_ID, [], |r| r.get::<_, u64>(0))?;
        let feature_keys = FeatureKeys::load(&conn)?;
        let journal = match &options.journal {
            Some(j) => Some(Journal::open(
                &j.path,
                journal::applied_seq(&conn)? + 1,
                options.faults.clone(),
            )?),
            None => None,
        };
        let load = Load::new(
            options
                .journal
                .as_ref()
                .map_or(usize::MAX, |j| j.above_rows_per_second),
        );
        let copy =
            |s: &std::sync::RwLock<HashSet<u64>>| s.read().map(|s| s.clone()).unwrap_or_default();
        let observer: SharedObserver = Arc::new(std::sync::Mutex::new(observer));
        let (jobs, jobs_rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let committer = {
            let observer = observer.clone();
            let journal_rows = options.journal_rows.clone();
            let faults = options.faults.clone();
            std::thread::Builder::new()
                .name("millwatch-commit".into())
                .spawn(move || commit_loop(conn, jobs_rx, done_tx, observer, journal_rows, faults))
                .map_err(|e| StoreError::Write(format!("cannot start the committer thread: {e}")))?
        };
        Ok(Writer {
            resources: copy(&known.resources),
            scopes: copy(&known.scopes),
            series: copy(&known.series),
            known,
            options,
            observer,
            next_event_id,
            feature_keys,
            journal,
            load,
            held: Vec::new(),
            held_rows: 0,
            held_since: None,
            committing: false,
            retry_at: None,
            jobs,
            done,
            committer: Some(committer),
        })
    }

    fn run(&mut self, rx: mpsc::Receiver<Message>) {
        let mut pending: Option<Message> = None;
        loop {
            let first = match pending.take() {
                Some(m) => m,
                None => match self.commit_due() {
                    None => match rx.recv() {
                        Ok(m) => m,
                        Err(_) => break,
                    },
                    Some(due) => {
                        match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                            Ok(m) => m,
                            Err(RecvTimeoutError::Timeout) => {
                                // Nothing arrives: wait for the committer if it is busy, then
                                // hand it the held requests (unless a failure waits to retry).
                                self.collect_done(true);
                                if self.retry_at.is_none_or(|r| r <= Instant::now()) {
                                    self.hand_off();
                                }
                                continue;
                            }
                            Err(RecvTimeoutError::Disconnected) => break,
                        }
                    }
                },
            };
            match first {
                Message::Shutdown => break,
                Message::Abandon => {
                    tracing::warn!(
                        held_rows = self.held_rows,
                        "writer abandoned; journaled requests are left for the replay"
                    );
                    self.stop_committer(false);
                    return;
                }
                Message::Run(job) => {
                    // The committer runs jobs in the order sent; a job dropped unrun (the
                    // committer stopped) tells its caller the store closed.
                    let _ = self.jobs.send(Job::Run(job));
                }
                Message::Retain { cutoff_ns, done } => {
                    let _ = self.commit_held();
                    let _ = done.send(self.on_connection(move |conn| retain(conn, cutoff_ns)));
                }
                Message::Store { queued, ack } => {
                    let mut rows = queued.batch.rows();
                    let mut group = vec![(*queued, ack)];
                    while rows < self.options.max_rows_per_commit {
                        match rx.try_recv() {
                            Ok(Message::Store { queued, ack }) => {
                                rows += queued.batch.rows();
                                group.push((*queued, ack));
                            }
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.load.add(rows);
                    let usable = self.journal.as_ref().is_some_and(|j| !j.is_broken());
                    let journaling = usable && (self.load.busy() || !self.held.is_empty());
                    if journaling {
                        self.journal_group(group);
                        self.maybe_hand_off();
                    } else if let Err(e) = self.commit_held() {
                        // Held rows go to DuckDB before any later request (a broken journal
                        // takes no more): until they do, later requests are refused.
                        tracing::error!(error = %e, "committing journaled requests failed");
                        for (_, ack) in group {
                            let _ = ack.send(Err(StoreError::Write(e.to_string())));
                        }
                    } else {
                        self.commit_group(group);
                    }
                }
            }
        }
        // Anything still queued arrived after shutdown began: refuse it rather than lose it silently.
        while let Ok(m) = rx.try_recv() {
            match m {
                Message::Store { ack, .. } => {
                    let _ = ack.send(Err(StoreError::Closed));
                }
                Message::Retain { done, .. } => {
                    let _ = done.send(Err(StoreError::Closed));
                }
                Message::Run(_) | Message::Shutdown | Message::Abandon => {}
            }
        }
        drop(rx);
        self.retry_at = None;
        if let Err(e) = self.commit_held() {
            tracing::error!(error = %e, "committing journaled requests on shutdown failed; the journal is replayed at next start");
        }
        self.stop_committer(true);
    }
    /// Commits a group; if it fails, commits each request on its own so that one bad request
    /// cannot fail the others.
    fn commit_group(&mut self, group: Vec<(Queued, Ack)>) {
        let started = Instant::now();
        let (batches, acks): (Vec<Queued>, Vec<Ack>) = group.into_iter().unzip();
        let rows: usize = batches.iter().map(|q| q.batch.rows()).sum();
        let events_before = self.next_event_id;
        match self.commit(&batches) {
            Ok(()) => {
                let stats = self.committed(batches, rows, started, events_before);
                observe(&self.observer, stats);
                for ack in acks {
                    let _ = ack.send(Ok(()));
                }
            }
            Err(e) if batches.len() == 1 => {
                tracing::error!(error = %e, rows, "commit failed");
                for ack in acks {
                    let _ = ack.send(Err(StoreError::Write(e.to_string())));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, requests = batches.len(), "group commit failed; committing requests one by one");
                for (batch, ack) in batches.into_iter().zip(acks) {
                    let started = Instant::now();
                    let events_before = self.next_event_id;
                    let result = self.commit(std::slice::from_ref(&batch));
                    if result.is_ok() {
                        let rows = batch.batch.rows();
                        let stats = self.committed(vec![batch], rows, started, events_before);
                        observe(&self.observer, stats);
                    }
                    let _ = ack.send(result.map_err(|e| StoreError::Write(e.to_string())));
                }
            }
        }
    }

    /// What the observer hears of a commit that stored `batches`; their inference events are
    /// moved into it, since they are not needed here any more.
    fn committed(
        &self,
        batches: Vec<Queued>,
        rows: usize,
        started: Instant,
        events_before: u64,
    ) -> WriterStats {
        let requests = batches.len();
        let inferences: Vec<InferenceRow> = batches
            .into_iter()
            .flat_map(|q| q.batch.inferences)
            .collect();
        WriterStats {
            requests,
            rows,
            duration: started.elapsed(),
            last_event_id: (self.next_event_id > events_before).then(|| self.next_event_id - 1),
            first_event_id: events_before,
            inferences,
        }
    }

    /// Commits `queued` to DuckDB in one transaction, on the committer's connection.
    fn commit(&mut self, queued: &[Queued]) -> Result<()> {
        let Prepared { tables, taken } = self.prepare(queued)?;
        let faults = self.options.faults.clone();
        let appended = self.on_connection(move |conn| {
            columns::append_in_one_transaction(conn, tables, |conn| faults.commit(conn))
        });
        if let Err(e) = appended {
            self.feature_keys.rollback();
            return Err(e);
        }
        self.settle(taken);
        Ok(())
    }
}
