//! The command's error type: a one-line message and an exit status.

use std::fmt;

/// Why `mppi` stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// Bad command line or configuration (exit status 2).
    Usage(String),
    /// Something failed while running or writing results (exit status 1).
    Runtime(String),
}

impl CliError {
    /// A usage / configuration error.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::Usage(message.into())
    }

    /// A run-time error.
    pub fn runtime(message: impl Into<String>) -> Self {
        CliError::Runtime(message.into())
    }

    /// A run-time error from an `anyhow` chain, with every cause on the same line.
    pub fn from_anyhow(error: &anyhow::Error) -> Self {
        CliError::Runtime(format!("{error:#}"))
    }

    /// The process exit status for this error.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Runtime(_) => 1,
        }
    }

    /// The message as a single line (embedded line breaks are folded into spaces).
    #[must_use]
    pub fn one_line(&self) -> String {
        let raw = match self {
            CliError::Usage(m) | CliError::Runtime(m) => m,
        };
        single_line(raw)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.one_line())
    }
}

impl std::error::Error for CliError {}

pub use mppi_config::single_line;

impl From<mppi_config::ConfigError> for CliError {
    fn from(e: mppi_config::ConfigError) -> Self {
        match e {
            mppi_config::ConfigError::Invalid(m) => CliError::Usage(m),
            mppi_config::ConfigError::Internal(m) => CliError::Runtime(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_lines_and_maps_exit_codes() {
        let e = CliError::usage("first\n\n  second  \n");
        assert_eq!(e.one_line(), "first second");
        assert_eq!(e.exit_code(), 2);
        assert_eq!(CliError::runtime("x").exit_code(), 1);
    }
}
