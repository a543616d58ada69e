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

use serde::Serialize;

use crate::error::MppiError;
use crate::weights::WeightStats;
#[cfg(doc)]
use crate::{
    objective::{Cost, Dynamics, Objective},
    rng::sample_rng,
    weights::Softmax,
};

mod closed_loop;
mod em;
mod mlp;
mod param;
mod policies;

pub use closed_loop::ClosedLoop;
pub use em::{AdamSettings, EmSearch, EmSettings, MStep};
pub use mlp::MlpPolicy;
pub use param::{ParamSearch, ParamSettings};
pub use policies::{LinearPolicy, OpenLoopPolicy, Policy, WeightedRows, weighted_log_likelihood};

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
