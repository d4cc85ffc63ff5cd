//! The outbox: every notification is written to `alert_outbox` in the same transaction as the
//! group state that caused it, then delivered by a worker that retries with exponential backoff
//! and jitter on a retryable outcome and never on a permanent one. Each attempt is a row of
//! `alert_delivery_attempts`. A delivered row is never sent again, across restarts too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use duckdb::Connection;
use millwatch_exporters::http::Backoff;
use millwatch_exporters::notify::{DeliveryOutcome, Notification, Notifier};
use serde_json::json;

use super::config::DeliveryConfig;
use super::log_limit::LogLimit;
use super::metrics::AlertMetrics;
use super::rules::Rule;
use super::{Db, charts, now_ns};

/// Most notifications one round of the worker sends.
const BATCH: usize = 64;

/// Longest `Retry-After` a receiver's answer is honoured for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The notifier of every configured receiver, by receiver name: the outbox sends through
/// [`Notifier`] alone, whatever the receiver's kind.
pub type Notifiers = HashMap<String, Box<dyn Notifier>>;

/// Adds a notification to the outbox (inside the caller's transaction).
pub fn enqueue(conn: &Connection, n: &Notification, now: i64) -> duckdb::Result<()> {
    let payload = serde_json::to_string(n).unwrap_or_else(|_| "{}".into());
    conn.execute(
        "INSERT INTO alert_outbox (id, created, receiver, group_key, status, payload, delivery, attempts, next_attempt, updated) \
         VALUES (nextval('alert_outbox_id'), make_timestamp_ns(?), ?, ?, ?, ?, 'pending', 0, make_timestamp_ns(?), make_timestamp_ns(?))",
        duckdb::params![now, n.receiver, n.group_key, n.status.as_str(), payload, now, now],
    )?;
    Ok(())
}

/// The wait before attempt `attempts + 1`: `initial · 2^(attempts-1)`, capped, with jitter
/// drawn from its upper half; a receiver's `Retry-After` (up to an hour) is honoured when
/// longer.
pub fn backoff(config: &DeliveryConfig, attempts: u32, retry_after: Option<Duration>) -> Duration {
    let backoff = Backoff {
        min_backoff: config.initial_backoff,
        max_backoff: config.max_backoff,
        max_retry_after: MAX_RETRY_AFTER,
    };
    backoff.delay(attempts.saturating_sub(1), retry_after)
}

struct Due {
    id: u64,
    receiver: String,
    payload: String,
    attempts: u32,
    created: i64,
    /// `firing` or `resolved`.
    status: String,
}

/// The oldest pending notification of every (receiver, group) whose time has come, so that a
/// group's notifications arrive in the order they were made.
fn due(conn: &Connection, now: i64) -> duckdb::Result<Vec<Due>> {
    let mut stmt = conn.prepare(
        "SELECT id, receiver, payload, attempts, epoch_ns(created), status FROM ( \
            SELECT *, row_number() OVER (PARTITION BY receiver, group_key ORDER BY id) AS k \
            FROM alert_outbox WHERE delivery = 'pending') \
         WHERE k = 1 AND next_attempt <= make_timestamp_ns(?) ORDER BY id LIMIT ?",
    )?;
    let rows = stmt.query_map(duckdb::params![now, BATCH as u64], |r| {
        Ok(Due {
            id: r.get(0)?,
            receiver: r.get(1)?,
            payload: r.get(2)?,
            attempts: r.get(3)?,
            created: r.get(4)?,
            status: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// What became of one attempt, to record.
struct Attempt {
    id: u64,
    /// ns from the notification being queued to this attempt.
    queued_for: i64,
    receiver: String,
    time: i64,
    outcome: &'static str,
    reason: Option<String>,
    /// `None`: delivered or given up.
    retry_at: Option<i64>,
    attempts: u32,
    status: String,
}

fn record(conn: &mut Connection, attempts: &[Attempt]) -> duckdb::Result<()> {
    let tx = conn.transaction()?;
    for a in attempts {
        tx.execute(
            "INSERT INTO alert_delivery_attempts VALUES (?, make_timestamp_ns(?), ?, ?, ?, make_timestamp_ns(?))",
            duckdb::params![a.id, a.time, a.receiver, a.outcome, a.reason, a.retry_at],
        )?;
        let delivery = match (a.outcome, a.retry_at) {
            ("delivered", _) => "delivered",
            (_, Some(_)) => "pending",
            _ => "failed",
        };
        tx.execute(
            "UPDATE alert_outbox SET delivery = ?, attempts = ?, last_error = ?, updated = make_timestamp_ns(?), \
                 next_attempt = coalesce(make_timestamp_ns(?), next_attempt), \
                 delivered_at = CASE WHEN ? = 'delivered' THEN make_timestamp_ns(?) ELSE delivered_at END \
             WHERE id = ?",
            duckdb::params![delivery, a.attempts, a.reason, a.time, a.retry_at, delivery, a.time, a.id],
        )?;
    }
    tx.commit()
}

/// One round: sends what is due, concurrently, and records every attempt. Returns how many
/// were attempted.
pub async fn deliver_due(
    db: &Db,
    notifiers: &Arc<Notifiers>,
    rules: &Arc<Vec<Rule>>,
    config: &DeliveryConfig,
    metrics: &AlertMetrics,
    log: &mut LogLimit,
) -> Result<usize, super::AlertingError> {
    let now = now_ns();
    let due = db.run(move |c| due(c, now)).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let mut sends = tokio::task::JoinSet::new();
    for d in due {
        let notifiers = notifiers.clone();
        let rules = rules.clone();
        let db = db.clone();
        let config = config.clone();
        sends.spawn(async move {
            let attempts = d.attempts + 1;
            let outcome = match (
                notifiers.get(&d.receiver),
                serde_json::from_str::<Notification>(&d.payload),
            ) {
                (None, _) => DeliveryOutcome::Permanent {
                    reason: format!("receiver `{}` is no longer configured", d.receiver),
                },
                (_, Err(e)) => DeliveryOutcome::Permanent {
                    reason: format!("stored notification cannot be read: {e}"),
                },
                (Some(n), Ok(notification)) if n.shows_history() => {
                    n.send(&with_charts(&db, rules, notification).await).await
                }
                (Some(n), Ok(notification)) => n.send(&notification).await,
            };
            let time = now_ns();
            let max_age = config.max_age.as_nanos().min(i64::MAX as u128) as i64;
            let (outcome_name, reason, retry_at) = match outcome {
                DeliveryOutcome::Delivered => ("delivered", None, None),
                DeliveryOutcome::Permanent { reason } => ("permanent", Some(reason), None),
                DeliveryOutcome::Retryable {
                    reason,
                    retry_after,
                } => {
                    let wait = backoff(&config, attempts, retry_after);
                    let at = time.saturating_add(wait.as_nanos().min(i64::MAX as u128) as i64);
                    if at.saturating_sub(d.created) > max_age {
                        (
                            "retryable",
                            Some(format!("{reason} (given up: older than max_age)")),
                            None,
                        )
                    } else {
                        ("retryable", Some(reason), Some(at))
                    }
                }
            };
            Attempt {
                id: d.id,
                queued_for: time.saturating_sub(d.created),
                receiver: d.receiver,
                time,
                outcome: outcome_name,
                reason,
                retry_at,
                attempts,
                status: d.status,
            }
        });
    }
    let mut done = Vec::new();
    while let Some(result) = sends.join_next().await {
        match result {
            Ok(a) => {
                let delivered = a.outcome == "delivered";
                let seconds = delivered.then_some(a.queued_for.max(0) as f64 / 1e9);
                metrics.attempt(&a.receiver, a.outcome, seconds);
                log_attempt(&a, log);
                done.push(a)
            }
            Err(e) => tracing::error!(error = %e, "a notification send task failed"),
        }
    }
    let n = done.len();
    db.run(move |c| record(c, &done)).await?;
    Ok(n)
}

/// One line for an attempt, unless the receiver had a line of its kind within the last
/// [`super::log_limit::EVERY`]; then it is counted into the next one.
fn log_attempt(a: &Attempt, log: &mut LogLimit) {
    let kind = match (a.outcome, a.retry_at) {
        ("delivered", _) => "delivered",
        (_, Some(_)) => "retrying",
        _ => "given up",
    };
    let Some(suppressed) = log.admit(&format!("{kind} {}", a.receiver), Instant::now()) else {
        return;
    };
    let (receiver, status, id, attempts) = (&a.receiver, &a.status, a.id, a.attempts);
    let reason = a.reason.as_deref().unwrap_or("");
    match kind {
        "delivered" => {
            tracing::info!(receiver = %receiver, status = %status, id, attempts, suppressed, "notification delivered")
        }
        "retrying" => {
            tracing::warn!(receiver = %receiver, status = %status, id, attempts, reason, suppressed, "notification not delivered; will retry")
        }
        _ => {
            tracing::warn!(receiver = %receiver, status = %status, id, attempts, reason, suppressed, "notification given up")
        }
    }
}

/// `n` with the history of its alerts for a receiver that shows it (an email's charts);
/// without them when that cannot be read (the message is worth more than its chart).
async fn with_charts(db: &Db, rules: Arc<Vec<Rule>>, n: Notification) -> Notification {
    let fallback = n.clone();
    let filled = db
        .run(move |c| {
            let mut n = n;
            charts::fill(c, &rules, &mut n, now_ns())?;
            Ok(n)
        })
        .await;
    match filled {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "reading the history for charts failed");
            fallback
        }
    }
}

/// Pending notifications per receiver.
pub fn pending(conn: &mut Connection) -> duckdb::Result<HashMap<String, u64>> {
    let mut stmt = conn.prepare(
        "SELECT receiver, count(*) FROM alert_outbox WHERE delivery = 'pending' GROUP BY receiver",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Deletes delivered notifications older than `keep_delivered` and failed ones older than
/// `keep_failed` (by their last update), with their attempts; pending ones stay whatever
/// their age. Returns how many notifications went.
pub fn prune(conn: &mut Connection, config: &DeliveryConfig, now: i64) -> duckdb::Result<usize> {
    let before = |keep: Duration| now.saturating_sub(keep.as_nanos().min(i64::MAX as u128) as i64);
    let old = "SELECT id FROM alert_outbox \
               WHERE (delivery = 'delivered' AND updated < make_timestamp_ns(?)) \
                  OR (delivery = 'failed' AND updated < make_timestamp_ns(?))";
    let params = duckdb::params![before(config.keep_delivered), before(config.keep_failed)];
    let tx = conn.transaction()?;
    tx.execute(
        &format!("DELETE FROM alert_delivery_attempts WHERE outbox_id IN ({old})"),
        params,
    )?;
    let n = tx.execute(
        &format!("DELETE FROM alert_outbox WHERE id IN ({old})"),
        params,
    )?;
    tx.commit()?;
    Ok(n)
}

/// The outbox and its attempts as JSON, newest first, for `GET /api/v1/notifications`.
pub fn list(conn: &Connection, limit: usize) -> duckdb::Result<serde_json::Value> {
    let mut stmt = conn.prepare(
        "SELECT id, epoch_ns(created), receiver, group_key, status, delivery, attempts, last_error, \
                epoch_ns(next_attempt), epoch_ns(delivered_at), payload \
         FROM alert_outbox ORDER BY id DESC LIMIT ?",
    )?;
    let rows = stmt.query_map(duckdb::params![limit as u64], |r| {
        Ok(json!({
            "id": r.get::<_, u64>(0)?,
            "created": super::api::rfc3339(r.get(1)?),
            "receiver": r.get::<_, String>(2)?,
            "group_key": r.get::<_, String>(3)?,
            "status": r.get::<_, String>(4)?,
            "delivery": r.get::<_, String>(5)?,
            "attempts": r.get::<_, u32>(6)?,
            "last_error": r.get::<_, Option<String>>(7)?,
            "next_attempt": super::api::rfc3339(r.get(8)?),
            "delivered_at": r.get::<_, Option<i64>>(9)?.map(super::api::rfc3339),
            "payload": serde_json::from_str::<serde_json::Value>(&r.get::<_, String>(10)?).unwrap_or_default(),
        }))
    })?;
    let mut out: Vec<serde_json::Value> = rows.collect::<duckdb::Result<_>>()?;
    let mut stmt = conn.prepare(
        "SELECT outbox_id, epoch_ns(time), receiver, outcome, reason FROM alert_delivery_attempts \
         WHERE outbox_id >= ? ORDER BY time",
    )?;
    let min_id = out.last().and_then(|v| v["id"].as_u64()).unwrap_or(0);
    let rows = stmt.query_map(duckdb::params![min_id], |r| {
        Ok((
            r.get::<_, u64>(0)?,
            json!({
                "time": super::api::rfc3339(r.get(1)?),
                "receiver": r.get::<_, String>(2)?,
                "outcome": r.get::<_, String>(3)?,
                "reason": r.get::<_, Option<String>>(4)?,
            }),
        ))
    })?;
    let mut by_id: HashMap<u64, Vec<serde_json::Value>> = HashMap::new();
    for row in rows {
        let (id, a) = row?;
        by_id.entry(id).or_default().push(a);
    }
    for n in &mut out {
        let id = n["id"].as_u64().unwrap_or(0);
        n["attempt_log"] = json!(by_id.remove(&id).unwrap_or_default());
    }
    Ok(json!(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use millwatch_exporters::notify::Labels;

    const DAY: i64 = 24 * 3600 * 1_000_000_000;

    #[test]
    fn prune_deletes_old_delivered_and_failed_notifications_with_their_attempts_only() {
        let mut c = Connection::open_in_memory().expect("duckdb");
        for m in crate::store::schema::MIGRATIONS {
            c.execute_batch(m.sql).expect("schema");
        }
        let now = 1_800_000_000 * 1_000_000_000;
        let n = Notification::new("mail", "k", Labels::new(), Vec::new(), "");
        // (age in days, delivery): what stays with the default 7 and 30 days.
        let rows = [
            (8, "delivered", false),
            (6, "delivered", true),
            (31, "failed", false),
            (29, "failed", true),
            (90, "pending", true),
        ];
        for (age, delivery, _) in rows {
            let t = now - age * DAY;
            enqueue(&c, &n, t).expect("enqueue");
            c.execute(
                "UPDATE alert_outbox SET delivery = ?, updated = make_timestamp_ns(?) WHERE id = currval('alert_outbox_id')",
                duckdb::params![delivery, t],
            )
            .expect("update");
            for _ in 0..2 {
                c.execute(
                    "INSERT INTO alert_delivery_attempts VALUES (currval('alert_outbox_id'), make_timestamp_ns(?), 'mail', 'retryable', NULL, NULL)",
                    [t],
                )
                .expect("attempt");
            }
        }
        let pruned = prune(&mut c, &DeliveryConfig::default(), now).expect("prune");
        assert_eq!(pruned, 2);
        let left: Vec<String> = c
            .prepare("SELECT delivery FROM alert_outbox ORDER BY id")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("rows");
        let want: Vec<&str> = rows.iter().filter(|r| r.2).map(|r| r.1).collect();
        assert_eq!(left, want);
        let attempts: u64 = c
            .query_row(
                "SELECT count(*) FROM alert_delivery_attempts WHERE outbox_id NOT IN (SELECT id FROM alert_outbox)",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(attempts, 0);
        let kept: u64 = c
            .query_row("SELECT count(*) FROM alert_delivery_attempts", [], |r| {
                r.get(0)
            })
            .expect("count");
        assert_eq!(kept, 6);
        assert_eq!(
            prune(&mut c, &DeliveryConfig::default(), now).expect("again"),
            0
        );
    }

    #[test]
    fn backoff_doubles_is_capped_and_honours_retry_after() {
        let c = DeliveryConfig {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            ..DeliveryConfig::default()
        };
        for (attempts, full) in [(1u32, 1u64), (2, 2), (3, 4), (4, 8), (5, 8), (40, 8)] {
            for _ in 0..20 {
                let d = backoff(&c, attempts, None);
                let full = Duration::from_secs(full);
                assert!(d >= full / 2 && d <= full, "attempt {attempts}: {d:?}");
            }
        }
        assert_eq!(
            backoff(&c, 1, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert!(backoff(&c, 4, Some(Duration::from_millis(1))) >= Duration::from_secs(4));
    }
}
