//! The built-in tasks of `mppi-tasks` as environments (see [`TaskEnv`]).

use mppi::ProposalKind;
use mppi_tasks::Task;

use super::{Env, TASK_PREFIX, check_action, check_obs, not_in_episode};
use crate::LearnError;

/// Standard deviation of the noise added to every component of the task's initial state.
const INITIAL_NOISE: f64 = 0.01;

/// The bounds of a task's controls, if every one is finite (and the task is not planned with
/// the categorical family, whose controls are a few discrete values).
fn finite_bounds(task: &dyn Task) -> Option<(Vec<f64>, Vec<f64>)> {
    let config = task.default_config();
    if config.proposal.kind == ProposalKind::Categorical {
        return None;
    }
    let m = task.control_names().len();
    // a single value is broadcast to every control, as the config does
    let broadcast = |v: Vec<f64>| if v.len() == 1 { vec![v[0]; m] } else { v };
    let (lower, upper) = (broadcast(config.u_min?), broadcast(config.u_max?));
    let ok = lower.len() == m
        && upper.len() == m
        && lower
            .iter()
            .zip(&upper)
            .all(|(l, u)| l.is_finite() && u.is_finite() && l < u);
    ok.then_some((lower, upper))
}

/// The built-in tasks [`TaskEnv`] accepts: those with finite control bounds.
pub(crate) fn usable_task_names() -> Vec<&'static str> {
    mppi_tasks::all_tasks()
        .iter()
        .filter(|t| finite_bounds(t.as_ref()).is_some())
        .map(|t| t.name())
        .collect()
}

/// A built-in task of `mppi-tasks` as an environment, `task:<name>`.
///
/// - **Observation**: the state, with every angle (a component whose unit is `rad`, in
///   [`Task::state_units`]) replaced by its `(cos, sin)`; a task without units is observed
///   as its state. E.g. `task:pendulum`: `(cos θ, sin θ, θ̇)`; `task:cartpole`:
///   `(x, cos θ, sin θ, ẋ, θ̇)`.
/// - **Action**: `a ∈ [-1, 1]^m` (clamped) mapped affinely onto the task's control bounds
///   (`u_min`, `u_max` of its default config): `u = u_min + (a + 1)/2 · (u_max − u_min)`.
/// - **Step**: the task's [`Task::plant_step`]; the reward of a control step is
///   `exp(−max(c, 0)/c₀)` in `(0, 1]`, `c` the task's [`Task::stage_cost`] of the new state
///   and the applied control (as dm_control rewards the state a step reaches), and `c₀`
///   ([`TaskEnv::cost_scale`]) the stage cost of the task's initial state with zero control
///   (clamped into the bounds), or 1 if that is not positive: a reward of `e⁻¹` is "as bad
///   as the start", 1 is zero cost.
/// - **Episode**: action repeat 1 and the task's own episode length
///   ([`Task::default_steps`], e.g. 200 decisions of 0.05 s for the pendulum). The tasks'
///   control steps are already coarse (0.02–0.1 s), and their episodes are as long as they
///   need to be solved; the return lies in `[0, default_steps]`.
/// - **Initial state**: the task's [`Task::initial_state`] plus `N(0, 0.01²)` on every
///   component (dm_control's cartpole breaks symmetry with the same scale), drawn with
///   [`mppi::rng::sample_rng`] from the seed.
///
/// ```
/// use mppi_learn::env::{Env, TaskEnv};
/// let mut env = TaskEnv::new("pendulum")?;
/// assert_eq!((env.obs_dim(), env.action_dim(), env.episode_length()), (3, 1, 200));
/// let mut obs = [0.0; 3];
/// env.reset(0, &mut obs)?;
/// assert!(obs[0] < -0.99); // cos θ: hanging down
/// let r = env.step(&[1.0], &mut obs)?; // full torque
/// assert!(r > 0.0 && r <= 1.0);
/// # Ok::<(), mppi_learn::LearnError>(())
/// ```
pub struct TaskEnv {
    name: String,
    task: Box<dyn Task>,
    lower: Vec<f64>,
    upper: Vec<f64>,
    /// Which state components are angles.
    angles: Vec<bool>,
    obs_dim: usize,
    cost_scale: f64,
    x: Vec<f64>,
    next: Vec<f64>,
    u: Vec<f64>,
    /// Decisions taken this episode; `None` before the first reset and after a failure.
    steps_done: Option<usize>,
    started: bool,
}

impl std::fmt::Debug for TaskEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskEnv")
            .field("name", &self.name)
            .field("cost_scale", &self.cost_scale)
            .field("steps_done", &self.steps_done)
            .finish_non_exhaustive()
    }
}

impl TaskEnv {
    /// The built-in task `task` (its name without the `task:` prefix; the prefix is
    /// accepted too). An unknown task, or one without finite control bounds, is an error
    /// listing the valid names.
    pub fn new(task: &str) -> Result<Self, LearnError> {
        let bare = task.strip_prefix(TASK_PREFIX).unwrap_or(task);
        let unknown = || {
            LearnError::Settings(format!(
                "`{task}` is not a built-in task with finite control bounds; valid: {}",
                usable_task_names().join(", ")
            ))
        };
        let task = mppi_tasks::task_by_name(bare).ok_or_else(unknown)?;
        let (lower, upper) = finite_bounds(task.as_ref()).ok_or_else(unknown)?;
        let n = task.state_names().len();
        let units = task.state_units();
        let angles: Vec<bool> = (0..n)
            .map(|i| units.get(i).is_some_and(|u| *u == "rad"))
            .collect();
        let obs_dim = n + angles.iter().filter(|a| **a).count();
        let x0 = task.initial_state();
        let u0: Vec<f64> = lower
            .iter()
            .zip(&upper)
            .map(|(l, u)| 0.0f64.clamp(*l, *u))
            .collect();
        let c0 = task.stage_cost(&x0, &u0);
        let cost_scale = if c0.is_finite() && c0 > 0.0 { c0 } else { 1.0 };
        let m = lower.len();
        Ok(Self {
            name: format!("{TASK_PREFIX}{bare}"),
            task,
            lower,
            upper,
            angles,
            obs_dim,
            cost_scale,
            x: vec![0.0; n],
            next: vec![0.0; n],
            u: vec![0.0; m],
            steps_done: None,
            started: false,
        })
    }

    /// `c₀` of the reward `exp(−c/c₀)`: the stage cost of the task's initial state with zero
    /// control, or 1 if that is not positive.
    pub fn cost_scale(&self) -> f64 {
        self.cost_scale
    }

    /// The task.
    pub fn task(&self) -> &dyn Task {
        self.task.as_ref()
    }

    /// The current state of the task (not the observation).
    pub fn state(&self) -> &[f64] {
        &self.x
    }

    fn observe(&self, obs: &mut [f64]) {
        let mut k = 0;
        for (&v, &angle) in self.x.iter().zip(&self.angles) {
            if angle {
                obs[k] = v.cos();
                obs[k + 1] = v.sin();
                k += 2;
            } else {
                obs[k] = v;
                k += 1;
            }
        }
    }
}

impl Env for TaskEnv {
    fn name(&self) -> &str {
        &self.name
    }

    fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    fn action_dim(&self) -> usize {
        self.lower.len()
    }

    fn episode_length(&self) -> usize {
        self.task.default_steps()
    }

    fn action_repeat(&self) -> usize {
        1
    }

    fn reset(&mut self, seed: u64, obs: &mut [f64]) -> Result<(), LearnError> {
        check_obs(obs, self.obs_dim)?;
        let mut rng = mppi::rng::sample_rng(seed, 0, 0, 0);
        let x0 = self.task.initial_state();
        for (x, x0) in self.x.iter_mut().zip(x0) {
            *x = x0 + INITIAL_NOISE * rng.normal();
        }
        self.started = true;
        self.steps_done = Some(0);
        self.observe(obs);
        Ok(())
    }

    fn step(&mut self, action: &[f64], obs: &mut [f64]) -> Result<f64, LearnError> {
        check_action(action, self.action_dim())?;
        check_obs(obs, self.obs_dim)?;
        let done = match self.steps_done {
            Some(done) if done < self.episode_length() => done,
            _ => {
                return Err(not_in_episode(
                    &self.name,
                    self.episode_length(),
                    self.started,
                ));
            }
        };
        for (i, &a) in action.iter().enumerate() {
            let (lo, hi) = (self.lower[i], self.upper[i]);
            self.u[i] = (lo + (a.clamp(-1.0, 1.0) + 1.0) / 2.0 * (hi - lo)).clamp(lo, hi);
        }
        self.task.plant_step(&self.x, &self.u, &mut self.next);
        if let Some(index) = self.next.iter().position(|v| !v.is_finite()) {
            self.steps_done = None;
            return Err(mppi::MppiError::NonFinite {
                what: "the task's state after a step (the simulation diverged; call reset)",
                index,
            }
            .into());
        }
        let cost = self.task.stage_cost(&self.next, &self.u);
        if cost.is_nan() {
            self.steps_done = None;
            return Err(LearnError::Settings(format!(
                "{}: the stage cost is NaN at decision {done}; call reset",
                self.name
            )));
        }
        std::mem::swap(&mut self.x, &mut self.next);
        self.observe(obs);
        self.steps_done = Some(done + 1);
        Ok((-cost.max(0.0) / self.cost_scale).exp())
    }
}
