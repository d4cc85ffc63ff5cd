//! The command line: `millwatch run | demo | validate | bench | drift | estimate | alerts |
//! silence | audit | annotate | report | config-reference`.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "millwatch",
    version,
    about = "Watches ML models and the machines they run on: OTLP in, DuckDB, drift, alerts."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collector. With no config file, the embedded default: data in ./millwatch-data,
    /// OTLP on 127.0.0.1:4317 (gRPC) and 127.0.0.1:4318 (HTTP), API on 127.0.0.1:9464.
    Run(RunArgs),
    /// Check a config file and report every error with its location; exit 1 if any. Files it
    /// names (baseline files, CA files) must exist; relative paths are taken from its folder.
    Validate {
        /// The YAML file to check.
        #[arg(long, short)]
        config: PathBuf,
        /// `table` (lines for people) or `json` (`{"file", "ok", "errors": [...]}` on stdout).
        #[arg(long, value_enum, default_value = "table")]
        format: crate::output::OutputFormat,
    },
    /// Offline drift between a reference and a current CSV or Parquet file. Exit 0 whether or
    /// not drift was found (2 with --fail-on-drift when it was), 1 on bad input or when no
    /// column could be tested (no verdict).
    Drift(crate::offline_drift::DriftArgs),
    /// Performance estimated before labels arrive (CBPE for binary classifiers, DLE for
    /// regressors), per chunk of an analysis file against a labelled reference (CSV or
    /// Parquet). Exit 0 (2 with --fail-on-alert when an estimate alerts), 1 on bad input.
    Estimate(crate::offline_estimate::EstimateArgs),
    /// Built-in benchmarks.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
    /// List (or acknowledge) the running collector's alerts.
    Alerts(crate::alerting::cli::AlertsArgs),
    /// Add, list or expire silences on the running collector.
    Silence(crate::alerting::cli::SilenceArgs),
    /// A simulated plant sending to an embedded collector: the first thing to run. Prints
    /// where to look (web UI, /metrics) and one line per incident the plant goes through.
    Demo(crate::demo::DemoArgs),
    /// Verify, export or print the head of the audit log.
    Audit(crate::audit::cli::AuditArgs),
    /// Record a person's note about a model in the audit log of the running collector.
    Annotate(crate::audit::cli::AnnotateArgs),
    /// Write a model's report: versions and deployments, drift, performance, data quality,
    /// incidents and audit entries, as html, json, csv or md.
    Report(crate::report::ReportArgs),
    /// Print the configuration reference (Markdown): every setting with its type, default and
    /// documentation, as docs/configuration.md has it.
    ConfigReference,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// YAML config file; without it the embedded default is used.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Overrides `data_dir`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Overrides the OTLP/gRPC listen address.
    #[arg(long, value_name = "ADDR")]
    pub otlp_grpc: Option<SocketAddr>,
    /// Overrides the OTLP/HTTP listen address.
    #[arg(long, value_name = "ADDR")]
    pub otlp_http: Option<SocketAddr>,
    /// Overrides the API listen address (`/metrics`, `/api/v1`, health).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Overrides `log.format`: `text` (lines for people) or `json` (one JSON object per line,
    /// for log shippers).
    #[arg(long, value_name = "FORMAT", value_parser = parse_log_format)]
    pub log_format: Option<LogFormat>,
    /// Print the effective configuration (defaults filled in) as YAML and exit.
    #[arg(long)]
    pub print_config: bool,
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("`{s}` is not a log format: text or json")),
    }
}

impl RunArgs {
    /// The configuration `run` would use: the file (or the default) with the flags applied.
    pub fn effective_config(&self) -> Result<Config, config::load::ConfigErrors> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(a) = self.otlp_grpc {
            config.receivers.otlp.grpc.endpoint = a;
        }
        if let Some(a) = self.otlp_http {
            config.receivers.otlp.http.endpoint = a;
        }
        if let Some(a) = self.http {
            config.api.endpoint = a;
        }
        if let Some(f) = self.log_format {
            config.log.format = f;
        }
        Ok(config)
    }
}

pub fn main() -> ExitCode {
    // A usage error exits 1, as bad input does: exit 2 means "drift found" to
    // `millwatch drift --fail-on-drift`, and clap's default for usage errors is 2.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Run(args) => {
            let config = match args.effective_config() {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::from(1);
                }
            };
            if args.print_config {
                return print_config(&config);
            }
            init_logging(&config);
            let log_format = config.log.format;
            block_on(log_format, crate::run::run(config))
        }
        Command::Demo(args) => {
            let config = match args.effective_config() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(1);
                }
            };
            if args.run.print_config {
                return print_config(&config);
            }
            init_logging(&config);
            let log_format = config.log.format;
            block_on(log_format, crate::demo::demo(config, &args))
        }
        Command::Validate { config, format } => {
            let found = Config::from_file(&config);
            if format.is_json() {
                let errors: Vec<serde_json::Value> = found.as_ref().err().map_or(Vec::new(), |e| {
                    e.0.iter()
                        .map(|e| {
                            serde_json::json!({
                                "source": e.source, "path": e.path, "line": e.line, "column": e.column,
                                "message": e.message, "hint": e.hint,
                            })
                        })
                        .collect()
                });
                crate::output::print_json(&serde_json::json!({
                    "file": config.display().to_string(), "ok": found.is_ok(), "errors": errors,
                }));
                return if found.is_ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                };
            }
            match found {
                Ok(_) => {
                    println!("{}: ok", config.display());
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Drift(args) => crate::offline_drift::main(args),
        Command::Estimate(args) => crate::offline_estimate::main(args),
        Command::Bench(cmd) => crate::bench::main(cmd),
        Command::Alerts(args) => crate::alerting::cli::alerts_main(args),
        Command::Silence(args) => crate::alerting::cli::silence_main(args),
        Command::Audit(args) => crate::audit::cli::audit_main(args),
        Command::Annotate(args) => crate::audit::cli::annotate_main(args),
        Command::Report(args) => crate::report::main(args),
        Command::ConfigReference => {
            print!("{}", config::reference::markdown());
            ExitCode::SUCCESS
        }
    }
}

/// The effective configuration as YAML (`--print-config`).
fn print_config(config: &Config) -> ExitCode {
    match serde_saphyr::to_string(config) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs `work` (the collector) on a multi-threaded runtime; a failure is said once.
fn block_on(log_format: LogFormat, work: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report_failure(log_format, &e);
            ExitCode::from(1)
        }
    }
}

/// Says once why `run` stopped: as one JSON log record when the logs are JSON (what a log
/// shipper reads), else as one `error:` line.
fn report_failure(format: LogFormat, e: &anyhow::Error) {
    let message = error_text(e);
    match format {
        LogFormat::Json => tracing::error!("{message}"),
        LogFormat::Text => eprintln!("error: {message}"),
    }
}

/// An error and its causes on one line, each said once. DuckDB's errors carry their message
/// and then again as their source, whose own text ("Error code 1: Unknown error code") tells
/// nothing; an I/O error behind a message that quotes it would repeat too.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        if cause.downcast_ref::<duckdb::ffi::Error>().is_some() {
            continue;
        }
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Logs go to stderr: as text, coloured only when stderr is a terminal and `NO_COLOR` is not
/// set, so a file, a pipe or journald gets plain lines; as JSON, one object per line.
fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MILLWATCH_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => {
            let colour = colour_logs(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            );
            builder.with_ansi(colour).init()
        }
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

/// Whether text logs get ANSI colours: only on a terminal, and not when `NO_COLOR` is set to
/// anything but the empty string (<https://no-color.org>).
fn colour_logs(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour_logs(true, None));
        assert!(
            colour_logs(true, Some(OsStr::new(""))),
            "an empty NO_COLOR is unset"
        );
        assert!(!colour_logs(true, Some(OsStr::new("1"))));
        assert!(!colour_logs(false, None), "a file or a pipe");
        assert!(!colour_logs(false, Some(OsStr::new("1"))));
    }

    #[test]
    fn log_format_flag_overrides_the_config() {
        let args = Cli::try_parse_from(["millwatch", "run", "--log-format", "json"]).unwrap();
        let Command::Run(run) = args.command else {
            panic!("not run")
        };
        assert_eq!(run.effective_config().unwrap().log.format, LogFormat::Json);
        let args = Cli::try_parse_from(["millwatch", "run"]).unwrap();
        let Command::Run(run) = args.command else {
            panic!("not run")
        };
        assert_eq!(run.effective_config().unwrap().log.format, LogFormat::Text);
        let e = Cli::try_parse_from(["millwatch", "run", "--log-format", "yaml"]).unwrap_err();
        assert!(e.to_string().contains("text or json"), "{e}");
    }

    #[test]
    fn an_error_is_said_once() {
        let duckdb = duckdb::Error::DuckDBFailure(
            duckdb::ffi::Error::new(1),
            Some("IO Error: Could not set lock on file \"x\"".into()),
        );
        let e = anyhow::Error::new(crate::store::StoreError::from(duckdb))
            .context("opening the store in ./d");
        assert_eq!(
            format!("{e:#}"),
            "opening the store in ./d: DuckDB: IO Error: Could not set lock on file \"x\": \
             IO Error: Could not set lock on file \"x\": Error code 1: Unknown error code",
            "what was printed before"
        );
        assert_eq!(
            error_text(&e),
            "opening the store in ./d: DuckDB: IO Error: Could not set lock on file \"x\""
        );
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = anyhow::Error::new(io)
            .context("reading x")
            .context("starting");
        assert_eq!(error_text(&e), "starting: reading x: denied");
    }
}
