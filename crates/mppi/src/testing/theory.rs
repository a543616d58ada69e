//! The theory checks of docs/theory.md §C.2 as reusable functions: the M-step identity on
//! fixed samples, the population sufficient increase on fresh samples, and unbiased parameter
//! recovery. The crate's own tests run them on every built-in family and on deliberately
//! broken ones (`tests/negative_controls.rs`), which they must reject.
//!
//! Each returns what it measured, or a [`ConformanceError`] naming the property that failed
//! with the numbers and the tolerance.

use super::{ConformanceError, failure};
use crate::proposal::Proposal;
use crate::rng::sample_rng;
use crate::weights::{Temperature, compute_weights};

/// Which identity the M-step must satisfy ([`check_em_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MStep {
    /// An exponential family's exact M-step (no floor, prior or shrinkage active):
    /// `ΔQ̂ = KL(p_{θ⁺} ‖ p_{θ_k})`.
    Exact,
    /// A latent-variable family fitted by one inner EM iteration (the mixture), whose
    /// [`Proposal::kl`] is the complete-data KL: `ΔQ̂ ≥ KL_joint` (generalized EM).
    Generalized,
}

/// Relative tolerance of [`check_em_step`] on `|ΔQ̂ − KL|` (round-off: both sides are sums of
/// `N` terms of size `O(1)`; the built-in families measure 1e-16 to 1e-13).
pub const EM_IDENTITY_TOLERANCE: f64 = 1e-8;

/// What [`check_em_step`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmStepReport {
    /// `ΔQ̂ = Σ_i w_i log(p(U_i; θ⁺) / p(U_i; θ_k))`.
    pub q_gain: f64,
    /// `KL(p_{θ⁺} ‖ p_{θ_k})` from [`Proposal::kl`].
    pub kl: f64,
    /// `ΔQ̂ − KL`.
    pub gap: f64,
    /// `1 / Σ w_i²`.
    pub ess: f64,
}

/// One EM step from `proposal` on fixed weighted samples (`N × d` row-major, normalized
/// weights away from a fixed point), checked against the theorem of docs/theory.md §C.2:
///
/// ```text
/// exponential family, exact M-step:  Q̂(θ⁺) − Q̂(θ_k) = KL(p_{θ⁺} ‖ p_{θ_k}) > 0
/// ```
///
/// The two sides are computed by different code (`fit` + `log_prob` on the left, `kl` on the
/// right) and agree only if `fit` matches the weighted sufficient statistics:
/// `ΔQ̂ − KL = (η⁺ − η_k)ᵀ(T̄_w − ∇A(η⁺))`. A fit that returns the old parameters gives
/// `KL = 0`; a biased one breaks the equality.
///
/// ```
/// use mppi::proposal::{GaussianFixed, Proposal};
/// use mppi::testing::theory::{MStep, check_em_step};
/// let p = GaussianFixed::new(2, 1, &[0.25], &[-5.0], &[5.0])?;
/// let samples = [0.1, 0.2, 0.5, -0.3, 0.4, 0.9];
/// let weights = [0.2, 0.5, 0.3];
/// let report = check_em_step(&p, &samples, &weights, MStep::Exact).expect("exact M-step");
/// assert!(report.kl > 0.0);
/// # Ok::<(), mppi::MppiError>(())
/// ```
pub fn check_em_step(
    proposal: &dyn Proposal,
    samples: &[f64],
    weights: &[f64],
    mstep: MStep,
) -> Result<EmStepReport, ConformanceError> {
    let name = proposal.name();
    let plus = fitted(proposal, samples, weights)?;
    let (q_gain, _) = log_ratio_moments(proposal, plus.as_ref(), samples, weights)?;
    let Some(kl) = plus.kl(proposal) else {
        return failure(name, "kl is defined", "kl(p⁺, p_k) returned None");
    };
    let ess = 1.0 / weights.iter().map(|w| w * w).sum::<f64>();
    let report = EmStepReport {
        q_gain,
        kl,
        gap: q_gain - kl,
        ess,
    };
    if !kl.is_finite() || kl <= 0.0 {
        return failure(
            name,
            "KL(p⁺ ‖ p_k) > 0",
            format!(
                "KL = {kl:e} (ΔQ̂ = {q_gain:e}): the M-step did not move away from θ_k on weights \
                 that are not at a fixed point"
            ),
        );
    }
    match mstep {
        MStep::Exact => {
            let rel = (q_gain - kl).abs() / kl;
            if rel.is_nan() || rel > EM_IDENTITY_TOLERANCE {
                return failure(
                    name,
                    "ΔQ̂ = KL(p⁺ ‖ p_k)",
                    format!(
                        "ΔQ̂ = {q_gain:.12}, KL = {kl:.12}: |ΔQ̂ − KL|/KL = {rel:.3e} \
                         (tol {EM_IDENTITY_TOLERANCE:e})"
                    ),
                );
            }
        }
        MStep::Generalized => {
            if q_gain.is_nan() || q_gain < kl - EM_IDENTITY_TOLERANCE * kl {
                return failure(
                    name,
                    "ΔQ̂ ≥ KL_joint(p⁺ ‖ p_k)",
                    format!(
                        "ΔQ̂ = {q_gain:.12} < KL = {kl:.12} (tol {EM_IDENTITY_TOLERANCE:e} relative)"
                    ),
                );
            }
        }
    }
    Ok(report)
}

/// Sizes and confidence of [`check_population_increase`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IncreaseSettings {
    /// Temperature `λ` of `L(θ) = log E_{p_θ}[e^{−J/λ}]` and of the M-step's weights.
    pub lambda: f64,
    /// Samples of the M-step (large, so that `θ⁺` is close to the population M-step).
    pub fit_samples: usize,
    /// Samples of each fresh estimate `L̂`.
    pub eval_samples: usize,
    /// Independent pairs of fresh batches.
    pub repeats: usize,
    /// Number of standard errors allowed (one-sided; `4` → false-failure probability `3e-5`
    /// for a correct proposal under the normal approximation).
    pub z: f64,
    /// Seed of every stream.
    pub seed: u64,
}

impl Default for IncreaseSettings {
    fn default() -> Self {
        IncreaseSettings {
            lambda: 1.0,
            fit_samples: 100_000,
            eval_samples: 10_000,
            repeats: 20,
            z: 4.0,
            seed: 1,
        }
    }
}

/// What [`check_population_increase`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IncreaseReport {
    /// Mean over the repeats of `L̂(θ⁺) − L̂(θ_k)`, each side on its own fresh batch.
    pub gain: f64,
    /// Standard error of `gain` (sample standard deviation over the repeats `/ √R`).
    pub gain_se: f64,
    /// `KL(p_{θ⁺} ‖ p_{θ_k})`, the theorem's lower bound.
    pub kl: f64,
    /// Bias allowance `mean (N/ESS − 1)/(2N)` of `L̂(θ⁺)` (it is biased low).
    pub bias: f64,
    /// Standard deviation of the M-step's own sampling error in the bound (see
    /// [`check_population_increase`]).
    pub fit_sd: f64,
    /// `gain + z·gain_se + bias + z·fit_sd − kl` (must be `≥ 0`).
    pub slack: f64,
}

/// The population sufficient increase of docs/theory.md §C.2, measured with the *true* `L` on
/// samples that did not choose the step:
///
/// ```text
/// L(θ⁺) − L(θ_k) ≥ Q(θ⁺) − Q(θ_k) = KL(p_{θ⁺} ‖ p_{θ_k}) + (η⁺ − η_k)ᵀ(E_q[T] − T̄_w)
/// ```
///
/// `θ⁺` is fitted to `fit_samples` weighted draws from `p_{θ_k}`. The left side is estimated
/// `repeats` times by `L̂(θ) = LSE_i(−J_i/λ) − log N` on independent fresh batches from
/// `p_{θ⁺}` and from `p_{θ_k}`. The assertion is
///
/// ```text
/// mean Δ̂ + z·SE + b + z·s_fit ≥ KL
/// ```
///
/// with `SE` the standard error over the repeats, `b = mean (N/ESS − 1)/(2N)` the delta-method
/// bias of `L̂(θ⁺)` (`E[L̂] ≈ L − (ρ₂ − 1)/(2N)`, docs/theory.md §C.1), and `s_fit` the standard
/// deviation of the last term, the M-step's sampling error: `(η⁺ − η_k)ᵀT(U) = log p⁺(U) −
/// log p_k(U) + const`, so by the delta method for a self-normalized mean
/// `s_fit² ≈ Σ_i w_i² (r_i − ΔQ̂)²`, `r_i = log p⁺(U_i) − log p_k(U_i)` on the fit samples.
/// The same holds for the mixture with its complete-data KL (generalized EM).
///
/// A step in a wrong direction (a sign error, a stale or scrambled fit) lowers `L` while the
/// KL stays positive, and fails; so does a `log_prob` or `kl` that does not belong to the
/// distribution `sample` draws from.
///
/// ```
/// use mppi::proposal::GaussianFixed;
/// use mppi::testing::theory::{IncreaseSettings, check_population_increase};
/// let p = GaussianFixed::new(2, 1, &[0.25], &[-5.0], &[5.0])?;
/// let cost = |u: &[f64]| (u[0] - 1.0).powi(2) + (u[1] + 0.5).powi(2);
/// let settings = IncreaseSettings { fit_samples: 5_000, eval_samples: 2_000, ..Default::default() };
/// let report = check_population_increase(&p, &cost, &settings).expect("L increases by the KL");
/// assert!(report.gain > report.kl - report.gain_se * 10.0);
/// # Ok::<(), mppi::MppiError>(())
/// ```
pub fn check_population_increase(
    proposal: &dyn Proposal,
    cost: &dyn Fn(&[f64]) -> f64,
    settings: &IncreaseSettings,
) -> Result<IncreaseReport, ConformanceError> {
    let name = proposal.name();
    let s = settings;
    if !s.lambda.is_finite()
        || s.lambda <= 0.0
        || s.fit_samples < 2
        || s.eval_samples < 2
        || s.repeats < 2
        || !s.z.is_finite()
        || s.z < 0.0
    {
        return failure(name, "valid settings", format!("{s:?}"));
    }
    let d = proposal.dim();
    let draw = |p: &dyn Proposal, n: usize, stream: u64| -> Vec<f64> {
        let mut u = vec![0.0; n * d];
        for (i, row) in u.chunks_exact_mut(d).enumerate() {
            p.sample(&mut sample_rng(s.seed, stream, 0, i as u64), row);
        }
        u
    };
    // the M-step, on its own batch (stream 0)
    let fit_u = draw(proposal, s.fit_samples, 0);
    let costs: Vec<f64> = fit_u.chunks_exact(d).map(cost).collect();
    let mut w = vec![0.0; s.fit_samples];
    let stats = compute_weights(&costs, Temperature::Fixed(s.lambda), &mut w);
    if !stats.ess.is_finite() {
        return failure(name, "finite costs", "no finite cost in the M-step batch");
    }
    let plus = fitted(proposal, &fit_u, &w)?;
    let (q_gain, q_var) = log_ratio_moments(proposal, plus.as_ref(), &fit_u, &w)?;
    let fit_sd = q_var.sqrt();
    let Some(kl) = plus.kl(proposal) else {
        return failure(name, "kl is defined", "kl(p⁺, p_k) returned None");
    };
    // fresh batches: repeat r draws from p⁺ on stream 2r+1 and from p_k on stream 2r+2
    let mut gains = Vec::with_capacity(s.repeats);
    let mut bias = 0.0;
    for r in 0..s.repeats as u64 {
        let (l_plus, b_plus) = log_likelihood(
            &draw(plus.as_ref(), s.eval_samples, 2 * r + 1),
            d,
            cost,
            s.lambda,
        );
        let (l_k, _) = log_likelihood(
            &draw(proposal, s.eval_samples, 2 * r + 2),
            d,
            cost,
            s.lambda,
        );
        if !(l_plus.is_finite() && l_k.is_finite()) {
            return failure(
                name,
                "finite L̂ on fresh samples",
                format!("L̂(θ⁺) = {l_plus}, L̂(θ_k) = {l_k} (repeat {r})"),
            );
        }
        gains.push(l_plus - l_k);
        bias += b_plus / s.repeats as f64;
    }
    let r = gains.len() as f64;
    let gain = gains.iter().sum::<f64>() / r;
    let var = gains.iter().map(|g| (g - gain).powi(2)).sum::<f64>() / (r - 1.0);
    let gain_se = (var / r).sqrt();
    let slack = gain + s.z * gain_se + bias + s.z * fit_sd - kl;
    let report = IncreaseReport {
        gain,
        gain_se,
        kl,
        bias,
        fit_sd,
        slack,
    };
    if !kl.is_finite() || kl <= 0.0 {
        return failure(
            name,
            "KL(p⁺ ‖ p_k) > 0",
            format!("KL = {kl:e}, ΔQ̂ = {q_gain:e}: the M-step did not move"),
        );
    }
    if slack.is_nan() || slack < 0.0 {
        return failure(
            name,
            "L(θ⁺) − L(θ_k) ≥ KL(p⁺ ‖ p_k)",
            format!(
                "fresh-sample gain {gain:.5} ± {gain_se:.5} (SE), bias allowance {bias:.2e}, \
                 M-step error sd {fit_sd:.2e}, z = {}: below KL = {kl:.5} by {:.5}",
                s.z, -slack
            ),
        );
    }
    Ok(report)
}

/// What [`check_fit_recovery`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveryReport {
    /// The largest `|t_j|` over the parameters.
    pub max_t: f64,
    /// Which parameter it belongs to.
    pub worst: usize,
    /// Mean over the repeats of each fitted parameter.
    pub mean: Vec<f64>,
    /// Standard error of each mean.
    pub se: Vec<f64>,
}

/// Default threshold of [`check_fit_recovery`] on `|t|`: with 30 repeats `t` has 29 degrees
/// of freedom and `P(|t₂₉| > 7) = 1.1e-7`, so a correct family with up to 100 parameters fails
/// with probability below `1.1e-5` (Bonferroni). A 5% error in a variance (or a mean shifted
/// by 5% of a standard deviation) gives `|t| ≈ 0.05·√(n·R/2) ≈ 14` (`≈ 19`) at the suite's
/// `n = 5000`.
pub const RECOVERY_T: f64 = 7.0;

/// Unbiased recovery by the M-step: `repeats` independent batches of `n` draws from
/// `proposal`, each fitted with uniform weights. Every parameter's mean over the repeats must
/// match the true parameter by a t-test:
///
/// ```text
/// t_j = (mean_r θ̂_{r,j} − θ_j) / (sd_r θ̂_{r,j} / √R),     |t_j| ≤ t_max
/// ```
///
/// (the maximum-likelihood fit is unbiased up to `O(1/n)`, e.g. `σ²/n` for a variance, which
/// is `√R/√(2n)` of the standard error: negligible here). A parameter that every repeat fits
/// exactly (zero spread) must match to round-off. Use it with every floor, prior and
/// shrinkage off: those bias the fit on purpose.
///
/// ```
/// use mppi::proposal::GaussianFixed;
/// use mppi::testing::theory::{RECOVERY_T, check_fit_recovery};
/// let p = GaussianFixed::new(2, 1, &[0.25], &[-5.0], &[5.0])?;
/// let report = check_fit_recovery(&p, 1000, 30, 3, RECOVERY_T).expect("unbiased fit");
/// assert!(report.max_t <= RECOVERY_T);
/// # Ok::<(), mppi::MppiError>(())
/// ```
pub fn check_fit_recovery(
    proposal: &dyn Proposal,
    n: usize,
    repeats: usize,
    seed: u64,
    t_max: f64,
) -> Result<RecoveryReport, ConformanceError> {
    let name = proposal.name();
    if n < 2 || repeats < 2 || t_max.is_nan() || t_max <= 0.0 {
        return failure(
            name,
            "valid settings",
            format!("n {n}, repeats {repeats}, t_max {t_max}"),
        );
    }
    let d = proposal.dim();
    let truth = proposal.params().to_vec();
    let p = truth.len();
    let w = vec![1.0 / n as f64; n];
    let mut fits = Vec::with_capacity(repeats);
    let mut u = vec![0.0; n * d];
    let mut scratch = proposal.clone_box();
    for r in 0..repeats as u64 {
        for (i, row) in u.chunks_exact_mut(d).enumerate() {
            proposal.sample(&mut sample_rng(seed, 1_000 + r, 0, i as u64), row);
        }
        let mut theta = vec![f64::NAN; p];
        scratch.fit(&u, &w, &mut theta);
        fits.push(theta);
    }
    let rf = repeats as f64;
    let mut report = RecoveryReport {
        max_t: 0.0,
        worst: 0,
        mean: vec![0.0; p],
        se: vec![0.0; p],
    };
    for j in 0..p {
        let mean = fits.iter().map(|t| t[j]).sum::<f64>() / rf;
        let var = fits.iter().map(|t| (t[j] - mean).powi(2)).sum::<f64>() / (rf - 1.0);
        let se = (var / rf).sqrt();
        let err = (mean - truth[j]).abs();
        // zero spread: every repeat fitted the same value; it must be the true one
        let t = if se > 1e-14 * (1.0 + truth[j].abs()) {
            err / se
        } else if err <= 1e-12 * (1.0 + truth[j].abs()) {
            0.0
        } else {
            f64::INFINITY
        };
        report.mean[j] = mean;
        report.se[j] = se;
        if t.is_nan() || t > report.max_t {
            report.max_t = t;
            report.worst = j;
        }
    }
    if report.max_t.is_nan() || report.max_t > t_max {
        let j = report.worst;
        return failure(
            name,
            "unbiased M-step (t-test over repeats)",
            format!(
                "parameter {j}: mean fit {:.6} ± {:.2e} (SE over {repeats} × {n} draws) vs true \
                 {:.6}: |t| = {:.2} > {t_max}",
                report.mean[j], report.se[j], truth[j], report.max_t
            ),
        );
    }
    Ok(report)
}

/// `proposal` refitted to the weighted samples (a copy with the M-step's parameters).
fn fitted(
    proposal: &dyn Proposal,
    samples: &[f64],
    weights: &[f64],
) -> Result<Box<dyn Proposal>, ConformanceError> {
    let mut theta = vec![f64::NAN; proposal.params().len()];
    let mut plus = proposal.clone_box();
    plus.fit(samples, weights, &mut theta);
    match plus.set_params(&theta) {
        Ok(()) => Ok(plus),
        Err(e) => failure(
            proposal.name(),
            "set_params accepts the M-step",
            format!("{e} (θ⁺ = {theta:?})"),
        ),
    }
}

/// `ΔQ̂ = Σ_i w_i r_i` and the delta-method variance `Σ_i w_i² (r_i − ΔQ̂)²` of the
/// self-normalized mean, `r_i = log p⁺(U_i) − log p_k(U_i)`, over the samples with `w_i > 0`.
fn log_ratio_moments(
    k: &dyn Proposal,
    plus: &dyn Proposal,
    samples: &[f64],
    weights: &[f64],
) -> Result<(f64, f64), ConformanceError> {
    let d = k.dim();
    let mut r = Vec::with_capacity(weights.len());
    for (u, w) in samples.chunks_exact(d).zip(weights) {
        if *w > 0.0 {
            let (Some(a), Some(b)) = (plus.log_prob(u), k.log_prob(u)) else {
                return failure(k.name(), "log_prob is defined", "log_prob returned None");
            };
            r.push((*w, a - b));
        }
    }
    let q: f64 = r.iter().map(|(w, x)| w * x).sum();
    let var: f64 = r.iter().map(|(w, x)| (w * (x - q)).powi(2)).sum();
    if !q.is_finite() {
        return failure(
            k.name(),
            "finite ΔQ̂",
            format!("ΔQ̂ = {q}: a weighted sample has zero density under p⁺ or p_k"),
        );
    }
    Ok((q, var))
}

/// `(L̂, (N/ESS − 1)/(2N))` of one batch: `L̂ = LSE_i(−J_i/λ) − log N` over every sample
/// (a non-finite cost contributes `e^{−∞} = 0`).
fn log_likelihood(
    samples: &[f64],
    d: usize,
    cost: &dyn Fn(&[f64]) -> f64,
    lambda: f64,
) -> (f64, f64) {
    let s: Vec<f64> = samples
        .chunks_exact(d)
        .map(|u| {
            let c = cost(u);
            if c.is_finite() {
                -c / lambda
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect();
    let n = s.len() as f64;
    let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return (f64::NAN, f64::NAN);
    }
    let (mut s1, mut s2) = (0.0, 0.0);
    for v in &s {
        let e = (v - max).exp();
        s1 += e;
        s2 += e * e;
    }
    let ess = s1 * s1 / s2;
    (max + s1.ln() - n.ln(), (n / ess - 1.0) / (2.0 * n))
}
