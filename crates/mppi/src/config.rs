//! The planner configuration: a plain, serializable, validated struct.
//!
//! A config is data (it comes from a TOML file, `--set key=value` flags, Python, or code);
//! the runtime [`crate::Planner`] and [`crate::Controller`] are built from it and validate it
//! once, returning [`MppiError::InvalidConfig`] naming the offending key.
//!
//! Unknown keys are rejected (`deny_unknown_fields`), so a typo in a config file is an error,
//! not a silently ignored setting.

use serde::{Deserialize, Serialize};

use crate::error::MppiError;
use crate::weights::{Temperature, TemperatureMode};

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

/// The sampling distribution `p(U; θ)` (theory-spec B.4). See [`crate::family`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FamilyKind {
    /// Gaussian with a fixed per-step covariance: classic MPPI (B.4.1).
    #[default]
    Gaussian,
    /// Gaussian whose per-step, per-dimension variance is adapted (B.4.2; TD-MPC2's planner).
    GaussianDiag,
    /// Gaussian with an adapted, regularized full covariance (B.4.3).
    GaussianFull,
    /// Time-correlated Gaussian: AR(1) noise with correlation `noise_correlation` (B.4.4).
    Colored,
    /// Gaussian over `spline_knots` knots, interpolated to the horizon (DIAL-MPC style, B.4.4).
    Spline,
    /// Independent Beta distributions on the control box (B.4.5).
    Beta,
    /// Categorical over the control values `categories` (B.4.6).
    Categorical,
    /// Mixture of `mixture_components` diagonal Gaussians, fitted by inner EM (B.4.7).
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

/// How the M-step result is turned into the next parameters (theory-spec D.2, D.3).
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
    /// Also the KL step, the sufficient-increase margin and the contraction estimate (one
    /// extra log-density pass over the samples per iteration).
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

/// Every setting of the MPPI / EM loop and the receding-horizon controller.
///
/// ```
/// use mppi::MppiConfig;
/// let cfg: MppiConfig = toml::from_str("samples = 256\nhorizon = 20\nlambda = 0.5").unwrap();
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
    /// EM iterations per control step.
    pub iterations: usize,
    /// Exploration standard deviation per control dimension (one value is broadcast).
    pub noise_sigma: Vec<f64>,
    /// Optional full `m x m` exploration covariance of one time step; overrides `noise_sigma`.
    pub noise_covariance: Option<Vec<Vec<f64>>>,
    /// Temperature `λ` in cost units (used by `temperature_mode = "fixed"`).
    pub lambda: f64,
    /// How `λ` is chosen each iteration: `fixed`, `std_normalized` or `ess_target`.
    pub temperature_mode: TemperatureMode,
    /// `κ` of the std-normalized mode: `λ = κ · std(J)`.
    pub std_temperature: f64,
    /// Target `ESS / N` of the ESS-target mode, in `(0, 1]`.
    pub ess_target: f64,
    /// Step size `α` in mean parameters: `μ ← (1-α) μ + α μ⁺`. `α = 1` is MPPI / EM.
    pub step_size: f64,
    /// Williams control-cost weight `γ` (cost units): each sample's cost gets
    /// `γ Σ_t u_tᵀ Σ⁻¹ ε_t` added, `u_t` the plan and `ε_t` the perturbation. `γ = λ` is the
    /// classic control-cost term; `0` is plain EM-MPPI.
    pub control_cost_gamma: f64,
    /// Lower control bounds per dimension (samples are clamped; the perturbation is recomputed).
    pub u_min: Option<Vec<f64>>,
    /// Upper control bounds per dimension.
    pub u_max: Option<Vec<f64>>,
    /// Discount factor on running costs, in `(0, 1]`.
    pub discount: f64,
    /// Warm-start fill for the last slot of the shifted plan.
    pub shift_fill: ShiftFill,
    /// Base random seed; results are a pure function of it.
    pub seed: u64,
    /// Worker threads for rollouts (1 = run on the calling thread). Problems below
    /// [`crate::planner::PARALLEL_MIN_SAMPLE_STEPS`] sample-steps run on the calling thread
    /// anyway. Results do not depend on it.
    pub threads: usize,
    /// The sampling family: `gaussian`, `gaussian_diag`, `gaussian_full`, `colored`, `spline`,
    /// `beta`, `categorical` or `mixture`.
    pub family: FamilyKind,
    /// Floor on adapted standard deviations (`gaussian_diag`, `gaussian_full`, `mixture`).
    pub std_min: f64,
    /// Ceiling on adapted standard deviations.
    pub std_max: f64,
    /// Reset the adapted spread to its initial value at every control step (TD-MPC2 does).
    pub std_reset: bool,
    /// Block structure of the `gaussian_full` covariance: `step` or `sequence`.
    pub covariance_block: CovarianceBlock,
    /// Shrinkage `β ∈ [0, 1]` of an adapted covariance toward its diagonal.
    pub shrinkage: f64,
    /// Conjugate-prior pseudo-count `ν ≥ 0` pulling adapted second moments toward the initial
    /// covariance: `T̄ ← (ν T₀ + T̄) / (1 + ν)`.
    pub prior_weight: f64,
    /// AR(1) correlation `ρ ∈ [0, 1)` between consecutive steps of `colored` noise.
    pub noise_correlation: f64,
    /// Number of spline knots (`spline` family), at least 2 and at most the horizon.
    pub spline_knots: usize,
    /// Cap on the Beta concentration `α + β` (the Beta analogue of a variance floor).
    pub beta_concentration_max: f64,
    /// Control values of the `categorical` family (every control dimension uses this list).
    pub categories: Vec<f64>,
    /// Floor `ε` of categorical probabilities: `π ← (1 − ε) π + ε / K`.
    pub category_floor: f64,
    /// Number of components of the `mixture` family.
    pub mixture_components: usize,
    /// Inner EM iterations of the `mixture` M-step.
    pub mixture_inner_iterations: usize,
    /// Keep only the best `elites` samples in the weighting (CEM / TD-MPC2 truncation).
    pub elites: Option<usize>,
    /// Step rule: `none` (step size only), `over_relaxed` or `heavy_ball`.
    pub acceleration: Acceleration,
    /// Heavy-ball momentum `β ∈ [0, 1)`.
    pub momentum: f64,
    /// Accept an accelerated step only if it beats the EM step on the surrogate `L̂(θ; θ_k)`
    /// over the current samples (theory-spec D.3).
    pub safeguard: bool,
    /// Per-iteration diagnostics: `basic` or `full`.
    pub diagnostics: DiagnosticsLevel,
    /// Rollout precision of a [`crate::Controller`]: `f64` or `f32` (see [`Precision`]).
    pub precision: Precision,
}

impl Default for MppiConfig {
    fn default() -> Self {
        MppiConfig {
            samples: 1000,
            horizon: 30,
            iterations: 1,
            noise_sigma: vec![1.0],
            noise_covariance: None,
            lambda: 1.0,
            temperature_mode: TemperatureMode::Fixed,
            std_temperature: 0.1,
            ess_target: 0.1,
            step_size: 1.0,
            control_cost_gamma: 0.0,
            u_min: None,
            u_max: None,
            discount: 1.0,
            shift_fill: ShiftFill::Last,
            seed: 0,
            threads: 1,
            family: FamilyKind::Gaussian,
            std_min: 1e-3,
            std_max: 1e3,
            std_reset: false,
            covariance_block: CovarianceBlock::Step,
            shrinkage: 0.0,
            prior_weight: 0.25,
            noise_correlation: 0.0,
            spline_knots: 4,
            beta_concentration_max: 30.0,
            categories: Vec::new(),
            category_floor: 1e-3,
            mixture_components: 2,
            mixture_inner_iterations: 1,
            elites: None,
            acceleration: Acceleration::None,
            momentum: 0.0,
            safeguard: true,
            diagnostics: DiagnosticsLevel::Basic,
            precision: Precision::F64,
        }
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

fn per_dim(field: &'static str, v: &[f64], m: usize) -> Result<Vec<f64>, MppiError> {
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

/// A config checked against a control dimension, with per-dimension vectors expanded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Validated {
    pub samples: usize,
    pub horizon: usize,
    pub control_dim: usize,
    pub iterations: usize,
    /// Row-major `m x m` covariance of one time step.
    pub covariance: Vec<f64>,
    pub temperature: Temperature,
    pub step_size: f64,
    pub control_cost_gamma: f64,
    pub u_min: Vec<f64>,
    pub u_max: Vec<f64>,
    pub discount: f64,
    pub shift_fill: ShiftFill,
    pub seed: u64,
    pub threads: usize,
    pub elites: Option<usize>,
    pub acceleration: Acceleration,
    pub momentum: f64,
    pub safeguard: bool,
    pub diagnostics: DiagnosticsLevel,
    /// The whole config, for the family-specific keys (read by `family::build`).
    pub raw: MppiConfig,
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

impl MppiConfig {
    /// Check every value against its valid range for a problem with `control_dim` controls.
    ///
    /// ```
    /// use mppi::MppiConfig;
    /// let bad = MppiConfig { lambda: -1.0, ..MppiConfig::default() };
    /// let err = bad.validate(1).unwrap_err();
    /// assert!(err.to_string().contains("lambda"));
    /// ```
    pub fn validate(&self, control_dim: usize) -> Result<(), MppiError> {
        self.validated(control_dim).map(|_| ())
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
        let temperature = match self.temperature_mode {
            TemperatureMode::Fixed => {
                positive("lambda", self.lambda)?;
                Temperature::Fixed(self.lambda)
            }
            TemperatureMode::StdNormalized => {
                positive("std_temperature", self.std_temperature)?;
                Temperature::StdNormalized(self.std_temperature)
            }
            TemperatureMode::EssTarget => {
                if !(self.ess_target > 0.0 && self.ess_target <= 1.0) {
                    return Err(MppiError::config(
                        "ess_target",
                        format!("must be in (0, 1], got {}", self.ess_target),
                    ));
                }
                Temperature::EssTarget(self.ess_target)
            }
        };
        let max_step = if self.acceleration == Acceleration::None {
            2.0
        } else {
            4.0
        };
        if !(self.step_size > 0.0 && self.step_size < max_step) {
            return Err(MppiError::config(
                "step_size",
                format!(
                    "must be in (0, {max_step}) (1 = MPPI/EM; up to 4 with acceleration = \"over_relaxed\" or \"heavy_ball\"), got {}",
                    self.step_size
                ),
            ));
        }
        in_range("momentum", self.momentum, 0.0, 1.0, true, false)?;
        if let Some(e) = self.elites
            && (e == 0 || e > self.samples)
        {
            return Err(MppiError::config(
                "elites",
                format!("must be between 1 and samples = {}, got {e}", self.samples),
            ));
        }
        positive("std_min", self.std_min)?;
        positive("std_max", self.std_max)?;
        if self.std_max < self.std_min {
            return Err(MppiError::config(
                "std_max",
                format!(
                    "must be >= std_min = {}, got {}",
                    self.std_min, self.std_max
                ),
            ));
        }
        in_range("shrinkage", self.shrinkage, 0.0, 1.0, true, true)?;
        if !(self.prior_weight.is_finite() && self.prior_weight >= 0.0) {
            return Err(MppiError::config(
                "prior_weight",
                format!("must be a finite number >= 0, got {}", self.prior_weight),
            ));
        }
        in_range(
            "noise_correlation",
            self.noise_correlation,
            0.0,
            1.0,
            true,
            false,
        )?;
        if self.family == FamilyKind::Spline && !(2..=self.horizon).contains(&self.spline_knots) {
            return Err(MppiError::config(
                "spline_knots",
                format!(
                    "must be between 2 and horizon = {}, got {}",
                    self.horizon, self.spline_knots
                ),
            ));
        }
        if !(self.beta_concentration_max.is_finite() && self.beta_concentration_max > 2.0) {
            return Err(MppiError::config(
                "beta_concentration_max",
                format!(
                    "must be a finite number > 2, got {}",
                    self.beta_concentration_max
                ),
            ));
        }
        if self.family == FamilyKind::Categorical {
            if self.categories.len() < 2 {
                return Err(MppiError::config(
                    "categories",
                    "the categorical family needs at least 2 control values, e.g. categories = [-1.0, 0.0, 1.0]",
                ));
            }
            if let Some(i) = self.categories.iter().position(|v| !v.is_finite()) {
                return Err(MppiError::config(
                    "categories",
                    format!("entry {i} is not finite"),
                ));
            }
        }
        in_range("category_floor", self.category_floor, 0.0, 1.0, true, false)?;
        if self.mixture_components == 0 {
            return Err(MppiError::config("mixture_components", "must be >= 1"));
        }
        if self.mixture_inner_iterations == 0 {
            return Err(MppiError::config(
                "mixture_inner_iterations",
                "must be >= 1",
            ));
        }
        if !(self.control_cost_gamma.is_finite() && self.control_cost_gamma >= 0.0) {
            return Err(MppiError::config(
                "control_cost_gamma",
                format!(
                    "must be a finite number >= 0, got {}",
                    self.control_cost_gamma
                ),
            ));
        }
        if !(self.discount > 0.0 && self.discount <= 1.0) {
            return Err(MppiError::config(
                "discount",
                format!("must be in (0, 1], got {}", self.discount),
            ));
        }
        let covariance = match &self.noise_covariance {
            Some(rows) => {
                if rows.len() != m || rows.iter().any(|r| r.len() != m) {
                    return Err(MppiError::config(
                        "noise_covariance",
                        format!("must be a {m} x {m} matrix (one row per control dimension)"),
                    ));
                }
                let flat: Vec<f64> = rows.iter().flatten().copied().collect();
                if flat.iter().any(|v| !v.is_finite()) {
                    return Err(MppiError::config(
                        "noise_covariance",
                        "has a non-finite entry",
                    ));
                }
                for i in 0..m {
                    for j in 0..i {
                        let (a, b) = (flat[i * m + j], flat[j * m + i]);
                        if (a - b).abs() > 1e-12 * (1.0 + a.abs().max(b.abs())) {
                            return Err(MppiError::config(
                                "noise_covariance",
                                format!(
                                    "is not symmetric: entry ({i},{j}) = {a} but ({j},{i}) = {b}"
                                ),
                            ));
                        }
                    }
                }
                if nalgebra::DMatrix::from_row_slice(m, m, &flat)
                    .cholesky()
                    .is_none()
                {
                    return Err(MppiError::config(
                        "noise_covariance",
                        "is not positive definite (Cholesky failed)",
                    ));
                }
                flat
            }
            None => {
                let sigma = per_dim("noise_sigma", &self.noise_sigma, m)?;
                if let Some((i, s)) = sigma
                    .iter()
                    .enumerate()
                    .find(|(_, s)| !(s.is_finite() && **s > 0.0))
                {
                    return Err(MppiError::config(
                        "noise_sigma",
                        format!("entry {i} must be a finite number > 0, got {s}"),
                    ));
                }
                let mut cov = vec![0.0; m * m];
                for (i, s) in sigma.iter().enumerate() {
                    cov[i * m + i] = s * s;
                }
                cov
            }
        };
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
        Ok(Validated {
            samples: self.samples,
            horizon: self.horizon,
            control_dim: m,
            iterations: self.iterations,
            covariance,
            temperature,
            step_size: self.step_size,
            control_cost_gamma: self.control_cost_gamma,
            u_min,
            u_max,
            discount: self.discount,
            shift_fill: self.shift_fill,
            seed: self.seed,
            threads: self.threads,
            elites: self.elites,
            acceleration: self.acceleration,
            momentum: self.momentum,
            safeguard: self.safeguard,
            diagnostics: self.diagnostics,
            raw: self.clone(),
        })
    }
}
