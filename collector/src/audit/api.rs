//! The audit trail over HTTP: `GET /api/v1/audit` (JSON a page at a time, or CSV with
//! `Accept: text/csv` or `format=csv`), `GET /api/v1/audit/verify[?head=SEQ:HASH]`,
//! `GET /api/v1/audit/head`, `POST /api/v1/annotations` and `GET /api/v1/registry` (where each
//! model version ran, and the deployments).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::chain::{self, Head};
use super::entry::NewEntry;
use super::query::{self, Filter};
use super::{AuditLog, now_ns};
use crate::store::Store;

pub struct AuditApi {
    pub store: Arc<Store>,
    /// Absent while the audit trail is not running (annotations are refused).
    pub log: Option<AuditLog>,
}

pub fn router(state: Arc<AuditApi>) -> Router {
    Router::new()
        .route("/api/v1/audit", get(list))
        .route("/api/v1/audit/verify", get(verify))
        .route("/api/v1/audit/head", get(head))
        .route("/api/v1/annotations", post(annotate))
        .route("/api/v1/registry", get(registry))
        .with_state(state)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Entries a JSON page holds when the request gives no `limit`, and at most.
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    since: Option<String>,
    until: Option<String>,
    model: Option<String>,
    action: Option<String>,
    actor: Option<String>,
    /// Entries after this sequence number: the `next` link's cursor.
    after: Option<u64>,
    limit: Option<usize>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

impl ListQuery {
    fn filter(&self) -> Result<Filter, String> {
        let time = |name: &str, t: &Option<String>| {
            t.as_deref().map(|t| query::parse_time(name, t)).transpose()
        };
        Ok(Filter {
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            model: self.model.clone(),
            action: self.action.clone(),
            actor: self.actor.clone(),
            after: self.after,
            limit: self.limit,
        })
    }
}

async fn read<T: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&duckdb::Connection) -> duckdb::Result<T> + Send + 'static,
) -> Result<T, Response> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || store.read(f)).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
    }
}

async fn list(
    State(state): State<Arc<AuditApi>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let mut filter = match q.filter() {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let csv = match q.format.as_deref() {
        Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("unknown format `{other}`: use json or csv"),
            );
        }
        None => accept.contains("text/csv"),
    };
    if !csv {
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("`limit` must be 1 to {MAX_LIMIT}"),
            );
        }
        filter.limit = Some(limit);
    }
    let f = filter.clone();
    let entries = match read(&state.store, move |c| query::entries(c, &f)).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    if csv {
        return match query::csv(&entries) {
            Ok(body) => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        };
    }
    let next = (entries.len() == filter.limit.unwrap_or(usize::MAX))
        .then(|| entries.last().map(|e| next_link(&q, e.seq)))
        .flatten();
    Json(json!({ "entries": query::views(&entries), "next": next })).into_response()
}

/// The link to the page after `seq`, with the same filters.
fn next_link(q: &ListQuery, seq: u64) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("since", &q.since),
        ("until", &q.until),
        ("model", &q.model),
        ("action", &q.action),
        ("actor", &q.actor),
    ] {
        if let Some(v) = v {
            s.append_pair(k, v);
        }
    }
    if let Some(l) = q.limit {
        s.append_pair("limit", &l.to_string());
    }
    s.append_pair("after", &seq.to_string());
    format!("/api/v1/audit?{}", s.finish())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyQuery {
    /// An exported head, `SEQ:HASH`.
    head: Option<String>,
}

async fn verify(State(state): State<Arc<AuditApi>>, Query(q): Query<VerifyQuery>) -> Response {
    let expected = match q.head.as_deref().map(Head::parse).transpose() {
        Ok(h) => h,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    match read(&state.store, move |c| chain::verify(c, expected.as_ref())).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

async fn head(State(state): State<Arc<AuditApi>>) -> Response {
    match read(&state.store, chain::head).await {
        Ok(h) => Json(h).into_response(),
        Err(r) => r,
    }
}

/// A person's note about a model.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Annotation {
    model: String,
    version: Option<String>,
    environment: Option<String>,
    /// Who writes it.
    author: String,
    /// What they say.
    text: String,
    /// When it applies (RFC 3339); now by default.
    time: Option<String>,
}

/// The address a request came from, when the server records it (`ConnectInfo`).
pub struct Peer(pub Option<std::net::SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// Where a request came from: the peer's IP address, and the client a proxy names in
/// `X-Forwarded-For` (`203.0.113.9 via 10.0.0.2`).
pub fn source(headers: &HeaderMap, peer: &Peer) -> Option<String> {
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(',').next().unwrap_or(s).trim().to_owned())
        .filter(|s| !s.is_empty());
    let peer = peer.0.map(|p| p.ip().to_string());
    match (forwarded, peer) {
        (Some(f), Some(p)) => Some(format!("{f} via {p}")),
        (Some(f), None) => Some(f),
        (None, Some(p)) => Some(p),
        (None, None) => Some("api".to_owned()),
    }
}

async fn annotate(
    State(state): State<Arc<AuditApi>>,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(log) = &state.log else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit log is not running",
        );
    };
    let a: Annotation = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "bad annotation: {e} (send {{\"model\": ..., \"author\": ..., \"text\": ...}}, optionally version, environment, time)"
                ),
            );
        }
    };
    for (name, v) in [
        ("model", &a.model),
        ("author", &a.author),
        ("text", &a.text),
    ] {
        if v.trim().is_empty() {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("`{name}` must not be empty"),
            );
        }
    }
    let time = match a
        .time
        .as_deref()
        .map(|t| query::parse_time("time", t))
        .transpose()
    {
        Ok(t) => t.unwrap_or_else(now_ns),
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let source = source(&headers, &peer);
    let entry = NewEntry::system(
        time,
        "annotation",
        json!({ "model": a.model, "version": a.version, "environment": a.environment }),
    )
    .actor(a.author)
    .source(source)
    .reason(a.text);
    match log.record(vec![entry]).await {
        Ok(stored) => (StatusCode::CREATED, Json(query::views(&stored)[0].clone())).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn registry(State(state): State<Arc<AuditApi>>) -> Response {
    let rows = read(&state.store, |c| {
        let mut stmt = c.prepare(
            "SELECT model, version, environment, host, site, line, instance, epoch_ns(first_seen), \
             epoch_ns(last_seen), events FROM model_registry ORDER BY model, version, environment, host, site, line, instance",
        )?;
        let placements = stmt
            .query_map([], |r| {
                let text = |i: usize| -> duckdb::Result<Value> {
                    let s: String = r.get(i)?;
                    Ok(if s.is_empty() { Value::Null } else { Value::from(s) })
                };
                Ok(json!({
                    "model": r.get::<_, String>(0)?,
                    "version": r.get::<_, String>(1)?,
                    "environment": text(2)?,
                    "host": text(3)?,
                    "site": text(4)?,
                    "line": text(5)?,
                    "instance": text(6)?,
                    "first_seen": super::entry::rfc3339(r.get(7)?),
                    "last_seen": super::entry::rfc3339(r.get(8)?),
                    "events": r.get::<_, u64>(9)?,
                }))
            })?
            .collect::<duckdb::Result<Vec<_>>>()?;
        let deployments = query::entries(
            c,
            &Filter {
                action: Some("deployment".into()),
                ..Filter::default()
            },
        )?;
        Ok((placements, deployments))
    })
    .await;
    match rows {
        Ok((placements, deployments)) => Json(json!({
            "placements": placements,
            "deployments": query::views(&deployments),
        }))
        .into_response(),
        Err(r) => r,
    }
}
