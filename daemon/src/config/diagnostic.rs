//! Positions and messages shared by errors and warnings.

use std::fmt;

/// A message tied to a place in a configuration file.
///
/// `line` and `column` are 1-based; `column` counts characters (a tab is
/// one column). Problems that have no place in the text, such as a file
/// that cannot be read, use line 0 and column 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Diagnostic {
    pub fn new(file: &str, line: usize, column: usize, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// The single problem that stopped parsing: a syntax error, a semantic
/// error (limits, duplicates, unknown names) or an unreadable file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub Diagnostic);

impl ConfigError {
    pub fn new(file: &str, line: usize, column: usize, message: impl Into<String>) -> Self {
        ConfigError(Diagnostic::new(file, line, column, message))
    }

    pub fn diagnostic(&self) -> &Diagnostic {
        &self.0
    }
}
