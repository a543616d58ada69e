//! A TD-MPC2-style agent whose planner is this library's EM loop, and the PO-MPC family of
//! policy updates (docs/theory.md §E–G).
//!
//! - [`settings`]: sizes ("TD-MPC2-lite" by default), the policy update and the named
//!   variants V0, V∞, VTD, Vλ, Vλ̃;
//! - [`math`]: symlog, two-hot, SimNorm, the tanh-Gaussian, the value scale, the closed-form
//!   maximizer of the KL-regularized objective (checked against the networks' versions);
//! - [`nets`]: the burn networks (encoder, latent dynamics, reward, Q ensemble, policy,
//!   intermediate prior);
//! - [`latent`]: the planner in latent space: a whole-batch objective and a proposal that
//!   mixes policy-prior rollouts with the Gaussian;
//! - [`replay`]: whole episodes with the planner's distribution per decision;
//! - [`learner`]: one update (world model and Q, policy, prior, targets);
//! - [`train`]: the loop, evaluation, the mechanism metrics and checkpoints.

pub mod latent;
pub mod learner;
pub mod math;
pub mod nets;
pub mod replay;
pub mod settings;
pub mod train;

pub use settings::{AgentSettings, PolicySettings, VARIANTS};
pub use train::{EpisodeRecord, EvalRecord, Progress, RunSettings, Summary, Trainer};
