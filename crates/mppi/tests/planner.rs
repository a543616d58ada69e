//! Planner behaviour that mutation testing (`cargo mutants`, README developer notes) found
//! untested: each test kills mutants of `planner.rs` that every other test let live, and
//! names them.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::Duration;

mod common;
use common::Refit;

use mppi::{
    Acceleration, Annealing, BatchFnObjective, Deadline, FnObjective, IterStats, MppiConfig,
    Observer, Planner, ProposalConfig, ProposalKind, Schedule, Stages, Status, UpdateConfig,
    WeightingConfig,
};

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn quadratic(d: usize) -> FnObjective<impl Fn(&[f64]) -> f64 + Send + Sync> {
    FnObjective::new(d, |u: &[f64]| {
        u.iter()
            .enumerate()
            .map(|(j, v)| (v - 0.3 - 0.1 * j as f64).powi(2))
            .sum()
    })
}

fn config() -> MppiConfig {
    MppiConfig {
        samples: 200,
        horizon: 4,
        iterations: 4,
        seed: 5,
        weighting: WeightingConfig::fixed(0.5),
        ..MppiConfig::default()
    }
}

/// Records every iteration's parameters.
struct Params(Vec<Vec<f64>>);
impl Observer for Params {
    fn on_iteration(&mut self, _s: &IterStats, p: &Planner) -> ControlFlow<()> {
        self.0.push(p.proposal().params().to_vec());
        ControlFlow::Continue(())
    }
}

/// Kills `Stages::around: == → !=` (heavy ball's momentum dropped): with `acceleration =
/// heavy_ball`, `β > 0` changes the iterates from the second iteration on, and the step is
/// `θ_{k+1} = θ_k + α(θ_EM − θ_k) + β(θ_k − θ_{k−1})` with the same `θ_EM` as plain EM there.
#[test]
fn heavy_ball_momentum_reaches_the_update() {
    let run = |acceleration, momentum| {
        let cfg = MppiConfig {
            update: UpdateConfig {
                acceleration,
                momentum,
                safeguard: false,
                ..UpdateConfig::default()
            },
            ..config()
        };
        let mut p = Planner::new(&cfg, 1).unwrap();
        let mut seen = Params(vec![p.proposal().params().to_vec()]);
        p.optimize(&quadratic(4), 0, &mut seen).unwrap();
        seen.0
    };
    let plain = run(Acceleration::None, 0.0);
    let heavy = run(Acceleration::HeavyBall, 0.5);
    // iteration 0 has no history: identical
    assert_eq!(bits(&plain[1]), bits(&heavy[1]));
    // iteration 1: same samples and weights from the same θ_1, so θ_EM is plain[2]; the heavy
    // ball adds β (θ_1 − θ_0)
    for j in 0..plain[2].len() {
        let expected = plain[2][j] + 0.5 * (heavy[1][j] - heavy[0][j]);
        assert!(
            (heavy[2][j] - expected).abs() <= 1e-12 * (1.0 + expected.abs()),
            "entry {j}: heavy ball {} vs θ_EM + β(θ_1 − θ_0) = {expected}",
            heavy[2][j]
        );
    }
    assert_ne!(bits(&plain[2]), bits(&heavy[2]));
    println!("heavy ball iteration 1 = θ_EM + β(θ_1 − θ_0) (1e-12), and differs from plain EM");
}

/// Kills `Deadline::no_time_for: + → −`: the loop must stop before an iteration that would
/// end past the deadline, predicted from the longest one so far. Every iteration sleeps 20 ms
/// (one batch call), so with a 30 ms budget the second would end at ≥ 40 ms: exactly one runs,
/// however slow the machine (the mutant compares `now − 20 ms`, always before the deadline
/// after one iteration, and runs a second). The `>` → `>=` mutant is equivalent:
/// `now + next == deadline` to the nanosecond has probability zero.
#[test]
fn a_deadline_shorter_than_two_iterations_runs_exactly_one() {
    let slow = BatchFnObjective::new(4, |u: &[f64], out: &mut [f64]| {
        std::thread::sleep(Duration::from_millis(20));
        for (o, row) in out.iter_mut().zip(u.chunks_exact(4)) {
            *o = row.iter().map(|v| v * v).sum();
        }
        Ok(())
    });
    let cfg = MppiConfig {
        iterations: 10,
        ..config()
    };
    let mut p = Planner::new(&cfg, 1).unwrap();
    let o = p
        .optimize_until(
            &slow,
            None,
            0,
            Deadline::after(Duration::from_millis(30)),
            &mut (),
        )
        .unwrap();
    println!(
        "20 ms iterations, 30 ms budget: {:?} after {} iteration(s)",
        o.status, o.iterations
    );
    assert_eq!((o.status, o.iterations), (Status::OutOfTime, 1));
}

/// Kills `Planner::assemble: > → <` on `control_cost_gamma`: the control-cost term needs a
/// Gaussian proposal, and a config that asks for it with another proposal is an error naming
/// the key (not a silent no-op).
#[test]
fn control_cost_with_a_non_gaussian_proposal_is_an_error() {
    let cfg = MppiConfig {
        u_min: Some(vec![-1.0]),
        u_max: Some(vec![1.0]),
        proposal: ProposalConfig {
            categories: Some(vec![-1.0, 0.0, 1.0]),
            ..ProposalConfig::new(ProposalKind::Categorical)
        },
        weighting: WeightingConfig {
            control_cost_gamma: 0.5,
            ..WeightingConfig::fixed(0.5)
        },
        ..config()
    };
    let Err(e) = Planner::new(&cfg, 1) else {
        panic!("control_cost_gamma > 0 with a categorical proposal was accepted");
    };
    let e = e.to_string();
    assert!(e.contains("weighting.control_cost_gamma"), "{e}");
    // and γ = 0 with the same proposal builds
    let cfg = MppiConfig {
        weighting: WeightingConfig::fixed(0.5),
        ..cfg
    };
    Planner::new(&cfg, 1).unwrap();
}

/// Kills `Planner::assemble: > → <, ==, >=` on `threads`: with `threads = 2` and
/// `parallel = always` the samples are evaluated on the pool's threads, never on the caller,
/// and the report says so; with `threads = 1` all on the calling thread.
#[test]
fn threads_decide_where_samples_are_evaluated() {
    let seen: Mutex<HashSet<ThreadId>> = Mutex::new(HashSet::new());
    let objective = FnObjective::new(32, |u: &[f64]| {
        seen.lock().unwrap().insert(std::thread::current().id());
        u.iter().map(|v| v * v).sum()
    });
    let caller = std::thread::current().id();
    for threads in [1, 2] {
        seen.lock().unwrap().clear();
        let cfg = MppiConfig {
            samples: 1024,
            horizon: 32,
            iterations: 3,
            threads,
            parallel: mppi::Parallel::Always,
            ..config()
        };
        let mut p = Planner::new(&cfg, 1).unwrap();
        let outcome = p.optimize(&objective, 0, &mut ()).unwrap();
        assert_eq!(outcome.last.parallel, threads > 1);
        let ids = seen.lock().unwrap().clone();
        println!(
            "threads = {threads}: evaluated on {} thread(s), caller among them: {}",
            ids.len(),
            ids.contains(&caller)
        );
        if threads == 1 {
            assert_eq!(ids, HashSet::from([caller]));
        } else {
            assert!(!ids.contains(&caller), "the caller evaluated samples");
            assert!(!ids.is_empty() && ids.len() <= 2, "{} threads", ids.len());
        }
    }
}

/// `parallel = "auto"` measures before it decides: the first iteration warms the pool up, then
/// the caller and the pool alternate until each has `split::TRIALS` timed iterations, and the
/// report says where each ran; the plans are those of one thread throughout.
#[test]
fn auto_split_measures_both_and_changes_no_result() {
    let objective = FnObjective::new(32, |u: &[f64]| u.iter().map(|v| v * v).sum());
    let run = |threads| {
        let cfg = MppiConfig {
            samples: 512,
            horizon: 32,
            iterations: 1,
            threads,
            ..config()
        };
        let mut p = Planner::new(&cfg, 1).unwrap();
        let mut wheres = Vec::new();
        let mut means = Vec::new();
        for step in 0..24 {
            let outcome = p.optimize(&objective, step, &mut ()).unwrap();
            wheres.push(outcome.last.parallel);
            means.extend_from_slice(p.mean());
        }
        (wheres, means)
    };
    let (one_where, one) = run(1);
    let (two_where, two) = run(2);
    assert!(one_where.iter().all(|p| !p));
    let trials = mppi::split::TRIALS as usize;
    let calibration = &two_where[..1 + 2 * trials];
    assert!(calibration[0], "the warm-up runs on the pool");
    assert_eq!(calibration.iter().filter(|p| **p).count(), 1 + trials);
    // after the measurement one mode only
    assert!(two_where[1 + 2 * trials..].windows(2).all(|w| w[0] == w[1]));
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&one), bits(&two));
}

/// Kills `Planner::reset → ()`: reset returns the distribution and the plan to their initial
/// values after the planner has moved them.
#[test]
fn reset_restores_the_initial_distribution() {
    let mut p = Planner::new(&config(), 1).unwrap();
    let (params, plan) = (p.proposal().params().to_vec(), p.mean().to_vec());
    p.optimize(&quadratic(4), 0, &mut ()).unwrap();
    assert_ne!(bits(p.mean()), bits(&plan), "the planner did not move");
    p.reset();
    assert_eq!(bits(p.proposal().params()), bits(&params));
    assert_eq!(bits(p.mean()), bits(&plan));
}

/// A schedule that scales the temperature by a fixed factor.
#[derive(Debug)]
struct TemperatureScale(f64);

impl Schedule for TemperatureScale {
    fn before_iteration(&mut self, _: u64, _: u64, _: u64, _: &mut [f64]) -> Annealing {
        Annealing {
            scaled: false,
            temperature_scale: self.0,
            reverse: None,
        }
    }
}

/// Kills `Planner::iterate_from: && → ||, > → >=` on the schedule's temperature scale: a scale
/// of 0, a negative one, `+∞` or NaN is an error naming the schedule (a weighting with `λ·0`
/// would be one-hot, with `λ·∞` uniform, both silently), and a positive finite one runs.
#[test]
fn a_schedule_temperature_scale_must_be_finite_and_positive() {
    for scale in [0.0, -1.0, f64::INFINITY, f64::NAN, 0.5] {
        let cfg = config();
        let mut stages = Stages::from_config(&cfg, 1).unwrap();
        stages.schedule = Box::new(TemperatureScale(scale));
        let mut p = Planner::with_stages(&cfg, stages).unwrap();
        let r = p.iterate(&quadratic(4), 0, 0);
        if scale == 0.5 {
            r.unwrap();
        } else {
            let e = r
                .err()
                .unwrap_or_else(|| panic!("scale {scale} accepted"))
                .to_string();
            assert!(
                e.contains("schedule") && e.contains("temperature scale"),
                "{e}"
            );
        }
    }
}

/// Records every iteration's statistics and parameters.
struct Trace(Vec<(IterStats, Vec<f64>)>);
impl Observer for Trace {
    fn on_iteration(&mut self, s: &IterStats, p: &Planner) -> ControlFlow<()> {
        self.0.push((*s, p.proposal().params().to_vec()));
        ControlFlow::Continue(())
    }
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Kills `Planner::step: == → !=` on the diagnostics level: with full diagnostics the
/// contraction of iteration `k ≥ 1` is `‖θ_{k+1} − θ_k‖ / ‖θ_k − θ_{k−1}‖` of the parameters
/// the planner went through (NaN at iteration 0), and with basic diagnostics it is not
/// measured (NaN).
#[test]
fn contraction_is_the_ratio_of_successive_parameter_steps() {
    for diagnostics in [mppi::DiagnosticsLevel::Full, mppi::DiagnosticsLevel::Basic] {
        let cfg = MppiConfig {
            diagnostics,
            ..config()
        };
        let mut p = Planner::new(&cfg, 1).unwrap();
        let mut trace = Trace(vec![(IterStats::default(), p.proposal().params().to_vec())]);
        p.optimize(&quadratic(4), 0, &mut trace).unwrap();
        let t = &trace.0;
        assert!(
            t[1].0.contraction.is_nan(),
            "iteration 0 has no previous step"
        );
        for k in 2..t.len() {
            let measured = t[k].0.contraction;
            if diagnostics == mppi::DiagnosticsLevel::Basic {
                assert!(measured.is_nan(), "basic diagnostics measured {measured}");
                continue;
            }
            let expected = distance(&t[k].1, &t[k - 1].1) / distance(&t[k - 1].1, &t[k - 2].1);
            assert!(
                (measured - expected).abs() <= 1e-12 * expected,
                "iteration {}: contraction {measured} vs {expected}",
                k - 1
            );
        }
    }
}

/// Kills `Planner::sample_and_evaluate: > → ==` on `control_cost_gamma` for whole-batch
/// objectives: the control-cost term is added to batch costs exactly as to block costs, so
/// the same problem gives the same plan either way.
#[test]
fn batch_objectives_get_the_control_cost_term_too() {
    let cfg = MppiConfig {
        weighting: WeightingConfig {
            control_cost_gamma: 0.5,
            ..WeightingConfig::fixed(0.5)
        },
        ..config()
    };
    let cost = |u: &[f64]| -> f64 {
        u.iter()
            .enumerate()
            .map(|(j, v)| (v - 0.3 - 0.1 * j as f64).powi(2))
            .sum()
    };
    let batch = BatchFnObjective::new(4, |u: &[f64], out: &mut [f64]| {
        for (o, row) in out.iter_mut().zip(u.chunks_exact(4)) {
            *o = cost(row);
        }
        Ok(())
    });
    let mut a = Planner::new(&cfg, 1).unwrap();
    let mut b = Planner::new(&cfg, 1).unwrap();
    let (sa, sb) = (
        a.optimize(&FnObjective::new(4, cost), 0, &mut ()).unwrap(),
        b.optimize(&batch, 0, &mut ()).unwrap(),
    );
    let diff = distance(a.mean(), b.mean());
    println!(
        "γ = 0.5: per-sample vs batch objective: plans differ by {diff:.1e}, min cost {} vs {}",
        sa.last.weights.min_cost, sb.last.weights.min_cost
    );
    assert!(diff <= 1e-12, "plans differ by {diff}");
    assert_eq!(
        sa.last.weights.min_cost.to_bits(),
        sb.last.weights.min_cost.to_bits()
    );
    // and the term matters: without it the plan is another one
    let mut c = Planner::new(&config(), 1).unwrap();
    c.optimize(&batch, 0, &mut ()).unwrap();
    assert!(distance(c.mean(), b.mean()) > 1e-6);
}

/// Kills `StepRule::accelerated → true` and `> → ==` on the momentum: a damped step
/// (`α < 1`, no momentum) is not accelerated, so the safeguard never replaces it with the EM
/// step: `θ_1 = θ_0 + α(θ_EM − θ_0)` with `θ_EM` the plain EM step from the same samples.
#[test]
fn a_damped_step_is_taken_as_proposed_with_the_safeguard_on() {
    let run = |step_size| {
        let cfg = MppiConfig {
            iterations: 1,
            diagnostics: mppi::DiagnosticsLevel::Full,
            update: UpdateConfig {
                step_size,
                safeguard: true,
                ..UpdateConfig::default()
            },
            ..config()
        };
        let mut p = Planner::new(&cfg, 1).unwrap();
        let start = p.proposal().params().to_vec();
        let s = p.optimize(&quadratic(4), 0, &mut ()).unwrap();
        (start, p.proposal().params().to_vec(), s.last.fell_back)
    };
    let (start, em, _) = run(1.0);
    let (_, damped, fell_back) = run(0.5);
    assert!(!fell_back, "the damped step was replaced by the EM step");
    for j in 0..start.len() {
        let expected = start[j] + 0.5 * (em[j] - start[j]);
        assert!(
            (damped[j] - expected).abs() <= 1e-12 * (1.0 + expected.abs()),
            "entry {j}: {} vs θ_0 + ½(θ_EM − θ_0) = {expected}",
            damped[j]
        );
    }
}

/// Kills `Planner::step: > → >=` on the previous step norm: after an iteration that did not
/// move, the contraction of the next one is undefined (NaN), not `x / 0 = ∞`.
#[test]
fn contraction_after_a_zero_step_is_undefined() {
    let cfg = MppiConfig {
        diagnostics: mppi::DiagnosticsLevel::Full,
        ..config()
    };
    let inner = mppi::proposal::GaussianFixed::new(4, 1, &[0.25], &[-4.0], &[4.0]).unwrap();
    // the first M-step returns the old parameters (the call count is shared by the clones)
    let p = Refit::new(
        inner,
        |old: &mppi::proposal::GaussianFixed, out: &mut [f64], call| {
            if call == 0 {
                out.copy_from_slice(mppi::Proposal::params(old));
            }
        },
    );
    let mut planner =
        Planner::with_stages(&cfg, Stages::with_proposal(&cfg, Box::new(p)).unwrap()).unwrap();
    let mut trace = Trace(Vec::new());
    planner.optimize(&quadratic(4), 0, &mut trace).unwrap();
    let t = &trace.0;
    assert_eq!(t[0].0.update_norm, 0.0, "the first iteration must not move");
    assert!(t[1].0.update_norm > 0.0);
    assert!(
        t[1].0.contraction.is_nan(),
        "contraction {} after a zero step",
        t[1].0.contraction
    );
    assert!(t[2].0.contraction.is_finite());
}

/// Kills `Planner::surrogate_gains: += → −=, − → +` on the surrogate sum: with full
/// diagnostics the reported `surrogate_gain` is `log Σ_i w_i p_EM(U_i)/p_k(U_i)` and `q_gain`
/// is `Σ_i w_i log(p_EM(U_i)/p_k(U_i))`, recomputed here from the planner's samples and weights
/// and the proposals before and after the (plain EM) iteration.
#[test]
fn surrogate_and_mstep_gains_are_what_they_say() {
    let cfg = MppiConfig {
        diagnostics: mppi::DiagnosticsLevel::Full,
        ..config()
    };
    let mut p = Planner::new(&cfg, 1).unwrap();
    p.iterate(&quadratic(4), 0, 0).unwrap();
    let before = p.proposal().clone_box();
    let s = p.iterate(&quadratic(4), 0, 1).unwrap();
    let after = p.proposal();
    let (u, w) = (p.samples(), p.weights().to_vec());
    let r: Vec<(f64, f64)> = u
        .chunks_exact(4)
        .zip(&w)
        .filter(|(_, w)| **w > 0.0)
        .map(|(x, w)| (*w, after.log_prob(x).unwrap() - before.log_prob(x).unwrap()))
        .collect();
    let surrogate = r.iter().map(|(w, r)| w * r.exp()).sum::<f64>().ln();
    let q: f64 = r.iter().map(|(w, r)| w * r).sum();
    println!(
        "surrogate gain {} vs {surrogate}, q gain {} vs {q}",
        s.surrogate_gain, s.q_gain
    );
    assert!((s.surrogate_gain - surrogate).abs() <= 1e-10 * (1.0 + surrogate.abs()));
    assert!((s.q_gain - q).abs() <= 1e-10 * (1.0 + q.abs()));
}

/// Kills `StepRule::safeguarded → false`: the diagnostics level never changes the iterates,
/// also when a safeguarded accelerated step needs the log-densities that only full
/// diagnostics would otherwise compute.
#[test]
fn diagnostics_do_not_change_safeguarded_accelerated_steps() {
    let run = |diagnostics| {
        let cfg = MppiConfig {
            iterations: 6,
            diagnostics,
            update: UpdateConfig {
                step_size: 1.4,
                acceleration: Acceleration::OverRelaxed,
                safeguard: true,
                ..UpdateConfig::default()
            },
            ..config()
        };
        let mut p = Planner::new(&cfg, 1).unwrap();
        let mut trace = Trace(Vec::new());
        p.optimize(&quadratic(4), 0, &mut trace).unwrap();
        trace.0
    };
    let (basic, full) = (
        run(mppi::DiagnosticsLevel::Basic),
        run(mppi::DiagnosticsLevel::Full),
    );
    let fell_back = full.iter().filter(|(s, _)| s.fell_back).count();
    println!(
        "over-relaxed α = 1.4, safeguarded: {fell_back} of {} steps fell back",
        full.len()
    );
    // both outcomes occur, so a safeguard that decides on stale densities shows
    assert!(
        0 < fell_back && fell_back < full.len(),
        "{fell_back} of {}",
        full.len()
    );
    for ((a, pa), (b, pb)) in basic.iter().zip(&full) {
        assert_eq!(a.fell_back, b.fell_back, "iteration {}", a.iteration);
        assert_eq!(bits(pa), bits(pb), "iteration {}", a.iteration);
    }
}
