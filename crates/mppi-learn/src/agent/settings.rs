//! Settings of the agent (sizes, planner, training) and of the policy update that makes the
//! PO-MPC family (docs/theory.md §G.3, §G.5). Each struct is plain data read from TOML with
//! unknown keys rejected, and validates itself naming the key at fault.

use serde::{Deserialize, Serialize};

use crate::LearnError;

/// Sizes, planner and training settings: TD-MPC2's, scaled to a 2-core CPU ("TD-MPC2-lite",
/// docs/theory.md §G.5) by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSettings {
    /// Latent size (a multiple of `simnorm`).
    pub latent: usize,
    /// Hidden width of dynamics, reward, Q and policy networks.
    pub mlp: usize,
    /// Hidden width of the encoder's one hidden layer.
    pub encoder_hidden: usize,
    /// SimNorm group size.
    pub simnorm: usize,
    /// Q ensemble size (≥ 2: targets and the policy use two members).
    pub num_q: usize,
    /// Two-hot bins of reward and value.
    pub bins: usize,
    /// Lowest bin (symlog units).
    pub vmin: f64,
    /// Highest bin (symlog units).
    pub vmax: f64,
    /// Planning horizon (also the length of the training sub-trajectories).
    pub horizon: usize,
    /// Planner samples per iteration.
    pub samples: usize,
    /// How many of them are policy-prior rollouts.
    pub policy_samples: usize,
    /// Elites that get a nonzero weight.
    pub elites: usize,
    /// EM iterations per decision.
    pub iterations: usize,
    /// TD-MPC2's inverse temperature on values (`w ∝ exp(temperature (V − V_max))`).
    pub temperature: f64,
    /// Planner std floor.
    pub std_min: f64,
    /// Planner std ceiling (and the spread it restarts from every decision).
    pub std_max: f64,
    /// Sub-trajectories per update.
    pub batch: usize,
    /// Updates per environment step after the seed steps.
    pub utd: f64,
    /// Random-action steps before planning starts (then `seed_steps · utd` updates at once).
    pub seed_steps: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// The encoder's learning rate relative to `learning_rate`.
    pub encoder_lr_scale: f64,
    /// Gradient-norm clip (per parameter tensor).
    pub grad_clip: f64,
    /// Temporal weight `ρ^t` of the losses along a sub-trajectory.
    pub rho: f64,
    /// Polyak rate of the target Q networks.
    pub tau: f64,
    /// Weight of the latent consistency loss.
    pub consistency_coef: f64,
    /// Weight of the reward loss.
    pub reward_coef: f64,
    /// Weight of the value loss.
    pub value_coef: f64,
    /// Entropy weight `α` (times the action dimension, TD-MPC2's scaled entropy).
    pub entropy_coef: f64,
    /// Range of the policy's log-std.
    pub log_std_min: f64,
    /// Range of the policy's log-std.
    pub log_std_max: f64,
    /// Discount; `None` uses TD-MPC2's heuristic for the episode length.
    pub discount: Option<f64>,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            latent: 64,
            mlp: 256,
            encoder_hidden: 256,
            simnorm: 8,
            num_q: 2,
            bins: 101,
            vmin: -10.0,
            vmax: 10.0,
            horizon: 3,
            samples: 256,
            policy_samples: 12,
            elites: 32,
            iterations: 4,
            temperature: 0.5,
            std_min: 0.05,
            std_max: 2.0,
            batch: 128,
            utd: 0.5,
            seed_steps: 2500,
            learning_rate: 3e-4,
            encoder_lr_scale: 0.3,
            grad_clip: 20.0,
            rho: 0.5,
            tau: 0.01,
            consistency_coef: 20.0,
            reward_coef: 0.1,
            value_coef: 0.1,
            entropy_coef: 1e-4,
            log_std_min: -10.0,
            log_std_max: 2.0,
            discount: None,
        }
    }
}

fn bad(key: &str, why: impl std::fmt::Display) -> LearnError {
    LearnError::Settings(format!("{key} {why}"))
}

impl AgentSettings {
    /// Check every key.
    pub fn validate(&self) -> Result<(), LearnError> {
        for (key, v, max) in [
            ("latent", self.latent, 4096),
            ("mlp", self.mlp, 8192),
            ("encoder_hidden", self.encoder_hidden, 8192),
            ("simnorm", self.simnorm, 4096),
            ("bins", self.bins, 10_000),
            ("horizon", self.horizon, 100),
            ("samples", self.samples, 1 << 16),
            ("elites", self.elites, 1 << 16),
            ("iterations", self.iterations, 1000),
            ("batch", self.batch, 1 << 14),
        ] {
            if v == 0 || v > max {
                return Err(bad(key, format!("must be in 1..={max}, got {v}")));
            }
        }
        if !(2..=16).contains(&self.num_q) {
            return Err(bad(
                "num_q",
                format!("must be in 2..=16, got {}", self.num_q),
            ));
        }
        if self.bins < 2 {
            return Err(bad("bins", "must be >= 2"));
        }
        if !self.latent.is_multiple_of(self.simnorm) {
            return Err(bad(
                "latent",
                format!(
                    "must be a multiple of simnorm = {}, got {}",
                    self.simnorm, self.latent
                ),
            ));
        }
        if self.policy_samples >= self.samples {
            return Err(bad("policy_samples", "must be below samples"));
        }
        if self.elites > self.samples {
            return Err(bad("elites", "must be at most samples"));
        }
        for (key, v) in [
            ("temperature", self.temperature),
            ("std_min", self.std_min),
            ("std_max", self.std_max),
            ("learning_rate", self.learning_rate),
            ("encoder_lr_scale", self.encoder_lr_scale),
            ("grad_clip", self.grad_clip),
            ("rho", self.rho),
            ("tau", self.tau),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(bad(key, format!("must be a finite number > 0, got {v}")));
            }
        }
        for (key, v) in [
            ("utd", self.utd),
            ("consistency_coef", self.consistency_coef),
            ("reward_coef", self.reward_coef),
            ("value_coef", self.value_coef),
            ("entropy_coef", self.entropy_coef),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(key, format!("must be a finite number >= 0, got {v}")));
            }
        }
        if self.utd > 64.0 {
            return Err(bad("utd", "must be at most 64"));
        }
        if self.std_min > self.std_max {
            return Err(bad("std_min", "must be at most std_max"));
        }
        if self.tau > 1.0 || self.rho > 1.0 {
            return Err(bad("tau and rho", "must be at most 1"));
        }
        if !(self.vmin.is_finite() && self.vmax.is_finite() && self.vmin < self.vmax) {
            return Err(bad("vmin", "must be finite and below vmax"));
        }
        if !(self.log_std_min.is_finite()
            && self.log_std_max.is_finite()
            && self.log_std_min < self.log_std_max)
        {
            return Err(bad("log_std_min", "must be finite and below log_std_max"));
        }
        if let Some(g) = self.discount
            && !(g.is_finite() && g > 0.0 && g < 1.0)
        {
            return Err(bad("discount", format!("must be in (0, 1), got {g}")));
        }
        Ok(())
    }
}

/// What the policy maximizes (docs/theory.md §G.3): the family member's objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// `E_π[Q/S] − λ KL(π ‖ p) + α H(π)` (TD-MPC2 at λ = 0, PO-MPC for λ > 0).
    Value,
    /// `−KL(π ‖ p) + α H(π)`: imitate the planner (BMPC, the λ → ∞ limit).
    Imitate,
    /// TD-M(PC)²'s residual form `E_π[Q/S] + β E_π[log p]/S − α E_π[log π]`, the prior term
    /// active only while `S > scale_threshold`.
    Residual,
}

/// Where the prior `p(· | s)` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriorSource {
    /// No prior (λ must be 0).
    None,
    /// The planner's distribution stored with each transition, `N(μ_plan, max(σ_plan, 0.05))`
    /// (optionally refreshed by lazy reanalysis).
    Planner,
    /// The intermediate prior `π̃_ψ`, a Gaussian network fitted to the replayed planner
    /// distributions by `min_ψ E KL(N(μ_plan, σ_plan) ‖ π̃_ψ)`.
    Intermediate,
}

/// How the policy follows its objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyUpdate {
    /// Reparameterized gradient of the objective through `a = tanh(μ + σ ε)` (SAC / DPG
    /// style; TD-MPC2, BMPC and TD-M(PC)² do this).
    Reparam,
    /// MPO style: E-step `q(a|s) ∝ p(a|s) exp(Q(s,a)/(λ S))` on `mle_samples` draws from
    /// the prior (the same softmax as MPPI's), M-step the weighted maximum likelihood
    /// `max Σ_j w_j log π(a_j | s)` (forward KL to `q`).
    WeightedMle,
}

/// The direction of the KL term in the reparameterized update (not recoverable from the
/// paper, docs/theory.md §G.1: both readings are settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlDirection {
    /// `KL(π ‖ p)`, estimated on the reparameterized draw: `log π(a) − log p(a)`.
    Reverse,
    /// `KL(p ‖ π)`, up to a constant `−E_{a∼p} log π(a)` on `mle_samples` draws from `p`.
    Forward,
}

/// The policy update of the PO-MPC family: `E_{a~π}[Q/S] − λ·KL(π ‖ p) + α·H(π)` and its
/// limits (docs/theory.md §G.3). The variants of the paper's table are presets
/// ([`PolicySettings::variant`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySettings {
    /// What is maximized.
    pub objective: Objective,
    /// KL weight `λ` of [`Objective::Value`] (Q units divided by the scale `S`).
    pub lambda: f64,
    /// Where the prior comes from.
    pub prior: PriorSource,
    /// Reparameterized or weighted-MLE update.
    pub update: PolicyUpdate,
    /// The KL direction of the reparameterized update.
    pub kl: KlDirection,
    /// Draws per state of the weighted-MLE update and of the forward KL.
    pub mle_samples: usize,
    /// The tilt temperature of the weighted-MLE update when `λ = 0` (there the draws come from
    /// the current policy): `w ∝ exp(Q/(η S))`.
    pub mle_temperature: f64,
    /// TD-M(PC)²'s `prior_coef` (`β = prior_coef · m / 61`, `m` the action dimension).
    pub prior_coef: f64,
    /// TD-M(PC)²'s `scale_threshold`: the prior term is active only while `S` exceeds it.
    pub scale_threshold: f64,
    /// Lazy reanalysis (BMPC): every this many updates, re-plan `reanalyze_states` replayed
    /// states with the current model and overwrite their stored planner distribution; 0 off.
    pub reanalyze_every: usize,
    /// States re-planned per reanalysis.
    pub reanalyze_states: usize,
    /// The planner's std floor applied to stored priors (TD-M(PC)²'s 0.05).
    pub prior_std_min: f64,
}

impl Default for PolicySettings {
    /// V0 (TD-MPC2).
    fn default() -> Self {
        PolicySettings {
            objective: Objective::Value,
            lambda: 0.0,
            prior: PriorSource::None,
            update: PolicyUpdate::Reparam,
            kl: KlDirection::Reverse,
            mle_samples: 16,
            mle_temperature: 0.1,
            prior_coef: 1.0,
            scale_threshold: 2.0,
            reanalyze_every: 0,
            reanalyze_states: 5,
            prior_std_min: 0.05,
        }
    }
}

/// The variants of the results table, by name.
pub const VARIANTS: [&str; 6] = ["v0", "vinf", "vtd", "vlambda-0.1", "vlambda-1", "vtilde"];

impl PolicySettings {
    /// A named member of the family (docs/theory.md §G.5):
    ///
    /// | name | member |
    /// |---|---|
    /// | `v0` | λ = 0, TD-MPC2 |
    /// | `vinf` | imitate the stored planner distribution (BMPC without reanalysis) |
    /// | `vinf-reanalyze` | the same with lazy reanalysis, 5 states every 10 updates |
    /// | `vtd` | TD-M(PC)²'s residual form with the stored planner prior |
    /// | `vlambda-<λ>` | PO-MPC with the stored planner prior and weight λ (`vlambda-0.1`, `vlambda-1`) |
    /// | `vtilde` / `vtilde-<λ>` | PO-MPC with the intermediate prior π̃, λ = 1 by default |
    ///
    /// ```
    /// use mppi_learn::agent::settings::{PolicySettings, PriorSource};
    /// let v = PolicySettings::variant("vlambda-0.1")?;
    /// assert_eq!((v.lambda, v.prior), (0.1, PriorSource::Planner));
    /// assert!(PolicySettings::variant("v2").is_err());
    /// # Ok::<(), mppi_learn::LearnError>(())
    /// ```
    pub fn variant(name: &str) -> Result<Self, LearnError> {
        let base = PolicySettings::default();
        let lambda_of = |text: &str| -> Result<f64, LearnError> {
            text.parse::<f64>()
                .ok()
                .filter(|l| l.is_finite() && *l > 0.0)
                .ok_or_else(|| {
                    LearnError::Settings(format!(
                        "variant `{name}`: `{text}` is not a number > 0 (write e.g. vlambda-0.1)"
                    ))
                })
        };
        let settings = match name {
            "v0" => base,
            "vinf" => PolicySettings {
                objective: Objective::Imitate,
                prior: PriorSource::Planner,
                ..base
            },
            "vinf-reanalyze" => PolicySettings {
                objective: Objective::Imitate,
                prior: PriorSource::Planner,
                reanalyze_every: 10,
                reanalyze_states: 5,
                ..base
            },
            "vtd" => PolicySettings {
                objective: Objective::Residual,
                prior: PriorSource::Planner,
                ..base
            },
            "vtilde" => PolicySettings {
                lambda: 1.0,
                prior: PriorSource::Intermediate,
                ..base
            },
            _ => {
                if let Some(l) = name.strip_prefix("vlambda-") {
                    PolicySettings {
                        lambda: lambda_of(l)?,
                        prior: PriorSource::Planner,
                        ..base
                    }
                } else if let Some(l) = name.strip_prefix("vtilde-") {
                    PolicySettings {
                        lambda: lambda_of(l)?,
                        prior: PriorSource::Intermediate,
                        ..base
                    }
                } else {
                    return Err(LearnError::Settings(format!(
                        "unknown variant `{name}`; the variants are {}, vinf-reanalyze, \
                         vlambda-<λ> and vtilde-<λ>",
                        VARIANTS.join(", ")
                    )));
                }
            }
        };
        Ok(settings)
    }

    /// Check the keys and their combinations.
    pub fn validate(&self) -> Result<(), LearnError> {
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return Err(bad(
                "policy.lambda",
                format!("must be a finite number >= 0, got {}", self.lambda),
            ));
        }
        for (key, v) in [
            ("policy.mle_temperature", self.mle_temperature),
            ("policy.prior_std_min", self.prior_std_min),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(bad(key, format!("must be a finite number > 0, got {v}")));
            }
        }
        for (key, v) in [
            ("policy.prior_coef", self.prior_coef),
            ("policy.scale_threshold", self.scale_threshold),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(key, format!("must be a finite number >= 0, got {v}")));
            }
        }
        if !(1..=4096).contains(&self.mle_samples) {
            return Err(bad("policy.mle_samples", "must be in 1..=4096"));
        }
        let needs_prior = match self.objective {
            Objective::Value => self.lambda > 0.0,
            Objective::Imitate | Objective::Residual => true,
        };
        if needs_prior && self.prior == PriorSource::None {
            return Err(bad(
                "policy.prior",
                "is `none`, but this objective needs a prior: set prior = \"planner\" or \"intermediate\"",
            ));
        }
        if self.objective == Objective::Residual && self.update == PolicyUpdate::WeightedMle {
            return Err(bad(
                "policy.update",
                "= \"weighted_mle\" is not defined for the residual (TD-M(PC)²) objective: use \"reparam\"",
            ));
        }
        if self.reanalyze_every > 0 && self.prior != PriorSource::Planner {
            return Err(bad(
                "policy.reanalyze_every",
                "refreshes stored planner priors: it needs prior = \"planner\"",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_variant_validates() {
        for name in VARIANTS.iter().chain(&["vinf-reanalyze", "vtilde-0.3"]) {
            PolicySettings::variant(name).unwrap().validate().unwrap();
        }
        assert!(PolicySettings::variant("vlambda--1").is_err());
        assert!(PolicySettings::variant("vlambda-nan").is_err());
        AgentSettings::default().validate().unwrap();
    }

    #[test]
    fn bad_settings_name_their_key() {
        let s = AgentSettings {
            latent: 60,
            ..AgentSettings::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("latent"));
        let p = PolicySettings {
            lambda: 1.0,
            ..PolicySettings::default()
        };
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .contains("policy.prior")
        );
        let err = serde_json::from_str::<AgentSettings>("{\"laten\": 3}").unwrap_err();
        assert!(err.to_string().contains("laten"), "{err}");
    }
}
