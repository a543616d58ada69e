//! The objective layer: what a sample costs.
//!
//! Two ways to describe a problem:
//! - [`Dynamics`] + [`Cost`] (+ discount), turned into batched trajectory costs by
//!   [`RolloutObjective`]:
//!   `J(U; x₀) = Σ_{t<T} γᵗ c(x_t, u_t, t) + γᵀ φ(x_T)`, `x_{t+1} = F(x_t, u_t)`;
//! - any black-box [`Objective`] over a decision vector, e.g. [`FnObjective`] around a closure.
//!
//! # Lane blocks
//! Rollouts run over *blocks* of up to [`BLOCK_LANES`] samples at once, in structure-of-arrays
//! layout: entry `i` of lane `l` lives at `buf[i * lanes + l]`. The inner loop of a
//! block method therefore runs across samples, which is what lets dynamics and costs vectorize.
//! Implementing the scalar [`Dynamics::step`] and [`Cost::running`] is enough; override the
//! `*_block` methods for speed.
//!
//! # Float32 rollouts
//! Under [`Precision::F32`] a [`RolloutObjective`] keeps the block's states, controls and
//! running costs in `f32` and calls the `*_block_f32` methods. Their defaults compute each lane
//! with the scalar `f64` methods and round the result to `f32`, so every model runs in either
//! precision; a model gets the speed of `f32` (8 lanes per AVX2 vector instead of 4) by
//! overriding them, usually with one kernel generic over [`crate::fastmath::Real`] that the
//! `f64` and `f32` block methods both call.

use crate::config::Precision;
use crate::error::{MppiError, check_finite, check_len};

/// Number of samples rolled out together in one structure-of-arrays block.
pub const BLOCK_LANES: usize = 32;

/// The `N` rows of a structure-of-arrays block (`N · lanes` entries), each exactly `lanes`
/// long. Block kernels index every row by a lane `l < lanes`; with the lengths known, the
/// compiler drops the bounds checks and vectorizes the loop over lanes.
///
/// ```
/// use mppi::objective::soa_rows;
/// let [px, py] = soa_rows(&[1.0, 2.0, 3.0, 4.0], 2);
/// assert_eq!((px, py), (&[1.0, 2.0][..], &[3.0, 4.0][..]));
/// ```
///
/// # Panics
/// If `buf` has fewer than `N · lanes` entries.
#[inline(always)]
#[must_use]
pub fn soa_rows<const N: usize, T>(buf: &[T], lanes: usize) -> [&[T]; N] {
    std::array::from_fn(|i| &buf[i * lanes..][..lanes])
}

/// [`soa_rows`] for writing: the `N` rows of a block, each exactly `lanes` long.
///
/// ```
/// use mppi::objective::soa_rows_mut;
/// let mut buf = [0.0; 4];
/// let [a, b] = soa_rows_mut(&mut buf, 2);
/// a[1] = 1.0;
/// b[0] = 2.0;
/// assert_eq!(buf, [0.0, 1.0, 2.0, 0.0]);
/// ```
///
/// # Panics
/// If `buf` has fewer than `N · lanes` entries.
#[inline(always)]
#[must_use]
pub fn soa_rows_mut<const N: usize, T>(buf: &mut [T], lanes: usize) -> [&mut [T]; N] {
    let mut rest = buf;
    std::array::from_fn(|_| {
        let (row, tail) = std::mem::take(&mut rest).split_at_mut(lanes);
        rest = tail;
        row
    })
}

/// Discrete-time dynamics `x_{t+1} = F(x_t, u_t)`.
///
/// ```
/// use mppi::Dynamics;
/// struct Integrator;
/// impl Dynamics for Integrator {
///     fn state_dim(&self) -> usize { 1 }
///     fn control_dim(&self) -> usize { 1 }
///     fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) { next[0] = x[0] + 0.1 * u[0]; }
/// }
/// let mut next = [0.0];
/// Integrator.step(&[1.0], &[2.0], &mut next);
/// assert!((next[0] - 1.2).abs() < 1e-15);
/// ```
pub trait Dynamics: Send + Sync {
    /// Dimension `n` of the state.
    fn state_dim(&self) -> usize;
    /// Dimension `m` of the control.
    fn control_dim(&self) -> usize;
    /// One step: write `F(x, u)` into `next`. Slices have lengths `n`, `m`, `n`.
    fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]);

    /// How much work one step is, in units of a small hand-written ODE step (tens of
    /// nanoseconds). With `threads > 1` the planner keeps problems whose `K · T` times this is
    /// below [`crate::split::MIN_WORK`] on the calling thread without measuring the pool; a
    /// physics engine's step, hundreds of times dearer, says so here so that a few dozen
    /// samples are still measured. The default is 1. It changes only where rollouts run,
    /// never their results.
    fn work_per_step(&self) -> f64 {
        1.0
    }

    /// One step for a block of `lanes` samples in SoA layout (`x[i * lanes + l]`).
    ///
    /// `tmp` has at least `2n + m` entries of scratch. The default gathers each lane and calls
    /// [`Dynamics::step`]; override it so the loop over lanes is innermost.
    fn step_block(&self, lanes: usize, x: &[f64], u: &[f64], next: &mut [f64], tmp: &mut [f64]) {
        let (n, m) = (self.state_dim(), self.control_dim());
        let (xs, rest) = tmp.split_at_mut(n);
        let (us, rest) = rest.split_at_mut(m);
        let xn = &mut rest[..n];
        for l in 0..lanes {
            for i in 0..n {
                xs[i] = x[i * lanes + l];
            }
            for j in 0..m {
                us[j] = u[j * lanes + l];
            }
            self.step(xs, us, xn);
            for i in 0..n {
                next[i * lanes + l] = xn[i];
            }
        }
    }

    /// For a model that is also its own running cost: step the block into `next` and write the
    /// running cost `c(x_t, u_t, t)` of every lane into `cost`, in one pass that shares what both
    /// need (clamped controls, `sin`/`cos` of a heading). Returns `false` (the default) if this
    /// dynamics has no such pass. Only rollouts built with [`RolloutObjective::with_fused_cost`]
    /// call it; the cost it writes must equal the paired [`Cost::running_block`].
    #[allow(clippy::too_many_arguments)]
    fn step_and_cost_block(
        &self,
        _lanes: usize,
        _t: usize,
        _x: &[f64],
        _u: &[f64],
        _next: &mut [f64],
        _cost: &mut [f64],
        _tmp: &mut [f64],
    ) -> bool {
        false
    }

    /// [`Dynamics::step_block`] in single precision (float32 rollouts, [`Precision::F32`]).
    ///
    /// `tmp` has at least `2n + m` entries of `f64` scratch. The default computes each lane
    /// with [`Dynamics::step`] in `f64` and rounds the next state to `f32`.
    fn step_block_f32(
        &self,
        lanes: usize,
        x: &[f32],
        u: &[f32],
        next: &mut [f32],
        tmp: &mut [f64],
    ) {
        let (n, m) = (self.state_dim(), self.control_dim());
        let (xs, rest) = tmp.split_at_mut(n);
        let (us, rest) = rest.split_at_mut(m);
        let xn = &mut rest[..n];
        for l in 0..lanes {
            gather_lane(x, lanes, l, xs);
            gather_lane(u, lanes, l, us);
            self.step(xs, us, xn);
            for i in 0..n {
                next[i * lanes + l] = xn[i] as f32;
            }
        }
    }

    /// [`Dynamics::step_and_cost_block`] in single precision; `false` (the default) if the
    /// model has no such pass.
    #[allow(clippy::too_many_arguments)]
    fn step_and_cost_block_f32(
        &self,
        _lanes: usize,
        _t: usize,
        _x: &[f32],
        _u: &[f32],
        _next: &mut [f32],
        _cost: &mut [f32],
        _tmp: &mut [f64],
    ) -> bool {
        false
    }
}

/// Lane `l` of a block of `f32` rows (`src[i * lanes + l]`), widened into `out`.
#[inline]
fn gather_lane(src: &[f32], lanes: usize, l: usize, out: &mut [f64]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = f64::from(src[i * lanes + l]);
    }
}

/// Running cost `c(x, u, t)` and terminal cost `φ(x)`.
///
/// ```
/// use mppi::Cost;
/// struct Quadratic;
/// impl Cost for Quadratic {
///     fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 { x[0] * x[0] + 0.1 * u[0] * u[0] }
/// }
/// assert_eq!(Quadratic.running(&[2.0], &[0.0], 0), 4.0);
/// assert_eq!(Quadratic.terminal(&[2.0]), 0.0);
/// ```
pub trait Cost: Send + Sync {
    /// Cost of applying `u` in state `x` at step `t` of the horizon.
    fn running(&self, x: &[f64], u: &[f64], t: usize) -> f64;
    /// Cost of the final state; zero by default.
    fn terminal(&self, _x: &[f64]) -> f64 {
        0.0
    }

    /// Running cost of a block of `lanes` samples (SoA layout) into `out[l]`.
    /// `tmp` has at least `2n + m` entries. The default gathers and calls [`Cost::running`].
    fn running_block(
        &self,
        lanes: usize,
        t: usize,
        x: &[f64],
        u: &[f64],
        out: &mut [f64],
        tmp: &mut [f64],
    ) {
        let n = x.len() / lanes;
        let m = u.len() / lanes;
        let (xs, rest) = tmp.split_at_mut(n);
        let us = &mut rest[..m];
        for l in 0..lanes {
            for i in 0..n {
                xs[i] = x[i * lanes + l];
            }
            for j in 0..m {
                us[j] = u[j * lanes + l];
            }
            out[l] = self.running(xs, us, t);
        }
    }

    /// Terminal cost of a block of `lanes` samples into `out[l]`.
    fn terminal_block(&self, lanes: usize, x: &[f64], out: &mut [f64], tmp: &mut [f64]) {
        let n = x.len() / lanes;
        let xs = &mut tmp[..n];
        for l in 0..lanes {
            for i in 0..n {
                xs[i] = x[i * lanes + l];
            }
            out[l] = self.terminal(xs);
        }
    }

    /// [`Cost::running_block`] in single precision (float32 rollouts). `tmp` has at least
    /// `2n + m` entries of `f64` scratch. The default evaluates [`Cost::running`] in `f64` per
    /// lane and rounds the cost to `f32`.
    fn running_block_f32(
        &self,
        lanes: usize,
        t: usize,
        x: &[f32],
        u: &[f32],
        out: &mut [f32],
        tmp: &mut [f64],
    ) {
        let n = x.len() / lanes;
        let m = u.len() / lanes;
        let (xs, rest) = tmp.split_at_mut(n);
        let us = &mut rest[..m];
        for l in 0..lanes {
            gather_lane(x, lanes, l, xs);
            gather_lane(u, lanes, l, us);
            out[l] = self.running(xs, us, t) as f32;
        }
    }

    /// [`Cost::terminal_block`] in single precision. The default evaluates [`Cost::terminal`]
    /// in `f64` per lane; the costs stay `f64` (they are added to `f64` totals).
    fn terminal_block_f32(&self, lanes: usize, x: &[f32], out: &mut [f64], tmp: &mut [f64]) {
        let n = x.len() / lanes;
        let xs = &mut tmp[..n];
        for l in 0..lanes {
            gather_lane(x, lanes, l, xs);
            out[l] = self.terminal(xs);
        }
    }
}

macro_rules! forward_impls {
    ($($ptr:ty),*) => {$(
        impl<D: Dynamics + ?Sized> Dynamics for $ptr {
            fn state_dim(&self) -> usize { (**self).state_dim() }
            fn control_dim(&self) -> usize { (**self).control_dim() }
            fn work_per_step(&self) -> f64 { (**self).work_per_step() }
            fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) { (**self).step(x, u, next) }
            fn step_block(&self, lanes: usize, x: &[f64], u: &[f64], next: &mut [f64], tmp: &mut [f64]) {
                (**self).step_block(lanes, x, u, next, tmp)
            }
            fn step_and_cost_block(
                &self, lanes: usize, t: usize, x: &[f64], u: &[f64], next: &mut [f64],
                cost: &mut [f64], tmp: &mut [f64],
            ) -> bool {
                (**self).step_and_cost_block(lanes, t, x, u, next, cost, tmp)
            }
            fn step_block_f32(&self, lanes: usize, x: &[f32], u: &[f32], next: &mut [f32], tmp: &mut [f64]) {
                (**self).step_block_f32(lanes, x, u, next, tmp)
            }
            fn step_and_cost_block_f32(
                &self, lanes: usize, t: usize, x: &[f32], u: &[f32], next: &mut [f32],
                cost: &mut [f32], tmp: &mut [f64],
            ) -> bool {
                (**self).step_and_cost_block_f32(lanes, t, x, u, next, cost, tmp)
            }
        }
    )*};
}
forward_impls!(Box<D>, std::sync::Arc<D>, &D);

macro_rules! forward_cost_impls {
    ($($ptr:ty),*) => {$(
        impl<C: Cost + ?Sized> Cost for $ptr {
            fn running(&self, x: &[f64], u: &[f64], t: usize) -> f64 { (**self).running(x, u, t) }
            fn terminal(&self, x: &[f64]) -> f64 { (**self).terminal(x) }
            fn running_block(&self, lanes: usize, t: usize, x: &[f64], u: &[f64], out: &mut [f64], tmp: &mut [f64]) {
                (**self).running_block(lanes, t, x, u, out, tmp)
            }
            fn terminal_block(&self, lanes: usize, x: &[f64], out: &mut [f64], tmp: &mut [f64]) {
                (**self).terminal_block(lanes, x, out, tmp)
            }
            fn running_block_f32(&self, lanes: usize, t: usize, x: &[f32], u: &[f32], out: &mut [f32], tmp: &mut [f64]) {
                (**self).running_block_f32(lanes, t, x, u, out, tmp)
            }
            fn terminal_block_f32(&self, lanes: usize, x: &[f32], out: &mut [f64], tmp: &mut [f64]) {
                (**self).terminal_block_f32(lanes, x, out, tmp)
            }
        }
    )*};
}
forward_cost_impls!(Box<C>, std::sync::Arc<C>, &C);

/// A batched objective over decision vectors of dimension [`Objective::dim`]: the thing the
/// optimizer minimizes.
///
/// `evaluate` is called on blocks of at most [`BLOCK_LANES`] samples, possibly from several
/// threads at once, each with its own scratch of [`Objective::scratch_len`] entries.
pub trait Objective: Send + Sync {
    /// Decision dimension `d` (for trajectories, `T · m`).
    fn dim(&self) -> usize;
    /// Scratch entries needed by one call of `evaluate` on `lanes` samples.
    fn scratch_len(&self, _lanes: usize) -> usize {
        0
    }
    /// Work of one sample-step relative to a small ODE step ([`Dynamics::work_per_step`]):
    /// decides whether an iteration is big enough to run on the planner's threads. Default 1.
    fn work_per_sample_step(&self) -> f64 {
        1.0
    }
    /// Costs of `costs.len()` decision vectors stored row-major in `decisions`
    /// (`decisions.len() == costs.len() * dim`). NaN or infinite costs are allowed: they get
    /// zero weight.
    fn evaluate(&self, decisions: &[f64], costs: &mut [f64], scratch: &mut [f64]);

    /// Whether [`Objective::evaluate_block`] reads the row-major `decisions`. An objective that
    /// reads only the structure-of-arrays copy returns `false`, and the planner then skips
    /// building rows when nothing else needs them. The default (`true`) matches the default
    /// `evaluate_block`.
    fn needs_rows(&self) -> bool {
        true
    }

    /// [`Objective::evaluate`] for one block of `costs.len() <= BLOCK_LANES` samples that the
    /// planner holds in structure-of-arrays layout (`soa[i * lanes + l]`). `decisions` holds
    /// the same samples row-major only if [`Objective::needs_rows`] is `true`. Rollouts read
    /// their controls from `soa` without a gather; the default evaluates the rows.
    fn evaluate_block(
        &self,
        decisions: &[f64],
        _soa: &[f64],
        costs: &mut [f64],
        scratch: &mut [f64],
    ) {
        self.evaluate(decisions, costs, scratch);
    }

    /// Whether the planner should call [`Objective::evaluate_batch`] once per iteration with
    /// every sample, instead of [`Objective::evaluate_block`] per block of lanes. A neural
    /// world model, a Python callback or a GPU objective wants the whole batch; rollouts do
    /// not. The default is `false`.
    fn evaluates_batch(&self) -> bool {
        false
    }

    /// Costs of all `N` samples of an iteration at once: `decisions` is `N × dim` row-major
    /// (`N × T × m` for trajectories), `costs` has `N` entries. Called on the planner's thread
    /// when [`Objective::evaluates_batch`] is `true`; an error (a failed callback) stops the
    /// iteration and is returned by the planner. The default evaluates the rows in blocks of
    /// [`BLOCK_LANES`] with a scratch it allocates, so override it in a batch objective.
    fn evaluate_batch(&self, decisions: &[f64], costs: &mut [f64]) -> Result<(), MppiError> {
        let d = self.dim();
        check_len("batch decisions", costs.len() * d, decisions.len())?;
        let mut scratch = vec![0.0; self.scratch_len(BLOCK_LANES)];
        for (rows, c) in decisions
            .chunks(BLOCK_LANES * d)
            .zip(costs.chunks_mut(BLOCK_LANES))
        {
            self.evaluate(rows, c, &mut scratch);
        }
        Ok(())
    }
}

/// A black-box objective evaluated on the whole batch of samples in one call, from a closure
/// `f(decisions, costs)` over `N × dim` row-major decisions (see
/// [`Objective::evaluate_batch`]).
///
/// ```
/// use mppi::{BatchFnObjective, MppiConfig, Planner, ProposalConfig, WeightingConfig};
/// // one call per iteration with all 64 samples of u ∈ R²
/// let f = BatchFnObjective::new(2, |u: &[f64], costs: &mut [f64]| {
///     for (c, row) in costs.iter_mut().zip(u.chunks_exact(2)) {
///         *c = (row[0] - 1.0).powi(2) + (row[1] + 1.0).powi(2);
///     }
///     Ok(())
/// });
/// let cfg = MppiConfig {
///     samples: 64, horizon: 1, iterations: 40,
///     proposal: ProposalConfig::gaussian(&[0.5]),
///     weighting: WeightingConfig::fixed(0.05),
///     ..MppiConfig::default()
/// };
/// let mut planner = Planner::new(&cfg, 2)?;
/// planner.optimize(&f, 0, &mut ())?;
/// assert!((planner.mean()[0] - 1.0).abs() < 0.1 && (planner.mean()[1] + 1.0).abs() < 0.1);
/// # Ok::<(), mppi::MppiError>(())
/// ```
pub struct BatchFnObjective<F> {
    dim: usize,
    f: F,
}

impl<F> BatchFnObjective<F>
where
    F: Fn(&[f64], &mut [f64]) -> Result<(), MppiError> + Send + Sync,
{
    /// Wrap `f` as an objective over `R^dim` evaluated batch-wide.
    pub fn new(dim: usize, f: F) -> Self {
        BatchFnObjective { dim, f }
    }
}

impl<F> Objective for BatchFnObjective<F>
where
    F: Fn(&[f64], &mut [f64]) -> Result<(), MppiError> + Send + Sync,
{
    fn dim(&self) -> usize {
        self.dim
    }
    /// Blocks go through the batch closure too (errors become NaN costs there).
    fn evaluate(&self, decisions: &[f64], costs: &mut [f64], _scratch: &mut [f64]) {
        if (self.f)(decisions, costs).is_err() {
            costs.fill(f64::NAN);
        }
    }
    fn evaluates_batch(&self) -> bool {
        true
    }
    fn evaluate_batch(&self, decisions: &[f64], costs: &mut [f64]) -> Result<(), MppiError> {
        check_len("batch decisions", costs.len() * self.dim, decisions.len())?;
        (self.f)(decisions, costs)
    }
}

/// A black-box objective from a closure `f(u) -> J`.
///
/// ```
/// use mppi::{FnObjective, Objective};
/// let sphere = FnObjective::new(3, |u: &[f64]| u.iter().map(|v| v * v).sum());
/// let mut j = [0.0; 2];
/// sphere.evaluate(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], &mut j, &mut []);
/// assert_eq!(j, [1.0, 3.0]);
/// ```
pub struct FnObjective<F> {
    dim: usize,
    f: F,
}

impl<F: Fn(&[f64]) -> f64 + Send + Sync> FnObjective<F> {
    /// Wrap `f` as an objective over `R^dim`.
    pub fn new(dim: usize, f: F) -> Self {
        FnObjective { dim, f }
    }
}

impl<F: Fn(&[f64]) -> f64 + Send + Sync> Objective for FnObjective<F> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn evaluate(&self, decisions: &[f64], costs: &mut [f64], _scratch: &mut [f64]) {
        for (c, u) in costs.iter_mut().zip(decisions.chunks_exact(self.dim)) {
            *c = (self.f)(u);
        }
    }
}

/// Trajectory costs from dynamics and cost: the objective of receding-horizon control.
///
/// ```
/// use mppi::{Cost, Dynamics, Objective, RolloutObjective};
/// struct Integrator;
/// impl Dynamics for Integrator {
///     fn state_dim(&self) -> usize { 1 }
///     fn control_dim(&self) -> usize { 1 }
///     fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) { next[0] = x[0] + u[0]; }
/// }
/// struct Square;
/// impl Cost for Square {
///     fn running(&self, x: &[f64], _u: &[f64], _t: usize) -> f64 { x[0] * x[0] }
///     fn terminal(&self, x: &[f64]) -> f64 { 10.0 * x[0] * x[0] }
/// }
/// let mut obj = RolloutObjective::new(Integrator, Square, 2, 1.0).unwrap();
/// obj.set_state(&[1.0]).unwrap();
/// let mut j = [0.0];
/// let mut scratch = vec![0.0; obj.scratch_len(1)];
/// obj.evaluate(&[1.0, -2.0], &mut j, &mut scratch);
/// // x: 1 -> 2 -> 0; J = 1 + 4 + 10 * 0
/// assert_eq!(j[0], 5.0);
/// ```
pub struct RolloutObjective<D, C> {
    dynamics: D,
    cost: C,
    horizon: usize,
    discount: f64,
    x0: Vec<f64>,
    /// Running cost and step in one pass ([`Dynamics::step_and_cost_block`]).
    fused: bool,
    /// Arithmetic of the block rollouts.
    precision: Precision,
}

impl<D: Dynamics, C: Cost> RolloutObjective<D, C> {
    /// Build a rollout objective over `horizon` controls with running-cost `discount`.
    pub fn new(dynamics: D, cost: C, horizon: usize, discount: f64) -> Result<Self, MppiError> {
        if horizon == 0 {
            return Err(MppiError::config("horizon", "must be >= 1"));
        }
        if !(discount > 0.0 && discount <= 1.0) {
            return Err(MppiError::config(
                "discount",
                format!("must be in (0, 1], got {discount}"),
            ));
        }
        if dynamics.state_dim() == 0 || dynamics.control_dim() == 0 {
            return Err(MppiError::config(
                "dynamics",
                "state and control dimensions must be >= 1",
            ));
        }
        let n = dynamics.state_dim();
        Ok(RolloutObjective {
            dynamics,
            cost,
            horizon,
            discount,
            x0: vec![0.0; n],
            fused: false,
            precision: Precision::F64,
        })
    }

    /// [`RolloutObjective::new`] for a model that is its own running cost: block rollouts call
    /// [`Dynamics::step_and_cost_block`] (one pass per step) where the dynamics provides it,
    /// instead of [`Cost::running_block`] then [`Dynamics::step_block`]. `cost` still gives the
    /// terminal cost and the scalar path ([`RolloutObjective::rollout`]). Use it only when the
    /// fused running cost is `cost`'s (a model passed as both, as the built-in tasks do).
    pub fn with_fused_cost(
        dynamics: D,
        cost: C,
        horizon: usize,
        discount: f64,
    ) -> Result<Self, MppiError> {
        let mut objective = Self::new(dynamics, cost, horizon, discount)?;
        objective.fused = true;
        Ok(objective)
    }

    /// This objective with block rollouts in `precision`. Under [`Precision::F32`] the states,
    /// the controls handed to the dynamics and the running costs of each step are `f32`
    /// ([`Dynamics::step_block_f32`], [`Cost::running_block_f32`], ...); each trajectory's
    /// cost is summed in `f64`. [`RolloutObjective::rollout`] (plots, tests) stays `f64`.
    ///
    /// Set the precision before [`crate::Planner::prepare`] sizes the scratch for it.
    ///
    /// ```
    /// use mppi::{Cost, Dynamics, Objective, Precision, RolloutObjective};
    /// struct Integrator;
    /// impl Dynamics for Integrator {
    ///     fn state_dim(&self) -> usize { 1 }
    ///     fn control_dim(&self) -> usize { 1 }
    ///     fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) { next[0] = x[0] + u[0]; }
    /// }
    /// struct Square;
    /// impl Cost for Square {
    ///     fn running(&self, x: &[f64], _u: &[f64], _t: usize) -> f64 { x[0] * x[0] }
    /// }
    /// let mut obj = RolloutObjective::new(Integrator, Square, 2, 1.0)
    ///     .unwrap()
    ///     .with_precision(Precision::F32);
    /// obj.set_state(&[0.1]).unwrap();
    /// let mut j = [0.0];
    /// let mut scratch = vec![0.0; obj.scratch_len(1)];
    /// obj.evaluate(&[0.2, 0.0], &mut j, &mut scratch);
    /// // x: 0.1 -> 0.3 in f32; J = 0.01 + 0.09 up to f32 rounding
    /// assert!((j[0] - 0.1).abs() < 1e-7);
    /// ```
    #[must_use]
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// The arithmetic of the block rollouts.
    #[must_use]
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Set the initial state `x₀` of every rollout.
    pub fn set_state(&mut self, x0: &[f64]) -> Result<(), MppiError> {
        check_len("state", self.x0.len(), x0.len())?;
        check_finite("state", x0)?;
        self.x0.copy_from_slice(x0);
        Ok(())
    }

    /// The current initial state.
    #[must_use]
    pub fn state(&self) -> &[f64] {
        &self.x0
    }
    /// The dynamics.
    #[must_use]
    pub fn dynamics(&self) -> &D {
        &self.dynamics
    }
    /// The cost.
    #[must_use]
    pub fn cost(&self) -> &C {
        &self.cost
    }
    /// Number of controls in a plan.
    #[must_use]
    pub fn horizon(&self) -> usize {
        self.horizon
    }

    /// Roll out one control sequence (`T·m` entries) from the current state, writing the
    /// `T + 1` visited states row-major into `states` and returning its cost.
    ///
    /// This is the scalar reference path (used for plots and tests, not in the hot loop).
    pub fn rollout(&self, controls: &[f64], states: &mut [f64]) -> Result<f64, MppiError> {
        let (n, m) = (self.dynamics.state_dim(), self.dynamics.control_dim());
        check_len("controls", self.horizon * m, controls.len())?;
        check_len("states", (self.horizon + 1) * n, states.len())?;
        states[..n].copy_from_slice(&self.x0);
        let mut total = 0.0;
        let mut disc = 1.0;
        for t in 0..self.horizon {
            let (cur, next) = states[t * n..(t + 2) * n].split_at_mut(n);
            let u = &controls[t * m..(t + 1) * m];
            total += disc * self.cost.running(cur, u, t);
            self.dynamics.step(cur, u, next);
            disc *= self.discount;
        }
        total += disc * self.cost.terminal(&states[self.horizon * n..]);
        Ok(total)
    }
}

impl<D: Dynamics, C: Cost> Objective for RolloutObjective<D, C> {
    fn dim(&self) -> usize {
        self.horizon * self.dynamics.control_dim()
    }

    fn work_per_sample_step(&self) -> f64 {
        self.dynamics.work_per_step()
    }

    fn scratch_len(&self, lanes: usize) -> usize {
        let (n, m) = (self.dynamics.state_dim(), self.dynamics.control_dim());
        // last: the controls gathered by `evaluate` (`evaluate_block` reads the SoA block)
        let gathered = m * lanes;
        match self.precision {
            // state, next state, per-lane cost, gather scratch of the block defaults
            Precision::F64 => 2 * n * lanes + lanes + 2 * n + m + gathered,
            // gather scratch and f64 terminal costs, then the f32 state, next state, per-lane
            // cost and controls, two per f64
            Precision::F32 => 2 * n + m + lanes + (2 * n + 1 + m) * lanes.div_ceil(2) + gathered,
        }
    }

    fn evaluate(&self, decisions: &[f64], costs: &mut [f64], scratch: &mut [f64]) {
        let (m, d) = (self.dynamics.control_dim(), self.dim());
        for (dec, cst) in decisions
            .chunks(BLOCK_LANES * d)
            .zip(costs.chunks_mut(BLOCK_LANES))
        {
            let lanes = cst.len();
            // the gathered controls of one step live at the end of the scratch
            let (state, buf) = scratch.split_at_mut(scratch.len() - m * lanes);
            let source = GatheredControls {
                rows: dec,
                d,
                m,
                lanes,
                buf,
            };
            self.rollout_lanes(cst, state, source);
        }
    }

    /// Rollouts read the controls from the SoA block only.
    fn needs_rows(&self) -> bool {
        false
    }

    fn evaluate_block(
        &self,
        _decisions: &[f64],
        soa: &[f64],
        costs: &mut [f64],
        scratch: &mut [f64],
    ) {
        let span = self.dynamics.control_dim() * costs.len();
        // the controls of step t are a contiguous slice of the block: no copy
        self.rollout_lanes(costs, scratch, SoaControls { soa, span });
    }
}

/// Where a rollout reads the controls of each step (SoA, `m · lanes` entries).
trait ControlSource {
    fn controls(&mut self, t: usize) -> &[f64];
}

/// Controls already in block layout: step `t` is one contiguous slice.
struct SoaControls<'a> {
    soa: &'a [f64],
    span: usize,
}

impl ControlSource for SoaControls<'_> {
    #[inline(always)]
    fn controls(&mut self, t: usize) -> &[f64] {
        &self.soa[t * self.span..(t + 1) * self.span]
    }
}

/// Controls gathered step by step from row-major decisions into a buffer.
struct GatheredControls<'a> {
    rows: &'a [f64],
    d: usize,
    m: usize,
    lanes: usize,
    buf: &'a mut [f64],
}

impl ControlSource for GatheredControls<'_> {
    #[inline(always)]
    fn controls(&mut self, t: usize) -> &[f64] {
        let (d, m, lanes) = (self.d, self.m, self.lanes);
        for l in 0..lanes {
            let ut = &self.rows[l * d + t * m..l * d + (t + 1) * m];
            for j in 0..m {
                self.buf[j * lanes + l] = ut[j];
            }
        }
        &self.buf[..m * lanes]
    }
}

impl<D: Dynamics, C: Cost> RolloutObjective<D, C> {
    /// Roll out `costs.len()` lanes from `x₀`, reading the controls of step `t` from `source`
    /// (SoA, `m · lanes`), and write each lane's discounted cost.
    #[inline]
    fn rollout_lanes(&self, costs: &mut [f64], scratch: &mut [f64], source: impl ControlSource) {
        match self.precision {
            Precision::F64 => self.rollout_lanes_f64(costs, scratch, source),
            Precision::F32 => self.rollout_lanes_f32(costs, scratch, source),
        }
    }

    #[inline]
    fn rollout_lanes_f64(
        &self,
        costs: &mut [f64],
        scratch: &mut [f64],
        mut source: impl ControlSource,
    ) {
        let n = self.dynamics.state_dim();
        let lanes = costs.len();
        let (mut x, rest) = scratch.split_at_mut(n * lanes);
        let (mut xn, rest) = rest.split_at_mut(n * lanes);
        let (c, tmp) = rest.split_at_mut(lanes);
        for i in 0..n {
            x[i * lanes..(i + 1) * lanes].fill(self.x0[i]);
        }
        costs.fill(0.0);
        let mut disc = 1.0;
        for t in 0..self.horizon {
            let u = source.controls(t);
            if !(self.fused
                && self
                    .dynamics
                    .step_and_cost_block(lanes, t, x, u, xn, c, tmp))
            {
                self.cost.running_block(lanes, t, x, u, c, tmp);
                self.dynamics.step_block(lanes, x, u, xn, tmp);
            }
            for (acc, ci) in costs.iter_mut().zip(c.iter()) {
                *acc += disc * ci;
            }
            std::mem::swap(&mut x, &mut xn);
            disc *= self.discount;
        }
        self.cost.terminal_block(lanes, x, c, tmp);
        for (acc, ci) in costs.iter_mut().zip(c.iter()) {
            *acc += disc * ci;
        }
    }
}

impl<D: Dynamics, C: Cost> RolloutObjective<D, C> {
    /// [`RolloutObjective::rollout_lanes`] under [`Precision::F32`]: the block's states,
    /// controls and running costs in `f32`, each lane's discounted sum in `f64`.
    #[inline]
    fn rollout_lanes_f32(
        &self,
        costs: &mut [f64],
        scratch: &mut [f64],
        mut source: impl ControlSource,
    ) {
        let (n, m) = (self.dynamics.state_dim(), self.dynamics.control_dim());
        let lanes = costs.len();
        let (tmp, rest) = scratch.split_at_mut(2 * n + m);
        let (terminal, rest) = rest.split_at_mut(lanes);
        let single: &mut [f32] = bytemuck::cast_slice_mut(rest);
        let (mut x, rest) = single.split_at_mut(n * lanes);
        let (mut xn, rest) = rest.split_at_mut(n * lanes);
        let (c, rest) = rest.split_at_mut(lanes);
        let u = &mut rest[..m * lanes];
        for i in 0..n {
            x[i * lanes..(i + 1) * lanes].fill(self.x0[i] as f32);
        }
        costs.fill(0.0);
        let mut disc = 1.0;
        for t in 0..self.horizon {
            for (ui, si) in u.iter_mut().zip(source.controls(t)) {
                *ui = *si as f32;
            }
            if !(self.fused
                && self
                    .dynamics
                    .step_and_cost_block_f32(lanes, t, x, u, xn, c, tmp))
            {
                self.cost.running_block_f32(lanes, t, x, u, c, tmp);
                self.dynamics.step_block_f32(lanes, x, u, xn, tmp);
            }
            for (acc, ci) in costs.iter_mut().zip(c.iter()) {
                *acc += disc * f64::from(*ci);
            }
            std::mem::swap(&mut x, &mut xn);
            disc *= self.discount;
        }
        self.cost.terminal_block_f32(lanes, x, terminal, tmp);
        for (acc, ci) in costs.iter_mut().zip(terminal.iter()) {
            *acc += disc * ci;
        }
    }
}
