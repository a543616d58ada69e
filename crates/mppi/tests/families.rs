//! Proposal conformance suite and the docs/theory.md §H checks not covered by `tests/theory.rs`.
//!
//! One of the crate's integration-test binaries (with `stages.rs` and `precision.rs`). Every check prints its
//! measured value next to its tolerance (`cargo test -p mppi --test families -- --nocapture`).
//!
//! Part 1, conformance: a table of `(name, MppiConfig)` covering every `ProposalKind` (both
//! `covariance_block` values of `gaussian_full`), and checks that iterate over it: parameter
//! round trips and domain checks, sampling determinism and bounds, `log_prob`, M-step recovery
//! and zero-weight invariance, KL, shift, plan, `clone_box`, the empirical sufficient increase
//! (H4, on fixed samples and through the planner's full diagnostics), D.2 interpolation,
//! determinism across thread counts and NaN costs. A family that is not registered in
//! `proposal::build` yet is skipped with a printed note by every check, and makes
//! [`every_family_kind_is_available`] fail.
//!
//! Part 2, theory: the convergence checks H6, H10, H19 and H21 are in `tests/convergence.rs`.

use mppi::proposal::Proposal;
use mppi::rng::{BlockRng, sample_rng};
use mppi::testing::theory::{
    EM_IDENTITY_TOLERANCE, IncreaseSettings, MStep, RECOVERY_T, check_em_step, check_fit_recovery,
    check_population_increase,
};
use mppi::weights::{Temperature, compute_weights};
use mppi::{
    BLOCK_LANES, Cost, CovarianceBlock, DiagnosticsLevel, Dynamics, FnObjective, IterStats,
    MppiConfig, Observer, Planner, ProposalKind, RolloutObjective, ShiftFill,
};
use mppi::{ProposalConfig, WeightingConfig};

// =============================================================================================
// Part 1: conformance suite
// =============================================================================================

/// Horizon and control dimension of every conformance plan (`d = 10`).
const T: usize = 5;
const M: usize = 2;
const D: usize = T * M;

/// One row of the conformance table.
#[derive(Clone)]
struct Case {
    name: &'static str,
    cfg: MppiConfig,
}

fn base_config() -> MppiConfig {
    MppiConfig {
        samples: 256,
        horizon: T,
        iterations: 1,
        u_min: Some(vec![-4.0]),
        u_max: Some(vec![4.0]),
        seed: 11,
        proposal: ProposalConfig::gaussian(&[0.5]),
        weighting: WeightingConfig::fixed(1.0),
        ..MppiConfig::default()
    }
}

/// The conformance table: every family kind, with the keys it needs.
fn table() -> Vec<Case> {
    let b = base_config;
    vec![
        Case {
            name: "gaussian",
            cfg: b(),
        },
        Case {
            name: "gaussian_diag",
            cfg: MppiConfig {
                proposal: b().proposal.clone().into_kind(ProposalKind::GaussianDiag),
                ..b()
            },
        },
        Case {
            name: "gaussian_full(step)",
            cfg: MppiConfig {
                proposal: ProposalConfig {
                    covariance_block: Some(CovarianceBlock::Step),
                    ..b().proposal.clone().into_kind(ProposalKind::GaussianFull)
                },
                ..b()
            },
        },
        Case {
            name: "gaussian_full(sequence)",
            cfg: MppiConfig {
                proposal: ProposalConfig {
                    covariance_block: Some(CovarianceBlock::Sequence),
                    ..b().proposal.clone().into_kind(ProposalKind::GaussianFull)
                },
                ..b()
            },
        },
        Case {
            name: "colored",
            cfg: MppiConfig {
                proposal: ProposalConfig {
                    correlation: Some(0.8),
                    ..b().proposal.clone().into_kind(ProposalKind::Colored)
                },
                ..b()
            },
        },
        Case {
            name: "spline",
            cfg: MppiConfig {
                proposal: ProposalConfig {
                    knots: Some(3),
                    ..b().proposal.clone().into_kind(ProposalKind::Spline)
                },
                ..b()
            },
        },
        Case {
            name: "beta",
            cfg: MppiConfig {
                u_min: Some(vec![-1.0]),
                u_max: Some(vec![1.0]),
                proposal: b().proposal.clone().into_kind(ProposalKind::Beta),
                ..b()
            },
        },
        Case {
            name: "categorical",
            cfg: MppiConfig {
                u_min: Some(vec![-1.0]),
                u_max: Some(vec![1.0]),
                proposal: ProposalConfig {
                    categories: Some(vec![-1.0, -0.25, 0.5, 1.0]),
                    ..b().proposal.clone().into_kind(ProposalKind::Categorical)
                },
                ..b()
            },
        },
        Case {
            name: "mixture",
            cfg: MppiConfig {
                proposal: ProposalConfig {
                    components: Some(2),
                    ..b().proposal.clone().into_kind(ProposalKind::Mixture)
                },
                ..b()
            },
        },
    ]
}

/// The same table with every floor, cap, prior and shrinkage inactive, so that the M-step is
/// the exact maximizer of `Q̂` (docs/theory.md §H4: "when no floor is active").
fn floors_off(case: &Case) -> Case {
    let mut c = case.clone();
    let p = &mut c.cfg.proposal;
    // only the keys this kind has
    let has = |key: &str| p.kind.keys().contains(&key);
    if has("std_min") {
        p.std_min = Some(1e-9);
        p.std_max = Some(1e9);
        p.prior_weight = Some(0.0);
    }
    if has("shrinkage") {
        p.shrinkage = Some(0.0);
    }
    if has("floor") {
        p.floor = Some(0.0);
    }
    if has("concentration_max") {
        p.concentration_max = Some(1e9);
    }
    c
}

/// The marker an unregistered family's build error carries.
const UNAVAILABLE: &str = "not available in this build";

/// Build the planner of a case with `control_dim = M`. `Err` (with the message) only for a
/// family that is not registered yet; any other build error is a failure of the table or of
/// the family and panics.
fn try_planner(case: &Case) -> Result<Planner, String> {
    match Planner::new(&case.cfg, M) {
        Ok(p) => Ok(p),
        Err(e) => {
            let msg = e.to_string();
            if msg.contains(UNAVAILABLE) {
                Err(msg)
            } else {
                panic!("{}: building the planner failed: {msg}", case.name)
            }
        }
    }
}

/// The cases whose family is available, printing a note for each skipped one.
fn available(check: &str, cases: Vec<Case>) -> Vec<(Case, Planner)> {
    let mut out = Vec::new();
    for case in cases {
        match try_planner(&case) {
            Ok(p) => out.push((case, p)),
            Err(msg) => println!("[{check}] SKIP {}: {msg}", case.name),
        }
    }
    out
}

#[test]
fn every_family_kind_is_available() {
    let missing: Vec<String> = table()
        .iter()
        .filter_map(|c| try_planner(c).err().map(|e| format!("{}: {e}", c.name)))
        .collect();
    assert!(
        missing.is_empty(),
        "families not registered in proposal::build (every conformance check skipped them):\n  {}",
        missing.join("\n  ")
    );
    println!(
        "every family kind is available ({} table rows)",
        table().len()
    );
}

/// Target of the warm-up objective (inside every control box of the table).
fn warm_target(j: usize) -> f64 {
    0.6 * (1.3 * j as f64 + 0.4).sin()
}

/// Target of the cost that weights the fixed sample sets.
fn weight_target(j: usize) -> f64 {
    0.4 * (0.7 * j as f64).cos() - 0.1
}

fn warm_objective() -> FnObjective<impl Fn(&[f64]) -> f64 + Send + Sync> {
    FnObjective::new(D, |u: &[f64]| {
        u.iter()
            .enumerate()
            .map(|(j, v)| (v - warm_target(j)).powi(2))
            .sum()
    })
}

fn weight_cost(u: &[f64]) -> f64 {
    u.iter()
        .enumerate()
        .map(|(j, v)| (v - weight_target(j)).powi(2))
        .sum()
}

/// A non-default member of the family: the planner's distribution after 3 EM iterations on the
/// warm-up objective.
fn warmed(case: &Case) -> Box<dyn Proposal> {
    let cfg = MppiConfig {
        iterations: 3,
        ..case.cfg.clone()
    };
    let mut planner = Planner::new(&cfg, M).unwrap();
    planner.optimize(&warm_objective(), 0, &mut ()).unwrap();
    planner.proposal().clone_box()
}

/// `n` plans drawn from `f` with fixed streams.
fn draw(f: &dyn Proposal, n: usize, seed: u64) -> Vec<f64> {
    let d = f.dim();
    let mut out = vec![0.0; n * d];
    for (i, u) in out.chunks_exact_mut(d).enumerate() {
        let mut rng = sample_rng(seed, 1000, 0, i as u64);
        f.sample(&mut rng, u);
    }
    out
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// `max_i |a_i − b_i| / (1 + |b_i|)`.
fn max_scaled_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0, f64::max)
}

/// Assert every entry of a plan-shaped buffer lies in the per-dimension box.
fn assert_in_bounds(what: &str, name: &str, u: &[f64], lo: &[f64], hi: &[f64]) {
    let m = lo.len();
    for (i, v) in u.iter().enumerate() {
        let j = i % m;
        assert!(
            v.is_finite() && *v >= lo[j] && *v <= hi[j],
            "{name}: {what} entry {i} = {v} outside [{}, {}]",
            lo[j],
            hi[j]
        );
    }
}

fn weights_of(costs: &[f64], lambda: f64) -> Vec<f64> {
    let mut w = vec![0.0; costs.len()];
    compute_weights(costs, Temperature::Fixed(lambda), &mut w);
    w
}

/// `θ_a + α (θ_b − θ_a)`.
fn interpolate(a: &[f64], b: &[f64], alpha: f64) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + alpha * (y - x)).collect()
}

/// The family's initial distribution (after `reset`).
fn initial(f: &dyn Proposal) -> Box<dyn Proposal> {
    let mut g = f.clone_box();
    g.reset();
    g
}

#[test]
fn conformance_params_round_trip_and_domain_checks() {
    for (case, _) in available("params", table()) {
        let f = warmed(&case);
        let p = f.params().to_vec();
        assert!(!p.is_empty(), "{}: empty parameter vector", case.name);
        assert!(
            p.iter().all(|v| v.is_finite()),
            "{}: non-finite parameters {p:?}",
            case.name
        );
        let u = draw(f.as_ref(), 20, 1);
        let lp: Vec<f64> = u.chunks_exact(D).map(|x| f.log_prob(x).unwrap()).collect();

        // round trip
        let mut g = f.clone_box();
        g.set_params(&p)
            .unwrap_or_else(|e| panic!("{}: set_params(params()) failed: {e}", case.name));
        let rt = max_scaled_diff(g.params(), &p);
        let lp2: Vec<f64> = u.chunks_exact(D).map(|x| g.log_prob(x).unwrap()).collect();
        let lp_diff = max_scaled_diff(&lp2, &lp);
        println!(
            "[params] {:<24} |params| = {:3}: round trip {rt:.1e}, log_prob after round trip {lp_diff:.1e} (tol 1e-12)",
            case.name,
            p.len()
        );
        assert!(
            rt <= 1e-12,
            "{}: round trip changed params by {rt}",
            case.name
        );
        assert!(
            lp_diff <= 1e-12,
            "{}: log_prob changed by {lp_diff} after set_params(params())",
            case.name
        );

        // rejected inputs leave the family unchanged
        let mut bad_inputs: Vec<(String, Vec<f64>)> = Vec::new();
        for i in [0, p.len() / 2, p.len() - 1] {
            let mut q = p.clone();
            q[i] = f64::NAN;
            bad_inputs.push((format!("NaN at {i}"), q));
        }
        let mut q = p.clone();
        q[p.len() - 1] = f64::INFINITY;
        bad_inputs.push(("+inf at the end".into(), q));
        bad_inputs.push(("one too long".into(), [p.clone(), vec![0.0]].concat()));
        bad_inputs.push(("one too short".into(), p[..p.len() - 1].to_vec()));
        bad_inputs.push(("empty".into(), Vec::new()));
        for (what, q) in &bad_inputs {
            let mut g = f.clone_box();
            assert!(
                g.set_params(q).is_err(),
                "{}: set_params accepted {what}",
                case.name
            );
            assert_eq!(
                bits(g.params()),
                bits(&p),
                "{}: rejected set_params ({what}) changed the parameters",
                case.name
            );
            let lp3: Vec<f64> = u.chunks_exact(D).map(|x| g.log_prob(x).unwrap()).collect();
            assert_eq!(
                bits(&lp3),
                bits(&lp),
                "{}: rejected set_params ({what}) changed log_prob",
                case.name
            );
        }
    }
}

#[test]
fn conformance_sampling_log_prob_and_bounds() {
    // wide boxes of the table, and a tight box that every family must respect
    let tight: Vec<Case> = table()
        .into_iter()
        .map(|mut c| {
            if c.cfg.proposal.kind != ProposalKind::Categorical {
                c.cfg.u_min = Some(vec![-0.4, -0.2]);
                c.cfg.u_max = Some(vec![0.6, 0.3]);
            }
            c
        })
        .collect();
    for (case, planner) in available("sampling", table())
        .into_iter()
        .chain(available("sampling/tight box", tight))
    {
        let (lo, hi) = (planner.bounds().0.to_vec(), planner.bounds().1.to_vec());
        for (label, f) in [
            ("initial", planner.proposal().clone_box()),
            ("warmed", warmed(&case)),
        ] {
            assert_eq!(f.dim(), D, "{}: dim", case.name);
            assert_eq!(f.control_dim(), M, "{}: control_dim", case.name);
            let a = draw(f.as_ref(), 500, 3);
            let b = draw(f.as_ref(), 500, 3);
            assert_eq!(
                bits(&a),
                bits(&b),
                "{}: sample() not deterministic",
                case.name
            );
            let c = draw(f.as_ref(), 500, 4);
            assert_ne!(bits(&a), bits(&c), "{}: seeds 3 and 4 agree", case.name);
            // the block sampler (what the planner calls) draws exactly what sample() draws
            for lanes in [BLOCK_LANES, 5] {
                // `draw` uses the streams of step 1000
                let mut rng = BlockRng::new(3, 1000, 0, 0, lanes);
                let (mut rows, mut soa) = (vec![0.0; lanes * D], vec![0.0; lanes * D]);
                let rows_filled = f.sample_block(&mut rng, &mut rows, &mut soa);
                let soa_rows = to_blocks(&a[..lanes * D], D);
                assert!(
                    bits(&soa) == bits(&soa_rows),
                    "{}: sample_block differs from sample ({lanes} lanes)",
                    case.name
                );
                if rows_filled {
                    assert!(
                        bits(&rows) == bits(&a[..lanes * D]),
                        "{}: sample_block says rows are filled, but they differ",
                        case.name
                    );
                }
            }
            assert_in_bounds("sample", case.name, &a, &lo, &hi);
            if case.cfg.proposal.kind == ProposalKind::Categorical {
                let cats = &case.cfg.proposal.categories();
                assert!(
                    a.iter().all(|v| cats.contains(v)),
                    "{}: a sample is not one of the categories",
                    case.name
                );
            }
            let worst = a
                .chunks_exact(D)
                .map(|u| f.log_prob(u).unwrap())
                .fold(f64::INFINITY, f64::min);
            assert!(
                worst.is_finite(),
                "{}: log_prob not finite on a sample ({worst})",
                case.name
            );
            let mut plan = vec![f64::NAN; D];
            f.plan(&mut plan);
            assert_in_bounds("plan", case.name, &plan, &lo, &hi);
            println!(
                "[sampling] {:<24} {label:<7} box [{:?}, {:?}]: 500 samples deterministic and in bounds, min log_prob {worst:.3}, plan in bounds",
                case.name, lo, hi
            );
        }
    }
}

/// Samples in the planner's block layout: blocks of `BLOCK_LANES` rows, transposed.
fn to_blocks(rows: &[f64], d: usize) -> Vec<f64> {
    let mut out = vec![0.0; rows.len()];
    for (block, dst) in rows
        .chunks(BLOCK_LANES * d)
        .zip(out.chunks_mut(BLOCK_LANES * d))
    {
        let lanes = block.len() / d;
        for (l, row) in block.chunks_exact(d).enumerate() {
            for (i, v) in row.iter().enumerate() {
                dst[i * lanes + l] = *v;
            }
        }
    }
    out
}

#[test]
fn conformance_block_fit_equals_row_fit() {
    // 100 samples: three full blocks and a short one; some weights exactly zero
    for (case, _) in available("block fit", table()) {
        let mut f = warmed(&case);
        if !f.fits_blocks() {
            println!("[block fit] {:<24} fits rows only", case.name);
            continue;
        }
        let rows = draw(f.as_ref(), 100, 21);
        let costs: Vec<f64> = rows
            .chunks_exact(D)
            .enumerate()
            .map(|(i, u)| if i % 7 == 3 { f64::NAN } else { weight_cost(u) })
            .collect();
        let w = weights_of(&costs, 0.5);
        assert!(w.contains(&0.0));
        let p = f.params().len();
        let (mut from_rows, mut from_blocks) = (vec![0.0; p], vec![f64::NAN; p]);
        f.fit(&rows, &w, &mut from_rows);
        assert!(f.fit_blocks(&to_blocks(&rows, D), &w, &mut from_blocks));
        assert_eq!(
            bits(&from_rows),
            bits(&from_blocks),
            "{}: fit_blocks differs from fit",
            case.name
        );
        println!(
            "[block fit] {:<24} fit_blocks == fit, bit for bit",
            case.name
        );
    }
}

#[test]
fn planner_results_do_not_depend_on_which_sample_layouts_it_builds() {
    // diagnostics = full needs row-major samples (log-densities); with basic diagnostics and a
    // rollout objective (which reads only the SoA blocks) the fixed Gaussian never builds
    // them. Plans, samples and costs must agree bit for bit, and samples() either way.
    struct Point;
    impl Dynamics for Point {
        fn state_dim(&self) -> usize {
            M
        }
        fn control_dim(&self) -> usize {
            M
        }
        fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
            for j in 0..M {
                next[j] = x[j] + 0.5 * u[j];
            }
        }
    }
    struct ToTarget;
    impl Cost for ToTarget {
        fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 {
            (x[0] - 1.0).powi(2) + (x[1] + 0.5).powi(2) + 0.01 * (u[0] * u[0] + u[1] * u[1])
        }
    }
    let objective = RolloutObjective::new(Point, ToTarget, T, 1.0).unwrap();
    for (case, _) in available("layouts", table()) {
        let run = |diagnostics| {
            let cfg = MppiConfig {
                iterations: 3,
                diagnostics,
                ..case.cfg.clone()
            };
            let mut planner = Planner::new(&cfg, M).unwrap();
            planner.optimize(&objective, 0, &mut ()).unwrap();
            let mut one = vec![0.0; D];
            planner.sample(5, &mut one).unwrap();
            assert!(planner.sample(planner.num_samples(), &mut one).is_err());
            assert!(planner.sample(0, &mut [0.0; 3]).is_err());
            assert_eq!(bits(&one), bits(&planner.samples()[5 * D..6 * D]));
            (
                planner.mean().to_vec(),
                planner.samples(),
                planner.costs().to_vec(),
            )
        };
        let (basic, full) = (run(DiagnosticsLevel::Basic), run(DiagnosticsLevel::Full));
        assert_eq!(bits(&basic.0), bits(&full.0), "{}: plans differ", case.name);
        assert_eq!(
            bits(&basic.1),
            bits(&full.1),
            "{}: samples differ",
            case.name
        );
        assert_eq!(bits(&basic.2), bits(&full.2), "{}: costs differ", case.name);
    }
}

#[test]
fn conformance_fit_recovers_parameters_and_ignores_zero_weights() {
    for (case, _) in available("fit", table()) {
        let f = warmed(&case);
        let p = f.params().to_vec();

        // unbiased recovery with uniform weights, floors off (a floor or prior biases the fit
        // on purpose): a t-test per parameter over 30 repeats of 5000 draws (RECOVERY_T's
        // derivation; a 5% variance error gives |t| ≈ 14, see negative_controls.rs)
        let exact = warmed(&floors_off(&case));
        let r = check_fit_recovery(exact.as_ref(), 5_000, 30, 5, RECOVERY_T)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        println!(
            "[fit] {:<24} recovery, {} parameters, 30 × 5000 uniform-weight draws: max |t| = {:.2} at parameter {} (tol {RECOVERY_T})",
            case.name,
            exact.params().len(),
            r.max_t,
            r.worst
        );

        // zero-weight samples are ignored
        let n = 300;
        let u = draw(f.as_ref(), n, 6);
        let costs: Vec<f64> = u.chunks_exact(D).map(weight_cost).collect();
        let w = weights_of(&costs, 1.0);
        let mut reference = vec![f64::NAN; p.len()];
        f.clone_box().fit(&u, &w, &mut reference);
        let garbage_rows: Vec<Vec<f64>> = vec![
            vec![f64::NAN; D],
            vec![f64::INFINITY; D],
            vec![f64::NEG_INFINITY; D],
            vec![1e300; D],
            (0..D)
                .map(|j| if j % 2 == 0 { -1e6 } else { 7.5 })
                .collect(),
        ];
        // appended at the end: bit-identical
        let mut u2 = u.clone();
        let mut w2 = w.clone();
        for g in &garbage_rows {
            u2.extend_from_slice(g);
            w2.push(0.0);
        }
        let mut appended = vec![f64::NAN; p.len()];
        f.clone_box().fit(&u2, &w2, &mut appended);
        assert_eq!(
            bits(&appended),
            bits(&reference),
            "{}: zero-weight garbage samples changed the M-step: {appended:?} vs {reference:?}",
            case.name
        );
        // interleaved: equal up to rounding
        let mut u3 = Vec::new();
        let mut w3 = Vec::new();
        for (i, (row, wi)) in u.chunks_exact(D).zip(&w).enumerate() {
            if i % 60 == 0 {
                let g = &garbage_rows[(i / 60) % garbage_rows.len()];
                u3.extend_from_slice(g);
                w3.push(0.0);
            }
            u3.extend_from_slice(row);
            w3.push(*wi);
        }
        let mut interleaved = vec![f64::NAN; p.len()];
        f.clone_box().fit(&u3, &w3, &mut interleaved);
        let d_inter = max_scaled_diff(&interleaved, &reference);
        println!(
            "[fit] {:<24} zero-weight garbage (NaN, ±inf, 1e300, out of box): appended bit-identical; interleaved {d_inter:.1e} (tol 1e-12)",
            case.name
        );
        assert!(
            d_inter <= 1e-12,
            "{}: interleaved zero-weight samples changed the M-step by {d_inter}",
            case.name
        );
        // fit does not change the family itself
        let mut g = f.clone_box();
        let mut scratch = vec![0.0; p.len()];
        g.fit(&u, &w, &mut scratch);
        assert_eq!(
            bits(g.params()),
            bits(&p),
            "{}: fit changed the family's own parameters",
            case.name
        );
    }
}

#[test]
fn conformance_kl() {
    let cases = available("kl", table());
    let mut fams: Vec<(&'static str, Box<dyn Proposal>)> = Vec::new();
    for (case, _) in &cases {
        let f = warmed(case);
        let init = initial(f.as_ref());
        let u = draw(f.as_ref(), 300, 7);
        let costs: Vec<f64> = u.chunks_exact(D).map(weight_cost).collect();
        let w = weights_of(&costs, 1.0);
        let mut theta = vec![0.0; f.params().len()];
        f.clone_box().fit(&u, &w, &mut theta);
        let mut fitted = f.clone_box();
        fitted.set_params(&theta).unwrap();
        let is_mixture = case.cfg.proposal.kind == ProposalKind::Mixture;
        let mut min_kl = f64::INFINITY;
        for (a, b) in [
            (&f, &f),
            (&init, &init),
            (&fitted, &fitted),
            (&f, &init),
            (&init, &f),
            (&fitted, &f),
            (&f, &fitted),
            (&fitted, &init),
        ] {
            let same = std::ptr::eq(a, b);
            let kl = a.kl(b.as_ref()).unwrap_or(f64::NAN);
            if kl.is_nan() {
                assert!(is_mixture, "{}: KL is NaN", case.name);
                continue;
            }
            if same {
                assert!(
                    kl.abs() <= 1e-10,
                    "{}: KL(p‖p) = {kl} (tol 1e-10)",
                    case.name
                );
            } else {
                min_kl = min_kl.min(kl);
                assert!(
                    kl >= -1e-12 && kl.is_finite(),
                    "{}: KL = {kl} (must be >= 0 and finite)",
                    case.name
                );
            }
        }
        println!(
            "[kl] {:<24} KL(p‖p) within 1e-10 of 0; min KL over distinct pairs {min_kl:.4} (>= 0){}",
            case.name,
            if is_mixture { " (NaN allowed)" } else { "" }
        );
        fams.push((case.name, f));
    }
    // a different kind of family: NaN, no panic
    for (na, a) in &fams {
        for (nb, b) in &fams {
            if a.name() != b.name() {
                let kl = a.kl(b.as_ref()).unwrap_or(f64::NAN);
                assert!(kl.is_nan(), "KL({na} ‖ {nb}) = {kl}, expected NaN");
            }
        }
    }
}

#[test]
fn conformance_shift_plan_and_clone() {
    for (case, planner) in available("shift/plan/clone", table()) {
        let (lo, hi) = (planner.bounds().0.to_vec(), planner.bounds().1.to_vec());
        let f = warmed(&case);
        let mut before = vec![0.0; D];
        f.plan(&mut before);
        assert_in_bounds("plan", case.name, &before, &lo, &hi);
        for fill in [ShiftFill::Last, ShiftFill::Zero] {
            let mut g = f.clone_box();
            g.shift(fill);
            assert_eq!(g.dim(), D, "{}: shift changed dim", case.name);
            assert_eq!(
                g.params().len(),
                f.params().len(),
                "{}: shift changed the parameter count",
                case.name
            );
            let p = g.params().to_vec();
            g.set_params(&p).unwrap_or_else(|e| {
                panic!(
                    "{}: shifted parameters are invalid ({fill:?}): {e}",
                    case.name
                )
            });
            let s = draw(g.as_ref(), 100, 8);
            assert_in_bounds("shifted sample", case.name, &s, &lo, &hi);
            assert!(
                s.chunks_exact(D)
                    .all(|u| g.log_prob(u).unwrap().is_finite()),
                "{}: log_prob not finite after shift",
                case.name
            );
            let mut after = vec![f64::NAN; D];
            g.plan(&mut after);
            assert_in_bounds("shifted plan", case.name, &after, &lo, &hi);
            // the plan moves one step left (knots are not steps: not for the spline)
            let moved = max_abs_diff(&after[..D - M], &before[M..]);
            if case.cfg.proposal.kind == ProposalKind::Spline {
                println!(
                    "[shift] {:<24} {fill:?}: dims and validity kept; plan moved by one step up to {moved:.2e} (knots ≠ steps, not asserted)",
                    case.name
                );
            } else {
                println!(
                    "[shift] {:<24} {fill:?}: dims and validity kept; |plan[t] − old plan[t+1]| = {moved:.1e} (tol 1e-9)",
                    case.name
                );
                assert!(
                    moved <= 1e-9,
                    "{}: shift({fill:?}) did not move the plan one step ({moved})",
                    case.name
                );
            }
        }

        // clone_box: identical and independent
        let mut c = f.clone_box();
        assert_eq!(c.name(), f.name());
        assert_eq!(
            bits(c.params()),
            bits(f.params()),
            "{}: clone params",
            case.name
        );
        let s = draw(f.as_ref(), 50, 9);
        assert_eq!(
            bits(&draw(c.as_ref(), 50, 9)),
            bits(&s),
            "{}: clone samples differ",
            case.name
        );
        let lp: Vec<f64> = s.chunks_exact(D).map(|u| f.log_prob(u).unwrap()).collect();
        let lpc: Vec<f64> = s.chunks_exact(D).map(|u| c.log_prob(u).unwrap()).collect();
        assert_eq!(
            bits(&lp),
            bits(&lpc),
            "{}: clone log_prob differs",
            case.name
        );
        let p = f.params().to_vec();
        let target = interpolate(&p, initial(f.as_ref()).params(), 0.5);
        c.set_params(&target).unwrap();
        c.shift(ShiftFill::Zero);
        let mut scratch = vec![0.0; p.len()];
        c.fit(&s, &vec![1.0 / 50.0; 50], &mut scratch);
        assert_eq!(
            bits(f.params()),
            bits(&p),
            "{}: modifying the clone changed the original",
            case.name
        );
        assert_eq!(
            bits(&draw(f.as_ref(), 50, 9)),
            bits(&s),
            "{}: modifying the clone changed the original's samples",
            case.name
        );
        println!(
            "[clone] {:<24} clone_box identical (params, samples, log_prob bit-equal) and independent",
            case.name
        );
    }
}

#[test]
fn conformance_mean_parameter_interpolation_stays_in_the_domain() {
    // docs/theory.md §D.2: the mean-parameter domain is convex, so (1−α) θ_a + α θ_b is valid for
    // α ∈ (0, 1] whenever θ_a and θ_b are
    for (case, _) in available("D.2 interpolation", table()) {
        let f = warmed(&case);
        let a = f.params().to_vec();
        let b = initial(f.as_ref()).params().to_vec();
        let u = draw(f.as_ref(), 300, 10);
        let costs: Vec<f64> = u.chunks_exact(D).map(weight_cost).collect();
        let mut c = vec![0.0; a.len()];
        f.clone_box().fit(&u, &weights_of(&costs, 0.3), &mut c);
        let mut worst = 0.0f64;
        let mut count = 0;
        for (x, y) in [(&a, &b), (&b, &a), (&a, &c), (&c, &b), (&c, &a)] {
            for alpha in [0.05, 0.25, 0.5, 0.75, 0.95, 1.0] {
                let theta = interpolate(x, y, alpha);
                let mut g = f.clone_box();
                g.set_params(&theta).unwrap_or_else(|e| {
                    panic!(
                        "{}: interpolation α = {alpha} left the domain: {e}",
                        case.name
                    )
                });
                worst = worst.max(max_scaled_diff(g.params(), &theta));
                let s = draw(g.as_ref(), 20, 11);
                assert!(
                    s.chunks_exact(D)
                        .all(|u| g.log_prob(u).unwrap().is_finite()),
                    "{}: log_prob not finite at α = {alpha}",
                    case.name
                );
                count += 1;
            }
        }
        println!(
            "[D.2] {:<24} {count} interpolations accepted; stored vs interpolated params {worst:.1e} (tol 1e-12)",
            case.name
        );
        assert!(
            worst <= 1e-12,
            "{}: set_params altered a valid interpolated point by {worst}",
            case.name
        );
    }
}

/// The M-step identity the family must satisfy with its floors off.
fn mstep_of(case: &Case) -> MStep {
    if case.cfg.proposal.kind == ProposalKind::Mixture {
        MStep::Generalized
    } else {
        MStep::Exact
    }
}

/// H4 on fixed samples ([`check_em_step`]), every family with its floors off, three
/// temperatures: `KL(p⁺ ‖ p_k) > 0` and `ΔQ̂ = KL` to 1e-8 relative (the mixture: `ΔQ̂ ≥`
/// its complete-data KL). `ΔL̂ ≥ ΔQ̂` is printed, not asserted: it is Jensen's inequality and
/// holds for any weights and any `θ⁺` (docs/theory.md §C.2).
#[test]
fn h4_mstep_gain_equals_the_kl_on_fixed_samples() {
    for (case, _) in available("H4", table().iter().map(floors_off).collect()) {
        let k = warmed(&case);
        let n = 400;
        for (seed, lambda) in [(12u64, 1.0), (13, 0.3), (14, 3.0)] {
            let u = draw(k.as_ref(), n, seed);
            let costs: Vec<f64> = u.chunks_exact(D).map(weight_cost).collect();
            let w = weights_of(&costs, lambda);
            let r = check_em_step(k.as_ref(), &u, &w, mstep_of(&case))
                .unwrap_or_else(|e| panic!("{} (λ = {lambda}): {e}", case.name));
            println!(
                "[H4] {:<24} λ = {lambda}, ESS {:.0}/{n}: ΔQ̂ = {:.6}, KL(p⁺‖p_k) = {:.6}, ΔQ̂ − KL = {:.1e} ({})",
                case.name,
                r.ess,
                r.q_gain,
                r.kl,
                r.gap,
                match mstep_of(&case) {
                    MStep::Exact => format!("tol {EM_IDENTITY_TOLERANCE:e}·KL"),
                    MStep::Generalized => "≥ 0: complete-data KL".to_string(),
                }
            );
        }
    }
}

/// The population sufficient increase of docs/theory.md §C.2 on fresh samples
/// ([`check_population_increase`]: `L(θ⁺) − L(θ_k) ≥ KL(p⁺ ‖ p_k)`, with `z = 4` standard
/// errors, the delta-method bias of `L̂` and the M-step's own sampling error as the allowance),
/// every family with its floors off, from its warmed distribution on the weighting cost.
#[test]
fn h4_population_increase_on_fresh_samples() {
    for (case, _) in available("H4 population", table().iter().map(floors_off).collect()) {
        let k = warmed(&case);
        let settings = IncreaseSettings {
            lambda: 1.0,
            fit_samples: 50_000,
            eval_samples: 10_000,
            repeats: 20,
            z: 4.0,
            seed: 21,
        };
        let r = check_population_increase(k.as_ref(), &weight_cost, &settings)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        println!(
            "[H4 population] {:<24} L(θ⁺) − L(θ_k) = {:.5} ± {:.5} (SE, {} pairs of fresh batches of {}) ≥ KL {:.5} (bias allowance {:.1e}, M-step sd {:.1e}, z = 4; slack {:.4})",
            case.name,
            r.gain,
            r.gain_se,
            settings.repeats,
            settings.eval_samples,
            r.kl,
            r.bias,
            r.fit_sd,
            r.slack
        );
    }
}

/// A planar point mass: state `(p_x, p_y, v_x, v_y)`, control = acceleration.
struct PointMass;
impl Dynamics for PointMass {
    fn state_dim(&self) -> usize {
        4
    }
    fn control_dim(&self) -> usize {
        2
    }
    fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        let dt = 0.1;
        next[2] = x[2] + dt * u[0];
        next[3] = x[3] + dt * u[1];
        next[0] = x[0] + dt * next[2];
        next[1] = x[1] + dt * next[3];
    }
}
/// Reach `(1, −0.5)` and stop; NaN cost in a forbidden region when `nan_region` is set.
struct Reach {
    nan_region: bool,
}
impl Cost for Reach {
    fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 {
        if self.nan_region && x[2] > 0.05 {
            return f64::NAN;
        }
        (x[0] - 1.0).powi(2)
            + (x[1] + 0.5).powi(2)
            + 0.1 * (x[2] * x[2] + x[3] * x[3])
            + 0.01 * (u[0] * u[0] + u[1] * u[1])
    }
    fn terminal(&self, x: &[f64]) -> f64 {
        5.0 * ((x[0] - 1.0).powi(2) + (x[1] + 0.5).powi(2))
    }
}

struct Collect(Vec<IterStats>);
impl Observer for Collect {
    fn on_iteration(&mut self, stats: &IterStats, _planner: &Planner) -> std::ops::ControlFlow<()> {
        self.0.push(*stats);
        std::ops::ControlFlow::Continue(())
    }
}

/// Four receding-horizon steps of 3 EM iterations on the point mass; returns every plan and
/// every iteration's statistics.
fn closed_loop(cfg: &MppiConfig, nan_region: bool) -> (Vec<Vec<f64>>, Vec<IterStats>) {
    let cfg = MppiConfig {
        iterations: 3,
        ..cfg.clone()
    };
    let mut planner = Planner::new(&cfg, M).unwrap();
    let mut obj = RolloutObjective::new(PointMass, Reach { nan_region }, T, 1.0).unwrap();
    let mut x = vec![0.0; 4];
    let mut plans = Vec::new();
    let mut stats = Collect(Vec::new());
    for step in 0..4u64 {
        obj.set_state(&x).unwrap();
        planner.optimize(&obj, step, &mut stats).unwrap();
        plans.push(planner.mean().to_vec());
        let mut next = vec![0.0; 4];
        PointMass.step(&x, &planner.mean()[..M], &mut next);
        x = next;
        planner.shift(ShiftFill::Last);
    }
    (plans, stats.0)
}

/// H4 in the planner (`diagnostics = "full"`), four receding-horizon steps of 3 iterations on
/// the point mass, every family with its floors on and off:
///
/// - every iteration's M-step gain `ΔQ̂ ≥ −1e-10` (floors on: the regularized M-step must
///   still improve `Q̂`, docs/theory.md §C.2);
/// - floors off, exponential families: `KL(p_EM ‖ p_k) > 0` wherever the plan moved, and the
///   M-step gap `|ΔQ̂ − KL| ≤ 1e-8·KL` (the exact M-step identity; a biased fit breaks it, see
///   `negative_controls.rs`);
/// - floors off, the mixture: `ΔQ̂ ≥ KL_joint − 1e-10` (one inner EM iteration gains exactly
///   the complete-data KL, and the mixture's `Q̂` at least that: generalized EM).
#[test]
fn h4_planner_full_diagnostics_mstep_gain_and_gap() {
    let mut rows = Vec::new();
    for case in table() {
        rows.push((case.clone(), false));
        rows.push((floors_off(&case), true));
    }
    for (case, off) in rows {
        let mut case = case;
        case.cfg.diagnostics = DiagnosticsLevel::Full;
        if let Err(msg) = try_planner(&case) {
            println!("[H4 planner] SKIP {}: {msg}", case.name);
            continue;
        }
        let (_, stats) = closed_loop(&case.cfg, false);
        let is_mixture = case.cfg.proposal.kind == ProposalKind::Mixture;
        // an iteration whose M-step result the family rejects keeps θ_k (update 0); a
        // categorical plan is a mode and can stay put while π moves
        let frozen = stats.iter().filter(|s| s.update_norm == 0.0).count();
        let mut worst_gap = 0.0f64;
        let mut min_q = f64::INFINITY;
        let mut min_kl = f64::INFINITY;
        for s in &stats {
            let at = format!("{} (step {}, it {})", case.name, s.step, s.iteration);
            assert!(
                s.q_gain.is_finite() && s.q_gain >= -1e-10,
                "{at}: the M-step lowered Q̂ by {}",
                s.q_gain
            );
            assert!(
                s.kl_step.is_finite() && s.kl_step >= -1e-12,
                "{at}: KL step {}",
                s.kl_step
            );
            min_q = min_q.min(s.q_gain);
            if !off {
                continue;
            }
            if is_mixture {
                worst_gap = worst_gap.max(-s.mstep_gap);
                assert!(
                    s.mstep_gap >= -1e-10,
                    "{at}: ΔQ̂ {} < complete-data KL {}",
                    s.q_gain,
                    s.kl_step
                );
            } else {
                let gap = s.mstep_gap.abs() / s.kl_step.max(1e-300);
                worst_gap = worst_gap.max(gap);
                assert!(
                    gap <= 1e-8,
                    "{at}: M-step gap |ΔQ̂ − KL| = {} with KL {} (tol 1e-8 relative)",
                    s.mstep_gap.abs(),
                    s.kl_step
                );
            }
            if s.update_norm > 0.0 {
                min_kl = min_kl.min(s.kl_step);
                assert!(s.kl_step > 0.0, "{at}: the plan moved but KL = 0");
            }
        }
        println!(
            "[H4 planner] {:<24} floors {}: {} iterations ({frozen} without an update), min ΔQ̂ {min_q:.3e} (tol −1e-10){}",
            case.name,
            if off { "off" } else { "on " },
            stats.len(),
            if !off {
                String::new()
            } else if is_mixture {
                format!(
                    ", max (KL_joint − ΔQ̂) {worst_gap:.1e} (tol 1e-10), min KL {min_kl:.3e} (> 0)"
                )
            } else {
                format!(", max |ΔQ̂ − KL|/KL {worst_gap:.1e} (tol 1e-8), min KL {min_kl:.3e} (> 0)")
            }
        );
    }
}

#[test]
fn planner_determinism_and_nan_costs_for_every_family() {
    for (case, _) in available("planner", table()) {
        // K not a multiple of 32, so the last block is short; the two-thread run hands every
        // iteration to the pool (`parallel = always`), so two threads really split the blocks
        let cfg = MppiConfig {
            samples: 1000,
            ..case.cfg.clone()
        };
        let one = closed_loop(&cfg, false).0;
        let again = closed_loop(&cfg, false).0;
        let two = closed_loop(
            &MppiConfig {
                threads: 2,
                parallel: mppi::Parallel::Always,
                ..cfg.clone()
            },
            false,
        )
        .0;
        for (k, ((a, b), c)) in one.iter().zip(&again).zip(&two).enumerate() {
            assert_eq!(bits(a), bits(b), "{}: rerun differs at step {k}", case.name);
            assert_eq!(
                bits(a),
                bits(c),
                "{}: threads 1 vs 2 differ at step {k}",
                case.name
            );
        }
        // the seed matters (at the table's size, where even the categorical mode differs)
        let base = closed_loop(&case.cfg, false).0;
        let other = closed_loop(
            &MppiConfig {
                seed: 99,
                ..case.cfg.clone()
            },
            false,
        )
        .0;
        assert_ne!(
            bits(&base[3]),
            bits(&other[3]),
            "{}: seeds 11 and 99 gave the same plan",
            case.name
        );

        // NaN costs in part of the sample space
        let (plans, stats) = closed_loop(&case.cfg, true);
        let nonfinite: usize = stats.iter().map(|s| s.weights.nonfinite).sum();
        assert!(nonfinite > 0, "{}: the NaN region was never hit", case.name);
        for p in &plans {
            assert!(
                p.iter().all(|v| v.is_finite()),
                "{}: NaN in the plan with NaN costs: {p:?}",
                case.name
            );
        }
        // every cost NaN: plan kept
        let mut planner = Planner::new(&case.cfg, M).unwrap();
        planner.optimize(&warm_objective(), 0, &mut ()).unwrap();
        let before = planner.mean().to_vec();
        let params = planner.proposal().params().to_vec();
        let all_nan = FnObjective::new(D, |_: &[f64]| f64::NAN);
        let s = planner.optimize(&all_nan, 1, &mut ()).unwrap();
        assert!(
            s.last.kept_plan,
            "{}: all-NaN costs did not keep the plan",
            case.name
        );
        assert_eq!(bits(planner.mean()), bits(&before), "{}", case.name);
        assert_eq!(
            bits(planner.proposal().params()),
            bits(&params),
            "{}",
            case.name
        );
        println!(
            "[planner] {:<24} bit-identical for threads 1/2 and reruns; seed changes the plan; {nonfinite} NaN costs -> finite plans; all-NaN keeps the plan",
            case.name
        );
    }
}

// =============================================================================================
// Family contracts mutation testing found untested (README, developer notes)
// =============================================================================================

/// `set_plan(u)` makes `u` the plan (every family, `u` a sample, so it is a valid plan inside
/// the box), and for the Gaussian families keeps the spread: the density moves with the mean,
/// `log p'(x + Δ) = log p(x)` for `Δ = u − plan`.
#[test]
fn set_plan_moves_the_plan_and_gaussians_keep_their_spread() {
    for (case, _) in available("set_plan", table()) {
        let f = warmed(&case);
        let target = draw(f.as_ref(), 1, 40);
        let mut g = f.clone_box();
        g.set_plan(&target).unwrap();
        let mut plan = vec![f64::NAN; D];
        g.plan(&mut plan);
        let err = max_scaled_diff(&plan, &target);
        println!(
            "[set_plan] {:<24} plan after set_plan(sample): off by {err:.1e} (tol 1e-12)",
            case.name
        );
        assert!(
            err <= 1e-12,
            "{}: set_plan did not move the plan: {plan:?} vs {target:?}",
            case.name
        );
        if matches!(
            case.cfg.proposal.kind,
            ProposalKind::Gaussian | ProposalKind::GaussianDiag | ProposalKind::GaussianFull
        ) {
            let mut old = vec![0.0; D];
            f.plan(&mut old);
            for x in draw(f.as_ref(), 20, 41).chunks_exact(D) {
                let shifted: Vec<f64> = x
                    .iter()
                    .zip(&target)
                    .zip(&old)
                    .map(|((v, t), o)| v + t - o)
                    .collect();
                let (a, b) = (f.log_prob(x).unwrap(), g.log_prob(&shifted).unwrap());
                assert!(
                    (a - b).abs() <= 1e-9 * (1.0 + a.abs()),
                    "{}: log p {a} vs {b} after the shift",
                    case.name
                );
            }
        }
    }
}

/// The diagonal and fixed Gaussians draw `U_j = clamp(μ_j + s_j z_j)` with one standard
/// normal per coordinate, in order (their documented sampling), so a sample is a known
/// function of its stream (the sign of `z` included).
#[test]
fn gaussian_samples_are_the_mean_plus_the_scaled_stream() {
    use mppi::proposal::{GaussianDiag, GaussianFixed};
    let mut diag = GaussianDiag::new(
        T,
        M,
        &[0.3, 0.0, 0.0, 0.2],
        &[-4.0; M],
        &[4.0; M],
        1e-3,
        1e3,
        0.0,
    )
    .unwrap();
    let plan: Vec<f64> = (0..D).map(|j| 0.2 * j as f64 - 0.7).collect();
    diag.set_plan(&plan).unwrap();
    let fixed = {
        let mut f = GaussianFixed::new(T, M, &[0.3, 0.0, 0.0, 0.2], &[-4.0; M], &[4.0; M]).unwrap();
        f.set_plan(&plan).unwrap();
        f
    };
    for p in [&diag as &dyn Proposal, &fixed] {
        let mut u = vec![0.0; D];
        p.sample(&mut sample_rng(3, 0, 0, 9), &mut u);
        let mut rng = sample_rng(3, 0, 0, 9);
        for j in 0..D {
            let s = [0.3f64, 0.2][j % M].sqrt();
            let expected = (plan[j] + s * rng.normal()).clamp(-4.0, 4.0);
            assert!(
                (u[j] - expected).abs() <= 1e-15 * (1.0 + expected.abs()),
                "{}: entry {j}: {} vs {expected}",
                p.name(),
                u[j]
            );
        }
    }
}

/// `GaussianDiag` fits weights that do not sum to 1 as their normalized version (its
/// documented renormalization), returns `None` for the KL to a diagonal Gaussian of another
/// shape with the same dimension, and has the Williams control-cost form `Σ_j u_j ε_j / s_j²`,
/// so `control_cost_gamma > 0` works with it.
#[test]
fn gaussian_diag_renormalizes_weights_compares_shapes_and_has_a_control_cost() {
    use mppi::proposal::GaussianDiag;
    let diag = |t: usize, m: usize| {
        let cov: Vec<f64> = (0..m * m)
            .map(|i| if i % (m + 1) == 0 { 0.25 } else { 0.0 })
            .collect();
        GaussianDiag::new(t, m, &cov, &vec![-4.0; m], &vec![4.0; m], 1e-3, 1e3, 0.0).unwrap()
    };
    let p = diag(T, M);
    let u = draw(&p, 50, 42);
    let costs: Vec<f64> = u.chunks_exact(D).map(weight_cost).collect();
    let w = weights_of(&costs, 1.0);
    let w3: Vec<f64> = w.iter().map(|v| 3.0 * v).collect();
    let (mut a, mut b) = (vec![0.0; 2 * D], vec![0.0; 2 * D]);
    p.clone().fit(&u, &w, &mut a);
    p.clone().fit(&u, &w3, &mut b);
    assert!(
        max_scaled_diff(&a, &b) <= 1e-12,
        "weights ×3 changed the fit: {a:?} vs {b:?}"
    );

    let other = diag(2 * T, M / 2);
    assert_eq!(other.dim(), p.dim());
    assert_eq!(
        p.kl(&other),
        None,
        "KL between diagonal Gaussians of different shapes"
    );
    assert_eq!(p.kl(&p.clone()), Some(0.0));

    let plan: Vec<f64> = (0..D).map(|j| 0.1 * j as f64).collect();
    let eps: Vec<f64> = (0..D).map(|j| 0.3 - 0.05 * j as f64).collect();
    let expected: f64 = plan.iter().zip(&eps).map(|(u, e)| u * e / 0.25).sum();
    let got = p.control_cost(&plan, &eps).unwrap();
    assert!(
        (got - expected).abs() <= 1e-12 * expected.abs(),
        "{got} vs {expected}"
    );
    let cfg = MppiConfig {
        proposal: base_config().proposal.into_kind(ProposalKind::GaussianDiag),
        weighting: WeightingConfig {
            control_cost_gamma: 0.5,
            ..WeightingConfig::fixed(1.0)
        },
        ..base_config()
    };
    Planner::new(&cfg, M).unwrap();
}

/// Every family follows a schedule's spread (annealing, docs/theory.md §F): prepared with a
/// non-uniform spread it passes the conformance suite and the EM identity `ΔQ̂ = KL` on its
/// scaled samples (the mixture: `ΔQ̂ ≥` its complete-data KL), and a planner with a DIAL or
/// VE reverse-sampler schedule reports an M-step gap at rounding level in every iteration.
#[test]
fn every_family_anneals_with_the_em_identity_intact() {
    use mppi::diffusion::{Sampler, Ve};
    use mppi::proposal::Context;
    use mppi::schedule::Dial;
    use mppi::testing::check_proposal;
    let spread: Vec<f64> = (0..T).map(|t| 0.5 + 0.25 * (t % 3) as f64).collect();
    for (floored, _) in available("annealing", table()) {
        let case = floors_off(&floored);
        let mut k = warmed(&case);
        let ctx = Context {
            spread: Some(&spread),
            ..Context::open_loop(0, 0, 1)
        };
        k.prepare(&ctx)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        // the conformance suite with the floors on (a floorless categorical fitted to few
        // samples has empty categories, and an infinite KL)
        let mut with_floors = warmed(&floored);
        with_floors.prepare(&ctx).unwrap();
        check_proposal(with_floors.as_ref(), 3).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let u = draw(k.as_ref(), 400, 15);
        let costs: Vec<f64> = u.chunks_exact(D).map(weight_cost).collect();
        let w = weights_of(&costs, 1.0);
        let r = check_em_step(k.as_ref(), &u, &w, mstep_of(&case))
            .unwrap_or_else(|e| panic!("{} under a spread: {e}", case.name));
        let mut worst: f64 = 0.0;
        for schedule in [
            mppi::ScheduleConfig::Dial(Dial::default()),
            mppi::ScheduleConfig::Ve(Ve {
                sigma_max: 1.5,
                sigma_min: 0.2,
                sampler: Sampler::Ancestral,
            }),
        ] {
            let cfg = MppiConfig {
                iterations: 4,
                diagnostics: DiagnosticsLevel::Full,
                schedule,
                ..case.cfg.clone()
            };
            let mut planner = Planner::new(&cfg, M)
                .unwrap_or_else(|e| panic!("{} with {schedule:?}: {e}", case.name));
            for step in 0..2 {
                for it in 0..4 {
                    let s = planner
                        .iterate(&warm_objective(), step, it)
                        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
                    assert!(
                        planner.mean().iter().all(|v| v.is_finite()),
                        "{}",
                        case.name
                    );
                    if s.kl_step > 0.0 {
                        worst = worst.max(s.mstep_gap.abs() / s.kl_step);
                    }
                }
                planner.shift(ShiftFill::Last);
            }
        }
        println!(
            "[annealing] {:<24} ΔQ̂ − KL under a spread {:.1e} (KL {:.4}); planner with DIAL and VE ancestral: max |gap|/KL {worst:.1e}",
            case.name, r.gap, r.kl
        );
        if mstep_of(&case) == MStep::Exact {
            assert!(worst <= 1e-8, "{}: planner M-step gap {worst}", case.name);
        }
    }
}
