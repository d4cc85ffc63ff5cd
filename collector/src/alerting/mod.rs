//! The alert manager: rules over detector verdicts, stored metrics and the collector's own
//! health; alerts pending → firing → resolved; a routing tree with grouping, inhibition,
//! silences and acknowledgements; notifications through a durable outbox in DuckDB to the
//! exporters' notifiers (email, webhook, Alertmanager); the HTTP API and CLI over it.
//!
//! Layout: `config` (the `alerting:` section), `hold` (a rule's `for`), `charts` (the history an email chart draws), `rules` (matchers, templates, built-in rules),
//! `sources` (what rules read), `wording` (a verdict's summary and description), `lifecycle` (alert states), `routing` (the tree), `groups`
//! (notification groups), `inhibit`, `silences`, `persist` (alerts and groups in DuckDB), `metrics` (its series on
//! `/metrics`),
//! `outbox` (durable delivery), `log_limit` (a log line per receiver and interval), `engine` (the loop), `api` (HTTP), `cli` (`millwatch alerts`,
//! `millwatch silence`).

pub mod api;
pub mod charts;
pub mod cli;
pub mod config;
pub mod engine;
pub mod groups;
pub mod hold;
pub mod inhibit;
pub mod lifecycle;
pub mod log_limit;
pub mod metrics;
pub mod outbox;
pub mod persist;
pub mod routing;
pub mod rules;
pub mod silences;
pub mod sources;
pub mod wording;

use std::sync::{Arc, Mutex};

use duckdb::Connection;

pub use config::{AlertingConfig, default_external_url};
pub use engine::{AlertingHandle, start};

#[derive(Debug, thiserror::Error)]
pub enum AlertingError {
    #[error("DuckDB: {0}")]
    DuckDb(#[from] duckdb::Error),
    #[error("receiver `{receiver}`: {source}")]
    Receiver {
        receiver: String,
        source: millwatch_exporters::notify::NotifyError,
    },
    #[error("the alerting connection is unusable after a panic")]
    Poisoned,
    #[error("a blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("registering the alerting series: {0}")]
    Metrics(#[from] millwatch_exporters::prometheus::ExpositionError),
    #[error("cannot start the alerting thread: {0}")]
    Start(std::io::Error),
}

pub type Result<T> = std::result::Result<T, AlertingError>;

/// The alert manager's own DuckDB connection, shared by the engine thread, the outbox worker
/// and the API; never the ingest writer's.
#[derive(Clone)]
pub struct Db(Arc<Mutex<Connection>>);

impl Db {
    pub fn new(conn: Connection) -> Db {
        Db(Arc::new(Mutex::new(conn)))
    }

    /// Runs `f` on the connection on this thread.
    pub fn with<T>(&self, f: impl FnOnce(&mut Connection) -> duckdb::Result<T>) -> Result<T> {
        let mut conn = self.0.lock().map_err(|_| AlertingError::Poisoned)?;
        Ok(f(&mut conn)?)
    }

    /// Runs `f` on the connection off the async workers.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> duckdb::Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.with(f)).await?
    }
}

/// Now, in ns since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}
