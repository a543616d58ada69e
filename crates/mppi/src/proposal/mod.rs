//! Sampling families: the distributions `p(U; θ)` the EM loop samples from and refits.
//!
//! Every family is an exponential family (or, for the mixture, a latent-variable model fitted
//! by inner EM) over a plan `U ∈ R^{T·m}` (docs/theory.md §B.5). Its parameters are exposed as a
//! flat vector in **mean-parameter coordinates** `m(θ) = E_θ[T(U)]`, which is what makes step
//! sizes and acceleration generic: the planner forms
//! `θ_new = θ + α (θ_EM − θ) + β (θ − θ_prev)` on that vector (docs/theory.md §D.2, D.3) and the
//! family only has to say whether the result is inside its domain ([`Proposal::set_params`]).
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

use crate::config::{ProposalKind, ShiftFill, Validated};
use crate::error::{MppiError, check_finite, check_len};
use crate::gaussian::GaussianNoise;
use crate::objective::BLOCK_LANES;
use crate::rng::{BlockRng, SampleRng};

mod beta;
mod categorical;
mod colored;
pub mod config;
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

/// What a proposal may condition on at one iteration: the state the plan starts from, where
/// the loop is, and the spread the [`crate::Schedule`] asks for.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The state the plan starts from (closed loop), `None` for a black-box objective.
    pub state: Option<&'a [f64]>,
    /// Control step (call index of [`crate::Controller::act`], or as passed to the planner).
    pub step: u64,
    /// Iteration within the control step.
    pub iteration: u64,
    /// Iterations planned for this control step.
    pub iterations: u64,
    /// Per-time-step multipliers `s_t` (`T` entries) of the spread to sample with, `u_t =
    /// μ_t + s_t L z_t`, or `None` for the proposal's own spread (`s_t = 1`, the constant
    /// schedule).
    pub spread: Option<&'a [f64]>,
}

impl Context<'_> {
    /// A context without a state, for iteration `iteration` of step `step`, with the
    /// proposal's own spread.
    #[must_use]
    pub fn open_loop(step: u64, iteration: u64, iterations: u64) -> Self {
        Context {
            state: None,
            step,
            iteration,
            iterations,
            spread: None,
        }
    }
}

/// The sampling distribution of the EM loop: draws plans, refits itself to weighted samples
/// (the M-step) and follows the receding horizon.
///
/// Implementations own their parameters and every cache derived from them (Cholesky factors,
/// shape parameters, ...), so sampling and densities allocate nothing. Parameters are a flat
/// vector in mean-parameter coordinates, which is what lets an [`crate::Update`] take steps
/// of any size or with momentum without knowing the proposal. The built-in families are in
/// this module; a user's proposal implements the required methods (the helpers below,
/// [`weighted_sum`], [`weighted_mean`], [`clamp_plan`], [`shift_rows`], ..., are public for it)
/// and checks itself with [`crate::testing`].
///
/// A proposal is `'static` so that [`downcast`] can recover its concrete type: [`Proposal::kl`]
/// compares two instances of the same proposal that way.
pub trait Proposal: Any + Send + Sync + Debug {
    /// The name used in the config (`[proposal] kind = "..."`).
    fn name(&self) -> &'static str;
    /// Plan dimension `d = T · m`.
    fn dim(&self) -> usize;
    /// Control dimension `m` (a plan is `T` rows of `m`).
    fn control_dim(&self) -> usize;
    /// The parameters `θ` in mean-parameter coordinates.
    fn params(&self) -> &[f64];
    /// Replace the parameters (mean coordinates, `params().len()` entries). Returns an error
    /// and leaves the proposal unchanged if `theta` is outside its domain (for example a
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
    /// Called once before the samples of every iteration are drawn, with the state, the
    /// position in the loop and the schedule's spread. The default accepts the proposal's
    /// own spread only and returns an error naming the proposal if a schedule asks for
    /// another; a proposal that can scale its spread per time step, or that conditions on the
    /// state (a learned policy, a denoiser), overrides it. Every built-in family follows a
    /// spread `s`: it samples from its scaled distribution `p_s(·; θ)` (the spread of time step
    /// `t` times `s_t`; each family's module says how), its `log_prob` and `kl` are those of
    /// `p_s`, its parameters stay those of the unscaled family, and its `fit` is the exact
    /// M-step within the scaled family (the base fit mapped back through the scaling).
    fn prepare(&mut self, ctx: &Context<'_>) -> Result<(), MppiError> {
        match ctx.spread {
            Some(s) if s.iter().any(|v| *v != 1.0) => Err(MppiError::config(
                "schedule",
                format!(
                    "proposal `{}` cannot change its spread per iteration or time step: \
                     implement `Proposal::prepare` to follow `Context::spread` (every built-in \
                     family does), or use `[schedule] kind = \"constant\"`",
                    self.name()
                ),
            )),
            _ => Ok(()),
        }
    }
    /// Draw one plan into `u` (`d` entries).
    fn sample(&self, rng: &mut SampleRng, u: &mut [f64]);
    /// Draw one plan per lane of `rng` (sample `l` from lane `l`'s stream) into `soa`
    /// (structure of arrays: entry `i` of lane `l` at `soa[i * lanes + l]`). `rows`
    /// (`lanes × d`) is scratch of the same size; return `true` if it also holds the samples
    /// row-major, `false` if the planner has to transpose when it needs rows.
    ///
    /// The default calls [`Proposal::sample`] lane by lane into `rows` and transposes (returns
    /// `true`). A proposal overrides it to draw across lanes at once; the samples must equal
    /// the default's bit for bit ([`crate::testing::check_proposal`] checks it).
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
    /// Whether [`Proposal::fit_blocks`] is implemented. Then the planner runs the M-step on the
    /// block layout and builds row-major samples only when something else needs them.
    fn fits_blocks(&self) -> bool {
        false
    }
    /// [`Proposal::fit`] on samples in block layout: consecutive blocks of [`BLOCK_LANES`]
    /// samples (the last one may be shorter), structure of arrays within a block. Must give
    /// what `fit` gives on the same samples as rows. Returns `false` if not implemented (the
    /// default), in which case the planner builds rows and calls `fit`.
    fn fit_blocks(&mut self, _blocks: &[f64], _weights: &[f64], _out: &mut [f64]) -> bool {
        false
    }
    /// M-step: the (regularized) maximizer of `Σ_i w_i log p(U_i; θ)` over the samples
    /// (`N × d`, row-major) with normalized weights, written into `out` in mean coordinates.
    /// Samples with zero weight must be ignored.
    fn fit(&mut self, samples: &[f64], weights: &[f64], out: &mut [f64]);
    /// Normalized log-density `log p(u; θ)` of the distribution the last samples were drawn
    /// from, or `None` if the proposal has none (a learned sampler). Without it the loop still
    /// runs; the full diagnostics report NaN and a safeguarded accelerated step is refused
    /// when the planner is built.
    fn log_prob(&self, _u: &[f64]) -> Option<f64> {
        None
    }
    /// `KL(self ‖ other)` when `other` is an instance of the same proposal (get it with
    /// [`downcast`]); `None` if it is not, or if the proposal has no closed form.
    fn kl(&self, _other: &dyn Proposal) -> Option<f64> {
        None
    }
    /// The Williams control-cost quadratic form `Σ uᵀ Σ⁻¹ ε` with the proposal's full sequence
    /// precision, for Gaussian families; `None` where it is not defined.
    fn control_cost(&self, _plan: &[f64], _eps: &[f64]) -> Option<f64> {
        None
    }
    /// A boxed copy (the planner keeps several instances for the current, EM and accelerated
    /// parameters).
    fn clone_box(&self) -> Box<dyn Proposal>;
}

/// `other` as the concrete proposal type `P`, if it is one.
///
/// ```
/// use mppi::proposal::{GaussianFixed, Proposal, downcast};
/// let g = GaussianFixed::new(2, 1, &[1.0], &[-1.0], &[1.0]).unwrap();
/// let boxed: Box<dyn Proposal> = Box::new(g);
/// assert!(downcast::<GaussianFixed>(boxed.as_ref()).is_some());
/// ```
#[must_use]
pub fn downcast<P: Proposal>(other: &dyn Proposal) -> Option<&P> {
    (other as &dyn Any).downcast_ref::<P>()
}

/// Build the proposal a validated config asks for.
pub(crate) fn build(cfg: &Validated) -> Result<Box<dyn Proposal>, MppiError> {
    let p = &cfg.proposal;
    let (t, m, cov, lo, hi) = (
        cfg.horizon,
        cfg.control_dim,
        &cfg.covariance,
        &cfg.u_min,
        &cfg.u_max,
    );
    Ok(match p.kind {
        ProposalKind::Gaussian => Box::new(GaussianFixed::new(t, m, cov, lo, hi)?),
        ProposalKind::GaussianDiag => Box::new(GaussianDiag::new(
            t,
            m,
            cov,
            lo,
            hi,
            p.std_min(),
            p.std_max(),
            p.prior_weight(),
        )?),
        ProposalKind::GaussianFull => Box::new(GaussianFull::new(
            t,
            m,
            cov,
            lo,
            hi,
            p.covariance_block(),
            p.std_min(),
            p.std_max(),
            p.shrinkage(),
            p.prior_weight(),
        )?),
        ProposalKind::Mixture => Box::new(GaussianMixture::new(
            t,
            m,
            cov,
            lo,
            hi,
            MixtureSettings {
                components: p.components(),
                inner_iterations: p.inner_iterations(),
                std_min: p.std_min(),
                std_max: p.std_max(),
                prior_weight: p.prior_weight(),
                samples: cfg.samples,
            },
        )?),
        ProposalKind::Colored => {
            Box::new(ColoredGaussian::new(t, m, cov, p.correlation(), lo, hi)?)
        }
        ProposalKind::Spline => Box::new(SplineGaussian::new(t, p.knots(), m, cov, lo, hi)?),
        ProposalKind::Beta => Box::new(BetaFamily::new(t, m, cov, lo, hi, p.concentration_max())?),
        ProposalKind::Categorical => Box::new(Categorical::new(t, m, p.categories(), p.floor())?),
    })
}

/// Clamp every entry of a plan into per-dimension bounds (entry `i` is dimension `i % m`).
pub fn clamp_plan(u: &mut [f64], u_min: &[f64], u_max: &[f64]) {
    let m = u_min.len();
    for step in u.chunks_exact_mut(m) {
        for ((v, lo), hi) in step.iter_mut().zip(u_min).zip(u_max) {
            *v = v.clamp(*lo, *hi);
        }
    }
}

/// `out = Σ_i w_i U_i` like [`weighted_sum`], for samples in block layout (see
/// [`Proposal::fit_blocks`]). Each coordinate is still summed over `i = 0..N` in order, starting
/// from `0.0`, so for finite samples the result is bit-identical to [`weighted_sum`]: a zero
/// weight adds `±0`, which leaves a sum that started at `+0` unchanged. Four coordinates are
/// summed at a time, reading four contiguous lane rows of the block.
pub fn weighted_sum_blocks(blocks: &[f64], weights: &[f64], out: &mut [f64]) {
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

/// Row-major samples (`N × d`) from the block layout of [`Proposal::fit_blocks`].
pub fn blocks_to_rows(blocks: &[f64], d: usize, rows: &mut [f64]) {
    for (block, out) in blocks
        .chunks(BLOCK_LANES * d)
        .zip(rows.chunks_mut(BLOCK_LANES * d))
    {
        soa_to_rows(block.len() / d, block, out);
    }
}

/// Transpose a block of `lanes` row-major vectors into structure-of-arrays layout.
pub fn rows_to_soa(lanes: usize, rows: &[f64], soa: &mut [f64]) {
    let d = rows.len() / lanes;
    for (l, row) in rows.chunks_exact(d).enumerate() {
        for (i, v) in row.iter().enumerate() {
            soa[i * lanes + l] = *v;
        }
    }
}

/// Transpose a structure-of-arrays block back into `lanes` row-major vectors.
pub fn soa_to_rows(lanes: usize, soa: &[f64], rows: &mut [f64]) {
    let d = soa.len() / lanes;
    for (l, row) in rows.chunks_exact_mut(d).enumerate() {
        for (i, v) in row.iter_mut().enumerate() {
            *v = soa[i * lanes + l];
        }
    }
}

/// Shift a per-time-step array (`T` rows of `width`) one row left; `fill` decides the last row
/// (`Last` keeps the old last row; `Zero` writes `zero_row`).
pub fn shift_rows(values: &mut [f64], width: usize, fill: ShiftFill, zero_row: &[f64]) {
    values.copy_within(width.., 0);
    if fill == ShiftFill::Zero {
        let n = values.len();
        values[n - width..].copy_from_slice(zero_row);
    }
}

/// The zero control clamped into per-dimension bounds: the plan row of a fresh (or
/// zero-filled) distribution.
pub fn clamped_zero_row(u_min: &[f64], u_max: &[f64]) -> Vec<f64> {
    u_min
        .iter()
        .zip(u_max)
        .map(|(lo, hi)| 0.0f64.clamp(*lo, *hi))
        .collect()
}

/// Write `row` into every row of `values` (`values.len()` a multiple of `row.len()`).
pub fn fill_rows(values: &mut [f64], row: &[f64]) {
    for r in values.chunks_exact_mut(row.len()) {
        r.copy_from_slice(row);
    }
}

/// Replace a mean (a plan or knot values) by `theta` projected into the control box, after
/// checking its length and finiteness (`what` names it in the error; the mean is left
/// unchanged on error). The shared `set_params` of the fixed-covariance Gaussians.
pub fn set_clamped_mean(
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
pub fn add_mean_and_clamp(u: &mut [f64], mean: &[f64], u_min: &[f64], u_max: &[f64]) {
    for (ui, mi) in u.iter_mut().zip(mean) {
        *ui += mi;
    }
    clamp_plan(u, u_min, u_max);
}

/// `out = Σ_i w_i U_i` over the rows `U_i` of `samples` (`out.len()` entries each), skipping
/// zero weights: the M-step of a Gaussian with fixed covariance (weights are normalized).
pub fn weighted_sum(samples: &[f64], weights: &[f64], out: &mut [f64]) {
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
pub fn weighted_mean(samples: &[f64], weights: &[f64], mean: &mut [f64]) -> Option<f64> {
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
pub fn step_log_det(noise: &GaussianNoise, m: usize) -> f64 {
    (0..m).map(|i| 2.0 * noise.cholesky()[i * m + i].ln()).sum()
}

/// `Σ_t (a_t − b_t)ᵀ P (a_t − b_t)` over the rows of `m` entries of `a` and `b`, with the
/// per-step precision `P` (row-major `m x m`).
pub fn step_mahalanobis(precision: &[f64], m: usize, a: &[f64], b: &[f64]) -> f64 {
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
pub fn check_spread_limits(std_min: f64, std_max: f64, prior_weight: f64) -> Result<(), MppiError> {
    if !(std_min.is_finite() && std_min > 0.0) {
        return Err(MppiError::config(
            "proposal.std_min",
            format!("must be a finite number > 0, got {std_min}"),
        ));
    }
    if !(std_max.is_finite() && std_max >= std_min) {
        return Err(MppiError::config(
            "proposal.std_max",
            format!("must be finite and >= std_min = {std_min}, got {std_max}"),
        ));
    }
    if !(prior_weight.is_finite() && prior_weight >= 0.0) {
        return Err(MppiError::config(
            "proposal.prior_weight",
            format!("must be a finite number >= 0, got {prior_weight}"),
        ));
    }
    Ok(())
}
