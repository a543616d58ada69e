//! Gaussian with a fixed per-step covariance: classic MPPI (docs/theory.md §B.4.1).
//!
//! `U = clamp(μ + ε)`, `ε_t ~ N(0, Σ)` independently per time step. With `Σ` fixed the
//! sufficient statistic is `U` itself, the mean parameter is `μ`, and the M-step is
//! `μ⁺ = Σ_i w_i U_i`. `log_prob` is the Gaussian density of the unclamped distribution
//! evaluated at the (possibly clamped) sample.
//!
//! It follows a [`crate::Schedule`]'s spread: with multipliers `s_t` the draws are
//! `U_t = clamp(μ_t + s_t ε_t)` and the density is that of `N(μ_t, s_t² Σ)` (annealing,
//! DIAL-MPC). The M-step is the same weighted mean.

use super::downcast;
use crate::config::ShiftFill;
use crate::error::{MppiError, check_len};
use crate::gaussian::GaussianNoise;
use crate::rng::{BlockRng, SampleRng};

use super::{
    Context, Proposal, add_mean_and_clamp, clamped_zero_row, fill_rows, set_clamped_mean,
    shift_rows, step_log_det, step_mahalanobis, weighted_sum, weighted_sum_blocks,
};

/// Fixed-covariance Gaussian over plans (`[proposal] kind = "gaussian"`).
///
/// ```
/// use mppi::proposal::{Proposal, GaussianFixed};
/// let f = GaussianFixed::new(3, 1, &[0.25], &[-1.0], &[1.0]).unwrap();
/// assert_eq!(f.params(), &[0.0, 0.0, 0.0]);
/// // log N(0; 0, 0.25) per step, three steps
/// let expected = 3.0 * (-0.5 * (2.0 * std::f64::consts::PI * 0.25).ln());
/// assert!((f.log_prob(&[0.0, 0.0, 0.0]).unwrap() - expected).abs() < 1e-12);
/// ```
#[derive(Debug, Clone)]
pub struct GaussianFixed {
    m: usize,
    noise: GaussianNoise,
    mean: Vec<f64>,
    u_min: Vec<f64>,
    u_max: Vec<f64>,
    zero_row: Vec<f64>,
    /// `−½ log det(2π Σ)` of one step.
    log_norm: f64,
    /// The schedule's spread multiplier `s_t` of every time step (all 1 when `!scaled`).
    spread: Vec<f64>,
    scaled: bool,
}

impl GaussianFixed {
    /// A Gaussian over `horizon` steps of `m` controls with per-step covariance `covariance`
    /// (row-major `m x m`), clamped into `[u_min, u_max]`.
    pub fn new(
        horizon: usize,
        m: usize,
        covariance: &[f64],
        u_min: &[f64],
        u_max: &[f64],
    ) -> Result<Self, MppiError> {
        check_len("u_min", m, u_min.len())?;
        check_len("u_max", m, u_max.len())?;
        let noise = GaussianNoise::new(m, covariance)?;
        let log_det = step_log_det(&noise, m);
        let zero_row = clamped_zero_row(u_min, u_max);
        let mut family = GaussianFixed {
            m,
            noise,
            mean: vec![0.0; horizon * m],
            u_min: u_min.to_vec(),
            u_max: u_max.to_vec(),
            zero_row,
            log_norm: -0.5 * (m as f64 * (2.0 * std::f64::consts::PI).ln() + log_det),
            spread: vec![1.0; horizon],
            scaled: false,
        };
        family.reset();
        Ok(family)
    }

    /// The per-step noise model (Cholesky factor and precision).
    #[must_use]
    pub fn noise(&self) -> &GaussianNoise {
        &self.noise
    }

    /// `Σ_t (a_t − b_t)ᵀ Σ⁻¹ (a_t − b_t)`.
    fn mahalanobis(&self, a: &[f64], b: &[f64]) -> f64 {
        step_mahalanobis(self.noise.precision(), self.m, a, b)
    }
}

impl Proposal for GaussianFixed {
    fn name(&self) -> &'static str {
        "gaussian"
    }
    fn dim(&self) -> usize {
        self.mean.len()
    }
    fn control_dim(&self) -> usize {
        self.m
    }
    fn params(&self) -> &[f64] {
        &self.mean
    }
    /// Any finite mean is valid; it is projected into the control box.
    fn set_params(&mut self, theta: &[f64]) -> Result<(), MppiError> {
        set_clamped_mean(
            "gaussian parameters",
            &mut self.mean,
            theta,
            &self.u_min,
            &self.u_max,
        )
    }
    fn reset(&mut self) {
        fill_rows(&mut self.mean, &self.zero_row);
    }
    fn shift(&mut self, fill: ShiftFill) {
        shift_rows(&mut self.mean, self.m, fill, &self.zero_row);
    }
    fn plan(&self, out: &mut [f64]) {
        out.copy_from_slice(&self.mean);
    }
    fn set_plan(&mut self, plan: &[f64]) -> Result<(), MppiError> {
        set_clamped_mean("plan", &mut self.mean, plan, &self.u_min, &self.u_max)
    }
    fn prepare(&mut self, ctx: &Context<'_>) -> Result<(), MppiError> {
        match ctx.spread {
            Some(s) => {
                check_len("schedule spread", self.spread.len(), s.len())?;
                if let Some(t) = s.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
                    return Err(MppiError::config(
                        "schedule",
                        format!(
                            "spread of time step {t} must be a finite number > 0, got {}",
                            s[t]
                        ),
                    ));
                }
                self.spread.copy_from_slice(s);
                self.scaled = s.iter().any(|v| *v != 1.0);
            }
            None if self.scaled => {
                self.spread.fill(1.0);
                self.scaled = false;
            }
            None => {}
        }
        Ok(())
    }
    fn sample(&self, rng: &mut SampleRng, u: &mut [f64]) {
        self.noise.fill(rng, u);
        if self.scaled {
            for (row, s) in u.chunks_exact_mut(self.m).zip(&self.spread) {
                row.iter_mut().for_each(|v| *v *= s);
            }
        }
        add_mean_and_clamp(u, &self.mean, &self.u_min, &self.u_max);
    }
    /// Draws across lanes into `soa` only (the noise and the clamp run with the lanes
    /// innermost); rows are left to the planner.
    fn sample_block(&self, rng: &mut BlockRng, _rows: &mut [f64], soa: &mut [f64]) -> bool {
        let lanes = rng.lanes();
        let m = self.m;
        if self.noise.is_diagonal() {
            // scale, shift and clamp in one pass (the operations of `sample`, in its order:
            // ε = σ z, then u = clamp(ε + μ))
            let chol = self.noise.cholesky();
            rng.normal_rows(soa);
            for (i, u) in soa.chunks_exact_mut(lanes).enumerate() {
                let j = i % m;
                let (s, mu, lo, hi) = (chol[j * m + j], self.mean[i], self.u_min[j], self.u_max[j]);
                if self.scaled {
                    // the order of `sample`: ε = σ z, then s_t ε, then clamp(· + μ)
                    let st = self.spread[i / m];
                    for v in u {
                        *v = (*v * s * st + mu).clamp(lo, hi);
                    }
                } else {
                    for v in u {
                        *v = (*v * s + mu).clamp(lo, hi);
                    }
                }
            }
        } else {
            self.noise.fill_block(rng, soa);
            for (i, u) in soa.chunks_exact_mut(lanes).enumerate() {
                let (mu, lo, hi) = (self.mean[i], self.u_min[i % m], self.u_max[i % m]);
                if self.scaled {
                    let st = self.spread[i / m];
                    for v in u {
                        *v = (*v * st + mu).clamp(lo, hi);
                    }
                } else {
                    for v in u {
                        *v = (*v + mu).clamp(lo, hi);
                    }
                }
            }
        }
        false
    }
    fn fits_blocks(&self) -> bool {
        true
    }
    fn fit_blocks(&mut self, blocks: &[f64], weights: &[f64], out: &mut [f64]) -> bool {
        weighted_sum_blocks(blocks, weights, &mut out[..self.mean.len()]);
        true
    }
    fn log_prob(&self, u: &[f64]) -> Option<f64> {
        Some({
            if !self.scaled {
                let steps = (self.mean.len() / self.m) as f64;
                return Some(steps * self.log_norm - 0.5 * self.mahalanobis(u, &self.mean));
            }
            // N(μ_t, s_t² Σ): −m ln s_t and the quadratic form over s_t² per step
            let m = self.m;
            let mut total = 0.0;
            for ((ut, mt), st) in u
                .chunks_exact(m)
                .zip(self.mean.chunks_exact(m))
                .zip(&self.spread)
            {
                let q = step_mahalanobis(self.noise.precision(), m, ut, mt);
                total += self.log_norm - m as f64 * st.ln() - 0.5 * q / (st * st);
            }
            total
        })
    }
    fn fit(&mut self, samples: &[f64], weights: &[f64], out: &mut [f64]) {
        weighted_sum(samples, weights, &mut out[..self.mean.len()]);
    }
    /// Same covariance: `KL = ½ Σ_t (μ_a − μ_b)ᵀ Σ⁻¹ (μ_a − μ_b)`. Under a schedule's spread
    /// (step `t` of `a` is `N(μ_a,t, s_a,t² Σ)`) it is, per step,
    /// `½ (m r − m − m ln r + Δ_tᵀ Σ⁻¹ Δ_t / s_b,t²)` with `r = s_a,t²/s_b,t²`.
    fn kl(&self, other: &dyn Proposal) -> Option<f64> {
        match downcast::<GaussianFixed>(other) {
            Some(o) if o.mean.len() == self.mean.len() && o.noise == self.noise => {
                if !self.scaled && !o.scaled {
                    return Some(0.5 * self.mahalanobis(&self.mean, &o.mean));
                }
                let m = self.m;
                let mf = m as f64;
                let mut total = 0.0;
                for (t, (a, b)) in self
                    .mean
                    .chunks_exact(m)
                    .zip(o.mean.chunks_exact(m))
                    .enumerate()
                {
                    let (sa, sb) = (self.spread[t], o.spread[t]);
                    let r = (sa * sa) / (sb * sb);
                    let q = step_mahalanobis(self.noise.precision(), m, a, b);
                    total += 0.5 * (mf * (r - 1.0 - r.ln()) + q / (sb * sb));
                }
                Some(total)
            }
            _ => None,
        }
    }
    fn control_cost(&self, plan: &[f64], eps: &[f64]) -> Option<f64> {
        Some(self.noise.control_cost(plan, eps))
    }
    fn clone_box(&self) -> Box<dyn Proposal> {
        Box::new(self.clone())
    }
}
