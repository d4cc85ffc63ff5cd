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
    /// silences, `ml.deployment` events, inference events) are read for new entries.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub poll_interval: Duration,
    /// How often the chain's head (newest sequence number and hash) is written into the log
    /// (also at every start), so that an exported head can be checked later.
    #[serde(with = "millwatch_exporters::units::duration")]
    #[schemars(with = "millwatch_exporters::units::DurationText")]
    pub head_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention: Some(Duration::from_secs(400 * 24 * 3600)),
            poll_interval: Duration::from_secs(2),
            head_interval: Duration::from_secs(3600),
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

/// Writes entries into the chain through the store's writer.
#[derive(Clone)]
pub struct AuditLog {
    store: StoreHandle,
}

impl AuditLog {
    pub fn new(store: StoreHandle) -> AuditLog {
        AuditLog { store }
    }

    /// Runs `f` in one transaction on the write connection, after everything sent before.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> duckdb::Result<T> + Send + 'static,
    ) -> crate::store::Result<T> {
        self.store
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
            .await
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
    let text = conn.query_row(
        "SELECT CAST(value AS VARCHAR) FROM audit_watch WHERE key = ?",
        [STATE_KEY],
        |r| r.get::<_, String>(0),
    );
    match text {
        Ok(t) => Ok(serde_json::from_str(&t).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the audit watcher's saved state is unreadable; reading the tables from the start");
            Watching::default()
        })),
        Err(duckdb::Error::QueryReturnedNoRows) => Ok(Watching::default()),
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

/// The running audit watcher.
pub struct AuditHandle {
    pub log: AuditLog,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl AuditHandle {
    /// Reads the tables once more (what happened during shutdown) and stops.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// What the watcher needs to know.
pub struct Settings {
    pub config: AuditConfig,
    pub data_retention: Option<Duration>,
    pub retention_interval: Duration,
    pub recipients: watch::Recipients,
}

/// Starts the audit trail: writes the head and the configuration entry, then watches the
/// tables every `poll_interval`. `reader` is a connection of its own for reading.
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
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = {
        let log = log.clone();
        tokio::spawn(async move {
            let mut watcher = Watcher {
                log,
                reader,
                watching,
                settings,
            };
            let mut tick = tokio::time::interval(watcher.settings.config.poll_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut head_at = tokio::time::Instant::now();
            let mut pruned_at: Option<tokio::time::Instant> = None;
            loop {
                let stopping = tokio::select! {
                    _ = tick.tick() => false,
                    _ = stopped.wait_for(|s| *s) => true,
                };
                if let Err(e) = watcher.round().await {
                    tracing::warn!(error = %e, "audit watcher round failed; retried next round");
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
    Ok(AuditHandle { log, stop, task })
}

struct Watcher {
    log: AuditLog,
    reader: std::sync::Arc<std::sync::Mutex<Connection>>,
    watching: Watching,
    settings: Settings,
}

impl Watcher {
    async fn round(&mut self) -> anyhow::Result<()> {
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
            return Ok(());
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
        Ok(())
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
