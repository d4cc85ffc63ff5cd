//! The alerts and notification groups in DuckDB (`alerts`, `alert_groups`), so that a restart
//! keeps firing alerts with their start times and what each group already notified.

use std::collections::BTreeSet;

use duckdb::Connection;
use millwatch_exporters::notify::Labels;

use super::groups::Group;
use super::lifecycle::{Ack, AlertEntry, State};

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn parse<T: serde::de::DeserializeOwned + Default>(s: &str) -> T {
    serde_json::from_str(s).unwrap_or_default()
}

pub fn load_alerts(conn: &Connection) -> duckdb::Result<Vec<AlertEntry>> {
    let mut stmt = conn.prepare(
        "SELECT fingerprint, rule, labels, annotations, state, value, epoch_ns(active_at), epoch_ns(fired_at), \
                epoch_ns(resolved_at), acknowledged_by, acknowledgement_comment, epoch_ns(acknowledged_at) \
         FROM alerts ORDER BY fingerprint",
    )?;
    let rows = stmt.query_map([], |r| {
        let ack = match (r.get::<_, Option<String>>(9)?, r.get::<_, Option<i64>>(11)?) {
            (Some(by), Some(at)) => Some(Ack {
                by,
                comment: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
                at,
            }),
            _ => None,
        };
        Ok((
            AlertEntry {
                fingerprint: r.get(0)?,
                rule: r.get(1)?,
                labels: parse::<Labels>(&r.get::<_, String>(2)?),
                annotations: parse::<Labels>(&r.get::<_, String>(3)?),
                state: State::Pending,
                value: r.get::<_, Option<f64>>(5)?.unwrap_or(f64::NAN),
                active_at: r.get(6)?,
                fired_at: r.get(7)?,
                resolved_at: r.get(8)?,
                ack,
                windows: 0,
            },
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (mut e, state) = row?;
        let Some(state) = State::parse(&state) else {
            continue;
        };
        e.state = state;
        out.push(e);
    }
    Ok(out)
}

/// Writes changed alerts and deletes removed ones in one transaction.
pub fn write_alerts(
    conn: &mut Connection,
    upserted: &[&AlertEntry],
    removed: &[String],
    now: i64,
) -> duckdb::Result<()> {
    if upserted.is_empty() && removed.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    {
        let mut delete = tx.prepare("DELETE FROM alerts WHERE fingerprint = ?")?;
        for fp in removed {
            delete.execute(duckdb::params![fp])?;
        }
        for e in upserted {
            delete.execute(duckdb::params![e.fingerprint])?;
        }
        let mut insert = tx.prepare(
            "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, make_timestamp_ns(?), make_timestamp_ns(?), \
             make_timestamp_ns(?), ?, ?, make_timestamp_ns(?), make_timestamp_ns(?))",
        )?;
        for e in upserted {
            let value = e.value.is_finite().then_some(e.value);
            insert.execute(duckdb::params![
                e.fingerprint,
                e.rule,
                json(&e.labels),
                json(&e.annotations),
                e.state.as_str(),
                value,
                e.active_at,
                e.fired_at,
                e.resolved_at,
                e.ack.as_ref().map(|a| a.by.clone()),
                e.ack.as_ref().map(|a| a.comment.clone()),
                e.ack.as_ref().map(|a| a.at),
                now,
            ])?;
        }
    }
    tx.commit()
}

pub fn load_groups(conn: &Connection, now: i64) -> duckdb::Result<Vec<Group>> {
    let mut stmt = conn.prepare(
        "SELECT group_key, receiver, labels, notified, epoch_ns(last_notified) FROM alert_groups ORDER BY group_key",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Group::restored(
            r.get(0)?,
            r.get(1)?,
            parse::<Labels>(&r.get::<_, String>(2)?),
            parse::<BTreeSet<String>>(&r.get::<_, String>(3)?),
            r.get(4)?,
            now,
        ))
    })?;
    rows.collect()
}

/// Writes a group's state (inside the caller's transaction).
pub fn write_group(conn: &Connection, g: &Group) -> duckdb::Result<()> {
    conn.execute(
        "DELETE FROM alert_groups WHERE group_key = ?",
        duckdb::params![g.key],
    )?;
    conn.execute(
        "INSERT INTO alert_groups VALUES (?, ?, ?, ?, make_timestamp_ns(?))",
        duckdb::params![
            g.key,
            g.receiver,
            json(&g.labels),
            json(&g.notified),
            g.last_notified
        ],
    )?;
    Ok(())
}

pub fn delete_groups(conn: &Connection, keys: &[String]) -> duckdb::Result<()> {
    for k in keys {
        conn.execute(
            "DELETE FROM alert_groups WHERE group_key = ?",
            duckdb::params![k],
        )?;
    }
    Ok(())
}
