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
    /// Worker threads for rollouts (1 = run on the calling thread).
    pub threads: usize,
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
        if !(self.step_size > 0.0 && self.step_size < 2.0) {
            return Err(MppiError::config(
                "step_size",
                format!("must be in (0, 2) (1 = MPPI), got {}", self.step_size),
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
        })
    }
}
