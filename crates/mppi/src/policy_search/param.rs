//! Parameter-space MPPI: [`ParamSearch`] and its [`ParamSettings`], the library's planner
//! on `θ`.

use serde::{Deserialize, Serialize};

use crate::config::{
    MppiConfig, Parallel, ProposalConfig, ScheduleConfig, TemperatureConfig, UpdateConfig,
    WeightingConfig,
};
use crate::error::{MppiError, check_finite, check_len};
use crate::objective::{Cost, Dynamics};
use crate::planner::Planner;

use super::{ClosedLoop, IterationReport, Policy, PolicySearch};

/// Settings of [`ParamSearch`] (parameter-space MPPI, docs/theory.md §E.2 item 1): the
/// planner's own keys, with `θ` as its controls (horizon 1). The default proposal is the
/// fixed Gaussian with `noise_sigma = 0.1` (`Σ_θ = 0.01 I`); `gaussian_diag` adapts `Σ_θ`.
///
/// ```
/// use mppi::policy_search::ParamSettings;
/// let s: ParamSettings = toml::from_str(
///     "samples = 32\n[proposal]\nkind = \"gaussian_diag\"\nnoise_sigma = 0.2\n[update]\nstep_size = 0.5",
/// ).unwrap();
/// let config = s.planner_config();
/// assert_eq!((config.samples, config.horizon), (32, 1));
/// let bad = ParamSettings { samples: 0, ..ParamSettings::default() };
/// assert!(bad.validate(3).unwrap_err().to_string().contains("`samples`"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParamSettings {
    /// EM iterations (the planner's `iterations`: a schedule anneals over them).
    pub iterations: usize,
    /// Parameter samples `θ_i` per iteration, at least 2.
    pub samples: usize,
    /// The distribution of `θ_i`: its kind and keys (`noise_sigma` is `Σ_θ`'s standard
    /// deviation).
    pub proposal: ProposalConfig,
    /// Annealing over the iterations.
    pub schedule: ScheduleConfig,
    /// The E-step: temperature rule and elites.
    pub weighting: WeightingConfig,
    /// Step size and acceleration.
    pub update: UpdateConfig,
    /// Seed of the parameter noise.
    pub seed: u64,
    /// Rollout threads (results do not depend on it).
    pub threads: usize,
    /// Largest memory the planner may take, in MiB.
    pub memory_limit_mb: f64,
}

impl Default for ParamSettings {
    fn default() -> Self {
        ParamSettings {
            iterations: 30,
            samples: 64,
            proposal: ProposalConfig::gaussian(&[0.1]),
            schedule: ScheduleConfig::Constant,
            weighting: WeightingConfig {
                temperature: TemperatureConfig::EssTarget { target: 0.1 },
                ..WeightingConfig::default()
            },
            update: UpdateConfig::default(),
            seed: 0,
            threads: 1,
            memory_limit_mb: 4096.0,
        }
    }
}

impl ParamSettings {
    /// The planner's config: horizon 1, these keys, no control bounds (`θ` is unbounded).
    #[must_use]
    pub fn planner_config(&self) -> MppiConfig {
        MppiConfig {
            samples: self.samples,
            horizon: 1,
            iterations: self.iterations,
            seed: self.seed,
            threads: self.threads,
            parallel: Parallel::Auto,
            memory_limit_mb: self.memory_limit_mb,
            proposal: self.proposal.clone(),
            schedule: self.schedule,
            weighting: self.weighting,
            update: self.update,
            ..MppiConfig::default()
        }
    }

    /// Check every value for a policy of `num_params` parameters; errors name the key as it
    /// is written here (`samples`, `proposal.noise_sigma`).
    pub fn validate(&self, num_params: usize) -> Result<(), MppiError> {
        if num_params == 0 {
            return Err(MppiError::config("policy", "has no parameters"));
        }
        self.planner_config().validate(num_params)
    }
}

/// Parameter-space MPPI (PI^BB): the library's [`Planner`] on `θ`.
///
/// Every iteration is one [`Planner::iterate_from`] at control step 0, iteration `k`, on the
/// [`ClosedLoop`] objective: `θ_i ~ p(·; θ̄_k)`, `J_i = J(θ_i)`, `w = softmax(−J/λ)`,
/// `θ̄_EM = Σ_i w_i θ_i` (for the Gaussian families), then the update stage
/// (`θ̄_{k+1} = θ̄_k + α(θ̄_EM − θ̄_k) + β(θ̄_k − θ̄_{k−1})`). No loop of its own.
///
/// ```
/// use mppi::policy_search::{ClosedLoop, LinearPolicy, ParamSearch, ParamSettings, PolicySearch};
/// # use mppi::{Cost, Dynamics};
/// # struct Integrator;
/// # impl Dynamics for Integrator {
/// #     fn state_dim(&self) -> usize { 1 }
/// #     fn control_dim(&self) -> usize { 1 }
/// #     fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) { next[0] = x[0] + 0.1 * u[0]; }
/// # }
/// # struct Quadratic;
/// # impl Cost for Quadratic {
/// #     fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 { x[0] * x[0] + 0.1 * u[0] * u[0] }
/// # }
/// let problem = ClosedLoop::new(LinearPolicy::new(1, 1)?, Integrator, Quadratic, &[vec![1.0]], 20)?;
/// let settings = ParamSettings { samples: 32, ..ParamSettings::default() };
/// let mut search = ParamSearch::new(problem, &settings, &[0.0, 0.0])?;
/// let before = search.policy_cost()?;
/// for _ in 0..10 {
///     search.iterate()?;
/// }
/// assert!(search.policy_cost()? < before);
/// assert_eq!(search.planner().num_samples(), 32);
/// # Ok::<(), mppi::MppiError>(())
/// ```
pub struct ParamSearch<P, D, C> {
    problem: ClosedLoop<P, D, C>,
    planner: Planner,
    iterations: usize,
    iteration: u64,
}

impl<P: Policy, D: Dynamics, C: Cost> ParamSearch<P, D, C> {
    /// A search on `problem` from `theta0` with `settings` (validated here).
    pub fn new(
        problem: ClosedLoop<P, D, C>,
        settings: &ParamSettings,
        theta0: &[f64],
    ) -> Result<Self, MppiError> {
        let p = problem.num_params();
        settings.validate(p)?;
        check_len("initial parameters", p, theta0.len())?;
        check_finite("initial parameters", theta0)?;
        let mut planner = Planner::new(&settings.planner_config(), p)?;
        planner.set_mean(theta0)?;
        planner.prepare(&problem);
        Ok(ParamSearch {
            problem,
            planner,
            iterations: settings.iterations,
            iteration: 0,
        })
    }
    /// The problem.
    #[must_use]
    pub fn problem(&self) -> &ClosedLoop<P, D, C> {
        &self.problem
    }
    /// The planner (its samples, costs and weights are those of the last iteration).
    #[must_use]
    pub fn planner(&self) -> &Planner {
        &self.planner
    }
}

impl<P: Policy, D: Dynamics, C: Cost> PolicySearch for ParamSearch<P, D, C> {
    fn iterate(&mut self) -> Result<IterationReport, MppiError> {
        let stats = self
            .planner
            .iterate_from(&self.problem, None, 0, self.iteration)?;
        self.iteration += 1;
        Ok(IterationReport {
            iteration: stats.iteration as usize,
            weights: stats.weights,
            policy_cost: self.problem.policy_cost(self.planner.mean())?,
            update_norm: stats.update_norm,
            kept_policy: stats.kept_plan,
        })
    }
    fn params(&self) -> &[f64] {
        self.planner.mean()
    }
    fn policy_cost(&self) -> Result<f64, MppiError> {
        self.problem.policy_cost(self.planner.mean())
    }
    fn iterations(&self) -> usize {
        self.iterations
    }
}
