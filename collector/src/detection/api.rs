//! `GET /api/v1/models` (models, versions, environments, first and last seen, event counts,
//! windows decided) and `GET /api/v1/models/{name}/detections?since=&until=&feature=&version=&detector=`
//! (the detections table as a JSON list, newest first).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use duckdb::types::Value;
use serde::Deserialize;
use serde_json::json;

use crate::store::Store;

/// Most rows one detections request returns.
const MAX_ROWS: usize = 10_000;

pub fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route("/api/v1/models", get(models))
        .route("/api/v1/models/{name}/detections", get(detections))
        .with_state(store)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn models(State(store): State<Arc<Store>>) -> Response {
    let rows = tokio::task::spawn_blocking(move || {
        store.read(|c| {
            let mut stmt = c.prepare(
                "SELECT i.model, i.version, string_agg(DISTINCT r.environment, chr(31) ORDER BY r.environment), \
                 epoch_ns(min(i.time)), epoch_ns(max(i.time)), count(*), \
                 (SELECT count(*) FROM detection_windows w WHERE w.model = i.model AND w.version = i.version) \
                 FROM inferences i LEFT JOIN resources r ON r.resource_id = i.resource_id \
                 GROUP BY i.model, i.version ORDER BY i.model, i.version",
            )?;
            let rows = stmt.query_map([], |r| {
                let envs: Option<String> = r.get(2)?;
                Ok(json!({
                    "model": r.get::<_, String>(0)?,
                    "version": r.get::<_, String>(1)?,
                    "environments": envs.map(|e| e.split('\u{1f}').map(str::to_owned).collect::<Vec<_>>()).unwrap_or_default(),
                    "first_seen": rfc3339(r.get(3)?),
                    "last_seen": rfc3339(r.get(4)?),
                    "events": r.get::<_, u64>(5)?,
                    "windows": r.get::<_, u64>(6)?,
                }))
            })?;
            rows.collect::<duckdb::Result<Vec<_>>>()
        })
    })
    .await;
    let versions = match rows {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    // Group versions under their model.
    let mut models: Vec<serde_json::Value> = Vec::new();
    for v in versions {
        let name = v["model"].clone();
        if models.last().is_none_or(|m| m["model"] != name) {
            models.push(json!({ "model": name, "versions": [] }));
        }
        if let Some(list) = models.last_mut().and_then(|m| m["versions"].as_array_mut()) {
            let mut v = v;
            if let Some(o) = v.as_object_mut() {
                o.remove("model");
            }
            list.push(v);
        }
    }
    Json(json!({ "models": models })).into_response()
}

fn rfc3339(ns: Option<i64>) -> Option<String> {
    let ns = ns?;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(u64::try_from(ns).ok()?);
    Some(humantime::format_rfc3339_nanos(t).to_string())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectionQuery {
    /// RFC 3339 time: only results decided at or after it.
    since: Option<String>,
    /// RFC 3339 time: only results decided before it.
    until: Option<String>,
    feature: Option<String>,
    version: Option<String>,
    detector: Option<String>,
}

fn parse_time(name: &str, v: &Option<String>) -> Result<Option<i64>, Box<Response>> {
    let Some(s) = v else { return Ok(None) };
    let t = humantime::parse_rfc3339_weak(s).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("{name}={s:?}: {e}; expected e.g. 2026-01-31T08:00:00Z"),
        )
    })?;
    let ns = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    Ok(Some(ns))
}

async fn detections(
    State(store): State<Arc<Store>>,
    Path(name): Path<String>,
    query: Result<Query<DetectionQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let since = match parse_time("since", &q.since) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let until = match parse_time("until", &q.until) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let mut sql = String::from(
        "SELECT epoch_ns(time), epoch_ns(window_start), epoch_ns(window_end), first_event_id, last_event_id, version, feature, \
         detector, test, statistic, p_value, p_value_corrected, effect_size, threshold, drifted, verdict, decided_by, \
         CAST(details AS VARCHAR) FROM detections WHERE model = ?",
    );
    let mut params: Vec<Value> = vec![Value::Text(name.clone())];
    for (cond, v) in [
        ("time >= make_timestamp_ns(?)", since.map(Value::BigInt)),
        ("time < make_timestamp_ns(?)", until.map(Value::BigInt)),
        ("feature = ?", q.feature.clone().map(Value::Text)),
        ("version = ?", q.version.clone().map(Value::Text)),
        ("detector = ?", q.detector.clone().map(Value::Text)),
    ] {
        if let Some(v) = v {
            sql.push_str(" AND ");
            sql.push_str(cond);
            params.push(v);
        }
    }
    sql.push_str(&format!(" ORDER BY time DESC, feature LIMIT {MAX_ROWS}"));
    let rows = tokio::task::spawn_blocking(move || {
        store.read(|c| {
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(duckdb::params_from_iter(params.iter()), |r| {
                let details: Option<String> = r.get(17)?;
                Ok(json!({
                    "time": rfc3339(r.get(0)?),
                    "window_start": rfc3339(r.get(1)?),
                    "window_end": rfc3339(r.get(2)?),
                    "first_event_id": r.get::<_, Option<u64>>(3)?,
                    "last_event_id": r.get::<_, Option<u64>>(4)?,
                    "model": name,
                    "version": r.get::<_, Option<String>>(5)?,
                    "feature": r.get::<_, Option<String>>(6)?,
                    "detector": r.get::<_, String>(7)?,
                    "test": r.get::<_, Option<String>>(8)?,
                    "statistic": r.get::<_, Option<f64>>(9)?,
                    "p_value": r.get::<_, Option<f64>>(10)?,
                    "p_value_corrected": r.get::<_, Option<f64>>(11)?,
                    "effect_size": r.get::<_, Option<f64>>(12)?,
                    "threshold": r.get::<_, Option<f64>>(13)?,
                    "drifted": r.get::<_, bool>(14)?,
                    "verdict": r.get::<_, String>(15)?,
                    "decided_by": r.get::<_, Option<String>>(16)?,
                    "details": details.and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok()),
                }))
            })?;
            rows.collect::<duckdb::Result<Vec<_>>>()
        })
    })
    .await;
    match rows {
        Ok(Ok(list)) => Json(list).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
