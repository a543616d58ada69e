//! The receding-horizon controller: warm start, `act(state) -> control`, diagnostics.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::MppiConfig;
use crate::error::{MppiError, check_len};
use crate::objective::{Cost, Dynamics, Objective, RolloutObjective};
use crate::planner::{Deadline, IterStats, Observer, Planner, Stages, Status};
use crate::proposal::Proposal;
use crate::smoothing::Smoother;

/// What one control step did.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct StepReport {
    /// Index of the control step (0 for the first call of `act`).
    pub step: u64,
    /// Why the loop stopped: every iteration ran, the deadline came, or an observer stopped
    /// it.
    pub status: Status,
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

/// An [`Objective`] over plans that starts from a state: what a [`Controller`] closes the loop
/// with. [`RolloutObjective`] (dynamics + cost) is one; a learned latent model or a Python
/// callback is another.
pub trait StateObjective: Objective {
    /// Control dimension `m` (a plan is `T` rows of `m`).
    fn control_dim(&self) -> usize;
    /// Plan from `state` from now on; an error if it has the wrong length or is not finite.
    fn set_state(&mut self, state: &[f64]) -> Result<(), MppiError>;
    /// The state the plans start from.
    fn state(&self) -> &[f64];
}

impl<D: Dynamics, C: Cost> StateObjective for RolloutObjective<D, C> {
    fn control_dim(&self) -> usize {
        self.dynamics().control_dim()
    }
    fn set_state(&mut self, state: &[f64]) -> Result<(), MppiError> {
        RolloutObjective::set_state(self, state)
    }
    fn state(&self) -> &[f64] {
        RolloutObjective::state(self)
    }
}

/// MPPI in closed loop: plan from the current state, apply the first control, shift the plan.
///
/// ```
/// use mppi::{Controller, Cost, Dynamics, MppiConfig, WeightingConfig};
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
/// let cfg = MppiConfig { samples: 256, horizon: 20, weighting: WeightingConfig::fixed(0.1), ..MppiConfig::default() };
/// let mut ctrl = Controller::new(Integrator, ToOrigin, &cfg).unwrap();
/// let mut x = [1.0];
/// for _ in 0..60 {
///     let u = ctrl.act(&x).unwrap()[0];
///     x[0] += 0.1 * u;
/// }
/// assert!(x[0].abs() < 0.1);
/// assert!(ctrl.report().last().weights.ess >= 1.0);
/// ```
pub struct Controller<O> {
    planner: Planner,
    objective: O,
    deadline: Option<Duration>,
    step: u64,
    started: bool,
    action: Vec<f64>,
    report: StepReport,
    /// The `[smoothing]` stage; `None` when it is off.
    smoother: Option<Smoother>,
}

impl<D: Dynamics, C: Cost> Controller<RolloutObjective<D, C>> {
    /// Build a controller for `dynamics` and `cost` with `config`.
    pub fn new(dynamics: D, cost: C, config: &MppiConfig) -> Result<Self, MppiError> {
        let objective = RolloutObjective::new(dynamics, cost, config.horizon, config.discount)?
            .with_precision(config.precision);
        Self::from_objective(objective, config)
    }

    /// [`Controller::new`] for a model that is its own running cost, whose dynamics computes
    /// the running cost and the step in one pass (see [`RolloutObjective::with_fused_cost`]).
    pub fn with_fused_cost(dynamics: D, cost: C, config: &MppiConfig) -> Result<Self, MppiError> {
        let objective =
            RolloutObjective::with_fused_cost(dynamics, cost, config.horizon, config.discount)?
                .with_precision(config.precision);
        Self::from_objective(objective, config)
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
        let mut controls = vec![0.0; d];
        self.planner.sample(index, &mut controls)?;
        self.objective.rollout(&controls, states)
    }
}

impl<O: StateObjective> Controller<O> {
    /// A controller for any objective that starts from a state, with the stages `config`
    /// describes.
    pub fn from_objective(objective: O, config: &MppiConfig) -> Result<Self, MppiError> {
        let stages = Stages::from_config(config, objective.control_dim())?;
        Self::with_stages(objective, stages, config)
    }

    /// A controller with a proposal of your own (a user-written family, a learned policy);
    /// the other stages come from `config`.
    pub fn with_proposal(
        objective: O,
        proposal: Box<dyn Proposal>,
        config: &MppiConfig,
    ) -> Result<Self, MppiError> {
        let stages = Stages::with_proposal(config, proposal)?;
        Self::with_stages(objective, stages, config)
    }

    /// A controller from stages of your own (see [`Stages::from_config`]).
    pub fn with_stages(
        objective: O,
        stages: Stages,
        config: &MppiConfig,
    ) -> Result<Self, MppiError> {
        let m = objective.control_dim();
        check_len(
            "proposal control dimension",
            m,
            stages.proposal.control_dim(),
        )?;
        let mut planner = Planner::with_stages(config, stages)?;
        planner.prepare(&objective);
        let smoother = Smoother::from_config(config, m)?;
        let capacity = config.iterations.max(planner.iterations_at(0));
        Ok(Controller {
            planner,
            objective,
            deadline: config
                .deadline_ms
                .map(|ms| Duration::from_secs_f64(ms / 1000.0)),
            step: 0,
            started: false,
            action: vec![0.0; m],
            report: StepReport {
                step: 0,
                status: Status::MaxIterations,
                iterations: Vec::with_capacity(capacity),
                planning_time: Duration::ZERO,
            },
            smoother,
        })
    }

    /// Plan from `state` and return the control to apply now (the plan's first control).
    ///
    /// With a `[smoothing]` section the optimized plan is then smoothed (Savitzky–Golay),
    /// limited forward from the previously returned controls (`|u_t − u_{t−1}|`,
    /// `|u_t − 2u_{t−1} + u_{t−2}|` per step) and clamped into the bounds; the returned
    /// control is the first entry of that plan, which is written back into the proposal's
    /// mean (so [`Controller::plan`] and the next warm start are the smoothed plan, or the
    /// family's projection of it) and so differs from the EM mean. See [`crate::smoothing`].
    ///
    /// Errors if `state` has the wrong length or a non-finite entry. If every sampled cost is
    /// non-finite the previous (shifted) plan is kept and the report says so. With
    /// `deadline_ms` the loop stops early when the next iteration would overrun it
    /// ([`Status::OutOfTime`] in the report).
    pub fn act(&mut self, state: &[f64]) -> Result<&[f64], MppiError> {
        self.act_observed(state, &mut ())
    }

    /// [`Controller::act`], reporting every EM iteration to `observer` (which may stop the
    /// loop early).
    pub fn act_observed(
        &mut self,
        state: &[f64],
        observer: &mut dyn Observer,
    ) -> Result<&[f64], MppiError> {
        let start = Instant::now();
        let deadline = self
            .deadline
            .map_or(Deadline::NONE, |budget| Deadline(start.checked_add(budget)));
        self.objective.set_state(state)?;
        if self.started {
            self.planner.shift(self.planner.shift_fill());
        }
        self.started = true;
        self.report.iterations.clear();
        let mut recording = Recording {
            iterations: &mut self.report.iterations,
            inner: observer,
        };
        let outcome = self.planner.optimize_until(
            &self.objective,
            Some(state),
            self.step,
            deadline,
            &mut recording,
        )?;
        let m = self.action.len();
        if let Some(smoother) = &mut self.smoother {
            // SG, limits from the executed history, bounds; the smoothed plan warm-starts
            let plan = smoother.smooth(self.planner.mean())?;
            self.planner.set_mean(plan)?;
            self.action.copy_from_slice(&plan[..m]);
            smoother.record(&self.action);
        } else {
            self.action.copy_from_slice(&self.planner.mean()[..m]);
        }
        self.report.status = outcome.status;
        self.report.planning_time = start.elapsed();
        self.report.step = self.step;
        self.step += 1;
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
    /// The planner (samples, weights, proposal).
    #[must_use]
    pub fn planner(&self) -> &Planner {
        &self.planner
    }
    /// The objective (for rollouts: dynamics, cost, current state).
    #[must_use]
    pub fn objective(&self) -> &O {
        &self.objective
    }
    /// Replace the plan, e.g. with a known good initial guess.
    pub fn set_plan(&mut self, plan: &[f64]) -> Result<(), MppiError> {
        self.planner.set_mean(plan)
    }
    /// Forget the plan, the step counter and the executed controls that the smoothing limits
    /// start from.
    pub fn reset(&mut self) {
        self.planner.reset();
        self.step = 0;
        self.started = false;
        if let Some(smoother) = &mut self.smoother {
            smoother.reset();
        }
    }
    /// The smoothing stage (`None` when `[smoothing]` is off): the executed controls the
    /// next plan is limited from, the last smoothed plan.
    #[must_use]
    pub fn smoother(&self) -> Option<&Smoother> {
        self.smoother.as_ref()
    }
    /// Change the planning budget of every later `act` (what `deadline_ms` sets; `None`: no
    /// deadline). The first iteration always runs, so a step may still take longer.
    pub fn set_deadline(&mut self, budget: Option<Duration>) {
        self.deadline = budget;
    }
    /// Advance the warm start by `steps` control steps without planning: the plan (and the
    /// proposal's per-step parameters) shift `steps` times, as `act` shifts once before it
    /// plans. For loops whose consecutive plans start more than one step apart, e.g. a
    /// real-time planner that skipped ticks: shift `gap − 1` steps, then `act`. The step
    /// counter (and so the random streams of the next `act`) does not change.
    pub fn skip_steps(&mut self, steps: usize) {
        for _ in 0..steps {
            self.planner.shift(self.planner.shift_fill());
        }
    }
}

/// Records every iteration into the step report and forwards it to the caller's observer.
struct Recording<'a> {
    iterations: &'a mut Vec<IterStats>,
    inner: &'a mut dyn Observer,
}

impl Observer for Recording<'_> {
    fn on_iteration(&mut self, stats: &IterStats, planner: &Planner) -> ControlFlow<()> {
        self.iterations.push(*stats);
        self.inner.on_iteration(stats, planner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ShiftFill;
    use crate::{ProposalConfig, WeightingConfig};

    /// x' = x + u, cost x² (optionally NaN everywhere).
    struct Line;
    impl Dynamics for Line {
        fn state_dim(&self) -> usize {
            1
        }
        fn control_dim(&self) -> usize {
            1
        }
        fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
            next[0] = x[0] + u[0];
        }
    }
    struct Square(bool);
    impl Cost for Square {
        fn running(&self, x: &[f64], _u: &[f64], _t: usize) -> f64 {
            if self.0 { f64::NAN } else { x[0] * x[0] }
        }
    }

    fn config() -> MppiConfig {
        MppiConfig {
            samples: 64,
            horizon: 5,
            weighting: WeightingConfig::fixed(1.0),
            ..MppiConfig::default()
        }
    }

    #[test]
    fn bad_state_is_an_error_not_a_panic() {
        let mut c = Controller::new(Line, Square(false), &config()).unwrap();
        assert!(matches!(
            c.act(&[1.0, 2.0]),
            Err(MppiError::DimensionMismatch { .. })
        ));
        assert!(matches!(
            c.act(&[f64::NAN]),
            Err(MppiError::NonFinite { index: 0, .. })
        ));
        assert!(c.act(&[1.0]).is_ok());
    }

    #[test]
    fn all_nonfinite_costs_keep_the_plan() {
        let mut c = Controller::new(Line, Square(true), &config()).unwrap();
        c.set_plan(&[0.5, 0.4, 0.3, 0.2, 0.1]).unwrap();
        let u = c.act(&[1.0]).unwrap()[0];
        assert_eq!(u, 0.5);
        let last = c.report().last();
        assert!(last.kept_plan);
        assert_eq!(last.weights.nonfinite, 64);
        assert_eq!(c.plan(), &[0.5, 0.4, 0.3, 0.2, 0.1]);
        // the next step shifts the kept plan (warm start), repeating the last control
        c.act(&[1.0]).unwrap();
        assert_eq!(c.plan(), &[0.4, 0.3, 0.2, 0.1, 0.1]);
    }

    #[test]
    fn shift_fill_zero() {
        let cfg = MppiConfig {
            shift_fill: ShiftFill::Zero,
            ..config()
        };
        let mut c = Controller::new(Line, Square(true), &cfg).unwrap();
        c.set_plan(&[0.5, 0.4, 0.3, 0.2, 0.1]).unwrap();
        c.act(&[1.0]).unwrap();
        c.act(&[1.0]).unwrap();
        assert_eq!(c.plan(), &[0.4, 0.3, 0.2, 0.1, 0.0]);
    }

    #[test]
    fn control_cost_term_is_added_to_every_sample() {
        // Same seed with and without γ: samples are identical, costs differ by γ Σ μᵀΣ⁻¹ε.
        let sigma = 0.7;
        let plan = [0.3, -0.2, 0.1, 0.4, -0.5];
        let base = MppiConfig {
            proposal: ProposalConfig {
                noise_sigma: Some(vec![sigma]),
                ..config().proposal.clone()
            },
            ..config()
        };
        let gamma = 2.5;
        let with = MppiConfig {
            weighting: WeightingConfig {
                control_cost_gamma: gamma,
                ..base.clone().weighting
            },
            ..base.clone()
        };
        let mut a = Controller::new(Line, Square(false), &base).unwrap();
        let mut b = Controller::new(Line, Square(false), &with).unwrap();
        a.set_plan(&plan).unwrap();
        b.set_plan(&plan).unwrap();
        a.act(&[1.0]).unwrap();
        b.act(&[1.0]).unwrap();
        let (pa, pb) = (a.planner(), b.planner());
        assert_eq!(pa.samples(), pb.samples());
        let perturbations = pa.perturbations();
        for i in 0..64 {
            let eps = &perturbations[i * 5..(i + 1) * 5];
            let term: f64 = plan
                .iter()
                .zip(eps)
                .map(|(u, e)| u * e / (sigma * sigma))
                .sum();
            let diff = pb.costs()[i] - pa.costs()[i];
            assert!(
                (diff - gamma * term).abs() < 1e-12 * (1.0 + diff.abs()),
                "sample {i}"
            );
        }
    }

    #[test]
    fn clamped_samples_respect_bounds_and_perturbations_are_recomputed() {
        let cfg = MppiConfig {
            u_min: Some(vec![-1.0]),
            u_max: Some(vec![0.5]),
            proposal: ProposalConfig {
                noise_sigma: Some(vec![5.0]),
                ..config().proposal.clone()
            },
            ..config()
        };
        let mut c = Controller::new(Line, Square(false), &cfg).unwrap();
        c.act(&[1.0]).unwrap();
        let p = c.planner();
        for (u, e) in p.samples().iter().zip(&p.perturbations()) {
            assert!((-1.0..=0.5).contains(u));
            // plan was 0 before the update, so ε = U − 0
            assert_eq!(*e, *u);
        }
        assert!(c.plan().iter().all(|u| (-1.0..=0.5).contains(u)));
    }

    #[test]
    fn sample_rollout_checks_its_arguments() {
        let mut c = Controller::new(Line, Square(false), &config()).unwrap();
        c.act(&[1.0]).unwrap();
        let mut states = vec![0.0; 6];
        assert!(c.sample_rollout(0, &mut states).is_ok());
        assert_eq!(states[0], 1.0);
        assert!(c.sample_rollout(64, &mut states).is_err());
        assert!(c.sample_rollout(0, &mut [0.0; 3]).is_err());
    }
}
