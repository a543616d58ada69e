//! The schedule stage: what changes from one iteration to the next before the samples are
//! drawn (annealing).
//!
//! Before every iteration the loop asks the [`Schedule`] for per-time-step multipliers `s_t`
//! of the proposal's spread and a multiplier of the temperature. The constant schedule (the
//! default) changes nothing, which is plain EM-MPPI. Annealed MPPI (DIAL-MPC, diffusion-style
//! planners, docs/theory.md §F.2) shrinks the spread over the iterations of a control step,
//! so the first iterations explore and the last ones refine: each iteration is then an EM step
//! on a differently smoothed objective. A diffusion schedule ([`crate::diffusion`]) may also
//! replace the update of an iteration by a reverse-diffusion step ([`ReverseStep`]): a step
//! size below one and noise injected into the plan.

use std::fmt::Debug;

use serde::{Deserialize, Serialize};

use crate::error::MppiError;

/// What a schedule decided for one iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Annealing {
    /// Whether the spread multipliers apply this iteration (`false`: the proposal's own spread,
    /// which skips the extra multiply in the sampler).
    pub scaled: bool,
    /// Multiplier of the temperature `λ` this iteration (see [`crate::Weighting::weigh`]).
    pub temperature_scale: f64,
    /// A reverse-diffusion step in place of the update stage this iteration (`None`: the
    /// configured update).
    pub reverse: Option<ReverseStep>,
}

impl Annealing {
    /// No change: the proposal's own spread and the configured temperature.
    pub const NONE: Annealing = Annealing {
        scaled: false,
        temperature_scale: 1.0,
        reverse: None,
    };
}

/// A reverse-diffusion step as an update of the plan (docs/theory.md §F.1):
///
/// ```text
/// θ ← θ_k + α (θ_EM − θ_k)           (mean coordinates; refused by the proposal → θ_EM)
/// plan ← c · plan + ν L z            (one draw of the proposal at spread ν around the plan)
/// ```
///
/// `α = step_size`, `c = plan_scale`, `ν = noise` (a multiplier of the proposal's own spread
/// `L`); the noise is drawn from the sample stream `samples` of the iteration (one past the
/// last sample), so it is the same on any number of threads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReverseStep {
    /// `α > 0`: the step toward the M-step result.
    pub step_size: f64,
    /// `c > 0`: scale of the plan after the step (1 except for VP Euler–Maruyama).
    pub plan_scale: f64,
    /// `ν ≥ 0`: the injected noise.
    pub noise: f64,
}

impl ReverseStep {
    /// The plain EM step: `α = 1`, `c = 1`, no noise.
    pub const EM: ReverseStep = ReverseStep {
        step_size: 1.0,
        plan_scale: 1.0,
        noise: 0.0,
    };

    /// Check the values a schedule returned (`step` and `iteration` name where).
    pub fn validate(&self, step: u64, iteration: u64) -> Result<(), MppiError> {
        let ok = self.step_size.is_finite()
            && self.step_size > 0.0
            && self.plan_scale.is_finite()
            && self.plan_scale > 0.0
            && self.noise.is_finite()
            && self.noise >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(MppiError::config(
                "schedule",
                format!(
                    "the schedule's reverse step needs a finite step size > 0, plan scale > 0 \
                     and noise >= 0, got {self:?} (step {step}, iteration {iteration})"
                ),
            ))
        }
    }
}

/// Per-iteration and per-time-step changes of the spread and the temperature.
///
/// ```
/// use mppi::{Annealing, Schedule};
/// /// Halve the spread at every iteration of a control step.
/// #[derive(Debug)]
/// struct Halving;
/// impl Schedule for Halving {
///     fn before_iteration(&mut self, _step: u64, iteration: u64, _iterations: u64, spread: &mut [f64]) -> Annealing {
///         spread.fill(0.5f64.powi(iteration as i32));
///         Annealing { scaled: true, ..Annealing::NONE }
///     }
/// }
/// let mut s = [0.0; 3];
/// assert!(Halving.before_iteration(0, 2, 4, &mut s).scaled);
/// assert_eq!(s, [0.25; 3]);
/// ```
pub trait Schedule: Send + Sync + Debug {
    /// Called before iteration `iteration` of `iterations` at control step `step`: write the
    /// spread multiplier `s_t > 0` of every time step into `spread` (`T` entries) and say
    /// whether it applies, and by how much to scale the temperature.
    fn before_iteration(
        &mut self,
        step: u64,
        iteration: u64,
        iterations: u64,
        spread: &mut [f64],
    ) -> Annealing;
    /// Iterations to run at control step `step` when the config asks for `configured`
    /// (DIAL-MPC runs more at the first step). The default keeps `configured`.
    fn iterations(&self, _step: u64, configured: usize) -> usize {
        configured
    }
}

/// The default schedule: the proposal's own spread and the configured temperature at every
/// iteration.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Constant;

impl Schedule for Constant {
    fn before_iteration(&mut self, _: u64, _: u64, _: u64, _: &mut [f64]) -> Annealing {
        Annealing::NONE
    }
}

/// DIAL-MPC's annealing (docs/theory.md §F.2): at iteration `k` the spread of time step `t`
/// of a horizon of `T` is
///
/// ```text
/// s_{k,t} = s · a^k · b^(T − 1 − t)
/// ```
///
/// with `s = scale`, `a = iteration_factor` (the spread shrinks over the iterations of a
/// control step) and `b = horizon_factor` (far time steps explore more than near ones).
/// DIAL-MPC's defaults are `a = 0.5`, `b = 0.9`, and ten iterations at the first control step
/// (`Ndiffuse_init`); its paper's exponential form is [`DialExp`].
///
/// ```
/// use mppi::{Schedule, schedule::Dial};
/// let mut dial = Dial { scale: 1.0, iteration_factor: 0.5, horizon_factor: 0.9, first_step_iterations: Some(10) };
/// let mut s = [0.0; 3];
/// dial.before_iteration(0, 1, 2, &mut s);
/// assert!((s[2] - 0.5).abs() < 1e-15 && (s[0] - 0.5 * 0.81).abs() < 1e-15);
/// assert_eq!((dial.iterations(0, 2), dial.iterations(1, 2)), (10, 2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dial {
    /// Multiplier `s > 0` of the whole schedule (DIAL-MPC's `sigma_scale`, relative to the
    /// proposal's own spread).
    pub scale: f64,
    /// Factor `a ∈ (0, 1]` of the spread per iteration.
    pub iteration_factor: f64,
    /// Factor `b ∈ (0, 1]` of the spread per time step closer to the present.
    pub horizon_factor: f64,
    /// Iterations at the first control step (`None`: the configured `iterations`).
    pub first_step_iterations: Option<usize>,
}

impl Default for Dial {
    fn default() -> Self {
        Dial {
            scale: 1.0,
            iteration_factor: 0.5,
            horizon_factor: 0.9,
            first_step_iterations: None,
        }
    }
}

impl Dial {
    /// Check the factors, naming the key of the `[schedule]` section in the error.
    pub fn validate(&self) -> Result<(), MppiError> {
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(MppiError::config(
                "schedule.scale",
                format!("must be a finite number > 0, got {}", self.scale),
            ));
        }
        for (key, v) in [
            ("schedule.iteration_factor", self.iteration_factor),
            ("schedule.horizon_factor", self.horizon_factor),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(MppiError::config(
                    key,
                    format!("must be in (0, 1], got {v}"),
                ));
            }
        }
        if self.first_step_iterations == Some(0) {
            return Err(MppiError::config(
                "schedule.first_step_iterations",
                "must be >= 1 (or absent for the configured iterations)",
            ));
        }
        Ok(())
    }
}

impl Schedule for Dial {
    fn before_iteration(
        &mut self,
        _step: u64,
        iteration: u64,
        _iterations: u64,
        spread: &mut [f64],
    ) -> Annealing {
        let t_last = spread.len().saturating_sub(1);
        // powi takes i32: clamp huge iteration counts (the factor is ≤ 1, so the spread only
        // gets smaller)
        let k = iteration.min(i32::MAX as u64) as i32;
        let per_iteration = self.scale * self.iteration_factor.powi(k);
        for (t, s) in spread.iter_mut().enumerate() {
            *s = (per_iteration * self.horizon_factor.powi((t_last - t) as i32))
                .max(f64::MIN_POSITIVE);
        }
        Annealing {
            scaled: true,
            ..Annealing::NONE
        }
    }
    fn iterations(&self, step: u64, configured: usize) -> usize {
        first_step(step, self.first_step_iterations, configured)
    }
}

fn first_step(step: u64, first: Option<usize>, configured: usize) -> usize {
    match (step, first) {
        (0, Some(n)) => n,
        _ => configured,
    }
}

/// DIAL-MPC's paper form of its schedule (`[schedule] kind = "dial_exp"`): with `N`
/// iterations at the control step and the last time step `H = T − 1`,
///
/// ```text
/// s_{k,t} = exp(−k/(β₁ N) − (H − t)/(β₂ H))
/// ```
///
/// (the paper writes it over the reverse index `i = N − k`). It is [`Dial`] with
/// `a = e^{−1/(β₁N)}`, `b = e^{−1/(β₂H)}`, `scale = 1` ([`DialExp::as_dial`]); unlike `Dial`
/// its factors follow the iteration count and the horizon. The paper's `Σ` is read as the
/// spread (DIAL-MPC's code anneals the standard deviation).
///
/// ```
/// use mppi::{Schedule, schedule::DialExp};
/// let mut exp = DialExp { beta_iterations: 1.0, beta_horizon: 1.0, first_step_iterations: None };
/// let mut s = [0.0; 5];
/// exp.before_iteration(0, 2, 4, &mut s);
/// assert!((s[4] - (-0.5f64).exp()).abs() < 1e-15 && (s[0] - (-1.5f64).exp()).abs() < 1e-15);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialExp {
    /// `β₁ > 0`: iterations over which the spread falls by a factor `e` is `β₁ N`.
    pub beta_iterations: f64,
    /// `β₂ > 0`: the spread grows by `e^{1/β₂}` from the first to the last time step.
    pub beta_horizon: f64,
    /// Iterations at the first control step (`None`: the configured `iterations`).
    pub first_step_iterations: Option<usize>,
}

impl Default for DialExp {
    fn default() -> Self {
        DialExp {
            beta_iterations: 1.0,
            beta_horizon: 1.0,
            first_step_iterations: None,
        }
    }
}

impl DialExp {
    /// Check the values, naming the key of the `[schedule]` section in the error.
    pub fn validate(&self) -> Result<(), MppiError> {
        for (key, v) in [
            ("schedule.beta_iterations", self.beta_iterations),
            ("schedule.beta_horizon", self.beta_horizon),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(MppiError::config(
                    key,
                    format!("must be a finite number > 0, got {v}"),
                ));
            }
        }
        if self.first_step_iterations == Some(0) {
            return Err(MppiError::config(
                "schedule.first_step_iterations",
                "must be >= 1 (or absent for the configured iterations)",
            ));
        }
        Ok(())
    }

    /// The geometric form with the same spreads at `iterations` iterations and a horizon of
    /// `horizon` time steps.
    #[must_use]
    pub fn as_dial(&self, iterations: usize, horizon: usize) -> Dial {
        let n = iterations.max(1) as f64;
        let h = horizon.saturating_sub(1).max(1) as f64;
        Dial {
            scale: 1.0,
            iteration_factor: (-1.0 / (self.beta_iterations * n)).exp(),
            horizon_factor: (-1.0 / (self.beta_horizon * h)).exp(),
            first_step_iterations: self.first_step_iterations,
        }
    }
}

impl Schedule for DialExp {
    fn before_iteration(
        &mut self,
        _step: u64,
        iteration: u64,
        iterations: u64,
        spread: &mut [f64],
    ) -> Annealing {
        let n = iterations.max(1) as f64;
        let h_last = spread.len().saturating_sub(1);
        let h = h_last.max(1) as f64;
        let k = iteration as f64;
        for (t, s) in spread.iter_mut().enumerate() {
            let e = -k / (self.beta_iterations * n) - (h_last - t) as f64 / (self.beta_horizon * h);
            *s = e.exp().max(f64::MIN_POSITIVE);
        }
        Annealing {
            scaled: true,
            ..Annealing::NONE
        }
    }
    fn iterations(&self, step: u64, configured: usize) -> usize {
        first_step(step, self.first_step_iterations, configured)
    }
}
