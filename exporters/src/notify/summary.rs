//! What a person reads about an alert, taken from its labels and annotations the same way for
//! every human-facing body (email, Slack, Teams, generic JSON): name, severity, the subject
//! (model, feature, machine, ...), value, threshold and since when.

use std::time::SystemTime;

use super::alert::{Alert, AlertStatus, Notification};

/// Labels that say what an alert is about, in the order they are shown.
pub const SUBJECT_LABELS: [&str; 7] = [
    "model", "version", "feature", "machine", "line", "site", "detector",
];

/// Annotation carrying the current value of the statistic (else the last chart point).
pub const VALUE_ANNOTATION: &str = "value";
/// Annotation carrying the threshold (else the chart's threshold).
pub const THRESHOLD_ANNOTATION: &str = "threshold";

/// The facts of one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertFacts<'a> {
    /// Firing or resolved.
    pub status: AlertStatus,
    /// `alertname`, or `alert` when the label is missing.
    pub name: &'a str,
    /// `severity`, or `""`.
    pub severity: &'a str,
    /// The subject labels the alert has, in [`SUBJECT_LABELS`] order.
    pub subject: Vec<(&'a str, &'a str)>,
    /// The statistic's value as text.
    pub value: Option<String>,
    /// The threshold as text.
    pub threshold: Option<String>,
    /// `summary` annotation.
    pub summary: &'a str,
    /// `description` annotation.
    pub description: &'a str,
    /// When it started.
    pub since: SystemTime,
    /// When it ended, if resolved.
    pub until: Option<SystemTime>,
    /// The link to its source, if any.
    pub url: &'a str,
}

impl<'a> AlertFacts<'a> {
    /// Reads the facts of `alert`.
    pub fn of(alert: &'a Alert) -> Self {
        let name = match alert.label("alertname") {
            "" => "alert",
            n => n,
        };
        let subject = SUBJECT_LABELS
            .iter()
            .filter_map(|k| {
                alert
                    .labels
                    .get_key_value(*k)
                    .map(|(k, v)| (k.as_str(), v.as_str()))
            })
            .collect();
        let value = match alert.annotation(VALUE_ANNOTATION) {
            "" => alert
                .series
                .as_ref()
                .and_then(|s| s.points.iter().max_by_key(|p| p.time))
                .map(|p| format_number(p.value)),
            v => Some(v.to_string()),
        };
        let threshold = match alert.annotation(THRESHOLD_ANNOTATION) {
            "" => alert
                .series
                .as_ref()
                .and_then(|s| s.threshold)
                .map(format_number),
            v => Some(v.to_string()),
        };
        AlertFacts {
            status: alert.status,
            name,
            severity: alert.label("severity"),
            subject,
            value,
            threshold,
            summary: alert.annotation("summary"),
            description: alert.annotation("description"),
            since: alert.starts_at,
            until: alert.ends_at,
            url: &alert.generator_url,
        }
    }

    /// `model=scrap, feature=temp`.
    pub fn subject_text(&self) -> String {
        self.subject
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One line: `Drift [critical] model=scrap, feature=temp: value 0.31 (threshold 0.2)`.
    pub fn one_line(&self) -> String {
        let mut s = self.name.to_string();
        if !self.severity.is_empty() {
            s.push_str(&format!(" [{}]", self.severity));
        }
        let subject = self.subject_text();
        if !subject.is_empty() {
            s.push(' ');
            s.push_str(&subject);
        }
        match (&self.value, &self.threshold) {
            (Some(v), Some(t)) => s.push_str(&format!(": value {v} (threshold {t})")),
            (Some(v), None) => s.push_str(&format!(": value {v}")),
            (None, Some(t)) => s.push_str(&format!(": threshold {t}")),
            (None, None) => {}
        }
        s
    }
}

/// `[FIRING:2] Drift (model=scrap)`, Alertmanager's customary headline: the status, the
/// number of alerts in it, the group's name and its group labels other than `alertname`.
pub fn headline(n: &Notification) -> String {
    let count = n.alerts_with(n.status).count();
    let mut s = format!(
        "[{}:{count}] {}",
        n.status.as_str().to_uppercase(),
        n.title()
    );
    let group = group_text(n);
    if !group.is_empty() {
        s.push_str(&format!(" ({group})"));
    }
    s
}

/// The group labels other than `alertname`, `k=v` joined by `, `.
pub fn group_text(n: &Notification) -> String {
    n.group_labels
        .iter()
        .filter(|(k, _)| k.as_str() != "alertname")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A number for people: four decimals at most, exponent form for very large or small values.
pub fn format_number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v == 0.0 {
        return "0".into();
    }
    if (1e-3..1e6).contains(&v.abs()) {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        return s.to_string();
    }
    format!("{v:.3e}")
}

/// `2024-05-01 12:00:00 UTC`.
pub fn human_time(t: SystemTime) -> String {
    let s = super::alert::format_rfc3339(t);
    let whole = s.split('.').next().unwrap_or(&s).trim_end_matches('Z');
    format!("{} UTC", whole.replacen('T', " ", 1))
}

#[cfg(test)]
mod tests {
    use super::super::alert::{Point, Series, labels};
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn numbers_for_people() {
        for (v, want) in [
            (0.0, "0"),
            (0.31, "0.31"),
            (2.0, "2"),
            (-12.5, "-12.5"),
            (0.123456, "0.1235"),
            (1e-5, "1.000e-5"),
            (2.5e7, "2.500e7"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(format_number(v), want, "{v}");
        }
        assert_eq!(
            human_time(UNIX_EPOCH + Duration::new(1_714_564_800, 5)),
            "2024-05-01 12:00:00 UTC"
        );
    }

    #[test]
    fn facts_from_labels_annotations_and_series() {
        let t = UNIX_EPOCH + Duration::from_secs(1_714_564_800);
        let mut a = Alert::firing(
            labels(&[
                ("alertname", "FeatureDrift"),
                ("severity", "warning"),
                ("feature", "temp"),
                ("model", "scrap"),
                ("other", "x"),
            ]),
            labels(&[("summary", "PSI above threshold")]),
            t,
        );
        a.series = Some(Series {
            name: "psi".into(),
            points: vec![
                Point {
                    time: t + Duration::from_secs(60),
                    value: 0.31,
                },
                Point {
                    time: t,
                    value: 0.1,
                },
            ],
            threshold: Some(0.2),
        });
        let f = AlertFacts::of(&a);
        assert_eq!(f.subject, vec![("model", "scrap"), ("feature", "temp")]);
        assert_eq!(
            f.one_line(),
            "FeatureDrift [warning] model=scrap, feature=temp: value 0.31 (threshold 0.2)"
        );
        a.annotations.insert("value".into(), "0.4".into());
        a.labels.remove("alertname");
        assert_eq!(AlertFacts::of(&a).value.as_deref(), Some("0.4"));
        assert_eq!(AlertFacts::of(&a).name, "alert");

        let n = Notification::new(
            "ops",
            "k",
            labels(&[("alertname", "FeatureDrift"), ("model", "scrap")]),
            vec![a.clone(), a.resolved_at(t)],
            "",
        );
        assert_eq!(headline(&n), "[FIRING:1] 2 alerts (model=scrap)");
    }
}
