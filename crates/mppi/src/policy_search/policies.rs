//! The [`Policy`] trait, the [`WeightedRows`] an EM M-step fits, and the two policies with a
//! closed-form M-step: [`LinearPolicy`] (weighted least squares) and [`OpenLoopPolicy`] (the
//! weighted mean per time step).

use crate::error::{MppiError, check_len};

#[cfg(doc)]
use super::{EmSearch, EmSettings, MlpPolicy};

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
pub(super) fn with_action_buffer<R>(m: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
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
    pub(super) state_dim: usize,
    pub(super) control_dim: usize,
    pub(super) horizon: usize,
    pub(super) states: &'a [f64],
    pub(super) actions: &'a [f64],
    pub(super) weights: &'a [f64],
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
