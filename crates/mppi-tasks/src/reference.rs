//! Hand-fused reference kernels: the "speed of light" of one control step.
//!
//! Issue 4 asks that the library be within 1.25x of "a fused, hand-written reference kernel of
//! the same math and the same random numbers" on every benchmark problem. This module is that
//! reference. For each benchmark problem ([`ReferenceProblem`]) there is one plain function
//! that does what one [`mppi::Controller::act`] call does with the task's default config
//! (fixed-covariance Gaussian family, fixed temperature, one EM iteration):
//!
//! 1. warm start: shift the plan one row left (the last row per `shift_fill`);
//! 2. per block of [`BLOCK_LANES`] samples: draw the block's standard normals with
//!    [`mppi::rng::BlockRng::normal_rows`] (the library's generator, so the random numbers are
//!    the same) straight into the block's slice of the sample buffer, then one loop over the
//!    horizon; at step `t`, with the lanes innermost: scale, shift and clamp the controls (in
//!    `f64`, in place, and into a local array in the rollout's type), then one pass that
//!    computes the running cost of `(x_t, u_t)` and steps the dynamics, the state kept in local
//!    arrays, then add the costs to the `f64` sums (separate loops, so that an `f32` rollout
//!    loop touches only `f32` data and runs 8 lanes per AVX2 vector);
//! 3. weights `w_i ∝ exp(−(J_i − J_min)/λ)` over the finite costs;
//! 4. M-step `μ ← clamp(Σ_i w_i U_i)`, summed over `i = 0..K` in order, read straight from the
//!    block layout.
//!
//! Nothing is called through a pointer: the model's constants and
//! obstacles are baked into the loop (the inflated radii squared once), the clamped controls
//! are computed once and shared by the cost and the dynamics, `sin_cos(θ)` is computed once per
//! sample-step where the cost and the dynamics both need it, there is no intermediate state or
//! control buffer besides the stored samples the M-step needs, and the step allocates nothing.
//! The diff-drive costmap is read through the task's own [`Costmap::lookup_block`]: its table
//! layout is part of the task's math, not of the library's overhead.
//!
//! # Why this is the fair comparison
//! The kernels perform *the same floating-point operations in the same order* as the library
//! (the task's expressions are copied or called, the M-step sums in sample order), so
//! [`ReferenceKernel::step`] returns a plan bit-identical to the library's (checked by
//! `tests/reference.rs`). What they leave out is only what the library's generality costs:
//! trait objects and per-step calls into `Dynamics` / `Cost`, the structure-of-arrays ↔
//! row-major transposition of the samples, separate passes over the lanes for sampling, cost
//! and dynamics (and the work they cannot share), the diagnostics of the E-step (ESS, `L̂`,
//! mean cost) and of the M-step (update norm). The ratio `library / reference` on the same
//! machine is therefore how much the abstraction costs.
//!
//! Each kernel is written once, generic over [`Real`]: with the config's `precision = "f32"`
//! the rollout (state, clamped controls, running cost) is `f32` exactly as in the library's
//! float32 rollouts, while the samples, the per-trajectory cost sums, the weights and the M-step
//! stay `f64`; the plans are bit-identical in both precisions.
//!
//! The kernels are single-threaded.
//!
//! ```
//! use mppi_tasks::reference::{ReferenceKernel, ReferenceProblem};
//! use mppi_tasks::{controller, task_by_name};
//! let task = task_by_name("pendulum").unwrap();
//! let config = mppi::MppiConfig { samples: 64, horizon: 10, ..task.default_config() };
//! let mut reference = ReferenceKernel::new(ReferenceProblem::Pendulum, &config).unwrap();
//! let mut library = controller(task.as_ref(), &config).unwrap();
//! let x = task.initial_state();
//! library.act(&x).unwrap();
//! assert_eq!(reference.step(&x), library.plan());
//! ```

use mppi::fastmath::Real;
use mppi::gaussian::GaussianNoise;
use mppi::rng::BlockRng;
use mppi::{
    BLOCK_LANES, MppiConfig, MppiError, Normals, Precision, ProposalKind, ScheduleConfig,
    ShiftFill, TemperatureConfig,
};

use crate::geometry::{Costmap, LETHAL};
use crate::navigation::{goal_cost, with_collision};
use crate::{Circle, diff_drive, double_integrator, pendulum, unicycle};

/// A benchmark problem with a hand-fused reference kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReferenceProblem {
    /// [`crate::pendulum`]: gymnasium Pendulum-v1 (`n = 2`, `m = 1`).
    Pendulum,
    /// [`crate::double_integrator`]: planar point mass among 6 discs (`n = 4`, `m = 2`).
    DoubleIntegrator,
    /// [`crate::unicycle`]: unicycle among 6 discs (`n = 4`, `m = 2`).
    Unicycle,
    /// [`crate::diff_drive`]: differential drive through a costmap (`n = 3`, `m = 2`).
    DiffDrive,
}

impl ReferenceProblem {
    /// Every problem, in the order `mppi bench` lists them.
    pub const ALL: [ReferenceProblem; 4] = [
        ReferenceProblem::Pendulum,
        ReferenceProblem::DoubleIntegrator,
        ReferenceProblem::Unicycle,
        ReferenceProblem::DiffDrive,
    ];

    /// The problem of the built-in task called `name` (`mppi tasks`), if it has a kernel.
    #[must_use]
    pub fn from_task_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.task_name() == name)
    }

    /// The name of the built-in task this kernel reproduces.
    #[must_use]
    pub fn task_name(self) -> &'static str {
        match self {
            ReferenceProblem::Pendulum => "pendulum",
            ReferenceProblem::DoubleIntegrator => "double_integrator",
            ReferenceProblem::Unicycle => "unicycle",
            ReferenceProblem::DiffDrive => "diff_drive",
        }
    }

    /// State dimension `n`.
    #[must_use]
    pub fn state_dim(self) -> usize {
        match self {
            ReferenceProblem::Pendulum => 2,
            ReferenceProblem::DiffDrive => 3,
            ReferenceProblem::DoubleIntegrator | ReferenceProblem::Unicycle => 4,
        }
    }

    /// Control dimension `m`.
    #[must_use]
    pub fn control_dim(self) -> usize {
        match self {
            ReferenceProblem::Pendulum => 1,
            _ => 2,
        }
    }
}

/// A disc inflated by the cost's safety margin: center and squared radius.
#[derive(Debug, Clone, Copy)]
struct Disc {
    x: f64,
    y: f64,
    /// `(r + margin)²`, the value `inside_inflated` compares against.
    r2: f64,
}

/// Number of obstacles of the double-integrator scene.
const DI_DISCS: usize = double_integrator::OBSTACLES.len();
/// Number of obstacles of the unicycle scene.
const UNICYCLE_DISCS: usize = unicycle::OBSTACLES.len();

fn inflate<const N: usize>(circles: &[Circle; N], margin: f64) -> [Disc; N] {
    circles.map(|c| {
        let r = c.r + margin;
        Disc {
            x: c.x,
            y: c.y,
            r2: r * r,
        }
    })
}

/// The model data a kernel bakes in.
#[derive(Debug, Clone)]
enum Model {
    Pendulum,
    DoubleIntegrator {
        goal: (f64, f64),
        discs: [Disc; DI_DISCS],
    },
    Unicycle {
        goal: (f64, f64),
        discs: [Disc; UNICYCLE_DISCS],
    },
    DiffDrive {
        goal: (f64, f64),
        map: Costmap,
    },
}

/// The sampling distribution and rollout settings, fixed for the kernel's life.
#[derive(Debug, Clone)]
struct Settings {
    seed: u64,
    /// The standard-normal generator, as the library's `normals`.
    normals: Normals,
    m: usize,
    /// `T · m`.
    dim: usize,
    /// Per control dimension: `√Σ_jj`, the diagonal Cholesky factor the library multiplies by.
    scale: Vec<f64>,
    u_min: Vec<f64>,
    u_max: Vec<f64>,
    discount: f64,
}

impl Settings {
    /// `(scale, lo, hi)` of control dimension `j`.
    #[inline(always)]
    fn dim_params(&self, j: usize) -> (f64, f64, f64) {
        (self.scale[j], self.u_min[j], self.u_max[j])
    }
}

/// One control step of a benchmark problem, hand-fused, with its workspace.
///
/// Built once (everything is allocated here); [`ReferenceKernel::step`] allocates nothing.
#[derive(Debug, Clone)]
pub struct ReferenceKernel {
    problem: ReferenceProblem,
    model: Model,
    settings: Settings,
    iterations: usize,
    lambda: f64,
    shift_fill: ShiftFill,
    /// Arithmetic of the rollouts, as the library's `precision`.
    precision: Precision,
    /// The plan row of a fresh (or zero-filled) distribution: `0` clamped into the bounds.
    zero_row: Vec<f64>,
    /// The plan `μ` (`T · m`).
    plan: Vec<f64>,
    /// M-step accumulator (`T · m`).
    acc: Vec<f64>,
    /// The samples of the current iteration, per block of [`BLOCK_LANES`] in
    /// structure-of-arrays layout: entry `i` of lane `l` of block `b` at
    /// `b · BLOCK_LANES · T·m + i · lanes_b + l`.
    samples: Vec<f64>,
    /// Trajectory costs `J_i`.
    costs: Vec<f64>,
    /// Unnormalized weights `exp(−(J_i − J_min)/λ)`.
    weights: Vec<f64>,
    step: u64,
    started: bool,
}

fn unsupported(field: &'static str, reason: &str) -> MppiError {
    MppiError::InvalidConfig {
        field,
        reason: format!("{reason} (the reference kernels implement the default MPPI settings)"),
    }
}

impl ReferenceKernel {
    /// The kernel of `problem` with `config` (usually the task's default config with `samples`
    /// and `horizon` changed).
    ///
    /// `threads` and `diagnostics` are ignored (the kernel is single-threaded and computes no
    /// diagnostics; neither changes the plan). Errors if `config` is invalid, or asks for
    /// something the kernels do not implement: a family other than `gaussian`, a non-diagonal
    /// covariance, a temperature mode other than `fixed`, elites, a control-cost term, or a
    /// step other than plain EM (`step_size = 1`, no momentum).
    pub fn new(problem: ReferenceProblem, config: &MppiConfig) -> Result<Self, MppiError> {
        let m = problem.control_dim();
        config.validate(m)?;
        if config.proposal.kind != ProposalKind::Gaussian {
            return Err(unsupported(
                "proposal.kind",
                "only `gaussian` is implemented",
            ));
        }
        let TemperatureConfig::Fixed { lambda } = config.weighting.temperature else {
            return Err(unsupported(
                "weighting.temperature",
                "only `fixed` is implemented",
            ));
        };
        if !matches!(config.schedule, ScheduleConfig::Constant) {
            return Err(unsupported(
                "schedule",
                "only the constant schedule is implemented",
            ));
        }
        if config.weighting.elites.is_some() {
            return Err(unsupported(
                "weighting.elites",
                "elite truncation is not implemented",
            ));
        }
        if config.weighting.control_cost_gamma != 0.0 {
            return Err(unsupported(
                "weighting.control_cost_gamma",
                "the control-cost term is not implemented",
            ));
        }
        if config.update.step_size != 1.0 || config.update.momentum != 0.0 {
            return Err(unsupported(
                "update.step_size",
                "only the plain EM step (step_size = 1, no momentum) is implemented",
            ));
        }
        // the per-step covariance exactly as the library builds it, and its Cholesky factor
        let covariance = config.proposal.covariance(m)?;
        if (0..m).any(|i| (0..m).any(|j| i != j && covariance[i * m + j] != 0.0)) {
            return Err(unsupported(
                "noise_covariance",
                "only a diagonal covariance is implemented",
            ));
        }
        let noise = GaussianNoise::new(m, &covariance)?;
        let scale: Vec<f64> = (0..m).map(|j| noise.cholesky()[j * m + j]).collect();
        let bound = |b: &Option<Vec<f64>>, default: f64| -> Vec<f64> {
            match b {
                Some(v) if v.len() == 1 => vec![v[0]; m],
                Some(v) => v.clone(),
                None => vec![default; m],
            }
        };
        let u_min = bound(&config.u_min, f64::NEG_INFINITY);
        let u_max = bound(&config.u_max, f64::INFINITY);
        let zero_row: Vec<f64> = u_min
            .iter()
            .zip(&u_max)
            .map(|(lo, hi)| 0.0f64.clamp(*lo, *hi))
            .collect();

        let model = match problem {
            ReferenceProblem::Pendulum => Model::Pendulum,
            ReferenceProblem::DoubleIntegrator => Model::DoubleIntegrator {
                goal: double_integrator::GOAL,
                discs: inflate(&double_integrator::OBSTACLES, double_integrator::MARGIN),
            },
            ReferenceProblem::Unicycle => Model::Unicycle {
                goal: unicycle::GOAL,
                discs: inflate(&unicycle::OBSTACLES, unicycle::MARGIN),
            },
            ReferenceProblem::DiffDrive => {
                let model = diff_drive::DiffDriveModel::default();
                Model::DiffDrive {
                    goal: model.goal,
                    map: model.costmap,
                }
            }
        };
        let (k, horizon) = (config.samples, config.horizon);
        let dim = horizon * m;
        let mut kernel = ReferenceKernel {
            problem,
            model,
            settings: Settings {
                seed: config.seed,
                normals: config.normals,
                m,
                dim,
                scale,
                u_min,
                u_max,
                discount: config.discount,
            },
            iterations: config.iterations,
            lambda,
            shift_fill: config.shift_fill,
            precision: config.precision,
            zero_row,
            plan: vec![0.0; dim],
            acc: vec![0.0; dim],
            samples: vec![0.0; k * dim],
            costs: vec![0.0; k],
            weights: vec![0.0; k],
            step: 0,
            started: false,
        };
        kernel.reset();
        Ok(kernel)
    }

    /// The problem this kernel solves.
    #[must_use]
    pub fn problem(&self) -> ReferenceProblem {
        self.problem
    }

    /// Forget the plan and the step counter (as [`mppi::Controller::reset`]).
    pub fn reset(&mut self) {
        for row in self.plan.chunks_exact_mut(self.settings.m) {
            row.copy_from_slice(&self.zero_row);
        }
        self.step = 0;
        self.started = false;
    }

    /// One control step from state `x`, as [`mppi::Controller::act`]: shift the plan (from the
    /// second call on), run the EM iterations with this call's step index, and return the new
    /// plan (`T · m`; its first row is the control to apply).
    ///
    /// # Panics
    /// If `x` does not have the problem's state dimension.
    pub fn step(&mut self, x: &[f64]) -> &[f64] {
        assert_eq!(x.len(), self.problem.state_dim(), "state dimension");
        if self.started {
            let m = self.settings.m;
            self.plan.copy_within(m.., 0);
            if self.shift_fill == ShiftFill::Zero {
                let n = self.plan.len();
                self.plan[n - m..].copy_from_slice(&self.zero_row);
            }
        }
        self.started = true;
        for iteration in 0..self.iterations as u64 {
            self.iterate(x, iteration);
        }
        self.step += 1;
        &self.plan
    }

    /// The current plan (`T · m`).
    #[must_use]
    pub fn plan(&self) -> &[f64] {
        &self.plan
    }

    /// The trajectory costs of the last iteration, in sample order.
    #[must_use]
    pub fn costs(&self) -> &[f64] {
        &self.costs
    }

    /// Fused sampling and rollouts of every block, the rollouts in `R` (`f64` or `f32`).
    fn rollouts<R: Real>(&mut self, x: &[f64], iteration: u64) {
        let (s, plan, step) = (&self.settings, &self.plan[..], self.step);
        let (samples, costs) = (&mut self.samples[..], &mut self.costs[..]);
        match &self.model {
            Model::Pendulum => {
                rollouts_pendulum::<R>(s, plan, x, step, iteration, samples, costs);
            }
            Model::DoubleIntegrator { goal, discs } => rollouts_double_integrator::<R>(
                s, *goal, discs, plan, x, step, iteration, samples, costs,
            ),
            Model::Unicycle { goal, discs } => {
                rollouts_unicycle::<R>(s, *goal, discs, plan, x, step, iteration, samples, costs);
            }
            Model::DiffDrive { goal, map } => {
                rollouts_diff_drive::<R>(s, *goal, map, plan, x, step, iteration, samples, costs);
            }
        }
    }

    /// One EM iteration: fused sampling + rollouts, weights, M-step.
    fn iterate(&mut self, x: &[f64], iteration: u64) {
        match self.precision {
            Precision::F64 => self.rollouts::<f64>(x, iteration),
            Precision::F32 => self.rollouts::<f32>(x, iteration),
        }

        // E-step (crate::weights with a fixed λ): exponentials over the finite costs
        let mut min_cost = f64::INFINITY;
        for &j in &self.costs {
            if j.is_finite() && j < min_cost {
                min_cost = j;
            }
        }
        if min_cost == f64::INFINITY {
            return; // no finite cost: keep the plan
        }
        let inv = 1.0 / self.lambda;
        let mut total = 0.0;
        for (e, &j) in self.weights.iter_mut().zip(&self.costs) {
            *e = if j.is_finite() {
                (-(j - min_cost) * inv).exp()
            } else {
                0.0
            };
            total += *e;
        }
        let normalize = 1.0 / total;

        // M-step: Σ_i w_i U_i, then the projection into the control box
        weighted_sum_soa(
            &self.samples,
            &self.weights,
            normalize,
            self.settings.dim,
            &mut self.acc,
        );
        if self.acc.iter().all(|v| v.is_finite()) {
            let (lo, hi) = (&self.settings.u_min, &self.settings.u_max);
            for (row, acc) in self
                .plan
                .chunks_exact_mut(self.settings.m)
                .zip(self.acc.chunks_exact(self.settings.m))
            {
                for j in 0..row.len() {
                    row[j] = acc[j].clamp(lo[j], hi[j]);
                }
            }
        }
    }
}

/// `acc = Σ_i (e_i · normalize) U_i` over the samples stored block by block in SoA layout.
///
/// Each coordinate sums `i = 0, 1, …` in order from `0.0`, as the library's row-major
/// `weighted_sum` does, so the result is bit-identical. Four coordinates are accumulated
/// together (four independent addition chains, each reading a contiguous row of the block).
/// Zero weights are not skipped: `0 · u` is `±0` for a finite sample and leaves a sum that
/// started at `+0` unchanged, exactly as skipping it would.
fn weighted_sum_soa(samples: &[f64], e: &[f64], normalize: f64, dim: usize, acc: &mut [f64]) {
    const GROUP: usize = 4;
    acc.fill(0.0);
    for (block, eb) in samples.chunks(BLOCK_LANES * dim).zip(e.chunks(BLOCK_LANES)) {
        let lanes = eb.len();
        let mut w = [0.0; BLOCK_LANES];
        for (wl, el) in w.iter_mut().zip(eb) {
            *wl = el * normalize;
        }
        let w = &w[..lanes];
        let row = |i: usize| &block[i * lanes..][..lanes];
        let mut groups = acc.chunks_exact_mut(GROUP);
        for (g, a) in (&mut groups).enumerate() {
            let rows: [&[f64]; GROUP] = std::array::from_fn(|k| row(g * GROUP + k));
            let mut sums: [f64; GROUP] = std::array::from_fn(|k| a[k]);
            for l in 0..lanes {
                for k in 0..GROUP {
                    sums[k] += w[l] * rows[k][l];
                }
            }
            a.copy_from_slice(&sums);
        }
        let first = dim / GROUP * GROUP;
        for (i, a) in groups.into_remainder().iter_mut().enumerate() {
            let r = row(first + i);
            for l in 0..lanes {
                *a += w[l] * r[l];
            }
        }
    }
}

/// Blocks of the sample buffer and the cost buffer, with their index and lane count.
fn blocks<'a>(
    samples: &'a mut [f64],
    costs: &'a mut [f64],
    dim: usize,
) -> impl Iterator<Item = (usize, &'a mut [f64], &'a mut [f64])> {
    samples
        .chunks_mut(BLOCK_LANES * dim)
        .zip(costs.chunks_mut(BLOCK_LANES))
        .enumerate()
        .map(|(b, (block, costs))| (b, block, costs))
}

/// A control from its standard normal `z`: `clamp(z · scale + μ)` (the library's
/// `ε = L z`, `u = clamp(ε + μ)` for a diagonal `L`).
#[inline(always)]
fn control(z: f64, (scale, lo, hi): (f64, f64, f64), mu: f64) -> f64 {
    (z * scale + mu).clamp(lo, hi)
}

/// The controls of one step of a 2-D block from their standard normals, in place
/// ([`control`]), and the same controls in the rollout's type `R`. A loop of its own: the `f64`
/// samples would otherwise set the vector width of an `f32` rollout loop to four lanes.
#[inline(always)]
fn controls2<R: Real>(
    u0: &mut [f64],
    u1: &mut [f64],
    (p0, mu0): ((f64, f64, f64), f64),
    (p1, mu1): ((f64, f64, f64), f64),
) -> ([R; BLOCK_LANES], [R; BLOCK_LANES]) {
    let (mut r0, mut r1) = ([R::c(0.0); BLOCK_LANES], [R::c(0.0); BLOCK_LANES]);
    for l in 0..u0.len().min(u1.len()).min(BLOCK_LANES) {
        u0[l] = control(u0[l], p0, mu0);
        u1[l] = control(u1[l], p1, mu1);
        r0[l] = R::c(u0[l]);
        r1[l] = R::c(u1[l]);
    }
    (r0, r1)
}

/// `acc[l] += disc · c[l]`, the running costs of one step added to the `f64` sums.
#[inline(always)]
fn accumulate<R: Real>(acc: &mut [f64], c: &[R; BLOCK_LANES], disc: f64) {
    for (a, cl) in acc.iter_mut().zip(c) {
        *a += disc * cl.to_f64();
    }
}

/// Pendulum-v1 (see [`crate::pendulum`]): every block of samples, fused, the rollout in `R`.
fn rollouts_pendulum<R: Real>(
    s: &Settings,
    plan: &[f64],
    x0: &[f64],
    step: u64,
    iteration: u64,
    samples: &mut [f64],
    costs: &mut [f64],
) {
    use pendulum::{DT, G, L, M, MAX_SPEED, MAX_TORQUE};
    let p0 = s.dim_params(0);
    for (b, block, cost) in blocks(samples, costs, s.dim) {
        let lanes = cost.len();
        let mut rng =
            BlockRng::new(s.seed, step, iteration, b * BLOCK_LANES, lanes).with_normals(s.normals);
        rng.normal_rows(block);
        let mut th = [R::c(x0[0]); BLOCK_LANES];
        let mut thd = [R::c(x0[1]); BLOCK_LANES];
        let mut acc = [0.0; BLOCK_LANES];
        let (th, thd, acc) = (&mut th[..lanes], &mut thd[..lanes], &mut acc[..lanes]);
        let mut disc = 1.0;
        for (t, u) in block.chunks_exact_mut(lanes).enumerate() {
            let mu = plan[t];
            let mut ur = [R::c(0.0); BLOCK_LANES];
            for l in 0..lanes {
                u[l] = control(u[l], p0, mu);
                ur[l] = R::c(u[l]);
            }
            let mut c = [R::c(0.0); BLOCK_LANES];
            for l in 0..lanes {
                let uc = ur[l].clamp(R::c(-MAX_TORQUE), R::c(MAX_TORQUE));
                // running cost of (x_t, u_t)
                let a = th[l].wrap_angle();
                c[l] = a * a + R::c(0.1) * thd[l] * thd[l] + R::c(0.001) * uc * uc;
                // x_{t+1}
                let v = (thd[l]
                    + (R::c(3.0 * G / (2.0 * L)) * th[l].sin() + R::c(3.0 / (M * L * L)) * uc)
                        * R::c(DT))
                .clamp(R::c(-MAX_SPEED), R::c(MAX_SPEED));
                th[l] += v * R::c(DT);
                thd[l] = v;
            }
            accumulate(acc, &c, disc);
            disc *= s.discount;
        }
        // the terminal cost is 0 (adding disc · 0 to a sum that starts at +0 changes nothing)
        cost.copy_from_slice(acc);
    }
}

/// Collision indicator of `(px, py)` against the inflated discs (`crate::navigation`'s
/// `in_collision`, over a fixed number of discs so that it unrolls), in `R`.
#[inline(always)]
fn hits<R: Real, const N: usize>(discs: &[Disc; N], px: R, py: R) -> bool {
    let mut hit = false;
    for d in discs {
        let (dx, dy) = (px - R::c(d.x), py - R::c(d.y));
        hit |= dx * dx + dy * dy < R::c(d.r2);
    }
    hit
}

/// The double integrator (see [`crate::double_integrator`]): every block of samples, fused,
/// the rollout in `R`.
fn rollouts_double_integrator<R: Real>(
    s: &Settings,
    goal: (f64, f64),
    discs: &[Disc; DI_DISCS],
    plan: &[f64],
    x0: &[f64],
    step: u64,
    iteration: u64,
    samples: &mut [f64],
    costs: &mut [f64],
) {
    use double_integrator::{A_MAX, DT, W_COLLISION, W_CTRL, W_GOAL, W_VEL};
    let (p0, p1) = (s.dim_params(0), s.dim_params(1));
    let dt = R::c(DT);
    for (b, block, cost) in blocks(samples, costs, s.dim) {
        let lanes = cost.len();
        let mut rng =
            BlockRng::new(s.seed, step, iteration, b * BLOCK_LANES, lanes).with_normals(s.normals);
        rng.normal_rows(block);
        let mut px = [R::c(x0[0]); BLOCK_LANES];
        let mut py = [R::c(x0[1]); BLOCK_LANES];
        let mut vx = [R::c(x0[2]); BLOCK_LANES];
        let mut vy = [R::c(x0[3]); BLOCK_LANES];
        let mut acc = [0.0; BLOCK_LANES];
        let (px, py) = (&mut px[..lanes], &mut py[..lanes]);
        let (vx, vy, acc) = (&mut vx[..lanes], &mut vy[..lanes], &mut acc[..lanes]);
        let mut disc = 1.0;
        for (t, u) in block.chunks_exact_mut(2 * lanes).enumerate() {
            let (u0, u1) = u.split_at_mut(lanes);
            let (mu0, mu1) = (plan[2 * t], plan[2 * t + 1]);
            let (ux, uy) = controls2::<R>(u0, u1, (p0, mu0), (p1, mu1));
            let mut c = [R::c(0.0); BLOCK_LANES];
            for l in 0..lanes {
                let ax = ux[l].clamp(R::c(-A_MAX), R::c(A_MAX));
                let ay = uy[l].clamp(R::c(-A_MAX), R::c(A_MAX));
                // running cost of (x_t, u_t)
                let hit = hits(discs, px[l], py[l]);
                let base = goal_cost(
                    goal,
                    px[l],
                    py[l],
                    vx[l] * vx[l] + vy[l] * vy[l],
                    W_GOAL,
                    W_VEL,
                ) + R::c(W_CTRL) * (ax * ax + ay * ay);
                c[l] = with_collision(base, hit, W_COLLISION);
                // x_{t+1}
                px[l] = px[l] + vx[l] * dt + R::c(0.5) * ax * dt * dt;
                py[l] = py[l] + vy[l] * dt + R::c(0.5) * ay * dt * dt;
                vx[l] += ax * dt;
                vy[l] += ay * dt;
            }
            accumulate(acc, &c, disc);
            disc *= s.discount;
        }
        cost.copy_from_slice(acc);
    }
}

/// The unicycle (see [`crate::unicycle`]): every block of samples, fused, the rollout in `R`.
fn rollouts_unicycle<R: Real>(
    s: &Settings,
    goal: (f64, f64),
    discs: &[Disc; UNICYCLE_DISCS],
    plan: &[f64],
    x0: &[f64],
    step: u64,
    iteration: u64,
    samples: &mut [f64],
    costs: &mut [f64],
) {
    use unicycle::{A_MAX, DT, OMEGA_MAX, V_MAX, V_MIN, W_ACC, W_COLLISION, W_GOAL, W_TURN, W_VEL};
    let (p0, p1) = (s.dim_params(0), s.dim_params(1));
    let dt = R::c(DT);
    for (b, block, cost) in blocks(samples, costs, s.dim) {
        let lanes = cost.len();
        let mut rng =
            BlockRng::new(s.seed, step, iteration, b * BLOCK_LANES, lanes).with_normals(s.normals);
        rng.normal_rows(block);
        let mut px = [R::c(x0[0]); BLOCK_LANES];
        let mut py = [R::c(x0[1]); BLOCK_LANES];
        let mut th = [R::c(x0[2]); BLOCK_LANES];
        let mut v = [R::c(x0[3]); BLOCK_LANES];
        let mut acc = [0.0; BLOCK_LANES];
        let (px, py) = (&mut px[..lanes], &mut py[..lanes]);
        let (th, v, acc) = (&mut th[..lanes], &mut v[..lanes], &mut acc[..lanes]);
        let mut disc = 1.0;
        for (t, u) in block.chunks_exact_mut(2 * lanes).enumerate() {
            let (u0, u1) = u.split_at_mut(lanes);
            let (mu0, mu1) = (plan[2 * t], plan[2 * t + 1]);
            let (ua, uw) = controls2::<R>(u0, u1, (p0, mu0), (p1, mu1));
            let mut c = [R::c(0.0); BLOCK_LANES];
            for l in 0..lanes {
                let a = ua[l].clamp(R::c(-A_MAX), R::c(A_MAX));
                let w = uw[l].clamp(R::c(-OMEGA_MAX), R::c(OMEGA_MAX));
                // running cost of (x_t, u_t)
                let hit = hits(discs, px[l], py[l]);
                let base = goal_cost(goal, px[l], py[l], v[l] * v[l], W_GOAL, W_VEL)
                    + R::c(W_ACC) * a * a
                    + R::c(W_TURN) * w * w;
                c[l] = with_collision(base, hit, W_COLLISION);
                // x_{t+1}
                let (sn, cs) = th[l].sin_cos();
                px[l] += v[l] * cs * dt;
                py[l] += v[l] * sn * dt;
                th[l] += w * dt;
                v[l] = (v[l] + a * dt).clamp(R::c(V_MIN), R::c(V_MAX));
            }
            accumulate(acc, &c, disc);
            disc *= s.discount;
        }
        cost.copy_from_slice(acc);
    }
}

/// The differential drive through its costmap (see [`crate::diff_drive`]): every block of
/// samples, fused, the rollout in `R`. `sin_cos(θ)` serves both the heading cost and the
/// dynamics.
fn rollouts_diff_drive<R: Real>(
    s: &Settings,
    goal: (f64, f64),
    map: &Costmap,
    plan: &[f64],
    x0: &[f64],
    step: u64,
    iteration: u64,
    samples: &mut [f64],
    costs: &mut [f64],
) {
    use diff_drive::{
        DT, OMEGA_MAX, V_MAX, V_MIN, W_CTRL, W_GOAL, W_HEADING, W_INFLATION, W_LETHAL,
    };
    let (p0, p1) = (s.dim_params(0), s.dim_params(1));
    let (gx, gy, dt) = (R::c(goal.0), R::c(goal.1), R::c(DT));
    for (b, block, cost) in blocks(samples, costs, s.dim) {
        let lanes = cost.len();
        let mut rng =
            BlockRng::new(s.seed, step, iteration, b * BLOCK_LANES, lanes).with_normals(s.normals);
        rng.normal_rows(block);
        let mut px = [R::c(x0[0]); BLOCK_LANES];
        let mut py = [R::c(x0[1]); BLOCK_LANES];
        let mut th = [R::c(x0[2]); BLOCK_LANES];
        let mut map_values = [R::c(0.0); BLOCK_LANES];
        let mut acc = [0.0; BLOCK_LANES];
        let (px, py, th) = (&mut px[..lanes], &mut py[..lanes], &mut th[..lanes]);
        let (map_values, acc) = (&mut map_values[..lanes], &mut acc[..lanes]);
        let mut disc = 1.0;
        for (t, u) in block.chunks_exact_mut(2 * lanes).enumerate() {
            let (u0, u1) = u.split_at_mut(lanes);
            let (mu0, mu1) = (plan[2 * t], plan[2 * t + 1]);
            // the task's costmap lookup first, lanes at once (its table reads are the only
            // scalar part), then the arithmetic, lanes innermost
            map.lookup_block(px, py, map_values);
            let (uv, uw) = controls2::<R>(u0, u1, (p0, mu0), (p1, mu1));
            let mut c = [R::c(0.0); BLOCK_LANES];
            for l in 0..lanes {
                let vc = uv[l].clamp(R::c(V_MIN), R::c(V_MAX));
                let wc = uw[l].clamp(R::c(-OMEGA_MAX), R::c(OMEGA_MAX));
                let (sn, cs) = th[l].sin_cos();
                // running cost of (x_t, u_t)
                let (dx, dy) = (gx - px[l], gy - py[l]);
                let d = (dx * dx + dy * dy).sqrt();
                let along = cs * dx + sn * dy;
                let heading = if d < R::c(1.0) {
                    d - along
                } else {
                    R::c(1.0) - along / d
                };
                let mv = map_values[l];
                let map_cost = if mv >= R::c(LETHAL) {
                    R::c(W_LETHAL)
                } else {
                    R::c(W_INFLATION) * mv
                };
                c[l] = R::c(W_GOAL) * d
                    + R::c(W_HEADING) * heading
                    + map_cost
                    + R::c(W_CTRL) * (vc * vc + wc * wc);
                // x_{t+1}
                px[l] += vc * cs * dt;
                py[l] += vc * sn * dt;
                th[l] += wc * dt;
            }
            accumulate(acc, &c, disc);
            disc *= s.discount;
        }
        cost.copy_from_slice(acc);
    }
}
