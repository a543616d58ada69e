//! MuJoCo models for `mppi`.
//!
//! [`MujocoModel`] loads an MJCF file; its [`MujocoDynamics`] are `mppi` dynamics with state
//! `x = (qpos, qvel, act)` and control `u = ctrl` (the actuators' ranges are the bounds), one
//! control step being `frame_skip` physics steps. Rollouts run across samples in parallel, each
//! worker thread on its own pooled `MjData`, with the same results for any thread count.
//! [`ResidualCost`] is a cost written in a config, MuJoCo MPC style: residuals (joint
//! positions and velocities, controls, sensors) with norms and weights. A [`MujocoTask`]
//! (a TOML file: model, planner settings, costs, success test) is a `mppi_tasks::Task`, so the
//! CLI runs it like a built-in task; [`suite`] holds dm_control's suite tasks.
//!
//! MuJoCo 3.17.0 is linked from PyPI's `mujoco==3.17.0` wheel by this crate's `build.rs`.
//!
//! ```
//! use mppi_tasks::Task;
//! let task = mppi_mujoco::suite::task_by_name("mj-cartpole").expect("a suite task");
//! assert_eq!(task.state_names(), ["q.slider", "q.hinge_1", "v.slider", "v.hinge_1"]);
//! ```

mod cost;
mod draw;
mod model;
pub mod suite;
mod task;

pub use cost::{FnCost, Norm, ResidualCost, TermConfig};
pub use model::{Data, MujocoDynamics, MujocoModel};
pub use task::{GeomPos, MujocoTask, SuccessConfig, SuccessMode, TaskSpec, View};

/// What can go wrong loading or configuring a MuJoCo model or task.
#[derive(Debug, thiserror::Error)]
pub enum MujocoError {
    /// A model or task file could not be read or compiled.
    #[error("cannot load {file}: {reason}")]
    Load {
        /// The file (or `<string>`).
        file: String,
        /// MuJoCo's or the parser's message.
        reason: String,
    },
    /// A value in a task or model is not usable; the message names it.
    #[error("{0}")]
    Invalid(String),
}
