//! `millwatch alerts` and `millwatch silence`: the command line over a running collector's
//! alerting API.

use std::process::ExitCode;

use bytes::Bytes;
use clap::Subcommand;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

const DEFAULT_API: &str = "http://127.0.0.1:9464";

#[derive(Debug, clap::Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    pub action: Option<AlertsAction>,
    /// The running collector's API address.
    #[arg(long, default_value = DEFAULT_API, global = true)]
    pub api: String,
    /// Which alerts to list: active (pending and firing), firing, pending, resolved or all.
    #[arg(long, default_value = "active")]
    pub state: String,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AlertsAction {
    /// Acknowledge an alert: it is not notified again on repeat_interval.
    Ack {
        /// The alert's fingerprint (16 hex digits, see `millwatch alerts`).
        fingerprint: String,
        /// Who acknowledges.
        #[arg(long)]
        by: String,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct SilenceArgs {
    #[command(subcommand)]
    pub command: SilenceCommand,
    /// The running collector's API address.
    #[arg(long, default_value = DEFAULT_API, global = true)]
    pub api: String,
}

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Mute alerts matching every matcher, e.g. -m 'model="churn"' -m 'severity=~"warning|info"'.
    Add {
        #[arg(long = "matcher", short = 'm', required = true)]
        matchers: Vec<String>,
        /// How long, e.g. 2h (or give --ends-at).
        #[arg(long)]
        duration: Option<String>,
        /// When it ends, RFC 3339.
        #[arg(long)]
        ends_at: Option<String>,
        /// When it starts, RFC 3339; now by default.
        #[arg(long)]
        starts_at: Option<String>,
        /// Who makes it.
        #[arg(long)]
        author: String,
        /// Why.
        #[arg(long)]
        comment: String,
    },
    /// List silences.
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// End a silence now.
    Expire {
        /// The silence's id.
        id: String,
    },
}

async fn request(
    method: http::Method,
    url: &str,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .map_err(|e| format!("bad address {url}: {e}"))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("cannot reach the collector at {url}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer from {url}: {e}"))?
        .to_bytes();
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| json!({ "error": String::from_utf8_lossy(&body) }));
    Ok((status, value))
}

fn base(api: &str) -> String {
    let api = api.trim_end_matches('/');
    if api.contains("://") {
        api.to_string()
    } else {
        format!("http://{api}")
    }
}

fn block_on(f: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn ok(status: u16, v: &Value) -> Result<(), String> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!(
            "the collector answered {status}: {}",
            v["error"].as_str().unwrap_or(&v.to_string())
        ))
    }
}

fn labels_text(v: &Value, skip: &[&str]) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !skip.contains(&k.as_str()))
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

pub fn alerts_main(args: AlertsArgs) -> ExitCode {
    block_on(async move {
        let api = base(&args.api);
        match args.action {
            Some(AlertsAction::Ack {
                fingerprint,
                by,
                comment,
            }) => {
                let (status, v) = request(
                    http::Method::POST,
                    &format!("{api}/api/v1/alerts/{fingerprint}/ack"),
                    Some(json!({ "by": by, "comment": comment })),
                )
                .await?;
                ok(status, &v)?;
                println!("acknowledged {fingerprint}");
                Ok(())
            }
            None => {
                let (status, v) = request(
                    http::Method::GET,
                    &format!("{api}/api/v1/alerts?state={}", args.state),
                    None,
                )
                .await?;
                ok(status, &v)?;
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    return Ok(());
                }
                let alerts = v["alerts"].as_array().cloned().unwrap_or_default();
                println!(
                    "{:<16}  {:<8}  {:<26}  {:<8}  {:<20}  {:<9}  LABELS",
                    "FINGERPRINT", "STATE", "ALERTNAME", "SEVERITY", "SINCE", "MUTED"
                );
                for a in &alerts {
                    let muted = if a["silenced_by"].as_array().is_some_and(|s| !s.is_empty()) {
                        "silenced"
                    } else if a["inhibited_by"].as_array().is_some_and(|s| !s.is_empty()) {
                        "inhibited"
                    } else if a["acknowledged"].is_object() {
                        "acked"
                    } else {
                        "-"
                    };
                    println!(
                        "{:<16}  {:<8}  {:<26}  {:<8}  {:<20}  {:<9}  {}",
                        a["fingerprint"].as_str().unwrap_or(""),
                        a["state"].as_str().unwrap_or(""),
                        a["labels"]["alertname"].as_str().unwrap_or(""),
                        a["labels"]["severity"].as_str().unwrap_or(""),
                        a["starts_at"]
                            .as_str()
                            .or(a["active_at"].as_str())
                            .unwrap_or(""),
                        muted,
                        labels_text(&a["labels"], &["alertname", "severity"]),
                    );
                }
                println!("{} alerts", alerts.len());
                Ok(())
            }
        }
    })
}

pub fn silence_main(args: SilenceArgs) -> ExitCode {
    block_on(async move {
        let api = base(&args.api);
        match args.command {
            SilenceCommand::Add {
                matchers,
                duration,
                ends_at,
                starts_at,
                author,
                comment,
            } => {
                let (status, v) = request(
                    http::Method::POST,
                    &format!("{api}/api/v1/silences"),
                    Some(json!({
                        "matchers": matchers,
                        "duration": duration,
                        "ends_at": ends_at,
                        "starts_at": starts_at,
                        "created_by": author,
                        "comment": comment,
                    })),
                )
                .await?;
                ok(status, &v)?;
                println!("{}", v["silenceID"].as_str().unwrap_or(""));
                Ok(())
            }
            SilenceCommand::List { json } => {
                let (status, v) =
                    request(http::Method::GET, &format!("{api}/api/v1/silences"), None).await?;
                ok(status, &v)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    return Ok(());
                }
                let list = v["silences"].as_array().cloned().unwrap_or_default();
                println!(
                    "{:<16}  {:<8}  {:<20}  {:<12}  {:<40}  COMMENT",
                    "ID", "STATE", "ENDS", "CREATED_BY", "MATCHERS"
                );
                for s in &list {
                    let matchers: Vec<&str> = s["matchers"]
                        .as_array()
                        .map(|m| m.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    println!(
                        "{:<16}  {:<8}  {:<20}  {:<12}  {:<40}  {}",
                        s["id"].as_str().unwrap_or(""),
                        s["state"].as_str().unwrap_or(""),
                        s["ends_at"].as_str().unwrap_or(""),
                        s["created_by"].as_str().unwrap_or(""),
                        matchers.join(","),
                        s["comment"].as_str().unwrap_or(""),
                    );
                }
                Ok(())
            }
            SilenceCommand::Expire { id } => {
                let (status, v) = request(
                    http::Method::DELETE,
                    &format!("{api}/api/v1/silences/{id}"),
                    None,
                )
                .await?;
                ok(status, &v)?;
                println!("expired {id}");
                Ok(())
            }
        }
    })
}
