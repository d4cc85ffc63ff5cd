//! The HTTP API on the API address: health, readiness, `/metrics`, and `/api/v1/*`; `GET /`
//! and unknown paths point to them ([`directory`]).

pub mod directory;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::store::Store;
use std::time::Instant;

use axum::http::HeaderMap;
use millwatch_exporters::prometheus::MetricsExposition;

use crate::telemetry::{SelfMetrics, Telemetry};

pub struct ApiState {
    pub store: Arc<Store>,
    pub telemetry: Arc<Telemetry>,
    pub exposition: MetricsExposition,
    pub self_metrics: SelfMetrics,
    /// The remote-write targets' counters, published on `/metrics`.
    pub remote_write: Vec<millwatch_exporters::remote_write::StatsHandle>,
    /// The OTLP exporters' counters, published on `/metrics`.
    pub otlp: Vec<millwatch_exporters::otlp::StatsHandle>,
    /// True once every listener is up, false again while shutting down.
    pub ready: AtomicBool,
    /// The alert manager's state for `/api/v1/alerts` and `/api/v1/silences`, when it runs.
    pub alerting: Option<Arc<crate::alerting::engine::Shared>>,
    /// Where things are, for `GET /` and unknown paths.
    pub directory: Arc<directory::Directory>,
    /// The audit log's writer, for `/api/v1/annotations`.
    pub audit: Option<crate::audit::AuditLog>,
}

pub fn router(state: Arc<ApiState>) -> Router {
    let alerting = match &state.alerting {
        Some(shared) => crate::alerting::api::router(shared.clone()),
        None => Router::new(),
    };
    let directory = state.directory.clone();
    let explain = axum::middleware::from_fn_with_state(
        directory.clone(),
        directory::Directory::explain_wrong_method,
    );
    let api = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/stats", get(stats))
        .with_state(state.clone())
        .merge(crate::detection::api::router(state.store.clone()))
        .merge(alerting)
        .merge(crate::report::router(state.store.clone()))
        .merge(crate::audit::api::router(Arc::new(
            crate::audit::api::AuditApi {
                store: state.store.clone(),
                log: state.audit.clone(),
            },
        )))
        .fallback(
            move |method: Method, uri: Uri, headers: HeaderMap| async move {
                directory.answer(directory::Listener::Api, &method, &uri, &headers)
            },
        );
    // Around the whole router, not each route (`Router::layer`): a route's `Allow` header is
    // added after its own layers have run.
    Router::new().fallback_service(api).layer(explain)
}

async fn readyz(State(state): State<Arc<ApiState>>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn stats(State(state): State<Arc<ApiState>>) -> Response {
    let store = state.store.clone();
    let counts = tokio::task::spawn_blocking(move || store.row_counts()).await;
    let tables = match counts {
        Ok(Ok(rows)) => rows
            .into_iter()
            .map(|(t, n)| (t.to_owned(), json!(n)))
            .collect::<serde_json::Map<_, _>>(),
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let snap = state.telemetry.snapshot();
    let receivers: Vec<_> = snap
        .receivers
        .iter()
        .filter(|r| r.requests > 0 || r.refused.iter().any(|(_, n)| *n > 0))
        .map(|r| {
            json!({
                "signal": r.signal.as_str(),
                "protocol": r.protocol.as_str(),
                "requests": r.requests,
                "items_received": r.items_received,
                "items_stored": r.items_stored,
                "items_rejected": r.items_rejected,
                "requests_refused": r.refused.iter().map(|(w, n)| (w.as_str().to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    let total = |f: fn(&crate::telemetry::ReceiverSnapshot) -> u64| {
        snap.receivers.iter().map(f).sum::<u64>()
    };
    Json(json!({
        "tables": tables,
        "accepted": total(|r| r.items_stored),
        "rejected": total(|r| r.items_rejected),
        "refused_requests": total(|r| r.refused.iter().map(|(_, n)| n).sum()),
        "receivers": receivers,
        "queue": { "rows": snap.queue_items, "capacity": snap.queue_capacity },
        "journal": {
            "rows": snap.journal_rows,
            "capacity": snap.journal_capacity,
            "lost_records": snap.journal_lost_records,
            "quarantined_segments": snap.journal_quarantined_segments,
        },
        "commits": { "count": snap.commits, "rows": snap.commit_rows, "seconds": snap.commit_seconds },
    }))
    .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn metrics(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    state.self_metrics.publish(&state.telemetry.snapshot());
    state.self_metrics.publish_remote_write(&state.remote_write);
    state.self_metrics.otlp.publish(&state.otlp);
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    let exposition = state.exposition.clone();
    let accept = header(header::ACCEPT).map(str::to_owned);
    let accept_encoding = header(header::ACCEPT_ENCODING).map(str::to_owned);
    // Rendering 100k series takes tens of milliseconds: keep it off the async workers.
    let encoded = tokio::task::spawn_blocking(move || {
        exposition.encode(
            accept.as_deref(),
            accept_encoding.as_deref(),
            Instant::now(),
        )
    })
    .await;
    let Ok(encoded) = encoded else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "rendering /metrics failed",
        );
    };
    let mut response =
        ([(header::CONTENT_TYPE, encoded.content_type)], encoded.body).into_response();
    if let Some(enc) = encoded.content_encoding {
        response.headers_mut().insert(
            header::CONTENT_ENCODING,
            axum::http::HeaderValue::from_static(enc),
        );
    }
    response
}
