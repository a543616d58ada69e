//! The optimizer: one EM / MPPI loop, with every algorithm a setting of it.
//!
//! One iteration (theory-spec B.1):
//!
//! ```text
//! U_i = clamp(μ + ε_i),  ε_i ~ N(0, Σ) per step,  ε_i ← U_i − μ      (sample)
//! J_i = objective(U_i) + γ Σ_t μ_tᵀ Σ⁻¹ ε_{i,t}                       (batched rollouts)
//! w   = softmax(−J/λ)                                                 (E-step, crate::weights)
//! μ⁺  = Σ_i w_i U_i                                                   (M-step)
//! μ   ← (1 − α) μ + α μ⁺                                              (step size; α = 1 is MPPI)
//! ```
//!
//! The planner owns a workspace allocated once at construction (samples, perturbations, costs,
//! weights, rollout scratch), so [`Planner::iterate`] allocates nothing. Randomness is a pure
//! function of `(seed, step, iteration, sample)`, and every reduction runs in a fixed order, so
//! results are bit-identical for any number of threads.

use rayon::prelude::*;
use serde::Serialize;

use crate::config::{MppiConfig, ShiftFill, Validated};
use crate::error::{MppiError, check_finite, check_len};
use crate::gaussian::GaussianNoise;
use crate::objective::{BLOCK_LANES, Objective};
use crate::rng::sample_rng;
use crate::weights::{WeightStats, compute_weights};

/// One block's slices of (samples, perturbations, costs) and its rollout scratch.
type BlockParts<'a> = (
    ((&'a mut [f64], &'a mut [f64]), &'a mut [f64]),
    &'a mut [f64],
);

/// Diagnostics of one EM iteration.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct IterStats {
    /// Control step (call index of [`crate::Controller::act`], or as passed to the planner).
    pub step: u64,
    /// Iteration within the control step.
    pub iteration: u64,
    /// Temperature, `L̂`, ESS, cost statistics and non-finite count of the E-step.
    #[serde(flatten)]
    pub weights: WeightStats,
    /// True when no cost was finite and the plan was kept unchanged.
    pub kept_plan: bool,
    /// `‖μ_new − μ_old‖₂`, the size of the update.
    pub update_norm: f64,
}

/// Receives diagnostics as the loop runs. Every method has a no-op default.
pub trait Observer {
    /// Called after every EM iteration with its statistics and the updated planner.
    fn on_iteration(&mut self, _stats: &IterStats, _planner: &Planner) {}
}

/// The do-nothing observer.
impl Observer for () {}

/// The MPPI / EM optimizer with its workspace.
///
/// ```
/// use mppi::{FnObjective, MppiConfig, Planner};
/// // minimize ‖u − 1‖² over u ∈ R³ (a black-box objective: horizon 1, 3 controls)
/// let cfg = MppiConfig { samples: 500, horizon: 1, iterations: 30, lambda: 0.05,
///                        noise_sigma: vec![0.3], ..MppiConfig::default() };
/// let mut planner = Planner::new(&cfg, 3).unwrap();
/// let f = FnObjective::new(3, |u: &[f64]| u.iter().map(|v| (v - 1.0).powi(2)).sum());
/// planner.optimize(&f, 0, &mut ()).unwrap();
/// assert!(planner.mean().iter().all(|v| (v - 1.0).abs() < 0.05));
/// ```
pub struct Planner {
    cfg: Validated,
    dim: usize,
    noise: GaussianNoise,
    mean: Vec<f64>,
    samples: Vec<f64>,
    perturbations: Vec<f64>,
    costs: Vec<f64>,
    weights: Vec<f64>,
    update: Vec<f64>,
    scratch: Vec<f64>,
    scratch_per_block: usize,
    pool: Option<rayon::ThreadPool>,
    last: IterStats,
}

impl Planner {
    /// Build a planner for plans of `config.horizon` steps of `control_dim` controls.
    pub fn new(config: &MppiConfig, control_dim: usize) -> Result<Self, MppiError> {
        let cfg = config.validated(control_dim)?;
        let noise = GaussianNoise::new(control_dim, &cfg.covariance)?;
        let dim = cfg.horizon * control_dim;
        let k = cfg.samples;
        let pool = if cfg.threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(cfg.threads)
                    .build()
                    .map_err(|e| {
                        MppiError::config("threads", format!("could not start thread pool: {e}"))
                    })?,
            )
        } else {
            None
        };
        let mut planner = Planner {
            dim,
            noise,
            mean: vec![0.0; dim],
            samples: vec![0.0; k * dim],
            perturbations: vec![0.0; k * dim],
            costs: vec![0.0; k],
            weights: vec![0.0; k],
            update: vec![0.0; dim],
            scratch: Vec::new(),
            scratch_per_block: 0,
            pool,
            last: IterStats::default(),
            cfg,
        };
        planner.reset();
        Ok(planner)
    }

    /// Allocate the rollout scratch `objective` needs, so later iterations allocate nothing.
    /// Called automatically by [`Planner::iterate`] if needed.
    pub fn prepare<O: Objective + ?Sized>(&mut self, objective: &O) {
        // at least one entry per block, so the per-block zip below always has every block
        let per_block = objective.scratch_len(BLOCK_LANES).max(1);
        let blocks = self.cfg.samples.div_ceil(BLOCK_LANES);
        if per_block > self.scratch_per_block || self.scratch.len() < per_block * blocks {
            self.scratch_per_block = per_block;
            self.scratch = vec![0.0; per_block * blocks];
        }
    }

    /// Reset the plan to zeros (clamped into the control bounds).
    pub fn reset(&mut self) {
        let m = self.cfg.control_dim;
        for (i, v) in self.mean.iter_mut().enumerate() {
            *v = 0.0f64.clamp(self.cfg.u_min[i % m], self.cfg.u_max[i % m]);
        }
    }

    /// Replace the plan (`T·m` entries); values are clamped into the control bounds.
    pub fn set_mean(&mut self, mean: &[f64]) -> Result<(), MppiError> {
        check_len("plan", self.dim, mean.len())?;
        check_finite("plan", mean)?;
        let m = self.cfg.control_dim;
        for (i, (dst, src)) in self.mean.iter_mut().zip(mean).enumerate() {
            *dst = src.clamp(self.cfg.u_min[i % m], self.cfg.u_max[i % m]);
        }
        Ok(())
    }

    /// Receding-horizon warm start: drop the first control and fill the last slot.
    pub fn shift(&mut self, fill: ShiftFill) {
        let m = self.cfg.control_dim;
        self.mean.copy_within(m.., 0);
        if fill == ShiftFill::Zero {
            let n = self.dim;
            for j in 0..m {
                self.mean[n - m + j] = 0.0f64.clamp(self.cfg.u_min[j], self.cfg.u_max[j]);
            }
        }
    }

    /// Run `config.iterations` EM iterations for control step `step`, reporting each to
    /// `observer`, and return the statistics of the last one.
    pub fn optimize<O: Objective + ?Sized>(
        &mut self,
        objective: &O,
        step: u64,
        observer: &mut dyn Observer,
    ) -> Result<IterStats, MppiError> {
        for it in 0..self.cfg.iterations as u64 {
            let stats = self.iterate(objective, step, it)?;
            observer.on_iteration(&stats, self);
        }
        Ok(self.last)
    }

    /// One EM iteration (sample, evaluate, weight, update). Allocates nothing once
    /// [`Planner::prepare`] has seen the objective.
    pub fn iterate<O: Objective + ?Sized>(
        &mut self,
        objective: &O,
        step: u64,
        iteration: u64,
    ) -> Result<IterStats, MppiError> {
        check_len("objective dimension", self.dim, objective.dim())?;
        self.prepare(objective);
        let d = self.dim;
        let m = self.cfg.control_dim;
        let gamma = self.cfg.control_cost_gamma;
        let (seed, u_min, u_max) = (self.cfg.seed, &self.cfg.u_min, &self.cfg.u_max);
        let (noise, mean) = (&self.noise, &self.mean);
        let per_block = self.scratch_per_block;

        // Sample, clamp, evaluate: one fused pass per block of samples.
        let block = |b: usize, (((us, eps), costs), scratch): BlockParts<'_>| {
            for (l, (u, e)) in us
                .chunks_exact_mut(d)
                .zip(eps.chunks_exact_mut(d))
                .enumerate()
            {
                let mut rng = sample_rng(seed, step, iteration, (b * BLOCK_LANES + l) as u64);
                noise.fill(&mut rng, e);
                for (i, ((ui, ei), mi)) in u.iter_mut().zip(e.iter_mut()).zip(mean).enumerate() {
                    let j = i % m;
                    *ui = (mi + *ei).clamp(u_min[j], u_max[j]);
                    *ei = *ui - mi;
                }
            }
            objective.evaluate(us, costs, &mut scratch[..per_block]);
            if gamma > 0.0 {
                for (c, e) in costs.iter_mut().zip(eps.chunks_exact(d)) {
                    *c += gamma * noise.control_cost(mean, e);
                }
            }
        };
        let chunk = BLOCK_LANES * d;
        match &self.pool {
            Some(pool) => pool.install(|| {
                self.samples
                    .par_chunks_mut(chunk)
                    .zip(self.perturbations.par_chunks_mut(chunk))
                    .zip(self.costs.par_chunks_mut(BLOCK_LANES))
                    .zip(self.scratch.par_chunks_mut(per_block))
                    .enumerate()
                    .for_each(|(b, parts)| block(b, parts))
            }),
            None => self
                .samples
                .chunks_mut(chunk)
                .zip(self.perturbations.chunks_mut(chunk))
                .zip(self.costs.chunks_mut(BLOCK_LANES))
                .zip(self.scratch.chunks_mut(per_block))
                .enumerate()
                .for_each(|(b, parts)| block(b, parts)),
        }

        // E-step.
        let stats = compute_weights(&self.costs, self.cfg.temperature, &mut self.weights);
        let mut result = IterStats {
            step,
            iteration,
            weights: stats,
            kept_plan: false,
            update_norm: 0.0,
        };
        if stats.all_nonfinite(self.cfg.samples) {
            result.kept_plan = true;
            self.last = result;
            return Ok(result);
        }

        // M-step: μ⁺ = Σ w_i U_i, in sample order (deterministic).
        self.update.fill(0.0);
        for (w, u) in self.weights.iter().zip(self.samples.chunks_exact(d)) {
            if *w != 0.0 {
                for (acc, ui) in self.update.iter_mut().zip(u) {
                    *acc += w * ui;
                }
            }
        }
        // Step in mean parameters: μ ← (1 − α) μ + α μ⁺.
        let alpha = self.cfg.step_size;
        let mut norm2 = 0.0;
        for (i, (mu, new)) in self.mean.iter_mut().zip(&self.update).enumerate() {
            let mut next = if alpha == 1.0 {
                *new
            } else {
                (1.0 - alpha) * *mu + alpha * new
            };
            if alpha > 1.0 {
                next = next.clamp(self.cfg.u_min[i % m], self.cfg.u_max[i % m]);
            }
            norm2 += (next - *mu) * (next - *mu);
            *mu = next;
        }
        result.update_norm = norm2.sqrt();
        self.last = result;
        Ok(result)
    }

    /// The current plan `μ` (`T·m` entries, row-major by time step).
    #[must_use]
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }
    /// The samples `U_i` of the last iteration (`N × T·m`, row-major).
    #[must_use]
    pub fn samples(&self) -> &[f64] {
        &self.samples
    }
    /// The perturbations `ε_i = U_i − μ_old` of the last iteration (after clamping).
    #[must_use]
    pub fn perturbations(&self) -> &[f64] {
        &self.perturbations
    }
    /// The costs of the last iteration (including the control-cost term).
    #[must_use]
    pub fn costs(&self) -> &[f64] {
        &self.costs
    }
    /// The normalized weights of the last iteration.
    #[must_use]
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }
    /// The exploration noise model.
    #[must_use]
    pub fn noise(&self) -> &GaussianNoise {
        &self.noise
    }
    /// Statistics of the last iteration.
    #[must_use]
    pub fn last_stats(&self) -> &IterStats {
        &self.last
    }
    /// Number of controls in a plan.
    #[must_use]
    pub fn horizon(&self) -> usize {
        self.cfg.horizon
    }
    /// Control dimension `m`.
    #[must_use]
    pub fn control_dim(&self) -> usize {
        self.cfg.control_dim
    }
    /// Number of samples per iteration.
    #[must_use]
    pub fn num_samples(&self) -> usize {
        self.cfg.samples
    }
    /// EM iterations per control step.
    #[must_use]
    pub fn iterations(&self) -> usize {
        self.cfg.iterations
    }
    /// Lower and upper control bounds per dimension (±∞ when unbounded).
    #[must_use]
    pub fn bounds(&self) -> (&[f64], &[f64]) {
        (&self.cfg.u_min, &self.cfg.u_max)
    }
    pub(crate) fn shift_fill(&self) -> ShiftFill {
        self.cfg.shift_fill
    }
}
