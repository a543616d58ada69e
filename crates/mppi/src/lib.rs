//! # mppi — model predictive path integral control as expectation–maximization
//!
//! MPPI samples control sequences around a plan, weights them by `exp(−cost/λ)` and moves the
//! plan to the weighted mean. Seen as EM on the likelihood
//! `L(μ) = log E_{U~N(μ,Σ)}[exp(−J(U)/λ)]`, the E-step is the weighting and the M-step is
//! weighted moment matching; seen as score ascent, the same update is a natural-gradient step
//! with step size `α = 1`. This crate writes that loop once ([`Planner`]) and makes every
//! variant a setting of [`MppiConfig`].
//!
//! The loop is made of four stages, each a small trait with built-in implementations chosen
//! by the config ([`Stages`]): a [`Proposal`] (the sampling distribution and its M-step,
//! [`proposal`]), a [`Schedule`] (annealing of the spread and temperature, [`schedule`]), a
//! [`Weighting`] (the E-step, [`weights`]) and an [`Update`] (step size and acceleration,
//! [`update`]). An [`Objective`] scores samples (rollouts of [`Dynamics`] + [`Cost`] in lane
//! blocks, or any black box, per block or batch-wide); the [`Planner`] runs the loop until its
//! iteration count, a deadline or an observer stops it; the [`Controller`] closes the loop
//! around a state. A proposal or a model of your own checks itself against the contracts the
//! loop relies on with the conformance suite in [`testing`]. [`policy_search`] optimizes a
//! feedback policy with the same weighting: parameter-space MPPI (the [`Planner`] over the
//! policy's parameters) and EM policy search (weighted maximum likelihood on noisy rollouts).
//!
//! ```
//! use mppi::{Controller, Cost, Dynamics, MppiConfig, ProposalConfig, WeightingConfig};
//!
//! /// A point mass on a line: state (position, velocity), control = force.
//! struct PointMass;
//! impl Dynamics for PointMass {
//!     fn state_dim(&self) -> usize { 2 }
//!     fn control_dim(&self) -> usize { 1 }
//!     fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
//!         let dt = 0.05;
//!         next[1] = x[1] + dt * u[0];
//!         next[0] = x[0] + dt * next[1];
//!     }
//! }
//! /// Reach position 1 and stop there.
//! struct Goal;
//! impl Cost for Goal {
//!     fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 {
//!         (x[0] - 1.0).powi(2) + 0.1 * x[1] * x[1] + 0.001 * u[0] * u[0]
//!     }
//! }
//!
//! let config = MppiConfig {
//!     samples: 256, horizon: 30, seed: 7,
//!     u_min: Some(vec![-5.0]), u_max: Some(vec![5.0]),
//!     proposal: ProposalConfig::gaussian(&[2.0]),
//!     weighting: WeightingConfig::fixed(0.5),
//!     ..MppiConfig::default()
//! };
//! let mut controller = Controller::new(PointMass, Goal, &config)?;
//! let mut x = [0.0, 0.0];
//! for _ in 0..100 {
//!     let u = controller.act(&x)?.to_vec();
//!     let mut next = [0.0; 2];
//!     PointMass.step(&x, &u, &mut next);
//!     x = next;
//! }
//! assert!((x[0] - 1.0).abs() < 0.05, "position {}", x[0]);
//! # Ok::<(), mppi::MppiError>(())
//! ```

#![warn(missing_docs)]

pub mod config;
pub mod controller;
pub mod diffusion;
pub mod error;
pub mod fastmath;
pub mod gaussian;
pub mod guided;
pub mod keys;
pub mod objective;
pub mod planner;
pub mod policy_search;
pub mod proposal;
pub mod rng;
pub mod schedule;
pub mod smoothing;
pub mod split;
pub mod testing;
pub mod update;
pub mod weights;

pub use config::{
    Acceleration, CovarianceBlock, DiagnosticsLevel, MppiConfig, Normals, Precision,
    ProposalConfig, ProposalKind, ScheduleConfig, ShiftFill, SmoothingConfig, TemperatureConfig,
    UpdateConfig, WeightingConfig,
};
pub use controller::{Controller, StateObjective, StepReport};
pub use error::MppiError;
pub use objective::{
    BLOCK_LANES, BatchFnObjective, Cost, Dynamics, FnObjective, Objective, RolloutObjective,
};
pub use planner::{Deadline, IterStats, Observer, Outcome, Planner, Stages, Status};
pub use proposal::{Context, Proposal};
pub use schedule::{Annealing, ReverseStep, Schedule};
pub use split::Parallel;
pub use update::{StepRule, Update};
pub use weights::{
    Softmax, Temperature, WeightStats, Weighting, compute_weights, compute_weights_elite,
};

/// The README's library example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
