//! A mistake in a config file as the user sees it: `FILE:LINE:COLUMN: PATH: MESSAGE (hint: HINT)`,
//! every mistake of a file one per line.

use std::fmt;

/// One mistake in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or other source) the config came from, as shown to the user.
    pub source: String,
    /// Dotted path of the setting, such as `alerts.rules[2].for`; empty for a file-wide error.
    pub path: String,
    /// Line in the file, from 1, when known.
    pub line: Option<usize>,
    /// Column in the file, from 1, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// How to put it right, when there is something useful to say.
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.source)?;
        if let Some(line) = self.line {
            write!(f, "{line}:")?;
            if let Some(column) = self.column {
                write!(f, "{column}:")?;
            }
        }
        if !self.path.is_empty() {
            write!(f, " {}:", self.path)?;
        }
        write!(f, " {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// Every mistake found in a config file, in file order; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A problem with a loaded config that serde cannot see (a file it names that is not there,
/// ...), found by the `check` of [`super::load_file_checked`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the setting, such as `detection.models[0].baseline.file`; reported at
    /// the line of that key (or of its nearest ancestor written in the file).
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to put it right.
    pub hint: Option<String>,
}
