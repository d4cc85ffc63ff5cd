//! Millwatch's own detection results and alerts, forwarded to the centre as OTLP logs (issue
//! 17), so a central Millwatch shows the verdicts and alerts of every site while each edge
//! keeps detecting and alerting on its own data (a plant gets its alerts with the uplink down).
//!
//! Edge: once a second, rows of `detections` decided since the last forwarded one, and rows of
//! `alerts` changed since, become log records (`millwatch.detection`, `millwatch.alert`) under
//! a resource that says where they come from (`service.name: millwatch`, `millwatch.tier:
//! edge`, `host.name`, and the exporter's `origin`), and go to the disk queue of every OTLP
//! exporter whose `signals` name `detections` or `alerts`. How far it got is kept in
//! `<data_dir>/own-results-forwarded.json` once queued, so a restart sends nothing twice and
//! skips nothing (a crash between the two sends a second of results again).
//!
//! Centre: they arrive as any OTLP log and are stored in `logs` with their resource;
//! `GET /api/v1/forwarded/detections` and `GET /api/v1/forwarded/alerts` list them newest
//! first with their site and host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use millwatch_exporters::otlp::{Export, ForwardedSignal};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::pipeline::Ingest;
use crate::store::Store;

/// Event names of the forwarded records.
pub const DETECTION_EVENT: &str = "millwatch.detection";
pub const ALERT_EVENT: &str = "millwatch.alert";

const INTERVAL: Duration = Duration::from_secs(1);
/// Most rows forwarded per table and tick (more when the last time has more rows); the rest
/// follow at the next ticks.
const MAX_ROWS: usize = 5_000;

/// Where forwarding got to: the `time` of the last forwarded detection and the `updated` of
/// the last forwarded alert change (Unix ns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Cursor {
    detections_ns: i64,
    alerts_ns: i64,
}

fn cursor_path(data_dir: &Path) -> PathBuf {
    data_dir.join("own-results-forwarded.json")
}

fn load_cursor(path: &Path) -> Cursor {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "forwarding own results: unreadable cursor, sending every stored result again");
            Cursor::default()
        }),
        Err(_) => Cursor::default(),
    }
}

fn save_cursor(path: &Path, cursor: Cursor) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&cursor).unwrap_or_default())?;
    std::fs::rename(&tmp, path)
}

/// Starts the forwarding task when an OTLP exporter forwards `detections` or `alerts`.
pub fn start(
    store: Arc<Store>,
    ingest: Arc<Ingest>,
    data_dir: &Path,
    mut stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let wanted = |s| ingest.otlp.iter().any(|e| e.forwards(s));
    if !wanted(ForwardedSignal::Detections) && !wanted(ForwardedSignal::Alerts) {
        return None;
    }
    let path = cursor_path(data_dir);
    Some(tokio::spawn(async move {
        let mut cursor = load_cursor(&path);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(INTERVAL) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            let next = forward_once(&store, &ingest, cursor).await;
            if next != cursor {
                cursor = next;
                if let Err(e) = save_cursor(&path, cursor) {
                    tracing::warn!(path = %path.display(), error = %e, "forwarding own results: cannot save how far it got");
                }
            }
        }
    }))
}

/// Queues what changed since `cursor` and returns the new cursor (unchanged for a table whose
/// rows an exporter could not queue: they are tried again at the next tick).
async fn forward_once(store: &Store, ingest: &Ingest, mut cursor: Cursor) -> Cursor {
    for signal in [ForwardedSignal::Detections, ForwardedSignal::Alerts] {
        let exporters: Vec<_> = ingest.otlp.iter().filter(|e| e.forwards(signal)).collect();
        if exporters.is_empty() {
            continue;
        }
        let since = match signal {
            ForwardedSignal::Detections => cursor.detections_ns,
            _ => cursor.alerts_ns,
        };
        let rows = match signal {
            ForwardedSignal::Detections => store.read(|c| detections_since(c, since)),
            _ => store.read(|c| alerts_since(c, since)),
        };
        let (records, last) = match rows {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "forwarding own results: cannot read the store");
                continue;
            }
        };
        let mut all_queued = true;
        for exporter in exporters {
            let request = request(exporter_origin(exporter.origin()), records.clone());
            let export = match signal {
                ForwardedSignal::Detections => Export::Detections(&request),
                _ => Export::Alerts(&request),
            };
            if let Err(e) = exporter.export(export).await {
                all_queued = false;
                tracing::warn!(exporter = exporter.name(), error = %e, "forwarding own results: not queued, trying again in a second");
            }
        }
        if all_queued {
            match signal {
                ForwardedSignal::Detections => cursor.detections_ns = last,
                _ => cursor.alerts_ns = last,
            }
        }
    }
    cursor
}

/// The resource of forwarded results: the exporter's `origin`, `service.name`, the tier and
/// the host name.
fn exporter_origin(origin: &BTreeMap<String, String>) -> Vec<KeyValue> {
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    attrs.insert("service.name".into(), "millwatch".into());
    attrs.insert("millwatch.tier".into(), "edge".into());
    if let Some(host) = host_name() {
        attrs.insert("host.name".into(), host);
    }
    attrs.extend(origin.iter().map(|(k, v)| (k.clone(), v.clone())));
    attrs.into_iter().map(|(k, v)| kv(&k, text(v))).collect()
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

fn request(resource: Vec<KeyValue>, log_records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "millwatch".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                log_records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// One forwarded record: `event` at `time_ns`, its severity (number, text), its body.
fn record(
    event: &str,
    time_ns: i64,
    (severity_number, severity_text): (i32, &str),
    body: Option<String>,
    attributes: Vec<KeyValue>,
) -> LogRecord {
    LogRecord {
        time_unix_nano: time_ns as u64,
        observed_time_unix_nano: time_ns as u64,
        event_name: event.into(),
        severity_number,
        severity_text: severity_text.into(),
        body: body.map(|b| AnyValue {
            value: Some(text(b)),
        }),
        attributes,
        ..Default::default()
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(s: impl Into<String>) -> any_value::Value {
    any_value::Value::StringValue(s.into())
}

/// The rows and the time of the last one; `None` when there is none. The queries take whole
/// groups of rows with one time (a transaction's), so the next one starts after that time and
/// skips nothing.
fn with_last<T>(rows: Vec<(i64, T)>) -> Option<(Vec<T>, i64)> {
    let last = rows.last()?.0;
    Some((rows.into_iter().map(|(_, r)| r).collect(), last))
}

/// `WHERE … ORDER BY` of the rows of `table` after `since` (parameters 1 and 2) up to the time
/// of the [`MAX_ROWS`]-th (parameter 3), with every row of that time.
fn window_sql(table: &str, column: &str) -> String {
    format!(
        "WHERE {column} > make_timestamp_ns(?) AND {column} <= (SELECT max({column}) FROM \
         (SELECT {column} FROM {table} WHERE {column} > make_timestamp_ns(?) ORDER BY {column} \
         LIMIT ?)) ORDER BY {column}"
    )
}

fn detections_since(
    c: &duckdb::Connection,
    since: i64,
) -> duckdb::Result<Option<(Vec<LogRecord>, i64)>> {
    let mut stmt = c.prepare(&format!(
        "SELECT epoch_ns(time), epoch_ns(window_start), epoch_ns(window_end), model, version, \
         feature, detector, test, statistic, p_value, p_value_corrected, effect_size, threshold, \
         drifted, verdict, decided_by, CAST(details AS VARCHAR) \
         FROM detections {}",
        window_sql("detections", "time")
    ))?;
    let rows = stmt.query_map(duckdb::params![since, since, MAX_ROWS as i64], |r| {
        let time: i64 = r.get(0)?;
        let mut a = Vec::new();
        let mut s = |key: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(kv(key, text(v)));
            }
        };
        s("ml.model.name", r.get(3)?);
        s("ml.model.version", r.get(4)?);
        s("millwatch.detection.feature", r.get(5)?);
        s("millwatch.detection.detector", r.get(6)?);
        s("millwatch.detection.test", r.get(7)?);
        s("millwatch.detection.verdict", r.get(14)?);
        s("millwatch.detection.decided_by", r.get(15)?);
        s("millwatch.detection.details", r.get(16)?);
        for (key, i) in [
            ("millwatch.detection.statistic", 8),
            ("millwatch.detection.p_value", 9),
            ("millwatch.detection.p_value_corrected", 10),
            ("millwatch.detection.effect_size", 11),
            ("millwatch.detection.threshold", 12),
        ] {
            if let Some(v) = r.get::<_, Option<f64>>(i)? {
                a.push(kv(key, any_value::Value::DoubleValue(v)));
            }
        }
        for (key, i) in [
            ("millwatch.detection.window_start", 1),
            ("millwatch.detection.window_end", 2),
        ] {
            if let Some(v) = r.get::<_, Option<i64>>(i)? {
                a.push(kv(key, any_value::Value::IntValue(v)));
            }
        }
        let drifted: bool = r.get(13)?;
        a.push(kv(
            "millwatch.detection.drifted",
            any_value::Value::BoolValue(drifted),
        ));
        let verdict: Option<String> = r.get(14)?;
        let severity = if drifted { (13, "WARN") } else { (9, "INFO") };
        Ok((time, record(DETECTION_EVENT, time, severity, verdict, a)))
    })?;
    Ok(with_last(rows.collect::<duckdb::Result<Vec<_>>>()?))
}

fn alerts_since(
    c: &duckdb::Connection,
    since: i64,
) -> duckdb::Result<Option<(Vec<LogRecord>, i64)>> {
    let mut stmt = c.prepare(&format!(
        "SELECT epoch_ns(updated), fingerprint, rule, CAST(labels AS VARCHAR), \
         CAST(annotations AS VARCHAR), state, value, epoch_ns(active_at), epoch_ns(fired_at), \
         epoch_ns(resolved_at) \
         FROM alerts {}",
        window_sql("alerts", "updated")
    ))?;
    let rows = stmt.query_map(duckdb::params![since, since, MAX_ROWS as i64], |r| {
        let updated: i64 = r.get(0)?;
        let labels: String = r.get(3)?;
        let state: String = r.get(5)?;
        let mut a = vec![
            kv("millwatch.alert.fingerprint", text(r.get::<_, String>(1)?)),
            kv("millwatch.alert.rule", text(r.get::<_, String>(2)?)),
            kv("millwatch.alert.labels", text(labels.clone())),
            kv("millwatch.alert.annotations", text(r.get::<_, String>(4)?)),
            kv("millwatch.alert.state", text(state.clone())),
        ];
        // The model and version labels, under the names routing and the centre look for.
        let parsed: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(&labels).unwrap_or_default();
        for (label, key) in [("model", "ml.model.name"), ("version", "ml.model.version")] {
            if let Some(v) = parsed.get(label).and_then(|v| v.as_str()) {
                a.push(kv(key, text(v)));
            }
        }
        if let Some(v) = r.get::<_, Option<f64>>(6)? {
            a.push(kv(
                "millwatch.alert.value",
                any_value::Value::DoubleValue(v),
            ));
        }
        for (key, i) in [
            ("millwatch.alert.active_at", 7),
            ("millwatch.alert.fired_at", 8),
            ("millwatch.alert.resolved_at", 9),
        ] {
            if let Some(v) = r.get::<_, Option<i64>>(i)? {
                a.push(kv(key, any_value::Value::IntValue(v)));
            }
        }
        let severity = if state == "firing" {
            (17, "ERROR")
        } else {
            (9, "INFO")
        };
        Ok((
            updated,
            record(ALERT_EVENT, updated, severity, Some(state), a),
        ))
    })?;
    Ok(with_last(rows.collect::<duckdb::Result<Vec<_>>>()?))
}

// --- the centre's view --------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default = "default_limit")]
    limit: u32,
    site: Option<String>,
}

fn default_limit() -> u32 {
    100
}

/// `GET /api/v1/forwarded/detections` and `/api/v1/forwarded/alerts`: what edges forwarded,
/// newest first, each with its site, host and attributes; `?site=` filters, `?limit=` (default
/// 100, at most 10,000).
pub fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route(
            "/api/v1/forwarded/detections",
            get(|s, q| list(s, q, DETECTION_EVENT)),
        )
        .route(
            "/api/v1/forwarded/alerts",
            get(|s, q| list(s, q, ALERT_EVENT)),
        )
        .with_state(store)
}

async fn list(
    State(store): State<Arc<Store>>,
    Query(q): Query<ListQuery>,
    event: &'static str,
) -> Response {
    let limit = q.limit.min(10_000);
    let result = tokio::task::spawn_blocking(move || {
        store.read(|c| {
            let mut stmt = c.prepare(
                "SELECT epoch_ns(l.time), r.site_name, r.host_name, CAST(l.attributes AS VARCHAR) \
                 FROM logs l JOIN resources r USING (resource_id) \
                 WHERE l.event_name = ? AND (? IS NULL OR r.site_name = ?) \
                 ORDER BY l.time DESC LIMIT ?",
            )?;
            let rows =
                stmt.query_map(duckdb::params![event, q.site, q.site, limit as i64], |r| {
                    let attributes: Option<String> = r.get(3)?;
                    Ok(serde_json::json!({
                        "time_ns": r.get::<_, Option<i64>>(0)?,
                        "site": r.get::<_, Option<String>>(1)?,
                        "host": r.get::<_, Option<String>>(2)?,
                        "attributes": attributes
                            .and_then(|a| serde_json::from_str::<serde_json::Value>(&a).ok())
                            .unwrap_or(serde_json::Value::Null),
                    }))
                })?;
            rows.collect::<duckdb::Result<Vec<_>>>()
        })
    })
    .await;
    match result {
        Ok(Ok(rows)) => Json(serde_json::json!({ "data": rows })).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detections_come_in_whole_transactions_and_in_order() {
        let c = duckdb::Connection::open_in_memory().expect("duckdb");
        c.execute_batch(crate::store::schema::MIGRATIONS[1].sql)
            .expect("detections table");
        // One transaction with more rows than a tick takes, then one more row.
        let n = MAX_ROWS as i64 + 5;
        c.execute_batch(&format!(
            "INSERT INTO detections (time, model, detector, drifted, verdict) \
             SELECT make_timestamp_ns(CASE WHEN i < {n} THEN 2000 ELSE 3000 END), 'm', 'drift', \
             i % 2 = 0, 'no_drift' FROM range({}) t(i)",
            n + 1
        ))
        .expect("insert");
        let (first, last) = detections_since(&c, 0).expect("read").expect("rows");
        assert_eq!(
            (first.len() as i64, last),
            (n, 2000),
            "the whole transaction"
        );
        let (rest, last) = detections_since(&c, last).expect("read").expect("rows");
        assert_eq!((rest.len(), last), (1, 3000));
        assert!(detections_since(&c, last).expect("read").is_none());
        let model = |r: &LogRecord| {
            r.attributes
                .iter()
                .find(|kv| kv.key == "ml.model.name")
                .cloned()
        };
        assert_eq!(model(&rest[0]), Some(kv("ml.model.name", text("m"))));
        assert_eq!(rest[0].event_name, DETECTION_EVENT);
    }

    #[test]
    fn the_cursor_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("mw-own-results-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = cursor_path(&dir);
        assert_eq!(load_cursor(&path), Cursor::default());
        let c = Cursor {
            detections_ns: 5,
            alerts_ns: 9,
        };
        save_cursor(&path, c).expect("save");
        assert_eq!(load_cursor(&path), c);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
