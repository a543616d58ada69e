//! Sampling families: the distributions `p(U; θ)` the EM loop samples from and refits.
//!
//! Every family is an exponential family (or, for the mixture, a latent-variable model fitted
//! by inner EM) over a plan `U ∈ R^{T·m}` (theory-spec B.5). Its parameters are exposed as a
//! flat vector in **mean-parameter coordinates** `m(θ) = E_θ[T(U)]`, which is what makes step
//! sizes and acceleration generic: the planner forms
//! `θ_new = θ + α (θ_EM − θ) + β (θ − θ_prev)` on that vector (theory-spec D.2, D.3) and the
//! family only has to say whether the result is inside its domain ([`Family::set_params`]).
//!
//! | `family =` | type | parameters (mean coordinates) |
//! | --- | --- | --- |
//! | `gaussian` | [`GaussianFixed`] | `μ` (covariance fixed) |
//! | `gaussian_diag` | [`GaussianDiag`] | `μ`, then `E[U_j²]` per coordinate (`std` clamped, prior toward `s₀²`) |
//! | `gaussian_full` | [`GaussianFull`] | `μ`, then `E[U_k U_kᵀ]` per block (step `m x m` or sequence `d x d`; shrinkage, prior, eigenvalue clip) |
//! | `colored` | [`ColoredGaussian`] | `μ` (covariance `K ⊗ Σ_u`, `K_ts = ρ^{|t−s|}`, fixed) |
//! | `spline` | [`SplineGaussian`] | knot means `μ_Y` (`K·m`; plan `B μ_Y`, knot covariance fixed) |
//! | `mixture` | [`GaussianMixture`] | `π` (`C`), then per component `μ_c`, `E_c[U²]` (diagonal; inner EM) |
//! | `beta` | [`BetaFamily`] | `(E log y, E log(1−y))` per coordinate, `y = (u−a)/(b−a)` (capped concentration) |
//! | `categorical` | [`Categorical`] | `π` (`d·K` probabilities over `categories`, floored) |
//!
//! A conformance suite (`tests/families.rs`) runs against every family.

use std::any::Any;
use std::fmt::Debug;

use crate::config::{FamilyKind, ShiftFill, Validated};
use crate::error::MppiError;
use crate::rng::SampleRng;

mod beta;
mod categorical;
mod colored;
mod gaussian_diag;
mod gaussian_fixed;
mod gaussian_full;
mod mixture;
mod spline;

pub use beta::{BetaFamily, digamma, ln_gamma, trigamma};
pub use categorical::Categorical;
pub use colored::ColoredGaussian;
pub use gaussian_diag::GaussianDiag;
pub use gaussian_fixed::GaussianFixed;
pub use gaussian_full::GaussianFull;
pub use mixture::{GaussianMixture, MixtureSettings};
pub use spline::SplineGaussian;

/// A sampling distribution over plans, with the operations the EM loop needs.
///
/// Implementations own their parameters and every cache derived from them (Cholesky factors,
/// shape parameters, ...), so sampling and densities allocate nothing.
pub trait Family: Send + Sync + Debug {
    /// The name used in the config (`family = "..."`).
    fn name(&self) -> &'static str;
    /// Plan dimension `d = T · m`.
    fn dim(&self) -> usize;
    /// Control dimension `m` (a plan is `T` rows of `m`).
    fn control_dim(&self) -> usize;
    /// The parameters `θ` in mean-parameter coordinates.
    fn params(&self) -> &[f64];
    /// Replace the parameters (mean coordinates, `params().len()` entries). Returns an error
    /// and leaves the family unchanged if `theta` is outside the family's domain (for example a
    /// covariance that is not positive definite after an extrapolated step).
    fn set_params(&mut self, theta: &[f64]) -> Result<(), MppiError>;
    /// Back to the initial distribution.
    fn reset(&mut self);
    /// Receding-horizon warm start: drop the first time step, fill the last.
    fn shift(&mut self, fill: ShiftFill);
    /// The plan the controller follows (the mean, or the mode for discrete families), `d`
    /// entries.
    fn plan(&self, out: &mut [f64]);
    /// Move the distribution so that its plan is `plan`, keeping its spread.
    fn set_plan(&mut self, plan: &[f64]) -> Result<(), MppiError>;
    /// Draw one plan into `u` (`d` entries).
    fn sample(&self, rng: &mut SampleRng, u: &mut [f64]);
    /// Normalized log-density `log p(u; θ)`.
    fn log_prob(&self, u: &[f64]) -> f64;
    /// M-step: the (regularized) maximizer of `Σ_i w_i log p(U_i; θ)` over the samples
    /// (`N × d`, row-major) with normalized weights, written into `out` in mean coordinates.
    /// Samples with zero weight must be ignored.
    fn fit(&mut self, samples: &[f64], weights: &[f64], out: &mut [f64]);
    /// `KL(self ‖ other)` for two members of the same family; NaN if `other` is a different
    /// kind of family.
    fn kl(&self, other: &dyn Family) -> f64;
    /// The Williams control-cost quadratic form `Σ uᵀ Σ⁻¹ ε` with the family's full sequence
    /// precision, for Gaussian families; `None` where it is not defined.
    fn control_cost(&self, _plan: &[f64], _eps: &[f64]) -> Option<f64> {
        None
    }
    /// A boxed copy (the planner keeps several instances for the current, EM and accelerated
    /// parameters).
    fn clone_box(&self) -> Box<dyn Family>;
    /// For [`Family::kl`] between two instances of the same concrete type.
    fn as_any(&self) -> &dyn Any;
}

/// Build the family a config asks for.
pub(crate) fn build(cfg: &Validated) -> Result<Box<dyn Family>, MppiError> {
    match cfg.raw.family {
        FamilyKind::Gaussian => Ok(Box::new(GaussianFixed::new(
            cfg.horizon,
            cfg.control_dim,
            &cfg.covariance,
            &cfg.u_min,
            &cfg.u_max,
        )?)),
        FamilyKind::GaussianDiag => Ok(Box::new(GaussianDiag::from_config(cfg)?)),
        FamilyKind::GaussianFull => Ok(Box::new(GaussianFull::from_config(cfg)?)),
        FamilyKind::Mixture => Ok(Box::new(GaussianMixture::from_validated(cfg)?)),
        FamilyKind::Colored => Ok(Box::new(ColoredGaussian::new(
            cfg.horizon,
            cfg.control_dim,
            &cfg.covariance,
            cfg.raw.noise_correlation,
            &cfg.u_min,
            &cfg.u_max,
        )?)),
        FamilyKind::Spline => Ok(Box::new(SplineGaussian::new(
            cfg.horizon,
            cfg.raw.spline_knots,
            cfg.control_dim,
            &cfg.covariance,
            &cfg.u_min,
            &cfg.u_max,
        )?)),
        FamilyKind::Beta => Ok(Box::new(BetaFamily::new(
            cfg.horizon,
            cfg.control_dim,
            &cfg.covariance,
            &cfg.u_min,
            &cfg.u_max,
            cfg.raw.beta_concentration_max,
        )?)),
        FamilyKind::Categorical => Ok(Box::new(Categorical::new(
            cfg.horizon,
            cfg.control_dim,
            &cfg.raw.categories,
            cfg.raw.category_floor,
        )?)),
    }
}

/// Clamp every entry of a plan into per-dimension bounds (entry `i` is dimension `i % m`).
pub(crate) fn clamp_plan(u: &mut [f64], u_min: &[f64], u_max: &[f64]) {
    let m = u_min.len();
    for step in u.chunks_exact_mut(m) {
        for ((v, lo), hi) in step.iter_mut().zip(u_min).zip(u_max) {
            *v = v.clamp(*lo, *hi);
        }
    }
}

/// Shift a per-time-step array (`T` rows of `width`) one row left; `fill` decides the last row
/// (`Last` keeps the old last row; `Zero` writes `zero_row`).
pub(crate) fn shift_rows(values: &mut [f64], width: usize, fill: ShiftFill, zero_row: &[f64]) {
    values.copy_within(width.., 0);
    if fill == ShiftFill::Zero {
        let n = values.len();
        values[n - width..].copy_from_slice(zero_row);
    }
}
