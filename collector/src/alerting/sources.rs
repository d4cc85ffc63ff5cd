//! What rules look at: the verdicts of `detections` decided since the last evaluation, the
//! newest point of metric series, and the collector's own counters and outbox.

use std::collections::VecDeque;

use duckdb::Connection;
use millwatch_exporters::notify::Labels;

use super::config::MetricCondition;
use super::rules::{Candidate, all_match, format_value};
use super::wording::{Row, describe};
use crate::telemetry::{Snapshot, Telemetry};

/// One verdict, as detection rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The series' labels (model, version, feature, detector, test), `verdict` to match on,
    /// the value, and the verdict's words.
    pub candidate: Candidate,
    pub drifted: bool,
}

/// Verdicts to evaluate, in the order decided.
#[derive(Debug, Default)]
pub struct Verdicts {
    pub rows: Vec<Verdict>,
    /// The first read after a start: the rows are every series' verdicts since its newest one
    /// that did not drift (at most the newest `tail` per series), so a detection rule's
    /// alerts they do not hold have ended meanwhile.
    pub complete: bool,
}

/// The verdicts decided since the last read: the first read takes each series' drifted tail,
/// later ones every row after the newest decision time seen. Every row of `detections` is
/// written by the detection engine's one thread, one transaction at a time with the time it
/// decided, so rows committed later never carry an earlier time.
pub struct DetectionSource {
    /// The newest decision time read (ns); none before the first read.
    cursor: Option<i64>,
    /// How many of a series' newest drifted verdicts the first read takes: enough for the
    /// largest `for: N windows`.
    tail: u32,
}

/// The columns a verdict is read from, in this order.
const VERDICT_COLUMNS: &str = "epoch_ns(time), model, version, feature, detector, test, verdict, drifted, \
     statistic, threshold, p_value, effect_size, CAST(details AS VARCHAR)";

/// The order verdicts were decided in: by decision time, then by window (the windows one
/// transaction decided share its time).
const DECIDED_ORDER: &str = "time, first_event_id, window_end";

impl DetectionSource {
    pub fn new(tail: u32) -> DetectionSource {
        DetectionSource {
            cursor: None,
            tail: tail.max(1),
        }
    }

    /// The verdicts decided since the last call.
    pub fn read(&mut self, conn: &mut Connection) -> duckdb::Result<Verdicts> {
        let Some(cursor) = self.cursor else {
            // The tails and the cursor from one snapshot: nothing falls between them.
            let tx = conn.transaction()?;
            let newest: i64 = tx.query_row(
                "SELECT coalesce(epoch_ns(max(time)), 0) FROM detections",
                [],
                |r| r.get(0),
            )?;
            let rows = query_verdicts(
                &tx,
                &format!(
                    "SELECT {VERDICT_COLUMNS} FROM ( \
                        SELECT *, min(CASE WHEN drifted THEN NULL ELSE age END) \
                                  OVER (PARTITION BY model, version, feature, detector, test) AS clean_age \
                        FROM (SELECT *, row_number() OVER (PARTITION BY model, version, feature, detector, test \
                                                           ORDER BY time DESC, first_event_id DESC, window_end DESC) AS age \
                              FROM detections)) \
                     WHERE age < coalesce(clean_age, age + 1) AND age <= ? \
                     ORDER BY {DECIDED_ORDER}"
                ),
                duckdb::params![self.tail],
            )?;
            tx.commit()?;
            self.cursor = Some(newest);
            return Ok(Verdicts {
                rows: rows.into_iter().map(|(_, v)| v).collect(),
                complete: true,
            });
        };
        let rows = query_verdicts(
            conn,
            &format!(
                "SELECT {VERDICT_COLUMNS} FROM detections WHERE time > make_timestamp_ns(?) \
                 ORDER BY {DECIDED_ORDER}"
            ),
            duckdb::params![cursor],
        )?;
        if let Some((newest, _)) = rows.last() {
            self.cursor = Some((*newest).max(cursor));
        }
        Ok(Verdicts {
            rows: rows.into_iter().map(|(_, v)| v).collect(),
            complete: false,
        })
    }
}

/// Verdicts with their decision times (ns).
fn query_verdicts(
    conn: &Connection,
    sql: &str,
    params: impl duckdb::Params,
) -> duckdb::Result<Vec<(i64, Verdict)>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(params, |r| {
        let text = |i: usize| -> duckdb::Result<Option<String>> {
            Ok(r.get::<_, Option<String>>(i)?.filter(|v| !v.is_empty()))
        };
        let row = Row {
            model: text(1)?,
            version: text(2)?,
            feature: text(3)?,
            detector: r.get(4)?,
            test: text(5)?,
            verdict: r.get(6)?,
            statistic: r.get(8)?,
            threshold: r.get(9)?,
            p_value: r.get(10)?,
            effect_size: r.get(11)?,
            details: text(12)?
                .and_then(|d| serde_json::from_str(&d).ok())
                .unwrap_or_default(),
        };
        Ok((r.get::<_, i64>(0)?, verdict(row, r.get(7)?)))
    })?;
    rows.collect()
}

/// A row as rules see it: labels, `verdict` to match on, and its words and figures as
/// annotations.
fn verdict(row: Row, drifted: bool) -> Verdict {
    let mut labels = Labels::new();
    for (name, value) in [
        ("model", &row.model),
        ("version", &row.version),
        ("feature", &row.feature),
        ("detector", &Some(row.detector.clone())),
        ("test", &row.test),
    ] {
        if let Some(v) = value {
            labels.insert(name.to_string(), v.clone());
        }
    }
    let mut match_only = Labels::new();
    match_only.insert("verdict".into(), row.verdict.clone());
    let words = describe(&row);
    let mut annotations = Labels::new();
    for (name, v) in [
        ("value", words.value),
        ("threshold", row.threshold),
        ("p_value", row.p_value),
        ("effect_size", row.effect_size),
    ] {
        if let Some(v) = v {
            annotations.insert(name.to_string(), format_value(v));
        }
    }
    annotations.insert("summary".into(), words.summary);
    annotations.insert("description".into(), words.description);
    Verdict {
        candidate: Candidate {
            labels,
            match_only,
            value: words.value.unwrap_or(f64::NAN),
            annotations,
        },
        drifted,
    }
}

/// Metric series named `cond.name` whose newest point within the lookback matches the
/// matchers and satisfies the comparison.
pub fn metric_candidates(
    conn: &Connection,
    cond: &MetricCondition,
    now_ns: i64,
) -> duckdb::Result<Vec<Candidate>> {
    let since = now_ns.saturating_sub(cond.lookback.as_nanos().min(i64::MAX as u128) as i64);
    let mut stmt = conn.prepare(
        "SELECT attributes, value FROM ( \
            SELECT s.series_id, s.attributes, p.value, \
                   row_number() OVER (PARTITION BY s.series_id ORDER BY p.time DESC) AS newest \
            FROM metric_series s JOIN metric_points p ON p.series_id = s.series_id \
            WHERE s.name = ? AND p.time >= make_timestamp_ns(?)) \
         WHERE newest = 1 ORDER BY series_id",
    )?;
    let rows = stmt.query_map(duckdb::params![cond.name, since], |r| {
        Ok((r.get::<_, Option<String>>(0)?, r.get::<_, Option<f64>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (attributes, value) = row?;
        let Some(value) = value else { continue };
        let mut labels = attribute_labels(attributes.as_deref());
        labels.insert("metric".into(), cond.name.clone());
        if !all_match(&cond.matchers, &labels) || !cond.op.holds(value, cond.threshold) {
            continue;
        }
        let mut annotations = Labels::new();
        annotations.insert("value".into(), format_value(value));
        annotations.insert("threshold".into(), format_value(cond.threshold));
        out.push(Candidate {
            labels,
            match_only: Labels::new(),
            value,
            annotations,
        });
    }
    Ok(out)
}

/// A series' attributes (a JSON object) as labels: strings as they are, other values as JSON;
/// names that are not label names get their other characters replaced by `_`, as Prometheus
/// does (`machine.id` → `machine_id`).
pub(super) fn attribute_labels(json: Option<&str>) -> Labels {
    let mut labels = Labels::new();
    let Some(Ok(serde_json::Value::Object(map))) = json.map(serde_json::from_str) else {
        return labels;
    };
    for (k, v) in map {
        let name: String = k
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let value = match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        labels.insert(name, value);
    }
    labels
}

/// How far back refused requests count, and how full the queue may get.
const REFUSED_WINDOW_NS: i64 = 5 * 60 * 1_000_000_000;
const QUEUE_FULL: f64 = 0.9;
/// Failed attempts after which a pending notification counts as failing.
const FAILING_ATTEMPTS: u32 = 3;
/// How long a notification given up on keeps the delivery alert active.
const FAILED_WINDOW_NS: i64 = 15 * 60 * 1_000_000_000;

/// The collector's own trouble.
#[derive(Default)]
pub struct CollectorSource {
    refused: VecDeque<(i64, u64)>,
}

impl CollectorSource {
    pub fn candidates(
        &mut self,
        telemetry: &Telemetry,
        conn: &Connection,
        now_ns: i64,
    ) -> duckdb::Result<Vec<Candidate>> {
        let snap = telemetry.snapshot();
        let refused: u64 = snap
            .receivers
            .iter()
            .flat_map(|r| r.refused.iter().map(|(_, n)| *n))
            .sum();
        self.refused.push_back((now_ns, refused));
        while self
            .refused
            .front()
            .is_some_and(|(t, _)| now_ns - *t > REFUSED_WINDOW_NS)
        {
            self.refused.pop_front();
        }
        let mut out = Vec::new();
        let oldest = self.refused.front().map_or(refused, |(_, n)| *n);
        if refused > oldest {
            out.push(trouble(
                "MillwatchRefusingData",
                Labels::new(),
                (refused - oldest) as f64,
                "Millwatch refused requests",
                format!(
                    "{} requests were refused in the last 5 minutes (queue full, too large, or bad data).",
                    refused - oldest
                ),
            ));
        }
        if snap.queue_capacity > 0 {
            let fill = snap.queue_items as f64 / snap.queue_capacity as f64;
            if fill >= QUEUE_FULL {
                out.push(trouble(
                    "MillwatchQueueFull",
                    Labels::new(),
                    fill,
                    "Millwatch's ingest queue is nearly full",
                    format!(
                        "{} of {} rows queued for the store; clients will get retryable refusals.",
                        snap.queue_items, snap.queue_capacity
                    ),
                ));
            }
        }
        if let Some(report) = journal_damage(telemetry, &snap) {
            out.push(report);
        }
        let mut stmt = conn.prepare(
            "SELECT receiver, count(*), max(last_error) FROM alert_outbox \
             WHERE (delivery = 'pending' AND attempts >= ?) \
                OR (delivery = 'failed' AND updated >= make_timestamp_ns(?)) \
             GROUP BY receiver ORDER BY receiver",
        )?;
        let rows = stmt.query_map(
            duckdb::params![FAILING_ATTEMPTS, now_ns - FAILED_WINDOW_NS],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u64>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            },
        )?;
        for row in rows {
            let (receiver, n, error) = row?;
            let mut labels = Labels::new();
            labels.insert("receiver".into(), receiver.clone());
            out.push(trouble(
                "MillwatchDeliveryFailing",
                labels,
                n as f64,
                "Millwatch cannot deliver notifications",
                format!(
                    "{n} notifications to receiver {receiver} are failing: {}",
                    error.unwrap_or_default()
                ),
            ));
        }
        Ok(out)
    }
}

/// Damaged journal segments kept for inspection: active until an operator removes them; the
/// value is the records the replay at this start could not read.
fn journal_damage(telemetry: &Telemetry, snap: &Snapshot) -> Option<Candidate> {
    if snap.journal_quarantined_segments == 0 {
        return None;
    }
    let replayed = telemetry.journal_replay.get()?;
    let description = replayed.damage_report().unwrap_or_else(|| {
        "damaged segments of the store's journal were kept at an earlier start (its log says \
         what was lost)"
            .into()
    });
    Some(trouble(
        "MillwatchJournalDamaged",
        Labels::new(),
        snap.journal_lost_records as f64,
        "Millwatch's store journal was damaged",
        format!(
            "{description}. Files kept in {}: {}; the alert resolves once they are removed.",
            replayed.quarantine.display(),
            snap.journal_quarantined_segments
        ),
    ))
}

fn trouble(
    name: &str,
    mut labels: Labels,
    value: f64,
    summary: &str,
    description: String,
) -> Candidate {
    labels.insert("alertname".into(), name.into());
    let mut annotations = Labels::new();
    annotations.insert("summary".into(), summary.into());
    annotations.insert("description".into(), description);
    annotations.insert("value".into(), format_value(value));
    Candidate {
        labels,
        match_only: Labels::new(),
        value,
        annotations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn db() -> Connection {
        let c = Connection::open_in_memory().expect("duckdb");
        for m in crate::store::schema::MIGRATIONS {
            c.execute_batch(m.sql).expect("schema");
        }
        c
    }

    /// A drift verdict of `feature` decided at `time` on the window starting at event `first`.
    fn decided(c: &Connection, time: i64, first: u64, feature: &str, drifted: bool) {
        c.execute(
            "INSERT INTO detections (time, first_event_id, model, version, feature, detector, test, statistic, drifted, verdict) \
             VALUES (make_timestamp_ns(?), ?, 'press', '1', ?, 'drift', 'ks', ?, ?, ?)",
            duckdb::params![time, first, feature, if drifted { 0.47 } else { 0.02 }, drifted, if drifted { "drift" } else { "no_drift" }],
        )
        .expect("insert");
    }

    fn seen(v: &Verdicts) -> Vec<(String, bool)> {
        v.rows
            .iter()
            .map(|r| (r.candidate.labels["feature"].clone(), r.drifted))
            .collect()
    }

    #[test]
    fn every_verdict_since_the_last_read_in_the_order_decided() {
        let mut c = db();
        // One pass decided three windows of f1 (drifted, then clean twice); f2 drifted earlier.
        decided(&c, 5 * S, 0, "f2", true);
        for (first, drifted) in [(600, false), (200, true), (400, false)] {
            decided(&c, 10 * S, first, "f1", drifted);
        }
        let mut source = DetectionSource::new(1);
        // The first read after a start: the series still drifting, not their history.
        let first = source.read(&mut c).expect("read");
        assert!(first.complete);
        assert_eq!(seen(&first), [("f2".to_string(), true)]);
        let words = &first.rows[0].candidate;
        assert_eq!(words.annotations["summary"], "press 1: f2 drifted");
        assert_eq!(words.match_only["verdict"], "drift");
        assert_eq!(words.value, 0.47);
        assert!(seen(&source.read(&mut c).expect("read")).is_empty());
        for (first, drifted) in [(1000, false), (800, true)] {
            decided(&c, 11 * S, first, "f1", drifted);
        }
        decided(&c, 12 * S, 1200, "f1", true);
        let next = source.read(&mut c).expect("read");
        assert!(!next.complete);
        assert_eq!(
            seen(&next),
            [
                ("f1".to_string(), true),
                ("f1".to_string(), false),
                ("f1".to_string(), true)
            ]
        );
        assert!(seen(&source.read(&mut c).expect("read")).is_empty());
    }

    #[test]
    fn the_first_read_takes_as_many_drifted_verdicts_as_the_longest_for_needs() {
        let mut c = db();
        decided(&c, S, 0, "f1", false);
        for i in 1..=5 {
            decided(&c, i * 2 * S, i as u64 * 100, "f1", true);
        }
        assert_eq!(
            seen(&DetectionSource::new(3).read(&mut c).expect("read")).len(),
            3
        );
        assert_eq!(
            seen(&DetectionSource::new(9).read(&mut c).expect("read")).len(),
            5
        );
    }

    #[test]
    fn kept_journal_segments_raise_an_alert_until_removed() {
        let dir = std::env::temp_dir().join(format!(
            "millwatch-journal-alert-{}-{}",
            std::process::id(),
            crate::pipeline::now_ns()
        ));
        let quarantine = dir.join("quarantine");
        std::fs::create_dir_all(&quarantine).expect("dir");
        let telemetry = Telemetry::default();
        let kept = quarantine.join("00000000000000000001.journal");
        telemetry
            .journal_replay
            .set(crate::store::replay::Replayed {
                lost: vec![3..=3],
                quarantined: vec![kept.clone()],
                quarantine: quarantine.clone(),
                ..Default::default()
            })
            .expect("set once");
        assert_eq!(journal_damage(&telemetry, &telemetry.snapshot()), None);

        std::fs::write(&kept, b"damaged").expect("write");
        let alert = journal_damage(&telemetry, &telemetry.snapshot()).expect("alert");
        assert_eq!(alert.labels["alertname"], "MillwatchJournalDamaged");
        assert_eq!(alert.value, 1.0);
        let description = &alert.annotations["description"];
        assert!(
            description.contains("(journal record seq 3)"),
            "{description}"
        );
        assert!(
            description.contains(&kept.display().to_string()),
            "{description}"
        );

        std::fs::remove_file(&kept).expect("removed");
        assert_eq!(journal_damage(&telemetry, &telemetry.snapshot()), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn attributes_become_labels() {
        let l = attribute_labels(Some(r#"{"machine.id":"press-4","line":3,"ok":true}"#));
        assert_eq!(l["machine_id"], "press-4");
        assert_eq!(l["line"], "3");
        assert_eq!(l["ok"], "true");
        assert!(attribute_labels(Some("not json")).is_empty());
        assert!(attribute_labels(None).is_empty());
    }
}
