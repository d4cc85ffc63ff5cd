//! `millwatch audit verify | head | export` and `millwatch annotate`. The audit commands read
//! the database of a stopped collector with `--data-dir`, or ask a running one (`--api`);
//! `annotate` always goes through the running collector, whose writer keeps the chain.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use duckdb::{AccessMode, Connection};
use serde_json::{Value, json};

use super::chain::{self, Head, Verification};
use super::query::{self, Filter};
use crate::alerting::cli::{DEFAULT_API, base, block_on, ok, request};

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
    /// Read the database in this data directory (the collector must be stopped: DuckDB lets
    /// one process open it). Without it, the running collector at --api is asked.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// The running collector's API address.
    #[arg(long, default_value = DEFAULT_API, global = true)]
    pub api: String,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain; exit 1 naming the first entry that does not match.
    Verify {
        /// An exported head (`SEQ:HASH`, the JSON of `millwatch audit head`, or a file holding
        /// either): the log must still hold it unchanged, which finds a deleted tail.
        #[arg(long)]
        head: Option<String>,
    },
    /// Print the chain's head (newest sequence number and hash) as JSON, to keep elsewhere.
    Head,
    /// Write entries to a file as JSON lines or CSV.
    Export {
        /// RFC 3339: entries at or after.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339: entries before.
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        model: Option<String>,
        /// An action (alert.fired) or a family (alert).
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        /// jsonl or csv.
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
        format: String,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct AnnotateArgs {
    /// The model the note is about.
    #[arg(long)]
    pub model: String,
    #[arg(long)]
    pub version: Option<String>,
    #[arg(long)]
    pub environment: Option<String>,
    /// Who writes it.
    #[arg(long)]
    pub author: String,
    /// The note: what was done and why.
    #[arg(long)]
    pub text: String,
    /// The running collector's API address.
    #[arg(long, default_value = DEFAULT_API)]
    pub api: String,
}

pub fn annotate_main(args: AnnotateArgs) -> ExitCode {
    block_on(async move {
        let url = format!("{}/api/v1/annotations", base(&args.api));
        let body = json!({
            "model": args.model, "version": args.version, "environment": args.environment,
            "author": args.author, "text": args.text,
        });
        let (status, v) = request(http::Method::POST, &url, Some(body)).await?;
        ok(status, &v)?;
        println!("recorded as audit entry {}", v["seq"]);
        Ok(())
    })
}

pub fn audit_main(args: AuditArgs) -> ExitCode {
    match &args.data_dir {
        Some(dir) => block_on(async move { local(dir, args.command) }),
        None => {
            let api = base(&args.api);
            block_on(async move { remote(&api, args.command).await })
        }
    }
}

/// Opens the data directory's database for reading.
pub(crate) fn open(dir: &Path) -> Result<Connection, String> {
    let path = crate::store::database_path(dir);
    if !path.exists() {
        return Err(format!(
            "there is no Millwatch database at {} (give the collector's data_dir)",
            path.display()
        ));
    }
    let config = duckdb::Config::default()
        .access_mode(AccessMode::ReadOnly)
        .map_err(|e| e.to_string())?;
    Connection::open_with_flags(&path, config).map_err(|e| {
        let m = e.to_string();
        if crate::store::lock::is_lock_conflict(&m) {
            format!("{} is open in a running collector: stop it, or leave out --data-dir to ask it through --api", path.display())
        } else {
            format!("opening {}: {m}", path.display())
        }
    })
}

fn local(dir: &Path, command: AuditCommand) -> Result<(), String> {
    let conn = open(dir)?;
    let db = |e: duckdb::Error| format!("reading the audit log: {e}");
    match command {
        AuditCommand::Verify { head } => {
            let expected = head.as_deref().map(read_head).transpose()?;
            let v = chain::verify(&conn, expected.as_ref()).map_err(db)?;
            outcome(&v, expected.as_ref())
        }
        AuditCommand::Head => {
            let h = chain::head(&conn).map_err(db)?;
            println!("{}", json!(h));
            Ok(())
        }
        AuditCommand::Export {
            since,
            until,
            model,
            action,
            actor,
            format,
            out,
        } => {
            let time = |name: &str, t: &Option<String>| {
                t.as_deref().map(|t| query::parse_time(name, t)).transpose()
            };
            let filter = Filter {
                since: time("--since", &since)?,
                until: time("--until", &until)?,
                model,
                action,
                actor,
                ..Filter::default()
            };
            let entries = query::entries(&conn, &filter).map_err(db)?;
            let body = if format == "csv" {
                query::csv(&entries).map_err(|e| e.to_string())?
            } else {
                query::jsonl(&entries)
            };
            write(&out, &body)?;
            eprintln!("{} entries written to {}", entries.len(), out.display());
            Ok(())
        }
    }
}

async fn remote(api: &str, command: AuditCommand) -> Result<(), String> {
    match command {
        AuditCommand::Verify { head } => {
            let expected = head.as_deref().map(read_head).transpose()?;
            let mut url = format!("{api}/api/v1/audit/verify");
            if let Some(h) = &expected {
                url.push_str(&format!("?head={}:{}", h.seq, h.hash));
            }
            let (status, v) = request(http::Method::GET, &url, None).await?;
            ok(status, &v)?;
            let v: Verification = serde_json::from_value(v.clone())
                .map_err(|e| format!("unexpected answer from {url}: {e}: {v}"))?;
            outcome(&v, expected.as_ref())
        }
        AuditCommand::Head => {
            let (status, v) =
                request(http::Method::GET, &format!("{api}/api/v1/audit/head"), None).await?;
            ok(status, &v)?;
            println!("{v}");
            Ok(())
        }
        AuditCommand::Export {
            since,
            until,
            model,
            action,
            actor,
            format,
            out,
        } => {
            let mut params = form_urlencoded::Serializer::new(String::new());
            for (k, v) in [
                ("since", since),
                ("until", until),
                ("model", model),
                ("action", action),
                ("actor", actor),
            ] {
                if let Some(v) = v {
                    params.append_pair(k, &v);
                }
            }
            let params = params.finish();
            let mut lines = Vec::new();
            let mut entries: Vec<Value> = Vec::new();
            let mut next = Some(format!("/api/v1/audit?{params}&limit=10000"));
            while let Some(path) = next {
                let (status, v) = request(http::Method::GET, &format!("{api}{path}"), None).await?;
                ok(status, &v)?;
                entries.extend(v["entries"].as_array().cloned().unwrap_or_default());
                next = v["next"].as_str().map(str::to_owned);
            }
            let body = if format == "csv" {
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(query::CSV_HEADER)
                    .map_err(|e| e.to_string())?;
                for e in &entries {
                    let cell = |k: &str| match &e[k] {
                        Value::Null => String::new(),
                        Value::String(s) if !matches!(k, "object" | "old_value" | "new_value") => {
                            s.clone()
                        }
                        v => v.to_string(),
                    };
                    w.write_record(query::CSV_HEADER.map(cell))
                        .map_err(|e| e.to_string())?;
                }
                w.into_inner().map_err(|e| e.to_string())?
            } else {
                for e in &entries {
                    lines.extend_from_slice(e.to_string().as_bytes());
                    lines.push(b'\n');
                }
                lines
            };
            write(&out, &body)?;
            eprintln!("{} entries written to {}", entries.len(), out.display());
            Ok(())
        }
    }
}

fn write(out: &Path, body: &[u8]) -> Result<(), String> {
    std::fs::write(out, body).map_err(|e| format!("cannot write {}: {e}", out.display()))
}

/// `--head`: the text itself, or a file holding it.
fn read_head(arg: &str) -> Result<Head, String> {
    let text = if Path::new(arg).is_file() {
        std::fs::read_to_string(arg).map_err(|e| format!("cannot read {arg}: {e}"))?
    } else {
        arg.to_owned()
    };
    Head::parse(&text)
}

/// Prints the verification and fails (exit 1) when the chain does not hold.
fn outcome(v: &Verification, expected: Option<&Head>) -> Result<(), String> {
    if v.ok {
        let against = expected.map_or(String::new(), |h| {
            format!("; the exported head (entry {}) matches", h.seq)
        });
        println!(
            "audit log ok: {} entries, {}..={}, head {}{against}",
            v.entries,
            v.first_seq.unwrap_or(0),
            v.head.seq,
            v.head.hash
        );
        Ok(())
    } else {
        Err(format!(
            "audit log verification failed at entry {}: {}",
            v.first_bad_seq.unwrap_or(0),
            v.problem.as_deref().unwrap_or("")
        ))
    }
}
