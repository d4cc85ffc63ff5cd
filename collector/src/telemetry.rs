//! The collector's own health as numbers: what each receiver accepted, refused and stored, how
//! full the queue is, how long commits take, and what the journal lost. Served on `/metrics`
//! and `/api/v1/stats`.

pub mod otlp;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use millwatch_exporters::prometheus::{ExpositionError, MetricsExposition, OwnFamily, OwnType};
use millwatch_exporters::remote_write::StatsHandle;

use crate::store::replay::{self, Replayed};

/// Which OTLP signal a request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Metrics,
    Logs,
    Traces,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Metrics, Signal::Logs, Signal::Traces];
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
            Signal::Traces => "traces",
        }
    }
}

/// How a request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Grpc, Protocol::HttpProtobuf, Protocol::HttpJson];
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http_protobuf",
            Protocol::HttpJson => "http_json",
        }
    }
}

/// Why a whole request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Undecodable protobuf or JSON.
    Malformed,
    /// Over the body limit, before or after decompression.
    TooLarge,
    /// A content type or encoding OTLP does not define.
    UnsupportedMediaType,
    /// The queue was full: the client should retry.
    QueueFull,
    /// The store could not commit.
    StoreFailed,
}

impl Refusal {
    pub const ALL: [Refusal; 5] = [
        Refusal::Malformed,
        Refusal::TooLarge,
        Refusal::UnsupportedMediaType,
        Refusal::QueueFull,
        Refusal::StoreFailed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::TooLarge => "too_large",
            Refusal::UnsupportedMediaType => "unsupported_media_type",
            Refusal::QueueFull => "queue_full",
            Refusal::StoreFailed => "store_failed",
        }
    }
}

/// Upper bounds (seconds) of the commit-latency histogram.
pub const COMMIT_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
struct PerReceiver {
    requests: AtomicU64,
    items_received: AtomicU64,
    items_stored: AtomicU64,
    items_rejected: AtomicU64,
    refused: [AtomicU64; 5],
}

/// All counters; one instance per process, shared by reference.
#[derive(Default)]
pub struct Telemetry {
    receivers: [[PerReceiver; 3]; 3],
    pub queue_items: AtomicU64,
    pub queue_capacity: AtomicU64,
    /// Rows acknowledged from the store's journal and not yet committed to DuckDB (set by the
    /// writer), and how many it holds before it refuses requests.
    pub journal_rows: Arc<AtomicU64>,
    pub journal_capacity: AtomicU64,
    /// What the replay of the store's journal found when the store opened (set once, before
    /// ingest starts).
    pub journal_replay: OnceLock<Replayed>,
    commits: AtomicU64,
    commit_rows: AtomicU64,
    commit_seconds_micros: AtomicU64,
    /// Per-bucket (not cumulative) commit counts; the last bucket is `+Inf`.
    commit_buckets: [AtomicU64; COMMIT_BUCKETS.len() + 1],
}

fn index(signal: Signal) -> usize {
    signal as usize
}

impl Telemetry {
    fn at(&self, signal: Signal, protocol: Protocol) -> &PerReceiver {
        &self.receivers[index(signal)][protocol as usize]
    }

    pub fn received(&self, signal: Signal, protocol: Protocol, items: usize) {
        let r = self.at(signal, protocol);
        r.requests.fetch_add(1, Relaxed);
        r.items_received.fetch_add(items as u64, Relaxed);
    }

    pub fn stored(&self, signal: Signal, protocol: Protocol, items: usize, rejected: i64) {
        let r = self.at(signal, protocol);
        r.items_stored.fetch_add(items as u64, Relaxed);
        r.items_rejected.fetch_add(rejected.max(0) as u64, Relaxed);
    }

    pub fn refused(&self, signal: Signal, protocol: Protocol, why: Refusal) {
        self.at(signal, protocol).refused[why as usize].fetch_add(1, Relaxed);
    }

    pub fn committed(&self, rows: usize, seconds: f64) {
        self.commits.fetch_add(1, Relaxed);
        self.commit_rows.fetch_add(rows as u64, Relaxed);
        self.commit_seconds_micros
            .fetch_add((seconds * 1e6) as u64, Relaxed);
        let bucket = COMMIT_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(COMMIT_BUCKETS.len());
        self.commit_buckets[bucket].fetch_add(1, Relaxed);
    }

    /// A consistent-enough copy for rendering.
    pub fn snapshot(&self) -> Snapshot {
        let mut receivers = Vec::new();
        for signal in Signal::ALL {
            for protocol in Protocol::ALL {
                let r = self.at(signal, protocol);
                receivers.push(ReceiverSnapshot {
                    signal,
                    protocol,
                    requests: r.requests.load(Relaxed),
                    items_received: r.items_received.load(Relaxed),
                    items_stored: r.items_stored.load(Relaxed),
                    items_rejected: r.items_rejected.load(Relaxed),
                    refused: Refusal::ALL.map(|w| (w, r.refused[w as usize].load(Relaxed))),
                });
            }
        }
        let (journal_lost_records, journal_quarantined_segments) =
            self.journal_replay.get().map_or((0, 0), |r| {
                // Counted each time: the count drops once an operator removes what was inspected.
                (
                    r.lost_records(),
                    replay::quarantined_segments(&r.quarantine),
                )
            });
        Snapshot {
            receivers,
            queue_items: self.queue_items.load(Relaxed),
            queue_capacity: self.queue_capacity.load(Relaxed),
            journal_rows: self.journal_rows.load(Relaxed),
            journal_capacity: self.journal_capacity.load(Relaxed),
            journal_lost_records,
            journal_quarantined_segments,
            commits: self.commits.load(Relaxed),
            commit_rows: self.commit_rows.load(Relaxed),
            commit_seconds: self.commit_seconds_micros.load(Relaxed) as f64 / 1e6,
            commit_buckets: std::array::from_fn(|i| self.commit_buckets[i].load(Relaxed)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReceiverSnapshot {
    pub signal: Signal,
    pub protocol: Protocol,
    pub requests: u64,
    pub items_received: u64,
    pub items_stored: u64,
    pub items_rejected: u64,
    pub refused: [(Refusal, u64); 5],
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub receivers: Vec<ReceiverSnapshot>,
    pub queue_items: u64,
    pub queue_capacity: u64,
    pub journal_rows: u64,
    pub journal_capacity: u64,
    /// Journal records (acknowledged requests) the replay at start could not read.
    pub journal_lost_records: u64,
    /// Damaged journal segments kept in `journal/quarantine/`.
    pub journal_quarantined_segments: u64,
    pub commits: u64,
    pub commit_rows: u64,
    pub commit_seconds: f64,
    /// Per-bucket commit counts, the last for `+Inf`.
    pub commit_buckets: [u64; COMMIT_BUCKETS.len() + 1],
}

/// The collector's own series on `/metrics`, refreshed from a [`Snapshot`] at each scrape so the
/// ingest path only touches atomics.
pub struct SelfMetrics {
    requests: OwnFamily,
    items_received: OwnFamily,
    items_stored: OwnFamily,
    items_rejected: OwnFamily,
    refused: OwnFamily,
    queue_rows: OwnFamily,
    queue_capacity: OwnFamily,
    journal_rows: OwnFamily,
    journal_capacity: OwnFamily,
    journal_lost_records: OwnFamily,
    journal_quarantined_segments: OwnFamily,
    commits: OwnFamily,
    committed_rows: OwnFamily,
    commit_duration: OwnFamily,
    remote_write: RemoteWriteFamilies,
    /// The OTLP exporters' series.
    pub otlp: otlp::OtlpFamilies,
}

/// Per remote-write target (label `url`): what it queued, sent, lost and holds.
struct RemoteWriteFamilies {
    samples_queued: OwnFamily,
    samples_sent: OwnFamily,
    samples_rejected: OwnFamily,
    samples_refused: OwnFamily,
    requests_retried: OwnFamily,
    queue_bytes: OwnFamily,
    queue_max_bytes: OwnFamily,
    queue_samples: OwnFamily,
    queue_skipped_bytes: OwnFamily,
}

impl SelfMetrics {
    pub fn register(exposition: &MetricsExposition) -> Result<Self, ExpositionError> {
        use OwnType::{Counter, Gauge, Histogram};
        let r = |name: &str, help: &str, ty| exposition.register(name, help, ty);
        Ok(SelfMetrics {
            requests: r(
                "millwatch_receiver_requests_total",
                "OTLP export requests received.",
                Counter,
            )?,
            items_received: r(
                "millwatch_receiver_items_received_total",
                "Items (data points, log records, spans) received.",
                Counter,
            )?,
            items_stored: r(
                "millwatch_receiver_items_stored_total",
                "Items committed to the store and acknowledged.",
                Counter,
            )?,
            items_rejected: r(
                "millwatch_receiver_items_rejected_total",
                "Items rejected within accepted requests (OTLP partial success).",
                Counter,
            )?,
            refused: r(
                "millwatch_receiver_requests_refused_total",
                "Whole requests refused, by reason (malformed, too_large, unsupported_media_type, queue_full, store_failed).",
                Counter,
            )?,
            queue_rows: r("millwatch_queue_rows", "Rows waiting for the store.", Gauge)?,
            queue_capacity: r(
                "millwatch_queue_capacity_rows",
                "Rows the queue holds before requests are refused with a retry hint.",
                Gauge,
            )?,
            journal_rows: r(
                "millwatch_store_journal_rows",
                "Rows acknowledged from the store's journal, waiting for their DuckDB commit.",
                Gauge,
            )?,
            journal_capacity: r(
                "millwatch_store_journal_capacity_rows",
                "Journaled rows the writer holds before it refuses requests (store failing to commit).",
                Gauge,
            )?,
            journal_lost_records: r(
                "millwatch_store_journal_lost_records_total",
                "Journal records (one per acknowledged request) the replay at start could not read: lost. The log names their seq numbers.",
                Counter,
            )?,
            journal_quarantined_segments: r(
                "millwatch_store_journal_quarantined_segments",
                "Damaged journal segments kept in journal/quarantine/ for inspection.",
                Gauge,
            )?,
            commits: r(
                "millwatch_store_commits_total",
                "Group commits to DuckDB.",
                Counter,
            )?,
            committed_rows: r(
                "millwatch_store_committed_rows_total",
                "Rows committed to DuckDB.",
                Counter,
            )?,
            commit_duration: r(
                "millwatch_store_commit_duration_seconds",
                "How long each group commit to DuckDB took.",
                Histogram,
            )?,
            remote_write: RemoteWriteFamilies {
                samples_queued: r(
                    "millwatch_remote_write_samples_queued_total",
                    "Samples written to the remote-write disk queue.",
                    Counter,
                )?,
                samples_sent: r(
                    "millwatch_remote_write_samples_sent_total",
                    "Samples the remote-write receiver accepted.",
                    Counter,
                )?,
                samples_rejected: r(
                    "millwatch_remote_write_samples_rejected_total",
                    "Samples the receiver refused for good (4xx other than 429).",
                    Counter,
                )?,
                samples_refused: r(
                    "millwatch_remote_write_samples_refused_queue_full_total",
                    "Samples not queued because the disk queue was full (their request was refused with a retry hint).",
                    Counter,
                )?,
                requests_retried: r(
                    "millwatch_remote_write_requests_retried_total",
                    "Remote-write sends that failed and were retried (5xx, 429, network).",
                    Counter,
                )?,
                queue_bytes: r(
                    "millwatch_remote_write_queue_bytes",
                    "Bytes the remote-write disk queue uses.",
                    Gauge,
                )?,
                queue_max_bytes: r(
                    "millwatch_remote_write_queue_max_bytes",
                    "The remote-write disk queue's size limit.",
                    Gauge,
                )?,
                queue_samples: r(
                    "millwatch_remote_write_queue_samples",
                    "Samples waiting in the remote-write disk queue.",
                    Gauge,
                )?,
                queue_skipped_bytes: r(
                    "millwatch_remote_write_queue_skipped_bytes_total",
                    "Bytes of the remote-write disk queue skipped as damaged (torn or corrupt records, whose samples are lost); the log names the segment file and offset.",
                    Counter,
                )?,
            },
            otlp: otlp::OtlpFamilies::register(exposition)?,
        })
    }

    /// Sets each remote-write target's series from its counters.
    pub fn publish_remote_write(&self, targets: &[StatsHandle]) {
        let f = &self.remote_write;
        for t in targets {
            let s = t.stats();
            let labels = [("url", t.url())];
            f.samples_queued.set(&labels, s.samples_queued as f64);
            f.samples_sent.set(&labels, s.samples_sent as f64);
            f.samples_rejected.set(&labels, s.samples_rejected as f64);
            f.samples_refused
                .set(&labels, s.samples_refused_queue_full as f64);
            f.requests_retried.set(&labels, s.requests_retried as f64);
            f.queue_bytes.set(&labels, s.queue_bytes as f64);
            f.queue_max_bytes.set(&labels, s.queue_max_bytes as f64);
            f.queue_samples.set(&labels, s.queue_samples as f64);
            f.queue_skipped_bytes
                .set(&labels, s.queue_skipped_bytes as f64);
        }
    }

    pub fn publish(&self, snap: &Snapshot) {
        for r in &snap.receivers {
            let labels = [
                ("signal", r.signal.as_str()),
                ("protocol", r.protocol.as_str()),
            ];
            self.requests.set(&labels, r.requests as f64);
            self.items_received.set(&labels, r.items_received as f64);
            self.items_stored.set(&labels, r.items_stored as f64);
            self.items_rejected.set(&labels, r.items_rejected as f64);
            for (why, n) in &r.refused {
                let labels = [
                    ("signal", r.signal.as_str()),
                    ("protocol", r.protocol.as_str()),
                    ("reason", why.as_str()),
                ];
                self.refused.set(&labels, *n as f64);
            }
        }
        self.queue_rows.set(&[], snap.queue_items as f64);
        self.queue_capacity.set(&[], snap.queue_capacity as f64);
        self.journal_rows.set(&[], snap.journal_rows as f64);
        self.journal_capacity.set(&[], snap.journal_capacity as f64);
        self.journal_lost_records
            .set(&[], snap.journal_lost_records as f64);
        self.journal_quarantined_segments
            .set(&[], snap.journal_quarantined_segments as f64);
        self.commits.set(&[], snap.commits as f64);
        self.committed_rows.set(&[], snap.commit_rows as f64);
        self.commit_duration.set_histogram(
            &[],
            &COMMIT_BUCKETS,
            &snap.commit_buckets,
            snap.commit_seconds,
        );
    }
}
