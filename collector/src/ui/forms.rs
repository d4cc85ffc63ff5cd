//! The UI's forms: each turns its fields into the JSON the alerting API takes, hands the request
//! to that API (`/api/v1/...`, in-process: the same checks and the same effect as a client's
//! request), and sends the browser back to `/alerts` saying what happened (303 See Other).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Form, Path, State};
use axum::http::{Method, Request, header};
use axum::response::{IntoResponse, Redirect, Response};
use http_body_util::BodyExt as _;
use serde::Deserialize;
use serde_json::json;
use tower::ServiceExt as _;

use super::UiState;
use super::page::{query, segment};

/// Asks the alerting API `method path` with `body`; `Ok` with its JSON when it said 2xx, else
/// `Err` with its error message.
async fn ask(
    state: &UiState,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, String> {
    let Some(shared) = &state.alerting else {
        return Err("the alert manager is off (alerting.enabled: false)".into());
    };
    let api = crate::alerting::api::router(shared.clone());
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(match body {
            Some(b) => Body::from(b.to_string()),
            None => Body::empty(),
        })
        .map_err(|e| e.to_string())?;
    let response = api.oneshot(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if status.is_success() {
        Ok(answer)
    } else {
        Err(answer["error"]
            .as_str()
            .map_or_else(|| format!("{status}"), str::to_owned))
    }
}

/// Back to the alerts page with a notice or an error.
fn back(result: Result<String, String>) -> Response {
    let q = match &result {
        Ok(said) => query(&[("said", said)]),
        Err(e) => query(&[("error", e)]),
    };
    Redirect::to(&format!("/alerts?{q}")).into_response()
}

#[derive(Debug, Deserialize)]
pub struct AckForm {
    by: String,
    #[serde(default)]
    comment: String,
}

pub async fn ack(
    State(state): State<Arc<UiState>>,
    Path(fingerprint): Path<String>,
    Form(f): Form<AckForm>,
) -> Response {
    let path = format!("/api/v1/alerts/{}/ack", segment(&fingerprint));
    let body = json!({ "by": f.by, "comment": f.comment });
    back(
        ask(&state, Method::POST, &path, Some(body))
            .await
            .map(|_| format!("Alert acknowledged by {}.", f.by)),
    )
}

#[derive(Debug, Deserialize)]
pub struct SilenceForm {
    /// One matcher per line.
    matchers: String,
    duration: String,
    created_by: String,
    comment: String,
}

pub async fn add_silence(
    State(state): State<Arc<UiState>>,
    Form(f): Form<SilenceForm>,
) -> Response {
    let matchers: Vec<&str> = f
        .matchers
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let body = json!({
        "matchers": matchers,
        "duration": f.duration.trim(),
        "created_by": f.created_by,
        "comment": f.comment,
    });
    back(
        ask(&state, Method::POST, "/api/v1/silences", Some(body))
            .await
            .map(|a| {
                format!(
                    "Silence {} created for {}.",
                    a["silenceID"].as_str().unwrap_or("?"),
                    f.duration.trim()
                )
            }),
    )
}

pub async fn expire_silence(State(state): State<Arc<UiState>>, Path(id): Path<String>) -> Response {
    let path = format!("/api/v1/silences/{}", segment(&id));
    back(
        ask(&state, Method::DELETE, &path, None)
            .await
            .map(|_| format!("Silence {id} expired.")),
    )
}
