//! (d) Over-relaxed and heavy-ball EM against docs/theory.md §D.3.

use super::*;

/// One step rule of the acceleration experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemeRun {
    /// `em`, `over_relaxed` or `heavy_ball`.
    pub scheme: String,
    /// Step size `α`.
    pub alpha: f64,
    /// Momentum `β`.
    pub beta: f64,
    /// The D.3 rate.
    pub rate_theory: f64,
    /// The rate of the exact-E-step trajectory from the planner's start over the planner's
    /// window (what the planner's rate is compared with).
    pub rate_exact: f64,
    /// The planner's rate over the same window (mean over runs).
    pub rate_measured: f64,
    /// `(k, ‖e_k‖)` with exact E-steps from the planner's start.
    pub exact: Points,
    /// `(k, mean ‖e_k‖)` of the planner.
    pub measured: Points,
    /// Iterations of the planner used for its rate.
    pub window: usize,
    /// Accelerated proposals the planner rejected (outside the domain).
    pub fell_back: usize,
}

/// Result of [`acceleration`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccelerationResult {
    /// Temperature.
    pub lambda: f64,
    /// Smallest eigenvalue `s_min` of the preconditioned Hessian `ν/(λ+ν)`.
    pub s_min: f64,
    /// Largest eigenvalue `s_max`.
    pub s_max: f64,
    /// Planner samples per iteration.
    pub samples: usize,
    /// One entry per step rule.
    pub runs: Vec<SchemeRun>,
    /// The comparisons.
    pub checks: Vec<Check>,
}

/// Exact iteration of `e ← e + α g(e) + β (e − e_prev)` with the exact EM displacement `g`
/// (`e_{−1} = e_0`); returns `e_k`, `k = 0..=steps`.
fn exact_errors(
    problem: &Problem,
    lambda: f64,
    e0: &DVector<f64>,
    alpha: f64,
    beta: f64,
    steps: usize,
) -> Result<Vec<DVector<f64>>, ExperimentError> {
    let centered = problem.centered();
    let (mut e, mut prev) = (e0.clone(), e0.clone());
    let mut errors = vec![e.clone()];
    for _ in 0..steps {
        let g = theory::natural_gradient(&e, &problem.sigma, &centered, lambda)?;
        let next = &e + alpha * g + beta * (&e - &prev);
        prev = std::mem::replace(&mut e, next);
        errors.push(e.clone());
    }
    Ok(errors)
}

/// [`exact_errors`] as norms `‖e_k‖`.
fn exact_scheme(
    problem: &Problem,
    lambda: f64,
    e0: &DVector<f64>,
    alpha: f64,
    beta: f64,
    steps: usize,
) -> Result<Vec<f64>, ExperimentError> {
    Ok(exact_errors(problem, lambda, e0, alpha, beta, steps)?
        .iter()
        .map(DVector::norm)
        .collect())
}

/// (d) Acceleration (docs/theory.md §D.3, H19) on the C.4 quadratic at `λ = 1`, with
/// `s_i = ν_i/(λ + ν_i)` from the eigenvalues `ν_i` of `Σ^{1/2}HΣ^{1/2}`:
///
/// | scheme | `α` | `β` | rate |
/// | --- | --- | --- | --- |
/// | EM | 1 | 0 | `1 − s_min` |
/// | over-relaxed | `2/(s_min + s_max)` | 0 | `(s_max − s_min)/(s_max + s_min)` |
/// | heavy ball | `4/(√s_max + √s_min)²` | `((√s_max − √s_min)/(√s_max + √s_min))²` | `(√κ − 1)/(√κ + 1)` |
///
/// Exact E-steps (deterministic, round-off tolerance `1e-10`): along an eigenvector `v_i` of
/// the EM map (`A v_i = (1 − s_i) v_i`) the iteration is scalar, so the D.3 rate is measured
/// exactly where it is attained. EM and over-relaxed EM from `v_min` (and, over-relaxed, from
/// `v_max`, the other mode at the same rate): every step multiplies the error by exactly
/// `|1 − α s|`, the D.3 rate. Heavy ball from `v_min` with `e_{−1} = e_0`: the recursion
/// `x_{k+1} = (1 + β − α s_min)x_k − βx_{k−1}` has the double root `r = √β` (critical damping,
/// which is what makes `r` the rate), so `‖e_k‖/‖e_0‖ = (1 + (1 − r)k) r^k` exactly; 60 steps.
/// EM and over-relaxed EM also from a generic start: in the `Σ⁻¹`-norm, where the map is
/// symmetric, no mode is slower, `‖e_k‖_{Σ⁻¹} ≤ r^k ‖e_0‖_{Σ⁻¹}`.
///
/// Planner (Monte Carlo, `acceleration` set, safeguard off so that the rule itself is
/// measured): from `3v/‖v‖_{Σ⁻¹}` along the slowest EM mode, the mean over runs of the
/// geometric-mean rate over the iterations above 10× the noise floor is within `q·SE + β` of the
/// exact-E-step trajectory's (`q = t_{runs−1}(1 − 5·10⁻⁷)`, `β` from [`rate_bias`]). Quick: 16
/// runs of `N = 5000`; full: 30 runs of `N = 20000`.
pub fn acceleration(size: Size, seed: u64) -> Result<AccelerationResult, ExperimentError> {
    const EXP: &str = "acceleration";
    let problem = Problem::c4(seed)?;
    let lambda = 1.0;
    let l = problem
        .sigma
        .clone()
        .cholesky()
        .ok_or(TheoryError::NotPositiveDefinite { what: "Sigma" })?
        .l();
    let eig = (l.transpose() * &problem.quad.h * &l).symmetric_eigen();
    let s: Vec<f64> = eig.eigenvalues.iter().map(|v| v / (lambda + v)).collect();
    let imin = (0..s.len())
        .min_by(|&i, &j| s[i].total_cmp(&s[j]))
        .unwrap_or(0);
    let imax = (0..s.len())
        .max_by(|&i, &j| s[i].total_cmp(&s[j]))
        .unwrap_or(0);
    let (s_min, s_max) = (s[imin], s[imax]);
    // eigenvectors of the EM map A = L B⁻¹ L⁻¹: L times those of LᵀHL
    let mode_vector = |i: usize| -> DVector<f64> { &l * eig.eigenvectors.column(i) };
    let (v_min, v_max) = (mode_vector(imin), mode_vector(imax));
    let (rmin, rmax) = (s_min.sqrt(), s_max.sqrt());
    let schemes = [
        ("em", 1.0, 0.0, 1.0 - s_min),
        (
            "over_relaxed",
            2.0 / (s_min + s_max),
            0.0,
            (s_max - s_min) / (s_max + s_min),
        ),
        (
            "heavy_ball",
            4.0 / (rmax + rmin).powi(2),
            ((rmax - rmin) / (rmax + rmin)).powi(2),
            (rmax / rmin - 1.0) / (rmax / rmin + 1.0),
        ),
    ];
    let mode = theory::slowest_mode(&problem.sigma, &problem.quad.h, lambda)?;
    let e0 = 3.0 * &mode.direction / problem.sigma_norm(&mode.direction);
    let generic = &l * DVector::from_vec(vec![1.0, -0.8, 0.6, 1.2]);
    let post = theory::posterior_covariance(&problem.sigma, &problem.quad.h, lambda)?;
    let samples = size.pick(5_000, 20_000);
    let reps = size.pick(16, 30);
    let iterations = size.pick(8, 10);
    let steps = 60;
    let mut runs = vec![];
    let mut checks = vec![];
    for (si, (name, alpha, beta, rate)) in schemes.into_iter().enumerate() {
        // exact E-steps along the modes where the rate is attained
        let predicted = |k: usize| -> f64 {
            let k = k as f64;
            if beta > 0.0 {
                (1.0 + (1.0 - rate) * k) * rate.powf(k)
            } else {
                rate.powf(k)
            }
        };
        let starts: Vec<&DVector<f64>> = if name == "over_relaxed" {
            vec![&v_min, &v_max]
        } else {
            vec![&v_min]
        };
        let mut worst: f64 = 0.0;
        for start in starts {
            let norms = exact_scheme(&problem, lambda, start, alpha, beta, steps)?;
            for (k, n) in norms.iter().enumerate() {
                worst = worst.max((n / norms[0] / predicted(k) - 1.0).abs());
            }
        }
        if beta == 0.0 {
            // no mode is slower: in the Σ⁻¹-norm, where the EM map is symmetric, every step
            // contracts a generic start by at least r (one-sided, round-off only)
            let errors = exact_errors(&problem, lambda, &generic, alpha, beta, steps)?;
            let n0 = problem.sigma_norm(&errors[0]);
            for (k, e) in errors.iter().enumerate() {
                worst = worst.max(problem.sigma_norm(e) / n0 / predicted(k) - 1.0);
            }
        }
        checks.push(Check::new(
            EXP,
            if beta > 0.0 {
                format!("{name}: exact E-steps along v_min vs (1 + (1−r)k)·r^k, r = D.3 rate")
            } else {
                format!("{name}: exact E-steps along the slowest mode(s) vs r^k, r = D.3 rate")
            },
            format!("α = {alpha:.3}, β = {beta:.3}, r = {rate:.5}, {steps} steps: max rel. error"),
            0.0,
            worst,
            Criterion::Abs,
            1e-10,
        ));

        // the planner with the same step rule
        let acceleration = match name {
            "over_relaxed" => Acceleration::OverRelaxed,
            "heavy_ball" => Acceleration::HeavyBall,
            _ => Acceleration::None,
        };
        let trajectories: Vec<Trajectory> = (0..reps)
            .into_par_iter()
            .map(|r| {
                let mut planner = problem.planner(
                    lambda,
                    samples,
                    rep_seed(seed, 6, si as u64, r as u64),
                    |c| {
                        c.update.acceleration = acceleration;
                        c.update.step_size = alpha;
                        c.update.momentum = beta;
                        c.update.safeguard = false;
                    },
                )?;
                problem.trajectory(&mut planner, &e0, iterations)
            })
            .collect::<Result<_, ExperimentError>>()?;
        let exact = exact_scheme(&problem, lambda, &e0, alpha, beta, iterations)?;
        let ess = trajectories
            .iter()
            .map(|t| t.stats[0].weights.ess)
            .sum::<f64>()
            / reps as f64;
        let floor = noise_floor(&post, &mode.direction, ess);
        let window = (1..=iterations)
            .take_while(|&k| exact[k] >= 10.0 * floor)
            .last()
            .unwrap_or(1);
        let window_rate = |n: &[f64]| (n[window] / n[0]).powf(1.0 / window as f64);
        let rates: Vec<f64> = trajectories.iter().map(|t| window_rate(&t.norms)).collect();
        let exact_rate = window_rate(&exact);
        let (mean, tol, basis) =
            rep_tolerance(&rates, rate_bias(&trajectories, window, exact_rate));
        checks.push(
            Check::new(
                EXP,
                format!("{name}: planner {window}-step rate vs exact E-steps"),
                format!("N = {samples}"),
                exact_rate,
                mean,
                Criterion::Abs,
                tol,
            )
            .derived(basis),
        );
        let norms: Vec<Vec<f64>> = trajectories.iter().map(|t| t.norms.clone()).collect();
        runs.push(SchemeRun {
            scheme: name.to_string(),
            alpha,
            beta,
            rate_theory: rate,
            rate_exact: exact_rate,
            rate_measured: mean,
            exact: indexed(&exact),
            measured: indexed(&mean_series(&norms)),
            window,
            fell_back: trajectories
                .iter()
                .map(|t| t.stats.iter().filter(|s| s.fell_back).count())
                .sum(),
        });
    }
    Ok(AccelerationResult {
        lambda,
        s_min,
        s_max,
        samples,
        runs,
        checks,
    })
}
