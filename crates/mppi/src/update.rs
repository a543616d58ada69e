//! The update stage: how the M-step result becomes the next parameters (docs/theory.md §D.2,
//! §D.3).
//!
//! Parameters are in mean coordinates, so every rule here is vector arithmetic that knows
//! nothing of the proposal: `θ_{k+1} = θ_k + α (θ_EM − θ_k) + β (θ_k − θ_{k−1})`. `α = 1, β = 0`
//! is exact EM. The proposal decides whether a candidate is inside its domain; the loop falls
//! back to the EM step when it is not, or when a safeguarded candidate loses to the EM step on
//! the importance-sampled surrogate.

use std::fmt::Debug;

/// What an [`Update`] proposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Take `θ_EM` itself (nothing was written).
    Em,
    /// Take the candidate written into `out`, if the proposal accepts it; with `safeguarded`
    /// only if it also beats the EM step on the surrogate `L̂(θ; θ_k)` over the samples.
    Candidate {
        /// Compare with the EM step on the surrogate first.
        safeguarded: bool,
    },
}

/// Turns `θ_k`, `θ_EM` and `θ_{k−1}` into the next parameters.
///
/// ```
/// use mppi::update::{Step, StepRule, Update};
/// let mut rule = StepRule { step_size: 0.5, momentum: 0.0, safeguard: false };
/// let mut out = [0.0; 2];
/// let step = rule.propose(&[0.0, 0.0], &[1.0, 2.0], &[0.0, 0.0], &mut out);
/// assert_eq!(step, Step::Candidate { safeguarded: false });
/// assert_eq!(out, [0.5, 1.0]);
/// ```
pub trait Update: Send + Sync + Debug {
    /// Write the candidate `θ_{k+1}` into `out` (or return [`Step::Em`] to take `θ_EM`).
    /// `theta_prev` is `θ_{k−1}` (equal to `θ_k` at the first iteration of a control step).
    fn propose(
        &mut self,
        theta_k: &[f64],
        theta_em: &[f64],
        theta_prev: &[f64],
        out: &mut [f64],
    ) -> Step;
    /// Whether some candidate will be safeguarded (the loop then computes log-densities, and
    /// the proposal must have [`crate::Proposal::log_prob`]).
    fn safeguarded(&self) -> bool {
        false
    }
}

/// Step size and heavy-ball momentum in mean parameters:
/// `θ_{k+1} = θ_k + α (θ_EM − θ_k) + β (θ_k − θ_{k−1})`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRule {
    /// `α`: 1 is EM, below 1 damped, above 1 over-relaxed.
    pub step_size: f64,
    /// `β ∈ [0, 1)`: heavy-ball momentum.
    pub momentum: f64,
    /// Safeguard accelerated steps (`α > 1` or `β > 0`) on the surrogate.
    pub safeguard: bool,
}

impl StepRule {
    /// Plain EM: `α = 1`, `β = 0`.
    pub const EM: StepRule = StepRule {
        step_size: 1.0,
        momentum: 0.0,
        safeguard: false,
    };

    fn accelerated(&self) -> bool {
        self.step_size > 1.0 || self.momentum > 0.0
    }
}

impl Update for StepRule {
    fn propose(
        &mut self,
        theta_k: &[f64],
        theta_em: &[f64],
        theta_prev: &[f64],
        out: &mut [f64],
    ) -> Step {
        let (alpha, beta) = (self.step_size, self.momentum);
        if alpha == 1.0 && beta == 0.0 {
            return Step::Em;
        }
        for (((new, k), em), prev) in out.iter_mut().zip(theta_k).zip(theta_em).zip(theta_prev) {
            *new = k + alpha * (em - k) + beta * (k - prev);
        }
        Step::Candidate {
            safeguarded: self.safeguard && self.accelerated(),
        }
    }
    fn safeguarded(&self) -> bool {
        self.safeguard && self.accelerated()
    }
}
