//! (e) Expected versus measured `ESS/N`.

use super::*;

/// One offset of the ESS experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EssPoint {
    /// Temperature.
    pub lambda: f64,
    /// `‖μ − u*‖_{Σ⁻¹}`.
    pub offset: f64,
    /// `E[w]²/E[w²]`.
    pub expected: f64,
    /// Mean over repetitions of `ESS/N`.
    pub measured: f64,
    /// Standard deviation over repetitions.
    pub sd: f64,
}

/// Result of [`ess`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EssResult {
    /// Samples per iteration.
    pub samples: usize,
    /// Repetitions per point.
    pub repetitions: usize,
    /// One entry per `(λ, offset)`.
    pub points: Vec<EssPoint>,
    /// The comparisons.
    pub checks: Vec<Check>,
}

/// (e) Expected versus measured `ESS/N` (docs/theory.md §C.4 item 4, H20) on the C.4 quadratic for
/// `λ ∈ {0.5, 1, 2}` and offsets `‖μ − u*‖_{Σ⁻¹} ∈ {0, 1, 2}` along a fixed random direction:
/// the mean over repetitions is within `q·SE` of `E[w]²/E[w²] + β`, `SE` the repetitions'
/// spread over `√reps`, `q = t_{reps−1}(1 − 5·10⁻⁷)` (a `10⁻⁶` false-failure probability) and
/// `β` the delta-method bias of one batch's `ESS/N` ([`theory::ess_fraction_delta`]). Quick:
/// 20 repetitions of `N = 2000`; full: 50 of `N = 10⁴`.
pub fn ess(size: Size, seed: u64) -> Result<EssResult, ExperimentError> {
    const EXP: &str = "ess";
    let problem = Problem::c4(seed)?;
    let d = problem.dim();
    let samples = size.pick(2_000, 10_000);
    let reps = size.pick(20, 50);
    let l = problem
        .sigma
        .clone()
        .cholesky()
        .ok_or(TheoryError::NotPositiveDefinite { what: "Sigma" })?
        .l();
    let mut rng = SampleRng::seed_from_u64(rep_seed(seed, 7, 0, 0));
    let z = DVector::from_fn(d, |_, _| rng.normal());
    let direction = &l * (&z / z.norm()); // unit Σ⁻¹-norm
    let mut settings = vec![];
    for &lambda in &[0.5, 1.0, 2.0] {
        for &offset in &[0.0, 1.0, 2.0] {
            settings.push((lambda, offset));
        }
    }
    let measured: Vec<Vec<f64>> = settings
        .par_iter()
        .enumerate()
        .map(|(i, &(lambda, offset))| {
            let e = offset * &direction;
            let fractions: Vec<f64> = (0..reps)
                .map(|r| {
                    let mut planner = problem.planner(
                        lambda,
                        samples,
                        rep_seed(seed, 8, i as u64, r as u64),
                        |_| {},
                    )?;
                    let t = problem.trajectory(&mut planner, &e, 1)?;
                    Ok(t.stats[0].weights.ess / samples as f64)
                })
                .collect::<Result<_, ExperimentError>>()?;
            Ok(fractions)
        })
        .collect::<Result<_, ExperimentError>>()?;
    let mut points = vec![];
    let mut checks = vec![];
    for ((lambda, offset), fractions) in settings.into_iter().zip(measured) {
        let mu = &problem.quad.u_star + offset * &direction;
        let expected = theory::expected_ess_fraction(&mu, &problem.sigma, &problem.quad, lambda)?;
        let (bias, _) =
            theory::ess_fraction_delta(&mu, &problem.sigma, &problem.quad, lambda, samples)?;
        let (mean, sd, _) = stats::mean_sd_se(&fractions);
        let (_, tol, basis) = rep_tolerance(&fractions, 0.0);
        checks.push(
            Check::new(
                EXP,
                "mean ESS/N vs E[w]²/E[w²] + bias(N)",
                format!("λ = {lambda}, ‖e‖_Σ⁻¹ = {offset}"),
                expected + bias,
                mean,
                Criterion::Abs,
                tol,
            )
            .derived(basis),
        );
        points.push(EssPoint {
            lambda,
            offset,
            expected,
            measured: mean,
            sd,
        });
    }
    Ok(EssResult {
        samples,
        repetitions: reps,
        points,
        checks,
    })
}
