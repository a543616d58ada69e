//! [`ClosedLoop`]: a policy closed around [`Dynamics`] + [`Cost`], the problem both searches
//! solve.

use crate::config::per_dim;
use crate::error::{MppiError, check_finite, check_len};
use crate::objective::{Cost, Dynamics, Objective};
use crate::rng::SampleRng;

#[cfg(doc)]
use super::ParamSearch;
use super::Policy;

/// A policy closed around a system: the problem both searches solve.
///
/// It rolls `a_t = clamp(μ_θ(x_t, t))` out on [`Dynamics`] + [`Cost`] for `horizon` steps
/// from each start state and averages the episode costs
/// `Σ_t γᵗ c(x_t, a_t, t) + γᵀ φ(x_T)` over the starts; an episode whose state stops being
/// finite costs NaN (weight 0 in a search). It is also an [`Objective`] over `θ`
/// (dimension [`Policy::num_params`]): the one [`ParamSearch`] hands to the planner.
///
/// ```
/// use mppi::policy_search::{ClosedLoop, LinearPolicy};
/// use mppi::{Cost, Dynamics};
/// # struct Integrator;
/// # impl Dynamics for Integrator {
/// #     fn state_dim(&self) -> usize { 1 }
/// #     fn control_dim(&self) -> usize { 1 }
/// #     fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) { next[0] = x[0] + 0.1 * u[0]; }
/// # }
/// # struct Quadratic;
/// # impl Cost for Quadratic {
/// #     fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 { x[0] * x[0] + 0.1 * u[0] * u[0] }
/// # }
/// let problem = ClosedLoop::new(LinearPolicy::new(1, 1)?, Integrator, Quadratic, &[vec![1.0], vec![-1.0]], 3)?
///     .with_bounds(&[-2.0], &[2.0])?;
/// // u = −5x is clamped to −2: x = 1 → 0.8 → 0.6 → 0.4, J = 1 + 0.64 + 0.36 + 3·0.4
/// let j = problem.policy_cost(&[-5.0, 0.0])?;
/// assert!((j - 3.2).abs() < 1e-12, "{j}");
/// let mut states = [0.0; 4];
/// let mut actions = [0.0; 3];
/// problem.rollout(&[-5.0, 0.0], 1, &mut states, &mut actions)?;
/// assert_eq!(actions, [2.0, 2.0, 2.0]);
/// assert!(problem.policy_cost(&[0.0]).is_err()); // θ has two entries
/// # Ok::<(), mppi::MppiError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClosedLoop<P, D, C> {
    pub(super) policy: P,
    pub(super) dynamics: D,
    cost: C,
    /// Start states, `S × n` row-major.
    starts: Vec<f64>,
    pub(super) horizon: usize,
    discount: f64,
    u_min: Vec<f64>,
    u_max: Vec<f64>,
}

/// Exploration noise of one EM sample: its stream and `σ`.
type Noise<'a> = (&'a mut SampleRng, f64);

impl<P: Policy, D: Dynamics, C: Cost> ClosedLoop<P, D, C> {
    /// `policy` closed around `dynamics` and `cost`, rolled out for `horizon` steps from each
    /// of `starts` (at least one, each `n` finite entries). Unbounded actions, no discount.
    pub fn new(
        policy: P,
        dynamics: D,
        cost: C,
        starts: &[Vec<f64>],
        horizon: usize,
    ) -> Result<Self, MppiError> {
        let (n, m) = (dynamics.state_dim(), dynamics.control_dim());
        if n == 0 || m == 0 {
            return Err(MppiError::config(
                "dynamics",
                "state and control dimensions must be >= 1",
            ));
        }
        check_len("policy state dimension", n, policy.state_dim())?;
        check_len("policy control dimension", m, policy.control_dim())?;
        if policy.num_params() == 0 {
            return Err(MppiError::config("policy", "has no parameters"));
        }
        if horizon == 0 {
            return Err(MppiError::config("horizon", "must be >= 1"));
        }
        if starts.is_empty() {
            return Err(MppiError::config(
                "starts",
                "at least one start state is needed",
            ));
        }
        let mut flat = Vec::with_capacity(starts.len() * n);
        for s in starts {
            check_len("start state", n, s.len())?;
            check_finite("start state", s)?;
            flat.extend_from_slice(s);
        }
        Ok(ClosedLoop {
            policy,
            dynamics,
            cost,
            starts: flat,
            horizon,
            discount: 1.0,
            u_min: vec![f64::NEG_INFINITY; m],
            u_max: vec![f64::INFINITY; m],
        })
    }

    /// This problem with every action clamped into `[u_min, u_max]` (one value for every
    /// component, or one per component; `u_min < u_max`), as the planner clamps its samples.
    pub fn with_bounds(mut self, u_min: &[f64], u_max: &[f64]) -> Result<Self, MppiError> {
        let m = self.dynamics.control_dim();
        let lo = per_dim("u_min", u_min, m)?;
        let hi = per_dim("u_max", u_max, m)?;
        if let Some(i) = (0..m).find(|&i| lo[i] >= hi[i]) {
            return Err(MppiError::config(
                "u_min",
                format!(
                    "u_min[{i}] = {} must be below u_max[{i}] = {}",
                    lo[i], hi[i]
                ),
            ));
        }
        self.u_min = lo;
        self.u_max = hi;
        Ok(self)
    }

    /// This problem with running costs discounted by `γ ∈ (0, 1]` per step.
    pub fn with_discount(mut self, discount: f64) -> Result<Self, MppiError> {
        if !(discount > 0.0 && discount <= 1.0) {
            return Err(MppiError::config(
                "discount",
                format!("must be in (0, 1], got {discount}"),
            ));
        }
        self.discount = discount;
        Ok(self)
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &P {
        &self.policy
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
    /// Steps per episode `T`.
    #[must_use]
    pub fn horizon(&self) -> usize {
        self.horizon
    }
    /// Number of start states `S`.
    #[must_use]
    pub fn num_starts(&self) -> usize {
        self.starts.len() / self.dynamics.state_dim()
    }
    /// Start state `i`.
    ///
    /// # Panics
    /// If `i >= num_starts()`.
    #[must_use]
    pub fn start(&self, i: usize) -> &[f64] {
        let n = self.dynamics.state_dim();
        &self.starts[i * n..(i + 1) * n]
    }
    /// The action bounds (±∞ where unbounded).
    #[must_use]
    pub fn bounds(&self) -> (&[f64], &[f64]) {
        (&self.u_min, &self.u_max)
    }
    /// Length of `θ`.
    #[must_use]
    pub fn num_params(&self) -> usize {
        self.policy.num_params()
    }

    /// The cost `J(θ)` of the deterministic closed loop, averaged over the start states (NaN
    /// if an episode leaves the finite states).
    pub fn policy_cost(&self, theta: &[f64]) -> Result<f64, MppiError> {
        check_len("policy parameters", self.num_params(), theta.len())?;
        let mut buf = vec![0.0; self.buffer_len()];
        Ok(self.mean_cost(theta, &mut buf))
    }

    /// Roll the deterministic closed loop out from start state `start`, writing the `T + 1`
    /// visited states (row-major) and the `T` applied actions; returns the episode's cost.
    /// Rows after the state stopped being finite are NaN.
    pub fn rollout(
        &self,
        theta: &[f64],
        start: usize,
        states: &mut [f64],
        actions: &mut [f64],
    ) -> Result<f64, MppiError> {
        let (n, m, t) = (
            self.dynamics.state_dim(),
            self.dynamics.control_dim(),
            self.horizon,
        );
        check_len("policy parameters", self.num_params(), theta.len())?;
        if start >= self.num_starts() {
            return Err(MppiError::DimensionMismatch {
                what: "start index",
                expected: self.num_starts(),
                got: start,
            });
        }
        check_len("rollout states", (t + 1) * n, states.len())?;
        check_len("rollout actions", t * m, actions.len())?;
        states.fill(f64::NAN);
        actions.fill(f64::NAN);
        let mut buf = vec![0.0; self.buffer_len()];
        let (head, last) = states.split_at_mut(t * n);
        let cost = self.episode(
            theta,
            self.start(start),
            None,
            Some((head, actions)),
            &mut buf,
        );
        if buf[..n].iter().all(|v| v.is_finite()) && cost.is_finite() {
            last.copy_from_slice(&buf[..n]);
        }
        Ok(cost)
    }

    /// Scratch of one episode: state, next state, action.
    pub(super) fn buffer_len(&self) -> usize {
        2 * self.dynamics.state_dim() + self.dynamics.control_dim()
    }

    /// Mean deterministic episode cost over the start states.
    fn mean_cost(&self, theta: &[f64], buf: &mut [f64]) -> f64 {
        let s = self.num_starts();
        let mut total = 0.0;
        for i in 0..s {
            total += self.episode(theta, self.start(i), None, None, buf);
        }
        total / s as f64
    }

    /// One episode from `start`: `a_t = clamp(μ_θ(x_t, t) + σ z_t)` (no noise term without
    /// `noise`; the normals of a step are drawn in component order), the states and actions
    /// of every step written into `record` (`T·n`, `T·m`), the final state left at the start
    /// of `buf`. Returns the discounted cost, summed in the order
    /// [`crate::RolloutObjective`] sums it, or NaN once the state is not finite.
    pub(super) fn episode(
        &self,
        theta: &[f64],
        start: &[f64],
        mut noise: Option<Noise<'_>>,
        mut record: Option<(&mut [f64], &mut [f64])>,
        buf: &mut [f64],
    ) -> f64 {
        let (n, m) = (self.dynamics.state_dim(), self.dynamics.control_dim());
        let (x, rest) = buf.split_at_mut(n);
        let (xn, rest) = rest.split_at_mut(n);
        let u = &mut rest[..m];
        x.copy_from_slice(start);
        let mut total = 0.0;
        let mut disc = 1.0;
        for t in 0..self.horizon {
            self.policy.action(theta, x, t, u);
            if let Some((rng, sigma)) = noise.as_mut() {
                for v in u.iter_mut() {
                    *v += *sigma * rng.normal();
                }
            }
            for ((v, lo), hi) in u.iter_mut().zip(&self.u_min).zip(&self.u_max) {
                *v = v.clamp(*lo, *hi);
            }
            if let Some((states, actions)) = record.as_mut() {
                states[t * n..(t + 1) * n].copy_from_slice(x);
                actions[t * m..(t + 1) * m].copy_from_slice(u);
            }
            total += disc * self.cost.running(x, u, t);
            self.dynamics.step(x, u, xn);
            x.copy_from_slice(xn);
            disc *= self.discount;
            if !x.iter().all(|v| v.is_finite()) {
                return f64::NAN;
            }
        }
        total + disc * self.cost.terminal(x)
    }
}

/// `J(θ_i)` for each row `θ_i`: the objective of parameter-space MPPI.
impl<P: Policy, D: Dynamics, C: Cost> Objective for ClosedLoop<P, D, C> {
    fn dim(&self) -> usize {
        self.num_params()
    }
    fn scratch_len(&self, _lanes: usize) -> usize {
        self.buffer_len()
    }
    /// One decision is `S` episodes of `T` steps.
    fn work_per_sample_step(&self) -> f64 {
        (self.num_starts() * self.horizon) as f64 * self.dynamics.work_per_step()
    }
    fn evaluate(&self, decisions: &[f64], costs: &mut [f64], scratch: &mut [f64]) {
        let p = self.num_params();
        for (c, theta) in costs.iter_mut().zip(decisions.chunks_exact(p)) {
            *c = self.mean_cost(theta, scratch);
        }
    }
}
