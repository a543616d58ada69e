//! Built-in control tasks for `mppi`.
//!
//! A [`Task`] bundles what a closed-loop run needs: the planner's model (dynamics and cost),
//! the plant it controls, a default [`MppiConfig`], an initial state, an episode length, a
//! success criterion and, for planar tasks, a [`Scene`] to draw. [`run_episode`] closes the
//! loop and records what a report or a plot needs, in memory that does not grow with the
//! episode ([`run_episode_with`] also streams every step to an [`EpisodeSink`]).
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

use mppi::{Controller, Cost, Dynamics, MppiConfig, MppiError, RolloutObjective};
use serde::Serialize;

pub mod acrobot;
pub mod cartpole;
pub mod cartpole_discrete;
pub mod criterion;
pub mod diff_drive;
pub mod double_integrator;
pub mod drawing;
pub mod episode;
pub mod geometry;
mod navigation;
mod ode;
pub mod pendulum;
pub mod quadrotor;
pub mod racing;
pub mod realtime;
pub mod reference;
#[cfg(test)]
mod test_support;
pub mod threads;
pub mod two_routes;
pub mod unicycle;

pub use criterion::{Criterion, judge};
pub use drawing::{BodySegment, ReferenceBand};
pub use episode::{
    DEFAULT_RECORD_ROWS, Episode, EpisodeError, EpisodeOptions, EpisodeSink, EpisodeStats,
    Progress, RolloutSnapshot, StepRecord, run_controller_episode, run_episode, run_episode_with,
};
pub use realtime::{
    PlanRecord, RealtimeError, RealtimeOptions, RealtimeRun, RealtimeSettings, TickRecord,
    TimingStats, run_realtime, run_realtime_with,
};

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
    /// Units of the state components, one per component (`"rad"`, `"m/s"`, `""` for a
    /// dimensionless one), for CSV headers and plot axes; empty when unknown.
    fn state_units(&self) -> &'static [&'static str] {
        &[]
    }
    /// Units of the control components, one per component (`"N"`, `"N·m"`, ...); empty when
    /// unknown.
    fn control_units(&self) -> &'static [&'static str] {
        &[]
    }
    /// The success bands (or target values) of state components that plots draw: e.g. the
    /// pendulum's angle within 0.1 rad of upright. Empty by default.
    fn reference_bands(&self) -> Vec<ReferenceBand> {
        Vec::new()
    }
    /// The system in state `x` as capsules in the drawing plane (metres, `x` right, `y` up),
    /// for animations; empty for a task that is not drawn this way.
    fn body_segments(&self, _x: &[f64]) -> Vec<BodySegment> {
        Vec::new()
    }
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
    /// A fresh success criterion. [`run_episode`] shows it every visited state as the episode
    /// runs, so the verdict covers every step although the [`Episode`] keeps only a bounded
    /// record; [`judge`] applies it to a sequence of states.
    fn criterion(&self) -> Box<dyn Criterion + '_>;
    /// The verdict on a finished episode: that of [`Task::criterion`] on every one of its
    /// steps, reached while it ran ([`Episode::outcome`]).
    fn success(&self, episode: &Episode) -> Outcome {
        episode.outcome.clone()
    }
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
        Box::new(double_integrator::DoubleIntegrator::open_field()),
        Box::new(double_integrator::DoubleIntegrator::blocked_field()),
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

/// Build the receding-horizon controller of `task` with `config`.
pub fn controller(task: &dyn Task, config: &MppiConfig) -> Result<TaskController, MppiError> {
    // a task's dynamics and cost are one model, so a fused step-and-cost pass (where the
    // model has one) computes the task's running cost
    Controller::with_fused_cost(task.dynamics(), task.cost(), config)
}

/// Wrap an angle to `[-π, π]` (branch-free, so block kernels vectorize; see
/// [`mppi::fastmath::wrap_angle`]).
#[must_use]
#[inline(always)]
pub fn wrap_angle(a: f64) -> f64 {
    mppi::fastmath::wrap_angle(a)
}
