//! Millwatch's statistics: pure functions and small state machines, no I/O, no async.

pub mod charts;
pub mod dataset;
pub mod drift;
pub mod error;
pub mod estimation;
pub mod performance;
pub mod quality;
pub mod sketch;
pub mod stream;

pub use error::{DetectorError, Result};
