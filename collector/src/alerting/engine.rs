//! The alert engine: a thread that evaluates the rules every `evaluation_interval`, moves
//! alerts through their lifecycle, sorts them into notification groups and writes due
//! notifications to the outbox; and a task that delivers the outbox.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use duckdb::Connection;
use millwatch_exporters::notify::Labels;
use millwatch_exporters::prometheus::MetricsExposition;
use serde::Serialize;

use super::config::AlertingConfig;
use super::groups::Groups;
use super::hold::For;
use super::lifecycle::{Ack, AlertEntry, Book, Changes, State};
use super::log_limit::{self, LogLimit};
use super::metrics::AlertMetrics;
use super::routing::Route;
use super::rules::{Condition, Rule, compile};
use super::silences::Silence;
use super::sources::{CollectorSource, DetectionSource, Verdicts, metric_candidates};
use super::{AlertingError, Db, Result, inhibit, now_ns, outbox, persist, silences};
use crate::telemetry::Telemetry;

/// An alert as the API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    pub fingerprint: String,
    pub rule: String,
    pub state: State,
    pub labels: Labels,
    pub annotations: Labels,
    pub value: Option<f64>,
    pub active_at: String,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub silenced_by: Vec<String>,
    pub inhibited_by: Vec<String>,
    pub acknowledged: Option<AckView>,
    pub receivers: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AckView {
    pub by: String,
    pub comment: String,
    pub at: String,
}

/// What the engine shares with the API.
pub struct Shared {
    pub db: Db,
    pub alerts: RwLock<Vec<AlertView>>,
    pub silences: RwLock<Vec<Silence>>,
    /// Acknowledgements made through the API, applied at the next evaluation.
    pub acks: Mutex<Vec<(String, Ack)>>,
    /// Wakes the outbox worker when something was enqueued.
    pub wake: tokio::sync::Notify,
}

/// The running alert manager.
pub struct AlertingHandle {
    pub shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    worker: tokio::task::JoinHandle<()>,
    worker_stop: tokio::sync::watch::Sender<bool>,
}

impl AlertingHandle {
    /// Stops evaluating, lets the worker finish the round it is in, and returns.
    pub async fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        let _ = self.worker_stop.send(true);
        let _ = self.worker.await;
    }
}

struct Engine {
    config: AlertingConfig,
    rules: Vec<Rule>,
    route: Option<Route>,
    external_url: String,
    book: Book,
    groups: Groups,
    detections: DetectionSource,
    collector: CollectorSource,
    telemetry: Arc<Telemetry>,
    metrics: Arc<AlertMetrics>,
    shared: Arc<Shared>,
    /// Keeps "notification queued" to a line per receiver and interval.
    log: LogLimit,
}

/// Starts the alert manager on its own connection `conn`. Must be called inside the runtime.
pub fn start(
    conn: Connection,
    config: AlertingConfig,
    telemetry: Arc<Telemetry>,
    exposition: &MetricsExposition,
    external_url: String,
) -> Result<AlertingHandle> {
    let metrics = Arc::new(AlertMetrics::register(exposition)?);
    let mut notifiers = outbox::Notifiers::new();
    for (name, c) in &config.receivers {
        let n = c
            .clone()
            .build()
            .map_err(|source| AlertingError::Receiver {
                receiver: name.clone(),
                source,
            })?;
        notifiers.insert(name.clone(), n);
    }
    let notifiers = Arc::new(notifiers);
    let db = Db::new(conn);
    let now = now_ns();
    let (alerts, groups, silences) = db.with(|c| {
        Ok((
            persist::load_alerts(c)?,
            persist::load_groups(c, now)?,
            silences::load(c)?,
        ))
    })?;
    let shared = Arc::new(Shared {
        db: db.clone(),
        alerts: RwLock::new(Vec::new()),
        silences: RwLock::new(silences),
        acks: Mutex::new(Vec::new()),
        wake: tokio::sync::Notify::new(),
    });
    let rules = compile(&config);
    let tail = rules
        .iter()
        .filter_map(|r| match (&r.condition, r.for_) {
            (Condition::Detections(_), For::Windows(n)) => Some(n.get()),
            _ => None,
        })
        .max()
        .unwrap_or(1);
    let mut engine = Engine {
        rules,
        route: config.route.as_ref().map(Route::tree),
        external_url: config.external_url.clone().unwrap_or(external_url),
        book: Book::default(),
        groups: Groups::default(),
        detections: DetectionSource::new(tail),
        collector: CollectorSource::default(),
        telemetry,
        metrics: metrics.clone(),
        shared: shared.clone(),
        log: LogLimit::new(log_limit::EVERY),
        config,
    };
    for e in alerts {
        engine.book.alerts.insert(e.fingerprint.clone(), e);
    }
    for g in groups {
        engine.groups.map.insert(g.key.clone(), g);
    }
    for (name, n) in notifiers.iter() {
        if let Some(r) = n.resend_interval() {
            engine.groups.resend.insert(name.clone(), r);
        }
    }
    engine.resolve_unknown_rules(now);
    metrics.start_at_zero(
        engine.rules.iter().map(|r| {
            let severity = r.labels.get("severity").map_or("", String::as_str);
            (r.name.as_str(), severity)
        }),
        notifiers.keys().map(String::as_str),
    );
    // The API lists what was stored before the first evaluation.
    engine.publish(now);
    tracing::info!(
        rules = engine.rules.len(),
        receivers = notifiers.len(),
        alerts = engine.book.alerts.len(),
        "alert manager started"
    );
    match &engine.route {
        Some(route) => tracing::info!(
            receiver = %route.receiver,
            group_wait = %humantime::format_duration(route.group_wait),
            group_interval = %humantime::format_duration(route.group_interval),
            "a new group of alerts is notified after group_wait, its changes every group_interval"
        ),
        None => tracing::info!(
            "no receiver is configured: alerts are evaluated and listed at /api/v1/alerts but not sent; add `alerting.receivers` and `alerting.route` to send them"
        ),
    }

    let delivery = engine.config.delivery.clone();
    let rules = Arc::new(engine.rules.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        let every = engine.config.evaluation_interval;
        std::thread::Builder::new()
            .name("millwatch-alerting".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    engine.tick(now_ns());
                    sleep_unless(&stop, every);
                }
            })
            .map_err(AlertingError::Start)?
    };

    let (worker_stop, mut stopped) = tokio::sync::watch::channel(false);
    let worker = {
        let shared = shared.clone();
        let db = shared.db.clone();
        tokio::spawn(async move {
            let config = delivery;
            let mut pruned_at: Option<tokio::time::Instant> = None;
            let mut log = LogLimit::new(log_limit::EVERY);
            loop {
                match outbox::deliver_due(&db, &notifiers, &rules, &config, &metrics, &mut log)
                    .await
                {
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "outbox round failed"),
                }
                match db.run(outbox::pending).await {
                    Ok(pending) => metrics.set_queue(notifiers.keys(), &pending),
                    Err(e) => tracing::warn!(error = %e, "counting the outbox failed"),
                }
                if pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                    pruned_at = Some(tokio::time::Instant::now());
                    let keep = config.clone();
                    match db.run(move |c| outbox::prune(c, &keep, now_ns())).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(notifications = n, "pruned old notifications"),
                        Err(e) => tracing::warn!(error = %e, "pruning the outbox failed"),
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(config.poll_interval) => {}
                    _ = shared.wake.notified() => {}
                    _ = stopped.wait_for(|s| *s) => return,
                }
            }
        })
    };
    Ok(AlertingHandle {
        shared,
        stop,
        thread: Some(thread),
        worker,
        worker_stop,
    })
}

/// How often delivered and failed notifications past their retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

fn sleep_unless(stop: &AtomicBool, total: Duration) {
    let step = Duration::from_millis(50);
    let mut left = total;
    while !left.is_zero() && !stop.load(Ordering::Relaxed) {
        let d = left.min(step);
        std::thread::sleep(d);
        left -= d;
    }
}

/// The silences that mute `e` now.
fn silenced_by(shared: &Shared, e: &AlertEntry, now: i64) -> Vec<String> {
    match shared.silences.read() {
        Ok(s) => s
            .iter()
            .filter(|s| s.mutes(&e.labels, now))
            .map(|s| s.id.clone())
            .collect(),
        Err(_) => Vec::new(),
    }
}

impl Engine {
    /// Alerts of rules that are no longer configured resolve.
    fn resolve_unknown_rules(&mut self, now: i64) {
        let known: Vec<&str> = self.rules.iter().map(|r| r.name.as_str()).collect();
        let stale: Vec<String> = self
            .book
            .alerts
            .values()
            .filter(|e| !known.contains(&e.rule.as_str()))
            .map(|e| e.rule.clone())
            .collect();
        for rule in stale {
            let changes = self.book.apply(&rule, Duration::ZERO, Vec::new(), now);
            self.persist(&changes.upserted, &changes.removed, now);
        }
    }

    fn persist(&self, upserted: &[String], removed: &[String], now: i64) {
        // An alert changed by several verdicts of one evaluation is written once, as it is now.
        let entries: Vec<AlertEntry> = upserted
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter_map(|fp| self.book.alerts.get(fp).cloned())
            .collect();
        let removed = removed.to_vec();
        let result = self.shared.db.with(move |c| {
            let refs: Vec<&AlertEntry> = entries.iter().collect();
            persist::write_alerts(c, &refs, &removed, now)
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "writing alerts failed");
        }
    }

    fn tick(&mut self, now: i64) {
        let mut upserted = Vec::new();
        let mut removed = Vec::new();
        let acks: Vec<(String, Ack)> = match self.shared.acks.lock() {
            Ok(mut a) => std::mem::take(&mut *a),
            Err(_) => Vec::new(),
        };
        for (fp, ack) in acks {
            if let Some(e) = self.book.alerts.get_mut(&fp) {
                e.ack = Some(ack);
                upserted.push(fp);
            }
        }
        // Read once for every detection rule; unread (an error) they wait for the next round.
        let verdicts = if self
            .rules
            .iter()
            .any(|r| matches!(r.condition, Condition::Detections(_)))
        {
            let source = &mut self.detections;
            match self.shared.db.with(|c| source.read(c)) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the verdicts failed");
                    None
                }
            }
        } else {
            None
        };
        let mut fired = BTreeSet::new();
        for i in 0..self.rules.len() {
            let rule = self.rules[i].clone();
            let changes = match self.evaluate(&rule, verdicts.as_ref(), now) {
                Ok(Some(changes)) => changes,
                Ok(None) => continue,
                Err(e) => {
                    // Without an answer the rule's alerts stay as they are.
                    tracing::warn!(rule = %rule.name, error = %e, "rule evaluation failed");
                    continue;
                }
            };
            self.log_changes(&changes);
            fired.extend(changes.fired);
            upserted.extend(changes.upserted);
            removed.extend(changes.removed);
        }
        let groups = &self.groups;
        let expired = self
            .book
            .expire(self.config.resolved_retention, now, &|fp| groups.owed(fp));
        removed.extend(expired);
        self.persist(&upserted, &removed, now);
        self.notify(&fired, now);
        self.publish(now);
    }

    /// One line per alert that fired or resolved.
    fn log_changes(&self, changes: &Changes) {
        for (fps, what) in [
            (&changes.fired, "alert firing"),
            (&changes.resolved, "alert resolved"),
        ] {
            for e in fps.iter().filter_map(|fp| self.book.alerts.get(fp)) {
                let labels: Vec<String> = e
                    .labels
                    .iter()
                    .filter(|(k, _)| *k != "alertname")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let summary = e.annotations.get("summary").map_or("", String::as_str);
                tracing::info!(alertname = %e.rule, fingerprint = %e.fingerprint, labels = %labels.join(","), summary, "{what}");
            }
        }
    }

    /// One evaluation of `rule`: over the verdicts read for this round (none when reading them
    /// failed: the rule waits), or over what its source holds now.
    fn evaluate(
        &mut self,
        rule: &Rule,
        verdicts: Option<&Verdicts>,
        now: i64,
    ) -> Result<Option<Changes>> {
        let db = self.shared.db.clone();
        let candidates = match &rule.condition {
            Condition::Detections(_) => {
                return Ok(verdicts.map(|v| {
                    let steps = rule.steps(&v.rows);
                    self.book
                        .apply_verdicts(&rule.name, rule.for_, steps, v.complete, now)
                }));
            }
            Condition::Metric(m) => db.with(|c| metric_candidates(c, m, now))?,
            Condition::Collector => {
                let collector = &mut self.collector;
                let telemetry = &self.telemetry;
                db.with(|c| collector.candidates(telemetry, c, now))?
            }
        };
        let active = rule.alerts(&candidates);
        Ok(Some(self.book.apply(
            &rule.name,
            rule.for_.duration(),
            active,
            now,
        )))
    }

    /// Notifies the groups that are due; `fired` are the alerts that started firing in this
    /// evaluation (some may have resolved in it too, and are notified all the same).
    fn notify(&mut self, fired: &BTreeSet<String>, now: i64) {
        let Some(route) = &self.route else {
            return;
        };
        self.groups.assign(route, &self.book, fired, now);
        let mut enqueued = 0;
        for key in self.groups.due(now) {
            let book = &self.book;
            let rules = &self.config.inhibit_rules;
            let shared = &self.shared;
            let muted = |e: &AlertEntry| {
                !silenced_by(shared, e, now).is_empty()
                    || !inhibit::inhibited_by(rules, book, e).is_empty()
            };
            let flush = self
                .groups
                .flush(&key, book, &muted, now, &self.external_url);
            let Some(group) = self.groups.map.get(&key).cloned() else {
                continue;
            };
            let result = self.shared.db.with(|c| {
                let tx = c.transaction()?;
                if let Some(f) = &flush {
                    outbox::enqueue(&tx, &f.notification, now)?;
                }
                persist::write_group(&tx, &group)?;
                tx.commit()
            });
            match result {
                Ok(()) if flush.is_some() => {
                    enqueued += 1;
                    let queued = format!("queued {}", group.receiver);
                    if let Some(suppressed) = self.log.admit(&queued, Instant::now()) {
                        tracing::info!(group = %key, receiver = %group.receiver, suppressed, "notification queued");
                    }
                }
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(group = %key, error = %e, "queueing a notification failed")
                }
            }
        }
        let pruned = self.groups.prune();
        if !pruned.is_empty()
            && let Err(e) = self.shared.db.with(|c| persist::delete_groups(c, &pruned))
        {
            tracing::warn!(error = %e, "deleting empty groups failed");
        }
        if enqueued > 0 {
            self.shared.wake.notify_one();
        }
    }

    fn publish(&self, now: i64) {
        let rules = &self.config.inhibit_rules;
        let views: Vec<AlertView> = self
            .book
            .alerts
            .values()
            .map(|e| AlertView {
                fingerprint: e.fingerprint.clone(),
                rule: e.rule.clone(),
                state: e.state,
                labels: e.labels.clone(),
                annotations: e.annotations.clone(),
                value: e.value.is_finite().then_some(e.value),
                active_at: super::api::rfc3339(e.active_at),
                starts_at: e.fired_at.map(super::api::rfc3339),
                ends_at: e.resolved_at.map(super::api::rfc3339),
                silenced_by: silenced_by(&self.shared, e, now),
                inhibited_by: inhibit::inhibited_by(rules, &self.book, e),
                acknowledged: e.ack.as_ref().map(|a| AckView {
                    by: a.by.clone(),
                    comment: a.comment.clone(),
                    at: super::api::rfc3339(a.at),
                }),
                receivers: self
                    .route
                    .as_ref()
                    .map(|r| {
                        r.matching(&e.labels)
                            .iter()
                            .map(|r| r.receiver.clone())
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        let mut counts: HashMap<(String, String, String), usize> = HashMap::new();
        for e in self
            .book
            .alerts
            .values()
            .filter(|e| e.state != State::Resolved)
        {
            let label = |name: &str| e.labels.get(name).cloned().unwrap_or_default();
            *counts
                .entry((
                    e.state.as_str().to_string(),
                    label("severity"),
                    label("alertname"),
                ))
                .or_default() += 1;
        }
        self.metrics.set_alerts(&counts);
        if let Ok(mut a) = self.shared.alerts.write() {
            *a = views;
        }
    }
}
