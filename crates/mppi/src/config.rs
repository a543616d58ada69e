//! The planner configuration: plain, serializable data with one section per stage.
//!
//! ```toml
//! samples = 1000          # the loop: samples, horizon, iterations, seed, threads, ...
//! horizon = 30
//! [proposal]              # what to sample from (crate::proposal)
//! kind = "gaussian_diag"
//! noise_sigma = 0.5
//! std_min = 0.05
//! [schedule]              # annealing between iterations (crate::schedule)
//! kind = "constant"
//! [weighting]             # the E-step (crate::weights)
//! temperature = { kind = "ess_target", target = 0.1 }
//! elites = 64
//! [update]                # the step rule (crate::update)
//! step_size = 1.0
//! [smoothing]             # smooth executed controls (crate::smoothing); off by default
//! max_step_change = 0.2   # |u_t - u_(t-1)| per control step
//! ```
//!
//! A config comes from a TOML file, `--set section.key=value` flags, Python or code; the
//! runtime [`crate::Planner`] and [`crate::Controller`] are built from it and validate it
//! once, each section checking its own keys and returning [`MppiError::InvalidConfig`] naming
//! the key (`proposal.std_min`). Unknown keys are rejected (`deny_unknown_fields`), so a typo
//! is an error, not a silently ignored setting; [`moved_key`] names the new place of a key of
//! the old flat config.

use serde::{Deserialize, Deserializer, Serialize};

use crate::diffusion::{Ve, Vp};
use crate::error::MppiError;
pub use crate::proposal::config::ProposalConfig;
use crate::schedule::{Constant, Dial, DialExp, Schedule};
pub use crate::split::Parallel;
use crate::weights::Temperature;

/// The `[schedule]` section: how the spread and the temperature change between iterations.
///
/// ```
/// use mppi::MppiConfig;
/// let cfg: MppiConfig = toml::from_str("[schedule]\nkind = \"dial\"\niteration_factor = 0.4").unwrap();
/// assert!(matches!(cfg.schedule, mppi::ScheduleConfig::Dial(d) if d.iteration_factor == 0.4));
/// let typo = toml::from_str::<MppiConfig>("[schedule]\nkind = \"dial\"\niteration_factr = 0.4");
/// assert!(typo.is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScheduleConfig {
    /// The proposal's own spread and the configured temperature at every iteration.
    #[default]
    Constant,
    /// DIAL-MPC's annealing: the spread shrinks by `iteration_factor` per iteration and by
    /// `horizon_factor` per time step closer to the present (see [`Dial`]).
    Dial(Dial),
    /// DIAL-MPC's paper form `exp(−k/(β₁N) − (H−t)/(β₂H))` (see [`DialExp`]).
    DialExp(DialExp),
    /// Variance-exploding levels, geometric from `sigma_max` to `sigma_min`; annealed MPPI or
    /// a reverse sampler (see [`Ve`]).
    Ve(Ve),
    /// Variance-preserving `β` (linear or cosine); with its defaults model-based diffusion
    /// (MBD); annealed MPPI or a reverse sampler (see [`Vp`]).
    Vp(Vp),
}

impl ScheduleConfig {
    /// Check the section's values.
    pub fn validate(&self) -> Result<(), MppiError> {
        match self {
            ScheduleConfig::Constant => Ok(()),
            ScheduleConfig::Dial(d) => d.validate(),
            ScheduleConfig::DialExp(d) => d.validate(),
            ScheduleConfig::Ve(v) => v.validate(),
            ScheduleConfig::Vp(v) => v.validate(),
        }
    }
    /// The runtime schedule.
    #[must_use]
    pub fn build(&self) -> Box<dyn Schedule> {
        match self {
            ScheduleConfig::Constant => Box::new(Constant),
            ScheduleConfig::Dial(d) => Box::new(*d),
            ScheduleConfig::DialExp(d) => Box::new(*d),
            ScheduleConfig::Ve(v) => Box::new(*v),
            ScheduleConfig::Vp(v) => Box::new(*v),
        }
    }
}

/// What the last slot of the plan holds after the warm-start shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ShiftFill {
    /// Repeat the last control of the previous plan.
    #[default]
    Last,
    /// Fill with zeros (clamped to the control bounds).
    Zero,
}

/// The kind of sampling distribution `p(U; θ)` (docs/theory.md §B.4): `[proposal] kind`. See
/// [`crate::proposal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProposalKind {
    /// Gaussian with a fixed per-step covariance: classic MPPI (B.4.1).
    #[default]
    Gaussian,
    /// Gaussian whose per-step, per-dimension variance is adapted (B.4.2; TD-MPC2's planner).
    GaussianDiag,
    /// Gaussian with an adapted, regularized full covariance (B.4.3).
    GaussianFull,
    /// Time-correlated Gaussian: AR(1) noise with correlation `correlation` (B.4.4).
    Colored,
    /// Gaussian over `knots` knots, interpolated to the horizon (DIAL-MPC style, B.4.4).
    Spline,
    /// Independent Beta distributions on the control box (B.4.5).
    Beta,
    /// Categorical over the control values `categories` (B.4.6).
    Categorical,
    /// Mixture of `components` diagonal Gaussians, fitted by inner EM (B.4.7).
    Mixture,
}

/// Block structure of the `gaussian_full` covariance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CovarianceBlock {
    /// One `m x m` block per time step (block diagonal; scales to long horizons).
    #[default]
    Step,
    /// One `T·m x T·m` covariance over the whole sequence.
    Sequence,
}

/// How the M-step result is turned into the next parameters (docs/theory.md §D.2, D.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Acceleration {
    /// `θ ← θ + α (θ_EM − θ)` in mean parameters; `α = 1` is plain EM.
    #[default]
    None,
    /// Over-relaxed EM: the same step with `α > 1` allowed (up to 4), safeguarded.
    OverRelaxed,
    /// Heavy ball: `θ ← θ + α (θ_EM − θ) + β (θ − θ_prev)`, `β = momentum`, safeguarded.
    HeavyBall,
}

/// How much the planner measures per iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticsLevel {
    /// `L̂`, ESS, temperature, costs: free by-products of the weighting.
    #[default]
    Basic,
    /// Also the KL step, the M-step's gain `ΔQ̂` and its gap to the KL (docs/theory.md §C.2)
    /// and the contraction estimate (one extra log-density pass over the samples per
    /// iteration).
    Full,
}

/// Floating-point type of the rollouts (dynamics and costs) of a [`crate::Controller`].
///
/// Sampling, weights and the M-step are `f64` either way; only the state, the controls fed to
/// the dynamics and the per-step running costs of a rollout are single precision under `f32`
/// (a trajectory's costs are still summed in `f64`). See [`crate::RolloutObjective::with_precision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Double precision throughout.
    #[default]
    F64,
    /// Float32 rollouts: twice the lanes per vector register, as the GPU and Python MPPI
    /// libraries run. Models without `f32` kernels compute each step in `f64` and store it in
    /// `f32`.
    F32,
}

/// The standard-normal generator of the planner's Gaussian draws (see [`crate::rng`]).
///
/// Both are deterministic: the same seed gives the same numbers on any number of threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Normals {
    /// A 256-layer ziggurat in `f64` with 52-bit uniforms, one 64-bit draw per normal.
    #[default]
    Exact,
    /// The same ziggurat in `f32` (23-bit uniforms, two normals per 64-bit draw, 8 lanes per
    /// AVX2 vector): about half the cost of `exact`. The normals are float32 values; the
    /// samples, weights and M-step stay `f64`. Meant for `precision = "f32"`.
    Fast,
}

/// The `[weighting]` section: how costs become weights (the E-step).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WeightingConfig {
    /// The temperature rule: `{ kind = "fixed", lambda = 1.0 }` (cost units),
    /// `{ kind = "std_normalized", scale = 0.1 }` (`λ = scale · std(J)`) or
    /// `{ kind = "ess_target", target = 0.1 }` (`λ` such that `ESS / N = target`).
    pub temperature: TemperatureConfig,
    /// Keep only the best `elites` samples (CEM / TD-MPC2 truncation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elites: Option<usize>,
    /// Williams control-cost weight `γ` (cost units): each sample's cost gets
    /// `γ Σ_t u_tᵀ Σ⁻¹ ε_t` added, `u_t` the plan and `ε_t` the perturbation (a log-weight
    /// correction). `γ = λ` is the classic control-cost term; `0` is plain EM-MPPI.
    pub control_cost_gamma: f64,
}

impl Default for WeightingConfig {
    fn default() -> Self {
        WeightingConfig {
            temperature: TemperatureConfig::Fixed { lambda: 1.0 },
            elites: None,
            control_cost_gamma: 0.0,
        }
    }
}

impl WeightingConfig {
    /// Softmax weights at the fixed temperature `lambda`, nothing else.
    #[must_use]
    pub fn fixed(lambda: f64) -> Self {
        WeightingConfig {
            temperature: TemperatureConfig::Fixed { lambda },
            ..WeightingConfig::default()
        }
    }

    /// Check the section (`samples` bounds `elites`).
    pub fn validate(&self, samples: usize) -> Result<Temperature, MppiError> {
        let temperature = self.temperature.validate()?;
        if let Some(e) = self.elites
            && (e == 0 || e > samples)
        {
            return Err(MppiError::config(
                "weighting.elites",
                format!("must be between 1 and samples = {samples}, got {e}"),
            ));
        }
        if !(self.control_cost_gamma.is_finite() && self.control_cost_gamma >= 0.0) {
            return Err(MppiError::config(
                "weighting.control_cost_gamma",
                format!(
                    "must be a finite number >= 0, got {}",
                    self.control_cost_gamma
                ),
            ));
        }
        Ok(temperature)
    }
}

/// The temperature rule of the weighting (`weighting.temperature`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TemperatureConfig {
    /// `λ` in cost units.
    Fixed {
        /// The temperature `λ > 0` (default 1).
        #[serde(default = "one")]
        lambda: f64,
    },
    /// `λ = scale · std(J)` over the finite costs of each iteration (DIAL-MPC, MBD).
    StdNormalized {
        /// `κ > 0` (default 0.1).
        #[serde(default = "one_tenth")]
        scale: f64,
    },
    /// `λ` by bisection so that `ESS / N = target`.
    EssTarget {
        /// Target `ESS / N` in `(0, 1]` (default 0.1).
        #[serde(default = "one_tenth")]
        target: f64,
    },
}

impl TemperatureConfig {
    /// The rule's name in the config.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            TemperatureConfig::Fixed { .. } => "fixed",
            TemperatureConfig::StdNormalized { .. } => "std_normalized",
            TemperatureConfig::EssTarget { .. } => "ess_target",
        }
    }

    /// Check the value and turn it into the runtime rule.
    pub fn validate(&self) -> Result<Temperature, MppiError> {
        match *self {
            TemperatureConfig::Fixed { lambda } => {
                positive("weighting.temperature.lambda", lambda)?;
                if lambda < f64::MIN_POSITIVE {
                    return Err(MppiError::config(
                        "weighting.temperature.lambda",
                        format!(
                            "{lambda:e} is too small: 1/λ overflows (use at least {:e})",
                            f64::MIN_POSITIVE
                        ),
                    ));
                }
                Ok(Temperature::Fixed(lambda))
            }
            TemperatureConfig::StdNormalized { scale } => {
                positive("weighting.temperature.scale", scale)?;
                Ok(Temperature::StdNormalized(scale))
            }
            TemperatureConfig::EssTarget { target } => {
                if !(target > 0.0 && target <= 1.0) {
                    return Err(MppiError::config(
                        "weighting.temperature.target",
                        format!("must be in (0, 1], got {target}"),
                    ));
                }
                Ok(Temperature::EssTarget(target))
            }
        }
    }
}

/// The `[update]` section: how the M-step result becomes the next parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpdateConfig {
    /// Step size `α` in mean parameters: `θ ← θ + α (θ_EM − θ)`. `α = 1` is MPPI / EM; below
    /// 2 without acceleration, up to 4 with it.
    pub step_size: f64,
    /// `none` (step size only), `over_relaxed` (`α > 1` allowed) or `heavy_ball` (momentum).
    pub acceleration: Acceleration,
    /// Heavy-ball momentum `β ∈ [0, 1)` (only with `acceleration = "heavy_ball"`).
    pub momentum: f64,
    /// Accept an accelerated step only if it beats the EM step on the surrogate `L̂(θ; θ_k)`
    /// over the current samples (docs/theory.md §D.3).
    pub safeguard: bool,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            step_size: 1.0,
            acceleration: Acceleration::None,
            momentum: 0.0,
            safeguard: true,
        }
    }
}

impl UpdateConfig {
    /// Check the section.
    pub fn validate(&self) -> Result<(), MppiError> {
        let max_step = if self.acceleration == Acceleration::None {
            2.0
        } else {
            4.0
        };
        if !(self.step_size > 0.0 && self.step_size < max_step) {
            return Err(MppiError::config(
                "update.step_size",
                format!(
                    "must be in (0, {max_step}) (1 = MPPI/EM; up to 4 with acceleration = \"over_relaxed\" or \"heavy_ball\"), got {}",
                    self.step_size
                ),
            ));
        }
        in_range("update.momentum", self.momentum, 0.0, 1.0, true, false)?;
        if self.momentum != 0.0 && self.acceleration != Acceleration::HeavyBall {
            return Err(MppiError::config(
                "update.momentum",
                "only applies with acceleration = \"heavy_ball\" (set it, or remove momentum)",
            ));
        }
        Ok(())
    }
}

/// The `[smoothing]` section: smooth executed controls (Nav2's and pytorch-mppi's smoothing).
/// Off by default; then results are bit-identical to a config without the section.
///
/// After each control step's optimization, [`crate::Controller::act`] replaces the plan by
/// (1) its Savitzky–Golay smoothing (`savgol_window`, `savgol_order`: a least-squares
/// polynomial of degree `q` over a sliding window of `w` steps, the asymmetric-window fit at
/// both ends of the plan), then (2) its projection, forward in time from the previously
/// executed controls `u_{−1}, u_{−2}`, onto `|u_t − u_{t−1}| ≤ max_step_change` and
/// `|u_t − 2u_{t−1} + u_{t−2}| ≤ max_step_accel`, together with (3) the control bounds (with
/// an acceleration limit, no faster towards a bound than it can stop before it, so all three
/// hold at every step). The returned control is the first entry of that plan, and the plan
/// is written back into the proposal's mean, so it also warm-starts the next step. The
/// limits are **per control step**
/// (the core does not know the control period): a rate limit of `R` units/s is
/// `max_step_change = R·dt`, an acceleration limit of `A` units/s² is `max_step_accel = A·dt²`
/// (`Task::dt()` of `mppi-tasks` gives `dt`). See [`crate::smoothing`] for the math.
///
/// ```
/// use mppi::MppiConfig;
/// let cfg: MppiConfig = toml::from_str("[smoothing]\nmax_step_change = 0.1\nsavgol_window = 5").unwrap();
/// assert_eq!(cfg.smoothing.max_step_change, Some(vec![0.1]));
/// assert_eq!(cfg.smoothing.savgol_order, 2);
/// let err = MppiConfig { smoothing: mppi::SmoothingConfig { savgol_window: 4, ..Default::default() }, ..MppiConfig::default() };
/// assert!(err.validate(1).unwrap_err().to_string().contains("smoothing.savgol_window"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmoothingConfig {
    /// Largest change of a control per control step, `|u_t − u_{t−1}|`, in control units per
    /// step (one value for every component, or one per component; each finite and `> 0`).
    /// Absent: no rate limit.
    #[serde(
        deserialize_with = "opt_scalar_or_vec",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_step_change: Option<Vec<f64>>,
    /// Largest second difference of a control, `|u_t − 2u_{t−1} + u_{t−2}|`, in control units
    /// per step² (same forms). Absent: no acceleration limit.
    #[serde(
        deserialize_with = "opt_scalar_or_vec",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_step_accel: Option<Vec<f64>>,
    /// Savitzky–Golay window in control steps: odd, from 3 to `horizon`; 0 = off.
    pub savgol_window: usize,
    /// Savitzky–Golay polynomial order, below `savgol_window` (default 2).
    pub savgol_order: usize,
}

impl Default for SmoothingConfig {
    fn default() -> Self {
        SmoothingConfig {
            max_step_change: None,
            max_step_accel: None,
            savgol_window: 0,
            savgol_order: 2,
        }
    }
}

impl SmoothingConfig {
    /// Whether every part of the section is off (the default).
    #[must_use]
    pub fn is_off(&self) -> bool {
        self.savgol_window == 0 && self.max_step_change.is_none() && self.max_step_accel.is_none()
    }

    /// Check the section for `m` controls and a plan of `horizon` steps.
    pub fn validate(&self, m: usize, horizon: usize) -> Result<(), MppiError> {
        for (key, limit) in [
            ("smoothing.max_step_change", &self.max_step_change),
            ("smoothing.max_step_accel", &self.max_step_accel),
        ] {
            let Some(given) = limit else { continue };
            let v = per_dim(key, given, m)?;
            if let Some((i, x)) = v
                .iter()
                .enumerate()
                .find(|(_, x)| !(x.is_finite() && **x > 0.0))
            {
                let which = if given.len() == 1 {
                    String::new()
                } else {
                    format!("entry {i} ")
                };
                return Err(MppiError::config(
                    key,
                    format!(
                        "{which}must be a finite number > 0 (control units per control step), got {x}"
                    ),
                ));
            }
        }
        let (w, q) = (self.savgol_window, self.savgol_order);
        if w != 0 {
            if w < 3 || w.is_multiple_of(2) {
                return Err(MppiError::config(
                    "smoothing.savgol_window",
                    format!("must be odd and at least 3 (got {w}), or 0 for off"),
                ));
            }
            if w > horizon {
                return Err(MppiError::config(
                    "smoothing.savgol_window",
                    format!("must be at most horizon = {horizon} (got {w})"),
                ));
            }
            if q >= w {
                return Err(MppiError::config(
                    "smoothing.savgol_order",
                    format!("must be below savgol_window = {w} (got {q})"),
                ));
            }
        }
        Ok(())
    }
}

/// Every setting of the MPPI / EM loop and the receding-horizon controller: the loop's own
/// keys at the top, then one section per stage.
///
/// ```
/// use mppi::MppiConfig;
/// let cfg: MppiConfig = toml::from_str("samples = 256\nhorizon = 20\n[weighting]\ntemperature = { kind = \"fixed\", lambda = 0.5 }").unwrap();
/// assert_eq!(cfg.samples, 256);
/// assert!(toml::from_str::<MppiConfig>("sampels = 256").is_err()); // typo is an error
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MppiConfig {
    /// Number of sampled control sequences per iteration (`N` in the theory, `K` in most codes).
    pub samples: usize,
    /// Planning horizon: number of controls in the plan (`T`).
    pub horizon: usize,
    /// EM iterations per control step (the schedule may change it at the first step).
    pub iterations: usize,
    /// Lower control bounds per dimension (one value is broadcast; samples are clamped).
    #[serde(
        deserialize_with = "opt_scalar_or_vec",
        skip_serializing_if = "Option::is_none"
    )]
    pub u_min: Option<Vec<f64>>,
    /// Upper control bounds per dimension.
    #[serde(
        deserialize_with = "opt_scalar_or_vec",
        skip_serializing_if = "Option::is_none"
    )]
    pub u_max: Option<Vec<f64>>,
    /// Discount factor on running costs, in `(0, 1]`.
    pub discount: f64,
    /// Warm-start fill for the last slot of the shifted plan: `last` or `zero`.
    pub shift_fill: ShiftFill,
    /// Base random seed; results are a pure function of it. In TOML, a seed beyond
    /// `i64::MAX` is written as a string of digits.
    #[serde(
        deserialize_with = "seed_from_int_or_string",
        serialize_with = "seed_as_int_or_string"
    )]
    pub seed: u64,
    /// Worker threads for rollouts (1 = run on the calling thread), at most the machine's
    /// cores. Results do not depend on it.
    pub threads: usize,
    /// With `threads > 1`: `auto` measures the pool against the calling thread on the problem
    /// and uses the faster (so more threads are never slower), `always` hands every iteration
    /// to the pool. See [`crate::split`].
    pub parallel: Parallel,
    /// Rollout precision of a [`crate::Controller`]: `f64` or `f32` (see [`Precision`]).
    pub precision: Precision,
    /// Standard-normal generator: `exact` or `fast` (see [`Normals`]).
    pub normals: Normals,
    /// Per-iteration diagnostics: `basic` or `full`.
    pub diagnostics: DiagnosticsLevel,
    /// Wall-clock budget of one control step in milliseconds: [`crate::Controller::act`] stops
    /// iterating when another iteration would overrun it (at least one always runs) and
    /// reports [`crate::Status::OutOfTime`]. Absent: no deadline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<f64>,
    /// Largest workspace the planner may allocate, in MiB; a config that needs more is an
    /// error that says how much it would need.
    pub memory_limit_mb: f64,
    /// What to sample from: the kind of distribution and its keys.
    pub proposal: ProposalConfig,
    /// How the spread and temperature change between iterations (annealing); constant by
    /// default.
    pub schedule: ScheduleConfig,
    /// How costs become weights.
    pub weighting: WeightingConfig,
    /// How the M-step result becomes the next parameters.
    pub update: UpdateConfig,
    /// Smoothing of the executed plan: Savitzky–Golay, rate and acceleration limits (off by
    /// default).
    pub smoothing: SmoothingConfig,
}

impl Default for MppiConfig {
    fn default() -> Self {
        MppiConfig {
            samples: 1000,
            horizon: 30,
            iterations: 1,
            u_min: None,
            u_max: None,
            discount: 1.0,
            shift_fill: ShiftFill::Last,
            seed: 0,
            threads: 1,
            parallel: Parallel::Auto,
            precision: Precision::F64,
            normals: Normals::Exact,
            diagnostics: DiagnosticsLevel::Basic,
            deadline_ms: None,
            memory_limit_mb: 4096.0,
            proposal: ProposalConfig::default(),
            schedule: ScheduleConfig::Constant,
            weighting: WeightingConfig::default(),
            update: UpdateConfig::default(),
            smoothing: SmoothingConfig::default(),
        }
    }
}

/// Where a key of the old flat config (before the stages got sections) lives now, as a
/// dotted path, or `None` if `key` was never one of them.
///
/// ```
/// assert_eq!(mppi::config::moved_key("std_min"), Some("proposal.std_min"));
/// assert_eq!(mppi::config::moved_key("lambda"), Some("weighting.temperature = { kind = \"fixed\", lambda = ... }"));
/// assert_eq!(mppi::config::moved_key("samples"), None);
/// ```
#[must_use]
pub fn moved_key(key: &str) -> Option<&'static str> {
    Some(match key {
        "family" => "proposal.kind",
        "noise_sigma" => "proposal.noise_sigma",
        "noise_covariance" => "proposal.noise_covariance",
        "std_min" => "proposal.std_min",
        "std_max" => "proposal.std_max",
        "std_reset" => "proposal.std_reset",
        "prior_weight" => "proposal.prior_weight",
        "covariance_block" => "proposal.covariance_block",
        "shrinkage" => "proposal.shrinkage",
        "noise_correlation" => "proposal.correlation",
        "spline_knots" => "proposal.knots",
        "beta_concentration_max" => "proposal.concentration_max",
        "categories" => "proposal.categories",
        "category_floor" => "proposal.floor",
        "mixture_components" => "proposal.components",
        "mixture_inner_iterations" => "proposal.inner_iterations",
        "lambda" => "weighting.temperature = { kind = \"fixed\", lambda = ... }",
        "temperature_mode" => "weighting.temperature.kind",
        "std_temperature" => "weighting.temperature = { kind = \"std_normalized\", scale = ... }",
        "ess_target" => "weighting.temperature = { kind = \"ess_target\", target = ... }",
        "elites" => "weighting.elites",
        "control_cost_gamma" => "weighting.control_cost_gamma",
        "step_size" => "update.step_size",
        "acceleration" => "update.acceleration",
        "momentum" => "update.momentum",
        "safeguard" => "update.safeguard",
        _ => return None,
    })
}

/// A list of numbers, or one number (broadcast where a list per dimension is expected).
pub(crate) fn opt_scalar_or_vec<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<f64>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a number or a list of numbers")]
    enum ScalarOrVec {
        Scalar(f64),
        Vec(Vec<f64>),
    }
    Ok(Some(match ScalarOrVec::deserialize(deserializer)? {
        ScalarOrVec::Scalar(v) => vec![v],
        ScalarOrVec::Vec(v) => v,
    }))
}

/// The cores available to this process (1 if unknown).
#[must_use]
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The most rollout threads a config may ask for: one per available core (at least 2, so
/// that results can be checked for thread-count independence anywhere). More threads than
/// cores cannot run the rollouts faster, and a huge count only stalls building the pool.
#[must_use]
pub fn max_threads() -> usize {
    available_cores().max(2)
}

fn one() -> f64 {
    1.0
}

fn one_tenth() -> f64 {
    0.1
}

/// A seed from a TOML integer or, for seeds beyond `i64::MAX` (TOML integers are signed), a
/// string of decimal digits.
fn seed_from_int_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(
        untagged,
        expecting = "a whole number between 0 and 18446744073709551615"
    )]
    enum IntOrString {
        Int(u64),
        String(String),
    }
    match IntOrString::deserialize(deserializer)? {
        IntOrString::Int(v) => Ok(v),
        IntOrString::String(s) => s.trim().parse::<u64>().map_err(|_| {
            serde::de::Error::custom(format!(
                "`{s}` is not a whole number between 0 and 18446744073709551615"
            ))
        }),
    }
}

/// Seeds beyond `i64::MAX` are written as strings (TOML integers are signed).
fn seed_as_int_or_string<S: serde::Serializer>(seed: &u64, s: S) -> Result<S::Ok, S::Error> {
    if i64::try_from(*seed).is_ok() {
        s.serialize_u64(*seed)
    } else {
        s.serialize_str(&seed.to_string())
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

pub(crate) fn per_dim(field: &'static str, v: &[f64], m: usize) -> Result<Vec<f64>, MppiError> {
    if let Some(i) = v.iter().position(|x| x.is_nan()) {
        return Err(MppiError::config(field, format!("entry {i} is NaN")));
    }
    match v.len() {
        1 => Ok(vec![v[0]; m]),
        n if n == m => Ok(v.to_vec()),
        n if m == 1 => Err(MppiError::config(
            field,
            format!("has {n} entries but the task has 1 control dimension (give 1 value)"),
        )),
        n => Err(MppiError::config(
            field,
            format!(
                "has {n} entries but the task has {m} control dimensions (give 1 or {m} values)"
            ),
        )),
    }
}

fn in_range(
    field: &'static str,
    v: f64,
    lo: f64,
    hi: f64,
    lo_closed: bool,
    hi_closed: bool,
) -> Result<(), MppiError> {
    let above = if lo_closed { v >= lo } else { v > lo };
    let below = if hi_closed { v <= hi } else { v < hi };
    if v.is_finite() && above && below {
        Ok(())
    } else {
        let (l, r) = (
            if lo_closed { "[" } else { "(" },
            if hi_closed { "]" } else { ")" },
        );
        Err(MppiError::config(
            field,
            format!("must be in {l}{lo}, {hi}{r}, got {v}"),
        ))
    }
}

/// A config checked against a control dimension, with per-dimension vectors expanded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Validated {
    pub samples: usize,
    pub horizon: usize,
    pub control_dim: usize,
    pub iterations: usize,
    /// Row-major `m x m` covariance of one time step (identity for kinds without a spread).
    pub covariance: Vec<f64>,
    pub temperature: Temperature,
    pub step_size: f64,
    pub control_cost_gamma: f64,
    pub u_min: Vec<f64>,
    pub u_max: Vec<f64>,
    pub shift_fill: ShiftFill,
    pub seed: u64,
    pub normals: Normals,
    pub threads: usize,
    pub parallel: Parallel,
    pub elites: Option<usize>,
    pub acceleration: Acceleration,
    pub momentum: f64,
    pub safeguard: bool,
    pub diagnostics: DiagnosticsLevel,
    pub std_reset: bool,
    pub schedule: ScheduleConfig,
    pub proposal: ProposalConfig,
}

impl MppiConfig {
    /// Check every value against its valid range for a problem with `control_dim` controls.
    ///
    /// ```
    /// use mppi::{MppiConfig, WeightingConfig};
    /// let bad = MppiConfig { weighting: WeightingConfig::fixed(-1.0), ..MppiConfig::default() };
    /// let err = bad.validate(1).unwrap_err();
    /// assert!(err.to_string().contains("weighting.temperature.lambda"));
    /// ```
    pub fn validate(&self, control_dim: usize) -> Result<(), MppiError> {
        self.validated(control_dim).map(|_| ())
    }

    /// Bytes the planner and the controller would allocate for this config (an estimate
    /// within a small factor: the sample buffers, per-sample and per-iteration records and
    /// the proposal's parameters), or `None` if it does not fit in `u128`.
    #[must_use]
    pub fn workspace_bytes(&self, control_dim: usize) -> Option<u128> {
        let (k, t, m) = (
            self.samples as u128,
            self.horizon as u128,
            control_dim as u128,
        );
        let d = t.checked_mul(m)?;
        let f = 8u128;
        let p = &self.proposal;
        // samples (rows and blocks), three proposal instances, per-sample vectors
        let samples = k.checked_mul(d)?.checked_mul(2 * f)?;
        let params = match (p.kind, p.covariance_block()) {
            (ProposalKind::GaussianFull, CovarianceBlock::Sequence) => {
                d.checked_mul(d)?.checked_mul(6 * f)?
            }
            (ProposalKind::GaussianFull, CovarianceBlock::Step) => {
                d.checked_mul(m)?.checked_mul(6 * f)?
            }
            (ProposalKind::Mixture, _) => {
                let c = p.components() as u128;
                d.checked_mul(c)?
                    .checked_mul(6 * f)?
                    .checked_add(k.checked_mul(c)?.checked_mul(f)?)?
            }
            (ProposalKind::Categorical, _) => d
                .checked_mul(p.categories().len() as u128)?
                .checked_mul(6 * f)?,
            _ => d.checked_mul(12 * f)?,
        };
        let per_sample = k.checked_mul(8 * f)?;
        let records = (self.iterations as u128)
            .checked_mul(std::mem::size_of::<crate::IterStats>() as u128)?;
        samples
            .checked_add(params)?
            .checked_add(per_sample)?
            .checked_add(records)
    }

    fn check_memory(&self, m: usize) -> Result<(), MppiError> {
        let limit = self.memory_limit_mb * 1024.0 * 1024.0;
        let need = self.workspace_bytes(m);
        if need.is_none_or(|b| b as f64 > limit) {
            let need = need.map_or("more than 10^38 bytes".to_string(), |b| {
                human_bytes(b as f64)
            });
            // name the key whose growth made it too big
            let per_iteration = std::mem::size_of::<crate::IterStats>() as f64;
            let samples_bytes = 16.0 * self.samples as f64 * self.horizon as f64 * m as f64;
            let key = if self.iterations as f64 * per_iteration > samples_bytes {
                "iterations"
            } else if self.horizon > self.samples {
                "horizon"
            } else {
                "samples"
            };
            return Err(MppiError::config(
                key,
                format!(
                    "samples = {}, horizon = {}, iterations = {} need {need} of memory, over \
                     memory_limit_mb = {} ({}): reduce them, or raise memory_limit_mb if the \
                     machine has the memory",
                    self.samples,
                    self.horizon,
                    self.iterations,
                    self.memory_limit_mb,
                    human_bytes(limit)
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn validated(&self, m: usize) -> Result<Validated, MppiError> {
        if m == 0 {
            return Err(MppiError::config(
                "control_dim",
                "the problem has no controls",
            ));
        }
        if self.samples < 2 {
            return Err(MppiError::config(
                "samples",
                format!("must be >= 2, got {}", self.samples),
            ));
        }
        if self.horizon == 0 {
            return Err(MppiError::config("horizon", "must be >= 1"));
        }
        if self.iterations == 0 {
            return Err(MppiError::config("iterations", "must be >= 1"));
        }
        if self.threads == 0 {
            return Err(MppiError::config("threads", "must be >= 1"));
        }
        if self.threads > max_threads() {
            return Err(MppiError::config(
                "threads",
                format!(
                    "is {} but this machine has {} available cores: use at most {}",
                    self.threads,
                    available_cores(),
                    max_threads()
                ),
            ));
        }
        if let Some(d) = self.deadline_ms
            && !(d.is_finite() && d > 0.0)
        {
            return Err(MppiError::config(
                "deadline_ms",
                format!("must be a finite number of milliseconds > 0 (or absent), got {d}"),
            ));
        }
        positive("memory_limit_mb", self.memory_limit_mb)?;
        if !(self.discount > 0.0 && self.discount <= 1.0) {
            return Err(MppiError::config(
                "discount",
                format!("must be in (0, 1], got {}", self.discount),
            ));
        }
        let u_min = match &self.u_min {
            Some(v) => per_dim("u_min", v, m)?,
            None => vec![f64::NEG_INFINITY; m],
        };
        let u_max = match &self.u_max {
            Some(v) => per_dim("u_max", v, m)?,
            None => vec![f64::INFINITY; m],
        };
        for i in 0..m {
            // NaN bounds were rejected by `per_dim`, so `>=` is the complement of `<`
            if u_min[i] >= u_max[i] {
                return Err(MppiError::config(
                    "u_min",
                    format!(
                        "u_min[{i}] = {} must be below u_max[{i}] = {}",
                        u_min[i], u_max[i]
                    ),
                ));
            }
        }

        // the stages, each checking its own section
        let proposal = &self.proposal;
        proposal.validate(m)?;
        if proposal.kind == ProposalKind::Mixture && proposal.components() > self.samples {
            return Err(MppiError::config(
                "proposal.components",
                format!(
                    "must be between 1 and samples = {}, got {}",
                    self.samples,
                    proposal.components()
                ),
            ));
        }
        if let Some((i, v)) = proposal
            .categories()
            .iter()
            .enumerate()
            .find(|(_, v)| (0..m).any(|j| **v < u_min[j] || **v > u_max[j]))
        {
            return Err(MppiError::config(
                "proposal.categories",
                format!(
                    "entry {i} = {v} is outside the control bounds u_min = {u_min:?}, u_max = \
                     {u_max:?}: every category must be a control the system accepts"
                ),
            ));
        }
        let covariance = if proposal.kind.keys().contains(&"noise_sigma") {
            proposal.covariance(m)?
        } else {
            let mut identity = vec![0.0; m * m];
            (0..m).for_each(|i| identity[i * m + i] = 1.0);
            identity
        };
        self.schedule.validate()?;
        let temperature = self.weighting.validate(self.samples)?;
        self.update.validate()?;
        self.smoothing.validate(m, self.horizon)?;
        self.check_memory(m)?;
        Ok(Validated {
            samples: self.samples,
            horizon: self.horizon,
            control_dim: m,
            iterations: self.iterations,
            covariance,
            temperature,
            step_size: self.update.step_size,
            control_cost_gamma: self.weighting.control_cost_gamma,
            u_min,
            u_max,
            shift_fill: self.shift_fill,
            seed: self.seed,
            normals: self.normals,
            threads: self.threads,
            parallel: self.parallel,
            elites: self.weighting.elites,
            acceleration: self.update.acceleration,
            momentum: self.update.momentum,
            safeguard: self.update.safeguard,
            diagnostics: self.diagnostics,
            std_reset: proposal.std_reset(),
            schedule: self.schedule,
            proposal: proposal.clone(),
        })
    }
}

/// `bytes` as a short human-readable size (`3.2 GiB`).
fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit + 1 == UNITS.len() && v >= 1024.0 {
        return format!("{bytes:.1e} B");
    }
    format!("{v:.1} {}", UNITS[unit])
}
