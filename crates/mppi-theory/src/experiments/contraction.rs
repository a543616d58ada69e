//! (a) Contraction rate on the C.4 quadratic, theory versus planner.

use super::*;

/// One temperature of the contraction experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContractionRun {
    /// Temperature `λ`.
    pub lambda: f64,
    /// `ρ = ρ((I + ΣH/λ)⁻¹)`.
    pub rate_theory: f64,
    /// Mean over repetitions of the geometric-mean rate `(‖e_K‖/‖e_0‖)^{1/K}`.
    pub rate_measured: f64,
    /// Its standard deviation over repetitions.
    pub rate_sd: f64,
    /// Iterations `K` used for the rate (those with `‖e_k‖ ≥ 10·floor`).
    pub window: usize,
    /// Mean ESS over the iterations.
    pub mean_ess: f64,
    /// `(k, ρ^k ‖e_0‖)`.
    pub theory: Points,
    /// `(k, mean over repetitions of ‖e_k‖)`.
    pub measured: Points,
}

/// Result of [`contraction`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContractionResult {
    /// Samples per iteration.
    pub samples: usize,
    /// Repetitions per temperature.
    pub repetitions: usize,
    /// One entry per temperature.
    pub runs: Vec<ContractionRun>,
    /// The comparisons.
    pub checks: Vec<Check>,
}

/// (a) Contraction rate on the C.4 quadratic, theory versus planner (docs/theory.md §C.4 items
/// 1–3) for `λ ∈ {0.5, 1, 2}`:
///
/// - exact map: `max_k ‖e_k − A^k e_0‖/‖e_0‖ ≤ 1e-10` over 50 exact EM steps (round-off);
/// - trajectories from `e_0 = 3v/‖v‖_{Σ⁻¹}` along the slowest mode `v`: the mean over runs of
///   the geometric-mean rate over the iterations above 10× the noise floor is within
///   `q·SE + β` of `ρ`, `SE` the runs' spread over `√runs`, `q = t_{runs−1}(1 − 5·10⁻⁷)` (a
///   `10⁻⁶` false-failure probability) and `β` the delta-method bias of the rate of a noisy
///   norm ([`rate_bias`], from the runs' covariance of `e_K`);
/// - at `λ = 1`, one-step regression `e⁺ = Â e` over random offsets: the Wald statistic of
///   `Â − A` with its HC1 covariance is below Hotelling's `T²` limit for `10⁻⁶`
///   ([`stats::LinearFit`], [`stats::wald_limit`]).
///
/// Quick: `N = 5000`, 16 runs, 200 offsets of `N = 2000`; full: `N = 20000`, 30 runs, 400
/// offsets of `N = 20000`.
pub fn contraction(size: Size, seed: u64) -> Result<ContractionResult, ExperimentError> {
    const EXP: &str = "contraction";
    let problem = Problem::c4(seed)?;
    let d = problem.dim();
    let samples = size.pick(5_000, 20_000);
    let reps = size.pick(16, 30);
    let iterations = size.pick(6, 8);
    let mut runs = vec![];
    let mut checks = vec![];
    for (li, &lambda) in [0.5, 1.0, 2.0].iter().enumerate() {
        let a = theory::em_map_matrix(&problem.sigma, &problem.quad.h, lambda)?;
        let mode = theory::slowest_mode(&problem.sigma, &problem.quad.h, lambda)?;
        let rho = mode.rate;
        let e0 = 3.0 * &mode.direction / problem.sigma_norm(&mode.direction);

        // exact map versus A^k
        let centered = problem.centered();
        let mut e = e0.clone();
        let mut ak = e0.clone();
        let mut worst: f64 = 0.0;
        for _ in 0..50 {
            e = theory::exact_em_step(&e, &problem.sigma, &centered, lambda)?;
            ak = &a * ak;
            worst = worst.max((&e - &ak).norm() / e0.norm());
        }
        checks.push(Check::new(
            EXP,
            "exact EM map: max_k ‖e_k − A^k e_0‖/‖e_0‖ (50 steps)",
            format!("λ = {lambda}"),
            0.0,
            worst,
            Criterion::Abs,
            1e-10,
        ));

        // Monte-Carlo trajectories along the slowest mode
        let trajectories: Vec<Trajectory> = (0..reps)
            .into_par_iter()
            .map(|r| {
                let mut planner = problem.planner(
                    lambda,
                    samples,
                    rep_seed(seed, 1, li as u64, r as u64),
                    |_| {},
                )?;
                problem.trajectory(&mut planner, &e0, iterations)
            })
            .collect::<Result<_, ExperimentError>>()?;
        let mean_ess = trajectories
            .iter()
            .map(|t| t.stats.iter().map(|s| s.weights.ess).sum::<f64>() / iterations as f64)
            .sum::<f64>()
            / reps as f64;
        let post = theory::posterior_covariance(&problem.sigma, &problem.quad.h, lambda)?;
        let floor = noise_floor(&post, &mode.direction, mean_ess);
        let window = (1..=iterations)
            .take_while(|&k| rho.powi(k as i32) * e0.norm() >= 10.0 * floor)
            .last()
            .unwrap_or(1);
        let rates: Vec<f64> = trajectories
            .iter()
            .map(|t| (t.norms[window] / t.norms[0]).powf(1.0 / window as f64))
            .collect();
        let bias = rate_bias(&trajectories, window, rho);
        let (rate, tol, basis) = rep_tolerance(&rates, bias);
        checks.push(
            Check::new(
                EXP,
                format!("rate ρ: {window}-step geometric mean along the slowest mode"),
                format!("λ = {lambda}, N = {samples}"),
                rho,
                rate,
                Criterion::Abs,
                tol,
            )
            .derived(basis),
        );
        let norms: Vec<Vec<f64>> = trajectories.into_iter().map(|t| t.norms).collect();
        runs.push(ContractionRun {
            lambda,
            rate_theory: rho,
            rate_measured: rate,
            rate_sd: stats::mean_sd_se(&rates).1,
            window,
            mean_ess,
            theory: (0..=iterations)
                .map(|k| (k as f64, rho.powi(k as i32) * e0.norm()))
                .collect(),
            measured: indexed(&mean_series(&norms)),
        });
    }

    // one-step regression at λ = 1
    let lambda = 1.0;
    let offsets = size.pick(200, 400);
    let reg_samples = size.pick(2_000, 20_000);
    let a = theory::em_map_matrix(&problem.sigma, &problem.quad.h, lambda)?;
    let l = problem
        .sigma
        .clone()
        .cholesky()
        .ok_or(TheoryError::NotPositiveDefinite { what: "Sigma" })?
        .l();
    let pairs: Vec<(DVector<f64>, DVector<f64>)> = (0..offsets)
        .into_par_iter()
        .map(|r| {
            let mut rng = SampleRng::seed_from_u64(rep_seed(seed, 2, 0, r as u64));
            let z = DVector::from_fn(d, |_, _| rng.normal());
            let e = &l * z;
            let mut planner =
                problem.planner(lambda, reg_samples, rep_seed(seed, 3, 0, r as u64), |_| {})?;
            let t = problem.trajectory(&mut planner, &e, 1)?;
            Ok((e, t.errors[1].clone()))
        })
        .collect::<Result<_, ExperimentError>>()?;
    let fit = stats::LinearFit::new(&pairs)
        .ok_or(TheoryError::NotPositiveDefinite { what: "regression" })?;
    checks.push(
        Check::new(
            EXP,
            "one-step regression: Wald statistic of Â − A (HC1 covariance)",
            format!(
                "λ = 1, N = {reg_samples}, {offsets} offsets; ‖Â − A‖_F/‖A‖_F = {}",
                short((&fit.a_hat - &a).norm() / a.norm())
            ),
            0.0,
            fit.wald_against(&a),
            Criterion::Abs,
            fit.limit(),
        )
        .derived(format!("T²_{} quantile for 1e-6", d * d)),
    );
    Ok(ContractionResult {
        samples,
        repetitions: reps,
        runs,
        checks,
    })
}
