//! Notification groups: alerts of one route with the same `group_by` labels, notified together
//! after `group_wait`, about changes every `group_interval`, and again after `repeat_interval`.
//! A group remembers which alerts its last notification reported firing, so that the same
//! state is never notified twice and a restart does not repeat what was already sent.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};

use millwatch_exporters::notify::{Alert, Labels, Notification};

use super::config::{GROUP_INTERVAL, GROUP_WAIT, REPEAT_INTERVAL};
use super::lifecycle::{AlertEntry, Book, State};
use super::routing::Route;

/// One notification group of one route (and so one receiver).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub key: String,
    pub receiver: String,
    pub labels: Labels,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    /// How often the receiver wants firing alerts sent again even when nothing changed
    /// (Alertmanager's `resend_interval`; acknowledgements do not stop it).
    pub resend_interval: Option<Duration>,
    /// When the group is next looked at (ns since the epoch).
    pub next_flush: i64,
    /// The alerts the last notification reported firing.
    pub notified: BTreeSet<String>,
    pub last_notified: Option<i64>,
    /// When the group was last looked at: an alert that fired after it and resolved before the
    /// next look was never told, and is owed its firing notification.
    pub looked_at: Option<i64>,
    /// The alerts in the group now (firing or resolved).
    pub members: BTreeSet<String>,
}

impl Group {
    /// A group restored from the store: it is looked at soon, and keeps what it notified.
    pub fn restored(
        key: String,
        receiver: String,
        labels: Labels,
        notified: BTreeSet<String>,
        last_notified: Option<i64>,
        now: i64,
    ) -> Group {
        Group {
            key,
            receiver,
            labels,
            group_wait: GROUP_WAIT,
            group_interval: GROUP_INTERVAL,
            repeat_interval: REPEAT_INTERVAL,
            resend_interval: None,
            next_flush: now,
            notified,
            looked_at: last_notified,
            last_notified,
            members: BTreeSet::new(),
        }
    }
}

fn ns(d: Duration) -> i64 {
    d.as_nanos().min(i64::MAX as u128) as i64
}

/// What to tell one receiver about one group.
#[derive(Debug, Clone, PartialEq)]
pub struct Flush {
    pub notification: Notification,
}

#[derive(Debug, Default)]
pub struct Groups {
    pub map: BTreeMap<String, Group>,
    /// The resend interval of each receiver that has one.
    pub resend: BTreeMap<String, Duration>,
}

impl Groups {
    /// Sorts every firing or resolved alert into the groups of the routes it takes; a firing
    /// alert with no group yet opens one, which waits `group_wait` — and so does one that
    /// fired in this evaluation (`fired`) and resolved in it too.
    pub fn assign(&mut self, root: &Route, book: &Book, fired: &BTreeSet<String>, now: i64) {
        for g in self.map.values_mut() {
            g.members.clear();
        }
        for e in book.alerts.values() {
            if e.state == State::Pending {
                continue;
            }
            for route in root.matching(&e.labels) {
                let labels = route.group_labels(&e.labels);
                let key = route.group_key(&labels);
                let group = match self.map.get_mut(&key) {
                    Some(g) => g,
                    None if e.state == State::Firing || fired.contains(&e.fingerprint) => {
                        self.map.entry(key.clone()).or_insert_with(|| Group {
                            key: key.clone(),
                            receiver: route.receiver.clone(),
                            labels,
                            group_wait: route.group_wait,
                            group_interval: route.group_interval,
                            repeat_interval: route.repeat_interval,
                            resend_interval: None,
                            next_flush: now.saturating_add(ns(route.group_wait)),
                            notified: BTreeSet::new(),
                            last_notified: None,
                            looked_at: None,
                            members: BTreeSet::new(),
                        })
                    }
                    None => continue,
                };
                group.receiver = route.receiver.clone();
                group.group_wait = route.group_wait;
                group.group_interval = route.group_interval;
                group.repeat_interval = route.repeat_interval;
                group.resend_interval = self.resend.get(&route.receiver).copied();
                group.members.insert(e.fingerprint.clone());
            }
        }
    }

    /// Groups whose time has come.
    pub fn due(&self, now: i64) -> Vec<String> {
        self.map
            .values()
            .filter(|g| g.next_flush <= now)
            .map(|g| g.key.clone())
            .collect()
    }

    /// Looks at one group: a notification when its firing alerts changed since the last one (or
    /// some of those resolved), when `repeat_interval` passed with alerts still firing and
    /// not all acknowledged, or when the receiver's resend interval passed with alerts still
    /// firing. Muted (silenced or inhibited) alerts are left out. An alert that fired since
    /// the last look and resolved before this one is reported firing (as it was), and
    /// resolved by the next notification: every alert that fires is told, both ways.
    pub fn flush(
        &mut self,
        key: &str,
        book: &Book,
        muted: &dyn Fn(&AlertEntry) -> bool,
        now: i64,
        external_url: &str,
    ) -> Option<Flush> {
        let g = self.map.get_mut(key)?;
        let look_again = g
            .resend_interval
            .map_or(g.group_interval, |r| r.min(g.group_interval));
        g.next_flush = now.saturating_add(ns(look_again));
        let looked_at = g.looked_at.replace(now);
        let owed = |e: &AlertEntry| {
            e.state == State::Resolved
                && !g.notified.contains(&e.fingerprint)
                && e.fired_at.is_some_and(|f| looked_at.is_none_or(|t| f > t))
        };
        let firing: BTreeSet<String> = g
            .members
            .iter()
            .filter(|fp| {
                book.alerts
                    .get(*fp)
                    .is_some_and(|e| (e.state == State::Firing || owed(e)) && !muted(e))
            })
            .cloned()
            .collect();
        let resolved: Vec<&AlertEntry> = g
            .notified
            .iter()
            .filter(|fp| !firing.contains(*fp))
            .filter_map(|fp| book.alerts.get(fp))
            .filter(|e| e.state == State::Resolved)
            .collect();
        let changed = firing != g.notified;
        let repeat = !changed
            && !firing.is_empty()
            && g.last_notified
                .is_some_and(|t| now.saturating_sub(t) >= ns(g.repeat_interval))
            && firing
                .iter()
                .any(|fp| book.alerts.get(fp).is_some_and(|e| e.ack.is_none()));
        let resend = !changed
            && !firing.is_empty()
            && g.resend_interval.is_some_and(|r| {
                g.last_notified
                    .is_some_and(|t| now.saturating_sub(t) >= ns(r))
            });
        if !changed && !repeat && !resend {
            return None;
        }
        let generator = format!("{}/api/v1/alerts", external_url.trim_end_matches('/'));
        let mut alerts: Vec<Alert> = firing
            .iter()
            .filter_map(|fp| book.alerts.get(fp))
            .map(|e| to_alert(e, &generator, State::Firing))
            .collect();
        alerts.extend(
            resolved
                .into_iter()
                .map(|e| to_alert(e, &generator, State::Resolved)),
        );
        g.notified = firing;
        if alerts.is_empty() {
            return None;
        }
        g.last_notified = Some(now);
        Some(Flush {
            notification: Notification::new(
                g.receiver.clone(),
                g.key.clone(),
                g.labels.clone(),
                alerts,
                external_url,
            ),
        })
    }

    /// Whether some group still has to report `fingerprint` resolved.
    pub fn owed(&self, fingerprint: &str) -> bool {
        self.map.values().any(|g| g.notified.contains(fingerprint))
    }

    /// Drops groups with nothing in them and nothing owed; returns their keys.
    pub fn prune(&mut self) -> Vec<String> {
        let empty: Vec<String> = self
            .map
            .values()
            .filter(|g| g.members.is_empty() && g.notified.is_empty())
            .map(|g| g.key.clone())
            .collect();
        for k in &empty {
            self.map.remove(k);
        }
        empty
    }
}

fn at(ns: i64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64)
}

/// `e` as a notification reports it: firing (even when it has resolved since, and that is
/// told next), or resolved.
fn to_alert(e: &AlertEntry, generator: &str, reported: State) -> Alert {
    let mut a = Alert::firing(
        e.labels.clone(),
        e.annotations.clone(),
        at(e.fired_at.unwrap_or(e.active_at)),
    );
    a.generator_url = generator.to_string();
    if reported == State::Resolved {
        a = a.resolved_at(at(e.resolved_at.unwrap_or(e.active_at)));
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::config::RouteConfig;
    use crate::alerting::hold::For;
    use crate::alerting::lifecycle::Step;
    use crate::alerting::rules::Active;
    use millwatch_exporters::notify::AlertStatus;

    const S: i64 = 1_000_000_000;

    fn drift(model: &str, feature: &str) -> Active {
        let mut labels = Labels::new();
        labels.insert("alertname".into(), "MillwatchDrift".into());
        labels.insert("model".into(), model.into());
        labels.insert("feature".into(), feature.into());
        Active {
            labels,
            annotations: Labels::new(),
            value: 0.3,
        }
    }

    fn root() -> Route {
        Route::tree(
            &serde_saphyr::from_str::<RouteConfig>(
                "{ receiver: mail, group_by: [alertname, model], group_wait: 2s, group_interval: 10s, repeat_interval: 1h }",
            )
            .expect("route"),
        )
    }

    #[test]
    fn fifty_features_make_one_notification_then_one_resolved() {
        let route = root();
        let mut book = Book::default();
        let mut groups = Groups::default();
        let all: Vec<Active> = (0..50).map(|i| drift("churn", &format!("f{i}"))).collect();
        book.apply("drift", Duration::ZERO, all.clone(), 0);
        groups.assign(&route, &book, &BTreeSet::new(), 0);
        assert_eq!(groups.map.len(), 1);
        assert!(
            groups.due(S).is_empty(),
            "group_wait holds the first notification"
        );
        let key = groups.due(2 * S).pop().expect("due after group_wait");
        let never = |_: &AlertEntry| false;
        let f = groups
            .flush(&key, &book, &never, 2 * S, "http://mw")
            .expect("notifies");
        assert_eq!(f.notification.alerts.len(), 50);
        assert_eq!(f.notification.status, AlertStatus::Firing);
        assert_eq!(f.notification.receiver, "mail");
        assert_eq!(
            f.notification.group_labels.get("model").map(String::as_str),
            Some("churn")
        );
        // Unchanged: nothing new at the next interval.
        book.apply("drift", Duration::ZERO, all, 5 * S);
        groups.assign(&route, &book, &BTreeSet::new(), 5 * S);
        assert!(
            groups
                .flush(&key, &book, &never, 12 * S, "http://mw")
                .is_none()
        );
        // Drift ends: one resolved notification with all fifty.
        book.apply("drift", Duration::ZERO, vec![], 20 * S);
        groups.assign(&route, &book, &BTreeSet::new(), 20 * S);
        let f = groups
            .flush(&key, &book, &never, 22 * S, "http://mw")
            .expect("resolved");
        assert_eq!(f.notification.status, AlertStatus::Resolved);
        assert_eq!(f.notification.alerts.len(), 50);
        assert!(f.notification.alerts.iter().all(|a| a.ends_at.is_some()));
        assert!(!groups.owed(&book.alerts.keys().next().cloned().unwrap_or_default()));
        assert!(
            groups
                .flush(&key, &book, &never, 40 * S, "http://mw")
                .is_none()
        );
        book.expire(Duration::ZERO, 41 * S, &|fp| groups.owed(fp));
        groups.assign(&route, &book, &BTreeSet::new(), 41 * S);
        assert_eq!(groups.prune(), vec![key]);
    }

    #[test]
    fn repeats_after_repeat_interval_unless_acknowledged_and_skips_muted() {
        let route = root();
        let mut book = Book::default();
        let mut groups = Groups::default();
        book.apply(
            "drift",
            Duration::ZERO,
            vec![drift("churn", "a"), drift("churn", "b")],
            0,
        );
        groups.assign(&route, &book, &BTreeSet::new(), 0);
        let key = groups.due(2 * S).pop().expect("due");
        let fp_b = book
            .alerts
            .values()
            .find(|e| e.labels["feature"] == "b")
            .map(|e| e.fingerprint.clone())
            .expect("b");
        let mute_b = |e: &AlertEntry| e.fingerprint == fp_b;
        let f = groups
            .flush(&key, &book, &mute_b, 2 * S, "http://mw")
            .expect("notifies");
        assert_eq!(f.notification.alerts.len(), 1);
        assert!(
            groups
                .flush(&key, &book, &mute_b, 1000 * S, "http://mw")
                .is_none()
        );
        let f = groups
            .flush(&key, &book, &mute_b, 3700 * S, "http://mw")
            .expect("repeats");
        assert_eq!(f.notification.alerts.len(), 1);
        for e in book.alerts.values_mut() {
            e.ack = Some(super::super::lifecycle::Ack {
                by: "ana".into(),
                comment: String::new(),
                at: 0,
            });
        }
        assert!(
            groups
                .flush(&key, &book, &mute_b, 8000 * S, "http://mw")
                .is_none()
        );
    }

    #[test]
    fn an_alertmanager_group_is_resent_every_resend_interval_acknowledged_or_not() {
        let route = root();
        let mut book = Book::default();
        let mut groups = Groups::default();
        groups.resend.insert("mail".into(), Duration::from_secs(3));
        book.apply("drift", Duration::ZERO, vec![drift("churn", "a")], 0);
        for e in book.alerts.values_mut() {
            e.ack = Some(super::super::lifecycle::Ack {
                by: "ana".into(),
                comment: String::new(),
                at: 0,
            });
        }
        groups.assign(&route, &book, &BTreeSet::new(), 0);
        let key = groups.due(2 * S).pop().expect("due");
        let never = |_: &AlertEntry| false;
        assert!(
            groups
                .flush(&key, &book, &never, 2 * S, "http://mw")
                .is_some()
        );
        // Looked at again after the resend interval, not the 10s group_interval.
        assert_eq!(groups.map[&key].next_flush, 5 * S);
        assert!(
            groups
                .flush(&key, &book, &never, 4 * S, "http://mw")
                .is_none()
        );
        let again = groups
            .flush(&key, &book, &never, 5 * S, "http://mw")
            .expect("resent");
        assert_eq!(again.notification.alerts.len(), 1);
        assert_eq!(again.notification.status, AlertStatus::Firing);
        // Resolved: one last notification, then nothing more to resend.
        book.apply("drift", Duration::ZERO, vec![], 6 * S);
        groups.assign(&route, &book, &BTreeSet::new(), 6 * S);
        let last = groups
            .flush(&key, &book, &never, 8 * S, "http://mw")
            .expect("resolved");
        assert_eq!(last.notification.status, AlertStatus::Resolved);
        assert!(
            groups
                .flush(&key, &book, &never, 20 * S, "http://mw")
                .is_none()
        );
    }

    #[test]
    fn a_restored_group_does_not_resend_what_it_notified() {
        let route = root();
        let mut book = Book::default();
        book.apply("drift", Duration::ZERO, vec![drift("churn", "a")], 0);
        let fp = book.alerts.keys().next().cloned().expect("one");
        let key = route.group_key(&route.group_labels(&book.alerts[&fp].labels));
        let mut groups = Groups::default();
        groups.map.insert(
            key.clone(),
            Group::restored(
                key.clone(),
                "mail".into(),
                Labels::new(),
                [fp].into(),
                Some(0),
                5 * S,
            ),
        );
        groups.assign(&route, &book, &BTreeSet::new(), 5 * S);
        assert_eq!(groups.due(5 * S), vec![key.clone()]);
        assert!(
            groups
                .flush(&key, &book, &|_| false, 5 * S, "http://mw")
                .is_none()
        );
    }

    #[test]
    fn an_alert_that_fired_and_resolved_between_two_looks_is_notified_firing_then_resolved() {
        let route = root();
        let mut book = Book::default();
        let mut groups = Groups::default();
        let never = |_: &AlertEntry| false;
        // A drifted window then a clean one, read in one evaluation: fired and resolved at once.
        let steps = vec![
            Step {
                alert: drift("churn", "a"),
                holds: true,
            },
            Step {
                alert: drift("churn", "a"),
                holds: false,
            },
        ];
        let c = book.apply_verdicts("drift", For::default(), steps, false, 0);
        let fired: BTreeSet<String> = c.fired.into_iter().collect();
        assert_eq!(fired.len(), 1);
        groups.assign(&route, &book, &fired, 0);
        let key = groups.due(2 * S).pop().expect("a group opened for it");
        groups.assign(&route, &book, &BTreeSet::new(), 2 * S);
        let f = groups
            .flush(&key, &book, &never, 2 * S, "http://mw")
            .expect("the firing notification");
        assert_eq!(f.notification.status, AlertStatus::Firing);
        assert_eq!(f.notification.alerts.len(), 1);
        assert!(f.notification.alerts[0].ends_at.is_none());
        let f = groups
            .flush(&key, &book, &never, 12 * S, "http://mw")
            .expect("the resolved notification");
        assert_eq!(f.notification.status, AlertStatus::Resolved);
        assert!(f.notification.alerts[0].ends_at.is_some());
        assert!(
            groups
                .flush(&key, &book, &never, 22 * S, "http://mw")
                .is_none()
        );
        // Once more in a group that exists: `b` fires at 30s and resolves at 31s, before the
        // group's next look at 32s; `a` keeps firing throughout.
        book.apply("drift", Duration::ZERO, vec![drift("churn", "a")], 25 * S);
        groups.assign(&route, &book, &BTreeSet::new(), 25 * S);
        groups.flush(&key, &book, &never, 25 * S, "http://mw");
        book.apply(
            "drift",
            Duration::ZERO,
            vec![drift("churn", "a"), drift("churn", "b")],
            30 * S,
        );
        groups.assign(&route, &book, &BTreeSet::new(), 30 * S);
        book.apply("drift", Duration::ZERO, vec![drift("churn", "a")], 31 * S);
        groups.assign(&route, &book, &BTreeSet::new(), 31 * S);
        let f = groups
            .flush(&key, &book, &never, 35 * S, "http://mw")
            .expect("b firing");
        let b: Vec<_> = f
            .notification
            .alerts
            .iter()
            .filter(|a| a.labels["feature"] == "b")
            .collect();
        assert_eq!(b.len(), 1);
        assert!(b[0].ends_at.is_none());
        let f = groups
            .flush(&key, &book, &never, 45 * S, "http://mw")
            .expect("b resolved");
        let ends: Vec<(&str, bool)> = f
            .notification
            .alerts
            .iter()
            .map(|a| (a.labels["feature"].as_str(), a.ends_at.is_some()))
            .collect();
        assert_eq!(ends, [("a", false), ("b", true)]);
    }
}
