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
//! | `mixture` | [`GaussianMixture`] | `π` (`C`), then per component `μ_c`, `s_c²` (diagonal; inner EM; moment coordinates: a mixture has no mean parameters) |
//! | `beta` | [`BetaFamily`] | `(E log y, E log(1−y))` per coordinate, `y = (u−a)/(b−a)` (capped concentration) |
//! | `categorical` | [`Categorical`] | `π` (`d·K` probabilities over `categories`, floored) |
//!
//! A conformance suite (`tests/families.rs`) runs against every family.

use std::any::Any;
use std::fmt::Debug;

use crate::config::{FamilyKind, ShiftFill, Validated};
use crate::error::{MppiError, check_finite, check_len};
use crate::gaussian::GaussianNoise;
use crate::objective::BLOCK_LANES;
use crate::rng::{BlockRng, SampleRng};

mod beta;
mod categorical;
mod colored;
mod gaussian_diag;
mod gaussian_fixed;
mod gaussian_full;
mod mixture;
mod spline;
#[cfg(test)]
pub(crate) mod test_support;
pub mod warnings;

pub use beta::{BetaFamily, digamma, ln_gamma, trigamma};
pub use categorical::Categorical;
pub use colored::ColoredGaussian;
pub use gaussian_diag::GaussianDiag;
pub use gaussian_fixed::GaussianFixed;
pub use gaussian_full::GaussianFull;
pub use mixture::{GaussianMixture, MixtureSettings};
pub use spline::SplineGaussian;
pub use warnings::spread_warnings;

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
    /// Draw one plan per lane of `rng` (sample `l` from lane `l`'s stream) into `soa`
    /// (structure of arrays: entry `i` of lane `l` at `soa[i * lanes + l]`). `rows`
    /// (`lanes × d`) is scratch of the same size; return `true` if it also holds the samples
    /// row-major, `false` if the planner has to transpose when it needs rows.
    ///
    /// The default calls [`Family::sample`] lane by lane into `rows` and transposes (returns
    /// `true`). A family overrides it to draw across lanes at once; the samples must equal the
    /// default's bit for bit.
    fn sample_block(&self, rng: &mut BlockRng, rows: &mut [f64], soa: &mut [f64]) -> bool {
        let d = self.dim();
        for (l, u) in rows.chunks_exact_mut(d).enumerate() {
            let mut lane = rng.lane(l);
            self.sample(&mut lane, u);
            rng.set_lane(l, &lane);
        }
        rows_to_soa(rng.lanes(), rows, soa);
        true
    }
    /// Whether [`Family::fit_blocks`] is implemented. Then the planner runs the M-step on the
    /// block layout and builds row-major samples only when something else needs them.
    fn fits_blocks(&self) -> bool {
        false
    }
    /// [`Family::fit`] on samples in block layout: consecutive blocks of [`BLOCK_LANES`]
    /// samples (the last one may be shorter), structure of arrays within a block. Must give
    /// what `fit` gives on the same samples as rows. Returns `false` if not implemented (the
    /// default), in which case the planner builds rows and calls `fit`.
    fn fit_blocks(&mut self, _blocks: &[f64], _weights: &[f64], _out: &mut [f64]) -> bool {
        false
    }
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

/// `out = Σ_i w_i U_i` like [`weighted_sum`], for samples in block layout (see
/// [`Family::fit_blocks`]). Each coordinate is still summed over `i = 0..N` in order, starting
/// from `0.0`, so for finite samples the result is bit-identical to [`weighted_sum`]: a zero
/// weight adds `±0`, which leaves a sum that started at `+0` unchanged. Four coordinates are
/// summed at a time, reading four contiguous lane rows of the block.
pub(crate) fn weighted_sum_blocks(blocks: &[f64], weights: &[f64], out: &mut [f64]) {
    const GROUP: usize = 4;
    let d = out.len();
    out.fill(0.0);
    for (block, w) in blocks
        .chunks(BLOCK_LANES * d)
        .zip(weights.chunks(BLOCK_LANES))
    {
        let lanes = w.len();
        let row = |i: usize| &block[i * lanes..][..lanes];
        let mut groups = out.chunks_exact_mut(GROUP);
        for (g, acc) in (&mut groups).enumerate() {
            let rows: [&[f64]; GROUP] = std::array::from_fn(|k| row(g * GROUP + k));
            let mut sums: [f64; GROUP] = std::array::from_fn(|k| acc[k]);
            for (l, wl) in w.iter().enumerate() {
                for k in 0..GROUP {
                    sums[k] += wl * rows[k][l];
                }
            }
            acc.copy_from_slice(&sums);
        }
        let first = d - d % GROUP;
        for (i, acc) in groups.into_remainder().iter_mut().enumerate() {
            for (wl, v) in w.iter().zip(row(first + i)) {
                *acc += wl * v;
            }
        }
    }
}

/// Row-major samples (`N × d`) from the block layout of [`Family::fit_blocks`].
pub(crate) fn blocks_to_rows(blocks: &[f64], d: usize, rows: &mut [f64]) {
    for (block, out) in blocks
        .chunks(BLOCK_LANES * d)
        .zip(rows.chunks_mut(BLOCK_LANES * d))
    {
        soa_to_rows(block.len() / d, block, out);
    }
}

/// Transpose a block of `lanes` row-major vectors into structure-of-arrays layout.
pub(crate) fn rows_to_soa(lanes: usize, rows: &[f64], soa: &mut [f64]) {
    let d = rows.len() / lanes;
    for (l, row) in rows.chunks_exact(d).enumerate() {
        for (i, v) in row.iter().enumerate() {
            soa[i * lanes + l] = *v;
        }
    }
}

/// Transpose a structure-of-arrays block back into `lanes` row-major vectors.
pub(crate) fn soa_to_rows(lanes: usize, soa: &[f64], rows: &mut [f64]) {
    let d = soa.len() / lanes;
    for (l, row) in rows.chunks_exact_mut(d).enumerate() {
        for (i, v) in row.iter_mut().enumerate() {
            *v = soa[i * lanes + l];
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

/// The zero control clamped into per-dimension bounds: the plan row of a fresh (or
/// zero-filled) distribution.
pub(crate) fn clamped_zero_row(u_min: &[f64], u_max: &[f64]) -> Vec<f64> {
    u_min
        .iter()
        .zip(u_max)
        .map(|(lo, hi)| 0.0f64.clamp(*lo, *hi))
        .collect()
}

/// Write `row` into every row of `values` (`values.len()` a multiple of `row.len()`).
pub(crate) fn fill_rows(values: &mut [f64], row: &[f64]) {
    for r in values.chunks_exact_mut(row.len()) {
        r.copy_from_slice(row);
    }
}

/// Replace a mean (a plan or knot values) by `theta` projected into the control box, after
/// checking its length and finiteness (`what` names it in the error; the mean is left
/// unchanged on error). The shared `set_params` of the fixed-covariance Gaussians.
pub(crate) fn set_clamped_mean(
    what: &'static str,
    mean: &mut [f64],
    theta: &[f64],
    u_min: &[f64],
    u_max: &[f64],
) -> Result<(), MppiError> {
    check_len(what, mean.len(), theta.len())?;
    check_finite(what, theta)?;
    mean.copy_from_slice(theta);
    clamp_plan(mean, u_min, u_max);
    Ok(())
}

/// `u ← clamp(u + mean)`: a zero-mean draw in `u` moved to `mean` and clamped into the box.
pub(crate) fn add_mean_and_clamp(u: &mut [f64], mean: &[f64], u_min: &[f64], u_max: &[f64]) {
    for (ui, mi) in u.iter_mut().zip(mean) {
        *ui += mi;
    }
    clamp_plan(u, u_min, u_max);
}

/// `out = Σ_i w_i U_i` over the rows `U_i` of `samples` (`out.len()` entries each), skipping
/// zero weights: the M-step of a Gaussian with fixed covariance (weights are normalized).
pub(crate) fn weighted_sum(samples: &[f64], weights: &[f64], out: &mut [f64]) {
    out.fill(0.0);
    for (w, u) in weights.iter().zip(samples.chunks_exact(out.len())) {
        if *w != 0.0 {
            for (acc, ui) in out.iter_mut().zip(u) {
                *acc += w * ui;
            }
        }
    }
}

/// `mean = Σ_i w_i U_i / Σ_i w_i` over the positive weights, returning `Σ_i w_i`; `None` (and
/// `mean` untouched) when the weights sum to zero or are not finite. Adapted-spread families
/// use it so their fit is defined for unnormalized weights too.
pub(crate) fn weighted_mean(samples: &[f64], weights: &[f64], mean: &mut [f64]) -> Option<f64> {
    let wsum: f64 = weights.iter().filter(|w| **w > 0.0).sum();
    if !(wsum > 0.0 && wsum.is_finite()) {
        return None;
    }
    weighted_sum(samples, weights, mean);
    for v in mean.iter_mut() {
        *v /= wsum;
    }
    Some(wsum)
}

/// `log det Σ` of a per-step covariance from its Cholesky factor: `Σ_i 2 log L_ii`.
pub(crate) fn step_log_det(noise: &GaussianNoise, m: usize) -> f64 {
    (0..m).map(|i| 2.0 * noise.cholesky()[i * m + i].ln()).sum()
}

/// `Σ_t (a_t − b_t)ᵀ P (a_t − b_t)` over the rows of `m` entries of `a` and `b`, with the
/// per-step precision `P` (row-major `m x m`).
pub(crate) fn step_mahalanobis(precision: &[f64], m: usize, a: &[f64], b: &[f64]) -> f64 {
    let mut total = 0.0;
    for (at, bt) in a.chunks_exact(m).zip(b.chunks_exact(m)) {
        for i in 0..m {
            let di = at[i] - bt[i];
            let mut row = 0.0;
            for j in 0..m {
                row += precision[i * m + j] * (at[j] - bt[j]);
            }
            total += di * row;
        }
    }
    total
}

/// Shared range checks of the spread regularization keys (`std_min`, `std_max`,
/// `prior_weight`).
pub(crate) fn check_spread_limits(
    std_min: f64,
    std_max: f64,
    prior_weight: f64,
) -> Result<(), MppiError> {
    if !(std_min.is_finite() && std_min > 0.0) {
        return Err(MppiError::config(
            "std_min",
            format!("must be a finite number > 0, got {std_min}"),
        ));
    }
    if !(std_max.is_finite() && std_max >= std_min) {
        return Err(MppiError::config(
            "std_max",
            format!("must be finite and >= std_min = {std_min}, got {std_max}"),
        ));
    }
    if !(prior_weight.is_finite() && prior_weight >= 0.0) {
        return Err(MppiError::config(
            "prior_weight",
            format!("must be a finite number >= 0, got {prior_weight}"),
        ));
    }
    Ok(())
}
