//! Cart-pole swing-up with bang-bang force: the [`crate::cartpole`] system and cost, but the
//! controller may only push with `F ∈ {−10, 0, 10}` N, planned with the categorical family
//! (docs/theory.md §B.4.6).
//!
//! The model, the running cost and the success criterion are those of
//! [`crate::cartpole::CartPole`] (reused, not copied): from hanging down, be upright
//! (`|θ| < 0.2`) for the last 50 states without leaving the track `|x| ≤ 2.4`. The default
//! config samples every step's force independently from a categorical over the three values
//! and refits the probabilities by weighted counts (with a floor so that no action dies out).

use mppi::{ProposalConfig, WeightingConfig};
use std::sync::Arc;

use mppi::{Cost, Dynamics, MppiConfig, ProposalKind};

use crate::cartpole::{Balanced, CartPole, CartPoleModel, DT, MAX_FORCE};
use crate::criterion::Criterion;
use crate::{BodySegment, Outcome, ReferenceBand, Task};

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
    fn state_units(&self) -> &'static [&'static str] {
        CartPole.state_units()
    }
    fn control_units(&self) -> &'static [&'static str] {
        CartPole.control_units()
    }
    fn reference_bands(&self) -> Vec<ReferenceBand> {
        CartPole.reference_bands()
    }
    fn body_segments(&self, x: &[f64]) -> Vec<BodySegment> {
        CartPole.body_segments(x)
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
    fn criterion(&self) -> Box<dyn Criterion + '_> {
        Box::new(BalancedDiscrete {
            base: Balanced::new(),
            discrete: true,
        })
    }
}

/// The cart-pole's criterion, and every applied force one of [`FORCES`].
struct BalancedDiscrete {
    base: Balanced,
    discrete: bool,
}

impl Criterion for BalancedDiscrete {
    fn observe(&mut self, step: usize, x: &[f64], u: Option<&[f64]>) {
        self.base.observe(step, x, u);
        if let Some(u) = u {
            self.discrete &= u.len() == 1 && FORCES.contains(&u[0]);
        }
    }
    fn outcome(&self) -> Outcome {
        let base = self.base.outcome();
        let discrete = self.discrete;
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
        let states = vec![vec![0.0, 0.05, 0.0, 0.0]; 101];
        let judged = |force: f64| crate::judge(&CartPoleDiscrete, &states, &vec![vec![force]; 100]);
        assert!(judged(10.0).success);
        assert!(judged(0.0).success);
        assert!(!judged(3.0).success);
        // one continuous force anywhere fails
        let mut controls = vec![vec![-10.0]; 100];
        controls[7][0] = 2.5;
        assert!(!crate::judge(&CartPoleDiscrete, &states, &controls).success);
    }

    #[test]
    fn default_config_is_valid_and_categorical() {
        let cfg = CartPoleDiscrete.default_config();
        cfg.validate(1).unwrap();
        assert_eq!(cfg.proposal.kind, ProposalKind::Categorical);
        assert_eq!(cfg.proposal.categories(), FORCES);
    }
}
