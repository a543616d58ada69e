//! Policy search: optimize a feedback policy `a = μ_θ(s)` with the same weighting as MPPI
//! (docs/theory.md §E.2).
//!
//! The system is the library's own [`Dynamics`] + [`Cost`]; a [`ClosedLoop`] rolls a
//! [`Policy`] out on it from one or several start states for `T` steps:
//!
//! ```text
//! J(θ) = (1/S) Σ_s [ Σ_{t<T} γᵗ c(x_t, a_t, t) + γᵀ φ(x_T) ],  x_0 = start_s,
//! a_t = clamp(μ_θ(x_t, t)),  x_{t+1} = F(x_t, a_t).
//! ```
//!
//! Two ways to improve `θ`, both EM with the weights `w = softmax(−J/λ)`:
//!
//! 1. **Parameter-space MPPI** ([`ParamSearch`], PI^BB): `θ_i = θ̄ + ε_i`, `ε_i ~ N(0, Σ_θ)`,
//!    each `θ_i` rolled out deterministically, `θ̄⁺ = Σ_i w_i θ_i`. This *is* the
//!    [`crate::Planner`] on a problem of horizon 1 whose controls are `θ` ([`ClosedLoop`] is
//!    its [`Objective`]), so every planner setting applies: the proposal family (a
//!    `gaussian_diag` proposal adapts `Σ_θ`), temperature rules, elites, schedules, step size
//!    and acceleration.
//! 2. **EM policy search with action-space exploration** ([`EmSearch`], reward-weighted
//!    regression): `N` samples of `S` noisy episodes `a_t = clamp(μ_θ(s_t) + ε_t)`,
//!    `ε_t ~ N(0, σ²I)`, episode costs `J_i`, weights `w_i` from the library's weighting stage
//!    ([`Softmax`]: fixed, std-normalized or ESS-target `λ`, elites) and the M-step
//!
//!    ```text
//!    θ⁺ = argmax_θ Σ_i w_i Σ_{s,t} log N(a_{t,i}; μ_θ(s_{t,i}), σ²I)
//!       = argmin_θ Σ_i w_i Σ_{s,t} ½ ‖a_{t,i} − μ_θ(s_{t,i})‖²        (weighted behaviour cloning)
//!    ```
//!
//!    exactly where the policy has a closed form ([`Policy::fit_weighted`]: weighted least
//!    squares for [`LinearPolicy`], the weighted mean per time step for [`OpenLoopPolicy`]),
//!    otherwise by Adam steps on the weighted negative log-likelihood ([`MlpPolicy`]). The
//!    trajectory density `p(s₀) Π P(s'|s,a) π_θ(a|s)` makes the dynamics cancel in the M-step,
//!    so only the policy's own likelihood is fitted.
//!
//! **Identity (H21).** With the open-loop policy `μ_θ(s_t) = u_t` the EM M-step is the
//! weighted mean of the executed plans, `u_t⁺ = Σ_i w_i a_{t,i}`: exactly the MPPI update.
//! [`EmSearch`] draws sample `i` of iteration `k` from the stream
//! [`sample_rng`]`(seed, 0, k, i)`, the one the planner's sample `i` of iteration `k` at
//! step 0 uses, so the two see the same samples (the test suite checks this to 1e-12).
//!
//! Everything is deterministic for a fixed seed: EM runs on the calling thread, and the
//! planner's results do not depend on its thread count.
//!
//! ```
//! use mppi::policy_search::{ClosedLoop, EmSearch, EmSettings, LinearPolicy, PolicySearch};
//! use mppi::{Cost, Dynamics};
//!
//! /// x' = x + 0.1 u, cost x² + 0.1 u²: the best feedback is a negative gain.
//! struct Integrator;
//! impl Dynamics for Integrator {
//!     fn state_dim(&self) -> usize { 1 }
//!     fn control_dim(&self) -> usize { 1 }
//!     fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) { next[0] = x[0] + 0.1 * u[0]; }
//! }
//! struct Quadratic;
//! impl Cost for Quadratic {
//!     fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 { x[0] * x[0] + 0.1 * u[0] * u[0] }
//! }
//!
//! let problem = ClosedLoop::new(LinearPolicy::new(1, 1)?, Integrator, Quadratic, &[vec![1.0]], 20)?;
//! let settings = EmSettings { samples: 32, sigma: 1.0, ..EmSettings::default() };
//! let mut search = EmSearch::new(problem, &settings, &[0.0, 0.0])?;
//! let before = search.policy_cost()?;
//! for _ in 0..5 {
//!     let report = search.iterate()?;
//!     assert!(report.weights.ess > 1.0);
//! }
//! assert!(search.policy_cost()? < before);
//! assert!(search.params()[0] < 0.0); // K < 0: push the state back to 0
//! # Ok::<(), mppi::MppiError>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::config::{
    MppiConfig, Parallel, ProposalConfig, ScheduleConfig, TemperatureConfig, UpdateConfig,
    WeightingConfig, per_dim,
};
use crate::error::{MppiError, check_finite, check_len};
use crate::objective::{Cost, Dynamics, Objective};
use crate::planner::Planner;
use crate::rng::{SampleRng, sample_rng};
use crate::weights::{Softmax, WeightStats, Weighting};

// ---------------------------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------------------------

/// A deterministic policy `μ_θ(s, t)` over a flat parameter vector `θ` (its mean action; the
/// exploration noise of EM is added by [`EmSearch`]).
///
/// A policy is a description, not a container: `θ` is passed to every call, so one policy
/// serves every sample of an iteration. Slices have the lengths the policy reports
/// ([`Policy::num_params`], [`Policy::state_dim`], [`Policy::control_dim`]); the search
/// checks them once.
///
/// ```
/// use mppi::policy_search::Policy;
/// /// u = θ₀ · s₀ (a one-parameter gain), with its exact derivative.
/// struct Gain;
/// impl Policy for Gain {
///     fn state_dim(&self) -> usize { 1 }
///     fn control_dim(&self) -> usize { 1 }
///     fn num_params(&self) -> usize { 1 }
///     fn action(&self, theta: &[f64], s: &[f64], _t: usize, out: &mut [f64]) { out[0] = theta[0] * s[0]; }
///     fn vjp(&self, _theta: &[f64], s: &[f64], _t: usize, v: &[f64], grad: &mut [f64]) { grad[0] += v[0] * s[0]; }
/// }
/// let mut u = [0.0];
/// Gain.action(&[-2.0], &[0.5], 0, &mut u);
/// assert_eq!(u, [-1.0]);
/// assert_eq!(Gain.initial_params(), vec![0.0]);
/// ```
pub trait Policy: Send + Sync {
    /// Dimension `n` of the state it reads.
    fn state_dim(&self) -> usize;
    /// Dimension `m` of the action it writes.
    fn control_dim(&self) -> usize;
    /// Number of parameters `P` (length of `θ`).
    fn num_params(&self) -> usize;
    /// The mean action `μ_θ(s, t)` into `out` (`m` entries); `t` is the time step of the
    /// episode (only time-indexed policies read it).
    fn action(&self, theta: &[f64], state: &[f64], t: usize, out: &mut [f64]);

    /// Vector–Jacobian product: `grad += (∂μ_θ(s, t)/∂θ)ᵀ v` (`v` has `m` entries, `grad`
    /// `P`). The gradient M-step and the gradient form of E.2 item 3 need it.
    ///
    /// The default uses central finite differences (`2P` calls of [`Policy::action`], and it
    /// allocates); the built-in policies override it with their exact derivative.
    fn vjp(&self, theta: &[f64], state: &[f64], t: usize, v: &[f64], grad: &mut [f64]) {
        let m = self.control_dim();
        let mut th = theta.to_vec();
        let (mut hi, mut lo) = (vec![0.0; m], vec![0.0; m]);
        for p in 0..th.len() {
            let h = 1e-6 * (1.0 + th[p].abs());
            th[p] = theta[p] + h;
            self.action(&th, state, t, &mut hi);
            th[p] = theta[p] - h;
            self.action(&th, state, t, &mut lo);
            th[p] = theta[p];
            grad[p] += hi
                .iter()
                .zip(&lo)
                .zip(v)
                .map(|((a, b), vj)| vj * (a - b) / (2.0 * h))
                .sum::<f64>();
        }
    }

    /// The gradient of one row of the M-step's loss `ŵ ½‖a − μ_θ(s, t)‖²`:
    /// `grad += ŵ (∂μ_θ(s, t)/∂θ)ᵀ (μ_θ(s, t) − a)`, with `action` the row's `a` and `weight`
    /// its `ŵ`. The default calls [`Policy::action`] then [`Policy::vjp`]; a policy whose
    /// `vjp` repeats the forward pass overrides it with one pass ([`MlpPolicy`] does).
    fn nll_gradient(
        &self,
        theta: &[f64],
        state: &[f64],
        t: usize,
        action: &[f64],
        weight: f64,
        grad: &mut [f64],
    ) {
        with_action_buffer(self.control_dim(), |v| {
            self.action(theta, state, t, v);
            for (vj, aj) in v.iter_mut().zip(action) {
                *vj = weight * (*vj - aj);
            }
            self.vjp(theta, state, t, v, grad);
        });
    }

    /// The parameters a search starts from when the caller has none: zeros by default.
    fn initial_params(&self) -> Vec<f64> {
        vec![0.0; self.num_params()]
    }

    /// The exact M-step, if this policy has a closed form: write
    /// `argmax_θ Σ_r ŵ_r log N(a_r; μ_θ(s_r, t_r), σ²I)` over `rows` into `theta` (which holds
    /// the current parameters on entry; keep an entry the data does not determine). `ridge`
    /// is [`EmSettings::ridge`]. `None` (the default) means "no closed form": [`EmSearch`]
    /// then takes Adam steps on the weighted negative log-likelihood.
    fn fit_weighted(
        &self,
        _rows: &WeightedRows<'_>,
        _ridge: f64,
        _theta: &mut [f64],
    ) -> Option<Result<(), MppiError>> {
        None
    }
}

/// Run `f` with a zeroed buffer of `m` entries: on the stack for up to 16 actions.
fn with_action_buffer<R>(m: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
    let mut stack = [0.0; 16];
    if m <= stack.len() {
        f(&mut stack[..m])
    } else {
        f(&mut vec![0.0; m])
    }
}

macro_rules! forward_policy {
    ($($ptr:ty),*) => {$(
        impl<P: Policy + ?Sized> Policy for $ptr {
            fn state_dim(&self) -> usize { (**self).state_dim() }
            fn control_dim(&self) -> usize { (**self).control_dim() }
            fn num_params(&self) -> usize { (**self).num_params() }
            fn action(&self, theta: &[f64], state: &[f64], t: usize, out: &mut [f64]) {
                (**self).action(theta, state, t, out)
            }
            fn vjp(&self, theta: &[f64], state: &[f64], t: usize, v: &[f64], grad: &mut [f64]) {
                (**self).vjp(theta, state, t, v, grad)
            }
            fn nll_gradient(
                &self, theta: &[f64], state: &[f64], t: usize, action: &[f64], weight: f64,
                grad: &mut [f64],
            ) {
                (**self).nll_gradient(theta, state, t, action, weight, grad)
            }
            fn initial_params(&self) -> Vec<f64> { (**self).initial_params() }
            fn fit_weighted(
                &self, rows: &WeightedRows<'_>, ridge: f64, theta: &mut [f64],
            ) -> Option<Result<(), MppiError>> {
                (**self).fit_weighted(rows, ridge, theta)
            }
        }
    )*};
}
forward_policy!(Box<P>, std::sync::Arc<P>, &P);

/// Weighted state–action rows: what the EM M-step fits (weighted behaviour cloning).
///
/// Row `r` is the state `s_r` (`n` entries of `states`), the executed action `a_r` (`m`
/// entries of `actions`) and its weight `ŵ_r ≥ 0`. Rows come in episodes of `horizon` steps,
/// so row `r` is time step `t_r = r mod horizon`. In [`EmSearch`] the rows of sample `i`'s
/// `S` episodes all carry `ŵ = w_i / (S·T)`, so the weights sum to 1; a row with a
/// non-finite entry gets weight 0. A fit reads only rows of positive weight.
///
/// ```
/// use mppi::policy_search::WeightedRows;
/// let rows = WeightedRows::new(1, 1, 2, &[1.0, 2.0], &[0.5, 0.25], &[0.5, 0.5]).unwrap();
/// assert_eq!(rows.len(), 2);
/// assert_eq!(rows.row(1), (&[2.0][..], &[0.25][..], 1, 0.5));
/// assert!(WeightedRows::new(1, 1, 2, &[1.0], &[0.5, 0.25], &[0.5, 0.5]).is_err());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct WeightedRows<'a> {
    state_dim: usize,
    control_dim: usize,
    horizon: usize,
    states: &'a [f64],
    actions: &'a [f64],
    weights: &'a [f64],
}

impl<'a> WeightedRows<'a> {
    /// Rows of `n` states and `m` actions in episodes of `horizon` steps; errors if the
    /// lengths disagree (`states`: rows·n, `actions`: rows·m, `weights`: rows) or a
    /// dimension is 0.
    pub fn new(
        n: usize,
        m: usize,
        horizon: usize,
        states: &'a [f64],
        actions: &'a [f64],
        weights: &'a [f64],
    ) -> Result<Self, MppiError> {
        if n == 0 || m == 0 || horizon == 0 {
            return Err(MppiError::config(
                "rows",
                "state and action dimensions and the horizon must be >= 1",
            ));
        }
        let rows = weights.len();
        check_len("row states", rows * n, states.len())?;
        check_len("row actions", rows * m, actions.len())?;
        Ok(WeightedRows {
            state_dim: n,
            control_dim: m,
            horizon,
            states,
            actions,
            weights,
        })
    }
    /// Number of rows.
    #[must_use]
    pub fn len(&self) -> usize {
        self.weights.len()
    }
    /// Whether there are no rows.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }
    /// State dimension `n`.
    #[must_use]
    pub fn state_dim(&self) -> usize {
        self.state_dim
    }
    /// Action dimension `m`.
    #[must_use]
    pub fn control_dim(&self) -> usize {
        self.control_dim
    }
    /// Steps per episode.
    #[must_use]
    pub fn horizon(&self) -> usize {
        self.horizon
    }
    /// Row `r`: `(state, action, time step, weight)`.
    ///
    /// # Panics
    /// If `r >= len()`.
    #[must_use]
    pub fn row(&self, r: usize) -> (&'a [f64], &'a [f64], usize, f64) {
        let (n, m) = (self.state_dim, self.control_dim);
        (
            &self.states[r * n..(r + 1) * n],
            &self.actions[r * m..(r + 1) * m],
            r % self.horizon,
            self.weights[r],
        )
    }
    /// The rows of positive weight.
    pub fn weighted(&self) -> impl Iterator<Item = (&'a [f64], &'a [f64], usize, f64)> + '_ {
        (0..self.len())
            .map(|r| self.row(r))
            .filter(|(_, _, _, w)| *w > 0.0)
    }
}

/// The weighted log-likelihood `Σ_r ŵ_r log N(a_r; μ_θ(s_r, t_r), σ²I)` of `rows` under the
/// policy with parameters `theta` and noise `sigma`: the objective of the EM M-step (rows of
/// zero weight are skipped).
///
/// ```
/// use mppi::policy_search::{LinearPolicy, WeightedRows, weighted_log_likelihood};
/// let policy = LinearPolicy::new(1, 1).unwrap();
/// // a = 2 s exactly: the likelihood is highest at K = 2, k = 0
/// let rows = WeightedRows::new(1, 1, 2, &[1.0, -1.0], &[2.0, -2.0], &[0.5, 0.5]).unwrap();
/// let best = weighted_log_likelihood(&policy, &[2.0, 0.0], &rows, 1.0);
/// assert!(best > weighted_log_likelihood(&policy, &[2.1, 0.0], &rows, 1.0));
/// assert!((best + 0.5 * (2.0 * std::f64::consts::PI).ln()).abs() < 1e-12);
/// ```
#[must_use]
pub fn weighted_log_likelihood<P: Policy + ?Sized>(
    policy: &P,
    theta: &[f64],
    rows: &WeightedRows<'_>,
    sigma: f64,
) -> f64 {
    let m = rows.control_dim();
    let mut mu = vec![0.0; m];
    let norm = -0.5 * m as f64 * (2.0 * std::f64::consts::PI * sigma * sigma).ln();
    let mut total = 0.0;
    for (s, a, t, w) in rows.weighted() {
        policy.action(theta, s, t, &mut mu);
        let sq: f64 = a.iter().zip(&mu).map(|(x, y)| (x - y) * (x - y)).sum();
        total += w * (norm - 0.5 * sq / (sigma * sigma));
    }
    total
}

/// The linear (affine) state feedback `μ_θ(s) = K s + k`, `θ = [K row-major (m × n), k]`.
///
/// Its EM M-step is exact weighted least squares (docs/theory.md §E.2): with rows
/// `φ_r = [s_rᵀ, 1]`,
///
/// ```text
/// [K k]ᵀ = (Σ_r ŵ_r φ_r φ_rᵀ + ρ·d̄·I)⁻¹ Σ_r ŵ_r φ_r a_rᵀ
/// ```
///
/// solved by a Cholesky factorization; `ρ` is [`EmSettings::ridge`], relative to the mean
/// diagonal `d̄` of the weighted Gram matrix (so it is scale free). A design that is singular
/// with `ρ = 0` is an error naming `ridge`, never a NaN.
///
/// ```
/// use mppi::policy_search::{LinearPolicy, Policy, WeightedRows};
/// let policy = LinearPolicy::new(2, 1).unwrap();
/// assert_eq!(policy.num_params(), 3);
/// let mut u = [0.0];
/// policy.action(&[1.0, -2.0, 0.5], &[3.0, 1.0], 0, &mut u); // 1·3 − 2·1 + 0.5
/// assert_eq!(u, [1.5]);
/// // the exact M-step recovers a = −s₀ + 2 s₁ + 1 from three noise-free rows
/// let states = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
/// let actions = [0.0, 3.0, 2.0];
/// let rows = WeightedRows::new(2, 1, 3, &states, &actions, &[1.0 / 3.0; 3]).unwrap();
/// let mut theta = [0.0; 3];
/// policy.fit_weighted(&rows, 0.0, &mut theta).unwrap().unwrap();
/// assert!((theta[0] + 1.0).abs() < 1e-12 && (theta[1] - 2.0).abs() < 1e-12 && (theta[2] - 1.0).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearPolicy {
    n: usize,
    m: usize,
}

impl LinearPolicy {
    /// A linear policy from `state_dim` states to `control_dim` actions.
    pub fn new(state_dim: usize, control_dim: usize) -> Result<Self, MppiError> {
        if state_dim == 0 || control_dim == 0 {
            return Err(MppiError::config(
                "policy",
                "state and control dimensions must be >= 1",
            ));
        }
        Ok(LinearPolicy {
            n: state_dim,
            m: control_dim,
        })
    }
    /// The gain `K` (row-major `m × n`) and offset `k` of `theta`.
    #[must_use]
    pub fn split<'a>(&self, theta: &'a [f64]) -> (&'a [f64], &'a [f64]) {
        theta.split_at(self.n * self.m)
    }
}

impl Policy for LinearPolicy {
    fn state_dim(&self) -> usize {
        self.n
    }
    fn control_dim(&self) -> usize {
        self.m
    }
    fn num_params(&self) -> usize {
        self.m * (self.n + 1)
    }
    fn action(&self, theta: &[f64], state: &[f64], _t: usize, out: &mut [f64]) {
        let (gain, offset) = self.split(theta);
        for ((o, row), k) in out.iter_mut().zip(gain.chunks_exact(self.n)).zip(offset) {
            *o = k + row.iter().zip(state).map(|(a, b)| a * b).sum::<f64>();
        }
    }
    fn vjp(&self, _theta: &[f64], state: &[f64], _t: usize, v: &[f64], grad: &mut [f64]) {
        let (gain, offset) = grad.split_at_mut(self.n * self.m);
        for ((row, o), vj) in gain.chunks_exact_mut(self.n).zip(offset).zip(v) {
            for (g, s) in row.iter_mut().zip(state) {
                *g += vj * s;
            }
            *o += vj;
        }
    }
    fn fit_weighted(
        &self,
        rows: &WeightedRows<'_>,
        ridge: f64,
        theta: &mut [f64],
    ) -> Option<Result<(), MppiError>> {
        Some(self.least_squares(rows, ridge, theta))
    }
}

impl LinearPolicy {
    /// Weighted least squares with a relative ridge (see the type's docs).
    fn least_squares(
        &self,
        rows: &WeightedRows<'_>,
        ridge: f64,
        theta: &mut [f64],
    ) -> Result<(), MppiError> {
        let (n, m) = (self.n, self.m);
        check_len("policy state", n, rows.state_dim())?;
        check_len("policy action", m, rows.control_dim())?;
        check_len("policy parameters", self.num_params(), theta.len())?;
        let q = n + 1;
        // Gram matrix G = Σ ŵ φφᵀ (q × q) and right-hand sides B = Σ ŵ φ aᵀ (q × m)
        let mut g = vec![0.0; q * q];
        let mut b = vec![0.0; q * m];
        let mut phi = vec![1.0; q];
        let mut total = 0.0;
        for (s, a, _, w) in rows.weighted() {
            phi[..n].copy_from_slice(s);
            total += w;
            for i in 0..q {
                let wi = w * phi[i];
                for j in 0..=i {
                    g[i * q + j] += wi * phi[j];
                }
                for (bj, aj) in b[i * m..(i + 1) * m].iter_mut().zip(a) {
                    *bj += wi * aj;
                }
            }
        }
        if !(total > 0.0 && total.is_finite()) {
            return Err(MppiError::config(
                "ridge",
                "no row has a positive finite weight: nothing to fit",
            ));
        }
        let mean_diag = (0..q).map(|i| g[i * q + i]).sum::<f64>() / q as f64;
        for i in 0..q {
            g[i * q + i] += ridge * mean_diag;
        }
        cholesky_solve(&mut g, q, &mut b, m, mean_diag)?;
        if let Some(i) = b.iter().position(|v| !v.is_finite()) {
            return Err(MppiError::NonFinite {
                what: "least-squares solution",
                index: i,
            });
        }
        let (gain, offset) = theta.split_at_mut(n * m);
        for j in 0..m {
            for i in 0..n {
                gain[j * n + i] = b[i * m + j];
            }
            offset[j] = b[n * m + j];
        }
        Ok(())
    }
}

/// Solve `G X = B` in place (`G`: `q × q` symmetric, lower triangle filled; `B`: `q × r`,
/// overwritten by `X`) by a Cholesky factorization `G = L Lᵀ`. A pivot below
/// `1e-13 · scale` (or not finite) means the matrix is singular for practical purposes: an
/// error naming `ridge`.
fn cholesky_solve(
    g: &mut [f64],
    q: usize,
    b: &mut [f64],
    r: usize,
    scale: f64,
) -> Result<(), MppiError> {
    let tiny = 1e-13 * scale.abs().max(f64::MIN_POSITIVE);
    for j in 0..q {
        let mut d = g[j * q + j];
        for k in 0..j {
            d -= g[j * q + k] * g[j * q + k];
        }
        if !(d > tiny && d.is_finite()) {
            return Err(MppiError::config(
                "ridge",
                format!(
                    "the weighted design matrix is singular (pivot {d:e} of column {j}): a \
                     state component does not vary over the weighted rows; set ridge > 0"
                ),
            ));
        }
        let l = d.sqrt();
        g[j * q + j] = l;
        for i in j + 1..q {
            let mut v = g[i * q + j];
            for k in 0..j {
                v -= g[i * q + k] * g[j * q + k];
            }
            g[i * q + j] = v / l;
        }
    }
    // forward: L Y = B
    for i in 0..q {
        for c in 0..r {
            let mut v = b[i * r + c];
            for k in 0..i {
                v -= g[i * q + k] * b[k * r + c];
            }
            b[i * r + c] = v / g[i * q + i];
        }
    }
    // backward: Lᵀ X = Y
    for i in (0..q).rev() {
        for c in 0..r {
            let mut v = b[i * r + c];
            for k in i + 1..q {
                v -= g[k * q + i] * b[k * r + c];
            }
            b[i * r + c] = v / g[i * q + i];
        }
    }
    Ok(())
}

/// The open-loop policy `μ_θ(s_t, t) = u_t`: `θ` is a plan of `T` rows of `m` controls
/// (time-indexed; steps past the plan hold its last row). It ignores the state, so EM
/// policy search with it is MPPI (docs/theory.md §E.2, H21): its M-step is the weighted mean
/// of the executed controls of each time step, `u_t⁺ = Σ_r ŵ_r a_r / Σ_r ŵ_r` over the rows
/// of step `t`.
///
/// ```
/// use mppi::policy_search::{OpenLoopPolicy, Policy, WeightedRows};
/// let policy = OpenLoopPolicy::new(2, 1, 1).unwrap();
/// let mut u = [0.0];
/// policy.action(&[0.3, 0.7], &[5.0], 1, &mut u);
/// assert_eq!(u, [0.7]);
/// policy.action(&[0.3, 0.7], &[5.0], 9, &mut u); // past the plan: its last row
/// assert_eq!(u, [0.7]);
/// // two episodes of two steps, weights 0.75 and 0.25: per step the weighted mean
/// let rows = WeightedRows::new(1, 1, 2, &[0.0; 4], &[1.0, 2.0, 3.0, 4.0], &[0.375, 0.375, 0.125, 0.125]).unwrap();
/// let mut theta = [0.0; 2];
/// policy.fit_weighted(&rows, 0.0, &mut theta).unwrap().unwrap();
/// assert_eq!(theta, [1.5, 2.5]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenLoopPolicy {
    horizon: usize,
    n: usize,
    m: usize,
}

impl OpenLoopPolicy {
    /// A plan of `horizon` steps of `control_dim` controls, for a system with `state_dim`
    /// states (which it does not read).
    pub fn new(horizon: usize, state_dim: usize, control_dim: usize) -> Result<Self, MppiError> {
        if horizon == 0 || state_dim == 0 || control_dim == 0 {
            return Err(MppiError::config(
                "policy",
                "horizon, state and control dimensions must be >= 1",
            ));
        }
        Ok(OpenLoopPolicy {
            horizon,
            n: state_dim,
            m: control_dim,
        })
    }
    /// Steps of the plan.
    #[must_use]
    pub fn horizon(&self) -> usize {
        self.horizon
    }
}

impl Policy for OpenLoopPolicy {
    fn state_dim(&self) -> usize {
        self.n
    }
    fn control_dim(&self) -> usize {
        self.m
    }
    fn num_params(&self) -> usize {
        self.horizon * self.m
    }
    fn action(&self, theta: &[f64], _state: &[f64], t: usize, out: &mut [f64]) {
        let t = t.min(self.horizon - 1);
        out.copy_from_slice(&theta[t * self.m..(t + 1) * self.m]);
    }
    fn vjp(&self, _theta: &[f64], _state: &[f64], t: usize, v: &[f64], grad: &mut [f64]) {
        let t = t.min(self.horizon - 1);
        for (g, vj) in grad[t * self.m..(t + 1) * self.m].iter_mut().zip(v) {
            *g += vj;
        }
    }
    fn fit_weighted(
        &self,
        rows: &WeightedRows<'_>,
        _ridge: f64,
        theta: &mut [f64],
    ) -> Option<Result<(), MppiError>> {
        Some(self.weighted_means(rows, theta))
    }
}

impl OpenLoopPolicy {
    /// The weighted mean of the actions of each time step (see the type's docs).
    fn weighted_means(&self, rows: &WeightedRows<'_>, theta: &mut [f64]) -> Result<(), MppiError> {
        check_len("policy action", self.m, rows.control_dim())?;
        check_len("policy parameters", self.num_params(), theta.len())?;
        let m = self.m;
        let mut sums = vec![0.0; theta.len()];
        let mut totals = vec![0.0; self.horizon];
        for (_, a, t, w) in rows.weighted() {
            let t = t.min(self.horizon - 1);
            totals[t] += w;
            for (acc, aj) in sums[t * m..(t + 1) * m].iter_mut().zip(a) {
                *acc += w * aj;
            }
        }
        // a step no weighted row reached keeps its control
        for (t, total) in totals.iter().enumerate() {
            if *total > 0.0 {
                for (th, s) in theta[t * m..(t + 1) * m]
                    .iter_mut()
                    .zip(&sums[t * m..(t + 1) * m])
                {
                    *th = s / total;
                }
            }
        }
        Ok(())
    }
}

/// A multilayer perceptron with one or two `tanh` hidden layers and a linear output:
///
/// ```text
/// h₁ = tanh(W₁ s + b₁),  [h₂ = tanh(W₂ h₁ + b₂)],  μ_θ(s) = W_o h_L + b_o
/// ```
///
/// `θ` is the flat concatenation, layer by layer, of `W` (row-major, `out × in`) then `b`.
/// Forward and backward passes are written out here (no NN crate; the activations of a
/// small network live on the stack). Its EM M-step is Adam on the weighted negative
/// log-likelihood ([`AdamSettings`]); the backward pass gives the exact `(∂μ/∂θ)ᵀ v`, and
/// [`Policy::nll_gradient`] shares one forward pass with it.
///
/// [`Policy::initial_params`] draws `W ~ N(0, 1/in)` for the hidden layers and
/// `N(0, 0.01/in)` for the output layer from the policy's seed, biases 0: a random feature
/// map with a near-zero action.
///
/// ```
/// use mppi::policy_search::{MlpPolicy, Policy};
/// let policy = MlpPolicy::new(2, 1, &[8], 0).unwrap();
/// assert_eq!(policy.num_params(), 8 * 2 + 8 + 8 + 1);
/// let theta = policy.initial_params();
/// let mut u = [0.0];
/// policy.action(&theta, &[0.5, -0.5], 0, &mut u);
/// assert!(u[0].is_finite() && u[0].abs() < 1.0);
/// assert!(MlpPolicy::new(2, 1, &[8, 8, 8], 0).is_err()); // one or two hidden layers
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlpPolicy {
    n: usize,
    m: usize,
    hidden: Vec<usize>,
    seed: u64,
}

/// Where one dense layer's weights and biases start in `θ`.
#[derive(Debug, Clone, Copy)]
struct Layer {
    inputs: usize,
    outputs: usize,
    w: usize,
    b: usize,
}

impl MlpPolicy {
    /// Widest hidden layer.
    pub const MAX_WIDTH: usize = 4096;

    /// A network from `state_dim` inputs through the `hidden` widths (one or two layers, each
    /// from 1 to [`MlpPolicy::MAX_WIDTH`]) to `control_dim` outputs; `seed` draws its initial
    /// parameters.
    pub fn new(
        state_dim: usize,
        control_dim: usize,
        hidden: &[usize],
        seed: u64,
    ) -> Result<Self, MppiError> {
        if state_dim == 0 || control_dim == 0 {
            return Err(MppiError::config(
                "policy",
                "state and control dimensions must be >= 1",
            ));
        }
        if hidden.is_empty() || hidden.len() > 2 {
            return Err(MppiError::config(
                "hidden",
                format!(
                    "one or two hidden layers are supported, got {}",
                    hidden.len()
                ),
            ));
        }
        if let Some(h) = hidden.iter().find(|h| **h == 0 || **h > Self::MAX_WIDTH) {
            return Err(MppiError::config(
                "hidden",
                format!(
                    "every hidden width must be from 1 to {}, got {h}",
                    Self::MAX_WIDTH
                ),
            ));
        }
        Ok(MlpPolicy {
            n: state_dim,
            m: control_dim,
            hidden: hidden.to_vec(),
            seed,
        })
    }

    /// The hidden widths.
    #[must_use]
    pub fn hidden(&self) -> &[usize] {
        &self.hidden
    }

    /// The dense layers, input to output, with their offsets in `θ` (at most three).
    fn layers(&self) -> ([Layer; 3], usize) {
        let mut layers = [Layer {
            inputs: 0,
            outputs: 0,
            w: 0,
            b: 0,
        }; 3];
        let mut inputs = self.n;
        let mut offset = 0;
        let widths = self.hidden.iter().copied().chain(std::iter::once(self.m));
        let mut count = 0;
        for (layer, outputs) in layers.iter_mut().zip(widths) {
            *layer = Layer {
                inputs,
                outputs,
                w: offset,
                b: offset + inputs * outputs,
            };
            offset += (inputs + 1) * outputs;
            inputs = outputs;
            count += 1;
        }
        (layers, count)
    }
}

impl MlpPolicy {
    /// Run `f` with scratch for the activations and their gradients (`2·(h₁ + h₂)` entries):
    /// on the stack for a small network, else allocated.
    fn with_scratch<R>(&self, f: impl FnOnce(&mut [f64]) -> R) -> R {
        const STACK: usize = 256;
        let need = 2 * self.hidden.iter().sum::<usize>();
        if need <= STACK {
            let mut stack = [0.0; STACK];
            f(&mut stack[..need])
        } else {
            f(&mut vec![0.0; need])
        }
    }

    /// The forward pass: the hidden activations into the first half of `scratch`
    /// (`h₁`, then `h₂`), the output into `out`.
    fn forward(&self, theta: &[f64], state: &[f64], scratch: &mut [f64], out: &mut [f64]) {
        let (layers, count) = self.layers();
        let w1 = layers[0].outputs;
        let (h1, rest) = scratch.split_at_mut(w1);
        dense(theta, layers[0], state, h1, true);
        if count == 2 {
            dense(theta, layers[1], h1, out, false);
        } else {
            let h2 = &mut rest[..layers[1].outputs];
            dense(theta, layers[1], h1, h2, true);
            dense(theta, layers[2], h2, out, false);
        }
    }

    /// The backward pass after [`MlpPolicy::forward`] left its activations in `scratch`:
    /// `grad += (∂μ/∂θ)ᵀ v`, the activations' gradients in the second half of `scratch`.
    fn backward(
        &self,
        theta: &[f64],
        state: &[f64],
        scratch: &mut [f64],
        v: &[f64],
        grad: &mut [f64],
    ) {
        let (layers, count) = self.layers();
        let total = self.hidden.iter().sum::<usize>();
        let (acts, deltas) = scratch.split_at_mut(total);
        let w1 = layers[0].outputs;
        let (h1, h2) = acts.split_at(w1);
        let (d1, d2) = deltas.split_at_mut(w1);
        if count == 2 {
            // output layer: δ = v; back through tanh: δ₁ = (W_oᵀ v) ⊙ (1 − h₁²)
            dense_back(theta, layers[1], h1, v, grad, Some(d1));
        } else {
            let w2 = layers[1].outputs;
            let (h2, d2) = (&h2[..w2], &mut d2[..w2]);
            dense_back(theta, layers[2], h2, v, grad, Some(&mut *d2));
            for (d, h) in d2.iter_mut().zip(h2) {
                *d *= 1.0 - h * h;
            }
            dense_back(theta, layers[1], h1, d2, grad, Some(&mut *d1));
        }
        for (d, h) in d1.iter_mut().zip(h1) {
            *d *= 1.0 - h * h;
        }
        dense_back(theta, layers[0], state, d1, grad, None);
    }
}

/// `out = tanh?(W x + b)` for one layer.
fn dense(theta: &[f64], layer: Layer, x: &[f64], out: &mut [f64], squash: bool) {
    let w = &theta[layer.w..layer.w + layer.inputs * layer.outputs];
    let b = &theta[layer.b..layer.b + layer.outputs];
    for ((o, row), bi) in out.iter_mut().zip(w.chunks_exact(layer.inputs)).zip(b) {
        let z = bi + row.iter().zip(x).map(|(a, c)| a * c).sum::<f64>();
        *o = if squash { z.tanh() } else { z };
    }
}

/// `grad_W += δ xᵀ`, `grad_b += δ` for one layer; then, if `back` is given, the input's
/// gradient `Wᵀ δ` into it.
fn dense_back(
    theta: &[f64],
    layer: Layer,
    x: &[f64],
    delta: &[f64],
    grad: &mut [f64],
    back: Option<&mut [f64]>,
) {
    let (ni, no) = (layer.inputs, layer.outputs);
    for (i, d) in delta[..no].iter().enumerate() {
        let row = &mut grad[layer.w + i * ni..layer.w + (i + 1) * ni];
        for (g, xv) in row.iter_mut().zip(x) {
            *g += d * xv;
        }
        grad[layer.b + i] += d;
    }
    if let Some(back) = back {
        let w = &theta[layer.w..layer.w + ni * no];
        back[..ni].fill(0.0);
        for (row, d) in w.chunks_exact(ni).zip(delta) {
            for (bk, wv) in back.iter_mut().zip(row) {
                *bk += wv * d;
            }
        }
    }
}

impl Policy for MlpPolicy {
    fn state_dim(&self) -> usize {
        self.n
    }
    fn control_dim(&self) -> usize {
        self.m
    }
    fn num_params(&self) -> usize {
        let (layers, count) = self.layers();
        layers[..count]
            .iter()
            .map(|l| (l.inputs + 1) * l.outputs)
            .sum()
    }
    fn action(&self, theta: &[f64], state: &[f64], _t: usize, out: &mut [f64]) {
        self.with_scratch(|scratch| {
            self.forward(theta, state, scratch, out);
        });
    }
    fn vjp(&self, theta: &[f64], state: &[f64], _t: usize, v: &[f64], grad: &mut [f64]) {
        self.with_scratch(|scratch| {
            with_action_buffer(self.m, |out| {
                self.forward(theta, state, scratch, out);
                self.backward(theta, state, scratch, v, grad);
            });
        });
    }
    fn nll_gradient(
        &self,
        theta: &[f64],
        state: &[f64],
        _t: usize,
        action: &[f64],
        weight: f64,
        grad: &mut [f64],
    ) {
        self.with_scratch(|scratch| {
            with_action_buffer(self.m, |v| {
                self.forward(theta, state, scratch, v);
                for (vj, aj) in v.iter_mut().zip(action) {
                    *vj = weight * (*vj - aj);
                }
                self.backward(theta, state, scratch, v, grad);
            });
        });
    }
    fn initial_params(&self) -> Vec<f64> {
        let (layers, count) = self.layers();
        let mut theta = vec![0.0; self.num_params()];
        // a stream of its own (the searches use step 0)
        let mut rng = sample_rng(self.seed, u64::MAX, 0, 0);
        for (i, layer) in layers[..count].iter().enumerate() {
            let gain = if i + 1 == count { 0.1 } else { 1.0 };
            let scale = gain / (layer.inputs as f64).sqrt();
            for w in &mut theta[layer.w..layer.b] {
                *w = scale * rng.normal();
            }
        }
        theta
    }
}

// ---------------------------------------------------------------------------------------------
// The closed-loop problem
// ---------------------------------------------------------------------------------------------

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
    policy: P,
    dynamics: D,
    cost: C,
    /// Start states, `S × n` row-major.
    starts: Vec<f64>,
    horizon: usize,
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
    fn buffer_len(&self) -> usize {
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
    fn episode(
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

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

/// How [`EmSearch`] takes the M-step.
///
/// ```
/// use mppi::policy_search::EmSettings;
/// let s: EmSettings = toml::from_str("m_step = \"gradient\"").unwrap();
/// assert_eq!(s.m_step, mppi::policy_search::MStep::Gradient);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MStep {
    /// The policy's closed form ([`Policy::fit_weighted`]) where it has one, Adam otherwise.
    #[default]
    Auto,
    /// Always Adam steps on the weighted negative log-likelihood (a generalized M-step).
    Gradient,
}

/// The `[adam]` section of [`EmSettings`]: the gradient M-step,
/// `adam.steps` full-batch Adam steps from `θ_k` on
/// `L(θ) = Σ_r ŵ_r ½‖a_r − μ_θ(s_r, t_r)‖²` (the weighted negative log-likelihood up to the
/// factor `1/σ²`, which Adam's scale invariance makes irrelevant; fresh moments every M-step).
///
/// ```
/// use mppi::policy_search::AdamSettings;
/// let a = AdamSettings::default();
/// assert_eq!((a.steps, a.learning_rate), (50, 0.01));
/// let bad = AdamSettings { beta1: 1.0, ..a };
/// assert!(bad.validate().unwrap_err().to_string().contains("adam.beta1"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamSettings {
    /// Adam steps per M-step (at least 1).
    pub steps: usize,
    /// Learning rate `> 0`.
    pub learning_rate: f64,
    /// First-moment decay in `[0, 1)`.
    pub beta1: f64,
    /// Second-moment decay in `[0, 1)`.
    pub beta2: f64,
    /// Denominator offset `> 0`.
    pub epsilon: f64,
}

impl Default for AdamSettings {
    fn default() -> Self {
        AdamSettings {
            steps: 50,
            learning_rate: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        }
    }
}

impl AdamSettings {
    /// Check the section; errors name the key (`adam.learning_rate`).
    pub fn validate(&self) -> Result<(), MppiError> {
        if self.steps == 0 {
            return Err(MppiError::config("adam.steps", "must be >= 1"));
        }
        if self.steps > MAX_ADAM_STEPS {
            return Err(MppiError::config(
                "adam.steps",
                format!("must be at most {MAX_ADAM_STEPS}, got {}", self.steps),
            ));
        }
        positive("adam.learning_rate", self.learning_rate)?;
        unit_interval("adam.beta1", self.beta1)?;
        unit_interval("adam.beta2", self.beta2)?;
        positive("adam.epsilon", self.epsilon)
    }
}

/// Most Adam steps per M-step.
const MAX_ADAM_STEPS: usize = 1_000_000;

/// Settings of [`EmSearch`] (EM policy search with action-space exploration, docs/theory.md
/// §E.2 item 2). The problem itself (horizon, start states, bounds, discount) is the
/// [`ClosedLoop`]'s.
///
/// ```
/// use mppi::policy_search::EmSettings;
/// let s: EmSettings = toml::from_str(
///     "samples = 128\nsigma = 0.5\n[weighting]\ntemperature = { kind = \"fixed\", lambda = 2.0 }",
/// ).unwrap();
/// assert_eq!((s.samples, s.sigma), (128, 0.5));
/// assert!(toml::from_str::<EmSettings>("sigmaa = 0.5").is_err()); // a typo is an error
/// let bad = EmSettings { sigma: -1.0, ..EmSettings::default() };
/// assert!(bad.validate().unwrap_err().to_string().contains("`sigma`"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmSettings {
    /// EM iterations [`PolicySearch::run`] takes.
    pub iterations: usize,
    /// Samples `N` per iteration (each is one noisy episode per start state), at least 2.
    pub samples: usize,
    /// Standard deviation `σ > 0` of the action noise `ε_t ~ N(0, σ²I)`, in control units.
    pub sigma: f64,
    /// The E-step: temperature rule (`fixed`, `std_normalized`, `ess_target`) and elites, as
    /// the planner's `[weighting]` (`control_cost_gamma` must stay 0 here).
    pub weighting: WeightingConfig,
    /// Relative ridge `ρ ≥ 0` of the linear policy's least squares (see [`LinearPolicy`]).
    pub ridge: f64,
    /// `auto` (closed form where the policy has one) or `gradient` (always Adam).
    pub m_step: MStep,
    /// The gradient M-step.
    pub adam: AdamSettings,
    /// Seed of the exploration noise; results are a pure function of it.
    pub seed: u64,
    /// Largest memory the rollouts may take, in MiB.
    pub memory_limit_mb: f64,
}

impl Default for EmSettings {
    fn default() -> Self {
        EmSettings {
            iterations: 30,
            samples: 64,
            sigma: 1.0,
            weighting: WeightingConfig {
                temperature: TemperatureConfig::EssTarget { target: 0.1 },
                ..WeightingConfig::default()
            },
            ridge: 1e-9,
            m_step: MStep::Auto,
            adam: AdamSettings::default(),
            seed: 0,
            memory_limit_mb: 4096.0,
        }
    }
}

impl EmSettings {
    /// Check every value; errors name the key (`sigma`, `weighting.temperature.lambda`).
    pub fn validate(&self) -> Result<(), MppiError> {
        if self.iterations == 0 {
            return Err(MppiError::config("iterations", "must be >= 1"));
        }
        if self.samples < 2 {
            return Err(MppiError::config(
                "samples",
                format!("must be >= 2, got {}", self.samples),
            ));
        }
        positive("sigma", self.sigma)?;
        self.weighting.validate(self.samples)?;
        if self.weighting.control_cost_gamma != 0.0 {
            return Err(MppiError::config(
                "weighting.control_cost_gamma",
                "does not apply to EM policy search (set it to 0)",
            ));
        }
        if !(self.ridge.is_finite() && self.ridge >= 0.0) {
            return Err(MppiError::config(
                "ridge",
                format!("must be a finite number >= 0, got {}", self.ridge),
            ));
        }
        self.adam.validate()?;
        positive("memory_limit_mb", self.memory_limit_mb)
    }

    /// Bytes the rollouts of `samples` samples of `starts` episodes of `horizon` steps
    /// (`n` states, `m` actions, `p` parameters) take, or `None` beyond `u128`.
    fn workspace_bytes(
        &self,
        starts: usize,
        horizon: usize,
        n: usize,
        m: usize,
        p: usize,
    ) -> Option<u128> {
        let rows = (self.samples as u128)
            .checked_mul(starts as u128)?
            .checked_mul(horizon as u128)?;
        let per_row = (n as u128 + m as u128 + 1) * 8;
        rows.checked_mul(per_row)?
            .checked_add((self.samples as u128).checked_mul(16)?)?
            .checked_add((p as u128).checked_mul(48)?)
    }
}

/// Settings of [`ParamSearch`] (parameter-space MPPI, docs/theory.md §E.2 item 1): the
/// planner's own keys, with `θ` as its controls (horizon 1). The default proposal is the
/// fixed Gaussian with `noise_sigma = 0.1` (`Σ_θ = 0.01 I`); `gaussian_diag` adapts `Σ_θ`.
///
/// ```
/// use mppi::policy_search::ParamSettings;
/// let s: ParamSettings = toml::from_str(
///     "samples = 32\n[proposal]\nkind = \"gaussian_diag\"\nnoise_sigma = 0.2\n[update]\nstep_size = 0.5",
/// ).unwrap();
/// let config = s.planner_config();
/// assert_eq!((config.samples, config.horizon), (32, 1));
/// let bad = ParamSettings { samples: 0, ..ParamSettings::default() };
/// assert!(bad.validate(3).unwrap_err().to_string().contains("`samples`"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParamSettings {
    /// EM iterations (the planner's `iterations`: a schedule anneals over them).
    pub iterations: usize,
    /// Parameter samples `θ_i` per iteration, at least 2.
    pub samples: usize,
    /// The distribution of `θ_i`: its kind and keys (`noise_sigma` is `Σ_θ`'s standard
    /// deviation).
    pub proposal: ProposalConfig,
    /// Annealing over the iterations.
    pub schedule: ScheduleConfig,
    /// The E-step: temperature rule and elites.
    pub weighting: WeightingConfig,
    /// Step size and acceleration.
    pub update: UpdateConfig,
    /// Seed of the parameter noise.
    pub seed: u64,
    /// Rollout threads (results do not depend on it).
    pub threads: usize,
    /// Largest memory the planner may take, in MiB.
    pub memory_limit_mb: f64,
}

impl Default for ParamSettings {
    fn default() -> Self {
        ParamSettings {
            iterations: 30,
            samples: 64,
            proposal: ProposalConfig::gaussian(&[0.1]),
            schedule: ScheduleConfig::Constant,
            weighting: WeightingConfig {
                temperature: TemperatureConfig::EssTarget { target: 0.1 },
                ..WeightingConfig::default()
            },
            update: UpdateConfig::default(),
            seed: 0,
            threads: 1,
            memory_limit_mb: 4096.0,
        }
    }
}

impl ParamSettings {
    /// The planner's config: horizon 1, these keys, no control bounds (`θ` is unbounded).
    #[must_use]
    pub fn planner_config(&self) -> MppiConfig {
        MppiConfig {
            samples: self.samples,
            horizon: 1,
            iterations: self.iterations,
            seed: self.seed,
            threads: self.threads,
            parallel: Parallel::Auto,
            memory_limit_mb: self.memory_limit_mb,
            proposal: self.proposal.clone(),
            schedule: self.schedule,
            weighting: self.weighting,
            update: self.update,
            ..MppiConfig::default()
        }
    }

    /// Check every value for a policy of `num_params` parameters; errors name the key as it
    /// is written here (`samples`, `proposal.noise_sigma`).
    pub fn validate(&self, num_params: usize) -> Result<(), MppiError> {
        if num_params == 0 {
            return Err(MppiError::config("policy", "has no parameters"));
        }
        self.planner_config().validate(num_params)
    }
}

fn positive(field: &'static str, v: f64) -> Result<(), MppiError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(MppiError::config(
            field,
            format!("must be a finite number > 0, got {v}"),
        ))
    }
}

fn unit_interval(field: &'static str, v: f64) -> Result<(), MppiError> {
    if (0.0..1.0).contains(&v) {
        Ok(())
    } else {
        Err(MppiError::config(
            field,
            format!("must be in [0, 1), got {v}"),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// The searches
// ---------------------------------------------------------------------------------------------

/// What one iteration of a search measured.
///
/// ```
/// use mppi::policy_search::IterationReport;
/// let r = IterationReport { iteration: 3, policy_cost: 1.5, ..IterationReport::default() };
/// assert_eq!((r.iteration, r.weights.ess), (3, 0.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct IterationReport {
    /// Index of the iteration (0 for the first).
    pub iteration: usize,
    /// The E-step: temperature, ESS, smallest and mean cost of the rollouts, non-finite count.
    #[serde(flatten)]
    pub weights: WeightStats,
    /// `J(θ)` of the deterministic policy after the update (parameter-space: the mean `θ̄`).
    pub policy_cost: f64,
    /// `‖θ_{k+1} − θ_k‖₂`.
    pub update_norm: f64,
    /// No rollout cost was finite, so the parameters were kept.
    pub kept_policy: bool,
}

/// A policy search that improves `θ` one iteration at a time: [`EmSearch`] or
/// [`ParamSearch`].
///
/// ```
/// use mppi::policy_search::{ClosedLoop, LinearPolicy, ParamSearch, ParamSettings, PolicySearch};
/// # use mppi::{Cost, Dynamics};
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
/// let problem = ClosedLoop::new(LinearPolicy::new(1, 1)?, Integrator, Quadratic, &[vec![1.0]], 20)?;
/// let settings = ParamSettings { iterations: 5, samples: 16, ..ParamSettings::default() };
/// let mut search: Box<dyn PolicySearch> = Box::new(ParamSearch::new(problem, &settings, &[0.0, 0.0])?);
/// let mut printed = 0;
/// let reports = search.run(&mut |r| { printed += 1; assert!(r.policy_cost.is_finite()); })?;
/// assert_eq!((reports.len(), printed), (5, 5));
/// # Ok::<(), mppi::MppiError>(())
/// ```
pub trait PolicySearch {
    /// One iteration: sample, weigh, fit, and report.
    fn iterate(&mut self) -> Result<IterationReport, MppiError>;
    /// The current parameters `θ` (parameter-space: the mean `θ̄`).
    fn params(&self) -> &[f64];
    /// `J(θ)` of the current deterministic policy.
    fn policy_cost(&self) -> Result<f64, MppiError>;
    /// The iterations [`PolicySearch::run`] takes (the settings' `iterations`).
    fn iterations(&self) -> usize;
    /// Run [`PolicySearch::iterations`] iterations, handing each report to `observe`
    /// (e.g. to print progress); returns every report.
    fn run(
        &mut self,
        observe: &mut dyn FnMut(&IterationReport),
    ) -> Result<Vec<IterationReport>, MppiError> {
        let mut reports = Vec::with_capacity(self.iterations().min(1 << 20));
        for _ in 0..self.iterations() {
            let report = self.iterate()?;
            observe(&report);
            reports.push(report);
        }
        Ok(reports)
    }
}

/// Parameter-space MPPI (PI^BB): the library's [`Planner`] on `θ`.
///
/// Every iteration is one [`Planner::iterate_from`] at control step 0, iteration `k`, on the
/// [`ClosedLoop`] objective: `θ_i ~ p(·; θ̄_k)`, `J_i = J(θ_i)`, `w = softmax(−J/λ)`,
/// `θ̄_EM = Σ_i w_i θ_i` (for the Gaussian families), then the update stage
/// (`θ̄_{k+1} = θ̄_k + α(θ̄_EM − θ̄_k) + β(θ̄_k − θ̄_{k−1})`). No loop of its own.
///
/// ```
/// use mppi::policy_search::{ClosedLoop, LinearPolicy, ParamSearch, ParamSettings, PolicySearch};
/// # use mppi::{Cost, Dynamics};
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
/// let problem = ClosedLoop::new(LinearPolicy::new(1, 1)?, Integrator, Quadratic, &[vec![1.0]], 20)?;
/// let settings = ParamSettings { samples: 32, ..ParamSettings::default() };
/// let mut search = ParamSearch::new(problem, &settings, &[0.0, 0.0])?;
/// let before = search.policy_cost()?;
/// for _ in 0..10 {
///     search.iterate()?;
/// }
/// assert!(search.policy_cost()? < before);
/// assert_eq!(search.planner().num_samples(), 32);
/// # Ok::<(), mppi::MppiError>(())
/// ```
pub struct ParamSearch<P, D, C> {
    problem: ClosedLoop<P, D, C>,
    planner: Planner,
    iterations: usize,
    iteration: u64,
}

impl<P: Policy, D: Dynamics, C: Cost> ParamSearch<P, D, C> {
    /// A search on `problem` from `theta0` with `settings` (validated here).
    pub fn new(
        problem: ClosedLoop<P, D, C>,
        settings: &ParamSettings,
        theta0: &[f64],
    ) -> Result<Self, MppiError> {
        let p = problem.num_params();
        settings.validate(p)?;
        check_len("initial parameters", p, theta0.len())?;
        check_finite("initial parameters", theta0)?;
        let mut planner = Planner::new(&settings.planner_config(), p)?;
        planner.set_mean(theta0)?;
        planner.prepare(&problem);
        Ok(ParamSearch {
            problem,
            planner,
            iterations: settings.iterations,
            iteration: 0,
        })
    }
    /// The problem.
    #[must_use]
    pub fn problem(&self) -> &ClosedLoop<P, D, C> {
        &self.problem
    }
    /// The planner (its samples, costs and weights are those of the last iteration).
    #[must_use]
    pub fn planner(&self) -> &Planner {
        &self.planner
    }
}

impl<P: Policy, D: Dynamics, C: Cost> PolicySearch for ParamSearch<P, D, C> {
    fn iterate(&mut self) -> Result<IterationReport, MppiError> {
        let stats = self
            .planner
            .iterate_from(&self.problem, None, 0, self.iteration)?;
        self.iteration += 1;
        Ok(IterationReport {
            iteration: stats.iteration as usize,
            weights: stats.weights,
            policy_cost: self.problem.policy_cost(self.planner.mean())?,
            update_norm: stats.update_norm,
            kept_policy: stats.kept_plan,
        })
    }
    fn params(&self) -> &[f64] {
        self.planner.mean()
    }
    fn policy_cost(&self) -> Result<f64, MppiError> {
        self.problem.policy_cost(self.planner.mean())
    }
    fn iterations(&self) -> usize {
        self.iterations
    }
}

/// EM policy search with action-space exploration and a weighted maximum-likelihood M-step
/// (reward-weighted regression; docs/theory.md §E.2 item 2).
///
/// Iteration `k`:
/// 1. sample `i < N` draws from [`sample_rng`]`(seed, 0, k, i)` one noisy episode per start
///    state, `a_t = clamp(μ_θ(x_t, t) + σ z_t)`, and costs `J_i` (the mean over its
///    episodes);
/// 2. `w = softmax(−J/λ)` by the library's weighting stage ([`Softmax`] with the settings'
///    temperature rule and elites; a NaN cost gets weight 0, and if no cost is finite `θ` is
///    kept);
/// 3. the M-step on the rows of every episode with `ŵ = w_i/(S·T)` ([`WeightedRows`]):
///    [`Policy::fit_weighted`] where it exists (and `m_step = "auto"`), otherwise
///    `adam.steps` Adam steps on `Σ ŵ ½‖a − μ_θ(s)‖²` from `θ_k`.
///
/// ```
/// use mppi::policy_search::{ClosedLoop, EmSearch, EmSettings, MlpPolicy, Policy, PolicySearch};
/// # use mppi::{Cost, Dynamics};
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
/// let policy = MlpPolicy::new(1, 1, &[8], 1)?;
/// let theta0 = policy.initial_params();
/// let problem = ClosedLoop::new(policy, Integrator, Quadratic, &[vec![1.0], vec![-1.0]], 20)?;
/// let mut settings = EmSettings { samples: 32, ..EmSettings::default() };
/// settings.adam.steps = 20;
/// let mut search = EmSearch::new(problem, &settings, &theta0)?;
/// let before = search.policy_cost()?;
/// for _ in 0..5 {
///     search.iterate()?;
/// }
/// assert!(search.policy_cost()? < before);
/// assert_eq!(search.rows().len(), 32 * 2 * 20);
/// # Ok::<(), mppi::MppiError>(())
/// ```
pub struct EmSearch<P, D, C> {
    problem: ClosedLoop<P, D, C>,
    settings: EmSettings,
    weighting: Softmax,
    theta: Vec<f64>,
    iteration: u64,
    costs: Vec<f64>,
    weights: Vec<f64>,
    /// The rows of the last iteration: `N·S·T` states, actions and row weights.
    states: Vec<f64>,
    actions: Vec<f64>,
    row_weights: Vec<f64>,
    buf: Vec<f64>,
    adam: AdamState,
}

/// Adam's buffers: the moments and the gradient.
#[derive(Debug, Clone)]
struct AdamState {
    first: Vec<f64>,
    second: Vec<f64>,
    grad: Vec<f64>,
}

impl<P: Policy, D: Dynamics, C: Cost> EmSearch<P, D, C> {
    /// A search on `problem` from `theta0` with `settings` (validated here, with the size of
    /// the rollouts checked against `memory_limit_mb`).
    pub fn new(
        problem: ClosedLoop<P, D, C>,
        settings: &EmSettings,
        theta0: &[f64],
    ) -> Result<Self, MppiError> {
        settings.validate()?;
        let p = problem.num_params();
        check_len("initial parameters", p, theta0.len())?;
        check_finite("initial parameters", theta0)?;
        let (n, m) = (problem.dynamics.state_dim(), problem.dynamics.control_dim());
        let (s, t) = (problem.num_starts(), problem.horizon);
        let limit = settings.memory_limit_mb * 1024.0 * 1024.0;
        let need = settings.workspace_bytes(s, t, n, m, p);
        if need.is_none_or(|b| b as f64 > limit) {
            return Err(MppiError::config(
                "samples",
                format!(
                    "samples = {} x {s} start states x horizon {t} rows of {n} states and {m} \
                     actions need {} bytes, over memory_limit_mb = {}: reduce them, or raise \
                     memory_limit_mb if the machine has the memory",
                    settings.samples,
                    need.map_or("more than 10^38".to_string(), |b| b.to_string()),
                    settings.memory_limit_mb
                ),
            ));
        }
        let temperature = settings.weighting.validate(settings.samples)?;
        let rows = settings.samples * s * t;
        Ok(EmSearch {
            weighting: Softmax::new(temperature, settings.weighting.elites, settings.samples),
            theta: theta0.to_vec(),
            iteration: 0,
            costs: vec![0.0; settings.samples],
            weights: vec![0.0; settings.samples],
            states: vec![0.0; rows * n],
            actions: vec![0.0; rows * m],
            row_weights: vec![0.0; rows],
            buf: vec![0.0; problem.buffer_len()],
            adam: AdamState {
                first: vec![0.0; p],
                second: vec![0.0; p],
                grad: vec![0.0; p],
            },
            settings: settings.clone(),
            problem,
        })
    }

    /// The problem.
    #[must_use]
    pub fn problem(&self) -> &ClosedLoop<P, D, C> {
        &self.problem
    }
    /// The costs `J_i` of the last iteration's samples.
    #[must_use]
    pub fn costs(&self) -> &[f64] {
        &self.costs
    }
    /// The weights `w_i` of the last iteration's samples.
    #[must_use]
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }
    /// The last iteration's rows with their M-step weights `ŵ` (sample `i`'s episode from
    /// start `s` is rows `(i·S + s)·T ..`).
    #[must_use]
    pub fn rows(&self) -> WeightedRows<'_> {
        let (n, m) = (
            self.problem.dynamics.state_dim(),
            self.problem.dynamics.control_dim(),
        );
        WeightedRows {
            state_dim: n,
            control_dim: m,
            horizon: self.problem.horizon,
            states: &self.states,
            actions: &self.actions,
            weights: &self.row_weights,
        }
    }
    /// Replace the parameters (e.g. to restart from a known policy).
    pub fn set_params(&mut self, theta: &[f64]) -> Result<(), MppiError> {
        check_len("policy parameters", self.theta.len(), theta.len())?;
        check_finite("policy parameters", theta)?;
        self.theta.copy_from_slice(theta);
        Ok(())
    }

    /// Step 1: the noisy episodes of every sample, their rows and costs.
    fn sample(&mut self) {
        let problem = &self.problem;
        let (n, m, t) = (
            problem.dynamics.state_dim(),
            problem.dynamics.control_dim(),
            problem.horizon,
        );
        let s = problem.num_starts();
        for (i, cost) in self.costs.iter_mut().enumerate() {
            let mut rng = sample_rng(self.settings.seed, 0, self.iteration, i as u64);
            let mut total = 0.0;
            for start in 0..s {
                let r = (i * s + start) * t;
                let record = (
                    &mut self.states[r * n..(r + t) * n],
                    &mut self.actions[r * m..(r + t) * m],
                );
                total += problem.episode(
                    &self.theta,
                    problem.start(start),
                    Some((&mut rng, self.settings.sigma)),
                    Some(record),
                    &mut self.buf,
                );
            }
            *cost = total / s as f64;
        }
    }

    /// Step 3's row weights `ŵ = w_i / (S·T)`, 0 for a row with a non-finite entry.
    fn weigh_rows(&mut self) {
        let (n, m) = (
            self.problem.dynamics.state_dim(),
            self.problem.dynamics.control_dim(),
        );
        let per_sample = self.problem.num_starts() * self.problem.horizon;
        let scale = 1.0 / per_sample as f64;
        for (r, rw) in self.row_weights.iter_mut().enumerate() {
            let w = self.weights[r / per_sample];
            let finite = self.states[r * n..(r + 1) * n]
                .iter()
                .chain(&self.actions[r * m..(r + 1) * m])
                .all(|v| v.is_finite());
            *rw = if w > 0.0 && finite { w * scale } else { 0.0 };
        }
    }

    /// The gradient M-step: Adam on `Σ ŵ ½‖a − μ_θ(s)‖²` from the current `θ`. Stops early
    /// (keeping the last finite `θ`) if a gradient is not finite.
    fn adam_fit(&mut self) {
        let a = self.settings.adam;
        let rows = WeightedRows {
            state_dim: self.problem.dynamics.state_dim(),
            control_dim: self.problem.dynamics.control_dim(),
            horizon: self.problem.horizon,
            states: &self.states,
            actions: &self.actions,
            weights: &self.row_weights,
        };
        let policy = &self.problem.policy;
        let st = &mut self.adam;
        st.first.fill(0.0);
        st.second.fill(0.0);
        let (mut b1t, mut b2t) = (1.0, 1.0);
        for _ in 0..a.steps {
            st.grad.fill(0.0);
            for (s, act, t, w) in rows.weighted() {
                policy.nll_gradient(&self.theta, s, t, act, w, &mut st.grad);
            }
            if !st.grad.iter().all(|g| g.is_finite()) {
                break;
            }
            b1t *= a.beta1;
            b2t *= a.beta2;
            for (((th, g), m1), m2) in self
                .theta
                .iter_mut()
                .zip(&st.grad)
                .zip(&mut st.first)
                .zip(&mut st.second)
            {
                *m1 = a.beta1 * *m1 + (1.0 - a.beta1) * g;
                *m2 = a.beta2 * *m2 + (1.0 - a.beta2) * g * g;
                let mhat = *m1 / (1.0 - b1t);
                let vhat = *m2 / (1.0 - b2t);
                *th -= a.learning_rate * mhat / (vhat.sqrt() + a.epsilon);
            }
        }
    }
}

impl<P: Policy, D: Dynamics, C: Cost> PolicySearch for EmSearch<P, D, C> {
    fn iterate(&mut self) -> Result<IterationReport, MppiError> {
        let k = self.iteration;
        self.sample();
        let stats = self.weighting.weigh(&self.costs, 1.0, &mut self.weights);
        self.iteration += 1;
        let mut report = IterationReport {
            iteration: k as usize,
            weights: stats,
            ..IterationReport::default()
        };
        if stats.all_nonfinite(self.settings.samples) {
            self.row_weights.fill(0.0);
            report.kept_policy = true;
            report.policy_cost = self.policy_cost()?;
            return Ok(report);
        }
        self.weigh_rows();
        let before = self.theta.clone();
        let closed = match self.settings.m_step {
            MStep::Auto => {
                let mut theta = self.theta.clone();
                self.problem
                    .policy
                    .fit_weighted(&self.rows(), self.settings.ridge, &mut theta)
                    .map(|r| r.map(|()| theta))
            }
            MStep::Gradient => None,
        };
        match closed {
            Some(Ok(theta)) => self.theta = theta,
            Some(Err(e)) => return Err(e),
            None => self.adam_fit(),
        }
        report.update_norm = self
            .theta
            .iter()
            .zip(&before)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        report.policy_cost = self.policy_cost()?;
        Ok(report)
    }
    fn params(&self) -> &[f64] {
        &self.theta
    }
    fn policy_cost(&self) -> Result<f64, MppiError> {
        self.problem.policy_cost(&self.theta)
    }
    fn iterations(&self) -> usize {
        self.settings.iterations
    }
}
