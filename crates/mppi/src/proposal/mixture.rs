//! Mixture of diagonal Gaussians over whole plans, fitted by EM within EM (docs/theory.md §B.4.7).
//!
//! ```text
//! p(U; θ) = Σ_c π_c N(U; μ_c, diag s_c²),      c = 0..C−1,  U ∈ R^d, d = T·m
//! ```
//!
//! A mixture is not an exponential family (the component is latent), so the outer M-step
//! `max_θ Q̂(θ) = Σ_i w_i log p(U_i; θ)` has no closed form; [`Proposal::fit`] solves it
//! approximately with `mixture_inner_iterations` iterations of an inner EM started at the
//! current parameters:
//!
//! ```text
//! r_ic  = π_c N(U_i; μ_c, s_c²) / Σ_c' π_c' N(U_i; μ_c', s_c'²)      (inner E-step, log space)
//! π_c   = Σ_i w_i r_ic
//! μ_c   = Σ_i w_i r_ic U_i / π_c
//! s_c²  = clamp( Σ_i w_i r_ic (U_i − μ_c)² / π_c , std_min², std_max² )   (per coordinate)
//! ```
//!
//! Each inner iteration is an exact (box-constrained) M-step for the responsibilities it
//! uses, so `Q̂` never decreases over inner iterations (generalized EM; acceptance check H18),
//! and already one iteration gives the outer empirical sufficient increase of docs/theory.md §C.2.
//! The variance clamp keeps this property: for fixed responsibilities the complete-data
//! objective is unimodal in each `s²_cj`, so clamping is the constrained maximizer. With
//! `prior_weight = ν > 0` the component variances are pulled toward the initial spread,
//! `s_c² ← (ν s₀² + S_c) / (1 + ν)` (`S_c` the component's weighted variance: the family-level
//! conjugate-prior rule applied per component); monotonicity then holds for the penalized
//! objective.
//!
//! **Parameters** (moment coordinates, `C + 2·C·d` entries): `π_0..π_{C−1}`, then per
//! component `μ_c` (`d`) followed by the central second moments `s_c² = E_c[(U − μ_c)²]` (`d`).
//! A mixture is not an exponential family, so it has no mean parameters in the sense of the
//! other families; these are the quantities its M-step computes (means and variances by
//! centred two-pass weighted sums), stored as they are. Storing `E_c[U²] = μ_c² + s_c²`
//! instead, as this family once did, loses the variance to cancellation when `|μ| ≫ s`: at
//! `|μ| = 1e4`, `s = 1e-3` the round trip `E_c[U²] − μ_c²` was off by ~1% (and a smaller `s`
//! came back as 0 and was rejected). The domain (`π` in the simplex, `s² > 0`) is convex, so
//! the planner's step rules (docs/theory.md §D.2) apply to this vector as to mean parameters.
//! [`Proposal::set_params`] requires `π ≥ 0` summing to 1 (within 1e-6; renormalized) and
//! finite `s_c² > 0`; it clamps the variances into `[std_min², std_max²]` and the means into
//! the control box.
//!
//! **Receding-horizon default**: exact EM shrinks the spread at every M-step and the warm
//! start carries it to the next control step, so in closed loop the spread collapses toward
//! `std_min` unless something holds it. The default `prior_weight = 0.25` does: after every
//! M-step each component variance is at least `ν/(1+ν) = 0.2` of its initial value (standard
//! deviations at least ≈ 0.45 of the initial ones), and the pull restores it between steps. With
//! `prior_weight = 0` (and no `std_reset`) the update is exact EM;
//! [`spread_warnings`](super::spread_warnings) flags such configs and records the
//! measurements behind the default.
//!
//! **Initial distribution**: `π_c = 1/C`; component `c`'s mean is the zero plan plus the
//! constant offset `(c − (C−1)/2) · 2σ_j` in every control dimension `j` of every step (clamped
//! into the bounds), `σ_j = √Σ_jj` of `noise_sigma` / the diagonal of `noise_covariance` (its
//! off-diagonal entries are ignored); every component starts with variance `σ_j²`. Identical
//! components would receive identical responsibilities and never separate, hence the spread.
//!
//! **Component death**: after the inner EM, a component with `π_c < 1e-3` is re-seeded at the
//! best-weighted sample (largest `w_i`, lowest index on ties) with the initial spread and
//! `π_c = 0.05` (the others are scaled to keep `Σ π = 1`). Re-seeding is a projection outside
//! EM: it can lower `Q̂` slightly (by about `−log 0.95`); the H18 checks hold for every fit in
//! which no component dies.
//!
//! **Sampling**: one uniform draw picks the component by `π`, then `U = μ_c + s_c ⊙ z` is
//! clamped into the control box. `log_prob` is the exact mixture density of the unclamped
//! distribution (log-sum-exp over components) evaluated at the sample.
//!
//! **Plan** ([`Proposal::plan`]): the mean of the component with the largest `π` (lowest index on
//! ties) — mode seeking: a controller must commit to one route, and the mixture mean of two
//! routes around an obstacle goes through it. [`Proposal::set_plan`] moves that component's mean
//! and keeps the others. [`Proposal::shift`] shifts every component's per-step means and
//! variances (`shift_fill = "zero"` fills the mean with zeros and the variance with the
//! initial spread).
//!
//! **KL**: there is no closed form between mixtures; [`Proposal::kl`] returns the complete-data
//! KL over `(U, c)` with components matched by index, an upper bound on the KL of the mixtures
//! and exactly the gain of one inner M-step (docs/theory.md §C.2; checked by H4 and H18).
//!
//! **A schedule's spread** (annealing, [`crate::Schedule`]). With multipliers `s_t` from
//! [`Proposal::prepare`] the family samples from its scaled member, every component's
//! standard deviation at step `t` multiplied by `s_t`:
//!
//! ```text
//! p_s(U; θ) = Σ_c π_c N(U; μ_c, diag(s_t² s_cj²)),   t = ⌊j/m⌋
//! ```
//!
//! `log_prob` and `kl` (the complete-data KL, of two instances prepared with the same spread)
//! are those of `p_s`; `params()` stay those of the unscaled member. The scaled components are
//! a reparametrization, so the inner EM is run in the scaled family: responsibilities under
//! the scaled components, then after each inner M-step the component variance is mapped back,
//! `s_cj² = Σ_i w_i r_ic (U_ij − μ_cj)² / (π_c s_t²)`, before the prior and the clamp (which act
//! on the unscaled variance). Each inner iteration stays the exact M-step of the scaled
//! complete-data objective, so `ΔQ̂ ≥ KL_joint(p_s(θ⁺) ‖ p_s(θ_k))` (generalized EM), and `fit`
//! on draws from `p_s(θ)` recovers `θ`. `prepare` without a spread (or with all `s_t = 1`)
//! restores the own spread bit for bit.
//!
//! **Allocation**: the `N × C` responsibilities are allocated by the constructor for
//! [`MixtureSettings::samples`] samples; `sample`, `log_prob` and `fit` allocate nothing unless
//! `fit` is handed more samples than that (then the buffer grows once).

use std::f64::consts::PI;

use crate::config::ShiftFill;
use crate::error::{MppiError, check_finite, check_len};
use crate::rng::SampleRng;

use super::gaussian_diag::store_spread;
use super::{Context, Proposal, check_spread_limits, clamp_plan, clamped_zero_row, shift_rows};

/// A component whose weight falls below this after the inner EM is re-seeded.
pub const PI_DEAD: f64 = 1e-3;
/// Weight given to a re-seeded component.
pub const PI_RESEED: f64 = 0.05;

/// The mixture-specific settings (config keys `mixture_components`,
/// `mixture_inner_iterations`, `std_min`, `std_max`, `prior_weight`, `samples`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixtureSettings {
    /// Number of components `C` (`mixture_components`).
    pub components: usize,
    /// Inner EM iterations per fit (`mixture_inner_iterations`).
    pub inner_iterations: usize,
    /// Floor on the component standard deviations (`std_min`).
    pub std_min: f64,
    /// Ceiling on the component standard deviations (`std_max`).
    pub std_max: f64,
    /// Pseudo-count `ν ≥ 0` pulling variances toward the initial spread (`prior_weight`).
    pub prior_weight: f64,
    /// Samples per fit the responsibilities are preallocated for (`samples`).
    pub samples: usize,
}

impl Default for MixtureSettings {
    /// The defaults of the config keys (`MppiConfig::default()`), including its receding-horizon
    /// floor `prior_weight = 0.25`.
    fn default() -> Self {
        MixtureSettings {
            components: 2,
            inner_iterations: 1,
            std_min: 1e-3,
            std_max: 1e3,
            prior_weight: 0.25,
            samples: 1000,
        }
    }
}

/// Component parameters in natural form, with the caches the densities need. `var` is the
/// unscaled variance (the parameter); `sd`, `inv_var` and `log_norm` are of the components
/// sampled from, scaled by the spread passed to [`Components::refresh`].
#[derive(Debug, Clone, PartialEq)]
struct Components {
    c: usize,
    d: usize,
    pi: Vec<f64>,
    /// `C × d` means.
    mu: Vec<f64>,
    /// `C × d` variances.
    var: Vec<f64>,
    /// `C × d` standard deviations (times `s_t`).
    sd: Vec<f64>,
    /// `C × d` inverse variances (over `s_t²`).
    inv_var: Vec<f64>,
    /// `log π_c − ½ Σ_j log(2π s_t² s²_cj)` (−∞ for `π_c = 0`).
    log_norm: Vec<f64>,
}

impl Components {
    fn new(c: usize, d: usize) -> Self {
        Components {
            c,
            d,
            pi: vec![0.0; c],
            mu: vec![0.0; c * d],
            var: vec![1.0; c * d],
            sd: vec![1.0; c * d],
            inv_var: vec![1.0; c * d],
            log_norm: vec![0.0; c],
        }
    }

    /// Recompute the caches from `pi`, `var` and a schedule's spread (`T` entries; `None`:
    /// the own spread).
    fn refresh(&mut self, spread: Option<&[f64]>) {
        let d = self.d;
        for c in 0..self.c {
            let range = c * d..(c + 1) * d;
            let mut log_det = 0.0;
            let caches = self.var[range.clone()]
                .iter()
                .zip(&mut self.sd[range.clone()])
                .zip(&mut self.inv_var[range]);
            match spread {
                None => {
                    for ((v, s), iv) in caches {
                        *s = v.sqrt();
                        *iv = 1.0 / v;
                        log_det += (2.0 * PI * v).ln();
                    }
                }
                Some(spread) => {
                    let m = d / spread.len();
                    for (j, ((v, s), iv)) in caches.enumerate() {
                        let st = spread[j / m];
                        let vs = v * (st * st);
                        *s = vs.sqrt();
                        *iv = 1.0 / vs;
                        log_det += (2.0 * PI * vs).ln();
                    }
                }
            }
            self.log_norm[c] = self.pi[c].ln() - 0.5 * log_det;
        }
    }

    /// `log π_c + log N(u; μ_c, s_c²)`.
    #[inline]
    fn log_joint(&self, c: usize, u: &[f64]) -> f64 {
        let range = c * self.d..(c + 1) * self.d;
        let mut q = 0.0;
        for ((ui, mi), iv) in u
            .iter()
            .zip(&self.mu[range.clone()])
            .zip(&self.inv_var[range])
        {
            let e = ui - mi;
            q += e * e * iv;
        }
        self.log_norm[c] - 0.5 * q
    }

    /// `log p(u) = LSE_c log_joint(c, u)` (streaming log-sum-exp; −∞ if every term is).
    fn log_prob(&self, u: &[f64]) -> f64 {
        let mut max = f64::NEG_INFINITY;
        let mut sum = 0.0;
        for c in 0..self.c {
            let l = self.log_joint(c, u);
            if l == f64::NEG_INFINITY || l.is_nan() {
                continue;
            }
            if l > max {
                sum = sum * (max - l).exp() + 1.0;
                max = l;
            } else {
                sum += (l - max).exp();
            }
        }
        if sum > 0.0 {
            max + sum.ln()
        } else {
            f64::NEG_INFINITY
        }
    }

    /// The component with the largest weight (lowest index on ties).
    fn dominant(&self) -> usize {
        let mut best = 0;
        for c in 1..self.c {
            if self.pi[c] > self.pi[best] {
                best = c;
            }
        }
        best
    }

    /// Copy every field from `other` (same shape) without allocating.
    fn copy_from(&mut self, other: &Components) {
        self.pi.copy_from_slice(&other.pi);
        self.mu.copy_from_slice(&other.mu);
        self.var.copy_from_slice(&other.var);
        self.sd.copy_from_slice(&other.sd);
        self.inv_var.copy_from_slice(&other.inv_var);
        self.log_norm.copy_from_slice(&other.log_norm);
    }

    /// Write the moment coordinates `(π, [μ_c, s_c²]_c)` into `out`.
    fn write_params(&self, out: &mut [f64]) {
        let (c_n, d) = (self.c, self.d);
        out[..c_n].copy_from_slice(&self.pi);
        for c in 0..c_n {
            let base = c_n + 2 * c * d;
            out[base..base + d].copy_from_slice(&self.mu[c * d..(c + 1) * d]);
            out[base + d..base + 2 * d].copy_from_slice(&self.var[c * d..(c + 1) * d]);
        }
    }
}

/// Mixture of `C` diagonal Gaussians over plans (`family = "mixture"`); see the module docs
/// for the math.
///
/// ```
/// use mppi::proposal::{Proposal, GaussianMixture, MixtureSettings};
/// let settings = MixtureSettings { components: 2, inner_iterations: 20, ..MixtureSettings::default() };
/// // 1 step of 1 control, σ = 0.5: means at ∓0.5, variance 0.25, weights ½
/// let mut f = GaussianMixture::new(1, 1, &[0.25], &[-2.0], &[2.0], settings).unwrap();
/// assert_eq!(f.params(), &[0.5, 0.5, -0.5, 0.25, 0.5, 0.25]);
/// let n = |u: f64, m: f64| (-(u - m) * (u - m) / 0.5).exp() / (2.0 * std::f64::consts::PI * 0.25).sqrt();
/// let expected = (0.5 * n(0.3, -0.5) + 0.5 * n(0.3, 0.5)).ln();
/// assert!((f.log_prob(&[0.3]).unwrap() - expected).abs() < 1e-12);
/// // fit to samples at ±1 with equal weights: the components move to the two clusters
/// let samples = [-1.0, -1.1, 1.0, 1.1];
/// let mut theta = vec![0.0; f.params().len()];
/// f.fit(&samples, &[0.25; 4], &mut theta);
/// f.set_params(&theta).unwrap();
/// let mut plan = [0.0];
/// f.plan(&mut plan);
/// assert!((plan[0].abs() - 1.05).abs() < 0.02, "{plan:?}");
/// ```
#[derive(Debug, Clone)]
pub struct GaussianMixture {
    m: usize,
    settings: MixtureSettings,
    params: Vec<f64>,
    cur: Components,
    init: Components,
    /// Scratch of the inner EM (the working parameters).
    work: Box<Components>,
    /// `N × C` responsibilities (scratch of `fit`).
    resp: Vec<f64>,
    /// `d` accumulator (scratch of `fit`).
    acc: Vec<f64>,
    /// Initial per-step variances (`m`), clamped.
    init_var_row: Vec<f64>,
    var_min: f64,
    var_max: f64,
    u_min: Vec<f64>,
    u_max: Vec<f64>,
    zero_row: Vec<f64>,
    /// The schedule's spread multiplier `s_t` of every time step (all 1 when `!scaled`).
    spread: Vec<f64>,
    /// Whether some `s_t ≠ 1` (the caches of `cur` are then those of the scaled components).
    scaled: bool,
}

impl GaussianMixture {
    /// A mixture over `horizon` steps of `m` controls; `covariance` is the row-major `m x m`
    /// per-step exploration covariance (only its diagonal is used), `u_min`/`u_max` the
    /// control box (±∞ for none).
    pub fn new(
        horizon: usize,
        m: usize,
        covariance: &[f64],
        u_min: &[f64],
        u_max: &[f64],
        settings: MixtureSettings,
    ) -> Result<Self, MppiError> {
        check_len("u_min", m, u_min.len())?;
        check_len("u_max", m, u_max.len())?;
        check_len("proposal.noise_covariance", m * m, covariance.len())?;
        if horizon == 0 {
            return Err(MppiError::config("horizon", "must be >= 1"));
        }
        if settings.components == 0 {
            return Err(MppiError::config("mixture_components", "must be >= 1"));
        }
        if settings.inner_iterations == 0 {
            return Err(MppiError::config(
                "proposal.inner_iterations",
                "must be >= 1",
            ));
        }
        check_spread_limits(settings.std_min, settings.std_max, settings.prior_weight)?;
        for j in 0..m {
            let v = covariance[j * m + j];
            if !(v.is_finite() && v > 0.0) {
                return Err(MppiError::config(
                    "proposal.noise_sigma",
                    format!("the variance of control dimension {j} must be > 0, got {v}"),
                ));
            }
            if u_min[j].is_nan() || u_max[j].is_nan() || u_min[j] >= u_max[j] {
                return Err(MppiError::config(
                    "u_min",
                    format!("u_min[{j}] must be below u_max[{j}]"),
                ));
            }
        }
        let (c_n, d) = (settings.components, horizon * m);
        let var_min = settings.std_min * settings.std_min;
        let var_max = settings.std_max * settings.std_max;
        let init_var_row: Vec<f64> = (0..m)
            .map(|j| covariance[j * m + j].clamp(var_min, var_max))
            .collect();
        let zero_row = clamped_zero_row(u_min, u_max);
        let mut init = Components::new(c_n, d);
        for c in 0..c_n {
            init.pi[c] = 1.0 / c_n as f64;
            let offset = c as f64 - 0.5 * (c_n as f64 - 1.0);
            for t in 0..horizon {
                for j in 0..m {
                    let k = c * d + t * m + j;
                    let sigma = covariance[j * m + j].sqrt();
                    init.mu[k] = (zero_row[j] + offset * 2.0 * sigma).clamp(u_min[j], u_max[j]);
                    init.var[k] = init_var_row[j];
                }
            }
        }
        init.refresh(None);
        let mut params = vec![0.0; c_n + 2 * c_n * d];
        init.write_params(&mut params);
        Ok(GaussianMixture {
            m,
            settings,
            params,
            cur: init.clone(),
            work: Box::new(init.clone()),
            init,
            resp: vec![0.0; settings.samples * c_n],
            acc: vec![0.0; d],
            init_var_row,
            var_min,
            var_max,
            u_min: u_min.to_vec(),
            u_max: u_max.to_vec(),
            zero_row,
            spread: vec![1.0; horizon],
            scaled: false,
        })
    }

    /// Number of components `C`.
    #[must_use]
    pub fn components(&self) -> usize {
        self.cur.c
    }
    /// Component weights `π`.
    #[must_use]
    pub fn weights(&self) -> &[f64] {
        &self.cur.pi
    }
    /// Mean of component `c` (`d` entries).
    #[must_use]
    pub fn component_mean(&self, c: usize) -> &[f64] {
        &self.cur.mu[c * self.cur.d..(c + 1) * self.cur.d]
    }
    /// Variances of component `c` (`d` entries), of the unscaled family.
    #[must_use]
    pub fn component_variance(&self, c: usize) -> &[f64] {
        &self.cur.var[c * self.cur.d..(c + 1) * self.cur.d]
    }

    /// `Σ_i w_i log p(U_i; θ)` over the samples with positive weight (the M-step objective
    /// `Q̂`, used by the tests of H18), under the prepared spread.
    #[must_use]
    pub fn weighted_log_likelihood(&self, samples: &[f64], weights: &[f64]) -> f64 {
        weighted_ll(&self.cur, samples, weights)
    }

    /// The fit of [`Proposal::fit`], also reporting `Q̂` after every inner iteration into
    /// `trace` (as many entries as fit; for the H18 checks). The re-seeding of dead
    /// components happens after the last entry.
    pub fn fit_traced(
        &mut self,
        samples: &[f64],
        weights: &[f64],
        out: &mut [f64],
        trace: &mut [f64],
    ) {
        self.fit_inner(samples, weights, out, trace);
    }

    fn fit_inner(&mut self, samples: &[f64], weights: &[f64], out: &mut [f64], trace: &mut [f64]) {
        let (c_n, d) = (self.cur.c, self.cur.d);
        let n = weights.len().min(samples.len() / d.max(1));
        if self.resp.len() < n * c_n {
            // only when fit sees more samples than the constructor was told (documented)
            self.resp.resize(n * c_n, 0.0);
        }
        let spread = self.scaled.then_some(self.spread.as_slice());
        let work = &mut *self.work;
        // the caches come along: the responsibilities are those of the scaled components
        work.copy_from(&self.cur);
        let nu = self.settings.prior_weight;
        let mut any_weight = false;
        for it in 0..self.settings.inner_iterations {
            // Inner E-step: responsibilities in log space.
            for i in 0..n {
                let w = weights[i];
                if w.is_nan() || w <= 0.0 {
                    continue;
                }
                any_weight = true;
                let u = &samples[i * d..(i + 1) * d];
                let r = &mut self.resp[i * c_n..(i + 1) * c_n];
                let mut max = f64::NEG_INFINITY;
                for (c, rc) in r.iter_mut().enumerate() {
                    *rc = work.log_joint(c, u);
                    if *rc > max {
                        max = *rc;
                    }
                }
                if max.is_finite() {
                    let mut sum = 0.0;
                    for rc in r.iter_mut() {
                        *rc = if rc.is_nan() { 0.0 } else { (*rc - max).exp() };
                        sum += *rc;
                    }
                    for rc in r.iter_mut() {
                        *rc /= sum;
                    }
                } else {
                    // no component gives this sample a positive density: fall back to π
                    r.copy_from_slice(&work.pi);
                }
            }
            if !any_weight {
                break;
            }
            // Inner M-step (into `acc`; an empty component keeps its mean and spread).
            let mut total = 0.0;
            for c in 0..c_n {
                let acc = &mut self.acc;
                acc.fill(0.0);
                let mut mass = 0.0;
                for i in 0..n {
                    let wr = weights[i] * self.resp[i * c_n + c];
                    if weights[i] > 0.0 && wr > 0.0 {
                        mass += wr;
                        for (a, ui) in acc.iter_mut().zip(&samples[i * d..(i + 1) * d]) {
                            *a += wr * ui;
                        }
                    }
                }
                if !(mass > 1e-300 && mass.is_finite()) {
                    work.pi[c] = 0.0;
                    continue;
                }
                let mu = &mut work.mu[c * d..(c + 1) * d];
                for (mi, a) in mu.iter_mut().zip(acc.iter()) {
                    *mi = a / mass;
                }
                acc.fill(0.0);
                for i in 0..n {
                    let wr = weights[i] * self.resp[i * c_n + c];
                    if weights[i] > 0.0 && wr > 0.0 {
                        for ((a, ui), mi) in
                            acc.iter_mut().zip(&samples[i * d..(i + 1) * d]).zip(&*mu)
                        {
                            let e = ui - mi;
                            *a += wr * e * e;
                        }
                    }
                }
                for ((v, a), k) in work.var[c * d..(c + 1) * d]
                    .iter_mut()
                    .zip(acc.iter())
                    .zip(0..)
                {
                    let mut s = a / mass;
                    if let Some(spread) = spread {
                        // the component variance of p_s is s_t² s²: back to the unscaled s²
                        let st = spread[k / self.m];
                        s /= st * st;
                    }
                    let s = if nu > 0.0 {
                        (nu * self.init_var_row[k % self.m] + s) / (1.0 + nu)
                    } else {
                        s
                    };
                    *v = s.clamp(self.var_min, self.var_max);
                }
                work.pi[c] = mass;
                total += mass;
            }
            if total > 0.0 && total.is_finite() {
                for p in work.pi.iter_mut() {
                    *p /= total;
                }
            }
            work.refresh(spread);
            if let Some(slot) = trace.get_mut(it) {
                *slot = weighted_ll(work, samples, weights);
            }
        }
        // Component death: re-seed at the best-weighted sample with the initial spread.
        let best = (0..n).fold(None, |best: Option<usize>, i| match best {
            Some(b) if weights[b] >= weights[i] => Some(b),
            _ if weights[i] > 0.0 => Some(i),
            _ => best,
        });
        if let Some(b) = best {
            let dead = work.pi.iter().filter(|p| **p < PI_DEAD).count();
            if dead > 0 && dead < c_n {
                let alive: f64 = work.pi.iter().filter(|p| **p >= PI_DEAD).sum();
                let reseed = PI_RESEED.min(0.5 / dead as f64);
                let scale = (1.0 - reseed * dead as f64) / alive;
                for c in 0..c_n {
                    if work.pi[c] < PI_DEAD {
                        work.pi[c] = reseed;
                        work.mu[c * d..(c + 1) * d].copy_from_slice(&samples[b * d..(b + 1) * d]);
                        for (k, v) in work.var[c * d..(c + 1) * d].iter_mut().enumerate() {
                            *v = self.init_var_row[k % self.m];
                        }
                    } else {
                        work.pi[c] *= scale;
                    }
                }
                work.refresh(spread);
            }
        }
        work.write_params(out);
    }
}

/// `Σ_i w_i log p(U_i)` over the samples with positive weight.
fn weighted_ll(comp: &Components, samples: &[f64], weights: &[f64]) -> f64 {
    let d = comp.d;
    weights
        .iter()
        .zip(samples.chunks_exact(d))
        .filter(|(w, _)| **w > 0.0)
        .map(|(w, u)| w * comp.log_prob(u))
        .sum()
}

impl Proposal for GaussianMixture {
    fn name(&self) -> &'static str {
        "mixture"
    }
    fn dim(&self) -> usize {
        self.cur.d
    }
    fn control_dim(&self) -> usize {
        self.m
    }
    fn params(&self) -> &[f64] {
        &self.params
    }
    fn set_params(&mut self, theta: &[f64]) -> Result<(), MppiError> {
        let (c_n, d) = (self.cur.c, self.cur.d);
        check_len("mixture parameters", self.params.len(), theta.len())?;
        check_finite("mixture parameters", theta)?;
        let pi = &theta[..c_n];
        let total: f64 = pi.iter().sum();
        if let Some(c) = pi.iter().position(|p| *p < 0.0) {
            return Err(MppiError::config(
                "proposal",
                format!("mixture weight π_{c} = {} is negative", pi[c]),
            ));
        }
        if (total - 1.0).abs() > 1e-6 {
            return Err(MppiError::config(
                "proposal",
                format!("mixture weights sum to {total}, not 1"),
            ));
        }
        for c in 0..c_n {
            let base = c_n + 2 * c * d;
            if let Some(j) = (0..d).find(|&j| theta[base + d + j] <= 0.0) {
                return Err(MppiError::config(
                    "proposal",
                    format!(
                        "mixture component {c}, entry {j}: variance {} must be > 0",
                        theta[base + d + j]
                    ),
                ));
            }
        }
        for c in 0..c_n {
            self.cur.pi[c] = pi[c] / total;
            let base = c_n + 2 * c * d;
            for j in 0..d {
                self.cur.mu[c * d + j] = theta[base + j];
                self.cur.var[c * d + j] = theta[base + d + j].clamp(self.var_min, self.var_max);
            }
            clamp_plan(
                &mut self.cur.mu[c * d..(c + 1) * d],
                &self.u_min,
                &self.u_max,
            );
        }
        self.cur.refresh(self.scaled.then_some(&self.spread));
        self.cur.write_params(&mut self.params);
        Ok(())
    }
    fn reset(&mut self) {
        self.cur.copy_from(&self.init);
        if self.scaled {
            // `init` holds the caches of the unscaled components
            self.cur.refresh(Some(&self.spread));
        }
        self.cur.write_params(&mut self.params);
    }
    fn shift(&mut self, fill: ShiftFill) {
        let (c_n, d, m) = (self.cur.c, self.cur.d, self.m);
        for c in 0..c_n {
            shift_rows(
                &mut self.cur.mu[c * d..(c + 1) * d],
                m,
                fill,
                &self.zero_row,
            );
            shift_rows(
                &mut self.cur.var[c * d..(c + 1) * d],
                m,
                fill,
                &self.init_var_row,
            );
        }
        self.cur.refresh(self.scaled.then_some(&self.spread));
        self.cur.write_params(&mut self.params);
    }
    fn plan(&self, out: &mut [f64]) {
        out.copy_from_slice(self.component_mean(self.cur.dominant()));
    }
    fn set_plan(&mut self, plan: &[f64]) -> Result<(), MppiError> {
        let d = self.cur.d;
        check_len("plan", d, plan.len())?;
        check_finite("plan", plan)?;
        let c = self.cur.dominant();
        let mu = &mut self.cur.mu[c * d..(c + 1) * d];
        mu.copy_from_slice(plan);
        clamp_plan(mu, &self.u_min, &self.u_max);
        self.cur.write_params(&mut self.params);
        Ok(())
    }
    /// Stores the schedule's spread `s_t` and rescales the components' caches (module docs);
    /// errors name `schedule`.
    fn prepare(&mut self, ctx: &Context<'_>) -> Result<(), MppiError> {
        let was_scaled = self.scaled;
        store_spread(&mut self.spread, &mut self.scaled, ctx.spread)?;
        if was_scaled || self.scaled {
            self.cur.refresh(self.scaled.then_some(&self.spread));
        }
        Ok(())
    }
    /// `U = clamp(μ_c + s_t s_c ⊙ z)` for the component `c` drawn by `π`.
    fn sample(&self, rng: &mut SampleRng, u: &mut [f64]) {
        let d = self.cur.d;
        let draw: f64 = rng.uniform();
        let mut c = self.cur.dominant();
        let mut cum = 0.0;
        for (k, p) in self.cur.pi.iter().enumerate() {
            cum += p;
            if *p > 0.0 && draw < cum {
                c = k;
                break;
            }
        }
        let range = c * d..(c + 1) * d;
        for ((ui, mi), si) in u
            .iter_mut()
            .zip(&self.cur.mu[range.clone()])
            .zip(&self.cur.sd[range])
        {
            let z: f64 = rng.normal();
            *ui = mi + si * z;
        }
        clamp_plan(u, &self.u_min, &self.u_max);
    }
    fn log_prob(&self, u: &[f64]) -> Option<f64> {
        Some(self.cur.log_prob(u))
    }
    fn fit(&mut self, samples: &[f64], weights: &[f64], out: &mut [f64]) {
        self.fit_inner(samples, weights, out, &mut []);
    }
    /// The complete-data KL over `(U, c)` with components matched by index:
    ///
    /// ```text
    /// KL_joint = Σ_c π_c log(π_c / π'_c) + Σ_c π_c KL(N(μ_c, s_c²) ‖ N(μ'_c, s'_c²))
    /// ```
    ///
    /// The KL between the mixtures themselves has no closed form; by the chain rule it is at
    /// most this (marginalizing `c` cannot increase a KL). It is also what the M-step's gain is
    /// measured against: one inner EM iteration maximizes the complete-data objective exactly,
    /// so its gain equals `KL_joint(p_new ‖ p_old)` and the outer gain `ΔQ̂` is at least that
    /// (generalized EM; docs/theory.md §C.2, H4). The components are those sampled from (each
    /// instance's variances times its own `s_t²`). `None` for another family or another shape.
    fn kl(&self, other: &dyn Proposal) -> Option<f64> {
        let other = super::downcast::<GaussianMixture>(other)?;
        let (a, b) = (&self.cur, &other.cur);
        if a.c != b.c || a.d != b.d {
            return None;
        }
        let d = a.d;
        if self.scaled || other.scaled {
            // `b.inv_var` already holds b's `1/(s_t² s²)`; `a.var` is unscaled
            let m = self.m;
            let mut kl = 0.0;
            for c in 0..a.c {
                let p = a.pi[c];
                if p == 0.0 {
                    continue;
                }
                let mut comp = (p / b.pi[c]).ln();
                for (k, j) in (c * d..(c + 1) * d).enumerate() {
                    let sa = self.spread[k / m];
                    let e = a.mu[j] - b.mu[j];
                    let ratio = a.var[j] * (sa * sa) * b.inv_var[j];
                    comp += 0.5 * (ratio + e * e * b.inv_var[j] - 1.0 - ratio.ln());
                }
                kl += p * comp;
            }
            return Some(kl);
        }
        let mut kl = 0.0;
        for c in 0..a.c {
            let p = a.pi[c];
            if p == 0.0 {
                continue;
            }
            let mut comp = (p / b.pi[c]).ln();
            for j in c * d..(c + 1) * d {
                let e = a.mu[j] - b.mu[j];
                let ratio = a.var[j] * b.inv_var[j];
                comp += 0.5 * (ratio + e * e * b.inv_var[j] - 1.0 - ratio.ln());
            }
            kl += p * comp;
        }
        Some(kl)
    }
    fn clone_box(&self) -> Box<dyn Proposal> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposal::test_support::test_spread;
    use crate::proposal::test_support::{Z_TOL, increase_gains, max_z};
    use crate::rng::sample_rng;
    use crate::testing::theory::{MStep, RECOVERY_T, check_em_step, check_fit_recovery};
    use crate::{FnObjective, MppiConfig, Planner};
    use crate::{ProposalConfig, WeightingConfig};

    /// A bimodal weighted sample set in `d` dimensions: clusters at `±a` (in every coordinate)
    /// with unequal cluster weights, deterministic.
    fn bimodal(n: usize, d: usize, a: f64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = sample_rng(11, 0, 0, 0);
        let mut samples = vec![0.0; n * d];
        let mut weights = vec![0.0; n];
        for i in 0..n {
            let center = if i % 3 == 0 { -a } else { a };
            for j in 0..d {
                let z: f64 = rng.normal();
                samples[i * d + j] = center + 0.4 * z + 0.1 * j as f64;
            }
            let r: f64 = rng.uniform();
            weights[i] = 0.2 + r;
        }
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        (samples, weights)
    }

    fn mixture(t: usize, m: usize, sigma: f64, settings: MixtureSettings) -> GaussianMixture {
        let mut cov = vec![0.0; m * m];
        for j in 0..m {
            cov[j * m + j] = sigma * sigma;
        }
        GaussianMixture::new(
            t,
            m,
            &cov,
            &vec![f64::NEG_INFINITY; m],
            &vec![f64::INFINITY; m],
            settings,
        )
        .unwrap()
    }

    #[test]
    fn log_prob_is_the_exact_mixture_density() {
        let mut f = mixture(2, 1, 0.7, MixtureSettings::default());
        let theta = [0.3, 0.7, -1.0, 2.0, 0.04, 0.25, 0.5, -0.5, 0.09, 0.01];
        f.set_params(&theta).unwrap();
        let u = [0.2, 1.1];
        let comp = |mu: [f64; 2], var: [f64; 2]| -> f64 {
            (0..2)
                .map(|j| {
                    (-(u[j] - mu[j]).powi(2) / (2.0 * var[j])).exp() / (2.0 * PI * var[j]).sqrt()
                })
                .product()
        };
        let p = 0.3 * comp([-1.0, 2.0], [0.04, 0.25]) + 0.7 * comp([0.5, -0.5], [0.09, 0.01]);
        let lp = f.log_prob(&u).unwrap();
        assert!((lp - p.ln()).abs() < 1e-10, "{lp} vs {}", p.ln());
        assert_eq!(f.params(), &theta);
        // far away: finite (log-sum-exp), not −∞ through underflow
        assert!(f.log_prob(&[1e3, -1e3]).unwrap().is_finite());
        // invalid parameters are rejected and leave the family unchanged
        let mut bad = theta;
        bad[4] = -0.1; // negative variance
        assert!(f.set_params(&bad).is_err());
        bad = theta;
        bad[0] = 0.5; // weights sum to 1.2
        assert!(f.set_params(&bad).is_err());
        assert_eq!(f.params(), &theta);
        assert_eq!(f.kl(&f.clone()), Some(0.0));
    }

    #[test]
    fn constructor_errors_name_the_config_key() {
        let make = |s: MixtureSettings, cov: f64| {
            GaussianMixture::new(3, 1, &[cov], &[-1.0], &[1.0], s)
                .unwrap_err()
                .to_string()
        };
        let d = MixtureSettings::default();
        assert!(make(MixtureSettings { components: 0, ..d }, 1.0).contains("mixture_components"));
        assert!(
            make(
                MixtureSettings {
                    inner_iterations: 0,
                    ..d
                },
                1.0
            )
            .contains("proposal.inner_iterations")
        );
        assert!(make(MixtureSettings { std_min: -1.0, ..d }, 1.0).contains("proposal.std_min"));
        assert!(make(MixtureSettings { std_max: 1e-4, ..d }, 1.0).contains("proposal.std_max"));
        assert!(
            make(
                MixtureSettings {
                    prior_weight: -1.0,
                    ..d
                },
                1.0
            )
            .contains("proposal.prior_weight")
        );
        assert!(make(d, 0.0).contains("proposal.noise_sigma"));
    }

    #[test]
    fn initial_means_are_spread_and_clamped() {
        let settings = MixtureSettings {
            components: 3,
            ..MixtureSettings::default()
        };
        let f = GaussianMixture::new(
            2,
            2,
            &[1.0, 0.0, 0.0, 0.25],
            &[-1.5, -5.0],
            &[5.0, 5.0],
            settings,
        )
        .unwrap();
        assert_eq!(f.component_mean(0), &[-1.5, -1.0, -1.5, -1.0]);
        assert_eq!(f.component_mean(1), &[0.0, 0.0, 0.0, 0.0]);
        assert_eq!(f.component_mean(2), &[2.0, 1.0, 2.0, 1.0]);
        assert_eq!(f.component_variance(2), &[1.0, 0.25, 1.0, 0.25]);
    }

    /// `log π_c + log N(u; μ_c, diag s_c²)` from the public accessors (independent of the
    /// family's density and fit code).
    fn log_joint(f: &GaussianMixture, c: usize, u: &[f64]) -> f64 {
        let (m, v) = (f.component_mean(c), f.component_variance(c));
        f.weights()[c].ln()
            + (0..u.len())
                .map(|j| -0.5 * (2.0 * PI * v[j]).ln() - 0.5 * (u[j] - m[j]).powi(2) / v[j])
                .sum::<f64>()
    }

    /// The complete-data gain `Q_c(θ⁺|θ_k) − Q_c(θ_k|θ_k)
    /// = Σ_i w_i Σ_c r_ic(θ_k) [log π⁺_c N(U_i; μ⁺_c, s⁺_c²) − log π_c N(U_i; μ_c, s_c²)]`,
    /// with the responsibilities `r_ic(θ_k)` of `old`, from the accessors only.
    fn complete_data_gain(
        old: &GaussianMixture,
        new: &GaussianMixture,
        samples: &[f64],
        weights: &[f64],
    ) -> f64 {
        let (c_n, d) = (old.components(), old.dim());
        let mut gain = 0.0;
        for (u, w) in samples.chunks_exact(d).zip(weights) {
            let l: Vec<f64> = (0..c_n).map(|c| log_joint(old, c, u)).collect();
            let max = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = l.iter().map(|x| (x - max).exp()).sum();
            for c in 0..c_n {
                let r = (l[c] - max).exp() / z;
                gain += w * r * (log_joint(new, c, u) - l[c]);
            }
        }
        gain
    }

    /// H18. One inner iteration with the floors off (`prior_weight = 0`, `std_min = 1e-9`,
    /// `std_max = 1e9`, no component death) is the exact M-step of the complete-data
    /// objective over `(U, c)`, an exponential family; so, by §C.2 applied to it, its gain
    /// `Q_c(θ⁺|θ_k) − Q_c(θ_k|θ_k)` (computed here from the accessors and `θ_k`'s
    /// responsibilities) equals `kl() = KL_joint(p⁺ ‖ p_k)` to 1e-10 relative, with
    /// `KL_joint > 0`; and the outer gain satisfies `ΔQ̂ ≥ KL_joint − 1e-10` (generalized EM:
    /// `Q̂(θ) − Q̂(θ_k) ≥ Q_c(θ|θ_k) − Q_c(θ_k|θ_k)`, the ELBO with `θ_k`'s responsibilities
    /// being tight at `θ_k`). A wrong M-step, density or `kl()` breaks the identity: a fit
    /// with its variances × 1.05 misses it. With 25 inner iterations `Q̂` never decreases
    /// over the trace (≥ −1e-10). (Before: `ΔL̂ ≥ ΔQ̂`, Jensen, true for any `θ⁺`.)
    #[test]
    fn h18_inner_em_is_monotone_and_outer_increase_holds() {
        let d = 4;
        let (samples, weights) = bimodal(600, d, 0.7);
        let settings = |inner| MixtureSettings {
            components: 2,
            inner_iterations: inner,
            std_min: 1e-9,
            std_max: 1e9,
            prior_weight: 0.0,
            samples: 600,
        };
        // one inner iteration: the complete-data identity
        let mut f = mixture(1, d, 1.0, settings(1));
        let mut theta = vec![0.0; f.params().len()];
        f.fit(&samples, &weights, &mut theta);
        let mut g = f.clone();
        g.set_params(&theta).unwrap();
        assert!(g.weights().iter().all(|p| *p > 0.05), "{:?}", g.weights());
        let gain = complete_data_gain(&f, &g, &samples, &weights);
        let kl = g.kl(&f).unwrap_or(f64::NAN);
        let rel = (gain - kl).abs() / kl;
        let (_, dq) = increase_gains(&f, &g, &samples, &weights);
        // a wrong M-step: every variance 5% too large
        let mut wrong = theta.clone();
        for c in 0..2 {
            let base = 2 + 2 * c * d + d;
            wrong[base..base + d].iter_mut().for_each(|v| *v *= 1.05);
        }
        let mut bad = f.clone();
        bad.set_params(&wrong).unwrap();
        let bad_gain = complete_data_gain(&f, &bad, &samples, &weights);
        let bad_kl = bad.kl(&f).unwrap_or(f64::NAN);
        let rel_bad = (bad_gain - bad_kl).abs() / bad_kl;
        println!(
            "H18 inner=1: Q_c gain {gain:.8} vs KL_joint {kl:.8} (rel. {rel:.2e}, tol 1e-10); ΔQ̂ {dq:.8} ≥ KL_joint (margin {:.3e}); variances × 1.05: rel. {rel_bad:.2e}",
            dq - kl
        );
        assert!(
            kl > 0.0 && rel <= 1e-10,
            "complete-data gain {gain} vs kl() {kl}"
        );
        assert!(dq >= kl - 1e-10, "GEM: ΔQ̂ {dq} < KL_joint {kl}");
        assert!(rel_bad > 1e-4, "the identity has no power: {rel_bad:e}");
        // 25 inner iterations: Q̂ never decreases
        let inner = 25;
        let mut f = mixture(1, d, 1.0, settings(inner));
        let q0 = f.weighted_log_likelihood(&samples, &weights);
        let mut trace = vec![0.0; inner];
        f.fit_traced(&samples, &weights, &mut theta, &mut trace);
        let mut g = f.clone();
        g.set_params(&theta).unwrap();
        assert!(g.weights().iter().all(|p| *p > 0.05), "{:?}", g.weights());
        // no component died, so the last trace entry is Q̂(θ⁺)
        let q1 = g.weighted_log_likelihood(&samples, &weights);
        assert!((q1 - trace[inner - 1]).abs() < 1e-9);
        let mut prev = q0;
        let mut worst = f64::INFINITY;
        for q in &trace {
            worst = worst.min(q - prev);
            prev = *q;
        }
        println!(
            "H18 inner={inner}: Q̂ trace {q0:.6} -> {:.6?}; min inner step ΔQ̂ = {worst:.3e} (>= -1e-10)",
            &trace[..6]
        );
        assert!(worst >= -1e-10, "inner EM decreased Q̂ by {worst}");
    }

    /// `kl()` is the complete-data KL `Σ_c π_c log(π_c/π'_c) + Σ_c π_c KL(N_c ‖ N'_c)`:
    /// `KL(p ‖ p) = 0`; it matches that formula evaluated from the accessors (1e-12 rel.)
    /// and is > 0 for different mixtures; and it bounds the true mixture KL from above. The
    /// bound is checked against a Monte-Carlo estimate `E_p[log p − log q]` (2e5 draws of
    /// `p`, standard error `SE = sd/√n`): `kl() ≥ MC − Z_TOL·SE`. For well-separated
    /// components the bound is tight (the responsibilities are one-hot, so the chain-rule gap
    /// `E_p KL(p(c|U) ‖ q(c|U))` vanishes), and there `0.95·kl()` must fail the same check;
    /// for overlapping components the gap is positive.
    #[test]
    fn kl_is_the_complete_data_kl_and_bounds_the_mixture_kl() {
        let d = 2;
        let f = mixture(1, d, 1.0, MixtureSettings::default());
        assert_eq!(f.kl(&f.clone()), Some(0.0));
        let formula = |a: &GaussianMixture, b: &GaussianMixture| -> f64 {
            (0..a.components())
                .map(|c| {
                    let (pa, pb) = (a.weights()[c], b.weights()[c]);
                    let (ma, mb) = (a.component_mean(c), b.component_mean(c));
                    let (va, vb) = (a.component_variance(c), b.component_variance(c));
                    let comp: f64 = (0..d)
                        .map(|j| {
                            0.5 * (va[j] / vb[j] + (ma[j] - mb[j]).powi(2) / vb[j]
                                - 1.0
                                - (va[j] / vb[j]).ln())
                        })
                        .sum();
                    pa * ((pa / pb).ln() + comp)
                })
                .sum()
        };
        let with = |theta: &[f64]| {
            let mut g = f.clone();
            g.set_params(theta).unwrap();
            g
        };
        // (label, p, q, separated)
        let cases = [
            (
                "separated",
                with(&[0.3, 0.7, -4.0, -4.0, 0.5, 0.3, 4.0, 4.5, 0.4, 0.6]),
                with(&[0.45, 0.55, -3.6, -4.2, 0.6, 0.3, 4.3, 4.0, 0.5, 0.5]),
                true,
            ),
            (
                "overlapping",
                with(&[0.3, 0.7, -0.5, 0.0, 1.0, 0.8, 0.6, 0.2, 0.7, 1.2]),
                with(&[0.6, 0.4, 0.0, -0.4, 0.9, 1.1, 0.3, 0.5, 1.3, 0.6]),
                false,
            ),
        ];
        let n = 200_000u64;
        let mut u = [0.0; 2];
        for (label, p, q, separated) in &cases {
            let kl = p.kl(q).unwrap_or(f64::NAN);
            let rel = (kl - formula(p, q)).abs() / kl;
            assert!(
                kl > 0.0 && rel <= 1e-12,
                "{label}: kl() {kl} vs formula ({rel:e})"
            );
            let (mut s, mut s2) = (0.0, 0.0);
            for i in 0..n {
                p.sample(&mut sample_rng(31, 0, 0, i), &mut u);
                let x = p.log_prob(&u).unwrap() - q.log_prob(&u).unwrap();
                s += x;
                s2 += x * x;
            }
            let mean = s / n as f64;
            let se = ((s2 / n as f64 - mean * mean) / n as f64).sqrt();
            // z > 0: kl() above the MC mixture KL
            let z = (kl - mean) / se;
            let z_low = (0.95 * kl - mean) / se;
            println!(
                "mixture KL ({label}): kl() {kl:.5} vs MC mixture KL {mean:.5} ± {se:.5} (z {z:.2} ≥ −{Z_TOL}); 0.95·kl(): z {z_low:.1}"
            );
            assert!(z >= -Z_TOL, "{label}: kl() below the mixture KL");
            if *separated {
                assert!(z_low < -Z_TOL, "{label}: the bound check has no power");
            } else {
                assert!(z > Z_TOL, "{label}: expected a positive chain-rule gap");
            }
        }
    }

    /// Inner EM separates two clusters 4 apart (σ = 0.4 per coordinate): the responsibilities
    /// are one-hot to ~e^{−30} (a sample 3.5σ toward the other cluster still has a
    /// log-odds of about `(2·2.6² − 2·1.4²)/(2·0.16) = 30`), so the EM fixed point is the
    /// weighted moments of each cluster, computed here directly: weight, mean and variance
    /// of both components within 1e-9. (Before: `π` within 0.05 of 2/3, means within 0.1
    /// and variances within 0.05 of the generator's values, about 5–8 sampling SDs.)
    #[test]
    fn inner_em_separates_two_clusters() {
        let (n, d) = (900, 2);
        let (samples, weights) = bimodal(n, d, 2.0);
        let settings = MixtureSettings {
            components: 2,
            inner_iterations: 30,
            std_min: 0.01,
            std_max: 10.0,
            prior_weight: 0.0,
            samples: n,
        };
        let mut f = mixture(1, d, 1.0, settings);
        let mut theta = vec![0.0; f.params().len()];
        f.fit(&samples, &weights, &mut theta);
        f.set_params(&theta).unwrap();
        // component 0 starts at −1 and takes the cluster at −2 (rows i % 3 == 0)
        let mut worst = 0.0f64;
        for (c, negative) in [(0, true), (1, false)] {
            let rows: Vec<usize> = (0..n).filter(|i| (i % 3 == 0) == negative).collect();
            let mass: f64 = rows.iter().map(|&i| weights[i]).sum();
            worst = worst.max((f.weights()[c] - mass).abs());
            for j in 0..d {
                let mean = rows
                    .iter()
                    .map(|&i| weights[i] * samples[i * d + j])
                    .sum::<f64>()
                    / mass;
                let var = rows
                    .iter()
                    .map(|&i| weights[i] * (samples[i * d + j] - mean).powi(2))
                    .sum::<f64>()
                    / mass;
                worst = worst
                    .max((f.component_mean(c)[j] - mean).abs())
                    .max((f.component_variance(c)[j] - var).abs());
            }
        }
        println!("two clusters: max |fit − weighted cluster moments| {worst:.2e} (tol 1e-9)");
        assert!(worst <= 1e-9, "{worst:e}");
        // the plan is the heavier component's mean (the cluster at +2, + 0.1 j)
        let mut plan = [0.0; 2];
        f.plan(&mut plan);
        assert_eq!(plan, f.component_mean(1));
    }

    #[test]
    fn dead_component_is_reseeded_at_the_best_sample() {
        let mut f = mixture(1, 1, 0.3, MixtureSettings::default());
        // every sample near +3: the component at −0.3 loses all mass
        let samples = [2.9, 3.0, 3.1, 3.05];
        let weights = [0.1, 0.2, 0.3, 0.4];
        let mut theta = vec![0.0; f.params().len()];
        f.fit(&samples, &weights, &mut theta);
        f.set_params(&theta).unwrap();
        let dead = if f.weights()[0] < f.weights()[1] {
            0
        } else {
            1
        };
        assert!(
            (f.weights()[dead] - PI_RESEED).abs() < 1e-12,
            "{:?}",
            f.weights()
        );
        assert_eq!(f.component_mean(dead), &[3.05]);
        assert!((f.component_variance(dead)[0] - 0.09).abs() < 1e-12);
    }

    #[test]
    fn shift_and_set_plan_and_sampling() {
        let mut f = mixture(3, 1, 0.5, MixtureSettings::default());
        let theta = [
            0.25, 0.75, 1.0, 2.0, 3.0, 0.01, 0.01, 0.01, -1.0, -2.0, -3.0, 0.04, 0.04, 0.04,
        ];
        f.set_params(&theta).unwrap();
        let mut plan = [0.0; 3];
        f.plan(&mut plan);
        assert_eq!(plan, [-1.0, -2.0, -3.0]); // the dominant component
        f.shift(ShiftFill::Zero);
        assert_eq!(f.component_mean(0), &[2.0, 3.0, 0.0]);
        assert_eq!(f.component_mean(1), &[-2.0, -3.0, 0.0]);
        let v = f.component_variance(1);
        assert!((v[0] - 0.04).abs() < 1e-12 && (v[2] - 0.25).abs() < 1e-12);
        f.set_plan(&[5.0, 5.0, 5.0]).unwrap();
        assert_eq!(f.component_mean(1), &[5.0, 5.0, 5.0]);
        assert_eq!(f.component_mean(0), &[2.0, 3.0, 0.0]);
        // sampling: component frequencies follow π, deterministic per stream. Component 1
        // (π = 0.75, mean 5, sd 0.2) always lands within 1.5 of 5 and component 0 (mean 2,
        // sd 0.1) never does, so the count is Binomial(n, 0.75): within `Z_TOL` SE
        // `√(0.75·0.25/n)`, and 0.75 × 1.05 is missed. (Before: ±0.03 at n = 4000, 4.4 SE.)
        let mut u = [0.0; 3];
        let n = 20_000u32;
        let mut near_plan = 0;
        for i in 0..n {
            let mut rng = sample_rng(3, 0, 0, u64::from(i));
            f.sample(&mut rng, &mut u);
            if (u[0] - 5.0).abs() < 1.5 {
                near_plan += 1;
            }
        }
        let frac = f64::from(near_plan) / f64::from(n);
        let se = (0.75 * 0.25 / f64::from(n)).sqrt();
        let (z, z_pert) = (max_z([(frac, 0.75, se)]), max_z([(frac, 0.75 * 1.05, se)]));
        println!(
            "mixture sampling: frequency {frac:.4}, |z| {z:.2} (tol {Z_TOL}); against 0.75 × 1.05: {z_pert:.1}"
        );
        assert!(z <= Z_TOL && z_pert > Z_TOL, "{frac}");
        let (mut a, mut b) = ([0.0; 3], [0.0; 3]);
        f.sample(&mut sample_rng(1, 2, 3, 4), &mut a);
        f.sample(&mut sample_rng(1, 2, 3, 4), &mut b);
        assert_eq!(a, b);
        f.reset();
        assert_eq!(f.weights(), &[0.5, 0.5]);
    }

    /// A 1-D double well with two equally good minima at ±1 (black box, horizon 1): starting
    /// from components at ∓σ, the mixture keeps one component on each well for many
    /// iterations (both weights stay substantial), each component converges onto its well,
    /// and the plan (the dominant component) sits at a minimum.
    #[test]
    fn double_well_keeps_both_modes() {
        let well = |u: &[f64]| (u[0] * u[0] - 1.0).powi(2) * 4.0;
        let objective = FnObjective::new(1, well);
        let cfg = MppiConfig {
            samples: 400,
            horizon: 1,
            iterations: 1,
            seed: 5,
            proposal: ProposalConfig {
                noise_sigma: Some(vec![0.6]),
                components: Some(2),
                inner_iterations: Some(3),
                std_min: Some(0.02),
                std_max: Some(2.0),
                ..ProposalConfig::new(crate::ProposalKind::Mixture)
            },
            weighting: WeightingConfig::fixed(0.3),
            ..MppiConfig::default()
        };
        let mut planner = Planner::new(&cfg, 1).unwrap();
        let mut min_weight = f64::INFINITY;
        for it in 0..30 {
            planner.iterate(&objective, 0, it).unwrap();
            let mix = crate::proposal::downcast::<GaussianMixture>(planner.proposal()).unwrap();
            min_weight = min_weight.min(mix.weights()[0].min(mix.weights()[1]));
        }
        let mix = crate::proposal::downcast::<GaussianMixture>(planner.proposal()).unwrap();
        let (m0, m1) = (mix.component_mean(0)[0], mix.component_mean(1)[0]);
        println!(
            "double well: means {m0:.4}, {m1:.4}, weights {:?}, min weight over 30 its {min_weight:.3}, plan {:.4}",
            mix.weights(),
            planner.mean()[0]
        );
        assert!(
            (m0 + 1.0).abs() < 0.05 && (m1 - 1.0).abs() < 0.05,
            "{m0} {m1}"
        );
        assert!(min_weight > 0.2, "a mode lost its mass: {min_weight}");
        assert!((planner.mean()[0].abs() - 1.0).abs() < 0.05);
    }

    /// A narrow cluster far from the origin (`|μ| = 1e4`, `σ = 1e-3`, so `μ² / σ² = 1e14`):
    /// the fitted variance survives the parameter vector and `set_params` to round-off of the
    /// samples themselves. Stored as `E[u²] = μ² + s²` it came back as `E[u²] − μ²` with an
    /// error of up to half an ulp of `1e8` (7.5e-9), i.e. ~1% of `s² = 1e-6`.
    #[test]
    fn far_narrow_clusters_keep_their_variance() {
        let (n, d) = (400, 2);
        let settings = MixtureSettings {
            components: 2,
            inner_iterations: 1,
            std_min: 1e-9,
            std_max: 1e9,
            prior_weight: 0.0,
            samples: n,
        };
        let mut f = mixture(1, d, 1.0, settings);
        // two clusters at ±1e4 (the second at −1e4 + 5 in coordinate 1), σ = 1e-3
        let mut rng = sample_rng(21, 0, 0, 0);
        let mut samples = vec![0.0; n * d];
        let centers = [[1e4, 1e4], [-1e4, -1e4 + 5.0]];
        for (i, u) in samples.chunks_exact_mut(d).enumerate() {
            for (j, v) in u.iter_mut().enumerate() {
                let z: f64 = rng.normal();
                *v = centers[i % 2][j] + 1e-3 * z;
            }
        }
        let weights: Vec<f64> = (0..n).map(|i| (1.0 + (i % 7) as f64) / n as f64).collect();
        let total: f64 = weights.iter().sum();
        let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
        // reference: centred two-pass weighted moments of each cluster
        let reference = |k: usize, j: usize| -> (f64, f64) {
            let rows = (k..n).step_by(2);
            let mass: f64 = rows.clone().map(|i| weights[i]).sum();
            let mean = rows
                .clone()
                .map(|i| weights[i] * samples[i * d + j])
                .sum::<f64>()
                / mass;
            let var = rows
                .map(|i| weights[i] * (samples[i * d + j] - mean).powi(2))
                .sum::<f64>()
                / mass;
            (mean, var)
        };
        let mut theta = vec![0.0; f.params().len()];
        f.fit(&samples, &weights, &mut theta);
        f.set_params(&theta).unwrap();
        let mut g = f.clone();
        g.set_params(f.params()).unwrap(); // and once more through the parameter vector
        let mut worst = 0.0f64;
        for (c, k) in [(0, 1), (1, 0)] {
            // component 0 starts on the negative side, component 1 on the positive one
            for j in 0..d {
                let (mean, var) = reference(k, j);
                assert!(
                    (g.component_mean(c)[j] - mean).abs() <= 1e-9,
                    "component {c}, coordinate {j}: mean {} vs {mean}",
                    g.component_mean(c)[j]
                );
                let rel = (g.component_variance(c)[j] - var).abs() / var;
                worst = worst.max(rel);
            }
        }
        println!("|μ| = 1e4, σ = 1e-3: max relative variance error {worst:.2e} (tol 1e-6)");
        assert!(worst <= 1e-6, "variance lost to cancellation: {worst:.3e}");
        // the density at a cluster center is the narrow Gaussian's, not a cancelled one
        let u = [g.component_mean(1)[0], g.component_mean(1)[1]];
        let v = g.component_variance(1);
        let expected =
            g.weights()[1].ln() - 0.5 * (2.0 * PI * v[0]).ln() - 0.5 * (2.0 * PI * v[1]).ln();
        assert!((g.log_prob(&u).unwrap() - expected).abs() < 1e-9);
    }

    // ---- a schedule's spread (annealing) --------------------------------------------------

    /// The context of iteration 0 with the spread `s` (`None`: the own spread).
    fn ctx(s: Option<&[f64]>) -> crate::Context<'_> {
        crate::Context {
            spread: s,
            ..crate::Context::open_loop(0, 0, 1)
        }
    }

    /// A non-default two-component member (`T = 5`, `m = 2`, one inner iteration) with every
    /// floor off, prepared with `spread`.
    fn scaled_member(spread: &[f64]) -> GaussianMixture {
        let settings = MixtureSettings {
            components: 2,
            inner_iterations: 1,
            std_min: 1e-9,
            std_max: 1e9,
            prior_weight: 0.0,
            samples: 5000,
        };
        let mut f = mixture(5, 2, 0.6, settings);
        let d = 10;
        let mut theta = vec![0.35, 0.65];
        for c in 0..2 {
            let sign = if c == 0 { -1.0 } else { 1.0 };
            theta.extend((0..d).map(|j| sign * 0.6 + 0.05 * j as f64));
            theta.extend((0..d).map(|j| 0.15 + 0.05 * (j % 3) as f64 + 0.05 * c as f64));
        }
        f.set_params(&theta).unwrap();
        f.prepare(&ctx(Some(spread))).unwrap();
        f
    }

    /// `log π_c + log N(u; μ_c, diag(s_t² s_c²))` from the accessors and the spread.
    fn log_joint_scaled(f: &GaussianMixture, c: usize, u: &[f64], spread: &[f64]) -> f64 {
        let (m, v) = (f.component_mean(c), f.component_variance(c));
        f.weights()[c].ln()
            + (0..u.len())
                .map(|j| {
                    let vs = v[j] * spread[j / 2].powi(2);
                    -0.5 * (2.0 * PI * vs).ln() - 0.5 * (u[j] - m[j]).powi(2) / vs
                })
                .sum::<f64>()
    }

    /// [`complete_data_gain`] of the scaled components: `Σ_i w_i Σ_c r_ic(θ_k) [log_joint⁺ −
    /// log_joint_k]` with every density scaled by `spread`.
    fn complete_data_gain_scaled(
        old: &GaussianMixture,
        new: &GaussianMixture,
        samples: &[f64],
        weights: &[f64],
        spread: &[f64],
    ) -> f64 {
        let (c_n, d) = (old.components(), old.dim());
        let mut gain = 0.0;
        for (u, w) in samples.chunks_exact(d).zip(weights) {
            let l: Vec<f64> = (0..c_n)
                .map(|c| log_joint_scaled(old, c, u, spread))
                .collect();
            let max = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = l.iter().map(|x| (x - max).exp()).sum();
            for c in 0..c_n {
                let r = (l[c] - max).exp() / z;
                gain += w * r * (log_joint_scaled(new, c, u, spread) - l[c]);
            }
        }
        gain
    }

    /// A cost that prefers one mode and a slope along the plan (uneven weights).
    fn spread_cost(u: &[f64]) -> f64 {
        u.iter()
            .enumerate()
            .map(|(j, v)| (v - 0.4 - 0.3 * (0.8 * j as f64).sin()).powi(2))
            .sum()
    }

    /// With a non-uniform spread `s_t`: the conformance suite passes; `log_prob` is the
    /// mixture density with every component std times `s_t`; on samples of `p_s` with uneven
    /// weights (three temperatures) the generalized M-step check `ΔQ̂ ≥ KL_joint` passes and,
    /// with one inner iteration and no floor, the complete-data gain under the scaled
    /// components (computed here from the accessors) equals `kl()` to 1e-10 relative; `fit`
    /// recovers the *unscaled* parameters (t-test, |t| ≤ 7, 30 × 5000 draws). Negative
    /// control: the fit of an unprepared clone (responsibilities of the unscaled components,
    /// no `/ s_t²`) breaks the complete-data identity by far more than its tolerance.
    #[test]
    fn spread_scales_sampling_density_kl_and_fit() {
        let spread = test_spread(5);
        let f = scaled_member(&spread);
        crate::testing::check_proposal(&f, 3).unwrap();

        let u: Vec<f64> = (0..10).map(|j| 0.2 - 0.05 * j as f64).collect();
        let want = (log_joint_scaled(&f, 0, &u, &spread).exp()
            + log_joint_scaled(&f, 1, &u, &spread).exp())
        .ln();
        let lp_err = (f.log_prob(&u).unwrap() - want).abs();
        assert!(lp_err < 1e-10, "log_prob {lp_err:e} off");

        let (mut worst_rel, mut worst_neg, mut min_margin) = (0.0f64, f64::INFINITY, f64::INFINITY);
        for (seed, lambda) in [(21u64, 1.0), (22, 3.0), (23, 10.0)] {
            let samples = crate::proposal::test_support::sample_set(&f, 400, seed);
            let costs: Vec<f64> = samples.chunks_exact(10).map(spread_cost).collect();
            let w = crate::proposal::test_support::weights_from_costs(&costs, lambda);
            let r = check_em_step(&f, &samples, &w, MStep::Generalized).unwrap();
            let mut theta = vec![0.0; f.params().len()];
            f.clone().fit(&samples, &w, &mut theta);
            let mut plus = f.clone();
            plus.set_params(&theta).unwrap();
            assert!(
                plus.weights().iter().all(|p| *p > PI_DEAD),
                "a component died"
            );
            let gain = complete_data_gain_scaled(&f, &plus, &samples, &w, &spread);
            let rel = (gain - r.kl).abs() / r.kl;
            println!(
                "spread mixture (seed {seed}, λ {lambda}): ΔQ̂ {:.6} ≥ KL_joint {:.6} (margin {:.2e}); complete-data gain {gain:.6}, |gain − KL|/KL {rel:.2e} (tol 1e-10); ESS {:.0}/400",
                r.q_gain, r.kl, r.gap, r.ess
            );
            worst_rel = worst_rel.max(rel);
            min_margin = min_margin.min(r.gap);
            // negative control: θ⁺ fitted by the unscaled components
            let mut unscaled = f.clone();
            unscaled.prepare(&ctx(None)).unwrap();
            unscaled.fit(&samples, &w, &mut theta);
            let mut bad = f.clone();
            bad.set_params(&theta).unwrap();
            let bad_gain = complete_data_gain_scaled(&f, &bad, &samples, &w, &spread);
            let bad_kl = bad.kl(&f).unwrap();
            worst_neg = worst_neg.min((bad_gain - bad_kl).abs() / bad_kl);
        }
        println!(
            "spread mixture: max |gain − KL|/KL {worst_rel:.2e} (tol 1e-10), min ΔQ̂ − KL {min_margin:.2e}; negative control (fit without the spread): min |gain − KL|/KL {worst_neg:.3} (must exceed 1e-2)"
        );
        assert!(worst_rel <= 1e-10 && worst_neg > 1e-2);

        let r = check_fit_recovery(&f, 5_000, 30, 5, RECOVERY_T).unwrap();
        println!(
            "spread mixture recovery of the unscaled parameters ({}): max |t| {:.2} at parameter {} (tol {RECOVERY_T})",
            f.params().len(),
            r.max_t,
            r.worst
        );
    }

    /// `prepare` rejects a bad spread and leaves the proposal unchanged; `clone_box` carries
    /// the spread; `reset` keeps it; `open_loop` restores the own samples bit for bit.
    #[test]
    fn spread_is_validated_carried_and_restored() {
        let spread = test_spread(5);
        let mut f = scaled_member(&spread);
        let draw = |p: &dyn Proposal| {
            let mut u = vec![0.0; 10];
            p.sample(&mut sample_rng(4, 0, 0, 0), &mut u);
            u
        };
        let scaled = draw(&f);
        assert_eq!(draw(f.clone_box().as_ref()), scaled);
        for bad in [
            vec![1.0; 4],
            vec![1.0, 0.0, 1.0, 1.0, 1.0],
            vec![f64::NAN; 5],
        ] {
            assert!(f.prepare(&ctx(Some(&bad))).is_err());
            assert_eq!(draw(&f), scaled, "a rejected spread changed the samples");
        }
        let mut own = f.clone();
        own.prepare(&ctx(None)).unwrap();
        let before = draw(&own);
        assert_ne!(before, scaled);
        f.prepare(&ctx(Some(&[1.0; 5]))).unwrap();
        assert_eq!(draw(&f), before);
        // after reset, the initial components are scaled by the prepared spread
        let mut a = f.clone();
        a.reset();
        let mut b = a.clone();
        a.prepare(&ctx(Some(&spread))).unwrap();
        b.prepare(&ctx(Some(&spread))).unwrap();
        b.reset();
        assert_eq!(draw(&a), draw(&b));
        a.prepare(&ctx(None)).unwrap();
        assert_ne!(draw(&a), draw(&b));
    }

    /// The planner with DIAL-MPC's schedule and this family (floors off, full diagnostics):
    /// two control steps; every iteration satisfies the generalized M-step inequality
    /// `ΔQ̂ ≥ KL_joint` (gap ≥ −1e-8·KL).
    #[test]
    fn planner_with_the_dial_schedule() {
        let proposal = ProposalConfig {
            std_min: Some(1e-9),
            std_max: Some(1e9),
            prior_weight: Some(0.0),
            components: Some(2),
            ..ProposalConfig::gaussian(&[0.5]).into_kind(crate::ProposalKind::Mixture)
        };
        let (_, min_gap, iterations) =
            super::super::gaussian_diag::tests::dial_planner_gap(proposal);
        println!(
            "dial mixture: {iterations} iterations, min (ΔQ̂ − KL_joint)/KL {min_gap:.2e} (≥ −1e-8)"
        );
        assert!(iterations >= 6 && min_gap >= -1e-8);
    }
}
