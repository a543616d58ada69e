//! What float32 rollouts would buy (issue 4's remaining lever), measured on the pendulum:
//! the hand-fused float64 reference step (`mppi_tasks::reference`) against the same step with
//! the rollout (controls, dynamics, cost) in float32, 8 lanes per AVX2 vector instead of 4.
//! Everything else is shared: the same float64 normals (`BlockRng`), float64 weights and M-step.
//!
//! `cargo run --release -p mppi-tasks --example f32_probe [steps]` prints both times per step
//! (interleaved rounds, medians) and how far the float32 plan is from the float64 one.
use std::time::Instant;

use mppi::BLOCK_LANES;
use mppi::fastmath::single::{sin as sin_f32, wrap_angle as wrap_f32};
use mppi::rng::BlockRng;
use mppi::weights::{Temperature, compute_weights};
use mppi_tasks::pendulum::{DT, G, L, M, MAX_SPEED, MAX_TORQUE};
use mppi_tasks::reference::{ReferenceKernel, ReferenceProblem};
use mppi_tasks::task_by_name;

const K: usize = 1000;
const T: usize = 30;

/// One control step with a float32 rollout; the plan, samples, weights and M-step are float64.
struct Float32Step {
    plan: Vec<f64>,
    samples: Vec<f64>,
    costs: Vec<f64>,
    weights: Vec<f64>,
    step: u64,
}

impl Float32Step {
    fn step(&mut self, x0: &[f64]) -> &[f64] {
        if self.step > 0 {
            self.plan.copy_within(1.., 0);
        }
        let (th0, thd0) = (x0[0] as f32, x0[1] as f32);
        for (b, (block, cost)) in self
            .samples
            .chunks_mut(BLOCK_LANES * T)
            .zip(self.costs.chunks_mut(BLOCK_LANES))
            .enumerate()
        {
            let lanes = cost.len();
            let mut rng = BlockRng::new(0, self.step, 0, b * BLOCK_LANES, lanes);
            rng.normal_rows(block);
            let mut th = [th0; BLOCK_LANES];
            let mut thd = [thd0; BLOCK_LANES];
            let mut acc = [0.0f32; BLOCK_LANES];
            let (th, thd, acc) = (&mut th[..lanes], &mut thd[..lanes], &mut acc[..lanes]);
            for (t, u) in block.chunks_exact_mut(lanes).enumerate() {
                let mu = self.plan[t];
                let mut uc = [0.0f32; BLOCK_LANES];
                for l in 0..lanes {
                    // noise σ = 1, bounds ±MAX_TORQUE: the sample stays float64 for the M-step
                    u[l] = (u[l] + mu).clamp(-MAX_TORQUE, MAX_TORQUE);
                    uc[l] = u[l] as f32;
                }
                for l in 0..lanes {
                    let a = wrap_f32(th[l]);
                    acc[l] += a * a + 0.1 * thd[l] * thd[l] + 0.001 * uc[l] * uc[l];
                    let v = (thd[l]
                        + (3.0 * G as f32 / (2.0 * L as f32) * sin_f32(th[l])
                            + 3.0 / (M * L * L) as f32 * uc[l])
                            * DT as f32)
                        .clamp(-MAX_SPEED as f32, MAX_SPEED as f32);
                    th[l] += v * DT as f32;
                    thd[l] = v;
                }
            }
            for (c, a) in cost.iter_mut().zip(acc.iter()) {
                *c = f64::from(*a);
            }
        }
        compute_weights(&self.costs, Temperature::Fixed(1.0), &mut self.weights);
        // M-step from the block layout, each coordinate summed in sample order
        self.plan.fill(0.0);
        for (block, w) in self
            .samples
            .chunks(BLOCK_LANES * T)
            .zip(self.weights.chunks(BLOCK_LANES))
        {
            let lanes = w.len();
            for (i, p) in self.plan.iter_mut().enumerate() {
                for (wl, v) in w.iter().zip(&block[i * lanes..(i + 1) * lanes]) {
                    *p += wl * v;
                }
            }
        }
        self.step += 1;
        &self.plan
    }
}

fn main() {
    let steps: usize = std::env::args()
        .nth(1)
        .map_or(2000, |v| v.parse().expect("steps"));
    let task = task_by_name("pendulum").expect("task");
    let config = mppi::MppiConfig {
        samples: K,
        horizon: T,
        ..task.default_config()
    };
    let x = task.initial_state();
    let mut reference = ReferenceKernel::new(ReferenceProblem::Pendulum, &config).expect("config");
    let mut f32_step = Float32Step {
        plan: vec![0.0; T],
        samples: vec![0.0; K * T],
        costs: vec![0.0; K],
        weights: vec![0.0; K],
        step: 0,
    };
    // how far apart the first plans are
    let a = reference.step(&x).to_vec();
    let b = f32_step.step(&x).to_vec();
    let gap = a
        .iter()
        .zip(&b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max);
    let (mut t64, mut t32) = (vec![], vec![]);
    for _ in 0..15 {
        let start = Instant::now();
        for _ in 0..steps / 15 {
            std::hint::black_box(reference.step(std::hint::black_box(&x))[0]);
        }
        t64.push(start.elapsed().as_secs_f64() / (steps / 15) as f64);
        let start = Instant::now();
        for _ in 0..steps / 15 {
            std::hint::black_box(f32_step.step(std::hint::black_box(&x))[0]);
        }
        t32.push(start.elapsed().as_secs_f64() / (steps / 15) as f64);
    }
    t64.sort_by(f64::total_cmp);
    t32.sort_by(f64::total_cmp);
    println!(
        "pendulum T={T} K={K}, 1 thread: float64 reference {:.1} µs, float32 rollout {:.1} µs \
         (medians of 15 interleaved rounds; best {:.1} / {:.1} µs); first plans differ by at most {gap:.2e}",
        t64[7] * 1e6,
        t32[7] * 1e6,
        t64[0] * 1e6,
        t32[0] * 1e6
    );
}
