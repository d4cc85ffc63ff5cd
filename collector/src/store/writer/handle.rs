//! What senders hold: a [`StoreHandle`] that queues requests (their inference events already
//! in columns) for the writer thread, and the functions that start it.

use std::sync::Arc;
use std::sync::mpsc;

use duckdb::Connection;
use tokio::sync::oneshot;

use super::{Writer, WriterOptions, WriterStats};
use crate::signals::Batch;
use crate::signals::mapping::KnownIds;
use crate::store::{Result, StoreError, columns};

/// A request's rows on their way to the writer, with its inference events already in columns.
pub(super) struct Queued {
    pub(super) batch: Batch,
    pub(super) inference_columns: Option<columns::InferenceColumns>,
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

/// Work run on the write connection; it answers its caller itself.
pub(super) type RunJob = Box<dyn FnOnce(&Connection) + Send>;

pub(super) enum Message {
    Store {
        queued: Box<Queued>,
        ack: oneshot::Sender<Result<()>>,
    },
    /// Deletes rows whose time is before `cutoff_ns`.
    Retain {
        cutoff_ns: i64,
        done: oneshot::Sender<Result<u64>>,
    },
    /// Runs on the write connection after everything sent before: a write that must be ordered
    /// with every other (the audit log's hash chain). The closure answers its caller itself.
    Run(RunJob),
    /// Everything sent before is committed; then the database is checkpointed and closed.
    Shutdown,
    /// Stops at once, as a crash would: journaled requests stay in the journal only.
    Abandon,
}

/// Sends work to the writer thread. Dropping the last handle lets the writer drain, checkpoint
/// and stop, and waits for it: a process must not exit while the writer is inside DuckDB (its
/// static destructors then run under the committer, which crashed test binaries at exit).
/// `run` calls [`StoreHandle::shutdown`] first, so there the last drop does not wait.
#[derive(Clone)]
pub struct StoreHandle {
    // Dropped before `thread`: when the last handle's `thread` drops, no sender is left and the
    // writer sees the channel closed.
    tx: mpsc::Sender<Message>,
    thread: Arc<WriterThread>,
}

/// The writer thread, joined when the last handle goes.
struct WriterThread(std::sync::Mutex<Option<std::thread::JoinHandle<()>>>);

impl WriterThread {
    fn take(&self) -> Option<std::thread::JoinHandle<()>> {
        self.0.lock().ok().and_then(|mut t| t.take())
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        if let Some(t) = self.take()
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
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

    /// Runs `f` on the write connection, ordered after every request sent before it, and
    /// returns what it returned. `f` manages its own transaction.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> duckdb::Result<T> + Send + 'static,
    ) -> Result<T> {
        let (done, rx) = oneshot::channel();
        let job: RunJob = Box::new(move |conn: &Connection| {
            let _ = done.send(f(conn));
        });
        self.tx
            .send(Message::Run(job))
            .map_err(|_| StoreError::Closed)?;
        Ok(rx.await.map_err(|_| StoreError::Closed)??)
    }

    /// Stops the writer thread as a crash would (held requests are left in the journal, nothing
    /// is committed or checkpointed) and waits for it. For tests of the replay at start.
    #[doc(hidden)]
    pub fn abandon(&self) {
        let _ = self.tx.send(Message::Abandon);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Commits everything queued so far, closes the database and waits for the writer thread.
    /// Requests sent after this get [`StoreError::Closed`].
    pub fn shutdown(&self) {
        let _ = self.tx.send(Message::Shutdown);
        if let Some(t) = self.thread.take() {
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
        thread: Arc::new(WriterThread(std::sync::Mutex::new(Some(thread)))),
    })
}
