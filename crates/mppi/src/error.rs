//! Typed errors of the library.
//!
//! Policy: anything that comes from user data or configuration (a bad value, mismatched
//! dimensions, a non-finite state) is returned as an [`MppiError`]; the library never panics on
//! it. Non-finite *costs* are not errors: they get zero weight and are counted in the
//! diagnostics (see [`crate::weights`]).

use thiserror::Error;

/// Everything that can go wrong when building or running a planner.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum MppiError {
    /// A configuration value is outside its valid range or inconsistent with another one.
    #[error("invalid config value for `{field}`: {reason}")]
    InvalidConfig {
        /// The config key, as written in a TOML file or `--set key=value`.
        field: &'static str,
        /// What is wrong and what would be valid.
        reason: String,
    },
    /// A slice handed to the library has the wrong length.
    #[error("dimension mismatch for {what}: expected {expected}, got {got}")]
    DimensionMismatch {
        /// Which argument.
        what: &'static str,
        /// The length the planner was built for.
        expected: usize,
        /// The length that was passed.
        got: usize,
    },
    /// A state or other input contains NaN or an infinity.
    #[error("{what} has a non-finite entry at index {index}")]
    NonFinite {
        /// Which argument.
        what: &'static str,
        /// The first offending index.
        index: usize,
    },
    /// A batch objective could not score the samples (a callback into another language
    /// raised, returned the wrong shape, ...). The planner stops the iteration and returns it;
    /// the plan is left as it was before the iteration.
    #[error("the objective failed: {reason}")]
    Objective {
        /// What went wrong, in the objective's words.
        reason: String,
    },
}

impl MppiError {
    /// Shorthand for [`MppiError::InvalidConfig`].
    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        MppiError::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }
}

/// Check that `got == expected`, naming the argument in the error.
pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), MppiError> {
    if expected == got {
        Ok(())
    } else {
        Err(MppiError::DimensionMismatch {
            what,
            expected,
            got,
        })
    }
}

/// Check that every entry is finite, naming the argument and the first bad index.
pub(crate) fn check_finite(what: &'static str, values: &[f64]) -> Result<(), MppiError> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(MppiError::NonFinite { what, index }),
    }
}
