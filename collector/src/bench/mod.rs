//! `millwatch bench`: built-in benchmarks that print figures (never pass/fail on time).

pub mod bodies;
pub mod exposition;
pub mod ingest;
pub mod scrape;
pub mod ui;

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// OTLP load generator: sends identical pre-encoded requests and reports acknowledged
    /// items/s, request latency and errors. Without --target it starts a collector of its own
    /// (this binary, a temporary data directory) and also reports that collector's CPU and RSS.
    Ingest(ingest::IngestArgs),
    /// `/metrics` through the HTTP listener: starts a collector, fills it with --series series
    /// over OTLP, and times GETs of /metrics as text 0.0.4, OpenMetrics and gzip (p50/p99, bytes).
    Exposition(exposition::ExpositionArgs),
    /// The web UI's page times: fills a store with --models models x --features features over
    /// --days days of windows (and machines), starts a collector on it and times GETs of every
    /// page (server time from its Server-Timing header, and to the last byte).
    Ui(ui::UiArgs),
}

/// Runs a benchmark's async body on a multi-threaded runtime; an error is printed, exit 1.
fn block_on(body: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(body) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

pub fn main(cmd: BenchCommand) -> ExitCode {
    match cmd {
        BenchCommand::Ingest(args) => block_on(ingest::run(args)),
        BenchCommand::Exposition(args) => block_on(exposition::run(args)),
        BenchCommand::Ui(args) => block_on(ui::run(args)),
    }
}
