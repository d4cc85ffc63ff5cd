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

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use duckdb::Connection;
use duckdb::arrow::record_batch::RecordBatch;
use tokio::sync::oneshot;

use super::faults::Faults;
use super::feature_keys::FeatureKeys;
use super::journal::{self, Journal};
use super::{Result, StoreError, columns};
use crate::signals::mapping::KnownIds;
use crate::signals::{Batch, InferenceRow};

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

/// A request's rows on their way to the writer, with its inference events already in columns.
struct Queued {
    batch: Batch,
    inference_columns: Option<columns::InferenceColumns>,
}

impl Queued {
    /// Runs on the sender's thread: what can be built without the writer's state is built here,
    /// in parallel across requests.
    fn new(batch: Batch) -> Queued {
        let inference_columns = (!batch.inferences.is_empty())
            .then(|| columns::InferenceColumns::build(&batch.inferences));
        Queued {
            batch,
            inference_columns,
        }
    }
}

enum Message {
    Store {
        queued: Box<Queued>,
        ack: oneshot::Sender<Result<()>>,
    },
    /// Deletes rows whose time is before `cutoff_ns`.
    Retain {
        cutoff_ns: i64,
        done: oneshot::Sender<Result<u64>>,
    },
    /// Everything sent before is committed; then the database is checkpointed and closed.
    Shutdown,
    /// Stops at once, as a crash would: journaled requests stay in the journal only.
    Abandon,
}

/// Sends work to the writer thread. Dropping every handle lets the writer drain and stop.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Message>,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl StoreHandle {
    /// Stores a batch; resolves once it is committed (or failed).
    pub async fn store(&self, batch: Batch) -> Result<()> {
        let (ack, rx) = oneshot::channel();
        self.tx
            .send(Message::Store {
                queued: Box::new(Queued::new(batch)),
                ack,
            })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Deletes rows older than `cutoff_ns` from every signal table; returns how many.
    pub async fn retain(&self, cutoff_ns: i64) -> Result<u64> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Message::Retain { cutoff_ns, done })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Stops the writer thread as a crash would (held requests are left in the journal, nothing
    /// is committed or checkpointed) and waits for it. For tests of the replay at start.
    #[doc(hidden)]
    pub fn abandon(&self) {
        let _ = self.tx.send(Message::Abandon);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    /// Commits everything queued so far, closes the database and waits for the writer thread.
    /// Requests sent after this get [`StoreError::Closed`].
    pub fn shutdown(&self) {
        let _ = self.tx.send(Message::Shutdown);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// Told about every successful commit, on the writer thread: keep it short.
pub type CommitObserver = Box<dyn FnMut(WriterStats) + Send>;

pub fn spawn(
    conn: Connection,
    known: Arc<KnownIds>,
    options: WriterOptions,
) -> Result<StoreHandle> {
    spawn_observed(conn, known, options, Box::new(|_| {}))
}

pub fn spawn_observed(
    conn: Connection,
    known: Arc<KnownIds>,
    options: WriterOptions,
    observer: CommitObserver,
) -> Result<StoreHandle> {
    let (tx, rx) = mpsc::channel();
    let mut writer = Writer::new(conn, known, options, observer)?;
    let thread = std::thread::Builder::new()
        .name("millwatch-store".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| StoreError::Write(format!("cannot start the writer thread: {e}")))?;
    Ok(StoreHandle {
        tx,
        thread: Arc::new(std::sync::Mutex::new(Some(thread))),
    })
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

/// A journaled request: its tables as they will be appended, and its inference events for the
/// commit observer.
struct Held {
    seq: u64,
    tables: journal::Tables,
    first_event_id: u64,
    inferences: Vec<InferenceRow>,
}

/// The tables that store some requests (see [`Writer::prepare`]).
struct Prepared {
    tables: journal::Tables,
    taken: Taken,
}

/// What prepared requests add to the writer's state once they are durable.
struct Taken {
    events: u64,
    new_resources: HashSet<u64>,
    new_scopes: HashSet<u64>,
    new_series: HashSet<u64>,
}

/// Rows per second reaching the writer, over windows of about a second.
struct Load {
    window_start: Instant,
    rows: usize,
    last_rate: usize,
    threshold: usize,
}

impl Load {
    fn new(threshold: usize) -> Load {
        Load {
            window_start: Instant::now(),
            rows: 0,
            last_rate: 0,
            threshold,
        }
    }

    fn add(&mut self, rows: usize) {
        let elapsed = self.window_start.elapsed();
        if elapsed >= Duration::from_secs(1) {
            self.last_rate = (self.rows as f64 / elapsed.as_secs_f64()) as usize;
            self.rows = 0;
            self.window_start = Instant::now();
        }
        self.rows += rows;
    }

    fn busy(&self) -> bool {
        self.last_rate >= self.threshold || self.rows >= self.threshold
    }
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

/// The commit observer, called by the committer for held commits and by the writer for the
/// others, one at a time and in the order of the commits.
type SharedObserver = Arc<std::sync::Mutex<CommitObserver>>;

fn observe(observer: &SharedObserver, stats: WriterStats) {
    if let Ok(mut observe) = observer.lock() {
        observe(stats)
    }
}

/// Held requests handed to the committer, with the journal segments that hold them.
struct HeldCommit {
    held: Vec<Held>,
    rows: usize,
    segments: Vec<PathBuf>,
}

/// Work for the committer thread, done in the order sent.
enum Job {
    /// Stores held requests and records the newest journal record among them, deletes their
    /// segments, tells the observer; answers on the `done` channel.
    Held(HeldCommit),
    /// Runs on the connection (the caller waits for an answer it sends itself).
    Run(Box<dyn FnOnce(&Connection) + Send>),
    /// Stops: with a checkpoint after a shutdown, without one as a crash would.
    Stop { checkpoint: bool },
}

/// A held commit finished; if it failed, its requests come back to be committed later.
type Done = std::result::Result<(), Box<(StoreError, HeldCommit)>>;

fn committer_stopped() -> StoreError {
    StoreError::Write("the store's committer thread stopped".into())
}

/// The committer thread: owns the write connection, so that DuckDB commits of journaled requests
/// run while the writer journals the next ones.
fn commit_loop(
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
                Message::Shutdown | Message::Abandon => {}
            }
        }
        drop(rx);
        self.retry_at = None;
        if let Err(e) = self.commit_held() {
            tracing::error!(error = %e, "committing journaled requests on shutdown failed; the journal is replayed at next start");
        }
        self.stop_committer(true);
    }

    /// Stops the committer after the jobs sent before, and waits for it.
    fn stop_committer(&mut self, checkpoint: bool) {
        let _ = self.jobs.send(Job::Stop { checkpoint });
        if let Some(t) = self.committer.take() {
            let _ = t.join();
        }
    }

    /// When the held requests are to be committed, if any are held. With none held but a commit
    /// in flight, when to learn how it ended: if it failed, its requests come back to be retried,
    /// which must not wait for the next request.
    fn commit_due(&self) -> Option<Instant> {
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
    fn maybe_hand_off(&mut self) {
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

    /// Hands every held request to the committer, unless it is busy with earlier ones.
    fn hand_off(&mut self) {
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
    fn collect_done(&mut self, wait: bool) -> Option<Result<()>> {
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
    fn commit_held(&mut self) -> Result<()> {
        self.collect_done(true);
        if self.held.is_empty() {
            return Ok(());
        }
        self.hand_off();
        self.collect_done(true)
            .unwrap_or_else(|| Err(committer_stopped()))
    }

    /// Runs `f` on the write connection after every job sent before, and waits for its answer.
    fn on_connection<T: Send + 'static>(
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

    /// Appends each request of `group` to the journal, syncs it once, and acknowledges the
    /// requests it holds; their rows wait in `held` to be handed to the committer.
    fn journal_group(&mut self, group: Vec<(Queued, Ack)>) {
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

    /// The tables that store `queued`, its events numbered from `next_event_id`. New feature
    /// keys are staged: once the tables are durable the caller calls [`settle`](Self::settle),
    /// otherwise rolls the keys back. On error nothing stays staged.
    fn prepare(&mut self, queued: &[Queued]) -> Result<Prepared> {
        let batches = || queued.iter().map(|q| &q.batch);
        // Definitions not yet stored, each once.
        let mut new_resources = HashSet::new();
        let resources: Vec<_> = batches()
            .flat_map(|b| &b.resources)
            .filter(|r| {
                !self.resources.contains(&r.resource_id) && new_resources.insert(r.resource_id)
            })
            .collect();
        let mut new_scopes = HashSet::new();
        let scopes: Vec<_> = batches()
            .flat_map(|b| &b.scopes)
            .filter(|s| !self.scopes.contains(&s.scope_id) && new_scopes.insert(s.scope_id))
            .collect();
        let mut new_series = HashSet::new();
        let series: Vec<_> = batches()
            .flat_map(|b| &b.series)
            .filter(|s| !self.series.contains(&s.series_id) && new_series.insert(s.series_id))
            .collect();
        let events: usize = batches().map(|b| b.inferences.len()).sum();
        let feedback: Vec<_> = batches().flat_map(|b| &b.feedback).collect();
        let points: Vec<_> = batches().flat_map(|b| &b.points).collect();
        let distributions: Vec<_> = batches().flat_map(|b| &b.distributions).collect();
        let spans: Vec<_> = batches().flat_map(|b| &b.spans).collect();
        let logs: Vec<_> = batches().flat_map(|b| &b.logs).collect();

        let mut tables: journal::Tables = Vec::new();
        let mut one = |table, batch: std::result::Result<RecordBatch, _>| -> Result<()> {
            tables.push((table, vec![batch.map_err(columns::arrow_error)?]));
            Ok(())
        };
        if !resources.is_empty() {
            one("resources", columns::resources(&resources))?;
        }
        if !scopes.is_empty() {
            one("scopes", columns::scopes(&scopes))?;
        }
        if !series.is_empty() {
            one("metric_series", columns::series(&series))?;
        }
        if !feedback.is_empty() {
            one("feedback", columns::feedback(&feedback))?;
        }
        if !points.is_empty() {
            one("metric_points", columns::points(&points))?;
        }
        if !distributions.is_empty() {
            one(
                "metric_distributions",
                columns::distributions(&distributions),
            )?;
        }
        if !spans.is_empty() {
            one("spans", columns::spans(&spans))?;
        }
        if !logs.is_empty() {
            one("logs", columns::logs(&logs))?;
        }
        match self.inference_tables(queued, self.next_event_id) {
            Ok(inference_tables) => tables.extend(inference_tables),
            Err(e) => {
                self.feature_keys.rollback();
                return Err(e.into());
            }
        }
        Ok(Prepared {
            tables,
            taken: Taken {
                events: events as u64,
                new_resources,
                new_scopes,
                new_series,
            },
        })
    }

    /// A prepared request is durable: its feature keys, event ids and definitions are taken.
    fn settle(&mut self, taken: Taken) {
        self.feature_keys.commit();
        self.next_event_id += taken.events;
        publish(
            &self.known.resources,
            &mut self.resources,
            taken.new_resources,
        );
        publish(&self.known.scopes, &mut self.scopes, taken.new_scopes);
        publish(&self.known.series, &mut self.series, taken.new_series);
    }

    /// The `inferences`, `feature_keys` and `inference_feature_values` batches of `queued`,
    /// events numbered from `first_event_id`. Each request's columns were built before it
    /// queued; only event ids and feature key ids are added here. New feature keys are staged:
    /// the caller commits or rolls them back.
    fn inference_tables(
        &mut self,
        queued: &[Queued],
        first_event_id: u64,
    ) -> duckdb::Result<Vec<(&'static str, Vec<RecordBatch>)>> {
        let mut event_id = first_event_id;
        let mut inference_batches = Vec::new();
        let mut feature_batches = Vec::new();
        let mut key_ids = Vec::new();
        for q in queued {
            let rows = &q.batch.inferences;
            let Some(cols) = &q.inference_columns else {
                continue;
            };
            inference_batches.push(cols.inferences(event_id).map_err(columns::arrow_error)?);
            if rows.iter().any(|i| !i.features.is_empty()) {
                key_ids.clear();
                for i in rows {
                    self.feature_keys.ids_of(
                        &i.model,
                        &i.version,
                        i.features.iter().map(|(name, _)| name.as_str()),
                        &mut key_ids,
                    );
                }
                feature_batches.push(
                    cols.features(rows, event_id, &key_ids)
                        .map_err(columns::arrow_error)?,
                );
            }
            event_id += rows.len() as u64;
        }
        let mut tables = Vec::new();
        if !inference_batches.is_empty() {
            tables.push(("inferences", inference_batches));
        }
        let new_keys = self.feature_keys.staged();
        if !new_keys.is_empty() {
            let keys = columns::feature_keys(new_keys).map_err(columns::arrow_error)?;
            tables.push(("feature_keys", vec![keys]));
        }
        if !feature_batches.is_empty() {
            tables.push(("inference_feature_values", feature_batches));
        }
        Ok(tables)
    }
}

fn publish(shared: &std::sync::RwLock<HashSet<u64>>, own: &mut HashSet<u64>, new: HashSet<u64>) {
    if new.is_empty() {
        return;
    }
    if let Ok(mut s) = shared.write() {
        s.extend(new.iter().copied());
    }
    own.extend(new);
}
