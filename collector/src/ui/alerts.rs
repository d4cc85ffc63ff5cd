//! `/alerts`: open alerts (acknowledge one; silence one from its labels), silences (expire
//! one), and recently resolved alerts. The forms post to `/ui/...` (see `forms`).

use maud::{Markup, html};

use super::page::{self, Nav, badge};
use super::{AlertsQuery, Rendered, UiState};
use crate::alerting::engine::AlertView;
use crate::alerting::lifecycle::State as AlertState;
use crate::alerting::silences::SilenceState;

/// The labels a silence made from an alert matches on: what names the alert's subject.
const SILENCE_LABELS: [&str; 5] = ["alertname", "model", "version", "feature", "rule"];

/// The matchers of a silence for `alert`, one per line (`name="value"`).
pub fn matchers_for(alert: &AlertView) -> String {
    let mut lines: Vec<String> = SILENCE_LABELS
        .iter()
        .filter_map(|k| alert.labels.get(*k).map(|v| (k, v)))
        .map(|(k, v)| format!("{k}={}", serde_json::Value::from(v.as_str())))
        .collect();
    if lines.is_empty() {
        lines = alert
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={}", serde_json::Value::from(v.as_str())))
            .collect();
    }
    lines.join("\n")
}

/// A table of alerts with their acknowledge and silence forms.
pub fn table(alerts: &[AlertView]) -> Markup {
    html! {
        @if alerts.is_empty() {
            p.empty { "None." }
        } @else {
            table.alerts {
                thead { tr { th { "Alert" } th { "State" } th { "Subject" } th { "Since" } th { "Summary" } th { "Act" } } }
                tbody {
                    @for a in alerts {
                        tr data-fingerprint=(a.fingerprint) data-alertname=[a.labels.get("alertname")] {
                            td { strong { (a.labels.get("alertname").map_or(a.rule.as_str(), String::as_str)) } br; span.muted { (a.labels.get("severity").map_or("", String::as_str)) } }
                            td {
                                (badge(a.state.as_str()))
                                @if !a.silenced_by.is_empty() { " " (badge("silenced")) }
                                @if let Some(ack) = &a.acknowledged { br; span.muted { "acknowledged by " (ack.by) } }
                            }
                            td {
                                @for (k, v) in a.labels.iter().filter(|(k, _)| !matches!(k.as_str(), "alertname" | "severity")) {
                                    @match k.as_str() {
                                        "model" => { span.label { (k) "=" a href={ "/models/" (page::segment(v)) } { (v) } } " " }
                                        _ => { span.label { (k) "=" (v) } " " }
                                    }
                                }
                            }
                            td { (page::time_text(&a.active_at)) }
                            td { (a.annotations.get("summary").map_or("", String::as_str)) }
                            td.actions {
                                @if a.state != AlertState::Resolved {
                                    @if a.acknowledged.is_none() {
                                        details {
                                            summary { "Acknowledge" }
                                            form method="post" action={ "/ui/alerts/" (page::segment(&a.fingerprint)) "/ack" } {
                                                label { "By " input name="by" required autocomplete="username"; }
                                                label { "Comment " input name="comment"; }
                                                button type="submit" { "Acknowledge" }
                                            }
                                        }
                                    }
                                    details {
                                        summary { "Silence" }
                                        form.silence method="post" action="/ui/silences" {
                                            label { "Matchers " textarea name="matchers" rows="3" required { (matchers_for(a)) } }
                                            label { "For " input name="duration" value="2h" required; }
                                            label { "By " input name="created_by" required autocomplete="username"; }
                                            label { "Comment " input name="comment" required; }
                                            button type="submit" { "Create silence" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn page(state: &UiState, q: &AlertsQuery) -> anyhow::Result<Rendered> {
    let Some(shared) = &state.alerting else {
        let body = html! { p.empty { "The alert manager is off (alerting.enabled: false)." } };
        return Ok(Rendered::Page(page::frame(
            "Alerts & silences",
            Nav::Alerts,
            body,
        )));
    };
    let all = shared.alerts.read().map(|a| a.clone()).unwrap_or_default();
    let (resolved, open): (Vec<AlertView>, Vec<AlertView>) = all
        .into_iter()
        .partition(|a| a.state == AlertState::Resolved);
    let silences = shared
        .silences
        .read()
        .map(|s| s.clone())
        .unwrap_or_default();
    let now = crate::alerting::now_ns();
    let body = html! {
        @if let Some(said) = &q.said { p.notice role="status" { (said) } }
        @if let Some(error) = &q.error { p.error role="alert" { (error) } }
        section aria-labelledby="open" data-live="open" {
            h2 id="open" { "Open alerts (" (open.len()) ")" }
            (table(&open))
        }
        section aria-labelledby="silences" data-live="silences" {
            h2 id="silences" { "Silences" }
            @if silences.is_empty() {
                p.empty { "None." }
            } @else {
                table.silences {
                    thead { tr { th { "Matchers" } th { "State" } th { "Starts" } th { "Ends" } th { "By" } th { "Comment" } th { "Act" } } }
                    tbody {
                        @for s in silences.iter().rev() {
                            @let st = s.state(now);
                            tr data-silence=(s.id) {
                                td { @for m in &s.matchers { code { (m.to_string()) } " " } }
                                td { (badge(silence_state(st))) }
                                td { (page::time(s.starts_at)) }
                                td { (page::time(s.ends_at)) }
                                td { (s.created_by) }
                                td { (s.comment) }
                                td {
                                    @if st != SilenceState::Expired {
                                        form method="post" action={ "/ui/silences/" (page::segment(&s.id)) "/expire" } {
                                            button type="submit" { "Expire" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="resolved" data-live="resolved" {
            h2 id="resolved" { "Resolved recently (" (resolved.len()) ")" }
            (table(&resolved))
        }
    };
    Ok(Rendered::Page(page::frame(
        "Alerts & silences",
        Nav::Alerts,
        body,
    )))
}

fn silence_state(s: SilenceState) -> &'static str {
    match s {
        SilenceState::Active => "active",
        SilenceState::Pending => "pending",
        SilenceState::Expired => "expired",
    }
}
