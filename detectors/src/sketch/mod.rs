//! Mergeable sketches, so an edge collector can ship summaries and the centre can merge any
//! time range: a KLL quantile sketch, Misra–Gries frequent items, [`ColumnSummary`] combining
//! them with exact counts, and drift tests that run on sketches. All are serde-serialisable
//! (they travel between collectors) and merge in any order within their stated error.

pub mod drift;
mod frequent;
mod kll;
mod summary;

pub use frequent::{DEFAULT_CAPACITY, FrequentItems};
pub use kll::{DEFAULT_K, KllSketch, SortedView, rank_error_for_k};
pub use summary::{ColumnSummary, SummaryConfig};
