//! Machine-health rules over stored metric points: thresholds with hysteresis, rate of change,
//! control charts (Shewhart, EWMA, CUSUM from `millwatch_detectors::charts`) with limits from a
//! reference period, and absence. Each matching series keeps its own state, read forward by the
//! time of its last point; a finding is written when a rule starts or stops firing.

use std::collections::BTreeMap;

use duckdb::{Connection, params};
use millwatch_detectors::charts::{Chart, ChartPoint, ControlChart, Limits, SigmaEstimator};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::{HealthCheck, HealthRule};
use super::results::{Finding, Gauges, Scope};
use super::{DetectionError, Result};

/// Most points read per series and pass.
const POINTS_PER_PASS: usize = 100_000;

/// One rule on one series.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SeriesState {
    series: String,
    /// Time of the newest point taken.
    last_ns: Option<i64>,
    last_value: Option<f64>,
    firing: bool,
    /// The chart's reference period while it is being gathered.
    #[serde(default)]
    reference: Vec<f64>,
    #[serde(default)]
    chart: Option<Chart>,
    /// Rules the newest chart point violated.
    #[serde(default)]
    violated: Vec<String>,
}

pub struct MachineHealth {
    rules: Vec<HealthRule>,
    /// Keyed by `rule/series_id`.
    states: BTreeMap<String, SeriesState>,
    gauges: Gauges,
    dirty: bool,
}

fn key(rule: &str, series_id: u64) -> String {
    format!("{rule}/{series_id}")
}

pub(crate) fn attribute_matches(
    attrs: &serde_json::Value,
    want: &BTreeMap<String, String>,
) -> bool {
    want.iter().all(|(k, v)| match attrs.get(k) {
        Some(serde_json::Value::String(s)) => s == v,
        // A number or boolean attribute matches the same value written in the config.
        Some(other) => {
            serde_json::from_str::<serde_json::Value>(v).is_ok_and(|want| want == *other)
        }
        None => false,
    })
}

/// The chart's kind as the configuration names it.
pub(super) fn chart_kind(chart: &Chart) -> &'static str {
    match chart {
        Chart::Shewhart(_) => "shewhart",
        Chart::Ewma(_) => "ewma",
        Chart::Cusum(_) => "cusum",
    }
}

fn series_label(attrs: &serde_json::Value) -> String {
    let mut pairs: Vec<String> = attrs
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    pairs.join(",")
}

impl MachineHealth {
    pub fn new(
        rules: &[HealthRule],
        saved: BTreeMap<String, serde_json::Value>,
        gauges: Gauges,
    ) -> Result<MachineHealth> {
        let mut states = BTreeMap::new();
        for (k, v) in saved {
            let s: SeriesState =
                serde_json::from_value(v).map_err(|e| DetectionError::State(e.to_string()))?;
            states.insert(k, s);
        }
        Ok(MachineHealth {
            rules: rules.to_vec(),
            states,
            gauges,
            dirty: false,
        })
    }

    /// The state to persist.
    pub fn state(&self) -> BTreeMap<String, serde_json::Value> {
        self.states
            .iter()
            .filter_map(|(k, s)| serde_json::to_value(s).ok().map(|v| (k.clone(), v)))
            .collect()
    }

    pub fn dirty(&self) -> bool {
        self.dirty
    }

    pub fn committed(&mut self) {
        self.dirty = false;
    }

    /// Takes the points stored since the last pass; `now_ns` decides absence.
    pub fn pass(&mut self, conn: &Connection, now_ns: i64) -> Result<Vec<(Scope, Finding)>> {
        let mut out = Vec::new();
        let rules = self.rules.clone();
        for rule in &rules {
            let mut stmt = conn.prepare_cached(
                "SELECT series_id, CAST(attributes AS VARCHAR) FROM metric_series WHERE name = ?",
            )?;
            let series: Vec<(u64, Option<String>)> = stmt
                .query_map(params![rule.metric], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<duckdb::Result<_>>()?;
            for (series_id, attrs) in series {
                let attrs: serde_json::Value = attrs
                    .and_then(|a| serde_json::from_str(&a).ok())
                    .unwrap_or(json!({}));
                if !attribute_matches(&attrs, &rule.attributes) {
                    continue;
                }
                let k = key(&rule.name, series_id);
                let mut state = self.states.remove(&k).unwrap_or_else(|| SeriesState {
                    series: series_label(&attrs),
                    ..SeriesState::default()
                });
                let found = self.series_pass(conn, rule, series_id, &mut state, now_ns)?;
                out.extend(found);
                self.states.insert(k, state);
            }
        }
        Ok(out)
    }

    fn series_pass(
        &mut self,
        conn: &Connection,
        rule: &HealthRule,
        series_id: u64,
        state: &mut SeriesState,
        now_ns: i64,
    ) -> Result<Vec<(Scope, Finding)>> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT epoch_ns(time), value FROM metric_points WHERE series_id = ? AND time > make_timestamp_ns(?) \
             AND value IS NOT NULL ORDER BY time LIMIT {POINTS_PER_PASS}"
        ))?;
        let points: Vec<(i64, f64)> = stmt
            .query_map(params![series_id, state.last_ns.unwrap_or(0)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<duckdb::Result<_>>()?;
        let mut out = Vec::new();
        // The newest charted point of the pass (measurement and point), for the chart gauges.
        let mut charted: Option<(f64, ChartPoint)> = None;
        let labels = |rule: &HealthRule, state: &SeriesState| {
            (rule.name.clone(), rule.metric.clone(), state.series.clone())
        };
        for (t, v) in &points {
            if !v.is_finite() {
                continue;
            }
            let before = state.firing;
            let mut finding = None;
            match &rule.check {
                HealthCheck::Threshold {
                    above,
                    below,
                    hysteresis,
                } => {
                    let beyond = above.is_some_and(|a| *v > a) || below.is_some_and(|b| *v < b);
                    let back = above.is_none_or(|a| *v <= a - hysteresis)
                        && below.is_none_or(|b| *v >= b + hysteresis);
                    state.firing = if state.firing { !back } else { beyond };
                    if state.firing != before {
                        finding = Some(Finding {
                            threshold: above.or(*below),
                            ..self.finding(rule, state, series_id, "threshold", *v)
                        });
                    }
                }
                HealthCheck::RateOfChange { max_per_second } => {
                    if let (Some(lt), Some(lv)) = (state.last_ns, state.last_value) {
                        let dt = (*t - lt) as f64 / 1e9;
                        if dt > 0.0 {
                            let rate = (v - lv) / dt;
                            state.firing = rate.abs() > *max_per_second;
                            if state.firing != before {
                                finding = Some(Finding {
                                    threshold: Some(*max_per_second),
                                    ..self.finding(rule, state, series_id, "rate_of_change", rate)
                                });
                            }
                        }
                    }
                }
                HealthCheck::Chart {
                    chart,
                    reference_points,
                } => {
                    if state.chart.is_none() {
                        state.reference.push(*v);
                        if state.reference.len() >= reference_points.get() {
                            let built = Limits::from_reference(
                                &state.reference,
                                SigmaEstimator::MovingRange,
                            )
                            .and_then(|l| chart.build(l));
                            match built {
                                Ok(c) => {
                                    state.chart = Some(c);
                                    state.reference = Vec::new();
                                }
                                Err(e) => {
                                    // A constant or broken reference: gather a new one.
                                    tracing::warn!(rule = %rule.name, series = %state.series, error = %e, "control chart reference refused");
                                    state.reference.clear();
                                }
                            }
                        }
                    } else if let Some(mut c) = state.chart.take() {
                        if let Ok(point) = c.update(*v) {
                            let violated: Vec<String> = point
                                .violations
                                .iter()
                                .filter_map(|x| {
                                    serde_json::to_value(x.rule)
                                        .ok()
                                        .and_then(|r| r.as_str().map(str::to_owned))
                                })
                                .collect();
                            let (name, metric, series) = labels(rule, state);
                            for r in state.violated.iter().filter(|r| !violated.contains(r)) {
                                self.gauges.chart_violation.set(
                                    &[
                                        ("metric", &metric),
                                        ("series", &series),
                                        ("rule", r.as_str()),
                                        ("health_rule", &name),
                                    ],
                                    0.0,
                                );
                            }
                            for r in &violated {
                                self.gauges.chart_violation.set(
                                    &[
                                        ("metric", &metric),
                                        ("series", &series),
                                        ("rule", r.as_str()),
                                        ("health_rule", &name),
                                    ],
                                    1.0,
                                );
                            }
                            state.firing = point.out_of_control();
                            state.violated = violated;
                            if state.firing != before {
                                let mut f = self.finding(
                                    rule,
                                    state,
                                    series_id,
                                    chart_kind(&c),
                                    point.statistic,
                                );
                                f.threshold = Some(if point.statistic >= c.limits().center {
                                    point.upper_limit
                                } else {
                                    point.lower_limit
                                });
                                f.details["violations"] = json!(state.violated);
                                f.details["limits"] = json!(c.limits());
                                finding = Some(f);
                            }
                            charted = Some((*v, point));
                        }
                        state.chart = Some(c);
                    }
                }
                HealthCheck::Absence { .. } => {
                    state.firing = false;
                    if before {
                        finding = Some(self.finding(rule, state, series_id, "absence", *v));
                    }
                }
            }
            state.last_ns = Some(*t);
            state.last_value = Some(*v);
            self.dirty = true;
            if let Some(f) = finding {
                out.push((
                    Scope {
                        window_start_ns: Some(*t),
                        window_end_ns: Some(*t),
                        ..Scope::default()
                    },
                    f,
                ));
            }
        }
        if let HealthCheck::Absence {
            interval,
            intervals,
        } = &rule.check
        {
            let limit = interval.as_nanos() as i64 * intervals.get() as i64;
            if let Some(last) = state.last_ns
                && !state.firing
                && now_ns - last > limit
            {
                state.firing = true;
                self.dirty = true;
                let silent = (now_ns - last) as f64 / 1e9;
                let f = Finding {
                    threshold: Some(limit as f64 / 1e9),
                    ..self.finding(rule, state, series_id, "absence", silent)
                };
                out.push((
                    Scope {
                        window_start_ns: Some(last),
                        window_end_ns: Some(now_ns),
                        ..Scope::default()
                    },
                    f,
                ));
            }
        }
        let (name, metric, series) = labels(rule, state);
        if let (Some((measurement, point)), Some(c)) = (&charted, &state.chart) {
            self.gauges
                .publish_chart((&name, &metric, &series), c, *measurement, point);
        }
        self.gauges.health_alert.set(
            &[("rule", &name), ("metric", &metric), ("series", &series)],
            f64::from(u8::from(state.firing)),
        );
        Ok(out)
    }

    fn finding(
        &self,
        rule: &HealthRule,
        state: &SeriesState,
        series_id: u64,
        test: &str,
        statistic: f64,
    ) -> Finding {
        Finding {
            test: test.to_owned(),
            statistic: Some(statistic),
            drifted: state.firing,
            verdict: if state.firing { "alert" } else { "ok" }.into(),
            details: json!({ "rule": rule.name, "metric": rule.metric, "series_id": series_id }),
            ..Finding::new("machine_health", &state.series)
        }
    }
}
