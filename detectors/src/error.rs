//! The crate's error type: every way a statistic can refuse its input, shared by all modules.

/// Why a detector, test or sketch refused its input. Messages name the offending input so the
/// CLI and the engine can pass them on unchanged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DetectorError {
    /// A sample or stream that must hold values holds none.
    #[error("{0} is empty")]
    Empty(String),
    /// NaN or an infinity where only finite numbers make sense.
    #[error("{0} holds a NaN or infinite value")]
    NonFinite(String),
    /// Every value is the same where the statistic needs spread (e.g. a standard deviation).
    #[error("{0} is constant")]
    Constant(String),
    /// A parameter outside its domain (threshold, bin count, sizes that do not match, ...).
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The input does not have the shape the operation needs (lengths differ, unknown test...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A test or column was asked for that does not exist or does not apply.
    #[error("not applicable: {0}")]
    NotApplicable(String),
    /// Text (CSV) could not be parsed.
    #[error("parse error at line {line}: {message}")]
    Parse {
        /// 1-based line of the input where the problem was found.
        line: usize,
        /// What was wrong.
        message: String,
    },
}

/// The crate's result alias.
pub type Result<T> = std::result::Result<T, DetectorError>;

/// Refuses empty input and any NaN or infinity; `what` names the input in the message.
pub fn check_finite(values: &[f64], what: &str) -> Result<()> {
    if values.is_empty() {
        return Err(DetectorError::Empty(what.to_string()));
    }
    // A branch-free fold per chunk vectorises; `any` would stop at each value to test.
    if values
        .chunks(1024)
        .any(|c| c.iter().fold(false, |bad, v| bad | !v.is_finite()))
    {
        return Err(DetectorError::NonFinite(what.to_string()));
    }
    Ok(())
}
