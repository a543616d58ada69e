//! Environments for learning agents, with dm_control's conventions (docs/theory.md §G.2):
//! actions in `[-1, 1]^m`, a reward in `[0, 1]` per control step, a fixed number of control
//! steps per episode and no early termination, and an action repeat (each agent decision is
//! applied for `repeat` control steps and its reward is their sum). With 1000 control steps and
//! repeat 2 an episode is 500 agent decisions and its return lies in `[0, 1000]`.
//!
//! Two kinds, both made by name with [`make_env`] ([`env_names`] lists them):
//!
//! - [`DmcEnv`]: dm_control suite tasks ported exactly onto MuJoCo 3.17.0 with
//!   `crates/mppi-mujoco/models` (same physics as dm_control 1.0.50 to the bit): `cartpole-swingup`,
//!   `acrobot-swingup`, `reacher-easy`, `reacher-hard` and `pendulum-swingup`, with dm_control's
//!   control timestep, time limit (1000 control steps), observations (flattened in dm_control's
//!   dict order), rewards ([`rewards::tolerance`]) and initial-state distributions (drawn with
//!   this library's RNG), and TD-MPC2's action repeat 2. [`DmcEnv::reset_to`] starts an episode
//!   from a given physics state, which is how `examples/env_trace.rs` and
//!   `crates/mppi-mujoco/tests/python/test_envs_match_dm_control.py` check them against
//!   dm_control itself.
//! - [`TaskEnv`]: any built-in task of `mppi-tasks` with finite, continuous control bounds, as
//!   `task:<name>` (`task:pendulum`, `task:cartpole`, ...): angles observed as `(cos, sin)`,
//!   reward `exp(−c/c₀)` of the task's stage cost, action repeat 1 and the task's own episode
//!   length (see [`TaskEnv`]).
//!
//! Everything is deterministic: `reset(seed, ..)` with the same seed and the same actions
//! give the same episode, bit for bit. Bad input (slices of the wrong length, non-finite
//! actions, a step outside an episode) is an error, never a panic, and so is a simulation
//! that goes unstable.
//!
//! ```
//! use mppi_learn::env::{Env, make_env};
//! let mut env = make_env("pendulum-swingup")?;
//! let mut obs = vec![0.0; env.obs_dim()];
//! env.reset(7, &mut obs)?;
//! let mut total = 0.0;
//! for _ in 0..env.episode_length() {
//!     total += env.step(&[0.0], &mut obs)?; // no torque: it swings, mostly below
//! }
//! assert!((0.0..=1000.0).contains(&total));
//! assert!(env.step(&[0.0], &mut obs).is_err()); // the episode is over: reset first
//! # Ok::<(), mppi_learn::LearnError>(())
//! ```

use std::sync::LazyLock;

use crate::LearnError;

mod dmc;
pub mod rewards;
mod task;

pub use dmc::{DmcEnv, DmcState};
pub use task::TaskEnv;

/// A reinforcement-learning environment as the agent sees it.
///
/// Observations and actions are `f64` slices of fixed length; the environment owns its
/// state. `reset` then `episode_length()` calls of `step` make one episode; a `step` before
/// the first `reset` or after the episode's last decision is an error.
pub trait Env: Send {
    /// The name it is made by ([`make_env`]).
    fn name(&self) -> &str;
    /// Entries of an observation.
    fn obs_dim(&self) -> usize;
    /// Entries of an action (each in `[-1, 1]`).
    fn action_dim(&self) -> usize;
    /// Agent decisions per episode (500 for dm_control's 1000 steps with repeat 2).
    fn episode_length(&self) -> usize;
    /// Control steps each decision is repeated for.
    fn action_repeat(&self) -> usize;
    /// Start a new episode from the initial-state distribution drawn with `seed`; writes the
    /// first observation. `obs` must have [`Env::obs_dim`] entries.
    fn reset(&mut self, seed: u64, obs: &mut [f64]) -> Result<(), LearnError>;
    /// Apply `action` (clamped into `[-1, 1]`; NaN or an infinity is an error) for
    /// [`Env::action_repeat`] control steps; writes the next observation and returns the
    /// summed reward (in `[0, repeat]`). A refused action or observation buffer changes
    /// nothing; after a simulation that went unstable the episode is over (call
    /// [`Env::reset`]).
    fn step(&mut self, action: &[f64], obs: &mut [f64]) -> Result<f64, LearnError>;
}

/// The dm_control suite ports ([`DmcEnv`]), in the order [`env_names`] lists them.
pub const DMC_ENV_NAMES: &[&str] = &[
    "cartpole-swingup",
    "acrobot-swingup",
    "reacher-easy",
    "reacher-hard",
    "pendulum-swingup",
];

/// The prefix of the built-in tasks' names ([`TaskEnv`]): `task:pendulum`.
pub const TASK_PREFIX: &str = "task:";

static NAMES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut names = DMC_ENV_NAMES.to_vec();
    for task in task::usable_task_names() {
        names.push(Box::leak(format!("{TASK_PREFIX}{task}").into_boxed_str()));
    }
    names
});

/// Every name [`make_env`] accepts: the dm_control ports ([`DMC_ENV_NAMES`]), then
/// `task:<name>` for each built-in task with finite control bounds that is not planned over
/// discrete values (so not `cartpole_discrete`).
///
/// ```
/// let names = mppi_learn::env::env_names();
/// assert!(names.contains(&"cartpole-swingup"));
/// assert!(names.contains(&"task:pendulum"));
/// ```
pub fn env_names() -> &'static [&'static str] {
    &NAMES
}

/// Make an environment by name ([`env_names`]); an unknown name is an error that lists the
/// valid ones.
///
/// ```
/// let env = mppi_learn::env::make_env("reacher-easy")?;
/// assert_eq!((env.obs_dim(), env.action_dim(), env.episode_length()), (6, 2, 500));
/// let err = mppi_learn::env::make_env("reacher-medium").err().expect("no such env");
/// assert!(err.to_string().contains("reacher-easy"));
/// # Ok::<(), mppi_learn::LearnError>(())
/// ```
pub fn make_env(name: &str) -> Result<Box<dyn Env>, LearnError> {
    if let Some(task) = name.strip_prefix(TASK_PREFIX) {
        if env_names().contains(&name) {
            return Ok(Box::new(TaskEnv::new(task)?));
        }
    } else if DMC_ENV_NAMES.contains(&name) {
        return Ok(Box::new(DmcEnv::new(name)?));
    }
    Err(LearnError::Settings(format!(
        "unknown environment `{name}`; valid names: {}",
        env_names().join(", ")
    )))
}

/// Check the length of an observation buffer.
pub(crate) fn check_obs(obs: &[f64], dim: usize) -> Result<(), LearnError> {
    check_len("observation", obs.len(), dim)
}

/// Check an action: its length and that every entry is finite.
pub(crate) fn check_action(action: &[f64], dim: usize) -> Result<(), LearnError> {
    check_len("action", action.len(), dim)?;
    match action.iter().position(|a| !a.is_finite()) {
        None => Ok(()),
        Some(index) => Err(mppi::MppiError::NonFinite {
            what: "action",
            index,
        }
        .into()),
    }
}

fn check_len(what: &'static str, got: usize, expected: usize) -> Result<(), LearnError> {
    if got == expected {
        Ok(())
    } else {
        Err(mppi::MppiError::DimensionMismatch {
            what,
            expected,
            got,
        }
        .into())
    }
}

/// The error of a `step` outside an episode.
pub(crate) fn not_in_episode(name: &str, length: usize, started: bool) -> LearnError {
    LearnError::Settings(if started {
        format!(
            "{name}: the episode is over after {length} decisions (or a step failed); call reset"
        )
    } else {
        format!("{name}: step before the first reset; call reset")
    })
}
