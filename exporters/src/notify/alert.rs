//! The notifiers' input: a notification of a group of alerts, shaped like Alertmanager's
//! webhook payload (version "4") so that its JSON form *is* that payload, field by field.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Label or annotation names to values, sorted by name as Alertmanager prints them.
pub type Labels = BTreeMap<String, String>;

/// Labels from `(name, value)` pairs: `labels(&[("severity", "page")])`.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Whether an alert (or a whole notification) is firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The condition holds.
    Firing,
    /// The condition held and no longer does.
    Resolved,
}

impl AlertStatus {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert of a notification, as Alertmanager's webhook payload carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Firing or resolved.
    pub status: AlertStatus,
    /// Identifying labels (`alertname`, `severity`, `model`, `feature`, `machine`, ...).
    pub labels: Labels,
    /// Descriptive annotations (`summary`, `description`, `value`, `threshold`, ...).
    pub annotations: Labels,
    /// When the alert started firing.
    #[serde(with = "rfc3339")]
    pub starts_at: SystemTime,
    /// When it was resolved; `None` while firing (written as Go's zero time,
    /// `0001-01-01T00:00:00Z`, as Alertmanager does).
    #[serde(with = "rfc3339_or_zero")]
    pub ends_at: Option<SystemTime>,
    /// A link to the alert's source (the rule or the series in the collector's UI).
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// The hash of the labels, 16 hex digits, as Alertmanager computes it
    /// ([`fingerprint`]).
    pub fingerprint: String,
    /// The statistic over time, for the email chart. Never part of the JSON payloads.
    #[serde(skip)]
    pub series: Option<Series>,
}

/// A short history of the statistic an alert is about.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// What the values are, e.g. `PSI of feature temperature`.
    pub name: String,
    /// Points in any order; they are drawn by time.
    pub points: Vec<Point>,
    /// The threshold the rule compares with, drawn as a line.
    pub threshold: Option<f64>,
}

/// One value of a [`Series`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// When the value was computed.
    pub time: SystemTime,
    /// The value; non-finite values are left out of the chart.
    pub value: f64,
}

impl Alert {
    /// A firing alert with its fingerprint computed from `labels`.
    pub fn firing(labels: Labels, annotations: Labels, starts_at: SystemTime) -> Self {
        Alert {
            status: AlertStatus::Firing,
            fingerprint: fingerprint(&labels),
            labels,
            annotations,
            starts_at,
            ends_at: None,
            generator_url: String::new(),
            series: None,
        }
    }

    /// The same alert, resolved at `ends_at`.
    pub fn resolved_at(mut self, ends_at: SystemTime) -> Self {
        self.status = AlertStatus::Resolved;
        self.ends_at = Some(ends_at);
        self
    }

    /// The value of label `name`, or `""`.
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }

    /// The value of annotation `name`, or `""`.
    pub fn annotation(&self, name: &str) -> &str {
        self.annotations.get(name).map_or("", String::as_str)
    }
}

/// A notification about one group of alerts, for one receiver: Alertmanager's webhook payload
/// version "4".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// The name of the receiver it is for.
    pub receiver: String,
    /// `firing` when at least one alert fires, else `resolved`.
    pub status: AlertStatus,
    /// The alerts of the group (possibly cut to a receiver's limit, see `truncated_alerts`).
    pub alerts: Vec<Alert>,
    /// The labels the group is formed by (`group_by`).
    pub group_labels: Labels,
    /// Labels every alert of the group has with the same value.
    pub common_labels: Labels,
    /// Annotations every alert of the group has with the same value.
    pub common_annotations: Labels,
    /// A link to the collector that sent it.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// Always `"4"`.
    pub version: String,
    /// Identifies the group (route and group labels); stable across notifications.
    pub group_key: String,
    /// How many alerts were left out of `alerts`.
    pub truncated_alerts: u64,
    /// Files sent with it: a scheduled report's files. An email attaches them; the JSON
    /// payload carries them base64-encoded. Empty (and absent from the JSON) for alerts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// A file sent with a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// The file name the recipient sees, e.g. `press-vision-2026-12-01.html`.
    pub filename: String,
    /// Its media type, e.g. `text/html; charset=utf-8`.
    pub content_type: String,
    /// The bytes (base64 in the JSON).
    #[serde(with = "base64_bytes")]
    pub content: Vec<u8>,
}

mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("attachment content: {e}")))
    }
}

/// The payload version Alertmanager sends and Millwatch mirrors.
pub const PAYLOAD_VERSION: &str = "4";

impl Notification {
    /// A notification of `alerts` with the derived fields (status, common labels and
    /// annotations, version) computed.
    pub fn new(
        receiver: impl Into<String>,
        group_key: impl Into<String>,
        group_labels: Labels,
        alerts: Vec<Alert>,
        external_url: impl Into<String>,
    ) -> Self {
        let status = if alerts.iter().any(|a| a.status == AlertStatus::Firing) {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        };
        Notification {
            receiver: receiver.into(),
            status,
            common_labels: common(alerts.iter().map(|a| &a.labels)),
            common_annotations: common(alerts.iter().map(|a| &a.annotations)),
            alerts,
            group_labels,
            external_url: external_url.into(),
            version: PAYLOAD_VERSION.to_string(),
            group_key: group_key.into(),
            truncated_alerts: 0,
            attachments: Vec::new(),
        }
    }

    /// Keeps at most `max` alerts (firing ones first, as Alertmanager's webhook `max_alerts`
    /// keeps the head of the list) and counts the rest in `truncated_alerts`.
    pub fn truncate(&mut self, max: usize) {
        if self.alerts.len() <= max {
            return;
        }
        self.alerts.sort_by_key(|a| a.status != AlertStatus::Firing);
        let cut = self.alerts.len() - max;
        self.alerts.truncate(max);
        self.truncated_alerts += cut as u64;
    }

    /// The alerts with the given status.
    pub fn alerts_with(&self, status: AlertStatus) -> impl Iterator<Item = &Alert> {
        self.alerts.iter().filter(move |a| a.status == status)
    }

    /// The group's alert name: the common `alertname` label, or a count when they differ.
    pub fn title(&self) -> String {
        match self.common_labels.get("alertname") {
            Some(name) => name.clone(),
            None => format!(
                "{} alerts",
                self.alerts.len() as u64 + self.truncated_alerts
            ),
        }
    }
}

fn common<'a>(mut sets: impl Iterator<Item = &'a Labels>) -> Labels {
    let Some(first) = sets.next() else {
        return Labels::new();
    };
    let mut out = first.clone();
    for s in sets {
        out.retain(|k, v| s.get(k) == Some(v));
    }
    out
}

/// Alertmanager's (Prometheus' `model.LabelSet.Fingerprint`) hash of a label set, as 16 hex
/// digits: 64-bit FNV-1a over the labels sorted by name, each name and value followed by the
/// byte 0xff.
pub fn fingerprint(labels: &Labels) -> String {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    if labels.is_empty() {
        // Prometheus returns the offset basis for an empty set without hashing.
        return format!("{OFFSET:016x}");
    }
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (k, v) in labels {
        add(k.as_bytes());
        add(&[0xff]);
        add(v.as_bytes());
        add(&[0xff]);
    }
    format!("{h:016x}")
}

/// Seconds from 0001-01-01T00:00:00Z (Go's zero time) to the Unix epoch.
const ZERO_TO_EPOCH: i64 = 62_135_596_800;

/// Go's zero time as Alertmanager writes it.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Formats a time as Go's `time.RFC3339Nano` in UTC, as Alertmanager's JSON has it:
/// `2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.25Z` (trailing zeros of the fraction cut).
pub fn format_rfc3339(t: SystemTime) -> String {
    let t = DateTime::<Utc>::from(t);
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Parses an RFC 3339 time (`Z` or a numeric offset, optional fraction of up to 9 digits).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    // chrono reads any number of fraction digits and drops those past the nanosecond; a time
    // finer than a nanosecond is refused instead.
    let fraction = s.get(19..).and_then(|rest| rest.strip_prefix('.'));
    if fraction.is_some_and(|f| f.bytes().take_while(u8::is_ascii_digit).count() > 9) {
        return None;
    }
    DateTime::parse_from_rfc3339(s).ok().map(SystemTime::from)
}

/// True when `t` is Go's zero time (or earlier).
fn is_zero_time(t: SystemTime) -> bool {
    match UNIX_EPOCH.duration_since(t) {
        Ok(before) => before.as_secs() as i64 >= ZERO_TO_EPOCH,
        Err(_) => false,
    }
}

mod rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_rfc3339(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an RFC 3339 time")))
    }
}

mod rfc3339_or_zero {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_rfc3339(*t)),
            None => s.serialize_str(ZERO_TIME),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        let t = rfc3339::deserialize(d)?;
        Ok((!is_zero_time(t)).then_some(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn times_are_written_as_go_rfc3339nano() {
        let table = [
            (at(0, 0), "1970-01-01T00:00:00Z"),
            (at(1_714_564_800, 0), "2024-05-01T12:00:00Z"),
            (at(1_714_564_800, 250_000_000), "2024-05-01T12:00:00.25Z"),
            (at(1_714_564_800, 1), "2024-05-01T12:00:00.000000001Z"),
            (at(951_782_400, 0), "2000-02-29T00:00:00Z"),
            (at(4_102_444_799, 0), "2099-12-31T23:59:59Z"),
        ];
        for (t, want) in table {
            assert_eq!(format_rfc3339(t), want);
            assert_eq!(parse_rfc3339(want), Some(t), "{want}");
        }
        let zero = UNIX_EPOCH - Duration::from_secs(ZERO_TO_EPOCH as u64);
        assert_eq!(format_rfc3339(zero), ZERO_TIME);
        assert_eq!(parse_rfc3339(ZERO_TIME), Some(zero));
        assert_eq!(
            format_rfc3339(UNIX_EPOCH - Duration::from_millis(500)),
            "1969-12-31T23:59:59.5Z"
        );
    }

    #[test]
    fn offsets_and_bad_times() {
        assert_eq!(
            parse_rfc3339("2024-05-01T14:00:00+02:00"),
            Some(at(1_714_564_800, 0))
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T07:30:00.5-04:30"),
            Some(at(1_714_564_800, 500_000_000))
        );
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01T12:00:00",
            "2024-13-01T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00.1234567891Z",
            "2024-05-01T12:00:00+0200",
            "2024-05-01T12:00:00Zjunk",
            "+024-05-01T12:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn fingerprint_matches_prometheus() {
        // From prometheus/common's model/signature_test.go (`LabelsToSignature`, which
        // `LabelSet.Fingerprint` uses). The Alertmanager test compares with a live server.
        assert_eq!(fingerprint(&Labels::new()), "cbf29ce484222325");
        assert_eq!(
            fingerprint(&labels(&[
                ("name", "garland, briggs"),
                ("fear", "love is not enough")
            ])),
            format!("{:016x}", 5_799_056_148_416_392_346u64)
        );
    }

    #[test]
    fn payload_json_is_alertmanager_v4_field_by_field() {
        let mut firing = Alert::firing(
            labels(&[
                ("alertname", "Drift"),
                ("model", "scrap"),
                ("feature", "temp"),
            ]),
            labels(&[("summary", "drift"), ("value", "0.31")]),
            at(1_714_564_800, 0),
        );
        firing.generator_url = "http://mw:9464/ui/alerts".into();
        firing.series = Some(Series {
            name: "psi".into(),
            points: vec![Point {
                time: at(1_714_564_800, 0),
                value: 0.3,
            }],
            threshold: Some(0.2),
        });
        let resolved = Alert::firing(
            labels(&[
                ("alertname", "Drift"),
                ("model", "scrap"),
                ("feature", "rpm"),
            ]),
            labels(&[("summary", "drift")]),
            at(1_714_564_000, 0),
        )
        .resolved_at(at(1_714_564_900, 500_000_000));
        let n = Notification::new(
            "ops",
            "{}:{alertname=\"Drift\"}",
            labels(&[("alertname", "Drift")]),
            vec![firing.clone(), resolved],
            "http://mw:9464",
        );
        let v = serde_json::to_value(&n).expect("serialises");
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = vec![
            "receiver",
            "status",
            "alerts",
            "groupLabels",
            "commonLabels",
            "commonAnnotations",
            "externalURL",
            "version",
            "groupKey",
            "truncatedAlerts",
        ];
        want.sort();
        assert_eq!(keys, want);
        assert_eq!(v["status"], "firing");
        assert_eq!(v["version"], "4");
        assert_eq!(v["truncatedAlerts"], 0);
        assert_eq!(
            v["commonLabels"],
            serde_json::json!({"alertname": "Drift", "model": "scrap"})
        );
        assert_eq!(
            v["commonAnnotations"],
            serde_json::json!({"summary": "drift"})
        );
        let a0 = &v["alerts"][0];
        let mut akeys: Vec<&str> = a0
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        akeys.sort();
        assert_eq!(
            akeys,
            [
                "annotations",
                "endsAt",
                "fingerprint",
                "generatorURL",
                "labels",
                "startsAt",
                "status"
            ]
        );
        assert_eq!(a0["startsAt"], "2024-05-01T12:00:00Z");
        assert_eq!(a0["endsAt"], ZERO_TIME);
        assert_eq!(a0["generatorURL"], "http://mw:9464/ui/alerts");
        assert_eq!(v["alerts"][1]["status"], "resolved");
        assert_eq!(v["alerts"][1]["endsAt"], "2024-05-01T12:01:40.5Z");

        let back: Notification = serde_json::from_value(v).expect("parses back");
        assert_eq!(back.alerts[0].ends_at, None);
        assert_eq!(back.alerts[0].series, None);
        let mut n_without_series = n.clone();
        n_without_series.alerts[0].series = None;
        assert_eq!(back, n_without_series);
    }

    #[test]
    fn resolved_when_no_alert_fires_and_truncation_keeps_firing_first() {
        let a =
            |name: &str| Alert::firing(labels(&[("alertname", name)]), Labels::new(), at(100, 0));
        let n = Notification::new(
            "r",
            "k",
            Labels::new(),
            vec![a("x").resolved_at(at(200, 0))],
            "",
        );
        assert_eq!(n.status, AlertStatus::Resolved);
        assert_eq!(n.title(), "x");
        let mut n = Notification::new(
            "r",
            "k",
            Labels::new(),
            vec![a("a").resolved_at(at(200, 0)), a("b"), a("c")],
            "",
        );
        assert!(n.common_labels.is_empty());
        n.truncate(2);
        assert_eq!(n.truncated_alerts, 1);
        assert!(n.alerts.iter().all(|x| x.status == AlertStatus::Firing));
        assert_eq!(n.title(), "3 alerts");
    }
}
