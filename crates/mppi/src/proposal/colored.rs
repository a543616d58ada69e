//! Time-correlated ("colored") Gaussian with AR(1) noise (docs/theory.md §B.4.4).
//!
//! `U = clamp(μ + ε)` with `ε` an AR(1) / Ornstein–Uhlenbeck sequence started in its
//! stationary law:
//!
//! ```text
//! ε_0 = η_0,   ε_t = ρ ε_{t−1} + √(1−ρ²) η_t,   η_t ~ N(0, Σ_u) i.i.d.
//! ```
//!
//! so that `Cov(ε_t, ε_s) = ρ^{|t−s|} Σ_u`, i.e. `Σ_full = K ⊗ Σ_u` with `K_ts = ρ^{|t−s|}`.
//! The covariance is fixed, so (as for [`super::GaussianFixed`]) the sufficient statistic is
//! `U`, the mean parameter is `μ` and the M-step is `μ⁺ = Σ_i w_i U_i`; only sampling and the
//! densities see the correlation.
//!
//! The precision is block tridiagonal: writing the innovations `ν_0 = ε_0`,
//! `ν_t = ε_t − ρ ε_{t−1}` (`t ≥ 1`),
//!
//! ```text
//! εᵀ Σ_full⁻¹ ε = ν_0ᵀ Σ_u⁻¹ ν_0 + Σ_{t≥1} ν_tᵀ Σ_u⁻¹ ν_t / (1 − ρ²),
//! log det Σ_full = T log det Σ_u + m (T − 1) log(1 − ρ²),
//! ```
//!
//! which gives the exact log-density, the KL divergence and the Williams control-cost term
//! `μᵀ Σ_full⁻¹ ε` (docs/theory.md §B.4.8: the correction must use the *full* sequence precision,
//! not the per-step `Σ_u⁻¹`) in `O(T m²)` without forming any `Tm × Tm` matrix.
//! With `ρ = 0` the family coincides with `gaussian`.
//!
//! **Schedule spread.** With a [`crate::Schedule`]'s multipliers `s_t` ([`Context::spread`])
//! the noise of step `t` is multiplied by `s_t` after the AR(1) recursion,
//! `U = clamp(μ + S ε)`, `S = diag(s_t) ⊗ I_m`, so the covariance is `S (K ⊗ Σ_u) S` (each
//! step keeps its correlation with the others, its standard deviation is scaled by `s_t`).
//! Densities are those of `N(μ, S (K ⊗ Σ_u) S)`:
//!
//! ```text
//! log p_s(u) = −½ log det(2π K ⊗ Σ_u) − m Σ_t ln s_t − ½ eᵀ (K ⊗ Σ_u)⁻¹ e,   e = S⁻¹ (u − μ),
//! KL(p_s(μ_a) ‖ p_s(μ_b)) = ½ (S⁻¹(μ_a − μ_b))ᵀ (K ⊗ Σ_u)⁻¹ S⁻¹(μ_a − μ_b).
//! ```
//!
//! The covariance stays fixed within an iteration, so the M-step is the same weighted mean
//! (the exact M-step of `p_s`; nothing to unscale) and [`Proposal::params`] is `μ` at any
//! spread. The Williams term [`Proposal::control_cost`] keeps the unscaled precision, as for
//! [`super::GaussianFixed`]. `kl` is `None` between instances prepared with different spreads.

use super::downcast;
use crate::config::ShiftFill;
use crate::error::{MppiError, check_len};
use crate::gaussian::GaussianNoise;
use crate::rng::SampleRng;

use super::{
    Context, Proposal, add_mean_and_clamp, clamped_zero_row, fill_rows, set_clamped_mean,
    shift_rows, step_log_det, weighted_sum, weighted_sum_blocks,
};

/// AR(1)-correlated Gaussian over plans with a fixed covariance `K ⊗ Σ_u`
/// (`family = "colored"`, correlation `noise_correlation`).
///
/// ```
/// use mppi::proposal::{ColoredGaussian, Proposal};
/// let inf = f64::INFINITY;
/// let f = ColoredGaussian::new(3, 1, &[1.0], 0.5, &[-inf], &[inf]).unwrap();
/// // εᵀ K⁻¹ ε for ε = (1, 1, 1), K_ts = 0.5^|t−s|: 1 + 2 · (1 − 0.5)² / (1 − 0.25) = 5/3
/// let log_det = 2.0 * (0.75f64).ln();
/// let expected = -0.5 * (3.0 * (2.0 * std::f64::consts::PI).ln() + log_det + 5.0 / 3.0);
/// assert!((f.log_prob(&[1.0, 1.0, 1.0]).unwrap() - expected).abs() < 1e-12);
/// // the control-cost term uses the full sequence precision
/// assert!((f.control_cost(&[1.0, 1.0, 1.0], &[1.0, 1.0, 1.0]).unwrap() - 5.0 / 3.0).abs() < 1e-12);
/// ```
#[derive(Debug, Clone)]
pub struct ColoredGaussian {
    m: usize,
    noise: GaussianNoise,
    /// AR(1) correlation `ρ ∈ [0, 1)`.
    rho: f64,
    /// `√(1 − ρ²)`, the innovation scale.
    innovation_scale: f64,
    /// `1 / (1 − ρ²)`, the innovation precision factor.
    innovation_precision: f64,
    mean: Vec<f64>,
    u_min: Vec<f64>,
    u_max: Vec<f64>,
    zero_row: Vec<f64>,
    /// `−½ log det(2π Σ_full)`.
    log_norm: f64,
    /// The schedule's spread multiplier `s_t` of every time step (all 1 when `!scaled`).
    spread: Vec<f64>,
    /// `m Σ_t ln s_t`, the spread's share of the log-determinant (0 when `!scaled`).
    log_spread: f64,
    scaled: bool,
}

impl ColoredGaussian {
    /// A colored Gaussian over `horizon` steps of `m` controls with per-step covariance
    /// `covariance` (row-major `m x m`, the stationary marginal `Σ_u`), AR(1) correlation
    /// `rho ∈ [0, 1)` between consecutive steps, and samples clamped into `[u_min, u_max]`.
    pub fn new(
        horizon: usize,
        m: usize,
        covariance: &[f64],
        rho: f64,
        u_min: &[f64],
        u_max: &[f64],
    ) -> Result<Self, MppiError> {
        check_len("u_min", m, u_min.len())?;
        check_len("u_max", m, u_max.len())?;
        if !(rho.is_finite() && (0.0..1.0).contains(&rho)) {
            return Err(MppiError::config(
                "proposal.correlation",
                format!("must be in [0, 1) for family = \"colored\", got {rho}"),
            ));
        }
        let noise = GaussianNoise::new(m, covariance)?;
        let log_det_u = step_log_det(&noise, m);
        let one_minus = 1.0 - rho * rho;
        let t = horizon as f64;
        let log_det =
            t * log_det_u + (m as f64) * (horizon.saturating_sub(1) as f64) * one_minus.ln();
        let zero_row = clamped_zero_row(u_min, u_max);
        let mut family = ColoredGaussian {
            m,
            noise,
            rho,
            innovation_scale: one_minus.sqrt(),
            innovation_precision: 1.0 / one_minus,
            mean: vec![0.0; horizon * m],
            u_min: u_min.to_vec(),
            u_max: u_max.to_vec(),
            zero_row,
            log_norm: -0.5 * (t * m as f64 * (2.0 * std::f64::consts::PI).ln() + log_det),
            spread: vec![1.0; horizon],
            log_spread: 0.0,
            scaled: false,
        };
        family.reset();
        Ok(family)
    }

    /// The AR(1) correlation `ρ`.
    #[must_use]
    pub fn correlation(&self) -> f64 {
        self.rho
    }

    /// The per-step (stationary marginal) noise model `Σ_u`.
    #[must_use]
    pub fn noise(&self) -> &GaussianNoise {
        &self.noise
    }

    /// The bilinear form `aᵀ Σ_full⁻¹ b` with `a = x − x₀`, `b = y − y₀` (pass empty
    /// offsets for zero), via the innovations:
    /// `a_0ᵀ Σ_u⁻¹ b_0 + Σ_{t≥1} (a_t − ρ a_{t−1})ᵀ Σ_u⁻¹ (b_t − ρ b_{t−1}) / (1 − ρ²)`.
    fn bilinear(&self, x: &[f64], x0: &[f64], y: &[f64], y0: &[f64]) -> f64 {
        self.bilinear_with::<false>(x, x0, y, y0)
    }

    /// [`Self::bilinear`] of `S⁻¹a`, `S⁻¹b` when `SCALED` (the spread's quadratic form);
    /// monomorphized so the unscaled path has no per-entry division.
    fn bilinear_with<const SCALED: bool>(
        &self,
        x: &[f64],
        x0: &[f64],
        y: &[f64],
        y0: &[f64],
    ) -> f64 {
        let m = self.m;
        let p = self.noise.precision();
        let rho = self.rho;
        let n = x.len().min(y.len());
        let steps = n / m;
        let at = |v: &[f64], o: &[f64], k: usize| {
            let e = v[k] - if o.is_empty() { 0.0 } else { o[k] };
            if SCALED { e / self.spread[k / m] } else { e }
        };
        let mut total = 0.0;
        for t in 0..steps {
            let factor = if t == 0 {
                1.0
            } else {
                self.innovation_precision
            };
            let mut step_sum = 0.0;
            for i in 0..m {
                let k = t * m + i;
                let ai = if t == 0 {
                    at(x, x0, k)
                } else {
                    at(x, x0, k) - rho * at(x, x0, k - m)
                };
                if ai == 0.0 {
                    continue;
                }
                let mut row = 0.0;
                for j in 0..m {
                    let l = t * m + j;
                    let bj = if t == 0 {
                        at(y, y0, l)
                    } else {
                        at(y, y0, l) - rho * at(y, y0, l - m)
                    };
                    row += p[i * m + j] * bj;
                }
                step_sum += ai * row;
            }
            total += factor * step_sum;
        }
        total
    }
}

impl Proposal for ColoredGaussian {
    fn name(&self) -> &'static str {
        "colored"
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
            "colored parameters",
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
    /// Accepts any spread of `T` finite multipliers `> 0`; `None` (or all ones) restores the
    /// own spread.
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
                self.log_spread = self.m as f64 * s.iter().map(|v| v.ln()).sum::<f64>();
            }
            None if self.scaled => {
                self.spread.fill(1.0);
                self.log_spread = 0.0;
                self.scaled = false;
            }
            None => {}
        }
        Ok(())
    }
    /// White per-step noise `L_u z_t`, then the AR(1) recursion in place, then the spread
    /// `s_t` per step (if scaled), then `μ`, then the clamp.
    fn sample(&self, rng: &mut SampleRng, u: &mut [f64]) {
        let m = self.m;
        self.noise.fill(rng, u);
        if self.rho != 0.0 {
            for k in m..u.len() {
                u[k] = self.rho * u[k - m] + self.innovation_scale * u[k];
            }
        }
        if self.scaled {
            for (row, s) in u.chunks_exact_mut(m).zip(&self.spread) {
                row.iter_mut().for_each(|v| *v *= s);
            }
        }
        add_mean_and_clamp(u, &self.mean, &self.u_min, &self.u_max);
    }
    /// `−½ log det(2π Σ_full) − ½ (u − μ)ᵀ Σ_full⁻¹ (u − μ)` of the unclamped distribution;
    /// with a spread, `− m Σ_t ln s_t` and the quadratic form of `S⁻¹(u − μ)`.
    fn log_prob(&self, u: &[f64]) -> Option<f64> {
        if self.scaled {
            let q = self.bilinear_with::<true>(u, &self.mean, u, &self.mean);
            return Some(self.log_norm - self.log_spread - 0.5 * q);
        }
        Some(self.log_norm - 0.5 * self.bilinear(u, &self.mean, u, &self.mean))
    }
    /// `μ⁺ = Σ_i w_i U_i` (zero weights skipped).
    fn fit(&mut self, samples: &[f64], weights: &[f64], out: &mut [f64]) {
        weighted_sum(samples, weights, &mut out[..self.mean.len()]);
    }
    fn fits_blocks(&self) -> bool {
        true
    }
    fn fit_blocks(&mut self, blocks: &[f64], weights: &[f64], out: &mut [f64]) -> bool {
        weighted_sum_blocks(blocks, weights, &mut out[..self.mean.len()]);
        true
    }
    /// Same covariance: `KL = ½ (μ_a − μ_b)ᵀ Σ_full⁻¹ (μ_a − μ_b)`, with a spread of
    /// `S⁻¹(μ_a − μ_b)`; `None` unless `other` is a colored Gaussian with the same `Σ_u`, `ρ`,
    /// horizon and spread.
    fn kl(&self, other: &dyn Proposal) -> Option<f64> {
        match downcast::<ColoredGaussian>(other) {
            Some(o)
                if o.mean.len() == self.mean.len()
                    && o.noise == self.noise
                    && o.rho == self.rho
                    && o.spread == self.spread =>
            {
                let q = if self.scaled {
                    self.bilinear_with::<true>(&self.mean, &o.mean, &self.mean, &o.mean)
                } else {
                    self.bilinear(&self.mean, &o.mean, &self.mean, &o.mean)
                };
                Some(0.5 * q)
            }
            _ => None,
        }
    }
    /// `planᵀ Σ_full⁻¹ ε` with the full AR(1) sequence precision (docs/theory.md §B.4.4, B.4.8);
    /// the unscaled precision at any spread, as for [`super::GaussianFixed`].
    fn control_cost(&self, plan: &[f64], eps: &[f64]) -> Option<f64> {
        Some(self.bilinear(plan, &[], eps, &[]))
    }
    fn clone_box(&self) -> Box<dyn Proposal> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    //! Theory checks for the colored family (docs/theory.md §B.4.4, B.4.8, H4, H14, H15).

    use super::*;
    use crate::proposal::GaussianFixed;
    use crate::proposal::test_support::{
        Z_TOL, assert_sufficient_increase, costs_of, em_step, max_z, sample_set, weighted_mean_se,
        weights_from_costs,
    };
    use crate::proposal::test_support::{prepared, test_spread};
    use crate::rng::sample_rng;
    use crate::{ProposalConfig, TemperatureConfig, WeightingConfig};
    use nalgebra::{DMatrix, DVector};

    const INF: f64 = f64::INFINITY;

    /// `K ⊗ Σ_u` as a dense matrix.
    fn dense_cov(t: usize, m: usize, sigma_u: &[f64], rho: f64) -> DMatrix<f64> {
        DMatrix::from_fn(t * m, t * m, |a, b| {
            let (ta, ia) = (a / m, a % m);
            let (tb, ib) = (b / m, b % m);
            rho.powi((ta as i32 - tb as i32).abs()) * sigma_u[ia * m + ib]
        })
    }

    fn family(t: usize, m: usize, sigma_u: &[f64], rho: f64) -> ColoredGaussian {
        ColoredGaussian::new(t, m, sigma_u, rho, &vec![-INF; m], &vec![INF; m]).unwrap()
    }

    /// `log_prob`, `control_cost` and `kl` agree with the dense `K ⊗ Σ_u` formulas.
    #[test]
    fn densities_match_dense_sequence_covariance() {
        let (t, m, rho) = (5, 2, 0.7);
        let sigma_u = [1.0, 0.3, 0.3, 0.5];
        let cov = dense_cov(t, m, &sigma_u, rho);
        let prec = cov.clone().try_inverse().unwrap();
        let log_det = cov.determinant().ln();
        let mut a = family(t, m, &sigma_u, rho);
        let mut b = a.clone();
        let mu_a: Vec<f64> = (0..t * m).map(|k| (k as f64 * 0.37).sin()).collect();
        let mu_b: Vec<f64> = (0..t * m).map(|k| (k as f64 * 0.91).cos()).collect();
        a.set_params(&mu_a).unwrap();
        b.set_params(&mu_b).unwrap();
        let u: Vec<f64> = (0..t * m).map(|k| 0.2 * k as f64 - 0.8).collect();
        let e = DVector::from_vec(u.iter().zip(&mu_a).map(|(x, y)| x - y).collect());
        let dense_lp = -0.5
            * ((t * m) as f64 * (2.0 * std::f64::consts::PI).ln()
                + log_det
                + (e.transpose() * &prec * &e)[(0, 0)]);
        assert!((a.log_prob(&u).unwrap() - dense_lp).abs() < 1e-10);
        let dm = DVector::from_vec(mu_a.iter().zip(&mu_b).map(|(x, y)| x - y).collect());
        let dense_kl = 0.5 * (dm.transpose() * &prec * &dm)[(0, 0)];
        assert!((a.kl(&b).unwrap_or(f64::NAN) - dense_kl).abs() < 1e-10);
        let p = DVector::from_vec(mu_a.clone());
        let dense_cc = (p.transpose() * &prec * &e)[(0, 0)];
        assert!((a.control_cost(&mu_a, e.as_slice()).unwrap() - dense_cc).abs() < 1e-10);
        // the planner's probe with empty slices
        assert_eq!(a.control_cost(&[], &[]), Some(0.0));
        // a different correlation is a different family
        assert!(
            a.kl(&family(t, m, &sigma_u, 0.5))
                .unwrap_or(f64::NAN)
                .is_nan()
        );
    }

    /// `ρ = 0` is the white `gaussian` family.
    #[test]
    fn zero_correlation_is_the_white_gaussian() {
        let sigma_u = [0.5, 0.1, 0.1, 0.3];
        let c = family(4, 2, &sigma_u, 0.0);
        let g = GaussianFixed::new(4, 2, &sigma_u, &[-INF; 2], &[INF; 2]).unwrap();
        let u = [0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8];
        assert!((c.log_prob(&u).unwrap() - g.log_prob(&u).unwrap()).abs() < 1e-12);
        let (mut r1, mut r2) = (sample_rng(3, 0, 0, 0), sample_rng(3, 0, 0, 0));
        let (mut a, mut b) = ([0.0; 8], [0.0; 8]);
        c.sample(&mut r1, &mut a);
        g.sample(&mut r2, &mut b);
        assert_eq!(a, b);
    }

    /// The empirical covariance of 1e5 samples matches `ρ^{|t−s|} Σ_u` entrywise within
    /// `Z_TOL = 5` Monte-Carlo standard errors `√((Σ_aa Σ_bb + Σ_ab²)/N)` (the variance of
    /// `x_a x_b` for a centred Gaussian, by Isserlis; 144 entries), and misses
    /// `1.05 ρ^{|t−s|} Σ_u` and the kernel with `ρ × 1.05 = 0.945`.
    #[test]
    fn sample_covariance_is_kron_of_ar1_and_step_covariance() {
        let (t, m, rho, n) = (6, 2, 0.9, 100_000);
        let sigma_u = [0.8, -0.3, -0.3, 0.4];
        let f = family(t, m, &sigma_u, rho);
        let d = t * m;
        let mut sum = vec![0.0; d];
        let mut outer = vec![0.0; d * d];
        let mut u = vec![0.0; d];
        for i in 0..n {
            let mut rng = sample_rng(11, 0, 0, i as u64);
            f.sample(&mut rng, &mut u);
            for a in 0..d {
                sum[a] += u[a];
                for b in 0..d {
                    outer[a * d + b] += u[a] * u[b];
                }
            }
        }
        let cov = dense_cov(t, m, &sigma_u, rho);
        let z_against = |target: &DMatrix<f64>| {
            max_z((0..d * d).map(|k| {
                let (a, b) = (k / d, k % d);
                let emp = outer[k] / n as f64 - sum[a] * sum[b] / (n as f64).powi(2);
                let se = ((cov[(a, a)] * cov[(b, b)] + cov[(a, b)].powi(2)) / n as f64).sqrt();
                (emp, target[(a, b)], se)
            }))
        };
        let worst = z_against(&cov);
        let scaled = z_against(&(&cov * 1.05));
        let rho_pert = z_against(&dense_cov(t, m, &sigma_u, 1.05 * rho));
        eprintln!(
            "colored sample covariance: max |z| {worst:.2} (tol {Z_TOL}); against 1.05 K⊗Σ_u {scaled:.1}, against ρ × 1.05 {rho_pert:.1}"
        );
        assert!(worst <= Z_TOL);
        assert!(scaled > Z_TOL && rho_pert > Z_TOL, "no power");
    }

    /// H4: `Q̂(θ⁺) − Q̂(θ_k) == KL(p_{θ⁺} ‖ p_{θ_k})` (1e-8 rel), `KL > 0`.
    #[test]
    fn h4_empirical_sufficient_increase() {
        let (t, m, n) = (6, 2, 400);
        let f = family(t, m, &[0.6, 0.2, 0.2, 0.5], 0.8);
        let d = t * m;
        let samples = sample_set(&f, n, 5);
        // a nonconvex cost
        let cost = |u: &[f64]| -> f64 {
            u.iter()
                .enumerate()
                .map(|(k, v)| (v - 0.3 * k as f64 / d as f64).powi(2) + 0.5 * (3.0 * v).cos())
                .sum()
        };
        let w = weights_from_costs(&costs_of(&samples, d, cost), 0.7);
        let g = em_step(&f, &samples, &w);
        assert_sufficient_increase("colored H4", &f, &g, &samples, &w);
    }

    /// One control-prior (Williams) step `U_1 = U_0 + Σ_i w_i ε_i` with log-weights
    /// `−J(U_i)/λ − (U_0 − Ũ)ᵀ P ε_i`, for `P` the full precision or the per-step one.
    /// Returns `U_1`, the ESS, and the delta-method standard error of every entry of `U_1`
    /// ([`weighted_mean_se`]).
    fn williams_step(
        f: &ColoredGaussian,
        u0: &[f64],
        base: &[f64],
        cost: &dyn Fn(&[f64]) -> f64,
        lambda: f64,
        n: usize,
        full: bool,
    ) -> (Vec<f64>, f64, Vec<f64>) {
        let d = u0.len();
        let diff: Vec<f64> = u0.iter().zip(base).map(|(a, b)| a - b).collect();
        let mut g = f.clone();
        g.set_params(u0).unwrap();
        let mut eps = vec![0.0; n * d];
        let mut logits = vec![0.0; n];
        for (i, (e, l)) in eps.chunks_exact_mut(d).zip(logits.iter_mut()).enumerate() {
            g.sample(&mut sample_rng(7, 0, 0, i as u64), e);
            let j = cost(e);
            for (x, m) in e.iter_mut().zip(u0) {
                *x -= m;
            }
            let corr = if full {
                g.control_cost(&diff, e).unwrap()
            } else {
                g.noise().control_cost(&diff, e)
            };
            *l = -j / lambda - corr;
        }
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = logits.iter().map(|l| (l - max).exp()).sum();
        let w: Vec<f64> = logits.iter().map(|l| (l - max).exp() / z).collect();
        let w2: f64 = w.iter().map(|w| w * w).sum();
        let (u1, se) = (0..d)
            .map(|a| {
                let (step, se) = weighted_mean_se(&w, |i| eps[i * d + a]);
                (u0[a] + step, se)
            })
            .unzip();
        (u1, 1.0 / w2, se)
    }

    /// `(max_a |U_1 − m*|_a / SE_a, the same against U_0 + 1.05 (m* − U_0))`: the z-score of
    /// a one-step estimate and its power against a 5% longer step.
    fn step_z(u1: &[f64], se: &[f64], u0: &DVector<f64>, m_star: &DVector<f64>) -> (f64, f64) {
        let z = max_z((0..u1.len()).map(|a| (u1[a], m_star[a], se[a])));
        let z_pert =
            max_z((0..u1.len()).map(|a| (u1[a], u0[a] + 1.05 * (m_star[a] - u0[a]), se[a])));
        (z, z_pert)
    }

    /// H15: for AR(1) noise with ρ = 0.9, the control-prior one-step update with the
    /// full-`Σ⁻¹` correction estimates `m* = (Σ⁻¹ + H/λ)⁻¹ (Σ⁻¹ Ũ + H u*/λ)` (MC N = 2e5):
    /// every entry within `Z_TOL = 5` delta-method standard errors of the self-normalized
    /// step `Σ_i w_i ε_i` ([`weighted_mean_se`]; 8 entries). Power: the same estimate misses
    /// the 5% longer step `U_0 + 1.05 (m* − U_0)`, and the per-step-`Σ_u⁻¹` correction misses
    /// `m*` (its exact N → ∞ bias exceeds `2·Z_TOL` standard errors). (Before: `0.05 √tr Σ_post`,
    /// calibrated once on this seed.)
    #[test]
    fn h15_colored_correction_uses_the_full_precision() {
        let (t, m, rho, lambda, n) = (8, 1, 0.9, 1.0, 200_000);
        let f = family(t, m, &[1.0], rho);
        let d = t * m;
        let sigma = dense_cov(t, m, &[1.0], rho);
        let sigma_inv = sigma.clone().try_inverse().unwrap();
        // H = tridiagonal smoothness-plus-tracking Hessian (positive definite)
        let h = DMatrix::from_fn(d, d, |a, b| {
            if a == b {
                1.5
            } else if a.abs_diff(b) == 1 {
                -0.4
            } else {
                0.0
            }
        });
        let u_star = DVector::from_fn(d, |k, _| 0.8 * (0.7 * k as f64).sin());
        let base = DVector::from_fn(d, |k, _| 0.3 * if k % 2 == 0 { 1.0 } else { -1.0 });
        let post_prec = &sigma_inv + &h / lambda;
        let sigma_post = post_prec.clone().try_inverse().unwrap();
        let m_star = &sigma_post * (&sigma_inv * &base + &h * &u_star / lambda);
        // start at m* + δ with ‖Σ^{-1/2} δ‖ = 0.5
        let dir = DVector::from_fn(d, |k, _| ((k as f64) * 1.3).cos());
        let chol = sigma.clone().cholesky().unwrap();
        let delta = chol.l() * &dir * (0.5 / dir.norm());
        let u0 = &m_star + &delta;
        assert!((delta.transpose() * &sigma_inv * &delta)[(0, 0)].sqrt() <= 1.0 + 1e-12);
        assert!((&u0 - &base).norm() > 0.1); // base mean ≠ U_0
        let (hq, us) = (h.clone(), u_star.clone());
        let cost = move |u: &[f64]| {
            let e = DVector::from_column_slice(u) - &us;
            0.5 * (e.transpose() * &hq * &e)[(0, 0)]
        };
        let (full, ess_full, se_full) =
            williams_step(&f, u0.as_slice(), base.as_slice(), &cost, lambda, n, true);
        let (per_step, ess_step, se_step) =
            williams_step(&f, u0.as_slice(), base.as_slice(), &cost, lambda, n, false);
        let (z_full, z_pert) = step_z(&full, &se_full, &u0, &m_star);
        let (z_step, _) = step_z(&per_step, &se_step, &u0, &m_star);
        // exact (N → ∞) bias of the per-step estimator: (Σ⁻¹ + H/λ)⁻¹ (Σ⁻¹ − I ⊗ Σ_u⁻¹)(U_0 − Ũ)
        let bias = &sigma_post * (&sigma_inv - DMatrix::identity(d, d)) * (&u0 - &base);
        let bias_z = max_z((0..d).map(|a| (bias[a], 0.0, se_step[a])));
        eprintln!(
            "H15: full Σ⁻¹ max |z| {z_full:.2} (tol {Z_TOL}, ESS {ess_full:.0}), against the step × 1.05 \
             {z_pert:.1}; per-step Σ_u⁻¹ max |z| {z_step:.1} (ESS {ess_step:.0}), exact bias {bias_z:.1} SE"
        );
        assert!(z_full <= Z_TOL);
        assert!(z_pert > Z_TOL, "no power against a 5% longer step");
        assert!(z_step > Z_TOL && bias_z > 2.0 * Z_TOL);
    }

    /// H14/H15 through the planner: `control_cost_gamma = λ` adds the W17 correction
    /// `μᵀ Σ_full⁻¹ ε` (base mean `Ũ = 0`), so one iteration from `U_0` near
    /// `m* = (Σ⁻¹ + H/λ)⁻¹ H u*/λ` estimates it (N = 2e5, ρ = 0.9): every entry within
    /// `Z_TOL = 5` delta-method standard errors computed from the planner's own samples and
    /// weights, and the 5% longer step `U_0 + 1.05 (m* − U_0)` is missed. With `ρ = 0` the
    /// same check is H14 for the white Gaussian. (Before: `0.05 √tr Σ_post`, calibrated once.)
    #[test]
    fn h14_h15_planner_control_cost_term_reaches_the_prior_fixed_point() {
        use crate::{FnObjective, MppiConfig, Planner, ProposalKind};
        for rho in [0.9, 0.0] {
            let (t, lambda) = (8, 0.5);
            let sigma = dense_cov(t, 1, &[0.7], rho);
            let sigma_inv = sigma.clone().try_inverse().unwrap();
            let h = DMatrix::from_fn(t, t, |a, b| match a.abs_diff(b) {
                0 => 1.2,
                1 => -0.3,
                _ => 0.0,
            });
            let u_star = DVector::from_fn(t, |k, _| 0.6 - 0.1 * k as f64);
            let sigma_post = (&sigma_inv + &h / lambda).try_inverse().unwrap();
            let m_star = &sigma_post * (&h * &u_star / lambda);
            let dir = DVector::from_fn(t, |k, _| ((k as f64) * 2.1).sin() + 0.3);
            let delta = sigma.clone().cholesky().unwrap().l() * &dir * (0.8 / dir.norm());
            let u0 = &m_star + &delta;
            let cfg = MppiConfig {
                samples: 200_000,
                horizon: t,
                iterations: 1,
                seed: 4,
                proposal: ProposalConfig {
                    noise_sigma: Some(vec![0.7f64.sqrt()]),
                    correlation: Some(rho),
                    ..ProposalConfig::new(ProposalKind::Colored)
                },
                weighting: WeightingConfig {
                    temperature: TemperatureConfig::Fixed { lambda },
                    control_cost_gamma: lambda,
                    ..WeightingConfig::default()
                },
                ..MppiConfig::default()
            };
            let mut planner = Planner::new(&cfg, 1).unwrap();
            planner.set_mean(u0.as_slice()).unwrap();
            let (hq, us) = (h.clone(), u_star.clone());
            let objective = FnObjective::new(t, move |u: &[f64]| {
                let e = DVector::from_column_slice(u) - &us;
                0.5 * (e.transpose() * &hq * &e)[(0, 0)]
            });
            planner.optimize(&objective, 0, &mut ()).unwrap();
            let (samples, w) = (planner.samples(), planner.weights());
            let se: Vec<f64> = (0..t)
                .map(|a| weighted_mean_se(w, |i| samples[i * t + a]).1)
                .collect();
            let u1 = planner.mean();
            let (z, z_pert) = step_z(u1, &se, &u0, &m_star);
            let err = (DVector::from_column_slice(u1) - &m_star).norm();
            eprintln!(
                "planner W17 step, rho = {rho}: ‖U_1 − m*‖ = {err:.4}, max |z| {z:.2} (tol {Z_TOL}); against the step × 1.05 {z_pert:.1}"
            );
            assert!(z <= Z_TOL);
            assert!(z_pert > Z_TOL, "no power against a 5% longer step");
        }
    }

    #[test]
    fn set_params_rejects_and_keeps_state_and_config_errors_name_the_key() {
        let mut f = family(3, 1, &[1.0], 0.5);
        f.set_params(&[0.1, 0.2, 0.3]).unwrap();
        assert!(f.set_params(&[0.0, f64::NAN, 0.0]).is_err());
        assert!(f.set_params(&[0.0, 0.0]).is_err());
        assert_eq!(f.params(), &[0.1, 0.2, 0.3]);
        for rho in [1.0, -0.1, f64::NAN] {
            match ColoredGaussian::new(3, 1, &[1.0], rho, &[-INF], &[INF]) {
                Err(MppiError::InvalidConfig { field, .. }) => {
                    assert_eq!(field, "proposal.correlation")
                }
                other => panic!("expected a config error, got {other:?}"),
            }
        }
        // samples at the bounds: finite density, clamped
        let g = ColoredGaussian::new(4, 1, &[4.0], 0.9, &[-0.1], &[0.1]).unwrap();
        let mut u = [0.0; 4];
        g.sample(&mut sample_rng(1, 0, 0, 0), &mut u);
        assert!(u.iter().all(|v| (-0.1..=0.1).contains(v)));
        assert!(g.log_prob(&u).unwrap().is_finite());
    }

    /// With a spread, `log_prob` and `kl` are those of `N(μ, S (K ⊗ Σ_u) S)` (dense, 1e-10);
    /// invalid spreads are config errors naming `schedule`; `None` restores the own density.
    #[test]
    fn spread_densities_match_the_dense_scaled_covariance() {
        let (t, m, rho) = (5, 2, 0.7);
        let sigma_u = [1.0, 0.3, 0.3, 0.5];
        let s = test_spread(t);
        let sc = DMatrix::from_fn(t * m, t * m, |a, b| if a == b { s[a / m] } else { 0.0 });
        let cov = &sc * dense_cov(t, m, &sigma_u, rho) * &sc;
        let prec = cov.clone().try_inverse().unwrap();
        let f = family(t, m, &sigma_u, rho);
        let mut a = prepared(&f, &s);
        let mut b = prepared(&f, &s);
        let mu_a: Vec<f64> = (0..t * m).map(|k| (k as f64 * 0.37).sin()).collect();
        let mu_b: Vec<f64> = (0..t * m).map(|k| (k as f64 * 0.91).cos()).collect();
        a.set_params(&mu_a).unwrap();
        b.set_params(&mu_b).unwrap();
        let u: Vec<f64> = (0..t * m).map(|k| 0.2 * k as f64 - 0.8).collect();
        let e = DVector::from_vec(u.iter().zip(&mu_a).map(|(x, y)| x - y).collect());
        let dense_lp = -0.5
            * ((t * m) as f64 * (2.0 * std::f64::consts::PI).ln()
                + cov.determinant().ln()
                + (e.transpose() * &prec * &e)[(0, 0)]);
        let lp_err = (a.log_prob(&u).unwrap() - dense_lp).abs();
        let dm = DVector::from_vec(mu_a.iter().zip(&mu_b).map(|(x, y)| x - y).collect());
        let dense_kl = 0.5 * (dm.transpose() * &prec * &dm)[(0, 0)];
        let kl_err = (a.kl(&b).unwrap_or(f64::NAN) - dense_kl).abs();
        eprintln!("colored spread: |log_prob − dense| {lp_err:.1e}, |kl − dense| {kl_err:.1e}");
        assert!(lp_err < 1e-10 && kl_err < 1e-10);
        // instances at different spreads are not compared
        assert!(a.kl(&f).is_none());
        // None restores the own density, bit for bit
        let mut back = a.clone();
        back.prepare(&Context::open_loop(0, 1, 2)).unwrap();
        let mut own = f.clone();
        own.set_params(&mu_a).unwrap();
        assert_eq!(back.log_prob(&u), own.log_prob(&u));
        let short = Context {
            spread: Some(&s[1..]),
            ..Context::open_loop(0, 0, 1)
        };
        assert!(matches!(
            f.clone().prepare(&short),
            Err(MppiError::DimensionMismatch { .. })
        ));
        for bad in [
            {
                let mut v = s.clone();
                v[2] = 0.0;
                v
            },
            {
                let mut v = s.clone();
                v[4] = f64::NAN;
                v
            },
            {
                let mut v = s.clone();
                v[0] = f64::INFINITY;
                v
            },
        ] {
            let mut g = f.clone();
            let ctx = Context {
                spread: Some(&bad),
                ..Context::open_loop(0, 0, 1)
            };
            match g.prepare(&ctx) {
                Err(MppiError::InvalidConfig { field, .. }) => {
                    assert!(field.contains("schedule"), "{field}")
                }
                other => panic!("expected a config error for {bad:?}, got {other:?}"),
            }
        }
    }

    /// With a spread the sample covariance of 1e5 samples is `S (K ⊗ Σ_u) S` within `Z_TOL`
    /// Monte-Carlo SE (Isserlis, 144 entries), and the unscaled `K ⊗ Σ_u` is missed.
    #[test]
    fn spread_sample_covariance_is_the_scaled_kron() {
        let (t, m, rho, n) = (6, 2, 0.8, 100_000);
        let sigma_u = [0.8, -0.3, -0.3, 0.4];
        let s = test_spread(t);
        let f = prepared(&family(t, m, &sigma_u, rho), &s);
        let d = t * m;
        let mut sum = vec![0.0; d];
        let mut outer = vec![0.0; d * d];
        let mut u = vec![0.0; d];
        for i in 0..n {
            f.sample(&mut sample_rng(12, 0, 0, i as u64), &mut u);
            for a in 0..d {
                sum[a] += u[a];
                for b in 0..d {
                    outer[a * d + b] += u[a] * u[b];
                }
            }
        }
        let base = dense_cov(t, m, &sigma_u, rho);
        let cov = DMatrix::from_fn(d, d, |a, b| s[a / m] * s[b / m] * base[(a, b)]);
        let z_against = |target: &DMatrix<f64>| {
            max_z((0..d * d).map(|k| {
                let (a, b) = (k / d, k % d);
                let emp = outer[k] / n as f64 - sum[a] * sum[b] / (n as f64).powi(2);
                let se = ((cov[(a, a)] * cov[(b, b)] + cov[(a, b)].powi(2)) / n as f64).sqrt();
                (emp, target[(a, b)], se)
            }))
        };
        let (worst, unscaled) = (z_against(&cov), z_against(&base));
        eprintln!(
            "colored spread sample covariance: max |z| {worst:.2} (tol {Z_TOL}); against the unscaled K⊗Σ_u {unscaled:.1}"
        );
        assert!(worst <= Z_TOL);
        assert!(unscaled > Z_TOL, "no power");
    }

    /// With a non-uniform spread: the conformance suite passes; the M-step identity
    /// `ΔQ̂ = KL(p_s(θ⁺) ‖ p_s(θ_k))` holds on scaled samples with uneven weights; the fit
    /// recovers the (unscaled) mean (|t| ≤ RECOVERY_T). Negative control: a KL that ignores
    /// the spread (the own-spread instances' `kl`) breaks the identity.
    #[test]
    fn spread_conformance_em_identity_and_recovery() {
        use crate::testing::check_proposal;
        use crate::testing::theory::{
            EM_IDENTITY_TOLERANCE, MStep, RECOVERY_T, check_em_step, check_fit_recovery,
        };
        let (t, m, n) = (6, 2, 400);
        let mut f = family(t, m, &[0.6, 0.2, 0.2, 0.5], 0.8);
        let mu: Vec<f64> = (0..t * m).map(|k| 0.3 * (0.9 * k as f64).sin()).collect();
        f.set_params(&mu).unwrap();
        let s = test_spread(t);
        let g = prepared(&f, &s);
        check_proposal(&g, 3).unwrap();
        let d = t * m;
        let samples = sample_set(&g, n, 21);
        let cost = |u: &[f64]| -> f64 {
            u.iter()
                .enumerate()
                .map(|(k, v)| (v - 0.4 * (k as f64 / 3.0).cos()).powi(2))
                .sum()
        };
        let w = weights_from_costs(&costs_of(&samples, d, cost), 1.5);
        let r = check_em_step(&g, &samples, &w, MStep::Exact).unwrap();
        // the same step judged with the unscaled KL
        let plus = em_step(&g, &samples, &w);
        let mut own_plus = plus.clone();
        own_plus.prepare(&Context::open_loop(0, 0, 1)).unwrap();
        let kl_own = own_plus.kl(&f).unwrap();
        let rel_own = (r.q_gain - kl_own).abs() / kl_own;
        let rec = check_fit_recovery(&g, 5_000, 30, 5, RECOVERY_T).unwrap();
        eprintln!(
            "colored spread: ΔQ̂ = {:.6}, KL = {:.6}, |ΔQ̂ − KL|/KL = {:.1e} (tol {EM_IDENTITY_TOLERANCE:e}); \
             with the unscaled KL {kl_own:.6}: {rel_own:.2}; recovery max |t| = {:.2} (tol {RECOVERY_T})",
            r.q_gain,
            r.kl,
            r.gap.abs() / r.kl,
            rec.max_t
        );
        assert!(rel_own > 1e3 * EM_IDENTITY_TOLERANCE, "no power");
    }
}
