//! `millwatch bench`: built-in benchmarks that print figures (never pass/fail on time).

pub mod bodies;
pub mod ingest;

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// OTLP load generator: sends identical pre-encoded requests and reports acknowledged
    /// items/s, request latency and errors. Without --target it starts a collector of its own
    /// (this binary, a temporary data directory) and also reports that collector's CPU and RSS.
    Ingest(ingest::IngestArgs),
}

pub fn main(cmd: BenchCommand) -> ExitCode {
    match cmd {
        BenchCommand::Ingest(args) => ingest::main(args),
    }
}
