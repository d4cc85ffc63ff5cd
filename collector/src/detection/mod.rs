//! The detection engine: per model version a baseline and tumbling windows of inference
//! events, drift / data-quality / performance verdicts on every closed window, machine-health
//! rules over metrics, results in DuckDB and on `/metrics`, and the API that lists them.
//!
//! Layout: `config` (the `detection:` section), `tap` (committed events handed over in
//! memory), `windows` (events as the engine holds them, read from the store or the tap),
//! `baseline`, `model_drift`, `performance`, `estimated` / `estimated_regression` (performance
//! before labels: CBPE, DLE), `multivariate` (PCA reconstruction error), `estimation_gauges`, `streams`
//! (streaming change detectors per event), `task` (classification or regression, for
//! `performance`), `prediction` (prediction distributions), `machine_health`, `results` (table
//! rows and gauges), `state` (persistence), `log_lines` (what the log is told), `engine` (the
//! loop), `api` (HTTP routes).

pub mod api;
pub mod baseline;
pub mod commit_times;
pub mod config;
pub mod engine;
pub mod estimated;
pub mod estimated_regression;
pub mod estimation_gauges;
pub mod log_lines;
pub mod machine_health;
pub mod model_drift;
pub mod multivariate;
pub mod performance;
pub mod prediction;
pub mod results;
pub mod state;
pub mod streams;
pub mod tap;
pub mod task;
pub mod windows;

pub use commit_times::CommitTimes;
pub use config::DetectionConfig;
pub use engine::{DetectionHandle, Engine, Pass, start};
pub use tap::InferenceTap;

#[derive(Debug, thiserror::Error)]
pub enum DetectionError {
    #[error("DuckDB: {0}")]
    DuckDb(#[from] duckdb::Error),
    #[error("registering detection metrics: {0}")]
    Metrics(String),
    #[error("saved detection state: {0}")]
    State(String),
    #[error("cannot start the detection thread: {0}")]
    Start(String),
}

pub type Result<T> = std::result::Result<T, DetectionError>;
