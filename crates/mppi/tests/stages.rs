//! The loop's stages and how it stops: the DIAL schedule (exact and empirical spread, density,
//! iterations at the first step), proposals that cannot anneal, deadlines, observers that
//! stop the loop, whole-batch objectives, the weighting contract (property test) and custom
//! weighting, update and schedule stages plugged through `Stages`.
//!
//! Every check can fail: each compares against a number computed here by hand or by another
//! code path. `cargo test -p mppi --test stages -- --nocapture` prints what was measured.

mod common;

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mppi::schedule::Dial;
use mppi::update::Step;
use mppi::weights::{Temperature, WeightStats};
use mppi::{
    Annealing, BatchFnObjective, Controller, Cost, Deadline, Dynamics, FnObjective, IterStats,
    MppiConfig, MppiError, Objective, Observer, Planner, ProposalConfig, ProposalKind, Schedule,
    ScheduleConfig, Softmax, Stages, Status, Update, Weighting, WeightingConfig,
};
use proptest::prelude::*;

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `x' = x + 0.1 u` on a line, with a busy loop of `spin` dependent multiply-adds per step (a
/// slow model for the deadline tests; 0 for a fast one).
struct Line {
    spin: usize,
}

impl Dynamics for Line {
    fn state_dim(&self) -> usize {
        1
    }
    fn control_dim(&self) -> usize {
        1
    }
    fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        let mut acc = x[0];
        for _ in 0..self.spin {
            acc = std::hint::black_box(acc.mul_add(0.999_999, 1e-9));
        }
        std::hint::black_box(acc);
        next[0] = x[0] + 0.1 * u[0];
    }
}

/// Drive the line to the origin.
struct ToOrigin;

impl Cost for ToOrigin {
    fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 {
        x[0] * x[0] + 0.01 * u[0] * u[0]
    }
}

fn line_config() -> MppiConfig {
    MppiConfig {
        samples: 64,
        horizon: 10,
        iterations: 3,
        seed: 5,
        proposal: ProposalConfig::gaussian(&[1.0]),
        weighting: WeightingConfig::fixed(0.1),
        ..MppiConfig::default()
    }
}

// =============================================================================================
// The DIAL schedule
// =============================================================================================

/// DIAL factors of the spread tests.
const A: f64 = 0.6;
const B: f64 = 0.8;

/// What the observer of the spread test measures at every iteration.
struct SpreadRecord {
    iteration: u64,
    /// `Planner::spread()`.
    spread: Vec<f64>,
    /// `sqrt(mean_i ε_{i,t,j}²)` per time step `t` and control `j` (row-major `T × m`).
    rms: Vec<f64>,
    /// `(proposal.log_prob(U_i), hand-computed density)` for a few samples.
    densities: Vec<(f64, f64)>,
}

struct RecordSpread {
    sigma: Vec<f64>,
    records: Vec<SpreadRecord>,
}

impl Observer for RecordSpread {
    fn on_iteration(&mut self, stats: &IterStats, planner: &Planner) -> ControlFlow<()> {
        let (t_len, m) = (planner.horizon(), planner.control_dim());
        let d = t_len * m;
        let eps = planner.perturbations();
        let n = planner.num_samples();
        let mut rms = vec![0.0; d];
        for row in eps.chunks_exact(d) {
            for (acc, e) in rms.iter_mut().zip(row) {
                *acc += e * e;
            }
        }
        rms.iter_mut().for_each(|v| *v = (*v / n as f64).sqrt());
        // the proposal now has the updated mean θ_{k+1} and this iteration's spread
        let mean = planner.mean();
        let spread = planner.spread();
        let samples = planner.samples();
        let densities = samples
            .chunks_exact(d)
            .take(5)
            .map(|u| {
                let mut hand = 0.0;
                for t in 0..t_len {
                    for j in 0..m {
                        let s = self.sigma[j] * spread[t];
                        let z = (u[t * m + j] - mean[t * m + j]) / s;
                        hand += -0.5 * (2.0 * std::f64::consts::PI).ln() - s.ln() - 0.5 * z * z;
                    }
                }
                (planner.proposal().log_prob(u).unwrap(), hand)
            })
            .collect();
        self.records.push(SpreadRecord {
            iteration: stats.iteration,
            spread: spread.to_vec(),
            rms,
            densities,
        });
        ControlFlow::Continue(())
    }
}

#[test]
fn dial_spread_is_sigma_times_a_to_the_k_times_b_to_the_remaining_steps() {
    let (t_len, m, n, iterations) = (6, 2, 4096, 4);
    let sigma = vec![0.5, 2.0];
    let cfg = MppiConfig {
        samples: n,
        horizon: t_len,
        iterations,
        seed: 21,
        proposal: ProposalConfig::gaussian(&sigma),
        schedule: ScheduleConfig::Dial(Dial {
            scale: 1.0,
            iteration_factor: A,
            horizon_factor: B,
            first_step_iterations: None,
        }),
        weighting: WeightingConfig::fixed(1.0),
        ..MppiConfig::default()
    };
    let mut planner = Planner::new(&cfg, m).unwrap();
    // a cost that moves the plan, so the samples are drawn around a changing mean
    let objective = FnObjective::new(t_len * m, |u: &[f64]| {
        u.iter().map(|v| (v - 0.3).powi(2)).sum::<f64>()
    });
    let mut record = RecordSpread {
        sigma: sigma.clone(),
        records: Vec::new(),
    };
    let outcome = planner.optimize(&objective, 0, &mut record).unwrap();
    assert_eq!(outcome.iterations, iterations);
    assert_eq!(record.records.len(), iterations);

    // the RMS of N normal draws estimates σ with relative standard error 1/√(2N)
    let tol = 5.0 / (2.0 * n as f64).sqrt();
    let mut worst = 0.0f64;
    let mut worst_density = 0.0f64;
    for r in &record.records {
        let k = r.iteration as i32;
        for t in 0..t_len {
            // powi may round differently with the optimization level: a few ulp
            let want = A.powi(k) * B.powi((t_len - 1 - t) as i32);
            assert!(
                (r.spread[t] - want).abs() <= 4.0 * f64::EPSILON * want,
                "spread of iteration {k}, step {t}: {} vs a^k b^(T-1-t) = {want}",
                r.spread[t]
            );
            for j in 0..m {
                let expected = sigma[j] * want;
                let ratio = r.rms[t * m + j] / expected;
                worst = worst.max((ratio - 1.0).abs());
                assert!(
                    (ratio - 1.0).abs() < tol,
                    "iteration {k}, step {t}, control {j}: sample std {} vs σ a^k b^(T-1-t) = \
                     {expected} (ratio {ratio}, tolerance {tol})",
                    r.rms[t * m + j]
                );
            }
        }
        for (got, hand) in &r.densities {
            let err = (got - hand).abs() / hand.abs().max(1.0);
            worst_density = worst_density.max(err);
            assert!(
                err <= 1e-12,
                "iteration {k}: log_prob {got} vs hand-computed N(μ, (σ s_t)²) density {hand}"
            );
        }
    }
    println!(
        "DIAL spread: exact in Planner::spread(); sample std / (σ a^k b^(T-1-t)) within {worst:.4} \
         of 1 (tolerance {tol:.4} = 5 standard errors, N = {n}); log_prob vs hand density: \
         relative error {worst_density:.1e} (tolerance 1e-12)"
    );
}

#[test]
fn first_step_iterations_changes_only_step_zero() {
    let run = |schedule: ScheduleConfig| {
        let cfg = MppiConfig {
            schedule,
            ..line_config()
        };
        let mut c = Controller::new(Line { spin: 0 }, ToOrigin, &cfg).unwrap();
        (0..3)
            .map(|_| {
                c.act(&[1.0]).unwrap();
                assert_eq!(c.report().status, Status::MaxIterations);
                c.report().iterations.len()
            })
            .collect::<Vec<_>>()
    };
    let dial = |first| {
        ScheduleConfig::Dial(Dial {
            first_step_iterations: first,
            ..Dial::default()
        })
    };
    assert_eq!(run(dial(Some(7))), [7, 3, 3]);
    assert_eq!(run(dial(Some(1))), [1, 3, 3]);
    assert_eq!(run(dial(None)), [3, 3, 3]);
    assert_eq!(run(ScheduleConfig::Constant), [3, 3, 3]);
}

#[test]
fn every_built_in_family_anneals_and_a_proposal_that_cannot_is_an_error_naming_it() {
    let objective = FnObjective::new(10, |u: &[f64]| u.iter().map(|v| v * v).sum());
    let cfg_of = |kind| {
        let mut cfg = MppiConfig {
            samples: 64,
            horizon: 10,
            u_min: Some(vec![-1.0]),
            u_max: Some(vec![1.0]),
            proposal: ProposalConfig::gaussian(&[0.5]).into_kind(kind),
            schedule: ScheduleConfig::Dial(Dial::default()),
            ..MppiConfig::default()
        };
        if kind == ProposalKind::Categorical {
            cfg.proposal.categories = Some(vec![-1.0, 0.0, 1.0]);
        }
        cfg
    };
    for kind in ProposalKind::ALL {
        let mut planner = Planner::new(&cfg_of(kind), 1).unwrap();
        planner.optimize(&objective, 0, &mut ()).unwrap();
        // the schedule's spread reached the proposal: the last iteration's is a^k b^(T-1-t)
        assert!(planner.spread()[0] < planner.spread()[9], "{}", kind.name());
        Controller::new(Line { spin: 0 }, ToOrigin, &cfg_of(kind)).unwrap();
    }
    // a proposal that keeps the default `prepare` refuses a spread, naming itself and the way
    // out, when the planner first iterates
    let cfg = cfg_of(ProposalKind::Gaussian);
    let own = common::Refit::new(
        mppi::proposal::GaussianFixed::new(10, 1, &[0.25], &[-1.0], &[1.0]).unwrap(),
        |_, _, _| {},
    );
    let err = Planner::with_proposal(&cfg, Box::new(own))
        .and_then(|mut p| p.optimize(&objective, 0, &mut ()))
        .expect_err("the default prepare refuses a spread");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            MppiError::InvalidConfig {
                field: "schedule",
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("refit") || text.contains("cannot change its spread"),
        "{text}"
    );
    assert!(text.contains("constant"), "the way out: {text}");
    println!("{text}");
}

// =============================================================================================
// How the loop stops
// =============================================================================================

#[test]
fn a_deadline_stops_the_loop_with_out_of_time() {
    let cfg = MppiConfig {
        iterations: 50,
        ..line_config()
    };
    let slow = || Line { spin: 200 };
    let mut c = Controller::new(
        slow(),
        ToOrigin,
        &MppiConfig {
            deadline_ms: Some(0.001),
            ..cfg.clone()
        },
    )
    .unwrap();
    c.act(&[1.0]).unwrap();
    let r = c.report();
    println!(
        "deadline 1 µs: {:?} after {} iterations in {:?}",
        r.status,
        r.iterations.len(),
        r.planning_time
    );
    assert_eq!(r.status, Status::OutOfTime);
    assert!(
        (1..50).contains(&r.iterations.len()),
        "{}",
        r.iterations.len()
    );
    assert!(c.plan().iter().all(|u| u.is_finite()));

    let mut c = Controller::new(slow(), ToOrigin, &cfg).unwrap();
    c.act(&[1.0]).unwrap();
    let r = c.report();
    println!(
        "no deadline: {:?} after {} iterations in {:?}",
        r.status,
        r.iterations.len(),
        r.planning_time
    );
    assert_eq!(r.status, Status::MaxIterations);
    assert_eq!(r.iterations.len(), 50);

    // the planner directly: a deadline already past still runs one iteration; a far one runs
    // them all
    let objective = FnObjective::new(10, |u: &[f64]| u.iter().map(|v| v * v).sum());
    let mut p = Planner::new(&cfg, 1).unwrap();
    let past = Deadline::after(Duration::ZERO);
    let o = p
        .optimize_until(&objective, None, 0, past, &mut ())
        .unwrap();
    assert_eq!((o.status, o.iterations), (Status::OutOfTime, 1));
    let far = Deadline::after(Duration::from_secs(3600));
    let o = p.optimize_until(&objective, None, 1, far, &mut ()).unwrap();
    assert_eq!((o.status, o.iterations), (Status::MaxIterations, 50));
}

/// Stops the loop after `after` iterations.
struct StopAfter {
    after: usize,
    seen: Vec<u64>,
}

impl Observer for StopAfter {
    fn on_iteration(&mut self, stats: &IterStats, _planner: &Planner) -> ControlFlow<()> {
        self.seen.push(stats.iteration);
        if self.seen.len() >= self.after {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

#[test]
fn an_observer_that_breaks_stops_the_loop_with_done() {
    let cfg = MppiConfig {
        iterations: 10,
        ..line_config()
    };
    let objective = FnObjective::new(10, |u: &[f64]| u.iter().map(|v| v * v).sum());
    let mut p = Planner::new(&cfg, 1).unwrap();
    let mut stop = StopAfter {
        after: 3,
        seen: Vec::new(),
    };
    let o = p.optimize(&objective, 0, &mut stop).unwrap();
    assert_eq!(o.status, Status::Done);
    assert_eq!(o.iterations, 3);
    assert_eq!(o.last.iteration, 2);
    assert_eq!(stop.seen, [0, 1, 2]);

    let mut c = Controller::new(Line { spin: 0 }, ToOrigin, &cfg).unwrap();
    let mut stop = StopAfter {
        after: 3,
        seen: Vec::new(),
    };
    c.act_observed(&[1.0], &mut stop).unwrap();
    assert_eq!(c.report().status, Status::Done);
    assert_eq!(c.report().iterations.len(), 3);
    // the next step runs its iterations again
    c.act(&[1.0]).unwrap();
    assert_eq!(c.report().status, Status::MaxIterations);
    assert_eq!(c.report().iterations.len(), 10);
}

// =============================================================================================
// Whole-batch objectives
// =============================================================================================

/// The cost of both paths of the batch test.
fn wavy(u: &[f64]) -> f64 {
    u.iter()
        .enumerate()
        .map(|(i, v)| (v - 0.5 * (0.3 * i as f64).sin()).powi(2) + 0.1 * (3.0 * v).cos())
        .sum()
}

/// `wavy` over the whole batch, counting calls and batch sizes; the block path counts too.
struct CountingBatch {
    dim: usize,
    batch_calls: AtomicUsize,
    block_calls: AtomicUsize,
    sizes: Mutex<Vec<usize>>,
}

impl Objective for CountingBatch {
    fn dim(&self) -> usize {
        self.dim
    }
    fn evaluate(&self, decisions: &[f64], costs: &mut [f64], _scratch: &mut [f64]) {
        self.block_calls.fetch_add(1, Ordering::Relaxed);
        for (c, u) in costs.iter_mut().zip(decisions.chunks_exact(self.dim)) {
            *c = wavy(u);
        }
    }
    fn evaluates_batch(&self) -> bool {
        true
    }
    fn evaluate_batch(&self, decisions: &[f64], costs: &mut [f64]) -> Result<(), MppiError> {
        self.batch_calls.fetch_add(1, Ordering::Relaxed);
        self.sizes.lock().unwrap().push(costs.len());
        assert_eq!(decisions.len(), costs.len() * self.dim);
        for (c, u) in costs.iter_mut().zip(decisions.chunks_exact(self.dim)) {
            *c = wavy(u);
        }
        Ok(())
    }
}

#[test]
fn a_batch_objective_is_called_once_per_iteration_with_every_sample() {
    // N·T = 6000 ≥ split::MIN_WORK: the batch run may sample on two threads, the
    // block run on one; N is not a multiple of the block size
    let (n, t_len, iterations) = (300, 20, 5);
    let cfg = |threads| MppiConfig {
        samples: n,
        horizon: t_len,
        iterations,
        seed: 77,
        threads,
        proposal: ProposalConfig::gaussian(&[0.7]),
        weighting: WeightingConfig::fixed(0.5),
        ..MppiConfig::default()
    };
    let batch = CountingBatch {
        dim: t_len,
        batch_calls: AtomicUsize::new(0),
        block_calls: AtomicUsize::new(0),
        sizes: Mutex::new(Vec::new()),
    };
    let mut a = Planner::new(&cfg(2), 1).unwrap();
    let o = a.optimize(&batch, 0, &mut ()).unwrap();
    assert_eq!(o.iterations, iterations);
    assert_eq!(batch.batch_calls.load(Ordering::Relaxed), iterations);
    assert_eq!(batch.block_calls.load(Ordering::Relaxed), 0);
    assert_eq!(*batch.sizes.lock().unwrap(), vec![n; iterations]);

    let blocks = FnObjective::new(t_len, wavy);
    let mut b = Planner::new(&cfg(1), 1).unwrap();
    b.optimize(&blocks, 0, &mut ()).unwrap();
    assert_eq!(bits(a.mean()), bits(b.mean()), "plans differ");
    assert_eq!(bits(a.costs()), bits(b.costs()), "last costs differ");
    assert_eq!(
        bits(&a.samples()),
        bits(&b.samples()),
        "last samples differ"
    );
    assert!(a.mean().iter().any(|v| *v != 0.0), "the plan did not move");
    println!(
        "batch objective: {iterations} calls of {n} samples; plan bit-identical to the block path"
    );
}

#[test]
fn an_error_from_evaluate_batch_is_returned_not_a_panic() {
    let failing = BatchFnObjective::new(10, |_u: &[f64], _c: &mut [f64]| {
        Err(MppiError::NonFinite {
            what: "callback result",
            index: 7,
        })
    });
    let cfg = line_config();
    let mut p = Planner::new(&cfg, 1).unwrap();
    let before = p.mean().to_vec();
    let err = p.iterate(&failing, 0, 0).unwrap_err();
    assert_eq!(
        err,
        MppiError::NonFinite {
            what: "callback result",
            index: 7
        }
    );
    assert_eq!(
        bits(p.mean()),
        bits(&before),
        "a failed iteration moved the plan"
    );
    assert!(p.optimize(&failing, 0, &mut ()).is_err());
    // the planner is still usable afterwards
    let ok = FnObjective::new(10, |u: &[f64]| u.iter().map(|v| (v - 1.0).powi(2)).sum());
    p.iterate(&ok, 0, 0).unwrap();
    assert!(p.mean().iter().all(|v| v.is_finite()));
}

// =============================================================================================
// The weighting contract
// =============================================================================================

/// Ordinary costs, extremes, a huge spread, and non-finite values.
fn cost() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => -1e3..1e3f64,
        1 => -1e300..1e300f64,
        2 => prop::sample::select(vec![
            1e308, -1e308, 1e-308, -1e-308, 0.0, -0.0, f64::MAX, f64::MIN,
            f64::MIN_POSITIVE, 5e-324, -5e-324,
        ]),
        1 => prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY]),
    ]
}

/// Every temperature rule: fixed `λ` log-uniform on `[f64::MIN_POSITIVE, 1e300]` (and the two
/// ends), `std_normalized` with `κ` log-uniform on `[1e-100, 1e100]`, `ess_target` on
/// `[0.001, 1]`.
fn temperature() -> impl Strategy<Value = Temperature> {
    let (lo, hi) = (f64::MIN_POSITIVE.ln(), 1e300f64.ln());
    prop_oneof![
        (lo..=hi).prop_map(|l| Temperature::Fixed(l.exp().clamp(f64::MIN_POSITIVE, 1e300))),
        prop::sample::select(vec![f64::MIN_POSITIVE, 1e300]).prop_map(Temperature::Fixed),
        (-230.0..230.0f64).prop_map(|k| Temperature::StdNormalized(k.exp())),
        (0.001..=1.0f64).prop_map(Temperature::EssTarget),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn softmax_weights_are_finite_nonnegative_and_normalized(
        costs in prop::collection::vec(cost(), 1..64),
        temperature in temperature(),
        elite_fraction in prop::option::of(0.0..=1.0f64),
        scale in prop::sample::select(vec![1.0, 0.5, 1e-3]),
    ) {
        let n = costs.len();
        let elites = elite_fraction.map(|f| ((f * n as f64).ceil() as usize).clamp(1, n));
        let mut softmax = Softmax::new(temperature, elites, n);
        let mut w = vec![f64::NAN; n];
        let stats = softmax.weigh(&costs, scale, &mut w);
        for (i, (wi, c)) in w.iter().zip(&costs).enumerate() {
            prop_assert!(wi.is_finite() && *wi >= 0.0, "weight {} = {} (cost {})", i, wi, c);
            if !c.is_finite() {
                prop_assert!(*wi == 0.0, "cost {} = {} has weight {}", i, c, wi);
            }
        }
        let finite = costs.iter().filter(|c| c.is_finite()).count();
        prop_assert_eq!(stats.nonfinite, n - finite);
        let sum: f64 = w.iter().sum();
        if finite > 0 {
            prop_assert!((sum - 1.0).abs() <= 1e-12, "weights sum to {}", sum);
            prop_assert!(
                stats.lambda.is_finite() && stats.lambda > 0.0,
                "λ = {} ({:?}, scale {})", stats.lambda, temperature, scale
            );
        } else {
            prop_assert_eq!(sum, 0.0);
        }
    }
}

#[test]
fn softmax_weights_of_known_costs() {
    // the contract on hand-picked extremes, with the weights known exactly
    let mut w = [0.0; 6];
    let costs = [
        f64::NAN,
        1e308,
        -1e308,
        f64::INFINITY,
        -1e308,
        f64::NEG_INFINITY,
    ];
    let stats =
        Softmax::new(Temperature::Fixed(f64::MIN_POSITIVE), None, 6).weigh(&costs, 1.0, &mut w);
    assert_eq!(w, [0.0, 0.0, 0.5, 0.0, 0.5, 0.0]);
    assert_eq!(stats.nonfinite, 3);
    // opposite extremes: the difference overflows to +inf and the weight is exactly 0
    let stats = Softmax::new(Temperature::EssTarget(0.5), None, 2).weigh(
        &[f64::MAX, f64::MIN],
        1.0,
        &mut w[..2],
    );
    assert_eq!(&w[..2], &[0.0, 1.0]);
    assert!(stats.lambda.is_finite() && stats.lambda > 0.0);
}

/// Regression test: a temperature that underflowed to 0 gave NaN weights. `std_normalized` computes `λ = κ · std(J)`, which is 0 for
/// a valid but tiny `κ` ; the same happened when a [`Schedule`]'s `temperature_scale`
/// underflowed a fixed `λ` or was 0, and a scale that overflowed reported `λ = inf`. The
/// weighting now clamps `λ` to `[f64::MIN_POSITIVE, f64::MAX]`, and the planner rejects a
/// scale that is not finite and > 0.
#[test]
fn softmax_weights_stay_finite_when_the_temperature_underflows() {
    let cases = [
        (Temperature::StdNormalized(1e-300), 1.0),
        (Temperature::Fixed(f64::MIN_POSITIVE), 1e-300),
        (Temperature::Fixed(1.0), 0.0),
        (Temperature::Fixed(1e300), 1e10),
    ];
    for (temperature, scale) in cases {
        let mut w = [f64::NAN; 2];
        let stats = Softmax::new(temperature, None, 2).weigh(&[1e-100, -1e-100], scale, &mut w);
        assert!(
            w.iter().all(|v| v.is_finite() && *v >= 0.0) && (w[0] + w[1] - 1.0).abs() <= 1e-12,
            "{temperature:?} × {scale}: weights {w:?}"
        );
        assert!(
            stats.lambda.is_finite() && stats.lambda > 0.0,
            "{temperature:?} × {scale}: λ = {}",
            stats.lambda
        );
    }
}

// =============================================================================================
// Custom stages through `Stages`
// =============================================================================================

/// All the weight on sample 0; records every temperature scale it is handed.
#[derive(Debug, Default)]
struct FirstOnly {
    scales: Arc<Mutex<Vec<f64>>>,
}

impl Weighting for FirstOnly {
    fn weigh(&mut self, costs: &[f64], temperature_scale: f64, weights: &mut [f64]) -> WeightStats {
        self.scales.lock().unwrap().push(temperature_scale);
        weights.fill(0.0);
        weights[0] = 1.0;
        WeightStats {
            lambda: 1.0,
            ess: 1.0,
            max_weight: 1.0,
            min_cost: costs[0],
            mean_cost: costs[0],
            ..WeightStats::default()
        }
    }
}

/// `θ_{k+1} = θ_k + ¼ (θ_EM − θ_k)`, counting calls.
#[derive(Debug, Default)]
struct Quarter {
    calls: Arc<AtomicUsize>,
}

impl Update for Quarter {
    fn propose(
        &mut self,
        theta_k: &[f64],
        theta_em: &[f64],
        _prev: &[f64],
        out: &mut [f64],
    ) -> Step {
        self.calls.fetch_add(1, Ordering::Relaxed);
        for ((o, k), em) in out.iter_mut().zip(theta_k).zip(theta_em) {
            *o = k + 0.25 * (em - k);
        }
        Step::Candidate { safeguarded: false }
    }
}

/// Spread 0.5 everywhere and temperature × 0.25.
#[derive(Debug)]
struct HalfSpread;

impl Schedule for HalfSpread {
    fn before_iteration(&mut self, _: u64, _: u64, _: u64, spread: &mut [f64]) -> Annealing {
        spread.fill(0.5);
        Annealing {
            scaled: true,
            temperature_scale: 0.25,
            reverse: None,
        }
    }
}

#[test]
fn custom_weighting_update_and_schedule_are_the_ones_used() {
    let (t_len, d) = (4, 4);
    let cfg = MppiConfig {
        samples: 50,
        horizon: t_len,
        iterations: 1,
        seed: 13,
        proposal: ProposalConfig::gaussian(&[1.0]),
        weighting: WeightingConfig::fixed(0.1),
        ..MppiConfig::default()
    };
    // a cost whose softmax would not pick sample 0
    let objective = FnObjective::new(d, |u: &[f64]| u.iter().map(|v| (v - 2.0).powi(2)).sum());
    let sample0 = |p: &Planner| {
        let mut u = vec![0.0; d];
        p.sample(0, &mut u).unwrap();
        u
    };

    // the built-in stages: the plan is a weighted mean, not sample 0
    let mut plain = Planner::new(&cfg, 1).unwrap();
    plain.iterate(&objective, 0, 0).unwrap();
    assert_ne!(bits(plain.mean()), bits(&sample0(&plain)));

    // weighting: one EM step of the fixed Gaussian moves the plan exactly onto sample 0
    let first = FirstOnly::default();
    let scales = first.scales.clone();
    let mut stages = Stages::from_config(&cfg, 1).unwrap();
    stages.weighting = Box::new(first);
    let mut p = Planner::with_stages(&cfg, stages).unwrap();
    p.iterate(&objective, 0, 0).unwrap();
    assert_eq!(bits(p.mean()), bits(&sample0(&p)));
    // the same samples as the built-in run: only the weights differ
    assert_eq!(bits(&p.samples()), bits(&plain.samples()));
    assert_eq!(*scales.lock().unwrap(), [1.0]);

    // update: a quarter of the way from the zero plan to sample 0
    let (first, quarter) = (FirstOnly::default(), Quarter::default());
    let calls = quarter.calls.clone();
    let mut stages = Stages::from_config(&cfg, 1).unwrap();
    stages.weighting = Box::new(first);
    stages.update = Box::new(quarter);
    let mut p = Planner::with_stages(&cfg, stages).unwrap();
    p.iterate(&objective, 0, 0).unwrap();
    let want: Vec<f64> = sample0(&p).iter().map(|u| 0.25 * u).collect();
    assert_eq!(bits(p.mean()), bits(&want));
    assert_eq!(calls.load(Ordering::Relaxed), 1);

    // schedule: its spread reaches the samples and its temperature scale the weighting
    let first = FirstOnly::default();
    let scales = first.scales.clone();
    let mut stages = Stages::from_config(&cfg, 1).unwrap();
    stages.weighting = Box::new(first);
    stages.schedule = Box::new(HalfSpread);
    let mut p = Planner::with_stages(&cfg, stages).unwrap();
    p.iterate(&objective, 0, 0).unwrap();
    assert_eq!(p.spread(), [0.5; 4]);
    assert_eq!(*scales.lock().unwrap(), [0.25]);
    // same streams, half the spread, around the same (zero) plan: exactly half the samples
    let halved: Vec<f64> = plain.samples().iter().map(|u| 0.5 * u).collect();
    assert_eq!(bits(&p.samples()), bits(&halved));
}
