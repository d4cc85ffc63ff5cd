//! `GET /api/v1/models` (models, versions, environments, first and last seen, event counts,
//! windows decided) and
//! `GET /api/v1/models/{name}/detections?since=&until=&feature=&version=&detector=&limit=&cursor=`
//! (the detections table, newest first, a page at a time: `{"detections": [...], "next": link}`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use duckdb::types::Value;
use serde::Deserialize;
use serde_json::json;

use base64::Engine as _;

use crate::store::Store;

/// Rows a page of detections holds when the request gives no `limit`.
const DEFAULT_LIMIT: usize = 1000;
/// Most rows a page of detections holds.
const MAX_LIMIT: usize = 10_000;

/// The order of a model's detections: newest first, then every column, so that rows decided at
/// the same time (a window's findings are written together) always come in the same order.
const ORDER: &str = "time DESC, feature, version, detector, test, window_start, window_end, \
     first_event_id, last_event_id, verdict, drifted, statistic, p_value, p_value_corrected, \
     effect_size, threshold, decided_by, CAST(details AS VARCHAR)";

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
    /// Rows per page, 1 to [`MAX_LIMIT`]; [`DEFAULT_LIMIT`] when absent.
    limit: Option<usize>,
    /// Where the page starts: the `cursor` of the previous page's `next` link.
    cursor: Option<String>,
}

/// Where a page starts: after the first `skip` rows (in [`ORDER`]) decided at `time_ns`, the
/// rows decided earlier. Rows decided at one time are written in one transaction and later
/// rows are decided later, so the pages neither repeat nor miss a row while the engine writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    time_ns: i64,
    skip: u64,
}

impl Cursor {
    /// Opaque to clients: URL-safe base64 of `time_ns.skip`.
    fn encode(self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{}.{}", self.time_ns, self.skip))
    }

    fn decode(text: &str) -> Option<Cursor> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (time, skip) = text.split_once('.')?;
        Some(Cursor {
            time_ns: time.parse().ok()?,
            skip: skip.parse().ok()?,
        })
    }

    /// The cursor after a page whose rows were decided at `times` (newest first), which
    /// started at `self` (or at the newest row, `None`).
    fn after(start: Option<Cursor>, times: &[i64]) -> Option<Cursor> {
        let last = *times.last()?;
        let at_last = times.iter().rev().take_while(|&&t| t == last).count() as u64;
        let before = start.filter(|c| c.time_ns == last).map_or(0, |c| c.skip);
        Some(Cursor {
            time_ns: last,
            skip: before + at_last,
        })
    }
}

/// The `next` link: the same request from `cursor` on.
fn next_link(name: &str, q: &DetectionQuery, limit: usize, cursor: Cursor) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in [
        ("since", &q.since),
        ("until", &q.until),
        ("feature", &q.feature),
        ("version", &q.version),
        ("detector", &q.detector),
    ] {
        if let Some(v) = value {
            query.append_pair(key, v);
        }
    }
    query.append_pair("limit", &limit.to_string());
    query.append_pair("cursor", &cursor.encode());
    // A path segment keeps RFC 3986's unreserved characters as they are.
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let name = percent_encoding::utf8_percent_encode(name, SEGMENT);
    format!("/api/v1/models/{name}/detections?{}", query.finish())
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

/// What a detections request found: the page's rows with their decision times, and whether
/// the model is known at all (asked only when the first page is empty).
struct Found {
    rows: Vec<(i64, serde_json::Value)>,
    known: bool,
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
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("limit={limit}: a page holds 1 to {MAX_LIMIT} rows"),
        );
    }
    let start = match q.cursor.as_deref().map(Cursor::decode) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "cursor: not one this API gave out; follow the `next` link of the previous page as it is",
            );
        }
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
        (
            "time <= make_timestamp_ns(?)",
            start.map(|c| Value::BigInt(c.time_ns)),
        ),
    ] {
        if let Some(v) = v {
            sql.push_str(" AND ");
            sql.push_str(cond);
            params.push(v);
        }
    }
    // One row more than the page tells whether there is a next one.
    let skip = start.map_or(0, |c| c.skip);
    sql.push_str(&format!(
        " ORDER BY {ORDER} LIMIT {} OFFSET {skip}",
        limit + 1
    ));
    let model = name.clone();
    let first_page = start.is_none();
    let found = tokio::task::spawn_blocking(move || {
        store.read(|c| {
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(duckdb::params_from_iter(params.iter()), |r| {
                let details: Option<String> = r.get(17)?;
                let time: i64 = r.get(0)?;
                Ok((time, json!({
                    "time": rfc3339(Some(time)),
                    "window_start": rfc3339(r.get(1)?),
                    "window_end": rfc3339(r.get(2)?),
                    "first_event_id": r.get::<_, Option<u64>>(3)?,
                    "last_event_id": r.get::<_, Option<u64>>(4)?,
                    "model": model,
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
                })))
            })?;
            let rows = rows.collect::<duckdb::Result<Vec<_>>>()?;
            // A model is known by its inferences or its stored results (which outlive the
            // inferences they were decided on when retention is shorter for those).
            let known = !rows.is_empty()
                || !first_page
                || c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM detections WHERE model = ?) \
                     OR EXISTS (SELECT 1 FROM inferences WHERE model = ?)",
                    duckdb::params![model, model],
                    |r| r.get::<_, bool>(0),
                )?;
            Ok(Found { rows, known })
        })
    })
    .await;
    let mut found = match found {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    if !found.known {
        return error(
            StatusCode::NOT_FOUND,
            &format!(
                "no model `{name}`: no inference or detection of it is stored (GET /api/v1/models lists the models)"
            ),
        );
    }
    let more = found.rows.len() > limit;
    found.rows.truncate(limit);
    let times: Vec<i64> = found.rows.iter().map(|(t, _)| *t).collect();
    let next = more
        .then(|| Cursor::after(start, &times))
        .flatten()
        .map(|c| next_link(&name, &q, limit, c));
    let rows: Vec<serde_json::Value> = found.rows.into_iter().map(|(_, row)| row).collect();
    Json(json!({ "detections": rows, "next": next })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_what_they_did_not_make() {
        let c = Cursor {
            time_ns: 1_767_225_600_123_456_789,
            skip: 7,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in ["", "abc", "MTIz", "%%%", &c.encode()[1..]] {
            assert_eq!(Cursor::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_next_cursor_counts_every_row_already_given_at_the_last_time() {
        // A page ending inside a run of rows decided at time 5.
        let first = Cursor::after(None, &[9, 9, 5, 5]).expect("rows");
        assert_eq!(
            first,
            Cursor {
                time_ns: 5,
                skip: 2
            }
        );
        // The next page is still inside it: the skip grows.
        let second = Cursor::after(Some(first), &[5, 5, 5]).expect("rows");
        assert_eq!(
            second,
            Cursor {
                time_ns: 5,
                skip: 5
            }
        );
        // Past it: only the rows at the new last time count.
        let third = Cursor::after(Some(second), &[5, 3, 2, 2]).expect("rows");
        assert_eq!(
            third,
            Cursor {
                time_ns: 2,
                skip: 2
            }
        );
        assert_eq!(Cursor::after(Some(third), &[]), None);
    }

    #[test]
    fn next_links_keep_the_filters_and_encode_the_name() {
        let q = DetectionQuery {
            since: Some("2026-01-01T00:00:00Z".into()),
            until: None,
            feature: Some("a b".into()),
            version: None,
            detector: Some("drift".into()),
            limit: Some(2),
            cursor: Some("old".into()),
        };
        let c = Cursor {
            time_ns: 5,
            skip: 2,
        };
        assert_eq!(
            next_link("press/line 2_v-1.0~", &q, 2, c),
            format!(
                "/api/v1/models/press%2Fline%202_v-1.0~/detections?since=2026-01-01T00%3A00%3A00Z&feature=a+b&detector=drift&limit=2&cursor={}",
                c.encode()
            )
        );
    }
}
