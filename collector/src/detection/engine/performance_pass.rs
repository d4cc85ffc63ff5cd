//! The performance pass: realised performance of closed windows as their labels (feedback)
//! arrive, and the one judgement per window of whether it dropped against the baseline.
//!
//! Labels reach a window over minutes or days. The measured values (accuracy, MAE, ...) follow
//! every label that comes. The change test does not: testing a window again each time more of
//! its labels arrive gives it one more chance of a false drop per look (the "peeking" problem of
//! sequential testing), so a window that is in truth as good as the baseline would sooner or
//! later be flagged on a slow line. A window is judged once, when its labels are complete (every
//! event of the window has one) or, for lines where some parts never get a label, when it holds
//! `performance_min_labels` and none came for `performance_settle`. The verdict then stays.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use duckdb::{Connection, params};

use super::Engine;
use crate::detection::Result;
use crate::detection::performance;
use crate::detection::results::{self, Finding, Scope};
use crate::detection::state::{self, ClosedWindow};
use crate::detection::windows::ModelKey;
use crate::pipeline::now_ns;

/// Which windows of each model version have had their change judged, and how long the others'
/// label counts have stood still. A window is known by its first event id.
#[derive(Default)]
pub(super) struct Judging {
    /// Per model version: windows judged (read from `detections` the first time the version is
    /// seen, so a restart does not judge a window twice).
    judged: HashMap<ModelKey, HashSet<u64>>,
    /// Windows with enough labels but not judged yet: their label count and since when.
    waiting: HashMap<ModelKey, BTreeMap<u64, (usize, Instant)>>,
}

/// What the pass does with one window now.
struct Look {
    /// New labels arrived: measure (and store the measured values) again.
    measure: bool,
    /// Judge the change against the baseline now.
    judge: bool,
}

impl Judging {
    /// Whether a window of `key` that waits for its judgement is due by now.
    fn due(&self, key: &ModelKey, settle: Duration, now: Instant) -> bool {
        self.waiting
            .get(key)
            .is_some_and(|w| w.values().any(|(_, since)| now >= *since + settle))
    }

    fn judged(&mut self, conn: &Connection, key: &ModelKey) -> duckdb::Result<&mut HashSet<u64>> {
        if !self.judged.contains_key(key) {
            let mut stmt = conn.prepare_cached(
                "SELECT DISTINCT first_event_id FROM detections \
                 WHERE detector = 'performance_change' AND model = ? AND version = ?",
            )?;
            let found = stmt
                .query_map(params![key.model, key.version], |r| r.get::<_, u64>(0))?
                .collect::<duckdb::Result<HashSet<u64>>>()?;
            self.judged.insert(key.clone(), found);
        }
        Ok(self.judged.get_mut(key).expect("inserted above"))
    }

    /// Decides what to do with window `w` of `key` that now has `labels` labelled events.
    fn look(
        &mut self,
        conn: &Connection,
        w: &ClosedWindow,
        labels: usize,
        (min, settle, now): (usize, Duration, Instant),
    ) -> duckdb::Result<Look> {
        let measure = labels as u64 > w.labelled && labels >= min;
        if labels < min || self.judged(conn, &w.key)?.contains(&w.first_event_id) {
            return Ok(Look {
                measure,
                judge: false,
            });
        }
        let waiting = self.waiting.entry(w.key.clone()).or_default();
        let entry = waiting.entry(w.first_event_id).or_insert((labels, now));
        if entry.0 != labels {
            *entry = (labels, now);
        }
        let judge = labels as u64 >= w.events || now >= entry.1 + settle;
        Ok(Look { measure, judge })
    }

    /// Records the outcome of judging `w`: judged when the baseline had labels to compare with;
    /// otherwise it waits another `performance_settle` for them.
    fn record(&mut self, w: &ClosedWindow, compared: bool, now: Instant) {
        let waiting = self.waiting.entry(w.key.clone()).or_default();
        if compared {
            waiting.remove(&w.first_event_id);
            if let Some(judged) = self.judged.get_mut(&w.key) {
                judged.insert(w.first_event_id);
            }
        } else if let Some(entry) = waiting.get_mut(&w.first_event_id) {
            entry.1 = now;
        }
    }

    /// Forgets windows older than the oldest one the pass still revisits.
    fn forget_before(&mut self, key: &ModelKey, first_event_id: u64) {
        if let Some(judged) = self.judged.get_mut(key) {
            judged.retain(|id| *id >= first_event_id);
        }
        if let Some(waiting) = self.waiting.get_mut(key) {
            waiting.retain(|id, _| *id >= first_event_id);
        }
    }
}

/// One window's update from a pass.
struct Update {
    window: ClosedWindow,
    labelled: u64,
    measured: bool,
    judged: bool,
    findings: Vec<Finding>,
}

impl Engine {
    /// Measures the performance of recent closed windows that gained feedback since their last
    /// evaluation, and judges the change of those whose labels are complete or settled; returns
    /// how many windows were updated.
    pub fn performance_pass(&mut self) -> Result<usize> {
        let now = now_ns();
        let clock = Instant::now();
        let min = self.config.performance_min_labels.get();
        let settle = self.config.performance_settle;
        let keep = self.config.performance_windows.get();
        let mut updates: Vec<Update> = Vec::new();
        let keys: Vec<ModelKey> = self.models.keys().cloned().collect();
        for key in keys {
            let Some(m) = self.models.get(&key) else {
                continue;
            };
            if m.windows_closed == 0 {
                continue;
            }
            let feedback: u64 = self.conn.query_row(
                "SELECT count(*) FROM feedback WHERE model = ?",
                [&key.model],
                |r| r.get(0),
            )?;
            let seen = (feedback, m.windows_closed);
            let unchanged = self.performance_seen.get(&key) == Some(&seen);
            if feedback == 0 || (unchanged && !self.judging.due(&key, settle, clock)) {
                continue;
            }
            self.performance_seen.insert(key.clone(), seen);
            // A baseline taken from another version's events is labelled under that version.
            let baseline_range = m.baseline.as_ref().and_then(|b| {
                let of = ModelKey {
                    model: key.model.clone(),
                    version: b.events_version(&key.version).to_owned(),
                };
                Some((of, b.first_event_id?, b.last_event_id?))
            });
            let windows = state::recent_windows(&self.conn, &key, keep)?;
            if let Some(oldest) = windows.first() {
                self.judging.forget_before(&key, oldest.first_event_id);
            }
            let mut fresh = Vec::new();
            for w in windows {
                let labels =
                    performance::labelled(&self.conn, &key, w.first_event_id, w.last_event_id)?;
                let look = self
                    .judging
                    .look(&self.conn, &w, labels.len(), (min, settle, clock))?;
                if look.measure || look.judge {
                    fresh.push((w, labels, look));
                }
            }
            if fresh.is_empty() {
                continue;
            }
            let baseline_labels = match baseline_range {
                Some((of, first, last)) => {
                    Some(performance::labelled(&self.conn, &of, first, last)?)
                }
                None => None,
            };
            for (w, labels, look) in fresh {
                let all = performance::evaluate(baseline_labels.as_ref(), &labels, min);
                let (change, measured): (Vec<Finding>, Vec<Finding>) = all
                    .into_iter()
                    .partition(|f| f.detector == "performance_change");
                let mut findings = Vec::new();
                if look.measure {
                    let errors =
                        super::super::estimated::estimation_errors(&self.conn, &w, &measured)?;
                    findings.extend(measured);
                    findings.extend(errors);
                }
                let judged = look.judge && !change.is_empty();
                if look.judge {
                    self.judging.record(&w, judged, clock);
                }
                if judged {
                    findings.extend(change);
                }
                if findings.is_empty() {
                    continue;
                }
                updates.push(Update {
                    labelled: labels.len() as u64,
                    measured: look.measure,
                    judged,
                    findings,
                    window: w,
                });
            }
        }
        if updates.is_empty() {
            return Ok(0);
        }
        let tx = self.conn.transaction()?;
        let scopes: Vec<Scope> = updates.iter().map(|u| u.window.scope()).collect();
        let mut rows = Vec::new();
        for (u, scope) in updates.iter().zip(&scopes) {
            if u.measured {
                state::set_labelled(&tx, &u.window.key, u.window.index, u.labelled)?;
            }
            rows.extend(u.findings.iter().map(|f| (scope, f)));
        }
        results::insert_all(&tx, now, &rows)?;
        tx.commit()?;
        self.publish_newest(&updates);
        Ok(updates.len())
    }

    /// The gauges show, per model version, the newest window measured and the newest judged.
    fn publish_newest(&self, updates: &[Update]) {
        let mut newest: BTreeMap<(&ModelKey, bool), &Update> = BTreeMap::new();
        for u in updates {
            for (judgement, applies) in [(false, u.measured), (true, u.judged)] {
                if !applies {
                    continue;
                }
                let e = newest.entry((&u.window.key, judgement)).or_insert(u);
                if u.window.index > e.window.index {
                    *e = u;
                }
            }
        }
        for ((key, judgement), u) in newest {
            let findings: Vec<&Finding> = u
                .findings
                .iter()
                .filter(|f| (f.detector == "performance_change") == judgement)
                .collect();
            self.gauges
                .publish_performance(&key.model, &key.version, judgement, &findings);
        }
    }
}
