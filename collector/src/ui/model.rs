//! `/models/{name}`: the model's versions and their deployments on a timeline; for the version
//! in view, the drift heatmap (input feature × window, coloured by the corrected p-value,
//! drifted cells marked), prediction drift, data quality (feature × window), performance per
//! window (realised, and estimated before labels where the estimation ran), and the model's
//! open alerts. `?window=` lists every finding of one window; `&feature=` adds that feature's
//! reference and current histograms (a heatmap cell links to both).

use std::collections::{BTreeMap, BTreeSet};

use maud::{Markup, html};

use super::chart::{Line, LinePoint, lines};
use super::fleet::{Status, latest, open_alerts, version_statuses};
use super::histogram;
use super::page::{self, Nav, badge, number};
use super::timeline;
use super::{ModelQuery, Rendered, UiState};

/// Windows shown in the heatmaps (the newest).
const WINDOWS: usize = 40;
/// The prediction's column name in the detections table.
const PREDICTION: &str = "ml.prediction";

struct Version {
    version: String,
    environments: String,
    first_ns: i64,
    last_ns: i64,
    events: u64,
    baseline: Option<String>,
}

/// One verdict of one feature in one window.
#[derive(Debug, Clone)]
struct Cell {
    window: u64,
    feature: String,
    detector: String,
    test: Option<String>,
    statistic: Option<f64>,
    p_value: Option<f64>,
    p_corrected: Option<f64>,
    effect: Option<f64>,
    drifted: bool,
    verdict: String,
}

/// A window: its first event id (what identifies it) and its time span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Window {
    first_event_id: u64,
    start_ns: Option<i64>,
    end_ns: Option<i64>,
}

/// The model's versions, from the audit trail's registry (a few rows a version, where the
/// inferences table would be scanned whole).
fn versions(c: &duckdb::Connection, model: &str) -> duckdb::Result<Vec<Version>> {
    let mut stmt = c.prepare(
        "SELECT i.version, string_agg(DISTINCT nullif(i.environment, ''), ', ' ORDER BY nullif(i.environment, '')), \
         epoch_ns(min(i.first_seen)), epoch_ns(max(i.last_seen)), sum(i.events)::UBIGINT, any_value(b.origin) \
         FROM model_registry i LEFT JOIN (SELECT version, CAST(origin AS VARCHAR) AS origin FROM detection_baselines \
         WHERE model = ?) b ON b.version = i.version WHERE i.model = ? GROUP BY i.version ORDER BY min(i.first_seen)",
    )?;
    let rows = stmt.query_map([model, model], |r| {
        Ok(Version {
            version: r.get(0)?,
            environments: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            first_ns: r.get(2)?,
            last_ns: r.get(3)?,
            events: r.get(4)?,
            baseline: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// The newest [`WINDOWS`] windows of a version and their drift, quality and performance verdicts
/// (for performance, the newest decision per window and metric).
fn cells(
    c: &duckdb::Connection,
    model: &str,
    version: &str,
) -> duckdb::Result<(Vec<Window>, Vec<Cell>)> {
    let mut stmt = c.prepare(&format!(
        "WITH w AS (SELECT first_event_id, min(window_start) AS ws, max(window_end) AS we FROM detections \
         WHERE model = ? AND version = ? AND detector = 'drift' AND first_event_id IS NOT NULL \
         GROUP BY first_event_id ORDER BY first_event_id DESC LIMIT {WINDOWS}) \
         SELECT w.first_event_id, epoch_ns(w.ws), epoch_ns(w.we) FROM w ORDER BY w.first_event_id"
    ))?;
    let windows: Vec<Window> = stmt
        .query_map([model, version], |r| {
            Ok(Window {
                first_event_id: r.get(0)?,
                start_ns: r.get(1)?,
                end_ns: r.get(2)?,
            })
        })?
        .collect::<duckdb::Result<_>>()?;
    let Some(oldest) = windows.first().map(|w| w.first_event_id) else {
        return Ok((windows, Vec::new()));
    };
    let mut stmt = c.prepare(
        "SELECT first_event_id, feature, detector, arg_max(test, time), arg_max(statistic, time), arg_max(p_value, time), \
         arg_max(p_value_corrected, time), arg_max(effect_size, time), arg_max(drifted, time), arg_max(verdict, time) \
         FROM detections WHERE model = ? AND version = ? AND first_event_id >= ? \
         AND detector IN ('drift', 'data_quality', 'performance', 'performance_change') AND feature IS NOT NULL \
         GROUP BY first_event_id, feature, detector",
    )?;
    let cells = stmt
        .query_map(duckdb::params![model, version, oldest], cell_of)?
        .collect::<duckdb::Result<_>>()?;
    Ok((windows, cells))
}

/// An estimate of a window's performance before its labels (`estimated_performance`).
struct Estimate {
    window: u64,
    metric: String,
    value: f64,
    band: Option<(f64, f64)>,
    dropped: bool,
}

/// The newest estimate per window and metric, from the window `oldest` on.
fn estimates(
    c: &duckdb::Connection,
    model: &str,
    version: &str,
    oldest: u64,
) -> duckdb::Result<Vec<Estimate>> {
    let mut stmt = c.prepare(
        "SELECT first_event_id, feature, arg_max(statistic, time), \
         arg_max(CAST(details->>'lower_confidence_bound' AS DOUBLE), time), \
         arg_max(CAST(details->>'upper_confidence_bound' AS DOUBLE), time), arg_max(drifted, time) \
         FROM detections WHERE model = ? AND version = ? AND detector = 'estimated_performance' \
         AND first_event_id >= ? AND feature IS NOT NULL AND statistic IS NOT NULL GROUP BY 1, 2",
    )?;
    stmt.query_map(duckdb::params![model, version, oldest], |r| {
        let (lo, hi): (Option<f64>, Option<f64>) = (r.get(3)?, r.get(4)?);
        Ok(Estimate {
            window: r.get(0)?,
            metric: r.get(1)?,
            value: r.get(2)?,
            band: lo.zip(hi),
            dropped: r.get(5)?,
        })
    })?
    .collect()
}

/// Per metric, its realised values (marked where a drop was found) and its estimates over the
/// windows' start times.
fn performance_lines(
    windows: &[Window],
    performance: &[&Cell],
    estimates: &[Estimate],
) -> BTreeMap<String, Vec<Line>> {
    let start: BTreeMap<u64, i64> = windows
        .iter()
        .filter_map(|w| Some((w.first_event_id, w.start_ns?)))
        .collect();
    let mut out: BTreeMap<String, Vec<Line>> = BTreeMap::new();
    let metrics: BTreeSet<&str> = performance
        .iter()
        .map(|c| c.feature.as_str())
        .chain(estimates.iter().map(|e| e.metric.as_str()))
        .collect();
    for m in metrics {
        let dropped = |w: u64| {
            performance.iter().any(|c| {
                c.window == w && c.feature == m && c.detector == "performance_change" && c.drifted
            })
        };
        let mut realised: Vec<LinePoint> = performance
            .iter()
            .filter(|c| c.feature == m && c.detector == "performance")
            .filter_map(|c| {
                Some(LinePoint {
                    time_ns: *start.get(&c.window)?,
                    value: c.statistic?,
                    band: None,
                    marked: dropped(c.window),
                })
            })
            .collect();
        let mut estimated: Vec<LinePoint> = estimates
            .iter()
            .filter(|e| e.metric == m)
            .filter_map(|e| {
                Some(LinePoint {
                    time_ns: *start.get(&e.window)?,
                    value: e.value,
                    band: e.band,
                    marked: e.dropped,
                })
            })
            .collect();
        realised.sort_by_key(|p| p.time_ns);
        estimated.sort_by_key(|p| p.time_ns);
        let lines = out.entry(m.to_owned()).or_default();
        if !realised.is_empty() {
            lines.push(Line {
                name: "realised".into(),
                class: "realised",
                points: realised,
            });
        }
        if !estimated.is_empty() {
            lines.push(Line {
                name: "estimated (CBPE, ±3 SE)".into(),
                class: "estimated",
                points: estimated,
            });
        }
    }
    out.retain(|_, l| !l.is_empty());
    out
}

/// The window's last event id, for reading its values.
fn window_end(
    c: &duckdb::Connection,
    model: &str,
    version: &str,
    first_event_id: u64,
) -> duckdb::Result<Option<u64>> {
    c.query_row(
        "SELECT max(last_event_id) FROM detections WHERE model = ? AND version = ? AND first_event_id = ?",
        duckdb::params![model, version, first_event_id],
        |r| r.get(0),
    )
}

/// A cell's histograms: the feature in the baseline and in the window.
struct Compared {
    feature: String,
    reference: Option<histogram::Values>,
    current: histogram::Values,
}

fn compared(
    c: &duckdb::Connection,
    model: &str,
    version: &str,
    window: u64,
    feature: &str,
) -> anyhow::Result<Option<Compared>> {
    let Some(last) = window_end(c, model, version, window)? else {
        return Ok(None);
    };
    let reference = histogram::reference(c, model, version, feature)?;
    let numeric = reference
        .as_ref()
        .map(|r| matches!(r, histogram::Values::Numeric { .. }));
    let current = histogram::current(c, model, version, feature, (window, last), numeric)?;
    Ok(Some(Compared {
        feature: feature.to_owned(),
        reference,
        current,
    }))
}

/// A row of window, feature, detector, test, statistic, p, corrected p, effect, drifted and
/// verdict.
fn cell_of(r: &duckdb::Row) -> duckdb::Result<Cell> {
    Ok(Cell {
        window: r.get(0)?,
        feature: r.get(1)?,
        detector: r.get(2)?,
        test: r.get(3)?,
        statistic: r.get(4)?,
        p_value: r.get(5)?,
        p_corrected: r.get(6)?,
        effect: r.get(7)?,
        drifted: r.get(8)?,
        verdict: r.get(9)?,
    })
}

/// Every finding of one window.
fn window_findings(
    c: &duckdb::Connection,
    model: &str,
    version: &str,
    first_event_id: u64,
) -> duckdb::Result<Vec<Cell>> {
    let mut stmt = c.prepare(
        "SELECT first_event_id, coalesce(feature, ''), detector, test, statistic, p_value, p_value_corrected, \
         effect_size, drifted, verdict FROM detections WHERE model = ? AND version = ? AND first_event_id = ? \
         ORDER BY detector, feature, time",
    )?;
    stmt.query_map(duckdb::params![model, version, first_event_id], cell_of)?
        .collect()
}

/// The heatmap shade of a drift verdict: 0 (p ≥ 0.5) to 4 (p < 0.001), `drifted` apart.
fn shade(cell: &Cell) -> &'static str {
    if cell.drifted {
        return "drifted";
    }
    match cell.p_corrected.or(cell.p_value) {
        None => "none",
        Some(p) if p < 0.001 => "p4",
        Some(p) if p < 0.01 => "p3",
        Some(p) if p < 0.05 => "p2",
        Some(p) if p < 0.5 => "p1",
        Some(_) => "p0",
    }
}

fn title(cell: &Cell) -> String {
    let mut t = format!("{} · {}", cell.feature, cell.verdict);
    if let Some(test) = &cell.test {
        t.push_str(&format!(" · {test}"));
    }
    if let Some(s) = cell.statistic {
        t.push_str(&format!(" statistic {}", number(s)));
    }
    if let Some(p) = cell.p_corrected.or(cell.p_value) {
        t.push_str(&format!(" p {}", number(p)));
    }
    t
}

/// A feature × window grid of one detector's verdicts; `features` are the rows.
fn heatmap(
    caption: &str,
    kind: &str,
    base: &str,
    windows: &[Window],
    features: &[&String],
    at: &BTreeMap<(u64, &str), &Cell>,
) -> Markup {
    let when = |w: &Window| w.start_ns.map(page::time).unwrap_or_default();
    html! {
        div.scroll {
            table.heatmap data-heatmap=(kind) {
                caption { (caption) }
                thead {
                    tr {
                        th scope="col" { "Feature" }
                        @for (i, w) in windows.iter().enumerate() {
                            th scope="col" title=(when(w)) { (i + 1) }
                        }
                    }
                }
                tbody {
                    @for f in features {
                        tr {
                            th scope="row" { (f) }
                            @for w in windows {
                                @match at.get(&(w.first_event_id, f.as_str())) {
                                    Some(cell) => {
                                        td class={ "cell " (shade(cell)) } data-feature=(f) data-drifted=(cell.drifted)
                                            data-window-start=[w.start_ns] data-window-end=[w.end_ns] data-verdict=(cell.verdict) {
                                            a href={ (base) "&" (page::query(&[("window", &w.first_event_id.to_string()), ("feature", f)])) "#window" } title=(title(cell)) {
                                                @if cell.drifted { "■" } @else { "·" }
                                            }
                                        }
                                    }
                                    None => { td.cell.none { "" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn page(state: &UiState, name: &str, q: &ModelQuery) -> anyhow::Result<Rendered> {
    let wanted = q.version.clone();
    let model = name.to_owned();
    let window = q.window;
    let feature = q.feature.clone();
    let found = state.store.read(move |c| {
        let versions = versions(c, &model)?;
        let statuses = version_statuses(&*latest(state, c)?, Some(&model));
        let Some(version) = wanted.or_else(|| versions.last().map(|v| v.version.clone())) else {
            return Ok(None);
        };
        let placements = timeline::placements(c, &model)?;
        let (windows, cells) = cells(c, &model, &version)?;
        let estimates = match windows.first() {
            Some(w) => estimates(c, &model, &version, w.first_event_id)?,
            None => Vec::new(),
        };
        let detail = match window {
            Some(w) => Some((w, window_findings(c, &model, &version, w)?)),
            None => None,
        };
        let compared = match (window, &feature) {
            (Some(w), Some(f)) => Some(
                compared(c, &model, &version, w, f)
                    .map_err(|e| duckdb::Error::ToSqlConversionFailure(e.into()))?,
            ),
            _ => None,
        };
        Ok(Some((
            versions, statuses, version, placements, windows, cells, estimates, detail, compared,
        )))
    })?;
    let Some((
        versions,
        statuses,
        version,
        placements,
        windows,
        cells,
        estimates,
        detail,
        compared,
    )) = found
    else {
        return Ok(Rendered::NotFound(format!(
            "No model `{name}`: no inference of it is stored."
        )));
    };
    let status_of = |v: &str| {
        statuses
            .get(&(name.to_owned(), v.to_owned()))
            .map_or_else(|| vec![Status::NoData], |s| s.found.clone())
    };
    let base = format!(
        "/models/{}?{}",
        page::segment(name),
        page::query(&[("version", &version)])
    );
    let by = |detector: &str| -> BTreeMap<(u64, &str), &Cell> {
        cells
            .iter()
            .filter(|c| c.detector == detector)
            .map(|c| ((c.window, c.feature.as_str()), c))
            .collect()
    };
    let drift = by("drift");
    let quality = by("data_quality");
    let features: BTreeSet<&String> = cells
        .iter()
        .filter(|c| c.detector == "drift" && c.feature != PREDICTION)
        .map(|c| &c.feature)
        .collect();
    let features: Vec<&String> = features.into_iter().collect();
    let quality_features: Vec<&String> = cells
        .iter()
        .filter(|c| c.detector == "data_quality")
        .map(|c| &c.feature)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let prediction = String::from(PREDICTION);
    let performance: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.detector == "performance" || c.detector == "performance_change")
        .collect();
    let metrics: BTreeSet<&str> = performance.iter().map(|c| c.feature.as_str()).collect();
    let charts = performance_lines(&windows, &performance, &estimates);
    let alerts: Vec<_> = open_alerts(state)
        .into_iter()
        .filter(|a| a.labels.get("model").is_some_and(|m| m == name))
        .collect();
    let report = format!(
        "/api/v1/reports/{}?{}",
        page::segment(name),
        page::query(&[("version", &version), ("format", "html")])
    );
    let body = html! {
        p.links {
            a href=(report) { "Report for version " (version) " (HTML)" } " · "
            a href={ "/audit?" (page::query(&[("model", name)])) } { "Audit entries" }
        }
        section aria-labelledby="versions" {
            h2 id="versions" { "Versions" }
            table {
                thead { tr { th { "Version" } th { "Environments" } th { "First event" } th { "Last event" } th { "Events" } th { "Baseline" } th { "Status" } } }
                tbody {
                    @for v in &versions {
                        tr aria-current=[(v.version == version).then_some("true")] data-version=(v.version) {
                            td { a href={ "/models/" (page::segment(name)) "?" (page::query(&[("version", &v.version)])) } { (v.version) } }
                            td { (v.environments) }
                            td { (page::time(v.first_ns)) }
                            td { (page::time(v.last_ns)) }
                            td { (v.events) }
                            td { (v.baseline.as_deref().map(baseline_words).unwrap_or_else(|| "gathering".into())) }
                            td { @for st in status_of(&v.version) { (badge(st.as_str())) " " } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="deployments" {
            h2 id="deployments" { "Deployments" }
            (timeline::svg(&placements))
        }
        section aria-labelledby="drift" data-live="drift" {
            h2 id="drift" { "Drift of version " (version) }
            @if windows.is_empty() {
                p.empty { "No window of this version has been judged yet: the baseline is still being gathered." }
            } @else {
                p.legend {
                    "Columns are windows, oldest first (hover a column for its start). Colour: corrected p-value — "
                    span class="cell p0" { "·" } " ≥ 0.5, " span class="cell p1" { "·" } " < 0.5, " span class="cell p2" { "·" } " < 0.05, "
                    span class="cell p3" { "·" } " < 0.01, " span class="cell p4" { "·" } " < 0.001, " span class="cell drifted" { "■" } " drifted. Select a cell for the window's findings."
                }
                (heatmap("Input features × windows", "drift", &base, &windows, &features, &drift))
                h3 { "Prediction drift" }
                (heatmap("Prediction × windows", "prediction", &base, &windows, &[&prediction], &drift))
                h3 { "Data quality" }
                (heatmap("Data-quality findings × windows (■: missing, out-of-range, new categories or type mismatches)", "quality", &base, &windows, &quality_features, &quality))
            }
        }
        section aria-labelledby="performance" data-live="performance" {
            h2 id="performance" { "Performance" }
            @for (metric, l) in &charts {
                h3 { (metric) }
                (lines(l, metric))
            }
            @if performance.is_empty() {
                p.empty { "No window has enough labels yet (labels arrive as " code { "ml.feedback" } " events)." }
            } @else {
                div.scroll {
                    table.performance {
                        thead { tr { th { "Window start" } @for m in &metrics { th { (m) } } } }
                        tbody {
                            @for w in windows.iter().rev() {
                                @let row: Vec<&&Cell> = performance.iter().filter(|c| c.window == w.first_event_id).collect();
                                @if !row.is_empty() {
                                    tr {
                                        td { a href={ (base) "&window=" (w.first_event_id) "#window" } { (w.start_ns.map(page::time).unwrap_or_default()) } }
                                        @for m in &metrics {
                                            @let measured = row.iter().find(|c| c.feature == *m && c.detector == "performance");
                                            @let change = row.iter().find(|c| c.feature == *m && c.detector == "performance_change");
                                            td class=[change.filter(|c| c.drifted).map(|_| "degraded")] {
                                                @if let Some(c) = measured { (c.statistic.map(number).unwrap_or_default()) }
                                                @if let Some(c) = change { " " (badge(if c.drifted { "degraded" } else { "ok" })) }
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
        @if let Some((w, findings)) = &detail {
            section aria-labelledby="window" {
                h2 id="window" { "Window from event " (w) }
                @match &compared {
                    Some(Some(Compared { feature, reference: Some(r), current })) => {
                        h3 { (feature) ": reference and current" }
                        (histogram::svg(feature, r, current))
                    }
                    Some(Some(Compared { feature, reference: None, current })) => {
                        p.empty { "Version " (version) " has no stored baseline column " code { (feature) } " to compare with; its values in this window:" }
                        (histogram::svg(feature, &current.empty_like(), current))
                    }
                    Some(None) => { p.empty { "No window starts at event " (w) "." } }
                    None => {}
                }
                table {
                    thead { tr { th { "Detector" } th { "Feature" } th { "Test" } th { "Statistic" } th { "p" } th { "p corrected" } th { "Effect" } th { "Verdict" } } }
                    tbody {
                        @for f in findings {
                            tr class=[f.drifted.then_some("flagged")] {
                                td { (f.detector) } td { (f.feature) } td { (f.test.as_deref().unwrap_or("")) }
                                td { (f.statistic.map(number).unwrap_or_default()) }
                                td { (f.p_value.map(number).unwrap_or_default()) }
                                td { (f.p_corrected.map(number).unwrap_or_default()) }
                                td { (f.effect.map(number).unwrap_or_default()) }
                                td { @if f.drifted { strong { (f.verdict) } } @else { (f.verdict) } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="model-alerts" data-live="alerts" {
            h2 id="model-alerts" { "Open alerts" }
            (super::alerts::table(&alerts))
        }
    };
    Ok(Rendered::Page(page::frame(
        &format!("Model {name}"),
        Nav::Fleet,
        body,
    )))
}

/// The baseline's origin (`detection_baselines.origin`) in words.
fn baseline_words(origin: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(origin) {
        Ok(serde_json::Value::String(s)) if s == "first_events" => "its first events".into(),
        Ok(v) => match v.get("previous_version").and_then(|p| p.as_str()) {
            Some(p) => format!("version {p}'s"),
            None => v.to_string(),
        },
        Err(_) => origin.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(p: Option<f64>, drifted: bool) -> Cell {
        Cell {
            window: 1,
            feature: "torque".into(),
            detector: "drift".into(),
            test: Some("ks".into()),
            statistic: Some(0.2),
            p_value: p,
            p_corrected: p,
            effect: None,
            drifted,
            verdict: if drifted { "drift" } else { "no_drift" }.into(),
        }
    }

    #[test]
    fn shades_follow_the_p_value_and_drift_stands_apart() {
        assert_eq!(shade(&cell(Some(0.9), false)), "p0");
        assert_eq!(shade(&cell(Some(0.02), false)), "p2");
        assert_eq!(shade(&cell(Some(0.0001), false)), "p4");
        assert_eq!(shade(&cell(Some(0.9), true)), "drifted");
        assert_eq!(shade(&cell(None, false)), "none");
        assert!(title(&cell(Some(0.02), false)).contains("p 0.02"));
    }

    #[test]
    fn baselines_in_words() {
        assert_eq!(baseline_words("\"first_events\""), "its first events");
        assert_eq!(
            baseline_words(r#"{"previous_version":"1.0.0"}"#),
            "version 1.0.0's"
        );
    }
}
