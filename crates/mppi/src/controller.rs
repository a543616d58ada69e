//! The receding-horizon controller: warm start, `act(state) -> control`, diagnostics.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::MppiConfig;
use crate::error::{MppiError, check_len};
use crate::objective::{Cost, Dynamics, RolloutObjective};
use crate::planner::{IterStats, Observer, Planner};

/// What one control step did.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct StepReport {
    /// Index of the control step (0 for the first call of `act`).
    pub step: u64,
    /// Statistics of every EM iteration of this step, in order.
    pub iterations: Vec<IterStats>,
    /// Wall-clock time spent planning (shift + iterations).
    #[serde(serialize_with = "as_secs")]
    pub planning_time: Duration,
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl StepReport {
    /// Statistics of the last iteration of the step.
    #[must_use]
    pub fn last(&self) -> IterStats {
        self.iterations.last().copied().unwrap_or_default()
    }
}

/// MPPI in closed loop: plan from the current state, apply the first control, shift the plan.
///
/// ```
/// use mppi::{Controller, Cost, Dynamics, MppiConfig};
/// // drive a 1-D integrator x' = x + 0.1 u to the origin
/// struct Integrator;
/// impl Dynamics for Integrator {
///     fn state_dim(&self) -> usize { 1 }
///     fn control_dim(&self) -> usize { 1 }
///     fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) { next[0] = x[0] + 0.1 * u[0]; }
/// }
/// struct ToOrigin;
/// impl Cost for ToOrigin {
///     fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 { x[0] * x[0] + 0.01 * u[0] * u[0] }
/// }
/// let cfg = MppiConfig { samples: 256, horizon: 20, lambda: 0.1, ..MppiConfig::default() };
/// let mut ctrl = Controller::new(Integrator, ToOrigin, &cfg).unwrap();
/// let mut x = [1.0];
/// for _ in 0..60 {
///     let u = ctrl.act(&x).unwrap()[0];
///     x[0] += 0.1 * u;
/// }
/// assert!(x[0].abs() < 0.1);
/// assert!(ctrl.report().last().weights.ess >= 1.0);
/// ```
pub struct Controller<D, C> {
    planner: Planner,
    objective: RolloutObjective<D, C>,
    step: u64,
    started: bool,
    action: Vec<f64>,
    report: StepReport,
}

impl<D: Dynamics, C: Cost> Controller<D, C> {
    /// Build a controller for `dynamics` and `cost` with `config`.
    pub fn new(dynamics: D, cost: C, config: &MppiConfig) -> Result<Self, MppiError> {
        let m = dynamics.control_dim();
        let mut planner = Planner::new(config, m)?;
        let objective = RolloutObjective::new(dynamics, cost, config.horizon, config.discount)?;
        planner.prepare(&objective);
        Ok(Controller {
            planner,
            objective,
            step: 0,
            started: false,
            action: vec![0.0; m],
            report: StepReport {
                step: 0,
                iterations: Vec::with_capacity(config.iterations),
                planning_time: Duration::ZERO,
            },
        })
    }

    /// Plan from `state` and return the control to apply now (the plan's first control).
    ///
    /// Errors if `state` has the wrong length or a non-finite entry. If every sampled cost is
    /// non-finite the previous (shifted) plan is kept and the report says so.
    pub fn act(&mut self, state: &[f64]) -> Result<&[f64], MppiError> {
        self.act_observed(state, &mut ())
    }

    /// [`Controller::act`], reporting every EM iteration to `observer`.
    pub fn act_observed(
        &mut self,
        state: &[f64],
        observer: &mut dyn Observer,
    ) -> Result<&[f64], MppiError> {
        self.objective.set_state(state)?;
        let start = Instant::now();
        if self.started {
            self.planner.shift(self.planner.shift_fill());
        }
        self.started = true;
        self.report.iterations.clear();
        for it in 0..self.planner.iterations() as u64 {
            let stats = self.planner.iterate(&self.objective, self.step, it)?;
            observer.on_iteration(&stats, &self.planner);
            self.report.iterations.push(stats);
        }
        self.report.planning_time = start.elapsed();
        self.report.step = self.step;
        self.step += 1;
        let m = self.action.len();
        self.action.copy_from_slice(&self.planner.mean()[..m]);
        Ok(&self.action)
    }

    /// Diagnostics of the last control step.
    #[must_use]
    pub fn report(&self) -> &StepReport {
        &self.report
    }
    /// The current plan (`T·m`), as optimized for the last state passed to `act`.
    #[must_use]
    pub fn plan(&self) -> &[f64] {
        self.planner.mean()
    }
    /// The planner (samples, weights, noise model).
    #[must_use]
    pub fn planner(&self) -> &Planner {
        &self.planner
    }
    /// The rollout objective (dynamics, cost, current state).
    #[must_use]
    pub fn objective(&self) -> &RolloutObjective<D, C> {
        &self.objective
    }
    /// Replace the plan, e.g. with a known good initial guess.
    pub fn set_plan(&mut self, plan: &[f64]) -> Result<(), MppiError> {
        self.planner.set_mean(plan)
    }
    /// Forget the plan and the step counter.
    pub fn reset(&mut self) {
        self.planner.reset();
        self.step = 0;
        self.started = false;
    }

    /// Roll out sample `index` of the last iteration from the last state, writing the `T + 1`
    /// visited states row-major into `states`; returns its cost (without the control-cost term).
    pub fn sample_rollout(&self, index: usize, states: &mut [f64]) -> Result<f64, MppiError> {
        let d = self.planner.mean().len();
        if index >= self.planner.num_samples() {
            return Err(MppiError::DimensionMismatch {
                what: "sample index",
                expected: self.planner.num_samples(),
                got: index,
            });
        }
        check_len(
            "states",
            (self.objective.horizon() + 1) * self.objective.dynamics().state_dim(),
            states.len(),
        )?;
        self.objective
            .rollout(&self.planner.samples()[index * d..(index + 1) * d], states)
    }
}
