//! The engine: a thread of its own that follows the store by `event_id`, gathers each model
//! version's baseline and windows, decides every closed window, and commits the results with
//! the state they lead to in one transaction. Ingest never waits on it: a slow engine shows as
//! lag (`millwatch_detection_lag_events`), never as a refused request.
//!
//! Layout: this file holds the engine and its passes; `settings` (how a model version is
//! watched), `model` (one version's baseline and windows, and when they close), `intake`
//! (events from the tap or the store), `performance_pass` (realised performance as labels
//! arrive, and when a window's change is judged), `telemetry` (lag, verdict delay and model info on
//! `/metrics`), `thread` (the engine's own thread).

mod intake;
mod model;
mod performance_pass;
mod settings;
mod telemetry;
mod thread;

pub use thread::{DetectionHandle, start};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use duckdb::Connection;
use millwatch_exporters::prometheus::MetricsExposition;

use super::commit_times::CommitTimes;
use super::config::DetectionConfig;
use super::estimated::Estimators;
use super::estimated_regression::RegressionEstimators;
use super::estimation_gauges::EstimationGauges;
use super::log_lines::{self, DriftLog};
use super::machine_health::MachineHealth;
use super::multivariate::MultivariateDrift;
use super::results::{self, Finding, Gauges, Scope};
use super::state::{self, EngineState, ModelRecord};
use super::streams::Streams;
use super::tap::InferenceTap;
use super::windows::{ModelKey, Names, Selection, Window, read_events};
use super::{DetectionError, Result};
use crate::pipeline::now_ns;

use model::{Decided, ModelState};
use settings::Settings;
use telemetry::DELAY_BUCKETS;

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
    /// Which windows' performance change was judged, and which wait for their labels to settle.
    judging: performance_pass::Judging,
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
    /// Performance estimated before labels arrive (CBPE), fitted per version on its labelled
    /// baseline.
    estimators: Estimators,
    /// Regressors' errors estimated before labels arrive (DLE), fitted per version.
    regression_estimators: RegressionEstimators,
    /// PCA reconstruction error per window, fitted per version on its baseline.
    multivariate: MultivariateDrift,
    estimation_gauges: EstimationGauges,
    /// Streaming change detectors on per-event streams (`detection.streams`).
    streams: Streams,
}

/// How often the cursor and open windows are saved when no window closes. Events after the
/// saved cursor are read again after a restart, so this bounds only the work redone.
const SAVE_EVERY: Duration = Duration::from_secs(5);

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
        let estimation_gauges = EstimationGauges::register(exposition)
            .map_err(|e| DetectionError::Metrics(e.to_string()))?;
        let streams = Streams::open(&conn, config.streams.clone())?;
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
            judging: performance_pass::Judging::default(),
            info_seen: HashMap::new(),
            commit_times: None,
            delays: (vec![0; DELAY_BUCKETS.len() + 1], 0.0),
            tap: None,
            caught_up: false,
            names: Names::default(),
            unsaved: false,
            saved_at: Instant::now(),
            drift_log: DriftLog::default(),
            estimators: Estimators::default(),
            regression_estimators: RegressionEstimators::default(),
            multivariate: MultivariateDrift::default(),
            estimation_gauges,
            streams,
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
            let settings = Settings::of(&engine.config, &key);
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
        let mut changes = Vec::new();
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
            if !self.streams.is_empty() {
                changes.extend(self.streams.event(&key, &event));
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
        self.estimate_performance(&mut closed)?;
        pass.windows_closed = closed.len();
        self.unsaved |= pass.events > 0;
        let decided_any = !closed.is_empty() || !new_baselines.is_empty();
        if decided_any || (self.unsaved && self.saved_at.elapsed() >= SAVE_EVERY) {
            self.commit_decisions(&new_baselines, &closed, now)?;
        }
        self.insert_changes(&changes, now)?;

        let decided = Instant::now();
        for d in &closed {
            let w = &d.window;
            let windows = self.models.get(&w.key).map_or(0, |m| m.windows_closed);
            self.gauges
                .publish_window(&w.key.model, &w.key.version, &d.findings, windows);
            self.estimation_gauges
                .publish_window(&w.key.model, &w.key.version, &d.findings);
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

    /// Adds to each closed window the performance estimated before any label (CBPE from a
    /// classifier's scores, DLE from a regressor's features) and its multivariate drift.
    fn estimate_performance(&mut self, closed: &mut [Decided]) -> Result<()> {
        let min = self.config.performance_min_labels.get();
        for d in closed {
            let Some(baseline) = self
                .models
                .get(&d.window.key)
                .and_then(|m| m.baseline.as_ref())
            else {
                continue;
            };
            let found = self
                .estimators
                .findings(&self.conn, baseline, &d.window, min)?;
            d.findings.extend(found);
            if let Some(data) = &d.data {
                let found = self
                    .regression_estimators
                    .findings(&self.conn, baseline, &d.window, data, min)?;
                d.findings.extend(found);
                let min_samples = self.config.min_samples.get();
                let found = self
                    .multivariate
                    .findings(baseline, &d.window, data, min_samples);
                d.findings.extend(found);
            }
        }
        Ok(())
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

    /// Feeds the correctness of labels stored since the last pass to the stream detectors that
    /// watch it; returns how many changes they found.
    pub fn stream_pass(&mut self) -> Result<usize> {
        let changes = self.streams.labels(&self.conn)?;
        self.insert_changes(&changes, now_ns())?;
        Ok(changes.len())
    }

    fn insert_changes(&mut self, changes: &[(Scope, Finding)], now: i64) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let rows: Vec<(&Scope, &Finding)> = changes.iter().map(|(s, f)| (s, f)).collect();
        results::insert_all(&self.conn, now, &rows)?;
        Ok(())
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
