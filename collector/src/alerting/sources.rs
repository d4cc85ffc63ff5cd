//! What rules look at: the newest verdict of every series in `detections`, the newest point of
//! metric series, and the collector's own counters and outbox.

use std::collections::VecDeque;

use duckdb::Connection;
use millwatch_exporters::notify::Labels;

use super::config::MetricCondition;
use super::rules::{Candidate, all_match, format_value};
use crate::telemetry::{Snapshot, Telemetry};

/// The newest verdict per (model, version, feature, detector, test), re-read only when the
/// table changed.
#[derive(Default)]
pub struct DetectionSource {
    seen: Option<(u64, i64)>,
    cached: Vec<Candidate>,
}

impl DetectionSource {
    /// Series whose newest verdict says `drifted`, as candidates.
    pub fn candidates(&mut self, conn: &Connection) -> duckdb::Result<&[Candidate]> {
        let marker: (u64, i64) = conn.query_row(
            "SELECT count(*), coalesce(epoch_ns(max(time)), 0) FROM detections",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if self.seen != Some(marker) {
            self.cached = read_detections(conn)?;
            self.seen = Some(marker);
        }
        Ok(&self.cached)
    }
}

fn read_detections(conn: &Connection) -> duckdb::Result<Vec<Candidate>> {
    let mut stmt = conn.prepare(
        "SELECT model, version, feature, detector, test, verdict, statistic, threshold, p_value, effect_size \
         FROM (SELECT *, row_number() OVER (PARTITION BY model, version, feature, detector, test \
                                            ORDER BY time DESC) AS newest \
               FROM detections) \
         WHERE newest = 1 AND drifted \
         ORDER BY model, version, feature, detector, test",
    )?;
    let rows = stmt.query_map([], |r| {
        let mut labels = Labels::new();
        for (i, name) in ["model", "version", "feature", "detector", "test"]
            .iter()
            .enumerate()
        {
            if let Some(v) = r.get::<_, Option<String>>(i)?
                && !v.is_empty()
            {
                labels.insert((*name).to_string(), v);
            }
        }
        let mut match_only = Labels::new();
        match_only.insert("verdict".into(), r.get::<_, String>(5)?);
        let statistic: Option<f64> = r.get(6)?;
        let mut annotations = Labels::new();
        for (i, name) in [
            (6usize, "value"),
            (7, "threshold"),
            (8, "p_value"),
            (9, "effect_size"),
        ] {
            if let Some(v) = r.get::<_, Option<f64>>(i)? {
                annotations.insert(name.to_string(), format_value(v));
            }
        }
        Ok(Candidate {
            labels,
            match_only,
            value: statistic.unwrap_or(f64::NAN),
            annotations,
        })
    })?;
    rows.collect()
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
