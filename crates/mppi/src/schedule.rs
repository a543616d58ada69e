//! The schedule stage: what changes from one iteration to the next before the samples are
//! drawn (annealing).
//!
//! Before every iteration the loop asks the [`Schedule`] for per-time-step multipliers `s_t`
//! of the proposal's spread and a multiplier of the temperature. The constant schedule (the
//! default) changes nothing, which is plain EM-MPPI. Annealed MPPI (DIAL-MPC, diffusion-style
//! planners, docs/theory.md §F.2) shrinks the spread over the iterations of a control step,
//! so the first iterations explore and the last ones refine: each iteration is then an EM step
//! on a differently smoothed objective.

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
}

impl Annealing {
    /// No change: the proposal's own spread and the configured temperature.
    pub const NONE: Annealing = Annealing {
        scaled: false,
        temperature_scale: 1.0,
    };
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
///         Annealing { scaled: true, temperature_scale: 1.0 }
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
/// s_{k,t} = a^k · b^(T − 1 − t)
/// ```
///
/// with `a = iteration_factor` (the spread shrinks over the iterations of a control step) and
/// `b = horizon_factor` (far time steps explore more than near ones). DIAL-MPC's defaults are
/// `a = 0.5`, `b = 0.9`, and ten iterations at the first control step.
///
/// ```
/// use mppi::{Schedule, schedule::Dial};
/// let mut dial = Dial { iteration_factor: 0.5, horizon_factor: 0.9, first_step_iterations: Some(10) };
/// let mut s = [0.0; 3];
/// dial.before_iteration(0, 1, 2, &mut s);
/// assert!((s[2] - 0.5).abs() < 1e-15 && (s[0] - 0.5 * 0.81).abs() < 1e-15);
/// assert_eq!((dial.iterations(0, 2), dial.iterations(1, 2)), (10, 2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dial {
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
            iteration_factor: 0.5,
            horizon_factor: 0.9,
            first_step_iterations: None,
        }
    }
}

impl Dial {
    /// Check the factors, naming the key of the `[schedule]` section in the error.
    pub fn validate(&self) -> Result<(), MppiError> {
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
        let per_iteration = self.iteration_factor.powi(k);
        for (t, s) in spread.iter_mut().enumerate() {
            *s = (per_iteration * self.horizon_factor.powi((t_last - t) as i32))
                .max(f64::MIN_POSITIVE);
        }
        Annealing {
            scaled: true,
            temperature_scale: 1.0,
        }
    }
    fn iterations(&self, step: u64, configured: usize) -> usize {
        match (step, self.first_step_iterations) {
            (0, Some(n)) => n,
            _ => configured,
        }
    }
}
