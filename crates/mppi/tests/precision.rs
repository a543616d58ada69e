//! Float32 rollouts (`precision = "f32"`): the same costs as float64 up to float32 rounding,
//! the same layouts agreeing bit for bit, deterministic on any number of threads, and a
//! controller that still converges.

use mppi::{
    Controller, Cost, Dynamics, MppiConfig, Normals, Objective, Precision, RolloutObjective,
};
use mppi::{ProposalConfig, WeightingConfig};

/// A damped point mass in the plane: `x = (px, py, vx, vy)`, `u = (ax, ay)`, with a `sin` so
/// the model is not linear. Only the scalar methods: the float32 path uses the defaults.
struct Mass;
impl Dynamics for Mass {
    fn state_dim(&self) -> usize {
        4
    }
    fn control_dim(&self) -> usize {
        2
    }
    fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        let dt = 0.05;
        next[2] = x[2] + (u[0] - 0.1 * x[2] + 0.2 * x[1].sin()) * dt;
        next[3] = x[3] + (u[1] - 0.1 * x[3]) * dt;
        next[0] = x[0] + next[2] * dt;
        next[1] = x[1] + next[3] * dt;
    }
}

/// Reach `(1, -1)`, with a terminal cost.
struct Reach;
impl Cost for Reach {
    fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 {
        (x[0] - 1.0).powi(2) + (x[1] + 1.0).powi(2) + 0.01 * (u[0] * u[0] + u[1] * u[1])
    }
    fn terminal(&self, x: &[f64]) -> f64 {
        10.0 * ((x[0] - 1.0).powi(2) + (x[1] + 1.0).powi(2))
    }
}

const T: usize = 25;

fn objective(precision: Precision) -> RolloutObjective<Mass, Reach> {
    let mut obj = RolloutObjective::new(Mass, Reach, T, 0.98)
        .expect("valid")
        .with_precision(precision);
    obj.set_state(&[0.2, 0.3, -0.5, 0.4]).expect("state");
    obj
}

/// `k` control sequences, row-major, and the same samples as SoA blocks of `BLOCK_LANES`.
fn decisions(k: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let d = 2 * T;
    let rows: Vec<f64> = (0..k * d)
        .map(|i| (i as f64 * 0.7318).sin() * 2.0)
        .collect();
    let blocks = rows
        .chunks(mppi::BLOCK_LANES * d)
        .map(|block| {
            let lanes = block.len() / d;
            let mut soa = vec![0.0; block.len()];
            for l in 0..lanes {
                for i in 0..d {
                    soa[i * lanes + l] = block[l * d + i];
                }
            }
            soa
        })
        .collect();
    (rows, blocks)
}

fn costs(obj: &RolloutObjective<Mass, Reach>, rows: &[f64], k: usize) -> Vec<f64> {
    let mut j = vec![0.0; k];
    let mut scratch = vec![0.0; obj.scratch_len(mppi::BLOCK_LANES)];
    obj.evaluate(rows, &mut j, &mut scratch);
    j
}

#[test]
fn float32_costs_match_float64_to_float32_rounding() {
    let k = 45; // a full block and a partial one
    let (rows, _) = decisions(k);
    let j64 = costs(&objective(Precision::F64), &rows, k);
    let j32 = costs(&objective(Precision::F32), &rows, k);
    let mut worst = 0.0f64;
    for (a, b) in j64.iter().zip(&j32) {
        worst = worst.max((a - b).abs() / a.abs());
    }
    // 25 steps of float32 state: relative error around 1e-7 per step, far below 1e-5
    assert!(worst < 1e-5, "relative cost error {worst:e}");
    assert!(
        worst > 0.0,
        "float32 rollouts must actually differ from float64"
    );
}

#[test]
fn float32_rows_and_blocks_agree_bit_for_bit() {
    let k = 45;
    let (rows, blocks) = decisions(k);
    let obj = objective(Precision::F32);
    let from_rows = costs(&obj, &rows, k);
    let mut scratch = vec![0.0; obj.scratch_len(mppi::BLOCK_LANES)];
    let mut from_blocks = Vec::new();
    for soa in &blocks {
        let lanes = soa.len() / (2 * T);
        let mut j = vec![0.0; lanes];
        obj.evaluate_block(&[], soa, &mut j, &mut scratch);
        from_blocks.extend(j);
    }
    assert_eq!(bits(&from_rows), bits(&from_blocks));
}

fn config(threads: usize) -> MppiConfig {
    MppiConfig {
        samples: 512,
        horizon: T,
        seed: 7,
        threads,
        precision: Precision::F32,
        proposal: ProposalConfig::gaussian(&[1.0]),
        weighting: WeightingConfig::fixed(0.3),
        ..MppiConfig::default()
    }
}

/// Closed loop: apply the first control to the float64 plant; the position reaches the target.
fn closed_loop(cfg: &MppiConfig, steps: usize) -> (Vec<f64>, Vec<f64>) {
    let mut ctrl = Controller::new(Mass, Reach, cfg).expect("valid");
    let mut x = vec![0.2, 0.3, -0.5, 0.4];
    let mut next = [0.0; 4];
    let mut plans = Vec::new();
    for _ in 0..steps {
        let u = ctrl.act(&x).expect("act").to_vec();
        plans.extend_from_slice(ctrl.plan());
        Mass.step(&x, &u, &mut next);
        x.copy_from_slice(&next);
    }
    (x, plans)
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|c| c.to_bits()).collect()
}

/// Closed loop with `cfg(1)` and `cfg(2)` (the pool forced, so that the blocks really split):
/// the same plans and states bit for bit, and the target reached. Returns the plans.
fn converges_identically_on_1_and_2_threads(cfg: impl Fn(usize) -> MppiConfig) -> Vec<f64> {
    let (x1, plans1) = closed_loop(&cfg(1), 120);
    let two = MppiConfig {
        parallel: mppi::Parallel::Always,
        ..cfg(2)
    };
    let (x2, plans2) = closed_loop(&two, 120);
    assert_eq!(bits(&plans1), bits(&plans2), "threads 1 vs 2");
    assert_eq!(bits(&x1), bits(&x2), "threads 1 vs 2");
    let miss = (x1[0] - 1.0).hypot(x1[1] + 1.0);
    assert!(miss < 0.05, "final position {x1:?}");
    plans1
}

#[test]
fn float32_controller_converges_and_is_deterministic_across_threads() {
    let plans = converges_identically_on_1_and_2_threads(config);
    // and the float32 plans are not the float64 ones (the setting is honored)
    let f64_cfg = MppiConfig {
        precision: Precision::F64,
        ..config(1)
    };
    let (_, plans64) = closed_loop(&f64_cfg, 3);
    assert_ne!(bits(&plans64), bits(&plans[..plans64.len()]));
}

#[test]
fn fast_normals_converge_and_are_deterministic_across_threads() {
    let plans = converges_identically_on_1_and_2_threads(|threads| MppiConfig {
        normals: Normals::Fast,
        ..config(threads)
    });
    // the setting is honored: other random numbers than the exact generator's
    let (_, exact) = closed_loop(&config(1), 3);
    assert_ne!(bits(&exact), bits(&plans[..exact.len()]));
}

#[test]
fn normals_is_a_config_key() {
    let cfg: MppiConfig = toml::from_str("normals = \"fast\"").expect("valid");
    assert_eq!(cfg.normals, Normals::Fast);
    assert_eq!(MppiConfig::default().normals, Normals::Exact);
    let err = toml::from_str::<MppiConfig>("normals = \"quick\"").expect_err("invalid");
    assert!(err.to_string().contains("exact"), "{err}");
}

#[test]
fn precision_is_a_config_key() {
    let cfg: MppiConfig = toml::from_str("precision = \"f32\"").expect("valid");
    assert_eq!(cfg.precision, Precision::F32);
    assert_eq!(MppiConfig::default().precision, Precision::F64);
    let err = toml::from_str::<MppiConfig>("precision = \"f16\"").expect_err("invalid");
    assert!(err.to_string().contains("f32"), "{err}");
}

/// A cost that is NaN in part of the space: those samples get zero weight in float32 too.
struct NanLeft;
impl Cost for NanLeft {
    fn running(&self, x: &[f64], _u: &[f64], _t: usize) -> f64 {
        if x[0] < 0.0 {
            f64::NAN
        } else {
            (x[0] - 1.0).powi(2)
        }
    }
}

#[test]
fn float32_nonfinite_costs_get_zero_weight() {
    let cfg = MppiConfig {
        samples: 64,
        horizon: 10,
        precision: Precision::F32,
        ..MppiConfig::default()
    };
    let mut ctrl = Controller::new(Mass, NanLeft, &cfg).expect("valid");
    let u = ctrl.act(&[0.01, 0.0, 0.0, 0.0]).expect("act").to_vec();
    assert!(u.iter().all(|v| v.is_finite()));
    let last = ctrl.report().last();
    assert!(last.weights.nonfinite > 0 && last.weights.nonfinite < 64);
    assert!(ctrl.plan().iter().all(|v| v.is_finite()));
    // every sample whose float32 rollout cost is NaN has weight exactly 0; the rest are a
    // distribution
    let planner = ctrl.planner();
    let (costs, weights) = (planner.costs(), planner.weights());
    let mut nan = 0;
    for (c, w) in costs.iter().zip(weights) {
        if c.is_finite() {
            assert!(w.is_finite() && *w >= 0.0, "cost {c}, weight {w}");
        } else {
            assert_eq!(*w, 0.0, "a NaN cost got weight {w}");
            nan += 1;
        }
    }
    assert_eq!(nan, last.weights.nonfinite);
    let sum: f64 = weights.iter().sum();
    assert!((sum - 1.0).abs() < 1e-12, "weights sum to {sum}");
}
