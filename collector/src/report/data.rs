//! What a model's report holds, read from the store: versions and deployments, per-feature drift
//! per window (drifted features first), prediction drift, realised performance, data quality,
//! control-chart violations on the hosts the model ran on, incidents, and the audit entries
//! with the chain's verification. Every number of every format comes from here.

use std::collections::BTreeMap;

use duckdb::Connection;
use duckdb::types::Value as Db;
use serde::Serialize;
use serde_json::Value;

use crate::audit::chain::{self, Verification};
use crate::audit::entry::rfc3339;
use crate::audit::query::{self, Filter};

/// Which report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    pub model: String,
    pub version: Option<String>,
    pub environment: Option<String>,
    /// ns since the epoch: from (inclusive) and until (exclusive).
    pub since: Option<i64>,
    pub until: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub model: String,
    pub version: Option<String>,
    pub environment: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub generated_at: String,
    pub versions: Vec<VersionRow>,
    pub placements: Vec<Placement>,
    pub deployments: Vec<Value>,
    /// Per feature, drifted ones first.
    pub feature_drift: Vec<FeatureDrift>,
    pub prediction_drift: Vec<Window>,
    pub performance: Vec<Window>,
    pub data_quality: Vec<FeatureDrift>,
    pub control_chart_violations: Vec<Window>,
    pub incidents: Vec<Value>,
    pub audit: Vec<Value>,
    pub audit_verification: Verification,
}

/// A version's inference events in the period.
#[derive(Debug, Clone, Serialize)]
pub struct VersionRow {
    pub version: String,
    pub events: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub environments: Vec<String>,
}

/// Where a version ran (from the registry: all time).
#[derive(Debug, Clone, Serialize)]
pub struct Placement {
    pub version: String,
    pub environment: String,
    pub host: String,
    pub site: String,
    pub line: String,
    pub first_seen: String,
    pub last_seen: String,
    pub events: u64,
}

/// One detector result for one window.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub time: String,
    pub version: String,
    pub feature: String,
    pub detector: String,
    pub test: String,
    pub window_start: Option<String>,
    pub window_end: Option<String>,
    pub statistic: Option<f64>,
    pub p_value: Option<f64>,
    pub threshold: Option<f64>,
    pub drifted: bool,
    pub verdict: String,
}

/// A feature's results over the period.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureDrift {
    pub feature: String,
    pub windows: u64,
    pub drifted_windows: u64,
    pub max_statistic: Option<f64>,
    pub results: Vec<Window>,
}

/// The prediction's name among the detections' features.
const PREDICTION: &str = "ml.prediction";

pub fn build(conn: &Connection, scope: &Scope, now: i64) -> duckdb::Result<Report> {
    let versions = versions(conn, scope)?;
    let placements = placements(conn, scope)?;
    let hosts: Vec<String> = placements
        .iter()
        .map(|p| p.host.clone())
        .filter(|h| !h.is_empty())
        .collect();
    let prediction = || vec![Db::Text(PREDICTION.into())];
    let drift = windows(
        conn,
        scope,
        "detector = 'drift' AND feature <> ?",
        prediction(),
    )?;
    let prediction_drift = windows(
        conn,
        scope,
        "detector = 'drift' AND feature = ?",
        prediction(),
    )?;
    let performance = windows(
        conn,
        scope,
        "detector IN ('performance', 'performance_change')",
        Vec::new(),
    )?;
    let quality = windows(conn, scope, "detector = 'data_quality'", Vec::new())?;
    let control = control_chart(conn, scope, &hosts)?;
    let audit_filter = Filter {
        since: scope.since,
        until: scope.until,
        model: Some(scope.model.clone()),
        ..Filter::default()
    };
    let audit = query::entries(conn, &audit_filter)?;
    let of = |prefixes: &[&str]| -> Vec<Value> {
        audit
            .iter()
            .filter(|e| prefixes.iter().any(|p| e.action.starts_with(p)))
            .filter(|e| scope_matches(scope, e))
            .map(|e| e.view())
            .collect()
    };
    Ok(Report {
        model: scope.model.clone(),
        version: scope.version.clone(),
        environment: scope.environment.clone(),
        since: scope.since.map(rfc3339),
        until: scope.until.map(rfc3339),
        generated_at: rfc3339(now),
        versions,
        placements,
        deployments: of(&["deployment"]),
        feature_drift: by_feature(drift),
        prediction_drift,
        performance,
        data_quality: by_feature(quality),
        control_chart_violations: control,
        incidents: of(&["alert.", "notification.", "silence."]),
        audit: audit.iter().map(|e| e.view()).collect(),
        audit_verification: chain::verify(conn, None)?,
    })
}

/// Whether an entry about a version or environment belongs to the report's.
fn scope_matches(scope: &Scope, e: &crate::audit::Entry) -> bool {
    let object: Value = serde_json::from_str(&e.object).unwrap_or(Value::Null);
    let fits = |want: &Option<String>, key: &str| match (want, object[key].as_str()) {
        (Some(w), Some(have)) => w == have,
        _ => true,
    };
    fits(&scope.version, "version") && fits(&scope.environment, "environment")
}

/// The time conditions and their parameters for `column`.
fn period(scope: &Scope, column: &str, params: &mut Vec<Db>) -> String {
    let mut sql = String::new();
    if let Some(t) = scope.since {
        sql.push_str(&format!(" AND {column} >= make_timestamp_ns(?)"));
        params.push(Db::BigInt(t));
    }
    if let Some(t) = scope.until {
        sql.push_str(&format!(" AND {column} < make_timestamp_ns(?)"));
        params.push(Db::BigInt(t));
    }
    sql
}

fn versions(conn: &Connection, scope: &Scope) -> duckdb::Result<Vec<VersionRow>> {
    let mut params = vec![Db::Text(scope.model.clone())];
    let mut sql = String::from(
        "SELECT i.version, count(*), epoch_ns(min(i.time)), epoch_ns(max(i.time)), \
         string_agg(DISTINCT coalesce(r.environment, ''), chr(31) ORDER BY coalesce(r.environment, '')) \
         FROM inferences i LEFT JOIN resources r ON r.resource_id = i.resource_id WHERE i.model = ?",
    );
    if let Some(v) = &scope.version {
        sql.push_str(" AND i.version = ?");
        params.push(Db::Text(v.clone()));
    }
    if let Some(e) = &scope.environment {
        sql.push_str(" AND r.environment = ?");
        params.push(Db::Text(e.clone()));
    }
    sql.push_str(&period(scope, "i.time", &mut params));
    sql.push_str(" GROUP BY i.version ORDER BY min(i.time), i.version");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(duckdb::params_from_iter(params), |r| {
        let envs: String = r.get(4)?;
        Ok(VersionRow {
            version: r.get(0)?,
            events: r.get(1)?,
            first_seen: rfc3339(r.get(2)?),
            last_seen: rfc3339(r.get(3)?),
            environments: envs.split('\u{1f}').map(str::to_owned).collect(),
        })
    });
    rows?.collect()
}

fn placements(conn: &Connection, scope: &Scope) -> duckdb::Result<Vec<Placement>> {
    let mut params = vec![Db::Text(scope.model.clone())];
    let mut sql = String::from(
        "SELECT version, environment, host, site, line, epoch_ns(min(first_seen)), epoch_ns(max(last_seen)), sum(events)::UBIGINT \
         FROM model_registry WHERE model = ?",
    );
    if let Some(v) = &scope.version {
        sql.push_str(" AND version = ?");
        params.push(Db::Text(v.clone()));
    }
    if let Some(e) = &scope.environment {
        sql.push_str(" AND environment = ?");
        params.push(Db::Text(e.clone()));
    }
    sql.push_str(" GROUP BY ALL ORDER BY 6, 1, 2, 3");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(duckdb::params_from_iter(params), |r| {
        Ok(Placement {
            version: r.get(0)?,
            environment: r.get(1)?,
            host: r.get(2)?,
            site: r.get(3)?,
            line: r.get(4)?,
            first_seen: rfc3339(r.get(5)?),
            last_seen: rfc3339(r.get(6)?),
            events: r.get(7)?,
        })
    });
    rows?.collect()
}

const WINDOW_COLUMNS: &str = "epoch_ns(time), coalesce(version, ''), coalesce(feature, ''), detector, \
     coalesce(test, ''), epoch_ns(window_start), epoch_ns(window_end), statistic, p_value, threshold, drifted, verdict";

fn window(r: &duckdb::Row<'_>) -> duckdb::Result<Window> {
    Ok(Window {
        time: rfc3339(r.get(0)?),
        version: r.get(1)?,
        feature: r.get(2)?,
        detector: r.get(3)?,
        test: r.get(4)?,
        window_start: r.get::<_, Option<i64>>(5)?.map(rfc3339),
        window_end: r.get::<_, Option<i64>>(6)?.map(rfc3339),
        statistic: r.get(7)?,
        p_value: r.get(8)?,
        threshold: r.get(9)?,
        drifted: r.get(10)?,
        verdict: r.get(11)?,
    })
}

/// The model's detections matching `condition` (with `params` for its placeholders), by window
/// time. Windows are placed in the period by their decision time.
fn windows(
    conn: &Connection,
    scope: &Scope,
    condition: &str,
    mut params: Vec<Db>,
) -> duckdb::Result<Vec<Window>> {
    params.push(Db::Text(scope.model.clone()));
    let mut sql =
        format!("SELECT {WINDOW_COLUMNS} FROM detections WHERE {condition} AND model = ?");
    if let Some(v) = &scope.version {
        sql.push_str(" AND version = ?");
        params.push(Db::Text(v.clone()));
    }
    sql.push_str(&period(scope, "time", &mut params));
    sql.push_str(" ORDER BY time, version, feature, test");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(duckdb::params_from_iter(params), window);
    rows?.collect()
}

/// Machine-health results that fired on a host the model ran on.
fn control_chart(
    conn: &Connection,
    scope: &Scope,
    hosts: &[String],
) -> duckdb::Result<Vec<Window>> {
    if hosts.is_empty() {
        return Ok(Vec::new());
    }
    let mut params: Vec<Db> = Vec::new();
    let marks = vec!["?"; hosts.len()].join(", ");
    params.extend(hosts.iter().map(|h| Db::Text(h.clone())));
    let mut sql = format!(
        "SELECT {} FROM detections d WHERE detector = 'machine_health' AND drifted \
         AND CAST(json_extract(details, '$.series_id') AS UBIGINT) IN (SELECT s.series_id FROM metric_series s \
         JOIN resources r ON r.resource_id = s.resource_id WHERE r.host_name IN ({marks}))",
        WINDOW_COLUMNS
    );
    sql.push_str(&period(scope, "time", &mut params));
    sql.push_str(" ORDER BY time, feature");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(duckdb::params_from_iter(params), window);
    rows?.collect()
}

/// Results grouped by feature: the features with the most drifted windows first, then by name.
fn by_feature(rows: Vec<Window>) -> Vec<FeatureDrift> {
    let mut map: BTreeMap<String, Vec<Window>> = BTreeMap::new();
    for w in rows {
        map.entry(w.feature.clone()).or_default().push(w);
    }
    let mut out: Vec<FeatureDrift> = map
        .into_iter()
        .map(|(feature, results)| {
            let windows = results
                .iter()
                .map(|w| (&w.time, &w.version))
                .collect::<std::collections::BTreeSet<_>>()
                .len() as u64;
            let drifted_windows = results
                .iter()
                .filter(|w| w.drifted)
                .map(|w| (&w.time, &w.version))
                .collect::<std::collections::BTreeSet<_>>()
                .len() as u64;
            let max_statistic = results
                .iter()
                .filter_map(|w| w.statistic)
                .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
            FeatureDrift {
                feature,
                windows,
                drifted_windows,
                max_statistic,
                results,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.drifted_windows
            .cmp(&a.drifted_windows)
            .then_with(|| a.feature.cmp(&b.feature))
    });
    out
}
