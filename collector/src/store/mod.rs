//! The DuckDB store: opens the database, applies the schema's migration steps, and hands writes
//! to a single writer thread ([`writer`]) that commits batches as a group. Reads use their own
//! connections so that a query never waits behind ingest.

pub(crate) mod columns;
pub mod faults;
mod feature_keys;
pub mod journal;
pub mod lock;
pub mod replay;
pub mod schema;
pub mod writer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use duckdb::Connection;

use crate::signals::mapping::KnownIds;

pub use writer::{StoreHandle, WriterStats};

/// The tables that hold signals, in the order `/api/v1/stats` lists them.
pub const TABLES: &[&str] = &[
    "inferences",
    "inference_features",
    "feedback",
    "metric_series",
    "metric_points",
    "metric_distributions",
    "spans",
    "logs",
    "resources",
    "scopes",
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("DuckDB: {0}")]
    DuckDb(#[from] duckdb::Error),
    /// Another process (most likely another collector) has the database open.
    #[error(
        "the data directory {data_dir} is in use: {} holds the lock on {database}; stop it, or \
         give this collector another data directory (data_dir, --data-dir)",
        lock::describe(.holder)
    )]
    Locked {
        data_dir: PathBuf,
        database: PathBuf,
        holder: Option<lock::LockHolder>,
    },
    #[error(
        "the database at {path} has schema version {found}, newer than this millwatch knows ({known})"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: u32,
        known: u32,
    },
    #[error("the store is shutting down")]
    Closed,
    #[error("storing failed: {0}")]
    Write(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The database file inside a data directory.
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("millwatch.duckdb")
}

/// An open database: the connection the writer takes, a connection for reads, and what is
/// already stored that mapping needs to know.
pub struct Store {
    pub path: PathBuf,
    /// Kept only to open more connections to the same database instance.
    conn: Mutex<Connection>,
    reader: Mutex<Connection>,
    pub known: Arc<KnownIds>,
    /// What the replay of the journal did when the store opened.
    pub replayed: replay::Replayed,
}

impl Store {
    /// Opens (creating if needed) `data_dir/millwatch.duckdb` and migrates it to the newest schema.
    pub fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = database_path(data_dir);
        let conn = Connection::open(&path).map_err(|e| opening_failed(e, data_dir, &path))?;
        // The journal's records are columns of the schema that wrote them: replay them before a
        // migration changes a table (a schema from before the journal has none to replay).
        let journal_path = journal::path_in(data_dir);
        let before = schema_version(&conn)?;
        let newest = schema::MIGRATIONS.last().map(|m| m.version).unwrap_or(0);
        if before > newest {
            return Err(StoreError::SchemaTooNew {
                path: path.clone(),
                found: before,
                known: newest,
            });
        }
        let mut replayed = replay::Replayed::default();
        if before >= schema::JOURNAL_VERSION {
            replayed = replay::replay(&conn, &journal_path)?;
        }
        migrate(&conn, before)?;
        if before < schema::JOURNAL_VERSION {
            replayed = replay::replay(&conn, &journal_path)?;
        }
        replayed.log();
        let known = Arc::new(load_known(&conn)?);
        let reader = Mutex::new(conn.try_clone()?);
        Ok(Store {
            path,
            conn: Mutex::new(conn),
            reader,
            known,
            replayed,
        })
    }

    /// Runs `f` on the read connection.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> duckdb::Result<T>) -> Result<T> {
        let conn = self
            .reader
            .lock()
            .map_err(|_| StoreError::Write("read connection poisoned".into()))?;
        Ok(f(&conn)?)
    }

    /// A fresh connection to the same database, for a task that reads on its own.
    pub fn connect(&self) -> Result<Connection> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| StoreError::Write("connection poisoned".into()))?;
        Ok(conn.try_clone()?)
    }

    /// Stored rows per table.
    pub fn row_counts(&self) -> Result<Vec<(&'static str, u64)>> {
        self.read(|c| {
            TABLES
                .iter()
                .map(|t| {
                    c.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| {
                        r.get::<_, u64>(0)
                    })
                    .map(|n| (*t, n))
                })
                .collect()
        })
    }

    /// Starts the writer thread; the store's own connection moves to it.
    pub fn start_writer(self, options: writer::WriterOptions) -> Result<(StoreHandle, Arc<Store>)> {
        let writer_conn = self.connect()?;
        let store = Arc::new(self);
        let handle = writer::spawn(writer_conn, store.known.clone(), options)?;
        Ok((handle, store))
    }
}

/// DuckDB's refusal to open a database another process holds, turned into one that names the
/// data directory and that process; other errors as they are.
fn opening_failed(e: duckdb::Error, data_dir: &Path, database: &Path) -> StoreError {
    let message = e.to_string();
    if !lock::is_lock_conflict(&message) {
        return e.into();
    }
    StoreError::Locked {
        data_dir: data_dir.to_owned(),
        database: database.to_owned(),
        holder: lock::holder_from_message(&message).or_else(|| lock::holder_from_proc(database)),
    }
}

/// The newest migration applied to the database (0 for a new one).
fn schema_version(conn: &Connection) -> Result<u32> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS millwatch_schema_migrations (
            version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)",
    )?;
    Ok(conn.query_row(
        "SELECT coalesce(max(version), 0) FROM millwatch_schema_migrations",
        [],
        |r| r.get::<_, i32>(0).map(|v| v.max(0) as u32),
    )?)
}

/// Applies the migrations after `current` (not newer than this binary knows: checked by the
/// caller).
fn migrate(conn: &Connection, current: u32) -> Result<()> {
    for m in schema::MIGRATIONS.iter().filter(|m| m.version > current) {
        conn.execute_batch("BEGIN TRANSACTION")?;
        let step = conn.execute_batch(m.sql).and_then(|_| {
            conn.execute(
                "INSERT INTO millwatch_schema_migrations VALUES (?, ?, now())",
                duckdb::params![m.version, m.description],
            )
        });
        match step {
            Ok(_) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
        }
        tracing::info!(
            version = m.version,
            description = m.description,
            "applied schema migration"
        );
    }
    Ok(())
}

fn load_known(conn: &Connection) -> Result<KnownIds> {
    let ids = |sql: &str| -> Result<HashSet<u64>> {
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map([], |r| r.get::<_, u64>(0))?;
        Ok(rows.collect::<duckdb::Result<HashSet<u64>>>()?)
    };
    Ok(KnownIds {
        resources: ids("SELECT resource_id FROM resources")?.into(),
        scopes: ids("SELECT scope_id FROM scopes")?.into(),
        series: ids("SELECT series_id FROM metric_series")?.into(),
    })
}
