//! (c) Full-covariance EM is `O(1/k)`, fixed-covariance EM linear.

use super::*;

/// Result of [`full_covariance`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FullCovResult {
    /// Temperature.
    pub lambda: f64,
    /// `(k, ‖e_k‖)` of exact full-covariance EM (the closed form `(I + kΣ₀H/λ)⁻¹ e₀`).
    pub full_exact: Points,
    /// `(k, ‖A^k e₀‖)` of exact fixed-covariance EM.
    pub fixed_exact: Points,
    /// `(k, ‖e_0‖ / (1 + k ν_min))`-style `1/k` reference: `(k, c/k)` with
    /// `c = ‖λ (Σ₀H)⁻¹ e₀‖`, the large-`k` asymptote of the full-covariance error.
    pub one_over_k: Points,
    /// `(k, mean ‖e_k‖)` of the `gaussian_full` planner (empty if the family is unavailable).
    pub full_measured: Points,
    /// Why the planner part was skipped, if it was.
    pub skipped: Option<String>,
    /// Samples per planner iteration.
    pub samples: usize,
    /// The comparisons.
    pub checks: Vec<Check>,
}

/// (c) Full-covariance EM is `O(1/k)`, fixed-covariance EM linear (docs/theory.md §B.4.3, H11):
///
/// - exact full-covariance EM (posterior covariance as the next `Σ`) against the closed forms
///   `Σ_k = (Σ₀⁻¹ + kH/λ)⁻¹` and `e_k = (I + kΣ₀H/λ)⁻¹e₀` (`≤ 1e-10` relative, 200 steps);
/// - the `1/k` law: `k‖e_k‖ → ‖M⁻¹e₀‖`, `M = Σ₀H/λ`, at `k = 2000` within the exact
///   remainder: `k e_k − M⁻¹e₀ = −(M + I/k)⁻¹M⁻¹e₀/k`, so by the triangle inequality
///   `|k‖e_k‖ − ‖M⁻¹e₀‖| ≤ ‖(M + I/k)⁻¹M⁻¹e₀‖/k` (plus `1e-9` relative for round-off);
/// - if `gaussian_full` is available (floors, prior and shrinkage off), the planner's mean over
///   runs of `‖e_k‖`, `k = 1..5`, is within `q·SE + β` of the closed form, `SE` the runs' spread
///   over `√runs`, `q = t_{runs−1}(1 − 5·10⁻⁷)`, `β` the delta-method bias of a noisy norm
///   ([`norm_bias`]); the row shows the worst `k`. Quick: 12 runs of `N = 5000`; full: 30 runs
///   of `N = 20000`.
pub fn full_covariance(size: Size, seed: u64) -> Result<FullCovResult, ExperimentError> {
    const EXP: &str = "full_covariance";
    let problem = Problem::c4(seed)?;
    let d = problem.dim();
    let lambda = 1.0;
    let centered = problem.centered();
    let h = &problem.quad.h;
    let sigma0 = &problem.sigma;
    let l0 = sigma0
        .clone()
        .cholesky()
        .ok_or(TheoryError::NotPositiveDefinite { what: "Sigma" })?;
    let sigma0_inv = l0.inverse();
    let e0 = l0.l() * DVector::from_vec(vec![1.5, -1.0, 1.0, 0.5]);
    let a = theory::em_map_matrix(sigma0, h, lambda)?;
    let eye = DMatrix::<f64>::identity(d, d);

    let closed_sigma =
        |k: f64| -> Option<DMatrix<f64>> { (&sigma0_inv + h * (k / lambda)).try_inverse() };
    let closed_e = |k: f64| -> Option<DVector<f64>> {
        (&eye + sigma0 * h * (k / lambda))
            .try_inverse()
            .map(|m| m * &e0)
    };
    let singular = TheoryError::NotPositiveDefinite {
        what: "I + kΣ₀H/λ"
    };

    let steps = 200;
    let (mut sigma, mut e) = (sigma0.clone(), e0.clone());
    let (mut worst_sigma, mut worst_e): (f64, f64) = (0.0, 0.0);
    let mut full_exact = vec![(0.0, e0.norm())];
    let mut fixed_exact = vec![(0.0, e0.norm())];
    let mut ak = e0.clone();
    for k in 1..=2000usize {
        e = theory::exact_em_step(&e, &sigma, &centered, lambda)?;
        sigma = theory::posterior_covariance(&sigma, h, lambda)?;
        if k <= steps {
            let cs = closed_sigma(k as f64).ok_or(singular.clone())?;
            let ce = closed_e(k as f64).ok_or(singular.clone())?;
            worst_sigma = worst_sigma.max((&sigma - &cs).norm() / cs.norm());
            worst_e = worst_e.max((&e - &ce).norm() / ce.norm());
            ak = &a * ak;
            full_exact.push((k as f64, e.norm()));
            fixed_exact.push((k as f64, ak.norm()));
        }
    }
    let m_inv = (sigma0 * h / lambda)
        .try_inverse()
        .ok_or(singular.clone())?;
    let asymptote = (&m_inv * &e0).norm();
    let k_end = 2000.0;
    let remainder = (sigma0 * h / lambda + &eye / k_end)
        .try_inverse()
        .map(|r| (r * &m_inv * &e0).norm() / k_end)
        .ok_or(singular)?;
    let mut checks = vec![
        Check::new(
            EXP,
            "exact EM vs Σ_k = (Σ₀⁻¹ + kH/λ)⁻¹: max rel. error",
            format!("λ = {lambda}, k ≤ {steps}"),
            0.0,
            worst_sigma,
            Criterion::Abs,
            1e-10,
        ),
        Check::new(
            EXP,
            "exact EM vs e_k = (I + kΣ₀H/λ)⁻¹e₀: max rel. error",
            format!("λ = {lambda}, k ≤ {steps}"),
            0.0,
            worst_e,
            Criterion::Abs,
            1e-10,
        ),
        Check::new(
            EXP,
            "O(1/k): k·‖e_k‖ → ‖λ(Σ₀H)⁻¹e₀‖",
            "k = 2000",
            asymptote,
            k_end * e.norm(),
            Criterion::Abs,
            remainder + 1e-9 * asymptote,
        )
        .derived("exact remainder ‖(M + I/k)⁻¹M⁻¹e₀‖/k"),
    ];
    let one_over_k = (1..=steps)
        .map(|k| (k as f64, asymptote / k as f64))
        .collect();

    // the gaussian_full planner
    let samples = size.pick(5_000, 20_000);
    let reps = size.pick(12, 30);
    let mc_steps = 5;
    let runs: Result<Vec<Trajectory>, ExperimentError> = (0..reps)
        .into_par_iter()
        .map(|r| {
            let mut planner =
                problem.planner(lambda, samples, rep_seed(seed, 5, 0, r as u64), |c| {
                    c.proposal = c.proposal.clone().into_kind(ProposalKind::GaussianFull);
                    exact_mstep(&mut c.proposal);
                })?;
            problem.trajectory(&mut planner, &e0, mc_steps)
        })
        .collect();
    let (full_measured, skipped) = match runs {
        Ok(runs) => {
            // per k: the mean over runs of ‖e_k‖ against the closed form, the worst k shown
            let mut worst: Option<(usize, f64, f64, String)> = None;
            let mut worst_excess = f64::NEG_INFINITY;
            for k in 1..=mc_steps {
                let norms: Vec<f64> = runs.iter().map(|t| t.norms[k]).collect();
                let errors: Vec<&DVector<f64>> = runs.iter().map(|t| &t.errors[k]).collect();
                let (mean, tol, basis) = rep_tolerance(&norms, norm_bias(&errors));
                let excess = (mean - full_exact[k].1).abs() - tol;
                if excess > worst_excess || worst.is_none() {
                    worst_excess = excess;
                    worst = Some((k, mean, tol, basis));
                }
            }
            if let Some((k, mean, tol, basis)) = worst {
                checks.push(
                    Check::new(
                        EXP,
                        format!("gaussian_full planner: mean ‖e_k‖ vs closed form (worst k = {k} of 1..{mc_steps})"),
                        format!("N = {samples}, floors off"),
                        full_exact[k].1,
                        mean,
                        Criterion::Abs,
                        tol,
                    )
                    .derived(basis),
                );
            }
            let norms: Vec<Vec<f64>> = runs.into_iter().map(|t| t.norms).collect();
            (indexed(&mean_series(&norms)), None)
        }
        Err(e) => (vec![], Some(e.to_string())),
    };
    Ok(FullCovResult {
        lambda,
        full_exact,
        fixed_exact,
        one_over_k,
        full_measured,
        skipped,
        samples,
        checks,
    })
}
