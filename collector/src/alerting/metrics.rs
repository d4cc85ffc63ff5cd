//! The alert manager on `/metrics`: active alerts by state, severity and name; delivery
//! attempts by receiver and outcome; notifications waiting in the outbox; and the time from a
//! notification being queued to its delivery.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use millwatch_exporters::prometheus::{ExpositionError, MetricsExposition, OwnFamily, OwnType};

/// Upper bounds (seconds) of `millwatch_notification_latency_seconds`: from a prompt delivery
/// to one that waited out an outage.
const LATENCY_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];

/// (state, severity, alertname) of a gauge series.
type AlertKey = (String, String, String);

pub struct AlertMetrics {
    alerts: OwnFamily,
    notifications: OwnFamily,
    queue: OwnFamily,
    latency: OwnFamily,
    published: Mutex<BTreeSet<AlertKey>>,
    /// Per receiver: counts per bucket (the last for +Inf) and the sum.
    latencies: Mutex<HashMap<String, (Vec<u64>, f64)>>,
}

impl AlertMetrics {
    pub fn register(exposition: &MetricsExposition) -> Result<AlertMetrics, ExpositionError> {
        Ok(AlertMetrics {
            alerts: exposition.register(
                "millwatch_alerts",
                "Alerts pending or firing now, by state, severity and alert name.",
                OwnType::Gauge,
            )?,
            notifications: exposition.register(
                "millwatch_notifications_total",
                "Delivery attempts of notifications by receiver and outcome (delivered, retryable, permanent).",
                OwnType::Counter,
            )?,
            queue: exposition.register(
                "millwatch_notification_queue",
                "Notifications in the outbox not delivered yet (pending, including those waiting to be retried), by receiver.",
                OwnType::Gauge,
            )?,
            latency: exposition.register(
                "millwatch_notification_latency_seconds",
                "Time from a notification being queued to its delivery, by receiver.",
                OwnType::Histogram,
            )?,
            published: Mutex::new(BTreeSet::new()),
            latencies: Mutex::new(HashMap::new()),
        })
    }

    /// Publishes the alerts now active as (state, severity, alertname) counts; combinations no
    /// longer seen leave the family.
    pub fn set_alerts(&self, counts: &HashMap<AlertKey, usize>) {
        let Ok(mut published) = self.published.lock() else {
            return;
        };
        for key in published.iter() {
            if !counts.contains_key(key) {
                self.alerts.remove(&labels(key));
            }
        }
        for (key, n) in counts {
            self.alerts.set(&labels(key), *n as f64);
        }
        *published = counts.keys().cloned().collect();
    }

    /// Counts one delivery attempt; a delivered one also records how long it took since the
    /// notification was queued.
    pub fn attempt(&self, receiver: &str, outcome: &str, queued_for_seconds: Option<f64>) {
        self.notifications
            .add(&[("receiver", receiver), ("outcome", outcome)], 1.0);
        let Some(seconds) = queued_for_seconds else {
            return;
        };
        let Ok(mut all) = self.latencies.lock() else {
            return;
        };
        let (counts, sum) = all
            .entry(receiver.to_string())
            .or_insert_with(|| (vec![0; LATENCY_BUCKETS.len() + 1], 0.0));
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        counts[bucket] += 1;
        *sum += seconds;
        self.latency
            .set_histogram(&[("receiver", receiver)], &LATENCY_BUCKETS, counts, *sum);
    }

    /// Sets the outbox's pending count of every receiver (0 for those not in `pending`).
    pub fn set_queue<'a>(
        &self,
        receivers: impl Iterator<Item = &'a String>,
        pending: &HashMap<String, u64>,
    ) {
        for r in receivers {
            let n = pending.get(r).copied().unwrap_or(0);
            self.queue.set(&[("receiver", r)], n as f64);
        }
    }
}

fn labels(key: &AlertKey) -> [(&str, &str); 3] {
    [
        ("state", key.0.as_str()),
        ("severity", key.1.as_str()),
        ("alertname", key.2.as_str()),
    ]
}
