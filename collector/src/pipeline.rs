//! From a decoded OTLP request to an acknowledgement: map to signals, take room in the bounded
//! queue (or refuse with a retry hint), store, and count. Receivers of every protocol call this.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use millwatch_exporters::otlp::{Export, OtlpError, OtlpExporter};
use millwatch_exporters::prometheus::MetricsExposition;
use millwatch_exporters::remote_write::{RemoteWriteError, RemoteWriteExporter};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::sync::Semaphore;

use crate::signals::mapping::KnownIds;
use crate::signals::{self, Batch, Rejections};
use crate::store::{StoreError, StoreHandle};
use crate::telemetry::{Protocol, Refusal, Signal, Telemetry};

/// Why a request was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(
        "the ingest queue is full ({queued} of {capacity} rows queued); retry after {retry_after:?}"
    )]
    QueueFull {
        queued: u64,
        capacity: u64,
        retry_after: Duration,
    },
    #[error("the data could not be stored: {0}")]
    Store(#[from] StoreError),
    /// A remote-write target could not queue the request (its disk queue is full, or the disk
    /// failed); nothing of the request was stored, so the client's retry loses nothing.
    #[error("remote write cannot take the request: {0}")]
    Forward(#[from] RemoteWriteError),
    /// An OTLP exporter could not queue the request (its disk queue is full with policy
    /// `refuse`, or the disk failed); nothing of the request was stored. Answered with 503 and
    /// `Retry-After` (gRPC UNAVAILABLE), which OTLP clients retry.
    #[error("forwarding cannot take the request: {0}")]
    Uplink(#[from] OtlpError),
}

impl IngestError {
    /// True when the client is being told to slow down (a full queue) rather than that
    /// something failed.
    pub fn is_backpressure(&self) -> bool {
        match self {
            IngestError::QueueFull { .. } => true,
            IngestError::Forward(e) => e.is_queue_full(),
            IngestError::Store(_) | IngestError::Uplink(_) => false,
        }
    }
}

/// What an acknowledged request reports back: items rejected within it (OTLP partial success).
#[derive(Debug, Default)]
pub struct Accepted {
    pub rejected: i64,
    pub message: String,
}

pub struct Ingest {
    store: StoreHandle,
    known: Arc<KnownIds>,
    queue: Arc<Semaphore>,
    capacity: usize,
    retry_after: Duration,
    pub telemetry: Arc<Telemetry>,
    /// Stored metrics also go to `/metrics` and to every remote-write target.
    pub exposition: Option<MetricsExposition>,
    pub remote_write: Vec<RemoteWriteExporter>,
    /// Every received request also goes to each OTLP exporter's disk queue, before it is
    /// stored and acknowledged.
    pub otlp: Vec<OtlpExporter>,
}

impl Ingest {
    pub fn new(
        store: StoreHandle,
        known: Arc<KnownIds>,
        telemetry: Arc<Telemetry>,
        max_queued_rows: usize,
        retry_after: Duration,
    ) -> Self {
        telemetry
            .queue_capacity
            .store(max_queued_rows as u64, Relaxed);
        Ingest {
            store,
            known,
            queue: Arc::new(Semaphore::new(max_queued_rows)),
            capacity: max_queued_rows,
            retry_after,
            telemetry,
            exposition: None,
            remote_write: Vec::new(),
            otlp: Vec::new(),
        }
    }

    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    pub async fn metrics(
        &self,
        req: &ExportMetricsServiceRequest,
        protocol: Protocol,
    ) -> Result<Accepted, IngestError> {
        let (batch, rejections) = signals::map_metrics(req, &self.known, now_ns());
        self.forward(
            Export::Metrics(req),
            Signal::Metrics,
            protocol,
            batch.items(),
        )
        .await?;
        // Remote-write queues first: a full one refuses the request before anything is stored,
        // so the client's retry duplicates nothing in DuckDB. A target that queued it already
        // gets the retry's samples again, with the same timestamps and values, which
        // Prometheus-compatible receivers take as duplicates.
        for target in &self.remote_write {
            if let Err(e) = target.export(req).await {
                let why = if e.is_queue_full() {
                    Refusal::QueueFull
                } else {
                    Refusal::StoreFailed
                };
                self.telemetry
                    .received(Signal::Metrics, protocol, batch.items());
                self.telemetry.refused(Signal::Metrics, protocol, why);
                return Err(e.into());
            }
        }
        let accepted = self
            .submit(Signal::Metrics, protocol, batch, rejections)
            .await?;
        if let Some(exposition) = &self.exposition {
            exposition.ingest(req, Instant::now());
        }
        Ok(accepted)
    }

    pub async fn logs(
        &self,
        req: &ExportLogsServiceRequest,
        protocol: Protocol,
    ) -> Result<Accepted, IngestError> {
        let (batch, rejections) = signals::map_logs(req, &self.known, now_ns());
        self.forward(Export::Logs(req), Signal::Logs, protocol, batch.items())
            .await?;
        self.submit(Signal::Logs, protocol, batch, rejections).await
    }

    pub async fn traces(
        &self,
        req: &ExportTraceServiceRequest,
        protocol: Protocol,
    ) -> Result<Accepted, IngestError> {
        let (batch, rejections) = signals::map_traces(req, &self.known, now_ns());
        self.forward(Export::Traces(req), Signal::Traces, protocol, batch.items())
            .await?;
        self.submit(Signal::Traces, protocol, batch, rejections)
            .await
    }

    /// Queues the request in every OTLP exporter before anything is stored: a full queue
    /// refuses it whole, so the client's retry duplicates nothing locally. (With several
    /// exporters, one that queued it already gets the retry again.)
    async fn forward(
        &self,
        export: Export<'_>,
        signal: Signal,
        protocol: Protocol,
        items: usize,
    ) -> Result<(), IngestError> {
        for exporter in &self.otlp {
            if let Err(e) = exporter.export(export).await {
                let why = if e.is_queue_full() {
                    Refusal::QueueFull
                } else {
                    Refusal::StoreFailed
                };
                self.telemetry.received(signal, protocol, items);
                self.telemetry.refused(signal, protocol, why);
                return Err(e.into());
            }
        }
        Ok(())
    }

    async fn submit(
        &self,
        signal: Signal,
        protocol: Protocol,
        batch: Batch,
        rejections: Rejections,
    ) -> Result<Accepted, IngestError> {
        let items = batch.items();
        self.telemetry
            .received(signal, protocol, items + rejections.count.max(0) as usize);
        let accepted = Accepted {
            rejected: rejections.count,
            message: rejections.message(),
        };
        if batch.is_empty() {
            self.telemetry.stored(signal, protocol, 0, rejections.count);
            return Ok(accepted);
        }
        // A request larger than the whole queue takes all of it rather than never fitting.
        let rows = batch.rows().clamp(1, self.capacity) as u32;
        let Ok(permit) = self.queue.try_acquire_many(rows) else {
            self.telemetry.refused(signal, protocol, Refusal::QueueFull);
            let queued = (self.capacity - self.queue.available_permits()) as u64;
            return Err(IngestError::QueueFull {
                queued,
                capacity: self.capacity as u64,
                retry_after: self.retry_after,
            });
        };
        self.telemetry
            .queue_items
            .fetch_add(u64::from(rows), Relaxed);
        let result = self.store.store(batch).await;
        self.telemetry
            .queue_items
            .fetch_sub(u64::from(rows), Relaxed);
        drop(permit);
        match result {
            Ok(()) => {
                self.telemetry
                    .stored(signal, protocol, items, rejections.count);
                Ok(accepted)
            }
            Err(e) => {
                self.telemetry
                    .refused(signal, protocol, Refusal::StoreFailed);
                Err(e.into())
            }
        }
    }
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
