//! EM policy search with action-space exploration: [`EmSearch`], its [`EmSettings`] and the
//! M-steps (the policy's closed form, or Adam on the weighted negative log-likelihood).

use serde::{Deserialize, Serialize};

use crate::config::{TemperatureConfig, WeightingConfig};
use crate::error::{MppiError, check_finite, check_len};
use crate::objective::{Cost, Dynamics};
use crate::rng::sample_rng;
use crate::weights::{Softmax, Weighting};

#[cfg(doc)]
use super::LinearPolicy;
use super::{ClosedLoop, IterationReport, Policy, PolicySearch, WeightedRows};

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

/// How [`EmSearch`] takes the M-step.
///
/// ```
/// use mppi::policy_search::EmSettings;
/// let s: EmSettings = toml::from_str("m_step = \"gradient\"").unwrap();
/// assert_eq!(s.m_step, mppi::policy_search::MStep::Gradient);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MStep {
    /// The policy's closed form ([`Policy::fit_weighted`]) where it has one, Adam otherwise.
    #[default]
    Auto,
    /// Always Adam steps on the weighted negative log-likelihood (a generalized M-step).
    Gradient,
}

/// The `[adam]` section of [`EmSettings`]: the gradient M-step,
/// `adam.steps` full-batch Adam steps from `θ_k` on
/// `L(θ) = Σ_r ŵ_r ½‖a_r − μ_θ(s_r, t_r)‖²` (the weighted negative log-likelihood up to the
/// factor `1/σ²`, which Adam's scale invariance makes irrelevant; fresh moments every M-step).
///
/// ```
/// use mppi::policy_search::AdamSettings;
/// let a = AdamSettings::default();
/// assert_eq!((a.steps, a.learning_rate), (50, 0.01));
/// let bad = AdamSettings { beta1: 1.0, ..a };
/// assert!(bad.validate().unwrap_err().to_string().contains("adam.beta1"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamSettings {
    /// Adam steps per M-step (at least 1).
    pub steps: usize,
    /// Learning rate `> 0`.
    pub learning_rate: f64,
    /// First-moment decay in `[0, 1)`.
    pub beta1: f64,
    /// Second-moment decay in `[0, 1)`.
    pub beta2: f64,
    /// Denominator offset `> 0`.
    pub epsilon: f64,
}

impl Default for AdamSettings {
    fn default() -> Self {
        AdamSettings {
            steps: 50,
            learning_rate: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        }
    }
}

impl AdamSettings {
    /// Check the section; errors name the key (`adam.learning_rate`).
    pub fn validate(&self) -> Result<(), MppiError> {
        if self.steps == 0 {
            return Err(MppiError::config("adam.steps", "must be >= 1"));
        }
        if self.steps > MAX_ADAM_STEPS {
            return Err(MppiError::config(
                "adam.steps",
                format!("must be at most {MAX_ADAM_STEPS}, got {}", self.steps),
            ));
        }
        positive("adam.learning_rate", self.learning_rate)?;
        unit_interval("adam.beta1", self.beta1)?;
        unit_interval("adam.beta2", self.beta2)?;
        positive("adam.epsilon", self.epsilon)
    }
}

/// Most Adam steps per M-step.
const MAX_ADAM_STEPS: usize = 1_000_000;

/// Settings of [`EmSearch`] (EM policy search with action-space exploration, docs/theory.md
/// §E.2 item 2). The problem itself (horizon, start states, bounds, discount) is the
/// [`ClosedLoop`]'s.
///
/// ```
/// use mppi::policy_search::EmSettings;
/// let s: EmSettings = toml::from_str(
///     "samples = 128\nsigma = 0.5\n[weighting]\ntemperature = { kind = \"fixed\", lambda = 2.0 }",
/// ).unwrap();
/// assert_eq!((s.samples, s.sigma), (128, 0.5));
/// assert!(toml::from_str::<EmSettings>("sigmaa = 0.5").is_err()); // a typo is an error
/// let bad = EmSettings { sigma: -1.0, ..EmSettings::default() };
/// assert!(bad.validate().unwrap_err().to_string().contains("`sigma`"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmSettings {
    /// EM iterations [`PolicySearch::run`] takes.
    pub iterations: usize,
    /// Samples `N` per iteration (each is one noisy episode per start state), at least 2.
    pub samples: usize,
    /// Standard deviation `σ > 0` of the action noise `ε_t ~ N(0, σ²I)`, in control units.
    pub sigma: f64,
    /// The E-step: temperature rule (`fixed`, `std_normalized`, `ess_target`) and elites, as
    /// the planner's `[weighting]` (`control_cost_gamma` must stay 0 here).
    pub weighting: WeightingConfig,
    /// Relative ridge `ρ ≥ 0` of the linear policy's least squares (see [`LinearPolicy`]).
    pub ridge: f64,
    /// `auto` (closed form where the policy has one) or `gradient` (always Adam).
    pub m_step: MStep,
    /// The gradient M-step.
    pub adam: AdamSettings,
    /// Seed of the exploration noise; results are a pure function of it.
    pub seed: u64,
    /// Largest memory the rollouts may take, in MiB.
    pub memory_limit_mb: f64,
}

impl Default for EmSettings {
    fn default() -> Self {
        EmSettings {
            iterations: 30,
            samples: 64,
            sigma: 1.0,
            weighting: WeightingConfig {
                temperature: TemperatureConfig::EssTarget { target: 0.1 },
                ..WeightingConfig::default()
            },
            ridge: 1e-9,
            m_step: MStep::Auto,
            adam: AdamSettings::default(),
            seed: 0,
            memory_limit_mb: 4096.0,
        }
    }
}

impl EmSettings {
    /// Check every value; errors name the key (`sigma`, `weighting.temperature.lambda`).
    pub fn validate(&self) -> Result<(), MppiError> {
        if self.iterations == 0 {
            return Err(MppiError::config("iterations", "must be >= 1"));
        }
        if self.samples < 2 {
            return Err(MppiError::config(
                "samples",
                format!("must be >= 2, got {}", self.samples),
            ));
        }
        positive("sigma", self.sigma)?;
        self.weighting.validate(self.samples)?;
        if self.weighting.control_cost_gamma != 0.0 {
            return Err(MppiError::config(
                "weighting.control_cost_gamma",
                "does not apply to EM policy search (set it to 0)",
            ));
        }
        if !(self.ridge.is_finite() && self.ridge >= 0.0) {
            return Err(MppiError::config(
                "ridge",
                format!("must be a finite number >= 0, got {}", self.ridge),
            ));
        }
        self.adam.validate()?;
        positive("memory_limit_mb", self.memory_limit_mb)
    }

    /// Bytes the rollouts of `samples` samples of `starts` episodes of `horizon` steps
    /// (`n` states, `m` actions, `p` parameters) take, or `None` beyond `u128`.
    fn workspace_bytes(
        &self,
        starts: usize,
        horizon: usize,
        n: usize,
        m: usize,
        p: usize,
    ) -> Option<u128> {
        let rows = (self.samples as u128)
            .checked_mul(starts as u128)?
            .checked_mul(horizon as u128)?;
        let per_row = (n as u128 + m as u128 + 1) * 8;
        rows.checked_mul(per_row)?
            .checked_add((self.samples as u128).checked_mul(16)?)?
            .checked_add((p as u128).checked_mul(48)?)
    }
}

fn positive(field: &'static str, v: f64) -> Result<(), MppiError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(MppiError::config(
            field,
            format!("must be a finite number > 0, got {v}"),
        ))
    }
}

fn unit_interval(field: &'static str, v: f64) -> Result<(), MppiError> {
    if (0.0..1.0).contains(&v) {
        Ok(())
    } else {
        Err(MppiError::config(
            field,
            format!("must be in [0, 1), got {v}"),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// The search
// ---------------------------------------------------------------------------------------------

/// EM policy search with action-space exploration and a weighted maximum-likelihood M-step
/// (reward-weighted regression; docs/theory.md §E.2 item 2).
///
/// Iteration `k`:
/// 1. sample `i < N` draws from [`sample_rng`]`(seed, 0, k, i)` one noisy episode per start
///    state, `a_t = clamp(μ_θ(x_t, t) + σ z_t)`, and costs `J_i` (the mean over its
///    episodes);
/// 2. `w = softmax(−J/λ)` by the library's weighting stage ([`Softmax`] with the settings'
///    temperature rule and elites; a NaN cost gets weight 0, and if no cost is finite `θ` is
///    kept);
/// 3. the M-step on the rows of every episode with `ŵ = w_i/(S·T)` ([`WeightedRows`]):
///    [`Policy::fit_weighted`] where it exists (and `m_step = "auto"`), otherwise
///    `adam.steps` Adam steps on `Σ ŵ ½‖a − μ_θ(s)‖²` from `θ_k`.
///
/// ```
/// use mppi::policy_search::{ClosedLoop, EmSearch, EmSettings, MlpPolicy, Policy, PolicySearch};
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
/// let policy = MlpPolicy::new(1, 1, &[8], 1)?;
/// let theta0 = policy.initial_params();
/// let problem = ClosedLoop::new(policy, Integrator, Quadratic, &[vec![1.0], vec![-1.0]], 20)?;
/// let mut settings = EmSettings { samples: 32, ..EmSettings::default() };
/// settings.adam.steps = 20;
/// let mut search = EmSearch::new(problem, &settings, &theta0)?;
/// let before = search.policy_cost()?;
/// for _ in 0..5 {
///     search.iterate()?;
/// }
/// assert!(search.policy_cost()? < before);
/// assert_eq!(search.rows().len(), 32 * 2 * 20);
/// # Ok::<(), mppi::MppiError>(())
/// ```
pub struct EmSearch<P, D, C> {
    problem: ClosedLoop<P, D, C>,
    settings: EmSettings,
    weighting: Softmax,
    theta: Vec<f64>,
    iteration: u64,
    costs: Vec<f64>,
    weights: Vec<f64>,
    /// The rows of the last iteration: `N·S·T` states, actions and row weights.
    states: Vec<f64>,
    actions: Vec<f64>,
    row_weights: Vec<f64>,
    buf: Vec<f64>,
    adam: AdamState,
}

/// Adam's buffers: the moments and the gradient.
#[derive(Debug, Clone)]
struct AdamState {
    first: Vec<f64>,
    second: Vec<f64>,
    grad: Vec<f64>,
}

impl<P: Policy, D: Dynamics, C: Cost> EmSearch<P, D, C> {
    /// A search on `problem` from `theta0` with `settings` (validated here, with the size of
    /// the rollouts checked against `memory_limit_mb`).
    pub fn new(
        problem: ClosedLoop<P, D, C>,
        settings: &EmSettings,
        theta0: &[f64],
    ) -> Result<Self, MppiError> {
        settings.validate()?;
        let p = problem.num_params();
        check_len("initial parameters", p, theta0.len())?;
        check_finite("initial parameters", theta0)?;
        let (n, m) = (problem.dynamics.state_dim(), problem.dynamics.control_dim());
        let (s, t) = (problem.num_starts(), problem.horizon);
        let limit = settings.memory_limit_mb * 1024.0 * 1024.0;
        let need = settings.workspace_bytes(s, t, n, m, p);
        if need.is_none_or(|b| b as f64 > limit) {
            return Err(MppiError::config(
                "samples",
                format!(
                    "samples = {} x {s} start states x horizon {t} rows of {n} states and {m} \
                     actions need {} bytes, over memory_limit_mb = {}: reduce them, or raise \
                     memory_limit_mb if the machine has the memory",
                    settings.samples,
                    need.map_or("more than 10^38".to_string(), |b| b.to_string()),
                    settings.memory_limit_mb
                ),
            ));
        }
        let temperature = settings.weighting.validate(settings.samples)?;
        let rows = settings.samples * s * t;
        Ok(EmSearch {
            weighting: Softmax::new(temperature, settings.weighting.elites, settings.samples),
            theta: theta0.to_vec(),
            iteration: 0,
            costs: vec![0.0; settings.samples],
            weights: vec![0.0; settings.samples],
            states: vec![0.0; rows * n],
            actions: vec![0.0; rows * m],
            row_weights: vec![0.0; rows],
            buf: vec![0.0; problem.buffer_len()],
            adam: AdamState {
                first: vec![0.0; p],
                second: vec![0.0; p],
                grad: vec![0.0; p],
            },
            settings: settings.clone(),
            problem,
        })
    }

    /// The problem.
    #[must_use]
    pub fn problem(&self) -> &ClosedLoop<P, D, C> {
        &self.problem
    }
    /// The costs `J_i` of the last iteration's samples.
    #[must_use]
    pub fn costs(&self) -> &[f64] {
        &self.costs
    }
    /// The weights `w_i` of the last iteration's samples.
    #[must_use]
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }
    /// The last iteration's rows with their M-step weights `ŵ` (sample `i`'s episode from
    /// start `s` is rows `(i·S + s)·T ..`).
    #[must_use]
    pub fn rows(&self) -> WeightedRows<'_> {
        let (n, m) = (
            self.problem.dynamics.state_dim(),
            self.problem.dynamics.control_dim(),
        );
        WeightedRows {
            state_dim: n,
            control_dim: m,
            horizon: self.problem.horizon,
            states: &self.states,
            actions: &self.actions,
            weights: &self.row_weights,
        }
    }
    /// Replace the parameters (e.g. to restart from a known policy).
    pub fn set_params(&mut self, theta: &[f64]) -> Result<(), MppiError> {
        check_len("policy parameters", self.theta.len(), theta.len())?;
        check_finite("policy parameters", theta)?;
        self.theta.copy_from_slice(theta);
        Ok(())
    }

    /// Step 1: the noisy episodes of every sample, their rows and costs.
    fn sample(&mut self) {
        let problem = &self.problem;
        let (n, m, t) = (
            problem.dynamics.state_dim(),
            problem.dynamics.control_dim(),
            problem.horizon,
        );
        let s = problem.num_starts();
        for (i, cost) in self.costs.iter_mut().enumerate() {
            let mut rng = sample_rng(self.settings.seed, 0, self.iteration, i as u64);
            let mut total = 0.0;
            for start in 0..s {
                let r = (i * s + start) * t;
                let record = (
                    &mut self.states[r * n..(r + t) * n],
                    &mut self.actions[r * m..(r + t) * m],
                );
                total += problem.episode(
                    &self.theta,
                    problem.start(start),
                    Some((&mut rng, self.settings.sigma)),
                    Some(record),
                    &mut self.buf,
                );
            }
            *cost = total / s as f64;
        }
    }

    /// Step 3's row weights `ŵ = w_i / (S·T)`, 0 for a row with a non-finite entry.
    fn weigh_rows(&mut self) {
        let (n, m) = (
            self.problem.dynamics.state_dim(),
            self.problem.dynamics.control_dim(),
        );
        let per_sample = self.problem.num_starts() * self.problem.horizon;
        let scale = 1.0 / per_sample as f64;
        for (r, rw) in self.row_weights.iter_mut().enumerate() {
            let w = self.weights[r / per_sample];
            let finite = self.states[r * n..(r + 1) * n]
                .iter()
                .chain(&self.actions[r * m..(r + 1) * m])
                .all(|v| v.is_finite());
            *rw = if w > 0.0 && finite { w * scale } else { 0.0 };
        }
    }

    /// The gradient M-step: Adam on `Σ ŵ ½‖a − μ_θ(s)‖²` from the current `θ`. Stops early
    /// (keeping the last finite `θ`) if a gradient is not finite.
    fn adam_fit(&mut self) {
        let a = self.settings.adam;
        let rows = WeightedRows {
            state_dim: self.problem.dynamics.state_dim(),
            control_dim: self.problem.dynamics.control_dim(),
            horizon: self.problem.horizon,
            states: &self.states,
            actions: &self.actions,
            weights: &self.row_weights,
        };
        let policy = &self.problem.policy;
        let st = &mut self.adam;
        st.first.fill(0.0);
        st.second.fill(0.0);
        let (mut b1t, mut b2t) = (1.0, 1.0);
        for _ in 0..a.steps {
            st.grad.fill(0.0);
            for (s, act, t, w) in rows.weighted() {
                policy.nll_gradient(&self.theta, s, t, act, w, &mut st.grad);
            }
            if !st.grad.iter().all(|g| g.is_finite()) {
                break;
            }
            b1t *= a.beta1;
            b2t *= a.beta2;
            for (((th, g), m1), m2) in self
                .theta
                .iter_mut()
                .zip(&st.grad)
                .zip(&mut st.first)
                .zip(&mut st.second)
            {
                *m1 = a.beta1 * *m1 + (1.0 - a.beta1) * g;
                *m2 = a.beta2 * *m2 + (1.0 - a.beta2) * g * g;
                let mhat = *m1 / (1.0 - b1t);
                let vhat = *m2 / (1.0 - b2t);
                *th -= a.learning_rate * mhat / (vhat.sqrt() + a.epsilon);
            }
        }
    }
}

impl<P: Policy, D: Dynamics, C: Cost> PolicySearch for EmSearch<P, D, C> {
    fn iterate(&mut self) -> Result<IterationReport, MppiError> {
        let k = self.iteration;
        self.sample();
        let stats = self.weighting.weigh(&self.costs, 1.0, &mut self.weights);
        self.iteration += 1;
        let mut report = IterationReport {
            iteration: k as usize,
            weights: stats,
            ..IterationReport::default()
        };
        if stats.all_nonfinite(self.settings.samples) {
            self.row_weights.fill(0.0);
            report.kept_policy = true;
            report.policy_cost = self.policy_cost()?;
            return Ok(report);
        }
        self.weigh_rows();
        let before = self.theta.clone();
        let closed = match self.settings.m_step {
            MStep::Auto => {
                let mut theta = self.theta.clone();
                self.problem
                    .policy
                    .fit_weighted(&self.rows(), self.settings.ridge, &mut theta)
                    .map(|r| r.map(|()| theta))
            }
            MStep::Gradient => None,
        };
        match closed {
            Some(Ok(theta)) => self.theta = theta,
            Some(Err(e)) => return Err(e),
            None => self.adam_fit(),
        }
        report.update_norm = self
            .theta
            .iter()
            .zip(&before)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        report.policy_cost = self.policy_cost()?;
        Ok(report)
    }
    fn params(&self) -> &[f64] {
        &self.theta
    }
    fn policy_cost(&self) -> Result<f64, MppiError> {
        self.problem.policy_cost(&self.theta)
    }
    fn iterations(&self) -> usize {
        self.settings.iterations
    }
}
