//! What the audit log learns by watching the store: detector state changes (`detections`),
//! baselines set or replaced (`detection_baselines`), alerts fired, resolved and acknowledged
//! (`alerts`), notifications and scheduled reports delivered or failed
//! (`alert_delivery_attempts`), silences created,
//! changed and expired (`alert_silences`), and deployments declared with an `ml.deployment`
//! log event (`logs`). The subsystems that write those tables need no hook; what has been
//! seen is kept in `audit_watch`, written in the same transaction as the entries, so an entry
//! is neither lost nor written twice across a restart.
//!
//! Tables whose rows carry a time but no id are read from a little before the newest time seen
//! ([`OVERLAP_NS`]), and rows already seen are skipped by key.

use std::collections::{BTreeMap, BTreeSet};

use duckdb::Connection;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::entry::NewEntry;

/// Rows committed up to this long after the time they carry are still seen.
pub const OVERLAP_NS: i64 = 60_000_000_000;

/// Where each source's reading stands; stored as JSON in `audit_watch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WatchState {
    pub detections: Tail,
    /// Per detector series (model, version, feature, detector): whether its last verdict found
    /// something (drifted, degraded, breached, out of control).
    pub series: BTreeMap<String, bool>,
    /// Per model and version: the baseline's creation time and origin.
    pub baselines: BTreeMap<String, (i64, String)>,
    pub alerts: BTreeMap<String, AlertSeen>,
    pub deliveries: Tail,
    pub silences: BTreeMap<String, SilenceSeen>,
    pub declared: Tail,
}

/// Rows read up to `cursor_ns`; the keys of those within the overlap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tail {
    pub cursor_ns: i64,
    pub seen: BTreeSet<String>,
}

impl Tail {
    /// Reads from here on.
    pub fn from_ns(&self) -> i64 {
        self.cursor_ns.saturating_sub(OVERLAP_NS)
    }

    /// True the first time a key is offered.
    fn admit(&mut self, time: i64, key: String) -> bool {
        self.cursor_ns = self.cursor_ns.max(time);
        self.seen.insert(format!("{time:020}\u{1f}{key}"))
    }

    fn prune(&mut self) {
        let keep = format!("{:020}", self.from_ns());
        self.seen = self.seen.split_off(&keep);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertSeen {
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SilenceSeen {
    pub updated_at: i64,
    pub ends_at: i64,
    pub expired: bool,
}

/// Who a receiver reaches, for the delivery entries: its channel and recipient.
pub type Recipients = BTreeMap<String, (String, String)>;

/// One round over every source: the entries to write and the state after them.
pub fn round(
    conn: &Connection,
    before: &WatchState,
    recipients: &Recipients,
    now: i64,
) -> duckdb::Result<(Vec<NewEntry>, WatchState)> {
    let mut state = before.clone();
    let mut entries = Vec::new();
    detections(conn, &mut state, &mut entries)?;
    baselines(conn, &mut state, &mut entries)?;
    alerts(conn, &mut state, &mut entries)?;
    deliveries(conn, &mut state, recipients, &mut entries)?;
    silences(conn, &mut state, now, &mut entries)?;
    declared(conn, &mut state, &mut entries)?;
    for t in [
        &mut state.detections,
        &mut state.deliveries,
        &mut state.declared,
    ] {
        t.prune();
    }
    entries.sort_by_key(|e| e.time);
    Ok((entries, state))
}

/// The actions a detector's verdicts turn into: (found, cleared).
fn detector_actions(detector: &str) -> (&'static str, &'static str) {
    match detector {
        "drift" | "drift_share" => ("drift.started", "drift.ended"),
        "data_quality" => ("data_quality.breached", "data_quality.recovered"),
        "performance" | "performance_change" => ("performance.degraded", "performance.recovered"),
        "machine_health" => ("control_chart.out_of_control", "control_chart.in_control"),
        _ => ("detector.found", "detector.cleared"),
    }
}

/// One decision on one detector series: found by any of its results, the results, the
/// series' names (model, version, feature, detector), the first finding's verdict.
type Decision = (bool, Vec<Value>, [String; 4], Option<String>);

fn detections(
    conn: &Connection,
    state: &mut WatchState,
    entries: &mut Vec<NewEntry>,
) -> duckdb::Result<()> {
    let mut stmt = conn.prepare(
        "SELECT epoch_ns(time), coalesce(model, ''), coalesce(version, ''), coalesce(feature, ''), \
         detector, coalesce(test, ''), statistic, p_value, threshold, drifted, verdict, \
         epoch_ns(window_start), epoch_ns(window_end) \
         FROM detections WHERE time >= make_timestamp_ns(?) ORDER BY time, model, version, feature, detector, test",
    )?;
    let mut rows = stmt.query([state.detections.from_ns()])?;
    // The rows of one decision (one time) for one series count as one verdict: found if any is.
    let mut decisions: BTreeMap<(i64, String), Decision> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let time: i64 = r.get(0)?;
        let ids: [String; 4] = [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?];
        let test: String = r.get(5)?;
        let key = ids.join("\u{1f}");
        if !state.detections.admit(time, format!("{key}\u{1f}{test}")) {
            continue;
        }
        let drifted: bool = r.get(9)?;
        let verdict: String = r.get(10)?;
        let d = decisions
            .entry((time, key))
            .or_insert_with(|| (false, Vec::new(), ids.clone(), None));
        d.0 |= drifted;
        if drifted && d.3.is_none() {
            d.3 = Some(verdict.clone());
        }
        d.1.push(json!({
            "test": test,
            "statistic": r.get::<_, Option<f64>>(6)?,
            "p_value": r.get::<_, Option<f64>>(7)?,
            "threshold": r.get::<_, Option<f64>>(8)?,
            "drifted": drifted,
            "verdict": verdict,
            "window_start": r.get::<_, Option<i64>>(11)?.map(super::entry::rfc3339),
            "window_end": r.get::<_, Option<i64>>(12)?.map(super::entry::rfc3339),
        }));
    }
    for ((time, key), (found, results, [model, version, feature, detector], verdict)) in decisions {
        let was = state.series.insert(key, found).unwrap_or(false);
        if was == found {
            continue;
        }
        let (on, off) = detector_actions(&detector);
        let object = json!({
            "model": model, "version": version, "feature": feature, "detector": detector,
        });
        let mut e = NewEntry::system(time, if found { on } else { off }, object)
            .old_value(json!({ "found": was }))
            .new_value(json!({ "found": found, "results": results }));
        if model.is_empty() {
            e.model = None;
        }
        entries.push(e.reason(verdict.unwrap_or_else(|| "no longer found".into())));
    }
    Ok(())
}

fn baselines(
    conn: &Connection,
    state: &mut WatchState,
    entries: &mut Vec<NewEntry>,
) -> duckdb::Result<()> {
    let mut stmt = conn.prepare(
        "SELECT model, version, epoch_ns(created), CAST(origin AS VARCHAR), first_event_id, last_event_id \
         FROM detection_baselines ORDER BY created",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (model, version): (String, String) = (r.get(0)?, r.get(1)?);
        let created: i64 = r.get(2)?;
        let origin: String = r.get(3)?;
        let key = format!("{model}\u{1f}{version}");
        let previous = state.baselines.get(&key).cloned();
        if previous.as_ref().is_some_and(|(c, _)| *c == created) {
            continue;
        }
        let origin_json =
            serde_json::from_str::<Value>(&origin).unwrap_or(Value::from(origin.clone()));
        let mut e = NewEntry::system(
            created,
            if previous.is_some() {
                "baseline.replaced"
            } else {
                "baseline.set"
            },
            json!({ "model": model, "version": version }),
        )
        .new_value(json!({
            "origin": origin_json,
            "first_event_id": r.get::<_, Option<u64>>(4)?,
            "last_event_id": r.get::<_, Option<u64>>(5)?,
        }));
        if let Some((_, old)) = &previous {
            e = e.old_value(json!({ "origin": serde_json::from_str::<Value>(old).unwrap_or(Value::from(old.clone())) }));
        }
        entries.push(e);
        state.baselines.insert(key, (created, origin));
    }
    Ok(())
}

fn alerts(
    conn: &Connection,
    state: &mut WatchState,
    entries: &mut Vec<NewEntry>,
) -> duckdb::Result<()> {
    let mut stmt = conn.prepare(
        "SELECT fingerprint, rule, CAST(labels AS VARCHAR), value, epoch_ns(fired_at), epoch_ns(resolved_at), \
         acknowledged_by, acknowledgement_comment, epoch_ns(acknowledged_at), \
         CAST(annotations AS VARCHAR) FROM alerts ORDER BY fingerprint",
    )?;
    let mut rows = stmt.query([])?;
    let mut present = BTreeSet::new();
    while let Some(r) = rows.next()? {
        let fp: String = r.get(0)?;
        let rule: String = r.get(1)?;
        let labels: Value = serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or(Value::Null);
        let value: Option<f64> = r.get(3)?;
        let (fired, resolved, acked): (Option<i64>, Option<i64>, Option<i64>) =
            (r.get(4)?, r.get(5)?, r.get(8)?);
        let summary = serde_json::from_str::<Value>(&r.get::<_, String>(9)?)
            .ok()
            .and_then(|a| a["summary"].as_str().map(str::to_owned))
            .unwrap_or_default();
        present.insert(fp.clone());
        let seen = state.alerts.entry(fp.clone()).or_default();
        let mut object = json!({ "alert": fp, "rule": rule, "labels": labels });
        if let Some(m) = labels["model"].as_str() {
            object["model"] = Value::from(m);
        }
        if let Some(t) = fired
            && seen.fired_at != Some(t)
        {
            seen.fired_at = Some(t);
            seen.resolved_at = None;
            entries.push(
                NewEntry::system(t, "alert.fired", object.clone())
                    .old_value(json!({ "state": "pending" }))
                    .new_value(json!({ "state": "firing", "value": value }))
                    .reason(summary.clone()),
            );
        }
        if let Some(t) = resolved
            && fired.is_some()
            && seen.resolved_at != Some(t)
        {
            seen.resolved_at = Some(t);
            entries.push(
                NewEntry::system(t, "alert.resolved", object.clone())
                    .old_value(json!({ "state": "firing" }))
                    .new_value(json!({ "state": "resolved" })),
            );
        }
        if let Some(t) = acked
            && seen.acknowledged_at != Some(t)
        {
            seen.acknowledged_at = Some(t);
            let by: Option<String> = r.get(6)?;
            let comment: Option<String> = r.get(7)?;
            entries.push(
                NewEntry::system(t, "alert.acknowledged", object.clone())
                    .actor(by.unwrap_or_else(|| "unknown".into()))
                    .new_value(json!({ "acknowledged": true }))
                    .reason(comment.unwrap_or_default()),
            );
        }
    }
    state.alerts.retain(|fp, _| present.contains(fp));
    Ok(())
}

fn deliveries(
    conn: &Connection,
    state: &mut WatchState,
    recipients: &Recipients,
    entries: &mut Vec<NewEntry>,
) -> duckdb::Result<()> {
    let mut stmt = conn.prepare(
        "SELECT a.outbox_id, epoch_ns(a.time), a.receiver, a.outcome, a.reason, o.status, o.group_key, \
         json_extract_string(o.payload, '$.commonLabels.model'), \
         CAST(json_extract(o.payload, '$.alerts[*].fingerprint') AS VARCHAR) \
         FROM alert_delivery_attempts a LEFT JOIN alert_outbox o ON o.id = a.outbox_id \
         WHERE a.time >= make_timestamp_ns(?) ORDER BY a.time, a.outbox_id",
    )?;
    let mut rows = stmt.query([state.deliveries.from_ns()])?;
    while let Some(r) = rows.next()? {
        let id: u64 = r.get(0)?;
        let time: i64 = r.get(1)?;
        let receiver: String = r.get(2)?;
        let outcome: String = r.get(3)?;
        if !state.deliveries.admit(time, format!("{id}\u{1f}{outcome}")) {
            continue;
        }
        let (channel, recipient) = recipients
            .get(&receiver)
            .cloned()
            .unwrap_or_else(|| ("unknown".into(), String::new()));
        let alerts = r
            .get::<_, Option<String>>(8)?
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .unwrap_or(Value::Null);
        let group: Option<String> = r.get(6)?;
        // A scheduled report's e-mail (report::schedule) rather than an alert's.
        let report = group
            .as_deref()
            .is_some_and(|g| g.starts_with(crate::report::schedule::GROUP_PREFIX));
        let mut object = json!({
            "notification": id, "receiver": receiver, "channel": channel, "recipient": recipient,
            "group": group, "status": r.get::<_, Option<String>>(5)?,
            "alerts": alerts,
        });
        if let Some(m) = r.get::<_, Option<String>>(7)? {
            object["model"] = Value::from(m);
        }
        let action = match (report, outcome == "delivered") {
            (false, true) => "notification.delivered",
            (false, false) => "notification.failed",
            (true, true) => "report.delivered",
            (true, false) => "report.failed",
        };
        entries.push(
            NewEntry::system(time, action, object)
                .new_value(json!({ "outcome": outcome }))
                .reason(r.get::<_, Option<String>>(4)?.unwrap_or_default()),
        );
    }
    Ok(())
}

fn silences(
    conn: &Connection,
    state: &mut WatchState,
    now: i64,
    entries: &mut Vec<NewEntry>,
) -> duckdb::Result<()> {
    let mut stmt = conn.prepare(
        "SELECT id, CAST(matchers AS VARCHAR), epoch_ns(starts_at), epoch_ns(ends_at), created_by, comment, \
         epoch_ns(created_at), epoch_ns(updated_at), ended_by, end_comment FROM alert_silences ORDER BY created_at, id",
    )?;
    let mut rows = stmt.query([])?;
    let mut present = BTreeSet::new();
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        let matchers: Value = serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or(Value::Null);
        let (starts, ends): (i64, i64) = (r.get(2)?, r.get(3)?);
        let (by, comment): (String, String) = (r.get(4)?, r.get(5)?);
        let (created, updated): (i64, i64) = (r.get(6)?, r.get(7)?);
        present.insert(id.clone());
        let mut object = json!({ "silence": id, "matchers": matchers });
        if let Some(m) = silenced_model(&matchers) {
            object["model"] = Value::from(m);
        }
        let value = |ends: i64| json!({ "starts_at": super::entry::rfc3339(starts), "ends_at": super::entry::rfc3339(ends) });
        match state.silences.get_mut(&id) {
            None => {
                entries.push(
                    NewEntry::system(created, "silence.created", object.clone())
                        .actor(by.clone())
                        .new_value(value(ends))
                        .reason(comment.clone()),
                );
                state.silences.insert(
                    id.clone(),
                    SilenceSeen {
                        updated_at: updated,
                        ends_at: ends,
                        expired: false,
                    },
                );
            }
            Some(seen) if seen.updated_at != updated && !seen.expired => {
                // An end moved to now or earlier is an expiry, told below.
                if ends > now {
                    entries.push(
                        NewEntry::system(updated, "silence.changed", object.clone())
                            .old_value(value(seen.ends_at))
                            .new_value(value(ends))
                            .reason(comment.clone()),
                    );
                }
                seen.updated_at = updated;
            }
            Some(_) => {}
        }
        let Some(seen) = state.silences.get_mut(&id) else {
            continue;
        };
        if ends <= now && !seen.expired {
            // Ended by a person (`DELETE /api/v1/silences/{id}?by=`), or ran out.
            let (by, why): (Option<String>, Option<String>) = (r.get(8)?, r.get(9)?);
            let mut e = NewEntry::system(ends, "silence.expired", object)
                .old_value(value(seen.ends_at))
                .new_value(value(ends));
            e = match by {
                Some(by) => e.actor(by).reason(why.unwrap_or(comment)),
                None => e.reason(comment),
            };
            entries.push(e);
            seen.expired = true;
        }
        seen.ends_at = ends;
    }
    state.silences.retain(|id, _| present.contains(id));
    Ok(())
}

/// The model an equality matcher `model="x"` names.
fn silenced_model(matchers: &Value) -> Option<String> {
    use crate::alerting::rules::{MatchOp, Matcher};
    matchers.as_array()?.iter().find_map(|m| {
        let m = Matcher::parse(m.as_str()?).ok()?;
        (m.name == "model" && m.op == MatchOp::Equal).then_some(m.value)
    })
}

/// The attributes of an `ml.deployment` log event (docs/signals.md).
pub const DEPLOYMENT_EVENT: &str = "ml.deployment";

fn declared(
    conn: &Connection,
    state: &mut WatchState,
    entries: &mut Vec<NewEntry>,
) -> duckdb::Result<()> {
    let mut stmt = conn.prepare(
        "SELECT epoch_ns(coalesce(l.time, l.observed_time)), CAST(l.attributes AS VARCHAR), \
         r.environment, r.host_name, r.site_name, r.site_line \
         FROM logs l LEFT JOIN resources r ON r.resource_id = l.resource_id \
         WHERE coalesce(l.time, l.observed_time) >= make_timestamp_ns(?) \
         AND (l.event_name = ? OR json_extract_string(l.attributes, '$.\"event.name\"') = ?) \
         ORDER BY 1",
    )?;
    let mut rows = stmt.query(duckdb::params![
        state.declared.from_ns(),
        DEPLOYMENT_EVENT,
        DEPLOYMENT_EVENT
    ])?;
    while let Some(r) = rows.next()? {
        let time: i64 = r.get(0)?;
        let text: Option<String> = r.get(1)?;
        if !state.declared.admit(time, text.clone().unwrap_or_default()) {
            continue;
        }
        let attrs: Value = text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let attr = |k: &str| attrs.get(k).and_then(Value::as_str).map(str::to_owned);
        let resource = |i: usize| r.get::<_, Option<String>>(i);
        let environment = attr("deployment.environment.name")
            .or(attr("deployment.environment"))
            .or(resource(2)?);
        let host = resource(3)?;
        let object = json!({
            "model": attr("ml.model.name"),
            "version": attr("ml.model.version"),
            "environment": environment,
            "host": host,
            "site": resource(4)?,
            "line": resource(5)?,
            "change_ticket": attr("ml.deployment.change_ticket"),
            "declared": true,
        });
        entries.push(
            NewEntry::system(time, "deployment", object)
                .actor(attr("ml.deployment.actor").unwrap_or_else(|| "unknown".into()))
                .source(host)
                .old_value(json!({ "version": attr("ml.deployment.previous_version") }))
                .new_value(json!({ "version": attr("ml.model.version") }))
                .reason(attr("ml.deployment.reason").unwrap_or_default()),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::migrated_in_memory as db;

    fn verdict(c: &Connection, time: i64, feature: &str, test: &str, drifted: bool) {
        c.execute(
            "INSERT INTO detections (time, model, version, feature, detector, test, statistic, drifted, verdict) \
             VALUES (make_timestamp_ns(?), 'm', '1', ?, 'drift', ?, 0.5, ?, ?)",
            duckdb::params![time, feature, test, drifted, if drifted { "drift" } else { "no_drift" }],
        )
        .unwrap();
    }

    fn actions(entries: &[NewEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e.action,
                    e.object["feature"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    #[test]
    fn drift_starts_and_ends_once_per_series_and_a_saved_state_repeats_nothing() {
        let c = db();
        let none = Recipients::new();
        verdict(&c, 1_000, "a", "ks", false);
        verdict(&c, 1_000, "b", "ks", true);
        verdict(&c, 1_000, "b", "psi", true);
        let (first, state) = round(&c, &WatchState::default(), &none, 5_000).unwrap();
        assert_eq!(actions(&first), ["drift.started b"]);
        assert_eq!(
            first[0].new_value.as_ref().unwrap()["results"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        // Read again (the rows are within the overlap): nothing new; likewise from the state as
        // saved and loaded at a restart.
        let saved: WatchState =
            serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        assert!(round(&c, &saved, &none, 6_000).unwrap().0.is_empty());
        verdict(&c, 2_000, "b", "ks", true);
        verdict(&c, 2_000, "a", "ks", true);
        verdict(&c, 3_000, "b", "ks", false);
        let (next, _) = round(&c, &saved, &none, 7_000).unwrap();
        assert_eq!(actions(&next), ["drift.started a", "drift.ended b"]);
    }

    #[test]
    fn alerts_silences_and_deliveries_become_entries_with_who_and_whom() {
        let c = db();
        c.execute_batch(
            r#"INSERT INTO alerts VALUES ('fp1', 'MillwatchDrift', '{"alertname":"MillwatchDrift","model":"m"}',
                 '{"summary":"m drifted"}', 'firing', 0.9, make_timestamp_ns(100), make_timestamp_ns(200), NULL,
                 'ana', 'looking', make_timestamp_ns(300), make_timestamp_ns(300));
               INSERT INTO alert_silences (id, matchers, starts_at, ends_at, created_by, comment, created_at, updated_at) VALUES ('s1', '["model=\"m\""]', make_timestamp_ns(400),
                 make_timestamp_ns(10000), 'ben', 'retraining', make_timestamp_ns(400), make_timestamp_ns(400));
               INSERT INTO alert_outbox VALUES (7, make_timestamp_ns(250), 'mail', 'g', 'firing',
                 '{"commonLabels":{"model":"m"},"alerts":[{"fingerprint":"fp1"}]}', 'delivered', 1,
                 make_timestamp_ns(250), NULL, make_timestamp_ns(260), make_timestamp_ns(260));
               INSERT INTO alert_delivery_attempts VALUES (7, make_timestamp_ns(260), 'mail', 'delivered', NULL, NULL);"#,
        )
        .unwrap();
        let recipients = Recipients::from([(
            "mail".into(),
            ("email".into(), "oncall@plant.example".into()),
        )]);
        let (entries, state) = round(&c, &WatchState::default(), &recipients, 5_000).unwrap();
        let got: Vec<(&str, &str, i64)> = entries
            .iter()
            .map(|e| (e.action.as_str(), e.actor.as_str(), e.time))
            .collect();
        assert_eq!(
            got,
            [
                ("alert.fired", "system", 200),
                ("notification.delivered", "system", 260),
                ("alert.acknowledged", "ana", 300),
                ("silence.created", "ben", 400),
            ]
        );
        assert_eq!(entries[1].object["recipient"], "oncall@plant.example");
        assert_eq!(entries[1].object["alerts"], json!(["fp1"]));
        assert_eq!(entries[3].model.as_deref(), Some("m"));
        // The silence ends: expired once, at its end.
        let (later, _) = round(&c, &state, &recipients, 20_000).unwrap();
        let got: Vec<(&str, i64)> = later.iter().map(|e| (e.action.as_str(), e.time)).collect();
        assert_eq!(got, [("silence.expired", 10_000)]);
    }

    #[test]
    fn a_silence_ended_by_a_person_names_them_and_a_report_delivery_is_a_report_entry() {
        let c = db();
        let s = crate::alerting::silences::Silence {
            id: "s2".into(),
            matchers: vec![crate::alerting::rules::Matcher::parse("model=\"m\"").unwrap()],
            starts_at: 100,
            ends_at: 1_000_000,
            created_by: "ben".into(),
            comment: "retraining".into(),
            created_at: 100,
        };
        crate::alerting::silences::insert(&c, &s).unwrap();
        c.execute_batch(
            r#"INSERT INTO alert_outbox VALUES (8, make_timestamp_ns(250), 'mail', 'report/weekly/900', 'resolved',
                 '{"commonLabels":{"model":"m"},"alerts":[]}', 'delivered', 1,
                 make_timestamp_ns(250), NULL, make_timestamp_ns(260), make_timestamp_ns(260));
               INSERT INTO alert_delivery_attempts VALUES (8, make_timestamp_ns(260), 'mail', 'delivered', NULL, NULL);"#,
        )
        .unwrap();
        let none = Recipients::new();
        let (first, state) = round(&c, &WatchState::default(), &none, 200).unwrap();
        let got: Vec<&str> = first.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(got, ["silence.created", "report.delivered"]);
        assert!(
            crate::alerting::silences::expire(&c, "s2", 500, Some("carl"), Some("fixed early"))
                .unwrap()
        );
        let (later, _) = round(&c, &state, &none, 600).unwrap();
        let got: Vec<(&str, &str, Option<&str>)> = later
            .iter()
            .map(|e| (e.action.as_str(), e.actor.as_str(), e.reason.as_deref()))
            .collect();
        assert_eq!(got, [("silence.expired", "carl", Some("fixed early"))]);
    }
}
