//! The engine's own thread: a pass whenever the store commits (or once a second when idle),
//! machine health and performance on their intervals, and a restart from the saved state
//! after a failed pass.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use duckdb::Connection;
use millwatch_exporters::prometheus::MetricsExposition;

use super::Engine;
use crate::detection::commit_times::CommitTimes;
use crate::detection::config::DetectionConfig;
use crate::detection::tap::InferenceTap;
use crate::detection::{DetectionError, Result};
use crate::pipeline::now_ns;

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
                engine.stream_pass()?;
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
