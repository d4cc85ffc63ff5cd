//! Reading the audit log: entries by time, model, action and actor, a page at a time, as JSON
//! lines or CSV.

use duckdb::Connection;
use duckdb::types::Value as Db;
use serde_json::Value;

use super::chain::{COLUMNS, row};
use super::entry::{Entry, rfc3339};

/// Which entries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// ns since the epoch: entries at or after.
    pub since: Option<i64>,
    /// ns: entries before.
    pub until: Option<i64>,
    pub model: Option<String>,
    /// An action (`alert.fired`) or a family of them (`alert`).
    pub action: Option<String>,
    pub actor: Option<String>,
    /// Entries after this sequence number (the paging cursor).
    pub after: Option<u64>,
    pub limit: Option<usize>,
}

/// The entries `filter` selects, oldest first.
pub fn entries(conn: &Connection, filter: &Filter) -> duckdb::Result<Vec<Entry>> {
    let (sql, params) = select(filter);
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(duckdb::params_from_iter(params), row)?;
    rows.collect()
}

/// The newest `n` entries `filter` selects (its `limit` aside), newest first.
pub fn newest(conn: &Connection, filter: &Filter, n: usize) -> duckdb::Result<Vec<Entry>> {
    let (sql, params) = select(&Filter {
        limit: None,
        ..filter.clone()
    });
    let sql = format!("SELECT * FROM ({sql}) ORDER BY seq DESC LIMIT {n}");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(duckdb::params_from_iter(params), row)?;
    rows.collect()
}

/// The query for `filter` and its parameters.
fn select(filter: &Filter) -> (String, Vec<Db>) {
    let mut sql = format!("SELECT {COLUMNS} FROM audit_log WHERE true");
    let mut params: Vec<Db> = Vec::new();
    if let Some(t) = filter.since {
        sql.push_str(" AND time >= make_timestamp_ns(?)");
        params.push(Db::BigInt(t));
    }
    if let Some(t) = filter.until {
        sql.push_str(" AND time < make_timestamp_ns(?)");
        params.push(Db::BigInt(t));
    }
    if let Some(m) = &filter.model {
        sql.push_str(" AND model = ?");
        params.push(Db::Text(m.clone()));
    }
    if let Some(a) = &filter.action {
        sql.push_str(" AND (action = ? OR starts_with(action, ?))");
        params.push(Db::Text(a.clone()));
        params.push(Db::Text(format!("{a}.")));
    }
    if let Some(a) = &filter.actor {
        sql.push_str(" AND actor = ?");
        params.push(Db::Text(a.clone()));
    }
    if let Some(s) = filter.after {
        sql.push_str(" AND seq > ?");
        params.push(Db::UBigInt(s));
    }
    sql.push_str(" ORDER BY seq");
    if let Some(n) = filter.limit {
        sql.push_str(&format!(" LIMIT {n}"));
    }
    (sql, params)
}

/// The CSV header, one column per field.
pub const CSV_HEADER: [&str; 12] = [
    "seq",
    "time",
    "actor",
    "source",
    "action",
    "model",
    "object",
    "old_value",
    "new_value",
    "reason",
    "prev_hash",
    "hash",
];

/// Entries as CSV, JSON values as their text.
pub fn csv(entries: &[Entry]) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER)?;
    for e in entries {
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        w.write_record([
            e.seq.to_string(),
            rfc3339(e.time),
            e.actor.clone(),
            opt(&e.source),
            e.action.clone(),
            opt(&e.model),
            e.object.clone(),
            opt(&e.old_value),
            opt(&e.new_value),
            opt(&e.reason),
            e.prev_hash.clone(),
            e.hash.clone(),
        ])?;
    }
    Ok(w.into_inner()?)
}

/// Entries as JSON lines.
pub fn jsonl(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(e.view().to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// Entries as a JSON array of their views.
pub fn views(entries: &[Entry]) -> Value {
    Value::Array(entries.iter().map(Entry::view).collect())
}

/// ns since the epoch of an RFC 3339 time, with a message that says what is expected.
pub fn parse_time(name: &str, text: &str) -> Result<i64, String> {
    millwatch_exporters::notify::alert::parse_rfc3339(text)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .ok_or_else(|| {
            format!("`{name}` must be an RFC 3339 time such as 2026-05-04T18:00:00Z, not `{text}`")
        })
}
