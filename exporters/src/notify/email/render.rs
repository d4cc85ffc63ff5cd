//! The content of a notification email: the subject from its template, a plain-text body, an
//! HTML body, and the PNG charts the HTML shows inline (by Content-ID). A notification that
//! carries files and no alert (a scheduled report) is a short note with the files attached.

use std::fmt::Write as _;

use super::config::{Part, SubjectTemplate, Var};
use crate::notify::alert::{Alert, AlertStatus, Attachment, Notification};
use crate::notify::chart;
use crate::notify::summary::{AlertFacts, format_number, group_text, headline, human_time};

/// Alerts described one by one; the rest are counted.
const MAX_DETAILED: usize = 50;
/// Alerts with a chart (the first ones with a series).
const MAX_CHARTS: usize = 10;

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// The subject, on one line.
    pub subject: String,
    /// The text/plain part.
    pub text: String,
    /// The text/html part.
    pub html: String,
    /// PNG charts the HTML refers to as `cid:<content_id>`.
    pub charts: Vec<InlineChart>,
    /// Files attached to the message.
    pub attachments: Vec<Attachment>,
}

/// A chart embedded in the HTML part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineChart {
    /// The Content-ID, without angle brackets.
    pub content_id: String,
    /// The PNG bytes.
    pub png: Vec<u8>,
}

/// Expands the subject template for `n`; line breaks become spaces.
pub fn subject(template: &SubjectTemplate, n: &Notification) -> String {
    let mut out = String::new();
    for part in &template.parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Var(Var::Headline) => out.push_str(&headline(n)),
            Part::Var(Var::Status) => out.push_str(n.status.as_str()),
            Part::Var(Var::Count) => {
                let _ = write!(out, "{}", n.alerts_with(n.status).count());
            }
            Part::Var(Var::Title) => out.push_str(&n.title()),
            Part::Var(Var::Receiver) => out.push_str(&n.receiver),
            Part::Var(Var::Group) => out.push_str(&group_text(n)),
            Part::Var(Var::Label(l)) => {
                out.push_str(n.common_labels.get(l).map_or("", String::as_str))
            }
        }
    }
    out.replace(['\r', '\n'], " ").trim().to_string()
}

/// Renders the whole email.
pub fn render(template: &SubjectTemplate, n: &Notification) -> RenderedEmail {
    if n.alerts.is_empty() && !n.attachments.is_empty() {
        return files_note(n);
    }
    let mut alerts: Vec<&Alert> = n.alerts.iter().collect();
    alerts.sort_by_key(|a| a.status != AlertStatus::Firing);
    let detailed = &alerts[..alerts.len().min(MAX_DETAILED)];
    let more = alerts.len() - detailed.len() + n.truncated_alerts as usize;

    let mut charts = Vec::new();
    let mut chart_of = Vec::with_capacity(detailed.len());
    for (i, a) in detailed.iter().enumerate() {
        let png = match &a.series {
            Some(s) if charts.len() < MAX_CHARTS => chart::png(s),
            _ => None,
        };
        chart_of.push(png.map(|png| {
            let content_id = format!("chart-{}-{}@millwatch", i + 1, a.fingerprint);
            charts.push(InlineChart {
                content_id: content_id.clone(),
                png,
            });
            content_id
        }));
    }

    let title = headline(n);
    let mut text = format!("{title}\n\n");
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head>\n<body style=\"font-family:Helvetica,Arial,sans-serif;color:#1d2430;max-width:640px\">\n<h2 style=\"margin:0 0 12px 0\">{t}</h2>\n",
        t = esc(&title)
    );
    for (a, cid) in detailed.iter().zip(&chart_of) {
        let f = AlertFacts::of(a);
        alert_text(&mut text, a, &f);
        alert_html(&mut html, a, &f, cid.as_deref());
    }
    if more > 0 {
        let _ = writeln!(text, "... and {more} more alerts.\n");
        let _ = writeln!(html, "<p>… and {more} more alerts.</p>");
    }
    if n.external_url.is_empty() {
        let _ = writeln!(text, "-- \nSent by Millwatch to {}.", n.receiver);
        let _ = writeln!(
            html,
            "<p style=\"color:#6b7380;font-size:12px\">Sent by Millwatch to {}.</p>",
            esc(&n.receiver)
        );
    } else {
        let _ = writeln!(
            text,
            "-- \nSent by Millwatch to {}. Open Millwatch: {}",
            n.receiver, n.external_url
        );
        let _ = writeln!(
            html,
            "<p style=\"color:#6b7380;font-size:12px\">Sent by Millwatch to {} · <a href=\"{}\">Open Millwatch</a></p>",
            esc(&n.receiver),
            esc(&n.external_url)
        );
    }
    html.push_str("</body></html>\n");
    RenderedEmail {
        subject: subject(template, n),
        text,
        html,
        charts,
        attachments: Vec::new(),
    }
}

/// The email of a notification that sends files (a scheduled report): its `summary`
/// annotation as the subject, its `description` and the list of files as the body, the files
/// attached.
fn files_note(n: &Notification) -> RenderedEmail {
    let annotation = |k: &str| n.common_annotations.get(k).map_or("", String::as_str);
    let title = match annotation("summary") {
        "" => format!("{} from Millwatch", n.title()),
        s => s.to_string(),
    };
    let mut text = format!("{title}\n\n");
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head>\n<body style=\"font-family:Helvetica,Arial,sans-serif;color:#1d2430;max-width:640px\">\n<h2 style=\"margin:0 0 12px 0\">{t}</h2>\n",
        t = esc(&title)
    );
    let description = annotation("description");
    if !description.is_empty() {
        let _ = writeln!(text, "{description}\n");
        let _ = writeln!(html, "<p>{}</p>", esc(description));
    }
    let _ = writeln!(text, "Attached:");
    html.push_str("<p>Attached:</p>\n<ul>\n");
    for a in &n.attachments {
        let _ = writeln!(text, "- {} ({} bytes)", a.filename, a.content.len());
        let _ = writeln!(
            html,
            "<li>{} ({} bytes)</li>",
            esc(&a.filename),
            a.content.len()
        );
    }
    html.push_str("</ul>\n");
    let _ = writeln!(text, "\n-- \nSent by Millwatch to {}.", n.receiver);
    let _ = writeln!(
        html,
        "<p style=\"color:#6b7380;font-size:12px\">Sent by Millwatch to {}.</p>\n</body></html>",
        esc(&n.receiver)
    );
    RenderedEmail {
        subject: title.replace(['\r', '\n'], " ").trim().to_string(),
        text,
        html,
        charts: Vec::new(),
        attachments: n.attachments.clone(),
    }
}

/// The rows shown for an alert: (heading, value).
fn rows(a: &Alert, f: &AlertFacts<'_>) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    if !f.severity.is_empty() {
        rows.push(("Severity".to_string(), f.severity.to_string()));
    }
    for (k, v) in &f.subject {
        rows.push((capitalise(k), v.to_string()));
    }
    if let Some(v) = &f.value {
        rows.push(("Value".into(), v.clone()));
    }
    if let Some(t) = &f.threshold {
        rows.push(("Threshold".into(), t.clone()));
    }
    rows.push(("Since".into(), human_time(f.since)));
    if let Some(until) = f.until {
        rows.push(("Resolved".into(), human_time(until)));
    }
    if !f.description.is_empty() {
        rows.push(("Description".into(), f.description.to_string()));
    }
    let shown: Vec<&str> = ["alertname", "severity"]
        .into_iter()
        .chain(f.subject.iter().map(|(k, _)| *k))
        .collect();
    let others: Vec<String> = a
        .labels
        .iter()
        .filter(|(k, _)| !shown.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !others.is_empty() {
        rows.push(("Labels".into(), others.join(", ")));
    }
    rows
}

fn alert_text(out: &mut String, a: &Alert, f: &AlertFacts<'_>) {
    let _ = writeln!(out, "[{}] {}", f.status.as_str().to_uppercase(), f.name);
    if !f.summary.is_empty() {
        let _ = writeln!(out, "{}", f.summary);
    }
    for (k, v) in rows(a, f) {
        let _ = writeln!(out, "  {k}: {v}");
    }
    if let Some(s) = &a.series {
        let finite: Vec<f64> = s
            .points
            .iter()
            .map(|p| p.value)
            .filter(|v| v.is_finite())
            .collect();
        if let (Some(lo), Some(hi)) = (
            finite.iter().copied().reduce(f64::min),
            finite.iter().copied().reduce(f64::max),
        ) {
            let _ = writeln!(
                out,
                "  {}: {} points, min {}, max {}",
                if s.name.is_empty() { "Series" } else { &s.name },
                finite.len(),
                format_number(lo),
                format_number(hi)
            );
        }
    }
    if !f.url.is_empty() {
        let _ = writeln!(out, "  Source: {}", f.url);
    }
    out.push('\n');
}

fn alert_html(out: &mut String, a: &Alert, f: &AlertFacts<'_>, chart: Option<&str>) {
    let (color, word) = match f.status {
        AlertStatus::Firing => ("#c62828", "FIRING"),
        AlertStatus::Resolved => ("#2e7d32", "RESOLVED"),
    };
    let _ = writeln!(
        out,
        "<div style=\"border-left:4px solid {color};padding:4px 12px;margin:0 0 16px 0\">\n<h3 style=\"margin:4px 0\"><span style=\"color:{color}\">{word}</span> {}</h3>",
        esc(f.name)
    );
    if !f.summary.is_empty() {
        let _ = writeln!(out, "<p style=\"margin:4px 0\">{}</p>", esc(f.summary));
    }
    out.push_str("<table style=\"border-collapse:collapse;font-size:14px\">\n");
    for (k, v) in rows(a, f) {
        let _ = writeln!(
            out,
            "<tr><th style=\"text-align:left;padding:2px 12px 2px 0;color:#6b7380;font-weight:normal\">{}</th><td style=\"padding:2px 0\">{}</td></tr>",
            esc(&k),
            esc(&v)
        );
    }
    out.push_str("</table>\n");
    if let Some(cid) = chart {
        let name = a.series.as_ref().map_or("", |s| s.name.as_str());
        let _ = writeln!(
            out,
            "<p style=\"margin:8px 0 0 0\"><img src=\"cid:{}\" width=\"{}\" height=\"{}\" alt=\"{}\" style=\"border:1px solid #d0d4da\"></p>",
            esc(cid),
            chart::WIDTH,
            chart::HEIGHT,
            esc(if name.is_empty() { "chart" } else { name })
        );
        if !name.is_empty() {
            let _ = writeln!(
                out,
                "<p style=\"margin:2px 0;color:#6b7380;font-size:12px\">{} over time{}</p>",
                esc(name),
                if a.series.as_ref().and_then(|s| s.threshold).is_some() {
                    "; dashed red: threshold"
                } else {
                    ""
                }
            );
        }
    }
    if !f.url.is_empty() {
        let _ = writeln!(
            out,
            "<p style=\"margin:4px 0\"><a href=\"{}\">Source</a></p>",
            esc(f.url)
        );
    }
    out.push_str("</div>\n");
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::alert::{Labels, Point, Series, labels};
    use std::time::{Duration, UNIX_EPOCH};

    fn notification() -> Notification {
        let t = UNIX_EPOCH + Duration::from_secs(1_714_564_800);
        let mut a = Alert::firing(
            labels(&[
                ("alertname", "FeatureDrift"),
                ("model", "scrap"),
                ("feature", "temp"),
                ("severity", "critical"),
                ("test", "psi"),
            ]),
            labels(&[
                ("summary", "Drift on <temp>"),
                ("value", "0.31"),
                ("threshold", "0.2"),
            ]),
            t,
        );
        a.generator_url = "http://mw:9464/ui/models/scrap?x=1&y=2".into();
        a.series = Some(Series {
            name: "PSI".into(),
            points: (0..20)
                .map(|i| Point {
                    time: t + Duration::from_secs(60 * i),
                    value: 0.01 * i as f64,
                })
                .collect(),
            threshold: Some(0.2),
        });
        let b = Alert::firing(
            labels(&[
                ("alertname", "FeatureDrift"),
                ("model", "scrap"),
                ("feature", "rpm"),
            ]),
            Labels::new(),
            t,
        )
        .resolved_at(t + Duration::from_secs(600));
        Notification::new(
            "oncall",
            "k",
            labels(&[("alertname", "FeatureDrift"), ("model", "scrap")]),
            vec![b, a],
            "http://mw:9464",
        )
    }

    #[test]
    fn subject_templates_expand() {
        let n = notification();
        for (template, want) in [
            ("{{ headline }}", "[FIRING:1] FeatureDrift (model=scrap)"),
            (
                "{{status}}/{{count}}: {{ title }} for {{ receiver }}",
                "firing/1: FeatureDrift for oncall",
            ),
            (
                "{{ labels.model }}|{{ labels.feature }}|{{ group }}",
                "scrap||model=scrap",
            ),
            ("plain", "plain"),
        ] {
            let t = SubjectTemplate::parse(template).expect(template);
            assert_eq!(subject(&t, &n), want, "{template}");
        }
        let mut n = n;
        n.receiver = "a\r\nBcc: x@y".into();
        let t = SubjectTemplate::parse("{{ receiver }}").expect("parses");
        assert_eq!(subject(&t, &n), "a  Bcc: x@y");
    }

    #[test]
    fn both_bodies_say_what_fired() {
        let t = SubjectTemplate::parse("{{ headline }}").expect("parses");
        let e = render(&t, &notification());
        // Firing first, with its numbers.
        let firing = e.text.find("[FIRING] FeatureDrift").expect("firing");
        let resolved = e.text.find("[RESOLVED] FeatureDrift").expect("resolved");
        assert!(firing < resolved);
        for want in [
            "Severity: critical",
            "Model: scrap",
            "Feature: temp",
            "Value: 0.31",
            "Threshold: 0.2",
            "Since: 2024-05-01 12:00:00 UTC",
            "Resolved: 2024-05-01 12:10:00 UTC",
            "Labels: test=psi",
            "PSI: 20 points, min 0, max 0.19",
            "Open Millwatch: http://mw:9464",
        ] {
            assert!(e.text.contains(want), "text lacks {want:?}:\n{}", e.text);
        }
        for want in [
            "Drift on &lt;temp&gt;",
            "<td style=\"padding:2px 0\">0.31</td>",
            "href=\"http://mw:9464/ui/models/scrap?x=1&amp;y=2\"",
            "<a href=\"http://mw:9464\">Open Millwatch</a>",
        ] {
            assert!(e.html.contains(want), "html lacks {want:?}:\n{}", e.html);
        }
        assert_eq!(e.charts.len(), 1);
        let cid = &e.charts[0].content_id;
        assert!(e.html.contains(&format!("src=\"cid:{cid}\"")), "{}", e.html);
        assert!(e.charts[0].png.starts_with(b"\x89PNG"));
    }

    #[test]
    fn a_notification_with_files_and_no_alert_is_a_note_with_them_attached() {
        let mut n = Notification::new(
            "plant-mail",
            "report/weekly",
            labels(&[("alertname", "MillwatchReport")]),
            Vec::new(),
            "",
        );
        n.common_annotations = labels(&[
            ("summary", "Millwatch report weekly: scrap"),
            ("description", "From 2024-05-01 to 2024-05-08 <UTC>"),
        ]);
        n.attachments.push(Attachment {
            filename: "scrap.html".into(),
            content_type: "text/html; charset=utf-8".into(),
            content: b"<html></html>".to_vec(),
        });
        // Through the outbox's JSON and back, as stored.
        let json = serde_json::to_string(&n).unwrap();
        assert!(
            json.contains("\"content\":\"PGh0bWw+PC9odG1sPg==\""),
            "{json}"
        );
        let n: Notification = serde_json::from_str(&json).unwrap();
        let e = render(&SubjectTemplate::parse("{{headline}}").unwrap(), &n);
        assert_eq!(e.subject, "Millwatch report weekly: scrap");
        assert!(e.text.contains("- scrap.html (13 bytes)"), "{}", e.text);
        assert!(e.html.contains("&lt;UTC&gt;"), "{}", e.html);
        assert_eq!(e.attachments, n.attachments);
        // An alert's notification has no `attachments` key: the Alertmanager payload is unchanged.
        assert!(
            !serde_json::to_string(&notification())
                .unwrap()
                .contains("attachments")
        );
    }
}
