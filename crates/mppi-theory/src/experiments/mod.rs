//! Theory versus measurement: the experiments behind `mppi theory`.
//!
//! Each experiment compares a closed form of [`crate::closed_form`] (docs/theory.md §C, D.3, B.4.3)
//! with what the [`Planner`] (Monte Carlo) or the exact E-step iteration actually does, and
//! returns plain data: a list of [`Check`]s (theory, measured, tolerance, verdict) plus the
//! series the CLI plots. Every experiment takes a seed and a [`Size`]: [`Size::Quick`] runs in
//! well under a second (tests), [`Size::Full`] uses the sample sizes of docs/theory.md §C.4 / H.
//!
//! | experiment | theory | measured |
//! | --- | --- | --- |
//! | [`contraction`] | `ρ = ρ((I + ΣH/λ)⁻¹)` (C.3) | planner runs along the slowest mode; one-step regression `Â` (C.4 items 2–3) |
//! | [`sufficient_increase`] | `ΔQ̂ = KL > 0` and `L(θ_{k+1}) − L(θ_k) ≥ KL(p_{θ_{k+1}} ‖ p_{θ_k})` (C.2) | every family with floors off on a nonconvex objective: `diagnostics = "full"`, and `L` on fresh samples |
//! | [`full_covariance`] | `Σ_k = (Σ₀⁻¹ + kH/λ)⁻¹`, `e_k = (I + kΣ₀H/λ)⁻¹e₀` (B.4.3) | exact full-covariance EM; `gaussian_full` planner |
//! | [`acceleration`] | D.3 rates of EM, over-relaxed EM and heavy ball | exact E-steps; planner with `acceleration` |
//! | [`ess`] | `E[w]²/E[w²]` (C.4 item 4) | mean `ESS/N` of planner iterations |
//!
//! All problems are the quadratic of docs/theory.md §C.4: `d = 4`,
//! `H = Q diag(0.2, 0.5, 1, 3) Qᵀ` (`Q` a random rotation drawn from the seed),
//! `Σ = diag(0.5, 0.8, 1, 0.3)`, searched by a black-box planner with horizon 1 and `d`
//! controls.
//!
//! ```
//! use mppi_theory::experiments::{self, Size};
//! let result = experiments::ess(Size::Quick, 1).unwrap();
//! assert!(result.checks.iter().all(|c| c.pass), "{:?}", result.checks);
//! ```

use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rayon::prelude::*;
use serde::Serialize;
use thiserror::Error;

use crate::closed_form::{self as theory, Quadratic, TheoryError};
use crate::stats;
use mppi::MppiError;
use mppi::proposal::{GaussianMixture, downcast};
use mppi::rng::{SampleRng, stream_seed};
use mppi::weights::{Temperature, compute_weights};
use mppi::{
    Acceleration, DiagnosticsLevel, MppiConfig, ProposalConfig, ProposalKind, WeightingConfig,
};
use mppi::{FnObjective, Proposal};
use mppi::{IterStats, Planner};

/// How big the experiments are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    /// Small sample sizes and few repetitions (tests; wider tolerances).
    Quick,
    /// The sample sizes of docs/theory.md §C.4 / H (the CLI's default).
    Full,
}

impl Size {
    fn pick<T>(self, quick: T, full: T) -> T {
        match self {
            Size::Quick => quick,
            Size::Full => full,
        }
    }
}

/// What can stop an experiment.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ExperimentError {
    /// A closed-form computation failed.
    #[error("theory: {0}")]
    Theory(#[from] TheoryError),
    /// The planner could not be built or run.
    #[error("planner: {0}")]
    Planner(#[from] MppiError),
}

/// How a measured value is compared with its theoretical value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// `|measured − theory| ≤ tolerance`.
    Abs,
    /// `|measured − theory| ≤ tolerance · |theory|`.
    Rel,
    /// `measured ≥ theory − tolerance` (a one-sided bound).
    AtLeast,
}

/// One theory-versus-measurement comparison (a row of a results table).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// Which experiment (`contraction`, `sufficient_increase`, ...).
    pub experiment: String,
    /// What is compared.
    pub quantity: String,
    /// The setting (temperature, family, offset, ...).
    pub setting: String,
    /// The theoretical value.
    pub theory: f64,
    /// The measured value.
    pub measured: f64,
    /// How the two are compared.
    pub criterion: Criterion,
    /// The tolerance of the comparison.
    pub tolerance: f64,
    /// Whether the measurement agrees with the theory (false for a NaN measurement).
    pub pass: bool,
    /// How the tolerance was derived (empty for round-off tolerances of exact identities).
    pub basis: String,
}

impl Check {
    /// Build a check and evaluate its verdict.
    #[must_use]
    pub fn new(
        experiment: &str,
        quantity: impl Into<String>,
        setting: impl Into<String>,
        theory: f64,
        measured: f64,
        criterion: Criterion,
        tolerance: f64,
    ) -> Self {
        let pass = match criterion {
            Criterion::Abs => (measured - theory).abs() <= tolerance,
            Criterion::Rel => (measured - theory).abs() <= tolerance * theory.abs(),
            Criterion::AtLeast => measured >= theory - tolerance,
        };
        Check {
            experiment: experiment.to_string(),
            quantity: quantity.into(),
            setting: setting.into(),
            theory,
            measured,
            criterion,
            tolerance,
            pass,
            basis: String::new(),
        }
    }

    /// Record how the tolerance was derived (shown by [`Check::tolerance_text`]).
    #[must_use]
    pub fn derived(mut self, basis: impl Into<String>) -> Self {
        self.basis = basis.into();
        self
    }

    /// The tolerance as text: `±0.005`, `±10%` or `≥ theory − 1e-9`, followed by its
    /// derivation in parentheses when it has one (`±0.0031 (5.9 SE, 12 runs)`).
    #[must_use]
    pub fn tolerance_text(&self) -> String {
        let base = match self.criterion {
            Criterion::Abs => format!("±{}", short(self.tolerance)),
            Criterion::Rel => format!("±{}%", short(100.0 * self.tolerance)),
            Criterion::AtLeast => format!("≥ theory − {}", short(self.tolerance)),
        };
        if self.basis.is_empty() {
            base
        } else {
            format!("{base} ({})", self.basis)
        }
    }
}

/// A compact number for tolerance texts.
fn short(v: f64) -> String {
    if v != 0.0 && !(1e-3..1e4).contains(&v.abs()) {
        format!("{v:.0e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A polyline or point set of a plot: `(x, y)` pairs.
pub type Points = Vec<(f64, f64)>;

/// The C.4 quadratic and its sampling covariance.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The sampling covariance `Σ` (`d x d`).
    pub sigma: DMatrix<f64>,
    /// The quadratic cost.
    pub quad: Quadratic,
}

impl Problem {
    /// Theory-spec C.4: `d = 4`, `H = Q diag(0.2, 0.5, 1, 3) Qᵀ` with a random rotation `Q`
    /// drawn from `seed`, `Σ = diag(0.5, 0.8, 1, 0.3)`, `u* = (1, −0.5, 0.25, 0.75)`, `J* = 0`.
    pub fn c4(seed: u64) -> Result<Self, ExperimentError> {
        let d = 4;
        let mut rng = SampleRng::seed_from_u64(stream_seed(seed, 0xC4, 0, 0));
        let g = DMatrix::from_fn(d, d, |_, _| rng.normal());
        let q = g.qr().q();
        let h = &q
            * DMatrix::from_diagonal(&DVector::from_vec(vec![0.2, 0.5, 1.0, 3.0]))
            * q.transpose();
        let h = 0.5 * (&h + h.transpose());
        let quad = Quadratic::new(h, DVector::from_vec(vec![1.0, -0.5, 0.25, 0.75]), 0.0)?;
        let sigma = DMatrix::from_diagonal(&DVector::from_vec(vec![0.5, 0.8, 1.0, 0.3]));
        Ok(Problem { sigma, quad })
    }

    /// Decision dimension.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.quad.dim()
    }

    /// `‖v‖_{Σ⁻¹}`.
    fn sigma_norm(&self, v: &DVector<f64>) -> f64 {
        let l = self
            .sigma
            .clone()
            .cholesky()
            .map(|c| c.l())
            .unwrap_or_else(|| DMatrix::identity(self.dim(), self.dim()));
        l.solve_lower_triangular(v).map_or(f64::NAN, |x| x.norm())
    }

    /// The same quadratic with `u* = 0` (exact iterations in error coordinates, free of
    /// cancellation).
    fn centered(&self) -> Quadratic {
        Quadratic {
            u_star: DVector::zeros(self.dim()),
            ..self.quad.clone()
        }
    }

    /// `Σ` as rows, for `noise_covariance`.
    fn sigma_rows(&self) -> Vec<Vec<f64>> {
        self.sigma
            .row_iter()
            .map(|r| r.iter().copied().collect())
            .collect()
    }

    /// A black-box Gaussian planner over `R^d` (horizon 1, `d` controls) sampling `N(μ, Σ)`.
    fn planner(
        &self,
        lambda: f64,
        samples: usize,
        seed: u64,
        tweak: impl FnOnce(&mut MppiConfig),
    ) -> Result<Planner, MppiError> {
        let mut cfg = MppiConfig {
            samples,
            horizon: 1,
            iterations: 1,
            seed,
            threads: 1,
            proposal: ProposalConfig {
                noise_covariance: Some(self.sigma_rows()),
                ..ProposalConfig::default()
            },
            weighting: WeightingConfig::fixed(lambda),
            ..MppiConfig::default()
        };
        tweak(&mut cfg);
        Planner::new(&cfg, self.dim())
    }

    /// Run `iterations` planner iterations from `u* + e0` (one control step).
    fn trajectory(
        &self,
        planner: &mut Planner,
        e0: &DVector<f64>,
        iterations: usize,
    ) -> Result<Trajectory, ExperimentError> {
        let quad = &self.quad;
        let objective = FnObjective::new(self.dim(), |u: &[f64]| quad.cost(u));
        let start = &self.quad.u_star + e0;
        planner.set_mean(start.as_slice())?;
        let mut t = Trajectory {
            norms: vec![e0.norm()],
            errors: vec![e0.clone()],
            stats: vec![],
        };
        for k in 0..iterations {
            t.stats.push(planner.iterate(&objective, 0, k as u64)?);
            let e = DVector::from_column_slice(planner.mean()) - &self.quad.u_star;
            t.norms.push(e.norm());
            t.errors.push(e);
        }
        Ok(t)
    }
}

/// One planner run of [`Problem::trajectory`].
struct Trajectory {
    /// `‖e_k‖ = ‖μ_k − u*‖`, `k = 0..=K`.
    norms: Vec<f64>,
    /// `e_k`.
    errors: Vec<DVector<f64>>,
    /// The statistics of each iteration.
    stats: Vec<IterStats>,
}

/// The bias of the mean of `‖e‖` over independent runs as an estimate of `‖E e‖`, by the
/// delta method: `E‖e‖ − ‖ē‖ ≈ (tr C − uᵀCu)/(2‖ē‖) ≤ tr C/(2‖ē‖)`, `C` the runs' sample
/// covariance of `e`, `ē` their mean, `u = ē/‖ē‖`. Returns the bound `tr C/(2‖ē‖)`.
fn norm_bias(errors: &[&DVector<f64>]) -> f64 {
    let n = errors.len() as f64;
    if errors.len() < 2 {
        return 0.0;
    }
    let mean = errors
        .iter()
        .fold(DVector::zeros(errors[0].len()), |acc, e| acc + *e)
        / n;
    let trace = errors
        .iter()
        .map(|e| (*e - &mean).norm_squared())
        .sum::<f64>()
        / (n - 1.0);
    trace / (2.0 * mean.norm())
}

/// The bias of the mean over runs of the `K`-step geometric-mean rate `(‖e_K‖/‖e_0‖)^{1/K}`
/// (fixed `e_0`): `rate · norm_bias(e_K)/(K‖ē_K‖)` to first order.
fn rate_bias(runs: &[Trajectory], window: usize, rate: f64) -> f64 {
    let errors: Vec<&DVector<f64>> = runs.iter().map(|t| &t.errors[window]).collect();
    let mean_norm = runs.iter().map(|t| t.norms[window]).sum::<f64>() / runs.len() as f64;
    rate * norm_bias(&errors) / (window as f64 * mean_norm)
}

/// The tolerance of a mean over independent repetitions: `q·SE + bias`, with `SE` the sample
/// standard deviation over `√n` and `q = t_{n−1}(1 − 5·10⁻⁷)` ([`stats::rep_quantile`]).
/// Returns `(mean, tolerance, basis text)`.
fn rep_tolerance(values: &[f64], bias: f64) -> (f64, f64, String) {
    let (mean, _, se) = stats::mean_sd_se(values);
    let q = stats::rep_quantile(values.len());
    let basis = if bias > 0.0 {
        format!("{:.2}·SE + bias {}, {} runs", q, short(bias), values.len())
    } else {
        format!("{:.2}·SE, {} runs", q, values.len())
    };
    (mean, q * se + bias, basis)
}

/// A planner seed for repetition `rep` of experiment `tag`.
fn rep_seed(seed: u64, tag: u64, setting: u64, rep: u64) -> u64 {
    stream_seed(seed, tag, setting, rep)
}

/// Element-wise mean of equally long series.
fn mean_series(series: &[Vec<f64>]) -> Vec<f64> {
    let len = series.iter().map(Vec::len).min().unwrap_or(0);
    (0..len)
        .map(|k| series.iter().map(|s| s[k]).sum::<f64>() / series.len() as f64)
        .collect()
}

fn indexed(values: &[f64]) -> Points {
    values
        .iter()
        .enumerate()
        .map(|(k, v)| (k as f64, *v))
        .collect()
}

/// The Monte-Carlo noise floor of the mean along unit direction `v`:
/// `√(vᵀ Σ_post v / ESS)` (docs/theory.md §C.4 item 3).
fn noise_floor(post: &DMatrix<f64>, v: &DVector<f64>, ess: f64) -> f64 {
    let u = v / v.norm();
    (u.dot(&(post * &u)) / ess.max(1.0)).sqrt()
}

mod acceleration;
mod contraction;
mod ess;
mod full_covariance;
mod increase;
pub use acceleration::*;
pub use contraction::*;
pub use ess::*;
pub use full_covariance::*;
pub use increase::*;

// ------------------------------------------------------------------------------------------
// everything

/// The results of every experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TheoryReport {
    /// Size of the run.
    pub size: Size,
    /// Seed of the run.
    pub seed: u64,
    /// (a)
    pub contraction: ContractionResult,
    /// (b)
    pub sufficient_increase: FamiliesResult,
    /// (c)
    pub full_covariance: FullCovResult,
    /// (d)
    pub acceleration: AccelerationResult,
    /// (e)
    pub ess: EssResult,
}

/// Names of the experiments, in the order [`run_all`] runs them.
pub const EXPERIMENTS: [&str; 5] = [
    "contraction",
    "sufficient_increase",
    "full_covariance",
    "acceleration",
    "ess",
];

impl TheoryReport {
    /// Every check of every experiment, in order.
    #[must_use]
    pub fn checks(&self) -> Vec<&Check> {
        self.contraction
            .checks
            .iter()
            .chain(&self.sufficient_increase.checks)
            .chain(&self.full_covariance.checks)
            .chain(&self.acceleration.checks)
            .chain(&self.ess.checks)
            .collect()
    }
}

/// Run every experiment; `progress` is called with the name of each experiment before it
/// starts.
pub fn run_all(
    size: Size,
    seed: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<TheoryReport, ExperimentError> {
    progress(EXPERIMENTS[0]);
    let contraction = contraction(size, seed)?;
    progress(EXPERIMENTS[1]);
    let sufficient_increase = sufficient_increase(size, seed)?;
    progress(EXPERIMENTS[2]);
    let full_covariance = full_covariance(size, seed)?;
    progress(EXPERIMENTS[3]);
    let acceleration = acceleration(size, seed)?;
    progress(EXPERIMENTS[4]);
    let ess = ess(size, seed)?;
    Ok(TheoryReport {
        size,
        seed,
        contraction,
        sufficient_increase,
        full_covariance,
        acceleration,
        ess,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_pass(checks: &[Check]) {
        for c in checks {
            println!(
                "{}: {} [{}]: theory {:.6}, measured {:.6}, tolerance {}",
                c.experiment,
                c.quantity,
                c.setting,
                c.theory,
                c.measured,
                c.tolerance_text()
            );
        }
        for c in checks {
            assert!(c.pass, "{c:?}");
        }
    }

    #[test]
    fn check_verdicts() {
        assert!(Check::new("x", "q", "s", 1.0, 1.004, Criterion::Abs, 0.005).pass);
        assert!(!Check::new("x", "q", "s", 1.0, 1.006, Criterion::Abs, 0.005).pass);
        assert!(Check::new("x", "q", "s", 2.0, 2.15, Criterion::Rel, 0.1).pass);
        assert!(!Check::new("x", "q", "s", 2.0, 2.25, Criterion::Rel, 0.1).pass);
        assert!(Check::new("x", "q", "s", 0.0, -1e-12, Criterion::AtLeast, 1e-9).pass);
        assert!(!Check::new("x", "q", "s", 0.0, f64::NAN, Criterion::AtLeast, 1e-9).pass);
        assert_eq!(
            Check::new("x", "q", "s", 0.0, 0.0, Criterion::Rel, 0.1).tolerance_text(),
            "±10%"
        );
    }

    #[test]
    fn c4_problem_matches_the_spec() {
        let p = Problem::c4(3).unwrap();
        let eig = p.quad.h.clone().symmetric_eigenvalues();
        let mut e: Vec<f64> = eig.iter().copied().collect();
        e.sort_by(f64::total_cmp);
        for (a, b) in e.iter().zip([0.2, 0.5, 1.0, 3.0]) {
            assert!((a - b).abs() < 1e-12, "{e:?}");
        }
    }

    #[test]
    fn contraction_quick_agrees() {
        let r = contraction(Size::Quick, 1).unwrap();
        assert_eq!(r.runs.len(), 3);
        assert!(r.runs.iter().all(|run| run.window >= 3), "{:?}", r.runs);
        assert_pass(&r.checks);
    }

    #[test]
    fn sufficient_increase_quick_holds_for_every_available_family() {
        let r = sufficient_increase(Size::Quick, 1).unwrap();
        // every family is registered in this build, so every one is measured
        assert_eq!(r.rows.len(), FAMILIES.len(), "{:?}", r.skipped);
        for row in &r.rows {
            assert_eq!(row.iterations, 4, "{row:?}");
            for s in &row.steps {
                println!(
                    "{:>14} k={} moved={} reseeded={} KL={:.4e} ΔQ̂={:.4e} gap={:.2e} Δ̂={:.4e} SE={:.2e} SE_M={:.2e} b={:.2e} o={:.2e} q={:.2} allow={:.3e} z={:.2}",
                    row.family,
                    s.iteration,
                    s.moved,
                    s.reseeded,
                    s.kl,
                    s.q_gain,
                    s.mstep_gap,
                    s.increase,
                    s.increase_se,
                    s.mstep_se,
                    s.bias,
                    s.optimism,
                    s.quantile,
                    s.allowance,
                    s.z()
                );
            }
        }
        assert_pass(&r.checks);
    }

    #[test]
    fn sufficient_increase_check_fails_for_a_reflected_step() {
        // Experiment (b)'s measurement and check on the gaussian family's first step, and on
        // a wrong M-step with the same KL: the reflection μ_k − Δμ, along which L decreases.
        let (em, eval, pairs, _) = increase_sizes(Size::Quick);
        let cfg = family_config(ProposalKind::Gaussian, em, 1, 5);
        let mut planner = Planner::new(&cfg, 2).unwrap();
        let f = FnObjective::new(8, nonconvex_cost);
        let p_k = planner.proposal().clone_box();
        planner.iterate(&f, 0, 0).unwrap();
        let p_em = planner.proposal().clone_box();
        let reflected: Vec<f64> = p_k
            .params()
            .iter()
            .zip(p_em.params())
            .map(|(a, b)| 2.0 * a - b)
            .collect();
        let mut p_bad = p_k.clone_box();
        p_bad.set_params(&reflected).unwrap();
        let samples = planner.samples();
        let fresh_k = fresh_batches(p_k.as_ref(), eval, pairs, 5, 0);
        let measure = |p: &dyn Proposal, tag: u64| {
            let fresh = fresh_batches(p, eval, pairs, 5, tag);
            measure_step(
                0,
                p_k.as_ref(),
                p,
                &samples,
                planner.weights(),
                &fresh_k,
                &fresh,
                eval,
            )
        };
        let good = measure(p_em.as_ref(), 1);
        let bad = measure(p_bad.as_ref(), 2);
        println!(
            "EM step: Δ̂ = {:.4}, KL = {:.4}, allowance {:.4}; reflected: Δ̂ = {:.4}, KL = {:.4}, allowance {:.4}",
            good.increase, good.kl, good.allowance, bad.increase, bad.kl, bad.allowance
        );
        assert!((bad.kl - good.kl).abs() <= 1e-12 * good.kl);
        assert!(good.holds(), "{good:?}");
        assert!(!bad.holds(), "{bad:?}");
    }

    #[test]
    fn full_covariance_quick_agrees() {
        let r = full_covariance(Size::Quick, 1).unwrap();
        assert_pass(&r.checks);
        // sublinear: the error halves roughly when k doubles, while fixed Σ is geometric
        let e = |k: usize| r.full_exact[k].1;
        assert!((e(200) * 200.0 / (e(100) * 100.0) - 1.0).abs() < 0.1);
        assert!(r.fixed_exact[200].1 < 1e-6 * r.full_exact[200].1);
    }

    #[test]
    fn acceleration_quick_agrees() {
        let r = acceleration(Size::Quick, 1).unwrap();
        assert_pass(&r.checks);
        // the planner accelerates: its measured rates are ordered as D.3 says (the D.3 formulas
        // are ordered for every 0 < s_min < s_max < 1, so only the measured ones are checked)
        let rate = |n: &str| r.runs.iter().find(|s| s.scheme == n).unwrap().rate_measured;
        assert!(rate("heavy_ball") < rate("over_relaxed"), "{:?}", r.runs);
        assert!(rate("over_relaxed") < rate("em"), "{:?}", r.runs);
    }

    #[test]
    fn ess_quick_agrees() {
        let r = ess(Size::Quick, 1).unwrap();
        assert_eq!(r.points.len(), 9);
        assert_pass(&r.checks);
    }
}
