//! The optimizer: one EM / MPPI loop, with every algorithm a choice of its stages.
//!
//! One iteration (docs/theory.md §B.1), each line a stage ([`Stages`]):
//!
//! ```text
//! s_t, λ-scale  = schedule(step, k)                  (Schedule: annealing; constant by default)
//! U_i ~ p(·; θ_k | context, s)                       (Proposal::sample_block)
//! J_i = objective(U_i) + γ Σ_t μ_tᵀ Σ⁻¹ ε_{i,t}      (Objective: lane blocks or the whole batch)
//! w   = softmax(−J/λ) [over the elites]              (Weighting, the E-step)
//! θ_EM = argmax_θ Σ_i w_i log p(U_i; θ)              (Proposal::fit, the M-step)
//! θ_{k+1} = θ_k + α (θ_EM − θ_k) + β (θ_k − θ_{k−1}) (Update: step rule in mean parameters)
//! ```
//!
//! [`Planner::optimize_until`] repeats it until the schedule's iteration count, a deadline or
//! an observer stops it, and says which in its [`Status`].
//!
//! `α = 1, β = 0` is exact EM (MPPI for the fixed-covariance Gaussian). Over-relaxed and
//! heavy-ball steps are accepted only if they stay in the family's domain and, with the
//! safeguard on, only if they beat the EM step on the importance-sampled surrogate
//! `L̂(θ; θ_k) = log Σ_i w_i p(U_i; θ)/p(U_i; θ_k) + L̂(θ_k)` over the current samples
//! (docs/theory.md §C.1, §D.3).
//!
//! With `diagnostics = "full"` every iteration also reports `KL(p_{θ_EM} ‖ p_{θ_k})`, the
//! M-step's gain `ΔQ̂` and their gap `ΔQ̂ − KL` (docs/theory.md §C.2: zero for an exact
//! exponential-family M-step, so a floor, prior or faulty fit shows in it), and a contraction
//! estimate `‖θ_{k+1} − θ_k‖ / ‖θ_k − θ_{k−1}‖`.
//!
//! The planner owns a workspace allocated once at construction, so [`Planner::iterate`]
//! allocates nothing. Randomness is a pure function of `(seed, step, iteration, sample)`, and
//! every reduction runs in a fixed order, so results are bit-identical for any number of
//! threads.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::Serialize;

use crate::config::{Acceleration, DiagnosticsLevel, MppiConfig, ShiftFill, Validated};
use crate::error::{MppiError, check_len};
use crate::objective::{BLOCK_LANES, Objective};
use crate::proposal::{self, Context, Proposal};
use crate::rng::{BlockRng, sample_rng};
use crate::schedule::{ReverseStep, Schedule};
use crate::split::Split;
use crate::update::{Step as UpdateStep, StepRule, Update};
use crate::weights::{Softmax, WeightStats, Weighting};

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
    /// M-step gap `q_gain − kl_step` (full diagnostics; NaN if not measured or the proposal
    /// has no KL). For an exponential family it is `(η_EM − η_k)ᵀ(T̄_w − ∇A(η_EM))`, zero
    /// exactly when `θ_EM` matches the weighted sufficient statistics `T̄_w` (the exact M-step,
    /// for which `ΔQ̂ = KL > 0` is the theorem's sufficient increase, docs/theory.md §C.2); a
    /// floor, prior or shrinkage that moved the M-step makes it nonzero. For the mixture,
    /// whose KL is the complete-data KL, it is `≥ 0` (generalized EM).
    pub mstep_gap: f64,
    /// `‖θ_{k+1} − θ_k‖ / ‖θ_k − θ_{k−1}‖` within a control step (NaN on its first iteration
    /// or without full diagnostics): the local contraction rate of docs/theory.md §C.3.
    pub contraction: f64,
    /// True when this iteration's samples were drawn and evaluated on the thread pool, false
    /// when on the calling thread (see [`crate::split`]; the results are the same).
    pub parallel: bool,
}

impl IterStats {
    /// The statistics of iteration `iteration` of step `step` before anything is measured
    /// (NaN where a quantity is only measured with full diagnostics).
    #[must_use]
    pub fn new(step: u64, iteration: u64) -> Self {
        IterStats {
            step,
            iteration,
            weights: WeightStats::default(),
            kept_plan: false,
            update_norm: 0.0,
            fell_back: false,
            em_rejected: false,
            kl_step: f64::NAN,
            surrogate_gain: f64::NAN,
            q_gain: f64::NAN,
            mstep_gap: f64::NAN,
            contraction: f64::NAN,
            parallel: false,
        }
    }
}

/// Receives diagnostics as the loop runs. Every method has a default.
pub trait Observer {
    /// Called after every EM iteration with its statistics and the updated planner. Return
    /// [`ControlFlow::Break`] to stop the loop after this iteration (status
    /// [`Status::Done`]).
    fn on_iteration(&mut self, _stats: &IterStats, _planner: &Planner) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

/// The do-nothing observer.
impl Observer for () {}

/// Why [`Planner::optimize`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// An observer asked to stop.
    Done,
    /// Every configured iteration ran.
    #[default]
    MaxIterations,
    /// The deadline left no time for another iteration (the plan is the last iteration's: a
    /// status, not an error).
    OutOfTime,
}

/// What [`Planner::optimize`] did.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Outcome {
    /// Why the loop stopped.
    pub status: Status,
    /// Iterations run.
    pub iterations: usize,
    /// Statistics of the last iteration.
    pub last: IterStats,
}

/// The four stages the loop is made of, as runtime objects: what to sample from, how the
/// spread and temperature change between iterations, how costs become weights, and how the
/// M-step result becomes the next parameters. [`Stages::from_config`] builds the ones a
/// config asks for; replace any field with your own before building a [`Planner`] or a
/// [`crate::Controller`].
#[derive(Debug)]
pub struct Stages {
    /// The sampling distribution and its M-step.
    pub proposal: Box<dyn Proposal>,
    /// Per-iteration spread and temperature (annealing).
    pub schedule: Box<dyn Schedule>,
    /// The E-step: costs to weights.
    pub weighting: Box<dyn Weighting>,
    /// The step rule from `θ_EM` to `θ_{k+1}`.
    pub update: Box<dyn Update>,
}

impl Stages {
    /// The stages `config` describes, for plans of `config.horizon` steps of `control_dim`
    /// controls.
    pub fn from_config(config: &MppiConfig, control_dim: usize) -> Result<Self, MppiError> {
        let cfg = config.validated(control_dim)?;
        Self::from_validated(&cfg)
    }

    /// The config's schedule, weighting and update around a proposal of your own (the
    /// config's `[proposal]` section is not built).
    pub fn with_proposal(
        config: &MppiConfig,
        proposal: Box<dyn Proposal>,
    ) -> Result<Self, MppiError> {
        let cfg = config.validated(proposal.control_dim())?;
        Self::around(&cfg, proposal)
    }

    fn from_validated(cfg: &Validated) -> Result<Self, MppiError> {
        Self::around(cfg, proposal::build(cfg)?)
    }

    /// The config's schedule, weighting and update around `proposal`.
    fn around(cfg: &Validated, proposal: Box<dyn Proposal>) -> Result<Self, MppiError> {
        Ok(Stages {
            proposal,
            schedule: cfg.schedule.build(),
            weighting: Box::new(Softmax::new(cfg.temperature, cfg.elites, cfg.samples)),
            update: Box::new(StepRule {
                step_size: cfg.step_size,
                momentum: if cfg.acceleration == Acceleration::HeavyBall {
                    cfg.momentum
                } else {
                    0.0
                },
                safeguard: cfg.safeguard,
            }),
        })
    }
}

/// When the loop must stop: a wall-clock deadline, checked between iterations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deadline(pub Option<Instant>);

impl Deadline {
    /// No deadline.
    pub const NONE: Deadline = Deadline(None);
    /// `budget` from now.
    #[must_use]
    pub fn after(budget: Duration) -> Self {
        Deadline(Instant::now().checked_add(budget))
    }
    /// Whether another iteration, expected to take `next`, would end past the deadline.
    fn no_time_for(&self, next: Duration) -> bool {
        self.0.is_some_and(|d| Instant::now() + next > d)
    }
}

/// The MPPI / EM optimizer with its workspace.
///
/// ```
/// use mppi::{FnObjective, MppiConfig, Planner, ProposalConfig, WeightingConfig};
/// // minimize ‖u − 1‖² over u ∈ R³ (a black-box objective: horizon 1, 3 controls)
/// let cfg = MppiConfig {
///     samples: 500, horizon: 1, iterations: 30,
///     proposal: ProposalConfig::gaussian(&[0.3]),
///     weighting: WeightingConfig::fixed(0.05),
///     ..MppiConfig::default()
/// };
/// let mut planner = Planner::new(&cfg, 3).unwrap();
/// let f = FnObjective::new(3, |u: &[f64]| u.iter().map(|v| (v - 1.0).powi(2)).sum());
/// let outcome = planner.optimize(&f, 0, &mut ()).unwrap();
/// assert_eq!(outcome.iterations, 30);
/// assert!(planner.mean().iter().all(|v| (v - 1.0).abs() < 0.05));
/// ```
pub struct Planner {
    cfg: Validated,
    dim: usize,
    /// `p(·; θ_k)`: what the next iteration samples from.
    proposal: Box<dyn Proposal>,
    /// Scratch instances for `θ_EM` and an accelerated candidate.
    em_proposal: Box<dyn Proposal>,
    candidate: Box<dyn Proposal>,
    schedule: Box<dyn Schedule>,
    weighting: Box<dyn Weighting>,
    update: Box<dyn Update>,
    /// The schedule's spread multipliers of the current iteration (`T`).
    spread: Vec<f64>,
    /// The spread of a reverse step's injected noise (`T`, all `ν`).
    noise_spread: Vec<f64>,
    plan: Vec<f64>,
    new_plan: Vec<f64>,
    samples: Vec<f64>,
    /// The samples block by block in structure-of-arrays layout: what the proposal draws
    /// into, the rollouts read and block-aware M-steps use.
    soa: Vec<f64>,
    /// Whether `samples` (row-major) holds the last iteration's samples.
    rows_valid: bool,
    /// The plan `μ` the last samples were drawn around (`ε_i = U_i − μ`).
    sampled_plan: Vec<f64>,
    /// One perturbation row per block, for the control-cost term.
    eps_rows: Vec<f64>,
    costs: Vec<f64>,
    weights: Vec<f64>,
    log_p_scratch: Vec<f64>,
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
    /// Where the rollouts of the next iteration run (measured under `parallel = "auto"`).
    split: Split,
    last: IterStats,
}

impl Planner {
    /// Build a planner for plans of `config.horizon` steps of `control_dim` controls, with the
    /// stages `config` describes.
    pub fn new(config: &MppiConfig, control_dim: usize) -> Result<Self, MppiError> {
        let cfg = config.validated(control_dim)?;
        let stages = Stages::from_validated(&cfg)?;
        Self::assemble(cfg, stages)
    }

    /// Build a planner around a custom [`Proposal`] (its dimensions must match the config);
    /// the other stages come from the config.
    pub fn with_proposal(
        config: &MppiConfig,
        proposal: Box<dyn Proposal>,
    ) -> Result<Self, MppiError> {
        let cfg = config.validated(proposal.control_dim())?;
        // the config's own [proposal] is not built: `proposal` replaces it
        let stages = Stages::around(&cfg, proposal)?;
        Self::assemble(cfg, stages)
    }

    /// Build a planner from stages of your own (see [`Stages::from_config`]).
    pub fn with_stages(config: &MppiConfig, stages: Stages) -> Result<Self, MppiError> {
        let cfg = config.validated(stages.proposal.control_dim())?;
        Self::assemble(cfg, stages)
    }

    fn assemble(cfg: Validated, stages: Stages) -> Result<Self, MppiError> {
        let Stages {
            proposal,
            schedule,
            weighting,
            update,
        } = stages;
        let dim = cfg.horizon * cfg.control_dim;
        check_len("proposal dimension", dim, proposal.dim())?;
        if cfg.control_cost_gamma > 0.0 && proposal.control_cost(&[], &[]).is_none() {
            return Err(MppiError::config(
                "weighting.control_cost_gamma",
                format!(
                    "the control-cost term needs a Gaussian proposal; `{}` has none (set it to 0)",
                    proposal.name()
                ),
            ));
        }
        let mut plan = vec![0.0; dim];
        proposal.plan(&mut plan);
        if update.safeguarded() && proposal.log_prob(&plan).is_none() {
            return Err(MppiError::config(
                "update.safeguard",
                format!(
                    "a safeguarded accelerated step needs the proposal's log-density; `{}` has \
                     none (set safeguard = false, or use step_size <= 1 without momentum)",
                    proposal.name()
                ),
            ));
        }
        let k = cfg.samples;
        let p = proposal.params().len();
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
            em_proposal: proposal.clone_box(),
            candidate: proposal.clone_box(),
            proposal,
            schedule,
            weighting,
            update,
            spread: vec![1.0; cfg.horizon],
            noise_spread: vec![1.0; cfg.horizon],
            plan,
            new_plan: vec![0.0; dim],
            samples: vec![0.0; k * dim],
            soa: vec![0.0; k * dim],
            rows_valid: false,
            sampled_plan: vec![0.0; dim],
            eps_rows: vec![0.0; k.div_ceil(BLOCK_LANES) * dim],
            costs: vec![0.0; k],
            weights: vec![0.0; k],
            log_p_scratch: vec![0.0; k],
            log_p_k: vec![0.0; k],
            log_p_em: vec![0.0; k],
            theta_k: vec![0.0; p],
            theta_em: vec![0.0; p],
            theta_prev: vec![0.0; p],
            theta_new: vec![0.0; p],
            last_step_norm: f64::NAN,
            scratch: Vec::new(),
            scratch_per_block: 0,
            split: Split::new(cfg.parallel, pool.is_some()),
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
        // the scratch is always `scratch_per_block · blocks` long (`blocks` is fixed by the
        // config), so only a larger need per block reallocates
        if per_block > self.scratch_per_block {
            self.scratch_per_block = per_block;
            self.scratch = vec![0.0; per_block * blocks];
        }
    }

    /// Reset the distribution to its initial parameters (plan: zeros clamped into the bounds).
    pub fn reset(&mut self) {
        self.proposal.reset();
        self.proposal.plan(&mut self.plan);
    }

    /// Replace the plan (`T·m` entries), keeping the distribution's spread.
    pub fn set_mean(&mut self, mean: &[f64]) -> Result<(), MppiError> {
        self.proposal.set_plan(mean)?;
        self.proposal.plan(&mut self.plan);
        Ok(())
    }

    /// Receding-horizon warm start: drop the first control and fill the last slot. With
    /// `std_reset` the proposal's spread goes back to its initial value (TD-MPC2).
    pub fn shift(&mut self, fill: ShiftFill) {
        self.proposal.shift(fill);
        if self.cfg.std_reset {
            // keep the shifted plan, restore the initial spread
            self.proposal.plan(&mut self.plan);
            self.proposal.reset();
            // set_plan only fails on a wrong length or non-finite values: neither can occur
            let _ = self.proposal.set_plan(&self.plan);
        }
        self.proposal.plan(&mut self.plan);
    }

    /// Iterations the schedule runs at control step `step`.
    #[must_use]
    pub fn iterations_at(&self, step: u64) -> usize {
        self.schedule.iterations(step, self.cfg.iterations)
    }

    /// Run the schedule's iterations for control step `step` (an open-loop problem: no
    /// state), reporting each to `observer`; see [`Planner::optimize_until`].
    pub fn optimize<O: Objective + ?Sized>(
        &mut self,
        objective: &O,
        step: u64,
        observer: &mut dyn Observer,
    ) -> Result<Outcome, MppiError> {
        self.optimize_until(objective, None, step, Deadline::NONE, observer)
    }

    /// The loop: iterate until the schedule's iteration count, until the next iteration would
    /// end past `deadline`, or until `observer` breaks. The first iteration always runs, so
    /// there is always a plan. `state` is handed to the proposal (see [`Context`]).
    pub fn optimize_until<O: Objective + ?Sized>(
        &mut self,
        objective: &O,
        state: Option<&[f64]>,
        step: u64,
        deadline: Deadline,
        observer: &mut dyn Observer,
    ) -> Result<Outcome, MppiError> {
        let iterations = self.iterations_at(step);
        let mut outcome = Outcome::default();
        let mut longest = Duration::ZERO;
        for it in 0..iterations as u64 {
            if it > 0 && deadline.no_time_for(longest) {
                outcome.status = Status::OutOfTime;
                break;
            }
            let start = Instant::now();
            outcome.last = self.iterate_from(objective, state, step, it)?;
            outcome.iterations += 1;
            longest = longest.max(start.elapsed());
            if observer.on_iteration(&outcome.last, self).is_break() {
                outcome.status = Status::Done;
                break;
            }
        }
        Ok(outcome)
    }

    /// One EM iteration of an open-loop problem; see [`Planner::iterate_from`].
    pub fn iterate<O: Objective + ?Sized>(
        &mut self,
        objective: &O,
        step: u64,
        iteration: u64,
    ) -> Result<IterStats, MppiError> {
        self.iterate_from(objective, None, step, iteration)
    }

    /// One EM iteration: schedule → sample → evaluate → weight → fit → update. Allocates
    /// nothing once [`Planner::prepare`] has seen the objective. Iteration 0 of a step starts
    /// a fresh momentum history.
    pub fn iterate_from<O: Objective + ?Sized>(
        &mut self,
        objective: &O,
        state: Option<&[f64]>,
        step: u64,
        iteration: u64,
    ) -> Result<IterStats, MppiError> {
        check_len("objective dimension", self.dim, objective.dim())?;
        self.prepare(objective);
        let mut result = IterStats::new(step, iteration);

        // schedule: the spread and temperature of this iteration, handed to every instance
        let iterations = self.iterations_at(step) as u64;
        let annealing =
            self.schedule
                .before_iteration(step, iteration, iterations, &mut self.spread);
        let scale = annealing.temperature_scale;
        if let Some(r) = &annealing.reverse {
            r.validate(step, iteration)?;
        }
        if !(scale.is_finite() && scale > 0.0) {
            return Err(MppiError::config(
                "schedule",
                format!(
                    "the schedule's temperature scale must be a finite number > 0, got {scale} \
                     (step {step}, iteration {iteration})"
                ),
            ));
        }
        let ctx = ctx_of(
            state,
            step,
            iteration,
            iterations,
            annealing.scaled.then_some(self.spread.as_slice()),
        );
        for p in [
            &mut self.proposal,
            &mut self.em_proposal,
            &mut self.candidate,
        ] {
            p.prepare(&ctx)?;
        }

        let full = self.cfg.diagnostics == DiagnosticsLevel::Full;
        let needs_log_densities = full || self.update.safeguarded();
        result.parallel =
            self.sample_and_evaluate(objective, step, iteration, needs_log_densities)?;

        result.weights =
            self.weighting
                .weigh(&self.costs, annealing.temperature_scale, &mut self.weights);
        if result.weights.all_nonfinite(self.cfg.samples) {
            result.kept_plan = true;
            self.last = result;
            return Ok(result);
        }

        self.fit(iteration, &mut result)?;
        if needs_log_densities {
            self.log_densities();
        }
        if full {
            self.measure(&mut result);
        }
        self.step(&mut result, annealing.reverse)?;
        if let Some(r) = annealing.reverse {
            self.reverse_move(&ctx_of(state, step, iteration, iterations, None), r)?;
            if annealing.scaled {
                // back to the iteration's spread, which `proposal()` and the diagnostics show
                let ctx = ctx_of(state, step, iteration, iterations, Some(&self.spread));
                self.proposal.prepare(&ctx)?;
            }
        }
        self.proposal.plan(&mut self.new_plan);
        result.update_norm = distance(&self.new_plan, &self.plan);
        self.plan.copy_from_slice(&self.new_plan);
        self.last = result;
        Ok(result)
    }

    /// A reverse-diffusion step's move of the plan after the update:
    /// `plan ← c · plan + ν L z`, the noise drawn as one sample of the proposal at spread `ν`
    /// around its plan from the iteration's stream `samples` (docs/theory.md §F.1).
    fn reverse_move(&mut self, ctx: &Context<'_>, r: ReverseStep) -> Result<(), MppiError> {
        if r.plan_scale == 1.0 && r.noise == 0.0 {
            return Ok(());
        }
        // `sampled_plan` is free until the next iteration samples
        self.proposal.plan(&mut self.sampled_plan);
        if r.noise > 0.0 {
            self.noise_spread.fill(r.noise);
            let noisy = Context {
                spread: Some(&self.noise_spread),
                ..*ctx
            };
            self.proposal.prepare(&noisy)?;
            let mut rng = sample_rng(
                self.cfg.seed,
                ctx.step,
                ctx.iteration,
                self.cfg.samples as u64,
            )
            .with_normals(self.cfg.normals);
            self.proposal.sample(&mut rng, &mut self.new_plan);
            self.proposal.prepare(ctx)?;
        } else {
            self.new_plan.copy_from_slice(&self.sampled_plan);
        }
        let m = self.cfg.control_dim;
        for (j, (u, mu)) in self.new_plan.iter_mut().zip(&self.sampled_plan).enumerate() {
            *u = (*u + (r.plan_scale - 1.0) * mu)
                .clamp(self.cfg.u_min[j % m], self.cfg.u_max[j % m]);
        }
        self.proposal.set_plan(&self.new_plan)
    }

    /// M-step into `θ_EM` (and `em_proposal`), from the block layout when the proposal can.
    fn fit(&mut self, iteration: u64, result: &mut IterStats) -> Result<(), MppiError> {
        self.theta_k.copy_from_slice(self.proposal.params());
        if iteration == 0 {
            self.theta_prev.copy_from_slice(&self.theta_k);
            self.last_step_norm = f64::NAN;
        }
        if !self
            .proposal
            .fit_blocks(&self.soa, &self.weights, &mut self.theta_em)
        {
            self.ensure_rows();
            self.proposal
                .fit(&self.samples, &self.weights, &mut self.theta_em);
        }
        // θ_EM comes from a valid M-step; if the proposal still refuses it (round-off at a
        // floor), keep θ_k and say so.
        if self.em_proposal.set_params(&self.theta_em).is_err() {
            self.theta_em.copy_from_slice(&self.theta_k);
            self.em_proposal.set_params(&self.theta_em)?;
            result.em_rejected = true;
        }
        Ok(())
    }

    /// Full diagnostics: the KL step and the surrogate and M-step gains.
    fn measure(&self, result: &mut IterStats) {
        let (gain, q) = self.surrogate_gains(&self.log_p_em);
        result.kl_step = self
            .em_proposal
            .kl(self.proposal.as_ref())
            .unwrap_or(f64::NAN);
        result.surrogate_gain = gain;
        result.q_gain = q;
        result.mstep_gap = q - result.kl_step;
    }

    /// The update stage: take the EM step or the candidate, swap it in, track the step sizes.
    fn step(
        &mut self,
        result: &mut IterStats,
        reverse: Option<ReverseStep>,
    ) -> Result<(), MppiError> {
        let proposed = match reverse {
            None => self.update.propose(
                &self.theta_k,
                &self.theta_em,
                &self.theta_prev,
                &mut self.theta_new,
            ),
            // a reverse-diffusion step replaces the update stage: θ_k + α (θ_EM − θ_k)
            Some(r) if r.step_size == 1.0 => UpdateStep::Em,
            Some(r) => {
                for ((new, k), em) in self
                    .theta_new
                    .iter_mut()
                    .zip(&self.theta_k)
                    .zip(&self.theta_em)
                {
                    *new = k + r.step_size * (em - k);
                }
                UpdateStep::Candidate { safeguarded: false }
            }
        };
        let mut take_em = proposed == UpdateStep::Em;
        if !take_em && self.candidate.set_params(&self.theta_new).is_err() {
            take_em = true;
            result.fell_back = true;
        }
        if !take_em && proposed == (UpdateStep::Candidate { safeguarded: true }) {
            // compare L̂(θ_new; θ_k) with L̂(θ_EM; θ_k) on the current samples
            for (lp, u) in self
                .log_p_scratch
                .iter_mut()
                .zip(self.samples.chunks_exact(self.dim))
            {
                *lp = self.candidate.log_prob(u).unwrap_or(f64::NAN);
            }
            let (gain_new, _) = self.surrogate_gains(&self.log_p_scratch);
            let (gain_em, _) = self.surrogate_gains(&self.log_p_em);
            // NaN (a sample outside the candidate's support) also rejects it
            if gain_new.is_nan() || gain_new < gain_em {
                take_em = true;
                result.fell_back = true;
            }
        }
        if take_em {
            std::mem::swap(&mut self.proposal, &mut self.em_proposal);
            self.theta_new.copy_from_slice(&self.theta_em);
        } else {
            std::mem::swap(&mut self.proposal, &mut self.candidate);
        }
        self.theta_prev.copy_from_slice(&self.theta_k);

        // contraction estimate from successive parameter steps within this control step
        let step_norm = distance(&self.theta_new, &self.theta_k);
        if self.cfg.diagnostics == DiagnosticsLevel::Full && self.last_step_norm > 0.0 {
            result.contraction = step_norm / self.last_step_norm;
        }
        self.last_step_norm = step_norm;
        Ok(())
    }

    /// Sample, clamp, evaluate: one fused pass per block of samples, or the whole batch at
    /// once for an objective that asks for it. Returns whether the blocks ran on the pool.
    fn sample_and_evaluate<O: Objective + ?Sized>(
        &mut self,
        objective: &O,
        step: u64,
        iteration: u64,
        needs_log_densities: bool,
    ) -> Result<bool, MppiError> {
        let batch = objective.evaluates_batch();
        // row-major samples only where something reads them
        let want_rows = batch
            || objective.needs_rows()
            || self.cfg.control_cost_gamma > 0.0
            || !self.proposal.fits_blocks()
            || needs_log_densities;
        let d = self.dim;
        self.sampled_plan.copy_from_slice(&self.plan);
        let gamma = self.cfg.control_cost_gamma;
        let (seed, normals) = (self.cfg.seed, self.cfg.normals);
        let (proposal, plan) = (self.proposal.as_ref(), &self.plan);
        let per_block = self.scratch_per_block;
        let block = |b: usize, ((((us, eps), costs), scratch), soa): BlockParts<'_>| {
            let lanes = costs.len();
            let mut rng =
                BlockRng::new(seed, step, iteration, b * BLOCK_LANES, lanes).with_normals(normals);
            if !proposal.sample_block(&mut rng, us, soa) && want_rows {
                proposal::soa_to_rows(lanes, soa, us);
            }
            if !batch {
                objective.evaluate_block(us, soa, costs, &mut scratch[..per_block]);
                if gamma > 0.0 {
                    add_control_cost(proposal, plan, gamma, us, &mut eps[..d], costs);
                }
            }
        };
        let chunk = BLOCK_LANES * d;
        // the pool or the caller, whichever is faster here (results are the same)
        let work = (self.cfg.samples * self.cfg.horizon) as f64 * objective.work_per_sample_step();
        let parallel = self.split.choose(work);
        let started = Instant::now();
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
        self.split.record(parallel, started.elapsed());
        self.rows_valid = want_rows;
        if batch {
            // the whole batch in one call (a neural, Python or GPU objective), then the
            // control-cost term sample by sample
            objective.evaluate_batch(&self.samples, &mut self.costs)?;
            if gamma > 0.0 {
                let (proposal, plan) = (self.proposal.as_ref(), &self.plan);
                add_control_cost(
                    proposal,
                    plan,
                    gamma,
                    &self.samples,
                    &mut self.eps_rows[..d],
                    &mut self.costs,
                );
            }
        }
        Ok(parallel && self.pool.is_some())
    }

    /// Make `samples` (row-major) hold the last samples, transposing the blocks if needed.
    fn ensure_rows(&mut self) {
        if !self.rows_valid {
            proposal::blocks_to_rows(&self.soa, self.dim, &mut self.samples);
            self.rows_valid = true;
        }
    }

    /// `log p(U_i; θ_k)` and `log p(U_i; θ_EM)` for every sample with positive weight (NaN
    /// where the proposal has no density).
    fn log_densities(&mut self) {
        self.ensure_rows();
        let d = self.dim;
        for (((lk, le), u), w) in self
            .log_p_k
            .iter_mut()
            .zip(self.log_p_em.iter_mut())
            .zip(self.samples.chunks_exact(d))
            .zip(&self.weights)
        {
            if *w > 0.0 {
                *lk = self.proposal.log_prob(u).unwrap_or(f64::NAN);
                *le = self.em_proposal.log_prob(u).unwrap_or(f64::NAN);
            } else {
                *lk = 0.0;
                *le = 0.0;
            }
        }
    }

    /// For `log p(U_i; θ)` in `log_p`: the surrogate gain `log Σ w_i r_i` and the M-step gain
    /// `Σ w_i log r_i`, with `r_i = p(U_i; θ) / p(U_i; θ_k)` (docs/theory.md §C.1, §C.2).
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
    /// The proposal with its current parameters `θ_k`.
    #[must_use]
    pub fn proposal(&self) -> &dyn Proposal {
        self.proposal.as_ref()
    }
    /// The schedule's spread multipliers of the last iteration (`T` entries; all 1 unless a
    /// schedule scaled them).
    #[must_use]
    pub fn spread(&self) -> &[f64] {
        &self.spread
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
        proposal::blocks_to_rows(&self.soa, self.dim, &mut rows);
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
    /// EM iterations per control step, as configured (the schedule may change it per step,
    /// see [`Planner::iterations_at`]).
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

fn ctx_of<'a>(
    state: Option<&'a [f64]>,
    step: u64,
    iteration: u64,
    iterations: u64,
    spread: Option<&'a [f64]>,
) -> Context<'a> {
    Context {
        state,
        step,
        iteration,
        iterations,
        spread,
    }
}

/// `‖a − b‖₂`.
fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .fold(0.0, |acc, (x, y)| acc + (x - y) * (x - y))
        .sqrt()
}

/// Add the Williams control-cost term `γ μᵀΣ⁻¹ε_i` to the cost of every sample (rows `us`),
/// with `ε_i = U_i − μ` formed in one row of scratch (`eps`, `d` entries).
fn add_control_cost(
    proposal: &dyn Proposal,
    plan: &[f64],
    gamma: f64,
    us: &[f64],
    eps: &mut [f64],
    costs: &mut [f64],
) {
    for (c, u) in costs.iter_mut().zip(us.chunks_exact(eps.len())) {
        for ((ei, ui), pi) in eps.iter_mut().zip(u).zip(plan) {
            *ei = ui - pi;
        }
        *c += gamma * proposal.control_cost(plan, eps).unwrap_or(0.0);
    }
}
