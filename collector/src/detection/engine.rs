//! The engine: a thread of its own that follows the store by `event_id`, gathers each model
//! version's baseline and windows, decides every closed window, and commits the results with
//! the state they lead to in one transaction. Ingest never waits on it: a slow engine shows as
//! lag (`millwatch_detection_lag_events`), never as a refused request.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use duckdb::Connection;
use millwatch_detectors::drift::ColumnOverride;
use millwatch_exporters::prometheus::MetricsExposition;

use super::baseline::{Baseline, Origin};
use super::commit_times::CommitTimes;
use super::config::{BaselineSource, DetectionConfig};
use super::log_lines::{self, DriftLog};
use super::machine_health::MachineHealth;
use super::model_drift::{self, DriftSettings};
use super::performance;
use super::prediction::{self, Predictions};
use super::results::{self, Finding, Gauges, Scope};
use super::state::{self, ClosedWindow, EngineState, ModelRecord};
use super::tap::InferenceTap;
use super::windows::{Event, ModelKey, Names, Selection, Window, from_row, read_events};
use super::{DetectionError, Result};
use crate::pipeline::now_ns;

/// How one model version is watched, from the defaults and its `models:` entry.
#[derive(Debug, Clone)]
struct Settings {
    baseline_events: usize,
    shape: Shape,
    baseline_source: Option<BaselineSource>,
    compare_with_previous_version: bool,
    drift: DriftSettings,
}

/// How windows are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// The newest `size` events, decided every `slide` events (tumbling when equal).
    Count { size: usize, slide: usize },
    /// Events whose time is in `[end - size, end)`, with an end every `slide` ns (tumbling
    /// when equal); decided when the first event at or past `end` arrives.
    Time { size: i64, slide: i64 },
}

struct ModelState {
    settings: Settings,
    baseline: Option<Baseline>,
    open: Window,
    windows_closed: u64,
    events_seen: u64,
    last_event_id: Option<u64>,
    /// Events since the last decision (sliding count windows).
    since_decision: usize,
    /// End of the current time window.
    window_end_ns: Option<i64>,
    /// When the engine last took an event of this version (wall clock, not persisted).
    last_push: Instant,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub events: usize,
    pub windows_closed: usize,
    pub baselines_ready: usize,
    /// More events are known to wait (a full read, or commits the tap left out).
    pub behind: bool,
}

pub struct Engine {
    conn: Connection,
    config: DetectionConfig,
    gauges: Gauges,
    cursor: Option<u64>,
    models: BTreeMap<ModelKey, ModelState>,
    health: MachineHealth,
    behind_since: Option<Instant>,
    /// Per model version, the model's feedback count and the windows closed at the last
    /// performance pass: unchanged, there is nothing to re-evaluate.
    performance_seen: HashMap<ModelKey, (u64, u64)>,
    /// (model, version, resource) already on `millwatch_model_info`.
    info_seen: HashMap<String, HashMap<String, HashSet<u64>>>,
    /// When events were committed, to time verdicts; none in tests that drive the engine.
    commit_times: Option<Arc<CommitTimes>>,
    /// Verdict delays so far: per-bucket counts of [`DELAY_BUCKETS`] (+Inf last) and their sum.
    delays: (Vec<u64>, f64),
    /// Events handed over by the writer as it commits them; none in tests that drive the
    /// engine from the store alone.
    tap: Option<Arc<InferenceTap>>,
    /// Whether everything stored up to the cursor was read, so the tap can take over; false at
    /// start and after the tap left events out.
    caught_up: bool,
    names: Names,
    /// Events were taken since the state was last saved.
    unsaved: bool,
    /// When the state was last committed; between decisions it is saved every [`SAVE_EVERY`].
    saved_at: Instant,
    /// Which versions' last window drifted, to log when that changes.
    drift_log: DriftLog,
}

/// How often the cursor and open windows are saved when no window closes. Events after the
/// saved cursor are read again after a restart, so this bounds only the work redone.
const SAVE_EVERY: Duration = Duration::from_secs(5);

/// Upper bounds (seconds) of `millwatch_detection_verdict_delay_seconds`.
const DELAY_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

impl Engine {
    /// Opens the engine on its own connection and restores its persisted state: baselines are
    /// loaded and each open window is read back from the store up to the cursor.
    pub fn open(
        conn: Connection,
        config: DetectionConfig,
        exposition: &MetricsExposition,
    ) -> Result<Engine> {
        let gauges =
            Gauges::register(exposition).map_err(|e| DetectionError::Metrics(e.to_string()))?;
        let saved = state::load(&conn)?;
        let health =
            MachineHealth::new(&config.machine_health, saved.health.clone(), gauges.clone())?;
        let mut engine = Engine {
            conn,
            config,
            gauges,
            cursor: saved.cursor,
            models: BTreeMap::new(),
            health,
            behind_since: None,
            performance_seen: HashMap::new(),
            info_seen: HashMap::new(),
            commit_times: None,
            delays: (vec![0; DELAY_BUCKETS.len() + 1], 0.0),
            tap: None,
            caught_up: false,
            names: Names::default(),
            unsaved: false,
            saved_at: Instant::now(),
            drift_log: DriftLog::default(),
        };
        // On /metrics from the start, so that a fresh collector shows no lag and no verdicts
        // yet rather than no data; the first pass sets the real lag.
        engine.gauges.lag_events.set(&[], 0.0);
        engine.gauges.lag_seconds.set(&[], 0.0);
        engine.gauges.verdict_delay.set_histogram(
            &[],
            &DELAY_BUCKETS,
            &engine.delays.0,
            engine.delays.1,
        );
        for rec in saved.models {
            let key = ModelKey {
                model: rec.model.clone(),
                version: rec.version.clone(),
            };
            let settings = engine.settings(&key);
            let baseline = if rec.baseline_ready {
                state::load_baseline(&engine.conn, &key)?
            } else {
                None
            };
            let mut open = Window::default();
            if let (Some(first), Some(cursor)) = (rec.open_first_event_id, engine.cursor) {
                open.events = read_events(
                    &engine.conn,
                    Selection::Range {
                        key: &key,
                        first,
                        last: cursor,
                    },
                )?
                .into_iter()
                .map(|(_, e)| e)
                .collect();
                if open.len() != rec.open_events {
                    tracing::warn!(model = %key.model, version = %key.version, expected = rec.open_events, found = open.len(),
                        "the open window lost events to retention before the restart");
                }
            }
            engine.gauges.windows.set(
                &[("model", &key.model), ("version", &key.version)],
                rec.windows_closed as f64,
            );
            engine.models.insert(
                key,
                ModelState {
                    settings,
                    baseline,
                    open,
                    windows_closed: rec.windows_closed,
                    events_seen: rec.events_seen,
                    last_event_id: rec.last_event_id,
                    since_decision: rec.since_decision,
                    window_end_ns: rec.window_end_ns,
                    last_push: Instant::now(),
                },
            );
        }
        Ok(engine)
    }

    /// Takes committed events from `tap` instead of reading them back from the store.
    pub fn with_tap(mut self, tap: Arc<InferenceTap>) -> Engine {
        self.tap = Some(tap);
        self
    }

    /// Times each verdict from the commit of its window's last event.
    pub fn with_commit_times(mut self, times: Arc<CommitTimes>) -> Engine {
        self.commit_times = Some(times);
        self
    }

    /// The last event id accounted for.
    pub fn cursor(&self) -> Option<u64> {
        self.cursor
    }

    fn settings(&self, key: &ModelKey) -> Settings {
        let c = &self.config;
        // A version-specific entry wins over one for every version.
        let entry = c
            .models
            .iter()
            .filter(|m| m.name == key.model && m.version.as_ref().is_none_or(|v| *v == key.version))
            .max_by_key(|m| m.version.is_some());
        let (baseline_events, baseline_source) = match entry.and_then(|m| m.baseline.as_ref()) {
            Some(BaselineSource::FirstEvents(n)) => (n.get(), None),
            Some(other) => (c.baseline_events.get(), Some(other.clone())),
            None => (c.baseline_events.get(), None),
        };
        let shape = match entry.and_then(|m| m.window_duration) {
            Some(d) => {
                let size = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
                let slide = entry
                    .and_then(|m| m.slide_duration)
                    .map_or(size, |s| i64::try_from(s.as_nanos()).unwrap_or(size));
                Shape::Time { size, slide }
            }
            None => {
                let size = entry
                    .and_then(|m| m.window_events)
                    .unwrap_or(c.window_events)
                    .get();
                let slide = entry
                    .and_then(|m| m.slide_events)
                    .map_or(size, |s| s.get().min(size));
                Shape::Count { size, slide }
            }
        };
        Settings {
            baseline_events,
            shape,
            baseline_source,
            compare_with_previous_version: entry.is_some_and(|m| m.compare_with_previous_version),
            drift: DriftSettings {
                rule: c.rule.rule(),
                min_samples: entry
                    .and_then(|m| m.min_samples)
                    .unwrap_or(c.min_samples)
                    .get(),
                ignore: entry
                    .map(|m| m.ignore_features.iter().cloned().collect())
                    .unwrap_or_else(HashSet::new),
                overrides: entry
                    .map(|m| {
                        m.features
                            .iter()
                            .map(|(name, f)| {
                                (
                                    name.clone(),
                                    ColumnOverride {
                                        test: f.test.map(|t| t.0),
                                        threshold: f.threshold,
                                    },
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            },
        }
    }

    /// A model version seen for the first time: its settings, and its baseline when that does
    /// not come from its own first events.
    fn new_model(&self, key: &ModelKey) -> ModelState {
        let settings = self.settings(key);
        let mut baseline = None;
        if let Some(BaselineSource::File(path)) = &settings.baseline_source {
            match crate::offline_drift::read_dataset(path) {
                Ok(data) => {
                    baseline = Some(Baseline {
                        origin: Origin::File(path.display().to_string()),
                        first_event_id: None,
                        last_event_id: None,
                        data,
                    })
                }
                // The version is still watched, against its own first events.
                Err(e) => {
                    tracing::error!(model = %key.model, version = %key.version, file = %path.display(), error = %format!("{e:#}"),
                    "cannot read the baseline file; using the version's first events")
                }
            }
        } else if let Some(BaselineSource::TimeRange(range)) = &settings.baseline_source {
            let nanos = |t: std::time::SystemTime| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            };
            let of = ModelKey {
                model: key.model.clone(),
                version: range.version.clone().unwrap_or_else(|| key.version.clone()),
            };
            let read = read_events(
                &self.conn,
                Selection::Time {
                    key: &of,
                    since_ns: nanos(range.since),
                    until_ns: nanos(range.until),
                },
            );
            match read {
                Ok(events) if events.len() >= settings.drift.min_samples => {
                    let window = Window {
                        events: events.into_iter().map(|(_, e)| e).collect(),
                    };
                    baseline = Some(Baseline {
                        origin: Origin::TimeRange {
                            version: of.version.clone(),
                            since: humantime::format_rfc3339(range.since).to_string(),
                            until: humantime::format_rfc3339(range.until).to_string(),
                        },
                        first_event_id: window.first_event_id(),
                        last_event_id: window.last_event_id(),
                        data: window.dataset(),
                    });
                }
                Ok(events) => {
                    tracing::error!(model = %key.model, version = %key.version, from_version = %of.version, found = events.len(),
                    "the baseline's time range holds too few stored events; using the version's first events")
                }
                Err(e) => tracing::error!(model = %key.model, version = %key.version, error = %e,
                    "cannot read the baseline's time range; using the version's first events"),
            }
        } else if settings.compare_with_previous_version {
            let previous = self
                .models
                .iter()
                .filter(|(k, m)| {
                    k.model == key.model && k.version != key.version && m.baseline.is_some()
                })
                .max_by_key(|(_, m)| m.last_event_id);
            if let Some((k, m)) = previous
                && let Some(b) = &m.baseline
            {
                baseline = Some(Baseline {
                    origin: Origin::PreviousVersion(k.version.clone()),
                    ..b.clone()
                });
            }
        }
        ModelState {
            settings,
            baseline,
            open: Window::default(),
            windows_closed: 0,
            events_seen: 0,
            last_event_id: None,
            since_decision: 0,
            window_end_ns: None,
            last_push: Instant::now(),
        }
    }

    /// One pass: takes the events committed since the last one (handed over by the tap, or read
    /// from the store at start and after a gap, at most `batch_events`), closes the windows
    /// they fill and the time windows that went quiet, and commits the results with the state
    /// they lead to.
    pub fn step(&mut self) -> Result<Pass> {
        let limit = self.config.batch_events.get();
        let (events, behind) = self.next_events(limit)?;
        let mut pass = Pass {
            events: events.len(),
            behind,
            ..Pass::default()
        };
        let now = now_ns();
        let mut new_baselines: Vec<ModelKey> = Vec::new();
        let mut closed: Vec<Decided> = Vec::new();
        if let Some((_, e)) = events.last() {
            self.cursor = Some(e.event_id);
        }
        for (key, event) in events {
            if !self.models.contains_key(&key) {
                let m = self.new_model(&key);
                log_lines::model_seen(&key, m.baseline.as_ref(), m.settings.baseline_events);
                if m.baseline.is_some() {
                    new_baselines.push(key.clone());
                }
                self.models.insert(key.clone(), m);
            }
            let Some(m) = self.models.get_mut(&key) else {
                continue;
            };
            if let Some(decided) = m.push(&key, event) {
                if decided.window.index == 0 {
                    new_baselines.push(key.clone());
                    pass.baselines_ready += 1;
                } else {
                    closed.push(decided);
                }
            }
        }
        if !behind {
            let grace = self.config.time_window_grace;
            for (key, m) in &mut self.models {
                closed.extend(m.close_quiet(key, now, grace));
            }
        }
        pass.windows_closed = closed.len();
        self.unsaved |= pass.events > 0;
        let decided_any = !closed.is_empty() || !new_baselines.is_empty();
        if decided_any || (self.unsaved && self.saved_at.elapsed() >= SAVE_EVERY) {
            self.commit_decisions(&new_baselines, &closed, now)?;
        }

        let decided = Instant::now();
        for d in &closed {
            let w = &d.window;
            let windows = self.models.get(&w.key).map_or(0, |m| m.windows_closed);
            self.gauges
                .publish_window(&w.key.model, &w.key.version, &d.findings, windows);
            self.drift_log.window(&w.key, w.index, &d.findings);
            if let Some(p) = &d.predictions {
                self.gauges
                    .publish_predictions(&w.key.model, &w.key.version, p);
            }
            if d.by_clock {
                continue;
            }
            if let Some(at) = self
                .commit_times
                .as_ref()
                .and_then(|t| t.committed_at(w.last_event_id))
            {
                self.observe_delay(decided.saturating_duration_since(at).as_secs_f64());
            }
        }
        self.publish_lag(behind)?;
        Ok(pass)
    }

    /// Saves baselines, closed windows with their findings, and the engine's state, in one
    /// transaction.
    fn commit_decisions(
        &mut self,
        new_baselines: &[ModelKey],
        closed: &[Decided],
        now: i64,
    ) -> Result<()> {
        let snapshot = self.snapshot();
        let tx = self.conn.transaction()?;
        for key in new_baselines {
            if let Some(b) = self.models.get(key).and_then(|m| m.baseline.as_ref()) {
                state::save_baseline(&tx, key, b, now)?;
            }
        }
        let scopes: Vec<Scope> = closed.iter().map(|d| d.window.scope()).collect();
        let mut rows = Vec::new();
        for (d, scope) in closed.iter().zip(&scopes) {
            rows.extend(d.findings.iter().map(|f| (scope, f)));
        }
        state::insert_windows(&tx, closed.iter().map(|d| &d.window), now)?;
        results::insert_all(&tx, now, &rows)?;
        state::save(&tx, &snapshot, now)?;
        tx.commit()?;
        self.saved_at = Instant::now();
        self.unsaved = false;
        Ok(())
    }

    /// Saves the cursor and open windows if events were taken since the last save (at shutdown,
    /// so that a restart reads nothing again).
    pub fn save_state(&mut self) -> Result<()> {
        if self.unsaved {
            self.commit_decisions(&[], &[], now_ns())?;
        }
        Ok(())
    }

    /// The events after the cursor in `event_id` order, and whether more are known to wait.
    /// The tap's commits are used while they follow the cursor without a gap; the store is
    /// read at start (events stored before, or while detection was off), after the tap left
    /// events out, and always when there is no tap.
    fn next_events(&mut self, limit: usize) -> Result<(Vec<(ModelKey, Event)>, bool)> {
        let (taken, newest) = match &self.tap {
            Some(t) => t.take(),
            None => (Vec::new(), None),
        };
        let after = |c: Option<u64>| c.map_or(0, |c| c + 1);
        let mut cursor = self.cursor;
        let relevant: Vec<_> = taken
            .into_iter()
            .filter(|c| c.last_event_id().is_some_and(|l| l >= after(cursor)))
            .collect();
        let gap_first = relevant
            .first()
            .is_some_and(|c| c.first_event_id > after(cursor));
        let missed = relevant.is_empty() && newest.is_some_and(|n| n >= after(cursor));
        let mut events = Vec::new();
        if self.tap.is_none() || !self.caught_up || gap_first || missed {
            events = read_events(&self.conn, Selection::After { cursor, limit })?;
            if let (Some((_, first)), Some((_, last))) = (events.first(), events.last()) {
                let (first, last) = (first.event_id, last.event_id);
                self.publish_stored_model_info(first, last)?;
                cursor = Some(last);
            }
            let full = events.len() == limit;
            self.caught_up = !full;
            if full || self.tap.is_none() {
                return Ok((events, full));
            }
        }
        for c in relevant {
            let (first, Some(last)) = (c.first_event_id, c.last_event_id()) else {
                continue;
            };
            if last < after(cursor) {
                continue; // read from the store just now
            }
            if first > after(cursor) {
                break; // a gap: the rest comes from the store on the next pass
            }
            let skip = after(cursor) - first;
            for (i, row) in c.rows.into_iter().enumerate().skip(skip as usize) {
                self.note_model_info(&row.model, &row.version, row.resource_id)?;
                events.push(from_row(&mut self.names, first + i as u64, row));
            }
            cursor = Some(last);
        }
        // Events committed but not handed over: read from the store on the next pass.
        let behind = newest.is_some_and(|n| n >= after(cursor));
        if behind {
            self.caught_up = false;
        }
        Ok((events, behind))
    }

    fn observe_delay(&mut self, seconds: f64) {
        let bucket = DELAY_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(DELAY_BUCKETS.len());
        self.delays.0[bucket] += 1;
        self.delays.1 += seconds;
        self.gauges
            .verdict_delay
            .set_histogram(&[], &DELAY_BUCKETS, &self.delays.0, self.delays.1);
    }

    /// Puts the model versions of stored events `first..=last` on `millwatch_model_info`.
    fn publish_stored_model_info(&mut self, first: u64, last: u64) -> Result<()> {
        let mut seen: Vec<(String, String, u64)> = Vec::new();
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT DISTINCT model, version, resource_id FROM inferences WHERE event_id BETWEEN ? AND ?",
            )?;
            let mut rows = stmt.query(duckdb::params![first, last])?;
            while let Some(r) = rows.next()? {
                seen.push((r.get(0)?, r.get(1)?, r.get(2)?));
            }
        }
        for (model, version, resource) in seen {
            self.note_model_info(&model, &version, resource)?;
        }
        Ok(())
    }

    /// Puts a model version on `millwatch_model_info` with the resource it came from, once per
    /// model version and resource.
    fn note_model_info(&mut self, model: &str, version: &str, resource: u64) -> Result<()> {
        let known = self
            .info_seen
            .get(model)
            .and_then(|v| v.get(version))
            .is_some_and(|r| r.contains(&resource));
        if known {
            return Ok(());
        }
        let attrs: Vec<String> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT coalesce(service_name, ''), coalesce(environment, ''), coalesce(host_name, ''), \
                 coalesce(site_name, ''), coalesce(site_line, ''), coalesce(site_cell, '') \
                 FROM resources WHERE resource_id = ?",
            )?;
            let mut rows = stmt.query([resource])?;
            match rows.next()? {
                Some(r) => (0..6).map(|i| r.get(i)).collect::<duckdb::Result<_>>()?,
                None => vec![String::new(); 6],
            }
        };
        self.gauges.model_info.set(
            &[
                ("model", model),
                ("version", version),
                ("service", &attrs[0]),
                ("environment", &attrs[1]),
                ("host_name", &attrs[2]),
                ("site_name", &attrs[3]),
                ("site_line", &attrs[4]),
                ("site_cell", &attrs[5]),
            ],
            1.0,
        );
        self.info_seen
            .entry(model.to_owned())
            .or_default()
            .entry(version.to_owned())
            .or_default()
            .insert(resource);
        Ok(())
    }

    fn publish_lag(&mut self, behind: bool) -> Result<()> {
        let newest = match &self.tap {
            Some(t) => t.newest(),
            None if behind => {
                self.conn
                    .query_row("SELECT max(event_id) FROM inferences", [], |r| r.get(0))?
            }
            None => None,
        };
        let lag = match (newest, self.cursor) {
            (Some(n), Some(c)) => n.saturating_sub(c),
            (Some(n), None) => n + 1,
            (None, _) => 0,
        };
        if lag == 0 {
            self.behind_since = None;
        } else {
            self.behind_since.get_or_insert_with(Instant::now);
        }
        self.gauges.lag_events.set(&[], lag as f64);
        self.gauges.lag_seconds.set(
            &[],
            self.behind_since.map_or(0.0, |t| t.elapsed().as_secs_f64()),
        );
        Ok(())
    }

    fn snapshot(&self) -> EngineState {
        EngineState {
            cursor: self.cursor,
            models: self
                .models
                .iter()
                .map(|(k, m)| ModelRecord {
                    model: k.model.clone(),
                    version: k.version.clone(),
                    open_first_event_id: m.open.first_event_id(),
                    open_events: m.open.len(),
                    baseline_ready: m.baseline.is_some(),
                    windows_closed: m.windows_closed,
                    events_seen: m.events_seen,
                    last_event_id: m.last_event_id,
                    since_decision: m.since_decision,
                    window_end_ns: m.window_end_ns,
                })
                .collect(),
            health: self.health.state(),
        }
    }

    /// Re-evaluates the performance of recent closed windows that gained feedback since their
    /// last evaluation; returns how many windows were re-evaluated.
    pub fn performance_pass(&mut self) -> Result<usize> {
        let now = now_ns();
        let min = self.config.performance_min_labels.get();
        let keep = self.config.performance_windows.get();
        let mut updates: Vec<(ClosedWindow, u64, Vec<Finding>)> = Vec::new();
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
            if feedback == 0 || self.performance_seen.get(&key) == Some(&seen) {
                continue;
            }
            self.performance_seen.insert(key.clone(), seen);
            let baseline_range = m
                .baseline
                .as_ref()
                .and_then(|b| Some((b.first_event_id?, b.last_event_id?)));
            let windows = state::recent_windows(&self.conn, &key, keep)?;
            let mut fresh = Vec::new();
            for w in windows {
                let labels =
                    performance::labelled(&self.conn, &key, w.first_event_id, w.last_event_id)?;
                if labels.len() as u64 > w.labelled && labels.len() >= min {
                    fresh.push((w, labels));
                }
            }
            if fresh.is_empty() {
                continue;
            }
            let baseline_labels = match baseline_range {
                Some((first, last)) => Some(performance::labelled(&self.conn, &key, first, last)?),
                None => None,
            };
            for (w, labels) in fresh {
                let findings = performance::evaluate(baseline_labels.as_ref(), &labels, min);
                updates.push((w, labels.len() as u64, findings));
            }
        }
        if updates.is_empty() {
            return Ok(0);
        }
        let tx = self.conn.transaction()?;
        let scopes: Vec<Scope> = updates.iter().map(|(w, ..)| w.scope()).collect();
        let mut rows = Vec::new();
        for ((w, labelled, findings), scope) in updates.iter().zip(&scopes) {
            state::set_labelled(&tx, &w.key, w.index, *labelled)?;
            rows.extend(findings.iter().map(|f| (scope, f)));
        }
        results::insert_all(&tx, now, &rows)?;
        tx.commit()?;
        // The newest window with labels is what the gauges show.
        let mut newest: BTreeMap<&ModelKey, &(ClosedWindow, u64, Vec<Finding>)> = BTreeMap::new();
        for u in &updates {
            let e = newest.entry(&u.0.key).or_insert(u);
            if u.0.index > e.0.index {
                *e = u;
            }
        }
        for (key, (_, _, findings)) in newest {
            self.gauges
                .publish_performance(&key.model, &key.version, findings);
        }
        Ok(updates.len())
    }

    /// Runs the machine-health rules on metric points stored since the last pass.
    pub fn health_pass(&mut self, now_ns: i64) -> Result<usize> {
        let findings = self.health.pass(&self.conn, now_ns)?;
        if findings.is_empty() && !self.health.dirty() {
            return Ok(0);
        }
        let snapshot = self.snapshot();
        let tx = self.conn.transaction()?;
        let rows: Vec<(&Scope, &Finding)> = findings.iter().map(|(s, f)| (s, f)).collect();
        results::insert_all(&tx, now_ns, &rows)?;
        state::save(&tx, &snapshot, now_ns)?;
        tx.commit()?;
        self.health.committed();
        Ok(findings.len())
    }
}

/// A closed window (or the completed baseline, index 0) and what was found in it.
struct Decided {
    window: ClosedWindow,
    findings: Vec<Finding>,
    /// The window's and the baseline's prediction distributions; none for the baseline.
    predictions: Option<Predictions>,
    /// Closed by the clock (a quiet time window), not by an event: no verdict delay to time.
    by_clock: bool,
}

impl ModelState {
    /// Adds an event; when that completes the baseline or a window, returns the closed
    /// window's record, findings and prediction distributions (a completed baseline returns
    /// window index 0 and no findings).
    fn push(&mut self, key: &ModelKey, event: Event) -> Option<Decided> {
        self.last_push = Instant::now();
        self.events_seen += 1;
        self.last_event_id = Some(event.event_id);
        if self.baseline.is_none() {
            self.open.events.push(event);
            if self.open.len() < self.settings.baseline_events {
                return None;
            }
            let window = std::mem::take(&mut self.open);
            let record = closed(key, 0, &window);
            self.baseline = Some(Baseline {
                origin: Origin::FirstEvents,
                first_event_id: Some(record.first_event_id),
                last_event_id: Some(record.last_event_id),
                data: window.dataset(),
            });
            return Some(Decided {
                window: record,
                findings: Vec::new(),
                predictions: None,
                by_clock: false,
            });
        }
        match self.settings.shape {
            Shape::Count { size, slide } => {
                self.open.events.push(event);
                self.since_decision += 1;
                if self.open.len() > size {
                    let extra = self.open.len() - size;
                    self.open.events.drain(..extra);
                }
                // Decided once full, then every `slide` events (`since_decision` counts from
                // the baseline, so the first full window is due at once).
                let due = self.open.len() == size && self.since_decision >= slide;
                if !due {
                    return None;
                }
                self.since_decision = 0;
                self.windows_closed += 1;
                let baseline = self.baseline.as_ref()?;
                let out = decide(
                    key,
                    baseline,
                    &self.settings,
                    &self.open,
                    self.windows_closed,
                );
                if slide == size {
                    self.open.events.clear();
                }
                Some(out)
            }
            Shape::Time { size, slide } => {
                let t = event.time_ns;
                let end = *self.window_end_ns.get_or_insert_with(|| next_end(t, slide));
                let out = if t >= end {
                    self.close_time_window(key, end, size, next_end(t, slide))
                } else {
                    None
                };
                self.open.events.push(event);
                out
            }
        }
    }

    /// Decides the time window ending at `end` (if it holds events) and moves on to the one
    /// ending at `next_end`.
    fn close_time_window(
        &mut self,
        key: &ModelKey,
        end: i64,
        size: i64,
        next_end: i64,
    ) -> Option<Decided> {
        let start = end.saturating_sub(size);
        let window = Window {
            events: self
                .open
                .events
                .iter()
                .filter(|e| e.time_ns >= start && e.time_ns < end)
                .cloned()
                .collect(),
        };
        let mut out = None;
        if let Some(baseline) = &self.baseline
            && !window.is_empty()
        {
            self.windows_closed += 1;
            out = Some(decide(
                key,
                baseline,
                &self.settings,
                &window,
                self.windows_closed,
            ));
        }
        self.window_end_ns = Some(next_end);
        let keep_from = next_end.saturating_sub(size);
        self.open.events.retain(|e| e.time_ns >= keep_from);
        out
    }

    /// A time window whose end has passed (by the clock, `now_ns`) and whose version sent
    /// nothing for `grace` is decided without waiting for an event of the next window.
    fn close_quiet(&mut self, key: &ModelKey, now_ns: i64, grace: Duration) -> Option<Decided> {
        let Shape::Time { size, slide } = self.settings.shape else {
            return None;
        };
        let end = self.window_end_ns?;
        let grace_ns = i64::try_from(grace.as_nanos()).unwrap_or(i64::MAX);
        if self.baseline.is_none()
            || self.last_push.elapsed() < grace
            || now_ns < end.saturating_add(grace_ns)
        {
            return None;
        }
        // The first end after the grace period; later events are late for the closed window.
        let next = next_end(now_ns.saturating_sub(grace_ns), slide).max(end.saturating_add(slide));
        let mut decided = self.close_time_window(key, end, size, next)?;
        decided.by_clock = true;
        Some(decided)
    }
}

/// The end of the time window that holds time `t`: the next multiple of `slide` after it.
fn next_end(t: i64, slide: i64) -> i64 {
    t.div_euclid(slide)
        .saturating_mul(slide)
        .saturating_add(slide)
}

/// Drift, data quality and prediction distribution of a closed window against the baseline.
fn decide(
    key: &ModelKey,
    baseline: &Baseline,
    settings: &Settings,
    window: &Window,
    index: u64,
) -> Decided {
    let data = window.dataset();
    Decided {
        window: closed(key, index, window),
        findings: model_drift::evaluate(&baseline.data, &data, &settings.drift),
        predictions: Some(prediction::summarise(&baseline.data, &data)),
        by_clock: false,
    }
}

/// The record of a closed window (or of the baseline, index 0).
fn closed(key: &ModelKey, index: u64, window: &Window) -> ClosedWindow {
    let (start_ns, end_ns) = window.time_bounds();
    ClosedWindow {
        key: key.clone(),
        index,
        first_event_id: window.first_event_id().unwrap_or(0),
        last_event_id: window.last_event_id().unwrap_or(0),
        start_ns,
        end_ns,
        events: window.len() as u64,
        labelled: 0,
    }
}

/// The running engine, stopped by [`DetectionHandle::shutdown`].
pub struct DetectionHandle {
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl DetectionHandle {
    /// Stops the engine after its current pass and waits for it.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// Starts the engine on a thread of its own with its own connection.
pub fn start(
    conn: Connection,
    config: DetectionConfig,
    exposition: MetricsExposition,
    commit_times: Arc<CommitTimes>,
    tap: Arc<InferenceTap>,
) -> Result<DetectionHandle> {
    let engine = Engine::open(conn.try_clone()?, config.clone(), &exposition)?
        .with_commit_times(commit_times.clone())
        .with_tap(tap.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("millwatch-detection".into())
        .spawn(move || run(engine, conn, config, exposition, commit_times, tap, flag))
        .map_err(|e| DetectionError::Start(e.to_string()))?;
    Ok(DetectionHandle {
        stop,
        thread: Mutex::new(Some(thread)),
    })
}

fn run(
    mut engine: Engine,
    conn: Connection,
    config: DetectionConfig,
    exposition: MetricsExposition,
    commit_times: Arc<CommitTimes>,
    tap: Arc<InferenceTap>,
    stop: Arc<AtomicBool>,
) {
    let mut last_performance = Instant::now();
    let mut last_health: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let seen = commit_times.sequence();
        let outcome = engine.step().and_then(|pass| {
            // Machine health at most every poll interval, however often commits wake the engine.
            let health_due = last_health.is_none_or(|t| t.elapsed() >= config.poll_interval);
            if !pass.behind && health_due {
                last_health = Some(Instant::now());
                engine.health_pass(now_ns())?;
                if last_performance.elapsed() >= config.performance_interval {
                    last_performance = Instant::now();
                    engine.performance_pass()?;
                }
            }
            Ok(pass)
        });
        match outcome {
            Ok(pass) if pass.behind => continue,
            Ok(_) => {}
            Err(e) => {
                // What was not committed is done again from the persisted state.
                tracing::error!(error = %e, "detection pass failed; restarting the engine from its saved state");
                sleep_unless_stopped(Duration::from_secs(1), &stop);
                match conn
                    .try_clone()
                    .map_err(DetectionError::from)
                    .and_then(|c| Engine::open(c, config.clone(), &exposition))
                {
                    Ok(e) => {
                        engine = e
                            .with_commit_times(commit_times.clone())
                            .with_tap(tap.clone())
                    }
                    Err(e) => tracing::error!(error = %e, "cannot reopen the detection engine"),
                }
                continue;
            }
        }
        // Asleep until the store commits something new: an idle collector runs no queries but
        // the once-a-second pass that notices silent sensors (absence rules).
        let idle_until = Instant::now() + IDLE_PASS.max(config.poll_interval);
        while !stop.load(Ordering::Relaxed) {
            let left = idle_until.saturating_duration_since(Instant::now());
            if left.is_zero() || commit_times.wait_after(seen, left.min(STOP_CHECK)) {
                break;
            }
        }
    }
    if let Err(e) = engine.save_state() {
        tracing::warn!(error = %e, "cannot save the detection state at shutdown; events since the last save will be read again");
    }
    tracing::info!("detection engine stopped");
}

/// The longest the engine sleeps without a commit (absence rules need the clock to move).
const IDLE_PASS: Duration = Duration::from_secs(1);
/// How often a sleeping engine looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}
