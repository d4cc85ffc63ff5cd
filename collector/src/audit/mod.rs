//! The audit trail: an append-only log in DuckDB (`audit_log`) of what Millwatch and its users
//! did — deployments, baselines, detector state changes, alerts, notifications, silences,
//! configuration loads, annotations — each entry chained to the one before by a SHA-256 hash,
//! so that a changed or deleted entry is found (`millwatch audit verify`).
//!
//! Every entry is written through the store's single writer ([`crate::store::StoreHandle::run`])
//! so the chain has one order. Data retention never touches the log; its own retention
//! (`audit.retention`, never shorter than `store.retention`) deletes the oldest entries and
//! records where the kept chain starts.
//!
//! Layout: `entry` (an entry, its canonical content and hash), `chain` (append, verify, head,
//! prune), `watch` (entries learnt from the tables other parts write), `registry` (where each
//! model version ran; deployments), `config_entry` (configuration loaded), `query` (listing
//! and exporting), `api` (HTTP), `cli` (`millwatch audit`, `millwatch annotate`).

pub mod api;
pub mod chain;
pub mod cli;
pub mod config_entry;
pub mod entry;
pub mod otlp;
pub mod query;
pub mod registry;
pub mod watch;

use std::time::Duration;

use duckdb::Connection;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use chain::{Head, Verification};
pub use entry::{Entry, NewEntry};

use crate::store::StoreHandle;

/// The `audit:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Audit entries older than this are deleted (the deletion is itself an entry); `null`
    /// keeps them forever. Never shorter than `store.retention`: the longer of the two is used.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "Option<millwatch_exporters::units::DurationText>")]
    pub retention: Option<Duration>,
    /// How often the tables other parts write (detections, baselines, alerts, deliveries,
    /// silences, `ml.deployment` events, inference events) are read for new entries while
    /// they change. A round that finds nothing doubles the wait, up to `idle_poll_interval`;
    /// stored events, a silence's end and the head's time bring it back.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub poll_interval: Duration,
    /// The longest wait between two reads while nothing changes (never shorter than
    /// `poll_interval`). An acknowledgement or a delivery is recorded within it.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub idle_poll_interval: Duration,
    /// How often the chain's head (newest sequence number and hash) is written into the log
    /// (also at every start), so that an exported head can be checked later.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub head_interval: Duration,
    /// Names of `exporters.otlp` entries the audit log is also sent to, entry by entry, as
    /// OTLP log records (event name `millwatch.audit`) through their disk queues.
    pub otlp_exporters: Vec<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention: Some(Duration::from_secs(400 * 24 * 3600)),
            poll_interval: Duration::from_secs(2),
            idle_poll_interval: Duration::from_secs(30),
            head_interval: Duration::from_secs(3600),
            otlp_exporters: Vec::new(),
        }
    }
}

impl AuditConfig {
    /// The retention used: the longer of `audit.retention` and the data's (`None`: forever).
    pub fn effective_retention(&self, data: Option<Duration>) -> Option<Duration> {
        match (self.retention, data) {
            (Some(a), Some(d)) => Some(a.max(d)),
            _ => None,
        }
    }
}

/// What is wrong with the `audit:` section against the rest of the configuration.
pub fn check(config: &crate::config::Config) -> Vec<crate::config::load::Problem> {
    let known: Vec<&str> = config
        .exporters
        .otlp
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    config
        .audit
        .otlp_exporters
        .iter()
        .enumerate()
        .filter(|(_, name)| !known.contains(&name.as_str()))
        .map(|(i, name)| crate::config::load::Problem {
            path: format!("audit.otlp_exporters[{i}]"),
            message: format!("unknown OTLP exporter `{name}`"),
            hint: Some(if known.is_empty() {
                "configure it under `exporters.otlp` (with its `name`)".into()
            } else {
                format!("name one of `exporters.otlp`: {}", known.join(", "))
            }),
        })
        .collect()
}

/// Writes entries into the chain through the store's writer.
#[derive(Clone)]
pub struct AuditLog {
    store: StoreHandle,
    /// Counts the writes, for those who wait for new entries.
    written: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

impl AuditLog {
    pub fn new(store: StoreHandle) -> AuditLog {
        AuditLog {
            store,
            written: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    /// Changes after every write through this log (or a clone of it).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.written.subscribe()
    }

    /// Runs `f` in one transaction on the write connection, after everything sent before.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> duckdb::Result<T> + Send + 'static,
    ) -> crate::store::Result<T> {
        let done = self
            .store
            .run(move |c| {
                c.execute_batch("BEGIN TRANSACTION")?;
                match f(c) {
                    Ok(t) => {
                        c.execute_batch("COMMIT")?;
                        Ok(t)
                    }
                    Err(e) => {
                        let _ = c.execute_batch("ROLLBACK");
                        Err(e)
                    }
                }
            })
            .await;
        if done.is_ok() {
            self.written.send_modify(|n| *n = n.wrapping_add(1));
        }
        done
    }

    /// Appends entries; returns them as stored.
    pub async fn record(&self, entries: Vec<NewEntry>) -> crate::store::Result<Vec<Entry>> {
        self.write(move |c| chain::append(c, entries)).await
    }

    /// Writes the current head into the log as an `audit.head` entry.
    pub async fn record_head(&self, now: i64) -> crate::store::Result<Head> {
        self.write(move |c| {
            let head = chain::head(c)?;
            let entry = NewEntry::system(now, HEAD, json!({ "table": "audit_log" }))
                .new_value(json!({ "seq": head.seq, "hash": head.hash }));
            chain::append(c, vec![entry])?;
            chain::head(c)
        })
        .await
    }
}

/// The action of the entries that record the chain's head.
pub const HEAD: &str = "audit.head";

/// Where the audit watcher's state is kept in `audit_watch`.
const STATE_KEY: &str = "state";

/// The watcher's state, and the registry's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct Watching {
    watch: watch::WatchState,
    registry: registry::RegistryState,
}

fn load_watching(conn: &Connection) -> duckdb::Result<Watching> {
    Ok(match load_watch_value(conn, STATE_KEY)? {
        Some(t) => serde_json::from_str(&t).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the audit watcher's saved state is unreadable; reading the tables from the start");
            Watching::default()
        }),
        None => Watching::default(),
    })
}

/// The value kept under `key` in `audit_watch`, if any.
pub(crate) fn load_watch_value(conn: &Connection, key: &str) -> duckdb::Result<Option<String>> {
    match conn.query_row(
        "SELECT CAST(value AS VARCHAR) FROM audit_watch WHERE key = ?",
        [key],
        |r| r.get::<_, String>(0),
    ) {
        Ok(t) => Ok(Some(t)),
        Err(duckdb::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn save_watch_value(conn: &Connection, key: &str, value: &str) -> duckdb::Result<()> {
    conn.execute(
        "INSERT INTO audit_watch VALUES (?, ?) ON CONFLICT DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

/// A background task of the audit trail that is told to stop, does its last round and is
/// waited for (the watcher, the report scheduler, the OTLP copy).
pub struct Task {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Task {
    /// Runs `f` with the receiver that turns true when it must stop.
    pub fn spawn<F>(f: impl FnOnce(tokio::sync::watch::Receiver<bool>) -> F) -> Task
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        Task {
            stop,
            task: tokio::spawn(f(stopped)),
        }
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The running audit watcher.
pub struct AuditHandle {
    pub log: AuditLog,
    task: Task,
}

impl AuditHandle {
    /// Reads the tables once more (what happened during shutdown) and stops.
    pub async fn shutdown(self) {
        self.task.shutdown().await;
    }
}

/// What the watcher needs to know.
pub struct Settings {
    pub config: AuditConfig,
    pub data_retention: Option<Duration>,
    pub retention_interval: Duration,
    pub recipients: watch::Recipients,
    /// Notified when the store committed something (new events to read).
    pub stored: std::sync::Arc<tokio::sync::Notify>,
}

/// Starts the audit trail: writes the head and the configuration entry, then watches the
/// tables every `poll_interval`, less often while nothing changes. `reader` is a connection of its own for reading.
pub async fn start(
    store: StoreHandle,
    reader: Connection,
    settings: Settings,
    config_loaded: NewEntry,
    config_flat: String,
) -> crate::store::Result<AuditHandle> {
    let log = AuditLog::new(store);
    log.record_head(now_ns()).await?;
    log.write(move |c| config_entry::record(c, config_loaded, &config_flat))
        .await?;
    let reader = std::sync::Arc::new(std::sync::Mutex::new(reader));
    let watching = {
        let reader = reader.clone();
        tokio::task::spawn_blocking(move || match reader.lock() {
            Ok(c) => load_watching(&c),
            Err(_) => Ok(Watching::default()),
        })
        .await
        .map_err(|e| crate::store::StoreError::Write(e.to_string()))??
    };
    let task = {
        let log = log.clone();
        Task::spawn(move |mut stopped| async move {
            let mut watcher = Watcher {
                log,
                reader,
                watching,
                settings,
            };
            let poll = watcher.settings.config.poll_interval;
            let idle_max = watcher.settings.config.idle_poll_interval.max(poll);
            let stored = watcher.settings.stored.clone();
            let mut head_at = tokio::time::Instant::now();
            let mut pruned_at: Option<tokio::time::Instant> = None;
            let mut idle = poll;
            loop {
                // One round per `poll` at most; past it, a commit ends an idle wait early.
                let mut stopping = tokio::select! {
                    _ = tokio::time::sleep(poll) => false,
                    _ = stopped.wait_for(|s| *s) => true,
                };
                let head_due = watcher
                    .settings
                    .config
                    .head_interval
                    .saturating_sub(head_at.elapsed());
                let rest = idle
                    .min(watcher.until_silence_ends())
                    .min(head_due)
                    .saturating_sub(poll);
                if !stopping && !rest.is_zero() {
                    stopping = tokio::select! {
                        _ = tokio::time::sleep(rest) => false,
                        _ = stored.notified() => false,
                        _ = stopped.wait_for(|s| *s) => true,
                    };
                }
                match watcher.round().await {
                    Ok(true) => idle = poll,
                    Ok(false) => idle = (idle * 2).min(idle_max),
                    Err(e) => {
                        tracing::warn!(error = %e, "audit watcher round failed; retried next round")
                    }
                }
                if stopping {
                    return;
                }
                if head_at.elapsed() >= watcher.settings.config.head_interval {
                    head_at = tokio::time::Instant::now();
                    if let Err(e) = watcher.log.record_head(now_ns()).await {
                        tracing::warn!(error = %e, "writing the audit head failed");
                    }
                }
                if pruned_at.is_none_or(|t| t.elapsed() >= watcher.settings.retention_interval) {
                    pruned_at = Some(tokio::time::Instant::now());
                    watcher.prune().await;
                }
            }
        })
    };
    Ok(AuditHandle { log, task })
}

struct Watcher {
    log: AuditLog,
    reader: std::sync::Arc<std::sync::Mutex<Connection>>,
    watching: Watching,
    settings: Settings,
}

impl Watcher {
    /// How long until the next silence seen ends (its expiry is an entry).
    fn until_silence_ends(&self) -> Duration {
        let now = now_ns();
        self.watching
            .watch
            .silences
            .values()
            .filter(|s| !s.expired)
            .map(|s| Duration::from_nanos(s.ends_at.saturating_sub(now).max(0) as u64))
            .min()
            .unwrap_or(Duration::MAX)
    }

    /// Reads every source once; true when something was new.
    async fn round(&mut self) -> anyhow::Result<bool> {
        let reader = self.reader.clone();
        let before = self.watching.clone();
        let recipients = self.settings.recipients.clone();
        let (entries, after, seen) = tokio::task::spawn_blocking(move || {
            let c = reader
                .lock()
                .map_err(|_| anyhow::anyhow!("the audit reader is unusable after a panic"))?;
            let now = now_ns();
            let (mut entries, watch) = watch::round(&c, &before.watch, &recipients, now)?;
            let mut registry = before.registry.clone();
            let seen = registry::round(&c, &mut registry, &mut entries)?;
            entries.sort_by_key(|e| e.time);
            anyhow::Ok((entries, Watching { watch, registry }, seen))
        })
        .await??;
        if after == self.watching && entries.is_empty() && seen.is_empty() {
            return Ok(false);
        }
        let text = serde_json::to_string(&after)?;
        let n = entries.len();
        self.log
            .write(move |c| {
                chain::append(c, entries)?;
                registry::save(c, &seen)?;
                save_watch_value(c, STATE_KEY, &text)
            })
            .await?;
        if n > 0 {
            tracing::debug!(entries = n, "audit entries written");
        }
        self.watching = after;
        Ok(true)
    }

    async fn prune(&self) {
        let Some(keep) = self
            .settings
            .config
            .effective_retention(self.settings.data_retention)
        else {
            return;
        };
        let now = now_ns();
        let cutoff = now.saturating_sub(keep.as_nanos().min(i64::MAX as u128) as i64);
        match self.log.write(move |c| chain::prune(c, cutoff, now)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "audit retention deleted old entries"),
            Err(e) => tracing::warn!(error = %e, "audit retention failed"),
        }
    }
}

/// Who each alert receiver reaches: its channel and recipients, for the delivery entries.
pub fn recipients(alerting: &crate::alerting::AlertingConfig) -> watch::Recipients {
    use millwatch_exporters::notify::NotifierConfig;
    alerting
        .receivers
        .iter()
        .map(|(name, c)| {
            let to = match c {
                NotifierConfig::Email(e) => (
                    "email",
                    e.to.iter()
                        .map(|m| m.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                NotifierConfig::Webhook(w) => ("webhook", w.url.redacted()),
                NotifierConfig::Alertmanager(a) => (
                    "alertmanager",
                    a.urls
                        .iter()
                        .map(|u| u.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            };
            (name.clone(), (to.0.to_owned(), to.1))
        })
        .collect()
}

/// A database in memory with every migration, for the tests of the audit and report modules.
#[cfg(test)]
pub(crate) fn migrated_in_memory() -> Connection {
    let c = Connection::open_in_memory().expect("an in-memory database");
    for m in crate::store::schema::MIGRATIONS {
        c.execute_batch(m.sql).expect("a migration");
    }
    c
}

/// Now, in ns since the epoch.
pub fn now_ns() -> i64 {
    crate::alerting::now_ns()
}
