//! The life of an alert: pending while its condition holds for less than the rule's `for`,
//! firing after, resolved once the condition stops holding. Identified by the fingerprint of
//! its labels, as Alertmanager computes it.

use std::collections::BTreeMap;
use std::time::Duration;

use millwatch_exporters::notify::Labels;
use millwatch_exporters::notify::alert::fingerprint;
use serde::{Deserialize, Serialize};

use super::rules::Active;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Firing,
    Resolved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        match s {
            "pending" => Some(State::Pending),
            "firing" => Some(State::Firing),
            "resolved" => Some(State::Resolved),
            _ => None,
        }
    }
}

/// Who acknowledged an alert, when and why. An acknowledged alert is not notified again on
/// `repeat_interval`; its resolution still is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub by: String,
    pub comment: String,
    pub at: i64,
}

/// One alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEntry {
    pub fingerprint: String,
    pub rule: String,
    pub labels: Labels,
    pub annotations: Labels,
    pub value: f64,
    pub state: State,
    /// When the condition started to hold (ns since the epoch).
    pub active_at: i64,
    /// When it started firing.
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub ack: Option<Ack>,
}

/// Every alert the engine knows, by fingerprint.
#[derive(Debug, Default)]
pub struct Book {
    pub alerts: BTreeMap<String, AlertEntry>,
}

/// What one evaluation changed, for persistence.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// Fingerprints whose row must be written.
    pub upserted: Vec<String>,
    /// Fingerprints whose row must be deleted.
    pub removed: Vec<String>,
}

impl Book {
    /// Applies one evaluation of `rule`: `active` is everything its condition holds for now.
    pub fn apply(&mut self, rule: &str, for_: Duration, active: Vec<Active>, now: i64) -> Changes {
        let mut changes = Changes::default();
        let for_ns = for_.as_nanos().min(i64::MAX as u128) as i64;
        let mut seen = std::collections::HashSet::new();
        for a in active {
            let fp = fingerprint(&a.labels);
            if !seen.insert(fp.clone()) {
                continue;
            }
            let entry = self
                .alerts
                .get_mut(&fp)
                .filter(|e| e.state != State::Resolved);
            let entry = match entry {
                Some(e) => {
                    let changed =
                        e.value.to_bits() != a.value.to_bits() || e.annotations != a.annotations;
                    e.value = a.value;
                    e.annotations = a.annotations;
                    if changed {
                        changes.upserted.push(fp.clone());
                    }
                    e
                }
                None => {
                    // New, or firing again after it was resolved: a new alert with the same
                    // fingerprint, as in Prometheus.
                    self.alerts.insert(
                        fp.clone(),
                        AlertEntry {
                            fingerprint: fp.clone(),
                            rule: rule.to_string(),
                            labels: a.labels,
                            annotations: a.annotations,
                            value: a.value,
                            state: State::Pending,
                            active_at: now,
                            fired_at: None,
                            resolved_at: None,
                            ack: None,
                        },
                    );
                    changes.upserted.push(fp.clone());
                    match self.alerts.get_mut(&fp) {
                        Some(e) => e,
                        None => continue,
                    }
                }
            };
            if entry.state == State::Pending && now.saturating_sub(entry.active_at) >= for_ns {
                entry.state = State::Firing;
                entry.fired_at = Some(now);
                if changes.upserted.last() != Some(&fp) {
                    changes.upserted.push(fp.clone());
                }
            }
        }
        let gone: Vec<String> = self
            .alerts
            .values()
            .filter(|e| {
                e.rule == rule && e.state != State::Resolved && !seen.contains(&e.fingerprint)
            })
            .map(|e| e.fingerprint.clone())
            .collect();
        for fp in gone {
            let Some(e) = self.alerts.get_mut(&fp) else {
                continue;
            };
            if e.state == State::Pending {
                // It never fired: nobody was told, so nobody needs to hear it ended.
                self.alerts.remove(&fp);
                changes.removed.push(fp);
            } else {
                e.state = State::Resolved;
                e.resolved_at = Some(now);
                changes.upserted.push(fp);
            }
        }
        changes
    }

    /// Forgets resolved alerts older than `retention` that no group still has to report.
    pub fn expire(
        &mut self,
        retention: Duration,
        now: i64,
        still_owed: &dyn Fn(&str) -> bool,
    ) -> Vec<String> {
        let keep_ns = retention.as_nanos().min(i64::MAX as u128) as i64;
        let old: Vec<String> = self
            .alerts
            .values()
            .filter(|e| {
                e.state == State::Resolved
                    && e.resolved_at
                        .is_some_and(|t| now.saturating_sub(t) >= keep_ns)
                    && !still_owed(&e.fingerprint)
            })
            .map(|e| e.fingerprint.clone())
            .collect();
        for fp in &old {
            self.alerts.remove(fp);
        }
        old
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(feature: &str, value: f64) -> Active {
        let mut labels = Labels::new();
        labels.insert("alertname".into(), "MillwatchDrift".into());
        labels.insert("feature".into(), feature.into());
        Active {
            labels,
            annotations: Labels::new(),
            value,
        }
    }

    const S: i64 = 1_000_000_000;

    #[test]
    fn pending_then_firing_then_resolved() {
        let mut book = Book::default();
        let for_ = Duration::from_secs(10);
        let c = book.apply("r", for_, vec![active("a", 1.0)], 100 * S);
        assert_eq!(c.upserted.len(), 1);
        let fp = c.upserted[0].clone();
        assert_eq!(book.alerts[&fp].state, State::Pending);
        book.apply("r", for_, vec![active("a", 1.0)], 105 * S);
        assert_eq!(book.alerts[&fp].state, State::Pending);
        let c = book.apply("r", for_, vec![active("a", 2.0)], 110 * S);
        assert_eq!(c.upserted, vec![fp.clone()]);
        let e = &book.alerts[&fp];
        assert_eq!(
            (e.state, e.active_at, e.fired_at),
            (State::Firing, 100 * S, Some(110 * S))
        );
        assert_eq!(e.value, 2.0);
        // Another rule's evaluation leaves it alone.
        book.apply("other", for_, vec![], 111 * S);
        assert_eq!(book.alerts[&fp].state, State::Firing);
        book.apply("r", for_, vec![], 120 * S);
        let e = &book.alerts[&fp];
        assert_eq!((e.state, e.resolved_at), (State::Resolved, Some(120 * S)));
        // Firing again is a new alert with the same fingerprint.
        book.apply("r", Duration::ZERO, vec![active("a", 1.0)], 130 * S);
        let e = &book.alerts[&fp];
        assert_eq!(
            (e.state, e.active_at, e.resolved_at),
            (State::Firing, 130 * S, None)
        );
        assert_eq!(fp, fingerprint(&active("a", 0.0).labels));
    }

    #[test]
    fn pending_alerts_that_stop_are_forgotten_and_resolved_ones_expire() {
        let mut book = Book::default();
        let c = book.apply("r", Duration::from_secs(60), vec![active("a", 1.0)], 0);
        let c2 = book.apply("r", Duration::from_secs(60), vec![], S);
        assert_eq!(c2.removed, c.upserted);
        assert!(book.alerts.is_empty());
        book.apply("r", Duration::ZERO, vec![active("b", 1.0)], 0);
        book.apply("r", Duration::ZERO, vec![], S);
        assert!(
            book.expire(Duration::from_secs(10), 5 * S, &|_| false)
                .is_empty()
        );
        assert!(
            book.expire(Duration::from_secs(10), 20 * S, &|_| true)
                .is_empty()
        );
        assert_eq!(
            book.expire(Duration::from_secs(10), 20 * S, &|_| false)
                .len(),
            1
        );
        assert!(book.alerts.is_empty());
    }
}
