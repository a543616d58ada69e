//! The optimizer: one EM / MPPI loop, with every algorithm a setting of it.
//!
//! One iteration (theory-spec B.1):
//!
//! ```text
//! U_i ~ p(·; θ_k)                                   (sample, family.sample)
//! J_i = objective(U_i) + γ Σ_t μ_tᵀ Σ⁻¹ ε_{i,t}     (batched rollouts; control-cost term)
//! w   = softmax(−J/λ) [over the elites]             (E-step, crate::weights)
//! θ_EM = argmax_θ Σ_i w_i log p(U_i; θ)             (M-step, family.fit)
//! θ_{k+1} = θ_k + α (θ_EM − θ_k) + β (θ_k − θ_{k−1})  (step rule in mean parameters)
//! ```
//!
//! `α = 1, β = 0` is exact EM (MPPI for the fixed-covariance Gaussian). Over-relaxed and
//! heavy-ball steps are accepted only if they stay in the family's domain and, with the
//! safeguard on, only if they beat the EM step on the importance-sampled surrogate
//! `L̂(θ; θ_k) = log Σ_i w_i p(U_i; θ)/p(U_i; θ_k) + L̂(θ_k)` over the current samples
//! (theory-spec C.1, D.3).
//!
//! With `diagnostics = "full"` every iteration also reports `KL(p_{θ_EM} ‖ p_{θ_k})`, the
//! empirical sufficient-increase margin `ΔL̂ − ΔQ̂` (theory-spec C.2: it is `≥ 0` for every
//! family, by Jensen) and a contraction estimate `‖θ_{k+1} − θ_k‖ / ‖θ_k − θ_{k−1}‖`.
//!
//! The planner owns a workspace allocated once at construction, so [`Planner::iterate`]
//! allocates nothing. Randomness is a pure function of `(seed, step, iteration, sample)`, and
//! every reduction runs in a fixed order, so results are bit-identical for any number of
//! threads.

use rayon::prelude::*;
use serde::Serialize;

use crate::config::{Acceleration, DiagnosticsLevel, MppiConfig, ShiftFill, Validated};
use crate::error::{MppiError, check_len};
use crate::family::{self, Family};
use crate::objective::{BLOCK_LANES, Objective};
use crate::rng::BlockRng;
use crate::weights::{WeightStats, compute_weights_elite};

/// Below this many sample-steps per iteration (`K · T`) the blocks run on the calling thread
/// even with `threads > 1`: handing them to the pool costs more than it saves (pendulum,
/// `T = 15`, `K = 100`: 9 µs on one thread, 24 µs on two).
pub const PARALLEL_MIN_SAMPLE_STEPS: usize = 4096;

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
    /// `‖plan_new − plan_old‖₂`, the size of the update of the plan.
    pub update_norm: f64,
    /// True when an accelerated step was proposed but the EM step was taken instead (outside
    /// the domain, or worse on the surrogate).
    pub fell_back: bool,
    /// True when the family refused its own M-step result (a numerical edge at a floor) and
    /// the parameters were kept.
    pub em_rejected: bool,
    /// `KL(p_{θ_EM} ‖ p_{θ_k})` (full diagnostics; NaN otherwise).
    pub kl_step: f64,
    /// Surrogate gain `L̂(θ_EM; θ_k) − L̂(θ_k; θ_k)` (full diagnostics; NaN otherwise).
    pub surrogate_gain: f64,
    /// M-step gain `Q̂(θ_EM) − Q̂(θ_k)` (full diagnostics; NaN otherwise).
    pub q_gain: f64,
    /// Sufficient-increase margin `surrogate_gain − q_gain`, `≥ 0` by theory (NaN if not
    /// measured).
    pub increase_margin: f64,
    /// `‖θ_{k+1} − θ_k‖ / ‖θ_k − θ_{k−1}‖` within a control step (NaN on its first iteration
    /// or without full diagnostics): the local contraction rate of theory-spec C.3.
    pub contraction: f64,
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
    /// `p(·; θ_k)`: what the next iteration samples from.
    family: Box<dyn Family>,
    /// Scratch instances for `θ_EM` and an accelerated proposal.
    em_family: Box<dyn Family>,
    candidate: Box<dyn Family>,
    plan: Vec<f64>,
    new_plan: Vec<f64>,
    samples: Vec<f64>,
    /// The samples block by block in structure-of-arrays layout: what the family draws into,
    /// the rollouts read and block-aware M-steps use.
    soa: Vec<f64>,
    /// Whether `samples` (row-major) holds the last iteration's samples.
    rows_valid: bool,
    /// The plan `μ` the last samples were drawn around (`ε_i = U_i − μ`).
    sampled_plan: Vec<f64>,
    /// One perturbation row per block, for the control-cost term.
    eps_rows: Vec<f64>,
    costs: Vec<f64>,
    weights: Vec<f64>,
    sort_scratch: Vec<f64>,
    log_p_k: Vec<f64>,
    log_p_em: Vec<f64>,
    theta_k: Vec<f64>,
    theta_em: Vec<f64>,
    theta_prev: Vec<f64>,
    theta_new: Vec<f64>,
    last_step_norm: f64,
    scratch: Vec<f64>,
    scratch_per_block: usize,
    pool: Option<rayon::ThreadPool>,
    last: IterStats,
}

impl Planner {
    /// Build a planner for plans of `config.horizon` steps of `control_dim` controls, with the
    /// family `config.family`.
    pub fn new(config: &MppiConfig, control_dim: usize) -> Result<Self, MppiError> {
        let cfg = config.validated(control_dim)?;
        let family = family::build(&cfg)?;
        Self::assemble(cfg, family)
    }

    /// Build a planner around a custom [`Family`] (its dimensions must match the config).
    pub fn with_family(config: &MppiConfig, family: Box<dyn Family>) -> Result<Self, MppiError> {
        let cfg = config.validated(family.control_dim())?;
        check_len(
            "family dimension",
            cfg.horizon * cfg.control_dim,
            family.dim(),
        )?;
        Self::assemble(cfg, family)
    }

    fn assemble(cfg: Validated, family: Box<dyn Family>) -> Result<Self, MppiError> {
        if cfg.control_cost_gamma > 0.0 && family.control_cost(&[], &[]).is_none() {
            return Err(MppiError::config(
                "control_cost_gamma",
                format!(
                    "the control-cost term needs a Gaussian family; `{}` has none (set it to 0)",
                    family.name()
                ),
            ));
        }
        let dim = cfg.horizon * cfg.control_dim;
        let k = cfg.samples;
        let p = family.params().len();
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
            em_family: family.clone_box(),
            candidate: family.clone_box(),
            family,
            plan: vec![0.0; dim],
            new_plan: vec![0.0; dim],
            samples: vec![0.0; k * dim],
            soa: vec![0.0; k * dim],
            rows_valid: false,
            sampled_plan: vec![0.0; dim],
            eps_rows: vec![0.0; k.div_ceil(BLOCK_LANES) * dim],
            costs: vec![0.0; k],
            weights: vec![0.0; k],
            sort_scratch: vec![0.0; k],
            log_p_k: vec![0.0; k],
            log_p_em: vec![0.0; k],
            theta_k: vec![0.0; p],
            theta_em: vec![0.0; p],
            theta_prev: vec![0.0; p],
            theta_new: vec![0.0; p],
            last_step_norm: f64::NAN,
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

    /// Reset the distribution to its initial parameters (plan: zeros clamped into the bounds).
    pub fn reset(&mut self) {
        self.family.reset();
        self.family.plan(&mut self.plan);
    }

    /// Replace the plan (`T·m` entries), keeping the distribution's spread.
    pub fn set_mean(&mut self, mean: &[f64]) -> Result<(), MppiError> {
        self.family.set_plan(mean)?;
        self.family.plan(&mut self.plan);
        Ok(())
    }

    /// Receding-horizon warm start: drop the first control and fill the last slot. With
    /// `std_reset` the family's spread goes back to its initial value (TD-MPC2).
    pub fn shift(&mut self, fill: ShiftFill) {
        self.family.shift(fill);
        if self.cfg.raw.std_reset {
            // keep the shifted plan, restore the initial spread
            self.family.plan(&mut self.plan);
            self.family.reset();
            // set_plan only fails on a wrong length or non-finite values: neither can occur
            let _ = self.family.set_plan(&self.plan);
        }
        self.family.plan(&mut self.plan);
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
    /// [`Planner::prepare`] has seen the objective. Iteration 0 of a step starts a fresh
    /// momentum history.
    pub fn iterate<O: Objective + ?Sized>(
        &mut self,
        objective: &O,
        step: u64,
        iteration: u64,
    ) -> Result<IterStats, MppiError> {
        check_len("objective dimension", self.dim, objective.dim())?;
        self.prepare(objective);
        let full = self.cfg.diagnostics == DiagnosticsLevel::Full;
        let (alpha, beta) = (
            self.cfg.step_size,
            if self.cfg.acceleration == Acceleration::HeavyBall {
                self.cfg.momentum
            } else {
                0.0
            },
        );
        let accelerated = alpha > 1.0 || beta > 0.0;
        let needs_log_densities = full || (accelerated && self.cfg.safeguard);
        // row-major samples only where something reads them
        let want_rows = objective.needs_rows()
            || self.cfg.control_cost_gamma > 0.0
            || !self.family.fits_blocks()
            || needs_log_densities;
        self.sample_and_evaluate(objective, step, iteration, want_rows);

        // E-step.
        let stats = compute_weights_elite(
            &self.costs,
            self.cfg.temperature,
            self.cfg.elites,
            &mut self.weights,
            &mut self.sort_scratch,
        );
        let mut result = IterStats {
            step,
            iteration,
            weights: stats,
            kept_plan: false,
            update_norm: 0.0,
            fell_back: false,
            em_rejected: false,
            kl_step: f64::NAN,
            surrogate_gain: f64::NAN,
            q_gain: f64::NAN,
            increase_margin: f64::NAN,
            contraction: f64::NAN,
        };
        if stats.all_nonfinite(self.cfg.samples) {
            result.kept_plan = true;
            self.last = result;
            return Ok(result);
        }

        // M-step.
        self.theta_k.copy_from_slice(self.family.params());
        if iteration == 0 {
            self.theta_prev.copy_from_slice(&self.theta_k);
            self.last_step_norm = f64::NAN;
        }
        if !self
            .family
            .fit_blocks(&self.soa, &self.weights, &mut self.theta_em)
        {
            self.ensure_rows();
            self.family
                .fit(&self.samples, &self.weights, &mut self.theta_em);
        }
        // θ_EM comes from a valid M-step; if the family still refuses it (round-off at a
        // floor), keep θ_k and say so.
        if self.em_family.set_params(&self.theta_em).is_err() {
            self.theta_em.copy_from_slice(&self.theta_k);
            self.em_family.set_params(&self.theta_em)?;
            result.em_rejected = true;
        }

        if needs_log_densities {
            self.ensure_rows();
            self.log_densities();
        }
        if full {
            let (gain, q) = self.surrogate_gains(&self.log_p_em);
            result.kl_step = self.em_family.kl(self.family.as_ref());
            result.surrogate_gain = gain;
            result.q_gain = q;
            result.increase_margin = gain - q;
        }

        // Step rule in mean parameters.
        for (((new, k), em), prev) in self
            .theta_new
            .iter_mut()
            .zip(&self.theta_k)
            .zip(&self.theta_em)
            .zip(&self.theta_prev)
        {
            *new = if alpha == 1.0 && beta == 0.0 {
                *em
            } else {
                k + alpha * (em - k) + beta * (k - prev)
            };
        }
        let mut take_em = alpha == 1.0 && beta == 0.0;
        if !take_em && self.candidate.set_params(&self.theta_new).is_err() {
            take_em = true;
            result.fell_back = true;
        }
        if !take_em && accelerated && self.cfg.safeguard {
            // compare L̂(θ_new; θ_k) with L̂(θ_EM; θ_k) on the current samples
            for (lp, u) in self
                .sort_scratch
                .iter_mut()
                .zip(self.samples.chunks_exact(self.dim))
            {
                *lp = self.candidate.log_prob(u);
            }
            let (gain_new, _) = self.surrogate_gains(&self.sort_scratch);
            let (gain_em, _) = self.surrogate_gains(&self.log_p_em);
            // NaN (a sample outside the proposal's support) also rejects the proposal
            if gain_new.is_nan() || gain_new < gain_em {
                take_em = true;
                result.fell_back = true;
            }
        }
        if take_em {
            std::mem::swap(&mut self.family, &mut self.em_family);
            self.theta_new.copy_from_slice(&self.theta_em);
        } else {
            std::mem::swap(&mut self.family, &mut self.candidate);
        }
        self.theta_prev.copy_from_slice(&self.theta_k);

        // Contraction estimate from successive parameter steps within this control step.
        let step_norm = self
            .theta_new
            .iter()
            .zip(&self.theta_k)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        if full && self.last_step_norm > 0.0 {
            result.contraction = step_norm / self.last_step_norm;
        }
        self.last_step_norm = step_norm;

        // plan ← family.plan(), measuring the change
        self.family.plan(&mut self.new_plan);
        let mut norm2 = 0.0;
        for (old, new) in self.plan.iter_mut().zip(&self.new_plan) {
            norm2 += (new - *old) * (new - *old);
            *old = *new;
        }
        result.update_norm = norm2.sqrt();
        self.last = result;
        Ok(result)
    }

    /// Sample, clamp, evaluate: one fused pass per block of samples.
    fn sample_and_evaluate<O: Objective + ?Sized>(
        &mut self,
        objective: &O,
        step: u64,
        iteration: u64,
        want_rows: bool,
    ) {
        let d = self.dim;
        self.sampled_plan.copy_from_slice(&self.plan);
        let gamma = self.cfg.control_cost_gamma;
        let seed = self.cfg.seed;
        let (family, plan) = (self.family.as_ref(), &self.plan);
        let per_block = self.scratch_per_block;
        let block = |b: usize, ((((us, eps), costs), scratch), soa): BlockParts<'_>| {
            let lanes = costs.len();
            let mut rng = BlockRng::new(seed, step, iteration, b * BLOCK_LANES, lanes);
            if !family.sample_block(&mut rng, us, soa) && want_rows {
                family::soa_to_rows(lanes, soa, us);
            }
            objective.evaluate_block(us, soa, costs, &mut scratch[..per_block]);
            if gamma > 0.0 {
                // ε = U − μ only where the control-cost term needs it (one row of scratch)
                let e = &mut eps[..d];
                for (c, u) in costs.iter_mut().zip(us.chunks_exact(d)) {
                    for ((ei, ui), pi) in e.iter_mut().zip(u).zip(plan) {
                        *ei = ui - pi;
                    }
                    *c += gamma * family.control_cost(plan, e).unwrap_or(0.0);
                }
            }
        };
        let chunk = BLOCK_LANES * d;
        // waking the pool costs more than it saves on tiny problems (results are the same)
        let parallel = self.cfg.samples * self.cfg.horizon >= PARALLEL_MIN_SAMPLE_STEPS;
        match &self.pool {
            Some(pool) if parallel => pool.install(|| {
                self.samples
                    .par_chunks_mut(chunk)
                    .zip(self.eps_rows.par_chunks_mut(d))
                    .zip(self.costs.par_chunks_mut(BLOCK_LANES))
                    .zip(self.scratch.par_chunks_mut(per_block))
                    .zip(self.soa.par_chunks_mut(chunk))
                    .enumerate()
                    .for_each(|(b, parts)| block(b, parts))
            }),
            _ => self
                .samples
                .chunks_mut(chunk)
                .zip(self.eps_rows.chunks_mut(d))
                .zip(self.costs.chunks_mut(BLOCK_LANES))
                .zip(self.scratch.chunks_mut(per_block))
                .zip(self.soa.chunks_mut(chunk))
                .enumerate()
                .for_each(|(b, parts)| block(b, parts)),
        }
        self.rows_valid = want_rows;
    }

    /// Make `samples` (row-major) hold the last samples, transposing the blocks if needed.
    fn ensure_rows(&mut self) {
        if !self.rows_valid {
            family::blocks_to_rows(&self.soa, self.dim, &mut self.samples);
            self.rows_valid = true;
        }
    }

    /// `log p(U_i; θ_k)` and `log p(U_i; θ_EM)` for every sample with positive weight.
    fn log_densities(&mut self) {
        let d = self.dim;
        for (((lk, le), u), w) in self
            .log_p_k
            .iter_mut()
            .zip(self.log_p_em.iter_mut())
            .zip(self.samples.chunks_exact(d))
            .zip(&self.weights)
        {
            if *w > 0.0 {
                *lk = self.family.log_prob(u);
                *le = self.em_family.log_prob(u);
            } else {
                *lk = 0.0;
                *le = 0.0;
            }
        }
    }

    /// For `log p(U_i; θ)` in `log_p`: the surrogate gain `log Σ w_i r_i` and the M-step gain
    /// `Σ w_i log r_i`, with `r_i = p(U_i; θ) / p(U_i; θ_k)` (theory-spec C.1, C.2).
    fn surrogate_gains(&self, log_p: &[f64]) -> (f64, f64) {
        let mut max = f64::NEG_INFINITY;
        let mut q = 0.0;
        for ((w, lp), lk) in self.weights.iter().zip(log_p).zip(&self.log_p_k) {
            if *w > 0.0 {
                let r = lp - lk;
                q += w * r;
                max = max.max(r);
            }
        }
        let mut s = 0.0;
        for ((w, lp), lk) in self.weights.iter().zip(log_p).zip(&self.log_p_k) {
            if *w > 0.0 {
                s += w * (lp - lk - max).exp();
            }
        }
        (max + s.ln(), q)
    }

    /// The current plan `μ` (`T·m` entries, row-major by time step).
    #[must_use]
    pub fn mean(&self) -> &[f64] {
        &self.plan
    }
    /// The sampling family with its current parameters `θ_k`.
    #[must_use]
    pub fn family(&self) -> &dyn Family {
        self.family.as_ref()
    }
    /// The samples `U_i` of the last iteration (`N × T·m`, row-major). Built on demand from
    /// the block layout the planner samples into (it allocates; use [`Planner::sample`] for
    /// one sample without allocating).
    #[must_use]
    pub fn samples(&self) -> Vec<f64> {
        if self.rows_valid {
            return self.samples.clone();
        }
        let mut rows = vec![0.0; self.samples.len()];
        family::blocks_to_rows(&self.soa, self.dim, &mut rows);
        rows
    }
    /// Copy sample `i` of the last iteration (`T·m` entries) into `out`. Errors if `i` is not
    /// below [`Planner::num_samples`] or `out` is not `T·m` long.
    pub fn sample(&self, i: usize, out: &mut [f64]) -> Result<(), MppiError> {
        check_len("sample output", self.dim, out.len())?;
        if i >= self.cfg.samples {
            return Err(MppiError::DimensionMismatch {
                what: "sample index",
                expected: self.cfg.samples,
                got: i,
            });
        }
        if self.rows_valid {
            out.copy_from_slice(&self.samples[i * self.dim..(i + 1) * self.dim]);
            return Ok(());
        }
        let (b, l) = (i / BLOCK_LANES, i % BLOCK_LANES);
        let start = b * BLOCK_LANES * self.dim;
        let lanes = (self.cfg.samples - b * BLOCK_LANES).min(BLOCK_LANES);
        let block = &self.soa[start..start + lanes * self.dim];
        for (k, v) in out.iter_mut().enumerate() {
            *v = block[k * lanes + l];
        }
        Ok(())
    }
    /// The perturbations `ε_i = U_i − μ` of the last iteration (after clamping; `μ` is the plan
    /// the samples were drawn around), `N × T·m` row-major. Computed on demand: the hot loop
    /// only forms them when the control-cost term needs them.
    #[must_use]
    pub fn perturbations(&self) -> Vec<f64> {
        let mut eps = self.samples();
        for row in eps.chunks_exact_mut(self.dim) {
            for (e, mu) in row.iter_mut().zip(&self.sampled_plan) {
                *e -= mu;
            }
        }
        eps
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

/// The per-block slices of the sample, perturbation, cost, scratch and SoA sample buffers.
type BlockParts<'a> = (
    (
        ((&'a mut [f64], &'a mut [f64]), &'a mut [f64]),
        &'a mut [f64],
    ),
    &'a mut [f64],
);
