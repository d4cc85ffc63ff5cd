//! The newest verdict of every model version's detector and feature, and of every machine
//! series, kept between page views: the fleet and model pages read their statuses from it.
//!
//! Grouping the whole `detections` table for each view took ~100 ms at 50 models × 30 features
//! × 7 days of hourly windows (600k rows). The table grows in decision-time order, so a query
//! for the rows decided since the last view (less an overlap for rows committed late) reads
//! only its newest row groups. Every [`REBUILD`] it is read whole again, so that rows deleted
//! by retention leave it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Rows decided this long before the newest one seen are read again (a pass that decided
/// earlier may commit after a later one).
const OVERLAP_NS: i64 = 5 * 60 * 1_000_000_000;
/// How often the whole table is read again.
const REBUILD: Duration = Duration::from_secs(600);

/// (model, version, detector, feature); model and version empty for machine health.
type Key = (String, String, String, String);

/// A verdict: when it was decided and whether it found something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub time_ns: i64,
    pub drifted: bool,
}

#[derive(Default)]
pub struct Latest {
    newest_ns: Option<i64>,
    built: Option<Instant>,
    verdicts: HashMap<Key, Verdict>,
}

impl Latest {
    /// Brings the verdicts up to date: the rows decided since the newest seen (less
    /// [`OVERLAP_NS`]), or all of them on the first call and every [`REBUILD`]. Rows whose
    /// verdict says nothing (`insufficient_data`, `not_tested`) are left out, except for
    /// machine health, whose charts count every verdict.
    pub fn refresh(&mut self, c: &duckdb::Connection) -> duckdb::Result<()> {
        let whole = self.built.is_none_or(|t| t.elapsed() >= REBUILD);
        let since = if whole {
            None
        } else {
            self.newest_ns.map(|t| t - OVERLAP_NS)
        };
        let select = "SELECT coalesce(model, ''), coalesce(version, ''), detector, coalesce(feature, ''), \
             epoch_ns(max(time)), arg_max(drifted, time) FROM detections \
             WHERE (detector = 'machine_health' OR (model IS NOT NULL AND version IS NOT NULL \
             AND verdict NOT IN ('insufficient_data', 'not_tested')))";
        let map = |r: &duckdb::Row| {
            Ok((
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?),
                Verdict {
                    time_ns: r.get(4)?,
                    drifted: r.get(5)?,
                },
            ))
        };
        let rows: Vec<(Key, Verdict)> = match since {
            Some(t) => c
                .prepare(&format!(
                    "{select} AND time >= make_timestamp_ns(?) GROUP BY ALL"
                ))?
                .query_map([t], map)?
                .collect::<duckdb::Result<_>>()?,
            None => c
                .prepare(&format!("{select} GROUP BY ALL"))?
                .query_map([], map)?
                .collect::<duckdb::Result<_>>()?,
        };
        if whole {
            self.verdicts.clear();
            self.built = Some(Instant::now());
        }
        self.merge(rows);
        Ok(())
    }

    fn merge(&mut self, rows: Vec<(Key, Verdict)>) {
        for (key, v) in rows {
            self.newest_ns = Some(self.newest_ns.map_or(v.time_ns, |n| n.max(v.time_ns)));
            let slot = self.verdicts.entry(key).or_insert(v);
            if v.time_ns >= slot.time_ns {
                *slot = v;
            }
        }
    }

    /// Every model detector's newest verdict per feature: (model, version, detector, feature).
    pub fn models(&self) -> impl Iterator<Item = (&str, &str, &str, &str, Verdict)> {
        self.verdicts
            .iter()
            .filter(|((_, _, d, _), _)| d != "machine_health")
            .map(|((m, v, d, f), x)| (m.as_str(), v.as_str(), d.as_str(), f.as_str(), *x))
    }

    /// Every machine-health series' newest verdict: (series label, verdict).
    pub fn machine_series(&self) -> impl Iterator<Item = (&str, Verdict)> {
        self.verdicts
            .iter()
            .filter(|((_, _, d, _), _)| d == "machine_health")
            .map(|((_, _, _, f), x)| (f.as_str(), *x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(f: &str) -> Key {
        ("m".into(), "1".into(), "drift".into(), f.into())
    }

    #[test]
    fn a_newer_verdict_replaces_an_older_one_never_the_reverse() {
        let mut l = Latest::default();
        let v = |t, d| Verdict {
            time_ns: t,
            drifted: d,
        };
        l.merge(vec![(key("a"), v(10, false)), (key("b"), v(5, true))]);
        l.merge(vec![(key("a"), v(20, true)), (key("b"), v(3, false))]);
        let got: HashMap<&str, Verdict> = l.models().map(|(_, _, _, f, x)| (f, x)).collect();
        assert_eq!(got["a"], v(20, true));
        assert_eq!(got["b"], v(5, true));
        assert_eq!(l.newest_ns, Some(20));
    }
}
