//! The life of an alert: pending while its condition holds for less than the rule's `for`,
//! firing after, resolved once the condition stops holding. Identified by the fingerprint of
//! its labels, as Alertmanager computes it. Snapshot rules (metrics, the collector) say what
//! holds now; detection rules replay every verdict decided since their last evaluation.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use millwatch_exporters::notify::Labels;
use millwatch_exporters::notify::alert::fingerprint;
use serde::{Deserialize, Serialize};

use super::hold::For;
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
    /// Verdicts in a row the condition held for (detection rules; not stored: the first
    /// evaluation after a start counts them again from the stored verdicts).
    pub windows: u32,
}

/// Every alert the engine knows, by fingerprint.
#[derive(Debug, Default)]
pub struct Book {
    pub alerts: BTreeMap<String, AlertEntry>,
}

/// What one evaluation changed: for persistence, the log and the notification groups.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// Fingerprints whose row must be written (possibly more than once).
    pub upserted: Vec<String>,
    /// Fingerprints whose row must be deleted.
    pub removed: Vec<String>,
    /// Alerts that started firing, in order (one may also be in `resolved`).
    pub fired: Vec<String>,
    /// Alerts that resolved, in order.
    pub resolved: Vec<String>,
}

impl Changes {
    fn upsert(&mut self, fp: &str) {
        if self.upserted.last().map(String::as_str) != Some(fp) {
            self.upserted.push(fp.to_string());
        }
    }
}

/// One verdict as a detection rule sees it: the alert of the verdict's series, and whether the
/// rule's condition holds for this verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub alert: Active,
    pub holds: bool,
}

impl Book {
    /// Applies one evaluation of a rule over a snapshot (metric series, the collector's own
    /// trouble): `active` is everything its condition holds for now; the rule's other alerts
    /// stop.
    pub fn apply(&mut self, rule: &str, for_: Duration, active: Vec<Active>, now: i64) -> Changes {
        let mut changes = Changes::default();
        let mut seen = HashSet::new();
        for a in active {
            let fp = fingerprint(&a.labels);
            if seen.insert(fp.clone()) {
                self.hold(rule, fp, a, For::Time(for_), now, &mut changes);
            }
        }
        self.stop_all_but(rule, &seen, now, &mut changes);
        changes
    }

    /// Applies the verdicts a detection rule saw since its last evaluation, in the order they
    /// were decided: a verdict that holds starts (or keeps) its series' alert, one that does
    /// not stops it. With `complete` the steps hold every series still active (the first read
    /// after a start), so the rule's alerts they do not hold stop too. Pending alerts whose
    /// `for` duration passed meanwhile fire.
    pub fn apply_verdicts(
        &mut self,
        rule: &str,
        for_: For,
        steps: Vec<Step>,
        complete: bool,
        now: i64,
    ) -> Changes {
        let mut changes = Changes::default();
        let mut holding = HashSet::new();
        for step in steps {
            let fp = fingerprint(&step.alert.labels);
            if step.holds {
                holding.insert(fp.clone());
                self.hold(rule, fp, step.alert, for_, now, &mut changes);
            } else {
                holding.remove(&fp);
                self.stop(&fp, now, &mut changes);
            }
        }
        if complete {
            self.stop_all_but(rule, &holding, now, &mut changes);
        }
        let waiting: Vec<String> = self
            .alerts
            .values()
            .filter(|e| e.rule == rule && e.state == State::Pending)
            .map(|e| e.fingerprint.clone())
            .collect();
        for fp in waiting {
            self.fire_if_due(&fp, for_, now, &mut changes);
        }
        changes
    }

    /// The condition holds for `a` once more: a new alert (pending), or the active one with the
    /// new value; it fires once `for_` is met.
    fn hold(
        &mut self,
        rule: &str,
        fp: String,
        a: Active,
        for_: For,
        now: i64,
        changes: &mut Changes,
    ) {
        match self
            .alerts
            .get_mut(&fp)
            .filter(|e| e.state != State::Resolved)
        {
            Some(e) => {
                let changed =
                    e.value.to_bits() != a.value.to_bits() || e.annotations != a.annotations;
                e.value = a.value;
                e.annotations = a.annotations;
                e.windows = e.windows.saturating_add(1);
                if changed {
                    changes.upsert(&fp);
                }
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
                        windows: 1,
                    },
                );
                changes.upsert(&fp);
            }
        }
        self.fire_if_due(&fp, for_, now, changes);
    }

    fn fire_if_due(&mut self, fp: &str, for_: For, now: i64, changes: &mut Changes) {
        if let Some(e) = self.alerts.get_mut(fp)
            && e.state == State::Pending
            && for_.met(e.active_at, e.windows, now)
        {
            e.state = State::Firing;
            e.fired_at = Some(now);
            changes.upsert(fp);
            changes.fired.push(fp.to_string());
        }
    }

    /// The condition stopped holding: a pending alert is forgotten, a firing one resolves.
    fn stop(&mut self, fp: &str, now: i64, changes: &mut Changes) {
        let Some(e) = self.alerts.get_mut(fp) else {
            return;
        };
        match e.state {
            State::Resolved => {}
            State::Pending => {
                // It never fired: nobody was told, so nobody needs to hear it ended.
                self.alerts.remove(fp);
                changes.removed.push(fp.to_string());
            }
            State::Firing => {
                e.state = State::Resolved;
                e.resolved_at = Some(now);
                changes.upsert(fp);
                changes.resolved.push(fp.to_string());
            }
        }
    }

    /// Stops every active alert of `rule` but those in `keep`.
    fn stop_all_but(
        &mut self,
        rule: &str,
        keep: &HashSet<String>,
        now: i64,
        changes: &mut Changes,
    ) {
        let gone: Vec<String> = self
            .alerts
            .values()
            .filter(|e| {
                e.rule == rule && e.state != State::Resolved && !keep.contains(&e.fingerprint)
            })
            .map(|e| e.fingerprint.clone())
            .collect();
        for fp in gone {
            self.stop(&fp, now, changes);
        }
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

    fn step(feature: &str, holds: bool) -> Step {
        Step {
            alert: active(feature, if holds { 0.4 } else { 0.01 }),
            holds,
        }
    }

    fn windows(n: u32) -> For {
        For::Windows(std::num::NonZeroU32::new(n).expect("n > 0"))
    }

    #[test]
    fn one_drifted_window_then_clean_ones_in_one_evaluation_fires_and_resolves() {
        let mut book = Book::default();
        let c = book.apply_verdicts(
            "r",
            For::default(),
            vec![step("a", true), step("a", false), step("a", false)],
            false,
            100 * S,
        );
        let fp = fingerprint(&active("a", 0.0).labels);
        assert_eq!(c.fired, vec![fp.clone()]);
        assert_eq!(c.resolved, vec![fp.clone()]);
        assert_eq!(c.upserted, vec![fp.clone()]);
        let e = &book.alerts[&fp];
        assert_eq!(
            (e.state, e.fired_at, e.resolved_at),
            (State::Resolved, Some(100 * S), Some(100 * S))
        );
    }

    #[test]
    fn for_windows_counts_matching_verdicts_in_a_row() {
        let mut book = Book::default();
        let fp = fingerprint(&active("a", 0.0).labels);
        // One drifted window, a clean one, then two drifted ones: the count starts over.
        let c = book.apply_verdicts(
            "r",
            windows(2),
            vec![step("a", true), step("a", false), step("a", true)],
            false,
            10 * S,
        );
        assert!(c.fired.is_empty());
        assert_eq!(c.removed, vec![fp.clone()]);
        assert_eq!(book.alerts[&fp].state, State::Pending);
        // Evaluations without verdicts do not count, however long they take.
        book.apply_verdicts("r", windows(2), vec![], false, 1000 * S);
        assert_eq!(book.alerts[&fp].state, State::Pending);
        let c = book.apply_verdicts("r", windows(2), vec![step("a", true)], false, 1001 * S);
        assert_eq!(c.fired, vec![fp.clone()]);
        let e = &book.alerts[&fp];
        assert_eq!(
            (e.state, e.active_at, e.windows),
            (State::Firing, 10 * S, 2)
        );
        // Another series' verdicts leave it alone; its own clean one resolves it.
        book.apply_verdicts("r", windows(2), vec![step("b", false)], false, 1002 * S);
        assert_eq!(book.alerts[&fp].state, State::Firing);
        let c = book.apply_verdicts("r", windows(2), vec![step("a", false)], false, 1003 * S);
        assert_eq!(c.resolved, vec![fp.clone()]);
    }

    #[test]
    fn a_for_duration_fires_between_verdicts_and_a_complete_read_stops_the_rest() {
        let mut book = Book::default();
        let for_ = For::Time(Duration::from_secs(10));
        book.apply_verdicts("r", for_, vec![step("a", true), step("b", true)], false, 0);
        assert!(book.alerts.values().all(|e| e.state == State::Pending));
        let c = book.apply_verdicts("r", for_, vec![], false, 10 * S);
        assert_eq!(c.fired.len(), 2);
        // After a start: only `a` still holds; `b` resolves, and other rules are untouched.
        book.apply_verdicts(
            "other",
            For::default(),
            vec![step("c", true)],
            false,
            11 * S,
        );
        let c = book.apply_verdicts("r", for_, vec![step("a", true)], true, 12 * S);
        let b = fingerprint(&active("b", 0.0).labels);
        assert_eq!(c.resolved, vec![b]);
        assert_eq!(
            book.alerts
                .values()
                .filter(|e| e.state == State::Firing)
                .count(),
            2
        );
    }
}
