//! What the engine persists so that a restart neither decides anything twice nor loses a
//! window: the cursor, each model version's open window (as the event id it starts at; its
//! events are read back from the store), windows closed so far, machine-health state, and the
//! baselines. Written in the same transaction as the results they go with.

use std::collections::BTreeMap;

use duckdb::{Connection, OptionalExt, params};
use serde::{Deserialize, Serialize};

use super::baseline::{Baseline, Origin};
use super::windows::ModelKey;

/// The engine's state, one JSON value under `detection_state.key = 'engine'`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    /// The last `event_id` read and accounted for.
    pub cursor: Option<u64>,
    pub models: Vec<ModelRecord>,
    /// Machine-health state per rule and series.
    #[serde(default)]
    pub health: BTreeMap<String, serde_json::Value>,
}

/// One model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub model: String,
    pub version: String,
    /// First event of the open window (or of the baseline being gathered); none when empty.
    pub open_first_event_id: Option<u64>,
    /// Events in the open window, checked against what is read back at restart.
    pub open_events: usize,
    pub baseline_ready: bool,
    pub windows_closed: u64,
    pub events_seen: u64,
    /// The newest event of this version read so far.
    #[serde(default)]
    pub last_event_id: Option<u64>,
    /// Events since the last decision (sliding count windows).
    #[serde(default)]
    pub since_decision: usize,
    /// End of the current time window (time windows).
    #[serde(default)]
    pub window_end_ns: Option<i64>,
}

const KEY: &str = "engine";

pub fn load(conn: &Connection) -> duckdb::Result<EngineState> {
    let json: Option<String> = conn
        .query_row(
            "SELECT CAST(value AS VARCHAR) FROM detection_state WHERE key = ?",
            [KEY],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match json {
        Some(j) => serde_json::from_str(&j)
            .map_err(|e| duckdb::Error::ToSqlConversionFailure(Box::new(e)))?,
        None => EngineState::default(),
    })
}

pub fn save(conn: &Connection, state: &EngineState, now_ns: i64) -> duckdb::Result<()> {
    let json = serde_json::to_string(state)
        .map_err(|e| duckdb::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.execute(
        "INSERT OR REPLACE INTO detection_state VALUES (?, ?, make_timestamp_ns(?))",
        params![KEY, json, now_ns],
    )?;
    Ok(())
}

pub fn save_baseline(
    conn: &Connection,
    key: &ModelKey,
    baseline: &Baseline,
    now_ns: i64,
) -> duckdb::Result<()> {
    let origin = serde_json::to_string(&baseline.origin).unwrap_or_else(|_| "null".into());
    conn.execute(
        "INSERT OR REPLACE INTO detection_baselines VALUES (?, ?, ?, ?, ?, ?, make_timestamp_ns(?))",
        params![
            key.model,
            key.version,
            origin,
            baseline.first_event_id,
            baseline.last_event_id,
            baseline.data_json(),
            now_ns
        ],
    )?;
    Ok(())
}

pub fn load_baseline(conn: &Connection, key: &ModelKey) -> duckdb::Result<Option<Baseline>> {
    let row: Option<(String, Option<u64>, Option<u64>, String)> = conn
        .query_row(
            "SELECT CAST(origin AS VARCHAR), first_event_id, last_event_id, CAST(data AS VARCHAR) \
             FROM detection_baselines WHERE model = ? AND version = ?",
            params![key.model, key.version],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((origin, first, last, data)) = row else {
        return Ok(None);
    };
    let conv = |e: String| duckdb::Error::ToSqlConversionFailure(e.into());
    let origin: Origin = serde_json::from_str(&origin).map_err(|e| conv(e.to_string()))?;
    let data = Baseline::dataset_from_json(&data).map_err(conv)?;
    Ok(Some(Baseline {
        origin,
        first_event_id: first,
        last_event_id: last,
        data,
    }))
}

/// A closed window, for the performance pass.
#[derive(Debug, Clone)]
pub struct ClosedWindow {
    pub key: ModelKey,
    pub index: u64,
    pub first_event_id: u64,
    pub last_event_id: u64,
    pub start_ns: i64,
    pub end_ns: i64,
    pub events: u64,
    pub labelled: u64,
}

impl ClosedWindow {
    /// What the window's findings are about.
    pub fn scope(&self) -> super::results::Scope {
        super::results::Scope {
            model: Some(self.key.model.clone()),
            version: Some(self.key.version.clone()),
            window_start_ns: Some(self.start_ns),
            window_end_ns: Some(self.end_ns),
            first_event_id: Some(self.first_event_id),
            last_event_id: Some(self.last_event_id),
        }
    }
}

/// Appends closed windows to `detection_windows` in one append.
pub fn insert_windows<'a>(
    conn: &Connection,
    windows: impl Iterator<Item = &'a ClosedWindow> + Clone,
    now_ns: i64,
) -> duckdb::Result<()> {
    use crate::store::columns::{Kind::*, append, arrow_error, batch, strings, times, u64s};
    let n = windows.clone().count();
    if n == 0 {
        return Ok(());
    }
    let w = || windows.clone();
    let columns = batch(
        &[
            ("model", Str),
            ("version", Str),
            ("window_index", U64),
            ("first_event_id", U64),
            ("last_event_id", U64),
            ("window_start", Time),
            ("window_end", Time),
            ("events", U64),
            ("labelled", U64),
            ("closed_at", Time),
        ],
        vec![
            strings(n, w().map(|w| Some(w.key.model.as_str()))),
            strings(n, w().map(|w| Some(w.key.version.as_str()))),
            u64s(n, w().map(|w| Some(w.index))),
            u64s(n, w().map(|w| Some(w.first_event_id))),
            u64s(n, w().map(|w| Some(w.last_event_id))),
            times(n, w().map(|w| Some(w.start_ns))),
            times(n, w().map(|w| Some(w.end_ns))),
            u64s(n, w().map(|w| Some(w.events))),
            u64s(n, w().map(|w| Some(w.labelled))),
            times(n, w().map(|_| Some(now_ns))),
        ],
    )
    .map_err(arrow_error)?;
    append(conn, "detection_windows", columns)
}

/// The newest `limit` closed windows of a model version, oldest first.
pub fn recent_windows(
    conn: &Connection,
    key: &ModelKey,
    limit: usize,
) -> duckdb::Result<Vec<ClosedWindow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT window_index, first_event_id, last_event_id, epoch_ns(window_start), epoch_ns(window_end), events, labelled \
         FROM detection_windows WHERE model = ? AND version = ? ORDER BY window_index DESC LIMIT ?",
    )?;
    let mut out: Vec<ClosedWindow> = stmt
        .query_map(params![key.model, key.version, limit as u64], |r| {
            Ok(ClosedWindow {
                key: key.clone(),
                index: r.get(0)?,
                first_event_id: r.get(1)?,
                last_event_id: r.get(2)?,
                start_ns: r.get(3)?,
                end_ns: r.get(4)?,
                events: r.get(5)?,
                labelled: r.get(6)?,
            })
        })?
        .collect::<duckdb::Result<_>>()?;
    out.reverse();
    Ok(out)
}

pub fn set_labelled(
    conn: &Connection,
    key: &ModelKey,
    index: u64,
    labelled: u64,
) -> duckdb::Result<()> {
    conn.execute(
        "UPDATE detection_windows SET labelled = ? WHERE model = ? AND version = ? AND window_index = ?",
        params![labelled, key.model, key.version, index],
    )?;
    Ok(())
}
