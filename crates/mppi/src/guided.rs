//! Guided diffusion planning (docs/theory.md §F.3; Li & Chen's Algorithm 1, Diffuser): a
//! trained denoiser over trajectory windows as a [`Proposal`], so planning with it is the
//! planner's one loop.
//!
//! A window is `H` rows of `(state, control)`, normalized per column ([`WindowSpec`]). At
//! every control step the loop runs `N` iterations, one per noise level `i = N..1`. Before
//! iteration `k` (level `i = N − k`) the proposal
//!
//! 1. forms the noisy window `τ_i`: pure noise at the first level; afterwards the previous
//!    level's mean with the loop's result in the control columns, plus `η √β̃_{i+1} z`;
//! 2. inpaints the current state into the first row (the condition);
//! 3. asks the [`Denoiser`] for `ε̂(τ_i, i)` and forms the DDPM posterior mean
//!    `μ = (τ_i − β_i/√(1−ᾱ_i) ε̂)/√(1−β_i)`;
//! 4. adds gradient guidance `μ ← μ + α β̃_i ∇E(μ)` when a [`WindowEnergy`] is given
//!    (`E = −cost`, on the un-normalized window);
//! 5. samples the controls around `μ` with spread `s · √β_i` (per column, un-normalized).
//!
//! The loop then weights the samples by the real cost of their rollouts and refits the mean:
//! the weighted mean `μ + Σ_j w_j ε_j` is the gradient-free (MPPI) guidance of §F.3. With
//! `s = 0` (one sample) only the denoiser and the gradient act: Algorithm 1 as written. The
//! controller executes the first control of the level-1 mean.
//!
//! [`GaussianDataDenoiser`] is the exact denoiser of Gaussian data (for tests and examples);
//! a trained network implements [`Denoiser`] in `mppi-learn`.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use crate::config::ShiftFill;
use crate::diffusion::{GaussianPosteriorMean, Vp};
use crate::error::{MppiError, check_len};
use crate::proposal::{Context, Proposal, shift_rows, weighted_sum};
use crate::rng::{SampleRng, sample_rng};

/// The layout and normalization of a trajectory window: `horizon` rows of `state_dim` states
/// then `control_dim` controls; column `j` is normalized as `(x − offset_j)/scale_j`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WindowSpec {
    /// Rows `H`.
    pub horizon: usize,
    /// States per row `n`.
    pub state_dim: usize,
    /// Controls per row `m`.
    pub control_dim: usize,
    /// Per-column offset (`n + m` entries).
    pub offset: Vec<f64>,
    /// Per-column scale, `> 0` (`n + m` entries).
    pub scale: Vec<f64>,
    /// Angle columns: wrapped into `[−π, π]` when a state is inpainted (and, in a dataset, the
    /// first row of a window; later rows follow it continuously).
    #[serde(default)]
    pub wrap: Vec<usize>,
}

impl WindowSpec {
    /// Columns per row, `n + m`.
    #[must_use]
    pub fn width(&self) -> usize {
        self.state_dim + self.control_dim
    }
    /// Entries of a window, `H · (n + m)`.
    #[must_use]
    pub fn len(&self) -> usize {
        self.horizon * self.width()
    }
    /// Whether the window is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Check the sizes and scales.
    pub fn validate(&self) -> Result<(), MppiError> {
        check_len("window offset", self.width(), self.offset.len())?;
        check_len("window scale", self.width(), self.scale.len())?;
        if self.horizon == 0 || self.control_dim == 0 {
            return Err(MppiError::config(
                "window",
                "a window needs at least one row and one control",
            ));
        }
        if let Some(j) = self.wrap.iter().find(|j| **j >= self.state_dim) {
            return Err(MppiError::config(
                "window.wrap",
                format!(
                    "column {j} is not a state column (state_dim {})",
                    self.state_dim
                ),
            ));
        }
        if let Some(j) = self.scale.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(MppiError::config(
                "window.scale",
                format!(
                    "column {j} must have a finite scale > 0, got {}",
                    self.scale[j]
                ),
            ));
        }
        Ok(())
    }
}

/// A noise-prediction model `ε̂(x, i)` over normalized windows, trained with the VP schedule
/// it reports.
pub trait Denoiser: Send + Sync + Debug {
    /// The window it was trained on.
    fn window(&self) -> &WindowSpec;
    /// The noise schedule (its `β` sequence) and the number of levels `N`.
    fn schedule(&self) -> (Vp, usize);
    /// Write `ε̂(x, level)` for one normalized window `x` (`level` in `1..=N`).
    fn predict_noise(&self, x: &[f64], level: usize, out: &mut [f64]);
}

/// A differentiable energy of a window (`E = −cost`): guidance climbs it.
pub trait WindowEnergy: Send + Sync + Debug {
    /// Write `∇E` at the un-normalized window `x` into `grad`.
    fn gradient(&self, x: &[f64], grad: &mut [f64]);
}

/// Settings of [`DenoiserProposal`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GuidanceSettings {
    /// Gradient guidance scale `α ≥ 0` (needs a [`WindowEnergy`]).
    pub gradient_scale: f64,
    /// Spread `s ≥ 0` of the samples around the denoised mean, in units of `√β_i` (0: no
    /// gradient-free guidance; use one sample).
    pub sample_spread: f64,
    /// Noise `η ∈ [0, 1]` injected between levels, in units of `√β̃` (1: DDPM, 0:
    /// deterministic).
    pub noise: f64,
    /// Seed of the level-transition noise.
    pub seed: u64,
}

impl Default for GuidanceSettings {
    fn default() -> Self {
        GuidanceSettings {
            gradient_scale: 0.0,
            sample_spread: 1.0,
            noise: 1.0,
            seed: 0,
        }
    }
}

/// The denoising state of one level, shared by the clones of a proposal: the planner keeps
/// three instances (`θ_k`, `θ_EM`, a candidate) and prepares all three each iteration; the
/// first one denoises, the others copy its result.
#[derive(Debug, Default)]
struct Level {
    /// `(step, iteration, state)` of the level computed last.
    key: Option<(u64, u64, Vec<f64>)>,
    /// The normalized window (`τ_i`, then its denoised, guided mean).
    window: Vec<f64>,
    eps: Vec<f64>,
    grad: Vec<f64>,
    raw: Vec<f64>,
}

/// The denoiser as the loop's proposal (see the module docs). Clones share the denoising state
/// of the current level (what the planner's instances need); build one proposal per planner.
#[derive(Debug, Clone)]
pub struct DenoiserProposal {
    denoiser: Arc<dyn Denoiser>,
    energy: Option<Arc<dyn WindowEnergy>>,
    settings: GuidanceSettings,
    spec: WindowSpec,
    levels: usize,
    beta: Vec<f64>,
    alpha_bar: Vec<f64>,
    level: Arc<Mutex<Level>>,
    /// The plan: un-normalized controls, `H · m`.
    mean: Vec<f64>,
    /// What the samples are drawn around, and their standard deviations.
    sample_mean: Vec<f64>,
    sample_std: Vec<f64>,
    u_min: Vec<f64>,
    u_max: Vec<f64>,
}

impl DenoiserProposal {
    /// The proposal of `denoiser`, with optional gradient guidance by `energy`, controls
    /// clamped into `[u_min, u_max]`.
    pub fn new(
        denoiser: Arc<dyn Denoiser>,
        energy: Option<Arc<dyn WindowEnergy>>,
        settings: GuidanceSettings,
        u_min: &[f64],
        u_max: &[f64],
    ) -> Result<Self, MppiError> {
        let spec = denoiser.window().clone();
        spec.validate()?;
        let m = spec.control_dim;
        check_len("u_min", m, u_min.len())?;
        check_len("u_max", m, u_max.len())?;
        let (vp, levels) = denoiser.schedule();
        vp.validate()?;
        if levels == 0 {
            return Err(MppiError::config(
                "guidance",
                "the denoiser has no noise levels",
            ));
        }
        for (key, v, hi) in [
            (
                "guidance.gradient_scale",
                settings.gradient_scale,
                f64::INFINITY,
            ),
            (
                "guidance.sample_spread",
                settings.sample_spread,
                f64::INFINITY,
            ),
            ("guidance.noise", settings.noise, 1.0),
        ] {
            if !(v.is_finite() && (0.0..=hi).contains(&v)) {
                return Err(MppiError::config(
                    key,
                    format!("must be in [0, {hi}], got {v}"),
                ));
            }
        }
        if settings.gradient_scale > 0.0 && energy.is_none() {
            return Err(MppiError::config(
                "guidance.gradient_scale",
                "gradient guidance needs a differentiable energy (set it to 0 for MPPI guidance only)",
            ));
        }
        let mut beta = vec![0.0; levels + 1];
        let mut alpha_bar = vec![1.0; levels + 1];
        for i in 1..=levels {
            beta[i] = vp.beta_at(i, levels);
            alpha_bar[i] = alpha_bar[i - 1] * (1.0 - beta[i]);
        }
        let len = spec.len();
        let d = spec.horizon * m;
        let mut p = DenoiserProposal {
            denoiser,
            energy,
            settings,
            levels,
            beta,
            alpha_bar,
            level: Arc::new(Mutex::new(Level {
                key: None,
                window: vec![0.0; len],
                eps: vec![0.0; len],
                grad: vec![0.0; len],
                raw: vec![0.0; len],
            })),
            mean: vec![0.0; d],
            sample_mean: vec![0.0; d],
            sample_std: vec![0.0; d],
            u_min: u_min.to_vec(),
            u_max: u_max.to_vec(),
            spec,
        };
        p.reset();
        Ok(p)
    }

    /// Noise levels `N` (the planner's `iterations` must equal it).
    #[must_use]
    pub fn levels(&self) -> usize {
        self.levels
    }

    /// The current normalized window (after `prepare`: the denoised, guided mean of the level).
    #[must_use]
    pub fn window(&self) -> Vec<f64> {
        self.lock().window.clone()
    }

    /// The current window un-normalized, with the loop's controls (the plan) in the control
    /// columns: after an iteration, the guided window of that level.
    #[must_use]
    pub fn raw_window(&self) -> Vec<f64> {
        let (n, m, w) = (
            self.spec.state_dim,
            self.spec.control_dim,
            self.spec.width(),
        );
        let mut x = self.window();
        for (j, v) in x.iter_mut().enumerate() {
            *v = *v * self.spec.scale[j % w] + self.spec.offset[j % w];
        }
        for (t, row) in x.chunks_exact_mut(w).enumerate() {
            row[n..].copy_from_slice(&self.mean[t * m..(t + 1) * m]);
        }
        x
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Level> {
        // a panic while denoising leaves no invariant to protect: take the data as it is
        self.level
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `β̃_i = β_i (1 − ᾱ_{i−1})/(1 − ᾱ_i)`, the DDPM posterior variance.
    fn posterior_var(&self, i: usize) -> f64 {
        self.beta[i] * (1.0 - self.alpha_bar[i - 1]) / (1.0 - self.alpha_bar[i])
    }

    fn noise_stream(&self, ctx: &Context<'_>) -> SampleRng {
        sample_rng(self.settings.seed, ctx.step, ctx.iteration, u64::MAX - 1)
    }

    fn inpaint(spec: &WindowSpec, window: &mut [f64], state: Option<&[f64]>) {
        if let Some(s) = state {
            for (j, v) in s.iter().enumerate().take(spec.state_dim) {
                let v = if spec.wrap.contains(&j) {
                    crate::fastmath::wrap_angle(*v)
                } else {
                    *v
                };
                window[j] = (v - spec.offset[j]) / spec.scale[j];
            }
        }
    }
}

impl Proposal for DenoiserProposal {
    fn name(&self) -> &'static str {
        "denoiser"
    }
    fn dim(&self) -> usize {
        self.mean.len()
    }
    fn control_dim(&self) -> usize {
        self.spec.control_dim
    }
    fn params(&self) -> &[f64] {
        &self.mean
    }
    fn set_params(&mut self, theta: &[f64]) -> Result<(), MppiError> {
        check_len("denoiser parameters", self.mean.len(), theta.len())?;
        crate::error::check_finite("denoiser parameters", theta)?;
        self.mean.copy_from_slice(theta);
        Ok(())
    }
    fn reset(&mut self) {
        self.mean.fill(0.0);
        self.lock().key = None;
    }
    fn shift(&mut self, fill: ShiftFill) {
        let m = self.spec.control_dim;
        let zero = vec![0.0; m];
        shift_rows(&mut self.mean, m, fill, &zero);
    }
    fn plan(&self, out: &mut [f64]) {
        out.copy_from_slice(&self.mean);
    }
    fn set_plan(&mut self, plan: &[f64]) -> Result<(), MppiError> {
        self.set_params(plan)
    }
    /// Denoise one level (see the module docs). Errors if the loop's iteration count is not
    /// the denoiser's number of levels, or if a schedule asks for a spread.
    fn prepare(&mut self, ctx: &Context<'_>) -> Result<(), MppiError> {
        if ctx.spread.is_some_and(|s| s.iter().any(|v| *v != 1.0)) {
            return Err(MppiError::config(
                "schedule",
                "the denoiser proposal sets its own noise levels; use `[schedule] kind = \"constant\"`",
            ));
        }
        if ctx.iterations as usize != self.levels {
            return Err(MppiError::config(
                "iterations",
                format!(
                    "must equal the denoiser's noise levels ({}), got {}",
                    self.levels, ctx.iterations
                ),
            ));
        }
        let (n, m, w) = (
            self.spec.state_dim,
            self.spec.control_dim,
            self.spec.width(),
        );
        let k = ctx.iteration as usize;
        let i = self.levels - k.min(self.levels - 1);
        let shared = Arc::clone(&self.level);
        let mut guard = shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let level = &mut *guard;
        let same = level.key.as_ref().is_some_and(|(st, it, x)| {
            *st == ctx.step && *it == ctx.iteration && ctx.state.unwrap_or(&[]) == x.as_slice()
        });
        if !same {
            let mut rng = self.noise_stream(ctx);
            let window = &mut level.window;
            if k == 0 {
                // τ_N ~ N(0, I): a fresh plan from noise at every control step
                window.iter_mut().for_each(|v| *v = rng.normal());
            } else {
                // the loop's (guided) controls, then the transition noise η √β̃_{i+1} z
                for (t, row) in window.chunks_exact_mut(w).enumerate() {
                    for j in 0..m {
                        row[n + j] = (self.mean[t * m + j] - self.spec.offset[n + j])
                            / self.spec.scale[n + j];
                    }
                }
                let sd = self.settings.noise * self.posterior_var(i + 1).sqrt();
                if sd > 0.0 {
                    window.iter_mut().for_each(|v| *v += sd * rng.normal());
                }
            }
            Self::inpaint(&self.spec, window, ctx.state);
            self.denoiser.predict_noise(window, i, &mut level.eps);
            let (b, ab) = (self.beta[i], self.alpha_bar[i]);
            let c = b / (1.0 - ab).sqrt();
            let r = (1.0 - b).sqrt();
            for (x, e) in window.iter_mut().zip(&level.eps) {
                *x = (*x - c * e) / r;
            }
            if let (Some(energy), true) = (&self.energy, self.settings.gradient_scale > 0.0) {
                for (j, (raw, x)) in level.raw.iter_mut().zip(window.iter()).enumerate() {
                    *raw = x * self.spec.scale[j % w] + self.spec.offset[j % w];
                }
                energy.gradient(&level.raw, &mut level.grad);
                // μ + α Σ_i ∇_x E, Σ_i = β̃_i I in normalized coordinates: ∇_x = scale · ∇_raw
                let step = self.settings.gradient_scale * self.posterior_var(i);
                for (j, (x, g)) in window.iter_mut().zip(&level.grad).enumerate() {
                    *x += step * self.spec.scale[j % w] * g;
                }
            }
            Self::inpaint(&self.spec, window, ctx.state);
            let key = level.key.get_or_insert_with(|| (0, 0, Vec::new()));
            key.0 = ctx.step;
            key.1 = ctx.iteration;
            key.2.clear();
            key.2.extend_from_slice(ctx.state.unwrap_or(&[]));
        }
        let spread = self.settings.sample_spread * self.beta[i].sqrt();
        for (t, row) in level.window.chunks_exact(w).enumerate() {
            for j in 0..m {
                let (o, s) = (self.spec.offset[n + j], self.spec.scale[n + j]);
                self.sample_mean[t * m + j] =
                    (row[n + j] * s + o).clamp(self.u_min[j], self.u_max[j]);
                self.sample_std[t * m + j] = spread * s;
            }
        }
        Ok(())
    }
    fn sample(&self, rng: &mut SampleRng, u: &mut [f64]) {
        let m = self.spec.control_dim;
        for (j, ((u, mu), sd)) in u
            .iter_mut()
            .zip(&self.sample_mean)
            .zip(&self.sample_std)
            .enumerate()
        {
            let z = rng.normal();
            *u = (mu + sd * z).clamp(self.u_min[j % m], self.u_max[j % m]);
        }
    }
    fn fit(&mut self, samples: &[f64], weights: &[f64], out: &mut [f64]) {
        weighted_sum(samples, weights, &mut out[..self.mean.len()]);
    }
    fn clone_box(&self) -> Box<dyn Proposal> {
        Box::new(self.clone())
    }
}

/// The exact denoiser of Gaussian windows `x_0 ~ N(m, S)` (normalized coordinates):
/// `ε̂(x, i) = (x − √ᾱ_i E[x_0 | x])/√(1 − ᾱ_i)` with Tweedie's posterior mean. For tests and
/// examples; its score is `−(ᾱS + (1−ᾱ)I)⁻¹(x − √ᾱ m)` (§F.3).
#[derive(Debug, Clone)]
pub struct GaussianDataDenoiser {
    spec: WindowSpec,
    posterior: GaussianPosteriorMean,
    vp: Vp,
    levels: usize,
}

impl GaussianDataDenoiser {
    /// Windows of `spec` whose normalized entries are `N(mean, cov)`, under `levels` levels of
    /// `vp`.
    pub fn new(
        spec: WindowSpec,
        mean: Vec<f64>,
        cov: Vec<f64>,
        vp: Vp,
        levels: usize,
    ) -> Result<Self, MppiError> {
        spec.validate()?;
        check_len("data mean", spec.len(), mean.len())?;
        Ok(GaussianDataDenoiser {
            posterior: GaussianPosteriorMean::new(mean, cov)?,
            spec,
            vp,
            levels,
        })
    }
}

impl Denoiser for GaussianDataDenoiser {
    fn window(&self) -> &WindowSpec {
        &self.spec
    }
    fn schedule(&self) -> (Vp, usize) {
        (self.vp, self.levels)
    }
    fn predict_noise(&self, x: &[f64], level: usize, out: &mut [f64]) {
        let (ab, _) = self.vp.alpha_bar(level, self.levels);
        let sigma = ((1.0 - ab) / ab).sqrt();
        let scaled: Vec<f64> = x.iter().map(|v| v / ab.sqrt()).collect();
        self.posterior.denoise(sigma, &scaled, out);
        for (o, xi) in out.iter_mut().zip(x) {
            *o = (xi - ab.sqrt() * *o) / (1.0 - ab).sqrt();
        }
    }
}
