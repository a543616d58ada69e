//! Negative controls: proposals with a deliberately wrong M-step, which the theory checks of
//! `mppi::testing::theory` (and the planner's full diagnostics) must reject. If one of these
//! tests fails, a check has stopped being able to fail.
//!
//! Each control wraps a correct family (`GaussianDiag` or `GaussianFixed`, exact EM: no floor,
//! no prior) and changes only what `fit` returns:
//!
//! | control | fit returns | rejected by |
//! | --- | --- | --- |
//! | `stale` | the old parameters | `KL > 0` (fixed samples, fresh samples, planner) |
//! | `variance ×1.1`, `×1.05` | the variances inflated | `ΔQ̂ = KL`, unbiased recovery, planner gap |
//! | `mean +5% σ` | the mean shifted by 5% of the standard deviation | `ΔQ̂ = KL`, unbiased recovery, planner gap |
//! | `reversed` | `θ_k − (θ_EM − θ_k)` | `ΔQ̂ = KL`, `L(θ⁺) − L(θ_k) ≥ KL` on fresh samples |
//!
//! The correct family passes the same calls first, so each failure is the control's.

use std::fmt;
use std::ops::ControlFlow;

mod common;
use common::Refit;

use mppi::proposal::{GaussianDiag, GaussianFixed, Proposal};
use mppi::rng::sample_rng;
use mppi::testing::theory::{
    IncreaseSettings, MStep, RECOVERY_T, check_em_step, check_fit_recovery,
    check_population_increase,
};
use mppi::weights::{Temperature, compute_weights};
use mppi::{
    DiagnosticsLevel, FnObjective, IterStats, MppiConfig, Observer, Planner, Stages,
    WeightingConfig,
};

/// What a control does to the M-step's result.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bias {
    /// Return `θ_k`.
    Stale,
    /// Multiply every variance by the factor.
    Variance(f64),
    /// Add this fraction of the standard deviation to every mean.
    Mean(f64),
    /// `θ_k − (θ_EM − θ_k)`.
    Reversed,
}

/// Parameter layout of the wrapped family: `μ` (`d` entries), then for `GaussianDiag` the
/// second moments `E[u²] = s² + μ²` (`d` entries).
trait Layout: Proposal + Clone {
    /// Per-coordinate variance of the current parameters.
    fn variances(&self) -> Vec<f64>;
    /// Whether the parameters include the second moments.
    fn adapts_variance(&self) -> bool;
}

impl Layout for GaussianDiag {
    fn variances(&self) -> Vec<f64> {
        self.variance().to_vec()
    }
    fn adapts_variance(&self) -> bool {
        true
    }
}

impl Layout for GaussianFixed {
    fn variances(&self) -> Vec<f64> {
        // Σ_ii = Σ_k L_ik² from the row-major Cholesky factor
        let m = self.control_dim();
        let l = self.noise().cholesky();
        (0..self.dim())
            .map(|j| l[(j % m) * m..(j % m + 1) * m].iter().map(|v| v * v).sum())
            .collect()
    }
    fn adapts_variance(&self) -> bool {
        false
    }
}

/// A correct family whose `fit` is wrong in one way.
fn biased<P: Layout + fmt::Debug>(inner: P, bias: Bias) -> Refit<P> {
    Refit::new(inner, move |old: &P, out: &mut [f64], _| {
        let d = old.dim();
        match bias {
            Bias::Stale => out.copy_from_slice(old.params()),
            Bias::Reversed => {
                for (o, k) in out.iter_mut().zip(old.params()) {
                    *o = 2.0 * k - *o;
                }
            }
            Bias::Variance(factor) => {
                assert!(old.adapts_variance(), "no variance to bias");
                let (mu, second) = out.split_at_mut(d);
                for (s, m) in second.iter_mut().zip(mu.iter()) {
                    *s = m * m + factor * (*s - m * m);
                }
            }
            Bias::Mean(fraction) => {
                // the fitted standard deviation when the family adapts it, else the fixed one
                let adapts = old.adapts_variance();
                let var: Vec<f64> = if adapts {
                    (0..d).map(|j| out[d + j] - out[j] * out[j]).collect()
                } else {
                    old.variances()
                };
                for j in 0..d {
                    let before = out[j];
                    out[j] += fraction * var[j].sqrt();
                    if adapts {
                        // keep the variance: E[u²] follows the mean
                        out[d + j] += out[j] * out[j] - before * before;
                    }
                }
            }
        }
    })
}

const T: usize = 5;
const M: usize = 2;
const D: usize = T * M;

/// A diagonal Gaussian away from its initial spread (variances 0.2 and 0.35, mean 0.1·j).
fn diag() -> GaussianDiag {
    let mut p = GaussianDiag::new(
        T,
        M,
        &[0.3, 0.0, 0.0, 0.3],
        &[-4.0; M],
        &[4.0; M],
        1e-9,
        1e9,
        0.0,
    )
    .unwrap();
    let mut theta = vec![0.0; 2 * D];
    for j in 0..D {
        let mu = 0.1 * j as f64 - 0.3;
        let var = if j % 2 == 0 { 0.2 } else { 0.35 };
        theta[j] = mu;
        theta[D + j] = var + mu * mu;
    }
    p.set_params(&theta).unwrap();
    p
}

fn fixed() -> GaussianFixed {
    let mut p = GaussianFixed::new(T, M, &[0.25, 0.05, 0.05, 0.3], &[-4.0; M], &[4.0; M]).unwrap();
    let plan: Vec<f64> = (0..D).map(|j| 0.05 * j as f64 - 0.2).collect();
    p.set_plan(&plan).unwrap();
    p
}

fn cost(u: &[f64]) -> f64 {
    u.iter()
        .enumerate()
        .map(|(j, v)| (v - (0.4 * (0.7 * j as f64).cos() - 0.1)).powi(2))
        .sum()
}

/// 400 weighted draws of `p` under [`cost`] at `λ = 1`.
fn weighted(p: &dyn Proposal) -> (Vec<f64>, Vec<f64>) {
    let n = 400;
    let mut u = vec![0.0; n * D];
    for (i, row) in u.chunks_exact_mut(D).enumerate() {
        p.sample(&mut sample_rng(12, 0, 0, i as u64), row);
    }
    let costs: Vec<f64> = u.chunks_exact(D).map(cost).collect();
    let mut w = vec![0.0; n];
    compute_weights(&costs, Temperature::Fixed(1.0), &mut w);
    (u, w)
}

fn population(p: &dyn Proposal) -> Result<mppi::testing::theory::IncreaseReport, String> {
    let settings = IncreaseSettings {
        lambda: 1.0,
        fit_samples: 20_000,
        eval_samples: 10_000,
        repeats: 20,
        z: 4.0,
        seed: 31,
    };
    check_population_increase(p, &cost, &settings).map_err(|e| e.to_string())
}

fn recovery(p: &dyn Proposal) -> Result<f64, String> {
    check_fit_recovery(p, 5_000, 30, 5, RECOVERY_T)
        .map(|r| r.max_t)
        .map_err(|e| e.to_string())
}

fn em_step(p: &dyn Proposal) -> Result<f64, String> {
    let (u, w) = weighted(p);
    check_em_step(p, &u, &w, MStep::Exact)
        .map(|r| r.gap / r.kl)
        .map_err(|e| e.to_string())
}

/// Assert that `result` is an error mentioning `property`, and print it.
fn rejected<T: std::fmt::Debug>(
    control: &str,
    check: &str,
    result: Result<T, String>,
    property: &str,
) {
    match result {
        Ok(v) => {
            panic!("{control}: {check} accepted a wrong M-step ({v:?}): the check cannot fail")
        }
        Err(e) => {
            assert!(
                e.contains(property),
                "{control}: {check} failed for another reason: {e}"
            );
            println!("[control] {control:<16} {check:<22} rejected: {e}");
        }
    }
}

#[test]
fn the_correct_families_pass_every_check() {
    for p in [Box::new(diag()) as Box<dyn Proposal>, Box::new(fixed())] {
        let name = p.name();
        let rel = em_step(p.as_ref()).unwrap();
        let inc = population(p.as_ref()).unwrap();
        let t = recovery(p.as_ref()).unwrap();
        println!(
            "[control] correct {name:<14} |ΔQ̂ − KL|/KL {rel:.1e}; L gain {:.4} ± {:.4} ≥ KL {:.4}; recovery max |t| {t:.2}",
            inc.gain, inc.gain_se, inc.kl
        );
    }
}

#[test]
fn a_stale_fit_is_rejected() {
    let p = biased(diag(), Bias::Stale);
    rejected("stale", "M-step identity", em_step(&p), "KL(p⁺ ‖ p_k) > 0");
    rejected(
        "stale",
        "population increase",
        population(&p),
        "KL(p⁺ ‖ p_k) > 0",
    );
}

#[test]
fn inflated_variances_are_rejected() {
    for factor in [1.1, 1.05] {
        let p = biased(diag(), Bias::Variance(factor));
        let name = format!("variance ×{factor}");
        rejected(&name, "M-step identity", em_step(&p), "ΔQ̂ = KL");
        rejected(&name, "unbiased recovery", recovery(&p), "unbiased M-step");
    }
}

#[test]
fn shifted_means_are_rejected() {
    let diag = biased(diag(), Bias::Mean(0.05));
    rejected(
        "mean +5% σ diag",
        "M-step identity",
        em_step(&diag),
        "ΔQ̂ = KL",
    );
    rejected(
        "mean +5% σ diag",
        "unbiased recovery",
        recovery(&diag),
        "unbiased M-step",
    );
    let fixed = biased(fixed(), Bias::Mean(0.05));
    rejected("mean +5% σ", "M-step identity", em_step(&fixed), "ΔQ̂ = KL");
    rejected(
        "mean +5% σ",
        "unbiased recovery",
        recovery(&fixed),
        "unbiased M-step",
    );
}

#[test]
fn a_reversed_step_is_rejected() {
    let p = biased(fixed(), Bias::Reversed);
    rejected("reversed", "M-step identity", em_step(&p), "ΔQ̂ = KL");
    rejected(
        "reversed",
        "population increase",
        population(&p),
        "L(θ⁺) − L(θ_k) ≥ KL",
    );
}

/// The planner's full diagnostics see the same faults: the M-step gap `ΔQ̂ − KL` is 0 to
/// round-off for the correct family and far from it for the biased ones; a stale fit shows
/// `KL = 0` with costs that are not at a fixed point.
#[test]
fn the_planner_diagnostics_expose_a_wrong_mstep() {
    struct Worst(f64, f64);
    impl Observer for Worst {
        fn on_iteration(&mut self, s: &IterStats, _p: &Planner) -> ControlFlow<()> {
            self.0 = self.0.max(s.mstep_gap.abs() / s.kl_step.abs().max(1e-300));
            self.1 = self.1.max(s.kl_step);
            ControlFlow::Continue(())
        }
    }
    let cfg = MppiConfig {
        samples: 400,
        horizon: T,
        iterations: 3,
        diagnostics: DiagnosticsLevel::Full,
        weighting: WeightingConfig::fixed(1.0),
        ..MppiConfig::default()
    };
    let run = |p: Box<dyn Proposal>| -> (f64, f64) {
        let mut planner =
            Planner::with_stages(&cfg, Stages::with_proposal(&cfg, p).unwrap()).unwrap();
        let mut worst = Worst(0.0, 0.0);
        planner
            .optimize(&FnObjective::new(D, cost), 0, &mut worst)
            .unwrap();
        (worst.0, worst.1)
    };
    let (gap, _) = run(Box::new(diag()));
    println!("[control] planner, correct diag: max |ΔQ̂ − KL|/KL {gap:.1e} (tol 1e-8)");
    assert!(gap <= 1e-8);
    for bias in [Bias::Variance(1.05), Bias::Mean(0.05)] {
        let (gap, _) = run(Box::new(biased(diag(), bias)));
        println!("[control] planner, {bias:?}: max |ΔQ̂ − KL|/KL {gap:.2e} (must exceed 1e-8)");
        assert!(
            gap > 1e-4,
            "{bias:?}: the planner's M-step gap {gap} did not expose the bias"
        );
    }
    let (_, kl) = run(Box::new(biased(diag(), Bias::Stale)));
    println!("[control] planner, stale: max KL step {kl:e}");
    assert_eq!(kl, 0.0, "a stale fit must show a zero KL step");
}
