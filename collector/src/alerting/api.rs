//! HTTP routes: `GET /api/v1/alerts`, `POST /api/v1/alerts/{fingerprint}/ack`,
//! `GET/POST /api/v1/silences`, `DELETE /api/v1/silences/{id}` and
//! `GET /api/v1/notifications` (the outbox with every delivery attempt).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use millwatch_exporters::notify::alert::{format_rfc3339, parse_rfc3339};
use serde::Deserialize;
use serde_json::json;

use super::engine::Shared;
use super::lifecycle::{Ack, State as AlertState};
use super::rules::Matcher;
use super::silences::{self, Silence};
use super::{now_ns, outbox};

/// A time in ns since the epoch as RFC 3339.
pub fn rfc3339(ns: i64) -> String {
    format_rfc3339(UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64))
}

fn ns_of(text: &str) -> Option<i64> {
    parse_rfc3339(text)?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/alerts/{fingerprint}/ack", post(ack))
        .route("/api/v1/silences", get(list_silences).post(add_silence))
        .route("/api/v1/silences/{id}", delete(expire_silence))
        .route("/api/v1/notifications", get(notifications))
        .with_state(shared)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

#[derive(Deserialize)]
struct AlertsQuery {
    /// `active` (pending and firing, the default), `firing`, `pending`, `resolved` or `all`.
    state: Option<String>,
}

async fn alerts(State(shared): State<Arc<Shared>>, Query(q): Query<AlertsQuery>) -> Response {
    let want = q.state.as_deref().unwrap_or("active");
    let keep = |s: AlertState| match want {
        "all" => true,
        "active" => s != AlertState::Resolved,
        other => AlertState::parse(other) == Some(s),
    };
    if !matches!(want, "all" | "active") && AlertState::parse(want).is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("unknown state `{want}`: use active, firing, pending, resolved or all"),
        );
    }
    let Ok(all) = shared.alerts.read() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "alert list unavailable");
    };
    let list: Vec<_> = all.iter().filter(|a| keep(a.state)).cloned().collect();
    Json(json!({ "alerts": list })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    by: String,
    #[serde(default)]
    comment: String,
}

async fn ack(
    State(shared): State<Arc<Shared>>,
    Path(fingerprint): Path<String>,
    body: Bytes,
) -> Response {
    let body: AckBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("bad acknowledgement: {e}"),
            );
        }
    };
    if body.by.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "`by` must name who acknowledges");
    }
    let known = shared
        .alerts
        .read()
        .map(|a| {
            a.iter()
                .any(|v| v.fingerprint == fingerprint && v.state != AlertState::Resolved)
        })
        .unwrap_or(false);
    if !known {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no active alert with fingerprint {fingerprint}"),
        );
    }
    let at = now_ns();
    if let Ok(mut acks) = shared.acks.lock() {
        acks.push((
            fingerprint.clone(),
            Ack {
                by: body.by.clone(),
                comment: body.comment.clone(),
                at,
            },
        ));
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({ "fingerprint": fingerprint, "acknowledged_by": body.by, "at": rfc3339(at) })),
    )
        .into_response()
}

fn silence_json(s: &Silence, now: i64) -> serde_json::Value {
    json!({
        "id": s.id,
        "matchers": s.matchers.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
        "starts_at": rfc3339(s.starts_at),
        "ends_at": rfc3339(s.ends_at),
        "created_by": s.created_by,
        "comment": s.comment,
        "created_at": rfc3339(s.created_at),
        "state": s.state(now),
    })
}

async fn list_silences(State(shared): State<Arc<Shared>>) -> Response {
    let now = now_ns();
    let Ok(all) = shared.silences.read() else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "silence list unavailable",
        );
    };
    let list: Vec<_> = all.iter().map(|s| silence_json(s, now)).collect();
    Json(json!({ "silences": list })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    matchers: Vec<String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    /// Instead of `ends_at`: how long from `starts_at`, e.g. `2h`.
    #[serde(default)]
    duration: Option<String>,
    created_by: String,
    comment: String,
}

async fn add_silence(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let now = now_ns();
    let s = match new_silence(&body, now) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let stored = s.clone();
    if let Err(e) = shared.db.run(move |c| silences::insert(c, &stored)).await {
        return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
    }
    let body = json!({ "silenceID": s.id, "silence": silence_json(&s, now) });
    if let Ok(mut all) = shared.silences.write() {
        all.push(s);
    }
    (StatusCode::OK, Json(body)).into_response()
}

fn new_silence(body: &[u8], now: i64) -> Result<Silence, String> {
    let b: NewSilence = serde_json::from_slice(body).map_err(|e| format!("bad silence: {e}"))?;
    if b.matchers.is_empty() {
        return Err("a silence needs at least one matcher".into());
    }
    let matchers = b
        .matchers
        .iter()
        .map(|m| Matcher::parse(m))
        .collect::<Result<Vec<_>, _>>()?;
    if b.created_by.trim().is_empty() || b.comment.trim().is_empty() {
        return Err("a silence needs `created_by` and a `comment`".into());
    }
    let starts_at = match &b.starts_at {
        Some(t) => ns_of(t).ok_or_else(|| format!("starts_at: `{t}` is not an RFC 3339 time"))?,
        None => now,
    };
    let ends_at = match (&b.ends_at, &b.duration) {
        (Some(_), Some(_)) => return Err("give ends_at or duration, not both".into()),
        (Some(t), None) => {
            ns_of(t).ok_or_else(|| format!("ends_at: `{t}` is not an RFC 3339 time"))?
        }
        (None, Some(d)) => {
            let d = humantime::parse_duration(d).map_err(|e| format!("duration `{d}`: {e}"))?;
            starts_at.saturating_add(d.as_nanos().min(i64::MAX as u128) as i64)
        }
        (None, None) => return Err("a silence needs ends_at or duration".into()),
    };
    if ends_at <= starts_at.max(now) {
        return Err("the silence would end before it starts (or in the past)".into());
    }
    Ok(Silence {
        id: silences::new_id(),
        matchers,
        starts_at,
        ends_at,
        created_by: b.created_by,
        comment: b.comment,
        created_at: now,
    })
}

/// Who ends a silence and why: `DELETE /api/v1/silences/{id}?by=NAME&comment=TEXT` (both
/// optional; the audit log names the person, `unknown` without `by`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpireQuery {
    by: Option<String>,
    comment: Option<String>,
}

async fn expire_silence(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<ExpireQuery>,
) -> Response {
    let now = now_ns();
    let key = id.clone();
    // Ended early by someone: `unknown` when they did not say who (a silence that ran out
    // has no `ended_by`, and the audit log names `system`).
    let by = Some(
        q.by.filter(|b| !b.trim().is_empty())
            .unwrap_or_else(|| "unknown".into()),
    );
    let comment = q.comment.filter(|c| !c.trim().is_empty());
    match shared
        .db
        .run(move |c| silences::expire(c, &key, now, by.as_deref(), comment.as_deref()))
        .await
    {
        Ok(true) => {
            if let Ok(mut all) = shared.silences.write() {
                for s in all.iter_mut().filter(|s| s.id == id) {
                    s.ends_at = now;
                }
            }
            Json(json!({ "expired": id })).into_response()
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            &format!("no active or pending silence with id {id}"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Deserialize)]
struct NotificationsQuery {
    limit: Option<usize>,
}

async fn notifications(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<NotificationsQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    match shared.db.run(move |c| outbox::list(c, limit)).await {
        Ok(list) => Json(json!({ "notifications": list })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000_000;

    #[test]
    fn silences_from_requests() {
        let s = new_silence(
            br#"{"matchers":["model=\"churn\""],"duration":"2h","created_by":"ana","comment":"retraining"}"#,
            NOW,
        )
        .expect("valid");
        assert_eq!(s.ends_at - s.starts_at, 7200 * 1_000_000_000);
        assert_eq!(s.starts_at, NOW);
        for (body, want) in [
            (
                r#"{"matchers":[],"duration":"1h","created_by":"a","comment":"c"}"#,
                "at least one matcher",
            ),
            (
                r#"{"matchers":["model~x"],"duration":"1h","created_by":"a","comment":"c"}"#,
                "bad matcher",
            ),
            (
                r#"{"matchers":["a=b"],"duration":"1h","created_by":"a","comment":""}"#,
                "comment",
            ),
            (
                r#"{"matchers":["a=b"],"created_by":"a","comment":"c"}"#,
                "ends_at or duration",
            ),
            (
                r#"{"matchers":["a=b"],"ends_at":"2001-01-01T00:00:00Z","created_by":"a","comment":"c"}"#,
                "in the past",
            ),
            (
                r#"{"matchers":["a=b"],"duration":"1h","created_by":"a","comment":"c","x":1}"#,
                "unknown field `x`",
            ),
        ] {
            let err = new_silence(body.as_bytes(), NOW).expect_err(body);
            assert!(err.contains(want), "{body}: {err}");
        }
    }
}
