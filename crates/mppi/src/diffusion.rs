//! Diffusion as annealed EM-MPPI (docs/theory.md §F): variance-exploding (VE) and
//! variance-preserving (VP) noise schedules, and their reverse samplers written as MPPI steps.
//!
//! **The identity.** For a target `p*(u) ∝ exp(−J(u)/λ)` smoothed by Gaussian noise of scale
//! `σ`, Tweedie's formula gives the score from the posterior mean,
//! `∇ log p_σ(x) = (E[u | x] − x)/σ²`, and the posterior mean is exactly what one MPPI
//! iteration estimates: sample `u_j ~ N(x, σ²)`, weight by `exp(−J(u_j)/λ)`, average. So a
//! reverse-diffusion step is an MPPI step with a step size below one and injected noise:
//!
//! ```text
//! VE, level σ_i → σ_{i−1}:   x ← x + (1 − σ²_{i−1}/σ²_i) (x̄_w − x) + ν_i z
//! ancestral:       ν_i² = σ²_{i−1} (σ²_i − σ²_{i−1}) / σ²_i
//! Euler–Maruyama:  ν_i² = σ²_i − σ²_{i−1}
//! ```
//!
//! For VP (`ᾱ_i = Π_{j≤i}(1 − β_j)`) the loop's plan is the clean-signal coordinate
//! `ȳ = x/√ᾱ_i`, the posterior of `u` given `x` is sampled around `ȳ` with spread
//! `√((1−ᾱ_i)/ᾱ_i)`, and the DDPM steps become, with `r = √(1−β_i)`,
//!
//! ```text
//! ancestral:       ȳ ← ȳ + β_i/(1−ᾱ_i) (x̄_w − ȳ) + √(β_i r²/ᾱ_i) z
//! Euler–Maruyama:  ȳ ← (2−r) r ȳ + β_i r/(1−ᾱ_i) (x̄_w − ȳ) + √(β_i r²/ᾱ_i) z
//! ```
//!
//! Every step is a [`DiffusionStep`]: the spread to sample with and a [`ReverseStep`]
//! (`x ← c (x + α (x̄_w − x)) + ν z`). [`Ve`] and [`Vp`] are [`Schedule`]s, so a reverse
//! diffusion run is the planner's one loop with that schedule; with
//! `sampler = "annealed"` (`α = 1`, `c = 1`, `ν = 0`) it is annealed MPPI, and `Vp` with its
//! defaults is model-based diffusion (MBD): spread `√(1−ᾱ_i)`, `β` linear from `1e-4` to
//! `1e-2`, whose score-form update equals the weighted mean (theory §F.2, tested). The last
//! reverse step (`i = 1`) injects no noise (it returns the denoised mean).
//!
//! [`reverse_sample`] runs the same steps outside the planner with any denoiser, e.g. the
//! exact posterior mean of a Gaussian target ([`GaussianPosteriorMean`]) for tests.
//!
//! ```
//! use mppi::diffusion::{reverse_sample, steps, GaussianPosteriorMean, Sampler, Ve};
//! use mppi::rng::sample_rng;
//! // draw from N(2, 0.25) with the exact posterior mean
//! let ve = Ve { sigma_max: 10.0, sigma_min: 0.01, sampler: Sampler::Ancestral };
//! let levels = steps(&ve, 200);
//! let target = GaussianPosteriorMean::new(vec![2.0], vec![0.25]).unwrap();
//! let mut rng = sample_rng(1, 0, 0, 0);
//! let (mut sum, n) = (0.0, 400);
//! for _ in 0..n {
//!     let mut x = [10.0 * rng.normal()];
//!     reverse_sample(&levels, &mut x, |s, x, out| target.denoise(s, x, out), &mut rng);
//!     sum += x[0];
//! }
//! assert!((sum / n as f64 - 2.0).abs() < 0.1);
//! ```

use serde::{Deserialize, Serialize};

use crate::error::MppiError;
use crate::rng::SampleRng;
use crate::schedule::{Annealing, ReverseStep, Schedule};

/// How a diffusion schedule moves the plan after the M-step (`[schedule] sampler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Sampler {
    /// Annealed MPPI: the full EM step at every level, no injected noise (DIAL-MPC, MBD).
    #[default]
    Annealed,
    /// The ancestral (posterior) reverse step.
    Ancestral,
    /// The reverse-diffusion (Euler–Maruyama) discretization of the reverse SDE.
    EulerMaruyama,
}

impl Sampler {
    /// The sampler's name in the config.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Sampler::Annealed => "annealed",
            Sampler::Ancestral => "ancestral",
            Sampler::EulerMaruyama => "euler_maruyama",
        }
    }
}

/// One reverse step: sample with `spread` (a multiplier of the proposal's own spread), then
/// move the plan by `reverse` (`None`: the plain EM step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiffusionStep {
    /// Spread multiplier of the samples at this level.
    pub spread: f64,
    /// Step size, plan scale and injected noise; `None` for annealed MPPI.
    pub reverse: Option<ReverseStep>,
}

/// A noise schedule seen as a sequence of reverse steps.
pub trait NoiseSchedule {
    /// Reverse step `k` of `n` (`k = 0` is the noisiest level `i = n`, `k = n − 1` the last,
    /// `i = 1`).
    fn step_at(&self, k: usize, n: usize) -> DiffusionStep;
}

/// Variance-exploding schedule (`[schedule] kind = "ve"`): geometric noise levels
/// `σ_i = σ_min (σ_max/σ_min)^{(i−1)/(n−1)}`, `i = 1..n` (`σ_1 = σ_min`; with `n = 1` the
/// single level is `σ_max`), and `σ_0 = 0`. Levels multiply the proposal's own spread.
///
/// ```
/// use mppi::diffusion::{NoiseSchedule, Sampler, Ve};
/// let ve = Ve { sigma_max: 2.0, sigma_min: 0.05, sampler: Sampler::Annealed };
/// assert!((ve.sigma(3, 3) - 2.0).abs() < 1e-15 && (ve.sigma(1, 3) - 0.05).abs() < 1e-15);
/// assert_eq!(ve.step_at(0, 3).spread, ve.sigma(3, 3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ve {
    /// Largest level (first iteration), `> 0`.
    pub sigma_max: f64,
    /// Smallest level (last iteration), in `(0, sigma_max]`.
    pub sigma_min: f64,
    /// Annealed MPPI or a reverse sampler.
    pub sampler: Sampler,
}

impl Default for Ve {
    fn default() -> Self {
        Ve {
            sigma_max: 1.0,
            sigma_min: 0.05,
            sampler: Sampler::Annealed,
        }
    }
}

impl Ve {
    /// Check the levels, naming the key of the `[schedule]` section in the error.
    pub fn validate(&self) -> Result<(), MppiError> {
        if !(self.sigma_max.is_finite() && self.sigma_max > 0.0) {
            return Err(MppiError::config(
                "schedule.sigma_max",
                format!("must be a finite number > 0, got {}", self.sigma_max),
            ));
        }
        if !(self.sigma_min > 0.0 && self.sigma_min <= self.sigma_max) {
            return Err(MppiError::config(
                "schedule.sigma_min",
                format!(
                    "must be in (0, sigma_max = {}], got {}",
                    self.sigma_max, self.sigma_min
                ),
            ));
        }
        Ok(())
    }

    /// Level `σ_i` of `n` (`σ_0 = 0`).
    #[must_use]
    pub fn sigma(&self, i: usize, n: usize) -> f64 {
        match (i, n) {
            (0, _) => 0.0,
            (_, 0 | 1) => self.sigma_max,
            _ => {
                let frac = (i - 1) as f64 / (n - 1) as f64;
                self.sigma_min * (self.sigma_max / self.sigma_min).powf(frac)
            }
        }
    }
}

impl NoiseSchedule for Ve {
    fn step_at(&self, k: usize, n: usize) -> DiffusionStep {
        let i = n.saturating_sub(k).max(1);
        let (s, s_prev) = (self.sigma(i, n), self.sigma(i - 1, n));
        let (v, v_prev) = (s * s, s_prev * s_prev);
        let noise = match (self.sampler, i) {
            (_, 1) | (Sampler::Annealed, _) => 0.0,
            (Sampler::Ancestral, _) => (v_prev * (v - v_prev) / v).max(0.0).sqrt(),
            (Sampler::EulerMaruyama, _) => (v - v_prev).max(0.0).sqrt(),
        };
        DiffusionStep {
            spread: s,
            reverse: (self.sampler != Sampler::Annealed).then_some(ReverseStep {
                step_size: 1.0 - v_prev / v,
                plan_scale: 1.0,
                noise,
            }),
        }
    }
}

/// The `β` sequence of a VP schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// `β_i` linear from `beta_min` (`i = 1`) to `beta_max` (`i = n`) (DDPM, MBD).
    #[default]
    Linear,
    /// `ᾱ_i = f(i)/f(0)`, `f(t) = cos²(π/2 · (t/n + s)/(1 + s))`, `s = cosine_offset`,
    /// `β_i ≤ 0.999` (improved DDPM).
    Cosine,
}

/// The spread a VP schedule samples with around the plan `ȳ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VpSpread {
    /// `√(1 − ᾱ_i)`, as model-based diffusion's code does.
    #[default]
    Mbd,
    /// `√((1 − ᾱ_i)/ᾱ_i)`: the exact posterior of the clean signal, which makes the weighted
    /// mean a Monte-Carlo Tweedie estimate (what the reverse samplers need).
    Posterior,
}

/// Variance-preserving schedule (`[schedule] kind = "vp"`): with its defaults, model-based
/// diffusion (MBD) as annealed MPPI. Spreads multiply the proposal's own spread.
///
/// ```
/// use mppi::diffusion::{NoiseSchedule, Vp};
/// let vp = Vp::default();
/// // MBD: the noisiest level samples with √(1 − ᾱ_n); annealed: no reverse step
/// let (a, _) = vp.alpha_bar(100, 100);
/// let first = vp.step_at(0, 100);
/// assert!((first.spread - (1.0 - a).sqrt()).abs() < 1e-15 && first.reverse.is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Vp {
    /// Linear or cosine `β`.
    pub beta: BetaSchedule,
    /// Linear: `β_1`, in `(0, beta_max]`.
    pub beta_min: f64,
    /// Linear: `β_n`, below 1.
    pub beta_max: f64,
    /// Cosine: the offset `s ≥ 0` (0.008 in improved DDPM).
    pub cosine_offset: f64,
    /// The spread to sample with.
    pub spread: VpSpread,
    /// Annealed MPPI or a reverse sampler.
    pub sampler: Sampler,
}

impl Default for Vp {
    fn default() -> Self {
        Vp {
            beta: BetaSchedule::Linear,
            beta_min: 1e-4,
            beta_max: 1e-2,
            cosine_offset: 0.008,
            spread: VpSpread::Mbd,
            sampler: Sampler::Annealed,
        }
    }
}

/// Improved DDPM's cap on `β_i` (keeps `ᾱ` away from 0 at the last level).
const COSINE_BETA_MAX: f64 = 0.999;

impl Vp {
    /// Check the values, naming the key of the `[schedule]` section in the error.
    pub fn validate(&self) -> Result<(), MppiError> {
        if !(self.beta_max > 0.0 && self.beta_max < 1.0) {
            return Err(MppiError::config(
                "schedule.beta_max",
                format!("must be in (0, 1), got {}", self.beta_max),
            ));
        }
        if !(self.beta_min > 0.0 && self.beta_min <= self.beta_max) {
            return Err(MppiError::config(
                "schedule.beta_min",
                format!(
                    "must be in (0, beta_max = {}], got {}",
                    self.beta_max, self.beta_min
                ),
            ));
        }
        if !(self.cosine_offset.is_finite() && self.cosine_offset >= 0.0) {
            return Err(MppiError::config(
                "schedule.cosine_offset",
                format!("must be a finite number >= 0, got {}", self.cosine_offset),
            ));
        }
        Ok(())
    }

    /// `β_i` of `n` levels (`i ≥ 1`).
    #[must_use]
    pub fn beta_at(&self, i: usize, n: usize) -> f64 {
        match self.beta {
            BetaSchedule::Linear if n <= 1 => self.beta_min,
            BetaSchedule::Linear => {
                let frac = (i - 1) as f64 / (n - 1) as f64;
                self.beta_min + (self.beta_max - self.beta_min) * frac
            }
            BetaSchedule::Cosine => {
                (1.0 - self.cosine_f(i, n) / self.cosine_f(i - 1, n)).clamp(0.0, COSINE_BETA_MAX)
            }
        }
    }

    fn cosine_f(&self, i: usize, n: usize) -> f64 {
        let s = self.cosine_offset;
        let t = i as f64 / n.max(1) as f64;
        ((t + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2)
            .cos()
            .powi(2)
    }

    /// `(ᾱ_i, β_i)` of `n` levels, `ᾱ_i = Π_{j≤i} (1 − β_j)` (`ᾱ_0 = 1`). `O(i)`: computed
    /// when asked, so the schedule holds no table and allocates nothing.
    #[must_use]
    pub fn alpha_bar(&self, i: usize, n: usize) -> (f64, f64) {
        if i == 0 {
            return (1.0, 0.0);
        }
        let mut log_ab = 0.0;
        for j in 1..=i {
            log_ab += (-self.beta_at(j, n)).ln_1p();
        }
        (log_ab.exp(), self.beta_at(i, n))
    }
}

impl NoiseSchedule for Vp {
    fn step_at(&self, k: usize, n: usize) -> DiffusionStep {
        let i = n.saturating_sub(k).max(1);
        let (ab, beta) = self.alpha_bar(i, n);
        let spread = match self.spread {
            VpSpread::Mbd => (1.0 - ab).sqrt(),
            VpSpread::Posterior => ((1.0 - ab) / ab).sqrt(),
        };
        let r2 = 1.0 - beta;
        let r = r2.sqrt();
        let noise = if i == 1 { 0.0 } else { (beta * r2 / ab).sqrt() };
        let reverse = match self.sampler {
            Sampler::Annealed => None,
            Sampler::Ancestral => Some(ReverseStep {
                step_size: beta / (1.0 - ab),
                plan_scale: 1.0,
                noise,
            }),
            Sampler::EulerMaruyama => {
                // ȳ ← c ȳ + a (x̄ − ȳ) = c (ȳ + (a/c)(x̄ − ȳ))
                let c = (2.0 - r) * r;
                Some(ReverseStep {
                    step_size: beta * r / (1.0 - ab) / c,
                    plan_scale: c,
                    noise,
                })
            }
        };
        DiffusionStep { spread, reverse }
    }
}

/// Fill every time step with the step's spread and hand its reverse step to the loop.
fn annealing_of(step: DiffusionStep, spread: &mut [f64]) -> Annealing {
    spread.fill(step.spread.max(f64::MIN_POSITIVE));
    Annealing {
        scaled: true,
        temperature_scale: 1.0,
        reverse: step.reverse,
    }
}

impl Schedule for Ve {
    fn before_iteration(&mut self, _: u64, k: u64, n: u64, spread: &mut [f64]) -> Annealing {
        annealing_of(self.step_at(k as usize, n as usize), spread)
    }
}

impl Schedule for Vp {
    fn before_iteration(&mut self, _: u64, k: u64, n: u64, spread: &mut [f64]) -> Annealing {
        annealing_of(self.step_at(k as usize, n as usize), spread)
    }
}

/// The `n` reverse steps of `schedule`, noisiest first (for [`reverse_sample`], which runs
/// many chains over the same steps).
#[must_use]
pub fn steps<S: NoiseSchedule + ?Sized>(schedule: &S, n: usize) -> Vec<DiffusionStep> {
    (0..n).map(|k| schedule.step_at(k, n)).collect()
}

/// Run the reverse `steps` (see [`steps`]) from `x`, in place: at every level
/// `denoise(spread, x, out)` writes the posterior mean `E[u | x]` under noise of that spread,
/// then `x ← c (x + α (out − x)) + ν z`, `z` standard normal from `rng`. With the MPPI weighted
/// mean as the denoiser this is exactly what the planner does with the schedule; with an exact
/// posterior mean ([`GaussianPosteriorMean`]) it is the exact-score sampler. Allocates one
/// vector of `x.len()` per call.
pub fn reverse_sample<D>(
    steps: &[DiffusionStep],
    x: &mut [f64],
    mut denoise: D,
    rng: &mut SampleRng,
) where
    D: FnMut(f64, &[f64], &mut [f64]),
{
    let mut mean = vec![0.0; x.len()];
    for step in steps {
        denoise(step.spread, x, &mut mean);
        let r = step.reverse.unwrap_or(ReverseStep::EM);
        for (xi, mi) in x.iter_mut().zip(&mean) {
            *xi = r.plan_scale * (*xi + r.step_size * (mi - *xi));
        }
        if r.noise > 0.0 {
            x.iter_mut().for_each(|xi| *xi += r.noise * rng.normal());
        }
    }
}

/// The exact posterior mean of a Gaussian target `N(m, S)` observed with isotropic noise:
/// `E[u | x] = m + S (S + σ² I)⁻¹ (x − m)`, so the exact score of `p_σ` is
/// `(E[u | x] − x)/σ² = −(S + σ² I)⁻¹ (x − m)` (Tweedie). For tests of the samplers.
///
/// `S = Q diag(λ) Qᵀ` is factored once, so a call is `O(d²)` and allocates nothing.
///
/// ```
/// use mppi::diffusion::GaussianPosteriorMean;
/// let t = GaussianPosteriorMean::new(vec![1.0], vec![3.0]).unwrap();
/// let mut out = [0.0];
/// t.denoise(1.0, &[5.0], &mut out); // 1 + 3/4 · 4
/// assert!((out[0] - 4.0).abs() < 1e-12);
/// ```
#[derive(Debug, Clone)]
pub struct GaussianPosteriorMean {
    mean: Vec<f64>,
    /// Eigenvectors of `S`, column `j` at `q[i * d + j]`.
    q: Vec<f64>,
    eigenvalues: Vec<f64>,
}

impl GaussianPosteriorMean {
    /// Target mean `m` (`d`) and covariance `S` (row-major `d × d`, symmetric positive
    /// definite).
    pub fn new(mean: Vec<f64>, cov: Vec<f64>) -> Result<Self, MppiError> {
        let d = mean.len();
        crate::error::check_len("target covariance", d * d, cov.len())?;
        crate::gaussian::GaussianNoise::new(d, &cov)?;
        let eig = nalgebra::DMatrix::from_row_slice(d, d, &cov).symmetric_eigen();
        let mut q = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                q[i * d + j] = eig.eigenvectors[(i, j)];
            }
        }
        Ok(GaussianPosteriorMean {
            mean,
            q,
            eigenvalues: eig.eigenvalues.iter().copied().collect(),
        })
    }

    /// The dimension `d`.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Write `E[u | x]` under noise `σ = sigma` into `out` (`d` entries each).
    pub fn denoise(&self, sigma: f64, x: &[f64], out: &mut [f64]) {
        let d = self.dim();
        let v = sigma * sigma;
        out[..d].copy_from_slice(&self.mean);
        for (j, lam) in self.eigenvalues.iter().enumerate() {
            // coordinate j of Qᵀ(x − m), shrunk by λ_j / (λ_j + σ²)
            let mut y = 0.0;
            for i in 0..d {
                y += self.q[i * d + j] * (x[i] - self.mean[i]);
            }
            y *= lam / (lam + v);
            for i in 0..d {
                out[i] += self.q[i * d + j] * y;
            }
        }
    }

    /// The exact score `∇ log p_σ(x) = −(S + σ² I)⁻¹ (x − m)`.
    pub fn score(&self, sigma: f64, x: &[f64], out: &mut [f64]) {
        self.denoise(sigma, x, out);
        for (o, xi) in out.iter_mut().zip(x) {
            *o = (*o - xi) / (sigma * sigma);
        }
    }
}
