//! `/`: every model in every environment with its status (from the newest verdict of each
//! detector and feature), when it was last judged and its open alerts; every machine with
//! the state of its control charts.

use std::collections::BTreeMap;

use maud::html;

use super::latest::Latest;
use super::page::{self, Nav, badge};
use super::{Rendered, UiState};
use crate::alerting::engine::AlertView;
use crate::alerting::lifecycle::State as AlertState;

/// How a model version stands, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Degraded,
    Quality,
    Drift,
    Ok,
    NoData,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Degraded => "degraded",
            Status::Quality => "quality",
            Status::Drift => "drift",
            Status::Ok => "ok",
            Status::NoData => "no data",
        }
    }
}

/// A model version's newest verdicts, summed up.
#[derive(Debug, Clone)]
pub struct VersionStatus {
    /// The worst of `found`.
    pub status: Status,
    /// Every finding of its newest verdicts, worst first; `[Ok]` when none.
    pub found: Vec<Status>,
    pub last_verdict_ns: Option<i64>,
}

/// The status of every model version that has verdicts, keyed by (model, version): a
/// performance drop is `degraded`, a data-quality finding `quality`, a drifted feature,
/// prediction or drift share `drift`, each judged on the newest verdict of its feature.
pub fn version_statuses(
    latest: &Latest,
    model: Option<&str>,
) -> BTreeMap<(String, String), VersionStatus> {
    // (degraded, quality, drift, last verdict) per version.
    let mut found: BTreeMap<(String, String), (bool, bool, bool, i64)> = BTreeMap::new();
    for (m, v, detector, _, verdict) in latest.models() {
        if model.is_some_and(|x| x != m) {
            continue;
        }
        let e = found.entry((m.to_owned(), v.to_owned())).or_insert((
            false,
            false,
            false,
            verdict.time_ns,
        ));
        let d = verdict.drifted;
        e.0 |= d && matches!(detector, "performance" | "performance_change");
        e.1 |= d && detector == "data_quality";
        e.2 |= d && matches!(detector, "drift" | "drift_share");
        e.3 = e.3.max(verdict.time_ns);
    }
    found
        .into_iter()
        .map(|(key, (degraded, quality, drift, last))| {
            let mut found: Vec<Status> = [
                (degraded, Status::Degraded),
                (quality, Status::Quality),
                (drift, Status::Drift),
            ]
            .into_iter()
            .filter_map(|(on, s)| on.then_some(s))
            .collect();
            if found.is_empty() {
                found.push(Status::Ok);
            }
            let status = found[0];
            (
                key,
                VersionStatus {
                    status,
                    found,
                    last_verdict_ns: Some(last),
                },
            )
        })
        .collect()
}

/// A model in one environment.
struct Deployment {
    model: String,
    environment: String,
    versions: Vec<String>,
    last_event_ns: i64,
}

/// Every model in every environment, from the audit trail's registry of where each version
/// ran (a few rows a version; grouping the inferences took ~170 ms at 840k events).
fn deployments(c: &duckdb::Connection) -> duckdb::Result<Vec<Deployment>> {
    let mut stmt = c.prepare(
        "SELECT model, environment, string_agg(DISTINCT version, chr(31) ORDER BY version), \
         epoch_ns(max(last_seen)) FROM model_registry GROUP BY 1, 2 ORDER BY 1, 2",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Deployment {
            model: r.get(0)?,
            environment: r.get(1)?,
            versions: r
                .get::<_, String>(2)?
                .split('\u{1f}')
                .map(str::to_owned)
                .collect(),
            last_event_ns: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// A machine: the `hw.id` its metrics carry.
pub struct MachineRow {
    pub id: String,
    pub line: Option<String>,
    pub host: Option<String>,
    pub series: u64,
}

pub fn machines(c: &duckdb::Connection) -> duckdb::Result<Vec<MachineRow>> {
    let mut stmt = c.prepare(
        "SELECT json_extract_string(s.attributes, '$.\"hw.id\"') AS id, any_value(r.site_line), any_value(r.host_name), \
         count(*) FROM metric_series s LEFT JOIN resources r ON r.resource_id = s.resource_id \
         WHERE id IS NOT NULL GROUP BY id ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(MachineRow {
            id: r.get(0)?,
            line: r.get(1)?,
            host: r.get(2)?,
            series: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// The `hw.id` a machine-health series label (`hw.id=b-3,hw.sensor_location=process`) names.
pub fn machine_of(series: &str) -> Option<&str> {
    series.split(',').find_map(|kv| kv.strip_prefix("hw.id="))
}

/// Each machine's newest control-chart verdict: whether any of its charts is out of control.
fn chart_states(latest: &Latest) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    for (series, verdict) in latest.machine_series() {
        if let Some(id) = machine_of(series) {
            *out.entry(id.to_owned()).or_insert(false) |= verdict.drifted;
        }
    }
    out
}

/// The verdicts, brought up to date on `c`.
pub fn latest<'a>(
    state: &'a UiState,
    c: &duckdb::Connection,
) -> duckdb::Result<std::sync::MutexGuard<'a, Latest>> {
    let mut latest = state.latest.lock().unwrap_or_else(|e| e.into_inner());
    latest.refresh(c)?;
    Ok(latest)
}

/// The alerts not resolved.
pub fn open_alerts(state: &UiState) -> Vec<AlertView> {
    state
        .alerting
        .as_ref()
        .and_then(|s| s.alerts.read().ok().map(|a| a.clone()))
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.state != AlertState::Resolved)
        .collect()
}

pub fn page(state: &UiState) -> anyhow::Result<Rendered> {
    let (deployments, statuses, machines, charts) = state.store.read(|c| {
        let latest = latest(state, c)?;
        Ok((
            deployments(c)?,
            version_statuses(&latest, None),
            machines(c)?,
            chart_states(&latest),
        ))
    })?;
    let alerts = open_alerts(state);
    let alerts_of_model = |m: &str| {
        alerts
            .iter()
            .filter(|a| a.labels.get("model").is_some_and(|x| x == m))
            .count()
    };
    let alerts_of_machine = |id: &str| {
        alerts
            .iter()
            .filter(|a| a.labels.get("feature").and_then(|f| machine_of(f)) == Some(id))
            .count()
    };
    let watched = !state.health_rules.is_empty();
    let body = html! {
        section aria-labelledby="models" data-live="models" {
            h2 id="models" { "Models" }
            @if deployments.is_empty() {
                p.empty { "No inference has arrived yet. Send " code { "ml.inference" } " events over OTLP (docs/signals.md), or run " code { "millwatch demo" } "." }
            } @else {
                table.fleet {
                    thead { tr { th { "Model" } th { "Environment" } th { "Versions" } th { "Status" } th { "Last verdict" } th { "Last event" } th { "Open alerts" } } }
                    tbody {
                        @for d in &deployments {
                            @let of = |v: &String| statuses.get(&(d.model.clone(), v.clone()));
                            @let found: std::collections::BTreeSet<Status> = d.versions.iter().flat_map(|v| of(v).map_or(vec![Status::NoData], |s| s.found.clone())).collect();
                            @let status = found.first().copied().unwrap_or(Status::NoData);
                            @let all: Vec<&str> = found.iter().map(|s| s.as_str()).collect();
                            @let last = d.versions.iter().filter_map(|v| of(v).and_then(|s| s.last_verdict_ns)).max();
                            @let open = alerts_of_model(&d.model);
                            tr data-model=(d.model) data-status=(status.as_str()) data-found=(all.join(" ")) {
                                td { a href={ "/models/" (page::segment(&d.model)) } { (d.model) } }
                                td { @if d.environment.is_empty() { span.muted { "—" } } @else { (d.environment) } }
                                td {
                                    @for v in &d.versions {
                                        @let vs = of(v).map_or(Status::NoData, |s| s.status);
                                        a.version href={ "/models/" (page::segment(&d.model)) "?" (page::query(&[("version", v)])) } title=(vs.as_str()) { (v) } " "
                                    }
                                }
                                td { @for s in &found { (badge(s.as_str())) " " } }
                                td { @match last { Some(t) => (page::time(t)), None => span.muted { "—" } } }
                                td { (page::time(d.last_event_ns)) }
                                td { @if open > 0 { a.alerts href="/alerts" { (open) } } @else { span.muted { "0" } } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="machines" data-live="machines" {
            h2 id="machines" { "Machines" }
            @if machines.is_empty() {
                p.empty { "No metric with an " code { "hw.id" } " attribute has arrived yet." }
            } @else {
                table.fleet {
                    thead { tr { th { "Machine" } th { "Line" } th { "Host" } th { "Series" } th { "Control charts" } th { "Open alerts" } } }
                    tbody {
                        @for m in &machines {
                            @let chart = match charts.get(&m.id) {
                                Some(true) => "out of control",
                                Some(false) => "in control",
                                None if watched => "in control",
                                None => "no chart",
                            };
                            @let open = alerts_of_machine(&m.id);
                            tr data-machine=(m.id) data-status=(chart) {
                                td { a href={ "/machines/" (page::segment(&m.id)) } { (m.id) } }
                                td { (m.line.as_deref().unwrap_or("—")) }
                                td { (m.host.as_deref().unwrap_or("—")) }
                                td { (m.series) }
                                td { (badge(chart)) }
                                td { @if open > 0 { a.alerts href="/alerts" { (open) } } @else { span.muted { "0" } } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Rendered::Page(page::frame("Fleet", Nav::Fleet, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_status_wins_and_machines_come_from_series_labels() {
        let worst = [Status::Ok, Status::Drift, Status::NoData, Status::Quality]
            .into_iter()
            .min();
        assert_eq!(worst, Some(Status::Quality));
        assert_eq!(
            machine_of("hw.id=b-3,hw.sensor_location=process"),
            Some("b-3")
        );
        assert_eq!(machine_of("hw.sensor_location=process"), None);
    }
}
