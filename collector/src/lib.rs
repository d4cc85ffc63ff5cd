//! The Millwatch collector: configuration, OTLP receivers, signal mapping, the DuckDB store,
//! the HTTP API and the command line.

pub mod alerting;
pub mod api;
pub mod audit;
pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
pub mod detection;
pub mod offline_drift;
pub mod offline_estimate;
pub mod offline_multivariate;
pub mod output;
pub mod own_results;
pub mod pipeline;
pub mod receivers;
pub mod report;
pub mod run;
pub mod signals;
pub mod store;
pub mod telemetry;
pub mod ui;
