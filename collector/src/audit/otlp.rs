//! The audit log as OTLP log records, for the plant's log system (Loki, Elasticsearch, Splunk
//! through an OpenTelemetry Collector): every entry, in order, goes into the disk queue of each
//! OTLP exporter named in `audit.otlp_exporters`, which sends it with its retries
//! (`exporters.otlp`, whatever that exporter's `signals` forward).
//!
//! A record per entry: event name `millwatch.audit`, the entry's time, its JSON (as the API
//! gives it) as the body, and `audit.seq`, `audit.action`, `audit.actor`, `audit.source`,
//! `audit.model`, `audit.hash`, `audit.prev_hash` as attributes. How far each exporter got is
//! kept in `audit_watch` (`otlp:<exporter>`) after its queue took the entries: delivery is at
//! least once (a crash between the two queues them again; `audit.seq` tells them apart).
//!
//! The task wakes when the audit log was written ([`AuditLog::subscribe`]), not on a timer.

use std::sync::{Arc, Mutex};

use duckdb::Connection;
use millwatch_exporters::otlp::Export;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::chain::{COLUMNS, row};
use super::entry::Entry;
use super::{AuditLog, Task, load_watch_value, save_watch_value};
use crate::pipeline::Ingest;

/// The event name of the records.
pub const EVENT: &str = "millwatch.audit";

/// Most entries in one export request.
const BATCH: u64 = 500;

fn text(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// The export request of `entries`.
pub fn request(entries: &[Entry], observed_ns: i64) -> ExportLogsServiceRequest {
    let records = entries
        .iter()
        .map(|e| {
            let mut attributes = vec![
                text("event.name", EVENT),
                KeyValue {
                    key: "audit.seq".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(e.seq as i64)),
                    }),
                    ..Default::default()
                },
                text("audit.action", e.action.clone()),
                text("audit.actor", e.actor.clone()),
                text("audit.hash", e.hash.clone()),
                text("audit.prev_hash", e.prev_hash.clone()),
            ];
            if let Some(s) = &e.source {
                attributes.push(text("audit.source", s.clone()));
            }
            if let Some(m) = &e.model {
                attributes.push(text("audit.model", m.clone()));
            }
            LogRecord {
                time_unix_nano: e.time.max(0) as u64,
                observed_time_unix_nano: observed_ns.max(0) as u64,
                severity_number: SeverityNumber::Info as i32,
                severity_text: "INFO".into(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(e.view().to_string())),
                }),
                attributes,
                event_name: EVENT.into(),
                ..Default::default()
            }
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![text("service.name", "millwatch")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "millwatch.audit".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn key(exporter: &str) -> String {
    format!("otlp:{exporter}")
}

/// The entries after `after`, at most [`BATCH`].
fn after(c: &Connection, after: u64) -> duckdb::Result<Vec<Entry>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT {BATCH}"
    ))?;
    let rows = stmt.query_map([after], row)?;
    rows.collect()
}

fn saved_cursor(c: &Connection, exporter: &str) -> duckdb::Result<Option<u64>> {
    Ok(load_watch_value(c, &key(exporter))?.and_then(|t| t.trim().parse().ok()))
}

/// Starts queueing the audit log into the OTLP exporters named `names` (of `ingest.otlp`).
pub fn start(log: AuditLog, reader: Connection, ingest: Arc<Ingest>, names: Vec<String>) -> Task {
    let reader = Arc::new(Mutex::new(reader));
    let mut written = log.subscribe();
    Task::spawn(move |mut stopped| async move {
        let mut cursors: Vec<Option<u64>> = vec![None; names.len()];
        loop {
            let mut again = false;
            for (i, name) in names.iter().enumerate() {
                match round(&log, &reader, &ingest, name, &mut cursors[i]).await {
                    Ok(full) => again |= full,
                    Err(e) => {
                        tracing::warn!(exporter = %name, error = %e, "queueing the audit log for OTLP failed; tried again at the next entry")
                    }
                }
            }
            if *stopped.borrow() {
                return;
            }
            if again {
                continue;
            }
            tokio::select! {
                _ = written.changed() => {}
                _ = stopped.wait_for(|s| *s) => {}
            }
        }
    })
}

/// Queues the entries after the exporter's cursor; true when there may be more.
async fn round(
    log: &AuditLog,
    reader: &Arc<Mutex<Connection>>,
    ingest: &Arc<Ingest>,
    name: &str,
    cursor: &mut Option<u64>,
) -> anyhow::Result<bool> {
    let Some(exporter) = ingest.otlp.iter().find(|e| e.name() == name) else {
        anyhow::bail!("no OTLP exporter `{name}` is running");
    };
    let reader = reader.clone();
    let known = *cursor;
    let owned = name.to_owned();
    let (from, entries) = tokio::task::spawn_blocking(move || {
        let c = reader
            .lock()
            .map_err(|_| anyhow::anyhow!("the audit reader is unusable after a panic"))?;
        let from = match known {
            Some(k) => k,
            None => saved_cursor(&c, &owned)?.unwrap_or(0),
        };
        anyhow::Ok((from, after(&c, from)?))
    })
    .await??;
    *cursor = Some(from);
    let Some(last) = entries.last().map(|e| e.seq) else {
        return Ok(false);
    };
    let req = request(&entries, crate::audit::now_ns());
    exporter.export_own(Export::Logs(&req)).await?;
    let (k, v) = (key(name), last.to_string());
    log.write(move |c| save_watch_value(c, &k, &v)).await?;
    *cursor = Some(last);
    Ok(entries.len() as u64 == BATCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::append;
    use crate::audit::entry::NewEntry;
    use serde_json::json;

    #[test]
    fn each_entry_is_one_record_with_its_chain_fields() {
        let c = crate::audit::migrated_in_memory();
        append(
            &c,
            vec![
                NewEntry::system(
                    1_000,
                    "drift.started",
                    json!({"model": "m", "feature": "x"}),
                ),
                NewEntry::system(2_000, "silence.expired", json!({"silence": "s"}))
                    .actor("ana")
                    .source(Some("10.0.0.7".into())),
            ],
        )
        .unwrap();
        let entries = after(&c, 0).unwrap();
        assert_eq!(after(&c, 1).unwrap().len(), 1);
        let req = request(&entries, 5_000);
        let records = &req.resource_logs[0].scope_logs[0].log_records;
        assert_eq!(records.len(), 2);
        let attr = |r: &LogRecord, k: &str| {
            r.attributes
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone())
                .and_then(|v| v.value)
        };
        assert_eq!(records[0].time_unix_nano, 1_000);
        assert_eq!(records[0].event_name, EVENT);
        assert_eq!(
            attr(&records[0], "audit.seq"),
            Some(any_value::Value::IntValue(1))
        );
        assert_eq!(
            attr(&records[0], "audit.model"),
            Some(any_value::Value::StringValue("m".into()))
        );
        assert_eq!(
            attr(&records[1], "audit.source"),
            Some(any_value::Value::StringValue("10.0.0.7".into()))
        );
        assert_eq!(
            attr(&records[1], "audit.hash"),
            Some(any_value::Value::StringValue(entries[1].hash.clone()))
        );
        let Some(any_value::Value::StringValue(body)) =
            records[1].body.clone().and_then(|b| b.value)
        else {
            panic!("a string body");
        };
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["actor"], "ana");
        assert_eq!(body["prev_hash"], entries[0].hash);
    }
}
