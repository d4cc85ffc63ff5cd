//! The OTLP exporter: forwards what the collector receives (metrics, logs with the
//! `ml.inference` and `ml.feedback` events, spans) to an OTLP endpoint — a central Millwatch,
//! an OpenTelemetry Collector, a vendor backend — through a persistent [`disk_queue`]
//! (store-and-forward).
//!
//! The collector calls [`OtlpExporter::export`] for every accepted request before it answers
//! the client: the request is appended to the queue and fsynced, so an acknowledged request
//! survives SIGKILL and power loss. When the queue is full and its policy is `refuse`, `export`
//! fails with [`OtlpError::is_queue_full`] and the collector answers with a retryable status.
//! A sender task drains the queue in order: consecutive records of one signal are merged into
//! one request of at most `batch.max_items` items (or sent when the oldest waited
//! `batch.max_delay`), sent, and committed once the receiver answered. Retryable failures are
//! tried again with exponential backoff and jitter, honouring `Retry-After` and `RetryInfo`,
//! for as long as it takes; permanent rejections and `partial_success` are counted and logged.
//!
//! Delivery is at least once: a crash between a send and its commit sends that batch again.
//!
//! [`disk_queue`]: crate::disk_queue

mod config;
mod record;
mod routing;
mod transport;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;
use tokio::sync::{Notify, watch};

pub use config::{
    BatchConfig, Compression, ForwardedSignal, OtlpExporterConfig, OtlpProtocol, OtlpQueueConfig,
    RoutingConfig, TlsConfig, TokenSource,
};
pub use transport::TransportError;

use crate::disk_queue::{self, Batch, DiskQueue, QueueError, Record, SenderTask};
use crate::http::Backoff;
use transport::{Outcome, Request, Transport};

/// Errors of the OTLP exporter.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// The exporter cannot start with its configuration.
    #[error("OTLP exporter `{name}`: {reason}")]
    Setup {
        /// The exporter's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The queue refused the request (full) or the disk failed; nothing of it was queued.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The exporter was shut down.
    #[error("OTLP exporter is shut down")]
    Closed,
}

impl OtlpError {
    /// True when the queue is full: the client should retry later.
    pub fn is_queue_full(&self) -> bool {
        matches!(self, OtlpError::Queue(QueueError::Full { .. }))
    }
}

/// A received request to forward.
#[derive(Debug, Clone, Copy)]
pub enum Export<'a> {
    /// Metrics.
    Metrics(&'a ExportMetricsServiceRequest),
    /// Logs and events.
    Logs(&'a ExportLogsServiceRequest),
    /// Spans.
    Traces(&'a ExportTraceServiceRequest),
    /// Millwatch's own detection results, as log records (`millwatch.detection` events).
    Detections(&'a ExportLogsServiceRequest),
    /// Millwatch's own alerts, as log records (`millwatch.alert` events).
    Alerts(&'a ExportLogsServiceRequest),
}

impl Request {
    /// Data points, log records or spans.
    fn items(&self) -> u64 {
        match self {
            Request::Metrics(r) => Export::Metrics(r).items(),
            Request::Logs(r) => Export::Logs(r).items(),
            Request::Traces(r) => Export::Traces(r).items(),
        }
    }
}

impl Export<'_> {
    fn signal(&self) -> ForwardedSignal {
        match self {
            Export::Metrics(_) => ForwardedSignal::Metrics,
            Export::Logs(_) => ForwardedSignal::Logs,
            Export::Traces(_) => ForwardedSignal::Traces,
            Export::Detections(_) => ForwardedSignal::Detections,
            Export::Alerts(_) => ForwardedSignal::Alerts,
        }
    }

    /// Data points, log records or spans.
    fn items(&self) -> u64 {
        match self {
            Export::Metrics(r) => r
                .resource_metrics
                .iter()
                .flat_map(|rm| &rm.scope_metrics)
                .flat_map(|sm| &sm.metrics)
                .map(|m| match &m.data {
                    Some(Data::Gauge(g)) => g.data_points.len(),
                    Some(Data::Sum(s)) => s.data_points.len(),
                    Some(Data::Histogram(h)) => h.data_points.len(),
                    Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                    Some(Data::Summary(s)) => s.data_points.len(),
                    None => 0,
                } as u64)
                .sum(),
            Export::Logs(r) | Export::Detections(r) | Export::Alerts(r) => r
                .resource_logs
                .iter()
                .flat_map(|rl| &rl.scope_logs)
                .map(|sl| sl.log_records.len() as u64)
                .sum(),
            Export::Traces(r) => r
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .map(|ss| ss.spans.len() as u64)
                .sum(),
        }
    }
}

/// Counters of one exporter, for the collector's self-telemetry.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OtlpStats {
    /// Items accepted into the queue.
    pub items_queued: u64,
    /// Items the receiver accepted.
    pub items_sent: u64,
    /// Items the receiver refused for good (permanent error or `partial_success`); logged.
    pub items_rejected: u64,
    /// Items refused at `export` because the queue was full (policy `refuse`).
    pub items_refused_queue_full: u64,
    /// Items deleted from the queue to make room (policy `drop_oldest`).
    pub items_dropped: u64,
    /// Export requests the receiver accepted.
    pub requests_sent: u64,
    /// Tries that failed and were retried.
    pub requests_retried: u64,
    /// Items waiting in the queue.
    pub queue_items: u64,
    /// Bytes of queued records not yet delivered.
    pub queue_bytes: u64,
    /// The queue's limit.
    pub queue_max_bytes: u64,
    /// Age of the oldest queued item, seconds (0 when empty).
    pub queue_oldest_age_seconds: f64,
    /// Bytes of the queue skipped as damaged since start; the log says where.
    pub queue_skipped_bytes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    items_queued: AtomicU64,
    items_sent: AtomicU64,
    items_rejected: AtomicU64,
    items_refused_queue_full: AtomicU64,
    requests_sent: AtomicU64,
    requests_retried: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    name: String,
    queue: Mutex<DiskQueue>,
    counters: Counters,
    wake: Arc<Notify>,
    /// When the head of the queue was enqueued (Unix ms), 0 when empty.
    head_ms: AtomicI64,
    batch: BatchConfig,
    signals: Vec<ForwardedSignal>,
    origin: std::collections::BTreeMap<String, String>,
}

impl Shared {
    fn queue(&self) -> std::sync::MutexGuard<'_, DiskQueue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets `head_ms` from the queue's head (under the queue's lock).
    fn note_head(&self, q: &mut DiskQueue) {
        self.head_ms.store(head_ms(q), Ordering::Relaxed);
    }
}

/// When the queue's head was enqueued (Unix ms), 0 when the queue is empty.
fn head_ms(q: &mut DiskQueue) -> i64 {
    if q.pending_records() == 0 {
        return 0;
    }
    q.peek(0)
        .ok()
        .and_then(|b| b.records.first().and_then(record::enqueued_ms))
        .unwrap_or(0)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A running OTLP exporter.
#[derive(Debug)]
pub struct OtlpExporter {
    shared: Arc<Shared>,
    sender: SenderTask,
}

impl OtlpExporter {
    /// Reads the token, builds the client, opens the queue (a damaged tail is skipped, counted
    /// and logged; start never fails because of it) and starts the sender on the current
    /// tokio runtime, which sends whatever a previous run left queued.
    pub fn start(config: OtlpExporterConfig) -> Result<Self, OtlpError> {
        let setup = |reason: String| OtlpError::Setup {
            name: config.name.clone(),
            reason,
        };
        let token = config
            .token
            .as_ref()
            .map(TokenSource::read)
            .transpose()
            .map_err(setup)?;
        let mut endpoints = Vec::new();
        for url in config.endpoints() {
            let transport = Transport::new(&config, &url, token.as_deref()).map_err(|e| {
                setup(format!(
                    "endpoint {url}: {}",
                    crate::http::with_causes(e.to_string(), &e)
                ))
            })?;
            if endpoints.iter().any(|e: &Target| e.url == url.as_str()) {
                return Err(setup(format!(
                    "endpoint {url} is listed twice (endpoint and routing.more_endpoints)"
                )));
            }
            endpoints.push(Target {
                url: url.to_string(),
                transport,
                failures: 0,
                down_until: None,
            });
        }
        let router = Router {
            attribute: config.routing.as_ref().map(|r| r.attribute.clone()),
            endpoints,
        };
        let mut queue = DiskQueue::open(
            &config.queue.dir,
            disk_queue::Options {
                label: format!("OTLP exporter `{}`", config.name),
                max_bytes: config.queue.max_bytes.get(),
                full: config.queue.full,
            },
        )?;
        let head = head_ms(&mut queue);
        if queue.pending_records() > 0 {
            tracing::info!(
                exporter = %config.name,
                items = queue.pending_items(),
                bytes = queue.used_bytes(),
                "OTLP exporter: sending what the queue held at start"
            );
        }
        let wake = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            name: config.name.clone(),
            queue: Mutex::new(queue),
            counters: Counters::default(),
            wake: wake.clone(),
            head_ms: AtomicI64::new(head),
            batch: config.batch,
            signals: config.signals.clone(),
            origin: config.origin.clone(),
        });
        let sender = SenderTask::spawn(wake, {
            let shared = shared.clone();
            let retry = config.retry.into();
            move |stopped| send_loop(shared, router, retry, stopped)
        });
        Ok(Self { shared, sender })
    }

    /// The exporter's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The resource attributes that say where this collector's own results come from
    /// (configured `origin`).
    pub fn origin(&self) -> &std::collections::BTreeMap<String, String> {
        &self.shared.origin
    }

    /// True when this exporter forwards `signal`.
    pub fn forwards(&self, signal: ForwardedSignal) -> bool {
        self.shared.signals.contains(&signal)
    }

    /// Queues `export` durably (fsynced) and returns the number of items queued (0 when the
    /// exporter does not forward its signal). On `Err` nothing of it was queued.
    pub async fn export(&self, export: Export<'_>) -> Result<u64, OtlpError> {
        if !self.forwards(export.signal()) {
            return Ok(0);
        }
        self.export_own(export).await
    }

    /// Queues what the collector itself produces (the audit log as log records), whatever
    /// `signals` forwards; otherwise as [`OtlpExporter::export`].
    pub async fn export_own(&self, export: Export<'_>) -> Result<u64, OtlpError> {
        if self.sender.is_stopped() {
            return Err(OtlpError::Closed);
        }
        let items = export.items();
        if items == 0 {
            return Ok(0);
        }
        let payload = record::encode(export, now_ms());
        let shared = self.shared.clone();
        let count = u32::try_from(items).unwrap_or(u32::MAX);
        let appended = tokio::task::spawn_blocking(move || {
            let mut q = shared.queue();
            let dropped_before = q.dropped().0;
            let was_empty = q.pending_records() == 0;
            q.append(&[(payload, count)])?;
            if was_empty || q.dropped().0 != dropped_before {
                shared.note_head(&mut q);
            }
            Ok::<u64, QueueError>(q.pending_items())
        })
        .await
        .map_err(|_| OtlpError::Closed)?;
        let pending = match appended {
            Ok(p) => p,
            Err(e) => {
                if matches!(e, QueueError::Full { .. }) {
                    self.shared
                        .counters
                        .items_refused_queue_full
                        .fetch_add(items, Ordering::Relaxed);
                    tracing::warn!(exporter = %self.shared.name, error = %e, items, "OTLP exporter: refusing data, the queue is full");
                }
                return Err(e.into());
            }
        };
        self.shared
            .counters
            .items_queued
            .fetch_add(items, Ordering::Relaxed);
        if pending >= self.shared.batch.max_items.get() as u64 {
            self.shared.wake.notify_one();
        }
        Ok(items)
    }

    /// A handle that reads this exporter's counters from elsewhere (e.g. `/metrics`).
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle {
            shared: self.shared.clone(),
        }
    }

    /// Stops the sender after its current try; unsent data stays queued for the next start.
    pub async fn shutdown(self) {
        self.sender.shutdown().await;
    }
}

/// Waits until a batch is due: `max_items` queued, or the head waited `max_delay`. False when
/// stopped.
async fn wait_for_batch(shared: &Shared, stopped: &mut watch::Receiver<bool>) -> bool {
    loop {
        if *stopped.borrow() {
            return false;
        }
        let (pending, head_ms) = {
            let q = shared.queue();
            (q.pending_items(), shared.head_ms.load(Ordering::Relaxed))
        };
        if pending >= shared.batch.max_items.get() as u64 {
            return true;
        }
        let wait = if pending == 0 {
            Duration::from_secs(1)
        } else {
            let age = Duration::from_millis(now_ms().saturating_sub(head_ms).max(0) as u64);
            match shared.batch.max_delay.checked_sub(age) {
                None => return true,
                Some(left) if left.is_zero() => return true,
                Some(left) => left,
            }
        };
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = stopped.changed() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One endpoint of the exporter and, while it fails, when it is tried again.
struct Target {
    url: String,
    transport: Transport,
    /// Failures in a row.
    failures: u32,
    /// Data is not sent to it before then; its models go to their next endpoints.
    down_until: Option<Instant>,
}

/// The exporter's endpoints, and the attribute that picks one for each item when there are
/// several (see [`routing`]).
struct Router {
    attribute: Option<String>,
    endpoints: Vec<Target>,
}

impl Router {
    /// Splits `request` among the endpoints up now; empty when all are down.
    fn route(&self, request: Request, now: Instant) -> Vec<(usize, Request)> {
        let live: Vec<bool> = self
            .endpoints
            .iter()
            .map(|t| t.down_until.is_none_or(|until| until <= now))
            .collect();
        if !live.contains(&true) {
            return Vec::new();
        }
        match &self.attribute {
            None => {
                let first = live.iter().position(|&l| l).unwrap_or(0);
                vec![(first, request)]
            }
            Some(attribute) => {
                let urls: Vec<String> = self.endpoints.iter().map(|t| t.url.clone()).collect();
                routing::split(request, attribute, |key| {
                    routing::owner(&urls, &live, key).unwrap_or(0)
                })
                .into_iter()
                .collect()
            }
        }
    }

    /// When the first down endpoint is tried again.
    fn next_up(&self) -> Option<Instant> {
        self.endpoints.iter().filter_map(|t| t.down_until).min()
    }
}

async fn send_loop(
    shared: Arc<Shared>,
    mut router: Router,
    policy: Backoff,
    mut stopped: watch::Receiver<bool>,
) {
    while wait_for_batch(&shared, &mut stopped).await {
        let peeked = {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || {
                shared.queue().peek(shared.batch.max_items.get() as u64)
            })
            .await
        };
        let batch = match peeked {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::error!(exporter = %shared.name, error = %e, "OTLP exporter: cannot read the queue");
                tokio::time::sleep(policy.max_backoff).await;
                continue;
            }
            Err(_) => return,
        };
        if batch.records.is_empty() {
            shared.head_ms.store(0, Ordering::Relaxed);
            continue;
        }
        if !send_batch(&shared, &mut router, policy, &batch, &mut stopped).await {
            return;
        }
        let committed = {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || {
                let mut q = shared.queue();
                let r = q.commit(&batch);
                shared.note_head(&mut q);
                r
            })
            .await
        };
        match committed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(exporter = %shared.name, error = %e, "OTLP exporter: cannot advance the queue cursor");
                tokio::time::sleep(policy.max_backoff).await;
            }
            Err(_) => return,
        }
    }
}

/// Sends a peeked batch, each run of records of one signal as one request, in order (with
/// several endpoints, each model's items in order to its endpoint). A part an endpoint could
/// not take goes again to the endpoints up at that time: the same one after its backoff, or,
/// in a routed tier, the models' next endpoints meanwhile. False when stopped before every
/// request was answered.
async fn send_batch(
    shared: &Shared,
    router: &mut Router,
    policy: Backoff,
    batch: &Batch,
    stopped: &mut watch::Receiver<bool>,
) -> bool {
    let c = &shared.counters;
    let records: Vec<&Record> = batch.records.iter().collect();
    for run in records.chunk_by(|a, b| record::kind(a) == record::kind(b)) {
        let items: u64 = run.iter().map(|r| u64::from(r.items)).sum();
        let request = match record::merge(run) {
            Ok(r) => r,
            Err(e) => {
                // The checksum matched, so a bug of ours rather than disk damage.
                c.items_rejected.fetch_add(items, Ordering::Relaxed);
                tracing::error!(exporter = %shared.name, error = %e, items, "OTLP exporter: undecodable queued records skipped");
                continue;
            }
        };
        let mut unsent = vec![request];
        while let Some(request) = unsent.pop() {
            let parts = router.route(request.clone(), Instant::now());
            if parts.is_empty() {
                // Every endpoint is backing off: wait for the first to be tried again.
                unsent.push(request);
                let until = router
                    .next_up()
                    .unwrap_or_else(|| Instant::now() + policy.max_backoff);
                tokio::select! {
                    _ = tokio::time::sleep_until(until.into()) => {}
                    _ = stopped.changed() => { return false; }
                }
                continue;
            }
            for (e, part) in parts {
                let items = part.items();
                let target = &mut router.endpoints[e];
                match target.transport.send(part.clone()).await {
                    Outcome::Sent { rejected, message } => {
                        c.requests_sent.fetch_add(1, Ordering::Relaxed);
                        let rejected = rejected.clamp(0, items as i64) as u64;
                        c.items_sent.fetch_add(items - rejected, Ordering::Relaxed);
                        if rejected > 0 {
                            c.items_rejected.fetch_add(rejected, Ordering::Relaxed);
                            tracing::warn!(exporter = %shared.name, endpoint = %target.url, rejected, reason = %message, "OTLP exporter: the receiver accepted the request but rejected some items (partial success)");
                        }
                        if target.failures > 0 {
                            tracing::info!(exporter = %shared.name, endpoint = %target.url, failures = target.failures, "OTLP exporter: the endpoint takes data again");
                        }
                        target.failures = 0;
                        target.down_until = None;
                    }
                    Outcome::Rejected { reason } => {
                        c.items_rejected.fetch_add(items, Ordering::Relaxed);
                        tracing::error!(exporter = %shared.name, endpoint = %target.url, items, %reason, "OTLP exporter: the receiver refused a request for good; dropped, not retried");
                    }
                    Outcome::Retry {
                        reason,
                        retry_after,
                    } => {
                        c.requests_retried.fetch_add(1, Ordering::Relaxed);
                        let wait = policy.delay(target.failures, retry_after);
                        target.failures = target.failures.saturating_add(1);
                        target.down_until = Some(Instant::now() + wait);
                        let attempt = target.failures;
                        // Every failure of an outage's first tries, then one line in 20.
                        if attempt <= 3 || attempt.is_multiple_of(20) {
                            let others = router.endpoints.len() > 1;
                            tracing::warn!(exporter = %shared.name, endpoint = %router.endpoints[e].url, %reason, attempt, wait_ms = wait.as_millis() as u64, "OTLP exporter: will retry{}", if others { "; its models go to the other endpoints meanwhile" } else { "" });
                        }
                        unsent.push(part);
                    }
                }
            }
        }
    }
    true
}

/// Reads an OTLP exporter's counters (see [`OtlpExporter::stats_handle`]).
#[derive(Debug, Clone)]
pub struct StatsHandle {
    shared: Arc<Shared>,
}

impl StatsHandle {
    /// The exporter's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> OtlpStats {
        let c = &self.shared.counters;
        let (queue_items, queue_bytes, queue_max_bytes, queue_skipped_bytes, dropped) = {
            let q = self.shared.queue();
            (
                q.pending_items(),
                q.pending_bytes(),
                q.max_bytes(),
                q.skipped_bytes(),
                q.dropped().1,
            )
        };
        let head = self.shared.head_ms.load(Ordering::Relaxed);
        let age = if head == 0 || queue_items == 0 {
            0.0
        } else {
            (now_ms() - head).max(0) as f64 / 1000.0
        };
        OtlpStats {
            items_queued: c.items_queued.load(Ordering::Relaxed),
            items_sent: c.items_sent.load(Ordering::Relaxed),
            items_rejected: c.items_rejected.load(Ordering::Relaxed),
            items_refused_queue_full: c.items_refused_queue_full.load(Ordering::Relaxed),
            items_dropped: dropped,
            requests_sent: c.requests_sent.load(Ordering::Relaxed),
            requests_retried: c.requests_retried.load(Ordering::Relaxed),
            queue_items,
            queue_bytes,
            queue_max_bytes,
            queue_oldest_age_seconds: age,
            queue_skipped_bytes,
        }
    }
}
