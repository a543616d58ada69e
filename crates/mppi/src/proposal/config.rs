//! The `[proposal]` section of the config: which sampling distribution, and its keys.
//!
//! Every kind has its own keys; a key of another kind is an error that names both. Keys that
//! are not given take the defaults below, so a section is as short as `kind = "gaussian_diag"`.
//!
//! | `kind =` | keys (default) |
//! | --- | --- |
//! | `gaussian` | `noise_sigma` (1), `noise_covariance` |
//! | `gaussian_diag` | `noise_sigma`, `noise_covariance`, `std_min` (0.001), `std_max` (1000), `std_reset` (false), `prior_weight` (0.25) |
//! | `gaussian_full` | the `gaussian_diag` keys, `covariance_block` (`step`), `shrinkage` (0) |
//! | `colored` | `noise_sigma`, `noise_covariance`, `correlation` (0) |
//! | `spline` | `noise_sigma`, `noise_covariance`, `knots` (4) |
//! | `beta` | `noise_sigma`, `noise_covariance`, `std_reset`, `concentration_max` (30) |
//!
//! The defaults of the adapted-spread kinds are floors that hold in closed loop: exact EM
//! shrinks a free spread at every step ([`super::spread_warnings`] has the measurements).
//! | `categorical` | `categories` (required), `floor` (0.001) |
//! | `mixture` | the `gaussian_diag` keys, `components` (2), `inner_iterations` (1) |

use serde::{Deserialize, Serialize};

use crate::config::{ProposalKind, per_dim};
use crate::error::MppiError;

/// Which keys each kind accepts (besides `kind`).
const SPREAD: &[&str] = &["noise_sigma", "noise_covariance"];
const ADAPTIVE: &[&str] = &[
    "noise_sigma",
    "noise_covariance",
    "std_min",
    "std_max",
    "std_reset",
    "prior_weight",
];

/// Every key of the section, in the order `mppi config` prints them.
pub const ALL_KEYS: &[&str] = &[
    "noise_sigma",
    "noise_covariance",
    "std_min",
    "std_max",
    "std_reset",
    "prior_weight",
    "covariance_block",
    "shrinkage",
    "correlation",
    "knots",
    "concentration_max",
    "categories",
    "floor",
    "components",
    "inner_iterations",
];

impl ProposalKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [ProposalKind; 8] = [
        ProposalKind::Gaussian,
        ProposalKind::GaussianDiag,
        ProposalKind::GaussianFull,
        ProposalKind::Colored,
        ProposalKind::Spline,
        ProposalKind::Beta,
        ProposalKind::Categorical,
        ProposalKind::Mixture,
    ];

    /// The name in the config (`kind = "..."`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ProposalKind::Gaussian => "gaussian",
            ProposalKind::GaussianDiag => "gaussian_diag",
            ProposalKind::GaussianFull => "gaussian_full",
            ProposalKind::Colored => "colored",
            ProposalKind::Spline => "spline",
            ProposalKind::Beta => "beta",
            ProposalKind::Categorical => "categorical",
            ProposalKind::Mixture => "mixture",
        }
    }

    /// The kind called `name`, if any.
    #[must_use]
    pub fn from_name(name: &str) -> Option<ProposalKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The keys of the `[proposal]` section this kind accepts (besides `kind`).
    ///
    /// ```
    /// use mppi::ProposalKind;
    /// assert!(ProposalKind::GaussianDiag.keys().contains(&"std_min"));
    /// assert!(!ProposalKind::Gaussian.keys().contains(&"std_min"));
    /// ```
    #[must_use]
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            ProposalKind::Gaussian => SPREAD,
            ProposalKind::GaussianDiag => ADAPTIVE,
            ProposalKind::GaussianFull => &[
                "noise_sigma",
                "noise_covariance",
                "std_min",
                "std_max",
                "std_reset",
                "prior_weight",
                "covariance_block",
                "shrinkage",
            ],
            ProposalKind::Colored => &["noise_sigma", "noise_covariance", "correlation"],
            ProposalKind::Spline => &["noise_sigma", "noise_covariance", "knots"],
            ProposalKind::Beta => &[
                "noise_sigma",
                "noise_covariance",
                "std_reset",
                "concentration_max",
            ],
            ProposalKind::Categorical => &["categories", "floor"],
            ProposalKind::Mixture => &[
                "noise_sigma",
                "noise_covariance",
                "std_min",
                "std_max",
                "std_reset",
                "prior_weight",
                "components",
                "inner_iterations",
            ],
        }
    }

    /// The kinds that accept `key`.
    #[must_use]
    pub fn kinds_with(key: &str) -> Vec<ProposalKind> {
        Self::ALL
            .into_iter()
            .filter(|k| k.keys().contains(&key))
            .collect()
    }
}

/// The `[proposal]` section: the kind of sampling distribution and its keys. Keys left `None`
/// take the kind's defaults (the accessors below); a key that the kind does not have must be
/// `None` ([`ProposalConfig::validate`] names it otherwise).
///
/// ```
/// use mppi::{MppiConfig, ProposalConfig, ProposalKind};
/// let cfg: MppiConfig = toml::from_str("[proposal]\nkind = \"gaussian_diag\"\nstd_min = 0.05").unwrap();
/// assert_eq!(cfg.proposal.kind, ProposalKind::GaussianDiag);
/// assert_eq!(cfg.proposal.std_min(), 0.05);
/// // a key of another kind names both
/// let wrong = ProposalConfig { knots: Some(3), ..ProposalConfig::gaussian(&[1.0]) };
/// let err = wrong.validate(1).unwrap_err().to_string();
/// assert!(err.contains("proposal.knots") && err.contains("spline"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProposalConfig {
    /// The sampling distribution (theory B.4): `gaussian`, `gaussian_diag`, `gaussian_full`,
    /// `colored`, `spline`, `beta`, `categorical` or `mixture`.
    pub kind: ProposalKind,
    /// Exploration standard deviation per control dimension (one value, or a scalar, is
    /// broadcast). Default 1.
    #[serde(
        deserialize_with = "crate::config::opt_scalar_or_vec",
        skip_serializing_if = "Option::is_none"
    )]
    pub noise_sigma: Option<Vec<f64>>,
    /// Full `m x m` exploration covariance of one time step; overrides `noise_sigma`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise_covariance: Option<Vec<Vec<f64>>>,
    /// Floor on adapted standard deviations (adaptive kinds). Default 0.001.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std_min: Option<f64>,
    /// Ceiling on adapted standard deviations (adaptive kinds). Default 1000.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std_max: Option<f64>,
    /// Reset the adapted spread to its initial value at every control step (TD-MPC2 does).
    /// Default false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std_reset: Option<bool>,
    /// Conjugate-prior pseudo-count `ν ≥ 0` pulling adapted second moments toward the initial
    /// covariance: `T̄ ← (ν T₀ + T̄) / (1 + ν)`. Default 0.25, the receding-horizon floor of
    /// the adapted spread (0 is exact EM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prior_weight: Option<f64>,
    /// Block structure of the `gaussian_full` covariance: `step` (default) or `sequence`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub covariance_block: Option<crate::config::CovarianceBlock>,
    /// Shrinkage `β ∈ [0, 1]` of the `gaussian_full` covariance toward its diagonal. Default 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shrinkage: Option<f64>,
    /// AR(1) correlation `ρ ∈ [0, 1)` between consecutive steps of `colored` noise. Default 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation: Option<f64>,
    /// Number of `spline` knots, between 2 and the horizon. Default 4.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub knots: Option<usize>,
    /// Cap on the `beta` concentration `α + β` (its variance floor). Default 30.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concentration_max: Option<f64>,
    /// Control values of the `categorical` kind (every control dimension uses this list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<f64>>,
    /// Floor `ε` of categorical probabilities: `π ← (1 − ε) π + ε / K`. Default 0.001.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor: Option<f64>,
    /// Number of `mixture` components, between 1 and `samples`. Default 2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<usize>,
    /// Inner EM iterations of the `mixture` M-step. Default 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner_iterations: Option<usize>,
}

/// Most inner EM iterations of the mixture's M-step.
pub const MAX_INNER_ITERATIONS: usize = 1000;
/// The range of `noise_sigma` entries whose square is a normal `f64`.
const SIGMA_RANGE: (f64, f64) = (1e-150, 1e150);

impl ProposalConfig {
    /// A section of kind `kind` with every key at its default (`Default` is the `gaussian`
    /// kind).
    #[must_use]
    pub fn new(kind: ProposalKind) -> Self {
        ProposalConfig {
            kind,
            ..ProposalConfig::default()
        }
    }

    /// The fixed-covariance Gaussian (classic MPPI) with standard deviations `sigma`.
    #[must_use]
    pub fn gaussian(sigma: &[f64]) -> Self {
        ProposalConfig::new(ProposalKind::Gaussian).with_noise_sigma(sigma)
    }

    /// This section with `noise_sigma = sigma`.
    #[must_use]
    pub fn with_noise_sigma(mut self, sigma: &[f64]) -> Self {
        self.noise_sigma = Some(sigma.to_vec());
        self
    }

    /// This section as kind `kind`, keeping the keys `kind` also has and dropping the others:
    /// what switching the kind of a task's default config needs.
    ///
    /// ```
    /// use mppi::{ProposalConfig, ProposalKind};
    /// let p = ProposalConfig::gaussian(&[0.5]).into_kind(ProposalKind::Categorical);
    /// assert_eq!((p.kind, p.noise_sigma), (ProposalKind::Categorical, None));
    /// let q = ProposalConfig::gaussian(&[0.5]).into_kind(ProposalKind::GaussianDiag);
    /// assert_eq!(q.noise_sigma, Some(vec![0.5]));
    /// ```
    #[must_use]
    pub fn into_kind(self, kind: ProposalKind) -> Self {
        let mut out = ProposalConfig::new(kind);
        let keep = |key: &str| kind.keys().contains(&key);
        macro_rules! carry {
            ($($field:ident),*) => {
                $(if keep(stringify!($field)) { out.$field = self.$field.clone(); })*
            };
        }
        carry!(
            noise_sigma,
            noise_covariance,
            std_min,
            std_max,
            std_reset,
            prior_weight,
            covariance_block,
            shrinkage,
            correlation,
            knots,
            concentration_max,
            categories,
            floor,
            components,
            inner_iterations
        );
        out
    }

    /// The keys that are set (`Some`).
    #[must_use]
    pub fn set_keys(&self) -> Vec<&'static str> {
        let flags = [
            self.noise_sigma.is_some(),
            self.noise_covariance.is_some(),
            self.std_min.is_some(),
            self.std_max.is_some(),
            self.std_reset.is_some(),
            self.prior_weight.is_some(),
            self.covariance_block.is_some(),
            self.shrinkage.is_some(),
            self.correlation.is_some(),
            self.knots.is_some(),
            self.concentration_max.is_some(),
            self.categories.is_some(),
            self.floor.is_some(),
            self.components.is_some(),
            self.inner_iterations.is_some(),
        ];
        ALL_KEYS
            .iter()
            .zip(flags)
            .filter_map(|(k, set)| set.then_some(*k))
            .collect()
    }

    /// This section with every key of its kind set to its value or its default (what `mppi
    /// config` prints).
    #[must_use]
    pub fn resolved(&self) -> Self {
        let mut out = self.clone();
        let has = |key: &str| self.kind.keys().contains(&key);
        if has("noise_sigma") && out.noise_sigma.is_none() && out.noise_covariance.is_none() {
            out.noise_sigma = Some(vec![1.0]);
        }
        macro_rules! fill {
            ($($field:ident = $value:expr),*) => {
                $(if has(stringify!($field)) && out.$field.is_none() { out.$field = Some($value); })*
            };
        }
        fill!(
            std_min = self.std_min(),
            std_max = self.std_max(),
            std_reset = self.std_reset(),
            prior_weight = self.prior_weight(),
            covariance_block = self.covariance_block(),
            shrinkage = self.shrinkage(),
            correlation = self.correlation(),
            knots = self.knots(),
            concentration_max = self.concentration_max(),
            floor = self.floor(),
            components = self.components(),
            inner_iterations = self.inner_iterations()
        );
        out
    }

    /// `std_min` or its default.
    #[must_use]
    pub fn std_min(&self) -> f64 {
        self.std_min.unwrap_or(1e-3)
    }
    /// `std_max` or its default.
    #[must_use]
    pub fn std_max(&self) -> f64 {
        self.std_max.unwrap_or(1e3)
    }
    /// `std_reset` or its default.
    #[must_use]
    pub fn std_reset(&self) -> bool {
        self.std_reset.unwrap_or(false)
    }
    /// `prior_weight` or its default.
    #[must_use]
    pub fn prior_weight(&self) -> f64 {
        self.prior_weight.unwrap_or(0.25)
    }
    /// `covariance_block` or its default.
    #[must_use]
    pub fn covariance_block(&self) -> crate::config::CovarianceBlock {
        self.covariance_block.unwrap_or_default()
    }
    /// `shrinkage` or its default.
    #[must_use]
    pub fn shrinkage(&self) -> f64 {
        self.shrinkage.unwrap_or(0.0)
    }
    /// `correlation` or its default.
    #[must_use]
    pub fn correlation(&self) -> f64 {
        self.correlation.unwrap_or(0.0)
    }
    /// `knots` or its default.
    #[must_use]
    pub fn knots(&self) -> usize {
        self.knots.unwrap_or(4)
    }
    /// `concentration_max` or its default.
    #[must_use]
    pub fn concentration_max(&self) -> f64 {
        self.concentration_max.unwrap_or(30.0)
    }
    /// `categories` (empty if not given).
    #[must_use]
    pub fn categories(&self) -> &[f64] {
        self.categories.as_deref().unwrap_or(&[])
    }
    /// `floor` or its default.
    #[must_use]
    pub fn floor(&self) -> f64 {
        self.floor.unwrap_or(1e-3)
    }
    /// `components` or its default.
    #[must_use]
    pub fn components(&self) -> usize {
        self.components.unwrap_or(2)
    }
    /// `inner_iterations` or its default.
    #[must_use]
    pub fn inner_iterations(&self) -> usize {
        self.inner_iterations.unwrap_or(1)
    }

    /// Check the section for plans of `control_dim` controls: every key set belongs to the
    /// kind, and every value is in range. The constructors of the families check the rest
    /// (against the horizon, the samples and the bounds).
    pub fn validate(&self, control_dim: usize) -> Result<(), MppiError> {
        if let Some(key) = self
            .set_keys()
            .into_iter()
            .find(|k| !self.kind.keys().contains(k))
        {
            let owners: Vec<&str> = ProposalKind::kinds_with(key)
                .into_iter()
                .map(ProposalKind::name)
                .collect();
            return Err(MppiError::InvalidConfig {
                field: "proposal",
                reason: format!(
                    "`proposal.{key}` is not a key of kind = \"{}\" (it belongs to {}); the keys \
                     of \"{}\" are: {}",
                    self.kind.name(),
                    owners.join(", "),
                    self.kind.name(),
                    self.kind.keys().join(", ")
                ),
            });
        }
        if self.kind == ProposalKind::Categorical && self.categories().len() < 2 {
            return Err(MppiError::config(
                "proposal.categories",
                "the categorical kind needs at least 2 control values, e.g. categories = [-1.0, 0.0, 1.0]",
            ));
        }
        if let Some(i) = self.categories().iter().position(|v| !v.is_finite()) {
            return Err(MppiError::config(
                "proposal.categories",
                format!("entry {i} is not finite"),
            ));
        }
        if !(1..=MAX_INNER_ITERATIONS).contains(&self.inner_iterations()) {
            return Err(MppiError::config(
                "proposal.inner_iterations",
                format!(
                    "must be between 1 and {MAX_INNER_ITERATIONS}, got {} (each one is a pass \
                     over every sample and component)",
                    self.inner_iterations()
                ),
            ));
        }
        if self.components() == 0 {
            return Err(MppiError::config("proposal.components", "must be >= 1"));
        }
        if self.kind.keys().contains(&"noise_sigma") {
            self.covariance(control_dim)?;
        }
        Ok(())
    }

    /// The row-major `m x m` covariance of one time step, from `noise_covariance` or
    /// `noise_sigma` (default 1), checked: symmetric, positive definite, finite, and with
    /// variances that neither overflow nor underflow.
    pub fn covariance(&self, m: usize) -> Result<Vec<f64>, MppiError> {
        match &self.noise_covariance {
            Some(rows) => {
                if self.noise_sigma.is_some() {
                    return Err(MppiError::config(
                        "proposal.noise_covariance",
                        "give either noise_sigma or noise_covariance, not both",
                    ));
                }
                if rows.len() != m || rows.iter().any(|r| r.len() != m) {
                    return Err(MppiError::config(
                        "proposal.noise_covariance",
                        format!("must be a {m} x {m} matrix (one row per control dimension)"),
                    ));
                }
                let flat: Vec<f64> = rows.iter().flatten().copied().collect();
                if flat.iter().any(|v| !v.is_finite()) {
                    return Err(MppiError::config(
                        "proposal.noise_covariance",
                        "has a non-finite entry",
                    ));
                }
                for i in 0..m {
                    for j in 0..i {
                        let (a, b) = (flat[i * m + j], flat[j * m + i]);
                        if (a - b).abs() > 1e-12 * (1.0 + a.abs().max(b.abs())) {
                            return Err(MppiError::config(
                                "proposal.noise_covariance",
                                format!(
                                    "is not symmetric: entry ({i},{j}) = {a} but ({j},{i}) = {b}"
                                ),
                            ));
                        }
                    }
                }
                if crate::gaussian::GaussianNoise::new(m, &flat).is_err() {
                    return Err(MppiError::config(
                        "proposal.noise_covariance",
                        "is not positive definite (Cholesky failed)",
                    ));
                }
                Ok(flat)
            }
            None => {
                let given = self.noise_sigma.as_deref().unwrap_or(&[1.0]);
                let sigma = per_dim("proposal.noise_sigma", given, m)?;
                if let Some((i, s)) = sigma
                    .iter()
                    .enumerate()
                    .find(|(_, s)| !(s.is_finite() && **s > 0.0))
                {
                    return Err(MppiError::config(
                        "proposal.noise_sigma",
                        format!("entry {i} must be a finite number > 0, got {s}"),
                    ));
                }
                // σ² must be a normal f64: beyond these, the variance overflows or underflows
                if let Some((i, s)) = sigma
                    .iter()
                    .enumerate()
                    .find(|(_, s)| !(SIGMA_RANGE.0..=SIGMA_RANGE.1).contains(*s))
                {
                    return Err(MppiError::config(
                        "proposal.noise_sigma",
                        format!(
                            "entry {i} = {s:e} is out of range: σ² would {} (use a value in [{:e}, {:e}])",
                            if *s > 1.0 { "overflow" } else { "underflow" },
                            SIGMA_RANGE.0,
                            SIGMA_RANGE.1
                        ),
                    ));
                }
                let mut cov = vec![0.0; m * m];
                for (i, s) in sigma.iter().enumerate() {
                    cov[i * m + i] = s * s;
                }
                Ok(cov)
            }
        }
    }
}
