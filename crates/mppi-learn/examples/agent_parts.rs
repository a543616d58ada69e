//! Time the agent's parts at the default ("TD-MPC2-lite") sizes: one planning decision, one
//! update, and the forward passes inside them, in wall-clock and in process CPU time (the
//! latter is what to compare on a shared machine).
//!
//! `cargo run --release -p mppi-learn --example agent_parts -- [latent] [mlp] [samples] [iterations]`

use std::time::Instant;

use mppi::rng::sample_rng;
use mppi_learn::agent::latent::LatentPlanner;
use mppi_learn::agent::learner::Learner;
use mppi_learn::agent::replay::{Batch, Episode, Replay};
use mppi_learn::agent::{AgentSettings, PolicySettings};
use mppi_learn::process_cpu_seconds;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().unwrap_or(0))
        .collect();
    let d = AgentSettings::default();
    let s = AgentSettings {
        latent: *args.first().unwrap_or(&d.latent),
        mlp: *args.get(1).unwrap_or(&d.mlp),
        samples: *args.get(2).unwrap_or(&d.samples),
        iterations: *args.get(3).unwrap_or(&d.iterations),
        ..d
    };
    let (o, m) = (5, 1);
    let mut learner = Learner::new(&s, &PolicySettings::default(), o, m, 0.99, 0);
    let mut replay = Replay::new(o, m, s.horizon);
    let mut rng = sample_rng(0, 0, 0, 0);
    let t = 500;
    for _ in 0..2 {
        replay.push(Episode {
            obs: (0..(t + 1) * o).map(|_| rng.normal() as f32).collect(),
            actions: (0..t * m)
                .map(|_| rng.uniform() as f32 * 2.0 - 1.0)
                .collect(),
            rewards: (0..t).map(|_| rng.uniform() as f32).collect(),
            plan_mean: vec![0.0; t * m],
            plan_std: vec![0.5; t * m],
        })?;
    }
    let mut batch = Batch::default();
    let n = 40;
    let (start, cpu) = (Instant::now(), process_cpu_seconds());
    for _ in 0..n {
        replay.sample(s.batch, &mut rng, &mut batch)?;
        learner.update(&batch, &mut rng)?;
    }
    let update_ms = start.elapsed().as_secs_f64() * 1e3 / n as f64;
    let update_cpu = (process_cpu_seconds() - cpu) * 1e3 / n as f64;
    let inference = learner.inference();
    let mut planner = LatentPlanner::new(&s, m, 0)?;
    let obs = vec![0.1f32; o];
    let (start, cpu) = (Instant::now(), process_cpu_seconds());
    for k in 0..n {
        planner.decide(&inference, &obs, k as u64, true)?;
    }
    let plan_ms = start.elapsed().as_secs_f64() * 1e3 / n as f64;
    let plan_cpu = (process_cpu_seconds() - cpu) * 1e3 / n as f64;
    let z = inference.encode(&obs, 1);
    let plans: Vec<f64> = (0..s.samples * s.horizon * m)
        .map(|_| rng.uniform() * 2.0 - 1.0)
        .collect();
    let start = Instant::now();
    for _ in 0..n {
        inference.sequence_values(&z, &plans, s.samples);
    }
    let forward_ms = start.elapsed().as_secs_f64() * 1e3 / n as f64;
    println!(
        "latent {} mlp {} samples {} iterations {}: update {update_ms:.1} ms ({update_cpu:.1} ms CPU), \
         decision {plan_ms:.1} ms ({plan_cpu:.1} ms CPU), one batch of sequence values {forward_ms:.1} ms",
        s.latent, s.mlp, s.samples, s.iterations
    );
    Ok(())
}
