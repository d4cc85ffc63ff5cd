//! Prometheus remote write 1.0 exporter: OTLP metrics translated with the same names and labels
//! as `/metrics`, queued durably on disk, batched, snappy-compressed and POSTed, retried on 5xx
//! and 429 with backoff, dropped (counted, logged) on other 4xx.
//!
//! The collector starts one [`RemoteWriteExporter`] per configured destination inside its
//! tokio runtime, calls [`RemoteWriteExporter::export`] for every accepted OTLP metrics request
//! (an `Err(QueueFull)` means: answer the sender with a retryable status), reads
//! [`RemoteWriteExporter::stats`] for its self-telemetry, and calls
//! [`RemoteWriteExporter::shutdown`] on exit. Queued data is sent after a restart.

mod client;
mod config;
pub mod proto;
mod series;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use tokio::sync::{Notify, watch};

pub use crate::disk_queue::QueueError;
pub use crate::http::ClientError;
pub use config::{AuthConfig, QueueConfig, RemoteWriteConfig, RetryConfig};

use crate::disk_queue::{self as queue, DiskQueue, SenderTask};
use crate::http::Backoff;
use crate::prometheus::TranslationConfig;
use crate::prometheus::translate::Translator;
use client::{Client, Outcome};

/// Errors of the remote-write exporter.
#[derive(Debug, thiserror::Error)]
pub enum RemoteWriteError {
    /// The HTTP client could not be set up from the configuration.
    #[error("remote write to {url}: {source}")]
    Client {
        /// The destination.
        url: String,
        /// The cause.
        #[source]
        source: ClientError,
    },
    /// The queue refused the data (full) or the disk failed; nothing of the request was queued.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The exporter was shut down.
    #[error("remote-write exporter is shut down")]
    Closed,
}

impl RemoteWriteError {
    /// True when the queue is full: the sender should retry later.
    pub fn is_queue_full(&self) -> bool {
        matches!(self, RemoteWriteError::Queue(QueueError::Full { .. }))
    }
}

type Result<T> = std::result::Result<T, RemoteWriteError>;

/// Counters of one exporter, for the collector's self-telemetry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteWriteStats {
    /// Samples accepted into the queue.
    pub samples_queued: u64,
    /// Samples the receiver accepted.
    pub samples_sent: u64,
    /// Samples the receiver refused for good (4xx other than 429); logged.
    pub samples_rejected: u64,
    /// Samples refused at `export` because the queue was full.
    pub samples_refused_queue_full: u64,
    /// OTLP points not translated (delta temporality, malformed).
    pub points_dropped: u64,
    /// HTTP requests that succeeded.
    pub requests_sent: u64,
    /// Tries that failed and were retried (5xx, 429, network).
    pub requests_retried: u64,
    /// Samples waiting in the queue.
    pub queue_samples: u64,
    /// Bytes the queue uses on disk.
    pub queue_bytes: u64,
    /// The queue's size limit in bytes.
    pub queue_max_bytes: u64,
    /// Bytes of the queue skipped as damaged since start (whatever records they held are lost;
    /// the log says where).
    pub queue_skipped_bytes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    samples_queued: AtomicU64,
    samples_sent: AtomicU64,
    samples_rejected: AtomicU64,
    samples_refused_queue_full: AtomicU64,
    points_dropped: AtomicU64,
    requests_sent: AtomicU64,
    requests_retried: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<DiskQueue>,
    translator: Translator,
    counters: Counters,
    /// Woken when a full batch is waiting, or on shutdown.
    wake: Arc<Notify>,
    /// When the oldest unsent sample was queued (for the flush interval).
    oldest: Mutex<Option<Instant>>,
    max_samples: usize,
    flush_interval: Duration,
}

impl Shared {
    fn queue(&self) -> std::sync::MutexGuard<'_, DiskQueue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running remote-write exporter.
#[derive(Debug)]
pub struct RemoteWriteExporter {
    shared: Arc<Shared>,
    url: String,
    sender: SenderTask,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl RemoteWriteExporter {
    /// Opens the queue (sending whatever a previous run left in it) and starts the sender task
    /// on the current tokio runtime. `translation` should be the exposition's
    /// (`ExpositionConfig::translation`) so both produce the same series.
    pub fn start(config: RemoteWriteConfig, translation: TranslationConfig) -> Result<Self> {
        let client = Client::new(&config).map_err(|source| RemoteWriteError::Client {
            url: config.url.to_string(),
            source,
        })?;
        let queue = DiskQueue::open(
            &config.queue.dir,
            queue::Options::refusing("remote-write", config.queue.max_bytes.get()),
        )?;
        let leftover = queue.pending_records() > 0;
        let wake = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            queue: Mutex::new(queue),
            translator: Translator::new(translation),
            counters: Counters::default(),
            wake: wake.clone(),
            oldest: Mutex::new(leftover.then(Instant::now)),
            max_samples: config.max_samples_per_send.get(),
            flush_interval: config.flush_interval,
        });
        let sender = SenderTask::spawn(wake, {
            let shared = shared.clone();
            let retry = config.retry.into();
            move |stopped| send_loop(shared, client, retry, stopped)
        });
        Ok(Self {
            shared,
            url: config.url.to_string(),
            sender,
        })
    }

    /// Translates `req` and queues its samples durably (fsynced) before returning the number
    /// of samples queued. All or nothing: on `Err` nothing of `req` was queued; when the queue
    /// is full the error says so ([`RemoteWriteError::is_queue_full`]) and the caller should
    /// answer its sender with a retryable status.
    pub async fn export(&self, req: &ExportMetricsServiceRequest) -> Result<usize> {
        if self.sender.is_stopped() {
            return Err(RemoteWriteError::Closed);
        }
        let mut sink = series::SeriesSink::new(now_ms());
        self.shared.translator.walk(req, &mut sink);
        let dropped = (sink.dropped_delta + sink.dropped_other) as u64;
        self.shared
            .counters
            .points_dropped
            .fetch_add(dropped, Ordering::Relaxed);
        let samples = sink.samples;
        if samples == 0 {
            return Ok(0);
        }
        // Records of at most `max_samples` samples each, so one record always fits a request.
        let mut records = Vec::new();
        let mut chunk = Vec::new();
        let mut in_chunk = 0usize;
        for ts in sink.series {
            in_chunk += ts.samples.len();
            chunk.push(ts);
            if in_chunk >= self.shared.max_samples {
                records.push(encode_record(std::mem::take(&mut chunk), in_chunk));
                in_chunk = 0;
            }
        }
        if !chunk.is_empty() {
            records.push(encode_record(chunk, in_chunk));
        }
        let shared = self.shared.clone();
        let appended = tokio::task::spawn_blocking(move || {
            let mut queue = shared.queue();
            queue.append(&records)?;
            Ok::<u64, QueueError>(queue.pending_items())
        })
        .await
        .map_err(|_| RemoteWriteError::Closed)?;
        let pending = match appended {
            Ok(p) => p,
            Err(e) => {
                if matches!(e, QueueError::Full { .. }) {
                    self.shared
                        .counters
                        .samples_refused_queue_full
                        .fetch_add(samples as u64, Ordering::Relaxed);
                    tracing::warn!(error = %e, samples, "remote write: refusing data");
                }
                return Err(e.into());
            }
        };
        self.shared
            .counters
            .samples_queued
            .fetch_add(samples as u64, Ordering::Relaxed);
        {
            let mut oldest = self.shared.oldest.lock().unwrap_or_else(|e| e.into_inner());
            oldest.get_or_insert_with(Instant::now);
        }
        if pending >= self.shared.max_samples as u64 {
            self.shared.wake.notify_one();
        }
        Ok(samples)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RemoteWriteStats {
        self.stats_handle().stats()
    }

    /// A handle that reads this exporter's counters from elsewhere (e.g. `/metrics`), also
    /// after the exporter has shut down.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle {
            shared: self.shared.clone(),
            url: self.url.clone(),
        }
    }

    /// Stops the sender after its current try; unsent data stays in the queue for the next
    /// start.
    pub async fn shutdown(self) {
        self.sender.shutdown().await;
    }
}

fn encode_record(series: Vec<proto::TimeSeries>, samples: usize) -> (Vec<u8>, u32) {
    let req = proto::WriteRequest { timeseries: series };
    (
        req.encode_to_vec(),
        u32::try_from(samples).unwrap_or(u32::MAX),
    )
}

/// Builds the HTTP body of a batch: records merged into one `WriteRequest`, snappy block
/// compressed.
fn build_body(records: &[queue::Record]) -> (Vec<u8>, u64) {
    let mut parts = Vec::new();
    let mut samples = 0u64;
    for r in records {
        match proto::WriteRequest::decode(&r.payload[..]) {
            Ok(req) => {
                samples += req
                    .timeseries
                    .iter()
                    .map(|t| t.samples.len() as u64)
                    .sum::<u64>();
                parts.extend(req.timeseries);
            }
            // The checksum matched, so this is a bug of ours rather than disk corruption.
            Err(e) => {
                tracing::error!(error = %e, "remote write: undecodable queued record skipped")
            }
        }
    }
    let body = series::merge(parts).encode_to_vec();
    let compressed = snap::raw::Encoder::new()
        .compress_vec(&body)
        .unwrap_or_default();
    (compressed, samples)
}

async fn send_loop(
    shared: Arc<Shared>,
    client: Client,
    policy: Backoff,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        if *stopped.borrow() {
            return;
        }
        let pending = shared.queue().pending_items();
        if pending == 0 {
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = stopped.changed() => {}
                _ = tokio::time::sleep(shared.flush_interval) => {}
            }
            continue;
        }
        if pending < shared.max_samples as u64 {
            let oldest = *shared.oldest.lock().unwrap_or_else(|e| e.into_inner());
            let due = oldest.map_or_else(Instant::now, |t| t + shared.flush_interval);
            if due > Instant::now() {
                tokio::select! {
                    _ = shared.wake.notified() => {}
                    _ = stopped.changed() => { return; }
                    _ = tokio::time::sleep_until(due.into()) => {}
                }
                continue;
            }
        }
        let peeked = {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || shared.queue().peek(shared.max_samples as u64))
                .await
        };
        let batch = match peeked {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "remote write: cannot read the queue");
                tokio::time::sleep(policy.max_backoff).await;
                continue;
            }
            Err(_) => return,
        };
        if batch.records.is_empty() {
            *shared.oldest.lock().unwrap_or_else(|e| e.into_inner()) = None;
            continue;
        }
        let (body, samples) = build_body(&batch.records);
        let mut attempt = 0u32;
        loop {
            match client.send(body.clone()).await {
                Outcome::Sent => {
                    shared
                        .counters
                        .samples_sent
                        .fetch_add(samples, Ordering::Relaxed);
                    shared
                        .counters
                        .requests_sent
                        .fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Outcome::Rejected { status, body } => {
                    shared
                        .counters
                        .samples_rejected
                        .fetch_add(samples, Ordering::Relaxed);
                    tracing::error!(status, samples, response = %body, "remote write: receiver refused a batch; dropped, not retried");
                    break;
                }
                Outcome::Retry {
                    reason,
                    retry_after,
                } => {
                    shared
                        .counters
                        .requests_retried
                        .fetch_add(1, Ordering::Relaxed);
                    let wait = policy.delay(attempt, retry_after);
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(%reason, attempt, wait_ms = wait.as_millis() as u64, "remote write: will retry");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stopped.changed() => { return; }
                    }
                }
            }
        }
        let committed = {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || {
                let mut q = shared.queue();
                q.commit(&batch)?;
                Ok::<bool, QueueError>(q.pending_records() == 0)
            })
            .await
        };
        match committed {
            Ok(Ok(empty)) => {
                let mut oldest = shared.oldest.lock().unwrap_or_else(|e| e.into_inner());
                // What is left was queued before now; send it without waiting a further interval.
                *oldest = if empty {
                    None
                } else {
                    Some(
                        Instant::now()
                            .checked_sub(shared.flush_interval)
                            .unwrap_or_else(Instant::now),
                    )
                };
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "remote write: cannot advance the queue cursor");
                tokio::time::sleep(policy.max_backoff).await;
            }
            Err(_) => return,
        }
    }
}

/// Reads a remote-write exporter's counters (see [`RemoteWriteExporter::stats_handle`]).
#[derive(Debug, Clone)]
pub struct StatsHandle {
    shared: Arc<Shared>,
    url: String,
}

impl StatsHandle {
    /// The destination URL, as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RemoteWriteStats {
        let c = &self.shared.counters;
        let (queue_samples, queue_bytes, queue_max_bytes, queue_skipped_bytes) = {
            let q = self.shared.queue();
            (
                q.pending_items(),
                q.used_bytes(),
                q.max_bytes(),
                q.skipped_bytes(),
            )
        };
        RemoteWriteStats {
            samples_queued: c.samples_queued.load(Ordering::Relaxed),
            samples_sent: c.samples_sent.load(Ordering::Relaxed),
            samples_rejected: c.samples_rejected.load(Ordering::Relaxed),
            samples_refused_queue_full: c.samples_refused_queue_full.load(Ordering::Relaxed),
            points_dropped: c.points_dropped.load(Ordering::Relaxed),
            requests_sent: c.requests_sent.load(Ordering::Relaxed),
            requests_retried: c.requests_retried.load(Ordering::Relaxed),
            queue_samples,
            queue_bytes,
            queue_max_bytes,
            queue_skipped_bytes,
        }
    }
}
