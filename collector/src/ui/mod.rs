//! The web UI on the API address: server-rendered HTML (maud), one stylesheet and one small
//! script embedded in the binary, no request to another host, so every page reads without
//! JavaScript and works offline on a plant network. The script (`live.js`) refreshes the
//! sections marked `data-live` in place every few seconds by fetching the page again.
//!
//! Pages: `/` the fleet (models × environments, machines), `/models/{name}` a model (versions,
//! drift and data-quality heatmaps, prediction drift, performance, alerts),
//! `/machines/{id}` a machine (control charts), `/alerts` alerts and silences, `/audit` the
//! audit log with its chain verified (reports are `/api/v1/reports/{model}`). Forms post to
//! `/ui/...`, which hands them to the alerting API (`/api/v1/...`) in-process and comes back.
//!
//! Layout: `page` (the frame every page shares, formatting), `fleet`, `model`, `machine`,
//! `alerts`, `audit` (one page each: its queries and its markup), `chart` (control-chart and
//! line-chart SVG), `histogram` (a heatmap cell's reference and current histograms),
//! `timeline` (a model's deployments), `latest` (the newest verdicts, kept between views),
//! `forms` (the POST handlers).

mod alerts;
mod audit;
mod chart;
mod fleet;
mod forms;
mod histogram;
mod latest;
mod machine;
mod model;
mod page;
mod timeline;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::alerting::engine::Shared;
use crate::api::directory::{Directory, Listener};
use crate::detection::config::HealthRule;
use crate::store::Store;

/// What the pages read.
pub struct UiState {
    pub store: Arc<Store>,
    /// The alert manager's state, when it runs.
    pub alerting: Option<Arc<Shared>>,
    /// The machine-health rules, to draw each machine's control charts as the engine keeps them.
    pub health_rules: Vec<HealthRule>,
    /// `GET /` for clients that do not ask for HTML (curl, scripts) gets the directory.
    pub directory: Arc<Directory>,
    /// The newest verdicts, kept between page views (`Default::default()` to start).
    pub latest: std::sync::Mutex<latest::Latest>,
}

pub fn router(state: Arc<UiState>) -> Router {
    Router::new()
        .route("/", get(fleet_or_directory))
        .route("/models/{name}", get(model))
        .route("/machines/{id}", get(machine))
        .route("/alerts", get(alerts))
        .route("/audit", get(audit))
        .route("/ui/style.css", get(style))
        .route("/ui/favicon.svg", get(favicon))
        .route("/ui/live.js", get(live_script))
        .route("/ui/alerts/{fingerprint}/ack", post(forms::ack))
        .route("/ui/silences", post(forms::add_silence))
        .route("/ui/silences/{id}/expire", post(forms::expire_silence))
        .with_state(state)
}

/// The stylesheet, compiled into the binary.
async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("style.css"),
    )
        .into_response()
}

/// The live-refresh script, compiled into the binary.
async fn live_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("live.js"),
    )
        .into_response()
}

/// The icon, compiled into the binary.
async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("favicon.svg"),
    )
        .into_response()
}

/// Whether the client asked for HTML (a browser), as opposed to `*/*` (curl, scripts).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

async fn fleet_or_directory(
    State(state): State<Arc<UiState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if !wants_html(&headers) {
        return state
            .directory
            .answer(Listener::Api, &method, &uri, &headers);
    }
    render(state, |s| fleet::page(&s)).await
}

#[derive(Debug, serde::Deserialize)]
pub struct ModelQuery {
    /// The version shown; the newest when absent.
    pub version: Option<String>,
    /// A window (its first event id) whose findings are listed.
    pub window: Option<u64>,
    /// A feature of that window whose reference and current histograms are drawn.
    pub feature: Option<String>,
}

async fn model(
    State(state): State<Arc<UiState>>,
    Path(name): Path<String>,
    Query(q): Query<ModelQuery>,
) -> Response {
    render(state, move |s| model::page(&s, &name, &q)).await
}

async fn machine(State(state): State<Arc<UiState>>, Path(id): Path<String>) -> Response {
    render(state, move |s| machine::page(&s, &id)).await
}

#[derive(Debug, serde::Deserialize)]
pub struct AlertsQuery {
    /// What the last form did, or why it failed: shown once at the top.
    pub said: Option<String>,
    pub error: Option<String>,
}

async fn alerts(State(state): State<Arc<UiState>>, Query(q): Query<AlertsQuery>) -> Response {
    render(state, move |s| alerts::page(&s, &q)).await
}

#[derive(Debug, serde::Deserialize)]
pub struct AuditQuery {
    pub model: Option<String>,
    /// An action (`alert.fired`) or a family of them (`alert`).
    pub action: Option<String>,
    pub actor: Option<String>,
}

async fn audit(State(state): State<Arc<UiState>>, Query(q): Query<AuditQuery>) -> Response {
    render(state, move |s| audit::page(&s, &q)).await
}

/// A page's answer: its HTML, or a page saying what went wrong.
pub enum Rendered {
    Page(maud::Markup),
    NotFound(String),
}

/// Renders a page off the async workers (the queries block on DuckDB).
async fn render(
    state: Arc<UiState>,
    f: impl FnOnce(Arc<UiState>) -> anyhow::Result<Rendered> + Send + 'static,
) -> Response {
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || f(state)).await;
    let (status, body) = match out {
        Ok(Ok(Rendered::Page(m))) => (StatusCode::OK, m),
        Ok(Ok(Rendered::NotFound(what))) => (
            StatusCode::NOT_FOUND,
            page::frame(
                "Not found",
                page::Nav::None,
                maud::html! { p.error { (what) } },
            ),
        ),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            page::frame(
                "Error",
                page::Nav::None,
                maud::html! { p.error { "The page could not be read: " (format!("{e:#}")) } },
            ),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            page::frame(
                "Error",
                page::Nav::None,
                maud::html! { p.error { (e.to_string()) } },
            ),
        ),
    };
    let took_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut response = (status, body).into_response();
    // The page's server time (queries and markup), for `millwatch bench ui` and browsers' tools.
    if let Ok(v) = header::HeaderValue::from_str(&format!("render;dur={took_ms:.1}")) {
        response.headers_mut().insert("server-timing", v);
    }
    // Nothing on these pages comes from anywhere but here.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}
