//! `/machines/{id}`: a machine's metric series (everything stored with its `hw.id`) with their
//! newest values, its control charts drawn as the detection engine keeps them (limits from the
//! series' first reference points, every later point charted), and its machine-health verdicts.

use maud::html;
use millwatch_detectors::charts::{ControlChart, Limits, SigmaEstimator};

use super::chart::{Plotted, svg};
use super::fleet::open_alerts;
use super::page::{self, Nav, badge, number};
use super::{Rendered, UiState};
use crate::detection::config::HealthCheck;
use crate::detection::machine_health::attribute_matches;

/// Points of a series read to draw its chart, at most (the newest are drawn).
const CHART_POINTS: usize = 20_000;
/// Points drawn.
const DRAWN: usize = 360;

struct Series {
    id: u64,
    name: String,
    unit: String,
    attributes: serde_json::Value,
    last: Option<(i64, f64)>,
}

struct Verdict {
    time_ns: i64,
    series: String,
    rule: String,
    statistic: Option<f64>,
    firing: bool,
}

fn series(c: &duckdb::Connection, machine: &str) -> duckdb::Result<Vec<Series>> {
    let mut stmt = c.prepare(
        "WITH s AS (SELECT series_id, name, coalesce(unit, '') AS unit, CAST(attributes AS VARCHAR) AS attrs \
         FROM metric_series WHERE json_extract_string(attributes, '$.\"hw.id\"') = ?) \
         SELECT s.series_id, s.name, s.unit, s.attrs, epoch_ns(max(p.time)), arg_max(p.value, p.time) \
         FROM s LEFT JOIN metric_points p ON p.series_id = s.series_id GROUP BY ALL ORDER BY s.name, s.attrs",
    )?;
    let rows = stmt.query_map([machine], |r| {
        let attrs: Option<String> = r.get(3)?;
        let t: Option<i64> = r.get(4)?;
        let v: Option<f64> = r.get(5)?;
        Ok(Series {
            id: r.get(0)?,
            name: r.get(1)?,
            unit: r.get(2)?,
            attributes: attrs
                .and_then(|a| serde_json::from_str(&a).ok())
                .unwrap_or_default(),
            last: t.zip(v),
        })
    })?;
    rows.collect()
}

/// The series' points in time order (the first [`CHART_POINTS`]).
fn points(c: &duckdb::Connection, series_id: u64) -> duckdb::Result<Vec<(i64, f64)>> {
    let mut stmt = c.prepare(&format!(
        "SELECT epoch_ns(time), value FROM metric_points WHERE series_id = ? AND value IS NOT NULL \
         AND isfinite(value) ORDER BY time LIMIT {CHART_POINTS}"
    ))?;
    stmt.query_map([series_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

fn verdicts(c: &duckdb::Connection, machine: &str) -> duckdb::Result<Vec<Verdict>> {
    let mut stmt = c.prepare(
        "SELECT epoch_ns(time), feature, coalesce(json_extract_string(details, '$.rule'), test), statistic, drifted \
         FROM detections WHERE detector = 'machine_health' AND (feature = ? OR feature LIKE ? OR feature LIKE ?) \
         ORDER BY time DESC LIMIT 50",
    )?;
    let exact = format!("hw.id={machine}");
    let first = format!("hw.id={machine},%");
    let inner = format!("%,hw.id={machine},%");
    let rows = stmt.query_map([&exact, &first, &inner], |r| {
        Ok(Verdict {
            time_ns: r.get(0)?,
            series: r.get(1)?,
            rule: r.get(2)?,
            statistic: r.get(3)?,
            firing: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// The chart a rule keeps for these points: limits from the first `reference` points, every
/// later point plotted. `None` while the reference is incomplete or refused.
pub fn replay(
    chart: &millwatch_detectors::charts::ChartConfig,
    reference: usize,
    points: &[(i64, f64)],
) -> Option<(f64, Vec<Plotted>)> {
    if points.len() <= reference {
        return None;
    }
    let values: Vec<f64> = points[..reference].iter().map(|(_, v)| *v).collect();
    let limits = Limits::from_reference(&values, SigmaEstimator::MovingRange).ok()?;
    let mut built = chart.build(limits).ok()?;
    let plotted = points[reference..]
        .iter()
        .filter_map(|(t, v)| {
            let p = built.update(*v).ok()?;
            Some(Plotted {
                time_ns: *t,
                statistic: p.statistic,
                lower: p.lower_limit,
                upper: p.upper_limit,
                violations: p
                    .violations
                    .iter()
                    .filter_map(|x| serde_json::to_value(x.rule).ok())
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            })
        })
        .collect();
    Some((limits.center, plotted))
}

fn attributes_text(a: &serde_json::Value) -> String {
    a.as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| k.as_str() != "hw.id")
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

pub fn page(state: &UiState, id: &str) -> anyhow::Result<Rendered> {
    let machine = id.to_owned();
    let rules = state.health_rules.clone();
    let found = state.store.read(move |c| {
        let series = series(c, &machine)?;
        let mut charts = Vec::new();
        for rule in &rules {
            let HealthCheck::Chart {
                chart,
                reference_points,
            } = &rule.check
            else {
                continue;
            };
            for s in series.iter().filter(|s| {
                s.name == rule.metric && attribute_matches(&s.attributes, &rule.attributes)
            }) {
                let pts = points(c, s.id)?;
                let replayed = replay(chart, reference_points.get(), &pts);
                charts.push((
                    rule.name.clone(),
                    s.unit.clone(),
                    attributes_text(&s.attributes),
                    replayed,
                    reference_points.get(),
                    pts.len(),
                ));
            }
        }
        let verdicts = verdicts(c, &machine)?;
        Ok((series, charts, verdicts))
    })?;
    let (series, charts, verdicts) = found;
    if series.is_empty() {
        return Ok(Rendered::NotFound(format!(
            "No machine `{id}`: no metric with hw.id={id} is stored."
        )));
    }
    let alerts: Vec<_> = open_alerts(state)
        .into_iter()
        .filter(|a| {
            a.labels
                .get("feature")
                .and_then(|f| super::fleet::machine_of(f))
                == Some(id)
        })
        .collect();
    let body = html! {
        section aria-labelledby="charts" data-live="charts" {
            h2 id="charts" { "Control charts" }
            @if charts.is_empty() {
                p.empty { "No control-chart rule (detection.machine_health, kind: chart) covers this machine's series." }
            }
            @for (rule, unit, attrs, replayed, reference, count) in &charts {
                h3 { (rule) " · " (attrs) }
                @match replayed {
                    Some((center, plotted)) => {
                        @let shown = &plotted[plotted.len().saturating_sub(DRAWN)..];
                        @let now = shown.last().is_some_and(|p| !p.violations.is_empty());
                        p { "Now: " (badge(if now { "out of control" } else { "in control" })) " · limits from the first " (reference) " points · showing the newest " (shown.len()) " of " (plotted.len()) }
                        (svg(shown, *center, unit, rule))
                    }
                    None => p.empty { "Gathering the reference: " (count) " of " (reference) " points." }
                }
            }
        }
        section aria-labelledby="latest" data-live="latest" {
            h2 id="latest" { "Latest readings" }
            table {
                thead { tr { th { "Metric" } th { "Attributes" } th { "Value" } th { "Unit" } th { "At" } } }
                tbody {
                    @for s in &series {
                        tr {
                            td { (s.name) } td { (attributes_text(&s.attributes)) }
                            td.num { (s.last.map(|(_, v)| number(v)).unwrap_or_default()) }
                            td { (s.unit) }
                            td { (s.last.map(|(t, _)| page::time(t)).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="verdicts" data-live="verdicts" {
            h2 id="verdicts" { "Machine-health verdicts" }
            @if verdicts.is_empty() {
                p.empty { "None: no rule has started or stopped firing on this machine." }
            } @else {
                table {
                    thead { tr { th { "At" } th { "Rule" } th { "Series" } th { "Statistic" } th { "Verdict" } } }
                    tbody {
                        @for v in &verdicts {
                            tr class=[v.firing.then_some("flagged")] {
                                td { (page::time(v.time_ns)) } td { (v.rule) } td { (v.series) }
                                td.num { (v.statistic.map(number).unwrap_or_default()) }
                                td { (badge(if v.firing { "out of control" } else { "in control" })) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="machine-alerts" data-live="machine-alerts" {
            h2 id="machine-alerts" { "Open alerts" }
            (super::alerts::table(&alerts))
        }
    };
    Ok(Rendered::Page(page::frame(
        &format!("Machine {id}"),
        Nav::Fleet,
        body,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use millwatch_detectors::charts::{ChartConfig, Rule, ShewhartConfig};

    #[test]
    fn the_replayed_chart_takes_its_limits_from_the_reference_and_flags_a_jump() {
        let chart = ChartConfig::Shewhart(ShewhartConfig {
            rules: vec![Rule::OneBeyond3Sigma],
        });
        let mut pts: Vec<(i64, f64)> = (0..40)
            .map(|i| (i, 10.0 + if i % 2 == 0 { 0.1 } else { -0.1 }))
            .collect();
        pts.push((40, 20.0));
        assert!(replay(&chart, 50, &pts).is_none(), "reference incomplete");
        let (center, plotted) = replay(&chart, 30, &pts).expect("charted");
        assert!((center - 10.0).abs() < 0.01);
        assert_eq!(plotted.len(), 11);
        assert_eq!(
            plotted.iter().filter(|p| !p.violations.is_empty()).count(),
            1
        );
        assert!(
            plotted[10]
                .violations
                .contains(&"one_beyond3_sigma".to_owned())
        );
    }
}
