//! The history behind an alert, for the email's inline chart: the statistic of every stored
//! verdict of the alert's detection series, or the points of its metric series, from a while
//! before the alert fired until it resolved (or now). Read when a notification is sent, so
//! the chart shows what was stored by then.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use duckdb::Connection;
use millwatch_exporters::notify::{Alert, Labels, Notification, Point, Series};

use super::rules::{Condition, Rule};
use super::sources::attribute_labels;

/// How far before the alert fired the chart begins, so that it shows the change.
pub const HISTORY_BEFORE: Duration = Duration::from_secs(3600);
/// The most values one chart draws (the newest ones).
const MAX_POINTS: usize = 500;
/// Fewer values than this are no history: one value is the verdict the alert already states.
const MIN_POINTS: usize = 2;

fn ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos().min(i64::MAX as u128) as i64,
        Err(_) => 0,
    }
}

fn at(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64)
}

/// Sets `series` on every alert of `n` that has a history of at least two values.
pub fn fill(
    conn: &Connection,
    rules: &[Rule],
    n: &mut Notification,
    now: i64,
) -> duckdb::Result<()> {
    for a in &mut n.alerts {
        let Some(rule) = rules.iter().find(|r| r.name == a.label("alertname")) else {
            continue;
        };
        let from = ns(a.starts_at).saturating_sub(HISTORY_BEFORE.as_nanos() as i64);
        let until = a.ends_at.map_or(now, ns);
        let series = match &rule.condition {
            Condition::Detections(_) => detection_series(conn, a, from, until)?,
            Condition::Metric(m) => metric_series(conn, a, &m.name, m.threshold, from, until)?,
            Condition::Collector => None,
        };
        a.series = series.filter(|s| s.points.len() >= MIN_POINTS);
    }
    Ok(())
}

/// The statistic of the verdicts of the alert's (model, version, feature, detector, test).
fn detection_series(
    conn: &Connection,
    a: &Alert,
    from: i64,
    until: i64,
) -> duckdb::Result<Option<Series>> {
    if a.label("detector").is_empty() {
        return Ok(None);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT epoch_ns(time), statistic, threshold FROM detections \
         WHERE coalesce(model, '') = ? AND coalesce(version, '') = ? AND coalesce(feature, '') = ? \
           AND detector = ? AND coalesce(test, '') = ? \
           AND time >= make_timestamp_ns(?) AND time <= make_timestamp_ns(?) \
           AND statistic IS NOT NULL \
         ORDER BY time DESC LIMIT ?",
    )?;
    let rows = stmt.query_map(
        duckdb::params![
            a.label("model"),
            a.label("version"),
            a.label("feature"),
            a.label("detector"),
            a.label("test"),
            from,
            until,
            MAX_POINTS as u64
        ],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, f64>(1)?,
                r.get::<_, Option<f64>>(2)?,
            ))
        },
    )?;
    let mut points = Vec::new();
    let mut threshold = None;
    for row in rows {
        let (time, value, t) = row?;
        // Rows come newest first: the threshold drawn is the one in force now.
        threshold = threshold.or(t);
        points.push(Point {
            time: at(time),
            value,
        });
    }
    points.reverse();
    let test = a.label("test");
    let what = if test.is_empty() {
        a.label("detector")
    } else {
        test
    };
    let name = match a.label("feature") {
        "" => format!("{what} statistic"),
        f => format!("{what} statistic of {f}"),
    };
    Ok(Some(Series {
        name,
        points,
        threshold,
    }))
}

/// The points of the metric series whose attributes are the alert's labels.
fn metric_series(
    conn: &Connection,
    a: &Alert,
    metric: &str,
    threshold: f64,
    from: i64,
    until: i64,
) -> duckdb::Result<Option<Series>> {
    let mut stmt =
        conn.prepare_cached("SELECT series_id, attributes FROM metric_series WHERE name = ?")?;
    let rows = stmt.query_map([metric], |r| {
        Ok((r.get::<_, u64>(0)?, r.get::<_, Option<String>>(1)?))
    })?;
    let mut ids = Vec::new();
    for row in rows {
        let (id, attributes) = row?;
        if same_series(&attribute_labels(attributes.as_deref()), &a.labels) {
            ids.push(id);
        }
    }
    let mut points = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT epoch_ns(time), value FROM metric_points \
         WHERE series_id = ? AND time >= make_timestamp_ns(?) AND time <= make_timestamp_ns(?) \
           AND value IS NOT NULL \
         ORDER BY time DESC LIMIT ?",
    )?;
    for id in ids {
        let rows = stmt.query_map(duckdb::params![id, from, until, MAX_POINTS as u64], |r| {
            Ok(Point {
                time: at(r.get(0)?),
                value: r.get(1)?,
            })
        })?;
        for p in rows {
            points.push(p?);
        }
    }
    if points.is_empty() {
        return Ok(None);
    }
    points.sort_by_key(|p| p.time);
    let skip = points.len().saturating_sub(MAX_POINTS);
    points.drain(..skip);
    Ok(Some(Series {
        name: metric.to_string(),
        points,
        threshold: Some(threshold),
    })
    .filter(|s| !s.points.is_empty()))
}

/// Whether a series with `attributes` made the alert with `labels`: every attribute is one
/// of its labels with the same value (the rule adds `alertname`, `severity`, ... besides).
fn same_series(attributes: &Labels, labels: &Labels) -> bool {
    attributes
        .iter()
        .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::config::AlertingConfig;
    use crate::alerting::rules::compile;
    use millwatch_exporters::notify::alert::labels;

    const S: i64 = 1_000_000_000;

    fn db() -> Connection {
        let c = Connection::open_in_memory().expect("duckdb");
        for m in crate::store::schema::MIGRATIONS {
            c.execute_batch(m.sql).expect("schema");
        }
        c
    }

    fn drift_alert(feature: &str, starts: i64) -> Alert {
        let labels = labels(&[
            ("alertname", "MillwatchDrift"),
            ("severity", "warning"),
            ("model", "churn"),
            ("version", "1"),
            ("feature", feature),
            ("detector", "drift"),
            ("test", "psi"),
        ]);
        Alert::firing(labels, Labels::new(), at(starts))
    }

    fn verdict(c: &Connection, feature: &str, time: i64, statistic: f64) {
        c.execute(
            "INSERT INTO detections (time, model, version, feature, detector, test, statistic, threshold, drifted, verdict) \
             VALUES (make_timestamp_ns(?), 'churn', '1', ?, 'drift', 'psi', ?, 0.2, ?, 'x')",
            duckdb::params![time, feature, statistic, statistic > 0.2],
        )
        .expect("insert");
    }

    #[test]
    fn a_drift_alert_gets_its_statistic_over_time_and_one_verdict_is_no_history() {
        let c = db();
        let rules = compile(&AlertingConfig::default());
        let t0 = 1_700_000_000 * S;
        for (i, v) in [0.01, 0.03, 0.02, 0.6].iter().enumerate() {
            verdict(&c, "temp", t0 + i as i64 * 60 * S, *v);
        }
        // Another feature and a verdict from long before are not this alert's history.
        verdict(&c, "load", t0, 0.9);
        verdict(&c, "temp", t0 - 3 * 3600 * S, 0.5);
        verdict(&c, "speed", t0 + 180 * S, 0.7);
        let mut n = Notification::new(
            "mail",
            "k",
            Labels::new(),
            vec![
                drift_alert("temp", t0 + 180 * S),
                drift_alert("speed", t0 + 180 * S),
            ],
            "",
        );
        fill(&c, &rules, &mut n, t0 + 200 * S).expect("fill");
        let s = n.alerts[0].series.as_ref().expect("temp has history");
        assert_eq!(s.name, "psi statistic of temp");
        assert_eq!(s.threshold, Some(0.2));
        let values: Vec<f64> = s.points.iter().map(|p| p.value).collect();
        assert_eq!(values, [0.01, 0.03, 0.02, 0.6]);
        assert!(n.alerts[1].series.is_none(), "one verdict only");
        // Resolved before the last verdict: the chart ends there.
        let mut n = Notification::new(
            "mail",
            "k",
            Labels::new(),
            vec![drift_alert("temp", t0 + 60 * S).resolved_at(at(t0 + 120 * S))],
            "",
        );
        fill(&c, &rules, &mut n, t0 + 200 * S).expect("fill");
        let values: Vec<f64> = n.alerts[0]
            .series
            .as_ref()
            .expect("history")
            .points
            .iter()
            .map(|p| p.value)
            .collect();
        assert_eq!(values, [0.01, 0.03, 0.02]);
    }

    #[test]
    fn a_metric_alert_gets_the_points_of_its_own_series() {
        let c = db();
        let config: AlertingConfig = serde_saphyr::from_str(
            "rules:\n  - name: Hot\n    metric: { name: hw.temperature, op: \">\", threshold: 80 }\n",
        )
        .expect("config");
        let rules = compile(&config);
        let t0 = 1_700_000_000 * S;
        for (id, hw) in [(1u64, "spindle-0"), (2, "spindle-1")] {
            c.execute(
                "INSERT INTO metric_series (series_id, name, type, attributes, resource_id, scope_id) \
                 VALUES (?, 'hw.temperature', 'gauge', ?, 1, 1)",
                duckdb::params![id, format!("{{\"hw.id\":\"{hw}\"}}")],
            )
            .expect("series");
            for (i, v) in [70.0, 75.0, 85.0].iter().enumerate() {
                c.execute(
                    "INSERT INTO metric_points (series_id, time, value) VALUES (?, make_timestamp_ns(?), ?)",
                    duckdb::params![id, t0 + i as i64 * S, v + id as f64],
                )
                .expect("point");
            }
        }
        let labels = labels(&[
            ("alertname", "Hot"),
            ("severity", "warning"),
            ("hw_id", "spindle-1"),
            ("metric", "hw.temperature"),
        ]);
        let mut n = Notification::new(
            "mail",
            "k",
            Labels::new(),
            vec![Alert::firing(labels, Labels::new(), at(t0 + 2 * S))],
            "",
        );
        fill(&c, &rules, &mut n, t0 + 3 * S).expect("fill");
        let s = n.alerts[0].series.as_ref().expect("history");
        assert_eq!(s.name, "hw.temperature");
        assert_eq!(s.threshold, Some(80.0));
        let values: Vec<f64> = s.points.iter().map(|p| p.value).collect();
        assert_eq!(values, [72.0, 77.0, 87.0]);
    }
}
