//! Scaffolding shared by the families' unit tests: seeded sample sets, weights from costs,
//! one EM step, the empirical sufficient increase (docs/theory.md §H4), and the z-scores every
//! statistical check is phrased in.

use super::Proposal;
use crate::rng::sample_rng;
use crate::weights::{Temperature, compute_weights};

/// H4's relative tolerance on `ΔQ̂ == KL(p_{θ⁺} ‖ p_{θ_k})`.
pub(crate) const KL_REL_TOL: f64 = 1e-8;

/// The bound on every z-score `|estimate − theory|/SE` of the families' statistical checks.
/// For an asymptotically normal estimator `P(|Z| > 5) = 5.7e-7`, so a test with `K`
/// statistics raises a false alarm with probability at most `K · 5.7e-7` (union bound; the
/// largest `K` here is 144). Each such test also asserts that the same estimate *fails* the
/// bound against the theory value perturbed by 5%, which shows the check has power.
pub(crate) const Z_TOL: f64 = 5.0;

/// `(x̄, SE)` for the self-normalized weighted mean `x̄ = Σ_i w_i x_i` (`Σ_i w_i = 1`, `x_i`
/// given by `x(i)`), with the delta-method standard error `SE² = Σ_i w_i² (x_i − x̄)²`.
///
/// Derivation: with unnormalized weights `a_i`, `x̄ − E_q[x] = Σ_i a_i (x_i − E_q[x])/Σ_i a_i`
/// exactly; to first order the denominator is its expectation, so the variance is
/// `Σ_i a_i² (x_i − E_q[x])²/(Σ_i a_i)² ≈ Σ_i w_i² (x_i − x̄)²` (the usual variance estimate
/// of self-normalized importance sampling; Owen, *Monte Carlo theory, methods and examples*,
/// ch. 9). For a weighted variance pass `x_i = (u_i − ū)²`: centring at the estimated `ū`
/// changes the estimator only at second order. With `w_i = 1/N` this is `s/√N`.
pub(crate) fn weighted_mean_se(w: &[f64], x: impl Fn(usize) -> f64) -> (f64, f64) {
    let mean: f64 = w.iter().enumerate().map(|(i, wi)| wi * x(i)).sum();
    let var: f64 = w
        .iter()
        .enumerate()
        .filter(|(_, wi)| **wi > 0.0)
        .map(|(i, wi)| (wi * (x(i) - mean)).powi(2))
        .sum();
    (mean, var.sqrt())
}

/// `max_k |measured_k − expected_k| / se_k` over `(measured, expected, se)` triples; a NaN
/// z-score (a NaN estimate, or `0/0`) counts as infinite, so it fails every bound.
pub(crate) fn max_z(checks: impl IntoIterator<Item = (f64, f64, f64)>) -> f64 {
    checks
        .into_iter()
        .map(|(m, e, se)| {
            let z = (m - e).abs() / se;
            if z.is_nan() { f64::INFINITY } else { z }
        })
        .fold(0.0, f64::max)
}

/// `n` plans drawn from `f` (sample `i` from the stream `sample_rng(seed, 0, 0, i)`),
/// row-major `n x d`.
pub(crate) fn sample_set(f: &dyn Proposal, n: usize, seed: u64) -> Vec<f64> {
    let d = f.dim();
    let mut samples = vec![0.0; n * d];
    for (i, u) in samples.chunks_exact_mut(d).enumerate() {
        f.sample(&mut sample_rng(seed, 0, 0, i as u64), u);
    }
    samples
}

/// The cost of every row (`d` entries) of `samples`.
pub(crate) fn costs_of(samples: &[f64], d: usize, cost: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    samples.chunks_exact(d).map(cost).collect()
}

/// Softmax of `−J/λ`, shifted by the lowest cost.
pub(crate) fn weights_from_costs(costs: &[f64], lambda: f64) -> Vec<f64> {
    let min = costs.iter().copied().fold(f64::INFINITY, f64::min);
    let e: Vec<f64> = costs.iter().map(|c| (-(c - min) / lambda).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// `n` samples of `f` (seeded as in [`sample_set`]) and their planner weights
/// ([`compute_weights`] at the fixed temperature `λ`) under `cost`.
pub(crate) fn weighted_sample_set(
    f: &dyn Proposal,
    n: usize,
    seed: u64,
    lambda: f64,
    cost: impl Fn(&[f64]) -> f64,
) -> (Vec<f64>, Vec<f64>) {
    let samples = sample_set(f, n, seed);
    let costs = costs_of(&samples, f.dim(), cost);
    let mut w = vec![0.0; n];
    compute_weights(&costs, Temperature::Fixed(lambda), &mut w);
    (samples, w)
}

/// One EM step from `f`: a clone fitted to the weighted samples and moved to the result.
pub(crate) fn em_step<F: Proposal + Clone>(f: &F, samples: &[f64], weights: &[f64]) -> F {
    let mut g = f.clone();
    let mut theta = vec![0.0; f.params().len()];
    g.fit(samples, weights, &mut theta);
    g.set_params(&theta).unwrap();
    g
}

/// `(L̂(θ⁺; θ_k) − L̂(θ_k; θ_k), Q̂(θ⁺) − Q̂(θ_k))` on the weighted samples:
/// `log Σ_i w_i p_new(U_i)/p_old(U_i)` and `Σ_i w_i log(p_new(U_i)/p_old(U_i))`, over the
/// samples with positive weight (the first by log-sum-exp).
pub(crate) fn increase_gains(
    old: &dyn Proposal,
    new: &dyn Proposal,
    samples: &[f64],
    weights: &[f64],
) -> (f64, f64) {
    let d = old.dim();
    let r: Vec<f64> = samples
        .chunks_exact(d)
        .map(|u| new.log_prob(u).unwrap() - old.log_prob(u).unwrap())
        .collect();
    let pos = || weights.iter().zip(&r).filter(|(w, _)| **w > 0.0);
    let q_gain: f64 = pos().map(|(w, r)| w * r).sum();
    let max = pos().map(|(_, r)| *r).fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = pos().map(|(w, r)| w * (r - max).exp()).sum();
    (max + s.ln(), q_gain)
}

/// The measured quantities of H4.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Increase {
    /// `ΔL̂ = log Σ_i w_i r_i`, printed only: `ΔL̂ ≥ ΔQ̂` is Jensen's inequality, true for any
    /// weights and any `θ⁺` (docs/theory.md §C.2), so it is never asserted.
    pub(crate) l_gain: f64,
    pub(crate) q_gain: f64,
    pub(crate) kl: f64,
    /// `|ΔQ̂ − KL| / KL`.
    pub(crate) rel: f64,
}

/// H4 for an exact (unregularized) EM step `old → new` on the weighted samples:
/// `KL(p_new ‖ p_old) > 0` and `ΔQ̂ == KL` within 1e-8 relative (this ties `fit`, `log_prob`
/// and `kl` together: a wrong moment match breaks it, docs/theory.md §C.2). Prints and returns
/// the measured values; the messages give them next to the tolerances. `ΔL̂` is printed for
/// information only (Jensen: `ΔL̂ ≥ ΔQ̂` for any input, so not evidence).
pub(crate) fn assert_sufficient_increase(
    label: &str,
    old: &dyn Proposal,
    new: &dyn Proposal,
    samples: &[f64],
    weights: &[f64],
) -> Increase {
    let (l_gain, q_gain) = increase_gains(old, new, samples, weights);
    let kl = new.kl(old).unwrap_or(f64::NAN);
    let rel = (q_gain - kl).abs() / kl.abs().max(1e-300);
    println!(
        "{label}: ΔQ̂ {q_gain:.6}, KL {kl:.6}, |ΔQ̂ − KL|/KL {rel:.2e} (tol {KL_REL_TOL:e}); ΔL̂ {l_gain:.6} (not asserted)"
    );
    assert!(
        kl > 0.0 && rel <= KL_REL_TOL,
        "{label}: Q gap {q_gain} vs KL {kl}: |ΔQ̂ − KL|/KL = {rel:e} (tol {KL_REL_TOL:e})"
    );
    Increase {
        l_gain,
        q_gain,
        kl,
        rel,
    }
}

/// The closed forms of EM on a Gaussian and a quadratic cost that the family tests compare
/// with (the full set, with its own checks, is the `mppi-theory` crate).
pub(crate) mod theory {
    use nalgebra::{DMatrix, DVector};

    /// `J(U) = ½ (U − u*)ᵀ H (U − u*)`.
    pub(crate) struct Quadratic {
        pub h: DMatrix<f64>,
        pub u_star: DVector<f64>,
    }

    impl Quadratic {
        pub(crate) fn new(
            h: DMatrix<f64>,
            u_star: DVector<f64>,
            _offset: f64,
        ) -> Result<Self, &'static str> {
            Ok(Quadratic { h, u_star })
        }
    }

    /// `Σ_post = (Σ⁻¹ + H/λ)⁻¹`.
    pub(crate) fn posterior_covariance(
        sigma: &DMatrix<f64>,
        h: &DMatrix<f64>,
        lambda: f64,
    ) -> Result<DMatrix<f64>, &'static str> {
        let inv = sigma.clone().try_inverse().ok_or("singular Σ")?;
        (inv + h / lambda).try_inverse().ok_or("no posterior")
    }

    /// `μ⁺ = Σ_post (Σ⁻¹ μ + H u*/λ)`.
    pub(crate) fn exact_em_step(
        mu: &DVector<f64>,
        sigma: &DMatrix<f64>,
        quad: &Quadratic,
        lambda: f64,
    ) -> Result<DVector<f64>, &'static str> {
        let post = posterior_covariance(sigma, &quad.h, lambda)?;
        let inv = sigma.clone().try_inverse().ok_or("singular Σ")?;
        Ok(post * (inv * mu + &quad.h * &quad.u_star / lambda))
    }
}

/// Max `|t_j|` of the parameters fitted by `fitter` to `repeats` batches of `n` draws of
/// `sampler` (uniform weights, the streams of `check_fit_recovery`) against
/// `sampler.params()`: a fitter that does not invert the sampler's spread fails it.
pub(crate) fn recovery_t(
    sampler: &dyn Proposal,
    fitter: &dyn Proposal,
    n: usize,
    repeats: u64,
) -> f64 {
    use crate::rng::sample_rng;
    let d = sampler.dim();
    let truth = sampler.params();
    let w = vec![1.0 / n as f64; n];
    let mut u = vec![0.0; n * d];
    let mut fits = Vec::new();
    for r in 0..repeats {
        for (i, row) in u.chunks_exact_mut(d).enumerate() {
            sampler.sample(&mut sample_rng(5, 1_000 + r, 0, i as u64), row);
        }
        let mut theta = vec![0.0; truth.len()];
        fitter.clone_box().fit(&u, &w, &mut theta);
        fits.push(theta);
    }
    let rf = repeats as f64;
    (0..truth.len())
        .map(|j| {
            let mean = fits.iter().map(|t| t[j]).sum::<f64>() / rf;
            let var = fits.iter().map(|t| (t[j] - mean).powi(2)).sum::<f64>() / (rf - 1.0);
            (mean - truth[j]).abs() / (var / rf).sqrt()
        })
        .fold(0.0, f64::max)
}

/// The non-uniform spread of the spread tests, `s_t = 0.5 + 0.25 (t mod 3)`.
pub(crate) fn test_spread(horizon: usize) -> Vec<f64> {
    (0..horizon).map(|t| 0.5 + 0.25 * (t % 3) as f64).collect()
}

/// A clone of `f` prepared with the schedule's spread `s`.
pub(crate) fn prepared<P: Proposal + Clone>(f: &P, s: &[f64]) -> P {
    let mut g = f.clone();
    let ctx = super::Context {
        spread: Some(s),
        ..super::Context::open_loop(0, 0, 1)
    };
    g.prepare(&ctx).unwrap();
    g
}
