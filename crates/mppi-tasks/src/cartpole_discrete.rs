//! Cart-pole swing-up with bang-bang force: the [`crate::cartpole`] system and cost, but the
//! controller may only push with `F ∈ {−10, 0, 10}` N, planned with the categorical family
//! (theory-spec B.4.6).
//!
//! The model, the running cost and the success criterion are those of
//! [`crate::cartpole::CartPole`] (reused, not copied): from hanging down, be upright
//! (`|θ| < 0.2`) for the last 50 states without leaving the track `|x| ≤ 2.4`. The default
//! config samples every step's force independently from a categorical over the three values
//! and refits the probabilities by weighted counts (with a floor so that no action dies out).

use mppi::{ProposalConfig, WeightingConfig};
use std::sync::Arc;

use mppi::{Cost, Dynamics, MppiConfig, ProposalKind};

use crate::cartpole::{CartPole, CartPoleModel, DT, MAX_FORCE};
use crate::{Episode, Outcome, Task};

/// The force values the controller may apply, in N.
pub const FORCES: [f64; 3] = [-MAX_FORCE, 0.0, MAX_FORCE];

/// The discrete-action cart-pole swing-up task.
#[derive(Debug, Clone, Copy, Default)]
pub struct CartPoleDiscrete;

impl Task for CartPoleDiscrete {
    fn name(&self) -> &'static str {
        "cartpole_discrete"
    }
    fn description(&self) -> &'static str {
        "cart-pole swing-up with bang-bang force F in {-10, 0, 10} N (categorical family)"
    }
    fn state_names(&self) -> &'static [&'static str] {
        CartPole.state_names()
    }
    fn control_names(&self) -> &'static [&'static str] {
        CartPole.control_names()
    }
    fn dt(&self) -> f64 {
        DT
    }
    fn default_config(&self) -> MppiConfig {
        MppiConfig {
            samples: 500,
            horizon: 30,
            iterations: 1,
            u_min: Some(vec![-MAX_FORCE]),
            u_max: Some(vec![MAX_FORCE]),
            proposal: ProposalConfig {
                categories: Some(FORCES.to_vec()),
                floor: Some(0.1),
                ..ProposalConfig::new(ProposalKind::Categorical)
            },
            weighting: WeightingConfig::fixed(1.0),
            ..MppiConfig::default()
        }
    }
    fn default_steps(&self) -> usize {
        CartPole.default_steps()
    }
    fn initial_state(&self) -> Vec<f64> {
        CartPole.initial_state()
    }
    fn dynamics(&self) -> Arc<dyn Dynamics> {
        Arc::new(CartPoleModel)
    }
    fn cost(&self) -> Arc<dyn Cost> {
        Arc::new(CartPoleModel)
    }
    /// As [`CartPole`], plus: every applied force is one of [`FORCES`].
    fn success(&self, episode: &Episode) -> Outcome {
        let base = CartPole.success(episode);
        let discrete = episode
            .controls
            .iter()
            .all(|u| u.len() == 1 && FORCES.contains(&u[0]));
        Outcome {
            success: base.success && discrete,
            message: format!("{}; all forces in {{-10, 0, 10}}: {discrete}", base.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_requires_discrete_forces() {
        let episode = |force: f64| Episode {
            dt: DT,
            states: vec![vec![0.0, 0.05, 0.0, 0.0]; 101],
            controls: vec![vec![force]; 100],
            stage_costs: vec![0.0; 100],
            reports: Vec::new(),
            rollouts: Vec::new(),
        };
        assert!(CartPoleDiscrete.success(&episode(10.0)).success);
        assert!(CartPoleDiscrete.success(&episode(0.0)).success);
        assert!(!CartPoleDiscrete.success(&episode(3.0)).success);
    }

    #[test]
    fn default_config_is_valid_and_categorical() {
        let cfg = CartPoleDiscrete.default_config();
        cfg.validate(1).unwrap();
        assert_eq!(cfg.proposal.kind, ProposalKind::Categorical);
        assert_eq!(cfg.proposal.categories(), FORCES);
    }
}
