//! Model reports: `millwatch report --model NAME ... --format html|json|csv|md --out FILE` and
//! `GET /api/v1/reports/{model}?version=&environment=&since=&until=&format=`.
//!
//! Layout: `data` (what a report holds, read from the store), `render` (the formats; HTML and
//! Markdown from `templates/`), `schedule` (the `reports:` section: reports made on a schedule
//! and mailed through the alert outbox).

pub mod data;
pub mod render;
pub mod schedule;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

pub use data::{Report, Scope};
pub use render::Format;

use crate::audit::query::parse_time;
use crate::store::Store;

/// The query of `GET /api/v1/reports/{model}`; the CLI's flags are the same.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    pub version: Option<String>,
    pub environment: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// json (default over HTTP), html, csv or md.
    pub format: Option<String>,
}

impl ReportQuery {
    pub fn scope(&self, model: &str) -> Result<Scope, String> {
        let time =
            |name: &str, t: &Option<String>| t.as_deref().map(|t| parse_time(name, t)).transpose();
        if model.trim().is_empty() {
            return Err("the model must be named".into());
        }
        Ok(Scope {
            model: model.to_owned(),
            version: self.version.clone(),
            environment: self.environment.clone(),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
        })
    }
}

pub fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route("/api/v1/reports/{model}", get(report))
        .with_state(store)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn report(
    State(store): State<Arc<Store>>,
    Path(model): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Response {
    let scope = match q.scope(&model) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let format = match Format::parse(q.format.as_deref().unwrap_or("json")) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let built = tokio::task::spawn_blocking(move || {
        let report = store
            .read(|c| data::build(c, &scope, crate::audit::now_ns()))
            .map_err(|e| e.to_string())?;
        render::render(&report, format).map_err(|e| e.to_string())
    })
    .await;
    match built {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The model to report on.
    #[arg(long)]
    pub model: String,
    #[arg(long)]
    pub version: Option<String>,
    #[arg(long)]
    pub environment: Option<String>,
    /// RFC 3339: from (inclusive).
    #[arg(long)]
    pub since: Option<String>,
    /// RFC 3339: until (exclusive).
    #[arg(long)]
    pub until: Option<String>,
    /// html, json, csv or md.
    #[arg(long, default_value = "html", value_parser = ["html", "json", "csv", "md"])]
    pub format: String,
    /// The file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Read the database in this data directory (the collector must be stopped). Without it,
    /// the running collector at --api makes the report.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The running collector's API address.
    #[arg(long, default_value = crate::alerting::cli::DEFAULT_API)]
    pub api: String,
}

pub fn main(args: ReportArgs) -> ExitCode {
    crate::alerting::cli::block_on(async move {
        let q = ReportQuery {
            version: args.version.clone(),
            environment: args.environment.clone(),
            since: args.since.clone(),
            until: args.until.clone(),
            format: Some(args.format.clone()),
        };
        let format = Format::parse(&args.format)?;
        let body = match &args.data_dir {
            Some(dir) => {
                let scope = q.scope(&args.model)?;
                let conn = crate::audit::cli::open(dir)?;
                let report = data::build(&conn, &scope, crate::audit::now_ns())
                    .map_err(|e| format!("reading the store: {e}"))?;
                render::render(&report, format).map_err(|e| e.to_string())?
            }
            None => fetch(&args, &q).await?,
        };
        std::fs::write(&args.out, &body)
            .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
        eprintln!("report on {} written to {}", args.model, args.out.display());
        Ok(())
    })
}

/// The report made by the running collector.
async fn fetch(args: &ReportArgs, q: &ReportQuery) -> Result<Vec<u8>, String> {
    let mut params = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("version", &q.version),
        ("environment", &q.environment),
        ("since", &q.since),
        ("until", &q.until),
        ("format", &q.format),
    ] {
        if let Some(v) = v {
            params.append_pair(k, v);
        }
    }
    let model: String =
        percent_encoding::utf8_percent_encode(&args.model, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let url = format!(
        "{}/api/v1/reports/{model}?{}",
        crate::alerting::cli::base(&args.api),
        params.finish()
    );
    let client =
        millwatch_exporters::http::build(&millwatch_exporters::http::ClientOptions::default())
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
    let resp = client.get(&url).send().await.map_err(|e| {
        format!(
            "cannot reach the collector at {url}: {}",
            millwatch_exporters::http::describe(&e.without_url())
        )
    })?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("reading the report from {url}: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "the collector answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(body.to_vec())
}
