//! Built-in control tasks for `mppi`.
//!
//! A [`Task`] bundles what a closed-loop run needs: the planner's model (dynamics and cost),
//! the plant it controls, a default [`MppiConfig`], an initial state, an episode length, a
//! success criterion and, for planar tasks, a [`Scene`] to draw. [`run_episode`] closes the
//! loop and records everything a report or a plot needs.
//!
//! ```
//! use mppi_tasks::{run_episode, task_by_name, EpisodeOptions};
//! let task = task_by_name("pendulum").unwrap();
//! let mut config = task.default_config();
//! config.samples = 64; // a quick run for the example
//! let episode = run_episode(task.as_ref(), &config, &EpisodeOptions { steps: 5, ..Default::default() }, |_| {}).unwrap();
//! assert_eq!(episode.controls.len(), 5);
//! assert_eq!(episode.states.len(), 6);
//! ```

use std::sync::Arc;

use mppi::{Controller, Cost, Dynamics, MppiConfig, MppiError, RolloutObjective, StepReport};
use serde::Serialize;

pub mod acrobot;
pub mod cartpole;
pub mod cartpole_discrete;
pub mod diff_drive;
pub mod double_integrator;
pub mod geometry;
mod navigation;
mod ode;
pub mod pendulum;
pub mod quadrotor;
pub mod racing;
pub mod reference;
#[cfg(test)]
mod test_support;
pub mod two_routes;
pub mod unicycle;

/// A circular obstacle in the plane.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Circle {
    /// Center x.
    pub x: f64,
    /// Center y.
    pub y: f64,
    /// Radius.
    pub r: f64,
}

impl Circle {
    /// Signed distance from `(px, py)` to the circle's boundary (negative inside).
    #[must_use]
    pub fn signed_distance(&self, px: f64, py: f64) -> f64 {
        ((px - self.x).powi(2) + (py - self.y).powi(2)).sqrt() - self.r
    }
}

/// What a planar task draws: where the robot is in the state, obstacles, goal, track.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Scene {
    /// Indices of the planar position `(x, y)` in the state vector.
    pub position: (usize, usize),
    /// Circular obstacles.
    pub obstacles: Vec<Circle>,
    /// Goal region `(x, y, radius)`, if any.
    pub goal: Option<Circle>,
    /// Closed race track: centerline points and half width, if any.
    pub track: Option<(Vec<(f64, f64)>, f64)>,
    /// Plot extent `((x_min, x_max), (y_min, y_max))`.
    pub extent: ((f64, f64), (f64, f64)),
}

/// Verdict of a task's success criterion on an episode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// Did the episode meet the criterion?
    pub success: bool,
    /// One line saying why (numbers included).
    pub message: String,
}

/// The dynamics and cost handed to the planner.
pub type TaskController = Controller<RolloutObjective<Arc<dyn Dynamics>, Arc<dyn Cost>>>;

/// A built-in control problem.
pub trait Task: Send + Sync {
    /// Short name used on the command line (`mppi run <name>`).
    fn name(&self) -> &'static str;
    /// One-line description.
    fn description(&self) -> &'static str;
    /// Names of the state components (for CSV headers and plot legends).
    fn state_names(&self) -> &'static [&'static str];
    /// Names of the control components.
    fn control_names(&self) -> &'static [&'static str];
    /// Time step of the plant in seconds.
    fn dt(&self) -> f64;
    /// The planner's settings that make this task succeed.
    fn default_config(&self) -> MppiConfig;
    /// Episode length in control steps.
    fn default_steps(&self) -> usize;
    /// Initial state of an episode.
    fn initial_state(&self) -> Vec<f64>;
    /// The model the planner rolls out.
    fn dynamics(&self) -> Arc<dyn Dynamics>;
    /// The cost the planner minimizes.
    fn cost(&self) -> Arc<dyn Cost>;
    /// Advance the real system one step. Defaults to the planner's model.
    fn plant_step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        self.dynamics().step(x, u, next);
    }
    /// The cost of one closed-loop step, summed into the episode's total cost. Defaults to the
    /// running cost at `t = 0`.
    fn stage_cost(&self, x: &[f64], u: &[f64]) -> f64 {
        self.cost().running(x, u, 0)
    }
    /// Judge a finished episode.
    fn success(&self, episode: &Episode) -> Outcome;
    /// What to draw for planar tasks; `None` for the others.
    fn scene(&self) -> Option<Scene> {
        None
    }
    /// The first plan (`horizon · m` entries), e.g. a hover or trim control; `None` starts
    /// from zeros clamped into the bounds.
    fn initial_plan(&self, _horizon: usize) -> Option<Vec<f64>> {
        None
    }
}

/// Every built-in task, in the order `mppi tasks` lists them.
#[must_use]
pub fn all_tasks() -> Vec<Box<dyn Task>> {
    vec![
        Box::new(pendulum::Pendulum),
        Box::new(cartpole::CartPole),
        Box::new(cartpole_discrete::CartPoleDiscrete),
        Box::new(acrobot::Acrobot),
        Box::new(quadrotor::Quadrotor),
        Box::new(double_integrator::DoubleIntegrator::default()),
        Box::new(unicycle::Unicycle::default()),
        Box::new(racing::Racing::default()),
        Box::new(diff_drive::DiffDrive::default()),
        Box::new(two_routes::TwoRoutes::default()),
    ]
}

/// Look a task up by its name.
#[must_use]
pub fn task_by_name(name: &str) -> Option<Box<dyn Task>> {
    all_tasks().into_iter().find(|t| t.name() == name)
}

/// Names of every built-in task.
#[must_use]
pub fn task_names() -> Vec<&'static str> {
    all_tasks().iter().map(|t| t.name()).collect()
}

/// Sampled rollouts captured at one control step, for plots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutSnapshot {
    /// Control step at which they were captured.
    pub step: usize,
    /// States along the optimized plan (`T + 1` rows).
    pub plan: Vec<Vec<f64>>,
    /// States along a few sampled rollouts (each `T + 1` rows).
    pub samples: Vec<Vec<Vec<f64>>>,
}

/// Options of [`run_episode`].
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeOptions {
    /// Number of control steps.
    pub steps: usize,
    /// Capture sampled rollouts every this many steps (0 = never).
    pub rollout_every: usize,
    /// How many sampled rollouts per capture.
    pub rollouts_per_capture: usize,
    /// Initial state; `None` uses the task's.
    pub initial_state: Option<Vec<f64>>,
}

impl Default for EpisodeOptions {
    fn default() -> Self {
        EpisodeOptions {
            steps: 100,
            rollout_every: 0,
            rollouts_per_capture: 8,
            initial_state: None,
        }
    }
}

/// A finished closed-loop episode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Episode {
    /// Plant time step in seconds.
    pub dt: f64,
    /// Visited states, `steps + 1` rows.
    pub states: Vec<Vec<f64>>,
    /// Applied controls, `steps` rows.
    pub controls: Vec<Vec<f64>>,
    /// Stage cost of every step.
    pub stage_costs: Vec<f64>,
    /// The planner's report of every step.
    pub reports: Vec<StepReport>,
    /// Captured rollouts (empty unless requested).
    pub rollouts: Vec<RolloutSnapshot>,
}

impl Episode {
    /// Sum of the stage costs.
    #[must_use]
    pub fn total_cost(&self) -> f64 {
        self.stage_costs.iter().sum()
    }
}

/// Progress of an episode, passed to the callback of [`run_episode`] after every step.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Steps done so far.
    pub done: usize,
    /// Steps in the episode.
    pub total: usize,
    /// The report of the step just taken.
    pub report: &'a StepReport,
}

/// Build the receding-horizon controller of `task` with `config`.
pub fn controller(task: &dyn Task, config: &MppiConfig) -> Result<TaskController, MppiError> {
    // a task's dynamics and cost are one model, so a fused step-and-cost pass (where the
    // model has one) computes the task's running cost
    Controller::with_fused_cost(task.dynamics(), task.cost(), config)
}

/// Run `task` in closed loop for `options.steps` steps with `config`.
///
/// Errors on an invalid config, or if the plant reaches a non-finite state.
pub fn run_episode(
    task: &dyn Task,
    config: &MppiConfig,
    options: &EpisodeOptions,
    mut on_step: impl FnMut(Progress<'_>),
) -> Result<Episode, MppiError> {
    let mut ctrl = controller(task, config)?;
    if let Some(plan) = task.initial_plan(config.horizon) {
        ctrl.set_plan(&plan)?;
    }
    let x0 = options
        .initial_state
        .clone()
        .unwrap_or_else(|| task.initial_state());
    let n = task.dynamics().state_dim();
    if x0.len() != n {
        return Err(MppiError::DimensionMismatch {
            what: "initial state",
            expected: n,
            got: x0.len(),
        });
    }
    let horizon = config.horizon;
    let mut episode = Episode {
        dt: task.dt(),
        states: Vec::with_capacity(options.steps + 1),
        controls: Vec::with_capacity(options.steps),
        stage_costs: Vec::with_capacity(options.steps),
        reports: Vec::with_capacity(options.steps),
        rollouts: Vec::new(),
    };
    episode.states.push(x0.clone());
    let mut x = x0;
    let mut next = vec![0.0; n];
    let mut buf = vec![0.0; (horizon + 1) * n];
    for k in 0..options.steps {
        let u = ctrl.act(&x)?.to_vec();
        if options.rollout_every > 0 && k % options.rollout_every == 0 {
            let rows = |b: &[f64]| b.chunks_exact(n).map(<[f64]>::to_vec).collect::<Vec<_>>();
            ctrl.objective().rollout(ctrl.plan(), &mut buf)?;
            let plan = rows(&buf);
            let count = options
                .rollouts_per_capture
                .min(ctrl.planner().num_samples());
            let stride = (ctrl.planner().num_samples() / count.max(1)).max(1);
            let mut samples = Vec::with_capacity(count);
            for i in 0..count {
                ctrl.sample_rollout(i * stride, &mut buf)?;
                samples.push(rows(&buf));
            }
            episode.rollouts.push(RolloutSnapshot {
                step: k,
                plan,
                samples,
            });
        }
        episode.stage_costs.push(task.stage_cost(&x, &u));
        task.plant_step(&x, &u, &mut next);
        if let Some(index) = next.iter().position(|v| !v.is_finite()) {
            return Err(MppiError::NonFinite {
                what: "plant state",
                index,
            });
        }
        episode.reports.push(ctrl.report().clone());
        on_step(Progress {
            done: k + 1,
            total: options.steps,
            report: ctrl.report(),
        });
        episode.controls.push(u);
        x.copy_from_slice(&next);
        episode.states.push(x.clone());
    }
    Ok(episode)
}

/// Wrap an angle to `[-π, π]` (branch-free, so block kernels vectorize; see
/// [`mppi::fastmath::wrap_angle`]).
#[must_use]
#[inline(always)]
pub fn wrap_angle(a: f64) -> f64 {
    mppi::fastmath::wrap_angle(a)
}
