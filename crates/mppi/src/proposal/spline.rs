//! Gaussian over spline knots, interpolated to the horizon (DIAL-MPC style, docs/theory.md §B.4.4).
//!
//! The family samples `K = spline_knots` knots `Y ∈ R^{K×m}`, `Y_k = μ_k + η_k`,
//! `η_k ~ N(0, Σ_u)` independently per knot, and maps them to a plan `U = B Y ∈ R^{T×m}` with
//! a fixed interpolation matrix `B ∈ R^{T×K}`.
//!
//! **Interpolation.** Knots sit at evenly spaced times `τ_k = k h`, `h = (T − 1)/(K − 1)`,
//! spanning the horizon (first knot at step 0, last at step `T − 1`), and `B` is
//! piecewise-linear interpolation through them (the order-1 B-spline "hat" basis): for step
//! `t` with `τ_i ≤ t ≤ τ_{i+1}`, `U_t = (1 − s) Y_i + s Y_{i+1}`, `s = (t − τ_i)/h`. Linear
//! interpolation is chosen over the quadratic/cubic splines of DIAL-MPC because every row of
//! `B` is a convex combination (`B ≥ 0`, rows sum to 1): knot means inside the control box
//! give plans inside the box, `B` has two non-zeros per row (sampling costs `O(T m²)`), and
//! `B` interpolates (`U_{τ_k} = Y_k` whenever `τ_k` is an integer step). With `K = T`, `B = I`
//! and the family is `gaussian`.
//!
//! **EM in knot space.** The density of `U` is degenerate (rank `K m` in `R^{T m}`), so the
//! family is the exponential family of the knots: sufficient statistic `Y`, mean parameter
//! `μ` (`K·m` entries, [`Proposal::params`]). A plan is mapped back to its knots by least squares,
//! `Y = B⁺ U` with the precomputed pseudo-inverse `B⁺ = (BᵀB)⁻¹Bᵀ` (so `B⁺B = I`), which is
//! exact for every plan in `range(B)`, in particular every unclamped sample. The M-step is
//! then the exact knot-space M-step `μ⁺ = Σ_i w_i B⁺U_i = B⁺ Σ_i w_i U_i`, and
//! [`Proposal::log_prob`] is the knot density `log N(B⁺u; μ, I_K ⊗ Σ_u)`, which is what the EM
//! objective `Σ_i w_i log p(Y_i; θ)` uses.
//!
//! **Clamping approximation.** Samples are clamped into `[u_min, u_max]` after interpolation.
//! A clamped sample is generally not in `range(B)`; its knots are then the least-squares
//! projection `B⁺ clamp(BY)`, not the drawn `Y`, and the M-step is the EM step of the
//! projected samples (the same clipping bias as in the other families, docs/theory.md §B.4.5).
//!
//! **Warm start.** [`Proposal::shift`] shifts the plan `B μ` by one step in U-space and projects
//! it back onto the spline space, `μ ← B⁺ shift(B μ)`.
//!
//! **Control cost.** The Williams term is the knot-space one,
//! `(B⁺ plan)ᵀ (I_K ⊗ Σ_u⁻¹) (B⁺ ε)`, i.e. the IS log-ratio of the knot densities
//! (docs/theory.md §B.4.8 applied to the knot Gaussian).
//!
//! **Schedule spread.** With a [`crate::Schedule`]'s multipliers `s_t` ([`Context::spread`])
//! the noise of knot `k` is multiplied by `σ_k = s_{t_k}`, the spread of the time step nearest
//! the knot, `t_k = ⌊τ_k + ½⌋` (`τ_k = k (T − 1)/(K − 1)`; a knot half-way between two steps
//! takes the later one): `Y_k = μ_k + σ_k η_k`, knot covariance `σ_k² Σ_u`. `log_prob` and `kl`
//! are those of the scaled knot distribution,
//!
//! ```text
//! log p_s(u) = −½ K log det(2π Σ_u) − m Σ_k ln σ_k − ½ Σ_k e_kᵀ Σ_u⁻¹ e_k / σ_k²,   e = B⁺u − μ,
//! KL = ½ Σ_k (μ_a − μ_b)_kᵀ Σ_u⁻¹ (μ_a − μ_b)_k / σ_k²,
//! ```
//!
//! and the M-step is the same `B⁺ Σ_i w_i U_i` (the knot covariance is fixed within an
//! iteration, so it is the exact M-step of `p_s`; nothing to unscale). The Williams term keeps
//! the unscaled knot precision, as [`super::GaussianFixed`] does. `kl` is `None` between
//! instances prepared with different spreads.

use super::downcast;
use nalgebra::DMatrix;

use crate::config::ShiftFill;
use crate::error::{MppiError, check_finite, check_len};
use crate::gaussian::GaussianNoise;
use crate::rng::{BlockRng, SampleRng};

use super::{
    Context, Proposal, clamp_plan, clamped_zero_row, fill_rows, set_clamped_mean, shift_rows,
    step_log_det, step_mahalanobis, weighted_sum, weighted_sum_blocks,
};

/// Gaussian over `K` knots, linearly interpolated to a `T`-step plan (`family = "spline"`).
///
/// ```
/// use mppi::proposal::{Proposal, SplineGaussian};
/// let inf = f64::INFINITY;
/// // 5 steps, 3 knots at steps 0, 2, 4
/// let mut f = SplineGaussian::new(5, 3, 1, &[1.0], &[-inf], &[inf]).unwrap();
/// f.set_params(&[0.0, 1.0, 0.0]).unwrap();
/// let mut plan = [0.0; 5];
/// f.plan(&mut plan);
/// assert_eq!(plan, [0.0, 0.5, 1.0, 0.5, 0.0]);
/// // log_prob is the density of the knots B⁺u = (0, 1, 0): the mean, so −(3/2) log 2π
/// let expected = -1.5 * (2.0 * std::f64::consts::PI).ln();
/// assert!((f.log_prob(&plan).unwrap() - expected).abs() < 1e-12);
/// ```
#[derive(Debug, Clone)]
pub struct SplineGaussian {
    m: usize,
    horizon: usize,
    knots: usize,
    noise: GaussianNoise,
    /// `T x K` interpolation matrix, row-major.
    basis: Vec<f64>,
    /// Per step `t`: the first knot `i` with `B_{t,i}, B_{t,i+1}` the only non-zeros.
    segment: Vec<usize>,
    /// Per knot `k`: the steps `first..last` where column `k` of `B` can be non-zero.
    knot_rows: Vec<(usize, usize)>,
    /// `K x T` pseudo-inverse `B⁺ = (BᵀB)⁻¹Bᵀ`, row-major.
    pinv: Vec<f64>,
    /// Knot means `μ` (`K x m`).
    mean: Vec<f64>,
    u_min: Vec<f64>,
    u_max: Vec<f64>,
    zero_row: Vec<f64>,
    /// Scratch plan (`T x m`) for `fit` and `shift`.
    plan_scratch: Vec<f64>,
    /// `−½ log det(2π Σ_u)` of one knot.
    log_norm: f64,
    /// Per knot `k`: the time step `t_k` nearest to it, whose spread it takes.
    knot_step: Vec<usize>,
    /// Per knot: the spread multiplier `σ_k = s_{t_k}` (all 1 when `!scaled`).
    knot_spread: Vec<f64>,
    /// `m Σ_k ln σ_k`, the spread's share of the knot log-determinant (0 when `!scaled`).
    log_spread: f64,
    scaled: bool,
}

impl SplineGaussian {
    /// A spline Gaussian over `horizon` steps of `m` controls with `knots` knots
    /// (`2 ≤ knots ≤ horizon`), per-knot covariance `covariance` (row-major `m x m`), and
    /// samples clamped into `[u_min, u_max]`.
    pub fn new(
        horizon: usize,
        knots: usize,
        m: usize,
        covariance: &[f64],
        u_min: &[f64],
        u_max: &[f64],
    ) -> Result<Self, MppiError> {
        check_len("u_min", m, u_min.len())?;
        check_len("u_max", m, u_max.len())?;
        if !(2..=horizon).contains(&knots) {
            return Err(MppiError::config(
                "proposal.knots",
                format!("must be between 2 and horizon = {horizon}, got {knots}"),
            ));
        }
        let noise = GaussianNoise::new(m, covariance)?;
        let (basis, segment) = linear_basis(horizon, knots);
        let b = DMatrix::from_row_slice(horizon, knots, &basis);
        let gram = b.transpose() * &b;
        let chol = gram.cholesky().ok_or_else(|| {
            MppiError::config(
                "proposal.knots",
                "the interpolation matrix is rank deficient (use at most horizon knots)",
            )
        })?;
        let pinv_m = chol.solve(&b.transpose());
        let mut pinv = vec![0.0; knots * horizon];
        for k in 0..knots {
            for t in 0..horizon {
                pinv[k * horizon + t] = pinv_m[(k, t)];
            }
        }
        let knot_rows = (0..knots)
            .map(|k| {
                let first = segment.iter().position(|&i| i + 1 >= k).unwrap_or(horizon);
                let last = segment.iter().rposition(|&i| i <= k).map_or(0, |t| t + 1);
                (first, last.max(first))
            })
            .collect();
        let log_det = step_log_det(&noise, m);
        let zero_row = clamped_zero_row(u_min, u_max);
        let mut family = SplineGaussian {
            m,
            horizon,
            knots,
            noise,
            basis,
            segment,
            knot_rows,
            pinv,
            mean: vec![0.0; knots * m],
            u_min: u_min.to_vec(),
            u_max: u_max.to_vec(),
            zero_row,
            plan_scratch: vec![0.0; horizon * m],
            log_norm: -0.5 * (m as f64 * (2.0 * std::f64::consts::PI).ln() + log_det),
            knot_step: (0..knots)
                .map(|k| nearest_step(k, horizon, knots))
                .collect(),
            knot_spread: vec![1.0; knots],
            log_spread: 0.0,
            scaled: false,
        };
        family.reset();
        Ok(family)
    }

    /// The interpolation matrix `B` (`T x K`, row-major).
    #[must_use]
    pub fn basis(&self) -> &[f64] {
        &self.basis
    }

    /// The pseudo-inverse `B⁺ = (BᵀB)⁻¹Bᵀ` (`K x T`, row-major).
    #[must_use]
    pub fn pseudo_inverse(&self) -> &[f64] {
        &self.pinv
    }

    /// Number of knots `K`.
    #[must_use]
    pub fn knots(&self) -> usize {
        self.knots
    }

    /// The per-knot noise model `Σ_u`.
    #[must_use]
    pub fn noise(&self) -> &GaussianNoise {
        &self.noise
    }

    /// Knots of a plan by least squares: `out = B⁺ u` (`K x m`).
    pub fn knots_of(&self, u: &[f64], out: &mut [f64]) {
        project(&self.pinv, self.horizon, self.m, u, out);
    }

    /// `U = B Y` for knots `y` (`K x m`) into `out` (`T x m`).
    fn interpolate(&self, y: &[f64], out: &mut [f64]) {
        let m = self.m;
        for (t, row) in out.chunks_exact_mut(m).enumerate() {
            let i = self.segment[t];
            let (a, b) = (
                self.basis[t * self.knots + i],
                self.basis[t * self.knots + i + 1],
            );
            for (j, v) in row.iter_mut().enumerate() {
                *v = a * y[i * m + j] + b * y[(i + 1) * m + j];
            }
        }
    }

    /// Entry `(k, j)` of `B⁺ x − y0` (`y0` may be empty for zero).
    fn knot_entry(&self, x: &[f64], y0: &[f64], k: usize, j: usize) -> f64 {
        let m = self.m;
        let row = &self.pinv[k * self.horizon..(k + 1) * self.horizon];
        let mut s = 0.0;
        for (t, p) in row.iter().enumerate() {
            s += p * x[t * m + j];
        }
        if y0.is_empty() { s } else { s - y0[k * m + j] }
    }

    /// The knot spreads `σ_k` (`K` entries; all 1 with the own spread).
    #[must_use]
    pub fn knot_spread(&self) -> &[f64] {
        &self.knot_spread
    }

    /// `Σ_k (B⁺x − x0)_kᵀ Σ_u⁻¹ (B⁺y − y0)_k` without scratch (`x0`, `y0` may be empty).
    fn knot_bilinear(&self, x: &[f64], x0: &[f64], y: &[f64], y0: &[f64]) -> f64 {
        self.knot_bilinear_with::<false>(x, x0, y, y0)
    }

    /// [`Self::knot_bilinear`] with knot `k`'s term divided by `σ_k²` when `SCALED`
    /// (monomorphized so the unscaled sum is the one it always was).
    fn knot_bilinear_with<const SCALED: bool>(
        &self,
        x: &[f64],
        x0: &[f64],
        y: &[f64],
        y0: &[f64],
    ) -> f64 {
        let m = self.m;
        let p = self.noise.precision();
        let mut total = 0.0;
        for k in 0..self.knots {
            let mut knot = 0.0;
            for i in 0..m {
                let a = self.knot_entry(x, x0, k, i);
                if a == 0.0 {
                    continue;
                }
                let mut row = 0.0;
                for j in 0..m {
                    row += p[i * m + j] * self.knot_entry(y, y0, k, j);
                }
                if SCALED {
                    knot += a * row;
                } else {
                    total += a * row;
                }
            }
            if SCALED {
                let s = self.knot_spread[k];
                total += knot / (s * s);
            }
        }
        total
    }

    /// `Σ_k (a_k − b_k)ᵀ Σ_u⁻¹ (a_k − b_k)` for two knot arrays, each knot's term divided by
    /// `σ_k²` when scaled.
    fn knot_mahalanobis(&self, a: &[f64], b: &[f64]) -> f64 {
        let (p, m) = (self.noise.precision(), self.m);
        if !self.scaled {
            return step_mahalanobis(p, m, a, b);
        }
        a.chunks_exact(m)
            .zip(b.chunks_exact(m))
            .zip(&self.knot_spread)
            .map(|((ak, bk), s)| step_mahalanobis(p, m, ak, bk) / (s * s))
            .sum()
    }
}

/// The time step nearest to knot `k` at `τ_k = k (T − 1)/(K − 1)`: `⌊τ_k + ½⌋`, in integers
/// so that knots on a step land on it exactly.
fn nearest_step(k: usize, horizon: usize, knots: usize) -> usize {
    let gaps = knots - 1;
    ((2 * k * (horizon - 1) + gaps) / (2 * gaps)).min(horizon - 1)
}

/// `out = P x` for `P` (`K x T`, row-major) and `x` (`T x m`), `out` (`K x m`).
fn project(pinv: &[f64], horizon: usize, m: usize, x: &[f64], out: &mut [f64]) {
    for (k, row) in out.chunks_exact_mut(m).enumerate() {
        row.fill(0.0);
        let p = &pinv[k * horizon..(k + 1) * horizon];
        for (pt, xt) in p.iter().zip(x.chunks_exact(m)) {
            for (o, v) in row.iter_mut().zip(xt) {
                *o += pt * v;
            }
        }
    }
}

/// The linear-interpolation matrix (`T x K`, row-major) through knots at `τ_k = k (T−1)/(K−1)`,
/// and the segment index of each step.
fn linear_basis(horizon: usize, knots: usize) -> (Vec<f64>, Vec<usize>) {
    let mut basis = vec![0.0; horizon * knots];
    let mut segment = vec![0; horizon];
    let span = (horizon - 1) as f64;
    let gaps = (knots - 1) as f64;
    for t in 0..horizon {
        // position in knot units, computed as t (K−1)/(T−1) so knot times land exactly
        let s = if horizon > 1 {
            t as f64 * gaps / span
        } else {
            0.0
        };
        let i = (s.floor() as usize).min(knots - 2);
        let frac = (s - i as f64).clamp(0.0, 1.0);
        basis[t * knots + i] = 1.0 - frac;
        basis[t * knots + i + 1] = frac;
        segment[t] = i;
    }
    (basis, segment)
}

impl Proposal for SplineGaussian {
    fn name(&self) -> &'static str {
        "spline"
    }
    fn dim(&self) -> usize {
        self.horizon * self.m
    }
    fn control_dim(&self) -> usize {
        self.m
    }
    /// The knot means `μ` (`K·m` entries).
    fn params(&self) -> &[f64] {
        &self.mean
    }
    /// Any finite knot means are valid; they are projected into the control box (which keeps
    /// the interpolated plan in the box, `B` being row-stochastic).
    fn set_params(&mut self, theta: &[f64]) -> Result<(), MppiError> {
        set_clamped_mean(
            "spline parameters",
            &mut self.mean,
            theta,
            &self.u_min,
            &self.u_max,
        )
    }
    fn reset(&mut self) {
        fill_rows(&mut self.mean, &self.zero_row);
    }
    /// `μ ← B⁺ shift(B μ)`: the U-space shift projected on the spline space.
    fn shift(&mut self, fill: ShiftFill) {
        let mut plan = std::mem::take(&mut self.plan_scratch);
        self.interpolate(&self.mean, &mut plan);
        shift_rows(&mut plan, self.m, fill, &self.zero_row);
        project(&self.pinv, self.horizon, self.m, &plan, &mut self.mean);
        clamp_plan(&mut self.mean, &self.u_min, &self.u_max);
        self.plan_scratch = plan;
    }
    /// `B μ`.
    fn plan(&self, out: &mut [f64]) {
        self.interpolate(&self.mean, out);
    }
    /// `μ ← B⁺ plan` (the least-squares knots of `plan`).
    fn set_plan(&mut self, plan: &[f64]) -> Result<(), MppiError> {
        check_len("plan", self.dim(), plan.len())?;
        check_finite("plan", plan)?;
        project(&self.pinv, self.horizon, self.m, plan, &mut self.mean);
        clamp_plan(&mut self.mean, &self.u_min, &self.u_max);
        Ok(())
    }
    /// Accepts any spread of `T` finite multipliers `> 0` (each knot takes the one of its
    /// nearest step); `None` (or all ones) restores the own spread.
    fn prepare(&mut self, ctx: &Context<'_>) -> Result<(), MppiError> {
        match ctx.spread {
            Some(s) => {
                check_len("schedule spread", self.horizon, s.len())?;
                if let Some(t) = s.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
                    return Err(MppiError::config(
                        "schedule",
                        format!(
                            "spread of time step {t} must be a finite number > 0, got {}",
                            s[t]
                        ),
                    ));
                }
                for (sk, t) in self.knot_spread.iter_mut().zip(&self.knot_step) {
                    *sk = s[*t];
                }
                self.scaled = self.knot_spread.iter().any(|v| *v != 1.0);
                self.log_spread =
                    self.m as f64 * self.knot_spread.iter().map(|v| v.ln()).sum::<f64>();
            }
            None if self.scaled => {
                self.knot_spread.fill(1.0);
                self.log_spread = 0.0;
                self.scaled = false;
            }
            None => {}
        }
        Ok(())
    }
    /// `u = clamp(B (μ + σ η))`, `η_k = L_u z_k`: the knot noise is drawn one scalar at a time
    /// (knot-major, then dimension) and scattered through `B` and `L_u`, so no scratch is
    /// needed.
    fn sample(&self, rng: &mut SampleRng, u: &mut [f64]) {
        let m = self.m;
        let l = self.noise.cholesky();
        self.interpolate(&self.mean, u);
        for k in 0..self.knots {
            for j in 0..m {
                let mut z: f64 = rng.normal();
                if self.scaled {
                    z *= self.knot_spread[k];
                }
                // knot k only touches the steps of segments k − 1 and k
                let (first, last) = self.knot_rows[k];
                for (t, row) in u.chunks_exact_mut(m).enumerate().take(last).skip(first) {
                    let b = self.basis[t * self.knots + k];
                    if b == 0.0 {
                        continue;
                    }
                    for (i, v) in row.iter_mut().enumerate().skip(j) {
                        *v += b * l[i * m + j] * z;
                    }
                }
            }
        }
        clamp_plan(u, &self.u_min, &self.u_max);
    }
    /// Draws across lanes into `soa`: the knot normals of every lane first (into `rows`, used
    /// as scratch), then the operations of `sample` in its order with the lanes innermost, so
    /// each lane gets exactly what `sample` draws from its stream.
    fn sample_block(&self, rng: &mut BlockRng, rows: &mut [f64], soa: &mut [f64]) -> bool {
        let (lanes, m) = (rng.lanes(), self.m);
        let l = self.noise.cholesky();
        // knot k, dimension j of lane `lane` at z[(k m + j) lanes + lane]: the order of `sample`
        let z = &mut rows[..self.knots * m * lanes];
        rng.normal_rows(z);
        if self.scaled {
            for (r, zr) in z.chunks_exact_mut(lanes).enumerate() {
                let s = self.knot_spread[r / m];
                zr.iter_mut().for_each(|v| *v *= s);
            }
        }
        for (t, step) in soa.chunks_exact_mut(m * lanes).enumerate() {
            let i = self.segment[t];
            let (a, b) = (
                self.basis[t * self.knots + i],
                self.basis[t * self.knots + i + 1],
            );
            for (j, row) in step.chunks_exact_mut(lanes).enumerate() {
                row.fill(a * self.mean[i * m + j] + b * self.mean[(i + 1) * m + j]);
            }
        }
        for k in 0..self.knots {
            let (first, last) = self.knot_rows[k];
            for j in 0..m {
                let zr = &z[(k * m + j) * lanes..(k * m + j + 1) * lanes];
                for t in first..last {
                    let b = self.basis[t * self.knots + k];
                    if b == 0.0 {
                        continue;
                    }
                    for i in j..m {
                        let c = b * l[i * m + j];
                        let row = &mut soa[(t * m + i) * lanes..(t * m + i + 1) * lanes];
                        for (v, zv) in row.iter_mut().zip(zr) {
                            *v += c * zv;
                        }
                    }
                }
            }
        }
        for (r, row) in soa.chunks_exact_mut(lanes).enumerate() {
            let (lo, hi) = (self.u_min[r % m], self.u_max[r % m]);
            row.iter_mut().for_each(|v| *v = v.clamp(lo, hi));
        }
        false
    }
    fn fits_blocks(&self) -> bool {
        true
    }
    /// [`Proposal::fit`] from the block layout: the same weighted sum, then the projection.
    fn fit_blocks(&mut self, blocks: &[f64], weights: &[f64], out: &mut [f64]) -> bool {
        let acc = &mut self.plan_scratch;
        weighted_sum_blocks(blocks, weights, acc);
        project(&self.pinv, self.horizon, self.m, acc, out);
        true
    }
    /// The knot density `log N(B⁺u; μ, I_K ⊗ Σ_u)` (the U-space density is degenerate); with
    /// a spread, of `N(B⁺u; μ, diag(σ_k²) ⊗ Σ_u)`.
    fn log_prob(&self, u: &[f64]) -> Option<f64> {
        if self.scaled {
            let q = self.knot_bilinear_with::<true>(u, &self.mean, u, &self.mean);
            return Some(self.knots as f64 * self.log_norm - self.log_spread - 0.5 * q);
        }
        Some({
            self.knots as f64 * self.log_norm
                - 0.5 * self.knot_bilinear(u, &self.mean, u, &self.mean)
        })
    }
    /// `μ⁺ = B⁺ Σ_i w_i U_i = Σ_i w_i B⁺U_i` (zero weights skipped).
    fn fit(&mut self, samples: &[f64], weights: &[f64], out: &mut [f64]) {
        let acc = &mut self.plan_scratch;
        weighted_sum(samples, weights, acc);
        project(&self.pinv, self.horizon, self.m, acc, out);
    }
    /// Same knot covariance: `KL = ½ Σ_k (μ_a − μ_b)_kᵀ Σ_u⁻¹ (μ_a − μ_b)_k` (each knot's term
    /// over `σ_k²` with a spread); `None` unless `other` is a spline Gaussian with the same
    /// horizon, knots, `Σ_u` and knot spreads.
    fn kl(&self, other: &dyn Proposal) -> Option<f64> {
        match downcast::<SplineGaussian>(other) {
            Some(o)
                if o.horizon == self.horizon
                    && o.knots == self.knots
                    && o.m == self.m
                    && o.noise == self.noise
                    && o.knot_spread == self.knot_spread =>
            {
                Some(0.5 * self.knot_mahalanobis(&self.mean, &o.mean))
            }
            _ => None,
        }
    }
    /// Knot-space Williams term `(B⁺ plan)ᵀ (I_K ⊗ Σ_u⁻¹) (B⁺ ε)` (the unscaled precision at
    /// any spread); `0` for empty input and NaN for other lengths that do not match the plan
    /// dimension.
    fn control_cost(&self, plan: &[f64], eps: &[f64]) -> Option<f64> {
        let d = self.dim();
        if plan.is_empty() && eps.is_empty() {
            return Some(0.0);
        }
        if plan.len() != d || eps.len() != d {
            return Some(f64::NAN);
        }
        Some(self.knot_bilinear(plan, &[], eps, &[]))
    }
    fn clone_box(&self) -> Box<dyn Proposal> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    //! Checks of the knot parameterization and the knot-space EM (docs/theory.md §B.4.4, H4).

    use super::*;
    use crate::proposal::test_support::{
        Z_TOL, assert_sufficient_increase, costs_of, em_step, max_z, sample_set, weights_from_costs,
    };
    use crate::proposal::test_support::{prepared, test_spread};
    use crate::rng::sample_rng;

    const INF: f64 = f64::INFINITY;

    fn family(t: usize, k: usize, m: usize, sigma_u: &[f64]) -> SplineGaussian {
        SplineGaussian::new(t, k, m, sigma_u, &vec![-INF; m], &vec![INF; m]).unwrap()
    }

    fn max_abs(a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    /// Rows of `B` are convex combinations (partition of unity, `B ≥ 0`) and `B` interpolates
    /// at the knot times (DIAL-MPC's 16 steps / 4 knots: knots at steps 0, 5, 10, 15).
    #[test]
    fn basis_is_a_partition_of_unity_and_interpolates() {
        for (t, k) in [(16, 4), (30, 4), (7, 7), (10, 3), (5, 2), (13, 6)] {
            let f = family(t, k, 1, &[1.0]);
            for row in f.basis().chunks_exact(k) {
                let s: f64 = row.iter().sum();
                assert!((s - 1.0).abs() <= 1e-15, "T={t} K={k}: row sum {s}");
                assert!(row.iter().all(|b| *b >= 0.0));
            }
        }
        let f = family(16, 4, 1, &[1.0]);
        for knot in 0..4 {
            let row = &f.basis()[5 * knot * 4..(5 * knot + 1) * 4];
            for (j, b) in row.iter().enumerate() {
                assert_eq!(*b, if j == knot { 1.0 } else { 0.0 });
            }
        }
        // K = T is the identity
        let f = family(5, 5, 1, &[1.0]);
        for (i, row) in f.basis().chunks_exact(5).enumerate() {
            for (j, b) in row.iter().enumerate() {
                assert_eq!(*b, if i == j { 1.0 } else { 0.0 });
            }
        }
    }

    /// `B⁺ B = I` (≤ 1e-12).
    #[test]
    fn pseudo_inverse_is_a_left_inverse() {
        for (t, k) in [(16, 4), (30, 4), (7, 7), (10, 3), (13, 6)] {
            let f = family(t, k, 1, &[1.0]);
            let (b, p) = (f.basis(), f.pseudo_inverse());
            let mut worst: f64 = 0.0;
            for i in 0..k {
                for j in 0..k {
                    let v: f64 = (0..t).map(|s| p[i * t + s] * b[s * k + j]).sum();
                    worst = worst.max((v - if i == j { 1.0 } else { 0.0 }).abs());
                }
            }
            assert!(worst <= 1e-12, "T={t} K={k}: ‖B⁺B − I‖_max = {worst:e}");
        }
    }

    /// Unclamped samples lie in `range(B)`: `B B⁺ u = u` (≤ 1e-12), and their knots have the
    /// per-knot covariance `Σ_u`: the mean and the variance (about the known mean) of every
    /// knot entry over 1e5 samples within `Z_TOL = 5` SE, `SE(mean) = σ/√N`,
    /// `SE(variance) = σ²√(2/N)` (Gaussian fourth moment; 16 statistics), and the variances
    /// `Σ_u × 1.05` and means `μ × 1.05` are missed. (Before: 2e4 samples, at which a 5%
    /// variance error is only 3.5 SE.)
    #[test]
    fn samples_lie_in_the_spline_space() {
        let (t, k, m) = (12, 4, 2);
        let mut f = family(t, k, m, &[0.5, 0.2, 0.2, 0.3]);
        let mu: Vec<f64> = (0..k * m).map(|i| (i as f64).sin()).collect();
        f.set_params(&mu).unwrap();
        let (mut u, mut y, mut back) = (vec![0.0; t * m], vec![0.0; k * m], vec![0.0; t * m]);
        let n = 100_000;
        let mut sum_y = vec![0.0; k * m];
        let mut sq = vec![0.0; k * m];
        for i in 0..n {
            f.sample(&mut sample_rng(2, 0, 0, i), &mut u);
            f.knots_of(&u, &mut y);
            f.interpolate(&y, &mut back);
            assert!(max_abs(&u, &back) <= 1e-12);
            for (s, v) in sum_y.iter_mut().zip(&y) {
                *s += v;
            }
            for ((q, v), m0) in sq.iter_mut().zip(&y).zip(&mu) {
                *q += (v - m0).powi(2);
            }
        }
        let nf = n as f64;
        let var_of = |j: usize| if j.is_multiple_of(2) { 0.5f64 } else { 0.3 };
        let z_means = |scale: f64| {
            max_z((0..k * m).map(|j| (sum_y[j] / nf, scale * mu[j], (var_of(j) / nf).sqrt())))
        };
        let z_vars = |scale: f64| {
            max_z((0..k * m).map(|j| {
                let v = var_of(j);
                (sq[j] / nf, scale * v, v * (2.0 / nf).sqrt())
            }))
        };
        let (zm, zv) = (z_means(1.0), z_vars(1.0));
        let (zm_p, zv_p) = (z_means(1.05), z_vars(1.05));
        eprintln!(
            "spline knots: max |z| means {zm:.2}, variances {zv:.2} (tol {Z_TOL}); × 1.05: {zm_p:.1}, {zv_p:.1}"
        );
        assert!(zm <= Z_TOL && zv <= Z_TOL);
        assert!(zm_p > Z_TOL && zv_p > Z_TOL, "no power against 5% errors");
    }

    /// The M-step recovers the knots of noiseless plans exactly: one-hot weights give the
    /// sample's knots, general weights give `Σ_i w_i Y_i`.
    #[test]
    fn fit_of_noiseless_plans_recovers_the_knots() {
        let (t, k, m, n) = (16, 4, 2, 5);
        let mut f = family(t, k, m, &[1.0, 0.0, 0.0, 1.0]);
        let ys: Vec<f64> = (0..n * k * m).map(|i| (0.7 * i as f64).cos()).collect();
        let mut samples = vec![0.0; n * t * m];
        for (y, u) in ys.chunks_exact(k * m).zip(samples.chunks_exact_mut(t * m)) {
            f.interpolate(y, u);
        }
        let mut out = vec![0.0; k * m];
        let mut w = vec![0.0; n];
        w[3] = 1.0;
        f.fit(&samples, &w, &mut out);
        assert!(max_abs(&out, &ys[3 * k * m..4 * k * m]) <= 1e-12);
        let w = [0.1, 0.2, 0.3, 0.15, 0.25];
        f.fit(&samples, &w, &mut out);
        let mut expected = vec![0.0; k * m];
        for (wi, y) in w.iter().zip(ys.chunks_exact(k * m)) {
            for (e, v) in expected.iter_mut().zip(y) {
                *e += wi * v;
            }
        }
        assert!(max_abs(&out, &expected) <= 1e-12);
    }

    /// H4 in knot space: `ΔQ̂ == KL(p_{θ⁺} ‖ p_{θ_k})` (1e-8 rel), `KL > 0`.
    #[test]
    fn h4_empirical_sufficient_increase() {
        let (t, k, m, n) = (16, 4, 2, 300);
        let mut f = family(t, k, m, &[0.6, 0.2, 0.2, 0.5]);
        f.set_params(&[0.1, -0.2, 0.3, 0.0, -0.1, 0.2, 0.4, -0.3])
            .unwrap();
        let d = t * m;
        let samples = sample_set(&f, n, 9);
        let cost = |u: &[f64]| -> f64 {
            u.iter()
                .enumerate()
                .map(|(j, v)| (v - 0.5 * (j as f64 / 5.0).sin()).powi(2) + 0.3 * (4.0 * v).cos())
                .sum()
        };
        let mut w = weights_from_costs(&costs_of(&samples, d, cost), 2.0);
        w[0] = 0.0; // a zero weight is ignored
        let s: f64 = w.iter().sum();
        w.iter_mut().for_each(|x| *x /= s);
        let g = em_step(&f, &samples, &w);
        assert_sufficient_increase("spline H4", &f, &g, &samples, &w);
    }

    /// `log_prob` is the knot density; the control-cost term is the knot-space bilinear form.
    #[test]
    fn knot_density_and_control_cost() {
        let (t, k, m) = (9, 3, 2);
        let sigma_u = [0.5, 0.1, 0.1, 0.2];
        let mut f = family(t, k, m, &sigma_u);
        let mu = [0.3, -0.1, 0.2, 0.4, -0.5, 0.0];
        f.set_params(&mu).unwrap();
        let y = [0.1, 0.2, -0.3, 0.4, 0.0, -0.6];
        let mut u = vec![0.0; t * m];
        f.interpolate(&y, &mut u);
        let det = 0.5 * 0.2 - 0.01;
        let prec = [0.2 / det, -0.1 / det, -0.1 / det, 0.5 / det];
        let quad = |a: &[f64], b: &[f64]| -> f64 {
            a.chunks_exact(2)
                .zip(b.chunks_exact(2))
                .map(|(x, z)| {
                    x[0] * (prec[0] * z[0] + prec[1] * z[1])
                        + x[1] * (prec[2] * z[0] + prec[3] * z[1])
                })
                .sum()
        };
        let e: Vec<f64> = y.iter().zip(&mu).map(|(a, b)| a - b).collect();
        let expected =
            -0.5 * (k as f64 * (2.0 * (2.0 * std::f64::consts::PI).ln() + det.ln()) + quad(&e, &e));
        assert!((f.log_prob(&u).unwrap() - expected).abs() <= 1e-12);
        let mut plan = vec![0.0; t * m];
        f.plan(&mut plan);
        let eps: Vec<f64> = u.iter().zip(&plan).map(|(a, b)| a - b).collect();
        let cc = f.control_cost(&plan, &eps).unwrap();
        assert!((cc - quad(&mu, &e)).abs() <= 1e-12);
        assert_eq!(f.control_cost(&[], &[]), Some(0.0));
    }

    /// The shift is the U-space shift projected on the spline space: a plan that stays in the
    /// spline space after shifting (a constant) is shifted exactly; in general the shifted
    /// knots are the least-squares fit.
    #[test]
    fn shift_projects_the_shifted_plan() {
        let (t, k) = (7, 7);
        let mut f = family(t, k, 1, &[1.0]);
        f.set_params(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]).unwrap();
        f.shift(ShiftFill::Last);
        assert_eq!(f.params(), &[2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 7.0]);
        let mut f = family(16, 4, 1, &[1.0]);
        f.set_params(&[0.5; 4]).unwrap();
        f.shift(ShiftFill::Last);
        assert!(max_abs(f.params(), &[0.5; 4]) <= 1e-12);
        // a linear ramp over the old horizon: shifted ramp with the last value held
        f.set_params(&[0.0, 1.0, 2.0, 3.0]).unwrap();
        let mut plan = vec![0.0; 16];
        f.plan(&mut plan);
        f.shift(ShiftFill::Zero);
        let mut shifted = plan[1..].to_vec();
        shifted.push(0.0);
        let mut y = vec![0.0; 4];
        f.knots_of(&shifted, &mut y);
        assert!(max_abs(f.params(), &y) <= 1e-12);
    }

    #[test]
    fn invalid_input_is_rejected() {
        let mut f = family(6, 3, 1, &[1.0]);
        f.set_params(&[0.1, 0.2, 0.3]).unwrap();
        assert!(f.set_params(&[0.0, f64::INFINITY, 0.0]).is_err());
        assert!(f.set_params(&[0.0; 6]).is_err());
        assert_eq!(f.params(), &[0.1, 0.2, 0.3]);
        assert!(f.set_plan(&[0.0; 3]).is_err());
        for knots in [1, 7] {
            match SplineGaussian::new(6, knots, 1, &[1.0], &[-INF], &[INF]) {
                Err(MppiError::InvalidConfig { field, .. }) => assert_eq!(field, "proposal.knots"),
                other => panic!("expected a config error, got {other:?}"),
            }
        }
        // clamped samples at the bounds still have a finite knot density
        let g = SplineGaussian::new(8, 3, 1, &[9.0], &[-0.2], &[0.2]).unwrap();
        let mut u = [0.0; 8];
        g.sample(&mut sample_rng(4, 0, 0, 0), &mut u);
        assert!(u.iter().all(|v| (-0.2..=0.2).contains(v)));
        assert!(g.log_prob(&u).unwrap().is_finite());
    }

    /// Knots take the spread of their nearest step (`⌊τ_k + ½⌋`); with a spread `log_prob` is
    /// the scaled knot density and `kl` the scaled knot KL (closed forms, 1e-12); invalid
    /// spreads are errors; `None` restores the own density bit for bit.
    #[test]
    fn spread_knot_steps_density_and_kl() {
        for (t, k, steps) in [
            (16, 4, vec![0, 5, 10, 15]),
            (9, 4, vec![0, 3, 5, 8]),
            (4, 3, vec![0, 2, 3]),
            (5, 5, vec![0, 1, 2, 3, 4]),
        ] {
            assert_eq!(family(t, k, 1, &[1.0]).knot_step, steps, "T = {t}, K = {k}");
        }
        let (t, k, m) = (9, 3, 2);
        let sigma_u = [0.5, 0.1, 0.1, 0.2];
        let s = test_spread(t);
        let f = family(t, k, m, &sigma_u);
        let mut a = prepared(&f, &s);
        // knots at steps 0, 4, 8: s = 0.5, 0.75, 1.0
        assert_eq!(a.knot_spread(), &[0.5, 0.75, 1.0]);
        let mu = [0.3, -0.1, 0.2, 0.4, -0.5, 0.0];
        a.set_params(&mu).unwrap();
        let y = [0.1, 0.2, -0.3, 0.4, 0.0, -0.6];
        let mut u = vec![0.0; t * m];
        a.interpolate(&y, &mut u);
        let det = 0.5 * 0.2 - 0.01;
        let prec = [0.2 / det, -0.1 / det, -0.1 / det, 0.5 / det];
        let quad = |x: &[f64]| {
            x[0] * (prec[0] * x[0] + prec[1] * x[1]) + x[1] * (prec[2] * x[0] + prec[3] * x[1])
        };
        let sk = [0.5, 0.75, 1.0];
        let mut expected = -0.5 * k as f64 * (2.0 * (2.0 * std::f64::consts::PI).ln() + det.ln());
        for knot in 0..k {
            let e = [
                y[2 * knot] - mu[2 * knot],
                y[2 * knot + 1] - mu[2 * knot + 1],
            ];
            expected -= m as f64 * f64::ln(sk[knot]) + 0.5 * quad(&e) / (sk[knot] * sk[knot]);
        }
        let lp_err = (a.log_prob(&u).unwrap() - expected).abs();
        let mut b = prepared(&f, &s);
        b.set_params(&y).unwrap();
        let kl_expected: f64 = (0..k)
            .map(|knot| {
                let e = [
                    y[2 * knot] - mu[2 * knot],
                    y[2 * knot + 1] - mu[2 * knot + 1],
                ];
                0.5 * quad(&e) / (sk[knot] * sk[knot])
            })
            .sum();
        let kl_err = (b.kl(&a).unwrap_or(f64::NAN) - kl_expected).abs();
        eprintln!(
            "spline spread: |log_prob − closed form| {lp_err:.1e}, |kl − closed form| {kl_err:.1e}"
        );
        assert!(lp_err <= 1e-12 && kl_err <= 1e-12);
        assert!(a.kl(&f).is_none());
        let mut back = a.clone();
        back.prepare(&Context::open_loop(0, 1, 2)).unwrap();
        let mut own = f.clone();
        own.set_params(&mu).unwrap();
        assert_eq!(back.log_prob(&u), own.log_prob(&u));
        assert_eq!(back.knot_spread(), &[1.0; 3]);
        let short = Context {
            spread: Some(&s[1..]),
            ..Context::open_loop(0, 0, 1)
        };
        assert!(matches!(
            f.clone().prepare(&short),
            Err(MppiError::DimensionMismatch { .. })
        ));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut v = s.clone();
            v[3] = bad;
            let ctx = Context {
                spread: Some(&v),
                ..Context::open_loop(0, 0, 1)
            };
            match f.clone().prepare(&ctx) {
                Err(MppiError::InvalidConfig { field, .. }) => assert_eq!(field, "schedule"),
                other => panic!("expected a config error for {bad}, got {other:?}"),
            }
        }
    }

    /// With a spread the knots of 1e5 samples have variance `σ_k² Σ_u` per entry within
    /// `Z_TOL` SE (`σ²√(2/N)`, 8 statistics) and miss the unscaled `Σ_u`.
    #[test]
    fn spread_knot_variances_are_scaled() {
        let (t, k, m, n) = (12, 4, 2, 100_000);
        let s = test_spread(t);
        let mut f = prepared(&family(t, k, m, &[0.5, 0.2, 0.2, 0.3]), &s);
        let mu: Vec<f64> = (0..k * m).map(|i| (i as f64).sin()).collect();
        f.set_params(&mu).unwrap();
        let (mut u, mut y) = (vec![0.0; t * m], vec![0.0; k * m]);
        let mut sq = vec![0.0; k * m];
        for i in 0..n {
            f.sample(&mut sample_rng(3, 0, 0, i), &mut u);
            f.knots_of(&u, &mut y);
            for ((q, v), m0) in sq.iter_mut().zip(&y).zip(&mu) {
                *q += (v - m0).powi(2);
            }
        }
        let nf = n as f64;
        let var_of = |j: usize| {
            let base = if j.is_multiple_of(2) { 0.5f64 } else { 0.3 };
            base * f.knot_spread()[j / m].powi(2)
        };
        let z_vars = |scaled: bool| {
            max_z((0..k * m).map(|j| {
                let v = var_of(j);
                let target = if scaled {
                    v
                } else {
                    v / f.knot_spread()[j / m].powi(2)
                };
                (sq[j] / nf, target, v * (2.0 / nf).sqrt())
            }))
        };
        let (z, z_own) = (z_vars(true), z_vars(false));
        eprintln!(
            "spline spread knot variances (σ_k = {:?}): max |z| {z:.2} (tol {Z_TOL}); against the unscaled Σ_u {z_own:.1}",
            f.knot_spread()
        );
        assert!(z <= Z_TOL);
        assert!(z_own > Z_TOL, "no power");
    }

    /// With a non-uniform spread: the conformance suite passes; `ΔQ̂ = KL(p_s(θ⁺) ‖ p_s(θ_k))`
    /// on scaled samples with uneven weights; the fit recovers the knot means (|t| ≤
    /// RECOVERY_T). Negative control: the KL of the unscaled knots breaks the identity.
    #[test]
    fn spread_conformance_em_identity_and_recovery() {
        use crate::testing::check_proposal;
        use crate::testing::theory::{
            EM_IDENTITY_TOLERANCE, MStep, RECOVERY_T, check_em_step, check_fit_recovery,
        };
        let (t, k, m, n) = (16, 4, 2, 300);
        let mut f = family(t, k, m, &[0.6, 0.2, 0.2, 0.5]);
        f.set_params(&[0.1, -0.2, 0.3, 0.0, -0.1, 0.2, 0.4, -0.3])
            .unwrap();
        let s = test_spread(t);
        let g = prepared(&f, &s);
        check_proposal(&g, 4).unwrap();
        let d = t * m;
        let samples = sample_set(&g, n, 19);
        let cost = |u: &[f64]| -> f64 {
            u.iter()
                .enumerate()
                .map(|(j, v)| (v - 0.5 * (j as f64 / 5.0).sin()).powi(2) + 0.3 * (4.0 * v).cos())
                .sum()
        };
        let w = weights_from_costs(&costs_of(&samples, d, cost), 2.0);
        let r = check_em_step(&g, &samples, &w, MStep::Exact).unwrap();
        let mut own_plus = em_step(&g, &samples, &w);
        own_plus.prepare(&Context::open_loop(0, 0, 1)).unwrap();
        let kl_own = own_plus.kl(&f).unwrap();
        let rel_own = (r.q_gain - kl_own).abs() / kl_own;
        let rec = check_fit_recovery(&g, 5_000, 30, 5, RECOVERY_T).unwrap();
        eprintln!(
            "spline spread (σ_k = {:?}): ΔQ̂ = {:.6}, KL = {:.6}, |ΔQ̂ − KL|/KL = {:.1e} (tol {EM_IDENTITY_TOLERANCE:e}); \
             with the unscaled KL {kl_own:.6}: {rel_own:.2}; recovery max |t| = {:.2} (tol {RECOVERY_T})",
            g.knot_spread(),
            r.q_gain,
            r.kl,
            r.gap.abs() / r.kl,
            rec.max_t
        );
        assert!(rel_own > 1e3 * EM_IDENTITY_TOLERANCE, "no power");
    }
}
