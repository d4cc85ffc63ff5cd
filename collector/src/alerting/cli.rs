//! `millwatch alerts` and `millwatch silence`: the command line over a running collector's
//! alerting API.

use std::process::ExitCode;

use clap::Subcommand;
use millwatch_exporters::http::{ClientOptions, build, describe};
use millwatch_exporters::notify::alert::parse_rfc3339;
use serde_json::{Value, json};

use crate::output::{OutputFormat, print_json};

pub(crate) const DEFAULT_API: &str = "http://127.0.0.1:9464";

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
    /// `table` (for people) or `json` (the API's answer, for scripts); `--json` is `--format json`.
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub format: OutputFormat,
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
    /// `table` (for people) or `json` (the API's answer, for scripts).
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub format: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Mute alerts matching every matcher, e.g. -m 'model="churn"' -m 'severity=~"warning|info"',
    /// until an end given by exactly one of --duration or --ends-at (the API refuses a silence
    /// without an end).
    #[command(group(clap::ArgGroup::new("end").required(true).args(["duration", "ends_at"])))]
    Add {
        #[arg(long = "matcher", short = 'm', required = true)]
        matchers: Vec<String>,
        /// How long from its start, e.g. 2h or 30m.
        #[arg(long, value_parser = duration_text)]
        duration: Option<String>,
        /// When it ends, RFC 3339 (e.g. 2026-05-04T18:00:00Z).
        #[arg(long, value_parser = time_text)]
        ends_at: Option<String>,
        /// When it starts, RFC 3339; now by default.
        #[arg(long, value_parser = time_text)]
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
        /// Who ends it (recorded in the audit log).
        #[arg(long)]
        author: Option<String>,
        /// Why.
        #[arg(long)]
        comment: Option<String>,
    },
}

/// A duration as the API takes it (`2h`, `90m`), checked before anything is sent.
fn duration_text(text: &str) -> Result<String, String> {
    humantime::parse_duration(text)
        .map(|_| text.to_string())
        .map_err(|e| format!("{e}; write e.g. 2h, 30m or 1h30m"))
}

/// An RFC 3339 time, checked before anything is sent.
fn time_text(text: &str) -> Result<String, String> {
    parse_rfc3339(text)
        .map(|_| text.to_string())
        .ok_or_else(|| "not an RFC 3339 time; write e.g. 2026-05-04T18:00:00Z".to_string())
}

/// An API time (RFC 3339, to the nanosecond) for a table: to the second, in UTC.
fn readable(time: &Value) -> String {
    let Some(text) = time.as_str() else {
        return "-".to_string();
    };
    match parse_rfc3339(text) {
        Some(t) => format!(
            "{} UTC",
            humantime::format_rfc3339_seconds(t)
                .to_string()
                .trim_end_matches('Z')
                .replacen('T', " ", 1)
        ),
        None => text.to_string(),
    }
}

pub(crate) async fn request(
    method: http::Method,
    url: &str,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let client = build(&ClientOptions::default())
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let sent = client
        .request(method, url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(bytes)
        .send()
        .await;
    let resp = sent.map_err(|e| {
        if e.is_builder() {
            format!("bad address {url}: {}", describe(&e.without_url()))
        } else {
            format!(
                "cannot reach the collector at {url}: {}",
                describe(&e.without_url())
            )
        }
    })?;
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("reading the answer from {url}: {}", describe(&e)))?;
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| json!({ "error": String::from_utf8_lossy(&body) }));
    Ok((status, value))
}

pub(crate) fn base(api: &str) -> String {
    let api = api.trim_end_matches('/');
    if api.contains("://") {
        api.to_string()
    } else {
        format!("http://{api}")
    }
}

pub(crate) fn block_on(f: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
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

pub(crate) fn ok(status: u16, v: &Value) -> Result<(), String> {
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
                if args.format.is_json() {
                    print_json(&v);
                } else {
                    println!("acknowledged {fingerprint}");
                }
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
                if args.json || args.format.is_json() {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    return Ok(());
                }
                let alerts = v["alerts"].as_array().cloned().unwrap_or_default();
                println!(
                    "{:<16}  {:<8}  {:<26}  {:<8}  {:<23}  {:<9}  LABELS",
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
                    let since = if a["starts_at"].is_string() {
                        &a["starts_at"]
                    } else {
                        &a["active_at"]
                    };
                    println!(
                        "{:<16}  {:<8}  {:<26}  {:<8}  {:<23}  {:<9}  {}",
                        a["fingerprint"].as_str().unwrap_or(""),
                        a["state"].as_str().unwrap_or(""),
                        a["labels"]["alertname"].as_str().unwrap_or(""),
                        a["labels"]["severity"].as_str().unwrap_or(""),
                        readable(since),
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
                if args.format.is_json() {
                    print_json(&v);
                    return Ok(());
                }
                println!("{}", v["silenceID"].as_str().unwrap_or(""));
                Ok(())
            }
            SilenceCommand::List { json } => {
                let (status, v) =
                    request(http::Method::GET, &format!("{api}/api/v1/silences"), None).await?;
                ok(status, &v)?;
                if json || args.format.is_json() {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    return Ok(());
                }
                let list = v["silences"].as_array().cloned().unwrap_or_default();
                println!(
                    "{:<16}  {:<8}  {:<23}  {:<23}  {:<12}  {:<40}  COMMENT",
                    "ID", "STATE", "STARTS", "ENDS", "CREATED_BY", "MATCHERS"
                );
                for s in &list {
                    let matchers: Vec<&str> = s["matchers"]
                        .as_array()
                        .map(|m| m.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    println!(
                        "{:<16}  {:<8}  {:<23}  {:<23}  {:<12}  {:<40}  {}",
                        s["id"].as_str().unwrap_or(""),
                        s["state"].as_str().unwrap_or(""),
                        readable(&s["starts_at"]),
                        readable(&s["ends_at"]),
                        s["created_by"].as_str().unwrap_or(""),
                        matchers.join(","),
                        s["comment"].as_str().unwrap_or(""),
                    );
                }
                Ok(())
            }
            SilenceCommand::Expire {
                id,
                author,
                comment,
            } => {
                let mut query = form_urlencoded::Serializer::new(String::new());
                if let Some(a) = &author {
                    query.append_pair("by", a);
                }
                if let Some(c) = &comment {
                    query.append_pair("comment", c);
                }
                let id_path: String =
                    percent_encoding::utf8_percent_encode(&id, percent_encoding::NON_ALPHANUMERIC)
                        .to_string();
                let (status, v) = request(
                    http::Method::DELETE,
                    &format!("{api}/api/v1/silences/{id_path}?{}", query.finish()),
                    None,
                )
                .await?;
                ok(status, &v)?;
                if args.format.is_json() {
                    print_json(&json!({ "expired": id }));
                    return Ok(());
                }
                println!("expired {id}");
                Ok(())
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_times_are_to_the_second_in_utc() {
        assert_eq!(
            readable(&json!("2026-05-04T16:00:00.123456789Z")),
            "2026-05-04 16:00:00 UTC"
        );
        assert_eq!(
            readable(&json!("2026-05-04T18:00:00+02:00")),
            "2026-05-04 16:00:00 UTC"
        );
        assert_eq!(readable(&Value::Null), "-");
        assert_eq!(readable(&json!("soon")), "soon");
    }

    #[test]
    fn a_silence_needs_exactly_one_end() {
        use clap::Parser as _;
        let parse = |extra: &[&str]| {
            let mut args = vec![
                "millwatch",
                "silence",
                "add",
                "-m",
                "a=\"b\"",
                "--author",
                "a",
                "--comment",
                "c",
            ];
            args.extend_from_slice(extra);
            crate::cli::Cli::try_parse_from(args)
        };
        assert!(parse(&["--duration", "2h"]).is_ok());
        assert!(parse(&["--ends-at", "2026-05-04T18:00:00Z"]).is_ok());
        for (extra, want) in [
            (&[][..], "--duration"),
            (
                &["--duration", "2h", "--ends-at", "2026-05-04T18:00:00Z"][..],
                "cannot be used with",
            ),
            (&["--duration", "soon"][..], "write e.g. 2h"),
            (&["--ends-at", "tomorrow"][..], "not an RFC 3339 time"),
        ] {
            let e = parse(extra).expect_err("refused");
            assert!(e.to_string().contains(want), "{extra:?}: {e}");
        }
    }
}
