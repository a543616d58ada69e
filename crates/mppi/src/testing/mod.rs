//! Conformance checks for stages written outside the crate: a [`Proposal`] of your own, and
//! [`Dynamics`] + [`Cost`] models with hand-written block kernels.
//!
//! The planner relies on properties the type system cannot state. It draws samples with
//! [`Proposal::sample_block`] but other code paths (plots, diagnostics, tests) use
//! [`Proposal::sample`], so the two must agree bit for bit, or results change with the code
//! path. It fits with [`Proposal::fit_blocks`] when it can and with [`Proposal::fit`] when it
//! cannot, so those must agree too. Rollouts call the `*_block` methods of a model, and
//! everything else calls the scalar ones. A mistake in any of these compiles, runs, and
//! quietly gives worse plans.
//!
//! [`check_proposal`] and [`check_dynamics`] test those properties. Each returns the first
//! one that fails, with the numbers, as a [`ConformanceError`]. Call them from a unit test of
//! your own:
//!
//! ```
//! use mppi::proposal::GaussianFixed;
//! use mppi::testing::check_proposal;
//! let proposal = GaussianFixed::new(5, 2, &[1.0, 0.3, 0.3, 0.5], &[-2.0, -2.0], &[2.0, 2.0])?;
//! check_proposal(&proposal, 7).expect("conforms");
//! # Ok::<(), mppi::MppiError>(())
//! ```
//!
//! [`theory`] has the checks of the EM theory itself (docs/theory.md §C.2): the M-step identity
//! `ΔQ̂ = KL`, the sufficient increase of the true `L` on fresh samples, and unbiased parameter
//! recovery, each with its tolerance derived next to it.
//!
//! The checks allocate, so don't call them in a control loop.

use std::fmt;

use crate::config::ShiftFill;
use crate::objective::{BLOCK_LANES, Cost, Dynamics};
use crate::proposal::{Context, Proposal, rows_to_soa};
use crate::rng::{BlockRng, Normals};

/// The first property a checked stage fails, and what was measured.
///
/// ```
/// use mppi::testing::ConformanceError;
/// let e = ConformanceError {
///     subject: "my_proposal".into(),
///     property: "kl(p, p) = 0",
///     detail: "KL = 0.1".into(),
/// };
/// assert_eq!(e.to_string(), "`my_proposal` fails `kl(p, p) = 0`: KL = 0.1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConformanceError {
    /// What was checked: the proposal's [`Proposal::name`], or the type name of the dynamics
    /// or cost.
    pub subject: String,
    /// The property that does not hold, e.g. `sample_block == sample`.
    pub property: &'static str,
    /// Where it fails and by how much (block, lane, entry, both values, the tolerance).
    pub detail: String,
}

impl fmt::Display for ConformanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` fails `{}`: {}",
            self.subject, self.property, self.detail
        )
    }
}

impl std::error::Error for ConformanceError {}

/// Tolerance of [`check_proposal`] on values that must match "up to round-off" (parameter
/// round trips, `set_plan(plan)`, fits with and without zero-weight samples), relative to
/// `1 + |value|`.
pub const ROUND_OFF_TOLERANCE: f64 = 1e-9;

/// Tolerance of [`check_proposal`] on `|KL(p ‖ p)|`.
pub const KL_TOLERANCE: f64 = 1e-9;

/// Tolerance of [`check_dynamics`] on the float32 block methods, relative to `1 + |value|`
/// (about 80 float32 ulps at 1): a kernel in `f32` rounds every operation, so it cannot match
/// the `f64` scalar methods bit for bit. The tolerance actually used is the larger of this and
/// the `tol` argument.
pub const F32_TOLERANCE: f64 = 1e-5;

/// `Err` with the subject, property and detail.
fn failure<T>(
    subject: &str,
    property: &'static str,
    detail: impl Into<String>,
) -> Result<T, ConformanceError> {
    Err(ConformanceError {
        subject: subject.to_string(),
        property,
        detail: detail.into(),
    })
}

/// The first entry of `v` that is not finite, with its index.
fn first_nonfinite(v: &[f64]) -> Option<(usize, f64)> {
    v.iter().copied().enumerate().find(|(_, x)| !x.is_finite())
}

/// `max_i |a_i − b_i| / (1 + |b_i|)` and where it is largest (NaN where either is NaN).
fn worst_scaled_diff(a: &[f64], b: &[f64]) -> (usize, f64) {
    let mut worst = (0, 0.0f64);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let d = (x - y).abs() / (1.0 + y.abs());
        if d.is_nan() {
            return (i, f64::NAN);
        }
        if d > worst.1 {
            worst = (i, d);
        }
    }
    worst
}

/// `value <= tol`, false for NaN (a NaN difference is a failure).
fn within(value: f64, tol: f64) -> bool {
    value <= tol
}

/// The first index where `a` and `b` differ in their bits.
fn first_bit_difference(a: &[f64], b: &[f64]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x.to_bits() != y.to_bits())
}

mod dynamics;
mod proposal;
#[cfg(test)]
mod tests;
pub mod theory;

pub use dynamics::check_dynamics;
pub use proposal::check_proposal;
