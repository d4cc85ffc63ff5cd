//! The alert manager on `/metrics`: active alerts by state, severity and name; delivery
//! attempts by receiver and outcome; notifications waiting in the outbox; and the time from a
//! notification being queued to its delivery.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use millwatch_exporters::prometheus::{ExpositionError, MetricsExposition, OwnFamily, OwnType};

use super::lifecycle::State;

/// Upper bounds (seconds) of `millwatch_notification_latency_seconds`: from a prompt delivery
/// to one that waited out an outage.
const LATENCY_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];

/// (state, severity, alertname) of a gauge series.
type AlertKey = (String, String, String);

/// The outcomes of a delivery attempt, as `millwatch_notifications_total` labels them.
pub const OUTCOMES: [&str; 3] = ["delivered", "retryable", "permanent"];

/// The states `millwatch_alerts` counts.
const ACTIVE_STATES: [State; 2] = [State::Pending, State::Firing];

pub struct AlertMetrics {
    alerts: OwnFamily,
    notifications: OwnFamily,
    queue: OwnFamily,
    latency: OwnFamily,
    published: Mutex<BTreeSet<AlertKey>>,
    /// Each rule's series, kept at 0 while none of its alerts is in that state.
    zeros: Mutex<BTreeSet<AlertKey>>,
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
            zeros: Mutex::new(BTreeSet::new()),
            latencies: Mutex::new(HashMap::new()),
        })
    }

    /// Puts every rule's and receiver's series on `/metrics` at 0 before anything happens, so
    /// that dashboards and alert rules read 0 rather than no data: each rule's pending and
    /// firing alerts (`rules` as (alertname, severity)), and each receiver's attempts per
    /// outcome, outbox queue and latency histogram.
    pub fn start_at_zero<'a>(
        &self,
        rules: impl IntoIterator<Item = (&'a str, &'a str)>,
        receivers: impl IntoIterator<Item = &'a str>,
    ) {
        if let Ok(mut zeros) = self.zeros.lock() {
            for (alertname, severity) in rules {
                for state in ACTIVE_STATES {
                    let key = (
                        state.as_str().to_owned(),
                        severity.to_owned(),
                        alertname.to_owned(),
                    );
                    self.alerts.add(&labels(&key), 0.0);
                    zeros.insert(key);
                }
            }
        }
        let Ok(mut latencies) = self.latencies.lock() else {
            return;
        };
        for receiver in receivers {
            for outcome in OUTCOMES {
                self.notifications
                    .add(&[("receiver", receiver), ("outcome", outcome)], 0.0);
            }
            self.queue.add(&[("receiver", receiver)], 0.0);
            let (counts, sum) = latencies
                .entry(receiver.to_owned())
                .or_insert_with(|| (vec![0; LATENCY_BUCKETS.len() + 1], 0.0));
            self.latency
                .set_histogram(&[("receiver", receiver)], &LATENCY_BUCKETS, counts, *sum);
        }
    }

    /// Publishes the alerts now active as (state, severity, alertname) counts; combinations no
    /// longer seen leave the family, except a rule's own (see [`Self::start_at_zero`]), which
    /// return to 0.
    pub fn set_alerts(&self, counts: &HashMap<AlertKey, usize>) {
        let Ok(mut published) = self.published.lock() else {
            return;
        };
        let zeros = self.zeros.lock();
        for key in published.iter() {
            if counts.contains_key(key) {
                continue;
            }
            if zeros.as_ref().is_ok_and(|z| z.contains(key)) {
                self.alerts.set(&labels(key), 0.0);
            } else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use millwatch_exporters::prometheus::Format;
    use std::time::Instant;

    fn render(e: &MetricsExposition) -> String {
        e.render(Format::Text, Instant::now())
    }

    #[test]
    fn rules_and_receivers_start_at_zero_and_return_to_it() {
        let e = MetricsExposition::default();
        let m = AlertMetrics::register(&e).expect("register");
        assert!(!render(&e).contains("millwatch_alerts{"), "nothing before");
        m.start_at_zero([("SpindleHot", "critical")], ["ops-mail"]);
        let text = render(&e);
        for line in [
            r#"millwatch_alerts{alertname="SpindleHot",severity="critical",state="firing"} 0"#,
            r#"millwatch_alerts{alertname="SpindleHot",severity="critical",state="pending"} 0"#,
            r#"millwatch_notifications_total{outcome="delivered",receiver="ops-mail"} 0"#,
            r#"millwatch_notifications_total{outcome="retryable",receiver="ops-mail"} 0"#,
            r#"millwatch_notifications_total{outcome="permanent",receiver="ops-mail"} 0"#,
            r#"millwatch_notification_queue{receiver="ops-mail"} 0"#,
            r#"millwatch_notification_latency_seconds_count{receiver="ops-mail"} 0"#,
        ] {
            assert!(text.contains(&format!("{line}\n")), "{line} in\n{text}");
        }

        let firing = |name: &str| ("firing".to_owned(), "critical".to_owned(), name.to_owned());
        let counts = HashMap::from([(firing("SpindleHot"), 2), (firing("Other"), 1)]);
        m.set_alerts(&counts);
        let text = render(&e);
        assert!(text.contains(
            r#"millwatch_alerts{alertname="SpindleHot",severity="critical",state="firing"} 2"#
        ));
        assert!(text.contains(
            r#"millwatch_alerts{alertname="Other",severity="critical",state="firing"} 1"#
        ));
        m.set_alerts(&HashMap::new());
        let text = render(&e);
        assert!(
            text.contains(
                r#"millwatch_alerts{alertname="SpindleHot",severity="critical",state="firing"} 0"#
            ),
            "a rule's series returns to 0\n{text}"
        );
        assert!(
            !text.contains(r#"alertname="Other""#),
            "a combination that is no rule's leaves\n{text}"
        );

        m.attempt("ops-mail", "delivered", Some(0.2));
        let text = render(&e);
        assert!(text.contains(
            r#"millwatch_notifications_total{outcome="delivered",receiver="ops-mail"} 1"#
        ));
        assert!(
            text.contains(r#"millwatch_notification_latency_seconds_count{receiver="ops-mail"} 1"#)
        );
    }
}
